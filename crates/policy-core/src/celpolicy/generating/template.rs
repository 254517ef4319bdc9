//! Generation templates (`generate[].template`): the resources to generate written as YAML
//! (one or more documents), optionally interpolated with CEL (`interpolate: cel`).
//!
//! With interpolation, `(( expression ))` placeholders in scalar values are CEL expressions
//! evaluated like the policy's generate expressions:
//! - a scalar that is exactly one placeholder takes the expression's value, whatever its type
//!   (`labels: (( variables.labels ))`);
//! - placeholders inside a longer scalar are replaced by their values, which must be scalars
//!   (`name: (( variables.ns ))-config`);
//! - `\((` writes a literal `((`; placeholders in mapping keys are rejected.
//!
//! Without interpolation the YAML is used as written. Every placeholder is compiled when the
//! policy is, so a bad expression is reported at load time.
use serde_json::{Map, Value};

use crate::celpolicy::common::json_type;
use crate::celpolicy::{CompiledVariables, Evaluator, Expression};

/// A compiled generation template.
#[derive(Debug)]
pub struct Template {
    documents: Vec<Node>,
}

/// Why a template could not be compiled or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The value is not valid YAML.
    #[error("failed to parse YAML: {0}")]
    Yaml(String),
    /// The value has no document.
    #[error("template must contain at least one YAML document")]
    Empty,
    /// A document is not a mapping.
    #[error("document {0}: document must be a mapping describing a resource")]
    NotAMapping(usize),
    /// A placeholder is malformed, misplaced or does not compile.
    #[error("document {document}: {location}: {message}")]
    Placeholder {
        /// The document, counted from 1.
        document: usize,
        /// Where in the document, such as `metadata.name`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A placeholder failed to evaluate or gave an unusable value.
    #[error("document {document}: {location}: {message}")]
    Render {
        /// The document, counted from 1.
        document: usize,
        /// Where in the document.
        location: String,
        /// What failed.
        message: String,
    },
}

/// A compiled part of a document.
#[derive(Debug)]
enum Node {
    /// A subtree without placeholders, used as is.
    Literal(Value),
    /// A mapping with placeholders somewhere below.
    Mapping(Vec<(String, Node)>),
    /// A sequence with placeholders somewhere below.
    Sequence(Vec<Node>),
    /// A scalar that is exactly one placeholder: the expression's value, of any type.
    Splice(Expression),
    /// A scalar mixing text and placeholders: a string.
    Interpolated(Vec<Segment>),
}

/// A piece of an interpolated scalar.
#[derive(Debug)]
enum Segment {
    Text(String),
    Expression(Expression),
}

/// A piece of a scanned scalar, before compilation.
#[derive(Debug, PartialEq)]
enum Scanned<'a> {
    Text(String),
    Expression(&'a str),
}

impl Template {
    /// Parses `value` and, when `interpolate` is set, compiles its placeholders, which may use
    /// the policy's `variables`.
    pub fn compile(
        value: &str,
        interpolate: bool,
        variables: &CompiledVariables,
    ) -> Result<Self, TemplateError> {
        let parsed: Vec<Value> = serde_saphyr::from_multiple(value)
            .map_err(|error| TemplateError::Yaml(error.to_string()))?;
        let mut documents = Vec::with_capacity(parsed.len());
        for (index, document) in parsed.into_iter().filter(|d| !d.is_null()).enumerate() {
            let number = index + 1;
            let node = if interpolate {
                compile_node(document, number, variables, &mut Vec::new())?
            } else {
                Node::Literal(document)
            };
            let is_mapping = match &node {
                Node::Mapping(_) | Node::Splice(_) => true,
                Node::Literal(value) => value.is_object(),
                Node::Sequence(_) | Node::Interpolated(_) => false,
            };
            if !is_mapping {
                return Err(TemplateError::NotAMapping(number));
            }
            documents.push(node);
        }
        if documents.is_empty() {
            return Err(TemplateError::Empty);
        }
        Ok(Self { documents })
    }

