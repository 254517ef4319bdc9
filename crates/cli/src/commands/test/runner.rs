//! Running one test: loading what it points at, evaluating every policy on every resource (once
//! per admission operation its results ask for) and comparing with the expected results.
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use kyverno_policy_core::engine::{Environment, GenerateResponse, LoadedPolicy, MutateResponse};
use kyverno_policy_core::request::{RequestInfo, ResourceRequest};
use kyverno_policy_core::response::PolicyResponse;
use serde_json::{Map, Value};

use super::rows::{self, CheckedRow, ExpectedOutput, PolicyOutcome, ResourceOutcome};
use super::targets::TargetOutcomes;
use crate::cel::{CelError, CelInput, CelOutcome, CelPolicySet, CelProviders};
use crate::engine::{
    self, EvaluateError, admission_request, field, has_generate, has_mutate, has_validate_pass,
};
use crate::loader::{self, InvalidPolicy, LoadError};
use crate::provider::{
    CliContextProvider, GenerateProvider, MockError, OfflineContext, ResourceStore,
    SimulatedCluster,
};
use crate::report::is_scored;
use crate::test_file::{Test, TestResult};
use crate::values::VariableSet;

/// Why a test could not be run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Something the test points at could not be loaded.
    #[error("failed to load {what}: {source}")]
    Load {
        /// What was being loaded (`policies`, `resources`...).
        what: &'static str,
        /// Why.
        source: LoadError,
    },
    /// The user info does not have the shape of a Kubernetes UserInfo.
    #[error("failed to load user info: {0}")]
    UserInfo(serde_json::Error),
    /// The mocked GlobalContextEntries are invalid.
    #[error(transparent)]
    Mock(#[from] MockError),
    /// A result asks for an operation that cannot be simulated.
    #[error("invalid operation {0:?}, must be one of CREATE, UPDATE, DELETE")]
    Operation(String),
    /// The test uses a feature not supported yet.
    #[error("test field `{0}` is not supported yet")]
    Unsupported(&'static str),
    /// A policy needs data from an image registry, which offline runs do not have.
    #[error("policy {0} verifies images, which needs an image registry: not runnable offline")]
    NeedsRegistry(String),
    /// A policy could not be evaluated.
    #[error("failed to apply policy {policy} to resource {resource}: {source}")]
    Evaluate {
        /// The policy.
        policy: String,
        /// The resource's name.
        resource: String,
        /// Why.
        source: EvaluateError,
    },
    /// `kyverno.io` PolicyExceptions were given with ValidatingAdmissionPolicies.
    #[error("use of exceptions with ValidatingAdmissionPolicies is not supported")]
    ExceptionsWithAdmissionPolicies,
    /// The CEL policies cannot be compiled or applied.
    #[error(transparent)]
    Cel(#[from] CelError),
    /// Progress could not be written.
    #[error(transparent)]
    Output(#[from] std::io::Error),
}

fn load<T>(what: &'static str, result: Result<T, LoadError>) -> Result<T, RunError> {
    result.map_err(|source| RunError::Load { what, source })
}

/// `count` followed by the singular or plural word.
fn pluralize(count: usize, singular: &str, plural: &str) -> String {
    format!("{count} {}", if count == 1 { singular } else { plural })
}

/// The fields of a test this implementation cannot run yet, if any is used.
fn unsupported_field(test: &Test) -> Option<&'static str> {
    [("checks", !test.checks.is_empty())]
        .into_iter()
        .find_map(|(field, used)| used.then_some(field))
}

/// Whether a policy needs an image registry to be evaluated: it verifies images, or one of its
/// rules reads an `imageRegistry` context entry that the values do not stand in for (offline,
/// such entries are skipped, as upstream does without `--registry`).
fn needs_registry(policy: &LoadedPolicy, variables: &VariableSet) -> bool {
    fn registry_entry_names<'a>(value: &'a Value, names: &mut Vec<&'a str>) {
        match value {
            Value::Object(object) => {
                if object.contains_key("imageRegistry")
                    && let Some(name) = object.get("name").and_then(Value::as_str)
                {
                    names.push(name);
                }
                object.values().for_each(|v| registry_entry_names(v, names));
            }
            Value::Array(items) => items.iter().for_each(|v| registry_entry_names(v, names)),
            _ => {}
        }
    }
    policy.rules.iter().any(|rule| {
        if !rule.verify_images.is_empty() {
            return true;
        }
        let Ok(json) = serde_json::to_value(rule) else {
            return false;
        };
        let mut names = Vec::new();
        registry_entry_names(&json, &mut names);
        names
            .iter()
            .any(|name| !variables.provides(&policy.name, &rule.name, name))
    })
}

/// Whether a policy answers for resources none of its rules apply to. Upstream keeps the
/// (empty) mutate and validate responses of every policy, but generate responses only when
/// they are not empty: a generate-only policy that does not apply has no answer at all.
fn answers_when_unmatched(policy: &LoadedPolicy) -> bool {
    policy.rules.iter().any(|rule| {
        rule.mutate.is_some() || rule.validate.is_some() || !rule.verify_images.is_empty()
    })
}

/// Everything loaded for one test.
struct Loaded {
    variables: VariableSet,
    request_info: Arc<RequestInfo>,
    policies: Vec<LoadedPolicy>,
    invalid: Vec<InvalidPolicy>,
    resources: Vec<Arc<Value>>,
    /// The test's `targetResources`.
    targets: Vec<Value>,
    exceptions: Vec<PolicyException>,
    provider: Arc<CliContextProvider>,
    /// The CEL policies, compiled with their exceptions.
    cel: CelPolicySet,
    /// The parameter resources of admission policies (`paramResources`).
    params: Vec<Value>,
    /// The JSON payloads, by the path the test gives.
    payloads: Vec<(String, Arc<Value>)>,
    /// The Envoy and HTTP check requests: path, authorization mode and request.
    check_requests: Vec<(String, &'static str, Arc<Value>)>,
    /// The clone sources the results give (`cloneSourceResource`), by policy name.
    clone_sources: BTreeMap<String, Vec<Value>>,
}

/// Loads what `test` points at, printing upstream's progress lines to `log`.
fn load_test(dir: &Path, test: &Test, log: &mut dyn Write) -> Result<Loaded, RunError> {
    if let Some(unsupported) = unsupported_field(test) {
        return Err(RunError::Unsupported(unsupported));
    }
    writeln!(log, "  Loading values/variables ...")?;
    let values = match (&test.values, &test.variables) {
        (Some(values), _) => values.clone(),
        (None, Some(path)) => load("values", loader::load_values(&dir.join(path)))?,
        (None, None) => Default::default(),
    };
    let variables = VariableSet::new(values, Map::new());
    let request_info = match &test.userinfo {
        Some(path) => {
            writeln!(log, "  Loading user infos ...")?;
            let user_info = load("user info", loader::load_user_info(&dir.join(path)))?;
            user_info.into_request_info().map_err(RunError::UserInfo)?
        }
        None => RequestInfo::default(),
    };
    writeln!(log, "  Loading policies ...")?;
    let policies = load("policies", loader::load_policies(dir, &test.policies))?;
    if let Some(policy) = policies
        .valid
        .iter()
        .find(|policy| needs_registry(policy, &variables))
    {
        return Err(RunError::NeedsRegistry(policy.key()));
    }
    writeln!(log, "  Loading resources ...")?;
    let resources = load("resources", loader::load_resources(dir, &test.resources))?;
    let (resources, duplicates) = loader::remove_duplicates(resources);
    for (kind, name, namespace) in duplicates {
        writeln!(
            log,
            "  warning: found duplicated resource {kind} {name} {namespace}"
        )?;
    }
    let targets = load(
        "target resources",
        loader::load_resources(dir, &test.target_resources),
    )?;
    let params = load(
        "parameter resources",
        loader::load_resources(dir, &test.param_resources),
    )?;
    // As upstream's fake client, the engine reads the resources, targets and parameter
    // resources, and the cluster resources when there are some.
    let mut objects: Vec<Value> = resources
        .iter()
        .chain(&targets)
        .chain(&params)
        .cloned()
        .collect();
    let mut crds = Vec::new();
    let cluster = if test.cluster_resources.is_empty() {
        None
    } else {
        writeln!(log, "Loading Kubernetes resources ...")?;
        for path in &test.cluster_resources {
            let cluster_resource = load(
                "cluster resources",
                loader::load_cluster_resource(&dir.join(path)),
            )?;
            objects.extend(cluster_resource.spec.resources);
            for crd in &cluster_resource.spec.crds {
                let documents = load("CRDs", loader::read_documents(&dir.join(crd)))?;
                crds.extend(documents.into_iter().map(|document| document.value));
            }
        }
        objects.extend(crds.iter().cloned());
        Some(SimulatedCluster::new(objects.clone()))
    };
    let mut global_entries = Vec::with_capacity(test.global_context_entries.len());
    for entry in &test.global_context_entries {
        let file_resources = load(
            "global context entries",
            loader::load_resources(dir, &entry.resource_files),
        )?;
        global_entries.push((entry.clone(), file_resources));
    }
    let context = match &test.context {
        Some(path) => {
            OfflineContext::new(load("context", loader::load_context(&dir.join(path)))?.spec)
        }
        None => OfflineContext::default(),
    };
    let provider = CliContextProvider::new(
        cluster.clone(),
        test.api_call_responses.clone(),
        &global_entries,
    )?
    .with_resources(ResourceStore::new(objects))
    .with_context(context);
    let mut clone_sources: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for result in &test.results {
        if let Some(path) = &result.clone_source_resource {
            let sources = load(
                "clone source resources",
                loader::load_resources(dir, std::slice::from_ref(path)),
            )?;
            let policy = result.policy.rsplit('/').next().unwrap_or_default();
            clone_sources
                .entry(policy.to_owned())
                .or_default()
                .extend(sources);
        }
    }
    writeln!(log, "  Loading exceptions ...")?;
    let exceptions = load("exceptions", loader::load_exceptions(dir, &test.exceptions))?;
    if !policies.cel.validating_admission.is_empty() && !exceptions.kyverno.is_empty() {
        return Err(RunError::ExceptionsWithAdmissionPolicies);
    }
    writeln!(
        log,
        "  Applying {} to {} with {} ...",
        pluralize(policies.len(), "policy", "policies"),
        pluralize(resources.len(), "resource", "resources"),
        pluralize(exceptions.len(), "exception", "exceptions"),
    )?;
    let provider = Arc::new(provider);
    // Upstream's CLI lets the MutatingPolicies find the targets through the libraries.
    let providers = CelProviders {
        policies: provider.clone(),
        mutating: Arc::new(provider.with_offline_objects(&targets)),
    };
    let cel = CelPolicySet::compile(policies.cel, exceptions.cel, &crds, providers)?;
    let mut payloads = Vec::new();
    for path in test.json_payload.iter().chain(&test.json_payloads) {
        let payload = load("JSON payloads", loader::load_payload(&dir.join(path)))?;
        payloads.push((path.clone(), Arc::new(payload)));
    }
    let mut check_requests = Vec::new();
    for (mode, paths) in [
        ("Envoy", &test.envoy_payloads),
        ("HTTP", &test.http_payloads),
    ] {
        for path in paths {
            let path = dir.join(path);
            let request = load("check requests", loader::load_payload(&path))?;
            check_requests.push((path.display().to_string(), mode, Arc::new(request)));
        }
    }
    Ok(Loaded {
        variables,
        request_info: Arc::new(request_info),
        policies: policies.valid,
        invalid: policies.invalid,
        resources: resources.into_iter().map(Arc::new).collect(),
        targets,
        exceptions: exceptions.kyverno,
        provider,
        cel,
        params,
        payloads,
        check_requests,
        clone_sources,
    })
}

impl Loaded {
    /// The labels of `namespace`: from the values, else from the simulated cluster.
    fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        if let Some(labels) = self.variables.namespace_labels(namespace) {
            return labels.clone();
        }
        self.provider
            .cluster_namespace_labels(namespace)
            .unwrap_or_default()
    }

    /// Every policy's answer for every resource, under the `requested` operation, else the one
    /// the values ask for. As upstream's CLI does, the policies with mutate rules run first, each
    /// on the resource the ones before it patched; the validate rules then see the final
    /// resource.
    fn evaluate(
        &self,
        requested: Option<AdmissionOperation>,
        evaluators: &Evaluators<'_>,
    ) -> Result<Vec<ResourceOutcome>, RunError> {
        let mut targets = TargetOutcomes::new(&self.targets);
        let mut outcomes = self
            .resources
            .iter()
            .map(|resource| {
                let labels =
                    Arc::new(self.namespace_labels(field(resource, "/metadata/namespace")));
                let name = field(resource, "/metadata/name");
                let prepare = |policy: &LoadedPolicy, resource: &Arc<Value>| {
                    let operation =
                        requested.unwrap_or_else(|| self.variables.operation(&policy.name, name));
                    let request = admission_request(
                        resource,
                        operation,
                        &self.request_info,
                        Arc::clone(&labels),
                        &self.variables,
                    );
                    (
                        request,
                        self.variables.supplied(&policy.name, name, requested),
                    )
                };
                let failed = |policy: &LoadedPolicy| {
                    let policy = policy.key();
                    move |source| RunError::Evaluate {
                        policy,
                        resource: name.to_owned(),
                        source,
                    }
                };
                let outcome =
                    |policy: &LoadedPolicy, response, resource: &Arc<Value>| PolicyOutcome {
                        policy: policy.name.clone(),
                        rules: policy.rules.iter().map(|rule| rule.name.clone()).collect(),
                        scored: is_scored(policy),
                        response,
                        resource: Arc::clone(resource),
                        generated: Vec::new(),
                        cel: None,
                    };
                let mut current = Arc::clone(resource);
                let mut policies = Vec::with_capacity(self.policies.len());
                for policy in self.policies.iter().filter(|policy| has_mutate(policy)) {
                    let (request, values) = prepare(policy, &current);
                    let environment = Environment {
                        values: &values,
                        exceptions: &self.exceptions,
                        provider: &*self.provider,
                    };
                    let mutated = (evaluators.mutate)(policy, &request, &environment)
                        .map_err(failed(policy))?;
                    targets.record(policy, &mutated.targets);
                    current = Arc::new(mutated.patched);
                    let response = PolicyResponse {
                        rules: mutated.rules,
                    };
                    policies.push(outcome(policy, response, &current));
                }
                for policy in self
                    .policies
                    .iter()
                    .filter(|policy| has_validate_pass(policy))
                {
                    let (request, values) = prepare(policy, &current);
                    let environment = Environment {
                        values: &values,
                        exceptions: &self.exceptions,
                        provider: &*self.provider,
                    };
                    let response = (evaluators.validate)(policy, &request, &environment)
                        .map_err(failed(policy))?;
                    if response.rules.is_empty() && !answers_when_unmatched(policy) {
                        continue;
                    }
                    policies.push(outcome(policy, response, &current));
                }
                // The CEL policies, with the operation the result asks for, else the values'.
                let cel_operation = requested.unwrap_or_else(|| self.variables.operation("", name));
                let cel_request = |resource: &Arc<Value>| {
                    admission_request(
                        resource,
                        cel_operation,
                        &self.request_info,
                        Arc::clone(&labels),
                        &self.variables,
                    )
                };
                let namespace = self
                    .variables
                    .namespace_object(field(resource, "/metadata/namespace"));
                let input = CelInput {
                    request: &cel_request,
                    namespace: namespace.as_ref(),
                    params: &self.params,
                };
                let (mutated, patched) = self.cel.mutate(Arc::clone(&current), &input)?;
                policies.extend(mutated.into_iter().map(cel_outcome));
                for outcome in self.cel.mutate_targets(&current, &self.targets, &input)? {
                    targets.record_cel(cel_outcome(outcome));
                }
                current = patched;
                let validated = self.cel.validate(&current, &input)?;
                policies.extend(validated.into_iter().map(cel_outcome));
                let generated = self.cel.generate(&current, &input)?;
                policies.extend(generated.into_iter().map(cel_outcome));
                // As upstream's CLI, generate rules read a cluster holding only the trigger and
                // the test's clone sources for the policy.
                for policy in self.policies.iter().filter(|policy| has_generate(policy)) {
                    let (request, values) = prepare(policy, &current);
                    let mut objects = vec![current.as_ref().clone()];
                    if let Some(sources) = self.clone_sources.get(&policy.name) {
                        objects.extend(sources.iter().cloned());
                    }
                    let provider = GenerateProvider::new(&self.provider, objects);
                    let environment = Environment {
                        values: &values,
                        exceptions: &self.exceptions,
                        provider: &provider,
                    };
                    let generated = (evaluators.generate)(policy, &request, &environment)
                        .map_err(failed(policy))?;
                    if generated.rules.is_empty() {
                        continue;
                    }
                    let response = PolicyResponse {
                        rules: generated.rules,
                    };
                    let mut generate_outcome = outcome(policy, response, &current);
                    generate_outcome.generated = generated.resources;
                    policies.push(generate_outcome);
                }
                let checked = self.cel.check_as_given(resource, &input)?;
                policies.extend(checked.into_iter().map(cel_outcome));
                Ok(ResourceOutcome {
                    api_version: field(resource, "/apiVersion").to_owned(),
                    kind: field(resource, "/kind").to_owned(),
                    namespace: field(resource, "/metadata/namespace").to_owned(),
                    name: name.to_owned(),
                    policies,
                })
            })
            .collect::<Result<Vec<_>, RunError>>()?;
        outcomes.extend(targets.into_patched());
        outcomes.extend(self.payloads.iter().map(|(path, payload)| {
            ResourceOutcome {
                name: path.clone(),
                policies: self
                    .cel
                    .evaluate_payload(payload)
                    .into_iter()
                    .map(cel_outcome)
                    .collect(),
                ..ResourceOutcome::default()
            }
        }));
        outcomes.extend(self.check_requests.iter().map(|(path, mode, request)| {
            ResourceOutcome {
                name: path.clone(),
                policies: self
                    .cel
                    .authorize(mode, request)
                    .into_iter()
                    .map(cel_outcome)
                    .collect(),
                ..ResourceOutcome::default()
            }
        }));
        Ok(outcomes)
    }
}

/// The row checker's view of a CEL policy's answer.
fn cel_outcome(outcome: CelOutcome) -> PolicyOutcome {
    PolicyOutcome {
        rules: vec![outcome.policy.clone()],
        policy: outcome.policy,
        scored: outcome.scored,
        response: outcome.response,
        resource: outcome.resource,
        generated: outcome.generated,
        cel: Some(outcome.kind),
    }
}

/// Applies a policy's mutate rules: [`engine::mutate`], or a stand-in in tests.
type MutateFn<'a> = dyn Fn(&LoadedPolicy, &ResourceRequest, &Environment<'_>) -> Result<MutateResponse, EvaluateError>
    + 'a;

