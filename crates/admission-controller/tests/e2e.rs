//! End to end: admission-controller replicas in this process against `apiserver-sim`, which
//! calls them over HTTPS through the webhook configurations they manage, as a real API server
//! does (its Service is mapped to a local TCP balancer over the live replicas).
//!
//! With `KYVERNO_E2E_KUBECONFIG` set, the portable test runs against that cluster instead (an
//! admission controller must be deployed there, in the `kyverno` namespace); the tests that
//! start, stop or call replicas directly are simulator-only and say so when skipped.
#![allow(clippy::unwrap_used, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiserver_sim::{ApiServerSim, SimConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kyverno_admission_controller::{Options, Replica, start};
use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use kyverno_e2e_support::{ensure_namespace, repo_crds};
use serde_json::{Value, json};

/// The upper bound of any single wait.
const LIMIT: Duration = Duration::from_secs(60);

async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {LIMIT:?}: {what}"),
    }
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(what, async {
        while !f().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Polls `f` until it gives a value.
async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = f().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

fn on_real_cluster() -> bool {
    std::env::var_os("KYVERNO_E2E_KUBECONFIG").is_some()
}

fn skip_on_real_cluster(test: &str) -> bool {
    if on_real_cluster() {
        eprintln!("SKIPPED {test}: simulator-only (it starts and stops replicas in this process)");
    }
    on_real_cluster()
}

/// A TCP balancer standing for the Service: each connection goes to the first live replica,
/// starting from the next one each time.
struct Balancer {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn balancer() -> Balancer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backends: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let shared = Arc::clone(&backends);
    let task = tokio::spawn(async move {
        let mut next = 0usize;
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let candidates = shared.lock().unwrap().clone();
            next = next.wrapping_add(1);
            tokio::spawn(async move {
                for offset in 0..candidates.len() {
                    let backend = candidates[(next + offset) % candidates.len()];
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                }
            });
        }
    });
    Balancer {
        addr,
        backends,
        task,
    }
}

/// The cluster under test and the replicas serving it.
struct Harness {
    client: Client,
    sim: Option<ApiServerSim>,
    balancer: Option<Balancer>,
    replicas: Vec<Option<Replica>>,
    ns: String,
}

impl Harness {
    /// A simulator with `replicas` admission controllers behind the `kyverno-svc` Service, or
    /// the real cluster of `KYVERNO_E2E_KUBECONFIG`; a fresh namespace for the test.
    async fn new(replicas: usize) -> Self {
        let (client, sim, balancer) = match std::env::var("KYVERNO_E2E_KUBECONFIG") {
            Ok(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .unwrap();
                (Client::try_from(config).unwrap(), None, None)
            }
            Err(_) => {
                assert!(
                    std::env::var("KYVERNO_E2E_REQUIRE_CLUSTER").as_deref() != Ok("1"),
                    "KYVERNO_E2E_REQUIRE_CLUSTER=1 but KYVERNO_E2E_KUBECONFIG is not set"
                );
                let sim = ApiServerSim::start(SimConfig::default().with_crd_dir(repo_crds()))
                    .await
                    .unwrap();
                let balancer = balancer().await;
                sim.map_service("kyverno-svc.kyverno", balancer.addr);
                (sim.client().await.unwrap(), Some(sim), Some(balancer))
            }
        };
        let mut harness = Self {
            client,
            sim,
            balancer,
            replicas: Vec::new(),
            ns: format!("e2e-{}", &apiserver_sim::new_uid()[..8]),
        };
        if harness.sim.is_some() {
            ensure_namespace(&harness.client, "kyverno").await;
            for index in 0..replicas {
                harness.start_replica(index).await;
            }
        }
        ensure_namespace(&harness.client, &harness.ns).await;
        harness
    }

    async fn start_replica(&mut self, index: usize) {
        let mut options = Options::with_defaults(&format!("kyverno-{index}"));
        options.webhook_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        options.metrics_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        options.lease_ttl = Duration::from_secs(2);
        options.lease_retry_period = Duration::from_millis(200);
        options.max_body_bytes = 1024 * 1024;
        let replica = start(self.client.clone(), options).await.unwrap();
        if let Some(balancer) = &self.balancer {
            balancer.backends.lock().unwrap().push(replica.webhook_addr);
        }
        self.replicas.push(Some(replica));
    }

    /// Stops a replica at once, as a killed pod (the balancer keeps its address: connections
    /// to it are refused and go to another replica).
    fn kill(&mut self, index: usize) {
        self.replicas[index] = None;
    }

    fn leader(&self) -> Option<usize> {
        self.replicas
            .iter()
            .position(|replica| replica.as_ref().is_some_and(Replica::is_leader))
    }

    async fn cleanup(self) {
        if self.sim.is_none() {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let _ = api.delete(&self.ns, &DeleteParams::default()).await;
        }
    }

    /// A ClusterPolicy that only applies in the test's namespace.
    async fn create_policy(&self, name: &str, action: &str, rule: Value) -> String {
        let name = format!("{name}-{}", self.ns);
        let mut rule = rule;
        rule["match"] =
            json!({"any": [{"resources": {"kinds": ["Pod"], "namespaces": [self.ns]}}]});
        if let Some(validate) = rule.get_mut("validate") {
            validate["failureAction"] = json!(action);
        }
        let policy: ClusterPolicy = serde_json::from_value(json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": name}, "spec": {"background": false, "rules": [rule]},
        }))
        .unwrap();
        Api::<ClusterPolicy>::all(self.client.clone())
            .create(&PostParams::default(), &policy)
            .await
            .unwrap();
        name
    }

    async fn delete_policy(&self, name: &str) {
        Api::<ClusterPolicy>::all(self.client.clone())
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    /// Creates a Pod (for real, or as a dry run), returning the API's answer.
    async fn create_pod(
        &self,
        name: &str,
        labels: Value,
        dry_run: bool,
    ) -> Result<Pod, kube::Error> {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap();
        let params = PostParams {
            dry_run,
            ..PostParams::default()
        };
        Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .create(&params, &pod)
            .await
    }

    async fn validating_rules(&self) -> Vec<Value> {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        let Ok(Some(config)) = api.get_opt("kyverno-resource-validating-webhook-cfg").await else {
            return Vec::new();
        };
        config
            .webhooks
            .unwrap_or_default()
            .into_iter()
            .flat_map(|hook| hook.rules.unwrap_or_default())
            .map(|rule| serde_json::to_value(rule).unwrap())
            .collect()
    }
}

