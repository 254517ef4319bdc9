//! Comparing a produced resource (patched or generated) with the one a test expects, as
//! upstream's `getAndCompareResource` does:
//!
//! - the expected object is picked from its file by apiVersion, kind, namespace and name of the
//!   actual one;
//! - both sides are tidied (nulls, empty maps and empty lists removed, recursively), their
//!   `generate.kyverno.io/*` labels dropped and `app.kubernetes.io/managed-by: kyverno` set
//!   (unless they have their own);
//! - they are equal when the JSON merge patch between them is empty, which is JSON equality with
//!   numbers compared by value (`1` equals `1.0`).
use serde_json::{Map, Value};
use similar::{ChangeTag, TextDiff};

use crate::engine::field;

/// How a produced resource compares with the expected ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// The expected file has the resource and it is equal.
    Equal,
    /// The expected file has the resource but it differs: a line diff of both as YAML, lines
    /// only in the expected one marked `-`, only in the actual one `+`.
    Different(String),
    /// The expected file has no resource with the same apiVersion, kind, namespace and name.
    Missing,
}

/// Compares `actual` with the resource of `expected` that has its identity.
///
/// A cluster-scoped resource (one without namespace, as generated) is found all the same in
/// files whose resources were given the `default` namespace when loaded, and compared without
/// it, as upstream finds a generated ClusterRoleBinding in its expected file.
pub fn compare(actual: &Value, expected: &[Value]) -> Comparison {
    let identity = |resource: &Value| {
        [
            "/apiVersion",
            "/kind",
            "/metadata/namespace",
            "/metadata/name",
        ]
        .map(|pointer| field(resource, pointer).to_owned())
    };
    let wanted = identity(actual);
    let cluster_scoped = wanted[2].is_empty();
    let Some(expected) = expected.iter().find(|candidate| {
        let [api_version, kind, namespace, name] = identity(candidate);
        let namespace_matches =
            namespace == wanted[2] || (cluster_scoped && namespace == DEFAULT_NAMESPACE);
        namespace_matches && api_version == wanted[0] && kind == wanted[1] && name == wanted[3]
    }) else {
        return Comparison::Missing;
    };
    let actual = normalize(actual);
    let mut expected = normalize(expected);
    if cluster_scoped
        && let Some(metadata) = expected.get_mut("metadata").and_then(Value::as_object_mut)
    {
        metadata.remove("namespace");
    }
    if same_json(&actual, &expected) {
        return Comparison::Equal;
    }
    Comparison::Different(line_diff(&yaml(&expected), &yaml(&actual)))
}

/// The namespace the loader gives to resources that name none.
const DEFAULT_NAMESPACE: &str = "default";

/// The tidied resource with the generate labels fixed up.
fn normalize(resource: &Value) -> Value {
    let mut resource = tidy(resource).unwrap_or_else(|| Value::Object(Map::new()));
    if let Some(object) = resource.as_object_mut() {
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            let mut labels = Map::new();
            labels.insert(
                "app.kubernetes.io/managed-by".to_owned(),
                Value::from("kyverno"),
            );
            if let Some(Value::Object(existing)) = metadata.remove("labels") {
                labels.extend(
                    existing
                        .into_iter()
                        .filter(|(key, _)| !key.starts_with("generate.kyverno.io/")),
                );
            }
            metadata.insert("labels".to_owned(), Value::Object(labels));
        }
    }
    resource
}

/// `value` without nulls, empty maps and empty lists (recursively); `None` when nothing is left.
fn tidy(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(object) => {
            let tidied: Map<String, Value> = object
                .iter()
                .filter_map(|(key, value)| tidy(value).map(|value| (key.clone(), value)))
                .collect();
            (!tidied.is_empty()).then_some(Value::Object(tidied))
        }
        Value::Array(items) => {
            let tidied: Vec<Value> = items.iter().filter_map(tidy).collect();
            (!tidied.is_empty()).then_some(Value::Array(tidied))
        }
        scalar => Some(scalar.clone()),
    }
}

