//! `ApplyConfiguration` mutations: the object an expression returns is merged into the resource
//! as server-side apply merges (structured-merge-diff), as upstream's admission plugin does.
//!
//! - Maps and structs merge key by key; scalars, atomic lists and atomic maps or structs are
//!   replaced by the configuration's value.
//! - An associative list (`x-kubernetes-list-type: map` or `set`) merges element by element on
//!   its keys. The result keeps the resource's order for its elements and places the
//!   configuration's new elements where the configuration has them relative to the shared ones
//!   (structured-merge-diff's order-preserving merge).
//! - A `null` map or associative list in the configuration leaves the resource's value alone; a
//!   `null` scalar or atomic value replaces it.
//! - Unless server-side apply semantics are asked for, a configuration that sets an atomic list,
//!   map or struct is rejected (the Kubernetes admission plugin's guard against dropping the
//!   fields the configuration does not repeat).
use serde_json::{Map, Value};

use super::schema::{ListKey, Node};

/// Why an apply configuration could not be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum ApplyError {
    /// The resource's kind has no schema (a custom resource unknown to the engine).
    #[error("type converter must not be nil")]
    NoSchema,
    /// The configuration sets atomic values (reported with their paths).
    #[error("invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: {}", .0.join(", "))]
    Atomic(Vec<String>),
    /// The configuration or the resource has an associative list that cannot be merged.
    #[error("failed to merge patch: {path}: {reason}")]
    Merge {
        /// Where the list is (`.spec.containers`).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ApplyError {
    /// Places a merge error under the path segment `segment` (`.name` or `[index]`).
    fn within(self, segment: &str) -> Self {
        match self {
            ApplyError::Merge { path, reason } => ApplyError::Merge {
                path: format!("{segment}{path}"),
                reason,
            },
            other => other,
        }
    }
}

/// Merges `configuration` into `resource` (both objects) along `schema`; `guarded` rejects
/// configurations that set atomic values. The configuration's `apiVersion` and `kind` are
/// those of the resource, as upstream sets them.
pub(super) fn apply(
    resource: Value,
    mut configuration: Map<String, Value>,
    schema: Option<Node>,
    guarded: bool,
) -> Result<Value, ApplyError> {
    let schema = schema.ok_or(ApplyError::NoSchema)?;
    for field in ["apiVersion", "kind"] {
        match resource.get(field) {
            Some(value) => configuration.insert(field.to_owned(), value.clone()),
            None => configuration.remove(field),
        };
    }
    if guarded {
        let mut atomics = Vec::new();
        find_atomic_fields(&configuration, schema, &mut String::new(), &mut atomics);
        if !atomics.is_empty() {
            return Err(ApplyError::Atomic(atomics));
        }
    }
    merge(resource, Value::Object(configuration), schema)
}

/// Collects the paths of the atomic values set under the object `fields` of type `node`.
fn find_atomic_fields(
    fields: &Map<String, Value>,
    node: Node,
    path: &mut String,
    out: &mut Vec<String>,
) {
    for (key, value) in fields {
        let length = path.len();
        path.push('.');
        path.push_str(key);
        find_atomics(value, node.field(key), path, out);
        path.truncate(length);
    }
}

/// Collects the paths of the atomic values in `value` (of type `node`), as the admission
/// plugin's guard reports them: the fields of undeclared (deduced) maps are not looked into.
fn find_atomics(value: &Value, node: Node, path: &mut String, out: &mut Vec<String>) {
    let element = match node {
        Node::Deduced => return,
        Node::Atomic => {
            if value.is_object() || value.is_array() {
                out.push(path.clone());
            }
            Node::Typed
        }
        Node::Keyed { element, .. } => *element,
        Node::Typed | Node::Fields(_) => {
            if value.is_array() {
                out.push(path.clone());
            }
            Node::Typed
        }
    };
    match value {
        Value::Object(fields) => {
            let node = if matches!(node, Node::Fields(_)) {
                node
            } else {
                Node::Typed
            };
            find_atomic_fields(fields, node, path, out);
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let length = path.len();
                path.push_str(&format!("[{index}]"));
                find_atomics(item, element, path, out);
                path.truncate(length);
            }
        }
        _ => {}
    }
}

