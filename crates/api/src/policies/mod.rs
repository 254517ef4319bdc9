//! The `policies.kyverno.io` API group: CEL-based policies and their exceptions.
//!
//! Every kind is modelled at upstream's storage version, `v1beta1`; the CRDs also serve `v1`
//! (and `v1alpha1` for the cluster-wide kinds and PolicyException) with the same schema.
pub mod common;
pub mod deleting;
pub mod exception;
pub mod generating;
pub mod image_validating;
pub mod mutating;
pub mod validating;
