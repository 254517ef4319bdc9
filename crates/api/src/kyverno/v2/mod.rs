//! `kyverno.io/v2`.
pub mod cleanup_policy;
pub mod policy_exception;
pub mod update_request;
