//! A real kubectl against the cluster under test: finding the binary, and running it with a
//! kubeconfig and a cache folder of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use apiserver_sim::ApiServerSim;

use crate::LIMIT;

/// The kubectl binary: `$KUBECTL`, else the first `kubectl` on `PATH`.
pub fn find_kubectl() -> Option<PathBuf> {
    if let Some(kubectl) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(kubectl));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|path| path.is_file())
    })
}

/// The kubectl binary (see [`find_kubectl`]), or `None` when there is none, after saying that
/// `skipped` is skipped; with `KYVERNO_E2E_REQUIRE_KUBECTL=1` (set by `cargo xtask test`) a
/// missing kubectl fails the test instead.
pub fn kubectl_or_skip(skipped: &str) -> Option<PathBuf> {
    let kubectl = find_kubectl();
    if kubectl.is_none() {
        assert!(
            std::env::var("KYVERNO_E2E_REQUIRE_KUBECTL").as_deref() != Ok("1"),
            "kubectl not found and KYVERNO_E2E_REQUIRE_KUBECTL=1"
        );
        eprintln!("SKIPPED {skipped}: no kubectl on PATH and KUBECTL unset");
    }
    kubectl
}

/// A kubectl binary bound to one cluster, with a cache folder of its own.
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
    /// The upper bound of one kubectl run ([`LIMIT`] unless changed).
    pub timeout: Duration,
}

impl Kubectl {
    /// kubectl at `binary` talking to `sim` (its kubeconfig written into the scratch folder
    /// `dir`), or, without a simulator, to the cluster of `KYVERNO_E2E_KUBECONFIG`.
    pub fn new(binary: PathBuf, sim: Option<&ApiServerSim>, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("scratch folder");
        let kubeconfig = match sim {
            Some(sim) => {
                let path = dir.join("kubeconfig");
                sim.write_kubeconfig(&path).expect("kubeconfig written");
                path
            }
            None => std::env::var_os("KYVERNO_E2E_KUBECONFIG")
                .map(PathBuf::from)
                .expect("a simulator, or the cluster of KYVERNO_E2E_KUBECONFIG"),
        };
        Self {
            binary,
            kubeconfig,
            cache: dir.join("cache"),
            timeout: LIMIT,
        }
    }

    /// Runs `kubectl args`: whether it succeeded, its stdout and its stderr.
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let output = tokio::time::timeout(
            self.timeout,
            tokio::process::Command::new(&self.binary)
                .args(args)
                .arg("--cache-dir")
                .arg(&self.cache)
                .env("KUBECONFIG", &self.kubeconfig)
                .env_remove("KUBERNETES_SERVICE_HOST")
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
        .expect("kubectl runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs `kubectl args` and returns its stdout, failing the test when kubectl fails.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (succeeded, stdout, stderr) = self.run(args).await;
        assert!(succeeded, "kubectl {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }
}
