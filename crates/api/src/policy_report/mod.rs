//! The `wgpolicyk8s.io` API group: PolicyReport and ClusterPolicyReport.
//!
//! These kinds keep their content at the top level of the object instead of under `spec`, so
//! `kube::CustomResource` does not fit them. This module also holds the plumbing that builds the
//! CRD of such a kind by hand: the same schema generator settings `kube::CustomResource` uses
//! (structural schema, no `$ref`, `nullable` instead of `anyOf` for options), plus the names,
//! scope and printer columns.
pub mod v1alpha2;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceValidation,
    JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;

/// One `additionalPrinterColumns` entry of a hand-built CRD.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PrinterColumn {
    /// Column header.
    pub name: &'static str,
    /// OpenAPI type of the column (`string`, `integer`, `date`...).
    pub type_: &'static str,
    /// JSONPath of the value shown, relative to the object.
    pub json_path: &'static str,
    /// `1` hides the column unless `kubectl get -o wide`.
    pub priority: Option<i32>,
}

/// Everything but the schema that a hand-built, single-version CRD needs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CrdDefinition {
    /// API group, e.g. `wgpolicyk8s.io`.
    pub group: &'static str,
    /// The (only) version served and stored.
    pub version: &'static str,
    /// Kind, e.g. `PolicyReport`.
    pub kind: &'static str,
    /// Plural resource name, e.g. `policyreports`.
    pub plural: &'static str,
    /// Singular resource name, e.g. `policyreport`.
    pub singular: &'static str,
    /// Short names for kubectl, e.g. `polr`.
    pub short_names: &'static [&'static str],
    /// Categories for kubectl (`kubectl get kyverno`).
    pub categories: &'static [&'static str],
    /// `true` for `Namespaced`, `false` for `Cluster` scope.
    pub namespaced: bool,
    /// Additional printer columns, in display order.
    pub printer_columns: &'static [PrinterColumn],
}

impl CrdDefinition {
    /// The name of the CRD object: `<plural>.<group>`.
    pub(crate) fn crd_name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }

    /// Builds the CRD, with the schema of `T` as the version's OpenAPI schema.
    pub(crate) fn crd<T: JsonSchema>(&self) -> CustomResourceDefinition {
        let owned = |names: &[&str]| -> Option<Vec<String>> {
            (!names.is_empty()).then(|| names.iter().map(|n| n.to_string()).collect())
        };
        let columns: Vec<CustomResourceColumnDefinition> = self
            .printer_columns
            .iter()
            .map(|c| CustomResourceColumnDefinition {
                name: c.name.into(),
                type_: c.type_.into(),
                json_path: c.json_path.into(),
                priority: c.priority,
                ..Default::default()
            })
            .collect();
        CustomResourceDefinition {
            metadata: ObjectMeta {
                name: Some(self.crd_name()),
                ..Default::default()
            },
            spec: CustomResourceDefinitionSpec {
                group: self.group.into(),
                names: CustomResourceDefinitionNames {
                    categories: owned(self.categories),
                    kind: self.kind.into(),
                    plural: self.plural.into(),
                    short_names: owned(self.short_names),
                    singular: Some(self.singular.into()),
                    ..Default::default()
                },
                scope: if self.namespaced {
                    "Namespaced"
                } else {
                    "Cluster"
                }
                .into(),
                versions: vec![CustomResourceDefinitionVersion {
                    additional_printer_columns: (!columns.is_empty()).then_some(columns),
                    name: self.version.into(),
                    schema: Some(CustomResourceValidation {
                        open_api_v3_schema: Some(structural_schema::<T>()),
                    }),
                    served: true,
                    storage: true,
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// The schema of `T` as a Kubernetes structural schema, generated with the settings
/// `kube::CustomResource` uses: everything inlined, no `$schema`, `nullable` options.
pub(crate) fn structural_schema<T: JsonSchema>() -> JSONSchemaProps {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>())
        .and_then(serde_json::from_value)
        .expect("schemars output is a valid JSONSchemaProps")
}

/// Serialized form of a kind without `spec`: `apiVersion` and `kind` first, then `metadata`,
/// then the kind's top-level fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TypedObject<'a, C> {
    /// `<group>/<version>`.
    pub api_version: &'a str,
    /// The kind.
    pub kind: &'a str,
    /// Object metadata.
    pub metadata: &'a ObjectMeta,
    /// Everything else, at the top level.
    #[serde(flatten)]
    pub content: &'a C,
}
