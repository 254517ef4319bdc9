//! Watches through `kube::Client` and kube-runtime: resourceVersion semantics, bookmarks,
//! timeouts, 410 Gone and relisting, selector transitions, and a load test.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use apiserver_sim::SimConfig;
use common::{sim, sim_with, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use kyverno_e2e_support::until;
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

async fn create_n(client: &Client, prefix: &str, n: usize) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..n {
        api.create(&PostParams::default(), &cm(&format!("{prefix}-{i}"), &[]))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn reflector_survives_410_by_relisting() {
    let sim = sim().await;
    let client = sim.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    create_n(&client, "before", 5).await;

    let (reader, writer) = reflector::store::<ConfigMap>();
    let gone = Arc::new(AtomicUsize::new(0));
    let gone2 = gone.clone();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default()))
        .map_err(move |e| {
            if let watcher::Error::WatchError(s) = &e
                && s.code == 410
            {
                gone2.fetch_add(1, Ordering::SeqCst);
            }
            e
        })
        .touched_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });

    until("initial list in the store", || {
        let r = reader.clone();
        async move { r.state().len() == 5 }
    })
    .await;

    // Compaction: the open watch ends with a 410 ERROR event; the watcher relists.
    sim.compact();
    create_n(&client, "after", 3).await;
    api.delete("before-0", &DeleteParams::default())
        .await
        .unwrap();
    until("a 410 was seen", || {
        let g = gone.clone();
        async move { g.load(Ordering::SeqCst) >= 1 }
    })
    .await;
    until("store converges after the relist", || {
        let r = reader.clone();
        async move {
            let mut names: Vec<String> = r.state().iter().map(|c| c.name_any()).collect();
            names.sort();
            names
                == [
                    "after-0", "after-1", "after-2", "before-1", "before-2", "before-3", "before-4",
                ]
        }
    })
    .await;

    // And it keeps following changes after the relist.
    api.patch(
        "after-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    until("modification seen", || {
        let r = reader.clone();
        async move {
            r.state().iter().any(|c| {
                c.name_any() == "after-1" && c.data.as_ref().is_some_and(|d| d.contains_key("x"))
            })
        }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn watch_from_compacted_version_is_410() {
    let sim = sim().await;
    let client = sim.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    within("410", async {
        create_n(&client, "x", 3).await;
        sim.compact();
        let stream = api.watch(&WatchParams::default(), "2").await.unwrap();
        futures::pin_mut!(stream);
        match stream.try_next().await.unwrap() {
            Some(WatchEvent::Error(e)) => {
                assert_eq!(e.code, 410);
                assert_eq!(e.reason, "Expired");
                assert!(
                    e.message.starts_with("too old resource version: 2"),
                    "{}",
                    e.message
                );
            }
            other => panic!("expected a 410 ERROR event, got {other:?}"),
        }
        // A watch from the current version is fine.
        let rv = sim.resource_version().to_string();
        let stream = api
            .watch(&WatchParams::default().timeout(1), &rv)
            .await
            .unwrap();
        let events: Vec<_> = stream.try_collect().await.unwrap();
        assert!(events.is_empty());
    })
    .await;
}

#[tokio::test]
async fn watch_resource_version_bookmarks_timeout_and_selectors() {
    let sim = sim_with(SimConfig {
        bookmark_interval: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await;
    let client = sim.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    within("watch semantics", async {
        api.create(&PostParams::default(), &cm("a", &[("sel", "in")]))
            .await
            .unwrap();
        let list = api.list(&ListParams::default()).await.unwrap();
        let rv = list.metadata.resource_version.unwrap();
        api.create(&PostParams::default(), &cm("b", &[("sel", "in")]))
            .await
            .unwrap();

        // From the list's RV: only b is new. Bookmarks arrive; the timeout ends the stream.
        let started = std::time::Instant::now();
        let stream = api
            .watch(&WatchParams::default().labels("sel=in").timeout(2), &rv)
            .await
            .unwrap();
        futures::pin_mut!(stream);
        let first = stream.try_next().await.unwrap().unwrap();
        match first {
            WatchEvent::Added(o) => assert_eq!(o.name_any(), "b"),
            other => panic!("expected ADDED b, got {other:?}"),
        }
        // Label transitions: out of the selector is DELETED, back in is ADDED.
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"sel": "out"}}})),
        )
        .await
        .unwrap();
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"sel": "in"}}})),
        )
        .await
        .unwrap();
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await
        .unwrap();
        let mut kinds = Vec::new();
        let mut bookmarks = 0;
        while let Some(ev) = stream.try_next().await.unwrap() {
            match ev {
                WatchEvent::Added(o) => kinds.push(format!("ADDED {}", o.name_any())),
                WatchEvent::Modified(o) => kinds.push(format!("MODIFIED {}", o.name_any())),
                WatchEvent::Deleted(o) => kinds.push(format!("DELETED {}", o.name_any())),
                WatchEvent::Bookmark(b) => {
                    assert!(!b.metadata.resource_version.is_empty());
                    bookmarks += 1;
                }
                WatchEvent::Error(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(kinds, ["DELETED a", "ADDED a", "MODIFIED a"]);
        assert!(bookmarks >= 2, "bookmarks: {bookmarks}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
            "{took:?}"
        );

        // Without a resourceVersion: synthetic ADDED for what exists.
        let stream = api
            .watch(&WatchParams::default().timeout(1), "0")
            .await
            .unwrap();
        let evs: Vec<_> = stream.try_collect().await.unwrap();
        let added: Vec<String> = evs
            .iter()
            .filter_map(|e| match e {
                WatchEvent::Added(o) => Some(o.name_any()),
                _ => None,
            })
            .collect();
        assert_eq!(added, ["a", "b"]);
    })
    .await;
}

