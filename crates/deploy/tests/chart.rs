//! `helm lint` and `helm template` of the chart with its default and with non-default values,
//! and what the rendered objects must hold: the four Deployments, their PDBs, Services,
//! restricted security contexts, probes, the `kyverno` ConfigMap with the runtime's defaults,
//! the report cleanup CronJob and the pre-delete hook.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::{NON_DEFAULT_VALUES, helm, named, of_kind, render};
use kyverno_admission_controller::webhooks;
use kyverno_deploy::chart_dir;
use kyverno_runtime::config::KyvernoConfig;
use serde_json::Value;

#[test]
fn lint_passes_with_default_and_non_default_values() {
    let Some(helm) = helm() else { return };
    helm.lint(&chart_dir(), &[])
        .expect("lint with the defaults");
    helm.lint(&chart_dir(), NON_DEFAULT_VALUES)
        .expect("lint with non-default values");
}

#[test]
fn invalid_profile_values_fail_rendering() {
    let Some(helm) = helm() else { return };
    let options = kyverno_deploy::TemplateOptions::default();
    let error = helm
        .template(&chart_dir(), &["podSecurityStandard=privileged"], options)
        .expect_err("unknown level");
    assert!(
        error.to_string().contains("podSecurityStandard must be"),
        "{error}"
    );
    let error = helm
        .template(&chart_dir(), &["validationFailureAction=Deny"], options)
        .expect_err("unknown action");
    assert!(
        error
            .to_string()
            .contains("validationFailureAction must be"),
        "{error}"
    );
    let error = helm
        .template(
            &chart_dir(),
            &["admissionController.webhookTimeout=31"],
            options,
        )
        .expect_err("a timeout the API server refuses");
    assert!(
        error
            .to_string()
            .contains("admissionController.webhookTimeout must be between 1 and 30"),
        "{error}"
    );
}

