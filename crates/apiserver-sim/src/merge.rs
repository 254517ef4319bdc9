//! Patches: JSON merge patch (RFC 7386), JSON patch (RFC 6902), a strategic merge patch for
//! built-in kinds, and a simplified server-side apply with field ownership.
//!
//! Strategic merge knows the list-map keys of the core kinds' common lists (containers by
//! `name`, ports by `containerPort`/`port`, volumes, env, conditions by `type`, ...) and the
//! `$patch`, `$deleteFromPrimitiveList`, `$setElementOrder` and `$retainKeys` directives.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The list-map key of a list field of a built-in kind, given its field name and one item.
pub fn merge_key(field: &str, item: Option<&Value>) -> Option<&'static str> {
    let has = |k: &str| item.is_some_and(|i| i.get(k).is_some());
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "webhooks"
        | "secrets" => Some("name"),
        "ports" => {
            if has("containerPort") {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

/// Lists of primitives that merge as sets.
fn is_set_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Removes `$`-directives from a value about to be inserted.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|i| {
                    !(i.is_object()
                        && i.get("$patch").is_some()
                        && i.as_object().is_some_and(|m| m.len() == 1))
                })
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies a strategic merge patch to `target` (built-in kinds).
pub fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    smp_value(target, patch)
}

fn smp_value(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(pm) = patch else {
        *target = clean(patch);
        return Ok(());
    };
    match pm.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = clean(patch);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other}")),
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tm) = target else {
        return Ok(());
    };
    if let Some(keep) = pm.get("$retainKeys").and_then(Value::as_array) {
        let keep: BTreeSet<&str> = keep.iter().filter_map(Value::as_str).collect();
        tm.retain(|k, _| keep.contains(k.as_str()));
    }
    for (k, v) in pm {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Some(remove)) = (tm.get_mut(field), v.as_array()) {
                items.retain(|i| !remove.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                tm.remove(k);
            }
            Value::Object(inner) => {
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") {
                    tm.remove(k);
                    continue;
                }
                let slot = tm.entry(k.clone()).or_insert(Value::Null);
                if slot.is_object() {
                    smp_value(slot, v)?;
                } else {
                    *slot = clean(v);
                }
            }
            Value::Array(items) => {
                let slot = tm.entry(k.clone()).or_insert(Value::Array(vec![]));
                smp_list(k, slot, items)?;
            }
            scalar => {
                tm.insert(k.clone(), scalar.clone());
            }
        }
    }
    Ok(())
}

fn smp_list(field: &str, target: &mut Value, items: &[Value]) -> Result<(), String> {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *target = clean(&Value::Array(items.to_vec()));
        return Ok(());
    }
    if !target.is_array() {
        *target = Value::Array(vec![]);
    }
    let Value::Array(cur) = target else {
        return Ok(());
    };
    if is_set_list(field) {
        for i in items {
            if !cur.contains(i) {
                cur.push(i.clone());
            }
        }
        return Ok(());
    }
    let Some(key) = merge_key(field, items.first().or(cur.first())) else {
        *cur = items.iter().map(clean).collect();
        return Ok(());
    };
    for item in items {
        let Some(kv) = item.get(key) else {
            return Err(format!(
                "map: {item} does not contain declared merge key: {key}"
            ));
        };
        let pos = cur.iter().position(|c| c.get(key) == Some(kv));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(p), true) => {
                cur.remove(p);
            }
            (None, true) => {}
            (Some(p), false) => smp_value(&mut cur[p], item)?,
            (None, false) => cur.push(clean(item)),
        }
    }
    Ok(())
}

/// Applies a JSON merge patch (RFC 7386).
pub fn json_merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies a JSON patch (RFC 6902).
pub fn json_patch_apply(target: &mut Value, patch: &Value) -> Result<(), String> {
    let p: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    json_patch::patch(target, &p).map_err(|e| e.to_string())
}

/// A field path in `fieldsV1` notation: `f:spec`, `k:{"name":"c"}`, `v:"x"`, `.`.
pub type FieldPath = Vec<String>;

