//! Admission of Kyverno's own policies (`/policyvalidate`, `/policymutate`) and exceptions
//! (`/exceptionvalidate`): a policy the engine would not load is rejected with the path of the
//! offending field, as upstream's policy webhook does. The checks are those the CLI runs when it
//! loads policies: the types' shape (field path of the first field that does not fit), upstream's
//! policy checks ([`kyverno_policy_core::policy_check`]) and the compilation of expressions.
use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use kyverno_api::load::{Document, LoadError};
use kyverno_policy_core::engine::{LoadedPolicy, PolicyLoadError};
use kyverno_policy_core::policy_check::check_policy;
use kyverno_runtime::cel_policies::{CelKind, CelSource};
use serde::de::DeserializeOwned;

use crate::review::{AdmissionRequest, AdmissionResponse};

/// The API group of ClusterPolicies, Policies and PolicyExceptions.
const KYVERNO_GROUP: &str = "kyverno.io";
/// The API group of the CEL policy kinds.
const CEL_GROUP: &str = "policies.kyverno.io";

/// Answers a request of the policy validating webhook: a ClusterPolicy, Policy or CEL policy
/// that cannot be loaded is denied with why; other requests (and deletions) are admitted.
pub fn validate_policy(request: &AdmissionRequest) -> AdmissionResponse {
    match policy_problem(request) {
        Some(message) => AdmissionResponse::deny(&request.uid, message),
        None => AdmissionResponse::allow(&request.uid),
    }
}

/// Answers a request of the policy mutating webhook: as upstream since policies are defaulted by
/// their CRDs, admitted without a patch.
pub fn mutate_policy(request: &AdmissionRequest) -> AdmissionResponse {
    AdmissionResponse::allow(&request.uid)
}

/// Answers a request of the exception validating webhook: a PolicyException that does not have
/// the shape of its kind is denied with the path of the offending field.
pub fn validate_exception(request: &AdmissionRequest) -> AdmissionResponse {
    let Some(object) = written_object(request) else {
        return AdmissionResponse::allow(&request.uid);
    };
    let problem = match (request.kind.group.as_str(), request.kind.kind.as_str()) {
        (KYVERNO_GROUP, "PolicyException") => {
            decode::<kyverno_api::kyverno::v2::policy_exception::PolicyException>(object).err()
        }
        (CEL_GROUP, "PolicyException") => {
            decode::<kyverno_api::policies::exception::PolicyException>(object).err()
        }
        _ => None,
    };
    match problem {
        Some(message) => AdmissionResponse::deny(&request.uid, message),
        None => AdmissionResponse::allow(&request.uid),
    }
}

/// The object a CREATE or UPDATE writes.
fn written_object(request: &AdmissionRequest) -> Option<&serde_json::Value> {
    matches!(request.operation.as_str(), "CREATE" | "UPDATE")
        .then_some(request.object.as_ref())
        .flatten()
}

/// Decodes `object`; the error names the first field that does not fit.
fn decode<T: DeserializeOwned>(object: &serde_json::Value) -> Result<T, String> {
    let document = Document {
        source_name: String::new(),
        position: 1,
        value: object.clone(),
    };
    document.decode().map_err(|error| match error {
        LoadError::Field { path, message, .. } => format!("{path}: {message}"),
        other => other.to_string(),
    })
}

/// Why the policy of `request` cannot be loaded; `None` when it can (or is no policy).
fn policy_problem(request: &AdmissionRequest) -> Option<String> {
    let object = written_object(request)?;
    match (request.kind.group.as_str(), request.kind.kind.as_str()) {
        (KYVERNO_GROUP, "ClusterPolicy") => {
            let policy: ClusterPolicy = match decode(object) {
                Ok(policy) => policy,
                Err(message) => return Some(message),
            };
            let name = policy.metadata.name.clone().unwrap_or_default();
            first_issue("ClusterPolicy", &name, None, &policy.spec.0)
                .or_else(|| load_problem(LoadedPolicy::from_cluster_policy(policy)))
        }
        (KYVERNO_GROUP, "Policy") => {
            let policy: Policy = match decode(object) {
                Ok(policy) => policy,
                Err(message) => return Some(message),
            };
            let name = policy.metadata.name.clone().unwrap_or_default();
            let namespace = policy
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| request.namespace.clone());
            first_issue("Policy", &name, Some(&namespace), &policy.spec.0)
                .or_else(|| load_problem(LoadedPolicy::from_policy(policy)))
        }
        (CEL_GROUP, kind) => {
            let kind = CelKind::from_name(kind)?;
            match CelSource::decode(kind, object.clone()) {
                Ok(source) => source.compile(&[], None).err(),
                Err(_) => Some(cel_shape_problem(kind, object)),
            }
        }
        _ => None,
    }
}

/// The first problem upstream's checks find (upstream stops at the first), as
/// `path: message`.
fn first_issue(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    spec: &kyverno_api::kyverno::v1::policy::Spec,
) -> Option<String> {
    check_policy(kind, name, namespace, spec)
        .into_iter()
        .next()
        .map(|issue| issue.to_string())
}

fn load_problem(loaded: Result<LoadedPolicy, PolicyLoadError>) -> Option<String> {
    match loaded {
        Ok(_) => None,
        Err(PolicyLoadError::Invalid { path, message, .. }) => Some(format!("{path}: {message}")),
    }
}

