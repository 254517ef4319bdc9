//! The libraries that read or write data outside the request, through the engine's
//! [`ContextProvider`]: `resource` (`Get`, `List`, `Post`), `globalContext` (`Get`), `http`
//! (`Get`, `Post`, `Put`, `Client`), `image` (`GetMetadata`) and `generator` (`Apply`), each
//! method also in camel case (`get`, `list`, ...) as Kyverno 1.18 added.
//!
//! The variables are receivers bound per evaluation by [`Libraries::bind`]; the methods are
//! registered once in the root environment and act on the receiver they are called on.
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use kube_cel::cel::extractors::Arguments;
use kube_cel::cel::objects::Opaque;
use kube_cel::cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};

use crate::cel::{from_json, to_json, type_name};
use crate::engine::{ContextProvider, Lookup, ProviderError};

/// The methods of the receivers, under both the names Kyverno gives them.
const METHODS: &[(&str, &str, Method)] = &[
    ("Get", "get", Method::Get),
    ("List", "list", Method::List),
    ("Post", "post", Method::Post),
    ("Put", "put", Method::Put),
    ("Client", "client", Method::Client),
    ("GetMetadata", "getMetadata", Method::GetMetadata),
    ("Apply", "apply", Method::Apply),
];

pub(super) fn register(context: &mut Context<'_>) {
    for &(pascal_case, camel_case, method) in METHODS {
        for name in [pascal_case, camel_case] {
            context.add_function(
                name,
                move |ftx: &FunctionContext, Arguments(arguments): Arguments| {
                    call(ftx, method, &arguments)
                },
            );
        }
    }
}

/// The resources `generator.Apply` creates during evaluations, for the caller to read after.
#[derive(Clone, Debug, Default)]
pub struct GeneratedResources(Arc<Mutex<Vec<serde_json::Value>>>);

impl GeneratedResources {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns the resources generated so far, in order.
    pub fn take(&self) -> Vec<serde_json::Value> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn push(&self, resource: serde_json::Value) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(resource);
    }
}

/// The library variables of one request: `resource`, `globalContext`, `http`, `image` and,
/// for generating policies, `generator`. Build it once per request (or per policy and
/// request) and [`bind`](Self::bind) it into each evaluation scope.
#[derive(Clone)]
pub struct Libraries {
    shared: Arc<Shared>,
    receivers: Vec<(&'static str, Value)>,
}

impl fmt::Debug for Libraries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.receivers.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Libraries {
    /// The libraries of a cluster-wide policy, reading through `provider`; no `generator`.
    pub fn new(provider: Arc<dyn ContextProvider>) -> Self {
        Self::build(Shared {
            provider,
            namespace: None,
            generated: None,
        })
    }

    /// The libraries of a namespaced policy (`NamespacedValidatingPolicy`...): `resource` and
    /// `generator` work in `namespace` and take no namespace argument.
    pub fn namespaced(provider: Arc<dyn ContextProvider>, namespace: &str) -> Self {
        Self::build(Shared {
            provider,
            namespace: Some(namespace.to_owned()),
            generated: None,
        })
    }

    /// These libraries plus `generator`, whose `Apply` adds the resources to `generated`.
    pub fn generating_into(self, generated: GeneratedResources) -> Self {
        Self::build(Shared {
            generated: Some(generated),
            ..Shared::clone(&self.shared)
        })
    }

    fn build(shared: Shared) -> Self {
        let shared = Arc::new(shared);
        let mut libraries = vec![
            ("resource", Library::Resource),
            ("globalContext", Library::GlobalContext),
            ("http", Library::Http),
            ("image", Library::ImageData),
        ];
        if shared.generated.is_some() {
            libraries.push(("generator", Library::Generator));
        }
        let receivers = libraries
            .into_iter()
            .map(|(name, library)| {
                let receiver = Receiver {
                    library,
                    shared: Arc::clone(&shared),
                };
                (name, Value::Opaque(Arc::new(receiver)))
            })
            .collect();
        Self { shared, receivers }
    }

    /// Adds the library variables to `scope`.
    pub fn bind(&self, scope: &mut Context<'_>) {
        for (name, receiver) in self.variables() {
            scope.add_variable_from_value(name, receiver);
        }
    }

