//! Kubernetes label selectors (`matchLabels`, `matchExpressions`) with Kyverno's wildcard
//! extension: a `matchLabels` key or value containing `*` or `?` is replaced by the first label of
//! the object it matches, or else by the same text with the wildcards turned into `0`.
use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use thiserror::Error;

use crate::request::MetadataMap;
use crate::wildcard;

/// Why a label selector is invalid.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// A key is not a qualified name (`[prefix/]name`).
    #[error("invalid label key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value is not a valid label value.
    #[error("invalid label value {value:?} for key {key:?}: {reason}")]
    InvalidValue {
        /// The key the value belongs to.
        key: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `matchExpressions` operator other than In, NotIn, Exists, DoesNotExist.
    #[error("{0:?} is not a valid label selector operator")]
    InvalidOperator(String),
    /// `In`/`NotIn` without values.
    #[error(
        "values: Invalid value: for 'in', 'notin' operators, values set can't be empty (key {0:?})"
    )]
    MissingValues(String),
    /// `Exists`/`DoesNotExist` with values.
    #[error(
        "values: Invalid value: values set must be empty for exists and does not exist (key {0:?})"
    )]
    UnexpectedValues(String),
}

/// Read access to a set of labels.
pub(crate) trait Labels {
    /// The value of `key`.
    fn label(&self, key: &str) -> Option<&str>;
    /// Every label.
    fn entries(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl Labels for MetadataMap<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key)
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
    }
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }

    fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

/// Whether `labels` satisfy `selector`. An empty selector selects everything. Every requirement is
/// validated, so an invalid one is an error even when another one already fails.
pub(crate) fn selector_matches(
    selector: &LabelSelector,
    labels: &impl Labels,
) -> Result<bool, SelectorError> {
    let mut matched = true;
    for (key, value) in selector.match_labels.iter().flatten() {
        let (key, value) = expand_wildcards(key, value, labels);
        validate_key(&key)?;
        validate_value(&key, &value)?;
        matched &= labels.label(&key) == Some(value.as_ref());
    }
    for requirement in selector.match_expressions.iter().flatten() {
        matched &= requirement_matches(requirement, labels)?;
    }
    Ok(matched)
}

/// Validates `selector` without evaluating it and returns how many requirements it has. Only
/// meaningful for selectors without wildcards (those are resolved against the labels).
pub(crate) fn validate_selector(selector: &LabelSelector) -> Result<usize, SelectorError> {
    let no_labels = BTreeMap::new();
    selector_matches(selector, &no_labels)?;
    Ok(selector.match_labels.as_ref().map_or(0, BTreeMap::len)
        + selector.match_expressions.as_ref().map_or(0, Vec::len))
}

/// Whether a `matchLabels` key or value of `selector` contains a wildcard.
pub(crate) fn has_wildcards(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .iter()
        .flatten()
        .any(|(key, value)| wildcard::has_wildcard(key) || wildcard::has_wildcard(value))
}

/// Resolves a wildcard `matchLabels` entry against the labels (see the module documentation).
fn expand_wildcards<'a>(
    key: &'a str,
    value: &'a str,
    labels: &'a impl Labels,
) -> (Cow<'a, str>, Cow<'a, str>) {
    if !wildcard::has_wildcard(key) && !wildcard::has_wildcard(value) {
        return (Cow::Borrowed(key), Cow::Borrowed(value));
    }
    match labels.entries().find(|(label_key, label_value)| {
        wildcard::matches(key, label_key) && wildcard::matches(value, label_value)
    }) {
        Some((label_key, label_value)) => (Cow::Borrowed(label_key), Cow::Borrowed(label_value)),
        None => (zero_wildcards(key), zero_wildcards(value)),
    }
}

/// Replaces `*` and `?` with `0`, which label syntax accepts.
fn zero_wildcards(s: &str) -> Cow<'_, str> {
    if wildcard::has_wildcard(s) {
        Cow::Owned(s.replace(['*', '?'], "0"))
    } else {
        Cow::Borrowed(s)
    }
}

