//! The CLI's calls into the engines of the CEL policy kinds: Kyverno's ValidatingPolicy,
//! MutatingPolicy, GeneratingPolicy, DeletingPolicy and ImageValidatingPolicy (and their
//! Namespaced forms), and Kubernetes' MutatingAdmissionPolicy and ValidatingAdmissionPolicy, as
//! upstream's CLI applies them to each resource:
//!
//! 1. MutatingAdmissionPolicies, each on the resource the ones before it patched (a policy that
//!    selects nothing, or whose expressions fail, reports nothing);
//! 2. MutatingPolicies, all on the same resource; each reports the resource the last successful
//!    one patched (those that mutate existing resources also patch the test's targets);
//! 3. ValidatingAdmissionPolicies and ValidatingPolicies, on the resulting resource;
//! 4. GeneratingPolicies, on the resulting resource;
//! 5. ImageValidatingPolicies and DeletingPolicies, on the resource as the test gives it.
//!
//! A ValidatingPolicy or MutatingPolicy whose constraints are a single plain resource rule
//! reports nothing for a resource it does not select; other policies report an empty response,
//! which tests list as excluded. JSON payloads are evaluated by the ValidatingPolicies in `JSON`
//! mode and by the DeletingPolicies; Envoy and HTTP requests by the ValidatingPolicies in those
//! modes.
use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, MutatingAdmissionPolicyBinding, NamedRuleWithOperations,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::object::HasSpec;
use kyverno_api::policies::exception::PolicyException as CelPolicyException;
use kyverno_policy_core::celpolicy::RequestInput;
use kyverno_policy_core::celpolicy::admission_policy::CompiledAdmissionPolicy;
use kyverno_policy_core::celpolicy::common::labels;
use kyverno_policy_core::celpolicy::deleting::{
    Candidate, CompiledDeletingPolicy, DeletionDecision,
};
use kyverno_policy_core::celpolicy::generating::CompiledGeneratingPolicy;
use kyverno_policy_core::celpolicy::image_validating::{
    CompiledImageValidatingPolicy, ImageValidation,
};
use kyverno_policy_core::celpolicy::matching::is_plain_resource_match;
use kyverno_policy_core::celpolicy::mutating::{
    CompiledMutatingAdmissionPolicy, CompiledMutatingPolicy,
};
use kyverno_policy_core::celpolicy::resources::{
    GroupVersionResource, InvalidCrd, ResourceTable, resource_named_in_rules,
};
use kyverno_policy_core::celpolicy::validating::{
    CompiledValidatingPolicy, EvaluationMode, ValidatingInput,
};
use kyverno_policy_core::engine::{ContextProvider, GeneratedResource};
use kyverno_policy_core::request::{GroupVersionKind, ResourceRequest};
use kyverno_policy_core::response::{PolicyResponse, RuleResponse, RuleStatus, RuleType};
use serde_json::Value;

use crate::loader::CelPolicies;

/// The kinds of CEL policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CelKind {
    /// `policies.kyverno.io` ValidatingPolicy.
    ValidatingPolicy,
    /// `policies.kyverno.io` NamespacedValidatingPolicy.
    NamespacedValidatingPolicy,
    /// Kubernetes ValidatingAdmissionPolicy.
    ValidatingAdmissionPolicy,
    /// `policies.kyverno.io` MutatingPolicy.
    MutatingPolicy,
    /// `policies.kyverno.io` NamespacedMutatingPolicy.
    NamespacedMutatingPolicy,
    /// Kubernetes MutatingAdmissionPolicy.
    MutatingAdmissionPolicy,
    /// `policies.kyverno.io` GeneratingPolicy.
    GeneratingPolicy,
    /// `policies.kyverno.io` NamespacedGeneratingPolicy.
    NamespacedGeneratingPolicy,
    /// `policies.kyverno.io` DeletingPolicy.
    DeletingPolicy,
    /// `policies.kyverno.io` NamespacedDeletingPolicy.
    NamespacedDeletingPolicy,
    /// `policies.kyverno.io` ImageValidatingPolicy.
    ImageValidatingPolicy,
    /// `policies.kyverno.io` NamespacedImageValidatingPolicy.
    NamespacedImageValidatingPolicy,
}

