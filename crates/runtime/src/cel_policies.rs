//! The CEL policy kinds of `policies.kyverno.io` used at admission (ValidatingPolicy,
//! MutatingPolicy, ImageValidatingPolicy, GeneratingPolicy and their Namespaced forms), compiled
//! once per change with the `policies.kyverno.io` PolicyExceptions that name them. Part of the
//! [`crate::policy_cache`] state.
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::MatchResources;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject};
use kyverno_api::kyverno::v1::policy::FailurePolicy;
use kyverno_api::policies::common::{ValidationAction, WebhookConfiguration};
use kyverno_api::policies::exception::PolicyException;
use kyverno_api::policies::generating::{GeneratingPolicy, NamespacedGeneratingPolicy};
use kyverno_api::policies::image_validating::{
    ImageValidatingPolicy, NamespacedImageValidatingPolicy,
};
use kyverno_api::policies::mutating::{MutatingPolicy, NamespacedMutatingPolicy};
use kyverno_api::policies::validating::{NamespacedValidatingPolicy, ValidatingPolicy};
use kyverno_policy_core::celpolicy::autogen;
use kyverno_policy_core::celpolicy::generating::CompiledGeneratingPolicy;
use kyverno_policy_core::celpolicy::image_validating::{
    CompiledImageValidatingPolicy, ImageValidation,
};
use kyverno_policy_core::celpolicy::mutating::CompiledMutatingPolicy;
use kyverno_policy_core::celpolicy::validating::CompiledValidatingPolicy;
use kyverno_policy_core::engine::ContextProvider;
use kyverno_policy_core::response::{RuleResponse, RuleStatus, RuleType};

use crate::policy_cache::{PolicyKey, WebhookDefaults};

/// The CEL policy kinds evaluated at admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CelKind {
    /// ValidatingPolicy.
    ValidatingPolicy,
    /// NamespacedValidatingPolicy.
    NamespacedValidatingPolicy,
    /// MutatingPolicy.
    MutatingPolicy,
    /// NamespacedMutatingPolicy.
    NamespacedMutatingPolicy,
    /// ImageValidatingPolicy.
    ImageValidatingPolicy,
    /// NamespacedImageValidatingPolicy.
    NamespacedImageValidatingPolicy,
    /// GeneratingPolicy.
    GeneratingPolicy,
    /// NamespacedGeneratingPolicy.
    NamespacedGeneratingPolicy,
}

impl CelKind {
    /// Every kind.
    pub const ALL: [CelKind; 8] = [
        CelKind::ValidatingPolicy,
        CelKind::NamespacedValidatingPolicy,
        CelKind::MutatingPolicy,
        CelKind::NamespacedMutatingPolicy,
        CelKind::ImageValidatingPolicy,
        CelKind::NamespacedImageValidatingPolicy,
        CelKind::GeneratingPolicy,
        CelKind::NamespacedGeneratingPolicy,
    ];

