//! Checks of generate rules (upstream `Generation.Validate` and `pkg/policy/generate`).
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kyverno_api::kyverno::v1::generate::{CloneFrom, GeneratePattern};
use serde_json::json;

use super::variables::object_has_variables;
use super::{Issues, PolicyContext, RuleContext, join, pattern_issue};
use crate::pattern::check_pattern_anchors;
use crate::wildcard;

pub(super) fn check(rule: &RuleContext<'_>, issues: &mut Issues) {
    let Some(generate) = &rule.rule.generate else {
        return;
    };
    let path = rule.at("generate");
    let pattern = &generate.pattern;
    let sources = [
        pattern.data.is_some(),
        pattern
            .clone
            .as_ref()
            .is_some_and(|clone| *clone != CloneFrom::default()),
        clone_list_kinds(pattern).is_some(),
        !generate.foreach.is_empty(),
    ];
    if sources.iter().filter(|&&set| set).count() > 1 {
        issues.push(
            path.clone(),
            "Forbidden: only one of generate patterns(data, clone, cloneList and foreach) can be specified",
        );
    } else if generate.foreach.is_empty() {
        check_pattern(pattern, &path, rule.policy, issues);
    } else {
        for (index, entry) in generate.foreach.iter().enumerate() {
            check_pattern(
                &entry.pattern,
                &format!("{path}.foreach[{index}]"),
                rule.policy,
                issues,
            );
        }
    }
    let selector = pattern
        .clone_list
        .as_ref()
        .and_then(|list| list.selector.as_ref());
    if selector.is_some_and(selector_has_wildcards) {
        issues.push(
            join(&path, "cloneList.selector"),
            "wildcard characters `*/?` not supported",
        );
    }
    if !rule.rule.cel_preconditions.is_empty() {
        issues.push(
            rule.at("celPreconditions"),
            "celPrecondition can only be used with validate.cel",
        );
    }
    if let Some(data) = &pattern.data
        && let Err(error) = check_pattern_anchors(data, |_| false)
    {
        let (at, message) = pattern_issue(&join(&path, "data"), data, &error);
        issues.push(
            at,
            format!("anchors not supported on generate resources: {message}"),
        );
    }
    let generated_kind = pattern.resource.kind.as_deref().unwrap_or_default();
    let matched_kinds = rule
        .rule
        .match_resources
        .resources
        .as_ref()
        .map(|resources| resources.kinds.as_slice())
        .unwrap_or_default();
    if matched_kinds.iter().any(|kind| kind == generated_kind) {
        issues.push(
            join(&path, "kind"),
            "generation kind and match resource kind should not be the same",
        );
    }
}

fn clone_list_kinds(pattern: &GeneratePattern) -> Option<&[String]> {
    pattern
        .clone_list
        .as_ref()
        .map(|list| list.kinds.as_slice())
        .filter(|kinds| !kinds.is_empty())
}

