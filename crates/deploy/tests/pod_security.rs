//! The chart's Pod Security Standards profiles, applied with our CLI (`kyverno apply` as a
//! library) to the resources of every pod-security unit of the corpus
//! (`../shared/conformance/kyverno-policies/pod-security`, or `$KYVERNO_SHARED_DIR`), give for
//! each control the result the unit expects for its own policy:
//!
//! - a single-control unit maps to the chart's policy and rule of that control (same names);
//! - `disallow-host-ports-range` maps to the chart's host ports rule rendered with
//!   `podSecurityAllowedHostPortRanges: [5000-6000]` (the site-specific list the standard allows);
//! - the `podSecurity` subrule units map to a whole profile: a resource passes when every rule
//!   of the profile (baseline, restricted, restricted without the seccomp controls) passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{helm, of_kind, render};
use kyverno_cli::commands::apply::{ApplyOptions, run};
use kyverno_deploy::Helm;
use serde_json::Value;

/// The baseline profile's policies.
const BASELINE: &[&str] = &[
    "disallow-host-process",
    "disallow-host-namespaces",
    "disallow-privileged-containers",
    "disallow-capabilities",
    "disallow-host-path",
    "disallow-host-ports",
    "disallow-host-probes",
    "restrict-apparmor-profiles",
    "disallow-selinux",
    "disallow-proc-mount",
    "restrict-seccomp",
    "restrict-sysctls",
];

/// The seccomp policies (the Seccomp control of both levels).
const SECCOMP: &[&str] = &["restrict-seccomp", "restrict-seccomp-strict"];

/// The folder holding `conformance/`.
fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("KYVERNO_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| kyverno_deploy::workspace_root().join("../shared"));
    assert!(
        dir.join("conformance").is_dir(),
        "shared folder not found at {} (set KYVERNO_SHARED_DIR)",
        dir.display()
    );
    dir
}

