//! Rules generated for Pod controllers from Pod rules (upstream `pkg/autogen/v1`).
//!
//! A rule that selects only Pods also gets an `autogen-<name>` rule for DaemonSet, Deployment,
//! Job, ReplicaSet, ReplicationController and StatefulSet, which checks the pod template at
//! `spec.template`, and an `autogen-cronjob-<name>` rule for CronJob, which checks
//! `spec.jobTemplate.spec.template`. The `pod-policies.kyverno.io/autogen-controllers`
//! annotation narrows the controllers (a comma-separated list) or turns autogen off (`none`).
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use kyverno_api::kyverno::v1::match_resources::{
    MatchResources, ResourceDescription, ResourceFilter,
};
use kyverno_api::kyverno::v1::mutate::{ForEachMutation, Mutation};
use kyverno_api::kyverno::v1::policy::Spec;
use kyverno_api::kyverno::v1::rule::Rule;
use kyverno_api::kyverno::v1::validate::Validation;
use regex::Regex;
use serde_json::{Value, json};

use crate::matching::contains_kind;
use crate::request::ResourceRequest;

/// The policy annotation that selects the controllers rules are generated for.
pub const AUTOGEN_CONTROLLERS_ANNOTATION: &str = "pod-policies.kyverno.io/autogen-controllers";

/// Prefix of generated rule names.
const AUTOGEN_PREFIX: &str = "autogen-";
/// The Pod controllers covered by `autogen-` rules, sorted.
const POD_CONTROLLERS: [&str; 6] = [
    "DaemonSet",
    "Deployment",
    "Job",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
];
const CRON_JOB: &str = "CronJob";
/// Longest rule name.
const MAX_RULE_NAME_LENGTH: usize = 63;

/// The rules to evaluate for a policy: its rules followed, for each rule, by the rule generated
/// for the Pod controllers and the one generated for CronJob, in upstream order. When rules are
/// generated, rules of the spec already named `autogen-*` are dropped.
pub fn compute_rules(spec: &Spec, annotations: &BTreeMap<String, String>) -> Vec<Rule> {
    let generated = generate_rules(spec, annotations);
    if generated.is_empty() {
        return spec.rules.clone();
    }
    spec.rules
        .iter()
        .filter(|rule| !is_autogen_rule_name(&rule.name))
        .cloned()
        .chain(generated)
        .collect()
}

/// The controller kinds rules of the policy are generated for (the kinds of the `autogen-` rules,
/// then `CronJob` when an `autogen-cronjob-` rule is generated); empty when autogen does not
/// apply to the policy or is turned off by its annotation.
pub fn controllers<'a>(spec: &Spec, annotations: &'a BTreeMap<String, String>) -> Vec<&'a str> {
    selection(spec, annotations).map_or_else(Vec::new, |selection| {
        let mut kinds = selection.controller_kinds;
        if selection.cron_job {
            kinds.push(CRON_JOB);
        }
        kinds
    })
}

/// Whether `request` is a Pod or Job created by a controller the policy's autogen annotation
/// covers (every owner is a ReplicaSet or named in the annotation); such resources were already
/// checked through their controller. Upstream `ManagedPodResource`: only applies when the policy
/// carries the annotation with a value other than `none`.
pub fn is_managed_pod_resource(
    annotations: &BTreeMap<String, String>,
    request: &ResourceRequest,
) -> bool {
    let Some(controllers) = annotations.get(AUTOGEN_CONTROLLERS_ANNOTATION) else {
        return false;
    };
    if controllers.eq_ignore_ascii_case("none") || !matches!(request.kind(), "Pod" | "Job") {
        return false;
    }
    let owners = request.owner_references();
    !owners.is_empty()
        && owners.iter().all(|owner| {
            let kind = owner
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            kind == "ReplicaSet" || controllers.contains(kind)
        })
}

/// The controllers selected for a policy whose rules support autogen.
struct Selection<'a> {
    /// Kinds of the `autogen-` rules; empty when none is generated.
    controller_kinds: Vec<&'a str>,
    /// Whether `autogen-cronjob-` rules are generated.
    cron_job: bool,
}

