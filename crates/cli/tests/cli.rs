//! Runs the `kyverno` binary on the fixtures under `tests/fixtures` (validate and mutate
//! policies of our own) and on the upstream `test-fail` cases of the conformance corpus.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn kyverno(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kyverno"))
        .args(arguments)
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn json_report(arguments: &[&str]) -> (Value, Output) {
    let mut all = vec!["test"];
    all.extend_from_slice(arguments);
    all.extend_from_slice(&["--output", "json"]);
    let output = kyverno(&all);
    let report = serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    (report, output)
}

#[test]
fn version_prints_version_time_and_commit() {
    let output = kyverno(&["version"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(text.starts_with("Version: "), "{text}");
    assert!(
        text.contains("\nTime: ") && text.contains("\nGit commit ID: "),
        "{text}"
    );
}

#[test]
fn jp_query_evaluates_against_an_input_file() {
    let input = fixture("jp/input.yaml");
    let output = kyverno(&[
        "jp",
        "query",
        "-i",
        input.to_str().expect("utf-8"),
        "spec.containers[].name",
        "-c",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        stdout(&output),
        "# spec.containers[].name\n[\"app\",\"sidecar\"]\n"
    );
    let output = kyverno(&[
        "jp",
        "query",
        "-i",
        input.to_str().expect("utf-8"),
        "spec.containers[0].image",
        "-u",
    ]);
    assert_eq!(
        stdout(&output),
        "# spec.containers[0].image\nregistry.example/app:1.0\n"
    );
}

#[test]
fn jp_query_rejects_invalid_syntax() {
    let input = fixture("jp/input.yaml");
    let output = kyverno(&[
        "jp",
        "query",
        "-i",
        input.to_str().expect("utf-8"),
        "spec.[",
    ]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).starts_with("Error: SyntaxError"),
        "{output:?}"
    );
}

#[test]
fn jp_function_describes_custom_functions() {
    let output = kyverno(&["jp", "function", "to_upper", "truncate"]);
    assert!(output.status.success());
    let text = stdout(&output);
    assert_eq!(text.matches("Name: ").count(), 2, "{text}");
    assert!(text.contains("  Signature: truncate("), "{text}");
}

#[test]
fn test_reports_unsupported_policy_kinds_and_fails() {
    let output = kyverno(&["test", fixture("unsupported").to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("Loading test  ( "), "{text}");
    assert!(
        text.contains("ValidatingPolicy (policies.kyverno.io/v2) is not supported yet"),
        "{text}"
    );
    assert!(
        text.contains("Test Summary: 0 tests passed and 1 tests failed"),
        "the expected row of the test that could not run counts as failed: {text}"
    );
}

#[test]
fn test_json_output_holds_errors_and_nothing_else() {
    let (report, output) = json_report(&[fixture("unsupported").to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let tests = report["tests"].as_array().expect("tests");
    assert_eq!(tests.len(), 1);
    assert_eq!(tests[0]["name"], "unsupported");
    assert!(
        tests[0]["path"]
            .as_str()
            .expect("path")
            .ends_with("unsupported/kyverno-test.yaml")
    );
    assert!(
        tests[0]["error"]
            .as_str()
            .expect("error")
            .contains("ValidatingPolicy")
    );
    assert_eq!(
        report["summary"],
        serde_json::json!({"rows": 1, "passed": 0, "failed": 1})
    );
}

#[test]
fn test_schema_errors_name_the_field() {
    let output = kyverno(&["test", fixture("invalid").to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("field `results[0].expectation`"), "{text}");
    assert!(text.contains("expectation"), "{text}");
}

#[test]
fn test_without_test_files_succeeds() {
    let output = kyverno(&["test", fixture("jp").to_str().expect("utf-8")]);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).contains("No test yamls available"));
}

#[test]
fn test_of_a_missing_folder_fails() {
    let output = kyverno(&["test", fixture("does-not-exist").to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("Error loading tests: failed to read "));
}

#[test]
fn test_selector_skips_unselected_tests() {
    let suite = fixture("suite");
    let output = kyverno(&[
        "test",
        suite.to_str().expect("utf-8"),
        "--test-case-selector",
        "policy=no-such-policy",
    ]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(!text.contains("Loading test"), "{text}");
    assert!(
        text.contains("Test Summary: 0 tests passed and 0 tests failed"),
        "{text}"
    );
}

#[test]
fn test_suites_pass_when_expectations_hold() {
    let suite = fixture("suite");
    let (report, output) = json_report(&[suite.to_str().expect("utf-8")]);
    let paths: Vec<_> = report["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|test| test["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(
        paths,
        ["basic", "shared-folder"],
        "discovered in file name order, hidden folders included"
    );
    assert!(output.status.success(), "{report:#}");
    assert_eq!(
        report["summary"],
        serde_json::json!({"rows": 5, "passed": 5, "failed": 0})
    );
    let basic = &report["tests"][0]["rows"];
    assert_eq!(basic[1]["resource"], "v1/Pod/staging/unlabelled");
    assert_eq!(basic[1]["actual"], "fail");
    assert_eq!(basic[2]["reason"], "Excluded");

    let output = kyverno(&[
        "test",
        suite.to_str().expect("utf-8"),
        "--remove-color",
        "--detailed-results",
    ]);
    let text = stdout(&output);
    assert!(text.contains("│ ID │ POLICY"), "{text}");
    assert!(text.contains("MESSAGE"), "{text}");
    assert!(
        text.ends_with("\nTest Summary: 5 tests passed and 0 tests failed\n\n"),
        "{text}"
    );
}

#[test]
fn test_fails_on_unmet_expectations() {
    let wrong = fixture("wrong-expectation");
    let (report, output) = json_report(&[wrong.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let rows = &report["tests"][0]["rows"];
    assert_eq!(rows[0]["reason"], "Want pass, got fail");
    assert_eq!(rows[1]["reason"], "Not found");
    assert_eq!(report["summary"]["failed"], 2);
    let output = kyverno(&[
        "test",
        wrong.to_str().expect("utf-8"),
        "--fail-only",
        "--remove-color",
    ]);
    let text = stdout(&output);
    assert!(
        text.contains("Test Summary: 2 out of 2 tests failed"),
        "{text}"
    );
    assert!(text.contains("Aggregated Failed Test Cases : "), "{text}");
}

/// Upstream's `test-fail` cases (a missing policy, rule or resource) must each make the run fail
/// with a `Not found` row.
#[test]
fn upstream_test_fail_cases_fail() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/kyverno-cli/test-fail");
    assert!(
        corpus.is_dir(),
        "the conformance corpus is expected at {}",
        corpus.display()
    );
    for case in ["missing-policy", "missing-rule", "missing-resource"] {
        let (report, output) = json_report(&[corpus.join(case).to_str().expect("utf-8")]);
        assert_eq!(output.status.code(), Some(1), "{case}: {report:#}");
        let rows = &report["tests"][0]["rows"];
        assert_eq!(rows[0]["reason"], "Not found", "{case}: {report:#}");
        assert_eq!(rows[0]["ok"], false, "{case}");
        assert_eq!(report["summary"]["failed"], 1, "{case}");
    }
}

#[test]
fn apply_announces_the_rules_and_resources() {
    let policy = fixture("apply/policy.yaml");
    let resources = fixture("apply/resources.yaml");
    let output = kyverno(&[
        "apply",
        policy.to_str().expect("utf-8"),
        "--resource",
        resources.to_str().expect("utf-8"),
    ]);
    let text = stdout(&output);
    assert!(
        text.starts_with("\nApplying 3 policy rule(s) to 3 resource(s)...\n"),
        "autogen rules count: {text}"
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failing rule fails the run"
    );
    assert!(
        text.contains(
            "policy require-team-label -> resource staging/Pod/unlabelled failed: \n1. check-team: "
        ),
        "{text}"
    );
    assert!(
        text.ends_with("\npass: 1, fail: 1, warn: 0, error: 0, skip: 0 \n"),
        "{text}"
    );
    let output = kyverno(&[
        "apply",
        policy.to_str().expect("utf-8"),
        "-r",
        resources.to_str().expect("utf-8"),
        "--audit-warn",
    ]);
    assert!(
        output.status.success(),
        "audit failures are warnings: {output:?}"
    );
    let output = kyverno(&[
        "apply",
        policy.to_str().expect("utf-8"),
        "-r",
        resources.to_str().expect("utf-8"),
        "-p",
    ]);
    let report: Value =
        serde_saphyr::from_str(stdout(&output).split_once("...\n").expect("header").1)
            .expect("YAML");
    assert_eq!(report["kind"], "ClusterPolicyReport");
    assert_eq!(report["summary"]["fail"], 1);
}

#[test]
fn apply_requires_resources() {
    let output = kyverno(&[
        "apply",
        fixture("apply/policy.yaml").to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("resource file(s) or cluster required")
    );
}

/// Mutate policies run before validate policies, patched resources are compared, and a
/// difference fails the row with a diff.
#[test]
fn test_compares_patched_resources() {
    let (report, output) = json_report(&[fixture("mutate").to_str().expect("utf-8")]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(
        report["summary"],
        serde_json::json!({"rows": 6, "passed": 6, "failed": 0}),
        "{report:#}"
    );
    let (report, output) = json_report(&[fixture("mutate-diff").to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let rows = &report["tests"][0]["rows"];
    assert_eq!(rows[0]["reason"], "Resource diff", "{report:#}");
    assert_eq!(rows[1]["reason"], "Resource error", "{report:#}");
    let output = kyverno(&[
        "test",
        fixture("mutate-diff").to_str().expect("utf-8"),
        "--remove-color",
        "--detailed-results",
    ]);
    let text = stdout(&output);
    assert!(
        text.contains("Patched resource didn't match the patched resource in the test result"),
        "{text}"
    );
    assert!(
        text.contains("+    imagePullPolicy: IfNotPresent"),
        "{text}"
    );
}

#[test]
fn apply_prints_mutated_resources() {
    let output = kyverno(&[
        "apply",
        fixture("mutate/policy.yaml").to_str().expect("utf-8"),
        "-r",
        fixture("mutate/resources.yaml").to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    let (_, mutated) = text
        .split_once("\npolicy add-defaults applied to default/Pod/unlabelled:\n")
        .expect("the mutated resource is printed");
    let (yaml, _) = mutated.split_once("\n---\n").expect("document end");
    let patched: Value = serde_saphyr::from_str(yaml).expect("YAML");
    assert_eq!(patched["metadata"]["labels"]["team"], "platform");
    assert_eq!(
        patched["spec"]["containers"][1]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert!(
        text.contains("\n\nMutation:\nMutation has been applied successfully."),
        "{text}"
    );
    assert!(
        text.ends_with("\npass: 4, fail: 0, warn: 0, error: 0, skip: 2 \n"),
        "validation sees the mutated resource: {text}"
    );
}

/// Generate rules run after validate rules; the resources they generate (from data with
/// variables, or cloned from the test's clone sources) are compared with the expected ones.
#[test]
fn test_compares_generated_resources() {
    let (report, output) = json_report(&[fixture("generate").to_str().expect("utf-8")]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(
        report["summary"],
        serde_json::json!({"rows": 3, "passed": 3, "failed": 0}),
        "{report:#}"
    );
    let (report, output) = json_report(&[fixture("generate-diff").to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let rows = &report["tests"][0]["rows"];
    assert_eq!(rows[0]["reason"], "Resource diff", "{report:#}");
    assert_eq!(rows[1]["reason"], "Resource diff", "{report:#}");
    let output = kyverno(&[
        "test",
        fixture("generate-diff").to_str().expect("utf-8"),
        "--remove-color",
        "--detailed-results",
    ]);
    let text = stdout(&output);
    assert!(text.contains("+    pods: \"10\""), "{text}");
    assert!(
        text.contains("resource v1/Secret/default/regcred not found"),
        "without its clone source the rule cannot clone: {text}"
    );
}

#[test]
fn apply_counts_generate_rules() {
    let output = kyverno(&[
        "apply",
        fixture("generate/policy.yaml").to_str().expect("utf-8"),
        "-r",
        fixture("generate/resources.yaml").to_str().expect("utf-8"),
    ]);
    let text = stdout(&output);
    assert!(
        text.ends_with("\npass: 1, fail: 0, warn: 0, error: 2, skip: 1 \n"),
        "quota passes for team-a and is skipped for kube-system; without a clone source the clone rule errors: {text}"
    );
}

/// Mutate-existing rules patch the test's target resources, which are compared with the
/// expected patched resources like trigger resources; targets no rule patched are not found.
#[test]
fn test_compares_patched_targets() {
    let (report, output) = json_report(&[fixture("mutate-existing").to_str().expect("utf-8")]);
    assert!(output.status.success(), "{report:#}");
    assert_eq!(
        report["summary"],
        serde_json::json!({"rows": 1, "passed": 1, "failed": 0}),
        "{report:#}"
    );
    assert_eq!(
        report["tests"][0]["rows"][0]["resource"],
        "v1/Secret/team-a/app-a"
    );
    let (report, output) = json_report(&[fixture("mutate-existing-diff").to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let rows = &report["tests"][0]["rows"];
    assert_eq!(rows[0]["reason"], "Resource diff", "{report:#}");
    assert_eq!(
        rows[1]["reason"], "Not found",
        "app-b fails its preconditions: {report:#}"
    );
}

/// A fresh, empty folder for an integration test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kyverno-cli-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

#[test]
fn apply_output_writes_mutated_resources_to_a_folder_or_a_file() {
    let policy = fixture("mutate/policy.yaml");
    let resources = fixture("mutate/resources.yaml");
    let apply_to = |output: &Path| {
        kyverno(&[
            "apply",
            policy.to_str().expect("utf-8"),
            "-r",
            resources.to_str().expect("utf-8"),
            "-o",
            output.to_str().expect("utf-8"),
        ])
    };
    let dir = scratch("apply-output");

    let folder = dir.join("mutated");
    let output = apply_to(&folder);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(
        text.contains("\n\nMutation:\nMutation has been applied successfully. Check the files."),
        "{text}"
    );
    assert!(
        !text.contains("applied to default/Pod"),
        "not printed: {text}"
    );
    let written = std::fs::read_to_string(folder.join("unlabelled-mutated.yaml"))
        .expect("one file per resource");
    let (yaml, rest) = written.split_once("\n---\n").expect("document end");
    assert_eq!(rest, "\n");
    let patched: Value = serde_saphyr::from_str(yaml).expect("YAML");
    assert_eq!(patched["metadata"]["labels"]["team"], "platform");
    assert_eq!(
        patched["spec"]["containers"][1]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert!(
        !folder.join("labelled-mutated.yaml").exists(),
        "no mutate rule passed on the labelled pod"
    );

    let file = dir.join("nested/all.yaml");
    std::fs::create_dir_all(dir.join("nested")).expect("folder");
    std::fs::write(&file, "stale: true\n").expect("write");
    let output = apply_to(&file);
    assert!(output.status.success(), "{output:?}");
    let written = std::fs::read_to_string(&file).expect("the file");
    assert!(
        !written.contains("stale"),
        "the file is emptied first: {written}"
    );
    assert_eq!(written.matches("\n---\n").count(), 1, "{written}");
    let patched: Value =
        serde_saphyr::from_str(written.split_once("\n---\n").expect("document").0).expect("YAML");
    assert_eq!(patched["metadata"]["name"], "unlabelled");

    let created = dir.join("new/folder/out.yml");
    assert!(apply_to(&created).status.success());
    assert!(created.is_file(), "missing folders are created");
    let _ = std::fs::remove_dir_all(&dir);
}
