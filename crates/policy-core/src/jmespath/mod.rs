//! Kyverno's JMESPath dialect: the jmespath-community language (standard JMESPath plus
//! arithmetic operators and `$`) with Kyverno's 51 custom functions, evaluated the way Kyverno
//! evaluates it.
//!
//! Differences from plain JMESPath that matter to policies:
//! - a path into a missing field (`request.object.metadata.labels.foo` without that label) is
//!   an error, [`JmesPathError::NotFound`], unless something turns it back into `null`
//!   (`|| 'default'`, a function argument, a comparison, a projection);
//! - numbers behave as Go float64s (`1 == 1.0`, `to_string` writes `3`, not `3.0`).
//!
//! Expressions are parsed once and kept in a bounded process-wide cache, and evaluation borrows
//! from the searched document instead of copying it.

mod error;
mod functions;
mod interpreter;
mod lexer;
mod parser;
mod value;

pub use error::JmesPathError;
pub use functions::FunctionInfo;
pub use interpreter::Clock;
pub use value::json_string;

use parser::Node;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// Evaluates `expression` against `data` with the system clock.
pub fn search(expression: &str, data: &Value) -> Result<Value, JmesPathError> {
    Runtime::default().search(expression, data)
}

/// Every function available in expressions, standard and custom, sorted by name.
pub fn function_catalogue() -> Vec<FunctionInfo> {
    functions::catalogue()
}

/// Evaluates expressions with a given clock (for `time_now` and friends); [`search`] uses the
/// system clock.
#[derive(Debug, Clone, Copy)]
pub struct Runtime {
    clock: Clock,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            clock: chrono::Utc::now,
        }
    }
}

impl Runtime {
    /// A runtime whose time functions read `clock` instead of the system time.
    pub fn with_clock(clock: Clock) -> Runtime {
        Runtime { clock }
    }

    /// Evaluates `expression` against `data`.
    pub fn search(&self, expression: &str, data: &Value) -> Result<Value, JmesPathError> {
        let node = compile(expression)?;
        interpreter::Interpreter::new(data, self.clock)
            .eval(&node, data)
            .map(std::borrow::Cow::into_owned)
    }
}

/// Most distinct expressions kept compiled; policies use far fewer.
const CACHE_CAPACITY: usize = 4096;

static CACHE: LazyLock<Mutex<HashMap<String, Arc<Node>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Parses `expression`, reusing an earlier parse of the same text.
fn compile(expression: &str) -> Result<Arc<Node>, JmesPathError> {
    if let Some(node) = CACHE
        .lock()
        .ok()
        .and_then(|cache| cache.get(expression).cloned())
    {
        return Ok(node);
    }
    let node = Arc::new(parser::parse(expression)?);
    if let Ok(mut cache) = CACHE.lock() {
        // Expressions produced by variable substitution can be unbounded in number: start over
        // rather than grow without limit.
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(expression.to_owned(), Arc::clone(&node));
    }
    Ok(node)
}
