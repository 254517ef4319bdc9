//! Pod controller variants of MutatingPolicies (upstream `pkg/cel/policies/mpol/autogen`).
//!
//! A policy whose `matchConstraints` select exactly core `v1` `pods` also mutates the pod
//! templates of Pod controllers, through variants matching the controllers (the same
//! controllers, variants and match constraints as ValidatingPolicy autogen,
//! [`crate::celpolicy::autogen`]). A variant keeps the policy's variables and JSON patches
//! as they are; its `matchConditions` and `ApplyConfiguration` expressions are rewritten by
//! text, as upstream rewrites them: `object.spec` and `Object.spec` (and the `labels` and
//! `annotations` of `object.metadata` / `Object.metadata`) move into the template, and an
//! expression that is a single `Object{...}` has its fields wrapped into the template.
use k8s_openapi::api::admissionregistration::v1::{MatchCondition, MatchResources, Mutation};
use kyverno_api::policies::mutating::Spec;
use kyverno_api::policies::validating::{self, ValidatingAutogenConfiguration};

use crate::celpolicy::autogen::{self as controllers, CRONJOBS_VARIANT};

/// One variant of a policy: what differs from the policy.
#[derive(Debug)]
pub(super) struct Variant {
    /// The variant's name (`defaults`, `cronjobs`).
    pub(super) name: &'static str,
    /// The controllers' resources.
    pub(super) match_constraints: Option<MatchResources>,
    /// The rewritten `matchConditions`.
    pub(super) match_conditions: Vec<MatchCondition>,
    /// The mutations, `ApplyConfiguration` expressions rewritten.
    pub(super) mutations: Vec<Mutation>,
}

/// The variants of a policy, by variant name; none when autogen does not apply.
pub(super) fn variants(spec: &Spec) -> Vec<Variant> {
    // The controllers and their match constraints are those of ValidatingPolicy autogen.
    let selection = validating::Spec {
        match_constraints: spec.match_constraints.clone(),
        autogen: spec
            .autogen
            .as_ref()
            .map(|autogen| ValidatingAutogenConfiguration {
                pod_controllers: autogen.pod_controllers.clone(),
                ..ValidatingAutogenConfiguration::default()
            }),
        ..validating::Spec::default()
    };
    controllers::variants(&selection)
        .into_iter()
        .map(|(name, config)| Variant {
            name,
            match_constraints: config.spec.match_constraints,
            match_conditions: spec
                .match_conditions
                .iter()
                .map(|condition| MatchCondition {
                    expression: into_template(&condition.expression, name),
                    ..condition.clone()
                })
                .collect(),
            mutations: spec
                .mutations
                .iter()
                .map(|mutation| {
                    let mut mutation = mutation.clone();
                    if let Some(body) = mutation.apply_configuration.as_mut()
                        && let Some(expression) = body.expression.as_mut()
                        && !expression.is_empty()
                    {
                        *expression = into_template(expression, name);
                    }
                    mutation
                })
                .collect(),
        })
        .collect()
}

/// Rewrites a pod expression for the pod template of the controllers of `variant`.
fn into_template(expression: &str, variant: &str) -> String {
    let template = if variant == CRONJOBS_VARIANT {
        "spec.jobTemplate.spec.template"
    } else {
        "spec.template"
    };
    let mut rewritten = expression.to_owned();
    for root in ["object", "Object"] {
        rewritten = rewritten.replace(&format!("{root}.spec"), &format!("{root}.{template}.spec"));
    }
    for field in ["labels", "annotations"] {
        for root in ["object", "Object"] {
            rewritten = rewritten.replace(
                &format!("{root}.metadata.{field}"),
                &format!("{root}.{template}.metadata.{field}"),
            );
        }
    }
    wrap_object_into_template(&rewritten, variant).unwrap_or(rewritten)
}

