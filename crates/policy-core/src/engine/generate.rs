//! Generate rules: the resources a rule asks to create (or keep in sync) for a trigger, as
//! upstream's background generate controller computes them.
//!
//! - A rule that matches (and whose preconditions hold, and that no exception skips) passes and
//!   yields its downstream resources; applying them is the generate controller's job.
//! - `data`: the rule's data with its variables substituted, named by the rule's `apiVersion`,
//!   `kind`, `namespace` and `name` (which may hold variables too); without `data` the resource
//!   has only its identity.
//! - `clone`: a copy of the source resource (same apiVersion and kind as the target) fetched
//!   through the [`ContextProvider`], without its server-set metadata. Cloning a resource onto
//!   itself yields nothing.
//! - `cloneList`: a copy of every resource of the listed kinds in the source namespace that the
//!   selector selects, each named after its source, in the rule's namespace; sources already in
//!   that namespace are left out.
//! - `foreach`: each declaration's pattern once per element of its list (with its own context
//!   and preconditions); failing elements make the rule an error, the others still generate.
//! - Every generated resource carries `app.kubernetes.io/managed-by: kyverno` and the
//!   `generate.kyverno.io/*` labels naming the policy, the rule and the trigger (and the source
//!   for clones), as upstream sets them.
use std::collections::BTreeMap;

use kyverno_api::kyverno::v1::generate::{GeneratePattern, Generation, ResourceSpec};
use kyverno_api::kyverno::v1::policy::ApplyRules;
use serde_json::{Map, Value};

use super::context::RuleContext;
use super::validate::evaluate_list;
use super::{
    ContextProvider, Environment, LoadedPolicy, Lookup, PolicyRun, Prelude, RuleValues,
    element_context,
};
use crate::conditions::Conditions;
use crate::matching::selector_matches;
use crate::request::{GroupVersionKind, ResourceRequest};
use crate::response::{RuleResponse, RuleStatus, RuleType};

/// The label Kyverno sets on the resources it manages.
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The result of a policy's generate rules for one trigger resource.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerateResponse {
    /// One response per generate rule that matched the trigger, in rule order.
    pub rules: Vec<RuleResponse>,
    /// The resources to create or update, in rule order.
    pub resources: Vec<GeneratedResource>,
}

/// A downstream resource a generate rule asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedResource {
    /// The name of the rule that generated it.
    pub rule: String,
    /// The resource, labelled as upstream labels generated resources.
    pub resource: Value,
    /// Whether the controller keeps it in sync with the rule (`synchronize`).
    pub synchronize: bool,
    /// Whether it is kept when the rule or policy is deleted
    /// (`orphanDownstreamOnPolicyDelete`).
    pub orphan_downstream_on_policy_delete: bool,
}

/// Why a generate rule could not produce its resources; reported as the rule's error.
#[derive(Debug, thiserror::Error)]
enum GenerateError {
    /// Variables, context entries or conditions failed.
    #[error(transparent)]
    Engine(#[from] super::EngineError),
    /// The pattern does not have the shape of a generate pattern once substituted.
    #[error("invalid generate pattern: {0}")]
    Pattern(#[from] serde_json::Error),
    /// A namespaced policy may only clone from its own namespace.
    #[error("{path}.namespace {source_namespace:?} must equal policy namespace {policy:?}")]
    ForeignSource {
        /// `generate.clone` or `generate.cloneList`.
        path: &'static str,
        /// The namespace the pattern clones from.
        source_namespace: String,
        /// The policy's namespace.
        policy: String,
    },
    /// The clone source does not exist.
    #[error("source resource {0} not found")]
    SourceNotFound(String),
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] super::ProviderError),
    /// A `cloneList` selector is invalid.
    #[error(transparent)]
    Selector(#[from] crate::matching::SelectorError),
    /// Some foreach elements failed.
    #[error("{0}")]
    Foreach(String),
}

/// Applies the generate rules of `policy` to the trigger `request`: each matching rule yields
/// the resources to create or update (autogen rules included).
pub fn generate(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    environment: &Environment<'_>,
) -> GenerateResponse {
    let run = PolicyRun::new(policy, request, environment);
    let request = run.request.as_ref();
    let mut response = GenerateResponse::default();
    for rule in &policy.rules {
        let Some(generation) = &rule.generate else {
            continue;
        };
        let rule_response = match run.prelude(rule, RuleType::Generation, false, request) {
            Prelude::Unmatched => continue,
            Prelude::Answered(answer) => answer,
            Prelude::Run { context, .. } => {
                let generator = Generator {
                    policy,
                    rule: &rule.name,
                    provider: environment.provider,
                    values: environment.values.rules.get(&rule.name),
                    trigger: request.resource(),
                };
                let (resources, failure) = generator.generate(generation, &context);
                response
                    .resources
                    .extend(resources.into_iter().map(|resource| {
                        GeneratedResource {
                            rule: rule.name.clone(),
                            resource,
                            synchronize: generation.synchronize.unwrap_or(false),
                            orphan_downstream_on_policy_delete: generation
                                .orphan_downstream_on_policy_delete
                                .unwrap_or(false),
                        }
                    }));
                let (status, message) = match failure {
                    None => (RuleStatus::Pass, String::new()),
                    Some(error) => (
                        RuleStatus::Error,
                        format!("failed to generate resources: {error}"),
                    ),
                };
                RuleResponse {
                    name: rule.name.clone(),
                    rule_type: RuleType::Generation,
                    status,
                    message,
                }
            }
        };
        let applied = rule_response.status != RuleStatus::Skip;
        response.rules.push(rule_response);
        if applied && policy.spec.apply_rules == Some(ApplyRules::One) {
            break;
        }
    }
    response
}

/// What generating with one rule needs besides its pattern.
struct Generator<'a> {
    policy: &'a LoadedPolicy,
    rule: &'a str,
    provider: &'a dyn ContextProvider,
    /// The values supplied for the rule (per-element values of `foreach`).
    values: Option<&'a RuleValues>,
    /// The resource that triggered the rule.
    trigger: &'a Value,
}

