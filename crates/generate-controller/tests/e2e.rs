//! The background controller against apiserver-sim (or the cluster of `KYVERNO_E2E_KUBECONFIG`):
//! UpdateRequests written as the admission controller writes them, the synchronize paths,
//! policy deletion, mutate-existing, failures, and the leader dying mid-queue.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kyverno_api::kyverno::v2::update_request::UpdateRequest;
use kyverno_e2e_support::{cluster, create, delete, eventually, until};
use kyverno_generate_controller::controller::{self, Settings};
use kyverno_generate_controller::metrics::Metrics;
use kyverno_generate_controller::workers::WorkerSettings;
use kyverno_runtime::leader::LeaderElection;
use kyverno_runtime::singleton::run_while_leading;
use serde_json::{Value, json};

mod common;
use common::{SETUP_RULES, admission_update_request, setup_policy};

/// Settings with the UpdateRequests in the test namespace.
fn settings(ns: &str, workers: usize) -> Settings {
    Settings {
        kyverno_namespace: ns.to_owned(),
        config_map: "kyverno".to_owned(),
        workers: WorkerSettings {
            workers,
            max_retries: 2,
            retry_backoff: Duration::from_millis(100),
        },
    }
}

/// Runs the controller (without leader election) until dropped.
struct Running(tokio::task::JoinHandle<()>);

impl Running {
    fn start(client: &kube::Client, settings: Settings, metrics: Metrics) -> Self {
        Self(tokio::spawn(controller::run(
            client.clone(),
            settings,
            metrics,
        )))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A namespace labelled for this test run's policies.
fn namespace(name: &str, run: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "labels": {"e2e-run": run}}})
}

/// Creates the namespace `name` labelled for the run of `ns` and the UpdateRequest the
/// admission controller writes for it with `policy`'s `rules`: the namespace, as stored.
async fn queue_trigger(
    client: &kube::Client,
    ns: &str,
    name: &str,
    policy: &str,
    rules: &[&str],
) -> Value {
    let created = create(client, namespace(name, ns)).await;
    let trigger = serde_json::to_value(&created).unwrap();
    create(
        client,
        admission_update_request(ns, policy, rules, &trigger),
    )
    .await;
    trigger
}

/// The object, if it exists.
async fn get(client: &kube::Client, object: &Value) -> Option<Value> {
    let api = kyverno_e2e_support::api_for(client, object).await;
    api.get_opt(object["metadata"]["name"].as_str().unwrap())
        .await
        .unwrap()
        .map(|found| serde_json::to_value(found).unwrap())
}

fn reference(api_version: &str, kind: &str, ns: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns}})
}

