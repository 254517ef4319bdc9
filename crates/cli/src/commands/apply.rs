//! `kyverno apply`: applies policies to resource files and reports the violations, the counts
//! of results, or a policy report.
//!
//! Mutated resources are printed, or with `-o PATH` written as upstream writes them: a path whose
//! name ends in `.yaml` or `.yml` is one file (emptied first, its folder created if missing)
//! receiving each mutated resource in turn; any other path is a folder (created if missing)
//! holding one `<name>-mutated.yaml` per resource, with the resource as the last policy left
//! it. A policy's resource is shown only when one of its mutate rules passed.
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kyverno_api::policy_report::v1alpha2::{
    ClusterPolicyReport, PolicyReport, PolicyReportContent, PolicyReportResult,
    PolicyReportSummary, PolicyResult, PolicySeverity, Timestamp,
};
use kyverno_policy_core::engine::{Environment, LoadedPolicy};
use kyverno_policy_core::request::RequestInfo;
use kyverno_policy_core::response::{PolicyResponse, RuleStatus, RuleType};
use serde_json::Value;

use crate::cel::{CelError, CelInput, CelOutcome, CelPolicySet, CelProviders};
use crate::engine::{
    self, EvaluateError, admission_request, field, has_generate, has_mutate, has_validate_pass,
};
use crate::loader::{self, LoadError};
use crate::output::table::{Cell, ResultRow, ResultsTable, Style};
use crate::provider::{CliContextProvider, GenerateProvider};
use crate::report::{is_audit, is_scored, report_result};
use crate::values::{VariableSet, parse_overrides};

const DIVIDER: &str = "----------------------------------------------------------------------";

/// Why `apply` could not run.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// No policy was given.
    #[error("require policy")]
    NoPolicy,
    /// No resource was given.
    #[error("resource file(s) or cluster required")]
    NoResource,
    /// Both `--values-file` and `--set` were given.
    #[error("pass the values either using set flag or values_file flag")]
    ValuesTwice,
    /// A file could not be loaded.
    #[error("failed to load {what} ({source})")]
    Load {
        /// What was being loaded.
        what: &'static str,
        /// Why.
        source: LoadError,
    },
    /// The user info does not have the shape of a Kubernetes UserInfo.
    #[error("failed to load request info ({0})")]
    UserInfo(serde_json::Error),
    /// The CEL policies could not be compiled or applied.
    #[error("failed to apply policies on resource {resource} ({source})")]
    Cel {
        /// The resource's name (empty when compiling).
        resource: String,
        /// Why.
        source: CelError,
    },
    /// A policy could not be evaluated.
    #[error("failed to apply policies on resource {resource} ({source})")]
    Evaluate {
        /// The resource's name.
        resource: String,
        /// Why.
        source: EvaluateError,
    },
    /// The `-o` file or folder could not be created or written.
    #[error("failed to write the mutated resources to {path}: {source}")]
    MutatedOutput {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The policy report could not be written as YAML.
    #[error("failed to write the policy report: {0}")]
    Report(#[from] serde_saphyr::ser_error::Error),
    /// Output could not be written.
    #[error(transparent)]
    Output(#[from] io::Error),
}

/// The options of `kyverno apply`.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Policy files or folders.
    pub policies: Vec<PathBuf>,
    /// Resource files or folders.
    pub resources: Vec<PathBuf>,
    /// A Values file.
    pub values_file: Option<PathBuf>,
    /// `key=value` variables.
    pub set: Vec<String>,
    /// A UserInfo file.
    pub user_info: Option<PathBuf>,
    /// Whether to print a policy report instead of the counts.
    pub policy_report: bool,
    /// Whether failures of auditing rules are warnings.
    pub audit_warn: bool,
    /// Whether to print a table of the results instead of the counts.
    pub table: bool,
    /// Whether the table shows the rule messages.
    pub detailed_results: bool,
    /// Whether to color the table.
    pub colors: bool,
    /// Where to write the mutated resources instead of printing them (`-o`): a `.yaml` or
    /// `.yml` file, or a folder.
    pub output: Option<PathBuf>,
}

/// Result counts, as upstream's `ResultCounts`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Passing rules.
    pub pass: usize,
    /// Failing rules.
    pub fail: usize,
    /// Warnings.
    pub warn: usize,
    /// Rules that could not be evaluated.
    pub error: usize,
    /// Skipped rules.
    pub skip: usize,
}

