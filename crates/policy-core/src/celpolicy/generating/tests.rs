use std::sync::Arc;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::policies::exception::PolicyException;
use serde_json::{Value, json};

use super::*;
use crate::celpolicy::common::tests::read_policy;
use crate::engine::{Lookup, ProviderError};
use crate::request::GroupVersionKind;

/// A cluster holding `objects`, served to `resource.Get` and `resource.List` by apiVersion,
/// plural resource (the lower-cased kind plus `s`), namespace and name, and the data of the
/// `images` (an empty object each).
#[derive(Debug, Default)]
pub(crate) struct Cluster {
    pub(crate) objects: Vec<Value>,
    pub(crate) images: Vec<String>,
}

impl Cluster {
    fn matching<'a>(
        &'a self,
        api_version: &'a str,
        resource: &'a str,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |object| {
            text(object, "/apiVersion") == api_version
                && format!("{}s", text(object, "/kind").to_lowercase()) == resource
                && (namespace.is_empty() || text(object, "/metadata/namespace") == namespace)
        })
    }
}

impl ContextProvider for Cluster {
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
    fn image_data(&self, reference: &str) -> Result<Lookup, ProviderError> {
        Ok(if self.images.iter().any(|image| image == reference) {
            Lookup::Found(json!({}))
        } else {
            Lookup::Unavailable
        })
    }
    fn get_api_resource(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(self
            .matching(api_version, resource, namespace)
            .find(|object| text(object, "/metadata/name") == name)
            .cloned()
            .map_or(Lookup::Unavailable, Lookup::Found))
    }
    fn list_api_resources(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        let items: Vec<Value> = self
            .matching(api_version, resource, namespace)
            .cloned()
            .collect();
        Ok(Lookup::Found(
            json!({"apiVersion": "v1", "kind": "List", "items": items}),
        ))
    }
}

fn policy(yaml: &str) -> CompiledGeneratingPolicy {
    compile(yaml, &[]).expect("policy compiles")
}

fn compile(
    yaml: &str,
    exceptions: &[Arc<PolicyException>],
) -> Result<CompiledGeneratingPolicy, CelPolicyLoadError> {
    let (name, namespace, spec) = read_policy(yaml);
    CompiledGeneratingPolicy::compile(&name, namespace.as_deref(), &spec, exceptions)
}

/// Evaluates `policy` for the CREATE of `object` in a cluster holding `objects`.
fn run(
    policy: &CompiledGeneratingPolicy,
    object: Value,
    objects: Vec<Value>,
) -> Option<GeneratingResponse> {
    let gvk =
        GroupVersionKind::from_api_version(text(&object, "/apiVersion"), text(&object, "/kind"));
    let table = ResourceTable::builtin();
    let resource = table.mapping(&gvk).expect("known kind").resource;
    let request = ResourceRequest::new(object).with_operation(AdmissionOperation::Create);
    let provider: Arc<dyn ContextProvider> = Arc::new(Cluster {
        objects,
        images: Vec::new(),
    });
    policy.evaluate(
        &RequestInput::new(&request, &resource, None),
        table,
        &provider,
    )
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "uid": "ns-uid"}})
}

const NAMESPACES: &str = r#"
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["namespaces"]
"#;

fn on_namespaces(name: &str, rest: &str) -> String {
    format!(
        "apiVersion: policies.kyverno.io/v1beta1\nkind: GeneratingPolicy\nmetadata:\n  name: {name}\nspec:{NAMESPACES}{rest}"
    )
}

fn resources(response: &GeneratingResponse) -> Vec<Value> {
    response
        .resources
        .iter()
        .map(|generated| generated.resource.clone())
        .collect()
}

