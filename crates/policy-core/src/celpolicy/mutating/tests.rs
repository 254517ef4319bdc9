use serde_json::json;

use super::*;
use crate::engine::Lookup;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;

use crate::request::AdmissionUserInfo;

fn mutating_policy(spec: Value) -> CompiledMutatingPolicy {
    let policy: MutatingPolicy = serde_json::from_value(json!({
        "apiVersion": "policies.kyverno.io/v1beta1",
        "kind": "MutatingPolicy",
        "metadata": {"name": "mpol"},
        "spec": spec
    }))
    .expect("policy");
    CompiledMutatingPolicy::compile(&policy, &[]).expect("compiles")
}

fn pods() -> GroupVersionResource {
    GroupVersionResource::new("", "v1", "pods")
}

fn pod_rules() -> Value {
    json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]})
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}})
}

fn create(resource: Value) -> ResourceRequest {
    ResourceRequest::new(resource).with_operation(AdmissionOperation::Create)
}

fn run(policy: &CompiledMutatingPolicy, resource: Value) -> Option<PolicyMutation> {
    let request = create(resource);
    policy.evaluate(&RequestInput::new(&request, &pods(), None))
}

#[test]
fn apply_configurations_merge_into_the_object() {
    let policy = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'team': 'a'}}, \
             spec: Object.spec{containers: [Object.spec.containers{name: 'nginx', \
             imagePullPolicy: 'Always'}]}}"}}]
    }));
    let outcome = run(&policy, pod()).expect("matched");
    assert_eq!(outcome.rule.status, RuleStatus::Pass);
    assert_eq!(outcome.rule.message, "success");
    assert_eq!(
        *outcome.patched,
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "prod",
                "labels": {"app": "web", "team": "a"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx",
                "imagePullPolicy": "Always"}]}})
    );
    let patches = serde_json::to_value(&outcome.patches).expect("patch");
    assert_eq!(
        patches,
        json!([
            {"op": "add", "path": "/metadata/labels/team", "value": "a"},
            {"op": "add", "path": "/spec/containers/0/imagePullPolicy", "value": "Always"}
        ])
    );
}

#[test]
fn mutations_apply_in_order_each_seeing_the_previous_result() {
    let policy = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "mutations": [
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'add', path: '/metadata/annotations', value: {'step': '1'}}]"}},
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'add', path: '/metadata/annotations/' + jsonpatch.escapeKey('a/b'), \
                  value: object.metadata.annotations.step + '2'}]"}},
            {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
                "Object{metadata: Object.metadata{annotations: {'final': object.metadata.annotations['a/b']}}}"}}
        ]
    }));
    let outcome = run(&policy, pod()).expect("matched");
    assert_eq!(
        outcome.patched["metadata"]["annotations"],
        json!({"step": "1", "a/b": "12", "final": "12"})
    );
}

#[test]
fn variables_are_evaluated_once_when_first_read() {
    // `label` is first read by the second mutation, after the first one changed the object.
    let policy = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "variables": [{"name": "label", "expression": "object.metadata.labels.app"}],
        "mutations": [
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'replace', path: '/metadata/labels/app', value: 'changed'}]"}},
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'add', path: '/metadata/labels/copy', value: variables.label}]"}},
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'replace', path: '/metadata/labels/app', value: 'again'}, \
                  JSONPatch{op: 'add', path: '/metadata/labels/second', value: variables.label}]"}}
        ]
    }));
    let outcome = run(&policy, pod()).expect("matched");
    assert_eq!(
        outcome.patched["metadata"]["labels"],
        json!({"app": "again", "copy": "changed", "second": "changed"})
    );
}

#[test]
fn match_conditions_skip_and_constraints_select() {
    let policy = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "matchConditions": [{"name": "labelled", "expression": "object.metadata.labels.app == 'db'"}],
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": "[]"}}]
    }));
    let outcome = run(&policy, pod()).expect("matched");
    assert_eq!(outcome.rule.status, RuleStatus::Skip);
    assert_eq!(*outcome.patched, pod());
    assert!(outcome.patches.0.is_empty());
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
    let request = create(service);
    let services = GroupVersionResource::new("", "v1", "services");
    assert_eq!(
        policy.evaluate(&RequestInput::new(&request, &services, None)),
        None
    );
}

