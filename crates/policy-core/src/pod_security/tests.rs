//! Behaviour tests of the podSecurity evaluation, with expectations from Kyverno's messages and
//! tests and from the checks of its pod-security-admission fork.

use kyverno_api::kyverno::v1::validate::{PodSecurity, PodSecurityStandard};
use serde_json::{Value, json};

use super::*;

/// A `podSecurity` declaration from its JSON form.
fn rule(declaration: Value) -> PodSecurity {
    serde_json::from_value(declaration).expect("valid podSecurity")
}

/// Exclusions from their JSON form.
fn excludes(entries: Value) -> Vec<PodSecurityStandard> {
    serde_json::from_value(entries).expect("valid exclusions")
}

/// A Pod with the given spec.
fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test"}, "spec": spec})
}

/// A Pod with the given metadata and spec.
fn pod_with_metadata(metadata: Value, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

/// A container that passes every restricted check.
fn restricted_container(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        }
    })
}

/// The IDs of the checks `declaration` fails on `resource`, in order.
fn failed(declaration: Value, resource: &Value) -> Vec<&'static str> {
    let outcome = evaluate(&rule(declaration), resource).expect("evaluates");
    outcome
        .failures()
        .iter()
        .map(|failure| failure.id)
        .collect()
}

/// The field errors of the only failure of `declaration` on `resource`, rendered as in messages.
fn only_failure(declaration: Value, resource: &Value) -> (String, Vec<String>) {
    let outcome = evaluate(&rule(declaration), resource).expect("evaluates");
    assert_eq!(outcome.failures().len(), 1, "{:?}", outcome.failures());
    let failure = &outcome.failures()[0];
    let errors = failure
        .errors
        .iter()
        .map(|error| {
            let mut out = String::new();
            error.write_for_message(&error.field, &mut out);
            out
        })
        .collect();
    (failure.reason.clone(), errors)
}

fn baseline_latest() -> Value {
    json!({"level": "baseline", "version": "latest"})
}

fn restricted_latest() -> Value {
    json!({"level": "restricted", "version": "latest"})
}

// --- messages -----------------------------------------------------------------------------

#[test]
fn restricted_message_for_bare_container_matches_kyverno() {
    let resource = pod(json!({"containers": [{"name": "nginx", "image": "nginx"}]}));
    let outcome = evaluate(&rule(restricted_latest()), &resource).expect("evaluates");
    assert_eq!(
        outcome.violation_message("validate-pod-security"),
        "Validation rule 'validate-pod-security' failed. It violates PodSecurity \"restricted:latest\": \
         (Forbidden reason: allowPrivilegeEscalation != false, field error list: \
         [spec.containers[0].securityContext.allowPrivilegeEscalation: Required value])\
         (Forbidden reason: unrestricted capabilities, field error list: \
         [spec.containers[0].securityContext.capabilities.drop: Required value])\
         (Forbidden reason: runAsNonRoot != true, field error list: \
         [spec.containers[0].securityContext.runAsNonRoot: Required value])\
         (Forbidden reason: seccompProfile, field error list: \
         [spec.containers[0].securityContext.seccompProfile.type: Required value])"
    );
}

#[test]
fn restricted_message_for_kube_proxy_like_pod_matches_kyverno() {
    let resource = pod(json!({
        "hostNetwork": true,
        "containers": [{
            "name": "kube-proxy",
            "image": "registry.k8s.io/kube-proxy:v1.29.0",
            "securityContext": {"privileged": true}
        }],
        "volumes": [
            {"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
            {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
            {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}}
        ]
    }));
    let outcome = evaluate(&rule(restricted_latest()), &resource).expect("evaluates");
    assert_eq!(
        outcome.violation_message("baseline"),
        "Validation rule 'baseline' failed. It violates PodSecurity \"restricted:latest\": \
         (Forbidden reason: allowPrivilegeEscalation != false, field error list: \
         [spec.containers[0].securityContext.allowPrivilegeEscalation is forbidden, forbidden values found: nil])\
         (Forbidden reason: unrestricted capabilities, field error list: \
         [spec.containers[0].securityContext.capabilities.drop: Required value])\
         (Forbidden reason: host namespaces, field error list: \
         [spec.hostNetwork is forbidden, forbidden values found: true])\
         (Forbidden reason: hostPath volumes, field error list: \
         [spec.volumes[1].hostPath is forbidden, forbidden values found: /run/xtables.lock, \
         spec.volumes[2].hostPath is forbidden, forbidden values found: /lib/modules])\
         (Forbidden reason: privileged, field error list: \
         [spec.containers[0].securityContext.privileged is forbidden, forbidden values found: true])\
         (Forbidden reason: restricted volume types, field error list: \
         [spec.volumes[1].hostPath: Forbidden, spec.volumes[2].hostPath: Forbidden])\
         (Forbidden reason: runAsNonRoot != true, field error list: \
         [spec.containers[0].securityContext.runAsNonRoot: Required value])\
         (Forbidden reason: seccompProfile, field error list: \
         [spec.containers[0].securityContext.seccompProfile.type: Required value])"
    );
}

#[test]
fn controller_paths_are_rebased_onto_the_template() {
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "privileged-deploy"},
        "spec": {"template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx", "securityContext": {"privileged": true}}]}
        }}
    });
    let outcome = evaluate(&rule(baseline_latest()), &deployment).expect("evaluates");
    assert_eq!(
        outcome.violation_message("baseline"),
        "Validation rule 'baseline' failed. It violates PodSecurity \"baseline:latest\": \
         (Forbidden reason: privileged, field error list: \
         [spec.template.spec.containers[0].securityContext.privileged is forbidden, forbidden values found: true])"
    );
}

