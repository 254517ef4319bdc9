//! GeneratingPolicy and NamespacedGeneratingPolicy: create (and optionally keep in sync)
//! resources when trigger resources are admitted.
use k8s_openapi::api::admissionregistration::v1::{
    AuditAnnotation, MatchCondition, MatchResources, Variable,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConditionStatus, Toggle, WebhookConfiguration};
use crate::newtype::cluster_and_namespaced_kinds;

/// The specification shared by GeneratingPolicy and NamespacedGeneratingPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The trigger resources and operations the policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_constraints: Option<MatchResources>,
    /// CEL conditions a trigger request must meet (all must be true).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub match_conditions: Vec<MatchCondition>,
    /// Named CEL expressions available to the other expressions as `variables.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub variables: Vec<Variable>,
    /// When and how the policy is evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<GeneratingEvaluationConfiguration>,
    /// What to generate: each entry is a CEL expression or a template.
    #[schemars(length(min = 1))]
    pub generate: Vec<Generation>,
    /// Settings of the admission webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_configuration: Option<WebhookConfiguration>,
    /// Whether generated resources are created and updated with server-side apply (default
    /// false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_server_side_apply: Option<bool>,
    /// CEL expressions whose values become audit annotations of the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_annotations: Vec<AuditAnnotation>,
}

/// When and how a generating policy is evaluated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratingEvaluationConfiguration {
    /// Whether the policy is applied to admission requests (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<Toggle<true>>,
    /// Whether resources are also generated for triggers that existed before the policy
    /// (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_existing: Option<Toggle<false>>,
    /// Whether generated resources are kept in sync with the policy and their trigger
    /// (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize: Option<Toggle<false>>,
    /// Whether generated resources are kept when the policy is deleted (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_downstream_on_policy_delete: Option<Toggle<false>>,
    /// Whether admission requests sent by Kyverno's background controller are ignored
    /// (default true; set false to apply generate-existing to them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub skip_background_requests: Option<bool>,
}

impl GeneratingEvaluationConfiguration {
    /// Whether admission requests trigger generation, given an optional configuration.
    pub fn admission_enabled(evaluation: Option<&Self>) -> bool {
        Toggle::enabled_or_default(evaluation.and_then(|e| e.admission.as_ref()))
    }

    /// Whether existing triggers are processed, given an optional configuration.
    pub fn generate_existing_enabled(evaluation: Option<&Self>) -> bool {
        Toggle::enabled_or_default(evaluation.and_then(|e| e.generate_existing.as_ref()))
    }

    /// Whether generated resources are synchronized, given an optional configuration.
    pub fn synchronize_enabled(evaluation: Option<&Self>) -> bool {
        Toggle::enabled_or_default(evaluation.and_then(|e| e.synchronize.as_ref()))
    }

    /// Whether generated resources survive the policy's deletion, given an optional
    /// configuration.
    pub fn orphan_downstream_enabled(evaluation: Option<&Self>) -> bool {
        Toggle::enabled_or_default(
            evaluation.and_then(|e| e.orphan_downstream_on_policy_delete.as_ref()),
        )
    }
}

/// One generation: exactly one of a CEL expression or a template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.expression) && !has(self.template)) || (!has(self.expression) && has(self.template))",
    "message": "exactly one of expression or template must be set"
}]))]
pub struct Generation {
    /// A CEL expression that creates the resources (typically with `generator.Apply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The resources to generate as a YAML document, optionally with CEL interpolation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<GenerationTemplate>,
}

/// Resources to generate, written as YAML.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerationTemplate {
    /// The YAML document (one resource or a list of them).
    #[schemars(length(min = 1))]
    pub value: String,
    /// How `value` is interpolated: `none` (the default) or `cel` (`${{ expr }}` blocks are
    /// replaced by the values of CEL expressions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "none"))]
    pub interpolate: Option<Interpolation>,
}

/// How a generation template is interpolated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// Used as written.
    #[default]
    None,
    /// CEL expressions in the text are evaluated and replaced.
    Cel,
}

/// The status of a GeneratingPolicy or NamespacedGeneratingPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratingPolicyStatus {
    /// Readiness of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_status: Option<ConditionStatus>,
}

cluster_and_namespaced_kinds!(
    spec = Spec,
    status = "GeneratingPolicyStatus",
    /// The specification of a GeneratingPolicy (cluster-wide).
    GeneratingPolicySpec = ("GeneratingPolicy", "gpol"),
    /// The specification of a NamespacedGeneratingPolicy (applies within its namespace).
    NamespacedGeneratingPolicySpec = ("NamespacedGeneratingPolicy", "ngpol"),
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn generating_policy_round_trips() {
        let doc = json!({
            "apiVersion": "policies.kyverno.io/v1beta1",
            "kind": "GeneratingPolicy",
            "metadata": {"name": "g"},
            "spec": {
                "evaluation": {"synchronize": {"enabled": true}},
                "generate": [
                    {"expression": "generator.Apply(object.metadata.name, [variables.cm])"},
                    {"template": {"value": "kind: ConfigMap", "interpolate": "cel"}}
                ]
            }
        });
        let policy: GeneratingPolicy = serde_json::from_value(doc.clone()).expect("policy");
        let evaluation = policy.spec.evaluation.as_ref();
        assert!(GeneratingEvaluationConfiguration::synchronize_enabled(
            evaluation
        ));
        assert!(!GeneratingEvaluationConfiguration::generate_existing_enabled(evaluation));
        assert!(GeneratingEvaluationConfiguration::admission_enabled(
            evaluation
        ));
        assert_eq!(
            policy.spec.generate[1]
                .template
                .as_ref()
                .and_then(|t| t.interpolate),
            Some(Interpolation::Cel)
        );
        assert_eq!(serde_json::to_value(&policy).expect("ser"), doc);
    }

    #[test]
    fn generate_is_required() {
        assert!(serde_json::from_value::<Spec>(json!({})).is_err());
    }
}
