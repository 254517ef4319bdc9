//! How rule outcomes become policy report results, as upstream's `ComputePolicyReportResult`:
//! a failure of an unscored policy is a warning, and so is a failure of an auditing rule when
//! `--audit-warn` is given.
use kyverno_api::kyverno::v1::validate::ValidationFailureAction;
use kyverno_api::policy_report::v1alpha2::PolicyResult;
use kyverno_policy_core::engine::LoadedPolicy;
use kyverno_policy_core::response::RuleStatus;

/// The annotation that, set to `"false"`, makes a policy's failures warnings.
const SCORED_ANNOTATION: &str = "policies.kyverno.io/scored";

/// Whether a policy's failures count as failures (they do unless annotated otherwise).
pub fn is_scored(policy: &LoadedPolicy) -> bool {
    policy
        .annotations
        .get(SCORED_ANNOTATION)
        .map(String::as_str)
        != Some("false")
}

/// Whether the rule `rule` of `policy` only audits: its `failureAction`, else the policy's
/// `validationFailureAction`, is `Audit` (the default).
pub fn is_audit(policy: &LoadedPolicy, rule: &str) -> bool {
    let rule_action = policy
        .rules
        .iter()
        .find(|candidate| candidate.name == rule)
        .and_then(|rule| rule.validate.as_ref())
        .and_then(|validate| validate.failure_action);
    let action = rule_action
        .or(policy.spec.validation_failure_action)
        .unwrap_or_default();
    action == ValidationFailureAction::Audit
}

/// The report result of a rule outcome. `audit_warn` is whether a failure is to be reported as
/// a warning because the rule only audits and `--audit-warn` was given.
pub fn report_result(status: RuleStatus, scored: bool, audit_warn: bool) -> PolicyResult {
    match status {
        RuleStatus::Pass => PolicyResult::Pass,
        RuleStatus::Fail if !scored || audit_warn => PolicyResult::Warn,
        RuleStatus::Fail => PolicyResult::Fail,
        RuleStatus::Warn => PolicyResult::Warn,
        RuleStatus::Error => PolicyResult::Error,
        RuleStatus::Skip => PolicyResult::Skip,
    }
}

/// The lowercase name of a result, as in test files and reports.
pub fn result_name(result: PolicyResult) -> &'static str {
    match result {
        PolicyResult::Pass => "pass",
        PolicyResult::Fail => "fail",
        PolicyResult::Warn => "warn",
        PolicyResult::Error => "error",
        PolicyResult::Skip => "skip",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyverno_api::kyverno::v1::policy::ClusterPolicy;

    fn policy(yaml: &str) -> LoadedPolicy {
        let policy: ClusterPolicy = serde_saphyr::from_str(yaml).expect("valid policy");
        LoadedPolicy::from_cluster_policy(policy).expect("loads")
    }

    #[test]
    fn failures_of_unscored_policies_are_warnings() {
        let unscored = policy(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\n  annotations:\n    policies.kyverno.io/scored: \"false\"\nspec:\n  rules: []\n",
        );
        assert!(!is_scored(&unscored));
        assert_eq!(
            report_result(RuleStatus::Fail, false, false),
            PolicyResult::Warn
        );
        assert_eq!(
            report_result(RuleStatus::Fail, true, false),
            PolicyResult::Fail
        );
        assert_eq!(
            report_result(RuleStatus::Fail, true, true),
            PolicyResult::Warn
        );
        assert_eq!(
            report_result(RuleStatus::Error, false, true),
            PolicyResult::Error
        );
        assert_eq!(
            report_result(RuleStatus::Skip, true, false),
            PolicyResult::Skip
        );
    }

    #[test]
    fn rule_failure_action_wins_over_the_policy_one() {
        let enforced = policy(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: audited\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    validate:\n      failureAction: Audit\n      pattern:\n        metadata:\n          name: \"?*\"\n  - name: enforced\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    validate:\n      pattern:\n        metadata:\n          name: \"?*\"\n",
        );
        assert!(is_scored(&enforced));
        assert!(is_audit(&enforced, "audited"));
        assert!(!is_audit(&enforced, "enforced"));
        assert!(is_audit(
            &policy(
                "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules: []\n"
            ),
            "any"
        ));
    }
}
