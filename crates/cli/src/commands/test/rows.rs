//! Comparing the engine's answers with a test's expected results, row by row, as upstream's
//! `printTestResult` does:
//!
//! - a result item names resources by `name` or `namespace/name` (of its `kind`, when given);
//!   each resource it finds is one row per matching rule response; a named resource that the
//!   test does not load is a `Not found` row (a failure);
//! - rules match by name, `autogen-<name>` or `autogen-cronjob-<name>`; without a rule name,
//!   every rule of the policy is checked; a rule the policy does not have is `Not found`;
//! - a policy that answered for a resource without any matching rule response excluded it: the
//!   row passes with reason `Excluded`;
//! - a policy that did not answer at all is `Not found` (a failure), unless it was rejected as
//!   invalid, which is a skip with reason `Invalid Policy`;
//! - with `patchedResources`, the resource each matching rule response left (the patched one
//!   for mutate rules, the one evaluated for validate rules) is compared with the expected one
//!   first: a difference fails the row (`Resource diff`), a file that cannot be read too
//!   (`Resource error`); when the file has no resource with the same identity, the row is
//!   dropped, as upstream does;
//! - with `generatedResource(s)`, the resources each matching generate rule generated are
//!   compared with those of the files: a generated resource the files have must be equal, and
//!   at least one must be there, else the row fails (`Resource diff`);
//! - a result item that names no resource checks every resource (and JSON payload);
//! - the answers of CEL policies have no rules to match: every rule response counts and the
//!   row shows the rule the result item names (usually none); each resource a generating
//!   policy generated is a row of its own, named after it (see [`cel_rows`]).
//!
//! The `Not found` cases for missing resources and rules are those of upstream's `test-fail`
//! suite (`missing-resource`, `missing-rule`), which must make the run fail.
use std::sync::Arc;

use kyverno_api::policy_report::v1alpha2::PolicyResult;
use kyverno_policy_core::autogen::names_rule;
use kyverno_policy_core::engine::GeneratedResource;
use kyverno_policy_core::response::{PolicyResponse, RuleResponse, RuleStatus};
use serde_json::Value;

use super::compare::{Comparison, compare};
use crate::cel::CelKind;
use crate::engine::field;
use crate::loader::InvalidPolicy;
use crate::report::{report_result, result_name};
use crate::test_file::TestResult;

/// The engine's answer for one policy on one resource.
#[derive(Clone, Debug)]
pub struct PolicyOutcome {
    /// The policy's name (without namespace).
    pub policy: String,
    /// The names of the policy's rules, autogen rules included.
    pub rules: Vec<String>,
    /// Whether the policy's failures count as failures.
    pub scored: bool,
    /// The rule responses.
    pub response: PolicyResponse,
    /// The resource as the policy left it: patched by its mutate rules, or as its validate
    /// rules saw it.
    pub resource: Arc<Value>,
    /// The resources its generate rules generated.
    pub generated: Vec<GeneratedResource>,
    /// The kind of a CEL policy; `None` for ClusterPolicies and Policies.
    pub cel: Option<CelKind>,
}

/// The resources of a result's expected-resource files, or why they could not be read.
pub type ExpectedResources = Result<Vec<Value>, String>;

/// The resources a result item expects the policy to produce.
#[derive(Clone, Debug, Default)]
pub struct ExpectedOutput {
    /// The resources of its `patchedResources` file, if it names one.
    pub patched: Option<ExpectedResources>,
    /// The resources of its `generatedResource` and `generatedResources` files, if it names any.
    pub generated: Option<ExpectedResources>,
}

/// One evaluated resource and the answers of every policy.
#[derive(Clone, Debug, Default)]
pub struct ResourceOutcome {
    /// The resource's apiVersion.
    pub api_version: String,
    /// The resource's kind.
    pub kind: String,
    /// The resource's namespace.
    pub namespace: String,
    /// The resource's name.
    pub name: String,
    /// The answers of the policies, in policy order.
    pub policies: Vec<PolicyOutcome>,
}

