//! Admission with the CEL policy kinds of `policies.kyverno.io` (`/vpol/…`, `/ivpol/validate/…`,
//! `/mpol/…`), evaluated with policy-core's `celpolicy` engines as upstream's handlers answer:
//!
//! - ValidatingPolicies and ImageValidatingPolicies: each failed (or errored) validation of a
//!   policy whose `validationActions` has `Deny` denies the request with
//!   `Policy <name> failed: <message>` (`error:` for errors), all joined by `; `; with `Warn` the
//!   same text is a warning; `Audit` alone admits (the result goes to reports only).
//!   Image signatures and attestations cannot be verified offline: a policy that needs a
//!   registry answers with an error result saying so.
//! - MutatingPolicies: applied in order, each on the resource the previous ones patched; the
//!   answer carries the JSON patch from the request's object to the result. A policy whose
//!   mutation errors denies the request under failure policy `Fail` and adds a warning under
//!   `Ignore`.
use std::sync::Arc;

use base64::Engine;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::FailurePolicy;
use kyverno_api::policies::common::ValidationAction;
use kyverno_policy_core::celpolicy::RequestInput;
use kyverno_policy_core::celpolicy::image_validating::ImageValidation;
use kyverno_policy_core::celpolicy::resources::GroupVersionResource;
use kyverno_policy_core::celpolicy::validating::ValidatingInput;
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::{RuleResponse, RuleStatus, RuleType};
use kyverno_runtime::cel_policies::{CachedCelPolicy, CompiledCel};
use serde_json::{Value, json};

use crate::evaluate::Evaluator;
use crate::review::{AdmissionRequest, AdmissionResponse};

/// Which CEL webhook a request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CelWebhook {
    /// `/vpol/…`: ValidatingPolicies.
    Validate,
    /// `/ivpol/validate/…`: ImageValidatingPolicies.
    ImageValidate,
    /// `/mpol/…`: MutatingPolicies.
    Mutate,
}

impl CelWebhook {
    /// Whether `cached` is evaluated by this webhook.
    pub fn serves(self, cached: &CachedCelPolicy) -> bool {
        matches!(
            (self, &cached.compiled),
            (CelWebhook::Validate, CompiledCel::Validating(_))
                | (CelWebhook::ImageValidate, CompiledCel::ImageValidating(_))
                | (CelWebhook::Mutate, CompiledCel::Mutating(_))
        )
    }
}

/// The request as the CEL engines see it.
struct CelRequest {
    request: ResourceRequest,
    resource: GroupVersionResource,
    namespace_object: Option<Value>,
}

/// Answers `request` received by `webhook` on the path of `failure_policy`: only the policies
/// with that failure policy are evaluated there.
pub fn review(
    evaluator: &Evaluator,
    webhook: CelWebhook,
    failure_policy: FailurePolicy,
    request: &AdmissionRequest,
) -> AdmissionResponse {
    let allow = || AdmissionResponse::allow(&request.uid);
    let Some(operation) = AdmissionOperation::from_name(&request.operation) else {
        return allow();
    };
    let snapshot = evaluator.stores.cache.snapshot();
    let policies: Vec<&Arc<CachedCelPolicy>> = snapshot
        .cel
        .iter()
        .filter(|cached| {
            webhook.serves(cached)
                && cached.failure_policy == failure_policy
                && cached.in_admission()
                && cached.applies_in(&request.namespace)
        })
        .collect();
    if policies.is_empty() {
        return allow();
    }
    let Some(resource_request) = evaluator.resource_request(request, operation) else {
        return allow();
    };
    let cel_request = CelRequest {
        request: resource_request,
        resource: GroupVersionResource::new(
            request.resource.group.clone(),
            request.resource.version.clone(),
            request.resource.resource.clone(),
        ),
        namespace_object: namespace_object(evaluator, &request.namespace),
    };
    match webhook {
        CelWebhook::Validate => {
            let input = ValidatingInput::resource(
                &cel_request.request,
                &cel_request.resource,
                cel_request.namespace_object.as_ref(),
            )
            .with_provider(Arc::clone(&evaluator.provider));
            let outcomes = policies.iter().filter_map(|cached| match &cached.compiled {
                CompiledCel::Validating(policy) => {
                    let rules = policy
                        .evaluate(&input)
                        .into_iter()
                        .flat_map(|response| response.rules)
                        .collect();
                    Some((cached.as_ref(), rules))
                }
                _ => None,
            });
            decide(&request.uid, outcomes)
        }
        CelWebhook::ImageValidate => {
            let input = RequestInput::new(
                &cel_request.request,
                &cel_request.resource,
                cel_request.namespace_object.as_ref(),
            );
            let outcomes = policies.iter().filter_map(|cached| match &cached.compiled {
                CompiledCel::ImageValidating(policy) => {
                    let rules = match policy.evaluate(&input, &evaluator.provider) {
                        None => Vec::new(),
                        Some(ImageValidation::Evaluated { rule, .. }) => vec![rule],
                        Some(ImageValidation::NeedsRegistry { reason }) => vec![RuleResponse {
                            name: policy.name().to_owned(),
                            rule_type: RuleType::ImageVerify,
                            status: RuleStatus::Error,
                            message: format!(
                                "image verification needs the images' registries, which are not supported: {reason}"
                            ),
                        }],
                    };
                    Some((cached.as_ref(), rules))
                }
                _ => None,
            });
            decide(&request.uid, outcomes)
        }
        CelWebhook::Mutate => mutate(&request.uid, &policies, &cel_request),
    }
}

