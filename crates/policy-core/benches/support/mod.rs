//! What the benchmarks share: the Pod Security Standards policies of Kyverno's policy library,
//! read in place from the shared conformance corpus, and the resources they are evaluated on.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use kyverno_policy_core::engine::{
    Environment, LoadedPolicy, NoExternalData, SuppliedValues, validate,
};
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::RuleStatus;
use serde_json::{Value, json};

/// Result type of the benchmark set-up.
pub type SetupResult<T> = Result<T, Box<dyn Error>>;

/// The `shared/` folder beside the repository, or `$KYVERNO_SHARED_DIR`.
fn shared_dir() -> PathBuf {
    std::env::var_os("KYVERNO_SHARED_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    )
}

/// Every ClusterPolicy under `kyverno-policies/pod-security/` (baseline, restricted and the
/// `podSecurity` subrule policies), loaded with their autogen rules, in path order.
pub fn pod_security_policies() -> SetupResult<Vec<LoadedPolicy>> {
    cluster_policies("pod-security")
}

/// Every ClusterPolicy under `kyverno-policies/<set>/`, loaded with their autogen rules, in path
/// order.
pub fn cluster_policies(set: &str) -> SetupResult<Vec<LoadedPolicy>> {
    policy_documents(set, "ClusterPolicy")?
        .into_iter()
        .map(|document| {
            let policy: ClusterPolicy = serde_json::from_value(document)?;
            Ok(LoadedPolicy::from_cluster_policy(policy)?)
        })
        .collect()
}

/// The documents of kind `kind` under `kyverno-policies/<set>/` (one policy per file, test
/// folders skipped), in path order; an error if there are none.
pub fn policy_documents(set: &str, kind: &str) -> SetupResult<Vec<Value>> {
    let root = shared_dir().join("conformance/kyverno-policies").join(set);
    let mut files = Vec::new();
    collect_yaml_files(&root, &mut files)
        .map_err(|e| format!("reading {}: {e} (set KYVERNO_SHARED_DIR)", root.display()))?;
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let document: Value =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        if document.get("kind").and_then(Value::as_str) == Some(kind) {
            documents.push(document);
        }
    }
    if documents.is_empty() {
        return Err(format!("no {kind} under {}", root.display()).into());
    }
    Ok(documents)
}

/// The policy files of `dir`, skipping the test folders (`.kyverno-test`, `.chainsaw-test`).
fn collect_yaml_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_yaml_files(&path, files)?;
        } else if name.ends_with(".yaml") {
            files.push(path);
        }
    }
    Ok(())
}

/// A container as the restricted profile wants it.
fn hardened_container(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "tmp", "mountPath": "/tmp"}]
    })
}

/// The pod spec of a typical hardened workload: two containers and an init container, restricted
/// security contexts, configMap and emptyDir volumes.
fn hardened_pod_spec() -> Value {
    json!({
        "serviceAccountName": "web",
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "initContainers": [hardened_container("migrate", "registry.example.com/web/migrate:1.4.2")],
        "containers": [
            hardened_container("web", "registry.example.com/web/server:1.4.2"),
            hardened_container("metrics", "registry.example.com/observability/exporter:0.9.1"),
        ],
        "volumes": [
            {"name": "config", "configMap": {"name": "web-config"}},
            {"name": "tmp", "emptyDir": {}}
        ]
    })
}

fn pod(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"app.kubernetes.io/name": "web", "app.kubernetes.io/version": "1.4.2"},
            "annotations": {"prometheus.io/scrape": "true"}
        },
        "spec": spec
    })
}

/// A Pod that satisfies every control of the restricted profile.
pub fn hardened_pod() -> Value {
    pod("web-7d9f8c6b5-x2x7q", hardened_pod_spec())
}