    /// Whether the kind generates resources (GeneratingPolicy and its Namespaced form): only the
    /// admission controller, which queues their UpdateRequests, caches them.
    pub fn is_generating(self) -> bool {
        matches!(
            self,
            CelKind::GeneratingPolicy | CelKind::NamespacedGeneratingPolicy
        )
    }

    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            CelKind::ValidatingPolicy => "ValidatingPolicy",
            CelKind::NamespacedValidatingPolicy => "NamespacedValidatingPolicy",
            CelKind::MutatingPolicy => "MutatingPolicy",
            CelKind::NamespacedMutatingPolicy => "NamespacedMutatingPolicy",
            CelKind::ImageValidatingPolicy => "ImageValidatingPolicy",
            CelKind::NamespacedImageValidatingPolicy => "NamespacedImageValidatingPolicy",
            CelKind::GeneratingPolicy => "GeneratingPolicy",
            CelKind::NamespacedGeneratingPolicy => "NamespacedGeneratingPolicy",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether policies of the kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        matches!(
            self,
            CelKind::NamespacedValidatingPolicy
                | CelKind::NamespacedMutatingPolicy
                | CelKind::NamespacedImageValidatingPolicy
                | CelKind::NamespacedGeneratingPolicy
        )
    }

    /// The API resource serving the kind.
    pub fn api_resource(self) -> ApiResource {
        match self {
            CelKind::ValidatingPolicy => ApiResource::erase::<ValidatingPolicy>(&()),
            CelKind::NamespacedValidatingPolicy => {
                ApiResource::erase::<NamespacedValidatingPolicy>(&())
            }
            CelKind::MutatingPolicy => ApiResource::erase::<MutatingPolicy>(&()),
            CelKind::NamespacedMutatingPolicy => {
                ApiResource::erase::<NamespacedMutatingPolicy>(&())
            }
            CelKind::ImageValidatingPolicy => ApiResource::erase::<ImageValidatingPolicy>(&()),
            CelKind::NamespacedImageValidatingPolicy => {
                ApiResource::erase::<NamespacedImageValidatingPolicy>(&())
            }
            CelKind::GeneratingPolicy => ApiResource::erase::<GeneratingPolicy>(&()),
            CelKind::NamespacedGeneratingPolicy => {
                ApiResource::erase::<NamespacedGeneratingPolicy>(&())
            }
        }
    }
}

/// A CEL policy as written.
#[derive(Clone, Debug)]
pub enum CelSource {
    /// A ValidatingPolicy.
    Validating(ValidatingPolicy),
    /// A NamespacedValidatingPolicy.
    NamespacedValidating(NamespacedValidatingPolicy),
    /// A MutatingPolicy.
    Mutating(MutatingPolicy),
    /// A NamespacedMutatingPolicy.
    NamespacedMutating(NamespacedMutatingPolicy),
    /// An ImageValidatingPolicy.
    ImageValidating(ImageValidatingPolicy),
    /// A NamespacedImageValidatingPolicy.
    NamespacedImageValidating(NamespacedImageValidatingPolicy),
    /// A GeneratingPolicy.
    Generating(GeneratingPolicy),
    /// A NamespacedGeneratingPolicy.
    NamespacedGenerating(NamespacedGeneratingPolicy),
}

