//! Ephemeral reports: how the admission controller and the background scanner write the results
//! of one resource (labels and annotations as upstream Kyverno sets them), and how the reports
//! controller reads them back.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{ApiResource, DynamicObject};
use kyverno_api::policy_report::v1alpha2::{
    PolicyReportResult, PolicyReportSummary, PolicyResult, PolicySeverity, Timestamp,
};
use kyverno_api::reports::v1::{ClusterEphemeralReport, EphemeralReport, EphemeralReportContent};
use kyverno_policy_core::engine::LoadedPolicy;
use kyverno_policy_core::response::{RuleResponse, RuleStatus};

/// Label: who wrote the report ([`SOURCE_ADMISSION`] or [`SOURCE_BACKGROUND_SCAN`]).
pub const LABEL_SOURCE: &str = "audit.kyverno.io/source";
/// Label: uid of the resource the report is about.
pub const LABEL_RESOURCE_UID: &str = "audit.kyverno.io/resource.uid";
/// Label: `resource.version.group` of the resource (`resource.version` for the core group).
pub const LABEL_RESOURCE_GVR: &str = "audit.kyverno.io/resource.gvr";
/// Label: API group of the resource.
pub const LABEL_RESOURCE_GROUP: &str = "audit.kyverno.io/resource.group";
/// Label: API version of the resource.
pub const LABEL_RESOURCE_VERSION: &str = "audit.kyverno.io/resource.version";
/// Label: kind of the resource.
pub const LABEL_RESOURCE_KIND: &str = "audit.kyverno.io/resource.kind";
/// Label: hash of the resource's content when it was evaluated.
pub const LABEL_RESOURCE_HASH: &str = "audit.kyverno.io/resource.hash";
/// Annotation: namespace of the resource.
pub const ANNOTATION_RESOURCE_NAMESPACE: &str = "audit.kyverno.io/resource.namespace";
/// Annotation: name of the resource.
pub const ANNOTATION_RESOURCE_NAME: &str = "audit.kyverno.io/resource.name";
/// Prefix of the label naming a ClusterPolicy evaluated for the report (value: its
/// resourceVersion).
pub const LABEL_PREFIX_CLUSTER_POLICY: &str = "cpol.kyverno.io/";
/// Prefix of the label naming a Policy evaluated for the report (value: its resourceVersion).
pub const LABEL_PREFIX_POLICY: &str = "pol.kyverno.io/";
/// The `app.kubernetes.io/managed-by` label.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] on every report Kyverno writes.
pub const MANAGED_BY_KYVERNO: &str = "kyverno";
/// [`LABEL_SOURCE`] of reports written by the admission controller.
pub const SOURCE_ADMISSION: &str = "admission";
/// [`LABEL_SOURCE`] of reports written by the background scanner.
pub const SOURCE_BACKGROUND_SCAN: &str = "background-scan";
/// Policy annotation giving the category of its results.
pub const ANNOTATION_POLICY_CATEGORY: &str = "policies.kyverno.io/category";
/// Policy annotation giving the severity of its results.
pub const ANNOTATION_POLICY_SEVERITY: &str = "policies.kyverno.io/severity";
/// Policy annotation; `"false"` turns failures into warnings.
pub const ANNOTATION_POLICY_SCORED: &str = "policies.kyverno.io/scored";
/// The `source` of results of Kyverno policies.
pub const RESULT_SOURCE_KYVERNO: &str = "kyverno";

/// Longest label name part (after the prefix) Kubernetes accepts.
const MAX_LABEL_NAME: usize = 63;

/// Why an ephemeral report cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report has no owner uid (neither in `spec.owner` nor in its labels).
    #[error("report {0} names no resource uid")]
    NoResource(String),
    /// The report's spec is not an ephemeral report's.
    #[error("report {name} cannot be read: {source}")]
    Decode {
        /// The report's name.
        name: String,
        /// What was wrong.
        source: serde_json::Error,
    },
}

