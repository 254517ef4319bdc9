//! Checks on security profiles: AppArmor, SELinux and seccomp.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Violation, containers_phrase, join_quote, pluralize};
use crate::pod_security::field::{BadValue, FieldError, push_go_quoted};
use crate::pod_security::pod::{Container, PodView, string_field};

/// The annotation prefix of the deprecated per-container AppArmor annotations.
const APP_ARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// `appArmorProfile`: profile types must be `RuntimeDefault` or `Localhost`, and AppArmor
/// annotations empty, `runtime/default` or `localhost/*`.
pub(super) fn app_armor(pod: &PodView<'_>) -> Option<Violation> {
    let allowed_type = |profile: &Value| {
        matches!(
            string_field(profile, "type"),
            "RuntimeDefault" | "Localhost"
        )
    };
    let mut setters = Vec::new();
    let mut errors = Vec::new();
    let mut bad_values = BTreeSet::new();
    if let Some(profile) = pod
        .security_field("appArmorProfile")
        .filter(|profile| !allowed_type(profile))
    {
        let profile_type = string_field(profile, "type");
        setters.push("pod".to_owned());
        bad_values.insert(profile_type);
        errors.push(FieldError::forbidden(
            "spec.securityContext.appArmorProfile.type".to_owned(),
            BadValue::text(profile_type),
        ));
    }
    let mut bad_containers = Vec::new();
    for container in pod.containers() {
        let profile = container.security_field("appArmorProfile");
        if let Some(profile) = profile.filter(|profile| !allowed_type(profile)) {
            let profile_type = string_field(profile, "type");
            bad_containers.push(container.name());
            bad_values.insert(profile_type);
            errors.push(FieldError::forbidden(
                container.path("securityContext.appArmorProfile.type"),
                BadValue::text(profile_type),
            ));
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    // Upstream walks a map here; sorting by the rendered annotation keeps the order stable.
    let mut bad_annotations: Vec<(String, FieldError)> = pod
        .annotations()
        .filter(|(key, value)| {
            key.starts_with(APP_ARMOR_ANNOTATION_PREFIX)
                && !(value.is_empty()
                    || *value == "runtime/default"
                    || value.starts_with("localhost/"))
        })
        .map(|(key, value)| {
            let mut rendered = format!("{key}=");
            push_go_quoted(value, &mut rendered);
            let error = FieldError::forbidden(
                format!("metadata.annotations[{key}]"),
                BadValue::text(value),
            );
            (rendered, error)
        })
        .collect();
    bad_annotations.sort_by(|left, right| left.0.cmp(&right.0));
    let mut bad_value_list: Vec<&str> = bad_values.into_iter().collect();
    bad_value_list.extend(
        bad_annotations
            .iter()
            .map(|(rendered, _)| rendered.as_str()),
    );
    if !bad_annotations.is_empty() {
        setters.push(pluralize("annotation", "annotations", bad_annotations.len()).to_owned());
    }
    if setters.is_empty() {
        return None;
    }
    let reason = pluralize(
        "forbidden AppArmor profile",
        "forbidden AppArmor profiles",
        bad_value_list.len(),
    )
    .to_owned();
    let detail = format!(
        "{} must not set AppArmor profile type to {}",
        setters.join(" and "),
        join_quote(bad_value_list)
    );
    errors.extend(bad_annotations.into_iter().map(|(_, error)| error));
    Some(Violation {
        reason,
        detail,
        errors,
    })
}

/// The SELinux types every version allows.
const SE_LINUX_TYPES: [&str; 4] = ["", "container_t", "container_init_t", "container_kvm_t"];

/// `seLinuxOptions` (v1.0): SELinux type must be one of the container types, user and role unset.
pub(super) fn se_linux_options(pod: &PodView<'_>) -> Option<Violation> {
    se_linux(pod, &SE_LINUX_TYPES)
}

/// `seLinuxOptions` (v1.31): as in v1.0, with `container_engine_t` allowed too.
pub(super) fn se_linux_options_with_engine_type(pod: &PodView<'_>) -> Option<Violation> {
    const TYPES: [&str; 5] = [
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ];
    se_linux(pod, &TYPES)
}

/// What the SELinux check found wrong so far.
#[derive(Default)]
struct SeLinuxFindings<'a> {
    bad_types: BTreeSet<&'a str>,
    user_set: bool,
    role_set: bool,
    errors: Vec<FieldError>,
}

impl<'a> SeLinuxFindings<'a> {
    /// Records what is wrong with `options`, found at `path` (`…seLinuxOptions`); reports whether
    /// anything is.
    fn inspect(&mut self, options: &'a Value, path: &str, allowed_types: &[&str]) -> bool {
        let mut valid = true;
        let selinux_type = string_field(options, "type");
        if !allowed_types.contains(&selinux_type) {
            valid = false;
            self.bad_types.insert(selinux_type);
            self.errors.push(FieldError::forbidden(
                format!("{path}.type"),
                BadValue::text(selinux_type),
            ));
        }
        for (field, flag) in [("user", &mut self.user_set), ("role", &mut self.role_set)] {
            let value = string_field(options, field);
            if !value.is_empty() {
                valid = false;
                *flag = true;
                self.errors.push(FieldError::forbidden(
                    format!("{path}.{field}"),
                    BadValue::text(value),
                ));
            }
        }
        valid
    }
}

/// The SELinux check with the given allowed types.
fn se_linux(pod: &PodView<'_>, allowed_types: &[&str]) -> Option<Violation> {
    let mut findings = SeLinuxFindings::default();
    let mut setters = Vec::new();
    if let Some(options) = pod.security_field("seLinuxOptions")
        && !findings.inspect(
            options,
            "spec.securityContext.seLinuxOptions",
            allowed_types,
        )
    {
        setters.push("pod".to_owned());
    }
    let mut bad_containers = Vec::new();
    for container in pod.containers() {
        if let Some(options) = container.security_field("seLinuxOptions")
            && !findings.inspect(
                options,
                &container.path("securityContext.seLinuxOptions"),
                allowed_types,
            )
        {
            bad_containers.push(container.name());
        }
    }
    if !bad_containers.is_empty() {
        setters.push(containers_phrase(&bad_containers));
    }
    if setters.is_empty() {
        return None;
    }
    let mut problems = Vec::new();
    if !findings.bad_types.is_empty() {
        problems.push(format!(
            "{} {}",
            pluralize("type", "types", findings.bad_types.len()),
            join_quote(findings.bad_types.iter().copied())
        ));
    }
    if findings.user_set {
        problems.push("user may not be set".to_owned());
    }
    if findings.role_set {
        problems.push("role may not be set".to_owned());
    }
    Some(Violation {
        reason: "seLinuxOptions".to_owned(),
        detail: format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            problems.join("; ")
        ),
        errors: findings.errors,
    })
}

