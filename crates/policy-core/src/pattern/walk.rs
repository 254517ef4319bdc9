//! Walking a resource against a pattern tree: maps, lists, scalars and anchors, following
//! Kyverno's `pkg/engine/validate` and `pkg/engine/anchor` (including the order in which keys
//! are visited, which decides the reported path, and how errors are classified).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;

use serde_json::{Map, Value};

use super::anchor::{self, AnchorKind};
use super::value::value_matches;
use crate::gofmt::{self, Numbers, type_name};
use crate::wildcard;

const CONDITIONAL_MISMATCH: &str = "conditional anchor mismatch";
const GLOBAL_MISMATCH: &str = "global anchor mismatch";
const NEGATION_MATCHED: &str = "negation anchor matched in resource";

/// What raised an error: an anchor handler, the aggregation of skipped elements or keys, or
/// anything else (a plain mismatch, never a skip, whatever its text says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Conditional,
    Global,
    Negation,
    Skipped,
    Other,
}

/// An error raised while walking, with upstream's message.
#[derive(Debug)]
pub(super) struct MatchError {
    origin: Origin,
    pub(super) message: String,
}

impl MatchError {
    fn anchor(origin: Origin, prefix: &str, detail: &str) -> MatchError {
        MatchError {
            origin,
            message: format!("{prefix}: {detail}"),
        }
    }

    fn other(message: String) -> MatchError {
        MatchError {
            origin: Origin::Other,
            message,
        }
    }

    /// A conditional or global anchor did not match: the element (or rule) does not apply.
    pub(super) fn is_skip(&self) -> bool {
        matches!(
            self.origin,
            Origin::Conditional | Origin::Global | Origin::Skipped
        )
    }

    /// A negation anchor found its key.
    pub(super) fn is_negation(&self) -> bool {
        self.origin == Origin::Negation
    }
}

/// A failed walk: the path upstream reports (may be empty) and the error.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) path: String,
    pub(super) error: MatchError,
}

fn fail_at(path: &str, error: MatchError) -> Result<(), Failure> {
    Err(Failure {
        path: path.to_owned(),
        error,
    })
}

/// How a map key is handled: by the kind of its anchor, or as a plain key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handler {
    Condition,
    Existence,
    Equality,
    Negation,
    Global,
    Plain,
}

fn handler_for(key: &str) -> (Handler, &str) {
    match anchor::parse(key) {
        Some(anchor) => {
            let handler = match anchor.kind {
                AnchorKind::Condition => Handler::Condition,
                AnchorKind::Existence => Handler::Existence,
                AnchorKind::Equality => Handler::Equality,
                AnchorKind::Negation => Handler::Negation,
                AnchorKind::Global => Handler::Global,
                // Validation has no add-if-not-present: the key is looked up literally.
                AnchorKind::AddIfNotPresent => return (Handler::Plain, key),
            };
            (handler, anchor.key)
        }
        None => (Handler::Plain, key),
    }
}

/// When a map key is visited: anchors, then global anchors and keys holding anchors, then
/// the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Anchor,
    Early,
    Late,
}

/// Walks one resource against one pattern, remembering which condition, existence and
/// negation anchor keys were ever found (upstream reports no path when some never were).
#[derive(Default)]
pub(super) struct Walker {
    anchor_keys_found: HashMap<String, bool>,
}

impl Walker {
    /// Whether some condition, existence or negation anchor key never appeared in the
    /// resource map it was checked against.
    pub(super) fn keys_are_missing(&self) -> bool {
        self.anchor_keys_found.values().any(|found| !found)
    }

    /// Validates `resource` against `pattern`; `path` is the current path (`/`-terminated)
    /// and is restored before returning.
    pub(super) fn element(
        &mut self,
        resource: &Value,
        pattern: &Value,
        path: &mut String,
    ) -> Result<(), Failure> {
        match pattern {
            Value::Object(pattern_map) => {
                let Value::Object(resource_map) = resource else {
                    let message = format!(
                        "pattern and resource have different structures. Path: {path}. Expected {}, found {}",
                        type_name(pattern),
                        type_name(resource)
                    );
                    return fail_at(path, MatchError::other(message));
                };
                self.record_anchor_keys(pattern_map, resource_map);
                self.map(resource_map, pattern_map, path)
            }
            Value::Array(pattern_items) => {
                let Value::Array(resource_items) = resource else {
                    let message = format!(
                        "validation rule failed at path {path}, resource does not satisfy the expected overlay pattern"
                    );
                    return fail_at(path, MatchError::other(message));
                };
                self.array(resource, resource_items, pattern_items, path)
            }
            scalar => {
                let matched = match resource {
                    Value::Array(items) => items.iter().all(|item| value_matches(item, scalar)),
                    _ => value_matches(resource, scalar),
                };
                if matched {
                    return Ok(());
                }
                let message = format!(
                    "resource value '{}' does not match '{}' at path {path}",
                    gofmt::sprint(resource, Numbers::Int64WhenIntegral),
                    gofmt::sprint(scalar, Numbers::Int64WhenIntegral)
                );
                fail_at(path, MatchError::other(message))
            }
        }
    }

