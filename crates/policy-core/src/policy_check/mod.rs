//! Checks of a ClusterPolicy or Policy when it is loaded, as upstream Kyverno validates policies
//! (`pkg/validation/policy`, the API types' `Validate` methods and the per-rule-type checkers).
//!
//! [`check_policy`] returns every problem upstream rejects a policy for, each with the path of the
//! offending field (`spec.rules[0].validate.pattern.spec.containers[0].+(image)`) and upstream's
//! message where it is known. Upstream stops at the first problem; this checker reports them all.
//!
//! Scope and deliberate differences:
//! - The checks are those upstream runs offline (`kyverno apply`/`kyverno test`, "mock" mode): no
//!   discovery (kinds are not resolved) and no RBAC checks. Which resource kinds are
//!   cluster-scoped is supplied by the caller through [`check_policy_with_scope`]; [`check_policy`]
//!   knows none, as upstream's offline mode.
//! - Rules are checked as written; the rules autogen derives from them are not checked again.
//! - Policy annotations are not part of the input: the autogen annotation value `all` and
//!   variables in annotations are not checked.
//! - CEL expressions (`validate.cel`, `celPreconditions`, webhook match conditions) are checked
//!   structurally only; they are not compiled.
//! - Image references of `imageRegistry` context entries are not parsed.
//! - Upstream warnings are not reported.

mod cleanup;
mod conditions;
mod context;
mod generate;
mod mutate;
mod rule;
mod spec;
mod validate;
mod variables;
mod verify_images;

#[cfg(test)]
mod tests;

pub use cleanup::check_cleanup_policy;
use std::fmt;

use kyverno_api::kyverno::v1::policy::Spec;
use kyverno_api::kyverno::v1::rule::Rule;
use serde_json::Value;

use crate::jmespath::{self, JmesPathError};
use crate::pattern::PatternSyntaxError;
use variables::Strictness;

/// A problem that makes a policy invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyIssue {
    /// The offending field, e.g. `spec.rules[0].validate.pattern.spec.containers[0].image`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for PolicyIssue {}

/// Checks a policy of `kind` `ClusterPolicy` or `Policy` (namespaced, in `namespace`) named
/// `name`, as upstream does offline: no resource kind is known to be cluster-scoped.
pub fn check_policy(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    spec: &Spec,
) -> Vec<PolicyIssue> {
    check_policy_with_scope(kind, name, namespace, spec, &|_| false)
}

/// Like [`check_policy`], with `is_cluster_scoped` telling whether a resource kind, written
/// `Kind` or `version/Kind` or `group/version/Kind`, is cluster-scoped (upstream asks discovery).
/// It decides where generate rules may (or must) set a namespace.
pub fn check_policy_with_scope(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    spec: &Spec,
    is_cluster_scoped: &dyn Fn(&str) -> bool,
) -> Vec<PolicyIssue> {
    // Rules are looked at as JSON for their variables.
    let rule_values: Vec<Value> = spec
        .rules
        .iter()
        .map(|rule| serde_json::to_value(rule).unwrap_or_default())
        .collect();
    let background = spec.background.unwrap_or(true);
    let policy = PolicyContext {
        spec,
        namespaced: kind == "Policy",
        namespace: namespace.unwrap_or_default(),
        background,
        strictness: Strictness::of(spec, background, &rule_values),
        is_cluster_scoped,
    };
    let mut issues = Issues::default();
    spec::check(&policy, name, &mut issues);
    for (index, (rule, json)) in spec.rules.iter().zip(&rule_values).enumerate() {
        let rule_context = RuleContext {
            policy: &policy,
            rule,
            json,
            path: format!("spec.rules[{index}]"),
            index,
        };
        check_rule(&rule_context, &mut issues);
    }
    issues.0
}

fn check_rule(rule: &RuleContext<'_>, issues: &mut Issues) {
    rule::check(rule, issues);
    context::check(rule, issues);
    conditions::check_rule(rule, issues);
    variables::check_rule(rule, issues);
    if has_validate(rule.rule) {
        validate::check(rule, issues);
    }
    if has_mutate(rule.rule) {
        mutate::check(rule, issues);
    }
    if has_generate(rule.rule) {
        generate::check(rule, issues);
    }
    if has_verify_images(rule.rule) {
        verify_images::check(rule, issues);
    }
}

