//! What an answered validation request leaves behind, queued for the background writer (see
//! [`crate::outputs`]): the ephemeral report of an admitted resource, the `PolicyViolation`
//! Events, and the background checks that become UpdateRequests. Dry-run requests leave
//! nothing.
//!
//! The request path only queues the rule results: the writer builds the Events and the report
//! from them, as building a report of many results costs as much as evaluating the policies.
use std::sync::Arc;

use k8s_openapi::api::events::v1::Event;
use kube::api::DynamicObject;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_policy_core::engine::ContextProvider;
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::RuleResponse;
use kyverno_runtime::cel_policies::CachedCelPolicy;
use kyverno_runtime::config::KyvernoConfig;
use kyverno_runtime::policy_cache::{CachedPolicy, Snapshot};
use kyverno_runtime::reports::{
    PolicyResults, ReportedPolicy, SOURCE_ADMISSION, Subject, policies_report, resource_hash,
};
use serde_json::Value;

use crate::events::{EventSubject, leaves_events, policy_events};
use crate::outputs::{CelTriggers, Output, OutputQueue, Triggered};
use crate::review::AdmissionRequest;
use crate::update_requests::{CelTriggered, TriggerContext};

/// Where the outputs of requests go and how they are signed.
#[derive(Clone, Debug)]
pub struct Outputs {
    /// The queue of the background writer.
    pub queue: OutputQueue,
    /// Kyverno's namespace (UpdateRequests).
    pub namespace: String,
    /// `reportingInstance` of the Events (this replica).
    pub instance: String,
    /// The user the background controller sends requests as (`--backgroundServiceAccountName`):
    /// its requests do not trigger the rules and policies that skip background requests.
    pub background_user: String,
}

/// One answered validation request.
pub struct Answered<'a> {
    /// The request.
    pub request: &'a AdmissionRequest,
    /// Its operation.
    pub operation: AdmissionOperation,
    /// The engine's view of it.
    pub resource_request: &'a ResourceRequest,
    /// Whether the request was denied.
    pub blocked: bool,
}

/// A policy evaluated by the validating webhooks.
#[derive(Clone, Debug)]
pub enum EvaluatedPolicy {
    /// A ClusterPolicy or Policy.
    Kyverno(Arc<CachedPolicy>),
    /// A `policies.kyverno.io` validating kind.
    Cel(Arc<CachedCelPolicy>),
}

impl EvaluatedPolicy {
    /// The policy's `rules` as reports and Events take them.
    fn results<'a>(&'a self, rules: &'a [RuleResponse]) -> PolicyResults<'a> {
        match self {
            EvaluatedPolicy::Kyverno(cached) => PolicyResults {
                policy: ReportedPolicy::kyverno(&cached.policy),
                resource_version: &cached.resource_version,
                rules,
            },
            EvaluatedPolicy::Cel(cached) => PolicyResults {
                policy: ReportedPolicy::cel(cached),
                resource_version: &cached.resource_version,
                rules,
            },
        }
    }
}

/// The validate results of each policy evaluated for a request.
pub type ValidateResults = Vec<(EvaluatedPolicy, Vec<RuleResponse>)>;

/// The results of a validated request, which the background writer turns into Events and the
/// resource's ephemeral report.
#[derive(Debug, Default)]
pub struct Validated {
    results: ValidateResults,
    resource: Arc<Value>,
    request_uid: String,
    plural: String,
    reported: bool,
    blocked: bool,
    success_events: bool,
    instance: String,
}

