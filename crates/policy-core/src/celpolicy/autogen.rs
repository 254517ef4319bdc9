//! Pod controller variants of ValidatingPolicies (upstream `pkg/cel/policies/vpol/autogen`).
//!
//! A policy whose `matchConstraints` select exactly core `v1` `pods` (one resource rule, no
//! resource names, exclusions or selectors) also applies to the pod templates of Pod
//! controllers: a variant of the policy is generated for DaemonSet, Deployment, Job, ReplicaSet
//! and StatefulSet (`defaults`, reading the template at `spec.template`) and one for CronJob
//! (`cronjobs`, at `spec.jobTemplate.spec.template`). A variant keeps the policy's name and
//! settings, matches the controllers' resources with the operations of the pod rule, and has
//! every `object.spec` / `oldObject.spec` and `object.metadata` / `oldObject.metadata` of its
//! expressions and messages redirected into the template, except `.name` and `.namespace` right
//! after them (the controller's own name and namespace). `spec.autogen.podControllers.controllers`
//! (resource names such as `deployments`) narrows the controllers; an empty list turns autogen
//! off.
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::{MatchResources, NamedRuleWithOperations};
use kyverno_api::policies::common::{AutogenConfig, Target};
use kyverno_api::policies::validating::Spec;
use serde_json::Value;

/// Name of the variant for the controllers whose pod template is at `spec.template`.
pub const DEFAULTS_VARIANT: &str = "defaults";
/// Name of the variant for CronJob, whose pod template is at `spec.jobTemplate.spec.template`.
pub const CRONJOBS_VARIANT: &str = "cronjobs";

/// A Pod controller: its resource, group, kind and the variant that covers it.
struct Controller {
    resource: &'static str,
    group: &'static str,
    kind: &'static str,
    variant: &'static str,
}

const CONTROLLERS: [Controller; 6] = [
    Controller {
        resource: "daemonsets",
        group: "apps",
        kind: "DaemonSet",
        variant: DEFAULTS_VARIANT,
    },
    Controller {
        resource: "deployments",
        group: "apps",
        kind: "Deployment",
        variant: DEFAULTS_VARIANT,
    },
    Controller {
        resource: "replicasets",
        group: "apps",
        kind: "ReplicaSet",
        variant: DEFAULTS_VARIANT,
    },
    Controller {
        resource: "statefulsets",
        group: "apps",
        kind: "StatefulSet",
        variant: DEFAULTS_VARIANT,
    },
    Controller {
        resource: "jobs",
        group: "batch",
        kind: "Job",
        variant: DEFAULTS_VARIANT,
    },
    Controller {
        resource: "cronjobs",
        group: "batch",
        kind: "CronJob",
        variant: CRONJOBS_VARIANT,
    },
];

/// Where a variant finds the pod's `spec` and `metadata`.
fn template_path(variant: &str) -> &'static str {
    if variant == CRONJOBS_VARIANT {
        "spec.jobTemplate.spec.template"
    } else {
        "spec.template"
    }
}

/// Field paths that stay on the controller itself when they follow a redirected prefix.
const PROTECTED_SUFFIXES: [&str; 2] = [".namespace", ".name"];

/// Whether autogen applies to policies with these constraints (upstream `CanAutoGen`).
pub fn can_autogen(constraints: Option<&MatchResources>) -> bool {
    let Some(constraints) = constraints else {
        return false;
    };
    if super::matching::has_requirements(constraints.namespace_selector.as_ref())
        || super::matching::has_requirements(constraints.object_selector.as_ref())
        || constraints
            .exclude_resource_rules
            .as_ref()
            .is_some_and(|rules| !rules.is_empty())
    {
        return false;
    }
    let Some([rule]) = constraints.resource_rules.as_deref() else {
        return false;
    };
    let is_only = |items: &Option<Vec<String>>, value: &str| matches!(items.as_deref(), Some([item]) if item == value);
    rule.resource_names.as_ref().is_none_or(Vec::is_empty)
        && is_only(&rule.api_groups, "")
        && is_only(&rule.api_versions, "v1")
        && is_only(&rule.resources, "pods")
}

