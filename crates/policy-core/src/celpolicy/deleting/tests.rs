use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::celpolicy::common::tests::read_policy;
use crate::celpolicy::generating::tests::Cluster;

fn compile(
    yaml: &str,
    exceptions: &[Arc<PolicyException>],
) -> Result<CompiledDeletingPolicy, CelPolicyLoadError> {
    let (name, namespace, spec) = read_policy(yaml);
    CompiledDeletingPolicy::compile(&name, namespace.as_deref(), &spec, exceptions)
}

fn policy(rest: &str) -> CompiledDeletingPolicy {
    compile(
        &format!(
            "apiVersion: policies.kyverno.io/v1beta1\nkind: DeletingPolicy\nmetadata:\n  name: cleanup\nspec:\n  schedule: '*/5 * * * *'\n{rest}"
        ),
        &[],
    )
    .expect("compiles")
}

const PODS: &str = r#"  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["pods"]
"#;

fn decide(
    policy: &CompiledDeletingPolicy,
    resource: &Value,
    namespace_object: Option<&Value>,
    objects: Vec<Value>,
) -> DeletionDecision {
    let provider: Arc<dyn ContextProvider> = Arc::new(Cluster {
        objects,
        images: Vec::new(),
    });
    policy.decide(
        &Candidate {
            resource,
            namespace_object,
            resources: ResourceTable::builtin(),
        },
        &provider,
    )
}

fn pod(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

#[test]
fn matched_resources_whose_conditions_hold_are_deleted() {
    let policy = policy(&format!(
        "{PODS}  conditions:\n  - name: ns\n    expression: object.metadata.namespace == 'test'\n  - name: name\n    expression: object.metadata.name == 'old'\n"
    ));
    assert_eq!(policy.schedule(), "*/5 * * * *");
    assert_eq!(policy.name(), "cleanup");
    assert_eq!(
        decide(&policy, &pod("test", "old"), None, vec![]),
        DeletionDecision::Delete
    );
    assert_eq!(
        decide(&policy, &pod("test", "new"), None, vec![]),
        DeletionDecision::Keep
    );
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "old", "namespace": "test"}});
    assert_eq!(
        decide(&policy, &secret, None, vec![]),
        DeletionDecision::Keep
    );
}

#[test]
fn selectors_apply_and_no_constraints_select_nothing() {
    let policy = policy(
        r#"  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      resources: ["secrets"]
    objectSelector:
      matchExpressions:
      - key: kubernetes.io/legacy-token-invalid-since
        operator: Exists
"#,
    );
    let secret = |labels: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": labels}});
    assert_eq!(
        decide(
            &policy,
            &secret(json!({"kubernetes.io/legacy-token-invalid-since": "2024-01-01"})),
            None,
            vec![]
        ),
        DeletionDecision::Delete
    );
    assert_eq!(
        decide(&policy, &secret(json!({})), None, vec![]),
        DeletionDecision::Keep
    );
    let unconstrained = self::policy("  conditions:\n  - name: t\n    expression: 'true'\n");
    assert_eq!(
        decide(&unconstrained, &pod("a", "b"), None, vec![]),
        DeletionDecision::Keep
    );
}

#[test]
fn payloads_without_kind_are_judged_by_their_conditions() {
    let policy = policy(
        "  conditions:\n  - name: key\n    expression: object.MetaArgs[0].Key == \"BUILD_PLATFORM\"\n",
    );
    let payload = json!({"MetaArgs": [{"Key": "BUILD_PLATFORM"}]});
    assert_eq!(
        decide(&policy, &payload, None, vec![]),
        DeletionDecision::Delete
    );
    let other = json!({"MetaArgs": [{"Key": "BUILDER_IMAGE"}]});
    assert_eq!(
        decide(&policy, &other, None, vec![]),
        DeletionDecision::Keep
    );
}

