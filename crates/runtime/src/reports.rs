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
use md5::{Digest, Md5};

use crate::cel_policies::{CachedCelPolicy, CelKind};
use crate::policy_cache::PolicyKind;
use serde_json::Value;

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
/// Prefix of the label naming a (Namespaced)ValidatingPolicy evaluated for the report.
pub const LABEL_PREFIX_VALIDATING_POLICY: &str = "vpol.kyverno.io/";
/// Prefix of the label naming a (Namespaced)ImageValidatingPolicy evaluated for the report.
pub const LABEL_PREFIX_IMAGE_VALIDATING_POLICY: &str = "ivpol.kyverno.io/";
/// Prefix of the label naming a (Namespaced)MutatingPolicy evaluated for the report.
pub const LABEL_PREFIX_MUTATING_POLICY: &str = "mpol.kyverno.io/";
/// Prefix of the label naming a (Namespaced)GeneratingPolicy evaluated for the report.
pub const LABEL_PREFIX_GENERATING_POLICY: &str = "gpol.kyverno.io/";
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
/// The `source` of results of (Namespaced)ValidatingPolicies.
pub const RESULT_SOURCE_VALIDATING_POLICY: &str = "KyvernoValidatingPolicy";
/// The `source` of results of (Namespaced)ImageValidatingPolicies.
pub const RESULT_SOURCE_IMAGE_VALIDATING_POLICY: &str = "KyvernoImageValidatingPolicy";
/// The `source` of results of (Namespaced)MutatingPolicies.
pub const RESULT_SOURCE_MUTATING_POLICY: &str = "MutatingPolicy";
/// The `source` of results of (Namespaced)GeneratingPolicies.
pub const RESULT_SOURCE_GENERATING_POLICY: &str = "GeneratingPolicy";

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

/// A policy of any kind as reports and Events name it.
#[derive(Clone, Copy, Debug)]
pub struct ReportedPolicy<'a> {
    /// The policy's kind.
    pub kind: PolicyKind,
    /// Its name.
    pub name: &'a str,
    /// Its namespace (namespaced kinds only).
    pub namespace: Option<&'a str>,
    /// Its annotations (category, severity, scored).
    pub annotations: &'a BTreeMap<String, String>,
    /// Whether background scans evaluate it.
    pub background: bool,
    /// Whether admission requests are evaluated with it.
    pub admission: bool,
}

impl<'a> ReportedPolicy<'a> {
    /// A ClusterPolicy or Policy.
    pub fn kyverno(policy: &'a LoadedPolicy) -> Self {
        Self {
            kind: if policy.namespace.is_some() {
                PolicyKind::Policy
            } else {
                PolicyKind::ClusterPolicy
            },
            name: &policy.name,
            namespace: policy.namespace.as_deref(),
            annotations: &policy.annotations,
            background: policy.spec.background != Some(false),
            admission: policy.spec.admission != Some(false),
        }
    }

    /// A `policies.kyverno.io` policy of the cache (evaluated at admission).
    pub fn cel(policy: &'a CachedCelPolicy) -> Self {
        Self {
            kind: PolicyKind::Cel(policy.kind),
            name: &policy.key.name,
            namespace: policy.key.namespace.as_deref(),
            annotations: &policy.annotations,
            background: policy.background,
            admission: true,
        }
    }

    /// The name results carry: `namespace/name` for namespaced kinds.
    pub fn result_name(&self) -> String {
        match self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.to_owned(),
        }
    }

    /// The `source` of its results.
    pub fn result_source(&self) -> &'static str {
        result_source_of(self.kind)
    }

    /// The prefix of the label naming the policies of `kind` in reports.
    fn label_prefix(kind: PolicyKind) -> &'static str {
        match kind {
            PolicyKind::ClusterPolicy => LABEL_PREFIX_CLUSTER_POLICY,
            PolicyKind::Policy => LABEL_PREFIX_POLICY,
            PolicyKind::Cel(CelKind::ValidatingPolicy | CelKind::NamespacedValidatingPolicy) => {
                LABEL_PREFIX_VALIDATING_POLICY
            }
            PolicyKind::Cel(
                CelKind::ImageValidatingPolicy | CelKind::NamespacedImageValidatingPolicy,
            ) => LABEL_PREFIX_IMAGE_VALIDATING_POLICY,
            PolicyKind::Cel(CelKind::MutatingPolicy | CelKind::NamespacedMutatingPolicy) => {
                LABEL_PREFIX_MUTATING_POLICY
            }
            PolicyKind::Cel(CelKind::GeneratingPolicy | CelKind::NamespacedGeneratingPolicy) => {
                LABEL_PREFIX_GENERATING_POLICY
            }
        }
    }

    /// The label naming it in a report, when its name fits in a label.
    fn label(&self) -> Option<String> {
        (self.name.len() <= MAX_LABEL_NAME)
            .then(|| format!("{}{}", Self::label_prefix(self.kind), self.name))
    }

    /// The `process` property of its results (upstream's `selectProcess`).
    fn process(&self) -> &'static str {
        if self.background {
            "background scan"
        } else if self.admission {
            "admission review"
        } else {
            ""
        }
    }

    /// The reference to the policy object (Events regarding it).
    pub fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.kind.api_resource().api_version),
            kind: Some(self.kind.name().to_owned()),
            name: Some(self.name.to_owned()),
            namespace: self.namespace.map(str::to_owned),
            ..ObjectReference::default()
        }
    }
}

