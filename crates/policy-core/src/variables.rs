//! Kyverno's variable substitution: `{{ expression }}` JMESPath variables and `$(path)`
//! references inside any string (and map key) of a JSON document such as a rule or a pattern.
//!
//! - A string that is exactly one `{{ }}` takes the value's own JSON type (`"{{ request.object.spec.replicas }}"`
//!   becomes the number `3`); elsewhere values are written into the string, strings as they are
//!   and anything else as compact JSON (`null`, `3`, `{"a":"b"}`).
//! - Variables nest and are resolved innermost first:
//!   `{{ images.containers."{{ element.name }}".tag }}`.
//! - `\{{ ... }}` and `\$( ... )` are escapes: the backslash is dropped and the text kept.
//! - `{{ @ }}` is the resource value at the same place as the string: its JSON pointer with the
//!   first two segments (e.g. `validate/pattern`, after any `foreach`) dropped, under `target`
//!   when the context has one, else under `request.object`.
//! - On a `DELETE` request, `request.object` in variables reads `request.oldObject`.
//! - `$(./../path)` references read another value of the same document: a path relative to the
//!   string's own location (anchors such as `(name)` ignored), optionally after an operator
//!   (`$(<=./../../limits/memory)` gives `<=` followed by the value).
//!
//! Substitution rebuilds only what changes: untouched parts of the document are not copied.

use crate::gopath;
use crate::jmespath::{JmesPathError, Runtime, json_string};
use regex::Regex;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::LazyLock;

