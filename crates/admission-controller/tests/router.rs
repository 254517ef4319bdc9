//! The webhook router in-process (no network): Kyverno's answers to AdmissionReviews, bad input,
//! failure policies on timeouts, health and metrics.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use http_body_util::BodyExt;
use kyverno_admission_controller::evaluate::Evaluator;
use kyverno_admission_controller::metrics::Metrics;
use kyverno_admission_controller::server::{AppState, webhook_router};
use kyverno_policy_core::engine::{ContextProvider, Lookup, NoExternalData, ProviderError};
use kyverno_runtime::admin::Admin;
use kyverno_runtime::config::SharedConfig;
use kyverno_runtime::namespaces::NamespaceLabels;
use kyverno_runtime::policy_cache::PolicyCache;
use kyverno_runtime::watch::Stores;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tower::ServiceExt;

const REQUIRE_LABELS: &str = include_str!("../../../examples/policies/require-labels.yaml");

fn stores() -> Stores {
    Stores {
        cache: Arc::new(PolicyCache::default()),
        config: Arc::new(SharedConfig::new("kyverno")),
        namespaces: Arc::new(NamespaceLabels::default()),
        roles: Arc::default(),
    }
}

fn state_with(stores: Stores, provider: Arc<dyn ContextProvider>, permits: usize) -> Arc<AppState> {
    state_and_admin(stores, provider, permits).0
}

/// The state and the admin server serving its metrics, as the controller wires them.
fn state_and_admin(
    stores: Stores,
    provider: Arc<dyn ContextProvider>,
    permits: usize,
) -> (Arc<AppState>, Arc<Admin>) {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let state = Arc::new(AppState {
        evaluator: Arc::new(Evaluator {
            stores,
            provider,
            metrics: Arc::clone(&metrics),
            outputs: None,
        }),
        permits: Arc::new(tokio::sync::Semaphore::new(permits)),
        metrics,
        max_body_bytes: 64 * 1024,
        ready: Arc::new(|| true),
    });
    (state, Admin::new(registry))
}

fn policy(
    yaml: &str,
    edit: impl FnOnce(&mut Value),
) -> kyverno_api::kyverno::v1::policy::ClusterPolicy {
    let mut value: Value = serde_saphyr::from_str(yaml).unwrap();
    edit(&mut value);
    serde_json::from_value(value).unwrap()
}

fn enforce(value: &mut Value) {
    value["spec"]["rules"][0]["validate"]["failureAction"] = json!("Enforce");
}

fn pod(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn review(object: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "uid-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "name": object["metadata"]["name"], "namespace": "default", "operation": "CREATE",
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": object,
    }})
}

async fn call(
    state: &Arc<AppState>,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, Vec<u8>) {
    let request = http::Request::post(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let response = webhook_router(Arc::clone(state))
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, bytes)
}

async fn admit(state: &Arc<AppState>, path: &str, object: Value) -> Value {
    let (status, body) = call(
        state,
        path,
        review(object).to_string().into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let review: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["response"]["uid"], "uid-1");
    review["response"].clone()
}

#[tokio::test]
async fn enforce_denies_with_kyvernos_message_and_admits_labelled_pods() {
    let stores = stores();
    stores
        .cache
        .apply_cluster_policy(policy(REQUIRE_LABELS, enforce));
    let state = state_with(stores, Arc::new(NoExternalData), 4);
    let denied = admit(&state, "/validate/fail", pod("sample", json!({}))).await;
    assert_eq!(denied["allowed"], false);
    assert_eq!(
        denied["status"]["message"],
        "\n\nresource Pod/default/sample was blocked due to the following policies \n\nrequire-labels:\n  check-for-labels: 'validation error: The label `app.kubernetes.io/name` is required.\n    rule check-for-labels failed at path /metadata/labels/app.kubernetes.io/name/'\n"
    );
    let admitted = admit(
        &state,
        "/validate/fail",
        pod("ok", json!({"app.kubernetes.io/name": "x"})),
    )
    .await;
    assert_eq!(admitted, json!({"uid": "uid-1", "allowed": true}));
    // Policies with failurePolicy Fail are not evaluated on the ignore path.
    let ignored = admit(&state, "/validate/ignore", pod("sample", json!({}))).await;
    assert_eq!(ignored["allowed"], true);
}

