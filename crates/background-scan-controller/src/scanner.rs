//! The scan loop: one task owns the background policies (ClusterPolicies and Policies, and the
//! CEL policies of the shared cache, see [`crate::cel`]) and the resources of the kinds they
//! select (watched through discovery, CRDs included); a resource is evaluated when it changes,
//! when the policies applying to it change, and on every interval, unless its resourceVersion
//! and the versions of its policies are those of its last scan. A change of the
//! PolicyExceptions (of either API group) of a policy rescans what the policy applies to, and a
//! change of a namespace's labels rescans its resources that policies with a
//! `namespaceSelector` apply to, or CEL policies (which see `namespaceObject`). Results go out
//! as EphemeralReports named after the resource's uid. A failed scan is retried up to
//! [`MAX_REQUEUES`] times.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::discovery::verbs;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use kyverno_api::kyverno::v1::validate::ValidationFailureAction;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use kyverno_api::policies::common::ValidationAction;
use kyverno_api::reports::v1::{ClusterEphemeralReport, EphemeralReport};
use kyverno_policy_core::celpolicy::resources::GroupVersionResource;
use kyverno_policy_core::engine::ContextProvider;
use kyverno_policy_core::engine::{self, Environment, SuppliedValues};
use kyverno_policy_core::request::{GroupVersionKind, ResourceRequest};
use kyverno_policy_core::response::RuleResponse;
use kyverno_runtime::cel_policies::{CachedCelPolicy, CompiledCel};
use kyverno_runtime::config::SharedConfig;
use kyverno_runtime::namespaces::NamespaceLabels;
use kyverno_runtime::policy_cache::{PolicyCache, PolicyKey, Source};
use kyverno_runtime::provider::ApiServerProvider;
use kyverno_runtime::reports::{
    PolicyResults, ReportedPolicy, SOURCE_BACKGROUND_SCAN, Subject, policies_report, resource_hash,
};
use kyverno_runtime::telemetry::{CAUSE_BACKGROUND_SCAN, LeaderReadiness, PolicyLabels};
use kyverno_runtime::watch::{Stores, spawn_watches};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::cel::CelRequest;
use crate::policies::{BackgroundPolicy, ExceptionVersions, PolicySet, fingerprint};
use crate::telemetry::Telemetry;

/// How many times a failed scan of a resource is retried before it waits for the next change
/// or interval (upstream's `maxRetries`).
pub const MAX_REQUEUES: u32 = 10;

/// How long a failed scan waits before its retry.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Labels of a namespace.
type Labels = Arc<BTreeMap<String, String>>;

/// Kinds never scanned: Kyverno's own bookkeeping and events.
const NEVER_SCANNED: [&str; 7] = [
    "Event",
    "PolicyReport",
    "ClusterPolicyReport",
    "EphemeralReport",
    "ClusterEphemeralReport",
    "UpdateRequest",
    "Lease",
];

/// Settings of the scanner.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often every resource is rescanned.
    pub interval: Duration,
    /// Namespace of the `kyverno` ConfigMap.
    pub kyverno_namespace: String,
    /// Name of the `kyverno` ConfigMap.
    pub config_map: String,
    /// How many resources are evaluated and reported at once.
    pub concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            kyverno_namespace: "kyverno".to_owned(),
            config_map: "kyverno".to_owned(),
            concurrency: 16,
        }
    }
}

/// What the watches report to the scan task.
enum Feed {
    ClusterPolicy(Box<ClusterPolicy>),
    Policy(Box<Policy>),
    PolicyDeleted(PolicyKey),
    /// All the ClusterPolicies (`true`) or Policies (`false`).
    PoliciesListed(bool, Vec<DynamicObject>),
    Resource(Arc<str>, Box<DynamicObject>),
    ResourceDeleted(String),
    ResourcesListed(Arc<str>, Vec<DynamicObject>),
    /// A namespace and its labels.
    Namespace(String, Labels),
    /// All the namespaces.
    NamespacesListed(Vec<(String, Labels)>),
}

/// A resource being tracked.
struct Tracked {
    /// Which watch it comes from.
    source: Arc<str>,
    plural: String,
    object: Arc<Value>,
}

