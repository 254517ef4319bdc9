//! Checks of `{{ }}` variables (upstream `ValidateVariables`, `ValidateOnPolicyUpdate`,
//! `validateElementInForEach` and the mock context that only knows which variables exist).
//!
//! Every variable of a rule must be a JMESPath expression that names something the rule can
//! see: request data, images, foreach elements, functions, or its context entries. Background
//! rules (and mutate-existing rules applied on policy updates) may not use who made the request,
//! and no rule may use variables in `match`/`exclude`, JSON patch paths or image references.
use std::sync::LazyLock;

use kyverno_api::kyverno::v1::context::ContextEntry;
use kyverno_api::kyverno::v1::match_resources::UserInfo;
use kyverno_api::kyverno::v1::policy::Spec;
use kyverno_api::kyverno::v1::rule::Rule;
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

use super::{Issues, RuleContext, jmespath_syntax_error};

/// A variable, with the character before it (which must not be `\`) in group 1 and the
/// variable itself in group 2 (upstream `RegexVariables`).
static VARIABLE: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})"));

/// A variable without nested braces, as upstream looks for them in forbidden sections.
static SIMPLE_VARIABLE: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"\{\{[^{}]*\}\}"));

/// Variables about the requester, which background scans do not have.
static USER_VARIABLE: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| {
    Regex::new(
        r"[^.](serviceAccountName|serviceAccountNamespace|request.userInfo|request.roles|request.clusterRoles)(?-u:\b)",
    )
});

/// Variables always allowed, by where the rule runs: at admission, in the background (or on
/// policy updates), and the same for rules mutating existing targets. Upstream matches them
/// anywhere in the variable, so any expression mentioning `request` (or calling a function) is
/// accepted at admission.
const ALLOWED: [&str; 4] = [
    r"request|serviceAccountName|serviceAccountNamespace|element|elementIndex|@|images|image|([a-z_0-9]+\()[^{}]",
    r"request\.|element|elementIndex|@|images|images\.|image\.|([a-z_0-9]+\()[^{}]",
    r"request\.|serviceAccountName|serviceAccountNamespace|element|elementIndex|@|images|images\.|image\.|target\.|([a-z_0-9]+\()[^{}]",
    r"request\.|element|elementIndex|@|images|images\.|image\.|target\.|([a-z_0-9]+\()[^{}]",
];

static ALLOWED_REGEXES: LazyLock<[Result<Regex, regex::Error>; 4]> =
    LazyLock::new(|| ALLOWED.map(Regex::new));

/// The variables always allowed (as written, and compiled) in a rule checked with
/// `strictness`, mutating existing targets or not.
fn allowed_variables(
    strictness: Strictness,
    in_target: bool,
) -> (&'static str, Option<&'static Regex>) {
    let index = usize::from(strictness != Strictness::Admission) + 2 * usize::from(in_target);
    (ALLOWED[index], ALLOWED_REGEXES[index].as_ref().ok())
}

/// The background-mode message prefix of upstream's user variable errors.
const BACKGROUND_USER_PREFIX: &str = "only select variables are allowed in background mode. Set spec.background=false to disable background mode for this policy rule: ";
const POLICY_UPDATE_USER_PREFIX: &str = "only select variables are allowed in on policy update. Set spec.mutateExistingOnPolicyUpdate=false to disable update policy mode for this policy rule: ";
const INVALID_PREFIX: &str = "policy contains invalid variables: ";
const POLICY_UPDATE_INVALID_PREFIX: &str = "update event, policy contains invalid variables: ";

/// Which variables a policy may use, from the most to the least permissive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Strictness {
    /// Admission requests only: anything the request carries.
    Admission,
    /// Mutate-existing rules applied when the policy changes (no request then).
    PolicyUpdate,
    /// Background scans (no request then either).
    Background,
}