/// The variants generated for a policy, keyed by variant name (`cronjobs`, `defaults`); empty
/// when autogen does not apply.
pub fn variants(spec: &Spec) -> BTreeMap<&'static str, AutogenConfig<Spec>> {
    let mut variants = BTreeMap::new();
    if !can_autogen(spec.match_constraints.as_ref()) {
        return variants;
    }
    let selected = spec
        .autogen
        .as_ref()
        .and_then(|autogen| autogen.pod_controllers.as_ref())
        .and_then(|pod_controllers| pod_controllers.controllers.as_ref());
    let mut targets: BTreeMap<&'static str, Vec<Target>> = BTreeMap::new();
    for controller in &CONTROLLERS {
        if selected.is_none_or(|names| names.iter().any(|name| name == controller.resource)) {
            targets.entry(controller.variant).or_default().push(Target {
                group: Some(controller.group.to_owned()),
                version: "v1".to_owned(),
                resource: controller.resource.to_owned(),
                kind: controller.kind.to_owned(),
            });
        }
    }
    let operations = spec
        .match_constraints
        .as_ref()
        .and_then(|constraints| constraints.resource_rules.as_ref())
        .and_then(|rules| rules.first())
        .and_then(|rule| rule.operations.clone())
        .unwrap_or_default();
    for (variant, mut targets) in targets {
        targets.sort_by(|a, b| {
            (&a.group, &a.version, &a.resource, &a.kind).cmp(&(
                &b.group,
                &b.version,
                &b.resource,
                &b.kind,
            ))
        });
        let mut variant_spec = spec.clone();
        variant_spec.match_constraints = match_constraints(&targets, &operations);
        redirect_into_template(&mut variant_spec, template_path(variant));
        variants.insert(
            variant,
            AutogenConfig {
                targets,
                spec: variant_spec,
            },
        );
    }
    variants
}

/// One resource rule per group and version of the targets, with the pod rule's operations
/// (upstream `CreateMatchConstraints`); none without targets or operations.
fn match_constraints(targets: &[Target], operations: &[String]) -> Option<MatchResources> {
    if targets.is_empty() || operations.is_empty() {
        return None;
    }
    let mut by_group_version: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for target in targets {
        by_group_version
            .entry((target.group.as_deref().unwrap_or_default(), &target.version))
            .or_default()
            .insert(&target.resource);
    }
    let rules = by_group_version
        .into_iter()
        .map(|((group, version), resources)| NamedRuleWithOperations {
            api_groups: Some(vec![group.to_owned()]),
            api_versions: Some(vec![version.to_owned()]),
            resources: Some(resources.into_iter().map(str::to_owned).collect()),
            operations: Some(operations.to_vec()),
            ..NamedRuleWithOperations::default()
        })
        .collect();
    Some(MatchResources {
        resource_rules: Some(rules),
        ..MatchResources::default()
    })
}

/// Rewrites every string of the spec (expressions, messages, ...) so that the pod's `spec` and
/// `metadata` are read from the template at `template` (upstream `autogen.Apply` on the
/// serialized spec).
fn redirect_into_template(spec: &mut Spec, template: &str) {
    let Ok(mut value) = serde_json::to_value(&*spec) else {
        return;
    };
    // In upstream's order: `spec` (object, then oldObject) before `metadata`.
    let replacements: Vec<(String, String)> = ["spec", "metadata"]
        .into_iter()
        .flat_map(|field| {
            ["object", "oldObject"].into_iter().map(move |root| {
                (
                    format!("{root}.{field}"),
                    format!("{root}.{template}.{field}"),
                )
            })
        })
        .collect();
    rewrite_strings(&mut value, &|text| {
        let mut text = text.to_owned();
        for (from, to) in &replacements {
            text = replace_unprotected(&text, from, to);
        }
        text
    });
    if let Ok(rewritten) = serde_json::from_value(value) {
        *spec = rewritten;
    }
}