const REQUIRE_LABEL: &str = "validation error: The label `app.kubernetes.io/name` is required. rule check-for-labels failed at path /metadata/labels/app.kubernetes.io/name/";

fn require_label_rule() -> Value {
    json!({"name": "check-for-labels", "validate": {
        "message": "The label `app.kubernetes.io/name` is required.",
        "pattern": {"metadata": {"labels": {"app.kubernetes.io/name": "?*"}}}}})
}

fn denial(error: kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message,
        other => panic!("expected a denial, got {other}"),
    }
}

#[tokio::test]
async fn enforce_audit_mutate_and_policy_deletion() {
    let harness = Harness::new(1).await;
    let ns = harness.ns.clone();
    within("enforce, audit, mutate", async {
        let enforce = harness.create_policy("require-labels", "Enforce", require_label_rule()).await;
        // The policy reaches the cache and the webhook configuration: the Pod is denied.
        let message = poll("the unlabelled pod is denied", || async {
            harness.create_pod("sample", json!({}), true).await.err().map(denial)
        })
        .await;
        let (line_1, line_2) = REQUIRE_LABEL.split_at(REQUIRE_LABEL.find(" rule check").unwrap());
        assert_eq!(
            message,
            format!(
                "admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\nresource Pod/{ns}/sample was blocked due to the following policies \n\n{enforce}:\n  check-for-labels: '{}\n    {}'\n",
                line_1.replace('\'', "''"),
                line_2.trim_start().replace('\'', "''"),
            ),
            "{message}"
        );
        let admitted = harness
            .create_pod("labelled", json!({"app.kubernetes.io/name": "demo"}), false)
            .await
            .unwrap();
        assert_eq!(admitted.metadata.name.as_deref(), Some("labelled"));

        // Audit: the same rule admits.
        harness.delete_policy(&enforce).await;
        eventually("the deleted policy's rules leave the webhook configuration", || async {
            harness.validating_rules().await.is_empty()
        })
        .await;
        let audit = harness.create_policy("audit-labels", "Audit", require_label_rule()).await;
        eventually("the audit policy is in the webhook configuration", || async {
            !harness.validating_rules().await.is_empty()
        })
        .await;
        harness.create_pod("audited", json!({}), false).await.unwrap();
        harness.delete_policy(&audit).await;

        // Mutate: a label is added.
        let mutate = harness
            .create_policy(
                "add-team",
                "Audit",
                json!({"name": "add-team", "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"+(team)": "platform"}}}}}),
            )
            .await;
        let mutated = poll("the mutate policy labels new pods", || async {
            let pod = harness.create_pod("mutated", json!({}), true).await.unwrap();
            pod.metadata.labels.unwrap_or_default().get("team").cloned()
        })
        .await;
        assert_eq!(mutated, "platform");
        harness.delete_policy(&mutate).await;
        let api: Api<MutatingWebhookConfiguration> = Api::all(harness.client.clone());
        eventually("the mutating webhook goes with its last policy", || async {
            api.get_opt("kyverno-resource-mutating-webhook-cfg")
                .await
                .unwrap()
                .is_some_and(|config| config.webhooks.unwrap_or_default().is_empty())
        })
        .await;
    })
    .await;
    harness.cleanup().await;
}

/// Posts `body` to a replica over HTTPS (trusting the CA in the Secret).
async fn post(client: &Client, addr: SocketAddr, path: &str, body: Vec<u8>) -> (u16, String) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kyverno");
    let ca = secrets
        .get("kyverno-svc.kyverno.svc.kyverno-tls-ca")
        .await
        .unwrap();
    let ca = ca.data.unwrap()["tls.crt"].0.clone();
    let tls = apiserver_sim::tls::client_config(&ca).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("kyverno-svc.kyverno.svc").unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .header("host", "kyverno-svc.kyverno.svc")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&text).into_owned())
}