/// The arguments of the admission controller's container.
fn admission_args(objects: &[Value]) -> Vec<&str> {
    named(objects, "Deployment", "kyverno-admission-controller")["spec"]["template"]["spec"]
        ["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

#[test]
fn webhook_timeout_and_failure_policy_flags_follow_the_values() {
    let Some(helm) = helm() else { return };
    let defaults = render(&helm, &[]);
    let args = admission_args(&defaults);
    assert!(args.contains(&"--webhookTimeout=10"), "{args:?}");
    assert!(
        args.contains(&"--forceFailurePolicyIgnore=false"),
        "{args:?}"
    );
    let objects = render(&helm, NON_DEFAULT_VALUES);
    let args = admission_args(&objects);
    assert!(args.contains(&"--webhookTimeout=20"), "{args:?}");
    assert!(
        args.contains(&"--forceFailurePolicyIgnore=true"),
        "{args:?}"
    );
}

fn replicas(objects: &[Value]) -> BTreeMap<String, i64> {
    of_kind(objects, "Deployment")
        .into_iter()
        .map(|deployment| {
            (
                deployment["metadata"]["name"].as_str().unwrap().to_owned(),
                deployment["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn four_deployments_with_upstream_names_and_replicas() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    assert_eq!(
        replicas(&objects),
        BTreeMap::from([
            ("kyverno-admission-controller".to_owned(), 3),
            ("kyverno-background-controller".to_owned(), 2),
            ("kyverno-cleanup-controller".to_owned(), 2),
            ("kyverno-reports-controller".to_owned(), 2),
        ])
    );
    let reports = named(&objects, "Deployment", "kyverno-reports-controller");
    let containers: Vec<&str> = reports["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|container| container["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        containers,
        ["reports-controller", "background-scan-controller"]
    );
    for deployment in of_kind(&objects, "Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap();
        let pdb = named(&objects, "PodDisruptionBudget", name);
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"], deployment["spec"]["selector"]["matchLabels"],
            "{name}"
        );
        let spread = &deployment["spec"]["template"]["spec"]["topologySpreadConstraints"];
        assert_eq!(spread[0]["topologyKey"], "kubernetes.io/hostname", "{name}");
        assert_eq!(
            spread[0]["labelSelector"]["matchLabels"],
            deployment["spec"]["selector"]["matchLabels"]
        );
        assert_eq!(
            deployment["spec"]["template"]["spec"]["serviceAccountName"], name,
            "one ServiceAccount per controller"
        );
    }
}

#[test]
fn non_default_values_reach_the_objects() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, NON_DEFAULT_VALUES);
    let counts = replicas(&objects);
    assert_eq!(counts["kyverno-admission-controller"], 5);
    assert_eq!(counts["kyverno-background-controller"], 1);
    assert_eq!(counts["kyverno-reports-controller"], 3);
    // One replica: no PDB (it would block every node drain).
    assert!(
        of_kind(&objects, "PodDisruptionBudget")
            .iter()
            .all(|pdb| pdb["metadata"]["name"] != "kyverno-background-controller")
    );
    let admission = &named(&objects, "Deployment", "kyverno-admission-controller")["spec"]["template"]
        ["spec"]["containers"][0];
    assert_eq!(
        admission["image"],
        "registry.example.com/kyverno-rs/admission-controller:v9.9.9"
    );
    assert!(admission_args(&objects).contains(&"--workers=8"));
    let reports = named(&objects, "Deployment", "kyverno-reports-controller");
    assert_eq!(
        reports["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "background scan disabled"
    );
    assert_eq!(reports["metadata"]["labels"]["team"], "platform");
    let config = &named(&objects, "ConfigMap", "kyverno")["data"];
    assert_eq!(
        config["excludeUsernames"],
        "system:serviceaccount:ci:deployer"
    );
    assert!(
        !config["resourceFilters"]
            .as_str()
            .unwrap()
            .contains("[*/*,kyverno,*]")
    );
    let policies = of_kind(&objects, "ClusterPolicy");
    assert_eq!(policies.len(), 17, "baseline and restricted policies");
    assert!(
        policies
            .iter()
            .all(|policy| policy["spec"]["validationFailureAction"] == "Enforce")
    );
}

/// Every container of `pod_spec` with the pod's context: non-root, read-only root file
/// system, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp.
fn assert_restricted(owner: &str, pod_spec: &Value) {
    let pod = &pod_spec["securityContext"];
    assert_eq!(pod["runAsNonRoot"], true, "{owner}");
    assert_eq!(pod["seccompProfile"]["type"], "RuntimeDefault", "{owner}");
    for container in pod_spec["containers"].as_array().unwrap() {
        let context = &container["securityContext"];
        let name = format!("{owner}/{}", container["name"]);
        assert_eq!(context["runAsNonRoot"], true, "{name}");
        assert_eq!(context["readOnlyRootFilesystem"], true, "{name}");
        assert_eq!(context["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(context["privileged"], false, "{name}");
        assert_eq!(
            context["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}"
        );
        assert_eq!(
            context["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        assert!(
            container["resources"]["requests"]["memory"].is_string(),
            "{name}"
        );
        assert!(
            container["resources"]["limits"]["memory"].is_string(),
            "{name}"
        );
    }
}

#[test]
fn every_pod_is_restricted_and_probed() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    for deployment in of_kind(&objects, "Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap();
        let spec = &deployment["spec"]["template"]["spec"];
        assert_restricted(name, spec);
        for container in spec["containers"].as_array().unwrap() {
            for probe in ["livenessProbe", "readinessProbe"] {
                let path = container[probe]["httpGet"]["path"]
                    .as_str()
                    .unwrap_or_default();
                assert!(
                    ["/livez", "/readyz", "/health/liveness", "/health/readiness"].contains(&path),
                    "{name}/{}: {probe} {path:?}",
                    container["name"]
                );
            }
        }
    }
    let cronjob = named(&objects, "CronJob", "kyverno-cleanup-ephemeral-reports");
    assert_restricted(
        "cronjob",
        &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    );
    let hook = named(&objects, "Job", "kyverno-webhooks-cleanup");
    assert_restricted("hook", &hook["spec"]["template"]["spec"]);
}

#[test]
fn services_expose_the_webhooks_and_metrics() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    let port = |name: &str| named(&objects, "Service", name)["spec"]["ports"][0]["port"].clone();
    assert_eq!(port("kyverno-svc"), 443);
    assert_eq!(port("kyverno-cleanup-controller"), 443);
    for metrics in [
        "kyverno-svc-metrics",
        "kyverno-background-controller-metrics",
        "kyverno-cleanup-controller-metrics",
        "kyverno-reports-controller-metrics",
    ] {
        assert_eq!(port(metrics), 8000, "{metrics}");
    }
}

#[test]
fn config_map_holds_the_runtime_defaults() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    let data: BTreeMap<String, String> =
        serde_json::from_value(named(&objects, "ConfigMap", "kyverno")["data"].clone())
            .expect("string data");
    let (config, warnings) = KyvernoConfig::from_data("kyverno", &data);
    assert!(warnings.is_empty(), "{warnings:?}");
    let defaults = KyvernoConfig::with_defaults("kyverno");
    // The chart's filters are the runtime's, plus its own cluster-scoped objects.
    assert_eq!(
        config.resource_filters[..defaults.resource_filters.len()],
        defaults.resource_filters[..]
    );
    assert_eq!(
        config.resource_filters.len(),
        defaults.resource_filters.len() + 2
    );
    assert_eq!(config.webhooks, defaults.webhooks);
    assert_eq!(config.groups, defaults.groups);
    assert_eq!(config.usernames, defaults.usernames);
    assert_eq!(
        config.generate_success_events,
        defaults.generate_success_events
    );
}

#[test]
fn report_cleanup_runs_every_ten_minutes_with_the_reports_image() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    let cronjob = named(&objects, "CronJob", "kyverno-cleanup-ephemeral-reports");
    assert_eq!(cronjob["spec"]["schedule"], "*/10 * * * *");
    let container = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"][0], "report-cleanup");
    let reports = &named(&objects, "Deployment", "kyverno-reports-controller")["spec"]["template"]
        ["spec"]["containers"][0];
    assert_eq!(container["image"], reports["image"]);
}

#[test]
fn pre_delete_hook_removes_every_webhook_configuration() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    let job = named(&objects, "Job", "kyverno-webhooks-cleanup");
    assert_eq!(job["metadata"]["annotations"]["helm.sh/hook"], "pre-delete");
    let args: Vec<&str> = job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for validating in [
        webhooks::VALIDATING_CONFIGURATION,
        webhooks::POLICY_VALIDATING_CONFIGURATION,
        webhooks::EXCEPTION_VALIDATING_CONFIGURATION,
        "kyverno-cleanup-validating-webhook-cfg",
    ] {
        let arg = format!("validatingwebhookconfiguration/{validating}");
        assert!(args.contains(&arg.as_str()), "{arg} not deleted");
    }
    for mutating in [
        webhooks::MUTATING_CONFIGURATION,
        webhooks::POLICY_MUTATING_CONFIGURATION,
    ] {
        let arg = format!("mutatingwebhookconfiguration/{mutating}");
        assert!(args.contains(&arg.as_str()), "{arg} not deleted");
    }
}