/// Merges `configuration` into `resource` along `node`.
fn merge(resource: Value, configuration: Value, node: Node) -> Result<Value, ApplyError> {
    if matches!(node, Node::Atomic) {
        return Ok(configuration);
    }
    match (resource, configuration) {
        (Value::Object(mut resource), Value::Object(configuration)) => {
            for (key, value) in configuration {
                match resource.get_mut(&key) {
                    Some(slot) => {
                        let existing = std::mem::take(slot);
                        *slot = merge(existing, value, node.field(&key))
                            .map_err(|error| error.within(&format!(".{key}")))?;
                    }
                    None => {
                        resource.insert(key, value);
                    }
                }
            }
            Ok(Value::Object(resource))
        }
        (Value::Object(resource), Value::Null) if !resource.is_empty() => {
            Ok(Value::Object(resource))
        }
        (Value::Array(resource), configuration) => match (node, configuration) {
            (Node::Keyed { keys, element }, Value::Array(items))
                if !(resource.is_empty() && items.is_empty()) =>
            {
                merge_list(resource, items, keys, *element).map(Value::Array)
            }
            (Node::Keyed { .. }, Value::Null) if !resource.is_empty() => Ok(Value::Array(resource)),
            (_, configuration) => Ok(configuration),
        },
        (_, configuration) => Ok(configuration),
    }
}

/// Merges the associative list `configuration` into `resource` (see the module documentation
/// for the order of the result).
fn merge_list(
    resource: Vec<Value>,
    configuration: Vec<Value>,
    keys: &[ListKey],
    element: Node,
) -> Result<Vec<Value>, ApplyError> {
    let right_ids = identities(&configuration, keys)?;
    let left_ids = identities(&resource, keys)?;
    let right_index = |id: &Value| right_ids.iter().position(|other| other == id);
    let left_index = |id: &Value| left_ids.iter().position(|other| other == id);
    let mut left: Vec<Option<Value>> = resource.into_iter().map(Some).collect();
    let mut right: Vec<Option<Value>> = configuration.into_iter().map(Some).collect();
    // The configuration's elements that the resource has too, in the configuration's order.
    let mut shared = right_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| left_index(id).is_some())
        .map(|(index, _)| index);
    let mut next_shared = shared.next();
    let mut out = Vec::with_capacity(left.len().max(right.len()));
    let (mut l, mut r) = (0, 0);
    while l < left.len() || r < right.len() {
        if l < left.len() && r < right.len() {
            if left_ids[l] == right_ids[r] {
                out.push(merge_element(left[l].take(), right[r].take(), element, r)?);
                l += 1;
                r += 1;
                next_shared = shared.next();
                continue;
            }
            if let Some(index) = right_index(&left_ids[l])
                && next_shared.is_some_and(|next| next != index)
            {
                // A shared element placed later, when the configuration reaches it.
                l += 1;
                continue;
            }
        }
        if l < left.len() && right_index(&left_ids[l]).is_none() {
            out.extend(left[l].take());
            l += 1;
            continue;
        }
        if r < right.len() {
            let counterpart = left_index(&right_ids[r]).and_then(|index| left[index].take());
            out.push(merge_element(counterpart, right[r].take(), element, r)?);
            if next_shared == Some(r) {
                next_shared = shared.next();
            }
            r += 1;
            continue;
        }
        // A shared element of the resource whose counterpart was merged already.
        l += 1;
    }
    Ok(out)
}

fn merge_element(
    resource: Option<Value>,
    configuration: Option<Value>,
    element: Node,
    index: usize,
) -> Result<Value, ApplyError> {
    match (resource, configuration) {
        (Some(resource), Some(configuration)) => merge(resource, configuration, element)
            .map_err(|error| error.within(&format!("[{index}]"))),
        (resource, configuration) => Ok(configuration.or(resource).unwrap_or(Value::Null)),
    }
}

/// The identities of the elements of an associative list: the values of their keys, or the
/// elements themselves for a set. Duplicates and elements without their keys are errors.
fn identities(items: &[Value], keys: &[ListKey]) -> Result<Vec<Value>, ApplyError> {
    let mut ids: Vec<Value> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let id = identity(item, keys).map_err(|reason| ApplyError::Merge {
            path: String::new(),
            reason: format!("element {index}: {reason}"),
        })?;
        if ids.contains(&id) {
            return Err(ApplyError::Merge {
                path: String::new(),
                reason: format!("duplicate entries for key {id}"),
            });
        }
        ids.push(id);
    }
    Ok(ids)
}

