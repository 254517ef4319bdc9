//! The rendered chart applied with kubectl (`kubectl apply --server-side -f`): the committed
//! `deploy/manifests/install.yaml` (CRDs included), then the chart rendered with non-default
//! values (hooks and Pod Security policies included) over it. On apiserver-sim by default; with
//! `KYVERNO_E2E_KUBECONFIG` against that cluster with `--dry-run=server` (nothing is installed).
//!
//! kubectl is `$KUBECTL` or the first `kubectl` on `PATH`; without one the test is skipped,
//! unless `KYVERNO_E2E_REQUIRE_KUBECTL=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::Path;
use std::time::Duration;

use apiserver_sim::ApiServerSim;
use common::{NON_DEFAULT_VALUES, helm};
use kyverno_deploy::{TemplateOptions, chart_dir, workspace_root};
use kyverno_e2e_support::kubectl::{Kubectl, kubectl_or_skip};

/// `kubectl apply --server-side -f file`, with `--dry-run=server` when `dry_run`; returns stdout,
/// failing the test on an error.
async fn apply(kubectl: &Kubectl, file: &Path, dry_run: bool) -> String {
    let file = file.display().to_string();
    let mut args = vec!["apply", "--server-side", "--force-conflicts", "-f", &file];
    if dry_run {
        args.push("--dry-run=server");
    }
    kubectl.ok(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_manifest_and_non_default_render_apply_cleanly() {
    let Some(helm) = helm() else { return };
    let Some(binary) = kubectl_or_skip("install_manifest_and_non_default_render_apply_cleanly")
    else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("kyverno-rs-deploy-apply-{}", std::process::id()));
    let real_cluster = std::env::var_os("KYVERNO_E2E_KUBECONFIG").is_some();
    let sim = if real_cluster {
        None
    } else {
        Some(
            ApiServerSim::start_default()
                .await
                .expect("simulator starts"),
        )
    };
    let mut kubectl = Kubectl::new(binary, sim.as_ref(), &dir);
    // Generous: the CRDs are large and the machine may be loaded.
    kubectl.timeout = Duration::from_secs(300);

    let install = workspace_root().join("deploy/manifests/install.yaml");
    let out = apply(&kubectl, &install, real_cluster).await;
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

    if !real_cluster {
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
        let out = apply(&kubectl, &file, real_cluster).await;
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
                "get",
                "deployments",
                "-n",
                "kyverno",
                "-o",
                "jsonpath={.items[?(@.metadata.name==\"kyverno-admission-controller\")].spec.replicas}",
            ])
            .await;
        assert_eq!(deployments, "5", "the second apply changed the replicas");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
