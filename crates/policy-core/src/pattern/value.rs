//! Matching one resource value against a scalar pattern: booleans, numbers, `null`, and
//! strings with wildcards, `|` / `&`, the operators `!` `<` `>` `<=` `>=`, ranges `a-b` /
//! `a!-b`, and duration and Kubernetes quantity comparisons (Kyverno's `pkg/engine/pattern`).

use serde_json::Value;
use std::borrow::Cow;
use std::cmp::Ordering;

use crate::duration::parse_duration;
use crate::gofmt;
use crate::quantity::Quantity;
use crate::wildcard;

/// A comparison operator at the start of a string pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operator {
    Equal,
    NotEqual,
    More,
    Less,
    MoreEqual,
    LessEqual,
}

/// One `|`/`&`-free string pattern, classified like Kyverno's `GetOperatorFromStringPattern`.
enum StringCondition<'a> {
    Compare(Operator, &'a str),
    InRange(&'a str, &'a str),
    NotInRange(&'a str, &'a str),
}

/// Whether `value` matches the scalar `pattern` (a string, number, boolean or `null`),
/// with Kyverno's conversions between strings, numbers and booleans.
///
/// Array patterns never match; an object pattern only requires the value to be an object.
pub fn value_matches(value: &Value, pattern: &Value) -> bool {
    match pattern {
        Value::Bool(expected) => value.as_bool() == Some(*expected),
        // Kyverno decodes every pattern number as a float64.
        Value::Number(number) => number
            .as_f64()
            .is_some_and(|expected| matches_number(value, expected)),
        Value::Null => is_zero_value(value),
        Value::String(pattern) => matches_string_pattern(value, pattern),
        Value::Object(_) => value.is_object(),
        Value::Array(_) => false,
    }
}

fn matches_number(value: &Value, expected: f64) -> bool {
    match value {
        Value::Number(number) => match number.as_i64() {
            Some(integer) => expected.fract() == 0.0 && expected as i64 == integer,
            None => number.as_f64() == Some(expected),
        },
        Value::String(text) => text.parse::<f64>().ok() == Some(expected),
        _ => false,
    }
}

/// What a `null` pattern accepts: `null`, `0`, `""` and `false`.
fn is_zero_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// A string pattern: alternatives separated by `|`, each a conjunction separated by `&`.
fn matches_string_pattern(value: &Value, pattern: &str) -> bool {
    if value.as_str() == Some(pattern) {
        return true;
    }
    pattern.split('|').any(|alternative| {
        alternative
            .trim_matches(' ')
            .split('&')
            .all(|condition| matches_condition(value, condition.trim_matches(' ')))
    })
}

fn matches_condition(value: &Value, condition: &str) -> bool {
    match classify(condition) {
        StringCondition::Compare(operator, operand) => compare(value, operand, operator),
        StringCondition::InRange(low, high) => {
            compare(value, low, Operator::MoreEqual) && compare(value, high, Operator::LessEqual)
        }
        StringCondition::NotInRange(low, high) => {
            compare(value, low, Operator::Less) || compare(value, high, Operator::More)
        }
    }
}

fn classify(condition: &str) -> StringCondition<'_> {
    if condition.len() < 2 {
        return StringCondition::Compare(Operator::Equal, condition.trim());
    }
    let prefixed = [
        (">=", Operator::MoreEqual),
        ("<=", Operator::LessEqual),
        (">", Operator::More),
        ("<", Operator::Less),
        ("!", Operator::NotEqual),
    ];
    for (prefix, operator) in prefixed {
        if let Some(operand) = condition.strip_prefix(prefix) {
            return StringCondition::Compare(operator, operand.trim());
        }
    }
    if let Some((low, high)) = range_bounds(condition, "!-") {
        return StringCondition::NotInRange(low, high);
    }
    if let Some((low, high)) = range_bounds(condition, "-") {
        return StringCondition::InRange(low, high);
    }
    StringCondition::Compare(Operator::Equal, condition.trim())
}

/// Splits `<bound><separator><bound>` where a bound is a signed decimal with an optional
/// unit (upstream's `^([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)<separator>(...)$`).
fn range_bounds<'a>(condition: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    let low_len = bound_len(condition)?;
    let (low, rest) = condition.split_at(low_len);
    let high = rest.strip_prefix(separator)?;
    (bound_len(high)? == high.len()).then_some((low, high))
}

