//! `wgpolicyk8s.io/v1alpha2`: PolicyReport and ClusterPolicyReport, and the result types that
//! `reports.kyverno.io` ephemeral reports share.
use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CrdDefinition, PrinterColumn, TypedObject};
use crate::newtype::deref_to;

/// API group of the policy report kinds.
pub const GROUP: &str = "wgpolicyk8s.io";
/// API version of the policy report kinds.
pub const VERSION: &str = "v1alpha2";
/// `apiVersion` of the policy report kinds.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";

/// Outcome of evaluating one policy rule against a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyResult {
    /// The resource satisfies the rule.
    Pass,
    /// The resource violates the rule.
    Fail,
    /// The resource violates a rule that is not scored (audit-only warning).
    Warn,
    /// The rule could not be evaluated.
    Error,
    /// The rule was not applied to the resource.
    Skip,
}

/// How critical a failing result is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicySeverity {
    /// Critical severity.
    Critical,
    /// High severity.
    High,
    /// Low severity.
    Low,
    /// Medium severity.
    Medium,
    /// Informational only.
    Info,
}

/// A point in time as seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timestamp {
    /// Whole seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Non-negative nanoseconds within the second (0 to 999,999,999).
    pub nanos: i32,
}

/// Number of results of each outcome in a report. Every count is written, zero or not; a missing
/// count reads as zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = without_property_defaults)]
pub struct PolicyReportSummary {
    /// Results whose resource satisfied the rule.
    #[serde(default)]
    pub pass: i64,
    /// Results whose resource violated the rule.
    #[serde(default)]
    pub fail: i64,
    /// Results whose resource violated a non-scored rule.
    #[serde(default)]
    pub warn: i64,
    /// Results whose rule could not be evaluated.
    #[serde(default)]
    pub error: i64,
    /// Results whose rule was not applied.
    #[serde(default)]
    pub skip: i64,
}

impl PolicyReportSummary {
    /// Counts one more result of the given outcome.
    pub fn add(&mut self, result: PolicyResult) {
        match result {
            PolicyResult::Pass => self.pass += 1,
            PolicyResult::Fail => self.fail += 1,
            PolicyResult::Warn => self.warn += 1,
            PolicyResult::Error => self.error += 1,
            PolicyResult::Skip => self.skip += 1,
        }
    }
}

/// Drops the `default: 0` schemars derives from `#[serde(default)]`: upstream declares no
/// defaults, so the API server must store a summary as written.
fn without_property_defaults(schema: &mut Schema) {
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for property in properties.values_mut() {
            if let Some(property) = property.as_object_mut() {
                property.remove("default");
            }
        }
    }
}

/// The result of one policy rule for the checked resources.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReportResult {
    /// The policy engine that produced the result (e.g. `kyverno`); overrides the report's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Name of the policy.
    pub policy: String,
    /// Name of the rule within the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Category of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// How critical a failure of this rule is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<PolicySeverity>,
    /// When the result was produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// Outcome of the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<PolicyResult>,
    /// Whether the result counts towards a score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scored: Option<bool>,
    /// The checked resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ObjectReference>,
    /// Label selector of the checked resources, instead of `resources`. With neither, the
    /// result is about the report's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_selector: Option<LabelSelector>,
    /// Short human-readable message about the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Extra key/value details about the result.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// The content of a PolicyReport or ClusterPolicyReport: what it is about, its results and
/// their summary. These fields sit at the top level of the object, beside `metadata`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReportContent {
    /// The object the report is about (e.g. a Deployment, Namespace or Node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ObjectReference>,
    /// Selects several scope objects (e.g. Pods); use either this or `scope`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_selector: Option<LabelSelector>,
    /// Counts of the results per outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<PolicyReportSummary>,
    /// The policy rule results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<PolicyReportResult>,
}

/// Printer columns shared by PolicyReport and ClusterPolicyReport.
const PRINTER_COLUMNS: &[PrinterColumn] = &[
    column("Kind", "string", ".scope.kind"),
    column("Name", "string", ".scope.name"),
    column("Pass", "integer", ".summary.pass"),
    column("Fail", "integer", ".summary.fail"),
    column("Warn", "integer", ".summary.warn"),
    column("Error", "integer", ".summary.error"),
    column("Skip", "integer", ".summary.skip"),
    column("Age", "date", ".metadata.creationTimestamp"),
];

/// A printer column shown by default.
const fn column(name: &'static str, type_: &'static str, json_path: &'static str) -> PrinterColumn {
    PrinterColumn {
        name,
        type_,
        json_path,
        priority: None,
    }
}

