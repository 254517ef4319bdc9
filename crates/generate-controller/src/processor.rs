//! Processing one UpdateRequest: each of its rules runs through the engine for its trigger, and
//! what the engine answers is written to the cluster (generated resources created or kept in
//! sync, mutate-existing targets patched, downstream resources deleted).
mod cel;
mod triggers;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kyverno_api::kyverno::v1::generate::{Generation, ResourceSpec};
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::rule::Rule;
use kyverno_api::kyverno::v1::validate::ValidationFailureAction;
use kyverno_api::kyverno::v2::update_request::{
    RequestType, RuleContext, UpdateRequest, UpdateRequestSpecContext,
};
use kyverno_policy_core::engine::{
    self, Environment, GeneratedResource, LoadedPolicy, SuppliedValues,
};
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::{RuleResponse, RuleStatus};
use kyverno_runtime::policy_cache::PolicyKey;
use kyverno_runtime::provider::ApiServerProvider;
use kyverno_runtime::watch::Stores;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::cluster::{Cluster, ClusterError};
use crate::generating::GeneratingPolicies;
use crate::labels;
use crate::metrics::{Executed, Metrics};
use crate::own_writes::OwnWrites;
use crate::request::{policy_key, rule_contexts, spec_of, trigger_request};
use triggers::Triggers;

/// What processing an UpdateRequest came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every rule applied; the resources it generated or mutated.
    Completed(Vec<ResourceSpec>),
    /// No rule applied (policy or trigger gone, rule not matching), with why.
    Skip(String),
    /// Some rule failed, with why, and what the others generated or mutated.
    Failed(String, Vec<ResourceSpec>),
}

/// What one rule (or all rules of a request) gave.
#[derive(Default)]
struct RuleOutcome {
    applied: bool,
    written: Vec<ResourceSpec>,
    failures: Vec<String>,
}

impl RuleOutcome {
    fn add(&mut self, other: RuleOutcome) {
        self.applied |= other.applied;
        self.written.extend(other.written);
        self.failures.extend(other.failures);
    }

    /// Counts the engine's results: failures and errors are failures.
    fn add_responses(&mut self, responses: &[RuleResponse]) {
        for response in responses {
            match response.status {
                RuleStatus::Pass => self.applied = true,
                RuleStatus::Error | RuleStatus::Fail => {
                    self.applied = true;
                    self.failures.push(rule_failure(response));
                }
                RuleStatus::Skip | RuleStatus::Warn => {}
            }
        }
    }

    /// Counts the writes made for the rule.
    fn add_writes(&mut self, writes: Vec<Result<Option<ResourceSpec>, ClusterError>>) {
        for write in writes {
            match write {
                Ok(Some(spec)) => self.written.push(spec),
                Ok(None) => {}
                Err(error) => self.failures.push(error.to_string()),
            }
        }
    }

    fn finish(self) -> Outcome {
        if !self.failures.is_empty() {
            Outcome::Failed(self.failures.join("; "), self.written)
        } else if self.applied {
            Outcome::Completed(self.written)
        } else {
            Outcome::Skip("no rule applied to the trigger".to_owned())
        }
    }
}

/// Where the processor finds its policies and reports what it runs.
#[derive(Clone)]
pub struct Sources {
    /// The kyverno.io policies, the `policies.kyverno.io` MutatingPolicies, and the namespaces.
    pub stores: Stores,
    /// The GeneratingPolicies.
    pub generating: Arc<GeneratingPolicies>,
    /// The policy execution metrics.
    pub metrics: Metrics,
}

/// Runs UpdateRequests against the cluster.
pub struct Processor {
    cluster: Arc<Cluster>,
    provider: Arc<ApiServerProvider>,
    stores: Stores,
    generating: Arc<GeneratingPolicies>,
    metrics: Metrics,
    own_writes: Arc<OwnWrites>,
    /// The clone sources labelled already (kind, namespace, name).
    tagged_sources: Mutex<HashSet<(String, String, String)>>,
    triggers: Triggers,
    /// The kinds (API version, kind) of the synchronized downstream of GeneratingPolicies.
    cel_kinds: watch::Sender<BTreeSet<(String, String)>>,
}