    /// The library variables, name and value, for callers that bind variables themselves.
    pub fn variables(&self) -> impl Iterator<Item = (&'static str, Value)> + '_ {
        self.receivers
            .iter()
            .map(|(name, receiver)| (*name, receiver.clone()))
    }
}

/// What every receiver of one [`Libraries`] shares.
#[derive(Clone)]
struct Shared {
    provider: Arc<dyn ContextProvider>,
    /// The namespace of a namespaced policy.
    namespace: Option<String>,
    /// Where `generator.Apply` puts resources; `None` outside generating policies.
    generated: Option<GeneratedResources>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Library {
    Resource,
    GlobalContext,
    Http,
    ImageData,
    Generator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    List,
    Post,
    Put,
    Client,
    GetMetadata,
    Apply,
}

/// The value of a library variable.
#[derive(Clone)]
struct Receiver {
    library: Library,
    shared: Arc<Shared>,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.runtime_type_name())
    }
}

impl PartialEq for Receiver {
    fn eq(&self, other: &Self) -> bool {
        self.library == other.library && Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for Receiver {}

impl Opaque for Receiver {
    fn runtime_type_name(&self) -> &str {
        match self.library {
            Library::Resource => "kyverno.resource",
            Library::GlobalContext => "kyverno.globalcontext",
            Library::Http => "kyverno.http",
            Library::ImageData => "kyverno.imagedata",
            Library::Generator => "kyverno.generator",
        }
    }
}

fn call(ftx: &FunctionContext, method: Method, arguments: &[Value]) -> ResolveResult {
    let receiver = match &ftx.this {
        Some(Value::Opaque(opaque)) => opaque.downcast_ref::<Receiver>(),
        _ => None,
    };
    let Some(receiver) = receiver else {
        let target = ftx
            .this
            .as_ref()
            .map_or_else(|| "nothing".to_owned(), type_name);
        return Err(ftx.error(format!("no such overload: {}() on {target}", ftx.name)));
    };
    let call = Call {
        ftx,
        shared: &receiver.shared,
        arguments,
    };
    match (receiver.library, method) {
        (Library::Resource, Method::Get) => call.resource_get(),
        (Library::Resource, Method::List) => call.resource_list(),
        (Library::Resource, Method::Post) => call.resource_post(),
        (Library::GlobalContext, Method::Get) => call.global_context_get(),
        (Library::Http, Method::Get) => call.http("GET"),
        (Library::Http, Method::Post) => call.http("POST"),
        (Library::Http, Method::Put) => call.http("PUT"),
        (Library::Http, Method::Client) => call.http_client(receiver),
        (Library::ImageData, Method::GetMetadata) => call.image_metadata(),
        (Library::Generator, Method::Apply) => call.generator_apply(),
        _ => Err(ftx.error(format!(
            "no such overload: {}() on {}",
            ftx.name,
            receiver.runtime_type_name()
        ))),
    }
}

/// One method call: its context, the receiver's shared state and the resolved arguments.
struct Call<'a, 'context, 'call> {
    ftx: &'a FunctionContext<'context, 'call>,
    shared: &'a Shared,
    arguments: &'a [Value],
}

impl Call<'_, '_, '_> {
    /// `Get(apiVersion, resource, namespace, name)`, in a namespaced policy
    /// `Get(apiVersion, resource, name)`: the object, `null` when it does not exist.
    fn resource_get(&self) -> ResolveResult {
        let (api_version, resource, namespace, name) = match &self.shared.namespace {
            Some(namespace) => {
                self.expect_count(3)?;
                (
                    self.string(0)?,
                    self.string(1)?,
                    namespace.as_str(),
                    self.string(2)?,
                )
            }
            None => {
                self.expect_count(4)?;
                (
                    self.string(0)?,
                    self.string(1)?,
                    self.string(2)?,
                    self.string(3)?,
                )
            }
        };
        let lookup = self
            .shared
            .provider
            .get_api_resource(api_version, resource, namespace, name);
        match self.lookup(lookup, "failed to get resource")? {
            Some(object) => Ok(from_json(&object)),
            None => Ok(Value::Null),
        }
    }

    /// `List(apiVersion, resource, namespace[, labels])`, in a namespaced policy
    /// `List(apiVersion, resource[, labels])`: the list object, its `items` narrowed to those
    /// carrying every label of `labels`.
    fn resource_list(&self) -> ResolveResult {
        let (namespace, labels_index) = match &self.shared.namespace {
            Some(namespace) => (namespace.as_str(), 2),
            None => (self.string(2)?, 3),
        };
        if !(labels_index..=labels_index + 1).contains(&self.arguments.len()) {
            return Err(ExecutionError::invalid_argument_count(
                labels_index,
                self.arguments.len(),
            ));
        }
        let (api_version, resource) = (self.string(0)?, self.string(1)?);
        let labels = match self.arguments.get(labels_index) {
            Some(_) => Some(self.string_map(labels_index)?),
            None => None,
        };
        let lookup = self
            .shared
            .provider
            .list_api_resources(api_version, resource, namespace);
        let mut list = self
            .lookup(lookup, "failed to list resource")?
            .ok_or_else(|| {
                self.ftx.error(format!(
                    "failed to list resource: {resource} of {api_version} are not available"
                ))
            })?;
        if let (Some(labels), Some(serde_json::Value::Array(items))) =
            (labels, list.get_mut("items"))
        {
            items.retain(|item| has_labels(item, &labels));
        }
        Ok(from_json(&list))
    }

