//! The policies and exceptions in force, loaded once per change and indexed so that an admission
//! request only meets the policies whose rules can match its kind and operation.
//!
//! The cache itself is synchronous (a snapshot behind a lock held only to clone an `Arc`), so
//! lookups never wait on the API server; [`crate::watch`] feeds it from watches.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use kyverno_api::kyverno::v1::match_resources::{AdmissionOperation, MatchResources};
use kyverno_api::kyverno::v1::mutate::Mutation;
use kyverno_api::kyverno::v1::policy::{ClusterPolicy, FailurePolicy, Policy};
use kyverno_api::kyverno::v1::rule::Rule;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use kyverno_policy_core::engine::ContextProvider;
use kyverno_policy_core::engine::{LoadedPolicy, PolicyLoadError};
use kyverno_policy_core::wildcard;
use tokio::sync::watch;

use crate::cel_policies::{CachedCelPolicy, CelKey, CelKind, CelSource, CelState};

/// Upstream's default webhook timeout, in seconds.
pub const DEFAULT_WEBHOOK_TIMEOUT_SECONDS: i32 = 10;

/// What a policy gets when it does not say how its webhook behaves: the admission controller's
/// `--webhookTimeout` and `--forceFailurePolicyIgnore`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebhookDefaults {
    /// The webhook timeout of policies that set none, in seconds (upstream's 10).
    pub timeout_seconds: i32,
    /// Whether every policy's failure policy is `Ignore`, whatever it says.
    pub force_failure_policy_ignore: bool,
}

impl Default for WebhookDefaults {
    fn default() -> Self {
        Self {
            timeout_seconds: DEFAULT_WEBHOOK_TIMEOUT_SECONDS,
            force_failure_policy_ignore: false,
        }
    }
}

impl WebhookDefaults {
    /// The failure policy of a policy that asks for `asked`: `Ignore` when forced, else what it
    /// asks, else `Fail`.
    pub fn failure_policy(&self, asked: Option<FailurePolicy>) -> FailurePolicy {
        if self.force_failure_policy_ignore {
            FailurePolicy::Ignore
        } else {
            asked.unwrap_or(FailurePolicy::Fail)
        }
    }

    /// The webhook timeout of a policy that asks for `asked`, else the default.
    pub fn timeout_seconds(&self, asked: Option<i32>) -> i32 {
        asked.unwrap_or(self.timeout_seconds)
    }
}

/// Identifies a policy: its namespace (`None` for a ClusterPolicy) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyKey {
    /// The namespace of a Policy; `None` for a ClusterPolicy.
    pub namespace: Option<String>,
    /// The policy's name.
    pub name: String,
}

impl std::fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A policy in the cache, with what admission needs to know about it.
#[derive(Debug)]
pub struct CachedPolicy {
    /// The loaded policy.
    pub policy: LoadedPolicy,
    /// The policy's `metadata.resourceVersion` (the value of its label in reports).
    pub resource_version: String,
    /// How the webhook handles errors and timeouts for it: `webhookConfiguration.failurePolicy`,
    /// else the deprecated `spec.failurePolicy`, else `Fail` (`Ignore` when forced).
    pub failure_policy: FailurePolicy,
    /// The webhook timeout it asks for: `webhookConfiguration.timeoutSeconds`, else the
    /// deprecated `spec.webhookTimeoutSeconds`, else the default (10).
    pub timeout_seconds: i32,
    /// Whether some rule needs the requester's roles (`roles`/`clusterRoles` in `match` or
    /// `exclude`, `request.roles`/`request.clusterRoles` in variables).
    pub uses_roles: bool,
    /// Whether admission requests are evaluated (`spec.admission`, true when unset): a policy
    /// with `admission: false` only runs in the background (scans, generateExisting).
    pub admission: bool,
    /// The operations its rules match; `None` when some rule matches every operation.
    operations: Option<OperationSet>,
}

impl CachedPolicy {
    fn new(policy: LoadedPolicy, resource_version: String, defaults: &WebhookDefaults) -> Self {
        let webhook = policy.spec.webhook_configuration.as_ref();
        let failure_policy = defaults.failure_policy(
            webhook
                .and_then(|webhook| webhook.failure_policy)
                .or(policy.spec.failure_policy),
        );
        let timeout_seconds = defaults.timeout_seconds(
            webhook
                .and_then(|webhook| webhook.timeout_seconds)
                .or(policy.spec.webhook_timeout_seconds),
        );
        let operations = policy
            .rules
            .iter()
            .try_fold(OperationSet::default(), |all, rule| {
                Some(all.union(rule_operations(&rule.match_resources)?))
            });
        let uses_roles = uses_roles(&policy.rules);
        let admission = policy.spec.admission != Some(false);
        Self {
            policy,
            resource_version,
            failure_policy,
            timeout_seconds,
            uses_roles,
            admission,
            operations,
        }
    }

