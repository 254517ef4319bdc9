//! The aggregation loop: watches feed one task that owns the [`Aggregator`]; every
//! `flush_delay` the changed scopes are written (server-side apply) and the ephemeral reports
//! they absorbed are deleted (with a resourceVersion precondition, so a newer version written
//! meanwhile survives and is aggregated next).
//!
//! Memory stays proportional to the results, kept in the aggregator's compact form: no cache
//! of ephemeral reports (each is read, absorbed and dropped; a listing keeps only their
//! compact form until it is complete), stored reports read a page at a time at start, and
//! report contents built one shard at a time when written (the apply's answer, the whole shard
//! again, is not decoded). A shard whose fingerprint did not change since this leader wrote it
//! is not written again.
//!
//! Results go away with their resource (a metadata-only watch per kind with results) and with
//! their policy (metadata watches on ClusterPolicies, Policies and the validating
//! `policies.kyverno.io` kinds; a policy is known by the `source` of its results and its name,
//! so that a ValidatingPolicy and a ClusterPolicy of the same name are told apart), and, when a
//! background scan no longer applies a policy to a resource, with the scan's next report of the
//! resource (see [`crate::aggregate`]). A listing prunes only what changed before it started,
//! so a report that overtakes the resource's own watch event is not lost.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
};
use kube::core::PartialObjectMeta;
use kube::core::{GroupVersionKind, Resource};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kyverno_api::policy_report::v1alpha2::{
    ClusterPolicyReport, PolicyReport, PolicyReportContent,
};
use kyverno_api::reports::v1::{ClusterEphemeralReport, EphemeralReport};
use kyverno_runtime::cel_policies::CelKind;
use kyverno_runtime::policy_cache::PolicyKind;
use kyverno_runtime::reports::{
    LABEL_MANAGED_BY, MANAGED_BY_KYVERNO, PolicyRef, is_namespaced, read_ephemeral_report,
    result_source_of,
};
use kyverno_runtime::telemetry::LeaderReadiness;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::aggregate::{Aggregator, PolicyFamily, Prepared, Scope, shard_of};
use crate::recent::{DEFAULT_REMEMBERED_FOR, Recent};
use crate::telemetry::Telemetry;

/// The field manager of the reports' server-side applies.
pub const FIELD_MANAGER: &str = "kyverno-reports-controller";

/// Default bound of one report's results, in bytes of JSON: a third of etcd's 1.5 MB object
/// limit, leaving room for metadata and managedFields.
pub const DEFAULT_MAX_REPORT_BYTES: usize = 512 * 1024;

/// Stored reports read per request at start: a page's reports are in memory at once.
const LOAD_PAGE_SIZE: u32 = 10;

/// Ephemeral reports read per request when their watch (re)lists them.
const REPORT_PAGE_SIZE: u32 = 50;

/// Events waiting for the aggregation task (which does not read them while it writes).
const FEED_CAPACITY: usize = 64;

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

/// The kinds of policies whose deletion removes their results.
const WATCHED_POLICY_KINDS: [PolicyKind; 6] = [
    PolicyKind::ClusterPolicy,
    PolicyKind::Policy,
    PolicyKind::Cel(CelKind::ValidatingPolicy),
    PolicyKind::Cel(CelKind::NamespacedValidatingPolicy),
    PolicyKind::Cel(CelKind::ImageValidatingPolicy),
    PolicyKind::Cel(CelKind::NamespacedImageValidatingPolicy),
];

/// What a metadata watch is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Stream {
    /// Policies of a kind.
    Policies(PolicyKind),
    /// Resources of an `apiVersion` and kind.
    Resources(String, String),
}

/// The two kinds of ephemeral reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ReportKind {
    /// EphemeralReport.
    Namespaced,
    /// ClusterEphemeralReport.
    Cluster,
}