#[test]
fn daemon_set_message_lists_checks_in_upstream_order() {
    let daemon_set = json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "csi"},
        "spec": {"template": {"spec": {
            "hostNetwork": true,
            "hostPID": true,
            "containers": [{"name": "plugin", "image": "csi",
                            "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}],
            "volumes": [{"name": "plugins", "hostPath": {"path": "/var/lib/kubelet/plugins/cephfs.csi.ceph.com"}}]
        }}}
    });
    let outcome = evaluate(&rule(baseline_latest()), &daemon_set).expect("evaluates");
    assert_eq!(
        outcome.violation_message("autogen-baseline"),
        "Validation rule 'autogen-baseline' failed. It violates PodSecurity \"baseline:latest\": \
         (Forbidden reason: non-default capabilities, field error list: \
         [spec.template.spec.containers[0].securityContext.capabilities.add is forbidden, forbidden values found: [SYS_ADMIN]])\
         (Forbidden reason: host namespaces, field error list: \
         [spec.template.spec.hostNetwork is forbidden, forbidden values found: true, \
         spec.template.spec.hostPID is forbidden, forbidden values found: true])\
         (Forbidden reason: hostPath volumes, field error list: \
         [spec.template.spec.volumes[0].hostPath is forbidden, forbidden values found: /var/lib/kubelet/plugins/cephfs.csi.ceph.com])"
    );
}

#[test]
fn cron_job_reads_the_job_template_metadata_and_rebases_paths() {
    let annotation = "container.apparmor.security.beta.kubernetes.io/app";
    let cron_job = json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {"jobTemplate": {
            "metadata": {"annotations": {annotation: "unconfined"}},
            "spec": {"template": {
                // Upstream reads the job template's metadata, not the pod template's.
                "metadata": {"annotations": {annotation: "runtime/default"}},
                "spec": {"containers": [{"name": "app", "image": "app", "securityContext": {"privileged": true}}]}
            }}
        }}
    });
    let outcome = evaluate(&rule(baseline_latest()), &cron_job).expect("evaluates");
    let ids: Vec<_> = outcome
        .failures()
        .iter()
        .map(|failure| failure.id)
        .collect();
    assert_eq!(ids, ["appArmorProfile", "privileged"]);
    let message = outcome.violation_message("r");
    assert!(message.contains(
        "(Forbidden reason: forbidden AppArmor profile, field error list: \
         [spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/app] \
         is forbidden, forbidden values found: unconfined])"
    ));
    assert!(
        message.contains(
            "[spec.jobTemplate.spec.template.spec.containers[0].securityContext.privileged"
        )
    );
}

#[test]
fn pod_annotation_paths_are_rebased_too() {
    let resource = pod_with_metadata(
        json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}),
        json!({"containers": [{"name": "app", "image": "app"}]}),
    );
    let outcome = evaluate(&rule(baseline_latest()), &resource).expect("evaluates");
    let failure = &outcome.failures()[0];
    assert_eq!(
        failure.errors[0].field,
        "metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]"
    );
    assert_eq!(
        outcome.resource_field(&failure.errors[0]),
        "spec.template.metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]"
    );
}

