//! Where the CLI's context entries get their data: mocked API call responses and
//! GlobalContextEntries from the test file, and, when the test declares cluster resources, an
//! in-memory cluster built from them and the test's resources.
//!
//! Without cluster resources, ConfigMap and Kubernetes API lookups are unavailable: the engine
//! skips such entries, so values supplied for their variables are what rules see.
//!
//! The resources the engine reads whole (mutate-existing targets, generate clone sources) come
//! from a [`ResourceStore`], as upstream's CLI serves them from a fake client: for `kyverno
//! test`, the test's resources and `targetResources`.
use std::collections::{BTreeMap, HashMap};

use kyverno_policy_core::engine::{ContextProvider, Lookup, ProviderError};
use kyverno_policy_core::jmespath::{self, JmesPathError};
use serde_json::{Map, Value, json};

use crate::engine::{api_group, field};
use crate::test_file::{ApiCallResponse, ContextSpec, GlobalContextEntryValue};

/// Why the mocked GlobalContextEntries could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// A `fieldPath` or projection `path` could not be evaluated.
    #[error("globalContextEntries {entry:?}: {expression:?}: {source}")]
    Expression {
        /// The entry's name.
        entry: String,
        /// The failing expression.
        expression: String,
        /// The JMESPath error.
        source: JmesPathError,
    },
    /// Projections were given without anything to project.
    #[error("globalContextEntries {0:?}: data is required when projections are set")]
    ProjectionsWithoutData(String),
}

/// The objects of a simulated cluster, and the resource names of its custom kinds.
#[derive(Clone, Debug, Default)]
pub struct SimulatedCluster {
    objects: Vec<Value>,
    /// (group, plural, kind) of the CustomResourceDefinitions.
    custom_kinds: Vec<(String, String, String)>,
}

impl SimulatedCluster {
    /// A cluster holding `objects`; CustomResourceDefinitions among them name their kinds'
    /// plural resources.
    pub fn new(objects: Vec<Value>) -> Self {
        let custom_kinds = objects
            .iter()
            .filter(|object| {
                object.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
            })
            .filter_map(|crd| {
                let text = |pointer: &str| {
                    crd.pointer(pointer)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                Some((
                    text("/spec/group")?,
                    text("/spec/names/plural")?,
                    text("/spec/names/kind")?,
                ))
            })
            .collect();
        Self {
            objects,
            custom_kinds,
        }
    }

    /// Whether objects of `kind` in `group` are served as `plural`.
    fn serves(&self, group: &str, plural: &str, kind: &str) -> bool {
        self.custom_kinds
            .iter()
            .find(|(crd_group, _, crd_kind)| crd_group == group && crd_kind == kind)
            .map_or_else(
                || guess_plural(kind) == plural,
                |(_, crd_plural, _)| crd_plural == plural,
            )
    }

    /// The objects of `group` served as `plural`, in `namespace` when one is given.
    fn select<'s>(
        &'s self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = &'s Value> {
        self.objects.iter().filter(move |object| {
            let text = |pointer: &str| field(object, pointer);
            api_group(text("/apiVersion")) == group
                && self.serves(group, plural, text("/kind"))
                && namespace.is_none_or(|namespace| text("/metadata/namespace") == namespace)
        })
    }

    /// The labels of the Namespace object `name`, if the cluster has it.
    fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let namespace = self.get("", "namespaces", None, name)?;
        let labels = namespace
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        Some(
            labels
                .into_iter()
                .flatten()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect(),
        )
    }

