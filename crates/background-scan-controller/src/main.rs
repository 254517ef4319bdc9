//! The `background-scan-controller` binary: scans existing resources against background
//! policies while it holds its Lease, and serves `/livez`, `/readyz` and `/metrics`.
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kyverno_background_scan_controller::scanner;
use kyverno_background_scan_controller::telemetry::Telemetry;
use kyverno_runtime::admin;
use kyverno_runtime::leader::LeaderElection;
use kyverno_runtime::singleton::run_while_leading;

/// Kyverno's background scan controller.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Namespace of the Lease and of the `kyverno` ConfigMap.
    #[arg(long, env = "KYVERNO_NAMESPACE", default_value = "kyverno")]
    namespace: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(
        long,
        env = "KYVERNO_POD_NAME",
        default_value = "background-scan-controller"
    )]
    pod_name: String,
    /// Name of the `kyverno` ConfigMap.
    #[arg(long, default_value = "kyverno")]
    config_map: String,
    /// Seconds between full rescans.
    #[arg(long, default_value_t = 3600)]
    background_scan_interval_seconds: u64,
    /// Resources evaluated and reported at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Address of the admin server (`/livez`, `/readyz`, `/metrics`); not the reports
    /// controller's 8000, as the chart runs both in one pod.
    #[arg(long, default_value = "0.0.0.0:8001")]
    metrics_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let telemetry = Telemetry::default();
    // A standby replica is ready; the leader is not while its caches sync.
    telemetry.admin.set_ready(true);
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    tokio::spawn(admin::serve(listener, telemetry.admin.router()));
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client configuration")?;
    let settings = scanner::Settings {
        interval: Duration::from_secs(args.background_scan_interval_seconds),
        kyverno_namespace: args.namespace.clone(),
        config_map: args.config_map,
        concurrency: args.concurrency,
    };
    let election = LeaderElection {
        namespace: args.namespace,
        lease_name: "kyverno-background-scan-controller".to_owned(),
        holder_id: args.pod_name,
        lease_ttl: Duration::from_secs(15),
        retry_period: Duration::from_secs(2),
    };
    let work_client = client.clone();
    let leading = run_while_leading(client, election, move || {
        scanner::run(work_client.clone(), settings.clone(), telemetry.clone())
    });
    tokio::select! {
        () = leading => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}
