//! What a change of the policies asks of the background controller, as upstream's policy
//! controller decides it: generate for existing triggers (`generateExisting`), mutate existing
//! targets (`mutateExistingOnPolicyUpdate`), bring synchronized downstream resources in line
//! with a changed rule, and delete the downstream resources of removed synchronized rules unless
//! `orphanDownstreamOnPolicyDelete`.
use std::collections::BTreeMap;
use std::sync::Arc;

use kyverno_api::kyverno::v1::rule::Rule;
use kyverno_policy_core::engine::{LoadedPolicy, mutates_existing_on_policy_update};
use kyverno_runtime::policy_cache::PolicyKey;

/// The policies with generate or mutate-existing rules, by key.
pub type BackgroundPolicies = BTreeMap<PolicyKey, Arc<LoadedPolicy>>;

/// One thing to do for one rule of a policy.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Queue generate UpdateRequests for the existing resources the rule matches.
    GenerateExisting(Arc<LoadedPolicy>, String),
    /// Queue mutate UpdateRequests for the existing resources the rule matches.
    MutateExisting(Arc<LoadedPolicy>, String),
    /// Queue generate UpdateRequests for the triggers of the rule's downstream resources.
    Resync(Arc<LoadedPolicy>, String),
    /// Delete every downstream resource of the rule (of a policy or rule that is gone).
    DeleteDownstream(Arc<LoadedPolicy>, String),
}

/// Whether `policy` has work for the background controller.
pub fn has_background_rules(policy: &LoadedPolicy) -> bool {
    policy.rules.iter().any(|rule| {
        rule.generate.is_some() || rule.mutate.as_ref().is_some_and(|m| !m.targets.is_empty())
    })
}

fn synchronized(rule: &Rule) -> bool {
    rule.generate
        .as_ref()
        .is_some_and(|generation| generation.synchronize == Some(true))
}

fn deletes_downstream(rule: &Rule) -> bool {
    synchronized(rule)
        && rule
            .generate
            .as_ref()
            .is_some_and(|generation| generation.orphan_downstream_on_policy_delete != Some(true))
}

fn generates_existing(policy: &LoadedPolicy, rule: &Rule) -> bool {
    rule.generate.as_ref().is_some_and(|generation| {
        generation
            .generate_existing
            .or(policy.spec.generate_existing)
            .or(policy.spec.generate_existing_on_policy_update)
            == Some(true)
    })
}

fn mutates_existing(rule: &Rule) -> bool {
    rule.mutate
        .as_ref()
        .is_some_and(|mutation| !mutation.targets.is_empty())
}

