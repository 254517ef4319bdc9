//! Checking a pattern's anchors when a policy is loaded (Kyverno's `ValidatePattern`).

use serde_json::Value;

use super::anchor::{self, AnchorKind};

/// Why a pattern is rejected; `path` is the `/`-separated path of the offending key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternSyntaxError {
    /// An anchor this kind of pattern does not support (e.g. `+(key)` in a validate pattern).
    #[error("{path}: unsupported anchor {key}")]
    UnsupportedAnchor {
        /// Path of the anchor key.
        path: String,
        /// The anchor key as written.
        key: String,
    },
    /// An existence anchor `^(key)` whose value is not a list.
    #[error("{path}: existence anchor should have value of type list")]
    ExistenceNotList {
        /// Path of the anchor key.
        path: String,
    },
    /// An existence anchor `^(key)` with an empty list.
    #[error("{path}: existence anchor: should have at least one value")]
    ExistenceEmpty {
        /// Path of the anchor key.
        path: String,
    },
}

/// Checks a `validate` pattern: every anchor but add-if-not-present (`+(key)`) is allowed,
/// and existence anchors need a non-empty list. Like upstream, scalar values (operators,
/// ranges) are not checked here.
pub fn check_pattern(pattern: &Value) -> Result<(), PatternSyntaxError> {
    check_pattern_anchors(pattern, |kind| kind != AnchorKind::AddIfNotPresent)
}

/// Checks the anchors of a pattern against the kinds `supported` by the rule type using it.
pub fn check_pattern_anchors(
    pattern: &Value,
    supported: impl Fn(AnchorKind) -> bool,
) -> Result<(), PatternSyntaxError> {
    check_value(pattern, &mut String::new(), &supported)
}

fn check_value(
    pattern: &Value,
    path: &mut String,
    supported: &impl Fn(AnchorKind) -> bool,
) -> Result<(), PatternSyntaxError> {
    let parent_len = path.len();
    match pattern {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by_key(|(key, _)| *key);
            for (key, value) in entries {
                path.truncate(parent_len);
                path.push('/');
                path.push_str(key);
                if let Some(anchor) = anchor::parse(key) {
                    check_anchor(anchor.kind, key, value, path, supported)?;
                }
                check_value(value, path, supported)?;
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.truncate(parent_len);
                path.push('/');
                path.push_str(&index.to_string());
                check_value(item, path, supported)?;
            }
        }
        _ => {}
    }
    path.truncate(parent_len);
    Ok(())
}

fn check_anchor(
    kind: AnchorKind,
    key: &str,
    value: &Value,
    path: &str,
    supported: &impl Fn(AnchorKind) -> bool,
) -> Result<(), PatternSyntaxError> {
    if !supported(kind) {
        return Err(PatternSyntaxError::UnsupportedAnchor {
            path: path.to_owned(),
            key: key.to_owned(),
        });
    }
    if kind == AnchorKind::Existence {
        match value {
            Value::Array(items) if items.is_empty() => {
                return Err(PatternSyntaxError::ExistenceEmpty {
                    path: path.to_owned(),
                });
            }
            Value::Array(_) => {}
            _ => {
                return Err(PatternSyntaxError::ExistenceNotList {
                    path: path.to_owned(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accepts_validate_anchors() {
        let pattern = json!({
            "spec": {
                "=(volumes)": [{"X(hostPath)": "null"}],
                "^(containers)": [{"(name)": "nginx", "<(image)": "*:latest", "ports": [1, 2]}]
            }
        });
        assert_eq!(check_pattern(&pattern), Ok(()));
    }

    #[test]
    fn rejects_add_if_not_present_with_its_path() {
        let pattern = json!({"spec": {"containers": [{"+(imagePullPolicy)": "Always"}]}});
        assert_eq!(
            check_pattern(&pattern),
            Err(PatternSyntaxError::UnsupportedAnchor {
                path: "/spec/containers/0/+(imagePullPolicy)".to_owned(),
                key: "+(imagePullPolicy)".to_owned(),
            })
        );
    }

    #[test]
    fn existence_needs_a_non_empty_list() {
        let not_list = json!({"spec": {"^(containers)": {"name": "x"}}});
        assert_eq!(
            check_pattern(&not_list),
            Err(PatternSyntaxError::ExistenceNotList {
                path: "/spec/^(containers)".to_owned()
            })
        );
        let empty = json!({"^(containers)": []});
        assert_eq!(
            check_pattern(&empty).map_err(|error| error.to_string()),
            Err("/^(containers): existence anchor: should have at least one value".to_owned())
        );
    }

    #[test]
    fn custom_anchor_support() {
        let pattern = json!({"spec": {"+(dnsPolicy)": "None"}});
        assert_eq!(
            check_pattern_anchors(&pattern, |kind| kind == AnchorKind::AddIfNotPresent),
            Ok(())
        );
        assert!(check_pattern_anchors(&json!({"^(a)": [{}]}), |_| false).is_err());
    }
}
