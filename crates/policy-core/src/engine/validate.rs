//! Validate rules: `pattern`, `anyPattern`, `deny`, `foreach` and `podSecurity`.
use kyverno_api::kyverno::v1::rule::Rule;
use kyverno_api::kyverno::v1::validate::{ForEachValidation, PodSecurityStandard, Validation};
use serde_json::Value;

use super::context::RuleContext;
use super::provider::ContextProvider;
use super::{ElementContexts, EngineError, RuleValues};
use crate::celpolicy::cel_rule::CelRuleRun;
use crate::conditions::{Conditions, parse_conditions};
use crate::manifests::{self, Verification};
use crate::pattern::{self, PatternOutcome};
use crate::pod_security;
use crate::response::{RuleResponse, RuleStatus, RuleType};

/// What validating one rule (or one foreach level) needs besides the rule.
pub(crate) struct Validator<'a> {
    pub(crate) rule: &'a Rule,
    pub(crate) validation: &'a Validation,
    pub(crate) provider: &'a dyn ContextProvider,
    pub(crate) values: Option<&'a RuleValues>,
    /// `podSecurity` controls exempted by PolicyExceptions.
    pub(crate) exemptions: &'a [&'a PodSecurityStandard],
    /// Whether the request deletes the resource (patterns are not checked then).
    pub(crate) is_delete: bool,
    /// The policy's `validate.cel` rules on this request.
    pub(crate) cel: &'a CelRuleRun<'a>,
}

/// The checks of one level: the rule's own, or those of a foreach declaration.
struct Checks<'a> {
    pattern: Option<&'a Value>,
    any_pattern: Option<&'a Value>,
    /// The deny conditions (`null` when `deny` has none).
    deny: Option<&'a Value>,
}

impl Checks<'_> {
    fn is_empty(&self) -> bool {
        self.pattern.is_none() && self.any_pattern.is_none() && self.deny.is_none()
    }
}

impl<'a> Validator<'a> {
    fn response(&self, status: RuleStatus, message: impl Into<String>) -> RuleResponse {
        RuleResponse {
            name: self.rule.name.clone(),
            rule_type: RuleType::Validation,
            status,
            message: message.into(),
        }
    }

    fn error(&self, what: &str, error: impl std::fmt::Display) -> RuleResponse {
        self.response(RuleStatus::Error, format!("{what}: {error}"))
    }

    /// Validates the rule; `None` when it has nothing to check (upstream returns no response).
    pub(crate) fn validate(
        &self,
        context: &mut RuleContext,
        resource: &Value,
    ) -> Option<RuleResponse> {
        let validation = self.validation;
        let checks = Checks {
            pattern: validation.pattern.as_ref(),
            any_pattern: validation.any_pattern.as_ref(),
            deny: validation
                .deny
                .as_ref()
                .map(|deny| deny.conditions.as_ref().unwrap_or(&Value::Null)),
        };
        if !checks.is_empty() {
            return self.check(&checks, context, resource);
        }
        if let Some(pod_security) = &validation.pod_security {
            if self.is_delete {
                return None;
            }
            return Some(self.validate_pod_security(pod_security, resource));
        }
        if !validation.foreach.is_empty() {
            return Some(self.validate_foreach(&validation.foreach, context, resource, 0));
        }
        if validation.cel.is_some() {
            let (status, message) = self.cel.evaluate(&self.rule.name)?;
            return Some(self.response(status, message));
        }
        if let Some(manifests) = &validation.manifests {
            // Upstream has no manifest check for deletions.
            if self.is_delete {
                return None;
            }
            return Some(match manifests::verify(manifests, resource) {
                Ok(Verification::Verified(message)) => self.response(RuleStatus::Pass, message),
                Ok(Verification::NotVerified(message)) => self.response(RuleStatus::Fail, message),
                Err(error) => self.error("error occurred during manifest verification", error),
            });
        }
        None
    }

    /// Checks one level: deny conditions if any, else the patterns.
    fn check(
        &self,
        checks: &Checks<'_>,
        context: &RuleContext,
        resource: &Value,
    ) -> Option<RuleResponse> {
        if let Some(conditions) = checks.deny {
            return Some(self.validate_deny(conditions, context));
        }
        if self.is_delete && resource_is_request_object(resource, context) {
            return None;
        }
        Some(self.validate_patterns(checks, context, resource))
    }

