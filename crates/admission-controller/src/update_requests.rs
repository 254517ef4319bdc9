//! UpdateRequests: the work an admitted request leaves to the background controller, as
//! upstream's webhook queues it. Generate rules and mutate-existing rules (`mutate.targets`)
//! that the request triggers (their match and preconditions hold, see
//! [`kyverno_policy_core::engine::background_checks`]) become `kyverno.io/v2` UpdateRequests in
//! Kyverno's namespace, `Pending`, named `ur-<random>`; so do the GeneratingPolicies and the
//! mutate-existing MutatingPolicies the request triggers ([`cel_update_request`]).
use std::collections::BTreeMap;

use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kyverno_api::kyverno::v1::generate::ResourceSpec;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v2::update_request::{
    AdmissionRequest as RequestRecord, AdmissionRequestInfo, GroupVersionKind,
    GroupVersionResource, RequestInfo, RequestType, RuleContext, UpdateRequest, UpdateRequestSpec,
    UpdateRequestSpecContext, UpdateRequestState, UpdateRequestStatus,
};
use kyverno_policy_core::engine::LoadedPolicy;
use kyverno_policy_core::request::RequestInfo as Requester;
use kyverno_policy_core::response::{RuleStatus, RuleType};
use kyverno_runtime::policy_cache::PolicyKey;
use kyverno_runtime::reports::policy_name;
use serde_json::Value;

use crate::review::AdmissionRequest;

/// Label naming the policy of a generate UpdateRequest.
pub const LABEL_GENERATE_POLICY: &str = "generate.kyverno.io/policy-name";
/// Label naming the namespace of the Policy of a generate UpdateRequest.
pub const LABEL_GENERATE_POLICY_NAMESPACE: &str = "generate.kyverno.io/policy-namespace";
/// Label naming the policy of a mutate-existing UpdateRequest.
pub const LABEL_MUTATE_POLICY: &str = "mutate.updaterequest.kyverno.io/policy-name";
/// Label naming the namespace of the Policy of a mutate-existing UpdateRequest.
pub const LABEL_MUTATE_POLICY_NAMESPACE: &str = "mutate.updaterequest.kyverno.io/policy-namespace";
/// Label naming the trigger of a mutate-existing UpdateRequest.
pub const LABEL_MUTATE_TRIGGER_NAME: &str = "mutate.updaterequest.kyverno.io/trigger-name";
/// Label giving the namespace of the trigger of a mutate-existing UpdateRequest.
pub const LABEL_MUTATE_TRIGGER_NAMESPACE: &str =
    "mutate.updaterequest.kyverno.io/trigger-namespace";
/// Label giving the kind of the trigger of a mutate-existing UpdateRequest.
pub const LABEL_MUTATE_TRIGGER_KIND: &str = "mutate.updaterequest.kyverno.io/trigger-kind";
/// Label giving the apiVersion (`/` written `-`) of the trigger of a mutate-existing
/// UpdateRequest.
pub const LABEL_MUTATE_TRIGGER_API_VERSION: &str =
    "mutate.updaterequest.kyverno.io/trigger-apiversion";

/// Prefix of the names of the UpdateRequests (`metadata.generateName`).
pub const GENERATE_NAME: &str = "ur-";

/// The admitted request as UpdateRequests record it: the trigger, who asked, and the request.
#[derive(Clone, Debug)]
pub struct TriggerContext {
    /// The resource the request is about (the old object on DELETE).
    pub trigger: ResourceSpec,
    /// The request's operation.
    pub operation: AdmissionOperation,
    /// `spec.context` of every UpdateRequest of the request.
    pub context: UpdateRequestSpecContext,
}

