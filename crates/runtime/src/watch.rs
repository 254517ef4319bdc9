//! Watches that keep the [`PolicyCache`] and the [`SharedConfig`] in step with the cluster.
//!
//! Objects are watched untyped and decoded one by one, so that one policy the types cannot read
//! is skipped (and remembered as a load failure) instead of failing the whole list and stalling
//! the watch. A policy is loaded again only when its spec, labels or annotations change: updates
//! of its status (which the leader writes) are ignored. Watch errors are logged and retried with
//! kube-runtime's default backoff.
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::cel_policies::CelSource;
use crate::config::SharedConfig;
use crate::namespaces::NamespaceLabels;
use crate::policy_cache::{PolicyCache, PolicyIdentity, PolicyKey, Source};
use crate::roles::{Binding, BindingKind, RoleBindings};

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
    flags: Vec<Arc<AtomicBool>>,
}

impl SyncStatus {
    /// Whether the stores reflect the cluster (each watch listed once).
    pub fn is_synced(&self) -> bool {
        self.flags.iter().all(|flag| flag.load(Ordering::Acquire))
    }

    /// A new flag, set by its watch once it listed.
    fn flag(&mut self) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.flags.push(Arc::clone(&flag));
        flag
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
    /// RoleBindings and ClusterRoleBindings (filled by [`spawn_role_watches`]).
    pub roles: Arc<RoleBindings>,
}

/// Starts the watches on the policy `sources` (ClusterPolicies, Policies, PolicyExceptions, the
/// `policies.kyverno.io` policy kinds and PolicyExceptions: [`Source::all`] or a part), on
/// Namespaces and on the `kyverno` ConfigMap (`config_map_name` in `kyverno_namespace`). They run
/// until the returned tasks are aborted.
pub fn spawn_watches(
    client: &Client,
    stores: &Stores,
    sources: &[Source],
    kyverno_namespace: &str,
    config_map_name: &str,
) -> (Arc<SyncStatus>, Vec<tokio::task::JoinHandle<()>>) {
    let (cache, config) = (&stores.cache, &stores.config);
    let mut status = SyncStatus::default();
    let all = watcher::Config::default();
    let mut tasks = Vec::new();
    for &source in sources {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &source.api_resource());
        let cache = Arc::clone(cache);
        let synced = status.flag();
        let mut fingerprints = Fingerprints::default();
        tasks.push(tokio::spawn(feed(api, all.clone(), move |change| {
            if let Some(change) = fingerprints.filter(change) {
                apply_policy_change(&cache, source, change);
            }
            synced.store(true, Ordering::Release);
        })));
    }
    let config_maps = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), kyverno_namespace, &config_maps);
    let by_name = watcher::Config::default().fields(&format!("metadata.name={config_map_name}"));
    let config = Arc::clone(config);
    let config_synced = status.flag();
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
        config_synced.store(true, Ordering::Release);
    })));
    let namespaces = ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &namespaces);
    let store = Arc::clone(&stores.namespaces);
    let namespaces_synced = status.flag();
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
            namespaces_synced.store(true, Ordering::Release);
        },
    )));
    (Arc::new(status), tasks)
}