#[test]
fn message_uses_the_declared_level_and_version_text() {
    let resource = pod(json!({"hostIPC": true, "containers": [{"name": "c", "image": "c"}]}));
    let outcome = evaluate(&rule(json!({"level": "baseline"})), &resource).expect("evaluates");
    assert!(
        outcome
            .violation_message("b")
            .contains(r#"It violates PodSecurity "baseline:": "#)
    );
    let outcome = evaluate(
        &rule(json!({"level": "baseline", "version": "v1.24"})),
        &resource,
    )
    .expect("evaluates");
    assert!(
        outcome
            .violation_message("b")
            .contains(r#""baseline:v1.24""#)
    );
}

// --- errors -------------------------------------------------------------------------------

#[test]
fn rejects_kinds_without_pods_and_bad_versions() {
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(
        evaluate(&rule(baseline_latest()), &config_map).map(|_| ()),
        Err(PodSecurityError::UnsupportedKind("ConfigMap".to_owned()))
    );
    let resource = pod(json!({"containers": []}));
    for bad in ["1.29", "v2.1", "v1.029", "v1.", "v1.x", "LATEST"] {
        let error = evaluate(
            &rule(json!({"level": "baseline", "version": bad})),
            &resource,
        )
        .map(|_| ())
        .expect_err(bad);
        assert_eq!(error.to_string(), r#"must be "latest" or "v1.x""#);
    }
    assert_eq!(PolicyVersion::parse("v1.0"), Ok(PolicyVersion::Minor(0)));
    assert_eq!(PolicyVersion::parse("v1.34"), Ok(PolicyVersion::Minor(34)));
    assert_eq!(PolicyVersion::parse(""), Ok(PolicyVersion::Latest));
}

#[test]
fn pods_without_spec_pass() {
    let empty = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    assert!(
        evaluate(&rule(restricted_latest()), &empty)
            .expect("evaluates")
            .is_allowed()
    );
    let no_template = json!({"kind": "Deployment", "spec": {}});
    assert!(
        evaluate(&rule(restricted_latest()), &no_template)
            .expect("evaluates")
            .is_allowed()
    );
}

#[test]
fn every_kind_with_a_pod_template_is_checked() {
    for kind in [
        "Deployment",
        "DaemonSet",
        "StatefulSet",
        "ReplicaSet",
        "ReplicationController",
        "Job",
    ] {
        let resource = json!({"kind": kind, "spec": {"template": {"spec": {"hostPID": true, "containers": []}}}});
        assert_eq!(
            failed(baseline_latest(), &resource),
            ["hostNamespaces"],
            "{kind}"
        );
    }
}

// --- levels and versions --------------------------------------------------------------------

#[test]
fn baseline_runs_baseline_checks_only_and_other_levels_run_all() {
    let resource = pod(json!({"containers": [{"name": "nginx", "image": "nginx"}]}));
    assert!(failed(baseline_latest(), &resource).is_empty());
    let restricted = failed(restricted_latest(), &resource);
    assert_eq!(
        restricted,
        [
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "runAsNonRoot",
            "seccompProfile_restricted"
        ]
    );
    // Upstream only filters for baseline, so privileged (and an unset level) check everything.
    assert_eq!(
        failed(json!({"level": "privileged"}), &resource),
        restricted
    );
    assert_eq!(failed(json!({}), &resource), restricted);
}

#[test]
fn pinned_versions_run_every_revision_up_to_them() {
    let with_sysctl = |name: &str| {
        pod(
            json!({"securityContext": {"sysctls": [{"name": name, "value": "1"}]}, "containers": []}),
        )
    };
    let keepalive = with_sysctl("net.ipv4.tcp_keepalive_time");
    assert!(failed(baseline_latest(), &keepalive).is_empty());
    assert_eq!(
        failed(json!({"level": "baseline", "version": "v1.28"}), &keepalive),
        ["sysctls", "sysctls"]
    );
    // The v1.0 and v1.27 revisions still run at v1.29 and both reject the sysctl.
    assert_eq!(
        failed(json!({"level": "baseline", "version": "v1.29"}), &keepalive),
        ["sysctls", "sysctls"]
    );
    let reserved = with_sysctl("net.ipv4.ip_local_reserved_ports");
    assert_eq!(
        failed(json!({"level": "baseline", "version": "v1.26"}), &reserved),
        ["sysctls"]
    );
    assert!(failed(baseline_latest(), &with_sysctl("net.ipv4.tcp_rmem")).is_empty());
    assert_eq!(
        failed(baseline_latest(), &with_sysctl("kernel.msgmax")),
        ["sysctls"]
    );
    assert!(failed(baseline_latest(), &with_sysctl("kernel.shm_rmid_forced")).is_empty());
    let (reason, errors) = only_failure(baseline_latest(), &with_sysctl("kernel.msgmax"));
    assert_eq!(reason, "forbidden sysctls");
    assert_eq!(
        errors,
        [
            "spec.securityContext.sysctls[0].name is forbidden, forbidden values found: kernel.msgmax"
        ]
    );
}

#[test]
fn windows_exemptions_apply_from_v1_25_revisions() {
    let windows =
        pod(json!({"os": {"name": "windows"}, "containers": [{"name": "w", "image": "w"}]}));
    assert_eq!(failed(restricted_latest(), &windows), ["runAsNonRoot"]);
    // Pinned at v1.25, the older revisions (which do not know the os field) run too.
    assert_eq!(
        failed(json!({"level": "restricted", "version": "v1.25"}), &windows),
        [
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "runAsNonRoot",
            "seccompProfile_restricted"
        ]
    );
    let linux = pod(json!({"os": {"name": "linux"}, "containers": [{"name": "a", "image": "a"}]}));
    assert!(failed(restricted_latest(), &linux).contains(&"allowPrivilegeEscalation"));
}

#[test]
fn checks_start_at_their_versions() {
    let bare = pod(
        json!({"containers": [{"name": "a", "image": "a", "securityContext": {"runAsUser": 0}}]}),
    );
    // capabilities_restricted from v1.22, runAsUser from v1.23, seccompProfile_restricted from v1.19.
    assert_eq!(
        failed(json!({"level": "restricted", "version": "v1.18"}), &bare),
        ["allowPrivilegeEscalation", "runAsNonRoot"]
    );
    assert_eq!(
        failed(json!({"level": "restricted", "version": "v1.22"}), &bare),
        [
            "allowPrivilegeEscalation",
            "capabilities_restricted",
            "runAsNonRoot",
            "seccompProfile_restricted"
        ]
    );
    assert!(
        failed(json!({"level": "restricted", "version": "v1.23"}), &bare).contains(&"runAsUser")
    );
    // allowPrivilegeEscalation from v1.8.
    assert_eq!(
        failed(json!({"level": "restricted", "version": "v1.7"}), &bare),
        ["runAsNonRoot"]
    );
}

// --- baseline controls -----------------------------------------------------------------------

#[test]
fn host_process() {
    let windows_options =
        |host_process: bool| json!({"windowsOptions": {"hostProcess": host_process}});
    let resource = pod(json!({
        "securityContext": windows_options(true),
        "containers": [{"name": "a", "image": "a", "securityContext": windows_options(true)},
                       {"name": "b", "image": "b", "securityContext": windows_options(false)}]
    }));
    let (reason, errors) = only_failure(baseline_latest(), &resource);
    assert_eq!(reason, "hostProcess");
    assert_eq!(
        errors,
        [
            "spec.securityContext.windowsOptions.hostProcess is forbidden, forbidden values found: true",
            "spec.containers[0].securityContext.windowsOptions.hostProcess is forbidden, forbidden values found: true"
        ]
    );
    let outcome = evaluate(&rule(baseline_latest()), &resource).expect("evaluates");
    assert_eq!(
        outcome.failures()[0].detail,
        r#"pod and container "a" must not set securityContext.windowsOptions.hostProcess=true"#
    );
    assert_eq!(outcome.failures()[0].control_name(), "HostProcess");
}

#[test]
fn host_namespaces() {
    let resource =
        pod(json!({"hostNetwork": true, "hostPID": false, "hostIPC": true, "containers": []}));
    let (reason, errors) = only_failure(baseline_latest(), &resource);
    assert_eq!(reason, "host namespaces");
    assert_eq!(
        errors,
        [
            "spec.hostNetwork is forbidden, forbidden values found: true",
            "spec.hostIPC is forbidden, forbidden values found: true"
        ]
    );
    assert!(
        failed(
            baseline_latest(),
            &pod(json!({"hostNetwork": false, "containers": []}))
        )
        .is_empty()
    );
}

#[test]
fn privileged_containers() {
    let resource = pod(json!({
        "initContainers": [{"name": "init", "image": "i", "securityContext": {"privileged": true}}],
        "containers": [{"name": "a", "image": "a"},
                       {"name": "b", "image": "b", "securityContext": {}},
                       {"name": "c", "image": "c", "securityContext": {"privileged": false}},
                       {"name": "d", "image": "d", "securityContext": {"privileged": true}}],
        "ephemeralContainers": [{"name": "e", "image": "e", "securityContext": {"privileged": true}}]
    }));
    let outcome = evaluate(&rule(baseline_latest()), &resource).expect("evaluates");
    assert_eq!(outcome.failures().len(), 1);
    let failure = &outcome.failures()[0];
    assert_eq!(
        failure.detail,
        r#"containers "init", "d", "e" must not set securityContext.privileged=true"#
    );
    let fields: Vec<_> = failure
        .errors
        .iter()
        .map(|error| error.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.initContainers[0].securityContext.privileged",
            "spec.containers[3].securityContext.privileged",
            "spec.ephemeralContainers[0].securityContext.privileged"
        ]
    );
}

#[test]
fn capabilities_baseline_and_restricted() {
    let with_capabilities = |capabilities: Value| {
        pod(
            json!({"containers": [{"name": "a", "image": "a", "securityContext": {"capabilities": capabilities}}]}),
        )
    };
    assert!(
        failed(
            baseline_latest(),
            &with_capabilities(json!({"add": ["KILL", "CHOWN"]}))
        )
        .is_empty()
    );
    let (reason, errors) = only_failure(
        baseline_latest(),
        &with_capabilities(json!({"add": ["SYS_TIME", "NET_ADMIN", "KILL"]})),
    );
    assert_eq!(reason, "non-default capabilities");
    assert_eq!(
        errors,
        [
            "spec.containers[0].securityContext.capabilities.add is forbidden, forbidden values found: [NET_ADMIN SYS_TIME]"
        ]
    );

    let only_caps = json!({"level": "restricted", "version": "latest"});
    let failures = |capabilities: Value| {
        let resource = with_capabilities(capabilities);
        let outcome = evaluate(&rule(only_caps.clone()), &resource).expect("evaluates");
        outcome
            .failures()
            .iter()
            .find(|failure| failure.id == "capabilities_restricted")
            .map(|failure| (failure.detail.clone(), failure.errors.clone()))
    };
    assert_eq!(
        failures(json!({"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})),
        None
    );
    let (detail, errors) =
        failures(json!({"drop": ["NET_RAW", "CHOWN"], "add": ["KILL"]})).expect("fails");
    assert_eq!(
        detail,
        r#"container "a" must set securityContext.capabilities.drop=["ALL"]; container "a" must not include "KILL" in securityContext.capabilities.add"#
    );
    assert_eq!(
        errors,
        [
            FieldError {
                kind: FieldErrorKind::Forbidden,
                field: "spec.containers[0].securityContext.capabilities.drop".to_owned(),
                bad_value: BadValue::List(vec!["CHOWN".to_owned(), "NET_RAW".to_owned()]),
            },
            FieldError {
                kind: FieldErrorKind::Forbidden,
                field: "spec.containers[0].securityContext.capabilities.add".to_owned(),
                bad_value: BadValue::List(vec!["KILL".to_owned()]),
            }
        ]
    );
    let (_, errors) = failures(json!({"drop": []})).expect("fails");
    assert_eq!(
        errors,
        [FieldError::required(
            "spec.containers[0].securityContext.capabilities.drop".to_owned()
        )]
    );
    // "all" is not "ALL".
    assert!(failures(json!({"drop": ["all"]})).is_some());
}

#[test]
fn host_path_volumes() {
    let resource = pod(json!({
        "containers": [],
        "volumes": [{"name": "a", "hostPath": {"path": "/var/lib1"}},
                    {"name": "b", "emptyDir": {}},
                    {"name": "c", "hostPath": {}}]
    }));
    let outcome = evaluate(&rule(baseline_latest()), &resource).expect("evaluates");
    let failure = &outcome.failures()[0];
    assert_eq!(failure.reason, "hostPath volumes");
    assert_eq!(failure.detail, r#"volumes "a", "c""#);
    assert_eq!(
        outcome.violation_message("r"),
        "Validation rule 'r' failed. It violates PodSecurity \"baseline:latest\": \
         (Forbidden reason: hostPath volumes, field error list: \
         [spec.volumes[0].hostPath is forbidden, forbidden values found: /var/lib1, spec.volumes[2].hostPath: Forbidden])"
    );
}

#[test]
fn host_ports() {
    let resource = pod(json!({"containers": [
        {"name": "a", "image": "a", "ports": [{"containerPort": 80, "hostPort": 0}]},
        {"name": "b", "image": "b", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 10}]}
    ]}));
    let outcome = evaluate(&rule(baseline_latest()), &resource).expect("evaluates");
    let failure = &outcome.failures()[0];
    assert_eq!(failure.reason, "hostPort");
    // Ports are listed as a sorted set of strings.
    assert_eq!(failure.detail, r#"container "b" uses hostPorts 10, 8080"#);
    assert_eq!(
        failure.errors[0].field,
        "spec.containers[1].ports[0].hostPort"
    );
    assert_eq!(failure.errors[0].bad_value, BadValue::Int(8080));
}

#[test]
fn host_probes_and_lifecycle_hooks_from_v1_34() {
    let resource = pod(json!({"containers": [{
        "name": "agent",
        "image": "agent",
        "livenessProbe": {"httpGet": {"host": "localhost", "path": "/healthz", "port": 2703}},
        "readinessProbe": {"tcpSocket": {"port": 80}},
        "lifecycle": {"preStop": {"tcpSocket": {"host": "10.0.0.1", "port": 1}}}
    }]}));
    for (version, fails) in [
        ("", true),
        ("latest", true),
        ("v1.35", true),
        ("v1.34", true),
        ("v1.33", false),
        ("v1.29", false),
    ] {
        let ids = failed(json!({"level": "baseline", "version": version}), &resource);
        assert_eq!(!ids.is_empty(), fails, "version {version:?}");
    }
    let outcome = evaluate(&rule(baseline_latest()), &resource).expect("evaluates");
    let failure = &outcome.failures()[0];
    assert_eq!(failure.control_name(), "Host Probes / Lifecycle Hooks");
    assert_eq!(failure.reason, "probe or lifecycle host");
    assert_eq!(
        failure.detail,
        r#"container "agent" uses probe or lifecycle hosts "10.0.0.1", "localhost""#
    );
    let fields: Vec<_> = failure
        .errors
        .iter()
        .map(|error| error.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.containers[0].livenessProbe.httpGet.host",
            "spec.containers[0].lifecycle.preStop.tcpSocket.host"
        ]
    );
}

#[test]
fn app_armor_profiles_and_annotations() {
    let prefix = "container.apparmor.security.beta.kubernetes.io/";
    let allowed = pod_with_metadata(
        json!({"annotations": {
            format!("{prefix}a"): "runtime/default",
            format!("{prefix}b"): "localhost/profile",
            format!("{prefix}c"): "",
            "env": "prod"
        }}),
        json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
               "containers": [{"name": "a", "image": "a", "securityContext": {"appArmorProfile": {"type": "Localhost"}}}]}),
    );
    assert!(failed(baseline_latest(), &allowed).is_empty());
    let forbidden = pod_with_metadata(
        json!({"annotations": {format!("{prefix}f"): "unknown", format!("{prefix}e"): "unconfined"}}),
        json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}},
               "containers": [{"name": "a", "image": "a"}]}),
    );
    let outcome = evaluate(&rule(baseline_latest()), &forbidden).expect("evaluates");
    let failure = &outcome.failures()[0];
    assert_eq!(failure.reason, "forbidden AppArmor profiles");
    assert_eq!(
        failure.detail,
        r#"pod and annotations must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/e=\"unconfined\"", "container.apparmor.security.beta.kubernetes.io/f=\"unknown\"""#
    );
    let fields: Vec<_> = failure
        .errors
        .iter()
        .map(|error| error.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.securityContext.appArmorProfile.type",
            "metadata.annotations[container.apparmor.security.beta.kubernetes.io/e]",
            "metadata.annotations[container.apparmor.security.beta.kubernetes.io/f]"
        ]
    );
}