/// Why substitution failed; messages are worded like upstream's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VariableError {
    /// A variable points into a missing field. Upstream reports JMESPath's own error here.
    #[error("Unknown key \"{key}\" in path")]
    NotFound {
        /// The variable's expression.
        variable: String,
        /// JSON pointer of the string holding the variable.
        path: String,
        /// The missing field.
        key: String,
    },
    /// A variable's expression is invalid or its evaluation failed.
    #[error("failed to resolve {variable} at path {path}: {source}")]
    Resolution {
        /// The variable's expression.
        variable: String,
        /// JSON pointer of the string holding the variable.
        path: String,
        /// The JMESPath error.
        source: JmesPathError,
    },
    /// Values kept producing new variables: substitution stopped after too many passes.
    #[error("variables at path {path} still unresolved after {passes} substitution passes: {text}")]
    TooManyPasses {
        /// JSON pointer of the string holding the variables.
        path: String,
        /// How many passes were made.
        passes: usize,
        /// The string's text when substitution stopped (shortened).
        text: String,
    },
    /// Substituted values made the string grow past the size limit.
    #[error("substituting variables at path {path} makes the string longer than {limit} bytes")]
    TooLarge {
        /// JSON pointer of the string holding the variables.
        path: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// A map key became something other than a string.
    #[error("expected string after substituting variables in key \"{key}\"")]
    NonStringKey {
        /// The key as written.
        key: String,
    },
    /// A `$( )` reference is malformed or its operator does not fit the value it points to.
    #[error("failed to resolve {reference} at path {path}: {message}")]
    Reference {
        /// The reference as written.
        reference: String,
        /// JSON pointer of the string holding the reference.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A `$( )` reference points to nothing.
    #[error("got nil resolved variable {reference} at path {path}: <nil>")]
    UnresolvedReference {
        /// The reference as written.
        reference: String,
        /// JSON pointer of the string holding the reference.
        path: String,
    },
    /// A `$( )` reference without operator points to a value that is not a string.
    #[error("NotResolvedReferenceErr,reference {reference} not resolved at path {path}")]
    NonStringReference {
        /// The reference as written.
        reference: String,
        /// JSON pointer of the string holding the reference.
        path: String,
    },
}

impl VariableError {
    /// Whether the failure is a variable pointing into a missing field.
    pub fn is_not_found(&self) -> bool {
        matches!(self, VariableError::NotFound { .. })
    }
}

/// The data variables are resolved against: one JSON object whose top-level keys are
/// `request`, `element`, `elementIndex`, context entry names, `images`, and so on.
#[derive(Debug, Clone)]
pub struct Context {
    data: Value,
    runtime: Runtime,
}

impl Default for Context {
    fn default() -> Self {
        Context::new()
    }
}

impl Context {
    /// An empty context evaluating with the system clock.
    pub fn new() -> Context {
        Context {
            data: Value::Object(Map::new()),
            runtime: Runtime::default(),
        }
    }

    /// This context, evaluating with `runtime` (e.g. a fixed clock for `time_now()`).
    pub fn with_runtime(mut self, runtime: Runtime) -> Context {
        self.runtime = runtime;
        self
    }

    /// Sets the value at a dotted `path` (`request.object`, `serviceAccountName`), creating
    /// intermediate objects and replacing whatever was there. A segment in double quotes may
    /// contain dots (`metadata.annotations."example.com/owner"`).
    pub fn set(&mut self, path: &str, value: Value) {
        let mut target = &mut self.data;
        for segment in path_segments(path) {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let Value::Object(map) = target else { return };
            target = map.entry(segment).or_insert(Value::Null);
        }
        *target = value;
    }

    /// A copy of this context with `value` at the dotted `path`, as [`Context::set`] sets it,
    /// that does not copy the value `path` held (a copy and `set` would copy it, then drop it).
    pub fn with(&self, path: &str, value: Value) -> Context {
        Context {
            data: replaced(&self.data, &path_segments(path), value),
            runtime: self.runtime,
        }
    }

    /// Sets the current `foreach` element as upstream does: `element` and `elementIndex`, plus
    /// `element<nesting>` and `elementIndex<nesting>` for the nesting level (0 for the outermost).
    pub fn set_element(&mut self, element: Value, index: usize, nesting: usize) {
        self.set(&format!("element{nesting}"), element.clone());
        self.set("element", element);
        self.set(&format!("elementIndex{nesting}"), Value::from(index));
        self.set("elementIndex", Value::from(index));
    }

    /// The whole context document.
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// Evaluates a JMESPath expression against the context.
    pub fn query(&self, expression: &str) -> Result<Value, JmesPathError> {
        self.runtime.search(expression.trim(), &self.data)
    }

    fn is_delete_request(&self) -> bool {
        self.data
            .pointer("/request/operation")
            .is_some_and(|operation| operation == "DELETE")
    }
}

/// A copy of `data` with `value` at `segments`, intermediate objects created as [`Context::set`]
/// creates them; what `value` replaces is not copied.
fn replaced(data: &Value, segments: &[&str], value: Value) -> Value {
    let Some((segment, rest)) = segments.split_first() else {
        return value;
    };
    let mut value = Some(value);
    let mut copy = Map::new();
    if let Value::Object(map) = data {
        for (key, item) in map {
            let item = match value.take_if(|_| key == segment) {
                Some(value) => replaced(item, rest, value),
                None => item.clone(),
            };
            copy.insert(key.clone(), item);
        }
    }
    if let Some(value) = value {
        copy.insert((*segment).to_owned(), replaced(&Value::Null, rest, value));
    }
    Value::Object(copy)
}

/// The segments of a dotted path; double quotes group a segment and are dropped.
fn path_segments(path: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"')
            && let Some(end) = quoted.find('"')
        {
            segments.push(&quoted[..end]);
            rest = quoted[end + 1..]
                .strip_prefix('.')
                .unwrap_or(&quoted[end + 1..]);
            continue;
        }
        match rest.split_once('.') {
            Some((segment, tail)) => {
                segments.push(segment);
                rest = tail;
            }
            None => {
                segments.push(rest);
                rest = "";
            }
        }
    }
    segments
}

/// Substitutes `$( )` references, then `{{ }}` variables, throughout `document` (rooted at the
/// JSON pointer `""`).
pub fn substitute(document: &Value, context: &Context) -> Result<Value, VariableError> {
    substitute_at(document, "", context)
}

