//! GeneratingPolicy and NamespacedGeneratingPolicy (`policies.kyverno.io`): the resources a
//! trigger request asks to create, as upstream's `gpol` engine computes them.
//!
//! For one trigger request, in upstream's order:
//! 1. `matchConstraints` select the request (no constraints select nothing);
//! 2. a CEL PolicyException whose `matchConditions` hold exempts it (result `skip`), unless it
//!    only grants `images` or `allowedValues`, which the expressions then read as `exceptions`;
//! 3. `matchConditions` must hold (they see `object`, `oldObject`, `request`,
//!    `namespaceObject`, not `variables`);
//! 4. each `generate` entry runs in order: an expression calls `generator.Apply(namespace,
//!    [objects])` (Kyverno's `generator` library, with `resource`, `http`, `globalContext` and
//!    `image`), a template renders YAML documents (see [`Template`]) generated into their own
//!    namespaces;
//! 5. `auditAnnotations` are evaluated.
//!
//! Any evaluation error makes the result an `error`. A generated resource is labelled as
//! upstream's controller labels downstream resources (`generate.kyverno.io/policy-name`,
//! `policy-namespace` (empty for a GeneratingPolicy), `trigger-*`, `source-uid` for copies of
//! existing objects), loses the metadata the API
//! server sets, and loses its namespace when its kind is cluster-scoped. A namespaced policy
//! may only generate into its own namespace and never cluster-scoped resources.
mod template;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::MatchResources;
use kyverno_api::policies::exception::PolicyException;
use kyverno_api::policies::generating::{GeneratingEvaluationConfiguration, Interpolation, Spec};
use serde_json::{Map, Value};

pub use template::{Template, TemplateError};

use super::activation;
use super::common::{
    self, CelPolicyLoadError, RequestInput, SpecCompiler, evaluate_audit_annotations,
    policy_evaluator, text,
};
use super::exceptions::{CompiledException, EXCEPTIONS, MatchedExceptions};
use super::resources::ResourceTable;
use super::{
    CompiledAuditAnnotation, CompiledMatchConditions, CompiledVariables, Evaluator, Expression,
    MatchOutcome,
};
use crate::cel::libs::GeneratedResources;
use crate::engine::{ContextProvider, GeneratedResource};
use crate::request::{GroupVersionKind, ResourceRequest};
use crate::response::{RuleResponse, RuleStatus, RuleType};

/// The cluster-wide and the namespaced kind.
const KINDS: [&str; 2] = ["GeneratingPolicy", "NamespacedGeneratingPolicy"];

/// A GeneratingPolicy (or NamespacedGeneratingPolicy) compiled once, evaluated per trigger.
#[derive(Debug)]
pub struct CompiledGeneratingPolicy {
    name: String,
    namespace: Option<String>,
    match_constraints: Option<MatchResources>,
    match_conditions: CompiledMatchConditions,
    variables: CompiledVariables,
    generations: Vec<Generation>,
    audit_annotations: Vec<CompiledAuditAnnotation>,
    exceptions: Vec<CompiledException>,
    settings: GenerationSettings,
}

/// A compiled `generate` entry.
#[derive(Debug)]
enum Generation {
    /// A CEL expression, run for its `generator.Apply` calls.
    Expression(Expression),
    /// A YAML template.
    Template(Template),
}

/// The policy's `evaluation` switches that concern the generated resources.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenerationSettings {
    /// Whether admission requests trigger the policy (`evaluation.admission`).
    pub admission: bool,
    /// Whether triggers that existed before the policy are processed
    /// (`evaluation.generateExisting`).
    pub generate_existing: bool,
    /// Whether generated resources are kept in sync (`evaluation.synchronize`).
    pub synchronize: bool,
    /// Whether generated resources outlive the policy
    /// (`evaluation.orphanDownstreamOnPolicyDelete`).
    pub orphan_downstream_on_policy_delete: bool,
    /// Whether requests sent by Kyverno's background controller are left alone
    /// (`evaluation.skipBackgroundRequests`, true when unset).
    pub skip_background_requests: bool,
}

