//! Events: one stored kind served as core `v1` `events` and as `events.k8s.io/v1` `events`, as
//! on a real API server. The core form is the storage form; the `events.k8s.io/v1` view renames
//! fields both ways (losslessly), and both views accept the field selectors the real server
//! supports for Events, evaluated on the stored (core) form.

use serde_json::{Map, Value};

use crate::resources::ResourceType;

/// The store key of Events (the core group's).
pub const STORE_KEY: &str = "/events";

/// Fields named differently in the two versions: `(core v1, events.k8s.io/v1)`. The others
/// (`eventTime`, `series`, `action`, `reason`, `related`, `type`, `reportingInstance`,
/// `metadata`) have the same name in both.
const RENAMED: [(&str, &str); 7] = [
    ("message", "note"),
    ("involvedObject", "regarding"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("count", "deprecatedCount"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
];

/// Whether a type is one of the two views of Events.
pub fn is_event(rt: &ResourceType) -> bool {
    rt.plural == "events" && (rt.group.is_empty() || rt.group == "events.k8s.io")
}

/// Whether a type is the `events.k8s.io` view of Events (the converted one).
pub fn is_events_v1(rt: &ResourceType) -> bool {
    rt.plural == "events" && rt.group == "events.k8s.io"
}

/// Renames the fields of `obj` from one form to the other. A field that only exists in the
/// target form is dropped first: it is unknown in the source form, where a real server would
/// have pruned it.
fn rename(obj: &mut Map<String, Value>, to_core: bool) {
    for (core, v1) in RENAMED {
        let (from, to) = if to_core { (v1, core) } else { (core, v1) };
        obj.remove(to);
        if let Some(value) = obj.remove(from) {
            obj.insert(to.to_string(), value);
        }
    }
}

/// An `events.k8s.io/v1` Event in its stored (core `v1`) form.
pub fn to_core(mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        rename(map, true);
        map.insert("apiVersion".into(), Value::String("v1".into()));
    }
    obj
}

/// A stored (core `v1`) Event as `events.k8s.io/v1` shows it (`apiVersion` and `kind` are set
/// by the caller).
pub fn from_core(mut obj: Value) -> Value {
    if let Some(map) = obj.as_object_mut() {
        rename(map, false);
    }
    obj
}

/// The path, in the stored (core) form, that a field selector label of an Events view selects
/// on; an error (worded as the real server's) for a label the view does not support.
pub fn field_path(rt: &ResourceType, label: &str) -> Result<String, String> {
    let core = if is_events_v1(rt) {
        match label {
            "reportingController" => Some("reportingComponent".to_string()),
            "reason" | "type" | "metadata.name" | "metadata.namespace" => Some(label.to_string()),
            _ => label
                .strip_prefix("regarding.")
                .filter(|field| OBJECT_FIELDS.contains(field))
                .map(|field| format!("involvedObject.{field}")),
        }
    } else {
        match label {
            "source" => Some("source.component".to_string()),
            "reason" | "type" | "reportingComponent" | "metadata.name" | "metadata.namespace" => {
                Some(label.to_string())
            }
            _ => label
                .strip_prefix("involvedObject.")
                .filter(|field| OBJECT_FIELDS.contains(field))
                .map(|_| label.to_string()),
        }
    };
    core.ok_or_else(|| format!("field label not supported: {label}"))
}

/// The fields of `involvedObject` (`regarding`) that field selectors may name.
const OBJECT_FIELDS: [&str; 7] = [
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::Registry;

    fn views() -> (ResourceType, ResourceType) {
        let reg = Registry::with_builtins();
        (
            reg.find("", "v1", "events").cloned().unwrap(),
            reg.find("events.k8s.io", "v1", "events").cloned().unwrap(),
        )
    }

    #[test]
    fn conversion_round_trips() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000001Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"},
            "reportingController": "kyverno-admission", "reportingInstance": "r-1",
            "action": "Resource Passed", "reason": "PolicyViolation", "type": "Warning",
            "regarding": {"kind": "Pod", "name": "bad", "namespace": "default"},
            "related": {"kind": "ClusterPolicy", "name": "p"},
            "note": "policy p/r fail: no", "deprecatedSource": {"component": "c"},
            "deprecatedCount": 3, "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2026-01-01T00:00:02Z",
        });
        let core = to_core(v1.clone());
        assert_eq!(core["message"], "policy p/r fail: no");
        assert_eq!(core["involvedObject"]["name"], "bad");
        assert_eq!(core["reportingComponent"], "kyverno-admission");
        assert_eq!(core["source"]["component"], "c");
        assert_eq!(core["count"], 3);
        assert_eq!(core["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(core["lastTimestamp"], "2026-01-01T00:00:02Z");
        assert_eq!(core["related"]["name"], "p");
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
        let mut back = from_core(core);
        back["apiVersion"] = json!("events.k8s.io/v1");
        assert_eq!(back, v1);
    }

    #[test]
    fn fields_of_the_other_form_are_dropped() {
        let core = to_core(json!({"note": "n", "message": "stray", "count": 9}));
        assert_eq!(core, json!({"apiVersion": "v1", "message": "n"}));
    }

    #[test]
    fn field_labels_map_to_the_stored_form() {
        let (core, v1) = views();
        assert_eq!(field_path(&core, "source").unwrap(), "source.component");
        assert_eq!(
            field_path(&core, "involvedObject.name").unwrap(),
            "involvedObject.name"
        );
        assert_eq!(
            field_path(&v1, "regarding.kind").unwrap(),
            "involvedObject.kind"
        );
        assert_eq!(
            field_path(&v1, "reportingController").unwrap(),
            "reportingComponent"
        );
        assert_eq!(field_path(&v1, "reason").unwrap(), "reason");
        assert_eq!(
            field_path(&core, "message").unwrap_err(),
            "field label not supported: message"
        );
        assert!(field_path(&v1, "involvedObject.name").is_err());
        assert!(field_path(&core, "involvedObject.labels").is_err());
    }
}