impl ResourceOutcome {
    /// How rows show the resource: `apiVersion/Kind/namespace/name` (no namespace when empty),
    /// a JSON payload by its file name alone.
    pub fn display(&self) -> String {
        if self.api_version.is_empty() && self.kind.is_empty() {
            self.name.clone()
        } else if self.namespace.is_empty() {
            format!("{}/{}/{}", self.api_version, self.kind, self.name)
        } else {
            format!(
                "{}/{}/{}/{}",
                self.api_version, self.kind, self.namespace, self.name
            )
        }
    }

    /// Whether the resource has the expected kind (any kind when none is expected).
    fn has_kind(&self, kind: &str) -> bool {
        kind.is_empty() || kind == self.kind
    }

    /// Whether `reference` (`name` or `namespace/name`) names this resource.
    fn is_named(&self, reference: &str) -> bool {
        match reference.split_once('/') {
            Some((namespace, name)) => namespace == self.namespace && name == self.name,
            None => reference == self.name,
        }
    }
}

/// How a row was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A rule response was compared; its report result is `actual`.
    Checked {
        /// The result the engine gave.
        actual: PolicyResult,
    },
    /// The policy answered without a matching rule response: the resource was excluded.
    Excluded,
    /// The policy did not answer for the resource.
    NotFound,
    /// The policy was rejected as invalid and skipped.
    InvalidPolicy,
}

/// One compared row.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedRow {
    /// The policy, as the test names it.
    pub policy: String,
    /// The rule response's name, or the rule as the test names it.
    pub rule: String,
    /// The resource, as [`ResourceOutcome::display`] shows it.
    pub resource: String,
    /// The expected kind.
    pub kind: String,
    /// The expected result.
    pub expected: PolicyResult,
    /// How the row was decided.
    pub verdict: Verdict,
    /// Whether the expectation is met.
    pub ok: bool,
    /// Why: `Ok`, `Want x, got y`, `Excluded`, `Not found`, `Invalid Policy`, `Resource diff`,
    /// `Resource error`.
    pub reason: String,
    /// The rule's message.
    pub message: String,
}

/// The resources a result item checks, in evaluation order: those it names (by `resources`
/// and `resourceSpecs`), and the references that name no evaluated resource. A result item
/// that names no resource checks them all, as upstream's.
fn select<'a, 'r>(
    result: &'r TestResult,
    trigger: &'a [ResourceOutcome],
) -> (Vec<&'a ResourceOutcome>, Vec<&'r str>) {
    if result.resources.is_empty() && result.resource_specs.is_empty() {
        return (trigger.iter().collect(), Vec::new());
    }
    let mut selected: Vec<&ResourceOutcome> = Vec::new();
    let mut missing = Vec::new();
    for reference in &result.resources {
        let before = selected.len();
        selected.extend(
            trigger
                .iter()
                .filter(|resource| resource.has_kind(&result.kind) && resource.is_named(reference)),
        );
        if selected.len() == before {
            missing.push(reference.as_str());
        }
    }
    for spec in &result.resource_specs {
        let api_version = if spec.group.is_empty() {
            spec.version.clone()
        } else {
            format!("{}/{}", spec.group, spec.version)
        };
        selected.extend(trigger.iter().filter(|resource| {
            resource.has_kind(&spec.kind)
                && resource.api_version == api_version
                && resource.namespace == spec.namespace
                && resource.name == spec.name
        }));
    }
    (selected, missing)
}

/// Whether the policy has the rule a result item names (any rule when it names none).
fn has_rule(result: &TestResult, outcome: &PolicyOutcome) -> bool {
    match result.rule.as_deref().filter(|rule| !rule.is_empty()) {
        None => true,
        Some(rule) => outcome.rules.iter().any(|name| names_rule(name, rule)),
    }
}

/// The rule responses a result item is about.
fn matching_rules<'a>(result: &TestResult, response: &'a PolicyResponse) -> Vec<&'a RuleResponse> {
    match result.rule.as_deref().filter(|rule| !rule.is_empty()) {
        None => response.rules.iter().collect(),
        Some(rule) => response
            .rules
            .iter()
            .filter(|response| names_rule(&response.name, rule))
            .collect(),
    }
}

/// How the resource a policy left compares with the expected patched resources.
enum PatchedCheck {
    /// They are equal: the row is decided by the rule's result.
    Matches,
    /// The expected file does not have the resource: the row is dropped.
    NotExpected,
    /// The row fails for this reason, with this message.
    Fails(String, String),
}

