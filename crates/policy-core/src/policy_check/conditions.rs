//! Checks of conditions: rule preconditions, deny conditions, foreach preconditions and
//! attestation conditions (upstream `validateConditions` and the `...ConditionOperator` checks).
use kyverno_api::kyverno::v1::mutate::ForEachMutation;
use kyverno_api::kyverno::v1::rule::AnyAllConditions;
use kyverno_api::kyverno::v1::validate::ForEachValidation;
use serde_json::{Map, Value};

use super::validate::nested_validations;
use super::{Issues, RuleContext, join};
use crate::conditions::{ConditionError, parse_conditions};

/// Operator names accepted when a policy is loaded: exactly these spellings, although
/// evaluation later ignores case.
const OPERATORS: [&str; 18] = [
    "Equal",
    "Equals",
    "NotEqual",
    "NotEquals",
    "In",
    "AnyIn",
    "AllIn",
    "NotIn",
    "AnyNotIn",
    "AllNotIn",
    "GreaterThanOrEquals",
    "GreaterThan",
    "LessThanOrEquals",
    "LessThan",
    "DurationGreaterThanOrEquals",
    "DurationGreaterThan",
    "DurationLessThanOrEquals",
    "DurationLessThan",
];

/// Values a condition on `{{request.operation}}` may compare with.
const OPERATIONS: [&str; 4] = ["CREATE", "UPDATE", "DELETE", "CONNECT"];

const MISSING_FIELD: &str =
    "entered value of `key`, `value` or `operator` is missing or misspelled";

/// How much of a condition block upstream checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every condition needs a key, a value and a known operator, and `{{request.operation}}`
    /// is compared with operations only (rule preconditions and deny conditions).
    Full,
    /// Operators only (deny conditions inside foreach).
    Operators,
}

pub(super) fn check_rule(rule: &RuleContext<'_>, issues: &mut Issues) {
    let r = rule.rule;
    if let Some(preconditions) = &r.preconditions {
        check_raw(
            preconditions,
            &rule.at("preconditions"),
            Scope::Full,
            issues,
        );
    }
    if let Some(validate) = &r.validate {
        if let Some(conditions) = validate
            .deny
            .as_ref()
            .and_then(|deny| deny.conditions.as_ref())
        {
            check_raw(
                conditions,
                &rule.at("validate.deny.conditions"),
                Scope::Full,
                issues,
            );
        }
        check_validate_foreach(&validate.foreach, &rule.at("validate.foreach"), issues);
    }
    if let Some(mutate) = &r.mutate {
        check_mutate_foreach(&mutate.foreach, &rule.at("mutate.foreach"), issues);
    }
    for (index, verification) in r.verify_images.iter().enumerate() {
        let path = rule.at(&format!("verifyImages[{index}]"));
        for (attestation_index, attestation) in verification.attestations.iter().enumerate() {
            for (condition_index, conditions) in attestation.conditions.iter().enumerate() {
                let conditions_path = format!(
                    "{path}.attestations[{attestation_index}].conditions[{condition_index}]"
                );
                check_typed(conditions, &conditions_path, issues);
            }
        }
        if let Some(conditions) = verification
            .validate
            .as_ref()
            .and_then(|validate| validate.deny.as_ref())
            .and_then(|deny| deny.conditions.as_ref())
        {
            check_raw(
                conditions,
                &format!("{path}.validate.deny.conditions"),
                Scope::Full,
                issues,
            );
        }
    }
}

fn check_validate_foreach(foreach: &[ForEachValidation], path: &str, issues: &mut Issues) {
    for (index, entry) in foreach.iter().enumerate() {
        let entry_path = format!("{path}[{index}]");
        if let Some(preconditions) = &entry.preconditions {
            check_typed(preconditions, &join(&entry_path, "preconditions"), issues);
        }
        if let Some(conditions) = entry
            .deny
            .as_ref()
            .and_then(|deny| deny.conditions.as_ref())
        {
            check_raw(
                conditions,
                &join(&entry_path, "deny.conditions"),
                Scope::Operators,
                issues,
            );
        }
        // A nested list that does not decode is reported with the validate checks.
        if let Ok(nested) = nested_validations(entry) {
            check_validate_foreach(&nested, &join(&entry_path, "foreach"), issues);
        }
    }
}

