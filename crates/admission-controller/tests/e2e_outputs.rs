//! End to end: what admitted and denied requests leave behind (ephemeral reports aggregated by
//! the reports controller, `PolicyViolation` Events, UpdateRequests), with an admission
//! controller replica in this process serving apiserver-sim through its webhook configurations.
//!
//! With `KYVERNO_E2E_KUBECONFIG` set, the tests run against that cluster and its deployed
//! controllers; the UpdateRequest tests are simulator-only there (a real background controller
//! consumes UpdateRequests as soon as they are written) and say so when skipped.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DynamicObject, ListParams, PostParams};
use kyverno_admission_controller::{Options, Replica, start};
use kyverno_api::kyverno::v2::update_request::UpdateRequest;
use kyverno_api::policy_report::v1alpha2::{PolicyReportResult, PolicyResult};
use kyverno_api::reports::v1::EphemeralReport;
use kyverno_e2e_support::reports::namespace_report;
use kyverno_e2e_support::{
    Cluster, api_for, cluster, create, events_regarding, eventually, pod, skip_on_real_cluster,
};
use kyverno_reports_controller::{controller, telemetry};
use serde_json::{Value, json};

/// The cluster, the replica serving it (on the simulator) and the reports controller.
struct Harness {
    cluster: Cluster,
    replica: Option<Replica>,
    reports: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn new() -> Self {
        let cluster = cluster().await;
        let mut replica = None;
        if let Some(sim) = &cluster.sim {
            let kyverno =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kyverno"}});
            create(&cluster.client, kyverno).await;
            let mut options = Options::with_defaults("kyverno-0");
            options.webhook_addr = SocketAddr::from(([127, 0, 0, 1], 0));
            options.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
            options.lease_ttl = Duration::from_secs(2);
            options.lease_retry_period = Duration::from_millis(200);
            let started = start(cluster.client.clone(), options).await.unwrap();
            sim.map_service("kyverno-svc.kyverno", started.webhook_addr);
            replica = Some(started);
        }
        Self {
            cluster,
            replica,
            reports: None,
        }
    }

    fn client(&self) -> kube::Client {
        self.cluster.client.clone()
    }

    fn ns(&self) -> &str {
        &self.cluster.ns
    }

    /// Runs the reports controller's aggregation (the deployed one does on a real cluster).
    fn start_reports_controller(&mut self) {
        if self.cluster.sim.is_none() {
            return;
        }
        let client = self.client();
        self.reports = Some(tokio::spawn(async move {
            let settings = controller::Settings {
                flush_delay: Duration::from_millis(100),
                ..controller::Settings::default()
            };
            controller::run(client, settings, telemetry::Telemetry::default())
                .await
                .unwrap();
        }));
    }

    /// Creates `policy` and waits until the validating webhook sends requests on `plural`,
    /// (on the simulator) the replica's cache holds it, and the webhook answers a dry run of
    /// `probe` (which leaves nothing behind).
    async fn create_policy(&self, policy: Value, plural: &str, probe: Value) {
        let name = policy["metadata"]["name"].as_str().unwrap().to_owned();
        create(&self.client(), policy).await;
        let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(self.client());
        eventually(
            "the validating webhook covers the policy's kinds",
            || async {
                let config = webhooks
                    .get_opt("kyverno-resource-validating-webhook-cfg")
                    .await
                    .unwrap()?;
                let covered = config
                    .webhooks
                    .unwrap_or_default()
                    .iter()
                    .any(|hook| rules_cover(&hook.rules, plural));
                let cached = self.replica.as_ref().is_none_or(|replica| {
                    let snapshot = replica.stores.cache.snapshot();
                    snapshot
                        .policies
                        .iter()
                        .any(|cached| cached.policy.name == name)
                        || snapshot.cel.iter().any(|cached| cached.key.name == name)
                });
                (covered && cached).then_some(())
            },
        )
        .await;
        webhook_answers(&self.client(), &probe).await;
    }

