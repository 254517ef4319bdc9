//! ValidatingPolicy and NamespacedValidatingPolicy: CEL validations, applied at admission and in
//! background scans.
use k8s_openapi::api::admissionregistration::v1::{
    AuditAnnotation, MatchCondition, MatchResources, Validation, Variable,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    AdmissionPolicyGeneration, EvaluationConfiguration, PodControllersGeneration, PolicyStatus,
    ValidationAction, WebhookConfiguration,
};
use crate::kyverno::v1::policy::FailurePolicy;
use crate::newtype::cluster_and_namespaced_kinds;

/// The specification shared by ValidatingPolicy and NamespacedValidatingPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The resources and operations the policy applies to; required for admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_constraints: Option<MatchResources>,
    /// The CEL validations; all must pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<Validation>,
    /// How errors (failed evaluation, misconfiguration) are handled; `Fail` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// CEL expressions whose values become audit annotations of the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_annotations: Vec<AuditAnnotation>,
    /// CEL conditions a request must meet to be validated (all must be true).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub match_conditions: Vec<MatchCondition>,
    /// Named CEL expressions available to the other expressions as `variables.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub variables: Vec<Variable>,
    /// Generation of pod controller variants and of a ValidatingAdmissionPolicy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autogen: Option<ValidatingAutogenConfiguration>,
    /// What a failed validation does: `Deny`, `Audit` and/or `Warn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub validation_actions: Vec<ValidationAction>,
    /// Settings of the admission webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_configuration: Option<WebhookConfiguration>,
    /// When and on what the policy is evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationConfiguration>,
}

/// Autogeneration settings of a validating policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatingAutogenConfiguration {
    /// Pod controllers to generate variants for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_controllers: Option<PodControllersGeneration>,
    /// Whether a Kubernetes ValidatingAdmissionPolicy is generated from the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validating_admission_policy: Option<AdmissionPolicyGeneration>,
}

/// The status of a ValidatingPolicy or NamespacedValidatingPolicy.
pub type ValidatingPolicyStatus = PolicyStatus<Spec>;

cluster_and_namespaced_kinds!(
    ready,
    spec = Spec,
    status = "ValidatingPolicyStatus",
    selectable = ".spec.evaluation.mode",
    /// The specification of a ValidatingPolicy (cluster-wide).
    ValidatingPolicySpec = ("ValidatingPolicy", "vpol"),
    /// The specification of a NamespacedValidatingPolicy (applies within its namespace).
    NamespacedValidatingPolicySpec = ("NamespacedValidatingPolicy", "nvpol"),
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn validating_policy_round_trips_with_typed_fields() {
        let doc = json!({
            "apiVersion": "policies.kyverno.io/v1beta1",
            "kind": "ValidatingPolicy",
            "metadata": {"name": "p"},
            "spec": {
                "validationActions": ["Deny", "Audit"],
                "failurePolicy": "Ignore",
                "evaluation": {"background": {"enabled": false}, "mode": "Kubernetes"},
                "autogen": {"podControllers": {"controllers": ["deployments"]}},
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["pods"]}]},
                "variables": [{"name": "c", "expression": "object.spec.containers"}],
                "validations": [{"expression": "size(variables.c) > 0", "messageExpression": "'x'"}]
            },
            "status": {
                "conditionStatus": {"ready": true, "conditions": [{"type": "WebhookConfigured", "status": "True"}]},
                "autogen": {"configs": {"deployments": {
                    "targets": [{"group": "apps", "version": "v1", "resource": "deployments", "kind": "Deployment"}],
                    "spec": {"validationActions": ["Deny"]}}}},
                "generated": false
            }
        });
        let policy: ValidatingPolicy = serde_json::from_value(doc.clone()).expect("policy");
        assert_eq!(
            policy.spec.validation_actions,
            [ValidationAction::Deny, ValidationAction::Audit]
        );
        assert_eq!(policy.spec.failure_policy, Some(FailurePolicy::Ignore));
        assert!(!EvaluationConfiguration::background_enabled(
            policy.spec.evaluation.as_ref()
        ));
        assert_eq!(serde_json::to_value(&policy).expect("ser"), doc);
    }

    #[test]
    fn namespaced_policy_is_namespaced_and_shares_the_spec() {
        use kube::Resource;
        assert_eq!(
            NamespacedValidatingPolicy::plural(&()),
            "namespacedvalidatingpolicies"
        );
        let spec: Spec =
            serde_json::from_value(json!({"validations": [{"expression": "true"}]})).expect("spec");
        let policy = NamespacedValidatingPolicy::new("p", NamespacedValidatingPolicySpec(spec));
        assert_eq!(policy.spec.validations.len(), 1);
    }
}