impl CelKind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            CelKind::ValidatingPolicy => "ValidatingPolicy",
            CelKind::NamespacedValidatingPolicy => "NamespacedValidatingPolicy",
            CelKind::ValidatingAdmissionPolicy => "ValidatingAdmissionPolicy",
            CelKind::MutatingPolicy => "MutatingPolicy",
            CelKind::NamespacedMutatingPolicy => "NamespacedMutatingPolicy",
            CelKind::MutatingAdmissionPolicy => "MutatingAdmissionPolicy",
            CelKind::GeneratingPolicy => "GeneratingPolicy",
            CelKind::NamespacedGeneratingPolicy => "NamespacedGeneratingPolicy",
            CelKind::DeletingPolicy => "DeletingPolicy",
            CelKind::NamespacedDeletingPolicy => "NamespacedDeletingPolicy",
            CelKind::ImageValidatingPolicy => "ImageValidatingPolicy",
            CelKind::NamespacedImageValidatingPolicy => "NamespacedImageValidatingPolicy",
        }
    }

    /// Whether policies of the kind generate resources: each generated resource is checked.
    pub fn is_generating(self) -> bool {
        matches!(
            self,
            CelKind::GeneratingPolicy | CelKind::NamespacedGeneratingPolicy
        )
    }
}

/// Why the CEL policies of a run cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CelError {
    /// A policy does not compile.
    #[error("failed to compile policy {0}")]
    Compile(String),
    /// A CustomResourceDefinition of the cluster resources cannot serve its kind.
    #[error(transparent)]
    Crd(#[from] InvalidCrd),
    /// No resource serves the kind of a resource the policies are applied to.
    #[error("failed to map gvk to gvr {0}")]
    UnknownKind(String),
    /// The target expression of a MutatingPolicy failed.
    #[error("failed to discover CEL targets: {0}")]
    Targets(String),
}

/// One CEL policy's answer for one resource or payload.
#[derive(Clone, Debug, PartialEq)]
pub struct CelOutcome {
    /// The policy's name.
    pub policy: String,
    /// The namespace of a Namespaced policy kind.
    pub namespace: Option<String>,
    /// The policy's annotations.
    pub annotations: Arc<BTreeMap<String, String>>,
    /// The policy's kind.
    pub kind: CelKind,
    /// Whether the policy's failures count as failures (the `policies.kyverno.io/scored`
    /// annotation is not `"false"`).
    pub scored: bool,
    /// The rule responses (none when the policy did not apply).
    pub response: PolicyResponse,
    /// The resource as the policy left it: patched by a mutating policy, else as evaluated.
    pub resource: Arc<Value>,
    /// The resources the policy generated, for generating kinds.
    pub generated: Vec<GeneratedResource>,
}

/// Builds the admission request of a resource (as the previous policies left it).
pub type RequestFor<'a> = dyn Fn(&Arc<Value>) -> ResourceRequest + 'a;

/// What the CEL policies are evaluated with, besides the resource.
pub struct CelInput<'a> {
    /// The admission request of a resource.
    pub request: &'a RequestFor<'a>,
    /// The Namespace object of the request's namespace, when the run knows it.
    pub namespace: Option<&'a Value>,
    /// Parameter resources of admission policies.
    pub params: &'a [Value],
}

/// Where the CEL libraries (`resource`, `globalContext`, `http`, `image`) read.
#[derive(Clone)]
pub struct CelProviders {
    /// For every kind but the MutatingPolicies.
    pub policies: Arc<dyn ContextProvider>,
    /// For the MutatingPolicies: upstream's CLI also lets them find the test's targets.
    pub mutating: Arc<dyn ContextProvider>,
}

/// A compiled policy and what the CLI reports of it.
#[derive(Debug)]
struct Entry<P> {
    policy: P,
    name: String,
    namespace: Option<String>,
    annotations: Arc<BTreeMap<String, String>>,
    kind: CelKind,
    scored: bool,
    /// Whether its constraints are a single plain resource rule: then a MutatingPolicy reports
    /// nothing for the resources it does not select.
    plain_match: bool,
}

impl<P> Entry<P> {
    fn new(
        policy: P,
        kind: CelKind,
        metadata: &ObjectMeta,
        constraints: Option<&MatchResources>,
    ) -> Self {
        let namespaced = matches!(
            kind,
            CelKind::NamespacedValidatingPolicy
                | CelKind::NamespacedMutatingPolicy
                | CelKind::NamespacedGeneratingPolicy
                | CelKind::NamespacedDeletingPolicy
                | CelKind::NamespacedImageValidatingPolicy
        );
        Self {
            policy,
            name: metadata.name.clone().unwrap_or_default(),
            namespace: metadata.namespace.clone().filter(|_| namespaced),
            annotations: Arc::new(metadata.annotations.clone().unwrap_or_default()),
            kind,
            scored: is_scored(metadata),
            plain_match: is_plain_resource_match(constraints),
        }
    }