    /// The Events of namespace `ns` regarding an object named `name`.
    async fn events(&self, ns: &str, name: &str) -> Vec<Event> {
        events_regarding(&self.client(), ns, name)
            .await
            .into_iter()
            .filter(|event| event.reporting_controller.as_deref() == Some("kyverno-admission"))
            .collect()
    }

    /// The first Event of [`Self::events`], once there is one.
    async fn first_event(&self, what: &str, ns: &str, name: &str) -> Event {
        eventually(what, || async {
            self.events(ns, name).await.into_iter().next()
        })
        .await
    }

    /// The UpdateRequests of Kyverno's namespace labelled `label=value`.
    async fn update_requests(&self, label: &str, value: &str) -> Vec<UpdateRequest> {
        Api::<UpdateRequest>::namespaced(self.client(), "kyverno")
            .list(&ListParams::default().labels(&format!("{label}={value}")))
            .await
            .unwrap()
            .items
    }

    /// The first UpdateRequest of [`Self::update_requests`], once there is one.
    async fn first_update_request(&self, what: &str, label: &str, value: &str) -> UpdateRequest {
        eventually(what, || async {
            self.update_requests(label, value).await.into_iter().next()
        })
        .await
    }

    async fn cleanup(self) {
        if let Some(reports) = self.reports {
            reports.abort();
        }
        drop(self.replica);
        self.cluster.cleanup().await;
    }
}

fn require_label(name: &str, ns: &str, action: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"background": false, "rules": [{
            "name": "check-team",
            "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": [ns]}}]},
            "validate": {"failureAction": action, "message": "label 'team' is required",
                "pattern": {"metadata": {"labels": {"team": "?*"}}}}
        }]}
    })
}

async fn create_with(
    client: &kube::Client,
    object: Value,
    dry_run: bool,
) -> Result<DynamicObject, kube::Error> {
    let api = api_for(client, &object).await;
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    let params = PostParams {
        dry_run,
        ..PostParams::default()
    };
    api.create(&params, &object).await
}

/// Whether webhook `rules` send requests on resource `plural`.
fn rules_cover(rules: &Option<Vec<RuleWithOperations>>, plural: &str) -> bool {
    rules.iter().flatten().any(|rule| {
        rule.resources
            .iter()
            .flatten()
            .any(|resource| resource == plural)
    })
}

/// Waits until the webhooks answer a dry run of `probe` (which leaves nothing behind).
async fn webhook_answers(client: &kube::Client, probe: &Value) {
    eventually("the webhook answers", || async {
        match create_with(client, probe.clone(), true).await {
            Err(kube::Error::Api(status)) if status.message.contains("failed calling webhook") => {
                None
            }
            _ => Some(()),
        }
    })
    .await;
}

/// The ephemeral report the admission of the resource with `uid` left in `ns`, once written.
async fn admission_report(client: &kube::Client, ns: &str, uid: &str) -> EphemeralReport {
    let reports: Api<EphemeralReport> = Api::namespaced(client.clone(), ns);
    eventually("the admission report is written", || async {
        reports
            .list(&ListParams::default().labels(&format!("audit.kyverno.io/resource.uid={uid}")))
            .await
            .unwrap()
            .items
            .into_iter()
            .next()
    })
    .await
}

/// The first FAIL result of namespace `ns`'s PolicyReport, once there is one.
async fn namespace_report_fail(client: &kube::Client, ns: &str) -> PolicyReportResult {
    eventually("polr-ns shows the FAIL", || async {
        namespace_report(client, ns)
            .await?
            .content
            .results
            .into_iter()
            .find(|result| result.result == Some(PolicyResult::Fail))
    })
    .await
}

const VIOLATION: &str = "validation error: label 'team' is required. rule check-team failed at path /metadata/labels/team/";