    /// The resources of the template, one per document, its placeholders evaluated by
    /// `evaluator`.
    pub fn render(&self, evaluator: &mut Evaluator<'_>) -> Result<Vec<Value>, TemplateError> {
        let mut resources = Vec::with_capacity(self.documents.len());
        for (index, document) in self.documents.iter().enumerate() {
            let number = index + 1;
            let rendered = render_node(document, evaluator, number, &mut Vec::new())?;
            if !rendered.is_object() {
                return Err(TemplateError::Render {
                    document: number,
                    location: "(document)".to_owned(),
                    message: "expected a mapping describing a resource".to_owned(),
                });
            }
            resources.push(rendered);
        }
        Ok(resources)
    }
}

fn compile_node(
    value: Value,
    document: usize,
    variables: &CompiledVariables,
    path: &mut Vec<String>,
) -> Result<Node, TemplateError> {
    if !has_placeholder_or_escape(&value) {
        return Ok(Node::Literal(value));
    }
    let placeholder_error = |path: &[String], message: String| TemplateError::Placeholder {
        document,
        location: location(path),
        message,
    };
    match value {
        Value::Object(fields) => {
            let mut entries = Vec::with_capacity(fields.len());
            for (key, value) in fields {
                if contains_placeholder(&key) {
                    return Err(placeholder_error(
                        path,
                        format!(
                            "placeholders are not supported in mapping keys ({key:?}); use a \
                             whole-value placeholder on the parent field instead (e.g. `labels: \
                             (( variables.labels ))`)"
                        ),
                    ));
                }
                path.push(key);
                let node = compile_node(value, document, variables, path)?;
                let key = path.pop().unwrap_or_default();
                entries.push((key, node));
            }
            Ok(Node::Mapping(entries))
        }
        Value::Array(items) => {
            let mut nodes = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                path.push(index.to_string());
                nodes.push(compile_node(item, document, variables, path)?);
                path.pop();
            }
            Ok(Node::Sequence(nodes))
        }
        Value::String(text) => {
            let scanned = scan(&text).map_err(|message| placeholder_error(path, message))?;
            let compile = |expression: &str| {
                Expression::compile(expression, variables, "").map_err(|error| {
                    placeholder_error(
                        path,
                        format!(
                            "invalid placeholder expression {expression:?}: {}",
                            error.source
                        ),
                    )
                })
            };
            match scanned.as_slice() {
                [Scanned::Expression(expression)] => Ok(Node::Splice(compile(expression)?)),
                _ if scanned
                    .iter()
                    .all(|piece| matches!(piece, Scanned::Text(_))) =>
                {
                    let text = scanned
                        .into_iter()
                        .map(|piece| match piece {
                            Scanned::Text(text) => text,
                            Scanned::Expression(_) => String::new(),
                        })
                        .collect();
                    Ok(Node::Literal(Value::String(text)))
                }
                _ => {
                    let mut segments = Vec::with_capacity(scanned.len());
                    for piece in scanned {
                        segments.push(match piece {
                            Scanned::Text(text) => Segment::Text(text),
                            Scanned::Expression(expression) => {
                                Segment::Expression(compile(expression)?)
                            }
                        });
                    }
                    Ok(Node::Interpolated(segments))
                }
            }
        }
        scalar => Ok(Node::Literal(scalar)),
    }
}

fn render_node(
    node: &Node,
    evaluator: &mut Evaluator<'_>,
    document: usize,
    path: &mut Vec<String>,
) -> Result<Value, TemplateError> {
    match node {
        Node::Literal(value) => Ok(value.clone()),
        Node::Mapping(entries) => {
            let mut object = Map::with_capacity(entries.len());
            for (key, node) in entries {
                path.push(key.clone());
                let value = render_node(node, evaluator, document, path)?;
                path.pop();
                object.insert(key.clone(), value);
            }
            Ok(Value::Object(object))
        }
        Node::Sequence(items) => {
            let mut values = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                path.push(index.to_string());
                values.push(render_node(item, evaluator, document, path)?);
                path.pop();
            }
            Ok(Value::Array(values))
        }
        Node::Splice(expression) => evaluate(expression, evaluator, document, path),
        Node::Interpolated(segments) => {
            let mut text = String::new();
            for segment in segments {
                let expression = match segment {
                    Segment::Text(literal) => {
                        text.push_str(literal);
                        continue;
                    }
                    Segment::Expression(expression) => expression,
                };
                match evaluate(expression, evaluator, document, path)? {
                    Value::String(value) => text.push_str(&value),
                    Value::Bool(value) => text.push_str(&value.to_string()),
                    Value::Number(value) => text.push_str(&value.to_string()),
                    other => {
                        return Err(TemplateError::Render {
                            document,
                            location: location(path),
                            message: format!(
                                "placeholder {:?} embedded in a string must evaluate to a \
                                 scalar, got {}; use a whole-value placeholder for structured \
                                 results",
                                expression.source(),
                                json_type(&other)
                            ),
                        });
                    }
                }
            }
            Ok(Value::String(text))
        }
    }
}

