//! `reports.kyverno.io/v1`: EphemeralReport and ClusterEphemeralReport.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::newtype::deref_to;
use crate::policy_report::v1alpha2::{PolicyReportResult, PolicyReportSummary};

/// The specification shared by EphemeralReport and ClusterEphemeralReport.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EphemeralReportContent {
    /// The resource the report is about (e.g. a Deployment, Namespace or Node).
    pub owner: OwnerReference,
    /// Counts of the results per outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<PolicyReportSummary>,
    /// The policy rule results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<PolicyReportResult>,
}

/// The specification of an EphemeralReport.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "reports.kyverno.io",
    version = "v1",
    kind = "EphemeralReport",
    namespaced
)]
#[kube(shortname = "ephr", category = "kyverno")]
#[kube(
    doc = "Policy results for one namespaced resource, before they are aggregated into a PolicyReport."
)]
#[kube(
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/source']"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Group","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/resource\\.group']"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/resource\\.kind']"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Owner","type":"string","jsonPath":".metadata.annotations['audit\\.kyverno\\.io/resource\\.name']"}"#
)]
#[kube(printcolumn = r#"{"name":"Pass","type":"integer","jsonPath":".spec.summary.pass"}"#)]
#[kube(printcolumn = r#"{"name":"Fail","type":"integer","jsonPath":".spec.summary.fail"}"#)]
#[kube(printcolumn = r#"{"name":"Warn","type":"integer","jsonPath":".spec.summary.warn"}"#)]
#[kube(printcolumn = r#"{"name":"Error","type":"integer","jsonPath":".spec.summary.error"}"#)]
#[kube(printcolumn = r#"{"name":"Skip","type":"integer","jsonPath":".spec.summary.skip"}"#)]
#[kube(printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#)]
#[kube(
    printcolumn = r#"{"name":"Uid","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/resource\\.uid']","priority":1}"#
)]
#[kube(
    printcolumn = r#"{"name":"Hash","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/resource\\.hash']","priority":1}"#
)]
#[serde(transparent)]
pub struct EphemeralReportSpec(pub EphemeralReportContent);

/// The specification of a ClusterEphemeralReport.
// Upstream shows the Uid column by default here (no priority), unlike EphemeralReport.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "reports.kyverno.io",
    version = "v1",
    kind = "ClusterEphemeralReport"
)]
#[kube(shortname = "cephr", category = "kyverno")]
#[kube(
    doc = "Policy results for one cluster-scoped resource, before they are aggregated into a ClusterPolicyReport."
)]
#[kube(
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/source']"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Group","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/resource\\.group']"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/resource\\.kind']"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Owner","type":"string","jsonPath":".metadata.annotations['audit\\.kyverno\\.io/resource\\.name']"}"#
)]
#[kube(printcolumn = r#"{"name":"Pass","type":"integer","jsonPath":".spec.summary.pass"}"#)]
#[kube(printcolumn = r#"{"name":"Fail","type":"integer","jsonPath":".spec.summary.fail"}"#)]
#[kube(printcolumn = r#"{"name":"Warn","type":"integer","jsonPath":".spec.summary.warn"}"#)]
#[kube(printcolumn = r#"{"name":"Error","type":"integer","jsonPath":".spec.summary.error"}"#)]
#[kube(printcolumn = r#"{"name":"Skip","type":"integer","jsonPath":".spec.summary.skip"}"#)]
#[kube(printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#)]
#[kube(
    printcolumn = r#"{"name":"Uid","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/resource\\.uid']"}"#
)]
#[kube(
    printcolumn = r#"{"name":"Hash","type":"string","jsonPath":".metadata.labels['audit\\.kyverno\\.io/resource\\.hash']","priority":1}"#
)]
#[serde(transparent)]
pub struct ClusterEphemeralReportSpec(pub EphemeralReportContent);

deref_to!(EphemeralReportContent => EphemeralReportSpec, ClusterEphemeralReportSpec);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_report::v1alpha2::PolicyResult;
    use kube::CustomResourceExt;
    use serde_json::json;

    #[test]
    fn ephemeral_report_round_trips() {
        let doc = json!({
            "apiVersion": "reports.kyverno.io/v1",
            "kind": "EphemeralReport",
            "metadata": {"name": "uid-1", "namespace": "ns", "labels": {"audit.kyverno.io/source": "admission"}},
            "spec": {
                "owner": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "uid-1"},
                "results": [{"policy": "p", "rule": "r", "result": "fail", "scored": true,
                             "properties": {"process": "admission review"}}],
                "summary": {"pass": 0, "fail": 1, "warn": 0, "error": 0, "skip": 0},
            },
        });
        let report: EphemeralReport = serde_json::from_value(doc.clone()).expect("deserializes");
        assert_eq!(report.spec.results[0].result, Some(PolicyResult::Fail));
        assert_eq!(report.spec.owner.kind, "Pod");
        assert_eq!(serde_json::to_value(&report).expect("serializes"), doc);
    }

    #[test]
    fn crd_printer_columns_match_upstream() {
        let crd = EphemeralReport::crd();
        assert_eq!(crd.spec.names.categories, Some(vec!["kyverno".to_string()]));
        let columns = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        assert_eq!(columns.len(), 12);
        assert_eq!(
            columns[0].json_path,
            r".metadata.labels['audit\.kyverno\.io/source']"
        );
        assert_eq!(
            (columns[10].name.as_str(), columns[10].priority),
            ("Uid", Some(1))
        );
        let cluster = ClusterEphemeralReport::crd();
        assert_eq!(cluster.spec.scope, "Cluster");
        let columns = cluster.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default();
        assert_eq!(
            (columns[10].name.as_str(), columns[10].priority),
            ("Uid", None)
        );
        assert_eq!(
            (columns[11].name.as_str(), columns[11].priority),
            ("Hash", Some(1))
        );
    }
}
