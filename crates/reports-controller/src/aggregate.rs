//! The aggregated state: for every resource, its latest results per policy rule, grouped by the
//! report they belong in (its namespace's PolicyReport, or the ClusterPolicyReport). Synchronous,
//! so that it is tested without a cluster.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::ObjectReference;
use kyverno_api::policy_report::v1alpha2::{PolicyReportContent, PolicyReportResult};
use kyverno_runtime::reports::{ReportUpdate, summarize};

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

/// The results of one resource.
#[derive(Debug)]
struct Entry {
    subject: ObjectReference,
    /// Results by policy and rule.
    results: BTreeMap<(String, String), PolicyReportResult>,
    /// When the entry last changed (see [`Aggregator::tick`]).
    changed: u64,
}

/// Every resource's results, by scope.
#[derive(Debug, Default)]
pub struct Aggregator {
    scopes: BTreeMap<Scope, BTreeMap<String, Entry>>,
    scope_of: HashMap<String, Scope>,
    tick: u64,
}

impl Aggregator {
    /// A logical clock: every change gets a later tick, so that a listing started at tick `t`
    /// only prunes entries that changed before `t`.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Applies an ephemeral report: the resource's results of the policies it names are
    /// replaced by its results. Returns the scope changed.
    pub fn apply(&mut self, update: ReportUpdate) -> Scope {
        self.tick += 1;
        let scope = update.subject.namespace.clone();
        let uid = update.subject.uid.clone().unwrap_or_default();
        if let Some(previous) = self.scope_of.get(&uid)
            && *previous != scope
        {
            let previous = previous.clone();
            self.remove_from(&previous, &uid);
        }
        let entries = self.scopes.entry(scope.clone()).or_default();
        let entry = entries.entry(uid.clone()).or_insert_with(|| Entry {
            subject: update.subject.clone(),
            results: BTreeMap::new(),
            changed: 0,
        });
        entry.subject = update.subject;
        entry.changed = self.tick;
        entry
            .results
            .retain(|(policy, _), _| !update.policies.contains(policy));
        for result in update.results {
            let rule = result.rule.clone().unwrap_or_default();
            entry.results.insert((result.policy.clone(), rule), result);
        }
        if entry.results.is_empty() {
            self.remove_from(&scope, &uid);
        } else {
            self.scope_of.insert(uid, scope.clone());
        }
        scope
    }

