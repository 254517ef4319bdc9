//! One execution of a scheduled policy: list the resources of the kinds it selects, keep those
//! it decides to delete, delete them (with its propagation policy), and count and report each
//! deletion as upstream does.
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use kyverno_api::kyverno::v2::cleanup_policy::DeletionPropagation;
use kyverno_api::policies::exception::PolicyException;
use kyverno_policy_core::celpolicy::deleting::{
    Candidate, CompiledDeletingPolicy, DeletionDecision,
};
use kyverno_policy_core::celpolicy::resources::ResourceTable;
use kyverno_policy_core::engine::ContextProvider;
use kyverno_policy_core::engine::cleanup::{CleanupDecision, CleanupMatcher};
use serde_json::Value;

use crate::events::{self, EventInfo, EventType};
use crate::metrics::{Metrics, PolicyLabels};
use crate::policies::{Rules, ScheduledPolicy};
use crate::targets::{self, ServedType};

/// Why an execution could not be completed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// The API server failed a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The deleting policy does not compile.
    #[error("the policy cannot be loaded: {0}")]
    Load(String),
    /// Deciding on the resources failed to run.
    #[error("the evaluation failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What one execution did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Resources deleted.
    pub deleted: usize,
    /// Resources whose deletion or evaluation failed.
    pub failed: usize,
}

/// Runs executions.
#[derive(Clone)]
pub struct Executor {
    /// The API client.
    pub client: Client,
    /// Answers context entries and CEL libraries (blocking).
    pub provider: Arc<dyn ContextProvider>,
    /// Where deletions are counted.
    pub metrics: Arc<Metrics>,
    /// This replica (the Events' `reportingInstance`).
    pub instance: String,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

/// A policy ready to decide on resources.
enum Decider {
    Cleanup(Box<CleanupMatcher>),
    Deleting(Box<CompiledDeletingPolicy>, ResourceTable),
}

impl Decider {
    /// Whether to delete `target`; `namespace` is its Namespace object, if any.
    fn decide(
        &self,
        target: &Value,
        namespace: Option<&Value>,
        provider: &Arc<dyn ContextProvider>,
    ) -> Result<bool, String> {
        match self {
            Decider::Cleanup(matcher) => {
                let labels: BTreeMap<String, String> = namespace
                    .and_then(|ns| ns.pointer("/metadata/labels"))
                    .and_then(|labels| serde_json::from_value(labels.clone()).ok())
                    .unwrap_or_default();
                match matcher.decide(target, labels, provider.as_ref()) {
                    CleanupDecision::Delete => Ok(true),
                    CleanupDecision::Keep => Ok(false),
                    CleanupDecision::Error(error) => Err(error),
                }
            }
            Decider::Deleting(policy, resources) => {
                let candidate = Candidate {
                    resource: target,
                    namespace_object: namespace,
                    resources,
                };
                match policy.decide(&candidate, provider) {
                    DeletionDecision::Delete => Ok(true),
                    DeletionDecision::Keep | DeletionDecision::Exempted(_) => Ok(false),
                    DeletionDecision::Error(error) => Err(error),
                }
            }
        }
    }