/// The Namespace object of `namespace` as the watches know it (its name and labels); `None`
/// for cluster-scoped requests.
fn namespace_object(evaluator: &Evaluator, namespace: &str) -> Option<Value> {
    (!namespace.is_empty()).then(|| {
        let labels = evaluator.stores.namespaces.get(namespace);
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": *labels}})
    })
}

/// The answer of the validating kinds from each policy's rule results.
fn decide<'a>(
    uid: &str,
    outcomes: impl Iterator<Item = (&'a CachedCelPolicy, Vec<RuleResponse>)>,
) -> AdmissionResponse {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (cached, rules) in outcomes {
        let actions = cached.validation_actions();
        for rule in rules {
            let verdict = match rule.status {
                RuleStatus::Fail => "failed",
                RuleStatus::Error => "error",
                RuleStatus::Pass | RuleStatus::Skip | RuleStatus::Warn => continue,
            };
            let text = format!("Policy {} {verdict}: {}", cached.key.name, rule.message);
            if actions.contains(&ValidationAction::Warn) {
                warnings.push(text.clone());
            }
            if actions.contains(&ValidationAction::Deny) {
                errors.push(text);
            }
        }
    }
    if errors.is_empty() {
        AdmissionResponse::allow(uid).with_warnings(warnings)
    } else {
        AdmissionResponse::deny(uid, errors.join("; ")).with_warnings(warnings)
    }
}

