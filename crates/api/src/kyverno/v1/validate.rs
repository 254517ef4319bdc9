//! Placeholder: being written.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Placeholder: being written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Validation {}
