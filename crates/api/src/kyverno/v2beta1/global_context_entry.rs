//! GlobalContextEntry (`kyverno.io/v2beta1`): data cached cluster-wide for policies to read
//! through `globalReference` context entries.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kyverno::v1::context::{HttpMethod, RequestData, ServiceCall};

/// The specification of a GlobalContextEntry: one data source (`kubernetesResource` or
/// `apiCall`) and optional projections over it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kyverno.io",
    version = "v2beta1",
    kind = "GlobalContextEntry",
    shortname = "gctxentry",
    category = "kyverno",
    status = "GlobalContextEntryStatus",
    printcolumn = r#"{"name":"AGE", "type":"date", "jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"REFRESH INTERVAL", "type":"string", "jsonPath":".spec.apiCall.refreshInterval"}"#,
    printcolumn = r#"{"name":"LAST REFRESH", "type":"date", "jsonPath":".status.lastRefreshTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GlobalContextEntrySpec {
    /// Kubernetes resources to watch and cache. Mutually exclusive with `apiCall`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_resource: Option<KubernetesResource>,
    /// An API call whose response is cached and refreshed periodically. Mutually exclusive
    /// with `kubernetesResource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_call: Option<ExternalApiCall>,
    /// Named JMESPath expressions evaluated over the cached data, each readable on its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projections: Vec<Projection>,
}

/// A resource type (and optionally a namespace) whose objects are cached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesResource {
    /// The API group; empty for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The API version.
    pub version: String,
    /// The resource (plural name), e.g. `deployments`.
    pub resource: String,
    /// The namespace to watch; all namespaces when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A Kubernetes API (`urlPath`) or external service (`service`) call, repeated on an interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalApiCall {
    /// The Kubernetes API path to call, e.g. `/apis/apps/v1/deployments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path: Option<String>,
    /// The HTTP method: GET (default) or POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "GET"))]
    pub method: Option<HttpMethod>,
    /// The request body of a POST, as key/value pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<RequestData>,
    /// An external service to call instead of the Kubernetes API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceCall>,
    /// How often the call is repeated, as a duration (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10m", "format" = "duration"))]
    pub refresh_interval: Option<String>,
    /// How many times a failed call is retried (default 3, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 3, "minimum" = 1))]
    pub retry_limit: Option<i32>,
}

/// A named JMESPath expression over a GlobalContextEntry's data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    /// The projection's name, used as `<entry>.<name>` in `globalReference`.
    pub name: String,
    /// The JMESPath expression applied to the cached data.
    pub jmes_path: String,
}

/// The runtime state of a GlobalContextEntry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalContextEntryStatus {
    /// Whether the data is loaded. Deprecated: read the `Ready` condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// Conditions of the entry, e.g. `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the data was last refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_time: Option<Time>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_context_entry_round_trips() {
        let json = serde_json::json!({
            "apiVersion": "kyverno.io/v2beta1",
            "kind": "GlobalContextEntry",
            "metadata": {"name": "deployments"},
            "spec": {
                "apiCall": {
                    "urlPath": "/apis/apps/v1/deployments",
                    "method": "POST",
                    "data": [{"key": "k", "value": {"a": [1, 2]}}],
                    "refreshInterval": "30s",
                    "retryLimit": 5
                },
                "projections": [{"name": "names", "jmesPath": "items[].metadata.name"}]
            },
            "status": {"ready": false, "lastRefreshTime": "2024-01-01T00:00:00Z"}
        });
        let entry: GlobalContextEntry = serde_json::from_value(json.clone()).expect("deserializes");
        assert_eq!(
            entry.spec.api_call.as_ref().and_then(|c| c.retry_limit),
            Some(5)
        );
        assert_eq!(serde_json::to_value(&entry).expect("serializes"), json);
    }

    #[test]
    fn kubernetes_resource_core_group_may_be_omitted() {
        let json = serde_json::json!({"kubernetesResource": {"version": "v1", "resource": "pods"}});
        let spec: GlobalContextEntrySpec =
            serde_json::from_value(json.clone()).expect("deserializes");
        assert_eq!(
            spec.kubernetes_resource
                .as_ref()
                .and_then(|r| r.group.as_deref()),
            None
        );
        assert_eq!(serde_json::to_value(&spec).expect("serializes"), json);
    }
}
