use std::collections::BTreeMap;

use kyverno_api::kyverno::v1::policy::Spec;
use serde_json::{Value, json};

use super::*;
use crate::autogen;
use crate::request::RequestInfo;

fn rule(value: Value) -> Rule {
    serde_json::from_value(value).expect("rule")
}

fn request(resource: Value) -> ResourceRequest {
    ResourceRequest::new(resource)
}

fn cluster_roles(roles: &[&str]) -> RequestInfo {
    RequestInfo {
        cluster_roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    }
}

fn pod(name: &str, namespace: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

/// Upstream TestMatchesResourceDescription: every rule of the policy, autogen rules included,
/// is matched against the resource and must (not) match.
fn all_rules_match(policy_spec: Value, resource: Value, info: RequestInfo) -> bool {
    let spec: Spec = serde_json::from_value(policy_spec).expect("spec");
    let request = request(resource).with_request_info(info);
    autogen::compute_rules(&spec, &BTreeMap::new())
        .iter()
        .all(|rule| rule_matches(rule, None, &request).is_ok())
}

#[test]
fn upstream_matches_resource_description_cases() {
    let admin = || cluster_roles(&["admin"]);
    let any_rule = |names: &str| {
        json!({"background": false, "rules": [{"name": "r", "match": {"any": [
            {"resources": {"kinds": ["Pod"], "names": [names]}},
            {"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}}
        ]}, "validate": {"pattern": {"x": "y"}}}]})
    };
    assert!(
        all_rules_match(any_rule("dev"), pod("abc", "prod"), admin()),
        "match any matches"
    );
    assert!(
        !all_rules_match(any_rule("dev"), pod("abc", "default"), admin()),
        "match any does not match"
    );
    let all_rule = |name: &str| {
        json!({"rules": [{"name": "r", "match": {"all": [
            {"resources": {"kinds": ["Pod"], "names": [name]}},
            {"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}}
        ]}, "validate": {"pattern": {"x": "y"}}}]})
    };
    assert!(
        all_rules_match(all_rule("abc"), pod("abc", "prod"), admin()),
        "match all matches"
    );
    assert!(
        !all_rules_match(all_rule("xyz"), pod("abc", "prod"), admin()),
        "match all does not match"
    );
    let exclude = |kind: &str, filters: Value| {
        json!({"rules": [{"name": "r", "match": {"all": [{"resources": {"kinds": ["Pod"]}}]},
                          "exclude": {kind: filters}, "validate": {"pattern": {"x": "y"}}}]})
    };
    let dev_or_default = json!([
        {"resources": {"kinds": ["Pod"], "names": ["dev"]}},
        {"resources": {"kinds": ["Pod"], "namespaces": ["default"]}}
    ]);
    assert!(!all_rules_match(
        exclude("any", dev_or_default.clone()),
        pod("dev", "prod"),
        admin()
    ));
    assert!(all_rules_match(
        exclude("any", dev_or_default),
        pod("abc", "prod"),
        admin()
    ));
    let dev_and_prod = json!([
        {"resources": {"kinds": ["Pod"], "names": ["dev"]}},
        {"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}}
    ]);
    assert!(!all_rules_match(
        exclude("all", dev_and_prod),
        pod("dev", "prod"),
        admin()
    ));
    let abc_and_default = json!([
        {"resources": {"kinds": ["Pod"], "names": ["abc"]}},
        {"resources": {"kinds": ["Pod"], "namespaces": ["default"]}}
    ]);
    assert!(all_rules_match(
        exclude("all", abc_and_default),
        pod("abc", "prod"),
        admin()
    ));

    let hello = json!({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "hello-world", "labels": {"name": "hello-world"}}});
    let exclude_node = json!({"rules": [{"name": "r", "match": {"resources": {"kinds": ["Pod"]}},
        "exclude": {"resources": {"name": "hello-world"}, "clusterRoles": ["system:node"]},
        "mutate": {"patchStrategicMerge": {"x": "y"}}}]});
    assert!(
        all_rules_match(exclude_node.clone(), hello.clone(), admin()),
        "not excluded"
    );
    assert!(
        !all_rules_match(
            exclude_node.clone(),
            hello.clone(),
            cluster_roles(&["system:node"])
        ),
        "excluded by name and cluster role"
    );
    // Background mode: user conditions are ignored in match, but not in exclude.
    assert!(all_rules_match(
        exclude_node.clone(),
        hello.clone(),
        RequestInfo::default()
    ));
    let service =
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello-world"}});
    assert!(
        !all_rules_match(exclude_node.clone(), service, admin()),
        "kind does not match"
    );
    let hello2 = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello-world2"}});
    assert!(all_rules_match(
        exclude_node,
        hello2,
        cluster_roles(&["system:node"])
    ));

    let names = |names: Value| {
        json!({"rules": [{"name": "r", "match": {"resources": {"kinds": ["Pod"], "names": names},
               "clusterRoles": ["system:node"]}, "mutate": {"patchStrategicMerge": {"x": "y"}}}]})
    };
    assert!(!all_rules_match(
        names(json!(["dev-*"])),
        hello.clone(),
        RequestInfo::default()
    ));
    assert!(all_rules_match(
        names(json!(["dev-*", "hello-world"])),
        hello.clone(),
        cluster_roles(&["system:node"])
    ));
    let exclude_names = json!({"rules": [{"name": "r", "match": {"resources": {"kinds": ["Pod"]}},
        "exclude": {"resources": {"names": ["dev-*", "hello-*"]}}, "mutate": {"patchStrategicMerge": {"x": "y"}}}]});
    assert!(!all_rules_match(
        exclude_names.clone(),
        hello,
        RequestInfo::default()
    ));
    let bye = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bye-world"}});
    assert!(all_rules_match(exclude_names, bye, RequestInfo::default()));

    let qos = |api_version: &str, kind: &str| {
        json!({"apiVersion": api_version, "kind": "Deployment",
               "metadata": {"name": "qos-demo", "labels": {"test": "qos"}}, "_kind": kind})
    };
    let qos_policy = |kind: &str| {
        json!({"rules": [{"name": "r", "match": {"resources": {"kinds": [kind],
               "selector": {"matchLabels": {"test": "qos"}}}}, "validate": {"pattern": {"x": "y"}}}]})
    };
    assert!(all_rules_match(
        qos_policy("apps/v1/Deployment"),
        qos("apps/v1", ""),
        admin()
    ));
    assert!(!all_rules_match(
        qos_policy("apps/v1/Deployment"),
        qos("apps/v1beta1", ""),
        admin()
    ));
    assert!(!all_rules_match(
        qos_policy("apps/v1/deployment"),
        qos("apps/v1", ""),
        admin()
    ));
    let image_tag = |kind: &str| {
        json!({"rules": [{"name": "r", "match": {"resources": {"kinds": [kind]}},
               "validate": {"pattern": {"spec": {"containers": [{"image": "*:*"}]}}}}]})
    };
    let myapp = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "myapp-pod2"}});
    assert!(all_rules_match(image_tag("v1/Pod"), myapp.clone(), admin()));
    assert!(!all_rules_match(image_tag("pod"), myapp, admin()));
    let cluster_role = json!({"kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
                              "metadata": {"name": "secret-reader-demo", "namespace": "default"}});
    assert!(!all_rules_match(
        image_tag("rbac.authorization.k8s.io/v1beta1/ClusterRole"),
        cluster_role,
        admin()
    ));
}