impl TriggerContext {
    /// The context of `request`, whose object (old object on DELETE) is `resource`, made by
    /// `requester` (with the roles bound to it).
    pub fn of(
        request: &AdmissionRequest,
        operation: AdmissionOperation,
        resource: &Value,
        requester: &Requester,
    ) -> Self {
        let text = |pointer: &str| {
            resource
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let user = &requester.user_info;
        let user_info = UserInfo {
            username: Some(user.username.clone()).filter(|name| !name.is_empty()),
            uid: Some(user.uid.clone()).filter(|uid| !uid.is_empty()),
            groups: Some(user.groups.clone()).filter(|groups| !groups.is_empty()),
            extra: Some(user.extra.clone()).filter(|extra| !extra.is_empty()),
        };
        let kind = GroupVersionKind {
            group: request.kind.group.clone(),
            version: request.kind.version.clone(),
            kind: request.kind.kind.clone(),
        };
        let record = RequestRecord {
            uid: Some(request.uid.clone()),
            kind: Some(kind.clone()),
            resource: Some(GroupVersionResource {
                group: request.resource.group.clone(),
                version: request.resource.version.clone(),
                resource: request.resource.resource.clone(),
            }),
            sub_resource: Some(request.sub_resource.clone()).filter(|sub| !sub.is_empty()),
            request_kind: Some(kind),
            name: Some(request.name.clone()).filter(|name| !name.is_empty()),
            namespace: Some(request.namespace.clone()).filter(|ns| !ns.is_empty()),
            operation: Some(operation),
            user_info: Some(user_info.clone()),
            object: request.object.clone(),
            old_object: request.old_object.clone(),
            dry_run: Some(request.dry_run.unwrap_or(false)),
            ..RequestRecord::default()
        };
        Self {
            trigger: ResourceSpec {
                api_version: text("/apiVersion"),
                kind: text("/kind"),
                namespace: text("/metadata/namespace"),
                name: text("/metadata/name"),
                uid: text("/metadata/uid"),
            },
            operation,
            context: UpdateRequestSpecContext {
                user_info: Some(RequestInfo {
                    roles: requester.roles.clone(),
                    cluster_roles: requester.cluster_roles.clone(),
                    user_info: Some(user_info),
                    synchronize: None,
                }),
                admission_request_info: Some(AdmissionRequestInfo {
                    admission_request: Some(record),
                    operation: Some(operation),
                }),
            },
        }
    }
}

/// The outcome of one background-checked rule, as [`update_requests`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedRule {
    /// The rule's name.
    pub name: String,
    /// Generate or mutate (existing).
    pub rule_type: RuleType,
    /// `pass` (triggered) or `fail` (the trigger left the rule).
    pub status: RuleStatus,
}

/// The UpdateRequests `policy` asks for, in `namespace`, given its background-checked rules:
/// - one `generate` request for the generate rules the request triggers (on DELETE, only those
///   that `synchronize`, with `deleteDownstream`: their downstream goes with the trigger);
/// - one `generate` request with `deleteDownstream` for the synchronized generate rules the
///   trigger no longer matches after an UPDATE;
/// - one `mutate` request for the mutate-existing rules the request triggers.
pub fn update_requests(
    policy: &LoadedPolicy,
    checked: &[CheckedRule],
    trigger: &TriggerContext,
    namespace: &str,
) -> Vec<UpdateRequest> {
    let synchronized = |rule: &str| {
        policy
            .rules
            .iter()
            .find(|candidate| candidate.name == rule)
            .and_then(|candidate| candidate.generate.as_ref())
            .and_then(|generation| generation.synchronize)
    };
    let contexts = |rule_type: RuleType, status: RuleStatus, delete_downstream: bool| {
        checked
            .iter()
            .filter(|rule| rule.rule_type == rule_type && rule.status == status)
            .filter(|rule| {
                !(delete_downstream && rule_type == RuleType::Generation)
                    || synchronized(&rule.name) == Some(true)
            })
            .map(|rule| RuleContext {
                rule: rule.name.clone(),
                delete_downstream,
                synchronize: if rule_type == RuleType::Generation {
                    Some(synchronized(&rule.name).unwrap_or(false))
                } else {
                    None
                },
                trigger: trigger.trigger.clone(),
                cache_restore: None,
            })
            .collect::<Vec<_>>()
    };
    let deleted = trigger.operation == AdmissionOperation::Delete;
    let mut requests = Vec::new();
    let generated = contexts(RuleType::Generation, RuleStatus::Pass, deleted);
    let left = contexts(RuleType::Generation, RuleStatus::Fail, true);
    let mutated = contexts(RuleType::Mutation, RuleStatus::Pass, false);
    for (request_type, rule_contexts) in [
        (RequestType::Generate, generated),
        (RequestType::Generate, left),
        (RequestType::Mutate, mutated),
    ] {
        if !rule_contexts.is_empty() {
            requests.push(update_request(
                policy,
                request_type,
                rule_contexts,
                trigger,
                namespace,
            ));
        }
    }
    requests
}