impl CelSource {
    /// Decodes an object of `kind`.
    pub fn decode(kind: CelKind, object: serde_json::Value) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            CelKind::ValidatingPolicy => Self::Validating(serde_json::from_value(object)?),
            CelKind::NamespacedValidatingPolicy => {
                Self::NamespacedValidating(serde_json::from_value(object)?)
            }
            CelKind::MutatingPolicy => Self::Mutating(serde_json::from_value(object)?),
            CelKind::NamespacedMutatingPolicy => {
                Self::NamespacedMutating(serde_json::from_value(object)?)
            }
            CelKind::ImageValidatingPolicy => {
                Self::ImageValidating(serde_json::from_value(object)?)
            }
            CelKind::NamespacedImageValidatingPolicy => {
                Self::NamespacedImageValidating(serde_json::from_value(object)?)
            }
            CelKind::GeneratingPolicy => Self::Generating(serde_json::from_value(object)?),
            CelKind::NamespacedGeneratingPolicy => {
                Self::NamespacedGenerating(serde_json::from_value(object)?)
            }
        })
    }

    /// Decodes a watched object of `kind`.
    pub fn from_object(kind: CelKind, object: DynamicObject) -> Result<Self, String> {
        serde_json::to_value(object)
            .and_then(|value| Self::decode(kind, value))
            .map_err(|error| error.to_string())
    }

    /// The policy's kind.
    pub fn kind(&self) -> CelKind {
        match self {
            Self::Validating(_) => CelKind::ValidatingPolicy,
            Self::NamespacedValidating(_) => CelKind::NamespacedValidatingPolicy,
            Self::Mutating(_) => CelKind::MutatingPolicy,
            Self::NamespacedMutating(_) => CelKind::NamespacedMutatingPolicy,
            Self::ImageValidating(_) => CelKind::ImageValidatingPolicy,
            Self::NamespacedImageValidating(_) => CelKind::NamespacedImageValidatingPolicy,
            Self::Generating(_) => CelKind::GeneratingPolicy,
            Self::NamespacedGenerating(_) => CelKind::NamespacedGeneratingPolicy,
        }
    }

    /// The policy's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Validating(policy) => &policy.metadata,
            Self::NamespacedValidating(policy) => &policy.metadata,
            Self::Mutating(policy) => &policy.metadata,
            Self::NamespacedMutating(policy) => &policy.metadata,
            Self::ImageValidating(policy) => &policy.metadata,
            Self::NamespacedImageValidating(policy) => &policy.metadata,
            Self::Generating(policy) => &policy.metadata,
            Self::NamespacedGenerating(policy) => &policy.metadata,
        }
    }

    /// Whether background scans evaluate the policy (`evaluation.background.enabled`, true
    /// when unset).
    pub fn background(&self) -> bool {
        use kyverno_api::policies::common::EvaluationConfiguration;
        use kyverno_api::policies::mutating::MutatingEvaluationConfiguration;
        match self {
            Self::Validating(policy) => {
                EvaluationConfiguration::background_enabled(policy.spec.evaluation.as_ref())
            }
            Self::NamespacedValidating(policy) => {
                EvaluationConfiguration::background_enabled(policy.spec.evaluation.as_ref())
            }
            Self::ImageValidating(policy) => {
                EvaluationConfiguration::background_enabled(policy.spec.evaluation.as_ref())
            }
            Self::NamespacedImageValidating(policy) => {
                EvaluationConfiguration::background_enabled(policy.spec.evaluation.as_ref())
            }
            Self::Mutating(policy) => {
                MutatingEvaluationConfiguration::background_enabled(policy.spec.evaluation.as_ref())
            }
            Self::NamespacedMutating(policy) => {
                MutatingEvaluationConfiguration::background_enabled(policy.spec.evaluation.as_ref())
            }
            // Their background work (generateExisting, synchronization) is the generate
            // controller's; background scans do not report on them.
            Self::Generating(_) | Self::NamespacedGenerating(_) => false,
        }
    }

    /// The policy's key: its namespace (namespaced kinds only) and name.
    pub fn key(&self) -> PolicyKey {
        let metadata = self.metadata();
        PolicyKey {
            namespace: metadata
                .namespace
                .clone()
                .filter(|_| self.kind().is_namespaced()),
            name: metadata.name.clone().unwrap_or_default(),
        }
    }

    /// The policy's admission settings: failure policy, webhook settings, and the constraints
    /// its webhook rules come from (the policy's, then those of its pod controller variants).
    fn settings(
        &self,
    ) -> (
        Option<FailurePolicy>,
        Option<&WebhookConfiguration>,
        Vec<MatchResources>,
    ) {
        fn validating(
            spec: &kyverno_api::policies::validating::Spec,
        ) -> (
            Option<FailurePolicy>,
            Option<&WebhookConfiguration>,
            Vec<MatchResources>,
        ) {
            let variants = autogen::variants(spec);
            let constraints = spec
                .match_constraints
                .iter()
                .cloned()
                .chain(
                    variants
                        .into_values()
                        .filter_map(|variant| variant.spec.match_constraints),
                )
                .collect();
            (
                spec.failure_policy,
                spec.webhook_configuration.as_ref(),
                constraints,
            )
        }
        match self {
            Self::Validating(policy) => validating(&policy.spec),
            Self::NamespacedValidating(policy) => validating(&policy.spec),
            Self::Mutating(policy) => (
                policy.spec.failure_policy,
                policy.spec.webhook_configuration.as_ref(),
                policy.spec.match_constraints.iter().cloned().collect(),
            ),
            Self::NamespacedMutating(policy) => (
                policy.spec.failure_policy,
                policy.spec.webhook_configuration.as_ref(),
                policy.spec.match_constraints.iter().cloned().collect(),
            ),
            Self::ImageValidating(policy) => (
                policy.spec.failure_policy,
                policy.spec.webhook_configuration.as_ref(),
                policy.spec.match_constraints.iter().cloned().collect(),
            ),
            Self::NamespacedImageValidating(policy) => (
                policy.spec.failure_policy,
                policy.spec.webhook_configuration.as_ref(),
                policy.spec.match_constraints.iter().cloned().collect(),
            ),
            // The kind has no failure policy: generation never blocks a request.
            Self::Generating(policy) => (
                Some(FailurePolicy::Ignore),
                policy.spec.webhook_configuration.as_ref(),
                policy.spec.match_constraints.iter().cloned().collect(),
            ),
            Self::NamespacedGenerating(policy) => (
                Some(FailurePolicy::Ignore),
                policy.spec.webhook_configuration.as_ref(),
                policy.spec.match_constraints.iter().cloned().collect(),
            ),
        }
    }

    /// Compiles the policy with the `exceptions` that name it; `provider` serves the libraries
    /// of MutatingPolicies.
    pub fn compile(
        &self,
        exceptions: &[Arc<PolicyException>],
        provider: Option<&Arc<dyn ContextProvider>>,
    ) -> Result<CachedCelPolicy, String> {
        self.compile_with_defaults(exceptions, provider, &WebhookDefaults::default())
    }

    /// [`Self::compile`], with `defaults` where the policy says nothing of its webhook.
    pub fn compile_with_defaults(
        &self,
        exceptions: &[Arc<PolicyException>],
        provider: Option<&Arc<dyn ContextProvider>>,
        defaults: &WebhookDefaults,
    ) -> Result<CachedCelPolicy, String> {
        let with_provider = |compiled: CompiledMutatingPolicy| match provider {
            Some(provider) => compiled.with_provider(Arc::clone(provider)),
            None => compiled,
        };
        let error = |error: &dyn std::fmt::Display| error.to_string();
        let key = self.key();
        let compiled = match self {
            Self::Validating(policy) => CompiledCel::Validating(
                CompiledValidatingPolicy::compile(policy, exceptions).map_err(|e| error(&e))?,
            ),
            Self::NamespacedValidating(policy) => CompiledCel::Validating(
                CompiledValidatingPolicy::compile_namespaced(policy, exceptions)
                    .map_err(|e| error(&e))?,
            ),
            Self::Mutating(policy) => CompiledCel::Mutating(with_provider(
                CompiledMutatingPolicy::compile(policy, exceptions).map_err(|e| error(&e))?,
            )),
            Self::NamespacedMutating(policy) => CompiledCel::Mutating(with_provider(
                CompiledMutatingPolicy::compile_namespaced(policy, exceptions)
                    .map_err(|e| error(&e))?,
            )),
            Self::ImageValidating(policy) => CompiledCel::ImageValidating(
                CompiledImageValidatingPolicy::compile(&key.name, None, &policy.spec, exceptions)
                    .map_err(|e| error(&e))?,
            ),
            Self::NamespacedImageValidating(policy) => CompiledCel::ImageValidating(
                CompiledImageValidatingPolicy::compile(
                    &key.name,
                    key.namespace.as_deref(),
                    &policy.spec,
                    exceptions,
                )
                .map_err(|e| error(&e))?,
            ),
            Self::Generating(policy) => CompiledCel::Generating(
                CompiledGeneratingPolicy::compile(&key.name, None, &policy.spec, exceptions)
                    .map_err(|e| error(&e))?,
            ),
            Self::NamespacedGenerating(policy) => CompiledCel::Generating(
                CompiledGeneratingPolicy::compile(
                    &key.name,
                    key.namespace.as_deref(),
                    &policy.spec,
                    exceptions,
                )
                .map_err(|e| error(&e))?,
            ),
        };
        let (failure_policy, webhook, match_constraints) = self.settings();
        let metadata = self.metadata();
        let kind_name = self.kind().name();
        let naming_exceptions = exceptions
            .iter()
            .filter(|exception| {
                exception
                    .spec
                    .policy_refs
                    .iter()
                    .any(|reference| reference.name == key.name && reference.kind == kind_name)
            })
            .cloned()
            .collect();
        Ok(CachedCelPolicy {
            kind: self.kind(),
            key,
            resource_version: metadata.resource_version.clone().unwrap_or_default(),
            annotations: metadata.annotations.clone().unwrap_or_default(),
            background: self.background(),
            failure_policy: defaults.failure_policy(failure_policy),
            timeout_seconds: defaults
                .timeout_seconds(webhook.and_then(|webhook| webhook.timeout_seconds)),
            match_constraints,
            exceptions: naming_exceptions,
            compiled,
        })
    }
}