    /// The object `name`, if any.
    fn get<'s>(
        &'s self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<&'s Value> {
        self.select(group, plural, namespace)
            .find(|object| object.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
    }

    /// The object `name` of the API resource `plural` of `api_version`, as the CEL `resource`
    /// library reads it: `namespace` is empty for cluster-scoped objects.
    fn api_object(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<&Value> {
        let namespace = Some(namespace).filter(|namespace| !namespace.is_empty());
        self.get(api_group(api_version), plural, namespace, name)
    }

    /// The list object of the API resource `plural` of `api_version` in `namespace` (every
    /// namespace when empty).
    fn api_list(&self, api_version: &str, plural: &str, namespace: &str) -> Value {
        let namespace = Some(namespace).filter(|namespace| !namespace.is_empty());
        let items: Vec<Value> = self
            .select(api_group(api_version), plural, namespace)
            .cloned()
            .collect();
        list_object(api_version, items)
    }

    /// Answers a GET on a Kubernetes API path: an object or a list.
    fn serve(&self, url_path: &str) -> Result<Value, ProviderError> {
        let path = ApiPath::parse(url_path).ok_or_else(|| {
            ProviderError(format!("the simulated cluster does not serve {url_path}"))
        })?;
        let resource_name = || match path.group {
            "" => path.plural.to_owned(),
            group => format!("{}.{group}", path.plural),
        };
        match path.name {
            Some(name) => self
                .get(path.group, path.plural, path.namespace, name)
                .cloned()
                .ok_or_else(|| ProviderError(format!("{} {name:?} not found", resource_name()))),
            None => {
                let items: Vec<Value> = self
                    .select(path.group, path.plural, path.namespace)
                    .cloned()
                    .collect();
                Ok(list_object(&path.group_version(), items))
            }
        }
    }
}

/// The list object the Kubernetes API answers for `items` of `api_version`.
fn list_object(api_version: &str, items: Vec<Value>) -> Value {
    let kind = items
        .first()
        .and_then(|item| item.get("kind"))
        .and_then(Value::as_str)
        .map_or_else(|| "List".to_owned(), |kind| format!("{kind}List"));
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": ""},
        "items": items,
    })
}

/// Kubernetes' guess of the plural resource name of a kind.
fn guess_plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// A Kubernetes API path: `/api/v1/...` or `/apis/<group>/<version>/...`, then
/// `[namespaces/<ns>/]<plural>[/<name>]`.
#[derive(Debug, PartialEq)]
struct ApiPath<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    plural: &'a str,
    name: Option<&'a str>,
}

impl<'a> ApiPath<'a> {
    fn parse(url_path: &'a str) -> Option<Self> {
        let path = url_path.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .collect();
        let (group, version, rest) = match segments.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, plural, name) = match rest {
            ["namespaces", namespace, plural] => (Some(*namespace), *plural, None),
            ["namespaces", namespace, plural, name] => (Some(*namespace), *plural, Some(*name)),
            [plural] => (None, *plural, None),
            [plural, name] => (None, *plural, Some(*name)),
            _ => return None,
        };
        Some(Self {
            group,
            version,
            namespace,
            plural,
            name,
        })
    }

    fn group_version(&self) -> String {
        match self.group {
            "" => self.version.to_owned(),
            group => format!("{group}/{}", self.version),
        }
    }
}

/// Resources the engine reads whole through `get_resource` and `list_resources`.
#[derive(Clone, Debug, Default)]
pub struct ResourceStore {
    objects: Vec<Value>,
}

impl ResourceStore {
    /// A store holding `objects`.
    pub fn new(objects: Vec<Value>) -> Self {
        Self { objects }
    }

    /// The objects of `kind` (and `api_version`, unless empty) in `namespace` (any when empty).
    fn select<'s>(
        &'s self,
        api_version: &'s str,
        kind: &'s str,
        namespace: &'s str,
    ) -> impl Iterator<Item = &'s Value> {
        self.objects.iter().filter(move |object| {
            (api_version.is_empty() || field(object, "/apiVersion") == api_version)
                && field(object, "/kind") == kind
                && (namespace.is_empty() || field(object, "/metadata/namespace") == namespace)
        })
    }

    /// The object `name`, if the store has it.
    fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Lookup {
        self.select(api_version, kind, namespace)
            .find(|object| field(object, "/metadata/name") == name)
            .map_or(Lookup::Unavailable, |object| Lookup::Found(object.clone()))
    }

    /// The objects of a kind, as a JSON array.
    fn list(&self, api_version: &str, kind: &str, namespace: &str) -> Lookup {
        Lookup::Found(Value::Array(
            self.select(api_version, kind, namespace).cloned().collect(),
        ))
    }
}

/// The CLI's [`ContextProvider`].
#[derive(Clone, Debug, Default)]
pub struct CliContextProvider {
    cluster: Option<SimulatedCluster>,
    mocks: Vec<ApiCallResponse>,
    global_entries: HashMap<String, Value>,
    resources: ResourceStore,
    context: OfflineContext,
}

