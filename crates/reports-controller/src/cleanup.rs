//! The `report-cleanup` command (run by the chart's CronJobs): deletes ephemeral reports older
//! than a threshold, left behind when a reports controller was down or crashed. A live
//! controller aggregates and deletes them within seconds, so old ones are stale; a later
//! background scan writes their results again.
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use kyverno_api::reports::v1::{ClusterEphemeralReport, EphemeralReport};

/// What the cleanup did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupSummary {
    /// Ephemeral reports seen.
    pub seen: usize,
    /// Ephemeral reports deleted.
    pub deleted: usize,
}

/// Deletes the EphemeralReports and ClusterEphemeralReports created more than `older_than`
/// ago.
pub async fn cleanup(client: &Client, older_than: Duration) -> Result<CleanupSummary, kube::Error> {
    let cutoff = Timestamp::now()
        .checked_sub(SignedDuration::try_from(older_than).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MIN);
    let mut summary = CleanupSummary::default();
    for resource in [
        ApiResource::erase::<EphemeralReport>(&()),
        ApiResource::erase::<ClusterEphemeralReport>(&()),
    ] {
        let all = Api::<DynamicObject>::all_with(client.clone(), &resource);
        for report in all.list_metadata(&ListParams::default()).await? {
            summary.seen += 1;
            let stale = report
                .metadata
                .creation_timestamp
                .as_ref()
                .is_none_or(|created| created.0 < cutoff);
            if !stale {
                continue;
            }
            let name = report.metadata.name.unwrap_or_default();
            let api = match &report.metadata.namespace {
                Some(namespace) => {
                    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
                }
                None => Api::<DynamicObject>::all_with(client.clone(), &resource),
            };
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => summary.deleted += 1,
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(summary)
}
