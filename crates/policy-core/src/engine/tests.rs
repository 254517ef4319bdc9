use std::sync::Arc;

use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use serde_json::{Value, json};

use super::*;

fn policy(yaml: &str) -> LoadedPolicy {
    let policy: ClusterPolicy = serde_saphyr::from_str(yaml).expect("valid policy");
    LoadedPolicy::from_cluster_policy(policy).expect("loads")
}

fn run(
    policy: &LoadedPolicy,
    resource: Value,
    exceptions: &[PolicyException],
    values: &SuppliedValues,
) -> Vec<(String, RuleStatus, String)> {
    let request = ResourceRequest::new(Arc::new(resource));
    let environment = Environment {
        provider: &NoExternalData,
        exceptions,
        values,
    };
    validate(policy, &request, &environment)
        .rules
        .into_iter()
        .map(|rule| (rule.name, rule.status, rule.message))
        .collect()
}

fn pod(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}
    })
}

const REQUIRE_TEAM: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-team}
spec:
  rules:
  - name: team
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "label team is required"
      pattern: {metadata: {labels: {team: "?*"}}}
"#;

#[test]
fn pattern_rules_pass_and_fail_with_upstream_messages() {
    let policy = policy(REQUIRE_TEAM);
    let none = SuppliedValues::default();
    assert_eq!(
        run(&policy, pod("a", json!({"team": "x"})), &[], &none),
        [(
            "team".to_owned(),
            RuleStatus::Pass,
            "validation rule 'team' passed.".to_owned()
        )]
    );
    assert_eq!(
        run(&policy, pod("b", json!({})), &[], &none),
        [(
            "team".to_owned(),
            RuleStatus::Fail,
            "validation error: label team is required. rule team failed at path /metadata/labels/team/".to_owned()
        )]
    );
}

#[test]
fn autogen_rules_check_pod_controllers_and_unmatched_kinds_get_no_response() {
    let policy = policy(REQUIRE_TEAM);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"template": {"metadata": {"labels": {}}, "spec": {"containers": []}}}
    });
    let results = run(&policy, deployment, &[], &SuppliedValues::default());
    assert_eq!(results.len(), 1);
    assert_eq!(
        (results[0].0.as_str(), results[0].1),
        ("autogen-team", RuleStatus::Fail)
    );
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert!(run(&policy, config_map, &[], &SuppliedValues::default()).is_empty());
}

#[test]
fn preconditions_and_deny_use_variables_and_supplied_values() {
    let policy = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: no-latest}
spec:
  rules:
  - name: deny-latest
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: forbidden
      variable: {value: "latest"}
    preconditions:
      all:
      - {key: "{{ request.operation }}", operator: Equals, value: CREATE}
    validate:
      message: "{{ request.object.metadata.name }} uses {{ forbidden }}"
      deny:
        conditions:
          any:
          - key: "{{ request.object.spec.containers[].image }}"
            operator: AnyIn
            value: ["*:{{ forbidden }}"]
"#,
    );
    let mut latest = pod("p", json!({}));
    latest["spec"]["containers"][0]["image"] = json!("nginx:latest");
    let none = SuppliedValues::default();
    assert_eq!(
        run(&policy, latest.clone(), &[], &none)[0].1,
        RuleStatus::Fail
    );
    assert_eq!(
        run(&policy, latest.clone(), &[], &none)[0].2,
        "p uses latest"
    );
    assert_eq!(
        run(&policy, pod("q", json!({})), &[], &none)[0].1,
        RuleStatus::Pass
    );
    let update = SuppliedValues {
        global: serde_json::from_value(json!({"request.operation": "UPDATE"})).expect("map"),
        ..SuppliedValues::default()
    };
    let skipped = run(&policy, latest, &[], &update);
    assert_eq!(skipped[0].1, RuleStatus::Skip);
    assert!(
        skipped[0].2.starts_with("preconditions not met"),
        "{}",
        skipped[0].2
    );
}

#[test]
fn foreach_checks_every_element() {
    let policy = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: tags}
spec:
  rules:
  - name: no-latest
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      foreach:
      - list: "request.object.spec.containers"
        pattern: {image: "!*:latest"}
"#,
    );
    let mut two = pod("p", json!({}));
    two["spec"]["containers"] =
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:latest"}]);
    let result = run(&policy, two, &[], &SuppliedValues::default());
    assert_eq!(result[0].1, RuleStatus::Fail);
    assert!(
        result[0].2.starts_with("validation failure: "),
        "{}",
        result[0].2
    );
    assert_eq!(
        run(
            &policy,
            pod("ok", json!({})),
            &[],
            &SuppliedValues::default()
        )[0]
        .1,
        RuleStatus::Pass
    );
}

#[test]
fn foreach_elements_see_their_own_variables() {
    let policy = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: elements}
