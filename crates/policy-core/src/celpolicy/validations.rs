//! `matchConditions`, `validations` and `auditAnnotations` of admission policies, compiled once
//! and evaluated as the Kubernetes validating admission plugin does.
use k8s_openapi::api::admissionregistration::v1::{AuditAnnotation, MatchCondition, Validation};
use kube_cel::cel::Value as CelValue;

use super::variables::{CompileError, CompiledVariables, Evaluator, Expression};

/// The longest message a `messageExpression` may produce (Kubernetes'
/// `MaxEvaluatedMessageExpressionSizeBytes`); a longer one falls back to `message`.
const MAX_MESSAGE_EXPRESSION_BYTES: usize = 5 * 1024;

/// Compiled `matchConditions`: a request is matched when all of them are true.
#[derive(Debug, Default)]
pub struct CompiledMatchConditions {
    conditions: Vec<(String, Expression)>,
}

/// What `matchConditions` decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchOutcome {
    /// Every condition is true (or there are none).
    Matched,
    /// A condition is false: the policy does not apply.
    NotMatched {
        /// The name of the false condition.
        condition: String,
    },
    /// No condition is false but some failed: the policy fails (failure policy `Fail`) or does
    /// not apply (`Ignore`), as the caller decides. The message aggregates the errors.
    Error(String),
}

impl CompiledMatchConditions {
    /// Compiles `conditions`, which may use `variables`; `path` is the list's location in the
    /// policy (`spec.matchConditions`).
    pub fn compile(
        conditions: &[MatchCondition],
        variables: &CompiledVariables,
        path: &str,
    ) -> Result<Self, CompileError> {
        let conditions = conditions
            .iter()
            .enumerate()
            .map(|(index, condition)| {
                let expression = Expression::compile(
                    &condition.expression,
                    variables,
                    &format!("{path}[{index}].expression"),
                )?;
                Ok((condition.name.clone(), expression))
            })
            .collect::<Result<_, CompileError>>()?;
        Ok(Self { conditions })
    }

    /// Whether there are no conditions.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Evaluates the conditions in order: the first false one decides; errors count only when
    /// none is false.
    pub fn evaluate(&self, evaluator: &mut Evaluator<'_>) -> MatchOutcome {
        let mut errors: Vec<String> = Vec::new();
        for (name, expression) in &self.conditions {
            match evaluator.evaluate_bool(expression) {
                Ok(true) => {}
                Ok(false) => {
                    return MatchOutcome::NotMatched {
                        condition: name.clone(),
                    };
                }
                Err(error) => errors.push(error.to_string()),
            }
        }
        match errors.len() {
            0 => MatchOutcome::Matched,
            1 => MatchOutcome::Error(errors.swap_remove(0)),
            // Go's aggregate error format.
            _ => MatchOutcome::Error(format!("[{}]", errors.join(", "))),
        }
    }
}

/// A compiled validation.
#[derive(Debug)]
pub struct CompiledValidation {
    expression: Expression,
    message: Option<String>,
    message_expression: Option<Expression>,
    reason: Option<String>,
}

/// The outcome of one validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidationOutcome {
    /// The expression is true.
    Pass,
    /// The expression is false.
    Fail {
        /// `messageExpression`'s result, else `message`, else `failed expression: <expr>`.
        message: String,
        /// `reason`, `Invalid` by default.
        reason: String,
    },
    /// The expression failed or did not give a bool.
    Error(String),
}

impl CompiledValidation {
    /// Compiles `validation` (expression and messageExpression), which may use `variables`;
    /// `path` is its location in the policy (`spec.validations[0]`).
    pub fn compile(
        validation: &Validation,
        variables: &CompiledVariables,
        path: &str,
    ) -> Result<Self, CompileError> {
        let expression = Expression::compile(
            &validation.expression,
            variables,
            &format!("{path}.expression"),
        )?;
        let message_expression = validation
            .message_expression
            .as_deref()
            .filter(|source| !source.trim().is_empty())
            .map(|source| {
                Expression::compile(source, variables, &format!("{path}.messageExpression"))
            })
            .transpose()?;
        Ok(Self {
            expression,
            message: validation.message.clone().filter(|m| !m.is_empty()),
            message_expression,
            reason: validation.reason.clone(),
        })
    }

    /// Uses `message` when the validation has none (Kyverno's rule-level message).
    pub fn with_default_message(mut self, message: Option<&str>) -> Self {
        if self.message.is_none() {
            self.message = message.filter(|m| !m.is_empty()).map(str::to_owned);
        }
        self
    }

    /// The validation's expression.
    pub fn expression(&self) -> &Expression {
        &self.expression
    }