    /// Loads the results of a stored report of `scope` (after a restart). Loaded entries count
    /// as older than any listing.
    pub fn load(&mut self, scope: &Scope, content: &PolicyReportContent) {
        for result in &content.results {
            let Some(subject) = result.resources.first() else {
                continue;
            };
            let uid = subject.uid.clone().unwrap_or_default();
            let entry = self
                .scopes
                .entry(scope.clone())
                .or_default()
                .entry(uid.clone())
                .or_insert_with(|| Entry {
                    subject: subject.clone(),
                    results: BTreeMap::new(),
                    changed: 0,
                });
            let rule = result.rule.clone().unwrap_or_default();
            entry
                .results
                .insert((result.policy.clone(), rule), result.clone());
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

    /// Removes the results of a deleted policy (named as results name it). Returns the scopes
    /// changed.
    pub fn remove_policy(&mut self, policy: &str) -> BTreeSet<Scope> {
        self.retain_results(|result_policy, _| result_policy != policy)
    }

    /// Keeps the results of the policies that `is_live`, except in entries changed since tick
    /// `listed_at`. Returns the scopes changed.
    pub fn retain_policies(
        &mut self,
        is_live: impl Fn(&str) -> bool,
        listed_at: u64,
    ) -> BTreeSet<Scope> {
        self.retain_results(|policy, entry_changed| entry_changed >= listed_at || is_live(policy))
    }

    fn retain_results(&mut self, keep: impl Fn(&str, u64) -> bool) -> BTreeSet<Scope> {
        let mut changed = BTreeSet::new();
        let mut emptied = Vec::new();
        for (scope, entries) in &mut self.scopes {
            for (uid, entry) in entries.iter_mut() {
                let before = entry.results.len();
                let entry_changed = entry.changed;
                entry
                    .results
                    .retain(|(policy, _), _| keep(policy, entry_changed));
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

    /// The kinds (`apiVersion`, `kind`) of the resources with results.
    pub fn kinds(&self) -> BTreeSet<(String, String)> {
        self.scopes
            .values()
            .flat_map(BTreeMap::values)
            .filter_map(|entry| {
                Some((
                    entry.subject.api_version.clone()?,
                    entry.subject.kind.clone()?,
                ))
            })
            .collect()
    }

    /// The scopes with results.
    pub fn scopes(&self) -> impl Iterator<Item = &Scope> {
        self.scopes.keys()
    }

    /// The report contents of `scope`, in shards whose results take at most `max_bytes` of
    /// JSON each (one resource's results are never split; a resource whose results alone pass
    /// the limit gets a shard of its own). No shard when the scope has no results.
    pub fn render(&self, scope: &Scope, max_bytes: usize) -> Vec<PolicyReportContent> {
        let Some(entries) = self.scopes.get(scope) else {
            return Vec::new();
        };
        let mut shards: Vec<Vec<PolicyReportResult>> = Vec::new();
        let mut current: Vec<PolicyReportResult> = Vec::new();
        let mut current_bytes = 0;
        for entry in entries.values() {
            let bytes: usize = entry
                .results
                .values()
                .map(|result| serde_json::to_vec(result).map_or(0, |json| json.len() + 1))
                .sum();
            if !current.is_empty() && current_bytes + bytes > max_bytes {
                shards.push(std::mem::take(&mut current));
                current_bytes = 0;
            }
            current.extend(entry.results.values().cloned());
            current_bytes += bytes;
        }
        if !current.is_empty() {
            shards.push(current);
        }
        shards
            .into_iter()
            .map(|mut results| {
                results.sort_by(|a, b| {
                    (&a.policy, &a.rule, subject_uid(a)).cmp(&(&b.policy, &b.rule, subject_uid(b)))
                });
                PolicyReportContent {
                    summary: Some(summarize(&results)),
                    results,
                    ..PolicyReportContent::default()
                }
            })
            .collect()
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

    fn update(uid: &str, results: &[(&str, &str, PolicyResult)]) -> ReportUpdate {
        let subject = subject(Some("default"), uid);
        ReportUpdate {
            subject: subject.clone(),
            source: "background-scan".into(),
            policies: results
                .iter()
                .map(|(policy, ..)| (*policy).to_owned())
                .collect(),
            results: results
                .iter()
                .map(|(policy, rule, result)| PolicyReportResult {
                    policy: (*policy).into(),
                    rule: Some((*rule).into()),
                    result: Some(*result),
                    resources: vec![subject.clone()],
                    ..PolicyReportResult::default()
                })
                .collect(),
        }
    }

    fn summary(aggregator: &Aggregator, scope: &Scope) -> (i64, i64) {
        let shards = aggregator.render(scope, usize::MAX);
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
    fn exact_summary_and_replacement() {
        let mut aggregator = Aggregator::default();
        aggregator.apply(update(
            "good",
            &[("require-tier", "check", PolicyResult::Pass)],
        ));
        aggregator.apply(update(
            "bad",
            &[("require-tier", "check", PolicyResult::Fail)],
        ));
        assert_eq!(summary(&aggregator, &default_ns()), (1, 1));
        // A rescan replaces the resource's results: no duplicate.
        aggregator.apply(update(
            "bad",
            &[("require-tier", "check", PolicyResult::Fail)],
        ));
        assert_eq!(summary(&aggregator, &default_ns()), (1, 1));
        // The bad pod is fixed.
        aggregator.apply(update(
            "bad",
            &[("require-tier", "check", PolicyResult::Pass)],
        ));
        assert_eq!(summary(&aggregator, &default_ns()), (2, 0));
    }

    #[test]
    fn a_report_naming_a_policy_without_results_clears_them() {
        let mut aggregator = Aggregator::default();
        aggregator.apply(update(
            "a",
            &[
                ("p", "r", PolicyResult::Fail),
                ("q", "r", PolicyResult::Pass),
            ],
        ));
        let mut cleared = update("a", &[]);
        cleared.policies.insert("p".into());
        aggregator.apply(cleared);
        let shards = aggregator.render(&default_ns(), usize::MAX);
        assert_eq!(shards[0].results.len(), 1);
        assert_eq!(shards[0].results[0].policy, "q");
    }

    #[test]
    fn deleted_resources_and_policies_are_removed() {
        let mut aggregator = Aggregator::default();
        aggregator.apply(update("a", &[("p", "r", PolicyResult::Fail)]));
        aggregator.apply(update(
            "b",
            &[
                ("p", "r", PolicyResult::Pass),
                ("q", "r", PolicyResult::Pass),
            ],
        ));
        assert_eq!(aggregator.remove_resource("a"), Some(default_ns()));
        assert_eq!(summary(&aggregator, &default_ns()), (2, 0));
        assert_eq!(
            aggregator.remove_policy("p"),
            BTreeSet::from([default_ns()])
        );
        assert_eq!(summary(&aggregator, &default_ns()), (1, 0));
        aggregator.remove_policy("q");
        assert!(aggregator.render(&default_ns(), usize::MAX).is_empty());
        assert_eq!(aggregator.scopes().count(), 0);
    }

    #[test]
    fn listings_prune_only_entries_older_than_them() {
        let mut aggregator = Aggregator::default();
        aggregator.apply(update("old", &[("p", "r", PolicyResult::Fail)]));
        let listed_at = aggregator.tick() + 1;
        aggregator.apply(update("new", &[("p", "r", PolicyResult::Fail)]));
        let changed = aggregator.retain_resources("v1", "Pod", &BTreeSet::new(), listed_at);
        assert_eq!(changed, BTreeSet::from([default_ns()]));
        assert_eq!(summary(&aggregator, &default_ns()), (0, 1));
        let changed = aggregator.retain_policies(|_| false, listed_at);
        assert!(changed.is_empty(), "the newer entry is kept");
        aggregator.retain_policies(|_| false, aggregator.tick() + 1);
        assert_eq!(aggregator.scopes().count(), 0);
    }

    #[test]
    fn stored_reports_load_back() {
        let mut first = Aggregator::default();
        first.apply(update("a", &[("p", "r", PolicyResult::Fail)]));
        first.apply(update("b", &[("p", "r", PolicyResult::Pass)]));
        let content = &first.render(&default_ns(), usize::MAX)[0];
        let mut second = Aggregator::default();
        second.load(&default_ns(), content);
        assert_eq!(
            second.render(&default_ns(), usize::MAX),
            first.render(&default_ns(), usize::MAX)
        );
        second.apply(update("a", &[("p", "r", PolicyResult::Pass)]));
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
            aggregator.apply(update(
                &format!("uid-{index}"),
                &[
                    ("p", "r1", PolicyResult::Fail),
                    ("p", "r2", PolicyResult::Pass),
                ],
            ));
        }
        let one_resource = aggregator.render(&default_ns(), usize::MAX)[0]
            .results
            .iter()
            .take(2)
            .map(|result| serde_json::to_vec(result).unwrap().len() + 1)
            .sum::<usize>();
        let shards = aggregator.render(&default_ns(), one_resource * 3);
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
}
