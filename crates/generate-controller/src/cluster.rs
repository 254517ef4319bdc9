//! Untyped access to any kind of the cluster, by API version and kind as policies name them
//! (discovered once per kind), and the engine's [`ContextProvider`] on top of it.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::discovery::Scope;
use kyverno_policy_core::engine::{ContextProvider, Lookup, ProviderError};
use kyverno_runtime::provider::ApiServerProvider;
use serde_json::Value;
use tokio::sync::RwLock;

/// Why a call to the API server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The API server answered with an error.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// No served resource has this kind.
    #[error("the server does not serve kind {kind:?} in {api_version:?}")]
    UnknownKind {
        /// The API version asked for (empty: any).
        api_version: String,
        /// The kind asked for.
        kind: String,
    },
    /// An object could not be converted.
    #[error("invalid object: {0}")]
    Invalid(#[from] serde_json::Error),
}

/// A served resource: its API description and whether it is namespaced.
#[derive(Clone, Debug)]
struct Served {
    resource: ApiResource,
    namespaced: bool,
}

/// How long the listable kinds found by discovery are used before discovery runs again.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);

/// API versions and kinds.
pub type Kinds = Vec<(String, String)>;

/// The cluster's objects of any kind.
pub struct Cluster {
    client: Client,
    served: RwLock<HashMap<(String, String), Served>>,
    listable: RwLock<Option<(Instant, Kinds)>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Cluster {
    /// Access through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            served: RwLock::default(),
            listable: RwLock::default(),
        }
    }

    /// The API version and kind of every resource the API server lists (discovered at most
    /// once per [`DISCOVERY_TTL`]).
    pub async fn listable_kinds(&self) -> Result<Kinds, ClusterError> {
        if let Some((found, kinds)) = self.listable.read().await.as_ref()
            && found.elapsed() < DISCOVERY_TTL
        {
            return Ok(kinds.clone());
        }
        let discovery = kube::Discovery::new(self.client.clone()).run().await?;
        let kinds: Kinds = discovery
            .groups()
            .flat_map(|group| group.recommended_resources())
            .filter(|(_, capabilities)| {
                capabilities.supports_operation(kube::discovery::verbs::LIST)
            })
            .map(|(resource, _)| (resource.api_version, resource.kind))
            .collect();
        *self.listable.write().await = Some((Instant::now(), kinds.clone()));
        Ok(kinds)
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn served(&self, api_version: &str, kind: &str) -> Result<Served, ClusterError> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(served) = self.served.read().await.get(&key) {
            return Ok(served.clone());
        }
        let unknown = || ClusterError::UnknownKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        };
        let served = if api_version.is_empty() {
            let discovery = kube::Discovery::new(self.client.clone()).run().await?;
            discovery
                .groups()
                .flat_map(|group| group.recommended_resources())
                .find(|(resource, _)| resource.kind == kind)
                .map(|(resource, capabilities)| Served {
                    resource,
                    namespaced: capabilities.scope == Scope::Namespaced,
                })
                .ok_or_else(unknown)?
        } else {
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
            match kube::discovery::pinned_kind(&self.client, &gvk).await {
                Ok((resource, capabilities)) => Served {
                    resource,
                    namespaced: capabilities.scope == Scope::Namespaced,
                },
                Err(kube::Error::Discovery(_)) => return Err(unknown()),
                Err(error) => return Err(error.into()),
            }
        };
        self.served.write().await.insert(key, served.clone());
        Ok(served)
    }

    /// The API of `kind` in `namespace` (every namespace when empty; ignored for cluster-scoped
    /// kinds).
    pub async fn api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, ClusterError> {
        let served = self.served(api_version, kind).await?;
        Ok(if served.namespaced && !namespace.is_empty() {
            Api::namespaced_with(self.client.clone(), namespace, &served.resource)
        } else {
            Api::all_with(self.client.clone(), &served.resource)
        })
    }

    /// The object, `None` when it does not exist.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        let api = self.api(api_version, kind, namespace).await?;
        match api.get_opt(name).await? {
            Some(object) => Ok(Some(serde_json::to_value(object)?)),
            None => Ok(None),
        }
    }

    /// The objects of `kind` in `namespace` (every namespace when empty) that `selector`
    /// selects (all when `None`).
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        selector: Option<&str>,
    ) -> Result<Vec<Value>, ClusterError> {
        let api = self.api(api_version, kind, namespace).await?;
        let mut params = ListParams::default();
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        let list = api.list(&params).await?;
        let (api_version, kind) = (list.types.api_version.clone(), list.types.kind.clone());
        list.items
            .into_iter()
            .map(|object| {
                let mut value = serde_json::to_value(object)?;
                // List items may come without their type.
                if value.get("kind").is_none() {
                    value["apiVersion"] = Value::from(api_version.clone());
                    value["kind"] = Value::from(kind.trim_end_matches("List"));
                }
                Ok(value)
            })
            .collect()
    }

    /// Creates `object`; answers the stored object.
    pub async fn create(&self, object: &Value) -> Result<Value, ClusterError> {
        let (api, object) = self.api_of(object).await?;
        let created = api.create(&PostParams::default(), &object).await?;
        Ok(serde_json::to_value(created)?)
    }

    /// Replaces `object` (its `resourceVersion` guards against concurrent changes); answers
    /// the stored object.
    pub async fn replace(&self, object: &Value) -> Result<Value, ClusterError> {
        let (api, object) = self.api_of(object).await?;
        let name = object.metadata.name.clone().unwrap_or_default();
        let replaced = api.replace(&name, &PostParams::default(), &object).await?;
        Ok(serde_json::to_value(replaced)?)
    }

    /// Merge-patches the object's labels; answers the stored object.
    pub async fn label(
        &self,
        object: &Value,
        labels: &serde_json::Map<String, Value>,
    ) -> Result<Value, ClusterError> {
        let (api, object) = self.api_of(object).await?;
        let name = object.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({"metadata": {"labels": labels}});
        let patched = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(serde_json::to_value(patched)?)
    }

    /// Deletes `object`; an object already gone is not an error.
    pub async fn delete(&self, object: &Value) -> Result<(), ClusterError> {
        let (api, object) = self.api_of(object).await?;
        let name = object.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn api_of(
        &self,
        object: &Value,
    ) -> Result<(Api<DynamicObject>, DynamicObject), ClusterError> {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let api = self
            .api(
                text("/apiVersion"),
                text("/kind"),
                text("/metadata/namespace"),
            )
            .await?;
        Ok((api, serde_json::from_value(object.clone())?))
    }
}

