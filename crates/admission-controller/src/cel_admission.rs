//! Admission with the CEL policy kinds of `policies.kyverno.io` (`/vpol/…`, `/ivpol/validate/…`,
//! `/mpol/…`, `/gpol/…`), evaluated with policy-core's `celpolicy` engines as upstream's
//! handlers answer:
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
//!   `Ignore`. MutatingPolicies that mutate existing resources (`evaluation.mutateExisting`)
//!   leave the request as it is: each whose `matchConstraints` select it queues a `cel-mutate`
//!   UpdateRequest for the background controller once the request is admitted.
//! - GeneratingPolicies: the request is always admitted; each policy whose `matchConstraints`
//!   select it queues a `cel-generate` UpdateRequest (its `matchConditions` and generations are
//!   evaluated by the background controller), except for requests of the background controller
//!   itself when the policy skips them (`evaluation.skipBackgroundRequests`, the default).
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::FailurePolicy;
use kyverno_api::kyverno::v2::update_request::RequestType;
use kyverno_api::policies::common::ValidationAction;
use kyverno_policy_core::celpolicy::RequestInput;
use kyverno_policy_core::celpolicy::resources::GroupVersionResource;
use kyverno_policy_core::celpolicy::validating::ValidatingInput;
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::{RuleResponse, RuleStatus};
use kyverno_runtime::cel_policies::{CachedCelPolicy, CompiledCel, image_validation_rules};
use kyverno_runtime::reports::ReportedPolicy;
use serde_json::{Value, json};

use crate::evaluate::{Evaluator, RuleRecord, Webhook};
use crate::review::{AdmissionRequest, AdmissionResponse};
use crate::side_effects::{Answered, EvaluatedPolicy, Outputs};
use crate::update_requests::CelTriggered;

/// Which CEL webhook a request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CelWebhook {
    /// `/vpol/…`: ValidatingPolicies.
    Validate,
    /// `/ivpol/validate/…`: ImageValidatingPolicies.
    ImageValidate,
    /// `/mpol/…`: MutatingPolicies.
    Mutate,
    /// `/gpol/…`: GeneratingPolicies.
    Generate,
}

impl CelWebhook {
    /// Whether this webhook receives the requests of `cached`: it evaluates them, or (a
    /// mutate-existing MutatingPolicy) queues UpdateRequests for them.
    pub fn serves(self, cached: &CachedCelPolicy) -> bool {
        (self.evaluates(cached) && cached.in_admission())
            || (self == CelWebhook::Mutate && mutates_existing(cached))
    }

    /// Whether `cached` is of the kind this webhook evaluates.
    fn evaluates(self, cached: &CachedCelPolicy) -> bool {
        matches!(
            (self, &cached.compiled),
            (CelWebhook::Validate, CompiledCel::Validating(_))
                | (CelWebhook::ImageValidate, CompiledCel::ImageValidating(_))
                | (CelWebhook::Mutate, CompiledCel::Mutating(_))
                | (CelWebhook::Generate, CompiledCel::Generating(_))
        )
    }
}

