//! `admission.k8s.io/v1` AdmissionReview: the request the API server sends and the response it
//! expects.
use kyverno_policy_core::request::AdmissionUserInfo;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An AdmissionReview as received.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// `admission.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `AdmissionReview`.
    #[serde(default)]
    pub kind: String,
    /// The request.
    pub request: Option<AdmissionRequest>,
}

/// Why an AdmissionReview cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON of an AdmissionReview.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The review is not `admission.k8s.io/v1`.
    #[error("unsupported AdmissionReview version {0:?}: admission.k8s.io/v1 is expected")]
    Version(String),
    /// The review has no request.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

impl AdmissionReview {
    /// Parses a request body: a `v1` AdmissionReview with a request.
    pub fn parse(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
        let review: Self = serde_json::from_slice(body)?;
        if review.api_version != "admission.k8s.io/v1" || review.kind != "AdmissionReview" {
            return Err(ReviewError::Version(format!(
                "{}/{}",
                review.api_version, review.kind
            )));
        }
        review.request.ok_or(ReviewError::NoRequest)
    }
}

/// Group, version and kind as admission requests write them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RequestKind {
    /// API group, empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// Group, version and resource as admission requests write them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct RequestResource {
    /// API group, empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Resource (plural name).
    #[serde(default)]
    pub resource: String,
}

/// The request of an AdmissionReview (the fields the controller reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Identifies the request; echoed in the response.
    pub uid: String,
    /// The kind of the object.
    pub kind: RequestKind,
    /// The resource requested.
    #[serde(default)]
    pub resource: RequestResource,
    /// The subresource requested, if any.
    #[serde(default)]
    pub sub_resource: String,
    /// The object's name.
    #[serde(default)]
    pub name: String,
    /// The object's namespace.
    #[serde(default)]
    pub namespace: String,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    /// Who sent the request.
    #[serde(default)]
    pub user_info: AdmissionUserInfo,
    /// The new object (absent on DELETE).
    #[serde(default)]
    pub object: Option<Value>,
    /// The old object (UPDATE and DELETE).
    #[serde(default)]
    pub old_object: Option<Value>,
    /// Whether the request is a dry run.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// The status of a denied request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    /// `Failure`.
    pub status: &'static str,
    /// Why the request is denied.
    pub message: String,
}

/// The response of an AdmissionReview.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why it is denied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// A base64-encoded RFC 6902 patch of the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when there is a patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Warnings for the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl AdmissionResponse {
    /// Admits the request.
    pub fn allow(uid: &str) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: true,
            ..Self::default()
        }
    }

    /// Denies the request with `message`.
    pub fn deny(uid: &str, message: String) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: false,
            status: Some(Status {
                status: "Failure",
                message,
            }),
            ..Self::default()
        }
    }

    /// Adds warnings.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }

    /// The AdmissionReview that carries this response.
    pub fn into_review(self) -> Value {
        serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": self,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_a_review_and_rejects_malformed_ones() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1",
            "kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
            "name":"p","namespace":"default","operation":"CREATE","userInfo":{"username":"alice","groups":["dev"]},
            "object":{"apiVersion":"v1","kind":"Pod"}}}"#;
        let request = AdmissionReview::parse(body).unwrap();
        assert_eq!(request.uid, "u1");
        assert_eq!(request.kind.kind, "Pod");
        assert_eq!(request.user_info.groups, ["dev"]);
        assert!(matches!(
            AdmissionReview::parse(b"{"),
            Err(ReviewError::Malformed(_))
        ));
        assert!(matches!(
            AdmissionReview::parse(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#),
            Err(ReviewError::Version(_))
        ));
        assert!(matches!(
            AdmissionReview::parse(
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#
            ),
            Err(ReviewError::NoRequest)
        ));
    }

    #[test]
    fn responses_serialize_as_the_api_server_expects() {
        let review = AdmissionResponse::deny("u", "no".into()).into_review();
        assert_eq!(
            review,
            serde_json::json!({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",
                "response":{"uid":"u","allowed":false,"status":{"status":"Failure","message":"no"}}})
        );
        let review = AdmissionResponse::allow("u")
            .with_warnings(vec!["w".into()])
            .into_review();
        assert_eq!(
            review["response"],
            serde_json::json!({"uid":"u","allowed":true,"warnings":["w"]})
        );
    }
}
