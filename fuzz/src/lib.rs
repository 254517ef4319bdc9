//! Structure-aware inputs for the fuzz targets: JSON documents and strings built from the fuzz
//! data, biased towards the syntax the engine parses (anchors, operators, wildcards, quantities,
//! `{{ }}` variables, `$( )` references, JMESPath), so that the fuzzer reaches deep code quickly.

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{Map, Number, Value};

/// Deepest nesting of a generated document.
const MAX_DEPTH: u32 = 6;
/// Most elements of a generated array or object, and most pieces of a generated string.
const MAX_LEN: usize = 6;

/// Field names shared by resources and patterns, so that generated patterns meet the fields
/// of generated resources.
const FIELD_NAMES: &[&str] = &[
    "spec",
    "metadata",
    "name",
    "labels",
    "containers",
    "image",
    "securityContext",
    "privileged",
    "ports",
    "hostPort",
    "resources",
    "limits",
    "memory",
    "a",
    "b",
    "",
];

/// The anchors a pattern key can carry (`""` for none).
const ANCHORS: &[&str] = &["", "", "", "=(", "X(", "^(", "<(", "+(", "(", "<"];

/// Syntax of pattern values: operators, wildcards, quantities, durations, semver-ish numbers.
pub const PATTERN_TOKENS: &[&str] = &[
    "*",
    "?",
    "!",
    ">",
    "<",
    ">=",
    "<=",
    "|",
    "&",
    "-",
    "!*",
    "?*",
    "!=",
    "=",
    "100Mi",
    "1Gi",
    "0.5",
    "500m",
    "1h30m",
    "2s",
    "-1",
    "1e3",
    "1.2.3",
    "true",
    "false",
    "null",
    "nginx",
    "nginx:latest",
    " ",
    "(",
    ")",
    "0",
    "9223372036854775807",
    "1.0",
    "0x1F",
    "1-5",
    "a-b",
];

/// Syntax of variables, references and the JMESPath inside them.
pub const VARIABLE_TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{ ",
    " }}",
    "{{@}}",
    "{{ @ }}",
    "\\{{",
    "\\$(",
    "$(",
    ")",
    "./",
    "../",
    "./../",
    "request.object",
    "request.object.metadata.name",
    "request.operation",
    "element",
    "element.name",
    "elementIndex",
    "images",
    "@",
    "||",
    "`[]`",
    "'x'",
    "to_upper(",
    "length(",
    "[0]",
    "[]",
    "[*]",
    ".",
    "\"",
    ":",
    "<=",
    ">",
    "name",
    "metadata",
    "spec",
    "{{ element.name }}",
    " ",
    "-",
];

/// Syntax of JMESPath expressions besides function names.
pub const JMESPATH_TOKENS: &[&str] = &[
    "@",
    "$",
    ".",
    "[",
    "]",
    "[]",
    "[*]",
    "[?",
    "[0]",
    "[-1]",
    "[::-1]",
    "[1:3]",
    "{",
    "}",
    "a",
    "b",
    "name",
    "spec.containers",
    "metadata.labels",
    ":",
    ",",
    "(",
    ")",
    "|",
    "||",
    "&&",
    "!",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "//",
    "&",
    "`1`",
    "`\"s\"`",
    "`[1,2]`",
    "`{\"a\":1}`",
    "`null`",
    "`true`",
    "'x'",
    "'*'",
    "'1h'",
    "'100Mi'",
    "'1.2.3'",
    "'2024-01-01T00:00:00Z'",
    "'^a.*$'",
    "\"a\"",
    " ",
    "*.",
    "`-1`",
    "`1.5`",
    "`0`",
];

/// A string of 0 to `MAX_LEN` pieces, each a token or arbitrary text.
pub fn text(u: &mut Unstructured<'_>, tokens: &[&str]) -> Result<String> {
    let pieces = u.int_in_range(0..=MAX_LEN)?;
    let mut text = String::new();
    for _ in 0..pieces {
        if u.ratio(3, 4)? {
            text.push_str(u.choose(tokens)?);
        } else {
            text.push_str(u.arbitrary::<&str>()?);
        }
    }
    Ok(text)
}

/// An object key: a field name, possibly in an anchor, or arbitrary text.
fn key(u: &mut Unstructured<'_>, tokens: &[&str]) -> Result<String> {
    if u.ratio(1, 5)? {
        return text(u, tokens);
    }
    let anchor = *u.choose(ANCHORS)?;
    let name = *u.choose(FIELD_NAMES)?;
    Ok(if anchor.is_empty() {
        name.to_owned()
    } else {
        format!("{anchor}{name})")
    })
}

/// A JSON document whose strings and keys are built from `tokens`.
pub fn document(u: &mut Unstructured<'_>, tokens: &[&str]) -> Result<Value> {
    value(u, tokens, MAX_DEPTH)
}

fn value(u: &mut Unstructured<'_>, tokens: &[&str], depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 5 } else { 7 };
    Ok(match u.choose_index(kinds)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(Number::from(u.arbitrary::<i64>()?)),
        3 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => Value::String(text(u, tokens)?),
        5 => {
            let len = u.int_in_range(0..=MAX_LEN)?;
            let mut items = Vec::with_capacity(len);
            for _ in 0..len {
                items.push(value(u, tokens, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => {
            let len = u.int_in_range(0..=MAX_LEN)?;
            let mut map = Map::new();
            for _ in 0..len {
                let key = key(u, tokens)?;
                map.insert(key, value(u, tokens, depth - 1)?);
            }
            Value::Object(map)
        }
    })
}

/// Input of the `pattern` target: a pattern and a resource.
#[derive(Debug)]
pub struct PatternInput {
    /// The pattern (anchors, operators, wildcards in keys and values).
    pub pattern: Value,
    /// The resource it is matched against.
    pub resource: Value,
}

impl<'a> Arbitrary<'a> for PatternInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(PatternInput {
            pattern: document(u, PATTERN_TOKENS)?,
            resource: document(u, PATTERN_TOKENS)?,
        })
    }
}

/// Where in a rule a substituted document is taken from (used for `{{ @ }}` and error paths).
const LOCATIONS: &[&str] = &[
    "",
    "/validate/pattern",
    "/validate/foreach/0/pattern",
    "/mutate/patchStrategicMerge",
];

/// Input of the `substitute` target: a document with variables and references, and the
/// context they are resolved against.
#[derive(Debug)]
pub struct SubstituteInput {
    /// The document to substitute.
    pub document: Value,
    /// `request.object` of the context.
    pub object: Value,
    /// `request.operation` of the context.
    pub operation: &'static str,
    /// `element` of the context.
    pub element: Value,
    /// Another context entry: its dotted path and value.
    pub entry: (String, Value),
    /// The JSON pointer of the document inside its rule.
    pub location: &'static str,
}

impl<'a> Arbitrary<'a> for SubstituteInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(SubstituteInput {
            document: document(u, VARIABLE_TOKENS)?,
            object: document(u, VARIABLE_TOKENS)?,
            operation: u.choose(&["CREATE", "UPDATE", "DELETE", ""])?,
            element: document(u, VARIABLE_TOKENS)?,
            entry: (text(u, VARIABLE_TOKENS)?, document(u, VARIABLE_TOKENS)?),
            location: u.choose(LOCATIONS)?,
        })
    }
}
