//! ImageValidatingPolicy and NamespacedImageValidatingPolicy (`policies.kyverno.io`): CEL
//! validations over the images of a resource, with signature and attestation checks, as
//! upstream's `ivpol` engine evaluates them, as far as that can be done offline.
//!
//! For one admission request, in upstream's order:
//! 1. `matchConstraints` select the request (no constraints select nothing);
//! 2. `matchConditions` must hold; with `failurePolicy: Ignore` a failing condition means the
//!    policy does not apply, otherwise it is an error;
//! 3. a CEL PolicyException naming the policy that holds exempts the request (`skip`);
//! 4. the images are extracted: `images.containers`, `images.initContainers` and
//!    `images.ephemeralContainers` of Pods, of the pod template of Jobs, Deployments,
//!    StatefulSets, DaemonSets and ReplicaSets and of the job template of CronJobs, plus the
//!    policy's own `images` extractors;
//! 5. the images that match `matchImageReferences` (every image when there are none; a glob
//!    where `*` matches any run of characters, or a CEL expression over `ref`) are fetched from
//!    their registries before any validation runs;
//! 6. the validations run in order: the first false one fails the policy with its message,
//!    the audit annotations are then evaluated.
//!
//! Offline, step 5 can only be answered by the [`ContextProvider`] (`image_data`); when it has
//! no data for a matched image the evaluation stops with
//! [`ImageValidation::NeedsRegistry`]: the result depends on the registry and is not
//! reported. Signature and attestation verification (`verifyImageSignatures`,
//! `verifyAttestationSignatures`, `extractPayload`, `getImageData`) always needs the registry:
//! a validation calling them ends the same way. Everything before (matching, conditions,
//! exceptions, validations that do not need image data) is evaluated as upstream does.
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::MatchResources;
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, ExecutionError, FunctionContext, Value as CelValue};
use kyverno_api::kyverno::v1::policy::FailurePolicy;
use kyverno_api::policies::common::ValidationAction;
use kyverno_api::policies::exception::PolicyException;
use kyverno_api::policies::image_validating::Spec;
use serde_json::Value;

use super::activation::Activation;
use super::common::{
    self, CelPolicyLoadError, RequestInput, SpecCompiler, compile_validations,
    evaluate_audit_annotations, policy_evaluator,
};
use super::exceptions::{CompiledException, EXCEPTIONS, MatchedExceptions};
use super::resources::GroupVersionResource;
use super::{
    CompiledAuditAnnotation, CompiledMatchConditions, CompiledValidation, CompiledVariables,
    Evaluator, Expression, MatchOutcome, ValidationOutcome,
};
use crate::cel;
use crate::engine::{ContextProvider, Lookup};
use crate::response::{RuleResponse, RuleStatus, RuleType};
use crate::wildcard;

/// The functions that verify signatures and attestations, which need the images' registries.
const REGISTRY_FUNCTIONS: [&str; 4] = [
    "verifyImageSignatures",
    "verifyAttestationSignatures",
    "extractPayload",
    "getImageData",
];

/// What the registry functions answer offline; a validation failing with it needs the registry.
const NEEDS_REGISTRY: &str = "image verification needs access to the image registry";

/// The cluster-wide and the namespaced kind.
const KINDS: [&str; 2] = ["ImageValidatingPolicy", "NamespacedImageValidatingPolicy"];

/// An ImageValidatingPolicy (or NamespacedImageValidatingPolicy) compiled once, evaluated per
/// request.
#[derive(Debug)]
pub struct CompiledImageValidatingPolicy {
    name: String,
    namespace: Option<String>,
    match_constraints: Option<MatchResources>,
    ignore_failures: bool,
    validation_actions: Vec<ValidationAction>,
    match_conditions: CompiledMatchConditions,
    variables: CompiledVariables,
    image_references: Vec<ImageReference>,
    extractors: Vec<(String, Expression)>,
    attestors: CelValue,
    attestations: CelValue,
    validations: Vec<CompiledValidation>,
    audit_annotations: Vec<CompiledAuditAnnotation>,
    exceptions: Vec<CompiledException>,
}

