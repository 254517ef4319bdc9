//! Checks on the user containers run as: `runAsNonRoot` and `runAsUser`.

use serde_json::Value;

use super::{Violation, containers_phrase};
use crate::pod_security::field::{BadValue, FieldError};
use crate::pod_security::pod::PodView;

/// `runAsNonRoot` (v1.0): the pod or every container must set `runAsNonRoot=true`, and none may
/// set it to false. Unlike upstream PSA, Kyverno's fork reports explicit and implicit offenders
/// together.
pub(super) fn run_as_non_root(pod: &PodView<'_>) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut errors = Vec::new();
    let pod_setting = pod.security_field("runAsNonRoot").and_then(Value::as_bool);
    if pod_setting == Some(false) {
        setters.push("pod".to_owned());
        errors.push(FieldError::forbidden(
            "spec.securityContext.runAsNonRoot".to_owned(),
            BadValue::Bool(false),
        ));
    }
    let mut explicitly_bad = Vec::new();
    let mut implicitly_bad = Vec::new();
    let mut implicit_errors = Vec::new();
    for container in pod.containers() {
        let field = || container.path("securityContext.runAsNonRoot");
        match container
            .security_field("runAsNonRoot")
            .and_then(Value::as_bool)
        {
            Some(true) => {}
            Some(false) => {
                explicitly_bad.push(container.name());
                errors.push(FieldError::forbidden(field(), BadValue::Bool(false)));
            }
            None if pod_setting != Some(true) => {
                implicitly_bad.push(container.name());
                implicit_errors.push(FieldError::required(field()));
            }
            None => {}
        }
    }
    if !explicitly_bad.is_empty() {
        setters.push(containers_phrase(&explicitly_bad));
    }
    let mut details = Vec::new();
    if !setters.is_empty() {
        details.push(format!(
            "{} must not set securityContext.runAsNonRoot=false",
            setters.join(" and ")
        ));
    }
    if !implicitly_bad.is_empty() {
        details.push(format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            containers_phrase(&implicitly_bad)
        ));
    }
    errors.append(&mut implicit_errors);
    (!details.is_empty()).then(|| Violation {
        reason: "runAsNonRoot != true".to_owned(),
        detail: details.join("\n"),
        errors,
    })
}

/// `runAsNonRoot` (v1.35): as in v1.0, but pods in a user namespace pass.
pub(super) fn run_as_non_root_unless_user_namespace(pod: &PodView<'_>) -> Option<Violation> {
    if pod.in_user_namespace() {
        None
    } else {
        run_as_non_root(pod)
    }
}

/// `runAsUser` (v1.23): neither the pod nor a container may set `runAsUser=0`.
pub(super) fn run_as_user(pod: &PodView<'_>) -> Option<Violation> {
    let is_root = |user: Option<&Value>| user.and_then(Value::as_i64) == Some(0);
    let mut setters = Vec::new();
    let mut errors = Vec::new();
    if is_root(pod.security_field("runAsUser")) {
        setters.push("pod".to_owned());
        errors.push(FieldError::forbidden(
            "spec.securityContext.runAsUser".to_owned(),
            BadValue::Int(0),
        ));
    }
    let mut bad_containers = Vec::new();
    for container in pod.containers() {
        if is_root(container.security_field("runAsUser")) {
            bad_containers.push(container.name());
            errors.push(FieldError::forbidden(
                container.path("securityContext.runAsUser"),
                BadValue::Int(0),
            ));
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    (!setters.is_empty()).then(|| Violation {
        reason: "runAsUser=0".to_owned(),
        detail: format!("{} must not set runAsUser=0", setters.join(" and ")),
        errors,
    })
}

/// `runAsUser` (v1.35): as in v1.23, but pods in a user namespace pass.
pub(super) fn run_as_user_unless_user_namespace(pod: &PodView<'_>) -> Option<Violation> {
    if pod.in_user_namespace() {
        None
    } else {
        run_as_user(pod)
    }
}
