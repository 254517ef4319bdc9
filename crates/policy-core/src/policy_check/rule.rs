//! Checks of a rule's shape: one rule type, and `match`/`exclude` blocks that select something.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kyverno_api::kyverno::v1::match_resources::{MatchResources, ResourceDescription};
use kyverno_api::kyverno::v1::rule::Rule;
use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

use super::{Issues, RuleContext, has_generate, has_mutate, has_validate, has_verify_images};
use crate::matching::validate_match_resources;
use crate::wildcard;

/// The message for rules that match no kind but check more than metadata.
const METADATA_ONLY: &str = "policy can only deal with the metadata field of the resource if the rule does not match any kind";

pub(super) fn check(rule: &RuleContext<'_>, issues: &mut Issues) {
    check_rule_type(rule, issues);
    check_blocks(rule, issues);
    check_matched_resources(rule, issues);
    if matches_empty_set(&rule.rule.match_resources, rule.rule.exclude.as_ref()) {
        issues.push(rule.path.clone(), "Rule is matching an empty set");
    }
    check_wildcard_kinds(rule, issues);
}

fn check_rule_type(rule: &RuleContext<'_>, issues: &mut Issues) {
    let name = &rule.rule.name;
    let types = [
        has_mutate(rule.rule),
        has_validate(rule.rule),
        has_generate(rule.rule),
        has_verify_images(rule.rule),
    ];
    match types.iter().filter(|&&present| present).count() {
        0 => issues.push(
            rule.path.clone(),
            format!(
                "No operation defined in the rule '{name}'.(supported operations: mutate,validate,generate,verifyImages)"
            ),
        ),
        1 => {}
        _ => issues.push(
            rule.path.clone(),
            format!(
                "Multiple operations defined in the rule '{name}', only one operation (mutate,validate,generate,verifyImages) is allowed per rule"
            ),
        ),
    }
    if !rule.rule.image_extractors.is_empty() && !has_verify_images(rule.rule) {
        issues.push(
            rule.at("imageExtractors"),
            format!(
                "Invalid rule spec for rule '{name}', imageExtractors can only be defined for verifyImages rule"
            ),
        );
    }
}

/// The `match` and `exclude` blocks of a rule with their names.
fn blocks(rule: &Rule) -> impl Iterator<Item = (&'static str, &MatchResources)> {
    [
        ("match", Some(&rule.match_resources)),
        ("exclude", rule.exclude.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, block)| block.map(|block| (name, block)))
}

fn check_blocks(rule: &RuleContext<'_>, issues: &mut Issues) {
    for (name, block) in blocks(rule.rule) {
        let path = rule.at(name);
        for problem in validate_match_resources(block, &path, rule.policy.namespaced) {
            issues.push(problem.path, problem.problem.to_string());
        }
        if (!block.any.is_empty() || !block.all.is_empty()) && !is_empty(block.resources.as_ref()) {
            issues.push(
                path,
                format!("can't specify any/all together with {name} resources"),
            );
        }
    }
}

fn is_empty(description: Option<&ResourceDescription>) -> bool {
    description.is_none_or(|description| *description == ResourceDescription::default())
}

/// Every filter of `match` must describe resources, with at least one kind.
fn check_matched_resources(rule: &RuleContext<'_>, issues: &mut Issues) {
    let block = &rule.rule.match_resources;
    let filters: Vec<(String, Option<&ResourceDescription>)> = if !block.any.is_empty() {
        described_filters("match.any", &block.any)
    } else if !block.all.is_empty() {
        described_filters("match.all", &block.all)
    } else {
        vec![("match.resources".to_owned(), block.resources.as_ref())]
    };
    let mut kinds_reported = false;
    for (path, description) in filters {
        let Some(description) = description.filter(|d| !is_empty(Some(d))) else {
            issues.push(rule.at(&path), "match resources not specified");
            continue;
        };
        // Upstream reports the first filter without kinds only.
        if description.kinds.is_empty() && !kinds_reported {
            kinds_reported = true;
            let message = if only_deals_with_metadata(rule.rule) {
                "at least one element must be specified in a kind block, the kind attribute is mandatory when working with the resources element"
            } else {
                METADATA_ONLY
            };
            issues.push(rule.at(&format!("{path}.kinds")), message);
        }
    }
}

