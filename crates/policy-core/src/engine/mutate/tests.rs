use std::sync::Arc;

use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use serde_json::{Value, json};

use super::*;
use crate::engine::{NoExternalData, SuppliedValues};

fn policy(rules: &str) -> LoadedPolicy {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  rules:\n{rules}"
    );
    let policy: ClusterPolicy = serde_saphyr::from_str(&yaml).expect("valid policy");
    LoadedPolicy::from_cluster_policy(policy).expect("loads")
}

fn mutate_with(
    policy: &LoadedPolicy,
    resource: Value,
    exceptions: &[PolicyException],
) -> MutateResponse {
    let values = SuppliedValues::default();
    let environment = Environment {
        provider: &NoExternalData,
        exceptions,
        values: &values,
    };
    mutate(
        policy,
        &ResourceRequest::new(Arc::new(resource)),
        &environment,
    )
}

fn run(policy: &LoadedPolicy, resource: Value) -> MutateResponse {
    mutate_with(policy, resource, &[])
}

fn statuses(response: &MutateResponse) -> Vec<(&str, RuleStatus, &str)> {
    response
        .rules
        .iter()
        .map(|rule| (rule.name.as_str(), rule.status, rule.message.as_str()))
        .collect()
}

fn pod(containers: &[&str]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|name| json!({"name": name, "image": format!("{name}:1")}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {"containers": containers}
    })
}

const MATCH_PODS: &str = "    match: {any: [{resources: {kinds: [Pod]}}]}\n";

#[test]
fn strategic_merge_patches_pass_with_the_patched_resource_and_its_json_patch() {
    let policy = policy(&format!(
        "  - name: add-team\n{MATCH_PODS}    mutate:\n      patchStrategicMerge:\n        metadata:\n          labels:\n            team: \"{{{{ request.object.metadata.labels.app }}}}-team\"\n"
    ));
    let response = run(&policy, pod(&["a"]));
    assert_eq!(
        statuses(&response),
        [(
            "add-team",
            RuleStatus::Pass,
            "mutated Pod/web in namespace prod"
        )]
    );
    assert_eq!(
        response.patched["metadata"]["labels"],
        json!({"app": "web", "team": "web-team"})
    );
    assert_eq!(
        serde_json::to_value(&response.patches).expect("serializes"),
        json!([{"op": "add", "path": "/metadata/labels/team", "value": "web-team"}])
    );
}

#[test]
fn a_patch_that_changes_nothing_is_skipped() {
    let policy = policy(&format!(
        "  - name: keep\n{MATCH_PODS}    mutate:\n      patchStrategicMerge:\n        metadata:\n          labels:\n            +(app): other\n"
    ));
    let response = run(&policy, pod(&["a"]));
    assert_eq!(
        statuses(&response),
        [("keep", RuleStatus::Skip, "no patches applied")]
    );
    assert_eq!(response.patched, pod(&["a"]));
    assert!(response.patches.0.is_empty());
}

#[test]
fn cluster_scoped_resources_are_named_without_namespace() {
    let policy = policy(
        "  - name: label\n    match: {any: [{resources: {kinds: [Namespace]}}]}\n    mutate:\n      patchesJson6902: |-\n        - op: add\n          path: /metadata/labels\n          value: {a: b}\n",
    );
    let response = run(
        &policy,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
    );
    assert_eq!(
        statuses(&response),
        [("label", RuleStatus::Pass, "mutated Namespace/n")]
    );
}

#[test]
fn json_patches_substitute_variables() {
    let policy = policy(&format!(
        "  - name: annotate\n{MATCH_PODS}    mutate:\n      patchesJson6902: |-\n        - op: add\n          path: /metadata/annotations\n          value:\n            owner: \"{{{{ request.object.metadata.name }}}}\"\n        - op: replace\n          path: /spec/containers/0/image\n          value: \"registry.io/{{{{ request.object.spec.containers[0].image }}}}\"\n"
    ));
    let response = run(&policy, pod(&["a"]));
    assert_eq!(response.rules[0].status, RuleStatus::Pass);
    assert_eq!(
        response.patched["metadata"]["annotations"],
        json!({"owner": "web"})
    );
    assert_eq!(
        response.patched["spec"]["containers"][0]["image"],
        "registry.io/a:1"
    );
}