impl Counts {
    /// Whether the run is a failure: a rule failed or could not be evaluated.
    pub fn failed(&self) -> bool {
        self.fail > 0 || self.error > 0
    }
}

/// The policy an answer comes from.
enum Source<'a> {
    /// A ClusterPolicy or Policy.
    Kyverno(&'a LoadedPolicy),
    /// A CEL policy, as its answer describes it.
    Cel {
        /// The policy's name.
        name: String,
        /// The namespace of a Namespaced policy kind.
        namespace: Option<String>,
        /// The policy's annotations.
        annotations: Arc<BTreeMap<String, String>>,
        /// Whether the policy is scored.
        scored: bool,
    },
}

impl Source<'_> {
    fn name(&self) -> &str {
        match self {
            Source::Kyverno(policy) => &policy.name,
            Source::Cel { name, .. } => name,
        }
    }

    fn namespace(&self) -> Option<&String> {
        match self {
            Source::Kyverno(policy) => policy.namespace.as_ref(),
            Source::Cel { namespace, .. } => namespace.as_ref(),
        }
    }

    /// The policy's name, prefixed with its namespace for a namespaced policy.
    fn key(&self) -> String {
        match self.namespace() {
            Some(namespace) => format!("{namespace}/{}", self.name()),
            None => self.name().to_owned(),
        }
    }

    fn annotations(&self) -> &BTreeMap<String, String> {
        match self {
            Source::Kyverno(policy) => &policy.annotations,
            Source::Cel { annotations, .. } => annotations,
        }
    }

    fn is_scored(&self) -> bool {
        match self {
            Source::Kyverno(policy) => is_scored(policy),
            Source::Cel { scored, .. } => *scored,
        }
    }

    /// Whether the rule `rule` only audits (CEL policies never count as auditing here).
    fn is_audit(&self, rule: &str) -> bool {
        match self {
            Source::Kyverno(policy) => is_audit(policy, rule),
            Source::Cel { .. } => false,
        }
    }

    /// The position of the rule `rule` among the policy's rules (a CEL policy has one).
    fn position(&self, rule: &str) -> Option<usize> {
        match self {
            Source::Kyverno(policy) => policy
                .rules
                .iter()
                .position(|candidate| candidate.name == rule),
            Source::Cel { .. } => Some(0),
        }
    }
}

/// One policy's answer for one resource.
struct Applied<'a> {
    policy: Source<'a>,
    resource: &'a Value,
    response: PolicyResponse,
}

impl<'a> Applied<'a> {
    /// The answer of a CEL policy for `resource`.
    fn cel(outcome: CelOutcome, resource: &'a Value) -> Self {
        Self {
            policy: Source::Cel {
                name: outcome.policy,
                namespace: outcome.namespace,
                annotations: outcome.annotations,
                scored: outcome.scored,
            },
            resource,
            response: outcome.response,
        }
    }
}

fn paths(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect()
}

