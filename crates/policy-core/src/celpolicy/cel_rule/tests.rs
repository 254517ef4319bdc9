use std::sync::Arc;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use serde_json::{Value, json};

use crate::engine::{
    ContextProvider, Environment, LoadedPolicy, Lookup, NoExternalData, PolicyLoadError,
    ProviderError, SuppliedValues, validate,
};
use crate::request::ResourceRequest;
use crate::response::RuleStatus;

fn load(rules: &str) -> Result<LoadedPolicy, PolicyLoadError> {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: cel\nspec:\n  rules:\n{rules}"
    );
    let policy: ClusterPolicy = serde_saphyr::from_str(&yaml).expect("valid policy");
    LoadedPolicy::from_cluster_policy(policy)
}

fn policy(rules: &str) -> LoadedPolicy {
    load(rules).expect("loads")
}

/// The rule `check` on Pods: `fields` are more fields of the rule, `cel` the body of its
/// `validate.cel` (each indented for its place, after an optional leading line break).
fn pod_rule(fields: &str, cel: &str) -> String {
    let (fields, cel) = (
        fields.trim_start_matches('\n'),
        cel.trim_start_matches('\n'),
    );
    format!(
        "  - name: check\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n{fields}    validate:\n      cel:\n{cel}"
    )
}

fn run_with(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    provider: &dyn ContextProvider,
) -> Vec<(String, RuleStatus, String)> {
    let values = SuppliedValues::default();
    let environment = Environment {
        provider,
        exceptions: &[],
        values: &values,
    };
    validate(policy, request, &environment)
        .rules
        .into_iter()
        .map(|rule| (rule.name, rule.status, rule.message))
        .collect()
}

fn run(policy: &LoadedPolicy, resource: Value) -> Vec<(String, RuleStatus, String)> {
    run_with(
        policy,
        &ResourceRequest::new(Arc::new(resource)),
        &NoExternalData,
    )
}

fn pod(name: &str, namespace: &str, replicas: i64) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": {"n": replicas.to_string()}},
           "spec": {"containers": [{"name": "app", "image": "nginx"}], "priority": replicas}})
}

const RULE: &str = r#"
  - name: check
    match:
      any:
      - resources:
          kinds: [Pod]
    validate:
      message: rule message
      cel:
        variables:
        - name: priority
          expression: object.spec.priority
        expressions:
        - expression: variables.priority < 10
          messageExpression: "'priority ' + string(variables.priority) + ' too high'"
        - expression: object.metadata.name != 'forbidden'
        - expression: object.metadata.name != 'nomessage'
          message: ""
"#;

fn single(results: Vec<(String, RuleStatus, String)>) -> (RuleStatus, String) {
    let [(name, status, message)] = <[_; 1]>::try_from(results).expect("one rule");
    assert_eq!(name, "check");
    (status, message)
}

#[test]
fn pass_fail_and_messages() {
    let policy = policy(RULE);
    assert_eq!(
        single(run(&policy, pod("ok", "default", 1))),
        (
            RuleStatus::Pass,
            "Validation rule 'check' passed.".to_owned()
        )
    );
    assert_eq!(
        single(run(&policy, pod("ok", "default", 12))),
        (RuleStatus::Fail, "priority 12 too high".to_owned())
    );
    // The rule-level message is the default of every expression.
    assert_eq!(
        single(run(&policy, pod("forbidden", "default", 1))),
        (RuleStatus::Fail, "rule message".to_owned())
    );
    assert_eq!(
        single(run(&policy, pod("nomessage", "default", 1))),
        (RuleStatus::Fail, "rule message".to_owned())
    );
}

#[test]
fn runtime_errors_fail_the_rule_with_the_error() {
    let mut resource = pod("ok", "default", 1);
    resource["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("priority");
    let (status, message) = single(run(&policy(RULE), resource));
    assert_eq!(status, RuleStatus::Fail);
    assert!(
        message.starts_with("expression 'variables.priority < 10' resulted in error: composited variable \"priority\" fails to evaluate: "),
        "{message}"
    );
}

#[test]
fn default_message_is_the_failed_expression() {
    let policy = policy(&pod_rule(
        "",
        r#"
        expressions:
        - expression: "object.spec.priority < 10"
"#,
    ));
    assert_eq!(
        single(run(&policy, pod("p", "default", 20))),
        (
            RuleStatus::Fail,
            "failed expression: object.spec.priority < 10".to_owned()
        )
    );
}

#[test]
fn cel_preconditions_skip_or_fail() {
    let policy = policy(&pod_rule(
        r#"
    celPreconditions:
    - name: not-system
      expression: object.metadata.namespace != 'kube-system'
    - name: errors-on-missing
      expression: object.metadata.labels.n != 'x'
"#,
        r#"
        expressions:
        - expression: "false"
          message: denied
"#,
    ));
    assert_eq!(
        single(run(&policy, pod("p", "kube-system", 1))),
        (RuleStatus::Skip, "cel preconditions not met".to_owned())
    );
    assert_eq!(
        single(run(&policy, pod("p", "default", 1))),
        (RuleStatus::Fail, "denied".to_owned())
    );
    let mut unlabeled = pod("p", "default", 1);
    unlabeled["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("labels");
    let (status, message) = single(run(&policy, unlabeled));
    assert_eq!(status, RuleStatus::Fail);
    assert!(
        message.starts_with("expression 'object.metadata.labels.n != 'x'' resulted in error"),
        "{message}"
    );
}

#[test]
fn request_and_namespace_object_are_bound() {
    let policy = policy(&pod_rule(
        "",
        r#"
        expressions:
        - expression: namespaceObject.metadata.name != 'default'
        - expression: request.operation != 'DELETE' || object == null
        - expression: request.operation != 'UPDATE' || oldObject.metadata.name == object.metadata.name
"#,
    ));
    assert_eq!(run(&policy, pod("p", "default", 1))[0].1, RuleStatus::Fail);
    assert_eq!(run(&policy, pod("p", "prod", 1))[0].1, RuleStatus::Pass);
    let resource = Arc::new(pod("p", "prod", 1));
    for operation in [AdmissionOperation::Update, AdmissionOperation::Delete] {
        let request = ResourceRequest::new(Arc::clone(&resource))
            .with_operation(operation)
            .with_old_resource(Arc::clone(&resource));
        assert_eq!(
            run_with(&policy, &request, &NoExternalData)[0].1,
            RuleStatus::Pass,
            "{operation:?}"
        );
    }
}

#[test]
fn autogen_rules_read_the_pod_template() {
    let policy = policy(&pod_rule(
        "",
        r#"
        expressions:
        - expression: object.spec.containers.all(c, c.image != 'bad')
"#,
    ));
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "bad"}]}}}});
    let results = run(&policy, deployment);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, "autogen-check");
    assert_eq!(results[0].1, RuleStatus::Fail);
}

