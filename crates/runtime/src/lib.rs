//! Shared Kubernetes glue of the kyverno-rs controllers: the [`admin`] server, the [`policy_cache`] fed by
//! [`watch`]es, the `kyverno` ConfigMap ([`config`]), [`namespaces`]' labels, [`leader`] election,
//! the engine's context data from the API server ([`provider`]), and the webhooks' plumbing:
//! [`certificates`] in Secrets, [`tls`], the [`https`] server and [`admission_review`]s.
pub mod admin;
pub mod admission_review;
pub mod cel_policies;
pub mod certificates;
pub mod config;
pub mod https;
pub mod leader;
pub mod namespaces;
pub mod policy_cache;
pub mod provider;
pub mod reports;
pub mod roles;
pub mod singleton;
pub mod telemetry;
pub mod tls;
pub mod watch;