/// Runs `apply`, writing to `out`; returns the counts.
pub fn run(options: &ApplyOptions, out: &mut dyn Write) -> Result<Counts, ApplyError> {
    if options.policies.is_empty() {
        return Err(ApplyError::NoPolicy);
    }
    if options.resources.is_empty() {
        return Err(ApplyError::NoResource);
    }
    if options.values_file.is_some() && !options.set.is_empty() {
        return Err(ApplyError::ValuesTwice);
    }
    let mutated_output = options
        .output
        .as_deref()
        .map(MutatedOutput::create)
        .transpose()?;
    let load = |what, source| ApplyError::Load { what, source };
    let request_info = match &options.user_info {
        Some(path) => loader::load_user_info(path)
            .map_err(|source| load("request info", source))?
            .into_request_info()
            .map_err(ApplyError::UserInfo)?,
        None => RequestInfo::default(),
    };
    let values = match &options.values_file {
        Some(path) => loader::load_values(path).map_err(|source| load("values", source))?,
        None => Default::default(),
    };
    let variables = VariableSet::new(
        values,
        parse_overrides(options.set.iter().map(String::as_str)),
    );
    let here = Path::new("");
    let policies = loader::load_policies(here, &paths(&options.policies))
        .map_err(|source| load("policies", source))?;
    let resources = loader::load_resources(here, &paths(&options.resources))
        .map_err(|source| load("resources", source))?;
    // A CEL policy counts as one rule, as upstream.
    let rule_count: usize = policies
        .valid
        .iter()
        .map(|policy| policy.rules.len())
        .sum::<usize>()
        + policies.cel.len();
    writeln!(
        out,
        "\nApplying {rule_count} policy rule(s) to {} resource(s)...",
        resources.len()
    )?;

    let request_info = Arc::new(request_info);
    let provider = CliContextProvider::default();
    let cel_provider: Arc<CliContextProvider> = Arc::new(CliContextProvider::default());
    let providers = CelProviders {
        policies: cel_provider.clone(),
        mutating: cel_provider,
    };
    let cel =
        CelPolicySet::compile(policies.cel, Vec::new(), &[], providers).map_err(|source| {
            ApplyError::Cel {
                resource: String::new(),
                source,
            }
        })?;
    let mut applied = Vec::new();
    for resource in &resources {
        let shared = Arc::new(resource.clone());
        let given = Arc::clone(&shared);
        let labels = Arc::new(
            variables
                .namespace_labels(field(resource, "/metadata/namespace"))
                .cloned()
                .unwrap_or_default(),
        );
        let name = field(resource, "/metadata/name");
        let prepare = |policy: &LoadedPolicy, resource: &Arc<Value>| {
            let request = admission_request(
                resource,
                variables.operation(&policy.name, name),
                &request_info,
                Arc::clone(&labels),
                &variables,
            );
            (request, variables.supplied(&policy.name, name, None))
        };
        let failed = |source| ApplyError::Evaluate {
            resource: name.to_owned(),
            source,
        };
        // As upstream: the mutate rules of every policy first, each policy patching the result
        // of the ones before it, then the validate rules on the final resource.
        let mut current = shared;
        for policy in policies.valid.iter().filter(|policy| has_mutate(policy)) {
            let (request, values) = prepare(policy, &current);
            let environment = Environment {
                values: &values,
                exceptions: &[],
                provider: &provider,
            };
            let mutated = engine::mutate(policy, &request, &environment).map_err(failed)?;
            if mutated
                .rules
                .iter()
                .any(|rule| rule.status == RuleStatus::Pass)
            {
                show_mutated(
                    &policy.name,
                    resource,
                    &mutated.patched,
                    mutated_output.as_ref(),
                    out,
                )?;
            }
            current = Arc::new(mutated.patched);
            applied.push(Applied {
                policy: Source::Kyverno(policy),
                resource,
                response: PolicyResponse {
                    rules: mutated.rules,
                },
            });
        }
        for policy in policies
            .valid
            .iter()
            .filter(|policy| has_validate_pass(policy))
        {
            let (request, values) = prepare(policy, &current);
            let environment = Environment {
                values: &values,
                exceptions: &[],
                provider: &provider,
            };
            let response = engine::validate(policy, &request, &environment).map_err(failed)?;
            applied.push(Applied {
                policy: Source::Kyverno(policy),
                resource,
                response,
            });
        }
        let namespace = variables.namespace_object(field(resource, "/metadata/namespace"));
        let cel_request = |resource: &Arc<Value>| {
            admission_request(
                resource,
                variables.operation("", name),
                &request_info,
                Arc::clone(&labels),
                &variables,
            )
        };
        let input = CelInput {
            request: &cel_request,
            namespace: namespace.as_ref(),
            params: &[],
        };
        let cel_failed = |source| ApplyError::Cel {
            resource: name.to_owned(),
            source,
        };
        let (mutated, patched) = cel
            .mutate(Arc::clone(&current), &input)
            .map_err(cel_failed)?;
        for outcome in mutated {
            let passed = outcome
                .response
                .rules
                .iter()
                .any(|rule| rule.status == RuleStatus::Pass);
            if passed {
                let name = outcome.policy.clone();
                show_mutated(
                    &name,
                    resource,
                    &outcome.resource,
                    mutated_output.as_ref(),
                    out,
                )?;
            }
            applied.push(Applied::cel(outcome, resource));
        }
        current = patched;
        let validated = cel.validate(&current, &input).map_err(cel_failed)?;
        let generated = cel.generate(&current, &input).map_err(cel_failed)?;
        let checked = cel.check_as_given(&given, &input).map_err(cel_failed)?;
        applied.extend(
            validated
                .into_iter()
                .chain(generated)
                .chain(checked)
                .map(|outcome| Applied::cel(outcome, resource)),
        );
        // Generate rules count like the others (upstream prints no generated resource and
        // reports none); their clone sources can only be the trigger itself.
        if options.policy_report {
            continue;
        }
        for policy in policies.valid.iter().filter(|policy| has_generate(policy)) {
            let (request, values) = prepare(policy, &current);
            let generate_provider =
                GenerateProvider::new(&provider, vec![current.as_ref().clone()]);
            let environment = Environment {
                values: &values,
                exceptions: &[],
                provider: &generate_provider,
            };
            let generated = engine::generate(policy, &request, &environment).map_err(failed)?;
            applied.push(Applied {
                policy: Source::Kyverno(policy),
                resource,
                response: PolicyResponse {
                    rules: generated.rules,
                },
            });
        }
    }

    let mut counts = Counts::default();
    for answer in &applied {
        count(answer, options, &mut counts, out)?;
    }
    if !policies.invalid.is_empty() {
        writeln!(
            out,
            "{DIVIDER}\nPolicies Skipped (as required variables are not provided by the user):"
        )?;
        for (index, policy) in policies.invalid.iter().enumerate() {
            writeln!(out, "{}. {}", index + 1, policy.name)?;
        }
        writeln!(out, "{DIVIDER}")?;
    }
    if options.policy_report {
        print_reports(&applied, options.audit_warn, out)?;
    } else if options.table {
        write!(
            out,
            "{}",
            results_table(&applied, options).render(options.colors)
        )?;
    } else {
        writeln!(
            out,
            "\npass: {}, fail: {}, warn: {}, error: {}, skip: {} ",
            counts.pass, counts.fail, counts.warn, counts.error, counts.skip
        )?;
    }
    Ok(counts)
}

