//! The aggregated state: for every resource, its latest results per policy rule, grouped by the
//! report they belong in (its namespace's PolicyReport, or the ClusterPolicyReport). Synchronous,
//! so that it is tested without a cluster.
//!
//! Kept small: a result is a pointer to its shared [`Body`] and its timestamp; a resource is its
//! uid, its name and its shared `apiVersion` and kind. Report contents are built one shard at a
//! time, when written, and a shard's [`ShardPlan::fingerprint`] tells whether it changed.
//!
//! A policy is known by the `source` of its results and its name ([`PolicyRef`]), so that a
//! ClusterPolicy and a ValidatingPolicy of the same name never replace each other's results.
//! An ephemeral report replaces the resource's results of the policies it names; a background
//! scan's report is the scanner's whole view of the resource, so it also replaces every result
//! an earlier scan reported (those of a policy that no longer applies to the resource go).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kyverno_api::policy_report::v1alpha2::{PolicyReportContent, PolicyReportResult, Timestamp};
use kyverno_runtime::reports::{
    PolicyRef, ReportUpdate, SOURCE_BACKGROUND_SCAN, result_source, summarize,
};
use serde::Serialize;

use crate::intern::{Body, Interner};

/// Where results are reported: the namespace of a PolicyReport, or `None` for the
/// ClusterPolicyReport.
pub type Scope = Option<String>;

/// The name of the ClusterPolicyReport (shard 0), as Kyverno 1.6–1.9 named it.
pub const CLUSTER_REPORT_NAME: &str = "clusterpolicyreport";
/// Prefix of the name of a namespace's PolicyReport (shard 0): `polr-ns-<namespace>`.
pub const NAMESPACE_REPORT_PREFIX: &str = "polr-ns-";

/// The name of shard `shard` of the report of `scope`: `polr-ns-<namespace>` or
/// `clusterpolicyreport` for the first, then `-1`, `-2`, ... appended.
pub fn report_name(scope: &Scope, shard: usize) -> String {
    let base = match scope {
        Some(namespace) => format!("{NAMESPACE_REPORT_PREFIX}{namespace}"),
        None => CLUSTER_REPORT_NAME.to_owned(),
    };
    if shard == 0 {
        base
    } else {
        format!("{base}-{shard}")
    }
}

/// The shard number of report `name` of `scope`, when it is one of ours.
pub fn shard_of(scope: &Scope, name: &str) -> Option<usize> {
    let base = report_name(scope, 0);
    let rest = name.strip_prefix(&base)?;
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix('-')?
        .parse()
        .ok()
        .filter(|shard| *shard > 0)
}

/// Why a result cannot be aggregated.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// The result cannot be encoded as JSON (to be compared with the others).
    #[error("a result of policy {policy} cannot be encoded: {source}")]
    Encode {
        /// The result's policy.
        policy: String,
        /// What was wrong.
        source: serde_json::Error,
    },
}

/// The resource results are about, but its uid (the key of its entry) and its namespace (the
/// scope).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Subject {
    api_version: Option<Arc<str>>,
    kind: Option<Arc<str>>,
    name: Option<Box<str>>,
}

impl Subject {
    fn of(reference: &ObjectReference, interner: &mut Interner) -> Self {
        Self {
            api_version: reference
                .api_version
                .as_deref()
                .map(|text| interner.string(text)),
            kind: reference.kind.as_deref().map(|text| interner.string(text)),
            name: reference.name.as_deref().map(Box::from),
        }
    }

    /// The reference results carry.
    fn reference(&self, scope: &Scope, uid: &str) -> ObjectReference {
        ObjectReference {
            api_version: self.api_version.as_deref().map(str::to_owned),
            kind: self.kind.as_deref().map(str::to_owned),
            namespace: scope.clone(),
            name: self.name.as_deref().map(str::to_owned),
            uid: Some(uid.to_owned()),
            ..ObjectReference::default()
        }
    }
}

/// One result of a resource.
#[derive(Clone, Debug)]
struct Stored {
    body: Arc<Body>,
    timestamp: Option<Timestamp>,
}

impl Stored {
    /// `result`, reported by a background scan when `scanned`.
    fn new(
        result: PolicyReportResult,
        scanned: bool,
        interner: &mut Interner,
    ) -> Result<Self, AggregateError> {
        let timestamp = result.timestamp;
        let policy = result.policy.clone();
        let body = interner
            .body(result, scanned)
            .map_err(|source| AggregateError::Encode { policy, source })?;
        Ok(Self { body, timestamp })
    }

    /// Results are unique per policy and rule.
    fn key(&self) -> (&str, &str) {
        (
            &self.body.result.policy,
            self.body.result.rule.as_deref().unwrap_or_default(),
        )
    }

    /// The full result, about `subject`.
    fn result(&self, subject: ObjectReference) -> PolicyReportResult {
        let mut result = self.body.result.clone();
        result.timestamp = self.timestamp;
        result.resources = vec![subject];
        result
    }