/// The set of leaf fields an applied configuration sets.
pub fn field_set(obj: &Value, builtin: bool) -> BTreeSet<FieldPath> {
    let mut set = BTreeSet::new();
    if let Value::Object(m) = obj {
        for (k, v) in m {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    if let Value::Object(meta) = v {
                        for (mk, mv) in meta {
                            if matches!(
                                mk.as_str(),
                                "labels" | "annotations" | "finalizers" | "ownerReferences"
                            ) {
                                walk(
                                    mv,
                                    mk,
                                    &mut vec!["f:metadata".to_string(), format!("f:{mk}")],
                                    builtin || mk == "ownerReferences" || mk == "finalizers",
                                    &mut set,
                                );
                            }
                        }
                    }
                }
                _ => walk(v, k, &mut vec![format!("f:{k}")], builtin, &mut set),
            }
        }
    }
    set
}

fn walk(
    v: &Value,
    field: &str,
    path: &mut FieldPath,
    builtin: bool,
    set: &mut BTreeSet<FieldPath>,
) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                path.push(format!("f:{k}"));
                walk(c, k, path, builtin, set);
                path.pop();
            }
        }
        Value::Array(items) if builtin && !items.is_empty() => {
            if is_set_list(field) && items.iter().all(|i| !i.is_object() && !i.is_array()) {
                for i in items {
                    path.push(format!("v:{i}"));
                    set.insert(path.clone());
                    path.pop();
                }
                return;
            }
            let key = merge_key(field, items.first());
            match key {
                Some(key) if items.iter().all(|i| i.get(key).is_some()) => {
                    for i in items {
                        let mut km = Map::new();
                        km.insert(key.to_string(), i.get(key).cloned().unwrap_or(Value::Null));
                        path.push(format!("k:{}", Value::Object(km)));
                        path.push(".".to_string());
                        set.insert(path.clone());
                        path.pop();
                        if let Value::Object(im) = i {
                            for (k, c) in im {
                                path.push(format!("f:{k}"));
                                walk(c, k, path, builtin, set);
                                path.pop();
                            }
                        }
                        path.pop();
                    }
                }
                _ => {
                    set.insert(path.clone());
                }
            }
        }
        _ => {
            set.insert(path.clone());
        }
    }
}

/// Renders a field set as a `fieldsV1` object.
pub fn to_fields_v1(set: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for seg in path {
            let entry = node
                .entry(seg.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(next) = entry else {
                break;
            };
            node = next;
        }
    }
    Value::Object(root)
}

/// Parses a `fieldsV1` object into its leaf paths.
pub fn from_fields_v1(v: &Value) -> BTreeSet<FieldPath> {
    fn go(v: &Value, path: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, c) in m {
                    path.push(k.clone());
                    go(c, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

fn step<'a>(v: &'a Value, seg: &str) -> Option<&'a Value> {
    if let Some(f) = seg.strip_prefix("f:") {
        return v.get(f);
    }
    if let Some(k) = seg.strip_prefix("k:") {
        let key: Map<String, Value> = serde_json::from_str(k).ok()?;
        return v
            .as_array()?
            .iter()
            .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
    }
    if let Some(val) = seg.strip_prefix("v:") {
        let val: Value = serde_json::from_str(val).ok()?;
        return v.as_array()?.iter().find(|i| **i == val);
    }
    if seg == "." {
        return Some(v);
    }
    None
}

/// The value at a field path, if present.
pub fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = step(cur, seg)?;
    }
    Some(cur)
}

/// Removes the field (or list item) at a path.
fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    // A `.` leaf stands for the list item itself.
    let (last, parent_path) = if last == "." {
        match parent_path.split_last() {
            Some((item, pp)) => (item, pp),
            None => return,
        }
    } else {
        (last, parent_path)
    };
    let mut cur = v;
    for seg in parent_path {
        let next = if let Some(f) = seg.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = seg.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|i| key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(k),
            cur.as_array_mut(),
        ) {
            a.retain(|i| !key.iter().all(|(kk, kv)| i.get(kk) == Some(kv)));
        }
    } else if let Some(val) = last.strip_prefix("v:")
        && let (Ok(val), Some(a)) = (serde_json::from_str::<Value>(val), cur.as_array_mut())
    {
        a.retain(|i| *i != val);
    }
}

