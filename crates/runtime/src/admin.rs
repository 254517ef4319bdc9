//! The admin server every controller serves on plain HTTP: `/livez` (the process answers),
//! `/readyz` (the controller has synced what it needs and can do its work) and `/metrics`
//! (Prometheus, OpenMetrics text).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// The port Kyverno's controllers serve metrics on.
pub const DEFAULT_METRICS_PORT: u16 = 8000;

/// The content type of the `/metrics` answer.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the admin server reports: the metrics registry and the readiness flag.
#[derive(Debug)]
pub struct Admin {
    registry: Registry,
    ready: AtomicBool,
}

impl Admin {
    /// An admin state over `registry` (with every metric registered), not ready yet.
    pub fn new(registry: Registry) -> Arc<Self> {
        Arc::new(Self {
            registry,
            ready: AtomicBool::new(false),
        })
    }

    /// Marks the controller ready (or not): `/readyz` answers 200 or 503.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the controller is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Keeps the readiness in step with `ready`, asking it every `period`, for as long as the
    /// returned future runs (spawn it; aborting the task stops it).
    pub async fn follow_readiness(
        self: Arc<Self>,
        ready: impl Fn() -> bool + Send + Sync + 'static,
        period: Duration,
    ) {
        loop {
            self.set_ready(ready());
            tokio::time::sleep(period).await;
        }
    }

    /// The registry's metrics in the OpenMetrics text format.
    pub fn encode_metrics(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The routes `/livez`, `/readyz` and `/metrics`.
    pub fn router(self: &Arc<Self>) -> Router {
        let readiness = Arc::clone(self);
        let metrics = Arc::clone(self);
        Router::new()
            .route("/livez", get(|| async { (StatusCode::OK, "ok") }))
            .route(
                "/readyz",
                get(move || {
                    let ready = readiness.is_ready();
                    async move {
                        if ready {
                            (StatusCode::OK, "ok")
                        } else {
                            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                        }
                    }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let text = metrics.encode_metrics();
                    async move { ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text) }
                }),
            )
    }
}

/// Serves `router` over plain HTTP on `listener` until the process ends; an accept loop failure
/// is logged.
pub async fn serve(listener: TcpListener, router: Router) {
    if let Err(serve_error) = axum::serve(listener, router).await {
        tracing::error!(%serve_error, "admin server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    async fn get_text(address: std::net::SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect to the admin server");
        let request =
            format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write the request");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .expect("read the answer");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        (status, answer)
    }

    #[tokio::test]
    async fn liveness_readiness_and_metrics() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("kyverno_test_things", "Things counted", counter.clone());
        counter.inc();
        let admin = Admin::new(registry);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(serve(listener, admin.router()));

        assert_eq!(get_text(address, "/livez").await.0, 200);
        assert_eq!(get_text(address, "/readyz").await.0, 503);
        admin.set_ready(true);
        assert_eq!(get_text(address, "/readyz").await.0, 200);
        let (status, metrics) = get_text(address, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            metrics.contains("kyverno_test_things_total 1"),
            "metrics were:\n{metrics}"
        );
    }

    /// Polls `admin` until its readiness is `expected` (a hang guard of a minute, not a timing
    /// threshold).
    async fn ready_becomes(admin: &Admin, expected: bool) {
        tokio::time::timeout(Duration::from_secs(60), async {
            while admin.is_ready() != expected {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the readiness follows its source");
    }

    #[tokio::test]
    async fn readiness_follows_its_source() {
        let admin = Admin::new(Registry::default());
        let source = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&source);
        let follower = tokio::spawn(Arc::clone(&admin).follow_readiness(
            move || flag.load(Ordering::Relaxed),
            Duration::from_millis(1),
        ));
        ready_becomes(&admin, true).await;
        source.store(false, Ordering::Relaxed);
        ready_becomes(&admin, false).await;
        follower.abort();
    }
}
