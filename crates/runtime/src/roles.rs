//! The RBAC roles bound to a requester, for rules that match on `roles`/`clusterRoles` and for
//! the `request.roles`/`request.clusterRoles` variables, from RoleBindings and
//! ClusterRoleBindings kept in step by [`crate::watch`] (no API call per request).
//!
//! As upstream (`pkg/userinfo`): a service account (`system:serviceaccount:<ns>:<name>`) is
//! bound by `ServiceAccount` subjects only; any other user by subjects named after the user or
//! one of its groups. A RoleBinding gives `namespace:role` for a Role and the cluster role's
//! name for a ClusterRole; a ClusterRoleBinding gives the cluster role's name.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use serde_json::Value;

/// The prefix of service account usernames.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// A subject of a binding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    #[serde(default)]
    pub kind: String,
    /// The subject's name.
    #[serde(default)]
    pub name: String,
    /// The namespace of a `ServiceAccount`.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The role a binding refers to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct RoleRef {
    /// `Role` or `ClusterRole`.
    #[serde(default)]
    pub kind: String,
    /// The role's name.
    #[serde(default)]
    pub name: String,
}

/// A RoleBinding or ClusterRoleBinding, the fields that matter here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// Who is bound.
    #[serde(default)]
    pub subjects: Vec<Subject>,
    /// To what.
    #[serde(default)]
    pub role_ref: RoleRef,
}

impl Binding {
    /// Reads the binding part of a RoleBinding or ClusterRoleBinding object.
    pub fn from_object(object: &Value) -> Option<Self> {
        serde_json::from_value(object.clone()).ok()
    }
}

/// The roles bound to a requester.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundRoles {
    /// Roles as `namespace:name`.
    pub roles: Vec<String>,
    /// Cluster role names.
    pub cluster_roles: Vec<String>,
}

/// A binding's key: its namespace (empty for a ClusterRoleBinding) and name.
type BindingKey = (String, String);

/// The RoleBindings and ClusterRoleBindings of the cluster.
#[derive(Debug, Default)]
pub struct RoleBindings {
    role_bindings: RwLock<Arc<BTreeMap<BindingKey, Binding>>>,
    cluster_role_bindings: RwLock<Arc<BTreeMap<BindingKey, Binding>>>,
}

/// Which kind of binding a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// `rbac.authorization.k8s.io/v1` RoleBinding.
    RoleBinding,
    /// `rbac.authorization.k8s.io/v1` ClusterRoleBinding.
    ClusterRoleBinding,
}

impl RoleBindings {
    fn store(&self, kind: BindingKind) -> &RwLock<Arc<BTreeMap<BindingKey, Binding>>> {
        match kind {
            BindingKind::RoleBinding => &self.role_bindings,
            BindingKind::ClusterRoleBinding => &self.cluster_role_bindings,
        }
    }