/// The `source` of the results of the policies of `kind`.
pub fn result_source_of(kind: PolicyKind) -> &'static str {
    match kind {
        PolicyKind::ClusterPolicy | PolicyKind::Policy => RESULT_SOURCE_KYVERNO,
        PolicyKind::Cel(CelKind::ValidatingPolicy | CelKind::NamespacedValidatingPolicy) => {
            RESULT_SOURCE_VALIDATING_POLICY
        }
        PolicyKind::Cel(
            CelKind::ImageValidatingPolicy | CelKind::NamespacedImageValidatingPolicy,
        ) => RESULT_SOURCE_IMAGE_VALIDATING_POLICY,
        PolicyKind::Cel(CelKind::MutatingPolicy | CelKind::NamespacedMutatingPolicy) => {
            RESULT_SOURCE_MUTATING_POLICY
        }
        PolicyKind::Cel(CelKind::GeneratingPolicy | CelKind::NamespacedGeneratingPolicy) => {
            RESULT_SOURCE_GENERATING_POLICY
        }
    }
}

/// Whether the policies of `kind` are namespaced (their results name them `namespace/name`).
pub fn is_namespaced(kind: PolicyKind) -> bool {
    match kind {
        PolicyKind::ClusterPolicy => false,
        PolicyKind::Policy => true,
        PolicyKind::Cel(kind) => kind.is_namespaced(),
    }
}

/// Every kind of policy whose results reports carry.
fn reported_kinds() -> impl Iterator<Item = PolicyKind> {
    [PolicyKind::ClusterPolicy, PolicyKind::Policy]
        .into_iter()
        .chain(CelKind::ALL.map(PolicyKind::Cel))
}

/// A policy as its results name it: by their `source` (which tells the policy's kind apart, so
/// that a ClusterPolicy and a ValidatingPolicy of the same name are two policies) and its name
/// (`namespace/name` for namespaced kinds).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyRef {
    /// The `source` of its results; results without one are Kyverno's.
    pub source: String,
    /// Its name as results carry it.
    pub name: String,
}

impl PolicyRef {
    /// The policy of `source` named `name`.
    pub fn new(source: &str, name: &str) -> Self {
        Self {
            source: source.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The policy of `result`.
    pub fn of(result: &PolicyReportResult) -> Self {
        Self::new(result_source(result), &result.policy)
    }

    /// Whether `result` is one of this policy's.
    pub fn gave(&self, result: &PolicyReportResult) -> bool {
        self.name == result.policy && self.source == result_source(result)
    }
}

/// The `source` of a result; results without one are Kyverno's.
pub fn result_source(result: &PolicyReportResult) -> &str {
    result
        .source
        .as_deref()
        .filter(|source| !source.is_empty())
        .unwrap_or(RESULT_SOURCE_KYVERNO)
}

/// The results of one policy of any kind on a resource, with the policy's resourceVersion.
#[derive(Clone, Copy, Debug)]
pub struct PolicyResults<'a> {
    /// The policy.
    pub policy: ReportedPolicy<'a>,
    /// Its resourceVersion.
    pub resource_version: &'a str,
    /// What its rules gave.
    pub rules: &'a [RuleResponse],
}

impl<'a> From<&Evaluated<'a>> for PolicyResults<'a> {
    fn from(evaluated: &Evaluated<'a>) -> Self {
        Self {
            policy: ReportedPolicy::kyverno(evaluated.policy),
            resource_version: evaluated.resource_version,
            rules: evaluated.rules,
        }
    }
}

/// The results of one ClusterPolicy or Policy on a resource, with the policy's resourceVersion.
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
    ReportedPolicy::kyverno(policy).result_name()
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
    reported_result(&ReportedPolicy::kyverno(policy), rule, timestamp)
}

