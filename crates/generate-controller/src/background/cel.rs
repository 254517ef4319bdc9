//! The background paths of the `policies.kyverno.io` kinds: the UpdateRequests and deletions
//! that changes of GeneratingPolicies and mutate-existing MutatingPolicies ask for (see
//! [`crate::cel_policies`]).
use k8s_openapi::api::admissionregistration::v1::MatchResources;
use kyverno_api::kyverno::v1::generate::ResourceSpec;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v2::update_request::RequestType;
use kyverno_policy_core::celpolicy::RequestInput;
use kyverno_policy_core::celpolicy::resources::{GroupVersionResource, ResourceTable};
use kyverno_policy_core::request::{GroupVersionKind, ResourceRequest};
use kyverno_runtime::cel_policies::CompiledCel;
use kyverno_runtime::policy_cache::PolicyKey;
use serde_json::Value;

use super::{Background, labels_of};
use crate::cel_policies::CelAction;
use crate::cluster::ClusterError;
use crate::labels;
use crate::request::{NewRequest, namespace_object, spec_of, type_of};

impl Background {
    /// Performs one action of the `policies.kyverno.io` kinds.
    pub(super) async fn perform_cel(&self, action: &CelAction) -> Result<(), ClusterError> {
        match action {
            CelAction::GenerateExisting(policy) => {
                let triggers = self
                    .existing_triggers(
                        policy.compiled.match_constraints(),
                        policy.key.namespace.as_deref(),
                        |input| policy.compiled.selects(input),
                    )
                    .await?;
                let synchronize = policy.compiled.settings().synchronize;
                for trigger in triggers {
                    self.queue(cel_request(
                        RequestType::CelGenerate,
                        &policy.key,
                        trigger,
                        synchronize,
                    ))
                    .await;
                }
                Ok(())
            }
            CelAction::Track(policy) => {
                self.cel_downstream(&policy.key).await?;
                Ok(())
            }
            CelAction::Resync(policy) => {
                let mut triggers: Vec<ResourceSpec> = Vec::new();
                for trigger in self
                    .cel_downstream(&policy.key)
                    .await?
                    .iter()
                    .filter_map(trigger_of_downstream)
                {
                    if !triggers.contains(&trigger) {
                        triggers.push(trigger);
                    }
                }
                for trigger in triggers {
                    self.queue(cel_request(
                        RequestType::CelGenerate,
                        &policy.key,
                        trigger,
                        true,
                    ))
                    .await;
                }
                Ok(())
            }
            CelAction::DeleteDownstream(key) => {
                let deleted = self.processor.delete_cel_downstream(key, None).await?;
                tracing::info!(policy = %key, deleted, "downstream resources deleted");
                Ok(())
            }
            CelAction::MutateExisting(cached) => {
                let CompiledCel::Mutating(policy) = &cached.compiled else {
                    return Ok(());
                };
                let triggers = self
                    .existing_triggers(
                        policy.match_constraints(),
                        cached.key.namespace.as_deref(),
                        |input| policy.selects_trigger(input),
                    )
                    .await?;
                for trigger in triggers {
                    self.queue(cel_request(
                        RequestType::CelMutate,
                        &cached.key,
                        trigger,
                        false,
                    ))
                    .await;
                }
                Ok(())
            }
        }
    }

    /// The downstream resources of the GeneratingPolicy `policy`, in every kind the API
    /// server lists; their kinds are noted as synchronized downstream kinds.
    async fn cel_downstream(&self, policy: &PolicyKey) -> Result<Vec<Value>, ClusterError> {
        let selector = labels::cel_downstream_selector(policy, None);
        let mut downstream = Vec::new();
        for (api_version, kind) in self.cluster.resources().listable_kinds().await? {
            downstream.extend(
                self.cluster
                    .resources()
                    .list(&api_version, &kind, "", Some(&selector))
                    .await?
                    .into_iter()
                    .filter(|object| labels::is_cel_downstream_of(policy, &labels_of(object))),
            );
        }
        self.processor
            .note_cel_kinds(downstream.iter().map(type_of));
        Ok(downstream)
    }

    /// A GeneratingPolicy's downstream resource was changed or deleted by hand: queue a
    /// `cel-generate` request for its trigger when the policy its labels name (a
    /// NamespacedGeneratingPolicy when they name a namespace) synchronizes.
    pub(super) async fn cel_downstream_changed(&self, object: &Value) {
        let Some(key) = labels::cel_origin_of(&labels_of(object)) else {
            return;
        };
        let Some(policy) = self.generating.get(&key) else {
            return;
        };
        if !policy.compiled.settings().synchronize {
            return;
        }
        if let Some(trigger) = trigger_of_downstream(object) {
            self.queue(cel_request(
                RequestType::CelGenerate,
                &policy.key,
                trigger,
                true,
            ))
            .await;
        }
    }

