//! CEL type values and conversions the cel crate lacks or answers differently from cel-go:
//! `type(x)` and the type identifiers it is compared with (`int`, `string`, `null_type`, ...),
//! and `string(x)` of a boolean (`"true"`).
use std::sync::{Arc, LazyLock};

use kube_cel::cel::extractors::Arguments;
use kube_cel::cel::objects::{Opaque, OptionalValue};
use kube_cel::cel::parser::Parser;
use kube_cel::cel::{Context, ExecutionError, FunctionContext, IdedExpr, Value};

/// The name `string(x)` calls are rewritten to (see [`string_of`]).
pub(super) const STRING: &str = "@string";

/// The variable through which [`string_of`] hands other values to the library's `string`.
const STRING_ARGUMENT: &str = "__string_argument__";

/// A CEL type, such as the result of `type(1)` (`int`).
#[derive(Debug, PartialEq, Eq)]
struct CelType(&'static str);

impl Opaque for CelType {
    fn runtime_type_name(&self) -> &str {
        "type"
    }
}

/// The type identifiers bound in the root environment.
const TYPE_NAMES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "duration",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "timestamp",
    "type",
    "uint",
    "optional_type",
];

/// Registers `type(x)` and the type identifiers in `context`.
pub(super) fn register(context: &mut Context<'static>) {
    context.add_function("type", type_of);
    context.add_function(STRING, string_of);
    for name in TYPE_NAMES {
        context.add_variable_from_value(*name, type_value(name));
    }
}

fn type_value(name: &'static str) -> Value {
    Value::Opaque(Arc::new(CelType(name)))
}

/// `type(x)`: the type of `x`.
fn type_of(Arguments(arguments): Arguments) -> Result<Value, ExecutionError> {
    let [value] = arguments.as_slice() else {
        return Err(ExecutionError::invalid_argument_count(1, arguments.len()));
    };
    Ok(type_value(match value {
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Function(_, _) => "function",
        Value::Int(_) => "int",
        Value::UInt(_) => "uint",
        Value::Float(_) => "double",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "bool",
        Value::Duration(_) => "duration",
        Value::Timestamp(_) => "timestamp",
        Value::Null => "null_type",
        Value::Opaque(opaque) if opaque.downcast_ref::<OptionalValue>().is_some() => {
            "optional_type"
        }
        Value::Opaque(opaque) if opaque.downcast_ref::<CelType>().is_some() => "type",
        Value::Opaque(_) => "opaque",
    }))
}

/// `string(x)`: `"true"`/`"false"` for booleans, as cel-go; every other value is converted by
/// the library's own `string`.
fn string_of(
    ftx: &FunctionContext,
    Arguments(arguments): Arguments,
) -> Result<Value, ExecutionError> {
    static LIBRARY_STRING: LazyLock<Option<IdedExpr>> = LazyLock::new(|| {
        Parser::new()
            .parse(&format!("string({STRING_ARGUMENT})"))
            .ok()
    });
    let [value] = arguments.as_slice() else {
        return Err(ExecutionError::invalid_argument_count(1, arguments.len()));
    };
    if let Value::Bool(b) = value {
        return Ok(Value::String(Arc::new(b.to_string())));
    }
    let Some(library_string) = LIBRARY_STRING.as_ref() else {
        return Err(ftx.error("string conversion is unavailable"));
    };
    let mut scope = ftx.ptx.new_inner_scope();
    scope.add_variable_from_value(STRING_ARGUMENT, value.clone());
    Value::resolve(library_string, &scope)
}
