//! Running work only while this replica holds a Lease: the single active writer of a controller
//! with several replicas.
use std::future::Future;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;

use crate::leader::LeaderElection;

/// How long to wait before restarting work that ended on its own while still leading.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Runs the election and, whenever this replica leads, the future made by `work`; the future is
/// dropped (aborted) as soon as leadership is lost, and made again when it comes back. Never
/// returns.
pub async fn run_while_leading<F, Fut>(client: Client, election: LeaderElection, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (sender, mut leading) = watch::channel(false);
    let election = tokio::spawn(election.run(client, sender));
    loop {
        if leading.wait_for(|leads| *leads).await.is_err() {
            tracing::error!("leader election ended");
            break;
        }
        let task = tokio::spawn(work());
        let abort = task.abort_handle();
        tokio::select! {
            lost = leading.wait_for(|leads| !*leads) => {
                abort.abort();
                if lost.is_err() {
                    tracing::error!("leader election ended");
                    break;
                }
            }
            ended = task => {
                if let Err(error) = ended {
                    tracing::error!(%error, "leader work failed");
                }
                tokio::time::sleep(RESTART_DELAY).await;
            }
        }
    }
    election.abort();
}
