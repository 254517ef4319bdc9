//! Kyverno's podSecurity exclusions: an `exclude` entry names a control and, optionally, images
//! and a field with allowed values; failures it covers are removed field error by field error.
//!
//! For each entry, Kyverno checks a second pod: the pod itself with a single empty container
//! when the entry lists no images (pod-level exclusion), or only the containers whose image
//! matches, without any pod-level field, when it does (container-level exclusion). Every field
//! error that second pod yields for the entry's control, and that the entry's `restrictedField`
//! and `values` accept, removes one field error of the same (index-free) path from the pod's own
//! failures, for container-level exclusions only within the same-named container. A failure left
//! without field errors is gone.

use kyverno_api::kyverno::v1::validate::{PodSecurityLevel, PodSecurityStandard};
use serde_json::json;

use super::field::FieldError;
use super::pod::{ContainerKind, PodView};
use super::{CheckFailure, PolicyVersion, checks, controls};

/// Removes from `failures` what `excludes` exempts.
pub(crate) fn apply(
    failures: &mut Vec<CheckFailure>,
    excludes: &[PodSecurityStandard],
    pod: &PodView<'_>,
    level: Option<PodSecurityLevel>,
    version: PolicyVersion,
) {
    let fake_container = json!({"name": "fake"});
    for exclude in excludes {
        let container_level = !exclude.images.is_empty();
        let exclusion_pod = if container_level {
            pod.containers_matching(&exclude.images)
        } else {
            pod.with_only(&fake_container)
        };
        // Upstream keys the failures by check ID here, which also merges the failures a pinned
        // version reports once per revision: the newest revision's failure is kept.
        keep_last_failure_per_check(failures);
        let check_ids =
            controls::find(&exclude.control_name).map_or(&[][..], |control| control.check_ids);
        let exempted = checks::run_only(&exclusion_pod, level, version, check_ids);
        for exempted_failure in &exempted {
            for exempted_error in &exempted_failure.errors {
                let exempted_field = ParsedField::new(&exempted_error.field, container_level);
                if !exclude_accepts(exclude, &exempted_field.without_indexes, exempted_error) {
                    continue;
                }
                let exempted_container = exempted_field.container_name(&exclusion_pod);
                let Some(position) = failures
                    .iter()
                    .position(|failure| failure.id == exempted_failure.id)
                else {
                    continue;
                };
                let failure = &mut failures[position];
                let covered = failure.errors.iter().position(|error| {
                    let field = ParsedField::new(&error.field, container_level);
                    field.without_indexes == exempted_field.without_indexes
                        && (field.container.is_none()
                            || field.container_name(pod) == exempted_container)
                });
                if let Some(covered) = covered {
                    failure.errors.swap_remove(covered);
                }
                if failure.errors.is_empty() {
                    failures.remove(position);
                }
            }
        }
    }
}

/// Whether `exclude` covers `error`, whose path without indexes is `field`: its `restrictedField`
/// (when set) is that path, and its `values` (when set) match every offending value.
fn exclude_accepts(exclude: &PodSecurityStandard, field: &str, error: &FieldError) -> bool {
    let restricted_field = exclude.restricted_field.as_deref().unwrap_or_default();
    if !restricted_field.is_empty() && field != restricted_field {
        return false;
    }
    exclude.values.is_empty()
        || error.bad_value.all_as_text(|value| {
            exclude
                .values
                .iter()
                .any(|pattern| crate::wildcard::matches(pattern, value))
        })
}

/// Keeps one failure per check ID: the last one reported, in the place of the first.
fn keep_last_failure_per_check(failures: &mut Vec<CheckFailure>) {
    let mut kept: Vec<CheckFailure> = Vec::with_capacity(failures.len());
    for failure in failures.drain(..) {
        match kept.iter_mut().find(|existing| existing.id == failure.id) {
            Some(existing) => *existing = failure,
            None => kept.push(failure),
        }
    }
    *failures = kept;
}

/// A field path as the exclusion logic compares it.
struct ParsedField {
    /// The path with every run of digits replaced by `*`, e.g. `spec.containers[*].ports[*]`.
    without_indexes: String,
    /// For container-level exclusions, the container the path points into.
    container: Option<(ContainerKind, usize)>,
}

impl ParsedField {
    fn new(field: &str, container_level: bool) -> Self {
        let mut without_indexes = String::with_capacity(field.len());
        let mut in_digits = false;
        for character in field.chars() {
            if character.is_ascii_digit() {
                if !in_digits {
                    without_indexes.push('*');
                }
                in_digits = true;
            } else {
                without_indexes.push(character);
                in_digits = false;
            }
        }
        let container = container_level.then(|| container_of(field)).flatten();
        ParsedField {
            without_indexes,
            container,
        }
    }

    /// The name of the container the path points into within `pod` (empty when none).
    fn container_name<'p>(&self, pod: &PodView<'p>) -> &'p str {
        self.container
            .and_then(|(kind, index)| pod.container(kind, index))
            .map_or("", |container| container.name())
    }
}

/// The container a path points into, found as upstream does: the path's second word names the
/// container list and its first number is the index.
fn container_of(field: &str) -> Option<(ContainerKind, usize)> {
    let second_word = field
        .split(|character: char| !character.is_ascii_alphabetic())
        .filter(|word| !word.is_empty())
        .nth(1)?;
    let kind = ContainerKind::from_field_name(second_word)?;
    let digits_start = field.find(|character: char| character.is_ascii_digit())?;
    let digits_end = field[digits_start..]
        .find(|character: char| !character.is_ascii_digit())
        .map_or(field.len(), |end| digits_start + end);
    let index = field[digits_start..digits_end].parse().ok()?;
    Some((kind, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_like_kyverno() {
        let field = ParsedField::new("spec.initContainers[12].ports[3].hostPort", true);
        assert_eq!(
            field.without_indexes,
            "spec.initContainers[*].ports[*].hostPort"
        );
        assert_eq!(field.container, Some((ContainerKind::Init, 12)));
        let pod_level = ParsedField::new("spec.securityContext.sysctls[0].name", true);
        assert_eq!(pod_level.container, None);
        assert!(
            ParsedField::new("spec.containers[0].x", false)
                .container
                .is_none()
        );
        // Digits inside names are replaced too, as upstream's regular expression does.
        let annotation = ParsedField::new("metadata.annotations[a/app1]", false);
        assert_eq!(annotation.without_indexes, "metadata.annotations[a/app*]");
    }
}