/// Waits until no UpdateRequest is left in namespace `ns`: all processed, or dropped.
async fn queue_drained(client: &kube::Client, ns: &str, what: &str) {
    until(what, || async {
        Api::<UpdateRequest>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
}

/// The object, once it exists.
async fn appears(client: &kube::Client, what: &str, object: &Value) -> Value {
    eventually(what, || get(client, object)).await
}

/// Waits until the object no longer exists.
async fn disappears(client: &kube::Client, what: &str, object: &Value) {
    until(what, || async { get(client, object).await.is_none() }).await;
}

/// Waits until the object exists with `expected` at JSON `pointer`.
async fn holds_at(
    client: &kube::Client,
    what: &str,
    object: &Value,
    pointer: &str,
    expected: Value,
) {
    until(what, || async {
        get(client, object)
            .await
            .is_some_and(|current| current.pointer(pointer) == Some(&expected))
    })
    .await;
}

/// Waits until the Secret `source` is labelled as the source of clones.
async fn tagged_as_clone_source(client: &kube::Client, source: &Value) {
    until("the source is tagged as a clone source", || async {
        get(client, source).await.is_some_and(|source| {
            source["metadata"]["labels"]
                .get("generate.kyverno.io/clone-source")
                .is_some()
        })
    })
    .await;
}

async fn merge_patch(client: &kube::Client, object: &Value, patch: Value) {
    let api = kyverno_e2e_support::api_for(client, object).await;
    api.patch(
        object["metadata"]["name"].as_str().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_new_namespace_gets_its_security_setup_kept_in_sync() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy_name = format!("setup-{ns}");
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": ns},
               "type": "Opaque", "data": {"token": "b25l"}}),
    )
    .await;
    create(&client, setup_policy(&policy_name, &ns, &ns)).await;
    let _controller = Running::start(&client, settings(&ns, 4), Metrics::unexported());

    let mut teams = Vec::new();
    for team in ["a", "b"] {
        let name = format!("{ns}-team-{team}");
        let trigger = queue_trigger(&client, &ns, &name, &policy_name, &SETUP_RULES).await;
        teams.push((name, trigger));
    }
    for (team, trigger) in &teams {
        let netpol = reference(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            team,
            "default-deny",
        );
        let generated = appears(&client, "the default-deny NetworkPolicy", &netpol).await;
        let labels = &generated["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "kyverno");
        assert_eq!(
            labels["generate.kyverno.io/policy-name"],
            policy_name.as_str()
        );
        assert_eq!(labels["generate.kyverno.io/rule-name"], "default-deny");
        assert_eq!(labels["generate.kyverno.io/trigger-kind"], "Namespace");
        assert_eq!(
            labels["generate.kyverno.io/trigger-uid"],
            trigger["metadata"]["uid"]
        );
        assert_eq!(
            generated["spec"]["policyTypes"],
            json!(["Ingress", "Egress"])
        );
        let quota = reference("v1", "ResourceQuota", team, "default-quota");
        let quota = appears(&client, "the ResourceQuota", &quota).await;
        assert_eq!(quota["spec"]["hard"]["pods"], "10");
        let secret = reference("v1", "Secret", team, "regcred");
        let secret = appears(&client, "the cloned Secret", &secret).await;
        assert_eq!(secret["data"]["token"], "b25l");
        assert_eq!(
            secret["metadata"]["labels"]["generate.kyverno.io/source-name"],
            "regcred"
        );
        assert_eq!(
            secret["metadata"]["labels"]["generate.kyverno.io/source-namespace"],
            ns.as_str()
        );
    }
    let source = reference("v1", "Secret", &ns, "regcred");
    tagged_as_clone_source(&client, &source).await;
    queue_drained(&client, &ns, "no UpdateRequest left").await;

    // Edited by hand, the synchronized NetworkPolicy is reverted.
    let (team_a, _) = &teams[0];
    let netpol = reference(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        team_a,
        "default-deny",
    );
    merge_patch(
        &client,
        &netpol,
        json!({"spec": {"policyTypes": ["Ingress"]}}),
    )
    .await;
    holds_at(
        &client,
        "the edited NetworkPolicy is reverted",
        &netpol,
        "/spec/policyTypes",
        json!(["Ingress", "Egress"]),
    )
    .await;
    // Deleted by hand, it comes back.
    delete(&client, &netpol).await;
    appears(&client, "the deleted NetworkPolicy is restored", &netpol).await;

    // The source Secret changes: every clone follows.
    merge_patch(&client, &source, json!({"data": {"token": "dHdv"}})).await;
    for (team, _) in &teams {
        let clone = reference("v1", "Secret", team, "regcred");
        holds_at(
            &client,
            "the clone follows its source",
            &clone,
            "/data/token",
            json!("dHdv"),
        )
        .await;
    }

    // The trigger is deleted: the admission controller asks for its downstream to go.
    let (team_b, trigger_b) = &teams[1];
    delete(&client, trigger_b).await;
    let mut removal = admission_update_request(&ns, &policy_name, &SETUP_RULES, trigger_b);
    for context in removal["spec"]["ruleContext"].as_array_mut().unwrap() {
        context["deleteDownstream"] = json!(true);
    }
    removal["spec"]["deleteDownstream"] = json!(true);
    create(&client, removal).await;
    let netpol_b = reference(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        team_b,
        "default-deny",
    );
    let clone_b = reference("v1", "Secret", team_b, "regcred");
    until(
        "the synchronized downstream of the deleted trigger is removed",
        || async {
            get(&client, &netpol_b).await.is_none() && get(&client, &clone_b).await.is_none()
        },
    )
    .await;
    queue_drained(&client, &ns, "no UpdateRequest left").await;
    cluster.cleanup().await;
}

fn configmap_policy(name: &str, run: &str, orphan: bool) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"rules": [{
            "name": "settings",
            "match": {"any": [{"resources": {"kinds": ["Namespace"], "selector": {"matchLabels": {"e2e-run": run}}}}]},
            "generate": {
                "synchronize": true, "generateExisting": true,
                "orphanDownstreamOnPolicyDelete": orphan,
                "apiVersion": "v1", "kind": "ConfigMap", "name": name,
                "namespace": "{{request.object.metadata.name}}",
                "data": {"data": {"from": name}}
            }
        }]}
    })
}

