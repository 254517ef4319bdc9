//! Evaluation of parsed expressions over `serde_json::Value`, following Kyverno's own
//! interpreter: a path into a missing field is a [`JmesPathError::NotFound`] error, which most
//! constructs (`||`, comparisons, function arguments, projections) turn back into `null`.
//!
//! Results borrow from the searched document whenever possible, so looking up a field of a large
//! resource copies nothing.

use super::error::JmesPathError;
use super::functions::{self, Arg};
use super::parser::{ArithmeticOperator, Comparator, Node};
use super::value::{as_f64, is_truthy, number, values_equal};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The source of "now" for the time functions.
pub type Clock = fn() -> DateTime<Utc>;

/// Evaluates nodes against one document.
pub(crate) struct Interpreter<'r> {
    root: &'r Value,
    clock: Clock,
}

type Evaluated<'v> = Result<Cow<'v, Value>, JmesPathError>;

const NULL: Value = Value::Null;

/// Turns the "unknown key" error into `null`, as upstream does almost everywhere.
fn or_null(result: Evaluated<'_>) -> Evaluated<'_> {
    match result {
        Err(JmesPathError::NotFound(_)) => Ok(Cow::Owned(Value::Null)),
        other => other,
    }
}

impl<'r> Interpreter<'r> {
    pub(crate) fn new(root: &'r Value, clock: Clock) -> Interpreter<'r> {
        Interpreter { root, clock }
    }

    /// The current time, from the injected clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Applies an expression reference (`&expr`) to `value`, as functions like `sort_by` do.
    pub(crate) fn apply(&self, node: &Node, value: &Value) -> Result<Value, JmesPathError> {
        or_null(self.eval(node, value)).map(Cow::into_owned)
    }

    /// Evaluates `node` with `value` as the current node.
    pub(crate) fn eval<'v>(&self, node: &'v Node, value: &'v Value) -> Evaluated<'v> {
        match node {
            Node::Field(name) => match value {
                Value::Object(map) => map
                    .get(name)
                    .map(Cow::Borrowed)
                    .ok_or_else(|| JmesPathError::NotFound(name.clone())),
                _ => Ok(Cow::Borrowed(&NULL)),
            },
            Node::Literal(literal) => Ok(Cow::Borrowed(literal)),
            Node::Current => Ok(Cow::Borrowed(value)),
            Node::Root => Ok(Cow::Owned(self.root.clone())),
            Node::Index(index) => Ok(match value {
                Value::Array(items) => resolve_index(items.len(), *index)
                    .map_or(Cow::Borrowed(&NULL), |i| Cow::Borrowed(&items[i])),
                _ => Cow::Borrowed(&NULL),
            }),
            Node::Slice(parts) => slice(value, parts),
            Node::Subexpression(left, right) | Node::IndexExpression(left, right) => {
                match self.eval(left, value)? {
                    Cow::Borrowed(Value::Null) => Ok(Cow::Borrowed(&NULL)),
                    Cow::Borrowed(inner) => self.eval(right, inner),
                    Cow::Owned(Value::Null) => Ok(Cow::Borrowed(&NULL)),
                    Cow::Owned(inner) => Ok(Cow::Owned(self.eval(right, &inner)?.into_owned())),
                }
            }
            Node::Projection(left, right) => self.projection(left, right, value),
            Node::ValueProjection(left, right) => {
                let Ok(source) = self.eval(left, value) else {
                    return Ok(Cow::Borrowed(&NULL));
                };
                let Value::Object(map) = source.as_ref() else {
                    return Ok(Cow::Borrowed(&NULL));
                };
                self.project(map.values(), right).map(Cow::Owned)
            }
            Node::FilterProjection {
                source,
                projection,
                condition,
            } => {
                let Ok(source) = self.eval(source, value) else {
                    return Ok(Cow::Borrowed(&NULL));
                };
                let Value::Array(items) = source.as_ref() else {
                    return Ok(Cow::Borrowed(&NULL));
                };
                let mut kept = Vec::new();
                for item in items {
                    if is_truthy(or_null(self.eval(condition, item))?.as_ref()) {
                        let projected = or_null(self.eval(projection, item))?;
                        if !projected.is_null() {
                            kept.push(projected.into_owned());
                        }
                    }
                }
                Ok(Cow::Owned(Value::Array(kept)))
            }
            Node::Flatten(inner) => {
                let Ok(source) = self.eval(inner, value) else {
                    return Ok(Cow::Borrowed(&NULL));
                };
                let Value::Array(items) = source.as_ref() else {
                    return Ok(Cow::Borrowed(&NULL));
                };
                let mut flattened = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::Array(nested) => flattened.extend(nested.iter().cloned()),
                        other => flattened.push(other.clone()),
                    }
                }
                Ok(Cow::Owned(Value::Array(flattened)))
            }
            Node::MultiSelectList(elements) => {
                let mut collected = Vec::with_capacity(elements.len());
                for element in elements {
                    collected.push(or_null(self.eval(element, value))?.into_owned());
                }
                Ok(Cow::Owned(Value::Array(collected)))
            }
            Node::MultiSelectHash(entries) => {
                let mut collected = Map::new();
                for (key, element) in entries {
                    let item = or_null(self.eval(element, value))?.into_owned();
                    collected.insert(key.clone(), item);
                }
                Ok(Cow::Owned(Value::Object(collected)))
            }
            Node::Or(left, right) => {
                let matched = or_null(self.eval(left, value))?;
                if is_truthy(&matched) {
                    Ok(matched)
                } else {
                    or_null(self.eval(right, value))
                }
            }
            Node::And(left, right) => {
                let matched = or_null(self.eval(left, value))?;
                if is_truthy(&matched) {
                    self.eval(right, value)
                } else {
                    Ok(matched)
                }
            }
            Node::Not(inner) => {
                let matched = or_null(self.eval(inner, value))?;
                Ok(Cow::Owned(Value::Bool(!is_truthy(&matched))))
            }
            Node::Pipe(left, right) => match or_null(self.eval(left, value))? {
                Cow::Borrowed(inner) => or_null(self.eval(right, inner)),
                Cow::Owned(inner) => {
                    Ok(Cow::Owned(or_null(self.eval(right, &inner))?.into_owned()))
                }
            },
            Node::Comparison(comparator, left, right) => {
                let left = or_null(self.eval(left, value))?;
                let right = or_null(self.eval(right, value))?;
                Ok(Cow::Owned(compare(*comparator, &left, &right)))
            }
            Node::Arithmetic(operator, left, right) => {
                let left = or_null(self.eval(left, value))?;
                let right = or_null(self.eval(right, value))?;
                let (Some(left), Some(right)) = (as_f64(&left), as_f64(&right)) else {
                    return Ok(Cow::Borrowed(&NULL));
                };
                Ok(Cow::Owned(number(arithmetic(*operator, left, right))))
            }
            Node::Sign { negate, operand } => {
                let operand = or_null(self.eval(operand, value))?;
                Ok(Cow::Owned(match as_f64(&operand) {
                    Some(n) if *negate => number(-n),
                    Some(n) => number(n),
                    None => Value::Null,
                }))
            }
            Node::Function { name, args } => {
                let mut resolved = Vec::with_capacity(args.len());
                for argument in args {
                    resolved.push(match argument {
                        Node::Expref(inner) => Arg::Expref(inner),
                        other => Arg::Value(or_null(self.eval(other, value))?),
                    });
                }
                functions::call(name, &resolved, self).map(Cow::Owned)
            }
            // Upstream yields a Go closure here, which serializes to nothing useful.
            Node::Expref(_) => Ok(Cow::Borrowed(&NULL)),
        }
    }

    fn projection<'v>(&self, left: &'v Node, right: &'v Node, value: &'v Value) -> Evaluated<'v> {
        // Slicing a string (`'abc'[0:2]`) is the only projection of a non-array.
        let allows_string =
            matches!(left, Node::IndexExpression(_, index) if matches!(**index, Node::Slice(_)));
        let source = or_null(self.eval(left, value))?;
        match source.as_ref() {
            Value::Array(items) => self.project(items.iter(), right).map(Cow::Owned),
            Value::String(_) if allows_string => Ok(source),
            _ => Ok(Cow::Borrowed(&NULL)),
        }
    }

    fn project<'i>(
        &self,
        items: impl Iterator<Item = &'i Value>,
        right: &'i Node,
    ) -> Result<Value, JmesPathError> {
        let mut collected = Vec::new();
        for item in items {
            let projected = or_null(self.eval(right, item))?;
            if !projected.is_null() {
                collected.push(projected.into_owned());
            }
        }
        Ok(Value::Array(collected))
    }
}

