//! The merge step of `patchStrategicMerge`, with the semantics of kustomize's kyaml merge that
//! upstream Kyverno uses (`merge2.Merge` with `ListIncreaseDirection: Prepend`):
//!
//! - maps merge recursively; `null` in the patch removes the field;
//! - scalars and lists without a merge strategy are replaced by the patch's value;
//! - lists with `patchStrategy: merge` (see [`merge_keys`](super::merge_keys)) merge element by
//!   element on their merge keys: the patch's elements come first, in patch order (merged with
//!   the resource's element of the same keys), followed by the resource's other elements;
//!   lists of scalars with that strategy (e.g. `finalizers`) become the union of both;
//! - `$patch: delete | replace | merge` in a map, or as a list element of its own, deletes,
//!   replaces or merges that map or list. kyaml supports no other directive (`$retainKeys`,
//!   `$setElementOrder/...` and `$deleteFromPrimitiveList/...` are ordinary keys to it).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::MutateError;
use super::merge_keys::{Schema, TypeSchema, schema_for_kind};

/// The key of the strategic merge patch directive.
const DIRECTIVE_KEY: &str = "$patch";

/// Merges `patch` (already free of Kyverno anchors) into `resource`.
pub(super) fn merge(resource: Value, patch: &Value) -> Result<Value, MutateError> {
    Ok(merge_value(Some(resource), patch, None)?.unwrap_or(Value::Null))
}

/// A strategic merge patch directive (`$patch: ...`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Directive {
    Delete,
    Replace,
    Merge,
}

impl Directive {
    fn parse(value: &Value) -> Result<Self, MutateError> {
        match value.as_str() {
            Some("delete") => Ok(Directive::Delete),
            Some("replace") => Ok(Directive::Replace),
            Some("merge") => Ok(Directive::Merge),
            _ => Err(MutateError::UnknownPatchStrategy(
                scalar_text(value).into_owned(),
            )),
        }
    }
}

/// The kind of a YAML node, as kyaml names it in its errors.
fn node_kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "MappingNode",
        Value::Array(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

/// Merges `patch` into `dest` (absent or `null` when the resource lacks the field). `None`
/// means the field must be removed.
fn merge_value(
    dest: Option<Value>,
    patch: &Value,
    schema: Option<Schema>,
) -> Result<Option<Value>, MutateError> {
    if patch.is_null() {
        return Ok(None);
    }
    let dest = dest.filter(|dest| !dest.is_null());
    if let Some(dest) = &dest
        && node_kind(dest) != node_kind(patch)
    {
        return Err(MutateError::KindMismatch {
            path: String::new(),
            expected: node_kind(dest),
            found: node_kind(patch),
        });
    }
    match patch {
        Value::Object(patch) => {
            let dest = match dest {
                Some(Value::Object(dest)) => Some(dest),
                _ => None,
            };
            merge_map(dest, patch, schema)
        }
        Value::Array(patch) => match schema {
            Some(Schema::MergeList { keys, element }) => {
                let dest = match dest {
                    Some(Value::Array(dest)) => Some(dest),
                    _ => None,
                };
                merge_list(dest, patch, keys, element)
            }
            _ => Ok(Some(Value::Array(patch.clone()))),
        },
        scalar => Ok(Some(scalar.clone())),
    }
}

/// The object schema of a map node: its field's schema, else (like kyaml) the built-in type
/// named by the node's own `apiVersion` and `kind`.
fn object_schema(
    schema: Option<Schema>,
    dest: Option<&Map<String, Value>>,
    patch: &Map<String, Value>,
) -> Option<&'static TypeSchema> {
    match schema {
        Some(Schema::Object(object)) => Some(object),
        Some(Schema::MergeList { .. }) => None,
        None => dest
            .into_iter()
            .chain(std::iter::once(patch))
            .find_map(|node| {
                let api_version = node.get("apiVersion")?.as_str()?;
                let kind = node.get("kind")?.as_str()?;
                schema_for_kind(api_version, kind)
            }),
    }
}