#[test]
fn failures_are_errors_with_the_mutation_index() {
    let policy = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "mutations": [
            {"patchType": "JSONPatch", "jsonPatch": {"expression": "[]"}},
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'remove', path: '/spec/missing'}]"}}
        ]
    }));
    let outcome = run(&policy, pod()).expect("matched");
    assert_eq!(outcome.rule.status, RuleStatus::Error);
    assert_eq!(outcome.rule.name, "evaluation");
    assert!(
        outcome
            .rule
            .message
            .starts_with("failed to evaluate policy: mutations[1]: JSON Patch: "),
        "{}",
        outcome.rule.message
    );
    assert_eq!(*outcome.patched, pod());

    let atomic = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{spec: Object.spec{tolerations: [Object.spec.tolerations{key: 'k'}]}}"}}]
    }));
    let outcome = run(&atomic, pod()).expect("matched");
    assert_eq!(outcome.rule.status, RuleStatus::Error);
    assert!(
        outcome.rule.message.ends_with(
            "error applying patch: invalid ApplyConfiguration: may not mutate atomic arrays, \
             maps or structs: .spec.tolerations"
        ),
        "{}",
        outcome.rule.message
    );

    let runtime = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": "object.spec.nope"}}]
    }));
    let outcome = run(&runtime, pod()).expect("matched");
    assert_eq!(outcome.rule.status, RuleStatus::Error);
}

#[test]
fn server_side_apply_lifts_the_atomic_guard() {
    let policy = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "evaluation": {"useServerSideApply": true},
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{spec: Object.spec{tolerations: [Object.spec.tolerations{key: 'k'}]}}"}}]
    }));
    let outcome = run(&policy, pod()).expect("matched");
    assert_eq!(outcome.rule.status, RuleStatus::Pass);
    assert_eq!(
        outcome.patched["spec"]["tolerations"],
        json!([{"key": "k"}])
    );
}

#[test]
fn a_failing_test_operation_leaves_the_object() {
    let policy = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression":
            "[JSONPatch{op: 'test', path: '/metadata/name', value: 'other'}, \
              JSONPatch{op: 'add', path: '/metadata/labels/x', value: 'y'}]"}}]
    }));
    let outcome = run(&policy, pod()).expect("matched");
    assert_eq!(outcome.rule.status, RuleStatus::Pass);
    assert_eq!(*outcome.patched, pod());
}

#[test]
fn compile_errors_name_the_policy_the_mutation_and_the_position() {
    let policy: MutatingPolicy = serde_json::from_value(json!({
        "apiVersion": "policies.kyverno.io/v1beta1", "kind": "MutatingPolicy",
        "metadata": {"name": "broken"},
        "spec": {"mutations": [
            {"patchType": "JSONPatch", "jsonPatch": {"expression": "[]"}},
            {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": "Object{"}}
        ]}
    }))
    .expect("policy");
    let error = CompiledMutatingPolicy::compile(&policy, &[]).expect_err("does not compile");
    let message = error.to_string();
    assert!(
        message.starts_with("policy broken: spec.mutations[1].applyConfiguration.expression: "),
        "{message}"
    );
    assert!(message.contains("<input>:1:"), "{message}");
}

#[test]
fn namespaced_policies_only_mutate_their_namespace() {
    let policy: NamespacedMutatingPolicy = serde_json::from_value(json!({
        "apiVersion": "policies.kyverno.io/v1beta1", "kind": "NamespacedMutatingPolicy",
        "metadata": {"name": "n", "namespace": "dev"},
        "spec": {"matchConstraints": pod_rules(), "mutations": []}
    }))
    .expect("policy");
    let policy = CompiledMutatingPolicy::compile_namespaced(&policy, &[]).expect("compiles");
    assert_eq!(run(&policy, pod()), None);
    let mut in_dev = pod();
    in_dev["metadata"]["namespace"] = json!("dev");
    assert_eq!(
        run(&policy, in_dev).map(|outcome| outcome.rule.status),
        Some(RuleStatus::Pass)
    );
}

#[test]
fn reinvocation_reruns_policies_whose_result_later_policies_changed() {
    // `first` copies the `count` label into `seen`; `second` bumps `count`. With IfNeeded,
    // `first` runs again and sees the new count.
    let first = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "reinvocationPolicy": "IfNeeded",
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'seen': object.metadata.labels.?count.orValue('none')}}}"}}]
    }));
    let second = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'count': '1'}}}"}}]
    }));
    let request = create(pod());
    let chained = mutate_in_order(&[&first, &second], &request, &pods(), None);
    assert_eq!(
        chained.patched["metadata"]["labels"],
        json!({"app": "web", "count": "1", "seen": "1"})
    );
    let order: Vec<usize> = chained.outcomes.iter().map(|(index, _)| *index).collect();
    assert_eq!(order, [0, 1, 0]);

    let never = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'seen': object.metadata.labels.?count.orValue('none')}}}"}}]
    }));
    let chained = mutate_in_order(&[&never, &second], &request, &pods(), None);
    assert_eq!(chained.patched["metadata"]["labels"]["seen"], "none");
    assert_eq!(chained.outcomes.len(), 2);
}

