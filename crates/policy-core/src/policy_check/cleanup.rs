//! Checks of a CleanupPolicy or ClusterCleanupPolicy (upstream `pkg/validation/cleanuppolicy`
//! and the API type's `Validate`): the `match` and `exclude` blocks, the context entries and the
//! conditions. The cron `schedule` is checked by the cleanup controller, which runs it.
use kyverno_api::kyverno::v2::cleanup_policy::Spec;

use super::conditions::check_typed;
use super::context::entry_problem;
use super::{Issues, PolicyIssue};
use crate::matching::validate_match_resources;

/// Every problem of a cleanup policy's spec, with its path (`spec.conditions.any[0].operator`);
/// `namespaced` for a CleanupPolicy.
pub fn check_cleanup_policy(namespaced: bool, spec: &Spec) -> Vec<PolicyIssue> {
    let mut issues = Issues::default();
    let blocks = [
        ("spec.match", Some(&spec.match_resources)),
        ("spec.exclude", spec.exclude.as_ref()),
    ];
    for (path, block) in blocks {
        for problem in block
            .into_iter()
            .flat_map(|block| validate_match_resources(block, path, namespaced))
        {
            issues.push(problem.path, problem.problem.to_string());
        }
    }
    for (index, entry) in spec.context.iter().enumerate() {
        if let Some(message) = entry_problem(entry, false) {
            issues.push(format!("spec.context[{index}]"), message);
        }
    }
    if let Some(conditions) = &spec.conditions {
        check_typed(conditions, "spec.conditions", &mut issues);
    }
    issues.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_come_with_their_paths() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "schedule": "* * * * *",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}], "all": [{"resources": {"kinds": ["Pod"]}}]},
            "context": [{"name": "", "variable": {"value": 1}}],
            "conditions": {"any": [{"key": "a", "value": "b"}]}
        }))
        .expect("a spec");
        let paths: Vec<String> = check_cleanup_policy(false, &spec)
            .into_iter()
            .map(|issue| issue.path)
            .collect();
        assert_eq!(
            paths,
            [
                "spec.match",
                "spec.context[0]",
                "spec.conditions.any[0].operator"
            ]
        );
        let valid: Spec = serde_json::from_value(serde_json::json!({
            "schedule": "* * * * *",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "conditions": {"any": [{"key": "a", "operator": "Equals", "value": "b"}]}
        }))
        .expect("a spec");
        assert_eq!(check_cleanup_policy(false, &valid), []);
    }
}
