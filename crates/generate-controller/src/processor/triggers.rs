//! What the processor knows of triggers across requests: one request at a time per trigger,
//! and the triggers whose deletion already took their downstream resources with them (a
//! request queued before the deletion must not generate them again while the API server has
//! not removed the trigger yet).
use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use kyverno_api::kyverno::v1::generate::ResourceSpec;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v2::update_request::UpdateRequestSpecContext;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

/// How many locks the triggers share (a trigger always takes the same one).
const STRIPES: usize = 64;
/// How many deleted triggers are remembered before the memory is cleared (UIDs are never
/// reused: a forgotten one only matters for requests still queued for it).
const CAPACITY: usize = 100_000;

/// The per-trigger locks and the deleted triggers.
#[derive(Debug)]
pub struct Triggers {
    stripes: Vec<AsyncMutex<()>>,
    deleted: Mutex<HashSet<String>>,
}

impl Default for Triggers {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| AsyncMutex::new(())).collect(),
            deleted: Mutex::default(),
        }
    }
}

/// The identity of a trigger: its UID, or its kind, namespace and name when the spec has none.
fn identity(trigger: &ResourceSpec) -> String {
    match trigger.uid.as_deref().filter(|uid| !uid.is_empty()) {
        Some(uid) => uid.to_owned(),
        None => format!(
            "{}/{}/{}",
            trigger.kind.as_deref().unwrap_or_default(),
            trigger.namespace.as_deref().unwrap_or_default(),
            trigger.name.as_deref().unwrap_or_default()
        ),
    }
}

impl Triggers {
    /// Waits until no other request runs for `trigger`; the guard lets the next one in.
    pub async fn lock(&self, trigger: &ResourceSpec) -> Option<MutexGuard<'_, ()>> {
        let mut hasher = DefaultHasher::new();
        identity(trigger).hash(&mut hasher);
        let stripe = usize::try_from(hasher.finish() % STRIPES as u64).unwrap_or_default();
        Some(self.stripes.get(stripe)?.lock().await)
    }

    /// Remembers `trigger` as deleted when the request's admission request deleted it.
    pub fn forget_if_deleted(&self, trigger: &ResourceSpec, context: &UpdateRequestSpecContext) {
        let deleted = context
            .admission_request_info
            .as_ref()
            .and_then(|info| info.operation)
            == Some(AdmissionOperation::Delete);
        let Some(uid) = trigger.uid.as_deref().filter(|uid| !uid.is_empty()) else {
            return;
        };
        if deleted && let Ok(mut remembered) = self.deleted.lock() {
            if remembered.len() >= CAPACITY {
                remembered.clear();
            }
            remembered.insert(uid.to_owned());
        }
    }

    /// Whether `trigger` was deleted with its downstream resources.
    pub fn is_deleted(&self, trigger: &ResourceSpec) -> bool {
        trigger.uid.as_deref().is_some_and(|uid| {
            self.deleted
                .lock()
                .is_ok_and(|deleted| deleted.contains(uid))
        })
    }
}

#[cfg(test)]
mod tests {
    use kyverno_api::kyverno::v2::update_request::AdmissionRequestInfo;

    use super::*;

    fn trigger(uid: &str) -> ResourceSpec {
        ResourceSpec {
            kind: Some("Namespace".to_owned()),
            name: Some("a".to_owned()),
            uid: Some(uid.to_owned()),
            ..ResourceSpec::default()
        }
    }

    fn context(operation: AdmissionOperation) -> UpdateRequestSpecContext {
        UpdateRequestSpecContext {
            admission_request_info: Some(AdmissionRequestInfo {
                admission_request: None,
                operation: Some(operation),
            }),
            ..UpdateRequestSpecContext::default()
        }
    }

    #[test]
    fn only_deleted_triggers_are_remembered() {
        let triggers = Triggers::default();
        triggers.forget_if_deleted(&trigger("left"), &context(AdmissionOperation::Update));
        triggers.forget_if_deleted(&trigger("gone"), &context(AdmissionOperation::Delete));
        assert!(
            !triggers.is_deleted(&trigger("left")),
            "it only left the rule"
        );
        assert!(triggers.is_deleted(&trigger("gone")));
        assert!(!triggers.is_deleted(&trigger("recreated")), "a new object");
    }

    #[tokio::test]
    async fn one_request_at_a_time_per_trigger() {
        let triggers = Triggers::default();
        let same = trigger("a");
        let held = triggers.lock(&same).await;
        assert!(held.is_some());
        let second = triggers.lock(&same);
        tokio::pin!(second);
        assert!(
            futures::poll!(second.as_mut()).is_pending(),
            "the same trigger waits"
        );
        drop(held);
        assert!(second.await.is_some());
    }
}