/// Like [`substitute`] for a document found at JSON pointer `path` inside a rule (e.g.
/// `/validate/pattern`): the path is used for `{{ @ }}` and in error messages.
pub fn substitute_at(
    document: &Value,
    path: &str,
    context: &Context,
) -> Result<Value, VariableError> {
    let mut location = path.to_owned();
    let referenced = walk(document, &mut location, &mut |text, at| {
        substitute_references(text, at, path, document)
    })?;
    let delete_request = context.is_delete_request();
    let mut location = path.to_owned();
    let substituted = walk(&referenced, &mut location, &mut |text, at| {
        substitute_variables(text, at, context, delete_request)
    })?;
    Ok(substituted.into_owned())
}

/// Most passes over one string: each pass resolves the variables that the previous one's values
/// brought in.
const MAX_SUBSTITUTION_PASSES: usize = 32;

/// Longest string substitution may produce: values holding variables can otherwise double the
/// text at every pass.
const MAX_SUBSTITUTED_LEN: usize = 1 << 20;

/// Substitutes the `{{ }}` variables of a single string (there is no document for `$( )`
/// references to point into). The result is typed when the string is exactly one variable.
pub fn substitute_str(text: &str, context: &Context) -> Result<Value, VariableError> {
    Ok(
        substitute_variables(text, "", context, context.is_delete_request())?
            .unwrap_or_else(|| Value::String(text.to_owned())),
    )
}

/// Rewrites one string; `None` when it stays as it is.
type LeafAction<'a> = dyn FnMut(&str, &str) -> Result<Option<Value>, VariableError> + 'a;

/// Applies `action` to every string and map key of `value` (`location` is the JSON pointer of
/// `value`), descending into structured values an action produces, as upstream's traversal does.
fn walk<'v>(
    value: &'v Value,
    location: &mut String,
    action: &mut LeafAction<'_>,
) -> Result<Cow<'v, Value>, VariableError> {
    match value {
        Value::String(text) => match action(text, location)? {
            None => Ok(Cow::Borrowed(value)),
            Some(replaced @ (Value::Array(_) | Value::Object(_))) => {
                Ok(Cow::Owned(walk(&replaced, location, action)?.into_owned()))
            }
            Some(replaced) => Ok(Cow::Owned(replaced)),
        },
        Value::Array(items) => {
            let mut rebuilt: Option<Vec<Value>> = None;
            for (index, item) in items.iter().enumerate() {
                let length = location.len();
                let _ = write!(location, "/{index}");
                let result = walk(item, location, action);
                location.truncate(length);
                match (result?, rebuilt.as_mut()) {
                    (Cow::Owned(new), Some(list)) => list.push(new),
                    (Cow::Owned(new), None) => {
                        let mut list = items[..index].to_vec();
                        list.push(new);
                        rebuilt = Some(list);
                    }
                    (Cow::Borrowed(same), Some(list)) => list.push(same.clone()),
                    (Cow::Borrowed(_), None) => {}
                }
            }
            Ok(rebuilt.map_or(Cow::Borrowed(value), |list| Cow::Owned(Value::Array(list))))
        }
        Value::Object(map) => {
            let mut rebuilt: Option<Map<String, Value>> = None;
            for (index, (key, item)) in map.iter().enumerate() {
                let new_key = match action(key, location)? {
                    None => None,
                    Some(Value::String(new_key)) => Some(new_key),
                    Some(_) => return Err(VariableError::NonStringKey { key: key.clone() }),
                };
                let length = location.len();
                location.push('/');
                location.push_str(key);
                let result = walk(item, location, action);
                location.truncate(length);
                let new_item = result?;
                let changed = new_key.is_some() || matches!(new_item, Cow::Owned(_));
                if changed && rebuilt.is_none() {
                    rebuilt = Some(
                        map.iter()
                            .take(index)
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    );
                }
                if let Some(entries) = rebuilt.as_mut() {
                    entries.insert(
                        new_key.unwrap_or_else(|| key.clone()),
                        new_item.into_owned(),
                    );
                }
            }
            Ok(rebuilt.map_or(Cow::Borrowed(value), |entries| {
                Cow::Owned(Value::Object(entries))
            }))
        }
        _ => Ok(Cow::Borrowed(value)),
    }
}

