//! End to end on `apiserver-sim` (or the cluster of `KYVERNO_E2E_KUBECONFIG`): Kyverno's own
//! policy webhooks, the readiness written in policy statuses, the CEL policy kinds at admission
//! and the requester's cluster roles.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kyverno_admission_controller::{Options, Replica, start};
use kyverno_e2e_support::{
    Cluster, api_for, cluster, create, eventually, on_real_cluster, skip_on_real_cluster,
};
use serde_json::{Value, json};

/// A cluster and, on the simulator, an admission controller serving it.
struct Setup {
    cluster: Cluster,
    _replica: Option<Replica>,
}

/// Starts an admission controller behind the `kyverno-svc` Service of the simulator.
async fn start_replica(cluster: &Cluster) -> Option<Replica> {
    let sim = cluster.sim.as_ref()?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    let kyverno = serde_json::from_value(json!({"metadata": {"name": "kyverno"}})).unwrap();
    match namespaces.create(&PostParams::default(), &kyverno).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("namespace kyverno: {error}"),
    }
    let mut options = Options::with_defaults("kyverno-0");
    options.webhook_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    options.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    options.lease_ttl = Duration::from_secs(2);
    options.lease_retry_period = Duration::from_millis(200);
    let replica = start(cluster.client.clone(), options)
        .await
        .expect("the replica starts");
    sim.map_service("kyverno-svc.kyverno", replica.webhook_addr);
    Some(replica)
}

async fn setup() -> Setup {
    let cluster = cluster().await;
    let replica = start_replica(&cluster).await;
    Setup {
        cluster,
        _replica: replica,
    }
}

/// Creates `object` as a dry run, giving the API's answer.
async fn dry_run(client: &kube::Client, object: &Value) -> Result<DynamicObject, kube::Error> {
    let api = api_for(client, object).await;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    api.create(&params, &serde_json::from_value(object.clone()).unwrap())
        .await
}

/// The message of a webhook's denial; `None` for other errors (such as a webhook that cannot
/// be called yet while the replica starts).
fn denied(error: kube::Error) -> Option<String> {
    match error {
        kube::Error::Api(status) if status.message.contains("denied the request") => {
            Some(status.message)
        }
        _ => None,
    }
}

/// A client acting as `user` (impersonated by the admin).
async fn client_as(cluster: &Cluster, user: &str) -> kube::Client {
    let mut kubeconfig = match (&cluster.sim, std::env::var("KYVERNO_E2E_KUBECONFIG")) {
        (Some(sim), _) => Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token())).unwrap(),
        (None, Ok(path)) => Kubeconfig::read_from(path).unwrap(),
        (None, Err(_)) => unreachable!("a real cluster has a kubeconfig"),
    };
    for named in &mut kubeconfig.auth_infos {
        if let Some(auth_info) = named.auth_info.as_mut() {
            auth_info.impersonate = Some(user.to_owned());
            auth_info.impersonate_groups = Some(vec!["system:authenticated".to_owned()]);
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn pod(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// A ClusterPolicy whose `validate.cel` expression does not compile.
fn broken_cluster_policy(name: &str) -> Value {
    json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": name},
        "spec": {"rules": [{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"cel": {"expressions": [{"expression": "object.metadata.name ==="}]}}}]}})
}

fn pod_rules() -> Value {
    json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]})
}

#[tokio::test]
async fn an_invalid_cluster_policy_is_rejected_with_the_field_path() {
    let setup = setup().await;
    let client = &setup.cluster.client;
    let policy = broken_cluster_policy(&format!("broken-{}", setup.cluster.ns));
    let message = eventually("the invalid policy is rejected", || async {
        dry_run(client, &policy).await.err().and_then(denied)
    })
    .await;
    assert!(
        message.starts_with(
            "admission webhook \"validate-policy.kyverno.svc\" denied the request: spec.rules[0].validate.cel.expressions[0].expression"
        ),
        "{message}"
    );
    // A valid policy is admitted.
    let valid = kyverno_e2e_support::require_label_policy(
        &format!("valid-{}", setup.cluster.ns),
        "Pod",
        "app",
    );
    dry_run(client, &valid)
        .await
        .expect("a valid policy is admitted");
    setup.cluster.cleanup().await;
}

