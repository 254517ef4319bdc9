//! The Helm chart of `deploy/helm/kyverno`: running `helm` on it (`template`, `lint`), reading
//! the rendered objects back, and the install manifest `deploy/manifests/install.yaml` that
//! `cargo xtask render-manifests` writes from it.
//!
//! `helm` is `$HELM`, else the helm 4 that `crates/apiserver-sim/scripts/kubectl-from-wheel.sh`
//! unpacks beside kubectl, else the first `helm` on `PATH`.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The release name and namespace the install manifest is rendered for (upstream's).
pub const RELEASE: &str = "kyverno";

/// Why a chart could not be rendered or read.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// No helm binary was found.
    #[error("helm not found: set HELM or put helm on PATH")]
    NoHelm,
    /// helm could not be started.
    #[error("running {helm}: {source}")]
    Spawn {
        /// The helm binary.
        helm: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// helm ran and failed.
    #[error("helm {args} failed ({status}):\n{stderr}")]
    Helm {
        /// The arguments.
        args: String,
        /// The exit status.
        status: std::process::ExitStatus,
        /// What helm printed on stderr.
        stderr: String,
    },
    /// helm printed something that is not UTF-8.
    #[error("helm printed invalid UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
    /// The rendered text is not YAML.
    #[error("rendered manifests are not YAML: {0}")]
    Yaml(#[from] serde_saphyr::Error),
}

/// The repository's root (the workspace folder): the nearest folder holding `Cargo.lock` above
/// the package that cargo runs (`CARGO_MANIFEST_DIR` at run time), else above this crate's
/// source. Read at run time because one build directory serves several checkouts: a path
/// compiled in would point at whichever checkout built the library first.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(start)
}

/// The chart's folder.
pub fn chart_dir() -> PathBuf {
    workspace_root().join("deploy/helm/kyverno")
}

/// A helm binary.
#[derive(Clone, Debug)]
pub struct Helm {
    binary: PathBuf,
}

impl Helm {
    /// Uses `binary`.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
        }
    }

    /// `$HELM`, the helm unpacked beside the cached kubectl, or `helm` on `PATH`.
    pub fn find() -> Result<Self, DeployError> {
        if let Some(helm) = std::env::var_os("HELM") {
            return Ok(Self::new(helm));
        }
        let cached = std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/kyverno-rs/kubectl-v35/helm/helm"))
            .filter(|path| path.is_file());
        let on_path = || {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("helm"))
                    .find(|path| path.is_file())
            })
        };
        cached
            .or_else(on_path)
            .map(Self::new)
            .ok_or(DeployError::NoHelm)
    }

    /// The binary's path.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Runs helm with `args` and returns what it printed on stdout.
    pub fn run(&self, args: &[String]) -> Result<String, DeployError> {
        let output = Command::new(&self.binary)
            .args(args)
            // helm keeps caches and repository settings under these; none are needed.
            .env(
                "HELM_CACHE_HOME",
                std::env::temp_dir().join("kyverno-rs-helm/cache"),
            )
            .env(
                "HELM_CONFIG_HOME",
                std::env::temp_dir().join("kyverno-rs-helm/config"),
            )
            .env(
                "HELM_DATA_HOME",
                std::env::temp_dir().join("kyverno-rs-helm/data"),
            )
            .output()
            .map_err(|source| DeployError::Spawn {
                helm: self.binary.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(DeployError::Helm {
                args: args.join(" "),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// `helm template` of `chart` as release `kyverno` in namespace `kyverno` with
    /// `--set`-style `values` (`key=value`).
    pub fn template(
        &self,
        chart: &Path,
        values: &[&str],
        options: TemplateOptions,
    ) -> Result<String, DeployError> {
        let mut args = vec![
            "template".to_owned(),
            RELEASE.to_owned(),
            chart.display().to_string(),
            "--namespace".to_owned(),
            RELEASE.to_owned(),
        ];
        if options.include_crds {
            args.push("--include-crds".to_owned());
        }
        if !options.include_hooks {
            args.push("--no-hooks".to_owned());
        }
        for value in values {
            args.push("--set".to_owned());
            args.push((*value).to_owned());
        }
        self.run(&args)
    }

    /// `helm lint --strict` of `chart` with `--set`-style `values`; returns helm's report.
    pub fn lint(&self, chart: &Path, values: &[&str]) -> Result<String, DeployError> {
        let mut args = vec![
            "lint".to_owned(),
            "--strict".to_owned(),
            chart.display().to_string(),
        ];
        for value in values {
            args.push("--set".to_owned());
            args.push((*value).to_owned());
        }
        self.run(&args)
    }
}

/// What `helm template` includes besides the templates.
#[derive(Clone, Copy, Debug, Default)]
pub struct TemplateOptions {
    /// The chart's `crds/`.
    pub include_crds: bool,
    /// The hooks (the pre-delete webhook cleanup).
    pub include_hooks: bool,
}

/// The objects of a multi-document YAML text, empty documents left out.
pub fn objects(yaml: &str) -> Result<Vec<Value>, DeployError> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(yaml)?;
    Ok(documents
        .into_iter()
        .filter(|document| document.is_object())
        .collect())
}

/// `deploy/manifests/install.yaml`: the `kyverno` Namespace, then the chart rendered with its
/// default values and CRDs, without the hooks (a hook applied with kubectl would run at once).
pub fn install_manifest(helm: &Helm) -> Result<String, DeployError> {
    let rendered = helm.template(
        &chart_dir(),
        &[],
        TemplateOptions {
            include_crds: true,
            include_hooks: false,
        },
    )?;
    Ok(format!(
        "# Generated by `cargo xtask render-manifests` from deploy/helm/kyverno; do not edit.\n\
         # Install with: kubectl apply --server-side -f install.yaml\n\
         ---\n\
         apiVersion: v1\n\
         kind: Namespace\n\
         metadata:\n  name: {RELEASE}\n\
         {rendered}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_skip_empty_documents() {
        let parsed = objects("---\n# only a comment\n---\nkind: A\n---\n---\nkind: B\n")
            .expect("valid YAML");
        let kinds: Vec<&str> = parsed
            .iter()
            .filter_map(|object| object["kind"].as_str())
            .collect();
        assert_eq!(kinds, ["A", "B"]);
    }

    #[test]
    fn a_missing_helm_binary_is_an_error() {
        let helm = Helm::new("/nonexistent/helm");
        let error = helm
            .run(&["version".to_owned()])
            .expect_err("no such binary");
        assert!(matches!(error, DeployError::Spawn { .. }), "{error}");
    }
}
