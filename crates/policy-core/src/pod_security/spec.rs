//! Load-time checks of a `podSecurity` declaration and of a PolicyException's `podSecurity`
//! entries, with Kyverno's messages (Kubernetes field errors).

use std::fmt;

use kyverno_api::kyverno::v1::validate::{PodSecurity, PodSecurityLevel, PodSecurityStandard};

use super::PolicyVersion;
use super::controls::{self, CONTROLS, Control, Scope};
use super::field::push_go_quoted;

/// How a declaration field is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecErrorKind {
    /// The field holds a value that is not valid here.
    Invalid {
        /// The offending value.
        value: String,
    },
    /// The field must not be used this way.
    Forbidden,
    /// The field holds a value outside its allowed set.
    NotSupported {
        /// The offending value.
        value: String,
    },
}

/// A problem with a podSecurity declaration; displays as Kubernetes renders a field error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The path of the offending field, e.g. `spec.rules[0].podSecurity.exclude[1].controlName`.
    pub field: String,
    /// How it is wrong.
    pub kind: SpecErrorKind,
    /// The explanation.
    pub detail: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut body = String::new();
        match &self.kind {
            SpecErrorKind::Invalid { value } => {
                body.push_str("Invalid value: ");
                push_go_quoted(value, &mut body);
            }
            SpecErrorKind::Forbidden => body.push_str("Forbidden"),
            SpecErrorKind::NotSupported { value } => {
                body.push_str("Unsupported value: ");
                push_go_quoted(value, &mut body);
            }
        }
        write!(f, "{}: {body}: {}", self.field, self.detail)
    }
}

impl std::error::Error for SpecError {}

/// Checks a rule's `podSecurity` found at `path`: the version is `latest` or `v1.<minor>`, every
/// excluded control exists, lists images exactly when its fields are per container (required for
/// container-level controls, forbidden for pod-level ones), and belongs to the rule's level.
///
/// Kyverno itself reports the exclusion errors under `spec.rules[i].podSecurity` (without
/// `validate`); the caller chooses the path.
pub fn check_spec(pod_security: &PodSecurity, path: &str) -> Vec<SpecError> {
    let mut errors = Vec::new();
    if let Some(version) = &pod_security.version
        && let Err(error) = PolicyVersion::parse(version)
    {
        errors.push(SpecError {
            field: format!("{path}.version"),
            kind: SpecErrorKind::Invalid {
                value: version.clone(),
            },
            detail: error.to_string(),
        });
    }
    for (index, exclude) in pod_security.exclude.iter().enumerate() {
        let field = format!("{path}.exclude[{index}].controlName");
        let Some(control) = known_control(exclude, &field, &mut errors) else {
            continue;
        };
        check_images(control, exclude, &field, &mut errors);
        if pod_security.level == Some(PodSecurityLevel::Baseline) && control.restricted_only {
            errors.push(SpecError {
                field,
                kind: SpecErrorKind::Invalid {
                    value: exclude.control_name.clone(),
                },
                detail: "Invalid control name defined at the given level".to_owned(),
            });
        }
    }
    errors
}

/// Checks one `podSecurity` entry of a PolicyException found at `path`: the control exists and
/// lists images exactly when its fields are per container, and `restrictedField` and `values`
/// come together.
pub fn check_exception_entry(entry: &PodSecurityStandard, path: &str) -> Vec<SpecError> {
    let mut errors = Vec::new();
    let field = format!("{path}.controlName");
    if let Some(control) = known_control(entry, &field, &mut errors) {
        check_images(control, entry, &field, &mut errors);
    }
    let restricted_field_set = entry
        .restricted_field
        .as_deref()
        .is_some_and(|f| !f.is_empty());
    if restricted_field_set && entry.values.is_empty() {
        errors.push(SpecError {
            field: format!("{path}.values"),
            kind: SpecErrorKind::Forbidden,
            detail: "values is required".to_owned(),
        });
    }
    if !restricted_field_set && !entry.values.is_empty() {
        errors.push(SpecError {
            field: format!("{path}.restrictedField"),
            kind: SpecErrorKind::Forbidden,
            detail: "restrictedField is required".to_owned(),
        });
    }
    errors
}

/// The control `exclude` names, or an error at `field` when there is none by that name.
fn known_control(
    exclude: &PodSecurityStandard,
    field: &str,
    errors: &mut Vec<SpecError>,
) -> Option<&'static Control> {
    let control = controls::find(&exclude.control_name);
    if control.is_none() {
        let mut supported = String::from("supported values: ");
        for (position, known) in CONTROLS.iter().enumerate() {
            if position > 0 {
                supported.push_str(", ");
            }
            push_go_quoted(known.name, &mut supported);
        }
        errors.push(SpecError {
            field: field.to_owned(),
            kind: SpecErrorKind::NotSupported {
                value: exclude.control_name.clone(),
            },
            detail: supported,
        });
    }
    control
}

/// Reports at `field` images missing for a container-level control or listed for a pod-level one.
fn check_images(
    control: &Control,
    exclude: &PodSecurityStandard,
    field: &str,
    errors: &mut Vec<SpecError>,
) {
    let detail = match control.scope {
        Scope::Container if exclude.images.is_empty() => {
            "exclude.images must be specified for the container level control"
        }
        Scope::Pod if !exclude.images.is_empty() => {
            "exclude.images must not be specified for the pod level control"
        }
        _ => return,
    };
    errors.push(SpecError {
        field: field.to_owned(),
        kind: SpecErrorKind::Invalid {
            value: exclude.control_name.clone(),
        },
        detail: detail.to_owned(),
    });
}
