use std::path::Path;

use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use serde_json::{Value, json};

use super::*;
use crate::matching::rule_matches;

fn spec(value: Value) -> Spec {
    serde_json::from_value(value).expect("spec")
}

fn annotated(controllers: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(
        AUTOGEN_CONTROLLERS_ANNOTATION.to_string(),
        controllers.to_string(),
    )])
}

fn names(rules: &[Rule]) -> Vec<&str> {
    rules.iter().map(|rule| rule.name.as_str()).collect()
}

fn to_json(rule: &Rule) -> Value {
    serde_json::to_value(rule).expect("rule json")
}

const ALL_CONTROLLERS: [&str; 7] = [
    "DaemonSet",
    "Deployment",
    "Job",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
    "CronJob",
];

#[test]
fn rule_names() {
    // Cases from upstream Test_getAutogenRuleName and Test_isAutogenRule.
    let long = "too-long-this-rule-name-will-be-truncated-to-63-characters";
    assert_eq!(
        autogen_rule_name("autogen", "valid-rule-name"),
        "autogen-valid-rule-name"
    );
    assert_eq!(
        autogen_rule_name("autogen", long),
        "autogen-too-long-this-rule-name-will-be-truncated-to-63-charact"
    );
    assert_eq!(
        autogen_rule_name("autogen-cronjob", "valid-rule-name"),
        "autogen-cronjob-valid-rule-name"
    );
    assert_eq!(
        autogen_rule_name("autogen-cronjob", long),
        "autogen-cronjob-too-long-this-rule-name-will-be-truncated-to-63"
    );
    assert!(!is_autogen_rule_name("valid-rule-name"));
    assert!(is_autogen_rule_name("autogen-simple"));
    assert!(is_autogen_rule_name("autogen-cronjob-simple"));
}

#[test]
fn upstream_can_autogen_cases() {
    let cases = [
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Namespace"], "name": "*"}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"], "selector": {"matchLabels": {"foo": "bar"}}}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}}, "exclude": {"resources": {"name": "test"}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}}, "exclude": {"resources": {"names": ["test"]}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}}, "exclude": {"resources": {"selector": {"matchLabels": {"foo": "bar"}}}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}},
                "validate": {"message": "m", "deny": {"conditions": [{"key": "{{request.object.metadata.labels.foo}}", "operator": "Equals", "value": "bar"}]}}}]}),
            true,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod", "Deployment"]}},
                "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"+(service)": "x"}}}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}}, "exclude": {"resources": {"kinds": ["Pod", "Deployment"]}},
                "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"+(service)": "x"}}}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}}, "validate": {"pattern": {"metadata": {"labels": {"foo": "bar"}}}}}]}),
            true,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}}, "exclude": {"resources": {"kinds": ["Pod"], "namespaces": ["test"]}},
                "validate": {"pattern": {"metadata": {"labels": {"foo": "bar"}}}}}]}),
            true,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}}, "mutate": {"patchesJson6902": "- op: add\n  path: /x\n  value: y"}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}},
                "mutate": {"foreach": [{"list": "request.object.spec.containers", "patchesJson6902": "- op: add\n  path: /x\n  value: y"}]}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Namespace"], "name": "*"}},
                "exclude": {"resources": {"namespaces": ["kube-system"]}},
                "generate": {"kind": "NetworkPolicy", "name": "n", "namespace": "{{request.object.metadata.name}}", "data": {"spec": {}}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Namespace"]}},
                "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"a": "b"}}}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"], "annotations": {"a": "b"}}}, "validate": {"pattern": {"x": "y"}}}]}),
            false,
        ),
        (
            json!({"rules": [{"name": "t", "match": {"resources": {"kinds": ["Pod"]}},
                "validate": {"podSecurity": {"level": "baseline", "version": "v1.24",
                             "exclude": [{"controlName": "SELinux", "restrictedField": "spec.containers[*].securityContext.seLinuxOptions.role",
                                          "images": ["nginx"], "values": ["baz"]}]}}}]}),
            true,
        ),
    ];
    for (policy, expected) in cases {
        let expected: Vec<&str> = if expected {
            ALL_CONTROLLERS.to_vec()
        } else {
            Vec::new()
        };
        assert_eq!(
            controllers(&spec(policy.clone()), &BTreeMap::new()),
            expected,
            "{policy}"
        );
    }
}

