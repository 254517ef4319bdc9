//! Rust types for the Kyverno API.
pub mod crds;
pub mod kyverno;
pub mod load;
mod newtype;
pub mod policies;
pub mod policy_report;
pub mod reports;
pub mod schema;
