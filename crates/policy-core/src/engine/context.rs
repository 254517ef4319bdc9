//! The variables a rule sees: `request.*`, `images`, `serviceAccountName`, values supplied from
//! outside, context entries, and `element`/`elementIndex` inside foreach.
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::EngineError;
use super::provider::{ContextProvider, Lookup};
use crate::request::ResourceRequest;
use crate::variables::{self, Context};
use kyverno_api::kyverno::v1::context::{ApiCall, ContextEntry, HttpMethod};
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;

/// The variables of a rule, with the loading of its context entries. Cheap to clone: the
/// variables are shared until a clone changes them.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuleContext {
    variables: Arc<Context>,
}

impl RuleContext {
    /// The variables of a request: `request.*`, `serviceAccountName`, `serviceAccountNamespace`
    /// and `images`. Built once per request and shared by every policy evaluated on it.
    pub(crate) fn for_request(request: &ResourceRequest) -> Self {
        let variables = request
            .derived()
            .rule_variables
            .get_or_init(|| Arc::new(request_variables(request)));
        Self {
            variables: Arc::clone(variables),
        }
    }

    /// The whole document.
    pub(crate) fn data(&self) -> &Value {
        self.variables.data()
    }

    /// Sets a variable; a dotted key (`request.operation`) sets a nested field.
    pub(crate) fn set_variable(&mut self, key: &str, value: Value) {
        match Arc::get_mut(&mut self.variables) {
            Some(variables) => variables.set(key, value),
            // Shared: copy all but what the key replaces (often the large `request.object`).
            None => self.variables = Arc::new(self.variables.with(key, value)),
        }
    }

    /// Makes a foreach element current (`element`, `elementIndex` and their numbered forms).
    pub(crate) fn set_element(&mut self, element: Value, index: usize, nesting: usize) {
        Arc::make_mut(&mut self.variables).set_element(element, index, nesting);
    }

    /// Sets every variable of a map of dotted keys.
    pub(crate) fn set_variables(&mut self, values: &Map<String, Value>) {
        for (key, value) in values {
            self.set_variable(key, value.clone());
        }
    }

    /// Replaces `{{ }}` variables in a JSON tree found at `path` of the rule (e.g.
    /// `/validate/pattern`; `{{ @ }}` reads the resource at the same place).
    pub(crate) fn substitute_at(&self, value: &Value, path: &str) -> Result<Value, EngineError> {
        Ok(variables::substitute_at(value, path, &self.variables)?)
    }

    /// Replaces `{{ }}` variables in a JSON tree.
    pub(crate) fn substitute(&self, value: &Value) -> Result<Value, EngineError> {
        Ok(variables::substitute(value, &self.variables)?)
    }

    /// Replaces `{{ }}` variables in a string; a non-string result is written as JSON.
    pub(crate) fn substitute_str(&self, text: &str) -> Result<String, EngineError> {
        match variables::substitute_str(text, &self.variables)? {
            Value::String(text) => Ok(text),
            other => Ok(other.to_string()),
        }
    }

    /// Evaluates a JMESPath expression against the variables.
    pub(crate) fn query(&self, expression: &str) -> Result<Value, EngineError> {
        Ok(self.variables.query(expression)?)
    }

    /// Loads context entries in order; each may use the ones before it.
    pub(crate) fn load_entries(
        &mut self,
        entries: &[ContextEntry],
        provider: &dyn ContextProvider,
    ) -> Result<(), EngineError> {
        for entry in entries {
            self.load_entry(entry, provider)?;
        }
        Ok(())
    }

    fn load_entry(
        &mut self,
        entry: &ContextEntry,
        provider: &dyn ContextProvider,
    ) -> Result<(), EngineError> {
        let name = &entry.name;
        if let Some(variable) = &entry.variable {
            let default = variable
                .default
                .as_ref()
                .map(|d| self.substitute(d))
                .transpose()?;
            let path = variable
                .jmes_path
                .as_deref()
                .map(|p| self.substitute_str(p))
                .transpose()?;
            let mut output = default.clone();
            if let Some(value) = &variable.value {
                let value = self.substitute(value)?;
                match &path {
                    Some(path) => match crate::jmespath::search(path, &value) {
                        Ok(found) => output = Some(found),
                        Err(error) if default.is_none() => {
                            return Err(EngineError::Context(format!(
                                "failed to apply jmespath {path} to variable {value}: {error}"
                            )));
                        }
                        Err(_) => {}
                    },
                    None => output = Some(value),
                }
            } else if let Some(path) = &path {
                match self.query(path) {
                    Ok(Value::Null) => {}
                    Ok(found) => output = Some(found),
                    Err(error) if default.is_none() => {
                        return Err(EngineError::Context(format!(
                            "failed to apply jmespath {path} to variable {error}"
                        )));
                    }
                    Err(_) => {}
                }
            }
            match output {
                Some(Value::Null) | None => Err(EngineError::Context(format!(
                    "unable to add context entry for variable {name} since it evaluated to nil"
                ))),
                Some(value) => {
                    self.set_variable(name, value);
                    Ok(())
                }
            }
        } else if let Some(config_map) = &entry.config_map {
            let cm_name = self.substitute_str(&config_map.name)?;
            let namespace = match &config_map.namespace {
                Some(namespace) => self.substitute_str(namespace)?,
                None => "default".to_owned(),
            };
            let lookup = provider.config_map(&namespace, &cm_name).map_err(|e| {
                EngineError::Context(format!(
                    "failed to load ConfigMap {namespace}/{cm_name}: {e}"
                ))
            })?;
            self.store_lookup(name, lookup, None, None)
        } else if let Some(api_call) = &entry.api_call {
            let lookup = self.call_api(api_call, provider)?;
            self.store_lookup(
                name,
                lookup,
                api_call.jmes_path.as_deref(),
                api_call.default.as_ref(),
            )
        } else if let Some(reference) = &entry.global_reference {
            let gctx_name = self.substitute_str(&reference.name)?;
            let lookup = provider.global_context(&gctx_name).map_err(|e| {
                EngineError::Context(format!(
                    "failed to load global context entry {gctx_name}: {e}"
                ))
            })?;
            self.store_lookup(name, lookup, reference.jmes_path.as_deref(), None)
        } else if let Some(registry) = &entry.image_registry {
            let reference = self.substitute_str(&registry.reference)?;
            let lookup = provider.image_data(&reference).map_err(|e| {
                EngineError::Context(format!("failed to fetch image data for {reference}: {e}"))
            })?;
            self.store_lookup(name, lookup, registry.jmes_path.as_deref(), None)
        } else {
            Ok(())
        }
    }

