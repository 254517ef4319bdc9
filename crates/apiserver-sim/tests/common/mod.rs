//! The e2e harness: start the simulator with the repository's `crds/`, hand out clients,
//! bound every wait in time.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use apiserver_sim::{ApiServerSim, SimConfig};

/// The upper bound of any single wait in these tests.
pub const LIMIT: Duration = Duration::from_secs(30);

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
