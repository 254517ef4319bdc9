//! Background checks: which generate and mutate-existing rules of a policy an admission request
//! triggers, as upstream's webhook decides before it queues UpdateRequests
//! (`ApplyBackgroundChecks`). Only matching, context entries, preconditions and exceptions are
//! evaluated; nothing is generated or mutated (the background controller does it).
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::ApplyRules;
use kyverno_api::kyverno::v1::rule::Rule;

use super::{Environment, LoadedPolicy, PolicyRun, Prelude};
use crate::matching::rule_matches;
use crate::request::ResourceRequest;
use crate::response::{PolicyResponse, RuleResponse, RuleStatus, RuleType};

/// The background checks of `policy`'s generate and mutate-existing (`mutate.targets`) rules for
/// the admission `request`, one response per rule, in rule order:
/// - `pass`: the rule matches and its preconditions hold: an UpdateRequest is due;
/// - `fail`: a generate rule that does not match the new object but matched the old one (an
///   UPDATE that makes the trigger leave the rule): its synchronized downstream goes;
/// - `skip`/`error`: preconditions not met, an exception, or a context or precondition error.
///
/// Rules that match neither object have no response. With `applyRules: One`, the checks stop
/// after the first rule that is not skipped.
pub fn background_checks(
    policy: &LoadedPolicy,
    request: &ResourceRequest,
    environment: &Environment<'_>,
) -> PolicyResponse {
    let run = PolicyRun::new(policy, request, environment);
    let request = run.request.as_ref();
    let mut response = PolicyResponse::default();
    for rule in &policy.rules {
        let Some(rule_type) = background_type(rule) else {
            continue;
        };
        let answer = match run.prelude(rule, rule_type, false, request) {
            Prelude::Run { .. } => rule_response(rule, rule_type, RuleStatus::Pass),
            Prelude::Answered(answer) => answer,
            Prelude::Unmatched if rule_type == RuleType::Generation => {
                if old_object_matched(rule, policy, request) {
                    rule_response(rule, rule_type, RuleStatus::Fail)
                } else {
                    continue;
                }
            }
            Prelude::Unmatched => continue,
        };
        let stop =
            answer.status != RuleStatus::Skip && policy.spec.apply_rules == Some(ApplyRules::One);
        response.rules.push(answer);
        if stop {
            break;
        }
    }
    response
}

/// The type of a rule the background controller runs: generate, or mutate with targets.
fn background_type(rule: &Rule) -> Option<RuleType> {
    if rule.generate.is_some() {
        Some(RuleType::Generation)
    } else if rule
        .mutate
        .as_ref()
        .is_some_and(|mutation| !mutation.targets.is_empty())
    {
        Some(RuleType::Mutation)
    } else {
        None
    }
}

/// Whether, on an UPDATE, the old object matched `rule`.
fn old_object_matched(rule: &Rule, policy: &LoadedPolicy, request: &ResourceRequest) -> bool {
    if request.operation() != Some(AdmissionOperation::Update) {
        return false;
    }
    let Some(old) = request.old_resource() else {
        return false;
    };
    let old_request = request.clone().with_resource(std::sync::Arc::clone(old));
    rule_matches(rule, policy.namespace.as_deref(), &old_request).is_ok()
}