/// Compares the resource `outcome` left with the expected patched resources.
fn check_patched(expected: &ExpectedResources, outcome: &PolicyOutcome) -> PatchedCheck {
    let resources = match expected {
        Ok(resources) => resources,
        Err(error) => {
            return PatchedCheck::Fails(
                "Resource error".to_owned(),
                format!("error: failed to load resource ({error})"),
            );
        }
    };
    match compare(&outcome.resource, resources) {
        Comparison::Equal => PatchedCheck::Matches,
        Comparison::Missing => PatchedCheck::NotExpected,
        Comparison::Different(diff) => PatchedCheck::Fails(
            "Resource diff".to_owned(),
            format!(
                "Patched resource didn't match the patched resource in the test result\n(- only in expected, + only in actual)\n\n{diff}"
            ),
        ),
    }
}

/// Compares the resources `rule` of `outcome` generated with the expected ones: each generated
/// resource the expected files have must equal it, and at least one must be there.
fn check_generated(
    expected: &ExpectedResources,
    outcome: &PolicyOutcome,
    rule: &RuleResponse,
) -> Option<PatchedCheck> {
    let resources = match expected {
        Ok(resources) => resources,
        Err(error) => {
            return Some(PatchedCheck::Fails(
                "Resource error".to_owned(),
                format!("error: failed to load resource ({error})"),
            ));
        }
    };
    let mut found = false;
    for generated in outcome
        .generated
        .iter()
        .filter(|generated| generated.rule == rule.name)
    {
        match compare(&generated.resource, resources) {
            Comparison::Equal => found = true,
            Comparison::Missing => {}
            Comparison::Different(diff) => {
                return Some(PatchedCheck::Fails(
                    "Resource diff".to_owned(),
                    format!(
                        "Generated resource didn't match the generated resource in the test result\n(- only in expected, + only in actual)\n\n{diff}"
                    ),
                ));
            }
        }
    }
    (!found).then(|| {
        let mut message = "the rule generated none of the resources in the test result".to_owned();
        if !rule.message.is_empty() {
            message = format!("{message}: {}", rule.message);
        }
        PatchedCheck::Fails("Resource diff".to_owned(), message)
    })
}

/// Whether the `actual` result is the expected one, and the reason the row shows.
fn judge(result: &TestResult, actual: PolicyResult) -> (bool, String) {
    if actual == result.result {
        (true, "Ok".to_owned())
    } else {
        let reason = format!(
            "Want {}, got {}",
            result_name(result.result),
            result_name(actual)
        );
        (false, reason)
    }
}

/// Builds a row of a result item: the resource column (the evaluated resource when `None`),
/// verdict, whether it is met, reason and message.
type RowBuilder<'a> = dyn Fn(Option<String>, Verdict, bool, String, String) -> CheckedRow + 'a;

/// The rows of a CEL policy's answer for one resource, as upstream's CLI checks them: every rule
/// response counts, whatever rule the result item names; the resource a policy left is compared
/// with the `patchedResources` first (a resource the file does not have drops the row and sets
/// `skipped`); each resource a generating policy generated is a row of its own, named after it,
/// and must be in the expected files and equal to its expected form.
fn cel_rows(
    kind: CelKind,
    result: &TestResult,
    outcome: &PolicyOutcome,
    expected: &ExpectedOutput,
    build: &RowBuilder<'_>,
    skipped: &mut bool,
) -> Vec<CheckedRow> {
    let mut rows = Vec::new();
    for rule in &outcome.response.rules {
        let actual = report_result(rule.status, outcome.scored, false);
        let verdict = Verdict::Checked { actual };
        // Upstream lists a generating policy that failed, and generated nothing, as excluded;
        // the error is shown instead, so that it cannot pass for a success.
        let failed_generation = rule.status == RuleStatus::Error && outcome.generated.is_empty();
        if kind.is_generating() && !failed_generation {
            for generated in &outcome.generated {
                let name = field(&generated.resource, "/metadata/name").to_owned();
                let failure = [&expected.patched, &expected.generated]
                    .into_iter()
                    .flatten()
                    .find_map(|files| generated_failure(files, &generated.resource));
                rows.push(match failure {
                    Some((reason, message)) => build(Some(name), verdict, false, reason, message),
                    None => {
                        let (ok, reason) = judge(result, actual);
                        build(Some(name), verdict, ok, reason, rule.message.clone())
                    }
                });
            }
            continue;
        }
        match expected
            .patched
            .as_ref()
            .map(|files| check_patched(files, outcome))
        {
            None | Some(PatchedCheck::Matches) => {
                let (ok, reason) = judge(result, actual);
                rows.push(build(None, verdict, ok, reason, rule.message.clone()));
            }
            Some(PatchedCheck::NotExpected) => *skipped = true,
            Some(PatchedCheck::Fails(reason, message)) => {
                rows.push(build(None, verdict, false, reason, message));
            }
        }
    }
    rows
}