/// Merges an applied configuration into an object: maps merge, keyed lists of built-in kinds
/// merge by key, set lists union, other lists are replaced.
fn apply_merge(target: &mut Value, applied: &Value, field: &str, builtin: bool) {
    match (target, applied) {
        (Value::Object(tm), Value::Object(am)) => {
            for (k, v) in am {
                match tm.get_mut(k) {
                    Some(slot) => apply_merge(slot, v, k, builtin),
                    None => {
                        tm.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(cur), Value::Array(items))
            if builtin || is_set_list(field) || field == "ownerReferences" =>
        {
            if is_set_list(field) {
                for i in items {
                    if !cur.contains(i) {
                        cur.push(i.clone());
                    }
                }
                return;
            }
            match merge_key(field, items.first()) {
                Some(key) if items.iter().all(|i| i.get(key).is_some()) => {
                    for item in items {
                        match cur.iter_mut().find(|c| c.get(key) == item.get(key)) {
                            Some(c) => apply_merge(c, item, "", builtin),
                            None => cur.push(item.clone()),
                        }
                    }
                }
                _ => *cur = items.clone(),
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// One field-ownership conflict of an apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The field, in `.spec.replicas` form.
    pub field: String,
}

/// Renders a field path as `.spec.containers[name="c"].image`.
pub fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if let Some(f) = seg.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = seg.strip_prefix("k:") {
            let inner = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            s.push_str(&format!("[{inner}]"));
        } else if let Some(v) = seg.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// A manager's field set, as recorded in `metadata.managedFields`.
#[derive(Debug, Clone)]
pub struct ManagedEntry {
    /// Field manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// Subresource (`""` or `status`).
    pub subresource: String,
    /// Owned leaf fields.
    pub fields: BTreeSet<FieldPath>,
    /// The raw entry, kept for fields we don't interpret.
    pub raw: Value,
}

/// Reads `metadata.managedFields`.
pub fn managed_entries(obj: &Value) -> Vec<ManagedEntry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| ManagedEntry {
                    manager: e
                        .get("manager")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    operation: e
                        .get("operation")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    subresource: e
                        .get("subresource")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                    raw: e.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The outcome of a server-side apply onto an existing object.
pub struct ApplyOutcome {
    /// The merged object (metadata.managedFields updated).
    pub object: Value,
}

/// Server-side apply of `applied` onto `current` by `manager`.
///
/// Simplifications (documented in the crate docs): only `Apply` managers own fields, so a
/// conflict arises only when another apply manager owns a field this apply sets to a
/// different value; `force` transfers those fields.
#[allow(clippy::too_many_arguments)]
pub fn server_side_apply(
    current: &Value,
    applied: &Value,
    manager: &str,
    subresource: &str,
    force: bool,
    builtin: bool,
    api_version: &str,
    now: &str,
) -> Result<ApplyOutcome, Vec<Conflict>> {
    let new_set = field_set(applied, builtin);
    let mut entries = managed_entries(current);
    let prev_set = entries
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource)
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut conflicts = Vec::new();
    for e in entries.iter_mut() {
        if e.operation != "Apply" || (e.manager == manager && e.subresource == subresource) {
            continue;
        }
        let clashing: Vec<FieldPath> = e
            .fields
            .iter()
            .filter(|p| new_set.contains(*p))
            .filter(|p| value_at(applied, p) != value_at(current, p))
            .cloned()
            .collect();
        if clashing.is_empty() {
            continue;
        }
        if force {
            for p in &clashing {
                e.fields.remove(p);
            }
        } else {
            conflicts.extend(clashing.iter().map(|p| Conflict {
                manager: e.manager.clone(),
                field: display_path(p),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let mut object = current.clone();
    for p in prev_set.difference(&new_set) {
        let owned_elsewhere = entries.iter().any(|e| {
            !(e.manager == manager && e.subresource == subresource) && e.fields.contains(p)
        });
        if !owned_elsewhere {
            remove_path(&mut object, p);
        }
    }
    let mut applied_clean = applied.clone();
    if let Some(meta) = applied_clean
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        meta.retain(|k, _| {
            matches!(
                k.as_str(),
                "labels" | "annotations" | "finalizers" | "ownerReferences"
            )
        });
    }
    if let Some(m) = applied_clean.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    apply_merge(&mut object, &applied_clean, "", builtin);
    // A no-op apply (same content, same ownership) leaves the object as it is, timestamps
    // included, so that controllers re-applying the same status cause no write.
    let transferred = force
        && entries.iter().any(|e| {
            managed_entries(current).iter().any(|o| {
                o.manager == e.manager && o.subresource == e.subresource && o.fields != e.fields
            })
        });
    if prev_set == new_set && !transferred && strip_managed(&object) == strip_managed(current) {
        return Ok(ApplyOutcome {
            object: current.clone(),
        });
    }
    // Rebuild managedFields.
    let mut out = Vec::new();
    for e in entries {
        if e.manager == manager && e.operation == "Apply" && e.subresource == subresource {
            continue;
        }
        if e.operation == "Apply" && e.fields.is_empty() {
            continue;
        }
        let mut raw = e.raw.clone();
        if e.operation == "Apply" {
            raw["fieldsV1"] = to_fields_v1(&e.fields);
        }
        out.push(raw);
    }
    let mut entry = serde_json::json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(&new_set),
    });
    if !subresource.is_empty() {
        entry["subresource"] = Value::String(subresource.to_string());
    }
    out.push(entry);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".to_string(), Value::Array(out));
    }
    Ok(ApplyOutcome { object })
}

fn strip_managed(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

/// The `managedFields` of an object created by an apply.
pub fn initial_managed_fields(
    applied: &Value,
    manager: &str,
    subresource: &str,
    builtin: bool,
    api_version: &str,
    now: &str,
) -> Value {
    let mut entry = serde_json::json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(&field_set(applied, builtin)),
    });
    if !subresource.is_empty() {
        entry["subresource"] = Value::String(subresource.to_string());
    }
    Value::Array(vec![entry])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}, "metadata": {"finalizers": ["f1"]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}, "metadata": {"finalizers": ["f2"]}});
        strategic_merge(&mut pod, &patch).unwrap();
        assert_eq!(
            pod,
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c", "image": "w"}]}, "metadata": {"finalizers": ["f1", "f2"]}})
        );
        let del = json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}, "metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]}});
        strategic_merge(&mut pod, &del).unwrap();
        assert_eq!(pod["spec"]["containers"].as_array().map(Vec::len), Some(2));
        assert_eq!(pod["metadata"]["finalizers"], json!(["f2"]));
        strategic_merge(&mut pod, &json!({"spec": {"$patch": "replace", "x": 1}})).unwrap();
        assert_eq!(pod["spec"], json!({"x": 1}));
    }

    #[test]
    fn fields_v1_roundtrip() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let set = field_set(&obj, true);
        assert!(set.contains(&vec![
            "f:metadata".to_string(),
            "f:labels".to_string(),
            "f:a".to_string()
        ]));
        assert!(
            !set.iter()
                .any(|p| p.contains(&"f:name".to_string()) && p.len() == 2)
        );
        let v1 = to_fields_v1(&set);
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_removes_dropped_fields_and_detects_conflicts() {
        let cfg1 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let created = {
            let mut o = cfg1.clone();
            o["metadata"]["managedFields"] =
                initial_managed_fields(&cfg1, "m1", "", true, "v1", "t");
            o
        };
        let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let out = server_side_apply(&created, &cfg2, "m1", "", false, true, "v1", "t")
            .ok()
            .unwrap();
        assert_eq!(out.object["data"], json!({"a": "1"}));
        let cfg3 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "9"}});
        let conflicts = server_side_apply(&out.object, &cfg3, "m2", "", false, true, "v1", "t")
            .err()
            .unwrap();
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "m1".into(),
                field: ".data.a".into()
            }]
        );
        let forced = server_side_apply(&out.object, &cfg3, "m2", "", true, true, "v1", "t")
            .ok()
            .unwrap();
        assert_eq!(forced.object["data"], json!({"a": "9"}));
        // m1 no longer owns .data.a; same value by a third manager is no conflict.
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "9"}});
        assert!(server_side_apply(&forced.object, &same, "m3", "", false, true, "v1", "t").is_ok());
        // Re-applying the same configuration later changes nothing, not even timestamps.
        let again = server_side_apply(&forced.object, &cfg3, "m2", "", true, true, "v1", "later")
            .ok()
            .unwrap();
        assert_eq!(again.object, forced.object);
    }
}