/// The value of one placeholder.
fn evaluate(
    expression: &Expression,
    evaluator: &mut Evaluator<'_>,
    document: usize,
    path: &[String],
) -> Result<Value, TemplateError> {
    evaluator
        .evaluate_json(expression)
        .map_err(|error| TemplateError::Render {
            document,
            location: location(path),
            message: format!(
                "failed to evaluate placeholder {:?}: {}",
                expression.source(),
                error.cause
            ),
        })
}

/// Splits a scalar into text and placeholder expressions. `\((` is a literal `((`; inside a
/// placeholder, parentheses nest and CEL string literals may hold any character.
fn scan(text: &str) -> Result<Vec<Scanned<'_>>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut position = 0;
    while position < text.len() {
        let rest = &text[position..];
        if rest.starts_with(r"\((") {
            literal.push_str("((");
            position += 3;
        } else if rest.starts_with("((") {
            let (expression, next) = scan_placeholder(text, position)?;
            if !literal.is_empty() {
                pieces.push(Scanned::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Scanned::Expression(expression));
            position = next;
        } else {
            let character = rest.chars().next().unwrap_or_default();
            literal.push(character);
            position += character.len_utf8().max(1);
        }
    }
    if !literal.is_empty() {
        pieces.push(Scanned::Text(literal));
    }
    Ok(pieces)
}

/// The trimmed expression of the placeholder opening at `start`, and the position after its
/// closing `))`.
fn scan_placeholder(text: &str, start: usize) -> Result<(&str, usize), String> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut position = start + 2;
    while position < bytes.len() {
        let byte = bytes[position];
        if let Some(open) = quote {
            if byte == b'\\' {
                position += 2;
                continue;
            }
            if byte == open {
                quote = None;
            }
            position += 1;
            continue;
        }
        match byte {
            b'"' | b'\'' => quote = Some(byte),
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b')' if bytes.get(position + 1) == Some(&b')') => {
                let expression = text[start + 2..position].trim();
                if expression.is_empty() {
                    return Err(format!("empty placeholder at offset {start}"));
                }
                return Ok((expression, position + 2));
            }
            b')' => {
                return Err(format!(
                    "unbalanced parenthesis in placeholder starting at offset {start}"
                ));
            }
            _ => {}
        }
        position += 1;
    }
    if quote.is_some() {
        return Err(format!(
            "unterminated string literal in placeholder starting at offset {start}"
        ));
    }
    Err(format!(
        "unterminated placeholder starting at offset {start}: missing closing '))'"
    ))
}

/// Whether `text` has an unescaped `((`.
fn contains_placeholder(text: &str) -> bool {
    let mut rest = text;
    while let Some(found) = rest.find("((") {
        if !rest[..found].ends_with('\\') {
            return true;
        }
        rest = &rest[found + 2..];
    }
    false
}

/// Whether a subtree has a placeholder or an escape to process.
fn has_placeholder_or_escape(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains("(("),
        Value::Array(items) => items.iter().any(has_placeholder_or_escape),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains("((") || has_placeholder_or_escape(value)),
        _ => false,
    }
}

