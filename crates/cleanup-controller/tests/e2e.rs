//! The cleanup controller against apiserver-sim (or the cluster of `KYVERNO_E2E_KUBECONFIG`):
//! a ClusterCleanupPolicy run at its schedule, `cleanup.kyverno.io/ttl` deletions, the webhook
//! refusing an invalid schedule, and a leader killed between two scheduled times. On the
//! simulator, replicas run in this process with a manual clock moved on by the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams};
use kyverno_api::kyverno::v2::cleanup_policy::ClusterCleanupPolicy;
use kyverno_cleanup_controller::clock::{ManualClock, from_k8s};
use kyverno_cleanup_controller::schedule::Schedule;
use kyverno_cleanup_controller::{Options, Replica, start};
use kyverno_e2e_support::{
    Cluster, cluster, create, ensure_namespace, events_regarding, eventually, on_real_cluster, pod,
    until,
};
use serde_json::{Value, json};

/// Replicas on the simulator, sharing one manual clock.
struct Harness {
    cluster: Cluster,
    clock: Arc<ManualClock>,
    replicas: Vec<Option<Replica>>,
}

impl Harness {
    /// `replicas` controllers on a fresh simulator; `None` on a real cluster (these tests
    /// move the controllers' clock, which only works in this process).
    async fn new(test: &str, replicas: usize) -> Option<Self> {
        if kyverno_e2e_support::skip_on_real_cluster(test) {
            return None;
        }
        let cluster = cluster().await;
        ensure_namespace(&cluster.client, "kyverno").await;
        let mut harness = Self {
            cluster,
            clock: ManualClock::new(Utc::now()),
            replicas: Vec::new(),
        };
        for index in 0..replicas {
            harness.start_replica(index).await;
        }
        // Policies are only created once the webhook checks them.
        invalid_schedule_refusal(&harness.cluster.client, &harness.cluster.ns).await;
        Some(harness)
    }

    async fn start_replica(&mut self, index: usize) {
        let mut options = Options::with_defaults(&format!("cleanup-{index}"), self.clock.clone());
        options.webhook_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        options.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        options.lease_ttl = Duration::from_secs(2);
        options.lease_retry_period = Duration::from_millis(200);
        let replica = start(self.cluster.client.clone(), options).await.unwrap();
        if index == 0 {
            let sim = self.cluster.sim.as_ref().expect("on the simulator");
            sim.map_service("kyverno-cleanup-controller.kyverno", replica.webhook_addr);
        }
        self.replicas.push(Some(replica));
    }

    async fn leader(&self) -> usize {
        eventually("a replica leads", || async {
            self.replicas
                .iter()
                .position(|replica| replica.as_ref().is_some_and(Replica::is_leader))
        })
        .await
    }

    fn client(&self) -> &kube::Client {
        &self.cluster.client
    }
}

/// The admin server's `/metrics` text.
async fn metrics_text(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// The sum of the samples of counter `name` in a metrics text.
fn sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

const DELETED: &str = "kyverno_cleanup_controller_deletedobjects_total";
const ERRORS: &str = "kyverno_cleanup_controller_errors_total";

async fn exists(client: &kube::Client, namespace: &str, name: &str) -> bool {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.get_opt(name).await.unwrap().is_some()
}

async fn gone(client: &kube::Client, namespace: &str, name: &str) {
    until(&format!("pod {namespace}/{name} deleted"), || async {
        !exists(client, namespace, name).await
    })
    .await;
}

/// A ClusterCleanupPolicy deleting, every five minutes, the Pods without owner of `namespaces`
/// except kube-system.
fn bare_pods_policy(name: &str, namespaces: &[&str]) -> Value {
    json!({
        "apiVersion": "kyverno.io/v2",
        "kind": "ClusterCleanupPolicy",
        "metadata": {"name": name},
        "spec": {
            "schedule": "*/5 * * * *",
            "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": namespaces}}]},
            "exclude": {"any": [{"resources": {"namespaces": ["kube-system"]}}]},
            "conditions": {"all": [{
                "key": "{{ length(target.metadata.ownerReferences || `[]`) }}",
                "operator": "Equals",
                "value": 0
            }]}
        }
    })
}