    fn selects(&self, policy: &ScheduledPolicy, served: &ServedType) -> bool {
        match &policy.rules {
            Rules::Cleanup(spec) => targets::cleanup_selects(&spec.match_resources, served),
            Rules::Deleting(spec) => {
                targets::deleting_selects(spec.match_constraints.as_ref(), served)
            }
        }
    }
}

fn propagation(policy: Option<DeletionPropagation>) -> DeleteParams {
    DeleteParams {
        propagation_policy: policy.map(|policy| match policy {
            DeletionPropagation::Foreground => PropagationPolicy::Foreground,
            DeletionPropagation::Background => PropagationPolicy::Background,
            DeletionPropagation::Orphan => PropagationPolicy::Orphan,
        }),
        ..DeleteParams::default()
    }
}

impl Executor {
    /// Runs `policy` once.
    pub async fn execute(&self, policy: &ScheduledPolicy) -> Result<Outcome, ExecuteError> {
        let decider = Arc::new(self.decider(policy).await?);
        let namespaces: Arc<BTreeMap<String, Value>> = Arc::new(
            Api::<Namespace>::all(self.client.clone())
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter_map(|ns| Some((ns.name_any(), serde_json::to_value(ns).ok()?)))
                .collect(),
        );
        let mut outcome = Outcome::default();
        for served in targets::deletable_types(&self.client).await? {
            if !decider.selects(policy, &served)
                || (policy.namespace.is_some() && !served.namespaced)
            {
                continue;
            }
            let api: Api<DynamicObject> = match &policy.namespace {
                Some(namespace) => {
                    Api::namespaced_with(self.client.clone(), namespace, &served.resource)
                }
                None => Api::all_with(self.client.clone(), &served.resource),
            };
            let items: Vec<Value> = api
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|item| item.metadata.deletion_timestamp.is_none())
                .filter_map(|item| serde_json::to_value(item).ok())
                .collect();
            let (decider, namespaces, provider) = (
                Arc::clone(&decider),
                Arc::clone(&namespaces),
                Arc::clone(&self.provider),
            );
            let key = policy.key();
            let decisions = tokio::task::spawn_blocking(move || {
                items
                    .into_iter()
                    .map(|item| {
                        let namespace = item["metadata"]["namespace"]
                            .as_str()
                            .and_then(|ns| namespaces.get(ns));
                        let decision = decider.decide(&item, namespace, &provider);
                        (item, decision)
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
            for (item, decision) in decisions {
                match decision {
                    Ok(true) => {
                        if self.delete(policy, &served, &item).await {
                            outcome.deleted += 1;
                        } else {
                            outcome.failed += 1;
                        }
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(policy = %key, %error, "resource not evaluated");
                        outcome.failed += 1;
                    }
                }
            }
        }
        Ok(outcome)
    }

    async fn decider(&self, policy: &ScheduledPolicy) -> Result<Decider, ExecuteError> {
        match &policy.rules {
            Rules::Cleanup(spec) => Ok(Decider::Cleanup(Box::new(CleanupMatcher::new(
                &policy.name,
                policy.namespace.as_deref(),
                spec,
            )))),
            Rules::Deleting(spec) => {
                let exceptions: Vec<Arc<PolicyException>> =
                    Api::<PolicyException>::all(self.client.clone())
                        .list(&ListParams::default())
                        .await?
                        .items
                        .into_iter()
                        .map(Arc::new)
                        .collect();
                let compiled = CompiledDeletingPolicy::compile(
                    &policy.name,
                    policy.namespace.as_deref(),
                    spec,
                    &exceptions,
                )
                .map_err(|error| ExecuteError::Load(error.to_string()))?;
                let mut resources = ResourceTable::builtin().clone();
                let crds = Api::<CustomResourceDefinition>::all(self.client.clone())
                    .list(&ListParams::default())
                    .await?;
                for crd in crds.items {
                    if let Ok(crd) = serde_json::to_value(crd)
                        && let Err(error) = resources.add_crd(&crd)
                    {
                        tracing::debug!(%error, "CRD not usable for deleting policies");
                    }
                }
                Ok(Decider::Deleting(Box::new(compiled), resources))
            }
        }
    }

    /// Deletes one resource, counting and reporting it; whether it was deleted.
    async fn delete(&self, policy: &ScheduledPolicy, served: &ServedType, item: &Value) -> bool {
        let name = item["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = item["metadata"]["namespace"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = if served.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &served.resource)
        } else {
            Api::all_with(self.client.clone(), &served.resource)
        };
        let labels = PolicyLabels {
            policy_type: policy.resource.kind.clone(),
            policy_namespace: policy.namespace.clone().unwrap_or_default(),
            policy_name: policy.name.clone(),
            resource_kind: served.resource.kind.clone(),
            resource_namespace: namespace.to_owned(),
        };
        let target = format!("{}/{namespace}/{name}", served.resource.kind);
        let result = api.delete(name, &propagation(policy.propagation)).await;
        let (event_type, reason, note) = match &result {
            Ok(_) => {
                self.metrics.deleted_objects.get_or_create(&labels).inc();
                tracing::info!(policy = %policy.key(), %target, "resource cleaned up");
                (
                    EventType::Normal,
                    "PolicyApplied",
                    format!("successfully cleaned up the target resource {target}"),
                )
            }
            Err(error) => {
                self.metrics.errors.get_or_create(&labels).inc();
                tracing::warn!(policy = %policy.key(), %target, %error, "cleanup failed");
                (
                    EventType::Warning,
                    "PolicyError",
                    format!("failed to clean up the target resource {target}: {error}"),
                )
            }
        };
        let regarding = events::reference(
            &policy.resource.api_version,
            &policy.resource.kind,
            policy.namespace.as_deref(),
            &policy.name,
            policy.uid.as_deref(),
        );
        events::publish(
            &self.client,
            &self.instance,
            EventInfo {
                regarding,
                event_type,
                reason,
                action: "ResourceCleanedUp",
                note,
            },
        )
        .await;
        result.is_ok()
    }
}
