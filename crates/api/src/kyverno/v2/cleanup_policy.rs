//! CleanupPolicy and ClusterCleanupPolicy (`kyverno.io/v2`): delete matching resources on a
//! cron schedule.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kyverno::v1::context::ContextEntry;
use crate::kyverno::v1::match_resources::MatchResources;
use crate::kyverno::v1::mutate::AnyAllConditions;
use crate::newtype::deref_to;

/// The specification shared by CleanupPolicy and ClusterCleanupPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// Variables loaded before the conditions are evaluated, once per candidate resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextEntry>,
    /// The resources to delete.
    #[serde(rename = "match")]
    pub match_resources: MatchResources,
    /// Resources spared even though they match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<MatchResources>,
    /// When to run, in cron syntax.
    pub schedule: String,
    /// Conditions (`any`/`all`) a matched resource must meet to be deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<AnyAllConditions>,
    /// How dependents are handled on deletion: Foreground, Background or Orphan. When unset, the
    /// kind's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_propagation_policy: Option<DeletionPropagation>,
}

/// How the garbage collector treats the dependents of a deleted object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPropagation {
    /// Dependents are deleted first, then the object.
    Foreground,
    /// The object is deleted at once; dependents are deleted in the background.
    Background,
    /// Dependents are kept, without their owner reference.
    Orphan,
}

/// The state of a cleanup policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CleanupPolicyStatus {
    /// Conditions of the policy, e.g. `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the policy last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_execution_time: Option<Time>,
}

/// The specification of a ClusterCleanupPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kyverno.io",
    version = "v2",
    kind = "ClusterCleanupPolicy",
    shortname = "ccleanpol",
    category = "kyverno",
    status = "CleanupPolicyStatus",
    printcolumn = r#"{"name":"Schedule", "type":"string", "jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct ClusterCleanupPolicySpec(pub Spec);

/// The specification of a CleanupPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kyverno.io",
    version = "v2",
    kind = "CleanupPolicy",
    shortname = "cleanpol",
    category = "kyverno",
    namespaced,
    status = "CleanupPolicyStatus",
    printcolumn = r#"{"name":"Schedule", "type":"string", "jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Age", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct CleanupPolicySpec(pub Spec);

deref_to!(Spec => ClusterCleanupPolicySpec, CleanupPolicySpec);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_policy_round_trips() {
        let json = serde_json::json!({
            "apiVersion": "kyverno.io/v2",
            "kind": "ClusterCleanupPolicy",
            "metadata": {"name": "clean"},
            "spec": {
                "schedule": "*/5 * * * *",
                "deletionPropagationPolicy": "Orphan",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "conditions": {"all": [{"key": "{{ target.metadata.name }}", "operator": "Equals", "value": "x"}]}
            },
            "status": {"lastExecutionTime": "2024-01-01T00:00:00Z"}
        });
        let policy: ClusterCleanupPolicy =
            serde_json::from_value(json.clone()).expect("deserializes");
        assert_eq!(policy.spec.schedule, "*/5 * * * *");
        assert_eq!(
            policy.spec.deletion_propagation_policy,
            Some(DeletionPropagation::Orphan)
        );
        assert_eq!(serde_json::to_value(&policy).expect("serializes"), json);
    }

    #[test]
    fn unknown_propagation_policy_is_rejected() {
        let json = serde_json::json!({
            "schedule": "* * * * *", "match": {}, "deletionPropagationPolicy": "orphan"
        });
        assert!(serde_json::from_value::<Spec>(json).is_err());
    }
}
