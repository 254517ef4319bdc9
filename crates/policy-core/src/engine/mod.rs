//! Evaluating a loaded policy against one resource request.
//!
//! The engine is sans-IO: ConfigMaps, API calls, GlobalContextEntries and image data come from a
//! [`ContextProvider`] that the caller implements (the controllers against the API server, the
//! CLI from values files and mocks).
mod background;
pub mod cleanup;
mod context;
mod generate;
mod mutate;
mod policy;
mod provider;
mod validate;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::ApplyRules;
use kyverno_api::kyverno::v1::rule::Rule;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use serde_json::{Map, Value};

pub use background::background_checks;
pub use generate::{GenerateResponse, GeneratedResource, generate};
pub use mutate::{
    MutateResponse, PatchedTarget, mutate, mutate_admission, mutate_existing,
    mutates_existing_on_policy_update,
};
pub use policy::{LoadedPolicy, PolicyLoadError};
pub use provider::{ContextProvider, Lookup, NoExternalData, ProviderError};

use crate::autogen;
use crate::celpolicy::cel_rule::CelRuleRun;
use crate::conditions::{Conditions, parse_conditions};
use crate::exceptions::{ExceptionVerdict, find_exceptions};
use crate::matching::rule_matches;
use crate::request::ResourceRequest;
use crate::response::{PolicyResponse, RuleResponse, RuleStatus, RuleType};
use context::RuleContext;
use validate::Validator;

/// Why a rule could not be evaluated; reported as the rule's `error` result.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A `{{ }}` variable could not be resolved.
    #[error(transparent)]
    Variable(#[from] crate::variables::VariableError),
    /// A JMESPath expression failed.
    #[error(transparent)]
    JmesPath(#[from] crate::jmespath::JmesPathError),
    /// Conditions are malformed.
    #[error(transparent)]
    Condition(#[from] crate::conditions::ConditionError),
    /// A context entry could not be loaded.
    #[error("{0}")]
    Context(String),
}

/// Variable values supplied from outside for one (policy, resource) evaluation, as the CLI's
/// values files give them. Keys may be dotted paths (`request.operation`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SuppliedValues {
    /// Values for every policy and resource.
    pub global: Map<String, Value>,
    /// Values for this resource.
    pub resource: Map<String, Value>,
    /// Values per rule name.
    pub rules: BTreeMap<String, RuleValues>,
}

/// Values supplied for one rule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleValues {
    /// Variables of the rule, set before its context entries load.
    pub values: Map<String, Value>,
    /// Variables per foreach element: for each variable name, a list of values, one per element.
    pub foreach: Map<String, Value>,
}

/// Everything an evaluation needs besides the policy and the request.
#[derive(Clone, Copy)]
pub struct Environment<'a> {
    /// Where context entries get their data.
    pub provider: &'a dyn ContextProvider,
    /// The PolicyExceptions in force.
    pub exceptions: &'a [PolicyException],
    /// Values supplied from outside.
    pub values: &'a SuppliedValues,
}

/// Applies the validate rules of `policy` to `request`: one response per rule that matches the
/// resource, in rule order (autogen rules included).
pub fn validate(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    environment: &Environment<'_>,
) -> PolicyResponse {
    let mut response = PolicyResponse::default();
    if autogen::is_managed_pod_resource(&policy.annotations, request) {
        return response;
    }
    let run = PolicyRun::new(policy, request, environment);
    let request = run.request.as_ref();
    let is_delete = request.operation() == Some(AdmissionOperation::Delete);
    let cel = CelRuleRun::new(&policy.cel_rules, request, environment.provider);
    for rule in &policy.rules {
        let Some(validation) = &rule.validate else {
            continue;
        };
        let pod_security = validation.pod_security.is_some();
        let (mut context, verdict) =
            match run.prelude(rule, RuleType::Validation, pod_security, request) {
                Prelude::Unmatched => continue,
                Prelude::Answered(answer) => {
                    response.rules.push(answer);
                    continue;
                }
                Prelude::Run { context, verdict } => (context, verdict),
            };
        let exemptions = match &verdict {
            ExceptionVerdict::ExemptPodSecurity { exemptions, .. } => exemptions.clone(),
            ExceptionVerdict::Evaluate | ExceptionVerdict::Skip { .. } => Vec::new(),
        };
        let validator = Validator {
            rule,
            validation,
            provider: environment.provider,
            values: environment.values.rules.get(&rule.name),
            exemptions: &exemptions,
            is_delete,
            cel: &cel,
        };
        let Some(mut rule_response) = validator.validate(&mut context, request.resource()) else {
            continue;
        };
        if rule_response.status == RuleStatus::Skip
            && !exemptions.is_empty()
            && rule_response.message.is_empty()
        {
            rule_response.message = verdict.pod_security_skip_message();
        }
        let applied = counts_as_applied(rule_response.status);
        response.rules.push(rule_response);
        if applied && policy.spec.apply_rules == Some(ApplyRules::One) {
            break;
        }
    }
    response
}

