//! Variable values supplied from outside (a Values file, inline `values`, `--set`), and what
//! they say about the simulated requests: namespace labels, subresources, the operation.
use std::collections::BTreeMap;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_policy_core::engine::{RuleValues, SuppliedValues};
use kyverno_policy_core::request::GroupVersionKind;
use serde_json::{Map, Value};

use crate::test_file::Values;

/// The values of a test or an `apply` run.
#[derive(Clone, Debug, Default)]
pub struct VariableSet {
    values: Values,
    /// `--set key=value` pairs; they override every other value.
    overrides: Map<String, Value>,
}

/// A subresource request: the parent's kind and the subresource's name.
#[derive(Clone, Debug, PartialEq)]
pub struct SubresourceOf {
    /// The parent resource's group, version and kind.
    pub parent: GroupVersionKind,
    /// The subresource's name (`scale` for `deployments/scale`).
    pub subresource: String,
}

/// Parses `--set` arguments: `key=value` pairs, each argument possibly holding several separated
/// by commas. Pairs without `=` are ignored, as upstream does.
pub fn parse_overrides<'a>(arguments: impl IntoIterator<Item = &'a str>) -> Map<String, Value> {
    arguments
        .into_iter()
        .flat_map(|argument| argument.split(','))
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), Value::from(value.trim())))
        .collect()
}

const OPERATION_KEY: &str = "request.operation";

impl VariableSet {
    /// Values from a Values document and `--set` overrides.
    pub fn new(values: Values, overrides: Map<String, Value>) -> Self {
        Self { values, overrides }
    }

    /// The operation the values ask for with `request.operation` for a policy and a resource
    /// (by name): from `--set`, else the resource's values, else the global values; CREATE when
    /// absent. CONNECT is only a variable: requests are then simulated as CREATE, as upstream
    /// does.
    pub fn operation(&self, policy: &str, resource: &str) -> AdmissionOperation {
        let resource_value = || {
            self.resource_entries(policy, resource)
                .filter_map(|values| values.get(OPERATION_KEY))
                .last()
        };
        let requested = self
            .overrides
            .get(OPERATION_KEY)
            .or_else(resource_value)
            .or_else(|| self.values.global_values.get(OPERATION_KEY));
        match requested
            .and_then(Value::as_str)
            .and_then(AdmissionOperation::from_name)
        {
            Some(AdmissionOperation::Update) => AdmissionOperation::Update,
            Some(AdmissionOperation::Delete) => AdmissionOperation::Delete,
            _ => AdmissionOperation::Create,
        }
    }