    /// The length of the JSON of [`Stored::result`] about a subject whose JSON takes
    /// `subject_len`: the body's, plus its `"timestamp":…,` and `"resources":[…],` (the body
    /// always has a `policy`, so each added field brings a comma).
    fn json_len(&self, subject_len: usize) -> usize {
        const FIELD_NAME_LEN: usize = r#""timestamp":"#.len();
        let timestamp = self
            .timestamp
            .map_or(0, |timestamp| FIELD_NAME_LEN + json_len(&timestamp) + 1);
        let resources = r#""resources":[],"#.len() + subject_len;
        self.body.json_len + timestamp + resources
    }

    fn fingerprint(&self, hasher: &mut DefaultHasher) {
        self.body.id.hash(hasher);
        self.timestamp
            .map(|timestamp| (timestamp.seconds, timestamp.nanos))
            .hash(hasher);
    }
}

/// The length of the JSON of `value`, without writing it.
fn json_len(value: &impl Serialize) -> usize {
    let mut counter = ByteCounter(0);
    // Writing to a counter cannot fail; a value that does not encode takes no room.
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => 0,
    }
}

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The results of one resource.
#[derive(Debug)]
struct Entry {
    subject: Subject,
    /// Sorted by [`Stored::key`], each key once.
    results: Vec<Stored>,
    /// When the entry last changed (see [`Aggregator::tick`]).
    changed: u64,
}

impl Entry {
    /// Adds `stored`, replacing the result of the same policy and rule.
    fn insert(&mut self, stored: Stored) {
        match self
            .results
            .binary_search_by(|present| present.key().cmp(&stored.key()))
        {
            Ok(index) => self.results[index] = stored,
            Err(index) => self.results.insert(index, stored),
        }
    }
}

/// An ephemeral report read for [`Aggregator::apply`], its results shared.
#[derive(Debug)]
pub struct Prepared {
    scope: Scope,
    uid: String,
    subject: Subject,
    policies: BTreeSet<PolicyRef>,
    /// Whether a background scan wrote the report.
    scanned: bool,
    results: Vec<Stored>,
}

impl Prepared {
    /// The uid of the resource the report is about.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The `apiVersion` and kind of the resource, when the report names them.
    pub fn kind(&self) -> Option<(String, String)> {
        Some((
            self.subject.api_version.as_deref()?.to_owned(),
            self.subject.kind.as_deref()?.to_owned(),
        ))
    }

    /// Keeps the results of the policies that `keep`; the others' earlier results on the
    /// resource are still removed.
    pub fn retain_policies(&mut self, keep: impl Fn(&PolicyRef) -> bool) {
        self.results
            .retain(|stored| keep(&PolicyRef::of(&stored.body.result)));
    }
}

/// The policies of one kind a watch lists: the `source` of their results, and whether they
/// are namespaced (their results name them `namespace/name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyFamily {
    /// The `source` of their results.
    pub source: &'static str,
    /// Whether the kind is namespaced.
    pub namespaced: bool,
}

impl PolicyFamily {
    /// Whether a policy of `source` named `name` (as results name it) is of the family.
    fn contains(&self, source: &str, name: &str) -> bool {
        source == self.source && name.contains('/') == self.namespaced
    }
}

/// A shard of a scope's report: consecutive resources (by uid) whose results fit in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    /// The uid of its first resource.
    first: String,
    /// How many resources it holds.
    resources: usize,
    /// A hash of its content: equal fingerprints of the same shard mean the same content.
    pub fingerprint: u64,
}

/// A shard being planned.
struct OpenShard {
    plan: ShardPlan,
    bytes: usize,
    hasher: DefaultHasher,
}

impl OpenShard {
    fn new(first: &str) -> Self {
        Self {
            plan: ShardPlan {
                first: first.to_owned(),
                resources: 0,
                fingerprint: 0,
            },
            bytes: 0,
            hasher: DefaultHasher::new(),
        }
    }

    fn close(mut self) -> ShardPlan {
        self.plan.fingerprint = self.hasher.finish();
        self.plan
    }
}

/// Every resource's results, by scope.
#[derive(Debug, Default)]
pub struct Aggregator {
    scopes: BTreeMap<Scope, BTreeMap<String, Entry>>,
    scope_of: HashMap<String, Scope>,
    interner: Interner,
    tick: u64,
}

impl Aggregator {
    /// A logical clock: every change gets a later tick, so that a listing started at tick `t`
    /// only prunes entries that changed before `t`.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Reads an ephemeral report's content for [`Aggregator::apply`], sharing its results with
    /// the equal ones kept.
    pub fn prepare(&mut self, update: ReportUpdate) -> Result<Prepared, AggregateError> {
        let scanned = update.source == SOURCE_BACKGROUND_SCAN;
        let results = update
            .results
            .into_iter()
            .map(|result| Stored::new(result, scanned, &mut self.interner))
            .collect::<Result<_, _>>()?;
        Ok(Prepared {
            scope: update.subject.namespace.clone(),
            uid: update.subject.uid.clone().unwrap_or_default(),
            subject: Subject::of(&update.subject, &mut self.interner),
            policies: update.policies,
            scanned,
            results,
        })
    }

