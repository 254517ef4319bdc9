//! The resource types the controller can act on, from discovery: the preferred version of every
//! type that can be listed, watched and deleted, and which of them a policy selects.
use k8s_openapi::api::admissionregistration::v1::MatchResources as CelMatchResources;
use kube::Client;
use kube::core::ApiResource;
use kube::discovery::{Discovery, Scope, verbs};
use kyverno_api::kyverno::v1::match_resources::MatchResources;
use kyverno_policy_core::wildcard;

/// A resource type served by the API server.
#[derive(Clone, Debug)]
pub struct ServedType {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
}

/// Every type the API server serves in its preferred version that can be listed, watched and
/// deleted.
pub async fn deletable_types(client: &Client) -> Result<Vec<ServedType>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut types = Vec::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            let usable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                .iter()
                .all(|verb| capabilities.supports_operation(verb));
            if usable {
                types.push(ServedType {
                    resource,
                    namespaced: capabilities.scope == Scope::Namespaced,
                });
            }
        }
    }
    Ok(types)
}

/// Whether a kind selector of a `match` block (`Kind`, `version/Kind`, `group/version/Kind`,
/// with wildcards) selects `resource`.
pub fn kind_selects(selector: &str, resource: &ApiResource) -> bool {
    let parts: Vec<&str> = selector.split('/').collect();
    let (group, version, kind) = match parts.as_slice() {
        [kind] => ("*", "*", *kind),
        [version, kind] => ("*", *version, *kind),
        [group, version, kind] => (*group, *version, *kind),
        _ => return false,
    };
    wildcard::matches(group, &resource.group)
        && wildcard::matches(version, &resource.version)
        && wildcard::matches(kind, &resource.kind)
}

/// The kinds named anywhere in a `match` block.
fn match_kinds(block: &MatchResources) -> impl Iterator<Item = &String> {
    block
        .any
        .iter()
        .chain(&block.all)
        .filter_map(|filter| filter.resources.as_ref())
        .chain(block.resources.as_ref())
        .flat_map(|description| &description.kinds)
}

/// Whether a cleanup policy's `match` block names a kind of `served`.
pub fn cleanup_selects(block: &MatchResources, served: &ServedType) -> bool {
    match_kinds(block).any(|selector| kind_selects(selector, &served.resource))
}

/// Whether a deleting policy's `matchConstraints` rules name `served`.
pub fn deleting_selects(constraints: Option<&CelMatchResources>, served: &ServedType) -> bool {
    let resource = &served.resource;
    let listed = |values: Option<&Vec<String>>, value: &str| {
        values.is_some_and(|values| values.iter().any(|v| v == "*" || v == value))
    };
    constraints
        .and_then(|constraints| constraints.resource_rules.as_ref())
        .into_iter()
        .flatten()
        .any(|rule| {
            listed(rule.api_groups.as_ref(), &resource.group)
                && listed(rule.api_versions.as_ref(), &resource.version)
                && listed(rule.resources.as_ref(), &resource.plural)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::GroupVersionKind;

    fn served(group: &str, version: &str, kind: &str, plural: &str) -> ServedType {
        ServedType {
            resource: ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk(group, version, kind),
                plural,
            ),
            namespaced: true,
        }
    }

    #[test]
    fn kind_selectors_with_versions_and_wildcards() {
        let pods = served("", "v1", "Pod", "pods");
        let deployments = served("apps", "v1", "Deployment", "deployments");
        assert!(kind_selects("Pod", &pods.resource));
        assert!(kind_selects("v1/Pod", &pods.resource));
        assert!(kind_selects("*", &deployments.resource));
        assert!(kind_selects("apps/v1/Deploy*", &deployments.resource));
        assert!(kind_selects("apps/*/Deployment", &deployments.resource));
        assert!(!kind_selects("batch/v1/Deployment", &deployments.resource));
        assert!(!kind_selects("Pod", &deployments.resource));
        assert!(!kind_selects("a/b/c/d", &pods.resource));
    }

    #[test]
    fn deleting_policies_select_by_resource_rules() {
        let constraints: CelMatchResources = serde_json::from_value(serde_json::json!({
            "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["*"]}]
        }))
        .expect("match constraints");
        assert!(deleting_selects(
            Some(&constraints),
            &served("", "v1", "Pod", "pods")
        ));
        assert!(!deleting_selects(
            Some(&constraints),
            &served("", "v1", "ConfigMap", "configmaps")
        ));
        assert!(!deleting_selects(None, &served("", "v1", "Pod", "pods")));
    }
}
