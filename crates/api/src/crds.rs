//! The CustomResourceDefinitions of every kind in this crate, as `cargo xtask gen-crds` writes them.
//!
//! Each kind is modelled once, at upstream's storage version. Upstream also lists older versions
//! of most kyverno.io kinds; Kubernetes converts between versions of a CRD without a webhook only
//! when they share one schema, so those versions are listed here with the storage version's
//! schema and printer columns (see `docs/api-compatibility.md`).
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, JSONSchemaProps,
};
use kube::CustomResourceExt;

use crate::kyverno::v1::policy::{ClusterPolicy, Policy};
use crate::kyverno::v2::cleanup_policy::{CleanupPolicy, ClusterCleanupPolicy};
use crate::kyverno::v2::policy_exception::PolicyException;
use crate::kyverno::v2::update_request::UpdateRequest;
use crate::kyverno::v2beta1::global_context_entry::GlobalContextEntry;
use crate::policy_report::v1alpha2::{ClusterPolicyReport, PolicyReport};
use crate::reports::v1::{ClusterEphemeralReport, EphemeralReport};

/// An older version that upstream still lists for a CRD.
struct OlderVersion {
    crd: &'static str,
    version: &'static str,
    served: bool,
    deprecated: bool,
}

const OLDER_VERSIONS: &[OlderVersion] = &[
    OlderVersion {
        crd: "clusterpolicies.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: false,
    },
    OlderVersion {
        crd: "policies.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: false,
    },
    OlderVersion {
        crd: "policyexceptions.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: true,
    },
    OlderVersion {
        crd: "cleanuppolicies.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: true,
    },
    OlderVersion {
        crd: "clustercleanuppolicies.kyverno.io",
        version: "v2beta1",
        served: true,
        deprecated: true,
    },
    OlderVersion {
        crd: "updaterequests.kyverno.io",
        version: "v1beta1",
        served: false,
        deprecated: true,
    },
    OlderVersion {
        crd: "globalcontextentries.kyverno.io",
        version: "v2",
        served: true,
        deprecated: false,
    },
    OlderVersion {
        crd: "globalcontextentries.kyverno.io",
        version: "v2alpha1",
        served: true,
        deprecated: true,
    },
];

/// Every CRD of the API, in a stable order, with upstream's older versions added.
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
    ];
    for crd in &mut crds {
        add_object_fields(crd);
        add_older_versions(crd);
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

fn add_older_versions(crd: &mut CustomResourceDefinition) {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let Some(storage) = crd.spec.versions.iter().find(|v| v.storage).cloned() else {
        return;
    };
    for older in OLDER_VERSIONS.iter().filter(|o| o.crd == name) {
        crd.spec.versions.push(CustomResourceDefinitionVersion {
            name: older.version.to_owned(),
            served: older.served,
            storage: false,
            deprecated: older.deprecated.then_some(true),
            ..storage.clone()
        });
    }
    crd.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
}
