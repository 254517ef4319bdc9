//! The end-to-end test harness shared by the controllers' e2e tests: a fresh apiserver-sim with
//! the repository's `crds/`, or the real cluster of `KYVERNO_E2E_KUBECONFIG`; each test gets a
//! namespace of its own. Without that variable the tests run on the simulator, and fail instead
//! when `KYVERNO_E2E_REQUIRE_CLUSTER=1`.
//!
//! This crate is only used by tests: its helpers panic with a message on failure, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use apiserver_sim::{ApiServerSim, SimConfig};

pub mod kubectl;
pub mod reports;

/// A cluster under test.
pub struct Cluster {
    /// Admin client.
    pub client: kube::Client,
    /// The simulator, when not on a real cluster.
    pub sim: Option<ApiServerSim>,
    /// A fresh namespace for this test.
    pub ns: String,
}

impl Cluster {
    /// Deletes the test namespace on a real cluster.
    pub async fn cleanup(self) {
        if self.sim.is_none() {
            let nss: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                kube::Api::all(self.client.clone());
            let _ = nss.delete(&self.ns, &Default::default()).await;
        }
    }
}

/// Whether the tests run against the real cluster of `KYVERNO_E2E_KUBECONFIG`.
pub fn on_real_cluster() -> bool {
    std::env::var_os("KYVERNO_E2E_KUBECONFIG").is_some()
}

/// Whether a simulator-only test (one that starts, stops or calls controllers in this process)
/// must be skipped, saying so loudly: true on a real cluster.
pub fn skip_on_real_cluster(test: &str) -> bool {
    let skip = on_real_cluster();
    if skip {
        eprintln!(
            "SKIPPED {test}: simulator-only (it starts and stops controllers in this process)"
        );
    }
    skip
}

/// The cluster under test (see [`Cluster`]).
pub async fn cluster() -> Cluster {
    let (client, sim) = match std::env::var("KYVERNO_E2E_KUBECONFIG") {
        Ok(path) => {
            let kc = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig readable");
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .expect("kubeconfig is valid");
            (kube::Client::try_from(cfg).expect("client"), None)
        }
        Err(_) => {
            assert!(
                std::env::var("KYVERNO_E2E_REQUIRE_CLUSTER").as_deref() != Ok("1"),
                "KYVERNO_E2E_REQUIRE_CLUSTER=1 but KYVERNO_E2E_KUBECONFIG is not set"
            );
            eprintln!("KYVERNO_E2E_KUBECONFIG not set: running on apiserver-sim");
            let sim = ApiServerSim::start(SimConfig::default().with_crd_dir(repo_crds()))
                .await
                .expect("simulator starts");
            (sim.client().await.expect("client"), Some(sim))
        }
    };
    let ns = format!("e2e-{}", &apiserver_sim::new_uid()[..8]);
    create(
        &client,
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await;
    Cluster { client, sim, ns }
}

/// The repository's generated CRD folder, found from the test's own package (`CARGO_MANIFEST_DIR`
/// at run time: one build directory may serve several checkouts).
pub fn repo_crds() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../../crds")
}

/// The upper bound of any single wait in the e2e tests.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Polls `f` every 50 ms until it gives `Some`, failing after [`LIMIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let polled = tokio::time::timeout(LIMIT, async {
        loop {
            if let Some(value) = f().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    match polled {
        Ok(value) => value,
        Err(_) => panic!("timed out after {LIMIT:?}: {what}"),
    }
}

/// Polls `condition` every 50 ms until it holds, failing after [`LIMIT`].
pub async fn until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(what, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await;
}

/// The API of the kind of `object` (discovered).
pub async fn api_for(
    client: &kube::Client,
    object: &serde_json::Value,
) -> kube::Api<kube::api::DynamicObject> {
    let api_version = object["apiVersion"].as_str().unwrap();
    let kind = object["kind"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    match object["metadata"]["namespace"].as_str() {
        Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
            kube::Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => kube::Api::all_with(client.clone(), &resource),
    }
}

/// Creates an object, returning it as stored.
pub async fn create(client: &kube::Client, object: serde_json::Value) -> kube::api::DynamicObject {
    let api = api_for(client, &object).await;
    let object: kube::api::DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&Default::default(), &object).await.unwrap()
}

/// Creates namespace `name` unless it exists already.
pub async fn ensure_namespace(client: &kube::Client, name: &str) {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    match api.create(&Default::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("namespace {name}: {error}"),
    }
}

/// Deletes an object.
pub async fn delete(client: &kube::Client, object: &serde_json::Value) {
    let api = api_for(client, object).await;
    api.delete(
        object["metadata"]["name"].as_str().unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
}

/// The `events.k8s.io/v1` Events of namespace `ns` regarding an object named `name`.
pub async fn events_regarding(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Vec<k8s_openapi::api::events::v1::Event> {
    kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|event| {
            event
                .regarding
                .as_ref()
                .and_then(|regarding| regarding.name.as_deref())
                == Some(name)
        })
        .collect()
}

/// A ClusterPolicy in Audit requiring label `label` on `kind`s.
pub fn require_label_policy(name: &str, kind: &str, label: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": name, "annotations": {
            "policies.kyverno.io/category": "Best Practices",
            "policies.kyverno.io/severity": "medium"}},
        "spec": {
            "validationFailureAction": "Audit",
            "background": true,
            "rules": [{
                "name": format!("check-{label}"),
                "match": {"any": [{"resources": {"kinds": [kind]}}]},
                "validate": {
                    "message": format!("label '{label}' is required"),
                    "pattern": {"metadata": {"labels": {label: "?*"}}}
                }
            }]
        }
    })
}

/// A pod, with `labels`.
pub fn pod(ns: &str, name: &str, labels: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    })
}

/// An Audit ValidatingPolicy requiring label `team` on the pods of namespace `ns` (background
/// scans on, as by default; severity `medium`).
pub fn require_team(name: &str, ns: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {"name": name, "annotations": {"policies.kyverno.io/severity": "medium"}},
        "spec": {
            "validationActions": ["Audit"],
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
            "matchConditions": [{"name": "in-test-namespace",
                "expression": format!("object.metadata.namespace == '{ns}'")}],
            "validations": [{"expression": "has(object.metadata.labels.team)",
                "message": "label 'team' is required"}]
        }
    })
}
