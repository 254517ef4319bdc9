//! Evaluation of one condition operator on already-substituted operands, following Kyverno's
//! `pkg/engine/variables/operator` handlers.
//!
//! Values are compared as upstream compares decoded JSON, where every number is a `float64`:
//! - `Equals`/`NotEquals`: booleans with booleans, numbers with numbers or numeric strings,
//!   objects and lists structurally; a string key is compared as a Go duration, else as a
//!   resource quantity, else as a wildcard pattern given by the value (`nginx:*`).
//! - `GreaterThan`, `GreaterThanOrEquals`, `LessThan`, `LessThanOrEquals`: durations (`1h`, or a
//!   number of seconds against a duration), quantities (`1Gi`), numbers and numeric strings, and
//!   semantic versions (`1.5.0`).
//! - The deprecated `Duration*` operators: durations or numbers of seconds.
//! - The set operators, see the `membership` module.
//!
//! Type mismatches and unparsable operands make a condition false, never an error.

use std::cmp::Ordering;

use kyverno_api::kyverno::v1::rule::ConditionOperator;
use serde_json::Value;

use super::membership::{self, SetOperator};
use crate::duration::parse_duration;
use crate::gofmt::{self, Numbers};
use crate::quantity::Quantity;
use crate::wildcard;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// Evaluates `key <operator> value`.
pub(super) fn evaluate(operator: ConditionOperator, key: &Value, value: &Value) -> bool {
    use ConditionOperator as Op;
    match operator {
        Op::Equals => equals(key, value),
        Op::NotEquals => !equals(key, value),
        Op::In => membership::evaluate(SetOperator::In, key, value),
        Op::NotIn => membership::evaluate(SetOperator::NotIn, key, value),
        Op::AnyIn => membership::evaluate(SetOperator::AnyIn, key, value),
        Op::AnyNotIn => membership::evaluate(SetOperator::AnyNotIn, key, value),
        Op::AllIn => membership::evaluate(SetOperator::AllIn, key, value),
        Op::AllNotIn => membership::evaluate(SetOperator::AllNotIn, key, value),
        Op::GreaterThan => ordering(key, value).is_some_and(Ordering::is_gt),
        Op::GreaterThanOrEquals => ordering(key, value).is_some_and(Ordering::is_ge),
        Op::LessThan => ordering(key, value).is_some_and(Ordering::is_lt),
        Op::LessThanOrEquals => ordering(key, value).is_some_and(Ordering::is_le),
        Op::DurationGreaterThan => duration_ordering(key, value).is_some_and(Ordering::is_gt),
        Op::DurationGreaterThanOrEquals => {
            duration_ordering(key, value).is_some_and(Ordering::is_ge)
        }
        Op::DurationLessThan => duration_ordering(key, value).is_some_and(Ordering::is_lt),
        Op::DurationLessThanOrEquals => duration_ordering(key, value).is_some_and(Ordering::is_le),
    }
}

fn equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(key) => value.as_bool() == Some(*key),
        Value::Number(key) => match value {
            Value::Number(value) => key.as_f64() == value.as_f64(),
            Value::String(value) => parse_go_float(value).is_some_and(|v| key.as_f64() == Some(v)),
            _ => false,
        },
        Value::String(text) => string_equals(key, text, value),
        Value::Object(_) | Value::Array(_) => same_json(key, value),
        Value::Null => false,
    }
}

fn string_equals(key: &Value, text: &str, value: &Value) -> bool {
    // Durations come first: they are the only type compared with another type (seconds).
    if let Some((key, value)) = durations(key, value) {
        return key == value;
    }
    if let Some(key) = Quantity::parse(text) {
        match value {
            Value::String(value) => return Quantity::parse(value) == Some(key),
            Value::Number(value) => {
                return Quantity::parse(&gofmt::format_number(value, Numbers::Float64))
                    == Some(key);
            }
            _ => {}
        }
    }
    value
        .as_str()
        .is_some_and(|pattern| wildcard::matches(pattern, text))
}

/// Structural equality with numbers compared by value (`1 == 1.0`), as Go's `reflect.DeepEqual`
/// on decoded JSON.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(name, a)| b.get(name).is_some_and(|b| same_json(a, b)))
        }
        _ => a == b,
    }
}

/// How `key` compares with `value` for the numeric operators; `None` when they are not comparable.
fn ordering(key: &Value, value: &Value) -> Option<Ordering> {
    match key {
        Value::Number(key) => number_ordering(key.as_f64()?, value),
        Value::String(text) => {
            if let Some((key, value)) = durations(key, value) {
                return Some(key.cmp(&value));
            }
            // Quantities before plain numbers: `"1Ki" > "1023"`.
            if let Some(value) = value.as_str()
                && let (Some(key), Some(value)) = (Quantity::parse(text), Quantity::parse(value))
            {
                return Some(key.cmp(&value));
            }
            if let Some(key) = parse_go_float(text) {
                return number_ordering(key, value);
            }
            let key = semver::Version::parse(text).ok()?;
            let value = semver::Version::parse(value.as_str()?).ok()?;
            Some(key.cmp_precedence(&value))
        }
        _ => None,
    }
}

