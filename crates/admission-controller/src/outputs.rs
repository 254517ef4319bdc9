//! The admission outputs (ephemeral reports, Events, UpdateRequests), written off the request
//! path: evaluation pushes them into a bounded queue that never blocks (when it is full the
//! output is dropped, counted and logged; the queue is bounded both in outputs and in the rule
//! results and policies they hold, so that a burst of requests evaluated against many policies
//! cannot grow memory without limit), and a background writer drains it in batches, writing
//! each batch's objects concurrently. The generate and mutate-existing checks of an admitted
//! request also run there (as upstream runs them in a goroutine), becoming UpdateRequests.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use futures::future::Either;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use kyverno_api::kyverno::v2::update_request::UpdateRequest;
use kyverno_api::reports::v1::{ClusterEphemeralReport, EphemeralReport};
use kyverno_policy_core::engine::{
    ContextProvider, Environment, LoadedPolicy, SuppliedValues, background_checks,
};
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::RuleStatus;
use kyverno_runtime::policy_cache::CachedPolicy;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::side_effects::Validated;
use crate::update_requests::{
    CelTriggered, CheckedRule, TriggerContext, cel_update_request, update_requests,
};

/// How many outputs wait at most; more are dropped.
pub const DEFAULT_CAPACITY: usize = 4096;
/// How many rule results (and triggered policies) the waiting outputs hold at most; more are
/// dropped. A request evaluated against 1,000 policies holds 1,000 results (a few hundred KiB).
pub const DEFAULT_RESULT_CAPACITY: usize = 100_000;
/// How many outputs the writer takes at once.
const BATCH: usize = 64;
/// How many writes of a batch run at once.
const CONCURRENCY: usize = 8;

/// Something to write once the request is answered.
#[derive(Debug)]
pub enum Output {
    /// The validate results of a request, which become Events and an EphemeralReport or
    /// ClusterEphemeralReport.
    Validated(Box<Validated>),
    /// The background checks of an admitted request, whose triggered rules become
    /// UpdateRequests.
    Triggered(Box<Triggered>),
    /// The `policies.kyverno.io` policies an admitted request triggers, each becoming an
    /// UpdateRequest.
    CelTriggered(Box<CelTriggers>),
}

impl Output {
    /// The `output` label of the metrics.
    fn name(&self) -> &'static str {
        match self {
            Output::Validated(validated) => validated.output_name(),
            Output::Triggered(_) | Output::CelTriggered(_) => "update_request",
        }
    }

    /// What it holds, counted against [`DEFAULT_RESULT_CAPACITY`]: its rule results or
    /// triggered policies, and one for itself.
    fn weight(&self) -> usize {
        1 + match self {
            Output::Validated(validated) => validated.result_count(),
            Output::Triggered(triggered) => triggered.policies.len(),
            Output::CelTriggered(triggers) => triggers.policies.len(),
        }
    }
}

/// The generate and mutate-existing policies an admitted request may trigger, with what their
/// checks and UpdateRequests need.
pub struct Triggered {
    /// The policies with generate or mutate-existing rules that can match the request.
    pub policies: Vec<Arc<CachedPolicy>>,
    /// The engine's view of the request.
    pub request: ResourceRequest,
    /// The trigger and request as UpdateRequests record them.
    pub trigger: TriggerContext,
    /// The PolicyExceptions in force when the request came.
    pub exceptions: Arc<[PolicyException]>,
    /// Where context entries get their data.
    pub provider: Arc<dyn ContextProvider>,
    /// Kyverno's namespace, where UpdateRequests go.
    pub namespace: String,
    /// Whether the background controller sent the request: rules that skip background requests
    /// (`skipBackgroundRequests`, true when unset) ask for nothing.
    pub from_background_controller: bool,
}

impl std::fmt::Debug for Triggered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Triggered")
            .field("trigger", &self.trigger.trigger)
            .finish_non_exhaustive()
    }
}

