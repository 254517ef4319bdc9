//! Context entries: named variables that a rule loads before it is evaluated.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::preserve_unknown_fields;

/// A named value made available to the rule's variables. Exactly one source should be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextEntry {
    /// The variable name under which the loaded value is available.
    pub name: String,
    /// A literal value or a JMESPath expression over the other variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable: Option<Variable>,
    /// A ConfigMap whose content is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapReference>,
    /// A Kubernetes API or external service call whose response is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_call: Option<ApiCall>,
    /// Image metadata fetched from an OCI registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registry: Option<ImageRegistry>,
    /// A GlobalContextEntry whose cached data is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_reference: Option<GlobalContextEntryReference>,
}

/// A variable defined from a literal value or a JMESPath expression.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    /// A literal value, which may contain `{{ }}` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub value: Option<Value>,
    /// A JMESPath expression applied to `value`, or to the whole context when `value` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,
    /// The value used when the expression yields nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub default: Option<Value>,
}

/// A reference to a ConfigMap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapReference {
    /// The ConfigMap's name.
    pub name: String,
    /// The ConfigMap's namespace; the default namespace when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A call to the Kubernetes API (`urlPath`) or to an external service (`service`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiCall {
    /// The Kubernetes API path to call, e.g. `/api/v1/namespaces/{{request.namespace}}/pods`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_path: Option<String>,
    /// The HTTP method: GET (default) or POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// The request body of a POST, as key/value pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<RequestData>,
    /// An external service to call instead of the Kubernetes API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceCall>,
    /// A JMESPath expression applied to the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,
    /// The value used when the call fails or the expression yields nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub default: Option<Value>,
}

/// An HTTP method of an API call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// HTTP GET.
    Get,
    /// HTTP POST.
    Post,
}

/// One key/value pair of an API call's request body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestData {
    /// The key.
    pub key: String,
    /// The value, which may contain variables.
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub value: Value,
}

/// An external HTTP(S) service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCall {
    /// The service URL.
    pub url: String,
    /// PEM CA bundle that verifies the service's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// HTTP headers sent with the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeader>,
}

/// An HTTP header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// The header name.
    pub key: String,
    /// The header value.
    pub value: String,
}

/// Image data fetched from an OCI registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRegistry {
    /// The image reference, which may contain variables.
    pub reference: String,
    /// A JMESPath expression applied to the image data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,
    /// Credentials for the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registry_credentials: Option<ImageRegistryCredentials>,
}

/// How to authenticate to image registries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRegistryCredentials {
    /// Allow registries over plain HTTP or with untrusted certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_registry: Option<bool>,
    /// Cloud credential helpers to use: `default`, `amazon`, `azure`, `google`, `github`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// Names of image pull Secrets in Kyverno's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// A reference to a GlobalContextEntry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalContextEntryReference {
    /// The GlobalContextEntry's name.
    pub name: String,
    /// A JMESPath expression applied to the entry's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmes_path: Option<String>,
}
