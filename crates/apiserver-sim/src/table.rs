//! `meta.k8s.io/v1` Table responses (server-side printing) from printer columns.

use serde_json::{Value, json};

use crate::events;
use crate::resources::{PrinterColumn, ResourceType};

#[derive(Debug, PartialEq)]
enum Seg {
    Field(String),
    Index(usize),
    All,
    Filter {
        path: Vec<String>,
        value: String,
        eq: bool,
    },
}

fn parse_path(p: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let chars: Vec<char> = p
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
        .collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let f: String = chars[start..i].iter().collect();
                if !f.is_empty() {
                    segs.push(Seg::Field(f));
                }
            }
            '[' => {
                let start = i + 1;
                let mut depth = 0;
                while i < chars.len() {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                let inner: String = chars[start..i.min(chars.len())].iter().collect();
                i += 1;
                let inner = inner.trim();
                if inner == "*" {
                    segs.push(Seg::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    segs.push(Seg::Index(n));
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')')) {
                    let (lhs, rhs, eq) = if let Some((l, r)) = f.split_once("==") {
                        (l, r, true)
                    } else if let Some((l, r)) = f.split_once("!=") {
                        (l, r, false)
                    } else {
                        (f, "", true)
                    };
                    let path = lhs
                        .trim()
                        .trim_start_matches('@')
                        .split('.')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    let value = rhs.trim().trim_matches('"').trim_matches('\'').to_string();
                    segs.push(Seg::Filter { path, value, eq });
                } else {
                    let key = inner
                        .trim_matches('\'')
                        .trim_matches('"')
                        .replace("\\.", ".");
                    segs.push(Seg::Field(key));
                }
            }
            _ => i += 1,
        }
    }
    segs
}

/// Evaluates a simple JSONPath (`.a.b`, `.a[0]`, `.a['k\.x']`, `.a[?(@.type == "X")].b`).
pub fn eval(obj: &Value, path: &str) -> Vec<Value> {
    let mut cur = vec![obj.clone()];
    for seg in parse_path(path) {
        let mut next = Vec::new();
        for v in cur {
            match &seg {
                Seg::Field(f) => {
                    if let Some(x) = v.get(f.as_str()) {
                        next.push(x.clone());
                    }
                }
                Seg::Index(n) => {
                    if let Some(x) = v.get(*n) {
                        next.push(x.clone());
                    }
                }
                Seg::All => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter().cloned());
                    }
                }
                Seg::Filter { path, value, eq } => {
                    if let Some(a) = v.as_array() {
                        for item in a {
                            let mut f = Some(item);
                            for p in path {
                                f = f.and_then(|x| x.get(p.as_str()));
                            }
                            let got = match f {
                                Some(Value::String(s)) => s.clone(),
                                Some(other) => other.to_string(),
                                None => continue,
                            };
                            if (got == *value) == *eq {
                                next.push(item.clone());
                            }
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

/// Kubernetes' `HumanDuration` (as `kubectl get` shows ages).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rs = s % 60;
        return if rs == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rs}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rm = (s % 3600) / 60;
        return if rm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rm}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let d = h / 24;
        let rh = h % 24;
        return if rh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rh}h")
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    if h < 24 * 365 * 8 {
        let y = h / (24 * 365);
        let d = (h % (24 * 365)) / 24;
        return if d == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{d}d")
        };
    }
    format!("{}y", h / (24 * 365))
}

fn age(ts: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds();
    Some(human_duration(secs))
}

/// A string field of an object, `""` when missing.
fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The age of a timestamp field, `<unknown>` when missing (`translateTimestampSince`).
fn age_of(obj: &Value, pointer: &str) -> Option<String> {
    obj.pointer(pointer).and_then(Value::as_str).and_then(age)
}

