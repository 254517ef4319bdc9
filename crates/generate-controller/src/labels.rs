//! The labels Kyverno puts on generated resources, clone sources and UpdateRequests, and the
//! label selectors that find them again.
use std::collections::BTreeMap;

use kyverno_api::kyverno::v1::generate::ResourceSpec;
use kyverno_runtime::policy_cache::PolicyKey;
use serde_json::Value;

/// Set to `kyverno` on every generated resource.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The generating policy's name (also set on UpdateRequests).
pub const POLICY_NAME: &str = "generate.kyverno.io/policy-name";
/// The policy's name on mutate-existing UpdateRequests.
pub const MUTATE_POLICY_NAME: &str = "mutate.updaterequest.kyverno.io/policy-name";
/// The generating Policy's namespace (empty for a ClusterPolicy).
pub const POLICY_NAMESPACE: &str = "generate.kyverno.io/policy-namespace";
/// The generating rule's name.
pub const RULE_NAME: &str = "generate.kyverno.io/rule-name";
/// The trigger's API group.
pub const TRIGGER_GROUP: &str = "generate.kyverno.io/trigger-group";
/// The trigger's API version.
pub const TRIGGER_VERSION: &str = "generate.kyverno.io/trigger-version";
/// The trigger's kind.
pub const TRIGGER_KIND: &str = "generate.kyverno.io/trigger-kind";
/// The trigger's name (set by GeneratingPolicies).
pub const TRIGGER_NAME: &str = "generate.kyverno.io/trigger-name";
/// The trigger's namespace.
pub const TRIGGER_NAMESPACE: &str = "generate.kyverno.io/trigger-namespace";
/// The trigger's UID.
pub const TRIGGER_UID: &str = "generate.kyverno.io/trigger-uid";
/// The clone source's name (on a clone).
pub const SOURCE_NAME: &str = "generate.kyverno.io/source-name";
/// The clone source's namespace (on a clone).
pub const SOURCE_NAMESPACE: &str = "generate.kyverno.io/source-namespace";
/// The clone source's kind (on a clone).
pub const SOURCE_KIND: &str = "generate.kyverno.io/source-kind";
/// Set (empty) on a resource that synchronized rules clone, so its changes reach the clones.
pub const CLONE_SOURCE: &str = "generate.kyverno.io/clone-source";

/// The selector of the resources Kyverno generated.
pub const GENERATED_SELECTOR: &str =
    "app.kubernetes.io/managed-by=kyverno,generate.kyverno.io/policy-name";

/// The labels of a resource's metadata.
pub type Labels = BTreeMap<String, String>;

/// The labels of `object`'s metadata (none when it has none or they are not strings).
pub fn labels_of(object: &Value) -> Labels {
    object
        .pointer("/metadata/labels")
        .and_then(|labels| serde_json::from_value(labels.clone()).ok())
        .unwrap_or_default()
}

/// The policy, rule and trigger a generated resource names in its labels; `None` when it does
/// not carry them all.
pub fn origin_of(labels: &Labels) -> Option<Origin> {
    let get = |key: &str| labels.get(key).cloned().unwrap_or_default();
    let policy = labels.get(POLICY_NAME).filter(|name| !name.is_empty())?;
    let rule = labels.get(RULE_NAME).filter(|name| !name.is_empty())?;
    let uid = labels.get(TRIGGER_UID).filter(|uid| !uid.is_empty())?;
    let group = get(TRIGGER_GROUP);
    let version = get(TRIGGER_VERSION);
    let namespace = get(POLICY_NAMESPACE);
    let trigger_namespace = get(TRIGGER_NAMESPACE);
    Some(Origin {
        policy: PolicyKey {
            namespace: (!namespace.is_empty()).then_some(namespace),
            name: policy.clone(),
        },
        rule: rule.clone(),
        trigger: ResourceSpec {
            api_version: Some(if group.is_empty() {
                version
            } else {
                format!("{group}/{version}")
            }),
            kind: Some(get(TRIGGER_KIND)),
            namespace: (!trigger_namespace.is_empty()).then_some(trigger_namespace),
            name: None,
            uid: Some(uid.clone()),
        },
    })
}

