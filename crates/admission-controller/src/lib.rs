//! The Kyverno admission controller: an HTTPS webhook server that validates and mutates admission
//! requests with the policies in force, and (on the replica holding the Lease) keeps its
//! certificates and webhook configurations in step with those policies.
//!
//! [`start`] runs one replica in the current Tokio runtime: the watches feeding the policy cache,
//! the HTTPS webhook server, the admin server (`/livez`, `/readyz`, `/metrics`), the leader
//! election and the leader's duties.
//! The binary calls it; the end-to-end tests start several replicas in one process with it.
pub mod cel_admission;
pub mod controller;
pub mod evaluate;
pub mod events;
pub mod message;
pub mod metrics;
pub mod outputs;
pub mod policy_status;
pub mod policy_validation;
pub use kyverno_runtime::admission_review as review;
pub mod roles;
pub mod server;
pub mod side_effects;
pub use kyverno_runtime::tls;
pub mod update_requests;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kyverno_runtime::admin::{self, Admin};
use kyverno_runtime::certificates::{CertificateSettings, watch_serving_certificate};
use kyverno_runtime::config::SharedConfig;
pub use kyverno_runtime::https::StartError;
use kyverno_runtime::https::{TlsServing, bind, serve_tls};
use kyverno_runtime::leader::LeaderElection;
use kyverno_runtime::namespaces::NamespaceLabels;
use kyverno_runtime::policy_cache::{PolicyCache, Source, WebhookDefaults};
use kyverno_runtime::provider::ApiServerProvider;
use kyverno_runtime::tls::CertStore;
use kyverno_runtime::watch::{Stores, spawn_watches};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::evaluate::Evaluator;
use crate::metrics::Metrics;
use crate::server::AppState;

/// How often the admin server's `/readyz` is brought in step with the webhook server's
/// readiness.
const READINESS_PERIOD: Duration = Duration::from_secs(1);

/// How one replica runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Kyverno's namespace (Secrets, Lease, ConfigMap, Service).
    pub namespace: String,
    /// The Service in front of the webhook server.
    pub service_name: String,
    /// The Service's port.
    pub service_port: i32,
    /// The `kyverno` ConfigMap's name.
    pub config_map_name: String,
    /// Where the HTTPS webhook server listens.
    pub webhook_addr: SocketAddr,
    /// Where the admin server (`/livez`, `/readyz`, `/metrics`) listens.
    pub metrics_addr: SocketAddr,
    /// This replica's identity in the leader election (the pod name).
    pub pod_name: String,
    /// The Lease's name.
    pub lease_name: String,
    /// How long the Lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often the Lease is renewed or tried for.
    pub lease_retry_period: Duration,
    /// Largest AdmissionReview body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How many requests evaluate at once.
    pub workers: usize,
    /// Lifetime of a new CA.
    pub ca_lifetime: Duration,
    /// Lifetime of a new serving certificate.
    pub cert_lifetime: Duration,
    /// Certificates expiring within this time are renewed.
    pub renew_before: Duration,
    /// How often the leader looks at the certificates (at most every minute).
    pub certificate_check_period: Duration,
    /// The webhook timeout and failure policy of policies that set none (`--webhookTimeout`,
    /// `--forceFailurePolicyIgnore`).
    pub webhook_defaults: WebhookDefaults,
    /// The user the background controller sends requests as
    /// (`--backgroundServiceAccountName`): its requests do not trigger generation by the rules and
    /// GeneratingPolicies that skip background requests.
    pub background_service_account: String,
}

impl Options {
    /// Upstream's defaults: namespace `kyverno`, Service `kyverno-svc:443`, ConfigMap `kyverno`,
    /// webhooks on `:9443`, metrics on `:8000`, Lease `kyverno` (15 s, renewed every 2 s), a CA
    /// for a year and serving certificates for 150 days renewed 15 days before expiry (looked at
    /// every minute), 8 MiB bodies, two evaluations per CPU, background controller
    /// `system:serviceaccount:kyverno:kyverno-background-controller`.
    pub fn with_defaults(pod_name: &str) -> Self {
        let day = Duration::from_secs(86_400);
        Self {
            namespace: "kyverno".to_owned(),
            service_name: "kyverno-svc".to_owned(),
            service_port: 443,
            config_map_name: "kyverno".to_owned(),
            webhook_addr: SocketAddr::from(([0, 0, 0, 0], 9443)),
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 8000)),
            pod_name: pod_name.to_owned(),
            lease_name: "kyverno".to_owned(),
            lease_ttl: Duration::from_secs(15),
            lease_retry_period: Duration::from_secs(2),
            max_body_bytes: 8 * 1024 * 1024,
            workers: std::thread::available_parallelism().map_or(2, |cpus| cpus.get() * 2),
            ca_lifetime: day * 365,
            cert_lifetime: day * 150,
            renew_before: day * 15,
            certificate_check_period: Duration::from_secs(60),
            webhook_defaults: WebhookDefaults::default(),
            background_service_account:
                "system:serviceaccount:kyverno:kyverno-background-controller".to_owned(),
        }
    }
}