#[test]
fn annotation_selects_controllers() {
    let pod_rule = spec(
        json!({"rules": [{"name": "check", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"pattern": {"spec": {"hostNetwork": false}}}}]}),
    );
    let cases: [(&str, Vec<&str>); 8] = [
        ("none", vec![]),
        ("CronJob", vec!["CronJob"]),
        ("Job,Deployment", vec!["Deployment", "Job"]),
        ("Deployment,CronJob", vec!["Deployment", "CronJob"]),
        ("all", ALL_CONTROLLERS.to_vec()),
        ("Deployment, StatefulSet", vec!["Deployment"]),
        ("Foo", vec!["Foo"]),
        ("", vec![]),
    ];
    for (annotation, expected) in cases {
        assert_eq!(
            controllers(&pod_rule, &annotated(annotation)),
            expected,
            "{annotation:?}"
        );
    }
    let rules = compute_rules(&pod_rule, &annotated("Job,Deployment"));
    assert_eq!(names(&rules), ["check", "autogen-check"]);
    assert_eq!(
        to_json(&rules[1])["match"],
        json!({"any": [{"resources": {"kinds": ["Deployment", "Job"]}}]})
    );
    let rules = compute_rules(&pod_rule, &annotated("CronJob"));
    assert_eq!(names(&rules), ["check", "autogen-cronjob-check"]);
    assert_eq!(
        names(&compute_rules(&pod_rule, &annotated("none"))),
        ["check"]
    );
    // The annotation cannot turn autogen on for rules that do not support it.
    let named = spec(
        json!({"rules": [{"name": "check", "match": {"any": [{"resources": {"kinds": ["Pod"], "names": ["x"]}}]},
        "validate": {"pattern": {"x": "y"}}}]}),
    );
    assert!(controllers(&named, &annotated("Deployment")).is_empty());
}

#[test]
fn upstream_compute_rules_for_verify_images() {
    let policy = spec(
        json!({"rules": [{"name": "check-image", "match": {"resources": {"kinds": ["Pod"]}},
        "verifyImages": [{"imageReferences": ["*"], "attestors": [{"count": 1, "entries": [{"keyless": {"roots": "ROOTS"}}]}]}]}]}),
    );
    let rules = compute_rules(&policy, &BTreeMap::new());
    assert_eq!(
        names(&rules),
        [
            "check-image",
            "autogen-check-image",
            "autogen-cronjob-check-image"
        ]
    );
    assert_eq!(
        to_json(&rules[1])["match"],
        json!({"resources": {"kinds": ["DaemonSet", "Deployment", "Job", "ReplicaSet", "ReplicationController", "StatefulSet"]}})
    );
    assert_eq!(
        to_json(&rules[2])["match"],
        json!({"resources": {"kinds": ["CronJob"]}})
    );
    assert_eq!(
        to_json(&rules[2])["verifyImages"],
        to_json(&rules[0])["verifyImages"]
    );
    // Upstream computeRules(policy, "CronJob"): only the CronJob rule.
    let rules = compute_rules(&policy, &annotated("CronJob"));
    assert_eq!(
        names(&rules),
        ["check-image", "autogen-cronjob-check-image"]
    );
}

#[test]
fn pod_security_and_cel_rules_are_generated() {
    let pss = spec(
        json!({"rules": [{"name": "restricted", "match": {"all": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"failureAction": "Enforce", "podSecurity": {"level": "restricted", "version": "v1.24"}}}]}),
    );
    let rules = compute_rules(&pss, &BTreeMap::new());
    assert_eq!(rules.len(), 3);
    assert_eq!(
        to_json(&rules[2])["validate"],
        json!({"failureAction": "Enforce", "podSecurity": {"level": "restricted", "version": "v1.24"}})
    );
    let cel = spec(
        json!({"rules": [{"name": "host-path", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "validate": {"cel": {"expressions": [{"expression": "!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.hostPath))"}]}}}]}),
    );
    let rules = compute_rules(&cel, &BTreeMap::new());
    assert_eq!(rules.len(), 3);
    assert_eq!(
        to_json(&rules[1])["validate"]["cel"]["expressions"][0]["expression"],
        "!has(object.spec.template.spec.volumes) || object.spec.template.spec.volumes.all(v, !has(v.hostPath))"
    );
    assert_eq!(
        to_json(&rules[2])["validate"]["cel"]["expressions"][0]["expression"],
        "!has(object.spec.jobTemplate.spec.template.spec.volumes) || object.spec.jobTemplate.spec.template.spec.volumes.all(v, !has(v.hostPath))"
    );
}

