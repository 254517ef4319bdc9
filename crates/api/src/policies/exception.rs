//! PolicyException (`policies.kyverno.io`): exempts requests from CEL policies. Distinct from
//! `kyverno.io/v2` PolicyException, which lifts rules of ClusterPolicy and Policy.
use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MatchCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The specification of a PolicyException: which CEL policies it exempts, and when.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policies.kyverno.io",
    version = "v1beta1",
    kind = "PolicyException",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct PolicyExceptionSpec {
    /// The policies the exception applies to.
    pub policy_refs: Vec<PolicyRef>,
    /// CEL conditions a request must meet to be exempted (all must be true).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_conditions: Vec<MatchCondition>,
    /// Image references (globs allowed) exempted from image verification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Values the policy's CEL expressions may read as `exceptions.allowedValues`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_values: Vec<String>,
    /// Free-form key/value data the policy's CEL expressions may read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// The result reported for exempted resources: `skip` (the default) or `pass`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "skip"))]
    pub report_result: Option<ExceptionReportResult>,
    /// The evaluation mode (`Kubernetes` or `JSON`) of the payloads the exception applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_mode: Option<String>,
    /// When the exception stops applying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
}

/// A policy, by kind and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    /// The policy's name.
    pub name: String,
    /// The policy's kind, e.g. `ValidatingPolicy`.
    pub kind: String,
}

/// The report result of a resource exempted by an exception.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExceptionReportResult {
    /// Report the resource as skipped.
    #[default]
    Skip,
    /// Report the resource as passing.
    Pass,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exception_round_trips() {
        let doc = json!({
            "apiVersion": "policies.kyverno.io/v1alpha1",
            "kind": "PolicyException",
            "metadata": {"name": "e", "namespace": "ns"},
            "spec": {
                "policyRefs": [{"name": "p", "kind": "ValidatingPolicy"}],
                "matchConditions": [{"name": "c", "expression": "true"}],
                "reportResult": "pass",
                "expiresAt": "2030-01-01T00:00:00Z",
                "properties": {"a": "b"}
            }
        });
        let exception: PolicyException = serde_json::from_value(doc.clone()).expect("exception");
        assert_eq!(
            exception.spec.report_result,
            Some(ExceptionReportResult::Pass)
        );
        let mut back = serde_json::to_value(&exception).expect("ser");
        back["apiVersion"] = doc["apiVersion"].clone();
        assert_eq!(back, doc);
    }

    #[test]
    fn policy_refs_are_required() {
        let result = serde_json::from_value::<PolicyExceptionSpec>(json!({"images": ["x"]}));
        assert!(result.is_err());
    }
}
