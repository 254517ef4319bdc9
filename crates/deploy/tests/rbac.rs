//! The chart's RBAC is needed and sufficient: every API call each controller makes is declared
//! below (kind, group, resource, verbs, scope, why), and the test checks, on the rendered chart,
//! that (a) every rule granted to a controller's ServiceAccount is a declared call, (b) every
//! declared call is granted, and (c) every kind the controller's own sources name in
//! `Api::<K>`, `Api<K>` or `ApiResource::erase::<K>` is declared. Calls made through shared
//! crates (runtime's leader election and watches, the admission controller's certificates reused
//! by the cleanup controller) are declared by hand.
//!
//! Controllers that work on arbitrary kinds (background scan, generate, cleanup) hold a wildcard
//! read (`*/*: get, list, watch`) as upstream's aggregated ClusterRoles do; their writes to
//! arbitrary kinds are "open" calls, granted per kind through aggregated ClusterRoles
//! (`rbac.clusterRole.extraResources`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{NON_DEFAULT_VALUES, helm, render};
use serde_json::Value;

/// Where a call is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// Cluster-wide or in any namespace.
    Cluster,
    /// Only in Kyverno's namespace.
    Kyverno,
}

/// One declared API call.
#[derive(Debug)]
struct Call {
    /// The Rust type name the sources use (`*` for arbitrary kinds).
    kind: &'static str,
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    scope: Scope,
    /// Granted per kind by the user (arbitrary kinds written by generate or cleanup rules): any
    /// rule with these verbs is accepted, and with the non-default values one must exist.
    open: bool,
    /// Why the controller makes the call.
    why: &'static str,
}

const fn call(
    kind: &'static str,
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    scope: Scope,
    why: &'static str,
) -> Call {
    Call {
        kind,
        group,
        resource,
        verbs,
        scope,
        open: false,
        why,
    }
}

const fn open(verbs: &'static [&'static str], why: &'static str) -> Call {
    Call {
        kind: "*",
        group: "*",
        resource: "*",
        verbs,
        scope: Scope::Cluster,
        open: true,
        why,
    }
}

use Scope::{Cluster, Kyverno};

const WATCH: &[&str] = &["list", "watch"];
const READ_ANY: Call = call(
    "*",
    "*",
    "*",
    &["get", "list", "watch"],
    Cluster,
    "resources of any kind that policies select, context entries, report owners",
);
const LEASE: Call = call(
    "Lease",
    "coordination.k8s.io",
    "leases",
    &["get", "create", "patch"],
    Kyverno,
    "leader election (kube-leader-election)",
);
const CERTIFICATES: Call = call(
    "Secret",
    "",
    "secrets",
    &["get", "list", "watch", "create", "patch"],
    Kyverno,
    "CA and serving certificate Secrets: server-side apply (creates when absent), watched by name",
);

/// The policy cache's watches (runtime::watch, policy_cache, cel_policies).
const POLICY_WATCHES: &[Call] = &[
    call(
        "ClusterPolicy",
        "kyverno.io",
        "clusterpolicies",
        WATCH,
        Cluster,
        "policy cache",
    ),
    call(
        "Policy",
        "kyverno.io",
        "policies",
        WATCH,
        Cluster,
        "policy cache",
    ),
    call(
        "PolicyException",
        "kyverno.io",
        "policyexceptions",
        WATCH,
        Cluster,
        "policy cache",
    ),
    call(
        "PolicyException",
        "policies.kyverno.io",
        "policyexceptions",
        WATCH,
        Cluster,
        "CEL exceptions",
    ),
    call(
        "ValidatingPolicy",
        "policies.kyverno.io",
        "validatingpolicies",
        WATCH,
        Cluster,
        "CEL policies",
    ),
    call(
        "NamespacedValidatingPolicy",
        "policies.kyverno.io",
        "namespacedvalidatingpolicies",
        WATCH,
        Cluster,
        "CEL policies",
    ),
    call(
        "MutatingPolicy",
        "policies.kyverno.io",
        "mutatingpolicies",
        WATCH,
        Cluster,
        "CEL policies",
    ),
    call(
        "NamespacedMutatingPolicy",
        "policies.kyverno.io",
        "namespacedmutatingpolicies",
        WATCH,
        Cluster,
        "CEL policies",
    ),
    call(
        "ImageValidatingPolicy",
        "policies.kyverno.io",
        "imagevalidatingpolicies",
        WATCH,
        Cluster,
        "CEL policies",
    ),
    call(
        "NamespacedImageValidatingPolicy",
        "policies.kyverno.io",
        "namespacedimagevalidatingpolicies",
        WATCH,
        Cluster,
        "CEL policies",
    ),
    call(
        "Namespace",
        "",
        "namespaces",
        WATCH,
        Cluster,
        "namespace labels",
    ),
    call(
        "ConfigMap",
        "",
        "configmaps",
        WATCH,
        Kyverno,
        "the kyverno ConfigMap",
    ),
    call(
        "RoleBinding",
        "rbac.authorization.k8s.io",
        "rolebindings",
        WATCH,
        Cluster,
        "roles of requesters",
    ),
    call(
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        WATCH,
        Cluster,
        "cluster roles of requesters",
    ),
];