    /// The policy's answer for `resource`.
    fn outcome(&self, rules: Vec<RuleResponse>, resource: &Arc<Value>) -> CelOutcome {
        CelOutcome {
            policy: self.name.clone(),
            namespace: self.namespace.clone(),
            annotations: Arc::clone(&self.annotations),
            kind: self.kind,
            scored: self.scored,
            response: PolicyResponse { rules },
            resource: Arc::clone(resource),
            generated: Vec::new(),
        }
    }

    /// The policy's answer with one rule named after it.
    fn answer(
        &self,
        rule_type: RuleType,
        status: RuleStatus,
        message: String,
        resource: &Arc<Value>,
    ) -> CelOutcome {
        let rule = RuleResponse {
            name: self.name.clone(),
            rule_type,
            status,
            message,
        };
        self.outcome(vec![rule], resource)
    }
}

/// The CEL policies of a run, compiled.
pub struct CelPolicySet {
    resources: ResourceTable,
    providers: CelProviders,
    mutating_admission: Vec<Entry<CompiledMutatingAdmissionPolicy>>,
    mutating_admission_bindings: Vec<MutatingAdmissionPolicyBinding>,
    mutating: Vec<Entry<CompiledMutatingPolicy>>,
    validating_admission: Vec<Entry<CompiledAdmissionPolicy>>,
    validating: Vec<Entry<CompiledValidatingPolicy>>,
    /// The resource rules of every ValidatingPolicy, where upstream's CLI looks for the
    /// resource of a kind it does not know.
    validating_rules: Vec<NamedRuleWithOperations>,
    generating: Vec<Entry<CompiledGeneratingPolicy>>,
    image_validating: Vec<Entry<CompiledImageValidatingPolicy>>,
    deleting: Vec<Entry<CompiledDeletingPolicy>>,
}

/// The annotation that makes a policy's failures warnings when `"false"`.
const SCORED_ANNOTATION: &str = "policies.kyverno.io/scored";

/// Whether a policy is scored.
fn is_scored(metadata: &ObjectMeta) -> bool {
    metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(SCORED_ANNOTATION))
        .map(String::as_str)
        != Some("false")
}

/// The error of a policy that does not compile.
fn compile_error(error: impl std::fmt::Display) -> CelError {
    CelError::Compile(error.to_string())
}

/// Compiles `policies` of `kind` with `compile`; `constraints` are a policy's
/// `matchConstraints`.
fn compile_entries<T: Resource, P, E: std::fmt::Display>(
    policies: &[T],
    kind: CelKind,
    constraints: impl Fn(&T) -> Option<&MatchResources>,
    compile: impl Fn(&T) -> Result<P, E>,
) -> Result<Vec<Entry<P>>, CelError> {
    policies
        .iter()
        .map(|policy| {
            let compiled = compile(policy).map_err(compile_error)?;
            Ok(Entry::new(
                compiled,
                kind,
                policy.meta(),
                constraints(policy),
            ))
        })
        .collect()
}

/// Compiles the policies of a kind with a cluster-wide and a namespaced form, as
/// `compile(name, namespace, spec)`: the namespace is that of a namespaced policy, `None` for
/// the cluster-wide ones. `constraints` are a specification's `matchConstraints`.
fn compile_scoped<C, N, S, P, E: std::fmt::Display>(
    cluster: &[C],
    namespaced: &[N],
    [cluster_kind, namespaced_kind]: [CelKind; 2],
    constraints: impl Fn(&S) -> Option<&MatchResources>,
    compile: impl Fn(&str, Option<&str>, &S) -> Result<P, E>,
) -> Result<Vec<Entry<P>>, CelError>
where
    C: Resource + HasSpec<Spec: Deref<Target = S>>,
    N: Resource + HasSpec<Spec: Deref<Target = S>>,
{
    let cluster = cluster
        .iter()
        .map(|policy| (cluster_kind, policy.meta(), &**policy.spec(), None));
    let namespaced = namespaced.iter().map(|policy| {
        let metadata = policy.meta();
        let namespace = metadata.namespace.as_deref();
        (namespaced_kind, metadata, &**policy.spec(), namespace)
    });
    cluster
        .chain(namespaced)
        .map(|(kind, metadata, spec, namespace)| {
            let name = metadata.name.as_deref().unwrap_or_default();
            let compiled = compile(name, namespace, spec).map_err(compile_error)?;
            Ok(Entry::new(compiled, kind, metadata, constraints(spec)))
        })
        .collect()
}

