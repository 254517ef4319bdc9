//! ClusterPolicy and Policy.
use k8s_openapi::api::admissionregistration::v1::MatchCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rule::Rule;
use super::validate::{ValidationFailureAction, ValidationFailureActionOverride};
use crate::newtype::deref_to;

/// The specification shared by ClusterPolicy and Policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The policy's rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Whether rules are applied to all matching rules (`All`, the default) or only to the
    /// first matching one (`One`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_rules: Option<ApplyRules>,
    /// How errors and timeouts of the admission webhook are handled (default `Fail`).
    /// Deprecated: use `webhookConfiguration.failurePolicy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// What happens when a validate rule fails: `Audit` (default) or `Enforce`.
    /// Deprecated: use `validate.failureAction` in each rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Audit"))]
    pub validation_failure_action: Option<ValidationFailureAction>,
    /// Per-namespace overrides of `validationFailureAction`.
    /// Deprecated: use `validate.failureActionOverrides` in each rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_failure_action_overrides: Vec<ValidationFailureActionOverride>,
    /// Whether the policy is applied to admission requests; defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub admission: Option<bool>,
    /// Whether the policy is applied to existing resources by background scans; defaults to
    /// true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub background: Option<bool>,
    /// Whether the schema of patched resources is validated. Deprecated: no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_validation: Option<bool>,
    /// Maximum seconds the webhook may take to apply the policy (1 to 30, default 10).
    /// Deprecated: use `webhookConfiguration.timeoutSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_timeout_seconds: Option<i32>,
    /// Whether mutate-existing rules are applied when the policy is created or updated.
    /// Deprecated: use `mutate.mutateExistingOnPolicyUpdate` in each rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate_existing_on_policy_update: Option<bool>,
    /// Whether generate rules run for existing trigger resources when the policy is created
    /// or updated. Deprecated: use `generateExisting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_existing_on_policy_update: Option<bool>,
    /// Whether generate rules run for existing trigger resources when the policy is created
    /// or updated. Deprecated: use `generate.generateExisting` in each rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_existing: Option<bool>,
    /// Whether mutations of generated resources and mutate-existing targets are applied with
    /// server-side apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_server_side_apply: Option<bool>,
    /// Settings of the admission webhook configuration that serves this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_configuration: Option<WebhookConfiguration>,
    /// Whether a warning is returned to the client when a validate rule passes with
    /// `Audit` failures or a mutate rule changes the resource; defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub emit_warning: Option<bool>,
}

/// Which matching rules of a policy are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ApplyRules {
    /// Apply every matching rule.
    All,
    /// Apply only the first matching rule.
    One,
}

/// How a webhook failure (error or timeout) is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FailurePolicy {
    /// Ignore the failure and let the request through.
    Ignore,
    /// Reject the request.
    Fail,
}

/// Settings of the admission webhook configuration that serves a policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfiguration {
    /// How errors and timeouts are handled (default `Fail`); shared by all of the policy's
    /// rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// Maximum seconds allowed to apply the policy (1 to 30, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    /// CEL conditions a request must meet to be sent to the webhook.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_conditions: Vec<MatchCondition>,
}

/// Runtime state of a policy, written by Kyverno.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// Whether the policy is ready to serve admission requests. Deprecated: use the `Ready`
    /// condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Standard conditions; `Ready` tells whether the policy is in use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<StatusCondition>,
    /// Rules generated automatically for pod controllers (Deployment, CronJob, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autogen: Option<AutogenStatus>,
    /// Number of rules of each type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rulecount: Option<RuleCountStatus>,
    /// Whether a Kubernetes ValidatingAdmissionPolicy was generated from the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validatingadmissionpolicy: Option<ValidatingAdmissionPolicyStatus>,
}

/// A standard Kubernetes status condition (the shape of `metav1.Condition`). Every field but
/// `type` is optional here so that partial objects, such as test assertions on `Ready`, can
/// be read; Kyverno always writes all of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusCondition {
    /// The condition's type in CamelCase, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: Option<String>,
    /// A CamelCase identifier of the reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable explanation of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the condition last changed status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The `.metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Rules generated automatically from the policy's Pod rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutogenStatus {
    /// The generated rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// Number of rules of each type in a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RuleCountStatus {
    /// Number of validate rules.
    pub validate: i32,
    /// Number of generate rules.
    pub generate: i32,
    /// Number of mutate rules.
    pub mutate: i32,
    /// Number of verifyImages rules.
    pub verifyimages: i32,
}

/// Outcome of generating a ValidatingAdmissionPolicy from a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ValidatingAdmissionPolicyStatus {
    /// Whether a ValidatingAdmissionPolicy was generated.
    pub generated: bool,
    /// Why generation did not happen; empty on success.
    pub message: String,
}

