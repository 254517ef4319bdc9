//! UpdateRequest (`kyverno.io/v2`): a queued request to run generate or mutate-existing rules in
//! the background controller.
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::kyverno::v1::generate::ResourceSpec;
use crate::kyverno::v1::match_resources::AdmissionOperation;
use crate::schema::preserve_unknown_fields;

/// The specification of an UpdateRequest: the policy rule to apply and the resource that
/// triggered it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kyverno.io",
    version = "v2",
    kind = "UpdateRequest",
    shortname = "ur",
    category = "kyverno",
    namespaced,
    status = "UpdateRequestStatus",
    printcolumn = r#"{"name":"Policy", "type":"string", "jsonPath":".spec.policy"}"#,
    printcolumn = r#"{"name":"RuleType", "type":"string", "jsonPath":".spec.requestType"}"#,
    printcolumn = r#"{"name":"ResourceKind", "type":"string", "jsonPath":".spec.resource.kind"}"#,
    printcolumn = r#"{"name":"ResourceName", "type":"string", "jsonPath":".spec.resource.name"}"#,
    printcolumn = r#"{"name":"ResourceNamespace", "type":"string", "jsonPath":".spec.resource.namespace"}"#,
    printcolumn = r#"{"name":"status", "type":"string", "jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequestSpec {
    /// The kind of rule to process: `mutate`, `generate`, `cel-generate` or `cel-mutate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<RequestType>,
    /// The policy's name (`namespace/name` for a namespaced Policy).
    pub policy: String,
    /// The rule's name. Deprecated in favour of `ruleContext`.
    pub rule: String,
    /// Per-rule details of the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_context: Vec<RuleContext>,
    /// The resource that triggered the request. Deprecated in favour of `ruleContext`.
    pub resource: ResourceSpec,
    /// Whether generated resources are kept in sync with the rule. Deprecated in favour of
    /// `ruleContext`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize: Option<bool>,
    /// The admission request context, shared by all rules of the request.
    pub context: UpdateRequestSpecContext,
    /// Whether downstream (generated) resources are deleted. Deprecated in favour of
    /// `ruleContext`.
    pub delete_downstream: bool,
}

/// The kind of rule an UpdateRequest processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RequestType {
    /// A mutate-existing rule.
    Mutate,
    /// A generate rule.
    Generate,
    /// A GeneratingPolicy (CEL).
    CelGenerate,
    /// A MutatingPolicy (CEL) on existing resources.
    CelMutate,
}

/// One rule of an UpdateRequest and the resource that triggered it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleContext {
    /// The rule's name.
    pub rule: String,
    /// Whether downstream (generated) resources are deleted.
    pub delete_downstream: bool,
    /// Whether generated resources are kept in sync with the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize: Option<bool>,
    /// The resource that triggered the rule.
    pub trigger: ResourceSpec,
    /// Whether the request restores a downstream resource from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_restore: Option<bool>,
}

/// The admission context of an UpdateRequest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequestSpecContext {
    /// The requesting user's identity and RBAC roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<RequestInfo>,
    /// The admission request that caused the UpdateRequest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_request_info: Option<AdmissionRequestInfo>,
}

/// The requesting user's identity and the roles bound to it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestInfo {
    /// Namespaced roles (`namespace:name`) bound to the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Cluster roles bound to the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_roles: Vec<String>,
    /// The user as reported by the admission request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<UserInfo>,
    /// Whether generated resources are kept in sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize: Option<bool>,
}

/// An admission request and its operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequestInfo {
    /// The admission request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission_request: Option<AdmissionRequest>,
    /// The request's operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<AdmissionOperation>,
}