#[test]
fn conditions_see_the_namespace_variables_and_libraries() {
    let policy = policy(&format!(
        r#"{PODS}  variables:
  - name: cm
    expression: resource.get("v1", "configmaps", "default", "registries")
  conditions:
  - name: test-namespace
    expression: namespaceObject != null && namespaceObject.metadata.?labels[?"env"].orValue("") == "test"
  - name: enabled
    expression: variables.cm.data.registries == "enabled"
"#
    ));
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "test", "labels": {"env": "test"}}});
    let configmap = |value: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "registries", "namespace": "default"},
               "data": {"registries": value}})
    };
    assert_eq!(
        decide(
            &policy,
            &pod("test", "p"),
            Some(&namespace),
            vec![configmap("enabled")]
        ),
        DeletionDecision::Delete
    );
    assert_eq!(
        decide(
            &policy,
            &pod("test", "p"),
            Some(&namespace),
            vec![configmap("disabled")]
        ),
        DeletionDecision::Keep
    );
    // Without the Namespace object, namespaceObject is null.
    assert_eq!(
        decide(&policy, &pod("test", "p"), None, vec![configmap("enabled")]),
        DeletionDecision::Keep
    );
}

#[test]
fn errors_and_unknown_kinds_are_errors() {
    let policy = policy(&format!(
        "{PODS}  conditions:\n  - name: missing\n    expression: object.spec.missing == 1\n"
    ));
    let DeletionDecision::Error(error) = decide(&policy, &pod("a", "b"), None, vec![]) else {
        panic!("expected an error");
    };
    assert!(error.contains("object.spec.missing == 1"), "{error}");
    let custom = json!({"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"name": "t"}});
    let DeletionDecision::Error(error) = decide(&policy, &custom, None, vec![]) else {
        panic!("expected an error");
    };
    assert!(error.contains("no matches for kind \"Thing\""), "{error}");
}

#[test]
fn exceptions_and_namespaces_keep_resources() {
    let exception: PolicyException = serde_json::from_value(json!({
        "metadata": {"name": "keep", "namespace": "kyverno"},
        "spec": {"policyRefs": [{"name": "cleanup", "kind": "DeletingPolicy"}],
                 "matchConditions": [{"name": "n", "expression": "object.metadata.name == 'keep'"}]}
    }))
    .expect("exception");
    let policy = compile(
        &format!(
            "apiVersion: policies.kyverno.io/v1beta1\nkind: DeletingPolicy\nmetadata:\n  name: cleanup\nspec:\n  schedule: '0 1 * * *'\n  deletionPropagationPolicy: Orphan\n{PODS}"
        ),
        &[Arc::new(exception)],
    )
    .expect("compiles");
    assert_eq!(
        policy.deletion_propagation_policy(),
        Some(DeletionPropagation::Orphan)
    );
    let DeletionDecision::Exempted(message) = decide(&policy, &pod("a", "keep"), None, vec![])
    else {
        panic!("expected an exemption");
    };
    assert!(message.contains("kyverno/keep"), "{message}");
    assert_eq!(
        decide(&policy, &pod("a", "other"), None, vec![]),
        DeletionDecision::Delete
    );

    let namespaced = compile(
        &format!(
            "apiVersion: policies.kyverno.io/v1beta1\nkind: NamespacedDeletingPolicy\nmetadata:\n  name: tenant\n  namespace: team\nspec:\n  schedule: '0 1 * * *'\n{PODS}"
        ),
        &[],
    )
    .expect("compiles");
    assert_eq!(
        decide(&namespaced, &pod("team", "p"), None, vec![]),
        DeletionDecision::Delete
    );
    assert_eq!(
        decide(&namespaced, &pod("other", "p"), None, vec![]),
        DeletionDecision::Keep
    );
}

#[test]
fn compile_errors_name_the_policy_and_the_condition() {
    let error = compile(
        "apiVersion: policies.kyverno.io/v1beta1\nkind: DeletingPolicy\nmetadata:\n  name: bad\nspec:\n  schedule: '* * * * *'\n  conditions:\n  - name: a\n    expression: 'true'\n  - name: b\n    expression: 'object.('\n",
        &[],
    )
    .expect_err("does not compile")
    .to_string();
    assert!(
        error.starts_with("DeletingPolicy \"bad\": spec.conditions[1].expression: "),
        "{error}"
    );
    assert!(error.contains("<input>:1:"), "{error}");
}
