//! `kyverno.io/v2beta1`.
