//! The `reports-controller` binary: aggregates ephemeral reports into policy reports while it
//! holds its Lease, serving `/livez`, `/readyz` and `/metrics`; `reports-controller
//! report-cleanup` deletes stale ephemeral reports.
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kyverno_reports_controller::telemetry::Telemetry;
use kyverno_reports_controller::{cleanup, controller};
use kyverno_runtime::admin;
use kyverno_runtime::leader::LeaderElection;
use kyverno_runtime::singleton::run_while_leading;

/// Kyverno's reports controller.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Namespace of the Lease.
    #[arg(long, env = "KYVERNO_NAMESPACE", default_value = "kyverno")]
    namespace: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "KYVERNO_POD_NAME", default_value = "reports-controller")]
    pod_name: String,
    /// Largest JSON size of one report's results before it is split into numbered shards.
    #[arg(long, default_value_t = controller::DEFAULT_MAX_REPORT_BYTES)]
    max_report_bytes: usize,
    /// How long changes gather before reports are written, in milliseconds.
    #[arg(long, default_value_t = 500)]
    flush_delay_ms: u64,
    /// Address of the admin server (`/livez`, `/readyz`, `/metrics`).
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], admin::DEFAULT_METRICS_PORT)))]
    metrics_addr: SocketAddr,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Deletes ephemeral reports older than a threshold (left by crashes), then exits.
    ReportCleanup {
        /// Age in seconds past which an ephemeral report is stale.
        #[arg(long, default_value_t = 600)]
        older_than_seconds: u64,
    },
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
    if let Some(Command::ReportCleanup { older_than_seconds }) = args.command {
        let summary = cleanup::cleanup(&client, Duration::from_secs(older_than_seconds)).await?;
        tracing::info!(
            seen = summary.seen,
            deleted = summary.deleted,
            "ephemeral reports cleaned up"
        );
        println!(
            "deleted {} of {} ephemeral reports",
            summary.deleted, summary.seen
        );
        return Ok(());
    }
    let telemetry = Telemetry::default();
    // A standby replica is ready; the leader is not while its caches sync.
    telemetry.admin.set_ready(true);
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    tokio::spawn(admin::serve(listener, telemetry.admin.router()));
    let settings = controller::Settings {
        max_report_bytes: args.max_report_bytes,
        flush_delay: Duration::from_millis(args.flush_delay_ms),
    };
    let election = LeaderElection {
        namespace: args.namespace,
        lease_name: "kyverno-reports-controller".to_owned(),
        holder_id: args.pod_name,
        lease_ttl: Duration::from_secs(15),
        retry_period: Duration::from_secs(2),
    };
    let work_client = client.clone();
    let leading = run_while_leading(client, election, move || {
        let client = work_client.clone();
        let settings = settings.clone();
        let telemetry = telemetry.clone();
        async move {
            if let Err(error) = controller::run(client, settings, telemetry).await {
                tracing::error!(%error, "aggregation stopped");
            }
        }
    });
    tokio::select! {
        () = leading => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}
