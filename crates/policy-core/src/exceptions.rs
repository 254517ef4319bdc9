//! PolicyExceptions (`kyverno.io/v2`): which exceptions lift a rule for a request, and what they
//! mean for the rule (upstream `MatchesException` and the exception handling of the rule
//! handlers).
use kyverno_api::kyverno::v1::mutate::AnyAllConditions;
use kyverno_api::kyverno::v1::validate::PodSecurityStandard;
use kyverno_api::kyverno::v2::policy_exception::PolicyException;

use crate::matching::exception_matches;
use crate::request::ResourceRequest;
use crate::wildcard;

/// How policies and exceptions are named in exceptions and messages: `namespace/name`, or `name`
/// for cluster-scoped objects.
pub fn object_key(namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|namespace| !namespace.is_empty()) {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

/// The key of an exception (`namespace/name`).
pub fn exception_key(exception: &PolicyException) -> String {
    object_key(
        exception.metadata.namespace.as_deref(),
        exception.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Whether `exception` lists the rule: an entry names the policy exactly (`policy_key` as
/// given by [`object_key`]) and one of its rule names matches `rule_name` (wildcards allowed;
/// generated rules are listed under their `autogen-` names).
pub fn lists_rule(exception: &PolicyException, policy_key: &str, rule_name: &str) -> bool {
    exception.spec.exceptions.iter().any(|entry| {
        entry.policy_name == policy_key
            && entry
                .rule_names
                .iter()
                .any(|pattern| wildcard::matches(pattern, rule_name))
    })
}

/// The exceptions that lift rule `rule_name` of policy `policy_key` for `request`: they list the
/// rule, their `match` block selects the request and their `conditions` hold.
/// `conditions_hold` evaluates conditions against the request's variables; an evaluation error
/// should be reported as `false` (the exception is then ignored, as upstream).
pub fn find_exceptions<'a>(
    exceptions: &'a [PolicyException],
    policy_key: &str,
    rule_name: &str,
    request: &ResourceRequest,
    mut conditions_hold: impl FnMut(&AnyAllConditions) -> bool,
) -> Vec<&'a PolicyException> {
    exceptions
        .iter()
        .filter(|exception| {
            lists_rule(exception, policy_key, rule_name)
                && exception_matches(&exception.spec.match_resources, request)
                && exception
                    .spec
                    .conditions
                    .as_ref()
                    .is_none_or(&mut conditions_hold)
        })
        .collect()
}

/// What the exceptions found for a rule mean for it.
#[derive(Clone, Debug)]
pub enum ExceptionVerdict<'a> {
    /// No exception applies: evaluate the rule.
    Evaluate,
    /// Skip the rule (status `skip`) with this message.
    Skip {
        /// The skip message, worded as upstream.
        message: String,
        /// The exceptions that lift the rule.
        exceptions: Vec<&'a PolicyException>,
    },
    /// A `validate.podSecurity` rule whose every exception carries `podSecurity` controls:
    /// evaluate the rule, then remove the failed checks these controls exempt; the rule is
    /// skipped with [`ExceptionVerdict::pod_security_skip_message`] when no failure remains.
    ExemptPodSecurity {
        /// The exceptions.
        exceptions: Vec<&'a PolicyException>,
        /// Their `podSecurity` controls, in order.
        exemptions: Vec<&'a PodSecurityStandard>,
    },
}

impl<'a> ExceptionVerdict<'a> {
    /// Decides from the exceptions found by [`find_exceptions`]; `pod_security_rule` for rules
    /// with `validate.podSecurity`.
    pub fn new(found: Vec<&'a PolicyException>, pod_security_rule: bool) -> Self {
        if found.is_empty() {
            return Self::Evaluate;
        }
        if !pod_security_rule {
            let keys: Vec<String> = found.iter().map(|e| exception_key(e)).collect();
            // Upstream joins without a space after "exceptions".
            return Self::Skip {
                message: format!(
                    "rule is skipped due to policy exceptions{}",
                    keys.join(", ")
                ),
                exceptions: found,
            };
        }
        if let Some(without_controls) = found.iter().find(|e| e.spec.pod_security.is_empty()) {
            return Self::Skip {
                message: format!(
                    "rule is skipped due to policy exception {}",
                    exception_key(without_controls)
                ),
                exceptions: vec![*without_controls],
            };
        }
        let exemptions = found
            .iter()
            .flat_map(|exception| &exception.spec.pod_security)
            .collect();
        Self::ExemptPodSecurity {
            exceptions: found,
            exemptions,
        }
    }

    /// The skip message of a podSecurity rule whose failures were all exempted; empty for other
    /// verdicts.
    pub fn pod_security_skip_message(&self) -> String {
        match self {
            Self::ExemptPodSecurity { exceptions, .. } => {
                let keys: Vec<String> = exceptions.iter().map(|e| exception_key(e)).collect();
                format!(
                    "rule is skipped due to policy exceptions {}",
                    keys.join(", ")
                )
            }
            Self::Evaluate | Self::Skip { .. } => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
    use serde_json::{Value, json};

    use super::*;
    use crate::request::{AdmissionUserInfo, RequestInfo};

    fn exception(value: Value) -> PolicyException {
        serde_json::from_value(value).expect("exception")
    }

    /// The exception of upstream test/cli exceptions-1.
    fn delta_exception() -> PolicyException {
        exception(json!({
            "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
            "metadata": {"name": "delta-exception", "namespace": "delta"},
            "spec": {
                "exceptions": [{"policyName": "disallow-host-namespaces",
                                "ruleNames": ["host-namespaces", "autogen-host-namespaces"]}],
                "match": {"any": [{"resources": {"kinds": ["Pod", "Deployment"],
                                                 "namespaces": ["delta"], "names": ["important-tool*"]}}]}
            }
        }))
    }

    fn deployment(name: &str, namespace: &str) -> ResourceRequest {
        ResourceRequest::new(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace}
        }))
    }

    fn no_conditions(_: &AnyAllConditions) -> bool {
        panic!("no conditions expected")
    }

    #[test]
    fn keys() {
        assert_eq!(object_key(Some("ns"), "p"), "ns/p");
        assert_eq!(object_key(None, "p"), "p");
        assert_eq!(object_key(Some(""), "p"), "p");
        assert_eq!(exception_key(&delta_exception()), "delta/delta-exception");
    }

    #[test]
    fn lists_rule_by_exact_policy_and_wildcard_rule() {
        let polex = delta_exception();
        assert!(lists_rule(
            &polex,
            "disallow-host-namespaces",
            "autogen-host-namespaces"
        ));
        assert!(!lists_rule(
            &polex,
            "disallow-host-namespaces",
            "autogen-cronjob-host-namespaces"
        ));
        assert!(!lists_rule(&polex, "disallow-host-*", "host-namespaces"));
        assert!(!lists_rule(
            &polex,
            "ns/disallow-host-namespaces",
            "host-namespaces"
        ));
        let wildcard = exception(json!({
            "metadata": {"name": "w"},
            "spec": {"exceptions": [{"policyName": "team/p", "ruleNames": ["*"]}],
                     "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}}
        }));
        assert!(lists_rule(&wildcard, "team/p", "autogen-cronjob-anything"));
        assert!(!lists_rule(&wildcard, "p", "r"));
    }

    #[test]
    fn upstream_exceptions_1() {
        let exceptions = [delta_exception()];
        let find = |request: &ResourceRequest| {
            find_exceptions(
                &exceptions,
                "disallow-host-namespaces",
                "autogen-host-namespaces",
                request,
                no_conditions,
            )
            .len()
        };
        assert_eq!(find(&deployment("important-tool", "delta")), 1);
        assert_eq!(find(&deployment("bad-deployment", "delta")), 0);
        assert_eq!(find(&deployment("important-tool", "other")), 0);
        let request = deployment("important-tool", "delta");
        assert!(
            find_exceptions(
                &exceptions,
                "other-policy",
                "autogen-host-namespaces",
                &request,
                no_conditions
            )
            .is_empty()
        );
    }

    #[test]
    fn conditions_must_hold() {
        let exceptions = [exception(json!({
            "metadata": {"name": "container-exception"},
            "spec": {
                "exceptions": [{"policyName": "max-containers", "ruleNames": ["max-two-containers"]}],
                "match": {"any": [{"resources": {"kinds": ["Pod", "Deployment"]}}]},
                "conditions": {"any": [{"key": "{{ request.object.metadata.labels.color || '' }}",
                                        "operator": "Equals", "value": "blue"}]}
            }
        }))];
        let request = deployment("d", "default");
        let mut seen = 0;
        let found = find_exceptions(
            &exceptions,
            "max-containers",
            "max-two-containers",
            &request,
            |c| {
                seen += 1;
                c.any.len() == 1
            },
        );
        assert_eq!((found.len(), seen), (1, 1));
        let found = find_exceptions(
            &exceptions,
            "max-containers",
            "max-two-containers",
            &request,
            |_| false,
        );
        assert!(found.is_empty());
    }

    #[test]
    fn match_block_semantics_differ_from_rules() {
        let with = |block: Value| {
            exception(json!({
                "metadata": {"name": "e", "namespace": "ns"},
                "spec": {"exceptions": [{"policyName": "p", "ruleNames": ["r"]}], "match": block}
            }))
        };
        let pod = ResourceRequest::new(json!({"apiVersion": "v1", "kind": "Pod",
                                              "metadata": {"name": "a", "namespace": "ns"}}));
        let applies = |polex: PolicyException, request: &ResourceRequest| {
            !find_exceptions(
                std::slice::from_ref(&polex),
                "p",
                "r",
                request,
                no_conditions,
            )
            .is_empty()
        };
        // The older single-filter form selects nothing in exceptions.
        assert!(!applies(
            with(json!({"resources": {"kinds": ["Pod"]}})),
            &pod
        ));
        // A filter with only operations is empty.
        assert!(!applies(
            with(json!({"any": [{"resources": {"operations": ["CREATE"]}}]})),
            &pod
        ));
        assert!(applies(
            with(
                json!({"all": [{"resources": {"kinds": ["Pod"]}}, {"resources": {"names": ["a"]}}]})
            ),
            &pod
        ));
        assert!(!applies(
            with(
                json!({"all": [{"resources": {"kinds": ["Pod"]}}, {"resources": {"names": ["b"]}}]})
            ),
            &pod
        ));
        // Operations must list the request's operation (background scans count as CREATE).
        let update = pod.clone().with_operation(AdmissionOperation::Update);
        let create_only =
            json!({"any": [{"resources": {"kinds": ["Pod"], "operations": ["CREATE"]}}]});
        assert!(applies(with(create_only.clone()), &pod));
        assert!(!applies(with(create_only), &update));
        // User conditions are not ignored when the requester is unknown.
        let subjects = json!({"any": [{"resources": {"kinds": ["Pod"]}, "subjects": [{"kind": "User", "name": "alice"}]}]});
        assert!(!applies(with(subjects.clone()), &pod));
        let alice = pod.clone().with_request_info(RequestInfo {
            user_info: AdmissionUserInfo {
                username: "alice".into(),
                ..Default::default()
            },
            ..Default::default()
        });
        assert!(applies(with(subjects), &alice));
        // A namespace selector does not apply to Namespace resources.
        let namespace = ResourceRequest::new(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}),
        );
        let selector = json!({"any": [{"resources": {"kinds": ["Namespace"], "namespaceSelector": {"matchLabels": {"a": "b"}}}}]});
        assert!(applies(with(selector.clone()), &namespace));
        let labelled = pod
            .clone()
            .with_namespace_labels(BTreeMap::from([("a".to_string(), "b".to_string())]));
        let pod_selector = json!({"any": [{"resources": {"kinds": ["Pod"], "namespaceSelector": {"matchLabels": {"a": "b"}}}}]});
        assert!(applies(with(pod_selector.clone()), &labelled));
        assert!(!applies(with(pod_selector), &pod));
    }

    #[test]
    fn verdicts() {
        let plain = delta_exception();
        let pss = exception(json!({
            "metadata": {"name": "pod-security-exception", "namespace": "policy-exception-ns"},
            "spec": {
                "exceptions": [{"policyName": "psa", "ruleNames": ["baseline"]}],
                "match": {"any": [{"resources": {"namespaces": ["staging-ns"]}}]},
                "podSecurity": [{"controlName": "HostPath Volumes",
                                 "restrictedField": "spec.volumes[*].hostPath", "values": ["/var/lib1"]}]
            }
        }));
        assert!(matches!(
            ExceptionVerdict::new(vec![], true),
            ExceptionVerdict::Evaluate
        ));
        let skip = |verdict| match verdict {
            ExceptionVerdict::Skip {
                message,
                exceptions,
            } => (
                message,
                exceptions
                    .iter()
                    .map(|e| exception_key(e))
                    .collect::<Vec<_>>(),
            ),
            other => panic!("expected a skip, got {other:?}"),
        };
        assert_eq!(
            skip(ExceptionVerdict::new(vec![&plain, &pss], false)),
            (
                "rule is skipped due to policy exceptionsdelta/delta-exception, policy-exception-ns/pod-security-exception".to_string(),
                vec!["delta/delta-exception".to_string(), "policy-exception-ns/pod-security-exception".to_string()]
            )
        );
        assert_eq!(
            skip(ExceptionVerdict::new(vec![&pss, &plain], true)),
            (
                "rule is skipped due to policy exception delta/delta-exception".to_string(),
                vec!["delta/delta-exception".to_string()]
            )
        );
        let verdict = ExceptionVerdict::new(vec![&pss], true);
        let ExceptionVerdict::ExemptPodSecurity { exemptions, .. } = &verdict else {
            panic!("expected podSecurity exemptions, got {verdict:?}");
        };
        assert_eq!(exemptions[0].control_name, "HostPath Volumes");
        assert_eq!(
            verdict.pod_security_skip_message(),
            "rule is skipped due to policy exceptions policy-exception-ns/pod-security-exception"
        );
        assert_eq!(ExceptionVerdict::Evaluate.pod_security_skip_message(), "");
    }
}
