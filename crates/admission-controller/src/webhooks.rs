//! The Validating/MutatingWebhookConfigurations that send Kyverno the requests its policies can
//! match, computed from the policy cache, the `kyverno` ConfigMap and API discovery.
//!
//! As upstream: `kyverno-resource-validating-webhook-cfg` with `validate.kyverno.svc-fail` and
//! `validate.kyverno.svc-ignore`, `kyverno-resource-mutating-webhook-cfg` with
//! `mutate.kyverno.svc-fail` and `mutate.kyverno.svc-ignore`; a webhook exists only while some
//! policy needs it, lists only the resources and operations the policies' rules match, takes the
//! longest timeout its policies ask for, and selects namespaces and objects as the ConfigMap says.
//!
//! The CEL policy kinds get webhooks of their own in the same configurations, with the resource
//! rules of their `matchConstraints` (and of their pod controller variants):
//! `vpol.validate.kyverno.svc-{fail,ignore}` (ValidatingPolicies), `ivpol.validate.kyverno.svc-…`
//! (ImageValidatingPolicies), `gpol.validate.kyverno.svc-ignore` (GeneratingPolicies, which
//! have no failure policy: generation never blocks a request) and `mpol.mutate.kyverno.svc-…`
//! (MutatingPolicies).
//!
//! Kyverno's own resources are validated through three configurations that always exist:
//! `kyverno-policy-validating-webhook-cfg` (`validate-policy.kyverno.svc`, `/policyvalidate`),
//! `kyverno-policy-mutating-webhook-cfg` (`mutate-policy.kyverno.svc`, `/policymutate`) and
//! `kyverno-exception-validating-webhook-cfg` (`validate-policy-exception.kyverno.svc`,
//! `/exceptionvalidate`), with failure policy `Ignore` as upstream.
//!
//! The admission controller's `--webhookTimeout` and `--forceFailurePolicyIgnore` reach the
//! configurations through the policy cache's [`WebhookDefaults`]: the timeout of policies that set
//! none and of the three configurations above, and `Ignore` for every policy.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::FailurePolicy;
use kyverno_api::kyverno::v1::rule::Rule;
use kyverno_policy_core::wildcard;
use kyverno_runtime::cel_policies::CachedCelPolicy;

use crate::cel_admission::CelWebhook;
use kyverno_runtime::config::KyvernoConfig;
use kyverno_runtime::policy_cache::{
    CachedPolicy, DEFAULT_WEBHOOK_TIMEOUT_SECONDS, OperationSet, Snapshot, WebhookDefaults,
    rule_mutates_resource, rule_operations,
};

/// Name of the validating webhook configuration.
pub const VALIDATING_CONFIGURATION: &str = "kyverno-resource-validating-webhook-cfg";
/// Name of the mutating webhook configuration.
pub const MUTATING_CONFIGURATION: &str = "kyverno-resource-mutating-webhook-cfg";
/// Name of the validating webhook configuration of Kyverno's policies.
pub const POLICY_VALIDATING_CONFIGURATION: &str = "kyverno-policy-validating-webhook-cfg";
/// Name of the mutating webhook configuration of Kyverno's policies.
pub const POLICY_MUTATING_CONFIGURATION: &str = "kyverno-policy-mutating-webhook-cfg";
/// Name of the validating webhook configuration of PolicyExceptions.
pub const EXCEPTION_VALIDATING_CONFIGURATION: &str = "kyverno-exception-validating-webhook-cfg";

/// Every operation, in the order the API writes them.
const ALL_OPERATIONS: [AdmissionOperation; 4] = [
    AdmissionOperation::Create,
    AdmissionOperation::Update,
    AdmissionOperation::Delete,
    AdmissionOperation::Connect,
];

/// A resource the API server serves, as discovery reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedResource {
    /// API group (empty for the core group).
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub plural: String,
    /// Subresource names (`status`, `exec`, ...).
    pub subresources: Vec<String>,
    /// Whether `version` is its group's preferred version.
    pub preferred: bool,
}

