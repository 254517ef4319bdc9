//! The resource types the simulator serves: the built-in kinds and the ones added by CRDs.

use serde_json::{Value, json};

/// One additional printer column (from a CRD's `additionalPrinterColumns` or built in).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Column header as the API reports it (kubectl upper-cases it).
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// Optional OpenAPI format.
    pub format: String,
    /// Human-readable description.
    pub description: String,
    /// 0 for the default view, higher for `-o wide`.
    pub priority: i64,
    /// Simple JSONPath (`.a.b.c`, `.a[0].b`) evaluated against the object.
    pub json_path: String,
}

/// One served group/version/resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group, `""` for the core group.
    pub group: String,
    /// Version served at this entry.
    pub version: String,
    /// Kind of the objects.
    pub kind: String,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Short names (`kubectl get po`).
    pub short_names: Vec<String>,
    /// Categories (`kubectl get all`).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether a `/status` subresource exists (status is then ignored on the main resource).
    pub status_subresource: bool,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// Whether this type comes from a CustomResourceDefinition.
    pub custom: bool,
    /// Printer columns for Table responses (besides Name).
    pub printer_columns: Vec<PrinterColumn>,
    /// The storage version (objects of all served versions share one store).
    pub storage_version: String,
}

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Key of the shared store of all versions: `group/plural` (for both views of Events: the
    /// core group's).
    pub fn store_key(&self) -> String {
        if crate::events::is_events_v1(self) {
            return crate::events::STORE_KEY.to_string();
        }
        format!("{}/{}", self.group, self.plural)
    }

    /// Whether objects are stored in this type's form (the storage version, and not the
    /// converted view of a kind stored under another group).
    pub fn is_storage_form(&self) -> bool {
        self.version == self.storage_version && !crate::events::is_events_v1(self)
    }

    /// A stored object as this type shows it: converted (Events), with this version's
    /// `apiVersion` and `kind`.
    pub fn present(&self, obj: Value) -> Value {
        let mut obj = if crate::events::is_events_v1(self) {
            crate::events::from_core(obj)
        } else {
            obj
        };
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(self.api_version()));
            m.insert("kind".into(), Value::String(self.kind.clone()));
        }
        obj
    }

    /// An object of this type in the form it is stored in (the inverse of [`Self::present`]).
    pub fn to_storage(&self, obj: Value) -> Value {
        if crate::events::is_events_v1(self) {
            crate::events::to_core(obj)
        } else {
            obj
        }
    }

    /// `plural` or `plural.group`, as it appears in error messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    generation: bool,
}

#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    status: bool,
    generation: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        short,
        namespaced,
        status,
        generation,
    }
}

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        &["ns"],
        false,
        true,
        false,
    ),
    b("", "v1", "Pod", "pods", &["po"], true, true, true),
    b(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        &["cm"],
        true,
        false,
        false,
    ),
    b("", "v1", "Secret", "secrets", &[], true, false, false),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        &["sa"],
        true,
        false,
        false,
    ),
    b("", "v1", "Service", "services", &["svc"], true, true, false),
    b("", "v1", "Event", "events", &["ev"], true, false, false),
    b("", "v1", "Node", "nodes", &["no"], false, true, false),
    b(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        &["limits"],
        true,
        false,
        false,
    ),
    b(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        &["quota"],
        true,
        true,
        false,
    ),
    b(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        &["pvc"],
        true,
        true,
        false,
    ),
    b(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        &["ev"],
        true,
        false,
        false,
    ),
    b(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        &["deploy"],
        true,
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        &["rs"],
        true,
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        &["sts"],
        true,
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        &["ds"],
        true,
        true,
        true,
    ),
    b(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        &[],
        true,
        false,
        false,
    ),
    b("batch", "v1", "Job", "jobs", &[], true, true, true),
    b(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        &["cj"],
        true,
        true,
        true,
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        &[],
        true,
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        &[],
        true,
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        &[],
        true,
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        &[],
        false,
        false,
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        &[],
        false,
        false,
        false,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        &["netpol"],
        true,
        false,
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        &["ing"],
        true,
        true,
        true,
    ),
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        &["pdb"],
        true,
        true,
        true,
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        &[],
        false,
        false,
        true,
    ),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        &[],
        false,
        false,
        true,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        &["crd", "crds"],
        false,
        true,
        true,
    ),
];