#[tokio::test]
async fn policies_report_their_readiness_in_status() {
    if skip_on_real_cluster("policies_report_their_readiness_in_status") {
        return;
    }
    // The policies exist before Kyverno starts (its policy webhook would reject the broken one).
    let cluster = cluster().await;
    let client = &cluster.client;
    create(client, broken_cluster_policy("broken")).await;
    create(
        client,
        kyverno_e2e_support::require_label_policy("valid", "Pod", "app"),
    )
    .await;
    create(
        client,
        json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
            "metadata": {"name": "broken-vpol"},
            "spec": {"matchConstraints": pod_rules(), "validations": [{"expression": "1 +"}]}}),
    )
    .await;
    let _replica = start_replica(&cluster).await;
    let status_of = |object: Value| async move {
        let api = api_for(client, &object).await;
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        api.get(&name).await.ok()?.data.get("status").cloned()
    };
    let cluster_policy = |name: &str| json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": name}});
    let broken = eventually("the broken policy is not ready", || async {
        status_of(cluster_policy("broken"))
            .await
            .filter(|status| status["ready"] == json!(false))
    })
    .await;
    let condition = &broken["conditions"][0];
    assert_eq!(condition["type"], "Ready");
    assert_eq!(condition["status"], "False");
    assert_eq!(condition["reason"], "Failed");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("spec.rules[0].validate.cel.expressions[0].expression"),
        "{condition}"
    );
    let valid = eventually("the valid policy is ready", || async {
        status_of(cluster_policy("valid"))
            .await
            .filter(|status| status["ready"] == json!(true))
    })
    .await;
    assert_eq!(
        valid["conditions"][0],
        json!({"type": "Ready", "status": "True", "reason": "Succeeded", "message": "Ready",
            "observedGeneration": 1,
            "lastTransitionTime": valid["conditions"][0]["lastTransitionTime"]})
    );
    let vpol = eventually("the broken ValidatingPolicy is not ready", || async {
        status_of(
            json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
            "metadata": {"name": "broken-vpol"}}),
        )
        .await
        .filter(|status| status["conditionStatus"]["ready"] == json!(false))
    })
    .await;
    assert_eq!(
        vpol["conditionStatus"]["conditions"][0]["reason"],
        json!("Failed")
    );
    // Fixing the policy makes it ready.
    let api = api_for(client, &cluster_policy("broken")).await;
    api.patch(
        "broken",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"rules": [{"name": "r",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "validate": {"cel": {"expressions": [{"expression": "true"}]}}}]}})),
    )
    .await
    .unwrap();
    eventually("the fixed policy is ready", || async {
        status_of(cluster_policy("broken"))
            .await
            .filter(|status| status["ready"] == json!(true))
    })
    .await;
}

/// A ValidatingPolicy requiring label `team` on the pods of `ns`.
fn require_team(ns: &str, name: &str, action: &str) -> Value {
    json!({"apiVersion": "policies.kyverno.io/v1", "kind": "ValidatingPolicy",
        "metadata": {"name": name},
        "spec": {"validationActions": [action], "matchConstraints": pod_rules(),
            "matchConditions": [{"name": "in-test-namespace",
                "expression": format!("request.namespace == '{ns}'")}],
            "validations": [{"expression": "has(object.metadata.labels) && 'team' in object.metadata.labels",
                "message": "label team is required"}]}})
}

