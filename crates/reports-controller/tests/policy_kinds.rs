//! Which results a report replaces, against apiserver-sim (or the cluster of
//! `KYVERNO_E2E_KUBECONFIG`): policies of two kinds with the same name keep their own results,
//! and a policy that a background scan no longer applies to a resource loses its results there.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use kyverno_api::policy_report::v1alpha2::PolicyResult;
use kyverno_api::reports::v1::EphemeralReport;
use kyverno_background_scan_controller::{scanner, telemetry as scan_telemetry};
use kyverno_e2e_support::reports::namespace_report;
use kyverno_e2e_support::{
    cluster, create, delete, pod, require_label_policy, require_team, until,
};
use kyverno_policy_core::engine::LoadedPolicy;
use kyverno_policy_core::response::{RuleResponse, RuleStatus, RuleType};
use kyverno_reports_controller::{controller, telemetry};
use kyverno_runtime::cel_policies::CelKind;
use kyverno_runtime::policy_cache::PolicyKind;
use kyverno_runtime::reports::{
    PolicyResults, ReportedPolicy, SOURCE_ADMISSION, SOURCE_BACKGROUND_SCAN, Subject,
    policies_report,
};

/// The reports controller, flushing often.
fn start_reports(client: &kube::Client) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        let settings = controller::Settings {
            flush_delay: Duration::from_millis(100),
            ..controller::Settings::default()
        };
        controller::run(client, settings, telemetry::Telemetry::default())
            .await
            .unwrap();
    })
}

/// The `(source, policy) -> result` of every result in the namespace's report.
async fn results(client: &kube::Client, ns: &str) -> BTreeMap<(String, String), PolicyResult> {
    namespace_report(client, ns)
        .await
        .map(|report| report.content.results)
        .unwrap_or_default()
        .into_iter()
        .map(|result| {
            (
                (result.source.unwrap_or_default(), result.policy),
                result.result.unwrap(),
            )
        })
        .collect()
}

fn rule(name: &str, status: RuleStatus) -> Vec<RuleResponse> {
    vec![RuleResponse {
        name: name.into(),
        rule_type: RuleType::Validation,
        status,
        message: "a label is missing".into(),
    }]
}

/// Writes the ephemeral report `name` of `source` about `object` with the results of
/// `evaluated`, labelled as the controllers label them.
async fn write_report(
    client: &kube::Client,
    name: &str,
    object: &DynamicObject,
    source: &str,
    evaluated: &[PolicyResults<'_>],
) {
    let subject = Subject::of(&serde_json::to_value(object).unwrap(), "pods").unwrap();
    let report = policies_report(name, &subject, source, evaluated, None);
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        subject.namespace.as_deref().unwrap(),
        &ApiResource::erase::<EphemeralReport>(&()),
    );
    api.create(&PostParams::default(), &report).await.unwrap();
}