#[test]
fn failing_patches_and_variables_are_rule_errors() {
    let policy = policy(&format!(
        "  - name: bad-path\n{MATCH_PODS}    mutate:\n      patchesJson6902: |-\n        - op: replace\n          path: /spec/missing/0\n          value: x\n  - name: bad-variable\n{MATCH_PODS}    mutate:\n      patchStrategicMerge:\n        metadata:\n          labels:\n            a: \"{{{{ request.object.metadata.nothing.here }}}}\"\n  - name: empty\n{MATCH_PODS}    mutate:\n      mutateExistingOnPolicyUpdate: false\n"
    ));
    let response = run(&policy, pod(&["a"]));
    let rules = statuses(&response);
    assert_eq!(rules[0].1, RuleStatus::Error);
    assert!(
        rules[0].2.starts_with("failed to patch resource: "),
        "{}",
        rules[0].2
    );
    assert_eq!(rules[1].1, RuleStatus::Error);
    assert!(
        rules[1].2.starts_with("variable substitution failed: "),
        "{}",
        rules[1].2
    );
    assert_eq!(rules[2], ("empty", RuleStatus::Error, "empty mutate rule"));
    assert_eq!(response.patched, pod(&["a"]));
}

#[test]
fn rules_apply_in_order_each_seeing_the_previous_result() {
    // The second rule matches only once the first added the label, and reads it back through
    // request.object.
    let policy = policy(&format!(
        "  - name: first\n{MATCH_PODS}    mutate:\n      patchStrategicMerge:\n        metadata: {{labels: {{tier: backend}}}}\n  - name: second\n    match: {{any: [{{resources: {{kinds: [Pod], selector: {{matchLabels: {{tier: backend}}}}}}}}]}}\n    mutate:\n      patchStrategicMerge:\n        metadata:\n          annotations:\n            tier: \"{{{{ request.object.metadata.labels.tier }}}}\"\n"
    ));
    let response = run(&policy, pod(&["a"]));
    assert_eq!(
        statuses(&response),
        [
            (
                "first",
                RuleStatus::Pass,
                "mutated Pod/web in namespace prod"
            ),
            (
                "second",
                RuleStatus::Pass,
                "mutated Pod/web in namespace prod"
            ),
        ]
    );
    assert_eq!(
        response.patched["metadata"]["annotations"],
        json!({"tier": "backend"})
    );
    assert_eq!(response.patches.0.len(), 2);
}

#[test]
fn apply_rules_one_stops_after_the_first_applied_rule() {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  applyRules: One\n  rules:\n  - name: first\n{MATCH_PODS}    mutate:\n      patchStrategicMerge: {{metadata: {{labels: {{a: b}}}}}}\n  - name: second\n{MATCH_PODS}    mutate:\n      patchStrategicMerge: {{metadata: {{labels: {{c: d}}}}}}\n"
    );
    let policy = LoadedPolicy::from_cluster_policy(serde_saphyr::from_str(&yaml).expect("valid"))
        .expect("loads");
    let response = run(&policy, pod(&["a"]));
    assert_eq!(response.rules.len(), 1);
    assert_eq!(response.patched["metadata"]["labels"].get("c"), None);
}

#[test]
fn unmet_preconditions_skip_the_rule_and_unmatched_rules_have_no_response() {
    let policy = policy(&format!(
        "  - name: only-jobs\n{MATCH_PODS}    preconditions:\n      all:\n      - key: \"{{{{ request.object.metadata.labels.app }}}}\"\n        operator: Equals\n        value: job\n        message: not a job\n    mutate:\n      patchStrategicMerge: {{metadata: {{labels: {{a: b}}}}}}\n  - name: services\n    match: {{any: [{{resources: {{kinds: [Service]}}}}]}}\n    mutate:\n      patchStrategicMerge: {{metadata: {{labels: {{a: b}}}}}}\n"
    ));
    let response = run(&policy, pod(&["a"]));
    assert_eq!(
        statuses(&response),
        [(
            "only-jobs",
            RuleStatus::Skip,
            "preconditions not met; not a job"
        )]
    );
}

