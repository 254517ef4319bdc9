//! ValidatingPolicy and NamespacedValidatingPolicy (`policies.kyverno.io`): compiled once, then
//! evaluated per request as upstream's engine does (`pkg/cel/policies/vpol`).
//!
//! A policy evaluates Kubernetes resources (`evaluation.mode: Kubernetes`, the default) or
//! arbitrary JSON payloads (`JSON`). For a resource, `matchConstraints` must select the request;
//! a payload is not matched, and neither is a resource given to a JSON policy (it is evaluated as
//! a payload). The policy's pod controller variants ([`super::autogen`]) are evaluated like
//! separate policies of the same name. Then, in order:
//! 1. PolicyExceptions naming the policy: a matching one reports the request as skipped
//!    ([`super::exceptions`]);
//! 2. `matchConditions`: a false one reports a skip;
//! 3. `validations`, in order: the first one that fails reports `fail` with its message
//!    (`messageExpression`, else `message`, else `CEL expression validation failed at index N`),
//!    one that errors (or gives no bool) reports `error`; when all hold, `pass`.
//!
//! Variables are evaluated lazily and at most once. Errors of `matchConditions` (and of exception
//! conditions) are errors of the evaluation unless `failurePolicy` is `Ignore`, which turns them
//! into "does not apply".
use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::MatchResources;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_cel::cel::Value as CelValue;
use kyverno_api::kyverno::v1::policy::FailurePolicy;
use kyverno_api::policies::common::{EvaluationConfiguration, ValidationAction};
use kyverno_api::policies::exception::PolicyException;
use kyverno_api::policies::validating::{NamespacedValidatingPolicy, Spec, ValidatingPolicy};
use serde_json::Value;

use super::activation::{self, Activation, NAMESPACE_OBJECT, OBJECT, OLD_OBJECT, REQUEST};
use super::authz::AuthorizationResponse;
use super::autogen;
use super::common::{compile_audit_annotations, compile_variables, policy_evaluator};
use super::exceptions::{CompiledException, EXCEPTIONS, ExceptionCompileError, MatchedExceptions};
use super::matching::{self, MatchRequest};
use super::resources::GroupVersionResource;
use super::validations::{
    AuditAnnotationOutcome, CompiledAuditAnnotation, CompiledMatchConditions, MatchOutcome,
};
use super::variables::{CompileError, CompiledVariables, Evaluator, Expression};
use crate::cel::{self, libs::Libraries};
use crate::engine::ContextProvider;
use crate::request::ResourceRequest;
use crate::response::{PolicyResponse, RuleResponse, RuleStatus, RuleType};

/// Name of the rule reported for a policy's validations.
const VALIDATION_RULE: &str = "validation";

/// What a policy evaluates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvaluationMode {
    /// Kubernetes resources in admission requests (the default).
    Kubernetes,
    /// Arbitrary JSON payloads, bound as `object`.
    Json,
    /// Another mode (`Envoy`, `HTTP`: Kyverno's authorization extensions).
    Other(String),
}

impl EvaluationMode {
    fn of(evaluation: Option<&EvaluationConfiguration>) -> Self {
        match evaluation.and_then(|e| e.mode.as_deref()) {
            None | Some("Kubernetes") => Self::Kubernetes,
            Some("JSON") => Self::Json,
            Some(other) => Self::Other(other.to_owned()),
        }
    }
}

/// A policy that does not compile.
#[derive(Debug, thiserror::Error)]
pub enum PolicyCompileError {
    /// An expression of the policy does not compile.
    #[error("{kind} {policy}: {source}")]
    Expression {
        /// The policy's kind.
        kind: &'static str,
        /// The policy's name.
        policy: String,
        /// Which expression, and why.
        #[source]
        source: CompileError,
    },
    /// A condition of an exception naming the policy does not compile.
    #[error("{kind} {policy}: {source}")]
    Exception {
        /// The policy's kind.
        kind: &'static str,
        /// The policy's name.
        policy: String,
        /// Which exception, and why.
        #[source]
        source: ExceptionCompileError,
    },
}

/// A ValidatingPolicy or NamespacedValidatingPolicy, compiled.
#[derive(Debug)]
pub struct CompiledValidatingPolicy {
    kind: &'static str,
    name: String,
    namespace: Option<String>,
    mode: EvaluationMode,
    validation_actions: Vec<ValidationAction>,
    background: bool,
    admission: bool,
    exceptions: Vec<CompiledException>,
    /// The policy itself, then its autogen variants (`cronjobs`, `defaults`).
    variants: Vec<CompiledVariant>,
}

/// What every variant of a policy evaluates with.
struct EvaluationContext<'a> {
    exceptions: &'a [CompiledException],
    libraries: Option<&'a Libraries>,
}

