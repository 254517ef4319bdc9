//! `kyverno.io/v2`.