const ADMISSION: &[Call] = &[
    call(
        "ValidatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        &["create", "patch"],
        Cluster,
        "resource, policy and exception webhooks (server-side apply)",
    ),
    call(
        "MutatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        &["create", "patch"],
        Cluster,
        "resource and policy webhooks (server-side apply)",
    ),
    call(
        "ValidatingPolicy",
        "policies.kyverno.io",
        "validatingpolicies/status",
        &["patch"],
        Cluster,
        "CEL policy readiness",
    ),
    call(
        "NamespacedValidatingPolicy",
        "policies.kyverno.io",
        "namespacedvalidatingpolicies/status",
        &["patch"],
        Cluster,
        "CEL policy readiness",
    ),
    call(
        "MutatingPolicy",
        "policies.kyverno.io",
        "mutatingpolicies/status",
        &["patch"],
        Cluster,
        "CEL policy readiness",
    ),
    call(
        "NamespacedMutatingPolicy",
        "policies.kyverno.io",
        "namespacedmutatingpolicies/status",
        &["patch"],
        Cluster,
        "CEL policy readiness",
    ),
    call(
        "ImageValidatingPolicy",
        "policies.kyverno.io",
        "imagevalidatingpolicies/status",
        &["patch"],
        Cluster,
        "CEL policy readiness",
    ),
    call(
        "NamespacedImageValidatingPolicy",
        "policies.kyverno.io",
        "namespacedimagevalidatingpolicies/status",
        &["patch"],
        Cluster,
        "CEL policy readiness",
    ),
    call(
        "GeneratingPolicy",
        "policies.kyverno.io",
        "generatingpolicies",
        WATCH,
        Cluster,
        "GeneratingPolicies whose triggers queue cel-generate UpdateRequests",
    ),
    call(
        "NamespacedGeneratingPolicy",
        "policies.kyverno.io",
        "namespacedgeneratingpolicies",
        WATCH,
        Cluster,
        "GeneratingPolicies whose triggers queue cel-generate UpdateRequests",
    ),
    call(
        "GeneratingPolicy",
        "policies.kyverno.io",
        "generatingpolicies/status",
        &["patch"],
        Cluster,
        "CEL policy readiness",
    ),
    call(
        "NamespacedGeneratingPolicy",
        "policies.kyverno.io",
        "namespacedgeneratingpolicies/status",
        &["patch"],
        Cluster,
        "CEL policy readiness",
    ),
    call(
        "EphemeralReport",
        "reports.kyverno.io",
        "ephemeralreports",
        &["create"],
        Cluster,
        "admission audit results",
    ),
    call(
        "ClusterEphemeralReport",
        "reports.kyverno.io",
        "clusterephemeralreports",
        &["create"],
        Cluster,
        "admission audit results",
    ),
    call(
        "Event",
        "",
        "events",
        &["create"],
        Cluster,
        "policy violation events",
    ),
    call(
        "UpdateRequest",
        "kyverno.io",
        "updaterequests",
        &["create"],
        Kyverno,
        "generate and mutate-existing work",
    ),
    call(
        "UpdateRequest",
        "kyverno.io",
        "updaterequests/status",
        &["patch"],
        Kyverno,
        "marks the request Pending",
    ),
    CERTIFICATES,
    LEASE,
];

