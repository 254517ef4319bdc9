//! Prometheus metrics under Kyverno's names and labels, served on the admin server's `/metrics`
//! ([`kyverno_runtime::admin`]).
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use kyverno_runtime::telemetry::PolicyLabels;
use kyverno_runtime::telemetry::{KyvernoBuckets, PolicyMetrics};

/// Labels of the admission request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// Kind of the resource.
    pub resource_kind: String,
    /// Namespace of the resource.
    pub resource_namespace: String,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub resource_request_operation: String,
    /// Whether the request was admitted.
    pub request_allowed: bool,
}

/// Labels of the admission outputs metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputLabels {
    /// `report`, `event` or `update_request`.
    pub output: String,
    /// `written`, `failed` or `dropped` (the queue was full).
    pub outcome: String,
}

/// The controller's metrics, registered in the registry the admin server's `/metrics` serves.
#[derive(Clone, Debug)]
pub struct Metrics {
    admission_requests: Family<AdmissionLabels, Counter>,
    admission_review_duration: Family<AdmissionLabels, Histogram, KyvernoBuckets>,
    policies: PolicyMetrics,
    admission_outputs: Family<OutputLabels, Counter>,
}

impl Metrics {
    /// Registers the controller's metrics, under Kyverno's names, in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let admission_requests = Family::<AdmissionLabels, Counter>::default();
        let admission_review_duration = Family::new_with_constructor(KyvernoBuckets);
        let admission_outputs = Family::<OutputLabels, Counter>::default();
        registry.register(
            "kyverno_admission_requests",
            "Admission requests processed by Kyverno",
            admission_requests.clone(),
        );
        registry.register(
            "kyverno_admission_review_duration_seconds",
            "Time Kyverno took to answer an admission request",
            admission_review_duration.clone(),
        );
        let policies = PolicyMetrics::register(registry);
        registry.register(
            "kyverno_admission_outputs",
            "Reports, Events and UpdateRequests of admission requests, by outcome",
            admission_outputs.clone(),
        );
        Self {
            admission_requests,
            admission_review_duration,
            policies,
            admission_outputs,
        }
    }

    /// Records an answered admission request.
    pub fn admission(&self, labels: &AdmissionLabels, duration: Duration) {
        self.admission_requests.get_or_create(labels).inc();
        self.admission_review_duration
            .get_or_create(labels)
            .observe(duration.as_secs_f64());
    }

    /// Records the result of a rule and the time its policy took.
    pub fn rule(&self, labels: &PolicyLabels, duration: Duration) {
        self.policies.rule(labels, duration);
    }

    /// Counts an admission output (`report`, `event`, `update_request`) by outcome.
    pub fn output(&self, output: &str, outcome: &str) {
        self.admission_outputs
            .get_or_create(&OutputLabels {
                output: output.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use kyverno_runtime::admin::Admin;

    use super::*;

    #[test]
    fn kyverno_metric_names() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let admission = AdmissionLabels {
            resource_kind: "Pod".into(),
            resource_namespace: "default".into(),
            resource_request_operation: "CREATE".into(),
            request_allowed: false,
        };
        metrics.admission(&admission, Duration::from_millis(3));
        metrics.rule(
            &PolicyLabels {
                policy_validation_mode: "enforce".into(),
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
                rule_execution_cause: "admission_request".into(),
            },
            Duration::from_millis(1),
        );
        let text = Admin::new(registry).encode_metrics();
        for name in [
            "kyverno_admission_requests_total{resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"CREATE\",request_allowed=\"false\"} 1",
            "kyverno_admission_review_duration_seconds_bucket{",
            "kyverno_policy_results_total{policy_validation_mode=\"enforce\"",
            "kyverno_policy_execution_duration_seconds_count{",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
