//! Mutation: `mutate` patches the matched resource (strategic merge or JSON 6902), per list
//! element with `foreach`, or patches other existing resources through `targets`.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::ContextEntry;
use super::generate::ResourceSpec;
use crate::schema::preserve_unknown_fields;

/// Modifies matching resources (or, with `targets`, other existing resources).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mutation {
    /// Also mutate the existing `targets` when the policy is created or updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutate_existing_on_policy_update: Option<bool>,
    /// Existing resources to mutate instead of the admission request's resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetResourceSpec>,
    /// A strategic merge patch (with Kyverno anchors) applied to the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub patch_strategic_merge: Option<Value>,
    /// RFC 6902 JSON Patch operations, as a YAML or JSON string.
    #[serde(
        default,
        rename = "patchesJson6902",
        skip_serializing_if = "Option::is_none"
    )]
    pub patches_json6902: Option<String>,
    /// Mutations applied to each element of lists computed from the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreach: Vec<ForEachMutation>,
}

/// An existing resource mutated by a mutate-existing rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResourceSpec {
    /// The target's identity; parts may contain variables and wildcards.
    #[serde(flatten)]
    pub resource: ResourceSpec,
    /// Labels the targets must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Variables loaded for each target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextEntry>,
    /// Conditions (`any`/`all`, or a plain list) a target must satisfy to be mutated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub preconditions: Option<Value>,
}

/// One `mutate.foreach` entry: patches applied for each element of `list`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForEachMutation {
    /// A JMESPath expression yielding the elements to iterate over (available as `element`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// The iteration order: Ascending (first to last) or Descending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<ForeachOrder>,
    /// Variables loaded for each element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<ContextEntry>,
    /// Conditions an element must satisfy to be processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub preconditions: Option<AnyAllConditions>,
    /// A strategic merge patch applied for each element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub patch_strategic_merge: Option<Value>,
    /// RFC 6902 JSON Patch operations applied for each element, as a YAML or JSON string.
    #[serde(
        default,
        rename = "patchesJson6902",
        skip_serializing_if = "Option::is_none"
    )]
    pub patches_json6902: Option<String>,
    /// A nested list of foreach mutations (kept free-form; see [`ForEachMutation::nested`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub foreach: Option<Value>,
}

impl ForEachMutation {
    /// Parses the nested `foreach` list; empty when unset.
    pub fn nested(&self) -> Result<Vec<ForEachMutation>, serde_json::Error> {
        match &self.foreach {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(v) => Vec::<ForEachMutation>::deserialize(v),
        }
    }
}

/// The order in which a foreach list is processed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ForeachOrder {
    /// From the first element to the last.
    #[default]
    Ascending,
    /// From the last element to the first.
    Descending,
}

/// Conditions combined as `any` (at least one holds) and `all` (every one holds); both must be
/// satisfied when both are set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnyAllConditions {
    /// Conditions of which at least one must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any: Vec<Condition>,
    /// Conditions that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub all: Vec<Condition>,
}

/// One condition: `key` compared with `value` by `operator`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The left operand: a literal or a variable/JMESPath expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub key: Option<Value>,
    /// The comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<ConditionOperator>,
    /// The right operand: a literal, a list or a variable/JMESPath expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub value: Option<Value>,
    /// A message shown when the condition is not met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A condition operator. The deprecated spellings `Equal` and `NotEqual` are read as `Equals`
/// and `NotEquals`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionOperator {
    /// Key equals value.
    #[serde(alias = "Equal")]
    Equals,
    /// Key differs from value.
    #[serde(alias = "NotEqual")]
    NotEquals,
    /// Key (a value or a list) is contained in value. Deprecated: use AnyIn or AllIn.
    In,
    /// At least one key element is in value.
    AnyIn,
    /// Every key element is in value.
    AllIn,
    /// Key (a value or a list) is not contained in value. Deprecated: use AnyNotIn or
    /// AllNotIn.
    NotIn,
    /// At least one key element is not in value.
    AnyNotIn,
    /// No key element is in value.
    AllNotIn,
    /// Key is greater than or equal to value (numbers, quantities, durations, versions).
    GreaterThanOrEquals,
    /// Key is greater than value.
    GreaterThan,
    /// Key is less than or equal to value.
    LessThanOrEquals,
    /// Key is less than value.
    LessThan,
    /// Deprecated: duration key is at least value; use GreaterThanOrEquals.
    DurationGreaterThanOrEquals,
    /// Deprecated: duration key is greater than value; use GreaterThan.
    DurationGreaterThan,
    /// Deprecated: duration key is at most value; use LessThanOrEquals.
    DurationLessThanOrEquals,
    /// Deprecated: duration key is less than value; use LessThan.
    DurationLessThan,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn mutation_round_trips_with_json6902_string_and_nested_foreach() {
        let doc = json!({
            "mutateExistingOnPolicyUpdate": false,
            "patchesJson6902": "- op: add\n  path: /metadata/labels/a\n  value: b\n",
            "targets": [{"apiVersion": "v1", "kind": "Secret", "name": "s", "namespace": "ns",
                         "selector": {"matchLabels": {"a": "b"}},
                         "preconditions": [{"key": "x", "operator": "Equals", "value": "y"}]}],
            "foreach": [{
                "list": "request.object.spec.volumes",
                "order": "Descending",
                "preconditions": {"all": [{"key": "hostPath", "operator": "AnyIn",
                                           "value": "{{ element.keys(@) }}"}]},
                "foreach": [{"list": "element.x", "order": "Ascending",
                             "patchesJson6902": "- op: remove\n  path: /x"}]
            }]
        });
        let m: Mutation = serde_json::from_value(doc.clone()).expect("deserialize");
        assert_eq!(m.mutate_existing_on_policy_update, Some(false));
        assert_eq!(m.targets[0].resource.kind.as_deref(), Some("Secret"));
        let fe = &m.foreach[0];
        assert_eq!(fe.order, Some(ForeachOrder::Descending));
        let pre = fe.preconditions.as_ref().expect("preconditions");
        assert_eq!(pre.all[0].operator, Some(ConditionOperator::AnyIn));
        let nested = fe.nested().expect("nested foreach");
        assert_eq!(nested[0].list.as_deref(), Some("element.x"));
        assert!(m.targets[0].resource.uid.is_none());
        assert_eq!(serde_json::to_value(&m).expect("serialize"), doc);
    }

    #[test]
    fn condition_operator_reads_deprecated_spellings() {
        let op: ConditionOperator = serde_json::from_str("\"Equal\"").expect("Equal");
        assert_eq!(op, ConditionOperator::Equals);
        let op: ConditionOperator = serde_json::from_str("\"NotEqual\"").expect("NotEqual");
        assert_eq!(op, ConditionOperator::NotEquals);
        let op: ConditionOperator =
            serde_json::from_str("\"DurationLessThan\"").expect("DurationLessThan");
        assert_eq!(
            serde_json::to_string(&op).expect("ser"),
            "\"DurationLessThan\""
        );
        assert!(serde_json::from_str::<ConditionOperator>("\"Matches\"").is_err());
    }

    #[test]
    fn nested_foreach_absent_is_empty() {
        assert!(
            ForEachMutation::default()
                .nested()
                .expect("empty")
                .is_empty()
        );
    }
}