/// The position of `index` (negative counts from the end) in a sequence of `len` items.
fn resolve_index(len: usize, index: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let resolved = if index < 0 { index + len } else { index };
    (0..len)
        .contains(&resolved)
        .then(|| usize::try_from(resolved).ok())
        .flatten()
}

fn compare(comparator: Comparator, left: &Value, right: &Value) -> Value {
    match comparator {
        Comparator::Equal => return Value::Bool(values_equal(left, right)),
        Comparator::NotEqual => return Value::Bool(!values_equal(left, right)),
        _ => {}
    }
    let (Some(left), Some(right)) = (as_f64(left), as_f64(right)) else {
        return Value::Null;
    };
    Value::Bool(match comparator {
        Comparator::Less => left < right,
        Comparator::LessOrEqual => left <= right,
        Comparator::Greater => left > right,
        _ => left >= right,
    })
}

fn arithmetic(operator: ArithmeticOperator, left: f64, right: f64) -> f64 {
    match operator {
        ArithmeticOperator::Add => left + right,
        ArithmeticOperator::Subtract => left - right,
        ArithmeticOperator::Multiply => left * right,
        ArithmeticOperator::Divide => left / right,
        ArithmeticOperator::Modulo => left % right,
        ArithmeticOperator::IntegerDivide => (left / right).floor(),
    }
}

