//! What an answered validation request leaves behind, queued for the background writer (see
//! [`crate::outputs`]): the ephemeral report of an admitted resource, the `PolicyViolation`
//! Events, and the background checks that become UpdateRequests. Dry-run requests leave
//! nothing.
use std::sync::Arc;

use kube::api::DynamicObject;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_policy_core::engine::ContextProvider;
use kyverno_policy_core::request::ResourceRequest;
use kyverno_runtime::config::KyvernoConfig;
use kyverno_runtime::policy_cache::{CachedPolicy, Snapshot};
use kyverno_runtime::reports::{
    PolicyResults, SOURCE_ADMISSION, Subject, policies_report, resource_hash,
};
use serde_json::Value;

use crate::events::{EventSubject, policy_events};
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
    /// The validate results of each policy evaluated (ClusterPolicies and Policies, or the
    /// `policies.kyverno.io` validating kinds).
    pub results: &'a [PolicyResults<'a>],
    /// Whether the request was denied.
    pub blocked: bool,
}

impl Outputs {
    /// Queues what `answered` leaves behind: Events for failing results (only those of the
    /// policies that blocked it when denied), and, when admitted, the ephemeral report of the
    /// resource.
    pub fn after_validation(&self, answered: &Answered<'_>, config: &KyvernoConfig) {
        if answered.request.dry_run == Some(true) {
            return;
        }
        let subject = EventSubject {
            resource: reference(answered.resource_request.resource()),
            instance: self.instance.clone(),
        };
        for entry in answered.results {
            for event in policy_events(
                &entry.policy,
                entry.rules,
                &subject,
                answered.blocked,
                config.generate_success_events,
            ) {
                self.queue.push(Output::Event(Box::new(event)));
            }
        }
        if answered.blocked {
            return;
        }
        if let Some(report) = admission_report(answered) {
            self.queue.push(Output::Report(Box::new(report)));
        }
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

/// The ephemeral report of an admitted resource, named after the request (as upstream): none
/// for deletions, for resources without a uid (not stored yet) or without results.
fn admission_report(answered: &Answered<'_>) -> Option<DynamicObject> {
    if answered.operation == AdmissionOperation::Delete
        || answered.results.iter().all(|entry| entry.rules.is_empty())
    {
        return None;
    }
    let resource = answered.resource_request.resource();
    let subject = Subject::of(resource, &answered.request.resource.resource)?;
    let evaluated: Vec<PolicyResults<'_>> = answered
        .results
        .iter()
        .filter(|entry| !entry.rules.is_empty())
        .copied()
        .collect();
    Some(policies_report(
        &answered.request.uid,
        &subject,
        SOURCE_ADMISSION,
        &evaluated,
        Some(&resource_hash(resource)),
    ))
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