impl Processor {
    /// A processor writing through `cluster`, with the policies of `sources`.
    pub fn new(cluster: Arc<Cluster>, sources: Sources, own_writes: Arc<OwnWrites>) -> Self {
        let provider = Arc::new(ApiServerProvider::with_resources(
            Arc::clone(cluster.resources()),
            tokio::runtime::Handle::current(),
        ));
        Self {
            cluster,
            provider,
            stores: sources.stores,
            generating: sources.generating,
            metrics: sources.metrics,
            own_writes,
            tagged_sources: Mutex::default(),
            triggers: Triggers::default(),
            cel_kinds: watch::Sender::new(BTreeSet::new()),
        }
    }

    /// The kinds of the synchronized downstream of GeneratingPolicies (what their expressions
    /// generate is only known once they ran): those generated since the start, and those
    /// found by [`Self::note_cel_kinds`].
    pub fn cel_kinds(&self) -> watch::Receiver<BTreeSet<(String, String)>> {
        self.cel_kinds.subscribe()
    }

    /// Adds `kinds` (API version, kind) to the kinds of synchronized GeneratingPolicy
    /// downstream.
    pub fn note_cel_kinds(&self, kinds: impl IntoIterator<Item = (String, String)>) {
        let kinds: Vec<_> = kinds.into_iter().collect();
        self.cel_kinds.send_if_modified(|known| {
            let before = known.len();
            known.extend(kinds);
            known.len() != before
        });
    }

    /// The cluster this processor writes to.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Processes `update_request`. The rules of one trigger run one request at a time, and
    /// once a request has deleted the downstream of a deleted trigger, no later request
    /// generates for it again.
    pub async fn process(&self, update_request: &UpdateRequest) -> Outcome {
        let spec = &update_request.spec;
        let request_type = spec.request_type.unwrap_or(RequestType::Generate);
        let mut outcome = RuleOutcome::default();
        for rule_context in rule_contexts(spec) {
            let _serialized = self.triggers.lock(&rule_context.trigger).await;
            let rule = match request_type {
                RequestType::Generate | RequestType::Mutate => {
                    let key = policy_key(spec);
                    let snapshot = self.stores.cache.snapshot();
                    let Some(cached) = snapshot.policies.iter().find(|cached| cached.key() == key)
                    else {
                        return Outcome::Skip(format!("policy {key} not found"));
                    };
                    let kind = if request_type == RequestType::Mutate {
                        RuleKind::MutateExisting
                    } else {
                        RuleKind::Generate
                    };
                    self.run_rule(
                        &cached.policy,
                        kind,
                        &rule_context,
                        &spec.context,
                        &snapshot.exceptions,
                    )
                    .await
                }
                RequestType::CelGenerate => match self.run_generating(spec, &rule_context).await {
                    Some(rule) => rule,
                    None => {
                        return Outcome::Skip(format!("policy {} not found", spec.policy));
                    }
                },
                RequestType::CelMutate => match self.run_mutating(spec, &rule_context).await {
                    Some(rule) => rule,
                    None => return Outcome::Skip(format!("policy {} not found", spec.policy)),
                },
            };
            outcome.add(rule);
        }
        outcome.finish()
    }