async fn wait_ready(harness: &Harness) {
    let secrets: Api<Secret> = Api::namespaced(harness.client.clone(), "kyverno");
    eventually("the serving certificate exists", || async {
        secrets
            .get_opt("kyverno-svc.kyverno.svc.kyverno-tls-pair")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    eventually("the replicas are ready", || async {
        let mut all = true;
        for replica in harness.replicas.iter().flatten() {
            all &= get(replica.webhook_addr, &harness.client, "/health/readiness").await == 200;
        }
        all
    })
    .await;
}

async fn get(addr: SocketAddr, client: &Client, path: &str) -> u16 {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kyverno");
    let Ok(Some(ca)) = secrets
        .get_opt("kyverno-svc.kyverno.svc.kyverno-tls-ca")
        .await
    else {
        return 0;
    };
    let ca = ca.data.unwrap()["tls.crt"].0.clone();
    let tls = apiserver_sim::tls::client_config(&ca).unwrap();
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let name = rustls::pki_types::ServerName::try_from("kyverno-svc.kyverno.svc").unwrap();
    let Ok(stream) = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
    else {
        return 0;
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", "kyverno-svc.kyverno.svc")
        .body(Full::new(Bytes::new()))
        .unwrap();
    sender
        .send_request(request)
        .await
        .map_or(0, |response| response.status().as_u16())
}

#[tokio::test]
async fn malformed_and_oversized_reviews_get_400_and_serving_goes_on() {
    if skip_on_real_cluster("malformed_and_oversized_reviews_get_400_and_serving_goes_on") {
        return;
    }
    let harness = Harness::new(1).await;
    within("bad input", async {
        wait_ready(&harness).await;
        let addr = harness.replicas[0].as_ref().unwrap().webhook_addr;
        let (status, text) = post(
            &harness.client,
            addr,
            "/validate/fail",
            b"{\"apiVersion\":".to_vec(),
        )
        .await;
        assert_eq!(status, 400);
        assert!(text.starts_with("malformed AdmissionReview:"), "{text}");
        let (status, text) = post(
            &harness.client,
            addr,
            "/validate/fail",
            vec![b'x'; 2 * 1024 * 1024],
        )
        .await;
        assert_eq!(status, 400);
        assert!(text.contains("larger than 1048576 bytes"), "{text}");
        // Still serving, through the API server.
        harness
            .create_policy("require-labels", "Enforce", require_label_rule())
            .await;
        eventually("the unlabelled pod is denied", || async {
            harness.create_pod("sample", json!({}), true).await.is_err()
        })
        .await;
        // Metrics count the answered request.
        let metrics_addr = harness.replicas[0].as_ref().unwrap().metrics_addr;
        let text = plain_get(metrics_addr, "/metrics").await;
        assert!(
            text.contains("kyverno_admission_requests_total{resource_kind=\"Pod\""),
            "{text}"
        );
        assert!(text.contains("kyverno_policy_results_total{"), "{text}");
        // The admin server next to it answers as the other controllers' do.
        assert_eq!(plain_get(metrics_addr, "/livez").await, "ok");
        eventually("the admin server reports ready", || async {
            plain_get(metrics_addr, "/readyz").await == "ok"
        })
        .await;
    })
    .await;
    harness.cleanup().await;
}

async fn plain_get(addr: SocketAddr, path: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned()
}

#[tokio::test]
async fn a_replica_killed_requests_still_answered_and_the_other_takes_over() {
    if skip_on_real_cluster("a_replica_killed_requests_still_answered_and_the_other_takes_over") {
        return;
    }
    let mut harness = Harness::new(2).await;
    within("two replicas", async {
        wait_ready(&harness).await;
        harness
            .create_policy("require-labels", "Enforce", require_label_rule())
            .await;
        eventually("the unlabelled pod is denied", || async {
            harness.create_pod("sample", json!({}), true).await.is_err()
        })
        .await;
        let mut leader = None;
        eventually("one replica leads", || {
            leader = harness.leader();
            let found = leader.is_some();
            async move { found }
        })
        .await;
        let leader = leader.unwrap_or(0);
        harness.kill(leader);
        // Every request is still answered (by the other replica), with the same verdicts.
        for attempt in 0..10 {
            let denied = harness
                .create_pod(&format!("sample-{attempt}"), json!({}), true)
                .await;
            assert!(denied.is_err(), "attempt {attempt} was admitted");
            harness
                .create_pod(
                    &format!("ok-{attempt}"),
                    json!({"app.kubernetes.io/name": "x"}),
                    true,
                )
                .await
                .unwrap();
        }
        // The survivor takes the Lease and manages the webhook configuration: deleted, it comes back.
        let survivor = 1 - leader;
        eventually("the other replica leads", || {
            let leads = harness.leader() == Some(survivor);
            async move { leads }
        })
        .await;
        let api: Api<ValidatingWebhookConfiguration> = Api::all(harness.client.clone());
        api.delete(
            "kyverno-resource-validating-webhook-cfg",
            &DeleteParams::default(),
        )
        .await
        .unwrap();
        harness
            .create_policy("require-team", "Enforce", require_label_rule())
            .await;
        eventually(
            "the new leader writes the webhook configuration again",
            || async { !harness.validating_rules().await.is_empty() },
        )
        .await;
    })
    .await;
    harness.cleanup().await;
}

/// The certificate a replica serves, DER.
async fn served_certificate(client: &Client, addr: SocketAddr) -> Option<Vec<u8>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kyverno");
    let ca = secrets
        .get("kyverno-svc.kyverno.svc.kyverno-tls-ca")
        .await
        .ok()?;
    let ca = ca.data?.get("tls.crt")?.0.clone();
    let tls = apiserver_sim::tls::client_config(&ca).ok()?;
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("kyverno-svc.kyverno.svc").ok()?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .ok()?;
    Some(stream.get_ref().1.peer_certificates()?.first()?.to_vec())
}

#[tokio::test]
async fn the_serving_certificate_reloads_when_its_secret_changes() {
    if skip_on_real_cluster("the_serving_certificate_reloads_when_its_secret_changes") {
        return;
    }
    let harness = Harness::new(1).await;
    within("certificate reload", async {
        wait_ready(&harness).await;
        let secrets: Api<Secret> = Api::namespaced(harness.client.clone(), "kyverno");
        let text = |secret: &Secret, key: &str| {
            String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
        };
        let ca = secrets
            .get("kyverno-svc.kyverno.svc.kyverno-tls-ca")
            .await
            .unwrap();
        let ca = kyverno_admission_controller::tls::PemPair {
            cert: text(&ca, "tls.crt"),
            key: text(&ca, "tls.key"),
        };
        let renewed = kyverno_admission_controller::tls::issue(
            &ca,
            &["kyverno-svc.kyverno.svc".to_owned()],
            Duration::from_secs(86_400 * 30),
        )
        .unwrap();
        let mut pair = secrets
            .get("kyverno-svc.kyverno.svc.kyverno-tls-pair")
            .await
            .unwrap();
        pair.metadata.managed_fields = None;
        pair.data = Some(
            [
                (
                    "tls.crt".to_owned(),
                    k8s_openapi::ByteString(renewed.cert.clone().into_bytes()),
                ),
                (
                    "tls.key".to_owned(),
                    k8s_openapi::ByteString(renewed.key.clone().into_bytes()),
                ),
            ]
            .into(),
        );
        secrets
            .replace(
                "kyverno-svc.kyverno.svc.kyverno-tls-pair",
                &PostParams::default(),
                &pair,
            )
            .await
            .unwrap();
        use rustls::pki_types::pem::PemObject;
        let expected = rustls::pki_types::CertificateDer::from_pem_slice(renewed.cert.as_bytes())
            .unwrap()
            .to_vec();
        let addr = harness.replicas[0].as_ref().unwrap().webhook_addr;
        eventually("the replica serves the new certificate", || async {
            served_certificate(&harness.client, addr).await.as_deref() == Some(expected.as_slice())
        })
        .await;
        // The API server still reaches it (the CA did not change).
        harness
            .create_policy("require-labels", "Enforce", require_label_rule())
            .await;
        eventually("the unlabelled pod is denied", || async {
            harness.create_pod("sample", json!({}), true).await.is_err()
        })
        .await;
    })
    .await;
    harness.cleanup().await;
}

#[tokio::test]
async fn context_from_the_api_server_and_evaluation_errors() {
    let harness = Harness::new(1).await;
    let ns = harness.ns.clone();
    within("context entries", async {
        let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(harness.client.clone(), &ns);
        let settings = serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"team": "blue"}})).unwrap();
        config_maps.create(&PostParams::default(), &settings).await.unwrap();
        // The Pod's team label must be the one in the ConfigMap (read through the API server).
        let policy = harness
            .create_policy(
                "team-from-configmap",
                "Enforce",
                json!({"name": "team", "context": [{"name": "settings", "configMap": {"name": "settings", "namespace": "{{request.namespace}}"}}],
                    "validate": {"message": "team must be {{ settings.data.team }}",
                        "deny": {"conditions": {"any": [{"key": "{{ request.object.metadata.labels.team || '' }}", "operator": "NotEquals", "value": "{{ settings.data.team }}"}]}}}}),
            )
            .await;
        let message = poll("the wrong team is denied", || async {
            harness.create_pod("red", json!({"team": "red"}), true).await.err().map(denial)
        })
        .await;
        assert!(message.contains("team: team must be blue"), "{message}");
        harness.create_pod("blue", json!({"team": "blue"}), true).await.unwrap();
        // A context entry that cannot load is an error result: denied under failurePolicy Fail,
        // and the server goes on.
        config_maps.delete("settings", &DeleteParams::default()).await.unwrap();
        let message = poll("the failing context entry denies", || async {
            harness
                .create_pod("blue-2", json!({"team": "blue"}), true)
                .await
                .err()
                .map(denial)
        })
        .await;
        assert!(message.contains("failed to load context"), "{message}");
        harness.delete_policy(&policy).await;
        eventually("admitted once the policy is gone", || async {
            harness.create_pod("blue-3", json!({"team": "blue"}), true).await.is_ok()
        })
        .await;
    })
    .await;
    harness.cleanup().await;
}