#[tokio::test]
async fn deleting_the_policy_deletes_or_orphans_its_downstream() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let trigger = format!("{ns}-t");
    create(&client, namespace(&trigger, &ns)).await;
    let deleting = configmap_policy(&format!("delete-{ns}"), &ns, false);
    let orphaning = configmap_policy(&format!("orphan-{ns}"), &ns, true);
    create(&client, deleting.clone()).await;
    create(&client, orphaning.clone()).await;
    let _controller = Running::start(&client, settings(&ns, 2), Metrics::unexported());

    let deleted = reference("v1", "ConfigMap", &trigger, &format!("delete-{ns}"));
    let orphaned = reference("v1", "ConfigMap", &trigger, &format!("orphan-{ns}"));
    until(
        "generateExisting generates for the existing namespace",
        || async {
            get(&client, &deleted).await.is_some() && get(&client, &orphaned).await.is_some()
        },
    )
    .await;

    // Changing a synchronized rule's data updates its downstream.
    let mut changed = deleting.clone();
    changed["spec"]["rules"][0]["generate"]["data"]["data"]["from"] = json!("changed");
    merge_patch(&client, &deleting, json!({"spec": changed["spec"]})).await;
    holds_at(
        &client,
        "the downstream follows the policy's data",
        &deleted,
        "/data/from",
        json!("changed"),
    )
    .await;

    delete(&client, &deleting).await;
    delete(&client, &orphaning).await;
    disappears(
        &client,
        "the downstream of the deleted policy is gone",
        &deleted,
    )
    .await;
    assert!(
        get(&client, &orphaned).await.is_some(),
        "orphanDownstreamOnPolicyDelete keeps the downstream"
    );
    queue_drained(&client, &ns, "no UpdateRequest left").await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn mutate_existing_labels_configmaps_that_existed_before_the_policy() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    for (name, team) in [("a", Some("red")), ("b", None), ("c", Some("blue"))] {
        let mut data = BTreeMap::new();
        if let Some(team) = team {
            data.insert("team", team);
        }
        create(
            &client,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "namespace": ns, "labels": {"e2e": "target"}},
                   "data": data}),
        )
        .await;
    }
    // Every ConfigMap gets the team of its data as a label; `b` has none: its patch fails.
    create(
        &client,
        json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": format!("label-{ns}")},
            "spec": {"rules": [{
                "name": "team-label",
                "match": {"any": [{"resources": {"kinds": ["Namespace"], "names": [ns]}}]},
                "mutate": {
                    "mutateExistingOnPolicyUpdate": true,
                    "targets": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": ns,
                                 "selector": {"matchLabels": {"e2e": "target"}}}],
                    "patchStrategicMerge": {"metadata": {"labels": {"team": "{{ target.data.team }}"}}}
                }
            }]}
        }),
    )
    .await;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let _controller = Running::start(&client, settings(&ns, 2), metrics);

    for (name, team) in [("a", "red"), ("c", "blue")] {
        let configmap = reference("v1", "ConfigMap", &ns, name);
        holds_at(
            &client,
            "the existing ConfigMap is labelled",
            &configmap,
            "/metadata/labels/team",
            json!(team),
        )
        .await;
    }
    queue_drained(&client, &ns, "the failing request is retried, then dropped").await;
    let b = get(&client, &reference("v1", "ConfigMap", &ns, "b"))
        .await
        .unwrap();
    assert!(b["metadata"]["labels"].get("team").is_none(), "{b}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for expected in [
        "kyverno_controller_drop_total{controller_name=\"background-controller\"} 1",
        "rule_name=\"team-label\",rule_result=\"pass\",rule_type=\"mutate\",rule_execution_cause=\"background_scan\"}",
        "rule_name=\"team-label\",rule_result=\"error\",rule_type=\"mutate\",rule_execution_cause=\"background_scan\"}",
        "kyverno_policy_execution_duration_seconds_count{",
        "kyverno_controller_requeue_total{controller_name=\"background-controller\",num_requeues=\"2\"} 1",
        "kyverno_controller_reconcile_total{controller_name=\"background-controller\"} ",
    ] {
        assert!(text.contains(expected), "{expected} missing in\n{text}");
    }
    cluster.cleanup().await;
}