/// One evaluation to run.
struct Job {
    uid: String,
    resource_version: String,
    fingerprint: u64,
    object: Arc<Value>,
    plural: String,
    policies: Vec<Arc<BackgroundPolicy>>,
    cel: Vec<Arc<CachedCelPolicy>>,
    namespace_labels: Option<Labels>,
    report_wanted_even_empty: bool,
}

/// What a job gave.
struct Outcome {
    uid: String,
    scanned: Option<(String, u64)>,
    had_results: bool,
}

struct Scanner {
    client: Client,
    settings: Settings,
    telemetry: Telemetry,
    sender: mpsc::Sender<Feed>,
    stores: Stores,
    provider: Arc<ApiServerProvider>,
    policies: PolicySet,
    /// The CEL policies evaluated in the background.
    cel: Vec<Arc<CachedCelPolicy>>,
    policies_listed: [bool; 2],
    namespaces: Option<HashMap<String, Labels>>,
    exceptions: ExceptionVersions,
    watches: HashMap<Arc<str>, (String, tokio::task::JoinHandle<()>)>,
    objects: HashMap<String, Tracked>,
    scanned: HashMap<String, (String, u64)>,
    with_results: HashSet<String>,
    queue: BTreeSet<String>,
    failures: HashMap<String, u32>,
    retry: BTreeSet<String>,
    retry_at: Option<Instant>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Scanner {
    fn drop(&mut self) {
        for task in self
            .tasks
            .iter()
            .chain(self.watches.values().map(|(_, task)| task))
        {
            task.abort();
        }
    }
}

/// Scans until the future is dropped (when leadership is lost). The replica is not ready
/// (`/readyz`) until the policies, exceptions, namespaces and configuration are listed.
pub async fn run(client: Client, settings: Settings, telemetry: Telemetry) {
    let readiness = LeaderReadiness::syncing(Arc::clone(&telemetry.admin));
    let (sender, mut receiver) = mpsc::channel(1024);
    let stores = Stores {
        cache: Arc::new(PolicyCache::default()),
        config: Arc::new(SharedConfig::new(&settings.kyverno_namespace)),
        namespaces: Arc::new(NamespaceLabels::default()),
        roles: Arc::default(),
    };
    let (synced, tasks) = spawn_watches(
        &client,
        &stores,
        &Source::without_generating(),
        &settings.kyverno_namespace,
        &settings.config_map,
    );
    let provider = Arc::new(ApiServerProvider::new(
        client.clone(),
        tokio::runtime::Handle::current(),
    ));
    let mut revisions = stores.cache.subscribe();
    let mut scanner = Scanner {
        client: client.clone(),
        settings,
        telemetry,
        sender,
        stores,
        provider,
        policies: PolicySet::default(),
        cel: Vec::new(),
        policies_listed: [false; 2],
        namespaces: None,
        exceptions: ExceptionVersions::default(),
        watches: HashMap::new(),
        objects: HashMap::new(),
        scanned: HashMap::new(),
        with_results: HashSet::new(),
        queue: BTreeSet::new(),
        failures: HashMap::new(),
        retry: BTreeSet::new(),
        retry_at: None,
        tasks,
    };
    while !synced.is_synced() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    scanner.cache_changed();
    scanner.watch_policies();
    scanner.watch_namespaces();
    let mut interval = tokio::time::interval(scanner.settings.interval);
    interval.tick().await;
    let mut ready = false;
    loop {
        let retry_at = scanner.retry_at;
        tokio::select! {
            feed = receiver.recv() => {
                let Some(feed) = feed else { return };
                let mut policies_changed = scanner.handle(feed);
                while let Ok(feed) = receiver.try_recv() {
                    policies_changed |= scanner.handle(feed);
                }
                if policies_changed && scanner.policies_listed == [true; 2] {
                    scanner.follow_policies().await;
                }
            }
            changed = revisions.changed() => {
                if changed.is_err() {
                    return;
                }
                if scanner.cache_changed() && scanner.policies_listed == [true; 2] {
                    scanner.follow_policies().await;
                }
            }
            () = sleep_until(retry_at), if retry_at.is_some() => {
                scanner.retry_at = None;
                let retry = std::mem::take(&mut scanner.retry);
                scanner.queue.extend(retry);
            }
            _ = interval.tick() => {
                tracing::info!(resources = scanner.objects.len(), "periodic rescan");
                scanner.scanned.clear();
                scanner.queue.extend(scanner.objects.keys().cloned());
            }
        }
        if scanner.is_synced() {
            if !ready {
                ready = true;
                readiness.synced();
            }
            scanner.scan_queue().await;
        }
    }
}

/// Sleeps until `deadline` (forever without one).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

impl Scanner {
    /// Whether the policies and the namespaces are listed: scans can start.
    fn is_synced(&self) -> bool {
        self.policies_listed == [true; 2] && self.namespaces.is_some()
    }

