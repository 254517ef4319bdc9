use std::sync::Arc;

use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use serde_json::{Value, json};

use super::*;
use crate::engine::{NoExternalData, ProviderError, SuppliedValues};

fn cluster_policy(rules: &str) -> LoadedPolicy {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  rules:\n{rules}"
    );
    let policy: ClusterPolicy = serde_saphyr::from_str(&yaml).expect("valid policy");
    LoadedPolicy::from_cluster_policy(policy).expect("loads")
}

/// A provider holding a few cluster resources.
struct Cluster(Vec<Value>);

impl Cluster {
    fn matching<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.0.iter().filter(move |resource| {
            let identity = Identity::of(resource);
            (api_version.is_empty() || identity.api_version == api_version)
                && identity.kind == kind
                && identity.namespace == namespace
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
            .find(|resource| Identity::of(resource).name == name)
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

fn run_with(
    policy: &LoadedPolicy,
    trigger: Value,
    provider: &dyn ContextProvider,
) -> GenerateResponse {
    run_with_exceptions(policy, trigger, provider, &[])
}

fn run_with_exceptions(
    policy: &LoadedPolicy,
    trigger: Value,
    provider: &dyn ContextProvider,
    exceptions: &[PolicyException],
) -> GenerateResponse {
    let values = SuppliedValues::default();
    let environment = Environment {
        provider,
        exceptions,
        values: &values,
    };
    generate(
        policy,
        &ResourceRequest::new(Arc::new(trigger)),
        &environment,
    )
}

fn statuses(response: &GenerateResponse) -> Vec<(&str, RuleStatus, &str)> {
    response
        .rules
        .iter()
        .map(|rule| (rule.name.as_str(), rule.status, rule.message.as_str()))
        .collect()
}

fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": "u-1", "labels": {"team": "a"}}
    })
}

const MATCH_NAMESPACES: &str = "    match: {any: [{resources: {kinds: [Namespace]}}]}\n";

#[test]
fn data_is_substituted_named_and_labelled() {
    let policy = cluster_policy(&format!(
        "  - name: quota\n{MATCH_NAMESPACES}    generate:\n      apiVersion: v1\n      kind: ResourceQuota\n      name: \"quota-{{{{request.object.metadata.name}}}}\"\n      namespace: \"{{{{request.object.metadata.name}}}}\"\n      synchronize: true\n      data:\n        metadata:\n          labels: {{team: \"{{{{request.object.metadata.labels.team}}}}\"}}\n        spec:\n          hard: {{pods: \"10\"}}\n"
    ));
    let response = run_with(&policy, namespace("dev"), &NoExternalData);
    assert_eq!(statuses(&response), [("quota", RuleStatus::Pass, "")]);
    assert_eq!(response.resources.len(), 1);
    let generated = &response.resources[0];
    assert_eq!(generated.rule, "quota");
    assert!(generated.synchronize);
    assert!(!generated.orphan_downstream_on_policy_delete);
    assert_eq!(
        generated.resource,
        json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {
                "name": "quota-dev", "namespace": "dev",
                "labels": {
                    "team": "a",
                    "app.kubernetes.io/managed-by": "kyverno",
                    "generate.kyverno.io/policy-name": "p",
                    "generate.kyverno.io/policy-namespace": "",
                    "generate.kyverno.io/rule-name": "quota",
                    "generate.kyverno.io/trigger-group": "",
                    "generate.kyverno.io/trigger-version": "v1",
                    "generate.kyverno.io/trigger-kind": "Namespace",
                    "generate.kyverno.io/trigger-namespace": "",
                    "generate.kyverno.io/trigger-uid": "u-1"
                }
            },
            "spec": {"hard": {"pods": "10"}}
        })
    );
}

#[test]
fn unmatched_and_precondition_failures_generate_nothing() {
    let policy = cluster_policy(&format!(
        "  - name: cm\n{MATCH_NAMESPACES}    preconditions:\n      all: [{{key: \"{{{{request.object.metadata.name}}}}\", operator: NotEquals, value: kube-system}}]\n    generate:\n      apiVersion: v1\n      kind: ConfigMap\n      name: cm\n      namespace: \"{{{{request.object.metadata.name}}}}\"\n      data: {{data: {{a: b}}}}\n"
    ));
    let skipped = run_with(&policy, namespace("kube-system"), &NoExternalData);
    assert_eq!(skipped.rules[0].status, RuleStatus::Skip);
    assert!(skipped.resources.is_empty());
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}});
    let unmatched = run_with(&policy, pod, &NoExternalData);
    assert_eq!(unmatched, GenerateResponse::default());
}