/// The engine's data from the API server: context entries as the other controllers load them,
/// plus the clone sources of generate rules and the targets of mutate-existing rules.
///
/// Like [`ApiServerProvider`], it blocks on the async client: call the engine from
/// `tokio::task::spawn_blocking`.
pub struct ClusterProvider {
    entries: ApiServerProvider,
    cluster: Arc<Cluster>,
    runtime: tokio::runtime::Handle,
}

impl ClusterProvider {
    /// A provider over `cluster`, blocking on `runtime`.
    pub fn new(cluster: Arc<Cluster>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            entries: ApiServerProvider::new(cluster.client().clone(), runtime.clone()),
            cluster,
            runtime,
        }
    }
}

fn provider_error(error: ClusterError) -> ProviderError {
    ProviderError(error.to_string())
}

impl ContextProvider for ClusterProvider {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Lookup, ProviderError> {
        self.entries.config_map(namespace, name)
    }
    fn api_call(
        &self,
        method: &str,
        url_path: &str,
        body: Option<&Value>,
    ) -> Result<Lookup, ProviderError> {
        self.entries.api_call(method, url_path, body)
    }
    fn service_call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Lookup, ProviderError> {
        self.entries.service_call(method, url, body)
    }
    fn global_context(&self, name: &str) -> Result<Lookup, ProviderError> {
        self.entries.global_context(name)
    }
    fn image_data(&self, reference: &str) -> Result<Lookup, ProviderError> {
        self.entries.image_data(reference)
    }
    fn get_resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Lookup, ProviderError> {
        let found = self
            .runtime
            .block_on(self.cluster.get(api_version, kind, namespace, name));
        match found {
            Ok(Some(object)) => Ok(Lookup::Found(object)),
            Ok(None) | Err(ClusterError::UnknownKind { .. }) => Ok(Lookup::Unavailable),
            Err(error) => Err(provider_error(error)),
        }
    }
    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        self.runtime
            .block_on(self.cluster.list(api_version, kind, namespace, None))
            .map(|items| Lookup::Found(Value::Array(items)))
            .map_err(provider_error)
    }
}