fn location(path: &[String]) -> String {
    if path.is_empty() {
        "(document)".to_owned()
    } else {
        path.join(".")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::celpolicy::Activation;

    fn render_with(
        template: &str,
        interpolate: bool,
        variables: &[(&str, &str)],
    ) -> Result<Vec<Value>, TemplateError> {
        let variables = CompiledVariables::compile(variables.iter().copied(), "spec.variables")
            .expect("variables compile");
        let object = json!({"metadata": {"name": "trigger"}});
        let activation = Activation::from_values([("object", crate::cel::from_json(&object))]);
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        Template::compile(template, interpolate, &variables)?.render(&mut evaluator)
    }

    fn render(template: &str, variables: &[(&str, &str)]) -> Result<Vec<Value>, TemplateError> {
        render_with(template, true, variables)
    }

    #[test]
    fn whole_value_placeholders_splice_any_value() {
        let rendered = render(
            "kind: ConfigMap\nmetadata:\n  name: (( variables.ns ))-config\n  labels: (( variables.labels ))\ndata:\n  count: (( 1 + 2 ))\n  owner: (( object.metadata.name ))\n",
            &[("ns", "'team'"), ("labels", "{'env': 'test'}")],
        )
        .expect("renders");
        assert_eq!(
            rendered,
            vec![json!({
                "kind": "ConfigMap",
                "metadata": {"name": "team-config", "labels": {"env": "test"}},
                "data": {"count": 3, "owner": "trigger"}
            })]
        );
    }

    #[test]
    fn embedded_placeholders_must_be_scalars() {
        let error = render(
            "kind: ConfigMap\nmetadata:\n  name: x-(( variables.labels ))\n",
            &[("labels", "{'a': 'b'}")],
        )
        .expect_err("a map inside a string")
        .to_string();
        assert!(error.contains("document 1: metadata.name"), "{error}");
        assert!(error.contains("must evaluate to a scalar"), "{error}");
        let rendered =
            render("kind: A\ndata:\n  n: n-(( 2 ))-(( true ))-(( 1.5 ))\n", &[]).expect("scalars");
        assert_eq!(rendered[0]["data"]["n"], json!("n-2-true-1.5"));
    }

    #[test]
    fn without_interpolation_the_yaml_is_literal_and_documents_split() {
        let rendered = render_with(
            "kind: A\ndata:\n  k: (( not.evaluated ))\n  e: \\((x))\n---\nkind: B\n",
            false,
            &[],
        )
        .expect("renders");
        assert_eq!(
            rendered,
            vec![
                json!({"kind": "A", "data": {"k": "(( not.evaluated ))", "e": "\\((x))"}}),
                json!({"kind": "B"})
            ]
        );
    }

    #[test]
    fn escapes_nesting_and_strings_in_placeholders() {
        let rendered = render(
            "kind: A\ndata:\n  a: \\((literal))\n  b: (( string(size(\"))\")) ))\n  c: (( (1 + 1) * 2 ))\n  d: (( ')(' ))\n",
            &[],
        )
        .expect("renders");
        assert_eq!(
            rendered[0]["data"],
            json!({"a": "((literal))", "b": "2", "c": 4, "d": ")("})
        );
    }

    #[test]
    fn compile_errors_name_the_place() {
        let variables = CompiledVariables::default();
        let compile = |text: &str| {
            Template::compile(text, true, &variables)
                .expect_err("does not compile")
                .to_string()
        };
        let key = compile("kind: A\ndata:\n  (( x )): v\n");
        assert!(key.contains("not supported in mapping keys"), "{key}");
        let bad = compile("kind: A\nmetadata:\n  name: (( a. ))\n");
        assert!(
            bad.contains("document 1: metadata.name") && bad.contains("invalid placeholder"),
            "{bad}"
        );
        assert!(bad.contains("<input>:1:"), "{bad}");
        let open = compile("kind: A\nmetadata:\n  name: (( a\n");
        assert!(open.contains("unterminated placeholder"), "{open}");
        let empty = compile("kind: A\nmetadata:\n  name: (( ))\n");
        assert!(empty.contains("empty placeholder"), "{empty}");
        let unbalanced = compile("kind: A\nmetadata:\n  name: (( a) ))\n");
        assert!(
            unbalanced.contains("unbalanced parenthesis"),
            "{unbalanced}"
        );
        assert!(matches!(
            Template::compile("- a\n", false, &variables),
            Err(TemplateError::NotAMapping(1))
        ));
        assert!(matches!(
            Template::compile("---\n", false, &variables),
            Err(TemplateError::Empty)
        ));
        assert!(matches!(
            Template::compile("a: [", false, &variables),
            Err(TemplateError::Yaml(_))
        ));
    }

    #[test]
    fn render_errors_are_errors() {
        let error = render("kind: A\nmetadata:\n  name: (( object.missing ))\n", &[])
            .expect_err("fails")
            .to_string();
        assert!(error.contains("document 1: metadata.name"), "{error}");
        assert!(error.contains("missing"), "{error}");
        let error = render("(( 'not a map' ))\n", &[])
            .expect_err("not a mapping")
            .to_string();
        assert!(error.contains("expected a mapping"), "{error}");
    }
}
