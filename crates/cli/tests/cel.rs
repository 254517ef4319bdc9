//! Runs the `kyverno` binary on CEL policy kinds: each test writes its policies, resources and
//! `kyverno-test.yaml` (inline below) to a scratch folder, runs `kyverno test --output json` or
//! `kyverno apply`, and checks the rows.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A fresh folder holding `files` (name, content).
fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kyverno-cli-cel-{}-{name}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clean scratch folder");
    }
    for (file, content) in files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create folder");
        std::fs::write(path, content).expect("write fixture");
    }
    dir
}

fn kyverno(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kyverno"))
        .args(arguments)
        .output()
        .expect("the binary runs")
}

/// The JSON report of `kyverno test` on `dir`.
fn test_report(dir: &Path) -> Value {
    let output = kyverno(&["test", dir.to_str().expect("utf-8"), "--output", "json"]);
    serde_json::from_slice(&output.stdout).expect("stdout is one JSON document")
}

/// (resource, expected, actual, ok, reason) of every row of the single test of `report`.
fn rows(report: &Value) -> Vec<(String, String, String, bool, String)> {
    let test = &report["tests"][0];
    assert_eq!(test["error"], Value::Null, "the test runs: {test}");
    test["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            let text = |key: &str| row[key].as_str().unwrap_or_default().to_owned();
            (
                text("resource"),
                text("expected"),
                text("actual"),
                row["ok"].as_bool().expect("ok"),
                text("reason"),
            )
        })
        .collect()
}

/// A `kyverno-test.yaml` named `name` for the policies of `policy.yaml`, with the `rest` of its
/// fields (resources, results...).
fn kyverno_test(name: &str, rest: &str) -> String {
    format!(
        "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata:\n  name: {name}\npolicies: [policy.yaml]\n{rest}"
    )
}

const PODS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: good
  labels:
    team: a
spec:
  containers:
  - name: c
    image: nginx:1.0
---
apiVersion: v1
kind: Pod
metadata:
  name: bad
spec:
  containers:
  - name: c
    image: nginx:latest
";

const VALIDATING_POLICY: &str = "apiVersion: policies.kyverno.io/v1alpha1
kind: ValidatingPolicy
metadata:
  name: require-team
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: ['']
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [pods]
  validations:
  - expression: has(object.metadata.labels) && 'team' in object.metadata.labels
    message: a team label is required
";

#[test]
fn validating_policies_give_one_row_per_resource_without_rule_names() {
    let dir = scratch(
        "vpol",
        &[
            ("policy.yaml", VALIDATING_POLICY),
            ("pods.yaml", PODS),
            (
                "kyverno-test.yaml",
                &kyverno_test(
                    "vpol",
                    "resources: [pods.yaml]
results:
- policy: require-team
  isValidatingPolicy: true
  kind: Pod
  resources: [good]
  result: pass
- policy: require-team
  IsValidatingPolicy: true
  kind: Pod
  resources: [bad]
  result: fail
",
                ),
            ),
        ],
    );
    let report = test_report(&dir);
    let rows = rows(&report);
    assert_eq!(
        rows,
        [
            (
                "v1/Pod/default/good".into(),
                "pass".into(),
                "pass".into(),
                true,
                "Ok".into()
            ),
            (
                "v1/Pod/default/bad".into(),
                "fail".into(),
                "fail".into(),
                true,
                "Ok".into()
            ),
        ]
    );
    assert_eq!(report["tests"][0]["rows"][0]["rule"], "");
    assert_eq!(report["summary"]["failed"], 0);
}

#[test]
fn admission_policies_use_bindings_and_parameter_resources() {
    let dir = scratch(
        "vap",
        &[
            (
                "policy.yaml",
                "apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: max-replicas
spec:
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  validations:
  - expression: object.spec.replicas <= int(params.data.maxReplicas)
    message: too many replicas
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: max-replicas-binding
spec:
  policyName: max-replicas
  validationActions: [Deny]
  paramRef:
    name: limits
    namespace: default
    parameterNotFoundAction: Deny
",
            ),
            (
                "params.yaml",
                "apiVersion: v1
kind: ConfigMap
metadata:
  name: limits
  namespace: default
data:
  maxReplicas: '3'
",
            ),
            (
                "deployments.yaml",
                "apiVersion: apps/v1
kind: Deployment
metadata:
  name: small
spec:
  replicas: 2
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: large
spec:
  replicas: 5
",
            ),
            (
                "kyverno-test.yaml",
                &kyverno_test(
                    "vap",
                    "resources: [deployments.yaml]
paramResources: [params.yaml]
results:
- policy: max-replicas
  isValidatingAdmissionPolicy: true
  kind: Deployment
  resources: [small]
  result: pass
- policy: max-replicas
  isValidatingAdmissionPolicy: true
  kind: Deployment
  resources: [large]
  result: fail
",
                ),
            ),
        ],
    );
    let rows = rows(&test_report(&dir));
    let outcomes: Vec<_> = rows.iter().map(|row| (row.2.as_str(), row.3)).collect();
    assert_eq!(outcomes, [("pass", true), ("fail", true)], "{rows:?}");
}

