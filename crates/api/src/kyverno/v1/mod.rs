//! `kyverno.io/v1`: ClusterPolicy and Policy.
pub mod context;
pub mod generate;
pub mod image_verification;
pub mod match_resources;
pub mod mutate;
pub mod policy;
pub mod rule;
pub mod validate;