fn selection<'a>(spec: &Spec, annotations: &'a BTreeMap<String, String>) -> Option<Selection<'a>> {
    if !can_autogen(spec) {
        return None;
    }
    let requested: BTreeSet<&str> = match annotations.get(AUTOGEN_CONTROLLERS_ANNOTATION) {
        Some(value) => value.split(',').collect(),
        None => POD_CONTROLLERS.into_iter().chain([CRON_JOB]).collect(),
    };
    if requested.len() == 1 && requested.contains("none") {
        return None;
    }
    let others: Vec<&str> = requested
        .iter()
        .copied()
        .filter(|c| *c != CRON_JOB)
        .collect();
    let controller_kinds = match others.as_slice() {
        [] | [""] => Vec::new(),
        ["all"] => POD_CONTROLLERS.to_vec(),
        _ => {
            let known: Vec<&str> = others
                .iter()
                .copied()
                .filter(|c| POD_CONTROLLERS.contains(c))
                .collect();
            // Unknown names are kept as kinds when no known controller is listed, as upstream.
            if known.is_empty() { others } else { known }
        }
    };
    // Upstream looks for these words anywhere in the comma-joined annotation.
    let cron_job = requested
        .iter()
        .any(|c| c.contains(CRON_JOB) || c.contains("all"));
    Some(Selection {
        controller_kinds,
        cron_job,
    })
}

/// Whether the policy's rules allow autogen at all: no generate rule, no JSON patch, no filter
/// naming resources, selecting labels or annotations, or mixing Pod with other kinds, and some
/// filter listing Pod or a Pod controller.
fn can_autogen(spec: &Spec) -> bool {
    let mut needed = false;
    for rule in &spec.rules {
        if rule
            .generate
            .as_ref()
            .is_some_and(|g| *g != Default::default())
        {
            return false;
        }
        if let Some(mutation) = &rule.mutate {
            let has_json_patch =
                |patch: &Option<String>| patch.as_deref().is_some_and(|p| !p.is_empty());
            if has_json_patch(&mutation.patches_json6902)
                || mutation
                    .foreach
                    .iter()
                    .any(|f| has_json_patch(&f.patches_json6902))
            {
                return false;
            }
        }
        let blocks = std::iter::once(&rule.match_resources).chain(rule.exclude.as_ref());
        for block in blocks {
            let descriptions = block.resources.iter().chain(
                block
                    .any
                    .iter()
                    .chain(&block.all)
                    .filter_map(|f| f.resources.as_ref()),
            );
            for description in descriptions {
                if !supports_autogen(description, &mut needed) {
                    return false;
                }
            }
        }
    }
    needed
}

fn supports_autogen(description: &ResourceDescription, needed: &mut bool) -> bool {
    let kinds = &description.kinds;
    if description.name.as_deref().is_some_and(|n| !n.is_empty())
        || !description.names.is_empty()
        || description.selector.is_some()
        || !description.annotations.is_empty()
        || (kinds.len() > 1 && contains_kind(kinds, "Pod"))
    {
        return false;
    }
    *needed |= kinds
        .iter()
        .any(|k| k == "Pod" || k == CRON_JOB || POD_CONTROLLERS.contains(&k.as_str()));
    true
}

/// The generated rules, in upstream order.
fn generate_rules(spec: &Spec, annotations: &BTreeMap<String, String>) -> Vec<Rule> {
    let Some(selection) = selection(spec, annotations) else {
        return Vec::new();
    };
    let mut generated = Vec::new();
    for rule in &spec.rules {
        if !selection.controller_kinds.is_empty()
            && let Some(controller_rule) = controller_rule(rule, &selection.controller_kinds)
            && let Some(rule) = finalize(controller_rule, Target::PodTemplate)
        {
            generated.push(rule);
        }
        if selection.cron_job
            && let Some(controller_rule) = controller_rule(rule, &[CRON_JOB])
            && let Some(cron_job_rule) = generate_rule(
                autogen_rule_name("autogen-cronjob", &rule.name),
                &controller_rule,
                "jobTemplate",
                "spec/jobTemplate/spec/template",
                &[CRON_JOB],
                KindRewrite::EveryFilter,
            )
            && let Some(rule) = finalize(cron_job_rule, Target::CronJobTemplate)
        {
            generated.push(rule);
        }
    }
    generated
}

/// The rule for the Pod controllers `kinds`, before references are rewritten; also the base of
/// the CronJob rule (whose kinds then replace these).
fn controller_rule(rule: &Rule, kinds: &[&str]) -> Option<Rule> {
    if is_autogen_rule_name(&rule.name) {
        return None;
    }
    let match_kinds = all_kinds(&rule.match_resources);
    if !contains_kind(match_kinds, "Pod") {
        return None;
    }
    if let Some(exclude) = &rule.exclude {
        let mut exclude_kinds = all_kinds(exclude).peekable();
        if exclude_kinds.peek().is_some() && !contains_kind(exclude_kinds, "Pod") {
            return None;
        }
    }
    generate_rule(
        autogen_rule_name("autogen", &rule.name),
        rule,
        "template",
        "spec/template",
        kinds,
        KindRewrite::PodFilters,
    )
}

