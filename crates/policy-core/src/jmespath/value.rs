//! JSON value helpers that reproduce how upstream (Go) sees values: every number is a float64,
//! maps marshal with sorted keys, and `encoding/json` escapes HTML characters.

use serde_json::{Number, Value};

use crate::gofmt::{self, Numbers};
use std::fmt::Write as _;

/// The JMESPath type name of a value, as the `type()` function reports it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JMESPath truthiness: `null`, `false`, `""`, `[]` and `{}` are false, everything else
/// (including `0`) is true.
pub(crate) fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

/// Deep equality where numbers compare by value (`1 == 1.0`), as Go's float64 numbers do.
pub(crate) fn values_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => l.as_f64() == r.as_f64(),
        (Value::Array(l), Value::Array(r)) => {
            l.len() == r.len() && l.iter().zip(r).all(|(l, r)| values_equal(l, r))
        }
        (Value::Object(l), Value::Object(r)) => {
            l.len() == r.len()
                && l.iter()
                    .all(|(key, l)| r.get(key).is_some_and(|r| values_equal(l, r)))
        }
        _ => left == right,
    }
}

/// The number as a float, for numbers only.
pub(crate) fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A JSON number for a float result; integral values become JSON integers so that they print
/// like Go prints float64 (`3`, not `3.0`). Non-finite results (Go can hold them, JSON cannot)
/// become `null`.
pub(crate) fn number(value: f64) -> Value {
    // 2^53: every integral float below it converts to i64 exactly.
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && value.abs() < EXACT_INTEGER_LIMIT {
        return Value::from(value as i64);
    }
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// Serializes like Go's `json.Marshal` of the equivalent `interface{}` value: compact, keys
/// sorted, `<`, `>` and `&` escaped, numbers formatted as float64.
pub fn json_string(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&gofmt::format_number(n, Numbers::Json)),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by_key(|(key, _)| *key);
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_json(item, out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as Go's `strconv.FormatFloat(f, 'f', -1, 32)` writes it, which Kyverno uses to turn
/// number arguments of string functions into strings.
pub(crate) fn format_float32(value: f64) -> String {
    format!("{}", value as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn truthiness_follows_jmespath() {
        for falsy in [json!(null), json!(false), json!(""), json!([]), json!({})] {
            assert!(!is_truthy(&falsy), "{falsy}");
        }
        for truthy in [
            json!(0),
            json!(true),
            json!("a"),
            json!([0]),
            json!({"a": 1}),
        ] {
            assert!(is_truthy(&truthy), "{truthy}");
        }
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(values_equal(
            &json!([1, {"a": 2}]),
            &json!([1.0, {"a": 2.0}])
        ));
        assert!(!values_equal(&json!(1), &json!("1")));
    }

    #[test]
    fn floats_become_integers_when_integral() {
        assert_eq!(number(3.0), json!(3));
        assert_eq!(number(-2.5), json!(-2.5));
        assert_eq!(number(f64::INFINITY), Value::Null);
    }

    #[test]
    fn json_string_matches_go_marshal() {
        assert_eq!(
            json_string(&json!({"b": [1, 2.5, null], "a": "<x&y>"})),
            r#"{"a":"\u003cx\u0026y\u003e","b":[1,2.5,null]}"#
        );
    }

    #[test]
    fn float32_formatting_drops_precision_like_go() {
        assert_eq!(format_float32(12.0), "12");
        assert_eq!(format_float32(0.1), "0.1");
        assert_eq!(format_float32(123456789.0), "123456790");
    }
}