    /// Whether some rule validates (`validate` or `verifyImages`): the policy is evaluated by
    /// the validating webhook.
    pub fn has_validate(&self) -> bool {
        self.policy
            .rules
            .iter()
            .any(|rule| rule.validate.is_some() || !rule.verify_images.is_empty())
    }

    /// Whether some rule mutates the admitted resource itself (a mutate rule without targets):
    /// the policy is evaluated by the mutating webhook.
    pub fn has_mutate(&self) -> bool {
        self.policy.rules.iter().any(rule_mutates_resource)
    }

    /// Whether some rule generates resources or mutates existing ones: work for the background
    /// controller.
    pub fn has_background_work(&self) -> bool {
        self.policy.rules.iter().any(|rule| {
            rule.generate.is_some()
                || rule
                    .mutate
                    .as_ref()
                    .is_some_and(|mutation| !mutation.targets.is_empty())
        })
    }

    /// Whether the policy can apply to requests with `operation`.
    pub fn matches_operation(&self, operation: AdmissionOperation) -> bool {
        self.operations
            .as_ref()
            .is_none_or(|operations| operations.contains(operation))
    }

    /// How the policy is named in messages and reports: `name`, or `namespace/name`.
    pub fn key(&self) -> PolicyKey {
        PolicyKey {
            namespace: self.policy.namespace.clone(),
            name: self.policy.name.clone(),
        }
    }
}

/// Whether `rules` need the requester's roles: some `match`/`exclude` block names `roles` or
/// `clusterRoles`, or some text refers to `request.roles` or `request.clusterRoles`.
fn uses_roles(rules: &[Rule]) -> bool {
    let text = serde_json::to_string(rules).unwrap_or_default();
    [
        "\"roles\":",
        "\"clusterRoles\":",
        "request.roles",
        "request.clusterRoles",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Whether `rule` patches the admitted resource (a non-empty mutation without targets).
pub fn rule_mutates_resource(rule: &Rule) -> bool {
    rule.mutate
        .as_ref()
        .is_some_and(|mutation| mutation.targets.is_empty() && *mutation != Mutation::default())
}

/// A set of admission operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OperationSet(u8);

impl OperationSet {
    fn bit(operation: AdmissionOperation) -> u8 {
        match operation {
            AdmissionOperation::Create => 1,
            AdmissionOperation::Update => 2,
            AdmissionOperation::Delete => 4,
            AdmissionOperation::Connect => 8,
        }
    }

    /// Whether `operation` is in the set.
    pub fn contains(self, operation: AdmissionOperation) -> bool {
        self.0 & Self::bit(operation) != 0
    }

    /// Both sets together.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl FromIterator<AdmissionOperation> for OperationSet {
    fn from_iter<T: IntoIterator<Item = AdmissionOperation>>(operations: T) -> Self {
        Self(
            operations
                .into_iter()
                .fold(0, |bits, operation| bits | Self::bit(operation)),
        )
    }
}

/// The operations a rule's `match` block names; `None` when one of its filters names none (so
/// every operation matches).
pub fn rule_operations(match_resources: &MatchResources) -> Option<OperationSet> {
    let descriptions = match_resources
        .any
        .iter()
        .chain(&match_resources.all)
        .filter_map(|filter| filter.resources.as_ref())
        .chain(match_resources.resources.as_ref());
    let mut operations = OperationSet::default();
    let mut any_description = false;
    for description in descriptions {
        any_description = true;
        if description.operations.is_empty() {
            return None;
        }
        operations = operations.union(description.operations.iter().copied().collect());
    }
    any_description.then_some(operations)
}

/// The kind names a rule's `match` block selects (`apps/v1/Deployment` gives `Deployment`,
/// `Pod/exec` gives `Pod`); `None` when it may select any kind (a wildcard, or no kinds).
pub fn rule_kind_names(rule: &Rule) -> Option<BTreeSet<String>> {
    let match_resources = &rule.match_resources;
    let mut names = BTreeSet::new();
    let descriptions = match_resources
        .any
        .iter()
        .chain(&match_resources.all)
        .filter_map(|filter| filter.resources.as_ref())
        .chain(match_resources.resources.as_ref());
    for description in descriptions {
        if description.kinds.is_empty() {
            return None;
        }
        for selector in &description.kinds {
            let name = selector
                .split('/')
                .find(|part| part.starts_with(|c: char| c.is_ascii_uppercase()))?;
            if wildcard::has_wildcard(name) {
                return None;
            }
            names.insert(name.to_owned());
        }
    }
    (!names.is_empty()).then_some(names)
}

/// One immutable state of the cache.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every loaded policy, in key order, with `admission: false` ones (see
    /// [`CachedPolicy::admission`]; [`Self::policies_for`] leaves them out).
    pub policies: Vec<Arc<CachedPolicy>>,
    /// The PolicyExceptions in force.
    pub exceptions: Arc<[PolicyException]>,
    /// Policies by the kind names their rules select.
    by_kind: HashMap<String, Vec<Arc<CachedPolicy>>>,
    /// Policies with a rule that may select any kind.
    any_kind: Vec<Arc<CachedPolicy>>,
    /// The CEL policies (`policies.kyverno.io`), in kind and key order.
    pub cel: Vec<Arc<CachedCelPolicy>>,
}

impl Snapshot {
    /// The policies that may apply to a request on `kind` in `namespace` with `operation`, in
    /// key order: namespaced Policies only for their own namespace.
    pub fn policies_for(
        &self,
        kind: &str,
        namespace: &str,
        operation: AdmissionOperation,
    ) -> Vec<Arc<CachedPolicy>> {
        let by_kind = self
            .by_kind
            .get(kind)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut found: Vec<Arc<CachedPolicy>> = by_kind
            .iter()
            .chain(&self.any_kind)
            .filter(|cached| {
                cached.matches_operation(operation)
                    && cached
                        .policy
                        .namespace
                        .as_deref()
                        .is_none_or(|own| own == namespace)
            })
            .cloned()
            .collect();
        if !by_kind.is_empty() && !self.any_kind.is_empty() {
            found.sort_by_key(|cached| cached.key());
        }
        found
    }
}

/// Why a policy is not in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadFailure {
    /// The policy.
    pub key: PolicyKey,
    /// What was wrong with it.
    pub message: String,
}

