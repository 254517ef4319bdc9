//! What the CEL policy kinds share: the request they are evaluated for, compiling the lists of
//! a specification (variables, validations, audit annotations, exceptions) with errors located
//! in the policy, binding Kyverno's libraries, and small readers of JSON documents.
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::{
    AuditAnnotation, MatchCondition, MatchResources, ParamRef, Validation, Variable,
};
use kyverno_api::policies::exception::PolicyException;
use serde_json::{Map, Value};

use super::CompiledMatchConditions;
use super::activation::Activation;
use super::exceptions::{CompiledException, ExceptionCompileError};
use super::matching::{self, MatchRequest};
use super::resources::GroupVersionResource;
use super::validations::{AuditAnnotationOutcome, CompiledAuditAnnotation, CompiledValidation};
use super::variables::{CompileError, CompiledVariables, Evaluator};
use crate::cel::libs::Libraries;
use crate::engine::ContextProvider;
use crate::matching::selector_matches;
use crate::request::ResourceRequest;

/// One admission request as the CEL policy kinds evaluate it, with its documents converted to
/// CEL once for every policy.
pub struct RequestInput<'a> {
    /// The admission request; its resource is the object evaluated.
    pub request: &'a ResourceRequest,
    /// The requested endpoint (`pods`), for matching.
    pub resource: &'a GroupVersionResource,
    /// The request namespace's Namespace object, when known (for `namespaceSelector` and
    /// `namespaceObject`).
    pub namespace_object: Option<&'a Value>,
    activation: Activation,
}

impl std::fmt::Debug for RequestInput<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RequestInput")
            .field("request", &self.request)
            .field("resource", &self.resource)
            .field("namespace_object", &self.namespace_object)
            .finish_non_exhaustive()
    }
}

impl<'a> RequestInput<'a> {
    /// The input of `request` for the endpoint `resource`, its CEL variables built with
    /// [`Activation::new`].
    pub fn new(
        request: &'a ResourceRequest,
        resource: &'a GroupVersionResource,
        namespace_object: Option<&'a Value>,
    ) -> Self {
        Self {
            request,
            resource,
            namespace_object,
            activation: Activation::new(request, resource, namespace_object),
        }
    }

    /// The request's CEL variables (`object`, `oldObject`, `request`, `namespaceObject`).
    pub fn activation(&self) -> &Activation {
        &self.activation
    }

    /// The request's match attributes ([`MatchRequest::from_request`]).
    pub fn match_request(&self) -> MatchRequest<'a> {
        MatchRequest::from_request(self.request, self.resource, self.namespace_object)
    }

    /// Whether a policy's `constraints` select the request: `None` when they do not (no
    /// constraints select nothing), else `Ok`, or the error upstream reports when matching
    /// fails.
    pub(crate) fn selected_by(
        &self,
        constraints: Option<&MatchResources>,
    ) -> Option<Result<(), String>> {
        match matching::matches(constraints?, &self.match_request()) {
            Ok(true) => Some(Ok(())),
            Ok(false) => None,
            Err(error) => Some(Err(format!("failed to execute matching: {error}"))),
        }
    }
}

/// A CEL policy that does not load, located by kind, policy and field path.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {policy:?}: {path}: {message}")]
pub struct CelPolicyLoadError {
    /// The policy's kind.
    pub kind: &'static str,
    /// The policy's name.
    pub policy: String,
    /// The field at fault, such as `spec.generate[1].expression` (with the exception's name
    /// for an exception's condition).
    pub path: String,
    /// What is wrong; for an expression, the compiler's error with its position
    /// (`<input>:1:5`).
    pub message: String,
}

/// Compiles the parts of one policy's specification, reporting errors as
/// [`CelPolicyLoadError`]s of that policy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpecCompiler<'a> {
    /// The policy's kind.
    pub kind: &'static str,
    /// The policy's name.
    pub name: &'a str,
}