/// Every kind selector of a block.
fn all_kinds(block: &MatchResources) -> impl Iterator<Item = &String> {
    block
        .resources
        .iter()
        .chain(
            block
                .all
                .iter()
                .chain(&block.any)
                .filter_map(|f| f.resources.as_ref()),
        )
        .flat_map(|description| &description.kinds)
}

/// Which `any`/`all` filters get the generated kinds.
#[derive(Clone, Copy)]
enum KindRewrite {
    /// Only filters that list Pod.
    PodFilters,
    /// Every filter.
    EveryFilter,
}

/// Builds a generated rule: kinds replaced, and the rule's action moved under
/// `spec.<template_key>` (patterns, patches) or kept (deny, foreach, podSecurity, CEL,
/// verifyImages; their references are rewritten by [`finalize`]). `None` when the rule's action
/// cannot be generated.
fn generate_rule(
    name: String,
    rule: &Rule,
    template_key: &str,
    shift: &str,
    kinds: &[&str],
    rewrite: KindRewrite,
) -> Option<Rule> {
    let mut generated = rule.clone();
    generated.name = name;
    let kinds: Vec<String> = kinds.iter().map(|kind| (*kind).to_owned()).collect();
    rewrite_match_kinds(&mut generated.match_resources, &kinds, rewrite);
    if let Some(exclude) = &mut generated.exclude {
        rewrite_exclude_kinds(exclude, &kinds, rewrite);
    }
    if let Some(mutation) = rule
        .mutate
        .as_ref()
        .and_then(|mutation| generated_mutation(mutation, template_key))
    {
        generated.mutate = Some(mutation);
        return Some(generated);
    }
    if let Some(validation) = rule
        .validate
        .as_ref()
        .and_then(|validation| generated_validation(validation, template_key, shift))
    {
        generated.validate = Some(validation);
        return Some(generated);
    }
    (!rule.verify_images.is_empty()).then_some(generated)
}

/// `{"spec": {<template_key>: value}}`
fn under_template(template_key: &str, value: Value) -> Value {
    json!({ "spec": { template_key: value } })
}

/// The mutation of a generated rule: the strategic merge patch, or the patch of each foreach
/// entry, moved under the template. `None` for other mutations.
fn generated_mutation(mutation: &Mutation, template_key: &str) -> Option<Mutation> {
    if let Some(patch) = mutation
        .patch_strategic_merge
        .as_ref()
        .filter(|p| !p.is_null())
    {
        return Some(Mutation {
            patch_strategic_merge: Some(under_template(template_key, patch.clone())),
            ..Default::default()
        });
    }
    if mutation.foreach.is_empty() {
        return None;
    }
    let foreach = mutation
        .foreach
        .iter()
        .map(|entry| ForEachMutation {
            list: entry.list.clone(),
            context: entry.context.clone(),
            preconditions: entry.preconditions.clone(),
            patch_strategic_merge: Some(under_template(
                template_key,
                entry.patch_strategic_merge.clone().unwrap_or(Value::Null),
            )),
            ..Default::default()
        })
        .collect();
    Some(Mutation {
        foreach,
        ..Default::default()
    })
}