/// A compiled CEL policy.
#[derive(Debug)]
pub enum CompiledCel {
    /// A ValidatingPolicy or NamespacedValidatingPolicy.
    Validating(CompiledValidatingPolicy),
    /// A MutatingPolicy or NamespacedMutatingPolicy.
    Mutating(CompiledMutatingPolicy),
    /// An ImageValidatingPolicy or NamespacedImageValidatingPolicy.
    ImageValidating(CompiledImageValidatingPolicy),
    /// A GeneratingPolicy or NamespacedGeneratingPolicy.
    Generating(CompiledGeneratingPolicy),
}

/// A CEL policy in the cache, with what admission needs to know about it.
#[derive(Debug)]
pub struct CachedCelPolicy {
    /// The policy's kind.
    pub kind: CelKind,
    /// The policy's namespace (namespaced kinds) and name.
    pub key: PolicyKey,
    /// `metadata.resourceVersion` (the value of the policy's label in reports).
    pub resource_version: String,
    /// The policy's annotations (category and severity of its report results).
    pub annotations: BTreeMap<String, String>,
    /// Whether background scans also evaluate it (`evaluation.background.enabled`).
    pub background: bool,
    /// `spec.failurePolicy`, `Fail` when unset (`Ignore` when forced).
    pub failure_policy: FailurePolicy,
    /// `spec.webhookConfiguration.timeoutSeconds`, the default (10) when unset.
    pub timeout_seconds: i32,
    /// The constraints its webhook rules come from: the policy's, then those of its pod
    /// controller variants.
    pub match_constraints: Vec<MatchResources>,
    /// The PolicyExceptions naming the policy (compiled into it).
    pub exceptions: Vec<Arc<PolicyException>>,
    /// The compiled policy.
    pub compiled: CompiledCel,
}

