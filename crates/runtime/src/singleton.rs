//! Running work only while this replica holds a Lease: the single active writer of a controller
//! with several replicas.
use std::future::Future;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::leader::LeaderElection;

/// How long to wait before restarting work that ended on its own while still leading.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// A spawned task, aborted when this is dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the election and, whenever this replica leads, the future made by `work`; the future is
/// dropped (aborted) as soon as leadership is lost, and made again when it comes back. Never
/// returns while the election runs; dropping the returned future stops the election and the
/// work. The future is `Send` (it can be spawned) when `work` is.
pub async fn run_while_leading<F, Fut>(client: Client, election: LeaderElection, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, leading) = watch::channel(false);
    let _election = AbortOnDrop(tokio::spawn(election.run(client, sender)));
    follow_leadership(leading, work).await;
}

/// Runs the future made by `work` whenever `leading` says so, aborting it when it stops saying
/// so or when this future is dropped; returns when `leading`'s sender is gone.
async fn follow_leadership<F, Fut>(mut leading: watch::Receiver<bool>, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        if !wait_until(&mut leading, true).await {
            tracing::error!("leader election ended");
            return;
        }
        let mut task = AbortOnDrop(tokio::spawn(work()));
        tokio::select! {
            election_runs = wait_until(&mut leading, false) => {
                if !election_runs {
                    tracing::error!("leader election ended");
                    return;
                }
            }
            ended = &mut task.0 => {
                if let Err(error) = ended {
                    tracing::error!(%error, "leader work failed");
                }
                tokio::time::sleep(RESTART_DELAY).await;
            }
        }
    }
}

/// Waits until `leading` is `leads`; `false` when its sender is gone first.
async fn wait_until(leading: &mut watch::Receiver<bool>, leads: bool) -> bool {
    leading.wait_for(|now| *now == leads).await.is_ok()
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// Generous: only reached when the work is never aborted.
    const DEADLINE: Duration = Duration::from_secs(60);

    /// One run of the work.
    type Run = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

    /// Work that announces each start with a receiver that fails once that run is dropped.
    fn announced_work(started: mpsc::UnboundedSender<oneshot::Receiver<()>>) -> impl Fn() -> Run {
        move || {
            let started = started.clone();
            Box::pin(async move {
                let (alive, dropped) = oneshot::channel::<()>();
                let _ = started.send(dropped);
                std::future::pending::<()>().await;
                drop(alive);
            })
        }
    }

    async fn next_start(
        follow: &mut (impl Future<Output = ()> + Unpin),
        started: &mut mpsc::UnboundedReceiver<oneshot::Receiver<()>>,
    ) -> oneshot::Receiver<()> {
        tokio::select! {
            () = follow => panic!("follow_leadership returned while the election runs"),
            run = started.recv() => run.expect("the work starts"),
        }
    }

    async fn assert_stopped(run: oneshot::Receiver<()>) {
        let outcome = tokio::time::timeout(DEADLINE, run)
            .await
            .expect("the work is aborted");
        assert!(outcome.is_err(), "the work ended by being dropped");
    }

    #[tokio::test]
    async fn the_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        let client = Client::try_from(config).expect("a client");
        let election = LeaderElection {
            namespace: "kyverno".to_owned(),
            lease_name: "lease".to_owned(),
            holder_id: "me".to_owned(),
            lease_ttl: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        };
        // Never polled: nothing reaches the (absent) API server.
        let future = run_while_leading(client, election, || async {});
        assert_send(&future);
    }

    #[tokio::test]
    async fn dropping_the_future_aborts_the_work() {
        let (sender, leading) = watch::channel(true);
        let (announce, mut started) = mpsc::unbounded_channel();
        let mut follow = Box::pin(follow_leadership(leading, announced_work(announce)));
        let run = next_start(&mut follow, &mut started).await;
        drop(follow);
        assert_stopped(run).await;
        drop(sender);
    }

    #[tokio::test]
    async fn losing_leadership_aborts_the_work_and_regaining_restarts_it() {
        let (sender, leading) = watch::channel(true);
        let (announce, mut started) = mpsc::unbounded_channel();
        let mut follow = pin!(follow_leadership(leading, announced_work(announce)));
        let first = next_start(&mut follow, &mut started).await;
        sender.send(false).expect("the receiver lives");
        let mut follow_until_stopped = pin!(assert_stopped(first));
        tokio::select! {
            () = &mut follow => panic!("follow_leadership returned while the election runs"),
            () = &mut follow_until_stopped => {}
        }
        sender.send(true).expect("the receiver lives");
        let second = next_start(&mut follow, &mut started).await;
        drop(sender);
        tokio::time::timeout(DEADLINE, &mut follow)
            .await
            .expect("follow_leadership returns once the election is gone");
        assert_stopped(second).await;
    }
}
