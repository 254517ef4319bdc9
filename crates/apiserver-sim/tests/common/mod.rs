//! The e2e harness: start the simulator with the repository's `crds/`, hand out clients,
//! bound every wait in time.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use apiserver_sim::{ApiServerSim, SimConfig};

pub mod webhook;

/// A cluster under test: the real cluster of `KYVERNO_E2E_KUBECONFIG` when that is set,
/// else a fresh simulator (kept alive here), with a namespace of its own for the test.
pub struct Cluster {
    /// Admin client.
    pub client: kube::Client,
    /// The simulator, when not on a real cluster.
    pub sim: Option<ApiServerSim>,
    /// A fresh namespace for this test.
    pub ns: String,
}

impl Cluster {
    /// Deletes the test namespace (on a real cluster; a simulator just goes away).
    pub async fn cleanup(self) {
        if self.sim.is_none() {
            let nss: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                kube::Api::all(self.client.clone());
            let _ = nss.delete(&self.ns, &Default::default()).await;
        }
    }
}

/// Whether the tests run against a real cluster.
pub fn on_real_cluster() -> bool {
    std::env::var_os("KYVERNO_E2E_KUBECONFIG").is_some()
}

/// The cluster under test (see [`Cluster`]).
pub async fn cluster() -> Cluster {
    let (client, sim) = match std::env::var("KYVERNO_E2E_KUBECONFIG") {
        Ok(path) => {
            let kc = kube::config::Kubeconfig::read_from(&path)
                .expect("KYVERNO_E2E_KUBECONFIG is readable");
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .expect("kubeconfig is valid");
            (kube::Client::try_from(cfg).expect("client"), None)
        }
        Err(_) => {
            let s = sim().await;
            (s.client().await.expect("client"), Some(s))
        }
    };
    let ns = format!("e2e-{}", &apiserver_sim::new_uid()[..8]);
    let nss: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let obj =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).expect("namespace");
    nss.create(&Default::default(), &obj)
        .await
        .expect("test namespace is created");
    Cluster { client, sim, ns }
}

/// The upper bound of any single wait in these tests.
pub const LIMIT: Duration = Duration::from_secs(60);

/// The repository's generated CRD folder.
pub fn repo_crds() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds")
}

/// A simulator with the repository's CRDs loaded.
pub async fn sim() -> ApiServerSim {
    sim_with(SimConfig::default()).await
}

/// A simulator with a configuration (the repository's CRDs are added).
pub async fn sim_with(config: SimConfig) -> ApiServerSim {
    ApiServerSim::start(config.with_crd_dir(repo_crds()))
        .await
        .expect("simulator starts")
}

/// Awaits a future, failing the test after [`LIMIT`].
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {LIMIT:?}: {what}"),
    }
}

/// Polls a condition every 20 ms until it holds, failing after [`LIMIT`].
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        loop {
            if f().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
