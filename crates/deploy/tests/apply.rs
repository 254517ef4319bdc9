//! The rendered chart applied with kubectl (`kubectl apply --server-side -f`): the committed
//! `deploy/manifests/install.yaml` (CRDs included), then the chart rendered with non-default
//! values (hooks and Pod Security policies included) over it. On apiserver-sim by default; with
//! `KYVERNO_E2E_KUBECONFIG` against that cluster with `--dry-run=server` (nothing is installed).
//!
//! kubectl is `$KUBECTL` or the first `kubectl` on `PATH`; without one the test is skipped,
//! unless `KYVERNO_E2E_REQUIRE_KUBECTL=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use apiserver_sim::ApiServerSim;
use common::{NON_DEFAULT_VALUES, helm};
use kyverno_deploy::{TemplateOptions, chart_dir, workspace_root};

fn find_kubectl() -> Option<PathBuf> {
    if let Some(kubectl) = std::env::var_os("KUBECTL") {
        return Some(PathBuf::from(kubectl));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|path| path.is_file())
    })
}

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
    dry_run: bool,
}

impl Kubectl {
    /// `kubectl apply --server-side -f file`; returns stdout, failing the test on an error.
    async fn apply(&self, file: &Path) -> String {
        let mut args = vec![
            "apply".to_owned(),
            "--server-side".to_owned(),
            "--force-conflicts".to_owned(),
            "-f".to_owned(),
            file.display().to_string(),
        ];
        if self.dry_run {
            args.push("--dry-run=server".to_owned());
        }
        self.ok(&args).await
    }

    async fn ok(&self, args: &[String]) -> String {
        let output = tokio::time::timeout(
            // Generous: the CRDs are large and the machine may be loaded.
            Duration::from_secs(300),
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
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_manifest_and_non_default_render_apply_cleanly() {
    let Some(helm) = helm() else { return };
    let Some(binary) = find_kubectl() else {
        assert!(
            std::env::var("KYVERNO_E2E_REQUIRE_KUBECTL").as_deref() != Ok("1"),
            "kubectl not found and KYVERNO_E2E_REQUIRE_KUBECTL=1"
        );
        eprintln!("skipped: no kubectl on PATH and KUBECTL unset");
        return;
    };
    let dir = std::env::temp_dir().join(format!("kyverno-rs-deploy-apply-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let real_cluster = std::env::var_os("KYVERNO_E2E_KUBECONFIG").map(PathBuf::from);
    let sim = match real_cluster {
        Some(_) => None,
        None => Some(
            ApiServerSim::start_default()
                .await
                .expect("simulator starts"),
        ),
    };
    let kubeconfig = match (&real_cluster, &sim) {
        (Some(path), _) => path.clone(),
        (None, Some(sim)) => {
            let path = dir.join("kubeconfig");
            sim.write_kubeconfig(&path).expect("kubeconfig written");
            path
        }
        (None, None) => unreachable!("a simulator runs without a real cluster"),
    };
    let kubectl = Kubectl {
        binary,
        kubeconfig,
        cache: dir.join("cache"),
        dry_run: real_cluster.is_some(),
    };

    let install = workspace_root().join("deploy/manifests/install.yaml");
    let out = kubectl.apply(&install).await;
    for object in [
        "namespace/kyverno",
        "customresourcedefinition.apiextensions.k8s.io/clusterpolicies.kyverno.io",
        "deployment.apps/kyverno-admission-controller",
        "deployment.apps/kyverno-background-controller",
        "deployment.apps/kyverno-cleanup-controller",
        "deployment.apps/kyverno-reports-controller",
        "service/kyverno-svc",
        "configmap/kyverno",
        "cronjob.batch/kyverno-cleanup-ephemeral-reports",
        "poddisruptionbudget.policy/kyverno-admission-controller",
        "clusterrole.rbac.authorization.k8s.io/kyverno:admission-controller",
    ] {
        assert!(
            out.contains(&format!("{object} serverside-applied")),
            "{object} missing:\n{out}"
        );
    }

    if real_cluster.is_none() {
        let rendered = helm
            .template(
                &chart_dir(),
                NON_DEFAULT_VALUES,
                TemplateOptions {
                    include_crds: false,
                    include_hooks: true,
                },
            )
            .expect("non-default render");
        let file = dir.join("non-default.yaml");
        std::fs::write(&file, rendered).expect("scratch file");
        let out = kubectl.apply(&file).await;
        assert!(
            out.contains("clusterpolicy.kyverno.io/restrict-seccomp-strict serverside-applied"),
            "{out}"
        );
        assert!(
            out.contains("job.batch/kyverno-webhooks-cleanup serverside-applied"),
            "{out}"
        );
        let deployments = kubectl
            .ok(&[
                "get".to_owned(),
                "deployments".to_owned(),
                "-n".to_owned(),
                "kyverno".to_owned(),
                "-o".to_owned(),
                "jsonpath={.items[?(@.metadata.name==\"kyverno-admission-controller\")].spec.replicas}".to_owned(),
            ])
            .await;
        assert_eq!(deployments, "5", "the second apply changed the replicas");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
