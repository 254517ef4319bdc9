//! Helpers shared by the function modules' tests.

use serde_json::{Value, json};

use crate::jmespath::search;

/// The result of `expression` against an empty object; panics on an error.
pub(super) fn eval(expression: &str) -> Value {
    eval_in(expression, &json!({}))
}

/// The result of `expression` against `data`; panics on an error.
pub(super) fn eval_in(expression: &str, data: &Value) -> Value {
    search(expression, data).unwrap_or_else(|error| panic!("{expression}: {error}"))
}

/// The error message of `expression` against an empty object; panics if it succeeds.
pub(super) fn fails(expression: &str) -> String {
    fails_in(expression, &json!({}))
}

/// The error message of `expression` against `data`; panics if it succeeds.
pub(super) fn fails_in(expression: &str, data: &Value) -> String {
    match search(expression, data) {
        Ok(value) => panic!("{expression} gave {value}"),
        Err(error) => error.to_string(),
    }
}