/// JSON equality with numbers compared as float64, as Go decodes them.
fn same_json(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => left.as_f64() == right.as_f64(),
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len() && left.iter().zip(right).all(|(l, r)| same_json(l, r))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .all(|(key, value)| right.get(key).is_some_and(|other| same_json(value, other)))
        }
        _ => left == right,
    }
}

fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// The lines that differ between `expected` and `actual`, with two lines of context.
fn line_diff(expected: &str, actual: &str) -> String {
    let diff = TextDiff::from_lines(expected, actual);
    let mut out = String::new();
    for group in diff.grouped_ops(2) {
        if !out.is_empty() {
            out.push_str("...\n");
        }
        for change in group.iter().flat_map(|op| diff.iter_changes(op)) {
            let sign = match change.tag() {
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
                ChangeTag::Equal => ' ',
            };
            out.push(sign);
            out.push_str(change.as_str().unwrap_or_default());
            if change.missing_newline() {
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": spec
        })
    }

    #[test]
    fn blank_fields_and_number_forms_do_not_matter() {
        let actual = pod(
            json!({"containers": [{"name": "a", "ports": [], "resources": {}, "x": null}], "replicas": 1}),
        );
        let expected = [pod(json!({"containers": [{"name": "a"}], "replicas": 1.0}))];
        assert_eq!(compare(&actual, &expected), Comparison::Equal);
    }

    #[test]
    fn the_expected_resource_is_picked_by_identity() {
        let mut other = pod(json!({"containers": [{"name": "b"}]}));
        other["metadata"]["name"] = json!("other");
        let expected = [other, pod(json!({"containers": [{"name": "a"}]}))];
        assert_eq!(
            compare(&pod(json!({"containers": [{"name": "a"}]})), &expected),
            Comparison::Equal
        );
        let mut elsewhere = pod(json!({}));
        elsewhere["metadata"]["namespace"] = json!("prod");
        assert_eq!(compare(&elsewhere, &expected), Comparison::Missing);
    }

    #[test]
    fn cluster_scoped_resources_are_found_in_files_given_the_default_namespace() {
        let binding = |namespace: Option<&str>| {
            let mut binding = json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "edit"}
            });
            if let Some(namespace) = namespace {
                binding["metadata"]["namespace"] = json!(namespace);
            }
            binding
        };
        // As loaded from the expected file: the loader gave it the `default` namespace.
        let expected = [binding(Some("default"))];
        assert_eq!(compare(&binding(None), &expected), Comparison::Equal);
        let mut different = binding(None);
        different["roleRef"]["name"] = json!("view");
        assert!(matches!(
            compare(&different, &expected),
            Comparison::Different(_)
        ));
        // A namespaced resource still needs the same namespace.
        assert_eq!(
            compare(&binding(Some("prod")), &expected),
            Comparison::Missing
        );
    }

    #[test]
    fn generate_labels_are_normalised() {
        let mut actual = pod(json!({}));
        actual["metadata"]["labels"] = json!({"generate.kyverno.io/policy-name": "p", "app.kubernetes.io/managed-by": "kyverno", "a": "b"});
        let mut expected = pod(json!({}));
        expected["metadata"]["labels"] = json!({"a": "b"});
        assert_eq!(compare(&actual, &[expected.clone()]), Comparison::Equal);
        expected["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("helm");
        assert!(matches!(
            compare(&actual, &[expected]),
            Comparison::Different(_)
        ));
    }

    #[test]
    fn differences_are_shown_as_a_line_diff() {
        let actual = pod(json!({"containers": [{"name": "a", "image": "nginx:2"}]}));
        let expected = [pod(
            json!({"containers": [{"name": "a", "image": "nginx:1"}]}),
        )];
        let Comparison::Different(diff) = compare(&actual, &expected) else {
            panic!("resources differ");
        };
        assert!(diff.contains("-  - image: nginx:1\n"), "{diff}");
        assert!(diff.contains("+  - image: nginx:2\n"), "{diff}");
        assert!(!diff.contains("apiVersion"), "only context lines: {diff}");
    }
}