#[tokio::test]
async fn streaming_list_watcher() {
    let sim = sim().await;
    let client = sim.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    create_n(&client, "s", 4).await;
    within("streaming list", async {
        let stream = watcher(api.clone(), watcher::Config::default().streaming_lists());
        futures::pin_mut!(stream);
        let mut seen = HashSet::new();
        loop {
            match stream.try_next().await.unwrap().unwrap() {
                watcher::Event::InitApply(o) => {
                    seen.insert(o.name_any());
                }
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(seen.len(), 4);
    })
    .await;
}

#[tokio::test]
async fn load_1000_objects_three_watchers_no_loss_no_duplicates() {
    let sim = sim().await;
    let client = sim.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    const N: usize = 1000;
    let rv = sim.resource_version().to_string();
    let mut watchers = Vec::new();
    for _ in 0..3 {
        let stream = api
            .watch(&WatchParams::default().timeout(120), &rv)
            .await
            .unwrap();
        watchers.push(tokio::spawn(async move {
            futures::pin_mut!(stream);
            let mut names = Vec::new();
            let mut last_rv = 0u64;
            while names.len() < N {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(o))) => {
                        let r: u64 = o.resource_version().unwrap().parse().unwrap();
                        assert!(r > last_rv, "resourceVersions increase");
                        last_rv = r;
                        names.push(o.name_any());
                    }
                    Ok(Some(WatchEvent::Bookmark(_))) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            names
        }));
    }
    within("1000 creations and their events", async {
        let mut writers = Vec::new();
        for w in 0..8 {
            let api = api.clone();
            writers.push(tokio::spawn(async move {
                for i in (w..N).step_by(8) {
                    api.create(&PostParams::default(), &cm(&format!("load-{i:04}"), &[]))
                        .await
                        .unwrap();
                }
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        for w in watchers {
            let names = w.await.unwrap();
            assert_eq!(names.len(), N);
            let unique: HashSet<&String> = names.iter().collect();
            assert_eq!(unique.len(), N, "no duplicates");
        }
    })
    .await;
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        N
    );
}

#[tokio::test]
async fn events_are_watched_through_both_group_versions() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as EventV1;
    let sim = sim().await;
    let client = sim.client().await.unwrap();
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let v1: Api<EventV1> = Api::namespaced(client.clone(), "default");
    within("events watched in both group-versions", async {
        let rv = core
            .list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap();
        let core_watch = core
            .watch(
                &WatchParams::default()
                    .fields("reason=PolicyViolation")
                    .timeout(30),
                &rv,
            )
            .await
            .unwrap();
        let v1_watch = v1
            .watch(
                &WatchParams::default()
                    .fields("reason=PolicyViolation")
                    .timeout(30),
                &rv,
            )
            .await
            .unwrap();
        futures::pin_mut!(core_watch);
        futures::pin_mut!(v1_watch);
        // Another reason first: neither watch sees it.
        let other: EventV1 = serde_json::from_value(json!({
            "metadata": {"name": "other"}, "reason": "PolicyApplied", "note": "pass",
        }))
        .unwrap();
        v1.create(&PostParams::default(), &other).await.unwrap();
        let violation: EventV1 = serde_json::from_value(json!({
            "metadata": {"name": "violation"}, "reason": "PolicyViolation", "type": "Warning",
            "note": "policy p/r fail: no", "regarding": {"kind": "Pod", "name": "bad"},
        }))
        .unwrap();
        v1.create(&PostParams::default(), &violation).await.unwrap();
        core.patch(
            "violation",
            &PatchParams::default(),
            &Patch::Merge(json!({"message": "policy p/r fail: still no"})),
        )
        .await
        .unwrap();
        let mut seen_core = Vec::new();
        while seen_core.len() < 2 {
            match core_watch.try_next().await.unwrap().unwrap() {
                WatchEvent::Added(e) | WatchEvent::Modified(e) => {
                    seen_core.push((e.name_any(), e.message.unwrap_or_default()));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            seen_core,
            [
                ("violation".to_string(), "policy p/r fail: no".to_string()),
                (
                    "violation".to_string(),
                    "policy p/r fail: still no".to_string()
                ),
            ]
        );
        let mut seen_v1 = Vec::new();
        while seen_v1.len() < 2 {
            match v1_watch.try_next().await.unwrap().unwrap() {
                WatchEvent::Added(e) | WatchEvent::Modified(e) => {
                    let regarding = e.regarding.and_then(|r| r.name).unwrap_or_default();
                    seen_v1.push((regarding, e.note.unwrap_or_default()));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            seen_v1,
            [
                ("bad".to_string(), "policy p/r fail: no".to_string()),
                ("bad".to_string(), "policy p/r fail: still no".to_string()),
            ]
        );
    })
    .await;
}