    fn record_anchor_keys(&mut self, pattern: &Map<String, Value>, resource: &Map<String, Value>) {
        for key in pattern.keys() {
            let Some(anchor) = anchor::parse(key) else {
                continue;
            };
            if !matches!(
                anchor.kind,
                AnchorKind::Condition | AnchorKind::Existence | AnchorKind::Negation
            ) {
                continue;
            }
            let present = resource.contains_key(anchor.key);
            match self.anchor_keys_found.get_mut(key.as_str()) {
                Some(found) => *found |= present,
                None => {
                    self.anchor_keys_found.insert(key.clone(), present);
                }
            }
        }
    }

    /// Anchors first (conditions, existence, equality, negation, by key), then the other keys:
    /// global anchors and keys with nested anchors first, as upstream orders them.
    fn map(
        &mut self,
        resource: &Map<String, Value>,
        pattern: &Map<String, Value>,
        path: &mut String,
    ) -> Result<(), Failure> {
        let pattern = expand_metadata_wildcards(pattern, resource);
        let mut entries: Vec<_> = pattern
            .iter()
            .map(|(key, value)| {
                let (handler, name) = handler_for(key);
                let phase = match handler {
                    Handler::Global => Phase::Early,
                    Handler::Plain if has_nested_anchors(value) => Phase::Early,
                    Handler::Plain => Phase::Late,
                    _ => Phase::Anchor,
                };
                (phase, key.as_str(), handler, name, value)
            })
            .collect();
        // Upstream pushes early keys to the front of its list one by one, reversing them.
        entries.sort_unstable_by(|left, right| {
            left.0.cmp(&right.0).then_with(|| match left.0 {
                Phase::Early => right.1.cmp(left.1),
                Phase::Anchor | Phase::Late => left.1.cmp(right.1),
            })
        });
        // Under an anchor, a list whose elements were all skipped does not end the map
        // (kyverno#9155), so that a sibling anchor can still fail or apply; under a plain key
        // it does, like any anchor mismatch.
        let mut applied = 0usize;
        let mut skipped = Vec::new();
        for (phase, _, handler, name, value) in entries {
            match self.key(resource, handler, name, value, path) {
                Ok(()) => applied += 1,
                Err(failure)
                    if phase == Phase::Anchor && failure.error.origin == Origin::Skipped =>
                {
                    skipped.push(failure.error);
                }
                Err(failure) => return Err(failure),
            }
        }
        skipped_unless_applied(applied, &skipped, path)
    }

    fn key(
        &mut self,
        resource: &Map<String, Value>,
        handler: Handler,
        name: &str,
        pattern: &Value,
        path: &mut String,
    ) -> Result<(), Failure> {
        let value = resource.get(name);
        if handler == Handler::Plain && pattern.as_str() == Some("*") {
            return match value {
                Some(value) if !value.is_null() => Ok(()),
                _ => fail_at(path, MatchError::other(format!("{path}/{name} not found"))),
            };
        }
        let parent_len = path.len();
        path.push_str(name);
        path.push('/');
        let result = match (handler, value) {
            (Handler::Plain, value) => self.element(value.unwrap_or(&Value::Null), pattern, path),
            (Handler::Equality, Some(value)) => self.element(value, pattern, path),
            (Handler::Condition, Some(value)) => self
                .element(value, pattern, path)
                .map_err(|failure| wrap(failure, Origin::Conditional, CONDITIONAL_MISMATCH)),
            (Handler::Condition, None) => fail_at(
                path,
                MatchError::anchor(
                    Origin::Conditional,
                    CONDITIONAL_MISMATCH,
                    "conditional anchor key doesn't exist in the resource",
                ),
            ),
            (Handler::Global, Some(value)) => self
                .element(value, pattern, path)
                .map_err(|failure| wrap(failure, Origin::Global, GLOBAL_MISMATCH)),
            (Handler::Negation, Some(_)) => {
                let detail = format!("{path} is not allowed");
                fail_at(
                    path,
                    MatchError::anchor(Origin::Negation, NEGATION_MATCHED, &detail),
                )
            }
            (Handler::Existence, Some(value)) => self.existence(value, pattern, path),
            (
                Handler::Equality | Handler::Global | Handler::Negation | Handler::Existence,
                None,
            ) => Ok(()),
        };
        path.truncate(parent_len);
        result
    }