/// `namespace/Kind/name`, as upstream names resources in violations.
fn resource_path(resource: &Value) -> String {
    format!(
        "{}/{}/{}",
        field(resource, "/metadata/namespace"),
        field(resource, "/kind"),
        field(resource, "/metadata/name")
    )
}

/// Where `-o` writes the mutated resources.
#[derive(Debug)]
enum MutatedOutput {
    /// One file receiving every mutated resource in turn.
    File(PathBuf),
    /// A folder with one `<name>-mutated.yaml` file per resource.
    Folder(PathBuf),
}

impl MutatedOutput {
    /// The output `path` names, created as upstream does: a file (emptied) when its name ends
    /// in `.yaml` or `.yml`, else a folder.
    fn create(path: &Path) -> Result<Self, ApplyError> {
        let failed = |source| ApplyError::MutatedOutput {
            path: path.to_owned(),
            source,
        };
        let is_file = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.rsplit('.').next())
            .is_some_and(|extension| extension == "yaml" || extension == "yml");
        if !is_file {
            std::fs::create_dir_all(path).map_err(failed)?;
            return Ok(Self::Folder(path.to_owned()));
        }
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(failed)?;
        }
        std::fs::write(path, "").map_err(failed)?;
        Ok(Self::File(path.to_owned()))
    }

    /// Writes the YAML of the mutated resource named `name`.
    fn write(&self, name: &str, yaml: &str) -> Result<(), ApplyError> {
        let document = format!("{yaml}\n---\n\n");
        let (path, written) = match self {
            Self::File(path) => (
                path.clone(),
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .and_then(|mut file| file.write_all(document.as_bytes())),
            ),
            Self::Folder(folder) => {
                let path = folder.join(format!("{name}-mutated.yaml"));
                let written = std::fs::write(&path, &document);
                (path, written)
            }
        };
        written.map_err(|source| ApplyError::MutatedOutput { path, source })
    }
}

