//! Answering one admission request: the policies of the cache that can match it, evaluated with
//! the engine, their results turned into upstream's answer (synchronous: the server runs it off
//! the async reactor).
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::FailurePolicy;
use kyverno_api::kyverno::v1::validate::{
    ValidationFailureAction, ValidationFailureActionOverride,
};
use kyverno_policy_core::engine::{
    self, ContextProvider, Environment, LoadedPolicy, SuppliedValues,
};
use kyverno_policy_core::request::{GroupVersionKind, RequestInfo, ResourceRequest};
use kyverno_policy_core::response::{RuleResponse, RuleStatus};
use kyverno_policy_core::wildcard;
use kyverno_runtime::config::Requester;
use kyverno_runtime::policy_cache::{CachedPolicy, Snapshot};
use kyverno_runtime::reports::ReportedPolicy;
use kyverno_runtime::watch::Stores;
use serde_json::Value;

use crate::message::{blocked_message, warning};
use crate::metrics::{Metrics, PolicyLabels};
use crate::review::{AdmissionRequest, AdmissionResponse};
use crate::side_effects::{Answered, EvaluatedPolicy, Outputs};

/// Kinds of Kyverno's own bookkeeping that are never evaluated (upstream's
/// `ExcludeKyvernoResources`).
const KYVERNO_KINDS: [&str; 9] = [
    "ClusterPolicyReport",
    "PolicyReport",
    "AdmissionReport",
    "ClusterAdmissionReport",
    "BackgroundScanReport",
    "ClusterBackgroundScanReport",
    "EphemeralReport",
    "ClusterEphemeralReport",
    "UpdateRequest",
];

/// The message upstream leaves out of denials.
const PRECONDITIONS_NOT_MET: &str = "preconditions not met";

/// Which webhook a request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Webhook {
    /// `/validate/...`: validate rules.
    Validate,
    /// `/mutate/...`: mutate rules.
    Mutate,
}

impl Webhook {
    /// The `rule_type` of the metrics.
    pub fn rule_type(self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
        }
    }
}

/// Evaluates admission requests against the policies in force.
pub struct Evaluator {
    /// The policies, configuration and namespace labels.
    pub stores: Stores,
    /// Where context entries get their data.
    pub provider: Arc<dyn ContextProvider>,
    /// Where results are counted.
    pub metrics: Arc<Metrics>,
    /// Where reports, Events and UpdateRequests go; `None` writes none.
    pub outputs: Option<Outputs>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator").finish_non_exhaustive()
    }
}

/// One request being answered.
struct Review<'a> {
    request: &'a AdmissionRequest,
    operation: AdmissionOperation,
    resource_request: ResourceRequest,
    failure_policy: FailurePolicy,
    webhook: Webhook,
}

impl Evaluator {
    /// Answers `request` received by `webhook` on the path of `failure_policy` (`/…/fail` or
    /// `/…/ignore`): only the policies with that failure policy are evaluated there.
    pub fn review(
        &self,
        webhook: Webhook,
        failure_policy: FailurePolicy,
        request: &AdmissionRequest,
    ) -> AdmissionResponse {
        let allow = || AdmissionResponse::allow(&request.uid);
        let Some(operation) = AdmissionOperation::from_name(&request.operation) else {
            return allow();
        };
        if webhook == Webhook::Mutate
            && !matches!(
                operation,
                AdmissionOperation::Create | AdmissionOperation::Update
            )
        {
            return allow();
        }
        if self.is_filtered(request) {
            return allow();
        }
        let snapshot = self.stores.cache.snapshot();
        let policies: Vec<Arc<CachedPolicy>> = snapshot
            .policies_for(&request.kind.kind, &request.namespace, operation)
            .into_iter()
            .filter(|cached| {
                cached.failure_policy == failure_policy
                    && match webhook {
                        // Generate and mutate-existing rules are checked after validation.
                        Webhook::Validate => cached.has_validate() || cached.has_background_work(),
                        Webhook::Mutate => cached.has_mutate(),
                    }
            })
            .collect();
        if policies.is_empty() {
            return allow();
        }
        let Some(resource_request) = self.resource_request(request, operation) else {
            return allow();
        };
        let resource_request =
            crate::roles::with_roles(resource_request, &self.stores.roles, &policies);
        let review = Review {
            request,
            operation,
            resource_request,
            failure_policy,
            webhook,
        };
        let environment = Environment {
            provider: self.provider.as_ref(),
            exceptions: &snapshot.exceptions,
            values: &SuppliedValues::default(),
        };
        match webhook {
            Webhook::Validate => self.validate(&review, &policies, &environment, &snapshot),
            Webhook::Mutate => self.mutate(&review, &policies, &environment),
        }
    }

