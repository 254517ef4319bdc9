//! The test's `targetResources` as mutate-existing rules left them, as upstream's
//! `TestResponse.Target`: each target a rule patched is checked like a trigger resource, its
//! patched form against `patchedResources`.
use std::sync::Arc;

use kyverno_policy_core::engine::{LoadedPolicy, PatchedTarget};
use kyverno_policy_core::response::PolicyResponse;
use serde_json::Value;

use super::rows::{PolicyOutcome, ResourceOutcome};
use crate::engine::field;
use crate::report::is_scored;

/// The outcomes of the test's target resources.
pub(super) struct TargetOutcomes {
    outcomes: Vec<ResourceOutcome>,
}

impl TargetOutcomes {
    /// Outcomes for `targets` (the test's target resources), none patched yet.
    pub(super) fn new(targets: &[Value]) -> Self {
        let outcomes = targets
            .iter()
            .map(|target| ResourceOutcome {
                api_version: field(target, "/apiVersion").to_owned(),
                kind: field(target, "/kind").to_owned(),
                namespace: field(target, "/metadata/namespace").to_owned(),
                name: field(target, "/metadata/name").to_owned(),
                policies: Vec::new(),
            })
            .collect();
        Self { outcomes }
    }

    /// Records the targets the mutate-existing rules of `policy` patched; those that are not
    /// target resources of the test are left out, as upstream does.
    pub(super) fn record(&mut self, policy: &LoadedPolicy, patched: &[PatchedTarget]) {
        for target in patched {
            let resource = &target.resource;
            let Some(outcome) = self.target_mut(resource) else {
                continue;
            };
            outcome.policies.push(PolicyOutcome {
                policy: policy.name.clone(),
                rules: policy.rules.iter().map(|rule| rule.name.clone()).collect(),
                scored: is_scored(policy),
                response: PolicyResponse {
                    rules: vec![target.response.clone()],
                },
                resource: Arc::new(resource.clone()),
                generated: Vec::new(),
                cel: None,
            });
        }
    }

    /// The outcome of the target resource of the test that `resource` is (by apiVersion, kind,
    /// name and, when the target has one, namespace).
    fn target_mut(&mut self, resource: &Value) -> Option<&mut ResourceOutcome> {
        self.outcomes.iter_mut().find(|outcome| {
            outcome.api_version == field(resource, "/apiVersion")
                && outcome.kind == field(resource, "/kind")
                && outcome.name == field(resource, "/metadata/name")
                && (outcome.namespace.is_empty()
                    || outcome.namespace == field(resource, "/metadata/namespace"))
        })
    }

    /// Records the target a CEL policy patched (the outcome's resource); one that is not a
    /// target resource of the test is left out.
    pub(super) fn record_cel(&mut self, outcome: PolicyOutcome) {
        let resource = Arc::clone(&outcome.resource);
        if let Some(target) = self.target_mut(&resource) {
            target.policies.push(outcome);
        }
    }

    /// The outcomes of the targets some rule patched.
    pub(super) fn into_patched(self) -> impl Iterator<Item = ResourceOutcome> {
        self.outcomes
            .into_iter()
            .filter(|outcome| !outcome.policies.is_empty())
    }
}