/// What a generating policy does for one trigger it applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratingResponse {
    /// The result, named after the policy (the kind has no rules): `pass` when the policy ran,
    /// `skip` (or the `pass` an exception asks for) when an exception exempts the trigger
    /// (its message names the exceptions), `error` when something failed.
    pub rule: RuleResponse,
    /// The resources to create or update, in the order they were asked for.
    pub resources: Vec<GeneratedResource>,
    /// The audit annotations of the evaluation.
    pub audit_annotations: BTreeMap<String, String>,
}

impl CompiledGeneratingPolicy {
    /// Compiles a policy's expressions and templates, and the `matchConditions` of the
    /// `exceptions` that name it. `namespace` is set for a NamespacedGeneratingPolicy.
    pub fn compile(
        name: &str,
        namespace: Option<&str>,
        spec: &Spec,
        exceptions: &[Arc<PolicyException>],
    ) -> Result<Self, CelPolicyLoadError> {
        let compiler = SpecCompiler::new(name, namespace, KINDS);
        let match_conditions = compiler.match_conditions(&spec.match_conditions)?;
        let variables = compiler.variables(&spec.variables)?;
        let mut generations = Vec::with_capacity(spec.generate.len());
        for (index, generation) in spec.generate.iter().enumerate() {
            let path = format!("spec.generate[{index}]");
            generations.push(match (&generation.expression, &generation.template) {
                (Some(expression), None) => Generation::Expression(
                    Expression::compile(expression, &variables, &format!("{path}.expression"))
                        .map_err(|error| compiler.error(error))?,
                ),
                (None, Some(template)) => {
                    let interpolate = template.interpolate == Some(Interpolation::Cel);
                    Generation::Template(
                        Template::compile(&template.value, interpolate, &variables).map_err(
                            |error| {
                                compiler
                                    .invalid(format!("{path}.template.value"), error.to_string())
                            },
                        )?,
                    )
                }
                (Some(_), Some(_)) => {
                    return Err(compiler.invalid(
                        path,
                        "only one of expression or template may be set".to_owned(),
                    ));
                }
                (None, None) => {
                    return Err(compiler
                        .invalid(path, "one of expression or template must be set".to_owned()));
                }
            });
        }
        let audit_annotations = compiler.audit_annotations(&spec.audit_annotations, &variables)?;
        let exceptions = compiler.exceptions(exceptions)?;
        let evaluation = spec.evaluation.as_ref();
        Ok(Self {
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            match_constraints: spec.match_constraints.clone(),
            match_conditions,
            variables,
            generations,
            audit_annotations,
            exceptions,
            settings: GenerationSettings {
                admission: GeneratingEvaluationConfiguration::admission_enabled(evaluation),
                generate_existing: GeneratingEvaluationConfiguration::generate_existing_enabled(
                    evaluation,
                ),
                synchronize: GeneratingEvaluationConfiguration::synchronize_enabled(evaluation),
                orphan_downstream_on_policy_delete:
                    GeneratingEvaluationConfiguration::orphan_downstream_enabled(evaluation),
                skip_background_requests: evaluation
                    .and_then(|evaluation| evaluation.skip_background_requests)
                    .unwrap_or(true),
            },
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy's `evaluation` switches.
    pub fn settings(&self) -> GenerationSettings {
        self.settings
    }

    /// The policy's `matchConstraints` (triggers of `generateExisting` are listed by their
    /// resource rules).
    pub fn match_constraints(&self) -> Option<&MatchResources> {
        self.match_constraints.as_ref()
    }

    /// Whether the policy's `matchConstraints` select the trigger request `input` (its
    /// `matchConditions` are left to [`Self::evaluate`]).
    pub fn selects(&self, input: &RequestInput<'_>) -> bool {
        matches!(
            input.selected_by(self.match_constraints.as_ref()),
            Some(Ok(()))
        )
    }

    /// Evaluates the policy for the trigger request `input`; `None` when the policy does not
    /// apply to it (`matchConstraints` or `matchConditions`). `resources` are the served kinds,
    /// to tell cluster-scoped generated resources apart; `provider` answers the `resource`,
    /// `http`, `globalContext` and `image` libraries.
    pub fn evaluate(
        &self,
        input: &RequestInput<'_>,
        resources: &ResourceTable,
        provider: &Arc<dyn ContextProvider>,
    ) -> Option<GeneratingResponse> {
        if let Err(error) = input.selected_by(self.match_constraints.as_ref())? {
            return Some(self.error(error));
        }
        let no_variables = CompiledVariables::default();
        let mut plain = Evaluator::new(input.activation(), &no_variables, None);
        let exempted = match MatchedExceptions::evaluate(&self.exceptions, &mut plain, false) {
            Ok(exempted) => exempted,
            Err(error) => return Some(self.evaluation_error(error)),
        };
        if exempted.exempts() {
            let mut rule = exempted.response(RuleType::Generation);
            rule.name.clone_from(&self.name);
            return Some(GeneratingResponse {
                rule,
                resources: Vec::new(),
                audit_annotations: BTreeMap::new(),
            });
        }
        match self.match_conditions.evaluate(&mut plain) {
            MatchOutcome::Matched => {}
            MatchOutcome::NotMatched { .. } => return None,
            MatchOutcome::Error(error) => return Some(self.evaluation_error(error)),
        }
        let generated = GeneratedResources::new();
        let libraries = common::libraries(provider, self.namespace.as_deref())
            .generating_into(generated.clone());
        let mut evaluator = policy_evaluator(input.activation(), &self.variables, Some(&libraries));
        evaluator.bind(EXCEPTIONS, exempted.variable());
        Some(
            match self.run(&mut evaluator, &generated, input.request, resources) {
                Ok((resources, audit_annotations)) => GeneratingResponse {
                    rule: self.rule(RuleStatus::Pass, "policy evaluated successfully".to_owned()),
                    resources,
                    audit_annotations,
                },
                Err(error) => self.evaluation_error(error),
            },
        )
    }

    /// Runs the generations and audit annotations: the finished resources and annotations.
    fn run(
        &self,
        evaluator: &mut Evaluator<'_>,
        generated: &GeneratedResources,
        trigger: &ResourceRequest,
        table: &ResourceTable,
    ) -> Result<(Vec<GeneratedResource>, BTreeMap<String, String>), String> {
        let mut requested = Vec::new();
        for generation in &self.generations {
            match generation {
                Generation::Expression(expression) => {
                    evaluator
                        .evaluate(expression)
                        .map_err(|error| error.to_string())?;
                }
                Generation::Template(template) => {
                    let documents = template.render(evaluator).map_err(|error| {
                        format!("failed to render generation template: {error}")
                    })?;
                    for document in documents {
                        requested.push(self.template_target(document)?);
                    }
                }
            }
            // Expressions add to `generated` as they run: keep the order of the entries.
            requested.append(&mut generated.take());
        }
        let audit_annotations = evaluate_audit_annotations(&self.audit_annotations, evaluator)?;
        let labels = DownstreamLabels::new(&self.name, self.namespace.as_deref(), trigger);
        let resources = requested
            .into_iter()
            .map(|resource| {
                Ok(GeneratedResource {
                    rule: self.name.clone(),
                    resource: self.finish(resource, table, &labels)?,
                    synchronize: self.settings.synchronize,
                    orphan_downstream_on_policy_delete: self
                        .settings
                        .orphan_downstream_on_policy_delete,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok((resources, audit_annotations))
    }

    /// A rendered template document in the namespace it names; in a namespaced policy, the
    /// policy's namespace, which it may not leave.
    fn template_target(&self, mut document: Value) -> Result<Value, String> {
        let named = document
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let namespace = match &self.namespace {
            Some(own) if named.is_empty() => own.clone(),
            Some(own) if named != *own => {
                return Err(format!(
                    "failed to render generation template: cross-namespace generation denied: \
                     a policy in namespace {own:?} cannot generate resources into namespace \
                     {named:?}"
                ));
            }
            _ => named,
        };
        set_namespace(&mut document, &namespace);
        Ok(document)
    }

    /// A requested resource as it is to be created: cluster-scoped kinds without namespace,
    /// without the metadata the API server sets, labelled as generated by this policy.
    fn finish(
        &self,
        mut resource: Value,
        table: &ResourceTable,
        labels: &DownstreamLabels,
    ) -> Result<Value, String> {
        let api_version = text(&resource, "/apiVersion").to_owned();
        let kind = text(&resource, "/kind").to_owned();
        let cluster_scoped = !api_version.is_empty()
            && !kind.is_empty()
            && table
                .mapping(&GroupVersionKind::from_api_version(&api_version, &kind))
                .is_some_and(|mapping| !mapping.namespaced);
        if cluster_scoped {
            if let Some(policy_namespace) = &self.namespace {
                return Err(format!(
                    "failed to generate resources: cross-scope generation denied: a policy \
                     scoped to namespace {policy_namespace:?} cannot generate cluster-scoped \
                     resource {api_version}/{kind}"
                ));
            }
            set_namespace(&mut resource, "");
        }
        let Some(metadata) = resource
            .as_object_mut()
            .and_then(|fields| fields.get_mut("metadata"))
            .and_then(Value::as_object_mut)
        else {
            return Ok(resource);
        };
        let source_uid = metadata
            .get("resourceVersion")
            .and_then(Value::as_str)
            .filter(|version| !version.is_empty())
            .map(|_| {
                metadata
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            });
        for server_set in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            metadata.remove(server_set);
        }
        let resource_labels = metadata
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if !resource_labels.is_object() {
            *resource_labels = Value::Object(Map::new());
        }
        if let Some(resource_labels) = resource_labels.as_object_mut() {
            labels.apply(resource_labels, source_uid);
        }
        Ok(resource)
    }

    fn rule(&self, status: RuleStatus, message: String) -> RuleResponse {
        RuleResponse {
            name: self.name.clone(),
            rule_type: RuleType::Generation,
            status,
            message,
        }
    }

    fn error(&self, message: String) -> GeneratingResponse {
        GeneratingResponse {
            rule: self.rule(RuleStatus::Error, message),
            resources: Vec::new(),
            audit_annotations: BTreeMap::new(),
        }
    }

    fn evaluation_error(&self, error: String) -> GeneratingResponse {
        self.error(format!("failed to evaluate policy: {error}"))
    }
}

/// The labels upstream's controller puts on downstream resources of a generating policy: the
/// policy's namespace (empty for a GeneratingPolicy) tells apart the downstream of a
/// GeneratingPolicy and of a NamespacedGeneratingPolicy of the same name.
struct DownstreamLabels {
    fixed: [(&'static str, String); 9],
}

impl DownstreamLabels {
    fn new(policy: &str, policy_namespace: Option<&str>, trigger: &ResourceRequest) -> Self {
        let gvk = trigger.gvk();
        let (object, _) = activation::objects(trigger);
        let uid = object.map_or("", |object| text(object, "/metadata/uid"));
        Self {
            fixed: [
                ("app.kubernetes.io/managed-by", "kyverno".to_owned()),
                ("generate.kyverno.io/policy-name", policy.to_owned()),
                (
                    "generate.kyverno.io/policy-namespace",
                    policy_namespace.unwrap_or_default().to_owned(),
                ),
                (
                    "generate.kyverno.io/trigger-name",
                    trigger.name().to_owned(),
                ),
                (
                    "generate.kyverno.io/trigger-namespace",
                    activation::request_namespace(trigger).to_owned(),
                ),
                ("generate.kyverno.io/trigger-uid", uid.to_owned()),
                ("generate.kyverno.io/trigger-kind", gvk.kind.clone()),
                ("generate.kyverno.io/trigger-group", gvk.group.clone()),
                ("generate.kyverno.io/trigger-version", gvk.version.clone()),
            ],
        }
    }

    /// Adds the labels to `labels`, with `generate.kyverno.io/source-uid` for a copy of an
    /// existing object.
    fn apply(&self, labels: &mut Map<String, Value>, source_uid: Option<String>) {
        for (key, value) in &self.fixed {
            labels.insert((*key).to_owned(), Value::String(value.clone()));
        }
        if let Some(uid) = source_uid {
            labels.insert(
                "generate.kyverno.io/source-uid".to_owned(),
                Value::String(uid),
            );
        }
    }
}

/// Sets `metadata.namespace`, or removes it when `namespace` is empty.
fn set_namespace(resource: &mut Value, namespace: &str) {
    let Some(fields) = resource.as_object_mut() else {
        return;
    };
    let metadata = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(metadata) = metadata.as_object_mut() {
        if namespace.is_empty() {
            metadata.remove("namespace");
        } else {
            metadata.insert("namespace".to_owned(), Value::from(namespace));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
