//! A test admission webhook server (HTTPS, its own CA) and helpers to register it.
#![allow(dead_code, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiserver_sim::CertificateAuthority;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

/// A test webhook server: `/deny`, `/patch`, `/slow`, `/allow`; records every review.
pub struct Webhook {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its CA, base64 PEM, for `caBundle`.
    pub ca_bundle: String,
    /// Every review received, as `{path, review}`.
    pub seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn respond(path: String, review: Value) -> Value {
    let uid = review["request"]["uid"].clone();
    let mut response = json!({"uid": uid, "allowed": true});
    match path.as_str() {
        "/deny" => {
            response = json!({"uid": uid, "allowed": false, "status": {"message": "no way", "code": 403, "reason": "Forbidden"}});
        }
        "/deny-bare" => {
            response = json!({"uid": uid, "allowed": false, "status": {"message": "plain denial"}});
        }
        "/patch" => {
            let patch = json!([{"op": "add", "path": "/metadata/labels/patched", "value": "true"}]);
            response["patchType"] = json!("JSONPatch");
            response["patch"] =
                json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
            response["warnings"] = json!(["patched by the test webhook"]);
        }
        "/slow" => tokio::time::sleep(Duration::from_secs(10)).await,
        _ => {}
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

pub async fn start_webhook(names: &[&str]) -> Webhook {
    let ca = CertificateAuthority::new("webhook-test-ca").unwrap();
    let cert = ca.issue(names).unwrap();
    let tls = cert.server_config().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let review: Value = serde_json::from_slice(&body).unwrap();
                        seen.lock()
                            .unwrap()
                            .push(json!({"path": path, "review": review}));
                        let out = respond(path, review).await;
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
                            out.to_string(),
                        ))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Webhook {
        addr,
        ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca.cert_pem()),
        seen,
        task,
    }
}

pub fn hook(
    name: &str,
    url: &str,
    ca_bundle: &str,
    failure_policy: &str,
    timeout: u64,
    extra: Value,
) -> Value {
    let mut h = json!({
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"], "scope": "Namespaced"}],
        "failurePolicy": failure_policy,
        "timeoutSeconds": timeout,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    if let (Some(h), Some(e)) = (h.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            h.insert(k.clone(), v.clone());
        }
    }
    h
}

pub async fn install(client: &Client, kind: &str, name: &str, hooks: Vec<Value>) {
    let plural = format!("{}s", kind.to_lowercase());
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
            &plural,
        ),
    );
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
        "metadata": {"name": name}, "webhooks": hooks,
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

pub async fn uninstall(client: &Client, kind: &str, name: &str) {
    let plural = format!("{}s", kind.to_lowercase());
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind),
            &plural,
        ),
    );
    api.delete(name, &DeleteParams::default()).await.unwrap();
}