    /// Whether the `kyverno` ConfigMap or Kyverno's own kinds keep the request from evaluation.
    fn is_filtered(&self, request: &AdmissionRequest) -> bool {
        let config = self.stores.config.get();
        let bound = crate::roles::for_exclusions(&config, &self.stores.roles, &request.user_info);
        let requester = Requester {
            username: &request.user_info.username,
            groups: &request.user_info.groups,
            roles: &bound.roles,
            cluster_roles: &bound.cluster_roles,
        };
        let gvk = GroupVersionKind {
            group: request.kind.group.clone(),
            version: request.kind.version.clone(),
            kind: request.kind.kind.clone(),
        };
        config.is_excluded(&requester)
            || config.is_filtered(
                &gvk,
                &request.sub_resource,
                &request.namespace,
                &request.name,
            )
            || KYVERNO_KINDS.contains(&request.kind.kind.as_str())
    }

    /// The engine's view of the request: the new object (the old one on DELETE), the requester,
    /// the namespace's labels and the requested kind.
    pub(crate) fn resource_request(
        &self,
        request: &AdmissionRequest,
        operation: AdmissionOperation,
    ) -> Option<ResourceRequest> {
        let resource = match operation {
            AdmissionOperation::Delete => request.old_object.clone(),
            _ => request.object.clone(),
        }?;
        let mut resource_request = ResourceRequest::new(resource)
            .with_operation(operation)
            .with_request_info(RequestInfo {
                roles: Vec::new(),
                cluster_roles: Vec::new(),
                user_info: request.user_info.clone(),
            })
            .with_kind(
                GroupVersionKind {
                    group: request.kind.group.clone(),
                    version: request.kind.version.clone(),
                    kind: request.kind.kind.clone(),
                },
                request.sub_resource.clone(),
            );
        if let Some(old) = &request.old_object {
            resource_request = resource_request.with_old_resource(old.clone());
        }
        if request.kind.kind != "Namespace" && !request.namespace.is_empty() {
            resource_request = resource_request
                .with_namespace_labels(self.stores.namespaces.get(&request.namespace));
        }
        Some(resource_request)
    }

    fn validate(
        &self,
        review: &Review<'_>,
        policies: &[Arc<CachedPolicy>],
        environment: &Environment<'_>,
        snapshot: &Snapshot,
    ) -> AdmissionResponse {
        let mut results = Vec::new();
        let mut failures: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut blocked = false;
        let namespace = review.resource_request.namespace().to_owned();
        let labels = review.resource_request.namespace_labels();
        for cached in policies.iter().filter(|cached| cached.has_validate()) {
            let started = Instant::now();
            let response = engine::validate(&cached.policy, &review.resource_request, environment);
            let enforcing = is_enforcing(&cached.policy);
            self.record(review, cached, &response.rules, started, enforcing);
            let emit_warning = enforcing || cached.policy.spec.emit_warning == Some(true);
            for rule in &response.rules {
                match rule.status {
                    RuleStatus::Pass | RuleStatus::Skip => continue,
                    RuleStatus::Fail => {
                        blocked |= enforcing
                            && rule_action(&cached.policy, &rule.name, &namespace, labels)
                                == ValidationFailureAction::Enforce;
                    }
                    RuleStatus::Error => {
                        blocked |= enforcing && review.failure_policy == FailurePolicy::Fail;
                    }
                    RuleStatus::Warn => {}
                }
                if enforcing && rule.message != PRECONDITIONS_NOT_MET {
                    failures
                        .entry(cached.policy.name.clone())
                        .or_default()
                        .insert(rule.name.clone(), rule.message.clone());
                }
                if emit_warning {
                    warnings.push(warning(&cached.policy.name, &rule.name, &rule.message));
                }
            }
            if self.outputs.is_some() {
                results.push((Arc::clone(cached), response.rules));
            }
        }
        if let Some(outputs) = &self.outputs {
            self.leave_outputs(outputs, review, policies, results, blocked, snapshot);
        }
        if blocked {
            let resource = review.resource_request.resource();
            let name = format!(
                "{}/{}/{}",
                field(resource, "/kind"),
                field(resource, "/metadata/namespace"),
                field(resource, "/metadata/name")
            );
            return AdmissionResponse::deny(&review.request.uid, blocked_message(&name, &failures));
        }
        AdmissionResponse::allow(&review.request.uid).with_warnings(warnings)
    }