impl Strictness {
    /// The strictness of a policy with `spec`, background processing enabled or not, and rules
    /// that serialize to `rules`.
    pub(super) fn of(spec: &Spec, background: bool, rules: &[Value]) -> Strictness {
        if background {
            return Strictness::Background;
        }
        // Upstream checks mutate-existing rules on policy updates only when the policy has
        // variables at all.
        let applied_on_update = spec.rules.iter().any(|rule| {
            rule.mutate.as_ref().is_some_and(|mutate| {
                mutate
                    .mutate_existing_on_policy_update
                    .unwrap_or(spec.mutate_existing_on_policy_update == Some(true))
            })
        });
        if applied_on_update && rules.iter().any(value_has_variables) {
            Strictness::PolicyUpdate
        } else {
            Strictness::Admission
        }
    }
}

/// Whether `text` holds a variable.
pub(super) fn has_variables(text: &str) -> bool {
    VARIABLE.as_ref().is_ok_and(|regex| regex.is_match(text))
}

/// `text` with every variable replaced by `replacement`.
pub(super) fn replace_variables(text: &str, replacement: &str) -> String {
    match VARIABLE.as_ref() {
        Ok(regex) => regex
            .replace_all(text, |captures: &regex::Captures<'_>| {
                format!("{}{replacement}", &captures[1])
            })
            .into_owned(),
        Err(_) => text.to_owned(),
    }
}

/// Whether the JSON form of `object` holds a variable.
pub(super) fn object_has_variables(object: &impl Serialize) -> bool {
    serde_json::to_string(object).is_ok_and(|json| {
        SIMPLE_VARIABLE
            .as_ref()
            .is_ok_and(|regex| regex.is_match(&json))
    })
}

/// The variables of `text`, as written (`{{ ... }}`).
fn variables_of(text: &str) -> impl Iterator<Item = &str> {
    VARIABLE
        .as_ref()
        .ok()
        .into_iter()
        .flat_map(|regex| regex.captures_iter(text))
        .filter_map(|captures| captures.get(2))
        .map(|variable| variable.as_str())
}

fn value_has_variables(value: &Value) -> bool {
    let mut found = false;
    visit_strings(
        value,
        &mut String::new(),
        &mut String::new(),
        &mut |text, _, _| {
            found = found || has_variables(text);
        },
    );
    found
}

/// Calls `visit(text, json_pointer, field_path)` for every object key and string of `value`.
fn visit_strings(
    value: &Value,
    pointer: &mut String,
    path: &mut String,
    visit: &mut impl FnMut(&str, &str, &str),
) {
    let (pointer_len, path_len) = (pointer.len(), path.len());
    match value {
        Value::String(text) => visit(text, pointer, path),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                pointer.push_str(&format!("/{index}"));
                path.push_str(&format!("[{index}]"));
                visit_strings(item, pointer, path, visit);
                pointer.truncate(pointer_len);
                path.truncate(path_len);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                pointer.push('/');
                pointer.push_str(key);
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                visit(key, pointer, path);
                visit_strings(item, pointer, path, visit);
                pointer.truncate(pointer_len);
                path.truncate(path_len);
            }
        }
        _ => {}
    }
}