/// The resource a report is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// `apiVersion` of the resource.
    pub api_version: String,
    /// Kind of the resource.
    pub kind: String,
    /// Namespace; `None` for a cluster-scoped resource.
    pub namespace: Option<String>,
    /// Name of the resource.
    pub name: String,
    /// uid of the resource.
    pub uid: String,
    /// Plural resource name (`pods`), when known.
    pub plural: String,
}

impl Subject {
    /// The subject of `resource` (an object with `apiVersion`, `kind` and `metadata`) served as
    /// `plural`; `None` when the object has no uid or name.
    pub fn of(resource: &serde_json::Value, plural: &str) -> Option<Self> {
        let text = |pointer: &str| {
            resource
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
        };
        Some(Self {
            api_version: text("/apiVersion")?.to_owned(),
            kind: text("/kind")?.to_owned(),
            namespace: text("/metadata/namespace")
                .filter(|namespace| !namespace.is_empty())
                .map(str::to_owned),
            name: text("/metadata/name")?.to_owned(),
            uid: text("/metadata/uid")?.to_owned(),
            plural: plural.to_owned(),
        })
    }

    /// The reference to the resource that results carry.
    pub fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.api_version.clone()),
            kind: Some(self.kind.clone()),
            namespace: self.namespace.clone(),
            name: Some(self.name.clone()),
            uid: Some(self.uid.clone()),
            ..ObjectReference::default()
        }
    }

    fn group_version(&self) -> (&str, &str) {
        self.api_version
            .split_once('/')
            .unwrap_or(("", &self.api_version))
    }
}

/// The results of one policy on a resource, with the policy's resourceVersion.
#[derive(Clone, Copy, Debug)]
pub struct Evaluated<'a> {
    /// The policy.
    pub policy: &'a LoadedPolicy,
    /// Its resourceVersion.
    pub resource_version: &'a str,
    /// What its rules gave.
    pub rules: &'a [RuleResponse],
}

/// The policy as results name it: `name` for a ClusterPolicy, `namespace/name` for a Policy.
pub fn policy_name(policy: &LoadedPolicy) -> String {
    match &policy.namespace {
        Some(namespace) => format!("{namespace}/{}", policy.name),
        None => policy.name.clone(),
    }
}

/// Seconds since the Unix epoch, as results' timestamps carry them.
pub fn now_timestamp() -> Timestamp {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        });
    Timestamp { seconds, nanos: 0 }
}

/// One report result for a rule of `policy` (upstream's `ToPolicyReportResult`): category and
/// severity from the policy's annotations, `process` telling how policies of this kind are run,
/// failures of unscored policies reported as warnings.
pub fn report_result(
    policy: &LoadedPolicy,
    rule: &RuleResponse,
    timestamp: Timestamp,
) -> PolicyReportResult {
    let annotation = |key: &str| policy.annotations.get(key).map(String::as_str);
    let scored = annotation(ANNOTATION_POLICY_SCORED) != Some("false");
    let mut result = match rule.status {
        RuleStatus::Pass => PolicyResult::Pass,
        RuleStatus::Fail => PolicyResult::Fail,
        RuleStatus::Warn => PolicyResult::Warn,
        RuleStatus::Error => PolicyResult::Error,
        RuleStatus::Skip => PolicyResult::Skip,
    };
    if result == PolicyResult::Fail && !scored {
        result = PolicyResult::Warn;
    }
    let process = if policy.spec.background != Some(false) {
        "background scan"
    } else if policy.spec.admission != Some(false) {
        "admission review"
    } else {
        ""
    };
    PolicyReportResult {
        source: Some(RESULT_SOURCE_KYVERNO.to_owned()),
        policy: policy_name(policy),
        rule: Some(rule.name.clone()),
        category: annotation(ANNOTATION_POLICY_CATEGORY)
            .filter(|category| !category.is_empty())
            .map(str::to_owned),
        severity: annotation(ANNOTATION_POLICY_SEVERITY).and_then(severity),
        timestamp: Some(timestamp),
        result: Some(result),
        scored: Some(scored),
        message: Some(rule.message.clone()).filter(|message| !message.is_empty()),
        properties: BTreeMap::from([("process".to_owned(), process.to_owned())]),
        ..PolicyReportResult::default()
    }
}