fn admission_policy(spec: Value) -> CompiledMutatingAdmissionPolicy {
    let policy = read_admission_policy(json!({
        "apiVersion": "admissionregistration.k8s.io/v1alpha1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": "map"},
        "spec": spec
    }))
    .expect("policy");
    CompiledMutatingAdmissionPolicy::compile(&policy).expect("compiles")
}

fn binding(spec: Value) -> MutatingAdmissionPolicyBinding {
    read_admission_policy_binding(json!({
        "apiVersion": "admissionregistration.k8s.io/v1alpha1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": "b"},
        "spec": spec
    }))
    .expect("binding")
}

fn run_admission(
    policy: &CompiledMutatingAdmissionPolicy,
    bindings: &[&MutatingAdmissionPolicyBinding],
    params: &[Value],
    request: &ResourceRequest,
    background: bool,
) -> Option<AdmissionPolicyMutation> {
    policy.evaluate(
        bindings,
        params,
        &RequestInput::new(request, &pods(), None),
        background,
    )
}

#[test]
fn admission_policies_merge_with_a_deduced_schema() {
    let policy = admission_policy(json!({
        "matchConstraints": pod_rules(),
        "matchConditions": [{"name": "user", "expression": "request.userInfo.?username.orValue('') == 'alice'"}],
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{spec: Object.spec{containers: [Object.spec.containers{name: 'other'}]}}"}}]
    }));
    let alice = crate::request::RequestInfo {
        user_info: AdmissionUserInfo {
            username: "alice".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let request = create(pod()).with_request_info(alice);
    let outcome = run_admission(&policy, &[], &[], &request, false).expect("matched");
    assert_eq!(outcome.binding, None);
    assert_eq!(outcome.mutation.rule.name, "map");
    assert_eq!(outcome.mutation.rule.status, RuleStatus::Pass);
    // Lists are atomic: the configuration's list replaces the object's.
    assert_eq!(
        outcome.mutation.patched["spec"]["containers"],
        json!([{"name": "other"}])
    );
    let background = run_admission(&policy, &[], &[], &request, true).expect("matched");
    assert_eq!(background.mutation.rule.status, RuleStatus::Fail);

    let bob = create(pod());
    let outcome = run_admission(&policy, &[], &[], &bob, false).expect("matched");
    assert_eq!(outcome.mutation.rule.status, RuleStatus::Skip);
    assert_eq!(outcome.mutation.rule.message, "match conditions aren't met");
}

#[test]
fn admission_bindings_select_requests_and_params() {
    let policy = admission_policy(json!({
        "matchConstraints": pod_rules(),
        "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'from': params.data.value}}}"}}]
    }));
    let params = [
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "one", "namespace": "default", "labels": {"type": "p"}},
            "data": {"value": "first"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "two", "namespace": "default", "labels": {"type": "p"}},
            "data": {"value": "second"}}),
    ];
    let by_name = binding(json!({"policyName": "map",
        "paramRef": {"name": "two", "namespace": "default"},
        "matchResources": {"objectSelector": {"matchLabels": {"app": "web"}}}}));
    let request = create(pod());
    let outcome = run_admission(&policy, &[&by_name], &params, &request, false).expect("bound");
    assert_eq!(outcome.binding.as_deref(), Some("b"));
    assert_eq!(
        outcome.mutation.patched["metadata"]["labels"]["from"],
        "second"
    );

    let other_object = binding(json!({"policyName": "map",
        "matchResources": {"objectSelector": {"matchLabels": {"app": "db"}}}}));
    assert_eq!(
        run_admission(&policy, &[&other_object], &params, &request, false),
        None
    );
    let other_policy = binding(json!({"policyName": "another"}));
    assert!(run_admission(&policy, &[&other_policy], &params, &request, false).is_some());

    let list_policy = admission_policy(json!({
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'all': params.items.map(p, p.data.value).join('-')}}}"}}]
    }));
    let by_selector = binding(json!({"policyName": "map",
        "paramRef": {"namespace": "default", "selector": {"matchLabels": {"type": "p"}}}}));
    let outcome =
        run_admission(&list_policy, &[&by_selector], &params, &request, false).expect("bound");
    assert_eq!(
        outcome.mutation.patched["metadata"]["labels"]["all"],
        "first-second"
    );
}

