//! Which requests an admission policy applies to: Kubernetes `MatchResources`
//! (`matchConstraints` of ValidatingAdmissionPolicy and of Kyverno's CEL policies, `matchResources`
//! of bindings), as upstream Kyverno's CEL matcher evaluates them.
//!
//! A request matches when its namespace passes `namespaceSelector`, its object (or old object)
//! passes `objectSelector`, no `excludeResourceRules` entry matches and a `resourceRules` entry
//! does (no `resourceRules` at all matches everything). A rule matches on operation (`*` for
//! all), API group, API version (`*` for all), resource and subresource (`*` matches every
//! resource without subresource, `*/*` everything, `pods/*` every subresource of pods), scope
//! (`Namespaced`, `Cluster`, `*`) and, when `resourceNames` is set, the object's name (or, when
//! the name is not set yet, a `generateName` starting with one of the names). `matchPolicy` is
//! not interpreted: as in upstream Kyverno, only the requested resource itself is compared
//! (`Exact`), equivalent resources in other versions are not considered.
use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{MatchResources, NamedRuleWithOperations};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use serde_json::Value;

use super::activation;
use super::common::text;
use super::resources::GroupVersionResource;
use crate::matching::{SelectorError, selector_matches};
use crate::request::ResourceRequest;
use crate::wildcard;

/// The label Kubernetes sets on every namespace to its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The new object of a DELETE request.
static EMPTY_OBJECT: Value = Value::Null;

/// What a request is matched on.
#[derive(Clone, Copy, Debug)]
pub struct MatchRequest<'a> {
    /// The requested resource.
    pub resource: &'a GroupVersionResource,
    /// The requested subresource (`status`, `scale`, ...), empty for the resource itself.
    pub subresource: &'a str,
    /// The admission operation; `None` (background work) is matched only by `*`.
    pub operation: Option<AdmissionOperation>,
    /// The request's namespace: empty for cluster-scoped resources (namespace objects included).
    pub namespace: &'a str,
    /// The object's name, empty when it is to be generated.
    pub name: &'a str,
    /// The new object; `None` when the request has none.
    pub object: Option<&'a Value>,
    /// The old object of UPDATE and DELETE requests.
    pub old_object: Option<&'a Value>,
    /// The request namespace's `Namespace` object when known. Without it the namespace is seen
    /// with the single label `kubernetes.io/metadata.name: <namespace>`, as upstream's CLI does.
    pub namespace_object: Option<&'a Value>,
}

impl<'a> MatchRequest<'a> {
    /// The match attributes of an admission `request` for the endpoint `resource`, as upstream's
    /// CEL engines build them: the operation defaults to CREATE (what upstream's CLI sends), a
    /// DELETE request has an empty object besides its old object, the namespace is the
    /// request's ([`activation::request_namespace`]).
    pub fn from_request(
        request: &'a ResourceRequest,
        resource: &'a GroupVersionResource,
        namespace_object: Option<&'a Value>,
    ) -> Self {
        let operation = request.operation().unwrap_or(AdmissionOperation::Create);
        let (object, old_object) = activation::objects(request);
        let (object, old_object) = (object.map(|o| &**o), old_object.map(|o| &**o));
        let name = object
            .or(old_object)
            .and_then(|object| object.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Upstream builds DELETE attributes with an empty new object, which object selectors
        // see without labels.
        let object = match operation {
            AdmissionOperation::Delete => Some(&EMPTY_OBJECT),
            _ => object,
        };
        Self {
            resource,
            subresource: request.subresource(),
            operation: Some(operation),
            namespace: activation::request_namespace(request),
            name,
            object,
            old_object,
            namespace_object,
        }
    }

    /// The match attributes of the existing `object` served by `resource`, outside any request
    /// (no operation, no old object), in the namespace and with the name the object has.
    pub fn existing(
        object: &'a Value,
        resource: &'a GroupVersionResource,
        namespace_object: Option<&'a Value>,
    ) -> Self {
        Self {
            resource,
            subresource: "",
            operation: None,
            namespace: text(object, "/metadata/namespace"),
            name: text(object, "/metadata/name"),
            object: Some(object),
            old_object: None,
            namespace_object,
        }
    }
}

/// Why matching could not decide.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// `namespaceSelector` or `objectSelector` is not a valid label selector.
    #[error("invalid {field}: {source}")]
    InvalidSelector {
        /// `namespaceSelector` or `objectSelector`.
        field: &'static str,
        /// What is wrong with it.
        source: SelectorError,
    },
    /// The supplied namespace object is not the request's namespace.
    #[error("namespaces \"{0}\" not found")]
    NamespaceNotFound(String),
}

