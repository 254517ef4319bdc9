//! Kubernetes ValidatingAdmissionPolicy with its ValidatingAdmissionPolicyBindings, evaluated
//! offline as upstream Kyverno's CLI does (`pkg/admissionpolicy`, without a cluster).
//!
//! Without bindings the policy's `matchConstraints` select the request. With bindings, every
//! binding of the policy is tried in order: one whose `matchResources` (when set) selects the
//! request evaluates the policy with the parameters its `paramRef` picks among the supplied
//! parameter resources (by name and namespace, or all the resources its selector matches, as a
//! list under `items`); the last evaluated binding gives the result. The policy's own
//! `matchConstraints` are not consulted then. The result is one rule named after the policy:
//! `skip` when a match condition is false, `error` when a match condition, variable or
//! validation fails to evaluate, `fail` with the first denying validation's message
//! (Kubernetes' rules: `messageExpression`, `message`, `failed expression: ...`), else `pass`.
//! The binding's `validationActions` do not change the result.
use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MatchResources, ParamRef, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    ValidatingAdmissionPolicySpec,
};
use serde_json::{Value, json};

use super::activation::Activation;
use super::common::{compile_validations, compile_variables, select_params};
use super::matching::{self, MatchRequest};
use super::resources::GroupVersionResource;
use super::validating::PolicyCompileError;
use super::validations::{
    CompiledMatchConditions, CompiledValidation, MatchOutcome, ValidationOutcome,
};
use super::variables::{CompileError, CompiledVariables, Evaluator};
use crate::cel;
use crate::request::ResourceRequest;
use crate::response::{PolicyResponse, RuleResponse, RuleStatus, RuleType};

const KIND: &str = "ValidatingAdmissionPolicy";

/// A ValidatingAdmissionPolicy and its bindings, compiled.
#[derive(Debug)]
pub struct CompiledAdmissionPolicy {
    name: String,
    match_constraints: Option<MatchResources>,
    match_conditions: CompiledMatchConditions,
    variables: CompiledVariables,
    validations: Vec<CompiledValidation>,
    bindings: Vec<Binding>,
}

/// What the evaluation needs of a binding.
#[derive(Debug)]
struct Binding {
    match_resources: Option<MatchResources>,
    param_ref: Option<ParamRef>,
}