    fn message(&self, context: &RuleContext) -> Result<String, EngineError> {
        match &self.validation.message {
            Some(message) => context.substitute_str(message),
            None => Ok(String::new()),
        }
    }

    fn validate_deny(&self, conditions: &Value, context: &RuleContext) -> RuleResponse {
        let parsed = match parse_conditions(conditions) {
            Ok(parsed) => parsed,
            Err(error) => return self.error("failed to check deny conditions", error),
        };
        let verdict = match parsed.evaluate(|value| context.substitute(value)) {
            Ok(verdict) => verdict,
            Err(error) => return self.error("failed to check deny conditions", error),
        };
        if !verdict.holds {
            return self.response(
                RuleStatus::Pass,
                format!("validation rule '{}' passed.", self.rule.name),
            );
        }
        let message = match &self.validation.message {
            None => format!("validation error: rule {} failed", self.rule.name),
            Some(raw) => context.substitute_str(raw).unwrap_or_else(|_| raw.clone()),
        };
        self.response(RuleStatus::Fail, message)
    }

    fn validate_patterns(
        &self,
        checks: &Checks<'_>,
        context: &RuleContext,
        resource: &Value,
    ) -> RuleResponse {
        if let Some(pattern) = checks.pattern {
            let pattern = match context.substitute_at(pattern, "/validate/pattern") {
                Ok(pattern) => pattern,
                Err(error) => return self.error("variable substitution failed", error),
            };
            let outcome = pattern::validate_pattern(resource, &pattern);
            let status = match outcome {
                PatternOutcome::Pass => RuleStatus::Pass,
                PatternOutcome::Fail { .. } => RuleStatus::Fail,
                PatternOutcome::Skip { .. } => RuleStatus::Skip,
                PatternOutcome::Error { .. } => RuleStatus::Error,
            };
            let message = match (&outcome, self.message(context)) {
                (PatternOutcome::Pass | PatternOutcome::Skip { .. }, _) => {
                    outcome.rule_message(&self.rule.name, "")
                }
                (_, Ok(message)) => outcome.rule_message(&self.rule.name, &message),
                (_, Err(error)) => format!(
                    "validation error: variables substitution error in rule {} execution error: {error}",
                    self.rule.name
                ),
            };
            return self.response(status, message);
        }
        let Some(any_pattern) = checks.any_pattern else {
            return self.response(
                RuleStatus::Pass,
                self.validation.message.clone().unwrap_or_default(),
            );
        };
        let any_pattern = match context.substitute_at(any_pattern, "/validate/anyPattern") {
            Ok(any_pattern) => any_pattern,
            Err(error) => return self.error("variable substitution failed", error),
        };
        let Value::Array(patterns) = any_pattern else {
            return self.error(
                "failed to deserialize anyPattern, expected type array",
                "anyPattern is not a list",
            );
        };
        let outcome = pattern::validate_any_pattern(resource, &patterns);
        let status = match outcome {
            pattern::AnyPatternOutcome::Pass { .. } => RuleStatus::Pass,
            pattern::AnyPatternOutcome::Skip { .. } => RuleStatus::Skip,
            pattern::AnyPatternOutcome::Fail { .. } => RuleStatus::Fail,
        };
        let message = outcome.rule_message(
            &self.rule.name,
            self.validation.message.as_deref().unwrap_or(""),
        );
        self.response(status, message)
    }

    fn validate_pod_security(
        &self,
        pod_security: &kyverno_api::kyverno::v1::validate::PodSecurity,
        resource: &Value,
    ) -> RuleResponse {
        let mut outcome = match pod_security::evaluate(pod_security, resource) {
            Ok(outcome) => outcome,
            Err(error) => return self.error("failed to evaluate pod security", error),
        };
        if !self.exemptions.is_empty() {
            let exemptions: Vec<PodSecurityStandard> =
                self.exemptions.iter().map(|e| (*e).clone()).collect();
            outcome.apply_exclusions(&exemptions);
            if outcome.is_allowed() {
                return self.response(RuleStatus::Skip, String::new());
            }
        }
        if outcome.is_allowed() {
            self.response(
                RuleStatus::Pass,
                format!("Validation rule '{}' passed.", self.rule.name),
            )
        } else {
            self.response(RuleStatus::Fail, outcome.violation_message(&self.rule.name))
        }
    }