/// The validation of a generated rule, from the first of pattern, deny, podSecurity, anyPattern,
/// foreach, CEL and assert that is set. `None` for other validations (manifests).
fn generated_validation(
    validation: &Validation,
    template_key: &str,
    shift: &str,
) -> Option<Validation> {
    // Upstream rebuilds the validation with only these fields (and the check).
    let rebuilt = |pivot| Validation {
        message: validation
            .message
            .as_deref()
            .map(|message| shift_references(message, shift, pivot)),
        failure_action: validation.failure_action,
        failure_action_overrides: validation.failure_action_overrides.clone(),
        allow_existing_violations: validation.allow_existing_violations,
        ..Default::default()
    };
    let set = |value: &Option<Value>| value.clone().filter(|v| !v.is_null());
    Some(if let Some(pattern) = set(&validation.pattern) {
        Validation {
            pattern: Some(under_template(template_key, pattern)),
            ..rebuilt("pattern")
        }
    } else if let Some(deny) = &validation.deny {
        Validation {
            deny: Some(deny.clone()),
            ..rebuilt("deny")
        }
    } else if let Some(pod_security) = &validation.pod_security {
        Validation {
            pod_security: Some(pod_security.clone()),
            ..rebuilt("podSecurity")
        }
    } else if let Some(any_pattern) = set(&validation.any_pattern) {
        let patterns = match any_pattern {
            Value::Array(patterns) => Some(Value::Array(
                patterns
                    .into_iter()
                    .map(|pattern| under_template(template_key, pattern))
                    .collect(),
            )),
            _ => None,
        };
        Validation {
            any_pattern: patterns,
            ..rebuilt("anyPattern")
        }
    } else if !validation.foreach.is_empty() {
        Validation {
            foreach: validation.foreach.clone(),
            ..rebuilt("pattern")
        }
    } else if validation.cel.is_some() {
        validation.clone()
    } else if let Some(assertion) = set(&validation.assert) {
        Validation {
            assert: Some(autogen_assertion(assertion, template_key)),
            ..validation.clone()
        }
    } else {
        return None;
    })
}

fn rewrite_match_kinds(block: &mut MatchResources, kinds: &[String], rewrite: KindRewrite) {
    if !block.any.is_empty() {
        rewrite_filter_kinds(&mut block.any, kinds, rewrite);
    } else if !block.all.is_empty() {
        rewrite_filter_kinds(&mut block.all, kinds, rewrite);
    } else {
        block.resources.get_or_insert_default().kinds = kinds.to_vec();
    }
}

fn rewrite_exclude_kinds(block: &mut MatchResources, kinds: &[String], rewrite: KindRewrite) {
    if !block.any.is_empty() {
        rewrite_filter_kinds(&mut block.any, kinds, rewrite);
    } else if !block.all.is_empty() {
        rewrite_filter_kinds(&mut block.all, kinds, rewrite);
    } else if let Some(description) = &mut block.resources
        && !description.kinds.is_empty()
    {
        description.kinds = kinds.to_vec();
    }
}

fn rewrite_filter_kinds(filters: &mut [ResourceFilter], kinds: &[String], rewrite: KindRewrite) {
    for filter in filters {
        match rewrite {
            KindRewrite::PodFilters => {
                if let Some(description) = &mut filter.resources
                    && contains_kind(&description.kinds, "Pod")
                {
                    description.kinds = kinds.to_vec();
                }
            }
            KindRewrite::EveryFilter => {
                filter.resources.get_or_insert_default().kinds = kinds.to_vec();
            }
        }
    }
}

/// Moves the `object` and `oldObject` trees of a (deprecated) `validate.assert` under
/// `spec.<template_key>`.
fn autogen_assertion(assertion: Value, template_key: &str) -> Value {
    let Value::Object(mut tree) = assertion else {
        return assertion;
    };
    for node in ["object", "oldObject"] {
        if let Some(object @ Value::Object(_)) = tree.get_mut(node) {
            *object = under_template(template_key, object.take());
        }
    }
    Value::Object(tree)
}

/// The pod template a generated rule checks.
#[derive(Clone, Copy)]
enum Target {
    /// `spec.template` of DaemonSet, Deployment, Job, ...
    PodTemplate,
    /// `spec.jobTemplate.spec.template` of CronJob.
    CronJobTemplate,
}

/// Text replacements applied to the whole generated rule (upstream `updateFields`): JMESPath
/// references to the Pod's spec and metadata point into the template instead.
fn reference_replacements(target: Target, cel: bool) -> [(&'static str, &'static str); 4] {
    match (target, cel) {
        (Target::PodTemplate, false) => [
            ("request.object.spec", "request.object.spec.template.spec"),
            (
                "request.oldObject.spec",
                "request.oldObject.spec.template.spec",
            ),
            (
                "request.object.metadata",
                "request.object.spec.template.metadata",
            ),
            (
                "request.oldObject.metadata",
                "request.oldObject.spec.template.metadata",
            ),
        ],
        (Target::PodTemplate, true) => [
            ("object.spec", "object.spec.template.spec"),
            ("oldObject.spec", "oldObject.spec.template.spec"),
            ("object.metadata", "object.spec.template.metadata"),
            ("oldObject.metadata", "oldObject.spec.template.metadata"),
        ],
        (Target::CronJobTemplate, false) => [
            (
                "request.object.spec",
                "request.object.spec.jobTemplate.spec.template.spec",
            ),
            (
                "request.oldObject.spec",
                "request.oldObject.spec.jobTemplate.spec.template.spec",
            ),
            (
                "request.object.metadata",
                "request.object.spec.jobTemplate.spec.template.metadata",
            ),
            (
                "request.oldObject.metadata",
                "request.oldObject.spec.jobTemplate.spec.template.metadata",
            ),
        ],
        (Target::CronJobTemplate, true) => [
            ("object.spec", "object.spec.jobTemplate.spec.template.spec"),
            (
                "oldObject.spec",
                "oldObject.spec.jobTemplate.spec.template.spec",
            ),
            (
                "object.metadata",
                "object.spec.jobTemplate.spec.template.metadata",
            ),
            (
                "oldObject.metadata",
                "oldObject.spec.jobTemplate.spec.template.metadata",
            ),
        ],
    }
}