    /// `^(key)`: every map in the pattern list must match at least one resource element.
    fn existence(
        &mut self,
        resource: &Value,
        pattern: &Value,
        path: &mut String,
    ) -> Result<(), Failure> {
        let Value::Array(items) = resource else {
            let message = format!(
                "invalid resource type {}: Existence ^ () anchor can be used only on list/array type resource",
                type_name(resource)
            );
            return fail_at(path, MatchError::other(message));
        };
        let Value::Array(pattern_items) = pattern else {
            let message = format!(
                "invalid pattern type {}: Pattern has to be of list to compare against resource",
                type_name(pattern)
            );
            return fail_at(path, MatchError::other(message));
        };
        for pattern_item in pattern_items {
            if !pattern_item.is_object() {
                let message = format!(
                    "invalid pattern type {}: Pattern has to be of type map to compare against items in resource",
                    type_name(pattern)
                );
                return fail_at(path, MatchError::other(message));
            }
            if !self.any_item_matches(items, pattern_item, path) {
                let message = format!("existence anchor validation failed at path {path}");
                return fail_at(path, MatchError::other(message));
            }
        }
        Ok(())
    }

    fn any_item_matches(&mut self, items: &[Value], pattern: &Value, path: &mut String) -> bool {
        let parent_len = path.len();
        let matched = items.iter().enumerate().any(|(index, item)| {
            path.truncate(parent_len);
            push_index(path, index);
            self.element(item, pattern, path).is_ok()
        });
        path.truncate(parent_len);
        matched
    }

    /// A list pattern: its first element decides how the resource list is checked.
    fn array(
        &mut self,
        resource: &Value,
        resource_items: &[Value],
        pattern_items: &[Value],
        path: &mut String,
    ) -> Result<(), Failure> {
        let Some(first) = pattern_items.first() else {
            return fail_at(path, MatchError::other("pattern Array empty".to_owned()));
        };
        match first {
            // Every resource element must match the (first) map, unless its anchors skip it.
            Value::Object(_) => {
                self.each_item(resource_items.iter().map(|item| (item, first)), path)
            }
            // Nested lists are compared element by element.
            Value::Array(_) => {
                if resource_items.len() < pattern_items.len() {
                    let message = format!(
                        "validate Array failed, array length mismatch, resource Array len is {} and pattern Array len is {}",
                        resource_items.len(),
                        pattern_items.len()
                    );
                    return fail_at("", MatchError::other(message));
                }
                self.each_item(resource_items.iter().zip(pattern_items), path)
            }
            // Every resource element must match the (first) scalar.
            scalar => self.element(resource, scalar, path),
        }
    }

    /// Validates `(resource, pattern)` pairs at `path/<index>/`; fails on the first failure
    /// that is not a skip, and is skipped as a whole when every element was skipped.
    fn each_item<'v>(
        &mut self,
        pairs: impl Iterator<Item = (&'v Value, &'v Value)>,
        path: &mut String,
    ) -> Result<(), Failure> {
        let parent_len = path.len();
        let mut applied = 0usize;
        let mut skipped: Vec<MatchError> = Vec::new();
        for (index, (item, pattern)) in pairs.enumerate() {
            push_index(path, index);
            let result = self.element(item, pattern, path);
            path.truncate(parent_len);
            match result {
                Ok(()) => applied += 1,
                Err(failure) if failure.error.is_skip() => skipped.push(failure.error),
                Err(failure) => return Err(failure),
            }
        }
        skipped_unless_applied(applied, &skipped, path)
    }
}