#[test]
fn mutating_policies_and_admission_policies_are_compared_with_patched_resources() {
    let patched = "apiVersion: v1
kind: Pod
metadata:
  name: good
  namespace: default
  labels:
    team: a
    mutated: 'true'
    admission: 'true'
spec:
  containers:
  - name: c
    image: nginx:1.0
";
    let dir = scratch(
        "mpol",
        &[
            (
                "policy.yaml",
                "apiVersion: policies.kyverno.io/v1beta1
kind: MutatingPolicy
metadata:
  name: add-label
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: ['']
      apiVersions: [v1]
      operations: [CREATE]
      resources: [pods]
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{metadata: Object.metadata{labels: Object.metadata.labels{mutated: 'true'}}}
---
apiVersion: admissionregistration.k8s.io/v1alpha1
kind: MutatingAdmissionPolicy
metadata:
  name: add-admission-label
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: ['']
      apiVersions: [v1]
      operations: [CREATE]
      resources: [pods]
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{metadata: Object.metadata{labels: {'admission': 'true'}}}
",
            ),
            ("pods.yaml", PODS),
            ("patched.yaml", patched),
            (
                "kyverno-test.yaml",
                &kyverno_test(
                    "mpol",
                    "resources: [pods.yaml]
results:
- policy: add-label
  isMutatingPolicy: true
  kind: Pod
  resources: [good]
  patchedResources: patched.yaml
  result: pass
- policy: add-admission-label
  isMutatingAdmissionPolicy: true
  kind: Pod
  resources: [good]
  result: pass
",
                ),
            ),
        ],
    );
    let rows = rows(&test_report(&dir));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|row| row.3), "{rows:?}");
}

#[test]
fn generating_policies_read_the_context_file_and_check_each_generated_resource() {
    let dir = scratch(
        "gpol",
        &[
            (
                "policy.yaml",
                "apiVersion: policies.kyverno.io/v1beta1
kind: GeneratingPolicy
metadata:
  name: copy-secrets
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: ['']
      apiVersions: [v1]
      operations: [CREATE]
      resources: [namespaces]
  variables:
  - name: sources
    expression: resource.List('v1', 'secrets', 'default')
  generate:
  - expression: generator.Apply(object.metadata.name, [variables.sources])
",
            ),
            (
                "context.yaml",
                "apiVersion: cli.kyverno.io/v1alpha1
kind: Context
metadata:
  name: context
spec:
  resources:
  - apiVersion: v1
    kind: Secret
    metadata:
      name: one
      namespace: default
    data:
      a: Yg==
  - apiVersion: v1
    kind: Secret
    metadata:
      name: two
      namespace: default
    data:
      c: ZA==
",
            ),
            (
                "namespace.yaml",
                "apiVersion: v1
kind: Namespace
metadata:
  name: team
",
            ),
            (
                "generated.yaml",
                "apiVersion: v1
kind: Secret
metadata:
  name: one
  namespace: team
data:
  a: Yg==
---
apiVersion: v1
kind: Secret
metadata:
  name: two
  namespace: team
data:
  c: ZA==
",
            ),
            (
                "kyverno-test.yaml",
                &kyverno_test(
                    "gpol",
                    "resources: [namespace.yaml]
context: context.yaml
results:
- policy: copy-secrets
  isGeneratingPolicy: true
  kind: Namespace
  resources: [team]
  generatedResource: generated.yaml
  result: pass
",
                ),
            ),
        ],
    );
    let rows = rows(&test_report(&dir));
    let names: Vec<_> = rows.iter().map(|row| (row.0.as_str(), row.3)).collect();
    assert_eq!(names, [("one", true), ("two", true)], "{rows:?}");
}

#[test]
fn json_payloads_are_named_by_their_file() {
    let dir = scratch(
        "json",
        &[
            (
                "policy.yaml",
                "apiVersion: policies.kyverno.io/v1
kind: ValidatingPolicy
metadata:
  name: no-root
spec:
  evaluation:
    mode: JSON
  validations:
  - expression: object.user != 'root'
    message: root is not allowed
---
apiVersion: policies.kyverno.io/v1beta1
kind: DeletingPolicy
metadata:
  name: delete-root
spec:
  schedule: '*/5 * * * *'
  conditions:
  - name: is-root
    expression: object.user == 'root'
",
            ),
            ("root.json", "{\"user\": \"root\"}"),
            ("alice.json", "{\"user\": \"alice\"}"),
            (
                "kyverno-test.yaml",
                &kyverno_test(
                    "json",
                    "jsonPayloads: [root.json, alice.json]
results:
- {policy: no-root, kind: '', resources: [root.json], result: fail}
- {policy: no-root, kind: '', resources: [alice.json], result: pass}
- {policy: delete-root, isDeletingPolicy: true, kind: '', resources: [root.json], result: pass}
- {policy: delete-root, isDeletingPolicy: true, kind: '', resources: [alice.json], result: fail}
",
                ),
            ),
        ],
    );
    let rows = rows(&test_report(&dir));
    let summary: Vec<_> = rows
        .iter()
        .map(|row| (row.0.as_str(), row.2.as_str(), row.3))
        .collect();
    assert_eq!(
        summary,
        [
            ("root.json", "fail", true),
            ("alice.json", "pass", true),
            ("root.json", "pass", true),
            ("alice.json", "fail", true),
        ]
    );
}

