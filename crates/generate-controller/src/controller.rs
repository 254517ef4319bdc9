//! The controller while this replica leads: the policy watches, the UpdateRequest workers and
//! the background paths.
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::Api;
use kyverno_api::kyverno::v2::update_request::UpdateRequest;
use kyverno_runtime::config::SharedConfig;
use kyverno_runtime::namespaces::NamespaceLabels;
use kyverno_runtime::policy_cache::{PolicyCache, Source};
use kyverno_runtime::watch::{Stores, spawn_watches};

use crate::background::Background;
use crate::cluster::Cluster;
use crate::generating::{self, GeneratingPolicies};
use crate::metrics::Metrics;
use crate::own_writes::OwnWrites;
use crate::processor::{Processor, Sources};
use crate::tasks::AbortOnDrop;
use crate::workers::{WorkerSettings, Workers};

/// How often the policy watches are checked for their first listing.
const SYNC_POLL: Duration = Duration::from_millis(100);

/// The controller's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Kyverno namespace: UpdateRequests and the `kyverno` ConfigMap.
    pub kyverno_namespace: String,
    /// The name of the `kyverno` ConfigMap.
    pub config_map: String,
    /// How UpdateRequests are processed.
    pub workers: WorkerSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            kyverno_namespace: "kyverno".to_owned(),
            config_map: "kyverno".to_owned(),
            workers: WorkerSettings {
                workers: 10,
                max_retries: 3,
                retry_backoff: Duration::from_secs(1),
            },
        }
    }
}

/// Runs the controller until the future is dropped (when leadership is lost): the policy
/// watches first, then, once they have listed, the workers and the background paths.
pub async fn run(client: Client, settings: Settings, metrics: Metrics) {
    let stores = Stores {
        cache: Arc::new(PolicyCache::default()),
        config: Arc::new(SharedConfig::new(&settings.kyverno_namespace)),
        namespaces: Arc::new(NamespaceLabels::default()),
        roles: Arc::default(),
    };
    let (synced, watch_tasks) = spawn_watches(
        &client,
        &stores,
        &Source::without_generating(),
        &settings.kyverno_namespace,
        &settings.config_map,
    );
    let mut tasks = AbortOnDrop(watch_tasks);
    let generating = Arc::new(GeneratingPolicies::default());
    let (mut generating_synced, generating_tasks) = generating::spawn_watches(&client, &generating);
    tasks.0.extend(generating_tasks);
    while !synced.is_synced() {
        tokio::time::sleep(SYNC_POLL).await;
    }
    if generating_synced.wait_for(|synced| *synced).await.is_err() {
        return;
    }
    // The exceptions are in before the background paths take their first look at the policies.
    generating.set_exceptions(stores.cache.cel_exceptions());
    tasks.0.push(generating::spawn_exceptions_feed(
        Arc::clone(&stores.cache),
        Arc::clone(&generating),
    ));
    let cluster = Arc::new(Cluster::new(client.clone()));
    let own_writes = Arc::new(OwnWrites::default());
    let sources = Sources {
        stores: stores.clone(),
        generating: Arc::clone(&generating),
        metrics: metrics.clone(),
    };
    let processor = Arc::new(Processor::new(cluster, sources, Arc::clone(&own_writes)));
    let api: Api<UpdateRequest> = Api::namespaced(client, &settings.kyverno_namespace);
    let workers = Workers::new(
        api.clone(),
        Arc::clone(&processor),
        metrics,
        settings.workers.clone(),
    );
    let background = Background::new(api, processor, stores, generating, own_writes);
    tasks.0.push(tokio::spawn(background.run()));
    workers.run().await;
    drop(tasks);
}
