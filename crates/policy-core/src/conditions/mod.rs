//! Kyverno conditions: rule `preconditions`, `validate.deny.conditions` and foreach
//! `preconditions`.
//!
//! Conditions are written either as `{any: [...], all: [...]}` or, deprecated, as a plain list
//! that must all hold. Each condition is `{key, operator, value, message?}`; key and value may
//! hold variables, which the caller resolves through the `substitute` closure given to
//! [`Conditions::evaluate`]. Operator semantics are in [`operators`] and [`membership`].
//!
//! Upstream behaviours kept on purpose:
//! - `any` holds when one of its conditions holds; an explicitly empty `any: []` never holds (only
//!   an absent `any` is ignored). `all` holds when every condition holds. Both must hold.
//! - Every key, value and message is substituted before any condition is evaluated, so a failing
//!   substitution is an error even where evaluation would have stopped early.
//! - Operators are case-insensitive in the `any`/`all` form, and an unknown one is an error only
//!   when its condition is reached; the list form needs exact operator names, checked when parsed.
//! - The message reported with the result joins the messages of the conditions that decided it
//!   (see [`Verdict::message`]); callers use it in deny results and precondition skip reasons.

mod go_fmt;
mod membership;
mod operators;

use std::borrow::Cow;

use kyverno_api::kyverno::v1::rule::{
    AnyAllConditions as ApiAnyAllConditions, Condition as ApiCondition, ConditionOperator,
};
use serde_json::{Map, Value};
use thiserror::Error;

/// Every operator name Kyverno accepts, with the deprecated spellings `Equal` and `NotEqual`.
const OPERATOR_NAMES: [(&str, ConditionOperator); 18] = [
    ("Equal", ConditionOperator::Equals),
    ("Equals", ConditionOperator::Equals),
    ("NotEqual", ConditionOperator::NotEquals),
    ("NotEquals", ConditionOperator::NotEquals),
    ("In", ConditionOperator::In),
    ("AnyIn", ConditionOperator::AnyIn),
    ("AllIn", ConditionOperator::AllIn),
    ("NotIn", ConditionOperator::NotIn),
    ("AnyNotIn", ConditionOperator::AnyNotIn),
    ("AllNotIn", ConditionOperator::AllNotIn),
    ("GreaterThanOrEquals", ConditionOperator::GreaterThanOrEquals),
    ("GreaterThan", ConditionOperator::GreaterThan),
    ("LessThanOrEquals", ConditionOperator::LessThanOrEquals),
    ("LessThan", ConditionOperator::LessThan),
    ("DurationGreaterThanOrEquals", ConditionOperator::DurationGreaterThanOrEquals),
    ("DurationGreaterThan", ConditionOperator::DurationGreaterThan),
    ("DurationLessThanOrEquals", ConditionOperator::DurationLessThanOrEquals),
    ("DurationLessThan", ConditionOperator::DurationLessThan),
];

/// A problem with conditions; paths are relative to the conditions block (`any[1].operator`).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConditionError {
    /// An operator that is none of Kyverno's.
    #[error("unknown condition operator {operator:?}{}", at(.path))]
    UnknownOperator {
        /// Where the operator is (empty for a lone condition).
        path: String,
        /// The operator as written.
        operator: String,
    },
    /// Conditions not shaped as Kyverno accepts them.
    #[error("{reason}{}", at(.path))]
    Invalid {
        /// Where the problem is (empty for the block itself).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    }
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> ConditionError {
    ConditionError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Evaluates one condition on already-substituted operands; the operator name is matched
/// case-insensitively, as upstream does.
pub fn evaluate_condition(
    key: &Value,
    operator: &str,
    value: &Value,
) -> Result<bool, ConditionError> {
    let operator = operator_named(operator).ok_or_else(|| ConditionError::UnknownOperator {
        path: String::new(),
        operator: operator.to_owned(),
    })?;
    Ok(operators::evaluate(operator, key, value))
}

fn operator_named(name: &str) -> Option<ConditionOperator> {
    OPERATOR_NAMES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|&(_, operator)| operator)
}

/// Conditions as written in a policy, parsed once and evaluated many times.
#[derive(Clone, Debug, PartialEq)]
pub enum Conditions {
    /// The `{any, all}` form.
    AnyAll(AnyAllConditions),
    /// The deprecated plain list: every condition must hold.
    List(Vec<Condition>),
}

/// The `{any, all}` form of conditions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnyAllConditions {
    /// Conditions of which one must hold; `None` when `any` is absent. An empty list never holds.
    pub any: Option<Vec<Condition>>,
    /// Conditions that must all hold.
    pub all: Vec<Condition>,
}

/// One condition, with its variables not yet substituted.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The left operand (`null` when absent).
    pub key: Value,
    /// The operator, or the name as written when it is not one of Kyverno's.
    pub operator: Result<ConditionOperator, String>,
    /// The right operand (`null` when absent).
    pub value: Value,
    /// The message reported for this condition (empty when absent).
    pub message: String,
}