/// Shows a policy's mutated resource as upstream does: printed with a header naming the policy
/// and the resource and the closing `Mutation:` note, or written to the `-o` output.
fn show_mutated(
    policy: &str,
    resource: &Value,
    patched: &Value,
    output: Option<&MutatedOutput>,
    out: &mut dyn Write,
) -> Result<(), ApplyError> {
    let yaml = serde_saphyr::to_string(patched)?;
    match output {
        Some(output) => {
            output.write(field(resource, "/metadata/name"), &yaml)?;
            write!(
                out,
                "\n\nMutation:\nMutation has been applied successfully. Check the files."
            )?;
        }
        None => write!(
            out,
            "\npolicy {policy} applied to {}:\n{yaml}\n---\n\n\nMutation:\nMutation has been applied successfully.",
            resource_path(resource)
        )?,
    }
    Ok(())
}

/// Counts one policy's rule responses and prints its validation failures (unless a policy
/// report is asked for).
fn count(
    answer: &Applied<'_>,
    options: &ApplyOptions,
    counts: &mut Counts,
    out: &mut dyn Write,
) -> io::Result<()> {
    let scored = answer.policy.is_scored();
    let mut header_printed = false;
    for rule in &answer.response.rules {
        let audit_warn = options.audit_warn && answer.policy.is_audit(&rule.name);
        let result = report_result(rule.status, scored, audit_warn);
        let is_validation = matches!(rule.rule_type, RuleType::Validation | RuleType::ImageVerify);
        // Upstream lists failures of scored policies only, those turned into audit warnings
        // included.
        if is_validation && rule.status == RuleStatus::Fail && scored && !options.policy_report {
            if !header_printed {
                let suffix = if audit_warn { " as audit warning" } else { "" };
                writeln!(
                    out,
                    "\npolicy {} -> resource {} failed{suffix}: ",
                    answer.policy.name(),
                    resource_path(answer.resource)
                )?;
                header_printed = true;
            }
            let position = answer.policy.position(&rule.name);
            writeln!(
                out,
                "{}. {}: {} ",
                position.map_or(0, |index| index + 1),
                rule.name,
                rule.message
            )?;
        }
        match result {
            PolicyResult::Pass => counts.pass += 1,
            PolicyResult::Fail => counts.fail += 1,
            PolicyResult::Warn => counts.warn += 1,
            PolicyResult::Error => counts.error += 1,
            PolicyResult::Skip => counts.skip += 1,
        }
    }
    Ok(())
}