/// What the CEL libraries read when there is no (simulated) cluster, as upstream's fake context
/// provider: the resources and image data of the test's Context file.
#[derive(Clone, Debug, Default)]
pub struct OfflineContext {
    resources: SimulatedCluster,
    images: HashMap<String, Value>,
}

impl OfflineContext {
    /// The data of a Context file.
    pub fn new(context: ContextSpec) -> Self {
        let images = context
            .images
            .into_iter()
            .map(|image| {
                let mut data = image.data;
                // The fields upstream always serializes.
                for key in ["resolvedImage", "registry", "repository"] {
                    data.entry(key).or_insert_with(|| Value::from(""));
                }
                data.insert("image".to_owned(), Value::from(image.image.clone()));
                (image.image, Value::Object(data))
            })
            .collect();
        Self {
            resources: SimulatedCluster::new(context.resources),
            images,
        }
    }
}

impl CliContextProvider {
    /// A provider answering from `mocks`, `global_entries` (each with the resources of its
    /// `resourceFiles`, already read) and, when given, a simulated cluster.
    pub fn new(
        cluster: Option<SimulatedCluster>,
        mocks: Vec<ApiCallResponse>,
        global_entries: &[(GlobalContextEntryValue, Vec<Value>)],
    ) -> Result<Self, MockError> {
        let global_entries = global_entries
            .iter()
            .map(|(entry, file_resources)| {
                Ok((
                    entry.name.clone(),
                    resolve_global_entry(entry, file_resources)?,
                ))
            })
            .collect::<Result<_, MockError>>()?;
        Ok(Self {
            cluster,
            mocks,
            global_entries,
            resources: ResourceStore::default(),
            context: OfflineContext::default(),
        })
    }

    /// The provider reading whole resources (mutate-existing targets) from `resources`.
    pub fn with_resources(self, resources: ResourceStore) -> Self {
        Self { resources, ..self }
    }

    /// The provider whose CEL lookups read `context` when there is no simulated cluster.
    pub fn with_context(self, context: OfflineContext) -> Self {
        Self { context, ..self }
    }

    /// A copy whose CEL lookups also find `objects` when there is no simulated cluster.
    pub fn with_offline_objects(&self, objects: &[Value]) -> Self {
        let mut provider = self.clone();
        let resources = &self.context.resources;
        provider.context.resources =
            SimulatedCluster::new(resources.objects.iter().chain(objects).cloned().collect());
        provider
    }

    /// The resources CEL's `resource` library reads: the simulated cluster if there is one,
    /// else the Context file's resources.
    fn api_resources(&self) -> &SimulatedCluster {
        self.cluster.as_ref().unwrap_or(&self.context.resources)
    }

    /// The labels of the Namespace object `name` of the simulated cluster, if there is a cluster
    /// and it has that Namespace.
    pub fn cluster_namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.cluster.as_ref()?.namespace_labels(name)
    }

    /// The mock of a call, matched by `matches` on the entry and by method.
    fn mock(
        &self,
        method: &str,
        matches: impl Fn(&ApiCallResponse) -> bool,
    ) -> Option<&ApiCallResponse> {
        self.mocks.iter().find(|mock| {
            matches(mock)
                && mock.method.as_deref().is_none_or(|expected| {
                    expected.is_empty() || expected.eq_ignore_ascii_case(method)
                })
        })
    }

    /// The mocked response of a call, matched by `matches` on the entry and by method.
    fn mocked(
        &self,
        method: &str,
        matches: impl Fn(&ApiCallResponse) -> bool,
    ) -> Option<Result<Lookup, ProviderError>> {
        let mock = self.mock(method, matches)?;
        let status = mock.response.status_code.unwrap_or(200);
        Some(if (200..300).contains(&status) {
            Ok(Lookup::Found(mock.response.body.clone()))
        } else {
            Err(ProviderError(format!(
                "HTTP {status}: {}",
                jmespath::json_string(&mock.response.body)
            )))
        })
    }
}