#[test]
fn patterns_and_references_move_into_the_template() {
    let policy = spec(json!({"rules": [{
        "name": "check",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}, {"resources": {"namespaces": ["x"]}}]},
        "exclude": {"any": [{"resources": {"namespaces": ["kube-system"]}}]},
        "context": [{"name": "v", "variable": {"jmesPath": "request.object.metadata.name"}}],
        "preconditions": {"all": [{"key": "{{ request.object.spec.hostNetwork }}", "operator": "Equals", "value": true}]},
        "reportProperties": {"a": "b"},
        "validate": {"message": "host network of {{ request.object.metadata.name }}", "failureAction": "Audit",
                     "pattern": {"spec": {"=(hostNetwork)": false}}}
    }]}));
    let rules = compute_rules(&policy, &BTreeMap::new());
    let controllers_rule = to_json(&rules[1]);
    assert_eq!(
        controllers_rule["match"]["any"],
        json!([{"resources": {"kinds": ["DaemonSet", "Deployment", "Job", "ReplicaSet", "ReplicationController", "StatefulSet"]}},
               {"resources": {"namespaces": ["x"]}}])
    );
    assert_eq!(
        controllers_rule["exclude"],
        json!({"any": [{"resources": {"namespaces": ["kube-system"]}}]})
    );
    assert_eq!(
        controllers_rule["validate"],
        json!({"message": "host network of {{ request.object.spec.template.metadata.name }}", "failureAction": "Audit",
               "pattern": {"spec": {"template": {"spec": {"=(hostNetwork)": false}}}}})
    );
    assert_eq!(
        controllers_rule["context"][0]["variable"]["jmesPath"],
        "request.object.spec.template.metadata.name"
    );
    assert_eq!(
        controllers_rule["preconditions"]["all"][0]["key"],
        "{{ request.object.spec.template.spec.hostNetwork }}"
    );
    assert_eq!(controllers_rule.get("reportProperties"), None);
    let cron_rule = to_json(&rules[2]);
    assert_eq!(cron_rule["name"], "autogen-cronjob-check");
    assert_eq!(
        cron_rule["match"]["any"],
        json!([{"resources": {"kinds": ["CronJob"]}}, {"resources": {"kinds": ["CronJob"], "namespaces": ["x"]}}])
    );
    assert_eq!(
        cron_rule["exclude"],
        json!({"any": [{"resources": {"kinds": ["CronJob"], "namespaces": ["kube-system"]}}]})
    );
    assert_eq!(
        cron_rule["validate"]["pattern"],
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"=(hostNetwork)": false}}}}}})
    );
    assert_eq!(
        cron_rule["validate"]["message"],
        "host network of {{ request.object.spec.jobTemplate.spec.template.metadata.name }}"
    );
}