    fn read(&self, kind: BindingKind) -> Arc<BTreeMap<BindingKey, Binding>> {
        match self.store(kind).read() {
            Ok(bindings) => Arc::clone(&bindings),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn write(&self, kind: BindingKind, change: impl FnOnce(&mut BTreeMap<BindingKey, Binding>)) {
        let mut guard = match self.store(kind).write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        change(Arc::make_mut(&mut guard));
    }

    /// Adds or replaces a binding.
    pub fn set(&self, kind: BindingKind, namespace: &str, name: &str, binding: Binding) {
        self.write(kind, |all| {
            all.insert((namespace.to_owned(), name.to_owned()), binding);
        });
    }

    /// Forgets a binding.
    pub fn remove(&self, kind: BindingKind, namespace: &str, name: &str) {
        self.write(kind, |all| {
            all.remove(&(namespace.to_owned(), name.to_owned()));
        });
    }

    /// Replaces every binding of `kind`.
    pub fn replace(
        &self,
        kind: BindingKind,
        bindings: impl IntoIterator<Item = (String, String, Binding)>,
    ) {
        let fresh = bindings
            .into_iter()
            .map(|(namespace, name, binding)| ((namespace, name), binding))
            .collect();
        self.write(kind, |all| *all = fresh);
    }

    /// The roles and cluster roles bound to `username` with `groups`, sorted and without
    /// duplicates.
    pub fn bound_to(&self, username: &str, groups: &[String]) -> BoundRoles {
        let mut roles = BTreeSet::new();
        let mut cluster_roles = BTreeSet::new();
        for ((namespace, _), binding) in self.read(BindingKind::RoleBinding).iter() {
            if !binds(binding, username, groups, namespace) {
                continue;
            }
            match binding.role_ref.kind.as_str() {
                "Role" => {
                    roles.insert(format!("{namespace}:{}", binding.role_ref.name));
                }
                "ClusterRole" => {
                    cluster_roles.insert(binding.role_ref.name.clone());
                }
                _ => {}
            }
        }
        for binding in self.read(BindingKind::ClusterRoleBinding).values() {
            if binding.role_ref.kind == "ClusterRole" && binds(binding, username, groups, "") {
                cluster_roles.insert(binding.role_ref.name.clone());
            }
        }
        BoundRoles {
            roles: roles.into_iter().collect(),
            cluster_roles: cluster_roles.into_iter().collect(),
        }
    }
}

/// Whether some subject of `binding` (in `namespace`, empty for a ClusterRoleBinding) is the
/// requester.
fn binds(binding: &Binding, username: &str, groups: &[String], namespace: &str) -> bool {
    binding.subjects.iter().any(|subject| {
        if username.starts_with(SERVICE_ACCOUNT_PREFIX) {
            let subject_namespace = subject
                .namespace
                .as_deref()
                .filter(|namespace| !namespace.is_empty())
                .unwrap_or(namespace);
            subject.kind == "ServiceAccount"
                && username
                    == format!(
                        "{SERVICE_ACCOUNT_PREFIX}{subject_namespace}:{}",
                        subject.name
                    )
        } else {
            subject.kind != "ServiceAccount"
                && (subject.name == username || groups.contains(&subject.name))
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn binding(role_kind: &str, role: &str, subjects: Value) -> Binding {
        Binding::from_object(
            &json!({"roleRef": {"kind": role_kind, "name": role}, "subjects": subjects}),
        )
        .unwrap()
    }

    #[test]
    fn users_groups_and_service_accounts_get_their_roles() {
        let store = RoleBindings::default();
        store.replace(
            BindingKind::ClusterRoleBinding,
            [(
                String::new(),
                "admins".to_owned(),
                binding(
                    "ClusterRole",
                    "cluster-admin",
                    json!([{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"}]),
                ),
            )],
        );
        store.set(
            BindingKind::RoleBinding,
            "team",
            "edit",
            binding(
                "Role",
                "editor",
                json!([{"kind": "ServiceAccount", "name": "builder"}]),
            ),
        );
        store.set(
            BindingKind::RoleBinding,
            "team",
            "view",
            binding(
                "ClusterRole",
                "view",
                json!([{"kind": "User", "name": "bob"}]),
            ),
        );
        assert_eq!(
            store.bound_to("alice", &[]).cluster_roles,
            ["cluster-admin"]
        );
        assert_eq!(
            store.bound_to("carol", &["ops".to_owned()]).cluster_roles,
            ["cluster-admin"]
        );
        let bob = store.bound_to("bob", &[]);
        assert_eq!(bob.cluster_roles, ["view"]);
        assert!(bob.roles.is_empty());
        let builder = store.bound_to("system:serviceaccount:team:builder", &[]);
        assert_eq!(builder.roles, ["team:editor"]);
        // A service account is not bound through a user subject of the same name, nor in another
        // namespace.
        assert_eq!(
            store.bound_to("system:serviceaccount:other:builder", &[]),
            BoundRoles::default()
        );
        store.remove(BindingKind::ClusterRoleBinding, "", "admins");
        assert!(store.bound_to("alice", &[]).cluster_roles.is_empty());
    }
}
