//! End to end: certificate renewal. Two replicas against `apiserver-sim` with certificates that
//! last two minutes and are renewed when less than 100 seconds remain (a rotation every twenty
//! seconds or so): the leader renews the CA and the serving certificate, the other replica
//! (the one the `kyverno-svc` Service reaches) serves the new certificate, the webhook
//! configuration trusts the old and the new CA during the rotation, and admission requests are
//! answered by the policy all along.
//!
//! Simulator-only: it starts replicas with short-lived certificates in this process.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, PostParams};
use kyverno_admission_controller::tls::split_certificates;
use kyverno_admission_controller::{Options, Replica, start};
use kyverno_e2e_support::{
    Cluster, LIMIT, cluster, create, eventually, pod, require_label_policy, skip_on_real_cluster,
};
use serde_json::json;

const CA_SECRET: &str = "kyverno-svc.kyverno.svc.kyverno-tls-ca";
const PAIR_SECRET: &str = "kyverno-svc.kyverno.svc.kyverno-tls-pair";
const SERVICE_NAME: &str = "kyverno-svc.kyverno.svc";

async fn replica(client: &Client, name: &str) -> Replica {
    let mut options = Options::with_defaults(name);
    options.webhook_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    options.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    options.lease_ttl = Duration::from_secs(5);
    options.lease_retry_period = Duration::from_millis(200);
    options.ca_lifetime = Duration::from_secs(120);
    options.cert_lifetime = Duration::from_secs(120);
    options.renew_before = Duration::from_secs(100);
    options.certificate_check_period = Duration::from_millis(500);
    start(client.clone(), options)
        .await
        .expect("replica starts")
}

/// The `tls.crt` of a Secret.
async fn secret_cert(client: &Client, name: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), "kyverno")
        .get_opt(name)
        .await
        .expect("secret readable")?;
    String::from_utf8(secret.data?.get("tls.crt")?.0.clone()).ok()
}

/// The CAs the validating webhook configuration trusts.
async fn webhook_cas(client: &Client) -> Vec<String> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let Some(config) = api
        .get_opt("kyverno-resource-validating-webhook-cfg")
        .await
        .expect("configuration readable")
    else {
        return Vec::new();
    };
    let bundle = config
        .webhooks
        .unwrap_or_default()
        .first()
        .and_then(|hook| hook.client_config.ca_bundle.clone())
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
        .unwrap_or_default();
    split_certificates(&bundle)
}

/// The certificate `addr` serves (DER), when it verifies against `ca` for the Service's name.
async fn served_by(addr: SocketAddr, ca: &str) -> Option<Vec<u8>> {
    let tls = apiserver_sim::tls::client_config(ca.as_bytes()).ok()?;
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from(SERVICE_NAME).ok()?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .ok()?;
    Some(stream.get_ref().1.peer_certificates()?.first()?.to_vec())
}

/// A dry-run Pod creation through the API server (and so the webhook).
async fn try_pod(cluster: &Cluster, name: &str, labels: serde_json::Value) -> Result<(), String> {
    let pod: Pod = serde_json::from_value(pod(&cluster.ns, name, labels)).expect("a pod");
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    Api::<Pod>::namespaced(cluster.client.clone(), &cluster.ns)
        .create(&params, &pod)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// The unlabelled Pod is denied by the policy and the labelled one admitted: the API server
/// reached the webhook over TLS.
async fn admission_answers(cluster: &Cluster, policy: &str) {
    let denied = try_pod(cluster, "unlabelled", json!({}))
        .await
        .expect_err("the unlabelled pod is denied");
    assert!(
        denied.contains("blocked due to the following policies") && denied.contains(policy),
        "not denied by the policy: {denied}"
    );
    try_pod(cluster, "labelled", json!({"tier": "web"}))
        .await
        .expect("the labelled pod is admitted");
}

#[tokio::test]
async fn the_leader_renews_certificates_and_admission_goes_on() {
    if skip_on_real_cluster("the_leader_renews_certificates_and_admission_goes_on") {
        return;
    }
    let cluster = cluster().await;
    let client = cluster.client.clone();
    let sim = cluster.sim.as_ref().expect("on the simulator");
    create(
        &client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kyverno"}}),
    )
    .await;
    let leader = replica(&client, "kyverno-0").await;
    eventually("the first replica leads", || async {
        leader.is_leader().then_some(())
    })
    .await;
    let follower = replica(&client, "kyverno-1").await;
    assert!(!follower.is_leader());
    // The API server reaches the follower only: what it serves is what the leader renewed.
    sim.map_service("kyverno-svc.kyverno", follower.webhook_addr);

    let name = format!("require-tier-{}", cluster.ns);
    let mut policy = require_label_policy(&name, "Pod", "tier");
    policy["spec"]["validationFailureAction"] = json!("Enforce");
    policy["spec"]["rules"][0]["match"] =
        json!({"any": [{"resources": {"kinds": ["Pod"], "namespaces": [cluster.ns]}}]});
    create(&client, policy).await;
    eventually("the policy is enforced", || async {
        try_pod(&cluster, "unlabelled", json!({}))
            .await
            .err()
            .filter(|denied| denied.contains(&name))
    })
    .await;

    let first_ca = split_certificates(&secret_cert(&client, CA_SECRET).await.expect("a CA"))
        .pop()
        .expect("a CA certificate");
    let first_pair = secret_cert(&client, PAIR_SECRET).await.expect("a pair");
    let mut rotation_seen_in_webhook = false;
    let rotation = tokio::time::timeout(LIMIT * 2, async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            admission_answers(&cluster, &name).await;
            let cas = split_certificates(&secret_cert(&client, CA_SECRET).await.expect("a CA"));
            let Some(newest) = cas.last().filter(|newest| **newest != first_ca) else {
                continue;
            };
            // During the rotation the webhook trusts the old and the new CA.
            let trusted = webhook_cas(&client).await;
            rotation_seen_in_webhook |= trusted.contains(&first_ca) && trusted.contains(newest);
            let pair = secret_cert(&client, PAIR_SECRET).await.expect("a pair");
            // Both replicas serve a certificate of the new CA, the one the leader issued.
            let served = [
                served_by(follower.webhook_addr, newest).await,
                served_by(leader.webhook_addr, newest).await,
            ];
            if rotation_seen_in_webhook && pair != first_pair && served.iter().all(Option::is_some)
            {
                return;
            }
        }
    })
    .await;
    assert!(
        rotation.is_ok(),
        "no complete rotation within {:?} (seen in the webhook configuration: {rotation_seen_in_webhook})",
        LIMIT * 2
    );
    // Still answered after the rotation.
    admission_answers(&cluster, &name).await;
    cluster.cleanup().await;
}
