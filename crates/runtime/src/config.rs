//! The `kyverno` ConfigMap: which requests Kyverno skips (resource filters, excluded users and
//! groups) and how its webhooks select namespaces and objects, with upstream's defaults.
//!
//! Keys read, as upstream names them: `resourceFilters` (`[Kind,Namespace,Name]` entries, `Kind`
//! may be `Kind/subresource` or `group/version/Kind`, every part a wildcard), `excludeGroups`,
//! `excludeUsernames`, `excludeRoles`, `excludeClusterRoles` (comma-separated wildcards; an entry
//! starting with `!` includes instead of excluding, and inclusions win), `webhooks` (a JSON list
//! whose first `{namespaceSelector, objectSelector}` goes into the webhook configurations) and
//! `generateSuccessEvents`. A key that is absent keeps its default, so a ConfigMap that only sets
//! `excludeUsernames` keeps the default resource filters.
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use kyverno_policy_core::request::GroupVersionKind;
use kyverno_policy_core::wildcard;
use serde::Deserialize;
use tokio::sync::watch;

/// The resource filters of upstream's Helm chart, less the entries naming the chart's own
/// objects (those depend on the release name; [`KyvernoConfig::with_defaults`] adds the ones for
/// Kyverno's namespace).
const DEFAULT_RESOURCE_FILTERS: &str = "[Event,*,*][*/*,kube-system,*][*/*,kube-public,*]\
[*/*,kube-node-lease,*][Node,*,*][Node/*,*,*][APIService,*,*][APIService/*,*,*]\
[TokenReview,*,*][SubjectAccessReview,*,*][SelfSubjectAccessReview,*,*][Binding,*,*]\
[Pod/binding,*,*][ReplicaSet,*,*][ReplicaSet/*,*,*][EphemeralReport,*,*]\
[ClusterEphemeralReport,*,*]";

/// Groups excluded by default: the kubelets.
const DEFAULT_EXCLUDED_GROUPS: &str = "system:nodes";

/// One `[Kind,Namespace,Name]` entry of `resourceFilters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceFilter {
    /// `Kind`, `Kind/subresource` or `group/version/Kind` (wildcards allowed).
    pub kind: String,
    /// Namespace wildcard; empty when the entry has only a kind.
    pub namespace: String,
    /// Name wildcard; empty when the entry has no name.
    pub name: String,
}

impl ResourceFilter {
    fn matches(
        &self,
        gvk: &GroupVersionKind,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        self.matches_kind(gvk, subresource)
            && wildcard::matches(&self.namespace, namespace)
            && wildcard::matches(&self.name, name)
    }

    fn matches_kind(&self, gvk: &GroupVersionKind, subresource: &str) -> bool {
        let parts: Vec<&str> = self.kind.split('/').collect();
        match parts.as_slice() {
            [kind] => subresource.is_empty() && wildcard::matches(kind, &gvk.kind),
            [kind, sub] => {
                wildcard::matches(kind, &gvk.kind) && wildcard::matches(sub, subresource)
            }
            [group, version, kind] => {
                subresource.is_empty()
                    && wildcard::matches(group, &gvk.group)
                    && wildcard::matches(version, &gvk.version)
                    && wildcard::matches(kind, &gvk.kind)
            }
            [group, version, kind, sub] => {
                wildcard::matches(group, &gvk.group)
                    && wildcard::matches(version, &gvk.version)
                    && wildcard::matches(kind, &gvk.kind)
                    && wildcard::matches(sub, subresource)
            }
            _ => false,
        }
    }
}

/// Parses a `resourceFilters` value: every bracketed `[Kind,Namespace,Name]` entry, in order.
pub fn parse_resource_filters(text: &str) -> Vec<ResourceFilter> {
    text.split('[')
        .filter_map(|chunk| chunk.split_once(']').map(|(entry, _)| entry))
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let mut parts = entry.split(',').map(str::trim);
            ResourceFilter {
                kind: parts.next().unwrap_or_default().to_owned(),
                namespace: parts.next().unwrap_or_default().to_owned(),
                name: parts.next().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

/// Wildcards that exclude requesters, and `!`-prefixed ones that include them again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectFilter {
    /// Entries that exclude.
    pub excluded: Vec<String>,
    /// Entries (written with a leading `!`) that include even when an exclusion matches.
    pub included: Vec<String>,
}

impl SubjectFilter {
    /// Parses a comma-separated list.
    pub fn parse(text: &str) -> Self {
        let mut filter = Self::default();
        for entry in text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            match entry.strip_prefix('!') {
                Some(included) => filter.included.push(included.to_owned()),
                None => filter.excluded.push(entry.to_owned()),
            }
        }
        filter
    }

    fn any_matches<'a>(patterns: &[String], mut values: impl Iterator<Item = &'a str>) -> bool {
        values.any(|value| {
            patterns
                .iter()
                .any(|pattern| wildcard::matches(pattern, value))
        })
    }
}