impl Generator<'_> {
    /// The resources of a rule, and what failed, if anything.
    fn generate(
        &self,
        generation: &Generation,
        context: &RuleContext,
    ) -> (Vec<Value>, Option<GenerateError>) {
        if generation.foreach.is_empty() {
            return match self.resources_of(&generation.pattern, context) {
                Ok(resources) => (resources, None),
                Err(error) => (Vec::new(), Some(error)),
            };
        }
        let mut resources = Vec::new();
        let mut failures = Vec::new();
        for (position, foreach) in generation.foreach.iter().enumerate() {
            let list = foreach.list.as_deref().unwrap_or_default();
            let elements = match evaluate_list(list, context) {
                Ok(elements) => elements,
                Err(error) => {
                    failures.push(format!(
                        "failed to evaluate {position} foreach list: {error}"
                    ));
                    continue;
                }
            };
            for (index, element) in elements.iter().enumerate() {
                if element.is_null() {
                    continue;
                }
                let mut element_context = element_context(context, element, index, 0, self.values);
                let generated = element_context
                    .load_entries(&foreach.context, self.provider)
                    .map_err(GenerateError::from)
                    .and_then(|()| {
                        let holds = match &foreach.preconditions {
                            Some(preconditions) => {
                                Conditions::from(preconditions)
                                    .evaluate(|value| element_context.substitute(value))?
                                    .holds
                            }
                            None => true,
                        };
                        if holds {
                            self.resources_of(&foreach.pattern, &element_context)
                        } else {
                            Ok(Vec::new())
                        }
                    });
                match generated {
                    Ok(generated) => resources.extend(generated),
                    Err(error) => failures.push(format!(
                        "failed to process {index} element of foreach {position}: {error}"
                    )),
                }
            }
        }
        let failure = (!failures.is_empty()).then(|| GenerateError::Foreach(failures.join("; ")));
        (resources, failure)
    }

    /// The resources of one pattern, its variables substituted from `context`.
    fn resources_of(
        &self,
        pattern: &GeneratePattern,
        context: &RuleContext,
    ) -> Result<Vec<Value>, GenerateError> {
        let substituted = context.substitute(&serde_json::to_value(pattern)?)?;
        let pattern: GeneratePattern = serde_json::from_value(substituted)?;
        self.check_source_namespace(&pattern)?;
        let target = &pattern.resource;
        let clone_name = pattern
            .clone
            .as_ref()
            .and_then(|clone| clone.name.as_deref())
            .filter(|name| !name.is_empty());
        let clone_kinds = pattern
            .clone_list
            .as_ref()
            .filter(|list| !list.kinds.is_empty());
        let mut generated = Vec::new();
        if let Some(name) = clone_name {
            let namespace = pattern
                .clone
                .as_ref()
                .and_then(|clone| clone.namespace.as_deref())
                .unwrap_or_default();
            let source = Identity {
                api_version: field(&target.api_version),
                kind: field(&target.kind),
                namespace,
                name,
            };
            if let Some(copy) = self.clone_source(&source, target)? {
                generated.push(self.finish(copy, target));
            }
        } else if let Some(list) = clone_kinds {
            let namespace = list.namespace.as_deref().unwrap_or_default();
            for kind in &list.kinds {
                let (api_version, kind) = split_kind(kind);
                for source in self.list_sources(api_version, kind, namespace, list)? {
                    let source_identity = Identity::of(&source);
                    let clone_target = ResourceSpec {
                        api_version: Some(source_identity.api_version.to_owned()),
                        kind: Some(source_identity.kind.to_owned()),
                        namespace: target.namespace.clone(),
                        name: Some(source_identity.name.to_owned()),
                        uid: None,
                    };
                    if source_identity.namespace == field(&target.namespace) {
                        continue;
                    }
                    let copy = strip_source(source.clone(), field(&target.namespace));
                    generated.push(self.finish(copy, &clone_target));
                }
            }
        } else {
            // Without data the resource is generated with only its identity, as upstream's
            // CLI tests expect.
            generated.push(self.finish(pattern.data.unwrap_or_default(), target));
        }
        Ok(generated)
    }

    /// A namespaced Policy may only clone from its own namespace.
    fn check_source_namespace(&self, pattern: &GeneratePattern) -> Result<(), GenerateError> {
        let Some(policy_namespace) = &self.policy.namespace else {
            return Ok(());
        };
        let (path, source_namespace) = if let Some(clone) = pattern
            .clone
            .as_ref()
            .filter(|clone| clone.name.as_deref().is_some_and(|name| !name.is_empty()))
        {
            ("generate.clone", clone.namespace.as_deref())
        } else if let Some(list) = pattern
            .clone_list
            .as_ref()
            .filter(|list| !list.kinds.is_empty())
        {
            ("generate.cloneList", list.namespace.as_deref())
        } else {
            return Ok(());
        };
        let source_namespace = source_namespace.unwrap_or_default();
        if source_namespace == policy_namespace {
            return Ok(());
        }
        Err(GenerateError::ForeignSource {
            path,
            source_namespace: source_namespace.to_owned(),
            policy: policy_namespace.clone(),
        })
    }

    /// The copy of the `clone` source for `target`, `None` when the source is the target.
    fn clone_source(
        &self,
        source: &Identity<'_>,
        target: &ResourceSpec,
    ) -> Result<Option<Value>, GenerateError> {
        let target_namespace = field(&target.namespace);
        if source.namespace == target_namespace && source.name == field(&target.name) {
            return Ok(None);
        }
        match self.provider.get_resource(
            source.api_version,
            source.kind,
            source.namespace,
            source.name,
        )? {
            Lookup::Found(found) => Ok(Some(strip_source(found, target_namespace))),
            Lookup::Unavailable => Err(GenerateError::SourceNotFound(
                [
                    source.api_version,
                    source.kind,
                    source.namespace,
                    source.name,
                ]
                .join("/"),
            )),
        }
    }

    /// The `cloneList` sources of one kind that the selector selects, by name.
    fn list_sources(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        list: &kyverno_api::kyverno::v1::generate::CloneList,
    ) -> Result<Vec<Value>, GenerateError> {
        let Lookup::Found(Value::Array(candidates)) =
            self.provider.list_resources(api_version, kind, namespace)?
        else {
            return Ok(Vec::new());
        };
        let mut sources = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let selected = match &list.selector {
                Some(selector) => selector_matches(selector, &labels_of(&candidate))?,
                None => true,
            };
            if selected {
                sources.push(candidate);
            }
        }
        sources.sort_by(|a, b| Identity::of(a).name.cmp(Identity::of(b).name));
        Ok(sources)
    }

    /// `content` named after `target` and labelled as a resource generated by this rule.
    fn finish(&self, content: Value, target: &ResourceSpec) -> Value {
        let mut resource = match content {
            Value::Object(object) => object,
            _ => Map::new(),
        };
        if resource
            .get("kind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            resource.insert("kind".to_owned(), Value::from(field(&target.kind)));
        }
        resource.insert(
            "apiVersion".to_owned(),
            Value::from(field(&target.api_version)),
        );
        let trigger = Identity::of(self.trigger);
        let trigger_gvk = GroupVersionKind::from_api_version(trigger.api_version, trigger.kind);
        let generated_labels = [
            (MANAGED_BY_LABEL, "kyverno"),
            ("generate.kyverno.io/policy-name", self.policy.name.as_str()),
            (
                "generate.kyverno.io/policy-namespace",
                self.policy.namespace.as_deref().unwrap_or_default(),
            ),
            ("generate.kyverno.io/rule-name", self.rule),
            ("generate.kyverno.io/trigger-group", &trigger_gvk.group),
            ("generate.kyverno.io/trigger-version", &trigger_gvk.version),
            ("generate.kyverno.io/trigger-kind", trigger.kind),
            ("generate.kyverno.io/trigger-namespace", trigger.namespace),
            (
                "generate.kyverno.io/trigger-uid",
                text(self.trigger, "/metadata/uid"),
            ),
        ];
        update_object(&mut resource, "metadata", |metadata| {
            set_or_remove(metadata, "name", field(&target.name));
            set_or_remove(metadata, "namespace", field(&target.namespace));
            update_object(metadata, "labels", |labels| {
                for (key, value) in generated_labels {
                    labels.insert(key.to_owned(), Value::from(value));
                }
            });
        });
        Value::Object(resource)
    }
}

