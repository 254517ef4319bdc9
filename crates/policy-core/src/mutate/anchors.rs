//! Kyverno's anchors in `patchStrategicMerge`, resolved against the resource before the merge
//! (upstream `strategicPreprocessing.go`):
//!
//! - `(key): pattern` (condition): the map holding it applies only where the resource's `key`
//!   matches `pattern` (a validate pattern). At the top of the patch a mismatch skips the whole
//!   patch; in a list of maps the element is tried against every resource element and applies,
//!   renamed after the resource element's `name`, to those that match;
//! - `<(key): pattern` (global): if it matches no resource element, the whole patch is skipped;
//! - `+(key): value` (add if not present): set only when the resource lacks `key`.
//!
//! What is left is a plain strategic merge patch: anchors are removed, and so are the patch
//! nodes that held nothing but anchors (empty maps included, as upstream).

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::pattern::{AnchorKind, PatternOutcome, parse_anchor, validate_pattern};

/// Why anchor resolution stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Interrupt {
    /// A condition anchor did not match: the element (or, at the top, the patch) is skipped.
    Condition(String),
    /// A global anchor did not match: the whole patch is skipped.
    Global(String),
    /// The patch cannot be resolved against the resource.
    Failed(String),
}

/// Resolves the anchors of `patch` against `resource`, leaving a plain strategic merge patch.
pub(super) fn resolve(patch: &mut Value, resource: &Value) -> Result<(), Interrupt> {
    walk(patch, Some(resource))?;
    let Value::Object(patch) = patch else {
        return Err(Interrupt::Failed(
            "wrong node kind: the patch must be a map".to_owned(),
        ));
    };
    patch.retain(|key, value| {
        let is_condition = anchor_kind(key).is_some_and(is_condition_kind);
        !delete_anchors(value, is_condition)
    });
    Ok(())
}

fn anchor_kind(key: &str) -> Option<AnchorKind> {
    parse_anchor(key).map(|anchor| anchor.kind)
}

fn is_condition_kind(kind: AnchorKind) -> bool {
    matches!(kind, AnchorKind::Condition | AnchorKind::Global)
}

/// Anchors that take part in mutation; the others (`X()`, `=()`, `^()`) are plain keys here.
fn is_mutate_anchor(kind: AnchorKind) -> bool {
    is_condition_kind(kind) || kind == AnchorKind::AddIfNotPresent
}

fn walk(pattern: &mut Value, resource: Option<&Value>) -> Result<(), Interrupt> {
    match pattern {
        Value::Object(pattern) => walk_map(pattern, resource),
        Value::Array(pattern) if pattern.first().is_some_and(Value::is_object) => {
            walk_list_of_maps(pattern, resource)
        }
        _ => Ok(()),
    }
}

fn resource_field<'r>(resource: Option<&'r Value>, key: &str) -> Option<&'r Value> {
    resource?.as_object()?.get(key)
}

fn walk_map(pattern: &mut Map<String, Value>, resource: Option<&Value>) -> Result<(), Interrupt> {
    add_if_not_present(pattern, resource);
    check_conditions(pattern, resource, AnchorKind::Global).map_err(Interrupt::Global)?;
    check_conditions(pattern, resource, AnchorKind::Condition).map_err(Interrupt::Condition)?;
    for (key, value) in pattern.iter_mut() {
        if anchor_kind(key).is_some_and(is_mutate_anchor) {
            continue;
        }
        walk(value, resource_field(resource, key))?;
    }
    Ok(())
}

/// Drops the `+(key)` entries the resource already has and unwraps the others; returns how
/// many there were.
fn add_if_not_present(pattern: &mut Map<String, Value>, resource: Option<&Value>) -> usize {
    let anchored: Vec<(String, String)> = pattern
        .keys()
        .filter_map(|key| {
            let anchor = parse_anchor(key)?;
            (anchor.kind == AnchorKind::AddIfNotPresent)
                .then(|| (key.clone(), anchor.key.to_owned()))
        })
        .collect();
    for (anchored_key, key) in &anchored {
        let value = pattern.remove(anchored_key);
        if let Some(value) = value
            && resource_field(resource, key).is_none()
        {
            pattern.insert(key.clone(), value);
        }
    }
    anchored.len()
}

/// Checks the anchors of `kind` (conditions or globals) of a map against the resource.
fn check_conditions(
    pattern: &mut Map<String, Value>,
    resource: Option<&Value>,
    kind: AnchorKind,
) -> Result<(), String> {
    for (anchored_key, value) in pattern.iter_mut() {
        let Some(anchor) = parse_anchor(anchored_key).filter(|anchor| anchor.kind == kind) else {
            continue;
        };
        let Some(resource_value) = resource_field(resource, anchor.key) else {
            return Err(format!(
                "could not found \"{}\" key in the resource",
                anchor.key
            ));
        };
        // Upstream skips the check of a condition whose value holds `+()` anchors.
        if let Value::Object(value) = value
            && add_if_not_present(value, Some(resource_value)) > 0
        {
            continue;
        }
        match validate_pattern(&as_pattern_input(resource_value), &as_pattern_input(value)) {
            PatternOutcome::Pass => {}
            PatternOutcome::Fail { message, .. }
            | PatternOutcome::Error { message }
            | PatternOutcome::Skip { reason: message } => return Err(message),
        }
    }
    Ok(())
}

