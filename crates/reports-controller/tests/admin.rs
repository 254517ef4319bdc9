//! The `reports-controller` binary against apiserver-sim: its admin server answers `/livez`,
//! turns ready once it leads and has synced, and serves Kyverno's controller metrics.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::process::Stdio;

use kyverno_e2e_support::{cluster, eventually, skip_on_real_cluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status code and body of `GET path`.
async fn get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

#[tokio::test]
async fn the_binary_serves_livez_readyz_and_metrics() {
    if skip_on_real_cluster("the_binary_serves_livez_readyz_and_metrics") {
        return;
    }
    let cluster = cluster().await;
    let sim = cluster.sim.as_ref().unwrap();
    let dir = std::env::temp_dir().join(format!("kyverno-admin-{}", cluster.ns));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_reports-controller"))
        .args([
            "--metrics-addr",
            &address.to_string(),
            "--namespace",
            &cluster.ns,
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    eventually("/livez answers 200", || async {
        (get(address, "/livez").await?.0 == 200).then_some(())
    })
    .await;
    // Ready once it leads and has synced: the Lease is then held.
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(cluster.client.clone(), &cluster.ns);
    eventually("the Lease is taken and /readyz answers 200", || async {
        leases.get_opt("kyverno-reports-controller").await.ok()??;
        (get(address, "/readyz").await?.0 == 200).then_some(())
    })
    .await;
    let (status, metrics) = get(address, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for expected in [
        "kyverno_controller_reconcile_total{controller_name=\"aggregate-report-controller\"}",
        "kyverno_controller_drop_total{controller_name=\"aggregate-report-controller\"} 0",
        "kyverno_rs_ephemeral_reports_aggregated_total 0",
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing in\n{metrics}"
        );
    }
    child.kill().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