fn rule_response(rule: &Rule, rule_type: RuleType, status: RuleStatus) -> RuleResponse {
    RuleResponse {
        name: rule.name.clone(),
        rule_type,
        status,
        message: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kyverno_api::kyverno::v1::policy::ClusterPolicy;
    use serde_json::json;

    use super::*;
    use crate::engine::{ContextProvider, Lookup, NoExternalData, ProviderError, SuppliedValues};

    fn policy(rules: serde_json::Value) -> LoadedPolicy {
        let policy: ClusterPolicy = serde_json::from_value(json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "background"}, "spec": {"rules": rules}
        }))
        .expect("valid policy");
        LoadedPolicy::from_cluster_policy(policy).expect("loads")
    }

    fn namespace(labels: serde_json::Value) -> Arc<serde_json::Value> {
        Arc::new(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team", "labels": labels}}))
    }

    fn check(policy: &LoadedPolicy, request: &ResourceRequest) -> Vec<(String, RuleStatus)> {
        let environment = Environment {
            provider: &NoExternalData,
            exceptions: &[],
            values: &SuppliedValues::default(),
        };
        background_checks(policy, request, &environment)
            .rules
            .into_iter()
            .map(|rule| (rule.name, rule.status))
            .collect()
    }

    fn rules() -> serde_json::Value {
        let selected = json!({"any": [{"resources": {"kinds": ["Namespace"],
            "selector": {"matchLabels": {"quota": "on"}}}}]});
        json!([
            {"name": "quota", "match": selected,
             "generate": {"apiVersion": "v1", "kind": "ResourceQuota", "name": "q",
                "namespace": "{{request.object.metadata.name}}", "synchronize": true, "data": {}}},
            {"name": "gated", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
             "preconditions": {"all": [{"key": "{{request.object.metadata.name}}", "operator": "Equals", "value": "other"}]},
             "generate": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "namespace": "x", "data": {}}},
            {"name": "touch", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
             "mutate": {"targets": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "x"}],
                "patchStrategicMerge": {"metadata": {"labels": {"seen": "yes"}}}}},
            {"name": "validate", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
             "validate": {"pattern": {"metadata": {"name": "?*"}}}}
        ])
    }

    #[test]
    fn matching_rules_pass_and_preconditions_skip() {
        let policy = policy(rules());
        let request = ResourceRequest::new(namespace(json!({"quota": "on"})))
            .with_operation(AdmissionOperation::Create);
        assert_eq!(
            check(&policy, &request),
            [
                ("quota".to_owned(), RuleStatus::Pass),
                ("gated".to_owned(), RuleStatus::Skip),
                ("touch".to_owned(), RuleStatus::Pass),
            ]
        );
    }

    #[test]
    fn a_trigger_leaving_a_generate_rule_fails_it() {
        let policy = policy(rules());
        let request = ResourceRequest::new(namespace(json!({})))
            .with_old_resource(namespace(json!({"quota": "on"})))
            .with_operation(AdmissionOperation::Update);
        let results = check(&policy, &request);
        assert_eq!(results[0], ("quota".to_owned(), RuleStatus::Fail));
        let created =
            ResourceRequest::new(namespace(json!({}))).with_operation(AdmissionOperation::Create);
        assert!(
            check(&policy, &created)
                .iter()
                .all(|(name, _)| name != "quota")
        );
    }

    /// A cluster holding one ConfigMap, `x/target`.
    struct OneConfigMap;

    impl OneConfigMap {
        fn target() -> serde_json::Value {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "target", "namespace": "x", "resourceVersion": "1"}})
        }
    }

    impl ContextProvider for OneConfigMap {
        fn config_map(&self, _: &str, _: &str) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Unavailable)
        }
        fn api_call(
            &self,
            _: &str,
            _: &str,
            _: Option<&serde_json::Value>,
        ) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Unavailable)
        }
        fn service_call(
            &self,
            _: &str,
            _: &str,
            _: Option<&serde_json::Value>,
        ) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Unavailable)
        }
        fn global_context(&self, _: &str) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Unavailable)
        }
        fn image_data(&self, _: &str) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Unavailable)
        }
        fn get_resource(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Found(Self::target()))
        }
        fn list_resources(&self, _: &str, _: &str, _: &str) -> Result<Lookup, ProviderError> {
            Ok(Lookup::Found(json!([Self::target()])))
        }
    }

    #[test]
    fn admission_mutation_leaves_target_rules_to_the_background() {
        let policy = policy(json!([
            {"name": "label", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
             "mutate": {"patchStrategicMerge": {"metadata": {"labels": {"team": "blue"}}}}},
            {"name": "touch", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]},
             "mutate": {"targets": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "x"}],
                "patchStrategicMerge": {"metadata": {"labels": {"seen": "yes"}}}}}
        ]));
        let request =
            ResourceRequest::new(namespace(json!({}))).with_operation(AdmissionOperation::Create);
        let environment = Environment {
            provider: &OneConfigMap,
            exceptions: &[],
            values: &SuppliedValues::default(),
        };
        let admitted = crate::engine::mutate_admission(&policy, &request, &environment);
        let names: Vec<&str> = admitted
            .rules
            .iter()
            .map(|rule| rule.name.as_str())
            .collect();
        assert_eq!(names, ["label"]);
        assert_eq!(admitted.patched["metadata"]["labels"]["team"], "blue");
        assert!(admitted.targets.is_empty());
        let everything = crate::engine::mutate(&policy, &request, &environment);
        assert!(everything.rules.iter().any(|rule| rule.name == "touch"));
    }
}
