//! The policies that run in the background: ClusterPolicies and Policies with
//! `background: true` (the default), each with its resourceVersion, reduced to their validate
//! rules that need no admission-only data.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use kyverno_api::kyverno::v1::match_resources::MatchResources;
use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use kyverno_api::kyverno::v1::rule::Rule;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use kyverno_policy_core::engine::LoadedPolicy;
use kyverno_runtime::cel_policies::CachedCelPolicy;
use kyverno_runtime::policy_cache::{PolicyKey, rule_kind_names};

/// Variables only an admission request carries; rules reading them are skipped in the
/// background, as upstream does.
const ADMISSION_ONLY_VARIABLES: [&str; 5] = [
    "request.userInfo",
    "request.roles",
    "request.clusterRoles",
    "serviceAccountName",
    "serviceAccountNamespace",
];

/// A background policy ready to scan with.
#[derive(Debug)]
pub struct BackgroundPolicy {
    /// The policy, with only the rules that run in the background.
    pub policy: LoadedPolicy,
    /// Its resourceVersion.
    pub resource_version: String,
    /// The kind names its rules select; `None` when a rule may select any kind.
    pub kinds: Option<BTreeSet<String>>,
    /// Whether a rule selects or excludes by `namespaceSelector`: its results then depend on
    /// the labels of the resource's namespace.
    pub uses_namespace_labels: bool,
}

impl BackgroundPolicy {
    /// Whether the policy may apply to a `kind` resource in `namespace` (a namespaced Policy
    /// only to its own namespace).
    pub fn may_apply(&self, kind: &str, namespace: &str) -> bool {
        self.kinds.as_ref().is_none_or(|kinds| kinds.contains(kind))
            && self
                .policy
                .namespace
                .as_deref()
                .is_none_or(|own| own == namespace)
    }

    /// How PolicyExceptions name this policy: `name`, or `namespace/name` for a Policy.
    pub fn exception_name(&self) -> String {
        match &self.policy.namespace {
            Some(namespace) => format!("{namespace}/{}", self.policy.name),
            None => self.policy.name.clone(),
        }
    }
}

/// Loads a background policy: `None` when the policy does not run in the background (or has
/// no rule that can), or cannot be loaded (logged).
pub fn load(
    key: &PolicyKey,
    resource_version: &str,
    loaded: Result<LoadedPolicy, kyverno_policy_core::engine::PolicyLoadError>,
) -> Option<BackgroundPolicy> {
    let mut policy = match loaded {
        Ok(policy) => policy,
        Err(error) => {
            tracing::warn!(policy = %key, %error, "policy skipped: it cannot be loaded");
            return None;
        }
    };
    if policy.spec.background == Some(false) {
        return None;
    }
    policy.rules.retain(runs_in_background);
    if policy.rules.is_empty() {
        return None;
    }
    let mut kinds = Some(BTreeSet::new());
    for rule in &policy.rules {
        match (rule_kind_names(rule), kinds.as_mut()) {
            (Some(names), Some(all)) => all.extend(names),
            _ => kinds = None,
        }
    }
    let uses_namespace_labels = policy.rules.iter().any(selects_by_namespace_labels);
    Some(BackgroundPolicy {
        policy,
        resource_version: resource_version.to_owned(),
        kinds,
        uses_namespace_labels,
    })
}

/// Whether a rule's match or exclude has a `namespaceSelector`.
fn selects_by_namespace_labels(rule: &Rule) -> bool {
    std::iter::once(&rule.match_resources)
        .chain(rule.exclude.as_ref())
        .any(|resources| {
            serde_json::to_string(resources)
                .unwrap_or_default()
                .contains("\"namespaceSelector\"")
        })
}

/// Whether a rule validates and needs nothing only an admission request has.
fn runs_in_background(rule: &Rule) -> bool {
    let user_filters = |resources: &MatchResources| {
        resources
            .any
            .iter()
            .chain(&resources.all)
            .map(|filter| &filter.user_info)
            .chain(std::iter::once(&resources.user_info))
            .any(|info| {
                !info.roles.is_empty()
                    || !info.cluster_roles.is_empty()
                    || !info.subjects.is_empty()
            })
    };
    if rule.validate.is_none()
        || user_filters(&rule.match_resources)
        || rule.exclude.as_ref().is_some_and(user_filters)
    {
        return false;
    }
    let text = serde_json::to_string(rule).unwrap_or_default();
    !ADMISSION_ONLY_VARIABLES
        .iter()
        .any(|variable| text.contains(variable))
}

/// The background policies by key.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: BTreeMap<PolicyKey, Arc<BackgroundPolicy>>,
}

