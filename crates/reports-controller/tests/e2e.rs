//! Both controllers against apiserver-sim (or the cluster of `KYVERNO_E2E_KUBECONFIG`): the
//! seed's audit example, a ClusterPolicyReport for an IngressClass, deletions, restarts
//! mid-scan, rescans on namespace label and PolicyException changes, and the results of a
//! ValidatingPolicy beside a ClusterPolicy's.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use kyverno_api::policy_report::v1alpha2::{ClusterPolicyReport, PolicyResult};
use kyverno_background_scan_controller::{scanner, telemetry as scan_telemetry};
use kyverno_e2e_support::kubectl::{Kubectl, kubectl_or_skip};
use kyverno_e2e_support::reports::{ephemeral_reports, namespace_report};
use kyverno_e2e_support::{
    Cluster, cluster, create, delete, eventually, pod, require_label_policy, require_team, until,
};
use kyverno_reports_controller::{controller, telemetry as reports_telemetry};

struct Controllers {
    reports: tokio::task::JoinHandle<()>,
    scanner: tokio::task::JoinHandle<()>,
    reports_telemetry: reports_telemetry::Telemetry,
    scan_telemetry: scan_telemetry::Telemetry,
}

impl Controllers {
    fn start(client: &kube::Client) -> Self {
        let reports_telemetry = reports_telemetry::Telemetry::default();
        let scan_telemetry = scan_telemetry::Telemetry::default();
        let reports = start_reports(client, reports_telemetry.clone());
        let scanner = tokio::spawn(scanner::run(
            client.clone(),
            scanner::Settings::default(),
            scan_telemetry.clone(),
        ));
        Self {
            reports,
            scanner,
            reports_telemetry,
            scan_telemetry,
        }
    }

    fn stop(self) {
        self.reports.abort();
        self.scanner.abort();
    }
}

/// The reports controller alone.
fn start_reports(
    client: &kube::Client,
    telemetry: reports_telemetry::Telemetry,
) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        let settings = controller::Settings {
            flush_delay: Duration::from_millis(100),
            ..controller::Settings::default()
        };
        controller::run(client, settings, telemetry).await.unwrap();
    })
}

async fn counts(client: &kube::Client, ns: &str) -> Option<(i64, i64)> {
    let summary = namespace_report(client, ns).await?.content.summary?;
    Some((summary.pass, summary.fail))
}

/// `kubectl get polr -n <ns>` as printed, when kubectl is available.
async fn kubectl_get_polr(cluster: &Cluster) -> Option<String> {
    let kubectl = kubectl_or_skip("the check of the columns kubectl prints")?;
    let dir = std::env::temp_dir().join(format!("kyverno-e2e-{}", cluster.ns));
    let kubectl = Kubectl::new(kubectl, cluster.sim.as_ref(), &dir);
    Some(kubectl.ok(&["get", "polr", "-n", &cluster.ns]).await)
}

#[tokio::test]
async fn the_seed_audit_example() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy = require_label_policy(&format!("require-tier-{ns}"), "Pod", "tier");
    create(&client, policy.clone()).await;
    create(
        &client,
        pod(&ns, "good", serde_json::json!({"tier": "web"})),
    )
    .await;
    let bad = pod(&ns, "bad", serde_json::json!({"app": "x"}));
    let bad_uid = create(&client, bad.clone()).await.metadata.uid;
    let controllers = Controllers::start(&client);

    until("polr PASS 1 FAIL 1", || async {
        counts(&client, &ns).await == Some((1, 1))
    })
    .await;
    let report = namespace_report(&client, &ns).await.unwrap();
    let fail = report
        .content
        .results
        .iter()
        .find(|result| result.result == Some(PolicyResult::Fail))
        .unwrap();
    assert_eq!(fail.resources[0].uid, bad_uid);
    assert_eq!(fail.rule.as_deref(), Some("check-tier"));
    assert_eq!(
        fail.message.as_deref(),
        Some(
            "validation error: label 'tier' is required. rule check-tier failed at path /metadata/labels/tier/"
        )
    );
    assert_eq!(fail.properties["process"], "background scan");
    assert!(controllers.scan_telemetry.admin.is_ready());
    assert!(controllers.reports_telemetry.admin.is_ready());
    let scan_metrics = controllers.scan_telemetry.admin.encode_metrics();
    for expected in [
        "rule_name=\"check-tier\",rule_result=\"fail\",rule_type=\"validate\",rule_execution_cause=\"background_scan\"} 1",
        "rule_name=\"check-tier\",rule_result=\"pass\",rule_type=\"validate\",rule_execution_cause=\"background_scan\"} 1",
        "kyverno_policy_execution_duration_seconds_count{",
        "kyverno_controller_reconcile_total{controller_name=\"background-scan-controller\"}",
    ] {
        assert!(
            scan_metrics.contains(expected),
            "{expected} missing in\n{scan_metrics}"
        );
    }
    until("ephemeral reports aggregated and deleted", || async {
        ephemeral_reports(&client, &ns).await.is_empty()
    })
    .await;

    if let Some(table) = kubectl_get_polr(&cluster).await {
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            [
                "NAME", "KIND", "NAME", "PASS", "FAIL", "WARN", "ERROR", "SKIP", "AGE"
            ]
        );
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            &row[..6],
            [format!("polr-ns-{ns}").as_str(), "1", "1", "0", "0", "0"]
        );
    }

    delete(&client, &bad).await;
    until("the bad pod's FAIL is gone", || async {
        counts(&client, &ns).await == Some((1, 0))
    })
    .await;

    delete(&client, &policy).await;
    until("the policy's results are gone", || async {
        namespace_report(&client, &ns).await.is_none()
    })
    .await;
    controllers.stop();
    cluster.cleanup().await;
}