/// The length of the range bound at the start of `text`, if there is one.
fn bound_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut position = usize::from(matches!(bytes.first(), Some(b'-' | b'|' | b'+')));
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let integer = digits(position);
    if integer == 0 {
        return None;
    }
    position += integer;
    if bytes.get(position) == Some(&b'.') {
        let fraction = digits(position + 1);
        if fraction > 0 {
            position += 1 + fraction;
        }
    }
    position += bytes[position..]
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    Some(position)
}

/// Compares as durations if both sides are durations, else as quantities if both are
/// quantities, else as strings (wildcards; only `=` and `!`).
fn compare(value: &Value, operand: &str, operator: Operator) -> bool {
    if let Some(ordering) = numeric_ordering(value, operand) {
        return operator_holds(operator, ordering);
    }
    let negate = match operator {
        Operator::Equal => false,
        Operator::NotEqual => true,
        Operator::More | Operator::Less | Operator::MoreEqual | Operator::LessEqual => {
            return false;
        }
    };
    comparable_text(value).is_some_and(|text| wildcard::matches(operand, &text) != negate)
}

/// How the value orders against `operand` when both are durations or both are quantities.
fn numeric_ordering(value: &Value, operand: &str) -> Option<Ordering> {
    let expected_duration = parse_duration(operand);
    let expected_quantity = Quantity::parse(operand);
    if expected_duration.is_none() && expected_quantity.is_none() {
        return None;
    }
    let text = numeric_text(value)?;
    if let (Some(expected), Some(actual)) = (expected_duration, parse_duration(&text)) {
        return Some(actual.cmp(&expected));
    }
    Some(Quantity::parse(&text)?.cmp(&expected_quantity?))
}

fn operator_holds(operator: Operator, ordering: Ordering) -> bool {
    match operator {
        Operator::Equal => ordering == Ordering::Equal,
        Operator::NotEqual => ordering != Ordering::Equal,
        Operator::More => ordering == Ordering::Greater,
        Operator::Less => ordering == Ordering::Less,
        Operator::MoreEqual => ordering != Ordering::Less,
        Operator::LessEqual => ordering != Ordering::Greater,
    }
}

/// The value as text for duration and quantity parsing (Kyverno's `convertNumberToString`):
/// `null` is `"0"`, floats are printed with six decimals.
fn numeric_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::Null => Some(Cow::Borrowed("0")),
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(number) => Some(Cow::Owned(match number.as_f64() {
            Some(float) if number.is_f64() => format!("{float:.6}"),
            _ => number.to_string(),
        })),
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    }
}