    /// Upstream `validateForEach`: each declaration's elements are validated in turn; the first
    /// non-passing declaration decides; no element validated at all means skip.
    fn validate_foreach(
        &self,
        declarations: &[ForEachValidation],
        context: &RuleContext,
        resource: &Value,
        nesting: usize,
    ) -> RuleResponse {
        let mut applied = 0;
        for foreach in declarations {
            let Some(expression) = foreach.list.as_deref() else {
                continue;
            };
            let Ok(elements) = evaluate_list(expression, context) else {
                continue;
            };
            let (response, count) =
                self.validate_elements(foreach, &elements, context, resource, nesting);
            if response.status != RuleStatus::Pass {
                return response;
            }
            applied += count;
        }
        if applied == 0 {
            self.response(RuleStatus::Skip, "rule skipped")
        } else {
            self.response(RuleStatus::Pass, "rule passed")
        }
    }

    fn validate_elements(
        &self,
        foreach: &ForEachValidation,
        elements: &[Value],
        context: &RuleContext,
        resource: &Value,
        nesting: usize,
    ) -> (RuleResponse, usize) {
        let mut applied = 0;
        // Only context entries change an element's context: nested foreach read it.
        let changes_context = !foreach.context.is_empty();
        let mut contexts = ElementContexts::new(context, self.values, nesting, changes_context);
        for (index, element) in elements.iter().enumerate() {
            if element.is_null() {
                continue;
            }
            let element_context = contexts.context_of(element, index);
            let scoped = match foreach.element_scope {
                Some(true) if !element.is_object() => {
                    return (
                        self.error(
                            "failed to process foreach",
                            "cannot use elementScope=true foreach rules for elements that are not maps",
                        ),
                        applied,
                    );
                }
                Some(scope) => scope,
                None => element.is_object(),
            };
            let target = if scoped { element } else { resource };
            let outcome = self.validate_element(foreach, element_context, target, nesting);
            let Some(response) = outcome else { continue };
            match response.status {
                RuleStatus::Skip => continue,
                RuleStatus::Pass => applied += 1,
                RuleStatus::Error if index + 1 < elements.len() => continue,
                _ => {
                    let message = format!("validation failure: {}", response.message);
                    return (self.response(response.status, message), applied);
                }
            }
        }
        (self.response(RuleStatus::Pass, String::new()), applied)
    }

    fn validate_element(
        &self,
        foreach: &ForEachValidation,
        context: &mut RuleContext,
        target: &Value,
        nesting: usize,
    ) -> Option<RuleResponse> {
        if let Err(error) = context.load_entries(&foreach.context, self.provider) {
            return Some(self.error("failed to load context", error));
        }
        if let Some(preconditions) = &foreach.preconditions {
            let conditions = Conditions::from(preconditions);
            match conditions.evaluate(|value| context.substitute(value)) {
                Ok(verdict) if !verdict.holds => {
                    return Some(self.response(RuleStatus::Skip, "preconditions not met"));
                }
                Ok(_) => {}
                Err(error) => return Some(self.error("failed to evaluate preconditions", error)),
            }
        }
        let nested: Vec<ForEachValidation> = match &foreach.foreach {
            Some(nested) => match serde_json::from_value(nested.clone()) {
                Ok(nested) => nested,
                Err(error) => return Some(self.error("failed to create foreach validator", error)),
            },
            None => Vec::new(),
        };
        let checks = Checks {
            pattern: foreach.pattern.as_ref(),
            any_pattern: foreach.any_pattern.as_ref(),
            deny: foreach
                .deny
                .as_ref()
                .map(|deny| deny.conditions.as_ref().unwrap_or(&Value::Null)),
        };
        if !checks.is_empty() {
            return self.check(&checks, context, target);
        }
        if nested.is_empty() {
            return None;
        }
        Some(self.validate_foreach(&nested, context, target, nesting + 1))
    }
}

/// Evaluates a foreach `list` expression (with variables) to its elements. As upstream's
/// `EvaluateList`, a value that is not a list is a list of that one element (`null` is none).
pub(crate) fn evaluate_list(
    expression: &str,
    context: &RuleContext,
) -> Result<Vec<Value>, EngineError> {
    let expression = context.substitute_str(expression)?;
    match context.query(&expression)? {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![other]),
    }
}

/// Whether `resource` is the request's object itself (not a foreach element).
fn resource_is_request_object(resource: &Value, context: &RuleContext) -> bool {
    context
        .data()
        .pointer("/request/object")
        .is_some_and(|object| object == resource)
}
