//! Every Kyverno resource in the conformance corpus deserializes into our types and serializes
//! back without losing or changing a field.
//!
//! The only normalization is Kubernetes' own: a field that is `null`, an empty list or an empty
//! map is the same as an absent field (upstream's Go types omit them too).
mod common;

use kyverno_api::load::{Document, LoadError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Removes nulls, empty lists and empty maps, recursively.
fn without_empty(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_empty(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_empty).collect()),
        other => other,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// The first place where two JSON values differ, as a path and both sides.
fn first_difference(path: &str, before: &Value, after: &Value) -> Option<String> {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let sub = format!("{path}.{key}");
                match b.get(key) {
                    None => return Some(format!("{sub}: lost (was {value})")),
                    Some(other) => {
                        if let Some(d) = first_difference(&sub, value, other) {
                            return Some(d);
                        }
                    }
                }
            }
            b.keys()
                .find(|key| !a.contains_key(*key))
                .map(|key| format!("{path}.{key}: added ({})", b[key]))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y)),
        _ if before == after => None,
        _ => Some(format!("{path}: {before} became {after}")),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(
    doc: &Document,
) -> Result<Option<String>, LoadError> {
    let typed: T = doc.decode()?;
    let mut after = serde_json::to_value(&typed).expect("typed resources serialize");
    let group = |v: &Value| {
        v["apiVersion"]
            .as_str()
            .and_then(|a| a.split_once('/'))
            .map(|(g, _)| g.to_owned())
    };
    if group(&after) == group(&doc.value) {
        after["apiVersion"] = doc.value["apiVersion"].clone();
    }
    let before = without_empty(doc.value.clone());
    Ok(first_difference("", &before, &without_empty(after)))
}

/// Round-trips the document if it is a kind we model, returning its kind name and the outcome.
fn round_trip_known(doc: &Document) -> Option<(&'static str, Result<Option<String>, LoadError>)> {
    use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
    use kyverno_api::kyverno::v2::cleanup_policy::{CleanupPolicy, ClusterCleanupPolicy};
    use kyverno_api::kyverno::v2::policy_exception::PolicyException;
    use kyverno_api::kyverno::v2::update_request::UpdateRequest;
    use kyverno_api::kyverno::v2beta1::global_context_entry::GlobalContextEntry;
    use kyverno_api::policies::deleting::{DeletingPolicy, NamespacedDeletingPolicy};
    use kyverno_api::policies::exception::PolicyException as CelPolicyException;
    use kyverno_api::policies::generating::{GeneratingPolicy, NamespacedGeneratingPolicy};
    use kyverno_api::policies::image_validating::{
        ImageValidatingPolicy, NamespacedImageValidatingPolicy,
    };
    use kyverno_api::policies::mutating::{MutatingPolicy, NamespacedMutatingPolicy};
    use kyverno_api::policies::validating::{NamespacedValidatingPolicy, ValidatingPolicy};
    use kyverno_api::policy_report::v1alpha2::{ClusterPolicyReport, PolicyReport};
    use kyverno_api::reports::v1::{ClusterEphemeralReport, EphemeralReport};
    let group = doc.api_version().split('/').next().unwrap_or_default();
    let outcome = match (group, doc.kind()) {
        ("kyverno.io", "ClusterPolicy") => ("ClusterPolicy", round_trip::<ClusterPolicy>(doc)),
        ("kyverno.io", "Policy") => ("Policy", round_trip::<Policy>(doc)),
        ("kyverno.io", "PolicyException") => {
            ("PolicyException", round_trip::<PolicyException>(doc))
        }
        ("kyverno.io", "UpdateRequest") => ("UpdateRequest", round_trip::<UpdateRequest>(doc)),
        ("kyverno.io", "CleanupPolicy") => ("CleanupPolicy", round_trip::<CleanupPolicy>(doc)),
        ("kyverno.io", "ClusterCleanupPolicy") => (
            "ClusterCleanupPolicy",
            round_trip::<ClusterCleanupPolicy>(doc),
        ),
        ("kyverno.io", "GlobalContextEntry") => {
            ("GlobalContextEntry", round_trip::<GlobalContextEntry>(doc))
        }
        ("wgpolicyk8s.io", "PolicyReport") => ("PolicyReport", round_trip::<PolicyReport>(doc)),
        ("wgpolicyk8s.io", "ClusterPolicyReport") => (
            "ClusterPolicyReport",
            round_trip::<ClusterPolicyReport>(doc),
        ),
        ("reports.kyverno.io", "EphemeralReport") => {
            ("EphemeralReport", round_trip::<EphemeralReport>(doc))
        }
        ("reports.kyverno.io", "ClusterEphemeralReport") => (
            "ClusterEphemeralReport",
            round_trip::<ClusterEphemeralReport>(doc),
        ),
        ("policies.kyverno.io", "ValidatingPolicy") => {
            ("ValidatingPolicy", round_trip::<ValidatingPolicy>(doc))
        }
        ("policies.kyverno.io", "NamespacedValidatingPolicy") => (
            "NamespacedValidatingPolicy",
            round_trip::<NamespacedValidatingPolicy>(doc),
        ),
        ("policies.kyverno.io", "MutatingPolicy") => {
            ("MutatingPolicy", round_trip::<MutatingPolicy>(doc))
        }
        ("policies.kyverno.io", "NamespacedMutatingPolicy") => (
            "NamespacedMutatingPolicy",
            round_trip::<NamespacedMutatingPolicy>(doc),
        ),
        ("policies.kyverno.io", "GeneratingPolicy") => {
            ("GeneratingPolicy", round_trip::<GeneratingPolicy>(doc))
        }
        ("policies.kyverno.io", "NamespacedGeneratingPolicy") => (
            "NamespacedGeneratingPolicy",
            round_trip::<NamespacedGeneratingPolicy>(doc),
        ),
        ("policies.kyverno.io", "DeletingPolicy") => {
            ("DeletingPolicy", round_trip::<DeletingPolicy>(doc))
        }
        ("policies.kyverno.io", "NamespacedDeletingPolicy") => (
            "NamespacedDeletingPolicy",
            round_trip::<NamespacedDeletingPolicy>(doc),
        ),
        ("policies.kyverno.io", "ImageValidatingPolicy") => (
            "ImageValidatingPolicy",
            round_trip::<ImageValidatingPolicy>(doc),
        ),
        ("policies.kyverno.io", "NamespacedImageValidatingPolicy") => (
            "NamespacedImageValidatingPolicy",
            round_trip::<NamespacedImageValidatingPolicy>(doc),
        ),
        ("policies.kyverno.io", "PolicyException") => (
            "policies.kyverno.io/PolicyException",
            round_trip::<CelPolicyException>(doc),
        ),
        _ => return None,
    };
    Some(outcome)
}

