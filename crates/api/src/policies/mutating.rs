//! MutatingPolicy and NamespacedMutatingPolicy: CEL mutations (JSON patches or apply
//! configurations) of admitted resources and, optionally, of existing ones.
use k8s_openapi::api::admissionregistration::v1::{
    AuditAnnotation, MatchCondition, MatchResources, Mutation, Variable,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    AdmissionPolicyGeneration, PodControllersGeneration, PolicyStatus, Toggle, WebhookConfiguration,
};
use crate::kyverno::v1::policy::FailurePolicy;
use crate::newtype::cluster_and_namespaced_kinds;

/// The specification shared by MutatingPolicy and NamespacedMutatingPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The resources and operations the policy applies to; required for admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_constraints: Option<MatchResources>,
    /// How errors (failed evaluation, misconfiguration) are handled; `Fail` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// CEL expressions whose values become audit annotations of the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_annotations: Vec<AuditAnnotation>,
    /// CEL conditions a request must meet to be mutated (all must be true).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub match_conditions: Vec<MatchCondition>,
    /// Named CEL expressions available to the other expressions as `variables.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub variables: Vec<Variable>,
    /// Generation of pod controller variants and of a MutatingAdmissionPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autogen: Option<MutatingAutogenConfiguration>,
    /// Which existing resources are mutated (mutate-existing), resolved after the variables
    /// are evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_match_constraints: Option<TargetMatchConstraints>,
    /// The mutations, applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mutations: Vec<Mutation>,
    /// Settings of the admission webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_configuration: Option<WebhookConfiguration>,
    /// When and how the policy is evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<MutatingEvaluationConfiguration>,
    /// Whether the mutations may run again when later admission plugins change the object:
    /// `Never` or `IfNeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reinvocation_policy: Option<String>,
    /// CEL conditions an existing target resource must meet to be mutated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub target_match_conditions: Vec<MatchCondition>,
}

/// Autogeneration settings of a mutating policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MutatingAutogenConfiguration {
    /// Pod controllers to generate variants for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_controllers: Option<PodControllersGeneration>,
    /// Whether a Kubernetes MutatingAdmissionPolicy is generated from the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutating_admission_policy: Option<AdmissionPolicyGeneration>,
}

/// The existing resources a mutate-existing policy changes: match rules, or a CEL expression
/// that returns the target object(s).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetMatchConstraints {
    /// Resource rules and selectors the targets must match.
    #[serde(flatten)]
    pub match_resources: MatchResources,
    /// A CEL expression returning one target object or a list of them; it may use the
    /// variables computed from the trigger request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// When and how a mutating policy is evaluated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MutatingEvaluationConfiguration {
    /// Whether the policy is applied to admission requests (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<Toggle<true>>,
    /// Whether the policy is applied by background scans (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<Toggle<true>>,
    /// What the policy evaluates: `Kubernetes` resources (the default) or `JSON` payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Whether existing resources (the targets) are mutated (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate_existing: Option<Toggle<false>>,
    /// Whether admission requests sent by Kyverno's background controller are ignored
    /// (default true; set false to apply mutate-existing to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub skip_background_requests: Option<bool>,
    /// Whether apply configurations are applied with server-side apply semantics, replacing
    /// atomic fields as a whole (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_server_side_apply: Option<bool>,
}

impl MutatingEvaluationConfiguration {
    /// Whether admission requests are mutated, given an optional configuration.
    pub fn admission_enabled(evaluation: Option<&Self>) -> bool {
        Toggle::enabled_or_default(evaluation.and_then(|e| e.admission.as_ref()))
    }

    /// Whether background scans run, given an optional configuration.
    pub fn background_enabled(evaluation: Option<&Self>) -> bool {
        Toggle::enabled_or_default(evaluation.and_then(|e| e.background.as_ref()))
    }

    /// Whether existing resources are mutated, given an optional configuration.
    pub fn mutate_existing_enabled(evaluation: Option<&Self>) -> bool {
        Toggle::enabled_or_default(evaluation.and_then(|e| e.mutate_existing.as_ref()))
    }
}

/// The status of a MutatingPolicy or NamespacedMutatingPolicy.
pub type MutatingPolicyStatus = PolicyStatus<Spec>;

cluster_and_namespaced_kinds!(
    ready,
    spec = Spec,
    status = "MutatingPolicyStatus",
    selectable = ".spec.evaluation.mode",
    /// The specification of a MutatingPolicy (cluster-wide).
    MutatingPolicySpec = ("MutatingPolicy", "mpol"),
    /// The specification of a NamespacedMutatingPolicy (applies within its namespace).
    NamespacedMutatingPolicySpec = ("NamespacedMutatingPolicy", "nmpol"),
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn target_match_constraints_flatten_match_resources() {
        let doc = json!({
            "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                               "operations": ["CREATE"], "resources": ["configmaps"]}],
            "expression": "[object]"
        });
        let target: TargetMatchConstraints = serde_json::from_value(doc.clone()).expect("target");
        assert_eq!(target.expression.as_deref(), Some("[object]"));
        assert_eq!(
            target.match_resources.resource_rules.as_ref().map(Vec::len),
            Some(1)
        );
        assert_eq!(serde_json::to_value(&target).expect("ser"), doc);
    }

    #[test]
    fn mutating_policy_round_trips() {
        let doc = json!({
            "apiVersion": "policies.kyverno.io/v1beta1",
            "kind": "MutatingPolicy",
            "metadata": {"name": "m"},
            "spec": {
                "evaluation": {"mutateExisting": {"enabled": true}, "skipBackgroundRequests": false},
                "reinvocationPolicy": "Never",
                "mutations": [
                    {"patchType": "JSONPatch", "jsonPatch": {"expression": "[]"}},
                    {"patchType": "ApplyConfiguration",
                     "applyConfiguration": {"expression": "Object{metadata: Object.metadata{}}"}}
                ],
                "targetMatchConditions": [{"name": "t", "expression": "true"}]
            }
        });
        let policy: MutatingPolicy = serde_json::from_value(doc.clone()).expect("policy");
        assert!(MutatingEvaluationConfiguration::mutate_existing_enabled(
            policy.spec.evaluation.as_ref()
        ));
        assert!(MutatingEvaluationConfiguration::admission_enabled(
            policy.spec.evaluation.as_ref()
        ));
        assert_eq!(policy.spec.mutations[0].patch_type, "JSONPatch");
        assert_eq!(serde_json::to_value(&policy).expect("ser"), doc);
    }
}
