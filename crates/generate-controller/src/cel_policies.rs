//! What a change of the `policies.kyverno.io` policies asks of the background controller:
//! GeneratingPolicies generate for existing triggers (`evaluation.generateExisting`), bring
//! their synchronized downstream resources in line with a changed policy
//! (`evaluation.synchronize`), and take them away with the policy unless
//! `evaluation.orphanDownstreamOnPolicyDelete`; MutatingPolicies that mutate existing
//! resources (`evaluation.mutateExisting`) run on the targets of the existing triggers when
//! they are created or changed.
use std::collections::BTreeMap;
use std::sync::Arc;

use kyverno_runtime::cel_policies::{CachedCelPolicy, CompiledCel};
use kyverno_runtime::policy_cache::PolicyKey;

use crate::generating::{GeneratingSet, LoadedGenerating};

/// The MutatingPolicies that mutate existing resources, by key.
pub type MutatingSet = BTreeMap<PolicyKey, Arc<CachedCelPolicy>>;

/// One thing to do for one policy.
#[derive(Clone, Debug)]
pub enum CelAction {
    /// Queue `cel-generate` UpdateRequests for the existing triggers of the policy.
    GenerateExisting(Arc<LoadedGenerating>),
    /// Queue `cel-generate` UpdateRequests for the triggers of the policy's downstream.
    Resync(Arc<LoadedGenerating>),
    /// Find the kinds of the downstream of a synchronized policy, to restore it when it is
    /// changed by hand.
    Track(Arc<LoadedGenerating>),
    /// Delete every downstream resource of the (deleted) GeneratingPolicy.
    DeleteDownstream(PolicyKey),
    /// Queue `cel-mutate` UpdateRequests for the existing triggers of the policy.
    MutateExisting(Arc<CachedCelPolicy>),
}

/// The MutatingPolicies of `cel` that mutate existing resources.
pub fn mutating_set<'a>(cel: impl IntoIterator<Item = &'a Arc<CachedCelPolicy>>) -> MutatingSet {
    cel.into_iter()
        .filter(|cached| {
            matches!(&cached.compiled, CompiledCel::Mutating(policy) if policy.mutates_existing())
        })
        .map(|cached| (cached.key.clone(), Arc::clone(cached)))
        .collect()
}

/// The actions that going from `previous` to `current` GeneratingPolicies asks for.
pub fn generating_actions(previous: &GeneratingSet, current: &GeneratingSet) -> Vec<CelAction> {
    let mut actions = Vec::new();
    for (key, policy) in current {
        let settings = policy.compiled.settings();
        match previous.get(key) {
            None => {
                if settings.synchronize {
                    actions.push(CelAction::Track(Arc::clone(policy)));
                }
                if settings.generate_existing {
                    actions.push(CelAction::GenerateExisting(Arc::clone(policy)));
                }
            }
            Some(old) if old.spec != policy.spec && settings.synchronize => {
                actions.push(CelAction::Resync(Arc::clone(policy)));
            }
            Some(_) => {}
        }
    }
    for (key, old) in previous {
        let settings = old.compiled.settings();
        if !current.contains_key(key)
            && settings.synchronize
            && !settings.orphan_downstream_on_policy_delete
        {
            actions.push(CelAction::DeleteDownstream(key.clone()));
        }
    }
    actions
}

/// The actions that going from `previous` to `current` mutate-existing MutatingPolicies asks
/// for: every new or recompiled (changed) policy runs on the existing triggers.
pub fn mutating_actions(previous: &MutatingSet, current: &MutatingSet) -> Vec<CelAction> {
    current
        .iter()
        .filter(|(key, policy)| {
            previous
                .get(*key)
                .is_none_or(|old| !Arc::ptr_eq(old, policy))
        })
        .map(|(_, policy)| CelAction::MutateExisting(Arc::clone(policy)))
        .collect()
}

#[cfg(test)]
mod tests {
    use kyverno_api::policies::generating::Spec;

    use super::*;

    fn policy(name: &str, evaluation: serde_json::Value, value: &str) -> Arc<LoadedGenerating> {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "evaluation": evaluation,
            "generate": [{"template": {"value": value}}]
        }))
        .expect("a spec");
        let key = PolicyKey {
            namespace: None,
            name: name.to_owned(),
        };
        Arc::new(LoadedGenerating::compile(key, spec, &[]).expect("compiles"))
    }

    fn set(policies: &[&Arc<LoadedGenerating>]) -> GeneratingSet {
        policies
            .iter()
            .map(|policy| (policy.key.clone(), Arc::clone(policy)))
            .collect()
    }

    fn names(actions: &[CelAction]) -> Vec<String> {
        actions
            .iter()
            .map(|action| match action {
                CelAction::GenerateExisting(policy) => format!("existing {}", policy.key),
                CelAction::Resync(policy) => format!("resync {}", policy.key),
                CelAction::Track(policy) => format!("track {}", policy.key),
                CelAction::DeleteDownstream(key) => format!("delete {key}"),
                CelAction::MutateExisting(policy) => format!("mutate {}", policy.key),
            })
            .collect()
    }

    #[test]
    fn generating_policies_follow_their_evaluation_switches() {
        let existing = policy(
            "a",
            serde_json::json!({"generateExisting": {"enabled": true}}),
            "kind: ConfigMap",
        );
        let plain = policy("b", serde_json::json!({}), "kind: ConfigMap");
        assert_eq!(
            names(&generating_actions(
                &GeneratingSet::new(),
                &set(&[&existing, &plain])
            )),
            ["existing a"]
        );
        let synced = serde_json::json!({"synchronize": {"enabled": true}});
        let before = policy("s", synced.clone(), "kind: ConfigMap");
        assert_eq!(
            names(&generating_actions(&GeneratingSet::new(), &set(&[&before]))),
            ["track s"]
        );
        let after = policy("s", synced.clone(), "kind: Secret");
        assert_eq!(
            names(&generating_actions(&set(&[&before]), &set(&[&after]))),
            ["resync s"]
        );
        assert!(generating_actions(&set(&[&before]), &set(&[&before])).is_empty());
        let orphaning = policy(
            "o",
            serde_json::json!({"synchronize": {"enabled": true},
                "orphanDownstreamOnPolicyDelete": {"enabled": true}}),
            "kind: ConfigMap",
        );
        assert_eq!(
            names(&generating_actions(
                &set(&[&before, &orphaning, &plain]),
                &GeneratingSet::new()
            )),
            ["delete s"]
        );
    }
}
