//! Resource generation: `generate` creates (and optionally keeps in sync) resources from inline
//! data or by cloning existing ones.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::ContextEntry;
use super::mutate::AnyAllConditions;
use crate::schema::preserve_unknown_fields;

/// Creates resources when the rule matches, from `data`, `clone` or `cloneList`, once or for
/// each element of `foreach` lists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Generation {
    /// Also apply the rule to resources that already exist when the policy is created or
    /// updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_existing: Option<bool>,
    /// Keep generated resources in sync with the rule's data or clone source, re-creating or
    /// overwriting them when they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize: Option<bool>,
    /// Keep (rather than delete) synchronized generated resources when the rule or policy is
    /// deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphan_downstream_on_policy_delete: Option<bool>,
    /// The resource to generate and its source.
    #[serde(flatten)]
    pub pattern: GeneratePattern,
    /// Generate resources for each element of lists computed from the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreach: Vec<ForEachGeneration>,
}

/// The identity of a generated resource and where its content comes from: `data`, `clone` or
/// `cloneList` (at most one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratePattern {
    /// The generated resource's identity.
    #[serde(flatten)]
    pub resource: ResourceSpec,
    /// The generated resource's content, which may contain variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub data: Option<Value>,
    /// An existing resource to copy into the generated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneFrom>,
    /// Existing resources, selected by kind and labels, each copied into a generated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_list: Option<CloneList>,
}

/// A resource, by API version, kind, namespace, name and UID; every part may contain
/// variables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// The resource's API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The resource's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The resource's UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// One `generate.foreach` entry: a generate pattern applied to each element of `list`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForEachGeneration {
    /// A JMESPath expression yielding the elements to iterate over (available as `element`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// Variables loaded for each element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextEntry>,
    /// Conditions an element must satisfy to be processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub preconditions: Option<AnyAllConditions>,
    /// The resource generated for each element and its source.
    #[serde(flatten)]
    pub pattern: GeneratePattern,
}

/// The source resource copied by `clone`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneFrom {
    /// The source resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The source resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The source resources copied by `cloneList`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneList {
    /// The namespace the source resources live in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The source resources' kinds, as `version/Kind` or `group/version/Kind`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Labels the source resources must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn generation_round_trips_flattened_fields() {
        let doc = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": "cm",
            "namespace": "{{request.object.metadata.name}}",
            "synchronize": false,
            "generateExisting": true,
            "data": {"data": {"a": "b"}},
            "foreach": [{
                "list": "request.object.spec.namespaces",
                "apiVersion": "v1",
                "kind": "Secret",
                "name": "s",
                "namespace": "{{element}}",
                "clone": {"namespace": "default", "name": "src"},
                "preconditions": {"any": [{"key": "{{element}}", "operator": "NotEquals",
                                           "value": "kube-system"}]}
            }]
        });
        let g: Generation = serde_json::from_value(doc.clone()).expect("deserialize");
        assert_eq!(g.synchronize, Some(false));
        assert_eq!(g.pattern.resource.kind.as_deref(), Some("ConfigMap"));
        let fe = &g.foreach[0];
        assert_eq!(
            fe.pattern.resource.namespace.as_deref(),
            Some("{{element}}")
        );
        assert_eq!(
            fe.pattern.clone.as_ref().and_then(|c| c.name.as_deref()),
            Some("src")
        );
        assert_eq!(serde_json::to_value(&g).expect("serialize"), doc);
    }

    #[test]
    fn clone_list_round_trips() {
        let doc = json!({
            "namespace": "ns",
            "synchronize": true,
            "cloneList": {"namespace": "default", "kinds": ["v1/Secret", "v1/ConfigMap"],
                          "selector": {"matchLabels": {"allowedToBeCloned": "true"}}}
        });
        let g: Generation = serde_json::from_value(doc.clone()).expect("deserialize");
        assert_eq!(
            g.pattern.clone_list.as_ref().map(|c| c.kinds.len()),
            Some(2)
        );
        assert_eq!(serde_json::to_value(&g).expect("serialize"), doc);
    }
}
