//! Go's `fmt.Sprint` rendering of JSON values, which Kyverno's set operators use to turn keys and
//! values into the strings they compare.

use std::borrow::Cow;
use std::fmt::Write;

use serde_json::Value;

/// Renders `value` as Go's `fmt.Sprint` renders the equivalent decoded JSON (`interface{}`):
/// strings as they are, numbers as `float64` (`%v`), `<nil>`, `[a b]` and `map[k:v]`.
pub(super) fn sprint(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => {
            let mut out = String::new();
            write_value(&mut out, other);
            Cow::Owned(out)
        }
    }
}

/// Renders a number the way Go's `%v` renders a `float64`.
pub(super) fn format_number(number: &serde_json::Number) -> String {
    format_float(number.as_f64().unwrap_or(f64::NAN))
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format_number(n)),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go prints map keys sorted.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push_str("map[");
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_value(out, item);
            }
            out.push(']');
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits that round-trip, in
/// exponent form (`1e+06`, `1.5e-07`) when the decimal exponent is below -4 or at least 6.
fn format_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` also prints the shortest round-trip digits, e.g. `1.234567e6`.
    let scientific = format!("{f:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        return f.to_string();
    }
    let mut out = String::with_capacity(mantissa.len() + 5);
    out.push_str(mantissa);
    let sign = if exponent < 0 { '-' } else { '+' };
    let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn floats_render_like_go_percent_v() {
        let cases = [
            (1.0, "1"),
            (-5.0, "-5"),
            (1.5, "1.5"),
            (3.25, "3.25"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.002, "1.002"),
            (1e100, "1e+100"),
            (-2.5e-7, "-2.5e-07"),
            (0.0, "0"),
        ];
        for (input, expected) in cases {
            assert_eq!(format_float(input), expected, "{input}");
        }
    }

    #[test]
    fn values_render_like_go_sprint() {
        assert_eq!(sprint(&json!("a b")), "a b");
        assert_eq!(sprint(&json!(null)), "<nil>");
        assert_eq!(sprint(&json!(true)), "true");
        assert_eq!(sprint(&json!(64)), "64");
        assert_eq!(sprint(&json!(["a", 1, null])), "[a 1 <nil>]");
        assert_eq!(sprint(&json!({"b": 1, "a": "x"})), "map[a:x b:1]");
    }
}