/// Whether `request` is selected by `constraints` (upstream Kyverno `matching.Matcher.Match`).
/// Selector errors are only reported for requests the rules select.
pub fn matches(
    constraints: &MatchResources,
    request: &MatchRequest<'_>,
) -> Result<bool, MatchError> {
    let namespace_match = matches_namespace_selector(constraints, request);
    if let Ok(false) = namespace_match {
        return Ok(false);
    }
    let object_match = matches_object_selector(constraints, request);
    if let Ok(false) = object_match {
        return Ok(false);
    }
    if matches_any_rule(constraints.exclude_resource_rules.as_deref(), request) {
        return Ok(false);
    }
    let included = match constraints.resource_rules.as_deref() {
        None | Some([]) => true,
        Some(rules) => matches_any_rule(Some(rules), request),
    };
    if !included {
        return Ok(false);
    }
    namespace_match?;
    object_match?;
    Ok(true)
}

/// Whether `constraints` are the plain kind that upstream's CLI reports nothing for when they do
/// not match (upstream `hasSelector`): exactly one resource rule, without resource names, no
/// exclusions and no namespace or object selector with requirements.
pub fn is_plain_resource_match(constraints: Option<&MatchResources>) -> bool {
    let Some(constraints) = constraints else {
        return false;
    };
    if has_requirements(constraints.namespace_selector.as_ref())
        || has_requirements(constraints.object_selector.as_ref())
        || constraints
            .exclude_resource_rules
            .as_ref()
            .is_some_and(|rules| !rules.is_empty())
    {
        return false;
    }
    match constraints.resource_rules.as_deref() {
        Some([rule]) => rule.resource_names.as_ref().is_none_or(Vec::is_empty),
        _ => false,
    }
}

/// Whether a label selector is set with at least one requirement.
pub(crate) fn has_requirements(selector: Option<&LabelSelector>) -> bool {
    selector.is_some_and(|selector| {
        selector
            .match_labels
            .as_ref()
            .is_some_and(|l| !l.is_empty())
            || selector
                .match_expressions
                .as_ref()
                .is_some_and(|e| !e.is_empty())
    })
}

fn matches_namespace_selector(
    constraints: &MatchResources,
    request: &MatchRequest<'_>,
) -> Result<bool, MatchError> {
    // Cluster-scoped resources other than namespaces are never excluded by a namespace selector.
    if request.namespace.is_empty() && request.resource.resource != "namespaces" {
        return Ok(true);
    }
    let Some(selector) = constraints.namespace_selector.as_ref() else {
        return Ok(true);
    };
    if !has_requirements(Some(selector)) {
        return Ok(true);
    }
    let labels = namespace_labels(request)?;
    selector_matches_strictly(selector, &labels).map_err(|source| MatchError::InvalidSelector {
        field: "namespaceSelector",
        source,
    })
}

/// The labels of the request's namespace: those of the object itself when a namespace is being
/// created or updated, else those of the supplied namespace object, else the name label.
fn namespace_labels(request: &MatchRequest<'_>) -> Result<BTreeMap<String, String>, MatchError> {
    let writes_namespace = request.resource.resource == "namespaces"
        && request.subresource.is_empty()
        && matches!(
            request.operation,
            Some(AdmissionOperation::Create | AdmissionOperation::Update)
        );
    if writes_namespace {
        return Ok(labels_of(request.object));
    }
    match request.namespace_object {
        None => Ok(BTreeMap::from([(
            NAMESPACE_NAME_LABEL.to_owned(),
            request.namespace.to_owned(),
        )])),
        Some(namespace) => {
            let name = namespace
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if name != request.namespace {
                return Err(MatchError::NamespaceNotFound(request.namespace.to_owned()));
            }
            Ok(labels_of(Some(namespace)))
        }
    }
}

