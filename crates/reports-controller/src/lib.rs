//! The Kyverno reports controller: aggregates the EphemeralReports and ClusterEphemeralReports
//! written by the admission controller and the background scanner into one PolicyReport per
//! namespace (`polr-ns-<namespace>`, sharded when large) and a ClusterPolicyReport
//! (`clusterpolicyreport`), then deletes the ephemeral reports.
//!
//! [`aggregate`] holds the synchronous state, its repeated parts shared through [`intern`];
//! [`controller`] feeds it from watches and writes the reports while this replica holds the
//! Lease; [`cleanup`] is the `report-cleanup` command; [`telemetry`] is what it reports on the
//! admin server.
pub mod aggregate;
pub mod cleanup;
pub mod controller;
pub mod intern;
pub mod recent;
pub mod telemetry;
