//! Deletes resources whose `cleanup.kyverno.io/ttl` label is due (on the leader only): every
//! type that can be listed, watched and deleted is watched with a selector on the label; each
//! labelled resource is deleted once its time comes. A value that cannot be read is reported by
//! a Warning Event on the resource (once per value) and the resource is left alone.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::TimeDelta;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};

use crate::clock::SharedClock;
use crate::events::{self, EventInfo, EventType};
use crate::metrics::{Metrics, TtlLabels};
use crate::scheduler::RETRY_DELAY;
use crate::targets::{ServedType, deletable_types};
use crate::ttl::{TTL_LABEL, deletion_time};

/// The longest sleep without looking at the labelled resources again.
const RESYNC: TimeDelta = TimeDelta::hours(1);

/// The TTL controller's dependencies.
#[derive(Clone)]
pub struct TtlController {
    /// The API client.
    pub client: Client,
    /// The time.
    pub clock: SharedClock,
    /// Where deletions are counted.
    pub metrics: Arc<Metrics>,
    /// This replica (the Events' `reportingInstance`).
    pub instance: String,
}

/// A labelled resource: its type (index) and object.
type Tracked = BTreeMap<(usize, String, String), DynamicObject>;

impl TtlController {
    /// Runs until dropped.
    pub async fn run(self) {
        let types = loop {
            match deletable_types(&self.client).await {
                Ok(types) => break types,
                Err(error) => {
                    tracing::warn!(%error, "discovery failed; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        };
        let config = watcher::Config::default().labels(TTL_LABEL);
        let watches: Vec<BoxStream<'static, _>> = types
            .iter()
            .enumerate()
            .map(|(index, served)| {
                watcher(
                    Api::<DynamicObject>::all_with(self.client.clone(), &served.resource),
                    config.clone(),
                )
                .default_backoff()
                .map(move |event| (index, event))
                .boxed()
            })
            .collect();
        let mut events = stream::select_all(watches);
        let mut tracked = Tracked::new();
        let mut reported = BTreeSet::new();
        loop {
            let (next, retry) = self.sweep(&types, &mut tracked, &mut reported).await;
            let retry = async {
                if retry {
                    tokio::time::sleep(RETRY_DELAY).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                event = events.next() => match event {
                    Some((index, Ok(event))) => apply(&mut tracked, index, event),
                    Some((index, Err(error))) => {
                        tracing::debug!(kind = %types[index].resource.kind, %error, "TTL watch failed; retrying");
                    }
                    None => return,
                },
                () = self.clock.sleep_until(next) => {}
                () = retry => {}
            }
        }
    }

    /// Deletes what is due and reports unreadable values; the next due time, and whether a
    /// deletion failed (to retry).
    async fn sweep(
        &self,
        types: &[ServedType],
        tracked: &mut Tracked,
        reported: &mut BTreeSet<(String, String)>,
    ) -> (chrono::DateTime<chrono::Utc>, bool) {
        let now = self.clock.now();
        let mut next = now + RESYNC;
        let mut retry = false;
        let mut deleted = Vec::new();
        for (key, object) in tracked.iter() {
            let served = &types[key.0];
            let value = object
                .metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(TTL_LABEL))
                .cloned()
                .unwrap_or_default();
            let created = object
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(now, crate::clock::from_k8s);
            match deletion_time(&value, created) {
                Ok(due) if now >= due => {
                    if self.delete(served, object).await {
                        deleted.push(key.clone());
                    } else {
                        retry = true;
                    }
                }
                Ok(due) => next = next.min(due),
                Err(error) => {
                    let uid = object.metadata.uid.clone().unwrap_or_default();
                    if reported.insert((uid.clone(), value)) {
                        tracing::warn!(kind = %served.resource.kind, name = %key.2, %error, "TTL label ignored");
                        let regarding = events::reference(
                            &served.resource.api_version,
                            &served.resource.kind,
                            object.metadata.namespace.as_deref(),
                            &key.2,
                            Some(&uid),
                        );
                        events::publish(
                            &self.client,
                            &self.instance,
                            EventInfo {
                                regarding,
                                event_type: EventType::Warning,
                                reason: "InvalidTTL",
                                action: "Ignored",
                                note: error.to_string(),
                            },
                        )
                        .await;
                    }
                }
            }
        }
        for key in deleted {
            tracked.remove(&key);
        }
        (next, retry)
    }

    /// Deletes one resource, counting it; whether it was deleted (or was gone already).
    async fn delete(&self, served: &ServedType, object: &DynamicObject) -> bool {
        let name = object.metadata.name.clone().unwrap_or_default();
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let api: Api<DynamicObject> = if served.namespaced {
            Api::namespaced_with(self.client.clone(), &namespace, &served.resource)
        } else {
            Api::all_with(self.client.clone(), &served.resource)
        };
        let labels = TtlLabels {
            resource_group: served.resource.group.clone(),
            resource_version: served.resource.version.clone(),
            resource_resource: served.resource.plural.clone(),
            resource_namespace: namespace.clone(),
        };
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                self.metrics
                    .ttl_deleted_objects
                    .get_or_create(&labels)
                    .inc();
                tracing::info!(kind = %served.resource.kind, %namespace, %name, "resource deleted: its TTL passed");
                true
            }
            Err(kube::Error::Api(status)) if status.code == 404 => true,
            Err(error) => {
                self.metrics.ttl_errors.get_or_create(&labels).inc();
                tracing::warn!(kind = %served.resource.kind, %namespace, %name, %error, "TTL deletion failed");
                false
            }
        }
    }
}

/// Keeps `tracked` in step with one watch event of the type `index`.
fn apply(tracked: &mut Tracked, index: usize, event: Event<DynamicObject>) {
    let key = |object: &DynamicObject| {
        (
            index,
            object.metadata.namespace.clone().unwrap_or_default(),
            object.metadata.name.clone().unwrap_or_default(),
        )
    };
    match event {
        Event::Apply(object) | Event::InitApply(object) => {
            if object.metadata.deletion_timestamp.is_none() {
                tracked.insert(key(&object), object);
            }
        }
        Event::Delete(object) => {
            tracked.remove(&key(&object));
        }
        Event::Init => tracked.retain(|(kind, _, _), _| *kind != index),
        Event::InitDone => {}
    }
}