#[test]
fn an_unresolvable_variable_is_an_error() {
    let policy = cluster_policy(&format!(
        "  - name: cm\n{MATCH_NAMESPACES}    generate:\n      apiVersion: v1\n      kind: ConfigMap\n      name: \"{{{{request.object.metadata.missing}}}}\"\n      namespace: default\n      data: {{data: {{a: b}}}}\n"
    ));
    let response = run_with(&policy, namespace("dev"), &NoExternalData);
    assert_eq!(response.rules[0].status, RuleStatus::Error);
    assert!(
        response.rules[0]
            .message
            .starts_with("failed to generate resources: "),
        "{}",
        response.rules[0].message
    );
    assert!(response.resources.is_empty());
}

fn secret(namespace: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": name, "namespace": namespace, "labels": labels,
            "uid": "s-1", "resourceVersion": "7", "creationTimestamp": "2024-01-01T00:00:00Z",
            "ownerReferences": [{"kind": "X", "name": "o"}]
        },
        "data": {"token": "c2VjcmV0"}
    })
}

const CLONE_RULE: &str = "    generate:\n      apiVersion: v1\n      kind: Secret\n      name: regcred\n      namespace: \"{{request.object.metadata.name}}\"\n      clone: {namespace: default, name: regcred}\n";

#[test]
fn clone_copies_the_source_without_server_metadata() {
    let policy = cluster_policy(&format!("  - name: sync\n{MATCH_NAMESPACES}{CLONE_RULE}"));
    let cluster = Cluster(vec![secret("default", "regcred", json!({"keep": "me"}))]);
    let response = run_with(&policy, namespace("dev"), &cluster);
    assert_eq!(statuses(&response), [("sync", RuleStatus::Pass, "")]);
    let cloned = &response.resources[0].resource;
    assert_eq!(cloned["data"], json!({"token": "c2VjcmV0"}));
    assert_eq!(cloned["metadata"]["namespace"], "dev");
    assert_eq!(cloned["metadata"]["name"], "regcred");
    for removed in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "ownerReferences",
    ] {
        assert!(cloned["metadata"].get(removed).is_none(), "{removed} kept");
    }
    let labels = &cloned["metadata"]["labels"];
    assert_eq!(labels["keep"], "me");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kyverno");
    assert_eq!(labels["generate.kyverno.io/source-namespace"], "default");
    assert_eq!(labels["generate.kyverno.io/source-name"], "regcred");
    assert_eq!(labels["generate.kyverno.io/rule-name"], "sync");
}

#[test]
fn a_missing_clone_source_is_an_error_and_self_clones_are_skipped() {
    let policy = cluster_policy(&format!("  - name: sync\n{MATCH_NAMESPACES}{CLONE_RULE}"));
    let response = run_with(&policy, namespace("dev"), &NoExternalData);
    assert_eq!(
        statuses(&response),
        [(
            "sync",
            RuleStatus::Error,
            "failed to generate resources: source resource v1/Secret/default/regcred not found"
        )]
    );
    let cluster = Cluster(vec![secret("default", "regcred", json!({}))]);
    let onto_itself = run_with(&policy, namespace("default"), &cluster);
    assert_eq!(onto_itself.rules[0].status, RuleStatus::Pass);
    assert!(onto_itself.resources.is_empty());
}

#[test]
fn clone_list_copies_selected_sources_of_each_kind() {
    let policy = cluster_policy(&format!(
        "  - name: list\n{MATCH_NAMESPACES}    generate:\n      namespace: \"{{{{request.object.metadata.name}}}}\"\n      cloneList:\n        namespace: default\n        kinds: [v1/Secret, v1/ConfigMap]\n        selector: {{matchLabels: {{share: \"yes\"}}}}\n"
    ));
    let config_map = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default", "labels": {"share": "yes"}}
    });
    let cluster = Cluster(vec![
        secret("default", "b", json!({"share": "yes"})),
        secret("default", "a", json!({"share": "yes"})),
        secret("default", "private", json!({"share": "no"})),
        secret("other", "elsewhere", json!({"share": "yes"})),
        config_map,
    ]);
    let response = run_with(&policy, namespace("dev"), &cluster);
    assert_eq!(response.rules[0].status, RuleStatus::Pass);
    let generated: Vec<(&str, &str, &str)> = response
        .resources
        .iter()
        .map(|generated| {
            let identity = Identity::of(&generated.resource);
            (identity.kind, identity.namespace, identity.name)
        })
        .collect();
    assert_eq!(
        generated,
        [
            ("Secret", "dev", "a"),
            ("Secret", "dev", "b"),
            ("ConfigMap", "dev", "cm")
        ]
    );
    let into_source_namespace = run_with(&policy, namespace("default"), &cluster);
    assert!(into_source_namespace.resources.is_empty());
}