#[tokio::test]
async fn an_audited_violation_is_reported_and_raises_events() {
    let mut harness = Harness::new().await;
    let (client, ns) = (harness.client(), harness.ns().to_owned());
    let policy = format!("audit-team-{ns}");
    harness
        .create_policy(
            require_label(&policy, &ns, "Audit"),
            "pods",
            pod(&ns, "probe", json!({})),
        )
        .await;
    let admitted = create(&client, pod(&ns, "bad", json!({"app": "x"}))).await;
    let uid = admitted.metadata.uid.unwrap();

    // The ephemeral report of the admitted pod, as the reports controller expects it.
    let report = admission_report(&client, &ns, &uid).await;
    let labels = report.metadata.labels.clone().unwrap();
    assert_eq!(labels["audit.kyverno.io/source"], "admission");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kyverno");
    assert_eq!(labels["audit.kyverno.io/resource.gvr"], "pods.v1");
    // The policy's label carries the resourceVersion it was evaluated at.
    assert!(!labels[&format!("cpol.kyverno.io/{policy}")].is_empty());
    assert_eq!(report.spec.owner.uid, uid);
    let result = &report.spec.results[0];
    assert_eq!(result.result, Some(PolicyResult::Fail));
    assert_eq!(result.message.as_deref(), Some(VIOLATION));

    // Aggregated into the namespace's PolicyReport.
    harness.start_reports_controller();
    let fail = namespace_report_fail(&client, &ns).await;
    assert_eq!(fail.policy, policy);
    assert_eq!(fail.rule.as_deref(), Some("check-team"));
    assert_eq!(fail.resources[0].uid.as_deref(), Some(uid.as_str()));

    // Events: on the pod, and on the policy (in `default`, the policy being cluster-scoped).
    let on_pod = harness
        .first_event("a PolicyViolation Event on the pod", &ns, "bad")
        .await;
    assert_eq!(on_pod.reason.as_deref(), Some("PolicyViolation"));
    assert_eq!(on_pod.type_.as_deref(), Some("Warning"));
    assert_eq!(
        on_pod.note.as_deref(),
        Some(format!("policy {policy}/check-team fail: {VIOLATION}").as_str())
    );
    assert_eq!(
        on_pod.regarding.as_ref().unwrap().uid.as_deref(),
        Some(uid.as_str())
    );
    let on_policy = harness
        .first_event("a PolicyViolation Event on the policy", "default", &policy)
        .await;
    assert_eq!(
        on_policy.note.as_deref(),
        Some(format!("Pod {ns}/bad: [check-team] fail; {VIOLATION}").as_str())
    );
    assert_eq!(on_policy.action.as_deref(), Some("Resource Passed"));
    harness.cleanup().await;
}

