//! Context data for the engine from the API server: `configMap` and `apiCall` context entries,
//! and, for the background controller, the cluster's [`resources`] by API version and kind
//! (clone sources of generate rules, targets of mutate-existing rules).
//!
//! The engine's [`ContextProvider`] is synchronous; this provider blocks on the async client
//! through a runtime handle, so it must be called off the async reactor (from
//! `tokio::task::spawn_blocking`, as the admission controller evaluates policies), never from
//! inside a task.
pub mod resources;

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kyverno_policy_core::engine::{ContextProvider, Lookup, ProviderError};
use serde_json::Value;

use resources::{ClusterResources, ResourceError};

/// How long one API call of a context entry may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`ContextProvider`] that reads ConfigMaps and makes API calls with a [`kube::Client`].
/// Service calls, GlobalContextEntries and image registries are not supported yet: entries using
/// them fail with an error that names the missing support. Resources by API version and kind
/// are only read when the provider is made [`with_resources`](Self::with_resources); otherwise
/// they are unavailable.
#[derive(Clone)]
pub struct ApiServerProvider {
    client: Client,
    runtime: tokio::runtime::Handle,
    resources: Option<Arc<ClusterResources>>,
}

impl std::fmt::Debug for ApiServerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerProvider").finish_non_exhaustive()
    }
}

impl ApiServerProvider {
    /// A provider using `client`, blocking on `runtime` for each call.
    pub fn new(client: Client, runtime: tokio::runtime::Handle) -> Self {
        Self {
            client,
            runtime,
            resources: None,
        }
    }

    /// A provider using the client of `resources`, which also answers the engine's reads of
    /// resources by API version and kind from them (sharing their discovered kinds).
    pub fn with_resources(
        resources: Arc<ClusterResources>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            client: resources.client().clone(),
            runtime,
            resources: Some(resources),
        }
    }

    fn request(
        &self,
        method: &str,
        url_path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ProviderError> {
        let method = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|error| ProviderError(format!("invalid method {method:?}: {error}")))?;
        let body = match body {
            Some(body) => {
                serde_json::to_vec(body).map_err(|error| ProviderError(error.to_string()))?
            }
            None => Vec::new(),
        };
        let request = http::Request::builder()
            .method(method)
            .uri(url_path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|error| ProviderError(format!("invalid request {url_path:?}: {error}")))?;
        let client = self.client.clone();
        self.runtime.block_on(async move {
            match tokio::time::timeout(CALL_TIMEOUT, client.request::<Value>(request)).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(kube::Error::Api(status))) => Err(ProviderError(status.message.clone())),
                Ok(Err(error)) => Err(ProviderError(error.to_string())),
                Err(_) => Err(ProviderError(format!(
                    "the API call to {url_path} timed out"
                ))),
            }
        })
    }
}

impl ContextProvider for ApiServerProvider {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Lookup, ProviderError> {
        self.request(
            "GET",
            &format!("/api/v1/namespaces/{namespace}/configmaps/{name}"),
            None,
        )
        .map(Lookup::Found)
    }

    fn api_call(
        &self,
        method: &str,
        url_path: &str,
        body: Option<&Value>,
    ) -> Result<Lookup, ProviderError> {
        self.request(method, url_path, body).map(Lookup::Found)
    }

    fn service_call(&self, _: &str, url: &str, _: Option<&Value>) -> Result<Lookup, ProviderError> {
        Err(ProviderError(format!(
            "service calls ({url}) are not supported yet"
        )))
    }

    fn global_context(&self, name: &str) -> Result<Lookup, ProviderError> {
        Err(ProviderError(format!(
            "global context entries ({name}) are not supported yet"
        )))
    }

    fn image_data(&self, reference: &str) -> Result<Lookup, ProviderError> {
        Err(ProviderError(format!(
            "image data ({reference}) is not supported yet"
        )))
    }