/// The data policies see for a mocked GlobalContextEntry: its root (`data`, or the list of its
/// resources), narrowed by `fieldPath`, then turned into an object of its projections if any.
fn resolve_global_entry(
    entry: &GlobalContextEntryValue,
    file_resources: &[Value],
) -> Result<Value, MockError> {
    let has_resources = !entry.resources.is_empty() || !file_resources.is_empty();
    let root = if has_resources {
        Value::Array(
            entry
                .resources
                .iter()
                .chain(file_resources)
                .cloned()
                .collect(),
        )
    } else {
        match &entry.data {
            Some(data) => data.clone(),
            None if entry.projections.is_empty() => return Ok(Value::Null),
            None => return Err(MockError::ProjectionsWithoutData(entry.name.clone())),
        }
    };
    let search = |expression: &str, data: &Value| {
        jmespath::search(expression, data).map_err(|source| MockError::Expression {
            entry: entry.name.clone(),
            expression: expression.to_owned(),
            source,
        })
    };
    let root = match entry.field_path.as_deref().filter(|path| !path.is_empty()) {
        Some(path) => search(path, &root)?,
        None => root,
    };
    if entry.projections.is_empty() {
        return Ok(root);
    }
    let projected = entry
        .projections
        .iter()
        .map(|projection| Ok((projection.name.clone(), search(&projection.path, &root)?)))
        .collect::<Result<Map<String, Value>, MockError>>()?;
    Ok(Value::Object(projected))
}

impl ContextProvider for CliContextProvider {
    /// The whole ConfigMap object (policies read `{{ entry.data.key }}`).
    fn config_map(&self, namespace: &str, name: &str) -> Result<Lookup, ProviderError> {
        let Some(cluster) = &self.cluster else {
            return Ok(Lookup::Unavailable);
        };
        cluster
            .get("", "configmaps", Some(namespace), name)
            .map(|object| Lookup::Found(object.clone()))
            .ok_or_else(|| ProviderError(format!("configmaps {name:?} not found")))
    }

    fn api_call(
        &self,
        method: &str,
        url_path: &str,
        _body: Option<&Value>,
    ) -> Result<Lookup, ProviderError> {
        if let Some(answer) = self.mocked(method, |mock| mock.url_path.as_deref() == Some(url_path))
        {
            return answer;
        }
        let Some(cluster) = &self.cluster else {
            return Ok(Lookup::Unavailable);
        };
        if !method.eq_ignore_ascii_case("GET") {
            return Err(ProviderError(format!(
                "the simulated cluster only serves GET, not {method}"
            )));
        }
        cluster.serve(url_path).map(Lookup::Found)
    }

    fn service_call(
        &self,
        method: &str,
        url: &str,
        _body: Option<&Value>,
    ) -> Result<Lookup, ProviderError> {
        self.mocked(method, |mock| mock.url.as_deref() == Some(url))
            .unwrap_or(Ok(Lookup::Unavailable))
    }

    fn global_context(&self, name: &str) -> Result<Lookup, ProviderError> {
        Ok(self
            .global_entries
            .get(name)
            .map_or(Lookup::Unavailable, |data| Lookup::Found(data.clone())))
    }

    fn image_data(&self, reference: &str) -> Result<Lookup, ProviderError> {
        Ok(self
            .context
            .images
            .get(reference)
            .map_or(Lookup::Unavailable, |data| Lookup::Found(data.clone())))
    }

    /// A missing object is `Unavailable` (CEL's `resource.Get` answers null), as upstream.
    fn get_api_resource(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(self
            .api_resources()
            .api_object(api_version, resource, namespace, name)
            .map_or(Lookup::Unavailable, |object| Lookup::Found(object.clone())))
    }

    fn list_api_resources(
        &self,
        api_version: &str,
        resource: &str,
        namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Found(self.api_resources().api_list(
            api_version,
            resource,
            namespace,
        )))
    }

    /// The mocked response of the URL, whole (`{"statusCode": ..., "body": ...}`), as
    /// upstream's CLI answers CEL's `http` library from `apiCallResponses`.
    fn http_request(
        &self,
        method: &str,
        url: &str,
        _body: Option<&Value>,
        _headers: &BTreeMap<String, String>,
    ) -> Result<Lookup, ProviderError> {
        let mock = self.mock(method, |mock| mock.url.as_deref() == Some(url));
        Ok(mock.map_or(Lookup::Unavailable, |mock| {
            Lookup::Found(json!({
                "statusCode": mock.response.status_code.unwrap_or(200),
                "body": mock.response.body,
            }))
        }))
    }

    fn get_resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(self.resources.get(api_version, kind, namespace, name))
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(self.resources.list(api_version, kind, namespace))
    }
}