#[tokio::test]
async fn an_audited_validating_policy_failure_is_reported_and_raises_events() {
    let mut harness = Harness::new().await;
    let (client, ns) = (harness.client(), harness.ns().to_owned());
    let policy = format!("vpol-team-{ns}");
    let message = "label team is required";
    harness
        .create_policy(
            json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
                "metadata": {"name": policy,
                    "annotations": {"policies.kyverno.io/severity": "medium"}},
                "spec": {"validationActions": ["Audit"],
                    "matchConstraints": {"resourceRules": [{"apiGroups": [""],
                        "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"]}]},
                    "matchConditions": [{"name": "in-test-namespace",
                        "expression": format!("request.namespace == '{ns}'")}],
                    "validations": [{"expression":
                        "has(object.metadata.labels) && 'team' in object.metadata.labels",
                        "message": message}]}}),
            "pods",
            pod(&ns, "probe", json!({})),
        )
        .await;
    let admitted = create(&client, pod(&ns, "bad", json!({"app": "x"}))).await;
    let uid = admitted.metadata.uid.unwrap();

    let report = admission_report(&client, &ns, &uid).await;
    let labels = report.metadata.labels.clone().unwrap();
    assert_eq!(labels["audit.kyverno.io/source"], "admission");
    assert!(!labels[&format!("vpol.kyverno.io/{policy}")].is_empty());
    let result = &report.spec.results[0];
    assert_eq!(result.policy, policy);
    assert_eq!(result.result, Some(PolicyResult::Fail));
    assert_eq!(result.source.as_deref(), Some("KyvernoValidatingPolicy"));
    assert_eq!(result.message.as_deref(), Some(message));

    harness.start_reports_controller();
    let fail = namespace_report_fail(&client, &ns).await;
    assert_eq!(fail.policy, policy);
    assert_eq!(fail.source.as_deref(), Some("KyvernoValidatingPolicy"));
    assert_eq!(fail.resources[0].uid.as_deref(), Some(uid.as_str()));

    let on_pod = harness
        .first_event("a PolicyViolation Event on the pod", &ns, "bad")
        .await;
    assert_eq!(on_pod.reason.as_deref(), Some("PolicyViolation"));
    let note = on_pod.note.unwrap_or_default();
    assert!(
        note.starts_with(&format!("policy {policy}/"))
            && note.ends_with(&format!(" fail: {message}")),
        "{note}"
    );
    let on_policy = harness
        .first_event("a PolicyViolation Event on the policy", "default", &policy)
        .await;
    let regarding = on_policy.regarding.unwrap();
    assert_eq!(regarding.kind.as_deref(), Some("ValidatingPolicy"));
    assert_eq!(on_policy.action.as_deref(), Some("Resource Passed"));
    harness.cleanup().await;
}

#[tokio::test]
async fn a_blocked_request_raises_an_event_on_the_policy_only() {
    let harness = Harness::new().await;
    let (client, ns) = (harness.client(), harness.ns().to_owned());
    let policy = format!("enforce-team-{ns}");
    harness
        .create_policy(
            require_label(&policy, &ns, "Enforce"),
            "pods",
            pod(&ns, "probe", json!({})),
        )
        .await;
    let denied = create_with(&client, pod(&ns, "blocked", json!({})), false).await;
    assert!(denied.is_err(), "the pod was admitted");
    let on_policy = harness
        .first_event("a PolicyViolation Event on the policy", "default", &policy)
        .await;
    assert_eq!(on_policy.reason.as_deref(), Some("PolicyViolation"));
    assert_eq!(on_policy.action.as_deref(), Some("Resource Blocked"));
    assert_eq!(
        on_policy.note.as_deref(),
        Some(format!("Pod {ns}/blocked: [check-team] fail (blocked); {VIOLATION}").as_str())
    );
    let related = on_policy.related.unwrap();
    assert_eq!(related.name.as_deref(), Some("blocked"));
    // Nothing about the pod itself: it does not exist.
    assert!(harness.events(&ns, "blocked").await.is_empty());
    let reports: Api<EphemeralReport> = Api::namespaced(client.clone(), &ns);
    assert!(
        reports
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    harness.cleanup().await;
}

#[tokio::test]
async fn a_new_namespace_triggers_a_generate_update_request() {
    if skip_on_real_cluster("a_new_namespace_triggers_a_generate_update_request") {
        return;
    }
    let harness = Harness::new().await;
    let (client, ns) = (harness.client(), harness.ns().to_owned());
    let policy = format!("quota-{ns}");
    let trigger = format!("{ns}-team");
    harness
        .create_policy(
            json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": policy},
                "spec": {"rules": [{
                    "name": "default-quota",
                    "match": {"any": [{"resources": {"kinds": ["Namespace"], "names": [trigger]}}]},
                    "generate": {"apiVersion": "v1", "kind": "ResourceQuota", "name": "default",
                        "namespace": "{{request.object.metadata.name}}", "synchronize": true,
                        "data": {"spec": {"hard": {"pods": "10"}}}}
                }]}
            }),
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("{ns}-probe")}}),
        )
        .await;
    let namespace = create(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": trigger}}),
    )
    .await;
    let request = harness
        .first_update_request(
            "an UpdateRequest for the namespace",
            "generate.kyverno.io/policy-name",
            &policy,
        )
        .await;
    assert!(request.metadata.name.as_deref().unwrap().starts_with("ur-"));
    // The dry-run probes of the namespace queued nothing.
    let all = harness
        .update_requests("generate.kyverno.io/policy-name", &policy)
        .await;
    assert!(
        all.iter()
            .all(|request| request.spec.resource.name.as_deref() == Some(trigger.as_str())),
        "{all:?}"
    );
    let spec = serde_json::to_value(&request.spec).unwrap();
    assert_eq!(spec["requestType"], "generate");
    assert_eq!(spec["policy"], policy.as_str());
    assert_eq!(spec["rule"], "default-quota");
    assert_eq!(spec["deleteDownstream"], false);
    let trigger_spec = json!({"apiVersion": "v1", "kind": "Namespace", "name": trigger,
        "uid": namespace.metadata.uid.unwrap()});
    assert_eq!(spec["resource"], trigger_spec);
    assert_eq!(
        spec["ruleContext"],
        json!([{"rule": "default-quota", "deleteDownstream": false, "synchronize": true,
            "trigger": trigger_spec}])
    );
    let info = &spec["context"]["admissionRequestInfo"];
    assert_eq!(info["operation"], "CREATE");
    assert_eq!(info["admissionRequest"]["kind"]["kind"], "Namespace");
    assert_eq!(
        info["admissionRequest"]["object"]["metadata"]["name"],
        trigger.as_str()
    );
    assert!(
        spec["context"]["userInfo"]["userInfo"]["username"]
            .as_str()
            .is_some_and(|user| !user.is_empty())
    );
    let status = eventually("the UpdateRequest is Pending", || async {
        let stored = Api::<UpdateRequest>::namespaced(client.clone(), "kyverno")
            .get(request.metadata.name.as_deref().unwrap())
            .await
            .unwrap();
        stored.status
    })
    .await;
    assert_eq!(serde_json::to_value(status.state).unwrap(), "Pending");
    harness.cleanup().await;
}