impl CachedCelPolicy {
    /// Whether admission requests are evaluated (`evaluation.admission`; MutatingPolicies
    /// that mutate existing resources are left to the background controller).
    pub fn in_admission(&self) -> bool {
        match &self.compiled {
            CompiledCel::Validating(policy) => {
                policy.admission()
                    && *policy.mode()
                        == kyverno_policy_core::celpolicy::validating::EvaluationMode::Kubernetes
            }
            CompiledCel::Mutating(policy) => policy.admission() && !policy.mutates_existing(),
            CompiledCel::ImageValidating(_) => true,
            CompiledCel::Generating(policy) => policy.settings().admission,
        }
    }

    /// What a failed validation does: the policy's `validationActions`, `Deny` when it sets
    /// none; empty for MutatingPolicies and GeneratingPolicies.
    pub fn validation_actions(&self) -> Vec<ValidationAction> {
        let actions = match &self.compiled {
            CompiledCel::Validating(policy) => policy.validation_actions(),
            CompiledCel::ImageValidating(policy) => policy.validation_actions(),
            CompiledCel::Mutating(_) | CompiledCel::Generating(_) => return Vec::new(),
        };
        if actions.is_empty() {
            vec![ValidationAction::Deny]
        } else {
            actions.to_vec()
        }
    }

