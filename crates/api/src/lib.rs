//! Rust types for the Kyverno API.
pub mod crds;
pub mod kyverno;
pub mod schema;
