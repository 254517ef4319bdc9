//! The background controller's metrics, with upstream's names: the work-queue counters of the
//! UpdateRequest controller (`kyverno_controller_*`), and the results and execution times of the
//! rules and policies it runs (`kyverno_policy_results_total`,
//! `kyverno_policy_execution_duration_seconds`).
use std::time::Duration;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_policy_core::response::RuleResponse;
use kyverno_runtime::telemetry::{
    CAUSE_BACKGROUND_SCAN, ControllerMetrics, PolicyLabels, PolicyMetrics,
};
use prometheus_client::registry::Registry;
use serde_json::Value;

/// Upstream's name of the UpdateRequest controller in its metrics.
pub const CONTROLLER_NAME: &str = "background-controller";

/// The policy that ran, as the policy metrics label it.
#[derive(Clone, Copy, Debug)]
pub struct Executed<'a> {
    /// The policy's name.
    pub policy_name: &'a str,
    /// The policy's namespace (`None` for cluster-wide kinds).
    pub policy_namespace: Option<&'a str>,
    /// `enforce` or `audit`.
    pub validation_mode: &'a str,
    /// Whether the policy also runs in background scans.
    pub background: bool,
    /// `generate` or `mutate`.
    pub rule_type: &'a str,
}

/// The controller's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    controller: ControllerMetrics,
    policies: PolicyMetrics,
}

impl Metrics {
    /// The metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        Self {
            controller: ControllerMetrics::register(registry, CONTROLLER_NAME),
            policies: PolicyMetrics::register(registry),
        }
    }

    /// Metrics registered nowhere (for callers that do not export them).
    pub fn unexported() -> Self {
        Self::register(&mut Registry::default())
    }

    /// One UpdateRequest processed.
    pub fn reconciled(&self) {
        self.controller.reconciled(1);
    }

    /// One UpdateRequest queued again after `retries` failures.
    pub fn requeued(&self, retries: u32) {
        self.controller.requeued(retries);
    }

    /// One UpdateRequest given up after its last retry.
    pub fn dropped(&self) {
        self.controller.dropped();
    }

    /// Counts the results of `rules` of the `executed` policy for `trigger` (requested with
    /// `operation`), which took `duration`.
    pub fn rules(
        &self,
        executed: &Executed<'_>,
        trigger: &Value,
        operation: AdmissionOperation,
        rules: &[RuleResponse],
        duration: Duration,
    ) {
        let text = |pointer: &str| {
            trigger
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        for rule in rules {
            let labels = PolicyLabels {
                policy_validation_mode: executed.validation_mode.to_owned(),
                policy_type: if executed.policy_namespace.is_some() {
                    "namespaced"
                } else {
                    "cluster"
                }
                .to_owned(),
                policy_background_mode: executed.background,
                policy_name: executed.policy_name.to_owned(),
                policy_namespace: executed.policy_namespace.unwrap_or("-").to_owned(),
                resource_kind: text("/kind"),
                resource_namespace: text("/metadata/namespace"),
                resource_request_operation: operation.as_str().to_owned(),
                rule_name: rule.name.clone(),
                rule_result: rule.status.as_str().to_owned(),
                rule_type: executed.rule_type.to_owned(),
                rule_execution_cause: CAUSE_BACKGROUND_SCAN.to_owned(),
            };
            self.policies.rule(&labels, duration);
        }
    }
}

#[cfg(test)]
mod tests {
    use kyverno_policy_core::response::{RuleStatus, RuleType};

    use super::*;

    #[test]
    fn upstream_metric_names() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.reconciled();
        metrics.requeued(1);
        metrics.dropped();
        let trigger = serde_json::json!({"kind": "Namespace", "metadata": {"name": "a"}});
        let executed = Executed {
            policy_name: "gen",
            policy_namespace: None,
            validation_mode: "audit",
            background: true,
            rule_type: "generate",
        };
        let rule = RuleResponse {
            name: "r".to_owned(),
            rule_type: RuleType::Generation,
            status: RuleStatus::Pass,
            message: String::new(),
        };
        metrics.rules(
            &executed,
            &trigger,
            AdmissionOperation::Create,
            &[rule],
            Duration::from_millis(3),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for line in [
            "kyverno_controller_reconcile_total{controller_name=\"background-controller\"} 1",
            "kyverno_controller_requeue_total{controller_name=\"background-controller\",num_requeues=\"1\"} 1",
            "kyverno_controller_drop_total{controller_name=\"background-controller\"} 1",
            "kyverno_policy_results_total{policy_validation_mode=\"audit\",policy_type=\"cluster\",\
             policy_background_mode=\"true\",policy_name=\"gen\",policy_namespace=\"-\",\
             resource_kind=\"Namespace\",resource_namespace=\"\",resource_request_operation=\"CREATE\",\
             rule_name=\"r\",rule_result=\"pass\",rule_type=\"generate\",\
             rule_execution_cause=\"background_scan\"} 1",
            "kyverno_policy_execution_duration_seconds_count{",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