#[test]
fn generate_name_is_used_when_name_is_missing() {
    let generated = |generate_name: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": generate_name}});
    let exclude_names = rule(
        json!({"name": "r", "match": {"resources": {"kinds": ["Pod"]}},
        "exclude": {"resources": {"names": ["dev-*", "hello-*"]}}}),
    );
    assert!(rule_matches(&exclude_names, None, &request(generated("hello-world"))).is_err());
    assert!(rule_matches(&exclude_names, None, &request(generated("bye-world"))).is_ok());
    let name = rule(
        json!({"name": "r", "match": {"resources": {"kinds": ["Deployment"], "name": "nginx-*", "selector": {}}}}),
    );
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generateName": "nginx-deployment"}});
    assert!(rule_matches(&name, None, &request(deployment)).is_ok());
}

#[test]
fn upstream_resource_description_cases() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "labels": {"app": "nginx", "block": "true"}}});
    // Multiple kinds, one of them unknown, with an empty selector.
    let multiple = rule(
        json!({"name": "r", "match": {"resources": {"kinds": ["Deployment", "Pods"], "selector": {}}}}),
    );
    assert!(rule_matches(&multiple, None, &request(deployment.clone())).is_ok());
    let not_in = |values: Value| {
        rule(
            json!({"name": "r", "match": {"resources": {"kinds": ["Deployment"], "name": "nginx-*",
            "selector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": values}]}}}}),
        )
    };
    assert!(
        rule_matches(
            &not_in(json!(["nginx1", "nginx2"])),
            None,
            &request(deployment.clone())
        )
        .is_ok()
    );
    assert!(
        rule_matches(
            &not_in(json!(["nginx"])),
            None,
            &request(deployment.clone())
        )
        .is_err()
    );
    let excluded = rule(json!({"name": "r",
        "match": {"resources": {"kinds": ["Deployment"], "name": "nginx-*"}},
        "exclude": {"resources": {"selector": {"matchLabels": {"block": "true"}}}}}));
    assert!(rule_matches(&excluded, None, &request(deployment)).is_err());
}