#[test]
fn deny_any_pattern_foreach_and_assert() {
    let rules_for = |validate: Value| {
        let policy = spec(
            json!({"rules": [{"name": "r", "match": {"resources": {"kinds": ["Pod"]}}, "validate": validate}]}),
        );
        compute_rules(&policy, &BTreeMap::new())
            .iter()
            .map(to_json)
            .collect::<Vec<_>>()
    };
    let deny = rules_for(
        json!({"deny": {"conditions": {"any": [{"key": "{{ request.object.spec.containers[] | length(@) }}", "operator": "GreaterThan", "value": 4}]}}}),
    );
    assert_eq!(
        deny[1]["match"]["resources"]["kinds"]
            .as_array()
            .map(Vec::len),
        Some(6)
    );
    assert_eq!(
        deny[1]["validate"]["deny"]["conditions"]["any"][0]["key"],
        "{{ request.object.spec.template.spec.containers[] | length(@) }}"
    );
    assert_eq!(
        deny[2]["validate"]["deny"]["conditions"]["any"][0]["key"],
        "{{ request.object.spec.jobTemplate.spec.template.spec.containers[] | length(@) }}"
    );
    let any_pattern = rules_for(json!({"anyPattern": [{"spec": {"a": 1}}, {"spec": {"b": 2}}]}));
    assert_eq!(
        any_pattern[1]["validate"]["anyPattern"],
        json!([{"spec": {"template": {"spec": {"a": 1}}}}, {"spec": {"template": {"spec": {"b": 2}}}}])
    );
    let foreach = rules_for(
        json!({"foreach": [{"list": "request.object.spec.containers", "pattern": {"image": "*:*"}}]}),
    );
    assert_eq!(
        foreach[1]["validate"]["foreach"][0]["list"],
        "request.object.spec.template.spec.containers"
    );
    assert_eq!(
        foreach[1]["validate"]["foreach"][0]["pattern"],
        json!({"image": "*:*"})
    );
    assert_eq!(
        foreach[2]["validate"]["foreach"][0]["list"],
        "request.object.spec.jobTemplate.spec.template.spec.containers"
    );
    let assertion = rules_for(json!({"assert": {"object": {"spec": {"x": 1}}, "other": 2}}));
    assert_eq!(
        assertion[1]["validate"]["assert"],
        json!({"object": {"spec": {"template": {"spec": {"x": 1}}}}, "other": 2})
    );
    // A validate rule whose action cannot be generated (manifests) has no autogen rule.
    let manifests = rules_for(json!({"manifests": {"attestors": []}}));
    assert_eq!(manifests.len(), 1);
}

#[test]
fn mutations() {
    let rules_for = |mutate: Value| {
        let policy = spec(
            json!({"rules": [{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}, "mutate": mutate}]}),
        );
        compute_rules(&policy, &BTreeMap::new())
            .iter()
            .map(to_json)
            .collect::<Vec<_>>()
    };
    let patch = rules_for(
        json!({"patchStrategicMerge": {"metadata": {"annotations": {"a": "{{ request.object.metadata.name }}"}}}}),
    );
    assert_eq!(
        patch[1]["mutate"],
        json!({"patchStrategicMerge": {"spec": {"template": {"metadata": {"annotations": {"a": "{{ request.object.spec.template.metadata.name }}"}}}}}})
    );
    assert_eq!(
        patch[2]["mutate"],
        json!({"patchStrategicMerge": {"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"annotations": {"a": "{{ request.object.spec.jobTemplate.spec.template.metadata.name }}"}}}}}}}})
    );
    let foreach = rules_for(
        json!({"foreach": [{"list": "request.object.spec.containers", "order": "Descending",
        "patchStrategicMerge": {"spec": {"containers": [{"(name)": "{{ element.name }}", "imagePullPolicy": "Always"}]}}}]}),
    );
    assert_eq!(
        foreach[1]["mutate"],
        json!({"foreach": [{"list": "request.object.spec.template.spec.containers",
            "patchStrategicMerge": {"spec": {"template": {"spec": {"containers": [{"(name)": "{{ element.name }}", "imagePullPolicy": "Always"}]}}}}}]})
    );
    // Mutations of other resources are not generated.
    let targets =
        rules_for(json!({"targets": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}]}));
    assert_eq!(targets.len(), 1);
}

#[test]
fn rules_that_are_not_generated() {
    let policy = spec(json!({"rules": [
        {"name": "pods", "match": {"resources": {"kinds": ["Pod"]}}, "validate": {"pattern": {"x": "y"}}},
        {"name": "namespaces", "match": {"resources": {"kinds": ["Namespace"]}}, "validate": {"pattern": {"x": "y"}}},
        {"name": "exclude-other", "match": {"resources": {"kinds": ["Pod"]}}, "exclude": {"resources": {"kinds": ["Deployment"]}},
         "validate": {"pattern": {"x": "y"}}},
        {"name": "autogen-stale", "match": {"resources": {"kinds": ["Pod"]}}, "validate": {"pattern": {"x": "y"}}}
    ]}));
    let rules = compute_rules(&policy, &BTreeMap::new());
    assert_eq!(
        names(&rules),
        [
            "pods",
            "namespaces",
            "exclude-other",
            "autogen-pods",
            "autogen-cronjob-pods"
        ]
    );
    // Without generated rules, the spec's rules are kept as they are.
    let stale_only = spec(
        json!({"rules": [{"name": "autogen-stale", "match": {"resources": {"kinds": ["Pod"]}},
        "validate": {"pattern": {"x": "y"}}}]}),
    );
    assert_eq!(
        names(&compute_rules(&stale_only, &BTreeMap::new())),
        ["autogen-stale"]
    );
}