/// Checks one generated resource: its identity, its namespace against its scope and the
/// policy's, and its clone source.
fn check_pattern(
    pattern: &GeneratePattern,
    path: &str,
    policy: &PolicyContext<'_>,
    issues: &mut Issues,
) {
    let resource = &pattern.resource;
    let api_version = resource.api_version.as_deref().unwrap_or_default();
    let kind = resource.kind.as_deref().unwrap_or_default();
    let namespace = resource.namespace.as_deref().unwrap_or_default();
    let cluster_scoped = (policy.is_cluster_scoped)(&format!("{api_version}/{kind}"));
    let namespace_path = join(path, "namespace");
    if policy.namespaced {
        let clone_namespace = pattern
            .clone
            .as_ref()
            .filter(|clone| clone.name.as_deref().is_some_and(|name| !name.is_empty()))
            .map(|clone| clone.namespace.as_deref().unwrap_or_default());
        let mismatch = if cluster_scoped {
            Some(format!(
                "the target must be a namespaced resource: {api_version}/{kind}"
            ))
        } else if namespace != policy.namespace {
            Some(format!(
                "a namespaced policy cannot generate resources in other namespaces, expected: {}, received: {namespace}",
                policy.namespace
            ))
        } else {
            clone_namespace
                .filter(|clone_namespace| *clone_namespace != policy.namespace)
                .map(|clone_namespace| {
                    format!(
                        "a namespaced policy cannot clone resources from other namespaces, expected: {}, received: {clone_namespace}",
                        policy.namespace
                    )
                })
        };
        if let Some(mismatch) = mismatch {
            issues.push(
                namespace_path.clone(),
                format!("Forbidden: target resource scope mismatched: {mismatch}"),
            );
        }
    }
    if !kind.is_empty() {
        if !cluster_scoped && namespace.is_empty() {
            issues.push(
                namespace_path.clone(),
                "Forbidden: target namespace must be set for a namespaced resource",
            );
        } else if cluster_scoped && !namespace.is_empty() {
            issues.push(
                namespace_path,
                "Forbidden: target namespace must not be set for a cluster-wide resource",
            );
        }
    }
    let source = json!({
        "kind": kind,
        "apiVersion": api_version,
        "clone": pattern.clone,
        "cloneList": pattern.clone_list,
    });
    if object_has_variables(&source) {
        issues.push(
            join(path, "clone/cloneList"),
            "Forbidden: Generation Rule Clone/CloneList should not have variables",
        );
    }
    if clone_list_kinds(pattern).is_none() {
        for (field, value) in [
            ("kind", kind),
            ("name", resource.name.as_deref().unwrap_or_default()),
            ("apiVersion", api_version),
        ] {
            if value.is_empty() {
                issues.push(
                    join(path, field),
                    format!("Forbidden: {field} can not be empty"),
                );
            }
        }
    }
    check_clone_list(pattern, path, policy, issues);
}

/// The sources of `cloneList` must share one scope, and their namespace must fit it.
fn check_clone_list(
    pattern: &GeneratePattern,
    path: &str,
    policy: &PolicyContext<'_>,
    issues: &mut Issues,
) {
    let (Some(list), Some(kinds)) = (pattern.clone_list.as_ref(), clone_list_kinds(pattern)) else {
        return;
    };
    let namespace = list.namespace.as_deref().unwrap_or_default();
    let kinds_path = join(path, "cloneList.kinds");
    let namespace_path = join(path, "cloneList.namespace");
    if policy.namespaced {
        for kind in kinds {
            if (policy.is_cluster_scoped)(kind) {
                issues.push(
                    kinds_path.clone(),
                    format!(
                        "Forbidden: the source in cloneList must be a namespaced resource: {kind}"
                    ),
                );
            }
        }
        if namespace != policy.namespace {
            issues.push(
                namespace_path.clone(),
                format!(
                    "Forbidden: a namespaced policy cannot clone resources from other namespace, expected: {}, received: {namespace}",
                    policy.namespace
                ),
            );
        }
    }
    let mut scopes = kinds.iter().map(|kind| (policy.is_cluster_scoped)(kind));
    let first_scope = scopes.next().unwrap_or_default();
    let cluster_scope = if scopes.all(|scope| scope == first_scope) {
        first_scope
    } else {
        issues.push(
            kinds_path,
            "Forbidden: mixed scope of target resources is forbidden",
        );
        false
    };
    if !cluster_scope && namespace.is_empty() {
        issues.push(
            namespace_path,
            "Forbidden: namespace is required for namespaced target resources",
        );
    } else if cluster_scope && !policy.namespaced && !namespace.is_empty() {
        issues.push(
            namespace_path,
            "Forbidden: namespace is forbidden for cluster-wide target resources",
        );
    }
}

fn selector_has_wildcards(selector: &LabelSelector) -> bool {
    let labels = selector
        .match_labels
        .iter()
        .flatten()
        .flat_map(|(key, value)| [key, value]);
    let expressions = selector
        .match_expressions
        .iter()
        .flatten()
        .flat_map(|expression| {
            std::iter::once(&expression.key).chain(expression.values.iter().flatten())
        });
    labels
        .chain(expressions)
        .any(|text| wildcard::has_wildcard(text))
}