fn slice<'v>(value: &'v Value, parts: &[Option<i64>; 3]) -> Evaluated<'v> {
    match value {
        Value::Array(items) => {
            let picked = slice_indices(items.len(), parts)?;
            Ok(Cow::Owned(Value::Array(
                picked.into_iter().map(|i| items[i].clone()).collect(),
            )))
        }
        Value::String(s) => {
            let chars: Vec<char> = s.chars().collect();
            Ok(Cow::Owned(match slice_indices(chars.len(), parts) {
                Ok(picked) => Value::String(picked.into_iter().map(|i| chars[i]).collect()),
                Err(_) => Value::Null,
            }))
        }
        _ => Ok(Cow::Borrowed(&NULL)),
    }
}

/// The indices `[start:stop:step]` selects from a sequence of `len` items (Python semantics).
fn slice_indices(len: usize, parts: &[Option<i64>; 3]) -> Result<Vec<usize>, JmesPathError> {
    let step = parts[2].unwrap_or(1);
    if step == 0 {
        return Err(JmesPathError::Function(
            "Invalid slice, step cannot be 0".to_owned(),
        ));
    }
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |index: i64| -> i64 {
        if index < 0 {
            (index + len).max(if step < 0 { -1 } else { 0 })
        } else if index >= len {
            if step < 0 { len - 1 } else { len }
        } else {
            index
        }
    };
    let start = parts[0].map_or(if step < 0 { len - 1 } else { 0 }, clamp);
    let stop = parts[1].map_or(if step < 0 { -1 } else { len }, clamp);
    let mut picked = Vec::new();
    let mut index = start;
    while (step > 0 && index < stop) || (step < 0 && index > stop) {
        if let Ok(position) = usize::try_from(index) {
            picked.push(position);
        }
        index += step;
    }
    Ok(picked)
}
