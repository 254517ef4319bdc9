//! Admission webhooks called by the simulator over caBundle-verified HTTPS: deny, patch,
//! warnings, selectors, `matchConditions` (false skips, errors follow the failurePolicy),
//! timeouts under `failurePolicy: Ignore` and `Fail`, services mapped to local addresses, and
//! the user info they see.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use apiserver_sim::{ApiServerSim, SimConfig, SimUser};
use base64::Engine;
use common::webhook::{hook, install, start_webhook, uninstall};
use common::{sim_with, within};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

fn api_err(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn sim_with_dev_user() -> ApiServerSim {
    sim_with(SimConfig::default().with_user(SimUser::new(
        "dev-token",
        "dev@example.com",
        &["developers"],
    )))
    .await
}

#[tokio::test]
async fn validating_webhook_denies_with_the_real_message() {
    let sim = sim_with_dev_user().await;
    let admin = sim.client().await.unwrap();
    let wh = start_webhook(&["127.0.0.1"]).await;
    let url = format!("https://127.0.0.1:{}", wh.addr.port());
    within("deny", async {
        install(
            &admin,
            "ValidatingWebhookConfiguration",
            "deny",
            vec![
                hook(
                    "deny.sim.test",
                    &format!("{url}/deny"),
                    &wh.ca_bundle,
                    "Fail",
                    5,
                    json!({"objectSelector": {"matchLabels": {"deny": "yes"}}}),
                ),
                hook(
                    "bare.sim.test",
                    &format!("{url}/deny-bare"),
                    &wh.ca_bundle,
                    "Fail",
                    5,
                    json!({"objectSelector": {"matchLabels": {"deny": "bare"}}}),
                ),
            ],
        )
        .await;
        let dev = sim.client_for("dev-token").await.unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(dev, "default");
        let e = api_err(
            cms.create(
                &PostParams::default(),
                &cm("denied", json!({"deny": "yes"})),
            )
            .await
            .unwrap_err(),
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "admission webhook \"deny.sim.test\" denied the request: no way"
        );
        let e = api_err(
            cms.create(&PostParams::default(), &cm("bare", json!({"deny": "bare"})))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "admission webhook \"bare.sim.test\" denied the request: plain denial"
        );
        // The objectSelector keeps the webhook away from other objects.
        cms.create(&PostParams::default(), &cm("fine", json!({"deny": "no"})))
            .await
            .unwrap();

        let seen = wh.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "only the selected objects were sent");
        let req = &seen[0]["review"]["request"];
        assert_eq!(req["operation"], "CREATE");
        assert_eq!(req["userInfo"]["username"], "dev@example.com");
        assert_eq!(
            req["userInfo"]["groups"],
            json!(["developers", "system:authenticated"])
        );
        assert_eq!(
            req["kind"],
            json!({"group": "", "version": "v1", "kind": "ConfigMap"})
        );
        assert_eq!(
            req["resource"],
            json!({"group": "", "version": "v1", "resource": "configmaps"})
        );
        assert_eq!(req["namespace"], "default");
        assert_eq!(req["object"]["metadata"]["name"], "denied");
    })
    .await;
}

#[tokio::test]
async fn mutating_webhook_patches_and_warns() {
    let sim = sim_with_dev_user().await;
    let client = sim.client().await.unwrap();
    // Reached as a service: the simulator maps kyverno-svc.kyverno to the local address.
    let wh = start_webhook(&["kyverno-svc.kyverno.svc"]).await;
    sim.map_service("kyverno-svc.kyverno", wh.addr);
    within("patch", async {
        let mut h = hook("patch.sim.test", "", &wh.ca_bundle, "Fail", 5, json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}}));
        h["clientConfig"] = json!({"service": {"namespace": "kyverno", "name": "kyverno-svc", "path": "/patch", "port": 443}, "caBundle": wh.ca_bundle});
        install(&client, "MutatingWebhookConfiguration", "patch", vec![h]).await;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let created = cms.create(&PostParams::default(), &cm("m", json!({"app": "x"}))).await.unwrap();
        assert_eq!(created.labels()["patched"], "true");
        assert_eq!(cms.get("m").await.unwrap().labels()["patched"], "true");

        // Warnings come back as Warning headers.
        let req = http::Request::post("/api/v1/namespaces/default/configmaps")
            .header("Content-Type", "application/json")
            .body(kube::client::Body::from(serde_json::to_vec(&cm("w", json!({"app": "x"}))).unwrap()))
            .unwrap();
        let resp = client.send(req).await.unwrap();
        assert_eq!(resp.status(), 201);
        let warnings: Vec<String> = resp
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(warnings, ["299 - \"patched by the test webhook\""]);

        // The namespaceSelector keeps it away from other namespaces.
        let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        nss.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap())
            .await
            .unwrap();
        let other: Api<ConfigMap> = Api::namespaced(client.clone(), "other");
        let o = other.create(&PostParams::default(), &cm("o", json!({"app": "x"}))).await.unwrap();
        assert!(!o.labels().contains_key("patched"));

        // UPDATE goes through the webhook too, with the old object.
        let mut m = cms.get("m").await.unwrap();
        m.metadata.labels.as_mut().unwrap().remove("patched");
        let updated = cms.replace("m", &PostParams::default(), &m).await.unwrap();
        assert_eq!(updated.labels()["patched"], "true");
        let seen = wh.seen.lock().unwrap().clone();
        let last = &seen.last().unwrap()["review"]["request"];
        assert_eq!(last["operation"], "UPDATE");
        assert_eq!(last["oldObject"]["metadata"]["name"], "m");
    })
    .await;
}