#[tokio::test]
async fn an_ingress_class_without_a_label_fails_in_the_cluster_report() {
    let cluster = cluster().await;
    let client = cluster.client.clone();
    if cluster.sim.is_some() {
        // The simulator serves no IngressClass: it is registered as a CRD, as a real cluster
        // serves it built in.
        create(&client, serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "ingressclasses.networking.k8s.io"},
            "spec": {"group": "networking.k8s.io", "scope": "Cluster",
                "names": {"plural": "ingressclasses", "singular": "ingressclass", "kind": "IngressClass", "listKind": "IngressClassList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .await;
    }
    let suffix = &cluster.ns;
    let policy = require_label_policy(&format!("require-owner-{suffix}"), "IngressClass", "owner");
    create(&client, policy.clone()).await;
    let class = serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": format!("nginx-{suffix}")}, "spec": {"controller": "k8s.io/ingress-nginx"}});
    let uid = create(&client, class.clone()).await.metadata.uid;
    let controllers = Controllers::start(&client);

    let reports: Api<ClusterPolicyReport> = Api::all(client.clone());
    eventually("the IngressClass fails in clusterpolicyreport", || async {
        let report = reports.get_opt("clusterpolicyreport").await.unwrap()?;
        report
            .content
            .results
            .iter()
            .any(|result| {
                result.resources[0].uid == uid && result.result == Some(PolicyResult::Fail)
            })
            .then_some(())
    })
    .await;
    delete(&client, &class).await;
    until("the IngressClass result is gone", || async {
        let report = reports.get_opt("clusterpolicyreport").await.unwrap();
        report.is_none_or(|report| {
            report
                .content
                .results
                .iter()
                .all(|result| result.resources[0].uid != uid)
        })
    })
    .await;
    delete(&client, &policy).await;
    controllers.stop();
    cluster.cleanup().await;
}

#[tokio::test]
async fn restarts_mid_scan_converge() {
    const PODS: usize = 200;
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy = require_label_policy(&format!("require-tier-{ns}"), "Pod", "tier");
    create(&client, policy.clone()).await;
    for index in 0..PODS {
        let labels = if index % 4 == 0 {
            serde_json::json!({})
        } else {
            serde_json::json!({"tier": "web"})
        };
        create(&client, pod(&ns, &format!("pod-{index}"), labels)).await;
    }
    let expected = (
        i64::try_from(PODS * 3 / 4).unwrap(),
        i64::try_from(PODS / 4).unwrap(),
    );

    // Both controllers are killed while the first scan is under way, then restarted.
    let first = Controllers::start(&client);
    until("the scan has begun", || async {
        let written = !ephemeral_reports(&client, &ns).await.is_empty();
        written || namespace_report(&client, &ns).await.is_some()
    })
    .await;
    first.stop();
    let second = Controllers::start(&client);
    until("reports converge", || async {
        counts(&client, &ns).await == Some(expected)
    })
    .await;
    let report = namespace_report(&client, &ns).await.unwrap();
    assert_eq!(
        report.content.results.len(),
        PODS,
        "one result per pod, no duplicate"
    );
    until("no ephemeral report left", || async {
        ephemeral_reports(&client, &ns).await.is_empty()
    })
    .await;
    second.stop();

    // The reports controller alone restarts: the stored report is read back, unchanged.
    let third = Controllers::start(&client);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counts(&client, &ns).await, Some(expected));
    assert_eq!(
        namespace_report(&client, &ns)
            .await
            .unwrap()
            .content
            .results
            .len(),
        PODS
    );
    third.stop();
    delete(&client, &policy).await;
    cluster.cleanup().await;
}

/// A policy requiring label `tier` on pods of the namespaces labelled `audited: "yes"`.
fn audited_namespaces_policy(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {
            "validationFailureAction": "Audit",
            "background": true,
            "rules": [{
                "name": "audited-tier",
                "match": {"any": [{"resources": {"kinds": ["Pod"],
                    "namespaceSelector": {"matchLabels": {"audited": "yes"}}}}]},
                "validate": {
                    "message": "label 'tier' is required in audited namespaces",
                    "pattern": {"metadata": {"labels": {"tier": "?*"}}}
                }
            }]
        }
    })
}