#[test]
fn foreach_generates_per_element_with_preconditions() {
    let policy = cluster_policy(&format!(
        "  - name: each\n{MATCH_NAMESPACES}    generate:\n      foreach:\n      - list: request.object.metadata.annotations.apps | split(@, ',')\n        preconditions:\n          all: [{{key: \"{{{{element}}}}\", operator: NotEquals, value: skip}}]\n        apiVersion: v1\n        kind: ConfigMap\n        name: \"app-{{{{element}}}}-{{{{elementIndex}}}}\"\n        namespace: \"{{{{request.object.metadata.name}}}}\"\n        data:\n          data: {{app: \"{{{{element}}}}\"}}\n"
    ));
    let mut trigger = namespace("dev");
    trigger["metadata"]["annotations"] = json!({"apps": "web,skip,db"});
    let response = run_with(&policy, trigger, &NoExternalData);
    assert_eq!(statuses(&response), [("each", RuleStatus::Pass, "")]);
    let names: Vec<&str> = response
        .resources
        .iter()
        .map(|generated| Identity::of(&generated.resource).name)
        .collect();
    assert_eq!(names, ["app-web-0", "app-db-2"]);
    assert_eq!(response.resources[1].resource["data"]["app"], "db");
}

#[test]
fn a_namespaced_policy_clones_only_from_its_namespace() {
    let yaml = "apiVersion: kyverno.io/v1\nkind: Policy\nmetadata: {name: p, namespace: team}\nspec:\n  rules:\n  - name: sync\n    match: {any: [{resources: {kinds: [ConfigMap]}}]}\n    generate:\n      apiVersion: v1\n      kind: Secret\n      name: copy\n      namespace: team\n      clone: {namespace: default, name: regcred}\n";
    let policy: Policy = serde_saphyr::from_str(yaml).expect("valid policy");
    let policy = LoadedPolicy::from_policy(policy).expect("loads");
    let trigger = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t", "namespace": "team"}});
    let cluster = Cluster(vec![secret("default", "regcred", json!({}))]);
    let response = run_with(&policy, trigger, &cluster);
    assert_eq!(
        statuses(&response),
        [(
            "sync",
            RuleStatus::Error,
            "failed to generate resources: generate.clone.namespace \"default\" must equal policy namespace \"team\""
        )]
    );
}

#[test]
fn cluster_scoped_targets_have_no_namespace_and_kinds_split() {
    let policy = cluster_policy(&format!(
        "  - name: binding\n{MATCH_NAMESPACES}    generate:\n      apiVersion: rbac.authorization.k8s.io/v1\n      kind: ClusterRole\n      name: \"{{{{request.object.metadata.name}}}}-reader\"\n      data:\n        rules: []\n"
    ));
    let response = run_with(&policy, namespace("dev"), &NoExternalData);
    let generated = &response.resources[0].resource;
    assert!(generated["metadata"].get("namespace").is_none());
    assert_eq!(generated["metadata"]["name"], "dev-reader");
    assert_eq!(generated["apiVersion"], "rbac.authorization.k8s.io/v1");
    assert_eq!(split_kind("apps/v1/Deployment"), ("apps/v1", "Deployment"));
    assert_eq!(split_kind("v1/Secret"), ("v1", "Secret"));
    assert_eq!(split_kind("Secret"), ("", "Secret"));
}

const TWO_CONFIG_MAPS: &str = "  - name: first\n    match: {any: [{resources: {kinds: [Namespace]}}]}\n    generate: {apiVersion: v1, kind: ConfigMap, name: first, namespace: dev, data: {}}\n  - name: second\n    match: {any: [{resources: {kinds: [Namespace]}}]}\n    generate: {apiVersion: v1, kind: ConfigMap, name: second, namespace: dev, data: {}}\n";

#[test]
fn an_exception_skips_the_rule_and_apply_one_stops_after_the_first_applied_rule() {
    let policy = cluster_policy(TWO_CONFIG_MAPS);
    let exception: PolicyException = serde_saphyr::from_str(
        "apiVersion: kyverno.io/v2\nkind: PolicyException\nmetadata: {name: skip-first, namespace: kyverno}\nspec:\n  exceptions: [{policyName: p, ruleNames: [first]}]\n  match: {any: [{resources: {kinds: [Namespace]}}]}\n",
    )
    .expect("valid exception");
    let response = run_with_exceptions(&policy, namespace("dev"), &NoExternalData, &[exception]);
    let outcomes: Vec<(&str, RuleStatus)> = response
        .rules
        .iter()
        .map(|rule| (rule.name.as_str(), rule.status))
        .collect();
    assert_eq!(
        outcomes,
        [("first", RuleStatus::Skip), ("second", RuleStatus::Pass)]
    );
    assert_eq!(response.resources.len(), 1);
    assert_eq!(response.resources[0].rule, "second");

    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  applyRules: One\n  rules:\n{TWO_CONFIG_MAPS}"
    );
    let policy: ClusterPolicy = serde_saphyr::from_str(&yaml).expect("valid policy");
    let policy = LoadedPolicy::from_cluster_policy(policy).expect("loads");
    let response = run_with(&policy, namespace("dev"), &NoExternalData);
    assert_eq!(statuses(&response), [("first", RuleStatus::Pass, "")]);
    assert_eq!(response.resources.len(), 1);
}
