//! The webhook routes, served over TLS by [`kyverno_runtime::https::serve_tls`] (metrics are on
//! the [`kyverno_runtime::admin`] server).
//!
//! Evaluation runs off the async reactor (`spawn_blocking`) under a semaphore that bounds how
//! many requests evaluate at once; the others queue for a permit. A request is answered before
//! the timeout the API server gives in the URL (`?timeout=10s`, 10 s when absent): if its
//! evaluation would take longer, it is answered by its failure policy, denied on the `/…/fail`
//! paths and admitted (with a warning) on the `/…/ignore` paths.
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kyverno_api::kyverno::v1::policy::FailurePolicy;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::cel_admission::{self, CelWebhook};
use crate::evaluate::{Evaluator, Webhook};
use crate::metrics::{AdmissionLabels, Metrics};
use crate::policy_validation;
use crate::review::{AdmissionRequest, AdmissionResponse, AdmissionReview};

/// The API server's default webhook timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What answers a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// The policies (ClusterPolicies and Policies) of a resource webhook.
    Resource(Webhook),
    /// The CEL policies of a CEL webhook.
    Cel(CelWebhook),
    /// `/policyvalidate`: Kyverno's policies themselves.
    PolicyValidate,
    /// `/policymutate`: Kyverno's policies themselves.
    PolicyMutate,
    /// `/exceptionvalidate`: PolicyExceptions.
    ExceptionValidate,
}

impl Handler {
    fn answer(
        self,
        evaluator: &Evaluator,
        failure_policy: FailurePolicy,
        request: &AdmissionRequest,
    ) -> AdmissionResponse {
        match self {
            Handler::Resource(webhook) => evaluator.review(webhook, failure_policy, request),
            Handler::Cel(webhook) => {
                cel_admission::review(evaluator, webhook, failure_policy, request)
            }
            Handler::PolicyValidate => policy_validation::validate_policy(request),
            Handler::PolicyMutate => policy_validation::mutate_policy(request),
            Handler::ExceptionValidate => policy_validation::validate_exception(request),
        }
    }
}