/// The policy or one of its autogen variants.
#[derive(Debug)]
struct CompiledVariant {
    match_constraints: Option<MatchResources>,
    ignore_failures: bool,
    match_conditions: CompiledMatchConditions,
    variables: CompiledVariables,
    validations: Vec<CompiledVpolValidation>,
    audit_annotations: Vec<CompiledAuditAnnotation>,
}

/// A validation with Kyverno's message rules (not Kubernetes').
#[derive(Debug)]
struct CompiledVpolValidation {
    expression: Expression,
    message: Option<String>,
    message_expression: Option<Expression>,
}

impl CompiledValidatingPolicy {
    /// Compiles a ValidatingPolicy with the exceptions (among `exceptions`) that name it.
    pub fn compile(
        policy: &ValidatingPolicy,
        exceptions: &[Arc<PolicyException>],
    ) -> Result<Self, PolicyCompileError> {
        Self::compile_spec(
            "ValidatingPolicy",
            &policy.metadata,
            &policy.spec,
            exceptions,
        )
    }

    /// Compiles a NamespacedValidatingPolicy, which applies only in its namespace.
    pub fn compile_namespaced(
        policy: &NamespacedValidatingPolicy,
        exceptions: &[Arc<PolicyException>],
    ) -> Result<Self, PolicyCompileError> {
        Self::compile_spec(
            "NamespacedValidatingPolicy",
            &policy.metadata,
            &policy.spec,
            exceptions,
        )
    }

