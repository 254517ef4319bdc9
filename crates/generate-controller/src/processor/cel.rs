//! The UpdateRequests of the `policies.kyverno.io` kinds: `cel-generate` runs a
//! GeneratingPolicy for its trigger (or deletes the trigger's downstream resources),
//! `cel-mutate` runs a MutatingPolicy that mutates existing resources on the targets of its
//! trigger.
use std::sync::Arc;
use std::time::Instant;

use kyverno_api::kyverno::v2::update_request::{RuleContext, UpdateRequestSpec};
use kyverno_policy_core::celpolicy::RequestInput;
use kyverno_policy_core::celpolicy::resources::{
    GroupVersionResource, ResourceTable, guess_resource,
};
use kyverno_policy_core::engine::ContextProvider;
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::{RuleResponse, RuleStatus};
use kyverno_runtime::cel_policies::CompiledCel;
use kyverno_runtime::policy_cache::PolicyKey;

use super::{Processor, RuleOutcome, operation_of};
use crate::labels;
use crate::metrics::Executed;
use crate::request::{namespace_object, policy_key, type_of};

impl Processor {
    /// Runs the GeneratingPolicy of a `cel-generate` request for one trigger; `None` when the
    /// policy is gone.
    pub(super) async fn run_generating(
        &self,
        spec: &UpdateRequestSpec,
        rule_context: &RuleContext,
    ) -> Option<RuleOutcome> {
        let key = policy_key(spec);
        let policy = self.generating.get(&key)?;
        let mut outcome = RuleOutcome::default();
        if rule_context.delete_downstream {
            self.triggers
                .forget_if_deleted(&rule_context.trigger, &spec.context);
            outcome.applied = true;
            if let Err(error) = self
                .delete_cel_downstream(&key, rule_context.trigger.uid.as_deref())
                .await
            {
                outcome
                    .failures
                    .push(format!("failed to delete downstream resources: {error}"));
            }
            return Some(outcome);
        }
        let request = match self.trigger_of(rule_context, &spec.context).await {
            Ok(Some(request)) => request,
            Ok(None) => return Some(outcome),
            Err(error) => {
                outcome.failures.push(error);
                return Some(outcome);
            }
        };
        let trigger = Arc::clone(request.resource());
        let resource = served_resource(&request, spec);
        let namespace_object = namespace_object(&self.stores.namespaces, request.namespace());
        let provider: Arc<dyn ContextProvider> = self.provider.clone();
        let started = Instant::now();
        let evaluated = tokio::task::spawn_blocking(move || {
            let input = RequestInput::new(&request, &resource, namespace_object.as_ref());
            policy
                .compiled
                .evaluate(&input, ResourceTable::builtin(), &provider)
        })
        .await;
        let response = match evaluated {
            Ok(Some(response)) => response,
            Ok(None) => return Some(outcome),
            Err(error) => {
                outcome
                    .failures
                    .push(format!("policy evaluation failed: {error}"));
                return Some(outcome);
            }
        };
        let executed = Executed {
            policy_name: &key.name,
            policy_namespace: key.namespace.as_deref(),
            validation_mode: "audit",
            background: true,
            rule_type: "generate",
        };
        let responses = [response.rule];
        self.metrics.rules(
            &executed,
            &trigger,
            operation_of(&spec.context),
            &responses,
            started.elapsed(),
        );
        outcome.add_responses(&responses);
        let mut writes = Vec::new();
        for generated in &response.resources {
            writes.push(self.apply_generated(generated).await);
        }
        self.note_cel_kinds(
            response
                .resources
                .iter()
                .filter(|generated| generated.synchronize)
                .map(|generated| type_of(&generated.resource)),
        );
        outcome.add_writes(writes);
        Some(outcome)
    }