/// What the watches report to the aggregation task.
enum Feed {
    /// An ephemeral report was written.
    Report(Box<DynamicObject>),
    /// A watch of ephemeral reports (re)starts listing them.
    ReportsListing(ReportKind),
    /// An ephemeral report listed.
    ReportListed(ReportKind, Box<DynamicObject>),
    /// Every ephemeral report of the kind was listed.
    ReportsListed(ReportKind),
    /// A metadata watch (re)starts listing.
    Listing(Stream),
    /// A metadata watch listed these keys (policy names as results carry them, or resource
    /// uids).
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

/// An ephemeral report read, not applied yet.
#[derive(Debug)]
struct Read {
    absorbed: Absorbed,
    /// Its content; `None` when it could not be read.
    prepared: Option<Prepared>,
}

/// A listed ephemeral report, applied once the listing is complete.
#[derive(Debug)]
struct Listed {
    /// When it was created: older reports are applied first.
    created: Option<Time>,
    read: Read,
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
    /// The shards stored per scope, with the fingerprint of the content this leader wrote
    /// (`None` for a shard found stored at start).
    written: HashMap<Scope, Vec<Option<u64>>>,
    listing_since: HashMap<Stream, u64>,
    /// Ephemeral reports of a listing in progress.
    listing_reports: HashMap<ReportKind, Vec<Listed>>,
    watched_kinds: HashSet<(String, String)>,
    deleted_resources: Recent,
    deleted_policies: HashSet<PolicyRef>,
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
    let (sender, mut receiver) = mpsc::channel(FEED_CAPACITY);
    let mut aggregation = Aggregation {
        client,
        settings,
        telemetry,
        failed_writes: HashMap::new(),
        sender,
        aggregator: Aggregator::default(),
        dirty: BTreeSet::new(),
        absorbed: HashMap::new(),
        written: HashMap::new(),
        listing_since: HashMap::new(),
        listing_reports: HashMap::new(),
        watched_kinds: HashSet::new(),
        deleted_resources: Recent::new(DEFAULT_REMEMBERED_FOR),
        deleted_policies: HashSet::new(),
        tasks: Vec::new(),
    };
    aggregation.load().await?;
    aggregation.publish_report_objects();
    aggregation.start_watches();
    let mut flush = tokio::time::interval(aggregation.settings.flush_delay);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Ready once both ephemeral report kinds were listed.
    let mut reports_listed = HashSet::new();
    loop {
        tokio::select! {
            feed = receiver.recv() => match feed {
                Some(feed) => {
                    if let Feed::ReportsListed(kind) = &feed
                        && reports_listed.insert(*kind)
                        && reports_listed.len() == 2
                    {
                        readiness.synced();
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
    /// Reads the reports written before (by this or an earlier leader), a page at a time.
    async fn load(&mut self) -> Result<(), ControllerError> {
        self.load_kind::<PolicyReport>().await?;
        self.load_kind::<ClusterPolicyReport>().await
    }

    async fn load_kind<K>(&mut self) -> Result<(), ControllerError>
    where
        K: Resource<DynamicType = ()>
            + Deref<Target = PolicyReportContent>
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let api = Api::<K>::all(self.client.clone());
        let mut params = ListParams::default()
            .labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_KYVERNO}"))
            .limit(LOAD_PAGE_SIZE);
        loop {
            let page = api.list(&params).await.map_err(ControllerError::Load)?;
            for report in &page.items {
                let scope = report.meta().namespace.clone();
                let name = report.meta().name.as_deref().unwrap_or_default();
                self.load_report(scope, name, report);
            }
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(()),
            }
        }
    }

    fn load_report(&mut self, scope: Scope, name: &str, content: &PolicyReportContent) {
        let Some(shard) = shard_of(&scope, name) else {
            return;
        };
        self.aggregator.load(&scope, content);
        let written = self.written.entry(scope).or_default();
        if written.len() <= shard {
            written.resize(shard + 1, None);
        }
    }

    fn start_watches(&mut self) {
        for (kind, resource) in [
            (
                ReportKind::Namespaced,
                ApiResource::erase::<EphemeralReport>(&()),
            ),
            (
                ReportKind::Cluster,
                ApiResource::erase::<ClusterEphemeralReport>(&()),
            ),
        ] {
            let api = Api::<DynamicObject>::all_with(self.client.clone(), &resource);
            self.tasks
                .push(tokio::spawn(watch_reports(api, kind, self.sender.clone())));
        }
        for kind in WATCHED_POLICY_KINDS {
            let api = Api::<PartialObjectMeta<DynamicObject>>::all_with(
                self.client.clone(),
                &kind.api_resource(),
            );
            self.tasks.push(tokio::spawn(watch_metadata(
                api,
                Stream::Policies(kind),
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
            Feed::Report(report) => {
                let read = self.read(*report);
                self.absorb(read);
            }
            Feed::ReportsListing(kind) => {
                self.listing_reports.insert(kind, Vec::new());
            }
            Feed::ReportListed(kind, report) => {
                let created = report.metadata.creation_timestamp.clone();
                let read = self.read(*report);
                self.listing_reports
                    .entry(kind)
                    .or_default()
                    .push(Listed { created, read });
            }
            Feed::ReportsListed(kind) => {
                let mut listed = self.listing_reports.remove(&kind).unwrap_or_default();
                listed.sort_by(|a, b| {
                    (&a.created, &a.read.absorbed.name).cmp(&(&b.created, &b.read.absorbed.name))
                });
                for listed in listed {
                    self.absorb(listed.read);
                }
            }
            Feed::Listing(stream) => {
                self.listing_since
                    .insert(stream, self.aggregator.tick() + 1);
            }
            Feed::Listed(stream, live) => {
                let since = self.listing_since.remove(&stream).unwrap_or_default();
                let changed = match &stream {
                    Stream::Policies(kind) => {
                        self.aggregator
                            .retain_policies(family_of(*kind), &live, since)
                    }
                    Stream::Resources(api_version, kind) => {
                        self.aggregator
                            .retain_resources(api_version, kind, &live, since)
                    }
                };
                self.dirty.extend(changed);
            }
            Feed::Applied(Stream::Resources(..), _) => {}
            Feed::Applied(Stream::Policies(kind), policy) => {
                self.deleted_policies
                    .remove(&PolicyRef::new(result_source_of(kind), &policy));
            }
            Feed::Deleted(Stream::Resources(..), uid) => {
                self.dirty.extend(self.aggregator.remove_resource(&uid));
                self.deleted_resources.insert(uid, Instant::now());
            }
            Feed::Deleted(Stream::Policies(kind), policy) => {
                let policy = PolicyRef::new(result_source_of(kind), &policy);
                self.dirty.extend(self.aggregator.remove_policy(&policy));
                self.deleted_policies.insert(policy);
            }
        }
    }

    /// Reads an ephemeral report into the aggregator's compact form.
    fn read(&mut self, report: DynamicObject) -> Read {
        let absorbed = Absorbed {
            namespace: report.metadata.namespace.clone(),
            name: report.metadata.name.clone().unwrap_or_default(),
            resource_version: report.metadata.resource_version.clone().unwrap_or_default(),
        };
        let prepared =
            match read_ephemeral_report(&report).map(|update| self.aggregator.prepare(update)) {
                Ok(Ok(prepared)) => Some(prepared),
                Ok(Err(error)) => self.skipped(&error),
                Err(error) => self.skipped(&error),
            };
        Read { absorbed, prepared }
    }

    /// Counts an ephemeral report that cannot be read.
    fn skipped(&self, error: &dyn std::error::Error) -> Option<Prepared> {
        tracing::warn!(%error, "ephemeral report skipped");
        self.telemetry.controller.dropped();
        None
    }

    /// Takes an ephemeral report's results in, remembering to delete it.
    fn absorb(&mut self, read: Read) {
        let Read { absorbed, prepared } = read;
        let scope = match prepared {
            Some(prepared) if self.deleted_resources.contains(prepared.uid()) => {
                absorbed.namespace.clone()
            }
            Some(mut prepared) => {
                prepared.retain_policies(|policy| !self.deleted_policies.contains(policy));
                if let Some(kind) = prepared.kind() {
                    self.watch_kind(kind);
                }
                self.aggregator.apply(prepared)
            }
            None => absorbed.namespace.clone(),
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
        self.aggregator.compact();
        self.publish_report_objects();
    }

    /// Updates the gauges of the report objects kept.
    fn publish_report_objects(&self) {
        let (cluster, namespaced): (Vec<_>, Vec<_>) =
            self.written.iter().partition(|(scope, _)| scope.is_none());
        let total = |shards: Vec<(&Scope, &Vec<Option<u64>>)>| {
            shards.into_iter().map(|(_, s)| s.len()).sum()
        };
        self.telemetry
            .report_objects(total(namespaced), total(cluster));
    }

    /// Writes the shards of `scope` whose content changed, and deletes those no longer needed.
    async fn write(&mut self, scope: &Scope) -> Result<(), kube::Error> {
        let shards = self
            .aggregator
            .shards(scope, self.settings.max_report_bytes);
        for (index, shard) in shards.iter().enumerate() {
            let written = self.written.entry(scope.clone()).or_default();
            if written.get(index) == Some(&Some(shard.fingerprint)) {
                continue;
            }
            let content = self.aggregator.render(scope, shard);
            let name = crate::aggregate::report_name(scope, index);
            match scope {
                Some(namespace) => {
                    let mut report = PolicyReport::new(&name, content);
                    report.metadata.namespace = Some(namespace.clone());
                    report.metadata.labels = Some(managed_labels());
                    apply_report(&self.client, Some(namespace), &name, &report).await?;
                }
                None => {
                    let mut report = ClusterPolicyReport::new(&name, content);
                    report.metadata.labels = Some(managed_labels());
                    apply_report(&self.client, None, &name, &report).await?;
                }
            }
            let written = self.written.entry(scope.clone()).or_default();
            if written.len() <= index {
                written.resize(index + 1, None);
            }
            written[index] = Some(shard.fingerprint);
        }
        let previous = self.written.get(scope).map_or(0, Vec::len);
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
            self.written.remove(scope);
        } else if let Some(written) = self.written.get_mut(scope) {
            written.truncate(shards.len());
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

/// Writes `report` by server-side apply. The answer (the whole report again) is not decoded.
async fn apply_report<K>(
    client: &Client,
    namespace: Option<&str>,
    name: &str,
    report: &K,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let request = kube::core::Request::new(K::url_path(&(), namespace))
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(report),
        )
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(drop)
}

/// The policies of `kind`, as their results tell them apart.
fn family_of(kind: PolicyKind) -> PolicyFamily {
    PolicyFamily {
        source: result_source_of(kind),
        namespaced: is_namespaced(kind),
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

/// Forwards the ephemeral reports of a kind one by one, listed ones included; their deletions
/// are ours and ignored.
async fn watch_reports(api: Api<DynamicObject>, kind: ReportKind, sender: mpsc::Sender<Feed>) {
    let config = watcher::Config::default().page_size(REPORT_PAGE_SIZE);
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        let feed = match event {
            Ok(Event::Init) => Feed::ReportsListing(kind),
            Ok(Event::InitApply(report)) => Feed::ReportListed(kind, Box::new(report)),
            Ok(Event::InitDone) => Feed::ReportsListed(kind),
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
        Stream::Policies(_) => match metadata.namespace.as_deref().filter(|ns| !ns.is_empty()) {
            Some(namespace) => format!(
                "{namespace}/{}",
                metadata.name.as_deref().unwrap_or_default()
            ),
            None => metadata.name.clone().unwrap_or_default(),
        },
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
