//! `cargo xtask render-manifests [--check]`: renders `deploy/manifests/install.yaml` from the
//! Helm chart in `deploy/helm/kyverno` (with the helm that the kubectl wheel ships).
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kyverno_deploy::{Helm, install_manifest};

/// The install manifest, relative to the workspace root.
const INSTALL_MANIFEST: &str = "deploy/manifests/install.yaml";

/// The helm binary that `kubectl-from-wheel.sh` unpacks beside `kubectl`.
pub fn helm_beside(kubectl: &Path) -> PathBuf {
    kubectl
        .parent()
        .and_then(Path::parent)
        .map(|layer| layer.join("helm/helm"))
        .unwrap_or_else(|| PathBuf::from("helm"))
}

/// Writes the install manifest, or with `check` fails with a diff when the committed one differs
/// from the chart.
pub fn render_manifests(root: &Path, helm: &Helm, check: bool) -> anyhow::Result<()> {
    let wanted = install_manifest(helm).context("rendering the chart")?;
    let path = root.join(INSTALL_MANIFEST);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == wanted {
        return Ok(());
    }
    if check {
        let diff = similar::TextDiff::from_lines(&current, &wanted);
        bail!(
            "{INSTALL_MANIFEST} is stale; run `cargo xtask render-manifests`:\n{}",
            diff.unified_diff().context_radius(2).header(
                &format!("{INSTALL_MANIFEST} (committed)"),
                &format!("{INSTALL_MANIFEST} (from the chart)")
            )
        );
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, wanted).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {INSTALL_MANIFEST}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_is_looked_for_beside_the_kubectl_folder() {
        let helm = helm_beside(Path::new("/cache/kubectl-v35/kubectl/kubectl"));
        assert_eq!(helm, Path::new("/cache/kubectl-v35/helm/helm"));
    }

    #[test]
    fn check_reports_a_stale_manifest() {
        let Ok(helm) = Helm::find() else {
            assert!(
                std::env::var("KYVERNO_E2E_REQUIRE_KUBECTL").as_deref() != Ok("1"),
                "helm not found and KYVERNO_E2E_REQUIRE_KUBECTL=1"
            );
            return;
        };
        let root =
            std::env::temp_dir().join(format!("kyverno-rs-manifests-{}", std::process::id()));
        render_manifests(&root, &helm, false).expect("renders");
        render_manifests(&root, &helm, true).expect("a fresh manifest passes the check");
        std::fs::write(root.join(INSTALL_MANIFEST), "stale\n").expect("writable");
        let error = render_manifests(&root, &helm, true).expect_err("a stale manifest fails");
        assert!(
            error.to_string().contains("install.yaml is stale"),
            "{error}"
        );
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}