/// Every `kyverno-test.yaml` below `dir`.
fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("corpus folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            files.extend(test_files(&path));
        } else if path
            .file_name()
            .is_some_and(|name| name == "kyverno-test.yaml")
        {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("kyverno-rs-deploy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Self(dir)
    }

    fn write(&self, name: &str, objects: &[&Value]) -> PathBuf {
        let text: Vec<String> = objects
            .iter()
            .map(|object| serde_json::to_string(object).expect("serializable"))
            .collect();
        let path = self.0.join(name);
        std::fs::write(&path, text.join("\n---\n")).expect("scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The profile's ClusterPolicies rendered with `values`, written to `name` in `scratch`.
fn profile(helm: &Helm, scratch: &Scratch, name: &str, values: &[&str]) -> (PathBuf, Vec<Value>) {
    let objects = render(helm, values);
    let policies: Vec<Value> = of_kind(&objects, "ClusterPolicy")
        .into_iter()
        .cloned()
        .collect();
    let path = scratch.write(name, &policies.iter().collect::<Vec<_>>());
    (path, policies)
}

/// Per resource (kind, name): per (policy, rule), the result of `kyverno apply`.
type Results = BTreeMap<(String, String), BTreeMap<(String, String), String>>;

fn apply(policies: &Path, resources: Vec<PathBuf>) -> Results {
    let options = ApplyOptions {
        policies: vec![policies.to_path_buf()],
        resources,
        policy_report: true,
        ..ApplyOptions::default()
    };
    let mut out = Vec::new();
    run(&options, &mut out).expect("kyverno apply runs");
    let text = String::from_utf8(out).expect("UTF-8 output");
    let report_start = text.find("apiVersion:").expect("a policy report");
    let report: Value = serde_saphyr::from_str(&text[report_start..]).expect("report YAML");
    let mut results = Results::new();
    for result in report["results"].as_array().into_iter().flatten() {
        let rule = result["rule"].as_str().unwrap();
        let rule = rule
            .strip_prefix("autogen-cronjob-")
            .or_else(|| rule.strip_prefix("autogen-"))
            .unwrap_or(rule);
        for resource in result["resources"].as_array().unwrap() {
            results
                .entry((
                    resource["kind"].as_str().unwrap().to_owned(),
                    resource["name"].as_str().unwrap().to_owned(),
                ))
                .or_default()
                .insert(
                    (
                        result["policy"].as_str().unwrap().to_owned(),
                        rule.to_owned(),
                    ),
                    result["result"].as_str().unwrap().to_owned(),
                );
        }
    }
    results
}

/// What the chart's profile says for one expectation of a unit's policy and rule.
fn chart_result(policy: &str, rule: &str, results: &BTreeMap<(String, String), String>) -> String {
    let aggregate = |include: &dyn Fn(&str) -> bool| {
        let selected: Vec<&String> = results
            .iter()
            .filter(|((policy, _), _)| include(policy))
            .map(|(_, result)| result)
            .collect();
        if selected.is_empty() {
            "none".to_owned()
        } else if selected.iter().any(|result| *result == "fail") {
            "fail".to_owned()
        } else {
            "pass".to_owned()
        }
    };
    match policy {
        "podsecurity-subrule-baseline" => aggregate(&|policy| BASELINE.contains(&policy)),
        "podsecurity-subrule-restricted" => aggregate(&|_| true),
        "podsecurity-subrule-restricted-seccomp" => aggregate(&|policy| !SECCOMP.contains(&policy)),
        "disallow-host-ports-range" => results
            .get(&(
                "disallow-host-ports".to_owned(),
                "host-ports-none".to_owned(),
            ))
            .cloned()
            .unwrap_or_else(|| "none".to_owned()),
        _ => results
            .get(&(policy.to_owned(), rule.to_owned()))
            .cloned()
            .unwrap_or_else(|| "none".to_owned()),
    }
}

#[test]
fn profiles_match_every_pod_security_unit_of_the_corpus() {
    let Some(helm) = helm() else { return };
    let corpus = shared_dir().join("conformance/kyverno-policies/pod-security");
    let scratch = Scratch::new("pss");
    let (restricted, policies) = profile(
        &helm,
        &scratch,
        "restricted.yaml",
        &["podSecurityStandard=restricted"],
    );
    let (with_ranges, _) = profile(
        &helm,
        &scratch,
        "restricted-ranges.yaml",
        &[
            "podSecurityStandard=restricted",
            "podSecurityAllowedHostPortRanges[0]=5000-6000",
        ],
    );
    let chart_rules: BTreeSet<(String, String)> = policies
        .iter()
        .flat_map(|policy| {
            let name = policy["metadata"]["name"].as_str().unwrap().to_owned();
            policy["spec"]["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |rule| (name.clone(), rule["name"].as_str().unwrap().to_owned()))
        })
        .collect();
    let units = test_files(&corpus);
    assert!(units.len() >= 17, "pod-security units: {}", units.len());
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for unit in &units {
        let dir = unit.parent().unwrap();
        let test: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(unit).expect("test file"))
                .expect("test YAML");
        let resources = test["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|resource| dir.join(resource.as_str().unwrap()))
            .collect();
        let expectations = test["results"].as_array().unwrap();
        let uses_ranges = expectations
            .iter()
            .any(|expected| expected["policy"] == "disallow-host-ports-range");
        let results = apply(
            if uses_ranges {
                &with_ranges
            } else {
                &restricted
            },
            resources,
        );
        let mut unit_compared = 0;
        for expected in expectations {
            let policy = expected["policy"].as_str().unwrap();
            let rule = expected["rule"].as_str().unwrap();
            let is_aggregate = policy.starts_with("podsecurity-subrule-");
            if !is_aggregate && policy != "disallow-host-ports-range" {
                assert!(
                    chart_rules.contains(&(policy.to_owned(), rule.to_owned())),
                    "{}: the chart has no rule {policy}/{rule}",
                    unit.display()
                );
            }
            let names: Vec<&str> = match expected["resources"].as_array() {
                Some(names) => names.iter().filter_map(Value::as_str).collect(),
                None => vec![expected["resource"].as_str().unwrap()],
            };
            let kind = expected["kind"].as_str().unwrap();
            for name in names {
                let per_rule = results
                    .get(&(kind.to_owned(), name.to_owned()))
                    .cloned()
                    .unwrap_or_default();
                let got = chart_result(policy, rule, &per_rule);
                let want = expected["result"].as_str().unwrap();
                if got != want {
                    mismatches.push(format!(
                        "{}: {kind}/{name} {policy}/{rule}: want {want}, got {got}",
                        unit.display()
                    ));
                }
                unit_compared += 1;
            }
        }
        assert!(unit_compared > 0, "{}: nothing compared", unit.display());
        compared += unit_compared;
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} results differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    eprintln!("{compared} results of {} units match", units.len());
}

/// A Pod whose container `handlers` (probes and `lifecycle`) are `handlers`, as a container or,
/// with `init`, as an init container.
fn pod_with_handlers(name: &str, init: bool, handlers: Value) -> Value {
    let mut container = serde_json::json!({"name": "app", "image": "nginx"});
    container
        .as_object_mut()
        .unwrap()
        .extend(handlers.as_object().unwrap().clone());
    let list = if init { "initContainers" } else { "containers" };
    let mut spec = serde_json::json!({"containers": [{"name": "main", "image": "nginx"}]});
    spec[list] = serde_json::json!([container]);
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
}

/// The corpus predates Kubernetes 1.34's Host Probes / Lifecycle Hooks control: its cases,
/// from the standard (the `host` of probes' and lifecycle handlers' `httpGet` and `tcpSocket`
/// must be unset or empty, in containers and init containers).
#[test]
fn host_probes_control_follows_the_standard() {
    let Some(helm) = helm() else { return };
    let scratch = Scratch::new("host-probes");
    let (baseline, _) = profile(
        &helm,
        &scratch,
        "baseline.yaml",
        &["podSecurityStandard=baseline"],
    );
    let cases = [
        (
            "no-host",
            false,
            serde_json::json!({"livenessProbe": {"httpGet": {"path": "/", "port": 80}},
                "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}),
            "pass",
        ),
        (
            "empty-host",
            false,
            serde_json::json!({"readinessProbe": {"tcpSocket": {"host": "", "port": 80}}}),
            "pass",
        ),
        (
            "liveness-host",
            false,
            serde_json::json!({"livenessProbe": {"httpGet": {"host": "169.254.169.254", "port": 80}}}),
            "fail",
        ),
        (
            "startup-host",
            false,
            serde_json::json!({"startupProbe": {"tcpSocket": {"host": "10.0.0.1", "port": 22}}}),
            "fail",
        ),
        (
            "post-start-host",
            false,
            serde_json::json!({"lifecycle": {"postStart": {"httpGet": {"host": "example.com", "port": 80}}}}),
            "fail",
        ),
        (
            "init-pre-stop-host",
            true,
            serde_json::json!({"lifecycle": {"preStop": {"tcpSocket": {"host": "10.0.0.1", "port": 80}}}}),
            "fail",
        ),
    ];
    let pods: Vec<Value> = cases
        .iter()
        .map(|(name, init, handlers, _)| pod_with_handlers(name, *init, handlers.clone()))
        .collect();
    let mut deployment = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "deployment-host"},
        "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {
            "metadata": {"labels": {"app": "a"}}}}});
    deployment["spec"]["template"]["spec"] = pods[2]["spec"].clone();
    let mut resources: Vec<&Value> = pods.iter().collect();
    resources.push(&deployment);
    let results = apply(&baseline, vec![scratch.write("pods.yaml", &resources)]);
    let rule = ("disallow-host-probes".to_owned(), "host-probes".to_owned());
    let result = |kind: &str, name: &str| {
        results
            .get(&(kind.to_owned(), name.to_owned()))
            .and_then(|per_rule| per_rule.get(&rule))
            .cloned()
            .unwrap_or_else(|| "none".to_owned())
    };
    for (name, _, _, want) in &cases {
        assert_eq!(result("Pod", name), *want, "Pod {name}");
    }
    assert_eq!(result("Deployment", "deployment-host"), "fail", "autogen");
}

#[test]
fn the_charts_own_pods_pass_the_restricted_profile() {
    let Some(helm) = helm() else { return };
    let scratch = Scratch::new("own-pods");
    let (restricted, _) = profile(
        &helm,
        &scratch,
        "restricted.yaml",
        &["podSecurityStandard=restricted"],
    );
    let objects = render(&helm, &[]);
    let workloads: Vec<&Value> = objects
        .iter()
        .filter(|object| {
            ["Deployment", "CronJob", "Job"].contains(&object["kind"].as_str().unwrap_or_default())
        })
        .collect();
    assert_eq!(
        workloads.len(),
        6,
        "four Deployments, the CronJob and the hook Job"
    );
    let resources = scratch.write("workloads.yaml", &workloads);
    let results = apply(&restricted, vec![resources]);
    assert_eq!(results.len(), 6, "every workload evaluated");
    for (resource, per_rule) in &results {
        let failed: Vec<_> = per_rule
            .iter()
            .filter(|(_, result)| *result != "pass")
            .collect();
        assert!(failed.is_empty(), "{resource:?}: {failed:?}");
        assert!(
            per_rule.len() >= 18,
            "{resource:?}: {} rules",
            per_rule.len()
        );
    }
}
