//! The readiness of every policy in its status, written by the replica holding the Lease: a
//! policy the cache loaded is ready, one that failed to load is not, with why.
//!
//! As upstream: ClusterPolicies and Policies get the `Ready` condition (`Succeeded`/`Ready`, or
//! `Failed` with the error) and the deprecated `status.ready`; the CEL kinds get
//! `status.conditionStatus` with `ready` and the `WebhookConfigured` condition (`Succeeded`,
//! `Webhook configured.`, or `Failed` with the error). The status subresource is merge-patched
//! once per policy object and generation (and outcome): the watches ignore status-only updates,
//! so writing does not load the policy again.
use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kyverno_runtime::policy_cache::{
    PolicyCache, PolicyIdentity, PolicyKey, PolicyKind, Readiness,
};
use serde_json::{Value, json};
use tokio::sync::watch;

/// How long a failed write waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// What was written for a policy: which object, and the outcome.
type Written = HashMap<(PolicyKind, PolicyKey), (PolicyIdentity, Option<String>)>;

/// The status patch of a policy's readiness.
pub fn status_patch(readiness: &Readiness, now: Time) -> Value {
    let ready = readiness.error.is_none();
    let (reason, status) = if ready {
        ("Succeeded", "True")
    } else {
        ("Failed", "False")
    };
    let condition = |kind: &str, ready_message: &str| {
        let mut condition = json!({
            "type": kind,
            "status": status,
            "reason": reason,
            "message": readiness.error.as_deref().unwrap_or(ready_message),
            "lastTransitionTime": now,
        });
        if let Some(generation) = readiness.identity.generation {
            condition["observedGeneration"] = json!(generation);
        }
        condition
    };
    match readiness.kind {
        PolicyKind::ClusterPolicy | PolicyKind::Policy => json!({"status": {
            "ready": ready,
            "conditions": [condition("Ready", "Ready")],
        }}),
        PolicyKind::Cel(_) => json!({"status": {"conditionStatus": {
            "ready": ready,
            "conditions": [condition("WebhookConfigured", "Webhook configured.")],
        }}}),
    }
}

/// Writes the readiness of the policies while `leading` says this replica leads, again when
/// the cache changes; what another leader wrote is written again once on taking the lead.
pub async fn run_status_writer(
    client: Client,
    cache: std::sync::Arc<PolicyCache>,
    mut leading: watch::Receiver<bool>,
) {
    let mut revisions = cache.subscribe();
    let mut written = Written::new();
    loop {
        if !*leading.borrow_and_update() {
            written.clear();
            if leading.changed().await.is_err() {
                return;
            }
            continue;
        }
        revisions.borrow_and_update();
        let complete = write_changes(&client, &cache, &mut written).await;
        let retry = async {
            if complete {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(RETRY).await;
        };
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { return },
            changed = revisions.changed() => if changed.is_err() { return },
            () = retry => {}
        }
    }
}

/// Writes the status of every policy whose object or outcome changed since it was written;
/// whether every write succeeded.
async fn write_changes(client: &Client, cache: &PolicyCache, written: &mut Written) -> bool {
    let all = cache.readiness();
    written.retain(|key, _| {
        all.iter()
            .any(|readiness| (readiness.kind, &readiness.key) == (key.0, &key.1))
    });
    let mut complete = true;
    for readiness in all {
        let key = (readiness.kind, readiness.key.clone());
        let outcome = (readiness.identity.clone(), readiness.error.clone());
        if written.get(&key) == Some(&outcome) {
            continue;
        }
        match write(client, &readiness).await {
            Ok(()) => {
                written.insert(key, outcome);
            }
            Err(error) => {
                tracing::warn!(kind = readiness.kind.name(), policy = %readiness.key, %error, "policy status not written; retrying");
                complete = false;
            }
        }
    }
    complete
}

async fn write(client: &Client, readiness: &Readiness) -> Result<(), kube::Error> {
    let resource = readiness.kind.api_resource();
    let api: Api<DynamicObject> = match &readiness.key.namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let patch = status_patch(readiness, Time(k8s_openapi::jiff::Timestamp::now()));
    match api
        .patch_status(
            &readiness.key.name,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: the cache forgets it too.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kyverno_runtime::cel_policies::CelKind;

    use super::*;

    #[test]
    fn patches_as_upstream_writes_readiness() {
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let readiness = |kind, error: Option<&str>| Readiness {
            kind,
            key: PolicyKey {
                namespace: None,
                name: "p".into(),
            },
            identity: PolicyIdentity {
                uid: "u".into(),
                generation: Some(2),
            },
            error: error.map(str::to_owned),
        };
        assert_eq!(
            status_patch(&readiness(PolicyKind::ClusterPolicy, None), now.clone()),
            json!({"status": {"ready": true, "conditions": [{"type": "Ready", "status": "True",
                "reason": "Succeeded", "message": "Ready", "observedGeneration": 2,
                "lastTransitionTime": "1970-01-01T00:00:00Z"}]}})
        );
        let failed = status_patch(
            &readiness(PolicyKind::Cel(CelKind::ValidatingPolicy), Some("bad")),
            now,
        );
        assert_eq!(failed["status"]["conditionStatus"]["ready"], json!(false));
        assert_eq!(
            failed["status"]["conditionStatus"]["conditions"][0]["message"],
            json!("bad")
        );
        assert_eq!(
            failed["status"]["conditionStatus"]["conditions"][0]["reason"],
            json!("Failed")
        );
    }
}