#[tokio::test]
async fn a_cluster_policy_and_a_validating_policy_of_the_same_name_keep_their_own_results() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let name = format!("same-name-{ns}");
    let cluster_policy_json = require_label_policy(&name, "Pod", "tier");
    let validating_policy_json = require_team(&name, &ns);
    create(&client, cluster_policy_json.clone()).await;
    create(&client, validating_policy_json.clone()).await;
    let cluster_policy: ClusterPolicy =
        serde_json::from_value(cluster_policy_json.clone()).unwrap();
    let cluster_policy = LoadedPolicy::from_cluster_policy(cluster_policy).unwrap();
    let annotations = BTreeMap::new();
    let validating_policy = ReportedPolicy {
        kind: PolicyKind::Cel(CelKind::ValidatingPolicy),
        name: &name,
        namespace: None,
        annotations: &annotations,
        background: true,
        admission: true,
    };
    let bad = create(&client, pod(&ns, "bad", serde_json::json!({}))).await;
    let uid = bad.metadata.uid.clone().unwrap();
    let reports = start_reports(&client);

    // A scan: both policies fail on the pod.
    let (tier_failed, team_failed) = (
        rule("check-tier", RuleStatus::Fail),
        rule("validation", RuleStatus::Fail),
    );
    write_report(
        &client,
        &uid,
        &bad,
        SOURCE_BACKGROUND_SCAN,
        &[
            PolicyResults {
                policy: ReportedPolicy::kyverno(&cluster_policy),
                resource_version: "1",
                rules: &tier_failed,
            },
            PolicyResults {
                policy: validating_policy,
                resource_version: "1",
                rules: &team_failed,
            },
        ],
    )
    .await;
    let cluster_policy_key = ("kyverno".to_owned(), name.clone());
    let validating_policy_key = ("KyvernoValidatingPolicy".to_owned(), name.clone());
    let both_fail = BTreeMap::from([
        (cluster_policy_key.clone(), PolicyResult::Fail),
        (validating_policy_key.clone(), PolicyResult::Fail),
    ]);
    until("two results, one per kind", || async {
        results(&client, &ns).await == both_fail
    })
    .await;

    // An admission report of the ClusterPolicy alone replaces its result only.
    let tier_passed = rule("check-tier", RuleStatus::Pass);
    write_report(
        &client,
        &format!("{uid}-admission"),
        &bad,
        SOURCE_ADMISSION,
        &[PolicyResults {
            policy: ReportedPolicy::kyverno(&cluster_policy),
            resource_version: "1",
            rules: &tier_passed,
        }],
    )
    .await;
    let expected = BTreeMap::from([
        (cluster_policy_key, PolicyResult::Pass),
        (validating_policy_key, PolicyResult::Fail),
    ]);
    until("the ValidatingPolicy's result stays", || async {
        results(&client, &ns).await == expected
    })
    .await;

    reports.abort();
    delete(&client, &validating_policy_json).await;
    delete(&client, &cluster_policy_json).await;
    cluster.cleanup().await;
}

/// [`require_label_policy`] restricted to namespace `ns`.
fn require_label_in(name: &str, kind: &str, label: &str, ns: &str) -> serde_json::Value {
    let mut policy = require_label_policy(name, kind, label);
    policy["spec"]["rules"][0]["match"]["any"][0]["resources"]["namespaces"] =
        serde_json::json!([ns]);
    policy
}

#[tokio::test]
async fn a_policy_that_stops_matching_a_kind_loses_its_results() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let changed = format!("require-tier-{ns}");
    let kept = format!("require-owner-{ns}");
    let changed_json = require_label_in(&changed, "ConfigMap", "tier", &ns);
    let kept_json = require_label_in(&kept, "ConfigMap", "owner", &ns);
    create(&client, changed_json.clone()).await;
    create(&client, kept_json.clone()).await;
    create(
        &client,
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "unlabelled", "namespace": ns}, "data": {"a": "b"}}),
    )
    .await;
    let reports = start_reports(&client);
    let scan = tokio::spawn(scanner::run(
        client.clone(),
        scanner::Settings::default(),
        scan_telemetry::Telemetry::default(),
    ));
    let kyverno = |policy: &str| ("kyverno".to_owned(), policy.to_owned());
    let both_fail = BTreeMap::from([
        (kyverno(&changed), PolicyResult::Fail),
        (kyverno(&kept), PolicyResult::Fail),
    ]);
    until("both policies fail on the ConfigMap", || async {
        results(&client, &ns).await == both_fail
    })
    .await;

    // The policy now selects Pods only: the rescan of the ConfigMap drops its result.
    let pods_only = require_label_in(&changed, "Pod", "tier", &ns);
    Api::<ClusterPolicy>::all(client.clone())
        .patch(
            &changed,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": pods_only["spec"]})),
        )
        .await
        .unwrap();
    let kept_only = BTreeMap::from([(kyverno(&kept), PolicyResult::Fail)]);
    until("only the other policy's result is left", || async {
        results(&client, &ns).await == kept_only
    })
    .await;

    // No policy selects ConfigMaps any more: the scanner stops watching them and clears what
    // it reported on them.
    let secrets_only = require_label_in(&kept, "Secret", "owner", &ns);
    Api::<ClusterPolicy>::all(client.clone())
        .patch(
            &kept,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": secrets_only["spec"]})),
        )
        .await
        .unwrap();
    until("no result is left on the ConfigMap", || async {
        results(&client, &ns).await.is_empty()
    })
    .await;

    scan.abort();
    reports.abort();
    delete(&client, &changed_json).await;
    delete(&client, &kept_json).await;
    cluster.cleanup().await;
}
