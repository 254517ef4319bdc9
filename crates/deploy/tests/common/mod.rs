//! Helpers of the chart tests: finding helm and rendering the chart.
#![allow(dead_code)]

use kyverno_deploy::{Helm, TemplateOptions, chart_dir, objects};
use serde_json::Value;

/// Values that change every part of the chart from its defaults.
pub const NON_DEFAULT_VALUES: &[&str] = &[
    "admissionController.replicas=5",
    "admissionController.extraArgs.workers=8",
    "admissionController.webhookTimeout=20",
    "features.forceFailurePolicyIgnore.enabled=true",
    "admissionController.image.registry=registry.example.com",
    "backgroundController.replicas=1",
    "backgroundController.rbac.clusterRole.extraResources[0].apiGroups[0]=apps",
    "backgroundController.rbac.clusterRole.extraResources[0].resources[0]=deployments",
    "cleanupController.rbac.clusterRole.extraResources[0].apiGroups[0]=",
    "cleanupController.rbac.clusterRole.extraResources[0].resources[0]=pods",
    "reportsController.replicas=3",
    "features.backgroundScan.enabled=false",
    "config.excludeUsernames[0]=system:serviceaccount:ci:deployer",
    "config.excludeKyvernoNamespace=false",
    "image.tag=v9.9.9",
    "podSecurityStandard=restricted",
    "validationFailureAction=Enforce",
    "podSecurityAllowedHostPortRanges[0]=5000-6000",
    "customLabels.team=platform",
];

/// helm, or `None` when there is none and the environment does not require it (then the test
/// is skipped with a message). `KYVERNO_E2E_REQUIRE_KUBECTL=1` (set by `cargo xtask test`,
/// which also installs helm) turns the skip into a failure.
pub fn helm() -> Option<Helm> {
    match Helm::find() {
        Ok(helm) => Some(helm),
        Err(error) => {
            assert!(
                std::env::var("KYVERNO_E2E_REQUIRE_KUBECTL").as_deref() != Ok("1"),
                "{error} and KYVERNO_E2E_REQUIRE_KUBECTL=1"
            );
            eprintln!("skipped: {error}");
            None
        }
    }
}

/// The chart's objects rendered with `values` (hooks included, CRDs left out).
pub fn render(helm: &Helm, values: &[&str]) -> Vec<Value> {
    let text = helm
        .template(
            &chart_dir(),
            values,
            TemplateOptions {
                include_crds: false,
                include_hooks: true,
            },
        )
        .expect("the chart renders");
    objects(&text).expect("rendered YAML parses")
}

/// The objects of `kind`.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|object| object["kind"] == kind)
        .collect()
}

/// The object of `kind` named `name`.
pub fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}