/// Starts the watches on RoleBindings and ClusterRoleBindings feeding `stores.roles` (for the
/// roles of requesters). They run until the returned tasks are aborted.
pub fn spawn_role_watches(
    client: &Client,
    stores: &Stores,
) -> (Arc<SyncStatus>, Vec<tokio::task::JoinHandle<()>>) {
    let mut status = SyncStatus::default();
    let mut tasks = Vec::new();
    for kind in [BindingKind::RoleBinding, BindingKind::ClusterRoleBinding] {
        let resource = match kind {
            BindingKind::RoleBinding => {
                ApiResource::erase::<k8s_openapi::api::rbac::v1::RoleBinding>(&())
            }
            BindingKind::ClusterRoleBinding => {
                ApiResource::erase::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>(&())
            }
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let store = Arc::clone(&stores.roles);
        let synced = status.flag();
        tasks.push(tokio::spawn(feed(
            api,
            watcher::Config::default(),
            move |change| {
                let entry = |object: DynamicObject| {
                    let namespace = object.metadata.namespace.clone().unwrap_or_default();
                    let name = object.metadata.name.clone().unwrap_or_default();
                    let binding = serde_json::to_value(&object)
                        .ok()
                        .and_then(|value| Binding::from_object(&value))
                        .unwrap_or_default();
                    (namespace, name, binding)
                };
                match change {
                    Change::Apply(object) => {
                        let (namespace, name, binding) = entry(object);
                        store.set(kind, &namespace, &name, binding);
                    }
                    Change::Delete(object) => store.remove(
                        kind,
                        object.metadata.namespace.as_deref().unwrap_or_default(),
                        object.metadata.name.as_deref().unwrap_or_default(),
                    ),
                    Change::Replace(objects) => {
                        store.replace(kind, objects.into_iter().map(entry));
                    }
                }
                synced.store(true, Ordering::Release);
            },
        )));
    }
    (Arc::new(status), tasks)
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

/// What of a policy is loaded: a change elsewhere (its status) does not load it again.
#[derive(Default)]
struct Fingerprints(HashMap<(Option<String>, String), Value>);

impl Fingerprints {
    fn key(object: &DynamicObject) -> (Option<String>, String) {
        (
            object.metadata.namespace.clone(),
            object.metadata.name.clone().unwrap_or_default(),
        )
    }

    fn fingerprint(object: &DynamicObject) -> Value {
        let mut data = object.data.clone();
        if let Some(fields) = data.as_object_mut() {
            fields.remove("status");
        }
        serde_json::json!({
            "uid": object.metadata.uid,
            "labels": object.metadata.labels,
            "annotations": object.metadata.annotations,
            "data": data,
        })
    }

    /// The change, or `None` for an update that changes nothing loaded.
    fn filter(&mut self, change: Change) -> Option<Change> {
        match &change {
            Change::Apply(object) => {
                let fingerprint = Self::fingerprint(object);
                if self.0.get(&Self::key(object)) == Some(&fingerprint) {
                    return None;
                }
                self.0.insert(Self::key(object), fingerprint);
            }
            Change::Delete(object) => {
                self.0.remove(&Self::key(object));
            }
            Change::Replace(objects) => {
                self.0 = objects
                    .iter()
                    .map(|object| (Self::key(object), Self::fingerprint(object)))
                    .collect();
            }
        }
        Some(change)
    }
}

fn apply_policy_change(cache: &PolicyCache, source: Source, change: Change) {
    match change {
        Change::Apply(object) => {
            let key = object_key(&object, source);
            let identity = PolicyIdentity::of(&object.metadata);
            match source {
                Source::ClusterPolicies => match try_decode(object) {
                    Ok(policy) => cache.apply_cluster_policy(policy),
                    Err(message) => record(cache, source, vec![(key, identity, message)]),
                },
                Source::Policies => match try_decode(object) {
                    Ok(policy) => cache.apply_policy(policy),
                    Err(message) => record(cache, source, vec![(key, identity, message)]),
                },
                Source::Exceptions => match try_decode(object) {
                    Ok(exception) => cache.apply_exception(exception),
                    Err(message) => record(cache, source, vec![(key, identity, message)]),
                },
                Source::Cel(kind) => match CelSource::from_object(kind, object) {
                    Ok(policy) => cache.apply_cel_policy(policy),
                    Err(message) => record(cache, source, vec![(key, identity, message)]),
                },
                Source::CelExceptions => match try_decode(object) {
                    Ok(exception) => cache.apply_cel_exception(exception),
                    Err(message) => record(cache, source, vec![(key, identity, message)]),
                },
            }
        }
        Change::Delete(object) => {
            let name = object.metadata.name.as_deref().unwrap_or_default();
            let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
            match source {
                Source::ClusterPolicies => cache.delete_cluster_policy(name),
                Source::Policies => cache.delete_policy(namespace, name),
                Source::Exceptions => cache.delete_exception(namespace, name),
                Source::Cel(kind) => cache.delete_cel_policy(&(kind, object_key(&object, source))),
                Source::CelExceptions => cache.delete_cel_exception(namespace, name),
            }
        }
        Change::Replace(objects) => match source {
            Source::ClusterPolicies => {
                let (policies, failures) = decode_all(objects, source, try_decode);
                cache.replace_cluster_policies(policies);
                record(cache, source, failures);
            }
            Source::Policies => {
                let (policies, failures) = decode_all(objects, source, try_decode);
                cache.replace_policies(policies);
                record(cache, source, failures);
            }
            Source::Exceptions => {
                let (exceptions, failures) = decode_all(objects, source, try_decode);
                cache.replace_exceptions(exceptions);
                record(cache, source, failures);
            }
            Source::Cel(kind) => {
                let (policies, failures) = decode_all(objects, source, |object| {
                    CelSource::from_object(kind, object)
                });
                cache.replace_cel_policies(kind, policies);
                record(cache, source, failures);
            }
            Source::CelExceptions => {
                let (exceptions, failures) = decode_all(objects, source, try_decode);
                cache.replace_cel_exceptions(exceptions);
                record(cache, source, failures);
            }
        },
    }
}

/// An object that its type cannot read, with why.
type DecodeFailure = (PolicyKey, PolicyIdentity, String);

fn object_key(object: &DynamicObject, source: Source) -> PolicyKey {
    let namespaced = match source {
        Source::ClusterPolicies => false,
        Source::Policies | Source::Exceptions | Source::CelExceptions => true,
        Source::Cel(kind) => kind.is_namespaced(),
    };
    PolicyKey {
        namespace: object.metadata.namespace.clone().filter(|_| namespaced),
        name: object.metadata.name.clone().unwrap_or_default(),
    }
}

fn try_decode<K: DeserializeOwned>(object: DynamicObject) -> Result<K, String> {
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|error| error.to_string())
}

fn decode_all<K: Debug>(
    objects: Vec<DynamicObject>,
    source: Source,
    decode: impl Fn(DynamicObject) -> Result<K, String>,
) -> (Vec<K>, Vec<DecodeFailure>) {
    let mut decoded = Vec::with_capacity(objects.len());
    let mut failures = Vec::new();
    for object in objects {
        let key = object_key(&object, source);
        let identity = PolicyIdentity::of(&object.metadata);
        match decode(object) {
            Ok(object) => decoded.push(object),
            Err(message) => failures.push((key, identity, message)),
        }
    }
    (decoded, failures)
}

/// Logs the objects that cannot be read; those that are policies are remembered as failures.
fn record(cache: &PolicyCache, source: Source, failures: Vec<DecodeFailure>) {
    for (key, identity, message) in failures {
        tracing::warn!(object = %key, %message, ?source, "object skipped: it cannot be read");
        if let Some(kind) = source.policy_kind() {
            cache.reject(kind, key, identity, message);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn object(spec: Value, status: Value) -> DynamicObject {
        serde_json::from_value(
            json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "p", "uid": "u1"}, "spec": spec, "status": status}),
        )
        .unwrap()
    }

    #[test]
    fn status_only_updates_are_not_loaded_again() {
        let mut fingerprints = Fingerprints::default();
        let applied = |fingerprints: &mut Fingerprints, object| {
            fingerprints.filter(Change::Apply(object)).is_some()
        };
        assert!(applied(
            &mut fingerprints,
            object(json!({"a": 1}), json!({}))
        ));
        assert!(!applied(
            &mut fingerprints,
            object(json!({"a": 1}), json!({"ready": true}))
        ));
        assert!(applied(
            &mut fingerprints,
            object(json!({"a": 2}), json!({"ready": true}))
        ));
        fingerprints.filter(Change::Delete(object(json!({"a": 2}), json!({}))));
        assert!(applied(
            &mut fingerprints,
            object(json!({"a": 2}), json!({}))
        ));
    }
}