/// The outcome of evaluating conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the conditions hold.
    pub holds: bool,
    /// The messages of the conditions that decided the outcome, joined with `"; "` (`";"` for the
    /// list form when it holds), empty ones left out: when the conditions hold, those of the
    /// passing `any` condition and the `all` conditions; when not, those of the failed `any`
    /// conditions and the first failed `all` condition (list form: the failed condition's).
    pub message: String,
}

/// Parses conditions from a policy: an `{any, all}` object (no other field), a list of conditions
/// with exact operator names, or `null` (no conditions). Conditions are objects whose `key`,
/// `operator`, `value` and `message` fields are found case-insensitively, as Go's decoder does.
pub fn parse_conditions(conditions: &Value) -> Result<Conditions, ConditionError> {
    match conditions {
        Value::Null => Ok(Conditions::List(Vec::new())),
        Value::Array(items) => {
            let list = parse_list(items, "")?;
            for (index, condition) in list.iter().enumerate() {
                if let Err(name) = &condition.operator {
                    return Err(invalid(
                        format!("[{index}].operator"),
                        format!("invalid condition operator: {name}"),
                    ));
                }
            }
            Ok(Conditions::List(list))
        }
        Value::Object(fields) => parse_any_all(fields).map(Conditions::AnyAll),
        _ => Err(invalid(
            "",
            "conditions must be an object with `any`/`all` or a list of conditions",
        )),
    }
}

fn parse_any_all(fields: &Map<String, Value>) -> Result<AnyAllConditions, ConditionError> {
    let mut conditions = AnyAllConditions::default();
    for (name, field) in fields {
        if name != "any" && name != "all" {
            return Err(invalid(name.as_str(), "unknown field, expected `any` or `all`"));
        }
        let list = match field {
            Value::Null => None,
            Value::Array(items) => Some(parse_list(items, name)?),
            _ => return Err(invalid(name.as_str(), "must be a list of conditions")),
        };
        if name == "any" {
            conditions.any = list;
        } else {
            conditions.all = list.unwrap_or_default();
        }
    }
    Ok(conditions)
}

fn parse_list(items: &[Value], path: &str) -> Result<Vec<Condition>, ConditionError> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_condition(item, &format!("{path}[{index}]")))
        .collect()
}

fn parse_condition(item: &Value, path: &str) -> Result<Condition, ConditionError> {
    let fields = match item {
        // Go decodes `null` into an empty condition, whose empty operator fails later.
        Value::Null => return Ok(condition_from_parts(None, None, None, None)),
        Value::Object(fields) => fields,
        _ => return Err(invalid(path, "a condition must be an object")),
    };
    let field = |name: &str| {
        fields
            .get(name)
            .or_else(|| {
                fields
                    .iter()
                    .find(|(field, _)| field.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value)
            })
            .filter(|value| !value.is_null())
    };
    let text = |name: &str| match field(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(format!("{path}.{name}"), "must be a string")),
    };
    Ok(condition_from_parts(
        field("key").cloned(),
        text("operator")?,
        field("value").cloned(),
        text("message")?,
    ))
}

fn condition_from_parts(
    key: Option<Value>,
    operator: Option<String>,
    value: Option<Value>,
    message: Option<String>,
) -> Condition {
    let operator = operator.unwrap_or_default();
    Condition {
        key: key.unwrap_or(Value::Null),
        operator: operator_named(&operator).ok_or(operator),
        value: value.unwrap_or(Value::Null),
        message: message.unwrap_or_default(),
    }
}

impl From<&ApiCondition> for Condition {
    fn from(condition: &ApiCondition) -> Self {
        Condition {
            key: condition.key.clone().unwrap_or(Value::Null),
            operator: condition.operator.ok_or_else(String::new),
            value: condition.value.clone().unwrap_or(Value::Null),
            message: condition.message.clone().unwrap_or_default(),
        }
    }
}

/// Typed conditions (foreach `preconditions`); upstream serializes them with `omitempty`, so an
/// empty `any` counts as absent there.
impl From<&ApiAnyAllConditions> for Conditions {
    fn from(conditions: &ApiAnyAllConditions) -> Self {
        let convert = |list: &[ApiCondition]| list.iter().map(Condition::from).collect::<Vec<_>>();
        Conditions::AnyAll(AnyAllConditions {
            any: (!conditions.any.is_empty()).then(|| convert(&conditions.any)),
            all: convert(&conditions.all),
        })
    }
}

/// A condition whose key, value and message have been substituted.
struct Resolved<'a> {
    condition: &'a Condition,
    path: String,
    key: Value,
    value: Value,
    message: Cow<'a, str>,
}

impl Resolved<'_> {
    fn holds(&self) -> Result<bool, ConditionError> {
        match &self.condition.operator {
            Ok(operator) => Ok(operators::evaluate(*operator, &self.key, &self.value)),
            Err(name) => Err(ConditionError::UnknownOperator {
                path: format!("{}.operator", self.path),
                operator: name.clone(),
            }),
        }
    }
}