/// Applies a policy's validate rules: [`engine::validate`], or a stand-in in tests.
type ValidateFn<'a> = dyn Fn(&LoadedPolicy, &ResourceRequest, &Environment<'_>) -> Result<PolicyResponse, EvaluateError>
    + 'a;

/// Applies a policy's generate rules: [`engine::generate`], or a stand-in in tests.
type GenerateFn<'a> = dyn Fn(&LoadedPolicy, &ResourceRequest, &Environment<'_>) -> Result<GenerateResponse, EvaluateError>
    + 'a;

/// How policies are evaluated.
struct Evaluators<'a> {
    mutate: &'a MutateFn<'a>,
    validate: &'a ValidateFn<'a>,
    generate: &'a GenerateFn<'a>,
}

/// Runs `test` (whose files are relative to `dir`) for the given result items and compares.
pub fn run(
    dir: &Path,
    test: &Test,
    results: &[TestResult],
    log: &mut dyn Write,
) -> Result<Vec<CheckedRow>, RunError> {
    let evaluators = Evaluators {
        mutate: &engine::mutate,
        validate: &engine::validate,
        generate: &engine::generate,
    };
    run_with(dir, test, results, log, &evaluators)
}

fn run_with(
    dir: &Path,
    test: &Test,
    results: &[TestResult],
    log: &mut dyn Write,
    evaluators: &Evaluators<'_>,
) -> Result<Vec<CheckedRow>, RunError> {
    let loaded = load_test(dir, test, log)?;
    let mut outcomes: BTreeMap<Option<&str>, Vec<ResourceOutcome>> = BTreeMap::new();
    let mut rows = Vec::new();
    for result in results {
        let requested = result
            .operation
            .as_deref()
            .filter(|operation| !operation.is_empty());
        let trigger = match outcomes.entry(requested) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let operation = match requested {
                    None => None,
                    Some(name) => Some(
                        AdmissionOperation::from_name(name)
                            .filter(|operation| *operation != AdmissionOperation::Connect)
                            .ok_or_else(|| RunError::Operation(name.to_owned()))?,
                    ),
                };
                let computed = loaded.evaluate(operation, evaluators)?;
                entry.insert(computed)
            }
        };
        let read = |paths: &[String]| {
            loader::load_resources(dir, paths).map_err(|error| error.to_string())
        };
        let generated_files: Vec<String> = result
            .generated_resource
            .iter()
            .chain(&result.generated_resources)
            .cloned()
            .collect();
        let expected = ExpectedOutput {
            patched: result
                .patched_resources
                .as_ref()
                .map(|path| read(std::slice::from_ref(path))),
            generated: (!generated_files.is_empty()).then(|| read(&generated_files)),
        };
        rows.extend(rows::check(result, trigger, &loaded.invalid, &expected));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test::rows::Verdict;
    use kyverno_policy_core::response::{RuleResponse, RuleStatus, RuleType};

    /// A stand-in engine: every rule written in the policy (autogen rules left out) passes on
    /// resources named `good*`, fails on `bad*`, and no rule applies to other resources. Messages tell the operation and the supplied value `v`.
    fn fake_engine(
        policy: &LoadedPolicy,
        request: &ResourceRequest,
        environment: &Environment<'_>,
    ) -> Result<PolicyResponse, EvaluateError> {
        let status = match request.name() {
            name if name.starts_with("good") => RuleStatus::Pass,
            name if name.starts_with("bad") => RuleStatus::Fail,
            _ => return Ok(PolicyResponse::default()),
        };
        let value = environment
            .values
            .resource
            .get("v")
            .and_then(Value::as_str)
            .unwrap_or("none");
        let message = format!(
            "{:?} {value} {}",
            request.operation(),
            request.namespace_labels().len()
        );
        let rules = policy
            .rules
            .iter()
            .filter(|rule| !rule.name.starts_with("autogen-"))
            .map(|rule| RuleResponse {
                name: rule.name.clone(),
                rule_type: RuleType::Validation,
                status,
                message: message.clone(),
            })
            .collect();
        Ok(PolicyResponse { rules })
    }

    const POLICY: &str = "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: p