/// The requester of an admission request, as the exclusions see it.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    /// `userInfo.username`.
    pub username: &'a str,
    /// `userInfo.groups`.
    pub groups: &'a [String],
    /// Roles bound to the user (`namespace:name`).
    pub roles: &'a [String],
    /// Cluster roles bound to the user.
    pub cluster_roles: &'a [String],
}

/// The selectors that the `webhooks` key puts into every resource webhook.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSelectors {
    /// Namespaces whose requests are sent to Kyverno.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// Objects whose requests are sent to Kyverno.
    #[serde(default)]
    pub object_selector: Option<LabelSelector>,
}

/// The `kyverno` ConfigMap, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct KyvernoConfig {
    /// Requests on these resources are admitted without evaluation.
    pub resource_filters: Vec<ResourceFilter>,
    /// Groups whose requests are admitted without evaluation.
    pub groups: SubjectFilter,
    /// Users whose requests are admitted without evaluation.
    pub usernames: SubjectFilter,
    /// Roles whose holders' requests are admitted without evaluation.
    pub roles: SubjectFilter,
    /// Cluster roles whose holders' requests are admitted without evaluation.
    pub cluster_roles: SubjectFilter,
    /// Selectors of the resource webhooks.
    pub webhooks: WebhookSelectors,
    /// Whether Events are also emitted for passing rules.
    pub generate_success_events: bool,
}

impl KyvernoConfig {
    /// Upstream's defaults for a Kyverno installed in `kyverno_namespace`: the Helm chart's
    /// resource filters (plus everything in Kyverno's namespace), the kubelets' group excluded,
    /// and webhooks that skip `kube-system` and Kyverno's namespace.
    pub fn with_defaults(kyverno_namespace: &str) -> Self {
        let mut resource_filters = parse_resource_filters(DEFAULT_RESOURCE_FILTERS);
        resource_filters.push(ResourceFilter {
            kind: "*/*".to_owned(),
            namespace: kyverno_namespace.to_owned(),
            name: "*".to_owned(),
        });
        Self {
            resource_filters,
            groups: SubjectFilter::parse(DEFAULT_EXCLUDED_GROUPS),
            usernames: SubjectFilter::default(),
            roles: SubjectFilter::default(),
            cluster_roles: SubjectFilter::default(),
            webhooks: WebhookSelectors {
                namespace_selector: Some(excluding_namespaces(&["kube-system", kyverno_namespace])),
                object_selector: None,
            },
            generate_success_events: false,
        }
    }

    /// The configuration of a ConfigMap's `data`, each absent key keeping its default. Values
    /// that cannot be parsed keep the default too and are reported in the returned warnings.
    pub fn from_data(
        kyverno_namespace: &str,
        data: &BTreeMap<String, String>,
    ) -> (Self, Vec<String>) {
        let mut config = Self::with_defaults(kyverno_namespace);
        let mut warnings = Vec::new();
        if let Some(filters) = data.get("resourceFilters") {
            config.resource_filters = parse_resource_filters(filters);
        }
        for (key, filter) in [
            ("excludeGroups", &mut config.groups),
            ("excludeUsernames", &mut config.usernames),
            ("excludeRoles", &mut config.roles),
            ("excludeClusterRoles", &mut config.cluster_roles),
        ] {
            if let Some(text) = data.get(key) {
                *filter = SubjectFilter::parse(text);
            }
        }
        if let Some(text) = data.get("webhooks") {
            match parse_webhooks(text) {
                Ok(selectors) => config.webhooks = selectors,
                Err(error) => warnings.push(format!("webhooks: {error}")),
            }
        }
        if let Some(text) = data.get("generateSuccessEvents") {
            match text.trim().parse() {
                Ok(value) => config.generate_success_events = value,
                Err(_) => {
                    warnings.push(format!("generateSuccessEvents: {text:?} is not a boolean"))
                }
            }
        }
        (config, warnings)
    }