fn col(name: &str, type_: &str, json_path: &str, priority: i64) -> PrinterColumn {
    PrinterColumn {
        name: name.to_string(),
        type_: type_.to_string(),
        format: String::new(),
        description: String::new(),
        priority,
        json_path: json_path.to_string(),
    }
}

/// The real server's Event columns (both views), Name last and only in the wide view. The
/// cells are computed from the stored (core) form (see `table`).
fn event_columns() -> Vec<PrinterColumn> {
    let mut name = col("Name", "string", ".metadata.name", 1);
    name.format = "name".to_string();
    vec![
        col("Last Seen", "string", "@eventLastSeen", 0),
        col("Type", "string", ".type", 0),
        col("Reason", "string", ".reason", 0),
        col("Object", "string", "@eventObject", 0),
        col("Subobject", "string", "@eventSubobject", 1),
        col("Source", "string", "@eventSource", 1),
        col("Message", "string", "@eventMessage", 0),
        col("First Seen", "string", "@eventFirstSeen", 1),
        col("Count", "string", "@eventCount", 1),
        name,
    ]
}

/// Columns of the built-in kinds (a subset of the real server's printers).
fn builtin_columns(group: &str, plural: &str) -> Vec<PrinterColumn> {
    let age = col("Age", "date", ".metadata.creationTimestamp", 0);
    let mut cols = match (group, plural) {
        ("", "namespaces") => vec![col("Status", "string", ".status.phase", 0)],
        ("", "pods") => vec![
            col("Ready", "string", "@podReady", 0),
            col("Status", "string", ".status.phase", 0),
            col("Restarts", "integer", "@podRestarts", 0),
        ],
        ("", "configmaps") => vec![col("Data", "integer", "@dataCount", 0)],
        ("", "secrets") => vec![
            col("Type", "string", ".type", 0),
            col("Data", "integer", "@dataCount", 0),
        ],
        ("", "services") => vec![
            col("Type", "string", ".spec.type", 0),
            col("Cluster-IP", "string", ".spec.clusterIP", 0),
        ],
        ("apps", "deployments") => vec![
            col("Ready", "string", "@readyOfReplicas", 0),
            col("Up-to-date", "integer", ".status.updatedReplicas", 0),
            col("Available", "integer", ".status.availableReplicas", 0),
        ],
        ("" | "events.k8s.io", "events") => return event_columns(),
        ("coordination.k8s.io", "leases") => {
            vec![col("Holder", "string", ".spec.holderIdentity", 0)]
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let mut created = col("Created At", "string", ".metadata.creationTimestamp", 0);
            created.format = "date-time".to_string();
            return vec![created];
        }
        _ => vec![],
    };
    cols.push(age);
    cols
}

/// Every built-in resource type.
pub fn builtins() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|bi| ResourceType {
            group: bi.group.to_string(),
            version: bi.version.to_string(),
            kind: bi.kind.to_string(),
            plural: bi.plural.to_string(),
            singular: bi.kind.to_lowercase(),
            short_names: bi.short.iter().map(|s| (*s).to_string()).collect(),
            categories: if matches!(
                bi.plural,
                "pods"
                    | "services"
                    | "deployments"
                    | "replicasets"
                    | "statefulsets"
                    | "daemonsets"
                    | "jobs"
                    | "cronjobs"
            ) {
                vec!["all".to_string()]
            } else {
                vec![]
            },
            namespaced: bi.namespaced,
            status_subresource: bi.status,
            generation: bi.generation,
            custom: false,
            printer_columns: builtin_columns(bi.group, bi.plural),
            storage_version: bi.version.to_string(),
        })
        .collect()
}

/// The resource types a CRD object (JSON) defines, one per served version.
pub fn from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = crd.get("spec").ok_or("CRD without spec")?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .ok_or("spec.group is required")?;
    let names = spec.get("names").ok_or("spec.names is required")?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .ok_or("spec.names.plural is required")?;
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("spec.names.kind is required")?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(names.get("shortNames"));
    let categories = strings(names.get("categories"));
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(format!(
                "spec.scope must be Namespaced or Cluster, got {other:?}"
            ));
        }
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is required")?;
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or_else(|| versions.first())
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .ok_or("no storage version")?
        .to_string();
    let mut out = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("version without name")?;
        let mut printer_columns: Vec<PrinterColumn> = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: c
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        type_: c
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("string")
                            .to_string(),
                        format: c
                            .get("format")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        description: c
                            .get("description")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: c
                            .get("jsonPath")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if printer_columns.is_empty() {
            printer_columns.push(col("Age", "date", ".metadata.creationTimestamp", 0));
        }
        let status_subresource = v
            .get("subresources")
            .and_then(|s| s.get("status"))
            .is_some();
        out.push(ResourceType {
            group: group.to_string(),
            version: name.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            short_names: short_names.clone(),
            categories: categories.clone(),
            namespaced,
            status_subresource,
            generation: true,
            custom: true,
            printer_columns,
            storage_version: storage_version.clone(),
        });
    }
    Ok(out)
}