fn requirement_matches(
    requirement: &LabelSelectorRequirement,
    labels: &impl Labels,
) -> Result<bool, SelectorError> {
    let key = requirement.key.as_str();
    validate_key(key)?;
    let values = requirement.values.as_deref().unwrap_or_default();
    let label = labels.label(key);
    let in_values = || label.is_some_and(|label| values.iter().any(|value| value == label));
    match requirement.operator.as_str() {
        operator @ ("In" | "NotIn") => {
            if values.is_empty() {
                return Err(SelectorError::MissingValues(key.to_owned()));
            }
            for value in values {
                validate_value(key, value)?;
            }
            Ok(if operator == "In" {
                in_values()
            } else {
                !in_values()
            })
        }
        operator @ ("Exists" | "DoesNotExist") => {
            if !values.is_empty() {
                return Err(SelectorError::UnexpectedValues(key.to_owned()));
            }
            Ok(label.is_some() == (operator == "Exists"))
        }
        other => Err(SelectorError::InvalidOperator(other.to_owned())),
    }
}

/// Longest label name and label value.
const MAX_NAME_LENGTH: usize = 63;
/// Longest DNS subdomain (label key prefix).
const MAX_PREFIX_LENGTH: usize = 253;

/// Checks that `key` is a qualified name: an optional DNS subdomain prefix and `/`, then a name.
fn validate_key(key: &str) -> Result<(), SelectorError> {
    let invalid = |reason| SelectorError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    let name = match key.split_once('/') {
        None => key,
        Some((_, name)) if name.contains('/') => {
            return Err(invalid("a qualified name must have at most one '/'"));
        }
        Some(("", _)) => return Err(invalid("prefix part must be non-empty")),
        Some((prefix, name)) => {
            if !is_dns_subdomain(prefix) {
                return Err(invalid(
                    "prefix part must be a lowercase RFC 1123 subdomain",
                ));
            }
            name
        }
    };
    if name.is_empty() {
        return Err(invalid("name part must be non-empty"));
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(invalid("name part must be no more than 63 characters"));
    }
    if !is_label_name(name) {
        return Err(invalid(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ));
    }
    Ok(())
}