/// One policy being applied to one request: what every rule starts from.
struct PolicyRun<'p, 'e> {
    policy: &'p LoadedPolicy,
    environment: &'p Environment<'e>,
    /// How exceptions name the policy.
    key: String,
    /// The variables every rule starts from (mutate rules update `request.object` in them).
    base: RuleContext,
    /// The request evaluated: supplied values may have rewritten its object.
    request: Cow<'p, ResourceRequest>,
}

/// What the steps every rule goes through before its action decided.
enum Prelude<'e> {
    /// The rule does not match the request: it has no response.
    Unmatched,
    /// The rule is answered without running its action: its context failed to load, its
    /// preconditions failed or are not met, or a policy exception skips it.
    Answered(RuleResponse),
    /// The action runs in this context; `verdict` tells which podSecurity controls exceptions
    /// exempt.
    Run {
        context: RuleContext,
        verdict: ExceptionVerdict<'e>,
    },
}

impl<'p, 'e> PolicyRun<'p, 'e> {
    fn new(
        policy: &'p LoadedPolicy,
        request: &'p ResourceRequest,
        environment: &'p Environment<'e>,
    ) -> Self {
        let mut base = RuleContext::for_request(request);
        base.set_variables(&environment.values.global);
        base.set_variables(&environment.values.resource);
        // Values may set fields of the object itself (`request.object.metadata.labels.x`); the
        // object evaluated is then the one they produce, as upstream re-reads it.
        let request = match base.data().pointer("/request/object") {
            Some(object)
                if writes_object(environment.values) && object != request.resource().as_ref() =>
            {
                Cow::Owned(request.clone().with_resource(Arc::new(object.clone())))
            }
            _ => Cow::Borrowed(request),
        };
        Self {
            policy,
            environment,
            key: policy.key(),
            base,
            request,
        }
    }

    /// Runs the steps before a rule's action, as upstream does for every rule type: matching,
    /// the rule's variables (images, supplied values, context entries), preconditions, and
    /// policy exceptions (`pod_security` rules may be only partly exempted).
    fn prelude(
        &self,
        rule: &Rule,
        rule_type: RuleType,
        pod_security: bool,
        request: &ResourceRequest,
    ) -> Prelude<'e> {
        if rule_matches(rule, self.policy.namespace.as_deref(), request).is_err() {
            return Prelude::Unmatched;
        }
        let answer = |status, message| {
            Prelude::Answered(RuleResponse {
                name: rule.name.clone(),
                rule_type,
                status,
                message,
            })
        };
        let mut context = self.base.clone();
        if !rule.image_extractors.is_empty()
            && let Ok(images) =
                crate::images::extract_images(request.resource(), &rule.image_extractors)
        {
            context.set_variable("images", images);
        }
        if let Some(values) = self.environment.values.rules.get(&rule.name) {
            context.set_variables(&values.values);
        }
        if let Err(error) = context.load_entries(&rule.context, self.environment.provider) {
            return answer(
                RuleStatus::Error,
                format!("failed to load context: {error}"),
            );
        }
        match preconditions_hold(rule.preconditions.as_ref(), &context) {
            Ok((true, _)) => {}
            Ok((false, message)) if message.is_empty() => {
                return answer(RuleStatus::Skip, "preconditions not met".to_owned());
            }
            Ok((false, message)) => {
                return answer(
                    RuleStatus::Skip,
                    format!("preconditions not met; {message}"),
                );
            }
            Err(error) => {
                return answer(
                    RuleStatus::Error,
                    format!("failed to evaluate preconditions: {error}"),
                );
            }
        }
        let found = find_exceptions(
            self.environment.exceptions,
            &self.key,
            &rule.name,
            request,
            |conditions| {
                Conditions::from(conditions)
                    .evaluate(|value| context.substitute(value))
                    .is_ok_and(|verdict| verdict.holds)
            },
        );
        match ExceptionVerdict::new(found, pod_security) {
            ExceptionVerdict::Skip { message, .. } => answer(RuleStatus::Skip, message),
            verdict => Prelude::Run { context, verdict },
        }
    }
}