fn described_filters<'a>(
    list: &str,
    filters: &'a [kyverno_api::kyverno::v1::match_resources::ResourceFilter],
) -> Vec<(String, Option<&'a ResourceDescription>)> {
    filters
        .iter()
        .enumerate()
        .map(|(index, filter)| {
            (
                format!("{list}[{index}].resources"),
                filter.resources.as_ref(),
            )
        })
        .collect()
}

/// Whether the rule's mutations and patterns only touch `metadata` (upstream
/// `ruleOnlyDealsWithResourceMetaData`).
fn only_deals_with_metadata(rule: &Rule) -> bool {
    let metadata_only = |pattern: &Value| match pattern {
        Value::Object(fields) => fields.keys().all(|key| key == "metadata"),
        _ => true,
    };
    if let Some(mutate) = &rule.mutate {
        if !mutate
            .patch_strategic_merge
            .as_ref()
            .is_none_or(metadata_only)
        {
            return false;
        }
        // Upstream decodes the patch as JSON only; a YAML patch is not looked at.
        if let Some(Value::Array(operations)) = mutate
            .patches_json6902
            .as_deref()
            .and_then(|patch| serde_json::from_str::<Value>(patch).ok())
        {
            let outside_metadata = operations.iter().any(|operation| {
                !operation
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .starts_with("/metadata")
            });
            if outside_metadata {
                return false;
            }
        }
    }
    if let Some(validate) = &rule.validate {
        if !validate.pattern.as_ref().is_none_or(metadata_only) {
            return false;
        }
        let any_pattern_metadata_only = match &validate.any_pattern {
            None => true,
            Some(Value::Array(patterns)) => patterns.iter().all(metadata_only),
            Some(_) => false,
        };
        if !any_pattern_metadata_only {
            return false;
        }
    }
    true
}

/// Whether `exclude` excludes everything `match` selects (upstream
/// `ValidateMatchExcludeConflict`): an `any` filter found in both blocks, or an older-form
/// `exclude` at least as wide as the older-form `match` in every respect.
fn matches_empty_set(matched: &MatchResources, excluded: Option<&MatchResources>) -> bool {
    let Some(excluded) = excluded else {
        return false;
    };
    if !excluded.all.is_empty() || !matched.all.is_empty() {
        return false;
    }
    if !matched.any.is_empty() && !excluded.any.is_empty() {
        return matched
            .any
            .iter()
            .any(|filter| excluded.any.contains(filter));
    }
    if *excluded == MatchResources::default() {
        return false;
    }
    let default = ResourceDescription::default();
    let (m, e) = (
        matched.resources.as_ref().unwrap_or(&default),
        excluded.resources.as_ref().unwrap_or(&default),
    );
    let (m_user, e_user) = (&matched.user_info, &excluded.user_info);
    let covers = |wide: &[String], narrow: &[String]| {
        wide.is_empty() || (!narrow.is_empty() && narrow.iter().all(|item| wide.contains(item)))
    };
    if !covers(&e_user.roles, &m_user.roles)
        || !covers(&e_user.cluster_roles, &m_user.cluster_roles)
    {
        return false;
    }
    if !e_user.subjects.is_empty()
        && (m_user.subjects.is_empty()
            || !m_user
                .subjects
                .iter()
                .all(|subject| e_user.subjects.contains(subject)))
    {
        return false;
    }
    if let Some(name) = e.name.as_deref().filter(|name| !name.is_empty())
        && !wildcard::matches(name, m.name.as_deref().unwrap_or_default())
    {
        return false;
    }
    if !e.names.is_empty() {
        return m.names.iter().any(|matched_name| {
            e.names
                .iter()
                .any(|excluded_name| wildcard::matches(excluded_name, matched_name))
        });
    }
    if !covers(&e.namespaces, &m.namespaces) || !covers(&e.kinds, &m.kinds) {
        return false;
    }
    if !selector_covers(m.selector.as_ref(), e.selector.as_ref())
        || !selector_covers(m.namespace_selector.as_ref(), e.namespace_selector.as_ref())
    {
        return false;
    }
    m.annotations == e.annotations
}

