//! Kyverno conditions: rule `preconditions`, `validate.deny.conditions` and foreach
//! `preconditions`.
//!
//! Conditions are written either as `{any: [...], all: [...]}` or, deprecated, as a plain list
//! that must all hold. Each condition is `{key, operator, value, message?}`; key and value may
//! hold variables, which the caller resolves through the `substitute` closure given to
//! [`Conditions::evaluate`]. Operator semantics are described in the `operators` and `membership`
//! submodules.
//!
//! Upstream behaviours kept on purpose:
//! - `any` holds when one of its conditions holds; an explicitly empty `any: []` never holds (only
//!   an absent `any` is ignored). `all` holds when every condition holds. Both must hold.
//! - A condition's key, value and message are substituted when the condition is reached, so the
//!   conditions after the one that decides the outcome are never substituted: their variables may
//!   be unresolvable without error. A variable that does not resolve in a reached condition is an
//!   error (the caller's substitution reports it); a message that does not resolve is kept as
//!   written.
//! - Operators are case-insensitive in the `any`/`all` form, and an unknown one is an error only
//!   when its condition is reached; the list form needs exact operator names, checked when parsed.
//! - The message reported with the result joins the messages of the conditions that decided it
//!   (see [`Verdict::message`]); callers use it in deny results and precondition skip reasons.

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
    (
        "GreaterThanOrEquals",
        ConditionOperator::GreaterThanOrEquals,
    ),
    ("GreaterThan", ConditionOperator::GreaterThan),
    ("LessThanOrEquals", ConditionOperator::LessThanOrEquals),
    ("LessThan", ConditionOperator::LessThan),
    (
        "DurationGreaterThanOrEquals",
        ConditionOperator::DurationGreaterThanOrEquals,
    ),
    (
        "DurationGreaterThan",
        ConditionOperator::DurationGreaterThan,
    ),
    (
        "DurationLessThanOrEquals",
        ConditionOperator::DurationLessThanOrEquals,
    ),
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
        Value::Array(items) => Ok(Conditions::List(parse_list(
            items,
            "",
            OperatorNames::Exact,
        )?)),
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
            return Err(invalid(
                name.as_str(),
                "unknown field, expected `any` or `all`",
            ));
        }
        let list = match field {
            Value::Null => None,
            Value::Array(items) => Some(parse_list(items, name, OperatorNames::AnyCase)?),
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

/// How operator names are checked while parsing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OperatorNames {
    /// The list form: only exact names are accepted.
    Exact,
    /// The `any`/`all` form: any case is accepted, unknown names fail when evaluated.
    AnyCase,
}

fn parse_list(
    items: &[Value],
    path: &str,
    names: OperatorNames,
) -> Result<Vec<Condition>, ConditionError> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_condition(item, &format!("{path}[{index}]"), names))
        .collect()
}