impl PolicySet {
    /// Adds or replaces a ClusterPolicy.
    pub fn apply_cluster_policy(&mut self, policy: ClusterPolicy) {
        let key = PolicyKey {
            namespace: None,
            name: policy.metadata.name.clone().unwrap_or_default(),
        };
        let version = policy.metadata.resource_version.clone().unwrap_or_default();
        let loaded = load(&key, &version, LoadedPolicy::from_cluster_policy(policy));
        self.set(key, loaded);
    }

    /// Adds or replaces a Policy.
    pub fn apply_policy(&mut self, policy: Policy) {
        let key = PolicyKey {
            namespace: policy.metadata.namespace.clone(),
            name: policy.metadata.name.clone().unwrap_or_default(),
        };
        let version = policy.metadata.resource_version.clone().unwrap_or_default();
        let loaded = load(&key, &version, LoadedPolicy::from_policy(policy));
        self.set(key, loaded);
    }

    fn set(&mut self, key: PolicyKey, loaded: Option<BackgroundPolicy>) {
        match loaded {
            Some(policy) => self.policies.insert(key, Arc::new(policy)),
            None => self.policies.remove(&key),
        };
    }

    /// Removes a policy.
    pub fn remove(&mut self, key: &PolicyKey) {
        self.policies.remove(key);
    }

    /// Keeps only the policies `keep` accepts (after a watch listed them all).
    pub fn retain(&mut self, keep: impl Fn(&PolicyKey) -> bool) {
        self.policies.retain(|key, _| keep(key));
    }

    /// The policies, in key order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<BackgroundPolicy>> {
        self.policies.values()
    }

    /// The kind names the policies select; `None` when some policy may select any kind.
    pub fn kinds(&self) -> Option<BTreeSet<String>> {
        let mut kinds = BTreeSet::new();
        for policy in self.policies.values() {
            kinds.extend(policy.kinds.clone()?);
        }
        Some(kinds)
    }
}

/// A version of the PolicyExceptions of each policy, by the name exceptions give the policy
/// (see [`BackgroundPolicy::exception_name`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExceptionVersions(HashMap<String, u64>);

impl ExceptionVersions {
    /// The versions of the exceptions in `exceptions`.
    pub fn of(exceptions: &[PolicyException]) -> Self {
        let mut hashers: HashMap<&str, DefaultHasher> = HashMap::new();
        for exception in exceptions {
            for entry in &exception.spec.exceptions {
                let hasher = hashers.entry(entry.policy_name.as_str()).or_default();
                (
                    &exception.metadata.namespace,
                    &exception.metadata.name,
                    &exception.metadata.resource_version,
                )
                    .hash(hasher);
            }
        }
        Self(
            hashers
                .into_iter()
                .map(|(policy, hasher)| (policy.to_owned(), hasher.finish()))
                .collect(),
        )
    }

    /// The version of the exceptions naming `policy` (0 when there is none).
    pub fn of_policy(&self, policy: &BackgroundPolicy) -> u64 {
        self.0
            .get(&policy.exception_name())
            .copied()
            .unwrap_or_default()
    }
}

