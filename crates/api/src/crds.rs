//! The CustomResourceDefinitions of every kind in this crate, as `cargo xtask gen-crds` writes them.
//!
//! Each kind is modelled once, at upstream's storage version. Upstream also serves other versions
//! of most kinds (older ones of kyverno.io, `v1alpha1` and `v1` of policies.kyverno.io);
//! Kubernetes converts between versions of a CRD without a webhook only when they share one
//! schema, so those versions are listed here with the storage version's schema and printer
//! columns (see `docs/api-compatibility.md`).
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, JSONSchemaProps,
};
use kube::CustomResourceExt;

use crate::kyverno::v1::policy::{ClusterPolicy, Policy};
use crate::kyverno::v2::cleanup_policy::{CleanupPolicy, ClusterCleanupPolicy};
use crate::kyverno::v2::policy_exception::PolicyException;
use crate::kyverno::v2::update_request::UpdateRequest;
use crate::kyverno::v2beta1::global_context_entry::GlobalContextEntry;
use crate::policies::deleting::{DeletingPolicy, NamespacedDeletingPolicy};
use crate::policies::exception::PolicyException as CelPolicyException;
use crate::policies::generating::{GeneratingPolicy, NamespacedGeneratingPolicy};
use crate::policies::image_validating::{ImageValidatingPolicy, NamespacedImageValidatingPolicy};
use crate::policies::mutating::{MutatingPolicy, NamespacedMutatingPolicy};
use crate::policies::validating::{NamespacedValidatingPolicy, ValidatingPolicy};
use crate::policy_report::v1alpha2::{ClusterPolicyReport, PolicyReport};
use crate::reports::v1::{ClusterEphemeralReport, EphemeralReport};

/// A version besides the storage version that upstream lists for a CRD.
struct ExtraVersion {
    crd: &'static str,
    version: &'static str,
    served: bool,
    deprecated: bool,
}

const EXTRA_VERSIONS: &[ExtraVersion] = &[
    ExtraVersion {
        crd: "clusterpolicies.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "policies.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "policyexceptions.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "cleanuppolicies.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "clustercleanuppolicies.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "updaterequests.kyverno.io",
        version: "v1beta1",
        served: false,
        deprecated: true,
    },
    ExtraVersion {
        crd: "globalcontextentries.kyverno.io",
        version: "v2",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "globalcontextentries.kyverno.io",
        version: "v2alpha1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "validatingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "validatingpolicies.policies.kyverno.io",
        version: "v1alpha1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "mutatingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "mutatingpolicies.policies.kyverno.io",
        version: "v1alpha1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "generatingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "generatingpolicies.policies.kyverno.io",
        version: "v1alpha1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "deletingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "deletingpolicies.policies.kyverno.io",
        version: "v1alpha1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "imagevalidatingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "imagevalidatingpolicies.policies.kyverno.io",
        version: "v1alpha1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "policyexceptions.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "policyexceptions.policies.kyverno.io",
        version: "v1alpha1",
        served: true,
        deprecated: true,
    },
    ExtraVersion {
        crd: "namespacedvalidatingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "namespacedmutatingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "namespacedgeneratingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "namespaceddeletingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
    ExtraVersion {
        crd: "namespacedimagevalidatingpolicies.policies.kyverno.io",
        version: "v1",
        served: true,
        deprecated: false,
    },
];

/// Every CRD of the API, in a stable order, with upstream's other versions added.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        ClusterPolicy::crd(),
        Policy::crd(),
        PolicyException::crd(),
        UpdateRequest::crd(),
        CleanupPolicy::crd(),
        ClusterCleanupPolicy::crd(),
        GlobalContextEntry::crd(),
        PolicyReport::crd(),
        ClusterPolicyReport::crd(),
        EphemeralReport::crd(),
        ClusterEphemeralReport::crd(),
        ValidatingPolicy::crd(),
        NamespacedValidatingPolicy::crd(),
        CelPolicyException::crd(),
        MutatingPolicy::crd(),
        NamespacedMutatingPolicy::crd(),
        GeneratingPolicy::crd(),
        NamespacedGeneratingPolicy::crd(),
        DeletingPolicy::crd(),
        NamespacedDeletingPolicy::crd(),
        ImageValidatingPolicy::crd(),
        NamespacedImageValidatingPolicy::crd(),
    ];
    for crd in &mut crds {
        add_object_fields(crd);
        add_extra_versions(crd);
    }
    crds
}

/// Declares `apiVersion`, `kind` and `metadata` at the top of every version's schema, as
/// controller-gen does; kube leaves them implicit.
fn add_object_fields(crd: &mut CustomResourceDefinition) {
    let field = |type_: &str, description: &str| JSONSchemaProps {
        type_: Some(type_.to_owned()),
        description: Some(description.to_owned()),
        ..JSONSchemaProps::default()
    };
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let properties = schema.properties.get_or_insert_with(Default::default);
        properties
            .entry("apiVersion".to_owned())
            .or_insert_with(|| {
                field(
                    "string",
                    "The versioned schema of this representation of an object.",
                )
            });
        properties
            .entry("kind".to_owned())
            .or_insert_with(|| field("string", "The REST resource this object represents."));
        properties
            .entry("metadata".to_owned())
            .or_insert_with(|| field("object", "Standard object metadata."));
    }
}

fn add_extra_versions(crd: &mut CustomResourceDefinition) {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let Some(storage) = crd.spec.versions.iter().find(|v| v.storage).cloned() else {
        return;
    };
    for extra in EXTRA_VERSIONS.iter().filter(|o| o.crd == name) {
        crd.spec.versions.push(CustomResourceDefinitionVersion {
            name: extra.version.to_owned(),
            served: extra.served,
            storage: false,
            deprecated: extra.deprecated.then_some(true),
            ..storage.clone()
        });
    }
    crd.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
}
