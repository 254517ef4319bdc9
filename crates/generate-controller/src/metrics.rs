//! The background controller's metrics, with upstream's names: reconciliations, requeues and
//! drops per controller.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Upstream's name of the UpdateRequest controller in its metrics.
pub const CONTROLLER_NAME: &str = "background-controller";

/// The labels of the reconcile and drop counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The controller.
    pub controller_name: String,
}

/// The labels of the requeue counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequeueLabels {
    /// The controller.
    pub controller_name: String,
    /// How many times the request had been queued again.
    pub num_requeues: String,
}

/// The counters.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    reconcile: Family<ControllerLabels, Counter>,
    requeue: Family<RequeueLabels, Counter>,
    drop: Family<ControllerLabels, Counter>,
}

impl Metrics {
    /// Registers the counters in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kyverno_controller_reconcile",
            "Number of reconciliations per controller",
            self.reconcile.clone(),
        );
        registry.register(
            "kyverno_controller_requeue",
            "Number of requeues per controller",
            self.requeue.clone(),
        );
        registry.register(
            "kyverno_controller_drop",
            "Number of requests dropped per controller",
            self.drop.clone(),
        );
    }

    fn labels() -> ControllerLabels {
        ControllerLabels {
            controller_name: CONTROLLER_NAME.to_owned(),
        }
    }

    /// One UpdateRequest processed.
    pub fn reconciled(&self) {
        self.reconcile.get_or_create(&Self::labels()).inc();
    }

    /// One UpdateRequest queued again after `retries` failures.
    pub fn requeued(&self, retries: u32) {
        self.requeue
            .get_or_create(&RequeueLabels {
                controller_name: CONTROLLER_NAME.to_owned(),
                num_requeues: retries.to_string(),
            })
            .inc();
    }

    /// One UpdateRequest given up after its last retry.
    pub fn dropped(&self) {
        self.drop.get_or_create(&Self::labels()).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_metric_names() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.reconciled();
        metrics.requeued(1);
        metrics.dropped();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for line in [
            "kyverno_controller_reconcile_total{controller_name=\"background-controller\"} 1",
            "kyverno_controller_requeue_total{controller_name=\"background-controller\",num_requeues=\"1\"} 1",
            "kyverno_controller_drop_total{controller_name=\"background-controller\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