impl Conditions {
    /// Checks that every operator is one of Kyverno's (matched case-insensitively), for
    /// validating a policy when it is loaded.
    pub fn check_operators(&self) -> Result<(), ConditionError> {
        let (any, all, all_path) = match self {
            Conditions::AnyAll(conditions) => (conditions.any.as_deref(), &conditions.all[..], "all"),
            Conditions::List(list) => (None, &list[..], ""),
        };
        let lists = any.map(|any| ("any", any)).into_iter().chain([(all_path, all)]);
        for (path, list) in lists {
            for (index, condition) in list.iter().enumerate() {
                if let Err(name) = &condition.operator {
                    return Err(ConditionError::UnknownOperator {
                        path: format!("{path}[{index}].operator"),
                        operator: name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Evaluates the conditions. `substitute` resolves the variables of each key, value and
    /// message (all of them first, as upstream substitutes the whole block before evaluating).
    /// Errors are the substitution's, an unknown operator reached by evaluation, or a message
    /// that substitutes to something other than a string.
    pub fn evaluate<E>(
        &self,
        mut substitute: impl FnMut(&Value) -> Result<Value, E>,
    ) -> Result<Verdict, E>
    where
        E: From<ConditionError>,
    {
        match self {
            Conditions::List(list) => {
                let list = resolve(list, "", &mut substitute)?;
                Ok(evaluate_list(&list)?)
            }
            Conditions::AnyAll(conditions) => {
                let any = match conditions.any.as_deref() {
                    Some(any) => Some(resolve(any, "any", &mut substitute)?),
                    None => None,
                };
                let all = resolve(&conditions.all, "all", &mut substitute)?;
                Ok(evaluate_any_all(any.as_deref(), &all)?)
            }
        }
    }
}

/// Evaluates several condition blocks that must all hold (e.g. attestation conditions): the
/// verdict of the first block that does not hold, else the blocks' messages joined with `";"`.
pub fn evaluate_blocks<E>(
    blocks: &[Conditions],
    mut substitute: impl FnMut(&Value) -> Result<Value, E>,
) -> Result<Verdict, E>
where
    E: From<ConditionError>,
{
    let mut messages = Vec::with_capacity(blocks.len());
    for block in blocks {
        let verdict = block.evaluate(&mut substitute)?;
        if !verdict.holds {
            return Ok(verdict);
        }
        messages.push(verdict.message);
    }
    Ok(Verdict {
        holds: true,
        message: join_non_empty(&messages, ";"),
    })
}

fn resolve<'a, E>(
    conditions: &'a [Condition],
    path: &str,
    substitute: &mut impl FnMut(&Value) -> Result<Value, E>,
) -> Result<Vec<Resolved<'a>>, E>
where
    E: From<ConditionError>,
{
    conditions
        .iter()
        .enumerate()
        .map(|(index, condition)| {
            let path = format!("{path}[{index}]");
            let message = if condition.message.is_empty() {
                Cow::Borrowed(condition.message.as_str())
            } else {
                match substitute(&Value::String(condition.message.clone()))? {
                    Value::String(message) => Cow::Owned(message),
                    _ => return Err(invalid(format!("{path}.message"), "must be a string").into()),
                }
            };
            Ok(Resolved {
                condition,
                key: substitute(&condition.key)?,
                value: substitute(&condition.value)?,
                message,
                path,
            })
        })
        .collect()
}

fn evaluate_list(list: &[Resolved<'_>]) -> Result<Verdict, ConditionError> {
    let mut passed = Vec::with_capacity(list.len());
    for condition in list {
        if !condition.holds()? {
            return Ok(Verdict {
                holds: false,
                message: condition.message.clone().into_owned(),
            });
        }
        passed.push(condition.message.as_ref());
    }
    Ok(Verdict {
        holds: true,
        message: join_non_empty(&passed, ";"),
    })
}

fn evaluate_any_all(
    any: Option<&[Resolved<'_>]>,
    all: &[Resolved<'_>],
) -> Result<Verdict, ConditionError> {
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let mut any_holds = true;
    if let Some(any) = any {
        any_holds = false;
        for condition in any {
            if condition.holds()? {
                any_holds = true;
                passed.push(condition.message.as_ref());
                break;
            }
            failed.push(condition.message.as_ref());
        }
    }
    let mut all_hold = true;
    for condition in all {
        if condition.holds()? {
            passed.push(condition.message.as_ref());
        } else {
            all_hold = false;
            failed.push(condition.message.as_ref());
            break;
        }
    }
    let holds = any_holds && all_hold;
    let messages = if holds { passed } else { failed };
    Ok(Verdict {
        holds,
        message: join_non_empty(&messages, "; "),
    })
}

fn join_non_empty(messages: &[impl AsRef<str>], separator: &str) -> String {
    let mut joined = String::new();
    for message in messages.iter().map(AsRef::as_ref).filter(|m| !m.is_empty()) {
        if !joined.is_empty() {
            joined.push_str(separator);
        }
        joined.push_str(message);
    }
    joined
}
