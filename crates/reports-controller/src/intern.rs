//! Sharing of what results repeat. Across thousands of resources, a rule has a handful of
//! outcomes (its policy, rule, result, message, category, severity, source and properties are
//! the same for every compliant resource, and for every resource failing the same way): each
//! such outcome is kept once, as a [`Body`], and resources point to it. Who reported it (a
//! background scan or not) is part of the outcome: a later scan of the resource replaces what
//! scans reported.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kyverno_api::policy_report::v1alpha2::PolicyReportResult;

/// A result without what differs between resources (its `resources` and its `timestamp`).
#[derive(Debug)]
pub struct Body {
    /// Unique among the bodies an [`Interner`] made, never reused: shard fingerprints use it.
    pub id: u64,
    /// The result, with no `resources` and no `timestamp`.
    pub result: PolicyReportResult,
    /// Whether a background scan reported it (rather than the admission controller, or a
    /// report read back at start).
    pub scanned: bool,
    /// The length of its JSON.
    pub json_len: usize,
}

/// The shared bodies and strings, by content.
#[derive(Debug, Default)]
pub struct Interner {
    /// Bodies by whether a scan reported them and their JSON.
    bodies: HashMap<(bool, Box<str>), Arc<Body>>,
    strings: HashSet<Arc<str>>,
    next_id: u64,
}

impl Interner {
    /// The shared body of `result` (whose `resources` and `timestamp` are ignored), reported
    /// by a background scan when `scanned`.
    pub fn body(
        &mut self,
        mut result: PolicyReportResult,
        scanned: bool,
    ) -> Result<Arc<Body>, serde_json::Error> {
        result.resources = Vec::new();
        result.timestamp = None;
        let key = (scanned, serde_json::to_string(&result)?.into_boxed_str());
        if let Some(body) = self.bodies.get(&key) {
            return Ok(Arc::clone(body));
        }
        self.next_id += 1;
        let body = Arc::new(Body {
            id: self.next_id,
            result,
            scanned,
            json_len: key.1.len(),
        });
        self.bodies.insert(key, Arc::clone(&body));
        Ok(body)
    }

    /// The shared copy of `text`.
    pub fn string(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        self.strings.insert(Arc::clone(&shared));
        shared
    }

    /// Forgets the bodies and strings no result uses any more.
    pub fn purge(&mut self) {
        self.bodies.retain(|_, body| Arc::strong_count(body) > 1);
        self.strings.retain(|text| Arc::strong_count(text) > 1);
    }

    /// How many bodies are shared.
    pub fn bodies(&self) -> usize {
        self.bodies.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use kyverno_api::policy_report::v1alpha2::{PolicyResult, Timestamp};

    fn result(message: &str, uid: &str, seconds: i64) -> PolicyReportResult {
        PolicyReportResult {
            policy: "p".into(),
            rule: Some("r".into()),
            result: Some(PolicyResult::Fail),
            message: Some(message.into()),
            timestamp: Some(Timestamp { seconds, nanos: 0 }),
            resources: vec![ObjectReference {
                uid: Some(uid.into()),
                ..ObjectReference::default()
            }],
            ..PolicyReportResult::default()
        }
    }

    #[test]
    fn equal_outcomes_share_one_body() {
        let mut interner = Interner::default();
        let first = interner.body(result("bad", "a", 1), true).unwrap();
        let second = interner.body(result("bad", "b", 2), true).unwrap();
        let other = interner.body(result("worse", "a", 1), true).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_ne!(first.id, other.id);
        assert!(first.result.resources.is_empty());
        assert_eq!(first.result.timestamp, None);
        assert_eq!(
            first.json_len,
            serde_json::to_vec(&first.result).unwrap().len()
        );
        assert_eq!(interner.bodies(), 2);
        let admitted = interner.body(result("bad", "a", 1), false).unwrap();
        assert!(first.scanned && !admitted.scanned);
        assert_ne!(
            first.id, admitted.id,
            "who reported it is part of the outcome"
        );
        assert_eq!(admitted.json_len, first.json_len);
    }

    #[test]
    fn unused_bodies_and_strings_are_purged() {
        let mut interner = Interner::default();
        let kept = interner.body(result("bad", "a", 1), true).unwrap();
        let dropped = interner.body(result("worse", "a", 1), true).unwrap();
        let text = interner.string("v1");
        assert!(Arc::ptr_eq(&text, &interner.string("v1")));
        drop(dropped);
        drop(text);
        interner.purge();
        assert_eq!(interner.bodies(), 1);
        assert!(interner.strings.is_empty());
        let again = interner.body(result("worse", "a", 1), true).unwrap();
        assert!(again.id > kept.id, "ids are never reused");
    }
}
