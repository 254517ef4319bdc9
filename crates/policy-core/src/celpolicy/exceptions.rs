//! `policies.kyverno.io` PolicyExceptions: exempting requests from CEL policies.
//!
//! An exception applies to the policies its `policyRefs` name (by name and kind) and exempts a
//! request when all its `matchConditions` are true; they see `object`, `oldObject`, `request` and
//! `namespaceObject` but not the policy's variables. An exempted request is reported with one
//! `exception` rule: `skip` (or `pass` when the exception chosen by priority asks for it), with
//! the message `rule is skipped due to policy exception: <namespace/name>, ...`. Exceptions that
//! only allow images or values (`images`, `allowedValues`) do not exempt the request; the policy
//! reads them as `exceptions.allowedImages` and `exceptions.allowedValues`.
use std::sync::Arc;

use kube_cel::cel::Value as CelValue;
use kube_cel::cel::objects::{Key, Map};
use kyverno_api::policies::exception::{ExceptionReportResult, PolicyException};

use super::validations::{CompiledMatchConditions, MatchOutcome};
use super::variables::{CompileError, CompiledVariables, Evaluator};
use crate::response::{RuleResponse, RuleStatus, RuleType};

/// The variable holding what matched exceptions allow.
pub const EXCEPTIONS: &str = "exceptions";

/// The label whose integer value orders exceptions; the highest decides the reported result.
pub const PRIORITY_LABEL: &str = "kyverno.io/exception-priority";

/// Name of the rule reported for an exempted request.
const EXCEPTION_RULE: &str = "exception";

/// An exception compiled for the policies it names.
#[derive(Debug)]
pub struct CompiledException {
    exception: Arc<PolicyException>,
    conditions: CompiledMatchConditions,
}

impl CompiledException {
    /// Compiles the exceptions among `exceptions` that name the policy `kind`/`name`.
    pub fn compile_for(
        kind: &str,
        name: &str,
        exceptions: &[Arc<PolicyException>],
    ) -> Result<Vec<Self>, ExceptionCompileError> {
        exceptions
            .iter()
            .filter(|exception| {
                exception
                    .spec
                    .policy_refs
                    .iter()
                    .any(|reference| reference.name == name && reference.kind == kind)
            })
            .map(|exception| {
                let conditions = CompiledMatchConditions::compile(
                    &exception.spec.match_conditions,
                    &CompiledVariables::default(),
                    "spec.matchConditions",
                )
                .map_err(|source| ExceptionCompileError {
                    exception: key(exception),
                    source,
                })?;
                Ok(Self {
                    exception: Arc::clone(exception),
                    conditions,
                })
            })
            .collect()
    }

    /// The exception.
    pub fn exception(&self) -> &PolicyException {
        &self.exception
    }
}

/// A matchCondition of an exception does not compile.
#[derive(Debug, thiserror::Error)]
#[error("PolicyException {exception}: {source}")]
pub struct ExceptionCompileError {
    /// `namespace/name` of the exception.
    pub exception: String,
    /// The compile error.
    #[source]
    pub source: CompileError,
}

/// The exceptions that apply to one request.
#[derive(Debug, Default)]
pub struct MatchedExceptions<'a> {
    matched: Vec<&'a PolicyException>,
}

impl<'a> MatchedExceptions<'a> {
    /// Evaluates the exceptions' conditions. An error in a condition is an error of the
    /// evaluation unless `ignore_errors` (failure policy `Ignore`), in which case that
    /// exception does not apply.
    pub fn evaluate(
        exceptions: &'a [CompiledException],
        evaluator: &mut Evaluator<'_>,
        ignore_errors: bool,
    ) -> Result<Self, String> {
        let mut matched = Vec::new();
        for exception in exceptions {
            match exception.conditions.evaluate(evaluator) {
                MatchOutcome::Matched => matched.push(&*exception.exception),
                MatchOutcome::NotMatched { .. } => {}
                MatchOutcome::Error(_) if ignore_errors => {}
                MatchOutcome::Error(error) => return Err(error),
            }
        }
        Ok(Self { matched })
    }

