//! Mutate-existing rules: the patches of a rule with `mutate.targets` apply to existing
//! resources instead of the request's, as upstream's `mutateExistingHandler` applies them.
//!
//! - Each target spec has its variables substituted from the rule's context (`apiVersion`,
//!   `kind`, `namespace`, `name`, `uid` and `selector`); the resources it selects are read
//!   through the [`ContextProvider`](super::super::ContextProvider):
//!   - with a namespace and a name, neither with wildcards, the one resource (a missing one is
//!     an error, as a failed GET is upstream);
//!   - otherwise every resource of the kind whose namespace and name match the wildcards (an
//!     empty namespace or name matches any), in namespace then name order;
//!   - a namespaced Policy only reaches targets in its own namespace;
//!   - then only those the `selector` selects and, when a `uid` is given, the one with that UID.
//! - For each target, `target` holds it, its own `context` entries load and its own
//!   `preconditions` must hold (else the target is skipped, with upstream's message); the
//!   rule's patches (strategic merge, JSON 6902 or `foreach`) then apply to it, with
//!   `request.object` still the trigger.
//! - Each target gets its own rule response (pass with the patched target, skip when nothing
//!   changed, error); targets that cannot be loaded make one error response, and the targets
//!   that could be loaded are still mutated. A rule whose targets select nothing has no
//!   response.
use kyverno_api::kyverno::v1::mutate::{Mutation, TargetResourceSpec};
use serde_json::Value;

use super::super::context::RuleContext;
use super::super::generate::labels_of;
use super::super::{EngineError, Lookup, ProviderError, preconditions_hold};
use super::{Mutator, Outcome, PatchedTarget, mutation_response, success_message};
use crate::matching::{SelectorError, selector_matches};
use crate::mutate::diff;
use crate::response::{RuleResponse, RuleStatus};
use crate::wildcard;

/// Why the targets of a spec could not be loaded.
#[derive(Debug, thiserror::Error)]
enum TargetError {
    /// The spec's variables could not be substituted.
    #[error("failed to substitute variables in target[{index}]: {source}")]
    Substitution {
        /// The spec's position in `targets`.
        index: usize,
        /// Why.
        source: EngineError,
    },
    /// The substituted spec is not a target spec.
    #[error("invalid target[{index}]: {source}")]
    Invalid {
        /// The spec's position in `targets`.
        index: usize,
        /// Why.
        source: serde_json::Error,
    },
    /// The one resource a spec names does not exist.
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        /// The target's kind.
        kind: String,
        /// The target's namespace.
        namespace: String,
        /// The target's name.
        name: String,
    },
    /// The provider failed, or answered a list with something else.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The spec's selector is invalid.
    #[error(transparent)]
    Selector(#[from] SelectorError),
}

/// What a mutate-existing rule gave.
pub(super) struct TargetsMutated {
    /// The rule's responses: a load error first, if any, then one per target.
    pub(super) responses: Vec<RuleResponse>,
    /// The targets it patched.
    pub(super) patched: Vec<PatchedTarget>,
}

/// A resource selected by a target spec, with the spec's own context and preconditions.
struct Target<'r> {
    resource: Value,
    spec: &'r TargetResourceSpec,
}

