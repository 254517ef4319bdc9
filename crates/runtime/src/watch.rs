//! Watches that keep the [`PolicyCache`] and the [`SharedConfig`] in step with the cluster.
//!
//! Objects are watched untyped and decoded one by one, so that one policy the types cannot read
//! is skipped (and remembered as a load failure) instead of failing the whole list and stalling
//! the watch. Watch errors are logged and retried with kube-runtime's default backoff.
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use serde::de::DeserializeOwned;

use crate::config::SharedConfig;
use crate::namespaces::NamespaceLabels;
use crate::policy_cache::{PolicyCache, PolicyKey, Source};

/// What a watch reports.
enum Change {
    /// An object was added or modified.
    Apply(DynamicObject),
    /// An object was deleted.
    Delete(DynamicObject),
    /// The watch (re)started: these are all the objects.
    Replace(Vec<DynamicObject>),
}

/// Whether every watch has listed its objects once.
#[derive(Debug, Default)]
pub struct SyncStatus {
    cluster_policies: AtomicBool,
    policies: AtomicBool,
    exceptions: AtomicBool,
    config: AtomicBool,
    namespaces: AtomicBool,
}

impl SyncStatus {
    /// Whether the cache and the configuration reflect the cluster (each watch listed once).
    pub fn is_synced(&self) -> bool {
        [
            &self.cluster_policies,
            &self.policies,
            &self.exceptions,
            &self.config,
            &self.namespaces,
        ]
        .iter()
        .all(|flag| flag.load(Ordering::Acquire))
    }
}

/// What the watches keep in step.
#[derive(Clone, Debug)]
pub struct Stores {
    /// The policies and exceptions.
    pub cache: Arc<PolicyCache>,
    /// The `kyverno` ConfigMap.
    pub config: Arc<SharedConfig>,
    /// Namespace labels.
    pub namespaces: Arc<NamespaceLabels>,
}

/// Starts the watches on ClusterPolicies, Policies, PolicyExceptions, Namespaces and the
/// `kyverno` ConfigMap (`config_map_name` in `kyverno_namespace`). They run until the returned
/// tasks are aborted.
pub fn spawn_watches(
    client: &Client,
    stores: &Stores,
    kyverno_namespace: &str,
    config_map_name: &str,
) -> (Arc<SyncStatus>, Vec<tokio::task::JoinHandle<()>>) {
    let (cache, config) = (&stores.cache, &stores.config);
    let status = Arc::new(SyncStatus::default());
    let all = watcher::Config::default();
    let mut tasks = Vec::new();
    for source in [
        Source::ClusterPolicies,
        Source::Policies,
        Source::Exceptions,
    ] {
        let resource = match source {
            Source::ClusterPolicies => ApiResource::erase::<ClusterPolicy>(&()),
            Source::Policies => ApiResource::erase::<Policy>(&()),
            Source::Exceptions => ApiResource::erase::<PolicyException>(&()),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let cache = Arc::clone(cache);
        let status = Arc::clone(&status);
        tasks.push(tokio::spawn(feed(api, all.clone(), move |change| {
            apply_policy_change(&cache, source, change);
            let flag = match source {
                Source::ClusterPolicies => &status.cluster_policies,
                Source::Policies => &status.policies,
                Source::Exceptions => &status.exceptions,
            };
            flag.store(true, Ordering::Release);
        })));
    }
    let config_maps = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), kyverno_namespace, &config_maps);
    let by_name = watcher::Config::default().fields(&format!("metadata.name={config_map_name}"));
    let config = Arc::clone(config);
    let config_status = Arc::clone(&status);
    tasks.push(tokio::spawn(feed(api, by_name, move |change| {
        let data = |object: &DynamicObject| -> std::collections::BTreeMap<String, String> {
            object
                .data
                .get("data")
                .and_then(|data| serde_json::from_value(data.clone()).ok())
                .unwrap_or_default()
        };
        match change {
            Change::Apply(object) => config.load(Some(&data(&object))),
            Change::Delete(_) => config.load(None),
            Change::Replace(objects) => config.load(objects.first().map(data).as_ref()),
        }
        config_status.config.store(true, Ordering::Release);
    })));
    let namespaces = ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &namespaces);
    let store = Arc::clone(&stores.namespaces);
    let namespace_status = Arc::clone(&status);
    tasks.push(tokio::spawn(feed(
        api,
        watcher::Config::default(),
        move |change| {
            let entry = |object: DynamicObject| {
                (
                    object.metadata.name.unwrap_or_default(),
                    object.metadata.labels.unwrap_or_default(),
                )
            };
            match change {
                Change::Apply(object) => {
                    let (name, labels) = entry(object);
                    store.set(name, labels);
                }
                Change::Delete(object) => {
                    store.remove(object.metadata.name.as_deref().unwrap_or_default())
                }
                Change::Replace(objects) => store.replace(objects.into_iter().map(entry)),
            }
            namespace_status.namespaces.store(true, Ordering::Release);
        },
    )));
    (status, tasks)
}