/// Everything the handlers share.
pub struct AppState {
    /// Evaluates requests.
    pub evaluator: Arc<Evaluator>,
    /// Bounds concurrent evaluations.
    pub permits: Arc<Semaphore>,
    /// Where requests are counted.
    pub metrics: Arc<Metrics>,
    /// Largest AdmissionReview body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Whether the replica is ready to serve (certificate loaded, caches synced).
    pub ready: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// The webhook routes: `/validate/{fail,ignore}`, `/mutate/{fail,ignore}`, the CEL policies'
/// `/vpol/{fail,ignore}`, `/ivpol/validate/{fail,ignore}`, `/mpol/{fail,ignore}` and
/// `/gpol/{fail,ignore}`, Kyverno's
/// own `/policyvalidate`, `/policymutate` and `/exceptionvalidate` (failure policy `Ignore`),
/// `/health/liveness` and `/health/readiness`.
pub fn webhook_router(state: Arc<AppState>) -> Router {
    let route = |handler: Handler, failure_policy| {
        post(
            move |state: State<Arc<AppState>>,
                  query: Query<TimeoutQuery>,
                  headers: HeaderMap,
                  body: Body| {
                admit(state, query, headers, body, handler, failure_policy)
            },
        )
    };
    let both = [
        ("/validate", Handler::Resource(Webhook::Validate)),
        ("/mutate", Handler::Resource(Webhook::Mutate)),
        ("/vpol", Handler::Cel(CelWebhook::Validate)),
        ("/ivpol/validate", Handler::Cel(CelWebhook::ImageValidate)),
        ("/mpol", Handler::Cel(CelWebhook::Mutate)),
        ("/gpol", Handler::Cel(CelWebhook::Generate)),
    ];
    let mut router = Router::new();
    for (prefix, handler) in both {
        router = router
            .route(
                &format!("{prefix}/fail"),
                route(handler, FailurePolicy::Fail),
            )
            .route(
                &format!("{prefix}/ignore"),
                route(handler, FailurePolicy::Ignore),
            );
    }
    for (path, handler) in [
        ("/policyvalidate", Handler::PolicyValidate),
        ("/policymutate", Handler::PolicyMutate),
        ("/exceptionvalidate", Handler::ExceptionValidate),
    ] {
        router = router.route(path, route(handler, FailurePolicy::Ignore));
    }
    router
        .route("/health/liveness", get(|| async { StatusCode::OK }))
        .route(
            "/health/readiness",
            get(|State(state): State<Arc<AppState>>| async move {
                if (state.ready)() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }),
        )
        .with_state(state)
}

/// The `timeout` query parameter the API server adds to webhook calls.
#[derive(Debug, Default, Deserialize)]
pub struct TimeoutQuery {
    timeout: Option<String>,
}

/// Parses a Go duration as the API server writes it (`10s`, `500ms`).
fn parse_timeout(text: &str) -> Option<Duration> {
    if let Some(millis) = text.strip_suffix("ms") {
        return millis.parse().ok().map(Duration::from_millis);
    }
    text.strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map(Duration::from_secs_f64)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

async fn admit(
    State(state): State<Arc<AppState>>,
    Query(query): Query<TimeoutQuery>,
    headers: HeaderMap,
    body: Body,
    handler: Handler,
    failure_policy: FailurePolicy,
) -> Response {
    let started = Instant::now();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(';').next().map(str::trim) == Some("application/json"));
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid Content-Type: application/json is expected".to_owned(),
        );
    }
    let bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(read_error) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "the request body cannot be read or is larger than {} bytes: {read_error}",
                    state.max_body_bytes
                ),
            );
        }
    };
    let request = match AdmissionReview::parse(&bytes) {
        Ok(request) => Arc::new(request),
        Err(review_error) => return error(StatusCode::BAD_REQUEST, review_error.to_string()),
    };
    let timeout = query
        .timeout
        .as_deref()
        .and_then(parse_timeout)
        .unwrap_or(DEFAULT_TIMEOUT);
    // Answer with a margin before the API server gives up on the call.
    let budget = timeout.mul_f64(0.9);
    let evaluation = evaluate(&state, Arc::clone(&request), handler, failure_policy);
    let response = match tokio::time::timeout(budget, evaluation).await {
        Ok(Ok(response)) => response,
        Ok(Err(message)) => on_failure(&request, failure_policy, message),
        Err(_) => on_failure(
            &request,
            failure_policy,
            format!("the policies were not evaluated within the webhook timeout of {timeout:?}"),
        ),
    };
    state.metrics.admission(
        &AdmissionLabels {
            resource_kind: request.kind.kind.clone(),
            resource_namespace: request.namespace.clone(),
            resource_request_operation: request.operation.clone(),
            request_allowed: response.allowed,
        },
        started.elapsed(),
    );
    axum::Json(response.into_review()).into_response()
}

/// Evaluates on the blocking pool once a permit is free; the permit is held until the
/// evaluation ends, even if the request was answered before.
fn evaluate(
    state: &AppState,
    request: Arc<AdmissionRequest>,
    handler: Handler,
    failure_policy: FailurePolicy,
) -> impl Future<Output = Result<AdmissionResponse, String>> + use<> {
    let permits = Arc::clone(&state.permits);
    let evaluator = Arc::clone(&state.evaluator);
    async move {
        let permit = permits
            .acquire_owned()
            .await
            .map_err(|closed| closed.to_string())?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            handler.answer(&evaluator, failure_policy, &request)
        })
        .await
        .map_err(|join_error| format!("the evaluation failed: {join_error}"))
    }
}

/// The answer when evaluation fails or takes too long: denied under `Fail`, admitted with a
/// warning under `Ignore`.
fn on_failure(
    request: &AdmissionRequest,
    failure_policy: FailurePolicy,
    message: String,
) -> AdmissionResponse {
    tracing::warn!(uid = %request.uid, %message, ?failure_policy, "admission request not evaluated");
    match failure_policy {
        FailurePolicy::Fail => AdmissionResponse::deny(&request.uid, message),
        FailurePolicy::Ignore => {
            AdmissionResponse::allow(&request.uid).with_warnings(vec![format!(
                "{message}; admitted as the failure policy is Ignore"
            )])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_as_the_api_server_writes_them() {
        assert_eq!(parse_timeout("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_timeout("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_timeout("0s"), None);
        assert_eq!(parse_timeout("ten"), None);
    }
}
