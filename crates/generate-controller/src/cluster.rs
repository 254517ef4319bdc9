//! Writes to any kind of the cluster, by API version and kind as policies name them, over
//! runtime's [`ClusterResources`] (which discover each kind once and read the objects).
use std::sync::Arc;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kyverno_runtime::provider::resources::ClusterResources;
pub use kyverno_runtime::provider::resources::ResourceError as ClusterError;
use serde_json::Value;

/// The cluster's objects of any kind: read through [`Self::resources`], written here.
#[derive(Debug)]
pub struct Cluster {
    resources: Arc<ClusterResources>,
}

impl Cluster {
    /// Access through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            resources: Arc::new(ClusterResources::new(client)),
        }
    }

    /// The reads (and the discovered kinds) this cluster writes through, shared with the
    /// engine's provider.
    pub fn resources(&self) -> &Arc<ClusterResources> {
        &self.resources
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
            .resources
            .api(
                text("/apiVersion"),
                text("/kind"),
                text("/metadata/namespace"),
            )
            .await?;
        Ok((api, serde_json::from_value(object.clone())?))
    }
}