fn labels_of(policy: &str, trigger: &str) -> Value {
    json!({
        "app.kubernetes.io/managed-by": "kyverno",
        "generate.kyverno.io/policy-name": policy,
        "generate.kyverno.io/policy-namespace": "",
        "generate.kyverno.io/trigger-name": trigger,
        "generate.kyverno.io/trigger-namespace": "",
        "generate.kyverno.io/trigger-uid": "ns-uid",
        "generate.kyverno.io/trigger-kind": "Namespace",
        "generate.kyverno.io/trigger-group": "",
        "generate.kyverno.io/trigger-version": "v1",
    })
}

#[test]
fn data_is_generated_into_the_namespace_given_with_the_downstream_labels() {
    let policy = policy(&on_namespaces(
        "generate-cm",
        r#"
  evaluation:
    synchronize:
      enabled: true
  variables:
  - name: nsName
    expression: object.metadata.name
  - name: configmap
    expression: >-
      [{"kind": dyn("ConfigMap"), "apiVersion": dyn("v1"),
        "metadata": dyn({"name": "zk", "namespace": "elsewhere"}),
        "data": dyn({"ZK": "a:2181"})}]
  generate:
  - expression: generator.apply(variables.nsName, variables.configmap)
"#,
    ));
    let response = run(&policy, namespace("test-ns"), vec![]).expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Pass, "{response:?}");
    assert_eq!(response.rule.name, "generate-cm");
    assert_eq!(response.rule.rule_type, RuleType::Generation);
    assert_eq!(
        resources(&response),
        vec![json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "zk", "namespace": "test-ns",
                         "labels": labels_of("generate-cm", "test-ns")},
            "data": {"ZK": "a:2181"}
        })]
    );
    assert!(response.resources[0].synchronize);
    assert!(!response.resources[0].orphan_downstream_on_policy_delete);
    assert_eq!(response.resources[0].rule, "generate-cm");
    assert!(policy.settings().synchronize && policy.settings().admission);
    assert!(!policy.settings().generate_existing);
}

#[test]
fn listed_sources_are_cloned_without_server_metadata() {
    let policy = policy(&on_namespaces(
        "clone",
        r#"
  variables:
  - name: sources
    expression: resource.List("v1", "secrets", "default")
  - name: one
    expression: resource.get("v1", "configmaps", "default", "cm")
  generate:
  - expression: generator.Apply(object.metadata.name, [variables.sources, variables.one])
"#,
    ));
    let secret = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {"k": "dg=="},
               "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                            "resourceVersion": "7", "creationTimestamp": "2024-01-01T00:00:00Z",
                            "labels": {"team": "a"}}})
    };
    let configmap = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default"}, "data": {"a": "b"}});
    let response = run(
        &policy,
        namespace("target"),
        vec![secret("s1"), secret("s2"), configmap],
    )
    .expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Pass, "{response:?}");
    let generated = resources(&response);
    assert_eq!(generated.len(), 3);
    let mut labels = labels_of("clone", "target");
    labels["team"] = json!("a");
    labels["generate.kyverno.io/source-uid"] = json!("uid-s1");
    assert_eq!(
        generated[0],
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {"k": "dg=="},
               "metadata": {"name": "s1", "namespace": "target", "labels": labels}})
    );
    assert_eq!(generated[1]["metadata"]["name"], "s2");
    assert_eq!(generated[2]["metadata"]["namespace"], "target");
    assert!(
        generated[2]["metadata"]["labels"]
            .get("generate.kyverno.io/source-uid")
            .is_none()
    );
}

#[test]
fn each_call_of_a_macro_generates_in_order() {
    let policy = policy(
        r#"
apiVersion: policies.kyverno.io/v1beta1
kind: GeneratingPolicy
metadata:
  name: foreach
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["configmaps"]
  variables:
  - name: nsList
    expression: object.data.namespaces.split(',')
  generate:
  - expression: >
      variables.nsList.all(ns, generator.apply(ns, [{"apiVersion": dyn("v1"),
        "kind": dyn("Secret"), "metadata": dyn({"name": "s"})}]))
"#,
    );
    let trigger = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "list", "namespace": "default"}, "data": {"namespaces": "a,b,c"}});
    let response = run(&policy, trigger, vec![]).expect("applies");
    let namespaces: Vec<Value> = resources(&response)
        .iter()
        .map(|resource| resource["metadata"]["namespace"].clone())
        .collect();
    assert_eq!(namespaces, [json!("a"), json!("b"), json!("c")]);
    assert_eq!(
        response.resources[0].resource["metadata"]["labels"]["generate.kyverno.io/trigger-namespace"],
        "default"
    );
}

