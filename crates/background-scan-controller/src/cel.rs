//! The `policies.kyverno.io` kinds in background scans: ValidatingPolicies (in `Kubernetes`
//! mode) and ImageValidatingPolicies, and their Namespaced forms, with
//! `evaluation.background.enabled` (the default), as the shared policy cache compiled them
//! with the `policies.kyverno.io` PolicyExceptions naming them. Which resources their
//! `matchConstraints.resourceRules` name, and what they answer for one resource.
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::NamedRuleWithOperations;
use kyverno_policy_core::celpolicy::RequestInput;
use kyverno_policy_core::celpolicy::resources::GroupVersionResource;
use kyverno_policy_core::celpolicy::validating::{EvaluationMode, ValidatingInput};
use kyverno_policy_core::engine::ContextProvider;
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::RuleResponse;
use kyverno_runtime::cel_policies::{CachedCelPolicy, CompiledCel, image_validation_rules};
use kyverno_runtime::policy_cache::Snapshot;
use serde_json::Value;

/// The CEL policies of `snapshot` that background scans evaluate, in kind and key order: the
/// validating kinds with `evaluation.background.enabled`, ValidatingPolicies only in
/// `Kubernetes` mode (the others validate payloads, not resources).
pub fn background_policies(snapshot: &Snapshot) -> Vec<Arc<CachedCelPolicy>> {
    snapshot
        .cel
        .iter()
        .filter(|policy| {
            policy.background
                && match &policy.compiled {
                    CompiledCel::Validating(compiled) => {
                        *compiled.mode() == EvaluationMode::Kubernetes
                    }
                    CompiledCel::ImageValidating(_) => true,
                    CompiledCel::Mutating(_) | CompiledCel::Generating(_) => false,
                }
        })
        .cloned()
        .collect()
}

/// Feeds what a policy's results depend on into `hasher`: the policy's kind, key and
/// resourceVersion, and those of the PolicyExceptions naming it.
pub fn hash_version(policy: &CachedCelPolicy, hasher: &mut impl Hasher) {
    (policy.kind, &policy.key, &policy.resource_version).hash(hasher);
    for exception in &policy.exceptions {
        (
            &exception.metadata.namespace,
            &exception.metadata.name,
            &exception.metadata.resource_version,
        )
            .hash(hasher);
    }
}

/// Whether some resource rule of the policy (or of its pod controller variants) names the
/// resource `plural` of API group `group`: as `*` or by name, not as a subresource alone.
pub fn names_resource(policy: &CachedCelPolicy, group: &str, plural: &str) -> bool {
    let named = |values: &Option<Vec<String>>, wanted: &str| {
        values
            .iter()
            .flatten()
            .any(|value| value == "*" || value == wanted)
    };
    let names = |rule: &NamedRuleWithOperations| {
        named(&rule.api_groups, group)
            && rule
                .resources
                .iter()
                .flatten()
                .any(|resource| matches!(resource.as_str(), "*" | "*/*") || resource == plural)
    };
    policy
        .match_constraints
        .iter()
        .flat_map(|constraints| constraints.resource_rules.iter().flatten())
        .any(names)
}

/// What the CEL policies are evaluated with, besides the policies.
pub struct CelRequest<'a> {
    /// The background request of the resource.
    pub request: &'a ResourceRequest,
    /// The resource's endpoint.
    pub resource: &'a GroupVersionResource,
    /// The Namespace object of the resource's namespace (`namespaceObject`).
    pub namespace_object: Option<&'a Value>,
    /// Where Kyverno's libraries and the images' data are read.
    pub provider: Arc<dyn ContextProvider>,
}

