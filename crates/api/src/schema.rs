//! Schema helpers shared by the CRD types.
use schemars::{Schema, SchemaGenerator, json_schema};

/// Schema of a free-form field (patterns, patches, generate data): any JSON value, kept as-is by
/// the API server (`x-kubernetes-preserve-unknown-fields: true`).
pub fn preserve_unknown_fields(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}
