//! `patchesJson6902`: RFC 6902 JSON patches, with the options upstream Kyverno passes to
//! evanphx/json-patch (`SupportNegativeIndices`, `AllowMissingPathOnRemove`,
//! `EnsurePathExistsOnAdd`):
//!
//! - a negative array index counts from the end (`-1` is the last element; for `add`, `-1`
//!   inserts at the end like `-`);
//! - `remove` of a path that does not exist does nothing;
//! - `add` creates the missing parents of its path: an array when the next token is an index
//!   (padded with `null`s up to it) or `-`, an object otherwise.
//!
//! Paths are resolved against the document here; the operations themselves are applied by the
//! `json-patch` crate.

use json_patch::jsonptr::{Pointer, PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation, RemoveOperation};
use serde_json::{Map, Value};

use super::MutateError;

/// The longest run of `null`s an `add` pads an array with to reach its index.
const MAX_PADDING: usize = 1024;

/// Parses `patchesJson6902`: a JSON array, or YAML (a text not starting with `[`).
pub(super) fn parse(patch_text: &str) -> Result<Vec<PatchOperation>, MutateError> {
    let decoded: Value = if patch_text.starts_with('[') {
        serde_json::from_str(patch_text)
            .map_err(|error| MutateError::DecodePatch(error.to_string()))?
    } else {
        serde_saphyr::from_str(patch_text)
            .map_err(|error| MutateError::DecodePatch(error.to_string()))?
    };
    let Value::Array(operations) = decoded else {
        return Err(MutateError::DecodePatch(
            "expected a list of operations".to_owned(),
        ));
    };
    operations
        .into_iter()
        .map(|operation| {
            serde_json::from_value(operation)
                .map_err(|error| MutateError::DecodePatch(error.to_string()))
        })
        .collect()
}

/// Applies `operations` to `doc` in order; stops at the first that does not apply.
pub(super) fn apply(doc: &mut Value, operations: Vec<PatchOperation>) -> Result<(), MutateError> {
    for (index, operation) in operations.into_iter().enumerate() {
        let path = operation.path().to_string();
        apply_operation(doc, operation).map_err(|reason| MutateError::ApplyPatch {
            index,
            path,
            reason,
        })?;
    }
    Ok(())
}

fn apply_operation(doc: &mut Value, operation: PatchOperation) -> Result<(), String> {
    let resolved = match operation {
        PatchOperation::Add(mut add) => {
            add.path = resolve(doc, &add.path, Target::InsertCreatingParents)?;
            PatchOperation::Add(add)
        }
        PatchOperation::Remove(remove) => match resolve_existing(doc, &remove.path)? {
            Some(path) => PatchOperation::Remove(RemoveOperation { path }),
            None => return Ok(()),
        },
        PatchOperation::Replace(mut replace) => {
            replace.path = resolve(doc, &replace.path, Target::Existing)?;
            PatchOperation::Replace(replace)
        }
        PatchOperation::Move(operation) => {
            // Like upstream, the destination is resolved once the value has been removed.
            let from = resolve(doc, &operation.from, Target::Existing)?;
            let value = doc.pointer(from.as_str()).cloned().ok_or_else(|| {
                format!("move operation does not apply: doc is missing from path: {from}")
            })?;
            run(doc, PatchOperation::Remove(RemoveOperation { path: from }))?;
            PatchOperation::Add(AddOperation {
                path: resolve(doc, &operation.path, Target::Insert)?,
                value,
            })
        }
        PatchOperation::Copy(mut copy) => {
            copy.from = resolve(doc, &copy.from, Target::Existing)?;
            copy.path = resolve(doc, &copy.path, Target::Insert)?;
            PatchOperation::Copy(copy)
        }
        PatchOperation::Test(mut test) => {
            test.path = resolve(doc, &test.path, Target::Existing)?;
            // Upstream passes a test for `null` on a missing path.
            if test.value.is_null() && doc.pointer(test.path.as_str()).is_none() {
                return Ok(());
            }
            PatchOperation::Test(test)
        }
    };
    run(doc, resolved)
}

fn run(doc: &mut Value, operation: PatchOperation) -> Result<(), String> {
    json_patch::patch(doc, std::slice::from_ref(&operation)).map_err(|error| error.kind.to_string())
}

/// What the last token of a path designates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// An existing value (`replace`, `test`, the `from` of `move` and `copy`).
    Existing,
    /// A position to insert at (the destination of `move` and `copy`).
    Insert,
    /// A position to insert at, creating the missing parents (`add`).
    InsertCreatingParents,
}

/// Go's `strconv.Atoi`, which upstream uses for array indices.
fn parse_index(token: &str) -> Option<i64> {
    token.parse().ok()
}

/// Resolves a possibly negative index against a length.
fn from_end(index: i64, len: usize) -> Option<usize> {
    if index >= 0 {
        usize::try_from(index).ok()
    } else {
        let len = i64::try_from(len).ok()?;
        usize::try_from(len + index).ok()
    }
}