fn merge_map(
    dest: Option<Map<String, Value>>,
    patch: &Map<String, Value>,
    schema: Option<Schema>,
) -> Result<Option<Value>, MutateError> {
    let directive = patch.get(DIRECTIVE_KEY).map(Directive::parse).transpose()?;
    if directive == Some(Directive::Delete) {
        return Ok(None);
    }
    let object = object_schema(schema, dest.as_ref(), patch);
    // Like kyaml, an added or replaced map is the patch merged into itself, which drops its
    // nulls and resolves the directives nested in it.
    let mut merged = match dest {
        Some(dest) if directive != Some(Directive::Replace) => dest,
        _ => {
            let mut added = patch.clone();
            added.remove(DIRECTIVE_KEY);
            added
        }
    };
    for (key, value) in patch {
        if key == DIRECTIVE_KEY {
            continue;
        }
        let field_schema = object.and_then(|object| object.field(key));
        let current = merged.remove(key);
        if let Some(value) =
            merge_value(current, value, field_schema).map_err(|error| error.within(key))?
        {
            merged.insert(key.clone(), value);
        }
    }
    Ok(Some(Value::Object(merged)))
}

/// The `$patch` directive of a list: an element that is a map holding only `$patch`.
fn list_directive(patch: &[Value]) -> Result<Option<(usize, Directive)>, MutateError> {
    let Some(index) = patch.iter().position(|element| {
        element
            .as_object()
            .is_some_and(|element| element.contains_key(DIRECTIVE_KEY))
    }) else {
        return Ok(None);
    };
    match patch[index].as_object() {
        Some(element) if element.len() == 1 => match element.get(DIRECTIVE_KEY) {
            Some(value) => Ok(Some((index, Directive::parse(value)?))),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

fn merge_list(
    dest: Option<Vec<Value>>,
    patch: &[Value],
    keys: &'static [&'static str],
    element: Option<&'static TypeSchema>,
) -> Result<Option<Value>, MutateError> {
    let directive = list_directive(patch)?;
    let patch: Vec<&Value> = patch
        .iter()
        .enumerate()
        .filter(|(index, _)| directive.is_none_or(|(directive_index, _)| directive_index != *index))
        .map(|(_, element)| element)
        .collect();
    let dest = match (dest, directive.map(|(_, directive)| directive)) {
        (_, Some(Directive::Delete)) => return Ok(None),
        (Some(dest), None | Some(Directive::Merge)) => dest,
        _ => patch.iter().map(|element| (*element).clone()).collect(),
    };
    let merged = if keys.is_empty() {
        merge_scalar_list(dest, &patch)
    } else {
        KeyedMerge::new(dest, &patch, keys, element.map(Schema::Object)).run()?
    };
    Ok(Some(Value::Array(merged)))
}

/// The text kyaml compares for a scalar (`""` for anything else, as for a missing key).
fn scalar_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(text) => Cow::Borrowed(text),
        Value::Number(number) => Cow::Owned(number.to_string()),
        Value::Bool(flag) => Cow::Borrowed(if *flag { "true" } else { "false" }),
        Value::Null | Value::Array(_) | Value::Object(_) => Cow::Borrowed(""),
    }
}

/// Lists of scalars with the merge strategy: the union, the patch's values first.
fn merge_scalar_list(dest: Vec<Value>, patch: &[&Value]) -> Vec<Value> {
    let mut merged: Vec<Value> = Vec::with_capacity(dest.len() + patch.len());
    for element in patch.iter().map(|element| (*element).clone()).chain(dest) {
        if element.is_null() {
            continue;
        }
        let text = scalar_text(&element);
        if !merged.iter().any(|seen| scalar_text(seen) == text) {
            merged.push(element);
        }
    }
    merged
}

/// The merge key values of a list element, `""` where a key is missing.
fn key_values(element: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|key| {
            element
                .get(key)
                .map(|value| scalar_text(value).into_owned())
                .unwrap_or_default()
        })
        .collect()
}