/// Whether a rule with this outcome counts as applied for `applyRules: One` (upstream's
/// `RulesAppliedCount`).
fn counts_as_applied(status: RuleStatus) -> bool {
    matches!(status, RuleStatus::Pass | RuleStatus::Fail)
}

/// Whether supplied values set fields of `request.object`.
fn writes_object(values: &SuppliedValues) -> bool {
    values
        .global
        .keys()
        .chain(values.resource.keys())
        .any(|key| key.starts_with("request.object."))
}

/// Evaluates a rule's preconditions: whether they hold, and the message upstream adds to the
/// skip reason.
fn preconditions_hold(
    preconditions: Option<&Value>,
    context: &RuleContext,
) -> Result<(bool, String), EngineError> {
    let Some(preconditions) = preconditions else {
        return Ok((true, String::new()));
    };
    let conditions = parse_conditions(preconditions)?;
    let verdict = conditions.evaluate(|value| context.substitute(value))?;
    Ok((verdict.holds, verdict.message))
}

/// A rule context for one foreach element: `element`, `elementIndex` (at `nesting`) and the
/// supplied per-element values.
pub(crate) fn element_context(
    context: &RuleContext,
    element: &Value,
    index: usize,
    nesting: usize,
    values: Option<&RuleValues>,
) -> RuleContext {
    let mut element_context = context.clone();
    element_context.set_element(element.clone(), index, nesting);
    if let Some(values) = values {
        for (key, per_element) in &values.foreach {
            if let Some(value) = per_element.get(index) {
                element_context.set_variable(key, value.clone());
            }
        }
    }
    element_context
}

/// The contexts of the elements of one foreach declaration, one element after the other.
///
/// Each element's context is the declaration's context plus the element's variables. When
/// evaluating an element changes nothing else in its context, one context serves every element
/// in turn (only the element variables are replaced), so that the declaration's variables are
/// copied once per declaration instead of once per element.
pub(crate) struct ElementContexts<'a> {
    base: &'a RuleContext,
    values: Option<&'a RuleValues>,
    nesting: usize,
    reuse: bool,
    current: RuleContext,
}

impl<'a> ElementContexts<'a> {
    /// The element contexts derived from `base` at `nesting`. `changes_context` tells whether
    /// evaluating an element changes its context (context entries, nested foreach that update
    /// it): then every element starts from a fresh copy of `base`, as do elements with supplied
    /// per-element values.
    pub(crate) fn new(
        base: &'a RuleContext,
        values: Option<&'a RuleValues>,
        nesting: usize,
        changes_context: bool,
    ) -> Self {
        Self {
            base,
            values,
            nesting,
            reuse: !changes_context && values.is_none_or(|values| values.foreach.is_empty()),
            current: base.clone(),
        }
    }

    /// The context of `element`, at `index` of the list.
    pub(crate) fn context_of(&mut self, element: &Value, index: usize) -> &mut RuleContext {
        if self.reuse {
            self.current
                .set_element(element.clone(), index, self.nesting);
        } else {
            self.current = element_context(self.base, element, index, self.nesting, self.values);
        }
        &mut self.current
    }
}

#[cfg(test)]
mod tests;