#[tokio::test]
async fn a_mutate_existing_rule_queues_an_update_request_and_leaves_the_trigger() {
    if skip_on_real_cluster(
        "a_mutate_existing_rule_queues_an_update_request_and_leaves_the_trigger",
    ) {
        return;
    }
    let harness = Harness::new().await;
    let (client, ns) = (harness.client(), harness.ns().to_owned());
    let policy = format!("touch-{ns}");
    let config_map = |name: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}})
    };
    create(&client, config_map("target")).await;
    let matching = json!({"any": [{"resources": {"kinds": ["ConfigMap"], "names": ["trigger"], "namespaces": [ns]}}]});
    harness
        .create_policy(
            json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": policy},
                "spec": {"rules": [
                    {"name": "label-trigger", "match": matching,
                     "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"team": "blue"}}}}},
                    {"name": "touch-target", "match": matching,
                     "mutate": {"targets": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "target", "namespace": ns}],
                        // Replacing a label the target lacks fails: were the rule applied at
                        // admission, its error would deny the trigger (failurePolicy Fail).
                        "patchesJson6902": "- op: replace\n  path: /metadata/labels/touched\n  value: \"yes\"\n"}}
                ]}
            }),
            "configmaps",
            config_map("probe"),
        )
        .await;
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    eventually("the mutating webhook covers ConfigMaps", || async {
        let config = mutating
            .get_opt("kyverno-resource-mutating-webhook-cfg")
            .await
            .unwrap()?;
        (!config.webhooks.unwrap_or_default().is_empty()).then_some(())
    })
    .await;
    let admitted = create_with(&client, config_map("trigger"), false)
        .await
        .expect("the trigger is admitted: its target rule is left to the background");
    let labels = admitted.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("blue"));
    assert!(!labels.contains_key("touched"), "{labels:?}");
    let request = harness
        .first_update_request(
            "a mutate UpdateRequest for the trigger",
            "mutate.updaterequest.kyverno.io/policy-name",
            &policy,
        )
        .await;
    let spec = serde_json::to_value(&request.spec).unwrap();
    assert_eq!(spec["requestType"], "mutate");
    assert_eq!(spec["policy"], policy.as_str());
    assert_eq!(spec["rule"], "touch-target");
    assert_eq!(spec["resource"]["name"], "trigger");
    assert_eq!(spec["resource"]["namespace"], ns.as_str());
    let request_labels = request.metadata.labels.unwrap();
    assert_eq!(
        request_labels["mutate.updaterequest.kyverno.io/trigger-name"],
        "trigger"
    );
    assert_eq!(
        request_labels["mutate.updaterequest.kyverno.io/trigger-kind"],
        "ConfigMap"
    );
    // Admission did not touch the target: the background controller will.
    let target = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("target")
        .await
        .unwrap();
    assert!(
        !target
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("touched")
    );
    harness.cleanup().await;
}

