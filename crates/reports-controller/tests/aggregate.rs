//! The reports controller alone: ephemeral reports written as the scanner and the admission
//! controller write them are aggregated into `polr-ns-<namespace>`, deleted once absorbed;
//! deleted resources and policies lose their results.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use kyverno_api::policy_report::v1alpha2::PolicyReport;
use kyverno_api::reports::v1::EphemeralReport;
use kyverno_e2e_support::reports::{ephemeral_reports, namespace_report};
use kyverno_e2e_support::{cluster, create, delete, pod, require_label_policy, until};
use kyverno_policy_core::engine::LoadedPolicy;
use kyverno_policy_core::response::{RuleResponse, RuleStatus, RuleType};
use kyverno_reports_controller::controller::{self, Settings};
use kyverno_reports_controller::telemetry::Telemetry;
use kyverno_runtime::reports::{Evaluated, SOURCE_BACKGROUND_SCAN, Subject, ephemeral_report};

async fn write_result(
    client: &kube::Client,
    policy: &LoadedPolicy,
    object: &DynamicObject,
    status: RuleStatus,
) {
    let value = serde_json::to_value(object).unwrap();
    let subject = Subject::of(&value, "pods").unwrap();
    let rules = [RuleResponse {
        name: "check-tier".into(),
        rule_type: RuleType::Validation,
        status,
        message: "validation error: label 'tier' is required".into(),
    }];
    let report = ephemeral_report(
        &subject.uid,
        &subject,
        SOURCE_BACKGROUND_SCAN,
        &[Evaluated {
            policy,
            resource_version: "1",
            rules: &rules,
        }],
        None,
    );
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        subject.namespace.as_deref().unwrap(),
        &ApiResource::erase::<EphemeralReport>(&()),
    );
    api.create(&PostParams::default(), &report).await.unwrap();
}

async fn summary(client: &kube::Client, ns: &str) -> Option<(i64, i64, usize)> {
    let report = namespace_report(client, ns).await?;
    let summary = report.content.summary?;
    Some((summary.pass, summary.fail, report.content.results.len()))
}

/// Creates the ClusterPolicy `name` requiring label `tier` on pods: its JSON and its loaded form.
async fn create_policy(client: &kube::Client, name: &str) -> (serde_json::Value, LoadedPolicy) {
    let policy_json = require_label_policy(name, "Pod", "tier");
    create(client, policy_json.clone()).await;
    let policy: ClusterPolicy = serde_json::from_value(policy_json.clone()).unwrap();
    (
        policy_json,
        LoadedPolicy::from_cluster_policy(policy).unwrap(),
    )
}

