//! CEL, the Common Expression Language of Kubernetes admission policies: compiling expressions
//! once, evaluating them against JSON documents, and the function libraries Kyverno exposes.
//!
//! Expressions are parsed with optional syntax (`object.?metadata.?labels[?'app']`) enabled, as
//! the Kubernetes and Kyverno environments do, and evaluated in a scope holding the variables of
//! the call (`object`, `oldObject`, `request`, ...) on top of one shared root environment with
//! the Kubernetes libraries ([`kube_cel`]) and Kyverno's own.
mod ast;
mod extra;
pub mod libs;
mod types;
mod value;

use std::sync::{Arc, LazyLock};

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::Expr;
use kube_cel::cel::parser::Parser;
use kube_cel::cel::{Context, ExecutionError, IdedExpr, Value as CelValue};

pub use value::{ToJsonError, from_json, to_json};

/// Why a CEL expression could not be compiled or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum CelError {
    /// The expression does not parse; the message carries the position (`<input>:1:5`).
    #[error("compilation failed: {0}")]
    Compile(String),
    /// Evaluating the expression failed.
    #[error("{0}")]
    Evaluate(#[from] ExecutionError),
    /// The expression evaluated to a value of the wrong type.
    #[error("expected a {expected} result, got {got}")]
    ResultType {
        /// The type the caller needs.
        expected: &'static str,
        /// The type the expression produced.
        got: String,
    },
    /// The expression uses a construct the interpreter does not implement.
    #[error("the expression uses a construct the CEL interpreter does not support: {0}")]
    Unsupported(String),
    /// The result cannot be represented as JSON.
    #[error(transparent)]
    Json(#[from] ToJsonError),
}

/// A compiled CEL expression.
#[derive(Debug)]
pub struct Program {
    source: Arc<str>,
    expression: IdedExpr,
}

impl Program {
    /// Parses `source` (with optional syntax enabled).
    pub fn compile(source: &str) -> Result<Self, CelError> {
        let mut expression = Parser::new()
            .enable_optional_syntax(true)
            .parse(source)
            .map_err(|error| CelError::Compile(error.to_string().trim_end().to_string()))?;
        ast::rewrite_optional_selects(&mut expression);
        Ok(Self {
            source: Arc::from(source),
            expression,
        })
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression refers to the variable `name` anywhere.
    pub fn references_variable(&self, name: &str) -> bool {
        references_variable(&self.expression, name)
    }

    /// Evaluates the expression in `scope` (a scope made with [`scope`]).
    pub fn evaluate(&self, scope: &Context<'_>) -> Result<CelValue, CelError> {
        // The interpreter still has a few unfinished paths that panic; an expression reaching
        // one must fail alone, not take the process down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            CelValue::resolve(&self.expression, scope)
        }))
        .map_err(|_| CelError::Unsupported(self.source.to_string()))?
        .map_err(CelError::from)
    }

    /// Evaluates the expression to a boolean.
    pub fn evaluate_bool(&self, scope: &Context<'_>) -> Result<bool, CelError> {
        match self.evaluate(scope)? {
            CelValue::Bool(value) => Ok(value),
            other => Err(CelError::ResultType {
                expected: "bool",
                got: type_name(&other),
            }),
        }
    }

    /// Evaluates the expression to a string (messages, audit annotations).
    pub fn evaluate_string(&self, scope: &Context<'_>) -> Result<String, CelError> {
        match self.evaluate(scope)? {
            CelValue::String(value) => Ok(value.as_ref().clone()),
            other => Err(CelError::ResultType {
                expected: "string",
                got: type_name(&other),
            }),
        }
    }

    /// Evaluates the expression and converts the result to JSON.
    pub fn evaluate_json(&self, scope: &Context<'_>) -> Result<serde_json::Value, CelError> {
        Ok(to_json(&self.evaluate(scope)?)?)
    }
}

/// The CEL type name of a value, for error messages.
pub fn type_name(value: &CelValue) -> String {
    match value {
        CelValue::Opaque(opaque) => opaque.runtime_type_name().to_string(),
        other => other.type_of().to_string(),
    }
}

fn references_variable(expr: &IdedExpr, name: &str) -> bool {
    match &expr.expr {
        Expr::Ident(ident) => ident == name,
        _ => {
            let mut found = false;
            let mut children: Vec<&IdedExpr> = Vec::new();
            ast::children(expr, &mut children);
            for child in children {
                found = found || references_variable(child, name);
            }
            found
        }
    }
}

/// The root environment: the CEL standard library, the Kubernetes libraries and Kyverno's
/// functions, built once per process.
static ROOT: LazyLock<Context<'static>> = LazyLock::new(|| {
    let mut context = Context::default().with_all();
    // `dyn(x)` only changes the static type, which this dynamically typed evaluator has no use
    // for.
    context.add_function("dyn", dyn_identity);
    context.add_function(ast::OPTIONAL_SELECT, ast::optional_select);
    types::register(&mut context);
    libs::register(&mut context);
    crate::celpolicy::authz::register(&mut context);
    extra::register(&mut context);
    crate::celpolicy::image_validating::register(&mut context);
    context
});

fn dyn_identity(
    kube_cel::cel::extractors::Arguments(arguments): kube_cel::cel::extractors::Arguments,
) -> Result<CelValue, ExecutionError> {
    match arguments.as_slice() {
        [value] => Ok(value.clone()),
        _ => Err(ExecutionError::invalid_argument_count(1, arguments.len())),
    }
}

/// A fresh scope over the root environment, to which the caller adds its variables
/// (`scope.add_variable_from_value("object", from_json(&object))`).
pub fn scope() -> Context<'static> {
    ROOT.new_inner_scope()
}

#[cfg(test)]
mod tests;