pub(super) fn check_rule(rule: &RuleContext<'_>, issues: &mut Issues) {
    let strictness = rule.policy.strictness;
    let user_prefix = match strictness {
        Strictness::Admission => None,
        Strictness::PolicyUpdate => Some(POLICY_UPDATE_USER_PREFIX),
        Strictness::Background => Some(BACKGROUND_USER_PREFIX),
    };
    if let Some(prefix) = user_prefix {
        check_user_filters(rule, prefix, issues);
    }
    let invalid_prefix = if strictness == Strictness::PolicyUpdate {
        POLICY_UPDATE_INVALID_PREFIX
    } else {
        INVALID_PREFIX
    };
    check_forbidden_sections(rule, invalid_prefix, issues);
    let known = known_variables(rule.rule);
    let in_target = rule
        .rule
        .mutate
        .as_ref()
        .is_some_and(|mutate| !mutate.targets.is_empty());
    let (allowed_source, allowed_regex) = allowed_variables(strictness, in_target);
    // Upstream skips the user variable check when any rule of the policy mutates existing
    // resources.
    let user_variables_checked = user_prefix.is_some()
        && !rule.policy.spec.rules.iter().any(|other| {
            other
                .mutate
                .as_ref()
                .is_some_and(|mutate| !mutate.targets.is_empty())
        });
    let mut visit = |text: &str, pointer: &str, field: &str| {
        if !text.contains("{{") {
            return;
        }
        let path = rule.at(field);
        if user_variables_checked
            && let Some(prefix) = user_prefix
            && let Some(variable) = variables_of(text).find(|variable| {
                USER_VARIABLE
                    .as_ref()
                    .is_ok_and(|regex| regex.is_match(variable))
            })
        {
            issues.push(
                path.clone(),
                format!("{prefix}variable {variable} is not allowed"),
            );
        }
        // Attestation conditions are evaluated against attestation payloads, not checked here.
        let attestation_condition =
            pointer.starts_with("/verifyImages/") && pointer.contains("/conditions");
        if !attestation_condition
            && let Some(problem) = substitution_problem(text, &known, allowed_source, allowed_regex)
        {
            issues.push(
                path.clone(),
                format!(
                    "{invalid_prefix}variable substitution failed for rule {}: {problem}",
                    rule.rule.name
                ),
            );
        }
        if let Some(variable) = element_outside_foreach(text, pointer) {
            issues.push(
                path,
                format!("variable '{variable}' present outside of foreach"),
            );
        }
    };
    visit_strings(
        rule.json,
        &mut String::new(),
        &mut String::new(),
        &mut visit,
    );
}

/// Background rules cannot filter on who made a request (upstream `hasUserMatchExclude`).
fn check_user_filters(rule: &RuleContext<'_>, prefix: &str, issues: &mut Issues) {
    let r = rule.rule;
    let mut filters: Vec<(String, &UserInfo)> =
        vec![("match".to_owned(), &r.match_resources.user_info)];
    if let Some(exclude) = &r.exclude {
        filters.push(("exclude".to_owned(), &exclude.user_info));
    }
    let lists = [
        ("match.any", &r.match_resources.any),
        ("match.all", &r.match_resources.all),
    ]
    .into_iter()
    .chain(
        r.exclude
            .iter()
            .flat_map(|exclude| [("exclude.all", &exclude.all), ("exclude.any", &exclude.any)]),
    );
    for (list, items) in lists {
        filters.extend(
            items
                .iter()
                .enumerate()
                .map(|(index, filter)| (format!("{list}[{index}]"), &filter.user_info)),
        );
    }
    let used = filters.into_iter().find_map(|(path, user)| {
        let field = if !user.roles.is_empty() {
            "roles"
        } else if !user.cluster_roles.is_empty() {
            "clusterRoles"
        } else if !user.subjects.is_empty() {
            "subjects"
        } else {
            return None;
        };
        Some(format!("{path}.{field}"))
    });
    if let Some(field) = used {
        let upstream_path = format!("spec/rules[{}]/{}", rule.index, field.replace('.', "/"));
        issues.push(
            rule.at(&field),
            format!("{prefix}invalid variable used at path: {upstream_path}"),
        );
    }
}

/// Sections whose values must be known before any variable can be: what a rule selects, JSON
/// patch paths and image references.
fn check_forbidden_sections(rule: &RuleContext<'_>, prefix: &str, issues: &mut Issues) {
    let r = rule.rule;
    let name = &r.name;
    let mut forbid = |path: String, section: &str| {
        issues.push(
            path,
            format!("{prefix}rule \"{name}\" should not have variables in {section}"),
        );
    };
    if let Some(patch) = r
        .mutate
        .as_ref()
        .and_then(|m| m.patches_json6902.as_deref())
        && json_patch_paths_have_variables(patch)
    {
        forbid(
            rule.at("mutate.patchesJson6902"),
            "patchesJSON6902 path section",
        );
    }
    if let Some(exclude) = &r.exclude
        && object_has_variables(exclude)
    {
        forbid(rule.at("exclude"), "exclude section");
    }
    if object_has_variables(&r.match_resources) {
        forbid(rule.at("match"), "match section");
    }
    for (index, verification) in r.verify_images.iter().enumerate() {
        let references = verification
            .image_references
            .iter()
            .chain(verification.image.as_ref());
        if references
            .into_iter()
            .any(|reference| has_variables(reference))
        {
            forbid(
                rule.at(&format!("verifyImages[{index}].imageReferences")),
                "image reference section",
            );
        }
    }
}