    fn compile_spec(
        kind: &'static str,
        metadata: &ObjectMeta,
        spec: &Spec,
        exceptions: &[Arc<PolicyException>],
    ) -> Result<Self, PolicyCompileError> {
        let name = metadata.name.clone().unwrap_or_default();
        let expression_error = |source| PolicyCompileError::Expression {
            kind,
            policy: name.clone(),
            source,
        };
        let mut variants = vec![CompiledVariant::compile(spec).map_err(expression_error)?];
        for variant in autogen::variants(spec).into_values() {
            variants.push(CompiledVariant::compile(&variant.spec).map_err(expression_error)?);
        }
        let exceptions =
            CompiledException::compile_for(kind, &name, exceptions).map_err(|source| {
                PolicyCompileError::Exception {
                    kind,
                    policy: name.clone(),
                    source,
                }
            })?;
        let mut validation_actions = spec.validation_actions.clone();
        if validation_actions.is_empty() {
            validation_actions.push(ValidationAction::Deny);
        }
        Ok(Self {
            kind,
            namespace: (kind == "NamespacedValidatingPolicy")
                .then(|| metadata.namespace.clone())
                .flatten()
                .filter(|namespace| !namespace.is_empty()),
            name,
            mode: EvaluationMode::of(spec.evaluation.as_ref()),
            validation_actions,
            background: EvaluationConfiguration::background_enabled(spec.evaluation.as_ref()),
            admission: EvaluationConfiguration::admission_enabled(spec.evaluation.as_ref()),
            exceptions,
            variants,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ValidatingPolicy` or `NamespacedValidatingPolicy`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// What the policy evaluates.
    pub fn mode(&self) -> &EvaluationMode {
        &self.mode
    }

    /// What a failed validation does (`Deny` when the policy sets none).
    pub fn validation_actions(&self) -> &[ValidationAction] {
        &self.validation_actions
    }

    /// Whether background scans apply the policy (`evaluation.background`).
    pub fn background(&self) -> bool {
        self.background
    }

    /// Whether admission requests are evaluated (`evaluation.admission`).
    pub fn admission(&self) -> bool {
        self.admission
    }

    /// Evaluates the policy and its autogen variants on `input`: one response per variant that
    /// applies, as upstream's CLI reports them. A variant that does not select a resource
    /// reports nothing when its constraints are a single plain resource rule and an empty
    /// response otherwise (upstream's CLI lists such resources as excluded). A Kubernetes
    /// policy does not apply to payloads; a JSON policy evaluates a resource as a payload;
    /// the authorization modes apply to neither (see [`Self::evaluate_authorization`]).
    pub fn evaluate(&self, input: &ValidatingInput<'_>) -> Vec<PolicyResponse> {
        let mut responses = Vec::new();
        let libraries = input.libraries(self.namespace.as_deref());
        let context = EvaluationContext {
            exceptions: &self.exceptions,
            libraries: libraries.as_deref(),
        };
        for variant in &self.variants {
            let rules = match (&self.mode, &input.admission) {
                (EvaluationMode::Kubernetes, Some(admission)) => {
                    match self.selects(variant, admission) {
                        Ok(true) => variant.evaluate(&input.activation, &context),
                        Ok(false)
                            if matching::is_plain_resource_match(
                                variant.match_constraints.as_ref(),
                            ) =>
                        {
                            continue;
                        }
                        Ok(false) => Vec::new(),
                        Err(error) => vec![rule_error(
                            "match",
                            "failed to execute matching",
                            &error.to_string(),
                        )],
                    }
                }
                (EvaluationMode::Json, Some(_)) => {
                    variant.evaluate(input.payload_activation(), &context)
                }
                (EvaluationMode::Json, None) => variant.evaluate(&input.activation, &context),
                _ => return responses,
            };
            responses.push(PolicyResponse { rules });
        }
        responses
    }

    /// Evaluates a policy in an authorization mode (`Envoy`, `HTTP`) on a `CheckRequest`
    /// payload ([`super::authz`]): one rule named after the policy, `pass` (`request allowed`),
    /// `fail` (`request denied ...`), `skip` (`request does not match`) or `error`. `None` for
    /// the other modes and for resources.
    pub fn evaluate_authorization(&self, input: &ValidatingInput<'_>) -> Option<PolicyResponse> {
        let EvaluationMode::Other(mode) = &self.mode else {
            return None;
        };
        if input.admission.is_some() || !matches!(mode.as_str(), "Envoy" | "HTTP") {
            return None;
        }
        let variant = self.variants.first()?;
        let libraries = input.libraries(self.namespace.as_deref());
        let mut evaluator = variant.evaluator(&input.activation, libraries.as_deref());
        let (status, message) = variant.authorize(&mut evaluator);
        Some(PolicyResponse {
            rules: vec![RuleResponse {
                name: self.name.clone(),
                rule_type: RuleType::Validation,
                status,
                message,
            }],
        })
    }

    fn selects(
        &self,
        variant: &CompiledVariant,
        admission: &AdmissionInput<'_>,
    ) -> Result<bool, matching::MatchError> {
        if self
            .namespace
            .as_deref()
            .is_some_and(|namespace| namespace != admission.request.namespace)
        {
            return Ok(false);
        }
        match &variant.match_constraints {
            None => Ok(false),
            Some(constraints) => matching::matches(constraints, &admission.request),
        }
    }
}

impl CompiledVariant {
    fn compile(spec: &Spec) -> Result<Self, CompileError> {
        let variables = compile_variables(&spec.variables, "spec.variables")?;
        let match_conditions = CompiledMatchConditions::compile(
            &spec.match_conditions,
            &variables,
            "spec.matchConditions",
        )?;
        let validations = spec
            .validations
            .iter()
            .enumerate()
            .map(|(index, validation)| {
                let path = format!("spec.validations[{index}]");
                Ok(CompiledVpolValidation {
                    expression: Expression::compile(
                        &validation.expression,
                        &variables,
                        &format!("{path}.expression"),
                    )?,
                    message: validation.message.clone(),
                    message_expression: validation
                        .message_expression
                        .as_deref()
                        .filter(|source| !source.is_empty())
                        .map(|source| {
                            Expression::compile(
                                source,
                                &variables,
                                &format!("{path}.messageExpression"),
                            )
                        })
                        .transpose()?,
                })
            })
            .collect::<Result<_, CompileError>>()?;
        let audit_annotations = compile_audit_annotations(
            &spec.audit_annotations,
            &variables,
            "spec.auditAnnotations",
        )?;
        Ok(Self {
            match_constraints: spec.match_constraints.clone(),
            ignore_failures: spec.failure_policy == Some(FailurePolicy::Ignore),
            match_conditions,
            variables,
            validations,
            audit_annotations,
        })
    }

    /// The rules reported for a request this variant applies to (upstream `evaluateWithData`
    /// and `handlePolicy`).
    fn evaluate(
        &self,
        activation: &Activation,
        context: &EvaluationContext<'_>,
    ) -> Vec<RuleResponse> {
        let mut evaluator = self.evaluator(activation, context.libraries);
        let matched = match MatchedExceptions::evaluate(
            context.exceptions,
            &mut evaluator,
            self.ignore_failures,
        ) {
            Ok(matched) => matched,
            Err(error) => return vec![load_error(&error)],
        };
        if matched.exempts() {
            return vec![matched.response(RuleType::Validation)];
        }
        evaluator.bind(EXCEPTIONS, matched.variable());
        match self.match_conditions.evaluate(&mut evaluator) {
            MatchOutcome::Matched => {}
            MatchOutcome::Error(_) if self.ignore_failures => return vec![not_matched()],
            MatchOutcome::Error(error) => return vec![load_error(&error)],
            MatchOutcome::NotMatched { .. } => return vec![not_matched()],
        }
        for (index, validation) in self.validations.iter().enumerate() {
            match evaluator.evaluate(&validation.expression) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => {
                    let message = validation.failure_message(&mut evaluator, index);
                    if let Err(error) = self.audit_annotations(&mut evaluator) {
                        return vec![load_error(&error)];
                    }
                    return vec![rule(RuleStatus::Fail, message)];
                }
                Ok(other) => {
                    let error = format!(
                        "type conversion error from '{}' to 'bool'",
                        cel::type_name(&other)
                    );
                    return vec![rule_error(VALIDATION_RULE, "error", &error)];
                }
                Err(error) => return vec![rule_error(VALIDATION_RULE, "error", &error.cause)],
            }
        }
        if let Err(error) = self.audit_annotations(&mut evaluator) {
            return vec![load_error(&error)];
        }
        vec![rule(RuleStatus::Pass, "success".to_owned())]
    }

    /// An evaluator over `activation` with this variant's variables and the libraries bound.
    fn evaluator<'a>(
        &'a self,
        activation: &'a Activation,
        libraries: Option<&Libraries>,
    ) -> Evaluator<'a> {
        policy_evaluator(activation, &self.variables, libraries)
    }

    /// The first response a validation gives, as upstream's authz engine reads it.
    fn authorize(&self, evaluator: &mut Evaluator<'_>) -> (RuleStatus, String) {
        match self.match_conditions.evaluate(evaluator) {
            MatchOutcome::Matched => {}
            MatchOutcome::NotMatched { .. } => {
                return (RuleStatus::Skip, "request does not match".to_owned());
            }
            MatchOutcome::Error(error) => return (RuleStatus::Error, error),
        }
        for validation in &self.validations {
            match evaluator.evaluate(&validation.expression) {
                Ok(CelValue::Null) => {}
                Ok(value) => {
                    return match AuthorizationResponse::of(&value) {
                        Some(response) => match response.outcome() {
                            (true, message) => (RuleStatus::Pass, message),
                            (false, message) => (RuleStatus::Fail, message),
                        },
                        None => (
                            RuleStatus::Error,
                            format!(
                                "expected an authorization response, got {}",
                                cel::type_name(&value)
                            ),
                        ),
                    };
                }
                Err(error) => return (RuleStatus::Error, error.to_string()),
            }
        }
        (RuleStatus::Skip, "request does not match".to_owned())
    }

    /// Evaluates the audit annotations; only their errors matter to the result.
    fn audit_annotations(&self, evaluator: &mut Evaluator<'_>) -> Result<(), String> {
        for annotation in &self.audit_annotations {
            if let AuditAnnotationOutcome::Error(error) = annotation.evaluate(evaluator) {
                return Err(format!(
                    "failed to evaluate auditAnnotation '{}': {error}",
                    annotation.key()
                ));
            }
        }
        Ok(())
    }
}

impl CompiledVpolValidation {
    /// Upstream's message for a failed validation: the `messageExpression` result (or why it
    /// could not be had), else `message`, else a default naming the validation's index.
    fn failure_message(&self, evaluator: &mut Evaluator<'_>, index: usize) -> String {
        let message = match &self.message_expression {
            Some(expression) => match evaluator.evaluate(expression) {
                Ok(CelValue::String(message)) => message.as_ref().clone(),
                Ok(other) => format!(
                    "failed to convert message expression to string: type conversion error from '{}' to 'string'",
                    cel::type_name(&other)
                ),
                Err(error) => {
                    format!("failed to evaluate message expression: {}", error.cause)
                }
            },
            None => self.message.clone().unwrap_or_default(),
        };
        if message.is_empty() {
            format!("CEL expression validation failed at index {index}")
        } else {
            message
        }
    }
}

fn rule(status: RuleStatus, message: String) -> RuleResponse {
    RuleResponse {
        name: VALIDATION_RULE.to_owned(),
        rule_type: RuleType::Validation,
        status,
        message,
    }
}

/// Upstream `RuleError(name, Validation, message, err)`.
fn rule_error(name: &str, message: &str, error: &str) -> RuleResponse {
    RuleResponse {
        name: name.to_owned(),
        rule_type: RuleType::Validation,
        status: RuleStatus::Error,
        message: format!("{message}: {error}"),
    }
}

/// The error upstream reports when exceptions, match conditions or audit annotations fail.
fn load_error(error: &str) -> RuleResponse {
    rule_error("evaluation", "failed to load context", error)
}

/// The skip reported when a match condition is false (upstream names no rule).
fn not_matched() -> RuleResponse {
    RuleResponse {
        name: String::new(),
        rule_type: RuleType::Validation,
        status: RuleStatus::Skip,
        message: "skip".to_owned(),
    }
}

/// What ValidatingPolicies are evaluated on: a resource of an admission request (or background
/// scan), or a JSON payload. Built once and shared by every policy.
pub struct ValidatingInput<'a> {
    activation: Activation,
    admission: Option<AdmissionInput<'a>>,
    /// Where Kyverno's libraries (`resource`, `globalContext`, `http`, `image`) read, with the
    /// libraries of cluster-wide policies.
    provider: Option<(Arc<dyn ContextProvider>, Libraries)>,
}

impl std::fmt::Debug for ValidatingInput<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ValidatingInput")
            .field("admission", &self.admission)
            .field("provider", &self.provider.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct AdmissionInput<'a> {
    request: MatchRequest<'a>,
    resource: &'a Value,
    payload: OnceCell<Activation>,
}

impl<'a> ValidatingInput<'a> {
    /// A resource of an admission request for the endpoint `resource`. `namespace_object` is the
    /// request namespace's Namespace when known (upstream's CLI takes it from the values file);
    /// without it `namespaceObject` is null and namespace selectors see only the
    /// `kubernetes.io/metadata.name` label.
    pub fn resource(
        request: &'a ResourceRequest,
        resource: &'a GroupVersionResource,
        namespace_object: Option<&'a Value>,
    ) -> Self {
        let (object, old_object) = activation::objects(request);
        let to_cel =
            |value: Option<&Arc<Value>>| value.map_or(CelValue::Null, |v| cel::from_json(v));
        let namespaced = !activation::request_namespace(request).is_empty();
        let activation = Activation::from_values([
            (OBJECT, to_cel(object)),
            (OLD_OBJECT, to_cel(old_object)),
            (
                REQUEST,
                cel::from_json(&activation::admission_request(request, resource)),
            ),
            (
                NAMESPACE_OBJECT,
                namespace_object
                    .filter(|_| namespaced)
                    .map_or(CelValue::Null, cel::from_json),
            ),
        ]);
        Self {
            activation,
            admission: Some(AdmissionInput {
                request: MatchRequest::from_request(request, resource, namespace_object),
                resource: request.resource(),
                payload: OnceCell::new(),
            }),
            provider: None,
        }
    }

    /// A JSON payload, bound as `object` (`oldObject`, `request` and `namespaceObject` are null).
    pub fn payload(payload: &Value) -> Self {
        Self {
            activation: payload_activation(payload),
            admission: None,
            provider: None,
        }
    }

    /// Makes Kyverno's libraries read through `provider` (without one, expressions using them
    /// fail with an undeclared reference).
    pub fn with_provider(mut self, provider: Arc<dyn ContextProvider>) -> Self {
        let libraries = Libraries::new(Arc::clone(&provider));
        self.provider = Some((provider, libraries));
        self
    }

    /// The libraries for a policy: working in `namespace` for a namespaced policy.
    fn libraries(&self, namespace: Option<&str>) -> Option<Cow<'_, Libraries>> {
        let (provider, libraries) = self.provider.as_ref()?;
        Some(match namespace {
            Some(namespace) => Cow::Owned(Libraries::namespaced(Arc::clone(provider), namespace)),
            None => Cow::Borrowed(libraries),
        })
    }

    /// The resource seen as a payload, for JSON policies.
    fn payload_activation(&self) -> &Activation {
        match &self.admission {
            Some(admission) => admission
                .payload
                .get_or_init(|| payload_activation(admission.resource)),
            None => &self.activation,
        }
    }
}

fn payload_activation(payload: &Value) -> Activation {
    Activation::from_values([
        (OBJECT, cel::from_json(payload)),
        (OLD_OBJECT, CelValue::Null),
        (REQUEST, CelValue::Null),
        (NAMESPACE_OBJECT, CelValue::Null),
    ])
}

#[cfg(test)]
mod tests {
    use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
    use serde_json::json;

    use super::*;
    use crate::engine::{Lookup, ProviderError};

    fn policy(spec: Value) -> ValidatingPolicy {
        serde_json::from_value(json!({
            "apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
            "metadata": {"name": "check"}, "spec": spec
        }))
        .expect("policy")
    }

    fn compile(spec: Value) -> CompiledValidatingPolicy {
        CompiledValidatingPolicy::compile(&policy(spec), &[]).expect("compiles")
    }

    fn pods_spec(validations: Value) -> Value {
        json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
            "validations": validations
        })
    }

    fn pod(labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "prod", "labels": labels},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    }

    fn pods() -> GroupVersionResource {
        GroupVersionResource::new("", "v1", "pods")
    }

    /// The rules of each non-empty response of `policy` on `resource` (a CREATE).
    fn rules(
        policy: &CompiledValidatingPolicy,
        resource: Value,
    ) -> Vec<Vec<(String, RuleStatus, String)>> {
        let mut summary = all_rules(policy, resource);
        summary.retain(|rules| !rules.is_empty());
        summary
    }

    /// The rules of each response of `policy` on `resource` (a CREATE).
    fn all_rules(
        policy: &CompiledValidatingPolicy,
        resource: Value,
    ) -> Vec<Vec<(String, RuleStatus, String)>> {
        let gvk = crate::request::GroupVersionKind::from_api_version(
            resource["apiVersion"].as_str().unwrap_or_default(),
            resource["kind"].as_str().unwrap_or_default(),
        );
        let gvr = super::super::resources::ResourceTable::builtin()
            .mapping(&gvk)
            .map_or_else(pods, |mapping| mapping.resource);
        let request = ResourceRequest::new(resource).with_operation(AdmissionOperation::Create);
        let input = ValidatingInput::resource(&request, &gvr, None);
        summarize(policy.evaluate(&input))
    }

    fn summarize(responses: Vec<PolicyResponse>) -> Vec<Vec<(String, RuleStatus, String)>> {
        responses
            .into_iter()
            .map(|response| {
                response
                    .rules
                    .into_iter()
                    .map(|rule| (rule.name, rule.status, rule.message))
                    .collect()
            })
            .collect()
    }

    fn one(
        name: &str,
        status: RuleStatus,
        message: &str,
    ) -> Vec<Vec<(String, RuleStatus, String)>> {
        vec![vec![(name.to_owned(), status, message.to_owned())]]
    }

    #[test]
    fn validations_pass_or_fail_with_upstream_messages() {
        let policy = compile(pods_spec(json!([
            {"expression": "has(object.metadata.labels.app)", "message": "app label required"}
        ])));
        assert_eq!(
            rules(&policy, pod(json!({"app": "web"}))),
            one("validation", RuleStatus::Pass, "success")
        );
        assert_eq!(
            rules(&policy, pod(json!({}))),
            one("validation", RuleStatus::Fail, "app label required")
        );
        let policy = compile(pods_spec(json!([
            {"expression": "true"},
            {"expression": "false", "messageExpression": "'pod ' + object.metadata.name",
             "message": "ignored"}
        ])));
        assert_eq!(
            rules(&policy, pod(json!({}))),
            one("validation", RuleStatus::Fail, "pod web")
        );
        let policy = compile(pods_spec(
            json!([{"expression": "true"}, {"expression": "false"}]),
        ));
        assert_eq!(
            rules(&policy, pod(json!({}))),
            one(
                "validation",
                RuleStatus::Fail,
                "CEL expression validation failed at index 1"
            )
        );
        let policy = compile(pods_spec(json!([
            {"expression": "false", "messageExpression": "object.missing"},
        ])));
        let summary = rules(&policy, pod(json!({})));
        assert_eq!(summary[0][0].1, RuleStatus::Fail);
        assert!(
            summary[0][0]
                .2
                .starts_with("failed to evaluate message expression: "),
            "{summary:?}"
        );
        let policy = compile(pods_spec(json!([
            {"expression": "false", "messageExpression": "1"},
        ])));
        assert!(
            rules(&policy, pod(json!({})))[0][0]
                .2
                .starts_with("failed to convert message expression to string")
        );
    }

    #[test]
    fn evaluation_errors_and_non_bool_results_are_errors() {
        let policy = compile(pods_spec(
            json!([{"expression": "object.spec.missing.field == 1"}]),
        ));
        let summary = rules(&policy, pod(json!({})));
        assert_eq!(summary[0][0].0, "validation");
        assert_eq!(summary[0][0].1, RuleStatus::Error);
        assert!(summary[0][0].2.starts_with("error: "), "{summary:?}");
        let policy = compile(pods_spec(json!([{"expression": "'text'"}])));
        assert_eq!(
            rules(&policy, pod(json!({}))),
            one(
                "validation",
                RuleStatus::Error,
                "error: type conversion error from 'string' to 'bool'"
            )
        );
    }

    #[test]
    fn match_conditions_skip_or_error_by_failure_policy() {
        let mut spec = pods_spec(json!([{"expression": "false"}]));
        spec["matchConditions"] =
            json!([{"name": "labelled", "expression": "has(object.metadata.labels.app)"}]);
        let policy = compile(spec.clone());
        assert_eq!(
            rules(&policy, pod(json!({}))),
            one("", RuleStatus::Skip, "skip")
        );
        spec["matchConditions"] =
            json!([{"name": "broken", "expression": "object.metadata.labels.app == 'x'"}]);
        let summary = rules(&compile(spec.clone()), pod(json!({})));
        assert_eq!(summary[0][0].0, "evaluation");
        assert_eq!(summary[0][0].1, RuleStatus::Error);
        assert!(summary[0][0].2.starts_with("failed to load context: "));
        spec["failurePolicy"] = json!("Ignore");
        assert_eq!(
            rules(&compile(spec), pod(json!({}))),
            one("", RuleStatus::Skip, "skip")
        );
    }

    #[test]
    fn variables_are_lazy_and_shared() {
        let mut spec = pods_spec(json!([
            {"expression": "variables.image.startsWith('nginx')", "messageExpression": "variables.image"}
        ]));
        spec["variables"] = json!([
            {"name": "broken", "expression": "object.missing.field"},
            {"name": "image", "expression": "object.spec.containers[0].image"}
        ]);
        let policy = compile(spec);
        assert_eq!(
            rules(&policy, pod(json!({}))),
            one("validation", RuleStatus::Pass, "success")
        );
    }

    #[test]
    fn unmatched_resources_report_nothing_or_an_empty_response() {
        let policy = compile(pods_spec(json!([{"expression": "true"}])));
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "prod"}});
        // The `defaults` autogen variant has two resource rules: not plain, an empty response.
        assert_eq!(all_rules(&policy, service.clone()), vec![Vec::new()]);
        assert_eq!(all_rules(&policy, pod(json!({})))[1], Vec::new());
        let mut spec = pods_spec(json!([{"expression": "true"}]));
        spec["matchConstraints"]["objectSelector"] = json!({"matchLabels": {"app": "web"}});
        let selected = compile(spec);
        assert_eq!(
            all_rules(&selected, pod(json!({"app": "db"}))),
            vec![Vec::new()]
        );
        assert_eq!(all_rules(&selected, service), vec![Vec::new()]);
        assert_eq!(
            rules(&selected, pod(json!({"app": "web"}))),
            one("validation", RuleStatus::Pass, "success")
        );
    }

    #[test]
    fn pod_controllers_are_checked_through_their_template() {
        let policy = compile(pods_spec(json!([{
            "expression": "object.spec.containers.all(c, c.image.startsWith('registry/'))",
            "messageExpression": "'bad image in ' + object.metadata.name"
        }])));
        let deployment = |image: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "prod"},
                   "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
        };
        assert_eq!(
            rules(&policy, deployment("registry/nginx")),
            one("validation", RuleStatus::Pass, "success")
        );
        assert_eq!(
            rules(&policy, deployment("nginx")),
            one("validation", RuleStatus::Fail, "bad image in web")
        );
        let cron_job = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "prod"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}}});
        assert_eq!(
            rules(&policy, cron_job),
            one("validation", RuleStatus::Fail, "bad image in nightly")
        );
    }

    #[test]
    fn json_policies_evaluate_payloads_and_resources_as_payloads() {
        let mut spec = json!({"validations": [{"expression": "object.data.value > 10", "message": "too small"}]});
        spec["evaluation"] = json!({"mode": "JSON"});
        let policy = compile(spec);
        assert_eq!(policy.mode(), &EvaluationMode::Json);
        let payload = json!({"data": {"value": 5}});
        assert_eq!(
            summarize(policy.evaluate(&ValidatingInput::payload(&payload))),
            one("validation", RuleStatus::Fail, "too small")
        );
        let resource = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"value": 50}});
        assert_eq!(
            rules(&policy, resource),
            one("validation", RuleStatus::Pass, "success")
        );
        let kubernetes = compile(pods_spec(json!([{"expression": "true"}])));
        assert!(
            kubernetes
                .evaluate(&ValidatingInput::payload(&payload))
                .is_empty()
        );
    }

    #[test]
    fn exceptions_skip_the_policy() {
        let exception: Arc<PolicyException> = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "allow-test", "namespace": "prod"},
                "spec": {"policyRefs": [{"name": "check", "kind": "ValidatingPolicy"}],
                         "matchConditions": [{"name": "n", "expression": "object.metadata.name == 'web'"}]}
            }))
            .expect("exception"),
        );
        let policy = CompiledValidatingPolicy::compile(
            &policy(pods_spec(json!([{"expression": "false"}]))),
            &[exception],
        )
        .expect("compiles");
        assert_eq!(
            rules(&policy, pod(json!({}))),
            one(
                "exception",
                RuleStatus::Skip,
                "rule is skipped due to policy exception: prod/allow-test"
            )
        );
    }

    #[test]
    fn namespace_object_is_null_unless_supplied() {
        let policy = compile(pods_spec(
            json!([{"expression": "namespaceObject == null"}]),
        ));
        assert_eq!(
            rules(&policy, pod(json!({}))),
            one("validation", RuleStatus::Pass, "success")
        );
        let policy = compile(pods_spec(json!([
            {"expression": "namespaceObject.metadata.labels.env == 'prod'"}
        ])));
        let request = ResourceRequest::new(pod(json!({})));
        let namespace = json!({"metadata": {"name": "prod", "labels": {"env": "prod"}}});
        let gvr = pods();
        let input = ValidatingInput::resource(&request, &gvr, Some(&namespace));
        assert_eq!(
            summarize(policy.evaluate(&input))[..1],
            one("validation", RuleStatus::Pass, "success")
        );
    }

    #[test]
    fn delete_requests_see_the_old_object() {
        let mut spec = pods_spec(
            json!([{"expression": "object == null && oldObject.metadata.name == 'web'"}]),
        );
        spec["matchConstraints"]["resourceRules"][0]["operations"] = json!(["DELETE"]);
        let policy = compile(spec);
        let request =
            ResourceRequest::new(pod(json!({}))).with_operation(AdmissionOperation::Delete);
        let gvr = pods();
        let input = ValidatingInput::resource(&request, &gvr, None);
        assert_eq!(
            summarize(policy.evaluate(&input))[..1],
            one("validation", RuleStatus::Pass, "success")
        );
        // A CREATE-only policy does not match a DELETE.
        let create_only = compile(pods_spec(json!([{"expression": "true"}])));
        assert!(
            create_only
                .evaluate(&input)
                .iter()
                .all(|r| r.rules.is_empty())
        );
    }

    /// Answers `resource.Get` with a ConfigMap holding the allowed registry.
    struct Registries;

    impl ContextProvider for Registries {
        fn config_map(&self, _: &str, _: &str) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Unavailable)
        }
        fn api_call(
            &self,
            _: &str,
            path: &str,
            _: Option<&Value>,
        ) -> Result<Lookup, ProviderError> {
            Ok(match path {
                "/api/v1/namespaces/prod/configmaps/registries" => {
                    Lookup::Found(json!({"data": {"allowed": "nginx"}}))
                }
                _ => Lookup::Unavailable,
            })
        }
        fn service_call(
            &self,
            _: &str,
            _: &str,
            _: Option<&Value>,
        ) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Unavailable)
        }
        fn global_context(&self, _: &str) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Unavailable)
        }
        fn image_data(&self, _: &str) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Unavailable)
        }
    }

    #[test]
    fn libraries_read_through_the_provider() {
        let mut spec = pods_spec(json!([
            {"expression": "object.spec.containers.all(c, c.image == variables.cm.data.allowed)"}
        ]));
        spec["variables"] = json!([
            {"name": "cm", "expression": "resource.Get('v1', 'configmaps', 'prod', 'registries')"}
        ]);
        let policy = compile(spec);
        let request = ResourceRequest::new(pod(json!({})));
        let gvr = pods();
        let without = ValidatingInput::resource(&request, &gvr, None);
        assert_eq!(
            summarize(policy.evaluate(&without))[0][0].1,
            RuleStatus::Error
        );
        let with =
            ValidatingInput::resource(&request, &gvr, None).with_provider(Arc::new(Registries));
        assert_eq!(
            summarize(policy.evaluate(&with))[..1],
            one("validation", RuleStatus::Pass, "success")
        );
    }

    #[test]
    fn authorization_modes_answer_with_the_first_response() {
        let mut spec = json!({
            "evaluation": {"mode": "Envoy"},
            "variables": [{"name": "path", "expression": "object.attributes.request.http.path"}],
            "validations": [
                {"expression": "variables.path == '/forbidden' ? envoy.Denied(403).Response() : null"},
                {"expression": "variables.path == '/open' ? envoy.Allowed().Response() : null"}
            ]
        });
        let policy = compile(spec.clone());
        let request = |path: &str| json!({"attributes": {"request": {"http": {"path": path}}}});
        let answer = |policy: &CompiledValidatingPolicy, payload: Value| {
            let input = ValidatingInput::payload(&payload);
            assert!(policy.evaluate(&input).is_empty());
            summarize(policy.evaluate_authorization(&input).into_iter().collect())
        };
        assert_eq!(
            answer(&policy, request("/forbidden")),
            one(
                "check",
                RuleStatus::Fail,
                "request denied with status code 403"
            )
        );
        assert_eq!(
            answer(&policy, request("/open")),
            one("check", RuleStatus::Pass, "request allowed")
        );
        assert_eq!(
            answer(&policy, request("/other")),
            one("check", RuleStatus::Skip, "request does not match")
        );
        spec["validations"] = json!([{"expression": "'text'"}]);
        assert_eq!(
            answer(&compile(spec), request("/x"))[0][0].1,
            RuleStatus::Error
        );
        let kubernetes = compile(pods_spec(json!([{"expression": "true"}])));
        assert!(
            kubernetes
                .evaluate_authorization(&ValidatingInput::payload(&request("/x")))
                .is_none()
        );
    }

    #[test]
    fn settings_and_compile_errors() {
        let mut spec = pods_spec(json!([{"expression": "true"}]));
        spec["evaluation"] = json!({"background": {"enabled": false}});
        let compiled = compile(spec);
        assert_eq!(compiled.validation_actions(), [ValidationAction::Deny]);
        assert!(!compiled.background());
        assert!(compiled.admission());
        let error = CompiledValidatingPolicy::compile(
            &policy(pods_spec(
                json!([{"expression": "true"}, {"expression": "object.("}]),
            )),
            &[],
        )
        .expect_err("does not compile")
        .to_string();
        assert!(
            error.starts_with(
                "ValidatingPolicy check: spec.validations[1].expression: compilation failed:"
            ),
            "{error}"
        );
    }
}
