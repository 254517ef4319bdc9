//! The Pod Security Standards controls a policy names in `exclude[].controlName`, with the
//! upstream checks each stands for (Kyverno's `PSS_control_name_to_ids`) and where it applies.

/// Where a control's fields live, which decides whether an exclusion must or must not list images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Pod-level fields only: exclusions must not list images.
    Pod,
    /// Container-level fields only: exclusions must list images.
    Container,
    /// Both: images are optional.
    Both,
}

/// One control.
#[derive(Debug)]
pub(crate) struct Control {
    /// The name as in the Pod Security Standards.
    pub(crate) name: &'static str,
    /// The upstream check IDs the control stands for.
    pub(crate) check_ids: &'static [&'static str],
    /// Where its fields live.
    pub(crate) scope: Scope,
    /// Whether only the restricted level has it (so it cannot be excluded from baseline).
    pub(crate) restricted_only: bool,
}

/// Shorthand for a table row.
const fn control(
    name: &'static str,
    check_ids: &'static [&'static str],
    scope: Scope,
    restricted_only: bool,
) -> Control {
    Control {
        name,
        check_ids,
        scope,
        restricted_only,
    }
}

/// Every control Kyverno knows.
pub(crate) static CONTROLS: [Control; 16] = [
    control("HostProcess", &["windowsHostProcess"], Scope::Both, false),
    control("Host Namespaces", &["hostNamespaces"], Scope::Pod, false),
    control(
        "Privileged Containers",
        &["privileged"],
        Scope::Container,
        false,
    ),
    control(
        "Capabilities",
        &["capabilities_baseline", "capabilities_restricted"],
        Scope::Container,
        false,
    ),
    control("HostPath Volumes", &["hostPathVolumes"], Scope::Pod, false),
    control("Host Ports", &["hostPorts"], Scope::Container, false),
    control(
        "Host Probes / Lifecycle Hooks",
        &["hostProbesAndHostLifecycle"],
        Scope::Container,
        false,
    ),
    control("AppArmor", &["appArmorProfile"], Scope::Both, false),
    control("SELinux", &["seLinuxOptions"], Scope::Both, false),
    control(
        "/proc Mount Type",
        &["procMount", "procMount_restricted"],
        Scope::Container,
        false,
    ),
    control(
        "Seccomp",
        &["seccompProfile_baseline", "seccompProfile_restricted"],
        Scope::Both,
        false,
    ),
    control("Sysctls", &["sysctls"], Scope::Pod, false),
    control("Volume Types", &["restrictedVolumes"], Scope::Pod, true),
    control(
        "Privilege Escalation",
        &["allowPrivilegeEscalation"],
        Scope::Container,
        true,
    ),
    control("Running as Non-root", &["runAsNonRoot"], Scope::Both, true),
    control(
        "Running as Non-root user",
        &["runAsUser"],
        Scope::Both,
        true,
    ),
];

/// The control named `name`.
pub(crate) fn find(name: &str) -> Option<&'static Control> {
    CONTROLS.iter().find(|control| control.name == name)
}

/// The name of the control check `check_id` belongs to (empty when none does).
pub(crate) fn name_of_check(check_id: &str) -> &'static str {
    CONTROLS
        .iter()
        .find(|control| control.check_ids.contains(&check_id))
        .map_or("", |control| control.name)
}
