//! The Kyverno background controller (Deployment `kyverno-background-controller`): processes the
//! `kyverno.io/v2` UpdateRequests of generate and mutate-existing rules, and keeps the resources
//! of synchronized generate rules in line with their rules, their clone sources and their
//! triggers.
//!
//! - [`workers`] watch the UpdateRequests and process them with the [`processor`]
//!   (Pending → Completed / Skip / Failed, retries, deletion once finished);
//! - [`background`] creates UpdateRequests itself for policy changes ([`policies`]) and for
//!   changes made by hand to generated resources and clone sources;
//! - [`controller`] wires them together while this replica holds the Lease.
pub mod background;
pub mod cel_policies;
pub mod cluster;
pub mod controller;
pub mod generating;
pub mod labels;
pub mod metrics;
pub mod own_writes;
pub mod policies;
pub mod processor;
pub mod queue;
pub mod request;
pub mod tasks;
pub mod workers;