spec:
  rules:
  - name: r
    match:
      any:
      - resources:
          kinds: [Pod]
    validate:
      pattern:
        metadata:
          name: \"?*\"
";
    const RESOURCES: &str = "apiVersion: v1
kind: Pod
metadata:
  name: good
---
apiVersion: v1
kind: Pod
metadata:
  name: bad
  namespace: prod
---
apiVersion: v1
kind: Pod
metadata:
  name: other
";
    const VALUES: &str = "apiVersion: cli.kyverno.io/v1alpha1
kind: Values
globalValues:
  request.operation: DELETE
policies:
- name: p
  resources:
  - name: bad
    values:
      v: from-values
namespaceSelector:
- name: prod
  labels:
    env: prod
";
    const TEST: &str = "apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata:
  name: t
policies: [policy.yaml]
resources: [resources.yaml]
variables: values.yaml
results:
- {policy: p, rule: r, kind: Pod, resources: [good], result: pass}
- {policy: p, rule: r, kind: Pod, resources: [prod/bad], result: fail}
- {policy: p, rule: r, kind: Pod, resources: [other], result: fail}
- {policy: p, rule: r, kind: Pod, resources: [default/good], result: pass, operation: UPDATE}
- {policy: q, rule: r, kind: Pod, resources: [good], result: pass}
";

    fn run_fixture(name: &str, test_text: &str) -> (Result<Vec<CheckedRow>, RunError>, String) {
        let dir = crate::test_support::scratch("runner", name);
        for (name, text) in [
            ("policy.yaml", POLICY),
            ("resources.yaml", RESOURCES),
            ("values.yaml", VALUES),
        ] {
            std::fs::write(dir.join(name), text).expect("write");
        }
        let mut value: Value = serde_saphyr::from_str(test_text).expect("valid test");
        crate::test_file::canonicalize_test(&mut value);
        let test: Test = serde_json::from_value(value).expect("valid test");
        let mut log = Vec::new();
        let evaluators = Evaluators {
            mutate: &engine::mutate,
            validate: &fake_engine,
            generate: &engine::generate,
        };
        let rows = run_with(&dir, &test, &test.results, &mut log, &evaluators);
        (rows, String::from_utf8(log).expect("utf-8"))
    }

    #[test]
    fn a_test_runs_end_to_end() {
        let (rows, log) = run_fixture("end-to-end", TEST);
        let rows = rows.expect("runs");
        assert_eq!(
            log,
            "  Loading values/variables ...\n  Loading policies ...\n  Loading resources ...\n  Loading exceptions ...\n  Applying 1 policy to 3 resources with 0 exceptions ...\n"
        );
        let summary: Vec<_> = rows
            .iter()
            .map(|row| (row.resource.as_str(), row.ok, row.reason.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("v1/Pod/default/good", true, "Ok"),
                ("v1/Pod/prod/bad", true, "Ok"),
                ("v1/Pod/default/other", true, "Excluded"),
                ("v1/Pod/default/good", true, "Ok"),
                ("v1/Pod/default/good", false, "Not found"),
            ]
        );
        assert_eq!(
            rows[0].message, "Some(Delete) none 0",
            "the values' operation is the default"
        );
        assert_eq!(
            rows[1].message, "Some(Delete) from-values 1",
            "resource values and namespace labels"
        );
        assert_eq!(
            rows[3].message, "Some(Update) none 0",
            "a result's operation gets its own run"
        );
        assert_eq!(rows[2].verdict, Verdict::Excluded);
    }

    #[test]
    fn load_errors_name_what_failed() {
        let (rows, _) = run_fixture(
            "missing-policy-file",
            &TEST.replace("policies: [policy.yaml]", "policies: [missing.yaml]"),
        );
        let error = rows.expect_err("missing policy file");
        assert!(
            error
                .to_string()
                .starts_with("failed to load policies: failed to read "),
            "{error}"
        );
        let (rows, _) = run_fixture(
            "bad-operation",
            &TEST.replace("operation: UPDATE", "operation: PATCH"),
        );
        assert_eq!(
            rows.expect_err("bad operation").to_string(),
            "invalid operation \"PATCH\", must be one of CREATE, UPDATE, DELETE"
        );
    }

    #[test]
    fn counts_are_pluralized() {
        assert_eq!(pluralize(1, "policy", "policies"), "1 policy");
        assert_eq!(pluralize(0, "policy", "policies"), "0 policies");
        assert_eq!(pluralize(2, "resource", "resources"), "2 resources");
    }

    #[test]
    fn image_verification_needs_a_registry() {
        let policy = |rule: &str| {
            let yaml = format!(
                "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n{rule}"
            );
            let policy = serde_saphyr::from_str(&yaml).expect("valid policy");
            LoadedPolicy::from_cluster_policy(policy).expect("loads")
        };
        let none = VariableSet::default();
        let registry_entry = policy(
            "    context:\n    - name: img\n      imageRegistry:\n        reference: nginx\n    validate:\n      deny: {}\n",
        );
        assert!(needs_registry(&registry_entry, &none));
        let values: crate::test_file::Values = serde_saphyr::from_str(
            "policies:\n- name: p\n  rules:\n  - name: r\n    values:\n      img.config.user: root\n",
        )
        .expect("valid values");
        let supplied = VariableSet::new(values, serde_json::Map::new());
        assert!(
            !needs_registry(&registry_entry, &supplied),
            "values stand in for the entry"
        );
        assert!(needs_registry(
            &policy(
                "    validate:\n      foreach:\n      - list: request.object.spec.containers\n        context:\n        - name: img\n          imageRegistry:\n            reference: \"{{ element.image }}\"\n        deny: {}\n"
            ),
            &none
        ));
        assert!(needs_registry(
            &policy("    verifyImages:\n    - imageReferences: [\"*\"]\n"),
            &supplied
        ));
        assert!(!needs_registry(
            &policy("    validate:\n      deny: {}\n"),
            &none
        ));
    }

    #[test]
    fn generate_only_policies_do_not_answer_when_unmatched() {
        let policy = |rule: &str| {
            let yaml = format!(
                "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Namespace]\n{rule}"
            );
            LoadedPolicy::from_cluster_policy(serde_saphyr::from_str(&yaml).expect("valid policy"))
                .expect("loads")
        };
        let generate = policy(
            "    generate:\n      apiVersion: v1\n      kind: ConfigMap\n      name: c\n      namespace: \"{{request.object.metadata.name}}\"\n      data:\n        data: {}\n",
        );
        assert!(!answers_when_unmatched(&generate));
        assert!(answers_when_unmatched(&policy(
            "    validate:\n      deny: {}\n"
        )));
    }

    #[test]
    fn unsupported_fields_are_named() {
        let test: Test = serde_saphyr::from_str(
            "apiVersion: v\nkind: Test\ncontext: c.yaml\nhttpPayloads: [r.json]\nchecks: [{}]\n",
        )
        .expect("valid");
        assert_eq!(unsupported_field(&test), Some("checks"));
        assert_eq!(unsupported_field(&Test::default()), None);
    }
}
