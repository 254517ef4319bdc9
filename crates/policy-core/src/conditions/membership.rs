//! The set operators `In`, `NotIn` (deprecated), `AnyIn`, `AllIn`, `AnyNotIn` and `AllNotIn`.
//!
//! As upstream, keys and values are compared as strings (numbers, booleans and nested values are
//! rendered with Go's `fmt.Sprint`). A key may be a scalar or a list; a value may be a list, a
//! string (a single value, a wildcard pattern, a JSON-encoded list of strings such as ConfigMap
//! data holds, or, for the `Any*`/`All*` operators, a numeric range like `1-10` or `1Mi-1Gi`).
//! Elements match when either one is a wildcard pattern matching the other, except for the
//! deprecated operators on list keys, which need exact equality.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::gofmt::{self, Numbers};
use crate::{pattern, wildcard};

/// One of the set operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SetOperator {
    In,
    NotIn,
    AnyIn,
    AnyNotIn,
    AllIn,
    AllNotIn,
}

impl SetOperator {
    fn is_negated(self) -> bool {
        matches!(self, Self::NotIn | Self::AnyNotIn | Self::AllNotIn)
    }

    /// The deprecated operators predate range values and wildcard-aware list comparison.
    fn is_deprecated(self) -> bool {
        matches!(self, Self::In | Self::NotIn)
    }
}

/// A key or value as upstream compares it: `fmt.Sprint` of the `float64`-decoded value.
fn sprint(value: &Value) -> Cow<'_, str> {
    gofmt::sprint(value, Numbers::Float64)
}

/// Evaluates `key <operator> value`; type mismatches make the condition false, as upstream.
pub(super) fn evaluate(operator: SetOperator, key: &Value, value: &Value) -> bool {
    match key {
        Value::String(key) => scalar_key(operator, key, value),
        Value::Number(_) | Value::Bool(_) => scalar_key(operator, &sprint(key), value),
        Value::Array(items) => {
            let keys: Vec<Cow<'_, str>> = items.iter().map(sprint).collect();
            list_key(operator, &keys, value).unwrap_or(false)
        }
        Value::Null | Value::Object(_) => false,
    }
}

fn scalar_key(operator: SetOperator, key: &str, value: &Value) -> bool {
    match key_in_value(key, value, !operator.is_deprecated()) {
        Some(found) => found != operator.is_negated(),
        None => false,
    }
}

/// Whether the single `key` is in `value`; `None` when `value` has a type upstream rejects.
fn key_in_value(key: &str, value: &Value, ranges: bool) -> Option<bool> {
    match value {
        Value::Array(items) => Some(items.iter().any(|item| elements_match(key, &sprint(item)))),
        Value::String(text) => {
            if wildcard::matches(text, key) {
                return Some(true);
            }
            if ranges && let Some(range) = Range::parse(text) {
                return Some(range.contains(key));
            }
            match parse_string_list(text) {
                StringList::NotJson => Some(false),
                StringList::Strings(list) => Some(list.iter().any(|item| item == key)),
                StringList::Invalid => None,
            }
        }
        _ => None,
    }
}

/// Evaluates a list key; `None` when `value` has a type upstream rejects.
fn list_key(operator: SetOperator, keys: &[Cow<'_, str>], value: &Value) -> Option<bool> {
    match value {
        Value::Array(items) => {
            let values = if operator.is_deprecated() {
                items
                    .iter()
                    .map(|item| item.as_str().map(Cow::Borrowed))
                    .collect::<Option<Vec<_>>>()?
            } else {
                items.iter().map(sprint).collect()
            };
            Some(match_lists(operator, keys, &values))
        }
        Value::String(text) => {
            if let [only] = keys
                && only == text
            {
                return Some(!operator.is_negated());
            }
            if !operator.is_deprecated()
                && let Some(range) = Range::parse(text)
            {
                return Some(match_range(operator, keys, &range));
            }
            let values: Vec<Cow<'_, str>> = match parse_string_list(text) {
                StringList::NotJson => vec![Cow::Borrowed(text.as_str())],
                StringList::Strings(list) => list.into_iter().map(Cow::Owned).collect(),
                StringList::Invalid => return None,
            };
            Some(match_lists(operator, keys, &values))
        }
        // A scalar value is a one-element list for the `Any*` operators only (upstream #9462).
        Value::Number(_) | Value::Bool(_)
            if matches!(operator, SetOperator::AnyIn | SetOperator::AnyNotIn) =>
        {
            Some(match_lists(operator, keys, &[sprint(value)]))
        }
        _ => None,
    }
}

