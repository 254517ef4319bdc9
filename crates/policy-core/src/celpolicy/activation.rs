//! The variables a CEL admission expression sees, as the Kubernetes API server binds them:
//! `object` (null on DELETE), `oldObject` (null on CREATE), `request` (the admission request
//! without its objects), `namespaceObject` (null for cluster-scoped resources) and, per policy,
//! `params` and `variables`.
//!
//! Binding a document to a CEL scope converts it into the interpreter's own value tree, which
//! costs a walk of the whole document. An [`Activation`] holds that converted base scope, built
//! once per request; every policy evaluated for the request opens a cheap child scope over it
//! ([`Activation::scope`]).
//!
//! `authorizer` is not bound: authorization checks need a cluster, and upstream's CLI has none
//! to ask. An expression calling it fails with an error saying so.
use std::sync::Arc;

use kube_cel::cel::{Context, Value as CelValue};
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use serde_json::{Map, Value, json};

use super::resources::GroupVersionResource;
use crate::cel;
use crate::request::{GroupVersionKind, ResourceRequest};

/// `object`: the object of the request, null for DELETE.
pub const OBJECT: &str = "object";
/// `oldObject`: the existing object, null for CREATE.
pub const OLD_OBJECT: &str = "oldObject";
/// `request`: the admission request.
pub const REQUEST: &str = "request";
/// `namespaceObject`: the namespace of the object, null for cluster-scoped objects.
pub const NAMESPACE_OBJECT: &str = "namespaceObject";
/// `params`: the parameter resource of the policy, null without one.
pub const PARAMS: &str = "params";
/// `authorizer`: authorization checks for the requester (not bound offline).
pub const AUTHORIZER: &str = "authorizer";
/// `variables`: the policy's composited variables.
pub const VARIABLES: &str = "variables";

/// The base scope of one admission request: its documents bound as CEL variables, shared by
/// every policy evaluated for it.
pub struct Activation {
    scope: Context<'static>,
}

impl std::fmt::Debug for Activation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Activation").finish_non_exhaustive()
    }
}

impl Activation {
    /// The activation of `request`: `object`, `oldObject`, `request` (for the endpoint
    /// `resource`) and `namespaceObject`. Without a `namespace_object`, a namespaced request
    /// sees a Namespace carrying only its name, as upstream's CLI builds it
    /// ([`namespace_stub`]).
    pub fn new(
        request: &ResourceRequest,
        resource: &GroupVersionResource,
        namespace_object: Option<&Value>,
    ) -> Self {
        let (object, old_object) = objects(request);
        let namespace = request_namespace(request);
        let namespace_object = match (namespace_object, namespace) {
            (_, "") => CelValue::Null,
            (Some(found), _) => cel::from_json(found),
            (None, name) => cel::from_json(&namespace_stub(name)),
        };
        Self::from_values([
            (OBJECT, object.map_or(CelValue::Null, |o| cel::from_json(o))),
            (
                OLD_OBJECT,
                old_object.map_or(CelValue::Null, |o| cel::from_json(o)),
            ),
            (
                REQUEST,
                cel::from_json(&admission_request(request, resource)),
            ),
            (NAMESPACE_OBJECT, namespace_object),
        ])
    }

    /// An activation binding exactly `variables` (for evaluations that are not admission
    /// requests, such as JSON payloads).
    pub fn from_values<'n>(variables: impl IntoIterator<Item = (&'n str, CelValue)>) -> Self {
        let mut scope = cel::scope();
        for (name, value) in variables {
            scope.add_variable_from_value(name, value);
        }
        Self { scope }
    }

    /// Binds another variable for every evaluation over this activation, such as the receivers
    /// of Kyverno's libraries (`for (name, value) in libraries.variables() { activation.bind(name,
    /// value) }`): bound once per request instead of once per policy.
    pub fn bind(&mut self, name: &str, value: CelValue) {
        self.scope.add_variable_from_value(name, value);
    }

    /// A child scope for one policy evaluation: the request's variables, to which the caller
    /// adds its own (`params`, `variables`, library objects).
    pub fn scope(&self) -> Context<'_> {
        self.scope.new_inner_scope()
    }
}