    /// Takes the current PolicyExceptions and CEL policies of the cache: when the exceptions of
    /// some policy changed, every resource is queued (the fingerprints tell which need a
    /// rescan). Whether the CEL policies (or their exceptions) changed: the kinds to watch
    /// may have too.
    fn cache_changed(&mut self) -> bool {
        let snapshot = self.stores.cache.snapshot();
        let versions = ExceptionVersions::of(&snapshot.exceptions);
        if versions != self.exceptions {
            self.exceptions = versions;
            self.queue.extend(self.objects.keys().cloned());
        }
        let cel = crate::cel::background_policies(&snapshot);
        let version = |policies: &[Arc<CachedCelPolicy>]| {
            fingerprint(
                [],
                policies.iter().map(AsRef::as_ref),
                &self.exceptions,
                &BTreeMap::new(),
            )
        };
        let changed = version(&cel) != version(&self.cel);
        self.cel = cel;
        changed
    }

    fn watch_namespaces(&mut self) {
        let resource = ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&());
        let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
        let entry = |object: DynamicObject| {
            (
                object.metadata.name.unwrap_or_default(),
                Arc::new(object.metadata.labels.unwrap_or_default()),
            )
        };
        self.tasks.push(tokio::spawn(forward(
            api,
            self.sender.clone(),
            move |change| match change {
                Change::Apply(object) => {
                    let (name, labels) = entry(object);
                    Some(Feed::Namespace(name, labels))
                }
                // Its resources go with it.
                Change::Delete(_) => None,
                Change::Listed(objects) => Some(Feed::NamespacesListed(
                    objects.into_iter().map(entry).collect(),
                )),
            },
        )));
    }

    /// Records the labels of a namespace; when they changed, its resources are queued (the
    /// fingerprints of those that policies with a `namespaceSelector` apply to differ).
    fn set_namespace(&mut self, name: String, labels: Labels) {
        let namespaces = self.namespaces.get_or_insert_default();
        if namespaces.get(&name) == Some(&labels) {
            return;
        }
        let known = namespaces.insert(name.clone(), labels).is_some();
        if known {
            let in_namespace = self
                .objects
                .iter()
                .filter(|(_, tracked)| {
                    tracked
                        .object
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        == Some(name.as_str())
                })
                .map(|(uid, _)| uid.clone());
            self.queue.extend(in_namespace);
        }
    }

    fn watch_policies(&mut self) {
        for cluster in [true, false] {
            let resource = if cluster {
                ApiResource::erase::<ClusterPolicy>(&())
            } else {
                ApiResource::erase::<Policy>(&())
            };
            let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
            let sender = self.sender.clone();
            self.tasks.push(tokio::spawn(forward(
                api,
                sender,
                move |change| match change {
                    Change::Apply(object) => decode_policy(cluster, object),
                    Change::Delete(object) => Some(Feed::PolicyDeleted(PolicyKey {
                        namespace: object.metadata.namespace.clone().filter(|_| !cluster),
                        name: object.metadata.name.clone().unwrap_or_default(),
                    })),
                    Change::Listed(objects) => Some(Feed::PoliciesListed(cluster, objects)),
                },
            )));
        }
    }

