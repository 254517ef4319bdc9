//! Checks of validate rules (upstream `pkg/policy/validate`): exactly one kind of check,
//! well-formed patterns and foreach loops, CEL and podSecurity declarations.
use kyverno_api::kyverno::v1::validate::{Cel, ForEachValidation, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::{Issues, RuleContext, go_unmarshal_error, join, pattern_issue, without_path_prefix};
use crate::pattern::check_pattern;
use crate::pod_security::check_spec;

const LABELS_NOT_STRINGS: &str = "labels and annotations supports only string values, \"use double quotes around the non string values\"";

pub(super) fn check(rule: &RuleContext<'_>, issues: &mut Issues) {
    let Some(validate) = &rule.rule.validate else {
        return;
    };
    let path = rule.at("validate");
    match check_count(validate) {
        0 => issues.push(
            path.clone(),
            "one of pattern, anyPattern, deny, foreach, cel must be specified",
        ),
        1 => {}
        _ => issues.push(
            path.clone(),
            "only one of pattern, anyPattern, deny, foreach, cel can be specified",
        ),
    }
    if let Some(pattern) = &validate.pattern {
        let pattern_path = join(&path, "pattern");
        if let Err(error) = check_pattern(pattern) {
            let (at, message) = pattern_issue(&pattern_path, pattern, &error);
            issues.push(at, message);
        }
        check_label_values(pattern, &pattern_path, issues);
    }
    if let Some(any_pattern) = &validate.any_pattern {
        check_any_pattern(any_pattern, &join(&path, "anyPattern"), issues);
    }
    check_foreach(&validate.foreach, &join(&path, "foreach"), issues);
    if !rule.rule.cel_preconditions.is_empty() && validate.cel.is_none() {
        issues.push(
            rule.at("celPreconditions"),
            "celPrecondition can only be used with validate.cel",
        );
    }
    if let Some(cel) = &validate.cel {
        check_cel(cel, &join(&path, "cel"), issues);
    }
    if let Some(pod_security) = &validate.pod_security {
        for error in check_spec(pod_security, &join(&path, "podSecurity")) {
            let message = without_path_prefix(&error.to_string(), &error.field);
            issues.push(error.field, message);
        }
    }
}

/// How many kinds of checks the rule declares.
fn check_count(validate: &Validation) -> usize {
    [
        validate.pattern.is_some(),
        validate.any_pattern.is_some(),
        validate.deny.is_some(),
        !validate.foreach.is_empty(),
        validate.pod_security.is_some(),
        validate.cel.is_some(),
        validate
            .manifests
            .as_ref()
            .is_some_and(|manifests| !manifests.attestors.is_empty()),
        validate.assert.is_some(),
    ]
    .into_iter()
    .filter(|&declared| declared)
    .count()
}

fn check_any_pattern(any_pattern: &Value, path: &str, issues: &mut Issues) {
    let Value::Array(patterns) = any_pattern else {
        issues.push(
            path,
            format!(
                "failed to deserialize anyPattern, expect array: {}",
                go_unmarshal_error(any_pattern, "[]interface {}")
            ),
        );
        return;
    };
    for (index, pattern) in patterns.iter().enumerate() {
        let pattern_path = format!("{path}[{index}]");
        if let Err(error) = check_pattern(pattern) {
            let (at, message) = pattern_issue(&pattern_path, pattern, &error);
            issues.push(at, message);
        }
        check_label_values(pattern, &pattern_path, issues);
    }
}

/// The nested `foreach` list of a validate foreach entry; empty when unset.
pub(super) fn nested_validations(
    entry: &ForEachValidation,
) -> Result<Vec<ForEachValidation>, serde_json::Error> {
    match &entry.foreach {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(list) => Vec::<ForEachValidation>::deserialize(list),
    }
}

/// Each top-level entry needs a list and exactly one check; nested lists must decode.
fn check_foreach(foreach: &[ForEachValidation], path: &str, issues: &mut Issues) {
    for (index, entry) in foreach.iter().enumerate() {
        let entry_path = format!("{path}[{index}]");
        if entry.list.as_deref().is_none_or(str::is_empty) {
            issues.push(join(&entry_path, "list"), "foreach.list is required");
        }
        let nested = check_nested_foreach(entry, &entry_path, issues);
        let count = [
            entry.pattern.is_some(),
            entry.any_pattern.is_some(),
            entry.deny.is_some(),
            nested,
        ]
        .into_iter()
        .filter(|&declared| declared)
        .count();
        match count {
            0 => issues.push(
                entry_path.clone(),
                "one of pattern, anyPattern, deny, or a nested foreach must be specified",
            ),
            1 => {}
            _ => issues.push(
                entry_path.clone(),
                "only one of pattern, anyPattern, deny, or a nested foreach can be specified",
            ),
        }
        if let Some(pattern) = &entry.pattern {
            check_label_values(pattern, &join(&entry_path, "pattern"), issues);
        }
    }
}

/// Reports nested lists that do not decode, at any depth; tells whether the entry has a
/// non-empty nested list.
fn check_nested_foreach(entry: &ForEachValidation, path: &str, issues: &mut Issues) -> bool {
    match nested_validations(entry) {
        Ok(nested) => {
            for (index, nested_entry) in nested.iter().enumerate() {
                check_nested_foreach(nested_entry, &format!("{path}.foreach[{index}]"), issues);
            }
            !nested.is_empty()
        }
        Err(error) => {
            issues.push(
                join(path, "foreach"),
                format!("invalid nested foreach: {error}"),
            );
            true
        }
    }
}

fn check_cel(cel: &Cel, path: &str, issues: &mut Issues) {
    for (index, expression) in cel.expressions.iter().enumerate() {
        if expression.expression.is_empty() {
            issues.push(
                format!("{path}.expressions[{index}].expression"),
                "cel.expressions.expression is required",
            );
        }
    }
    let blank = |text: &Option<String>| text.as_deref().is_none_or(str::is_empty);
    if let Some(kind) = &cel.param_kind {
        if blank(&kind.api_version) {
            issues.push(
                format!("{path}.paramKind.apiVersion"),
                "cel.paramKind.apiVersion is required",
            );
        }
        if blank(&kind.kind) {
            issues.push(
                format!("{path}.paramKind.kind"),
                "cel.paramKind.kind is required",
            );
        }
        if cel.param_ref.is_none() {
            issues.push(format!("{path}.paramRef"), "cel.paramRef is required");
        }
    }
    if let Some(reference) = &cel.param_ref {
        if blank(&reference.name) == reference.selector.is_none() {
            issues.push(
                format!("{path}.paramRef"),
                "one of cel.paramRef.name or cel.paramRef.selector must be set",
            );
        }
        if reference.parameter_not_found_action.is_none() {
            issues.push(
                format!("{path}.paramRef.parameterNotFoundAction"),
                "cel.paramRef.parameterNotFoundAction is required",
            );
        }
        if cel.param_kind.is_none() {
            issues.push(format!("{path}.paramKind"), "cel.paramKind is required");
        }
    }
    for (index, annotation) in cel.audit_annotations.iter().enumerate() {
        let annotation_path = format!("{path}.auditAnnotations[{index}]");
        if annotation.key.is_empty() {
            issues.push(
                format!("{annotation_path}.key"),
                "cel.auditAnnotation.key is required",
            );
        }
        if annotation.value_expression.is_empty() {
            issues.push(
                format!("{annotation_path}.valueExpression"),
                "cel.auditAnnotation.valueExpression is required",
            );
        }
    }
}

/// Label and annotation values written in `metadata` and `spec.template.metadata` of a pattern
/// or patch must be strings (upstream `isLabelAndAnnotationsString`).
pub(super) fn check_label_values(pattern: &Value, path: &str, issues: &mut Issues) {
    let locations = [
        (pattern.get("metadata"), "metadata"),
        (
            pattern
                .get("spec")
                .and_then(|spec| spec.get("template"))
                .and_then(|template| template.get("metadata")),
            "spec.template.metadata",
        ),
    ];
    for (metadata, metadata_path) in locations {
        let Some(metadata) = metadata else {
            continue;
        };
        for field in ["labels", "annotations"] {
            let Some(Value::Object(values)) = metadata.get(field) else {
                continue;
            };
            for (key, value) in values {
                if !value.is_string() {
                    issues.push(
                        format!("{path}.{metadata_path}.{field}.{key}"),
                        LABELS_NOT_STRINGS,
                    );
                }
            }
        }
    }
}
