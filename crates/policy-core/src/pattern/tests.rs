use serde_json::{Value, json};

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    Skip,
    Error,
}

fn status(outcome: &PatternOutcome) -> Status {
    match outcome {
        PatternOutcome::Pass => Status::Pass,
        PatternOutcome::Fail { .. } => Status::Fail,
        PatternOutcome::Skip { .. } => Status::Skip,
        PatternOutcome::Error { .. } => Status::Error,
    }
}

fn outcome(resource: &str, pattern: &str) -> PatternOutcome {
    let resource: Value =
        serde_json::from_str(resource).unwrap_or_else(|e| panic!("resource: {e}"));
    let pattern: Value = serde_json::from_str(pattern).unwrap_or_else(|e| panic!("pattern: {e}"));
    validate_pattern(&resource, &pattern)
}

fn failed_path(outcome: &PatternOutcome) -> Option<&str> {
    match outcome {
        PatternOutcome::Fail { path, .. } => Some(path),
        _ => None,
    }
}

const DEPLOYMENT: &str = r#"{
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "nginx-deployment", "labels": {"app": "nginx"}},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}},
        "template": {"metadata": {"labels": {"app": "nginx"}},
            "spec": {"securityContext": {"runAsNonRoot": true},
                "containers": [{"name": "nginx", "image": "https://nirmata/nginx:latest",
                    "imagePullPolicy": "Always",
                    "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 15, "periodSeconds": 11},
                    "resources": {"limits": {"memory": "2Gi", "cpu": 8}, "requests": {"memory": "512Mi", "cpu": "8"}},
                    "ports": [{"containerPort": 80}]}]}}}
}"#;

#[test]
fn nested_maps_lists_and_operators_pass() {
    let pattern = r#"{"spec": {"template": {"spec": {"containers": [
        {"name": "?*", "resources": {"requests": {"cpu": "<4|8"}}}]}}}}"#;
    assert_eq!(outcome(DEPLOYMENT, pattern), PatternOutcome::Pass);
}

#[test]
fn asterisk_accepts_any_present_value() {
    for pattern in [
        r#"{"spec": {"template": {"spec": {"containers": [{"name": "*", "livenessProbe": {"periodSeconds": "*"}}]}}}}"#,
        r#"{"spec": {"template": {"spec": {"containers": [{"name": "*", "livenessProbe": "*"}]}}}}"#,
        r#"{"spec": {"template": {"spec": {"containers": "*"}}}}"#,
    ] {
        assert_eq!(
            outcome(DEPLOYMENT, pattern),
            PatternOutcome::Pass,
            "{pattern}"
        );
    }
}

#[test]
fn asterisk_on_null_fails_at_the_parent_path() {
    let resource = r#"{"spec": {"containers": [{"name": "nginx", "livenessProbe": null}]}}"#;
    let result = outcome(
        resource,
        r#"{"spec": {"containers": [{"name": "*", "livenessProbe": "*"}]}}"#,
    );
    assert_eq!(failed_path(&result), Some("/spec/containers/0/"));
    // a null pattern accepts a null or missing value
    for resource in [resource, r#"{"spec": {"containers": [{"name": "nginx"}]}}"#] {
        let result = outcome(
            resource,
            r#"{"spec": {"containers": [{"name": "*", "livenessProbe": null}]}}"#,
        );
        assert_eq!(result, PatternOutcome::Pass);
    }
}

#[test]
fn scalar_mismatch_reports_path_and_message() {
    let result = outcome(
        r#"{"spec": {"securityContext": {"runAsNonRoot": false}}}"#,
        r#"{"spec": {"securityContext": {"runAsNonRoot": true}}}"#,
    );
    assert_eq!(
        result,
        PatternOutcome::Fail {
            path: "/spec/securityContext/runAsNonRoot/".to_owned(),
            message: "resource value 'false' does not match 'true' at path /spec/securityContext/runAsNonRoot/"
                .to_owned(),
        }
    );
    assert_eq!(
        result.rule_message("check-runasnonroot", "Running as root is not allowed"),
        "validation error: Running as root is not allowed. rule check-runasnonroot failed at path /spec/securityContext/runAsNonRoot/"
    );
    assert_eq!(
        result.rule_message("check-runasnonroot", ""),
        "validation error: rule check-runasnonroot failed at path /spec/securityContext/runAsNonRoot/"
    );
}