    /// Whether `resourceFilters` lists the request's resource (upstream's `ToFilter`): a
    /// Namespace is also filtered by entries naming it as their namespace.
    pub fn is_filtered(
        &self,
        gvk: &GroupVersionKind,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> bool {
        self.resource_filters.iter().any(|filter| {
            filter.matches(gvk, subresource, namespace, name)
                || (gvk.kind == "Namespace"
                    && subresource.is_empty()
                    && (filter.kind == "Namespace" || filter.kind == "*" || filter.kind == "*/*")
                    && wildcard::matches(&filter.namespace, name))
        })
    }

    /// Whether the requester's requests are admitted without evaluation (upstream's
    /// `IsExcluded`): an inclusion (`!entry`) that matches wins over any exclusion.
    pub fn is_excluded(&self, requester: &Requester<'_>) -> bool {
        let username = std::iter::once(requester.username);
        let groups = || requester.groups.iter().map(String::as_str);
        let roles = || requester.roles.iter().map(String::as_str);
        let cluster_roles = || requester.cluster_roles.iter().map(String::as_str);
        let included = SubjectFilter::any_matches(&self.usernames.included, username.clone())
            || SubjectFilter::any_matches(&self.groups.included, groups())
            || SubjectFilter::any_matches(&self.roles.included, roles())
            || SubjectFilter::any_matches(&self.cluster_roles.included, cluster_roles());
        if included {
            return false;
        }
        SubjectFilter::any_matches(&self.usernames.excluded, username)
            || SubjectFilter::any_matches(&self.groups.excluded, groups())
            || SubjectFilter::any_matches(&self.roles.excluded, roles())
            || SubjectFilter::any_matches(&self.cluster_roles.excluded, cluster_roles())
    }
}

/// The configuration in force, shared by the webhook handlers and the controllers, replaced
/// whenever the ConfigMap changes.
#[derive(Debug)]
pub struct SharedConfig {
    kyverno_namespace: String,
    current: RwLock<Arc<KyvernoConfig>>,
    revision: watch::Sender<u64>,
}

impl SharedConfig {
    /// Upstream's defaults for a Kyverno installed in `kyverno_namespace`, until a ConfigMap is
    /// seen.
    pub fn new(kyverno_namespace: &str) -> Self {
        Self {
            kyverno_namespace: kyverno_namespace.to_owned(),
            current: RwLock::new(Arc::new(KyvernoConfig::with_defaults(kyverno_namespace))),
            revision: watch::Sender::new(0),
        }
    }

    /// The configuration in force.
    pub fn get(&self) -> Arc<KyvernoConfig> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// A receiver of the revision number, bumped on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Applies the ConfigMap's `data` (`None` when the ConfigMap is gone: the defaults apply).
    pub fn load(&self, data: Option<&BTreeMap<String, String>>) {
        let config = match data {
            Some(data) => {
                let (config, warnings) = KyvernoConfig::from_data(&self.kyverno_namespace, data);
                for warning in warnings {
                    tracing::warn!(%warning, "kyverno ConfigMap: value ignored");
                }
                config
            }
            None => KyvernoConfig::with_defaults(&self.kyverno_namespace),
        };
        let changed = {
            let mut current = match self.current.write() {
                Ok(current) => current,
                Err(poisoned) => poisoned.into_inner(),
            };
            let changed = **current != config;
            *current = Arc::new(config);
            changed
        };
        if changed {
            self.revision.send_modify(|revision| *revision += 1);
        }
    }
}

/// A namespace selector that leaves out the named namespaces.
fn excluding_namespaces(names: &[&str]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".to_owned(),
            operator: "NotIn".to_owned(),
            values: Some(names.iter().map(|name| (*name).to_owned()).collect()),
        }]),
        match_labels: None,
    }
}