#[test]
fn upstream_exclude_default_groups_case() {
    let ingress = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ingress-nginx-controller-57bc6474bb-mcpt2", "namespace": "ingress-nginx"}});
    let info = RequestInfo {
        user_info: AdmissionUserInfo {
            username: "system:serviceaccount:kube-system:replicaset-controller".into(),
            uid: "8f36cad4-eb68-4931-bea8-8a42dd1fee4c".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:kube-system".into(),
                "system:authenticated".into(),
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let request = request(ingress).with_request_info(info);
    let user1 = rule(json!({"name": "r", "match": {"any": [
        {"resources": {"kinds": ["Pod"], "namespaces": ["user1-restricted"]}},
        {"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "User", "name": "user1"}]}
    ]}, "exclude": {}}));
    assert!(rule_matches(&user1, None, &request).is_err());
    let mut ingress_rule = rule(json!({"name": "r",
        "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["ingress-nginx"]}}]},
        "exclude": {"any": []}}));
    assert!(rule_matches(&ingress_rule, None, &request).is_ok());
    ingress_rule.exclude = Some(
        serde_json::from_value(json!({"any": [{"resources": {"kinds": ["Pod"]}}]}))
            .expect("exclude"),
    );
    assert!(rule_matches(&ingress_rule, None, &request).is_err());
}

#[test]
fn policy_namespace_and_empty_resource() {
    let any_pod = rule(json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}}));
    let prod = request(pod("a", "prod"));
    assert!(rule_matches(&any_pod, Some("prod"), &prod).is_ok());
    assert!(rule_matches(&any_pod, Some(""), &prod).is_ok());
    let err = rule_matches(&any_pod, Some("dev"), &prod).expect_err("other namespace");
    assert_eq!(err.reasons, [MismatchReason::PolicyNamespace]);
    assert_eq!(err.to_string(), "policy and resource namespaces mismatch");
    let err = rule_matches(&any_pod, None, &request(Value::Null)).expect_err("empty");
    assert_eq!(err.reasons, [MismatchReason::ResourceEmpty]);
}

#[test]
fn reasons_are_reported_like_upstream() {
    let all = rule(json!({"name": "check", "match": {"all": [
        {"resources": {"kinds": ["Deployment", "StatefulSet"], "names": ["x"]}},
        {"resources": {"namespaces": ["prod"]}}
    ]}}));
    let err = rule_matches(&all, None, &request(pod("a", "dev"))).expect_err("no match");
    assert_eq!(
        err.to_string(),
        "rule check not matched:\n 1. kind does not match [Deployment StatefulSet]\n 2. none of the names match\n 3. namespace does not match"
    );
    let any = rule(
        json!({"name": "check", "match": {"any": [{"resources": {"kinds": ["Deployment"]}}]}}),
    );
    let err = rule_matches(&any, None, &request(pod("a", "dev"))).expect_err("no match");
    assert_eq!(err.reasons, [MismatchReason::NoFilterMatched]);
    let excluded = rule(
        json!({"name": "check", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "exclude": {"any": [{"resources": {"namespaces": ["dev"]}}, {"resources": {"names": ["a"]}}]}}),
    );
    let err = rule_matches(&excluded, None, &request(pod("a", "dev"))).expect_err("excluded");
    assert_eq!(
        err.reasons,
        [
            MismatchReason::ExcludedByFilter,
            MismatchReason::ExcludedByFilter
        ]
    );
}