#[test]
fn structure_mismatches() {
    let result = outcome(r#"{"spec": "text"}"#, r#"{"spec": {"a": 1}}"#);
    assert_eq!(
        result,
        PatternOutcome::Fail {
            path: "/spec/".to_owned(),
            message: "pattern and resource have different structures. Path: /spec/. Expected map[string]interface {}, found string".to_owned(),
        }
    );
    let result = outcome(r#"{"spec": {"a": 1}}"#, r#"{"spec": [{"a": 1}]}"#);
    assert_eq!(failed_path(&result), Some("/spec/"));
    // an empty pattern list is a failure
    let result = outcome(r#"{"spec": []}"#, r#"{"spec": []}"#);
    assert_eq!(failed_path(&result), Some("/spec/"));
}

#[test]
fn scalar_list_patterns_check_every_element() {
    let resource = r#"{"args": ["--a", "--b"]}"#;
    assert_eq!(
        outcome(resource, r#"{"args": ["--*"]}"#),
        PatternOutcome::Pass
    );
    assert_eq!(
        failed_path(&outcome(resource, r#"{"args": ["--a"]}"#)),
        Some("/args/")
    );
    // a scalar pattern on a list value also applies to each element
    assert_eq!(
        outcome(resource, r#"{"args": "--?"}"#),
        PatternOutcome::Pass
    );
    assert_eq!(
        outcome(r#"{"args": []}"#, r#"{"args": "?*"}"#),
        PatternOutcome::Pass
    );
}

#[test]
fn nested_list_patterns_compare_by_index() {
    let resource = r#"{"m": [[1, 1], [3]]}"#;
    assert_eq!(
        outcome(resource, r#"{"m": [[1], [3]]}"#),
        PatternOutcome::Pass
    );
    // the first element of an inner scalar list applies to every resource element
    assert_eq!(
        failed_path(&outcome(r#"{"m": [[1, 2]]}"#, r#"{"m": [[1]]}"#)),
        Some("/m/0/")
    );
    assert_eq!(
        failed_path(&outcome(resource, r#"{"m": [[1], [4]]}"#)),
        Some("/m/1/")
    );
    // a shorter resource list fails without a path, which upstream reports as an error
    let result = outcome(r#"{"m": [[1]]}"#, r#"{"m": [[1], [3]]}"#);
    assert_eq!(
        result,
        PatternOutcome::Error {
            message: "validate Array failed, array length mismatch, resource Array len is 1 and pattern Array len is 2".to_owned()
        }
    );
}

#[test]
fn list_element_paths() {
    let pattern =
        r#"[{"(name)": "nirmata-*", "object": [{"(key1)": "value*", "key2": "value*"}]}]"#;
    let pass = r#"[{"name": "nirmata-1", "object": [{"key1": "value1", "key2": "value2"}]}]"#;
    assert_eq!(outcome(pass, pattern), PatternOutcome::Pass);
    let fail = r#"[{"name": "nirmata-1", "object": [{"key1": "value5", "key2": "1value1"}]}]"#;
    assert_eq!(
        failed_path(&outcome(fail, pattern)),
        Some("/0/object/0/key2/")
    );
}

#[test]
fn existence_anchor_needs_one_matching_element() {
    let pattern = r#"{"^(list)": [{"(name)": "nirmata-*", "object": [{"(key1)": "value*", "key2": "value*"}]}]}"#;
    let resource = r#"{"list": [
        {"name": "nirmata-1", "object": [{"key1": "value1", "key2": "value2"}]},
        {"name": "nirmata-1", "object": [{"key1": "not_value", "key2": "not_value"}]}]}"#;
    assert_eq!(outcome(resource, pattern), PatternOutcome::Pass);

    let pattern = r#"{"spec": {"^(containers)": [{"name": "sidecar"}]}}"#;
    let with = r#"{"spec": {"containers": [{"name": "app"}, {"name": "sidecar"}]}}"#;
    let without = r#"{"spec": {"containers": [{"name": "app"}]}}"#;
    assert_eq!(outcome(with, pattern), PatternOutcome::Pass);
    assert_eq!(
        outcome(without, pattern),
        PatternOutcome::Fail {
            path: "/spec/containers/".to_owned(),
            message: "existence anchor validation failed at path /spec/containers/".to_owned()
        }
    );
    // absent key: nothing to check
    assert_eq!(outcome(r#"{"spec": {}}"#, pattern), PatternOutcome::Pass);
    // on a non-list resource value
    let result = outcome(r#"{"spec": {"containers": "x"}}"#, pattern);
    assert_eq!(failed_path(&result), Some("/spec/containers/"));
}

#[test]
fn anchor_errors_are_classified_by_origin_not_text() {
    // upstream's TestMatchPattern_ResourceValueMimickingAnchorMessage
    let pattern = r#"{"metadata": {"annotations": {"owner": "platform-team"}}}"#;
    for value in [
        "intruder",
        "conditional anchor mismatch",
        "global anchor mismatch",
        "negation anchor matched in resource",
        "x-conditional anchor mismatch-y",
    ] {
        let resource = format!(r#"{{"metadata": {{"annotations": {{"owner": "{value}"}}}}}}"#);
        assert_eq!(
            failed_path(&outcome(&resource, pattern)),
            Some("/metadata/annotations/owner/"),
            "{value}"
        );
    }
}

#[test]
fn negation_anchor_end_to_end() {
    // upstream's Test_negation_anchor
    let cases = [
        (
            r#"{"spec":{"X(hostNetwork)":"*"}}"#,
            r#"{"spec":{"containers":[{"name":"a"}]}}"#,
            true,
        ),
        (
            r#"{"spec":{"X(hostNetwork)":"*"}}"#,
            r#"{"spec":{"hostNetwork":true}}"#,
            false,
        ),
        (
            r#"{"spec":{"containers":[{"X(securityContext)":"*"}]}}"#,
            r#"{"spec":{"containers":[{"name":"a"}]}}"#,
            true,
        ),
        (
            r#"{"spec":{"containers":[{"X(securityContext)":"*"}]}}"#,
            r#"{"spec":{"containers":[{"name":"a","securityContext":{"privileged":true}}]}}"#,
            false,
        ),
    ];
    for (pattern, resource, pass) in cases {
        let expected = if pass { Status::Pass } else { Status::Fail };
        assert_eq!(
            status(&outcome(resource, pattern)),
            expected,
            "{pattern} on {resource}"
        );
    }
}

#[test]
fn conditional_inside_existence_does_not_leak_a_skip() {
    // upstream's Test_existence_anchor_nestedConditional
    let pattern = r#"{"spec":{"^(containers)":[{"(name)":"nginx","image":"nginx:latest"}]}}"#;
    let cases = [
        (
            r#"{"spec":{"containers":[{"name":"nginx","image":"nginx:latest"}]}}"#,
            Status::Pass,
        ),
        (
            r#"{"spec":{"containers":[{"name":"redis","image":"redis:7"}]}}"#,
            Status::Fail,
        ),
        (
            r#"{"spec":{"containers":[{"name":"nginx","image":"nginx:v1"}]}}"#,
            Status::Fail,
        ),
    ];
    for (resource, expected) in cases {
        assert_eq!(status(&outcome(resource, pattern)), expected, "{resource}");
    }
}

#[test]
fn equality_anchor_checks_only_present_keys() {
    let pattern = r#"{"spec": {"=(hostNetwork)": false}}"#;
    assert_eq!(outcome(r#"{"spec": {}}"#, pattern), PatternOutcome::Pass);
    assert_eq!(
        outcome(r#"{"spec": {"hostNetwork": false}}"#, pattern),
        PatternOutcome::Pass
    );
    assert_eq!(
        failed_path(&outcome(r#"{"spec": {"hostNetwork": true}}"#, pattern)),
        Some("/spec/hostNetwork/")
    );
}

#[test]
fn negation_anchor_forbids_the_key() {
    let pattern = r#"{"spec": {"=(volumes)": [{"X(hostPath)": "null"}]}}"#;
    assert_eq!(
        outcome(
            r#"{"spec": {"volumes": [{"name": "a", "emptyDir": {}}]}}"#,
            pattern
        ),
        PatternOutcome::Pass
    );
    assert_eq!(
        outcome(
            r#"{"spec": {"volumes": [{"name": "a", "hostPath": {"path": "/"}}]}}"#,
            pattern
        ),
        PatternOutcome::Fail {
            path: "/spec/volumes/0/hostPath/".to_owned(),
            message:
                "negation anchor matched in resource: /spec/volumes/0/hostPath/ is not allowed"
                    .to_owned()
        }
    );
    // a null value still counts as present
    let result = outcome(
        r#"{"spec": {"nodeName": null}}"#,
        r#"{"spec": {"X(nodeName)": "null"}}"#,
    );
    assert_eq!(failed_path(&result), Some("/spec/nodeName/"));
}

#[test]
fn missing_anchor_keys_turn_failures_into_errors() {
    // X(hostPath) was never found, so the later failure has no path (a rule error upstream)
    let pattern = r#"{"spec": {"=(volumes)": [{"X(hostPath)": "null"}], "containers": [{"image": "!*:latest"}]}}"#;
    let resource =
        r#"{"spec": {"volumes": [{"name": "a"}], "containers": [{"image": "nginx:latest"}]}}"#;
    let result = outcome(resource, pattern);
    assert_eq!(
        result,
        PatternOutcome::Error {
            message: "resource value 'nginx:latest' does not match '!*:latest' at path /spec/containers/0/image/".to_owned()
        }
    );
    assert_eq!(
        result.rule_message("no-latest", "Latest is not allowed."),
        "validation error: Latest is not allowed. rule no-latest execution error: resource value 'nginx:latest' does not match '!*:latest' at path /spec/containers/0/image/"
    );
}

#[test]
fn conditional_anchors_with_multiple_patterns() {
    // (pattern, resource, status) from upstream's TestConditionalAnchorWithMultiplePatterns
    // (its Pass and Skip expectations are asserted upstream; Fail ones are checked here).
    let latest = r#"{"spec": {"containers": [{"name": "*", "(image)": "*:latest | !*:*", "imagePullPolicy": "!Always"}]}}"#;
    let container = |name: &str, image: &str, policy: &str| {
        format!(r#"{{"name": "{name}", "image": "{image}", "imagePullPolicy": "{policy}"}}"#)
    };
    let pod = |containers: &[String]| {
        format!(
            r#"{{"spec": {{"containers": [{}]}}}}"#,
            containers.join(",")
        )
    };
    let cases = [
        (
            pod(&[container("nginx", "nginx:1.2.3", "Always")]),
            Status::Skip,
        ),
        (
            pod(&[container("nginx", "nginx:latest", "Always")]),
            Status::Fail,
        ),
        (pod(&[container("nginx", "nginx", "Always")]), Status::Fail),
        (pod(&[container("nginx", "nginx", "Never")]), Status::Pass),
        (
            pod(&[container("nginx", "nginx:latest", "Never")]),
            Status::Pass,
        ),
        (
            pod(&[container("nginx", "nginx:1.2.3", "Never")]),
            Status::Skip,
        ),
        (
            pod(&[
                container("nginx", "nginx", "Always"),
                container("busybox", "busybox:1.28", "Always"),
            ]),
            Status::Fail,
        ),
        (
            pod(&[
                container("nginx", "nginx:latest", "Always"),
                container("busybox", "busybox:1.28", "Always"),
            ]),
            Status::Fail,
        ),
        (
            pod(&[
                container("nginx", "nginx:1.2.3", "Always"),
                container("busybox", "busybox:1.28", "Always"),
            ]),
            Status::Skip,
        ),
        (
            pod(&[
                container("nginx", "nginx", "Never"),
                container("busybox", "busybox:1.28", "Always"),
            ]),
            Status::Pass,
        ),
        (
            pod(&[
                container("nginx", "nginx:latest", "Never"),
                container("busybox", "busybox:1.28", "Always"),
            ]),
            Status::Pass,
        ),
        (
            pod(&[
                container("nginx", "nginx:1.2.3", "Never"),
                container("busybox", "busybox:1.28", "Always"),
            ]),
            Status::Skip,
        ),
        (
            pod(&[
                container("busybox", "busybox:1.28", "Always"),
                container("nginx", "nginx", "Always"),
            ]),
            Status::Fail,
        ),
        (
            pod(&[
                container("busybox", "busybox:1.28", "Always"),
                container("nginx", "nginx:latest", "Always"),
            ]),
            Status::Fail,
        ),
        (
            pod(&[
                container("busybox", "busybox:1.28", "Always"),
                container("nginx", "nginx:1.2.3", "Always"),
            ]),
            Status::Skip,
        ),
        (
            pod(&[
                container("busybox", "busybox:1.28", "Always"),
                container("nginx", "nginx", "Never"),
            ]),
            Status::Pass,
        ),
        (
            pod(&[
                container("busybox", "busybox:1.28", "Always"),
                container("nginx", "nginx:latest", "Never"),
            ]),
            Status::Pass,
        ),
        (
            pod(&[
                container("busybox", "busybox:1.28", "Always"),
                container("nginx", "nginx:1.2.3", "Never"),
            ]),
            Status::Skip,
        ),
        (
            pod(&[
                container("busybox", "busybox", "Always"),
                container("nginx", "nginx", "Always"),
            ]),
            Status::Fail,
        ),
        (
            pod(&[
                container("busybox", "busybox:latest", "Always"),
                container("nginx", "nginx:latest", "Always"),
            ]),
            Status::Fail,
        ),
        (
            pod(&[
                container("busybox", "busybox:1.2.3", "Always"),
                container("nginx", "nginx:latest", "IfNotPresent"),
            ]),
            Status::Pass,
        ),
    ];
    for (resource, expected) in &cases {
        assert_eq!(status(&outcome(resource, latest)), *expected, "{resource}");
    }
    let reversed = r#"{"spec": {"containers": [{"name": "*", "(image)": "!*:* | *:latest", "imagePullPolicy": "!Always"}]}}"#;
    let resource = pod(&[container("nginx", "nginx:latest", "Always")]);
    assert_eq!(
        outcome(&resource, reversed),
        PatternOutcome::Fail {
            path: "/spec/containers/0/imagePullPolicy/".to_owned(),
            message: "resource value 'Always' does not match '!Always' at path /spec/containers/0/imagePullPolicy/".to_owned()
        }
    );
}

#[test]
fn conditional_skip_reason_wraps_the_mismatch() {
    let result = outcome(
        r#"{"spec": {"containers": [{"name": "nginx", "image": "nginx:1.2.3", "imagePullPolicy": "Always"}]}}"#,
        r#"{"spec": {"containers": [{"name": "*", "(image)": "*:latest", "imagePullPolicy": "!Always"}]}}"#,
    );
    assert_eq!(
        result,
        PatternOutcome::Skip {
            reason: "conditional anchor mismatch: resource value 'nginx:1.2.3' does not match '*:latest' at path /spec/containers/0/image/".to_owned()
        }
    );
    // a missing conditional key skips too
    let result = outcome(
        r#"{"metadata": {}}"#,
        r#"{"metadata": {"(name)": "x", "labels": {"a": "b"}}}"#,
    );
    assert_eq!(
        result,
        PatternOutcome::Skip {
            reason:
                "conditional anchor mismatch: conditional anchor key doesn't exist in the resource"
                    .to_owned()
        }
    );
}

#[test]
fn conditional_anchors_on_maps() {
    // test-37 .. test-42 of upstream's TestConditionalAnchorWithMultiplePatterns
    let pattern = r#"{"metadata": {"labels": {"allow-docker": "true"}},
        "(spec)": {"(volumes)": [{"(hostPath)": {"path": "/var/run/docker.sock"}}]}}"#;
    let docker = r#"{"hostPath": {"path": "/var/run/docker.sock"}}"#;
    let other = r#"{"hostPath": {"path": "/randome/value"}}"#;
    let resource = |labels: &str, volumes: Option<&str>| {
        let volumes = volumes.map_or(String::new(), |volume| {
            format!(r#", "volumes": [{volume}]"#)
        });
        format!(
            r#"{{"metadata": {{"labels": {labels}, "name": "nginx"}},
                "spec": {{"containers": [{{"image": "nginx", "name": "nginx"}}]{volumes}}}}}"#
        )
    };
    let cases = [
        (resource(r#"{"run": "nginx"}"#, None), Status::Skip),
        (resource(r#"{"run": "nginx"}"#, Some(docker)), Status::Fail),
        (resource(r#"{"run": "nginx"}"#, Some(other)), Status::Skip),
        (
            resource(r#"{"run": "nginx", "allow-docker": "true"}"#, Some(docker)),
            Status::Pass,
        ),
        (
            resource(r#"{"run": "nginx", "allow-docker": "false"}"#, Some(docker)),
            Status::Fail,
        ),
    ];
    for (resource, expected) in &cases {
        assert_eq!(status(&outcome(resource, pattern)), *expected, "{resource}");
    }
}

#[test]
fn equality_and_conditional_anchors_in_lists() {
    // test-43 .. test-54 of upstream's TestConditionalAnchorWithMultiplePatterns
    let volumes = r#"{"spec": {"=(volumes)": [{"(name)": "!cache-volume", "=(emptyDir)": {"sizeLimit": "?*"}}]}}"#;
    assert_eq!(
        status(&outcome(
            r#"{"spec": {"volumes": [{"name": "cache-volume", "emptyDir": {}}]}}"#,
            volumes
        )),
        Status::Skip
    );
    let init = r#"{"spec": {"=(initContainers)": [{"(name)": "!istio-init", "=(securityContext)": {"=(runAsUser)": ">0"}}],
        "=(containers)": [{"=(securityContext)": {"=(runAsUser)": ">0"}}]}}"#;
    let cases = [
        (
            r#"{"spec": {"initContainers": [{"name": "nginx", "securityContext": {"runAsUser": 1000}}], "containers": [{"name": "nginx", "image": "nginx"}]}}"#,
            Status::Pass,
        ),
        (
            r#"{"spec": {"initContainers": [{"name": "nginx", "securityContext": {"runAsUser": 0}}], "containers": [{"name": "nginx", "image": "nginx"}]}}"#,
            Status::Fail,
        ),
        (
            r#"{"spec": {"initContainers": [{"name": "istio-init", "securityContext": {"runAsUser": 0}}], "containers": [{"securityContext": {"runAsUser": 1000}}]}}"#,
            Status::Pass,
        ),
        (
            r#"{"spec": {"initContainers": [{"name": "istio-init", "securityContext": {"runAsUser": 1000}}], "containers": [{"securityContext": {"runAsUser": 0}}]}}"#,
            Status::Fail,
        ),
        (
            r#"{"spec": {"containers": [{"securityContext": {"runAsUser": 1000}}]}}"#,
            Status::Pass,
        ),
        (
            r#"{"spec": {"containers": [{"securityContext": {"runAsUser": 0}}]}}"#,
            Status::Fail,
        ),
        (
            r#"{"spec": {"initContainers": [{"name": "istio-init", "securityContext": {"runAsUser": 0}}], "containers": [{"name": "nginx", "image": "nginx"}]}}"#,
            Status::Pass,
        ),
    ];
    for (resource, expected) in cases {
        assert_eq!(status(&outcome(resource, init)), expected, "{resource}");
    }
    let names = r#"{"spec": {"=(volumes)": [{"(name)": "!credential-socket&!istio-data&!istio-envoy&!workload-certs&!workload-socket", "=(emptyDir)": {"sizeLimit": "?*"}}]}}"#;
    let cases = [
        (
            r#"{"spec": {"volumes": [{"name": "credential-socket", "emptyDir": {"sizeLimit": "1Gi"}}]}}"#,
            Status::Skip,
        ),
        (
            r#"{"spec": {"volumes": [{"name": "cache-volume", "emptyDir": {"sizeLimit": "1Gi"}}]}}"#,
            Status::Pass,
        ),
        (
            r#"{"spec": {"volumes": [{"name": "cache-volume"}]}}"#,
            Status::Pass,
        ),
        (
            r#"{"spec": {"volumes": [{"name": "cache-volume", "emptyDir": {}}]}}"#,
            Status::Fail,
        ),
    ];
    for (resource, expected) in cases {
        assert_eq!(status(&outcome(resource, names)), expected, "{resource}");
    }
}

#[test]
fn skipped_lists_under_anchors_do_not_end_the_map() {
    // kyverno#9155: containers are all skipped, but the init container still fails
    let pattern = r#"{"spec": {
        "=(ephemeralContainers)": [{"(image)": "!*/foo:*.*.*", "securityContext": {"allowPrivilegeEscalation": "false"}}],
        "=(initContainers)": [{"(image)": "!*/foo:*.*.*", "securityContext": {"allowPrivilegeEscalation": "false"}}],
        "=(containers)": [{"(image)": "!*/foo:*.*.*", "securityContext": {"allowPrivilegeEscalation": "false"}}]}}"#;
    let resource = r#"{"spec": {"containers": [{"name": "side", "image": "test/foo:1.2.3"}],
        "initContainers": [{"name": "init", "image": "test/bar:1.2.3", "securityContext": {"allowPrivilegeEscalation": true}}]}}"#;
    assert_eq!(
        failed_path(&outcome(resource, pattern)),
        Some("/spec/initContainers/0/securityContext/allowPrivilegeEscalation/")
    );
    // under a plain key, a skipped list skips the enclosing element (the CLI's foreach test:
    // a container not mounting the volume is not checked for resources)
    let pattern = r#"{"spec": {"containers": [{
        "resources": {"limits": {"ephemeral-storage": "?*"}, "requests": {"ephemeral-storage": "?*"}},
        "volumeMounts": [{"<(name)": "cache-volume"}]}]}}"#;
    let container = |name: &str, resources: &str, volume: &str| {
        format!(
            r#"{{"name": "{name}", "resources": {resources}, "volumeMounts": [{{"name": "{volume}"}}]}}"#
        )
    };
    let storage =
        r#"{"limits": {"ephemeral-storage": "129M"}, "requests": {"ephemeral-storage": "129M"}}"#;
    let pod = |containers: &[String]| {
        format!(
            r#"{{"spec": {{"containers": [{}]}}}}"#,
            containers.join(",")
        )
    };
    let mixed = pod(&[
        container("test1", storage, "cache-volume"),
        container("test2", "{}", "gce"),
    ]);
    assert_eq!(outcome(&mixed, pattern), PatternOutcome::Pass);
    let gce_only = pod(&[container("test2", "{}", "gce")]);
    assert_eq!(status(&outcome(&gce_only, pattern)), Status::Skip);
    let bad = pod(&[container("test1", "{}", "cache-volume")]);
    assert_eq!(status(&outcome(&bad, pattern)), Status::Fail);
}

#[test]
fn global_anchors() {
    // upstream's Test_global_anchor and test-23 .. test-36
    let pattern = r#"{"spec": {"containers": [{"name": "*", "<(image)": "*:latest", "imagePullPolicy": "!Always"}]}}"#;
    let pod = |image: &str, policy: &str| {
        format!(
            r#"{{"spec": {{"containers": [{{"name": "nginx", "image": "{image}", "imagePullPolicy": "{policy}"}}]}}}}"#
        )
    };
    assert_eq!(
        status(&outcome(&pod("nginx:v1", "Always"), pattern)),
        Status::Skip
    );
    assert_eq!(
        status(&outcome(&pod("nginx:latest", "Always"), pattern)),
        Status::Fail
    );
    assert_eq!(
        status(&outcome(&pod("nginx:latest", "IfNotPresent"), pattern)),
        Status::Pass
    );
    let mixed = r#"{"spec": {"containers": [{"name": "nginx", "image": "nginx:latest", "imagePullPolicy": "IfNotPresent"},
        {"name": "nginx", "image": "nginx:v2", "imagePullPolicy": "IfNotPresent"}]}}"#;
    assert_eq!(status(&outcome(mixed, pattern)), Status::Pass);

    let env = r#"{"spec": {"containers": [{"name": "*", "env": [{"<(name)": "foo", "<(value)": "bar"}], "imagePullPolicy": "!Always"}]}}"#;
    let env_pod = |name: &str, policy: &str| {
        format!(
            r#"{{"spec": {{"containers": [{{"name": "nginx", "image": "nginx", "env": [{{"name": "{name}", "value": "bar"}}], "imagePullPolicy": "{policy}"}}]}}}}"#
        )
    };
    assert_eq!(
        status(&outcome(&env_pod("foo", "IfNotpresent"), env)),
        Status::Pass
    );
    assert_eq!(
        status(&outcome(&env_pod("foo", "Always"), env)),
        Status::Fail
    );
    // the env list is skipped by its global anchors, which skips the container
    assert_eq!(
        status(&outcome(&env_pod("foo1", "Always"), env)),
        Status::Skip
    );

    let secrets = r#"{"metadata": {"<(name)": "nginx"}, "spec": {"imagePullSecrets": [{"name": "regcred"}]}}"#;
    let pod = |name: &str| {
        format!(
            r#"{{"metadata": {{"name": "{name}"}}, "spec": {{"containers": [{{"name": "nginx", "image": "nginx:latest"}}], "imagePullSecrets": [{{"name": "cred"}}]}}}}"#
        )
    };
    assert_eq!(status(&outcome(&pod("nginx"), secrets)), Status::Fail);
    assert_eq!(status(&outcome(&pod("somename"), secrets)), Status::Skip);

    let labels = r#"{"metadata": {"labels": {"<(foo)": "bar"}}, "spec": {"containers": [{"name": "nginx", "image": "!*:latest"}]}}"#;
    let labelled = |image: &str| {
        format!(
            r#"{{"metadata": {{"name": "nginx", "labels": {{"foo": "bar"}}}}, "spec": {{"containers": [{{"name": "nginx", "image": "{image}"}}]}}}}"#
        )
    };
    assert_eq!(status(&outcome(&labelled("nginx"), labels)), Status::Pass);
    assert_eq!(
        status(&outcome(&labelled("nginx:latest"), labels)),
        Status::Fail
    );

    let sibling = r#"{"spec": {"containers": [{"name": "*", "<(image)": "nginx"}], "imagePullSecrets": [{"name": "my-registry-secret"}]}}"#;
    let pod = |image: &str, secret: &str| {
        format!(
            r#"{{"spec": {{"containers": [{{"name": "nginx", "image": "{image}"}}], "imagePullSecrets": [{{"name": "{secret}"}}]}}}}"#
        )
    };
    assert_eq!(
        status(&outcome(&pod("nginx", "cred"), sibling)),
        Status::Fail
    );
    assert_eq!(
        status(&outcome(&pod("somepod", "cred"), sibling)),
        Status::Skip
    );
    assert_eq!(
        status(&outcome(&pod("nginx", "my-registry-secret"), sibling)),
        Status::Pass
    );
}

#[test]
fn wildcard_metadata_keys() {
    // (pattern, resource, failing path) from upstream's TestValidateMapWildcardKeys
    let cases = [
        (
            r#"{"metadata": {"annotations": {"test/*": "value1"}}}"#,
            r#"{"metadata": {"annotations": {"test/bar": "value1"}}}"#,
            None,
        ),
        (
            r#"{"metadata": {"annotations": {"test/b??": "v*"}}}"#,
            r#"{"metadata": {"annotations": {"test/bar": "value1"}}}"#,
            None,
        ),
        (
            r#"{}"#,
            r#"{"metadata": {"annotations": {"test/bar": "value1"}}}"#,
            None,
        ),
        (
            r#"{"metadata": {"annotations": {"test/b??": "v*"}}}"#,
            r#"{"metadata": {"labels": {"test/bar": "value1"}}}"#,
            Some("/metadata/annotations/"),
        ),
        (
            r#"{"metadata": {"labels": {"*/test": "foo"}}}"#,
            r#"{"metadata": {"labels": {"foo/test": "foo"}}}"#,
            None,
        ),
        (
            r#"{"metadata": {"labels": {"foo/a*": "bar"}}}"#,
            r#"{"metadata": {"labels": {"foo/aa?": "bar", "foo/789": "bar"}}}"#,
            None,
        ),
        (
            r#"{"metadata": {"labels": {"foo/ABC*": "bar"}}}"#,
            r#"{"metadata": {"labels": {"foo/AB?": "bar", "foo/ABC": "bar2"}}}"#,
            Some("/metadata/labels/foo/ABC/"),
        ),
        (
            r#"{"=(metadata)": {"=(labels)": {"foo/P*": "bar", "foo/Q*": "bar2"}}}"#,
            r#"{"metadata": {"labels": {"foo/PQR": "bar", "foo/QR": "bar2"}}}"#,
            None,
        ),
        (
            r#"{"metadata": {"labels": {"foo/1*": "bar"}}}"#,
            r#"{"metadata": {"labels": {"foo/123": "bar222"}}}"#,
            Some("/metadata/labels/foo/123/"),
        ),
        (
            r#"{"metadata": {"labels": {"foo/X*": "bar", "foo/A*": "bar2"}}}"#,
            r#"{"metadata": {"labels": {"foo/XYZ": "bar"}}}"#,
            Some("/metadata/labels/foo/A*/"),
        ),
        (
            r#"{"=(metadata)": {"=(labels)": {"foo/1*": "bar", "foo/4*": "bar2"}}}"#,
            r#"{"metadata": {"labels": {"foo/123": "bar"}}}"#,
            Some("/metadata/labels/foo/4*/"),
        ),
    ];
    for (pattern, resource, path) in cases {
        let result = outcome(resource, pattern);
        match path {
            None => assert_eq!(result, PatternOutcome::Pass, "{pattern} on {resource}"),
            Some(path) => assert_eq!(failed_path(&result), Some(path), "{pattern} on {resource}"),
        }
    }
    // anchored wildcard keys are expanded too: X(fluxcd.io/*) forbids any such annotation
    let pattern = r#"{"metadata": {"=(annotations)": {"X(fluxcd.io/*)": "*?"}}}"#;
    let flux = r#"{"metadata": {"annotations": {"fluxcd.io/automated": "true"}}}"#;
    assert_eq!(
        failed_path(&outcome(flux, pattern)),
        Some("/metadata/annotations/fluxcd.io/automated/")
    );
    assert_eq!(
        outcome(r#"{"metadata": {"annotations": {"a": "b"}}}"#, pattern),
        PatternOutcome::Pass
    );
}

#[test]
fn plain_add_if_not_present_keys_are_literal_in_validation() {
    let pattern = r#"{"spec": {"+(dnsPolicy)": "None"}}"#;
    assert_eq!(
        failed_path(&outcome(r#"{"spec": {"dnsPolicy": "None"}}"#, pattern)),
        Some("/spec/+(dnsPolicy)/")
    );
}

#[test]
fn keys_are_checked_in_upstream_order() {
    // anchors first, then keys holding nested anchors, then the rest (alphabetically)
    let pattern = r#"{"a": "x", "b": {"=(c)": "y"}, "=(d)": "z"}"#;
    let resource = r#"{"a": "wrong", "b": {"c": "wrong"}, "d": "wrong"}"#;
    assert_eq!(failed_path(&outcome(resource, pattern)), Some("/d/"));
    let resource = r#"{"a": "wrong", "b": {"c": "wrong"}, "d": "z"}"#;
    assert_eq!(failed_path(&outcome(resource, pattern)), Some("/b/c/"));
}

#[test]
fn any_pattern_results_and_messages() {
    let patterns = [
        json!({"spec": {"source": {"path": "?*", "X(chart)": null}}}),
        json!({"spec": {"source": {"X(path)": null, "chart": "?*"}}}),
    ];
    let good = json!({"spec": {"source": {"chart": "c"}}});
    let result = validate_any_pattern(&good, &patterns);
    assert_eq!(result, AnyPatternOutcome::Pass { index: Some(1) });
    assert_eq!(
        result.rule_message("source-path-chart", ""),
        "validation rule 'source-path-chart' anyPattern[1] passed."
    );

    let bad = json!({"spec": {"source": {"path": "p", "chart": "c"}}});
    let result = validate_any_pattern(&bad, &patterns);
    assert_eq!(
        result.rule_message("source-path-chart", "Only one of path or chart"),
        "validation error: Only one of path or chart. rule source-path-chart[0] failed at path /spec/source/chart/ rule source-path-chart[1] failed at path /spec/source/path/"
    );
    assert!(matches!(result, AnyPatternOutcome::Fail { ref failed } if failed.len() == 2));

    let conditional = [
        json!({"metadata": {"(name)": "a*", "labels": {"x": "y"}}}),
        json!({"metadata": {"(name)": "b*", "labels": {"x": "y"}}}),
    ];
    let result = validate_any_pattern(&json!({"metadata": {"name": "c"}}), &conditional);
    assert!(matches!(result, AnyPatternOutcome::Skip { ref skipped } if skipped.len() == 2));
    assert_eq!(
        result.rule_message("r", ""),
        "rule r[0] skipped: conditional anchor mismatch: resource value 'c' does not match 'a*' at path /metadata/name/ \
         rule r[1] skipped: conditional anchor mismatch: resource value 'c' does not match 'b*' at path /metadata/name/"
    );
    // a skip and a failure: the rule fails, listing only the failure
    let result = validate_any_pattern(&json!({"metadata": {"name": "bob"}}), &conditional);
    assert_eq!(
        result.rule_message("r", "Labels needed."),
        "validation error: Labels needed. rule r[1] failed at path /metadata/labels/"
    );
    assert_eq!(
        validate_any_pattern(&good, &[]),
        AnyPatternOutcome::Pass { index: None }
    );
}

/// Every pattern in the conformance policies loads, and the pod-security ones give the
/// expected result on simple pods.
#[test]
fn conformance_policy_patterns_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/kyverno-policies");
    let entries = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("conformance corpus not found at {}: {e}", root.display()));
    let mut checked = 0;
    let mut stack: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.filter_map(Result::ok).map(|entry| entry.path()));
            }
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if !text.contains("kind: ClusterPolicy") && !text.contains("kind: Policy") {
            continue;
        }
        let Ok(documents) = serde_saphyr::from_multiple::<Value>(&text) else {
            continue;
        };
        for document in documents {
            for pattern in collect_patterns(&document) {
                assert_eq!(check_pattern(pattern), Ok(()), "{}", path.display());
                checked += 1;
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} patterns found under {}",
        root.display()
    );
}

fn collect_patterns(value: &Value) -> Vec<&Value> {
    let mut found = Vec::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match (key.as_str(), child) {
                        ("pattern", pattern) => found.push(pattern),
                        ("anyPattern", Value::Array(patterns)) => found.extend(patterns),
                        _ => stack.push(child),
                    }
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}
