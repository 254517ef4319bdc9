//! `validate.podSecurity`: the Kubernetes Pod Security Standards, checked as Kyverno checks them.
//!
//! Kyverno runs the checks of Kubernetes' `pod-security-admission` (its own fork, which also
//! reports the offending fields) on the pod of a Pod, of a pod template (Deployment, DaemonSet,
//! StatefulSet, ReplicaSet, ReplicationController, Job) or of a CronJob's job template, then
//! removes what the rule's `exclude` entries (and any PolicyException's `podSecurity` entries)
//! exempt. Upstream behaviours kept on purpose:
//!
//! - `level: baseline` runs the baseline checks; every other level, `privileged` included, runs
//!   all checks.
//! - `version: latest` (or unset) runs the newest revision of each check; a pinned version runs
//!   *every* revision up to it, so a check may fail once per revision (e.g. a sysctl allowed
//!   since v1.29 still fails the v1.0 and v1.27 revisions at `v1.29`).
//! - The violation message lists, per failing check, its reason and field errors, with paths
//!   rebased onto the resource by substring replacement.

mod checks;
mod controls;
mod exclusion;
mod field;
mod pod;
mod spec;

use kyverno_api::kyverno::v1::validate::{PodSecurity, PodSecurityLevel, PodSecurityStandard};
use serde_json::Value;

pub use field::{BadValue, FieldError, FieldErrorKind};
pub use spec::{SpecError, SpecErrorKind, check_exception_entry, check_spec};

use pod::{PodView, TemplateKind};

/// Why a podSecurity rule cannot be evaluated on a resource (Kyverno reports the rule as an
/// error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PodSecurityError {
    /// The resource (of the given kind) holds no pod. Kyverno's rule error reads
    /// `Error while getting new resource: could not find correct resource type`.
    #[error("could not find correct resource type")]
    UnsupportedKind(String),
    /// The version (given) is neither `latest` nor `v1.<minor>`. Kyverno's rule error reads
    /// `failed to parse pod security api version: must be "latest" or "v1.x"`.
    #[error(r#"must be "latest" or "v1.x""#)]
    InvalidVersion(String),
}

/// The Pod Security Standards version a rule checks against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyVersion {
    /// The newest revision of every check.
    Latest,
    /// `v1.<minor>`.
    Minor(u32),
}

impl PolicyVersion {
    /// Parses a rule's `version`: empty or `latest`, or `v1.<minor>` without leading zeros.
    pub fn parse(version: &str) -> Result<Self, PodSecurityError> {
        if version.is_empty() || version == "latest" {
            return Ok(PolicyVersion::Latest);
        }
        version
            .strip_prefix("v1.")
            .filter(|minor| {
                !minor.is_empty()
                    && minor.bytes().all(|byte| byte.is_ascii_digit())
                    && (*minor == "0" || !minor.starts_with('0'))
            })
            .and_then(|minor| minor.parse().ok())
            .map(PolicyVersion::Minor)
            .ok_or_else(|| PodSecurityError::InvalidVersion(version.to_owned()))
    }
}

/// One failing check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    /// The upstream check ID, e.g. `allowPrivilegeEscalation` or `capabilities_restricted`.
    pub id: &'static str,
    /// The short reason, e.g. `allowPrivilegeEscalation != false`.
    pub reason: String,
    /// The explanation naming containers and values, e.g.
    /// `container "nginx" must set securityContext.allowPrivilegeEscalation=false`.
    pub detail: String,
    /// The offending fields, with paths within the pod (see [`PssOutcome::resource_field`]).
    pub errors: Vec<FieldError>,
}

impl CheckFailure {
    /// The Pod Security Standards control the check implements, e.g. `Privilege Escalation`.
    pub fn control_name(&self) -> &'static str {
        controls::name_of_check(self.id)
    }
}

/// The result of a podSecurity rule on one resource.
#[derive(Clone, Debug)]
pub struct PssOutcome<'a> {
    level: Option<PodSecurityLevel>,
    version: PolicyVersion,
    version_text: String,
    template_kind: TemplateKind,
    pod: PodView<'a>,
    failures: Vec<CheckFailure>,
}

/// Checks the pod of `resource` against `pod_security`, applying its `exclude` entries.
pub fn evaluate<'a>(
    pod_security: &PodSecurity,
    resource: &'a Value,
) -> Result<PssOutcome<'a>, PodSecurityError> {
    let (template_kind, pod) = pod::pod_of(resource)?;
    let version_text = pod_security.version.clone().unwrap_or_default();
    let version = PolicyVersion::parse(&version_text)?;
    let level = pod_security.level;
    let mut failures = checks::run(&pod, level, version);
    if !pod_security.exclude.is_empty() {
        exclusion::apply(&mut failures, &pod_security.exclude, &pod, level, version);
    }
    Ok(PssOutcome {
        level,
        version,
        version_text,
        template_kind,
        pod,
        failures,
    })
}

impl PssOutcome<'_> {
    /// Whether the pod passes (no failure left).
    pub fn is_allowed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The failing checks, in upstream's check order.
    pub fn failures(&self) -> &[CheckFailure] {
        &self.failures
    }

    /// Applies further exclusions, e.g. the `podSecurity` entries of the PolicyExceptions that
    /// match the resource (Kyverno skips the rule when nothing is left).
    pub fn apply_exclusions(&mut self, excludes: &[PodSecurityStandard]) {
        exclusion::apply(
            &mut self.failures,
            excludes,
            &self.pod,
            self.level,
            self.version,
        );
    }

    /// A field error's path within the resource, as Kyverno's messages spell it.
    pub fn resource_field(&self, error: &FieldError) -> String {
        self.template_kind.resource_field(&error.field)
    }

    /// Kyverno's message for a failing rule named `rule_name`, e.g. ``Validation rule 'r'
    /// failed. It violates PodSecurity "restricted:latest": (Forbidden reason:
    /// allowPrivilegeEscalation != false, field error list: [spec.containers[0]...])``.
    pub fn violation_message(&self, rule_name: &str) -> String {
        let level = match self.level {
            Some(PodSecurityLevel::Privileged) => "privileged",
            Some(PodSecurityLevel::Baseline) => "baseline",
            Some(PodSecurityLevel::Restricted) => "restricted",
            None => "",
        };
        let mut message = format!(
            r#"Validation rule '{rule_name}' failed. It violates PodSecurity "{level}:{}": "#,
            self.version_text
        );
        for failure in &self.failures {
            message.push_str("(Forbidden reason: ");
            message.push_str(&failure.reason);
            message.push_str(", field error list: [");
            for (position, error) in failure.errors.iter().enumerate() {
                if position > 0 {
                    message.push_str(", ");
                }
                error.write_for_message(&self.resource_field(error), &mut message);
            }
            message.push_str("])");
        }
        message
    }
}

#[cfg(test)]
mod tests;