fn matches_object_selector(
    constraints: &MatchResources,
    request: &MatchRequest<'_>,
) -> Result<bool, MatchError> {
    let Some(selector) = constraints.object_selector.as_ref() else {
        return Ok(true);
    };
    if !has_requirements(Some(selector)) {
        return Ok(true);
    }
    let invalid = |source| MatchError::InvalidSelector {
        field: "objectSelector",
        source,
    };
    for object in [request.object, request.old_object].into_iter().flatten() {
        if selector_matches_strictly(selector, &labels_of(Some(object))).map_err(invalid)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Kubernetes label selector semantics: unlike Kyverno's own selectors, `*` and `?` are plain
/// characters, which label syntax rejects.
fn selector_matches_strictly(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    if let Some((key, value)) = selector
        .match_labels
        .iter()
        .flatten()
        .find(|(key, value)| wildcard::has_wildcard(key) || wildcard::has_wildcard(value))
    {
        return Err(SelectorError::InvalidValue {
            key: key.clone(),
            value: value.clone(),
            reason: "a valid label must consist of alphanumeric characters, '-', '_' or '.'",
        });
    }
    selector_matches(selector, labels)
}

/// `metadata.labels` of an object (string values only).
fn labels_of(object: Option<&Value>) -> BTreeMap<String, String> {
    object
        .and_then(|object| object.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect()
}

fn matches_any_rule(rules: Option<&[NamedRuleWithOperations]>, request: &MatchRequest<'_>) -> bool {
    rules
        .into_iter()
        .flatten()
        .any(|rule| rule_matches(rule, request) && name_matches(rule, request))
}

/// Upstream `rules.Matcher.Matches`: scope, operation, group, version and resource.
fn rule_matches(rule: &NamedRuleWithOperations, request: &MatchRequest<'_>) -> bool {
    scope_matches(rule.scope.as_deref(), request)
        && operation_matches(rule.operations.as_deref(), request.operation)
        && exact_or_wildcard(rule.api_groups.as_deref(), &request.resource.group)
        && exact_or_wildcard(rule.api_versions.as_deref(), &request.resource.version)
        && resource_matches(rule.resources.as_deref(), request)
}

fn scope_matches(scope: Option<&str>, request: &MatchRequest<'_>) -> bool {
    let is_namespaces = request.resource.is_namespaces();
    match scope {
        None | Some("*") => true,
        Some("Namespaced") => !is_namespaces && !request.namespace.is_empty(),
        Some("Cluster") => is_namespaces || request.namespace.is_empty(),
        Some(_) => false,
    }
}

fn operation_matches(operations: Option<&[String]>, operation: Option<AdmissionOperation>) -> bool {
    operations.into_iter().flatten().any(|listed| {
        listed == "*" || operation.is_some_and(|operation| listed == operation.as_str())
    })
}

fn exact_or_wildcard(items: Option<&[String]>, requested: &str) -> bool {
    items
        .into_iter()
        .flatten()
        .any(|item| item == "*" || item == requested)
}

fn resource_matches(resources: Option<&[String]>, request: &MatchRequest<'_>) -> bool {
    resources.into_iter().flatten().any(|listed| {
        let (resource, subresource) = listed.split_once('/').unwrap_or((listed, ""));
        (resource == "*" || resource == request.resource.resource)
            && (subresource == "*" || subresource == request.subresource)
    })
}

/// `resourceNames`: empty matches everything; a request without a name matches when its
/// `generateName` starts with one of the names.
fn name_matches(rule: &NamedRuleWithOperations, request: &MatchRequest<'_>) -> bool {
    let Some(names) = rule
        .resource_names
        .as_ref()
        .filter(|names| !names.is_empty())
    else {
        return true;
    };
    if request.name.is_empty() {
        let generate_name = request
            .object
            .and_then(|object| object.pointer("/metadata/generateName"))
            .and_then(Value::as_str);
        return generate_name.is_some_and(|generate_name| {
            names.iter().any(|n| generate_name.starts_with(n.as_str()))
        });
    }
    names.iter().any(|name| name == request.name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn constraints(value: Value) -> MatchResources {
        serde_json::from_value(value).expect("match resources")
    }

    struct Fixture {
        resource: GroupVersionResource,
        subresource: &'static str,
        operation: Option<AdmissionOperation>,
        namespace: &'static str,
        name: &'static str,
        object: Option<Value>,
        old_object: Option<Value>,
        namespace_object: Option<Value>,
    }

    impl Fixture {
        fn pod() -> Self {
            Self {
                resource: GroupVersionResource::new("", "v1", "pods"),
                subresource: "",
                operation: Some(AdmissionOperation::Create),
                namespace: "default",
                name: "web",
                object: Some(json!({"metadata": {"name": "web", "labels": {"app": "web"}}})),
                old_object: None,
                namespace_object: None,
            }
        }

        fn check(&self, constraints_json: Value) -> Result<bool, MatchError> {
            let request = MatchRequest {
                resource: &self.resource,
                subresource: self.subresource,
                operation: self.operation,
                namespace: self.namespace,
                name: self.name,
                object: self.object.as_ref(),
                old_object: self.old_object.as_ref(),
                namespace_object: self.namespace_object.as_ref(),
            };
            matches(&constraints(constraints_json), &request)
        }

        fn matches(&self, constraints_json: Value) -> bool {
            self.check(constraints_json).expect("no match error")
        }
    }

    fn pod_rule(extra: Value) -> Value {
        let mut rule = json!({
            "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]
        });
        if let (Some(rule), Some(extra)) = (rule.as_object_mut(), extra.as_object()) {
            rule.extend(extra.clone());
        }
        json!({"resourceRules": [rule]})
    }

    #[test]
    fn groups_versions_and_operations_match_exactly_or_by_wildcard() {
        let pod = Fixture::pod();
        assert!(pod.matches(pod_rule(json!({}))));
        assert!(!pod.matches(pod_rule(json!({"apiGroups": ["apps"]}))));
        assert!(pod.matches(pod_rule(json!({"apiGroups": ["*"]}))));
        assert!(!pod.matches(pod_rule(json!({"apiVersions": ["v2"]}))));
        assert!(pod.matches(pod_rule(json!({"apiVersions": ["v2", "*"]}))));
        assert!(!pod.matches(pod_rule(json!({"operations": ["UPDATE"]}))));
        assert!(pod.matches(pod_rule(json!({"operations": ["UPDATE", "*"]}))));
        // A rule without operations matches no request.
        assert!(!pod.matches(json!({"resourceRules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
        ]})));
        let background = Fixture {
            operation: None,
            ..Fixture::pod()
        };
        assert!(!background.matches(pod_rule(json!({}))));
        assert!(background.matches(pod_rule(json!({"operations": ["*"]}))));
    }

    #[test]
    fn resources_and_subresources() {
        let pod = Fixture::pod();
        assert!(pod.matches(pod_rule(json!({"resources": ["*"]}))));
        assert!(pod.matches(pod_rule(json!({"resources": ["*/*"]}))));
        assert!(!pod.matches(pod_rule(json!({"resources": ["pods/status"]}))));
        assert!(!pod.matches(pod_rule(json!({"resources": ["deployments"]}))));
        let status = Fixture {
            subresource: "status",
            ..Fixture::pod()
        };
        assert!(!status.matches(pod_rule(json!({}))));
        assert!(!status.matches(pod_rule(json!({"resources": ["*"]}))));
        assert!(status.matches(pod_rule(json!({"resources": ["pods/status"]}))));
        assert!(status.matches(pod_rule(json!({"resources": ["pods/*"]}))));
        assert!(status.matches(pod_rule(json!({"resources": ["*/status"]}))));
        assert!(status.matches(pod_rule(json!({"resources": ["*/*"]}))));
        assert!(!status.matches(pod_rule(json!({"resources": ["pods/scale"]}))));
    }

    #[test]
    fn scope() {
        let pod = Fixture::pod();
        assert!(pod.matches(pod_rule(json!({"scope": "Namespaced"}))));
        assert!(!pod.matches(pod_rule(json!({"scope": "Cluster"}))));
        assert!(pod.matches(pod_rule(json!({"scope": "*"}))));
        assert!(!pod.matches(pod_rule(json!({"scope": "Other"}))));
        let node = Fixture {
            resource: GroupVersionResource::new("", "v1", "nodes"),
            namespace: "",
            ..Fixture::pod()
        };
        let node_rule = |scope: &str| {
            json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["*"], "resources": ["nodes"], "scope": scope}]})
        };
        assert!(node.matches(node_rule("Cluster")));
        assert!(!node.matches(node_rule("Namespaced")));
        // Namespace objects are cluster-scoped even when the request names their namespace.
        let namespace = Fixture {
            resource: GroupVersionResource::new("", "v1", "namespaces"),
            namespace: "team",
            ..Fixture::pod()
        };
        let namespace_rule = |scope: &str| {
            json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["*"], "resources": ["namespaces"], "scope": scope}]})
        };
        assert!(namespace.matches(namespace_rule("Cluster")));
        assert!(!namespace.matches(namespace_rule("Namespaced")));
    }

    #[test]
    fn resource_names_and_generate_name() {
        let pod = Fixture::pod();
        assert!(pod.matches(pod_rule(json!({"resourceNames": ["web", "db"]}))));
        assert!(!pod.matches(pod_rule(json!({"resourceNames": ["db"]}))));
        assert!(pod.matches(pod_rule(json!({"resourceNames": []}))));
        let generated = Fixture {
            name: "",
            object: Some(json!({"metadata": {"generateName": "web-abc-"}})),
            ..Fixture::pod()
        };
        assert!(generated.matches(pod_rule(json!({"resourceNames": ["web"]}))));
        assert!(!generated.matches(pod_rule(json!({"resourceNames": ["db"]}))));
        let unnamed = Fixture {
            name: "",
            object: Some(json!({"metadata": {}})),
            ..Fixture::pod()
        };
        assert!(!unnamed.matches(pod_rule(json!({"resourceNames": ["web"]}))));
    }

    #[test]
    fn exclude_rules_win_and_no_rules_match_everything() {
        let pod = Fixture::pod();
        let mut both = pod_rule(json!({}));
        both["excludeResourceRules"] = json!([{"apiGroups": ["*"], "apiVersions": ["*"],
            "operations": ["*"], "resources": ["pods"], "resourceNames": ["web"]}]);
        assert!(!pod.matches(both.clone()));
        both["excludeResourceRules"][0]["resourceNames"] = json!(["other"]);
        assert!(pod.matches(both));
        assert!(pod.matches(json!({})));
        assert!(!pod.matches(json!({"excludeResourceRules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"], "resources": ["*"]}
        ]})));
    }

    #[test]
    fn namespace_selector_reads_the_namespace_object_or_its_name_label() {
        let selector = |labels: Value| {
            let mut constraints = pod_rule(json!({}));
            constraints["namespaceSelector"] = json!({"matchLabels": labels});
            constraints
        };
        let pod = Fixture::pod();
        assert!(pod.matches(selector(json!({"kubernetes.io/metadata.name": "default"}))));
        assert!(!pod.matches(selector(json!({"env": "prod"}))));
        let labelled = Fixture {
            namespace_object: Some(
                json!({"metadata": {"name": "default", "labels": {"env": "prod"}}}),
            ),
            ..Fixture::pod()
        };
        assert!(labelled.matches(selector(json!({"env": "prod"}))));
        assert!(!labelled.matches(selector(json!({"env": "dev"}))));
        let mut expressions = pod_rule(json!({}));
        expressions["namespaceSelector"] = json!({"matchExpressions": [
            {"key": "env", "operator": "NotIn", "values": ["dev"]}]});
        assert!(labelled.matches(expressions));
        // An empty selector selects everything.
        let mut empty = pod_rule(json!({}));
        empty["namespaceSelector"] = json!({});
        assert!(pod.matches(empty));
        // The namespace object supplied must be the request's namespace.
        let wrong = Fixture {
            namespace_object: Some(json!({"metadata": {"name": "other"}})),
            ..Fixture::pod()
        };
        assert_eq!(
            wrong.check(selector(json!({"env": "prod"}))),
            Err(MatchError::NamespaceNotFound("default".to_owned()))
        );
    }

    #[test]
    fn namespace_selector_on_cluster_resources_and_namespaces() {
        let mut constraints = json!({"namespaceSelector": {"matchLabels": {"env": "prod"}},
            "resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"],
            "resources": ["*"]}]});
        let node = Fixture {
            resource: GroupVersionResource::new("", "v1", "nodes"),
            namespace: "",
            ..Fixture::pod()
        };
        assert!(node.matches(constraints.clone()));
        // A namespace being created is selected by its own labels.
        let created = Fixture {
            resource: GroupVersionResource::new("", "v1", "namespaces"),
            namespace: "",
            object: Some(json!({"metadata": {"name": "team", "labels": {"env": "prod"}}})),
            ..Fixture::pod()
        };
        assert!(created.matches(constraints.clone()));
        constraints["namespaceSelector"]["matchLabels"]["env"] = json!("dev");
        assert!(!created.matches(constraints));
    }

    #[test]
    fn object_selector_checks_object_or_old_object() {
        let selector = |labels: Value| {
            let mut constraints = pod_rule(json!({"operations": ["*"]}));
            constraints["objectSelector"] = json!({"matchLabels": labels});
            constraints
        };
        let pod = Fixture::pod();
        assert!(pod.matches(selector(json!({"app": "web"}))));
        assert!(!pod.matches(selector(json!({"app": "db"}))));
        let updated = Fixture {
            operation: Some(AdmissionOperation::Update),
            old_object: Some(json!({"metadata": {"labels": {"app": "db"}}})),
            ..Fixture::pod()
        };
        assert!(updated.matches(selector(json!({"app": "db"}))));
        let deleted = Fixture {
            object: None,
            old_object: Some(json!({"metadata": {"labels": {"app": "db"}}})),
            ..Fixture::pod()
        };
        assert!(!deleted.matches(selector(json!({"app": "web"}))));
        let mut expressions = pod_rule(json!({}));
        expressions["objectSelector"] = json!({"matchExpressions": [
            {"key": "app", "operator": "DoesNotExist"}]});
        assert!(!pod.matches(expressions));
    }

    #[test]
    fn invalid_selectors_are_errors_only_for_selected_requests() {
        let pod = Fixture::pod();
        let mut invalid = pod_rule(json!({}));
        invalid["objectSelector"] = json!({"matchExpressions": [
            {"key": "app", "operator": "Maybe", "values": ["x"]}]});
        assert!(matches!(
            pod.check(invalid.clone()),
            Err(MatchError::InvalidSelector {
                field: "objectSelector",
                ..
            })
        ));
        invalid["resourceRules"][0]["resources"] = json!(["deployments"]);
        assert_eq!(pod.check(invalid), Ok(false));
        // Kyverno's wildcards are not label selector syntax here.
        let mut wildcard = pod_rule(json!({}));
        wildcard["objectSelector"] = json!({"matchLabels": {"app": "w*"}});
        assert!(matches!(
            pod.check(wildcard),
            Err(MatchError::InvalidSelector { .. })
        ));
    }

    #[test]
    fn plain_resource_matches() {
        let plain = |value: Value| is_plain_resource_match(Some(&constraints(value)));
        assert!(plain(pod_rule(json!({}))));
        assert!(plain(pod_rule(
            json!({"resources": ["pods", "deployments"]})
        )));
        assert!(!plain(pod_rule(json!({"resourceNames": ["a"]}))));
        let mut selected = pod_rule(json!({}));
        selected["objectSelector"] = json!({"matchLabels": {"a": "b"}});
        assert!(!plain(selected));
        let mut empty_selector = pod_rule(json!({}));
        empty_selector["namespaceSelector"] = json!({});
        assert!(plain(empty_selector));
        assert!(!plain(json!({"resourceRules": []})));
        assert!(!is_plain_resource_match(None));
    }
}