/// One `Pending` UpdateRequest of `policy` for `rule_contexts` (all with the same
/// `deleteDownstream`); the deprecated single-rule fields name the first rule.
fn update_request(
    policy: &LoadedPolicy,
    request_type: RequestType,
    rule_contexts: Vec<RuleContext>,
    trigger: &TriggerContext,
    namespace: &str,
) -> UpdateRequest {
    let first = rule_contexts.first().cloned().unwrap_or_default();
    let spec = UpdateRequestSpec {
        request_type: Some(request_type),
        policy: policy_name(policy),
        rule: first.rule,
        rule_context: rule_contexts,
        resource: trigger.trigger.clone(),
        synchronize: first.synchronize,
        context: trigger.context.clone(),
        delete_downstream: first.delete_downstream,
    };
    let key = PolicyKey {
        namespace: policy.namespace.clone(),
        name: policy.name.clone(),
    };
    pending(spec, &key, namespace, &trigger.trigger)
}

/// A `policies.kyverno.io` policy that an admitted request triggers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CelTriggered {
    /// The policy's namespace (namespaced kinds) and name.
    pub policy: PolicyKey,
    /// `cel-generate` (GeneratingPolicy) or `cel-mutate` (MutatingPolicy that mutates existing
    /// resources).
    pub request_type: RequestType,
    /// A GeneratingPolicy's `evaluation.synchronize.enabled`.
    pub synchronize: bool,
    /// Whether requests of the background controller do not trigger it (a GeneratingPolicy's
    /// `evaluation.skipBackgroundRequests`).
    pub skip_background_requests: bool,
}

/// The UpdateRequest of a `policies.kyverno.io` policy that the request triggers, in
/// `namespace`: the policy's name stands for its rule. The deletion of a trigger asks a
/// synchronized GeneratingPolicy to delete its downstream resources (`deleteDownstream`), and
/// nothing of one that does not synchronize.
pub fn cel_update_request(
    triggered: &CelTriggered,
    trigger: &TriggerContext,
    namespace: &str,
) -> Option<UpdateRequest> {
    let generating = triggered.request_type == RequestType::CelGenerate;
    let delete_downstream = generating && trigger.operation == AdmissionOperation::Delete;
    if delete_downstream && !triggered.synchronize {
        return None;
    }
    let synchronize = generating.then_some(triggered.synchronize);
    let rule = triggered.policy.name.clone();
    let spec = UpdateRequestSpec {
        request_type: Some(triggered.request_type),
        policy: triggered.policy.to_string(),
        rule: rule.clone(),
        rule_context: vec![RuleContext {
            rule,
            delete_downstream,
            synchronize,
            trigger: trigger.trigger.clone(),
            cache_restore: None,
        }],
        resource: trigger.trigger.clone(),
        synchronize,
        context: trigger.context.clone(),
        delete_downstream,
    };
    Some(pending(
        spec,
        &triggered.policy,
        namespace,
        &trigger.trigger,
    ))
}