/// The field path of a CEL policy that does not have the shape of its kind.
fn cel_shape_problem(kind: CelKind, object: &serde_json::Value) -> String {
    use kyverno_api::policies::{generating, image_validating, mutating, validating};
    let outcome = match kind {
        CelKind::ValidatingPolicy => decode::<validating::ValidatingPolicy>(object).err(),
        CelKind::NamespacedValidatingPolicy => {
            decode::<validating::NamespacedValidatingPolicy>(object).err()
        }
        CelKind::MutatingPolicy => decode::<mutating::MutatingPolicy>(object).err(),
        CelKind::NamespacedMutatingPolicy => {
            decode::<mutating::NamespacedMutatingPolicy>(object).err()
        }
        CelKind::ImageValidatingPolicy => {
            decode::<image_validating::ImageValidatingPolicy>(object).err()
        }
        CelKind::NamespacedImageValidatingPolicy => {
            decode::<image_validating::NamespacedImageValidatingPolicy>(object).err()
        }
        CelKind::GeneratingPolicy => decode::<generating::GeneratingPolicy>(object).err(),
        CelKind::NamespacedGeneratingPolicy => {
            decode::<generating::NamespacedGeneratingPolicy>(object).err()
        }
    };
    outcome.unwrap_or_else(|| format!("invalid {}", kind.name()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::{Value, json};

    use super::*;
    use crate::review::AdmissionReview;

    fn request(group: &str, kind: &str, object: Value) -> AdmissionRequest {
        AdmissionReview::parse(
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
                "uid": "u", "kind": {"group": group, "version": "v1", "kind": kind},
                "operation": "CREATE", "object": object}})
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn cluster_policy(rule: Value) -> Value {
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
            "spec": {"rules": [rule]}})
    }

    #[test]
    fn invalid_policies_are_denied_with_the_field_path() {
        let valid = cluster_policy(json!({"name": "r",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"pattern": {"metadata": {"labels": {"app": "?*"}}}}}));
        assert!(validate_policy(&request("kyverno.io", "ClusterPolicy", valid)).allowed);

        let bad_shape = cluster_policy(json!({"name": "r",
            "match": {"any": [{"resources": {"kinds": "Pod"}}]},
            "validate": {"pattern": {}}}));
        let answer = validate_policy(&request("kyverno.io", "ClusterPolicy", bad_shape));
        assert!(!answer.allowed);
        let message = answer.status.unwrap().message;
        assert!(
            message.starts_with("spec.rules[0].match.any[0].resources.kinds"),
            "{message}"
        );

        let bad_cel = cluster_policy(json!({"name": "r",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"cel": {"expressions": [{"expression": "object.metadata.name ==="}]}}}));
        let answer = validate_policy(&request("kyverno.io", "ClusterPolicy", bad_cel));
        let message = answer.status.unwrap().message;
        assert!(
            message.starts_with("spec.rules[0].validate.cel"),
            "{message}"
        );
    }

    #[test]
    fn cel_policies_and_exceptions_are_checked() {
        let vpol = |expression: &str| {
            json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
                "metadata": {"name": "v"}, "spec": {"validations": [{"expression": expression}]}})
        };
        let request_for = |object| request("policies.kyverno.io", "ValidatingPolicy", object);
        assert!(validate_policy(&request_for(vpol("true"))).allowed);
        let answer = validate_policy(&request_for(vpol("1 +")));
        assert!(!answer.allowed);
        assert!(
            answer
                .status
                .unwrap()
                .message
                .contains("spec.validations[0].expression"),
        );
        let exception = json!({"apiVersion": "kyverno.io/v2", "kind": "PolicyException",
            "metadata": {"name": "e", "namespace": "default"},
            "spec": {"exceptions": "all", "match": {}}});
        let answer = validate_exception(&request("kyverno.io", "PolicyException", exception));
        assert!(
            answer
                .status
                .unwrap()
                .message
                .starts_with("spec.exceptions"),
        );
        assert!(mutate_policy(&request_for(vpol("true"))).patch.is_none());
    }

    #[test]
    fn generating_policies_are_checked() {
        let gpol = |generation: Value| {
            json!({"apiVersion": "policies.kyverno.io/v1", "kind": "GeneratingPolicy",
                "metadata": {"name": "g"}, "spec": {"generate": [generation]}})
        };
        let request_for = |object| request("policies.kyverno.io", "GeneratingPolicy", object);
        let valid = gpol(json!({"expression": "generator.Apply('team', [])"}));
        assert!(validate_policy(&request_for(valid)).allowed);
        let answer = validate_policy(&request_for(gpol(json!({"expression": "1 +"}))));
        assert!(!answer.allowed);
        let message = answer.status.unwrap().message;
        assert!(message.contains("spec.generate[0].expression"), "{message}");
        let answer = validate_policy(&request_for(gpol(json!({}))));
        let message = answer.status.unwrap().message;
        assert!(message.contains("spec.generate[0]"), "{message}");
        let bad_shape = json!({"apiVersion": "policies.kyverno.io/v1",
            "kind": "NamespacedGeneratingPolicy", "metadata": {"name": "g", "namespace": "team"},
            "spec": {"generate": "not a list"}});
        let answer = validate_policy(&request(
            "policies.kyverno.io",
            "NamespacedGeneratingPolicy",
            bad_shape,
        ));
        let message = answer.status.unwrap().message;
        assert!(message.starts_with("spec.generate"), "{message}");
    }
}