/// The policy being checked.
struct PolicyContext<'a> {
    spec: &'a Spec,
    /// Whether the policy is a namespaced Policy.
    namespaced: bool,
    /// The namespace of a Policy; empty for a ClusterPolicy.
    namespace: &'a str,
    /// Whether background processing is enabled (`spec.background`, true by default).
    background: bool,
    /// Which variables the policy's rules may use.
    strictness: Strictness,
    is_cluster_scoped: &'a dyn Fn(&str) -> bool,
}

/// One rule of the policy being checked.
struct RuleContext<'a> {
    policy: &'a PolicyContext<'a>,
    rule: &'a Rule,
    /// The rule as JSON.
    json: &'a Value,
    /// `spec.rules[<index>]`.
    path: String,
    index: usize,
}

impl RuleContext<'_> {
    /// The path of a field of the rule, e.g. `at("validate.pattern")`.
    fn at(&self, field: &str) -> String {
        join(&self.path, field)
    }
}

// Upstream tells rule types apart by comparing each block with its zero value, so an empty
// block (`mutate: {}`) does not count.

/// Whether the rule validates.
fn has_validate(rule: &Rule) -> bool {
    rule.validate
        .as_ref()
        .is_some_and(|validate| *validate != Default::default())
}

/// Whether the rule mutates.
fn has_mutate(rule: &Rule) -> bool {
    rule.mutate
        .as_ref()
        .is_some_and(|mutate| *mutate != Default::default())
}

/// Whether the rule generates.
fn has_generate(rule: &Rule) -> bool {
    rule.generate
        .as_ref()
        .is_some_and(|generate| *generate != Default::default())
}

/// Whether the rule verifies images.
fn has_verify_images(rule: &Rule) -> bool {
    rule.verify_images
        .iter()
        .any(|verification| *verification != Default::default())
}

/// The problems found so far.
#[derive(Default)]
struct Issues(Vec<PolicyIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(PolicyIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Appends `field` (`name`, `a.b`, `[0]` or `[0].name`) to `path`.
fn join(path: &str, field: &str) -> String {
    if field.is_empty() {
        path.to_owned()
    } else if path.is_empty() {
        field.to_owned()
    } else if field.starts_with('[') {
        format!("{path}{field}")
    } else {
        format!("{path}.{field}")
    }
}

/// The field path of the JSON pointer `pointer` (`/spec/containers/0/name`) inside `value`,
/// appended to `base`: array indexes become `[0]`. Segments past what `value` holds are
/// appended as keys.
fn pointer_path(base: &str, value: &Value, pointer: &str) -> String {
    let mut path = base.to_owned();
    let mut current = Some(value);
    for segment in pointer.split('/').filter(|segment| !segment.is_empty()) {
        current = match current {
            Some(Value::Array(items)) => match segment.parse::<usize>() {
                Ok(index) => {
                    path.push_str(&format!("[{index}]"));
                    items.get(index)
                }
                Err(_) => {
                    path = join(&path, segment);
                    None
                }
            },
            Some(Value::Object(fields)) => {
                path = join(&path, segment);
                fields.get(segment)
            }
            _ => {
                path = join(&path, segment);
                None
            }
        };
    }
    path
}

/// The message of an error whose display starts with `<path>: `, without that prefix.
fn without_path_prefix(message: &str, path: &str) -> String {
    message
        .strip_prefix(path)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(message)
        .to_owned()
}

/// The problem of a pattern found by [`crate::pattern::check_pattern_anchors`], located under
/// `base`: the field path and the message.
fn pattern_issue(base: &str, pattern: &Value, error: &PatternSyntaxError) -> (String, String) {
    let pointer = match error {
        PatternSyntaxError::UnsupportedAnchor { path, .. }
        | PatternSyntaxError::ExistenceNotList { path }
        | PatternSyntaxError::ExistenceEmpty { path } => path.as_str(),
    };
    (
        pointer_path(base, pattern, pointer),
        without_path_prefix(&error.to_string(), pointer),
    )
}

/// The error Go's JSON decoder reports when `value` cannot be decoded into `go_type`.
fn go_unmarshal_error(value: &Value, go_type: &str) -> String {
    let found = match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    format!("json: cannot unmarshal {found} into Go value of type {go_type}")
}

/// The syntax error of a JMESPath expression, if it does not parse.
fn jmespath_syntax_error(expression: &str) -> Option<JmesPathError> {
    jmespath::parse(expression).err()
}
