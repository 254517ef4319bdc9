//! `JSONPatch` mutations: the list of `JSONPatch{op, path, from, value}` an expression returns is
//! applied to the resource as RFC 6902 operations, with the behaviour of the JSON patch library
//! the Kubernetes admission plugin uses (evanphx/json-patch v4 with its defaults):
//!
//! - a negative array index counts from the end (for `add`, `-1` appends like `-`);
//! - `replace` of a missing object member sets it (only array indices must exist);
//! - `add` needs the parent of its path to exist, `remove` needs its target;
//! - a failing `test` discards the whole patch: the resource is left as it was, and that is not
//!   an error.
use serde_json::{Map, Value};

use crate::celpolicy::common::json_type;

/// An RFC 6902 operation.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Operation {
    op: String,
    path: String,
    from: Option<String>,
    value: Option<Value>,
}

/// Why a JSON patch could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum JsonPatchError {
    /// The expression's value is not a list of patch operations.
    #[error("type mismatch: JSONPatchType.expression should evaluate to array of JSONPatch: {0}")]
    Decode(String),
    /// An operation does not apply to the resource.
    #[error("JSON Patch: {0}")]
    Apply(String),
}

/// The operations of an expression's value (a list of `JSONPatch` objects).
pub(super) fn operations(value: Value) -> Result<Vec<Operation>, JsonPatchError> {
    let Value::Array(items) = value else {
        return Err(JsonPatchError::Decode(format!("got {}", json_type(&value))));
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Object(mut fields) = item else {
                return Err(JsonPatchError::Decode(format!(
                    "got an element of type {}",
                    json_type(&item)
                )));
            };
            Ok(Operation {
                op: string_field(&mut fields, "op")?.unwrap_or_default(),
                path: string_field(&mut fields, "path")?.unwrap_or_default(),
                from: string_field(&mut fields, "from")?.filter(|from| !from.is_empty()),
                value: fields.remove("value"),
            })
        })
        .collect()
}

fn string_field(
    fields: &mut Map<String, Value>,
    name: &str,
) -> Result<Option<String>, JsonPatchError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(JsonPatchError::Decode(format!(
            "field {name} is a {}, not a string",
            json_type(&other)
        ))),
    }
}

/// Applies `operations` to `document` in order: `Ok(None)` when a `test` failed (the patch is
/// discarded), else the patched document.
pub(super) fn apply(
    document: &Value,
    operations: Vec<Operation>,
) -> Result<Option<Value>, JsonPatchError> {
    let mut patched = document.clone();
    for operation in operations {
        match apply_operation(&mut patched, operation) {
            Ok(()) => {}
            Err(Failure::TestFailed) => return Ok(None),
            Err(Failure::Error(message)) => return Err(JsonPatchError::Apply(message)),
        }
    }
    Ok(Some(patched))
}

enum Failure {
    TestFailed,
    Error(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Error(message)
    }
}

fn apply_operation(document: &mut Value, operation: Operation) -> Result<(), Failure> {
    let Operation {
        op,
        path,
        from,
        value,
    } = operation;
    let value = value.unwrap_or(Value::Null);
    match op.as_str() {
        "add" => add(document, &path, value, "add"),
        "remove" => remove(document, &path).map(drop),
        "replace" => replace(document, &path, value),
        "move" => {
            let from = from.unwrap_or_default();
            if parent(document, &from)?.is_none() {
                return Err(missing("move", "from path", &from));
            }
            let moved = remove(document, &from)?;
            add(document, &path, moved, "move")
        }
        "copy" => {
            let from = from.unwrap_or_default();
            let copied =
                get(document, &from)?.ok_or_else(|| missing("copy", "from path", &from))?;
            add(document, &path, copied, "copy")
        }
        "test" => match get(document, &path)? {
            Some(current) if current == value => Ok(()),
            None if value.is_null() => Ok(()),
            _ => Err(Failure::TestFailed),
        },
        other => Err(Failure::Error(format!("Unexpected kind: {other}"))),
    }
}

fn missing(op: &str, what: &str, path: &str) -> Failure {
    Failure::Error(format!(
        "{op} operation does not apply: doc is missing {what}: \"{path}\": missing value"
    ))
}

