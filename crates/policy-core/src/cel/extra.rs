//! Functions of the root environment that behave as cel-go's where the cel crate differs.
//!
//! cel-go evaluates `x.orValue(d)` and `x.or(y)` without requiring `x` to be an optional: a
//! receiver that is not an optional is the result itself (policies rely on it, e.g.
//! `container.volumeMounts.orValue([])`), and the alternative is only evaluated when the receiver
//! is an empty optional.
use kube_cel::cel::common::ast::Expr;
use kube_cel::cel::common::types::CelOptional;
use kube_cel::cel::extractors::This;
use kube_cel::cel::objects::OptionalValue;
use kube_cel::cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};

use super::ast;

/// The function `x.orValue(default)` calls are rewritten to, with the receiver as first
/// argument ([`super::ast`]).
pub(super) const OR_VALUE: &str = "@or_value";

/// Registers the functions of this module in `context`, replacing the cel crate's.
pub(super) fn register(context: &mut Context<'static>) {
    context.add_function(OR_VALUE, or_value);
    context.add_function("or", or_optional);
}

/// `x.orValue(default)`: the value of a present optional, `default` for an empty one, `x` for
/// anything else. The receiver is evaluated here rather than by the interpreter, so that an
/// optional selection is read in place ([`ast::select_in_place`]) and only its value copied.
fn or_value(ftx: &FunctionContext) -> ResolveResult {
    let [receiver, default] = ftx.args else {
        return Err(ExecutionError::invalid_argument_count(2, ftx.args.len()));
    };
    if let Expr::Call(call) = &receiver.expr
        && call.func_name == ast::OPTIONAL_SELECT
        && call.target.is_none()
    {
        return match ast::select_in_place(&call.args, ftx.ptx)? {
            Some(value) => Ok(value),
            None => Value::resolve(default, ftx.ptx),
        };
    }
    let receiver = Value::resolve_val(receiver, ftx.ptx)?;
    match receiver.downcast_ref::<CelOptional>() {
        Some(optional) => match optional.inner() {
            Some(value) => Value::try_from(value),
            None => Value::resolve(default, ftx.ptx),
        },
        None => Value::try_from(receiver.as_ref()),
    }
}

/// `x.or(other)`: a present optional itself, `other` for an empty one, `x` for anything else.
fn or_optional(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    match empty_optional(&this) {
        Some(None) => alternative(ftx),
        _ => Ok(this),
    }
}

/// `Some(value)` of an optional (`None` inside when empty), `None` for a value that is not an
/// optional.
fn empty_optional(value: &Value) -> Option<Option<Value>> {
    match value {
        Value::Opaque(opaque) => opaque
            .downcast_ref::<OptionalValue>()
            .map(|optional| optional.value().cloned()),
        _ => None,
    }
}

/// The single argument of the call, evaluated now.
fn alternative(ftx: &FunctionContext) -> ResolveResult {
    match ftx.args {
        [argument] => Value::resolve(argument, ftx.ptx),
        arguments => Err(ExecutionError::invalid_argument_count(1, arguments.len())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::cel::{Program, from_json, scope};

    fn evaluate(expression: &str) -> serde_json::Value {
        let mut scope = scope();
        scope.add_variable_from_value("m", from_json(&json!({"a": [1], "n": null})));
        Program::compile(expression)
            .expect("compiles")
            .evaluate_json(&scope)
            .expect("evaluates")
    }

    #[test]
    fn or_value_takes_present_values_and_non_optionals_as_they_are() {
        assert_eq!(evaluate("m.?a.orValue([])"), json!([1]));
        assert_eq!(evaluate("m.?b.orValue([2])"), json!([2]));
        assert_eq!(evaluate("m.a.orValue([])"), json!([1]));
        assert_eq!(evaluate("m.n.orValue(3)"), json!(null));
        assert_eq!(evaluate("optional.none().orValue(4)"), json!(4));
    }

    #[test]
    fn alternatives_are_evaluated_only_when_needed() {
        assert_eq!(evaluate("m.?a.orValue(m.missing)"), json!([1]));
        assert_eq!(evaluate("m.?a.or(m.missing).value()"), json!([1]));
        assert_eq!(evaluate("m.?b.or(optional.of(5)).value()"), json!(5));
        assert_eq!(evaluate("m.a.or(m.missing)"), json!([1]));
        let mut scope = scope();
        scope.add_variable_from_value("m", from_json(&json!({})));
        assert!(
            Program::compile("m.?b.orValue(m.missing)")
                .expect("compiles")
                .evaluate(&scope)
                .is_err()
        );
    }
}
