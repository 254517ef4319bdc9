//! Checks on container privileges: privileged mode, privilege escalation, capabilities and the
//! `/proc` mount type.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Violation, containers_phrase, join_quote};
use crate::pod_security::field::{BadValue, FieldError};
use crate::pod_security::pod::{Container, PodView, set};

/// `privileged`: no container may set `securityContext.privileged=true`.
pub(super) fn privileged(pod: &PodView<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for container in pod.containers() {
        if container
            .security_field("privileged")
            .and_then(Value::as_bool)
            == Some(true)
        {
            names.push(container.name());
            errors.push(FieldError::forbidden(
                container.path("securityContext.privileged"),
                BadValue::Bool(true),
            ));
        }
    }
    (!names.is_empty()).then(|| Violation {
        reason: "privileged".to_owned(),
        detail: format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&names)
        ),
        errors,
    })
}

/// `allowPrivilegeEscalation` (v1.8): every container must set
/// `securityContext.allowPrivilegeEscalation=false`.
pub(super) fn allow_privilege_escalation(pod: &PodView<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for container in pod.containers() {
        let field = || container.path("securityContext.allowPrivilegeEscalation");
        let error = match container.security_context() {
            None => FieldError::required(field()),
            Some(context) => match set(context.get("allowPrivilegeEscalation")) {
                // Upstream records an unset flag as the text "nil".
                None => FieldError::forbidden(field(), BadValue::text("nil")),
                Some(value) if value.as_bool() == Some(false) => continue,
                Some(value) => FieldError::forbidden(
                    field(),
                    value
                        .as_bool()
                        .map_or_else(|| BadValue::text("nil"), BadValue::Bool),
                ),
            },
        };
        names.push(container.name());
        errors.push(error);
    }
    (!names.is_empty()).then(|| Violation {
        reason: "allowPrivilegeEscalation != false".to_owned(),
        detail: format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&names)
        ),
        errors,
    })
}

/// `allowPrivilegeEscalation` (v1.25): as in v1.8, but Windows pods pass.
pub(super) fn allow_privilege_escalation_unless_windows(pod: &PodView<'_>) -> Option<Violation> {
    if pod.is_windows() {
        None
    } else {
        allow_privilege_escalation(pod)
    }
}

/// The capabilities the baseline level lets containers add.
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The strings of the capability list `name` (`add` or `drop`) of `capabilities`.
fn capability_list<'a>(capabilities: &'a Value, name: &str) -> impl Iterator<Item = &'a str> {
    capabilities
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// The container's `securityContext.capabilities`, when set.
fn capabilities<'a>(container: &Container<'a>) -> Option<&'a Value> {
    container.security_field("capabilities")
}

/// `capabilities_baseline`: containers may only add the baseline capabilities.
pub(super) fn capabilities_baseline(pod: &PodView<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut all_forbidden = BTreeSet::new();
    let mut errors = Vec::new();
    for container in pod.containers() {
        let Some(capabilities) = capabilities(&container) else {
            continue;
        };
        let forbidden: BTreeSet<&str> = capability_list(capabilities, "add")
            .filter(|capability| !BASELINE_CAPABILITIES.contains(capability))
            .collect();
        if forbidden.is_empty() {
            continue;
        }
        names.push(container.name());
        all_forbidden.extend(forbidden.iter().copied());
        errors.push(FieldError::forbidden(
            container.path("securityContext.capabilities.add"),
            BadValue::List(forbidden.into_iter().map(str::to_owned).collect()),
        ));
    }
    (!names.is_empty()).then(|| Violation {
        reason: "non-default capabilities".to_owned(),
        detail: format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&names),
            join_quote(all_forbidden.iter().copied())
        ),
        errors,
    })
}

/// `capabilities_restricted` (v1.22): every container must drop `ALL` and may add only
/// `NET_BIND_SERVICE`.
pub(super) fn capabilities_restricted(pod: &PodView<'_>) -> Option<Violation> {
    let mut missing_drop_all = Vec::new();
    let mut drop_errors = Vec::new();
    let mut adding_forbidden = Vec::new();
    let mut add_errors = Vec::new();
    let mut all_forbidden = BTreeSet::new();
    for container in pod.containers() {
        let drop_field = || container.path("securityContext.capabilities.drop");
        let Some(capabilities) = capabilities(&container) else {
            missing_drop_all.push(container.name());
            drop_errors.push(FieldError::required(drop_field()));
            continue;
        };
        let dropped: BTreeSet<&str> = capability_list(capabilities, "drop").collect();
        if !dropped.contains("ALL") {
            missing_drop_all.push(container.name());
            drop_errors.push(if dropped.is_empty() {
                FieldError::required(drop_field())
            } else {
                FieldError::forbidden(
                    drop_field(),
                    BadValue::List(dropped.into_iter().map(str::to_owned).collect()),
                )
            });
        }
        let forbidden: BTreeSet<&str> = capability_list(capabilities, "add")
            .filter(|capability| *capability != "NET_BIND_SERVICE")
            .collect();
        if !forbidden.is_empty() {
            adding_forbidden.push(container.name());
            all_forbidden.extend(forbidden.iter().copied());
            add_errors.push(FieldError::forbidden(
                container.path("securityContext.capabilities.add"),
                BadValue::List(forbidden.into_iter().map(str::to_owned).collect()),
            ));
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            r#"{} must set securityContext.capabilities.drop=["ALL"]"#,
            containers_phrase(&missing_drop_all)
        ));
    }
    if !adding_forbidden.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding_forbidden),
            join_quote(all_forbidden.iter().copied())
        ));
    }
    drop_errors.append(&mut add_errors);
    (!details.is_empty()).then(|| Violation {
        reason: "unrestricted capabilities".to_owned(),
        detail: details.join("; "),
        errors: drop_errors,
    })
}

/// `capabilities_restricted` (v1.25): as in v1.22, but Windows pods pass.
pub(super) fn capabilities_restricted_unless_windows(pod: &PodView<'_>) -> Option<Violation> {
    if pod.is_windows() {
        None
    } else {
        capabilities_restricted(pod)
    }
}

/// `procMount` (v1.0) and `procMount_restricted`: containers may only use the `Default` `/proc`
/// mount type.
pub(super) fn proc_mount(pod: &PodView<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types = BTreeSet::new();
    let mut errors = Vec::new();
    for container in pod.containers() {
        let Some(mount_type) = container
            .security_field("procMount")
            .and_then(Value::as_str)
        else {
            continue;
        };
        if mount_type != "Default" {
            names.push(container.name());
            types.insert(mount_type);
            errors.push(FieldError::forbidden(
                container.path("securityContext.procMount"),
                BadValue::text(mount_type),
            ));
        }
    }
    (!names.is_empty()).then(|| Violation {
        reason: "procMount".to_owned(),
        detail: format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&names),
            join_quote(types.iter().copied())
        ),
        errors,
    })
}

/// `procMount` (v1.35): as in v1.0, but pods in a user namespace pass.
pub(super) fn proc_mount_unless_user_namespace(pod: &PodView<'_>) -> Option<Violation> {
    if pod.in_user_namespace() {
        None
    } else {
        proc_mount(pod)
    }
}
