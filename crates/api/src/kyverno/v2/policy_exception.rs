//! PolicyException (`kyverno.io/v2`): lifts policy rules for selected resources.
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kyverno::v1::match_resources::MatchResources;
use crate::kyverno::v1::mutate::AnyAllConditions;
use crate::kyverno::v1::validate::PodSecurityStandard;

/// The specification of a PolicyException: which policy rules it lifts, and for which resources.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kyverno.io",
    version = "v2",
    kind = "PolicyException",
    shortname = "polex",
    category = "kyverno",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct PolicyExceptionSpec {
    /// Whether the exception also applies to background scans. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
    /// The resources and requests the exception applies to.
    #[serde(rename = "match")]
    pub match_resources: MatchResources,
    /// Conditions (`any`/`all`) that must hold for the exception to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<AnyAllConditions>,
    /// The policies and rules that are lifted.
    pub exceptions: Vec<Exception>,
    /// Pod Security Standard controls to lift for the matched resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_security: Vec<PodSecurityStandard>,
}

/// A policy and the rules of it that an exception lifts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exception {
    /// The policy's name; a namespaced Policy is named `namespace/name`. Wildcards allowed.
    pub policy_name: String,
    /// The rule names, wildcards allowed (`autogen-` rules are listed separately).
    pub rule_names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_keep_free_form_values_and_operator_spelling() {
        let json = serde_json::json!({
            "any": [
                {"key": "{{ request.object.metadata.labels.color || '' }}", "operator": "Equals", "value": "blue"},
                {"key": 3, "operator": "AnyIn", "value": ["a", 1, {"b": true}], "message": "m"}
            ]
        });
        let conditions: AnyAllConditions =
            serde_json::from_value(json.clone()).expect("deserializes");
        assert_eq!(conditions.any.len(), 2);
        assert!(conditions.all.is_empty());
        assert_eq!(serde_json::to_value(&conditions).expect("serializes"), json);
    }

    #[test]
    fn exception_spec_round_trips_explicit_false_background() {
        let json = serde_json::json!({
            "background": false,
            "exceptions": [{"policyName": "p", "ruleNames": ["r", "autogen-r"]}],
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}
        });
        let spec: PolicyExceptionSpec = serde_json::from_value(json.clone()).expect("deserializes");
        assert_eq!(spec.background, Some(false));
        assert_eq!(serde_json::to_value(&spec).expect("serializes"), json);
    }
}
