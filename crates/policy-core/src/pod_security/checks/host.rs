//! Checks on access to the host: host namespaces, host ports, probe and lifecycle hosts, Windows
//! host processes.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Violation, containers_phrase, join_quote, pluralize};
use crate::pod_security::field::{BadValue, FieldError};
use crate::pod_security::pod::{PodView, set, string_field};

/// `hostNamespaces`: `hostNetwork`, `hostPID` and `hostIPC` must not be true.
pub(super) fn host_namespaces(pod: &PodView<'_>) -> Option<Violation> {
    let mut settings = Vec::new();
    let mut errors = Vec::new();
    for (field, setting) in [
        ("hostNetwork", "hostNetwork=true"),
        ("hostPID", "hostPID=true"),
        ("hostIPC", "hostIPC=true"),
    ] {
        if pod.spec_field(field).and_then(Value::as_bool) == Some(true) {
            settings.push(setting);
            errors.push(FieldError::forbidden(
                format!("spec.{field}"),
                BadValue::Bool(true),
            ));
        }
    }
    (!settings.is_empty()).then(|| Violation {
        reason: "host namespaces".to_owned(),
        detail: settings.join(", "),
        errors,
    })
}

/// `hostPorts`: no container port may set a non-zero `hostPort`.
pub(super) fn host_ports(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad_containers = Vec::new();
    // Upstream lists the ports as a sorted set of strings.
    let mut forbidden_ports = BTreeSet::new();
    let mut errors = Vec::new();
    for container in pod.containers() {
        let ports = container
            .field("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let mut uses_host_port = false;
        for (index, port) in ports.enumerate() {
            let host_port = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
            if host_port != 0 {
                uses_host_port = true;
                forbidden_ports.insert(host_port.to_string());
                errors.push(FieldError::forbidden(
                    container.path(&format!("ports[{index}].hostPort")),
                    BadValue::Int(host_port),
                ));
            }
        }
        if uses_host_port {
            bad_containers.push(container.name());
        }
    }
    (!bad_containers.is_empty()).then(|| Violation {
        reason: "hostPort".to_owned(),
        detail: format!(
            "{} {} {} {}",
            containers_phrase(&bad_containers),
            pluralize("uses", "use", bad_containers.len()),
            pluralize("hostPort", "hostPorts", forbidden_ports.len()),
            forbidden_ports.into_iter().collect::<Vec<_>>().join(", "),
        ),
        errors,
    })
}

/// The probe and lifecycle handlers whose `host` the probes control restricts, as paths under a
/// container.
const HOST_HANDLERS: [&[&str]; 5] = [
    &["livenessProbe"],
    &["readinessProbe"],
    &["startupProbe"],
    &["lifecycle", "postStart"],
    &["lifecycle", "preStop"],
];

/// `hostProbesAndHostLifecycle` (v1.34+): probes and lifecycle handlers must not set a `host`.
pub(super) fn host_probes_and_lifecycle(pod: &PodView<'_>) -> Option<Violation> {
    let mut bad_containers = BTreeSet::new();
    let mut forbidden_hosts = BTreeSet::new();
    let mut errors = Vec::new();
    for container in pod.containers() {
        for handler_path in HOST_HANDLERS {
            let mut handler = container.field(handler_path[0]);
            for name in &handler_path[1..] {
                handler = handler.and_then(|value| set(value.get(*name)));
            }
            let Some(handler) = handler else { continue };
            for action in ["httpGet", "tcpSocket"] {
                let host = set(handler.get(action)).map(|action| string_field(action, "host"));
                let Some(host) = host.filter(|host| !host.is_empty()) else {
                    continue;
                };
                bad_containers.insert(container.name());
                forbidden_hosts.insert(host);
                errors.push(FieldError::forbidden(
                    container.path(&format!("{}.{action}.host", handler_path.join("."))),
                    BadValue::text(host),
                ));
            }
        }
    }
    (!bad_containers.is_empty()).then(|| Violation {
        reason: "probe or lifecycle host".to_owned(),
        detail: format!(
            "{} {} {} {} {}",
            pluralize("container", "containers", bad_containers.len()),
            join_quote(bad_containers.iter().copied()),
            pluralize("uses", "use", bad_containers.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                forbidden_hosts.len()
            ),
            join_quote(forbidden_hosts.iter().copied()),
        ),
        errors,
    })
}

/// `windowsHostProcess`: neither the pod nor a container may set
/// `securityContext.windowsOptions.hostProcess=true`.
pub(super) fn windows_host_process(pod: &PodView<'_>) -> Option<Violation> {
    let host_process = |windows_options: Option<&Value>| {
        windows_options
            .and_then(|options| options.get("hostProcess"))
            .and_then(Value::as_bool)
            == Some(true)
    };
    let mut setters = Vec::new();
    let mut errors = Vec::new();
    if host_process(pod.security_field("windowsOptions")) {
        setters.push("pod".to_owned());
        errors.push(FieldError::forbidden(
            "spec.securityContext.windowsOptions.hostProcess".to_owned(),
            BadValue::Bool(true),
        ));
    }
    let mut bad_containers = Vec::new();
    for container in pod.containers() {
        if host_process(container.security_field("windowsOptions")) {
            bad_containers.push(container.name());
            errors.push(FieldError::forbidden(
                container.path("securityContext.windowsOptions.hostProcess"),
                BadValue::Bool(true),
            ));
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    (!setters.is_empty()).then(|| Violation {
        reason: "hostProcess".to_owned(),
        detail: format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
        errors,
    })
}
