//! Shared Kubernetes glue of the kyverno-rs controllers: the [`admin`] server, the [`policy_cache`] fed by
//! [`watch`]es, the `kyverno` ConfigMap ([`config`]), [`namespaces`]' labels, [`leader`] election,
//! and the engine's context data from the API server ([`provider`]).
pub mod admin;
pub mod cel_policies;
pub mod config;
pub mod leader;
pub mod namespaces;
pub mod policy_cache;
pub mod provider;
pub mod reports;
pub mod roles;
pub mod singleton;
pub mod telemetry;
pub mod watch;