/// The provider a policy's generate rules see, as upstream's CLI builds it: context entries
/// answer as for the other rules, while the cluster that generate rules read (clone sources)
/// holds only the trigger resource and the clone sources the test gives for the policy.
pub struct GenerateProvider<'a> {
    base: &'a CliContextProvider,
    objects: ResourceStore,
}

impl<'a> GenerateProvider<'a> {
    /// A provider answering generate reads from `objects` and everything else from `base`.
    pub fn new(base: &'a CliContextProvider, objects: Vec<Value>) -> Self {
        Self {
            base,
            objects: ResourceStore::new(objects),
        }
    }
}

impl ContextProvider for GenerateProvider<'_> {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Lookup, ProviderError> {
        self.base.config_map(namespace, name)
    }

    fn api_call(
        &self,
        method: &str,
        url_path: &str,
        body: Option<&Value>,
    ) -> Result<Lookup, ProviderError> {
        self.base.api_call(method, url_path, body)
    }

    fn service_call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Lookup, ProviderError> {
        self.base.service_call(method, url, body)
    }

    fn global_context(&self, name: &str) -> Result<Lookup, ProviderError> {
        self.base.global_context(name)
    }

    fn image_data(&self, reference: &str) -> Result<Lookup, ProviderError> {
        self.base.image_data(reference)
    }

    fn get_resource(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(self.objects.get(api_version, kind, namespace, name))
    }

    fn list_resources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Lookup, ProviderError> {
        Ok(self.objects.list(api_version, kind, namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_file::{MockResponse, Projection};

    fn cluster() -> SimulatedCluster {
        SimulatedCluster::new(vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}, "data": {"k": "v"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "ns"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2", "namespace": "other"}}),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np", "namespace": "ns"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "things.example.com"},
                   "spec": {"group": "example.com", "names": {"plural": "thingies", "kind": "Thing"}}}),
            json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}}),
        ])
    }

    fn provider_with_cluster() -> CliContextProvider {
        CliContextProvider::new(Some(cluster()), Vec::new(), &[]).expect("no mocks")
    }

    #[test]
    fn without_cluster_resources_cluster_lookups_are_unavailable() {
        let provider = CliContextProvider::default();
        assert_eq!(
            provider.config_map("ns", "cm").expect("answer"),
            Lookup::Unavailable
        );
        assert_eq!(
            provider
                .api_call("GET", "/api/v1/namespaces/ns/pods", None)
                .expect("answer"),
            Lookup::Unavailable
        );
        assert_eq!(
            provider.global_context("g").expect("answer"),
            Lookup::Unavailable
        );
    }

    #[test]
    fn config_maps_come_whole_from_the_cluster() {
        let provider = provider_with_cluster();
        let Lookup::Found(cm) = provider.config_map("ns", "cm").expect("found") else {
            panic!("unavailable")
        };
        assert_eq!(cm.pointer("/data/k"), Some(&json!("v")));
        let error = provider.config_map("ns", "missing").expect_err("not found");
        assert_eq!(error.to_string(), "configmaps \"missing\" not found");
    }

    #[test]
    fn api_paths_list_and_get_objects() {
        let provider = provider_with_cluster();
        let Lookup::Found(list) = provider
            .api_call("GET", "/api/v1/namespaces/ns/pods", None)
            .expect("list")
        else {
            panic!("unavailable")
        };
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        let Lookup::Found(all) = provider
            .api_call("GET", "/api/v1/pods?limit=5", None)
            .expect("list")
        else {
            panic!("unavailable")
        };
        assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
        let Lookup::Found(policy) = provider
            .api_call(
                "GET",
                "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/np",
                None,
            )
            .expect("get")
        else {
            panic!("unavailable")
        };
        assert_eq!(policy["metadata"]["name"], "np");
        let Lookup::Found(thing) = provider
            .api_call("GET", "/apis/example.com/v1/thingies/t", None)
            .expect("crd plural")
        else {
            panic!("unavailable")
        };
        assert_eq!(thing["kind"], "Thing");
        let error = provider
            .api_call("GET", "/apis/example.com/v1/thingies/u", None)
            .expect_err("missing");
        assert_eq!(error.to_string(), "thingies.example.com \"u\" not found");
        assert!(provider.api_call("GET", "/healthz", None).is_err());
        assert!(provider.api_call("POST", "/api/v1/pods", None).is_err());
    }

    #[test]
    fn stored_resources_are_read_whole_by_kind_namespace_and_name() {
        let store = ResourceStore::new(vec![
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "b"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s", "namespace": "a"}}),
        ]);
        let provider = CliContextProvider::default().with_resources(store);
        let Lookup::Found(found) = provider
            .get_resource("", "Secret", "b", "s")
            .expect("answer")
        else {
            panic!("not found")
        };
        assert_eq!(found["metadata"]["namespace"], "b");
        assert_eq!(
            provider
                .get_resource("apps/v1", "Secret", "b", "s")
                .expect("answer"),
            Lookup::Unavailable,
            "the API version must match when given"
        );
        let Lookup::Found(Value::Array(every)) =
            provider.list_resources("v1", "Secret", "").expect("answer")
        else {
            panic!("not a list")
        };
        assert_eq!(every.len(), 2, "an empty namespace lists them all");
        assert_eq!(
            provider
                .list_resources("v1", "Secret", "a")
                .expect("answer"),
            Lookup::Found(
                json!([{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}}])
            )
        );
        assert_eq!(
            CliContextProvider::default()
                .get_resource("v1", "Secret", "a", "s")
                .expect("answer"),
            Lookup::Unavailable
        );
    }

    #[test]
    fn namespaces_give_their_labels() {
        let cluster = SimulatedCluster::new(vec![json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "ns", "namespace": "default", "labels": {"team": "a"}}})]);
        assert_eq!(cluster.namespace_labels("ns").expect("exists")["team"], "a");
        assert_eq!(cluster.namespace_labels("other"), None);
    }

    #[test]
    fn plurals_follow_kubernetes_guesses() {
        assert_eq!(guess_plural("Ingress"), "ingresses");
        assert_eq!(guess_plural("NetworkPolicy"), "networkpolicies");
        assert_eq!(guess_plural("Pod"), "pods");
    }

    fn mock(
        url: Option<&str>,
        url_path: Option<&str>,
        method: Option<&str>,
        status: Option<u16>,
    ) -> ApiCallResponse {
        ApiCallResponse {
            url: url.map(str::to_owned),
            url_path: url_path.map(str::to_owned),
            method: method.map(str::to_owned),
            response: MockResponse {
                status_code: status,
                body: json!({"allowed": true}),
            },
        }
    }

    #[test]
    fn mocks_answer_by_url_path_and_method() {
        let provider = CliContextProvider::new(
            None,
            vec![
                mock(Some("https://svc/check"), None, None, None),
                mock(None, Some("/api/v1/namespaces"), Some("GET"), None),
                mock(Some("https://svc/down"), None, None, Some(503)),
            ],
            &[],
        )
        .expect("no entries");
        assert_eq!(
            provider
                .service_call("POST", "https://svc/check", None)
                .expect("mocked"),
            Lookup::Found(json!({"allowed": true}))
        );
        assert_eq!(
            provider
                .api_call("GET", "/api/v1/namespaces", None)
                .expect("mocked"),
            Lookup::Found(json!({"allowed": true}))
        );
        assert_eq!(
            provider
                .api_call("POST", "/api/v1/namespaces", None)
                .expect("no mock"),
            Lookup::Unavailable
        );
        assert_eq!(
            provider
                .service_call("GET", "https://svc/other", None)
                .expect("no mock"),
            Lookup::Unavailable
        );
        assert!(
            provider
                .service_call("GET", "https://svc/down", None)
                .is_err()
        );
    }

    #[test]
    fn global_entries_apply_field_path_and_projections() {
        let entry = |data: Option<Value>,
                     field_path: Option<&str>,
                     projections: Vec<Projection>| GlobalContextEntryValue {
            name: "g".to_owned(),
            data,
            field_path: field_path.map(str::to_owned),
            projections,
            ..Default::default()
        };
        let data = json!({"deployments": [{"name": "a"}, {"name": "b"}]});
        let projected = resolve_global_entry(
            &entry(
                Some(data.clone()),
                None,
                vec![Projection {
                    name: "items".to_owned(),
                    path: "deployments".to_owned(),
                }],
            ),
            &[],
        )
        .expect("resolves");
        assert_eq!(projected, json!({"items": [{"name": "a"}, {"name": "b"}]}));
        let narrowed =
            resolve_global_entry(&entry(Some(data), Some("deployments[].name"), vec![]), &[])
                .expect("resolves");
        assert_eq!(narrowed, json!(["a", "b"]));
        let listed = resolve_global_entry(&entry(None, None, vec![]), &[json!({"kind": "Pod"})])
            .expect("resolves");
        assert_eq!(listed, json!([{"kind": "Pod"}]));
        let error = resolve_global_entry(
            &entry(
                None,
                None,
                vec![Projection {
                    name: "x".to_owned(),
                    path: "y".to_owned(),
                }],
            ),
            &[],
        )
        .expect_err("nothing to project");
        assert!(error.to_string().contains("data is required"), "{error}");
    }

    fn offline_context() -> OfflineContext {
        let spec: ContextSpec = serde_json::from_value(json!({
            "resources": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
            ],
            "images": [{"image": "nginx:1", "manifest": {"layers": []}}]
        }))
        .expect("valid context");
        OfflineContext::new(spec)
    }

    #[test]
    fn cel_lookups_read_the_context_file_without_a_cluster() {
        let provider = CliContextProvider::default().with_context(offline_context());
        let Lookup::Found(cm) = provider
            .get_api_resource("v1", "configmaps", "ns", "cm")
            .expect("answer")
        else {
            panic!("not found")
        };
        assert_eq!(cm["metadata"]["name"], "cm");
        assert_eq!(
            provider
                .get_api_resource("v1", "configmaps", "ns", "missing")
                .expect("answer"),
            Lookup::Unavailable,
            "a missing object is null to CEL, not an error"
        );
        assert!(
            provider
                .get_api_resource("v1", "namespaces", "", "ns")
                .expect("answer")
                != Lookup::Unavailable,
            "cluster-scoped objects are found without a namespace"
        );
        let Lookup::Found(list) = provider
            .list_api_resources("v1", "configmaps", "")
            .expect("answer")
        else {
            panic!("not a list")
        };
        assert_eq!(list["kind"], "ConfigMapList");
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            provider.config_map("ns", "cm").expect("answer"),
            Lookup::Unavailable,
            "JMESPath context entries still need cluster resources"
        );
    }

    #[test]
    fn a_simulated_cluster_replaces_the_context_file() {
        let provider = provider_with_cluster().with_context(offline_context());
        assert!(matches!(
            provider
                .get_api_resource("v1", "pods", "other", "p2")
                .expect("answer"),
            Lookup::Found(_)
        ));
        assert_eq!(
            provider
                .get_api_resource("v1", "namespaces", "", "ns")
                .expect("answer"),
            Lookup::Unavailable
        );
        let with_targets = CliContextProvider::default()
            .with_offline_objects(&[json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t", "namespace": "ns"}})]);
        assert!(matches!(
            with_targets
                .get_api_resource("v1", "secrets", "ns", "t")
                .expect("answer"),
            Lookup::Found(_)
        ));
    }

    #[test]
    fn images_come_from_the_context_file_with_upstream_fields() {
        let provider = CliContextProvider::default().with_context(offline_context());
        let Lookup::Found(image) = provider.image_data("nginx:1").expect("answer") else {
            panic!("not found")
        };
        assert_eq!(image["image"], "nginx:1");
        assert_eq!(image["registry"], "");
        assert_eq!(image["manifest"], json!({"layers": []}));
        assert_eq!(
            provider.image_data("nginx:2").expect("answer"),
            Lookup::Unavailable
        );
    }

    #[test]
    fn http_requests_answer_whole_mocked_responses() {
        let provider = CliContextProvider::new(
            None,
            vec![mock(
                Some("https://svc/check"),
                None,
                Some("GET"),
                Some(201),
            )],
            &[],
        )
        .expect("no entries");
        let headers = BTreeMap::new();
        assert_eq!(
            provider
                .http_request("GET", "https://svc/check", None, &headers)
                .expect("mocked"),
            Lookup::Found(json!({"statusCode": 201, "body": {"allowed": true}}))
        );
        assert_eq!(
            provider
                .http_request("POST", "https://svc/check", None, &headers)
                .expect("no mock"),
            Lookup::Unavailable
        );
    }
}