    /// Applies a change; whether the policies changed.
    fn handle(&mut self, feed: Feed) -> bool {
        match feed {
            Feed::ClusterPolicy(policy) => self.policies.apply_cluster_policy(*policy),
            Feed::Policy(policy) => self.policies.apply_policy(*policy),
            Feed::PolicyDeleted(key) => self.policies.remove(&key),
            Feed::PoliciesListed(cluster, objects) => {
                let mut listed = BTreeSet::new();
                for object in objects {
                    listed.insert(PolicyKey {
                        namespace: object.metadata.namespace.clone().filter(|_| !cluster),
                        name: object.metadata.name.clone().unwrap_or_default(),
                    });
                    if let Some(feed) = decode_policy(cluster, object) {
                        self.handle(feed);
                    }
                }
                self.policies
                    .retain(|key| key.namespace.is_none() != cluster || listed.contains(key));
                self.policies_listed[usize::from(!cluster)] = true;
            }
            Feed::Resource(source, object) => {
                self.track(source, *object);
                return false;
            }
            Feed::ResourceDeleted(uid) => {
                self.forget(&uid);
                return false;
            }
            Feed::Namespace(name, labels) => {
                self.set_namespace(name, labels);
                return false;
            }
            Feed::NamespacesListed(namespaces) => {
                let listed: HashSet<&String> = namespaces.iter().map(|(name, _)| name).collect();
                if let Some(known) = self.namespaces.as_mut() {
                    known.retain(|name, _| listed.contains(name));
                }
                for (name, labels) in namespaces {
                    self.set_namespace(name, labels);
                }
                self.namespaces.get_or_insert_default();
                return false;
            }
            Feed::ResourcesListed(source, objects) => {
                let listed: HashSet<String> = objects
                    .iter()
                    .filter_map(|object| object.metadata.uid.clone())
                    .collect();
                let gone: Vec<String> = self
                    .objects
                    .iter()
                    .filter(|(uid, tracked)| tracked.source == source && !listed.contains(*uid))
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in gone {
                    self.forget(&uid);
                }
                for object in objects {
                    self.track(Arc::clone(&source), object);
                }
                return false;
            }
        }
        true
    }

    fn track(&mut self, source: Arc<str>, object: DynamicObject) {
        let Some(uid) = object.metadata.uid.clone() else {
            return;
        };
        let Some(plural) = self.watches.get(&source).map(|(plural, _)| plural.clone()) else {
            return;
        };
        let object = match serde_json::to_value(object) {
            Ok(object) => Arc::new(object),
            Err(error) => {
                tracing::warn!(%error, "resource skipped");
                return;
            }
        };
        self.objects.insert(
            uid.clone(),
            Tracked {
                source,
                plural,
                object,
            },
        );
        self.queue.insert(uid);
    }

    fn forget(&mut self, uid: &str) {
        self.objects.remove(uid);
        self.scanned.remove(uid);
        self.with_results.remove(uid);
        self.queue.remove(uid);
        self.failures.remove(uid);
        self.retry.remove(uid);
    }

    /// Watches the kinds the policies select (and stops watching the others), then queues
    /// every resource: those whose policies changed get rescanned.
    async fn follow_policies(&mut self) {
        let kinds = match self.policies.kinds() {
            Some(kinds) => kinds,
            None => {
                tracing::warn!(
                    "a background policy selects any kind; only the kinds other policies name are watched"
                );
                self.policies
                    .all()
                    .filter_map(|policy| policy.kinds.clone())
                    .flatten()
                    .collect()
            }
        };
        let wanted = match self.discover(&kinds, &self.cel).await {
            Ok(wanted) => wanted,
            Err(error) => {
                tracing::warn!(%error, "discovery failed; kinds unchanged");
                return;
            }
        };
        let stale: Vec<Arc<str>> = self
            .watches
            .keys()
            .filter(|source| {
                !wanted
                    .iter()
                    .any(|resource| resource_id(resource) == ***source)
            })
            .cloned()
            .collect();
        for source in stale {
            if let Some((_, task)) = self.watches.remove(&source) {
                task.abort();
            }
            let gone: Vec<String> = self
                .objects
                .iter()
                .filter(|(_, tracked)| tracked.source == source)
                .map(|(uid, _)| uid.clone())
                .collect();
            self.clear_results(&gone).await;
            for uid in gone {
                self.forget(&uid);
            }
        }
        for resource in wanted {
            let source: Arc<str> = resource_id(&resource).into();
            if self.watches.contains_key(&source) {
                continue;
            }
            tracing::info!(kind = %resource.kind, api_version = %resource.api_version, "watching");
            let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
            let task_source = Arc::clone(&source);
            let task = tokio::spawn(forward(api, self.sender.clone(), move |change| {
                Some(match change {
                    Change::Apply(object) => {
                        Feed::Resource(Arc::clone(&task_source), Box::new(object))
                    }
                    Change::Delete(object) => {
                        Feed::ResourceDeleted(object.metadata.uid.clone().unwrap_or_default())
                    }
                    Change::Listed(objects) => {
                        Feed::ResourcesListed(Arc::clone(&task_source), objects)
                    }
                })
            }));
            self.watches.insert(source, (resource.plural.clone(), task));
        }
        self.queue.extend(self.objects.keys().cloned());
    }

