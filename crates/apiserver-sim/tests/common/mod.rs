//! Simulators with the repository's `crds/`, and a bound on every wait (the cluster under test
//! and polling come from `kyverno-e2e-support`).
#![allow(dead_code)]

use std::future::Future;

use apiserver_sim::{ApiServerSim, SimConfig};
use kyverno_e2e_support::{LIMIT, repo_crds};

pub mod webhook;

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