/// Runs a watch, handing every change to `apply`.
async fn feed(api: Api<DynamicObject>, config: watcher::Config, mut apply: impl FnMut(Change)) {
    let mut listed = Vec::new();
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(object)) => listed.push(object),
            Ok(Event::InitDone) => apply(Change::Replace(std::mem::take(&mut listed))),
            Ok(Event::Apply(object)) => apply(Change::Apply(object)),
            Ok(Event::Delete(object)) => apply(Change::Delete(object)),
            Err(error) => tracing::warn!(%error, "watch failed; retrying"),
        }
    }
}

fn apply_policy_change(cache: &PolicyCache, source: Source, change: Change) {
    match change {
        Change::Apply(object) => match source {
            Source::ClusterPolicies => {
                if let Some(policy) = decode(object, source, cache) {
                    cache.apply_cluster_policy(policy);
                }
            }
            Source::Policies => {
                if let Some(policy) = decode(object, source, cache) {
                    cache.apply_policy(policy);
                }
            }
            Source::Exceptions => {
                if let Some(exception) = decode(object, source, cache) {
                    cache.apply_exception(exception);
                }
            }
        },
        Change::Delete(object) => {
            let name = object.metadata.name.as_deref().unwrap_or_default();
            let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
            match source {
                Source::ClusterPolicies => cache.delete_cluster_policy(name),
                Source::Policies => cache.delete_policy(namespace, name),
                Source::Exceptions => cache.delete_exception(namespace, name),
            }
        }
        Change::Replace(objects) => match source {
            Source::ClusterPolicies => {
                let (policies, failures) = decode_all(objects);
                cache.replace_cluster_policies(policies);
                record(cache, source, failures);
            }
            Source::Policies => {
                let (policies, failures) = decode_all(objects);
                cache.replace_policies(policies);
                record(cache, source, failures);
            }
            Source::Exceptions => {
                let (exceptions, failures) = decode_all(objects);
                cache.replace_exceptions(exceptions);
                record(cache, source, failures);
            }
        },
    }
}

/// An object that its type cannot read, with why.
type DecodeFailure = (PolicyKey, String);

fn object_key(object: &DynamicObject, source: Source) -> PolicyKey {
    PolicyKey {
        namespace: match source {
            Source::ClusterPolicies => None,
            Source::Policies | Source::Exceptions => object.metadata.namespace.clone(),
        },
        name: object.metadata.name.clone().unwrap_or_default(),
    }
}

fn try_decode<K: DeserializeOwned>(object: DynamicObject) -> Result<K, String> {
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|error| error.to_string())
}

/// Decodes one object; one that cannot be read is recorded as a failure (a policy) or logged
/// (an exception).
fn decode<K: DeserializeOwned>(
    object: DynamicObject,
    source: Source,
    cache: &PolicyCache,
) -> Option<K> {
    let key = object_key(&object, source);
    match try_decode(object) {
        Ok(decoded) => Some(decoded),
        Err(message) => {
            record(cache, source, vec![(key, message)]);
            None
        }
    }
}

fn decode_all<K: DeserializeOwned + Debug>(
    objects: Vec<DynamicObject>,
) -> (Vec<K>, Vec<DecodeFailure>) {
    let mut decoded = Vec::with_capacity(objects.len());
    let mut failures = Vec::new();
    for object in objects {
        let key = PolicyKey {
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone().unwrap_or_default(),
        };
        match try_decode(object) {
            Ok(object) => decoded.push(object),
            Err(message) => failures.push((key, message)),
        }
    }
    (decoded, failures)
}

fn record(cache: &PolicyCache, source: Source, failures: Vec<DecodeFailure>) {
    for (key, message) in failures {
        tracing::warn!(object = %key, %message, ?source, "object skipped: it cannot be read");
        if source != Source::Exceptions {
            cache.reject(key, message);
        }
    }
}
