//! Errors of JMESPath compilation and evaluation, worded like upstream Kyverno's.

/// Why a JMESPath expression could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JmesPathError {
    /// The expression is not valid JMESPath.
    #[error("SyntaxError: {message}")]
    Syntax {
        /// What is wrong.
        message: String,
        /// Byte offset in the expression where the problem was found.
        offset: usize,
    },
    /// A field was looked up in an object that does not have it. Kyverno's interpreter reports
    /// this instead of `null` when the lookup is the final result of a path; `||`, function
    /// arguments, comparisons and projections turn it back into `null`.
    #[error("Unknown key \"{0}\" in path")]
    NotFound(String),
    /// The expression calls a function that does not exist.
    #[error("unknown function: {0}")]
    UnknownFunction(String),
    /// A function was called with a wrong number or wrong types of arguments, or failed.
    #[error("{0}")]
    Function(String),
}

impl JmesPathError {
    /// Whether this is the "unknown key" error of a path into a missing field.
    pub fn is_not_found(&self) -> bool {
        matches!(self, JmesPathError::NotFound(_))
    }

    /// An error of Kyverno's custom function `function`, prefixed as upstream does.
    pub(crate) fn in_function(function: &str, message: impl std::fmt::Display) -> JmesPathError {
        JmesPathError::Function(format!("JMESPath function '{function}': {message}"))
    }

    /// The error upstream reports for an argument of the wrong type (`position` counts from 1).
    pub(crate) fn argument_type(function: &str, position: usize, expected: &str) -> JmesPathError {
        JmesPathError::in_function(
            function,
            format!("argument #{position} is not of type {expected}"),
        )
    }

    pub(crate) fn syntax(message: impl Into<String>, offset: usize) -> JmesPathError {
        JmesPathError::Syntax {
            message: message.into(),
            offset,
        }
    }
}