/// How an element is matched against merge key values.
#[derive(Clone, Copy)]
enum KeyMatch {
    /// Every key is present with exactly that value (kyaml's element lookup).
    Exact,
    /// As `Exact`, except that an empty value only requires the key to be present (kyaml's
    /// element setter).
    Setter,
}

fn matches_keys(element: &Value, keys: &[&str], values: &[String], how: KeyMatch) -> bool {
    let Some(element) = element.as_object() else {
        return false;
    };
    keys.iter()
        .zip(values)
        .all(|(key, value)| match element.get(*key) {
            None => false,
            Some(_) if value.is_empty() && matches!(how, KeyMatch::Setter) => true,
            Some(field) => scalar_text(field) == value.as_str(),
        })
}

/// Two key tuples that differ only where one of them is empty denote the same element (e.g. a
/// container port given with and without its protocol); returns the completed tuple.
fn complete_tuple(first: &[String], second: &[String]) -> Option<Vec<String>> {
    let mut common = false;
    let mut merged = Vec::with_capacity(first.len());
    for (a, b) in first.iter().zip(second) {
        if a == b {
            common = true;
            merged.push(a.clone());
        } else if !a.is_empty() && !b.is_empty() {
            return None;
        } else if a.is_empty() {
            merged.push(b.clone());
        } else {
            merged.push(a.clone());
        }
    }
    common.then_some(merged)
}

/// One element of the merged list: a resource element (by index) or one the patch adds.
enum Item {
    Dest(usize),
    Added(Value),
}

/// The merge of a list with merge keys (kyaml's `setAssociativeSequenceElements`).
struct KeyedMerge<'p> {
    dest: Vec<Option<Value>>,
    patch: &'p [&'p Value],
    keys: &'static [&'static str],
    element: Option<Schema>,
    items: Vec<Item>,
}