/// A replica with leader election, on a thread and runtime of its own so that killing it stops
/// everything it runs (its election and its work).
struct Replica {
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Replica {
    fn start(client: &kube::Client, ns: &str, identity: &str) -> Self {
        let election = LeaderElection {
            namespace: ns.to_owned(),
            lease_name: "kyverno-background-controller".to_owned(),
            holder_id: identity.to_owned(),
            lease_ttl: Duration::from_secs(3),
            retry_period: Duration::from_millis(500),
        };
        let (client, settings) = (client.clone(), settings(ns, 1));
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the replica");
            let work_client = client.clone();
            runtime.block_on(async move {
                let leading = run_while_leading(client, election, move || {
                    controller::run(work_client.clone(), settings.clone(), Metrics::unexported())
                });
                tokio::select! {
                    () = leading => {}
                    _ = killed => {}
                }
            });
            // Dropping the runtime cancels every task of the replica.
            drop(runtime);
        });
        Self {
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Kills the replica and waits until nothing of it runs any more.
    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the replica's thread ends");
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_replica_finishes_the_queue_when_the_leader_dies() {
    const TRIGGERS: usize = 40;
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy_name = format!("queue-{ns}");
    let mut policy = configmap_policy(&policy_name, &ns, false);
    policy["spec"]["rules"][0]["generate"]["generateExisting"] = json!(false);
    create(&client, policy).await;
    for index in 0..TRIGGERS {
        queue_trigger(
            &client,
            &ns,
            &format!("{ns}-q{index}"),
            &policy_name,
            &["settings"],
        )
        .await;
    }
    let mut first = Replica::start(&client, &ns, "first");
    let generated = || async {
        Api::<k8s_openapi::api::core::v1::ConfigMap>::all(client.clone())
            .list(
                &ListParams::default()
                    .labels(&format!("generate.kyverno.io/policy-name={policy_name}")),
            )
            .await
            .unwrap()
            .items
    };
    until("the first replica leads and generates", || async {
        !generated().await.is_empty()
    })
    .await;
    let second = Replica::start(&client, &ns, "second");
    tokio::task::spawn_blocking(move || first.kill())
        .await
        .unwrap();
    let done_by_first = generated().await.len();
    eprintln!("the leader was killed after {done_by_first} of {TRIGGERS} triggers");
    queue_drained(&client, &ns, "the second replica finishes the queue").await;
    let all = generated().await;
    let mut namespaces: Vec<_> = all
        .iter()
        .map(|configmap| configmap.metadata.namespace.clone().unwrap())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    assert_eq!(all.len(), TRIGGERS, "one ConfigMap per trigger, none twice");
    assert_eq!(namespaces.len(), TRIGGERS);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &ns);
    eventually("the second replica holds the Lease", || async {
        let lease = leases
            .get_opt("kyverno-background-controller")
            .await
            .unwrap()?;
        (lease.spec?.holder_identity.as_deref() == Some("second")).then_some(())
    })
    .await;
    tokio::task::spawn_blocking(move || drop(second))
        .await
        .unwrap();
    cluster.cleanup().await;
}

/// The UpdateRequest of a `policies.kyverno.io` policy for `trigger` (CREATE), as the
/// admission controller writes it: the policy named as its only rule.
fn cel_update_request(ns: &str, request_type: &str, policy: &str, trigger: &Value) -> Value {
    let mut request = admission_update_request(ns, policy, &[policy], trigger);
    request["spec"]["requestType"] = json!(request_type);
    request
}

/// The default-deny NetworkPolicy of every namespace labelled for the run, from a
/// GeneratingPolicy.
fn generating_policy(name: &str, run: &str, policy_types: &[&str]) -> Value {
    let types: Vec<String> = policy_types
        .iter()
        .map(|kind| format!("\"{kind}\""))
        .collect();
    json!({
        "apiVersion": "policies.kyverno.io/v1", "kind": "GeneratingPolicy",
        "metadata": {"name": name},
        "spec": {
            "evaluation": {"synchronize": {"enabled": true}, "generateExisting": {"enabled": true}},
            "matchConstraints": {
                "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                   "operations": ["CREATE"], "resources": ["namespaces"]}],
                "objectSelector": {"matchLabels": {"e2e-run": run}}
            },
            "generate": [{"expression": format!(
                "generator.Apply(object.metadata.name, [{{\"apiVersion\": dyn(\"networking.k8s.io/v1\"), \
                 \"kind\": dyn(\"NetworkPolicy\"), \"metadata\": dyn({{\"name\": \"default-deny\"}}), \
                 \"spec\": dyn({{\"podSelector\": dyn({{}}), \"policyTypes\": dyn([{}])}})}}])",
                types.join(", ")
            )}]
        }
    })
}

#[tokio::test]
async fn a_generating_policy_creates_a_network_policy_in_every_new_namespace() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy_name = format!("gpol-{ns}");
    let before = format!("{ns}-before");
    create(&client, namespace(&before, &ns)).await;
    let policy = generating_policy(&policy_name, &ns, &["Ingress", "Egress"]);
    create(&client, policy.clone()).await;
    let _controller = Running::start(&client, settings(&ns, 2), Metrics::unexported());