impl<'a> SpecCompiler<'a> {
    /// A compiler for the policy `name` of a kind with a cluster-wide and a namespaced form
    /// (`kinds`): the namespaced one when the policy has a `namespace`.
    pub fn new(
        name: &'a str,
        namespace: Option<&str>,
        [cluster_kind, namespaced_kind]: [&'static str; 2],
    ) -> Self {
        let kind = if namespace.is_some() {
            namespaced_kind
        } else {
            cluster_kind
        };
        Self { kind, name }
    }

    /// The error of an expression of the policy that does not compile.
    pub fn error(&self, error: CompileError) -> CelPolicyLoadError {
        self.invalid(error.path, error.source.to_string())
    }

    /// The error of the field at `path` of the policy.
    pub fn invalid(&self, path: String, message: String) -> CelPolicyLoadError {
        CelPolicyLoadError {
            kind: self.kind,
            policy: self.name.to_owned(),
            path,
            message,
        }
    }

    /// The policy's `variables` (at `spec.variables`).
    pub fn variables(
        &self,
        variables: &[Variable],
    ) -> Result<CompiledVariables, CelPolicyLoadError> {
        compile_variables(variables, "spec.variables").map_err(|error| self.error(error))
    }

    /// The policy's `matchConditions` (at `spec.matchConditions`), which do not see the
    /// policy's variables.
    pub fn match_conditions(
        &self,
        conditions: &[MatchCondition],
    ) -> Result<CompiledMatchConditions, CelPolicyLoadError> {
        CompiledMatchConditions::compile(
            conditions,
            &CompiledVariables::default(),
            "spec.matchConditions",
        )
        .map_err(|error| self.error(error))
    }

    /// The policy's `auditAnnotations` (at `spec.auditAnnotations`).
    pub fn audit_annotations(
        &self,
        annotations: &[AuditAnnotation],
        variables: &CompiledVariables,
    ) -> Result<Vec<CompiledAuditAnnotation>, CelPolicyLoadError> {
        compile_audit_annotations(annotations, variables, "spec.auditAnnotations")
            .map_err(|error| self.error(error))
    }

    /// The exceptions among `exceptions` that name the policy, compiled.
    pub fn exceptions(
        &self,
        exceptions: &[Arc<PolicyException>],
    ) -> Result<Vec<CompiledException>, CelPolicyLoadError> {
        CompiledException::compile_for(self.kind, self.name, exceptions)
            .map_err(|error| self.exception_error(error))
    }

    /// The error of an exception's condition that does not compile.
    fn exception_error(&self, error: ExceptionCompileError) -> CelPolicyLoadError {
        self.invalid(
            format!("PolicyException {}: {}", error.exception, error.source.path),
            error.source.source.to_string(),
        )
    }
}

/// Compiles `variables` in order (each sees the ones before it); `path` is the list's location
/// in the policy (`spec.variables`).
pub(crate) fn compile_variables(
    variables: &[Variable],
    path: &str,
) -> Result<CompiledVariables, CompileError> {
    CompiledVariables::compile(
        variables
            .iter()
            .map(|variable| (variable.name.as_str(), variable.expression.as_str())),
        path,
    )
}

/// Compiles each of `items` with `compile(item, path)`, `path` being the item's location:
/// `<list_path>[<index>]`.
pub(crate) fn compile_each<T, C>(
    items: &[T],
    list_path: &str,
    compile: impl Fn(&T, &str) -> Result<C, CompileError>,
) -> Result<Vec<C>, CompileError> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| compile(item, &format!("{list_path}[{index}]")))
        .collect()
}

/// Compiles `validations`, which may use `variables`; `path` is the list's location in the
/// policy (`spec.validations`).
pub(crate) fn compile_validations(
    validations: &[Validation],
    variables: &CompiledVariables,
    path: &str,
) -> Result<Vec<CompiledValidation>, CompileError> {
    compile_each(validations, path, |validation, path| {
        CompiledValidation::compile(validation, variables, path)
    })
}

/// Compiles `annotations`, which may use `variables`; `path` is the list's location in the
/// policy (`spec.auditAnnotations`).
pub(crate) fn compile_audit_annotations(
    annotations: &[AuditAnnotation],
    variables: &CompiledVariables,
    path: &str,
) -> Result<Vec<CompiledAuditAnnotation>, CompileError> {
    compile_each(annotations, path, |annotation, path| {
        CompiledAuditAnnotation::compile(annotation, variables, path)
    })
}

/// Evaluates `annotations`: the published ones by key, or the first failure.
pub(crate) fn evaluate_audit_annotations(
    annotations: &[CompiledAuditAnnotation],
    evaluator: &mut Evaluator<'_>,
) -> Result<BTreeMap<String, String>, String> {
    let mut published = BTreeMap::new();
    for annotation in annotations {
        match annotation.evaluate(evaluator) {
            AuditAnnotationOutcome::Publish(value) => {
                published.insert(annotation.key().to_owned(), value);
            }
            AuditAnnotationOutcome::Exclude => {}
            AuditAnnotationOutcome::Error(error) => {
                return Err(format!(
                    "failed to evaluate auditAnnotation {:?}: {error}",
                    annotation.key()
                ));
            }
        }
    }
    Ok(published)
}

/// Kyverno's libraries (`resource`, `http`, `globalContext`, `image`) reading through
/// `provider`, working in `namespace` for a namespaced policy.
pub(crate) fn libraries(provider: &Arc<dyn ContextProvider>, namespace: Option<&str>) -> Libraries {
    let provider = Arc::clone(provider);
    match namespace {
        Some(namespace) => Libraries::namespaced(provider, namespace),
        None => Libraries::new(provider),
    }
}