#[test]
fn policy_exceptions_skip_mutate_rules() {
    let policy = policy(&format!(
        "  - name: label\n{MATCH_PODS}    mutate:\n      patchStrategicMerge: {{metadata: {{labels: {{a: b}}}}}}\n"
    ));
    let exception: PolicyException = serde_saphyr::from_str(
        "apiVersion: kyverno.io/v2\nkind: PolicyException\nmetadata: {name: e, namespace: prod}\nspec:\n  exceptions:\n  - {policyName: p, ruleNames: [label]}\n  match:\n    any:\n    - resources: {kinds: [Pod]}\n",
    )
    .expect("valid exception");
    let response = mutate_with(&policy, pod(&["a"]), &[exception]);
    assert_eq!(
        statuses(&response),
        [(
            "label",
            RuleStatus::Skip,
            "rule is skipped due to policy exceptionsprod/e"
        )]
    );
    assert_eq!(response.patched, pod(&["a"]));
}

/// A policy appending each container's name to `metadata.annotations.seen` with a JSON patch,
/// in the given foreach order.
fn order_policy(order: &str) -> LoadedPolicy {
    policy(&format!(
        "  - name: order\n{MATCH_PODS}    mutate:\n      foreach:\n      - list: request.object.spec.containers\n{order}        patchesJson6902: |-\n          - op: add\n            path: /spec/seen/-\n            value: \"{{{{ element.name }}}}-{{{{ elementIndex }}}}\"\n"
    ))
}

#[test]
fn foreach_json_patches_run_in_list_order_unless_descending() {
    let mut resource = pod(&["a", "b", "c"]);
    resource["spec"]["seen"] = json!([]);
    let ascending = run(&order_policy(""), resource.clone());
    assert_eq!(
        statuses(&ascending),
        [(
            "order",
            RuleStatus::Pass,
            "mutated Pod/web in namespace prod"
        )]
    );
    assert_eq!(
        ascending.patched["spec"]["seen"],
        json!(["a-0", "b-1", "c-2"])
    );
    let descending = run(&order_policy("        order: Descending\n"), resource);
    assert_eq!(
        descending.patched["spec"]["seen"],
        json!(["c-2", "b-1", "a-0"]),
        "elements keep their index when reversed"
    );
}

#[test]
fn foreach_strategic_merge_patches_keep_the_list_order() {
    // Strategic merge puts patched elements first: upstream runs these in reverse so the
    // containers keep their order.
    let policy = policy(&format!(
        "  - name: registry\n{MATCH_PODS}    mutate:\n      foreach:\n      - list: request.object.spec.containers\n        patchStrategicMerge:\n          spec:\n            containers:\n            - name: \"{{{{ element.name }}}}\"\n              image: \"registry.io/{{{{ element.image }}}}\"\n"
    ));
    let response = run(&policy, pod(&["a", "b", "c"]));
    let images: Vec<&str> = response.patched["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|container| container["image"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        images,
        ["registry.io/a:1", "registry.io/b:1", "registry.io/c:1"]
    );
}

#[test]
fn foreach_preconditions_skip_elements_and_nothing_changed_is_a_skip() {
    let policy = policy(&format!(
        "  - name: only-b\n{MATCH_PODS}    mutate:\n      foreach:\n      - list: request.object.spec.containers\n        preconditions:\n          all:\n          - {{key: \"{{{{ element.name }}}}\", operator: Equals, value: b}}\n        patchesJson6902: |-\n          - op: replace\n            path: /spec/containers/{{{{ elementIndex }}}}/image\n            value: patched\n"
    ));
    let response = run(&policy, pod(&["a", "b", "c"]));
    assert_eq!(response.rules[0].status, RuleStatus::Pass);
    assert_eq!(
        response.patched["spec"]["containers"],
        json!([
            {"name": "a", "image": "a:1"},
            {"name": "b", "image": "patched"},
            {"name": "c", "image": "c:1"}
        ])
    );
    let none = run(&policy, pod(&["a", "c"]));
    assert_eq!(
        statuses(&none),
        [("only-b", RuleStatus::Skip, "0 elements processed")]
    );
}