/// The kinds of policies whose readiness the cache knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// `kyverno.io/v1` ClusterPolicy.
    ClusterPolicy,
    /// `kyverno.io/v1` Policy.
    Policy,
    /// A `policies.kyverno.io` kind.
    Cel(CelKind),
}

impl PolicyKind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::ClusterPolicy => "ClusterPolicy",
            PolicyKind::Policy => "Policy",
            PolicyKind::Cel(kind) => kind.name(),
        }
    }

    /// The API resource serving the kind.
    pub fn api_resource(self) -> kube::api::ApiResource {
        match self {
            PolicyKind::ClusterPolicy => kube::api::ApiResource::erase::<ClusterPolicy>(&()),
            PolicyKind::Policy => kube::api::ApiResource::erase::<Policy>(&()),
            PolicyKind::Cel(kind) => kind.api_resource(),
        }
    }
}

/// Which object a policy is: its uid and generation (a recreated or changed policy gets its
/// status written again).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PolicyIdentity {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
}

impl PolicyIdentity {
    /// The identity of the object `metadata` describes.
    pub fn of(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        Self {
            uid: metadata.uid.clone().unwrap_or_default(),
            generation: metadata.generation,
        }
    }
}

/// Whether a policy is in use, for its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// The policy's kind.
    pub kind: PolicyKind,
    /// The policy.
    pub key: PolicyKey,
    /// Which object it is.
    pub identity: PolicyIdentity,
    /// Why it is not in use; `None` when it loaded.
    pub error: Option<String>,
}

#[derive(Default)]
struct State {
    policies: BTreeMap<PolicyKey, Arc<CachedPolicy>>,
    exceptions: BTreeMap<PolicyKey, PolicyException>,
    failures: BTreeMap<PolicyKey, String>,
    identities: BTreeMap<(PolicyKind, PolicyKey), PolicyIdentity>,
    cel: CelState,
    defaults: WebhookDefaults,
}

impl State {
    fn snapshot(&self) -> Snapshot {
        let mut by_kind: HashMap<String, Vec<Arc<CachedPolicy>>> = HashMap::new();
        let mut any_kind = Vec::new();
        for cached in self.policies.values().filter(|cached| cached.admission) {
            let mut names = BTreeSet::new();
            let mut any = false;
            for rule in &cached.policy.rules {
                match rule_kind_names(rule) {
                    Some(rule_names) => names.extend(rule_names),
                    None => any = true,
                }
            }
            if any {
                any_kind.push(Arc::clone(cached));
                continue;
            }
            for name in names {
                by_kind.entry(name).or_default().push(Arc::clone(cached));
            }
        }
        Snapshot {
            policies: self.policies.values().cloned().collect(),
            exceptions: self.exceptions.values().cloned().collect(),
            by_kind,
            any_kind,
            cel: self.cel.compiled(),
        }
    }