#[test]
fn compile_errors_fail_the_load_with_rule_index_and_position() {
    let error = load(
        r#"
  - name: first
    match:
      any:
      - resources:
          kinds: [ConfigMap]
    validate:
      cel:
        expressions:
        - expression: "true"
  - name: second
    match:
      any:
      - resources:
          kinds: [ConfigMap]
    validate:
      cel:
        expressions:
        - expression: "true"
        - expression: "object.data.x =="
"#,
    )
    .expect_err("does not compile");
    let PolicyLoadError::Invalid {
        policy,
        path,
        message,
    } = error;
    assert_eq!(policy, "cel");
    assert_eq!(path, "spec.rules[1].validate.cel.expressions[1].expression");
    assert!(message.contains("<input>:1:"), "{message}");
}

/// Serves one ConfigMap parameter in namespace `default`.
struct Params;

impl ContextProvider for Params {
    fn config_map(&self, _: &str, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn api_call(&self, _: &str, _: &str, _: Option<&Value>) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn service_call(&self, _: &str, _: &str, _: Option<&Value>) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn global_context(&self, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn image_data(&self, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn get_resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(match (api_version, kind, namespace, name) {
            ("v1", "ConfigMap", "default", "limits") => Lookup::Found(self.param()),
            ("v1", "Namespace", "", "default") => Lookup::Found(json!({
                    "metadata": {"name": "default", "labels": {"team": "a"}}})),
            _ => Lookup::Unavailable,
        })
    }
    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(match (api_version, kind, namespace) {
            ("v1", "ConfigMap", "default") => Lookup::Found(json!([self.param(),
                {"metadata": {"name": "other", "labels": {"use": "no"}}, "data": {"max": "0"}}])),
            _ => Lookup::Unavailable,
        })
    }
}

impl Params {
    fn param(&self) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "limits", "namespace": "default", "labels": {"use": "yes"}},
               "data": {"max": "5"}})
    }
}

#[test]
fn params_come_from_the_provider() {
    let rule = |param_ref: &str| {
        policy(&pod_rule(
            "",
            &format!(
                r#"
        paramKind:
          apiVersion: v1
          kind: ConfigMap
        paramRef: {param_ref}
        expressions:
        - expression: object.spec.priority <= int(params.data.max)
          messageExpression: "'at most ' + params.data.max"
"#
            ),
        ))
    };
    let request = |priority| ResourceRequest::new(Arc::new(pod("p", "default", priority)));
    let by_name = rule("{name: limits}");
    assert_eq!(
        run_with(&by_name, &request(5), &Params)[0].1,
        RuleStatus::Pass
    );
    assert_eq!(run_with(&by_name, &request(6), &Params)[0].2, "at most 5");
    let by_selector = rule("{selector: {matchLabels: {use: 'yes'}}}");
    assert_eq!(
        run_with(&by_selector, &request(5), &Params)[0].1,
        RuleStatus::Pass
    );
    let missing = rule("{name: nope}");
    let (_, status, message) = run_with(&missing, &request(1), &Params).remove(0);
    assert_eq!(status, RuleStatus::Error);
    assert_eq!(
        message,
        "error in parameterized resource: configmaps \"nope\" not found"
    );
    // No parameter at all: nothing to validate against, unless the action is Deny.
    let none = rule("{selector: {matchLabels: {use: 'never'}}}");
    assert_eq!(run_with(&none, &request(9), &Params)[0].1, RuleStatus::Pass);
    let deny = rule("{selector: {matchLabels: {use: 'never'}}, parameterNotFoundAction: Deny}");
    assert_eq!(
        run_with(&deny, &request(9), &Params)[0].2,
        "error in parameterized resource: no params found"
    );
}

#[test]
fn namespace_object_comes_from_the_provider_when_it_has_it() {
    let policy = policy(&pod_rule(
        "",
        r#"
        expressions:
        - expression: namespaceObject.metadata.labels.team == 'a'
"#,
    ));
    let request = ResourceRequest::new(Arc::new(pod("p", "default", 1)));
    assert_eq!(run_with(&policy, &request, &Params)[0].1, RuleStatus::Pass);
    assert_eq!(
        run_with(&policy, &request, &NoExternalData)[0].1,
        RuleStatus::Fail
    );
}