    /// Applies an ephemeral report: the resource's results of the policies it names (by kind
    /// and name), and those of earlier scans when a scan wrote it, are replaced by its results.
    /// Returns the scope changed.
    pub fn apply(&mut self, update: Prepared) -> Scope {
        self.tick += 1;
        let Prepared {
            scope,
            uid,
            subject,
            policies,
            scanned,
            results,
        } = update;
        if let Some(previous) = self.scope_of.get(&uid)
            && *previous != scope
        {
            let previous = previous.clone();
            self.remove_from(&previous, &uid);
        }
        let entries = self.scopes.entry(scope.clone()).or_default();
        let entry = entries.entry(uid.clone()).or_insert_with(|| Entry {
            subject: subject.clone(),
            results: Vec::new(),
            changed: 0,
        });
        entry.subject = subject;
        entry.changed = self.tick;
        entry.results.retain(|stored| {
            let replaced = (scanned && stored.body.scanned)
                || policies
                    .iter()
                    .any(|policy| policy.gave(&stored.body.result));
            !replaced
        });
        for stored in results {
            entry.insert(stored);
        }
        if entry.results.is_empty() {
            self.remove_from(&scope, &uid);
        } else {
            self.scope_of.insert(uid, scope.clone());
        }
        scope
    }

    /// Loads the results of a stored report of `scope` (after a restart). Loaded entries count
    /// as older than any listing; who reported their results is not known, so only a report
    /// naming their policy replaces them. Results about no resource uid are not ours and are
    /// skipped.
    pub fn load(&mut self, scope: &Scope, content: &PolicyReportContent) {
        for result in &content.results {
            let Some(reference) = result.resources.first() else {
                continue;
            };
            let Some(uid) = reference.uid.clone() else {
                continue;
            };
            let stored = match Stored::new(result.clone(), false, &mut self.interner) {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::warn!(%error, "stored result skipped");
                    continue;
                }
            };
            let subject = Subject::of(reference, &mut self.interner);
            self.scopes
                .entry(scope.clone())
                .or_default()
                .entry(uid.clone())
                .or_insert_with(|| Entry {
                    subject,
                    results: Vec::new(),
                    changed: 0,
                })
                .insert(stored);
            self.scope_of.insert(uid, scope.clone());
        }
    }

    /// Removes the results of a deleted resource.
    pub fn remove_resource(&mut self, uid: &str) -> Option<Scope> {
        let scope = self.scope_of.get(uid)?.clone();
        self.remove_from(&scope, uid);
        Some(scope)
    }

    /// Keeps, among the resources of `api_version`/`kind` that did not change since tick
    /// `listed_at`, those `live` (by uid). Returns the scopes changed.
    pub fn retain_resources(
        &mut self,
        api_version: &str,
        kind: &str,
        live: &BTreeSet<String>,
        listed_at: u64,
    ) -> BTreeSet<Scope> {
        let mut gone = Vec::new();
        for (scope, entries) in &self.scopes {
            for (uid, entry) in entries {
                let same_kind = entry.subject.api_version.as_deref() == Some(api_version)
                    && entry.subject.kind.as_deref() == Some(kind);
                if same_kind && entry.changed < listed_at && !live.contains(uid) {
                    gone.push((scope.clone(), uid.clone()));
                }
            }
        }
        gone.into_iter()
            .map(|(scope, uid)| {
                self.remove_from(&scope, &uid);
                scope
            })
            .collect()
    }

    /// Removes the results of a deleted policy. Returns the scopes changed.
    pub fn remove_policy(&mut self, policy: &PolicyRef) -> BTreeSet<Scope> {
        self.retain_results(|source, name, _| source != policy.source || name != policy.name)
    }

    /// Keeps, among the results of the policies of `family`, those of the policies `live` (by
    /// name as results carry it), except in entries changed since tick `listed_at`. Results of
    /// other kinds of policies are kept. Returns the scopes changed.
    pub fn retain_policies(
        &mut self,
        family: PolicyFamily,
        live: &BTreeSet<String>,
        listed_at: u64,
    ) -> BTreeSet<Scope> {
        self.retain_results(|source, name, entry_changed| {
            entry_changed >= listed_at || !family.contains(source, name) || live.contains(name)
        })
    }

    fn retain_results(&mut self, keep: impl Fn(&str, &str, u64) -> bool) -> BTreeSet<Scope> {
        let mut changed = BTreeSet::new();
        let mut emptied = Vec::new();
        for (scope, entries) in &mut self.scopes {
            for (uid, entry) in entries.iter_mut() {
                let before = entry.results.len();
                let entry_changed = entry.changed;
                entry.results.retain(|stored| {
                    let result = &stored.body.result;
                    keep(result_source(result), &result.policy, entry_changed)
                });
                if entry.results.len() != before {
                    changed.insert(scope.clone());
                }
                if entry.results.is_empty() {
                    emptied.push((scope.clone(), uid.clone()));
                }
            }
        }
        for (scope, uid) in emptied {
            self.remove_from(&scope, &uid);
        }
        changed
    }

    fn remove_from(&mut self, scope: &Scope, uid: &str) {
        if let Some(entries) = self.scopes.get_mut(scope) {
            entries.remove(uid);
            if entries.is_empty() {
                self.scopes.remove(scope);
            }
        }
        self.scope_of.remove(uid);
    }

    /// Forgets the shared results and strings no resource uses any more.
    pub fn compact(&mut self) {
        self.interner.purge();
    }

    /// How many results are kept, and how many distinct ones they share.
    pub fn result_counts(&self) -> (usize, usize) {
        let results = self
            .scopes
            .values()
            .flat_map(BTreeMap::values)
            .map(|entry| entry.results.len())
            .sum();
        (results, self.interner.bodies())
    }

    /// The kinds (`apiVersion`, `kind`) of the resources with results.
    pub fn kinds(&self) -> BTreeSet<(String, String)> {
        self.scopes
            .values()
            .flat_map(BTreeMap::values)
            .filter_map(|entry| {
                Some((
                    entry.subject.api_version.as_deref()?.to_owned(),
                    entry.subject.kind.as_deref()?.to_owned(),
                ))
            })
            .collect()
    }

    /// The scopes with results.
    pub fn scopes(&self) -> impl Iterator<Item = &Scope> {
        self.scopes.keys()
    }

    /// The shards of the report of `scope`, whose results take at most `max_bytes` of JSON each
    /// (one resource's results are never split; a resource whose results alone pass the limit
    /// gets a shard of its own). No shard when the scope has no results.
    pub fn shards(&self, scope: &Scope, max_bytes: usize) -> Vec<ShardPlan> {
        let Some(entries) = self.scopes.get(scope) else {
            return Vec::new();
        };
        let mut shards = Vec::new();
        let mut open: Option<OpenShard> = None;
        for (uid, entry) in entries {
            let subject_len = json_len(&entry.subject.reference(scope, uid));
            let bytes: usize = entry
                .results
                .iter()
                .map(|stored| stored.json_len(subject_len) + 1)
                .sum();
            let shard = match open.take() {
                Some(shard) if shard.bytes + bytes > max_bytes => {
                    shards.push(shard.close());
                    OpenShard::new(uid)
                }
                Some(shard) => shard,
                None => OpenShard::new(uid),
            };
            let shard = open.insert(shard);
            shard.plan.resources += 1;
            shard.bytes += bytes;
            uid.hash(&mut shard.hasher);
            entry.subject.hash(&mut shard.hasher);
            for stored in &entry.results {
                stored.fingerprint(&mut shard.hasher);
            }
        }
        shards.extend(open.map(OpenShard::close));
        shards
    }

    /// The content of a shard of the report of `scope` (planned by [`Aggregator::shards`] since
    /// the last change): its results sorted by policy, rule and resource uid, and their summary.
    pub fn render(&self, scope: &Scope, shard: &ShardPlan) -> PolicyReportContent {
        let mut results: Vec<PolicyReportResult> = self
            .scopes
            .get(scope)
            .into_iter()
            .flat_map(|entries| {
                entries.range::<str, _>((Bound::Included(shard.first.as_str()), Bound::Unbounded))
            })
            .take(shard.resources)
            .flat_map(|(uid, entry)| {
                let subject = entry.subject.reference(scope, uid);
                entry
                    .results
                    .iter()
                    .map(move |stored| stored.result(subject.clone()))
            })
            .collect();
        results.sort_by(|a, b| {
            (&a.policy, &a.rule, subject_uid(a)).cmp(&(&b.policy, &b.rule, subject_uid(b)))
        });
        PolicyReportContent {
            summary: Some(summarize(&results)),
            results,
            ..PolicyReportContent::default()
        }
    }
}

