//! The Kyverno cleanup controller: deletes resources on the schedules of cleanup policies
//! (ClusterCleanupPolicy, CleanupPolicy) and deleting policies (DeletingPolicy,
//! NamespacedDeletingPolicy), and when their `cleanup.kyverno.io/ttl` label is due; validates
//! cleanup policies in a webhook.
//!
//! [`start`] runs one replica in the current Tokio runtime: every replica serves the webhook
//! (HTTPS, with the certificate of the Secret the leader keeps) and the admin server; the replica
//! holding the Lease also runs the schedules, the TTL deletions and the webhook configuration.
//! Time comes from a [`clock::Clock`], so that tests move it on instead of sleeping.
pub mod clock;
pub mod events;
pub mod executor;
pub mod metrics;
pub mod policies;
pub mod schedule;
pub mod scheduler;
pub mod targets;
pub mod ttl;
pub mod ttl_controller;
pub mod webhook;
pub mod webhook_config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kyverno_runtime::admin::{self, Admin};
use kyverno_runtime::certificates::{CertificateSettings, watch_serving_certificate};
pub use kyverno_runtime::https::StartError;
use kyverno_runtime::https::{TlsServing, bind, serve_tls};
use kyverno_runtime::leader::LeaderElection;
use kyverno_runtime::provider::ApiServerProvider;
use kyverno_runtime::tls::CertStore;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::executor::Executor;
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::ttl_controller::TtlController;

/// How often the admin server's readiness is brought in step with the webhook's.
const READINESS_PERIOD: Duration = Duration::from_secs(1);

/// How one replica runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Kyverno's namespace (Lease, Secrets, Service).
    pub namespace: String,
    /// The Service in front of the webhook server.
    pub service_name: String,
    /// The Service's port.
    pub service_port: i32,
    /// Where the HTTPS webhook server listens.
    pub webhook_addr: SocketAddr,
    /// Where the admin server listens.
    pub metrics_addr: SocketAddr,
    /// This replica's identity in the leader election (the pod name).
    pub pod_name: String,
    /// The Lease's name.
    pub lease_name: String,
    /// How long the Lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often the Lease is renewed or tried for.
    pub lease_retry_period: Duration,
    /// Lifetime of a new CA.
    pub ca_lifetime: Duration,
    /// Lifetime of a new serving certificate.
    pub cert_lifetime: Duration,
    /// Certificates expiring within this time are renewed.
    pub renew_before: Duration,
    /// The time schedules and TTLs are measured with.
    pub clock: SharedClock,
}

impl Options {
    /// Upstream's defaults: namespace `kyverno`, Service `kyverno-cleanup-controller:443`,
    /// webhook on `:9443`, metrics on `:8000`, Lease `kyverno-cleanup-controller` (15 s, renewed
    /// every 2 s), a CA for a year and serving certificates for 150 days renewed 15 days before
    /// expiry.
    pub fn with_defaults(pod_name: &str, clock: SharedClock) -> Self {
        let day = Duration::from_secs(86_400);
        Self {
            namespace: "kyverno".to_owned(),
            service_name: "kyverno-cleanup-controller".to_owned(),
            service_port: 443,
            webhook_addr: SocketAddr::from(([0, 0, 0, 0], 9443)),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8000)),
            pod_name: pod_name.to_owned(),
            lease_name: "kyverno-cleanup-controller".to_owned(),
            lease_ttl: Duration::from_secs(15),
            lease_retry_period: Duration::from_secs(2),
            ca_lifetime: day * 365,
            cert_lifetime: day * 150,
            renew_before: day * 15,
            clock,
        }
    }
}

/// A running replica; dropping it stops everything it runs, at once (as a killed pod).
#[derive(Debug)]
pub struct Replica {
    /// Where the webhook server listens.
    pub webhook_addr: SocketAddr,
    /// Where the admin server listens.
    pub metrics_addr: SocketAddr,
    leading: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Replica {
    /// Whether this replica holds the Lease.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts a replica with `client`.
pub async fn start(client: Client, options: Options) -> Result<Replica, StartError> {
    let certificates = CertificateSettings {
        namespace: options.namespace.clone(),
        service_name: options.service_name.clone(),
        service_port: options.service_port,
        ca_lifetime: options.ca_lifetime,
        cert_lifetime: options.cert_lifetime,
        renew_before: options.renew_before,
        check_period: Duration::from_secs(60),
    };
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let admin = Admin::new(registry);
    let (webhook_listener, webhook_addr) = bind(options.webhook_addr).await?;
    let (metrics_listener, metrics_addr) = bind(options.metrics_addr).await?;
    let cert_store = Arc::new(CertStore::default());
    let mut tasks = vec![tokio::spawn(watch_serving_certificate(
        client.clone(),
        certificates.clone(),
        Arc::clone(&cert_store),
    ))];
    let ready_store = Arc::clone(&cert_store);
    let readiness: webhook::Readiness = Arc::new(move || ready_store.is_set());
    let admin_readiness = Arc::clone(&readiness);
    tasks.push(tokio::spawn(
        Arc::clone(&admin).follow_readiness(move || admin_readiness(), READINESS_PERIOD),
    ));
    tasks.push(tokio::spawn(serve_tls(
        webhook_listener,
        TlsServing::new(cert_store)?,
        webhook::router(readiness),
    )));
    tasks.push(tokio::spawn(admin::serve(metrics_listener, admin.router())));
    let (leading_sender, leading) = watch::channel(false);
    let election = LeaderElection {
        namespace: options.namespace.clone(),
        lease_name: options.lease_name.clone(),
        holder_id: options.pod_name.clone(),
        lease_ttl: options.lease_ttl,
        retry_period: options.lease_retry_period,
    };
    tasks.push(tokio::spawn(election.run(client.clone(), leading_sender)));
    let executor = Executor {
        client: client.clone(),
        provider: Arc::new(ApiServerProvider::new(
            client.clone(),
            tokio::runtime::Handle::current(),
        )),
        metrics: Arc::clone(&metrics),
        instance: options.pod_name.clone(),
    };
    let duties = LeaderDuties {
        scheduler: Scheduler {
            client: client.clone(),
            executor,
            clock: Arc::clone(&options.clock),
        },
        ttl: TtlController {
            client: client.clone(),
            clock: options.clock,
            metrics: Arc::clone(&metrics),
            instance: options.pod_name.clone(),
        },
        client,
        certificates,
    };
    tasks.push(tokio::spawn(duties.run_while_leading(leading.clone())));
    Ok(Replica {
        webhook_addr,
        metrics_addr,
        leading,
        tasks,
    })
}

/// What the replica holding the Lease does.
struct LeaderDuties {
    scheduler: Scheduler,
    ttl: TtlController,
    client: Client,
    certificates: CertificateSettings,
}

impl LeaderDuties {
    /// Runs the duties whenever `leading` says this replica leads, stopping them (within this
    /// task, so that dropping it stops them too) as soon as it no longer does.
    async fn run_while_leading(self, mut leading: watch::Receiver<bool>) {
        loop {
            if leading.wait_for(|leads| *leads).await.is_err() {
                return;
            }
            let duties = async {
                tokio::join!(
                    self.scheduler.clone().run(),
                    self.ttl.clone().run(),
                    webhook_config::run(self.client.clone(), self.certificates.clone()),
                );
            };
            tokio::select! {
                () = duties => {}
                lost = leading.wait_for(|leads| !*leads) => if lost.is_err() { return },
            }
        }
    }
}