#[test]
fn se_linux_options() {
    let with_options = |options: Value| {
        pod(
            json!({"containers": [{"name": "a", "image": "a", "securityContext": {"seLinuxOptions": options}}]}),
        )
    };
    assert!(
        failed(
            baseline_latest(),
            &with_options(json!({"type": "container_t", "level": "s0:c1"}))
        )
        .is_empty()
    );
    let engine = with_options(json!({"type": "container_engine_t"}));
    assert!(failed(baseline_latest(), &engine).is_empty());
    assert_eq!(
        failed(json!({"level": "baseline", "version": "v1.30"}), &engine),
        ["seLinuxOptions"]
    );
    // The v1.0 revision still runs at a pinned v1.31.
    assert_eq!(
        failed(json!({"level": "baseline", "version": "v1.31"}), &engine),
        ["seLinuxOptions"]
    );
    let resource = pod(json!({
        "securityContext": {"seLinuxOptions": {"user": "root"}},
        "containers": [{"name": "a", "image": "a", "securityContext": {"seLinuxOptions": {"type": "bar", "role": "sysadm_r"}}}]
    }));
    let outcome = evaluate(&rule(baseline_latest()), &resource).expect("evaluates");
    let failure = &outcome.failures()[0];
    assert_eq!(
        failure.detail,
        r#"pod and container "a" set forbidden securityContext.seLinuxOptions: type "bar"; user may not be set; role may not be set"#
    );
    let fields: Vec<_> = failure
        .errors
        .iter()
        .map(|error| error.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.securityContext.seLinuxOptions.user",
            "spec.containers[0].securityContext.seLinuxOptions.type",
            "spec.containers[0].securityContext.seLinuxOptions.role"
        ]
    );
}

