//! Checks of a rule's context entries (upstream `validateRuleContext`).
use kyverno_api::kyverno::v1::context::ContextEntry;

use super::variables::has_variables;
use super::{Issues, RuleContext, jmespath_syntax_error};

/// Variables every rule has; context entries must not shadow them.
const RESERVED_NAMES: [&str; 6] = [
    "images",
    "request",
    "serviceAccountName",
    "serviceAccountNamespace",
    "element",
    "elementIndex",
];

pub(super) fn check(rule: &RuleContext<'_>, issues: &mut Issues) {
    let uses_assert = rule
        .rule
        .validate
        .as_ref()
        .is_some_and(|validate| validate.assert.is_some());
    for (index, entry) in rule.rule.context.iter().enumerate() {
        if let Some(message) = entry_problem(entry, uses_assert) {
            issues.push(rule.at(&format!("context[{index}]")), message);
        }
    }
}

/// The first problem of a context entry, as upstream stops at the first one.
pub(super) fn entry_problem(entry: &ContextEntry, uses_assert: bool) -> Option<String> {
    let name = entry.name.as_str();
    if name.is_empty() {
        return Some("a name is required for context entries".to_owned());
    }
    // kyverno-json bindings are named after the entries.
    let single_word = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if uses_assert && !single_word {
        return Some(format!(
            "context entry name {name} is invalid, it must be a single word when the validation rule uses `assert`"
        ));
    }
    if let Some(reserved) = RESERVED_NAMES.iter().find(|reserved| {
        name == **reserved
            || name
                .strip_prefix(**reserved)
                .is_some_and(|rest| rest.starts_with('.'))
    }) {
        return Some(format!(
            "entry name {name} is invalid as it conflicts with a pre-defined variable {reserved}"
        ));
    }
    let sources = [
        entry.config_map.is_some(),
        entry.api_call.is_some(),
        entry.global_reference.is_some(),
        entry.image_registry.is_some(),
        entry.variable.is_some(),
    ];
    if sources.iter().filter(|&&set| set).count() != 1 {
        return Some(
            "exactly one of configMap or apiCall or imageRegistry or variable is required for context entries"
                .to_owned(),
        );
    }
    if let Some(config_map) = &entry.config_map {
        if config_map.name.is_empty() {
            return Some("a name is required for configMap context entry".to_owned());
        }
        if config_map.namespace.as_deref().is_none_or(str::is_empty) {
            return Some("a namespace is required for configMap context entry".to_owned());
        }
    }
    if let Some(api_call) = &entry.api_call {
        if api_call
            .url_path
            .as_deref()
            .is_some_and(|path| !path.is_empty())
            && api_call.service.is_some()
        {
            return Some("a URLPath cannot be used for service API calls".to_owned());
        }
        return jmespath_problem(api_call.jmes_path.as_deref());
    }
    if let Some(reference) = &entry.global_reference {
        return jmespath_problem(reference.jmes_path.as_deref());
    }
    if let Some(registry) = &entry.image_registry {
        if registry.reference.is_empty() {
            return Some("a ref is required for imageRegistry context entry".to_owned());
        }
        return jmespath_problem(registry.jmes_path.as_deref());
    }
    if let Some(variable) = &entry.variable {
        if let Some(problem) = jmespath_problem(variable.jmes_path.as_deref()) {
            return Some(problem);
        }
        let without_expression = variable.jmes_path.as_deref().is_none_or(str::is_empty);
        if variable.value.is_none() && without_expression {
            return Some("a variable must define a value or a jmesPath expression".to_owned());
        }
        if variable.default.is_some() && without_expression {
            return Some(
                "a variable must define a default value only when a jmesPath expression is defined"
                    .to_owned(),
            );
        }
    }
    None
}

/// A JMESPath expression that does not parse. Expressions built from variables are only known
/// once the variables are substituted, so they are not checked.
fn jmespath_problem(expression: Option<&str>) -> Option<String> {
    let expression = expression.filter(|e| !e.is_empty() && !has_variables(e))?;
    jmespath_syntax_error(expression)
        .map(|error| format!("failed to parse JMESPath {expression}: {error}"))
}