    /// Whether the request is exempted: an exception matched and none of the matched ones only
    /// allows images or values.
    pub fn exempts(&self) -> bool {
        !self.matched.is_empty()
            && self.matched.iter().all(|exception| {
                exception.spec.images.is_empty() && exception.spec.allowed_values.is_empty()
            })
    }

    /// The `exceptions` variable: `{allowedImages: [...], allowedValues: [...]}` of the matched
    /// exceptions.
    pub fn variable(&self) -> CelValue {
        let list = |values: Vec<CelValue>| CelValue::List(Arc::new(values));
        let strings = |select: fn(&PolicyException) -> &Vec<String>| {
            list(
                self.matched
                    .iter()
                    .flat_map(|exception| select(exception))
                    .map(|value| CelValue::String(Arc::new(value.clone())))
                    .collect(),
            )
        };
        let entries = [
            ("allowedImages", strings(|e| &e.spec.images)),
            ("allowedValues", strings(|e| &e.spec.allowed_values)),
        ];
        CelValue::Map(Map {
            map: Arc::new(
                entries
                    .into_iter()
                    .map(|(key, value)| (Key::String(Arc::new(key.to_owned())), value))
                    .collect(),
            ),
        })
    }

    /// The rule reported for an exempted request (upstream's wording): `skip`, or `pass` when
    /// the exception with the highest priority label asks for it.
    pub fn response(&self, rule_type: RuleType) -> RuleResponse {
        let keys: Vec<String> = self.matched.iter().map(|e| key(e)).collect();
        let mut selected = 0;
        let mut highest = 0;
        for (index, exception) in self.matched.iter().enumerate() {
            let priority = exception
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(PRIORITY_LABEL))
                .and_then(|value| value.parse::<i64>().ok());
            if let Some(priority) = priority.filter(|&p| p > highest) {
                highest = priority;
                selected = index;
            }
        }
        let pass = self.matched.get(selected).is_some_and(|exception| {
            exception.spec.report_result == Some(ExceptionReportResult::Pass)
        });
        let (status, verb) = if pass {
            (RuleStatus::Pass, "passed")
        } else {
            (RuleStatus::Skip, "skipped")
        };
        RuleResponse {
            name: EXCEPTION_RULE.to_owned(),
            rule_type,
            status,
            message: format!(
                "rule is {verb} due to policy exception: {}",
                keys.join(", ")
            ),
        }
    }
}

