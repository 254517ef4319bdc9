//! Mutate rules: `patchStrategicMerge`, `patchesJson6902` and `foreach`, as upstream's mutate
//! engine applies them.
//!
//! - Rules apply in order, each to the resource the rules before it produced; a rule that
//!   changed the resource also changes `request.object` for the rules after it.
//! - A rule (or a foreach element) whose patch leaves the resource as it was is skipped with
//!   `no patches applied`; a rule that changed it passes with `mutated Kind/name ...`.
//! - `foreach` declarations run one after the other, each on the result of the previous one
//!   (which also becomes `request.object`). Elements are processed in list order, or in reverse
//!   with `order: Descending` and, unless an `order` is given, for `patchStrategicMerge`
//!   (strategic merge puts patched list elements first, so reversing keeps the list order).
//!   Within a declaration, `request.object` stays what it was before the declaration.
//! - Rules with `targets` (mutate existing resources, see [`existing`]) leave the resource as it
//!   is: they patch the existing resources their targets select, one response per target, and
//!   the patched targets are returned for the background controller to write.
use std::sync::Arc;

use kyverno_api::kyverno::v1::mutate::{ForEachMutation, ForeachOrder, Mutation};
use kyverno_api::kyverno::v1::policy::ApplyRules;
use serde_json::Value;

use super::context::RuleContext;
use super::validate::evaluate_list;
use super::{
    ElementContexts, Environment, LoadedPolicy, PolicyRun, Prelude, RuleValues, counts_as_applied,
};
use crate::autogen;
use crate::conditions::Conditions;
use crate::mutate::{Patch, apply_json6902, diff, strategic_merge};
use crate::request::ResourceRequest;
use crate::response::{RuleResponse, RuleStatus, RuleType};

/// The result of a policy's mutate rules on one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct MutateResponse {
    /// One response per mutate rule that matched the resource, in rule order.
    pub rules: Vec<RuleResponse>,
    /// The resource once every rule applied.
    pub patched: Value,
    /// The RFC 6902 patch from the request's resource to `patched`.
    pub patches: Patch,
    /// The existing resources that rules with `targets` patched, in rule and target order: what
    /// the background controller writes.
    pub targets: Vec<PatchedTarget>,
}

/// An existing resource patched by a mutate-existing rule.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchedTarget {
    /// The response of the rule that patched it, for this target (a pass; it is also among the
    /// rule responses).
    pub response: RuleResponse,
    /// The target once patched (its `metadata.resourceVersion` is the one it was read with).
    pub resource: Value,
    /// The RFC 6902 patch from the target as it was read to `resource`.
    pub patches: Patch,
}

/// Which mutate rules of a policy an evaluation applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Every mutate rule, as upstream's engine outside admission (the CLI).
    All,
    /// Only the rules with `targets`, as the background controller runs them.
    Existing,
    /// Only the rules without `targets`, as the admission webhook runs them.
    Admission,
}

/// Applies the mutate rules of `policy` to `request`, as upstream's engine does outside
/// admission (the CLI): each matching rule without targets patches the result of the rules
/// before it; each matching rule with `targets` patches the existing resources they select and
/// leaves the request's resource as it is (autogen rules included).
pub fn mutate(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    environment: &Environment<'_>,
) -> MutateResponse {
    mutate_in_scope(policy, request, environment, Scope::All)
}

/// Applies the mutate rules of `policy` that patch the admitted resource itself, as upstream's
/// mutating webhook does: rules with `targets` (mutate existing) are left out, the webhook
/// queues UpdateRequests for them instead (see [`super::background_checks`]).
pub fn mutate_admission(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    environment: &Environment<'_>,
) -> MutateResponse {
    mutate_in_scope(policy, request, environment, Scope::Admission)
}

/// Applies the mutate-existing rules (`mutate.targets`) of `policy` for the trigger `request`:
/// what the background controller runs for an UpdateRequest, and for every existing trigger when
/// the policy is created or updated (see [`mutates_existing_on_policy_update`]). The patched
/// targets are in [`MutateResponse::targets`]; the trigger itself is left as it is.
pub fn mutate_existing(
    policy: &LoadedPolicy,
    trigger: &ResourceRequest,
    environment: &Environment<'_>,
) -> MutateResponse {
    mutate_in_scope(policy, trigger, environment, Scope::Existing)
}

/// Whether the background controller applies the mutate-existing rules of `policy` to the
/// existing trigger resources when the policy is created or updated: one of its mutate rules
/// sets `mutateExistingOnPolicyUpdate`, or its spec does (deprecated), as upstream's
/// `GetMutateExistingOnPolicyUpdate`.
pub fn mutates_existing_on_policy_update(policy: &LoadedPolicy) -> bool {
    policy.spec.rules.iter().any(|rule| {
        rule.mutate
            .as_ref()
            .is_some_and(|mutation| mutation.mutate_existing_on_policy_update == Some(true))
    }) || policy.spec.mutate_existing_on_policy_update == Some(true)
}