/// Keeps the fields upstream keeps in generated rules and rewrites references to the Pod into
/// references to the template, everywhere in the rule's text as upstream does. `None` if the
/// rewritten rule no longer deserializes.
fn finalize(rule: Rule, target: Target) -> Option<Rule> {
    let kept = Rule {
        name: rule.name,
        context: rule.context,
        match_resources: rule.match_resources,
        exclude: rule
            .exclude
            .filter(|exclude| *exclude != MatchResources::default()),
        preconditions: rule.preconditions,
        cel_preconditions: rule.cel_preconditions,
        skip_background_requests: rule.skip_background_requests,
        validate: rule.validate,
        mutate: rule.mutate,
        verify_images: rule.verify_images,
        ..Default::default()
    };
    let cel = kept.validate.as_ref().is_some_and(|v| v.cel.is_some());
    let mut text = serde_json::to_string(&kept).ok()?;
    for (from, to) in reference_replacements(target, cel) {
        if text.contains(from) {
            text = text.replace(from, to);
        }
    }
    serde_json::from_str(&text).ok()
}

/// `autogen-<name>` / `autogen-cronjob-<name>`, cut to the longest rule name.
fn autogen_rule_name(prefix: &str, name: &str) -> String {
    let mut generated = format!("{prefix}-{name}");
    let mut end = MAX_RULE_NAME_LENGTH.min(generated.len());
    while !generated.is_char_boundary(end) {
        end -= 1;
    }
    generated.truncate(end);
    generated
}

/// Whether the rule named `name` is rule `rule` or one of the rules autogen derives from it
/// (`autogen-<rule>`, `autogen-cronjob-<rule>`), as test results and values name them.
pub fn names_rule(name: &str, rule: &str) -> bool {
    name == rule
        || name.strip_prefix("autogen-") == Some(rule)
        || name.strip_prefix("autogen-cronjob-") == Some(rule)
}

fn is_autogen_rule_name(name: &str) -> bool {
    name.starts_with(AUTOGEN_PREFIX)
}

/// `$(...)` references at the start of a message or after any character but `\`.
static REFERENCES: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\$\(.[^ ]*\)|[^\\]\$\(.[^ ]*\)").ok());

/// Inserts `shift` after `pivot` in the `$(...)` references of a message, so that references into
/// the rule's pattern still point at it once it is moved (upstream `FindAndShiftReferences`,
/// including its quirk of keeping the `anyPattern/<index>` pivot across references).
fn shift_references(message: &str, shift: &str, pivot: &str) -> String {
    let Some(references) = REFERENCES.as_ref() else {
        return message.to_owned();
    };
    let mut shifted_message = message.to_owned();
    let mut pivot = pivot.to_owned();
    for found in references.find_iter(message) {
        let old_reference = found.as_str();
        let (prefix, reference) = if old_reference.starts_with("$(") {
            ("", old_reference)
        } else {
            let first_len = old_reference.chars().next().map_or(0, char::len_utf8);
            old_reference.split_at(first_len)
        };
        if pivot == "anyPattern"
            && let Some(index) = reference.find(&pivot)
        {
            let after = reference.get(index + pivot.len() + 1..).unwrap_or_default();
            let rule_index = after.split('/').next().unwrap_or_default();
            pivot = format!("{pivot}/{rule_index}");
        }
        let replacement = format!(
            "{prefix}{}",
            reference.replace(&pivot, &format!("{pivot}/{shift}"))
        );
        shifted_message = shifted_message.replacen(old_reference, &replacement, 1);
    }
    shifted_message
}

#[cfg(test)]
mod tests;
