//! The function table: the standard (jmespath-community) functions plus Kyverno's custom ones,
//! with upstream's argument checking done before any function body runs.

mod arithmetic;
mod collections;
mod encoding;
mod gotime;
mod image;
mod network;
mod random;
mod semver;
mod standard;
mod strings;
#[cfg(test)]
mod test_support;
mod time;
mod x509;

use super::error::JmesPathError;
use super::interpreter::Interpreter;
use super::parser::Node;
use crate::gofmt::{self, Numbers};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

/// An evaluated function argument.
pub(crate) enum Arg<'a> {
    Value(Cow<'a, Value>),
    /// An `&expression` argument, applied by the function to values of its choice.
    Expref(&'a Node),
}

/// A type an argument may have, named as upstream names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgType {
    Any,
    Number,
    String,
    Boolean,
    Array,
    Object,
    ArrayNumber,
    ArrayString,
    ArrayArray,
    Expref,
}

impl ArgType {
    fn name(self) -> &'static str {
        match self {
            ArgType::Any => "any",
            ArgType::Number => "number",
            ArgType::String => "string",
            ArgType::Boolean => "bool",
            ArgType::Array => "array",
            ArgType::Object => "object",
            ArgType::ArrayNumber => "array[number]",
            ArgType::ArrayString => "array[string]",
            ArgType::ArrayArray => "array[array]",
            ArgType::Expref => "expref",
        }
    }

    fn accepts(self, argument: &Arg<'_>) -> bool {
        let value = match argument {
            Arg::Expref(_) => return matches!(self, ArgType::Any | ArgType::Expref),
            Arg::Value(value) => value.as_ref(),
        };
        match self {
            ArgType::Any => true,
            ArgType::Number => value.is_number(),
            ArgType::String => value.is_string(),
            ArgType::Boolean => value.is_boolean(),
            ArgType::Array | ArgType::ArrayArray => value.is_array(),
            ArgType::Object => value.is_object(),
            ArgType::ArrayNumber => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_number)),
            ArgType::ArrayString => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            ArgType::Expref => false,
        }
    }
}

/// Whether an argument must be given, may be left out, or repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    Required,
    Optional,
    Variadic,
}

/// One declared argument.
pub(crate) struct ArgSpec {
    types: &'static [ArgType],
    arity: Arity,
}

/// A required argument of one of `types`.
pub(crate) const fn required(types: &'static [ArgType]) -> ArgSpec {
    ArgSpec {
        types,
        arity: Arity::Required,
    }
}

/// An argument of one of `types` that may be left out (only trailing ones).
pub(crate) const fn optional(types: &'static [ArgType]) -> ArgSpec {
    ArgSpec {
        types,
        arity: Arity::Optional,
    }
}

/// A last argument of one of `types` repeated one or more times.
pub(crate) const fn variadic(types: &'static [ArgType]) -> ArgSpec {
    ArgSpec {
        types,
        arity: Arity::Variadic,
    }
}

type Handler = fn(&[Arg<'_>], &Interpreter<'_>) -> Result<Value, JmesPathError>;

/// A function: its signature, documentation and body.
pub(crate) struct FunctionSpec {
    pub(crate) name: &'static str,
    pub(crate) args: &'static [ArgSpec],
    pub(crate) returns: &'static [ArgType],
    pub(crate) note: &'static str,
    pub(crate) handler: Handler,
}

/// Description of one available function, for `kyverno jp function`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    /// The function name, e.g. `truncate`.
    pub name: String,
    /// One entry per argument, alternatives joined by `|` (e.g. `string|number`); optional
    /// arguments end in `?`, repeated ones in `...`.
    pub arguments: Vec<String>,
    /// The return type(s), e.g. `string`.
    pub return_type: String,
    /// Upstream's usage note (empty for standard functions).
    pub note: String,
    /// Whether this is one of Kyverno's custom functions rather than a standard JMESPath one.
    pub custom: bool,
}

impl FunctionInfo {
    /// The signature as upstream prints it: `truncate(string, number) string`.
    pub fn signature(&self) -> String {
        format!(
            "{}({}) {}",
            self.name,
            self.arguments.join(", "),
            self.return_type
        )
    }
}

/// Every function, Kyverno's overriding standard ones of the same name (as upstream registers
/// them last).
static REGISTRY: LazyLock<HashMap<&'static str, &'static FunctionSpec>> = LazyLock::new(|| {
    standard::FUNCTIONS
        .iter()
        .chain(custom_functions())
        .map(|spec| (spec.name, spec))
        .collect()
});

fn custom_functions() -> impl Iterator<Item = &'static FunctionSpec> {
    strings::FUNCTIONS
        .iter()
        .chain(arithmetic::FUNCTIONS)
        .chain(encoding::FUNCTIONS)
        .chain(collections::FUNCTIONS)
        .chain(time::FUNCTIONS)
        .chain(semver::FUNCTIONS)
        .chain(random::FUNCTIONS)
        .chain(x509::FUNCTIONS)
        .chain(image::FUNCTIONS)
        .chain(network::FUNCTIONS)
}