    /// Runs the MutatingPolicy of a `cel-mutate` request on the targets of one trigger;
    /// `None` when the policy is gone (or no longer mutates existing resources).
    pub(super) async fn run_mutating(
        &self,
        spec: &UpdateRequestSpec,
        rule_context: &RuleContext,
    ) -> Option<RuleOutcome> {
        let key = policy_key(spec);
        let cached = self
            .stores
            .cache
            .snapshot()
            .cel
            .iter()
            .find(|cached| {
                cached.key == key
                    && matches!(&cached.compiled, CompiledCel::Mutating(policy) if policy.mutates_existing())
            })
            .cloned()?;
        let mut outcome = RuleOutcome::default();
        let request = match self.trigger_of(rule_context, &spec.context).await {
            Ok(Some(request)) => request,
            Ok(None) => return Some(outcome),
            Err(error) => {
                outcome.failures.push(error);
                return Some(outcome);
            }
        };
        let trigger = Arc::clone(request.resource());
        let resource = served_resource(&request, spec);
        let namespace_object = namespace_object(&self.stores.namespaces, request.namespace());
        let provider = Arc::clone(&self.provider);
        let started = Instant::now();
        let evaluated = tokio::task::spawn_blocking(move || {
            let CompiledCel::Mutating(policy) = &cached.compiled else {
                return Ok(Vec::new());
            };
            let input = RequestInput::new(&request, &resource, namespace_object.as_ref());
            policy.mutate_existing(&input, provider.as_ref(), ResourceTable::builtin())
        })
        .await;
        let mutations = match evaluated {
            Ok(Ok(mutations)) => mutations,
            Ok(Err(error)) => {
                outcome.applied = true;
                outcome
                    .failures
                    .push(format!("policy {key}: failed to select targets: {error}"));
                return Some(outcome);
            }
            Err(error) => {
                outcome
                    .failures
                    .push(format!("policy evaluation failed: {error}"));
                return Some(outcome);
            }
        };
        let mut responses: Vec<RuleResponse> = Vec::new();
        let mut writes = Vec::new();
        for mutation in mutations {
            let mut rule = mutation.rule;
            if rule.name.is_empty() {
                rule.name.clone_from(&key.name);
            }
            if rule.status == RuleStatus::Pass && !mutation.patches.0.is_empty() {
                writes.push(self.write_target(&mutation.patched).await);
            }
            responses.push(rule);
        }
        let executed = Executed {
            policy_name: &key.name,
            policy_namespace: key.namespace.as_deref(),
            validation_mode: "audit",
            background: true,
            rule_type: "mutate",
        };
        self.metrics.rules(
            &executed,
            &trigger,
            operation_of(&spec.context),
            &responses,
            started.elapsed(),
        );
        outcome.add_responses(&responses);
        outcome.add_writes(writes);
        Some(outcome)
    }

    /// Deletes what the GeneratingPolicy (or NamespacedGeneratingPolicy) `policy` generated,
    /// for the trigger with `trigger_uid` or for all, in every kind the API server serves;
    /// answers how many were deleted.
    pub async fn delete_cel_downstream(
        &self,
        policy: &PolicyKey,
        trigger_uid: Option<&str>,
    ) -> Result<usize, crate::cluster::ClusterError> {
        let kinds = self.cluster.resources().listable_kinds().await?;
        let selector = labels::cel_downstream_selector(policy, trigger_uid);
        self.delete_matching(&kinds, &selector, |object| {
            labels::is_cel_downstream_of(policy, &labels::labels_of(object))
        })
        .await
    }
}

/// The resource serving the trigger: as the admission request named it, else as the
/// built-in kinds map it, else as Kubernetes guesses it from the kind.
fn served_resource(request: &ResourceRequest, spec: &UpdateRequestSpec) -> GroupVersionResource {
    let admitted = spec
        .context
        .admission_request_info
        .as_ref()
        .and_then(|info| info.admission_request.as_ref())
        .and_then(|admission| admission.resource.as_ref());
    if let Some(resource) = admitted {
        return GroupVersionResource::new(
            resource.group.clone(),
            resource.version.clone(),
            resource.resource.clone(),
        );
    }
    let gvk = request.gvk();
    ResourceTable::builtin()
        .mapping(gvk)
        .map(|mapping| mapping.resource)
        .unwrap_or_else(|| {
            GroupVersionResource::new(
                gvk.group.clone(),
                gvk.version.clone(),
                guess_resource(&gvk.kind),
            )
        })
}
