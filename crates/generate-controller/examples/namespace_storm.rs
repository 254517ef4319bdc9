//! Benchmark (not a test): N namespaces created at once, each with the UpdateRequest the
//! admission controller writes for it, against a fresh apiserver-sim (or the cluster of
//! `KYVERNO_E2E_KUBECONFIG`). Reports the time until every generated resource (a NetworkPolicy,
//! a ResourceQuota and a cloned Secret per namespace) exists, and the UpdateRequests left.
//!
//! ```sh
//! cargo run --release -p kyverno-generate-controller --example namespace_storm -- 1000 10
//! ```
//! Arguments: the number of namespaces (1000) and of workers (10).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Api;
use kube::api::ListParams;
use kyverno_api::kyverno::v2::update_request::UpdateRequest;
use kyverno_generate_controller::controller::{self, Settings};
use kyverno_generate_controller::metrics::Metrics;
use kyverno_generate_controller::workers::WorkerSettings;
use serde_json::json;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{SETUP_RULES, admission_update_request, setup_policy};

/// How many creations are in flight at once.
const CONCURRENT_CREATES: usize = 64;
/// How long to wait at most.
const DEADLINE: Duration = Duration::from_secs(1800);

async fn count(client: &kube::Client, api_version: &str, kind: &str, selector: &str) -> usize {
    let object = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
    kyverno_e2e_support::api_for(client, &object)
        .await
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let namespaces: usize = args
        .next()
        .map_or(1000, |n| n.parse().expect("a number of namespaces"));
    let workers: usize = args
        .next()
        .map_or(10, |n| n.parse().expect("a number of workers"));
    let cluster = kyverno_e2e_support::cluster().await;
    let (client, ns) = (cluster.client.clone(), cluster.ns.clone());
    let policy = format!("setup-{ns}");
    kyverno_e2e_support::create(
        &client,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": ns},
               "type": "Opaque", "data": {"token": "b25l"}}),
    )
    .await;
    kyverno_e2e_support::create(&client, setup_policy(&policy, &ns, &ns)).await;
    let settings = Settings {
        kyverno_namespace: ns.clone(),
        workers: WorkerSettings {
            workers,
            max_retries: 3,
            retry_backoff: Duration::from_secs(1),
        },
        ..Settings::default()
    };
    let controller = tokio::spawn(controller::run(
        client.clone(),
        settings,
        Metrics::unexported(),
    ));

    let started = Instant::now();
    futures::stream::iter(0..namespaces)
        .for_each_concurrent(CONCURRENT_CREATES, |index| {
            let (client, ns, policy) = (client.clone(), ns.clone(), policy.clone());
            async move {
                let name = format!("{ns}-n{index}");
                let created = kyverno_e2e_support::create(
                    &client,
                    json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": name, "labels": {"e2e-run": ns}}}),
                )
                .await;
                let trigger = serde_json::to_value(created).unwrap();
                kyverno_e2e_support::create(
                    &client,
                    admission_update_request(&ns, &policy, &SETUP_RULES, &trigger),
                )
                .await;
            }
        })
        .await;
    let created = started.elapsed();
    println!("{namespaces} namespaces and UpdateRequests created in {created:.2?}");
    let selector = format!("generate.kyverno.io/policy-name={policy}");
    let requests: Api<UpdateRequest> = Api::namespaced(client.clone(), &ns);
    loop {
        let generated = count(&client, "networking.k8s.io/v1", "NetworkPolicy", &selector).await
            + count(&client, "v1", "ResourceQuota", &selector).await
            + count(&client, "v1", "Secret", &selector).await;
        let left = requests
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        if generated == 3 * namespaces && left == 0 {
            let elapsed = started.elapsed();
            println!(
                "all {generated} generated resources exist after {elapsed:.2?} \
                 ({:.0} namespaces/s); UpdateRequests left: {left}",
                namespaces as f64 / elapsed.as_secs_f64()
            );
            break;
        }
        if started.elapsed() > DEADLINE {
            println!(
                "gave up after {DEADLINE:?}: {generated} generated, {left} UpdateRequests left"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    controller.abort();
    cluster.cleanup().await;
}