    async fn run_rule(
        &self,
        policy: &LoadedPolicy,
        request_type: RuleKind,
        rule_context: &RuleContext,
        context: &UpdateRequestSpecContext,
        exceptions: &Arc<[kyverno_api::kyverno::v2::policy_exception::PolicyException]>,
    ) -> RuleOutcome {
        let mut outcome = RuleOutcome::default();
        let Some(rule) = policy
            .rules
            .iter()
            .find(|rule| rule.name == rule_context.rule)
        else {
            return outcome;
        };
        if rule_context.delete_downstream {
            self.triggers
                .forget_if_deleted(&rule_context.trigger, context);
            if let Some(generation) = &rule.generate {
                let key = PolicyKey {
                    namespace: policy.namespace.clone(),
                    name: policy.name.clone(),
                };
                outcome.applied = true;
                let selector = labels::downstream_selector(
                    &key,
                    &rule.name,
                    rule_context.trigger.uid.as_deref(),
                );
                let kinds = downstream_kinds(generation);
                if let Err(error) = self.delete_selected(&kinds, &selector).await {
                    outcome
                        .failures
                        .push(format!("failed to delete downstream resources: {error}"));
                }
            }
            return outcome;
        }
        let request = match self.trigger_of(rule_context, context).await {
            Ok(Some(request)) => request,
            Ok(None) => return outcome,
            Err(error) => {
                outcome.failures.push(error);
                return outcome;
            }
        };
        let trigger = Arc::clone(request.resource());
        let mut single = policy.clone();
        single.rules.retain(|candidate| candidate.name == rule.name);
        let provider = Arc::clone(&self.provider);
        let exceptions = Arc::clone(exceptions);
        let started = Instant::now();
        let evaluated = tokio::task::spawn_blocking(move || {
            let values = SuppliedValues::default();
            let environment = Environment {
                provider: provider.as_ref(),
                exceptions: &exceptions,
                values: &values,
            };
            match request_type {
                RuleKind::MutateExisting => {
                    let response = engine::mutate_existing(&single, &request, &environment);
                    Evaluated::Mutated(response.rules, response.targets)
                }
                RuleKind::Generate => {
                    let response = engine::generate(&single, &request, &environment);
                    Evaluated::Generated(response.rules, response.resources)
                }
            }
        })
        .await;
        let (responses, writes) = match evaluated {
            Ok(Evaluated::Generated(responses, resources)) => {
                let mut writes = Vec::new();
                for resource in resources {
                    writes.push(self.apply_generated(&resource).await);
                }
                (responses, writes)
            }
            Ok(Evaluated::Mutated(responses, targets)) => {
                let mut writes = Vec::new();
                for target in targets {
                    writes.push(self.write_target(&target.resource).await);
                }
                (responses, writes)
            }
            Err(error) => {
                outcome
                    .failures
                    .push(format!("rule evaluation failed: {error}"));
                return outcome;
            }
        };
        let enforcing =
            policy.spec.validation_failure_action == Some(ValidationFailureAction::Enforce);
        let executed = Executed {
            policy_name: &policy.name,
            policy_namespace: policy.namespace.as_deref(),
            validation_mode: if enforcing { "enforce" } else { "audit" },
            background: policy.spec.background != Some(false),
            rule_type: match request_type {
                RuleKind::Generate => "generate",
                RuleKind::MutateExisting => "mutate",
            },
        };
        self.metrics.rules(
            &executed,
            &trigger,
            operation_of(context),
            &responses,
            started.elapsed(),
        );
        outcome.add_responses(&responses);
        outcome.add_writes(writes);
        outcome
    }