#[test]
fn image_validating_policies_need_a_registry_unless_excepted() {
    let dir = scratch(
        "ivpol",
        &[
            (
                "policy.yaml",
                "apiVersion: policies.kyverno.io/v1beta1
kind: ImageValidatingPolicy
metadata:
  name: signed-images
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: ['']
      apiVersions: [v1]
      operations: [CREATE]
      resources: [pods]
  matchImageReferences:
  - glob: '*'
  attestors:
  - name: cosign
    cosign:
      key:
        data: key
  validations:
  - expression: images.containers.map(image, verifyImageSignatures(image, [attestors.cosign])).all(e, e > 0)
    message: images must be signed
",
            ),
            (
                "exception.yaml",
                "apiVersion: policies.kyverno.io/v1alpha1
kind: PolicyException
metadata:
  name: skip-good
  namespace: default
spec:
  policyRefs:
  - name: signed-images
    kind: ImageValidatingPolicy
  matchConditions:
  - name: good
    expression: object.metadata.name == 'good'
",
            ),
            ("pods.yaml", PODS),
            (
                "kyverno-test.yaml",
                &kyverno_test(
                    "ivpol",
                    "resources: [pods.yaml]
exceptions: [exception.yaml]
results:
- {policy: signed-images, isImageValidatingPolicy: true, kind: Pod, resources: [good], result: skip}
- {policy: signed-images, isImageValidatingPolicy: true, kind: Pod, resources: [bad], result: fail}
",
                ),
            ),
        ],
    );
    let rows = rows(&test_report(&dir));
    assert_eq!(
        (rows[0].2.as_str(), rows[0].3),
        ("skip", true),
        "the exception answers offline: {rows:?}"
    );
    assert_eq!(
        (rows[1].2.as_str(), rows[1].3),
        ("error", false),
        "verification needs a registry: {rows:?}"
    );
}

#[test]
fn unknown_test_fields_of_results_are_errors_and_flags_are_case_insensitive() {
    let dir = scratch(
        "flags",
        &[
            ("policy.yaml", VALIDATING_POLICY),
            ("pods.yaml", PODS),
            (
                "kyverno-test.yaml",
                &kyverno_test(
                    "flags",
                    "resources: [pods.yaml]
results:
- {policy: require-team, ISVALIDATINGPOLICY: true, kind: Pod, resources: [good], result: pass}
- {policy: require-team, isValidatingPolicyy: true, kind: Pod, resources: [bad], result: fail}
",
                ),
            ),
        ],
    );
    let report = test_report(&dir);
    let error = report["tests"][0]["error"].as_str().expect("an error");
    assert!(error.contains("isValidatingPolicyy"), "{error}");
}

#[test]
fn apply_reports_cel_policies_like_the_others() {
    let dir = scratch(
        "apply",
        &[("policy.yaml", VALIDATING_POLICY), ("pods.yaml", PODS)],
    );
    let output = kyverno(&[
        "apply",
        dir.join("policy.yaml").to_str().expect("utf-8"),
        "--resource",
        dir.join("pods.yaml").to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8(output.stdout).expect("utf-8");
    assert!(
        text.contains("Applying 1 policy rule(s) to 2 resource(s)..."),
        "{text}"
    );
    assert!(
        text.contains(
            "policy require-team -> resource default/Pod/bad failed: \n1. validation: a team label is required"
        ),
        "{text}"
    );
    assert!(
        text.contains("pass: 1, fail: 1, warn: 0, error: 0, skip: 0"),
        "{text}"
    );
    assert!(!output.status.success());
}

#[test]
fn cel_compile_errors_name_the_policy_and_the_expression() {
    let dir = scratch(
        "compile",
        &[
            (
                "policy.yaml",
                &VALIDATING_POLICY.replace("'team' in object.metadata.labels", "'team' in (("),
            ),
            ("pods.yaml", PODS),
            (
                "kyverno-test.yaml",
                &kyverno_test(
                    "compile",
                    "resources: [pods.yaml]
results:
- {policy: require-team, kind: Pod, resources: [good], result: pass}
",
                ),
            ),
        ],
    );
    let report = test_report(&dir);
    let error = report["tests"][0]["error"].as_str().expect("an error");
    assert!(
        error.contains("require-team") && error.contains("spec.validations[0].expression"),
        "{error}"
    );
}