impl Mutator<'_> {
    /// Applies a rule with `targets` to the resources they select.
    pub(super) fn mutate_targets(
        &self,
        rule: &str,
        mutation: &Mutation,
        context: &RuleContext,
        policy_namespace: Option<&str>,
    ) -> TargetsMutated {
        let mut responses = Vec::new();
        let mut targets = Vec::new();
        let mut failures = Vec::new();
        for (index, spec) in mutation.targets.iter().enumerate() {
            match self.load_targets(index, spec, context, policy_namespace) {
                Ok(resources) => targets.extend(
                    resources
                        .into_iter()
                        .map(|resource| Target { resource, spec }),
                ),
                Err(error) => failures.push(error.to_string()),
            }
        }
        if !failures.is_empty() {
            responses.push(mutation_response(
                rule,
                RuleStatus::Error,
                format!("failed to load targets: {}", failures.join("; ")),
            ));
        }
        let mut patched = Vec::new();
        for target in targets {
            match self.mutate_target(mutation, context, &target) {
                Outcome::Patched(resource) => {
                    let response =
                        mutation_response(rule, RuleStatus::Pass, success_message(&resource));
                    responses.push(response.clone());
                    patched.push(PatchedTarget {
                        response,
                        patches: diff(&target.resource, &resource),
                        resource,
                    });
                }
                Outcome::Unchanged(message) => {
                    responses.push(mutation_response(rule, RuleStatus::Skip, message));
                }
                Outcome::Failed(message) => {
                    responses.push(mutation_response(rule, RuleStatus::Error, message));
                }
            }
        }
        TargetsMutated { responses, patched }
    }

    /// One target: its context, its preconditions, then the rule's patches.
    fn mutate_target(
        &self,
        mutation: &Mutation,
        context: &RuleContext,
        target: &Target<'_>,
    ) -> Outcome {
        let mut target_context = context.clone();
        target_context.set_variable("target", target.resource.clone());
        if let Err(error) =
            target_context.load_entries(&target.spec.context, self.environment.provider)
        {
            return Outcome::Failed(format!("failed to load context: {error}"));
        }
        match preconditions_hold(target.spec.preconditions.as_ref(), &target_context) {
            Ok((true, _)) => {}
            Ok((false, message)) if message.is_empty() => {
                return Outcome::Unchanged("preconditions not met".to_owned());
            }
            Ok((false, message)) => {
                return Outcome::Unchanged(format!("preconditions not met; {message}"));
            }
            Err(error) => {
                return Outcome::Failed(format!("failed to evaluate preconditions: {error}"));
            }
        }
        self.mutate_rule(mutation, &mut target_context, &target.resource)
    }

    /// The resources one target spec selects.
    fn load_targets(
        &self,
        index: usize,
        spec: &TargetResourceSpec,
        context: &RuleContext,
        policy_namespace: Option<&str>,
    ) -> Result<Vec<Value>, TargetError> {
        let selector = resolve(index, spec, context)?;
        let resource = &selector.resource;
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let (api_version, kind) = (text(&resource.api_version), text(&resource.kind));
        let namespace = policy_namespace.map_or_else(|| text(&resource.namespace), str::to_owned);
        let name = text(&resource.name);
        let provider = self.environment.provider;
        let mut found = if !namespace.is_empty()
            && !name.is_empty()
            && !wildcard::has_wildcard(&namespace)
            && !wildcard::has_wildcard(&name)
        {
            match provider.get_resource(&api_version, &kind, &namespace, &name)? {
                Lookup::Found(found) => vec![found],
                Lookup::Unavailable => {
                    return Err(TargetError::NotFound {
                        kind,
                        namespace,
                        name,
                    });
                }
            }
        } else {
            let list_namespace = if wildcard::has_wildcard(&namespace) {
                ""
            } else {
                namespace.as_str()
            };
            let mut listed = match provider.list_resources(&api_version, &kind, list_namespace)? {
                Lookup::Found(Value::Array(items)) => items,
                Lookup::Found(other) => {
                    return Err(TargetError::Provider(ProviderError(format!(
                        "listing {kind} did not give a list: {other}"
                    ))));
                }
                Lookup::Unavailable => Vec::new(),
            };
            listed.retain(|item| {
                names_match(
                    &namespace,
                    &name,
                    field(item, "namespace"),
                    field(item, "name"),
                )
            });
            listed.sort_by(|a, b| {
                (field(a, "namespace"), field(a, "name"))
                    .cmp(&(field(b, "namespace"), field(b, "name")))
            });
            listed
        };
        if let Some(label_selector) = &selector.selector {
            let mut selected = Vec::with_capacity(found.len());
            for candidate in found {
                if selector_matches(label_selector, &labels_of(&candidate))? {
                    selected.push(candidate);
                }
            }
            found = selected;
        }
        if let Some(uid) = resource.uid.as_deref().filter(|uid| !uid.is_empty()) {
            found.retain(|candidate| field(candidate, "uid") == uid);
        }
        Ok(found)
    }
}

/// A target spec with its variables substituted (its own context and preconditions are left
/// out: they are per target).
fn resolve(
    index: usize,
    spec: &TargetResourceSpec,
    context: &RuleContext,
) -> Result<TargetResourceSpec, TargetError> {
    let selector = TargetResourceSpec {
        resource: spec.resource.clone(),
        selector: spec.selector.clone(),
        ..TargetResourceSpec::default()
    };
    let json =
        serde_json::to_value(&selector).map_err(|source| TargetError::Invalid { index, source })?;
    let substituted = context
        .substitute(&json)
        .map_err(|source| TargetError::Substitution { index, source })?;
    serde_json::from_value(substituted).map_err(|source| TargetError::Invalid { index, source })
}

/// Upstream's matching of a listed resource against a target's namespace and name wildcards:
/// an empty pattern matches anything.
fn names_match(namespace_pattern: &str, name_pattern: &str, namespace: &str, name: &str) -> bool {
    (namespace_pattern.is_empty() || wildcard::matches(namespace_pattern, namespace))
        && (name_pattern.is_empty() || wildcard::matches(name_pattern, name))
}

/// A string field of a resource's metadata, `""` when absent.
fn field<'a>(resource: &'a Value, key: &str) -> &'a str {
    resource
        .get("metadata")
        .and_then(|metadata| metadata.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
