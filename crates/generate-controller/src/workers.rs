//! The UpdateRequest workers: a watch keeps the requests of the Kyverno namespace and queues
//! those with work left; workers process them, write their status, retry failed ones with a
//! growing delay up to the retry limit, and delete the finished ones.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kyverno_api::kyverno::v2::update_request::{
    UpdateRequest, UpdateRequestState, UpdateRequestStatus,
};

use crate::metrics::Metrics;
use crate::processor::{Outcome, Processor};
use crate::queue::WorkQueue;
use crate::request::{retries_of, state_of};
use crate::tasks::AbortOnDrop;

/// How the workers process UpdateRequests.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// How many UpdateRequests are processed at once.
    pub workers: usize,
    /// How many times a failed UpdateRequest is retried before it is dropped.
    pub max_retries: u32,
    /// The delay before the first retry; it doubles with each retry.
    pub retry_backoff: Duration,
}

/// The UpdateRequests and the queue of those with work left.
pub struct Workers {
    api: Api<UpdateRequest>,
    requests: Mutex<HashMap<String, UpdateRequest>>,
    queue: WorkQueue,
    processor: Arc<Processor>,
    metrics: Metrics,
    settings: WorkerSettings,
}

impl Workers {
    /// Workers for the UpdateRequests of `api`.
    pub fn new(
        api: Api<UpdateRequest>,
        processor: Arc<Processor>,
        metrics: Metrics,
        settings: WorkerSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            api,
            requests: Mutex::default(),
            queue: WorkQueue::default(),
            processor,
            metrics,
            settings,
        })
    }

    /// Watches the UpdateRequests and runs the workers until aborted.
    pub async fn run(self: Arc<Self>) {
        let mut tasks = Vec::new();
        for _ in 0..self.settings.workers.max(1) {
            let workers = Arc::clone(&self);
            tasks.push(tokio::spawn(async move {
                loop {
                    let name = workers.queue.next().await;
                    workers.work(&name).await;
                    workers.queue.done(&name);
                }
            }));
        }
        let _abort_on_drop = AbortOnDrop(tasks);
        let mut events =
            std::pin::pin!(watcher(self.api.clone(), watcher::Config::default()).default_backoff());
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(request) | Event::InitApply(request)) => self.consider(request),
                Ok(Event::Delete(request)) => {
                    if let (Ok(mut requests), Some(name)) =
                        (self.requests.lock(), request.metadata.name.as_deref())
                    {
                        requests.remove(name);
                    }
                }
                Ok(Event::Init | Event::InitDone) => {}
                Err(error) => tracing::warn!(%error, "UpdateRequest watch failed; retrying"),
            }
        }
    }

    /// Keeps the request and queues it: a failed one after its retry delay.
    fn consider(self: &Arc<Self>, request: UpdateRequest) {
        let Some(name) = request.metadata.name.clone() else {
            return;
        };
        let state = state_of(&request);
        let retries = retries_of(&request);
        if let Ok(mut requests) = self.requests.lock() {
            requests.insert(name.clone(), request);
        }
        if state == UpdateRequestState::Failed && retries < self.settings.max_retries {
            let delay = self.settings.retry_backoff * 2u32.saturating_pow(retries);
            self.metrics.requeued(retries + 1);
            let workers = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                workers.queue.add(&name);
            });
        } else {
            self.queue.add(&name);
        }
    }

    /// Processes one request as it is now.
    async fn work(&self, name: &str) {
        let Some(request) = self
            .requests
            .lock()
            .ok()
            .and_then(|requests| requests.get(name).cloned())
        else {
            return;
        };
        let retries = retries_of(&request);
        match state_of(&request) {
            UpdateRequestState::Completed | UpdateRequestState::Skip => self.delete(name).await,
            UpdateRequestState::Failed if retries >= self.settings.max_retries => {
                tracing::warn!(
                    update_request = name,
                    message = request
                        .status
                        .as_ref()
                        .and_then(|status| status.message.as_deref()),
                    "UpdateRequest dropped after its last retry"
                );
                self.metrics.dropped();
                self.delete(name).await;
            }
            state => {
                let outcome = self.processor.process(&request).await;
                self.metrics.reconciled();
                let retry_count = match state {
                    UpdateRequestState::Failed => retries + 1,
                    _ => retries,
                };
                let status = status_of(outcome, retry_count);
                let finished = status.state != UpdateRequestState::Failed;
                if finished && status.state == UpdateRequestState::Skip {
                    tracing::debug!(update_request = name, message = ?status.message, "UpdateRequest skipped");
                }
                if !finished {
                    tracing::warn!(update_request = name, message = ?status.message, "UpdateRequest failed");
                }
                let patch = serde_json::json!({"status": status});
                if let Err(error) = self
                    .api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::warn!(%error, update_request = name, "UpdateRequest status not written");
                    return;
                }
                if finished {
                    self.delete(name).await;
                }
            }
        }
    }

    async fn delete(&self, name: &str) {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => {
                tracing::warn!(%error, update_request = name, "UpdateRequest not deleted");
                return;
            }
        }
        // Its watch events may still come: forget it now so that they find nothing to do.
        if let Ok(mut requests) = self.requests.lock() {
            requests.remove(name);
        }
    }
}

/// The status an outcome gives.
fn status_of(outcome: Outcome, retry_count: u32) -> UpdateRequestStatus {
    let (state, message, generated_resources) = match outcome {
        Outcome::Completed(generated) => (UpdateRequestState::Completed, None, generated),
        Outcome::Skip(message) => (UpdateRequestState::Skip, Some(message), Vec::new()),
        Outcome::Failed(message, generated) => {
            (UpdateRequestState::Failed, Some(message), generated)
        }
    };
    UpdateRequestStatus {
        state,
        message,
        generated_resources,
        retry_count: (retry_count > 0).then(|| i32::try_from(retry_count).unwrap_or(i32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyverno_api::kyverno::v1::generate::ResourceSpec;

    #[test]
    fn statuses_of_outcomes() {
        let generated = vec![ResourceSpec {
            kind: Some("ConfigMap".to_owned()),
            name: Some("c".to_owned()),
            ..ResourceSpec::default()
        }];
        let completed = status_of(Outcome::Completed(generated.clone()), 0);
        assert_eq!(completed.state, UpdateRequestState::Completed);
        assert_eq!(completed.generated_resources, generated);
        assert_eq!(completed.retry_count, None);
        let failed = status_of(Outcome::Failed("boom".to_owned(), Vec::new()), 2);
        assert_eq!(failed.state, UpdateRequestState::Failed);
        assert_eq!(failed.message.as_deref(), Some("boom"));
        assert_eq!(failed.retry_count, Some(2));
        let skipped = status_of(Outcome::Skip("gone".to_owned()), 0);
        assert_eq!(skipped.state, UpdateRequestState::Skip);
    }
}