/// One row per rule response, as upstream's `printTable`.
fn results_table(applied: &[Applied<'_>], options: &ApplyOptions) -> ResultsTable {
    let mut table = ResultsTable::new(options.detailed_results);
    let rules = applied
        .iter()
        .flat_map(|answer| answer.response.rules.iter().map(move |rule| (answer, rule)));
    for (id, (answer, rule)) in rules.enumerate() {
        let audit_warn = options.audit_warn && answer.policy.is_audit(&rule.name);
        let (text, style) = match report_result(rule.status, answer.policy.is_scored(), audit_warn)
        {
            PolicyResult::Pass => ("Pass", Style::Good),
            PolicyResult::Fail => ("Fail", Style::Bad),
            PolicyResult::Warn => ("Warn", Style::Notice),
            PolicyResult::Error => ("Error", Style::Bad),
            PolicyResult::Skip => ("Skip", Style::Name),
        };
        table.push(ResultRow {
            id: id + 1,
            policy: &answer.policy.key(),
            rule: &rule.name,
            resource: &resource_path(answer.resource),
            result: Cell::new(text, style),
            reason: Cell::new("", Style::Plain),
            message: &rule.message,
        });
    }
    table
}

/// The severity an annotation value names.
fn severity(value: &str) -> Option<PolicySeverity> {
    match value.to_lowercase().as_str() {
        "critical" => Some(PolicySeverity::Critical),
        "high" => Some(PolicySeverity::High),
        "medium" => Some(PolicySeverity::Medium),
        "low" => Some(PolicySeverity::Low),
        "info" => Some(PolicySeverity::Info),
        _ => None,
    }
}

/// The report results of one policy's answer.
fn report_results(
    answer: &Applied<'_>,
    audit_warn: bool,
    timestamp: Timestamp,
) -> Vec<PolicyReportResult> {
    let policy = &answer.policy;
    let scored = policy.is_scored();
    let annotation = |key: &str| {
        policy
            .annotations()
            .get(key)
            .filter(|value| !value.is_empty())
    };
    let text =
        |pointer| Some(field(answer.resource, pointer).to_owned()).filter(|text| !text.is_empty());
    let reference = ObjectReference {
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        namespace: text("/metadata/namespace"),
        name: text("/metadata/name"),
        uid: text("/metadata/uid"),
        ..Default::default()
    };
    answer
        .response
        .rules
        .iter()
        .map(|rule| PolicyReportResult {
            source: Some("kyverno".to_owned()),
            policy: policy.key(),
            rule: Some(rule.name.clone()),
            category: annotation("policies.kyverno.io/category").cloned(),
            severity: annotation("policies.kyverno.io/severity").and_then(|value| severity(value)),
            timestamp: Some(timestamp),
            result: Some(report_result(
                rule.status,
                scored,
                audit_warn && policy.is_audit(&rule.name),
            )),
            scored: Some(scored),
            resources: vec![reference.clone()],
            message: Some(rule.message.clone()),
            ..Default::default()
        })
        .collect()
}

fn summary(results: &[PolicyReportResult]) -> PolicyReportSummary {
    let mut summary = PolicyReportSummary::default();
    for result in results.iter().filter_map(|result| result.result) {
        summary.add(result);
    }
    summary
}

/// Prints one ClusterPolicyReport merging the results of cluster-wide policies, then one
/// PolicyReport per namespaced policy, as upstream's `printReports`.
fn print_reports(
    applied: &[Applied<'_>],
    audit_warn: bool,
    out: &mut dyn Write,
) -> Result<(), ApplyError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        });
    let timestamp = Timestamp {
        seconds: now,
        nanos: 0,
    };
    let mut clustered = Vec::new();
    let mut namespaced: BTreeMap<(String, String), Vec<PolicyReportResult>> = BTreeMap::new();
    for answer in applied {
        let results = report_results(answer, audit_warn, timestamp);
        match answer.policy.namespace() {
            None => clustered.extend(results),
            Some(namespace) => namespaced
                .entry((namespace.clone(), answer.policy.name().to_owned()))
                .or_default()
                .extend(results),
        }
    }
    if !clustered.is_empty() {
        let content = PolicyReportContent {
            summary: Some(summary(&clustered)),
            results: clustered,
            ..Default::default()
        };
        writeln!(
            out,
            "{}",
            serde_saphyr::to_string(&ClusterPolicyReport::new("merged", content))?
        )?;
    }
    for ((namespace, name), results) in namespaced {
        let content = PolicyReportContent {
            summary: Some(summary(&results)),
            results,
            ..Default::default()
        };
        let mut report = PolicyReport::new(&name, content);
        report.metadata = ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            ..Default::default()
        };
        writeln!(out, "---\n{}", serde_saphyr::to_string(&report)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyverno_api::kyverno::v1::policy::ClusterPolicy;
    use kyverno_policy_core::response::RuleResponse;
    use serde_json::json;

    fn policy(extra_metadata: &str) -> LoadedPolicy {
        let yaml = format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\n{extra_metadata}spec:\n  rules:\n  - name: a\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    validate:\n      pattern:\n        metadata:\n          name: \"?*\"\n  - name: b\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    validate:\n      failureAction: Enforce\n      pattern:\n        metadata:\n          name: \"?*\"\n"
        );
        let policy: ClusterPolicy = serde_saphyr::from_str(&yaml).expect("valid policy");
        LoadedPolicy::from_cluster_policy(policy).expect("loads")
    }

    fn rule(name: &str, status: RuleStatus) -> RuleResponse {
        RuleResponse {
            name: name.to_owned(),
            rule_type: RuleType::Validation,
            status,
            message: format!("{name} message"),
        }
    }

    fn applied<'a>(
        policy: &'a LoadedPolicy,
        resource: &'a Value,
        rules: Vec<RuleResponse>,
    ) -> Applied<'a> {
        Applied {
            policy: Source::Kyverno(policy),
            resource,
            response: PolicyResponse { rules },
        }
    }

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "default"}})
    }

    fn counted(answer: &Applied<'_>, options: &ApplyOptions) -> (Counts, String) {
        let mut counts = Counts::default();
        let mut out = Vec::new();
        count(answer, options, &mut counts, &mut out).expect("writes");
        (counts, String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn failures_are_listed_by_rule_position() {
        let policy = policy("");
        let pod = pod();
        let answer = applied(
            &policy,
            &pod,
            vec![rule("a", RuleStatus::Pass), rule("b", RuleStatus::Fail)],
        );
        let (counts, text) = counted(&answer, &ApplyOptions::default());
        assert_eq!(
            counts,
            Counts {
                pass: 1,
                fail: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            text,
            "\npolicy p -> resource default/Pod/x failed: \n2. b: b message \n"
        );
        assert!(counts.failed());
    }

    #[test]
    fn audit_warn_turns_audit_failures_into_warnings() {
        let policy = policy("");
        let pod = pod();
        let answer = applied(
            &policy,
            &pod,
            vec![rule("a", RuleStatus::Fail), rule("b", RuleStatus::Fail)],
        );
        let options = ApplyOptions {
            audit_warn: true,
            ..ApplyOptions::default()
        };
        let (counts, text) = counted(&answer, &options);
        assert_eq!(
            counts,
            Counts {
                fail: 1,
                warn: 1,
                ..Counts::default()
            }
        );
        assert!(
            text.starts_with(
                "\npolicy p -> resource default/Pod/x failed as audit warning: \n1. a: a message \n"
            ),
            "{text}"
        );
    }

    #[test]
    fn unscored_failures_are_silent_warnings() {
        let policy = policy("  annotations:\n    policies.kyverno.io/scored: \"false\"\n");
        let pod = pod();
        let (counts, text) = counted(
            &applied(&policy, &pod, vec![rule("a", RuleStatus::Fail)]),
            &ApplyOptions::default(),
        );
        assert_eq!(
            counts,
            Counts {
                warn: 1,
                ..Counts::default()
            }
        );
        assert!(text.is_empty());
        assert!(!counts.failed());
    }

    #[test]
    fn reports_carry_results_and_summaries() {
        let policy = policy(
            "  annotations:\n    policies.kyverno.io/category: Best Practices\n    policies.kyverno.io/severity: medium\n",
        );
        let pod = pod();
        let answers = [applied(
            &policy,
            &pod,
            vec![rule("a", RuleStatus::Pass), rule("b", RuleStatus::Fail)],
        )];
        let mut out = Vec::new();
        print_reports(&answers, false, &mut out).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        let report: Value = serde_saphyr::from_str(&text).expect("valid YAML");
        assert_eq!(report["kind"], "ClusterPolicyReport");
        assert_eq!(report["metadata"]["name"], "merged");
        assert_eq!(
            report["summary"],
            json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0})
        );
        assert_eq!(report["results"][1]["result"], "fail");
        assert_eq!(report["results"][1]["severity"], "medium");
        assert_eq!(report["results"][1]["category"], "Best Practices");
        assert_eq!(report["results"][1]["resources"][0]["name"], "x");
    }

    #[test]
    fn tables_list_every_rule_response() {
        let policy = policy("");
        let pod = pod();
        let answers = [applied(
            &policy,
            &pod,
            vec![rule("a", RuleStatus::Pass), rule("b", RuleStatus::Error)],
        )];
        let options = ApplyOptions {
            detailed_results: true,
            ..ApplyOptions::default()
        };
        let text = results_table(&answers, &options).render(false);
        assert!(
            text.contains("│  1 │ p      │ a    │ default/Pod/x │ Pass   │        │ a message │"),
            "{text}"
        );
        assert!(
            text.contains("│  2 │ p      │ b    │ default/Pod/x │ Error  │        │ b message │"),
            "{text}"
        );
    }

    #[test]
    fn arguments_are_checked() {
        let mut out = Vec::new();
        assert!(matches!(
            run(&ApplyOptions::default(), &mut out),
            Err(ApplyError::NoPolicy)
        ));
        let no_resource = ApplyOptions {
            policies: vec!["p.yaml".into()],
            ..ApplyOptions::default()
        };
        assert!(matches!(
            run(&no_resource, &mut out),
            Err(ApplyError::NoResource)
        ));
        let both = ApplyOptions {
            policies: vec!["p.yaml".into()],
            resources: vec!["r.yaml".into()],
            values_file: Some("v.yaml".into()),
            set: vec!["a=b".to_owned()],
            ..ApplyOptions::default()
        };
        assert!(matches!(run(&both, &mut out), Err(ApplyError::ValuesTwice)));
    }
}