/// Defines a report kind: `metadata` plus the flattened [`PolicyReportContent`], with the
/// `kube` resource and CRD plumbing.
macro_rules! report_kind {
    (
        $(#[$doc:meta])*
        $name:ident {
            kind: $kind:literal,
            plural: $plural:literal,
            singular: $singular:literal,
            short_name: $short:literal,
            namespaced: $namespaced:literal,
            scope: $scope:ty $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Standard object metadata.
            #[schemars(skip)]
            pub metadata: ObjectMeta,
            /// Scope, results and summary, at the top level of the object.
            #[serde(flatten)]
            pub content: PolicyReportContent,
        }

        impl $name {
            /// Names, scope and printer columns of the CRD.
            const DEFINITION: CrdDefinition = CrdDefinition {
                group: GROUP,
                version: VERSION,
                kind: $kind,
                plural: $plural,
                singular: $singular,
                short_names: &[$short],
                categories: &[],
                namespaced: $namespaced,
                printer_columns: PRINTER_COLUMNS,
            };

            /// A report with the given name and content.
            pub fn new(name: &str, content: PolicyReportContent) -> Self {
                Self {
                    metadata: ObjectMeta {
                        name: Some(name.to_string()),
                        ..Default::default()
                    },
                    content,
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                TypedObject {
                    api_version: API_VERSION,
                    kind: $kind,
                    metadata: &self.metadata,
                    content: &self.content,
                }
                .serialize(ser)
            }
        }

        deref_to!(PolicyReportContent => $name.content);

        impl kube::core::Resource for $name {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                GROUP.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                VERSION.into()
            }
            fn api_version(_: &()) -> Cow<'_, str> {
                API_VERSION.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }

        impl kube::CustomResourceExt for $name {
            fn crd() -> CustomResourceDefinition {
                Self::DEFINITION.crd::<Self>()
            }
            fn crd_name() -> &'static str {
                concat!($plural, ".wgpolicyk8s.io")
            }
            fn api_resource() -> kube::core::ApiResource {
                kube::core::ApiResource::erase::<Self>(&())
            }
            fn shortnames() -> &'static [&'static str] {
                &[$short]
            }
        }
    };
}

report_kind! {
    /// Policy results for namespaced resources, kept in the resources' namespace.
    PolicyReport {
        kind: "PolicyReport",
        plural: "policyreports",
        singular: "policyreport",
        short_name: "polr",
        namespaced: true,
        scope: NamespaceResourceScope,
    }
}

report_kind! {
    /// Policy results for cluster-scoped resources.
    ClusterPolicyReport {
        kind: "ClusterPolicyReport",
        plural: "clusterpolicyreports",
        singular: "clusterpolicyreport",
        short_name: "cpolr",
        namespaced: false,
        scope: ClusterResourceScope,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    #[test]
    fn report_round_trips_with_top_level_fields() {
        let doc = json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": "PolicyReport",
            "metadata": {"name": "r", "namespace": "ns"},
            "scope": {"apiVersion": "v1", "kind": "Pod", "name": "p", "namespace": "ns"},
            "results": [{
                "policy": "p", "rule": "r", "result": "warn", "severity": "critical",
                "scored": false, "source": "kyverno",
                "timestamp": {"seconds": 1700000000, "nanos": 0},
                "properties": {"process": "background scan"},
            }],
            "summary": {"pass": 0, "fail": 0, "warn": 1, "error": 0, "skip": 0},
        });
        let report: PolicyReport = serde_json::from_value(doc.clone()).expect("deserializes");
        assert_eq!(report.results[0].result, Some(PolicyResult::Warn));
        assert_eq!(report.results[0].severity, Some(PolicySeverity::Critical));
        assert_eq!(report.results[0].scored, Some(false));
        assert_eq!(serde_json::to_value(&report).expect("serializes"), doc);
    }

    #[test]
    fn summary_fills_missing_counts_with_zero() {
        let summary: PolicyReportSummary =
            serde_json::from_value(json!({"fail": 2})).expect("deserializes");
        assert_eq!(summary.fail, 2);
        assert_eq!(
            serde_json::to_value(summary).expect("serializes"),
            json!({"pass": 0, "fail": 2, "warn": 0, "error": 0, "skip": 0})
        );
    }

    #[test]
    fn unknown_result_is_rejected() {
        let err =
            serde_json::from_value::<PolicyReportResult>(json!({"policy": "p", "result": "Pass"}));
        assert!(err.is_err());
    }

    #[test]
    fn cluster_report_serializes_its_own_kind() {
        let value = serde_json::to_value(ClusterPolicyReport::new(
            "c",
            PolicyReportContent::default(),
        ))
        .expect("serializes");
        assert_eq!(
            value,
            json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "ClusterPolicyReport", "metadata": {"name": "c"}})
        );
    }

    #[test]
    fn crd_names_scope_and_columns() {
        let crd = PolicyReport::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some(PolicyReport::crd_name()));
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["polr".to_string()]));
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Kind", "Name", "Pass", "Fail", "Warn", "Error", "Skip", "Age"
            ]
        );
        let cluster = ClusterPolicyReport::crd();
        assert_eq!(cluster.spec.scope, "Cluster");
        assert_eq!(
            cluster.metadata.name.as_deref(),
            Some("clusterpolicyreports.wgpolicyk8s.io")
        );
    }

    #[test]
    fn crd_schema_is_structural() {
        let schema = serde_json::to_value(&PolicyReport::crd().spec.versions[0].schema)
            .expect("serializes")
            .to_string();
        for forbidden in [
            "$ref",
            "anyOf",
            "oneOf",
            "allOf",
            "definitions",
            "$defs",
            "default",
        ] {
            let key = format!("\"{forbidden}\":");
            assert!(!schema.contains(&key), "schema contains {key} {schema}");
        }
    }
}