/// The rule results of each policy on the resource, with the time each policy took.
pub fn evaluate(
    policies: &[Arc<CachedCelPolicy>],
    input: &CelRequest<'_>,
) -> Vec<(Vec<RuleResponse>, Duration)> {
    let validating =
        ValidatingInput::resource(input.request, input.resource, input.namespace_object)
            .with_provider(Arc::clone(&input.provider));
    let images = RequestInput::new(input.request, input.resource, input.namespace_object);
    policies
        .iter()
        .map(|policy| {
            let started = Instant::now();
            let rules = match &policy.compiled {
                CompiledCel::Validating(compiled) => compiled
                    .evaluate(&validating)
                    .into_iter()
                    .flat_map(|response| response.rules)
                    .collect(),
                CompiledCel::ImageValidating(compiled) => image_validation_rules(
                    compiled.name(),
                    compiled.evaluate(&images, &input.provider),
                ),
                CompiledCel::Mutating(_) | CompiledCel::Generating(_) => Vec::new(),
            };
            (rules, started.elapsed())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;
    use std::hash::DefaultHasher;

    use kyverno_policy_core::engine::NoExternalData;
    use kyverno_policy_core::request::GroupVersionKind;
    use kyverno_policy_core::response::RuleStatus;
    use kyverno_runtime::cel_policies::{CelKind, CelSource};
    use kyverno_runtime::policy_cache::PolicyCache;
    use serde_json::json;

    use super::*;

    fn validating(name: &str, spec: Value) -> CelSource {
        CelSource::decode(
            CelKind::ValidatingPolicy,
            json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
                "metadata": {"name": name, "resourceVersion": "3"}, "spec": spec}),
        )
        .unwrap()
    }

    fn require_team(evaluation: Value) -> CelSource {
        validating(
            "require-team",
            json!({"validationActions": ["Audit"], "evaluation": evaluation,
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
                "validations": [{"expression": "has(object.metadata.labels.team)",
                    "message": "label team is required"}]}),
        )
    }

    fn exception(version: &str) -> Value {
        json!({"apiVersion": "policies.kyverno.io/v1", "kind": "PolicyException",
            "metadata": {"name": "allow-bad", "namespace": "default", "resourceVersion": version},
            "spec": {"policyRefs": [{"name": "require-team", "kind": "ValidatingPolicy"}],
                "matchConditions": [{"name": "bad", "expression": "object.metadata.name == 'bad'"}]}})
    }

    fn version_of(policy: &CachedCelPolicy) -> u64 {
        let mut hasher = DefaultHasher::new();
        hash_version(policy, &mut hasher);
        hasher.finish()
    }

    fn pod(name: &str, labels: Value) -> ResourceRequest {
        let object = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        ResourceRequest::new(Arc::new(object))
            .with_operation(kyverno_api::kyverno::v1::match_resources::AdmissionOperation::Create)
            .with_kind(GroupVersionKind::from_api_version("v1", "Pod"), "")
    }

    fn statuses(policies: &[Arc<CachedCelPolicy>], request: &ResourceRequest) -> Vec<RuleStatus> {
        let resource = GroupVersionResource::new("", "v1", "pods");
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "labels": BTreeMap::<String, String>::new()}});
        let input = CelRequest {
            request,
            resource: &resource,
            namespace_object: Some(&namespace),
            provider: Arc::new(NoExternalData),
        };
        evaluate(policies, &input)
            .into_iter()
            .flat_map(|(rules, _)| rules)
            .map(|rule| rule.status)
            .collect()
    }

    #[test]
    fn background_off_and_other_modes_are_left_out() {
        let cache = PolicyCache::default();
        cache.apply_cel_policy(require_team(json!({"background": {"enabled": false}})));
        assert!(background_policies(&cache.snapshot()).is_empty());
        cache.apply_cel_policy(require_team(json!({"mode": "JSON"})));
        assert!(background_policies(&cache.snapshot()).is_empty());
        cache.apply_cel_policy(require_team(json!({})));
        let policies = background_policies(&cache.snapshot());
        assert_eq!(policies.len(), 1);
        assert!(names_resource(&policies[0], "", "pods"));
        // The autogen variants name the pod controllers.
        assert!(names_resource(&policies[0], "apps", "deployments"));
        assert!(!names_resource(&policies[0], "", "configmaps"));
    }

    #[test]
    fn pods_pass_fail_and_are_skipped_by_exceptions() {
        let cache = PolicyCache::default();
        cache.apply_cel_policy(require_team(json!({})));
        let policies = background_policies(&cache.snapshot());
        let before = version_of(&policies[0]);
        let good = pod("good", json!({"team": "a"}));
        let bad = pod("bad", json!({}));
        assert_eq!(statuses(&policies, &good), [RuleStatus::Pass]);
        assert_eq!(statuses(&policies, &bad), [RuleStatus::Fail]);

        cache.apply_cel_exception(serde_json::from_value(exception("1")).unwrap());
        let policies = background_policies(&cache.snapshot());
        let excepted = version_of(&policies[0]);
        assert_ne!(before, excepted);
        assert_eq!(statuses(&policies, &bad), [RuleStatus::Skip]);
        assert_eq!(statuses(&policies, &good), [RuleStatus::Pass]);

        cache.apply_cel_exception(serde_json::from_value(exception("2")).unwrap());
        let policies = background_policies(&cache.snapshot());
        assert_ne!(excepted, version_of(&policies[0]));
    }

    #[test]
    fn subresource_rules_do_not_name_the_resource() {
        let cache = PolicyCache::default();
        cache.apply_cel_policy(validating(
            "status-only",
            json!({"matchConstraints": {"resourceRules": [{"apiGroups": ["*"],
                "apiVersions": ["*"], "operations": ["UPDATE"], "resources": ["pods/status"]}]},
                "validations": [{"expression": "true"}]}),
        ));
        let policies = background_policies(&cache.snapshot());
        assert!(!names_resource(&policies[0], "", "pods"));
    }
}