fn json_patch_paths_have_variables(patch: &str) -> bool {
    match serde_saphyr::from_str::<Value>(patch) {
        Ok(Value::Array(operations)) => operations.iter().any(|operation| {
            operation
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(has_variables)
        }),
        _ => false,
    }
}

/// Wildcard patterns of the variables a rule's context entries define, in upstream order.
fn known_variables(rule: &Rule) -> Vec<String> {
    let mut known = Vec::new();
    add_context_patterns(&rule.context, &mut known);
    let attestations = rule
        .verify_images
        .iter()
        .filter(|verification| verification.validate.is_some())
        .flat_map(|verification| &verification.attestations)
        .map(|attestation| format!("{}*", attestation.name.as_deref().unwrap_or_default()));
    known.extend(attestations);
    if let Some(validate) = &rule.validate {
        for entry in &validate.foreach {
            add_context_patterns(&entry.context, &mut known);
        }
    }
    if let Some(mutate) = &rule.mutate {
        for entry in &mutate.foreach {
            add_context_patterns(&entry.context, &mut known);
        }
        for target in &mutate.targets {
            add_context_patterns(&target.context, &mut known);
        }
    }
    if let Some(generate) = &rule.generate {
        for entry in &generate.foreach {
            add_context_patterns(&entry.context, &mut known);
        }
    }
    known
}

fn add_context_patterns(entries: &[ContextEntry], known: &mut Vec<String>) {
    for entry in entries {
        let name = &entry.name;
        if entry.api_call.is_some()
            || entry.global_reference.is_some()
            || entry.image_registry.is_some()
            || entry.variable.is_some()
        {
            known.push(format!("{name}*"));
        }
        if entry.config_map.is_some() {
            known.extend([
                format!("{name}.data"),
                format!("{name}.metadata"),
                format!("{name}.data.*"),
                format!("{name}.metadata.*"),
            ]);
        }
    }
}

/// Why substituting the variables of `text` fails in upstream's mock context: a variable that
/// is not JMESPath, or that names nothing the rule knows. Substituted variables become `null`
/// and the text is scanned again, for variables nested in variables.
fn substitution_problem(
    text: &str,
    known: &[String],
    allowed_source: &str,
    allowed: Option<&Regex>,
) -> Option<String> {
    let mut current = text.to_owned();
    loop {
        let variables: Vec<String> = variables_of(&current).map(str::to_owned).collect();
        if variables.is_empty() {
            return None;
        }
        for variable in &variables {
            let expression = variable
                .replace("{{", "")
                .replace("}}", "")
                .trim()
                .to_owned();
            if expression == "@" {
                continue;
            }
            if expression.is_empty() {
                return Some(format!(
                    "failed to resolve {expression}: invalid query (nil)"
                ));
            }
            if let Some(error) = jmespath_syntax_error(&expression) {
                return Some(format!(
                    "failed to resolve {expression}: invalid JMESPath query {expression}: {error}"
                ));
            }
            let unquoted = expression.replace('"', "");
            let is_allowed = allowed.is_some_and(|regex| regex.is_match(&unquoted))
                || known
                    .iter()
                    .any(|pattern| crate::wildcard::matches(pattern, &unquoted));
            if !is_allowed {
                return Some(format!(
                    "variable {unquoted} must match regex \"{allowed_source}\" or patterns [{}]",
                    known.join(" ")
                ));
            }
        }
        if variables.len() == 1 && current == variables[0] {
            return None;
        }
        for variable in &variables {
            current = current.replacen(variable.as_str(), "null", 1);
        }
    }
}

/// A foreach element variable used outside of a `foreach` block.
fn element_outside_foreach(text: &str, pointer: &str) -> Option<String> {
    if pointer.contains("/foreach/") {
        return None;
    }
    variables_of(text).find_map(|variable| {
        let expression = variable.replace("{{", "").replace("}}", "");
        let expression = expression.trim();
        expression
            .starts_with("element")
            .then(|| expression.to_owned())
    })
}