    fn mutate(
        &self,
        review: &Review<'_>,
        policies: &[Arc<CachedPolicy>],
        environment: &Environment<'_>,
    ) -> AdmissionResponse {
        let original = Arc::clone(review.resource_request.resource());
        let mut current = Arc::clone(&original);
        let mut warnings = Vec::new();
        for cached in policies {
            let request = review
                .resource_request
                .clone()
                .with_resource(Arc::clone(&current));
            let started = Instant::now();
            let response = engine::mutate_admission(&cached.policy, &request, environment);
            self.record(
                review,
                cached,
                &response.rules,
                started,
                is_enforcing(&cached.policy),
            );
            let failed: Vec<&str> = response
                .rules
                .iter()
                .filter(|rule| matches!(rule.status, RuleStatus::Fail | RuleStatus::Error))
                .map(|rule| rule.name.as_str())
                .collect();
            if !failed.is_empty() && review.failure_policy == FailurePolicy::Fail {
                return AdmissionResponse::deny(
                    &review.request.uid,
                    format!(
                        "failed to apply policy {} rules {}",
                        cached.policy.name,
                        failed.join(", ")
                    ),
                );
            }
            if cached.policy.spec.emit_warning == Some(true) {
                warnings.extend(
                    response
                        .rules
                        .iter()
                        .filter(|rule| !matches!(rule.status, RuleStatus::Pass | RuleStatus::Skip))
                        .map(|rule| warning(&cached.policy.name, &rule.name, &rule.message)),
                );
            }
            current = Arc::new(response.patched);
        }
        let mut answer = AdmissionResponse::allow(&review.request.uid).with_warnings(warnings);
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

    /// Queues what the validated request leaves behind: when blocked, only the results of the
    /// enforcing policies count (upstream audits nothing for a denied request).
    fn leave_outputs(
        &self,
        outputs: &Outputs,
        review: &Review<'_>,
        policies: &[Arc<CachedPolicy>],
        mut results: Vec<(Arc<CachedPolicy>, Vec<RuleResponse>)>,
        blocked: bool,
        snapshot: &Snapshot,
    ) {
        if blocked {
            results.retain(|(cached, _)| is_enforcing(&cached.policy));
        }
        let triggering = policies
            .iter()
            .filter(|cached| cached.has_background_work())
            .cloned()
            .collect();
        let results = results
            .into_iter()
            .map(|(cached, rules)| (EvaluatedPolicy::Kyverno(cached), rules))
            .collect();
        let answered = Answered {
            request: review.request,
            operation: review.operation,
            resource_request: &review.resource_request,
            blocked,
        };
        outputs.after_validation(&answered, results, &self.stores.config.get());
        outputs.trigger_background(&answered, triggering, snapshot, &self.provider);
    }

    /// Counts every rule result of a policy, with the time the policy took.
    fn record(
        &self,
        review: &Review<'_>,
        cached: &CachedPolicy,
        rules: &[RuleResponse],
        started: Instant,
        enforcing: bool,
    ) {
        self.record_rules(
            &RuleRecord {
                policy: ReportedPolicy::kyverno(&cached.policy),
                enforcing,
                request: review.request,
                operation: review.operation,
                rule_type: review.webhook.rule_type(),
            },
            rules,
            started,
        );
    }

    /// Counts every rule result of a policy of any kind (`kyverno_policy_results_total`), with
    /// the time the policy took (`kyverno_policy_execution_duration_seconds`).
    pub(crate) fn record_rules(
        &self,
        record: &RuleRecord<'_>,
        rules: &[RuleResponse],
        started: Instant,
    ) {
        let elapsed = started.elapsed();
        let policy = &record.policy;
        for rule in rules {
            self.metrics.rule(
                &PolicyLabels {
                    policy_validation_mode: if record.enforcing { "enforce" } else { "audit" }
                        .to_owned(),
                    policy_type: if policy.namespace.is_some() {
                        "namespaced"
                    } else {
                        "cluster"
                    }
                    .to_owned(),
                    policy_background_mode: policy.background,
                    policy_name: policy.name.to_owned(),
                    policy_namespace: policy.namespace.unwrap_or("-").to_owned(),
                    resource_kind: record.request.kind.kind.clone(),
                    resource_namespace: record.request.namespace.clone(),
                    resource_request_operation: record.operation.as_str().to_owned(),
                    rule_name: rule.name.clone(),
                    rule_result: rule.status.as_str().to_owned(),
                    rule_type: record.rule_type.to_owned(),
                    rule_execution_cause: "admission_request".to_owned(),
                },
                elapsed,
            );
        }
    }
}

/// What the metrics of a policy's rule results say about the policy and the request.
pub(crate) struct RuleRecord<'a> {
    /// The policy.
    pub policy: ReportedPolicy<'a>,
    /// Whether its failures can deny requests.
    pub enforcing: bool,
    /// The request.
    pub request: &'a AdmissionRequest,
    /// The request's operation.
    pub operation: AdmissionOperation,
    /// `validate` or `mutate`.
    pub rule_type: &'a str,
}