fn rewrite_strings(value: &mut Value, rewrite: &dyn Fn(&str) -> String) {
    match value {
        Value::String(text) => *text = rewrite(text),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_strings(item, rewrite)),
        Value::Object(fields) => fields
            .values_mut()
            .for_each(|field| rewrite_strings(field, rewrite)),
        _ => {}
    }
}

/// Replaces every `from` in `text` by `to`, except where `from` is followed by a protected
/// suffix (`.name`, `.namespace`) ending the path.
fn replace_unprotected(text: &str, from: &str, to: &str) -> String {
    if !text.contains(from) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + to.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        out.push_str(&rest[..at]);
        let after = &rest[at + from.len()..];
        out.push_str(if is_protected(after) { from } else { to });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn is_protected(after: &str) -> bool {
    PROTECTED_SUFFIXES.iter().any(|suffix| {
        after.strip_prefix(suffix).is_some_and(|next| {
            !next
                .bytes()
                .next()
                .is_some_and(|byte| byte == b'_' || byte.is_ascii_alphanumeric())
        })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> Spec {
        serde_json::from_value(value).expect("spec")
    }

    fn pod_policy() -> Value {
        json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
            "variables": [{"name": "containers", "expression": "object.spec.containers"}],
            "matchConditions": [{"name": "labelled",
                "expression": "has(object.metadata.labels) && object.metadata.name != 'x'"}],
            "validations": [{
                "expression": "object.spec.containers.all(c, c.image != '') && oldObject.spec == null",
                "messageExpression": "'pod ' + object.metadata.name + ' in ' + object.metadata.namespace",
                "message": "object.metadata.namespaceFoo"
            }]
        })
    }

    #[test]
    fn only_plain_pod_constraints_are_autogenerated() {
        let can =
            |value: Value| can_autogen(Some(&serde_json::from_value(value).expect("constraints")));
        let pods = json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["CREATE"], "resources": ["pods"]}]});
        assert!(can(pods.clone()));
        let mut with_selector = pods.clone();
        with_selector["objectSelector"] = json!({"matchLabels": {"a": "b"}});
        assert!(!can(with_selector));
        let mut with_empty_selector = pods.clone();
        with_empty_selector["namespaceSelector"] = json!({});
        assert!(can(with_empty_selector));
        let mut with_exclude = pods.clone();
        with_exclude["excludeResourceRules"] = pods["resourceRules"].clone();
        assert!(!can(with_exclude));
        let mut with_names = pods.clone();
        with_names["resourceRules"][0]["resourceNames"] = json!(["a"]);
        assert!(!can(with_names));
        let mut two_resources = pods.clone();
        two_resources["resourceRules"][0]["resources"] = json!(["pods", "services"]);
        assert!(!can(two_resources));
        let mut any_group = pods.clone();
        any_group["resourceRules"][0]["apiGroups"] = json!(["*"]);
        assert!(!can(any_group));
        let mut two_rules = pods.clone();
        two_rules["resourceRules"] = json!([pods["resourceRules"][0], pods["resourceRules"][0]]);
        assert!(!can(two_rules));
        assert!(!can_autogen(None));
    }

    #[test]
    fn variants_match_controllers_with_the_pod_operations() {
        let variants = variants(&spec(pod_policy()));
        assert_eq!(
            variants.keys().copied().collect::<Vec<_>>(),
            ["cronjobs", "defaults"]
        );
        let defaults = &variants["defaults"];
        let kinds: Vec<&str> = defaults.targets.iter().map(|t| t.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "DaemonSet",
                "Deployment",
                "ReplicaSet",
                "StatefulSet",
                "Job"
            ]
        );
        assert_eq!(
            serde_json::to_value(&defaults.spec.match_constraints).expect("json"),
            json!({"resourceRules": [
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"]},
                {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["jobs"]}
            ]})
        );
        let cronjobs = &variants["cronjobs"];
        assert_eq!(cronjobs.targets.len(), 1);
        assert_eq!(
            serde_json::to_value(&cronjobs.spec.match_constraints).expect("json"),
            json!({"resourceRules": [{"apiGroups": ["batch"], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["cronjobs"]}]})
        );
    }

    #[test]
    fn expressions_read_the_pod_template_except_the_controller_name_and_namespace() {
        let variants = variants(&spec(pod_policy()));
        let defaults = &variants["defaults"].spec;
        assert_eq!(
            defaults.variables[0].expression,
            "object.spec.template.spec.containers"
        );
        assert_eq!(
            defaults.match_conditions[0].expression,
            "has(object.spec.template.metadata.labels) && object.metadata.name != 'x'"
        );
        let validation = &defaults.validations[0];
        assert_eq!(
            validation.expression,
            "object.spec.template.spec.containers.all(c, c.image != '') && \
             oldObject.spec.template.spec == null"
        );
        assert_eq!(
            validation.message_expression.as_deref(),
            Some("'pod ' + object.metadata.name + ' in ' + object.metadata.namespace")
        );
        assert_eq!(
            validation.message.as_deref(),
            Some("object.spec.template.metadata.namespaceFoo")
        );
        let cronjobs = &variants["cronjobs"].spec;
        assert_eq!(
            cronjobs.variables[0].expression,
            "object.spec.jobTemplate.spec.template.spec.containers"
        );
    }

    #[test]
    fn pod_controllers_narrow_or_disable_autogen() {
        let mut narrowed = pod_policy();
        narrowed["autogen"] = json!({"podControllers": {"controllers": ["deployments", "jobs"]}});
        let variants_of_narrowed = variants(&spec(narrowed));
        assert_eq!(variants_of_narrowed.len(), 1);
        let kinds: Vec<&str> = variants_of_narrowed["defaults"]
            .targets
            .iter()
            .map(|t| t.kind.as_str())
            .collect();
        assert_eq!(kinds, ["Deployment", "Job"]);
        let mut disabled = pod_policy();
        disabled["autogen"] = json!({"podControllers": {"controllers": []}});
        assert!(variants(&spec(disabled)).is_empty());
        // Without a controllers list, every controller is generated for.
        let mut unlisted = pod_policy();
        unlisted["autogen"] = json!({"podControllers": {}});
        let all = variants(&spec(unlisted));
        assert_eq!(all.len(), 2);
        assert_eq!(all["defaults"].targets.len(), 5);
        assert_eq!(all["cronjobs"].targets.len(), 1);
        let mut services = pod_policy();
        services["matchConstraints"]["resourceRules"][0]["resources"] = json!(["services"]);
        assert!(variants(&spec(services)).is_empty());
    }

    #[test]
    fn without_operations_a_variant_matches_nothing() {
        let mut policy = pod_policy();
        policy["matchConstraints"]["resourceRules"][0]
            .as_object_mut()
            .map(|rule| rule.remove("operations"));
        let variants = variants(&spec(policy));
        assert!(variants["defaults"].spec.match_constraints.is_none());
    }

    #[test]
    fn protected_suffixes_end_at_identifier_boundaries() {
        assert_eq!(
            replace_unprotected("object.metadata.name", "object.metadata", "X"),
            "object.metadata.name"
        );
        assert_eq!(
            replace_unprotected("object.metadata.names", "object.metadata", "X"),
            "X.names"
        );
        assert_eq!(
            replace_unprotected(
                "object.metadata.name_x + object.metadata",
                "object.metadata",
                "X"
            ),
            "X.name_x + X"
        );
        assert_eq!(
            replace_unprotected("no match", "object.spec", "X"),
            "no match"
        );
    }
}