/// A fingerprint of what a resource's results depend on besides the resource: which policy
/// versions apply (ClusterPolicies and Policies, then CEL policies), their exceptions, and the
/// namespace labels when a policy selects by them or is a CEL policy (which sees
/// `namespaceObject`). A resource scanned with the same fingerprint at the same
/// resourceVersion needs no rescan.
pub fn fingerprint<'a>(
    policies: impl IntoIterator<Item = &'a BackgroundPolicy>,
    cel: impl IntoIterator<Item = &'a CachedCelPolicy>,
    exceptions: &ExceptionVersions,
    namespace_labels: &BTreeMap<String, String>,
) -> u64 {
    let mut hasher = DefaultHasher::new();
    let mut uses_namespace_labels = false;
    for policy in policies {
        (
            &policy.policy.namespace,
            &policy.policy.name,
            &policy.resource_version,
            exceptions.of_policy(policy),
        )
            .hash(&mut hasher);
        uses_namespace_labels |= policy.uses_namespace_labels;
    }
    for policy in cel {
        crate::cel::hash_version(policy, &mut hasher);
        uses_namespace_labels = true;
    }
    if uses_namespace_labels {
        namespace_labels.hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NO_CEL: [&CachedCelPolicy; 0] = [];

    fn cluster_policy(spec: serde_json::Value) -> ClusterPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "p", "resourceVersion": "7"}, "spec": spec}))
        .unwrap()
    }

    fn rule(name: &str, kinds: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
        let mut rule = serde_json::json!({"name": name,
            "match": {"any": [{"resources": {"kinds": kinds}}]},
            "validate": {"pattern": {"metadata": {"labels": {"tier": "?*"}}}}});
        if let (Some(rule), Some(extra)) = (rule.as_object_mut(), extra.as_object()) {
            rule.extend(extra.clone());
        }
        rule
    }

    #[test]
    fn background_false_policies_are_left_out() {
        let mut set = PolicySet::default();
        set.apply_cluster_policy(cluster_policy(serde_json::json!({"background": false,
            "rules": [rule("r", serde_json::json!(["Pod"]), serde_json::json!({}))]})));
        assert_eq!(set.all().count(), 0);
        set.apply_cluster_policy(cluster_policy(serde_json::json!({
            "rules": [rule("r", serde_json::json!(["Pod"]), serde_json::json!({}))]})));
        let policy = set.all().next().unwrap();
        assert_eq!(policy.resource_version, "7");
        assert!(policy.may_apply("Pod", "default"));
        assert!(!policy.may_apply("ConfigMap", "default"));
        // Autogen adds the pod controllers.
        assert!(set.kinds().unwrap().contains("Deployment"));
    }

    #[test]
    fn rules_needing_admission_data_are_skipped() {
        let mut set = PolicySet::default();
        set.apply_cluster_policy(cluster_policy(serde_json::json!({"rules": [
            rule("uses-user", serde_json::json!(["ConfigMap"]), serde_json::json!({
                "preconditions": {"all": [{"key": "{{request.userInfo.username}}", "operator": "Equals", "value": "x"}]}})),
            rule("plain", serde_json::json!(["Secret"]), serde_json::json!({})),
        ]})));
        let policy = set.all().next().unwrap();
        let names: Vec<&str> = policy
            .policy
            .rules
            .iter()
            .map(|rule| rule.name.as_str())
            .collect();
        assert_eq!(names, ["plain"]);
        assert_eq!(set.kinds().unwrap(), BTreeSet::from(["Secret".to_owned()]));
    }

    #[test]
    fn wildcard_kinds_select_any_kind_and_fingerprints_track_versions() {
        let mut set = PolicySet::default();
        set.apply_cluster_policy(cluster_policy(serde_json::json!({
            "rules": [rule("r", serde_json::json!(["*"]), serde_json::json!({}))]})));
        assert_eq!(set.kinds(), None);
        let fingerprint_of = |set: &PolicySet| {
            fingerprint(
                set.all().map(AsRef::as_ref),
                NO_CEL,
                &ExceptionVersions::default(),
                &BTreeMap::new(),
            )
        };
        let before = fingerprint_of(&set);
        let mut newer = cluster_policy(serde_json::json!({
            "rules": [rule("r", serde_json::json!(["*"]), serde_json::json!({}))]}));
        newer.metadata.resource_version = Some("8".into());
        set.apply_cluster_policy(newer);
        assert_ne!(before, fingerprint_of(&set));
        set.remove(&PolicyKey {
            namespace: None,
            name: "p".into(),
        });
        assert_eq!(set.all().count(), 0);
    }

    #[test]
    fn exceptions_and_selected_namespace_labels_change_the_fingerprint() {
        let mut set = PolicySet::default();
        set.apply_cluster_policy(cluster_policy(serde_json::json!({"rules": [{
            "name": "r",
            "match": {"any": [{"resources": {"kinds": ["ConfigMap"],
                "namespaceSelector": {"matchLabels": {"audited": "true"}}}}]},
            "validate": {"pattern": {"metadata": {"labels": {"tier": "?*"}}}}}]})));
        let policy = set.all().next().unwrap();
        assert!(policy.uses_namespace_labels);
        let exception = |version: &str| -> PolicyException {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
                "metadata": {"name": "e", "namespace": "ns", "resourceVersion": version},
                "spec": {"match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                    "exceptions": [{"policyName": "p", "ruleNames": ["r"]}]}}))
            .unwrap()
        };
        let labels = BTreeMap::from([("audited".to_owned(), "true".to_owned())]);
        let none = ExceptionVersions::default();
        let first = ExceptionVersions::of(&[exception("1")]);
        let second = ExceptionVersions::of(&[exception("2")]);
        assert_ne!(first.of_policy(policy), 0);
        let base = fingerprint([policy.as_ref()], NO_CEL, &none, &labels);
        assert_ne!(
            base,
            fingerprint([policy.as_ref()], NO_CEL, &first, &labels)
        );
        assert_ne!(
            fingerprint([policy.as_ref()], NO_CEL, &first, &labels),
            fingerprint([policy.as_ref()], NO_CEL, &second, &labels)
        );
        assert_ne!(
            base,
            fingerprint([policy.as_ref()], NO_CEL, &none, &BTreeMap::new())
        );

        // Without a namespaceSelector the labels do not matter.
        let mut plain = PolicySet::default();
        plain.apply_cluster_policy(cluster_policy(serde_json::json!({
            "rules": [rule("r", serde_json::json!(["ConfigMap"]), serde_json::json!({}))]})));
        let policy = plain.all().next().unwrap();
        assert!(!policy.uses_namespace_labels);
        assert_eq!(
            fingerprint([policy.as_ref()], NO_CEL, &none, &labels),
            fingerprint([policy.as_ref()], NO_CEL, &none, &BTreeMap::new())
        );
    }
}