    fn readiness(&self) -> Vec<Readiness> {
        self.identities
            .iter()
            .map(|((kind, key), identity)| {
                let error = match kind {
                    PolicyKind::ClusterPolicy | PolicyKind::Policy => self.failures.get(key),
                    PolicyKind::Cel(cel_kind) => self.cel.failures().get(&(*cel_kind, key.clone())),
                };
                Readiness {
                    kind: *kind,
                    key: key.clone(),
                    identity: identity.clone(),
                    error: error.cloned(),
                }
            })
            .collect()
    }
}

/// The shared policy cache.
pub struct PolicyCache {
    state: RwLock<State>,
    snapshot: RwLock<Arc<Snapshot>>,
    revision: watch::Sender<u64>,
}

impl Default for PolicyCache {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            snapshot: RwLock::default(),
            revision: watch::Sender::new(0),
        }
    }
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCache")
            .field("revision", &*self.revision.borrow())
            .finish_non_exhaustive()
    }
}

/// Which kind of object a cache change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// ClusterPolicies.
    ClusterPolicies,
    /// Policies.
    Policies,
    /// PolicyExceptions.
    Exceptions,
    /// Policies of a `policies.kyverno.io` kind.
    Cel(CelKind),
    /// `policies.kyverno.io` PolicyExceptions.
    CelExceptions,
}

impl Source {
    /// Every source the cache is fed from.
    pub fn all() -> Vec<Source> {
        let mut all = vec![
            Source::ClusterPolicies,
            Source::Policies,
            Source::Exceptions,
        ];
        all.extend(CelKind::ALL.map(Source::Cel));
        all.push(Source::CelExceptions);
        all
    }

    /// Every source but the generating kinds: what controllers other than the admission
    /// controller (which queues GeneratingPolicies' UpdateRequests) need.
    pub fn without_generating() -> Vec<Source> {
        Self::all()
            .into_iter()
            .filter(|source| !matches!(source, Source::Cel(kind) if kind.is_generating()))
            .collect()
    }

    /// The API resource of the source's objects.
    pub fn api_resource(self) -> kube::api::ApiResource {
        match self {
            Source::ClusterPolicies => PolicyKind::ClusterPolicy.api_resource(),
            Source::Policies => PolicyKind::Policy.api_resource(),
            Source::Exceptions => kube::api::ApiResource::erase::<PolicyException>(&()),
            Source::Cel(kind) => kind.api_resource(),
            Source::CelExceptions => kube::api::ApiResource::erase::<
                kyverno_api::policies::exception::PolicyException,
            >(&()),
        }
    }

    /// The kind of policies of the source; `None` for exceptions.
    pub fn policy_kind(self) -> Option<PolicyKind> {
        match self {
            Source::ClusterPolicies => Some(PolicyKind::ClusterPolicy),
            Source::Policies => Some(PolicyKind::Policy),
            Source::Cel(kind) => Some(PolicyKind::Cel(kind)),
            Source::Exceptions | Source::CelExceptions => None,
        }
    }
}

impl PolicyCache {
    /// An empty cache whose policies get `defaults` where they say nothing.
    pub fn with_webhook_defaults(defaults: WebhookDefaults) -> Self {
        let cache = Self::default();
        cache.update(|state| {
            state.defaults = defaults;
            state.cel.set_webhook_defaults(defaults);
        });
        cache
    }

    /// What policies get where they say nothing.
    pub fn webhook_defaults(&self) -> WebhookDefaults {
        self.with_state(|state| state.defaults)
    }

    /// The current state.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(snapshot) => Arc::clone(&snapshot),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// A receiver of the revision number, bumped on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// The policies that failed to load, with why.
    pub fn failures(&self) -> Vec<LoadFailure> {
        self.with_state(|state| {
            state
                .failures
                .iter()
                .map(|(key, message)| LoadFailure {
                    key: key.clone(),
                    message: message.clone(),
                })
                .collect()
        })
    }

    /// Every policy written (loaded, left out of admission, or failed), with whether it is in
    /// use.
    pub fn readiness(&self) -> Vec<Readiness> {
        self.with_state(State::readiness)
    }