fn mutate_in_scope(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    environment: &Environment<'_>,
    scope: Scope,
) -> MutateResponse {
    if autogen::is_managed_pod_resource(&policy.annotations, request) {
        return MutateResponse {
            rules: Vec::new(),
            patched: request.resource().as_ref().clone(),
            patches: Patch(Vec::new()),
            targets: Vec::new(),
        };
    }
    let mut run = PolicyRun::new(policy, request, environment);
    let mut current = run.request.as_ref().clone();
    let mut rules = Vec::new();
    let mut targets = Vec::new();
    for rule in &policy.rules {
        let Some(mutation) = rule
            .mutate
            .as_ref()
            .filter(|mutation| **mutation != Mutation::default())
        else {
            continue;
        };
        let existing = !mutation.targets.is_empty();
        if (scope == Scope::Existing && !existing) || (scope == Scope::Admission && existing) {
            continue;
        }
        let mut context = match run.prelude(rule, RuleType::Mutation, false, &current) {
            Prelude::Unmatched => continue,
            Prelude::Answered(answer) => {
                rules.push(answer);
                continue;
            }
            Prelude::Run { context, .. } => context,
        };
        let mutator = Mutator {
            environment,
            values: environment.values.rules.get(&rule.name),
        };
        let first = rules.len();
        if existing {
            let mutated =
                mutator.mutate_targets(&rule.name, mutation, &context, policy.namespace.as_deref());
            rules.extend(mutated.responses);
            targets.extend(mutated.patched);
        } else {
            let (status, message) =
                match mutator.mutate_rule(mutation, &mut context, current.resource()) {
                    Outcome::Patched(patched) => {
                        let message = success_message(&patched);
                        run.base.set_variable("request.object", patched.clone());
                        current = current.with_resource(Arc::new(patched));
                        (RuleStatus::Pass, message)
                    }
                    Outcome::Unchanged(message) => (RuleStatus::Skip, message),
                    Outcome::Failed(message) => (RuleStatus::Error, message),
                };
            rules.push(mutation_response(&rule.name, status, message));
        }
        let applied = rules[first..]
            .iter()
            .any(|response| counts_as_applied(response.status));
        if applied && policy.spec.apply_rules == Some(ApplyRules::One) {
            break;
        }
    }
    let patched = current.resource().as_ref().clone();
    let patches = diff(run.request.resource(), &patched);
    MutateResponse {
        rules,
        patched,
        patches,
        targets,
    }
}

/// The response of a mutate rule.
fn mutation_response(rule: &str, status: RuleStatus, message: String) -> RuleResponse {
    RuleResponse {
        name: rule.to_owned(),
        rule_type: RuleType::Mutation,
        status,
        message,
    }
}

/// Upstream's message for a rule that changed the resource.
fn success_message(resource: &Value) -> String {
    let field = |pointer| resource.pointer(pointer).and_then(Value::as_str);
    let kind = field("/kind").unwrap_or_default();
    let name = field("/metadata/name").unwrap_or_default();
    match field("/metadata/namespace").filter(|namespace| !namespace.is_empty()) {
        Some(namespace) => format!("mutated {kind}/{name} in namespace {namespace}"),
        None => format!("mutated {kind}/{name}"),
    }
}

/// What applying a mutation (a rule's, a foreach declaration's or an element's) gave.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The resource changed into this.
    Patched(Value),
    /// The resource did not change (the rule is skipped), for this reason.
    Unchanged(String),
    /// The mutation failed (the rule is an error), for this reason.
    Failed(String),
}

/// What mutating with one rule needs besides the rule.
struct Mutator<'a> {
    environment: &'a Environment<'a>,
    /// The values supplied for the rule.
    values: Option<&'a RuleValues>,
}