/// A Pod that breaks several baseline and restricted controls: host namespaces and ports,
/// a hostPath volume, a privileged container with added capabilities, no seccomp profile.
pub fn non_compliant_pod() -> Value {
    let mut spec = hardened_pod_spec();
    spec["hostNetwork"] = json!(true);
    spec["hostPID"] = json!(true);
    spec["securityContext"] = json!({});
    spec["volumes"][1] =
        json!({"name": "tmp", "hostPath": {"path": "/var/run", "type": "Directory"}});
    let web = &mut spec["containers"][0];
    web["ports"][0]["hostPort"] = json!(8080);
    web["securityContext"] = json!({
        "privileged": true,
        "allowPrivilegeEscalation": true,
        "capabilities": {"add": ["SYS_ADMIN", "NET_RAW"]},
        "procMount": "Unmasked",
        "seLinuxOptions": {"type": "spc_t"}
    });
    pod("web-debug", spec)
}

/// A Deployment whose Pod template is the hardened Pod's: checked by the autogen rules.
pub fn hardened_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "web", "app.kubernetes.io/version": "1.4.2"}},
                "spec": hardened_pod_spec()
            }
        }
    })
}

/// An admission request creating `resource`. Benchmarks build one per evaluation, as the
/// webhook receives a new request each time: the engine caches what it derives from a request
/// (its variables, its CEL activation) on the request itself.
pub fn create_request(resource: &Arc<Value>) -> ResourceRequest {
    ResourceRequest::new(Arc::clone(resource)).with_operation(AdmissionOperation::Create)
}

/// How many rules of an evaluation ended with each status.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Rules that passed.
    pub pass: usize,
    /// Rules that failed.
    pub fail: usize,
    /// Rules skipped (preconditions, anchors, exceptions).
    pub skip: usize,
    /// Rules in error, or any other status.
    pub other: usize,
}

impl Tally {
    /// Counts one rule that ended with `status`.
    pub fn count(&mut self, status: RuleStatus) {
        match status {
            RuleStatus::Pass => self.pass += 1,
            RuleStatus::Fail => self.fail += 1,
            RuleStatus::Skip => self.skip += 1,
            _ => self.other += 1,
        }
    }
}

/// One full profile evaluation: every policy's validate rules against `request`, as the
/// admission webhook does for one request, with no external data, exceptions or values.
pub fn evaluate_profile(policies: &[LoadedPolicy], request: &ResourceRequest) -> Tally {
    let values = SuppliedValues::default();
    let environment = Environment {
        provider: &NoExternalData,
        exceptions: &[],
        values: &values,
    };
    let mut tally = Tally::default();
    for policy in policies {
        for rule in validate(policy, request, &environment).rules {
            tally.count(rule.status);
        }
    }
    tally
}

/// The three benchmarked resources, named, after checking that the engine judges them as
/// intended with `policies` ([`check_judgement`]), so that the numbers measure the real work.
pub fn scenarios(policies: &[LoadedPolicy]) -> SetupResult<Vec<(&'static str, Arc<Value>)>> {
    let scenarios = resources();
    for (name, resource) in &scenarios {
        let tally = evaluate_profile(policies, &create_request(resource));
        check_judgement("pod-security", name, tally)?;
    }
    Ok(scenarios)
}

/// The three benchmarked resources, named: `hardened-pod`, `non-compliant-pod` and
/// `deployment`.
pub fn resources() -> Vec<(&'static str, Arc<Value>)> {
    vec![
        ("hardened-pod", Arc::new(hardened_pod())),
        ("non-compliant-pod", Arc::new(non_compliant_pod())),
        ("deployment", Arc::new(hardened_deployment())),
    ]
}

/// Checks that the policy set `set` judged the resource `name` as intended: the hardened ones
/// pass every rule, the non-compliant one fails some.
pub fn check_judgement(set: &str, name: &str, tally: Tally) -> SetupResult<()> {
    eprintln!("{set} on {name}: {tally:?}");
    let as_intended = match name {
        "non-compliant-pod" => tally.fail > 0,
        _ => tally.fail == 0 && tally.other == 0 && tally.pass > 0,
    };
    if as_intended {
        Ok(())
    } else {
        Err(format!("{set}: {name} is not judged as intended: {tally:?}").into())
    }
}