    /// The engine request of the trigger of `rule_context` as it is now, with the
    /// UpdateRequest's admission request; `None` when the trigger is gone, being deleted, or
    /// had its downstream deleted with it.
    async fn trigger_of(
        &self,
        rule_context: &RuleContext,
        context: &UpdateRequestSpecContext,
    ) -> Result<Option<ResourceRequest>, String> {
        if self.triggers.is_deleted(&rule_context.trigger) {
            return Ok(None);
        }
        let trigger = match self.fetch_trigger(&rule_context.trigger).await {
            Ok(Some(trigger)) => trigger,
            Ok(None) => return Ok(None),
            Err(error) => return Err(format!("failed to get the trigger: {error}")),
        };
        let namespace_labels = self.stores.namespaces.get(
            trigger
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        Ok(Some(trigger_request(trigger, context, namespace_labels)))
    }

    /// The trigger as it is now: by name, or by UID among its kind when the spec has no name
    /// (generated resources only name their trigger's UID). `None` when it is gone or being
    /// deleted, or when another object has taken its name.
    async fn fetch_trigger(&self, spec: &ResourceSpec) -> Result<Option<Value>, ClusterError> {
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let (api_version, kind, namespace) = (
            text(&spec.api_version),
            text(&spec.kind),
            text(&spec.namespace),
        );
        let uid = spec.uid.as_deref().filter(|uid| !uid.is_empty());
        let found = match spec.name.as_deref().filter(|name| !name.is_empty()) {
            Some(name) => {
                self.cluster
                    .resources()
                    .get(&api_version, &kind, &namespace, name)
                    .await?
            }
            None => self
                .cluster
                .resources()
                .list(&api_version, &kind, &namespace, None)
                .await?
                .into_iter()
                .find(|object| uid.is_some() && spec_of(object).uid.as_deref() == uid),
        };
        Ok(found.filter(|object| {
            object.pointer("/metadata/deletionTimestamp").is_none()
                && uid.is_none_or(|uid| spec_of(object).uid.as_deref() == Some(uid))
        }))
    }

    /// Creates a generated resource, or brings an existing one in line when it is synchronized;
    /// labels the clone source of a synchronized clone.
    async fn apply_generated(
        &self,
        generated: &GeneratedResource,
    ) -> Result<Option<ResourceSpec>, ClusterError> {
        let desired = &generated.resource;
        let spec = spec_of(desired);
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let existing = self
            .cluster
            .resources()
            .get(
                &text(&spec.api_version),
                &text(&spec.kind),
                &text(&spec.namespace),
                &text(&spec.name),
            )
            .await?;
        let stored = match existing {
            None => {
                self.own_writes.writing(desired);
                let created = self.cluster.create(desired).await;
                self.own_writes.wrote(desired, created.as_ref().ok());
                created?
            }
            Some(existing) if generated.synchronize && !in_line(&existing, desired) => {
                let mut update = desired.clone();
                update["metadata"]["resourceVersion"] =
                    existing["metadata"]["resourceVersion"].clone();
                self.own_writes.writing(&update);
                let updated = self.cluster.replace(&update).await;
                self.own_writes.wrote(&update, updated.as_ref().ok());
                updated?
            }
            Some(existing) => existing,
        };
        if generated.synchronize {
            self.tag_clone_source(desired).await?;
        }
        Ok(Some(spec_of(&stored)))
    }

    /// Labels the source of a clone with `generate.kyverno.io/clone-source`, so that its
    /// changes reach its clones.
    async fn tag_clone_source(&self, clone: &Value) -> Result<(), ClusterError> {
        let labels = clone
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let label = |key: &str| labels.get(key).and_then(Value::as_str).unwrap_or_default();
        let (name, namespace, kind) = (
            label(labels::SOURCE_NAME),
            label(labels::SOURCE_NAMESPACE),
            label(labels::SOURCE_KIND),
        );
        if name.is_empty() || kind.is_empty() {
            return Ok(());
        }
        let source_key = (kind.to_owned(), namespace.to_owned(), name.to_owned());
        if self
            .tagged_sources
            .lock()
            .is_ok_and(|tagged| tagged.contains(&source_key))
        {
            return Ok(());
        }
        let api_version = clone
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(source) = self
            .cluster
            .resources()
            .get(api_version, kind, namespace, name)
            .await?
        else {
            return Ok(());
        };
        if source
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(labels::CLONE_SOURCE))
            .is_none()
        {
            let tag = Map::from_iter([(labels::CLONE_SOURCE.to_owned(), Value::from(""))]);
            self.own_writes.writing(&source);
            let tagged = self.cluster.label(&source, &tag).await;
            self.own_writes.wrote(&source, tagged.as_ref().ok());
            tagged?;
        }
        if let Ok(mut tagged) = self.tagged_sources.lock() {
            tagged.insert(source_key);
        }
        Ok(())
    }

    /// Writes a target patched by a mutate-existing rule.
    async fn write_target(&self, target: &Value) -> Result<Option<ResourceSpec>, ClusterError> {
        let written = self.cluster.replace(target).await?;
        Ok(Some(spec_of(&written)))
    }

    /// Deletes what `rule` of `policy` generated, for one trigger or for all; answers how many
    /// resources were deleted.
    pub async fn delete_downstream(
        &self,
        policy: &PolicyKey,
        rule: &Rule,
        generation: &Generation,
        trigger_uid: Option<&str>,
    ) -> Result<usize, ClusterError> {
        let selector = labels::downstream_selector(policy, &rule.name, trigger_uid);
        self.delete_selected(&downstream_kinds(generation), &selector)
            .await
    }

    /// Deletes the objects of `kinds` (API version, kind) that `selector` selects; answers how
    /// many were deleted.
    pub async fn delete_selected(
        &self,
        kinds: &[(String, String)],
        selector: &str,
    ) -> Result<usize, ClusterError> {
        self.delete_matching(kinds, selector, |_| true).await
    }