/// The deprecated pod-wide seccomp annotation.
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// The prefix of the deprecated per-container seccomp annotations.
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// `seccompProfile_baseline` (v1.0): the deprecated seccomp annotations must name
/// `runtime/default`, `docker/default` or a `localhost/` profile.
pub(super) fn seccomp_annotations(pod: &PodView<'_>) -> Option<Violation> {
    let valid = |value: &str| {
        value == "runtime/default" || value == "docker/default" || value.starts_with("localhost/")
    };
    // Without annotations there is nothing to look up.
    pod.annotations().next()?;
    let container_keys = pod
        .containers()
        .map(|container| format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", container.name()));
    // Keyed by the rendered annotation, as upstream groups them (and sorts them for the detail).
    let mut bad: BTreeMap<String, Vec<FieldError>> = BTreeMap::new();
    for key in std::iter::once(SECCOMP_POD_ANNOTATION.to_owned()).chain(container_keys) {
        let Some(value) = pod.annotation(&key).filter(|value| !valid(value)) else {
            continue;
        };
        let mut rendered = format!("{key}=");
        push_go_quoted(value, &mut rendered);
        bad.entry(rendered).or_default().push(FieldError::forbidden(
            format!("metadata.annotations[{key}]"),
            BadValue::text(value),
        ));
    }
    (!bad.is_empty()).then(|| Violation {
        reason: "seccompProfile".to_owned(),
        detail: format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", bad.len()),
            bad.keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        errors: bad.into_values().flatten().collect(),
    })
}

/// The seccomp profile type's path under a container.
const SECCOMP_TYPE_FIELD: &str = "securityContext.seccompProfile.type";

/// Whether a seccomp profile type is one the standards accept.
fn valid_seccomp(profile: &Value) -> bool {
    matches!(
        string_field(profile, "type"),
        "RuntimeDefault" | "Localhost"
    )
}

/// The pod and containers that explicitly set an invalid seccomp profile type.
struct SeccompFindings<'a> {
    setters: Vec<String>,
    bad_values: BTreeSet<&'a str>,
    errors: Vec<FieldError>,
    /// Containers that set no profile at all.
    unset_containers: Vec<Container<'a>>,
    /// Whether the pod sets a valid profile.
    pod_valid: bool,
}