fn number_ordering(key: f64, value: &Value) -> Option<Ordering> {
    match value {
        Value::Number(value) => key.partial_cmp(&value.as_f64()?),
        Value::String(text) => {
            if let Some(value) = go_duration(text) {
                return Some(seconds_to_nanos(key).cmp(&value));
            }
            key.partial_cmp(&parse_go_float(text)?)
        }
        _ => None,
    }
}

/// Upstream's `parseDuration`: when at least one side is a duration string (other than `"0"`),
/// both sides as nanoseconds, a number counting whole seconds; `None` otherwise.
fn durations(key: &Value, value: &Value) -> Option<(i128, i128)> {
    let key_duration = key.as_str().and_then(go_duration);
    let value_duration = value.as_str().and_then(go_duration);
    if key_duration.is_none() && value_duration.is_none() {
        return None;
    }
    let key = key_duration.or_else(|| number_as_nanos(key))?;
    let value = value_duration.or_else(|| number_as_nanos(value))?;
    Some((key, value))
}

/// The deprecated `Duration*` operators: both sides durations or numbers of seconds.
fn duration_ordering(key: &Value, value: &Value) -> Option<Ordering> {
    let as_nanos = |operand: &Value| match operand {
        Value::String(text) => nanos(parse_duration(text)?),
        other => number_as_nanos(other),
    };
    Some(as_nanos(key)?.cmp(&as_nanos(value)?))
}

/// A duration string as upstream recognizes one when comparing mixed operands: `"0"` is not.
fn go_duration(text: &str) -> Option<i128> {
    if text == "0" {
        return None;
    }
    nanos(parse_duration(text)?)
}

fn nanos(duration: chrono::TimeDelta) -> Option<i128> {
    duration.num_nanoseconds().map(i128::from)
}

fn number_as_nanos(value: &Value) -> Option<i128> {
    value.as_f64().map(seconds_to_nanos)
}

/// Go's `time.Duration(f) * time.Second`: the fraction of a second is dropped.
fn seconds_to_nanos(seconds: f64) -> i128 {
    i128::from(seconds.trunc() as i64) * NANOS_PER_SECOND
}

