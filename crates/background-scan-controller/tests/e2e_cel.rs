//! The scanner with the CEL policy kinds, against apiserver-sim (or the cluster of
//! `KYVERNO_E2E_KUBECONFIG`): a ValidatingPolicy created after the pods it audits is scanned
//! into their EphemeralReports, and a `policies.kyverno.io` PolicyException rescans them; with
//! the reports controller, the results reach `polr-ns-<namespace>`, and leave it when the
//! policy stops applying.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use kube::Api;
use kube::api::{Patch, PatchParams};
use kyverno_api::policies::validating::ValidatingPolicy;
use kyverno_api::policy_report::v1alpha2::{PolicyReport, PolicyResult};
use kyverno_api::reports::v1::EphemeralReport;
use kyverno_background_scan_controller::{scanner, telemetry};
use kyverno_e2e_support::{cluster, create, delete, eventually, pod, require_team};
use kyverno_reports_controller::controller;

/// What the EphemeralReports of `ns` say of `policy`, by resource name: the result, the rule
/// and the value of the policy's label.
async fn results_of(
    client: &kube::Client,
    ns: &str,
    policy: &str,
) -> BTreeMap<String, (PolicyResult, String, String)> {
    let reports = Api::<EphemeralReport>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap();
    let mut found = BTreeMap::new();
    for report in reports {
        let labels = report.metadata.labels.clone().unwrap_or_default();
        let Some(version) = labels.get(&format!("vpol.kyverno.io/{policy}")) else {
            continue;
        };
        assert_eq!(labels["audit.kyverno.io/source"], "background-scan");
        let resource = report.metadata.annotations.clone().unwrap_or_default()
            ["audit.kyverno.io/resource.name"]
            .clone();
        for result in report.spec.results.iter().filter(|r| r.policy == policy) {
            assert_eq!(result.source.as_deref(), Some("KyvernoValidatingPolicy"));
            assert_eq!(result.properties["process"], "background scan");
            let rule = result.rule.clone().unwrap_or_default();
            found.insert(
                resource.clone(),
                (result.result.unwrap(), rule, version.clone()),
            );
        }
    }
    found
}

/// The `policies.kyverno.io` PolicyException letting pod `bad` of `ns` skip `policy`.
fn bad_may_skip(ns: &str, policy: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "PolicyException",
        "metadata": {"name": "bad-may-skip", "namespace": ns},
        "spec": {
            "policyRefs": [{"name": policy, "kind": "ValidatingPolicy"}],
            "matchConditions": [{"name": "the-bad-pod",
                "expression": "object.metadata.name == 'bad'"}]
        }
    })
}

#[tokio::test]
async fn validating_policies_are_scanned_and_cel_exceptions_rescan() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let name = format!("require-team-{ns}");
    create(&client, pod(&ns, "bad", serde_json::json!({"app": "x"}))).await;
    create(&client, pod(&ns, "good", serde_json::json!({"team": "a"}))).await;
    let scanning = tokio::spawn(scanner::run(
        client.clone(),
        scanner::Settings::default(),
        telemetry::Telemetry::default(),
    ));

    let policy = require_team(&name, &ns);
    let version = create(&client, policy.clone())
        .await
        .metadata
        .resource_version
        .unwrap();
    let scanned = eventually("the policy scans both pods", || async {
        let results = results_of(&client, &ns, &name).await;
        (results.len() == 2).then_some(results)
    })
    .await;
    let validation = "validation".to_owned();
    assert_eq!(
        scanned["bad"],
        (PolicyResult::Fail, validation.clone(), version.clone())
    );
    assert_eq!(scanned["good"], (PolicyResult::Pass, validation, version));

    let exception = bad_may_skip(&ns, &name);
    create(&client, exception.clone()).await;
    let skipped = eventually("the exception skips the bad pod", || async {
        let results = results_of(&client, &ns, &name).await;
        let bad = results.get("bad")?;
        (bad.0 == PolicyResult::Skip).then(|| bad.clone())
    })
    .await;
    assert_eq!(skipped.1, "exception");
    assert_eq!(
        results_of(&client, &ns, &name).await["good"].0,
        PolicyResult::Pass
    );

    delete(&client, &exception).await;
    eventually("deleting the exception rescans the bad pod", || async {
        let results = results_of(&client, &ns, &name).await;
        (results.get("bad").map(|(result, ..)| *result) == Some(PolicyResult::Fail)).then_some(())
    })
    .await;
    scanning.abort();
    delete(&client, &policy).await;
    cluster.cleanup().await;
}

/// The pass, fail and skip counts of `polr-ns-<ns>`.
async fn counts(client: &kube::Client, ns: &str) -> Option<(i64, i64, i64)> {
    let report = Api::<PolicyReport>::namespaced(client.clone(), ns)
        .get_opt(&format!("polr-ns-{ns}"))
        .await
        .unwrap()?;
    let summary = report.content.summary?;
    Some((summary.pass, summary.fail, summary.skip))
}

#[tokio::test]
async fn cel_results_reach_the_namespace_report() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let name = format!("require-team-{ns}");
    create(&client, pod(&ns, "bad", serde_json::json!({"app": "x"}))).await;
    create(&client, pod(&ns, "good", serde_json::json!({"team": "a"}))).await;
    let policy = require_team(&name, &ns);
    create(&client, policy.clone()).await;
    let scanning = tokio::spawn(scanner::run(
        client.clone(),
        scanner::Settings::default(),
        telemetry::Telemetry::default(),
    ));
    let reports_client = client.clone();
    let reporting = tokio::spawn(async move {
        let settings = controller::Settings {
            flush_delay: std::time::Duration::from_millis(100),
            ..controller::Settings::default()
        };
        controller::run(
            reports_client,
            settings,
            kyverno_reports_controller::telemetry::Telemetry::default(),
        )
        .await
        .unwrap();
    });

    eventually("polr-ns has PASS 1 FAIL 1", || async {
        (counts(&client, &ns).await == Some((1, 1, 0))).then_some(())
    })
    .await;
    let report = Api::<PolicyReport>::namespaced(client.clone(), &ns)
        .get(&format!("polr-ns-{ns}"))
        .await
        .unwrap();
    let fail = report
        .content
        .results
        .iter()
        .find(|result| result.result == Some(PolicyResult::Fail))
        .unwrap();
    assert_eq!(fail.policy, name);
    assert_eq!(fail.source.as_deref(), Some("KyvernoValidatingPolicy"));
    assert_eq!(fail.message.as_deref(), Some("label 'team' is required"));
    assert_eq!(fail.resources[0].name.as_deref(), Some("bad"));

    let exception = bad_may_skip(&ns, &name);
    create(&client, exception.clone()).await;
    eventually("the exception turns the FAIL into a SKIP", || async {
        (counts(&client, &ns).await == Some((1, 0, 1))).then_some(())
    })
    .await;

    // A policy that stops selecting the bad pod leaves it without a result.
    Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<ValidatingPolicy>(&()),
    )
    .patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(
            serde_json::json!({"spec": {"matchConstraints": {"objectSelector": {
            "matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}}}}),
        ),
    )
    .await
    .unwrap();
    eventually("the bad pod's result is gone", || async {
        (counts(&client, &ns).await == Some((1, 0, 0))).then_some(())
    })
    .await;
    scanning.abort();
    reporting.abort();
    delete(&client, &exception).await;
    delete(&client, &policy).await;
    cluster.cleanup().await;
}