/// An evaluator over `activation` with a policy's `variables` and, when given, Kyverno's
/// `libraries` bound.
pub(crate) fn policy_evaluator<'a>(
    activation: &'a Activation,
    variables: &'a CompiledVariables,
    libraries: Option<&Libraries>,
) -> Evaluator<'a> {
    let mut evaluator = Evaluator::new(activation, variables, None);
    for (name, receiver) in libraries.into_iter().flat_map(Libraries::variables) {
        evaluator.bind(name, receiver);
    }
    evaluator
}

/// `constraints` with every resource rule open to all operations, as upstream matches existing
/// resources (no request, no operation).
pub(crate) fn for_all_operations(mut constraints: MatchResources) -> MatchResources {
    for rule in constraints.resource_rules.iter_mut().flatten() {
        rule.operations = Some(vec!["*".to_owned()]);
    }
    constraints
}

/// The `params` a binding's `paramRef` selects among `candidates`, as upstream's CLI picks them
/// without a cluster: with a `selector`, every candidate it selects, as a list object (none
/// when it selects none); otherwise the first candidate with the reference's name or, without
/// a name, in its namespace.
pub(crate) fn select_params(reference: &ParamRef, candidates: &[Value]) -> Option<Value> {
    let Some(selector) = &reference.selector else {
        let set = |field: &Option<String>| field.clone().filter(|value| !value.is_empty());
        let (pointer, wanted) = match (set(&reference.name), set(&reference.namespace)) {
            (Some(name), _) => ("/metadata/name", name),
            (None, Some(namespace)) => ("/metadata/namespace", namespace),
            (None, None) => return None,
        };
        return candidates
            .iter()
            .find(|candidate| text(candidate, pointer) == wanted)
            .cloned();
    };
    let items: Vec<Value> = candidates
        .iter()
        .filter(|candidate| selector_matches(selector, &labels(candidate)).unwrap_or(false))
        .cloned()
        .collect();
    (!items.is_empty()).then(|| {
        let mut list = Map::new();
        list.insert("items".to_owned(), Value::Array(items));
        Value::Object(list)
    })
}

/// The string labels of an object (`metadata.labels`).
pub fn labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect()
}

/// A string field of a document, `""` when absent.
pub(crate) fn text<'a>(document: &'a Value, pointer: &str) -> &'a str {
    document
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The name of a JSON value's type as CEL calls it (`map`, `list`, `string`...).
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    /// The name, namespace and specification of a YAML policy document of a kind with a
    /// cluster-wide and a namespaced form (the namespace is only read for a `Namespaced` kind).
    pub(crate) fn read_policy<S: DeserializeOwned>(yaml: &str) -> (String, Option<String>, S) {
        let document: Value = serde_saphyr::from_str(yaml).expect("yaml");
        let metadata = &document["metadata"];
        let field = |name: &str| metadata[name].as_str().map(str::to_owned);
        let namespaced = text(&document, "/kind").starts_with("Namespaced");
        let namespace = field("namespace").filter(|_| namespaced);
        let spec = serde_json::from_value(document["spec"].clone()).expect("spec");
        (field("name").unwrap_or_default(), namespace, spec)
    }

    #[test]
    fn params_are_picked_by_name_then_namespace_or_selected_as_a_list() {
        let candidates = [
            json!({"metadata": {"name": "a", "namespace": "x", "labels": {"team": "t"}}}),
            json!({"metadata": {"name": "b", "namespace": "y", "labels": {"team": "t"}}}),
            json!({"metadata": {"name": "c", "namespace": "y"}}),
        ];
        let reference = |value: Value| -> ParamRef { serde_json::from_value(value).expect("ref") };
        assert_eq!(
            select_params(
                &reference(json!({"name": "b", "namespace": "x"})),
                &candidates
            ),
            Some(candidates[1].clone())
        );
        assert_eq!(
            select_params(&reference(json!({"namespace": "y"})), &candidates),
            Some(candidates[1].clone())
        );
        assert_eq!(select_params(&reference(json!({})), &candidates), None);
        assert_eq!(
            select_params(
                &reference(json!({"selector": {"matchLabels": {"team": "t"}}})),
                &candidates
            ),
            Some(json!({"items": [candidates[0], candidates[1]]}))
        );
        assert_eq!(
            select_params(
                &reference(json!({"selector": {"matchLabels": {"team": "none"}}})),
                &candidates
            ),
            None
        );
    }

    #[test]
    fn operations_are_opened_to_all() {
        let constraints: MatchResources = serde_json::from_value(json!({"resourceRules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
        ]}))
        .expect("constraints");
        let opened = for_all_operations(constraints);
        assert_eq!(
            opened.resource_rules.expect("rules")[0].operations,
            Some(vec!["*".to_owned()])
        );
    }
}