/// Fails as skipped at `path` when nothing applied and something was skipped.
fn skipped_unless_applied(
    applied: usize,
    skipped: &[MatchError],
    path: &str,
) -> Result<(), Failure> {
    if applied > 0 || skipped.is_empty() {
        return Ok(());
    }
    let message = skipped
        .iter()
        .map(|error| error.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    fail_at(
        path,
        MatchError {
            origin: Origin::Skipped,
            message,
        },
    )
}

fn push_index(path: &mut String, index: usize) {
    // Writing to a `String` cannot fail.
    let _ = write!(path, "{index}/");
}

fn wrap(failure: Failure, origin: Origin, prefix: &str) -> Failure {
    Failure {
        path: failure.path,
        error: MatchError::anchor(origin, prefix, &failure.error.message),
    }
}

/// Whether a pattern value contains a condition, existence, equality, negation or global
/// anchor at any depth.
fn has_nested_anchors(pattern: &Value) -> bool {
    match pattern {
        Value::Object(map) => map.iter().any(|(key, value)| {
            anchor::parse(key).is_some_and(|anchor| anchor.kind != AnchorKind::AddIfNotPresent)
                || has_nested_anchors(value)
        }),
        Value::Array(items) => items.iter().any(has_nested_anchors),
        _ => false,
    }
}

/// The entry of `map` named `tag`, directly or as an anchor key (`=(labels)`).
fn find_tag<'m>(map: &'m Map<String, Value>, tag: &str) -> Option<(&'m String, &'m Value)> {
    map.iter().find(|(key, _)| {
        key.as_str() == tag || anchor::parse(key).is_some_and(|anchor| anchor.key == tag)
    })
}

/// Replaces wildcard keys of `metadata.labels` / `metadata.annotations` in the pattern with
/// the first matching resource key (keeping anchors), so that `app.kubernetes.io/*: "?*"`
/// checks an existing label. Values are matched later, as usual.
fn expand_metadata_wildcards<'p>(
    pattern: &'p Map<String, Value>,
    resource: &Map<String, Value>,
) -> Cow<'p, Map<String, Value>> {
    let Some((metadata_key, Value::Object(pattern_metadata))) = find_tag(pattern, "metadata")
    else {
        return Cow::Borrowed(pattern);
    };
    let Some(Value::Object(resource_metadata)) = resource.get("metadata") else {
        return Cow::Borrowed(pattern);
    };
    let mut expanded_metadata: Option<Map<String, Value>> = None;
    for tag in ["labels", "annotations"] {
        let Some((tag_key, Value::Object(pattern_tag))) = find_tag(pattern_metadata, tag) else {
            continue;
        };
        let Some((_, Value::Object(resource_tag))) = find_tag(resource_metadata, tag) else {
            continue;
        };
        if let Some(expanded) = expand_wildcard_keys(pattern_tag, resource_tag) {
            expanded_metadata
                .get_or_insert_with(|| pattern_metadata.clone())
                .insert(tag_key.clone(), Value::Object(expanded));
        }
    }
    match expanded_metadata {
        None => Cow::Borrowed(pattern),
        Some(metadata) => {
            let mut expanded = pattern.clone();
            expanded.insert(metadata_key.clone(), Value::Object(metadata));
            Cow::Owned(expanded)
        }
    }
}

/// `pattern` with each wildcard key replaced by the first matching key of `resource`;
/// `None` when nothing changes or a value is not a string (upstream expects string maps).
fn expand_wildcard_keys(
    pattern: &Map<String, Value>,
    resource: &Map<String, Value>,
) -> Option<Map<String, Value>> {
    let all_strings = |map: &Map<String, Value>| map.values().all(Value::is_string);
    if !pattern.keys().any(|key| wildcard::has_wildcard(key))
        || !all_strings(pattern)
        || !all_strings(resource)
    {
        return None;
    }
    let first_match = |name: &str| {
        resource
            .keys()
            .find(|candidate| wildcard::matches(name, candidate))
            .map_or_else(|| name.to_owned(), Clone::clone)
    };
    let expanded = pattern
        .iter()
        .map(|(key, value)| {
            let new_key = if !wildcard::has_wildcard(key) {
                key.clone()
            } else if let Some(anchor) = anchor::parse(key) {
                anchor::Anchor {
                    key: &first_match(anchor.key),
                    ..anchor
                }
                .to_key_string()
            } else {
                first_match(key)
            };
            (new_key, value.clone())
        })
        .collect();
    Some(expanded)
}