    /// The existing resources of the kinds that the resource rules of `constraints` name
    /// (wildcards left out), in `namespace` when set, that `selects` selects as created.
    async fn existing_triggers(
        &self,
        constraints: Option<&MatchResources>,
        namespace: Option<&str>,
        selects: impl Fn(&RequestInput<'_>) -> bool,
    ) -> Result<Vec<ResourceSpec>, ClusterError> {
        let mut triggers = Vec::new();
        for served in named_resources(constraints) {
            let Some(gvk) = ResourceTable::builtin().kind_for(&served) else {
                tracing::warn!(resource = %served.resource, "unknown resource: existing triggers not processed");
                continue;
            };
            let api_version = if gvk.group.is_empty() {
                gvk.version.clone()
            } else {
                format!("{}/{}", gvk.group, gvk.version)
            };
            for object in self
                .cluster
                .resources()
                .list(&api_version, &gvk.kind, namespace.unwrap_or_default(), None)
                .await?
            {
                let object_namespace = object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let spec = spec_of(&object);
                let request = ResourceRequest::new(object)
                    .with_operation(AdmissionOperation::Create)
                    .with_kind(
                        GroupVersionKind::from_api_version(&api_version, &gvk.kind),
                        "",
                    )
                    .with_namespace_labels(self.stores.namespaces.get(&object_namespace));
                let namespace_object = namespace_object(&self.stores.namespaces, &object_namespace);
                let input = RequestInput::new(&request, &served, namespace_object.as_ref());
                if selects(&input) && !triggers.contains(&spec) {
                    triggers.push(spec);
                }
            }
        }
        Ok(triggers)
    }
}

/// The request of a `policies.kyverno.io` policy (named as its only rule) for `trigger`.
fn cel_request(
    request_type: RequestType,
    policy: &PolicyKey,
    trigger: ResourceSpec,
    synchronize: bool,
) -> NewRequest {
    NewRequest {
        request_type,
        policy: policy.clone(),
        rule: policy.name.clone(),
        trigger,
        synchronize,
        delete_downstream: false,
    }
}

/// The resources the resource rules of `constraints` name without wildcards.
fn named_resources(constraints: Option<&MatchResources>) -> Vec<GroupVersionResource> {
    let names = |items: &Option<Vec<String>>| -> Vec<String> {
        items
            .iter()
            .flatten()
            .filter(|item| !item.contains('*') && !item.contains('/'))
            .cloned()
            .collect()
    };
    let mut served = Vec::new();
    for rule in constraints
        .iter()
        .flat_map(|constraints| constraints.resource_rules.iter().flatten())
    {
        for group in names(&rule.api_groups) {
            for version in names(&rule.api_versions) {
                for resource in names(&rule.resources) {
                    let candidate =
                        GroupVersionResource::new(group.clone(), version.clone(), resource);
                    if !served.contains(&candidate) {
                        served.push(candidate);
                    }
                }
            }
        }
    }
    served
}

/// The trigger a GeneratingPolicy's downstream resource names in its labels.
fn trigger_of_downstream(object: &Value) -> Option<ResourceSpec> {
    let labels = labels_of(object);
    let get = |key: &str| labels.get(key).cloned().filter(|value| !value.is_empty());
    let uid = get(labels::TRIGGER_UID)?;
    let version = get(labels::TRIGGER_VERSION).unwrap_or_default();
    let api_version = match get(labels::TRIGGER_GROUP) {
        Some(group) => format!("{group}/{version}"),
        None => version,
    };
    Some(ResourceSpec {
        api_version: Some(api_version),
        kind: get(labels::TRIGGER_KIND),
        namespace: get(labels::TRIGGER_NAMESPACE),
        name: get(labels::TRIGGER_NAME),
        uid: Some(uid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_resources_leave_wildcards_out() {
        let constraints: MatchResources = serde_json::from_value(serde_json::json!({
            "resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                 "resources": ["namespaces", "pods/status", "*"]},
                {"apiGroups": ["*"], "apiVersions": ["v1"], "operations": ["CREATE"],
                 "resources": ["deployments"]}
            ]
        }))
        .expect("constraints");
        assert_eq!(
            named_resources(Some(&constraints)),
            vec![GroupVersionResource::new("", "v1", "namespaces")]
        );
        assert!(named_resources(None).is_empty());
    }

    #[test]
    fn the_trigger_of_a_generated_resource() {
        let object = serde_json::json!({"metadata": {"labels": {
            "generate.kyverno.io/trigger-uid": "u", "generate.kyverno.io/trigger-group": "apps",
            "generate.kyverno.io/trigger-version": "v1", "generate.kyverno.io/trigger-kind": "Deployment",
            "generate.kyverno.io/trigger-namespace": "ns", "generate.kyverno.io/trigger-name": "d"}}});
        assert_eq!(
            trigger_of_downstream(&object),
            Some(ResourceSpec {
                api_version: Some("apps/v1".to_owned()),
                kind: Some("Deployment".to_owned()),
                namespace: Some("ns".to_owned()),
                name: Some("d".to_owned()),
                uid: Some("u".to_owned()),
            })
        );
        assert_eq!(trigger_of_downstream(&serde_json::json!({})), None);
    }
}