    let netpol = |team: &str| {
        reference(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            team,
            "default-deny",
        )
    };
    appears(
        &client,
        "generateExisting covers the namespace made before",
        &netpol(&before),
    )
    .await;
    let after = format!("{ns}-after");
    let created = create(&client, namespace(&after, &ns)).await;
    let trigger = serde_json::to_value(&created).unwrap();
    create(
        &client,
        cel_update_request(&ns, "cel-generate", &policy_name, &trigger),
    )
    .await;
    let generated = appears(
        &client,
        "the new namespace gets its NetworkPolicy",
        &netpol(&after),
    )
    .await;
    let labels = &generated["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kyverno");
    assert_eq!(
        labels["generate.kyverno.io/policy-name"],
        policy_name.as_str()
    );
    assert_eq!(labels["generate.kyverno.io/trigger-kind"], "Namespace");
    assert_eq!(labels["generate.kyverno.io/trigger-name"], after.as_str());
    assert_eq!(
        labels["generate.kyverno.io/trigger-uid"],
        trigger["metadata"]["uid"]
    );
    assert_eq!(
        generated["spec"]["policyTypes"],
        json!(["Ingress", "Egress"])
    );

    // Edited by hand, the synchronized NetworkPolicy is reverted. The edit is repeated until
    // the controller's watch on the kind (started once it first generated one) sees it.
    let edits = std::sync::atomic::AtomicU32::new(0);
    eventually("the edited NetworkPolicy is reverted", || async {
        let current = get(&client, &netpol(&after)).await?;
        let types = &current["spec"]["policyTypes"];
        if *types == json!(["Ingress", "Egress"]) && edits.load(Ordering::SeqCst) > 0 {
            return Some(());
        }
        let edit = edits.fetch_add(1, Ordering::SeqCst);
        merge_patch(
            &client,
            &netpol(&after),
            json!({"metadata": {"annotations": {"e2e-edit": edit.to_string()}},
                   "spec": {"policyTypes": ["Egress"]}}),
        )
        .await;
        None
    })
    .await;

    // The synchronized policy changes: every downstream NetworkPolicy follows.
    let changed = generating_policy(&policy_name, &ns, &["Ingress"]);
    merge_patch(&client, &policy, json!({"spec": changed["spec"]})).await;
    for team in [&before, &after] {
        holds_at(
            &client,
            "the NetworkPolicy follows the policy",
            &netpol(team),
            "/spec/policyTypes",
            json!(["Ingress"]),
        )
        .await;
    }