/// The cells of the real server's Event printer (`printEvent`), on the core form.
fn event_cell(event: &Value, name: &str) -> Option<Value> {
    let first_seen = || {
        age_of(event, "/firstTimestamp")
            .or_else(|| age_of(event, "/eventTime"))
            .unwrap_or_else(|| "<unknown>".to_string())
    };
    let series = event.get("series").filter(|s| s.is_object());
    let cell = match name {
        "@eventFirstSeen" => json!(first_seen()),
        "@eventLastSeen" => json!(match series {
            Some(_) =>
                age_of(event, "/series/lastObservedTime").unwrap_or_else(|| "<unknown>".to_string()),
            None => age_of(event, "/lastTimestamp").unwrap_or_else(first_seen),
        }),
        "@eventCount" => {
            let count = match series {
                Some(s) => s.get("count").and_then(Value::as_i64).unwrap_or(0),
                None => event
                    .get("count")
                    .and_then(Value::as_i64)
                    .filter(|n| *n != 0)
                    .unwrap_or(1),
            };
            json!(count)
        }
        "@eventObject" => {
            let kind = text(event, "/involvedObject/kind").to_lowercase();
            let name = text(event, "/involvedObject/name");
            json!(if name.is_empty() {
                kind
            } else {
                format!("{kind}/{name}")
            })
        }
        "@eventSubobject" => json!(text(event, "/involvedObject/fieldPath")),
        "@eventSource" => {
            let component = Some(text(event, "/source/component"))
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| text(event, "/reportingComponent"));
            let instance = Some(text(event, "/source/host"))
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| text(event, "/reportingInstance"));
            json!(if instance.is_empty() {
                component.to_string()
            } else {
                format!("{component}, {instance}")
            })
        }
        "@eventMessage" => json!(text(event, "/message").trim()),
        _ => return None,
    };
    Some(cell)
}

fn special(obj: &Value, name: &str) -> Value {
    if let Some(cell) = event_cell(obj, name) {
        return cell;
    }
    match name {
        "@podReady" => {
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map_or(0, |a| {
                    a.iter()
                        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                        .count()
                });
            json!(format!("{ready}/{total}"))
        }
        "@podRestarts" => json!(
            obj.pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map_or(0, |a| a
                    .iter()
                    .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                    .sum::<i64>())
        ),
        "@dataCount" => {
            let n = |k: &str| obj.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
            json!(n("data") + n("binaryData") + n("stringData"))
        }
        "@readyOfReplicas" => {
            let ready = obj
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let want = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            json!(format!("{ready}/{want}"))
        }
        _ => Value::Null,
    }
}

fn cell(obj: &Value, col: &PrinterColumn) -> Value {
    if col.json_path.starts_with('@') {
        return special(obj, &col.json_path);
    }
    let Some(v) = eval(obj, &col.json_path).into_iter().next() else {
        return Value::Null;
    };
    match col.type_.as_str() {
        "date" => v.as_str().and_then(age).map_or(Value::Null, Value::String),
        "integer" => match &v {
            Value::Number(_) => v,
            Value::String(s) => s.parse::<i64>().map_or(v.clone(), |n| json!(n)),
            _ => v,
        },
        "string" => match &v {
            Value::String(_) => v,
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
        _ => v,
    }
}

/// The description of the Name column.
const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// Builds a Table from objects. `include_object` is `None`, `Metadata` (default) or `Object`.
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    list_meta: Value,
    include_object: &str,
) -> Value {
    // The Event printer has its Name column last (wide only), and computes its cells from the
    // stored (core) form.
    let is_event = events::is_event(rt);
    let mut defs = Vec::new();
    if !is_event {
        defs.push(json!({
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": NAME_DESCRIPTION,
            "priority": 0,
        }));
    }
    for c in &rt.printer_columns {
        defs.push(json!({
            "name": c.name,
            "type": if c.type_ == "date" { "string" } else { c.type_.as_str() },
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        }));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = Vec::new();
            if is_event {
                let core = rt.to_storage(o.clone());
                cells.extend(rt.printer_columns.iter().map(|c| cell(&core, c)));
            } else {
                cells.push(o.pointer("/metadata/name").cloned().unwrap_or(Value::Null));
                cells.extend(rt.printer_columns.iter().map(|c| cell(o, c)));
            }
            let mut row = json!({"cells": cells});
            match include_object {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                    });
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_forms() {
        let o = json!({
            "metadata": {"labels": {"audit.kyverno.io/source": "admission"}},
            "status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}]},
            "summary": {"pass": 3},
        });
        assert_eq!(eval(&o, ".summary.pass"), vec![json!(3)]);
        assert_eq!(
            eval(&o, ".metadata.labels['audit\\.kyverno\\.io/source']"),
            vec![json!("admission")]
        );
        assert_eq!(
            eval(&o, ".status.conditions[?(@.type == \"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(eval(&o, ".status.conditions[0].type"), vec![json!("Other")]);
        assert!(eval(&o, ".nope.x").is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5 + 60), "5h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