/// The `Pending` UpdateRequest of `spec`, for `policy`, named `ur-<random>` in `namespace`.
fn pending(
    spec: UpdateRequestSpec,
    policy: &PolicyKey,
    namespace: &str,
    trigger: &ResourceSpec,
) -> UpdateRequest {
    let request_type = spec.request_type.unwrap_or(RequestType::Generate);
    let mut request = UpdateRequest::new("", spec);
    request.metadata = ObjectMeta {
        generate_name: Some(GENERATE_NAME.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels(policy, request_type, trigger)),
        ..ObjectMeta::default()
    };
    request.status = Some(UpdateRequestStatus {
        state: UpdateRequestState::Pending,
        ..UpdateRequestStatus::default()
    });
    request
}

/// Upstream's labels: the policy (and its namespace) for generate requests, the policy and the
/// trigger for mutate requests.
fn labels(
    policy: &PolicyKey,
    request_type: RequestType,
    trigger: &ResourceSpec,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mutate = matches!(request_type, RequestType::Mutate | RequestType::CelMutate);
    let (policy_label, namespace_label) = if mutate {
        (LABEL_MUTATE_POLICY, LABEL_MUTATE_POLICY_NAMESPACE)
    } else {
        (LABEL_GENERATE_POLICY, LABEL_GENERATE_POLICY_NAMESPACE)
    };
    labels.insert(policy_label.to_owned(), policy.name.clone());
    if let Some(namespace) = &policy.namespace {
        labels.insert(namespace_label.to_owned(), namespace.clone());
    }
    if mutate {
        let mut insert = |label: &str, value: &Option<String>| {
            if let Some(value) = value {
                labels.insert(label.to_owned(), value.replace('/', "-"));
            }
        };
        insert(LABEL_MUTATE_TRIGGER_NAME, &trigger.name);
        insert(LABEL_MUTATE_TRIGGER_NAMESPACE, &trigger.namespace);
        insert(LABEL_MUTATE_TRIGGER_KIND, &trigger.kind);
        insert(LABEL_MUTATE_TRIGGER_API_VERSION, &trigger.api_version);
    }
    labels
}

#[cfg(test)]
mod tests {
    use kyverno_api::kyverno::v1::policy::Policy;
    use serde_json::json;

    use super::*;

    fn namespace_request(operation: &str) -> AdmissionRequest {
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-a", "uid": "ns-uid"}});
        let (object, old) = if operation == "DELETE" {
            (Value::Null, namespace)
        } else {
            (namespace, Value::Null)
        };
        serde_json::from_value(json!({
            "uid": "req-1",
            "kind": {"group": "", "version": "v1", "kind": "Namespace"},
            "resource": {"group": "", "version": "v1", "resource": "namespaces"},
            "name": "team-a", "operation": operation,
            "userInfo": {"username": "alice", "groups": ["devs"]},
            "object": object, "oldObject": old, "dryRun": false
        }))
        .expect("a valid request")
    }

    fn trigger(operation: AdmissionOperation, request: &AdmissionRequest) -> TriggerContext {
        let resource = request
            .object
            .as_ref()
            .or(request.old_object.as_ref())
            .expect("an object");
        let requester = Requester {
            roles: vec!["team-a:editor".to_owned()],
            cluster_roles: vec!["view".to_owned()],
            user_info: request.user_info.clone(),
        };
        TriggerContext::of(request, operation, resource, &requester)
    }