/// [`report_result`] for a policy of any kind (`source` telling the kind's family).
pub fn reported_result(
    policy: &ReportedPolicy<'_>,
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
    PolicyReportResult {
        source: Some(policy.result_source().to_owned()),
        policy: policy.result_name(),
        rule: Some(rule.name.clone()),
        category: annotation(ANNOTATION_POLICY_CATEGORY)
            .filter(|category| !category.is_empty())
            .map(str::to_owned),
        severity: annotation(ANNOTATION_POLICY_SEVERITY).and_then(severity),
        timestamp: Some(timestamp),
        result: Some(result),
        scored: Some(scored),
        message: Some(rule.message.clone()).filter(|message| !message.is_empty()),
        properties: BTreeMap::from([("process".to_owned(), policy.process().to_owned())]),
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
    let results: Vec<PolicyResults<'_>> = evaluated.iter().map(PolicyResults::from).collect();
    policies_report(name, subject, source, &results, hash)
}

/// [`ephemeral_report`] with the results of policies of any kind.
pub fn policies_report(
    name: &str,
    subject: &Subject,
    source: &str,
    evaluated: &[PolicyResults<'_>],
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
        match entry.policy.label() {
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
                .map(|rule| reported_result(&entry.policy, rule, timestamp)),
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
    /// The policies evaluated, by kind and name: their earlier results on the resource are
    /// replaced by `results`.
    pub policies: BTreeSet<PolicyRef>,
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
    let results: Vec<PolicyReportResult> = content
        .results
        .into_iter()
        .map(|mut result| {
            result.resources = vec![subject.clone()];
            result
        })
        .collect();
    let mut policies = policies_of_labels(&labels, namespace.as_deref());
    policies.extend(results.iter().map(PolicyRef::of));
    Ok(ReportUpdate {
        subject,
        source: labels.get(LABEL_SOURCE).cloned().unwrap_or_default(),
        policies,
        results,
    })
}

/// The policies the labels of a report in `namespace` name (a label's value is the policy's
/// resourceVersion). The label of a cluster-wide CEL kind and of its Namespaced form are the
/// same: both policies are named, so that a report without results still replaces the earlier
/// results of either. A namespaced kind is only named in a namespaced report.
fn policies_of_labels(
    labels: &BTreeMap<String, String>,
    namespace: Option<&str>,
) -> BTreeSet<PolicyRef> {
    labels
        .keys()
        .flat_map(|label| {
            reported_kinds().filter_map(move |kind| {
                let name = label.strip_prefix(ReportedPolicy::label_prefix(kind))?;
                let name = if is_namespaced(kind) {
                    format!("{}/{name}", namespace?)
                } else {
                    name.to_owned()
                };
                Some(PolicyRef::new(result_source_of(kind), &name))
            })
        })
        .collect()
}

/// Upstream's resource hash: MD5 of the labels, the annotations and the object without
/// metadata, status, scale and a pod's node name.
pub fn resource_hash(object: &Value) -> String {
    let labels = object
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    let annotations = object
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or(Value::Null);
    let mut rest = object.clone();
    if let Some(fields) = rest.as_object_mut() {
        for field in ["metadata", "status", "scale"] {
            fields.remove(field);
        }
        if let Some(spec) = fields.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("nodeName");
        }
    }
    let input = serde_json::to_vec(&[labels, annotations, rest]).unwrap_or_default();
    Md5::digest(&input)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
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
            [PolicyRef::new(RESULT_SOURCE_KYVERNO, "require-tier")]
        );
        assert_eq!(update.results.len(), 1);
        assert_eq!(update.results[0].resources, [pod().reference()]);
    }

    #[test]
    fn validating_policies_report_under_their_own_source_and_label() {
        let source = crate::cel_policies::CelSource::decode(
            CelKind::NamespacedValidatingPolicy,
            serde_json::json!({"apiVersion": "policies.kyverno.io/v1",
                "kind": "NamespacedValidatingPolicy",
                "metadata": {"name": "require-team", "namespace": "default",
                    "resourceVersion": "9",
                    "annotations": {"policies.kyverno.io/severity": "high"}},
                "spec": {"validationActions": ["Audit"],
                    "evaluation": {"background": {"enabled": false}},
                    "matchConstraints": {"resourceRules": [{"apiGroups": [""],
                        "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
                    "validations": [{"expression": "true"}]}}),
        )
        .unwrap();
        let cached = source.compile(&[], None).unwrap();
        let rules = [rule(RuleStatus::Fail)];
        let report = policies_report(
            "u-1",
            &pod(),
            SOURCE_ADMISSION,
            &[PolicyResults {
                policy: ReportedPolicy::cel(&cached),
                resource_version: &cached.resource_version,
                rules: &rules,
            }],
            None,
        );
        let labels = report.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["vpol.kyverno.io/require-team"], "9");
        let update = read_ephemeral_report(&report).unwrap();
        let result = &update.results[0];
        assert_eq!(result.policy, "default/require-team");
        assert_eq!(result.source.as_deref(), Some("KyvernoValidatingPolicy"));
        assert_eq!(result.severity, Some(PolicySeverity::High));
        assert_eq!(result.properties["process"], "admission review");
        assert!(update.policies.contains(&PolicyRef::new(
            RESULT_SOURCE_VALIDATING_POLICY,
            "default/require-team"
        )));
        assert!(PolicyRef::of(result).gave(result));
        assert!(!PolicyRef::new(RESULT_SOURCE_KYVERNO, "default/require-team").gave(result));
        let reference = ReportedPolicy::cel(&cached).reference();
        assert!(
            reference
                .api_version
                .as_deref()
                .is_some_and(|version| version.starts_with("policies.kyverno.io/"))
        );
        assert_eq!(
            reference.kind.as_deref(),
            Some("NamespacedValidatingPolicy")
        );
    }

    #[test]
    fn cel_policy_labels_name_the_policy_of_either_scope() {
        let mut report = ephemeral_report("r", &pod(), SOURCE_BACKGROUND_SCAN, &[], None);
        report
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("vpol.kyverno.io/require-team".into(), "3".into());
        let update = read_ephemeral_report(&report).unwrap();
        assert_eq!(
            update.policies,
            BTreeSet::from([
                PolicyRef::new(RESULT_SOURCE_VALIDATING_POLICY, "default/require-team"),
                PolicyRef::new(RESULT_SOURCE_VALIDATING_POLICY, "require-team"),
            ])
        );
        assert!(update.results.is_empty());
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
        assert_eq!(
            update.policies,
            BTreeSet::from([PolicyRef::new(RESULT_SOURCE_KYVERNO, "default/team")])
        );
        assert!(update.results.is_empty());
    }

    #[test]
    fn policies_of_the_same_name_are_told_apart_by_kind() {
        let mut report = ephemeral_report("r", &pod(), SOURCE_ADMISSION, &[], None);
        let labels = report.metadata.labels.as_mut().unwrap();
        for label in [
            "cpol.kyverno.io/x",
            "gpol.kyverno.io/y",
            "ivpol.kyverno.io/z",
        ] {
            labels.insert(label.into(), "1".into());
        }
        let update = read_ephemeral_report(&report).unwrap();
        assert_eq!(
            update.policies,
            BTreeSet::from([
                PolicyRef::new(RESULT_SOURCE_GENERATING_POLICY, "default/y"),
                PolicyRef::new(RESULT_SOURCE_GENERATING_POLICY, "y"),
                PolicyRef::new(RESULT_SOURCE_IMAGE_VALIDATING_POLICY, "default/z"),
                PolicyRef::new(RESULT_SOURCE_IMAGE_VALIDATING_POLICY, "z"),
                PolicyRef::new(RESULT_SOURCE_KYVERNO, "x"),
            ])
        );
        assert!(
            !update
                .policies
                .contains(&PolicyRef::new(RESULT_SOURCE_VALIDATING_POLICY, "x"))
        );
    }

    #[test]
    fn cluster_reports_name_no_namespaced_policy() {
        let class = Subject::of(
            &serde_json::json!({"apiVersion":"networking.k8s.io/v1","kind":"IngressClass",
                "metadata":{"name":"nginx","uid":"u-2"}}),
            "ingressclasses",
        )
        .unwrap();
        let mut report = ephemeral_report("u-2", &class, SOURCE_BACKGROUND_SCAN, &[], None);
        let labels = report.metadata.labels.as_mut().unwrap();
        labels.insert("pol.kyverno.io/team".into(), "7".into());
        labels.insert("vpol.kyverno.io/owner".into(), "8".into());
        let update = read_ephemeral_report(&report).unwrap();
        assert_eq!(
            update.policies,
            BTreeSet::from([PolicyRef::new(RESULT_SOURCE_VALIDATING_POLICY, "owner")])
        );
    }

    #[test]
    fn results_without_source_are_kyvernos() {
        let result = PolicyReportResult {
            policy: "p".into(),
            source: Some(String::new()),
            ..PolicyReportResult::default()
        };
        assert_eq!(result_source(&result), RESULT_SOURCE_KYVERNO);
        assert!(PolicyRef::new(RESULT_SOURCE_KYVERNO, "p").gave(&result));
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

    #[test]
    fn the_hash_ignores_status_and_node_name() {
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}, "resourceVersion": "1"},
            "spec": {"containers": []}});
        let mut scheduled = pod.clone();
        scheduled["spec"]["nodeName"] = "node-1".into();
        scheduled["status"] = serde_json::json!({"phase": "Running"});
        scheduled["metadata"]["resourceVersion"] = "2".into();
        assert_eq!(resource_hash(&pod), resource_hash(&scheduled));
        let mut relabelled = pod.clone();
        relabelled["metadata"]["labels"]["a"] = "c".into();
        assert_ne!(resource_hash(&pod), resource_hash(&relabelled));
        assert_eq!(resource_hash(&pod).len(), 32);
    }
}
