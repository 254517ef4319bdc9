//! What the reports controller reports on the admin server: Kyverno's controller metrics, its
//! own report gauges, and readiness.
use std::sync::Arc;

use kyverno_runtime::admin::Admin;
use kyverno_runtime::telemetry::ControllerMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `controller_name` of the aggregation's controller metrics, as upstream names it.
pub const CONTROLLER_NAME: &str = "aggregate-report-controller";

/// Labels of the report gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    /// `PolicyReport` or `ClusterPolicyReport`.
    kind: String,
}

/// The aggregation's metrics and the admin state serving them.
#[derive(Clone, Debug)]
pub struct Telemetry {
    /// Readiness and `/metrics`.
    pub admin: Arc<Admin>,
    /// `kyverno_controller_*` of the [`CONTROLLER_NAME`] controller: one reconciliation per
    /// report scope written, requeues after failed writes, drops of unreadable ephemeral
    /// reports.
    pub controller: ControllerMetrics,
    report_objects: Family<KindLabels, Gauge>,
    ephemeral_reports: Counter,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::default();
        let controller = ControllerMetrics::register(&mut registry, CONTROLLER_NAME);
        let report_objects = Family::<KindLabels, Gauge>::default();
        let ephemeral_reports = Counter::default();
        registry.register(
            "kyverno_rs_report_objects",
            "PolicyReport and ClusterPolicyReport objects (shards included) kept by the reports controller",
            report_objects.clone(),
        );
        registry.register(
            "kyverno_rs_ephemeral_reports_aggregated",
            "Ephemeral reports aggregated into policy reports",
            ephemeral_reports.clone(),
        );
        Self {
            admin: Admin::new(registry),
            controller,
            report_objects,
            ephemeral_reports,
        }
    }
}

impl Telemetry {
    /// Sets how many namespaced (`PolicyReport`) and cluster (`ClusterPolicyReport`) report
    /// objects are kept.
    pub fn report_objects(&self, namespaced: usize, cluster: usize) {
        for (kind, count) in [
            ("PolicyReport", namespaced),
            ("ClusterPolicyReport", cluster),
        ] {
            self.report_objects
                .get_or_create(&KindLabels {
                    kind: kind.to_owned(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Counts an ephemeral report aggregated.
    pub fn ephemeral_report_aggregated(&self) {
        self.ephemeral_reports.inc();
    }
}
