//! A real kubectl against the simulator: `apply -f`, `get`, `get polr` with printer columns,
//! `run`, `delete`, a webhook denial as kubectl prints it, and `get events` with a field
//! selector over `events.k8s.io/v1` Events.
//!
//! kubectl is `$KUBECTL` or the first `kubectl` on `PATH`; without one the test is skipped,
//! unless `KYVERNO_E2E_REQUIRE_KUBECTL=1`, which turns the skip into a failure.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::path::{Path, PathBuf};

use apiserver_sim::ApiServerSim;
use common::webhook::{hook, install, start_webhook};
use common::{sim, within};
use kyverno_e2e_support::kubectl::{Kubectl, kubectl_or_skip};
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// kubectl against a fresh simulator, with a scratch folder; `None` (skip) without kubectl.
async fn session() -> Option<(ApiServerSim, Kubectl, PathBuf)> {
    let bin = kubectl_or_skip("a kubectl test against the simulator")?;
    let sim = sim().await;
    let dir = std::env::temp_dir().join(format!(
        "apiserver-sim-kubectl-{}",
        apiserver_sim::new_uid()
    ));
    let k = Kubectl::new(bin, Some(&sim), &dir);
    Some((sim, k, dir))
}

#[tokio::test]
async fn kubectl_apply_get_run_delete_and_webhook_denial() {
    let Some((sim, k, dir)) = session().await else {
        return;
    };
    let manifest = |pass: u32| {
        format!(
            "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata:\n  name: r1\n  namespace: default\nscope:\n  kind: Pod\n  name: nginx\nsummary: {{pass: {pass}, fail: 1, warn: 0, error: 0, skip: 2}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: default\ndata: {{a: b}}\n"
        )
    };
    within("kubectl session", async {
        let f = write(&dir, "m.yaml", &manifest(3));
        let out = k.ok(&["apply", "-f", &f]).await;
        assert!(out.contains("policyreport.wgpolicyk8s.io/r1 created"), "{out}");
        assert!(out.contains("configmap/cfg created"), "{out}");
        let out = k.ok(&["apply", "-f", &f]).await;
        assert!(out.contains("policyreport.wgpolicyk8s.io/r1 unchanged"), "{out}");
        let f = write(&dir, "m.yaml", &manifest(5));
        let out = k.ok(&["apply", "-f", &f]).await;
        assert!(out.contains("policyreport.wgpolicyk8s.io/r1 configured"), "{out}");

        // kubectl get polr: the CRD's printer columns.
        let out = k.ok(&["get", "polr"]).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            columns(lines[0]),
            ["NAME", "KIND", "NAME", "PASS", "FAIL", "WARN", "ERROR", "SKIP", "AGE"],
            "{out}"
        );
        assert_eq!(columns(lines[1])[..8], ["r1", "Pod", "nginx", "5", "1", "0", "0", "2"], "{out}");

        // Server-side apply through kubectl.
        let out = k.ok(&["apply", "--server-side", "-f", &f]).await;
        assert!(out.contains("serverside-applied"), "{out}");

        // kubectl run: a pod that stays Pending (nothing runs pods in the simulator).
        let out = k.ok(&["run", "nginx", "--image=nginx"]).await;
        assert!(out.contains("pod/nginx created"), "{out}");
        let out = k.ok(&["get", "pods"]).await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(columns(lines[0]), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
        assert_eq!(columns(lines[1])[..4], ["nginx", "0/1", "Pending", "0"]);
        let out = k.ok(&["get", "cm", "cfg", "-o", "jsonpath={.data.a}"]).await;
        assert_eq!(out, "b");

        // A validating webhook's denial, as kubectl prints it.
        let wh = start_webhook(&["127.0.0.1"]).await;
        let url = format!("https://127.0.0.1:{}/deny", wh.addr.port());
        let client = sim.client().await.unwrap();
        install(
            &client,
            "ValidatingWebhookConfiguration",
            "deny",
            vec![hook(
                "deny.sim.test",
                &url,
                &wh.ca_bundle,
                "Fail",
                5,
                json!({"objectSelector": {"matchLabels": {"deny": "yes"}}}),
            )],
        )
        .await;
        let denied = write(
            &dir,
            "denied.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: denied\n  namespace: default\n  labels: {deny: \"yes\"}\n",
        );
        let (ok, _, err) = k.run(&["apply", "-f", &denied]).await;
        assert!(!ok);
        assert!(
            err.contains("Error from server (Forbidden): error when creating")
                && err.contains("admission webhook \"deny.sim.test\" denied the request: no way"),
            "{err}"
        );

        let out = k.ok(&["delete", "-f", &f]).await;
        assert!(out.contains("policyreport.wgpolicyk8s.io \"r1\" deleted"), "{out}");
        assert!(out.contains("configmap \"cfg\" deleted"), "{out}");
        let out = k.ok(&["delete", "pod", "nginx"]).await;
        assert!(out.contains("pod \"nginx\" deleted"), "{out}");
        let (ok, _, err) = k.run(&["get", "polr", "r1"]).await;
        assert!(!ok);
        assert!(
            err.contains("Error from server (NotFound): policyreports.wgpolicyk8s.io \"r1\" not found"),
            "{err}"
        );
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn kubectl_get_events_lists_events_k8s_io_events() {
    let Some((_sim, k, dir)) = session().await else {
        return;
    };
    // As the admission controller writes them: events.k8s.io/v1, without the legacy fields.
    let events = "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: bad.1\n  namespace: default\neventTime: \"2026-01-01T00:00:00.000000Z\"\naction: Resource Passed\nreason: PolicyViolation\ntype: Warning\nnote: \"policy require-tier/check-tier fail: the label tier is required\"\nreportingController: kyverno-admission\nreportingInstance: kyverno-admission-1\nregarding: {apiVersion: v1, kind: Pod, name: bad, namespace: default}\n---\napiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: require-tier.1\n  namespace: default\neventTime: \"2026-01-01T00:00:00.000000Z\"\naction: Resource Passed\nreason: PolicyApplied\ntype: Normal\nnote: \"Pod default/good: pass\"\nreportingController: kyverno-admission\nreportingInstance: kyverno-admission-1\nregarding: {apiVersion: kyverno.io/v1, kind: ClusterPolicy, name: require-tier}\n";
    within("kubectl get events", async {
        let f = write(&dir, "events.yaml", events);
        let out = k.ok(&["apply", "-f", &f]).await;
        assert!(out.contains("event.events.k8s.io/bad.1 created"), "{out}");

        let out = k
            .ok(&[
                "get",
                "events",
                "--field-selector",
                "reason=PolicyViolation",
            ])
            .await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(
            columns(lines[0]),
            ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            "{out}"
        );
        // LAST SEEN is the age of eventTime (no lastTimestamp in the new API).
        let row = columns(lines[1]);
        assert!(row[0].ends_with('d') || row[0].contains('y'), "{out}");
        assert_eq!(
            row[1..],
            [
                "Warning",
                "PolicyViolation",
                "pod/bad",
                "policy",
                "require-tier/check-tier",
                "fail:",
                "the",
                "label",
                "tier",
                "is",
                "required"
            ],
            "{out}"
        );

        // The wide view adds the source and the name, last.
        let out = k
            .ok(&[
                "get",
                "events",
                "--field-selector",
                "type=Normal",
                "-o",
                "wide",
            ])
            .await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(
            columns(lines[0]),
            [
                "LAST",
                "SEEN",
                "TYPE",
                "REASON",
                "OBJECT",
                "SUBOBJECT",
                "SOURCE",
                "MESSAGE",
                "FIRST",
                "SEEN",
                "COUNT",
                "NAME"
            ],
            "{out}"
        );
        assert!(
            lines[1].contains("clusterpolicy/require-tier")
                && lines[1].contains("kyverno-admission, kyverno-admission-1")
                && columns(lines[1]).ends_with(&["1", "require-tier.1"]),
            "{out}"
        );

        let (ok, _, err) = k
            .run(&["get", "events", "--field-selector", "note=x"])
            .await;
        assert!(!ok);
        assert!(err.contains("field label not supported: note"), "{err}");
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