#[test]
fn proc_mount_and_user_namespaces() {
    let with_host_users = |host_users: Option<bool>, security_context: Value| {
        let mut spec = json!({
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "nginx", "image": "nginx", "securityContext": security_context}]
        });
        if let Some(host_users) = host_users {
            spec["hostUsers"] = json!(host_users);
        }
        pod(spec)
    };
    let restricted_context = |extra: Value| {
        let mut context = json!({"allowPrivilegeEscalation": false, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}});
        if let (Some(context), Some(extra)) = (context.as_object_mut(), extra.as_object()) {
            context.extend(extra.clone());
        }
        context
    };
    let unmasked = restricted_context(json!({"procMount": "Unmasked"}));
    let root = restricted_context(json!({"runAsNonRoot": null, "runAsUser": 0}));
    let non_root_false = restricted_context(json!({"runAsNonRoot": false}));
    let privileged = restricted_context(json!({"privileged": true}));
    /// Level, version, `hostUsers`, container security context, failing checks.
    type Case<'c> = (&'c str, &'c str, Option<bool>, &'c Value, &'c [&'c str]);
    let cases: [Case<'_>; 13] = [
        ("baseline", "latest", Some(false), &unmasked, &[]),
        ("baseline", "latest", Some(true), &unmasked, &["procMount"]),
        ("baseline", "latest", None, &unmasked, &["procMount"]),
        ("baseline", "v1.32", Some(false), &unmasked, &["procMount"]),
        (
            "restricted",
            "latest",
            Some(false),
            &unmasked,
            &["procMount_restricted"],
        ),
        (
            "restricted",
            "latest",
            Some(true),
            &unmasked,
            &["procMount", "procMount_restricted"],
        ),
        (
            "restricted",
            "v1.32",
            Some(false),
            &unmasked,
            &["procMount", "procMount_restricted"],
        ),
        ("restricted", "latest", Some(false), &root, &[]),
        (
            "restricted",
            "latest",
            Some(true),
            &root,
            &["runAsNonRoot", "runAsUser"],
        ),
        (
            "restricted",
            "v1.32",
            Some(false),
            &root,
            &["runAsNonRoot", "runAsUser"],
        ),
        ("restricted", "latest", Some(false), &non_root_false, &[]),
        (
            "restricted",
            "v1.32",
            Some(false),
            &non_root_false,
            &["runAsNonRoot"],
        ),
        (
            "restricted",
            "latest",
            Some(false),
            &privileged,
            &["privileged"],
        ),
    ];
    for (level, version, host_users, context, expected) in cases {
        let resource = with_host_users(host_users, context.clone());
        let ids = failed(json!({"level": level, "version": version}), &resource);
        assert_eq!(
            ids, expected,
            "{level}:{version} hostUsers={host_users:?} {context}"
        );
    }
    let resource = with_host_users(Some(false), unmasked.clone());
    let exclude_control = json!({"level": "restricted", "version": "latest",
        "exclude": [{"controlName": "/proc Mount Type", "images": ["nginx"]}]});
    assert!(failed(exclude_control, &resource).is_empty());
    let resource = with_host_users(Some(true), unmasked.clone());
    let exclude_control = json!({"level": "restricted", "version": "v1.32",
        "exclude": [{"controlName": "/proc Mount Type", "images": ["nginx"]}]});
    assert!(failed(exclude_control, &resource).is_empty());
    let exclude_value = json!({"level": "restricted", "version": "latest",
        "exclude": [{"controlName": "/proc Mount Type", "images": ["nginx"],
                     "restrictedField": "spec.containers[*].securityContext.procMount", "values": ["Unmasked"]}]});
    assert!(failed(exclude_value, &resource).is_empty());
}