#[test]
fn templates_generate_each_document_and_entries_keep_their_order() {
    let policy = policy(&on_namespaces(
        "template",
        r#"
  variables:
  - name: labels
    expression: '{"team": "platform"}'
  generate:
  - template:
      interpolate: cel
      value: |
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: (( object.metadata.name ))-config
          namespace: (( object.metadata.name ))
          labels: (( variables.labels ))
        data:
          literal: \((kept))
  - expression: 'generator.Apply("second", [{"apiVersion": dyn("v1"), "kind": dyn("ConfigMap"), "metadata": dyn({"name": "b"})}])' 
  - template:
      value: |
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: plain
          namespace: third
        data:
          other: (( not evaluated ))
"#,
    ));
    let response = run(&policy, namespace("team"), vec![]).expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Pass, "{response:?}");
    let generated = resources(&response);
    let names: Vec<&Value> = generated.iter().map(|r| &r["metadata"]["name"]).collect();
    assert_eq!(names, [&json!("team-config"), &json!("b"), &json!("plain")]);
    assert_eq!(generated[0]["metadata"]["namespace"], "team");
    assert_eq!(generated[0]["metadata"]["labels"]["team"], "platform");
    assert_eq!(generated[0]["data"]["literal"], "((kept))");
    assert_eq!(generated[2]["data"]["other"], "(( not evaluated ))");
}

#[test]
fn cluster_scoped_resources_lose_their_namespace() {
    let policy = policy(&on_namespaces(
        "binding",
        r#"
  generate:
  - expression: >
      generator.Apply(object.metadata.name, [{"apiVersion": dyn("rbac.authorization.k8s.io/v1"),
        "kind": dyn("ClusterRoleBinding"), "metadata": dyn({"name": "crb"})}])
"#,
    ));
    let response = run(&policy, namespace("team"), vec![]).expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Pass, "{response:?}");
    assert!(
        response.resources[0].resource["metadata"]
            .get("namespace")
            .is_none()
    );
}

#[test]
fn namespaced_policies_stay_in_their_namespace() {
    let namespaced = |generate: &str| {
        policy(&format!(
            r#"
apiVersion: policies.kyverno.io/v1beta1
kind: NamespacedGeneratingPolicy
metadata:
  name: tenant
  namespace: tenant-ns
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["configmaps"]
  generate:
  - {generate}
"#
        ))
    };
    let trigger = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "t", "namespace": "tenant-ns"}});
    let allowed = namespaced(
        r#"expression: 'generator.Apply([{"apiVersion": dyn("v1"), "kind": dyn("ConfigMap"), "metadata": dyn({"name": "x"})}])'"#,
    );
    let response = run(&allowed, trigger.clone(), vec![]).expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Pass, "{response:?}");
    assert_eq!(
        response.resources[0].resource["metadata"]["namespace"],
        "tenant-ns"
    );
    assert_eq!(
        response.resources[0].resource["metadata"]["labels"]["generate.kyverno.io/policy-namespace"],
        "tenant-ns"
    );

    let cluster_scoped = namespaced(
        r#"expression: 'generator.Apply([{"apiVersion": dyn("v1"), "kind": dyn("Namespace"), "metadata": dyn({"name": "x"})}])'"#,
    );
    let response = run(&cluster_scoped, trigger.clone(), vec![]).expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Error);
    assert!(
        response
            .rule
            .message
            .contains("cross-scope generation denied"),
        "{response:?}"
    );

    let elsewhere = namespaced(
        "template: {value: \"apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: x\\n  namespace: kube-system\\n\"}",
    );
    let response = run(&elsewhere, trigger, vec![]).expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Error);
    assert!(
        response
            .rule
            .message
            .contains("cross-namespace generation denied"),
        "{response:?}"
    );
}