/// Patterns upstream uses; built once.
struct Patterns {
    /// A `{{ }}` not preceded by a backslash (group 1: the preceding character, group 2: it).
    variable: Regex,
    /// An escaped `\{{ }}`.
    escaped_variable: Regex,
    /// A `$( )` reference not preceded by a backslash.
    reference: Regex,
    /// An escaped `\$( )`.
    escaped_reference: Regex,
}

/// The patterns; constants that compile (a test checks it), so `None` never happens.
static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| {
    Some(Patterns {
        variable: Regex::new(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})").ok()?,
        escaped_variable: Regex::new(r"\\\{\{(?:\{[^{}]*\}|[^{}])*\}\}").ok()?,
        reference: Regex::new(r"^\$\(.[^ ]*\)|[^\\]\$\(.[^ ]*\)").ok()?,
        escaped_reference: Regex::new(r"\\\$\(.[^ ]*\)").ok()?,
    })
});

/// Resolves the `{{ }}` variables of `text`, innermost first, until none is left.
fn substitute_variables(
    text: &str,
    location: &str,
    context: &Context,
    delete_request: bool,
) -> Result<Option<Value>, VariableError> {
    let Some(patterns) = PATTERNS.as_ref().filter(|_| text.contains("{{")) else {
        return Ok(None);
    };
    let mut value = text.to_owned();
    for pass in 0.. {
        // A resolved value may hold variables itself, which the next pass resolves (as
        // upstream does); a value that reproduces its own variable would loop forever.
        if pass == MAX_SUBSTITUTION_PASSES {
            return Err(VariableError::TooManyPasses {
                path: location.to_owned(),
                passes: pass,
                text: value.chars().take(200).collect(),
            });
        }
        // One sweep per pass: each variable is replaced where it was found (linear in the
        // text; replacing occurrence by occurrence was quadratic on texts that values inflate).
        let mut next = String::with_capacity(value.len());
        let mut copied = 0;
        for captures in patterns.variable.captures_iter(&value) {
            let (Some(whole), Some(variable_match)) = (captures.get(0), captures.get(2)) else {
                continue;
            };
            let prefix = captures.get(1).map_or("", |m| m.as_str());
            let variable_text = variable_match.as_str();
            let variable = expression_of(variable_text, location, context, delete_request);
            let resolved = match context.query(&variable) {
                Ok(resolved) => resolved,
                Err(JmesPathError::NotFound(key)) => {
                    return Err(VariableError::NotFound {
                        variable,
                        path: location.to_owned(),
                        key,
                    });
                }
                Err(source) => {
                    return Err(VariableError::Resolution {
                        variable,
                        path: location.to_owned(),
                        source,
                    });
                }
            };
            if value == variable_text {
                return Ok(Some(resolved));
            }
            next.push_str(&value[copied..whole.start()]);
            next.push_str(prefix);
            match resolved {
                Value::String(text) => next.push_str(&text),
                other => next.push_str(&json_string(&other)),
            }
            copied = whole.end();
            if next.len() > MAX_SUBSTITUTED_LEN {
                return Err(VariableError::TooLarge {
                    path: location.to_owned(),
                    limit: MAX_SUBSTITUTED_LEN,
                });
            }
        }
        if copied == 0 {
            break;
        }
        next.push_str(&value[copied..]);
        let original = std::mem::replace(&mut value, next);
        if value == original {
            break;
        }
    }
    Ok(Some(Value::String(unescape(
        &patterns.escaped_variable,
        &value,
    ))))
}

/// The JMESPath expression of a `{{ }}` variable, with `@` and `DELETE` rewrites applied.
fn expression_of(
    variable_text: &str,
    location: &str,
    context: &Context,
    delete_request: bool,
) -> String {
    let mut variable = variable_text
        .replace("{{", "")
        .replace("}}", "")
        .trim()
        .to_owned();
    if variable == "@" {
        let prefix = if context.query("target").is_ok() {
            "target"
        } else {
            "request.object"
        };
        variable = current_value_path(location, prefix);
    }
    if delete_request {
        variable = variable.replace("request.object", "request.oldObject");
    }
    variable
}