/// The identity of a resource.
struct Identity<'a> {
    api_version: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
}

impl<'a> Identity<'a> {
    fn of(resource: &'a Value) -> Self {
        Self {
            api_version: text(resource, "/apiVersion"),
            kind: text(resource, "/kind"),
            namespace: text(resource, "/metadata/namespace"),
            name: text(resource, "/metadata/name"),
        }
    }
}

/// A copy of a clone source without the metadata the API server sets (and without its owner
/// references when it lands in another namespace), labelled with where it comes from.
fn strip_source(mut source: Value, target_namespace: &str) -> Value {
    let origin = Identity::of(&source);
    let gvk = GroupVersionKind::from_api_version(origin.api_version, origin.kind);
    let source_labels = [
        ("generate.kyverno.io/source-group", gvk.group.clone()),
        ("generate.kyverno.io/source-version", gvk.version.clone()),
        ("generate.kyverno.io/source-kind", origin.kind.to_owned()),
        (
            "generate.kyverno.io/source-namespace",
            origin.namespace.to_owned(),
        ),
        ("generate.kyverno.io/source-name", origin.name.to_owned()),
    ];
    let moved = origin.namespace != target_namespace;
    if let Some(object) = source.as_object_mut() {
        update_object(object, "metadata", |metadata| {
            for key in [
                "uid",
                "selfLink",
                "creationTimestamp",
                "managedFields",
                "resourceVersion",
            ] {
                metadata.remove(key);
            }
            if moved {
                metadata.remove("ownerReferences");
            }
            update_object(metadata, "labels", |labels| {
                for (key, value) in source_labels {
                    labels.insert(key.to_owned(), Value::String(value));
                }
            });
        });
    }
    source
}