/// Looks at the seccomp profile types of the pod and its containers.
fn seccomp_findings<'a>(pod: &PodView<'a>) -> SeccompFindings<'a> {
    let mut findings = SeccompFindings {
        setters: Vec::new(),
        bad_values: BTreeSet::new(),
        errors: Vec::new(),
        unset_containers: Vec::new(),
        pod_valid: false,
    };
    if let Some(profile) = pod.security_field("seccompProfile") {
        if valid_seccomp(profile) {
            findings.pod_valid = true;
        } else {
            let profile_type = string_field(profile, "type");
            findings.setters.push("pod".to_owned());
            findings.bad_values.insert(profile_type);
            findings.errors.push(FieldError::forbidden(
                "spec.securityContext.seccompProfile.type".to_owned(),
                BadValue::text(profile_type),
            ));
        }
    }
    let mut bad_containers = Vec::new();
    for container in pod.containers() {
        match container.security_field("seccompProfile") {
            None => findings.unset_containers.push(container),
            Some(profile) if valid_seccomp(profile) => {}
            Some(profile) => {
                let profile_type = string_field(profile, "type");
                bad_containers.push(container.name());
                findings.bad_values.insert(profile_type);
                findings.errors.push(FieldError::forbidden(
                    container.path(SECCOMP_TYPE_FIELD),
                    BadValue::text(profile_type),
                ));
            }
        }
    }
    if !bad_containers.is_empty() {
        findings.setters.push(containers_phrase(&bad_containers));
    }
    findings
}

impl SeccompFindings<'_> {
    /// The violation for explicitly invalid profile types, if any.
    fn explicit_violation(self) -> Option<Violation> {
        (!self.setters.is_empty()).then(|| Violation {
            reason: "seccompProfile".to_owned(),
            detail: format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                self.setters.join(" and "),
                join_quote(self.bad_values.iter().copied())
            ),
            errors: self.errors,
        })
    }
}

/// `seccompProfile_baseline` (v1.19): seccomp profile types, where set, must be `RuntimeDefault`
/// or `Localhost`.
pub(super) fn seccomp_baseline(pod: &PodView<'_>) -> Option<Violation> {
    seccomp_findings(pod).explicit_violation()
}

/// `seccompProfile_restricted` (v1.19): as baseline, and a valid type must be set on the pod or
/// on every container.
pub(super) fn seccomp_restricted(pod: &PodView<'_>) -> Option<Violation> {
    let findings = seccomp_findings(pod);
    if !findings.setters.is_empty() {
        return findings.explicit_violation();
    }
    if findings.pod_valid || findings.unset_containers.is_empty() {
        return None;
    }
    let names: Vec<&str> = findings
        .unset_containers
        .iter()
        .map(Container::name)
        .collect();
    Some(Violation {
        reason: "seccompProfile".to_owned(),
        detail: format!(
            r#"pod or {} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#,
            containers_phrase(&names)
        ),
        errors: findings
            .unset_containers
            .iter()
            .map(|container| FieldError::required(container.path(SECCOMP_TYPE_FIELD)))
            .collect(),
    })
}

/// `seccompProfile_restricted` (v1.25): as in v1.19, but Windows pods pass.
pub(super) fn seccomp_restricted_unless_windows(pod: &PodView<'_>) -> Option<Violation> {
    if pod.is_windows() {
        None
    } else {
        seccomp_restricted(pod)
    }
}
