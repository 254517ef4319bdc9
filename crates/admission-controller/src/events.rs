//! `events.k8s.io/v1` Events about admission results, as upstream's admission controller emits
//! them (`GenerateEvents`): for each policy with a failing or erroring rule, a `PolicyViolation`
//! Warning on the policy per failing rule (`(blocked)` when the request was denied) and, when the
//! request was admitted, one on the resource; with `generateSuccessEvents`, a `PolicyApplied`
//! Event on each policy that passed.
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kyverno_policy_core::response::{RuleResponse, RuleStatus};
use kyverno_runtime::reports::ReportedPolicy;

/// `reportingController` of the admission controller's Events.
pub const SOURCE: &str = "kyverno-admission";
/// Reason of the Events about failing rules.
pub const REASON_POLICY_VIOLATION: &str = "PolicyViolation";
/// Reason of the Events about passing policies.
pub const REASON_POLICY_APPLIED: &str = "PolicyApplied";
/// Action of Events about admitted resources.
pub const ACTION_RESOURCE_PASSED: &str = "Resource Passed";
/// Action of Events about denied resources.
pub const ACTION_RESOURCE_BLOCKED: &str = "Resource Blocked";

/// Longest note the Events API accepts, in bytes.
const MAX_NOTE: usize = 1024;

/// The resource a request is about and who reports.
#[derive(Clone, Debug)]
pub struct EventSubject {
    /// The resource.
    pub resource: ObjectReference,
    /// `reportingInstance`: this replica.
    pub instance: String,
}

/// The Events of one policy's validate results on the subject's resource (see the module
/// documentation); `success_events` is the ConfigMap's `generateSuccessEvents`.
pub fn policy_events(
    policy: &ReportedPolicy<'_>,
    rules: &[RuleResponse],
    subject: &EventSubject,
    blocked: bool,
    success_events: bool,
) -> Vec<Event> {
    let mut events = Vec::new();
    if rules.iter().any(failing) {
        for rule in rules.iter().filter(|rule| failing(rule)) {
            events.push(policy_fail_event(policy, rule, subject, blocked));
            if !blocked {
                events.push(resource_violation_event(policy, rule, subject));
            }
        }
    } else if leaves_events(rules, success_events) {
        events.push(policy_applied_event(policy, subject));
    }
    events
}

/// Whether one policy's validate results give Events ([`policy_events`] gives some).
pub fn leaves_events(rules: &[RuleResponse], success_events: bool) -> bool {
    rules
        .iter()
        .any(|rule| failing(rule) || (success_events && rule.status != RuleStatus::Skip))
}

/// Whether a rule failed or erred.
fn failing(rule: &RuleResponse) -> bool {
    matches!(rule.status, RuleStatus::Fail | RuleStatus::Error)
}