/// Why a generated resource does not meet the expected resources of `files`, if it does not:
/// it must be there, and equal.
fn generated_failure(files: &ExpectedResources, generated: &Value) -> Option<(String, String)> {
    let resources = match files {
        Ok(resources) => resources,
        Err(error) => {
            return Some((
                "Resource error".to_owned(),
                format!("error: failed to load resource ({error})"),
            ));
        }
    };
    match compare(generated, resources) {
        Comparison::Equal => None,
        Comparison::Missing => Some((
            "Resource error".to_owned(),
            "error: failed to load resource (resource not found in manifest)".to_owned(),
        )),
        Comparison::Different(diff) => Some((
            "Resource diff".to_owned(),
            format!(
                "Generated resource didn't match the generated resource in the test result\n(- only in expected, + only in actual)\n\n{diff}"
            ),
        )),
    }
}

/// Compares one result item with the engine's answers.
pub fn check(
    result: &TestResult,
    trigger: &[ResourceOutcome],
    invalid: &[InvalidPolicy],
    expected: &ExpectedOutput,
) -> Vec<CheckedRow> {
    let policy_name = result.policy.rsplit('/').next().unwrap_or_default();
    let expected_rule = result.rule.clone().unwrap_or_default();
    let row_at = |resource: String,
                  rule: String,
                  verdict: Verdict,
                  ok: bool,
                  reason: String,
                  message: String| {
        CheckedRow {
            policy: result.policy.clone(),
            rule,
            resource,
            kind: result.kind.clone(),
            expected: result.result,
            verdict,
            ok,
            reason,
            message,
        }
    };
    let row = |resource: &ResourceOutcome,
               rule: String,
               verdict: Verdict,
               ok: bool,
               reason: String,
               message: String| {
        row_at(resource.display(), rule, verdict, ok, reason, message)
    };
    let not_found = |resource: String| CheckedRow {
        policy: result.policy.clone(),
        rule: expected_rule.clone(),
        resource,
        kind: result.kind.clone(),
        expected: result.result,
        verdict: Verdict::NotFound,
        ok: false,
        reason: "Not found".to_owned(),
        message: "Not found".to_owned(),
    };
    let (selected, missing) = select(result, trigger);
    let mut rows: Vec<CheckedRow> = missing
        .into_iter()
        .map(|reference| not_found(format!("{}/{reference}", result.kind)))
        .collect();
    for resource in selected {
        let mut resource_rows = Vec::new();
        // Rows dropped because the expected patched resources do not have this resource.
        let mut skipped = false;
        for outcome in resource
            .policies
            .iter()
            .filter(|outcome| outcome.policy == policy_name)
        {
            if let Some(kind) = outcome.cel {
                let build = |display: Option<String>, verdict, ok, reason, message| {
                    let display = display.unwrap_or_else(|| resource.display());
                    row_at(display, expected_rule.clone(), verdict, ok, reason, message)
                };
                resource_rows.extend(cel_rows(
                    kind,
                    result,
                    outcome,
                    expected,
                    &build,
                    &mut skipped,
                ));
            } else if !has_rule(result, outcome) {
                resource_rows.push(not_found(resource.display()));
                continue;
            }
            let kyverno_rules = match outcome.cel {
                Some(_) => Vec::new(),
                None => matching_rules(result, &outcome.response),
            };
            for rule in kyverno_rules {
                let actual = report_result(rule.status, outcome.scored, false);
                let verdict = Verdict::Checked { actual };
                match expected
                    .patched
                    .as_ref()
                    .map(|expected| check_patched(expected, outcome))
                {
                    None | Some(PatchedCheck::Matches) => {}
                    Some(PatchedCheck::NotExpected) => {
                        skipped = true;
                        continue;
                    }
                    Some(PatchedCheck::Fails(reason, message)) => {
                        resource_rows.push(row(
                            resource,
                            rule.name.clone(),
                            verdict,
                            false,
                            reason,
                            message,
                        ));
                        continue;
                    }
                }
                if let Some(PatchedCheck::Fails(reason, message)) = expected
                    .generated
                    .as_ref()
                    .and_then(|expected| check_generated(expected, outcome, rule))
                {
                    resource_rows.push(row(
                        resource,
                        rule.name.clone(),
                        verdict,
                        false,
                        reason,
                        message,
                    ));
                    continue;
                }
                let (ok, reason) = judge(result, actual);
                resource_rows.push(row(
                    resource,
                    rule.name.clone(),
                    verdict,
                    ok,
                    reason,
                    rule.message.clone(),
                ));
            }
            if resource_rows.is_empty() && !skipped {
                let reason = "Excluded".to_owned();
                resource_rows.push(row(
                    resource,
                    expected_rule.clone(),
                    Verdict::Excluded,
                    true,
                    reason.clone(),
                    reason,
                ));
            }
        }
        if resource_rows.is_empty() && !skipped {
            resource_rows.push(
                match invalid.iter().find(|policy| policy.name == policy_name) {
                    Some(policy) => row(
                        resource,
                        expected_rule.clone(),
                        Verdict::InvalidPolicy,
                        true,
                        "Invalid Policy".to_owned(),
                        policy.message.clone(),
                    ),
                    None => not_found(resource.display()),
                },
            );
        }
        rows.extend(resource_rows);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyverno_policy_core::response::RuleType;

    fn result(yaml: &str) -> TestResult {
        serde_saphyr::from_str(yaml).expect("valid result")
    }

    fn rule(name: &str, status: RuleStatus) -> RuleResponse {
        RuleResponse {
            name: name.to_owned(),
            rule_type: RuleType::Validation,
            status,
            message: format!("{name} says {}", status.as_str()),
        }
    }

    fn resource(
        kind: &str,
        namespace: &str,
        name: &str,
        policies: Vec<PolicyOutcome>,
    ) -> ResourceOutcome {
        ResourceOutcome {
            api_version: "v1".to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            policies,
        }
    }

    /// An answer of policy `policy`, whose rules are `r` and those that responded.
    fn outcome(policy: &str, rules: Vec<RuleResponse>) -> PolicyOutcome {
        let mut names: Vec<String> = rules.iter().map(|rule| rule.name.clone()).collect();
        names.push("r".to_owned());
        PolicyOutcome {
            policy: policy.to_owned(),
            rules: names,
            scored: true,
            response: PolicyResponse { rules },
            resource: Arc::new(Value::Null),
            generated: Vec::new(),
            cel: None,
        }
    }

    fn trigger() -> Vec<ResourceOutcome> {
        vec![
            resource(
                "Pod",
                "default",
                "good",
                vec![outcome("p", vec![rule("r", RuleStatus::Pass)])],
            ),
            resource(
                "Pod",
                "default",
                "bad",
                vec![outcome("p", vec![rule("r", RuleStatus::Fail)])],
            ),
            resource(
                "Pod",
                "other",
                "bad",
                vec![outcome("p", vec![rule("autogen-r", RuleStatus::Fail)])],
            ),
            resource(
                "Deployment",
                "default",
                "good",
                vec![outcome("p", vec![rule("autogen-r", RuleStatus::Pass)])],
            ),
            resource("Pod", "default", "excluded", vec![outcome("p", vec![])]),
        ]
    }

    #[test]
    fn each_named_resource_is_a_row() {
        let rows = check(
            &result(
                "policy: p\nrule: r\nkind: Pod\nresources: [default/good, default/bad]\nresult: fail\n",
            ),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].resource, "v1/Pod/default/good");
        assert!(!rows[0].ok);
        assert_eq!(rows[0].reason, "Want fail, got pass");
        assert_eq!(rows[0].message, "r says pass");
        assert_eq!(rows[1].resource, "v1/Pod/default/bad");
        assert!(rows[1].ok);
        assert_eq!(rows[1].reason, "Ok");
    }

    #[test]
    fn a_bare_name_matches_every_namespace_and_kind_narrows() {
        let rows = check(
            &result("policy: p\nrule: r\nkind: Pod\nresources: [bad]\nresult: fail\n"),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].rule, "autogen-r");
        let rows = check(
            &result("policy: p\nrule: r\nkind: Deployment\nresources: [good]\nresult: pass\n"),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].resource, "v1/Deployment/default/good");
        let rows = check(
            &result("policy: p\nrule: r\nresources: [good]\nresult: pass\n"),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), 2, "no kind matches any kind");
    }

    #[test]
    fn autogen_cronjob_rules_match_the_rule_name() {
        let trigger = vec![resource(
            "CronJob",
            "default",
            "c",
            vec![outcome(
                "p",
                vec![
                    rule("autogen-cronjob-r", RuleStatus::Skip),
                    rule("other", RuleStatus::Fail),
                ],
            )],
        )];
        let rows = check(
            &result("policy: p\nrule: r\nkind: CronJob\nresources: [c]\nresult: skip\n"),
            &trigger,
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), 1);
        assert!(rows[0].ok);
    }

    #[test]
    fn no_rule_response_is_excluded_and_passes() {
        let rows = check(
            &result("policy: p\nrule: r\nkind: Pod\nresources: [excluded]\nresult: fail\n"),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].verdict, Verdict::Excluded);
        assert!(rows[0].ok);
        assert_eq!(rows[0].reason, "Excluded");
        assert_eq!(rows[0].rule, "r");
    }

    #[test]
    fn a_rule_the_policy_does_not_have_is_not_found() {
        let rows = check(
            &result("policy: p\nrule: typo\nkind: Pod\nresources: [default/good]\nresult: pass\n"),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows[0].verdict, Verdict::NotFound);
        assert!(!rows[0].ok);
    }

    #[test]
    fn a_missing_policy_is_not_found_and_fails() {
        let rows = check(
            &result(
                "policy: missing\nrule: r\nkind: Pod\nresources: [default/good]\nresult: pass\n",
            ),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].verdict, Verdict::NotFound);
        assert!(!rows[0].ok);
        assert_eq!(rows[0].reason, "Not found");
    }

    #[test]
    fn an_invalid_policy_is_skipped() {
        let invalid = [InvalidPolicy {
            name: "missing".to_owned(),
            message: "spec.rules[0]: bad".to_owned(),
        }];
        let rows = check(
            &result(
                "policy: missing\nrule: r\nkind: Pod\nresources: [default/good]\nresult: pass\n",
            ),
            &trigger(),
            &invalid,
            &ExpectedOutput::default(),
        );
        assert_eq!(rows[0].verdict, Verdict::InvalidPolicy);
        assert!(rows[0].ok);
        assert_eq!(rows[0].message, "spec.rules[0]: bad");
    }

    #[test]
    fn a_resource_the_test_does_not_load_is_not_found() {
        let rows = check(
            &result(
                "policy: p\nrule: r\nkind: Pod\nresources: [nowhere, default/good]\nresult: pass\n",
            ),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows[0].verdict, Verdict::NotFound);
        assert_eq!(rows[0].resource, "Pod/nowhere");
        assert!(!rows[0].ok);
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn resource_specs_name_resources_by_group_version_kind() {
        let rows = check(
            &result(
                "policy: p\nrule: r\nkind: Pod\nresourceSpecs:\n- version: v1\n  kind: Pod\n  namespace: other\n  name: bad\nresult: fail\n",
            ),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].resource, "v1/Pod/other/bad");
    }

    #[test]
    fn namespaced_policies_are_named_with_their_namespace() {
        let rows = check(
            &result("policy: ns/p\nrule: r\nkind: Pod\nresources: [default/good]\nresult: pass\n"),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert!(rows[0].ok);
        assert_eq!(rows[0].policy, "ns/p");
    }

    #[test]
    fn unscored_failures_are_warnings() {
        let trigger = vec![resource(
            "Pod",
            "default",
            "a",
            vec![PolicyOutcome {
                policy: "p".to_owned(),
                rules: vec!["r".to_owned()],
                scored: false,
                response: PolicyResponse {
                    rules: vec![rule("r", RuleStatus::Fail)],
                },
                resource: Arc::new(Value::Null),
                generated: Vec::new(),
                cel: None,
            }],
        )];
        let rows = check(
            &result("policy: p\nrule: r\nkind: Pod\nresources: [a]\nresult: warn\n"),
            &trigger,
            &[],
            &ExpectedOutput::default(),
        );
        assert!(rows[0].ok);
        assert_eq!(
            rows[0].verdict,
            Verdict::Checked {
                actual: PolicyResult::Warn
            }
        );
        assert_eq!(rows[0].reason, "Ok");
    }

    #[test]
    fn patched_resources_are_compared_before_the_result() {
        let patched = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "namespace": "default", "labels": {"team": "x"}}
        });
        let mut policy = outcome("p", vec![rule("r", RuleStatus::Pass)]);
        policy.resource = Arc::new(patched.clone());
        let trigger = vec![resource("Pod", "default", "a", vec![policy])];
        let result = result("policy: p\nrule: r\nkind: Pod\nresources: [a]\nresult: pass\n");
        let check = |patched: ExpectedResources| {
            let expected = ExpectedOutput {
                patched: Some(patched),
                generated: None,
            };
            check(&result, &trigger, &[], &expected)
        };

        let rows = check(Ok(vec![patched.clone()]));
        assert_eq!((rows[0].ok, rows[0].reason.as_str()), (true, "Ok"));

        let mut different = patched.clone();
        different["metadata"]["labels"]["team"] = serde_json::json!("z");
        let rows = check(Ok(vec![different]));
        assert_eq!(
            (rows[0].ok, rows[0].reason.as_str()),
            (false, "Resource diff")
        );
        assert!(
            rows[0].message.contains("-    team: z\n+    team: x\n"),
            "{}",
            rows[0].message
        );

        let rows = check(Err("no such file".to_owned()));
        assert_eq!(
            (rows[0].ok, rows[0].reason.as_str()),
            (false, "Resource error")
        );

        let mut elsewhere = patched;
        elsewhere["metadata"]["name"] = serde_json::json!("b");
        assert!(
            check(Ok(vec![elsewhere])).is_empty(),
            "a resource the file does not have has no row, as upstream"
        );
    }

    #[test]
    fn generated_resources_of_the_rule_are_compared() {
        let generated = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "dev", "labels": {
                "app.kubernetes.io/managed-by": "kyverno",
                "generate.kyverno.io/rule-name": "r"
            }},
            "data": {"a": "b"}
        });
        let mut policy = outcome("p", vec![rule("r", RuleStatus::Pass)]);
        policy.generated = vec![GeneratedResource {
            rule: "r".to_owned(),
            resource: generated.clone(),
            synchronize: false,
            orphan_downstream_on_policy_delete: false,
        }];
        let trigger = vec![resource("Namespace", "", "dev", vec![policy])];
        let result =
            result("policy: p\nrule: r\nkind: Namespace\nresources: [dev]\nresult: pass\n");
        let check = |generated: ExpectedResources| {
            let expected = ExpectedOutput {
                patched: None,
                generated: Some(generated),
            };
            check(&result, &trigger, &[], &expected)
        };
        let mut expected = generated.clone();
        expected["metadata"]["labels"] = serde_json::json!({});
        let rows = check(Ok(vec![expected.clone()]));
        assert_eq!((rows[0].ok, rows[0].reason.as_str()), (true, "Ok"));

        expected["data"]["a"] = serde_json::json!("c");
        let rows = check(Ok(vec![expected.clone()]));
        assert_eq!(
            (rows[0].ok, rows[0].reason.as_str()),
            (false, "Resource diff")
        );
        assert!(
            rows[0].message.contains("-  a: c\n+  a: b\n"),
            "{}",
            rows[0].message
        );

        expected["metadata"]["name"] = serde_json::json!("other");
        let rows = check(Ok(vec![expected]));
        assert_eq!(
            (rows[0].ok, rows[0].message.as_str()),
            (
                false,
                "the rule generated none of the resources in the test result: r says pass"
            )
        );
    }

    /// The answer of a CEL policy `p` of `kind` with `rules`.
    fn cel_outcome(kind: CelKind, rules: Vec<RuleResponse>) -> PolicyOutcome {
        PolicyOutcome {
            cel: Some(kind),
            ..outcome("p", rules)
        }
    }

    #[test]
    fn cel_policies_count_every_rule_whatever_rule_the_result_names() {
        let trigger = vec![resource(
            "Pod",
            "default",
            "a",
            vec![cel_outcome(
                CelKind::ValidatingPolicy,
                vec![rule("validation", RuleStatus::Fail)],
            )],
        )];
        let rows = check(
            &result("policy: p\nrule: anything\nkind: Pod\nresources: [a]\nresult: fail\n"),
            &trigger,
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), 1);
        assert!(rows[0].ok);
        assert_eq!(rows[0].rule, "anything", "the row shows the result's rule");
        let rows = check(
            &result("policy: p\nkind: Pod\nresources: [a]\nresult: pass\n"),
            &trigger,
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(
            (rows[0].rule.as_str(), rows[0].reason.as_str()),
            ("", "Want pass, got fail")
        );
    }

    #[test]
    fn a_cel_policy_without_rules_excluded_the_resource() {
        let trigger = vec![resource(
            "Pod",
            "default",
            "a",
            vec![cel_outcome(CelKind::ValidatingAdmissionPolicy, Vec::new())],
        )];
        let rows = check(
            &result("policy: p\nkind: Pod\nresources: [a]\nresult: fail\n"),
            &trigger,
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows[0].verdict, Verdict::Excluded);
        assert!(rows[0].ok);
    }

    #[test]
    fn results_without_resources_check_every_resource() {
        let rows = check(
            &result("policy: p\nrule: r\nresult: pass\n"),
            &trigger(),
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(rows.len(), trigger().len());
    }

    #[test]
    fn payloads_are_shown_by_name() {
        let payload = ResourceOutcome {
            name: "payload.json".to_owned(),
            ..ResourceOutcome::default()
        };
        assert_eq!(payload.display(), "payload.json");
    }

    #[test]
    fn each_resource_a_generating_policy_generated_is_a_row() {
        let secret = |name: &str, value: &str| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "team"},
                "data": {"k": value}
            })
        };
        let mut policy = cel_outcome(CelKind::GeneratingPolicy, vec![rule("p", RuleStatus::Pass)]);
        policy.generated = ["one", "two", "three"]
            .into_iter()
            .map(|name| GeneratedResource {
                rule: "p".to_owned(),
                resource: secret(name, "a"),
                synchronize: false,
                orphan_downstream_on_policy_delete: false,
            })
            .collect();
        let trigger = vec![resource("Namespace", "", "team", vec![policy])];
        let expected = ExpectedOutput {
            patched: None,
            generated: Some(Ok(vec![secret("one", "a"), secret("two", "b")])),
        };
        let rows = check(
            &result("policy: p\nkind: Namespace\nresources: [team]\nresult: pass\n"),
            &trigger,
            &[],
            &expected,
        );
        let summary: Vec<_> = rows
            .iter()
            .map(|row| (row.resource.as_str(), row.ok, row.reason.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("one", true, "Ok"),
                ("two", false, "Resource diff"),
                ("three", false, "Resource error"),
            ]
        );
    }

    #[test]
    fn a_generating_policy_that_failed_shows_its_error() {
        let trigger = vec![resource(
            "Namespace",
            "",
            "team",
            vec![cel_outcome(
                CelKind::GeneratingPolicy,
                vec![rule("p", RuleStatus::Error)],
            )],
        )];
        let rows = check(
            &result("policy: p\nkind: Namespace\nresources: [team]\nresult: pass\n"),
            &trigger,
            &[],
            &ExpectedOutput::default(),
        );
        assert_eq!(
            (rows[0].ok, rows[0].reason.as_str()),
            (false, "Want pass, got error")
        );
    }
}