/// Whether the excluded selector selects at least what the matched one does, as upstream
/// compares them: both set, and the excluded requirements include the matched ones.
fn selector_covers(matched: Option<&LabelSelector>, excluded: Option<&LabelSelector>) -> bool {
    let (Some(matched), Some(excluded)) = (matched, excluded) else {
        return matched.is_none() && excluded.is_none();
    };
    let expressions_covered = match &excluded.match_expressions {
        Some(excluded_expressions) if !excluded_expressions.is_empty() => matched
            .match_expressions
            .as_ref()
            .is_some_and(|expressions| {
                !expressions.is_empty()
                    && expressions
                        .iter()
                        .all(|expression| excluded_expressions.contains(expression))
            }),
        _ => true,
    };
    let labels_covered = match &excluded.match_labels {
        Some(excluded_labels) if !excluded_labels.is_empty() => {
            matched.match_labels.as_ref().is_some_and(|labels| {
                !labels.is_empty()
                    && labels
                        .iter()
                        .all(|(key, value)| excluded_labels.get(key) == Some(value))
            })
        }
        _ => true,
    };
    expressions_covered && labels_covered
}

/// Keys a deny condition of a kind-wildcard rule may use besides `request.object.metadata.`.
static WILDCARD_ALLOWED_VARIABLE: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| {
    Regex::new(r"\{\{\s*(request\.|serviceAccountName|serviceAccountNamespace)[^{}]*\}\}")
});

/// The kind `*` selects every kind; upstream restricts what such rules may do.
fn check_wildcard_kinds(rule: &RuleContext<'_>, issues: &mut Issues) {
    for (name, block) in blocks(rule.rule) {
        let lists =
            block
                .any
                .iter()
                .enumerate()
                .map(|(index, filter)| (format!("{name}.any[{index}]"), filter.resources.as_ref()))
                .chain(block.all.iter().enumerate().map(|(index, filter)| {
                    (format!("{name}.all[{index}]"), filter.resources.as_ref())
                }))
                .chain([(name.to_owned(), block.resources.as_ref())]);
        for (path, description) in lists {
            let Some(kinds) = description.map(|d| &d.kinds) else {
                continue;
            };
            if let Some(message) = wildcard_kinds_problem(rule, kinds) {
                issues.push(rule.at(&format!("{path}.resources.kinds")), message);
            }
        }
    }
}

fn wildcard_kinds_problem(rule: &RuleContext<'_>, kinds: &[String]) -> Option<&'static str> {
    if !kinds.iter().any(|kind| kind == "*") {
        return None;
    }
    if rule.policy.background {
        return Some(
            "wildcard policy not allowed in background mode. Set spec.background=false to disable background mode for this policy rule",
        );
    }
    if kinds.len() > 1 {
        return Some("wildcard policy can not deal with more than one kind");
    }
    let r = rule.rule;
    let validate_foreach = r
        .validate
        .as_ref()
        .is_some_and(|validate| !validate.foreach.is_empty());
    if has_generate(r) || has_verify_images(r) || validate_foreach {
        return Some("wildcard policy does not support rule type");
    }
    if let Some(validate) = r.validate.as_ref().filter(|_| has_validate(r)) {
        let has_patterns = validate.pattern.is_some() || validate.any_pattern.is_some();
        if has_patterns && !only_deals_with_metadata(r) {
            return Some(METADATA_ONLY);
        }
        if let Some(Value::Array(conditions)) = validate
            .deny
            .as_ref()
            .and_then(|deny| deny.conditions.as_ref())
            && conditions
                .iter()
                .any(|condition| !deny_key_on_metadata(condition))
        {
            return Some(METADATA_ONLY);
        }
    }
    if has_mutate(r) && !only_deals_with_metadata(r) {
        return Some(METADATA_ONLY);
    }
    None
}

/// Whether a deny condition (older list form) of a kind-wildcard rule looks at metadata only.
fn deny_key_on_metadata(condition: &Value) -> bool {
    let Some(key) = condition.get("key").and_then(Value::as_str) else {
        return true;
    };
    let allowed_variable = WILDCARD_ALLOWED_VARIABLE
        .as_ref()
        .is_ok_and(|regex| regex.is_match(key));
    key.contains("request.object.metadata.")
        || (allowed_variable && !key.contains("request.object.spec"))
}
