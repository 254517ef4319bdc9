//! Evaluating a loaded policy against one resource request.
//!
//! The engine is sans-IO: ConfigMaps, API calls, GlobalContextEntries and image data come from a
//! [`ContextProvider`] that the caller implements (the controllers against the API server, the
//! CLI from values files and mocks).
mod context;
mod policy;
mod provider;
mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::ApplyRules;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use serde_json::{Map, Value};

pub use policy::{LoadedPolicy, PolicyLoadError};
pub use provider::{ContextProvider, Lookup, NoExternalData, ProviderError};

use crate::autogen;
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
    let images =
        crate::images::extract_images(request.resource(), &BTreeMap::new()).unwrap_or(Value::Null);
    let mut base = RuleContext::for_request(request, images);
    base.set_variables(&environment.values.global);
    base.set_variables(&environment.values.resource);
    // Values may set fields of the object itself (`request.object.metadata.labels.x`); the
    // object evaluated is then the one they produce, as upstream re-reads it.
    let overridden;
    let request = match base.data().pointer("/request/object") {
        Some(object)
            if writes_object(environment.values) && object != request.resource().as_ref() =>
        {
            overridden = request.clone().with_resource(Arc::new(object.clone()));
            &overridden
        }
        _ => request,
    };
    let policy_key = policy.key();
    let is_delete = request.operation() == Some(AdmissionOperation::Delete);
    for rule in &policy.rules {
        let Some(validation) = &rule.validate else {
            continue;
        };
        if rule_matches(rule, policy.namespace.as_deref(), request).is_err() {
            continue;
        }
        let mut context = base.clone();
        if !rule.image_extractors.is_empty()
            && let Ok(images) =
                crate::images::extract_images(request.resource(), &rule.image_extractors)
        {
            context.set_variable("images", images);
        }
        let rule_values = environment.values.rules.get(&rule.name);
        if let Some(values) = rule_values {
            context.set_variables(&values.values);
        }
        let error = |what: &str, error: &dyn std::fmt::Display| RuleResponse {
            name: rule.name.clone(),
            rule_type: RuleType::Validation,
            status: RuleStatus::Error,
            message: format!("{what}: {error}"),
        };
        if let Err(e) = context.load_entries(&rule.context, environment.provider) {
            response.rules.push(error("failed to load context", &e));
            continue;
        }
        match preconditions_hold(rule.preconditions.as_ref(), &context) {
            Ok((true, _)) => {}
            Ok((false, message)) => {
                let message = if message.is_empty() {
                    "preconditions not met".to_owned()
                } else {
                    format!("preconditions not met; {message}")
                };
                response.rules.push(RuleResponse {
                    name: rule.name.clone(),
                    rule_type: RuleType::Validation,
                    status: RuleStatus::Skip,
                    message,
                });
                continue;
            }
            Err(e) => {
                response
                    .rules
                    .push(error("failed to evaluate preconditions", &e));
                continue;
            }
        }
        let found = find_exceptions(
            environment.exceptions,
            &policy_key,
            &rule.name,
            request,
            |conditions| {
                Conditions::from(conditions)
                    .evaluate(|value| context.substitute(value))
                    .is_ok_and(|verdict| verdict.holds)
            },
        );
        let verdict = ExceptionVerdict::new(found, validation.pod_security.is_some());
        let exemptions = match &verdict {
            ExceptionVerdict::Skip { message, .. } => {
                response.rules.push(RuleResponse {
                    name: rule.name.clone(),
                    rule_type: RuleType::Validation,
                    status: RuleStatus::Skip,
                    message: message.clone(),
                });
                continue;
            }
            ExceptionVerdict::ExemptPodSecurity { exemptions, .. } => exemptions.clone(),
            ExceptionVerdict::Evaluate => Vec::new(),
        };
        let validator = Validator {
            rule,
            validation,
            provider: environment.provider,
            values: rule_values,
            exemptions: &exemptions,
            is_delete,
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
        let applied = matches!(rule_response.status, RuleStatus::Pass | RuleStatus::Fail);
        response.rules.push(rule_response);
        if applied && policy.spec.apply_rules == Some(ApplyRules::One) {
            break;
        }
    }
    response
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

#[cfg(test)]
mod tests;