    fn policy() -> LoadedPolicy {
        let policy: Policy = serde_json::from_value(json!({
            "apiVersion": "kyverno.io/v1", "kind": "Policy",
            "metadata": {"name": "defaults", "namespace": "platform"},
            "spec": {"rules": [
                {"name": "quota", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                 "generate": {"apiVersion": "v1", "kind": "ResourceQuota", "name": "q",
                    "namespace": "platform", "synchronize": true, "data": {}}},
                {"name": "netpol", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                 "generate": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c",
                    "namespace": "platform", "data": {}}},
                {"name": "touch", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                 "mutate": {"targets": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "platform"}],
                    "patchStrategicMerge": {"metadata": {"labels": {"seen": "yes"}}}}}
            ]}
        }))
        .expect("a valid policy");
        LoadedPolicy::from_policy(policy).expect("loads")
    }

    fn checked(rules: &[(&str, RuleType, RuleStatus)]) -> Vec<CheckedRule> {
        rules
            .iter()
            .map(|(name, rule_type, status)| CheckedRule {
                name: (*name).to_owned(),
                rule_type: *rule_type,
                status: *status,
            })
            .collect()
    }

    #[test]
    fn a_created_trigger_gets_generate_and_mutate_requests() {
        let request = namespace_request("CREATE");
        let trigger = trigger(AdmissionOperation::Create, &request);
        let requests = update_requests(
            &policy(),
            &checked(&[
                ("quota", RuleType::Generation, RuleStatus::Pass),
                ("netpol", RuleType::Generation, RuleStatus::Pass),
                ("touch", RuleType::Mutation, RuleStatus::Pass),
            ]),
            &trigger,
            "kyverno",
        );
        assert_eq!(requests.len(), 2);
        let generate = serde_json::to_value(&requests[0]).expect("serializes");
        assert_eq!(generate["metadata"]["generateName"], "ur-");
        assert_eq!(generate["metadata"]["namespace"], "kyverno");
        assert_eq!(
            generate["metadata"]["labels"],
            json!({"generate.kyverno.io/policy-name": "defaults",
                "generate.kyverno.io/policy-namespace": "platform"})
        );
        let spec = &generate["spec"];
        assert_eq!(spec["requestType"], "generate");
        assert_eq!(spec["policy"], "platform/defaults");
        assert_eq!(spec["rule"], "quota");
        assert_eq!(spec["deleteDownstream"], false);
        assert_eq!(
            spec["resource"],
            json!({"apiVersion": "v1", "kind": "Namespace", "name": "team-a", "uid": "ns-uid"})
        );
        assert_eq!(spec["ruleContext"][0]["synchronize"], true);
        assert_eq!(spec["ruleContext"][1]["rule"], "netpol");
        assert_eq!(spec["ruleContext"][1]["synchronize"], false);
        assert_eq!(spec["ruleContext"][1]["trigger"], spec["resource"]);
        assert_eq!(
            spec["context"]["userInfo"],
            json!({"roles": ["team-a:editor"], "clusterRoles": ["view"],
                "userInfo": {"username": "alice", "groups": ["devs"]}})
        );
        let info = &spec["context"]["admissionRequestInfo"];
        assert_eq!(info["operation"], "CREATE");
        assert_eq!(info["admissionRequest"]["uid"], "req-1");
        assert_eq!(
            info["admissionRequest"]["object"]["metadata"]["name"],
            "team-a"
        );
        assert_eq!(generate["status"]["state"], "Pending");

        let mutate = serde_json::to_value(&requests[1]).expect("serializes");
        assert_eq!(mutate["spec"]["requestType"], "mutate");
        assert_eq!(
            mutate["metadata"]["labels"],
            json!({"mutate.updaterequest.kyverno.io/policy-name": "defaults",
                "mutate.updaterequest.kyverno.io/policy-namespace": "platform",
                "mutate.updaterequest.kyverno.io/trigger-name": "team-a",
                "mutate.updaterequest.kyverno.io/trigger-kind": "Namespace",
                "mutate.updaterequest.kyverno.io/trigger-apiversion": "v1"})
        );
        assert!(
            mutate["spec"]["ruleContext"][0]
                .get("synchronize")
                .is_none()
        );
    }

    #[test]
    fn deleting_a_trigger_deletes_only_synchronized_downstream() {
        let request = namespace_request("DELETE");
        let trigger = trigger(AdmissionOperation::Delete, &request);
        let requests = update_requests(
            &policy(),
            &checked(&[
                ("quota", RuleType::Generation, RuleStatus::Pass),
                ("netpol", RuleType::Generation, RuleStatus::Pass),
            ]),
            &trigger,
            "kyverno",
        );
        assert_eq!(requests.len(), 1);
        let spec = &requests[0].spec;
        assert!(spec.delete_downstream);
        assert_eq!(spec.rule_context.len(), 1);
        assert_eq!(spec.rule_context[0].rule, "quota");
        assert!(spec.rule_context[0].delete_downstream);
        assert_eq!(spec.resource.name.as_deref(), Some("team-a"));
        assert_eq!(
            spec.context
                .admission_request_info
                .as_ref()
                .and_then(|info| info.operation),
            Some(AdmissionOperation::Delete)
        );
    }

    #[test]
    fn cel_policies_get_requests_named_after_the_policy() {
        let created = namespace_request("CREATE");
        let create = trigger(AdmissionOperation::Create, &created);
        let generating = CelTriggered {
            policy: PolicyKey {
                namespace: None,
                name: "netpol".to_owned(),
            },
            request_type: RequestType::CelGenerate,
            synchronize: true,
            skip_background_requests: true,
        };
        let request = cel_update_request(&generating, &create, "kyverno").expect("a request");
        let value = serde_json::to_value(&request).expect("serializes");
        assert_eq!(value["spec"]["requestType"], "cel-generate");
        assert_eq!(value["spec"]["policy"], "netpol");
        assert_eq!(value["spec"]["ruleContext"][0]["rule"], "netpol");
        assert_eq!(value["spec"]["ruleContext"][0]["synchronize"], true);
        assert_eq!(value["spec"]["ruleContext"][0]["deleteDownstream"], false);
        assert_eq!(value["spec"]["ruleContext"][0]["trigger"]["uid"], "ns-uid");
        assert_eq!(
            value["metadata"]["labels"],
            json!({"generate.kyverno.io/policy-name": "netpol"})
        );
        assert_eq!(value["status"]["state"], "Pending");

        let deleted = namespace_request("DELETE");
        let delete = trigger(AdmissionOperation::Delete, &deleted);
        let removal = cel_update_request(&generating, &delete, "kyverno").expect("a request");
        assert!(removal.spec.delete_downstream);
        assert!(removal.spec.rule_context[0].delete_downstream);
        let unsynchronized = CelTriggered {
            synchronize: false,
            ..generating.clone()
        };
        assert!(cel_update_request(&unsynchronized, &delete, "kyverno").is_none());

        let mutating = CelTriggered {
            policy: PolicyKey {
                namespace: Some("team".to_owned()),
                name: "touch".to_owned(),
            },
            request_type: RequestType::CelMutate,
            synchronize: false,
            skip_background_requests: false,
        };
        let mutate = serde_json::to_value(
            cel_update_request(&mutating, &create, "kyverno").expect("a request"),
        )
        .expect("serializes");
        assert_eq!(mutate["spec"]["requestType"], "cel-mutate");
        assert_eq!(mutate["spec"]["policy"], "team/touch");
        assert!(
            mutate["spec"]["ruleContext"][0]
                .get("synchronize")
                .is_none()
        );
        assert_eq!(
            mutate["metadata"]["labels"]["mutate.updaterequest.kyverno.io/policy-name"],
            "touch"
        );
        assert_eq!(
            mutate["metadata"]["labels"]["mutate.updaterequest.kyverno.io/trigger-name"],
            "team-a"
        );
    }

    #[test]
    fn a_trigger_leaving_a_rule_deletes_its_synchronized_downstream() {
        let request = namespace_request("UPDATE");
        let trigger = trigger(AdmissionOperation::Update, &request);
        let requests = update_requests(
            &policy(),
            &checked(&[
                ("quota", RuleType::Generation, RuleStatus::Fail),
                ("netpol", RuleType::Generation, RuleStatus::Pass),
            ]),
            &trigger,
            "kyverno",
        );
        let flags: Vec<(bool, Vec<&str>)> = requests
            .iter()
            .map(|request| {
                (
                    request.spec.delete_downstream,
                    request
                        .spec
                        .rule_context
                        .iter()
                        .map(|context| context.rule.as_str())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(flags, [(false, vec!["netpol"]), (true, vec!["quota"])]);
    }
}
