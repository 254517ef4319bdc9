//! `kyverno.io/v2beta1`.
pub mod global_context_entry;