    // The trigger goes: the admission controller asks for its downstream to go.
    let mut removal = cel_update_request(&ns, "cel-generate", &policy_name, &trigger);
    removal["spec"]["ruleContext"][0]["deleteDownstream"] = json!(true);
    removal["spec"]["deleteDownstream"] = json!(true);
    removal["spec"]["context"]["admissionRequestInfo"]["operation"] = json!("DELETE");
    delete(&client, &trigger).await;
    create(&client, removal).await;
    disappears(
        &client,
        "the deleted namespace's NetworkPolicy is removed",
        &netpol(&after),
    )
    .await;

    // The policy goes (without orphanDownstreamOnPolicyDelete): so does its downstream.
    delete(&client, &policy).await;
    disappears(
        &client,
        "the deleted policy's downstream is removed",
        &netpol(&before),
    )
    .await;
    queue_drained(&client, &ns, "no UpdateRequest left").await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn a_mutating_policy_labels_configmaps_that_existed_before_it() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let trigger = format!("{ns}-m");
    create(&client, namespace(&trigger, &ns)).await;
    for name in ["a", "b"] {
        create(
            &client,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "namespace": ns, "labels": {"e2e-target": ns}}}),
        )
        .await;
    }
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "untouched", "namespace": ns}}),
    )
    .await;
    create(
        &client,
        json!({
            "apiVersion": "policies.kyverno.io/v1", "kind": "MutatingPolicy",
            "metadata": {"name": format!("mpol-{ns}")},
            "spec": {
                "evaluation": {"mutateExisting": {"enabled": true}},
                "matchConstraints": {
                    "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                       "operations": ["CREATE", "UPDATE"], "resources": ["namespaces"]}],
                    "objectSelector": {"matchLabels": {"e2e-run": ns}}
                },
                "targetMatchConstraints": {
                    "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                       "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}],
                    "objectSelector": {"matchLabels": {"e2e-target": ns}}
                },
                "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {
                    "expression": "Object{metadata: Object.metadata{labels: {\"mutated\": \"yes\"}}}"}}]
            }
        }),
    )
    .await;
    let _controller = Running::start(&client, settings(&ns, 2), Metrics::unexported());
    for name in ["a", "b"] {
        let configmap = reference("v1", "ConfigMap", &ns, name);
        holds_at(
            &client,
            "the existing target is labelled",
            &configmap,
            "/metadata/labels/mutated",
            json!("yes"),
        )
        .await;
    }
    queue_drained(&client, &ns, "no UpdateRequest left").await;
    let untouched = get(&client, &reference("v1", "ConfigMap", &ns, "untouched"))
        .await
        .unwrap();
    assert!(
        untouched["metadata"]
            .get("labels")
            .and_then(|labels| labels.get("mutated"))
            .is_none(),
        "not a target: {untouched}"
    );
    cluster.cleanup().await;
}