fn match_lists(operator: SetOperator, keys: &[Cow<'_, str>], values: &[Cow<'_, str>]) -> bool {
    let exact = |key: &str| values.iter().any(|value| value == key);
    let matched = |key: &str| values.iter().any(|value| elements_match(key, value));
    match operator {
        SetOperator::In => keys.iter().all(|key| exact(key)),
        SetOperator::NotIn => keys.iter().any(|key| !exact(key)),
        SetOperator::AnyIn => keys.iter().any(|key| matched(key)),
        SetOperator::AnyNotIn => keys.iter().any(|key| !matched(key)),
        SetOperator::AllIn => keys.iter().all(|key| matched(key)),
        SetOperator::AllNotIn => keys.iter().all(|key| !matched(key)),
    }
}

fn match_range(operator: SetOperator, keys: &[Cow<'_, str>], range: &Range<'_>) -> bool {
    match operator {
        SetOperator::AnyIn => keys.iter().any(|key| range.contains(key)),
        SetOperator::AnyNotIn => keys.iter().any(|key| range.excludes(key)),
        SetOperator::AllIn => keys.iter().all(|key| range.contains(key)),
        SetOperator::AllNotIn => keys.iter().all(|key| range.excludes(key)),
        SetOperator::In | SetOperator::NotIn => false,
    }
}

fn elements_match(a: &str, b: &str) -> bool {
    wildcard::matches(a, b) || wildcard::matches(b, a)
}

/// A string value read as JSON, as upstream reads ConfigMap-style list values.
enum StringList {
    /// Not JSON at all: the string is a single value.
    NotJson,
    /// A JSON list of strings (`null` reads as an empty list, `null` elements as `""`, as Go's
    /// `json.Unmarshal` into `[]string` does).
    Strings(Vec<String>),
    /// JSON of another shape (a number, an object, a list of non-strings).
    Invalid,
}

fn parse_string_list(text: &str) -> StringList {
    match serde_json::from_str::<Value>(text) {
        Err(_) => StringList::NotJson,
        Ok(Value::Null) => StringList::Strings(Vec::new()),
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Some(s),
                Value::Null => Some(String::new()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map_or(StringList::Invalid, StringList::Strings),
        Ok(_) => StringList::Invalid,
    }
}

/// A range value such as `1-10`, `-5-5` or `1Mi-1Gi`, recognized as upstream's
/// `GetOperatorFromStringPattern` does; keys are checked against it by the pattern matcher, as
/// upstream's `handleRange` does.
struct Range<'a> {
    text: &'a str,
}

/// A range bound: a signed decimal with an optional unit.
const RANGE_BOUND: &str = r"[-|\+]?\d+(?:\.\d+)?[A-Za-z]*";
static IN_RANGE: LazyLock<Option<Regex>> = LazyLock::new(|| range_regex("-"));
static NOT_IN_RANGE: LazyLock<Option<Regex>> = LazyLock::new(|| range_regex("!-"));

/// `^(bound)<separator>(bound)$`; constant, so always `Some` (checked by the tests).
fn range_regex(separator: &str) -> Option<Regex> {
    Regex::new(&format!("^({RANGE_BOUND}){separator}({RANGE_BOUND})$")).ok()
}

fn is_match(regex: &LazyLock<Option<Regex>>, text: &str) -> bool {
    regex.as_ref().is_some_and(|regex| regex.is_match(text))
}

impl<'a> Range<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        (!is_match(&NOT_IN_RANGE, text) && is_match(&IN_RANGE, text)).then_some(Range { text })
    }

    /// Whether `key` lies within the range.
    fn contains(&self, key: &str) -> bool {
        pattern::value_matches(
            &Value::String(key.to_owned()),
            &Value::String(self.text.to_owned()),
        )
    }

    /// Whether `key` lies outside the range: upstream turns `a-b` into the pattern `a!-b` by
    /// replacing the first `-` (so a key not comparable with the bounds is neither in nor out).
    fn excludes(&self, key: &str) -> bool {
        pattern::value_matches(
            &Value::String(key.to_owned()),
            &Value::String(self.text.replacen('-', "!-", 1)),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(operator: SetOperator, cases: &[(Value, Value, bool)]) {
        for (key, value, expected) in cases {
            assert_eq!(
                evaluate(operator, key, value),
                *expected,
                "{key} {operator:?} {value}"
            );
        }
    }

    #[test]
    fn any_in_matches_upstream_handler_tests() {
        check(
            SetOperator::AnyIn,
            &[
                (json!("kyverno"), json!("kyverno"), true),
                (json!("kube-system"), json!(["default", "kube-*"]), true),
                (json!("kyverno"), json!("default"), false),
                (json!(64), json!("64"), true),
                (json!(1), json!([1, 2, 3]), true),
                (json!(64), json!("default"), false),
                (json!(3.25), json!("3.25"), true),
                (json!(2.2), json!([1.1, 2.2, 3.3]), true),
                (json!(3.25), json!("default"), false),
                (json!(true), json!("true"), true),
                (json!(["kube-system", "kube-public"]), json!("kube-*"), true),
                (
                    json!(["kube-system", "default"]),
                    json!("kube-system"),
                    true,
                ),
                (json!(["default", "kyverno"]), json!("kube-*"), false),
                (
                    json!(["default", "kyverno"]),
                    json!(["kube-*", "ky*"]),
                    true,
                ),
                (
                    json!(["default", "kyverno"]),
                    json!(["kube-*", "kube-system"]),
                    false,
                ),
                (json!([]), json!(["default", "kyverno"]), false),
                (json!(""), json!(["default", "kyverno"]), false),
                (json!({"foo": "bar"}), json!("test"), false),
                (json!("5"), json!("1-10"), true),
                (json!("0"), json!("1-10"), false),
                (json!(["0", "5"]), json!("1-10"), true),
                (json!(["0", "20"]), json!("1-10"), false),
                (json!("apple"), json!(r#"["apple", "banana"]"#), true),
                (json!("cherry"), json!(r#"["apple", "banana"]"#), false),
                (
                    json!(["apple", "cherry"]),
                    json!(r#"["apple", "banana"]"#),
                    true,
                ),
                (
                    json!(["cherry", "date"]),
                    json!(r#"["apple", "banana"]"#),
                    false,
                ),
            ],
        );
    }

    #[test]
    fn any_not_in_matches_upstream_handler_tests() {
        check(
            SetOperator::AnyNotIn,
            &[
                (json!("kyverno"), json!("kyverno"), false),
                (json!("kube-system"), json!(["default", "kube-*"]), false),
                (json!("kyverno"), json!("default"), true),
                (json!(64), json!("64"), false),
                (json!(1), json!([1, 2, 3]), false),
                (json!(64), json!("default"), true),
                (json!(3.25), json!("3.25"), false),
                (json!(2.2), json!([1.1, 2.2, 3.3]), false),
                (json!(3.25), json!("default"), true),
                (json!(true), json!(true), false),
                (
                    json!(["kube-system", "kube-public"]),
                    json!("kube-*"),
                    false,
                ),
                (
                    json!(["kube-system", "default"]),
                    json!("kube-system"),
                    true,
                ),
                (json!(["default", "kyverno"]), json!("kube-*"), true),
                (json!([1, 2, 3]), json!(2), true),
                (json!([1, 2, 3]), json!(4), true),
                (json!([1.1, 2.2, 3.3]), json!(1.1), true),
                (json!([1.1, 2.2, 3.3]), json!(4.4), true),
                (json!([true, false]), json!(true), true),
                (json!([true]), json!(false), true),
                (json!([2]), json!(2), false),
                (
                    json!(["default", "kyverno"]),
                    json!(["kube-*", "kube-system"]),
                    true,
                ),
                (
                    json!(["default", "kyverno"]),
                    json!(["kube-*", "ky*"]),
                    true,
                ),
                (json!([]), json!(["default", "kyverno"]), false),
                (json!(""), json!(["default", "kyverno"]), true),
            ],
        );
    }

    #[test]
    fn all_not_in_matches_upstream_handler_tests() {
        check(
            SetOperator::AllNotIn,
            &[
                (json!("kyverno"), json!("kyverno"), false),
                (json!("kube-system"), json!(["default", "kube-*"]), false),
                (json!("kyverno"), json!("default"), true),
                (json!(64), json!("64"), false),
                (json!(64), json!("default"), true),
                (
                    json!(["kube-system", "kube-public"]),
                    json!("kube-*"),
                    false,
                ),
                (
                    json!(["kube-system", "default"]),
                    json!("kube-system"),
                    false,
                ),
                (json!(["default", "kyverno"]), json!("kube-*"), true),
                (
                    json!(["default", "kyverno"]),
                    json!(["kube-*", "kube-system"]),
                    true,
                ),
                (
                    json!(["default", "kyverno"]),
                    json!(["kube-*", "ky*"]),
                    false,
                ),
                (json!(["kube-system"]), json!("kube-system"), false),
            ],
        );
    }

    #[test]
    fn type_mismatches_are_false_for_every_operator() {
        let operators = [
            SetOperator::In,
            SetOperator::NotIn,
            SetOperator::AnyIn,
            SetOperator::AnyNotIn,
            SetOperator::AllIn,
            SetOperator::AllNotIn,
        ];
        for operator in operators {
            check(
                operator,
                &[
                    (json!(null), json!(["a"]), false),
                    (json!({"a": 1}), json!(["a"]), false),
                    (json!("a"), json!(null), false),
                    (json!("a"), json!({"a": 1}), false),
                    // A JSON string that is not a list of strings.
                    (json!("6"), json!("5"), false),
                    (json!("a"), json!(r#"{"a": 1}"#), false),
                ],
            );
        }
    }

    #[test]
    fn json_null_string_is_an_empty_list() {
        check(SetOperator::AnyIn, &[(json!("a"), json!("null"), false)]);
        check(SetOperator::AnyNotIn, &[(json!("a"), json!("null"), true)]);
    }

    #[test]
    fn deprecated_in_compares_list_keys_exactly() {
        check(
            SetOperator::In,
            &[
                (json!("1.1.1.1"), json!(["1*"]), true),
                (
                    json!(["1.1.1.1", "2.2.2.2"]),
                    json!(["1.1.1.1", "2.2.2.2", "3.3.3.3"]),
                    true,
                ),
                (json!(["1.1.1.1"]), json!(["1*"]), false),
                (json!(["a"]), json!([1, "a"]), false),
                (json!(["a", "b"]), json!(r#"["a", "b", "c"]"#), true),
                (json!("5"), json!("1-10"), false),
            ],
        );
        check(
            SetOperator::NotIn,
            &[
                (json!(["a", "x"]), json!(["a", "b"]), true),
                (json!(["a"]), json!("a"), false),
                (json!("x"), json!("registry.corp/*"), true),
                (json!("registry.corp/app"), json!("registry.corp/*"), false),
            ],
        );
    }

    #[test]
    fn ranges_compare_quantities_and_durations() {
        check(
            SetOperator::AnyIn,
            &[
                (json!("512Mi"), json!("256Mi-1Gi"), true),
                (json!("2Gi"), json!("256Mi-1Gi"), false),
                (json!("90s"), json!("1m-2m"), true),
                (json!([1.002, 1.222]), json!("1.001-10"), true),
                (json!("abc"), json!("1-10"), false),
                (json!("2021-01-01"), json!("2021-01-01"), true),
            ],
        );
        check(
            SetOperator::AnyNotIn,
            &[
                (json!("5"), json!("1-3"), true),
                (json!([1, 5, 11]), json!("0-10"), true),
                (json!([1, 5, 7]), json!("0-10"), false),
                (json!("abc"), json!("1-10"), true),
                (json!(["abc"]), json!("1-10"), false),
            ],
        );
        check(
            SetOperator::AllNotIn,
            &[
                (json!(5.5), json!("6-10"), true),
                (json!("5"), json!("1-6"), false),
                (json!([3, 2]), json!("5-10"), true),
                (json!([2, 6]), json!("5-10"), false),
            ],
        );
        check(
            SetOperator::AllIn,
            &[
                (json!(5), json!("1-10"), true),
                (json!([3, 2]), json!("1-10"), true),
                (json!([3, 2]), json!("5-10"), false),
                (json!([]), json!("5-10"), true),
            ],
        );
    }

    #[test]
    fn signed_ranges_and_upstream_not_in_rewrite() {
        check(
            SetOperator::AnyIn,
            &[
                (json!(-3), json!("-5-5"), true),
                (json!(6), json!("-5-5"), false),
            ],
        );
        // Upstream checks "not in -5-5" with the pattern `!-5-5` (its first `-` replaced), which
        // means "not the string -5-5": every other key is "not in".
        check(SetOperator::AnyNotIn, &[(json!([0]), json!("-5-5"), true)]);
    }

    #[test]
    fn range_shapes() {
        assert!(range_regex("-").is_some() && range_regex("!-").is_some());
        assert!(Range::parse("1-10").is_some());
        assert!(Range::parse("0Mi-1024Mi").is_some());
        assert!(Range::parse("1.5-2.5").is_some());
        assert!(Range::parse("0!-1").is_none());
        assert!(Range::parse("text1024Mi-2048Mi").is_none());
        assert!(Range::parse("test-value").is_none());
        assert!(Range::parse("value-*").is_none());
        assert!(Range::parse("1-2-3").is_none());
        assert!(Range::parse("-1-2").is_some());
        assert!(Range::parse("1a-2b").is_some());
        assert!(Range::parse("1.5.0-2").is_none());
    }
}