const REPORTS: &[Call] = &[
    READ_ANY,
    call(
        "PolicyReport",
        "wgpolicyk8s.io",
        "policyreports",
        &["list", "create", "patch", "delete"],
        Cluster,
        "aggregated reports (server-side apply)",
    ),
    call(
        "ClusterPolicyReport",
        "wgpolicyk8s.io",
        "clusterpolicyreports",
        &["list", "create", "patch", "delete"],
        Cluster,
        "aggregated reports (server-side apply)",
    ),
    call(
        "EphemeralReport",
        "reports.kyverno.io",
        "ephemeralreports",
        &["get", "list", "watch", "create", "update", "delete"],
        Cluster,
        "scan results written, aggregated and absorbed",
    ),
    call(
        "ClusterEphemeralReport",
        "reports.kyverno.io",
        "clusterephemeralreports",
        &["get", "list", "watch", "create", "update", "delete"],
        Cluster,
        "scan results written, aggregated and absorbed",
    ),
    LEASE,
];

const REPORT_CLEANUP: &[Call] = &[
    call(
        "EphemeralReport",
        "reports.kyverno.io",
        "ephemeralreports",
        &["list", "delete"],
        Cluster,
        "stale reports",
    ),
    call(
        "ClusterEphemeralReport",
        "reports.kyverno.io",
        "clusterephemeralreports",
        &["list", "delete"],
        Cluster,
        "stale reports",
    ),
];

const BACKGROUND: &[Call] = &[
    READ_ANY,
    open(
        &["create", "update", "patch", "delete"],
        "generate targets (downstream resources)",
    ),
    call(
        "UpdateRequest",
        "kyverno.io",
        "updaterequests",
        &["list", "watch", "create", "delete"],
        Kyverno,
        "the work queue",
    ),
    call(
        "UpdateRequest",
        "kyverno.io",
        "updaterequests/status",
        &["patch"],
        Kyverno,
        "work state",
    ),
    LEASE,
];

const CLEANUP: &[Call] = &[
    READ_ANY,
    open(&["delete"], "cleanup policy and TTL targets"),
    call(
        "CleanupPolicy",
        "kyverno.io",
        "cleanuppolicies",
        WATCH,
        Cluster,
        "schedules",
    ),
    call(
        "ClusterCleanupPolicy",
        "kyverno.io",
        "clustercleanuppolicies",
        WATCH,
        Cluster,
        "schedules",
    ),
    call(
        "CleanupPolicy",
        "kyverno.io",
        "cleanuppolicies/status",
        &["patch"],
        Cluster,
        "lastExecutionTime",
    ),
    call(
        "ClusterCleanupPolicy",
        "kyverno.io",
        "clustercleanuppolicies/status",
        &["patch"],
        Cluster,
        "lastExecutionTime",
    ),
    call(
        "DeletingPolicy",
        "policies.kyverno.io",
        "deletingpolicies",
        WATCH,
        Cluster,
        "schedules",
    ),
    call(
        "NamespacedDeletingPolicy",
        "policies.kyverno.io",
        "namespaceddeletingpolicies",
        WATCH,
        Cluster,
        "schedules",
    ),
    call(
        "DeletingPolicy",
        "policies.kyverno.io",
        "deletingpolicies/status",
        &["patch"],
        Cluster,
        "lastExecutionTime",
    ),
    call(
        "NamespacedDeletingPolicy",
        "policies.kyverno.io",
        "namespaceddeletingpolicies/status",
        &["patch"],
        Cluster,
        "lastExecutionTime",
    ),
    call(
        "PolicyException",
        "policies.kyverno.io",
        "policyexceptions",
        &["list"],
        Cluster,
        "exceptions of deleting policies",
    ),
    call(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["list"],
        Cluster,
        "served kinds",
    ),
    call(
        "Namespace",
        "",
        "namespaces",
        &["list"],
        Cluster,
        "namespace labels",
    ),
    call(
        "ValidatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        &["create", "patch"],
        Cluster,
        "the cleanup policies' webhook (server-side apply)",
    ),
    call(
        "Event",
        "",
        "events",
        &["create"],
        Cluster,
        "deletion events",
    ),
    CERTIFICATES,
    LEASE,
];

