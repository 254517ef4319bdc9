//! Where context entries get their data from.
use std::collections::BTreeMap;

use serde_json::Value;

/// The answer of a [`ContextProvider`].
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    /// The data was found.
    Found(Value),
    /// This provider cannot answer this kind of entry (the CLI without cluster resources): the
    /// entry is skipped and its variable is left to values supplied from outside.
    Unavailable,
}

/// A lookup that failed: the rule that needed it reports an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(pub String);

/// Supplies the data of context entries.
pub trait ContextProvider: Send + Sync {
    /// The `data` of a ConfigMap.
    fn config_map(&self, namespace: &str, name: &str) -> Result<Lookup, ProviderError>;
    /// The response of a Kubernetes API call (`urlPath`), decoded from JSON.
    fn api_call(
        &self,
        method: &str,
        url_path: &str,
        body: Option<&Value>,
    ) -> Result<Lookup, ProviderError>;
    /// The response of a call to an external service.
    fn service_call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Lookup, ProviderError>;
    /// The data of a GlobalContextEntry.
    fn global_context(&self, name: &str) -> Result<Lookup, ProviderError>;
    /// Image metadata (config, manifest, digest) from its registry.
    fn image_data(&self, reference: &str) -> Result<Lookup, ProviderError>;
    /// A resource of the cluster, such as the source of a generate `clone`: `Unavailable` when
    /// it does not exist or cannot be read. An empty `api_version` matches any version.
    fn get_resource(
        &self,
        _api_version: &str,
        _kind: &str,
        _namespace: &str,
        _name: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    /// The resources of a kind in a namespace (every namespace when empty), such as the sources
    /// of a generate `cloneList`, as a JSON array. An empty `api_version` matches any version.
    fn list_resources(
        &self,
        _api_version: &str,
        _kind: &str,
        _namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    /// A resource addressed as the Kubernetes API addresses it, by `api_version` and plural
    /// resource name (`configmaps`), for CEL's `resource.Get`: `Unavailable` when it does not
    /// exist. The default asks [`Self::api_call`] for the object's URL path.
    fn get_api_resource(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Lookup, ProviderError> {
        let path = api_resource_path(api_version, resource, namespace, Some(name));
        self.api_call("GET", &path, None)
    }
    /// The resources of an API resource in a namespace (every namespace when empty), as the
    /// list object the Kubernetes API answers (`{"items": [...]}`), for CEL's `resource.List`.
    /// The default asks [`Self::api_call`] for the collection's URL path.
    fn list_api_resources(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        let path = api_resource_path(api_version, resource, namespace, None);
        self.api_call("GET", &path, None)
    }
    /// Creates `object` as an API resource and answers the created object, for CEL's
    /// `resource.Post` (a SubjectAccessReview, say). The default posts it with
    /// [`Self::api_call`].
    fn create_api_resource(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        object: &Value,
    ) -> Result<Lookup, ProviderError> {
        let path = api_resource_path(api_version, resource, namespace, None);
        self.api_call("POST", &path, Some(object))
    }
    /// The response of an HTTP request made by CEL's `http` library, as policies see it: a
    /// JSON object body with its `statusCode` added, any other body as
    /// `{"body": ..., "statusCode": ...}`. The default makes the call with
    /// [`Self::service_call`], without the headers, and reports status 200.
    fn http_request(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        _headers: &BTreeMap<String, String>,
    ) -> Result<Lookup, ProviderError> {
        Ok(match self.service_call(method, url, body)? {
            Lookup::Found(Value::Object(mut fields)) => {
                fields.insert("statusCode".to_owned(), Value::from(200));
                Lookup::Found(Value::Object(fields))
            }
            Lookup::Found(body) => {
                Lookup::Found(serde_json::json!({"body": body, "statusCode": 200}))
            }
            Lookup::Unavailable => Lookup::Unavailable,
        })
    }
}

/// The Kubernetes API path of a resource collection, or of one object when `name` is given:
/// `/api/v1/...` for the core group, `/apis/<group>/<version>/...` for the others.
fn api_resource_path(
    api_version: &str,
    resource: &str,
    namespace: &str,
    name: Option<&str>,
) -> String {
    let mut path = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    if !namespace.is_empty() {
        path.push_str("/namespaces/");
        path.push_str(namespace);
    }
    path.push('/');
    path.push_str(resource);
    if let Some(name) = name {
        path.push('/');
        path.push_str(name);
    }
    path
}

/// A provider with no external data at all: every entry is unavailable.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoExternalData;

impl ContextProvider for NoExternalData {
    fn config_map(&self, _: &str, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn api_call(&self, _: &str, _: &str, _: Option<&Value>) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn service_call(&self, _: &str, _: &str, _: Option<&Value>) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn global_context(&self, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
    fn image_data(&self, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }
}