/// Where the API server reaches the webhook server.
#[derive(Clone, Debug)]
pub struct ServiceTarget {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// Port of the Service.
    pub port: i32,
    /// The CA that signed the serving certificate, PEM.
    pub ca_bundle: String,
}

/// A group, version and the resources of one webhook rule.
type RuleKey = (String, String, Vec<&'static str>);

/// The webhook rules for the rules of `policies` that `relevant` picks: their kinds resolved to
/// served resources, grouped by group, version and operations.
fn webhook_rules(
    policies: &[&CachedPolicy],
    resources: &[ServedResource],
    relevant: impl Fn(&Rule) -> bool,
    default_operations: OperationSet,
) -> Vec<RuleWithOperations> {
    let mut grouped: BTreeMap<RuleKey, BTreeSet<String>> = BTreeMap::new();
    for cached in policies {
        for rule in cached.policy.rules.iter().filter(|rule| relevant(rule)) {
            let operations = rule_operations(&rule.match_resources).unwrap_or(default_operations);
            let operations: Vec<&'static str> = ALL_OPERATIONS
                .into_iter()
                .filter(|operation| {
                    operations.contains(*operation) && default_operations.contains(*operation)
                })
                .map(AdmissionOperation::as_str)
                .collect();
            if operations.is_empty() {
                continue;
            }
            for selector in rule_kind_selectors(rule) {
                for (group, version, resource) in resolve(&selector, resources) {
                    grouped
                        .entry((group, version, operations.clone()))
                        .or_default()
                        .insert(resource);
                }
            }
        }
    }
    grouped
        .into_iter()
        .map(|((group, version, operations), names)| RuleWithOperations {
            api_groups: Some(vec![group]),
            api_versions: Some(vec![version]),
            operations: Some(operations.into_iter().map(str::to_owned).collect()),
            resources: Some(names.into_iter().collect()),
            scope: Some("*".to_owned()),
        })
        .collect()
}

/// The kind selectors of a rule's `match` block (`*` when it names none).
fn rule_kind_selectors(rule: &Rule) -> Vec<String> {
    let match_resources = &rule.match_resources;
    let mut selectors = Vec::new();
    for description in match_resources
        .any
        .iter()
        .chain(&match_resources.all)
        .filter_map(|filter| filter.resources.as_ref())
        .chain(match_resources.resources.as_ref())
    {
        if description.kinds.is_empty() {
            selectors.push("*".to_owned());
        }
        selectors.extend(description.kinds.iter().cloned());
    }
    if selectors.is_empty() {
        selectors.push("*".to_owned());
    }
    selectors
}

/// The (group, version, resource) triples a kind selector (`Kind`, `version/Kind`,
/// `group/version/Kind`, optionally `/subresource`, wildcards allowed) stands for: the preferred
/// version of each group unless a version is given; `*` stands for every resource.
fn resolve(selector: &str, resources: &[ServedResource]) -> Vec<(String, String, String)> {
    if selector == "*" {
        return vec![("*".to_owned(), "*".to_owned(), "*".to_owned())];
    }
    let parts: Vec<&str> = selector.split('/').collect();
    let kind_at = parts
        .iter()
        .position(|part| part.starts_with(|c: char| c.is_ascii_uppercase() || c == '*'))
        .unwrap_or(parts.len().saturating_sub(1));
    let (prefix, rest) = parts.split_at(kind_at);
    let Some((kind, subresource)) = rest.split_first() else {
        return Vec::new();
    };
    let subresource = subresource.first().copied();
    let (group, version) = match prefix {
        [] => (None, None),
        [version] => (Some(""), Some(*version)),
        [group, version, ..] => (Some(*group), Some(*version)),
    };
    let mut found = Vec::new();
    for served in resources {
        let version_ok = match version {
            Some(version) => wildcard::matches(version, &served.version),
            None => served.preferred,
        };
        if !version_ok
            || !group.is_none_or(|group| wildcard::matches(group, &served.group))
            || !wildcard::matches(kind, &served.kind)
        {
            continue;
        }
        let resource = match subresource {
            None => served.plural.clone(),
            Some(sub) => {
                let Some(matched) = served
                    .subresources
                    .iter()
                    .find(|name| wildcard::matches(sub, name))
                else {
                    continue;
                };
                if wildcard::has_wildcard(sub) {
                    format!("{}/{sub}", served.plural)
                } else {
                    format!("{}/{matched}", served.plural)
                }
            }
        };
        found.push((served.group.clone(), served.version.clone(), resource));
    }
    found
}

/// One webhook's shared settings.
struct Hook {
    name: String,
    path: &'static str,
    failure_policy: FailurePolicy,
    timeout_seconds: i32,
    rules: Vec<RuleWithOperations>,
}

fn failure_suffix(failure_policy: FailurePolicy) -> &'static str {
    match failure_policy {
        FailurePolicy::Fail => "fail",
        FailurePolicy::Ignore => "ignore",
    }
}