/// The attributes of an admission request (`admission.k8s.io/v1` AdmissionRequest).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// The request's unique identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The type of the submitted object, e.g. `v1` `Pod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<GroupVersionKind>,
    /// The resource being requested, e.g. `v1` `pods`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<GroupVersionResource>,
    /// The subresource being requested, if any (e.g. `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// The type of the original request, when it differs from `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_kind: Option<GroupVersionKind>,
    /// The resource of the original request, when it differs from `resource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_resource: Option<GroupVersionResource>,
    /// The subresource of the original request, when it differs from `subResource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_sub_resource: Option<String>,
    /// The object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The operation: CREATE, UPDATE, DELETE or CONNECT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<AdmissionOperation>,
    /// The requesting user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<UserInfo>,
    /// The object of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub object: Option<Value>,
    /// The existing object, for UPDATE and DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub old_object: Option<Value>,
    /// Whether the request is a dry run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// The operation's options (e.g. CreateOptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub options: Option<Value>,
}

/// An API group, version and kind. The core group is the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionKind {
    /// The API group.
    pub group: String,
    /// The API version.
    pub version: String,
    /// The kind.
    pub kind: String,
}

/// An API group, version and resource. The core group is the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionResource {
    /// The API group.
    pub group: String,
    /// The API version.
    pub version: String,
    /// The resource (plural name).
    pub resource: String,
}

/// The processing state of an UpdateRequest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRequestStatus {
    /// Where processing stands.
    pub state: UpdateRequestState,
    /// Details of the state, such as the error of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The resources the request generated or mutated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generated_resources: Vec<ResourceSpec>,
    /// How many times processing has been retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i32>,
}

/// Where processing of an UpdateRequest stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UpdateRequestState {
    /// Waiting to be processed.
    #[default]
    Pending,
    /// Processing failed; it may be retried.
    Failed,
    /// Processing succeeded.
    Completed,
    /// The request did not apply and was skipped.
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_request_round_trips() {
        let json = serde_json::json!({
            "apiVersion": "kyverno.io/v2",
            "kind": "UpdateRequest",
            "metadata": {"name": "ur-abc", "namespace": "kyverno"},
            "spec": {
                "requestType": "cel-generate",
                "policy": "gen",
                "rule": "r",
                "ruleContext": [{
                    "rule": "r", "deleteDownstream": false, "synchronize": true, "cacheRestore": false,
                    "trigger": {"apiVersion": "v1", "kind": "Namespace", "name": "ns", "uid": "u"}
                }],
                "resource": {"apiVersion": "v1", "kind": "Namespace", "name": "ns"},
                "synchronize": false,
                "deleteDownstream": false,
                "context": {
                    "userInfo": {
                        "clusterRoles": ["admin"],
                        "userInfo": {"username": "alice", "groups": ["g"], "extra": {"k": ["v"]}}
                    },
                    "admissionRequestInfo": {
                        "operation": "CREATE",
                        "admissionRequest": {
                            "uid": "1",
                            "kind": {"group": "", "version": "v1", "kind": "Namespace"},
                            "resource": {"group": "", "version": "v1", "resource": "namespaces"},
                            "operation": "CREATE",
                            "object": {"metadata": {"name": "ns"}},
                            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
                            "dryRun": false
                        }
                    }
                }
            },
            "status": {"state": "Skip", "retryCount": 2, "generatedResources": [{"kind": "ConfigMap", "name": "c"}]}
        });
        let ur: UpdateRequest = serde_json::from_value(json.clone()).expect("deserializes");
        assert_eq!(ur.spec.request_type, Some(RequestType::CelGenerate));
        assert_eq!(
            ur.status.as_ref().map(|s| s.state),
            Some(UpdateRequestState::Skip)
        );
        assert_eq!(serde_json::to_value(&ur).expect("serializes"), json);
    }

    #[test]
    fn request_type_spellings() {
        for (s, t) in [
            ("mutate", RequestType::Mutate),
            ("generate", RequestType::Generate),
            ("cel-mutate", RequestType::CelMutate),
        ] {
            assert_eq!(
                serde_json::from_value::<RequestType>(serde_json::json!(s))
                    .expect("known request type"),
                t
            );
        }
    }
}