impl CelPolicySet {
    /// Compiles `policies` with their `exceptions`; `crds` are the CustomResourceDefinitions
    /// of the simulated cluster, which serve their kinds besides the built-in ones.
    pub fn compile(
        policies: CelPolicies,
        exceptions: Vec<CelPolicyException>,
        crds: &[Value],
        providers: CelProviders,
    ) -> Result<Self, CelError> {
        let mut resources = ResourceTable::builtin().clone();
        for crd in crds {
            resources.add_crd(crd)?;
        }
        let exceptions: Vec<Arc<CelPolicyException>> =
            exceptions.into_iter().map(Arc::new).collect();
        let mut set = Self {
            resources,
            mutating_admission: Vec::new(),
            mutating_admission_bindings: policies.mutating_admission_bindings,
            mutating: Vec::new(),
            validating_admission: Vec::new(),
            validating: Vec::new(),
            validating_rules: Vec::new(),
            generating: Vec::new(),
            image_validating: Vec::new(),
            deleting: Vec::new(),
            providers,
        };
        set.mutating_admission = compile_entries(
            &policies.mutating_admission,
            CelKind::MutatingAdmissionPolicy,
            |policy| policy.spec.as_ref()?.match_constraints.as_ref(),
            CompiledMutatingAdmissionPolicy::compile,
        )?;
        let with_provider = |compiled: CompiledMutatingPolicy| {
            compiled.with_provider(Arc::clone(&set.providers.mutating))
        };
        set.mutating = compile_entries(
            &policies.mutating,
            CelKind::MutatingPolicy,
            |policy| policy.spec.match_constraints.as_ref(),
            |policy| CompiledMutatingPolicy::compile(policy, &exceptions).map(with_provider),
        )?;
        set.mutating.extend(compile_entries(
            &policies.namespaced_mutating,
            CelKind::NamespacedMutatingPolicy,
            |policy| policy.spec.match_constraints.as_ref(),
            |policy| {
                CompiledMutatingPolicy::compile_namespaced(policy, &exceptions).map(with_provider)
            },
        )?);
        set.validating_admission = compile_entries(
            &policies.validating_admission,
            CelKind::ValidatingAdmissionPolicy,
            |policy| policy.spec.as_ref()?.match_constraints.as_ref(),
            |policy| {
                CompiledAdmissionPolicy::compile(policy, &policies.validating_admission_bindings)
            },
        )?;
        set.validating = compile_entries(
            &policies.validating,
            CelKind::ValidatingPolicy,
            |policy| policy.spec.match_constraints.as_ref(),
            |policy| CompiledValidatingPolicy::compile(policy, &exceptions),
        )?;
        set.validating.extend(compile_entries(
            &policies.namespaced_validating,
            CelKind::NamespacedValidatingPolicy,
            |policy| policy.spec.match_constraints.as_ref(),
            |policy| CompiledValidatingPolicy::compile_namespaced(policy, &exceptions),
        )?);
        let namespaced_validating = policies.namespaced_validating.iter();
        set.validating_rules = (policies.validating.iter().map(|policy| &policy.spec.0))
            .chain(namespaced_validating.map(|policy| &policy.spec.0))
            .filter_map(|spec| spec.match_constraints.as_ref())
            .flat_map(|constraints| constraints.resource_rules.iter().flatten().cloned())
            .collect();
        set.generating = compile_scoped(
            &policies.generating,
            &policies.namespaced_generating,
            [
                CelKind::GeneratingPolicy,
                CelKind::NamespacedGeneratingPolicy,
            ],
            |spec| spec.match_constraints.as_ref(),
            |name, namespace, spec| {
                CompiledGeneratingPolicy::compile(name, namespace, spec, &exceptions)
            },
        )?;
        set.image_validating = compile_scoped(
            &policies.image_validating,
            &policies.namespaced_image_validating,
            [
                CelKind::ImageValidatingPolicy,
                CelKind::NamespacedImageValidatingPolicy,
            ],
            |spec| spec.match_constraints.as_ref(),
            |name, namespace, spec| {
                CompiledImageValidatingPolicy::compile(name, namespace, spec, &exceptions)
            },
        )?;
        set.deleting = compile_scoped(
            &policies.deleting,
            &policies.namespaced_deleting,
            [CelKind::DeletingPolicy, CelKind::NamespacedDeletingPolicy],
            |spec| spec.match_constraints.as_ref(),
            |name, namespace, spec| {
                CompiledDeletingPolicy::compile(name, namespace, spec, &exceptions)
            },
        )?;
        Ok(set)
    }

