//! Errors: [`SimError`] for the library API, [`ApiError`] for `Status` responses.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// Errors of the simulator's library API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// File or socket I/O failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Generating a certificate failed.
    #[error("certificate generation failed: {0}")]
    Cert(#[from] rcgen::Error),
    /// Setting up TLS failed.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    /// A CRD document could not be read or registered.
    #[error("CRD {source_name}: {message}")]
    Crd {
        /// File or object the CRD came from.
        source_name: String,
        /// What was wrong.
        message: String,
    },
    /// Building a kubeconfig or client failed.
    #[error("kube client: {0}")]
    Kube(String),
    /// The request was rejected by the simulated API server.
    #[error("API error {}: {}", .0.code, .0.message)]
    Api(Box<ApiError>),
}

/// An API error, rendered as a Kubernetes `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: String,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, when any.
    pub details: Option<Value>,
    /// Warnings to send as `Warning` headers with the error.
    pub warnings: Vec<String>,
}

fn details(rt: &ResourceType, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": rt.plural});
    if !rt.group.is_empty() {
        d["group"] = json!(rt.group);
    }
    d
}

impl ApiError {
    /// A plain error with a code and reason.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.to_string(),
            message: message.into(),
            details: None,
            warnings: Vec::new(),
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 NotFound for an object.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound".into(),
            message: format!("{} \"{}\" not found", rt.qualified_plural(), name),
            details: Some(details(rt, name)),
            warnings: Vec::new(),
        }
    }

    /// 404 NotFound for a path nothing is served at.
    pub fn no_route(path: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound".into(),
            message: "the server could not find the requested resource".into(),
            details: Some(
                json!({"causes": [{"reason": "UnexpectedServerResponse", "message": format!("404 page not found: {path}")}]}),
            ),
            warnings: Vec::new(),
        }
    }

    /// 404 for a missing namespace.
    pub fn namespace_not_found(ns: &str) -> Self {
        Self {
            code: 404,
            reason: "NotFound".into(),
            message: format!("namespaces \"{ns}\" not found"),
            details: Some(json!({"name": ns, "kind": "namespaces"})),
            warnings: Vec::new(),
        }
    }

    /// 409 AlreadyExists.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists".into(),
            message: format!("{} \"{}\" already exists", rt.qualified_plural(), name),
            details: Some(details(rt, name)),
            warnings: Vec::new(),
        }
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict".into(),
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                rt.qualified_plural(),
                name
            ),
            details: Some(details(rt, name)),
            warnings: Vec::new(),
        }
    }

    /// 409 Conflict with a custom message.
    pub fn conflict_msg(rt: &ResourceType, name: &str, message: String) -> Self {
        Self {
            code: 409,
            reason: "Conflict".into(),
            message,
            details: Some(details(rt, name)),
            warnings: Vec::new(),
        }
    }

    /// 422 Invalid with field causes.
    pub fn invalid(rt: &ResourceType, name: &str, causes: &[(&str, String)]) -> Self {
        let text: Vec<String> = causes
            .iter()
            .map(|(field, msg)| format!("{field}: {msg}"))
            .collect();
        let message = if text.len() == 1 {
            format!("{} \"{}\" is invalid: {}", rt.kind, name, text.join(""))
        } else {
            format!("{} \"{}\" is invalid: [{}]", rt.kind, name, text.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|(field, msg)| {
                let reason = if msg.starts_with("Required value") {
                    "FieldValueRequired"
                } else if msg.starts_with("Forbidden") {
                    "FieldValueForbidden"
                } else {
                    "FieldValueInvalid"
                };
                json!({"reason": reason, "message": msg, "field": field})
            })
            .collect();
        let mut d = json!({"name": name, "kind": rt.kind, "causes": causes});
        if !rt.group.is_empty() {
            d["group"] = json!(rt.group);
        }
        Self {
            code: 422,
            reason: "Invalid".into(),
            message,
            details: Some(d),
            warnings: Vec::new(),
        }
    }

    /// 410 Gone for a too-old resourceVersion (`Expired` as the real server says).
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// The `Status` JSON body.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.reason.is_empty()
            && let Some(m) = s.as_object_mut()
        {
            m.remove("reason");
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}