/// Applies `update` to the object under `key` of `object`, created (or replacing a non-object)
/// when missing.
fn update_object(
    object: &mut Map<String, Value>,
    key: &str,
    update: impl FnOnce(&mut Map<String, Value>),
) {
    let mut inner = match object.remove(key) {
        Some(Value::Object(inner)) => inner,
        _ => Map::new(),
    };
    update(&mut inner);
    object.insert(key.to_owned(), Value::Object(inner));
}

/// Sets `key` to `value`, or removes it when `value` is empty (as unstructured setters do).
fn set_or_remove(object: &mut Map<String, Value>, key: &str, value: &str) {
    if value.is_empty() {
        object.remove(key);
    } else {
        object.insert(key.to_owned(), Value::from(value));
    }
}

/// The labels of a resource.
pub(super) fn labels_of(resource: &Value) -> BTreeMap<String, String> {
    resource
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// A `cloneList` kind (`Kind`, `version/Kind` or `group/version/Kind`) as API version and kind.
fn split_kind(kind: &str) -> (&str, &str) {
    match kind.rsplit_once('/') {
        Some((api_version, kind)) => (api_version, kind),
        None => ("", kind),
    }
}

/// An optional field of a resource spec, `""` when absent.
fn field(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or_default()
}

/// A string field of a resource, `""` when absent.
fn text<'a>(resource: &'a Value, pointer: &str) -> &'a str {
    resource
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