    /// `Post(apiVersion, resource, namespace, object)`, `Post(apiVersion, resource, object)`
    /// for cluster-wide resources (or the policy's namespace in a namespaced policy): the
    /// created object.
    fn resource_post(&self) -> ResolveResult {
        let (namespace, object_index) = match (&self.shared.namespace, self.arguments.len()) {
            (Some(namespace), 3) => (namespace.as_str(), 2),
            (None, 3) => ("", 2),
            (None, 4) => (self.string(2)?, 3),
            (Some(_), count) => return Err(ExecutionError::invalid_argument_count(3, count)),
            (None, count) => return Err(ExecutionError::invalid_argument_count(4, count)),
        };
        let object = self.json(object_index)?;
        let lookup = self.shared.provider.create_api_resource(
            self.string(0)?,
            self.string(1)?,
            namespace,
            &object,
        );
        self.lookup(lookup, "failed to create resource")?
            .map(|created| from_json(&created))
            .ok_or_else(|| {
                self.ftx
                    .error("failed to create resource: the cluster is not available")
            })
    }

    /// `Get(name[, projection])`: the entry's data (or the named projection of it), `null`
    /// when there is no such entry.
    fn global_context_get(&self) -> ResolveResult {
        if !(1..=2).contains(&self.arguments.len()) {
            return Err(ExecutionError::invalid_argument_count(
                2,
                self.arguments.len(),
            ));
        }
        let name = self.string(0)?;
        let projection = match self.arguments.get(1) {
            Some(_) => self.string(1)?,
            None => "",
        };
        let lookup = self.shared.provider.global_context(name);
        let Some(data) = self.lookup(lookup, "failed to get global reference")? else {
            return Ok(Value::Null);
        };
        match (projection, &data) {
            ("", _) => Ok(from_json(&data)),
            (projection, serde_json::Value::Object(fields)) => {
                fields.get(projection).map(from_json).ok_or_else(|| {
                    self.ftx.error(format!(
                        "failed to get global reference: projection {projection:?} not found \
                         in global context entry {name:?}"
                    ))
                })
            }
            _ => Ok(from_json(&data)),
        }
    }

    /// `Get(url[, headers])`, `Post(url, body[, headers])`, `Put(url, body[, headers])`.
    fn http(&self, method: &str) -> ResolveResult {
        let with_body = method != "GET";
        let headers_index = if with_body { 2 } else { 1 };
        if !(headers_index..=headers_index + 1).contains(&self.arguments.len()) {
            return Err(ExecutionError::invalid_argument_count(
                headers_index,
                self.arguments.len(),
            ));
        }
        let url = self.string(0)?;
        let body = if with_body { Some(self.json(1)?) } else { None };
        let headers = match self.arguments.get(headers_index) {
            Some(_) => self.string_map(headers_index)?,
            None => BTreeMap::new(),
        };
        let lookup = self
            .shared
            .provider
            .http_request(method, url, body.as_ref(), &headers);
        self.lookup(lookup, "request failed")?
            .map(|response| from_json(&response))
            .ok_or_else(|| {
                self.ftx
                    .error(format!("request failed: no response for {method} {url}"))
            })
    }

    /// `Client(caBundle)`: a client trusting the bundle. Requests go through the provider,
    /// which owns the transport, so it is the same receiver.
    fn http_client(&self, receiver: &Receiver) -> ResolveResult {
        self.expect_count(1)?;
        self.string(0)?;
        Ok(Value::Opaque(Arc::new(receiver.clone())))
    }

    /// `GetMetadata(image)`: the image's metadata (manifest, config...) from its registry.
    fn image_metadata(&self) -> ResolveResult {
        self.expect_count(1)?;
        let image = self.string(0)?;
        let lookup = self.shared.provider.image_data(image);
        self.lookup(lookup, "failed to get image data")?
            .map(|data| from_json(&data))
            .ok_or_else(|| {
                self.ftx.error(format!(
                    "failed to get image data: image data for {image} not found in the context"
                ))
            })
    }

