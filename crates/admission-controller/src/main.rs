//! The `admission-controller` binary: one replica of Kyverno's admission controller.
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kyverno_admission_controller::{Options, start};
use kyverno_runtime::policy_cache::WebhookDefaults;

/// Kyverno's admission controller: validates and mutates admission requests with the policies
/// in force, and manages its certificates and webhook configurations.
#[derive(Debug, Parser)]
// The chart's `extraArgs` come after its own flags and win over them.
#[command(version, args_override_self = true)]
struct Args {
    /// Kyverno's namespace.
    #[arg(long, env = "KYVERNO_NAMESPACE", default_value = "kyverno")]
    namespace: String,
    /// The Service in front of the webhook server.
    #[arg(long, env = "KYVERNO_SVC", default_value = "kyverno-svc")]
    service_name: String,
    /// The `kyverno` ConfigMap's name.
    #[arg(long, env = "INIT_CONFIG", default_value = "kyverno")]
    config_map: String,
    /// This replica's name (the leader election identity).
    #[arg(long, env = "KYVERNO_POD_NAME", default_value = "kyverno")]
    pod_name: String,
    /// Where the HTTPS webhook server listens.
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,
    /// Where the metrics server listens.
    #[arg(long, default_value = "0.0.0.0:8000")]
    metrics_addr: SocketAddr,
    /// Largest AdmissionReview body accepted, in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_request_bytes: usize,
    /// How many requests evaluate at once (default: two per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// Lease duration of the leader election, in seconds.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Timeout of the webhooks of policies that set none, and of the policy webhooks, in
    /// seconds (1 to 30; upstream's flag).
    #[arg(long = "webhookTimeout", default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=30))]
    webhook_timeout: i32,
    /// Makes every policy's failure policy `Ignore`, whatever it says (upstream's flag).
    #[arg(
        long = "forceFailurePolicyIgnore",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    force_failure_policy_ignore: bool,
    /// The user the background controller sends requests as: they do not trigger generation
    /// by rules and GeneratingPolicies that skip background requests (upstream's flag).
    #[arg(
        long = "backgroundServiceAccountName",
        default_value = "system:serviceaccount:kyverno:kyverno-background-controller"
    )]
    background_service_account: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let mut options = Options::with_defaults(&args.pod_name);
    options.namespace = args.namespace;
    options.service_name = args.service_name;
    options.config_map_name = args.config_map;
    options.webhook_addr = args.webhook_addr;
    options.metrics_addr = args.metrics_addr;
    options.max_body_bytes = args.max_request_bytes;
    options.lease_ttl = Duration::from_secs(args.lease_seconds);
    options.background_service_account = args.background_service_account;
    options.webhook_defaults = WebhookDefaults {
        timeout_seconds: args.webhook_timeout,
        force_failure_policy_ignore: args.force_failure_policy_ignore,
    };
    if let Some(workers) = args.workers {
        options.workers = workers;
    }
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes client configuration (in-cluster or kubeconfig)")?;
    let replica = start(client, options).await?;
    tracing::info!(webhooks = %replica.webhook_addr, metrics = %replica.metrics_addr, "admission controller started");
    shutdown_signal().await;
    tracing::info!("shutting down");
    drop(replica);
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Args;

    #[test]
    fn upstream_webhook_flags_parse() {
        let defaults = Args::try_parse_from(["admission-controller"]).expect("no flags");
        assert_eq!(defaults.webhook_timeout, 10);
        assert!(!defaults.force_failure_policy_ignore);
        let args = Args::try_parse_from([
            "admission-controller",
            "--webhookTimeout=20",
            "--forceFailurePolicyIgnore",
        ])
        .expect("upstream's spelling");
        assert_eq!(args.webhook_timeout, 20);
        assert!(args.force_failure_policy_ignore);
        // As the chart renders them, then overridden by an extra argument.
        let args = Args::try_parse_from([
            "admission-controller",
            "--forceFailurePolicyIgnore=true",
            "--webhookTimeout=20",
            "--webhookTimeout=5",
        ])
        .expect("the last value wins");
        assert_eq!(args.webhook_timeout, 5);
        assert!(args.force_failure_policy_ignore);
        assert!(Args::try_parse_from(["admission-controller", "--webhookTimeout=31"]).is_err());
    }
}