fn failure_name(failure_policy: FailurePolicy) -> String {
    match failure_policy {
        FailurePolicy::Fail => "Fail".to_owned(),
        FailurePolicy::Ignore => "Ignore".to_owned(),
    }
}

/// The hooks for one kind of webhook (`validate` or `mutate`): one per failure policy that some
/// policy uses.
fn hooks(
    snapshot: &Snapshot,
    resources: &[ServedResource],
    prefix: &str,
    paths: [&'static str; 2],
    picks_policy: impl Fn(&CachedPolicy) -> bool,
    relevant: impl Fn(&Rule) -> bool + Copy,
    default_operations: OperationSet,
) -> Vec<Hook> {
    [FailurePolicy::Fail, FailurePolicy::Ignore]
        .into_iter()
        .zip(paths)
        .filter_map(|(failure_policy, path)| {
            let policies: Vec<&CachedPolicy> = snapshot
                .policies
                .iter()
                .map(AsRef::as_ref)
                .filter(|cached| {
                    cached.admission
                        && cached.failure_policy == failure_policy
                        && picks_policy(cached)
                })
                .collect();
            let rules = webhook_rules(&policies, resources, relevant, default_operations);
            let timeouts = policies.iter().map(|cached| cached.timeout_seconds);
            hook(prefix, path, failure_policy, timeouts, rules)
        })
        .collect()
}

/// The hook `prefix` of `failure_policy` served on `path`, with the longest of the policies'
/// `timeouts` (each clamped to the API server's 1 to 30 s); `None` when it has no rules.
fn hook(
    prefix: &str,
    path: &'static str,
    failure_policy: FailurePolicy,
    timeouts: impl Iterator<Item = i32>,
    rules: Vec<RuleWithOperations>,
) -> Option<Hook> {
    if rules.is_empty() {
        return None;
    }
    let timeout_seconds = timeouts
        .map(|timeout| timeout.clamp(1, 30))
        .max()
        .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT_SECONDS);
    Some(Hook {
        name: format!("{prefix}.kyverno.svc-{}", failure_suffix(failure_policy)),
        path,
        failure_policy,
        timeout_seconds,
        rules,
    })
}