fn field<'a>(resource: &'a Value, pointer: &str) -> &'a str {
    resource
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether a failing rule of `policy` can block requests: some validate rule, or the policy,
/// enforces (upstream keeps such policies in its `ValidateEnforce` cache; the others are only
/// audited).
fn is_enforcing(policy: &LoadedPolicy) -> bool {
    let enforce =
        |action: Option<ValidationFailureAction>| action == Some(ValidationFailureAction::Enforce);
    let overrides_enforce = |overrides: &[ValidationFailureActionOverride]| {
        overrides.iter().any(|entry| enforce(entry.action))
    };
    enforce(policy.spec.validation_failure_action)
        || overrides_enforce(&policy.spec.validation_failure_action_overrides)
        || policy
            .rules
            .iter()
            .filter_map(|rule| rule.validate.as_ref())
            .any(|validation| {
                enforce(validation.failure_action)
                    || overrides_enforce(&validation.failure_action_overrides)
            })
}

/// The failure action of rule `rule_name` of `policy` for a resource in `namespace` (upstream's
/// `ResolveValidationFailureAction`): the rule's overrides, its `failureAction`, the policy's
/// overrides, then the policy's `validationFailureAction`.
fn rule_action(
    policy: &LoadedPolicy,
    rule_name: &str,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> ValidationFailureAction {
    let chosen = |overrides: &[ValidationFailureActionOverride]| {
        overrides
            .iter()
            .find(|entry| override_applies(entry, namespace, namespace_labels))
            .and_then(|entry| entry.action)
    };
    let validation = policy
        .rules
        .iter()
        .find(|rule| rule.name == rule_name)
        .and_then(|rule| rule.validate.as_ref());
    validation
        .and_then(|validation| {
            chosen(&validation.failure_action_overrides).or(validation.failure_action)
        })
        .or_else(|| chosen(&policy.spec.validation_failure_action_overrides))
        .or(policy.spec.validation_failure_action)
        .unwrap_or_default()
}

/// Whether a failure action override applies to a resource in `namespace`: one of its namespace
/// wildcards matches and its namespace selector (if any) selects the namespace's labels.
fn override_applies(
    entry: &ValidationFailureActionOverride,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> bool {
    let selected = entry
        .namespace_selector
        .as_ref()
        .is_none_or(|selector| selects(selector, namespace_labels));
    if entry.namespaces.is_empty() {
        return entry.namespace_selector.is_some() && selected;
    }
    selected
        && entry
            .namespaces
            .iter()
            .any(|pattern| wildcard::matches(pattern, namespace))
}

/// A plain label selector match (`matchLabels` and the four `matchExpressions` operators).
fn selects(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_match = selector
        .match_expressions
        .iter()
        .flatten()
        .all(|expression| {
            let values = expression.values.as_deref().unwrap_or_default();
            let value = labels.get(&expression.key);
            match expression.operator.as_str() {
                "In" => value.is_some_and(|value| values.contains(value)),
                "NotIn" => value.is_none_or(|value| !values.contains(value)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        });
    labels_match && expressions_match
}
