//! Kinds and the resources that serve them (`Pod` <-> `pods`), offline.
//!
//! Admission policies match requests by resource (`resourceRules` name plural resources such as
//! `pods` or `deployments/scale`), while files hold objects by kind. With a cluster the mapping
//! comes from API discovery; without one upstream's CLI uses a fixed discovery document of the
//! Kubernetes built-in API groups, which [`ResourceTable::builtin`] reproduces, and custom
//! resource definitions can be added ([`ResourceTable::add_crd`]). A kind is found as discovery's
//! REST mapper finds it: by group, version and exact kind, or by the kind in lower case.
use std::sync::LazyLock;

use k8s_openapi::api::admissionregistration::v1::NamedRuleWithOperations;
use serde_json::Value;

use crate::request::GroupVersionKind;

/// Group, version and resource (plural name, possibly with a `/subresource`) of an API
/// endpoint. The core group is the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupVersionResource {
    /// API group, empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `pods`.
    pub resource: String,
}

impl GroupVersionResource {
    /// A resource of the given group and version.
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
        }
    }

    /// Whether this is the core `v1` `namespaces` resource (namespace objects are
    /// cluster-scoped but carry their own name as namespace in admission requests).
    pub fn is_namespaces(&self) -> bool {
        self.group.is_empty() && self.version == "v1" && self.resource == "namespaces"
    }
}

/// How a kind is served: its resource and whether objects live in namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceMapping {
    /// The resource serving the kind.
    pub resource: GroupVersionResource,
    /// Whether objects of the kind are namespaced.
    pub namespaced: bool,
}

/// One resource of a discovery document. A subresource (`pods/status`) carries the kind it
/// accepts, which may belong to another group (`pods/eviction` takes `policy/v1` Eviction).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    group: String,
    version: String,
    /// `resource` or `resource/subresource`.
    name: String,
    kind: String,
    namespaced: bool,
    /// Group and version of `kind` when they differ from the resource's.
    kind_group_version: Option<(String, String)>,
}

impl Entry {
    fn is_subresource(&self) -> bool {
        self.name.contains('/')
    }

    fn mapping(&self) -> ResourceMapping {
        ResourceMapping {
            resource: GroupVersionResource::new(&self.group, &self.version, &self.name),
            namespaced: self.namespaced,
        }
    }
}

/// A set of served resources: the Kubernetes built-ins and any added custom resources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceTable {
    entries: Vec<Entry>,
    /// Group and preferred version, in discovery order.
    preferred_versions: Vec<(String, String)>,
}