impl Triggered {
    /// Runs the background checks of every policy: the UpdateRequests they ask for.
    pub fn update_requests(&self) -> Vec<UpdateRequest> {
        let values = SuppliedValues::default();
        let environment = Environment {
            provider: self.provider.as_ref(),
            exceptions: &self.exceptions,
            values: &values,
        };
        let operation = self.trigger.operation;
        self.policies
            .iter()
            .flat_map(|cached| {
                let checked: Vec<CheckedRule> =
                    background_checks(&cached.policy, &self.request, &environment)
                        .rules
                        .into_iter()
                        .filter(|rule| {
                            rule.status == RuleStatus::Pass
                                || (rule.status == RuleStatus::Fail
                                    && operation == AdmissionOperation::Update)
                        })
                        .filter(|rule| {
                            !self.from_background_controller
                                || applies_to_background_requests(&cached.policy, &rule.name)
                        })
                        .map(|rule| CheckedRule {
                            name: rule.name,
                            rule_type: rule.rule_type,
                            status: rule.status,
                        })
                        .collect();
                update_requests(&cached.policy, &checked, &self.trigger, &self.namespace)
            })
            .collect()
    }
}

/// Whether the rule `name` of `policy` applies to the background controller's requests too
/// (`skipBackgroundRequests: false`).
fn applies_to_background_requests(policy: &LoadedPolicy, name: &str) -> bool {
    policy
        .rules
        .iter()
        .find(|rule| rule.name == name)
        .is_some_and(|rule| rule.skip_background_requests == Some(false))
}

/// The `policies.kyverno.io` policies an admitted request triggers.
#[derive(Debug)]
pub struct CelTriggers {
    /// The triggered policies.
    pub policies: Vec<CelTriggered>,
    /// The trigger and request as UpdateRequests record them.
    pub trigger: TriggerContext,
    /// Kyverno's namespace, where UpdateRequests go.
    pub namespace: String,
}

impl CelTriggers {
    /// The UpdateRequests the triggered policies ask for.
    pub fn update_requests(&self) -> Vec<UpdateRequest> {
        self.policies
            .iter()
            .filter_map(|triggered| cel_update_request(triggered, &self.trigger, &self.namespace))
            .collect()
    }
}

/// The weight ([`Output::weight`]) of the outputs queued or being written, and its bound.
#[derive(Debug)]
struct Held {
    weight: AtomicUsize,
    limit: usize,
}

impl Held {
    /// Counts `weight` more, unless that would pass the limit (an output heavier than the limit
    /// still passes when nothing else is held).
    fn take(&self, weight: usize) -> bool {
        self.weight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held == 0 || held + weight <= self.limit).then_some(held + weight)
            })
            .is_ok()
    }

    /// Counts `weight` less.
    fn release(&self, weight: usize) {
        self.weight.fetch_sub(weight, Ordering::AcqRel);
    }
}

/// The sending end of the queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct OutputQueue {
    sender: mpsc::Sender<Output>,
    held: Arc<Held>,
    metrics: Arc<Metrics>,
}

/// The receiving end of the queue, for [`write_outputs`].
#[derive(Debug)]
pub struct OutputReceiver {
    receiver: mpsc::Receiver<Output>,
    held: Arc<Held>,
}

impl OutputReceiver {
    /// The next queued output, if one is waiting (it no longer counts against the bound).
    pub fn try_recv(&mut self) -> Option<Output> {
        let output = self.receiver.try_recv().ok()?;
        self.held.release(output.weight());
        Some(output)
    }
}

impl OutputQueue {
    /// A queue holding at most `capacity` outputs and [`DEFAULT_RESULT_CAPACITY`] results, and
    /// its receiving end.
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> (Self, OutputReceiver) {
        Self::bounded(capacity, DEFAULT_RESULT_CAPACITY, metrics)
    }

    /// A queue holding at most `capacity` outputs and `results` rule results, and its
    /// receiving end.
    pub fn bounded(
        capacity: usize,
        results: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, OutputReceiver) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let held = Arc::new(Held {
            weight: AtomicUsize::new(0),
            limit: results.max(1),
        });
        let queue = Self {
            sender,
            held: Arc::clone(&held),
            metrics,
        };
        (queue, OutputReceiver { receiver, held })
    }

    /// Queues `output` without waiting: when the queue is full (or the writer is gone) it is
    /// dropped, counted and logged. Returns whether it was queued.
    pub fn push(&self, output: Output) -> bool {
        let name = output.name();
        let weight = output.weight();
        if !self.held.take(weight) {
            self.metrics.output(name, "dropped");
            tracing::warn!(
                output = name,
                "admission output dropped: the queued outputs hold too many results"
            );
            return false;
        }
        match self.sender.try_send(output) {
            Ok(()) => true,
            Err(error) => {
                self.held.release(weight);
                self.metrics.output(name, "dropped");
                tracing::warn!(output = name, %error, "admission output dropped");
                false
            }
        }
    }
}

