//! The GeneratingPolicies and NamespacedGeneratingPolicies (`policies.kyverno.io`), watched and
//! compiled once per change for the `cel-generate` UpdateRequests and the background paths,
//! with the `policies.kyverno.io` PolicyExceptions that name them (a policy is compiled again
//! when those change).
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, Resource};
use kyverno_api::policies::exception::PolicyException;
use kyverno_api::policies::generating::{GeneratingPolicy, NamespacedGeneratingPolicy, Spec};
use kyverno_policy_core::celpolicy::CelPolicyLoadError;
use kyverno_policy_core::celpolicy::generating::CompiledGeneratingPolicy;
use kyverno_runtime::policy_cache::{PolicyCache, PolicyKey};
use tokio::sync::watch;

/// A GeneratingPolicy as written and compiled.
#[derive(Debug)]
pub struct LoadedGenerating {
    /// The policy's namespace (NamespacedGeneratingPolicy) and name.
    pub key: PolicyKey,
    /// The policy's spec.
    pub spec: Spec,
    /// The PolicyExceptions naming the policy, compiled into it.
    pub exceptions: Vec<Arc<PolicyException>>,
    /// The compiled policy.
    pub compiled: CompiledGeneratingPolicy,
}

impl PartialEq for LoadedGenerating {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.spec == other.spec
            && same_exceptions(&self.exceptions, &other.exceptions)
    }
}

impl LoadedGenerating {
    /// Compiles `spec` of the policy `key` with those of `exceptions` that name it.
    pub fn compile(
        key: PolicyKey,
        spec: Spec,
        exceptions: &[Arc<PolicyException>],
    ) -> Result<Self, CelPolicyLoadError> {
        let exceptions = naming(&key, exceptions);
        let compiled = CompiledGeneratingPolicy::compile(
            &key.name,
            key.namespace.as_deref(),
            &spec,
            &exceptions,
        )?;
        Ok(Self {
            key,
            spec,
            exceptions,
            compiled,
        })
    }

    /// [`Self::compile`]; `None` (logged) when the policy does not compile.
    fn load(key: PolicyKey, spec: Spec, exceptions: &[Arc<PolicyException>]) -> Option<Self> {
        match Self::compile(key.clone(), spec, exceptions) {
            Ok(loaded) => Some(loaded),
            Err(error) => {
                tracing::warn!(policy = %key, %error, "GeneratingPolicy not loaded");
                None
            }
        }
    }
}

/// The kind of the policy `key`, as PolicyExceptions name it.
fn kind_of(key: &PolicyKey) -> &'static str {
    if key.namespace.is_some() {
        "NamespacedGeneratingPolicy"
    } else {
        "GeneratingPolicy"
    }
}

/// The exceptions among `exceptions` whose `policyRefs` name the policy `key` (by kind and
/// name, as for the other `policies.kyverno.io` kinds).
fn naming(key: &PolicyKey, exceptions: &[Arc<PolicyException>]) -> Vec<Arc<PolicyException>> {
    let kind = kind_of(key);
    exceptions
        .iter()
        .filter(|exception| {
            exception
                .spec
                .policy_refs
                .iter()
                .any(|reference| reference.name == key.name && reference.kind == kind)
        })
        .cloned()
        .collect()
}

/// Whether `left` and `right` hold the same exceptions (the root of the kind has no
/// `PartialEq`: its metadata and spec are compared).
fn same_exceptions(left: &[Arc<PolicyException>], right: &[Arc<PolicyException>]) -> bool {
    left.len() == right.len()
        && left.iter().zip(right).all(|(left, right)| {
            Arc::ptr_eq(left, right) || (left.metadata == right.metadata && left.spec == right.spec)
        })
}

/// The loaded policies, by key.
pub type GeneratingSet = BTreeMap<PolicyKey, Arc<LoadedGenerating>>;

/// The policies as written, the exceptions and the policies loaded from both.
#[derive(Debug, Default)]
struct State {
    specs: BTreeMap<PolicyKey, Spec>,
    exceptions: Vec<Arc<PolicyException>>,
    loaded: GeneratingSet,
}