    /// The served resources of the `kinds` and of those the `cel` policies name, in their
    /// preferred versions.
    async fn discover(
        &self,
        kinds: &BTreeSet<String>,
        cel: &[Arc<CachedCelPolicy>],
    ) -> Result<Vec<ApiResource>, kube::Error> {
        if kinds.is_empty() && cel.is_empty() {
            return Ok(Vec::new());
        }
        let discovery = kube::Discovery::new(self.client.clone()).run().await?;
        Ok(discovery
            .groups()
            .flat_map(|group| group.recommended_resources())
            .filter(|(resource, capabilities)| {
                (kinds.contains(&resource.kind)
                    || cel.iter().any(|policy| {
                        crate::cel::names_resource(policy, &resource.group, &resource.plural)
                    }))
                    && !NEVER_SCANNED.contains(&resource.kind.as_str())
                    && capabilities.supports_operation(verbs::LIST)
                    && capabilities.supports_operation(verbs::WATCH)
            })
            .map(|(resource, _)| resource)
            .collect())
    }

    /// Evaluates the queued resources that need it and writes their reports.
    async fn scan_queue(&mut self) {
        let config = self.stores.config.get();
        let mut jobs = Vec::new();
        for uid in std::mem::take(&mut self.queue) {
            let Some(tracked) = self.objects.get(&uid) else {
                continue;
            };
            let object = &tracked.object;
            let text = |pointer: &str| {
                object
                    .pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            let (kind, namespace) = (text("/kind"), text("/metadata/namespace"));
            let gvk = GroupVersionKind::from_api_version(text("/apiVersion"), kind);
            if config.is_filtered(&gvk, "", namespace, text("/metadata/name")) {
                continue;
            }
            let policies: Vec<Arc<BackgroundPolicy>> = self
                .policies
                .all()
                .filter(|policy| policy.may_apply(kind, namespace))
                .cloned()
                .collect();
            let cel: Vec<Arc<CachedCelPolicy>> = self
                .cel
                .iter()
                .filter(|policy| {
                    policy.applies_in(namespace)
                        && crate::cel::names_resource(policy, &gvk.group, &tracked.plural)
                })
                .cloned()
                .collect();
            let namespace_labels = (!namespace.is_empty() && kind != "Namespace").then(|| {
                self.namespaces
                    .as_ref()
                    .and_then(|namespaces| namespaces.get(namespace))
                    .cloned()
                    .unwrap_or_default()
            });
            let fingerprint = fingerprint(
                policies.iter().map(AsRef::as_ref),
                cel.iter().map(AsRef::as_ref),
                &self.exceptions,
                namespace_labels.as_deref().unwrap_or(&BTreeMap::new()),
            );
            let resource_version = text("/metadata/resourceVersion").to_owned();
            if self.scanned.get(&uid) == Some(&(resource_version.clone(), fingerprint)) {
                continue;
            }
            jobs.push(Job {
                report_wanted_even_empty: self.with_results.contains(&uid),
                uid,
                resource_version,
                fingerprint,
                object: Arc::clone(object),
                plural: tracked.plural.clone(),
                namespace_labels,
                policies,
                cel,
            });
        }
        if jobs.is_empty() {
            return;
        }
        tracing::debug!(resources = jobs.len(), "scanning");
        self.telemetry.controller.reconciled(jobs.len() as u64);
        let outcomes: Vec<Outcome> = futures::stream::iter(jobs)
            .map(|job| self.run_job(job))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        for outcome in outcomes {
            if !self.objects.contains_key(&outcome.uid) {
                continue;
            }
            match outcome.scanned {
                Some(scanned) => {
                    self.scanned.insert(outcome.uid.clone(), scanned);
                    self.failures.remove(&outcome.uid);
                }
                None => {
                    self.scanned.remove(&outcome.uid);
                    self.failed(outcome.uid.clone());
                }
            }
            if outcome.had_results {
                self.with_results.insert(outcome.uid);
            } else {
                self.with_results.remove(&outcome.uid);
            }
        }
    }

    /// Writes an empty scan report for each resource of `uids` that earlier scans reported
    /// results on: no background policy selects its kind any more, and the reports controller
    /// drops what earlier scans reported when it reads the empty report.
    async fn clear_results(&self, uids: &[String]) {
        let subjects: Vec<Subject> = uids
            .iter()
            .filter(|uid| self.with_results.contains(*uid))
            .filter_map(|uid| self.objects.get(uid))
            .filter_map(|tracked| Subject::of(&tracked.object, &tracked.plural))
            .collect();
        futures::stream::iter(subjects)
            .for_each_concurrent(self.settings.concurrency.max(1), |subject| async move {
                let report =
                    policies_report(&subject.uid, &subject, SOURCE_BACKGROUND_SCAN, &[], None);
                if let Err(error) =
                    write_report(&self.client, report, subject.namespace.as_deref()).await
                {
                    tracing::warn!(%error, resource = %subject.name, "ephemeral report not written");
                }
            })
            .await;
    }

    /// Schedules the retry of a failed scan, or gives up after [`MAX_REQUEUES`] retries.
    fn failed(&mut self, uid: String) {
        let failures = self.failures.entry(uid.clone()).or_default();
        *failures += 1;
        if *failures > MAX_REQUEUES {
            self.failures.remove(&uid);
            self.telemetry.controller.dropped();
            tracing::warn!(resource = %uid, "scan failed too often; waiting for a change");
            return;
        }
        self.telemetry.controller.requeued(*failures);
        self.retry.insert(uid);
        self.retry_at
            .get_or_insert_with(|| Instant::now() + RETRY_DELAY);
    }

    async fn run_job(&self, job: Job) -> Outcome {
        let scan = Scan {
            object: Arc::clone(&job.object),
            plural: job.plural.clone(),
            policies: job.policies.clone(),
            cel: job.cel.clone(),
            namespace_labels: job.namespace_labels.clone(),
            exceptions: Arc::clone(&self.stores.cache.snapshot().exceptions),
            provider: Arc::clone(&self.provider),
        };
        let evaluated = tokio::task::spawn_blocking(move || evaluate(&scan)).await;
        let failed = Outcome {
            uid: job.uid.clone(),
            scanned: None,
            had_results: job.report_wanted_even_empty,
        };
        let Ok((kyverno, cel)) = evaluated else {
            return failed;
        };
        let (kyverno_rules, kyverno_durations): (Vec<Vec<RuleResponse>>, Vec<Duration>) =
            kyverno.into_iter().unzip();
        let (cel_rules, cel_durations): (Vec<Vec<RuleResponse>>, Vec<Duration>) =
            cel.into_iter().unzip();
        let measured = job
            .policies
            .iter()
            .zip(&kyverno_rules)
            .zip(&kyverno_durations)
            .map(|((policy, rules), duration)| Measured::kyverno(policy, rules, *duration))
            .chain(
                job.cel
                    .iter()
                    .zip(&cel_rules)
                    .zip(&cel_durations)
                    .map(|((policy, rules), duration)| Measured::cel(policy, rules, *duration)),
            );
        self.record(&job, measured);
        let had_results = kyverno_rules
            .iter()
            .chain(&cel_rules)
            .any(|rules| !rules.is_empty());
        let done = Outcome {
            uid: job.uid.clone(),
            scanned: Some((job.resource_version.clone(), job.fingerprint)),
            had_results,
        };
        if !had_results && !job.report_wanted_even_empty {
            return done;
        }
        let Some(subject) = Subject::of(&job.object, &job.plural) else {
            return done;
        };
        let results: Vec<PolicyResults<'_>> = job
            .policies
            .iter()
            .zip(&kyverno_rules)
            .map(|(policy, rules)| PolicyResults {
                policy: ReportedPolicy::kyverno(&policy.policy),
                resource_version: &policy.resource_version,
                rules,
            })
            .chain(
                job.cel
                    .iter()
                    .zip(&cel_rules)
                    .map(|(policy, rules)| PolicyResults {
                        policy: ReportedPolicy::cel(policy),
                        resource_version: &policy.resource_version,
                        rules,
                    }),
            )
            .collect();
        let report = policies_report(
            &subject.uid,
            &subject,
            SOURCE_BACKGROUND_SCAN,
            &results,
            Some(&resource_hash(&job.object)),
        );
        match write_report(&self.client, report, subject.namespace.as_deref()).await {
            Ok(()) => done,
            Err(error) => {
                tracing::warn!(%error, resource = %subject.name, "ephemeral report not written");
                failed
            }
        }
    }
}

/// The rule results of one policy on a resource, for Kyverno's policy metrics.
struct Measured<'a> {
    enforcing: bool,
    name: &'a str,
    namespace: Option<&'a str>,
    rule_type: &'static str,
    rules: &'a [RuleResponse],
    duration: Duration,
}

