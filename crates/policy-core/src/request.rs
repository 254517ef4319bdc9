//! What a rule is evaluated against: the resource of an admission request (or of a background
//! scan), the operation, the requester and the labels of the resource's namespace.
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::celpolicy::Activation;
use crate::variables::Context;

/// Group, version and kind of a resource. The core group is the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupVersionKind {
    /// API group, empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
}

impl GroupVersionKind {
    /// Builds a GVK from an `apiVersion` (`group/version`, or `version` for the core group) and a
    /// kind. An apiVersion with more than one `/` is invalid and, as upstream, gives an all-empty
    /// GVK.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        let (group, version) = match api_version.split_once('/') {
            None => ("", api_version),
            Some((_, version)) if version.contains('/') => return Self::default(),
            Some(group_version) => group_version,
        };
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

/// The authenticated user that sent an admission request (Kubernetes `authentication/v1`
/// UserInfo).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AdmissionUserInfo {
    /// User name, e.g. `system:serviceaccount:kube-system:replicaset-controller`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Unique id of the user.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups the user belongs to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Extra attributes set by the authenticator.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The requester of an admission request with the RBAC roles bound to it (Kyverno's
/// `RequestInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestInfo {
    /// Namespaced roles bound to the user, as `namespace:name`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Cluster roles bound to the user.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_roles: Vec<String>,
    /// The user.
    pub user_info: AdmissionUserInfo,
}

impl RequestInfo {
    /// Whether nothing is known about the requester, as in background scans and CLI runs
    /// without user info; `match` blocks then ignore their user conditions.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A read-only view of a string map in object metadata (`labels`, `annotations`); entries whose
/// value is not a string are ignored.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetadataMap<'a>(Option<&'a Map<String, Value>>);

impl<'a> MetadataMap<'a> {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0?.get(key)?.as_str()
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0
            .into_iter()
            .flatten()
            .filter_map(|(key, value)| Some((key.as_str(), value.as_str()?)))
    }
}

/// The resource under evaluation and everything about its request that matching and variables
/// need. Cheap to clone: objects, requester and namespace labels are shared.
#[derive(Clone, Debug)]
pub struct ResourceRequest {
    resource: Arc<Value>,
    old_resource: Option<Arc<Value>>,
    operation: Option<AdmissionOperation>,
    request_info: Arc<RequestInfo>,
    namespace_labels: Arc<BTreeMap<String, String>>,
    gvk: GroupVersionKind,
    subresource: String,
    derived: Derived,
}

/// What the engines build from a request on first use and share between every policy evaluated
/// on it (and the request's clones). Every `with_*` builder starts afresh, since it changes what
/// they are built from.
#[derive(Clone, Default)]
pub(crate) struct Derived {
    /// The variables every rule of a ClusterPolicy or Policy starts from (`request`, `images`,
    /// `serviceAccountName`...).
    pub(crate) rule_variables: OnceLock<Arc<Context>>,
    /// The CEL activation of `validate.cel` rules, with the Namespace object it binds.
    pub(crate) cel_activation: OnceLock<(Option<Value>, Arc<Activation>)>,
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Derived").finish_non_exhaustive()
    }
}

impl ResourceRequest {
    /// A request about `resource`: the new object, or the old object of a DELETE request. The
    /// group/version/kind is taken from its `apiVersion` and `kind`; no operation (background
    /// scan), no requester, no namespace labels.
    pub fn new(resource: impl Into<Arc<Value>>) -> Self {
        let resource = resource.into();
        let gvk = GroupVersionKind::from_api_version(
            str_field(&resource, "apiVersion"),
            str_field(&resource, "kind"),
        );
        Self {
            resource,
            old_resource: None,
            operation: None,
            request_info: Arc::default(),
            namespace_labels: Arc::default(),
            gvk,
            subresource: String::new(),
            derived: Derived::default(),
        }
    }

    /// Replaces the object under evaluation, keeping everything else about the request.
    pub fn with_resource(mut self, resource: impl Into<Arc<Value>>) -> Self {
        self.resource = resource.into();
        self.derived = Derived::default();
        self
    }

    /// Sets the old object (UPDATE and DELETE requests).
    pub fn with_old_resource(mut self, old_resource: impl Into<Arc<Value>>) -> Self {
        self.old_resource = Some(old_resource.into());
        self.derived = Derived::default();
        self
    }

    /// Sets the admission operation.
    pub fn with_operation(mut self, operation: AdmissionOperation) -> Self {
        self.operation = Some(operation);
        self.derived = Derived::default();
        self
    }

    /// Sets the requester and its roles.
    pub fn with_request_info(mut self, request_info: impl Into<Arc<RequestInfo>>) -> Self {
        self.request_info = request_info.into();
        self.derived = Derived::default();
        self
    }

    /// Sets the labels of the resource's namespace (for `namespaceSelector`).
    pub fn with_namespace_labels(
        mut self,
        namespace_labels: impl Into<Arc<BTreeMap<String, String>>>,
    ) -> Self {
        self.namespace_labels = namespace_labels.into();
        self.derived = Derived::default();
        self
    }