#[test]
fn seccomp_profiles() {
    let with_pod_profile = |profile: &str| {
        pod(
            json!({"securityContext": {"seccompProfile": {"type": profile}}, "containers": [{"name": "a", "image": "a"}]}),
        )
    };
    let (reason, errors) = only_failure(baseline_latest(), &with_pod_profile("Unconfined"));
    assert_eq!(reason, "seccompProfile");
    assert_eq!(
        errors,
        [
            "spec.securityContext.seccompProfile.type is forbidden, forbidden values found: Unconfined"
        ]
    );
    assert!(failed(baseline_latest(), &with_pod_profile("Localhost")).is_empty());

    let seccomp_failure = |resource: &Value| {
        let outcome = evaluate(&rule(restricted_latest()), resource).expect("evaluates");
        outcome
            .failures()
            .iter()
            .find(|failure| failure.id == "seccompProfile_restricted")
            .map(|failure| failure.detail.clone())
    };
    assert_eq!(seccomp_failure(&with_pod_profile("RuntimeDefault")), None);
    let containers_only = pod(json!({"containers": [
        {"name": "a", "image": "a", "securityContext": {"seccompProfile": {"type": "Localhost"}}},
        {"name": "b", "image": "b"}
    ]}));
    assert_eq!(
        seccomp_failure(&containers_only).as_deref(),
        Some(
            r#"pod or container "b" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#
        )
    );
    // Explicitly bad values are reported alone.
    let explicit = pod(json!({"containers": [
        {"name": "a", "image": "a", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
        {"name": "b", "image": "b"}
    ]}));
    assert_eq!(
        seccomp_failure(&explicit).as_deref(),
        Some(r#"container "a" must not set securityContext.seccompProfile.type to "Unconfined""#)
    );
}

#[test]
fn seccomp_annotations_are_checked_at_pinned_versions_only() {
    let resource = pod_with_metadata(
        json!({"annotations": {
            "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
            "container.seccomp.security.alpha.kubernetes.io/a": "localhost/profile.json",
            "container.seccomp.security.alpha.kubernetes.io/b": "docker/default"
        }}),
        json!({"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}),
    );
    assert!(failed(baseline_latest(), &resource).is_empty());
    let outcome = evaluate(
        &rule(json!({"level": "baseline", "version": "v1.24"})),
        &resource,
    )
    .expect("evaluates");
    let failure = &outcome.failures()[0];
    assert_eq!(failure.id, "seccompProfile_baseline");
    assert_eq!(
        failure.detail,
        r#"forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined""#
    );
    assert_eq!(
        failure.errors[0].field,
        "metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]"
    );
}

// --- restricted controls ---------------------------------------------------------------------

#[test]
fn volume_types() {
    let resource = pod(json!({
        "containers": [],
        "volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "nfs": {"server": "s", "path": "/"}},
                    {"name": "c"}, {"name": "d", "image": {"reference": "x"}}, {"name": "e", "persistentVolumeClaim": {"claimName": "x"}}]
    }));
    let (reason, errors) = only_failure(restricted_latest(), &resource);
    assert_eq!(reason, "restricted volume types");
    assert_eq!(
        errors,
        [
            "spec.volumes[1].nfs: Forbidden",
            "spec.volumes[2].unknown: Forbidden"
        ]
    );
    let outcome = evaluate(&rule(restricted_latest()), &resource).expect("evaluates");
    assert_eq!(
        outcome.failures()[0].detail,
        r#"volumes "b", "c" use restricted volume types "nfs", "unknown""#
    );
}

#[test]
fn privilege_escalation() {
    let resource = pod(json!({"containers": [
        {"name": "a", "image": "a"},
        {"name": "b", "image": "b", "securityContext": {}},
        {"name": "c", "image": "c", "securityContext": {"allowPrivilegeEscalation": true}},
        {"name": "d", "image": "d", "securityContext": {"allowPrivilegeEscalation": false}}
    ]}));
    let outcome = evaluate(&rule(restricted_latest()), &resource).expect("evaluates");
    let failure = &outcome.failures()[0];
    assert_eq!(failure.id, "allowPrivilegeEscalation");
    assert_eq!(
        failure.detail,
        r#"containers "a", "b", "c" must set securityContext.allowPrivilegeEscalation=false"#
    );
    assert_eq!(
        failure.errors,
        [
            FieldError::required(
                "spec.containers[0].securityContext.allowPrivilegeEscalation".to_owned()
            ),
            FieldError::forbidden(
                "spec.containers[1].securityContext.allowPrivilegeEscalation".to_owned(),
                BadValue::text("nil")
            ),
            FieldError::forbidden(
                "spec.containers[2].securityContext.allowPrivilegeEscalation".to_owned(),
                BadValue::Bool(true)
            )
        ]
    );
}

#[test]
fn running_as_non_root() {
    let pod_level = pod(json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "a", "image": "a", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
    }));
    assert!(failed(restricted_latest(), &pod_level).is_empty());
    let mixed = pod(json!({
        "securityContext": {"runAsNonRoot": false},
        "containers": [{"name": "a", "image": "a", "securityContext": {"runAsNonRoot": false}},
                       {"name": "b", "image": "b"}]
    }));
    let outcome = evaluate(&rule(restricted_latest()), &mixed).expect("evaluates");
    let failure = outcome
        .failures()
        .iter()
        .find(|failure| failure.id == "runAsNonRoot")
        .expect("fails");
    assert_eq!(
        failure.detail,
        "pod and container \"a\" must not set securityContext.runAsNonRoot=false\n\
         pod or container \"b\" must set securityContext.runAsNonRoot=true"
    );
    let fields: Vec<_> = failure
        .errors
        .iter()
        .map(|error| (error.kind, error.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                FieldErrorKind::Forbidden,
                "spec.securityContext.runAsNonRoot"
            ),
            (
                FieldErrorKind::Forbidden,
                "spec.containers[0].securityContext.runAsNonRoot"
            ),
            (
                FieldErrorKind::Required,
                "spec.containers[1].securityContext.runAsNonRoot"
            )
        ]
    );
}