    /// Evaluates the validation; the message is only worked out when it fails.
    pub fn evaluate(&self, evaluator: &mut Evaluator<'_>) -> ValidationOutcome {
        match evaluator.evaluate(&self.expression) {
            Ok(CelValue::Bool(true)) => ValidationOutcome::Pass,
            Ok(CelValue::Bool(false)) => ValidationOutcome::Fail {
                message: self.failure_message(evaluator),
                reason: self.reason.clone().unwrap_or_else(|| "Invalid".to_owned()),
            },
            Ok(other) => ValidationOutcome::Error(format!(
                "expression '{}' resulted in error: expected a bool result, got {}",
                self.expression.source(),
                crate::cel::type_name(&other)
            )),
            Err(error) => ValidationOutcome::Error(error.to_string()),
        }
    }

    /// The message of a failed validation: a usable `messageExpression` result (a string that
    /// is not blank, has no line break and is not too long), else `message`, else the
    /// expression.
    fn failure_message(&self, evaluator: &mut Evaluator<'_>) -> String {
        let evaluated = self
            .message_expression
            .as_ref()
            .and_then(|expression| match evaluator.evaluate(expression) {
                Ok(CelValue::String(message)) => Some(message.trim().to_owned()),
                _ => None,
            })
            .filter(|message| {
                !message.is_empty()
                    && !message.contains('\n')
                    && message.len() <= MAX_MESSAGE_EXPRESSION_BYTES
            });
        evaluated
            .or_else(|| {
                self.message
                    .as_deref()
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("failed expression: {}", self.expression.source().trim()))
    }
}

/// A compiled audit annotation.
#[derive(Debug)]
pub struct CompiledAuditAnnotation {
    key: String,
    value: Expression,
}

/// What an audit annotation evaluates to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditAnnotationOutcome {
    /// The annotation is published with this value.
    Publish(String),
    /// The value is null or blank: no annotation.
    Exclude,
    /// The value expression failed or gave neither a string nor null.
    Error(String),
}

impl CompiledAuditAnnotation {
    /// Compiles `annotation`'s value expression; `path` is its location in the policy.
    pub fn compile(
        annotation: &AuditAnnotation,
        variables: &CompiledVariables,
        path: &str,
    ) -> Result<Self, CompileError> {
        Ok(Self {
            key: annotation.key.clone(),
            value: Expression::compile(
                &annotation.value_expression,
                variables,
                &format!("{path}.valueExpression"),
            )?,
        })
    }

    /// The annotation's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Evaluates the value.
    pub fn evaluate(&self, evaluator: &mut Evaluator<'_>) -> AuditAnnotationOutcome {
        match evaluator.evaluate(&self.value) {
            Ok(CelValue::String(value)) => match value.trim() {
                "" => AuditAnnotationOutcome::Exclude,
                value => AuditAnnotationOutcome::Publish(value.to_owned()),
            },
            Ok(CelValue::Null) => AuditAnnotationOutcome::Exclude,
            Ok(other) => AuditAnnotationOutcome::Error(format!(
                "valueExpression '{}' resulted in unsupported return type: {}. Return type must be either string or null.",
                self.value.source(),
                crate::cel::type_name(&other)
            )),
            Err(error) => AuditAnnotationOutcome::Error(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::celpolicy::activation::Activation;
    use crate::celpolicy::resources::GroupVersionResource;
    use crate::request::ResourceRequest;

    fn activation() -> Activation {
        let request = ResourceRequest::new(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "prod"}, "spec": {"replicas": 3}}));
        Activation::new(&request, &GroupVersionResource::new("", "v1", "pods"), None)
    }

    fn validation(
        expression: &str,
        message: Option<&str>,
        message_expression: Option<&str>,
    ) -> Validation {
        Validation {
            expression: expression.to_owned(),
            message: message.map(str::to_owned),
            message_expression: message_expression.map(str::to_owned),
            reason: None,
        }
    }

    fn outcome(validation: &Validation) -> ValidationOutcome {
        let variables = CompiledVariables::default();
        let compiled = CompiledValidation::compile(validation, &variables, "spec.validations[0]")
            .expect("compiles");
        let activation = activation();
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        compiled.evaluate(&mut evaluator)
    }

    fn failure(message: &str) -> ValidationOutcome {
        ValidationOutcome::Fail {
            message: message.to_owned(),
            reason: "Invalid".to_owned(),
        }
    }

    #[test]
    fn true_passes_and_false_fails_with_the_default_message() {
        assert_eq!(
            outcome(&validation("object.spec.replicas == 3", None, None)),
            ValidationOutcome::Pass
        );
        assert_eq!(
            outcome(&validation(" object.spec.replicas < 3 ", None, None)),
            failure("failed expression: object.spec.replicas < 3")
        );
    }

