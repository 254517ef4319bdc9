//! Go's text forms of decoded JSON values and numbers, which Kyverno's messages and string
//! comparisons are made of: `fmt`'s `%v` and `%T`, `strconv.FormatFloat` and the numbers
//! `encoding/json` writes.

use std::borrow::Cow;

use serde_json::{Number, Value};

/// How numbers print. Upstream reaches `fmt` with values from different decoding paths, so the
/// same JSON number prints differently depending on where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Numbers {
    /// Every number is a `float64`, as `encoding/json` decodes into `interface{}`: `1e+06`.
    Float64,
    /// Integers are `int64` and other numbers `float64`, as Kyverno's pattern values are
    /// decoded: `1000000`, `1.5e-07`.
    Int64WhenIntegral,
    /// Numbers as `encoding/json` marshals them (JMESPath values): `1000000`, `1.5e-7`.
    Json,
}

/// Renders `value` as Go's `fmt.Sprint` (`%v`) renders the equivalent decoded value: strings as
/// they are, `<nil>`, `true`, `[a b]` and `map[k:v]` (keys sorted), numbers as `numbers` says.
pub(crate) fn sprint(value: &Value, numbers: Numbers) -> Cow<'_, str> {
    match value {
        Value::String(text) => Cow::Borrowed(text),
        other => {
            let mut out = String::new();
            write_value(&mut out, other, numbers);
            Cow::Owned(out)
        }
    }
}

fn write_value(out: &mut String, value: &Value, numbers: Numbers) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => out.push_str(&format_number(number, numbers)),
        Value::String(text) => out.push_str(text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(' ');
                }
                write_value(out, item, numbers);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by_key(|(key, _)| *key);
            out.push_str("map[");
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_value(out, item, numbers);
            }
            out.push(']');
        }
    }
}

/// Renders a number as `%v` renders it when decoded as `numbers` says (for [`Numbers::Json`],
/// as `encoding/json` writes it).
pub(crate) fn format_number(number: &Number, numbers: Numbers) -> String {
    if numbers != Numbers::Float64 && (number.is_i64() || number.is_u64()) {
        return number.to_string();
    }
    // Without serde_json's `arbitrary_precision`, every number has an f64 value.
    let float = number.as_f64().unwrap_or(f64::NAN);
    match numbers {
        Numbers::Json => format_json_float(float),
        Numbers::Float64 | Numbers::Int64WhenIntegral => format_float(float),
    }
}

/// Go's `%T` of a value decoded with integers as `int64` ([`Numbers::Int64WhenIntegral`]).
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_i64() || number.is_u64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which is also `%v` of a `float64`: the shortest
/// digits that round-trip, in exponent form (`1e+06`, `1.5e-07`) when the decimal exponent is
/// below -4 or at least 6.
pub(crate) fn format_float(float: f64) -> String {
    if let Some(special) = non_finite(float) {
        return special.to_owned();
    }
    let (_, exponent) = shortest_scientific(float);
    if (-4..6).contains(&exponent) {
        // Rust's `Display` is the shortest round-trip form without an exponent.
        float.to_string()
    } else {
        format_exponent(float, 'e')
    }
}

/// Go's `strconv.FormatFloat(f, letter, -1, 64)` for `letter` `'e'` or `'E'`: the shortest
/// digits that round-trip and a signed exponent of at least two digits (`1.5E+00`).
pub(crate) fn format_exponent(float: f64, letter: char) -> String {
    if let Some(special) = non_finite(float) {
        return special.to_owned();
    }
    let (mantissa, exponent) = shortest_scientific(float);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}{letter}{sign}{:02}", exponent.unsigned_abs())
}

/// A float as Go's `encoding/json` writes it: shortest round-trip digits, plain notation
/// between 1e-6 and 1e21, exponent notation (`1e+21`, `1e-7`) outside. (`encoding/json`
/// rejects NaN and the infinities; they print as `NaN`, `inf` and `-inf`.)
pub(crate) fn format_json_float(float: f64) -> String {
    if !float.is_finite() {
        return float.to_string();
    }
    let magnitude = float.abs();
    if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let (mantissa, exponent) = shortest_scientific(float);
        let sign = if exponent < 0 { "" } else { "+" };
        return format!("{mantissa}e{sign}{exponent}");
    }
    float.to_string()
}

/// Go's spelling of NaN and the infinities, `None` for finite floats.
fn non_finite(float: f64) -> Option<&'static str> {
    if float.is_nan() {
        Some("NaN")
    } else if float.is_infinite() {
        Some(if float > 0.0 { "+Inf" } else { "-Inf" })
    } else {
        None
    }
}

/// The shortest round-trip digits of a finite `float` as a signed mantissa `d.ddd` and a
/// decimal exponent.
fn shortest_scientific(float: f64) -> (String, i32) {
    // Rust's `{:e}` prints the shortest round-trip digits, e.g. `-1.234567e6`.
    let mut scientific = format!("{float:e}");
    let Some(exponent_at) = scientific.find('e') else {
        return (scientific, 0);
    };
    let exponent = scientific[exponent_at + 1..].parse().unwrap_or(0);
    scientific.truncate(exponent_at);
    (scientific, exponent)
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
            (2.5, "2.5"),
            (3.25, "3.25"),
            (0.5, "0.5"),
            (100000.0, "100000"),
            (123456.0, "123456"),
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
    fn exponent_forms_match_strconv() {
        assert_eq!(format_exponent(1.0, 'E'), "1E+00");
        assert_eq!(format_exponent(1.5, 'E'), "1.5E+00");
        assert_eq!(format_exponent(-0.00125, 'E'), "-1.25E-03");
        assert_eq!(format_exponent(1e100, 'e'), "1e+100");
    }

    #[test]
    fn json_floats_match_go_marshal() {
        assert_eq!(format_json_float(1e21), "1e+21");
        assert_eq!(format_json_float(1.5e-7), "1.5e-7");
        assert_eq!(format_json_float(0.000001), "0.000001");
        assert_eq!(format_json_float(123456789.0), "123456789");
    }

    #[test]
    fn float64_values_render_like_go_sprint() {
        let sprint = |value| sprint(&value, Numbers::Float64).into_owned();
        assert_eq!(sprint(json!("a b")), "a b");
        assert_eq!(sprint(json!(null)), "<nil>");
        assert_eq!(sprint(json!(true)), "true");
        assert_eq!(sprint(json!(64)), "64");
        assert_eq!(sprint(json!(["a", 1, null])), "[a 1 <nil>]");
        assert_eq!(sprint(json!({"b": 1, "a": "x"})), "map[a:x b:1]");
    }

    #[test]
    fn int64_values_render_like_go_sprint() {
        assert_eq!(
            sprint(
                &json!({"b": [1, "x", null], "a": 1.5, "c": {"d": true}}),
                Numbers::Int64WhenIntegral
            ),
            "map[a:1.5 b:[1 x <nil>] c:map[d:true]]"
        );
        assert_eq!(type_name(&json!(1)), "int64");
        assert_eq!(type_name(&json!(1.5)), "float64");
        assert_eq!(type_name(&json!({})), "map[string]interface {}");
    }

    #[test]
    fn json_values_render_like_go_sprint() {
        assert_eq!(sprint(&json!(null), Numbers::Json), "<nil>");
        assert_eq!(
            sprint(&json!({"b": 1, "a": ["x", "y"]}), Numbers::Json),
            "map[a:[x y] b:1]"
        );
    }
}
