//! CleanupPolicy and ClusterCleanupPolicy (`kyverno.io/v2`): whether an existing resource is to
//! be deleted, as upstream's cleanup controller decides it.
//!
//! A resource is to be deleted when the policy's `match` block selects it, its `exclude` block
//! does not, and its `conditions` hold. A CleanupPolicy only considers resources of its own
//! namespace. Matching is done as for a background scan (no requester, so user conditions are
//! ignored). The conditions see `target` (the resource), `request.namespace` (its namespace),
//! `images` (its images) and the policy's context entries, loaded once per resource.
use std::collections::BTreeMap;
use std::sync::Arc;

use kyverno_api::kyverno::v1::rule::Rule;
use kyverno_api::kyverno::v2::cleanup_policy::Spec;
use serde_json::{Value, json};

use super::EngineError;
use super::context::RuleContext;
use super::provider::ContextProvider;
use crate::conditions::Conditions;
use crate::matching::rule_matches;
use crate::request::ResourceRequest;

/// What a cleanup policy decides for one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CleanupDecision {
    /// Selected, not excluded, and the conditions hold: delete it.
    Delete,
    /// Not selected, excluded, or a condition does not hold.
    Keep,
    /// A context entry or a condition could not be evaluated: keep it, reporting why.
    Error(String),
}

/// A cleanup policy prepared once and evaluated per resource.
#[derive(Clone, Debug)]
pub struct CleanupMatcher {
    /// The policy's `match`/`exclude` as a rule, for the rule matcher.
    rule: Rule,
    namespace: Option<String>,
    conditions: Option<Conditions>,
}

impl CleanupMatcher {
    /// Prepares the policy `name` (in `namespace` for a CleanupPolicy) with `spec`.
    pub fn new(name: &str, namespace: Option<&str>, spec: &Spec) -> Self {
        Self {
            rule: Rule {
                name: name.to_owned(),
                context: spec.context.clone(),
                match_resources: spec.match_resources.clone(),
                exclude: spec.exclude.clone(),
                ..Rule::default()
            },
            namespace: namespace.map(str::to_owned),
            conditions: spec.conditions.as_ref().map(Conditions::from),
        }
    }

    /// Whether `target` is to be deleted; `namespace_labels` are the labels of its namespace
    /// (for namespace selectors) and `provider` answers the context entries.
    pub fn decide(
        &self,
        target: &Value,
        namespace_labels: BTreeMap<String, String>,
        provider: &dyn ContextProvider,
    ) -> CleanupDecision {
        let request = ResourceRequest::new(Arc::new(target.clone()))
            .with_namespace_labels(Arc::new(namespace_labels));
        if rule_matches(&self.rule, self.namespace.as_deref(), &request).is_err() {
            return CleanupDecision::Keep;
        }
        let Some(conditions) = &self.conditions else {
            return CleanupDecision::Delete;
        };
        match self.conditions_hold(conditions, &request, provider) {
            Ok(true) => CleanupDecision::Delete,
            Ok(false) => CleanupDecision::Keep,
            Err(error) => CleanupDecision::Error(error.to_string()),
        }
    }

    fn conditions_hold(
        &self,
        conditions: &Conditions,
        request: &ResourceRequest,
        provider: &dyn ContextProvider,
    ) -> Result<bool, EngineError> {
        let target = request.resource();
        let mut context = RuleContext::default();
        context.set_variable("target", target.as_ref().clone());
        context.set_variable("request", json!({"namespace": request.namespace()}));
        let images = crate::images::extract_images(target, &BTreeMap::new()).unwrap_or_default();
        if images.as_object().is_some_and(|images| !images.is_empty()) {
            context.set_variable("images", images);
        }
        context.load_entries(&self.rule.context, provider)?;
        let verdict = conditions.evaluate(|value| context.substitute(value))?;
        Ok(verdict.holds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NoExternalData;

    fn spec(json: Value) -> Spec {
        serde_json::from_value(json).expect("a cleanup policy spec")
    }

    fn pod(namespace: &str, name: &str, owned: bool) -> Value {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}
        });
        if owned {
            pod["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1"}]);
        }
        pod
    }

    fn bare_pods() -> CleanupMatcher {
        let spec = spec(json!({
            "schedule": "*/5 * * * *",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "exclude": {"any": [{"resources": {"namespaces": ["kube-*"]}}]},
            "context": [{"name": "owners", "variable": {"jmesPath": "target.metadata.ownerReferences || `[]`"}}],
            "conditions": {"all": [
                {"key": "{{ length(owners) }}", "operator": "Equals", "value": 0},
                {"key": "{{ images.containers.c.name }}", "operator": "Equals", "value": "nginx"},
                {"key": "{{ request.namespace }}", "operator": "NotEquals", "value": "keep"}
            ]}
        }));
        CleanupMatcher::new("bare-pods", None, &spec)
    }

    #[test]
    fn match_exclude_and_conditions_decide() {
        let matcher = bare_pods();
        let decide = |resource: &Value| matcher.decide(resource, BTreeMap::new(), &NoExternalData);
        assert_eq!(decide(&pod("apps", "bare", false)), CleanupDecision::Delete);
        assert_eq!(decide(&pod("apps", "owned", true)), CleanupDecision::Keep);
        assert_eq!(
            decide(&pod("kube-system", "bare", false)),
            CleanupDecision::Keep
        );
        assert_eq!(decide(&pod("keep", "bare", false)), CleanupDecision::Keep);
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "apps"}});
        assert_eq!(decide(&config_map), CleanupDecision::Keep);
    }

    #[test]
    fn a_cleanup_policy_only_sees_its_namespace_and_errors_keep() {
        let spec = spec(json!({
            "schedule": "* * * * *",
            "match": {"any": [{"resources": {"kinds": ["Pod"], "selector": {"matchLabels": {"app": "web"}}}}]},
            "conditions": {"any": [{"key": "{{ target.missing.field }}", "operator": "Equals", "value": 1}]}
        }));
        let matcher = CleanupMatcher::new("p", Some("apps"), &spec);
        assert_eq!(
            matcher.decide(
                &pod("other", "bare", false),
                BTreeMap::new(),
                &NoExternalData
            ),
            CleanupDecision::Keep
        );
        assert!(matches!(
            matcher.decide(
                &pod("apps", "bare", false),
                BTreeMap::new(),
                &NoExternalData
            ),
            CleanupDecision::Error(_)
        ));
    }
}