/// Go's `strconv.ParseFloat(s, 64)`: decimal and exponent forms, `Inf`/`NaN`; out-of-range
/// values are rejected rather than turned into infinities.
fn parse_go_float(text: &str) -> Option<f64> {
    let parsed: f64 = text.parse().ok()?;
    if parsed.is_infinite() && !text.to_ascii_lowercase().contains("inf") {
        return None;
    }
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(operator: ConditionOperator, cases: &[(Value, Value, bool)]) {
        for (key, value, expected) in cases {
            assert_eq!(
                evaluate(operator, key, value),
                *expected,
                "{key} {operator:?} {value}"
            );
        }
    }

    #[test]
    fn equals_matches_upstream_handler_tests() {
        check(
            ConditionOperator::Equals,
            &[
                (json!(true), json!(true), true),
                (json!(false), json!(false), true),
                (json!(true), json!(false), false),
                (json!(true), json!("true"), false),
                (json!(42), json!(42), true),
                (json!(42), json!(43), false),
                (json!(42), json!(42.0), true),
                (json!(42), json!(42.5), false),
                (json!(42), json!("42"), true),
                (json!(42), json!("invalid"), false),
                (json!(3.25), json!("3.25"), true),
                (json!(3.25), json!("invalid"), false),
                (json!(3.25), json!(true), false),
                (json!("hello"), json!("hello"), true),
                (json!("hello"), json!("world"), false),
                (json!("hello-world"), json!("hello-*"), true),
                (json!("goodbye-world"), json!("hello-*"), false),
                (json!("hello"), json!(123), false),
                (json!("100Mi"), json!("100Mi"), true),
                (json!("1Gi"), json!("1024Mi"), true),
                (json!("100Mi"), json!("200Mi"), false),
                (json!("1h"), json!("60m"), true),
                (json!("1h"), json!("30m"), false),
                (json!({"foo": "bar"}), json!({"foo": "bar"}), true),
                (json!({"foo": "bar"}), json!({"foo": "baz"}), false),
                (json!({"foo": "bar"}), json!("not a map"), false),
                (json!(["a", "b", "c"]), json!(["a", "b", "c"]), true),
                (json!(["a", "b", "c"]), json!(["a", "b", "d"]), false),
                (json!(["a", "b", "c"]), json!(["a", "b"]), false),
                (json!(["a", "b", "c"]), json!("not a slice"), false),
                (json!(null), json!(null), false),
                (json!(null), json!(""), false),
            ],
        );
    }

    #[test]
    fn equality_quirks() {
        check(
            ConditionOperator::Equals,
            &[
                // A numeric string is a quantity: no wildcard matching against it.
                (json!("100"), json!("1*"), false),
                (json!("abc"), json!("abc"), true),
                (json!(""), json!(""), true),
                (json!("0"), json!("0"), true),
                // `500m` is both 500 minutes and half a unit.
                (json!("500m"), json!(30000), true),
                (json!("500m"), json!("0.5"), true),
                (json!("1m"), json!("1000u"), true),
                (json!("1h"), json!("abc"), false),
                // Numbers inside structures compare by value.
                (json!({"a": [1]}), json!({"a": [1.0]}), true),
                (json!([{"foo": "bar"}]), json!([{"bar": "foo"}]), false),
            ],
        );
        check(
            ConditionOperator::NotEquals,
            &[
                (json!("5"), json!(5), false),
                (json!("5"), json!(6), true),
                (json!("100Mi"), json!("not-a-quantity"), true),
                (json!(null), json!(null), true),
            ],
        );
    }

    #[test]
    fn numeric_comparisons_match_upstream_handler_tests() {
        check(
            ConditionOperator::GreaterThan,
            &[
                (json!(10), json!(5), true),
                (json!(25), json!(20.5), true),
                (json!(30), json!("25"), true),
                (json!(10), json!("5.5"), true),
                (json!("10.5"), json!(10), true),
                (json!("100"), json!(50), true),
                (json!("25.5"), json!("20.0"), true),
                (json!("200m"), json!("100m"), true),
                (json!("100m"), json!("200m"), false),
                (json!("1Gi"), json!("500Mi"), true),
                (json!("1.2.0"), json!("1.1.0"), true),
                (json!(true), json!(false), false),
                (json!({"foo": "bar"}), json!("100"), false),
                (json!(["a", "b"]), json!("100"), false),
                (json!(null), json!("100"), false),
                (json!(10), json!(true), false),
                (json!(10), json!("not-a-number"), false),
                (json!(10.5), json!("not-a-number"), false),
            ],
        );
        check(
            ConditionOperator::LessThan,
            &[
                (json!(5), json!(10), true),
                (json!(100), json!(50), false),
                (json!("256Mi"), json!("1Gi"), true),
                (json!("1.0.0"), json!("2.0.0"), true),
                (json!("2.0.0"), json!("1.9.0"), false),
                (json!("1.0.0-alpha"), json!("1.0.0"), true),
                // Build metadata does not take part in version precedence.
                (json!("1.0.0+b1"), json!("1.0.0+b2"), false),
                // A number against a duration counts seconds: 10s < 1h.
                (json!("10"), json!("1h"), true),
            ],
        );
        check(
            ConditionOperator::GreaterThanOrEquals,
            &[
                (json!(10.5), json!(10), true),
                (json!(3.25), json!(3.25), true),
                (json!(5.5), json!("4.5"), true),
                (json!(2.5), json!(5.0), false),
                (json!("500m"), json!("500m"), true),
                (json!("1.5.0"), json!("1.5.0"), true),
                (json!("1.5.0"), json!(1), false),
            ],
        );
        check(
            ConditionOperator::LessThanOrEquals,
            &[
                (json!("2Gi"), json!("2Gi"), true),
                (json!("0.9.0"), json!("1.0.0"), true),
                // Fractions of a second are dropped when a number meets a duration.
                (json!(1.9), json!("1s"), true),
            ],
        );
    }

    #[test]
    fn deprecated_duration_operators() {
        check(
            ConditionOperator::DurationGreaterThan,
            &[
                (json!("1h"), json!("30m"), true),
                (json!("30m"), json!("1h"), false),
                (json!("2h"), json!(3600), true),
                (json!(3600), json!("1h"), false),
                (json!(3601), json!("1h"), true),
                (json!(10), json!(5), true),
                (json!("abc"), json!("1h"), false),
                (json!("1h"), json!("abc"), false),
                (json!(true), json!("1h"), false),
            ],
        );
        check(
            ConditionOperator::DurationGreaterThanOrEquals,
            &[
                (json!("1h"), json!("60m"), true),
                (json!("0"), json!(0), true),
            ],
        );
        check(
            ConditionOperator::DurationLessThan,
            &[
                (json!("1m"), json!("1h"), true),
                (json!("1h"), json!("1h"), false),
            ],
        );
        check(
            ConditionOperator::DurationLessThanOrEquals,
            &[
                (json!("1h"), json!("1h"), true),
                (json!("2h"), json!(3600), false),
            ],
        );
    }

    #[test]
    fn go_float_parsing() {
        assert_eq!(parse_go_float("1e3"), Some(1000.0));
        assert_eq!(parse_go_float("-2.5"), Some(-2.5));
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("1e400"), None);
        assert_eq!(parse_go_float("1Gi"), None);
    }
}