    /// Adds or replaces a ClusterPolicy.
    pub fn apply_cluster_policy(&self, policy: ClusterPolicy) {
        let key = cluster_key(&policy);
        let identity = PolicyIdentity::of(&policy.metadata);
        self.update(|state| {
            state
                .identities
                .insert((PolicyKind::ClusterPolicy, key.clone()), identity);
            let version = resource_version(&policy.metadata);
            load_into(
                state,
                key,
                version,
                LoadedPolicy::from_cluster_policy(policy),
            );
        });
    }

    /// Adds or replaces a Policy.
    pub fn apply_policy(&self, policy: Policy) {
        let key = namespaced_key(&policy.metadata);
        let identity = PolicyIdentity::of(&policy.metadata);
        self.update(|state| {
            state
                .identities
                .insert((PolicyKind::Policy, key.clone()), identity);
            let version = resource_version(&policy.metadata);
            load_into(state, key, version, LoadedPolicy::from_policy(policy));
        });
    }

    /// Makes MutatingPolicies read Kyverno's CEL libraries through `provider`.
    pub fn set_cel_provider(&self, provider: Arc<dyn ContextProvider>) {
        self.update(|state| state.cel.set_provider(provider));
    }

    /// Adds or replaces a CEL policy.
    pub fn apply_cel_policy(&self, source: CelSource) {
        let identity = PolicyIdentity::of(source.metadata());
        self.update(|state| {
            state
                .identities
                .insert((PolicyKind::Cel(source.kind()), source.key()), identity);
            state.cel.apply(source);
        });
    }

    /// Removes a CEL policy.
    pub fn delete_cel_policy(&self, key: &CelKey) {
        self.update(|state| {
            state
                .identities
                .remove(&(PolicyKind::Cel(key.0), key.1.clone()));
            state.cel.delete(key);
        });
    }

    /// Replaces every CEL policy of `kind`.
    pub fn replace_cel_policies(&self, kind: CelKind, sources: Vec<CelSource>) {
        self.update(|state| {
            state
                .identities
                .retain(|(own, _), _| *own != PolicyKind::Cel(kind));
            for source in &sources {
                state.identities.insert(
                    (PolicyKind::Cel(kind), source.key()),
                    PolicyIdentity::of(source.metadata()),
                );
            }
            state.cel.replace(kind, sources);
        });
    }

    /// Adds or replaces a `policies.kyverno.io` PolicyException.
    pub fn apply_cel_exception(
        &self,
        exception: kyverno_api::policies::exception::PolicyException,
    ) {
        let key = namespaced_key(&exception.metadata);
        self.update(|state| state.cel.apply_exception(key, exception));
    }

    /// Removes a `policies.kyverno.io` PolicyException.
    pub fn delete_cel_exception(&self, namespace: &str, name: &str) {
        let key = PolicyKey {
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        };
        self.update(|state| state.cel.delete_exception(&key));
    }

    /// The `policies.kyverno.io` PolicyExceptions in force, in key order.
    pub fn cel_exceptions(&self) -> Vec<Arc<kyverno_api::policies::exception::PolicyException>> {
        self.with_state(|state| state.cel.exceptions())
    }

    /// Replaces every `policies.kyverno.io` PolicyException.
    pub fn replace_cel_exceptions(
        &self,
        exceptions: Vec<kyverno_api::policies::exception::PolicyException>,
    ) {
        let keyed = exceptions
            .into_iter()
            .map(|exception| (namespaced_key(&exception.metadata), exception))
            .collect();
        self.update(|state| state.cel.replace_exceptions(keyed));
    }

    /// Adds or replaces a PolicyException.
    pub fn apply_exception(&self, exception: PolicyException) {
        let key = namespaced_key(&exception.metadata);
        self.update(|state| {
            state.exceptions.insert(key, exception);
        });
    }

    /// Removes a ClusterPolicy.
    pub fn delete_cluster_policy(&self, name: &str) {
        let key = PolicyKey {
            namespace: None,
            name: name.to_owned(),
        };
        self.update(|state| {
            state
                .identities
                .remove(&(PolicyKind::ClusterPolicy, key.clone()));
            remove_policy(state, &key);
        });
    }

    /// Removes a Policy.
    pub fn delete_policy(&self, namespace: &str, name: &str) {
        let key = PolicyKey {
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        };
        self.update(|state| {
            state.identities.remove(&(PolicyKind::Policy, key.clone()));
            remove_policy(state, &key);
        });
    }

    /// Removes a PolicyException.
    pub fn delete_exception(&self, namespace: &str, name: &str) {
        let key = PolicyKey {
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        };
        self.update(|state| {
            state.exceptions.remove(&key);
        });
    }

