//! What the e2e tests and the namespace storm benchmark share: the security-setup policy and the
//! UpdateRequests the admission controller writes for its triggers.
use serde_json::{Value, json};

/// The UpdateRequest the admission controller writes for a CREATE of `trigger`.
pub fn admission_update_request(ns: &str, policy: &str, rules: &[&str], trigger: &Value) -> Value {
    let spec = |field: &str| trigger["metadata"][field].clone();
    let trigger_ref = json!({
        "apiVersion": trigger["apiVersion"], "kind": trigger["kind"],
        "namespace": spec("namespace"), "name": spec("name"), "uid": spec("uid")
    });
    json!({
        "apiVersion": "kyverno.io/v2", "kind": "UpdateRequest",
        "metadata": {"generateName": "ur-", "namespace": ns,
                     "labels": {"generate.kyverno.io/policy-name": policy}},
        "spec": {
            "requestType": "generate",
            "policy": policy,
            "rule": rules[0],
            "ruleContext": rules.iter().map(|rule| json!({
                "rule": rule, "deleteDownstream": false, "synchronize": true, "trigger": trigger_ref
            })).collect::<Vec<_>>(),
            "resource": trigger_ref,
            "synchronize": true,
            "deleteDownstream": false,
            "context": {
                "userInfo": {"userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]}},
                "admissionRequestInfo": {
                    "operation": "CREATE",
                    "admissionRequest": {
                        "uid": "00000000-0000-0000-0000-000000000001",
                        "kind": {"group": "", "version": "v1", "kind": trigger["kind"]},
                        "resource": {"group": "", "version": "v1", "resource": "namespaces"},
                        "name": spec("name"),
                        "operation": "CREATE",
                        "userInfo": {"username": "kubernetes-admin"},
                        "object": trigger
                    }
                }
            }
        }
    })
}

/// The security setup of every new namespace: a default-deny NetworkPolicy, a ResourceQuota and
/// the registry Secret cloned from `source_ns`, for the namespaces labelled `e2e-run: <run>`.
pub fn setup_policy(name: &str, run: &str, source_ns: &str) -> Value {
    let matching = json!({"any": [{"resources": {"kinds": ["Namespace"], "selector": {"matchLabels": {"e2e-run": run}}}}]});
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"rules": [
            {"name": "default-deny", "match": matching, "generate": {
                "synchronize": true,
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "name": "default-deny",
                "namespace": "{{request.object.metadata.name}}",
                "data": {"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}}},
            {"name": "quota", "match": matching, "generate": {
                "apiVersion": "v1", "kind": "ResourceQuota", "name": "default-quota",
                "namespace": "{{request.object.metadata.name}}",
                "data": {"spec": {"hard": {"pods": "10"}}}}},
            {"name": "registry-secret", "match": matching, "generate": {
                "synchronize": true,
                "apiVersion": "v1", "kind": "Secret", "name": "regcred",
                "namespace": "{{request.object.metadata.name}}",
                "clone": {"namespace": source_ns, "name": "regcred"}}}
        ]}
    })
}

/// The rules of [`setup_policy`].
pub const SETUP_RULES: [&str; 3] = ["default-deny", "quota", "registry-secret"];