/// `namespace/name`, or `name` for an exception without namespace.
fn key(exception: &PolicyException) -> String {
    let name = exception.metadata.name.as_deref().unwrap_or_default();
    match exception.metadata.namespace.as_deref() {
        Some(namespace) if !namespace.is_empty() => format!("{namespace}/{name}"),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::celpolicy::activation::{Activation, OBJECT};

    fn exception(value: Value) -> Arc<PolicyException> {
        Arc::new(serde_json::from_value(value).expect("exception"))
    }

    fn named(name: &str, condition: &str, extra: Value) -> Arc<PolicyException> {
        let mut spec = json!({
            "policyRefs": [{"name": "check", "kind": "ValidatingPolicy"}],
            "matchConditions": [{"name": "c", "expression": condition}]
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        exception(json!({
            "apiVersion": "policies.kyverno.io/v1", "kind": "PolicyException",
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec
        }))
    }

    fn activation() -> Activation {
        Activation::from_values([(
            OBJECT,
            crate::cel::from_json(&json!({"metadata": {"name": "skipped"}})),
        )])
    }

    fn matched<'a>(
        compiled: &'a [CompiledException],
        activation: &Activation,
    ) -> Result<MatchedExceptions<'a>, String> {
        let variables = CompiledVariables::default();
        let mut evaluator = Evaluator::new(activation, &variables, None);
        MatchedExceptions::evaluate(compiled, &mut evaluator, false)
    }

    #[test]
    fn exceptions_apply_to_the_policies_they_name() {
        let exceptions = [
            named("a", "true", json!({})),
            exception(json!({"metadata": {"name": "b"}, "spec": {
                "policyRefs": [{"name": "check", "kind": "MutatingPolicy"}]}})),
        ];
        let compiled =
            CompiledException::compile_for("ValidatingPolicy", "check", &exceptions).expect("ok");
        assert_eq!(compiled.len(), 1);
        assert_eq!(compiled[0].exception().metadata.name.as_deref(), Some("a"));
        assert!(
            CompiledException::compile_for("ValidatingPolicy", "other", &exceptions)
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn matched_exceptions_skip_with_upstream_message() {
        let exceptions = [
            named("a", "object.metadata.name == 'skipped'", json!({})),
            named("b", "object.metadata.name == 'other'", json!({})),
            named("c", "true", json!({})),
        ];
        let compiled =
            CompiledException::compile_for("ValidatingPolicy", "check", &exceptions).expect("ok");
        let activation = activation();
        let matched = matched(&compiled, &activation).expect("evaluates");
        assert!(matched.exempts());
        assert_eq!(
            matched.response(RuleType::Validation),
            RuleResponse {
                name: "exception".to_owned(),
                rule_type: RuleType::Validation,
                status: RuleStatus::Skip,
                message: "rule is skipped due to policy exception: ns/a, ns/c".to_owned(),
            }
        );
    }

    #[test]
    fn the_highest_priority_exception_decides_pass() {
        let exceptions = [
            named("low", "true", json!({})),
            exception(json!({
                "metadata": {"name": "high", "labels": {PRIORITY_LABEL: "5"}},
                "spec": {"policyRefs": [{"name": "check", "kind": "ValidatingPolicy"}],
                         "reportResult": "pass"}
            })),
        ];
        let compiled =
            CompiledException::compile_for("ValidatingPolicy", "check", &exceptions).expect("ok");
        let activation = activation();
        let response = matched(&compiled, &activation)
            .expect("evaluates")
            .response(RuleType::Validation);
        assert_eq!(response.status, RuleStatus::Pass);
        assert_eq!(
            response.message,
            "rule is passed due to policy exception: ns/low, high"
        );
    }

    #[test]
    fn allowed_values_do_not_exempt_but_are_bound() {
        let exceptions = [named(
            "a",
            "true",
            json!({"allowedValues": ["x"], "images": ["nginx:*"]}),
        )];
        let compiled =
            CompiledException::compile_for("ValidatingPolicy", "check", &exceptions).expect("ok");
        let activation = activation();
        let matched = matched(&compiled, &activation).expect("evaluates");
        assert!(!matched.exempts());
        assert_eq!(
            crate::cel::to_json(&matched.variable()).expect("json"),
            json!({"allowedImages": ["nginx:*"], "allowedValues": ["x"]})
        );
        assert!(!MatchedExceptions::default().exempts());
    }

    #[test]
    fn condition_errors_fail_unless_ignored() {
        let exceptions = [named("a", "object.missing.field", json!({}))];
        let compiled =
            CompiledException::compile_for("ValidatingPolicy", "check", &exceptions).expect("ok");
        let activation = activation();
        assert!(matched(&compiled, &activation).is_err());
        let variables = CompiledVariables::default();
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        let ignored =
            MatchedExceptions::evaluate(&compiled, &mut evaluator, true).expect("ignored");
        assert!(!ignored.exempts());
    }

    #[test]
    fn compile_errors_name_the_exception() {
        let exceptions = [named("a", "object.(", json!({}))];
        let error = CompiledException::compile_for("ValidatingPolicy", "check", &exceptions)
            .expect_err("does not compile")
            .to_string();
        assert!(
            error.starts_with("PolicyException ns/a: spec.matchConditions[0].expression"),
            "{error}"
        );
    }
}
