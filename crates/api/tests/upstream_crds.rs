//! Compares the generated CRDs with upstream Kyverno's (`shared/reference/kyverno-crds`): names,
//! scope, versions, printer columns, subresources and every property path of the schema.
mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Upstream CRD groups that are not modelled yet, and so not compared (none at present).
const NOT_YET_MODELLED_GROUPS: &[&str] = &[];

/// Property paths of a schema: `.a.b`, `[]` for array items, `{}` for map values. A path under a
/// node that preserves unknown fields is reported as that node, marked with `*`.
fn property_paths(schema: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && schema.get("properties").is_none()
    {
        out.insert(format!("{prefix}*"));
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            let path = format!("{prefix}.{name}");
            out.insert(path.clone());
            property_paths(sub, &path, out);
        }
    }
    if let Some(items) = schema.get("items") {
        property_paths(items, &format!("{prefix}[]"), out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        property_paths(values, &format!("{prefix}{{}}"), out);
    }
}

/// Whether `path` is in `ours`, directly or below a free-form (preserve-unknown-fields) node.
fn covered(path: &str, ours: &BTreeSet<String>) -> bool {
    if ours.contains(path) {
        return true;
    }
    let mut end = path.len();
    while let Some(cut) = path[..end].rfind(['.', '[', '{']) {
        if ours.contains(&format!("{}*", &path[..cut])) {
            return true;
        }
        end = cut;
    }
    false
}

fn versions(crd: &Value) -> BTreeMap<String, Value> {
    crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| (v["name"].as_str().unwrap_or_default().to_owned(), v.clone()))
        .collect()
}

/// Differences between an upstream CRD and ours, one line each.
fn differences(upstream: &Value, ours: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut same = |what: &str, a: &Value, b: &Value| {
        if a != b {
            diffs.push(format!("{what}: upstream {a}, ours {b}"));
        }
    };
    same("group", &upstream["spec"]["group"], &ours["spec"]["group"]);
    same("scope", &upstream["spec"]["scope"], &ours["spec"]["scope"]);
    for field in [
        "kind",
        "listKind",
        "plural",
        "singular",
        "shortNames",
        "categories",
    ] {
        let theirs = &upstream["spec"]["names"][field];
        let mine = &ours["spec"]["names"][field];
        // kube fills listKind only when asked; the API server derives `<Kind>List` itself.
        if field == "listKind" && mine.is_null() {
            continue;
        }
        same(&format!("names.{field}"), theirs, mine);
    }
    let (upstream_versions, our_versions) = (versions(upstream), versions(ours));
    let names = |v: &BTreeMap<String, Value>| v.keys().cloned().collect::<Vec<_>>();
    if names(&upstream_versions) != names(&our_versions) {
        diffs.push(format!(
            "versions: upstream {:?}, ours {:?}",
            names(&upstream_versions),
            names(&our_versions)
        ));
    }
    for (name, theirs) in &upstream_versions {
        let Some(mine) = our_versions.get(name) else {
            continue;
        };
        for field in ["served", "storage"] {
            let flag = |v: &Value| v[field].as_bool().unwrap_or(false);
            if flag(theirs) != flag(mine) {
                diffs.push(format!(
                    "{name}.{field}: upstream {}, ours {}",
                    flag(theirs),
                    flag(mine)
                ));
            }
        }
        if !theirs["served"].as_bool().unwrap_or(false) {
            // A version that is not served is never read or written: only its presence matters.
            continue;
        }
        // An absent `subresources` and an empty one mean the same: none.
        let subresources = |v: &Value| {
            v["subresources"]
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        if subresources(theirs) != subresources(mine) {
            diffs.push(format!(
                "{name}.subresources: upstream {:?}, ours {:?}",
                subresources(theirs),
                subresources(mine)
            ));
        }
        let columns = |v: &Value| -> Vec<String> {
            v["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{} ({}, {}) p{}",
                        c["name"].as_str().unwrap_or_default(),
                        c["type"].as_str().unwrap_or_default(),
                        c["jsonPath"].as_str().unwrap_or_default(),
                        c["priority"].as_i64().unwrap_or(0)
                    )
                })
                .collect()
        };
        if columns(theirs) != columns(mine) {
            diffs.push(format!(
                "{name}.additionalPrinterColumns:\n    upstream {:?}\n    ours     {:?}",
                columns(theirs),
                columns(mine)
            ));
        }
        let mut upstream_paths = BTreeSet::new();
        property_paths(
            &theirs["schema"]["openAPIV3Schema"],
            "",
            &mut upstream_paths,
        );
        let mut our_paths = BTreeSet::new();
        property_paths(&mine["schema"]["openAPIV3Schema"], "", &mut our_paths);
        for path in upstream_paths.iter().filter(|p| !p.ends_with('*')) {
            if !covered(path, &our_paths) {
                diffs.push(format!("{name}: schema lacks {path}"));
            }
        }
    }
    diffs
}

#[test]
fn generated_crds_match_upstream() {
    let reference = common::shared_dir().join("reference/kyverno-crds");
    let ours: BTreeMap<String, Value> = kyverno_api::crds::all()
        .into_iter()
        .map(|crd| {
            let value = serde_json::to_value(&crd).expect("CRD serializes");
            (crd.metadata.name.unwrap_or_default(), value)
        })
        .collect();
    let mut report = Vec::new();
    let mut compared = 0;
    for file in common::yaml_files(&reference) {
        for upstream in common::read_yaml_documents(&file) {
            let name = upstream["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let group = upstream["spec"]["group"].as_str().unwrap_or_default();
            if NOT_YET_MODELLED_GROUPS.contains(&group) {
                continue;
            }
            compared += 1;
            match ours.get(&name) {
                None => report.push(format!("{name}: no such CRD generated")),
                Some(mine) => report.extend(
                    differences(&upstream, mine)
                        .into_iter()
                        .map(|d| format!("{name}: {d}")),
                ),
            }
        }
    }
    assert!(
        compared >= 22,
        "expected the kyverno.io, policies.kyverno.io, reports and policy report CRDs, found {compared}"
    );
    assert!(
        report.is_empty(),
        "{} differences:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn coverage_check_detects_a_missing_path() {
    let mut ours = BTreeSet::new();
    property_paths(
        &serde_json::json!({"properties": {"spec": {"properties": {
            "free": {"x-kubernetes-preserve-unknown-fields": true},
            "list": {"items": {"properties": {"a": {"type": "string"}}}}
        }}}}),
        "",
        &mut ours,
    );
    assert!(covered(".spec.list[].a", &ours));
    assert!(covered(".spec.free.any.depth[].x", &ours));
    assert!(!covered(".spec.list[].b", &ours));
    assert!(!covered(".spec.other", &ours));
}
