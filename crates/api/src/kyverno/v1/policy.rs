//! ClusterPolicy and Policy.
use std::ops::{Deref, DerefMut};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rule::Rule;

/// The specification shared by ClusterPolicy and Policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The policy's rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// Policy status (placeholder: being written).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {}

/// The specification of a ClusterPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "kyverno.io", version = "v1", kind = "ClusterPolicy", shortname = "cpol")]
#[kube(status = "PolicyStatus")]
#[serde(transparent)]
pub struct ClusterPolicySpec(pub Spec);

/// The specification of a Policy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(group = "kyverno.io", version = "v1", kind = "Policy", shortname = "pol", namespaced)]
#[kube(status = "PolicyStatus")]
#[serde(transparent)]
pub struct PolicySpec(pub Spec);

impl Deref for ClusterPolicySpec {
    type Target = Spec;
    fn deref(&self) -> &Spec {
        &self.0
    }
}
impl DerefMut for ClusterPolicySpec {
    fn deref_mut(&mut self) -> &mut Spec {
        &mut self.0
    }
}
impl Deref for PolicySpec {
    type Target = Spec;
    fn deref(&self) -> &Spec {
        &self.0
    }
}
impl DerefMut for PolicySpec {
    fn deref_mut(&mut self) -> &mut Spec {
        &mut self.0
    }
}