/// Why a custom resource definition could not be added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid CustomResourceDefinition: missing {0}")]
pub struct InvalidCrd(&'static str);

impl ResourceTable {
    /// The Kubernetes built-in resources, as in upstream CLI's offline discovery document.
    pub fn builtin() -> &'static Self {
        &BUILTIN
    }

    /// Adds the resources of a `CustomResourceDefinition` (`apiextensions.k8s.io/v1`, as JSON):
    /// every served version, with its `status` and `scale` subresources.
    pub fn add_crd(&mut self, crd: &Value) -> Result<(), InvalidCrd> {
        let spec = crd.get("spec").ok_or(InvalidCrd("spec"))?;
        let group = text(spec.get("group"), "spec.group")?;
        let names = spec.get("names");
        let plural = text(names.and_then(|n| n.get("plural")), "spec.names.plural")?;
        let kind = text(names.and_then(|n| n.get("kind")), "spec.names.kind")?;
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or(InvalidCrd("spec.versions"))?;
        for version in versions {
            if version.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let name = text(version.get("name"), "spec.versions[].name")?;
            let mut add = |resource: String, kind: &str, kind_group_version| {
                self.entries.push(Entry {
                    group: group.to_owned(),
                    version: name.to_owned(),
                    name: resource,
                    kind: kind.to_owned(),
                    namespaced,
                    kind_group_version,
                });
            };
            add(plural.to_owned(), kind, None);
            let subresources = version.get("subresources");
            if subresources.and_then(|s| s.get("status")).is_some() {
                add(format!("{plural}/status"), kind, None);
            }
            if subresources.and_then(|s| s.get("scale")).is_some() {
                add(
                    format!("{plural}/scale"),
                    "Scale",
                    Some(("autoscaling".to_owned(), "v1".to_owned())),
                );
            }
            if !self.preferred_versions.iter().any(|(g, _)| g == group) {
                self.preferred_versions
                    .push((group.to_owned(), name.to_owned()));
            }
        }
        Ok(())
    }

    /// The resource serving `gvk` (upstream `RESTMapper.RESTMapping`): the kind must be served
    /// in exactly that group and version (the group's preferred version when `gvk.version` is
    /// empty); the kind matches exactly or in lower case. Subresources never serve a kind here.
    pub fn mapping(&self, gvk: &GroupVersionKind) -> Option<ResourceMapping> {
        let version = if gvk.version.is_empty() {
            self.preferred_versions
                .iter()
                .find(|(group, _)| *group == gvk.group)
                .map(|(_, version)| version.as_str())?
        } else {
            gvk.version.as_str()
        };
        self.entries
            .iter()
            .find(|entry| {
                !entry.is_subresource()
                    && entry.group == gvk.group
                    && entry.version == version
                    && (entry.kind == gvk.kind || is_lower_case_of(&gvk.kind, &entry.kind))
            })
            .map(Entry::mapping)
    }

    /// The kind accepted by `resource` (which may name a subresource, `pods/status`), upstream
    /// `RESTMapper.KindFor` extended to subresources.
    pub fn kind_for(&self, resource: &GroupVersionResource) -> Option<GroupVersionKind> {
        self.entries
            .iter()
            .find(|entry| {
                entry.group == resource.group
                    && entry.version == resource.version
                    && entry.name == resource.resource
            })
            .map(|entry| {
                let (group, version) = entry
                    .kind_group_version
                    .as_ref()
                    .map_or((&entry.group, &entry.version), |(g, v)| (g, v));
                GroupVersionKind {
                    group: group.clone(),
                    version: version.clone(),
                    kind: entry.kind.clone(),
                }
            })
    }

    /// Whether objects of `resource` (a resource without subresource) are namespaced; `None`
    /// when the resource is unknown.
    pub fn is_namespaced(&self, resource: &GroupVersionResource) -> Option<bool> {
        self.entries
            .iter()
            .find(|entry| {
                entry.group == resource.group
                    && entry.version == resource.version
                    && entry.name == resource.resource
            })
            .map(|entry| entry.namespaced)
    }

    fn from_static(groups: &[StaticGroup]) -> Self {
        let mut table = Self::default();
        for group in groups {
            table
                .preferred_versions
                .push((group.name.to_owned(), group.versions[0].to_owned()));
            for version in group.versions {
                for resource in group.resources {
                    table.entries.push(Entry {
                        group: group.name.to_owned(),
                        version: (*version).to_owned(),
                        name: resource.name.to_owned(),
                        kind: resource.kind.to_owned(),
                        namespaced: resource.namespaced,
                        kind_group_version: resource
                            .kind_group_version
                            .map(|(g, v)| (g.to_owned(), v.to_owned())),
                    });
                }
            }
        }
        table
    }
}

/// A non-empty string field of a CRD.
fn text<'a>(value: Option<&'a Value>, what: &'static str) -> Result<&'a str, InvalidCrd> {
    value
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .ok_or(InvalidCrd(what))
}

/// The resource Kubernetes guesses for a kind it does not know (upstream
/// `meta.UnsafeGuessKindToResource`): the lower-cased kind, pluralized with `es` after `s`,
/// `ies` for a final `y`, `s` otherwise; kinds ending in `endpoints` stay as they are.
pub fn guess_resource(kind: &str) -> String {
    let singular = kind.to_lowercase();
    if singular.is_empty() || singular.ends_with("endpoints") {
        return singular;
    }
    if singular.ends_with('s') {
        format!("{singular}es")
    } else if let Some(stem) = singular.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{singular}s")
    }
}