    /// A missing object, or one of a kind the server does not serve, is `Unavailable`.
    fn get_resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Lookup, ProviderError> {
        let Some(resources) = &self.resources else {
            return Ok(Lookup::Unavailable);
        };
        let found = self
            .runtime
            .block_on(resources.get(api_version, kind, namespace, name));
        match found {
            Ok(Some(object)) => Ok(Lookup::Found(object)),
            Ok(None) | Err(ResourceError::UnknownKind { .. }) => Ok(Lookup::Unavailable),
            Err(error) => Err(ProviderError(error.to_string())),
        }
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        let Some(resources) = &self.resources else {
            return Ok(Lookup::Unavailable);
        };
        self.runtime
            .block_on(resources.list(api_version, kind, namespace, None))
            .map(|items| Lookup::Found(Value::Array(items)))
            .map_err(|error| ProviderError(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiserver_sim::ApiServerSim;
    use serde_json::json;

    /// A simulator holding ConfigMap `ns/cm`, and a provider over it as `provider` builds it.
    async fn provider_over_sim(
        provider: fn(Client, tokio::runtime::Handle) -> ApiServerProvider,
    ) -> (ApiServerSim, Arc<ApiServerProvider>) {
        let sim = ApiServerSim::start_default()
            .await
            .expect("simulator starts");
        for object in [
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}, "data": {"k": "v"}}),
        ] {
            sim.insert(object).expect("object stored");
        }
        let client = sim.client().await.expect("client");
        let provider = Arc::new(provider(client, tokio::runtime::Handle::current()));
        (sim, provider)
    }

    fn reading_resources(client: Client, runtime: tokio::runtime::Handle) -> ApiServerProvider {
        ApiServerProvider::with_resources(Arc::new(ClusterResources::new(client)), runtime)
    }

    /// Runs `lookups` off the reactor, as the engine runs.
    async fn blocking<T: Send + 'static>(
        provider: &Arc<ApiServerProvider>,
        lookups: fn(&ApiServerProvider) -> T,
    ) -> T {
        let provider = Arc::clone(provider);
        tokio::task::spawn_blocking(move || lookups(&provider))
            .await
            .expect("lookups finish")
    }

    fn assert_is_the_config_map(lookup: &Lookup) {
        assert!(
            matches!(lookup, Lookup::Found(object) if object["data"]["k"] == "v"),
            "{lookup:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn without_resources_kinds_are_unavailable_but_entries_are_read() {
        let (_sim, provider) = provider_over_sim(ApiServerProvider::new).await;
        let (config_map, resource, list) = blocking(&provider, |provider| {
            (
                provider.config_map("ns", "cm").expect("read"),
                provider
                    .get_resource("v1", "ConfigMap", "ns", "cm")
                    .expect("answer"),
                provider
                    .list_resources("v1", "ConfigMap", "ns")
                    .expect("answer"),
            )
        })
        .await;
        assert_is_the_config_map(&config_map);
        assert_eq!(resource, Lookup::Unavailable);
        assert_eq!(list, Lookup::Unavailable);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn with_resources_objects_are_read_by_kind() {
        let (_sim, provider) = provider_over_sim(reading_resources).await;
        let (found, missing, unknown, listed) = blocking(&provider, |provider| {
            (
                provider
                    .get_resource("v1", "ConfigMap", "ns", "cm")
                    .expect("read"),
                provider
                    .get_resource("v1", "ConfigMap", "ns", "other")
                    .expect("read"),
                provider
                    .get_resource("v1", "Gadget", "ns", "cm")
                    .expect("read"),
                provider.list_resources("", "ConfigMap", "").expect("list"),
            )
        })
        .await;
        assert_is_the_config_map(&found);
        assert_eq!(missing, Lookup::Unavailable);
        assert_eq!(unknown, Lookup::Unavailable);
        let Lookup::Found(Value::Array(items)) = listed else {
            panic!("a list: {listed:?}");
        };
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["kind"], "ConfigMap");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn listing_an_unknown_kind_is_an_error_naming_it() {
        let (_sim, provider) = provider_over_sim(reading_resources).await;
        let error = blocking(&provider, |provider| {
            provider
                .list_resources("v1", "Gadget", "ns")
                .expect_err("no such kind")
        })
        .await;
        assert_eq!(
            error.to_string(),
            "the server does not serve kind \"Gadget\" in \"v1\""
        );
    }
}