spec:
  rules:
  - name: nested
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      foreach:
      - list: "request.object.spec.containers"
        foreach:
        - list: "element.ports"
          deny:
            conditions:
              any:
              - key: "{{ element1.containerPort }}"
                operator: NotEquals
                value: "{{ request.object.spec.containers[{{ elementIndex0 }}].ports[{{ elementIndex1 }}].containerPort }}"
  - name: with-context
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      foreach:
      - list: "request.object.spec.containers"
        context:
        - name: position
          variable: {jmesPath: "elementIndex"}
        deny:
          conditions:
            any:
            - key: "{{ element.name }}"
              operator: NotEquals
              value: "{{ request.object.spec.containers[{{ position }}].name }}"
  - name: second
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "{{ element.name }} is the second"
      foreach:
      - list: "request.object.spec.containers"
        deny:
          conditions:
            any:
            - key: "{{ elementIndex }}"
              operator: Equals
              value: 1
"#,
    );
    let mut three = pod("p", json!({}));
    three["spec"]["containers"] = json!([
        {"name": "a", "image": "a:1", "ports": [{"containerPort": 80}, {"containerPort": 81}]},
        {"name": "b", "image": "b:1", "ports": [{"containerPort": 90}]},
        {"name": "c", "image": "c:1", "ports": [{"containerPort": 100}, {"containerPort": 101}]}
    ]);
    let result = run(&policy, three, &[], &SuppliedValues::default());
    let statuses: Vec<_> = result
        .iter()
        .map(|(name, status, _)| (name.as_str(), *status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("nested", RuleStatus::Pass),
            ("with-context", RuleStatus::Pass),
            ("second", RuleStatus::Fail)
        ],
        "{result:?}"
    );
    assert_eq!(result[2].2, "validation failure: b is the second");
}

#[test]
fn a_matching_exception_skips_the_rule() {
    let policy = policy(REQUIRE_TEAM);
    let exception: PolicyException = serde_saphyr::from_str(
        r#"
apiVersion: kyverno.io/v2
kind: PolicyException
metadata: {name: allow-b, namespace: default}
spec:
  exceptions: [{policyName: require-team, ruleNames: [team]}]
  match: {any: [{resources: {kinds: [Pod], names: [b]}}]}
"#,
    )
    .expect("valid exception");
    let result = run(
        &policy,
        pod("b", json!({})),
        &[exception],
        &SuppliedValues::default(),
    );
    assert_eq!(result[0].1, RuleStatus::Skip);
    assert!(result[0].2.contains("default/allow-b"), "{}", result[0].2);
}

#[test]
fn a_failing_context_entry_is_a_rule_error() {
    let policy = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: broken}
spec:
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: missing
      variable: {jmesPath: "request.object.spec.nothing"}
    validate:
      pattern: {metadata: {name: "?*"}}
"#,
    );
    let result = run(
        &policy,
        pod("p", json!({})),
        &[],
        &SuppliedValues::default(),
    );
    assert_eq!(result[0].1, RuleStatus::Error);
    assert!(
        result[0].2.starts_with("failed to load context"),
        "{}",
        result[0].2
    );
}

#[test]
fn values_that_set_object_fields_change_the_evaluated_object() {
    let policy = policy(REQUIRE_TEAM);
    let values = SuppliedValues {
        resource: serde_json::from_value(json!({"request.object.metadata.labels.team": "x"}))
            .expect("map"),
        ..SuppliedValues::default()
    };
    assert_eq!(
        run(&policy, pod("b", json!({})), &[], &values)[0].1,
        RuleStatus::Pass
    );
}

#[test]
fn preconditions_error_on_missing_fields_they_reach() {
    // Upstream's kyverno-cli test nil-values-in-variables/limit-duration: a condition reading a
    // missing field is an error once reached, and never read after a failed `all` condition.
    let policy = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: optional-field}
spec:
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    preconditions:
      all:
      - {key: "{{ request.object.metadata.name }}", operator: Equals, value: reached}
      - {key: "{{ request.object.spec.missing }}", operator: NotEquals, value: ""}
    validate:
      pattern: {metadata: {name: "?*"}}
"#,
    );
    let status = |name: &str| {
        run(
            &policy,
            pod(name, json!({})),
            &[],
            &SuppliedValues::default(),
        )[0]
        .1
    };
    assert_eq!(status("reached"), RuleStatus::Error);
    assert_eq!(status("other"), RuleStatus::Skip);
}

#[test]
fn a_request_without_groups_has_null_user_info_groups() {
    // As the API server serializes UserInfo (`omitempty`): a deny on values computed from
    // `request.userInfo.groups` compares against null, which no set operator matches.
    let policy = policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: team-prefix}
spec:
  rules:
  - name: team-prefix
    match: {any: [{resources: {kinds: [Pod]}}]}
    validate:
      message: "name must start with a team"
      deny:
        conditions:
          any:
          - key: "{{ request.object.metadata.name }}"
            operator: AnyNotIn
            value: "{{ request.userInfo.groups[].join('-', [@, '*']) }}"
"#,
    );
    let none = SuppliedValues::default();
    assert_eq!(
        run(&policy, pod("team1-app", json!({})), &[], &none)[0].1,
        RuleStatus::Pass
    );
}
