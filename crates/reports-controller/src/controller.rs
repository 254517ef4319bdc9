//! The aggregation loop: watches feed one task that owns the [`Aggregator`]; every
//! `flush_delay` the changed scopes are written (server-side apply) and the ephemeral reports
//! they absorbed are deleted (with a resourceVersion precondition, so a newer version written
//! meanwhile survives and is aggregated next).
//!
//! Results go away with their resource (a metadata-only watch per kind with results) and with
//! their policy (metadata watches on ClusterPolicies and Policies). A listing prunes only what
//! changed before it started, so a report that overtakes the resource's own watch event is not
//! lost.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
};
use kube::core::GroupVersionKind;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use kyverno_api::policy_report::v1alpha2::{
    ClusterPolicyReport, PolicyReport, PolicyReportContent,
};
use kyverno_api::reports::v1::{ClusterEphemeralReport, EphemeralReport};
use kyverno_runtime::reports::{LABEL_MANAGED_BY, MANAGED_BY_KYVERNO, read_ephemeral_report};
use kyverno_runtime::telemetry::LeaderReadiness;
use tokio::sync::mpsc;

use crate::aggregate::{Aggregator, Scope, shard_of};
use crate::telemetry::Telemetry;

/// The field manager of the reports' server-side applies.
pub const FIELD_MANAGER: &str = "kyverno-reports-controller";

/// Default bound of one report's results, in bytes of JSON: a third of etcd's 1.5 MB object
/// limit, leaving room for metadata and managedFields.
pub const DEFAULT_MAX_REPORT_BYTES: usize = 512 * 1024;

/// Settings of the aggregation.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest JSON size of one report's results before it is split into shards.
    pub max_report_bytes: usize,
    /// How long changes gather before reports are written.
    pub flush_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_report_bytes: DEFAULT_MAX_REPORT_BYTES,
            flush_delay: Duration::from_millis(500),
        }
    }
}

/// Why the aggregation stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The stored reports could not be listed at start.
    #[error("listing the stored policy reports failed: {0}")]
    Load(#[source] kube::Error),
}

/// What a metadata watch is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Stream {
    ClusterPolicies,
    Policies,
    /// Resources of an `apiVersion` and kind.
    Resources(String, String),
}

/// What the watches report to the aggregation task.
enum Feed {
    /// An ephemeral report was written.
    Report(Box<DynamicObject>),
    /// Every ephemeral report of a kind (a watch (re)started).
    Reports(Vec<DynamicObject>),
    /// A metadata watch (re)starts listing.
    Listing(Stream),
    /// A metadata watch listed these keys (policy names or resource uids).
    Listed(Stream, BTreeSet<String>),
    /// An object appeared or changed.
    Applied(Stream, String),
    /// An object was deleted.
    Deleted(Stream, String),
}

/// An ephemeral report absorbed into the aggregate, to delete once its scope is written.
#[derive(Debug)]
struct Absorbed {
    namespace: Option<String>,
    name: String,
    resource_version: String,
}

