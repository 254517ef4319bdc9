//! The `generate-controller` binary: Kyverno's background controller, active while it holds its
//! Lease, with the admin server (`/livez`, `/readyz`, `/metrics`) on every replica.
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kyverno_generate_controller::controller::{self, Settings};
use kyverno_generate_controller::metrics::Metrics;
use kyverno_generate_controller::workers::WorkerSettings;
use kyverno_runtime::admin::{self, Admin};
use kyverno_runtime::leader::LeaderElection;
use kyverno_runtime::singleton::run_while_leading;
use prometheus_client::registry::Registry;

/// Kyverno's background controller: generate and mutate-existing rules.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Namespace of the Lease, the UpdateRequests and the `kyverno` ConfigMap.
    #[arg(long, env = "KYVERNO_NAMESPACE", default_value = "kyverno")]
    namespace: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "KYVERNO_POD_NAME", default_value = "generate-controller")]
    pod_name: String,
    /// Name of the `kyverno` ConfigMap.
    #[arg(long, default_value = "kyverno")]
    config_map: String,
    /// Address of the admin server (metrics, liveness, readiness).
    #[arg(long, default_value = "0.0.0.0:8000")]
    metrics_addr: SocketAddr,
    /// UpdateRequests processed at once.
    #[arg(long, default_value_t = 10)]
    workers: usize,
    /// Retries of a failed UpdateRequest before it is dropped.
    #[arg(long, default_value_t = 3)]
    max_retries: u32,
    /// Milliseconds before the first retry of a failed UpdateRequest (doubling each time).
    #[arg(long, default_value_t = 1000)]
    retry_backoff_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client configuration")?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let admin = Admin::new(registry);
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    tokio::spawn(admin::serve(listener, admin.router()));
    admin.set_ready(true);
    let settings = Settings {
        kyverno_namespace: args.namespace.clone(),
        config_map: args.config_map,
        workers: WorkerSettings {
            workers: args.workers,
            max_retries: args.max_retries,
            retry_backoff: Duration::from_millis(args.retry_backoff_ms),
        },
    };
    let election = LeaderElection {
        namespace: args.namespace,
        lease_name: "kyverno-background-controller".to_owned(),
        holder_id: args.pod_name,
        lease_ttl: Duration::from_secs(15),
        retry_period: Duration::from_secs(2),
    };
    let work_client = client.clone();
    let leading = run_while_leading(client, election, move || {
        controller::run(work_client.clone(), settings.clone(), metrics.clone())
    });
    tokio::select! {
        () = leading => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}