/// Checks that `value` is a valid label value (empty, or a label name of at most 63 characters).
fn validate_value(key: &str, value: &str) -> Result<(), SelectorError> {
    let invalid = |reason| SelectorError::InvalidValue {
        key: key.to_owned(),
        value: value.to_owned(),
        reason,
    };
    if value.len() > MAX_NAME_LENGTH {
        return Err(invalid("must be no more than 63 characters"));
    }
    if !value.is_empty() && !is_label_name(value) {
        return Err(invalid(
            "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        ));
    }
    Ok(())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A lowercase RFC 1123 subdomain: dot-separated labels of `[a-z0-9-]`, each starting and ending
/// with an alphanumeric character.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= MAX_PREFIX_LENGTH
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit())
                        && (last.is_ascii_lowercase() || last.is_ascii_digit())
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                }
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn selector(value: serde_json::Value) -> LabelSelector {
        serde_json::from_value(value).expect("selector")
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn upstream_check_selector_cases() {
        // Cases from upstream pkg/utils/match/labels_test.go.
        let two = labels(&[("test.io/scale", "foo"), ("test.io/functional", "bar")]);
        let foo = labels(&[("foo", "bar")]);
        let empty = labels(&[]);
        let cases = [
            (json!({}), &empty, true),
            (json!({}), &foo, true),
            (json!({"matchLabels": {"test.io/*": "bar"}}), &foo, false),
            (
                json!({"matchLabels": {"scale.test.io/*": "bar"}}),
                &foo,
                false,
            ),
            (json!({"matchLabels": {"test.io/*": "bar"}}), &two, true),
            (json!({"matchLabels": {"test.io/*": "*"}}), &two, true),
            (json!({"matchLabels": {"test.io/*": "a*"}}), &two, false),
            (json!({"matchLabels": {"test.io/scale": "f??"}}), &two, true),
            (json!({"matchLabels": {"*": "*"}}), &two, true),
            (
                json!({"matchLabels": {"test.io/functional": "foo"}}),
                &two,
                false,
            ),
            (json!({"matchLabels": {"*": "*"}}), &empty, false),
        ];
        for (sel, actual, expected) in cases {
            let got = selector_matches(&selector(sel.clone()), actual);
            assert_eq!(got, Ok(expected), "{sel} vs {actual:?}");
        }
        let invalid = selector(json!({"matchLabels": {"abc/def/ghi": "*"}}));
        assert!(selector_matches(&invalid, &labels(&[])).is_err());
    }

    #[test]
    fn match_expressions() {
        let app = labels(&[("app", "nginx")]);
        let eval = |value| selector_matches(&selector(value), &app);
        assert_eq!(
            eval(
                json!({"matchExpressions": [{"key": "label2", "operator": "NotIn", "values": ["x"]}]})
            ),
            Ok(true)
        );
        assert_eq!(
            eval(
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["nginx1", "nginx2"]}]})
            ),
            Ok(true)
        );
        assert_eq!(
            eval(
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["nginx"]}]})
            ),
            Ok(false)
        );
        assert_eq!(
            eval(
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["nginx"]}]})
            ),
            Ok(true)
        );
        assert_eq!(
            eval(
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]})
            ),
            Ok(false)
        );
        assert_eq!(
            eval(json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})),
            Ok(true)
        );
        assert_eq!(
            eval(json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]})),
            Ok(false)
        );
        assert_eq!(
            eval(
                json!({"matchLabels": {"app": "nginx"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})
            ),
            Ok(true)
        );
    }

    #[test]
    fn invalid_selectors_are_errors() {
        let app = labels(&[("app", "nginx")]);
        let eval = |value| selector_matches(&selector(value), &app);
        assert_eq!(
            eval(
                json!({"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["x"]}]})
            ),
            Err(SelectorError::InvalidOperator("Equals".into()))
        );
        assert_eq!(
            eval(json!({"matchExpressions": [{"key": "app", "operator": "In"}]})),
            Err(SelectorError::MissingValues("app".into()))
        );
        assert_eq!(
            eval(
                json!({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]})
            ),
            Err(SelectorError::UnexpectedValues("app".into()))
        );
        // An invalid requirement is an error even when an earlier one already fails.
        assert!(eval(json!({"matchLabels": {"app": "other", "bad key": "x"}})).is_err());
        assert!(eval(json!({"matchLabels": {"app": "-nginx"}})).is_err());
        assert!(eval(json!({"matchLabels": {"Example.com/app": "x"}})).is_err());
        assert!(eval(json!({"matchLabels": {"/app": "x"}})).is_err());
        assert!(eval(json!({"matchLabels": {"app": "a".repeat(64)}})).is_err());
        assert_eq!(
            eval(json!({"matchLabels": {"example.com/app": ""}})),
            Ok(false)
        );
    }

    #[test]
    fn wildcard_without_match_falls_back_to_zeroed_label() {
        assert_eq!(
            selector_matches(
                &selector(json!({"matchLabels": {"app*": "?"}})),
                &labels(&[("app0", "0")])
            ),
            Ok(true)
        );
    }

    #[test]
    fn validation_counts_requirements() {
        assert_eq!(validate_selector(&selector(json!({}))), Ok(0));
        assert_eq!(
            validate_selector(&selector(
                json!({"matchLabels": {"a": "b"}, "matchExpressions": [{"key": "c", "operator": "Exists"}]})
            )),
            Ok(2)
        );
        assert!(validate_selector(&selector(json!({"matchLabels": {"a b": "c"}}))).is_err());
        assert!(has_wildcards(&selector(
            json!({"matchLabels": {"a": "b*"}})
        )));
        assert!(!has_wildcards(&selector(
            json!({"matchLabels": {"a": "b"}})
        )));
    }
}