impl<'a> Measured<'a> {
    fn kyverno(
        policy: &'a BackgroundPolicy,
        rules: &'a [RuleResponse],
        duration: Duration,
    ) -> Self {
        let loaded = &policy.policy;
        Self {
            enforcing: loaded.spec.validation_failure_action
                == Some(ValidationFailureAction::Enforce),
            name: &loaded.name,
            namespace: loaded.namespace.as_deref(),
            rule_type: "validate",
            rules,
            duration,
        }
    }

    fn cel(policy: &'a CachedCelPolicy, rules: &'a [RuleResponse], duration: Duration) -> Self {
        Self {
            enforcing: policy
                .validation_actions()
                .contains(&ValidationAction::Deny),
            name: &policy.key.name,
            namespace: policy.key.namespace.as_deref(),
            rule_type: match policy.compiled {
                CompiledCel::ImageValidating(_) => "imageVerify",
                CompiledCel::Validating(_)
                | CompiledCel::Mutating(_)
                | CompiledCel::Generating(_) => "validate",
            },
            rules,
            duration,
        }
    }
}

impl Scanner {
    /// Counts the rule results of a scan under Kyverno's policy metrics.
    fn record<'a>(&self, job: &Job, measured: impl Iterator<Item = Measured<'a>>) {
        let text = |pointer: &str| {
            job.object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (kind, namespace) = (text("/kind"), text("/metadata/namespace"));
        for policy in measured {
            for rule in policy.rules {
                let labels = PolicyLabels {
                    policy_validation_mode: if policy.enforcing { "enforce" } else { "audit" }
                        .to_owned(),
                    policy_type: if policy.namespace.is_some() {
                        "namespaced"
                    } else {
                        "cluster"
                    }
                    .to_owned(),
                    policy_background_mode: true,
                    policy_name: policy.name.to_owned(),
                    policy_namespace: policy.namespace.unwrap_or("-").to_owned(),
                    resource_kind: kind.clone(),
                    resource_namespace: namespace.clone(),
                    resource_request_operation: AdmissionOperation::Create.as_str().to_owned(),
                    rule_name: rule.name.clone(),
                    rule_result: rule.status.as_str().to_owned(),
                    rule_type: policy.rule_type.to_owned(),
                    rule_execution_cause: CAUSE_BACKGROUND_SCAN.to_owned(),
                };
                self.telemetry.policies.rule(&labels, policy.duration);
            }
        }
    }
}

