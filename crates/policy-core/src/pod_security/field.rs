//! Field errors as the Pod Security checks report them: which field of the pod is wrong, how, and
//! with which value (Kubernetes' `field.Error`, as Kyverno's fork of pod-security-admission fills it).

use std::fmt;

/// How a field breaks a control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// The field must be set and is not (`Required value`).
    Required,
    /// The field holds a value the control forbids (`Forbidden`).
    Forbidden,
}

/// The offending value recorded with a field error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// No value (upstream records an empty string).
    Empty,
    /// A string value; upstream also records an unset boolean as the text `nil`.
    Text(String),
    /// A boolean value.
    Bool(bool),
    /// An integer value (ports, user IDs).
    Int(i64),
    /// A list of strings (capabilities).
    List(Vec<String>),
}

impl BadValue {
    /// A string value, or [`BadValue::Empty`] for the empty string (upstream cannot tell them apart).
    pub fn text(value: &str) -> Self {
        if value.is_empty() {
            BadValue::Empty
        } else {
            BadValue::Text(value.to_owned())
        }
    }

    /// Reports whether `predicate` holds for every value as Kyverno spells it when comparing with
    /// an exclusion's `values` (true when there is no value at all).
    pub fn all_as_text(&self, mut predicate: impl FnMut(&str) -> bool) -> bool {
        match self {
            BadValue::Empty => true,
            BadValue::Text(text) => predicate(text),
            BadValue::Bool(flag) => predicate(if *flag { "true" } else { "false" }),
            BadValue::Int(number) => predicate(&number.to_string()),
            BadValue::List(items) => items.iter().all(|item| predicate(item)),
        }
    }
}

/// Renders the value as Go's `%+v` does.
impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Empty => Ok(()),
            BadValue::Text(text) => f.write_str(text),
            BadValue::Bool(flag) => write!(f, "{flag}"),
            BadValue::Int(number) => write!(f, "{number}"),
            BadValue::List(items) => write!(f, "[{}]", items.join(" ")),
        }
    }
}

/// One field of the pod that breaks a control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// How the field breaks the control.
    pub kind: FieldErrorKind,
    /// The field's path within the pod, e.g. `spec.containers[0].securityContext.privileged`.
    pub field: String,
    /// The offending value.
    pub bad_value: BadValue,
}

impl FieldError {
    /// A field that must be set.
    pub(crate) fn required(field: String) -> Self {
        FieldError {
            kind: FieldErrorKind::Required,
            field,
            bad_value: BadValue::Empty,
        }
    }

    /// A field set to a forbidden value.
    pub(crate) fn forbidden(field: String, bad_value: BadValue) -> Self {
        FieldError {
            kind: FieldErrorKind::Forbidden,
            field,
            bad_value,
        }
    }

    /// Writes the error as Kyverno's violation message lists it, with `field` standing for the
    /// error's own path (the caller may have rebased it onto the resource).
    pub(crate) fn write_for_message(&self, field: &str, out: &mut String) {
        use fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = match (self.kind, &self.bad_value) {
            (FieldErrorKind::Forbidden, BadValue::Empty) => write!(out, "{field}: Forbidden"),
            (FieldErrorKind::Forbidden, value) => {
                write!(out, "{field} is forbidden, forbidden values found: {value}")
            }
            (FieldErrorKind::Required, _) => write!(out, "{field}: Required value"),
        };
    }
}

/// Appends `text` double-quoted with Go's escapes for quotes, backslashes and control characters.
pub(crate) fn push_go_quoted(text: &str, out: &mut String) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            control if control.is_control() => {
                out.push_str(&format!("\\x{:02x}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(error: &FieldError) -> String {
        let mut out = String::new();
        error.write_for_message(&error.field, &mut out);
        out
    }

    #[test]
    fn renders_like_kyverno() {
        let field = "spec.containers[0].securityContext.allowPrivilegeEscalation".to_owned();
        assert_eq!(
            rendered(&FieldError::forbidden(field.clone(), BadValue::text("nil"))),
            "spec.containers[0].securityContext.allowPrivilegeEscalation is forbidden, forbidden values found: nil"
        );
        assert_eq!(
            rendered(&FieldError::required(field.clone())),
            "spec.containers[0].securityContext.allowPrivilegeEscalation: Required value"
        );
        assert_eq!(
            rendered(&FieldError::forbidden(field, BadValue::Empty)),
            "spec.containers[0].securityContext.allowPrivilegeEscalation: Forbidden"
        );
        let caps = FieldError::forbidden(
            "spec.containers[0].securityContext.capabilities.add".to_owned(),
            BadValue::List(vec!["NET_ADMIN".to_owned(), "SYS_TIME".to_owned()]),
        );
        assert!(rendered(&caps).ends_with("forbidden values found: [NET_ADMIN SYS_TIME]"));
        let port = FieldError::forbidden("x".to_owned(), BadValue::Int(80));
        assert_eq!(
            rendered(&port),
            "x is forbidden, forbidden values found: 80"
        );
    }

    #[test]
    fn values_as_text() {
        assert!(BadValue::Empty.all_as_text(|_| false));
        assert!(BadValue::Bool(true).all_as_text(|v| v == "true"));
        assert!(BadValue::Int(0).all_as_text(|v| v == "0"));
        let list = BadValue::List(vec!["A".to_owned(), "B".to_owned()]);
        assert!(list.all_as_text(|v| v == "A" || v == "B"));
        assert!(!list.all_as_text(|v| v == "A"));
        assert_eq!(BadValue::text(""), BadValue::Empty);
    }
}