/// Rewrites `path` for `doc`: negative indices become plain ones and, for
/// [`Target::InsertCreatingParents`], missing parents are created. Tokens that cannot be
/// resolved are kept, for the patch operation to report.
fn resolve(doc: &mut Value, path: &Pointer, target: Target) -> Result<PointerBuf, String> {
    let tokens: Vec<Token> = path.tokens().collect();
    let Some((last, parents)) = tokens.split_last() else {
        return Ok(PointerBuf::new());
    };
    let mut resolved = PointerBuf::new();
    let mut node = Some(doc);
    for (position, token) in parents.iter().enumerate() {
        node = match node {
            Some(current) => {
                let creating = (target == Target::InsertCreatingParents)
                    .then(|| tokens[position + 1].decoded());
                descend(current, token, creating.as_deref(), &mut resolved)?
            }
            None => {
                resolved.push_back(token);
                None
            }
        };
    }
    match (node, parse_index(&last.decoded())) {
        (Some(Value::Array(items)), Some(index)) => {
            let len = match target {
                Target::Existing => items.len(),
                Target::Insert | Target::InsertCreatingParents => items.len() + 1,
            };
            match from_end(index, len) {
                Some(index) => resolved.push_back(index),
                None => resolved.push_back(last),
            }
        }
        _ => resolved.push_back(last),
    }
    Ok(resolved)
}

/// Resolves the path of a `remove`: `None` when nothing is there.
fn resolve_existing(doc: &mut Value, path: &Pointer) -> Result<Option<PointerBuf>, String> {
    let resolved = resolve(doc, path, Target::Existing)?;
    let Some((parent, last)) = resolved.split_back() else {
        return Ok(Some(resolved));
    };
    let exists = match doc.pointer(parent.as_str()) {
        Some(Value::Object(fields)) => fields.contains_key(last.decoded().as_ref()),
        // A token that is no index is left for the operation to reject, as upstream.
        Some(Value::Array(items)) => match parse_index(&last.decoded()) {
            Some(index) => from_end(index, items.len()).is_some_and(|index| index < items.len()),
            None => true,
        },
        _ => false,
    };
    Ok(exists.then_some(resolved))
}

/// Steps from `node` into `token`, pushing the resolved token. With `creating` (the next token
/// of an `add` path), a missing child is created as that token requires.
fn descend<'d>(
    node: &'d mut Value,
    token: &Token,
    creating: Option<&str>,
    resolved: &mut PointerBuf,
) -> Result<Option<&'d mut Value>, String> {
    let key = token.decoded();
    match node {
        Value::Object(fields) => {
            if let Some(next) = creating
                && !fields.contains_key(key.as_ref())
            {
                fields.insert(key.clone().into_owned(), new_container(next)?);
            }
            resolved.push_back(token);
            Ok(fields.get_mut(key.as_ref()))
        }
        Value::Array(items) => {
            let Some(index) = parse_index(&key) else {
                resolved.push_back(token);
                return Ok(None);
            };
            match from_end(index, items.len()) {
                Some(position) if position < items.len() => {
                    resolved.push_back(position);
                    Ok(items.get_mut(position))
                }
                _ => {
                    let Some(next) = creating else {
                        resolved.push_back(token);
                        return Ok(None);
                    };
                    // Like an `add` at that index: a negative index counts from the end of
                    // the list as it will be, a larger one pads it with nulls.
                    let position = if index < 0 {
                        from_end(index, items.len() + 1)
                    } else {
                        usize::try_from(index)
                            .ok()
                            .filter(|position| *position <= items.len() + MAX_PADDING)
                    };
                    let Some(position) = position else {
                        return Err(format!("Unable to ensure path for index: {index}"));
                    };
                    if position > items.len() {
                        items.resize(position, Value::Null);
                    }
                    items.insert(position, new_container(next)?);
                    resolved.push_back(position);
                    Ok(items.get_mut(position))
                }
            }
        }
        _ => {
            resolved.push_back(token);
            Ok(None)
        }
    }
}

/// The container an `add` creates for a missing parent, given the token that follows it.
fn new_container(next: &str) -> Result<Value, String> {
    if next == "-" {
        return Ok(Value::Array(Vec::new()));
    }
    let Some(index) = parse_index(next) else {
        return Ok(Value::Object(Map::new()));
    };
    let padding = match index {
        -1 => 0,
        index if index < 0 => {
            return Err(format!(
                "Unable to ensure path for negative index other than -1: {index}"
            ));
        }
        index => usize::try_from(index)
            .ok()
            .filter(|padding| *padding <= MAX_PADDING)
            .ok_or_else(|| format!("Unable to ensure path for index: {index}"))?,
    };
    Ok(Value::Array(vec![Value::Null; padding]))
}