struct Aggregation {
    client: Client,
    settings: Settings,
    telemetry: Telemetry,
    failed_writes: HashMap<Scope, u32>,
    sender: mpsc::Sender<Feed>,
    aggregator: Aggregator,
    dirty: BTreeSet<Scope>,
    absorbed: HashMap<Scope, Vec<Absorbed>>,
    shard_counts: HashMap<Scope, usize>,
    listing_since: HashMap<Stream, u64>,
    watched_kinds: HashSet<(String, String)>,
    deleted_resources: HashSet<String>,
    deleted_policies: HashSet<String>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Aggregation {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs the aggregation until the future is dropped (when leadership is lost). Fails only if
/// the stored reports cannot be read at start. The replica is not ready (`/readyz`) until the
/// stored reports are loaded and every ephemeral report was listed.
pub async fn run(
    client: Client,
    settings: Settings,
    telemetry: Telemetry,
) -> Result<(), ControllerError> {
    let readiness = LeaderReadiness::syncing(Arc::clone(&telemetry.admin));
    let (sender, mut receiver) = mpsc::channel(1024);
    let mut aggregation = Aggregation {
        client,
        settings,
        telemetry,
        failed_writes: HashMap::new(),
        sender,
        aggregator: Aggregator::default(),
        dirty: BTreeSet::new(),
        absorbed: HashMap::new(),
        shard_counts: HashMap::new(),
        listing_since: HashMap::new(),
        watched_kinds: HashSet::new(),
        deleted_resources: HashSet::new(),
        deleted_policies: HashSet::new(),
        tasks: Vec::new(),
    };
    aggregation.load().await?;
    aggregation.publish_report_objects();
    aggregation.start_watches();
    let mut flush = tokio::time::interval(aggregation.settings.flush_delay);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Both ephemeral report kinds listed once.
    let mut reports_listed = 0;
    loop {
        tokio::select! {
            feed = receiver.recv() => match feed {
                Some(feed) => {
                    if matches!(feed, Feed::Reports(_)) {
                        reports_listed += 1;
                        if reports_listed == 2 {
                            readiness.synced();
                        }
                    }
                    aggregation.handle(feed);
                }
                None => return Ok(()),
            },
            _ = flush.tick() => aggregation.flush().await,
        }
    }
}

impl Aggregation {
    /// Reads the reports written before (by this or an earlier leader).
    async fn load(&mut self) -> Result<(), ControllerError> {
        let managed =
            ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_KYVERNO}"));
        let reports = Api::<PolicyReport>::all(self.client.clone())
            .list(&managed)
            .await
            .map_err(ControllerError::Load)?;
        for report in reports {
            let scope = report.metadata.namespace.clone();
            let name = report.metadata.name.as_deref().unwrap_or_default();
            self.load_report(scope, name, &report.content);
        }
        let reports = Api::<ClusterPolicyReport>::all(self.client.clone())
            .list(&managed)
            .await
            .map_err(ControllerError::Load)?;
        for report in reports {
            let name = report.metadata.name.as_deref().unwrap_or_default();
            self.load_report(None, name, &report.content);
        }
        Ok(())
    }

    fn load_report(&mut self, scope: Scope, name: &str, content: &PolicyReportContent) {
        let Some(shard) = shard_of(&scope, name) else {
            return;
        };
        self.aggregator.load(&scope, content);
        let count = self.shard_counts.entry(scope).or_default();
        *count = (*count).max(shard + 1);
    }

    fn start_watches(&mut self) {
        for resource in [
            ApiResource::erase::<EphemeralReport>(&()),
            ApiResource::erase::<ClusterEphemeralReport>(&()),
        ] {
            let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
            self.tasks
                .push(tokio::spawn(watch_reports(api, self.sender.clone())));
        }
        for (stream, resource) in [
            (
                Stream::ClusterPolicies,
                ApiResource::erase::<ClusterPolicy>(&()),
            ),
            (Stream::Policies, ApiResource::erase::<Policy>(&())),
        ] {
            let api =
                Api::<PartialObjectMeta<DynamicObject>>::all_with(self.client.clone(), &resource);
            self.tasks.push(tokio::spawn(watch_metadata(
                api,
                stream,
                self.sender.clone(),
            )));
        }
        for kind in self.aggregator.kinds() {
            self.watch_kind(kind);
        }
    }

    /// Starts the metadata watch on a kind of resource with results, once.
    fn watch_kind(&mut self, (api_version, kind): (String, String)) {
        if !self
            .watched_kinds
            .insert((api_version.clone(), kind.clone()))
        {
            return;
        }
        let client = self.client.clone();
        let sender = self.sender.clone();
        self.tasks.push(tokio::spawn(async move {
            let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
            let gvk = GroupVersionKind::gvk(group, version, &kind);
            let resource = loop {
                match kube::discovery::pinned_kind(&client, &gvk).await {
                    Ok((resource, _)) => break resource,
                    Err(error) => {
                        tracing::warn!(%error, %api_version, %kind, "kind not served; retrying");
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                }
            };
            let api = Api::<PartialObjectMeta<DynamicObject>>::all_with(client, &resource);
            watch_metadata(api, Stream::Resources(api_version, kind), sender).await;
        }));
    }

    fn handle(&mut self, feed: Feed) {
        match feed {
            Feed::Report(report) => self.absorb(*report),
            Feed::Reports(mut reports) => {
                reports.sort_by(|a, b| {
                    (&a.metadata.creation_timestamp, &a.metadata.name)
                        .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
                });
                for report in reports {
                    self.absorb(report);
                }
            }
            Feed::Listing(stream) => {
                self.listing_since
                    .insert(stream, self.aggregator.tick() + 1);
            }
            Feed::Listed(stream, live) => {
                let since = self.listing_since.remove(&stream).unwrap_or_default();
                let changed = match &stream {
                    Stream::ClusterPolicies => self.aggregator.retain_policies(
                        |policy| policy.contains('/') || live.contains(policy),
                        since,
                    ),
                    Stream::Policies => self.aggregator.retain_policies(
                        |policy| !policy.contains('/') || live.contains(policy),
                        since,
                    ),
                    Stream::Resources(api_version, kind) => {
                        self.aggregator
                            .retain_resources(api_version, kind, &live, since)
                    }
                };
                self.dirty.extend(changed);
            }
            Feed::Applied(Stream::Resources(..), _) => {}
            Feed::Applied(_, policy) => {
                self.deleted_policies.remove(&policy);
            }
            Feed::Deleted(Stream::Resources(..), uid) => {
                self.dirty.extend(self.aggregator.remove_resource(&uid));
                self.deleted_resources.insert(uid);
            }
            Feed::Deleted(_, policy) => {
                self.dirty.extend(self.aggregator.remove_policy(&policy));
                self.deleted_policies.insert(policy);
            }
        }
    }

    /// Takes an ephemeral report's results in, remembering to delete it.
    fn absorb(&mut self, report: DynamicObject) {
        let absorbed = Absorbed {
            namespace: report.metadata.namespace.clone(),
            name: report.metadata.name.clone().unwrap_or_default(),
            resource_version: report.metadata.resource_version.clone().unwrap_or_default(),
        };
        let scope = match read_ephemeral_report(&report) {
            Ok(mut update) => {
                let uid = update.subject.uid.clone().unwrap_or_default();
                if self.deleted_resources.contains(&uid) {
                    absorbed.namespace.clone()
                } else {
                    update
                        .results
                        .retain(|result| !self.deleted_policies.contains(&result.policy));
                    if let (Some(api_version), Some(kind)) =
                        (&update.subject.api_version, &update.subject.kind)
                    {
                        self.watch_kind((api_version.clone(), kind.clone()));
                    }
                    let scope = self.aggregator.apply(update);
                    self.dirty.insert(scope.clone());
                    scope
                }
            }
            Err(error) => {
                tracing::warn!(%error, "ephemeral report skipped");
                self.telemetry.controller.dropped();
                absorbed.namespace.clone()
            }
        };
        self.dirty.insert(scope.clone());
        self.absorbed.entry(scope).or_default().push(absorbed);
    }

    /// Writes the changed scopes, then deletes the ephemeral reports they absorbed.
    async fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        if dirty.is_empty() {
            return;
        }
        for scope in dirty {
            self.telemetry.controller.reconciled(1);
            match self.write(&scope).await {
                Ok(()) => {
                    self.failed_writes.remove(&scope);
                    for absorbed in self.absorbed.remove(&scope).unwrap_or_default() {
                        self.delete_ephemeral(absorbed).await;
                        self.telemetry.ephemeral_report_aggregated();
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, ?scope, "writing the policy report failed; retrying");
                    let failures = self.failed_writes.entry(scope.clone()).or_default();
                    *failures = failures.saturating_add(1);
                    self.telemetry.controller.requeued(*failures);
                    self.dirty.insert(scope);
                }
            }
        }
        self.publish_report_objects();
    }

    /// Updates the gauges of the report objects kept.
    fn publish_report_objects(&self) {
        let (cluster, namespaced): (Vec<_>, Vec<_>) = self
            .shard_counts
            .iter()
            .partition(|(scope, _)| scope.is_none());
        let total = |counts: Vec<(&Scope, &usize)>| counts.into_iter().map(|(_, n)| n).sum();
        self.telemetry
            .report_objects(total(namespaced), total(cluster));
    }

    async fn write(&mut self, scope: &Scope) -> Result<(), kube::Error> {
        let shards = self
            .aggregator
            .render(scope, self.settings.max_report_bytes);
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        for (shard, content) in shards.iter().enumerate() {
            let name = crate::aggregate::report_name(scope, shard);
            match scope {
                Some(namespace) => {
                    let mut report = PolicyReport::new(&name, content.clone());
                    report.metadata.namespace = Some(namespace.clone());
                    report.metadata.labels = Some(managed_labels());
                    Api::<PolicyReport>::namespaced(self.client.clone(), namespace)
                        .patch(&name, &apply, &Patch::Apply(&report))
                        .await?;
                }
                None => {
                    let mut report = ClusterPolicyReport::new(&name, content.clone());
                    report.metadata.labels = Some(managed_labels());
                    Api::<ClusterPolicyReport>::all(self.client.clone())
                        .patch(&name, &apply, &Patch::Apply(&report))
                        .await?;
                }
            }
        }
        let previous = self.shard_counts.get(scope).copied().unwrap_or_default();
        for shard in shards.len()..previous {
            let name = crate::aggregate::report_name(scope, shard);
            let deleted = match scope {
                Some(namespace) => Api::<PolicyReport>::namespaced(self.client.clone(), namespace)
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
                None => Api::<ClusterPolicyReport>::all(self.client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ()),
            };
            ignore_not_found(deleted)?;
        }
        if shards.is_empty() {
            self.shard_counts.remove(scope);
        } else {
            self.shard_counts.insert(scope.clone(), shards.len());
        }
        Ok(())
    }

    async fn delete_ephemeral(&self, absorbed: Absorbed) {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(absorbed.resource_version),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        let deleted = match &absorbed.namespace {
            Some(namespace) => Api::<EphemeralReport>::namespaced(self.client.clone(), namespace)
                .delete(&absorbed.name, &params)
                .await
                .map(|_| ()),
            None => Api::<ClusterEphemeralReport>::all(self.client.clone())
                .delete(&absorbed.name, &params)
                .await
                .map(|_| ()),
        };
        match deleted {
            Ok(()) => {}
            // Gone already, or replaced by a newer version that will be aggregated next.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => {
                tracing::warn!(%error, report = %absorbed.name, "ephemeral report not deleted")
            }
        }
    }
}