    /// Takes a policy of `kind` out of use because it cannot be read, remembering why.
    pub fn reject(
        &self,
        kind: PolicyKind,
        key: PolicyKey,
        identity: PolicyIdentity,
        message: String,
    ) {
        self.update(|state| {
            state.identities.insert((kind, key.clone()), identity);
            match kind {
                PolicyKind::ClusterPolicy | PolicyKind::Policy => {
                    state.policies.remove(&key);
                    state.failures.insert(key, message);
                }
                PolicyKind::Cel(cel_kind) => state.cel.reject((cel_kind, key), message),
            }
        });
    }

    /// Replaces every ClusterPolicy (after a watch restarted and listed them all).
    pub fn replace_cluster_policies(&self, policies: Vec<ClusterPolicy>) {
        self.update(|state| {
            retain_policies(state, |key| key.namespace.is_some());
            state
                .identities
                .retain(|(kind, _), _| *kind != PolicyKind::ClusterPolicy);
            for policy in policies {
                let key = cluster_key(&policy);
                state.identities.insert(
                    (PolicyKind::ClusterPolicy, key.clone()),
                    PolicyIdentity::of(&policy.metadata),
                );
                let version = resource_version(&policy.metadata);
                load_into(
                    state,
                    key,
                    version,
                    LoadedPolicy::from_cluster_policy(policy),
                );
            }
        });
    }

    /// Replaces every Policy.
    pub fn replace_policies(&self, policies: Vec<Policy>) {
        self.update(|state| {
            retain_policies(state, |key| key.namespace.is_none());
            state
                .identities
                .retain(|(kind, _), _| *kind != PolicyKind::Policy);
            for policy in policies {
                let key = namespaced_key(&policy.metadata);
                state.identities.insert(
                    (PolicyKind::Policy, key.clone()),
                    PolicyIdentity::of(&policy.metadata),
                );
                let version = resource_version(&policy.metadata);
                load_into(state, key, version, LoadedPolicy::from_policy(policy));
            }
        });
    }

    /// Replaces every PolicyException.
    pub fn replace_exceptions(&self, exceptions: Vec<PolicyException>) {
        self.update(|state| {
            state.exceptions = exceptions
                .into_iter()
                .map(|exception| (namespaced_key(&exception.metadata), exception))
                .collect();
        });
    }

    fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        match self.state.read() {
            Ok(state) => f(&state),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let snapshot = {
            let mut state = match self.state.write() {
                Ok(state) => state,
                Err(poisoned) => poisoned.into_inner(),
            };
            change(&mut state);
            Arc::new(state.snapshot())
        };
        match self.snapshot.write() {
            Ok(mut current) => *current = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        self.revision.send_modify(|revision| *revision += 1);
    }
}

fn cluster_key(policy: &ClusterPolicy) -> PolicyKey {
    PolicyKey {
        namespace: None,
        name: policy.metadata.name.clone().unwrap_or_default(),
    }
}

fn namespaced_key(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> PolicyKey {
    PolicyKey {
        namespace: Some(
            metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
        ),
        name: metadata.name.clone().unwrap_or_default(),
    }
}

/// `metadata.resourceVersion`, empty when unset.
fn resource_version(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    metadata.resource_version.clone().unwrap_or_default()
}

fn remove_policy(state: &mut State, key: &PolicyKey) {
    state.policies.remove(key);
    state.failures.remove(key);
}

fn retain_policies(state: &mut State, keep: impl Fn(&PolicyKey) -> bool) {
    state.policies.retain(|key, _| keep(key));
    state.failures.retain(|key, _| keep(key));
}

/// Puts a loaded policy in the state; a policy that failed to load is left out (any older
/// version of it too), logged and remembered as a failure.
fn load_into(
    state: &mut State,
    key: PolicyKey,
    resource_version: String,
    loaded: Result<LoadedPolicy, PolicyLoadError>,
) {
    match loaded {
        Ok(policy) => {
            state.failures.remove(&key);
            state.policies.insert(
                key,
                Arc::new(CachedPolicy::new(policy, resource_version, &state.defaults)),
            );
        }
        Err(error) => {
            tracing::warn!(policy = %key, %error, "policy skipped: it cannot be loaded");
            state.policies.remove(&key);
            state.failures.insert(key, error.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cluster_policy(json: &str) -> ClusterPolicy {
        from_json(json)
    }

    fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    fn require_labels(name: &str, kinds: &str, operations: &str) -> ClusterPolicy {
        cluster_policy(&format!(
            r#"{{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{{"name":"{name}"}},
            "spec":{{"rules":[{{"name":"r","match":{{"any":[{{"resources":{{"kinds":{kinds},"operations":{operations}}}}}]}},
            "validate":{{"pattern":{{"metadata":{{"labels":{{"app":"?*"}}}}}}}}}}]}}}}"#
        ))
    }

    #[test]
    fn policies_carry_their_resource_version() {
        let cache = PolicyCache::default();
        let mut policy = require_labels("versioned", r#"["Pod"]"#, r#"["CREATE"]"#);
        policy.metadata.resource_version = Some("17".into());
        cache.apply_cluster_policy(policy.clone());
        assert_eq!(cache.snapshot().policies[0].resource_version, "17");
        policy.metadata.resource_version = Some("18".into());
        cache.replace_cluster_policies(vec![policy]);
        assert_eq!(cache.snapshot().policies[0].resource_version, "18");
        let mut validating = serde_json::json!({"apiVersion": "policies.kyverno.io/v1",
            "kind": "ValidatingPolicy",
            "metadata": {"name": "cel", "resourceVersion": "5"},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""],
                "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
                "validations": [{"expression": "true"}]}});
        cache.apply_cel_policy(
            CelSource::decode(CelKind::ValidatingPolicy, validating.clone()).unwrap(),
        );
        assert_eq!(cache.snapshot().cel[0].resource_version, "5");
        validating["metadata"]["resourceVersion"] = "6".into();
        cache.apply_cel_policy(CelSource::decode(CelKind::ValidatingPolicy, validating).unwrap());
        assert_eq!(cache.snapshot().cel[0].resource_version, "6");
    }

    #[test]
    fn indexes_by_kind_and_operation() {
        let cache = PolicyCache::default();
        cache.apply_cluster_policy(require_labels("pods", r#"["Pod"]"#, "[]"));
        cache.apply_cluster_policy(require_labels(
            "deploys",
            r#"["apps/v1/Deployment"]"#,
            r#"["CREATE"]"#,
        ));
        cache.apply_cluster_policy(require_labels("everything", r#"["*"]"#, r#"["UPDATE"]"#));
        let snapshot = cache.snapshot();
        let names = |kind, operation| -> Vec<String> {
            snapshot
                .policies_for(kind, "default", operation)
                .iter()
                .map(|cached| cached.policy.name.clone())
                .collect()
        };
        // Autogen adds Deployment (and other controllers) to the Pod policy.
        assert_eq!(names("Pod", AdmissionOperation::Create), ["pods"]);
        assert_eq!(
            names("Deployment", AdmissionOperation::Create),
            ["deploys", "pods"]
        );
        assert_eq!(
            names("Deployment", AdmissionOperation::Update),
            ["everything", "pods"]
        );
        assert_eq!(
            names("ConfigMap", AdmissionOperation::Update),
            ["everything"]
        );
        assert!(names("ConfigMap", AdmissionOperation::Create).is_empty());
    }

    #[test]
    fn effective_failure_policy_and_timeout() {
        let cache = PolicyCache::default();
        let mut policy = require_labels("p", r#"["Pod"]"#, "[]");
        policy.spec.0.failure_policy = Some(FailurePolicy::Ignore);
        policy.spec.0.webhook_timeout_seconds = Some(5);
        cache.apply_cluster_policy(policy);
        let cached = &cache.snapshot().policies[0];
        assert_eq!(cached.failure_policy, FailurePolicy::Ignore);
        assert_eq!(cached.timeout_seconds, 5);
        assert!(cached.has_validate());
        assert!(!cached.has_mutate());
    }

    #[test]
    fn webhook_defaults_fill_in_and_force() {
        let cache = PolicyCache::with_webhook_defaults(WebhookDefaults {
            timeout_seconds: 25,
            force_failure_policy_ignore: true,
        });
        let mut policy = require_labels("p", r#"["Pod"]"#, "[]");
        policy.spec.0.failure_policy = Some(FailurePolicy::Fail);
        cache.apply_cluster_policy(policy);
        let cached = &cache.snapshot().policies[0];
        assert_eq!(cached.failure_policy, FailurePolicy::Ignore);
        assert_eq!(cached.timeout_seconds, 25);
        assert_eq!(cache.webhook_defaults().timeout_seconds, 25);
    }

    #[test]
    fn namespaced_policies_only_meet_their_namespace() {
        let cache = PolicyCache::default();
        let policy: Policy = from_json(
            r#"{"apiVersion":"kyverno.io/v1","kind":"Policy","metadata":{"name":"p","namespace":"team-a"},
            "spec":{"rules":[{"name":"r","match":{"any":[{"resources":{"kinds":["ConfigMap"]}}]},
            "validate":{"pattern":{"data":{"x":"?*"}}}}]}}"#,
        );
        cache.apply_policy(policy);
        let snapshot = cache.snapshot();
        assert_eq!(
            snapshot
                .policies_for("ConfigMap", "team-a", AdmissionOperation::Create)
                .len(),
            1
        );
        assert!(
            snapshot
                .policies_for("ConfigMap", "team-b", AdmissionOperation::Create)
                .is_empty()
        );
        cache.delete_policy("team-a", "p");
        assert!(cache.snapshot().policies.is_empty());
    }

    #[test]
    fn a_broken_policy_is_skipped_and_remembered() {
        let cache = PolicyCache::default();
        cache.apply_cluster_policy(require_labels("p", r#"["Pod"]"#, "[]"));
        let broken = cluster_policy(
            r#"{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{"name":"p"},
            "spec":{"rules":[{"name":"r","match":{"any":[{"resources":{"kinds":["Pod"]}}]},
            "validate":{"cel":{"expressions":[{"expression":"object.metadata.name ==="}]}}}]}}"#,
        );
        let revisions = cache.subscribe();
        cache.apply_cluster_policy(broken);
        assert!(revisions.has_changed().unwrap());
        assert!(
            cache.snapshot().policies.is_empty(),
            "the older version is gone too"
        );
        let failures = cache.failures();
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].key.name, "p");
        cache.replace_cluster_policies(vec![require_labels("q", r#"["Pod"]"#, "[]")]);
        assert!(cache.failures().is_empty());
        assert_eq!(cache.snapshot().policies[0].policy.name, "q");
    }

    #[test]
    fn admission_false_keeps_a_policy_out_of_admission_only() {
        let cache = PolicyCache::default();
        let mut policy = require_labels("p", r#"["Pod"]"#, "[]");
        policy.spec.0.admission = Some(false);
        cache.apply_cluster_policy(policy);
        let snapshot = cache.snapshot();
        assert_eq!(snapshot.policies.len(), 1);
        assert!(!snapshot.policies[0].admission);
        assert!(
            snapshot
                .policies_for("Pod", "default", AdmissionOperation::Create)
                .is_empty()
        );
        cache.apply_cluster_policy(require_labels("p", r#"["Pod"]"#, "[]"));
        let snapshot = cache.snapshot();
        assert!(snapshot.policies[0].admission);
        assert_eq!(
            snapshot
                .policies_for("Pod", "default", AdmissionOperation::Create)
                .len(),
            1
        );
    }

    #[test]
    fn readiness_lists_loaded_and_failed_policies_of_every_kind() {
        let cache = PolicyCache::default();
        let mut valid = require_labels("valid", r#"["Pod"]"#, "[]");
        valid.metadata.uid = Some("u1".into());
        valid.metadata.generation = Some(3);
        cache.apply_cluster_policy(valid);
        cache.reject(
            PolicyKind::Cel(CelKind::ValidatingPolicy),
            PolicyKey {
                namespace: None,
                name: "valid".into(),
            },
            PolicyIdentity::default(),
            "unreadable".into(),
        );
        let readiness = cache.readiness();
        assert_eq!(readiness.len(), 2);
        assert_eq!(readiness[0].kind, PolicyKind::ClusterPolicy);
        assert_eq!(readiness[0].error, None);
        assert_eq!(
            readiness[0].identity,
            PolicyIdentity {
                uid: "u1".into(),
                generation: Some(3)
            }
        );
        assert_eq!(readiness[1].error.as_deref(), Some("unreadable"));
        cache.delete_cluster_policy("valid");
        cache.delete_cel_policy(&(
            CelKind::ValidatingPolicy,
            PolicyKey {
                namespace: None,
                name: "valid".into(),
            },
        ));
        assert!(cache.readiness().is_empty());
    }

    #[test]
    fn policies_using_roles_are_known() {
        let cache = PolicyCache::default();
        cache.apply_cluster_policy(require_labels("plain", r#"["Pod"]"#, "[]"));
        cache.apply_cluster_policy(cluster_policy(
            r#"{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{"name":"roles"},
            "spec":{"rules":[{"name":"r","match":{"any":[{"resources":{"kinds":["Pod"]}}]},
            "exclude":{"any":[{"clusterRoles":["cluster-admin"]}]},
            "validate":{"pattern":{"metadata":{"labels":{"app":"?*"}}}}}]}}"#,
        ));
        let snapshot = cache.snapshot();
        let uses: Vec<(&str, bool)> = snapshot
            .policies
            .iter()
            .map(|cached| (cached.policy.name.as_str(), cached.uses_roles))
            .collect();
        assert_eq!(uses, [("plain", false), ("roles", true)]);
    }
}