/// Whether `cached` is a MutatingPolicy whose admission requests queue mutate-existing
/// UpdateRequests (`evaluation.admission` and `evaluation.mutateExisting` both enabled).
fn mutates_existing(cached: &CachedCelPolicy) -> bool {
    matches!(&cached.compiled, CompiledCel::Mutating(policy)
        if policy.admission() && policy.mutates_existing())
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
    let evaluated = match webhook {
        CelWebhook::Validate => {
            let input = ValidatingInput::resource(
                &cel_request.request,
                &cel_request.resource,
                cel_request.namespace_object.as_ref(),
            )
            .with_provider(Arc::clone(&evaluator.provider));
            evaluate_each(evaluator, request, operation, &policies, |compiled| {
                let CompiledCel::Validating(policy) = compiled else {
                    return None;
                };
                Some(
                    policy
                        .evaluate(&input)
                        .into_iter()
                        .flat_map(|response| response.rules)
                        .collect(),
                )
            })
        }
        CelWebhook::ImageValidate => {
            let input = RequestInput::new(
                &cel_request.request,
                &cel_request.resource,
                cel_request.namespace_object.as_ref(),
            );
            evaluate_each(evaluator, request, operation, &policies, |compiled| {
                let CompiledCel::ImageValidating(policy) = compiled else {
                    return None;
                };
                Some(image_validation_rules(
                    policy.name(),
                    policy.evaluate(&input, &evaluator.provider),
                ))
            })
        }
        CelWebhook::Mutate => {
            let (existing, admitted): (Vec<_>, Vec<_>) = policies
                .into_iter()
                .partition(|cached| mutates_existing(cached));
            let answer = mutate(&request.uid, &admitted, &cel_request);
            if answer.allowed {
                trigger(evaluator, request, operation, &existing, &cel_request);
            }
            return answer;
        }
        CelWebhook::Generate => {
            trigger(evaluator, request, operation, &policies, &cel_request);
            return allow();
        }
    };
    let answer = decide(&request.uid, &evaluated);
    if let Some(outputs) = &evaluator.outputs {
        leave_outputs(
            evaluator,
            outputs,
            &Answered {
                request,
                operation,
                resource_request: &cel_request.request,
                blocked: !answer.allowed,
            },
            evaluated,
        );
    }
    answer
}

/// One validating policy's rule results.
type Outcome<'a> = (&'a Arc<CachedCelPolicy>, Vec<RuleResponse>);

/// Evaluates each policy `evaluate` knows how to (`None` for the others), counting its results
/// in the metrics.
fn evaluate_each<'a>(
    evaluator: &Evaluator,
    request: &AdmissionRequest,
    operation: AdmissionOperation,
    policies: &'a [&'a Arc<CachedCelPolicy>],
    evaluate: impl Fn(&CompiledCel) -> Option<Vec<RuleResponse>>,
) -> Vec<Outcome<'a>> {
    policies
        .iter()
        .filter_map(|cached| {
            let started = Instant::now();
            let rules = evaluate(&cached.compiled)?;
            evaluator.record_rules(
                &RuleRecord {
                    policy: ReportedPolicy::cel(cached),
                    enforcing: denies(cached),
                    request,
                    operation,
                    rule_type: Webhook::Validate.rule_type(),
                },
                &rules,
                started,
            );
            Some((*cached, rules))
        })
        .collect()
}

/// Whether failures of `cached` deny requests (`Deny` among its `validationActions`).
fn denies(cached: &CachedCelPolicy) -> bool {
    cached
        .validation_actions()
        .contains(&ValidationAction::Deny)
}

