//! The requester's roles in the engine's request, for the policies that need them (upstream
//! looks them up only then) and for the `kyverno` ConfigMap's `excludeRoles` and
//! `excludeClusterRoles`: from the RoleBindings and ClusterRoleBindings the watches keep.
use std::sync::Arc;

use kyverno_policy_core::request::{AdmissionUserInfo, RequestInfo, ResourceRequest};
use kyverno_runtime::config::{KyvernoConfig, SubjectFilter};
use kyverno_runtime::policy_cache::CachedPolicy;
use kyverno_runtime::roles::{BoundRoles, RoleBindings};

/// `request` with the roles and cluster roles bound to its requester when some of `policies`
/// uses them; unchanged otherwise.
pub fn with_roles(
    request: ResourceRequest,
    bindings: &RoleBindings,
    policies: &[Arc<CachedPolicy>],
) -> ResourceRequest {
    if !policies.iter().any(|cached| cached.uses_roles) {
        return request;
    }
    let user_info = request.request_info().user_info.clone();
    let bound = bindings.bound_to(&user_info.username, &user_info.groups);
    request.with_request_info(RequestInfo {
        roles: bound.roles,
        cluster_roles: bound.cluster_roles,
        user_info,
    })
}

/// The roles bound to `user` when the `kyverno` ConfigMap excludes (or includes) requesters by
/// role or cluster role; none otherwise.
pub fn for_exclusions(
    config: &KyvernoConfig,
    bindings: &RoleBindings,
    user: &AdmissionUserInfo,
) -> BoundRoles {
    let used = |filter: &SubjectFilter| !filter.excluded.is_empty() || !filter.included.is_empty();
    if used(&config.roles) || used(&config.cluster_roles) {
        bindings.bound_to(&user.username, &user.groups)
    } else {
        BoundRoles::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use kyverno_runtime::roles::{Binding, BindingKind};
    use serde_json::json;

    use super::*;

    #[test]
    fn roles_are_looked_up_for_exclusions_only_when_configured() {
        let bindings = RoleBindings::default();
        bindings.set(
            BindingKind::ClusterRoleBinding,
            "",
            "admins",
            Binding::from_object(
                &json!({"roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "User", "name": "alice"}]}),
            )
            .unwrap(),
        );
        let alice = AdmissionUserInfo {
            username: "alice".into(),
            ..AdmissionUserInfo::default()
        };
        let mut config = KyvernoConfig::with_defaults("kyverno");
        assert_eq!(
            for_exclusions(&config, &bindings, &alice),
            BoundRoles::default()
        );
        config.cluster_roles = SubjectFilter::parse("cluster-admin");
        assert_eq!(
            for_exclusions(&config, &bindings, &alice).cluster_roles,
            ["cluster-admin"]
        );
    }
}
