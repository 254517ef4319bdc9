//! Validate rules: patterns, deny conditions, foreach loops, CEL, Pod Security and manifest
//! signatures.
use std::borrow::Cow;

use k8s_openapi::api::admissionregistration::v1 as admission;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::ContextEntry;
use super::image_verification::{Deny, Manifests};
use super::mutate::AnyAllConditions;
use crate::schema::preserve_unknown_fields;

/// A validate rule: checks matching resources with exactly one of `pattern`, `anyPattern`,
/// `deny`, `foreach`, `podSecurity`, `cel` or `manifests`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// What happens on failure for this rule (Audit or Enforce); overrides the policy's
    /// `validationFailureAction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<ValidationFailureAction>,
    /// Per-namespace overrides of the failure action.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_action_overrides: Vec<ValidationFailureActionOverride>,
    /// The message reported when the check fails; may contain variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Manifest signatures to verify (signed YAML resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Manifests>,
    /// Loops over sub-elements of the resource and validates each one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreach: Vec<ForEachValidation>,
    /// An overlay-style pattern (with anchors and wildcards) the resource must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub pattern: Option<Value>,
    /// A list of patterns of which at least one must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub any_pattern: Option<Value>,
    /// Conditions that, when they hold, fail the validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Deny>,
    /// Pod Security Standards checks, with exemptions for given controls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<PodSecurity>,
    /// Checks written in the Common Expression Language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<Cel>,
    /// A kyverno-json assertion tree. Deprecated: accepted but ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub assert: Option<Value>,
    /// Let resources that already violated the rule before an update keep violating it;
    /// defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub allow_existing_violations: Option<bool>,
}

/// What happens when a validation fails: `Audit` reports it, `Enforce` blocks the request.
/// The lowercase spellings `audit` and `enforce` are accepted too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValidationFailureAction {
    /// Allow the request and record the failure in a policy report.
    #[default]
    #[serde(alias = "audit")]
    Audit,
    /// Block the request.
    #[serde(alias = "enforce")]
    Enforce,
}

impl JsonSchema for ValidationFailureAction {
    fn schema_name() -> Cow<'static, str> {
        "ValidationFailureAction".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        SpelledValidationFailureAction::json_schema(generator)
    }
}

// The schema of `ValidationFailureAction`: every spelling the API accepts. Its description
// becomes the CRD description of the fields of that type.
#[derive(JsonSchema)]
#[schemars(
    description = "What happens when a validation fails: `Audit` (or `audit`) records it in a policy report, `Enforce` (or `enforce`) blocks the request."
)]
#[allow(dead_code)]
enum SpelledValidationFailureAction {
    /// Report failures.
    #[schemars(rename = "audit")]
    AuditLower,
    /// Block the request.
    #[schemars(rename = "enforce")]
    EnforceLower,
    /// Report failures.
    Audit,
    /// Block the request.
    Enforce,
}

impl ValidationFailureAction {
    /// Whether failures block the request.
    pub fn is_enforce(self) -> bool {
        self == Self::Enforce
    }
}

/// A failure action applied in selected namespaces only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationFailureActionOverride {
    /// The failure action used in the selected namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ValidationFailureAction>,
    /// Namespace names (wildcards allowed) the override applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Label selector on namespaces the override applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// Validation applied to each element of a list taken from the resource or the context.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForEachValidation {
    /// A JMESPath expression yielding the elements to iterate over; each one is available as
    /// `{{ element }}` (and its index as `{{ elementIndex }}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// Whether patterns apply to the element (true) or to the whole resource (false).
    /// By default, to the element when it is an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_scope: Option<bool>,
    /// Variables loaded for each element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextEntry>,
    /// Conditions an element must meet to be validated; other elements are skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub preconditions: Option<AnyAllConditions>,
    /// An overlay-style pattern each element must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub pattern: Option<Value>,
    /// A list of patterns of which at least one must match each element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub any_pattern: Option<Value>,
    /// Conditions that, when they hold for an element, fail the validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Deny>,
    /// A nested foreach (a list of ForEachValidation) applied to each element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub foreach: Option<Value>,
}

/// Pod Security Standards validation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurity {
    /// The Pod Security Standard level to enforce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<PodSecurityLevel>,
    /// The Pod Security Standards version (`v1.19` .. or `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Controls (optionally for given images, fields and values) exempted from the check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<PodSecurityStandard>,
}

/// A Pod Security Standard level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// No restrictions.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Current pod hardening best practices.
    Restricted,
}

/// A Pod Security Standard control exempted from a podSecurity check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityStandard {
    /// The control's name as in the Pod Security Standards, e.g. `Capabilities`,
    /// `Host Namespaces`, `Running as Non-root`.
    pub control_name: String,
    /// Image references (wildcards allowed) of containers exempted; container-level controls
    /// only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// The restricted field the exemption is limited to; all of the control's fields when
    /// unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_field: Option<String>,
    /// The values of the restricted field that are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// CEL validation, in the shape of a Kubernetes ValidatingAdmissionPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cel {
    /// Also generate a Kubernetes ValidatingAdmissionPolicy from this rule; defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub generate: Option<bool>,
    /// CEL expressions that must all evaluate to true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expressions: Vec<admission::Validation>,
    /// The kind of the parameter resource available as `params`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_kind: Option<admission::ParamKind>,
    /// Which parameter resource(s) to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_ref: Option<admission::ParamRef>,
    /// CEL expressions producing audit annotations for the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_annotations: Vec<admission::AuditAnnotation>,
    /// Named CEL expressions available as `variables.<name>` in the other expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<admission::Variable>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_action_accepts_lowercase_and_writes_canonical() {
        let a: ValidationFailureAction = serde_json::from_str("\"enforce\"").expect("enforce");
        assert!(a.is_enforce());
        let a: ValidationFailureAction = serde_json::from_str("\"audit\"").expect("audit");
        assert_eq!(a, ValidationFailureAction::Audit);
        assert_eq!(
            serde_json::to_string(&ValidationFailureAction::Enforce).expect("ser"),
            "\"Enforce\""
        );
        assert!(serde_json::from_str::<ValidationFailureAction>("\"Block\"").is_err());
    }

    #[test]
    fn explicit_false_survives() {
        let v: Validation =
            serde_json::from_str(r#"{"allowExistingViolations":false,"cel":{"generate":false}}"#)
                .expect("validation");
        assert_eq!(v.allow_existing_violations, Some(false));
        let back = serde_json::to_value(&v).expect("ser");
        assert_eq!(back["allowExistingViolations"], Value::Bool(false));
        assert_eq!(back["cel"]["generate"], Value::Bool(false));
    }

    #[test]
    fn foreach_keeps_nested_foreach_and_preconditions() {
        let doc = serde_json::json!({
            "list": "request.object.spec.containers",
            "preconditions": {"all": [{"key": "{{ element.name }}", "operator": "Equals", "value": "x"}]},
            "foreach": [{"list": "element.ports", "deny": {"conditions": {"any": []}}}]
        });
        let f: ForEachValidation = serde_json::from_value(doc.clone()).expect("foreach");
        assert_eq!(f.preconditions.as_ref().map(|p| p.all.len()), Some(1));
        assert_eq!(serde_json::to_value(&f).expect("ser"), doc);
    }
}
