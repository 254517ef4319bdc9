//! Kyverno's metrics shared by the controllers (`kyverno_policy_results_total`,
//! `kyverno_policy_execution_duration_seconds`, `kyverno_controller_*`) and the readiness of a
//! controller that works only while it leads.
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::admin::Admin;

/// Kyverno's default histogram buckets, in seconds.
pub const BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0,
];

/// The `rule_execution_cause` of results from background scans.
pub const CAUSE_BACKGROUND_SCAN: &str = "background_scan";

/// Labels of the policy metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// `enforce` or `audit`.
    pub policy_validation_mode: String,
    /// `cluster` or `namespaced`.
    pub policy_type: String,
    /// Whether the policy also runs in background scans.
    pub policy_background_mode: bool,
    /// The policy's name.
    pub policy_name: String,
    /// The policy's namespace (`-` for a ClusterPolicy).
    pub policy_namespace: String,
    /// Kind of the resource.
    pub resource_kind: String,
    /// Namespace of the resource.
    pub resource_namespace: String,
    /// The request's operation.
    pub resource_request_operation: String,
    /// The rule's name.
    pub rule_name: String,
    /// `pass`, `fail`, `warn`, `error` or `skip`.
    pub rule_result: String,
    /// `validate` or `mutate`.
    pub rule_type: String,
    /// `admission_request` or `background_scan`.
    pub rule_execution_cause: String,
}

/// Makes histograms with [`BUCKETS`].
#[derive(Clone, Debug)]
pub struct KyvernoBuckets;

impl MetricConstructor<Histogram> for KyvernoBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(BUCKETS)
    }
}

/// `kyverno_policy_results_total` and `kyverno_policy_execution_duration_seconds`.
#[derive(Clone, Debug)]
pub struct PolicyMetrics {
    results: Family<PolicyLabels, Counter>,
    duration: Family<PolicyLabels, Histogram, KyvernoBuckets>,
}

impl PolicyMetrics {
    /// The policy metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let results = Family::<PolicyLabels, Counter>::default();
        let duration = Family::new_with_constructor(KyvernoBuckets);
        registry.register(
            "kyverno_policy_results",
            "Results of policy rules applied to resources",
            results.clone(),
        );
        registry.register(
            "kyverno_policy_execution_duration_seconds",
            "Time taken to apply a policy rule",
            duration.clone(),
        );
        Self { results, duration }
    }

    /// Records the result of a rule and the time its policy took.
    pub fn rule(&self, labels: &PolicyLabels, duration: Duration) {
        self.results.get_or_create(labels).inc();
        self.duration
            .get_or_create(labels)
            .observe(duration.as_secs_f64());
    }
}

/// Labels of `kyverno_controller_reconcile_total` and `kyverno_controller_drop_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller_name: String,
}

/// Labels of `kyverno_controller_requeue_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequeueLabels {
    controller_name: String,
    num_requeues: u32,
}

/// Kyverno's work-queue metrics of one controller: reconciliations, requeues after a failure,
/// and items dropped.
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    labels: ControllerLabels,
    reconciles: Family<ControllerLabels, Counter>,
    requeues: Family<RequeueLabels, Counter>,
    drops: Family<ControllerLabels, Counter>,
}

impl ControllerMetrics {
    /// The metrics of the controller `controller_name`, registered in `registry`.
    pub fn register(registry: &mut Registry, controller_name: &str) -> Self {
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let requeues = Family::<RequeueLabels, Counter>::default();
        let drops = Family::<ControllerLabels, Counter>::default();
        registry.register(
            "kyverno_controller_reconcile",
            "Reconciliations performed by the controller",
            reconciles.clone(),
        );
        registry.register(
            "kyverno_controller_requeue",
            "Items requeued by the controller after a failure",
            requeues.clone(),
        );
        registry.register(
            "kyverno_controller_drop",
            "Items dropped by the controller",
            drops.clone(),
        );
        let labels = ControllerLabels {
            controller_name: controller_name.to_owned(),
        };
        // Present from the start, at zero.
        drop(reconciles.get_or_create(&labels));
        drop(drops.get_or_create(&labels));
        Self {
            labels,
            reconciles,
            requeues,
            drops,
        }
    }

    /// Counts `count` reconciliations.
    pub fn reconciled(&self, count: u64) {
        self.reconciles.get_or_create(&self.labels).inc_by(count);
    }

    /// Counts an item requeued after its `num_requeues`-th failure.
    pub fn requeued(&self, num_requeues: u32) {
        self.requeues
            .get_or_create(&RequeueLabels {
                controller_name: self.labels.controller_name.clone(),
                num_requeues,
            })
            .inc();
    }

    /// Counts an item given up on.
    pub fn dropped(&self) {
        self.drops.get_or_create(&self.labels).inc();
    }
}

/// Readiness of work that runs only while this replica leads: a standby replica is ready (it
/// has nothing to sync); the leader is ready once [`LeaderReadiness::synced`] was called. Made
/// when the work starts; dropping it (leadership lost) marks the replica ready again, as a
/// standby.
#[derive(Debug)]
pub struct LeaderReadiness {
    admin: Arc<Admin>,
}

impl LeaderReadiness {
    /// Marks the replica not ready until its caches have synced.
    pub fn syncing(admin: Arc<Admin>) -> Self {
        admin.set_ready(false);
        Self { admin }
    }

    /// The caches have synced: the replica is ready.
    pub fn synced(&self) {
        self.admin.set_ready(true);
    }
}

impl Drop for LeaderReadiness {
    fn drop(&mut self) {
        self.admin.set_ready(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kyverno_metric_names_and_readiness() {
        let mut registry = Registry::default();
        let policies = PolicyMetrics::register(&mut registry);
        let controller = ControllerMetrics::register(&mut registry, "background-scan-controller");
        policies.rule(
            &PolicyLabels {
                policy_validation_mode: "audit".into(),
                policy_type: "cluster".into(),
                policy_background_mode: true,
                policy_name: "require-labels".into(),
                policy_namespace: "-".into(),
                resource_kind: "Pod".into(),
                resource_namespace: "default".into(),
                resource_request_operation: "CREATE".into(),
                rule_name: "check".into(),
                rule_result: "fail".into(),
                rule_type: "validate".into(),
                rule_execution_cause: CAUSE_BACKGROUND_SCAN.into(),
            },
            Duration::from_millis(1),
        );
        controller.reconciled(3);
        controller.requeued(1);
        let admin = Admin::new(registry);
        let text = admin.encode_metrics();
        for expected in [
            "kyverno_policy_results_total{policy_validation_mode=\"audit\"",
            "rule_execution_cause=\"background_scan\"} 1",
            "kyverno_policy_execution_duration_seconds_count{",
            "kyverno_controller_reconcile_total{controller_name=\"background-scan-controller\"} 3",
            "kyverno_controller_requeue_total{controller_name=\"background-scan-controller\",num_requeues=\"1\"} 1",
            "kyverno_controller_drop_total{controller_name=\"background-scan-controller\"} 0",
        ] {
            assert!(text.contains(expected), "{expected} missing in\n{text}");
        }

        let readiness = LeaderReadiness::syncing(Arc::clone(&admin));
        assert!(!admin.is_ready());
        readiness.synced();
        assert!(admin.is_ready());
        let readiness = LeaderReadiness::syncing(Arc::clone(&admin));
        drop(readiness);
        assert!(admin.is_ready());
    }
}