/// All functions sorted by name, standard and custom.
pub(crate) fn catalogue() -> Vec<FunctionInfo> {
    let custom: Vec<&str> = custom_functions().map(|spec| spec.name).collect();
    let mut infos: Vec<FunctionInfo> = REGISTRY
        .values()
        .map(|spec| FunctionInfo {
            name: spec.name.to_owned(),
            arguments: spec.args.iter().map(describe_argument).collect(),
            return_type: join_types(spec.returns, ","),
            note: spec.note.to_owned(),
            custom: custom.contains(&spec.name),
        })
        .collect();
    infos.sort_by(|a, b| a.name.cmp(&b.name));
    infos
}

fn join_types(types: &[ArgType], separator: &str) -> String {
    types
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(separator)
}

fn describe_argument(spec: &ArgSpec) -> String {
    let types = join_types(spec.types, "|");
    match spec.arity {
        Arity::Required => types,
        Arity::Optional => format!("{types}?"),
        Arity::Variadic => format!("{types}..."),
    }
}

/// Calls function `name` after checking its arguments against its signature.
pub(crate) fn call(
    name: &str,
    args: &[Arg<'_>],
    interpreter: &Interpreter<'_>,
) -> Result<Value, JmesPathError> {
    let spec = REGISTRY
        .get(name)
        .ok_or_else(|| JmesPathError::UnknownFunction(name.to_owned()))?;
    check_arguments(spec, args)?;
    (spec.handler)(args, interpreter)
}

fn check_arguments(spec: &FunctionSpec, args: &[Arg<'_>]) -> Result<(), JmesPathError> {
    if spec.args.is_empty() {
        return Ok(());
    }
    let variadic = spec.args.iter().any(|a| a.arity == Arity::Variadic);
    let minimum = spec
        .args
        .iter()
        .filter(|a| a.arity != Arity::Optional)
        .count();
    if args.len() < minimum {
        let plural = if minimum == 1 { "" } else { "s" };
        let more = if variadic { "or more " } else { "" };
        return Err(JmesPathError::Function(format!(
            "invalid arity, the function '{}' expects {minimum} argument{plural} {more}but {} were supplied",
            spec.name,
            args.len()
        )));
    }
    if !variadic && args.len() > spec.args.len() {
        return Err(JmesPathError::Function(format!(
            "invalid arity, the function '{}' expects at most {} arguments but {} were supplied",
            spec.name,
            spec.args.len(),
            args.len()
        )));
    }
    for (index, argument) in args.iter().enumerate() {
        let spec = spec.args.get(index).or(spec.args.last());
        if let Some(spec) = spec
            && !spec.types.iter().any(|t| t.accepts(argument))
        {
            let shown = match argument {
                Arg::Value(value) => gofmt::sprint(value, Numbers::Json),
                Arg::Expref(_) => Cow::Borrowed("expref"),
            };
            let expected: Vec<String> = spec
                .types
                .iter()
                .map(|t| format!("\"{}\"", t.name()))
                .collect();
            return Err(JmesPathError::Function(format!(
                "invalid type for: {shown}, expected: []functions.JpType{{{}}}",
                expected.join(", ")
            )));
        }
    }
    Ok(())
}

/// The value of argument `index` (`null` for a missing or expression argument).
pub(crate) fn value<'b>(args: &'b [Arg<'_>], index: usize) -> &'b Value {
    const NULL: Value = Value::Null;
    match args.get(index) {
        Some(Arg::Value(value)) => value.as_ref(),
        _ => &NULL,
    }
}

/// Argument `index` as a string, or upstream's "is not of type string" error.
pub(crate) fn string<'b>(
    function: &str,
    args: &'b [Arg<'_>],
    index: usize,
) -> Result<&'b str, JmesPathError> {
    value(args, index)
        .as_str()
        .ok_or_else(|| JmesPathError::argument_type(function, index + 1, "string"))
}

/// Argument `index` as a number, or upstream's "is not of type float64" error.
pub(crate) fn number(function: &str, args: &[Arg<'_>], index: usize) -> Result<f64, JmesPathError> {
    value(args, index)
        .as_f64()
        .ok_or_else(|| JmesPathError::argument_type(function, index + 1, "float64"))
}

/// Argument `index` as an expression reference.
pub(crate) fn expref<'b>(
    function: &str,
    args: &'b [Arg<'_>],
    index: usize,
) -> Result<&'b Node, JmesPathError> {
    match args.get(index) {
        Some(Arg::Expref(node)) => Ok(node),
        _ => Err(JmesPathError::argument_type(function, index + 1, "expref")),
    }
}

/// The integer value of `number` if it has no fraction (upstream's `intNumber`).
pub(crate) fn integer(number: f64) -> Result<i64, String> {
    if !number.is_finite() || number.trunc() != number {
        return Err(format!(
            "expected an integer number but got: {}",
            gofmt::format_json_float(number)
        ));
    }
    // Saturating casts: the round trip fails for values outside the i64 range.
    let integer = number as i64;
    if integer as f64 != number {
        return Err(format!(
            "number is outside the range of integer numbers: {}",
            gofmt::format_json_float(number)
        ));
    }
    Ok(integer)
}