/// What the evaluation of one resource needs (moved to a blocking thread).
struct Scan {
    object: Arc<Value>,
    plural: String,
    policies: Vec<Arc<BackgroundPolicy>>,
    cel: Vec<Arc<CachedCelPolicy>>,
    namespace_labels: Option<Labels>,
    exceptions: Arc<[PolicyException]>,
    provider: Arc<ApiServerProvider>,
}

/// The rule results of each policy, with the time each policy took.
type Timed = Vec<(Vec<RuleResponse>, Duration)>;

/// The validate results of each ClusterPolicy and Policy, then the results of each CEL policy,
/// on a resource (synchronous: run off the reactor).
fn evaluate(scan: &Scan) -> (Timed, Timed) {
    let text = |pointer: &str| {
        scan.object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let gvk = GroupVersionKind::from_api_version(text("/apiVersion"), text("/kind"));
    let resource =
        GroupVersionResource::new(gvk.group.clone(), gvk.version.clone(), scan.plural.clone());
    // Upstream scans as a CREATE without a requester.
    let mut request = ResourceRequest::new(Arc::clone(&scan.object))
        .with_operation(AdmissionOperation::Create)
        .with_kind(gvk, "");
    let namespace = text("/metadata/namespace");
    let namespace_object = scan.namespace_labels.as_ref().map(|labels| {
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": **labels}})
    });
    if let Some(labels) = scan.namespace_labels.clone() {
        request = request.with_namespace_labels(labels);
    }
    let values = SuppliedValues::default();
    let environment = Environment {
        provider: scan.provider.as_ref(),
        exceptions: &scan.exceptions,
        values: &values,
    };
    let kyverno = scan
        .policies
        .iter()
        .map(|policy| {
            let started = Instant::now();
            let rules = engine::validate(&policy.policy, &request, &environment).rules;
            (rules, started.elapsed())
        })
        .collect();
    let cel = if scan.cel.is_empty() {
        Vec::new()
    } else {
        let provider: Arc<dyn ContextProvider> = scan.provider.clone();
        crate::cel::evaluate(
            &scan.cel,
            &CelRequest {
                request: &request,
                resource: &resource,
                namespace_object: namespace_object.as_ref(),
                provider,
            },
        )
    };
    (kyverno, cel)
}

/// Creates the ephemeral report, or replaces the one of an earlier scan not yet aggregated.
async fn write_report(
    client: &Client,
    mut report: DynamicObject,
    namespace: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> = match namespace {
        Some(namespace) => Api::namespaced_with(
            client.clone(),
            namespace,
            &ApiResource::erase::<EphemeralReport>(&()),
        ),
        None => Api::all_with(
            client.clone(),
            &ApiResource::erase::<ClusterEphemeralReport>(&()),
        ),
    };
    let name = report.metadata.name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), &report).await {
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let current = api.get(&name).await?;
            report.metadata.resource_version = current.metadata.resource_version;
            api.replace(&name, &PostParams::default(), &report)
                .await
                .map(drop)
        }
        other => other.map(drop),
    }
}

