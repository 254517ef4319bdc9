//! The policies run on a schedule: ClusterCleanupPolicy and CleanupPolicy (`kyverno.io/v2`),
//! DeletingPolicy and NamespacedDeletingPolicy (`policies.kyverno.io`), read from the API with
//! their last execution time.
use chrono::{DateTime, Utc};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, Resource, ResourceExt};
use kyverno_api::kyverno::v2::cleanup_policy::{
    CleanupPolicy, CleanupPolicyStatus, ClusterCleanupPolicy, DeletionPropagation,
    Spec as CleanupSpec,
};
use kyverno_api::policies::deleting::{
    DeletingPolicy, DeletingPolicyStatus, NamespacedDeletingPolicy, Spec as DeletingSpec,
};
use serde::de::DeserializeOwned;

use crate::clock::from_k8s;

/// What a scheduled policy deletes.
#[derive(Clone, Debug)]
pub enum Rules {
    /// `match`/`exclude`/`conditions` of a cleanup policy.
    Cleanup(Box<CleanupSpec>),
    /// `matchConstraints`/`conditions` (CEL) of a deleting policy.
    Deleting(Box<DeletingSpec>),
}

/// A policy with a schedule, as the scheduler needs it.
#[derive(Clone, Debug)]
pub struct ScheduledPolicy {
    /// The policy's type.
    pub resource: ApiResource,
    /// The name.
    pub name: String,
    /// The namespace of the namespaced kinds.
    pub namespace: Option<String>,
    /// The uid.
    pub uid: Option<String>,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// The cron schedule.
    pub schedule: String,
    /// `status.lastExecutionTime`.
    pub last_execution: Option<DateTime<Utc>>,
    /// How dependents of deleted resources are handled.
    pub propagation: Option<DeletionPropagation>,
    /// What it deletes.
    pub rules: Rules,
}

impl ScheduledPolicy {
    /// `Kind/namespace/name` or `Kind/name`, for logs.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{}/{namespace}/{}", self.resource.kind, self.name),
            None => format!("{}/{}", self.resource.kind, self.name),
        }
    }

    /// Records `tick` as the policy's `status.lastExecutionTime`.
    pub async fn record_execution(
        &self,
        client: &Client,
        tick: DateTime<Utc>,
    ) -> Result<(), kube::Error> {
        let time = tick.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let status = serde_json::json!({"status": {"lastExecutionTime": time}});
        let api: Api<DynamicObject> = match &self.namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        };
        api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        Ok(())
    }
}

/// The fields every scheduled kind has.
struct Common {
    schedule: String,
    last_execution: Option<DateTime<Utc>>,
    propagation: Option<DeletionPropagation>,
    rules: Rules,
}

impl Common {
    fn cleanup(spec: &CleanupSpec, status: Option<&CleanupPolicyStatus>) -> Self {
        Self {
            schedule: spec.schedule.clone(),
            last_execution: status.and_then(|s| s.last_execution_time.as_ref().map(from_k8s)),
            propagation: spec.deletion_propagation_policy,
            rules: Rules::Cleanup(Box::new(spec.clone())),
        }
    }

    fn deleting(spec: &DeletingSpec, status: Option<&DeletingPolicyStatus>) -> Self {
        Self {
            schedule: spec.schedule.clone(),
            last_execution: status.and_then(|s| s.last_execution_time.as_ref().map(from_k8s)),
            propagation: spec.deletion_propagation_policy,
            rules: Rules::Deleting(Box::new(spec.clone())),
        }
    }
}

/// Adds every policy of kind `K` to `policies`.
async fn collect<K>(
    client: &Client,
    policies: &mut Vec<ScheduledPolicy>,
    common: fn(&K) -> Common,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let objects = match Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        // The kind's CRD is not installed: no such policies.
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(error) => return Err(error),
    };
    for object in objects {
        let Common {
            schedule,
            last_execution,
            propagation,
            rules,
        } = common(&object);
        policies.push(ScheduledPolicy {
            resource: ApiResource::erase::<K>(&()),
            name: object.name_any(),
            namespace: object.namespace(),
            uid: object.uid(),
            created: object
                .meta()
                .creation_timestamp
                .as_ref()
                .map_or(DateTime::<Utc>::UNIX_EPOCH, from_k8s),
            schedule,
            last_execution,
            propagation,
            rules,
        });
    }
    Ok(())
}

/// Every scheduled policy of the cluster, read afresh (with its last execution time).
pub async fn list_policies(client: &Client) -> Result<Vec<ScheduledPolicy>, kube::Error> {
    let mut policies = Vec::new();
    collect::<ClusterCleanupPolicy>(client, &mut policies, |p| {
        Common::cleanup(&p.spec, p.status.as_ref())
    })
    .await?;
    collect::<CleanupPolicy>(client, &mut policies, |p| {
        Common::cleanup(&p.spec, p.status.as_ref())
    })
    .await?;
    collect::<DeletingPolicy>(client, &mut policies, |p| {
        Common::deleting(&p.spec, p.status.as_ref())
    })
    .await?;
    collect::<NamespacedDeletingPolicy>(client, &mut policies, |p| {
        Common::deleting(&p.spec, p.status.as_ref())
    })
    .await?;
    Ok(policies)
}