    /// Whether the policy may apply to a request in `namespace` (a namespaced kind only applies
    /// in its own namespace).
    pub fn applies_in(&self, namespace: &str) -> bool {
        self.key
            .namespace
            .as_deref()
            .is_none_or(|own| own == namespace)
    }
}

/// The rules of an ImageValidatingPolicy named `policy` for its answer `validation`: none when
/// it does not apply, its rule when it was evaluated, and an `error` rule when the answer needs
/// the images' registries, which the controllers do not reach.
pub fn image_validation_rules(
    policy: &str,
    validation: Option<ImageValidation>,
) -> Vec<RuleResponse> {
    match validation {
        None => Vec::new(),
        Some(ImageValidation::Evaluated { rule, .. }) => vec![rule],
        Some(ImageValidation::NeedsRegistry { reason }) => vec![RuleResponse {
            name: policy.to_owned(),
            rule_type: RuleType::ImageVerify,
            status: RuleStatus::Error,
            message: format!(
                "image verification needs the images' registries, which are not supported: {reason}"
            ),
        }],
    }
}

/// A CEL policy's key in the cache.
pub type CelKey = (CelKind, PolicyKey);

/// The CEL policies and exceptions, as written and compiled.
#[derive(Default)]
pub struct CelState {
    sources: BTreeMap<CelKey, CelSource>,
    exceptions: BTreeMap<PolicyKey, Arc<PolicyException>>,
    compiled: BTreeMap<CelKey, Arc<CachedCelPolicy>>,
    failures: BTreeMap<CelKey, String>,
    provider: Option<Arc<dyn ContextProvider>>,
    defaults: WebhookDefaults,
}

impl std::fmt::Debug for CelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CelState")
            .field("sources", &self.sources.len())
            .field("exceptions", &self.exceptions.len())
            .finish_non_exhaustive()
    }
}

impl CelState {
    /// Makes MutatingPolicies read Kyverno's libraries through `provider` (all are compiled
    /// again).
    pub fn set_provider(&mut self, provider: Arc<dyn ContextProvider>) {
        self.provider = Some(provider);
        self.compile_all();
    }

    /// Gives the policies `defaults` where they say nothing of their webhook (all are compiled
    /// again).
    pub fn set_webhook_defaults(&mut self, defaults: WebhookDefaults) {
        self.defaults = defaults;
        self.compile_all();
    }

    /// Adds or replaces a policy.
    pub fn apply(&mut self, source: CelSource) {
        let key = (source.kind(), source.key());
        self.compile_one(&key, &source);
        self.sources.insert(key, source);
    }

    /// Removes a policy.
    pub fn delete(&mut self, key: &CelKey) {
        self.sources.remove(key);
        self.compiled.remove(key);
        self.failures.remove(key);
    }

    /// Takes a policy out of use because it cannot be read, remembering why.
    pub fn reject(&mut self, key: CelKey, message: String) {
        self.sources.remove(&key);
        self.compiled.remove(&key);
        self.failures.insert(key, message);
    }

    /// Replaces every policy of `kind`.
    pub fn replace(&mut self, kind: CelKind, sources: Vec<CelSource>) {
        self.sources.retain(|(own, _), _| *own != kind);
        self.compiled.retain(|(own, _), _| *own != kind);
        self.failures.retain(|(own, _), _| *own != kind);
        for source in sources {
            self.apply(source);
        }
    }

    /// Adds or replaces an exception (every policy is compiled again).
    pub fn apply_exception(&mut self, key: PolicyKey, exception: PolicyException) {
        self.exceptions.insert(key, Arc::new(exception));
        self.compile_all();
    }

    /// Removes an exception.
    pub fn delete_exception(&mut self, key: &PolicyKey) {
        if self.exceptions.remove(key).is_some() {
            self.compile_all();
        }
    }

    /// Replaces every exception.
    pub fn replace_exceptions(&mut self, exceptions: Vec<(PolicyKey, PolicyException)>) {
        self.exceptions = exceptions
            .into_iter()
            .map(|(key, exception)| (key, Arc::new(exception)))
            .collect();
        self.compile_all();
    }