fn resource_id(resource: &ApiResource) -> String {
    format!("{}/{}", resource.api_version, resource.plural)
}

fn decode_policy(cluster: bool, object: DynamicObject) -> Option<Feed> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let decoded = serde_json::to_value(object).and_then(|value| {
        if cluster {
            serde_json::from_value(value).map(|policy| Feed::ClusterPolicy(Box::new(policy)))
        } else {
            serde_json::from_value(value).map(|policy| Feed::Policy(Box::new(policy)))
        }
    });
    match decoded {
        Ok(feed) => Some(feed),
        Err(error) => {
            tracing::warn!(policy = %name, %error, "policy skipped: it cannot be read");
            None
        }
    }
}

/// What a watch reports.
enum Change {
    Apply(DynamicObject),
    Delete(DynamicObject),
    Listed(Vec<DynamicObject>),
}

/// Runs a watch, sending what `map` makes of each change.
async fn forward(
    api: Api<DynamicObject>,
    sender: mpsc::Sender<Feed>,
    map: impl Fn(Change) -> Option<Feed>,
) {
    let mut listed = Vec::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        let change = match event {
            Ok(Event::Init) => {
                listed.clear();
                continue;
            }
            Ok(Event::InitApply(object)) => {
                listed.push(object);
                continue;
            }
            Ok(Event::InitDone) => Change::Listed(std::mem::take(&mut listed)),
            Ok(Event::Apply(object)) => Change::Apply(object),
            Ok(Event::Delete(object)) => Change::Delete(object),
            Err(error) => {
                tracing::warn!(%error, "watch failed; retrying");
                continue;
            }
        };
        if let Some(feed) = map(change)
            && sender.send(feed).await.is_err()
        {
            return;
        }
    }
}