/// Drains the queue until every [`OutputQueue`] is gone, writing with `client`; an output counts
/// against the queue's bound until it is written.
pub async fn write_outputs(client: Client, mut receiver: OutputReceiver, metrics: Arc<Metrics>) {
    let mut batch = Vec::with_capacity(BATCH);
    let held = Arc::clone(&receiver.held);
    while receiver.receiver.recv_many(&mut batch, BATCH).await > 0 {
        futures::stream::iter(batch.drain(..))
            .for_each_concurrent(CONCURRENCY, |output| {
                let held = &held;
                let metrics = &metrics;
                let client = &client;
                async move {
                    let weight = output.weight();
                    write(client, output, metrics).await;
                    held.release(weight);
                }
            })
            .await;
    }
}

async fn write(client: &Client, output: Output, metrics: &Metrics) {
    let name = output.name();
    match output {
        Output::Validated(validated) => {
            let (events, report) =
                match tokio::task::spawn_blocking(move || validated.build()).await {
                    Ok(built) => built,
                    Err(error) => {
                        tracing::error!(%error, "admission outputs could not be built");
                        metrics.output(name, "failed");
                        return;
                    }
                };
            let writes = events
                .into_iter()
                .map(|event| {
                    Either::Left(async move {
                        record(metrics, "event", write_event(client, event).await);
                    })
                })
                .chain(report.map(|report| {
                    Either::Right(async move {
                        record(metrics, "report", write_report(client, report).await);
                    })
                }));
            futures::stream::iter(writes)
                .for_each_concurrent(CONCURRENCY, |write| write)
                .await;
        }
        Output::Triggered(triggered) => {
            let namespace = triggered.namespace.clone();
            let requests =
                match tokio::task::spawn_blocking(move || triggered.update_requests()).await {
                    Ok(requests) => requests,
                    Err(error) => {
                        tracing::error!(%error, "background checks failed");
                        metrics.output(name, "failed");
                        return;
                    }
                };
            for request in requests {
                let written = write_update_request(client, request, &namespace).await;
                record(metrics, name, written);
            }
        }
        Output::CelTriggered(triggers) => {
            for request in triggers.update_requests() {
                let written = write_update_request(client, request, &triggers.namespace).await;
                record(metrics, name, written);
            }
        }
    }
}

/// Counts a write, logging its failure.
fn record(metrics: &Metrics, name: &'static str, outcome: Result<(), kube::Error>) {
    match outcome {
        Ok(()) => metrics.output(name, "written"),
        Err(error) => {
            metrics.output(name, "failed");
            tracing::warn!(output = name, %error, "admission output not written");
        }
    }
}

async fn write_report(client: &Client, report: DynamicObject) -> Result<(), kube::Error> {
    let resource = match report.types.as_ref().map(|types| types.kind.as_str()) {
        Some("ClusterEphemeralReport") => ApiResource::erase::<ClusterEphemeralReport>(&()),
        _ => ApiResource::erase::<EphemeralReport>(&()),
    };
    let api: Api<DynamicObject> = match report.metadata.namespace.as_deref() {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.create(&PostParams::default(), &report).await.map(drop)
}

async fn write_event(client: &Client, event: Event) -> Result<(), kube::Error> {
    let namespace = event.metadata.namespace.clone().unwrap_or_default();
    Api::<Event>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &event)
        .await
        .map(drop)
}