/// Chainsaw's status assertions (`policy-ready.yaml`) are partial policies without a spec;
/// upstream's schema requires `spec` for these kinds, and so do we.
fn is_spec_less_policy(kind: &str, doc: &Document) -> bool {
    matches!(
        kind,
        "ClusterPolicy"
            | "Policy"
            | "PolicyException"
            | "ValidatingPolicy"
            | "NamespacedValidatingPolicy"
            | "MutatingPolicy"
            | "NamespacedMutatingPolicy"
            | "GeneratingPolicy"
            | "NamespacedGeneratingPolicy"
            | "DeletingPolicy"
            | "NamespacedDeletingPolicy"
            | "ImageValidatingPolicy"
            | "NamespacedImageValidatingPolicy"
            | "policies.kyverno.io/PolicyException"
    ) && doc.value.get("spec").is_none()
}

#[test]
fn every_corpus_resource_round_trips() {
    let corpus = common::shared_dir().join("conformance");
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for file in common::yaml_files(&corpus) {
        let text = std::fs::read_to_string(&file).expect("readable corpus file");
        let name = file
            .strip_prefix(&corpus)
            .unwrap_or(&file)
            .display()
            .to_string();
        // Some corpus files are not YAML streams at all (templates, fixtures of other tools).
        let Ok(docs) = kyverno_api::load::documents(&name, &text) else {
            continue;
        };
        for doc in &docs {
            let Some((kind, outcome)) = round_trip_known(doc) else {
                continue;
            };
            if is_spec_less_policy(kind, doc) {
                *counts.entry("without spec, rejected").or_default() += 1;
                match outcome {
                    Err(_) => {}
                    other => failures.push(format!(
                        "{name}: document {}: accepted without spec: {other:?}",
                        doc.position
                    )),
                }
                continue;
            }
            *counts.entry(kind).or_default() += 1;
            match outcome {
                Ok(None) => {}
                Ok(Some(difference)) => {
                    failures.push(format!("{name}: document {}: {difference}", doc.position))
                }
                Err(error) => failures.push(error.to_string()),
            }
        }
    }
    eprintln!("round-tripped: {counts:?}");
    for (kind, at_least) in [
        ("ClusterPolicy", 350),
        ("PolicyException", 4),
        ("PolicyReport", 1),
        ("ValidatingPolicy", 100),
        ("MutatingPolicy", 30),
        ("GeneratingPolicy", 10),
        ("DeletingPolicy", 5),
        ("ImageValidatingPolicy", 1),
        ("policies.kyverno.io/PolicyException", 5),
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) >= at_least,
            "the corpus holds at least {at_least} {kind} documents; found {counts:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} documents do not round-trip:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn first_difference_reports_lost_and_changed_fields() {
    let before = serde_json::json!({"a": {"b": [1, {"c": true}]}, "d": "x"});
    let lost = serde_json::json!({"a": {"b": [1, {}]}, "d": "x"});
    let changed = serde_json::json!({"a": {"b": [1, {"c": true}]}, "d": "y"});
    assert_eq!(
        first_difference("", &before, &lost).as_deref(),
        Some(".a.b[1].c: lost (was true)")
    );
    assert_eq!(
        first_difference("", &before, &changed).as_deref(),
        Some(".d: \"x\" became \"y\"")
    );
    assert_eq!(first_difference("", &before, &before), None);
    assert_eq!(
        without_empty(serde_json::json!({"a": [], "b": {}, "c": null, "d": 0})),
        serde_json::json!({"d": 0})
    );
}
