//! Sharing of what results repeat. Across thousands of resources, a rule has a handful of
//! outcomes (its policy, rule, result, message, category, severity, source and properties are
//! the same for every compliant resource, and for every resource failing the same way): each
//! such outcome is kept once, as a [`Body`], and resources point to it.
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
    /// The length of its JSON.
    pub json_len: usize,
}

/// The shared bodies and strings, by content.
#[derive(Debug, Default)]
pub struct Interner {
    /// Bodies by their JSON.
    bodies: HashMap<Box<str>, Arc<Body>>,
    strings: HashSet<Arc<str>>,
    next_id: u64,
}

impl Interner {
    /// The shared body of `result` (whose `resources` and `timestamp` are ignored).
    pub fn body(&mut self, mut result: PolicyReportResult) -> Result<Arc<Body>, serde_json::Error> {
        result.resources = Vec::new();
        result.timestamp = None;
        let json = serde_json::to_string(&result)?;
        if let Some(body) = self.bodies.get(json.as_str()) {
            return Ok(Arc::clone(body));
        }
        self.next_id += 1;
        let body = Arc::new(Body {
            id: self.next_id,
            result,
            json_len: json.len(),
        });
        self.bodies.insert(json.into_boxed_str(), Arc::clone(&body));
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
        let first = interner.body(result("bad", "a", 1)).unwrap();
        let second = interner.body(result("bad", "b", 2)).unwrap();
        let other = interner.body(result("worse", "a", 1)).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_ne!(first.id, other.id);
        assert!(first.result.resources.is_empty());
        assert_eq!(first.result.timestamp, None);
        assert_eq!(
            first.json_len,
            serde_json::to_vec(&first.result).unwrap().len()
        );
        assert_eq!(interner.bodies(), 2);
    }

    #[test]
    fn unused_bodies_and_strings_are_purged() {
        let mut interner = Interner::default();
        let kept = interner.body(result("bad", "a", 1)).unwrap();
        let dropped = interner.body(result("worse", "a", 1)).unwrap();
        let text = interner.string("v1");
        assert!(Arc::ptr_eq(&text, &interner.string("v1")));
        drop(dropped);
        drop(text);
        interner.purge();
        assert_eq!(interner.bodies(), 1);
        assert!(interner.strings.is_empty());
        let again = interner.body(result("worse", "a", 1)).unwrap();
        assert!(again.id > kept.id, "ids are never reused");
    }
}