/// Where a generated resource comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    /// The generating policy.
    pub policy: PolicyKey,
    /// The generating rule.
    pub rule: String,
    /// The trigger, by API version, kind, namespace and UID (labels do not carry its name).
    pub trigger: ResourceSpec,
}

/// The selector of the resources that `rule` of `policy` generated, for the trigger with
/// `trigger_uid` or for every trigger.
pub fn downstream_selector(policy: &PolicyKey, rule: &str, trigger_uid: Option<&str>) -> String {
    let mut selector = format!(
        "{MANAGED_BY}=kyverno,{POLICY_NAME}={},{RULE_NAME}={rule}",
        policy.name
    );
    if let Some(namespace) = &policy.namespace {
        selector.push_str(&format!(",{POLICY_NAMESPACE}={namespace}"));
    }
    if let Some(uid) = trigger_uid {
        selector.push_str(&format!(",{TRIGGER_UID}={uid}"));
    }
    selector
}

/// The selector of the resources that the GeneratingPolicy or NamespacedGeneratingPolicy
/// `policy` generated (they carry no rule name), for the trigger with `trigger_uid` or for every
/// trigger. A label selector cannot tell an empty `policy-namespace` label from a missing one:
/// the resources it finds for a GeneratingPolicy are filtered with [`is_cel_downstream_of`].
pub fn cel_downstream_selector(policy: &PolicyKey, trigger_uid: Option<&str>) -> String {
    let mut selector = format!(
        "{MANAGED_BY}=kyverno,{POLICY_NAME}={},!{RULE_NAME}",
        policy.name
    );
    if let Some(namespace) = &policy.namespace {
        selector.push_str(&format!(",{POLICY_NAMESPACE}={namespace}"));
    }
    if let Some(uid) = trigger_uid {
        selector.push_str(&format!(",{TRIGGER_UID}={uid}"));
    }
    selector
}

/// Whether a resource that [`cel_downstream_selector`] found for `policy` is the policy's own:
/// its `policy-namespace` label is the policy's namespace, and is empty or missing (downstream
/// labelled before the label was written) for a GeneratingPolicy, so that a GeneratingPolicy
/// and a NamespacedGeneratingPolicy of the same name keep their downstream apart.
pub fn is_cel_downstream_of(policy: &PolicyKey, labels: &Labels) -> bool {
    labels.get(POLICY_NAMESPACE).map_or("", String::as_str)
        == policy.namespace.as_deref().unwrap_or_default()
}

/// The GeneratingPolicy or NamespacedGeneratingPolicy that generated a resource without rule
/// name, by its `policy-name` and `policy-namespace` labels; `None` when it names none.
pub fn cel_origin_of(labels: &Labels) -> Option<PolicyKey> {
    if labels.contains_key(RULE_NAME) {
        return None;
    }
    let name = labels.get(POLICY_NAME).filter(|name| !name.is_empty())?;
    let namespace = labels
        .get(POLICY_NAMESPACE)
        .filter(|namespace| !namespace.is_empty());
    Some(PolicyKey {
        namespace: namespace.cloned(),
        name: name.clone(),
    })
}