/// The specification of a ClusterPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kyverno.io",
    version = "v1",
    kind = "ClusterPolicy",
    shortname = "cpol",
    category = "kyverno"
)]
#[kube(status = "PolicyStatus")]
#[kube(printcolumn = r#"{"name":"ADMISSION","type":"boolean","jsonPath":".spec.admission"}"#)]
#[kube(printcolumn = r#"{"name":"BACKGROUND","type":"boolean","jsonPath":".spec.background"}"#)]
#[kube(
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type == \"Ready\")].status"}"#
)]
#[kube(printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#)]
#[kube(
    printcolumn = r#"{"name":"FAILURE POLICY","type":"string","jsonPath":".spec.failurePolicy","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"VALIDATE","type":"integer","jsonPath":".status.rulecount.validate","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"MUTATE","type":"integer","jsonPath":".status.rulecount.mutate","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"GENERATE","type":"integer","jsonPath":".status.rulecount.generate","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"VERIFY IMAGES","type":"integer","jsonPath":".status.rulecount.verifyimages","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"MESSAGE","type":"string","jsonPath":".status.conditions[?(@.type == \"Ready\")].message"}"#
)]
#[serde(transparent)]
pub struct ClusterPolicySpec(pub Spec);

/// The specification of a Policy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kyverno.io",
    version = "v1",
    kind = "Policy",
    shortname = "pol",
    category = "kyverno",
    namespaced
)]
#[kube(status = "PolicyStatus")]
#[kube(printcolumn = r#"{"name":"ADMISSION","type":"boolean","jsonPath":".spec.admission"}"#)]
#[kube(printcolumn = r#"{"name":"BACKGROUND","type":"boolean","jsonPath":".spec.background"}"#)]
#[kube(
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type == \"Ready\")].status"}"#
)]
#[kube(printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#)]
#[kube(
    printcolumn = r#"{"name":"FAILURE POLICY","type":"string","jsonPath":".spec.failurePolicy","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"VALIDATE","type":"integer","jsonPath":".status.rulecount.validate","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"MUTATE","type":"integer","jsonPath":".status.rulecount.mutate","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"GENERATE","type":"integer","jsonPath":".status.rulecount.generate","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"VERIFY IMAGES","type":"integer","jsonPath":".status.rulecount.verifyimages","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"MESSAGE","type":"string","jsonPath":".status.conditions[?(@.type == \"Ready\")].message"}"#
)]
#[serde(transparent)]
pub struct PolicySpec(pub Spec);

deref_to!(Spec => ClusterPolicySpec, PolicySpec);

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;

    #[test]
    fn printer_columns_match_upstream() {
        for crd in [ClusterPolicy::crd(), Policy::crd()] {
            let version = &crd.spec.versions[0];
            let columns: Vec<_> = version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| (c.name.as_str(), c.priority))
                .collect();
            assert_eq!(
                columns,
                [
                    ("ADMISSION", None),
                    ("BACKGROUND", None),
                    ("READY", None),
                    ("AGE", None),
                    ("FAILURE POLICY", Some(1)),
                    ("VALIDATE", Some(1)),
                    ("MUTATE", Some(1)),
                    ("GENERATE", Some(1)),
                    ("VERIFY IMAGES", Some(1)),
                    ("MESSAGE", None),
                ]
            );
            assert!(
                version
                    .subresources
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .is_some()
            );
        }
    }

    #[test]
    fn spec_round_trips_and_derefs() {
        let doc = json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "p"},
            "spec": {
                "validationFailureAction": "Enforce",
                "background": false,
                "failurePolicy": "Ignore",
                "applyRules": "One",
                "webhookConfiguration": {"timeoutSeconds": 5, "matchConditions": [{"name": "a", "expression": "true"}]},
                "rules": [{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                           "validate": {"message": "m", "pattern": {"spec": {"=(hostPID)": false}}}}]
            },
            "status": {"rulecount": {"validate": 1, "generate": 0, "mutate": 0, "verifyimages": 0},
                       "validatingadmissionpolicy": {"generated": false, "message": ""}}
        });
        let p: ClusterPolicy = serde_json::from_value(doc.clone()).expect("policy");
        assert_eq!(p.spec.background, Some(false));
        assert_eq!(p.spec.rules.len(), 1);
        assert_eq!(serde_json::to_value(&p).expect("ser"), doc);
    }

    #[test]
    fn lowercase_failure_action_in_spec_and_crd() {
        let s: Spec =
            serde_json::from_value(json!({"validationFailureAction": "audit"})).expect("spec");
        assert_eq!(
            s.validation_failure_action,
            Some(ValidationFailureAction::Audit)
        );
        let crd = serde_json::to_value(ClusterPolicy::crd()).expect("crd");
        let field = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["validationFailureAction"];
        assert_eq!(
            field["enum"],
            json!(["audit", "enforce", "Audit", "Enforce"])
        );
        assert_eq!(field["default"], json!("Audit"));
    }
}