    /// The admission request of `resource` and the resource serving its kind.
    fn admission_request(
        &self,
        resource: &Arc<Value>,
        input: &CelInput<'_>,
    ) -> Result<(ResourceRequest, GroupVersionResource), CelError> {
        let request = (input.request)(resource);
        let gvr = self.resource_for(request.gvk())?;
        Ok((request, gvr))
    }

    /// The resource serving `gvk`.
    fn resource_for(&self, gvk: &GroupVersionKind) -> Result<GroupVersionResource, CelError> {
        self.resources
            .mapping(gvk)
            .map(|mapping| mapping.resource)
            .ok_or_else(|| CelError::UnknownKind(describe(gvk)))
    }

    /// The resource serving the kind of `object`.
    fn resource_of_object(&self, object: &Value) -> Result<GroupVersionResource, CelError> {
        let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
        self.resource_for(&GroupVersionKind::from_api_version(
            text("apiVersion"),
            text("kind"),
        ))
    }

    /// The answers of the mutating kinds and the resource they leave.
    pub fn mutate(
        &self,
        resource: Arc<Value>,
        input: &CelInput<'_>,
    ) -> Result<(Vec<CelOutcome>, Arc<Value>), CelError> {
        let mut current = resource;
        let mut outcomes = Vec::new();
        let bindings: Vec<&MutatingAdmissionPolicyBinding> =
            self.mutating_admission_bindings.iter().collect();
        for entry in &self.mutating_admission {
            let (request, gvr) = self.admission_request(&current, input)?;
            let mutation_input = RequestInput::new(&request, &gvr, input.namespace);
            let Some(result) =
                entry
                    .policy
                    .evaluate(&bindings, input.params, &mutation_input, false)
            else {
                continue;
            };
            // Upstream's CLI reports nothing for a policy that failed.
            if result.mutation.rule.status == RuleStatus::Error {
                continue;
            }
            current = result.mutation.patched;
            outcomes.push(entry.outcome(vec![result.mutation.rule], &current));
        }
        if self.mutating.is_empty() {
            return Ok((outcomes, current));
        }
        let (request, gvr) = self.admission_request(&current, input)?;
        let mutation_input = RequestInput::new(&request, &gvr, input.namespace);
        let mut answers = Vec::new();
        let mut patched = None;
        for entry in &self.mutating {
            match entry.policy.evaluate(&mutation_input) {
                None if entry.plain_match => {}
                None => answers.push((entry, Vec::new())),
                Some(mutation) => {
                    if mutation.rule.status == RuleStatus::Pass {
                        patched = Some(mutation.patched);
                    }
                    answers.push((entry, vec![mutation.rule]));
                }
            }
        }
        // Every answer reports the resource the last successful policy left.
        let current = patched.unwrap_or(current);
        outcomes.extend(
            answers
                .into_iter()
                .map(|(entry, rules)| entry.outcome(rules, &current)),
        );
        Ok((outcomes, current))
    }