#[tokio::test]
async fn deleting_a_clone_source_deletes_its_synchronized_clones() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy_name = format!("clone-{ns}");
    let source = create(
        &client,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": ns},
               "type": "Opaque", "data": {"token": "b25l"}}),
    )
    .await;
    let source = serde_json::to_value(&source).unwrap();
    let mut policy = setup_policy(&policy_name, &ns, &ns);
    policy["spec"]["rules"] = json!([policy["spec"]["rules"][2].clone()]);
    create(&client, policy).await;
    let _controller = Running::start(&client, settings(&ns, 2), Metrics::unexported());
    let team = format!("{ns}-c");
    queue_trigger(&client, &ns, &team, &policy_name, &["registry-secret"]).await;
    let clone = reference("v1", "Secret", &team, "regcred");
    appears(&client, "the Secret is cloned", &clone).await;
    tagged_as_clone_source(&client, &source).await;
    delete(&client, &source).await;
    disappears(&client, "the clone goes with its source", &clone).await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn a_request_after_the_trigger_deletion_generates_nothing_again() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy_name = format!("race-{ns}");
    let mut policy = configmap_policy(&policy_name, &ns, false);
    policy["spec"]["rules"][0]["generate"]["generateExisting"] = json!(false);
    create(&client, policy).await;
    let _controller = Running::start(&client, settings(&ns, 1), Metrics::unexported());
    let team = format!("{ns}-r");
    let trigger = queue_trigger(&client, &ns, &team, &policy_name, &["settings"]).await;
    let generated = reference("v1", "ConfigMap", &team, &policy_name);
    appears(&client, "the ConfigMap is generated", &generated).await;
    queue_drained(&client, &ns, "no UpdateRequest left").await;

    // The trigger is being deleted: admission asks for its downstream to go, while a sync
    // request for it (queued by a background path) is still to come; the API server has not
    // removed the trigger yet.
    let mut removal = admission_update_request(&ns, &policy_name, &["settings"], &trigger);
    removal["spec"]["ruleContext"][0]["deleteDownstream"] = json!(true);
    removal["spec"]["deleteDownstream"] = json!(true);
    removal["spec"]["context"]["admissionRequestInfo"]["operation"] = json!("DELETE");
    create(&client, removal).await;
    let mut sync = admission_update_request(&ns, &policy_name, &["settings"], &trigger);
    sync["spec"]["context"] = json!({});
    create(&client, sync).await;
    queue_drained(&client, &ns, "both requests are processed").await;
    assert!(
        get(&client, &generated).await.is_none(),
        "the downstream of the deleted trigger was generated again"
    );
    delete(&client, &trigger).await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn a_policy_exception_exempts_namespaces_from_a_generating_policy() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy_name = format!("gpol-exc-{ns}");
    // Listed in name order, the exempted namespace's request is queued before the other's.
    let exempted = format!("{ns}-a-exempted");
    let plain = format!("{ns}-b-plain");
    let mut labelled = namespace(&exempted, &ns);
    labelled["metadata"]["labels"]["e2e-exempt"] = json!("yes");
    let exempted_trigger = serde_json::to_value(create(&client, labelled).await).unwrap();
    create(&client, namespace(&plain, &ns)).await;
    let exception = json!({
        "apiVersion": "policies.kyverno.io/v1beta1", "kind": "PolicyException",
        "metadata": {"name": "exempt-labelled", "namespace": ns},
        "spec": {
            "policyRefs": [{"name": policy_name, "kind": "GeneratingPolicy"}],
            "matchConditions": [{"name": "labelled",
                "expression": "object.metadata.?labels[?'e2e-exempt'].orValue('') == 'yes'"}]
        }
    });
    create(&client, exception.clone()).await;
    create(
        &client,
        generating_policy(&policy_name, &ns, &["Ingress", "Egress"]),
    )
    .await;
    let _controller = Running::start(&client, settings(&ns, 2), Metrics::unexported());

    let netpol = |team: &str| {
        reference(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            team,
            "default-deny",
        )
    };
    appears(
        &client,
        "generateExisting covers the namespace without the label",
        &netpol(&plain),
    )
    .await;
    queue_drained(&client, &ns, "both requests are processed").await;
    assert!(
        get(&client, &netpol(&exempted)).await.is_none(),
        "the exempted namespace got a NetworkPolicy"
    );

    // Once the exception is gone, the policy is compiled again without it.
    delete(&client, &exception).await;
    let netpol_of_exempted = netpol(&exempted);
    eventually(
        "without the exception, the labelled namespace gets its NetworkPolicy",
        || async {
            if let Some(found) = get(&client, &netpol_of_exempted).await {
                return Some(found);
            }
            // Asked again until the controller has seen the exception go.
            create(
                &client,
                cel_update_request(&ns, "cel-generate", &policy_name, &exempted_trigger),
            )
            .await;
            queue_drained(&client, &ns, "the request is processed").await;
            get(&client, &netpol_of_exempted).await
        },
    )
    .await;
    cluster.cleanup().await;
}