#[tokio::test]
async fn a_mutate_existing_mutating_policy_queues_a_cel_mutate_update_request() {
    if skip_on_real_cluster("a_mutate_existing_mutating_policy_queues_a_cel_mutate_update_request")
    {
        return;
    }
    let harness = Harness::new().await;
    let (client, ns) = (harness.client(), harness.ns().to_owned());
    let policy = format!("mpol-{ns}");
    let config_map = |name: &str, labels: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": labels}, "data": {"k": "v"}})
    };
    create(
        &client,
        json!({
            "apiVersion": "policies.kyverno.io/v1", "kind": "MutatingPolicy",
            "metadata": {"name": policy},
            "spec": {
                "evaluation": {"mutateExisting": {"enabled": true}},
                "matchConstraints": {
                    "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                        "operations": ["CREATE"], "resources": ["configmaps"]}],
                    "objectSelector": {"matchLabels": {"e2e-trigger": ns}}
                },
                "targetMatchConstraints": {
                    "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]}]
                },
                "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {
                    "expression": "Object{metadata: Object.metadata{labels: {\"mutated\": \"yes\"}}}"}}]
            }
        }),
    )
    .await;
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    eventually("the mpol webhook covers ConfigMaps", || async {
        let config = mutating
            .get_opt("kyverno-resource-mutating-webhook-cfg")
            .await
            .unwrap()?;
        config
            .webhooks
            .unwrap_or_default()
            .iter()
            .any(|hook| {
                hook.name.starts_with("mpol.mutate") && rules_cover(&hook.rules, "configmaps")
            })
            .then_some(())
    })
    .await;
    webhook_answers(&client, &config_map("probe", json!({}))).await;
    let admitted = create_with(
        &client,
        config_map("trigger", json!({"e2e-trigger": ns})),
        false,
    )
    .await
    .expect("the trigger is admitted");
    assert!(
        !admitted
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("mutated"),
        "the trigger itself is left alone"
    );
    let request = harness
        .first_update_request(
            "a cel-mutate UpdateRequest for the trigger",
            "mutate.updaterequest.kyverno.io/policy-name",
            &policy,
        )
        .await;
    let spec = serde_json::to_value(&request.spec).unwrap();
    assert_eq!(spec["requestType"], "cel-mutate");
    assert_eq!(spec["policy"], policy.as_str());
    assert_eq!(spec["resource"]["kind"], "ConfigMap");
    assert_eq!(spec["resource"]["name"], "trigger");
    assert_eq!(spec["resource"]["namespace"], ns.as_str());
    harness.cleanup().await;
}