fn managed_labels() -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([(LABEL_MANAGED_BY.to_owned(), MANAGED_BY_KYVERNO.to_owned())])
}

fn ignore_not_found(result: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other,
    }
}

/// Forwards the ephemeral reports of a kind; their deletions are ours and ignored.
async fn watch_reports(api: Api<DynamicObject>, sender: mpsc::Sender<Feed>) {
    let mut listed = Vec::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        let feed = match event {
            Ok(Event::Init) => {
                listed.clear();
                continue;
            }
            Ok(Event::InitApply(report)) => {
                listed.push(report);
                continue;
            }
            Ok(Event::InitDone) => Feed::Reports(std::mem::take(&mut listed)),
            Ok(Event::Apply(report)) => Feed::Report(Box::new(report)),
            Ok(Event::Delete(_)) => continue,
            Err(error) => {
                tracing::warn!(%error, "ephemeral report watch failed; retrying");
                continue;
            }
        };
        if sender.send(feed).await.is_err() {
            return;
        }
    }
}

/// Forwards the names (policies) or uids (resources) of a metadata watch.
async fn watch_metadata(
    api: Api<PartialObjectMeta<DynamicObject>>,
    stream: Stream,
    sender: mpsc::Sender<Feed>,
) {
    let key = |metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| match stream {
        Stream::ClusterPolicies => metadata.name.clone().unwrap_or_default(),
        Stream::Policies => format!(
            "{}/{}",
            metadata.namespace.as_deref().unwrap_or_default(),
            metadata.name.as_deref().unwrap_or_default()
        ),
        Stream::Resources(..) => metadata.uid.clone().unwrap_or_default(),
    };
    let mut listed = BTreeSet::new();
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        let feed = match event {
            Ok(Event::Init) => {
                listed.clear();
                Feed::Listing(stream.clone())
            }
            Ok(Event::InitApply(object)) => {
                listed.insert(key(&object.metadata));
                continue;
            }
            Ok(Event::InitDone) => Feed::Listed(stream.clone(), std::mem::take(&mut listed)),
            Ok(Event::Apply(object)) => Feed::Applied(stream.clone(), key(&object.metadata)),
            Ok(Event::Delete(object)) => Feed::Deleted(stream.clone(), key(&object.metadata)),
            Err(error) => {
                tracing::warn!(%error, ?stream, "watch failed; retrying");
                continue;
            }
        };
        if sender.send(feed).await.is_err() {
            return;
        }
    }
}
