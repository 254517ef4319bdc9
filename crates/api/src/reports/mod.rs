//! The `reports.kyverno.io` API group: EphemeralReport and ClusterEphemeralReport, the short-lived
//! per-resource reports that Kyverno aggregates into policy reports.
pub mod v1;
