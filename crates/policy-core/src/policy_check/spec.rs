//! Checks of the policy as a whole: its name, deprecated and conflicting fields, webhook
//! timeouts, rule names, admission/background switches and failure action overrides.
use std::collections::{BTreeSet, HashSet};

use kyverno_api::kyverno::v1::validate::{
    ValidationFailureAction, ValidationFailureActionOverride,
};

use super::{Issues, PolicyContext, has_generate, has_mutate, has_verify_images};
use crate::wildcard;

/// Longest policy or rule name: policy names end up in report labels.
const MAX_NAME_LENGTH: usize = 63;

pub(super) fn check(policy: &PolicyContext<'_>, name: &str, issues: &mut Issues) {
    let spec = policy.spec;
    if name.len() > MAX_NAME_LENGTH {
        issues.push("metadata.name", too_long());
    }
    check_deprecated_fields(policy, issues);
    check_mutate_existing_targets(policy, issues);
    for (path, timeout) in [
        ("spec.webhookTimeoutSeconds", spec.webhook_timeout_seconds),
        (
            "spec.webhookConfiguration.timeoutSeconds",
            spec.webhook_configuration
                .as_ref()
                .and_then(|webhook| webhook.timeout_seconds),
        ),
    ] {
        if let Some(seconds) = timeout.filter(|seconds| !(1..=30).contains(seconds)) {
            issues.push(
                path,
                format!(
                    "Invalid value: {seconds}: the timeout value must be between 1 and 30 seconds"
                ),
            );
        }
    }
    check_rule_names(policy, issues);
    if policy.namespaced && !spec.validation_failure_action_overrides.is_empty() {
        issues.push(
            "spec.validationFailureActionOverrides",
            "Forbidden: Use of validationFailureActionOverrides is supported only with ClusterPolicy",
        );
    }
    if !policy.namespaced {
        for (index, rule) in spec.rules.iter().enumerate() {
            if let Some(validate) = &rule.validate {
                check_override_namespaces(
                    &validate.failure_action_overrides,
                    &format!("spec.rules[{index}].validate.failureActionOverrides"),
                    issues,
                );
            }
        }
        check_override_namespaces(
            &spec.validation_failure_action_overrides,
            "spec.validationFailureActionOverrides",
            issues,
        );
    }
    check_processing_modes(policy, issues);
}

fn too_long() -> String {
    format!("Too long: may not be more than {MAX_NAME_LENGTH} bytes")
}

fn check_deprecated_fields(policy: &PolicyContext<'_>, issues: &mut Issues) {
    let spec = policy.spec;
    let webhook = spec.webhook_configuration.as_ref();
    if spec.webhook_timeout_seconds.is_some()
        && webhook.is_some_and(|webhook| webhook.timeout_seconds.is_some())
    {
        issues.push(
            "spec.webhookTimeoutSeconds",
            "Forbidden: remove the deprecated field and use spec.webhookConfiguration.timeoutSeconds instead",
        );
    }
    if spec.failure_policy.is_some()
        && webhook.is_some_and(|webhook| webhook.failure_policy.is_some())
    {
        issues.push(
            "spec.failurePolicy",
            "Forbidden: remove the deprecated field and use spec.webhookConfiguration.failurePolicy instead",
        );
    }
    let rule_generate_existing = spec.rules.iter().any(|rule| {
        rule.generate
            .as_ref()
            .is_some_and(|generate| generate.generate_existing.is_some())
    });
    if rule_generate_existing {
        const MESSAGE: &str = "Forbidden: remove the deprecated field and use spec.generate[*].generateExisting instead";
        if spec.generate_existing_on_policy_update.is_some() {
            issues.push("spec.generateExistingOnPolicyUpdate", MESSAGE);
        }
        if spec.generate_existing == Some(true) {
            issues.push("spec.generateExisting", MESSAGE);
        }
    }
    let rule_mutate_existing = spec.rules.iter().any(|rule| {
        rule.mutate
            .as_ref()
            .is_some_and(|mutate| mutate.mutate_existing_on_policy_update.is_some())
    });
    if rule_mutate_existing && spec.mutate_existing_on_policy_update == Some(true) {
        issues.push(
            "spec.mutateExistingOnPolicyUpdate",
            "Forbidden: remove the deprecated field and use spec.mutate[*].mutateExistingOnPolicyUpdate instead",
        );
    }
}

/// Whether mutate-existing rules are applied on policy updates: the first mutate rule that says
/// decides, then the deprecated policy-wide field (upstream `GetMutateExistingOnPolicyUpdate`).
fn mutate_existing_on_policy_update(policy: &PolicyContext<'_>) -> bool {
    policy
        .spec
        .rules
        .iter()
        .filter_map(|rule| rule.mutate.as_ref())
        .find_map(|mutate| mutate.mutate_existing_on_policy_update)
        .unwrap_or(policy.spec.mutate_existing_on_policy_update == Some(true))
}