/// The JMESPath of the resource value at the same place as `location` in a rule: segments after
/// any `foreach`, minus the first two (`validate/pattern`, `mutate/patchStrategicMerge`), under
/// `prefix`.
fn current_value_path(location: &str, prefix: &str) -> String {
    let segments: Vec<&str> = location.split('/').filter(|s| !s.is_empty()).collect();
    let after_foreach = segments
        .iter()
        .position(|segment| *segment == "foreach")
        .map_or(&segments[..], |index| &segments[index + 1..]);
    let resource_segments = if after_foreach.len() > 2 {
        &after_foreach[2..]
    } else {
        &[]
    };
    let mut path = prefix.to_owned();
    for segment in resource_segments {
        if segment.parse::<u64>().is_ok() {
            let _ = write!(path, "[{segment}]");
        } else if segment
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '(')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '(' || c == ')')
        {
            path.push('.');
            path.push_str(segment);
        } else {
            path.push('.');
            path.push_str(&serde_json::to_string(segment).unwrap_or_default());
        }
    }
    path
}

/// Drops the backslash of every escaped match.
fn unescape(escaped: &Regex, value: &str) -> String {
    let mut result = value.to_owned();
    let matches: Vec<String> = escaped
        .find_iter(value)
        .map(|m| m.as_str().to_owned())
        .collect();
    for found in matches {
        result = result.replace(&found, &found[1..]);
    }
    result
}

/// Resolves the `$( )` references of `text` against `document`, which sits at JSON pointer
/// `base` of the rule (references are paths from the rule's root).
fn substitute_references(
    text: &str,
    location: &str,
    base: &str,
    document: &Value,
) -> Result<Option<Value>, VariableError> {
    let Some(patterns) = PATTERNS.as_ref().filter(|_| text.contains("$(")) else {
        return Ok(None);
    };
    let mut value = text.to_owned();
    let found: Vec<String> = patterns
        .reference
        .find_iter(text)
        .map(|m| m.as_str().to_owned())
        .collect();
    for whole in found {
        let (prefix, reference) = if whole.starts_with("$(") {
            ("", whole.as_str())
        } else {
            whole.split_at(whole.char_indices().nth(1).map_or(0, |(i, _)| i))
        };
        let Some(resolved) = resolve_reference(reference, location, base, document)? else {
            return Err(VariableError::UnresolvedReference {
                reference: reference.to_owned(),
                path: location.to_owned(),
            });
        };
        let Value::String(resolved) = resolved else {
            return Err(VariableError::NonStringReference {
                reference: reference.to_owned(),
                path: location.to_owned(),
            });
        };
        value = value.replacen(&whole, &format!("{prefix}{resolved}"), 1);
    }
    Ok(Some(Value::String(unescape(
        &patterns.escaped_reference,
        &value,
    ))))
}

/// The value a reference points to: the raw value, or with an operator, the operator followed
/// by the value as text.
fn resolve_reference(
    reference: &str,
    location: &str,
    base: &str,
    document: &Value,
) -> Result<Option<Value>, VariableError> {
    let error = |message: &str| VariableError::Reference {
        reference: reference.to_owned(),
        path: location.to_owned(),
        message: message.to_owned(),
    };
    let inner = reference.trim_matches(|c| matches!(c, '$' | '(' | ')'));
    let operator = reference_operator(inner);
    let target = &inner[operator.len()..];
    if target.is_empty() {
        return Err(error("expected path, found empty reference"));
    }
    let absolute = if target.starts_with('/') {
        gopath::clean(target)
    } else {
        gopath::clean(&format!("/{location}/{target}"))
    };
    let within_document = if base.is_empty() {
        Some(absolute.as_str())
    } else {
        absolute
            .strip_prefix(base)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let Some(found) = within_document.and_then(|path| lookup_ignoring_anchors(document, path))
    else {
        return Ok(None);
    };
    if operator.is_empty() {
        return Ok(Some(found.clone()));
    }
    let text = match found {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_i64().map_or_else(
            || format!("{:.6}", n.as_f64().unwrap_or(0.0)),
            |i| format!("{i}.000000"),
        ),
        other => {
            return Err(error(&format!(
                "incorrect expression: operator {operator} does not match with value {}",
                json_string(other)
            )));
        }
    };
    Ok(Some(Value::String(format!("{operator}{text}"))))
}

/// The operator a reference starts with, as upstream detects pattern operators (including its
/// reading of any `-` as a range operator).
fn reference_operator(reference: &str) -> &'static str {
    if reference.len() < 2 {
        return "";
    }
    for operator in [">=", "<=", ">", "<", "!"] {
        if reference.starts_with(operator) {
            return operator;
        }
    }
    if reference.contains("!-") {
        "!-"
    } else if reference.contains('-') {
        "-"
    } else {
        ""
    }
}