/// The reference tokens of a JSON pointer (`~1` is `/`, `~0` is `~`).
fn tokens(path: &str) -> Result<Vec<String>, Failure> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(Failure::Error(format!("invalid JSON pointer: \"{path}\"")));
    };
    Ok(rest
        .split('/')
        .map(|token| token.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// An array index: negative indices count from the end; `None` when out of `0..length`.
fn array_index(token: &str, length: usize) -> Result<Option<usize>, Failure> {
    let index: i64 = token
        .parse()
        .map_err(|_| Failure::Error(format!("value was not a proper array index: '{token}'")))?;
    let length = i64::try_from(length).unwrap_or(i64::MAX);
    let index = if index < 0 { index + length } else { index };
    Ok((0..length)
        .contains(&index)
        .then(|| usize::try_from(index).ok())
        .flatten())
}

/// The container of the last token of `path` and that token, or `None` when the container
/// does not exist.
fn parent<'a>(
    document: &'a mut Value,
    path: &str,
) -> Result<Option<(&'a mut Value, String)>, Failure> {
    let mut tokens = tokens(path)?;
    let Some(last) = tokens.pop() else {
        return Ok(None);
    };
    let mut node = document;
    for token in tokens {
        node = match node {
            Value::Object(fields) => match fields.get_mut(&token) {
                Some(child) => child,
                None => return Ok(None),
            },
            Value::Array(items) => match array_index(&token, items.len())? {
                Some(index) => &mut items[index],
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
    }
    Ok(Some((node, last)))
}

/// The value at `path`: `None` for a missing object member (a missing array index is an
/// error, as upstream).
fn get(document: &mut Value, path: &str) -> Result<Option<Value>, Failure> {
    if path.is_empty() {
        return Ok(Some(document.clone()));
    }
    let Some((container, key)) = parent(document, path)? else {
        return Err(Failure::Error(format!(
            "doc is missing path: \"{path}\": missing value"
        )));
    };
    match container {
        Value::Object(fields) => Ok(fields.get(&key).cloned()),
        Value::Array(items) => match array_index(&key, items.len())? {
            Some(index) => Ok(Some(items[index].clone())),
            None => Err(invalid_index(&key)),
        },
        _ => Err(Failure::Error(format!(
            "doc is missing path: \"{path}\": missing value"
        ))),
    }
}

fn invalid_index(key: &str) -> Failure {
    Failure::Error(format!(
        "Unable to access invalid index: {key}: invalid index referenced"
    ))
}

fn add(document: &mut Value, path: &str, value: Value, op: &str) -> Result<(), Failure> {
    if path.is_empty() {
        *document = value;
        return Ok(());
    }
    let Some((container, key)) = parent(document, path)? else {
        return Err(missing(op, "path", path));
    };
    match container {
        Value::Object(fields) => {
            fields.insert(key, value);
            Ok(())
        }
        Value::Array(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            // Inserting makes the array one longer: `-1` is its new last position.
            match array_index(&key, items.len() + 1)? {
                Some(index) => {
                    items.insert(index, value);
                    Ok(())
                }
                None => Err(invalid_index(&key)),
            }
        }
        _ => Err(missing(op, "path", path)),
    }
}

fn remove(document: &mut Value, path: &str) -> Result<Value, Failure> {
    let Some((container, key)) = parent(document, path)? else {
        return Err(missing("remove", "path", path));
    };
    match container {
        Value::Object(fields) => fields.remove(&key).ok_or_else(|| {
            Failure::Error(format!(
                "error in remove for path: '{path}': Unable to remove nonexistent key: {key}: missing value"
            ))
        }),
        Value::Array(items) => match array_index(&key, items.len())? {
            Some(index) => Ok(items.remove(index)),
            None => Err(invalid_index(&key)),
        },
        _ => Err(missing("remove", "path", path)),
    }
}

fn replace(document: &mut Value, path: &str, value: Value) -> Result<(), Failure> {
    if path.is_empty() {
        *document = value;
        return Ok(());
    }
    let Some((container, key)) = parent(document, path)? else {
        return Err(missing("replace", "path", path));
    };
    match container {
        Value::Object(fields) => {
            fields.insert(key, value);
            Ok(())
        }
        Value::Array(items) => match array_index(&key, items.len())? {
            Some(index) => {
                items[index] = value;
                Ok(())
            }
            None => Err(invalid_index(&key)),
        },
        _ => Err(missing("replace", "path", path)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patch(document: Value, operations_json: Value) -> Result<Option<Value>, JsonPatchError> {
        apply(&document, operations(operations_json)?)
    }

    #[test]
    fn add_inserts_members_and_elements() {
        let document = json!({"spec": {"list": [1, 2]}});
        let patched = patch(
            document,
            json!([
                {"op": "add", "path": "/spec/name", "value": "x"},
                {"op": "add", "path": "/spec/list/0", "value": 0},
                {"op": "add", "path": "/spec/list/-", "value": 3},
                {"op": "add", "path": "/spec/list/-1", "value": 4},
                {"op": "add", "path": "/metadata", "value": {"a~b/c": 1}},
                {"op": "add", "path": "/metadata/a~0b~1c", "value": 2}
            ]),
        )
        .expect("applies");
        assert_eq!(
            patched,
            Some(json!({"spec": {"name": "x", "list": [0, 1, 2, 3, 4]},
                "metadata": {"a~b/c": 2}}))
        );
    }

    #[test]
    fn add_needs_the_parent_and_a_valid_index() {
        let error = patch(
            json!({}),
            json!([{"op": "add", "path": "/a/b", "value": 1}]),
        )
        .expect_err("missing parent");
        assert_eq!(
            error.to_string(),
            "JSON Patch: add operation does not apply: doc is missing path: \"/a/b\": missing value"
        );
        assert!(
            patch(
                json!({"l": [1]}),
                json!([{"op": "add", "path": "/l/3", "value": 1}])
            )
            .is_err()
        );
    }

    #[test]
    fn remove_needs_its_target() {
        let patched = patch(
            json!({"a": 1, "l": [1, 2, 3]}),
            json!([{"op": "remove", "path": "/a"}, {"op": "remove", "path": "/l/-1"}]),
        )
        .expect("applies");
        assert_eq!(patched, Some(json!({"l": [1, 2]})));
        let error = patch(json!({}), json!([{"op": "remove", "path": "/a"}])).expect_err("missing");
        assert!(
            error
                .to_string()
                .contains("Unable to remove nonexistent key: a")
        );
    }

    #[test]
    fn replace_sets_missing_members_but_not_missing_elements() {
        let patched = patch(
            json!({"l": [1]}),
            json!([
                {"op": "replace", "path": "/a", "value": 1},
                {"op": "replace", "path": "/l/0", "value": 2}
            ]),
        )
        .expect("applies");
        assert_eq!(patched, Some(json!({"a": 1, "l": [2]})));
        assert!(
            patch(
                json!({"l": []}),
                json!([{"op": "replace", "path": "/l/0", "value": 1}])
            )
            .is_err()
        );
    }

    #[test]
    fn move_and_copy() {
        let patched = patch(
            json!({"a": {"x": 1}, "b": {}}),
            json!([
                {"op": "copy", "from": "/a/x", "path": "/b/y"},
                {"op": "move", "from": "/a", "path": "/c"}
            ]),
        )
        .expect("applies");
        assert_eq!(patched, Some(json!({"b": {"y": 1}, "c": {"x": 1}})));
        assert!(
            patch(
                json!({}),
                json!([{"op": "move", "from": "/x", "path": "/y"}])
            )
            .is_err()
        );
    }

    #[test]
    fn a_failing_test_discards_the_patch() {
        let document = json!({"a": 1});
        assert_eq!(
            patch(
                document.clone(),
                json!([
                    {"op": "add", "path": "/b", "value": 2},
                    {"op": "test", "path": "/a", "value": 2}
                ])
            ),
            Ok(None)
        );
        assert_eq!(
            patch(
                document,
                json!([
                    {"op": "test", "path": "/a", "value": 1},
                    {"op": "test", "path": "/missing", "value": null},
                    {"op": "add", "path": "/b", "value": 2}
                ])
            ),
            Ok(Some(json!({"a": 1, "b": 2})))
        );
    }

    #[test]
    fn unknown_operations_and_bad_values_are_errors() {
        assert_eq!(
            patch(json!({}), json!([{"op": "merge", "path": "/a"}])),
            Err(JsonPatchError::Apply("Unexpected kind: merge".to_owned()))
        );
        assert!(matches!(
            operations(json!({"op": "add"})),
            Err(JsonPatchError::Decode(_))
        ));
        assert!(matches!(
            operations(json!([{"op": 1, "path": "/a"}])),
            Err(JsonPatchError::Decode(_))
        ));
    }
}
