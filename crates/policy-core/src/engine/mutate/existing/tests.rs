use std::sync::Arc;

use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use serde_json::{Value, json};

use crate::engine::{
    ContextProvider, Environment, LoadedPolicy, Lookup, MutateResponse, ProviderError,
    SuppliedValues, mutate, mutate_existing, mutates_existing_on_policy_update,
};
use crate::request::ResourceRequest;
use crate::response::RuleStatus;

/// A provider holding cluster resources, as the contract of [`ContextProvider`] reads: an
/// empty API version matches any, an empty namespace lists every namespace.
struct Cluster(Vec<Value>);

impl Cluster {
    fn matching<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.0.iter().filter(move |resource| {
            (api_version.is_empty() || resource["apiVersion"] == api_version)
                && resource["kind"] == kind
                && (namespace.is_empty() || resource["metadata"]["namespace"] == namespace)
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
        Ok(self
            .matching(api_version, kind, namespace)
            .find(|resource| resource["metadata"]["name"] == name)
            .map_or(Lookup::Unavailable, |found| Lookup::Found(found.clone())))
    }
    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Found(Value::Array(
            self.matching(api_version, kind, namespace)
                .cloned()
                .collect(),
        )))
    }
}

fn secret(namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "uid": format!("uid-{name}")},
        "data": {"k": "dg=="}
    })
}

fn cluster() -> Cluster {
    Cluster(vec![
        secret("staging", "secret-1", json!({"app": "web"})),
        secret("staging", "app-b", json!({"app": "web", "tier": "db"})),
        secret("staging", "app-a", json!({"app": "api"})),
        secret("prod", "app-c", json!({"app": "web"})),
    ])
}

/// The trigger: a ConfigMap in `staging`.
fn trigger() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dictionary-1", "namespace": "staging"},
        "data": {"foo": "bar"}
    })
}

const MATCH_CONFIG_MAPS: &str = "    match: {any: [{resources: {kinds: [ConfigMap]}}]}\n";

/// A ClusterPolicy with one rule `r` matching ConfigMaps; `mutate` is the rule's mutate section.
fn policy(mutate: &str) -> LoadedPolicy {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  rules:\n  - name: r\n{MATCH_CONFIG_MAPS}    mutate:\n{mutate}"
    );
    let policy: ClusterPolicy = serde_saphyr::from_str(&yaml).expect("valid policy");
    LoadedPolicy::from_cluster_policy(policy).expect("loads")
}

const ADD_LABEL: &str = "      patchStrategicMerge: {metadata: {labels: {foo: bar}}}\n";

fn run_on(policy: &LoadedPolicy, trigger: Value, provider: &dyn ContextProvider) -> MutateResponse {
    let values = SuppliedValues::default();
    let environment = Environment {
        provider,
        exceptions: &[],
        values: &values,
    };
    mutate(
        policy,
        &ResourceRequest::new(Arc::new(trigger)),
        &environment,
    )
}

fn run(policy: &LoadedPolicy) -> MutateResponse {
    run_on(policy, trigger(), &cluster())
}

fn statuses(response: &MutateResponse) -> Vec<(RuleStatus, &str)> {
    response
        .rules
        .iter()
        .map(|rule| (rule.status, rule.message.as_str()))
        .collect()
}