fn severity(text: &str) -> Option<PolicySeverity> {
    match text {
        "critical" => Some(PolicySeverity::Critical),
        "high" => Some(PolicySeverity::High),
        "medium" => Some(PolicySeverity::Medium),
        "low" => Some(PolicySeverity::Low),
        "info" => Some(PolicySeverity::Info),
        _ => None,
    }
}

/// The counts of `results` per outcome.
pub fn summarize<'a>(
    results: impl IntoIterator<Item = &'a PolicyReportResult>,
) -> PolicyReportSummary {
    let mut summary = PolicyReportSummary::default();
    for outcome in results.into_iter().filter_map(|result| result.result) {
        summary.add(outcome);
    }
    summary
}

/// The label naming `policy` in a report, when the policy's name fits in a label.
fn policy_label(policy: &LoadedPolicy) -> Option<String> {
    let prefix = if policy.namespace.is_some() {
        LABEL_PREFIX_POLICY
    } else {
        LABEL_PREFIX_CLUSTER_POLICY
    };
    (policy.name.len() <= MAX_LABEL_NAME).then(|| format!("{prefix}{}", policy.name))
}

/// The EphemeralReport (namespaced subject) or ClusterEphemeralReport (cluster-scoped subject)
/// named `name` holding the results of `evaluated` on `subject`, written by `source`. The
/// report is owned by the resource, so that it goes away with it; `hash` is the resource's
/// content hash, when known.
pub fn ephemeral_report(
    name: &str,
    subject: &Subject,
    source: &str,
    evaluated: &[Evaluated<'_>],
    hash: Option<&str>,
) -> DynamicObject {
    let timestamp = now_timestamp();
    let (group, version) = subject.group_version();
    let mut labels = BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY_KYVERNO.to_owned()),
        (LABEL_SOURCE.to_owned(), source.to_owned()),
        (LABEL_RESOURCE_UID.to_owned(), subject.uid.clone()),
        (LABEL_RESOURCE_GROUP.to_owned(), group.to_owned()),
        (LABEL_RESOURCE_VERSION.to_owned(), version.to_owned()),
        (LABEL_RESOURCE_KIND.to_owned(), subject.kind.clone()),
    ]);
    if !subject.plural.is_empty() {
        let gvr = if group.is_empty() {
            format!("{}.{version}", subject.plural)
        } else {
            format!("{}.{version}.{group}", subject.plural)
        };
        if gvr.len() <= MAX_LABEL_NAME {
            labels.insert(LABEL_RESOURCE_GVR.to_owned(), gvr);
        }
    }
    if let Some(hash) = hash {
        labels.insert(LABEL_RESOURCE_HASH.to_owned(), hash.to_owned());
    }
    let mut results = Vec::new();
    for entry in evaluated {
        match policy_label(entry.policy) {
            Some(label) => {
                labels.insert(label, entry.resource_version.to_owned());
            }
            None => tracing::warn!(
                policy = %entry.policy.name,
                "policy name too long for a report label; its stale results may linger"
            ),
        }
        results.extend(
            entry
                .rules
                .iter()
                .map(|rule| report_result(entry.policy, rule, timestamp)),
        );
    }
    let owner = OwnerReference {
        api_version: subject.api_version.clone(),
        kind: subject.kind.clone(),
        name: subject.name.clone(),
        uid: subject.uid.clone(),
        ..OwnerReference::default()
    };
    let mut annotations =
        BTreeMap::from([(ANNOTATION_RESOURCE_NAME.to_owned(), subject.name.clone())]);
    if let Some(namespace) = &subject.namespace {
        annotations.insert(ANNOTATION_RESOURCE_NAMESPACE.to_owned(), namespace.clone());
    }
    let content = EphemeralReportContent {
        summary: Some(summarize(&results)),
        owner: owner.clone(),
        results,
    };
    let resource = if subject.namespace.is_some() {
        ApiResource::erase::<EphemeralReport>(&())
    } else {
        ApiResource::erase::<ClusterEphemeralReport>(&())
    };
    let mut report = DynamicObject::new(name, &resource);
    report.metadata = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: subject.namespace.clone(),
        labels: Some(labels),
        annotations: Some(annotations),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    };
    report.data = serde_json::json!({ "spec": content });
    report
}

