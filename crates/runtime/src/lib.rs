//! Shared Kubernetes glue of the kyverno-rs controllers: the [`policy_cache`] fed by
//! [`watch`]es, the `kyverno` ConfigMap ([`config`]), [`namespaces`]' labels, [`leader`] election,
//! and the engine's context data from the API server ([`provider`]).
pub mod config;
pub mod leader;
pub mod namespaces;
pub mod policy_cache;
pub mod provider;
pub mod reports;
pub mod singleton;
pub mod watch;