    /// The answers of the MutatingPolicies that mutate existing resources for the `targets` of
    /// the test, as upstream's CLI gives them for a `trigger`: each target a policy selects (by
    /// its target constraints, or among the objects its target expression returns) is mutated
    /// as the policy's target, whether or not the trigger matches the policy; the answers are
    /// those of the targets patched, each with its patched target.
    pub fn mutate_targets(
        &self,
        trigger: &Arc<Value>,
        targets: &[Value],
        input: &CelInput<'_>,
    ) -> Result<Vec<CelOutcome>, CelError> {
        let policies: Vec<&Entry<CompiledMutatingPolicy>> = self
            .mutating
            .iter()
            .filter(|entry| entry.policy.mutates_existing())
            .collect();
        if policies.is_empty() || targets.is_empty() {
            return Ok(Vec::new());
        }
        let (request, gvr) = self.admission_request(trigger, input)?;
        let trigger_input = RequestInput::new(&request, &gvr, input.namespace);
        let found: Vec<Option<Vec<Value>>> = policies
            .iter()
            .map(|entry| {
                entry
                    .policy
                    .targets_by_expression(&trigger_input)
                    .transpose()
            })
            .collect::<Result<_, String>>()
            .map_err(CelError::Targets)?;
        let mut outcomes = Vec::new();
        for target in targets {
            let target_gvr = self.resource_of_object(target)?;
            let target = Arc::new(target.clone());
            for (entry, found) in policies.iter().zip(&found) {
                let selected = match found {
                    Some(found) => found.iter().any(|object| same_object(object, &target)),
                    None => entry.policy.selects_target(&target, &target_gvr),
                };
                if !selected {
                    continue;
                }
                let mutation = entry.policy.evaluate_target(&target, &trigger_input);
                if mutation.rule.status == RuleStatus::Pass {
                    outcomes.push(entry.outcome(vec![mutation.rule], &mutation.patched));
                }
            }
        }
        Ok(outcomes)
    }

    /// The answers of the validating kinds for a Kubernetes resource.
    pub fn validate(
        &self,
        resource: &Arc<Value>,
        input: &CelInput<'_>,
    ) -> Result<Vec<CelOutcome>, CelError> {
        let mut outcomes = Vec::new();
        if !self.validating_admission.is_empty() {
            let (request, gvr) = self.admission_request(resource, input)?;
            let labels = input.namespace.map(labels).unwrap_or_default();
            // Upstream's CLI reports every admission policy, matched or not.
            outcomes.extend(self.validating_admission.iter().map(|entry| {
                let response = entry.policy.evaluate(&request, &gvr, &labels, input.params);
                entry.outcome(response.rules, resource)
            }));
        }
        if self.validating.is_empty() {
            return Ok(outcomes);
        }
        let request = (input.request)(resource);
        let gvr = self.validating_resource(&request)?;
        let validating_input = ValidatingInput::resource(&request, &gvr, input.namespace)
            .with_provider(Arc::clone(&self.providers.policies));
        for entry in &self.validating {
            outcomes.extend(
                entry
                    .policy
                    .evaluate(&validating_input)
                    .into_iter()
                    .map(|response| entry.outcome(response.rules, resource)),
            );
        }
        Ok(outcomes)
    }

    /// The resource ValidatingPolicies see for `request`: the one serving its kind, else, as
    /// upstream's CLI, the first resource of their rules named after the kind. Without either,
    /// only policies in `JSON` mode can be evaluated (they are not matched).
    fn validating_resource(
        &self,
        request: &ResourceRequest,
    ) -> Result<GroupVersionResource, CelError> {
        let gvk = request.gvk();
        if let Some(mapping) = self.resources.mapping(gvk) {
            return Ok(mapping.resource);
        }
        if let Some(resource) = resource_named_in_rules(&gvk.kind, &self.validating_rules) {
            return Ok(GroupVersionResource::new(
                gvk.group.clone(),
                gvk.version.clone(),
                resource,
            ));
        }
        let only_json = self
            .validating
            .iter()
            .all(|entry| *entry.policy.mode() == EvaluationMode::Json);
        if only_json {
            Ok(GroupVersionResource::default())
        } else {
            Err(CelError::UnknownKind(describe(gvk)))
        }
    }

    /// The answers of the GeneratingPolicies for a resource: only those that apply to it
    /// answer, with the resources they generate.
    pub fn generate(
        &self,
        resource: &Arc<Value>,
        input: &CelInput<'_>,
    ) -> Result<Vec<CelOutcome>, CelError> {
        if self.generating.is_empty() {
            return Ok(Vec::new());
        }
        let (request, gvr) = self.admission_request(resource, input)?;
        let trigger = RequestInput::new(&request, &gvr, input.namespace);
        Ok(self
            .generating
            .iter()
            .filter_map(|entry| {
                let response =
                    entry
                        .policy
                        .evaluate(&trigger, &self.resources, &self.providers.policies)?;
                let mut outcome = entry.outcome(vec![response.rule], resource);
                outcome.generated = response.resources;
                Some(outcome)
            })
            .collect())
    }