/// The `webhooks` value: a JSON list (or, as older versions wrote it, one object) of selectors;
/// the first one counts.
fn parse_webhooks(text: &str) -> Result<WebhookSelectors, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<WebhookSelectors>),
        One(WebhookSelectors),
    }
    Ok(match serde_json::from_str(text)? {
        OneOrMany::Many(list) => list.into_iter().next().unwrap_or_default(),
        OneOrMany::One(selectors) => selectors,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn parses_resource_filters_as_upstream() {
        let filters =
            parse_resource_filters("[Event,*,*] [Node,*] [ReplicaSet][*/*,kube-system,*]junk");
        assert_eq!(filters.len(), 4);
        assert_eq!(
            filters[1],
            ResourceFilter {
                kind: "Node".into(),
                namespace: "*".into(),
                name: String::new()
            }
        );
        assert_eq!(filters[2].namespace, "");
        assert_eq!(filters[3].kind, "*/*");
    }

    #[test]
    fn default_filters_skip_system_namespaces_events_and_kyverno() {
        let config = KyvernoConfig::with_defaults("kyverno");
        let pod = gvk("", "v1", "Pod");
        assert!(config.is_filtered(&pod, "", "kube-system", "x"));
        assert!(config.is_filtered(&pod, "", "kyverno", "x"));
        assert!(config.is_filtered(&pod, "binding", "default", "x"));
        assert!(!config.is_filtered(&pod, "", "default", "x"));
        assert!(config.is_filtered(&gvk("", "v1", "Event"), "", "default", "e"));
        assert!(config.is_filtered(&gvk("apps", "v1", "ReplicaSet"), "", "default", "rs"));
        assert!(!config.is_filtered(&gvk("apps", "v1", "Deployment"), "", "default", "d"));
        // A Namespace is filtered by the entries naming it as a namespace.
        assert!(config.is_filtered(&gvk("", "v1", "Namespace"), "", "", "kube-system"));
        assert!(!config.is_filtered(&gvk("", "v1", "Namespace"), "", "", "team-a"));
    }

    #[test]
    fn group_version_kind_filters() {
        let (config, warnings) = KyvernoConfig::from_data(
            "kyverno",
            &data(&[("resourceFilters", "[apps/v1/Deploy*,*,*][Pod/exec,*,*]")]),
        );
        assert!(warnings.is_empty());
        assert!(config.is_filtered(&gvk("apps", "v1", "Deployment"), "", "ns", "d"));
        assert!(!config.is_filtered(&gvk("extensions", "v1beta1", "Deployment"), "", "ns", "d"));
        assert!(config.is_filtered(&gvk("", "v1", "Pod"), "exec", "ns", "p"));
        assert!(!config.is_filtered(&gvk("", "v1", "Pod"), "", "ns", "p"));
    }

    #[test]
    fn exclusions_and_inclusions() {
        let (config, _) = KyvernoConfig::from_data(
            "kyverno",
            &data(&[
                (
                    "excludeUsernames",
                    "system:serviceaccount:kube-system:*, !system:serviceaccount:kube-system:keep",
                ),
                ("excludeClusterRoles", "cluster-admin"),
            ]),
        );
        let none: Vec<String> = Vec::new();
        let nodes = vec!["system:nodes".to_owned()];
        let admins = vec!["cluster-admin".to_owned()];
        let requester = |username, groups, cluster_roles| Requester {
            username,
            groups,
            roles: &none,
            cluster_roles,
        };
        assert!(config.is_excluded(&requester(
            "system:serviceaccount:kube-system:gc",
            &none,
            &none
        )));
        assert!(!config.is_excluded(&requester(
            "system:serviceaccount:kube-system:keep",
            &none,
            &none
        )));
        assert!(
            config.is_excluded(&requester("kubelet", &nodes, &none)),
            "default group kept"
        );
        assert!(config.is_excluded(&requester("admin", &none, &admins)));
        assert!(!config.is_excluded(&requester("dev", &none, &none)));
    }

    #[test]
    fn webhooks_selectors_and_bad_values() {
        let (config, warnings) = KyvernoConfig::from_data(
            "kyverno",
            &data(&[
                (
                    "webhooks",
                    r#"[{"namespaceSelector":{"matchLabels":{"team":"a"}}}]"#,
                ),
                ("generateSuccessEvents", "yes"),
            ]),
        );
        let selector = config.webhooks.namespace_selector.unwrap();
        assert_eq!(selector.match_labels.unwrap()["team"], "a");
        assert_eq!(
            warnings,
            vec![r#"generateSuccessEvents: "yes" is not a boolean"#.to_owned()]
        );
        let (config, warnings) =
            KyvernoConfig::from_data("kyverno", &data(&[("webhooks", "{not json")]));
        assert_eq!(warnings.len(), 1);
        assert_eq!(
            config.webhooks,
            KyvernoConfig::with_defaults("kyverno").webhooks
        );
    }

    #[test]
    fn default_webhooks_exclude_kube_system_and_kyverno() {
        let config = KyvernoConfig::with_defaults("kyverno-ns");
        let expression = &config
            .webhooks
            .namespace_selector
            .unwrap()
            .match_expressions
            .unwrap()[0];
        assert_eq!(expression.operator, "NotIn");
        assert_eq!(
            expression.values.as_deref().unwrap(),
            ["kube-system", "kyverno-ns"]
        );
    }
}