/// What an ephemeral report says about its resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportUpdate {
    /// The resource.
    pub subject: ObjectReference,
    /// Who wrote the report.
    pub source: String,
    /// The policies evaluated (as results name them): their earlier results on the resource are
    /// replaced by `results`.
    pub policies: BTreeSet<String>,
    /// The results, each carrying the resource reference.
    pub results: Vec<PolicyReportResult>,
}

/// Reads an EphemeralReport or ClusterEphemeralReport.
pub fn read_ephemeral_report(report: &DynamicObject) -> Result<ReportUpdate, ReportError> {
    let name = report.metadata.name.clone().unwrap_or_default();
    let namespace = report
        .metadata
        .namespace
        .clone()
        .filter(|namespace| !namespace.is_empty());
    let spec = report.data.get("spec").cloned().unwrap_or_default();
    let content: EphemeralReportContent =
        serde_json::from_value(spec).map_err(|source| ReportError::Decode {
            name: name.clone(),
            source,
        })?;
    let labels = report.metadata.labels.clone().unwrap_or_default();
    let annotations = report.metadata.annotations.clone().unwrap_or_default();
    let owner = content.owner;
    let uid = Some(owner.uid.clone())
        .filter(|uid| !uid.is_empty())
        .or_else(|| labels.get(LABEL_RESOURCE_UID).cloned())
        .ok_or_else(|| ReportError::NoResource(name.clone()))?;
    let api_version = if owner.api_version.is_empty() {
        let group = labels.get(LABEL_RESOURCE_GROUP).map_or("", String::as_str);
        let version = labels
            .get(LABEL_RESOURCE_VERSION)
            .map_or("", String::as_str);
        if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        }
    } else {
        owner.api_version
    };
    let subject = ObjectReference {
        api_version: Some(api_version),
        kind: Some(owner.kind)
            .filter(|kind| !kind.is_empty())
            .or_else(|| labels.get(LABEL_RESOURCE_KIND).cloned()),
        namespace: namespace.clone(),
        name: Some(owner.name)
            .filter(|name| !name.is_empty())
            .or_else(|| annotations.get(ANNOTATION_RESOURCE_NAME).cloned()),
        uid: Some(uid),
        ..ObjectReference::default()
    };
    let mut policies: BTreeSet<String> = labels
        .keys()
        .filter_map(|label| {
            if let Some(name) = label.strip_prefix(LABEL_PREFIX_CLUSTER_POLICY) {
                Some(name.to_owned())
            } else {
                let name = label.strip_prefix(LABEL_PREFIX_POLICY)?;
                Some(format!(
                    "{}/{name}",
                    namespace.as_deref().unwrap_or_default()
                ))
            }
        })
        .collect();
    let results: Vec<PolicyReportResult> = content
        .results
        .into_iter()
        .map(|mut result| {
            result.resources = vec![subject.clone()];
            result
        })
        .collect();
    policies.extend(results.iter().map(|result| result.policy.clone()));
    Ok(ReportUpdate {
        subject,
        source: labels.get(LABEL_SOURCE).cloned().unwrap_or_default(),
        policies,
        results,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kyverno_api::kyverno::v1::policy::ClusterPolicy;
    use kyverno_policy_core::response::RuleType;

    fn policy(annotations: &str) -> LoadedPolicy {
        let policy: ClusterPolicy = serde_json::from_str(&format!(
            r#"{{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy",
            "metadata":{{"name":"require-tier","annotations":{annotations}}},
            "spec":{{"rules":[{{"name":"check-tier","match":{{"any":[{{"resources":{{"kinds":["Pod"]}}}}]}},
            "validate":{{"pattern":{{"metadata":{{"labels":{{"tier":"?*"}}}}}}}}}}]}}}}"#
        ))
        .unwrap();
        LoadedPolicy::from_cluster_policy(policy).unwrap()
    }

    fn rule(status: RuleStatus) -> RuleResponse {
        RuleResponse {
            name: "check-tier".into(),
            rule_type: RuleType::Validation,
            status,
            message: "tier is required".into(),
        }
    }

    fn pod() -> Subject {
        Subject::of(
            &serde_json::json!({"apiVersion":"v1","kind":"Pod",
                "metadata":{"name":"bad","namespace":"default","uid":"u-1"}}),
            "pods",
        )
        .unwrap()
    }

    #[test]
    fn results_carry_category_severity_and_process() {
        let policy = policy(
            r#"{"policies.kyverno.io/category":"Best Practices","policies.kyverno.io/severity":"medium"}"#,
        );
        let result = report_result(&policy, &rule(RuleStatus::Fail), Timestamp::default());
        assert_eq!(result.policy, "require-tier");
        assert_eq!(result.rule.as_deref(), Some("check-tier"));
        assert_eq!(result.result, Some(PolicyResult::Fail));
        assert_eq!(result.category.as_deref(), Some("Best Practices"));
        assert_eq!(result.severity, Some(PolicySeverity::Medium));
        assert_eq!(result.source.as_deref(), Some("kyverno"));
        assert_eq!(result.properties["process"], "background scan");
    }

    #[test]
    fn unscored_failures_are_warnings() {
        let policy = policy(r#"{"policies.kyverno.io/scored":"false"}"#);
        let result = report_result(&policy, &rule(RuleStatus::Fail), Timestamp::default());
        assert_eq!(result.result, Some(PolicyResult::Warn));
        assert_eq!(result.severity, None);
    }

    #[test]
    fn a_written_report_reads_back() {
        let policy = policy("{}");
        let rules = [rule(RuleStatus::Fail)];
        let report = ephemeral_report(
            "u-1",
            &pod(),
            SOURCE_BACKGROUND_SCAN,
            &[Evaluated {
                policy: &policy,
                resource_version: "42",
                rules: &rules,
            }],
            Some("abc"),
        );
        assert_eq!(report.types.as_ref().unwrap().kind, "EphemeralReport");
        let labels = report.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["cpol.kyverno.io/require-tier"], "42");
        assert_eq!(labels[LABEL_RESOURCE_GVR], "pods.v1");
        assert_eq!(report.data["spec"]["summary"]["fail"], 1);
        let update = read_ephemeral_report(&report).unwrap();
        assert_eq!(update.source, SOURCE_BACKGROUND_SCAN);
        assert_eq!(update.subject.uid.as_deref(), Some("u-1"));
        assert_eq!(update.subject.namespace.as_deref(), Some("default"));
        assert_eq!(
            update.policies.into_iter().collect::<Vec<_>>(),
            ["require-tier"]
        );
        assert_eq!(update.results.len(), 1);
        assert_eq!(update.results[0].resources, [pod().reference()]);
    }

    #[test]
    fn namespaced_policy_labels_name_the_report_namespace() {
        let mut report = ephemeral_report("r", &pod(), SOURCE_ADMISSION, &[], None);
        report
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("pol.kyverno.io/team".into(), "7".into());
        let update = read_ephemeral_report(&report).unwrap();
        assert!(update.policies.contains("default/team"));
        assert!(update.results.is_empty());
    }

    #[test]
    fn cluster_scoped_subjects_get_cluster_reports() {
        let class = Subject::of(
            &serde_json::json!({"apiVersion":"networking.k8s.io/v1","kind":"IngressClass",
                "metadata":{"name":"nginx","uid":"u-2"}}),
            "ingressclasses",
        )
        .unwrap();
        let report = ephemeral_report("u-2", &class, SOURCE_BACKGROUND_SCAN, &[], None);
        assert_eq!(
            report.types.as_ref().unwrap().kind,
            "ClusterEphemeralReport"
        );
        assert_eq!(report.metadata.namespace, None);
        let labels = report.metadata.labels.as_ref().unwrap();
        assert_eq!(
            labels[LABEL_RESOURCE_GVR],
            "ingressclasses.v1.networking.k8s.io"
        );
        assert_eq!(labels[LABEL_RESOURCE_GROUP], "networking.k8s.io");
    }
}