    /// Overrides the group/version/kind and sets the subresource, as given by an admission
    /// request (e.g. `Pod` and `status` for `pods/status`).
    pub fn with_kind(mut self, gvk: GroupVersionKind, subresource: impl Into<String>) -> Self {
        self.gvk = gvk;
        self.subresource = subresource.into();
        self.derived = Derived::default();
        self
    }

    /// The resource under evaluation (the old object for DELETE requests).
    pub fn resource(&self) -> &Arc<Value> {
        &self.resource
    }

    /// The old object of UPDATE and DELETE requests.
    pub fn old_resource(&self) -> Option<&Arc<Value>> {
        self.old_resource.as_ref()
    }

    /// The admission operation; `None` in background scans.
    pub fn operation(&self) -> Option<AdmissionOperation> {
        self.operation
    }

    /// The requester and its roles.
    pub fn request_info(&self) -> &Arc<RequestInfo> {
        &self.request_info
    }

    /// The labels of the resource's namespace.
    pub fn namespace_labels(&self) -> &Arc<BTreeMap<String, String>> {
        &self.namespace_labels
    }

    /// The resource's group/version/kind.
    pub fn gvk(&self) -> &GroupVersionKind {
        &self.gvk
    }

    /// The subresource of the request (`status`, `scale`, ...), empty for the resource itself.
    pub fn subresource(&self) -> &str {
        &self.subresource
    }

    /// What the engines derived from this request so far.
    pub(crate) fn derived(&self) -> &Derived {
        &self.derived
    }

    /// The `kind` field of the resource.
    pub fn kind(&self) -> &str {
        str_field(&self.resource, "kind")
    }

    /// `metadata.name`, or `metadata.generateName` when the name is not set yet.
    pub fn name(&self) -> &str {
        match self.metadata_str("name") {
            "" => self.metadata_str("generateName"),
            name => name,
        }
    }

    /// `metadata.namespace`, empty for cluster-scoped resources.
    pub fn namespace(&self) -> &str {
        self.metadata_str("namespace")
    }

    /// `metadata.labels`.
    pub fn labels(&self) -> MetadataMap<'_> {
        self.metadata_map("labels")
    }

    /// `metadata.annotations`.
    pub fn annotations(&self) -> MetadataMap<'_> {
        self.metadata_map("annotations")
    }

    /// `metadata.ownerReferences`.
    pub fn owner_references(&self) -> &[Value] {
        self.resource
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    fn metadata_str(&self, field: &str) -> &str {
        self.resource
            .get("metadata")
            .map_or("", |metadata| str_field(metadata, field))
    }

    fn metadata_map(&self, field: &str) -> MetadataMap<'_> {
        MetadataMap(
            self.resource
                .get("metadata")
                .and_then(|metadata| metadata.get(field))
                .and_then(Value::as_object),
        )
    }
}

/// The string field `field` of `object`, empty when absent or not a string.
fn str_field<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn gvk_from_api_version() {
        let gvk = GroupVersionKind::from_api_version("apps/v1", "Deployment");
        assert_eq!(
            (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()),
            ("apps", "v1", "Deployment")
        );
        let gvk = GroupVersionKind::from_api_version("v1", "Pod");
        assert_eq!((gvk.group.as_str(), gvk.version.as_str()), ("", "v1"));
        assert_eq!(
            GroupVersionKind::from_api_version("a/b/c", "Pod"),
            GroupVersionKind::default()
        );
    }

    #[test]
    fn metadata_helpers() {
        let request = ResourceRequest::new(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "generateName": "web-", "namespace": "prod",
                "labels": {"app": "web", "bad": 1},
                "annotations": {"a": "b"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-1"}]
            }
        }));
        assert_eq!(request.name(), "web-");
        assert_eq!(request.namespace(), "prod");
        assert_eq!(request.kind(), "Pod");
        assert_eq!(request.labels().get("app"), Some("web"));
        assert_eq!(request.labels().get("bad"), None);
        assert_eq!(request.labels().iter().count(), 1);
        assert_eq!(request.annotations().get("a"), Some("b"));
        assert_eq!(request.owner_references().len(), 1);
        assert_eq!(request.gvk().kind, "Pod");
        assert_eq!(request.operation(), None);
    }

    #[test]
    fn name_wins_over_generate_name_and_missing_metadata_is_empty() {
        let request = ResourceRequest::new(json!({"metadata": {"name": "a", "generateName": "b"}}));
        assert_eq!(request.name(), "a");
        let request = ResourceRequest::new(json!({"kind": "Namespace"}));
        assert_eq!(request.name(), "");
        assert_eq!(request.namespace(), "");
        assert_eq!(request.labels().iter().count(), 0);
        assert!(request.owner_references().is_empty());
    }

    #[test]
    fn request_info_emptiness_and_json_shape() {
        assert!(RequestInfo::default().is_empty());
        let info: RequestInfo = serde_json::from_value(json!({
            "clusterRoles": ["admin"],
            "userInfo": {"username": "alice", "groups": ["dev"]}
        }))
        .expect("request info");
        assert!(!info.is_empty());
        assert_eq!(info.cluster_roles, ["admin"]);
        assert_eq!(info.user_info.username, "alice");
        assert_eq!(
            serde_json::to_value(&info).expect("serialize"),
            json!({"clusterRoles": ["admin"], "userInfo": {"username": "alice", "groups": ["dev"]}})
        );
    }
}