    /// Deletes the objects of `kinds` (API version, kind) that `selector` selects and `keep`
    /// accepts; answers how many were deleted.
    pub async fn delete_matching(
        &self,
        kinds: &[(String, String)],
        selector: &str,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<usize, ClusterError> {
        let mut deleted = 0;
        for (api_version, kind) in kinds {
            for object in self
                .cluster
                .resources()
                .list(api_version, kind, "", Some(selector))
                .await?
                .into_iter()
                .filter(|object| keep(object))
            {
                self.own_writes.deleting(&object);
                let result = self.cluster.delete(&object).await;
                self.own_writes.deleted(&object, result.is_ok());
                result?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

/// The kind of rule an UpdateRequest runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RuleKind {
    Generate,
    MutateExisting,
}

/// What the engine answered for one rule.
enum Evaluated {
    Generated(Vec<RuleResponse>, Vec<GeneratedResource>),
    Mutated(Vec<RuleResponse>, Vec<engine::PatchedTarget>),
}

fn rule_failure(response: &RuleResponse) -> String {
    format!("rule {}: {}", response.name, response.message)
}

/// The operation of the UpdateRequest's admission request (CREATE for background requests).
fn operation_of(context: &UpdateRequestSpecContext) -> AdmissionOperation {
    context
        .admission_request_info
        .as_ref()
        .and_then(|info| {
            info.operation.or_else(|| {
                info.admission_request
                    .as_ref()
                    .and_then(|request| request.operation)
            })
        })
        .unwrap_or(AdmissionOperation::Create)
}

/// The API versions and kinds a generate rule writes (variables left out: they cannot be
/// listed).
pub fn downstream_kinds(generation: &Generation) -> Vec<(String, String)> {
    let mut kinds = Vec::new();
    let patterns = std::iter::once(&generation.pattern)
        .chain(generation.foreach.iter().map(|each| &each.pattern));
    for pattern in patterns {
        let resource = &pattern.resource;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        if pattern
            .clone_list
            .as_ref()
            .is_some_and(|list| !list.kinds.is_empty())
        {
            for kind in pattern.clone_list.iter().flat_map(|list| &list.kinds) {
                let (api_version, kind) = kind.rsplit_once('/').unwrap_or(("", kind));
                kinds.push((api_version.to_owned(), kind.to_owned()));
            }
        } else if resource.kind.is_some() {
            kinds.push((text(&resource.api_version), text(&resource.kind)));
        }
    }
    kinds.retain(|(api_version, kind)| {
        !kind.is_empty() && !kind.contains("{{") && !api_version.contains("{{")
    });
    kinds.sort();
    kinds.dedup();
    kinds
}

/// Whether `existing` already has what `desired` asks: every top-level field but the metadata,
/// and the desired labels and annotations.
fn in_line(existing: &Value, desired: &Value) -> bool {
    let Some(fields) = desired.as_object() else {
        return true;
    };
    let same_fields = fields
        .iter()
        .filter(|(key, _)| *key != "metadata" && *key != "status")
        .all(|(key, value)| existing.get(key) == Some(value));
    let contains = |pointer: &str| {
        desired
            .pointer(pointer)
            .and_then(Value::as_object)
            .is_none_or(|wanted| {
                wanted.iter().all(|(key, value)| {
                    existing.pointer(pointer).and_then(|map| map.get(key)) == Some(value)
                })
            })
    };
    same_fields && contains("/metadata/labels") && contains("/metadata/annotations")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_line_compares_content_labels_and_annotations() {
        let desired = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": "1"}},
            "data": {"k": "v"}
        });
        let mut existing = desired.clone();
        existing["metadata"]["resourceVersion"] = "3".into();
        existing["metadata"]["labels"]["extra"] = "x".into();
        assert!(in_line(&existing, &desired));
        existing["data"]["k"] = "changed".into();
        assert!(!in_line(&existing, &desired));
        existing["data"]["k"] = "v".into();
        existing["metadata"]["labels"]["a"] = "2".into();
        assert!(!in_line(&existing, &desired));
    }

    #[test]
    fn downstream_kinds_of_data_clone_list_and_foreach() {
        let generation: Generation = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "name": "deny",
            "namespace": "{{request.object.metadata.name}}", "data": {},
            "foreach": [{"list": "x", "apiVersion": "v1", "kind": "{{element.kind}}", "name": "n"}]
        }))
        .expect("a generation");
        assert_eq!(
            downstream_kinds(&generation),
            vec![(
                "networking.k8s.io/v1".to_owned(),
                "NetworkPolicy".to_owned()
            )]
        );
        let clone_list: Generation = serde_json::from_value(serde_json::json!({
            "namespace": "ns",
            "cloneList": {"namespace": "src", "kinds": ["v1/Secret", "ConfigMap"]}
        }))
        .expect("a generation");
        assert_eq!(
            downstream_kinds(&clone_list),
            vec![
                (String::new(), "ConfigMap".to_owned()),
                ("v1".to_owned(), "Secret".to_owned())
            ]
        );
    }
}
