//! A ClusterPolicy or Policy ready for evaluation: checked, with its autogen rules computed.
use std::collections::BTreeMap;

use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy, Spec};
use kyverno_api::kyverno::v1::rule::Rule;

use crate::celpolicy::cel_rule::CompiledCelRules;

/// Why a policy cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// A field of the policy is invalid.
    #[error("policy {policy}: {path}: {message}")]
    Invalid {
        /// The policy's name.
        policy: String,
        /// The offending field, such as `spec.rules[0].validate.pattern`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A policy ready for evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedPolicy {
    /// The policy's name.
    pub name: String,
    /// The namespace of a (namespaced) Policy; `None` for a ClusterPolicy.
    pub namespace: Option<String>,
    /// The policy's annotations (autogen controllers, categories, severity...).
    pub annotations: BTreeMap<String, String>,
    /// The policy's spec as written.
    pub spec: Spec,
    /// The rules to evaluate: the spec's rules followed by the autogen rules.
    pub rules: Vec<Rule>,
    /// The CEL programs of the `validate.cel` rules, compiled at load.
    pub cel_rules: CompiledCelRules,
}

impl LoadedPolicy {
    /// Loads a ClusterPolicy.
    pub fn from_cluster_policy(policy: ClusterPolicy) -> Result<Self, PolicyLoadError> {
        Self::new(policy.metadata, None, policy.spec.0)
    }

    /// Loads a namespaced Policy.
    pub fn from_policy(policy: Policy) -> Result<Self, PolicyLoadError> {
        let namespace = policy
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        Self::new(policy.metadata, Some(namespace), policy.spec.0)
    }

    fn new(
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        namespace: Option<String>,
        spec: Spec,
    ) -> Result<Self, PolicyLoadError> {
        let name = metadata.name.unwrap_or_default();
        let annotations = metadata.annotations.unwrap_or_default();
        let rules = crate::autogen::compute_rules(&spec, &annotations);
        let cel_rules = CompiledCelRules::compile(&rules, spec.rules.len()).map_err(|error| {
            PolicyLoadError::Invalid {
                policy: name.clone(),
                path: error.path,
                message: error.source.to_string(),
            }
        })?;
        Ok(Self {
            name,
            namespace,
            annotations,
            spec,
            rules,
            cel_rules,
        })
    }

    /// How test files and reports name the policy: `name`, or `namespace/name` for a Policy.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.clone(),
        }
    }
}