/// The hooks of one CEL webhook (`vpol.validate`, ...): one per failure policy that some
/// policy `picks_policy` picks uses, with the resource rules of their constraints.
fn cel_hooks(
    snapshot: &Snapshot,
    prefix: &str,
    paths: [&'static str; 2],
    picks_policy: impl Fn(&CachedCelPolicy) -> bool,
) -> Vec<Hook> {
    [FailurePolicy::Fail, FailurePolicy::Ignore]
        .into_iter()
        .zip(paths)
        .filter_map(|(failure_policy, path)| {
            let policies: Vec<&CachedCelPolicy> = snapshot
                .cel
                .iter()
                .map(AsRef::as_ref)
                .filter(|cached| cached.failure_policy == failure_policy && picks_policy(cached))
                .collect();
            let mut rules: Vec<RuleWithOperations> = Vec::new();
            let resource_rules = policies
                .iter()
                .flat_map(|cached| &cached.match_constraints)
                .flat_map(|constraints| constraints.resource_rules.iter().flatten());
            for rule in resource_rules {
                let rule = RuleWithOperations {
                    api_groups: rule.api_groups.clone(),
                    api_versions: rule.api_versions.clone(),
                    operations: rule.operations.clone(),
                    resources: rule.resources.clone(),
                    scope: rule.scope.clone(),
                };
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
            let timeouts = policies.iter().map(|cached| cached.timeout_seconds);
            hook(prefix, path, failure_policy, timeouts, rules)
        })
        .collect()
}

/// Whether the validating webhook receives the requests `rule` matches: it validates, or it
/// generates or mutates existing resources (UpdateRequests are queued after validation).
fn rule_is_validated(rule: &Rule) -> bool {
    rule.validate.is_some()
        || !rule.verify_images.is_empty()
        || rule.generate.is_some()
        || rule
            .mutate
            .as_ref()
            .is_some_and(|mutation| !mutation.targets.is_empty())
}

fn client_config(target: &ServiceTarget, path: &str) -> WebhookClientConfig {
    WebhookClientConfig {
        ca_bundle: Some(ByteString(target.ca_bundle.as_bytes().to_vec())),
        service: Some(ServiceReference {
            name: target.name.clone(),
            namespace: target.namespace.clone(),
            path: Some(path.to_owned()),
            port: Some(target.port),
        }),
        url: None,
    }
}

fn metadata(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(BTreeMap::from([(
            "webhook.kyverno.io/managed-by".to_owned(),
            "kyverno".to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

/// The validating webhook configuration for the policies in `snapshot`.
pub fn validating_configuration(
    snapshot: &Snapshot,
    config: &KyvernoConfig,
    resources: &[ServedResource],
    target: &ServiceTarget,
) -> ValidatingWebhookConfiguration {
    let mut hooks = hooks(
        snapshot,
        resources,
        "validate",
        ["/validate/fail", "/validate/ignore"],
        |cached| cached.has_validate() || cached.has_background_work(),
        rule_is_validated,
        ALL_OPERATIONS.into_iter().collect(),
    );
    hooks.extend(cel_hooks(
        snapshot,
        "vpol.validate",
        ["/vpol/fail", "/vpol/ignore"],
        |cached| CelWebhook::Validate.serves(cached),
    ));
    hooks.extend(cel_hooks(
        snapshot,
        "ivpol.validate",
        ["/ivpol/validate/fail", "/ivpol/validate/ignore"],
        |cached| CelWebhook::ImageValidate.serves(cached),
    ));
    hooks.extend(cel_hooks(
        snapshot,
        "gpol.validate",
        ["/gpol/fail", "/gpol/ignore"],
        |cached| CelWebhook::Generate.serves(cached),
    ));
    ValidatingWebhookConfiguration {
        metadata: metadata(VALIDATING_CONFIGURATION),
        webhooks: Some(
            hooks
                .into_iter()
                .map(|hook| ValidatingWebhook {
                    name: hook.name,
                    client_config: client_config(target, hook.path),
                    rules: Some(hook.rules),
                    failure_policy: Some(failure_name(hook.failure_policy)),
                    match_policy: Some("Equivalent".to_owned()),
                    namespace_selector: config.webhooks.namespace_selector.clone(),
                    object_selector: config.webhooks.object_selector.clone(),
                    side_effects: "NoneOnDryRun".to_owned(),
                    timeout_seconds: Some(hook.timeout_seconds),
                    admission_review_versions: vec!["v1".to_owned()],
                    match_conditions: None,
                })
                .collect(),
        ),
    }
}

/// The mutating webhook configuration for the policies in `snapshot`.
pub fn mutating_configuration(
    snapshot: &Snapshot,
    config: &KyvernoConfig,
    resources: &[ServedResource],
    target: &ServiceTarget,
) -> MutatingWebhookConfiguration {
    let mut hooks = hooks(
        snapshot,
        resources,
        "mutate",
        ["/mutate/fail", "/mutate/ignore"],
        CachedPolicy::has_mutate,
        rule_mutates_resource,
        [AdmissionOperation::Create, AdmissionOperation::Update]
            .into_iter()
            .collect(),
    );
    hooks.extend(cel_hooks(
        snapshot,
        "mpol.mutate",
        ["/mpol/fail", "/mpol/ignore"],
        |cached| CelWebhook::Mutate.serves(cached),
    ));
    MutatingWebhookConfiguration {
        metadata: metadata(MUTATING_CONFIGURATION),
        webhooks: Some(
            hooks
                .into_iter()
                .map(|hook| MutatingWebhook {
                    name: hook.name,
                    client_config: client_config(target, hook.path),
                    rules: Some(hook.rules),
                    failure_policy: Some(failure_name(hook.failure_policy)),
                    match_policy: Some("Equivalent".to_owned()),
                    namespace_selector: config.webhooks.namespace_selector.clone(),
                    object_selector: config.webhooks.object_selector.clone(),
                    side_effects: "NoneOnDryRun".to_owned(),
                    timeout_seconds: Some(hook.timeout_seconds),
                    admission_review_versions: vec!["v1".to_owned()],
                    reinvocation_policy: Some("IfNeeded".to_owned()),
                    match_conditions: None,
                })
                .collect(),
        ),
    }
}

/// A rule on `resources` of `group` in `versions` for creations and updates.
fn write_rule(group: &str, versions: &[&str], resources: &[&str]) -> RuleWithOperations {
    let owned = |items: &[&str]| Some(items.iter().map(|item| (*item).to_owned()).collect());
    RuleWithOperations {
        api_groups: Some(vec![group.to_owned()]),
        api_versions: owned(versions),
        operations: owned(&["CREATE", "UPDATE"]),
        resources: owned(resources),
        scope: Some("*".to_owned()),
    }
}

/// The rules of the policy webhooks: ClusterPolicies and Policies, and the CEL policy kinds.
fn policy_rules() -> Vec<RuleWithOperations> {
    vec![
        write_rule(
            "kyverno.io",
            &["v1", "v2beta1"],
            &["clusterpolicies", "policies"],
        ),
        write_rule(
            "policies.kyverno.io",
            &["v1alpha1", "v1beta1", "v1"],
            &[
                "validatingpolicies",
                "namespacedvalidatingpolicies",
                "mutatingpolicies",
                "namespacedmutatingpolicies",
                "imagevalidatingpolicies",
                "namespacedimagevalidatingpolicies",
                "generatingpolicies",
                "namespacedgeneratingpolicies",
                "deletingpolicies",
                "namespaceddeletingpolicies",
            ],
        ),
    ]
}

/// A validating webhook configuration with one `Ignore` webhook named `name` at `path`, with the
/// default timeout.
fn static_validating(
    configuration: &str,
    name: &str,
    path: &str,
    rules: Vec<RuleWithOperations>,
    target: &ServiceTarget,
    defaults: &WebhookDefaults,
) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: metadata(configuration),
        webhooks: Some(vec![ValidatingWebhook {
            name: name.to_owned(),
            client_config: client_config(target, path),
            rules: Some(rules),
            failure_policy: Some(failure_name(FailurePolicy::Ignore)),
            match_policy: Some("Equivalent".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(defaults.timeout_seconds),
            admission_review_versions: vec!["v1".to_owned()],
            namespace_selector: None,
            object_selector: None,
            match_conditions: None,
        }]),
    }
}

/// `kyverno-policy-validating-webhook-cfg`: the policies, validated on `/policyvalidate`.
pub fn policy_validating_configuration(
    target: &ServiceTarget,
    defaults: &WebhookDefaults,
) -> ValidatingWebhookConfiguration {
    static_validating(
        POLICY_VALIDATING_CONFIGURATION,
        "validate-policy.kyverno.svc",
        "/policyvalidate",
        policy_rules(),
        target,
        defaults,
    )
}

/// `kyverno-exception-validating-webhook-cfg`: PolicyExceptions (both groups), validated on
/// `/exceptionvalidate`.
pub fn exception_validating_configuration(
    target: &ServiceTarget,
    defaults: &WebhookDefaults,
) -> ValidatingWebhookConfiguration {
    static_validating(
        EXCEPTION_VALIDATING_CONFIGURATION,
        "validate-policy-exception.kyverno.svc",
        "/exceptionvalidate",
        vec![
            write_rule("kyverno.io", &["v2", "v2beta1"], &["policyexceptions"]),
            write_rule(
                "policies.kyverno.io",
                &["v1alpha1", "v1beta1", "v1"],
                &["policyexceptions"],
            ),
        ],
        target,
        defaults,
    )
}

/// `kyverno-policy-mutating-webhook-cfg`: the policies, on `/policymutate`.
pub fn policy_mutating_configuration(
    target: &ServiceTarget,
    defaults: &WebhookDefaults,
) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: metadata(POLICY_MUTATING_CONFIGURATION),
        webhooks: Some(vec![MutatingWebhook {
            name: "mutate-policy.kyverno.svc".to_owned(),
            client_config: client_config(target, "/policymutate"),
            rules: Some(policy_rules()),
            failure_policy: Some(failure_name(FailurePolicy::Ignore)),
            match_policy: Some("Equivalent".to_owned()),
            side_effects: "NoneOnDryRun".to_owned(),
            timeout_seconds: Some(defaults.timeout_seconds),
            admission_review_versions: vec!["v1".to_owned()],
            reinvocation_policy: Some("IfNeeded".to_owned()),
            namespace_selector: None,
            object_selector: None,
            match_conditions: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kyverno_runtime::cel_policies::{CelKind, CelSource};
    use kyverno_runtime::policy_cache::PolicyCache;
    use serde_json::json;

    use super::*;

    fn served(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        subresources: &[&str],
    ) -> ServedResource {
        ServedResource {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            subresources: subresources.iter().map(|s| (*s).into()).collect(),
            preferred: true,
        }
    }

    fn resources() -> Vec<ServedResource> {
        let mut old = served("apps", "v1beta1", "Deployment", "deployments", &[]);
        old.preferred = false;
        vec![
            served(
                "",
                "v1",
                "Pod",
                "pods",
                &["status", "exec", "ephemeralcontainers"],
            ),
            served("", "v1", "ConfigMap", "configmaps", &[]),
            served(
                "apps",
                "v1",
                "Deployment",
                "deployments",
                &["scale", "status"],
            ),
            old,
        ]
    }

    fn target() -> ServiceTarget {
        ServiceTarget {
            namespace: "kyverno".into(),
            name: "kyverno-svc".into(),
            port: 443,
            ca_bundle: "CA".into(),
        }
    }

    #[test]
    fn resolves_kind_selectors() {
        let r = resources();
        assert_eq!(
            resolve("Pod", &r),
            [("".into(), "v1".into(), "pods".into())]
        );
        assert_eq!(
            resolve("apps/v1beta1/Deployment", &r),
            [("apps".into(), "v1beta1".into(), "deployments".into())]
        );
        assert_eq!(
            resolve("Pod/exec", &r),
            [("".into(), "v1".into(), "pods/exec".into())]
        );
        assert_eq!(
            resolve("Deployment/*", &r),
            [("apps".into(), "v1".into(), "deployments/*".into())]
        );
        assert_eq!(
            resolve("Config*", &r),
            [("".into(), "v1".into(), "configmaps".into())]
        );
        assert!(resolve("Nothing", &r).is_empty());
    }

    #[test]
    fn configurations_follow_the_policies() {
        let cache = PolicyCache::default();
        let policy = |name: &str, failure: &str, rule: serde_json::Value| {
            serde_json::from_value(json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": name}, "spec": {"failurePolicy": failure, "webhookTimeoutSeconds": 15, "rules": [rule]}}))
            .unwrap()
        };
        cache.apply_cluster_policy(policy(
            "labels",
            "Fail",
            json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"], "operations": ["CREATE"]}}]},
                "validate": {"pattern": {"metadata": {"labels": {"app": "?*"}}}}}),
        ));
        cache.apply_cluster_policy(policy(
            "add",
            "Ignore",
            json!({"name": "m", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"x": "y"}}}}}),
        ));
        let config = KyvernoConfig::with_defaults("kyverno");
        let validating =
            validating_configuration(&cache.snapshot(), &config, &resources(), &target());
        let hooks = validating.webhooks.unwrap();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].name, "validate.kyverno.svc-fail");
        assert_eq!(hooks[0].failure_policy.as_deref(), Some("Fail"));
        assert_eq!(hooks[0].timeout_seconds, Some(15));
        assert_eq!(
            hooks[0]
                .client_config
                .service
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/validate/fail")
        );
        assert_eq!(hooks[0].client_config.ca_bundle.as_ref().unwrap().0, b"CA");
        let rules = hooks[0].rules.as_ref().unwrap();
        // The Pod rule and its autogen rules (Deployment, ...: only the served ones).
        assert_eq!(
            serde_json::to_value(rules).unwrap(),
            json!([
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"], "scope": "*"},
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"], "scope": "*"},
            ])
        );
        assert_eq!(
            hooks[0].namespace_selector,
            config.webhooks.namespace_selector
        );
        let mutating = mutating_configuration(&cache.snapshot(), &config, &resources(), &target());
        let hooks = mutating.webhooks.unwrap();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].name, "mutate.kyverno.svc-ignore");
        assert_eq!(
            serde_json::to_value(hooks[0].rules.as_ref().unwrap()).unwrap(),
            json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"], "scope": "*"}])
        );
        cache.delete_cluster_policy("labels");
        let validating =
            validating_configuration(&cache.snapshot(), &config, &resources(), &target());
        assert_eq!(validating.webhooks, Some(Vec::new()));
        // A policy with `admission: false` gets no webhook.
        let mut background_only: kyverno_api::kyverno::v1::policy::ClusterPolicy = policy(
            "labels",
            "Fail",
            json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"pattern": {"metadata": {"labels": {"app": "?*"}}}}}),
        );
        background_only.spec.0.admission = Some(false);
        cache.apply_cluster_policy(background_only);
        let validating =
            validating_configuration(&cache.snapshot(), &config, &resources(), &target());
        assert_eq!(validating.webhooks, Some(Vec::new()));
    }

    #[test]
    fn webhook_defaults_reach_every_configuration() {
        let defaults = WebhookDefaults {
            timeout_seconds: 25,
            force_failure_policy_ignore: true,
        };
        let cache = PolicyCache::with_webhook_defaults(defaults);
        cache.apply_cluster_policy(
            serde_json::from_value(
                json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": "labels"}, "spec": {"failurePolicy": "Fail", "rules": [{
                    "name": "r", "match": {"any": [{"resources": {"kinds": ["ConfigMap"]}}]},
                    "validate": {"pattern": {"metadata": {"labels": {"app": "?*"}}}}}]}}),
            )
            .unwrap(),
        );
        cache.apply_cel_policy(
            CelSource::decode(
                CelKind::ValidatingPolicy,
                json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
                    "metadata": {"name": "p"}, "spec": {"failurePolicy": "Fail",
                    "matchConstraints": {"resourceRules": [{"apiGroups": [""],
                        "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]},
                    "validations": [{"expression": "true"}]}}),
            )
            .unwrap(),
        );
        let config = KyvernoConfig::with_defaults("kyverno");
        let validating =
            validating_configuration(&cache.snapshot(), &config, &resources(), &target());
        let hooks = validating.webhooks.unwrap();
        let summary: Vec<(&str, Option<&str>, Option<i32>)> = hooks
            .iter()
            .map(|hook| {
                (
                    hook.name.as_str(),
                    hook.failure_policy.as_deref(),
                    hook.timeout_seconds,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("validate.kyverno.svc-ignore", Some("Ignore"), Some(25)),
                ("vpol.validate.kyverno.svc-ignore", Some("Ignore"), Some(25)),
            ]
        );
        let policies = policy_validating_configuration(&target(), &defaults);
        let exceptions = exception_validating_configuration(&target(), &defaults);
        for hook in policies
            .webhooks
            .unwrap()
            .iter()
            .chain(&exceptions.webhooks.unwrap())
        {
            assert_eq!(hook.timeout_seconds, Some(25), "{}", hook.name);
            assert_eq!(
                hook.failure_policy.as_deref(),
                Some("Ignore"),
                "{}",
                hook.name
            );
        }
        let mutate_policies = policy_mutating_configuration(&target(), &defaults);
        assert_eq!(
            mutate_policies.webhooks.unwrap()[0].timeout_seconds,
            Some(25)
        );
    }

    #[test]
    fn cel_policies_get_webhooks_of_their_own() {
        let cache = PolicyCache::default();
        let cel = |kind: CelKind, failure: &str, spec: serde_json::Value| {
            let mut spec = spec;
            spec["failurePolicy"] = json!(failure);
            spec["matchConstraints"] = json!({"resourceRules": [{"apiGroups": [""],
                "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]});
            CelSource::decode(
                kind,
                json!({"apiVersion": "policies.kyverno.io/v1", "kind": kind.name(),
                    "metadata": {"name": "p"}, "spec": spec}),
            )
            .unwrap()
        };
        cache.apply_cel_policy(cel(
            CelKind::ValidatingPolicy,
            "Fail",
            json!({"validations": [{"expression": "true"}]}),
        ));
        cache.apply_cel_policy(cel(
            CelKind::MutatingPolicy,
            "Ignore",
            json!({"mutations": [{"patchType": "ApplyConfiguration",
                "applyConfiguration": {"expression": "Object{}"}}]}),
        ));
        let config = KyvernoConfig::with_defaults("kyverno");
        let snapshot = cache.snapshot();
        let validating = validating_configuration(&snapshot, &config, &resources(), &target());
        let hooks = validating.webhooks.unwrap();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].name, "vpol.validate.kyverno.svc-fail");
        assert_eq!(
            hooks[0]
                .client_config
                .service
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/vpol/fail")
        );
        assert_eq!(
            serde_json::to_value(hooks[0].rules.as_ref().unwrap()).unwrap(),
            json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}])
        );
        let mutating = mutating_configuration(&snapshot, &config, &resources(), &target());
        let hooks = mutating.webhooks.unwrap();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].name, "mpol.mutate.kyverno.svc-ignore");
        assert_eq!(hooks[0].failure_policy.as_deref(), Some("Ignore"));

        let defaults = WebhookDefaults::default();
        let policies = policy_validating_configuration(&target(), &defaults);
        assert_eq!(
            policies.metadata.name.as_deref(),
            Some("kyverno-policy-validating-webhook-cfg")
        );
        let hook = &policies.webhooks.unwrap()[0];
        assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"));
        assert_eq!(
            hook.client_config.service.as_ref().unwrap().path.as_deref(),
            Some("/policyvalidate")
        );
        let exceptions = exception_validating_configuration(&target(), &defaults);
        assert_eq!(
            exceptions.webhooks.unwrap()[0]
                .client_config
                .service
                .as_ref()
                .unwrap()
                .path
                .as_deref(),
            Some("/exceptionvalidate")
        );
        let mutate_policies = policy_mutating_configuration(&target(), &defaults);
        assert_eq!(
            mutate_policies.metadata.name.as_deref(),
            Some("kyverno-policy-mutating-webhook-cfg")
        );
    }
}