#[test]
fn legacy_exclude_kinds_are_replaced() {
    let policy = spec(
        json!({"rules": [{"name": "r", "match": {"resources": {"kinds": ["Pod"]}},
        "exclude": {"resources": {"kinds": ["Pod"], "namespaces": ["kube-system"]}}, "validate": {"pattern": {"x": "y"}}}]}),
    );
    let rules = compute_rules(&policy, &annotated("Deployment,CronJob"));
    assert_eq!(
        to_json(&rules[1])["exclude"],
        json!({"resources": {"kinds": ["Deployment"], "namespaces": ["kube-system"]}})
    );
    assert_eq!(
        to_json(&rules[2])["exclude"],
        json!({"resources": {"kinds": ["CronJob"], "namespaces": ["kube-system"]}})
    );
}

#[test]
fn message_references_are_shifted() {
    assert_eq!(
        shift_references(
            "must be $(./../pattern/spec/x) and \\$(not) a $(b)",
            "spec/template",
            "pattern"
        ),
        "must be $(./../pattern/spec/template/spec/x) and \\$(not) a $(b)"
    );
    assert_eq!(
        shift_references("$(anyPattern/1/spec/x)", "spec/template", "anyPattern"),
        "$(anyPattern/1/spec/template/spec/x)"
    );
    assert_eq!(
        shift_references("no reference", "spec/template", "pattern"),
        "no reference"
    );
}

#[test]
fn managed_pod_resources() {
    let owned = |kind: &str, owners: Value| {
        ResourceRequest::new(
            json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "p", "ownerReferences": owners}}),
        )
    };
    let replica_set = json!([{"kind": "ReplicaSet", "name": "rs"}]);
    let cron_job = json!([{"kind": "CronJob", "name": "cj"}]);
    let annotation = annotated("Deployment,CronJob");
    assert!(is_managed_pod_resource(
        &annotation,
        &owned("Pod", replica_set.clone())
    ));
    assert!(is_managed_pod_resource(
        &annotation,
        &owned("Job", cron_job.clone())
    ));
    assert!(!is_managed_pod_resource(
        &annotated("Deployment"),
        &owned("Job", cron_job)
    ));
    assert!(!is_managed_pod_resource(
        &annotation,
        &owned("Pod", json!([]))
    ));
    assert!(!is_managed_pod_resource(
        &annotation,
        &owned("Deployment", replica_set.clone())
    ));
    assert!(!is_managed_pod_resource(
        &annotated("None"),
        &owned("Pod", replica_set.clone())
    ));
    assert!(!is_managed_pod_resource(
        &BTreeMap::new(),
        &owned("Pod", replica_set)
    ));
}