#[tokio::test]
async fn a_dry_run_leaves_nothing() {
    let harness = Harness::new().await;
    let (client, ns) = (harness.client(), harness.ns().to_owned());
    let policy = format!("audit-team-{ns}");
    harness
        .create_policy(
            require_label(&policy, &ns, "Audit"),
            "pods",
            pod(&ns, "probe", json!({})),
        )
        .await;
    create_with(&client, pod(&ns, "dry", json!({})), true)
        .await
        .unwrap();
    // Outputs are written in order, batch after batch: once the outputs of a request made after
    // the outputs of a later one appeared, whatever the dry run queued would be written.
    for name in ["first", "second"] {
        create(&client, pod(&ns, name, json!({}))).await;
        harness
            .first_event("the later request's Event", &ns, name)
            .await;
    }
    assert!(harness.events(&ns, "dry").await.is_empty());
    let reports: Api<EphemeralReport> = Api::namespaced(client.clone(), &ns);
    let named_dry = reports
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|report| {
            report
                .metadata
                .annotations
                .as_ref()
                .and_then(|annotations| annotations.get("audit.kyverno.io/resource.name"))
                .map(String::as_str)
                == Some("dry")
        })
        .count();
    assert_eq!(named_dry, 0);
    let on_policy = harness.events("default", &policy).await;
    assert!(
        on_policy
            .iter()
            .all(|event| !event.note.as_deref().unwrap_or_default().contains("/dry:")),
        "{on_policy:?}"
    );
    harness.cleanup().await;
}

#[tokio::test]
async fn a_generating_policy_trigger_queues_a_cel_generate_update_request() {
    if skip_on_real_cluster("a_generating_policy_trigger_queues_a_cel_generate_update_request") {
        return;
    }
    let harness = Harness::new().await;
    let (client, ns) = (harness.client(), harness.ns().to_owned());
    let policy = format!("gpol-{ns}");
    let trigger = format!("{ns}-generated");
    let namespace = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"e2e-trigger": ns}}})
    };
    harness
        .create_policy(
            json!({
                "apiVersion": "policies.kyverno.io/v1", "kind": "GeneratingPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "evaluation": {"synchronize": {"enabled": true}},
                    "matchConstraints": {
                        "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                            "operations": ["CREATE"], "resources": ["namespaces"]}],
                        "objectSelector": {"matchLabels": {"e2e-trigger": ns}}
                    },
                    "generate": [{"template": {
                        "value": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: defaults\n"}}]
                }
            }),
            "namespaces",
            namespace(&format!("{ns}-probe")),
        )
        .await;
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let hook = validating
        .get("kyverno-resource-validating-webhook-cfg")
        .await
        .unwrap()
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .find(|hook| hook.name == "gpol.validate.kyverno.svc-ignore")
        .expect("the GeneratingPolicy webhook");
    assert_eq!(hook.failure_policy.as_deref(), Some("Ignore"));
    assert!(rules_cover(&hook.rules, "namespaces"));
    let created = create(&client, namespace(&trigger)).await;
    let request = harness
        .first_update_request(
            "a cel-generate UpdateRequest for the namespace",
            "generate.kyverno.io/policy-name",
            &policy,
        )
        .await;
    let spec = serde_json::to_value(&request.spec).unwrap();
    assert_eq!(spec["requestType"], "cel-generate");
    assert_eq!(spec["policy"], policy.as_str());
    assert_eq!(spec["synchronize"], true);
    assert_eq!(spec["resource"]["kind"], "Namespace");
    assert_eq!(spec["resource"]["name"], trigger.as_str());
    assert_eq!(
        spec["resource"]["uid"],
        created.metadata.uid.unwrap().as_str()
    );
    // The dry-run probes queued nothing.
    let all = harness
        .update_requests("generate.kyverno.io/policy-name", &policy)
        .await;
    assert_eq!(all.len(), 1, "{all:?}");
    harness.cleanup().await;
}
