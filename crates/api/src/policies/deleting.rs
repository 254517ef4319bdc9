//! DeletingPolicy and NamespacedDeletingPolicy: delete matching resources that meet CEL
//! conditions, on a cron schedule.
use k8s_openapi::api::admissionregistration::v1::{MatchCondition, MatchResources, Variable};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ConditionStatus;
use crate::kyverno::v2::cleanup_policy::DeletionPropagation;
use crate::newtype::cluster_and_namespaced_kinds;

/// The specification shared by DeletingPolicy and NamespacedDeletingPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The resources the policy considers for deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_constraints: Option<MatchResources>,
    /// CEL conditions a matched resource must meet to be deleted (all must be true; an empty
    /// list deletes every matched resource).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub conditions: Vec<MatchCondition>,
    /// Named CEL expressions available to the conditions as `variables.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub variables: Vec<Variable>,
    /// When to run, in cron syntax.
    pub schedule: String,
    /// How dependents are handled on deletion: Foreground, Background or Orphan. When unset,
    /// the kind's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_propagation_policy: Option<DeletionPropagation>,
}

/// The status of a DeletingPolicy or NamespacedDeletingPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletingPolicyStatus {
    /// Readiness of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_status: Option<ConditionStatus>,
    /// When the policy last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_execution_time: Option<Time>,
}

cluster_and_namespaced_kinds!(
    ready,
    spec = Spec,
    status = "DeletingPolicyStatus",
    /// The specification of a DeletingPolicy (cluster-wide).
    DeletingPolicySpec = ("DeletingPolicy", "dpol"),
    /// The specification of a NamespacedDeletingPolicy (applies within its namespace).
    NamespacedDeletingPolicySpec = ("NamespacedDeletingPolicy", "ndpol"),
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn deleting_policy_round_trips() {
        let doc = json!({
            "apiVersion": "policies.kyverno.io/v1beta1",
            "kind": "NamespacedDeletingPolicy",
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": {
                "schedule": "*/5 * * * *",
                "deletionPropagationPolicy": "Orphan",
                "conditions": [{"name": "old", "expression": "true"}]
            },
            "status": {"lastExecutionTime": "2025-01-01T00:00:00Z", "conditionStatus": {"ready": true}}
        });
        let policy: NamespacedDeletingPolicy = serde_json::from_value(doc.clone()).expect("policy");
        assert_eq!(
            policy.spec.deletion_propagation_policy,
            Some(DeletionPropagation::Orphan)
        );
        assert_eq!(serde_json::to_value(&policy).expect("ser"), doc);
        assert!(serde_json::from_value::<Spec>(json!({"conditions": []})).is_err());
    }
}
