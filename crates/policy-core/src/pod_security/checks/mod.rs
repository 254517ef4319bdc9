//! The Pod Security checks: one per upstream check ID, each with the revisions upstream defines
//! for successive policy versions, reporting field errors the way Kyverno's fork of
//! `k8s.io/pod-security-admission` does.

mod host;
mod privilege;
mod profiles;
mod users;
mod volumes;

use kyverno_api::kyverno::v1::validate::PodSecurityLevel;

use super::field::{FieldError, push_go_quoted};
use super::pod::PodView;
use super::{CheckFailure, PolicyVersion};

/// The level a check belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CheckLevel {
    /// Evaluated for baseline and stricter levels.
    Baseline,
    /// Evaluated for the restricted level only.
    Restricted,
}

/// What a failing check reports.
pub(crate) struct Violation {
    /// The short reason, e.g. `privileged`.
    pub(crate) reason: String,
    /// The longer explanation naming containers and values.
    pub(crate) detail: String,
    /// The fields at fault.
    pub(crate) errors: Vec<FieldError>,
}

/// One revision of a check.
struct Revision {
    /// The first policy version (`v1.<minor>`) the revision applies to.
    since_minor: u32,
    /// Checks the pod; `None` when it passes.
    check: fn(&PodView<'_>) -> Option<Violation>,
}

/// A check with its revisions, oldest first.
struct Check {
    id: &'static str,
    level: CheckLevel,
    revisions: &'static [Revision],
}

/// Shorthand for a revision.
const fn since(since_minor: u32, check: fn(&PodView<'_>) -> Option<Violation>) -> Revision {
    Revision { since_minor, check }
}

/// Every check, in upstream's registration order (its source files in name order), which is the
/// order of Kyverno's results.
static CHECKS: &[Check] = &[
    Check {
        id: "allowPrivilegeEscalation",
        level: CheckLevel::Restricted,
        revisions: &[
            since(8, privilege::allow_privilege_escalation),
            since(25, privilege::allow_privilege_escalation_unless_windows),
        ],
    },
    Check {
        id: "appArmorProfile",
        level: CheckLevel::Baseline,
        revisions: &[since(0, profiles::app_armor)],
    },
    Check {
        id: "capabilities_baseline",
        level: CheckLevel::Baseline,
        revisions: &[since(0, privilege::capabilities_baseline)],
    },
    Check {
        id: "capabilities_restricted",
        level: CheckLevel::Restricted,
        revisions: &[
            since(22, privilege::capabilities_restricted),
            since(25, privilege::capabilities_restricted_unless_windows),
        ],
    },
    Check {
        id: "hostNamespaces",
        level: CheckLevel::Baseline,
        revisions: &[since(0, host::host_namespaces)],
    },
    Check {
        id: "hostPathVolumes",
        level: CheckLevel::Baseline,
        revisions: &[since(0, volumes::host_path_volumes)],
    },
    Check {
        id: "hostPorts",
        level: CheckLevel::Baseline,
        revisions: &[since(0, host::host_ports)],
    },
    Check {
        id: "hostProbesAndHostLifecycle",
        level: CheckLevel::Baseline,
        revisions: &[since(34, host::host_probes_and_lifecycle)],
    },
    Check {
        id: "privileged",
        level: CheckLevel::Baseline,
        revisions: &[since(0, privilege::privileged)],
    },
    Check {
        id: "procMount",
        level: CheckLevel::Baseline,
        revisions: &[
            since(0, privilege::proc_mount),
            since(35, privilege::proc_mount_unless_user_namespace),
        ],
    },
    Check {
        id: "procMount_restricted",
        level: CheckLevel::Restricted,
        revisions: &[since(0, privilege::proc_mount)],
    },
    Check {
        id: "restrictedVolumes",
        level: CheckLevel::Restricted,
        revisions: &[since(0, volumes::restricted_volumes)],
    },
    Check {
        id: "runAsNonRoot",
        level: CheckLevel::Restricted,
        revisions: &[
            since(0, users::run_as_non_root),
            since(35, users::run_as_non_root_unless_user_namespace),
        ],
    },
    Check {
        id: "runAsUser",
        level: CheckLevel::Restricted,
        revisions: &[
            since(23, users::run_as_user),
            since(35, users::run_as_user_unless_user_namespace),
        ],
    },
    Check {
        id: "seLinuxOptions",
        level: CheckLevel::Baseline,
        revisions: &[
            since(0, profiles::se_linux_options),
            since(31, profiles::se_linux_options_with_engine_type),
        ],
    },
    Check {
        id: "seccompProfile_baseline",
        level: CheckLevel::Baseline,
        revisions: &[
            since(0, profiles::seccomp_annotations),
            since(19, profiles::seccomp_baseline),
        ],
    },
    Check {
        id: "seccompProfile_restricted",
        level: CheckLevel::Restricted,
        revisions: &[
            since(19, profiles::seccomp_restricted),
            since(25, profiles::seccomp_restricted_unless_windows),
        ],
    },
    Check {
        id: "sysctls",
        level: CheckLevel::Baseline,
        revisions: &[
            since(0, |pod| volumes::sysctls(pod, 0)),
            since(27, |pod| volumes::sysctls(pod, 27)),
            since(29, |pod| volumes::sysctls(pod, 29)),
            since(32, |pod| volumes::sysctls(pod, 32)),
        ],
    },
    Check {
        id: "windowsHostProcess",
        level: CheckLevel::Baseline,
        revisions: &[since(0, host::windows_host_process)],
    },
];

/// Runs the checks of `level` at `version` on `pod`, as Kyverno does: `baseline` runs the baseline
/// checks and any other level (even `privileged`) runs them all; `latest` runs the newest revision
/// of each check, while a pinned version runs *every* revision up to it, each failing revision
/// reporting its own failure.
pub(crate) fn run(
    pod: &PodView<'_>,
    level: Option<PodSecurityLevel>,
    version: PolicyVersion,
) -> Vec<CheckFailure> {
    run_matching(pod, level, version, |_| true)
}

/// Like [`run`], limited to the checks with the given IDs.
pub(crate) fn run_only(
    pod: &PodView<'_>,
    level: Option<PodSecurityLevel>,
    version: PolicyVersion,
    check_ids: &[&str],
) -> Vec<CheckFailure> {
    run_matching(pod, level, version, |id| check_ids.contains(&id))
}

/// Runs the checks of `level` at `version` whose ID `selected` accepts.
fn run_matching(
    pod: &PodView<'_>,
    level: Option<PodSecurityLevel>,
    version: PolicyVersion,
    selected: impl Fn(&str) -> bool,
) -> Vec<CheckFailure> {
    let mut failures = Vec::new();
    for check in CHECKS {
        if level == Some(PodSecurityLevel::Baseline) && check.level != CheckLevel::Baseline {
            continue;
        }
        if !selected(check.id) {
            continue;
        }
        let mut report = |revision: &Revision| {
            if let Some(violation) = (revision.check)(pod) {
                failures.push(CheckFailure {
                    id: check.id,
                    reason: violation.reason,
                    detail: violation.detail,
                    errors: violation.errors,
                });
            }
        };
        match version {
            PolicyVersion::Latest => {
                if let Some(newest) = check.revisions.last() {
                    report(newest);
                }
            }
            PolicyVersion::Minor(minor) => check
                .revisions
                .iter()
                .filter(|revision| revision.since_minor <= minor)
                .for_each(report),
        }
    }
    failures
}

/// Chooses between the singular and plural form by `count`.
fn pluralize(singular: &'static str, plural: &'static str, count: usize) -> &'static str {
    if count == 1 { singular } else { plural }
}

/// Quotes each item as Go's `%q` does and joins them with `, `.
fn join_quote<'s>(items: impl IntoIterator<Item = &'s str>) -> String {
    let mut out = String::new();
    for (position, item) in items.into_iter().enumerate() {
        if position > 0 {
            out.push_str(", ");
        }
        push_go_quoted(item, &mut out);
    }
    out
}

/// `container "a"` or `containers "a", "b"`.
fn containers_phrase(names: &[&str]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names.iter().copied())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(join_quote(["a", "b\"c"]), r#""a", "b\"c""#);
        assert_eq!(join_quote(["x\ny"]), r#""x\ny""#);
        assert_eq!(containers_phrase(&["a"]), r#"container "a""#);
        assert_eq!(containers_phrase(&["a", "b"]), r#"containers "a", "b""#);
    }

    #[test]
    fn every_check_belongs_to_a_control() {
        for check in CHECKS {
            assert_ne!(
                crate::pod_security::controls::name_of_check(check.id),
                "",
                "{}",
                check.id
            );
        }
    }

    #[test]
    fn registry_is_in_upstream_order_with_increasing_revisions() {
        let ids: Vec<_> = CHECKS.iter().map(|check| check.id).collect();
        // Upstream registers checks in the byte order of their file names, which the IDs share.
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted);
        for check in CHECKS {
            assert!(
                check
                    .revisions
                    .windows(2)
                    .all(|pair| pair[0].since_minor < pair[1].since_minor)
            );
        }
    }
}
