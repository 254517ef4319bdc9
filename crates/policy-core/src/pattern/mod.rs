//! Kyverno's `validate.pattern` / `validate.anyPattern`: matching a resource against a
//! pattern tree with anchors, operators, wildcards, quantities and durations, with the
//! outcomes, failure paths and messages upstream reports.

mod anchor;
mod check;
mod value;
mod walk;

pub use anchor::{Anchor, AnchorKind, parse as parse_anchor};
pub use check::{PatternSyntaxError, check_pattern, check_pattern_anchors};
pub use value::value_matches;

use serde_json::Value;

use walk::Walker;

/// The result of matching a resource against one pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternOutcome {
    /// The resource matches.
    Pass,
    /// The resource does not match at `path` (upstream's form: `/spec/containers/0/image/`).
    Fail {
        /// Where the mismatch was found, `/`-separated with a trailing `/`.
        path: String,
        /// Upstream's error text (not part of the rule message of a failed `pattern`).
        message: String,
    },
    /// A conditional or global anchor did not match: the rule does not apply.
    Skip {
        /// Upstream's explanation, e.g. `conditional anchor mismatch: ...`.
        reason: String,
    },
    /// The resource does not match but upstream has no path to report (an anchor key of the
    /// pattern is missing from the resource, or a list pattern is malformed); upstream reports
    /// such `pattern` rules as errors.
    Error {
        /// Upstream's error text, shown in the rule message.
        message: String,
    },
}

impl PatternOutcome {
    /// The rule message upstream reports for a `pattern` rule with this outcome, given the
    /// rule name and its `validate.message` after variable substitution (empty when unset).
    pub fn rule_message(&self, rule_name: &str, validation_message: &str) -> String {
        match self {
            PatternOutcome::Pass => format!("validation rule '{rule_name}' passed."),
            PatternOutcome::Skip { reason } => reason.clone(),
            PatternOutcome::Fail { path, .. } => {
                format!(
                    "{}rule {rule_name} failed at path {path}",
                    message_prefix(validation_message)
                )
            }
            PatternOutcome::Error { message } => format!(
                "{}rule {rule_name} execution error: {message}",
                message_prefix(validation_message)
            ),
        }
    }
}

/// `validation error: ` followed by the rule's message ending with `.` and a space, if any.
fn message_prefix(validation_message: &str) -> String {
    match validation_message {
        "" => "validation error: ".to_owned(),
        message if message.ends_with('.') => format!("validation error: {message} "),
        message => format!("validation error: {message}. "),
    }
}

/// Matches `resource` against `pattern` like Kyverno's `validate.MatchPattern`.
///
/// Variables (`{{ }}`) and `$(...)` references must already be substituted in `pattern`.
pub fn validate_pattern(resource: &Value, pattern: &Value) -> PatternOutcome {
    let mut walker = Walker::default();
    let mut path = String::from("/");
    let Err(failure) = walker.element(resource, pattern, &mut path) else {
        return PatternOutcome::Pass;
    };
    let error = failure.error;
    if error.is_skip() {
        return PatternOutcome::Skip {
            reason: error.message,
        };
    }
    let keep_path = error.is_negation() || !walker.keys_are_missing();
    if keep_path && !failure.path.is_empty() {
        PatternOutcome::Fail {
            path: failure.path,
            message: error.message,
        }
    } else {
        PatternOutcome::Error {
            message: error.message,
        }
    }
}

/// One pattern of an `anyPattern` that did not pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnyPatternMiss {
    /// The pattern's index in `anyPattern`.
    pub index: usize,
    /// That pattern's outcome (`Fail`, `Skip` or `Error`).
    pub outcome: PatternOutcome,
}

/// The result of matching a resource against `anyPattern`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyPatternOutcome {
    /// Pattern `index` matched (later patterns were not tried); `None` for an empty list,
    /// which upstream passes.
    Pass {
        /// The index of the first matching pattern.
        index: Option<usize>,
    },
    /// Every pattern was skipped by its conditional or global anchors.
    Skip {
        /// The skipped patterns, in order.
        skipped: Vec<AnyPatternMiss>,
    },
    /// No pattern matched and at least one failed.
    Fail {
        /// The failed patterns (`Fail` or `Error` outcomes), in order; skipped ones are left out.
        failed: Vec<AnyPatternMiss>,
    },
}

impl AnyPatternOutcome {
    /// The rule message upstream reports, given the rule name and its `validate.message`
    /// (upstream uses it unsubstituted here; empty when unset).
    pub fn rule_message(&self, rule_name: &str, validation_message: &str) -> String {
        match self {
            AnyPatternOutcome::Pass { index: Some(index) } => {
                format!("validation rule '{rule_name}' anyPattern[{index}] passed.")
            }
            AnyPatternOutcome::Pass { index: None } => validation_message.to_owned(),
            AnyPatternOutcome::Skip { skipped } => join_misses(rule_name, skipped),
            AnyPatternOutcome::Fail { failed } => format!(
                "{}{}",
                message_prefix(validation_message),
                join_misses(rule_name, failed)
            ),
        }
    }
}

fn join_misses(rule_name: &str, misses: &[AnyPatternMiss]) -> String {
    misses
        .iter()
        .filter_map(|miss| {
            let index = miss.index;
            match &miss.outcome {
                PatternOutcome::Pass => None,
                PatternOutcome::Fail { path, .. } => {
                    Some(format!("rule {rule_name}[{index}] failed at path {path}"))
                }
                PatternOutcome::Error { message } => {
                    Some(format!("rule {rule_name}[{index}] failed: {message}"))
                }
                PatternOutcome::Skip { reason } => {
                    Some(format!("rule {rule_name}[{index}] skipped: {reason}"))
                }
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Matches `resource` against each pattern of an `anyPattern` in order, like upstream: the
/// first match passes; otherwise the rule fails if any pattern failed, and is skipped if all
/// were skipped.
pub fn validate_any_pattern(resource: &Value, patterns: &[Value]) -> AnyPatternOutcome {
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    for (index, pattern) in patterns.iter().enumerate() {
        let outcome = validate_pattern(resource, pattern);
        let miss = AnyPatternMiss { index, outcome };
        match miss.outcome {
            PatternOutcome::Pass => return AnyPatternOutcome::Pass { index: Some(index) },
            PatternOutcome::Skip { .. } => skipped.push(miss),
            PatternOutcome::Fail { .. } | PatternOutcome::Error { .. } => failed.push(miss),
        }
    }
    if !failed.is_empty() {
        AnyPatternOutcome::Fail { failed }
    } else if !skipped.is_empty() {
        AnyPatternOutcome::Skip { skipped }
    } else {
        AnyPatternOutcome::Pass { index: None }
    }
}

#[cfg(test)]
mod tests;
