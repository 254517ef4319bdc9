//! The `cleanup-controller` binary: serves the cleanup policies' webhook and, on the replica
//! holding the Lease, runs the policies' schedules and the `cleanup.kyverno.io/ttl` deletions.
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kyverno_cleanup_controller::clock::SystemClock;
use kyverno_cleanup_controller::{Options, start};

/// Kyverno's cleanup controller.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Kyverno's namespace (Lease, Secrets, Service).
    #[arg(long, env = "KYVERNO_NAMESPACE", default_value = "kyverno")]
    namespace: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(
        long,
        env = "KYVERNO_POD_NAME",
        default_value = "kyverno-cleanup-controller"
    )]
    pod_name: String,
    /// The Service in front of the webhook server.
    #[arg(long, default_value = "kyverno-cleanup-controller")]
    service_name: String,
    /// Where the admin server (metrics, health) listens.
    #[arg(long, default_value = "0.0.0.0:8000")]
    metrics_addr: SocketAddr,
    /// Where the HTTPS webhook server listens.
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,
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
    let mut options = Options::with_defaults(&args.pod_name, Arc::new(SystemClock));
    options.namespace = args.namespace;
    options.service_name = args.service_name;
    options.metrics_addr = args.metrics_addr;
    options.webhook_addr = args.webhook_addr;
    let replica = start(client, options)
        .await
        .context("the cleanup controller cannot start")?;
    tracing::info!(webhook = %replica.webhook_addr, metrics = %replica.metrics_addr, "cleanup controller started");
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for a signal")?;
    Ok(())
}