#[tokio::test]
async fn audit_admits_and_warns_only_when_asked() {
    let stores = stores();
    stores
        .cache
        .apply_cluster_policy(policy(REQUIRE_LABELS, |_| {}));
    let state = state_with(stores.clone(), Arc::new(NoExternalData), 4);
    let admitted = admit(&state, "/validate/fail", pod("sample", json!({}))).await;
    assert_eq!(admitted, json!({"uid": "uid-1", "allowed": true}));
    stores
        .cache
        .apply_cluster_policy(policy(REQUIRE_LABELS, |value| {
            value["spec"]["emitWarning"] = json!(true);
        }));
    let warned = admit(&state, "/validate/fail", pod("sample", json!({}))).await;
    assert_eq!(warned["allowed"], true);
    assert_eq!(
        warned["warnings"],
        json!([
            "policy require-labels.check-for-labels: validation error: The label `app.kubernetes.io/name` is required. rule check-for-labels failed at path /metadata/labels/app.kubernetes.io/name/"
        ])
    );
}

#[tokio::test]
async fn mutate_returns_a_base64_json_patch() {
    let stores = stores();
    stores.cache.apply_cluster_policy(policy(
        r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: add-team}
spec:
  rules:
  - name: add-team-label
    match: {any: [{resources: {kinds: [Pod]}}]}
    mutate:
      patchStrategicMerge:
        metadata:
          labels:
            +(team): platform
"#,
        |_| {},
    ));
    let state = state_with(stores, Arc::new(NoExternalData), 4);
    let mutated = admit(&state, "/mutate/fail", pod("p", json!({"app": "x"}))).await;
    assert_eq!(mutated["allowed"], true);
    assert_eq!(mutated["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(mutated["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        json!([{"op": "add", "path": "/metadata/labels/team", "value": "platform"}])
    );
    // Already labelled: nothing to patch.
    let untouched = admit(&state, "/mutate/fail", pod("p", json!({"team": "other"}))).await;
    assert_eq!(untouched, json!({"uid": "uid-1", "allowed": true}));
    // The validate paths do not mutate.
    let validated = admit(&state, "/validate/fail", pod("p", json!({}))).await;
    assert_eq!(validated, json!({"uid": "uid-1", "allowed": true}));
}

#[tokio::test]
async fn resource_filters_and_excluded_groups_skip_evaluation() {
    let stores = stores();
    stores
        .cache
        .apply_cluster_policy(policy(REQUIRE_LABELS, enforce));
    let state = state_with(stores.clone(), Arc::new(NoExternalData), 4);
    let mut in_kube_system = review(pod("sample", json!({})));
    in_kube_system["request"]["namespace"] = json!("kube-system");
    let (_, body) = call(
        &state,
        "/validate/fail",
        in_kube_system.to_string().into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["response"]["allowed"],
        true
    );
    let mut from_a_node = review(pod("sample", json!({})));
    from_a_node["request"]["userInfo"]["groups"] = json!(["system:nodes"]);
    let (_, body) = call(
        &state,
        "/validate/fail",
        from_a_node.to_string().into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["response"]["allowed"],
        true
    );
    // The ConfigMap can take the group exclusion away.
    stores
        .config
        .load(Some(&[("excludeGroups".to_owned(), String::new())].into()));
    let (_, body) = call(
        &state,
        "/validate/fail",
        from_a_node.to_string().into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["response"]["allowed"],
        false
    );
}

#[tokio::test]
async fn bad_input_gets_400_and_the_server_keeps_serving() {
    let stores = stores();
    stores
        .cache
        .apply_cluster_policy(policy(REQUIRE_LABELS, enforce));
    let state = state_with(stores, Arc::new(NoExternalData), 4);
    let (status, body) = call(
        &state,
        "/validate/fail",
        b"{not json".to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).starts_with("malformed AdmissionReview: "));
    let (status, body) = call(
        &state,
        "/validate/fail",
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
        "application/json",
    )
    .await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).into_owned()),
        (400, "the AdmissionReview has no request".to_owned())
    );
    let oversized = vec![b' '; 65 * 1024];
    let (status, body) = call(&state, "/validate/fail", oversized, "application/json").await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("larger than 65536 bytes"));
    let (status, _) = call(
        &state,
        "/validate/fail",
        review(pod("p", json!({}))).to_string().into_bytes(),
        "text/plain",
    )
    .await;
    assert_eq!(status, 415);
    // Still serving.
    let denied = admit(&state, "/validate/fail", pod("sample", json!({}))).await;
    assert_eq!(denied["allowed"], false);
}

/// A provider whose API calls take two seconds.
struct SlowApi;