/// Creates the UpdateRequest, then sets its status (a subresource: the create drops it).
async fn write_update_request(
    client: &Client,
    request: UpdateRequest,
    namespace: &str,
) -> Result<(), kube::Error> {
    let api: Api<UpdateRequest> = Api::namespaced(client.clone(), namespace);
    let status = serde_json::to_value(&request.status).map_err(kube::Error::SerdeError)?;
    let created = api.create(&PostParams::default(), &request).await?;
    let name = created.metadata.name.unwrap_or_default();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use kyverno_runtime::admin::Admin;
    use prometheus_client::registry::Registry;

    use super::*;

    /// Results with Events to write but no report.
    fn event() -> Output {
        Output::Validated(Box::default())
    }

    /// The Namespace `team-a`, created.
    fn created_namespace() -> serde_json::Value {
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-a", "uid": "ns-uid"}})
    }

    /// The creation of [`created_namespace`] as UpdateRequests record it.
    fn generate_trigger() -> TriggerContext {
        use kyverno_policy_core::request::RequestInfo;
        let namespace = created_namespace();
        let request: crate::review::AdmissionRequest = serde_json::from_value(serde_json::json!({
            "uid": "req-1",
            "kind": {"group": "", "version": "v1", "kind": "Namespace"},
            "resource": {"group": "", "version": "v1", "resource": "namespaces"},
            "name": "team-a", "operation": "CREATE",
            "userInfo": {"username": "someone"}, "object": namespace
        }))
        .expect("a valid request");
        let requester = RequestInfo {
            user_info: request.user_info.clone(),
            ..RequestInfo::default()
        };
        TriggerContext::of(&request, AdmissionOperation::Create, &namespace, &requester)
    }

    /// The UpdateRequests of a ClusterPolicy generating a ConfigMap in every new Namespace
    /// (`skip` as its rule's `skipBackgroundRequests`) for [`generate_trigger`]
    /// (`from_background_controller` telling whether the background controller sent it).
    fn generate_requests(
        skip: Option<bool>,
        from_background_controller: bool,
    ) -> Vec<UpdateRequest> {
        use kyverno_policy_core::engine::NoExternalData;
        use kyverno_runtime::policy_cache::PolicyCache;
        let cache = PolicyCache::default();
        cache.apply_cluster_policy(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": "defaults"},
                "spec": {"rules": [{"name": "config",
                    "skipBackgroundRequests": skip,
                    "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                    "generate": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c",
                        "namespace": "{{request.object.metadata.name}}", "data": {}}}]}
            }))
            .expect("a valid policy"),
        );
        let snapshot = cache.snapshot();
        Triggered {
            policies: snapshot.policies.to_vec(),
            request: ResourceRequest::new(created_namespace())
                .with_operation(AdmissionOperation::Create),
            trigger: generate_trigger(),
            exceptions: Arc::clone(&snapshot.exceptions),
            provider: Arc::new(NoExternalData),
            namespace: "kyverno".to_owned(),
            from_background_controller,
        }
        .update_requests()
    }

    #[test]
    fn rules_skip_the_background_controllers_requests_unless_told_otherwise() {
        assert_eq!(generate_requests(None, false).len(), 1);
        assert!(generate_requests(None, true).is_empty());
        assert!(generate_requests(Some(true), true).is_empty());
        assert_eq!(generate_requests(Some(false), true).len(), 1);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let (queue, mut receiver) = OutputQueue::new(2, Arc::clone(&metrics));
        assert!(queue.push(event()));
        assert!(queue.push(event()));
        assert!(!queue.push(event()));
        assert!(!queue.push(event()));
        let text = Admin::new(registry).encode_metrics();
        assert!(
            text.contains(
                "kyverno_admission_outputs_total{output=\"event\",outcome=\"dropped\"} 2"
            ),
            "{text}"
        );
        // Drained, it takes outputs again.
        assert!(receiver.try_recv().is_some());
        assert!(queue.push(event()));
    }

    #[test]
    fn the_results_held_bound_the_queue() {
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let (queue, mut receiver) = OutputQueue::bounded(100, 10, Arc::clone(&metrics));
        let triggers = |policies: usize| {
            Output::CelTriggered(Box::new(CelTriggers {
                policies: vec![
                    CelTriggered {
                        policy: kyverno_runtime::policy_cache::PolicyKey {
                            namespace: None,
                            name: "p".to_owned(),
                        },
                        request_type:
                            kyverno_api::kyverno::v2::update_request::RequestType::CelGenerate,
                        synchronize: false,
                        skip_background_requests: true,
                    };
                    policies
                ],
                trigger: generate_trigger(),
                namespace: "kyverno".to_owned(),
            }))
        };
        assert!(queue.push(triggers(5)));
        assert!(
            !queue.push(triggers(5)),
            "6 + 6 results pass the bound of 10"
        );
        assert!(queue.push(triggers(3)));
        // An output heavier than the bound passes only when nothing else is held.
        assert!(receiver.try_recv().is_some());
        assert!(receiver.try_recv().is_some());
        assert!(queue.push(triggers(50)));
        assert!(!queue.push(triggers(0)));
        assert!(
            Admin::new(registry)
                .encode_metrics()
                .contains("output=\"update_request\",outcome=\"dropped\"} 2")
        );
    }

    #[test]
    fn outputs_are_dropped_once_the_writer_is_gone() {
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::register(&mut registry));
        let (queue, receiver) = OutputQueue::new(8, Arc::clone(&metrics));
        drop(receiver);
        assert!(!queue.push(event()));
        assert!(
            Admin::new(registry)
                .encode_metrics()
                .contains("output=\"event\",outcome=\"dropped\"} 1")
        );
    }
}