/// Queues the Events and the ephemeral report of the validated request (`answered`, whose
/// results are `evaluated`): when it was denied, only the results of the denying policies
/// count.
fn leave_outputs(
    evaluator: &Evaluator,
    outputs: &Outputs,
    answered: &Answered<'_>,
    evaluated: Vec<Outcome<'_>>,
) {
    let results = evaluated
        .into_iter()
        .filter(|(cached, _)| !answered.blocked || denies(cached))
        .map(|(cached, rules)| (EvaluatedPolicy::Cel(Arc::clone(cached)), rules))
        .collect();
    outputs.after_validation(answered, results, &evaluator.stores.config.get());
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
fn decide(uid: &str, outcomes: &[Outcome<'_>]) -> AdmissionResponse {
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

/// Queues the UpdateRequests of the admitted `request` that `policies` (mutate-existing
/// MutatingPolicies or GeneratingPolicies) ask for.
fn trigger(
    evaluator: &Evaluator,
    request: &AdmissionRequest,
    operation: AdmissionOperation,
    policies: &[&Arc<CachedCelPolicy>],
    cel_request: &CelRequest,
) {
    if let Some(outputs) = &evaluator.outputs {
        outputs.trigger_cel(
            &Answered {
                request,
                operation,
                resource_request: &cel_request.request,
                blocked: false,
            },
            triggered(policies, cel_request),
        );
    }
}

/// The policies among `policies` whose `matchConstraints` select the request, as the
/// UpdateRequests they ask for: `cel-mutate` for mutate-existing MutatingPolicies,
/// `cel-generate` for GeneratingPolicies.
fn triggered(policies: &[&Arc<CachedCelPolicy>], cel_request: &CelRequest) -> Vec<CelTriggered> {
    let input = RequestInput::new(
        &cel_request.request,
        &cel_request.resource,
        cel_request.namespace_object.as_ref(),
    );
    policies
        .iter()
        .filter_map(|cached| {
            let (request_type, synchronize, skip_background_requests) = match &cached.compiled {
                CompiledCel::Mutating(policy) if policy.selects_trigger(&input) => {
                    (RequestType::CelMutate, false, false)
                }
                CompiledCel::Generating(policy) if policy.selects(&input) => {
                    let settings = policy.settings();
                    (
                        RequestType::CelGenerate,
                        settings.synchronize,
                        settings.skip_background_requests,
                    )
                }
                _ => return None,
            };
            Some(CelTriggered {
                policy: cached.key.clone(),
                request_type,
                synchronize,
                skip_background_requests,
            })
        })
        .collect()
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
    use kyverno_api::kyverno::v2::update_request::UpdateRequest;
    use kyverno_policy_core::engine::NoExternalData;
    use kyverno_runtime::cel_policies::{CelKind, CelSource};
    use kyverno_runtime::config::SharedConfig;
    use kyverno_runtime::namespaces::NamespaceLabels;
    use kyverno_runtime::policy_cache::PolicyCache;
    use kyverno_runtime::watch::Stores;
    use prometheus_client::registry::Registry;

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
        let metrics = Arc::new(Metrics::register(&mut Registry::default()));
        Evaluator {
            stores,
            provider: Arc::new(NoExternalData),
            metrics,
            outputs: None,
        }
    }

    /// The user of the background controller in the tests.
    const BACKGROUND_USER: &str = "system:serviceaccount:kyverno:kyverno-background-controller";

    /// Gives `evaluator` outputs; the receiver gets what it queues.
    fn queue_outputs(evaluator: &mut Evaluator) -> crate::outputs::OutputReceiver {
        let (queue, receiver) =
            crate::outputs::OutputQueue::new(16, Arc::clone(&evaluator.metrics));
        evaluator.outputs = Some(Outputs {
            queue,
            namespace: "kyverno".into(),
            instance: "kyverno-admission-test".into(),
            background_user: BACKGROUND_USER.into(),
        });
        receiver
    }

    /// What was queued so far.
    fn drain(receiver: &mut crate::outputs::OutputReceiver) -> Vec<crate::outputs::Output> {
        std::iter::from_fn(|| receiver.try_recv()).collect()
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

    /// The outputs `review` queued for a pod labelled with `labels` (with a uid, as stored).
    fn outputs_of(actions: Value, dry_run: bool) -> (bool, Vec<crate::outputs::Output>, String) {
        let mut evaluator = evaluator();
        let mut registry = Registry::default();
        evaluator.metrics = Arc::new(Metrics::register(&mut registry));
        let mut receiver = queue_outputs(&mut evaluator);
        let mut source = require_team(actions);
        if let CelSource::Validating(policy) = &mut source {
            policy.metadata.resource_version = Some("31".into());
        }
        evaluator.stores.cache.apply_cel_policy(source);
        let mut request = pod_request(json!({}));
        if let Some(object) = request.object.as_mut() {
            object["metadata"]["uid"] = "pod-uid".into();
        }
        request.dry_run = Some(dry_run);
        let answer = review(
            &evaluator,
            CelWebhook::Validate,
            FailurePolicy::Fail,
            &request,
        );
        let metrics = kyverno_runtime::admin::Admin::new(registry).encode_metrics();
        (answer.allowed, drain(&mut receiver), metrics)
    }

    /// The Events and ephemeral reports that the writer makes of `outputs`.
    fn built(
        outputs: &[crate::outputs::Output],
    ) -> (
        Vec<k8s_openapi::api::events::v1::Event>,
        Vec<kube::api::DynamicObject>,
    ) {
        let mut events = Vec::new();
        let mut reports = Vec::new();
        for output in outputs {
            if let crate::outputs::Output::Validated(validated) = output {
                let (built_events, report) = validated.build();
                events.extend(built_events);
                reports.extend(report);
            }
        }
        (events, reports)
    }

    #[test]
    fn audited_failures_leave_a_report_and_events() {
        let (allowed, outputs, metrics) = outputs_of(json!(["Audit"]), false);
        assert!(allowed);
        let (events, reports) = built(&outputs);
        assert_eq!(reports.len(), 1);
        let labels = reports[0].metadata.labels.as_ref().unwrap();
        assert_eq!(labels["vpol.kyverno.io/p"], "31");
        assert_eq!(labels["audit.kyverno.io/source"], "admission");
        let result = &reports[0].data["spec"]["results"][0];
        assert_eq!(result["policy"], "p");
        assert_eq!(result["result"], "fail");
        assert_eq!(result["source"], "KyvernoValidatingPolicy");
        assert_eq!(result["message"], "label team is required");
        let notes: Vec<_> = events
            .iter()
            .map(|event| {
                (
                    event.regarding.as_ref().and_then(|r| r.kind.clone()),
                    event.reason.clone(),
                )
            })
            .collect();
        assert_eq!(
            notes,
            [
                (
                    Some("ValidatingPolicy".to_owned()),
                    Some("PolicyViolation".to_owned())
                ),
                (Some("Pod".to_owned()), Some("PolicyViolation".to_owned())),
            ]
        );
        assert!(
            metrics.contains("kyverno_policy_results_total{policy_validation_mode=\"audit\""),
            "{metrics}"
        );
        assert!(metrics.contains("policy_name=\"p\""), "{metrics}");
    }

    #[test]
    fn denied_requests_leave_only_the_policy_event_and_dry_runs_nothing() {
        let (allowed, outputs, _) = outputs_of(json!(["Deny"]), false);
        assert!(!allowed);
        assert_eq!(outputs.len(), 1);
        let (events, reports) = built(&outputs);
        assert!(reports.is_empty());
        assert_eq!(events.len(), 1);
        assert!(events[0].note.as_deref().unwrap().contains("(blocked)"));
        let (allowed, outputs, _) = outputs_of(json!(["Audit"]), true);
        assert!(allowed);
        assert!(outputs.is_empty());
    }

    /// The answer to a pod request on the mutating path with a mutate-existing MutatingPolicy
    /// selecting pods labelled `app: x`, and the outputs it queued.
    fn mutate_existing_outputs(
        labels: Value,
        dry_run: bool,
    ) -> (AdmissionResponse, Vec<crate::outputs::Output>) {
        let mut evaluator = evaluator();
        let mut receiver = queue_outputs(&mut evaluator);
        let mut constraints = pods();
        constraints["objectSelector"] = json!({"matchLabels": {"app": "x"}});
        evaluator.stores.cache.apply_cel_policy(policy(
            CelKind::MutatingPolicy,
            json!({"evaluation": {"mutateExisting": {"enabled": true}},
                "matchConstraints": constraints,
                "targetMatchConstraints": {"resourceRules": [{"apiGroups": [""],
                    "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                    "resources": ["configmaps"]}]},
                "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {
                    "expression": "Object{metadata: Object.metadata{labels: {\"team\": \"core\"}}}"}}]}),
        ));
        let mut request = pod_request(labels);
        request.dry_run = Some(dry_run);
        let answer = review(
            &evaluator,
            CelWebhook::Mutate,
            FailurePolicy::Fail,
            &request,
        );
        (answer, drain(&mut receiver))
    }

    #[test]
    fn mutate_existing_policies_queue_update_requests_and_leave_the_request_alone() {
        use crate::outputs::Output;
        let (answer, outputs) = mutate_existing_outputs(json!({"app": "x"}), false);
        assert!(answer.allowed);
        assert!(answer.patch.is_none(), "the trigger itself is not mutated");
        assert_eq!(outputs.len(), 1);
        let Output::CelTriggered(triggers) = &outputs[0] else {
            panic!("triggered policies expected, got {:?}", outputs[0]);
        };
        let requests = triggers.update_requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].spec.request_type, Some(RequestType::CelMutate));
        assert_eq!(requests[0].spec.policy, "p");
        assert_eq!(requests[0].spec.resource.name.as_deref(), Some("p"));
        assert_eq!(requests[0].metadata.namespace.as_deref(), Some("kyverno"));
        // Not selected, or a dry run: nothing is queued.
        assert!(
            mutate_existing_outputs(json!({"app": "y"}), false)
                .1
                .is_empty()
        );
        assert!(
            mutate_existing_outputs(json!({"app": "x"}), true)
                .1
                .is_empty()
        );
    }

    /// The answer to the creation of Namespace `team-a` by `username` on the generating path,
    /// with a GeneratingPolicy triggered by Namespaces (`evaluation` as given), and the
    /// UpdateRequests it queued.
    fn generating_outputs(
        username: &str,
        evaluation: Value,
    ) -> (AdmissionResponse, Vec<UpdateRequest>) {
        let mut evaluator = evaluator();
        let mut receiver = queue_outputs(&mut evaluator);
        evaluator.stores.cache.apply_cel_policy(policy(
            CelKind::GeneratingPolicy,
            json!({"evaluation": evaluation,
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["namespaces"]}]},
                "generate": [{"template": {"value":
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: defaults"}}]}),
        ));
        let request = AdmissionReview::parse(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
                "uid": "u", "kind": {"group": "", "version": "v1", "kind": "Namespace"},
                "resource": {"group": "", "version": "v1", "resource": "namespaces"},
                "name": "team-a", "operation": "CREATE", "userInfo": {"username": username},
                "object": {"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "team-a", "uid": "ns-uid"}}}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let answer = review(
            &evaluator,
            CelWebhook::Generate,
            FailurePolicy::Ignore,
            &request,
        );
        let requests = drain(&mut receiver)
            .into_iter()
            .flat_map(|output| match output {
                crate::outputs::Output::CelTriggered(triggers) => triggers.update_requests(),
                other => panic!("only triggered policies expected, got {other:?}"),
            })
            .collect();
        (answer, requests)
    }

    #[test]
    fn generating_policies_queue_cel_generate_requests() {
        let (answer, requests) =
            generating_outputs("alice", json!({"synchronize": {"enabled": true}}));
        assert!(answer.allowed);
        assert!(answer.patch.is_none());
        assert_eq!(requests.len(), 1);
        let request = serde_json::to_value(&requests[0]).unwrap();
        assert_eq!(request["spec"]["requestType"], "cel-generate");
        assert_eq!(request["spec"]["policy"], "p");
        assert_eq!(request["spec"]["synchronize"], true);
        assert_eq!(
            request["spec"]["ruleContext"][0]["trigger"]["name"],
            "team-a"
        );
        assert_eq!(
            request["metadata"]["labels"]["generate.kyverno.io/policy-name"],
            "p"
        );
        // The background controller's own requests trigger nothing, unless the policy asks.
        assert!(generating_outputs(BACKGROUND_USER, json!({})).1.is_empty());
        assert_eq!(
            generating_outputs(BACKGROUND_USER, json!({"skipBackgroundRequests": false}))
                .1
                .len(),
            1
        );
        // Policies that leave admission requests alone get none.
        assert!(
            generating_outputs("alice", json!({"admission": {"enabled": false}}))
                .1
                .is_empty()
        );
    }

    #[test]
    fn generating_policies_ignore_requests_they_do_not_select() {
        let mut evaluator = evaluator();
        let mut receiver = queue_outputs(&mut evaluator);
        evaluator.stores.cache.apply_cel_policy(policy(
            CelKind::GeneratingPolicy,
            json!({"matchConstraints": {"resourceRules": [{"apiGroups": [""],
                    "apiVersions": ["v1"], "operations": ["CREATE"],
                    "resources": ["namespaces"]}]},
                "generate": [{"template": {"value": "kind: ConfigMap"}}]}),
        ));
        let answer = review(
            &evaluator,
            CelWebhook::Generate,
            FailurePolicy::Ignore,
            &pod_request(json!({})),
        );
        assert!(answer.allowed);
        assert!(drain(&mut receiver).is_empty());
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