#[test]
fn only_selected_triggers_get_a_response() {
    let conditions = policy(&on_namespaces(
        "conditional",
        r#"
  matchConditions:
  - name: labelled
    expression: object.metadata.?labels[?"team"].orValue("") == "a"
  generate:
  - expression: generator.Apply("x", [])
"#,
    ));
    assert!(run(&conditions, namespace("plain"), vec![]).is_none());
    let mut labelled = namespace("labelled");
    labelled["metadata"]["labels"] = json!({"team": "a"});
    let response = run(&conditions, labelled, vec![]).expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Pass);
    assert!(response.resources.is_empty());

    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"}});
    assert!(run(&conditions, pod, vec![]).is_none());

    let unconstrained = policy(
        "apiVersion: policies.kyverno.io/v1beta1\nkind: GeneratingPolicy\nmetadata:\n  name: none\nspec:\n  generate:\n  - expression: 'true'\n",
    );
    assert!(run(&unconstrained, namespace("n"), vec![]).is_none());
}

#[test]
fn exceptions_skip_the_triggers_they_match() {
    let exception: PolicyException = serde_json::from_value(json!({
        "apiVersion": "policies.kyverno.io/v1alpha1", "kind": "PolicyException",
        "metadata": {"name": "skip-testing", "namespace": "kyverno"},
        "spec": {
            "policyRefs": [{"name": "generate-cm", "kind": "GeneratingPolicy"}],
            "matchConditions": [{"name": "n", "expression": "object.metadata.name == 'testing'"}]
        }
    }))
    .expect("exception");
    let policy = compile(
        &on_namespaces(
            "generate-cm",
            "\n  generate:\n  - expression: 'generator.Apply(object.metadata.name, [{\"apiVersion\": dyn(\"v1\"), \"kind\": dyn(\"ConfigMap\"), \"metadata\": dyn({\"name\": \"x\"})}])'\n",
        ),
        &[Arc::new(exception)],
    )
    .expect("compiles");
    let skipped = run(&policy, namespace("testing"), vec![]).expect("applies");
    assert_eq!(skipped.rule.status, RuleStatus::Skip);
    assert_eq!(skipped.rule.name, "generate-cm");
    assert!(
        skipped.rule.message.contains("kyverno/skip-testing"),
        "{skipped:?}"
    );
    assert!(skipped.resources.is_empty());
    let generated = run(&policy, namespace("production"), vec![]).expect("applies");
    assert_eq!(generated.rule.status, RuleStatus::Pass);
    assert_eq!(generated.resources.len(), 1);
}

#[test]
fn evaluation_errors_are_error_results() {
    let policy = policy(&on_namespaces(
        "uid",
        r#"
  generate:
  - expression: >
      generator.Apply("default", [{"apiVersion": dyn("v1"), "kind": dyn("ConfigMap"),
        "metadata": dyn({"name": "x", "ownerReferences": dyn([dyn({"uid": dyn(object.metadata.annotations.uid)})])})}])
"#,
    ));
    let response = run(&policy, namespace("n"), vec![]).expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Error);
    assert!(
        response
            .rule
            .message
            .starts_with("failed to evaluate policy: expression '"),
        "{response:?}"
    );
    assert!(response.resources.is_empty());

    let not_a_list = policy_with_generate("generator.Apply('n', 'text')");
    let response = run(&not_a_list, namespace("n"), vec![]).expect("applies");
    assert_eq!(response.rule.status, RuleStatus::Error);
    assert!(
        response.rule.message.contains("expected a list of objects"),
        "{response:?}"
    );
}

