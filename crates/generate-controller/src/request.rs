//! UpdateRequests as upstream writes them, and what their specs say: the rules to run, each
//! with its trigger, and the admission request the trigger came with.
use std::collections::BTreeMap;
use std::sync::Arc;

use kyverno_api::kyverno::v1::generate::ResourceSpec;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v2::update_request::{
    RequestType, RuleContext, UpdateRequest, UpdateRequestSpec, UpdateRequestSpecContext,
    UpdateRequestState, UpdateRequestStatus,
};
use kyverno_policy_core::request::{GroupVersionKind, RequestInfo, ResourceRequest};
use kyverno_runtime::namespaces::NamespaceLabels;
use kyverno_runtime::policy_cache::PolicyKey;
use serde_json::Value;

use crate::labels;

/// A request to run one rule of a policy for one trigger.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRequest {
    /// `generate`, `mutate`, `cel-generate` or `cel-mutate`.
    pub request_type: RequestType,
    /// The policy.
    pub policy: PolicyKey,
    /// The rule (the policy's name for the `policies.kyverno.io` kinds, which have none).
    pub rule: String,
    /// The trigger.
    pub trigger: ResourceSpec,
    /// The rule's `synchronize`.
    pub synchronize: bool,
    /// Whether the trigger's downstream resources are to be deleted.
    pub delete_downstream: bool,
}

/// The UpdateRequest of `request` in `namespace`, named `ur-<random>` by the API server and
/// pending, as upstream's background paths create them (without an admission request).
pub fn update_request(namespace: &str, request: &NewRequest) -> UpdateRequest {
    let spec = UpdateRequestSpec {
        request_type: Some(request.request_type),
        policy: request.policy.to_string(),
        rule: request.rule.clone(),
        rule_context: vec![RuleContext {
            rule: request.rule.clone(),
            delete_downstream: request.delete_downstream,
            synchronize: Some(request.synchronize),
            trigger: request.trigger.clone(),
            cache_restore: None,
        }],
        resource: request.trigger.clone(),
        synchronize: Some(request.synchronize),
        context: UpdateRequestSpecContext::default(),
        delete_downstream: request.delete_downstream,
    };
    let mut update_request = UpdateRequest::new("", spec);
    update_request.metadata.name = None;
    update_request.metadata.generate_name = Some("ur-".to_owned());
    update_request.metadata.namespace = Some(namespace.to_owned());
    let policy_label = match request.request_type {
        RequestType::Generate | RequestType::CelGenerate => labels::POLICY_NAME,
        RequestType::Mutate | RequestType::CelMutate => labels::MUTATE_POLICY_NAME,
    };
    update_request.metadata.labels = Some(BTreeMap::from([(
        policy_label.to_owned(),
        request.policy.name.clone(),
    )]));
    update_request.status = Some(UpdateRequestStatus::default());
    update_request
}

/// The policy an UpdateRequest names (`name` or `namespace/name`).
pub fn policy_key(spec: &UpdateRequestSpec) -> PolicyKey {
    match spec.policy.split_once('/') {
        Some((namespace, name)) => PolicyKey {
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        },
        None => PolicyKey {
            namespace: None,
            name: spec.policy.clone(),
        },
    }
}

/// The rules an UpdateRequest runs: its `ruleContext`, or the deprecated `rule`, `resource`,
/// `synchronize` and `deleteDownstream` fields when it has none.
pub fn rule_contexts(spec: &UpdateRequestSpec) -> Vec<RuleContext> {
    if !spec.rule_context.is_empty() {
        return spec.rule_context.clone();
    }
    vec![RuleContext {
        rule: spec.rule.clone(),
        delete_downstream: spec.delete_downstream,
        synchronize: spec.synchronize,
        trigger: spec.resource.clone(),
        cache_restore: None,
    }]
}

/// Where an UpdateRequest's processing stands (`Pending` without a status).
pub fn state_of(update_request: &UpdateRequest) -> UpdateRequestState {
    update_request
        .status
        .as_ref()
        .map(|status| status.state)
        .unwrap_or_default()
}

/// How many times an UpdateRequest has been retried.
pub fn retries_of(update_request: &UpdateRequest) -> u32 {
    update_request
        .status
        .as_ref()
        .and_then(|status| status.retry_count)
        .and_then(|count| u32::try_from(count).ok())
        .unwrap_or(0)
}

/// The identity of `object` as a resource spec.
pub fn spec_of(object: &Value) -> ResourceSpec {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    ResourceSpec {
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        namespace: text("/metadata/namespace"),
        name: text("/metadata/name"),
        uid: text("/metadata/uid"),
    }
}

/// The API version and kind of `object`.
pub fn type_of(object: &Value) -> (String, String) {
    let text = |field: &str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("apiVersion"), text("kind"))
}

