//! What the scanner reports on the admin server: Kyverno's policy and controller metrics, and
//! readiness.
use std::sync::Arc;

use kyverno_runtime::admin::Admin;
use kyverno_runtime::telemetry::{ControllerMetrics, PolicyMetrics};
use prometheus_client::registry::Registry;

/// The `controller_name` of the scanner's controller metrics, as upstream names it.
pub const CONTROLLER_NAME: &str = "background-scan-controller";

/// The scanner's metrics and the admin state serving them.
#[derive(Clone, Debug)]
pub struct Telemetry {
    /// Readiness and `/metrics`.
    pub admin: Arc<Admin>,
    /// `kyverno_policy_results_total` and `kyverno_policy_execution_duration_seconds`, with
    /// `rule_execution_cause="background_scan"`.
    pub policies: PolicyMetrics,
    /// `kyverno_controller_*` of the [`CONTROLLER_NAME`] controller: one reconciliation per
    /// resource evaluated, requeues after failed scans, drops after too many.
    pub controller: ControllerMetrics,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::default();
        let policies = PolicyMetrics::register(&mut registry);
        let controller = ControllerMetrics::register(&mut registry, CONTROLLER_NAME);
        Self {
            admin: Admin::new(registry),
            policies,
            controller,
        }
    }
}
