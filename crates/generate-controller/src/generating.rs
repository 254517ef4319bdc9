//! The GeneratingPolicies and NamespacedGeneratingPolicies (`policies.kyverno.io`), watched and
//! compiled once per change for the `cel-generate` UpdateRequests and the background paths.
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, Resource};
use kyverno_api::policies::generating::{GeneratingPolicy, NamespacedGeneratingPolicy, Spec};
use kyverno_policy_core::celpolicy::generating::CompiledGeneratingPolicy;
use kyverno_runtime::policy_cache::PolicyKey;
use tokio::sync::watch;

/// A GeneratingPolicy as written and compiled.
#[derive(Debug)]
pub struct LoadedGenerating {
    /// The policy's namespace (NamespacedGeneratingPolicy) and name.
    pub key: PolicyKey,
    /// The policy's spec.
    pub spec: Spec,
    /// The compiled policy.
    pub compiled: CompiledGeneratingPolicy,
}

impl PartialEq for LoadedGenerating {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.spec == other.spec
    }
}

impl LoadedGenerating {
    /// Compiles `spec` of the policy `key`; `None` (logged) when it does not compile.
    pub fn compile(key: PolicyKey, spec: Spec) -> Option<Self> {
        match CompiledGeneratingPolicy::compile(&key.name, key.namespace.as_deref(), &spec, &[]) {
            Ok(compiled) => Some(Self {
                key,
                spec,
                compiled,
            }),
            Err(error) => {
                tracing::warn!(policy = %key, %error, "GeneratingPolicy not loaded");
                None
            }
        }
    }
}

/// The loaded policies, by key.
pub type GeneratingSet = BTreeMap<PolicyKey, Arc<LoadedGenerating>>;

/// The GeneratingPolicies of the cluster; every change bumps a revision.
#[derive(Debug)]
pub struct GeneratingPolicies {
    policies: RwLock<GeneratingSet>,
    revision: watch::Sender<u64>,
}

impl Default for GeneratingPolicies {
    fn default() -> Self {
        Self {
            policies: RwLock::default(),
            revision: watch::Sender::new(0),
        }
    }
}

impl GeneratingPolicies {
    /// The policies now.
    pub fn snapshot(&self) -> GeneratingSet {
        self.policies
            .read()
            .map(|policies| policies.clone())
            .unwrap_or_default()
    }