impl CompiledAdmissionPolicy {
    /// Compiles `policy` with the bindings (among `bindings`) whose `policyName` names it.
    pub fn compile<'b>(
        policy: &ValidatingAdmissionPolicy,
        bindings: impl IntoIterator<Item = &'b ValidatingAdmissionPolicyBinding>,
    ) -> Result<Self, PolicyCompileError> {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let compiled = compile_spec(policy).map_err(|source| PolicyCompileError::Expression {
            kind: KIND,
            policy: name.clone(),
            source,
        })?;
        let (match_conditions, variables, validations) = compiled;
        let bindings = bindings
            .into_iter()
            .map(|binding| &binding.spec)
            .filter(|spec| spec.policy_name == name)
            .map(|spec| Binding {
                match_resources: spec.match_resources.clone(),
                param_ref: spec.param_ref.clone(),
            })
            .collect();
        Ok(Self {
            match_constraints: policy
                .spec
                .as_ref()
                .and_then(|spec| spec.match_constraints.clone()),
            name,
            match_conditions,
            variables,
            validations,
            bindings,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Evaluates the policy on a resource `request` for the endpoint `resource`, in a namespace
    /// labelled `namespace_labels` (upstream's CLI takes them from the values file), with the
    /// parameter resources `params`. The response is empty when the policy does not apply.
    pub fn evaluate(
        &self,
        request: &ResourceRequest,
        resource: &GroupVersionResource,
        namespace_labels: &BTreeMap<String, String>,
        params: &[Value],
    ) -> PolicyResponse {
        let match_request = MatchRequest::from_request(request, resource, None);
        let namespace = (!match_request.namespace.is_empty()).then(|| {
            let mut metadata = json!({"name": match_request.namespace});
            if !namespace_labels.is_empty() {
                metadata["labels"] = json!(namespace_labels);
            }
            json!({"metadata": metadata})
        });
        let match_request = MatchRequest {
            namespace_object: namespace.as_ref(),
            ..match_request
        };
        let selected = |constraints: &MatchResources| {
            matching::matches(constraints, &match_request).unwrap_or(false)
        };
        let mut rules = Vec::new();
        if self.bindings.is_empty() {
            if self.match_constraints.as_ref().is_some_and(selected) {
                let activation = Activation::new(request, resource, namespace.as_ref());
                rules.push(self.validate(&activation, None));
            }
        } else {
            let mut activation = None;
            for binding in &self.bindings {
                if binding
                    .match_resources
                    .as_ref()
                    .is_some_and(|c| !selected(c))
                {
                    continue;
                }
                let activation = activation
                    .get_or_insert_with(|| Activation::new(request, resource, namespace.as_ref()));
                let params = binding
                    .param_ref
                    .as_ref()
                    .and_then(|param_ref| select_params(param_ref, params));
                rules = vec![self.validate(activation, params.as_ref())];
            }
        }
        PolicyResponse { rules }
    }

    /// Kyverno's reading of the Kubernetes validator's decisions.
    fn validate(&self, activation: &Activation, params: Option<&Value>) -> RuleResponse {
        let mut evaluator = Evaluator::new(activation, &self.variables, params.map(cel::from_json));
        let (status, message) = match self.match_conditions.evaluate(&mut evaluator) {
            MatchOutcome::NotMatched { .. } => {
                (RuleStatus::Skip, "match conditions aren't met".to_owned())
            }
            MatchOutcome::Error(error) => (RuleStatus::Error, error),
            MatchOutcome::Matched => self
                .validations
                .iter()
                .find_map(|validation| match validation.evaluate(&mut evaluator) {
                    ValidationOutcome::Pass => None,
                    ValidationOutcome::Fail { message, .. } => Some((RuleStatus::Fail, message)),
                    ValidationOutcome::Error(error) => Some((RuleStatus::Error, error)),
                })
                .unwrap_or((RuleStatus::Pass, String::new())),
        };
        RuleResponse {
            name: self.name.clone(),
            rule_type: RuleType::Validation,
            status,
            message,
        }
    }
}

type CompiledSpec = (
    CompiledMatchConditions,
    CompiledVariables,
    Vec<CompiledValidation>,
);

fn compile_spec(policy: &ValidatingAdmissionPolicy) -> Result<CompiledSpec, CompileError> {
    let default = ValidatingAdmissionPolicySpec::default();
    let spec = policy.spec.as_ref().unwrap_or(&default);
    let variables = compile_variables(
        spec.variables.as_deref().unwrap_or_default(),
        "spec.variables",
    )?;
    let match_conditions = CompiledMatchConditions::compile(
        spec.match_conditions.as_deref().unwrap_or_default(),
        &variables,
        "spec.matchConditions",
    )?;
    let validations = compile_validations(
        spec.validations.as_deref().unwrap_or_default(),
        &variables,
        "spec.validations",
    )?;
    Ok((match_conditions, variables, validations))
}

#[cfg(test)]
mod tests {
    use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;

    use super::*;

    fn policy(spec: Value) -> ValidatingAdmissionPolicy {
        serde_json::from_value(json!({"metadata": {"name": "replicas"}, "spec": spec}))
            .expect("policy")
    }

    fn binding(spec: Value) -> ValidatingAdmissionPolicyBinding {
        let mut spec = spec;
        spec["policyName"] = json!("replicas");
        serde_json::from_value(json!({"metadata": {"name": "b"}, "spec": spec})).expect("binding")
    }

    fn deployments_spec(validations: Value) -> Value {
        json!({
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
            "validations": validations
        })
    }

    fn deployment(name: &str, namespace: &str, replicas: i64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
               "spec": {"replicas": replicas}})
    }

    struct Case<'a> {
        policy: &'a CompiledAdmissionPolicy,
        labels: BTreeMap<String, String>,
        params: Vec<Value>,
    }

    impl Case<'_> {
        fn run(&self, resource: Value) -> Vec<(String, RuleStatus, String)> {
            let request = ResourceRequest::new(resource).with_operation(AdmissionOperation::Create);
            let gvr = GroupVersionResource::new("apps", "v1", "deployments");
            self.policy
                .evaluate(&request, &gvr, &self.labels, &self.params)
                .rules
                .into_iter()
                .map(|rule| (rule.name, rule.status, rule.message))
                .collect()
        }
    }

    fn case(policy: &CompiledAdmissionPolicy) -> Case<'_> {
        Case {
            policy,
            labels: BTreeMap::new(),
            params: Vec::new(),
        }
    }

    fn rule(status: RuleStatus, message: &str) -> Vec<(String, RuleStatus, String)> {
        vec![("replicas".to_owned(), status, message.to_owned())]
    }

    #[test]
    fn without_bindings_the_policy_constraints_select() {
        let compiled = CompiledAdmissionPolicy::compile(
            &policy(deployments_spec(
                json!([{"expression": "object.spec.replicas <= 2"}]),
            )),
            [],
        )
        .expect("compiles");
        let case = case(&compiled);
        assert_eq!(
            case.run(deployment("a", "default", 1)),
            rule(RuleStatus::Pass, "")
        );
        assert_eq!(
            case.run(deployment("a", "default", 3)),
            rule(
                RuleStatus::Fail,
                "failed expression: object.spec.replicas <= 2"
            )
        );
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let request = ResourceRequest::new(pod);
        let gvr = GroupVersionResource::new("", "v1", "pods");
        assert!(
            compiled
                .evaluate(&request, &gvr, &BTreeMap::new(), &[])
                .rules
                .is_empty()
        );
    }

    #[test]
    fn match_conditions_skip_and_errors_are_errors() {
        let mut spec = deployments_spec(json!([{"expression": "false", "message": "no"}]));
        spec["matchConditions"] =
            json!([{"name": "nginx", "expression": "object.metadata.name == 'nginx'"}]);
        let compiled = CompiledAdmissionPolicy::compile(&policy(spec), []).expect("compiles");
        let case = case(&compiled);
        assert_eq!(
            case.run(deployment("busybox", "default", 1)),
            rule(RuleStatus::Skip, "match conditions aren't met")
        );
        assert_eq!(
            case.run(deployment("nginx", "default", 1)),
            rule(RuleStatus::Fail, "no")
        );
        let compiled = CompiledAdmissionPolicy::compile(
            &policy(deployments_spec(
                json!([{"expression": "object.spec.missing > 1"}]),
            )),
            [],
        )
        .expect("compiles");
        let result = self::case(&compiled).run(deployment("a", "default", 1));
        assert_eq!(result[0].1, RuleStatus::Error);
        assert!(
            result[0]
                .2
                .starts_with("expression 'object.spec.missing > 1' resulted in error"),
            "{result:?}"
        );
    }

    #[test]
    fn bindings_select_with_their_own_resources() {
        let spec = deployments_spec(json!([{"expression": "object.spec.replicas <= 2"}]));
        let bindings = [
            binding(json!({"validationActions": ["Deny"], "matchResources": {
                "objectSelector": {"matchLabels": {"app": "nginx"}}}})),
            serde_json::from_value(json!({"metadata": {"name": "other"},
                "spec": {"policyName": "other", "validationActions": ["Deny"]}}))
            .expect("binding"),
        ];
        let compiled =
            CompiledAdmissionPolicy::compile(&policy(spec), &bindings).expect("compiles");
        let case = case(&compiled);
        assert_eq!(
            case.run(deployment("nginx", "default", 3)),
            rule(
                RuleStatus::Fail,
                "failed expression: object.spec.replicas <= 2"
            )
        );
        assert!(case.run(deployment("busybox", "default", 3)).is_empty());
    }

    #[test]
    fn namespace_labels_select_and_name_the_namespace_object() {
        let spec = deployments_spec(
            json!([{"expression": "namespaceObject.metadata.name != 'default'",
            "message": "default namespace"}]),
        );
        let bindings = [binding(
            json!({"validationActions": ["Deny"], "matchResources": {
            "namespaceSelector": {"matchExpressions": [
                {"key": "environment", "operator": "In", "values": ["staging", "default"]}]}}}),
        )];
        let compiled =
            CompiledAdmissionPolicy::compile(&policy(spec), &bindings).expect("compiles");
        let mut case = case(&compiled);
        assert!(case.run(deployment("a", "default", 1)).is_empty());
        case.labels = BTreeMap::from([("environment".to_owned(), "default".to_owned())]);
        assert_eq!(
            case.run(deployment("a", "default", 1)),
            rule(RuleStatus::Fail, "default namespace")
        );
        assert_eq!(
            case.run(deployment("a", "staging", 1)),
            rule(RuleStatus::Pass, "")
        );
    }

    #[test]
    fn params_are_picked_by_name_or_selector() {
        let mut spec = deployments_spec(json!([
            {"expression": "object.spec.replicas <= int(params.data.maxReplicas)"}
        ]));
        spec["paramKind"] = json!({"apiVersion": "v1", "kind": "ConfigMap"});
        let config_map = |name: &str, max: &str, labels: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": name, "labels": labels}, "data": {"maxReplicas": max}})
        };
        let params = vec![
            config_map("other", "10", json!({})),
            config_map("limits", "2", json!({"tier": "small"})),
        ];
        let by_name = [binding(json!({"paramRef": {"name": "limits"}}))];
        let compiled =
            CompiledAdmissionPolicy::compile(&policy(spec.clone()), &by_name).expect("ok");
        let mut case = case(&compiled);
        case.params = params.clone();
        assert_eq!(
            case.run(deployment("a", "default", 2)),
            rule(RuleStatus::Pass, "")
        );
        assert_eq!(
            case.run(deployment("a", "default", 3))[0].1,
            RuleStatus::Fail
        );
        // A selector binds the matching params as a list.
        spec["validations"] = json!([{"expression": "size(params.items) == 1"}]);
        let by_selector = [binding(
            json!({"paramRef": {"selector": {"matchLabels": {"tier": "small"}}}}),
        )];
        let compiled = CompiledAdmissionPolicy::compile(&policy(spec), &by_selector).expect("ok");
        let mut case = self::case(&compiled);
        case.params = params;
        assert_eq!(
            case.run(deployment("a", "default", 2)),
            rule(RuleStatus::Pass, "")
        );
    }

    #[test]
    fn compile_errors_name_the_policy() {
        let error = CompiledAdmissionPolicy::compile(
            &policy(deployments_spec(json!([{"expression": "object.("}]))),
            [],
        )
        .expect_err("does not compile")
        .to_string();
        assert!(
            error.starts_with(
                "ValidatingAdmissionPolicy replicas: spec.validations[0].expression: compilation failed"
            ),
            "{error}"
        );
    }
}