#[test]
fn running_as_non_root_user() {
    let resource = pod(json!({
        "securityContext": {"runAsUser": 0},
        "containers": [restricted_container("a", "a"),
                       {"name": "b", "image": "b", "securityContext": {"runAsUser": 0, "runAsNonRoot": true,
                        "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "Localhost"}}},
                       {"name": "c", "image": "c", "securityContext": {"runAsUser": 1000, "runAsNonRoot": true,
                        "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "Localhost"}}}]
    }));
    let outcome = evaluate(&rule(restricted_latest()), &resource).expect("evaluates");
    assert_eq!(outcome.failures().len(), 1);
    let failure = &outcome.failures()[0];
    assert_eq!(failure.reason, "runAsUser=0");
    assert_eq!(
        failure.detail,
        r#"pod and container "b" must not set runAsUser=0"#
    );
    assert_eq!(failure.errors[1].bad_value, BadValue::Int(0));
}

// --- exclusions ----------------------------------------------------------------------------

#[test]
fn exclusion_by_control_without_images_covers_pod_level_fields() {
    let resource =
        pod(json!({"hostNetwork": true, "containers": [{"name": "nginx", "image": "nginx"}]}));
    let declaration = json!({"level": "baseline", "version": "v1.24", "exclude": [{"controlName": "Host Namespaces"}]});
    assert!(failed(declaration, &resource).is_empty());
    let unrelated =
        json!({"level": "baseline", "version": "v1.24", "exclude": [{"controlName": "Sysctls"}]});
    assert_eq!(failed(unrelated, &resource), ["hostNamespaces"]);
}

#[test]
fn exclusion_by_images_covers_matching_containers_only() {
    let resource = pod(json!({"containers": [
        {"name": "nginx", "image": "nginx:1.27", "securityContext": {"privileged": true}},
        {"name": "other", "image": "busybox", "securityContext": {"privileged": true}}
    ]}));
    let declaration = |images: Value| {
        json!({"level": "baseline", "version": "latest",
               "exclude": [{"controlName": "Privileged Containers", "images": images}]})
    };
    let outcome = evaluate(&rule(declaration(json!(["nginx*"]))), &resource).expect("evaluates");
    assert_eq!(outcome.failures().len(), 1);
    assert_eq!(outcome.failures()[0].errors.len(), 1);
    assert_eq!(
        outcome.failures()[0].errors[0].field,
        "spec.containers[1].securityContext.privileged"
    );
    assert!(failed(declaration(json!(["nginx*", "busy?ox"])), &resource).is_empty());
    // Images match as written: "nginx" does not match "nginx:1.27".
    assert_eq!(
        failed(declaration(json!(["nginx", "busybox"])), &resource),
        ["privileged"]
    );
}

#[test]
fn exclusion_with_restricted_field_and_values() {
    let resource = pod(
        json!({"containers": [{"name": "a", "image": "ghcr.io/example/nginx:1.2.3", "securityContext": {
        "allowPrivilegeEscalation": false, "runAsNonRoot": true, "seccompProfile": {"type": "Localhost"},
        "capabilities": {"drop": ["ALL"], "add": ["SETGID", "NET_ADMIN"]}}}]}),
    );
    let declaration = |field: &str, values: Value| {
        json!({"level": "restricted", "version": "latest", "exclude": [{
            "controlName": "Capabilities", "images": ["ghcr.io/example/*"],
            "restrictedField": field, "values": values}]})
    };
    let add = "spec.containers[*].securityContext.capabilities.add";
    assert!(failed(declaration(add, json!(["SETGID", "NET_*"])), &resource).is_empty());
    // Every offending value must be allowed.
    assert_eq!(
        failed(declaration(add, json!(["SETGID"])), &resource),
        ["capabilities_baseline", "capabilities_restricted"]
    );
    // A field of another container list does not match.
    assert_eq!(
        failed(
            declaration(
                "spec.initContainers[*].securityContext.capabilities.add",
                json!(["*"])
            ),
            &resource
        ),
        ["capabilities_baseline", "capabilities_restricted"]
    );
}

#[test]
fn exception_exclusions_with_values_skip_the_rule() {
    // Kyverno's Test_PSS_PolicyExceptions_Skip.
    let resource = pod(json!({
        "containers": [{"name": "primary", "image": "alpine:latest", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true,
            "runAsUser": 1000, "runAsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}}}],
        "initContainers": [
            {"name": "init1", "image": "alpine:latest", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                "privileged": false, "runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}},
            {"name": "init2", "image": "busybox:latest", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"add": ["SYS_TIME"], "drop": ["ALL"]},
                "privileged": false, "runAsNonRoot": true, "runAsUser": 10002, "seccompProfile": {"type": "RuntimeDefault"}}}
        ]
    }));
    let mut outcome = evaluate(
        &rule(json!({"level": "baseline", "version": "v1.29"})),
        &resource,
    )
    .expect("evaluates");
    assert!(!outcome.is_allowed());
    let field = "spec.initContainers[*].securityContext.capabilities.add";
    outcome.apply_exclusions(&excludes(json!([
        {"controlName": "Capabilities", "images": ["alpine:latest"], "restrictedField": field, "values": ["NET_ADMIN", "NET_RAW"]},
        {"controlName": "Capabilities", "images": ["busybox:latest"], "restrictedField": field, "values": ["SYS_TIME"]}
    ])));
    assert!(outcome.is_allowed(), "{:?}", outcome.failures());
}

#[test]
fn exception_on_host_path_values() {
    // The kyverno-cli exceptions-3 case.
    let resource = pod(json!({
        "volumes": [{"name": "host", "hostPath": {"path": "/var/lib1"}}],
        "containers": [{"name": "nginx", "image": "nginx", "args": ["sleep", "1d"]}]
    }));
    let exception = |value: &str| {
        excludes(
            json!([{"controlName": "HostPath Volumes", "restrictedField": "spec.volumes[*].hostPath", "values": [value]}]),
        )
    };
    let mut outcome = evaluate(&rule(baseline_latest()), &resource).expect("evaluates");
    outcome.apply_exclusions(&exception("/var/lib2"));
    assert!(!outcome.is_allowed());
    outcome.apply_exclusions(&exception("/var/lib1"));
    assert!(outcome.is_allowed());
}

#[test]
fn restricted_exclude_seccomp_policy() {
    // The kyverno-policies pod-security/subrule/restricted/restricted-exclude-seccomp case.
    let declaration = json!({"level": "restricted", "version": "latest",
        "exclude": [{"controlName": "Seccomp"}, {"controlName": "Seccomp", "images": ["*"]}]});
    let pod_with = |context: Value| {
        pod(
            json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}},
                   "containers": [{"name": "container01", "image": "busybox:1.28", "securityContext": context}]}),
        )
    };
    let good = pod_with(
        json!({"allowPrivilegeEscalation": false, "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}}),
    );
    assert!(failed(declaration.clone(), &good).is_empty());
    let bad =
        pod_with(json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}));
    assert_eq!(failed(declaration, &bad), ["runAsNonRoot"]);
}

#[test]
fn pod_level_exclusion_of_a_container_control_removes_one_error_per_fake_container_error() {
    // Without images Kyverno checks the pod with one empty container, whose single error covers
    // one error of the same path in any container.
    let resource = pod(json!({"containers": [
        {"name": "a", "image": "a", "securityContext": {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": false,
                                                        "runAsNonRoot": true, "seccompProfile": {"type": "Localhost"}}},
        {"name": "b", "image": "b", "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                                                        "seccompProfile": {"type": "Localhost"}}},
        {"name": "c", "image": "c", "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                                                        "seccompProfile": {"type": "Localhost"}}}
    ]}));
    let declaration = json!({"level": "restricted", "version": "latest", "exclude": [{"controlName": "Capabilities"}]});
    let outcome = evaluate(&rule(declaration), &resource).expect("evaluates");
    assert_eq!(outcome.failures().len(), 1);
    assert_eq!(outcome.failures()[0].errors.len(), 1);
}

#[test]
fn exclusions_merge_failures_reported_per_revision() {
    let resource = pod(
        json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_fin_timeout", "value": "1"}]},
                              "hostIPC": true, "containers": []}),
    );
    let pinned = json!({"level": "baseline", "version": "v1.28"});
    assert_eq!(
        failed(pinned, &resource),
        ["hostNamespaces", "sysctls", "sysctls"]
    );
    let with_unrelated_exclusion = json!({"level": "baseline", "version": "v1.28",
        "exclude": [{"controlName": "HostPath Volumes"}]});
    assert_eq!(
        failed(with_unrelated_exclusion, &resource),
        ["hostNamespaces", "sysctls"]
    );
}

// --- load-time checks ----------------------------------------------------------------------

#[test]
fn spec_checks_images_levels_names_and_versions() {
    let declaration = rule(json!({
        "level": "baseline",
        "version": "v1.x",
        "exclude": [
            {"controlName": "Capabilities"},
            {"controlName": "Host Namespaces", "images": ["nginx"]},
            {"controlName": "Volume Types"},
            {"controlName": "Seccomp"},
            {"controlName": "Privileged"},
            {"controlName": "Host Probes / Lifecycle Hooks", "images": ["*"]}
        ]
    }));
    let errors: Vec<String> = check_spec(&declaration, "spec.rules[0].podSecurity")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert_eq!(
        errors[0],
        r#"spec.rules[0].podSecurity.version: Invalid value: "v1.x": must be "latest" or "v1.x""#
    );
    assert_eq!(
        errors[1],
        r#"spec.rules[0].podSecurity.exclude[0].controlName: Invalid value: "Capabilities": exclude.images must be specified for the container level control"#
    );
    assert_eq!(
        errors[2],
        r#"spec.rules[0].podSecurity.exclude[1].controlName: Invalid value: "Host Namespaces": exclude.images must not be specified for the pod level control"#
    );
    assert_eq!(
        errors[3],
        r#"spec.rules[0].podSecurity.exclude[2].controlName: Invalid value: "Volume Types": Invalid control name defined at the given level"#
    );
    assert!(errors[4].starts_with(
        r#"spec.rules[0].podSecurity.exclude[4].controlName: Unsupported value: "Privileged": supported values: "HostProcess", "Host Namespaces""#
    ));
    let restricted =
        rule(json!({"level": "restricted", "exclude": [{"controlName": "Volume Types"}]}));
    assert!(check_spec(&restricted, "p").is_empty());
}

#[test]
fn exception_entries_need_restricted_field_and_values_together() {
    let entries = excludes(json!([
        {"controlName": "HostPath Volumes", "restrictedField": "spec.volumes[*].hostPath"},
        {"controlName": "Sysctls", "values": ["x"]},
        {"controlName": "HostPath Volumes", "restrictedField": "spec.volumes[*].hostPath", "values": ["/var"]}
    ]));
    let rendered = |index: usize| -> Vec<String> {
        check_exception_entry(&entries[index], &format!("spec.podSecurity[{index}]"))
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        rendered(0),
        ["spec.podSecurity[0].values: Forbidden: values is required"]
    );
    assert_eq!(
        rendered(1),
        ["spec.podSecurity[1].restrictedField: Forbidden: restrictedField is required"]
    );
    assert!(rendered(2).is_empty());
}
