//! The one place where the CLI calls the policy engine, and how it builds the simulated
//! admission requests.
use std::collections::BTreeMap;
use std::sync::Arc;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::mutate::Mutation;
use kyverno_policy_core::engine::{Environment, GenerateResponse, LoadedPolicy, MutateResponse};
use kyverno_policy_core::request::{GroupVersionKind, RequestInfo, ResourceRequest};
use kyverno_policy_core::response::PolicyResponse;
use serde_json::Value;

use crate::values::VariableSet;

/// A string field of a resource, `""` when absent.
pub fn field<'a>(resource: &'a Value, pointer: &str) -> &'a str {
    resource
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The group of an `apiVersion` (`""` for the core group).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// The admission request simulating `operation` on `resource`, as upstream's CLI builds it:
/// UPDATE and DELETE requests carry the resource as their old object too, and a subresource
/// kind declared in the values is requested through its parent.
pub fn admission_request(
    resource: &Arc<Value>,
    operation: AdmissionOperation,
    request_info: &Arc<RequestInfo>,
    namespace_labels: Arc<BTreeMap<String, String>>,
    variables: &VariableSet,
) -> ResourceRequest {
    let mut request = ResourceRequest::new(Arc::clone(resource))
        .with_operation(operation)
        .with_request_info(Arc::clone(request_info))
        .with_namespace_labels(namespace_labels);
    if matches!(
        operation,
        AdmissionOperation::Update | AdmissionOperation::Delete
    ) {
        request = request.with_old_resource(Arc::clone(resource));
    }
    let gvk = GroupVersionKind::from_api_version(
        field(resource, "/apiVersion"),
        field(resource, "/kind"),
    );
    if let Some(subresource) = variables.subresource_of(&gvk) {
        request = request.with_kind(subresource.parent, subresource.subresource);
    }
    request
}

/// Why a policy could not be evaluated at all (rule-level problems are rule errors instead).
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// The policy has rules of a kind the engine does not evaluate yet.
    #[error("{0} rules are not supported by the engine yet")]
    Unsupported(&'static str),
}

/// The first kind of rule of `policy` that the engine cannot evaluate yet, if any.
fn unsupported_rules(policy: &LoadedPolicy) -> Option<&'static str> {
    policy
        .rules
        .iter()
        .find_map(|rule| (!rule.verify_images.is_empty()).then_some("verifyImages"))
}

/// Whether `policy` has mutate rules (upstream's `HasMutate`): its mutate pass runs then.
pub fn has_mutate(policy: &LoadedPolicy) -> bool {
    policy.rules.iter().any(|rule| {
        rule.mutate
            .as_ref()
            .is_some_and(|mutation| *mutation != Mutation::default())
    })
}

/// Whether `policy` has generate rules: its generate pass runs then.
pub fn has_generate(policy: &LoadedPolicy) -> bool {
    policy.rules.iter().any(|rule| rule.generate.is_some())
}

/// Whether the validate pass evaluates `policy`: it has rules other than mutate rules
/// (upstream skips it for policies without validate or verifyImages checks).
pub fn has_validate_pass(policy: &LoadedPolicy) -> bool {
    !has_mutate(policy)
        || policy
            .rules
            .iter()
            .any(|rule| rule.validate.is_some() || !rule.verify_images.is_empty())
}

/// Applies the mutate rules of `policy` to `request`.
pub fn mutate(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    environment: &Environment<'_>,
) -> Result<MutateResponse, EvaluateError> {
    if let Some(kind) = unsupported_rules(policy) {
        return Err(EvaluateError::Unsupported(kind));
    }
    Ok(kyverno_policy_core::engine::mutate(
        policy,
        request,
        environment,
    ))
}

/// Applies the validate rules of `policy` to `request`.
pub fn validate(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    environment: &Environment<'_>,
) -> Result<PolicyResponse, EvaluateError> {
    if let Some(kind) = unsupported_rules(policy) {
        return Err(EvaluateError::Unsupported(kind));
    }
    Ok(kyverno_policy_core::engine::validate(
        policy,
        request,
        environment,
    ))
}

/// Applies the generate rules of `policy` to the trigger `request`.
pub fn generate(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    environment: &Environment<'_>,
) -> Result<GenerateResponse, EvaluateError> {
    if let Some(kind) = unsupported_rules(policy) {
        return Err(EvaluateError::Unsupported(kind));
    }
    Ok(kyverno_policy_core::engine::generate(
        policy,
        request,
        environment,
    ))
}
