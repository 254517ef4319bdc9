//! Which resources and requests a rule applies to: `match` and `exclude`.
use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::Subject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Selects resources and requests. Use `any` or `all`; the top-level `resources` and user
/// fields are the older single-filter form, still accepted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchResources {
    /// Filters of which at least one must match (logical OR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<ResourceFilter>,
    /// Filters of which every one must match (logical AND).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<ResourceFilter>,
    /// Resource description of the older single-filter form. Prefer `any` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceDescription>,
    /// Requesting user information of the older single-filter form, flattened.
    #[serde(flatten)]
    pub user_info: UserInfo,
}

/// One filter: a resource description and the requesting user's roles and identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFilter {
    /// The resources this filter selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceDescription>,
    /// The requesting user's roles, cluster roles and subjects.
    #[serde(flatten)]
    pub user_info: UserInfo,
}

/// The requesting user's identity, as seen in the admission request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// Namespaced role names (`namespace:name`) of which the user must hold at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Cluster role names of which the user must hold at least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_roles: Vec<String>,
    /// Users, groups or service accounts of which the requester must be one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Subject>,
}

/// Describes resources by kind, name, namespace, labels, annotations and operation. Every
/// field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescription {
    /// Kinds as `Kind`, `version/Kind`, `group/version/Kind`, optionally with a subresource
    /// (`Pod/status`); wildcards `*` and `?` are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// A resource name, wildcards allowed. Deprecated: use `names`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource names of which one must match, wildcards allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespaces of which one must match, wildcards allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Annotations that must be present with matching values, wildcards allowed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Label selector on the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Label selector on the resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Admission operations (CREATE, UPDATE, DELETE, CONNECT). When empty, CREATE and UPDATE.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<AdmissionOperation>,
}

/// An admission request operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AdmissionOperation {
    /// Object creation.
    Create,
    /// Object replacement or patch.
    Update,
    /// Object deletion.
    Delete,
    /// Connection to a subresource (exec, attach, port-forward, proxy).
    Connect,
}

impl AdmissionOperation {
    /// The upper-case name, as in admission requests (`CREATE`).
    pub fn as_str(self) -> &'static str {
        match self {
            AdmissionOperation::Create => "CREATE",
            AdmissionOperation::Update => "UPDATE",
            AdmissionOperation::Delete => "DELETE",
            AdmissionOperation::Connect => "CONNECT",
        }
    }

    /// The operation of an upper-case name (`CREATE`), as in admission requests.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Create, Self::Update, Self::Delete, Self::Connect]
            .into_iter()
            .find(|operation| operation.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::AdmissionOperation;

    #[test]
    fn operation_names_round_trip() {
        for name in ["CREATE", "UPDATE", "DELETE", "CONNECT"] {
            let operation = AdmissionOperation::from_name(name).expect("known operation");
            assert_eq!(operation.as_str(), name);
        }
        assert_eq!(AdmissionOperation::from_name("create"), None);
    }
}
