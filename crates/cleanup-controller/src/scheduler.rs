//! Runs every scheduled policy at its times (on the leader only): each pass reads the policies
//! afresh, executes those due, records each execution in `status.lastExecutionTime` and sleeps
//! until the next scheduled time or a policy change. Since the executed time is recorded before
//! the next one is looked at, a new leader resumes where the last one stopped: no time is run
//! twice, none is skipped.
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource};
use kyverno_api::kyverno::v2::cleanup_policy::{CleanupPolicy, ClusterCleanupPolicy};
use kyverno_api::policies::deleting::{DeletingPolicy, NamespacedDeletingPolicy};
use serde::de::DeserializeOwned;

use crate::clock::SharedClock;
use crate::executor::Executor;
use crate::policies::{ScheduledPolicy, list_policies};
use crate::schedule::{Plan, Schedule, plan};

/// How long after a scheduled time the policy is looked at (it is due once that time passed).
const MARGIN: TimeDelta = TimeDelta::seconds(1);

/// The longest sleep without looking at the policies again.
const RESYNC: TimeDelta = TimeDelta::minutes(5);

/// How long to wait (real time) before retrying after a failure.
pub const RETRY_DELAY: Duration = Duration::from_secs(2);

/// The scheduler's dependencies.
#[derive(Clone)]
pub struct Scheduler {
    /// The API client.
    pub client: Client,
    /// Runs executions.
    pub executor: Executor,
    /// The time.
    pub clock: SharedClock,
}

/// When to look again.
struct Wake {
    at: DateTime<Utc>,
    retry: bool,
}

/// A stream yielding whenever a policy of kind `K` changes (watch failures are retried with
/// backoff, silently: the passes read the policies themselves).
fn changes<K>(client: &Client) -> BoxStream<'static, ()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .filter_map(|event| std::future::ready(event.ok().map(|_| ())))
        .boxed()
}

/// Waits for one item of `changes` and takes the others already there.
async fn next_change(changes: &mut (impl Stream<Item = ()> + Unpin)) {
    if changes.next().await.is_none() {
        std::future::pending::<()>().await;
    }
    while futures::FutureExt::now_or_never(changes.next())
        .flatten()
        .is_some()
    {}
}

impl Scheduler {
    /// Runs until dropped.
    pub async fn run(self) {
        let mut changes = stream::select_all([
            changes::<ClusterCleanupPolicy>(&self.client),
            changes::<CleanupPolicy>(&self.client),
            changes::<DeletingPolicy>(&self.client),
            changes::<NamespacedDeletingPolicy>(&self.client),
        ]);
        loop {
            let wake = self.pass().await;
            let retry = async {
                if wake.retry {
                    tokio::time::sleep(RETRY_DELAY).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = self.clock.sleep_until(wake.at) => {}
                () = next_change(&mut changes) => {}
                () = retry => {}
            }
        }
    }

    /// Executes the policies due; when to look again.
    async fn pass(&self) -> Wake {
        let now = self.clock.now();
        let mut wake = Wake {
            at: now + RESYNC,
            retry: false,
        };
        let policies = match list_policies(&self.client).await {
            Ok(policies) => policies,
            Err(error) => {
                tracing::warn!(%error, "cleanup policies not listed; retrying");
                wake.retry = true;
                return wake;
            }
        };
        for policy in policies {
            let schedule = match Schedule::parse(&policy.schedule) {
                Ok(schedule) => schedule,
                Err(error) => {
                    tracing::warn!(policy = %policy.key(), %error, "invalid schedule; policy skipped");
                    continue;
                }
            };
            match plan(&schedule, policy.created, policy.last_execution, now) {
                Plan::Run { tick } => {
                    if self.run_once(&policy, tick).await {
                        // Look again at once: a missed time may be due as well.
                        wake.at = now;
                    } else {
                        wake.retry = true;
                    }
                }
                Plan::Wait { until } => wake.at = wake.at.min(until + MARGIN),
                Plan::Never => {}
            }
        }
        wake
    }

    /// Executes `policy` for its scheduled time `tick` and records it; whether it succeeded.
    async fn run_once(&self, policy: &ScheduledPolicy, tick: DateTime<Utc>) -> bool {
        match self.executor.execute(policy).await {
            Ok(outcome) => {
                tracing::info!(
                    policy = %policy.key(), %tick, deleted = outcome.deleted, failed = outcome.failed,
                    "cleanup policy executed"
                );
                match policy.record_execution(&self.client, tick).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(policy = %policy.key(), %error, "last execution time not recorded");
                        false
                    }
                }
            }
            Err(error) => {
                tracing::warn!(policy = %policy.key(), %error, "cleanup policy failed; retrying");
                false
            }
        }
    }
}