/// The `namespace/name` of the patched targets.
fn patched_names(response: &MutateResponse) -> Vec<String> {
    response
        .targets
        .iter()
        .map(|target| {
            format!(
                "{}/{}",
                target.resource["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(""),
                target.resource["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// Asserts that the first rule of `response` is an error whose message starts with `prefix`.
fn assert_first_error(response: &MutateResponse, prefix: &str) {
    let rule = &response.rules[0];
    assert_eq!(rule.status, RuleStatus::Error, "{:?}", response.rules);
    assert!(rule.message.starts_with(prefix), "{:?}", response.rules);
}

#[test]
fn a_named_target_is_patched_and_the_trigger_left_alone() {
    let policy = policy(&format!(
        "      targets:\n      - {{apiVersion: v1, kind: Secret, name: secret-1, namespace: staging}}\n{ADD_LABEL}"
    ));
    let response = run(&policy);
    assert_eq!(
        statuses(&response),
        [(
            RuleStatus::Pass,
            "mutated Secret/secret-1 in namespace staging"
        )]
    );
    assert_eq!(response.patched, trigger(), "the trigger is not mutated");
    assert!(response.patches.0.is_empty());
    let [target] = response.targets.as_slice() else {
        panic!("one patched target: {:?}", response.targets)
    };
    assert_eq!(target.response, response.rules[0]);
    assert_eq!(
        target.resource["metadata"]["labels"],
        json!({"app": "web", "foo": "bar"})
    );
    assert_eq!(target.resource["metadata"]["uid"], "uid-secret-1");
    assert_eq!(
        serde_json::to_value(&target.patches).expect("serializes"),
        json!([{"op": "add", "path": "/metadata/labels/foo", "value": "bar"}])
    );
}

#[test]
fn wildcard_names_select_every_matching_target_in_order() {
    let policy = policy(&format!(
        "      targets:\n      - {{apiVersion: v1, kind: Secret, name: \"app-*\", namespace: staging}}\n{ADD_LABEL}"
    ));
    let response = run(&policy);
    assert_eq!(patched_names(&response), ["staging/app-a", "staging/app-b"]);
    assert_eq!(
        statuses(&response),
        [
            (
                RuleStatus::Pass,
                "mutated Secret/app-a in namespace staging"
            ),
            (
                RuleStatus::Pass,
                "mutated Secret/app-b in namespace staging"
            ),
        ],
        "one response per target"
    );
    let everywhere =
        policy_with_targets("      - {apiVersion: v1, kind: Secret, name: \"app-?\"}\n");
    assert_eq!(
        patched_names(&run(&everywhere)),
        ["prod/app-c", "staging/app-a", "staging/app-b"],
        "without a namespace every namespace is searched"
    );
    let by_namespace =
        policy_with_targets("      - {apiVersion: v1, kind: Secret, namespace: \"pro*\"}\n");
    assert_eq!(patched_names(&run(&by_namespace)), ["prod/app-c"]);
}

fn policy_with_targets(targets: &str) -> LoadedPolicy {
    policy(&format!("      targets:\n{targets}{ADD_LABEL}"))
}

#[test]
fn selectors_and_uids_narrow_the_targets() {
    let selected = policy_with_targets(
        "      - apiVersion: v1\n        kind: Secret\n        namespace: staging\n        selector:\n          matchLabels: {app: web}\n",
    );
    assert_eq!(
        patched_names(&run(&selected)),
        ["staging/app-b", "staging/secret-1"]
    );
    let expressions = policy_with_targets(
        "      - apiVersion: v1\n        kind: Secret\n        selector:\n          matchExpressions:\n          - {key: tier, operator: Exists}\n",
    );
    assert_eq!(patched_names(&run(&expressions)), ["staging/app-b"]);
    let by_uid = policy_with_targets(
        "      - {apiVersion: v1, kind: Secret, namespace: staging, uid: uid-app-a}\n",
    );
    assert_eq!(patched_names(&run(&by_uid)), ["staging/app-a"]);
    let invalid = policy_with_targets(
        "      - apiVersion: v1\n        kind: Secret\n        selector:\n          matchLabels: {\"bad key!\": x}\n",
    );
    let response = run(&invalid);
    assert_first_error(&response, "failed to load targets: invalid label key");
}

#[test]
fn a_missing_named_target_is_an_error_and_an_empty_selection_has_no_response() {
    let missing = policy_with_targets(
        "      - {apiVersion: v1, kind: Secret, name: missing, namespace: staging}\n      - {apiVersion: v1, kind: Secret, name: secret-1, namespace: staging}\n",
    );
    let response = run(&missing);
    assert_eq!(
        statuses(&response),
        [
            (
                RuleStatus::Error,
                "failed to load targets: Secret \"missing\" not found in namespace \"staging\""
            ),
            (
                RuleStatus::Pass,
                "mutated Secret/secret-1 in namespace staging"
            ),
        ],
        "the targets that could be loaded are still mutated"
    );
    let nothing = policy_with_targets("      - {apiVersion: v1, kind: Secret, name: \"none-*\"}\n");
    let response = run(&nothing);
    assert!(response.rules.is_empty(), "{:?}", response.rules);
    assert!(response.targets.is_empty());
}

#[test]
fn target_preconditions_and_context_see_the_target() {
    let policy = policy(&format!(
        "      targets:\n      - apiVersion: v1\n        kind: Secret\n        namespace: staging\n        context:\n        - name: tier\n          variable:\n            jmesPath: target.metadata.labels.tier || 'none'\n        preconditions:\n          all:\n          - key: \"{{{{ tier }}}}\"\n            operator: Equals\n            value: db\n{ADD_LABEL}"
    ));
    let response = run(&policy);
    assert_eq!(patched_names(&response), ["staging/app-b"]);
    assert_eq!(
        statuses(&response),
        [
            (RuleStatus::Skip, "preconditions not met"),
            (
                RuleStatus::Pass,
                "mutated Secret/app-b in namespace staging"
            ),
            (RuleStatus::Skip, "preconditions not met"),
        ],
        "app-a, app-b, secret-1 in name order"
    );
    let broken = policy_with_targets(
        "      - apiVersion: v1\n        kind: Secret\n        name: secret-1\n        namespace: staging\n        context:\n        - name: nothing\n          variable:\n            jmesPath: target.metadata.missing\n",
    );
    let response = run(&broken);
    assert_first_error(
        &response,
        "failed to load context: failed to apply jmespath target.metadata.missing",
    );
}

#[test]
fn target_specs_and_patches_use_variables() {
    let policy = policy(
        "      targets:\n      - apiVersion: v1\n        kind: Secret\n        name: \"{{ request.object.data.target }}\"\n        namespace: \"{{ request.object.metadata.namespace }}\"\n      patchStrategicMerge:\n        metadata:\n          annotations:\n            from: \"{{ request.object.data.foo }}\"\n            self: \"{{ target.metadata.name }}\"\n",
    );
    let mut trigger = trigger();
    trigger["data"]["target"] = json!("secret-1");
    let response = run_on(&policy, trigger, &cluster());
    assert_eq!(patched_names(&response), ["staging/secret-1"]);
    assert_eq!(
        response.targets[0].resource["metadata"]["annotations"],
        json!({"from": "bar", "self": "secret-1"})
    );
    let unresolved = policy_with_targets(
        "      - {apiVersion: v1, kind: Secret, namespace: \"{{ request.object.metadata.missing }}\"}\n",
    );
    let response = run(&unresolved);
    assert_first_error(
        &response,
        "failed to load targets: failed to substitute variables in target[0]: ",
    );
}

#[test]
fn json_patches_and_foreach_apply_to_targets() {
    let json_patch = policy(
        "      targets:\n      - {apiVersion: v1, kind: Secret, name: secret-1, namespace: staging}\n      patchesJson6902: |-\n        - op: add\n          path: /metadata/annotations\n          value: {trigger: \"{{ request.object.metadata.name }}\"}\n",
    );
    let response = run(&json_patch);
    assert_eq!(
        response.targets[0].resource["metadata"]["annotations"],
        json!({"trigger": "dictionary-1"})
    );
    let foreach = policy(
        "      targets:\n      - {apiVersion: v1, kind: Secret, name: secret-1, namespace: staging}\n      foreach:\n      - list: \"target.metadata.labels | keys(@)\"\n        patchStrategicMerge:\n          metadata:\n            annotations:\n              \"seen-{{ element }}\": \"{{ target.metadata.name }}\"\n",
    );
    let response = run(&foreach);
    assert_eq!(
        response.targets[0].resource["metadata"]["annotations"],
        json!({"seen-app": "secret-1"})
    );
    assert_eq!(response.patched, trigger());
}

#[test]
fn unchanged_targets_are_skipped() {
    let policy = policy(
        "      targets:\n      - {apiVersion: v1, kind: Secret, name: secret-1, namespace: staging}\n      patchStrategicMerge: {metadata: {labels: {app: web}}}\n",
    );
    let response = run(&policy);
    assert_eq!(
        statuses(&response),
        [(RuleStatus::Skip, "no patches applied")]
    );
    assert!(response.targets.is_empty());
}

#[test]
fn namespaced_policies_only_reach_their_namespace() {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: Policy\nmetadata: {{name: p, namespace: prod}}\nspec:\n  rules:\n  - name: r\n{MATCH_CONFIG_MAPS}    mutate:\n      targets:\n      - {{apiVersion: v1, kind: Secret, name: \"app-*\", namespace: staging}}\n{ADD_LABEL}"
    );
    let policy: Policy = serde_saphyr::from_str(&yaml).expect("valid policy");
    let policy = LoadedPolicy::from_policy(policy).expect("loads");
    let mut trigger = trigger();
    trigger["metadata"]["namespace"] = json!("prod");
    assert_eq!(
        patched_names(&run_on(&policy, trigger, &cluster())),
        ["prod/app-c"]
    );
}

/// A policy with a rule patching the trigger and a rule patching the `secret-1` target.
fn mixed_policy() -> LoadedPolicy {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  rules:\n  - name: trigger\n{MATCH_CONFIG_MAPS}    mutate:\n      patchStrategicMerge: {{metadata: {{labels: {{seen: \"true\"}}}}}}\n  - name: existing\n{MATCH_CONFIG_MAPS}    mutate:\n      targets:\n      - {{apiVersion: v1, kind: Secret, name: secret-1, namespace: staging}}\n      patchStrategicMerge: {{metadata: {{labels: {{seen: \"{{{{ request.object.metadata.labels.seen }}}}\"}}}}}}\n"
    );
    let policy: ClusterPolicy = serde_saphyr::from_str(&yaml).expect("valid policy");
    LoadedPolicy::from_cluster_policy(policy).expect("loads")
}

#[test]
fn mutate_runs_every_rule_and_mutate_existing_only_the_target_rules() {
    let policy = mixed_policy();
    let response = run(&policy);
    let names: Vec<_> = response
        .rules
        .iter()
        .map(|rule| rule.name.as_str())
        .collect();
    assert_eq!(names, ["trigger", "existing"]);
    assert_eq!(response.patched["metadata"]["labels"]["seen"], "true");
    assert_eq!(
        response.targets[0].resource["metadata"]["labels"]["seen"], "true",
        "target rules see the trigger as the rules before them left it"
    );
    let values = SuppliedValues::default();
    let provider = cluster();
    let environment = Environment {
        provider: &provider,
        exceptions: &[],
        values: &values,
    };
    let mut labelled = trigger();
    labelled["metadata"]["labels"] = json!({"seen": "background"});
    let background = mutate_existing(
        &policy,
        &ResourceRequest::new(Arc::new(labelled.clone())),
        &environment,
    );
    assert_eq!(
        statuses(&background),
        [(
            RuleStatus::Pass,
            "mutated Secret/secret-1 in namespace staging"
        )]
    );
    assert_eq!(background.patched, labelled, "the trigger is left alone");
    assert_eq!(
        background.targets[0].resource["metadata"]["labels"]["seen"],
        "background"
    );
}

#[test]
fn apply_rules_one_stops_after_a_patched_target() {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  applyRules: One\n  rules:\n  - name: existing\n{MATCH_CONFIG_MAPS}    mutate:\n      targets:\n      - {{apiVersion: v1, kind: Secret, name: secret-1, namespace: staging}}\n{ADD_LABEL}  - name: trigger\n{MATCH_CONFIG_MAPS}    mutate:\n{ADD_LABEL}"
    );
    let policy: ClusterPolicy = serde_saphyr::from_str(&yaml).expect("valid policy");
    let policy = LoadedPolicy::from_cluster_policy(policy).expect("loads");
    let response = run(&policy);
    let names: Vec<_> = response
        .rules
        .iter()
        .map(|rule| rule.name.as_str())
        .collect();
    assert_eq!(names, ["existing"]);
    assert_eq!(response.patched, trigger());
}

#[test]
fn policy_update_flags_come_from_rules_or_the_deprecated_spec_field() {
    let flagged = policy(&format!(
        "      mutateExistingOnPolicyUpdate: true\n      targets:\n      - {{apiVersion: v1, kind: Secret}}\n{ADD_LABEL}"
    ));
    assert!(mutates_existing_on_policy_update(&flagged));
    let mut unflagged = policy(&format!(
        "      mutateExistingOnPolicyUpdate: false\n      targets:\n      - {{apiVersion: v1, kind: Secret}}\n{ADD_LABEL}"
    ));
    assert!(!mutates_existing_on_policy_update(&unflagged));
    unflagged.spec.mutate_existing_on_policy_update = Some(true);
    assert!(mutates_existing_on_policy_update(&unflagged));
}