    /// The compiled policies, in key order.
    pub fn compiled(&self) -> Vec<Arc<CachedCelPolicy>> {
        self.compiled.values().cloned().collect()
    }

    /// The PolicyExceptions, in key order.
    pub fn exceptions(&self) -> Vec<Arc<PolicyException>> {
        self.exceptions.values().cloned().collect()
    }

    /// The policies that failed to load, with why.
    pub fn failures(&self) -> &BTreeMap<CelKey, String> {
        &self.failures
    }

    /// The sources of the policies that are written, by key.
    pub fn sources(&self) -> &BTreeMap<CelKey, CelSource> {
        &self.sources
    }

    fn compile_all(&mut self) {
        let sources = std::mem::take(&mut self.sources);
        for (key, source) in &sources {
            self.compile_one(key, source);
        }
        self.sources = sources;
    }

    fn compile_one(&mut self, key: &CelKey, source: &CelSource) {
        let exceptions: Vec<Arc<PolicyException>> = self.exceptions.values().cloned().collect();
        match source.compile_with_defaults(&exceptions, self.provider.as_ref(), &self.defaults) {
            Ok(compiled) => {
                self.failures.remove(key);
                self.compiled.insert(key.clone(), Arc::new(compiled));
            }
            Err(message) => {
                tracing::warn!(kind = key.0.name(), policy = %key.1, %message, "policy skipped: it cannot be loaded");
                self.compiled.remove(key);
                self.failures.insert(key.clone(), message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn validating(name: &str, expression: &str) -> CelSource {
        CelSource::decode(
            CelKind::ValidatingPolicy,
            json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
                "metadata": {"name": name},
                "spec": {"validationActions": ["Audit"], "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
                    "validations": [{"expression": expression}]}}),
        )
        .unwrap()
    }

    #[test]
    fn compiles_policies_and_remembers_failures() {
        let mut state = CelState::default();
        state.apply(validating("ok", "has(object.metadata.labels)"));
        state.apply(validating("broken", "object.metadata.name ==="));
        let compiled = state.compiled();
        assert_eq!(compiled.len(), 1);
        assert_eq!(compiled[0].key.name, "ok");
        assert_eq!(compiled[0].validation_actions(), [ValidationAction::Audit]);
        assert_eq!(compiled[0].failure_policy, FailurePolicy::Fail);
        // The pod rule and the rules of the pod controller variants.
        assert!(compiled[0].match_constraints.len() > 1);
        let failures = state.failures();
        assert_eq!(failures.len(), 1);
        assert!(failures.contains_key(&(
            CelKind::ValidatingPolicy,
            PolicyKey {
                namespace: None,
                name: "broken".into()
            }
        )));
        state.replace(CelKind::ValidatingPolicy, Vec::new());
        assert!(state.compiled().is_empty());
        assert!(state.failures().is_empty());
    }

    #[test]
    fn image_validation_needing_a_registry_is_an_error_rule() {
        assert!(image_validation_rules("images", None).is_empty());
        let evaluated = RuleResponse {
            name: "images".into(),
            rule_type: RuleType::ImageVerify,
            status: RuleStatus::Pass,
            message: String::new(),
        };
        assert_eq!(
            image_validation_rules(
                "images",
                Some(ImageValidation::Evaluated {
                    rule: evaluated.clone(),
                    audit_annotations: BTreeMap::new(),
                })
            ),
            vec![evaluated]
        );
        let rules = image_validation_rules(
            "images",
            Some(ImageValidation::NeedsRegistry {
                reason: "no data for ghcr.io/a/b:1".into(),
            }),
        );
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].name, "images");
        assert_eq!(rules[0].rule_type, RuleType::ImageVerify);
        assert_eq!(rules[0].status, RuleStatus::Error);
        assert_eq!(
            rules[0].message,
            "image verification needs the images' registries, which are not supported: no data for ghcr.io/a/b:1"
        );
    }
}