#[tokio::test]
async fn a_validating_policy_denies_in_deny_and_admits_in_audit() {
    let setup = setup().await;
    let (client, ns) = (&setup.cluster.client, setup.cluster.ns.clone());
    let name = format!("require-team-{ns}");
    create(client, require_team(&ns, &name, "Deny")).await;
    let unlabelled = pod(&ns, "sample", json!({}));
    let message = eventually("the unlabelled pod is denied", || async {
        dry_run(client, &unlabelled).await.err().and_then(denied)
    })
    .await;
    assert_eq!(
        message,
        format!(
            "admission webhook \"vpol.validate.kyverno.svc-fail\" denied the request: Policy {name} failed: label team is required"
        )
    );
    dry_run(client, &pod(&ns, "labelled", json!({"team": "core"})))
        .await
        .expect("a labelled pod is admitted");
    let api = api_for(client, &require_team(&ns, &name, "Audit")).await;
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"validationActions": ["Audit"]}})),
    )
    .await
    .unwrap();
    eventually("in Audit the unlabelled pod is admitted", || async {
        dry_run(client, &unlabelled).await.ok()
    })
    .await;
    api.delete(&name, &Default::default()).await.unwrap();
    setup.cluster.cleanup().await;
}

#[tokio::test]
async fn a_mutating_policy_patches_a_pod() {
    let setup = setup().await;
    let (client, ns) = (&setup.cluster.client, setup.cluster.ns.clone());
    let name = format!("add-team-{ns}");
    create(
        client,
        json!({"apiVersion": "policies.kyverno.io/v1", "kind": "MutatingPolicy",
            "metadata": {"name": name},
            "spec": {"matchConstraints": pod_rules(),
                "matchConditions": [{"name": "in-test-namespace",
                    "expression": format!("request.namespace == '{ns}'")}],
                "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {
                    "expression": "Object{metadata: Object.metadata{labels: {\"team\": \"core\"}}}"}}]}}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mutated = eventually("the pod is mutated", || async {
        let created = dry_run(client, &pod(&ns, "sample", json!({"app": "demo"})))
            .await
            .ok()?;
        let labels = created.metadata.labels?;
        (labels.get("team").map(String::as_str) == Some("core")).then_some(labels)
    })
    .await;
    assert_eq!(mutated.get("app").map(String::as_str), Some("demo"));
    // A real creation is mutated too.
    let created = pods
        .create(
            &PostParams::default(),
            &serde_json::from_value(pod(&ns, "real", json!({}))).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        created
            .metadata
            .labels
            .unwrap_or_default()
            .get("team")
            .map(String::as_str),
        Some("core")
    );
    api_for(
        client,
        &json!({"apiVersion": "policies.kyverno.io/v1", "kind": "MutatingPolicy"}),
    )
    .await
    .delete(&name, &Default::default())
    .await
    .unwrap();
    setup.cluster.cleanup().await;
}

#[tokio::test]
async fn cluster_admins_are_excluded_by_cluster_roles() {
    let setup = setup().await;
    let cluster = &setup.cluster;
    let (client, ns) = (&cluster.client, cluster.ns.clone());
    let admin = format!("admin-{ns}");
    let other = format!("other-{ns}");
    create(
        client,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("{admin}-cluster-admin")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": admin}]}),
    )
    .await;
    let policy = format!("require-app-{ns}");
    create(
        client,
        json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": policy},
            "spec": {"background": false, "rules": [{"name": "require-app",
                "match": {"any": [{"resources": {"kinds": ["Pod"], "namespaces": [ns]}}]},
                "exclude": {"any": [{"clusterRoles": ["cluster-admin"]}]},
                "validate": {"failureAction": "Enforce", "message": "label app is required",
                    "pattern": {"metadata": {"labels": {"app": "?*"}}}}}]}}),
    )
    .await;
    let unlabelled = pod(&ns, "sample", json!({}));
    let other_client = client_as(cluster, &other).await;
    let message = eventually("the other user's pod is denied", || async {
        dry_run(&other_client, &unlabelled)
            .await
            .err()
            .and_then(denied)
    })
    .await;
    assert!(message.contains("label app is required"), "{message}");
    let admin_client = client_as(cluster, &admin).await;
    eventually("the cluster admin's pod is admitted", || async {
        dry_run(&admin_client, &unlabelled).await.ok()
    })
    .await;
    if on_real_cluster() {
        let policies = api_for(
            client,
            &json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy"}),
        )
        .await;
        let _ = policies.delete(&policy, &Default::default()).await;
    }
    setup.cluster.cleanup().await;
}