/// The resource upstream's CLI falls back to for a ValidatingPolicy when the kind of a resource
/// is not in the discovery document: the first resource named in `rules` that starts with the
/// lower-cased kind (`Certificate` finds `certificates`).
pub fn resource_named_in_rules<'a>(
    kind: &str,
    rules: impl IntoIterator<Item = &'a NamedRuleWithOperations>,
) -> Option<&'a str> {
    rules
        .into_iter()
        .flat_map(|rule| rule.resources.iter().flatten())
        .find(|resource| {
            resource
                .get(..kind.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(kind))
        })
        .map(String::as_str)
}

/// Whether `candidate` is `kind` in lower case (kinds are ASCII).
fn is_lower_case_of(candidate: &str, kind: &str) -> bool {
    candidate.len() == kind.len()
        && candidate
            .bytes()
            .zip(kind.bytes())
            .all(|(c, k)| c == k.to_ascii_lowercase())
}

/// A resource in the static discovery document.
struct StaticResource {
    name: &'static str,
    kind: &'static str,
    namespaced: bool,
    kind_group_version: Option<(&'static str, &'static str)>,
}

/// An API group of the static discovery document; the first version is the preferred one and
/// every version serves every resource.
struct StaticGroup {
    name: &'static str,
    versions: &'static [&'static str],
    resources: &'static [StaticResource],
}

const fn namespaced(name: &'static str, kind: &'static str) -> StaticResource {
    StaticResource {
        name,
        kind,
        namespaced: true,
        kind_group_version: None,
    }
}

const fn cluster(name: &'static str, kind: &'static str) -> StaticResource {
    StaticResource {
        name,
        kind,
        namespaced: false,
        kind_group_version: None,
    }
}

/// A namespaced subresource whose kind lives in another group.
const fn foreign(
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
) -> StaticResource {
    StaticResource {
        name,
        kind,
        namespaced: true,
        kind_group_version: Some((group, version)),
    }
}