/// Upstream compares scalars of conditions by their YAML text: `3`, `"3"` and `3.0` differ
/// only as text.
fn as_pattern_input(value: &Value) -> Cow<'_, Value> {
    match value {
        Value::Object(_) | Value::Array(_) | Value::String(_) => Cow::Borrowed(value),
        Value::Number(number) => Cow::Owned(Value::String(number.to_string())),
        Value::Bool(flag) => Cow::Owned(Value::String(flag.to_string())),
        Value::Null => Cow::Owned(Value::String("null".to_owned())),
    }
}

/// A list whose first element is a map: each element with anchors is resolved against every
/// resource element; those that apply are appended, named after the resource element.
fn walk_list_of_maps(pattern: &mut Vec<Value>, resource: Option<&Value>) -> Result<(), Interrupt> {
    let resource_elements: &[Value] = match resource {
        None | Some(Value::Null) => &[],
        Some(Value::Array(elements)) => elements,
        Some(other) => {
            return Err(Interrupt::Failed(format!(
                "wrong node kind: expected a list in the resource but found {other}"
            )));
        }
    };
    let mut resolved_elements = Vec::new();
    for element in pattern.iter() {
        if !has_anchors(element, is_mutate_anchor) {
            continue;
        }
        let has_global = has_anchors(element, |kind| kind == AnchorKind::Global);
        // Upstream resolves one copy against every resource element in turn, so `+()` anchors
        // resolved for an earlier element stay resolved for the later ones.
        let mut candidate = element.clone();
        let mut global_passed = false;
        let mut global_failure = None;
        for resource_element in resource_elements {
            match walk(&mut candidate, Some(resource_element)) {
                Ok(()) if has_global => global_passed = true,
                Ok(()) => {
                    if let Some(named) = named_after(&candidate, resource_element)? {
                        resolved_elements.push(named);
                    }
                }
                Err(Interrupt::Condition(_)) => {}
                Err(Interrupt::Global(message)) => global_failure = Some(message),
                Err(failed) => return Err(failed),
            }
        }
        if resource.is_none() {
            match walk(&mut candidate, None) {
                Ok(()) => global_passed |= has_global,
                Err(Interrupt::Condition(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        if !global_passed && let Some(message) = global_failure {
            return Err(Interrupt::Global(message));
        }
    }
    pattern.extend(resolved_elements);
    Ok(())
}

/// A resolved list element, without its anchors and named after `resource_element`; `None`
/// when the resource element has no name or nothing but anchors is left.
fn named_after(candidate: &Value, resource_element: &Value) -> Result<Option<Value>, Interrupt> {
    let Some(name) = resource_element
        .get("name")
        .filter(|name| !is_nil_or_empty(name))
    else {
        return Ok(None);
    };
    let mut named = candidate.clone();
    if delete_anchors(&mut named, true) {
        return Ok(None);
    }
    let Value::Object(fields) = &mut named else {
        return Err(Interrupt::Failed(
            "failed to update name in pattern: the list element is not a map".to_owned(),
        ));
    };
    fields.insert("name".to_owned(), name.clone());
    Ok(Some(named))
}

/// kyaml's `IsNilOrEmpty`: `null`, `{}` or `[]` (an empty string is a value).
fn is_nil_or_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => false,
    }
}

/// Whether `node` holds an anchor `wanted` accepts anywhere; like upstream, a string value
/// written as a condition or global anchor counts too.
fn has_anchors(node: &Value, wanted: fn(AnchorKind) -> bool) -> bool {
    match node {
        Value::Object(fields) => fields.iter().any(|(key, value)| {
            anchor_kind(key).is_some_and(wanted)
                || (!is_nil_or_empty(value) && has_anchors(value, wanted))
        }),
        Value::Array(items) => items.iter().any(|item| has_anchors(item, wanted)),
        Value::String(text) => anchor_kind(text).is_some_and(is_condition_kind),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Removes the condition and global anchors below `node`; returns whether `node` itself must go
/// (it held only anchors, or is a scalar and `delete_scalar` is set).
fn delete_anchors(node: &mut Value, delete_scalar: bool) -> bool {
    match node {
        Value::Object(fields) => delete_anchors_in_map(fields),
        Value::Array(items) => {
            let was_empty = items.is_empty();
            items.retain_mut(|item| {
                !has_anchors(item, is_mutate_anchor) && !delete_anchors(item, false)
            });
            items.is_empty() && !was_empty
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => delete_scalar,
    }
}

fn delete_anchors_in_map(fields: &mut Map<String, Value>) -> bool {
    let mut kept_anchors = Vec::new();
    fields.retain(|key, value| {
        let Some(anchor) = parse_anchor(key).filter(|anchor| is_condition_kind(anchor.kind)) else {
            return true;
        };
        let keep = !delete_anchors(value, true);
        if keep {
            kept_anchors.push((key.clone(), anchor.key.to_owned()));
        }
        keep
    });
    for (anchored_key, key) in kept_anchors {
        if let Some(value) = fields.remove(&anchored_key) {
            fields.insert(key, value);
        }
    }
    fields.retain(|_, value| !delete_anchors(value, false));
    fields.is_empty()
}