impl Validated {
    /// What is lost when it is dropped: `report` when it has a report to write, else `event`.
    pub fn output_name(&self) -> &'static str {
        if self.reported { "report" } else { "event" }
    }

    /// How many rule results it holds.
    pub fn result_count(&self) -> usize {
        self.results.iter().map(|(_, rules)| rules.len()).sum()
    }

    /// Its Events (only those of the policies that blocked the request when denied) and, when
    /// the request was admitted, the ephemeral report of the resource.
    pub fn build(&self) -> (Vec<Event>, Option<DynamicObject>) {
        let results: Vec<PolicyResults<'_>> = self
            .results
            .iter()
            .map(|(policy, rules)| policy.results(rules))
            .collect();
        let subject = EventSubject {
            resource: reference(&self.resource),
            instance: self.instance.clone(),
        };
        let events = results
            .iter()
            .flat_map(|entry| {
                policy_events(
                    &entry.policy,
                    entry.rules,
                    &subject,
                    self.blocked,
                    self.success_events,
                )
            })
            .collect();
        let report = if self.reported {
            self.report(&results)
        } else {
            None
        };
        (events, report)
    }

    /// The ephemeral report of the admitted resource, named after the request (as upstream):
    /// none for resources without a uid (not stored yet).
    fn report(&self, results: &[PolicyResults<'_>]) -> Option<DynamicObject> {
        let subject = Subject::of(&self.resource, &self.plural)?;
        let evaluated: Vec<PolicyResults<'_>> = results
            .iter()
            .filter(|entry| !entry.rules.is_empty())
            .copied()
            .collect();
        Some(policies_report(
            &self.request_uid,
            &subject,
            SOURCE_ADMISSION,
            &evaluated,
            Some(&resource_hash(&self.resource)),
        ))
    }
}

impl Outputs {
    /// Queues what `answered` leaves behind given the validate `results` of its policies
    /// (only those that blocked it when denied): Events for failing results, and, when
    /// admitted, the ephemeral report of the resource. Nothing is queued when there is neither.
    pub fn after_validation(
        &self,
        answered: &Answered<'_>,
        mut results: ValidateResults,
        config: &KyvernoConfig,
    ) {
        if answered.request.dry_run == Some(true) {
            return;
        }
        let resource = answered.resource_request.resource();
        // Deletions and resources without a uid (not stored yet) get no report.
        let reported = !answered.blocked
            && answered.operation != AdmissionOperation::Delete
            && resource.pointer("/metadata/uid").is_some()
            && results.iter().any(|(_, rules)| !rules.is_empty());
        let success_events = config.generate_success_events;
        if !reported {
            // Only the policies with Events to write are kept for the writer.
            results.retain(|(_, rules)| leaves_events(rules, success_events));
            if results.is_empty() {
                return;
            }
        }
        self.queue.push(Output::Validated(Box::new(Validated {
            results,
            resource: Arc::clone(resource),
            request_uid: answered.request.uid.clone(),
            plural: answered.request.resource.resource.clone(),
            reported,
            blocked: answered.blocked,
            success_events,
            instance: self.instance.clone(),
        })));
    }

    /// Queues the background checks of the `triggering` policies (generate and mutate-existing
    /// rules) of an admitted request, which become UpdateRequests.
    pub fn trigger_background(
        &self,
        answered: &Answered<'_>,
        triggering: Vec<Arc<CachedPolicy>>,
        snapshot: &Snapshot,
        provider: &Arc<dyn ContextProvider>,
    ) {
        if answered.request.dry_run == Some(true) || answered.blocked || triggering.is_empty() {
            return;
        }
        self.queue.push(Output::Triggered(Box::new(Triggered {
            policies: triggering,
            request: answered.resource_request.clone(),
            trigger: trigger_context(answered),
            exceptions: Arc::clone(&snapshot.exceptions),
            provider: Arc::clone(provider),
            namespace: self.namespace.clone(),
            from_background_controller: self.sent_by_background_controller(answered),
        })));
    }

    /// Queues the UpdateRequests of the `policies.kyverno.io` policies (`triggered`) an
    /// admitted request triggers.
    pub fn trigger_cel(&self, answered: &Answered<'_>, mut triggered: Vec<CelTriggered>) {
        if self.sent_by_background_controller(answered) {
            triggered.retain(|policy| !policy.skip_background_requests);
        }
        if answered.request.dry_run == Some(true) || answered.blocked || triggered.is_empty() {
            return;
        }
        self.queue.push(Output::CelTriggered(Box::new(CelTriggers {
            policies: triggered,
            trigger: trigger_context(answered),
            namespace: self.namespace.clone(),
        })));
    }

