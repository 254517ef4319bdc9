//! A policy rule.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::ContextEntry;
use super::generate::Generation;
use super::image_verification::ImageVerification;
use super::match_resources::MatchResources;
use super::mutate::Mutation;
use super::validate::Validation;
use crate::schema::preserve_unknown_fields;

/// A rule: which resources it selects and the one action (validate, mutate, generate or
/// verifyImages) it applies to them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The rule's name, unique within its policy.
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
    /// Conditions (`any`/`all`) that must hold for the rule to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub preconditions: Option<Value>,
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