/// A compiled `matchImageReferences` entry.
#[derive(Debug)]
enum ImageReference {
    Glob(String),
    Expression(Expression),
}

/// What an image validating policy answers for a request it applies to.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageValidation {
    /// The policy was evaluated: `pass`, `fail` (the first false validation's message), `skip`
    /// (a PolicyException) or `error`; the rule is named after the policy.
    Evaluated {
        /// The result.
        rule: RuleResponse,
        /// The audit annotations of a failed validation.
        audit_annotations: BTreeMap<String, String>,
    },
    /// The result depends on data only the images' registries have.
    NeedsRegistry {
        /// Why: the images without data, or the verification the validations asked for.
        reason: String,
    },
}

impl CompiledImageValidatingPolicy {
    /// Compiles a policy's expressions and the `matchConditions` of the `exceptions` that name
    /// it. `namespace` is set for a NamespacedImageValidatingPolicy.
    pub fn compile(
        name: &str,
        namespace: Option<&str>,
        spec: &Spec,
        exceptions: &[Arc<PolicyException>],
    ) -> Result<Self, CelPolicyLoadError> {
        let compiler = SpecCompiler::new(name, namespace, KINDS);
        let match_conditions = compiler.match_conditions(&spec.match_conditions)?;
        let variables = compiler.variables(&spec.variables)?;
        let no_variables = CompiledVariables::default();
        let mut image_references = Vec::with_capacity(spec.match_image_references.len());
        for (index, reference) in spec.match_image_references.iter().enumerate() {
            let path = format!("spec.matchImageReferences[{index}]");
            image_references.push(match (&reference.glob, &reference.expression) {
                (Some(glob), None) => ImageReference::Glob(glob.clone()),
                (None, Some(expression)) => ImageReference::Expression(
                    Expression::compile(expression, &no_variables, &format!("{path}.expression"))
                        .map_err(|error| compiler.error(error))?,
                ),
                _ => {
                    return Err(compiler.invalid(
                        path,
                        "exactly one of glob or expression must be set".to_owned(),
                    ));
                }
            });
        }
        let extractors = spec
            .images
            .iter()
            .enumerate()
            .map(|(index, extractor)| {
                Expression::compile(
                    &extractor.expression,
                    &variables,
                    &format!("spec.images[{index}].expression"),
                )
                .map(|expression| (extractor.name.clone(), expression))
            })
            .collect::<Result<_, _>>()
            .map_err(|error| compiler.error(error))?;
        let validations = compile_validations(&spec.validations, &variables, "spec.validations")
            .map_err(|error| compiler.error(error))?;
        let audit_annotations = compiler.audit_annotations(&spec.audit_annotations, &variables)?;
        let exceptions = compiler.exceptions(exceptions)?;
        let attestors = named_map(spec.attestors.iter().map(|attestor| {
            let value = serde_json::to_value(attestor).unwrap_or_default();
            (attestor.name.as_str(), cel::from_json(&value))
        }));
        let attestations = named_map(spec.attestations.iter().map(|attestation| {
            let name = attestation.name.as_str();
            (name, CelValue::String(Arc::new(name.to_owned())))
        }));
        Ok(Self {
            name: name.to_owned(),
            namespace: namespace.map(str::to_owned),
            match_constraints: spec.match_constraints.clone(),
            ignore_failures: spec.failure_policy == Some(FailurePolicy::Ignore),
            validation_actions: spec.validation_actions.clone(),
            match_conditions,
            variables,
            image_references,
            extractors,
            attestors,
            attestations,
            validations,
            audit_annotations,
            exceptions,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What a failed validation does (`Deny`, `Audit`, `Warn`).
    pub fn validation_actions(&self) -> &[ValidationAction] {
        &self.validation_actions
    }

    /// Evaluates the policy for `input`; `None` when it does not apply (`matchConstraints` or
    /// `matchConditions`). `provider` answers the libraries and the images' data.
    pub fn evaluate(
        &self,
        input: &RequestInput<'_>,
        provider: &Arc<dyn ContextProvider>,
    ) -> Option<ImageValidation> {
        if let Err(error) = input.selected_by(self.match_constraints.as_ref())? {
            return Some(self.error(error));
        }
        let no_variables = CompiledVariables::default();
        let mut plain = Evaluator::new(input.activation(), &no_variables, None);
        match self.match_conditions.evaluate(&mut plain) {
            MatchOutcome::Matched => {}
            MatchOutcome::NotMatched { .. } => return None,
            MatchOutcome::Error(_) if self.ignore_failures => return None,
            MatchOutcome::Error(error) => return Some(self.evaluation_error(error)),
        }
        let exempted = match MatchedExceptions::evaluate(&self.exceptions, &mut plain, false) {
            Ok(exempted) => exempted,
            Err(error) => return Some(self.evaluation_error(error)),
        };
        if exempted.exempts() {
            return Some(ImageValidation::Evaluated {
                rule: exempted.response(RuleType::ImageVerify),
                audit_annotations: BTreeMap::new(),
            });
        }
        let libraries = common::libraries(provider, self.namespace.as_deref());
        let mut evaluator = policy_evaluator(input.activation(), &self.variables, Some(&libraries));
        evaluator.bind(EXCEPTIONS, exempted.variable());
        Some(
            self.validate(&mut evaluator, input, provider.as_ref())
                .unwrap_or_else(|error| self.evaluation_error(error)),
        )
    }

    /// Steps 4 to 6: the images, their data and the validations.
    fn validate(
        &self,
        evaluator: &mut Evaluator<'_>,
        input: &RequestInput<'_>,
        provider: &dyn ContextProvider,
    ) -> Result<ImageValidation, String> {
        let images = self.images(evaluator, input)?;
        let mut missing = Vec::new();
        for image in images.values().flatten() {
            if !self.selects(image)? {
                continue;
            }
            match provider.image_data(image) {
                Ok(Lookup::Found(_)) => {}
                Ok(Lookup::Unavailable) if !missing.contains(image) => missing.push(image.clone()),
                Ok(Lookup::Unavailable) => {}
                Err(error) => {
                    return Err(format!("failed to fetch image data for {image}: {error}"));
                }
            }
        }
        if !missing.is_empty() {
            return Ok(ImageValidation::NeedsRegistry {
                reason: format!(
                    "no image data without registry access for {}",
                    missing.join(", ")
                ),
            });
        }
        evaluator.bind("images", images_value(&images));
        evaluator.bind("attestors", self.attestors.clone());
        evaluator.bind("attestations", self.attestations.clone());
        for validation in &self.validations {
            match validation.evaluate(evaluator) {
                ValidationOutcome::Pass => {}
                ValidationOutcome::Fail { message, .. } => {
                    let audit_annotations =
                        evaluate_audit_annotations(&self.audit_annotations, evaluator)?;
                    return Ok(ImageValidation::Evaluated {
                        rule: self.rule(RuleStatus::Fail, message),
                        audit_annotations,
                    });
                }
                ValidationOutcome::Error(error) if error.contains(NEEDS_REGISTRY) => {
                    return Ok(ImageValidation::NeedsRegistry { reason: error });
                }
                ValidationOutcome::Error(error) => return Err(error),
            }
        }
        Ok(ImageValidation::Evaluated {
            rule: self.rule(RuleStatus::Pass, "success".to_owned()),
            audit_annotations: BTreeMap::new(),
        })
    }

    /// The images of the request by extractor name: the built-in extractors of the resource's
    /// kind, then the policy's own.
    fn images(
        &self,
        evaluator: &mut Evaluator<'_>,
        input: &RequestInput<'_>,
    ) -> Result<BTreeMap<String, Vec<String>>, String> {
        let mut images = BTreeMap::new();
        if let Some(pod_spec) = pod_spec_path(input.resource) {
            let (object, old_object) = super::activation::objects(input.request);
            let document = object.or(old_object).map(|document| document.as_ref());
            for field in ["containers", "initContainers", "ephemeralContainers"] {
                images.insert(
                    field.to_owned(),
                    container_images(document, pod_spec, field)?,
                );
            }
        }
        for (name, extractor) in &self.extractors {
            let value = evaluator
                .evaluate_json(extractor)
                .map_err(|error| error.to_string())?;
            let list = serde_json::from_value::<Vec<String>>(value).map_err(|error| {
                format!("image extractor {name:?} must give a list of strings: {error}")
            })?;
            images.insert(name.clone(), list);
        }
        Ok(images)
    }

    /// Whether `image` is to be verified (`matchImageReferences`; all images without them).
    fn selects(&self, image: &str) -> Result<bool, String> {
        if self.image_references.is_empty() {
            return Ok(true);
        }
        let activation =
            Activation::from_values([("ref", CelValue::String(Arc::new(image.to_owned())))]);
        let no_variables = CompiledVariables::default();
        for reference in &self.image_references {
            let selected = match reference {
                ImageReference::Glob(glob) => wildcard::matches(glob, image),
                ImageReference::Expression(expression) => {
                    Evaluator::new(&activation, &no_variables, None)
                        .evaluate_bool(expression)
                        .map_err(|error| error.to_string())?
                }
            };
            if selected {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn rule(&self, status: RuleStatus, message: String) -> RuleResponse {
        RuleResponse {
            name: self.name.clone(),
            rule_type: RuleType::ImageVerify,
            status,
            message,
        }
    }

    fn error(&self, message: String) -> ImageValidation {
        ImageValidation::Evaluated {
            rule: self.rule(RuleStatus::Error, message),
            audit_annotations: BTreeMap::new(),
        }
    }

    fn evaluation_error(&self, error: String) -> ImageValidation {
        self.error(format!("failed to evaluate policy: {error}"))
    }
}

/// Where the pod spec of a resource is: pods, pod controllers and cron jobs.
fn pod_spec_path(resource: &GroupVersionResource) -> Option<&'static [&'static str]> {
    match (
        resource.group.as_str(),
        resource.version.as_str(),
        resource.resource.as_str(),
    ) {
        ("", "v1", "pods") => Some(&["spec"]),
        ("batch", "v1", "jobs")
        | ("apps", "v1", "deployments" | "statefulsets" | "daemonsets" | "replicasets") => {
            Some(&["spec", "template", "spec"])
        }
        ("batch", "v1", "cronjobs") => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// The images of the `field` containers of the pod spec at `path` (none without such
/// containers; an error when the pod spec itself or a container's image is missing, as
/// upstream's extraction expressions fail).
fn container_images(
    document: Option<&Value>,
    path: &[&str],
    field: &str,
) -> Result<Vec<String>, String> {
    let mut current = document.ok_or("no object to extract images from")?;
    for key in path {
        current = current
            .get(*key)
            .ok_or_else(|| format!("failed to extract images: no such key: {key}"))?;
    }
    let Some(containers) = current.get(field).and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    containers
        .iter()
        .map(|container| {
            container
                .get("image")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "failed to extract images: no such key: image".to_owned())
        })
        .collect()
}

/// The `images` variable.
fn images_value(images: &BTreeMap<String, Vec<String>>) -> CelValue {
    named_map(images.iter().map(|(name, list)| {
        let list = list
            .iter()
            .map(|image| CelValue::String(Arc::new(image.clone())))
            .collect();
        (name.as_str(), CelValue::List(Arc::new(list)))
    }))
}

/// A CEL map from names.
fn named_map<'a>(entries: impl Iterator<Item = (&'a str, CelValue)>) -> CelValue {
    let map = entries
        .map(|(name, value)| (Key::String(Arc::new(name.to_owned())), value))
        .collect();
    CelValue::Map(Map { map: Arc::new(map) })
}

/// Adds the image verification functions to the root environment: offline they fail with the
/// registry-needed error.
pub fn register(context: &mut Context<'_>) {
    for name in REGISTRY_FUNCTIONS {
        context.add_function(name, needs_registry);
    }
}

fn needs_registry(ftx: &FunctionContext) -> Result<CelValue, ExecutionError> {
    Err(ftx.error(NEEDS_REGISTRY))
}

#[cfg(test)]
mod tests;