/// A GeneratingPolicy (cluster-wide, on the run's namespaces) or a NamespacedGeneratingPolicy
/// (on the ConfigMaps labelled `e2e-trigger` of `ns`), both named `name`, that generates the
/// ConfigMap `generated` into `ns`.
fn same_named_policy(name: &str, ns: &str, namespaced: bool, generated: &str) -> Value {
    let (kind, resource, selector) = if namespaced {
        (
            "NamespacedGeneratingPolicy",
            "configmaps",
            json!({"matchLabels": {"e2e-trigger": ns}}),
        )
    } else {
        (
            "GeneratingPolicy",
            "namespaces",
            json!({"matchLabels": {"e2e-run": ns}}),
        )
    };
    // A namespaced policy generates into its own namespace, which it does not name.
    let target = if namespaced {
        String::new()
    } else {
        format!("\"{ns}\", ")
    };
    let mut metadata = json!({"name": name});
    if namespaced {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "policies.kyverno.io/v1", "kind": kind,
        "metadata": metadata,
        "spec": {
            "evaluation": {"synchronize": {"enabled": true}, "generateExisting": {"enabled": true}},
            "matchConstraints": {
                "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                   "operations": ["CREATE"], "resources": [resource]}],
                "objectSelector": selector
            },
            "generate": [{"expression": format!(
                "generator.Apply({target}[{{\"apiVersion\": dyn(\"v1\"), \"kind\": dyn(\"ConfigMap\"), \
                 \"metadata\": dyn({{\"name\": \"{generated}\"}}), \"data\": dyn({{\"from\": \"{kind}\"}})}}])"
            )}]
        }
    })
}

#[tokio::test]
async fn same_named_generating_policies_keep_their_downstream_apart() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy_name = format!("twin-{ns}");
    create(&client, namespace(&format!("{ns}-t"), &ns)).await;
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "trigger", "namespace": ns, "labels": {"e2e-trigger": ns}}}),
    )
    .await;
    // Listed in name order, the cluster-wide policy's ConfigMap comes first: a deletion that
    // took it along would have removed it by the time the namespaced policy's is gone.
    let cluster_wide = same_named_policy(&policy_name, &ns, false, "a-cluster-wide");
    let namespaced = same_named_policy(&policy_name, &ns, true, "b-namespaced");
    create(&client, cluster_wide.clone()).await;
    create(&client, namespaced.clone()).await;
    let _controller = Running::start(&client, settings(&ns, 2), Metrics::unexported());

    let of_cluster_wide = reference("v1", "ConfigMap", &ns, "a-cluster-wide");
    let of_namespaced = reference("v1", "ConfigMap", &ns, "b-namespaced");
    let generated = appears(&client, "the GeneratingPolicy generates", &of_cluster_wide).await;
    assert_eq!(
        generated["metadata"]["labels"]["generate.kyverno.io/policy-namespace"],
        ""
    );
    let generated = appears(
        &client,
        "the NamespacedGeneratingPolicy generates",
        &of_namespaced,
    )
    .await;
    assert_eq!(
        generated["metadata"]["labels"]["generate.kyverno.io/policy-namespace"],
        ns.as_str()
    );
    queue_drained(&client, &ns, "no UpdateRequest left").await;

    delete(&client, &namespaced).await;
    disappears(
        &client,
        "the deleted NamespacedGeneratingPolicy's downstream is removed",
        &of_namespaced,
    )
    .await;
    assert!(
        get(&client, &of_cluster_wide).await.is_some(),
        "the GeneratingPolicy's downstream went with the NamespacedGeneratingPolicy"
    );

    delete(&client, &cluster_wide).await;
    disappears(
        &client,
        "the deleted GeneratingPolicy's downstream is removed",
        &of_cluster_wide,
    )
    .await;
    cluster.cleanup().await;
}

#[tokio::test]
async fn a_background_only_policy_generates_for_existing_triggers() {
    let cluster = cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let trigger = format!("{ns}-bg");
    create(&client, namespace(&trigger, &ns)).await;
    let name = format!("background-only-{ns}");
    let mut policy = configmap_policy(&name, &ns, false);
    policy["spec"]["admission"] = json!(false);
    create(&client, policy.clone()).await;
    let _controller = Running::start(&client, settings(&ns, 2), Metrics::unexported());
    let generated = reference("v1", "ConfigMap", &trigger, &name);
    appears(
        &client,
        "generateExisting runs a policy with admission: false",
        &generated,
    )
    .await;
    delete(&client, &policy).await;
    disappears(&client, "the policy's downstream goes with it", &generated).await;
    queue_drained(&client, &ns, "no UpdateRequest left").await;
    cluster.cleanup().await;
}