#[test]
fn later_foreach_declarations_see_the_earlier_results() {
    let policy = policy(&format!(
        "  - name: two-steps\n{MATCH_PODS}    mutate:\n      foreach:\n      - list: request.object.spec.containers\n        patchesJson6902: |-\n          - op: add\n            path: /metadata/labels/first\n            value: \"{{{{ element.name }}}}\"\n      - list: \"[request.object.metadata.labels.first]\"\n        patchesJson6902: |-\n          - op: add\n            path: /metadata/labels/second\n            value: \"{{{{ element }}}}\"\n"
    ));
    let response = run(&policy, pod(&["a", "b"]));
    assert_eq!(response.patched["metadata"]["labels"]["second"], "b");
}

#[test]
fn nested_foreach_sees_both_elements() {
    let policy = policy(&format!(
        "  - name: nested\n{MATCH_PODS}    mutate:\n      foreach:\n      - list: request.object.spec.containers\n        foreach:\n        - list: element.ports\n          patchesJson6902: |-\n            - op: add\n              path: /metadata/annotations/{{{{ element0.name }}}}-{{{{ element1.containerPort }}}}\n              value: \"{{{{ elementIndex0 }}}}/{{{{ elementIndex1 }}}}\"\n"
    ));
    let mut resource = pod(&["a", "b"]);
    resource["metadata"]["annotations"] = json!({});
    resource["spec"]["containers"][0]["ports"] = json!([]);
    resource["spec"]["containers"][1]["ports"] =
        json!([{"containerPort": 80}, {"containerPort": 443}]);
    let response = run(&policy, resource);
    assert_eq!(
        response.rules[0].status,
        RuleStatus::Pass,
        "{}",
        response.rules[0].message
    );
    assert_eq!(
        response.patched["metadata"]["annotations"],
        json!({"b-80": "1/0", "b-443": "1/1"})
    );
}

#[test]
fn foreach_errors_name_the_failing_step() {
    let policy = policy(&format!(
        "  - name: broken\n{MATCH_PODS}    mutate:\n      foreach:\n      - list: request.object.spec.containers\n        patchesJson6902: |-\n          - op: replace\n            path: /nowhere/x\n            value: 1\n"
    ));
    let response = run(&policy, pod(&["a"]));
    assert_eq!(response.rules[0].status, RuleStatus::Error);
    assert!(
        response.rules[0]
            .message
            .starts_with("failed to mutate elements: failed to patch resource: "),
        "{}",
        response.rules[0].message
    );
}

#[test]
fn autogen_rules_mutate_pod_controllers() {
    let policy = policy(&format!(
        "  - name: pull-policy\n{MATCH_PODS}    mutate:\n      patchStrategicMerge:\n        spec:\n          containers:\n          - (name): \"*\"\n            imagePullPolicy: Always\n"
    ));
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "prod"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a:1"}]}}}
    });
    let response = run(&policy, deployment);
    assert_eq!(
        statuses(&response),
        [(
            "autogen-pull-policy",
            RuleStatus::Pass,
            "mutated Deployment/d in namespace prod"
        )]
    );
    assert_eq!(
        response.patched["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
}

#[test]
fn a_foreach_list_that_is_not_a_list_is_one_element() {
    let policy = policy(&format!(
        "  - name: single\n{MATCH_PODS}    mutate:\n      foreach:\n      - list: request.object.metadata\n        patchesJson6902: |-\n          - op: add\n            path: /metadata/labels/copied\n            value: \"{{{{ element.name }}}}\"\n"
    ));
    let response = run(&policy, pod(&["a"]));
    assert_eq!(response.patched["metadata"]["labels"]["copied"], "web");
}