#[tokio::test]
async fn webhook_timeouts_under_ignore_and_fail() {
    let sim = sim_with_dev_user().await;
    let client = sim.client().await.unwrap();
    let wh = start_webhook(&["localhost"]).await;
    let url = format!("https://localhost:{}/slow", wh.addr.port());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    within("timeouts", async {
        install(&client, "ValidatingWebhookConfiguration", "slow", vec![hook("slow.sim.test", &url, &wh.ca_bundle, "Ignore", 1, json!({}))]).await;
        let started = Instant::now();
        cms.create(&PostParams::default(), &cm("ignored", json!({}))).await.unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(6), "{took:?}");
        uninstall(&client, "ValidatingWebhookConfiguration", "slow").await;

        install(&client, "ValidatingWebhookConfiguration", "slow-fail", vec![hook("slow.sim.test", &url, &wh.ca_bundle, "Fail", 1, json!({}))]).await;
        let e = api_err(cms.create(&PostParams::default(), &cm("failed", json!({}))).await.unwrap_err());
        assert_eq!(e.code, 500);
        assert_eq!(e.reason, "InternalError");
        assert_eq!(
            e.message,
            format!(
                "Internal error occurred: failed calling webhook \"slow.sim.test\": failed to call webhook: Post \"{url}?timeout=1s\": context deadline exceeded"
            )
        );
        assert_eq!(api_err(cms.get("failed").await.unwrap_err()).code, 404);
        uninstall(&client, "ValidatingWebhookConfiguration", "slow-fail").await;

        // A caBundle that did not sign the webhook's certificate: the call fails verification.
        let wrong = base64::engine::general_purpose::STANDARD.encode(sim.ca_pem());
        let allow = format!("https://localhost:{}/allow", wh.addr.port());
        install(&client, "ValidatingWebhookConfiguration", "untrusted", vec![hook("untrusted.sim.test", &allow, &wrong, "Fail", 5, json!({}))]).await;
        let e = api_err(cms.create(&PostParams::default(), &cm("untrusted", json!({}))).await.unwrap_err());
        assert_eq!(e.code, 500);
        assert!(e.message.contains("failed calling webhook \"untrusted.sim.test\""), "{}", e.message);
        assert!(e.message.contains("certificate"), "{}", e.message);
    })
    .await;
}

fn conditions(exprs: &[&str]) -> Value {
    let list: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"name": format!("condition-{i}"), "expression": e}))
        .collect();
    json!({"matchConditions": list})
}