    #[test]
    fn message_expression_wins_unless_unusable() {
        let expression = "object.spec.replicas < 3";
        assert_eq!(
            outcome(&validation(
                expression,
                Some("static"),
                Some("'got ' + string(object.spec.replicas)")
            )),
            failure("got 3")
        );
        for unusable in ["'  '", "'a\\nb'", "object.spec.replicas", "object.missing"] {
            assert_eq!(
                outcome(&validation(expression, Some(" static "), Some(unusable))),
                failure("static"),
                "{unusable}"
            );
        }
    }

    #[test]
    fn reason_and_rule_level_default_message() {
        let variables = CompiledVariables::default();
        let mut with_reason = validation("false", None, None);
        with_reason.reason = Some("Forbidden".to_owned());
        let compiled = CompiledValidation::compile(&with_reason, &variables, "v")
            .expect("compiles")
            .with_default_message(Some("from the rule"));
        let activation = activation();
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        assert_eq!(
            compiled.evaluate(&mut evaluator),
            ValidationOutcome::Fail {
                message: "from the rule".to_owned(),
                reason: "Forbidden".to_owned()
            }
        );
    }

    #[test]
    fn runtime_errors_and_non_bool_results_are_errors() {
        let ValidationOutcome::Error(message) =
            outcome(&validation("object.spec.missing > 1", None, None))
        else {
            panic!("expected an error");
        };
        assert!(
            message.starts_with("expression 'object.spec.missing > 1' resulted in error: "),
            "{message}"
        );
        let ValidationOutcome::Error(message) =
            outcome(&validation("object.spec.replicas", None, None))
        else {
            panic!("expected an error");
        };
        assert!(message.contains("bool"), "{message}");
    }

    #[test]
    fn compile_errors_locate_the_expression() {
        let variables = CompiledVariables::default();
        let error = CompiledValidation::compile(
            &validation("true", None, Some("'a' +")),
            &variables,
            "spec.validations[2]",
        )
        .expect_err("does not compile");
        assert_eq!(error.path, "spec.validations[2].messageExpression");
        assert!(error.to_string().contains("<input>:1:"), "{error}");
    }

    #[test]
    fn match_conditions_first_false_decides_then_errors() {
        let variables = CompiledVariables::default();
        let condition = |name: &str, expression: &str| MatchCondition {
            name: name.to_owned(),
            expression: expression.to_owned(),
        };
        let activation = activation();
        let evaluate = |conditions: &[MatchCondition]| {
            let compiled =
                CompiledMatchConditions::compile(conditions, &variables, "spec.matchConditions")
                    .expect("compiles");
            let mut evaluator = Evaluator::new(&activation, &variables, None);
            compiled.evaluate(&mut evaluator)
        };
        assert_eq!(evaluate(&[]), MatchOutcome::Matched);
        assert_eq!(evaluate(&[condition("a", "true")]), MatchOutcome::Matched);
        assert_eq!(
            evaluate(&[condition("err", "object.nope"), condition("no", "false")]),
            MatchOutcome::NotMatched {
                condition: "no".to_owned()
            }
        );
        let MatchOutcome::Error(message) =
            evaluate(&[condition("err", "object.nope"), condition("yes", "true")])
        else {
            panic!("expected an error");
        };
        assert!(
            message.starts_with("expression 'object.nope' resulted in error"),
            "{message}"
        );
        let MatchOutcome::Error(message) =
            evaluate(&[condition("e1", "object.a"), condition("e2", "object.b")])
        else {
            panic!("expected an error");
        };
        assert!(message.starts_with("[expression 'object.a'"), "{message}");
        let error = CompiledMatchConditions::compile(
            &[condition("a", "true"), condition("b", "(")],
            &variables,
            "spec.matchConditions",
        )
        .expect_err("does not compile");
        assert_eq!(error.path, "spec.matchConditions[1].expression");
    }

    #[test]
    fn audit_annotations_publish_strings_and_exclude_null_or_blank() {
        let variables = CompiledVariables::default();
        let activation = activation();
        let evaluate = |value: &str| {
            let annotation = AuditAnnotation {
                key: "k".to_owned(),
                value_expression: value.to_owned(),
            };
            let compiled =
                CompiledAuditAnnotation::compile(&annotation, &variables, "a").expect("compiles");
            assert_eq!(compiled.key(), "k");
            let mut evaluator = Evaluator::new(&activation, &variables, None);
            compiled.evaluate(&mut evaluator)
        };
        assert_eq!(
            evaluate("' v '"),
            AuditAnnotationOutcome::Publish("v".to_owned())
        );
        assert_eq!(evaluate("null"), AuditAnnotationOutcome::Exclude);
        assert_eq!(evaluate("''"), AuditAnnotationOutcome::Exclude);
        let AuditAnnotationOutcome::Error(message) = evaluate("1") else {
            panic!("expected an error");
        };
        assert!(message.contains("unsupported return type"), "{message}");
        assert!(matches!(
            evaluate("object.nope"),
            AuditAnnotationOutcome::Error(_)
        ));
    }
}