fn parse_condition(
    item: &Value,
    path: &str,
    names: OperatorNames,
) -> Result<Condition, ConditionError> {
    let empty = Map::new();
    let fields = match item {
        // Go decodes `null` into an empty condition, whose empty operator is invalid.
        Value::Null => &empty,
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
    let operator = text("operator")?.unwrap_or_default();
    if names == OperatorNames::Exact && !OPERATOR_NAMES.iter().any(|(name, _)| *name == operator) {
        return Err(invalid(
            format!("{path}.operator"),
            format!("invalid condition operator: {operator}"),
        ));
    }
    Ok(Condition {
        key: field("key").cloned().unwrap_or(Value::Null),
        operator: operator_named(&operator).ok_or(operator),
        value: field("value").cloned().unwrap_or(Value::Null),
        message: text("message")?.unwrap_or_default(),
    })
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

impl Condition {
    /// Substitutes this condition's operands and applies its operator: whether it holds, and its
    /// message. `list` and `index` locate the condition for errors.
    fn check<E>(
        &self,
        list: &'static str,
        index: usize,
        substitute: &mut impl FnMut(&Value) -> Result<Value, E>,
    ) -> Result<(bool, Cow<'_, str>), E>
    where
        E: From<ConditionError>,
    {
        let key = substitute(&self.key)?;
        let value = substitute(&self.value)?;
        let holds = match &self.operator {
            Ok(operator) => operators::evaluate(*operator, &key, &value),
            Err(name) => {
                return Err(ConditionError::UnknownOperator {
                    path: format!("{list}[{index}].operator"),
                    operator: name.clone(),
                }
                .into());
            }
        };
        Ok((holds, self.substituted_message(substitute)))
    }

    /// The message with its variables substituted; as written when they do not resolve to a
    /// string, since upstream never fails on a condition's message.
    fn substituted_message<E>(
        &self,
        substitute: &mut impl FnMut(&Value) -> Result<Value, E>,
    ) -> Cow<'_, str> {
        if !self.message.contains("{{") {
            return Cow::Borrowed(&self.message);
        }
        match substitute(&Value::String(self.message.clone())) {
            Ok(Value::String(message)) => Cow::Owned(message),
            _ => Cow::Borrowed(&self.message),
        }
    }
}

impl Conditions {
    /// Checks that every operator is one of Kyverno's (matched case-insensitively), for
    /// validating a policy when it is loaded.
    pub fn check_operators(&self) -> Result<(), ConditionError> {
        let (any, all, all_path) = match self {
            Conditions::AnyAll(conditions) => {
                (conditions.any.as_deref(), &conditions.all[..], "all")
            }
            Conditions::List(list) => (None, &list[..], ""),
        };
        let lists = any
            .map(|any| ("any", any))
            .into_iter()
            .chain([(all_path, all)]);
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

    /// Evaluates the conditions. `substitute` resolves the variables of a condition's key, value
    /// and message when that condition is reached, as upstream does: conditions after the one
    /// that decides are never substituted, so their unresolvable variables are no error.
    /// Errors are the substitution's or an unknown operator reached by evaluation.
    pub fn evaluate<E>(
        &self,
        mut substitute: impl FnMut(&Value) -> Result<Value, E>,
    ) -> Result<Verdict, E>
    where
        E: From<ConditionError>,
    {
        match self {
            Conditions::List(list) => evaluate_list(list, &mut substitute),
            Conditions::AnyAll(conditions) => {
                evaluate_any_all(conditions.any.as_deref(), &conditions.all, &mut substitute)
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

fn evaluate_list<E>(
    list: &[Condition],
    substitute: &mut impl FnMut(&Value) -> Result<Value, E>,
) -> Result<Verdict, E>
where
    E: From<ConditionError>,
{
    let mut passed = Vec::with_capacity(list.len());
    for (index, condition) in list.iter().enumerate() {
        let (holds, message) = condition.check("", index, substitute)?;
        if !holds {
            return Ok(Verdict {
                holds: false,
                message: message.into_owned(),
            });
        }
        passed.push(message);
    }
    Ok(Verdict {
        holds: true,
        message: join_non_empty(&passed, ";"),
    })
}

fn evaluate_any_all<E>(
    any: Option<&[Condition]>,
    all: &[Condition],
    substitute: &mut impl FnMut(&Value) -> Result<Value, E>,
) -> Result<Verdict, E>
where
    E: From<ConditionError>,
{
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    let mut any_holds = true;
    if let Some(any) = any {
        any_holds = false;
        for (index, condition) in any.iter().enumerate() {
            let (holds, message) = condition.check("any", index, substitute)?;
            if holds {
                any_holds = true;
                passed.push(message);
                break;
            }
            failed.push(message);
        }
    }
    let mut all_hold = true;
    for (index, condition) in all.iter().enumerate() {
        let (holds, message) = condition.check("all", index, substitute)?;
        if holds {
            passed.push(message);
        } else {
            all_hold = false;
            failed.push(message);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Upstream's `TestEvaluate` table (pkg/engine/variables/evaluate_test.go), one case per line:
    /// `key | operator | value | expected`, operands in JSON (Go's `int64` cases are the same JSON).
    const UPSTREAM_EVALUATE_CASES: &str = r#"
        "string" | Equals | "string" | true
        1 | Equals | 1 | true
        1.0 | Equals | 1.0 | true
        true | Equals | true | true
        false | Equals | false | true
        "1024" | Equals | "1Ki" | true
        "1Ki" | Equals | "1024" | true
        "1Gi" | Equals | "1Gi" | true
        "1Gi" | Equals | "1024Mi" | true
        "1h" | Equals | "1h" | true
        "1h" | Equals | "60m" | true
        {"foo": "bar"} | Equals | {"foo": "bar"} | true
        ["foo", "bar"] | Equals | ["foo", "bar"] | true
        [{"foo": "bar"}] | Equals | [{"foo": "bar"}] | true
        "string" | Equals | "not string" | false
        1 | Equals | 2 | false
        1.0 | Equals | 2.0 | false
        true | Equals | false | false
        false | Equals | true | false
        "1Gi" | Equals | "10Gi" | false
        "10Gi" | Equals | "1024Mi" | false
        "1h" | Equals | "5h" | false
        "1h" | Equals | "30m" | false
        "string" | Equals | 1 | false
        1 | Equals | "2" | false
        1.0 | Equals | "2.0" | false
        true | Equals | "false" | false
        false | Equals | "true" | false
        {"foo": "bar"} | Equals | {"bar": "foo"} | false
        ["foo", "bar"] | Equals | ["bar", "foo"] | false
        [{"foo": "bar"}] | Equals | [{"bar": "foo"}] | false
        "1h" | Equals | 3600 | true
        "2h" | Equals | 3600 | false
        "1.5.2" | Equals | "1.5.2" | true
        "1.5.2" | Equals | "1.5.*" | true
        "1.5.0" | Equals | "1.5.5" | false

        "string" | NotEquals | "string" | false
        1 | NotEquals | 1 | false
        1.0 | NotEquals | 1.0 | false
        true | NotEquals | false | true
        false | NotEquals | false | false
        "1024" | NotEquals | "1Ki" | false
        "1Ki" | NotEquals | "1024" | false
        "1023" | NotEquals | "1Ki" | true
        "1Ki" | NotEquals | "1023" | true
        "1Gi" | NotEquals | "1Gi" | false
        "10Gi" | NotEquals | "1024Mi" | true
        "1h" | NotEquals | "1h" | false
        "1h" | NotEquals | "60m" | false
        {"foo": "bar"} | NotEquals | {"foo": "bar"} | false
        ["foo", "bar"] | NotEquals | ["foo", "bar"] | false
        [{"foo": "bar"}] | NotEquals | [{"foo": "bar"}] | false
        "string" | NotEquals | "not string" | true
        1 | NotEquals | 2 | true
        1.0 | NotEquals | 2.0 | true
        true | NotEquals | true | false
        false | NotEquals | true | true
        "1Gi" | NotEquals | "10Gi" | true
        "1Gi" | NotEquals | "1024Mi" | false
        "1h" | NotEquals | "5h" | true
        "1h" | NotEquals | "30m" | true
        "string" | NotEquals | 1 | true
        1 | NotEquals | "2" | true
        1.0 | NotEquals | "2.0" | true
        true | NotEquals | "false" | true
        false | NotEquals | "true" | true
        {"foo": "bar"} | NotEquals | {"bar": "foo"} | true
        ["foo", "bar"] | NotEquals | ["bar", "foo"] | true
        [{"foo": "bar"}] | NotEquals | [{"bar": "foo"}] | true
        "1h" | NotEquals | 3600 | false
        "2h" | NotEquals | 3600 | true
        "1.5.2" | NotEquals | "1.5.5" | true
        "1.5.2" | NotEquals | "1.5.*" | false
        "1.5.0" | NotEquals | "1.5.0" | false

        10 | GreaterThan | 1 | true
        1.5 | GreaterThan | 1.0 | true
        1.5 | GreaterThan | 1 | true
        1 | GreaterThan | 10 | false
        1.0 | GreaterThan | 1.5 | false
        1 | GreaterThan | 1.5 | false
        1 | GreaterThan | 1 | false
        1.0 | GreaterThan | 1.0 | false
        "1025" | GreaterThan | "1Ki" | true
        "1Ki" | GreaterThan | "1023" | true
        "10Gi" | GreaterThan | "1Gi" | true
        "1Gi" | GreaterThan | "1Mi" | true
        "1Gi" | GreaterThan | "10Gi" | false
        "10Mi" | GreaterThan | "10Mi" | false
        "10h" | GreaterThan | "1h" | true
        "1h" | GreaterThan | "30m" | true
        "1h" | GreaterThan | "1h" | false
        "1Gi" | GreaterThan | "1Gi" | false
        "10" | GreaterThan | 1 | true
        100 | GreaterThan | "10" | true
        "100" | GreaterThan | "10" | true
        "10" | GreaterThan | "10" | false
        "1" | GreaterThan | "10" | false
        "1" | GreaterThan | 10 | false
        1 | GreaterThan | "10" | false
        "1h" | GreaterThan | 3600 | false
        "2h" | GreaterThan | 3600 | true
        3600 | GreaterThan | "1h" | false
        3600 | GreaterThan | "30m" | true
        -5 | GreaterThan | 1 | false
        -5 | GreaterThan | -10 | true
        1 | GreaterThan | -10 | true
        "1.5.5" | GreaterThan | "1.5.0" | true
        "1.5.0" | GreaterThan | "1.5.5" | false

        10 | LessThan | 1 | false
        1.5 | LessThan | 1.0 | false
        1.5 | LessThan | 1 | false
        1 | LessThan | 10 | true
        1.0 | LessThan | 1.5 | true
        1 | LessThan | 1.5 | true
        1 | LessThan | 1 | false
        1.0 | LessThan | 1.0 | false
        "1023" | LessThan | "1Ki" | true
        "1Ki" | LessThan | "1025" | true
        "10Gi" | LessThan | "1Gi" | false
        "1Gi" | LessThan | "10Gi" | true
        "1Gi" | LessThan | "1Mi" | false
        "1Mi" | LessThan | "1Gi" | true
        "10h" | LessThan | "1h" | false
        "1h" | LessThan | "30m" | false
        "1h" | LessThan | "1h" | false
        "1Gi" | LessThan | "1Gi" | false
        "10" | LessThan | 1 | false
        100 | LessThan | "10" | false
        "100" | LessThan | "10" | false
        "10" | LessThan | "10" | false
        "1" | LessThan | "10" | true
        "1" | LessThan | 10 | true
        1 | LessThan | "10" | true
        "1h" | LessThan | 3600 | false
        "30m" | LessThan | 3600 | true
        3600 | LessThan | "1h" | false
        3600 | LessThan | "30m" | false
        -5 | LessThan | 1 | true
        -5 | LessThan | -10 | false
        1 | LessThan | -10 | false
        "1.5.5" | LessThan | "1.5.0" | false
        "1.5.0" | LessThan | "1.5.5" | true

        10 | GreaterThanOrEquals | 1 | true
        1.5 | GreaterThanOrEquals | 1.0 | true
        1.5 | GreaterThanOrEquals | 1 | true
        1 | GreaterThanOrEquals | 10 | false
        1.0 | GreaterThanOrEquals | 1.5 | false
        1 | GreaterThanOrEquals | 1.5 | false
        1 | GreaterThanOrEquals | 1 | true
        1.0 | GreaterThanOrEquals | 1.0 | true
        1.0 | GreaterThanOrEquals | 1 | true
        "1025" | GreaterThanOrEquals | "1Ki" | true
        "1024" | GreaterThanOrEquals | "1Ki" | true
        "1Ki" | GreaterThanOrEquals | "1023" | true
        "1Ki" | GreaterThanOrEquals | "1024" | true
        "10Gi" | GreaterThanOrEquals | "1Gi" | true
        "1Gi" | GreaterThanOrEquals | "1Mi" | true
        "1Gi" | GreaterThanOrEquals | "10Gi" | false
        "10h" | GreaterThanOrEquals | "1h" | true
        "1h" | GreaterThanOrEquals | "30m" | true
        "1h" | GreaterThanOrEquals | "1h" | true
        "1Gi" | GreaterThanOrEquals | "1Gi" | true
        "10" | GreaterThanOrEquals | 1 | true
        100 | GreaterThanOrEquals | "10" | true
        "100" | GreaterThanOrEquals | "10" | true
        "10" | GreaterThanOrEquals | "10" | true
        "1" | GreaterThanOrEquals | "10" | false
        "1" | GreaterThanOrEquals | 10 | false
        1 | GreaterThanOrEquals | "10" | false
        "1h" | GreaterThanOrEquals | 3600 | true
        "2h" | GreaterThanOrEquals | 3600 | true
        "1.5.5" | GreaterThanOrEquals | "1.5.5" | true
        "1.5.5" | GreaterThanOrEquals | "1.5.0" | true
        "1.5.0" | GreaterThanOrEquals | "1.5.5" | false

        10 | LessThanOrEquals | 1 | false
        1.5 | LessThanOrEquals | 1.0 | false
        1.5 | LessThanOrEquals | 1 | false
        1 | LessThanOrEquals | 10 | true
        1.0 | LessThanOrEquals | 1.5 | true
        1 | LessThanOrEquals | 1.5 | true
        1 | LessThanOrEquals | 1 | true
        1.0 | LessThanOrEquals | 1.0 | true
        "1Ki" | LessThanOrEquals | "1024" | true
        "1024" | LessThanOrEquals | "1Ki" | true
        "1Ki" | LessThanOrEquals | "1025" | true
        "1023" | LessThanOrEquals | "1Ki" | true
        "10Gi" | LessThanOrEquals | "1Gi" | false
        "1Gi" | LessThanOrEquals | "10Gi" | true
        "1Gi" | LessThanOrEquals | "1Mi" | false
        "1Mi" | LessThanOrEquals | "1Gi" | true
        "10h" | LessThanOrEquals | "1h" | false
        "1h" | LessThanOrEquals | "30m" | false
        "1h" | LessThanOrEquals | "1h" | true
        "1Gi" | LessThanOrEquals | "1Gi" | true
        "10" | LessThanOrEquals | 1 | false
        100 | LessThanOrEquals | "10" | false
        "100" | LessThanOrEquals | "10" | false
        "10" | LessThanOrEquals | "10" | true
        "1" | LessThanOrEquals | "10" | true
        "1" | LessThanOrEquals | 10 | true
        1 | LessThanOrEquals | "10" | true
        "1h" | LessThanOrEquals | 3600 | true
        "2h" | LessThanOrEquals | 3600 | false
        "1.5.5" | LessThanOrEquals | "1.5.5" | true
        "1.5.0" | LessThanOrEquals | "1.5.5" | true
        "1.5.5" | LessThanOrEquals | "1.5.0" | false

        1 | In | [1, 2, 3] | true
        1.5 | In | [1, 1.5, 2, 3] | true
        "1" | In | ["1", "2", "3"] | true
        ["1.1.1.1", "2.2.2.2"] | In | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        5 | In | [1, 2, 3] | false
        5.5 | In | [1, 1.5, 2, 3] | false
        "5" | In | ["1", "2", "3"] | false
        "1.1.1.1" | In | ["1*"] | true
        ["1.1.1.1", "4.4.4.4"] | In | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false

        1 | NotIn | [1, 2, 3] | false
        1.5 | NotIn | [1, 1.5, 2, 3] | false
        "1" | NotIn | ["1", "2", "3"] | false
        ["1.1.1.1", "2.2.2.2"] | NotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        5 | NotIn | [1, 2, 3] | true
        5.5 | NotIn | [1, 1.5, 2, 3] | true
        "5" | NotIn | ["1", "2", "3"] | true
        ["1.1.1.1", "4.4.4.4"] | NotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true

        ["1.1.1.1", "5.5.5.5"] | AnyIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        ["1.1.1.1", "5.5.5.5"] | AnyIn | "1.1.1.1" | true
        ["4.4.4.4", "5.5.5.5"] | AnyIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        ["1.1.1.1", "5.5.5.5"] | AnyIn | ["1.1.1.1"] | true
        [1, 2] | AnyIn | [1, 2, 3, 4] | true
        [1, 5] | AnyIn | [1, 2, 3, 4] | true
        [5] | AnyIn | [1, 2, 3, 4] | false
        ["1*"] | AnyIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        ["5*"] | AnyIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        ["1.1.1.1", "2.2.2.2", "5.5.5.5"] | AnyIn | ["2*"] | true
        ["1.1.1.1", "2.2.2.2", "5.5.5.5"] | AnyIn | ["4*"] | false
        ["5"] | AnyIn | "1-3" | false
        "1.1.1.1" | AnyIn | ["1*"] | true
        "5" | AnyIn | "1-10" | true
        5 | AnyIn | "1-10" | true
        [1, 5] | AnyIn | "7-10" | false
        [1, 5] | AnyIn | "0-10" | true
        [1.002, 1.222] | AnyIn | "1.001-10" | true

        ["1.1.1.1", "2.2.2.2"] | AllIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        ["1.1.1.1", "5.5.5.5"] | AllIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        ["4.4.4.4", "5.5.5.5"] | AllIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        ["1.1.1.1", "5.5.5.5"] | AllIn | ["1.1.1.1"] | false
        [1, 2] | AllIn | [1, 2, 3, 4] | true
        [1, 5] | AllIn | [1, 2, 3, 4] | false
        [5] | AllIn | [1, 2, 3, 4] | false
        ["1*"] | AllIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        ["5*"] | AllIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        ["2.1.1.1", "2.2.2.2", "2.5.5.5"] | AllIn | ["2*"] | true
        ["1.1.1.1", "2.2.2.2", "5.5.5.5"] | AllIn | ["4*"] | false
        ["1.1.1.1", "5.5.5.5"] | AllIn | "5.5.5.5" | false
        5 | AllIn | "1-10" | true
        [3, 2] | AllIn | "1-10" | true
        [3, 2] | AllIn | "5-10" | false

        1 | AllNotIn | [1, 2, 3] | false
        1.5 | AllNotIn | [1, 1.5, 2, 3] | false
        "1" | AllNotIn | ["1", "2", "3"] | false
        ["1.1.1.1", "2.2.2.2"] | AllNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        5 | AllNotIn | [1, 2, 3] | true
        5.5 | AllNotIn | [1, 1.5, 2, 3] | true
        "5" | AllNotIn | ["1", "2", "3"] | true
        ["1.1.1.1", "4.4.4.4"] | AllNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        ["1.1.1.1", "4.4.4.4"] | AllNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1"] | false
        ["1.1.1.1", "4.4.4.4", "1.1.1.1"] | AllNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1", "4.4.4.4"] | false
        ["5.5.5.5", "4.4.4.4"] | AllNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        ["7*", "6*", "5*"] | AllNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        ["1*", "2*"] | AllNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        ["1.1.1.1", "3.3.3.3", "5.5.5.5"] | AllNotIn | ["2*"] | true
        ["4.1.1.1", "4.2.2.2", "4.5.5.5"] | AllNotIn | ["4*"] | false
        ["1.1.1.1", "4.4.4.4"] | AllNotIn | "2.2.2.2" | true
        5.5 | AllNotIn | "6-10" | true
        "5" | AllNotIn | "1-6" | false
        [3, 2] | AllNotIn | "5-10" | true
        [2, 6] | AllNotIn | "5-10" | false

        1 | AnyNotIn | [1, 2, 3] | false
        1.5 | AnyNotIn | [1, 1.5, 2, 3] | false
        "1" | AnyNotIn | ["1", "2", "3"] | false
        ["1.1.1.1", "2.2.2.2"] | AnyNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | false
        5 | AnyNotIn | [1, 2, 3] | true
        5.5 | AnyNotIn | [1, 1.5, 2, 3] | true
        "5" | AnyNotIn | ["1", "2", "3"] | true
        ["1.1.1.1", "4.4.4.4"] | AnyNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        ["5.5.5.5", "4.4.4.4"] | AnyNotIn | "4.4.4.4" | true
        ["5.5.5.5", "4.4.4.4"] | AnyNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        ["1*", "3*", "5*"] | AnyNotIn | ["1.1.1.1", "2.2.2.2", "3.3.3.3"] | true
        ["1.1.1.1", "2.2.2.2", "5.5.5.5"] | AnyNotIn | ["2*"] | true
        ["2.2*"] | AnyNotIn | ["2.2.2.2"] | false
        "5" | AnyNotIn | "1-3" | true
        [1, 5, 11] | AnyNotIn | "0-10" | true
        [1, 5, 7] | AnyNotIn | "0-10" | false
    "#;

    #[test]
    fn upstream_evaluate_table() {
        let mut count = 0;
        for line in UPSTREAM_EVALUATE_CASES
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let fields: Vec<&str> = line.split(" | ").collect();
            let [key, operator, value, expected] = fields[..] else {
                panic!("malformed case {line:?}");
            };
            let key: Value = serde_json::from_str(key).expect("key JSON");
            let value: Value = serde_json::from_str(value).expect("value JSON");
            let expected: bool = expected.parse().expect("expected bool");
            let got = evaluate_condition(&key, operator, &value).expect("known operator");
            assert_eq!(got, expected, "{line}");
            count += 1;
        }
        assert_eq!(count, 292);
    }

    /// Resolves the few variables the tests use, like a precondition substitution would.
    fn substitute(value: &Value) -> Result<Value, ConditionError> {
        Ok(match value.as_str() {
            Some("{{request.object.metadata.name}}") => json!("temp"),
            Some("{{request.object.spec.foo}}") => json!("bar"),
            Some("{{ bad }}") => {
                return Err(invalid("", "variable bad not found"));
            }
            Some(text) => json!(text.replace("{{ name }}", "temp")),
            None => value.clone(),
        })
    }

    fn parse(conditions: Value) -> Conditions {
        parse_conditions(&conditions).expect("valid conditions")
    }

    fn verdict(conditions: Value) -> Verdict {
        parse(conditions).evaluate(substitute).expect("evaluates")
    }

    fn name_is(value: &str, message: &str) -> Value {
        json!({"key": "{{request.object.metadata.name}}", "operator": "Equal", "value": value,
               "message": message})
    }

    fn foo_is(value: &str, message: &str) -> Value {
        json!({"key": "{{request.object.spec.foo}}", "operator": "Equal", "value": value,
               "message": message})
    }

    #[test]
    fn condition_messages_as_upstream() {
        // Upstream's Test_Condition_Messages, step by step.
        let blocks = |conditions: Value| [parse(conditions)];
        let failed = evaluate_blocks(
            &blocks(
                json!({"any": [name_is("temp2", "invalid name"), foo_is("bar2", "invalid foo")]}),
            ),
            substitute,
        );
        assert_eq!(
            failed,
            Ok(Verdict {
                holds: false,
                message: "invalid name; invalid foo".into()
            })
        );
        let passed = evaluate_blocks(
            &blocks(
                json!({"any": [name_is("temp", "invalid name"), foo_is("bar", "invalid foo")]}),
            ),
            substitute,
        );
        assert_eq!(
            passed,
            Ok(Verdict {
                holds: true,
                message: "invalid name".into()
            })
        );
        let all_fails = evaluate_blocks(
            &blocks(json!({
                "any": [name_is("temp", "invalid name"), foo_is("bar", "invalid foo")],
                "all": [name_is("temp", "invalid name"), foo_is("bar2", "invalid foo")],
            })),
            substitute,
        );
        assert_eq!(
            all_fails,
            Ok(Verdict {
                holds: false,
                message: "invalid foo".into()
            })
        );
        let both_fail = evaluate_blocks(
            &blocks(json!({
                "any": [name_is("temp1", "invalid name"), foo_is("bar2", "invalid foo")],
                "all": [name_is("temp", "invalid name"), foo_is("bar2", "invalid foo2")],
            })),
            substitute,
        );
        assert_eq!(
            both_fail,
            Ok(Verdict {
                holds: false,
                message: "invalid name; invalid foo; invalid foo2".into()
            })
        );
    }

    #[test]
    fn passing_messages_join_and_skip_empty_ones() {
        let conditions =
            json!({"all": [name_is("temp", "a"), name_is("temp", ""), foo_is("bar", "b")]});
        assert_eq!(
            verdict(conditions),
            Verdict {
                holds: true,
                message: "a; b".into()
            }
        );
        let list = json!([
            name_is("temp", "a"),
            name_is("temp", ""),
            foo_is("bar", "b")
        ]);
        assert_eq!(
            verdict(list),
            Verdict {
                holds: true,
                message: "a;b".into()
            }
        );
        let list = json!([name_is("temp", "a"), foo_is("x", "b"), foo_is("y", "c")]);
        assert_eq!(
            verdict(list),
            Verdict {
                holds: false,
                message: "b".into()
            }
        );
        let blocks = [
            parse(json!({"all": [name_is("temp", "a")]})),
            parse(json!({"all": [foo_is("bar", "b")]})),
        ];
        assert_eq!(
            evaluate_blocks(&blocks, substitute),
            Ok(Verdict {
                holds: true,
                message: "a;b".into()
            })
        );
    }

    #[test]
    fn messages_are_substituted() {
        let conditions = json!({"any": [foo_is("x", "name {{ name }} is wrong")]});
        assert_eq!(
            verdict(conditions),
            Verdict {
                holds: false,
                message: "name temp is wrong".into()
            }
        );
        // A message that does not resolve to a string is kept as written.
        let conditions = parse(json!({"any": [foo_is("x", "{{ n }}")]}));
        let to_number = |value: &Value| -> Result<Value, ConditionError> {
            if value == "{{ n }}" {
                Ok(json!(1))
            } else {
                substitute(value)
            }
        };
        assert_eq!(
            conditions.evaluate(to_number),
            Ok(Verdict {
                holds: false,
                message: "{{ n }}".into()
            })
        );
        let conditions = parse(json!({"any": [foo_is("x", "{{ bad }}")]}));
        assert_eq!(
            conditions
                .evaluate(substitute)
                .map(|verdict| verdict.message),
            Ok("{{ bad }}".into())
        );
    }

    #[test]
    fn any_and_all_combine_as_upstream() {
        let yes = || name_is("temp", "");
        let no = || name_is("other", "");
        let holds = |conditions: Value| verdict(conditions).holds;
        assert!(holds(json!({})));
        assert!(holds(json!(null)));
        assert!(holds(json!([])));
        assert!(holds(json!({"any": null, "all": null})));
        assert!(holds(json!({"any": [no(), yes()]})));
        assert!(!holds(json!({"any": [no(), no()]})));
        assert!(holds(json!({"all": [yes(), yes()]})));
        assert!(!holds(json!({"all": [yes(), no()]})));
        assert!(!holds(json!({"any": [yes()], "all": [no()]})));
        assert!(!holds(json!({"any": [no()], "all": [yes()]})));
        assert!(holds(json!({"any": [yes()], "all": [yes()]})));
        // An explicitly empty `any` never holds upstream (only an absent one is ignored).
        assert!(!holds(json!({"any": []})));
        assert!(holds(json!({"all": []})));
        assert!(holds(json!([yes(), yes()])));
        assert!(!holds(json!([yes(), no()])));
    }

    #[test]
    fn any_all_operators_are_case_insensitive_and_checked_when_reached() {
        let lower = json!({"all": [{"key": "a", "operator": "equals", "value": "a"}]});
        assert!(verdict(lower).holds);
        // The unknown operator is never reached: `any` stops at the first passing condition.
        let unreached = parse(json!({"any": [
            {"key": "a", "operator": "Equals", "value": "a"},
            {"key": "a", "operator": "Matches", "value": "a"},
        ]}));
        assert!(unreached.evaluate(substitute).expect("evaluates").holds);
        assert_eq!(
            unreached.check_operators(),
            Err(ConditionError::UnknownOperator {
                path: "any[1].operator".into(),
                operator: "Matches".into()
            })
        );
        let reached = parse(json!({"all": [{"key": "a", "value": "a"}]}));
        let error = reached.evaluate(substitute).expect_err("unknown operator");
        assert_eq!(
            error,
            ConditionError::UnknownOperator {
                path: "all[0].operator".into(),
                operator: String::new()
            }
        );
        assert_eq!(
            error.to_string(),
            r#"unknown condition operator "" at all[0].operator"#
        );
        assert_eq!(
            parse(json!({"all": [name_is("temp", "")]})).check_operators(),
            Ok(())
        );
    }

    #[test]
    fn list_form_needs_exact_operator_names() {
        assert!(
            parse_conditions(&json!([{"key": "a", "operator": "Equal", "value": "a"}])).is_ok()
        );
        assert_eq!(
            parse_conditions(&json!([
                {"key": "a", "operator": "Equals", "value": "a"},
                {"key": "a", "operator": "equals", "value": "a"},
            ])),
            Err(invalid(
                "[1].operator",
                "invalid condition operator: equals"
            ))
        );
        assert!(parse_conditions(&json!([null])).is_err());
    }

    #[test]
    fn malformed_conditions_are_rejected_with_their_path() {
        let cases = [
            (json!("Equals"), ""),
            (json!(5), ""),
            (json!({"any": [], "none": []}), "none"),
            (json!({"Any": []}), "Any"),
            (json!({"all": {"key": "a"}}), "all"),
            (json!({"all": ["a"]}), "all[0]"),
            (
                json!({"any": [{"key": "a", "operator": 1}]}),
                "any[0].operator",
            ),
            (
                json!([{"key": "a", "operator": "Equals", "message": ["m"]}]),
                "[0].message",
            ),
        ];
        for (conditions, path) in cases {
            match parse_conditions(&conditions) {
                Err(ConditionError::Invalid { path: got, .. }) => {
                    assert_eq!(got, path, "{conditions}");
                }
                other => panic!("{conditions}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn fields_are_matched_case_insensitively_and_absent_operands_are_null() {
        let conditions = parse(json!({"all": [{"Key": "a", "OPERATOR": "Equals", "Value": "a"}]}));
        assert!(conditions.evaluate(substitute).expect("evaluates").holds);
        let Conditions::AnyAll(AnyAllConditions { all, .. }) =
            parse(json!({"all": [{"operator": "NotEquals"}]}))
        else {
            panic!("any/all form expected");
        };
        assert_eq!(all[0].key, Value::Null);
        assert_eq!(all[0].value, Value::Null);
        assert_eq!(all[0].message, "");
    }

    #[test]
    fn operands_are_substituted_only_when_their_condition_is_reached() {
        let bad = || json!({"key": "{{ bad }}", "operator": "Equals", "value": "x"});
        // The first `any` condition decides: the second is never substituted.
        let decided = parse(json!({"any": [name_is("temp", ""), bad()]}));
        assert!(decided.evaluate(substitute).expect("evaluates").holds);
        // The first `all` condition fails: the rest is never substituted.
        let failed = parse(json!({"all": [name_is("other", ""), bad()]}));
        assert!(!failed.evaluate(substitute).expect("evaluates").holds);
        let list = parse(json!([name_is("other", ""), bad()]));
        assert!(!list.evaluate(substitute).expect("evaluates").holds);
        // A reached condition whose variable does not resolve is an error.
        let reached = parse(json!({"all": [name_is("temp", ""), bad()]}));
        assert_eq!(
            reached.evaluate(substitute),
            Err(invalid("", "variable bad not found"))
        );
        let value =
            parse(json!({"any": [{"key": "a", "operator": "AnyNotIn", "value": "{{ bad }}"}]}));
        assert!(value.evaluate(substitute).is_err());
    }

    #[test]
    fn typed_foreach_preconditions_convert() {
        let typed: ApiAnyAllConditions = serde_json::from_value(json!({
            "any": [],
            "all": [{"key": "{{request.object.spec.foo}}", "operator": "Equal", "value": "bar",
                     "message": "foo"}],
        }))
        .expect("typed conditions");
        let conditions = Conditions::from(&typed);
        assert_eq!(
            conditions.evaluate(substitute),
            Ok(Verdict {
                holds: true,
                message: "foo".into()
            })
        );
    }

    #[test]
    fn lone_conditions_report_unknown_operators() {
        assert_eq!(
            evaluate_condition(&json!(1), "GREATERTHAN", &json!(0)),
            Ok(true)
        );
        assert_eq!(
            evaluate_condition(&json!("a"), "notequal", &json!("b")),
            Ok(true)
        );
        let error = evaluate_condition(&json!(1), "Exists", &json!(0)).expect_err("unknown");
        assert_eq!(error.to_string(), r#"unknown condition operator "Exists""#);
    }
}