#[test]
fn admission_mutation_failures_are_errors() {
    let policy = admission_policy(json!({
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{spec: Object.spec{replicas: int(params.replicas)}}"}}]
    }));
    let request = create(pod());
    let outcome = run_admission(&policy, &[], &[], &request, false).expect("matched");
    assert_eq!(outcome.mutation.rule.status, RuleStatus::Error);
    assert_eq!(*outcome.mutation.patched, pod());
}

struct ConfigMaps(Vec<Value>);

impl crate::engine::ContextProvider for ConfigMaps {
    fn config_map(&self, _: &str, _: &str) -> Result<Lookup, crate::engine::ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn api_call(
        &self,
        _: &str,
        _: &str,
        _: Option<&Value>,
    ) -> Result<Lookup, crate::engine::ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn service_call(
        &self,
        _: &str,
        _: &str,
        _: Option<&Value>,
    ) -> Result<Lookup, crate::engine::ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn global_context(&self, _: &str) -> Result<Lookup, crate::engine::ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn image_data(&self, _: &str) -> Result<Lookup, crate::engine::ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn get_api_resource(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Lookup, crate::engine::ProviderError> {
        let found = self.0.iter().find(|item| {
            (api_version, resource) == ("v1", "configmaps")
                && item["metadata"]["namespace"] == namespace
                && item["metadata"]["name"] == name
        });
        Ok(found.map_or(Lookup::Unavailable, |item| Lookup::Found(item.clone())))
    }
    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        _: &str,
    ) -> Result<Lookup, crate::engine::ProviderError> {
        Ok(match (api_version, kind) {
            ("v1", "ConfigMap") => Lookup::Found(Value::Array(self.0.clone())),
            _ => Lookup::Unavailable,
        })
    }
}

fn config_map(name: &str, namespace: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace}, "data": {"k": "v"}})
}

fn existing_policy(target: Value) -> CompiledMutatingPolicy {
    mutating_policy(json!({
        "evaluation": {"mutateExisting": {"enabled": true}},
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
            "operations": ["CREATE"], "resources": ["deployments"]}]},
        "targetMatchConstraints": target,
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: Object.metadata.labels{mutated: request.name}}}"}}]
    }))
}