fn check_mutate_existing_targets(policy: &PolicyContext<'_>, issues: &mut Issues) {
    if !mutate_existing_on_policy_update(policy) {
        return;
    }
    for (index, rule) in policy.spec.rules.iter().enumerate() {
        if rule
            .mutate
            .as_ref()
            .is_some_and(|mutate| mutate.targets.is_empty())
        {
            issues.push(
                format!("spec.rules[{index}].mutate.targets"),
                format!(
                    "Forbidden: rules[{index}].mutate.targets has to be specified when mutateExistingOnPolicyUpdate is set"
                ),
            );
        }
    }
}

fn check_rule_names(policy: &PolicyContext<'_>, issues: &mut Issues) {
    let mut seen = HashSet::new();
    for (index, rule) in policy.spec.rules.iter().enumerate() {
        if rule.name.len() > MAX_NAME_LENGTH {
            issues.push(format!("spec.rules[{index}].name"), too_long());
        }
        if !seen.insert(rule.name.as_str()) {
            issues.push(
                format!("spec.rules[{index}].name"),
                format!("Duplicate rule name: '{}'", rule.name),
            );
        }
    }
}

fn check_processing_modes(policy: &PolicyContext<'_>, issues: &mut Issues) {
    let spec = policy.spec;
    if spec.admission != Some(false) {
        return;
    }
    if !policy.background {
        issues.push(
            "spec.admission",
            "disabling both admission and background processing is not allowed",
        );
    }
    let admission_only = spec
        .rules
        .iter()
        .any(|rule| has_mutate(rule) || has_generate(rule) || has_verify_images(rule));
    if admission_only {
        issues.push(
            "spec.admission",
            "disabling admission processing is only allowed with validation policies",
        );
    }
}

/// Failure action overrides must not send a namespace both to `Audit` and to `Enforce`, by name
/// or through wildcards (upstream `validateNamespaces`, for ClusterPolicies only). Like
/// upstream, the first conflict stops the check.
fn check_override_namespaces(
    overrides: &[ValidationFailureActionOverride],
    path: &str,
    issues: &mut Issues,
) {
    let mut audit = ActionNamespaces::default();
    let mut enforce = ActionNamespaces::default();
    for (index, entry) in overrides.iter().enumerate() {
        let Some(action) = entry.action else {
            issues.push(format!("{path}[{index}].action"), "invalid action");
            return;
        };
        let namespaces_path = format!("{path}[{index}].namespaces");
        let (own, opposite) = match action {
            ValidationFailureAction::Audit => (&mut audit, &enforce),
            ValidationFailureAction::Enforce => (&mut enforce, &audit),
        };
        let (wildcards, plain): (Vec<&str>, Vec<&str>) = entry
            .namespaces
            .iter()
            .map(String::as_str)
            .partition(|namespace| wildcard::has_wildcard(namespace));
        let conflicts: BTreeSet<&str> = plain
            .iter()
            .copied()
            .filter(|namespace| opposite.names.contains(namespace))
            .collect();
        if !conflicts.is_empty() {
            let listed: Vec<&str> = conflicts.into_iter().collect();
            issues.push(
                namespaces_path,
                format!("conflicting namespaces found: {}", listed.join(", ")),
            );
            return;
        }
        own.patterns.extend(wildcards);
        own.names.extend(plain);
        if let Some(message) = wildcard_conflict(&audit, &enforce) {
            issues.push(namespaces_path, message);
            return;
        }
    }
}

/// The namespaces sent to one failure action so far, sorted as upstream's sets.
#[derive(Default)]
struct ActionNamespaces<'a> {
    names: BTreeSet<&'a str>,
    patterns: BTreeSet<&'a str>,
}

/// A wildcard of one action matching a namespace or a wildcard of the other action.
fn wildcard_conflict(
    audit: &ActionNamespaces<'_>,
    enforce: &ActionNamespaces<'_>,
) -> Option<String> {
    let first_match = |patterns: &BTreeSet<&str>, texts: &BTreeSet<&str>| {
        patterns.iter().find_map(|pattern| {
            texts
                .iter()
                .find(|text| wildcard::matches(pattern, text))
                .map(|text| (pattern.to_string(), text.to_string()))
        })
    };
    for (patterns, namespaces) in [
        (&audit.patterns, &enforce.names),
        (&enforce.patterns, &audit.names),
    ] {
        if let Some((pattern, namespace)) = first_match(patterns, namespaces) {
            return Some(format!(
                "wildcard pattern '{pattern}' matches with namespace '{namespace}'"
            ));
        }
    }
    for (patterns, others) in [
        (&audit.patterns, &enforce.patterns),
        (&enforce.patterns, &audit.patterns),
    ] {
        if let Some((pattern, other)) = first_match(patterns, others) {
            return Some(format!(
                "wildcard pattern '{pattern}' conflicts with the pattern '{other}'"
            ));
        }
    }
    None
}