impl State {
    /// Loads the written policy `key` (takes it out when it does not compile).
    fn load(&mut self, key: &PolicyKey) {
        let loaded = self
            .specs
            .get(key)
            .and_then(|spec| LoadedGenerating::load(key.clone(), spec.clone(), &self.exceptions));
        match loaded {
            Some(loaded) => {
                self.loaded.insert(key.clone(), Arc::new(loaded));
            }
            None => {
                self.loaded.remove(key);
            }
        }
    }
}

/// The GeneratingPolicies of the cluster; every change bumps a revision.
#[derive(Debug)]
pub struct GeneratingPolicies {
    state: RwLock<State>,
    revision: watch::Sender<u64>,
}

impl Default for GeneratingPolicies {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            revision: watch::Sender::new(0),
        }
    }
}

impl GeneratingPolicies {
    /// The policies now.
    pub fn snapshot(&self) -> GeneratingSet {
        self.state
            .read()
            .map(|state| state.loaded.clone())
            .unwrap_or_default()
    }

    /// The policy `key`.
    pub fn get(&self, key: &PolicyKey) -> Option<Arc<LoadedGenerating>> {
        self.state
            .read()
            .ok()
            .and_then(|state| state.loaded.get(key).cloned())
    }

    /// A receiver that sees every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Adds or replaces the policy `key` (removes it when `spec` does not compile).
    pub fn apply(&self, key: PolicyKey, spec: Spec) {
        self.change(|state| {
            state.specs.insert(key.clone(), spec);
            state.load(&key);
            true
        });
    }

    /// Removes the policy `key`.
    pub fn delete(&self, key: &PolicyKey) {
        self.change(|state| {
            state.specs.remove(key);
            state.loaded.remove(key);
            true
        });
    }

    /// Replaces the `policies.kyverno.io` PolicyExceptions: the policies whose naming
    /// exceptions changed are compiled again. A policy that no longer compiles because of an
    /// exception keeps its previous form (logged), so that a broken exception never reads as
    /// the policy's deletion.
    pub fn set_exceptions(&self, exceptions: Vec<Arc<PolicyException>>) {
        self.change(|state| {
            if same_exceptions(&state.exceptions, &exceptions) {
                return false;
            }
            state.exceptions = exceptions;
            let mut changed = false;
            let specs = std::mem::take(&mut state.specs);
            for (key, spec) in &specs {
                let naming = naming(key, &state.exceptions);
                let current = state.loaded.get(key);
                if current.is_some_and(|loaded| same_exceptions(&loaded.exceptions, &naming)) {
                    continue;
                }
                match LoadedGenerating::compile(key.clone(), spec.clone(), &state.exceptions) {
                    Ok(loaded) => {
                        state.loaded.insert(key.clone(), Arc::new(loaded));
                        changed = true;
                    }
                    Err(error) => tracing::warn!(
                        policy = %key,
                        %error,
                        "GeneratingPolicy not compiled with its PolicyExceptions"
                    ),
                }
            }
            state.specs = specs;
            changed
        });
    }

    /// Replaces the policies of one scope (namespaced or cluster-wide) with `listed`.
    fn replace(&self, namespaced: bool, listed: Vec<(PolicyKey, Spec)>) {
        self.change(|state| {
            state
                .specs
                .retain(|key, _| key.namespace.is_some() != namespaced);
            state
                .loaded
                .retain(|key, _| key.namespace.is_some() != namespaced);
            for (key, spec) in listed {
                state.specs.insert(key.clone(), spec);
                state.load(&key);
            }
            true
        });
    }

    /// Applies `change`, bumping the revision when it answers that something changed.
    fn change(&self, change: impl FnOnce(&mut State) -> bool) {
        let changed = match self.state.write() {
            Ok(mut state) => change(&mut state),
            Err(_) => false,
        };
        if changed {
            self.revision.send_modify(|revision| *revision += 1);
        }
    }
}