impl ContextProvider for SlowApi {
    fn config_map(&self, _: &str, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn api_call(&self, _: &str, _: &str, _: Option<&Value>) -> Result<Lookup, ProviderError> {
        std::thread::sleep(Duration::from_secs(2));
        Ok(Lookup::Found(json!({"count": 1})))
    }
    fn service_call(&self, _: &str, _: &str, _: Option<&Value>) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn global_context(&self, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn image_data(&self, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
}

const SLOW_POLICY: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: slow}
spec:
  rules:
  - name: count
    match: {any: [{resources: {kinds: [Pod]}}]}
    context:
    - name: pods
      apiCall: {urlPath: /api/v1/pods}
    validate:
      failureAction: Enforce
      deny:
        conditions:
          any:
          - {key: "{{ pods.count }}", operator: GreaterThan, value: 5}
"#;

#[tokio::test]
async fn a_request_outliving_the_timeout_is_answered_by_its_failure_policy() {
    let stores = stores();
    stores
        .cache
        .apply_cluster_policy(policy(SLOW_POLICY, |_| {}));
    stores
        .cache
        .apply_cluster_policy(policy(SLOW_POLICY, |value| {
            value["metadata"]["name"] = json!("slow-ignore");
            value["spec"]["failurePolicy"] = json!("Ignore");
        }));
    let state = state_with(stores, Arc::new(SlowApi), 4);
    let body = review(pod("p", json!({}))).to_string().into_bytes();
    let started = std::time::Instant::now();
    let (status, answer) = call(
        &state,
        "/validate/fail?timeout=1s",
        body.clone(),
        "application/json",
    )
    .await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(1500));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(
        answer["response"]["status"]["message"],
        "the policies were not evaluated within the webhook timeout of 1s"
    );
    let (_, answer) = call(
        &state,
        "/validate/ignore?timeout=1s",
        body.clone(),
        "application/json",
    )
    .await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(
        answer["response"]["warnings"][0],
        "the policies were not evaluated within the webhook timeout of 1s; admitted as the failure policy is Ignore"
    );
    // With time enough, the evaluation completes (the count is 1: admitted).
    let (_, answer) = call(
        &state,
        "/validate/fail?timeout=5s",
        body,
        "application/json",
    )
    .await;
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["response"]["allowed"], true);
}

#[tokio::test]
async fn queued_requests_count_against_the_timeout() {
    let stores = stores();
    stores
        .cache
        .apply_cluster_policy(policy(SLOW_POLICY, |_| {}));
    // One permit: the second request waits for the first evaluation (2 s) and times out.
    let state = state_with(stores, Arc::new(SlowApi), 1);
    let body = review(pod("p", json!({}))).to_string().into_bytes();
    let first = call(
        &state,
        "/validate/fail?timeout=5s",
        body.clone(),
        "application/json",
    );
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        call(
            &state,
            "/validate/fail?timeout=1s",
            body.clone(),
            "application/json",
        )
        .await
    };
    let ((_, first), (_, second)) = tokio::join!(first, second);
    let first: Value = serde_json::from_slice(&first).unwrap();
    let second: Value = serde_json::from_slice(&second).unwrap();
    assert_eq!(first["response"]["allowed"], true);
    assert_eq!(second["response"]["allowed"], false);
}

#[tokio::test]
async fn health_and_metrics() {
    let stores = stores();
    stores
        .cache
        .apply_cluster_policy(policy(REQUIRE_LABELS, enforce));
    let (state, admin) = state_and_admin(stores.clone(), Arc::new(NoExternalData), 4);
    let get = |path: &'static str, state: Arc<AppState>| async move {
        let request = http::Request::get(path).body(Body::empty()).unwrap();
        webhook_router(state)
            .oneshot(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get("/health/liveness", Arc::clone(&state)).await, 200);
    assert_eq!(get("/health/readiness", Arc::clone(&state)).await, 200);
    let not_ready = Arc::new(AppState {
        evaluator: Arc::clone(&state.evaluator),
        permits: Arc::clone(&state.permits),
        metrics: Arc::clone(&state.metrics),
        max_body_bytes: 1024,
        ready: Arc::new(|| false),
    });
    assert_eq!(get("/health/readiness", not_ready).await, 503);
    admit(&state, "/validate/fail", pod("sample", json!({}))).await;
    let request = http::Request::get("/metrics").body(Body::empty()).unwrap();
    let response = admin.router().oneshot(request).await.unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("kyverno_admission_requests_total{resource_kind=\"Pod\",resource_namespace=\"default\",resource_request_operation=\"CREATE\",request_allowed=\"false\"} 1"), "{text}");
    assert!(
        text.contains("rule_name=\"check-for-labels\",rule_result=\"fail\",rule_type=\"validate\""),
        "{text}"
    );
}