/// Sort key for Kubernetes versions: GA before beta before alpha, higher numbers first,
/// non-conforming names last alphabetically (the apimachinery "kube-aware" order).
pub fn version_priority(
    v: &str,
) -> (
    u8,
    u8,
    std::cmp::Reverse<u64>,
    std::cmp::Reverse<u64>,
    String,
) {
    let parse = || -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 0, 0));
        }
        let (stage, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (2, n)
        } else {
            return None;
        };
        let minor: u64 = num.parse().ok()?;
        Some((major, stage, minor))
    };
    match parse() {
        Some((major, stage, minor)) => (
            0,
            stage,
            std::cmp::Reverse(major),
            std::cmp::Reverse(minor),
            String::new(),
        ),
        None => (
            1,
            0,
            std::cmp::Reverse(0),
            std::cmp::Reverse(0),
            v.to_string(),
        ),
    }
}

/// The registry of served resource types.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    /// A registry with the built-in kinds.
    pub fn with_builtins() -> Self {
        Self { types: builtins() }
    }

    /// All served types.
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// Finds a type by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Finds any version of a type by group and kind (storage version preferred).
    pub fn find_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        let mut candidates: Vec<&ResourceType> = self
            .types
            .iter()
            .filter(|t| t.group == group && t.kind == kind)
            .collect();
        candidates.sort_by_key(|t| (t.version != t.storage_version, version_priority(&t.version)));
        candidates.into_iter().next()
    }

    /// Finds any version of a type by group and plural (storage version preferred).
    pub fn find_plural(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        let mut candidates: Vec<&ResourceType> = self
            .types
            .iter()
            .filter(|t| t.group == group && t.plural == plural)
            .collect();
        candidates.sort_by_key(|t| (t.version != t.storage_version, version_priority(&t.version)));
        candidates.into_iter().next()
    }

    /// Replaces the types of one CRD (identified by group and plural).
    pub fn set_crd(&mut self, group: &str, plural: &str, types: Vec<ResourceType>) {
        self.remove_crd(group, plural);
        self.types.extend(types);
    }

    /// Removes the types of one CRD.
    pub fn remove_crd(&mut self, group: &str, plural: &str) {
        self.types
            .retain(|t| !(t.custom && t.group == group && t.plural == plural));
    }

    /// Groups (other than core) with their versions in priority order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            if t.group.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        for (_, versions) in &mut groups {
            versions.sort_by_key(|v| version_priority(v));
        }
        groups
    }

    /// The `APIResourceList` of one group/version, or `None` when nothing is served there.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let types: Vec<&ResourceType> = self
            .types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect();
        if types.is_empty() {
            return None;
        }
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let mut resources = Vec::new();
        for t in types {
            let mut r = json!({
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            });
            if !t.short_names.is_empty() {
                r["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                r["categories"] = json!(t.categories);
            }
            resources.push(r);
            if t.status_subresource {
                resources.push(json!({
                    "name": format!("{}/status", t.plural),
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }))
    }

    /// The `APIGroup` document of one group.
    pub fn group_doc(&self, group: &str) -> Option<Value> {
        let (name, versions) = self.groups().into_iter().find(|(g, _)| g == group)?;
        Some(group_json(&name, &versions))
    }

    /// The `APIGroupList` document.
    pub fn group_list(&self) -> Value {
        let groups: Vec<Value> = self
            .groups()
            .iter()
            .map(|(g, versions)| group_json(g, versions))
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or_default();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": vs,
        "preferredVersion": {"groupVersion": format!("{name}/{preferred}"), "version": preferred},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order_is_kube_aware() {
        let mut v = vec![
            "v1alpha1", "v2beta1", "v1", "v2", "foo", "v1beta2", "v1beta1",
        ];
        v.sort_by_key(|s| version_priority(s));
        assert_eq!(
            v,
            [
                "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"
            ]
        );
    }
}