    /// The values given to `resource` under `policy`, in file order.
    fn resource_entries<'a>(
        &'a self,
        policy: &'a str,
        resource: &'a str,
    ) -> impl Iterator<Item = &'a Map<String, Value>> {
        self.values
            .policies
            .iter()
            .filter(move |values| values.name == policy)
            .flat_map(|values| &values.resources)
            .filter(move |entry| entry.name == resource)
            .map(|entry| &entry.values)
    }

    /// The values for one policy (by name) and resource (by name). An explicit `operation`
    /// replaces the values' `request.operation`.
    pub fn supplied(
        &self,
        policy: &str,
        resource: &str,
        operation: Option<AdmissionOperation>,
    ) -> SuppliedValues {
        let mut resource_values = Map::new();
        for values in self.resource_entries(policy, resource) {
            resource_values.extend(values.clone());
        }
        // Values of a rule also serve its autogen rules, as upstream's store looks rules up by
        // name, `autogen-<name>` and `autogen-cronjob-<name>`; the first rule listed wins.
        let mut rules = BTreeMap::new();
        let policy_rules = self
            .values
            .policies
            .iter()
            .filter(|values| values.name == policy)
            .flat_map(|values| &values.rules);
        for rule in policy_rules {
            let values = RuleValues {
                values: rule.values.clone(),
                foreach: rule.foreach_values.clone(),
            };
            for name in [
                format!("autogen-cronjob-{}", rule.name),
                format!("autogen-{}", rule.name),
                rule.name.clone(),
            ] {
                rules.entry(name).or_insert_with(|| values.clone());
            }
        }
        resource_values.extend(self.overrides.clone());
        if let Some(operation) = operation {
            resource_values.insert(OPERATION_KEY.to_owned(), Value::from(operation.as_str()));
        }
        SuppliedValues {
            global: self.values.global_values.clone(),
            resource: resource_values,
            rules,
        }
    }

    /// Whether the values define variable `name` (or a field below it) for rule `rule` of
    /// policy `policy`: globally, for that rule (autogen rules share their rule's values) or for
    /// a resource of the policy.
    pub fn provides(&self, policy: &str, rule: &str, name: &str) -> bool {
        let defines = |values: &Map<String, Value>| {
            values.keys().any(|key| {
                key == name
                    || key
                        .strip_prefix(name)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        };
        let base_rule = rule
            .strip_prefix("autogen-cronjob-")
            .or_else(|| rule.strip_prefix("autogen-"))
            .unwrap_or(rule);
        let policy_values = || {
            self.values
                .policies
                .iter()
                .filter(move |values| values.name == policy)
        };
        defines(&self.values.global_values)
            || policy_values()
                .flat_map(|values| &values.rules)
                .filter(|values| values.name == rule || values.name == base_rule)
                .any(|values| defines(&values.values))
            || policy_values()
                .flat_map(|values| &values.resources)
                .any(|values| defines(&values.values))
    }

    /// The labels `namespaceSelector` gives the namespace `namespace`. (The Namespace objects of
    /// `namespaces` serve the CEL policy kinds only, as upstream.)
    pub fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.values
            .namespace_selector
            .iter()
            .find(|entry| entry.name == namespace)
            .map(|entry| &entry.labels)
    }

    /// The Namespace object `namespace`, as the CEL policy kinds see it: the object of
    /// `namespaces`, else one carrying the labels `namespaceSelector` gives it (as upstream).
    pub fn namespace_object(&self, namespace: &str) -> Option<Value> {
        let object = self.values.namespaces.iter().find(|object| {
            object.pointer("/metadata/name").and_then(Value::as_str) == Some(namespace)
        });
        if let Some(object) = object {
            return Some(object.clone());
        }
        self.namespace_labels(namespace).map(|labels| {
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": labels},
            })
        })
    }

    /// The parent resource of a subresource kind (`Scale` of `deployments/scale`), when the values
    /// declare one for `gvk`.
    pub fn subresource_of(&self, gvk: &GroupVersionKind) -> Option<SubresourceOf> {
        self.values.subresources.iter().find_map(|entry| {
            let sub = &entry.subresource;
            if sub.group != gvk.group || sub.version != gvk.version || sub.kind != gvk.kind {
                return None;
            }
            let parent = &entry.parent_resource;
            Some(SubresourceOf {
                parent: GroupVersionKind {
                    group: parent.group.clone(),
                    version: parent.version.clone(),
                    kind: parent.kind.clone(),
                },
                subresource: sub
                    .name
                    .split_once('/')
                    .map(|(_, name)| name)
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(yaml: &str) -> Values {
        serde_saphyr::from_str(yaml).expect("valid values")
    }

    const VALUES: &str = "\
globalValues:
  request.operation: UPDATE
  shared: global
policies:
- name: p
  rules:
  - name: r
    values:
      x: 1
    foreachValues:
      element: [a, b]
  resources:
  - name: pod
    values:
      shared: resource
- name: other
  rules:
  - name: r
    values:
      x: 2
namespaceSelector:
- name: ns1
  labels:
    team: a
namespaces:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: ns2
    labels:
      team: b
subresources:
- subresource:
    group: autoscaling
    version: v1
    kind: Scale
    name: deployments/scale
  parentResource:
    group: apps
    version: v1
    kind: Deployment
    name: deployments
";

    #[test]
    fn values_are_picked_by_policy_rule_and_resource() {
        let set = VariableSet::new(values(VALUES), Map::new());
        let supplied = set.supplied("p", "pod", None);
        assert_eq!(supplied.global.get("shared"), Some(&Value::from("global")));
        assert_eq!(
            supplied.resource.get("shared"),
            Some(&Value::from("resource"))
        );
        assert_eq!(supplied.rules["r"].values.get("x"), Some(&Value::from(1)));
        assert_eq!(
            supplied.rules["r"].foreach.get("element"),
            Some(&serde_json::json!(["a", "b"]))
        );
        assert_eq!(supplied.rules["autogen-r"], supplied.rules["r"]);
        assert_eq!(supplied.rules["autogen-cronjob-r"], supplied.rules["r"]);
        let other_resource = set.supplied("p", "other-pod", None);
        assert!(other_resource.resource.is_empty());
    }

    #[test]
    fn the_operation_comes_from_the_values_unless_given() {
        let set = VariableSet::new(values(VALUES), Map::new());
        assert_eq!(set.operation("p", "pod"), AdmissionOperation::Update);
        let supplied = set.supplied("p", "pod", Some(AdmissionOperation::Delete));
        assert_eq!(
            supplied.resource.get("request.operation"),
            Some(&Value::from("DELETE"))
        );
        assert_eq!(
            VariableSet::default().operation("p", "pod"),
            AdmissionOperation::Create
        );
        let connect = VariableSet::new(
            values("globalValues:\n  request.operation: CONNECT\n"),
            Map::new(),
        );
        assert_eq!(connect.operation("p", "pod"), AdmissionOperation::Create);
        let per_resource = VariableSet::new(
            values(
                "globalValues:\n  request.operation: CREATE\npolicies:\n- name: p\n  resources:\n  - name: pod\n    values:\n      request.operation: DELETE\n",
            ),
            Map::new(),
        );
        assert_eq!(
            per_resource.operation("p", "pod"),
            AdmissionOperation::Delete
        );
        assert_eq!(
            per_resource.operation("p", "other"),
            AdmissionOperation::Create
        );
        assert_eq!(
            per_resource.operation("q", "pod"),
            AdmissionOperation::Create
        );
    }

    #[test]
    fn overrides_win() {
        let set = VariableSet::new(
            values(VALUES),
            parse_overrides(["shared=cli,request.operation=DELETE", "bad"]),
        );
        assert_eq!(
            set.supplied("p", "pod", None).resource.get("shared"),
            Some(&Value::from("cli"))
        );
        assert_eq!(set.operation("p", "pod"), AdmissionOperation::Delete);
    }

    #[test]
    fn namespace_labels_come_from_selectors_only() {
        let set = VariableSet::new(values(VALUES), Map::new());
        assert_eq!(set.namespace_labels("ns1").expect("selector")["team"], "a");
        assert_eq!(set.namespace_labels("ns2"), None);
    }

    #[test]
    fn subresources_map_to_their_parent() {
        let set = VariableSet::new(values(VALUES), Map::new());
        let scale = GroupVersionKind::from_api_version("autoscaling/v1", "Scale");
        let parent = set.subresource_of(&scale).expect("declared");
        assert_eq!(
            parent.parent,
            GroupVersionKind::from_api_version("apps/v1", "Deployment")
        );
        assert_eq!(parent.subresource, "scale");
        assert_eq!(
            set.subresource_of(&GroupVersionKind::from_api_version("v1", "Pod")),
            None
        );
    }
}