    /// `Apply(namespace, resources)`, in a namespaced policy `Apply(resources)`: queues the
    /// resources (a `List`'s items one by one) for creation in `namespace`, `true`.
    fn generator_apply(&self) -> ResolveResult {
        let (namespace, resources) = match &self.shared.namespace {
            Some(namespace) => {
                self.expect_count(1)?;
                (namespace.as_str(), self.json(0)?)
            }
            None => {
                self.expect_count(2)?;
                (self.string(0)?, self.json(1)?)
            }
        };
        let (Some(generated), serde_json::Value::Array(resources)) =
            (&self.shared.generated, resources)
        else {
            return Err(self
                .ftx
                .error("failed to generate resources: expected a list of objects"));
        };
        for resource in resources {
            let serde_json::Value::Object(mut fields) = resource else {
                return Err(self.ftx.error(format!(
                    "failed to generate resources: {resource} is not an object"
                )));
            };
            // An object with an `items` list is a List, whose items are generated one by one.
            if fields.get("items").is_some_and(serde_json::Value::is_array) {
                if let Some(serde_json::Value::Array(items)) = fields.remove("items") {
                    for item in items {
                        generated.push(in_namespace(item, namespace));
                    }
                }
            } else {
                generated.push(in_namespace(serde_json::Value::Object(fields), namespace));
            }
        }
        Ok(Value::Bool(true))
    }

    fn expect_count(&self, count: usize) -> Result<(), ExecutionError> {
        if self.arguments.len() == count {
            Ok(())
        } else {
            Err(ExecutionError::invalid_argument_count(
                count,
                self.arguments.len(),
            ))
        }
    }

    fn string(&self, index: usize) -> Result<&str, ExecutionError> {
        match self.arguments.get(index) {
            Some(Value::String(text)) => Ok(text.as_str()),
            Some(other) => Err(self.ftx.error(format!(
                "argument {} must be a string, not {}",
                index + 1,
                type_name(other)
            ))),
            None => Err(ExecutionError::invalid_argument_count(
                index + 1,
                self.arguments.len(),
            )),
        }
    }

    /// A `map(string, string)` argument (labels, headers).
    fn string_map(&self, index: usize) -> Result<BTreeMap<String, String>, ExecutionError> {
        match self.json(index)? {
            serde_json::Value::Object(fields) => fields
                .into_iter()
                .map(|(key, value)| match value {
                    serde_json::Value::String(value) => Ok((key, value)),
                    other => Err(self.ftx.error(format!(
                        "the value of {key:?} must be a string, not {other}"
                    ))),
                })
                .collect(),
            other => Err(self.ftx.error(format!(
                "argument {} must be a map of strings, not {other}",
                index + 1
            ))),
        }
    }

    /// An argument as JSON (request bodies, resources).
    fn json(&self, index: usize) -> Result<serde_json::Value, ExecutionError> {
        let argument = self.arguments.get(index).ok_or_else(|| {
            ExecutionError::invalid_argument_count(index + 1, self.arguments.len())
        })?;
        to_json(argument).map_err(|error| self.ftx.error(error))
    }

    /// The data of a lookup; a provider error becomes an evaluation error prefixed with
    /// `context` (upstream's wording).
    fn lookup(
        &self,
        lookup: Result<Lookup, ProviderError>,
        context: &str,
    ) -> Result<Option<serde_json::Value>, ExecutionError> {
        match lookup {
            Ok(Lookup::Found(data)) => Ok(Some(data)),
            Ok(Lookup::Unavailable) => Ok(None),
            Err(error) => Err(self.ftx.error(format!("{context}: {error}"))),
        }
    }
}

/// Whether `object` carries every label of `labels`.
fn has_labels(object: &serde_json::Value, labels: &BTreeMap<String, String>) -> bool {
    let carried = object.pointer("/metadata/labels");
    labels.iter().all(|(key, value)| {
        carried
            .and_then(|carried| carried.get(key))
            .and_then(serde_json::Value::as_str)
            == Some(value.as_str())
    })
}

/// `resource` with `metadata.namespace` set to `namespace`, or removed when it is empty.
fn in_namespace(mut resource: serde_json::Value, namespace: &str) -> serde_json::Value {
    if let Some(fields) = resource.as_object_mut() {
        let metadata = fields
            .entry("metadata")
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            if namespace.is_empty() {
                metadata.remove("namespace");
            } else {
                metadata.insert("namespace".to_owned(), namespace.into());
            }
        }
    }
    resource
}