/// Keeps the PolicyExceptions of `policies` in line with those of `cache` (which watches them)
/// until the task is aborted.
pub fn spawn_exceptions_feed(
    cache: Arc<PolicyCache>,
    policies: Arc<GeneratingPolicies>,
) -> tokio::task::JoinHandle<()> {
    let mut revisions = cache.subscribe();
    tokio::spawn(async move {
        loop {
            revisions.borrow_and_update();
            policies.set_exceptions(cache.cel_exceptions());
            if revisions.changed().await.is_err() {
                return;
            }
        }
    })
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
    use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
    use kyverno_policy_core::celpolicy::RequestInput;
    use kyverno_policy_core::celpolicy::resources::{GroupVersionResource, ResourceTable};
    use kyverno_policy_core::engine::{ContextProvider, NoExternalData};
    use kyverno_policy_core::request::{GroupVersionKind, ResourceRequest};
    use kyverno_policy_core::response::RuleStatus;

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

    fn exception(name: &str, kind: &str, policy: &str, condition: &str) -> Arc<PolicyException> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "policies.kyverno.io/v1", "kind": "PolicyException",
                "metadata": {"name": name, "namespace": "kyverno"},
                "spec": {"policyRefs": [{"name": policy, "kind": kind}],
                         "matchConditions": [{"name": "c", "expression": condition}]}
            }))
            .expect("an exception"),
        )
    }

    /// The status of `policy` for the creation of the namespace `name`, and how many resources
    /// it generates.
    fn outcome(policy: &LoadedGenerating, name: &str) -> (RuleStatus, usize) {
        let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": "u"}});
        let request = ResourceRequest::new(namespace)
            .with_operation(AdmissionOperation::Create)
            .with_kind(GroupVersionKind::from_api_version("v1", "Namespace"), "");
        let resource = GroupVersionResource::new("", "v1", "namespaces");
        let provider: Arc<dyn ContextProvider> = Arc::new(NoExternalData);
        let response = policy
            .compiled
            .evaluate(
                &RequestInput::new(&request, &resource, None),
                ResourceTable::builtin(),
                &provider,
            )
            .expect("the policy applies");
        (response.rule.status, response.resources.len())
    }

    #[test]
    fn exceptions_naming_a_policy_recompile_it() {
        let policies = GeneratingPolicies::default();
        let template =
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: default";
        policies.apply(key(None, "g"), spec(template));
        // A namespaced policy generates into its own namespace.
        let own_namespace = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x";
        policies.apply(key(Some("team"), "g"), spec(own_namespace));
        let namespaced = policies.get(&key(Some("team"), "g")).expect("loaded");
        let mut revisions = policies.subscribe();
        revisions.borrow_and_update();

        let skipped = exception(
            "skip",
            "GeneratingPolicy",
            "g",
            "object.metadata.name == 'skipped'",
        );
        policies.set_exceptions(vec![Arc::clone(&skipped)]);
        assert!(revisions.has_changed().expect("the sender lives"));
        let cluster_wide = policies.get(&key(None, "g")).expect("loaded");
        assert!(same_exceptions(
            &cluster_wide.exceptions,
            &[Arc::clone(&skipped)]
        ));
        assert_eq!(outcome(&cluster_wide, "skipped"), (RuleStatus::Skip, 0));
        assert_eq!(outcome(&cluster_wide, "other"), (RuleStatus::Pass, 1));
        // The exception names the cluster-wide kind only.
        let same_namespaced = policies.get(&key(Some("team"), "g")).expect("loaded");
        assert!(Arc::ptr_eq(&namespaced, &same_namespaced));
        assert_eq!(outcome(&same_namespaced, "skipped"), (RuleStatus::Pass, 1));

        // The same exceptions again change nothing.
        revisions.borrow_and_update();
        policies.set_exceptions(vec![Arc::clone(&skipped)]);
        assert!(!revisions.has_changed().expect("the sender lives"));

        // An exception that does not compile leaves the policy as it was.
        let broken = exception(
            "broken",
            "GeneratingPolicy",
            "g",
            "object.metadata.name ===",
        );
        policies.set_exceptions(vec![Arc::clone(&skipped), broken]);
        let kept = policies.get(&key(None, "g")).expect("still loaded");
        assert!(Arc::ptr_eq(&kept, &cluster_wide));

        // Deleted, the exception exempts nothing any more.
        policies.set_exceptions(Vec::new());
        let plain = policies.get(&key(None, "g")).expect("loaded");
        assert!(plain.exceptions.is_empty());
        assert_eq!(outcome(&plain, "skipped"), (RuleStatus::Pass, 1));
    }
}