impl Mutator<'_> {
    fn mutate_rule(
        &self,
        mutation: &Mutation,
        context: &mut RuleContext,
        resource: &Value,
    ) -> Outcome {
        if !mutation.foreach.is_empty() {
            return self.mutate_foreach(&mutation.foreach, context, resource, 0);
        }
        apply_patches(
            mutation.patch_strategic_merge.as_ref(),
            mutation.patches_json6902.as_deref(),
            context,
            resource,
            "/mutate",
        )
    }

    /// Upstream `mutateForEach`: each declaration patches the result of the previous one.
    fn mutate_foreach(
        &self,
        declarations: &[ForEachMutation],
        context: &mut RuleContext,
        resource: &Value,
        nesting: usize,
    ) -> Outcome {
        let mut patched: Option<Value> = None;
        let mut applied = 0;
        for foreach in declarations {
            let list = foreach.list.as_deref().unwrap_or_default();
            let elements = match evaluate_list(list, context) {
                Ok(elements) => elements,
                Err(error) => {
                    return Outcome::Failed(format!("failed to evaluate list {list}: {error}"));
                }
            };
            let current = patched.as_ref().unwrap_or(resource);
            match self.mutate_elements(foreach, &elements, context, current, nesting) {
                Outcome::Patched(value) => {
                    applied += 1;
                    context.set_variable("request.object", value.clone());
                    patched = Some(value);
                }
                Outcome::Unchanged(_) => {}
                Outcome::Failed(message) => {
                    return Outcome::Failed(format!("failed to mutate elements: {message}"));
                }
            }
        }
        match patched {
            Some(value) => Outcome::Patched(value),
            None => Outcome::Unchanged(format!("{applied} elements processed")),
        }
    }

    /// Upstream `mutateElements`: applies one declaration to each element in turn.
    fn mutate_elements(
        &self,
        foreach: &ForEachMutation,
        elements: &[Value],
        context: &RuleContext,
        resource: &Value,
        nesting: usize,
    ) -> Outcome {
        let reverse = match foreach.order {
            Some(order) => order == ForeachOrder::Descending,
            None => foreach.patch_strategic_merge.is_some(),
        };
        let mut patched: Option<Value> = None;
        // Context entries and nested declarations (which record their patches in it) change an
        // element's context.
        let changes_context = !foreach.context.is_empty() || foreach.foreach.is_some();
        let mut contexts = ElementContexts::new(context, self.values, nesting, changes_context);
        for position in 0..elements.len() {
            let index = if reverse {
                elements.len() - 1 - position
            } else {
                position
            };
            let element = &elements[index];
            if element.is_null() {
                continue;
            }
            let element_context = contexts.context_of(element, index);
            if let Err(error) =
                element_context.load_entries(&foreach.context, self.environment.provider)
            {
                return Outcome::Failed(format!(
                    "failed to load to mutate.foreach[{index}].context: {error}"
                ));
            }
            if let Some(preconditions) = &foreach.preconditions {
                match Conditions::from(preconditions)
                    .evaluate(|value| element_context.substitute(value))
                {
                    Ok(verdict) if !verdict.holds => continue,
                    Ok(_) => {}
                    Err(error) => {
                        return Outcome::Failed(format!(
                            "failed to evaluate mutate.foreach[{index}].preconditions: {error}"
                        ));
                    }
                }
            }
            let current = patched.as_ref().unwrap_or(resource);
            let outcome = if foreach.foreach.is_some() {
                match foreach.nested() {
                    Ok(nested) => {
                        self.mutate_foreach(&nested, element_context, current, nesting + 1)
                    }
                    Err(error) => {
                        return Outcome::Failed(format!("failed to deserialize foreach: {error}"));
                    }
                }
            } else {
                apply_patches(
                    foreach.patch_strategic_merge.as_ref(),
                    foreach.patches_json6902.as_deref(),
                    element_context,
                    current,
                    "",
                )
            };
            match outcome {
                Outcome::Patched(value) => patched = Some(value),
                Outcome::Unchanged(_) => {}
                failed @ Outcome::Failed(_) => return failed,
            }
        }
        match patched {
            Some(value) if value != *resource => Outcome::Patched(value),
            _ => Outcome::Unchanged("no patches applied".to_owned()),
        }
    }
}

/// Applies a `patchStrategicMerge` (preferred when both are given, as upstream) or a
/// `patchesJson6902`, after substituting their variables. `location` is where the patches sit
/// in the rule (for `{{ @ }}`): `/mutate` for a rule's own, empty inside a foreach (upstream
/// substitutes a foreach's patches on their own).
fn apply_patches(
    strategic: Option<&Value>,
    json6902: Option<&str>,
    context: &RuleContext,
    resource: &Value,
    location: &str,
) -> Outcome {
    let result = if let Some(patch) = strategic {
        let patch = match context.substitute_at(patch, &format!("{location}/patchStrategicMerge")) {
            Ok(patch) => patch,
            Err(error) => return Outcome::Failed(format!("variable substitution failed: {error}")),
        };
        strategic_merge(resource, &patch)
    } else if let Some(text) = json6902.filter(|text| !text.is_empty()) {
        let text = Value::String(text.to_owned());
        let text = match context.substitute_at(&text, &format!("{location}/patchesJson6902")) {
            Ok(Value::String(text)) => text,
            Ok(other) => {
                return Outcome::Failed(format!(
                    "variable substitution failed: patchesJson6902 must be a string, got {other}"
                ));
            }
            Err(error) => return Outcome::Failed(format!("variable substitution failed: {error}")),
        };
        apply_json6902(resource, &text)
    } else {
        return Outcome::Failed("empty mutate rule".to_owned());
    };
    match result {
        Ok(patched) if patched == *resource => Outcome::Unchanged("no patches applied".to_owned()),
        Ok(patched) => Outcome::Patched(patched),
        Err(error) => Outcome::Failed(format!("failed to patch resource: {error}")),
    }
}

mod existing;
#[cfg(test)]
mod tests;