#[tokio::test]
async fn ephemeral_reports_become_a_namespace_policy_report() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy_name = format!("require-tier-{ns}");
    let (policy_json, policy) = create_policy(&client, &policy_name).await;
    let good = create(
        &client,
        pod(&ns, "good", serde_json::json!({"tier": "web"})),
    )
    .await;
    let bad_json = pod(&ns, "bad", serde_json::json!({}));
    let bad = create(&client, bad_json.clone()).await;

    let telemetry = Telemetry::default();
    let aggregation = tokio::spawn(controller::run(
        client.clone(),
        Settings {
            flush_delay: Duration::from_millis(100),
            ..Settings::default()
        },
        telemetry.clone(),
    ));
    write_result(&client, &policy, &good, RuleStatus::Pass).await;
    write_result(&client, &policy, &bad, RuleStatus::Fail).await;

    until("PASS 1 FAIL 1", || async {
        summary(&client, &ns).await == Some((1, 1, 2))
    })
    .await;
    let report = namespace_report(&client, &ns).await.unwrap();
    let fail = report
        .content
        .results
        .iter()
        .find(|result| {
            result.result == Some(kyverno_api::policy_report::v1alpha2::PolicyResult::Fail)
        })
        .unwrap();
    assert_eq!(fail.policy, policy_name);
    assert_eq!(fail.rule.as_deref(), Some("check-tier"));
    assert_eq!(fail.category.as_deref(), Some("Best Practices"));
    assert_eq!(fail.resources[0].uid, bad.metadata.uid);
    assert_eq!(fail.resources[0].name.as_deref(), Some("bad"));
    assert!(fail.timestamp.is_some());
    assert!(telemetry.admin.is_ready());
    let metrics = telemetry.admin.encode_metrics();
    for expected in [
        "kyverno_controller_reconcile_total{controller_name=\"aggregate-report-controller\"}",
        "kyverno_controller_drop_total{controller_name=\"aggregate-report-controller\"} 0",
        "kyverno_rs_report_objects{kind=\"PolicyReport\"}",
        "kyverno_rs_ephemeral_reports_aggregated_total",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing in\n{metrics}"
        );
    }
    let reconciles = metrics
        .lines()
        .find(|line| line.starts_with("kyverno_controller_reconcile_total{"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap();
    assert!(reconciles >= 1, "{metrics}");

    until("ephemeral reports deleted", || async {
        ephemeral_reports(&client, &ns).await.is_empty()
    })
    .await;

    // A rescan gives the same result: no duplicate.
    write_result(&client, &policy, &bad, RuleStatus::Fail).await;
    until("rescan absorbed", || async {
        ephemeral_reports(&client, &ns).await.is_empty()
    })
    .await;
    assert_eq!(summary(&client, &ns).await, Some((1, 1, 2)));

    // The leader is replaced: the next one reads the stored report and carries on.
    aggregation.abort();
    let aggregation = tokio::spawn(controller::run(
        client.clone(),
        Settings {
            flush_delay: Duration::from_millis(100),
            ..Settings::default()
        },
        Telemetry::default(),
    ));

    delete(&client, &bad_json).await;
    until("the bad pod's FAIL is gone", || async {
        summary(&client, &ns).await == Some((1, 0, 1))
    })
    .await;

    delete(&client, &policy_json).await;
    until("the policy's results are gone", || async {
        namespace_report(&client, &ns).await.is_none()
    })
    .await;
    aggregation.abort();
    cluster.cleanup().await;
}

/// The `(pass, fail)` totals and result count of every shard of the namespace's report, by
/// shard name.
async fn shards(client: &kube::Client, ns: &str) -> Vec<(String, i64, i64, usize)> {
    let mut shards: Vec<_> = Api::<PolicyReport>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|report| {
            let summary = report.content.summary.unwrap_or_default();
            (
                report.metadata.name.unwrap(),
                summary.pass,
                summary.fail,
                report.content.results.len(),
            )
        })
        .collect();
    shards.sort();
    shards
}

/// The names of `shards` and their summed `(pass, fail)` totals.
fn names_and_totals(shards: &[(String, i64, i64, usize)]) -> (Vec<&str>, (i64, i64)) {
    let totals = shards.iter().fold((0, 0), |(pass, fail), shard| {
        (pass + shard.1, fail + shard.2)
    });
    let names = shards.iter().map(|shard| shard.0.as_str()).collect();
    (names, totals)
}

#[tokio::test]
async fn large_reports_are_sharded_and_shrink_back() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy_name = format!("require-tier-{ns}");
    let (policy_json, policy) = create_policy(&client, &policy_name).await;
    let mut pods = Vec::new();
    for (name, labels) in [
        ("first", serde_json::json!({"tier": "web"})),
        ("second", serde_json::json!({"tier": "db"})),
        ("third", serde_json::json!({})),
    ] {
        let json = pod(&ns, name, labels);
        let object = create(&client, json.clone()).await;
        pods.push((json, object));
    }
    // Every resource's results pass the limit: each gets a shard of its own.
    let aggregation = tokio::spawn(controller::run(
        client.clone(),
        Settings {
            flush_delay: Duration::from_millis(100),
            max_report_bytes: 1,
        },
        Telemetry::default(),
    ));
    for ((_, object), status) in
        pods.iter()
            .zip([RuleStatus::Pass, RuleStatus::Pass, RuleStatus::Fail])
    {
        write_result(&client, &policy, object, status).await;
    }
    let base = format!("polr-ns-{ns}");
    until("three shards", || async {
        let shards = shards(&client, &ns).await;
        let (names, totals) = names_and_totals(&shards);
        names == [base.clone(), format!("{base}-1"), format!("{base}-2")]
            && totals == (2, 1)
            && shards.iter().all(|shard| shard.3 == 1)
    })
    .await;

    // A pod is deleted: its shard's place is taken by the next, the last shard goes away.
    delete(&client, &pods[0].0).await;
    until("two shards", || async {
        let shards = shards(&client, &ns).await;
        let (names, totals) = names_and_totals(&shards);
        names == [base.clone(), format!("{base}-1")] && totals == (1, 1)
    })
    .await;
    aggregation.abort();
    delete(&client, &policy_json).await;
    cluster.cleanup().await;
}