    /// The answers of the ImageValidatingPolicies and DeletingPolicies, which upstream's CLI
    /// applies to the resources as the test gives them (not as other policies patched them).
    /// An ImageValidatingPolicy that does not apply answers with an empty response; one that
    /// needs an image registry answers with an error saying so, as offline runs have none.
    pub fn check_as_given(
        &self,
        resource: &Arc<Value>,
        input: &CelInput<'_>,
    ) -> Result<Vec<CelOutcome>, CelError> {
        let mut outcomes = Vec::new();
        if !self.image_validating.is_empty() {
            let (request, gvr) = self.admission_request(resource, input)?;
            let image_request = RequestInput::new(&request, &gvr, input.namespace);
            for entry in &self.image_validating {
                let validation = entry
                    .policy
                    .evaluate(&image_request, &self.providers.policies);
                outcomes.push(match validation {
                    None => entry.outcome(Vec::new(), resource),
                    Some(ImageValidation::Evaluated { rule, .. }) => {
                        entry.outcome(vec![rule], resource)
                    }
                    Some(ImageValidation::NeedsRegistry { reason }) => entry.answer(
                        RuleType::ImageVerify,
                        RuleStatus::Error,
                        format!("needs an image registry, not runnable offline: {reason}"),
                        resource,
                    ),
                });
            }
        }
        outcomes.extend(self.decide_deletions(resource, input.namespace));
        Ok(outcomes)
    }

    /// The answers of the DeletingPolicies for a resource or payload, as upstream's CLI gives
    /// them: `pass` when the policy would delete it, `fail` otherwise, every policy answering.
    fn decide_deletions<'s>(
        &'s self,
        resource: &'s Arc<Value>,
        namespace: Option<&'s Value>,
    ) -> impl Iterator<Item = CelOutcome> + 's {
        let candidate = Candidate {
            resource,
            namespace_object: namespace,
            resources: &self.resources,
        };
        self.deleting.iter().map(move |entry| {
            let (status, message) = match entry.policy.decide(&candidate, &self.providers.policies)
            {
                DeletionDecision::Delete => (RuleStatus::Pass, "resource matched".to_owned()),
                DeletionDecision::Keep | DeletionDecision::Exempted(_) => {
                    (RuleStatus::Fail, "resource did not match".to_owned())
                }
                DeletionDecision::Error(message) => (RuleStatus::Error, message),
            };
            entry.answer(RuleType::Validation, status, message, resource)
        })
    }

    /// The answers of the ValidatingPolicies in `JSON` mode and of the DeletingPolicies for a
    /// JSON payload.
    pub fn evaluate_payload(&self, payload: &Arc<Value>) -> Vec<CelOutcome> {
        let validating_input =
            ValidatingInput::payload(payload).with_provider(Arc::clone(&self.providers.policies));
        let validated = self.validating.iter().flat_map(|entry| {
            entry
                .policy
                .evaluate(&validating_input)
                .into_iter()
                .map(|response| entry.outcome(response.rules, payload))
        });
        validated
            .chain(self.decide_deletions(payload, None))
            .collect()
    }

    /// The answers of the ValidatingPolicies in the authorization `mode` (`Envoy` or `HTTP`)
    /// for a check request of that kind.
    pub fn authorize(&self, mode: &str, request: &Arc<Value>) -> Vec<CelOutcome> {
        let validating_input =
            ValidatingInput::payload(request).with_provider(Arc::clone(&self.providers.policies));
        self.validating
            .iter()
            .filter(|entry| matches!(entry.policy.mode(), EvaluationMode::Other(other) if other == mode))
            .filter_map(|entry| {
                let response = entry.policy.evaluate_authorization(&validating_input)?;
                Some(entry.outcome(response.rules, request))
            })
            .collect()
    }
}

/// Whether two objects have the same namespace and name (upstream's CLI keys the targets a
/// target expression returns by namespace and name).
fn same_object(left: &Value, right: &Value) -> bool {
    let key = |object: &Value| {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        (
            text("/metadata/namespace").unwrap_or_default().to_owned(),
            text("/metadata/name").map(str::to_owned),
        )
    };
    key(left) == key(right)
}

/// A kind as upstream prints it: `apps/v1, Kind=Deployment`.
fn describe(gvk: &GroupVersionKind) -> String {
    let group_version = if gvk.group.is_empty() {
        gvk.version.clone()
    } else {
        format!("{}/{}", gvk.group, gvk.version)
    };
    format!("{group_version}, Kind={}", gvk.kind)
}
