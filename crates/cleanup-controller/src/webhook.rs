//! The validating webhook of cleanup policies, served by every replica on `/validate` (as
//! upstream's cleanup controller): a CleanupPolicy or ClusterCleanupPolicy is refused when its
//! schedule is not a standard cron expression or its match/exclude blocks, context entries or
//! conditions are invalid, each problem named by its field path.
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kyverno_api::kyverno::v2::cleanup_policy::Spec;
use kyverno_policy_core::policy_check::check_cleanup_policy;
use kyverno_runtime::admission_review::{AdmissionResponse, AdmissionReview};
use serde_json::Value;

use crate::schedule::Schedule;

/// The path the webhook is served on.
pub const VALIDATE_PATH: &str = "/validate";

/// Whether the replica is ready to serve (its serving certificate is loaded).
pub type Readiness = Arc<dyn Fn() -> bool + Send + Sync>;

/// The routes: `/validate`, `/health/liveness` and `/health/readiness`.
pub fn router(ready: Readiness) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate))
        .route("/health/liveness", get(|| async { StatusCode::OK }))
        .route(
            "/health/readiness",
            get(|State(ready): State<Readiness>| async move {
                if ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        )
        .with_state(ready)
}

async fn validate(body: Bytes) -> Response {
    let request = match AdmissionReview::parse(&body) {
        Ok(request) => request,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    let response = match request.object.as_ref() {
        Some(object) if request.operation != "DELETE" => {
            let namespaced = request.kind.kind == "CleanupPolicy";
            match check(object, namespaced) {
                Ok(()) => AdmissionResponse::allow(&request.uid),
                Err(message) => AdmissionResponse::deny(&request.uid, message),
            }
        }
        _ => AdmissionResponse::allow(&request.uid),
    };
    axum::Json(response.into_review()).into_response()
}

/// Checks a cleanup policy (`namespaced` for a CleanupPolicy); the problems as upstream
/// aggregates them: one alone, or several as `[first, second]`.
pub fn check(object: &Value, namespaced: bool) -> Result<(), String> {
    let problems = problems(object, namespaced);
    match problems.as_slice() {
        [] => Ok(()),
        [one] => Err(one.clone()),
        several => Err(format!("[{}]", several.join(", "))),
    }
}

fn problems(object: &Value, namespaced: bool) -> Vec<String> {
    let spec_json = object.get("spec").cloned().unwrap_or(Value::Null);
    let spec: Spec = match serde_path_to_error::deserialize(spec_json) {
        Ok(spec) => spec,
        Err(error) => {
            let path = error.path().to_string();
            let path = if path == "." {
                "spec".to_owned()
            } else {
                format!("spec.{path}")
            };
            return vec![format!("{path}: Invalid value: {}", error.into_inner())];
        }
    };
    let mut problems = Vec::new();
    if Schedule::parse(&spec.schedule).is_err() {
        problems.push(format!(
            "spec.schedule: Invalid value: {:?}: schedule spec in the cleanupPolicy is not in proper cron format",
            spec.schedule
        ));
    }
    problems.extend(
        check_cleanup_policy(namespaced, &spec)
            .into_iter()
            .map(|issue| issue.to_string()),
    );
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(spec: Value) -> Value {
        json!({"apiVersion": "kyverno.io/v2", "kind": "ClusterCleanupPolicy",
            "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn a_valid_policy_is_admitted() {
        let valid = policy(json!({
            "schedule": "*/5 * * * *",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "conditions": {"all": [{"key": "{{ target.metadata.name }}", "operator": "Equals", "value": "x"}]}
        }));
        assert_eq!(check(&valid, false), Ok(()));
    }

    #[test]
    fn problems_are_named_by_their_field_path() {
        let bad_schedule = policy(json!({
            "schedule": "every minute",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}
        }));
        assert_eq!(
            check(&bad_schedule, false),
            Err("spec.schedule: Invalid value: \"every minute\": schedule spec in the cleanupPolicy is not in proper cron format".to_owned())
        );
        let bad_operator = policy(json!({
            "schedule": "* * * * *",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "conditions": {"any": [{"key": "a", "operator": "Sounds", "value": "b"}]}
        }));
        let message = check(&bad_operator, false).expect_err("an unknown operator");
        assert!(
            message.starts_with(
                "spec.conditions.any[0].operator: Invalid value: unknown variant `Sounds`"
            ),
            "{message}"
        );
        let two = policy(json!({
            "schedule": "61 * * * *",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "conditions": {"all": [{"key": "a", "value": "b"}]}
        }));
        let message = check(&two, false).expect_err("two problems");
        assert!(message.starts_with("[spec.schedule: "), "{message}");
        assert!(
            message.contains(", spec.conditions.all[0].operator: "),
            "{message}"
        );
    }
}
