//! The CustomResourceDefinitions of every kind in this crate, as `cargo xtask gen-crds` writes them.
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::kyverno::v1::policy::{ClusterPolicy, Policy};

/// Every CRD of the API, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![ClusterPolicy::crd(), Policy::crd()]
}