/// Upstream policies and their test results in the conformance corpus; a missing corpus fails
/// the test rather than skipping it.
fn conformance_dir() -> Option<std::path::PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/kyverno-policies");
    assert!(
        dir.is_dir(),
        "conformance corpus not found at {}",
        dir.display()
    );
    Some(dir)
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    kyverno_api::load::parse_yaml_documents(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// For every result row of a conformance test, the rule the CLI reports (`rule`, or its
/// `autogen-`/`autogen-cronjob-` variant) exists after autogen and selects the resource, and for
/// explicitly named autogen rules, that exact rule does.
fn check_conformance_test(test_dir: &Path) {
    let test_file = test_dir.join(".kyverno-test/kyverno-test.yaml");
    let test = yaml_documents(&test_file).remove(0);
    let base = test_file.parent().expect("test dir");
    let policies: Vec<ClusterPolicy> = test["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .flat_map(|p| yaml_documents(&base.join(p)))
        .filter(|doc| doc["kind"] == "ClusterPolicy")
        .map(|doc| serde_json::from_value(doc).expect("policy"))
        .collect();
    let resources: Vec<Value> = test["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .flat_map(|p| yaml_documents(&base.join(p)))
        .collect();
    let values = test["variables"]
        .as_str()
        .map(|p| yaml_documents(&base.join(p)).remove(0))
        .unwrap_or_default();
    let namespace_labels = |namespace: &str| -> BTreeMap<String, String> {
        values["namespaceSelector"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|entry| entry["name"] == namespace)
            .and_then(|entry| serde_json::from_value(entry["labels"].clone()).ok())
            .unwrap_or_default()
    };
    let mut checked_rows = 0;
    for result in test["results"].as_array().into_iter().flatten() {
        let (Some(policy_name), Some(rule_name), Some(kind)) = (
            result["policy"].as_str(),
            result["rule"].as_str(),
            result["kind"].as_str(),
        ) else {
            continue;
        };
        let Some(policy) = policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(policy_name))
        else {
            continue;
        };
        let annotations = policy.metadata.annotations.clone().unwrap_or_default();
        let rules = compute_rules(&policy.spec, &annotations);
        let candidates: Vec<&Rule> = rules
            .iter()
            .filter(|rule| {
                rule.name == rule_name
                    || rule.name == format!("autogen-{rule_name}")
                    || rule.name == format!("autogen-cronjob-{rule_name}")
            })
            .collect();
        assert!(
            !candidates.is_empty(),
            "{}: no rule {rule_name}",
            test_dir.display()
        );
        for resource_name in result["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let short_name = resource_name.rsplit('/').next().unwrap_or(resource_name);
            let Some(resource) = resources
                .iter()
                .find(|r| r["kind"] == kind && r["metadata"]["name"] == short_name)
            else {
                continue;
            };
            checked_rows += 1;
            let namespace = resource["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default();
            let request = ResourceRequest::new(resource.clone())
                .with_namespace_labels(namespace_labels(namespace));
            let matched: Vec<&str> = candidates
                .iter()
                .filter(|rule| rule_matches(rule, None, &request).is_ok())
                .map(|rule| rule.name.as_str())
                .collect();
            if matches!(result["result"].as_str(), Some("pass" | "fail")) {
                assert_eq!(
                    matched.len(),
                    1,
                    "{}: {kind} {resource_name} matched by {matched:?} of {rule_name}",
                    test_dir.display()
                );
            }
            if rule_name.starts_with(AUTOGEN_PREFIX) && !matched.is_empty() {
                assert_eq!(matched, [rule_name], "{}", test_dir.display());
            }
        }
    }
    assert!(
        checked_rows > 0,
        "{}: no result row checked",
        test_dir.display()
    );
}

#[test]
fn conformance_pod_security_policies() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    let mut checked = 0;
    for level in ["baseline", "restricted", "subrule"] {
        let Ok(entries) = std::fs::read_dir(dir.join("pod-security").join(level)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry
                .path()
                .join(".kyverno-test/kyverno-test.yaml")
                .is_file()
            {
                check_conformance_test(&entry.path());
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "only {checked} pod-security tests found");
}

#[test]
fn conformance_tests_naming_autogen_rules() {
    let Some(dir) = conformance_dir() else {
        return;
    };
    for test in [
        "other/limit-containers-per-pod",
        "velero/backup-all-volumes",
    ] {
        check_conformance_test(&dir.join(test));
    }
    // The generated CronJob rule of limit-containers-per-pod counts the template's containers.
    let policy: ClusterPolicy = serde_json::from_value(
        yaml_documents(&dir.join("other/limit-containers-per-pod/limit-containers-per-pod.yaml"))
            .remove(0),
    )
    .expect("policy");
    let rules = compute_rules(&policy.spec, &BTreeMap::new());
    assert_eq!(
        names(&rules),
        [
            "limit-containers-per-pod",
            "autogen-limit-containers-per-pod",
            "autogen-cronjob-limit-containers-per-pod"
        ]
    );
    assert_eq!(
        to_json(&rules[2])["validate"]["deny"]["conditions"]["any"][0]["key"],
        "{{request.object.spec.jobTemplate.spec.template.spec.containers[] | length(@)}}"
    );
}

#[test]
fn names_rule_covers_the_rule_and_its_autogen_variants() {
    assert!(names_rule("check", "check"));
    assert!(names_rule("autogen-check", "check"));
    assert!(names_rule("autogen-cronjob-check", "check"));
    assert!(!names_rule("autogen-other", "check"));
    assert!(!names_rule("check", "autogen-check"));
}