#[test]
fn empty_match_filters_match_nothing() {
    let empty = rule(json!({"name": "r", "match": {}}));
    let err = rule_matches(&empty, None, &request(pod("a", "b"))).expect_err("empty");
    assert_eq!(err.reasons, [MismatchReason::EmptyMatch]);
    // A filter with only user conditions is empty when the requester is unknown.
    let subjects_only = rule(
        json!({"name": "r", "match": {"any": [{"subjects": [{"kind": "User", "name": "*"}]}]}}),
    );
    assert!(rule_matches(&subjects_only, None, &request(pod("a", "b"))).is_err());
    let alice = request(pod("a", "b")).with_request_info(RequestInfo {
        user_info: AdmissionUserInfo {
            username: "alice".into(),
            ..Default::default()
        },
        ..Default::default()
    });
    assert!(rule_matches(&subjects_only, None, &alice).is_ok());
    // An empty exclude filter excludes nothing.
    let empty_exclude = rule(
        json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "exclude": {"all": [{"resources": {}}]}}),
    );
    assert!(rule_matches(&empty_exclude, None, &request(pod("a", "b"))).is_ok());
}

#[test]
fn namespaces_of_namespace_resources_and_namespace_selectors() {
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}});
    let by_namespace = rule(
        json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Namespace"], "namespaces": ["team-*"]}}]}}),
    );
    assert!(rule_matches(&by_namespace, None, &request(namespace.clone())).is_ok());
    let selector = |kinds: Value| {
        rule(
            json!({"name": "r", "match": {"any": [{"resources": {"kinds": kinds,
            "namespaceSelector": {"matchLabels": {"env": "prod"}}}}]}}),
        )
    };
    let namespace_rule = rule(
        json!({"name": "r", "match": {"resources": {"kinds": ["Namespace"],
        "namespaceSelector": {"matchLabels": {"env": "prod"}}}}}),
    );
    let err = rule_matches(&namespace_rule, None, &request(namespace)).expect_err("not applicable");
    assert!(
        err.to_string()
            .contains("namespace selector is not applicable for namespace resource")
    );
    let labels = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    let prod = request(pod("a", "prod")).with_namespace_labels(labels);
    assert!(rule_matches(&selector(json!(["Pod"])), None, &prod).is_ok());
    assert!(rule_matches(&selector(json!(["Pod"])), None, &request(pod("a", "dev"))).is_err());
    // Without a kind the namespace selector is skipped unless kinds contain `*`.
    let kindless = request(json!({"metadata": {"name": "a", "namespace": "dev"}}));
    let names = rule(
        json!({"name": "r", "match": {"any": [{"resources": {"names": ["a"],
        "namespaceSelector": {"matchLabels": {"env": "prod"}}}}]}}),
    );
    assert!(rule_matches(&names, None, &kindless).is_ok());
    assert!(rule_matches(&selector(json!(["*"])), None, &kindless).is_err());
    let invalid = rule(
        json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"],
        "namespaceSelector": {"matchLabels": {"bad key": "x"}}}}]}}),
    );
    assert!(rule_matches(&invalid, None, &prod_request()).is_err());
}

fn prod_request() -> ResourceRequest {
    request(pod("a", "prod"))
}

#[test]
fn annotations_with_wildcards() {
    // Cases from upstream annotations_test.go.
    let with_annotations = |annotations: Value| {
        request(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "annotations": annotations}}),
        )
    };
    let expecting = |annotations: Value| {
        rule(
            json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"], "annotations": annotations}}]}}),
        )
    };
    let cases = [
        (json!({"test/*": "*"}), json!({}), false),
        (json!({"test/*": "*"}), json!({"tes1/test": "*"}), false),
        (json!({"test/*": "*"}), json!({"test/test": "*"}), true),
        (json!({"test/*": "*"}), json!({"test/bar": "foo"}), true),
        (json!({"test/b*": "*"}), json!({"test/bar": "foo"}), true),
        (
            json!({"test/b*": "*", "test2/*": "*"}),
            json!({"test/bar": "foo"}),
            false,
        ),
        (
            json!({"test/b*": "*", "test2/*": "*"}),
            json!({"test/bar": "foo", "test2/123": "bar"}),
            true,
        ),
    ];
    for (expected, actual, matches) in cases {
        let rule = expecting(expected.clone());
        let result = rule_matches(&rule, None, &with_annotations(actual.clone())).is_ok();
        assert_eq!(result, matches, "{expected} vs {actual}");
    }
}