/// The new and old objects of `request` as admission sees them: no object on DELETE (the
/// resource under evaluation is then the old object), no old object on CREATE.
pub fn objects(request: &ResourceRequest) -> (Option<&Arc<Value>>, Option<&Arc<Value>>) {
    match request.operation() {
        Some(AdmissionOperation::Delete) => (
            None,
            Some(request.old_resource().unwrap_or(request.resource())),
        ),
        Some(AdmissionOperation::Create) => (Some(request.resource()), None),
        _ => (Some(request.resource()), request.old_resource()),
    }
}

/// The namespace of a request: the object's namespace, none for a Namespace itself.
pub fn request_namespace(request: &ResourceRequest) -> &str {
    let gvk = request.gvk();
    if gvk.group.is_empty() && gvk.version == "v1" && gvk.kind == "Namespace" {
        return "";
    }
    match request.namespace() {
        "" => request
            .old_resource()
            .and_then(|old| old.pointer("/metadata/namespace"))
            .and_then(Value::as_str)
            .unwrap_or_default(),
        namespace => namespace,
    }
}

/// The Namespace object upstream's CLI binds as `namespaceObject` when it has no cluster to read
/// it from: a Namespace with only its name.
pub fn namespace_stub(name: &str) -> Value {
    json!({"metadata": {"name": name, "creationTimestamp": null}, "spec": {}, "status": {}})
}

/// The `request` variable: the admission request (`admission.k8s.io/v1` AdmissionRequest)
/// without its objects, with the fields Kubernetes leaves out when empty left out.
pub fn admission_request(request: &ResourceRequest, resource: &GroupVersionResource) -> Value {
    let gvk = request.gvk();
    let kind = group_version_kind(gvk);
    let resource = json!({
        "group": resource.group,
        "version": resource.version,
        "resource": resource.resource,
    });
    let mut fields = Map::new();
    fields.insert("uid".to_owned(), Value::String(String::new()));
    fields.insert("kind".to_owned(), kind.clone());
    fields.insert("resource".to_owned(), resource.clone());
    insert_non_empty(&mut fields, "subResource", request.subresource());
    fields.insert("requestKind".to_owned(), kind);
    fields.insert("requestResource".to_owned(), resource);
    insert_non_empty(&mut fields, "requestSubResource", request.subresource());
    let (object, old_object) = objects(request);
    let named = object.or(old_object).map_or("", |object| {
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    });
    insert_non_empty(&mut fields, "name", named);
    insert_non_empty(&mut fields, "namespace", request_namespace(request));
    fields.insert(
        "operation".to_owned(),
        Value::String(
            request
                .operation()
                .unwrap_or(AdmissionOperation::Create)
                .as_str()
                .to_owned(),
        ),
    );
    fields.insert(
        "userInfo".to_owned(),
        serde_json::to_value(&request.request_info().user_info)
            .unwrap_or_else(|_| Value::Object(Map::new())),
    );
    fields.insert("dryRun".to_owned(), Value::Bool(false));
    fields.insert("options".to_owned(), Value::Null);
    Value::Object(fields)
}

fn group_version_kind(gvk: &GroupVersionKind) -> Value {
    json!({"group": gvk.group, "version": gvk.version, "kind": gvk.kind})
}