const WEBHOOKS_CLEANUP: &[Call] = &[
    call(
        "ValidatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        &["get", "delete"],
        Cluster,
        "kubectl delete in the pre-delete hook",
    ),
    call(
        "MutatingWebhookConfiguration",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        &["get", "delete"],
        Cluster,
        "kubectl delete in the pre-delete hook",
    ),
];

/// A ServiceAccount of the chart and what the code running under it calls.
struct Controller {
    service_account: &'static str,
    /// Source folders or files (relative to the workspace) scanned for the kinds they name.
    sources: &'static [&'static str],
    calls: &'static [&'static [Call]],
    /// ClusterRoles from outside the chart bound to the account, with the reason.
    external_roles: &'static [&'static str],
}

const CONTROLLERS: &[Controller] = &[
    Controller {
        service_account: "kyverno-admission-controller",
        sources: &["crates/admission-controller/src"],
        calls: &[ADMISSION, POLICY_WATCHES],
        // Context entries (apiCall, configMap) read any object: the built-in `view` role.
        external_roles: &["view"],
    },
    Controller {
        service_account: "kyverno-reports-controller",
        sources: &[
            "crates/reports-controller/src",
            "crates/background-scan-controller/src",
        ],
        calls: &[REPORTS, POLICY_WATCHES],
        external_roles: &[],
    },
    Controller {
        service_account: "kyverno-report-cleanup",
        sources: &["crates/reports-controller/src/cleanup.rs"],
        calls: &[REPORT_CLEANUP],
        external_roles: &[],
    },
    Controller {
        service_account: "kyverno-background-controller",
        sources: &["crates/generate-controller/src"],
        calls: &[BACKGROUND, POLICY_WATCHES],
        external_roles: &[],
    },
    Controller {
        service_account: "kyverno-cleanup-controller",
        sources: &["crates/cleanup-controller/src"],
        calls: &[CLEANUP],
        external_roles: &[],
    },
    Controller {
        service_account: "kyverno-webhooks-cleanup",
        sources: &[],
        calls: &[WEBHOOKS_CLEANUP],
        external_roles: &[],
    },
];

/// One granted permission: group, resource, verb and where.
type Grant = (String, String, String, Scope);

/// What the rendered chart grants each ServiceAccount, and the external roles bound to it.
fn grants(objects: &[Value]) -> BTreeMap<String, (BTreeSet<Grant>, BTreeSet<String>)> {
    let cluster_roles: BTreeMap<&str, &Value> = common::of_kind(objects, "ClusterRole")
        .into_iter()
        .map(|role| (role["metadata"]["name"].as_str().unwrap(), role))
        .collect();
    let roles: BTreeMap<&str, &Value> = common::of_kind(objects, "Role")
        .into_iter()
        .map(|role| (role["metadata"]["name"].as_str().unwrap(), role))
        .collect();
    let mut granted: BTreeMap<String, (BTreeSet<Grant>, BTreeSet<String>)> = BTreeMap::new();
    for binding in objects
        .iter()
        .filter(|object| object["kind"] == "ClusterRoleBinding" || object["kind"] == "RoleBinding")
    {
        let scope = if binding["kind"] == "RoleBinding" {
            Kyverno
        } else {
            Cluster
        };
        let role_name = binding["roleRef"]["name"].as_str().unwrap();
        let rules: Vec<&Value> = match binding["roleRef"]["kind"].as_str() {
            Some("Role") => rules_of(
                roles.get(role_name).expect("bound Role exists"),
                &cluster_roles,
            ),
            _ => match cluster_roles.get(role_name) {
                Some(role) => rules_of(role, &cluster_roles),
                None => {
                    for subject in binding["subjects"].as_array().unwrap() {
                        let account = subject["name"].as_str().unwrap().to_owned();
                        granted
                            .entry(account)
                            .or_default()
                            .1
                            .insert(role_name.to_owned());
                    }
                    continue;
                }
            },
        };
        for subject in binding["subjects"].as_array().unwrap() {
            assert_eq!(subject["kind"], "ServiceAccount", "{binding}");
            let entry = granted
                .entry(subject["name"].as_str().unwrap().to_owned())
                .or_default();
            for rule in &rules {
                for group in strings(&rule["apiGroups"]) {
                    for resource in strings(&rule["resources"]) {
                        for verb in strings(&rule["verbs"]) {
                            entry
                                .0
                                .insert((group.clone(), resource.clone(), verb, scope));
                        }
                    }
                }
            }
        }
    }
    granted
}

