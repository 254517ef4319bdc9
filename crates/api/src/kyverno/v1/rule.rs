//! A policy rule.
use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MatchCondition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::ContextEntry;
use super::generate::Generation;
use super::image_verification::ImageVerification;
use super::match_resources::MatchResources;
use super::mutate::Mutation;
/// Re-exported: conditions are defined next to mutate rules and shared by every `any`/`all`
/// block (preconditions, deny, foreach, exceptions, cleanup policies).
pub use super::mutate::{AnyAllConditions, Condition, ConditionOperator};
use super::validate::Validation;
use crate::schema::preserve_unknown_fields;

/// A rule: which resources it selects and the one action (validate, mutate, generate or
/// verifyImages) it applies to them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The rule's name, unique within its policy.
    #[schemars(length(max = 63))]
    pub name: String,
    /// Variables loaded before the rule is evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextEntry>,
    /// The resources and requests the rule applies to.
    #[serde(rename = "match")]
    pub match_resources: MatchResources,
    /// Resources and requests excluded from the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<MatchResources>,
    /// Where to find image references in resources, by kind; used by verifyImages rules for
    /// kinds other than the built-in pod controllers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub image_extractors: BTreeMap<String, Vec<ImageExtractorConfig>>,
    /// Conditions that must hold for the rule to apply: an `any`/`all` block, or (older form)
    /// a list of conditions that must all hold. Values may contain variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub preconditions: Option<Value>,
    /// CEL conditions over the admission request that must all hold for the rule to apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cel_preconditions: Vec<MatchCondition>,
    /// Extra key/value pairs copied into the properties of the policy report results this rule
    /// produces.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub report_properties: BTreeMap<String, String>,
    /// Skip background requests (made by Kyverno's own background controllers) when the rule
    /// has no user-dependent match; defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub skip_background_requests: Option<bool>,
    /// Validation checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<Validation>,
    /// Mutations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate: Option<Mutation>,
    /// Resource generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generation>,
    /// Image signature and attestation checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_images: Vec<ImageVerification>,
}

/// How to locate image references inside a resource of a given kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageExtractorConfig {
    /// Path to the image field, with `*` for each array level, e.g. `/spec/containers/*/image`.
    pub path: String,
    /// Within the object at `path`, the field holding the image reference (when the object is
    /// not the reference itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Name of the extractor, used as the image entry's category; defaults to the path's
    /// last element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Within the object at `path`, the field that uniquely identifies each image entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A JMESPath expression applied to the extracted value, e.g. to trim a `docker://` prefix.
    /// Image digest mutation is not possible when this is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rule_fields_round_trip() {
        let doc = json!({
            "name": "check-images",
            "match": {"any": [{"resources": {"kinds": ["Task"]}}]},
            "imageExtractors": {"Task": [{"name": "steps", "path": "/spec/steps/*", "value": "image", "key": "name"}]},
            "celPreconditions": [{"name": "not-delete", "expression": "request.operation != 'DELETE'"}],
            "reportProperties": {"team": "platform"},
            "skipBackgroundRequests": false,
            "preconditions": [{"key": "{{ request.operation }}", "operator": "Equals", "value": "CREATE"}]
        });
        let rule: Rule = serde_json::from_value(doc.clone()).expect("rule");
        assert_eq!(rule.skip_background_requests, Some(false));
        assert_eq!(rule.image_extractors["Task"][0].path, "/spec/steps/*");
        assert_eq!(serde_json::to_value(&rule).expect("ser"), doc);
    }

    #[test]
    fn name_and_match_are_required() {
        assert!(serde_json::from_value::<Rule>(json!({"name": "r"})).is_err());
        assert!(serde_json::from_value::<Rule>(json!({"match": {}})).is_err());
    }
}