/// The value as text for wildcard matching: floats in Go's `%E` form (`1.5E+00`).
fn comparable_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Bool(flag) => Some(Cow::Borrowed(if *flag { "true" } else { "false" })),
        Value::Number(number) if number.is_i64() || number.is_u64() => {
            Some(Cow::Owned(number.to_string()))
        }
        Value::Number(number) => number
            .as_f64()
            .map(|float| Cow::Owned(gofmt::format_exponent(float, 'E'))),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn matches(value: Value, pattern: Value) -> bool {
        value_matches(&value, &pattern)
    }

    #[test]
    fn scalar_patterns_from_upstream_validate_tests() {
        let cases = [
            (json!(true), json!(true), true),
            (json!(true), json!(false), false),
            (json!(false), json!(true), false),
            (json!(false), json!(false), true),
            (json!("value"), Value::Null, false),
            (json!(""), Value::Null, true),
            (json!(0.0), Value::Null, true),
            (json!(0), Value::Null, true),
            (json!(false), Value::Null, true),
            (Value::Null, Value::Null, true),
            (json!({}), Value::Null, false),
            (json!([]), Value::Null, false),
            (json!(1), Value::Null, false),
            (json!(true), Value::Null, false),
            (
                json!("10.100.11.54"),
                json!("192.168.88.1 | 10.100.11.*"),
                true,
            ),
            (json!("10"), json!(">1 & <20"), true),
            (json!("10"), json!(">1 & <20 | >31 & <33"), true),
            (json!("32"), json!(">1 & <20 | >31 & <33"), true),
            (json!("21"), json!(">1 & <20 | >31 & <33"), false),
            (json!(7.0), json!(7.000), true),
            (json!(10), json!(10), true),
            (json!(8), json!(10), false),
            (Value::Null, json!([]), false),
            (json!({"a": true}), json!({"b": false}), true),
            (Value::Null, json!(false), false),
            (json!(8.0), json!(8), true),
            (json!(8.1), json!(8), false),
            (json!("8"), json!(8), true),
            (json!("8.1"), json!(8), false),
            (json!(false), json!(8), false),
            (json!(8), json!(8.0), true),
            (json!(8), json!(8.1), false),
            (json!("8.1"), json!(8.1), true),
            (json!("abc"), json!(8.1), false),
            (json!(7.9914), json!(7.9914), true),
            (json!(7.9914), json!(7.99141), false),
            (json!(7.000001), json!(7), false),
        ];
        for (value, pattern, expected) in cases {
            assert_eq!(
                matches(value.clone(), pattern.clone()),
                expected,
                "{value} against {pattern}"
            );
        }
    }

    #[test]
    fn negations_and_conjunctions() {
        let cases = [
            ("5.16.5-arch1-1", "!5.10.84-1", true),
            ("5.10.84-1", "5.10.84-1", true),
            ("!5.10.84-1", "!5.10.84-1", true),
            ("5.10.84-1", "!5.10.84-1", false),
            ("5.16.5-arch1-1", "!5.10.84-1 & !5.15.2-1", true),
            ("5.10.84-1", "!5.10.84-1 & !5.15.2-1", false),
            ("5.15.2-1", "!5.10.84-1 & !5.15.2-1", false),
            ("nginx:latest", "!*:latest", false),
            ("nginx:1.2", "!*:latest", true),
            ("nginx", "*:latest | !*:*", true),
        ];
        for (value, pattern, expected) in cases {
            assert_eq!(
                matches(json!(value), json!(pattern)),
                expected,
                "{value} against {pattern}"
            );
        }
    }

    #[test]
    fn ranges() {
        let cases = [
            (json!(0), "0-2", true),
            (json!(1), "0-2", true),
            (json!(2), "0-2", true),
            (json!(3), "0-2", false),
            (json!(0), "10!-20", true),
            (json!(15), "10!-20", false),
            (json!(25), "10!-20", true),
            (json!(0), "0.00001-2.00001", false),
            (json!(1), "0.00001-2.00001", true),
            (json!(2), "0.00001-2.00001", true),
            (json!(2.0001), "0.00001-2.00001", false),
            (json!(0), "0.00001!-2.00001", true),
            (json!(1), "0.00001!-2.00001", false),
            (json!(2.0001), "0.00001!-2.00001", true),
            (json!(2), "2-2", true),
            (json!(2), "2!-2", false),
            (json!(2.99999), "2.99998-3", true),
            (json!(2.99997), "2.99998!-3", true),
            (json!(3.00001), "2.99998!-3", true),
            (json!("256Mi"), "128Mi-512Mi", true),
            (json!("1024Mi"), "128Mi-512Mi", false),
            (json!("64Mi"), "128Mi-512Mi", false),
            (json!("256Mi"), "128Mi!-512Mi", false),
            (json!("1024Mi"), "128Mi!-512Mi", true),
            (json!("64Mi"), "128Mi!-512Mi", true),
            (json!(-9), "-10-8", true),
            (json!(9), "-10--8", false),
            (json!(9), "-10!--8", true),
            (json!("9Mi"), "-10Mi!--8Mi", true),
            (json!(-9), "-10!--8", false),
            (json!("-9Mi"), "-10Mi-8Mi", true),
            (json!("9Mi"), "-10Mi!-8Mi", true),
            (json!(0), "-10-+8", true),
            (json!("7Mi"), "-10Mi-+8Mi", true),
            (json!(10), "-10!-+8", true),
            (json!("10Mi"), "-10Mi!-+8Mi", true),
            (json!(0), "+0-+1", true),
            (json!("10Mi"), "+0Mi-+1024Mi", true),
            (json!(10), "+0!-+1", true),
            (json!("1025Mi"), "+0Mi!-+1024Mi", true),
        ];
        for (value, pattern, expected) in cases {
            assert_eq!(
                matches(value.clone(), json!(pattern)),
                expected,
                "{value} against {pattern}"
            );
        }
    }

    #[test]
    fn numeric_and_quantity_operators() {
        let cases = [
            (json!(4), ">= 3", true),
            (json!(7.00001), ">7.000001", true),
            (json!(7.00001), "!7", true),
            (json!(7.0), "7", true),
            (json!(6.000000001), "<6", false),
            (json!("1024Gi"), "1024Gi", true),
            (json!("1024Mi"), "1Gi", true),
            (json!("0.2"), "200m", true),
            (json!("2048"), "1024", false),
            (json!(1024), "1024", true),
            (json!("1Gi"), ">1000Mi", true),
            (json!("1G"), "<1Gi", true),
            (json!("500m"), ">=0.5", true),
            (json!("1"), ">=500m", true),
            (json!("0.5"), "<=.5", true),
            (json!("0.2"), "!.5", true),
            (json!("500m"), ">=0.6", false),
            (json!("gii"), "1024Gi", false),
            (json!("1024Gi"), "", false),
            (Value::Null, "<1", true),
            (json!("abc"), ">1", false),
            (json!(true), ">1", false),
        ];
        for (value, pattern, expected) in cases {
            assert_eq!(
                matches(value.clone(), json!(pattern)),
                expected,
                "{value} against {pattern}"
            );
        }
    }

    #[test]
    fn durations_compare_before_quantities() {
        let cases = [
            ("12s", "12s", true),
            ("12s", "!15s", true),
            ("12s", "<15s", true),
            ("12s", "<=15s", true),
            ("12s", "<=12s", true),
            ("15s", "<12s", false),
            ("15s", "<=12s", false),
            ("15s", ">12s", true),
            ("15s", ">=12s", true),
            ("12s", ">=12s", true),
            ("12s", ">15s", false),
            ("12s", ">=15s", false),
            // `m` is minutes for durations, not milli
            ("5m", "<10m", true),
            ("1h", ">59m", true),
            ("90s", "1m30s", true),
        ];
        for (value, pattern, expected) in cases {
            assert_eq!(
                matches(json!(value), json!(pattern)),
                expected,
                "{value} against {pattern}"
            );
        }
    }

    #[test]
    fn string_comparisons_use_wildcards() {
        let cases = [
            (json!("anything"), "*", true),
            (json!(""), "*", true),
            (json!("leftright"), "*right", true),
            (json!("right"), "*right", true),
            (json!("leftmiddle"), "*right", false),
            (json!("abbeba"), "ab*ba", true),
            (json!("abbca"), "ab*ba", false),
            (json!("abbba"), "ab?ba", true),
            (json!("abbbba"), "ab?ba", false),
            (Value::Null, "ab?ba", false),
            (json!(""), "ab?ba", false),
            (json!(""), "", true),
            (json!(1), "1", true),
            (json!(1.5), "1.5E+*", true),
            (json!(true), "true", true),
            (json!(false), "!true", true),
            (Value::Null, "?*", false),
            (json!(""), "?*", false),
            (json!("x"), "?*", true),
            (json!("abc"), ">abc", false),
        ];
        for (value, pattern, expected) in cases {
            assert_eq!(
                matches(value.clone(), json!(pattern)),
                expected,
                "{value} against {pattern}"
            );
        }
    }

    #[test]
    fn range_syntax() {
        assert_eq!(range_bounds("10-20", "-"), Some(("10", "20")));
        assert_eq!(range_bounds("-10--8", "-"), Some(("-10", "-8")));
        assert_eq!(range_bounds("1.5Gi-+2Gi", "-"), Some(("1.5Gi", "+2Gi")));
        assert_eq!(range_bounds("10!-20", "!-"), Some(("10", "20")));
        assert_eq!(range_bounds("10!-20", "-"), None);
        assert_eq!(range_bounds("5.10.84-1", "-"), None);
        assert_eq!(range_bounds("1.-2", "-"), None);
        assert_eq!(range_bounds("a-b", "-"), None);
        assert_eq!(range_bounds("1-", "-"), None);
        assert_eq!(range_bounds("", "-"), None);
    }
}
