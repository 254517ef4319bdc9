//! The writes this controller makes itself, so that the watches on generated resources and
//! clone sources do not take them for changes made by hand.
//!
//! A write is announced before it is made, as its watch event may arrive before the API call
//! returns: while it is in flight, events for the object (by kind, namespace and name) are this
//! controller's. Once it returns, the version it stored is remembered, and recognised when its
//! event comes later. Deletions likewise, by UID once done.
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::Value;

/// How many stored versions are remembered before the memory is cleared (a forgotten write
/// only costs one UpdateRequest that changes nothing).
const CAPACITY: usize = 100_000;

/// Kind, namespace and name.
type Key = (String, String, String);

/// The writes and deletions in flight, and those done whose event has not been seen.
#[derive(Debug, Default)]
pub struct OwnWrites {
    writing: Mutex<HashMap<Key, usize>>,
    deleting: Mutex<HashMap<Key, usize>>,
    written: Mutex<HashSet<(Key, String)>>,
    deleted: Mutex<HashSet<String>>,
}

fn text(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn key_of(object: &Value) -> Key {
    (
        text(object, "/kind"),
        text(object, "/metadata/namespace"),
        text(object, "/metadata/name"),
    )
}

fn start(in_flight: &Mutex<HashMap<Key, usize>>, object: &Value) {
    if let Ok(mut in_flight) = in_flight.lock() {
        *in_flight.entry(key_of(object)).or_default() += 1;
    }
}

fn finish(in_flight: &Mutex<HashMap<Key, usize>>, object: &Value) {
    if let Ok(mut in_flight) = in_flight.lock() {
        let key = key_of(object);
        if let Some(count) = in_flight.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&key);
            }
        }
    }
}

fn in_flight(in_flight: &Mutex<HashMap<Key, usize>>, object: &Value) -> bool {
    in_flight
        .lock()
        .is_ok_and(|in_flight| in_flight.contains_key(&key_of(object)))
}

fn remember<T: std::hash::Hash + Eq>(done: &Mutex<HashSet<T>>, entry: T) {
    if let Ok(mut done) = done.lock() {
        if done.len() >= CAPACITY {
            done.clear();
        }
        done.insert(entry);
    }
}

impl OwnWrites {
    /// Announces that this controller is about to create, update or label `object`.
    pub fn writing(&self, object: &Value) {
        start(&self.writing, object);
    }

    /// Ends the write announced for `object`: `stored` is what the API server stored, `None`
    /// when the write failed.
    pub fn wrote(&self, object: &Value, stored: Option<&Value>) {
        if let Some(stored) = stored {
            remember(
                &self.written,
                (key_of(object), text(stored, "/metadata/resourceVersion")),
            );
        }
        finish(&self.writing, object);
    }

    /// Announces that this controller is about to delete `object`.
    pub fn deleting(&self, object: &Value) {
        start(&self.deleting, object);
    }

    /// Ends the deletion announced for `object`, telling whether it succeeded.
    pub fn deleted(&self, object: &Value, succeeded: bool) {
        if succeeded {
            remember(&self.deleted, text(object, "/metadata/uid"));
        }
        finish(&self.deleting, object);
    }

    /// Whether this change of `object` is a write of this controller.
    pub fn is_own_write(&self, object: &Value) -> bool {
        let version = (key_of(object), text(object, "/metadata/resourceVersion"));
        let done = self
            .written
            .lock()
            .is_ok_and(|mut written| written.remove(&version));
        done || in_flight(&self.writing, object)
    }

    /// Whether this deletion of `object` is one of this controller.
    pub fn is_own_delete(&self, object: &Value) -> bool {
        let done = self
            .deleted
            .lock()
            .is_ok_and(|mut deleted| deleted.remove(&text(object, "/metadata/uid")));
        done || in_flight(&self.deleting, object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, version: &str) -> Value {
        serde_json::json!({"kind": kind, "metadata": {
            "namespace": "ns", "name": name, "uid": format!("uid-{name}"), "resourceVersion": version}})
    }

    #[test]
    fn writes_in_flight_and_done_are_recognised() {
        let own = OwnWrites::default();
        let desired = object("ConfigMap", "a", "");
        own.writing(&desired);
        assert!(
            own.is_own_write(&object("ConfigMap", "a", "5")),
            "in flight"
        );
        assert!(
            !own.is_own_write(&object("Secret", "a", "5")),
            "another kind"
        );
        own.wrote(&desired, Some(&object("ConfigMap", "a", "5")));
        assert!(
            own.is_own_write(&object("ConfigMap", "a", "5")),
            "its version"
        );
        assert!(
            !own.is_own_write(&object("ConfigMap", "a", "5")),
            "seen once"
        );
        assert!(
            !own.is_own_write(&object("ConfigMap", "a", "6")),
            "a later change"
        );
        own.writing(&desired);
        own.wrote(&desired, None);
        assert!(
            !own.is_own_write(&object("ConfigMap", "a", "7")),
            "failed write"
        );
    }

    #[test]
    fn deletions_in_flight_and_done_are_recognised() {
        let own = OwnWrites::default();
        let target = object("ConfigMap", "c", "3");
        own.deleting(&target);
        assert!(own.is_own_delete(&target), "in flight");
        own.deleted(&target, true);
        assert!(own.is_own_delete(&target), "done");
        assert!(!own.is_own_delete(&target), "seen once");
        own.deleting(&target);
        own.deleted(&target, false);
        assert!(!own.is_own_delete(&target), "failed deletion");
    }
}