fn identity(item: &Value, keys: &[ListKey]) -> Result<Value, String> {
    if keys.is_empty() {
        return match item {
            Value::Object(_) | Value::Array(_) => Err(
                "associative list without keys has an element that's a map or list type".to_owned(),
            ),
            scalar => Ok(scalar.clone()),
        };
    }
    let Value::Object(fields) = item else {
        return Err("associative list with keys has an element that's not a map type".to_owned());
    };
    keys.iter()
        .map(|key| match (fields.get(key.name), key.default) {
            (Some(value), _) => Ok(value.clone()),
            (None, Some(default)) => Ok(Value::String(default.to_owned())),
            (None, None) => Err(format!(
                "associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                key.name
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::schema;
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(fields) => fields,
            other => panic!("not an object: {other}"),
        }
    }

    fn apply_to_pod(pod: Value, configuration: Value) -> Result<Value, ApplyError> {
        apply(
            pod,
            object(configuration),
            schema::for_kind("", "Pod"),
            true,
        )
    }

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn maps_merge_and_scalars_replace() {
        let resource = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let configuration =
            json!({"metadata": {"labels": {"b": "3", "c": "4"}}, "data": {"other": "x"}});
        let merged = apply(
            resource,
            object(configuration),
            schema::for_kind("", "ConfigMap"),
            true,
        )
        .expect("merged");
        assert_eq!(
            merged,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cm", "labels": {"a": "1", "b": "3", "c": "4"}},
                "data": {"k": "v", "other": "x"}})
        );
    }

    #[test]
    fn keyed_lists_merge_by_key_keeping_the_resource_order() {
        let resource = pod(json!({"containers": [
            {"name": "a", "image": "a:1"},
            {"name": "b", "image": "b:1", "env": [{"name": "X", "value": "1"}]}
        ]}));
        let configuration = json!({"spec": {"containers": [
            {"name": "b", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "9"}]},
            {"name": "c", "image": "c:1"}
        ]}});
        let merged = apply_to_pod(resource, configuration).expect("merged");
        assert_eq!(
            merged["spec"]["containers"],
            json!([
                {"name": "a", "image": "a:1"},
                {"name": "b", "image": "b:1",
                 "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "9"}]},
                {"name": "c", "image": "c:1"}
            ])
        );
    }

    #[test]
    fn new_elements_before_a_shared_one_stay_before_it() {
        let resource = pod(json!({"volumes": [{"name": "a"}, {"name": "b"}]}));
        let configuration = json!({"spec": {"volumes": [{"name": "c"}, {"name": "a"}]}});
        let merged = apply_to_pod(resource, configuration).expect("merged");
        assert_eq!(
            merged["spec"]["volumes"],
            json!([{"name": "c"}, {"name": "a"}, {"name": "b"}])
        );
    }

    #[test]
    fn shared_elements_follow_the_configuration_order() {
        let resource = pod(json!({"volumes": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}));
        let configuration = json!({"spec": {"volumes": [{"name": "b"}, {"name": "a"}]}});
        let merged = apply_to_pod(resource, configuration).expect("merged");
        assert_eq!(
            merged["spec"]["volumes"],
            json!([{"name": "x"}, {"name": "b"}, {"name": "a"}])
        );
    }

    #[test]
    fn port_keys_default_their_protocol() {
        let resource = pod(json!({"containers": [
            {"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}
        ]}));
        let configuration = json!({"spec": {"containers": [
            {"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP", "hostPort": 8080}]}
        ]}});
        let merged = apply_to_pod(resource, configuration).expect("merged");
        assert_eq!(
            merged["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "name": "http", "protocol": "TCP", "hostPort": 8080}])
        );
    }

    #[test]
    fn sets_merge_by_value() {
        let resource = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "finalizers": ["a", "b"]}});
        let configuration = json!({"metadata": {"finalizers": ["c", "b"]}});
        let merged = apply(
            resource,
            object(configuration),
            schema::for_kind("", "ConfigMap"),
            true,
        )
        .expect("merged");
        assert_eq!(merged["metadata"]["finalizers"], json!(["a", "c", "b"]));
    }

    #[test]
    fn atomic_values_are_rejected_unless_server_side_apply_is_asked_for() {
        let resource = pod(json!({"containers": [{"name": "a", "args": ["x"]}],
            "tolerations": [{"key": "k"}]}));
        let configuration = json!({"spec": {
            "containers": [{"name": "a", "args": ["y"]}],
            "nodeSelector": {"zone": "a"}
        }});
        let error = apply_to_pod(resource.clone(), configuration.clone()).expect_err("atomic");
        assert_eq!(
            error.to_string(),
            "invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: \
             .spec.containers[0].args, .spec.nodeSelector"
        );
        let merged = apply(
            resource,
            object(configuration),
            schema::for_kind("", "Pod"),
            false,
        )
        .expect("server-side apply");
        assert_eq!(merged["spec"]["containers"][0]["args"], json!(["y"]));
        assert_eq!(merged["spec"]["nodeSelector"], json!({"zone": "a"}));
        assert_eq!(merged["spec"]["tolerations"], json!([{"key": "k"}]));
    }

    #[test]
    fn atomic_list_elements_are_reported() {
        let configuration =
            json!({"spec": {"imagePullSecrets": [{"name": "s"}], "tolerations": []}});
        let error = apply_to_pod(pod(json!({})), configuration).expect_err("atomic");
        assert_eq!(
            error,
            ApplyError::Atomic(vec![
                ".spec.imagePullSecrets[0]".to_owned(),
                ".spec.tolerations".to_owned()
            ])
        );
    }

    #[test]
    fn atomic_structs_replace_the_resource_value() {
        let resource = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "spec": {"selector": {"matchLabels": {"a": "1"}}, "replicas": 1}});
        let configuration = json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}});
        let merged = apply(
            resource,
            object(configuration),
            schema::for_kind("apps", "Deployment"),
            false,
        )
        .expect("merged");
        assert_eq!(
            merged["spec"],
            json!({"selector": {"matchLabels": {"b": "2"}}, "replicas": 1})
        );
    }

    #[test]
    fn deduced_schemas_replace_lists_without_complaint() {
        let resource = pod(json!({"containers": [{"name": "a"}], "nodeSelector": {"x": "1"}}));
        let configuration =
            json!({"spec": {"containers": [{"name": "b"}], "nodeSelector": {"y": "2"}}});
        let merged =
            apply(resource, object(configuration), Some(Node::Deduced), true).expect("deduced");
        assert_eq!(merged["spec"]["containers"], json!([{"name": "b"}]));
        assert_eq!(merged["spec"]["nodeSelector"], json!({"x": "1", "y": "2"}));
    }

    #[test]
    fn nulls_keep_maps_and_lists_but_replace_scalars() {
        let resource = pod(json!({"containers": [{"name": "a"}], "hostname": "h",
            "securityContext": {"runAsUser": 1}}));
        let configuration = json!({"spec": {"containers": null, "hostname": null,
            "securityContext": null}});
        let merged = apply_to_pod(resource, configuration).expect("merged");
        assert_eq!(
            merged["spec"],
            json!({"containers": [{"name": "a"}], "hostname": null,
                "securityContext": {"runAsUser": 1}})
        );
    }

    #[test]
    fn the_configuration_kind_is_the_resource_kind() {
        let configuration = json!({"apiVersion": "v2", "kind": "Other", "spec": {"hostname": "h"}});
        let merged = apply_to_pod(pod(json!({})), configuration).expect("merged");
        assert_eq!(merged["kind"], "Pod");
        assert_eq!(merged["apiVersion"], "v1");
    }

    #[test]
    fn keyed_list_errors_name_the_list() {
        let resource = pod(json!({"containers": [{"name": "a"}, {"name": "a"}]}));
        let configuration = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        assert_eq!(
            apply_to_pod(resource, configuration)
                .expect_err("duplicate")
                .to_string(),
            "failed to merge patch: .spec.containers: duplicate entries for key [\"a\"]"
        );
        let configuration = json!({"spec": {"containers": [{"image": "x"}]}});
        let resource = pod(json!({"containers": [{"name": "a"}]}));
        assert!(
            apply_to_pod(resource, configuration)
                .expect_err("missing key")
                .to_string()
                .contains("omits key field \"name\"")
        );
    }

    #[test]
    fn custom_resources_have_no_schema() {
        assert_eq!(schema::for_kind("example.com", "Widget").map(|_| ()), None);
        let error = apply(
            json!({}),
            Map::new(),
            schema::for_kind("example.com", "Widget"),
            true,
        )
        .expect_err("no schema");
        assert_eq!(error, ApplyError::NoSchema);
    }
}