/// The selector of the clones of the source `kind` `namespace`/`name`.
pub fn clones_selector(kind: &str, namespace: &str, name: &str) -> String {
    format!("{SOURCE_KIND}={kind},{SOURCE_NAMESPACE}={namespace},{SOURCE_NAME}={name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn origin_of_a_generated_resource() {
        let origin = origin_of(&labels(&[
            (POLICY_NAME, "p"),
            (POLICY_NAMESPACE, ""),
            (RULE_NAME, "r"),
            (TRIGGER_GROUP, "apps"),
            (TRIGGER_VERSION, "v1"),
            (TRIGGER_KIND, "Deployment"),
            (TRIGGER_NAMESPACE, "ns"),
            (TRIGGER_UID, "u-1"),
        ]))
        .expect("all labels present");
        assert_eq!(origin.policy.namespace, None);
        assert_eq!(origin.rule, "r");
        assert_eq!(origin.trigger.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(origin.trigger.namespace.as_deref(), Some("ns"));
        assert_eq!(origin.trigger.uid.as_deref(), Some("u-1"));

        let core = origin_of(&labels(&[
            (POLICY_NAME, "p"),
            (POLICY_NAMESPACE, "team"),
            (RULE_NAME, "r"),
            (TRIGGER_VERSION, "v1"),
            (TRIGGER_KIND, "Namespace"),
            (TRIGGER_UID, "u-2"),
        ]))
        .expect("all labels present");
        assert_eq!(core.policy.namespace.as_deref(), Some("team"));
        assert_eq!(core.trigger.api_version.as_deref(), Some("v1"));
        assert_eq!(core.trigger.namespace, None);
    }

    #[test]
    fn no_origin_without_the_trigger_uid() {
        assert_eq!(
            origin_of(&labels(&[(POLICY_NAME, "p"), (RULE_NAME, "r")])),
            None
        );
    }

    #[test]
    fn selectors() {
        let cluster = PolicyKey {
            namespace: None,
            name: "p".to_owned(),
        };
        assert_eq!(
            downstream_selector(&cluster, "r", Some("u")),
            "app.kubernetes.io/managed-by=kyverno,generate.kyverno.io/policy-name=p,\
             generate.kyverno.io/rule-name=r,generate.kyverno.io/trigger-uid=u"
        );
        let namespaced = PolicyKey {
            namespace: Some("team".to_owned()),
            name: "p".to_owned(),
        };
        assert!(
            downstream_selector(&namespaced, "r", None)
                .ends_with(",generate.kyverno.io/policy-namespace=team")
        );
        let gpol = PolicyKey {
            namespace: None,
            name: "g".to_owned(),
        };
        assert_eq!(
            cel_downstream_selector(&gpol, Some("u")),
            "app.kubernetes.io/managed-by=kyverno,generate.kyverno.io/policy-name=g,\
             !generate.kyverno.io/rule-name,generate.kyverno.io/trigger-uid=u"
        );
        let namespaced_gpol = PolicyKey {
            namespace: Some("team".to_owned()),
            name: "g".to_owned(),
        };
        assert_eq!(
            cel_downstream_selector(&namespaced_gpol, None),
            "app.kubernetes.io/managed-by=kyverno,generate.kyverno.io/policy-name=g,\
             !generate.kyverno.io/rule-name,generate.kyverno.io/policy-namespace=team"
        );
        assert_eq!(
            clones_selector("Secret", "default", "s"),
            "generate.kyverno.io/source-kind=Secret,generate.kyverno.io/source-namespace=default,\
             generate.kyverno.io/source-name=s"
        );
    }

    #[test]
    fn generating_policies_of_both_scopes_keep_their_downstream_apart() {
        let cluster_wide = PolicyKey {
            namespace: None,
            name: "g".to_owned(),
        };
        let namespaced = PolicyKey {
            namespace: Some("team".to_owned()),
            name: "g".to_owned(),
        };
        let of_cluster_wide = labels(&[(POLICY_NAME, "g"), (POLICY_NAMESPACE, "")]);
        let of_namespaced = labels(&[(POLICY_NAME, "g"), (POLICY_NAMESPACE, "team")]);
        let unlabelled = labels(&[(POLICY_NAME, "g")]);
        assert!(is_cel_downstream_of(&cluster_wide, &of_cluster_wide));
        assert!(is_cel_downstream_of(&cluster_wide, &unlabelled));
        assert!(!is_cel_downstream_of(&cluster_wide, &of_namespaced));
        assert!(is_cel_downstream_of(&namespaced, &of_namespaced));
        assert!(!is_cel_downstream_of(&namespaced, &of_cluster_wide));
        assert!(!is_cel_downstream_of(&namespaced, &unlabelled));

        assert_eq!(cel_origin_of(&of_cluster_wide), Some(cluster_wide.clone()));
        assert_eq!(cel_origin_of(&unlabelled), Some(cluster_wide));
        assert_eq!(cel_origin_of(&of_namespaced), Some(namespaced));
        let of_a_rule = labels(&[(POLICY_NAME, "g"), (RULE_NAME, "r")]);
        assert_eq!(cel_origin_of(&of_a_rule), None);
        assert_eq!(cel_origin_of(&Labels::new()), None);
    }
}
