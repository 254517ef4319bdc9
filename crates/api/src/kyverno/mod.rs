//! The `kyverno.io` API group.
pub mod v1;
pub mod v2;
pub mod v2beta1;