fn with_trigger<T>(check: impl FnOnce(&RequestInput<'_>) -> T) -> T {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "trigger", "namespace": "test-ns"}});
    let request = create(deployment);
    let deployments = GroupVersionResource::new("apps", "v1", "deployments");
    check(&RequestInput::new(&request, &deployments, None))
}

#[test]
fn existing_targets_are_selected_by_their_constraints() {
    let policy = existing_policy(json!({"resourceRules": [{"apiGroups": [""],
        "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]}));
    assert!(policy.mutates_existing());
    let provider = ConfigMaps(vec![config_map("a", "test-ns"), config_map("b", "other")]);
    let outcomes = with_trigger(|trigger| {
        policy.mutate_existing(trigger, &provider, ResourceTable::builtin())
    })
    .expect("targets");
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].rule.status, RuleStatus::Pass);
    assert_eq!(
        outcomes[0].patched["metadata"],
        json!({"name": "a", "namespace": "test-ns", "labels": {"mutated": "trigger"}})
    );
    assert!(!policy.selects_target(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        &GroupVersionResource::new("", "v1", "secrets")
    ));
}

#[test]
fn existing_targets_are_returned_by_the_target_expression() {
    let policy = existing_policy(json!({"expression":
        "{'items': [{'apiVersion': 'v1', 'kind': 'ConfigMap', \
          'metadata': {'name': 'x', 'namespace': object.metadata.namespace}}]}"}));
    let provider = ConfigMaps(Vec::new());
    let outcomes = with_trigger(|trigger| {
        policy.mutate_existing(trigger, &provider, ResourceTable::builtin())
    })
    .expect("targets");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(
        outcomes[0].patched["metadata"]["labels"]["mutated"],
        "trigger"
    );
    assert_eq!(outcomes[0].patched["metadata"]["namespace"], "test-ns");

    let single = existing_policy(json!({"expression": "object"}));
    let targets = with_trigger(|trigger| single.targets_by_expression(trigger))
        .expect("an expression")
        .expect("evaluates");
    assert_eq!(targets[0]["metadata"]["name"], "trigger");
    let none = existing_policy(json!({"expression": "1"}));
    assert!(
        with_trigger(|trigger| none.targets_by_expression(trigger))
            .expect("an expression")
            .is_err()
    );
}

#[test]
fn exceptions_exempt_requests_before_the_match_conditions() {
    let exception: kyverno_api::policies::exception::PolicyException =
        serde_json::from_value(json!({
            "apiVersion": "policies.kyverno.io/v1beta1", "kind": "PolicyException",
            "metadata": {"name": "not-dev", "namespace": "kyverno"},
            "spec": {
                "policyRefs": [{"name": "mpol", "kind": "MutatingPolicy"}],
                "matchConditions": [{"name": "ns", "expression": "object.metadata.namespace != 'dev'"}]
            }
        }))
        .expect("exception");
    let policy: MutatingPolicy = serde_json::from_value(json!({
        "apiVersion": "policies.kyverno.io/v1beta1", "kind": "MutatingPolicy",
        "metadata": {"name": "mpol"},
        "spec": {"matchConstraints": pod_rules(), "mutations": [
            {"patchType": "JSONPatch", "jsonPatch": {"expression":
                "[JSONPatch{op: 'add', path: '/metadata/labels/managed', value: 'true'}]"}}
        ]}
    }))
    .expect("policy");
    let policy =
        CompiledMutatingPolicy::compile(&policy, &[Arc::new(exception)]).expect("compiles");
    let outcome = run(&policy, pod()).expect("matched");
    assert_eq!(outcome.rule.status, RuleStatus::Skip);
    assert_eq!(outcome.rule.name, "exception");
    assert_eq!(
        outcome.rule.message,
        "rule is skipped due to policy exception: kyverno/not-dev"
    );
    assert_eq!(*outcome.patched, pod());
    let mut in_dev = pod();
    in_dev["metadata"]["namespace"] = json!("dev");
    let outcome = run(&policy, in_dev).expect("matched");
    assert_eq!(outcome.rule.status, RuleStatus::Pass);
    assert_eq!(outcome.patched["metadata"]["labels"]["managed"], "true");
}

#[test]
fn libraries_read_through_the_provider() {
    let provider = Arc::new(ConfigMaps(vec![config_map("settings", "prod")]));
    let policy = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "variables": [{"name": "settings",
            "expression": "resource.get('v1', 'configmaps', object.metadata.namespace, 'settings')"}],
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'k': variables.settings.data.k}}}"}}]
    }))
    .with_provider(provider);
    let outcome = run(&policy, pod()).expect("matched");
    assert_eq!(
        outcome.rule.status,
        RuleStatus::Pass,
        "{}",
        outcome.rule.message
    );
    assert_eq!(outcome.patched["metadata"]["labels"]["k"], "v");

    let existing = existing_policy(json!({"expression":
        "resource.get('v1', 'configmaps', object.metadata.namespace, 'settings')"}))
    .with_provider(Arc::new(ConfigMaps(vec![config_map(
        "settings", "test-ns",
    )])));
    let targets = with_trigger(|trigger| existing.targets_by_expression(trigger))
        .expect("an expression")
        .expect("evaluates");
    assert_eq!(targets, [config_map("settings", "test-ns")]);
}

#[test]
fn pod_policies_mutate_pod_controllers_through_autogen() {
    let policy = mutating_policy(json!({
        "matchConstraints": pod_rules(),
        "matchConditions": [{"name": "web", "expression": "object.spec.containers[0].name == 'nginx'"}],
        "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'team': 'a'}}, \
             spec: Object.spec{runtimeClassName: 'prod'}}"}}]
    }));
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod"},
        "spec": {"template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}});
    let request = create(deployment);
    let deployments = GroupVersionResource::new("apps", "v1", "deployments");
    let outcome = policy
        .evaluate(&RequestInput::new(&request, &deployments, None))
        .expect("a variant matches");
    assert_eq!(
        outcome.rule.status,
        RuleStatus::Pass,
        "{}",
        outcome.rule.message
    );
    assert_eq!(
        outcome.patched["spec"]["template"],
        json!({"metadata": {"labels": {"app": "web", "team": "a"}},
            "spec": {"runtimeClassName": "prod",
                "containers": [{"name": "nginx", "image": "nginx"}]}})
    );
    assert_eq!(outcome.patched["metadata"].get("labels"), None);
}