    /// The policy `key`.
    pub fn get(&self, key: &PolicyKey) -> Option<Arc<LoadedGenerating>> {
        self.policies
            .read()
            .ok()
            .and_then(|policies| policies.get(key).cloned())
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Adds or replaces the policy `key` (removes it when `spec` does not compile).
    pub fn apply(&self, key: PolicyKey, spec: Spec) {
        let loaded = LoadedGenerating::compile(key.clone(), spec);
        self.change(|policies| match loaded {
            Some(loaded) => {
                policies.insert(key, Arc::new(loaded));
            }
            None => {
                policies.remove(&key);
            }
        });
    }

    /// Removes the policy `key`.
    pub fn delete(&self, key: &PolicyKey) {
        self.change(|policies| {
            policies.remove(key);
        });
    }

    /// Replaces the policies of one scope (namespaced or cluster-wide) with `listed`.
    fn replace(&self, namespaced: bool, listed: Vec<(PolicyKey, Spec)>) {
        let loaded: Vec<_> = listed
            .into_iter()
            .filter_map(|(key, spec)| LoadedGenerating::compile(key, spec))
            .collect();
        self.change(|policies| {
            policies.retain(|key, _| key.namespace.is_some() != namespaced);
            for policy in loaded {
                policies.insert(policy.key.clone(), Arc::new(policy));
            }
        });
    }

    fn change(&self, change: impl FnOnce(&mut GeneratingSet)) {
        if let Ok(mut policies) = self.policies.write() {
            change(&mut policies);
        }
        self.revision.send_modify(|revision| *revision += 1);
    }
}

/// What the watches need of a policy kind.
trait GeneratingKind:
    Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + k8s_openapi::serde::de::DeserializeOwned
    + Send
    + 'static
{
    /// Whether the kind is namespaced.
    const NAMESPACED: bool;
    /// The policy's key and spec.
    fn entry(self) -> (PolicyKey, Spec);
}

impl GeneratingKind for GeneratingPolicy {
    const NAMESPACED: bool = false;
    fn entry(self) -> (PolicyKey, Spec) {
        let key = PolicyKey {
            namespace: None,
            name: self.metadata.name.unwrap_or_default(),
        };
        (key, Spec::clone(&self.spec))
    }
}

impl GeneratingKind for NamespacedGeneratingPolicy {
    const NAMESPACED: bool = true;
    fn entry(self) -> (PolicyKey, Spec) {
        let key = PolicyKey {
            namespace: Some(self.metadata.namespace.unwrap_or_default()),
            name: self.metadata.name.unwrap_or_default(),
        };
        (key, Spec::clone(&self.spec))
    }
}

/// Starts the watches of both kinds feeding `policies`; the receiver turns true once both have
/// listed. They run until the tasks are aborted.
pub fn spawn_watches(
    client: &Client,
    policies: &Arc<GeneratingPolicies>,
) -> (watch::Receiver<bool>, Vec<tokio::task::JoinHandle<()>>) {
    let (listed_tx, listed_rx) = watch::channel(0u8);
    let listed_tx = Arc::new(listed_tx);
    let (synced_tx, synced_rx) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(feed::<GeneratingPolicy>(
            Api::all(client.clone()),
            Arc::clone(policies),
            Arc::clone(&listed_tx),
        )),
        tokio::spawn(feed::<NamespacedGeneratingPolicy>(
            Api::all(client.clone()),
            Arc::clone(policies),
            listed_tx,
        )),
        tokio::spawn(async move {
            let mut listed = listed_rx;
            while *listed.borrow_and_update() < 2 {
                if listed.changed().await.is_err() {
                    return;
                }
            }
            let _ = synced_tx.send(true);
            synced_tx.closed().await;
        }),
    ];
    (synced_rx, tasks)
}

async fn feed<K: GeneratingKind>(
    api: Api<K>,
    policies: Arc<GeneratingPolicies>,
    listed: Arc<watch::Sender<u8>>,
) {
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    let mut initial: Vec<(PolicyKey, Spec)> = Vec::new();
    let mut first_listing = true;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => initial.clear(),
            Ok(Event::InitApply(policy)) => initial.push(policy.entry()),
            Ok(Event::InitDone) => {
                policies.replace(K::NAMESPACED, std::mem::take(&mut initial));
                if first_listing {
                    first_listing = false;
                    listed.send_modify(|count| *count += 1);
                }
            }
            Ok(Event::Apply(policy)) => {
                let (key, spec) = policy.entry();
                policies.apply(key, spec);
            }
            Ok(Event::Delete(policy)) => policies.delete(&policy.entry().0),
            Err(error) => tracing::warn!(%error, "GeneratingPolicy watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: &str) -> Spec {
        serde_json::from_value(serde_json::json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["namespaces"]}]},
            "generate": [{"template": {"value": value}}]
        }))
        .expect("a spec")
    }

    fn key(namespace: Option<&str>, name: &str) -> PolicyKey {
        PolicyKey {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    #[test]
    fn policies_are_compiled_replaced_and_removed() {
        let policies = GeneratingPolicies::default();
        let revisions = policies.subscribe();
        policies.apply(key(None, "a"), spec("kind: ConfigMap"));
        policies.apply(key(Some("team"), "b"), spec("kind: ConfigMap"));
        assert_eq!(policies.snapshot().len(), 2);
        assert!(revisions.has_changed().expect("the sender lives"));
        // A spec that does not compile takes the policy out.
        let mut broken = spec("kind: ConfigMap");
        broken.generate[0].template = None;
        policies.apply(key(None, "a"), broken);
        assert!(policies.get(&key(None, "a")).is_none());
        // A listing of the namespaced kind keeps the cluster-wide policies.
        policies.apply(key(None, "c"), spec("kind: Secret"));
        policies.replace(true, Vec::new());
        assert_eq!(
            policies.snapshot().keys().cloned().collect::<Vec<_>>(),
            vec![key(None, "c")]
        );
        policies.delete(&key(None, "c"));
        assert!(policies.snapshot().is_empty());
    }
}