fn check_mutate_foreach(foreach: &[ForEachMutation], path: &str, issues: &mut Issues) {
    for (index, entry) in foreach.iter().enumerate() {
        let entry_path = format!("{path}[{index}]");
        if let Some(preconditions) = &entry.preconditions {
            check_typed(preconditions, &join(&entry_path, "preconditions"), issues);
        }
        // A nested list that does not decode is reported with the mutate checks.
        if let Ok(nested) = entry.nested() {
            check_mutate_foreach(&nested, &join(&entry_path, "foreach"), issues);
        }
    }
}

/// Typed conditions: the operator is known by construction, but may be missing.
pub(super) fn check_typed(conditions: &AnyAllConditions, path: &str, issues: &mut Issues) {
    for (list, items) in [("any", &conditions.any), ("all", &conditions.all)] {
        for (index, condition) in items.iter().enumerate() {
            if condition.operator.is_none() {
                issues.push(
                    format!("{path}.{list}[{index}].operator"),
                    invalid_operator(),
                );
            }
        }
    }
}

/// Conditions as written: an `{any, all}` object or a plain list.
fn check_raw(conditions: &Value, path: &str, scope: Scope, issues: &mut Issues) {
    if let Err(error) = parse_conditions(conditions) {
        let (relative, message) = match error {
            ConditionError::UnknownOperator { path, operator } => {
                (path, format!("unknown condition operator {operator:?}"))
            }
            ConditionError::Invalid { path, reason } => (path, reason),
        };
        issues.push(join(path, &relative), message);
        return;
    }
    let lists: Vec<(&str, &Vec<Value>)> = match conditions {
        Value::Array(items) => vec![("", items)],
        Value::Object(fields) => ["any", "all"]
            .into_iter()
            .filter_map(|list| match fields.get(list) {
                Some(Value::Array(items)) => Some((list, items)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let no_fields = Map::new();
    for (list, items) in lists {
        for (index, item) in items.iter().enumerate() {
            let item_path = format!("{}[{index}]", join(path, list));
            check_condition(
                item.as_object().unwrap_or(&no_fields),
                &item_path,
                scope,
                issues,
            );
        }
    }
}

fn check_condition(condition: &Map<String, Value>, path: &str, scope: Scope, issues: &mut Issues) {
    let operator = field(condition, "operator")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if scope == Scope::Full {
        let (Some(key), Some(value)) = (field(condition, "key"), field(condition, "value")) else {
            issues.push(path, MISSING_FIELD);
            return;
        };
        if operator.is_empty() {
            issues.push(path, MISSING_FIELD);
            return;
        }
        if key.as_str().map(|key| key.replace(' ', "")).as_deref() == Some("{{request.operation}}")
        {
            check_operation_values(value, &join(path, "value"), issues);
        }
    }
    if !OPERATORS.contains(&operator) {
        issues.push(join(path, "operator"), invalid_operator());
    }
}

/// A field of a condition; Go's decoder finds field names in any case. `null` is absent.
fn field<'a>(condition: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    condition
        .get(name)
        .or_else(|| {
            condition
                .iter()
                .find(|(field, _)| field.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        })
        .filter(|value| !value.is_null())
}

fn invalid_operator() -> String {
    let quoted: Vec<String> = OPERATORS.iter().map(|name| format!("{name:?}")).collect();
    format!(
        "entered value of `operator` is invalid. valid values: [{}]",
        quoted.join(" ")
    )
}

/// A condition on `{{request.operation}}` compares with operation names (or a variable).
fn check_operation_values(value: &Value, path: &str, issues: &mut Issues) {
    let unknown = |text: &str| {
        format!(
            "unknown value '{text}' found under the 'value' field. Only the following values are allowed: [CREATE, UPDATE, DELETE, CONNECT]"
        )
    };
    match value {
        Value::String(text) => {
            let variable = text.len() >= 4 && text.starts_with("{{") && text.ends_with("}}");
            if !variable && !OPERATIONS.contains(&text.as_str()) {
                issues.push(path, unknown(text));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let text = item
                    .as_str()
                    .map_or_else(|| item.to_string(), str::to_owned);
                if !OPERATIONS.contains(&text.as_str()) {
                    issues.push(format!("{path}[{index}]"), unknown(&text));
                }
            }
        }
        other => {
            let kind = match other {
                Value::Bool(_) => "bool",
                Value::Number(_) => "float64",
                _ => "map",
            };
            issues.push(
                path,
                format!(
                    "'value' field found to be of the type {kind}. The provided value/values are expected to be either in the form of a string or list"
                ),
            );
        }
    }
}
