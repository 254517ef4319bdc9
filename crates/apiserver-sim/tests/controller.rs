//! A kube-runtime `Controller` reconciling a CRD registered at runtime, writing status by
//! server-side apply and publishing Events; two kube-leader-election candidates on one Lease.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::within;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use kube_leader_election::{LeaseLock, LeaseLockParams, LeaseLockResult};
use kyverno_e2e_support::{cluster, until};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A test kind: the controller writes `status.doubled = 2 * spec.value`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "sim.test",
    version = "v1",
    kind = "Counter",
    namespaced,
    status = "CounterStatus"
)]
pub struct CounterSpec {
    value: i64,
}

/// Status written by the controller.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CounterStatus {
    doubled: i64,
    observed_generation: Option<i64>,
}

struct Ctx {
    client: Client,
    recorder: Recorder,
    reconciles: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(obj: Arc<Counter>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let api: Api<Counter> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap());
    let status = json!({
        "apiVersion": "sim.test/v1",
        "kind": "Counter",
        "status": {"doubled": obj.spec.value * 2, "observedGeneration": obj.metadata.generation},
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply("counter-controller").force(),
        &Patch::Apply(status),
    )
    .await?;
    ctx.recorder
        .publish(
            &Event {
                type_: EventType::Normal,
                reason: "Reconciled".into(),
                note: Some(format!("doubled {}", obj.spec.value)),
                action: "Reconcile".into(),
                secondary: None,
            },
            &obj.object_ref(&()),
        )
        .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<Counter>, e: &ReconcileError, _: Arc<Ctx>) -> Action {
    eprintln!("reconcile error: {e}");
    Action::requeue(Duration::from_millis(200))
}

#[tokio::test]
async fn controller_reconciles_crd_and_writes_status() {
    let c = cluster().await;
    let client = c.client.clone();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    within("CRD registration", async {
        match crds.create(&PostParams::default(), &Counter::crd()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("creating the CRD: {e}"),
        }
        kube::runtime::wait::await_condition(
            crds.clone(),
            "counters.sim.test",
            kube::runtime::wait::conditions::is_crd_established(),
        )
        .await
        .unwrap();
    })
    .await;

    let counters: Api<Counter> = Api::namespaced(client.clone(), &c.ns);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "counter-controller".into(),
                instance: None,
            },
        ),
        reconciles: AtomicUsize::new(0),
    });
    let controller = Controller::new(
        Api::<Counter>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(reconcile, error_policy, ctx.clone())
    .for_each(|_| async {});
    let task = tokio::spawn(controller);

    within("status written", async {
        for (name, value) in [("one", 1), ("two", 2), ("three", 3)] {
            counters
                .create(
                    &PostParams::default(),
                    &Counter::new(name, CounterSpec { value }),
                )
                .await
                .unwrap();
        }
        until("statuses", || {
            let counters = counters.clone();
            async move {
                let list = counters.list(&ListParams::default()).await.unwrap();
                list.items.len() == 3
                    && list.items.iter().all(|o| {
                        o.status
                            .as_ref()
                            .is_some_and(|s| s.doubled == o.spec.value * 2)
                    })
            }
        })
        .await;

        // A spec change is reconciled again; status tracks the generation.
        counters
            .patch(
                "two",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"value": 21}})),
            )
            .await
            .unwrap();
        until("status after spec change", || {
            let counters = counters.clone();
            async move {
                let c = counters.get("two").await.unwrap();
                c.status
                    .as_ref()
                    .is_some_and(|s| s.doubled == 42 && s.observed_generation == Some(2))
            }
        })
        .await;
        let two = counters.get("two").await.unwrap();
        assert!(
            two.managed_fields()
                .iter()
                .any(|m| m.manager.as_deref() == Some("counter-controller")
                    && m.subresource.as_deref() == Some("status"))
        );

        // Events were published through events.k8s.io/v1.
        let events: Api<K8sEvent> = Api::namespaced(client.clone(), &c.ns);
        let evs = events.list(&ListParams::default()).await.unwrap();
        assert!(
            evs.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("Reconciled"))
        );
    })
    .await;

    // No reconcile storm: unchanged status writes are no-ops, so the controller settles.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = ctx.reconciles.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        ctx.reconciles.load(Ordering::SeqCst),
        settled,
        "controller keeps reconciling"
    );
    assert!(settled < 30, "{settled} reconciles");
    task.abort();
    c.cleanup().await;
}

async fn candidate(
    client: Client,
    ns: String,
    id: &str,
    ttl: Duration,
    rounds: usize,
    period: Duration,
) -> Vec<(Instant, bool)> {
    let lock = LeaseLock::new(
        client,
        &ns,
        LeaseLockParams {
            lease_name: "the-lock".into(),
            holder_id: id.into(),
            lease_ttl: ttl,
        },
    );
    let mut out = Vec::new();
    for _ in 0..rounds {
        let r = lock.try_acquire_or_renew().await.unwrap();
        out.push((Instant::now(), matches!(r, LeaseLockResult::Acquired(_))));
        tokio::time::sleep(period).await;
    }
    out
}

#[tokio::test]
async fn leader_election_one_leader_and_takeover() {
    let c = cluster().await;
    let ns = c.ns.clone();
    let ca = c.client.clone();
    let cb = c.client.clone();
    let ttl = Duration::from_secs(2);
    let period = Duration::from_millis(200);
    within("leader election", async {
        // a starts first; both then contend for ~2 s: only a leads.
        let a_first = candidate(ca.clone(), ns.clone(), "a", ttl, 1, Duration::ZERO).await;
        assert!(a_first[0].1, "a acquires the free lease");
        let a = tokio::spawn(candidate(ca.clone(), ns.clone(), "a", ttl, 10, period));
        let b = tokio::spawn(candidate(cb.clone(), ns.clone(), "b", ttl, 10, period));
        let a = a.await.unwrap();
        let b = b.await.unwrap();
        assert!(a.iter().all(|(_, led)| *led), "a keeps leading");
        assert!(
            b.iter().all(|(_, led)| !*led),
            "b never leads while a renews"
        );
        let a_last_renew = a.last().unwrap().0;

        // a stops renewing: b takes over within the lease duration (plus one retry period).
        let lock_b = LeaseLock::new(
            cb.clone(),
            &ns,
            LeaseLockParams {
                lease_name: "the-lock".into(),
                holder_id: "b".into(),
                lease_ttl: ttl,
            },
        );
        let took_over = loop {
            if matches!(
                lock_b.try_acquire_or_renew().await.unwrap(),
                LeaseLockResult::Acquired(_)
            ) {
                break Instant::now();
            }
            tokio::time::sleep(period).await;
        };
        let gap = took_over - a_last_renew;
        assert!(
            gap >= ttl - Duration::from_millis(500),
            "took over too early: {gap:?}"
        );
        assert!(
            gap <= ttl + Duration::from_secs(2),
            "took over too late: {gap:?}"
        );
        let lease: Lease = Api::namespaced(ca.clone(), &ns)
            .get("the-lock")
            .await
            .unwrap();
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));
    })
    .await;
    c.cleanup().await;
}