fn policy_with_generate(expression: &str) -> CompiledGeneratingPolicy {
    policy(&on_namespaces(
        "p",
        &format!("\n  generate:\n  - expression: \"{expression}\"\n"),
    ))
}

#[test]
fn compile_errors_name_the_policy_the_field_and_the_position() {
    let error = compile(
        &on_namespaces(
            "broken",
            "\n  generate:\n  - expression: 'generator.Apply('\n",
        ),
        &[],
    )
    .expect_err("does not compile")
    .to_string();
    assert!(
        error.starts_with("GeneratingPolicy \"broken\": spec.generate[0].expression: "),
        "{error}"
    );
    assert!(error.contains("<input>:1:"), "{error}");

    let error = compile(
        &on_namespaces(
            "broken",
            "\n  variables:\n  - name: a\n    expression: '1 +'\n  generate:\n  - expression: 'true'\n",
        ),
        &[],
    )
    .expect_err("does not compile")
    .to_string();
    assert!(error.contains("spec.variables[0].expression"), "{error}");

    let both = compile(
        &on_namespaces(
            "both",
            "\n  generate:\n  - expression: 'true'\n    template: {value: 'kind: A'}\n",
        ),
        &[],
    )
    .expect_err("rejected")
    .to_string();
    assert!(
        both.contains("spec.generate[0]: only one of expression or template"),
        "{both}"
    );
    let neither = compile(&on_namespaces("neither", "\n  generate:\n  - {}\n"), &[])
        .expect_err("rejected")
        .to_string();
    assert!(
        neither.contains("one of expression or template must be set"),
        "{neither}"
    );

    let template = compile(
        &on_namespaces(
            "template",
            "\n  generate:\n  - template: {interpolate: cel, value: \"kind: A\\nmetadata:\\n  name: (( a. ))\\n\"}\n",
        ),
        &[],
    )
    .expect_err("rejected")
    .to_string();
    assert!(
        template.contains("spec.generate[0].template.value"),
        "{template}"
    );
    assert!(
        template.contains("invalid placeholder expression"),
        "{template}"
    );

    let exception: PolicyException = serde_json::from_value(json!({
        "metadata": {"name": "bad", "namespace": "ns"},
        "spec": {"policyRefs": [{"name": "p", "kind": "GeneratingPolicy"}],
                 "matchConditions": [{"name": "n", "expression": "object.("}]}
    }))
    .expect("exception");
    let error = compile(
        &on_namespaces("p", "\n  generate:\n  - expression: 'true'\n"),
        &[Arc::new(exception)],
    )
    .expect_err("rejected")
    .to_string();
    assert!(
        error.contains("PolicyException ns/bad: spec.matchConditions[0].expression"),
        "{error}"
    );
}

#[test]
fn selects_follows_the_match_constraints_only() {
    let policy = policy(&on_namespaces(
        "selecting",
        r#"
  matchConditions:
  - name: never
    expression: "false"
  generate:
  - expression: 'generator.Apply("x", [])'
"#,
    ));
    let table = ResourceTable::builtin();
    let select = |object: Value, operation: AdmissionOperation| {
        let gvk = GroupVersionKind::from_api_version(
            text(&object, "/apiVersion"),
            text(&object, "/kind"),
        );
        let resource = table.mapping(&gvk).expect("known kind").resource;
        let request = ResourceRequest::new(object).with_operation(operation);
        policy.selects(&RequestInput::new(&request, &resource, None))
    };
    assert!(
        select(namespace("team"), AdmissionOperation::Create),
        "conditions are not evaluated"
    );
    assert!(!select(namespace("team"), AdmissionOperation::Delete));
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "a"}});
    assert!(!select(pod, AdmissionOperation::Create));
    assert!(policy.match_constraints().is_some());
}