/// A running replica; dropping it stops everything it runs, at once (as a killed pod).
#[derive(Debug)]
pub struct Replica {
    /// Where the webhook server listens.
    pub webhook_addr: SocketAddr,
    /// Where the admin server (`/livez`, `/readyz`, `/metrics`) listens.
    pub metrics_addr: SocketAddr,
    /// What the watches keep in step.
    pub stores: Stores,
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
    let stores = Stores {
        cache: Arc::new(PolicyCache::with_webhook_defaults(options.webhook_defaults)),
        config: Arc::new(SharedConfig::new(&options.namespace)),
        namespaces: Arc::new(NamespaceLabels::default()),
        roles: Arc::default(),
    };
    let (synced, mut tasks) = spawn_watches(
        &client,
        &stores,
        &Source::all(),
        &options.namespace,
        &options.config_map_name,
    );
    let (roles_synced, role_tasks) = kyverno_runtime::watch::spawn_role_watches(&client, &stores);
    tasks.extend(role_tasks);
    let certificates = CertificateSettings {
        namespace: options.namespace.clone(),
        service_name: options.service_name.clone(),
        service_port: options.service_port,
        ca_lifetime: options.ca_lifetime,
        cert_lifetime: options.cert_lifetime,
        renew_before: options.renew_before,
        check_period: options.certificate_check_period,
    };
    let cert_store = Arc::new(CertStore::default());
    tasks.push(tokio::spawn(watch_serving_certificate(
        client.clone(),
        certificates.clone(),
        Arc::clone(&cert_store),
    )));
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let admin = Admin::new(registry);
    let (output_queue, output_receiver) =
        outputs::OutputQueue::new(outputs::DEFAULT_CAPACITY, Arc::clone(&metrics));
    tasks.push(tokio::spawn(outputs::write_outputs(
        client.clone(),
        output_receiver,
        Arc::clone(&metrics),
    )));
    let evaluator = Evaluator {
        stores: stores.clone(),
        provider: Arc::new(ApiServerProvider::new(
            client.clone(),
            tokio::runtime::Handle::current(),
        )),
        metrics: Arc::clone(&metrics),
        outputs: Some(side_effects::Outputs {
            queue: output_queue,
            namespace: options.namespace.clone(),
            instance: format!("{}-{}", events::SOURCE, options.pod_name),
            background_user: options.background_service_account.clone(),
        }),
    };
    stores
        .cache
        .set_cel_provider(Arc::clone(&evaluator.provider));
    let ready_certs = Arc::clone(&cert_store);
    let ready: Arc<dyn Fn() -> bool + Send + Sync> =
        Arc::new(move || ready_certs.is_set() && synced.is_synced() && roles_synced.is_synced());
    let admin_ready = Arc::clone(&ready);
    tasks.push(tokio::spawn(
        Arc::clone(&admin).follow_readiness(move || admin_ready(), READINESS_PERIOD),
    ));
    let state = Arc::new(AppState {
        evaluator: Arc::new(evaluator),
        permits: Arc::new(tokio::sync::Semaphore::new(options.workers.max(1))),
        metrics: Arc::clone(&metrics),
        max_body_bytes: options.max_body_bytes,
        ready,
    });
    let (webhook_listener, webhook_addr) = bind(options.webhook_addr).await?;
    let (metrics_listener, metrics_addr) = bind(options.metrics_addr).await?;
    tasks.push(tokio::spawn(serve_tls(
        webhook_listener,
        TlsServing::new(cert_store)?,
        server::webhook_router(state),
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
    tasks.push(tokio::spawn(policy_status::run_status_writer(
        client.clone(),
        Arc::clone(&stores.cache),
        leading.clone(),
    )));
    tasks.push(tokio::spawn(controller::run_leader_duties(
        client,
        stores.clone(),
        certificates,
        leading.clone(),
    )));
    Ok(Replica {
        webhook_addr,
        metrics_addr,
        stores,
        leading,
        tasks,
    })
}
