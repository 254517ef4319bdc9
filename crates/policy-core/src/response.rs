//! What the engine answers: one result per rule applied.
use serde::Serialize;

/// The outcome of one rule on one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// The resource satisfies the rule.
    Pass,
    /// The resource violates the rule.
    Fail,
    /// The resource violates a rule that only warns (Audit with `--audit-warn`).
    Warn,
    /// The rule could not be evaluated (bad variable, failed context entry, ...).
    Error,
    /// The rule does not apply (preconditions not met, conditional anchor not matched, excepted).
    Skip,
}

impl RuleStatus {
    /// The lowercase name used in reports and test files.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Pass => "pass",
            RuleStatus::Fail => "fail",
            RuleStatus::Warn => "warn",
            RuleStatus::Error => "error",
            RuleStatus::Skip => "skip",
        }
    }
}

/// The kind of action a rule takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleType {
    /// `validate`.
    Validation,
    /// `mutate`.
    Mutation,
    /// `generate`.
    Generation,
    /// `verifyImages`.
    ImageVerify,
}

/// The result of one rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleResponse {
    /// The rule's name (autogen rules carry their `autogen-` prefix).
    pub name: String,
    /// The rule's action.
    pub rule_type: RuleType,
    /// The outcome.
    pub status: RuleStatus,
    /// Why: the violation message, the skip reason or the error.
    pub message: String,
}

/// The results of one policy on one resource, in rule order. Rules that do not match the resource
/// have no entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PolicyResponse {
    /// The rules that matched the resource, with their outcomes.
    pub rules: Vec<RuleResponse>,
}