fn insert_non_empty(fields: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        fields.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::request::{AdmissionUserInfo, RequestInfo};

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "prod"}, "spec": {"x": 1}})
    }

    fn pods() -> GroupVersionResource {
        GroupVersionResource::new("", "v1", "pods")
    }

    fn evaluate(activation: &Activation, expression: &str) -> Value {
        let program = cel::Program::compile(expression).expect("compiles");
        program
            .evaluate_json(&activation.scope())
            .expect("evaluates")
    }

    #[test]
    fn request_has_the_admission_request_layout() {
        let info = RequestInfo {
            user_info: AdmissionUserInfo {
                username: "alice".into(),
                groups: vec!["dev".into()],
                extra: BTreeMap::from([("k".into(), vec!["v".into()])]),
                ..Default::default()
            },
            ..Default::default()
        };
        let request = ResourceRequest::new(pod())
            .with_operation(AdmissionOperation::Update)
            .with_request_info(info);
        assert_eq!(
            admission_request(&request, &pods()),
            json!({
                "uid": "",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "web",
                "namespace": "prod",
                "operation": "UPDATE",
                "userInfo": {"username": "alice", "groups": ["dev"], "extra": {"k": ["v"]}},
                "dryRun": false,
                "options": null
            })
        );
    }

    #[test]
    fn subresource_and_default_operation() {
        let request = ResourceRequest::new(pod())
            .with_kind(GroupVersionKind::from_api_version("v1", "Pod"), "status");
        let value = admission_request(&request, &pods());
        assert_eq!(value["subResource"], "status");
        assert_eq!(value["requestSubResource"], "status");
        assert_eq!(value["operation"], "CREATE");
    }

    #[test]
    fn create_has_no_old_object_and_delete_no_object() {
        let create = ResourceRequest::new(pod()).with_operation(AdmissionOperation::Create);
        let activation = Activation::new(&create, &pods(), None);
        assert_eq!(evaluate(&activation, "oldObject == null"), json!(true));
        assert_eq!(evaluate(&activation, "object.spec.x"), json!(1));

        let delete = ResourceRequest::new(pod())
            .with_operation(AdmissionOperation::Delete)
            .with_old_resource(Arc::new(pod()));
        let activation = Activation::new(&delete, &pods(), None);
        assert_eq!(evaluate(&activation, "object == null"), json!(true));
        assert_eq!(
            evaluate(&activation, "oldObject.metadata.name"),
            json!("web")
        );
        assert_eq!(evaluate(&activation, "request.name"), json!("web"));
    }

    #[test]
    fn namespace_object_is_a_stub_a_given_object_or_null() {
        let request = ResourceRequest::new(pod());
        let activation = Activation::new(&request, &pods(), None);
        assert_eq!(
            evaluate(&activation, "namespaceObject.metadata.name"),
            json!("prod")
        );
        let namespace = json!({"metadata": {"name": "prod", "labels": {"team": "a"}}});
        let activation = Activation::new(&request, &pods(), Some(&namespace));
        assert_eq!(
            evaluate(&activation, "namespaceObject.metadata.labels.team"),
            json!("a")
        );
        let cluster_scoped = ResourceRequest::new(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "prod", "namespace": "prod"}}));
        let activation = Activation::new(
            &cluster_scoped,
            &GroupVersionResource::new("", "v1", "namespaces"),
            None,
        );
        assert_eq!(
            evaluate(&activation, "namespaceObject == null"),
            json!(true)
        );
        assert_eq!(
            evaluate(&activation, "has(request.namespace)"),
            json!(false)
        );
    }

    #[test]
    fn bound_variables_are_seen_by_every_scope() {
        let mut activation = Activation::new(&ResourceRequest::new(pod()), &pods(), None);
        activation.bind("extra", CelValue::Int(7));
        assert_eq!(evaluate(&activation, "extra + object.spec.x"), json!(8));
    }

    #[test]
    fn activations_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Activation>();
    }

    #[test]
    fn authorizer_calls_fail_offline() {
        use crate::celpolicy::variables::{CompiledVariables, Evaluator, Expression};
        let activation = Activation::new(&ResourceRequest::new(pod()), &pods(), None);
        let variables = CompiledVariables::default();
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        let expression = Expression::compile(
            "authorizer.group('').resource('pods').check('get').allowed()",
            &variables,
            "x",
        )
        .expect("compiles");
        let error = evaluator
            .evaluate(&expression)
            .expect_err("no authorizer offline");
        assert!(error.cause.contains("authorizer cannot check"), "{error}");
    }
}