/// `Kind namespace/name` (`Kind name` for a cluster-scoped resource).
fn resource_key(resource: &ObjectReference) -> String {
    let kind = resource.kind.as_deref().unwrap_or_default();
    let name = resource.name.as_deref().unwrap_or_default();
    match resource.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// On the policy: `Kind ns/name: [rule] fail (blocked); message`.
fn policy_fail_event(
    policy: &ReportedPolicy<'_>,
    rule: &RuleResponse,
    subject: &EventSubject,
    blocked: bool,
) -> Event {
    let mut note = format!(
        "{}: [{}] {}",
        resource_key(&subject.resource),
        rule.name,
        rule.status.as_str()
    );
    if blocked {
        note.push_str(" (blocked)");
    }
    if !rule.message.is_empty() {
        note.push_str("; ");
        note.push_str(&rule.message);
    }
    let action = if blocked {
        ACTION_RESOURCE_BLOCKED
    } else {
        ACTION_RESOURCE_PASSED
    };
    event(
        policy.reference(),
        Some(subject.resource.clone()),
        (REASON_POLICY_VIOLATION, "Warning", action),
        note,
        &subject.instance,
    )
}

/// On the resource: `policy <policy>/<rule> fail: <message>`.
fn resource_violation_event(
    policy: &ReportedPolicy<'_>,
    rule: &RuleResponse,
    subject: &EventSubject,
) -> Event {
    let note = format!(
        "policy {}/{} {}: {}",
        policy.name,
        rule.name,
        rule.status.as_str(),
        rule.message
    );
    event(
        subject.resource.clone(),
        None,
        (REASON_POLICY_VIOLATION, "Warning", ACTION_RESOURCE_PASSED),
        note,
        &subject.instance,
    )
}

/// On the policy: `Kind ns/name: pass`.
fn policy_applied_event(policy: &ReportedPolicy<'_>, subject: &EventSubject) -> Event {
    let note = format!("{}: pass", resource_key(&subject.resource));
    event(
        policy.reference(),
        Some(subject.resource.clone()),
        (REASON_POLICY_APPLIED, "Normal", ACTION_RESOURCE_PASSED),
        note,
        &subject.instance,
    )
}

/// An Event regarding `regarding`, in its namespace (`default` for cluster-scoped objects),
/// named after it by the API server.
fn event(
    regarding: ObjectReference,
    related: Option<ObjectReference>,
    (reason, type_, action): (&str, &str, &str),
    mut note: String,
    instance: &str,
) -> Event {
    if note.len() > MAX_NOTE {
        let mut end = MAX_NOTE;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    let namespace = regarding
        .namespace
        .clone()
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!(
                "{}.",
                regarding.name.as_deref().unwrap_or("kyverno")
            )),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        action: Some(action.to_owned()),
        reason: Some(reason.to_owned()),
        type_: Some(type_.to_owned()),
        note: Some(note),
        reporting_controller: Some(SOURCE.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        regarding: Some(regarding),
        related,
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use kyverno_api::kyverno::v1::policy::ClusterPolicy;
    use kyverno_policy_core::engine::LoadedPolicy;
    use kyverno_policy_core::response::RuleType;

    use super::*;

    fn policy() -> LoadedPolicy {
        let policy: ClusterPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "require-labels"},
            "spec": {"rules": [{"name": "check", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "validate": {"pattern": {"metadata": {"labels": {"app": "?*"}}}}}]}
        }))
        .expect("a valid policy");
        LoadedPolicy::from_cluster_policy(policy).expect("loads")
    }

    fn rule(status: RuleStatus) -> RuleResponse {
        RuleResponse {
            name: "check".to_owned(),
            rule_type: RuleType::Validation,
            status,
            message: "label app is required".to_owned(),
        }
    }

    fn subject() -> EventSubject {
        EventSubject {
            resource: ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some("bad".to_owned()),
                namespace: Some("team".to_owned()),
                uid: Some("pod-uid".to_owned()),
                ..ObjectReference::default()
            },
            instance: "kyverno-admission-kyverno-0".to_owned(),
        }
    }

    #[test]
    fn an_admitted_failure_is_reported_on_the_policy_and_the_resource() {
        let events = policy_events(
            &ReportedPolicy::kyverno(&policy()),
            &[rule(RuleStatus::Fail)],
            &subject(),
            false,
            false,
        );
        assert_eq!(events.len(), 2);
        let on_policy = &events[0];
        assert_eq!(
            on_policy.regarding.as_ref().and_then(|r| r.kind.as_deref()),
            Some("ClusterPolicy")
        );
        assert_eq!(on_policy.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            on_policy.note.as_deref(),
            Some("Pod team/bad: [check] fail; label app is required")
        );
        assert_eq!(on_policy.action.as_deref(), Some(ACTION_RESOURCE_PASSED));
        let on_resource = &events[1];
        assert_eq!(
            on_resource
                .regarding
                .as_ref()
                .and_then(|r| r.uid.as_deref()),
            Some("pod-uid")
        );
        assert_eq!(on_resource.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(
            on_resource.note.as_deref(),
            Some("policy require-labels/check fail: label app is required")
        );
        for event in &events {
            assert_eq!(event.reason.as_deref(), Some(REASON_POLICY_VIOLATION));
            assert_eq!(event.type_.as_deref(), Some("Warning"));
            assert_eq!(event.reporting_controller.as_deref(), Some(SOURCE));
        }
    }

    #[test]
    fn a_blocked_request_is_reported_on_the_policy_only() {
        let events = policy_events(
            &ReportedPolicy::kyverno(&policy()),
            &[rule(RuleStatus::Fail)],
            &subject(),
            true,
            false,
        );
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].note.as_deref(),
            Some("Pod team/bad: [check] fail (blocked); label app is required")
        );
        assert_eq!(events[0].action.as_deref(), Some(ACTION_RESOURCE_BLOCKED));
    }

    #[test]
    fn passing_policies_emit_only_with_success_events() {
        let passed = [rule(RuleStatus::Pass)];
        let policy = policy();
        assert!(
            policy_events(
                &ReportedPolicy::kyverno(&policy),
                &passed,
                &subject(),
                false,
                false
            )
            .is_empty()
        );
        let events = policy_events(
            &ReportedPolicy::kyverno(&policy),
            &passed,
            &subject(),
            false,
            true,
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason.as_deref(), Some(REASON_POLICY_APPLIED));
        assert_eq!(events[0].type_.as_deref(), Some("Normal"));
        assert_eq!(events[0].note.as_deref(), Some("Pod team/bad: pass"));
    }
}
