//! Untyped reads of any kind of the cluster, by API version and kind as policies name them:
//! each kind is discovered once, then its objects are got and listed as JSON.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery::Scope;
use serde_json::Value;
use tokio::sync::RwLock;

/// Why a read (or a write built on [`ClusterResources::api`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
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

/// The cluster's objects of any kind, read through one client; the resource serving each kind
/// is discovered on first use and remembered.
pub struct ClusterResources {
    client: Client,
    served: RwLock<HashMap<(String, String), Served>>,
    listable: RwLock<Option<(Instant, Kinds)>>,
}

impl std::fmt::Debug for ClusterResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterResources").finish_non_exhaustive()
    }
}

impl ClusterResources {
    /// Access through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            served: RwLock::default(),
            listable: RwLock::default(),
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The API version and kind of every resource the API server lists (discovered at most
    /// once per [`DISCOVERY_TTL`]).
    pub async fn listable_kinds(&self) -> Result<Kinds, ResourceError> {
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

    /// The resource serving `kind` in `api_version` (any version when empty), discovered once;
    /// an unknown kind is asked again next time.
    async fn served(&self, api_version: &str, kind: &str) -> Result<Served, ResourceError> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(served) = self.served.read().await.get(&key) {
            return Ok(served.clone());
        }
        let unknown = || ResourceError::UnknownKind {
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
    ) -> Result<Api<DynamicObject>, ResourceError> {
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
    ) -> Result<Option<Value>, ResourceError> {
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
    ) -> Result<Vec<Value>, ResourceError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiserver_sim::ApiServerSim;
    use serde_json::json;

    fn widgets_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                }]
            }
        })
    }

    fn config_map(namespace: &str, name: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": namespace, "labels": labels}})
    }

    async fn sim_with_config_maps() -> (ApiServerSim, ClusterResources) {
        let sim = ApiServerSim::start_default()
            .await
            .expect("simulator starts");
        for object in [
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}),
            config_map("a", "one", json!({"tier": "x"})),
            config_map("a", "two", json!({"tier": "y"})),
            config_map("b", "three", json!({"tier": "x"})),
        ] {
            sim.insert(object).expect("object stored");
        }
        let resources = ClusterResources::new(sim.client().await.expect("client"));
        (sim, resources)
    }

    fn names(objects: &[Value]) -> Vec<&str> {
        let mut names: Vec<&str> = objects
            .iter()
            .filter_map(|object| object.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        names.sort_unstable();
        names
    }

    #[tokio::test]
    async fn objects_are_got_by_api_version_kind_namespace_and_name() {
        let (_sim, resources) = sim_with_config_maps().await;
        let found = resources
            .get("v1", "ConfigMap", "a", "one")
            .await
            .expect("read")
            .expect("the ConfigMap exists");
        assert_eq!(found["kind"], "ConfigMap");
        assert_eq!(found["metadata"]["namespace"], "a");
        let any_version = resources
            .get("", "ConfigMap", "b", "three")
            .await
            .expect("read");
        assert_eq!(
            any_version.and_then(|object| object["metadata"]["name"].as_str().map(str::to_owned)),
            Some("three".to_owned())
        );
        let missing = resources.get("v1", "ConfigMap", "b", "one").await;
        assert!(matches!(missing, Ok(None)), "{missing:?}");
    }

    #[tokio::test]
    async fn lists_span_namespaces_filter_by_label_and_carry_their_type() {
        let (_sim, resources) = sim_with_config_maps().await;
        let all = resources
            .list("v1", "ConfigMap", "", Some("tier"))
            .await
            .expect("list");
        assert_eq!(names(&all), ["one", "three", "two"]);
        assert!(
            all.iter()
                .all(|object| object["apiVersion"] == "v1" && object["kind"] == "ConfigMap"),
            "{all:?}"
        );
        let selected = resources
            .list("v1", "ConfigMap", "a", Some("tier=x"))
            .await
            .expect("list");
        assert_eq!(names(&selected), ["one"]);
    }

    #[tokio::test]
    async fn unknown_kinds_are_named_in_the_error() {
        let (_sim, resources) = sim_with_config_maps().await;
        for api_version in ["v1", ""] {
            let error = resources
                .get(api_version, "Gadget", "a", "one")
                .await
                .expect_err("no such kind");
            assert!(
                matches!(&error, ResourceError::UnknownKind { kind, .. } if kind == "Gadget"),
                "{error:?}"
            );
            assert_eq!(
                error.to_string(),
                format!("the server does not serve kind \"Gadget\" in {api_version:?}")
            );
        }
    }

    #[tokio::test]
    async fn a_kind_is_discovered_once_and_remembered() {
        let (sim, resources) = sim_with_config_maps().await;
        sim.add_crd(widgets_crd()).expect("CRD registered");
        assert!(
            resources
                .get("example.com/v1", "Widget", "a", "w")
                .await
                .expect("served")
                .is_none()
        );
        let crds: Api<DynamicObject> = Api::all_with(
            resources.client().clone(),
            &ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
            )),
        );
        crds.delete("widgets.example.com", &Default::default())
            .await
            .expect("CRD deleted");
        let fresh = ClusterResources::new(resources.client().clone());
        assert!(
            fresh.api("example.com/v1", "Widget", "a").await.is_err(),
            "the kind is no longer served"
        );
        assert!(
            resources.api("example.com/v1", "Widget", "a").await.is_ok(),
            "the discovered kind is not asked again"
        );
    }

    #[tokio::test]
    async fn listable_kinds_come_from_discovery() {
        let (_sim, resources) = sim_with_config_maps().await;
        let kinds = resources.listable_kinds().await.expect("discovery");
        assert!(kinds.contains(&("v1".to_owned(), "ConfigMap".to_owned())));
        assert!(kinds.contains(&("v1".to_owned(), "Namespace".to_owned())));
    }
}