/// The leaf at a slash `path` of `document`, where a key like `(name)` or `^(name)` (a pattern
/// anchor) matches the path segment `name`.
fn lookup_ignoring_anchors<'d>(document: &'d Value, path: &str) -> Option<&'d Value> {
    let mut current = document;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        current = match current {
            Value::Object(map) => map
                .iter()
                .find(|(key, _)| strip_anchor(key) == segment)
                .map(|(_, value)| value)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!current.is_object() && !current.is_array()).then_some(current)
}

/// A pattern key without its anchor: `(name)`, `^(name)`, `=(name)`, `+(name)`, `X(name)`,
/// `<(name)` all give `name`.
fn strip_anchor(key: &str) -> &str {
    let body = key.strip_prefix(['^', '=', '+', 'X', '<']).unwrap_or(key);
    body.strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .filter(|name| !name.is_empty())
        .unwrap_or(key)
}

#[cfg(test)]
mod tests {

    #[test]
    fn values_that_reproduce_their_variables_do_not_loop_forever() {
        let mut context = Context::new();
        context.set("note", Value::from("{{ note }}"));
        let stays = substitute(&json!("note: {{ note }}"), &context).expect("stops");
        assert_eq!(stays, json!("note: {{ note }}"));
        context.set("grow", Value::from("{{ grow }}x"));
        let error = substitute(&json!("a {{ grow }}"), &context).expect_err("grows forever");
        assert!(
            matches!(error, VariableError::TooManyPasses { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_copy_with_a_value_is_the_copy_with_the_value_set() {
        let mut base = Context::new();
        base.set(
            "request",
            json!({"object": {"spec": {"a": 1}}, "operation": "CREATE"}),
        );
        base.set("n", json!(3));
        for (path, value) in [
            ("request.object", json!({"spec": {"b": 2}})),
            ("request.object.spec.a", json!(5)),
            ("request.new.deep", json!("x")),
            ("n.through", json!(true)),
            (r#"request."a.b""#, json!(null)),
            ("fresh", json!([1])),
        ] {
            let mut expected = base.clone();
            expected.set(path, value.clone());
            assert_eq!(base.with(path, value).data(), expected.data(), "{path}");
        }
    }

    #[test]
    fn set_keeps_quoted_segments_whole() {
        let mut context = Context::new();
        context.set(
            r#"request.object.metadata.annotations."example.com/owner""#,
            Value::from("a"),
        );
        context.set("plain.key", Value::from(1));
        assert_eq!(
            context.data()["request"]["object"]["metadata"]["annotations"]["example.com/owner"],
            "a"
        );
        assert_eq!(context.data()["plain"]["key"], 1);
        assert_eq!(path_segments(r#"a."b.c".d"#), ["a", "b.c", "d"]);
    }
    use super::*;
    use serde_json::json;

    fn context() -> Context {
        let mut context = Context::new();
        context.set(
            "request.object",
            json!({
                "metadata": {"name": "temp", "namespace": "n1", "annotations": {"test": "name", "targetnew": "target", "target": "nested"}},
                "spec": {"kind": "foo", "port": "443", "replicas": 2, "list": ["a", "b"], "map": {"k": "v"}, "nothing": null}
            }),
        );
        context.set("request.operation", json!("CREATE"));
        context
    }

    #[test]
    fn patterns_compile() {
        assert!(PATTERNS.is_some());
    }

    #[test]
    fn whole_string_variables_keep_their_type() {
        let context = context();
        for (text, expected) in [
            ("{{request.object.spec.replicas}}", json!(2)),
            ("{{ request.object.spec.list }}", json!(["a", "b"])),
            ("{{request.object.spec.map}}", json!({"k": "v"})),
            ("{{request.object.spec.nothing}}", json!(null)),
            ("{{ request.object.spec.replicas == `2` }}", json!(true)),
        ] {
            assert_eq!(substitute_str(text, &context), Ok(expected), "{text}");
        }
    }

    #[test]
    fn embedded_variables_are_stringified_like_go() {
        let context = context();
        for (text, expected) in [
            ("ns-owner-{{request.object.metadata.name}}", "ns-owner-temp"),
            (
                "content = {{ request.object.spec.replicas }}",
                "content = 2",
            ),
            (
                "content = {{ request.object.spec.nothing }}",
                "content = null",
            ),
            (
                "content is {{ request.object.spec.map }}",
                "content is {\"k\":\"v\"}",
            ),
            (
                "{{request.object.metadata.name}}-{{request.object.metadata.namespace}}",
                "temp-n1",
            ),
            ("no variables", "no variables"),
        ] {
            assert_eq!(
                substitute_str(text, &context),
                Ok(json!(expected)),
                "{text}"
            );
        }
    }

    #[test]
    fn nested_variables_resolve_innermost_first() {
        let context = context();
        assert_eq!(
            substitute_str(
                "{{request.object.metadata.{{request.object.metadata.annotations.test}}}}",
                &context
            ),
            Ok(json!("temp"))
        );
        assert_eq!(
            substitute_str(
                "{{ regex_match('(443)', '{{request.object.spec.port}}') }}",
                &context
            ),
            Ok(json!(true))
        );
    }

    #[test]
    fn escaped_variables_stay_literal() {
        let context = context();
        assert_eq!(
            substitute_str(
                "\\{{request.object.metadata.annotations.{{request.object.metadata.annotations.targetnew}}}}",
                &context
            ),
            Ok(json!("{{request.object.metadata.annotations.target}}"))
        );
    }

    #[test]
    fn delete_requests_read_the_old_object() {
        let mut context = Context::new();
        context.set("request.operation", json!("DELETE"));
        context.set("request.object.metadata.annotations.target", json!("foo"));
        context.set(
            "request.oldObject.metadata.annotations.target",
            json!("bar"),
        );
        assert_eq!(
            substitute_str("{{request.object.metadata.annotations.target}}", &context),
            Ok(json!("bar"))
        );
    }

    #[test]
    fn at_sign_is_the_value_at_the_same_place() {
        let context = context();
        let rule = json!({"mutate": {"overlay": {"spec": {"kind": "{{@}}", "port": "{{ regex_match('(443)', '{{@}}') }}"}}}});
        assert_eq!(
            substitute(&rule, &context),
            Ok(json!({"mutate": {"overlay": {"spec": {"kind": "foo", "port": true}}}}))
        );
        assert_eq!(
            substitute_at(
                &json!({"kind": "{{@}}"}),
                "/validate/pattern/spec",
                &context
            ),
            Ok(json!({"kind": "foo"}))
        );
    }

    #[test]
    fn missing_fields_and_bad_expressions_are_errors() {
        let context = context();
        let error = substitute(
            &json!({"a": ["{{request.object.metadata.name1}}"]}),
            &context,
        );
        assert_eq!(
            error,
            Err(VariableError::NotFound {
                variable: "request.object.metadata.name1".into(),
                path: "/a/0".into(),
                key: "name1".into(),
            })
        );
        assert!(
            error.is_err_and(
                |e| e.is_not_found() && e.to_string() == "Unknown key \"name1\" in path"
            )
        );
        let error = substitute(&json!({"a": "{{ a.[ }}"}), &context).map_err(|e| e.to_string());
        assert!(
            error
                .as_ref()
                .is_err_and(|e| e.starts_with("failed to resolve a.[ at path /a: SyntaxError")),
            "{error:?}"
        );
        assert!(
            substitute_str(
                "{{ request.object.metadata.labels.app || 'none' }}",
                &context
            ) == Ok(json!("none"))
        );
    }

    #[test]
    fn map_keys_are_substituted() {
        let context = context();
        assert_eq!(
            substitute(
                &json!({"{{request.object.metadata.name}}": "v", "k": "w"}),
                &context
            ),
            Ok(json!({"temp": "v", "k": "w"}))
        );
        assert_eq!(
            substitute(&json!({"{{request.object.spec.replicas}}": "v"}), &context),
            Err(VariableError::NonStringKey {
                key: "{{request.object.spec.replicas}}".into()
            })
        );
    }

    #[test]
    fn structured_results_are_substituted_again() {
        let mut context = context();
        context.set(
            "template",
            json!({"name": "{{request.object.metadata.name}}"}),
        );
        assert_eq!(
            substitute(&json!({"copy": "{{template}}"}), &context),
            Ok(json!({"copy": {"name": "temp"}}))
        );
    }

    #[test]
    fn foreach_elements_are_variables() {
        let mut context = context();
        context.set_element(json!({"name": "c1"}), 1, 0);
        assert_eq!(
            substitute_str(
                "{{element.name}}/{{elementIndex}}/{{elementIndex0}}/{{element0.name}}",
                &context
            ),
            Ok(json!("c1/1/1/c1"))
        );
    }

    #[test]
    fn references_read_the_document() {
        let context = Context::new();
        let document = json!({
            "metadata": {"annotations": {"test": "$(../../../../spec/namespace)", "escaped": "\\$(ENV_VAR)", "kept": "\\${ENV_VAR}"}},
            "(spec)": {"namespace": "n1"}
        });
        assert_eq!(
            substitute(&document, &context),
            Ok(json!({
                "metadata": {"annotations": {"test": "n1", "escaped": "$(ENV_VAR)", "kept": "\\${ENV_VAR}"}},
                "(spec)": {"namespace": "n1"}
            }))
        );
        let pattern = json!({"spec": {"containers": [{"resources": {
            "requests": {"memory": "$(<=./../../limits/memory)"},
            "limits": {"memory": "2048Mi"}
        }}]}});
        assert_eq!(
            substitute(&pattern, &context)
                .map(|v| v["spec"]["containers"][0]["resources"]["requests"]["memory"].clone()),
            Ok(json!("<=2048Mi"))
        );
        assert_eq!(
            substitute_at(&pattern, "/validate/pattern", &context)
                .map(|v| v["spec"]["containers"][0]["resources"]["requests"]["memory"].clone()),
            Ok(json!("<=2048Mi"))
        );
        assert_eq!(
            substitute(&json!({"a": "$(./../missing)"}), &context),
            Err(VariableError::UnresolvedReference {
                reference: "$(./../missing)".into(),
                path: "/a".into()
            })
        );
        assert_eq!(
            substitute(&json!({"a": "$(./../b)", "b": 1}), &context),
            Err(VariableError::NonStringReference {
                reference: "$(./../b)".into(),
                path: "/a".into()
            })
        );
    }

    #[test]
    fn unchanged_documents_are_equal() {
        let document = json!({"a": [1, {"b": "c"}], "d": null});
        assert_eq!(substitute(&document, &context()), Ok(document));
    }

    #[test]
    fn context_queries_and_clock() {
        fn fixed() -> chrono::DateTime<chrono::Utc> {
            chrono::DateTime::from_timestamp(0, 0).unwrap_or_default()
        }
        let context = context().with_runtime(Runtime::with_clock(fixed));
        assert_eq!(
            context.query(" request.object.metadata.name "),
            Ok(json!("temp"))
        );
        assert_eq!(
            substitute_str("{{ time_now_utc() }}", &context),
            Ok(json!("1970-01-01T00:00:00Z"))
        );
        assert_eq!(context.data()["request"]["operation"], json!("CREATE"));
    }
}