/// Upstream CLI's `api-group-resources.json`.
static BUILTIN_GROUPS: &[StaticGroup] = &[
    StaticGroup {
        name: "",
        versions: &["v1"],
        resources: &[
            namespaced("bindings", "Binding"),
            cluster("componentstatuses", "ComponentStatus"),
            namespaced("configmaps", "ConfigMap"),
            namespaced("endpoints", "Endpoints"),
            namespaced("events", "Event"),
            namespaced("limitranges", "LimitRange"),
            cluster("namespaces", "Namespace"),
            cluster("namespaces/finalize", "Namespace"),
            cluster("namespaces/status", "Namespace"),
            cluster("nodes", "Node"),
            cluster("nodes/proxy", "NodeProxyOptions"),
            cluster("nodes/status", "Node"),
            namespaced("persistentvolumeclaims", "PersistentVolumeClaim"),
            namespaced("persistentvolumeclaims/status", "PersistentVolumeClaim"),
            cluster("persistentvolumes", "PersistentVolume"),
            cluster("persistentvolumes/status", "PersistentVolume"),
            namespaced("pods", "Pod"),
            namespaced("pods/attach", "PodAttachOptions"),
            namespaced("pods/binding", "Binding"),
            namespaced("pods/ephemeralcontainers", "Pod"),
            foreign("pods/eviction", "policy", "v1", "Eviction"),
            namespaced("pods/exec", "PodExecOptions"),
            namespaced("pods/log", "Pod"),
            namespaced("pods/portforward", "PodPortForwardOptions"),
            namespaced("pods/proxy", "PodProxyOptions"),
            namespaced("pods/status", "Pod"),
            namespaced("podtemplates", "PodTemplate"),
            namespaced("replicationcontrollers", "ReplicationController"),
            foreign("replicationcontrollers/scale", "autoscaling", "v1", "Scale"),
            namespaced("replicationcontrollers/status", "ReplicationController"),
            namespaced("resourcequotas", "ResourceQuota"),
            namespaced("resourcequotas/status", "ResourceQuota"),
            namespaced("secrets", "Secret"),
            namespaced("serviceaccounts", "ServiceAccount"),
            foreign(
                "serviceaccounts/token",
                "authentication.k8s.io",
                "v1",
                "TokenRequest",
            ),
            namespaced("services", "Service"),
            namespaced("services/proxy", "ServiceProxyOptions"),
            namespaced("services/status", "Service"),
        ],
    },
    StaticGroup {
        name: "apiregistration.k8s.io",
        versions: &["v1"],
        resources: &[
            cluster("apiservices", "APIService"),
            cluster("apiservices/status", "APIService"),
        ],
    },
    StaticGroup {
        name: "apps",
        versions: &["v1"],
        resources: &[
            namespaced("controllerrevisions", "ControllerRevision"),
            namespaced("daemonsets", "DaemonSet"),
            namespaced("daemonsets/status", "DaemonSet"),
            namespaced("deployments", "Deployment"),
            foreign("deployments/scale", "autoscaling", "v1", "Scale"),
            namespaced("deployments/status", "Deployment"),
            namespaced("replicasets", "ReplicaSet"),
            foreign("replicasets/scale", "autoscaling", "v1", "Scale"),
            namespaced("replicasets/status", "ReplicaSet"),
            namespaced("statefulsets", "StatefulSet"),
            foreign("statefulsets/scale", "autoscaling", "v1", "Scale"),
            namespaced("statefulsets/status", "StatefulSet"),
        ],
    },
    StaticGroup {
        name: "events.k8s.io",
        versions: &["v1"],
        resources: &[namespaced("events", "Event")],
    },
    StaticGroup {
        name: "authentication.k8s.io",
        versions: &["v1"],
        resources: &[
            cluster("selfsubjectreviews", "SelfSubjectReview"),
            cluster("tokenreviews", "TokenReview"),
        ],
    },
    StaticGroup {
        name: "authorization.k8s.io",
        versions: &["v1"],
        resources: &[
            namespaced("localsubjectaccessreviews", "LocalSubjectAccessReview"),
            cluster("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
            cluster("selfsubjectrulesreviews", "SelfSubjectRulesReview"),
            cluster("subjectaccessreviews", "SubjectAccessReview"),
        ],
    },
    StaticGroup {
        name: "autoscaling",
        versions: &["v2", "v1"],
        resources: &[
            namespaced("horizontalpodautoscalers", "HorizontalPodAutoscaler"),
            namespaced("horizontalpodautoscalers/status", "HorizontalPodAutoscaler"),
        ],
    },
    StaticGroup {
        name: "batch",
        versions: &["v1"],
        resources: &[
            namespaced("cronjobs", "CronJob"),
            namespaced("cronjobs/status", "CronJob"),
            namespaced("jobs", "Job"),
            namespaced("jobs/status", "Job"),
        ],
    },
    StaticGroup {
        name: "certificates.k8s.io",
        versions: &["v1"],
        resources: &[
            cluster("certificatesigningrequests", "CertificateSigningRequest"),
            cluster(
                "certificatesigningrequests/approval",
                "CertificateSigningRequest",
            ),
            cluster(
                "certificatesigningrequests/status",
                "CertificateSigningRequest",
            ),
        ],
    },
    StaticGroup {
        name: "networking.k8s.io",
        versions: &["v1"],
        resources: &[
            cluster("ingressclasses", "IngressClass"),
            namespaced("ingresses", "Ingress"),
            namespaced("ingresses/status", "Ingress"),
            namespaced("networkpolicies", "NetworkPolicy"),
        ],
    },
    StaticGroup {
        name: "policy",
        versions: &["v1"],
        resources: &[
            namespaced("poddisruptionbudgets", "PodDisruptionBudget"),
            namespaced("poddisruptionbudgets/status", "PodDisruptionBudget"),
        ],
    },
    StaticGroup {
        name: "rbac.authorization.k8s.io",
        versions: &["v1"],
        resources: &[
            cluster("clusterrolebindings", "ClusterRoleBinding"),
            cluster("clusterroles", "ClusterRole"),
            namespaced("rolebindings", "RoleBinding"),
            namespaced("roles", "Role"),
        ],
    },
    StaticGroup {
        name: "storage.k8s.io",
        versions: &["v1"],
        resources: &[
            cluster("csidrivers", "CSIDriver"),
            cluster("csinodes", "CSINode"),
            namespaced("csistoragecapacities", "CSIStorageCapacity"),
            cluster("storageclasses", "StorageClass"),
            cluster("volumeattachments", "VolumeAttachment"),
            cluster("volumeattachments/status", "VolumeAttachment"),
        ],
    },
    StaticGroup {
        name: "admissionregistration.k8s.io",
        versions: &["v1"],
        resources: &[
            cluster(
                "mutatingwebhookconfigurations",
                "MutatingWebhookConfiguration",
            ),
            cluster("validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
            cluster(
                "validatingadmissionpolicies/status",
                "ValidatingAdmissionPolicy",
            ),
            cluster(
                "validatingadmissionpolicybindings",
                "ValidatingAdmissionPolicyBinding",
            ),
            cluster(
                "validatingwebhookconfigurations",
                "ValidatingWebhookConfiguration",
            ),
        ],
    },
    StaticGroup {
        name: "apiextensions.k8s.io",
        versions: &["v1"],
        resources: &[
            cluster("customresourcedefinitions", "CustomResourceDefinition"),
            cluster(
                "customresourcedefinitions/status",
                "CustomResourceDefinition",
            ),
        ],
    },
    StaticGroup {
        name: "scheduling.k8s.io",
        versions: &["v1"],
        resources: &[cluster("priorityclasses", "PriorityClass")],
    },
    StaticGroup {
        name: "coordination.k8s.io",
        versions: &["v1"],
        resources: &[namespaced("leases", "Lease")],
    },
    StaticGroup {
        name: "node.k8s.io",
        versions: &["v1"],
        resources: &[cluster("runtimeclasses", "RuntimeClass")],
    },
    StaticGroup {
        name: "discovery.k8s.io",
        versions: &["v1"],
        resources: &[namespaced("endpointslices", "EndpointSlice")],
    },
    StaticGroup {
        name: "flowcontrol.apiserver.k8s.io",
        versions: &["v1"],
        resources: &[
            cluster("flowschemas", "FlowSchema"),
            cluster("flowschemas/status", "FlowSchema"),
            cluster("prioritylevelconfigurations", "PriorityLevelConfiguration"),
            cluster(
                "prioritylevelconfigurations/status",
                "PriorityLevelConfiguration",
            ),
        ],
    },
];

static BUILTIN: LazyLock<ResourceTable> =
    LazyLock::new(|| ResourceTable::from_static(BUILTIN_GROUPS));

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }

    fn resource(mapping: Option<ResourceMapping>) -> Option<(String, bool)> {
        mapping.map(|m| (m.resource.resource, m.namespaced))
    }

    #[test]
    fn builtin_kinds_map_to_their_plural_resource_and_scope() {
        let table = ResourceTable::builtin();
        assert_eq!(
            resource(table.mapping(&gvk("", "v1", "Pod"))),
            Some(("pods".to_owned(), true))
        );
        assert_eq!(
            resource(table.mapping(&gvk("", "v1", "Namespace"))),
            Some(("namespaces".to_owned(), false))
        );
        assert_eq!(
            resource(table.mapping(&gvk("apps", "v1", "Deployment"))),
            Some(("deployments".to_owned(), true))
        );
        assert_eq!(
            resource(table.mapping(&gvk("networking.k8s.io", "v1", "NetworkPolicy"))),
            Some(("networkpolicies".to_owned(), true))
        );
        assert_eq!(
            resource(table.mapping(&gvk("rbac.authorization.k8s.io", "v1", "ClusterRole"))),
            Some(("clusterroles".to_owned(), false))
        );
        // Endpoints is not pluralized again.
        assert_eq!(
            resource(table.mapping(&gvk("", "v1", "Endpoints"))),
            Some(("endpoints".to_owned(), true))
        );
    }

    #[test]
    fn mapping_needs_the_served_version_and_accepts_the_lower_case_kind() {
        let table = ResourceTable::builtin();
        assert_eq!(table.mapping(&gvk("apps", "v1beta1", "Deployment")), None);
        assert_eq!(table.mapping(&gvk("batch", "v1beta1", "CronJob")), None);
        assert_eq!(table.mapping(&gvk("", "v1", "Certificate")), None);
        assert_eq!(table.mapping(&gvk("apps", "v1", "Pod")), None);
        assert_eq!(
            resource(table.mapping(&gvk("", "v1", "pod"))),
            Some(("pods".to_owned(), true))
        );
        assert_eq!(table.mapping(&gvk("", "v1", "POD")), None);
        // Both autoscaling versions serve HorizontalPodAutoscaler; v2 is preferred.
        for version in ["v1", "v2", ""] {
            let mapping = table
                .mapping(&gvk("autoscaling", version, "HorizontalPodAutoscaler"))
                .expect("hpa");
            assert_eq!(mapping.resource.resource, "horizontalpodautoscalers");
        }
        let preferred = table
            .mapping(&gvk("autoscaling", "", "HorizontalPodAutoscaler"))
            .expect("hpa");
        assert_eq!(preferred.resource.version, "v2");
    }

    #[test]
    fn subresources_never_serve_a_kind_but_know_their_own() {
        let table = ResourceTable::builtin();
        // pods/status accepts Pod, but Pod maps to pods.
        assert_eq!(
            table
                .mapping(&gvk("", "v1", "Pod"))
                .expect("pod")
                .resource
                .resource,
            "pods"
        );
        assert_eq!(table.mapping(&gvk("", "v1", "PodExecOptions")), None);
        assert_eq!(
            table.kind_for(&GroupVersionResource::new("", "v1", "pods/eviction")),
            Some(gvk("policy", "v1", "Eviction"))
        );
        assert_eq!(
            table.kind_for(&GroupVersionResource::new(
                "apps",
                "v1",
                "deployments/scale"
            )),
            Some(gvk("autoscaling", "v1", "Scale"))
        );
        assert_eq!(
            table.kind_for(&GroupVersionResource::new("", "v1", "pods/status")),
            Some(gvk("", "v1", "Pod"))
        );
        assert_eq!(
            table.kind_for(&GroupVersionResource::new("", "v1", "widgets")),
            None
        );
        assert_eq!(
            table.is_namespaced(&GroupVersionResource::new("", "v1", "nodes")),
            Some(false)
        );
    }

    #[test]
    fn custom_resource_definitions_add_served_versions_and_subresources() {
        let mut table = ResourceTable::builtin().clone();
        table
            .add_crd(&json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "spec": {
                    "group": "cert-manager.io",
                    "scope": "Namespaced",
                    "names": {"plural": "certificates", "kind": "Certificate"},
                    "versions": [
                        {"name": "v1", "served": true, "subresources": {"status": {}}},
                        {"name": "v1alpha1", "served": false}
                    ]
                }
            }))
            .expect("crd");
        let mapping = table
            .mapping(&gvk("cert-manager.io", "v1", "Certificate"))
            .expect("certificate");
        assert_eq!(mapping.resource.resource, "certificates");
        assert!(mapping.namespaced);
        assert_eq!(
            table.mapping(&gvk("cert-manager.io", "v1alpha1", "Certificate")),
            None
        );
        assert_eq!(
            table.kind_for(&GroupVersionResource::new(
                "cert-manager.io",
                "v1",
                "certificates/status"
            )),
            Some(gvk("cert-manager.io", "v1", "Certificate"))
        );
        assert_eq!(
            table.add_crd(&json!({"spec": {"group": "x"}})),
            Err(InvalidCrd("spec.names.plural"))
        );
    }

    #[test]
    fn unknown_kinds_are_guessed_as_kubernetes_does() {
        assert_eq!(guess_resource("Certificate"), "certificates");
        assert_eq!(guess_resource("Ingress"), "ingresses");
        assert_eq!(guess_resource("NetworkPolicy"), "networkpolicies");
        assert_eq!(guess_resource("Endpoints"), "endpoints");
        assert_eq!(guess_resource("MyEndpoints"), "myendpoints");
        assert_eq!(guess_resource(""), "");
    }

    #[test]
    fn a_rule_resource_starting_with_the_kind_is_the_fallback() {
        let rules: Vec<NamedRuleWithOperations> = serde_json::from_value(json!([
            {"resources": ["issuers"]},
            {"resources": ["configmaps", "certificates", "certificaterequests"]}
        ]))
        .expect("rules");
        assert_eq!(
            resource_named_in_rules("Certificate", &rules),
            Some("certificates")
        );
        assert_eq!(resource_named_in_rules("Secret", &rules), None);
    }
}