impl<'p> KeyedMerge<'p> {
    fn new(
        dest: Vec<Value>,
        patch: &'p [&'p Value],
        keys: &'static [&'static str],
        element: Option<Schema>,
    ) -> Self {
        KeyedMerge {
            dest: dest.into_iter().map(Some).collect(),
            patch,
            keys,
            element,
            items: Vec::new(),
        }
    }

    fn item_value<'a>(&'a self, item: &'a Item) -> Option<&'a Value> {
        match item {
            Item::Dest(index) => self.dest.get(*index).and_then(Option::as_ref),
            Item::Added(value) => Some(value),
        }
    }

    /// The key tuples of all elements, the patch's first, without repeats.
    fn tuples(&self) -> Vec<Vec<String>> {
        let mut tuples: Vec<Vec<String>> = Vec::new();
        let elements = self.patch.iter().copied().chain(self.dest.iter().flatten());
        for element in elements {
            let tuple = key_values(element, self.keys);
            if !tuples.contains(&tuple) {
                tuples.push(tuple);
            }
        }
        if self.keys.len() > 1 {
            for i in 0..tuples.len() {
                let first = tuples[i].clone();
                for j in 0..tuples.len() {
                    if let Some(completed) = complete_tuple(&first, &tuples[j]) {
                        tuples[i] = completed.clone();
                        tuples[j] = completed;
                    }
                }
            }
        }
        tuples
    }

    /// The positions of the keys that some element gives a value (all keys when none does):
    /// the others take no part in matching.
    fn keys_in_use(&self, tuples: &[Vec<String>]) -> Vec<usize> {
        let used: Vec<usize> = (0..self.keys.len())
            .filter(|index| tuples.iter().any(|tuple| !tuple[*index].is_empty()))
            .collect();
        if used.is_empty() {
            (0..self.keys.len()).collect()
        } else {
            used
        }
    }

    /// Puts `item` in place of the items matching `keys`/`values`, or appends it.
    fn set_item(&mut self, item: Item, keys: &[&str], values: &[String]) {
        let positions: Vec<usize> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, existing)| {
                self.item_value(existing)
                    .is_some_and(|value| matches_keys(value, keys, values, KeyMatch::Setter))
            })
            .map(|(position, _)| position)
            .collect();
        match positions.split_first() {
            None => self.items.push(item),
            Some((first, rest)) => {
                for position in rest.iter().rev() {
                    self.items.remove(*position);
                }
                self.items[*first] = item;
            }
        }
    }

    fn run(mut self) -> Result<Vec<Value>, MutateError> {
        let tuples = self.tuples();
        let in_use = self.keys_in_use(&tuples);
        let keys: Vec<&'static str> = in_use.iter().map(|index| self.keys[*index]).collect();
        for tuple in &tuples {
            let values: Vec<String> = in_use.iter().map(|index| tuple[*index].clone()).collect();
            // An element without any merge key value cannot be matched: kyaml keeps such
            // resource elements at the end and drops such patch elements.
            let (lookup_keys, lookup_values): (Vec<&str>, Vec<String>) = keys
                .iter()
                .zip(&values)
                .filter(|(_, value)| !value.is_empty())
                .map(|(key, value)| (*key, value.clone()))
                .unzip();
            if lookup_keys.is_empty() {
                continue;
            }
            let dest_index = self.dest.iter().position(|element| {
                element.as_ref().is_some_and(|element| {
                    matches_keys(element, &lookup_keys, &lookup_values, KeyMatch::Exact)
                })
            });
            let patch_element = self.patch.iter().copied().find(|element| {
                matches_keys(element, &lookup_keys, &lookup_values, KeyMatch::Exact)
            });
            let current = dest_index.and_then(|index| self.dest[index].take());
            let merged = match patch_element {
                Some(patch_element) => {
                    let base = current.or_else(|| Some(patch_element.clone()));
                    merge_value(base, patch_element, self.element)?
                }
                None => current,
            };
            match merged {
                Some(mut merged) if !is_empty(&merged) => {
                    if let Some(merged) = merged.as_object_mut() {
                        for (key, value) in keys.iter().zip(&values) {
                            if !value.is_empty() && !merged.contains_key(*key) {
                                merged.insert((*key).to_owned(), Value::String(value.clone()));
                            }
                        }
                    }
                    let item = match dest_index {
                        Some(index) => {
                            self.dest[index] = Some(merged);
                            Item::Dest(index)
                        }
                        None => Item::Added(merged),
                    };
                    self.set_item(item, &keys, &values);
                }
                _ => {
                    for element in &mut self.dest {
                        if element.as_ref().is_some_and(|element| {
                            matches_keys(element, &keys, &values, KeyMatch::Setter)
                        }) {
                            *element = None;
                        }
                    }
                }
            }
        }
        self.append_remaining(&keys);
        Ok(self.into_values())
    }

    /// Resource elements that no key tuple reached (they lack merge keys) go at the end.
    fn append_remaining(&mut self, keys: &[&'static str]) {
        let placed: Vec<usize> = self
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Dest(index) => Some(*index),
                Item::Added(_) => None,
            })
            .collect();
        for index in 0..self.dest.len() {
            let Some(element) = &self.dest[index] else {
                continue;
            };
            if placed.contains(&index) {
                continue;
            }
            if keys.iter().all(|key| element.get(key).is_some()) {
                let values = key_values(element, keys);
                self.set_item(Item::Dest(index), keys, &values);
            } else {
                self.items.push(Item::Dest(index));
            }
        }
    }

    fn into_values(mut self) -> Vec<Value> {
        let items = std::mem::take(&mut self.items);
        items
            .into_iter()
            .filter_map(|item| match item {
                Item::Dest(index) => self.dest.get_mut(index).and_then(Option::take),
                Item::Added(value) => Some(value),
            })
            .collect()
    }
}

/// kyaml drops list elements that merge into nothing (`null` or `{}`).
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}