fn owned_pod(namespace: &str, name: &str) -> Value {
    let mut owned = pod(namespace, name, json!({}));
    owned["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "2c1f7d4e-0000-4000-8000-000000000001"
    }]);
    owned
}

async fn policy(client: &kube::Client, name: &str) -> ClusterCleanupPolicy {
    Api::<ClusterCleanupPolicy>::all(client.clone())
        .get(name)
        .await
        .unwrap()
}

/// Waits until the ClusterCleanupPolicy `name` records its execution at `tick`.
async fn execution_recorded(client: &kube::Client, name: &str, tick: DateTime<Utc>, what: &str) {
    until(what, || async {
        let recorded = policy(client, name)
            .await
            .status
            .and_then(|status| status.last_execution_time);
        recorded.as_ref().map(from_k8s) == Some(tick)
    })
    .await;
}

/// The policy's scheduled times after its creation: the first and the second.
async fn ticks(client: &kube::Client, name: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let created = from_k8s(
        policy(client, name)
            .await
            .metadata
            .creation_timestamp
            .as_ref()
            .unwrap(),
    );
    let schedule = Schedule::parse("*/5 * * * *").unwrap();
    let first = schedule.next_after(created).unwrap();
    (first, schedule.next_after(first).unwrap())
}

/// Moves the clock just past `tick`.
fn advance_past(clock: &ManualClock, tick: DateTime<Utc>) {
    use kyverno_cleanup_controller::clock::Clock;
    let by = tick - clock.now() + TimeDelta::seconds(2);
    if by > TimeDelta::zero() {
        clock.advance(by);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_cleanup_policy_deletes_only_matching_resources_at_its_schedule() {
    let Some(harness) = Harness::new(
        "a_cluster_cleanup_policy_deletes_only_matching_resources_at_its_schedule",
        1,
    )
    .await
    else {
        return;
    };
    let (client, ns) = (harness.client().clone(), harness.cluster.ns.clone());
    ensure_namespace(&client, "kube-system").await;
    create(&client, pod(&ns, "bare", json!({}))).await;
    create(&client, owned_pod(&ns, "owned")).await;
    create(&client, pod("kube-system", "system", json!({}))).await;
    let name = format!("bare-pods-{ns}");
    create(&client, bare_pods_policy(&name, &[&ns, "kube-system"])).await;
    harness.leader().await;
    let (first, _) = ticks(&client, &name).await;
    assert!(
        exists(&client, &ns, "bare").await,
        "deleted before its time"
    );

    advance_past(&harness.clock, first);
    gone(&client, &ns, "bare").await;
    execution_recorded(&client, &name, first, "the execution is recorded").await;
    assert!(
        exists(&client, &ns, "owned").await,
        "an owned pod was deleted"
    );
    assert!(
        exists(&client, "kube-system", "system").await,
        "a kube-system pod was deleted"
    );
    let metrics = metrics_text(harness.replicas[0].as_ref().unwrap().metrics_addr).await;
    assert_eq!(sum(&metrics, DELETED), 1, "{metrics}");
    assert_eq!(sum(&metrics, ERRORS), 0, "{metrics}");
    assert!(
        metrics.contains(&format!(
            "{DELETED}{{policy_type=\"ClusterCleanupPolicy\",policy_namespace=\"\",policy_name=\"{name}\",resource_kind=\"Pod\",resource_namespace=\"{ns}\"}} 1"
        )),
        "{metrics}"
    );
    let note = eventually("an Event on the policy", || async {
        events_regarding(&client, "default", &name)
            .await
            .into_iter()
            .next()
            .and_then(|event| Some((event.reason?, event.note?)))
    })
    .await;
    assert_eq!(
        note,
        (
            "PolicyApplied".to_owned(),
            format!("successfully cleaned up the target resource Pod/{ns}/bare")
        )
    );
    harness.cluster.cleanup().await;
}

fn config_map(namespace: &str, name: &str, ttl: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"cleanup.kyverno.io/ttl": ttl}},
        "data": {"k": "v"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_labels_delete_when_due_and_bad_values_are_reported() {
    let Some(harness) =
        Harness::new("ttl_labels_delete_when_due_and_bad_values_are_reported", 1).await
    else {
        return;
    };
    let (client, ns) = (harness.client().clone(), harness.cluster.ns.clone());
    harness.leader().await;
    create(&client, config_map(&ns, "short", "1m")).await;
    create(&client, config_map(&ns, "long", "2h")).await;
    create(&client, config_map(&ns, "bad", "soon")).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let note = eventually("a Warning Event about the bad value", || async {
        events_regarding(&client, &ns, "bad")
            .await
            .into_iter()
            .find(|event| event.type_.as_deref() == Some("Warning"))
            .and_then(|event| event.note)
    })
    .await;
    assert!(note.contains("\"soon\""), "{note}");
    assert!(
        maps.get_opt("short").await.unwrap().is_some(),
        "deleted early"
    );

    harness.clock.advance(TimeDelta::minutes(10));
    until("the short-lived ConfigMap deleted", || async {
        maps.get_opt("short").await.unwrap().is_none()
    })
    .await;
    assert!(maps.get_opt("long").await.unwrap().is_some());
    assert!(maps.get_opt("bad").await.unwrap().is_some());
    harness.cluster.cleanup().await;
}

/// The webhook's answer to a ClusterCleanupPolicy with an invalid schedule, once the webhook
/// is configured and served (policies are admitted without a check until then).
async fn invalid_schedule_refusal(client: &kube::Client, ns: &str) -> String {
    let name = format!("invalid-{ns}");
    let mut invalid = bare_pods_policy(&name, &[ns]);
    invalid["spec"]["schedule"] = json!("invalid-schedule");
    let api: Api<ClusterCleanupPolicy> = Api::all(client.clone());
    eventually("the webhook refuses an invalid policy", || async {
        let object: ClusterCleanupPolicy = serde_json::from_value(invalid.clone()).unwrap();
        match api.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status)) if status.message.contains("spec.schedule") => {
                Some(status.message)
            }
            // The webhook is configured but its certificate is not served yet.
            Err(kube::Error::Api(_)) => None,
            Err(error) => panic!("unexpected error: {error}"),
            Ok(_) => {
                // The webhook was not configured yet.
                api.delete(&name, &Default::default()).await.unwrap();
                None
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_an_invalid_schedule() {
    // On a real cluster the deployed controller answers.
    let (cluster, _replicas) = if on_real_cluster() {
        (cluster().await, Vec::new())
    } else {
        let harness = Harness::new("the_webhook_refuses_an_invalid_schedule", 1)
            .await
            .expect("on the simulator");
        (harness.cluster, harness.replicas)
    };
    let message = invalid_schedule_refusal(&cluster.client, &cluster.ns).await;
    assert!(
        message.contains(
            "spec.schedule: Invalid value: \"invalid-schedule\": schedule spec in the cleanupPolicy is not in proper cron format"
        ),
        "{message}"
    );
    let name = format!("valid-{}", cluster.ns);
    let api: Api<ClusterCleanupPolicy> = Api::all(cluster.client.clone());
    let valid: ClusterCleanupPolicy =
        serde_json::from_value(bare_pods_policy(&name, &[&cluster.ns])).unwrap();
    api.create(&PostParams::default(), &valid)
        .await
        .expect("a valid policy is admitted");
    api.delete(&name, &Default::default()).await.unwrap();
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_between_ticks_the_next_tick_runs_once() {
    let Some(mut harness) =
        Harness::new("a_leader_killed_between_ticks_the_next_tick_runs_once", 2).await
    else {
        return;
    };
    let (client, ns) = (harness.client().clone(), harness.cluster.ns.clone());
    let name = format!("bare-pods-{ns}");
    create(&client, pod(&ns, "first", json!({}))).await;
    create(&client, bare_pods_policy(&name, &[&ns])).await;
    let (first, second) = ticks(&client, &name).await;
    let leader = harness.leader().await;
    advance_past(&harness.clock, first);
    gone(&client, &ns, "first").await;
    execution_recorded(&client, &name, first, "the first execution is recorded").await;
    let killed_metrics =
        metrics_text(harness.replicas[leader].as_ref().unwrap().metrics_addr).await;
    create(&client, pod(&ns, "second", json!({}))).await;

    harness.replicas[leader] = None;
    let survivor = harness.leader().await;
    assert_ne!(survivor, leader);
    // The survivor's leader duties are running once it deletes a due TTL resource.
    create(&client, config_map(&ns, "probe", "0s")).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    until("the survivor works", || async {
        maps.get_opt("probe").await.unwrap().is_none()
    })
    .await;
    assert!(
        exists(&client, &ns, "second").await,
        "the first time was run again"
    );

    advance_past(&harness.clock, second);
    gone(&client, &ns, "second").await;
    execution_recorded(&client, &name, second, "the second execution is recorded").await;
    let survivor_metrics =
        metrics_text(harness.replicas[survivor].as_ref().unwrap().metrics_addr).await;
    assert_eq!(sum(&killed_metrics, DELETED), 1, "{killed_metrics}");
    assert_eq!(sum(&survivor_metrics, DELETED), 1, "{survivor_metrics}");
    assert_eq!(
        sum(&killed_metrics, ERRORS) + sum(&survivor_metrics, ERRORS),
        0
    );
    harness.cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_deleting_policy_deletes_what_its_cel_conditions_select() {
    let Some(harness) = Harness::new(
        "a_namespaced_deleting_policy_deletes_what_its_cel_conditions_select",
        1,
    )
    .await
    else {
        return;
    };
    let (client, ns) = (harness.client().clone(), harness.cluster.ns.clone());
    create(&client, pod(&ns, "tmp-a", json!({}))).await;
    create(&client, pod(&ns, "keep", json!({}))).await;
    let created = create(
        &client,
        json!({
            "apiVersion": "policies.kyverno.io/v1beta1",
            "kind": "NamespacedDeletingPolicy",
            "metadata": {"name": "temporary-pods", "namespace": ns},
            "spec": {
                "schedule": "*/5 * * * *",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"],
                    "operations": ["CREATE", "UPDATE"]
                }]},
                "conditions": [{"name": "temporary", "expression": "object.metadata.name.startsWith('tmp-')"}]
            }
        }),
    )
    .await;
    harness.leader().await;
    let schedule = Schedule::parse("*/5 * * * *").unwrap();
    let first = schedule
        .next_after(from_k8s(
            created.metadata.creation_timestamp.as_ref().unwrap(),
        ))
        .unwrap();
    advance_past(&harness.clock, first);
    gone(&client, &ns, "tmp-a").await;
    assert!(
        exists(&client, &ns, "keep").await,
        "a pod not selected was deleted"
    );
    let api = kyverno_e2e_support::api_for(
        &client,
        &json!({"apiVersion": "policies.kyverno.io/v1beta1", "kind": "NamespacedDeletingPolicy",
            "metadata": {"namespace": ns}}),
    )
    .await;
    eventually("the execution is recorded", || async {
        let policy = api.get("temporary-pods").await.unwrap();
        let recorded = policy.data["status"]["lastExecutionTime"]
            .as_str()?
            .to_owned();
        (DateTime::parse_from_rfc3339(&recorded).ok()? == first).then_some(())
    })
    .await;
    harness.cluster.cleanup().await;
}
