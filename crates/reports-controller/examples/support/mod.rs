//! What the examples share: the Pod Security restricted profile's ClusterPolicies and the pods
//! evaluated against it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The conformance corpus' `pod-security` folder.
pub const DEFAULT_POLICIES: &str = "/work/shared/conformance/kyverno-policies/pod-security";

/// Every fourth pod misses the restricted profile's securityContext.
pub fn compliant(index: usize) -> bool {
    !index.is_multiple_of(4)
}

/// The pod-level and container-level securityContext of a compliant pod, or empty ones.
pub fn security_context(compliant: bool) -> (Value, Value) {
    if compliant {
        (
            json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}),
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}),
        )
    } else {
        (json!({}), json!({}))
    }
}

/// A one-container pod, compliant with the restricted profile or not.
pub fn pod(namespace: &str, name: &str, compliant: bool) -> Value {
    let (pod_context, container_context) = security_context(compliant);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "scale"}},
        "spec": {
            "securityContext": pod_context,
            "containers": [{"name": "app", "image": "nginx:1.27", "securityContext": container_context}]
        }
    })
}

/// The ClusterPolicies of the restricted profile: `baseline/*/<name>.yaml` and
/// `restricted/*/<name>.yaml` under `root`.
pub fn load_policies(root: &Path) -> anyhow::Result<Vec<Value>> {
    let mut policies = Vec::new();
    for level in ["baseline", "restricted"] {
        let folder = root.join(level);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read {}", folder.display()))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect();
        entries.sort();
        for dir in entries {
            let Some(name) = dir.file_name().and_then(|name| name.to_str()) else {
                continue;
            };
            let file = dir.join(format!("{name}.yaml"));
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let policy: Value = serde_saphyr::from_str(&text)
                .with_context(|| format!("{} is not YAML", file.display()))?;
            if policy["kind"] == "ClusterPolicy" {
                policies.push(policy);
            }
        }
    }
    if policies.is_empty() {
        bail!("no ClusterPolicy under {}", root.display());
    }
    Ok(policies)
}
