//! Checks of mutate rules (upstream `pkg/policy/mutate` and the JSON patch checks of
//! `pkg/validation/policy`).
use kyverno_api::kyverno::v1::mutate::ForEachMutation;
use serde_json::Value;

use super::validate::check_label_values;
use super::variables::replace_variables;
use super::{Issues, RuleContext, go_unmarshal_error, join};

/// What variables in a JSON patch are replaced with before the patch is checked.
const PATCH_VARIABLE_PLACEHOLDER: &str = "kyvernojsonpatchvariable";

pub(super) fn check(rule: &RuleContext<'_>, issues: &mut Issues) {
    let Some(mutate) = &rule.rule.mutate else {
        return;
    };
    let path = rule.at("mutate");
    let json_patch = mutate
        .patches_json6902
        .as_deref()
        .filter(|patch| !patch.is_empty());
    let strategic_merge = mutate.patch_strategic_merge.as_ref();
    if !mutate.foreach.is_empty() {
        if strategic_merge.is_some() || json_patch.is_some() {
            issues.push(
                join(&path, "foreach"),
                "only one of `foreach`, `patchStrategicMerge`, or `patchesJson6902` is allowed",
            );
        } else {
            check_foreach(&mutate.foreach, &join(&path, "foreach"), issues);
        }
    } else if strategic_merge.is_some() && json_patch.is_some() {
        issues.push(
            path.clone(),
            "only one of `patchStrategicMerge` or `patchesJson6902` is allowed",
        );
    }
    if let Some(patch) = strategic_merge {
        check_label_values(patch, &join(&path, "patchStrategicMerge"), issues);
    }
    if let Some(patch) = json_patch {
        check_json_patch(patch, &join(&path, "patchesJson6902"), issues);
    }
    if rule.policy.namespaced {
        for (index, target) in mutate.targets.iter().enumerate() {
            let namespace = target.resource.namespace.as_deref().unwrap_or_default();
            if !namespace.is_empty() && namespace != rule.policy.namespace {
                issues.push(
                    format!("{path}.targets[{index}].namespace"),
                    format!(
                        "Invalid value: {namespace:?}: This field can be ignored or should have value of the namespace where the policy is being created"
                    ),
                );
            }
        }
    }
}

/// Each entry holds exactly one patch, or only a nested foreach.
fn check_foreach(foreach: &[ForEachMutation], path: &str, issues: &mut Issues) {
    for (index, entry) in foreach.iter().enumerate() {
        let entry_path = format!("{path}[{index}]");
        let json_patch = entry
            .patches_json6902
            .as_deref()
            .is_some_and(|p| !p.is_empty());
        let strategic_merge = entry.patch_strategic_merge.is_some();
        match entry.nested() {
            Err(error) => issues.push(
                join(&entry_path, "foreach"),
                format!("invalid nested foreach: {error}"),
            ),
            Ok(nested) if !nested.is_empty() => {
                if !entry.context.is_empty()
                    || entry.preconditions.is_some()
                    || json_patch
                    || strategic_merge
                {
                    issues.push(
                        entry_path,
                        "a nested foreach cannot contain other declarations",
                    );
                } else {
                    check_foreach(&nested, &join(&entry_path, "foreach"), issues);
                }
            }
            Ok(_) => {
                if json_patch == strategic_merge {
                    issues.push(
                        entry_path.clone(),
                        "only one of `patchStrategicMerge` or `patchesJson6902` is allowed",
                    );
                }
                if let Some(patch) = &entry.patch_strategic_merge {
                    check_label_values(patch, &join(&entry_path, "patchStrategicMerge"), issues);
                }
            }
        }
    }
}

/// A JSON patch (written in YAML or JSON) must be a list of operations whose paths start with
/// `/`, with known operations that carry a value when they need one.
fn check_json_patch(patch: &str, path: &str, issues: &mut Issues) {
    let patch = replace_variables(patch, PATCH_VARIABLE_PLACEHOLDER);
    let operations = match serde_saphyr::from_str::<Value>(&patch) {
        Ok(Value::Array(operations)) => operations,
        Ok(Value::Null) => return,
        Ok(other) => {
            issues.push(path, go_unmarshal_error(&other, "jsonpatch.Patch"));
            return;
        }
        Err(error) => {
            issues.push(path, format!("invalid patchesJson6902: {error}"));
            return;
        }
    };
    for operation in &operations {
        let Some(fields) = operation.as_object() else {
            issues.push(path, go_unmarshal_error(operation, "jsonpatch.Operation"));
            continue;
        };
        match fields.get("path") {
            Some(Value::String(target)) if !target.starts_with('/') => issues.push(
                path,
                format!("path must begin with a forward slash: {target}"),
            ),
            Some(Value::String(_)) => {}
            None | Some(Value::Null) => issues.push(
                path,
                "path must begin with a forward slash: operation missing path field: missing value",
            ),
            Some(other) => issues.push(path, go_unmarshal_error(other, "string")),
        }
        let kind = fields
            .get("op")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        match kind {
            "remove" | "move" | "copy" => {}
            "add" | "replace" | "test" => {
                if !fields.contains_key("value") {
                    issues.push(
                        path,
                        "invalid value: operation, missing value field: missing value",
                    );
                }
            }
            _ => issues.push(path, format!("unexpected kind: {kind}")),
        }
    }
}