fn subject_uid(result: &PolicyReportResult) -> Option<&str> {
    result
        .resources
        .first()
        .and_then(|subject| subject.uid.as_deref())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kyverno_api::policy_report::v1alpha2::PolicyResult;
    use kyverno_runtime::reports::{
        RESULT_SOURCE_KYVERNO, RESULT_SOURCE_VALIDATING_POLICY, SOURCE_ADMISSION,
    };

    fn subject(namespace: Option<&str>, uid: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: namespace.map(str::to_owned),
            name: Some(format!("pod-{uid}")),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        }
    }

    /// A background scan's report on pod `uid` with the results of ClusterPolicies.
    fn update(uid: &str, results: &[(&str, &str, PolicyResult)]) -> ReportUpdate {
        let subject = subject(Some("default"), uid);
        let results: Vec<PolicyReportResult> = results
            .iter()
            .map(|(policy, rule, result)| PolicyReportResult {
                policy: (*policy).into(),
                rule: Some((*rule).into()),
                result: Some(*result),
                timestamp: Some(Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                resources: vec![subject.clone()],
                ..PolicyReportResult::default()
            })
            .collect();
        ReportUpdate {
            subject,
            source: SOURCE_BACKGROUND_SCAN.into(),
            policies: results.iter().map(PolicyRef::of).collect(),
            results,
        }
    }

    /// `update` with its results given to `source` policies.
    fn of_source(mut update: ReportUpdate, source: &str) -> ReportUpdate {
        for result in &mut update.results {
            result.source = Some(source.to_owned());
        }
        update.policies = update.results.iter().map(PolicyRef::of).collect();
        update
    }

    /// `update` written by the admission controller.
    fn admitted(mut update: ReportUpdate) -> ReportUpdate {
        update.source = SOURCE_ADMISSION.into();
        update
    }

    fn apply(aggregator: &mut Aggregator, update: ReportUpdate) -> Scope {
        let prepared = aggregator.prepare(update).unwrap();
        aggregator.apply(prepared)
    }

    /// Every shard's content, as the controller writes them.
    fn render(
        aggregator: &Aggregator,
        scope: &Scope,
        max_bytes: usize,
    ) -> Vec<PolicyReportContent> {
        aggregator
            .shards(scope, max_bytes)
            .iter()
            .map(|shard| aggregator.render(scope, shard))
            .collect()
    }

    fn summary(aggregator: &Aggregator, scope: &Scope) -> (i64, i64) {
        let shards = render(aggregator, scope, usize::MAX);
        let summary = shards
            .first()
            .and_then(|shard| shard.summary)
            .unwrap_or_default();
        (summary.pass, summary.fail)
    }

    const DEFAULT: Scope = None;

    fn default_ns() -> Scope {
        Some("default".into())
    }

    #[test]
    fn names_and_shards() {
        assert_eq!(report_name(&default_ns(), 0), "polr-ns-default");
        assert_eq!(report_name(&default_ns(), 2), "polr-ns-default-2");
        assert_eq!(report_name(&DEFAULT, 0), "clusterpolicyreport");
        assert_eq!(shard_of(&default_ns(), "polr-ns-default"), Some(0));
        assert_eq!(shard_of(&default_ns(), "polr-ns-default-3"), Some(3));
        assert_eq!(shard_of(&default_ns(), "polr-ns-default-x"), None);
        assert_eq!(shard_of(&default_ns(), "polr-ns-defaults"), None);
    }

    #[test]
    fn rendered_results_are_the_applied_ones() {
        let mut aggregator = Aggregator::default();
        let mut written = update("a", &[("p", "r", PolicyResult::Fail)]);
        written.results[0].message = Some("bad".into());
        written.results[0].category = Some("Pod Security".into());
        written.results[0].properties = BTreeMap::from([("process".into(), "scan".into())]);
        apply(&mut aggregator, written.clone());
        let shards = render(&aggregator, &default_ns(), usize::MAX);
        assert_eq!(shards[0].results, written.results);
    }

    #[test]
    fn sizes_are_those_of_the_json() {
        let mut interner = Interner::default();
        let mut with_timestamp = update("a", &[("p", "r", PolicyResult::Fail)]).results[0].clone();
        with_timestamp.message = Some("a \"quoted\" message".into());
        let mut without_timestamp = with_timestamp.clone();
        without_timestamp.timestamp = None;
        let reference = subject(Some("default"), "a");
        for result in [with_timestamp, without_timestamp] {
            let stored = Stored::new(result, true, &mut interner).unwrap();
            let full = stored.result(reference.clone());
            assert_eq!(
                stored.json_len(json_len(&reference)),
                serde_json::to_vec(&full).unwrap().len()
            );
        }
    }

    #[test]
    fn exact_summary_and_replacement() {
        let mut aggregator = Aggregator::default();
        apply(
            &mut aggregator,
            update("good", &[("require-tier", "check", PolicyResult::Pass)]),
        );
        apply(
            &mut aggregator,
            update("bad", &[("require-tier", "check", PolicyResult::Fail)]),
        );
        assert_eq!(summary(&aggregator, &default_ns()), (1, 1));
        // A rescan replaces the resource's results: no duplicate.
        apply(
            &mut aggregator,
            update("bad", &[("require-tier", "check", PolicyResult::Fail)]),
        );
        assert_eq!(summary(&aggregator, &default_ns()), (1, 1));
        // The bad pod is fixed.
        apply(
            &mut aggregator,
            update("bad", &[("require-tier", "check", PolicyResult::Pass)]),
        );
        assert_eq!(summary(&aggregator, &default_ns()), (2, 0));
        assert_eq!(aggregator.result_counts(), (2, 2));
        aggregator.compact();
        assert_eq!(
            aggregator.result_counts(),
            (2, 1),
            "the FAIL is no longer used"
        );
    }

    #[test]
    fn a_report_naming_a_policy_without_results_clears_them() {
        let mut aggregator = Aggregator::default();
        apply(
            &mut aggregator,
            update(
                "a",
                &[
                    ("p", "r", PolicyResult::Fail),
                    ("q", "r", PolicyResult::Pass),
                ],
            ),
        );
        let mut cleared = admitted(update("a", &[]));
        cleared
            .policies
            .insert(PolicyRef::new(RESULT_SOURCE_KYVERNO, "p"));
        apply(&mut aggregator, cleared);
        let shards = render(&aggregator, &default_ns(), usize::MAX);
        assert_eq!(shards[0].results.len(), 1);
        assert_eq!(shards[0].results[0].policy, "q");
    }

    #[test]
    fn prepared_reports_drop_the_results_of_deleted_policies() {
        let mut aggregator = Aggregator::default();
        apply(
            &mut aggregator,
            update("a", &[("p", "r", PolicyResult::Fail)]),
        );
        let mut prepared = aggregator
            .prepare(update(
                "a",
                &[
                    ("p", "r", PolicyResult::Fail),
                    ("q", "r", PolicyResult::Pass),
                ],
            ))
            .unwrap();
        assert_eq!(prepared.uid(), "a");
        assert_eq!(prepared.kind(), Some(("v1".into(), "Pod".into())));
        prepared.retain_policies(|policy| policy.name != "p");
        aggregator.apply(prepared);
        assert_eq!(summary(&aggregator, &default_ns()), (1, 0));
    }

    #[test]
    fn deleted_resources_and_policies_are_removed() {
        let mut aggregator = Aggregator::default();
        apply(
            &mut aggregator,
            update("a", &[("p", "r", PolicyResult::Fail)]),
        );
        apply(
            &mut aggregator,
            update(
                "b",
                &[
                    ("p", "r", PolicyResult::Pass),
                    ("q", "r", PolicyResult::Pass),
                ],
            ),
        );
        assert_eq!(aggregator.remove_resource("a"), Some(default_ns()));
        assert_eq!(summary(&aggregator, &default_ns()), (2, 0));
        assert_eq!(
            aggregator.remove_policy(&PolicyRef::new(RESULT_SOURCE_KYVERNO, "p")),
            BTreeSet::from([default_ns()])
        );
        assert_eq!(summary(&aggregator, &default_ns()), (1, 0));
        aggregator.remove_policy(&PolicyRef::new(RESULT_SOURCE_KYVERNO, "q"));
        assert!(render(&aggregator, &default_ns(), usize::MAX).is_empty());
        assert_eq!(aggregator.scopes().count(), 0);
    }

    const CLUSTER_POLICIES: PolicyFamily = PolicyFamily {
        source: RESULT_SOURCE_KYVERNO,
        namespaced: false,
    };

    const VALIDATING_POLICIES: PolicyFamily = PolicyFamily {
        source: "KyvernoValidatingPolicy",
        namespaced: false,
    };

    /// A report with results of a ClusterPolicy, a Policy, a ValidatingPolicy and a
    /// NamespacedValidatingPolicy, all named `p`.
    fn update_of_every_kind(uid: &str) -> ReportUpdate {
        let mut update = update(
            uid,
            &[
                ("p", "r", PolicyResult::Fail),
                ("default/p", "r", PolicyResult::Fail),
                ("p", "v", PolicyResult::Pass),
                ("default/p", "v", PolicyResult::Pass),
            ],
        );
        for result in &mut update.results[2..] {
            result.source = Some(VALIDATING_POLICIES.source.into());
        }
        update.policies = update.results.iter().map(PolicyRef::of).collect();
        update
    }

    fn policies(aggregator: &Aggregator) -> Vec<(Option<String>, String)> {
        render(aggregator, &default_ns(), usize::MAX)
            .into_iter()
            .flat_map(|shard| shard.results)
            .map(|result| (result.source, result.policy))
            .collect()
    }

    #[test]
    fn listings_prune_only_the_policies_of_their_kind() {
        let mut aggregator = Aggregator::default();
        apply(&mut aggregator, update_of_every_kind("a"));
        let listed_at = aggregator.tick() + 1;
        // No ClusterPolicy is left: the ValidatingPolicy of the same name keeps its results.
        let changed = aggregator.retain_policies(CLUSTER_POLICIES, &BTreeSet::new(), listed_at);
        assert_eq!(changed, BTreeSet::from([default_ns()]));
        let vpol = Some(VALIDATING_POLICIES.source.to_owned());
        assert_eq!(
            policies(&aggregator),
            [
                (None, "default/p".to_owned()),
                (vpol.clone(), "default/p".to_owned()),
                (vpol.clone(), "p".to_owned()),
            ]
        );
        // The ValidatingPolicy is live: nothing changes.
        let live = BTreeSet::from(["p".to_owned()]);
        let changed = aggregator.retain_policies(VALIDATING_POLICIES, &live, listed_at);
        assert!(changed.is_empty());
        // Then deleted: the NamespacedValidatingPolicy and the Policy keep theirs.
        aggregator.remove_policy(&PolicyRef::new(VALIDATING_POLICIES.source, "p"));
        assert_eq!(
            policies(&aggregator),
            [
                (None, "default/p".to_owned()),
                (vpol, "default/p".to_owned())
            ]
        );
    }

    /// The `(source, policy, rule, result)` of every result on pod `a`.
    fn outcomes(aggregator: &Aggregator) -> Vec<(String, String, String, PolicyResult)> {
        let mut outcomes: Vec<_> = render(aggregator, &default_ns(), usize::MAX)
            .into_iter()
            .flat_map(|shard| shard.results)
            .map(|result| {
                (
                    result_source(&result).to_owned(),
                    result.policy,
                    result.rule.unwrap_or_default(),
                    result.result.unwrap(),
                )
            })
            .collect();
        outcomes.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        outcomes
    }

    fn outcome(
        source: &str,
        policy: &str,
        rule: &str,
        result: PolicyResult,
    ) -> (String, String, String, PolicyResult) {
        (source.into(), policy.into(), rule.into(), result)
    }

    #[test]
    fn a_cluster_policy_and_a_validating_policy_of_the_same_name_keep_their_own_results() {
        let mut aggregator = Aggregator::default();
        let cluster_policy = |result| update("a", &[("x", "check", result)]);
        let validating_policy = |result| {
            of_source(
                update("a", &[("x", "validation", result)]),
                RESULT_SOURCE_VALIDATING_POLICY,
            )
        };
        let mut both = cluster_policy(PolicyResult::Fail);
        both.results
            .extend(validating_policy(PolicyResult::Fail).results);
        both.policies = both.results.iter().map(PolicyRef::of).collect();
        apply(&mut aggregator, both);
        assert_eq!(
            outcomes(&aggregator),
            [
                outcome(
                    RESULT_SOURCE_VALIDATING_POLICY,
                    "x",
                    "validation",
                    PolicyResult::Fail
                ),
                outcome(RESULT_SOURCE_KYVERNO, "x", "check", PolicyResult::Fail),
            ]
        );
        // An admission report of the ClusterPolicy alone leaves the ValidatingPolicy's result.
        apply(
            &mut aggregator,
            admitted(cluster_policy(PolicyResult::Pass)),
        );
        assert_eq!(
            outcomes(&aggregator),
            [
                outcome(
                    RESULT_SOURCE_VALIDATING_POLICY,
                    "x",
                    "validation",
                    PolicyResult::Fail
                ),
                outcome(RESULT_SOURCE_KYVERNO, "x", "check", PolicyResult::Pass),
            ]
        );
        // And the other way round, a report naming the ValidatingPolicy without results.
        let mut cleared = admitted(update("a", &[]));
        cleared
            .policies
            .insert(PolicyRef::new(RESULT_SOURCE_VALIDATING_POLICY, "x"));
        apply(&mut aggregator, cleared);
        assert_eq!(
            outcomes(&aggregator),
            [outcome(
                RESULT_SOURCE_KYVERNO,
                "x",
                "check",
                PolicyResult::Pass
            )]
        );
    }

    #[test]
    fn a_scan_replaces_what_earlier_scans_reported() {
        let mut aggregator = Aggregator::default();
        apply(
            &mut aggregator,
            update(
                "a",
                &[
                    ("p", "r", PolicyResult::Fail),
                    ("q", "r", PolicyResult::Fail),
                ],
            ),
        );
        // A policy not run in the background reports at admission.
        apply(
            &mut aggregator,
            admitted(update("a", &[("admission-only", "r", PolicyResult::Fail)])),
        );
        // The next scan no longer applies `p` to the resource: its result goes, the admission
        // result stays.
        apply(
            &mut aggregator,
            update("a", &[("q", "r", PolicyResult::Pass)]),
        );
        assert_eq!(
            outcomes(&aggregator),
            [
                outcome(
                    RESULT_SOURCE_KYVERNO,
                    "admission-only",
                    "r",
                    PolicyResult::Fail
                ),
                outcome(RESULT_SOURCE_KYVERNO, "q", "r", PolicyResult::Pass),
            ]
        );
        // A scan with no result at all clears what scans reported.
        apply(&mut aggregator, update("a", &[]));
        assert_eq!(
            outcomes(&aggregator),
            [outcome(
                RESULT_SOURCE_KYVERNO,
                "admission-only",
                "r",
                PolicyResult::Fail
            )]
        );
        // An admission report only replaces the policies it names.
        apply(
            &mut aggregator,
            update("a", &[("p", "r", PolicyResult::Fail)]),
        );
        apply(&mut aggregator, admitted(update("a", &[])));
        assert_eq!(outcomes(&aggregator).len(), 2);
    }

    #[test]
    fn results_read_back_are_replaced_only_by_reports_naming_their_policy() {
        let mut first = Aggregator::default();
        apply(
            &mut first,
            update(
                "a",
                &[
                    ("p", "r", PolicyResult::Fail),
                    ("q", "r", PolicyResult::Fail),
                ],
            ),
        );
        let content = &render(&first, &default_ns(), usize::MAX)[0];
        let mut second = Aggregator::default();
        second.load(&default_ns(), content);
        apply(&mut second, update("a", &[("q", "r", PolicyResult::Pass)]));
        assert_eq!(
            outcomes(&second),
            [
                outcome(RESULT_SOURCE_KYVERNO, "p", "r", PolicyResult::Fail),
                outcome(RESULT_SOURCE_KYVERNO, "q", "r", PolicyResult::Pass),
            ]
        );
    }

    #[test]
    fn results_without_source_are_kyvernos() {
        let mut aggregator = Aggregator::default();
        let mut update = update("a", &[("p", "r", PolicyResult::Fail)]);
        update.results[0].source = Some(RESULT_SOURCE_KYVERNO.into());
        apply(&mut aggregator, update);
        apply(
            &mut aggregator,
            self::update("b", &[("p", "r", PolicyResult::Fail)]),
        );
        aggregator.remove_policy(&PolicyRef::new(RESULT_SOURCE_KYVERNO, "p"));
        assert_eq!(aggregator.scopes().count(), 0);
    }

    #[test]
    fn listings_prune_only_entries_older_than_them() {
        let mut aggregator = Aggregator::default();
        apply(
            &mut aggregator,
            update("old", &[("p", "r", PolicyResult::Fail)]),
        );
        let listed_at = aggregator.tick() + 1;
        apply(
            &mut aggregator,
            update("new", &[("p", "r", PolicyResult::Fail)]),
        );
        let changed = aggregator.retain_resources("v1", "Pod", &BTreeSet::new(), listed_at);
        assert_eq!(changed, BTreeSet::from([default_ns()]));
        assert_eq!(summary(&aggregator, &default_ns()), (0, 1));
        let changed = aggregator.retain_policies(CLUSTER_POLICIES, &BTreeSet::new(), listed_at);
        assert!(changed.is_empty(), "the newer entry is kept");
        aggregator.retain_policies(CLUSTER_POLICIES, &BTreeSet::new(), aggregator.tick() + 1);
        assert_eq!(aggregator.scopes().count(), 0);
    }

    #[test]
    fn stored_reports_load_back() {
        let mut first = Aggregator::default();
        apply(&mut first, update("a", &[("p", "r", PolicyResult::Fail)]));
        apply(&mut first, update("b", &[("p", "r", PolicyResult::Pass)]));
        let content = &render(&first, &default_ns(), usize::MAX)[0];
        let mut second = Aggregator::default();
        second.load(&default_ns(), content);
        assert_eq!(
            render(&second, &default_ns(), usize::MAX),
            render(&first, &default_ns(), usize::MAX)
        );
        apply(&mut second, update("a", &[("p", "r", PolicyResult::Pass)]));
        assert_eq!(summary(&second, &default_ns()), (2, 0));
        assert_eq!(
            second.kinds(),
            BTreeSet::from([("v1".to_owned(), "Pod".to_owned())])
        );
    }

    #[test]
    fn large_scopes_are_sharded_by_resource() {
        let mut aggregator = Aggregator::default();
        for index in 0..10 {
            apply(
                &mut aggregator,
                update(
                    &format!("uid-{index}"),
                    &[
                        ("p", "r1", PolicyResult::Fail),
                        ("p", "r2", PolicyResult::Pass),
                    ],
                ),
            );
        }
        let one_resource = render(&aggregator, &default_ns(), usize::MAX)[0]
            .results
            .iter()
            .take(2)
            .map(|result| serde_json::to_vec(result).unwrap().len() + 1)
            .sum::<usize>();
        let shards = render(&aggregator, &default_ns(), one_resource * 3);
        assert_eq!(shards.len(), 4);
        let total: i64 = shards
            .iter()
            .map(|shard| shard.summary.unwrap().fail + shard.summary.unwrap().pass)
            .sum();
        assert_eq!(total, 20);
        for shard in &shards {
            let summary = shard.summary.unwrap();
            assert_eq!(
                summary.fail, summary.pass,
                "a resource's results stay together"
            );
        }
    }

    #[test]
    fn fingerprints_change_with_the_shard_content_only() {
        let mut aggregator = Aggregator::default();
        for index in 0..4 {
            apply(
                &mut aggregator,
                update(&format!("uid-{index}"), &[("p", "r", PolicyResult::Pass)]),
            );
        }
        let one_resource =
            json_len(&render(&aggregator, &default_ns(), usize::MAX)[0].results[0]) + 1;
        let before = aggregator.shards(&default_ns(), one_resource * 2);
        assert_eq!(before.len(), 2);
        // The same results again: nothing to write.
        apply(
            &mut aggregator,
            update("uid-3", &[("p", "r", PolicyResult::Pass)]),
        );
        assert_eq!(aggregator.shards(&default_ns(), one_resource * 2), before);
        // A result of the second shard changes: only its fingerprint does.
        apply(
            &mut aggregator,
            update("uid-3", &[("p", "r", PolicyResult::Fail)]),
        );
        let after = aggregator.shards(&default_ns(), one_resource * 2);
        assert_eq!(after[0], before[0]);
        assert_ne!(after[1].fingerprint, before[1].fingerprint);
    }
}