/// The engine request for `trigger`, with the operation and requester of the UpdateRequest's
/// admission request (a CREATE without a requester when it has none, as upstream's background
/// paths).
pub fn trigger_request(
    trigger: Value,
    context: &UpdateRequestSpecContext,
    namespace_labels: Arc<BTreeMap<String, String>>,
) -> ResourceRequest {
    let text = |pointer: &str| {
        trigger
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let gvk = GroupVersionKind::from_api_version(&text("/apiVersion"), &text("/kind"));
    let admission = context
        .admission_request_info
        .as_ref()
        .and_then(|info| info.admission_request.as_ref());
    let operation = context
        .admission_request_info
        .as_ref()
        .and_then(|info| info.operation)
        .or_else(|| admission.and_then(|request| request.operation))
        .unwrap_or(AdmissionOperation::Create);
    let mut request = ResourceRequest::new(trigger)
        .with_operation(operation)
        .with_kind(gvk, "")
        .with_namespace_labels(namespace_labels);
    if let Some(old) = admission.and_then(|request| request.old_object.clone()) {
        request = request.with_old_resource(old);
    }
    if let Some(info) = requester(context) {
        request = request.with_request_info(info);
    }
    request
}

/// The Namespace object of `namespace` as the watches know it (its name and labels), as the
/// CEL policy kinds see it; `None` for cluster-scoped resources.
pub fn namespace_object(namespaces: &NamespaceLabels, namespace: &str) -> Option<Value> {
    (!namespace.is_empty()).then(|| {
        let labels = namespaces.get(namespace);
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": *labels}})
    })
}

/// The requester of the UpdateRequest's admission request, as the engine knows it.
fn requester(context: &UpdateRequestSpecContext) -> Option<RequestInfo> {
    let info = context.user_info.as_ref()?;
    let mut value = serde_json::json!({
        "roles": info.roles,
        "clusterRoles": info.cluster_roles,
    });
    if let Some(user) = &info.user_info {
        value["userInfo"] = serde_json::to_value(user).ok()?;
    }
    serde_json::from_value(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyverno_api::kyverno::v2::update_request::{
        AdmissionRequestInfo, RequestInfo as UrRequestInfo,
    };

    fn trigger() -> ResourceSpec {
        ResourceSpec {
            api_version: Some("v1".to_owned()),
            kind: Some("Namespace".to_owned()),
            namespace: None,
            name: Some("team-a".to_owned()),
            uid: Some("u-1".to_owned()),
        }
    }

    #[test]
    fn background_update_requests_as_upstream_writes_them() {
        let new = NewRequest {
            request_type: RequestType::Generate,
            policy: PolicyKey {
                namespace: Some("team".to_owned()),
                name: "gen".to_owned(),
            },
            rule: "r".to_owned(),
            trigger: trigger(),
            synchronize: true,
            delete_downstream: false,
        };
        let ur = update_request("kyverno", &new);
        let value = serde_json::to_value(&ur).expect("serializes");
        assert_eq!(value["metadata"]["generateName"], "ur-");
        assert_eq!(value["metadata"]["namespace"], "kyverno");
        assert_eq!(value["metadata"]["labels"][labels::POLICY_NAME], "gen");
        assert_eq!(value["spec"]["policy"], "team/gen");
        assert_eq!(value["spec"]["requestType"], "generate");
        assert_eq!(value["spec"]["ruleContext"][0]["trigger"]["uid"], "u-1");
        assert_eq!(value["status"]["state"], "Pending");
        assert_eq!(policy_key(&ur.spec), new.policy);
        assert_eq!(rule_contexts(&ur.spec).len(), 1);
        assert_eq!(state_of(&ur), UpdateRequestState::Pending);
        assert_eq!(retries_of(&ur), 0);
    }

    #[test]
    fn deprecated_fields_give_one_rule() {
        let spec = UpdateRequestSpec {
            policy: "gen".to_owned(),
            rule: "r".to_owned(),
            resource: trigger(),
            delete_downstream: true,
            ..UpdateRequestSpec::default()
        };
        let contexts = rule_contexts(&spec);
        assert_eq!(contexts.len(), 1);
        assert_eq!(contexts[0].rule, "r");
        assert!(contexts[0].delete_downstream);
        assert_eq!(contexts[0].trigger, trigger());
        assert_eq!(policy_key(&spec).namespace, None);
    }

    #[test]
    fn the_trigger_request_carries_the_admission_operation_and_requester() {
        let context = UpdateRequestSpecContext {
            user_info: Some(UrRequestInfo {
                cluster_roles: vec!["admin".to_owned()],
                user_info: Some(k8s_openapi::api::authentication::v1::UserInfo {
                    username: Some("alice".to_owned()),
                    ..Default::default()
                }),
                ..UrRequestInfo::default()
            }),
            admission_request_info: Some(AdmissionRequestInfo {
                admission_request: None,
                operation: Some(AdmissionOperation::Update),
            }),
        };
        let object = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "uid": "u"}});
        let request = trigger_request(object.clone(), &context, Arc::default());
        assert_eq!(request.operation(), Some(AdmissionOperation::Update));
        assert_eq!(request.kind(), "Namespace");
        assert_eq!(request.request_info().user_info.username, "alice");
        assert_eq!(
            request.request_info().cluster_roles,
            vec!["admin".to_owned()]
        );
        let background =
            trigger_request(object, &UpdateRequestSpecContext::default(), Arc::default());
        assert_eq!(background.operation(), Some(AdmissionOperation::Create));
        assert!(background.request_info().is_empty());
        assert_eq!(spec_of(background.resource()).uid.as_deref(), Some("u"));
    }
}