/// `Object{fields}rest` as `Object{spec: ...{template: ...{fields}}}rest`: the fields of a
/// top-level `Object{...}` placed in the template. `None` when the expression does not start
/// with a complete `Object{...}`.
fn wrap_object_into_template(expression: &str, variant: &str) -> Option<String> {
    let content = expression.trim().strip_prefix("Object{")?;
    let mut depth = 1;
    let end = content.char_indices().find_map(|(index, character)| {
        match character {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        (depth == 0).then_some(index)
    })?;
    if end == 0 {
        return None;
    }
    let (wrapper, closing) = if variant == CRONJOBS_VARIANT {
        (
            "Object{spec: Object.spec{jobTemplate: Object.spec.jobTemplate{spec: \
             Object.spec.jobTemplate.spec{template: Object.spec.jobTemplate.spec.template{",
            "}}}}}",
        )
    } else {
        (
            "Object{spec: Object.spec{template: Object.spec.template{",
            "}}}",
        )
    };
    Some(format!(
        "{wrapper}{}{closing}{}",
        &content[..end],
        &content[end + 1..]
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::celpolicy::autogen::DEFAULTS_VARIANT;

    #[test]
    fn expressions_move_into_the_template() {
        assert_eq!(
            into_template(
                "Object{spec: Object.spec{containers: object.spec.containers}}",
                DEFAULTS_VARIANT
            ),
            "Object{spec: Object.spec{template: Object.spec.template{spec: \
             Object.spec.template.spec{containers: object.spec.template.spec.containers}}}}"
        );
        assert_eq!(
            into_template(
                "has(object.metadata.labels) && object.metadata.name == 'x'",
                CRONJOBS_VARIANT
            ),
            "has(object.spec.jobTemplate.spec.template.metadata.labels) && object.metadata.name == 'x'"
        );
        assert_eq!(
            into_template("[JSONPatch{op: 'add'}]", DEFAULTS_VARIANT),
            "[JSONPatch{op: 'add'}]"
        );
    }

    #[test]
    fn pod_policies_get_controller_variants() {
        let spec: Spec = serde_json::from_value(json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["pods"]}]},
            "matchConditions": [{"name": "c", "expression": "has(object.spec.volumes)"}],
            "mutations": [
                {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
                    "Object{spec: Object.spec{hostname: 'h'}}"}},
                {"patchType": "JSONPatch", "jsonPatch": {"expression": "object.spec.x"}}
            ]
        }))
        .expect("spec");
        let variants = variants(&spec);
        let names: Vec<&str> = variants.iter().map(|variant| variant.name).collect();
        assert_eq!(names, [CRONJOBS_VARIANT, DEFAULTS_VARIANT]);
        let cronjobs = &variants[0];
        assert_eq!(
            cronjobs.match_conditions[0].expression,
            "has(object.spec.jobTemplate.spec.template.spec.volumes)"
        );
        assert_eq!(
            cronjobs.mutations[1]
                .json_patch
                .as_ref()
                .and_then(|p| p.expression.as_deref()),
            Some("object.spec.x")
        );
        let rules = serde_json::to_value(&variants[1].match_constraints).expect("rules");
        assert_eq!(rules["resourceRules"][0]["apiGroups"], json!(["apps"]));

        let mut disabled = spec.clone();
        disabled.autogen = serde_json::from_value(json!({"podControllers": {"controllers": []}}))
            .expect("autogen");
        assert!(super::variants(&disabled).is_empty());
        // Without a controllers list, every controller is generated for.
        let mut unlisted = spec.clone();
        unlisted.autogen = serde_json::from_value(json!({"podControllers": {}})).expect("autogen");
        assert_eq!(super::variants(&unlisted).len(), 2);
        let mut narrowed = spec;
        narrowed.autogen =
            serde_json::from_value(json!({"podControllers": {"controllers": ["cronjobs"]}}))
                .expect("autogen");
        let names: Vec<&str> = super::variants(&narrowed)
            .iter()
            .map(|variant| variant.name)
            .collect();
        assert_eq!(names, [CRONJOBS_VARIANT]);
    }
}