/// The actions that going from `previous` to `current` asks for, in policy then rule order.
pub fn actions(previous: &BackgroundPolicies, current: &BackgroundPolicies) -> Vec<Action> {
    let mut actions = Vec::new();
    for (key, policy) in current {
        let name = |rule: &Rule| rule.name.clone();
        let mutate_on_update = mutates_existing_on_policy_update(policy);
        match previous.get(key) {
            None => {
                for rule in &policy.rules {
                    if generates_existing(policy, rule) {
                        actions.push(Action::GenerateExisting(Arc::clone(policy), name(rule)));
                    }
                    if mutate_on_update && mutates_existing(rule) {
                        actions.push(Action::MutateExisting(Arc::clone(policy), name(rule)));
                    }
                }
            }
            Some(old) if old.spec != policy.spec => {
                for rule in &policy.rules {
                    let before = old
                        .rules
                        .iter()
                        .find(|candidate| candidate.name == rule.name);
                    if synchronized(rule)
                        && before.is_some_and(|before| before.generate != rule.generate)
                    {
                        actions.push(Action::Resync(Arc::clone(policy), name(rule)));
                    }
                    if generates_existing(policy, rule) && before.is_none() {
                        actions.push(Action::GenerateExisting(Arc::clone(policy), name(rule)));
                    }
                    if mutate_on_update && mutates_existing(rule) {
                        actions.push(Action::MutateExisting(Arc::clone(policy), name(rule)));
                    }
                }
                for rule in &old.rules {
                    let kept = policy.rules.iter().any(|candidate| {
                        candidate.name == rule.name && candidate.generate.is_some()
                    });
                    if !kept && deletes_downstream(rule) {
                        actions.push(Action::DeleteDownstream(Arc::clone(old), name(rule)));
                    }
                }
            }
            Some(_) => {}
        }
    }
    for (key, old) in previous {
        if current.contains_key(key) {
            continue;
        }
        for rule in old.rules.iter().filter(|rule| deletes_downstream(rule)) {
            actions.push(Action::DeleteDownstream(Arc::clone(old), rule.name.clone()));
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyverno_api::kyverno::v1::policy::ClusterPolicy;

    fn policy(name: &str, generate: serde_json::Value) -> Arc<LoadedPolicy> {
        let policy: ClusterPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": name},
            "spec": {"rules": [{
                "name": "gen",
                "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                "generate": generate
            }]}
        }))
        .expect("a ClusterPolicy");
        Arc::new(LoadedPolicy::from_cluster_policy(policy).expect("loads"))
    }

    fn set(policies: &[&Arc<LoadedPolicy>]) -> BackgroundPolicies {
        policies
            .iter()
            .map(|policy| {
                (
                    PolicyKey {
                        namespace: None,
                        name: policy.name.clone(),
                    },
                    Arc::clone(policy),
                )
            })
            .collect()
    }

    fn generation(
        synchronize: bool,
        orphan: bool,
        existing: bool,
        value: &str,
    ) -> serde_json::Value {
        serde_json::json!({
            "synchronize": synchronize,
            "orphanDownstreamOnPolicyDelete": orphan,
            "generateExisting": existing,
            "apiVersion": "v1", "kind": "ConfigMap", "name": "c",
            "namespace": "{{request.object.metadata.name}}",
            "data": {"data": {"k": value}}
        })
    }

    fn names(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|action| match action {
                Action::GenerateExisting(policy, rule) => {
                    format!("existing {}/{rule}", policy.name)
                }
                Action::MutateExisting(policy, rule) => format!("mutate {}/{rule}", policy.name),
                Action::Resync(policy, rule) => format!("resync {}/{rule}", policy.name),
                Action::DeleteDownstream(policy, rule) => format!("delete {}/{rule}", policy.name),
            })
            .collect()
    }

    #[test]
    fn a_new_policy_generates_for_existing_triggers_only_when_asked() {
        let existing = policy("a", generation(true, false, true, "1"));
        let not_existing = policy("b", generation(true, false, false, "1"));
        let actions = actions(
            &BackgroundPolicies::new(),
            &set(&[&existing, &not_existing]),
        );
        assert_eq!(names(&actions), vec!["existing a/gen"]);
    }

    #[test]
    fn a_changed_synchronized_rule_resyncs_its_downstream() {
        let before = policy("a", generation(true, false, false, "1"));
        let after = policy("a", generation(true, false, false, "2"));
        assert_eq!(
            names(&actions(&set(&[&before]), &set(&[&after]))),
            vec!["resync a/gen"]
        );
        let unsynchronized = policy("a", generation(false, false, false, "1"));
        let changed = policy("a", generation(false, false, false, "2"));
        assert!(actions(&set(&[&unsynchronized]), &set(&[&changed])).is_empty());
        assert!(actions(&set(&[&before]), &set(&[&before])).is_empty());
    }

    #[test]
    fn a_deleted_policy_deletes_synchronized_downstream_unless_orphaned() {
        let deleting = policy("a", generation(true, false, false, "1"));
        let orphaning = policy("b", generation(true, true, false, "1"));
        let unsynchronized = policy("c", generation(false, false, false, "1"));
        let actions = actions(
            &set(&[&deleting, &orphaning, &unsynchronized]),
            &BackgroundPolicies::new(),
        );
        assert_eq!(names(&actions), vec!["delete a/gen"]);
    }

    #[test]
    fn mutate_existing_on_policy_update() {
        let policy: ClusterPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "m"},
            "spec": {"rules": [{
                "name": "label",
                "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
                "mutate": {
                    "mutateExistingOnPolicyUpdate": true,
                    "targets": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "{{request.object.metadata.name}}"}],
                    "patchStrategicMerge": {"metadata": {"labels": {"x": "y"}}}
                }
            }]}
        }))
        .expect("a ClusterPolicy");
        let loaded = Arc::new(LoadedPolicy::from_cluster_policy(policy).expect("loads"));
        assert!(has_background_rules(&loaded));
        assert_eq!(
            names(&actions(&BackgroundPolicies::new(), &set(&[&loaded]))),
            vec!["mutate m/label"]
        );
    }
}