#[test]
fn operations() {
    let create_only = rule(
        json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"], "operations": ["CREATE"]}}]}}),
    );
    let delete_only = rule(
        json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"], "operations": ["DELETE"]}}]}}),
    );
    let background = prod_request();
    assert!(
        rule_matches(&create_only, None, &background).is_ok(),
        "background scans match as CREATE"
    );
    assert!(rule_matches(&delete_only, None, &background).is_err());
    let delete = prod_request().with_operation(AdmissionOperation::Delete);
    assert!(rule_matches(&delete_only, None, &delete).is_ok());
    assert!(rule_matches(&create_only, None, &delete).is_err());
    let not_on_update = rule(
        json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "exclude": {"any": [{"resources": {"operations": ["UPDATE"]}}]}}),
    );
    assert!(
        rule_matches(
            &not_on_update,
            None,
            &prod_request().with_operation(AdmissionOperation::Update)
        )
        .is_err()
    );
    assert!(
        rule_matches(
            &not_on_update,
            None,
            &prod_request().with_operation(AdmissionOperation::Create)
        )
        .is_ok()
    );
}

#[test]
fn subresources_and_ephemeral_containers() {
    let pods = rule(json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}}));
    let pod_gvk = request(pod("a", "b")).gvk().clone();
    let status = prod_request().with_kind(pod_gvk.clone(), "status");
    assert!(rule_matches(&pods, None, &status).is_err());
    let ephemeral = prod_request().with_kind(pod_gvk, "ephemeralcontainers");
    assert!(rule_matches(&pods, None, &ephemeral).is_ok());
    let status_rule =
        rule(json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod/status"]}}]}}));
    assert!(rule_matches(&status_rule, None, &status).is_ok());
}

#[test]
fn roles_and_subjects() {
    let info = |roles: &[&str], username: &str, groups: &[&str]| RequestInfo {
        roles: roles.iter().map(|r| r.to_string()).collect(),
        user_info: AdmissionUserInfo {
            username: username.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        },
        ..Default::default()
    };
    let check = |filter: Value, info: RequestInfo| {
        let mut filter = filter;
        filter["resources"] = json!({"kinds": ["Pod"]});
        let rule = rule(json!({"name": "r", "match": {"any": [filter]}}));
        rule_matches(&rule, None, &prod_request().with_request_info(info)).is_ok()
    };
    assert!(check(
        json!({"roles": ["ns:dev"]}),
        info(&["ns:dev", "ns:ops"], "u", &[])
    ));
    assert!(!check(
        json!({"roles": ["ns:dev"]}),
        info(&["ns:ops"], "u", &[])
    ));
    // Subject cases from upstream subjects_test.go.
    let subjects = |subjects: Value| json!({"subjects": subjects});
    let sa = |name: &str, namespace: &str| json!([{"kind": "ServiceAccount", "name": name, "namespace": namespace}]);
    assert!(check(
        subjects(sa("default", "kube-system")),
        info(&[], "system:serviceaccount:kube-system:default", &[])
    ));
    assert!(!check(
        subjects(sa("default", "kube-system")),
        info(&[], "system:serviceaccount:default:default", &[])
    ));
    assert!(check(
        subjects(sa("*", "kube-system")),
        info(&[], "system:serviceaccount:kube-system:any-sa", &[])
    ));
    assert!(check(
        subjects(sa("kyverno", "kyverno*")),
        info(&[], "system:serviceaccount:kyverno-system:kyverno", &[])
    ));
    assert!(check(
        subjects(json!([{"kind": "ServiceAccount", "name": "default"}])),
        info(&[], "system:serviceaccount::default", &[])
    ));
    assert!(check(
        subjects(json!([{"kind": "User", "name": "admin-*"}])),
        info(&[], "admin-alice", &[])
    ));
    assert!(!check(
        subjects(json!([{"kind": "User", "name": "admin-*"}])),
        info(&[], "user-alice", &[])
    ));
    assert!(check(
        subjects(json!([{"kind": "Group", "name": "system:*"}])),
        info(&[], "u", &["developers", "system:authenticated"])
    ));
    assert!(!check(
        subjects(json!([{"kind": "Group", "name": "admin"}])),
        info(&[], "u", &[])
    ));
    assert!(!check(
        subjects(json!([{"kind": "UnknownKind", "name": "test"}])),
        info(&[], "test", &[])
    ));
    assert!(check(
        subjects(json!([{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "admins"}])),
        info(&[], "bob", &["admins"])
    ));
}