/// A role's rules, with those of the ClusterRoles its aggregation rule selects.
fn rules_of<'a>(role: &'a Value, cluster_roles: &BTreeMap<&str, &'a Value>) -> Vec<&'a Value> {
    let mut rules: Vec<&Value> = role["rules"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    if let Some(selectors) = role["aggregationRule"]["clusterRoleSelectors"].as_array() {
        for selector in selectors {
            let wanted = selector["matchLabels"]
                .as_object()
                .expect("matchLabels selectors");
            for aggregated in cluster_roles.values() {
                let labels = &aggregated["metadata"]["labels"];
                if wanted.iter().all(|(key, value)| &labels[key] == value) {
                    rules.extend(aggregated["rules"].as_array().into_iter().flatten());
                }
            }
        }
    }
    rules
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn declared(controller: &Controller) -> impl Iterator<Item = &Call> {
    controller.calls.iter().flat_map(|calls| calls.iter())
}

/// (a) every grant is a declared call.
fn is_declared(controller: &Controller, (group, resource, verb, scope): &Grant) -> bool {
    declared(controller).any(|call| {
        call.verbs.contains(&verb.as_str())
            && (call.scope == *scope || *scope == Kyverno)
            && if call.open {
                true
            } else {
                call.group == group && call.resource == resource
            }
    })
}

/// (b) a declared call is granted for `verb`.
fn is_granted(call: &Call, verb: &str, grants: &BTreeSet<Grant>) -> bool {
    grants.iter().any(|(group, resource, granted_verb, scope)| {
        granted_verb == verb
            && (*scope == Cluster || call.scope == Kyverno)
            && (call.open
                || ((group == "*" || group == call.group)
                    && (resource == "*" || resource == call.resource)))
    })
}

fn check(objects: &[Value], open_calls_granted: bool) {
    let granted = grants(objects);
    let accounts: BTreeSet<&str> = common::of_kind(objects, "ServiceAccount")
        .iter()
        .filter_map(|account| account["metadata"]["name"].as_str())
        .collect();
    let mut problems = Vec::new();
    for controller in CONTROLLERS {
        if !accounts.contains(controller.service_account) {
            continue;
        }
        let (grants, external) = granted
            .get(controller.service_account)
            .cloned()
            .unwrap_or_default();
        for grant in &grants {
            if !is_declared(controller, grant) {
                problems.push(format!(
                    "{}: {grant:?} is granted but no declared call needs it",
                    controller.service_account
                ));
            }
        }
        for role in &external {
            if !controller.external_roles.contains(&role.as_str()) {
                problems.push(format!(
                    "{}: external ClusterRole {role} is not declared",
                    controller.service_account
                ));
            }
        }
        for call in declared(controller) {
            if call.open && !open_calls_granted {
                continue;
            }
            for verb in call.verbs {
                if !is_granted(call, verb, &grants) {
                    problems.push(format!(
                        "{}: {verb} {}/{} ({:?}) is called ({}) but not granted",
                        controller.service_account, call.group, call.resource, call.scope, call.why
                    ));
                }
            }
        }
    }
    for account in &accounts {
        assert!(
            CONTROLLERS
                .iter()
                .any(|controller| controller.service_account == *account),
            "ServiceAccount {account} has no declared calls"
        );
    }
    assert!(
        problems.is_empty(),
        "RBAC problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn default_rbac_is_needed_and_sufficient() {
    let Some(helm) = helm() else { return };
    check(&render(&helm, &[]), false);
}

#[test]
fn rbac_with_extra_resources_is_needed_and_sufficient() {
    let Some(helm) = helm() else { return };
    check(&render(&helm, NON_DEFAULT_VALUES), true);
}

#[test]
fn no_controller_is_cluster_admin() {
    let Some(helm) = helm() else { return };
    let objects = render(&helm, &[]);
    for role in common::of_kind(&objects, "ClusterRole")
        .into_iter()
        .chain(common::of_kind(&objects, "Role"))
    {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let verbs = strings(&rule["verbs"]);
            assert!(!verbs.contains(&"*".to_owned()), "wildcard verb in {role}");
            if strings(&rule["resources"]).contains(&"*".to_owned()) {
                assert_eq!(
                    verbs,
                    ["get", "list", "watch"],
                    "wildcard resources may only be read: {role}"
                );
            }
        }
    }
    for binding in common::of_kind(&objects, "ClusterRoleBinding") {
        assert_ne!(binding["roleRef"]["name"], "cluster-admin", "{binding}");
        assert_ne!(binding["roleRef"]["name"], "admin", "{binding}");
        assert_ne!(binding["roleRef"]["name"], "edit", "{binding}");
    }
}

/// The type names in `Api::<K>`, `Api<K>` and `erase::<K>` of a Rust source text.
fn named_kinds(text: &str) -> BTreeSet<String> {
    let mut kinds = BTreeSet::new();
    for marker in ["Api::<", "Api<", "erase::<"] {
        for (index, _) in text.match_indices(marker) {
            let rest = text[index + marker.len()..].trim_start();
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let kind = path.rsplit("::").next().unwrap_or_default();
            // Generic parameters and dynamic objects (arbitrary kinds: the wildcard calls).
            if kind.len() > 1 && !["DynamicObject", "PartialObjectMeta"].contains(&kind) {
                kinds.insert(kind.to_owned());
            }
        }
    }
    kinds
}

fn source_texts(path: &Path) -> Vec<String> {
    if path.is_file() {
        return vec![std::fs::read_to_string(path).expect("readable source")];
    }
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(path).expect("source folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() || path.extension().is_some_and(|ext| ext == "rs") {
            texts.extend(source_texts(&path));
        }
    }
    texts
}

#[test]
fn every_kind_the_controllers_name_is_declared() {
    let root = kyverno_deploy::workspace_root();
    let mut missing = Vec::new();
    for controller in CONTROLLERS {
        let kinds: BTreeSet<&str> = declared(controller).map(|call| call.kind).collect();
        for source in controller.sources {
            let path = root.join(source);
            if !path.exists() {
                continue;
            }
            for text in source_texts(&path) {
                for kind in named_kinds(&text) {
                    if !kinds.contains(kind.as_str()) {
                        missing.push(format!("{}: {kind} ({source})", controller.service_account));
                    }
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "kinds called but not declared:\n{}",
        missing.join("\n")
    );
}

#[test]
fn named_kinds_reads_paths_and_skips_generics() {
    let kinds = named_kinds(
        "let a: Api<Secret> = x; Api::<k8s_openapi::api::core::v1::Event>::all(c);\n\
         ApiResource::erase::<\n    kyverno_api::Foo,\n>(&()); Api::<K>::all(c); Api::<DynamicObject>::all_with(c, &r);",
    );
    assert_eq!(
        kinds,
        BTreeSet::from(["Event".to_owned(), "Foo".to_owned(), "Secret".to_owned()])
    );
}
