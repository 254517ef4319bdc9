//! Leader election on a `coordination.k8s.io` Lease (kube-leader-election): one candidate at a
//! time holds it and does the cluster-wide writes; the others keep trying.
use std::time::Duration;

use kube::Client;
use kube_leader_election::{LeaseLock, LeaseLockParams, LeaseLockResult};
use tokio::sync::watch;

/// Settings of a leader election.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This candidate's identity (the pod name).
    pub holder_id: String,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How often the lease is renewed or tried for.
    pub retry_period: Duration,
}

impl LeaderElection {
    /// Runs the election until the sender's receivers are all gone, publishing whether this
    /// candidate leads. Errors of the API server count as not leading (a leader that cannot
    /// renew stops acting before its lease runs out).
    pub async fn run(self, client: Client, leading: watch::Sender<bool>) {
        let lock = LeaseLock::new(
            client,
            &self.namespace,
            LeaseLockParams {
                lease_name: self.lease_name.clone(),
                holder_id: self.holder_id.clone(),
                lease_ttl: self.lease_ttl,
            },
        );
        while !leading.is_closed() {
            let now_leading = match lock.try_acquire_or_renew().await {
                Ok(LeaseLockResult::Acquired(_)) => true,
                Ok(LeaseLockResult::NotAcquired(_)) => false,
                Err(error) => {
                    tracing::warn!(%error, lease = %self.lease_name, "leader election failed");
                    false
                }
            };
            leading.send_if_modified(|current| {
                let changed = *current != now_leading;
                if changed {
                    tracing::info!(holder = %self.holder_id, leading = now_leading, "leadership changed");
                }
                *current = now_leading;
                changed
            });
            tokio::time::sleep(self.retry_period).await;
        }
    }
}
