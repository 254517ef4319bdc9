//! The Kyverno background scan controller: evaluates existing resources against the policies
//! with `background: true` and writes the results as EphemeralReports, which the reports
//! controller aggregates.
//!
//! [`policies`] keeps the background ClusterPolicies and Policies and [`cel`] evaluates the
//! background CEL policies (synchronous, unit-tested); [`scanner`] watches
//! them and the kinds they select and runs the scans while this replica holds the Lease;
//! [`telemetry`] is what it reports on the admin server.
pub mod cel;
pub mod policies;
pub mod scanner;
pub mod telemetry;