/// Applies the MutatingPolicies in order, each on the resource the previous ones left.
fn mutate(
    uid: &str,
    policies: &[&Arc<CachedCelPolicy>],
    cel_request: &CelRequest,
) -> AdmissionResponse {
    let original = Arc::clone(cel_request.request.resource());
    let mut current = Arc::clone(&original);
    let mut warnings = Vec::new();
    for cached in policies {
        let CompiledCel::Mutating(policy) = &cached.compiled else {
            continue;
        };
        let request = cel_request
            .request
            .clone()
            .with_resource(Arc::clone(&current));
        let input = RequestInput::new(
            &request,
            &cel_request.resource,
            cel_request.namespace_object.as_ref(),
        );
        let Some(mutation) = policy.evaluate(&input) else {
            continue;
        };
        match mutation.rule.status {
            RuleStatus::Pass => current = mutation.patched,
            RuleStatus::Error | RuleStatus::Fail => {
                let text = format!(
                    "Policy {} error: {}",
                    cached.key.name, mutation.rule.message
                );
                if cached.failure_policy == FailurePolicy::Fail {
                    return AdmissionResponse::deny(uid, text);
                }
                warnings.push(text);
            }
            RuleStatus::Skip | RuleStatus::Warn => {}
        }
    }
    let mut answer = AdmissionResponse::allow(uid).with_warnings(warnings);
    let patch = kyverno_policy_core::mutate::diff(&original, &current);
    if !patch.0.is_empty() {
        match serde_json::to_vec(&patch) {
            Ok(bytes) => {
                answer.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                answer.patch_type = Some("JSONPatch");
            }
            Err(error) => tracing::error!(%error, "patch could not be encoded"),
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kyverno_policy_core::engine::NoExternalData;
    use kyverno_runtime::cel_policies::{CelKind, CelSource};
    use kyverno_runtime::config::SharedConfig;
    use kyverno_runtime::namespaces::NamespaceLabels;
    use kyverno_runtime::policy_cache::PolicyCache;
    use kyverno_runtime::watch::Stores;

    use super::*;
    use crate::metrics::Metrics;
    use crate::review::AdmissionReview;

    fn evaluator() -> Evaluator {
        let stores = Stores {
            cache: Arc::new(PolicyCache::default()),
            config: Arc::new(SharedConfig::new("kyverno")),
            namespaces: Arc::new(NamespaceLabels::default()),
            roles: Arc::default(),
        };
        let metrics = Arc::new(Metrics::default());
        Evaluator {
            stores,
            provider: Arc::new(NoExternalData),
            metrics,
            outputs: None,
        }
    }

    fn pod_request(labels: Value) -> AdmissionRequest {
        AdmissionReview::parse(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
                "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "p", "namespace": "default", "operation": "CREATE",
                "userInfo": {"username": "alice"},
                "object": {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "default", "labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn policy(kind: CelKind, spec: Value) -> CelSource {
        CelSource::decode(
            kind,
            json!({"apiVersion": "policies.kyverno.io/v1", "kind": kind.name(),
                "metadata": {"name": "p"}, "spec": spec}),
        )
        .unwrap()
    }

    fn pods() -> Value {
        json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]})
    }

    fn require_team(actions: Value) -> CelSource {
        policy(
            CelKind::ValidatingPolicy,
            json!({"validationActions": actions, "matchConstraints": pods(),
                "validations": [{"expression": "has(object.metadata.labels.team)",
                    "message": "label team is required"}]}),
        )
    }

    #[test]
    fn validation_actions_decide_the_answer() {
        let evaluator = evaluator();
        let cache = &evaluator.stores.cache;
        let answer = |labels| {
            review(
                &evaluator,
                CelWebhook::Validate,
                FailurePolicy::Fail,
                &pod_request(labels),
            )
        };
        cache.apply_cel_policy(require_team(json!(["Deny"])));
        let denied = answer(json!({}));
        assert!(!denied.allowed);
        assert_eq!(
            denied.status.unwrap().message,
            "Policy p failed: label team is required"
        );
        assert!(answer(json!({"team": "a"})).allowed);
        cache.apply_cel_policy(require_team(json!(["Audit"])));
        let audited = answer(json!({}));
        assert!(audited.allowed);
        assert!(audited.warnings.is_empty());
        cache.apply_cel_policy(require_team(json!(["Audit", "Warn"])));
        let warned = answer(json!({}));
        assert!(warned.allowed);
        assert_eq!(warned.warnings, ["Policy p failed: label team is required"]);
        // Policies with the other failure policy are evaluated on the other path.
        cache.apply_cel_policy(require_team(json!(["Deny"])));
        assert!(
            review(
                &evaluator,
                CelWebhook::Validate,
                FailurePolicy::Ignore,
                &pod_request(json!({}))
            )
            .allowed
        );
    }

    #[test]
    fn mutating_policies_answer_with_a_json_patch() {
        let evaluator = evaluator();
        evaluator.stores.cache.apply_cel_policy(policy(
            CelKind::MutatingPolicy,
            json!({"matchConstraints": pods(), "mutations": [{"patchType": "ApplyConfiguration",
                "applyConfiguration": {"expression":
                    "Object{metadata: Object.metadata{labels: {\"team\": \"core\"}}}"}}]}),
        ));
        let answer = review(
            &evaluator,
            CelWebhook::Mutate,
            FailurePolicy::Fail,
            &pod_request(json!({"app": "x"})),
        );
        assert!(answer.allowed);
        assert_eq!(answer.patch_type, Some("JSONPatch"));
        let patch: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(answer.patch.unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/metadata/labels/team", "value": "core"}])
        );
    }
}