    fn call_api(
        &self,
        call: &ApiCall,
        provider: &dyn ContextProvider,
    ) -> Result<Lookup, EngineError> {
        let method = match call.method {
            Some(HttpMethod::Post) => "POST",
            Some(HttpMethod::Get) | None => "GET",
        };
        let body = if call.data.is_empty() {
            None
        } else {
            let mut body = Map::new();
            for item in &call.data {
                body.insert(item.key.clone(), self.substitute(&item.value)?);
            }
            Some(Value::Object(body))
        };
        let outcome = match (&call.service, &call.url_path) {
            (Some(service), _) => {
                let url = self.substitute_str(&service.url)?;
                provider.service_call(method, &url, body.as_ref())
            }
            (None, Some(path)) => {
                let path = self.substitute_str(path)?;
                provider.api_call(method, &path, body.as_ref())
            }
            (None, None) => return Ok(Lookup::Unavailable),
        };
        match (outcome, &call.default) {
            (Ok(lookup), _) => Ok(lookup),
            (Err(_), Some(default)) => Ok(Lookup::Found(self.substitute(default)?)),
            (Err(error), None) => Err(EngineError::Context(format!(
                "failed to execute APICall: {error}"
            ))),
        }
    }

    /// Stores a provider's answer, after its JMESPath, under the entry's name; an unavailable
    /// answer leaves the variable as it is (values supplied from outside stand in for it).
    fn store_lookup(
        &mut self,
        name: &str,
        lookup: Lookup,
        jmes_path: Option<&str>,
        default: Option<&Value>,
    ) -> Result<(), EngineError> {
        let Lookup::Found(data) = lookup else {
            return Ok(());
        };
        let value = match jmes_path.filter(|p| !p.is_empty()) {
            Some(path) => {
                let path = self.substitute_str(path)?;
                match (crate::jmespath::search(&path, &data), default) {
                    (Ok(Value::Null) | Err(_), Some(default)) => self.substitute(default)?,
                    (Ok(found), _) => found,
                    (Err(error), None) => {
                        return Err(EngineError::Context(format!(
                            "failed to apply JMESPath {path} to context entry {name}: {error}"
                        )));
                    }
                }
            }
            None => data,
        };
        self.set_variable(name, value);
        Ok(())
    }
}

/// The variables of `request` every rule starts from (see [`RuleContext::for_request`]).
fn request_variables(request: &ResourceRequest) -> Context {
    let images =
        crate::images::extract_images(request.resource(), &BTreeMap::new()).unwrap_or(Value::Null);
    let info = request.request_info();
    let user = &info.user_info;
    let gvk = request.gvk();
    let operation = request
        .operation()
        .map_or("CREATE", AdmissionOperation::as_str);
    let mut request_data = json!({
        "operation": operation,
        "object": request.resource().as_ref(),
        "oldObject": request.old_resource().map_or(Value::Null, |old| old.as_ref().clone()),
        // Serialized as the API server does: empty fields left out, so that a request without
        // groups has `request.userInfo.groups` null rather than `[]`.
        "userInfo": user,
        "roles": info.roles,
        "clusterRoles": info.cluster_roles,
        "namespace": request.namespace(),
        "name": request.name(),
        "kind": {"group": gvk.group, "version": gvk.version, "kind": gvk.kind},
    });
    if !request.subresource().is_empty() {
        request_data["subResource"] = Value::String(request.subresource().to_owned());
    }
    let mut variables = Context::new();
    variables.set("request", request_data);
    if images.as_object().is_some_and(|images| !images.is_empty()) {
        variables.set("images", images);
    }
    // `system:serviceaccount:<namespace>:<name>` names a service account.
    if let Some((namespace, name)) = user
        .username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        variables.set("serviceAccountName", Value::String(name.to_owned()));
        variables.set(
            "serviceAccountNamespace",
            Value::String(namespace.to_owned()),
        );
    }
    variables
}