fn paths(wh: &common::webhook::Webhook) -> Vec<String> {
    wh.seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn match_conditions_decide_whether_the_webhook_is_called() {
    let sim = sim_with_dev_user().await;
    let admin = sim.client().await.unwrap();
    let dev = sim.client_for("dev-token").await.unwrap();
    let wh = start_webhook(&["127.0.0.1"]).await;
    let url = format!("https://127.0.0.1:{}", wh.addr.port());
    within("match conditions", async {
        install(
            &admin,
            "ValidatingWebhookConfiguration",
            "conditional",
            vec![
                hook(
                    "deny.sim.test",
                    &format!("{url}/deny"),
                    &wh.ca_bundle,
                    "Fail",
                    5,
                    conditions(&[
                        "object.metadata.name.startsWith('deny-')",
                        "oldObject == null",
                    ]),
                ),
                hook(
                    "dev-only.sim.test",
                    &format!("{url}/allow"),
                    &wh.ca_bundle,
                    "Fail",
                    5,
                    conditions(&[
                        "request.userInfo.username == 'dev@example.com'",
                        "request.namespace == 'default' && request.kind.kind == 'ConfigMap'",
                        "request.operation == 'CREATE'",
                    ]),
                ),
            ],
        )
        .await;
        let admin_cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
        let dev_cms: Api<ConfigMap> = Api::namespaced(dev.clone(), "default");
        // Every condition false: no webhook is called.
        admin_cms
            .create(&PostParams::default(), &cm("plain", json!({})))
            .await
            .unwrap();
        assert!(paths(&wh).is_empty(), "{:?}", paths(&wh));
        // Conditions true: the webhook is called (and denies).
        let e = api_err(
            admin_cms
                .create(&PostParams::default(), &cm("deny-me", json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            e.message,
            "admission webhook \"deny.sim.test\" denied the request: no way"
        );
        assert_eq!(paths(&wh), ["/deny"]);
        // `request` carries the user: only the developer's request reaches the second webhook.
        dev_cms
            .create(&PostParams::default(), &cm("by-dev", json!({})))
            .await
            .unwrap();
        assert_eq!(paths(&wh), ["/deny", "/allow"]);
        // An UPDATE makes `request.operation == 'CREATE'` false.
        let mut by_dev = dev_cms.get("by-dev").await.unwrap();
        by_dev.data = Some([("k".to_string(), "w".to_string())].into());
        dev_cms
            .replace("by-dev", &PostParams::default(), &by_dev)
            .await
            .unwrap();
        assert_eq!(paths(&wh), ["/deny", "/allow"]);
        uninstall(&admin, "ValidatingWebhookConfiguration", "conditional").await;

        // Mutating webhooks too: patched only when the condition holds.
        install(
            &admin,
            "MutatingWebhookConfiguration",
            "conditional-patch",
            vec![hook(
                "patch.sim.test",
                &format!("{url}/patch"),
                &wh.ca_bundle,
                "Fail",
                5,
                conditions(&["has(object.metadata.labels) && object.metadata.labels.app == 'x'"]),
            )],
        )
        .await;
        let p = admin_cms
            .create(&PostParams::default(), &cm("p", json!({"app": "x"})))
            .await
            .unwrap();
        assert_eq!(p.labels()["patched"], "true");
        let q = admin_cms
            .create(&PostParams::default(), &cm("q", json!({"app": "y"})))
            .await
            .unwrap();
        assert!(!q.labels().contains_key("patched"));
        assert_eq!(paths(&wh), ["/deny", "/allow", "/patch"]);
    })
    .await;
}

#[tokio::test]
async fn match_condition_errors_follow_the_failure_policy() {
    let sim = sim_with_dev_user().await;
    let admin = sim.client().await.unwrap();
    let wh = start_webhook(&["127.0.0.1"]).await;
    let url = format!("https://127.0.0.1:{}", wh.addr.port());
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "default");
    let broken = "object.metadata.labels.missing == 'x'";
    within("match condition errors", async {
        // Ignore: the webhook is skipped and the request allowed.
        install(
            &admin,
            "ValidatingWebhookConfiguration",
            "broken-ignore",
            vec![hook(
                "broken.sim.test",
                &format!("{url}/deny"),
                &wh.ca_bundle,
                "Ignore",
                5,
                conditions(&["true", broken]),
            )],
        )
        .await;
        cms.create(&PostParams::default(), &cm("ignored", json!({"a": "b"})))
            .await
            .unwrap();
        assert!(paths(&wh).is_empty());
        uninstall(&admin, "ValidatingWebhookConfiguration", "broken-ignore").await;

        // Fail: the request is rejected as the API server does, without calling the webhook.
        install(
            &admin,
            "ValidatingWebhookConfiguration",
            "broken-fail",
            vec![hook(
                "broken.sim.test",
                &format!("{url}/allow"),
                &wh.ca_bundle,
                "Fail",
                5,
                conditions(&["true", broken]),
            )],
        )
        .await;
        let e = api_err(
            cms.create(&PostParams::default(), &cm("failed", json!({"a": "b"})))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        let prefix = format!(
            "configmaps \"failed\" is forbidden: expression '{broken}' resulted in error: "
        );
        assert!(e.message.starts_with(&prefix), "{}", e.message);
        assert!(e.message.contains("missing"), "{}", e.message);
        assert_eq!(api_err(cms.get("failed").await.unwrap_err()).code, 404);
        // A false condition still skips the webhook, even next to an erroring one.
        uninstall(&admin, "ValidatingWebhookConfiguration", "broken-fail").await;
        install(
            &admin,
            "ValidatingWebhookConfiguration",
            "broken-but-false",
            vec![hook(
                "broken.sim.test",
                &format!("{url}/allow"),
                &wh.ca_bundle,
                "Fail",
                5,
                conditions(&[broken, "false"]),
            )],
        )
        .await;
        cms.create(&PostParams::default(), &cm("skipped", json!({"a": "b"})))
            .await
            .unwrap();
        uninstall(&admin, "ValidatingWebhookConfiguration", "broken-but-false").await;

        // `authorizer` is not available in the simulator: using it is an error.
        install(
            &admin,
            "MutatingWebhookConfiguration",
            "authz",
            vec![hook(
                "authz.sim.test",
                &format!("{url}/patch"),
                &wh.ca_bundle,
                "Fail",
                5,
                conditions(&["authorizer.group('').resource('pods').check('create').allowed()"]),
            )],
        )
        .await;
        let e = api_err(
            cms.create(&PostParams::default(), &cm("authz", json!({})))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, 403);
        assert!(
            e.message
                .contains("the authorizer variable is not supported by apiserver-sim"),
            "{}",
            e.message
        );
        assert!(paths(&wh).is_empty(), "{:?}", paths(&wh));
    })
    .await;
}
