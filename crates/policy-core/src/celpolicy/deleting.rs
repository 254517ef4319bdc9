//! DeletingPolicy and NamespacedDeletingPolicy (`policies.kyverno.io`): whether an existing
//! resource is to be deleted, as upstream's `dpol` engine decides it for the cleanup controller
//! and the CLI.
//!
//! A resource is to be deleted when:
//! 1. `matchConstraints` select it, whatever the operations they list (the policy runs on a
//!    schedule, not on requests); no constraints select nothing. A document without
//!    `apiVersion` and `kind` (a JSON payload) is not matched, only its conditions count;
//! 2. no CEL PolicyException naming the policy holds for it;
//! 3. every one of `conditions` is true. They see `object`, `namespaceObject` (null when the
//!    namespace is not known), the policy's `variables` and Kyverno's `resource`, `http`,
//!    `globalContext` and `image` libraries; there is no request, hence no `request` or
//!    `oldObject`.
//!
//! A NamespacedDeletingPolicy only considers resources of its namespace. The `schedule` (cron)
//! and `deletionPropagationPolicy` are carried for the controller.
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::MatchResources;
use kube_cel::cel::Value as CelValue;
use kyverno_api::kyverno::v2::cleanup_policy::DeletionPropagation;
use kyverno_api::policies::deleting::Spec;
use kyverno_api::policies::exception::PolicyException;
use serde_json::Value;

use super::activation::{Activation, NAMESPACE_OBJECT, OBJECT};
use super::common::{
    self, CelPolicyLoadError, SpecCompiler, for_all_operations, policy_evaluator, text,
};
use super::exceptions::{CompiledException, MatchedExceptions};
use super::matching::{self, MatchRequest};
use super::resources::ResourceTable;
use super::{CompiledMatchConditions, CompiledVariables, MatchOutcome};
use crate::cel;
use crate::engine::ContextProvider;
use crate::request::GroupVersionKind;
use crate::response::RuleType;

/// The cluster-wide and the namespaced kind.
const KINDS: [&str; 2] = ["DeletingPolicy", "NamespacedDeletingPolicy"];

/// A DeletingPolicy (or NamespacedDeletingPolicy) compiled once, evaluated per resource.
#[derive(Debug)]
pub struct CompiledDeletingPolicy {
    name: String,
    namespace: Option<String>,
    schedule: String,
    deletion_propagation_policy: Option<DeletionPropagation>,
    /// `matchConstraints` with every resource rule open to all operations.
    match_constraints: Option<MatchResources>,
    conditions: CompiledMatchConditions,
    variables: CompiledVariables,
    exceptions: Vec<CompiledException>,
}

/// What a deleting policy decides for one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeletionDecision {
    /// The policy selects the resource and all its conditions hold: delete it. Upstream's CLI
    /// reports this as `pass` ("resource matched").
    Delete,
    /// The policy does not select the resource, or a condition is false. Upstream's CLI reports
    /// `fail` ("resource did not match").
    Keep,
    /// A PolicyException exempts the resource: keep it. Upstream's CLI reports this as a `fail`
    /// too (no match); the message names the exceptions.
    Exempted(String),
    /// Matching or a condition failed: upstream's CLI reports `error` with this message.
    Error(String),
}

/// The resource a deleting policy is evaluated for.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// The resource (or JSON payload).
    pub resource: &'a Value,
    /// The Namespace object of the resource's namespace, when known (`namespaceObject`).
    pub namespace_object: Option<&'a Value>,
    /// The served kinds, to find the resource that serves the resource's kind.
    pub resources: &'a ResourceTable,
}

impl CompiledDeletingPolicy {
    /// Compiles a policy's variables and conditions, and the `matchConditions` of the
    /// `exceptions` that name it. `namespace` is set for a NamespacedDeletingPolicy.
    pub fn compile(
        name: &str,
        namespace: Option<&str>,
        spec: &Spec,
        exceptions: &[Arc<PolicyException>],
    ) -> Result<Self, CelPolicyLoadError> {
        let compiler = SpecCompiler::new(name, namespace, KINDS);
        let variables = compiler.variables(&spec.variables)?;
        let conditions =
            CompiledMatchConditions::compile(&spec.conditions, &variables, "spec.conditions")
                .map_err(|error| compiler.error(error))?;
        let exceptions = compiler.exceptions(exceptions)?;
        Ok(Self {
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            schedule: spec.schedule.clone(),
            deletion_propagation_policy: spec.deletion_propagation_policy,
            match_constraints: spec.match_constraints.clone().map(for_all_operations),
            conditions,
            variables,
            exceptions,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the policy runs, in cron syntax.
    pub fn schedule(&self) -> &str {
        &self.schedule
    }

    /// How dependents of deleted resources are handled; the kind's default when `None`.
    pub fn deletion_propagation_policy(&self) -> Option<DeletionPropagation> {
        self.deletion_propagation_policy
    }

    /// Whether `candidate` is to be deleted. `provider` answers the libraries.
    pub fn decide(
        &self,
        candidate: &Candidate<'_>,
        provider: &Arc<dyn ContextProvider>,
    ) -> DeletionDecision {
        let resource = candidate.resource;
        let namespace = text(resource, "/metadata/namespace");
        if self
            .namespace
            .as_deref()
            .is_some_and(|own| own != namespace)
        {
            return DeletionDecision::Keep;
        }
        match self.selects(candidate) {
            Ok(true) => {}
            Ok(false) => return DeletionDecision::Keep,
            Err(error) => return DeletionDecision::Error(error),
        }
        let namespace_object = match (namespace, candidate.namespace_object) {
            ("", _) | (_, None) => CelValue::Null,
            (_, Some(found)) => cel::from_json(found),
        };
        let activation = Activation::from_values([
            (OBJECT, cel::from_json(resource)),
            (NAMESPACE_OBJECT, namespace_object),
        ]);
        let libraries = common::libraries(provider, self.namespace.as_deref());
        let mut evaluator = policy_evaluator(&activation, &self.variables, Some(&libraries));
        match MatchedExceptions::evaluate(&self.exceptions, &mut evaluator, false) {
            Ok(matched) if matched.exempts() => {
                return DeletionDecision::Exempted(matched.response(RuleType::Validation).message);
            }
            Ok(_) => {}
            Err(error) => return DeletionDecision::Error(error),
        }
        match self.conditions.evaluate(&mut evaluator) {
            MatchOutcome::Matched => DeletionDecision::Delete,
            MatchOutcome::NotMatched { .. } => DeletionDecision::Keep,
            MatchOutcome::Error(error) => DeletionDecision::Error(error),
        }
    }

    /// Whether `matchConstraints` select the resource; a document without `apiVersion` or
    /// `kind` is not subject to them.
    fn selects(&self, candidate: &Candidate<'_>) -> Result<bool, String> {
        let resource = candidate.resource;
        let (api_version, kind) = (text(resource, "/apiVersion"), text(resource, "/kind"));
        if api_version.is_empty() || kind.is_empty() {
            return Ok(true);
        }
        let Some(constraints) = &self.match_constraints else {
            return Ok(false);
        };
        let gvk = GroupVersionKind::from_api_version(api_version, kind);
        let mapping = candidate.resources.mapping(&gvk).ok_or_else(|| {
            format!(
                "no matches for kind {:?} in version {:?}",
                gvk.kind,
                if gvk.group.is_empty() {
                    gvk.version.clone()
                } else {
                    format!("{}/{}", gvk.group, gvk.version)
                }
            )
        })?;
        let request =
            MatchRequest::existing(resource, &mapping.resource, candidate.namespace_object);
        matching::matches(constraints, &request).map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests;