/// The result of `policy` for the pod in the namespace's report, if any.
async fn result_of(client: &kube::Client, ns: &str, policy: &str) -> Option<PolicyResult> {
    namespace_report(client, ns)
        .await?
        .content
        .results
        .iter()
        .find(|result| result.policy == policy)
        .and_then(|result| result.result)
}

#[tokio::test]
async fn namespace_labels_and_exceptions_trigger_rescans() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let selecting = format!("audited-tier-{ns}");
    let plain = format!("require-app-{ns}");
    let selecting_policy = audited_namespaces_policy(&selecting);
    let plain_policy = require_label_policy(&plain, "Pod", "app");
    create(&client, selecting_policy.clone()).await;
    create(&client, plain_policy.clone()).await;
    create(
        &client,
        pod(&ns, "untiered", serde_json::json!({"app": "x"})),
    )
    .await;
    let controllers = Controllers::start(&client);

    // The plain policy's result shows the pod was scanned: the namespace is not audited yet.
    until("the pod is scanned", || async {
        result_of(&client, &ns, &plain).await == Some(PolicyResult::Pass)
    })
    .await;
    assert_eq!(result_of(&client, &ns, &selecting).await, None);

    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"audited": "yes"}}})),
        )
        .await
        .unwrap();
    until("labelling the namespace rescans its pods", || async {
        result_of(&client, &ns, &selecting).await == Some(PolicyResult::Fail)
    })
    .await;

    let exception = serde_json::json!({
        "apiVersion": "kyverno.io/v2",
        "kind": "PolicyException",
        "metadata": {"name": "untiered-allowed", "namespace": ns},
        "spec": {
            "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": [ns],
                "names": ["untiered"]}}]},
            "exceptions": [{"policyName": selecting, "ruleNames": ["audited-tier", "autogen-audited-tier"]}]
        }
    });
    create(&client, exception.clone()).await;
    until(
        "an exception rescans what its policy applies to",
        || async {
            let result = result_of(&client, &ns, &selecting).await;
            result.is_some() && result != Some(PolicyResult::Fail)
        },
    )
    .await;
    delete(&client, &exception).await;
    until("deleting the exception rescans again", || async {
        result_of(&client, &ns, &selecting).await == Some(PolicyResult::Fail)
    })
    .await;

    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"audited": null}}})),
        )
        .await
        .unwrap();
    until("unlabelling the namespace removes the result", || async {
        result_of(&client, &ns, &selecting).await.is_none()
    })
    .await;
    controllers.stop();
    delete(&client, &selecting_policy).await;
    delete(&client, &plain_policy).await;
    cluster.cleanup().await;
}

/// The `source` of each policy's results in the namespace's report.
async fn sources_by_policy(client: &kube::Client, ns: &str) -> BTreeMap<String, String> {
    namespace_report(client, ns)
        .await
        .map(|report| report.content.results)
        .unwrap_or_default()
        .into_iter()
        .map(|result| (result.policy, result.source.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn validating_policy_results_live_and_die_with_the_policy() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let cluster_policy_name = format!("require-tier-{ns}");
    let validating_policy_name = format!("require-team-{ns}");
    let cluster_policy = require_label_policy(&cluster_policy_name, "Pod", "tier");
    let validating_policy = require_team(&validating_policy_name, &ns);
    create(&client, cluster_policy.clone()).await;
    create(&client, validating_policy.clone()).await;
    create(
        &client,
        pod(&ns, "untiered", serde_json::json!({"app": "x"})),
    )
    .await;
    let both = BTreeMap::from([
        (cluster_policy_name.clone(), "kyverno".to_owned()),
        (
            validating_policy_name.clone(),
            "KyvernoValidatingPolicy".to_owned(),
        ),
    ]);
    let controllers = Controllers::start(&client);
    until("both policies' results in the report", || async {
        sources_by_policy(&client, &ns).await == both
    })
    .await;
    controllers.stop();

    // The reports controller alone restarts: listing the ClusterPolicies keeps the
    // ValidatingPolicy's results read back.
    let telemetry = reports_telemetry::Telemetry::default();
    let reports = start_reports(&client, telemetry.clone());
    until("the restarted controller is ready", || async {
        telemetry.admin.is_ready()
    })
    .await;
    until("no ephemeral report left", || async {
        ephemeral_reports(&client, &ns).await.is_empty()
    })
    .await;
    assert_eq!(sources_by_policy(&client, &ns).await, both);

    delete(&client, &validating_policy).await;
    let cluster_policy_only = BTreeMap::from([(cluster_policy_name, "kyverno".to_owned())]);
    until("the ValidatingPolicy's results are gone", || async {
        sources_by_policy(&client, &ns).await == cluster_policy_only
    })
    .await;
    reports.abort();
    delete(&client, &cluster_policy).await;
    cluster.cleanup().await;
}