    /// Whether the background controller sent the request of `answered`.
    fn sent_by_background_controller(&self, answered: &Answered<'_>) -> bool {
        answered.request.user_info.username == self.background_user
    }
}

/// The trigger and request of `answered` as UpdateRequests record them.
fn trigger_context(answered: &Answered<'_>) -> TriggerContext {
    TriggerContext::of(
        answered.request,
        answered.operation,
        answered.resource_request.resource(),
        answered.resource_request.request_info(),
    )
}

/// The reference of `resource` in Events.
fn reference(resource: &Value) -> k8s_openapi::api::core::v1::ObjectReference {
    let text = |pointer: &str| {
        resource
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        name: text("/metadata/name"),
        namespace: text("/metadata/namespace"),
        uid: text("/metadata/uid"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use kyverno_policy_core::response::{RuleStatus, RuleType};
    use kyverno_runtime::policy_cache::PolicyCache;
    use prometheus_client::registry::Registry;
    use serde_json::json;

    use super::*;
    use crate::metrics::Metrics;

    /// What a CREATE of a Pod (with `uid` when given) with one rule of status `status` queues.
    fn queued(uid: Option<&str>, status: RuleStatus) -> Vec<Output> {
        let cache = PolicyCache::default();
        cache.apply_cluster_policy(
            serde_json::from_value(json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": "require-team"},
                "spec": {"rules": [{"name": "team",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "validate": {"pattern": {"metadata": {"labels": {"team": "?*"}}}}}]}
            }))
            .expect("a valid policy"),
        );
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"}});
        if let Some(uid) = uid {
            pod["metadata"]["uid"] = uid.into();
        }
        let request: AdmissionRequest = serde_json::from_value(json!({
            "uid": "req-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p", "namespace": "default", "operation": "CREATE",
            "userInfo": {"username": "someone"}, "object": pod
        }))
        .expect("a valid request");
        let metrics = Arc::new(Metrics::register(&mut Registry::default()));
        let (queue, mut receiver) = OutputQueue::new(8, metrics);
        let outputs = Outputs {
            queue,
            namespace: "kyverno".into(),
            instance: "kyverno-admission-a".into(),
            background_user: "background".into(),
        };
        let rules = vec![RuleResponse {
            name: "team".into(),
            rule_type: RuleType::Validation,
            status,
            message: "label team is required".into(),
        }];
        let policy = EvaluatedPolicy::Kyverno(Arc::clone(&cache.snapshot().policies[0]));
        outputs.after_validation(
            &Answered {
                request: &request,
                operation: AdmissionOperation::Create,
                resource_request: &ResourceRequest::new(pod)
                    .with_operation(AdmissionOperation::Create),
                blocked: false,
            },
            vec![(policy, rules)],
            &KyvernoConfig::with_defaults("kyverno"),
        );
        std::iter::from_fn(|| receiver.try_recv()).collect()
    }

    #[test]
    fn results_are_queued_only_when_they_leave_something() {
        // Passing, and no uid for a report: nothing to write, nothing queued.
        assert!(queued(None, RuleStatus::Pass).is_empty());
        // A failure leaves Events.
        let outputs = queued(None, RuleStatus::Fail);
        let [Output::Validated(validated)] = outputs.as_slice() else {
            panic!("one validated request expected, got {outputs:?}");
        };
        let (events, report) = validated.build();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(report.is_none());
        // A stored resource gets its report, built by the writer.
        let outputs = queued(Some("pod-uid"), RuleStatus::Pass);
        let [Output::Validated(validated)] = outputs.as_slice() else {
            panic!("one validated request expected, got {outputs:?}");
        };
        assert_eq!(validated.output_name(), "report");
        let (events, report) = validated.build();
        assert!(events.is_empty());
        let report = report.expect("a report");
        assert_eq!(report.metadata.name.as_deref(), Some("req-1"));
        assert_eq!(report.data["spec"]["results"][0]["result"], "pass");
    }
}
