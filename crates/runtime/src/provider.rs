//! Context data for the engine from the API server: `configMap` and `apiCall` context entries.
//!
//! The engine's [`ContextProvider`] is synchronous; this provider blocks on the async client
//! through a runtime handle, so it must be called off the async reactor (from
//! `tokio::task::spawn_blocking`, as the admission controller evaluates policies), never from
//! inside a task.
use std::time::Duration;

use kube::Client;
use kyverno_policy_core::engine::{ContextProvider, Lookup, ProviderError};
use serde_json::Value;

/// How long one API call of a context entry may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`ContextProvider`] that reads ConfigMaps and makes API calls with a [`kube::Client`].
/// Service calls, GlobalContextEntries and image registries are not supported yet: entries using
/// them fail with an error that names the missing support.
#[derive(Clone)]
pub struct ApiServerProvider {
    client: Client,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for ApiServerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServerProvider").finish_non_exhaustive()
    }
}

impl ApiServerProvider {
    /// A provider using `client`, blocking on `runtime` for each call.
    pub fn new(client: Client, runtime: tokio::runtime::Handle) -> Self {
        Self { client, runtime }
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
}
