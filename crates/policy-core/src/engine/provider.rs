//! Where context entries get their data from.
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
