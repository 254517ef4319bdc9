//! Which rules apply to a request: the `match` and `exclude` blocks of a rule (upstream
//! `MatchesResourceDescription`), and the `match` block of a PolicyException.
//!
//! A block is either `any` (one filter must match), `all` (every filter must match) or the older
//! single filter written directly under `match`/`exclude`. Inside a filter every condition that is
//! set must hold (kinds, names, namespaces, annotations, selectors, operations); of the user
//! conditions (roles, cluster roles, subjects) too every one that is set must hold.
mod kind;
mod selector;
mod validate;

use std::fmt;

use k8s_openapi::api::rbac::v1::Subject;
use kyverno_api::kyverno::v1::match_resources::{
    AdmissionOperation, MatchResources, ResourceDescription, ResourceFilter, UserInfo,
};
use kyverno_api::kyverno::v1::rule::Rule;
use thiserror::Error;

pub(crate) use kind::contains_kind;
pub use selector::SelectorError;
pub(crate) use selector::selector_matches;
pub use validate::{InvalidMatch, MatchProblem, validate_match_resources};

use crate::request::{AdmissionUserInfo, ResourceRequest};
use crate::wildcard;

/// One reason why a rule does not apply, worded as upstream.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MismatchReason<'a> {
    /// The request carries no resource.
    #[error("resource is empty")]
    ResourceEmpty,
    /// A namespaced Policy only applies to resources of its own namespace.
    #[error("policy and resource namespaces mismatch")]
    PolicyNamespace,
    /// None of the `match.any` filters matched.
    #[error("no resource matched")]
    NoFilterMatched,
    /// A `match` filter without any condition.
    #[error("match cannot be empty")]
    EmptyMatch,
    /// The admission operation is not listed.
    #[error("operation does not match")]
    Operation,
    /// No kind selector selects the resource.
    #[error("kind does not match [{}]", .0.join(" "))]
    Kind(&'a [String]),
    /// `name` does not match.
    #[error("name does not match")]
    Name,
    /// None of `names` matches.
    #[error("none of the names match")]
    Names,
    /// None of `namespaces` matches.
    #[error("namespace does not match")]
    Namespace,
    /// An annotation is missing or has another value.
    #[error("annotations does not match")]
    Annotations,
    /// The label selector does not select the resource.
    #[error("selector does not match")]
    Selector,
    /// The label selector is invalid.
    #[error("failed to parse selector: {0}")]
    InvalidSelector(SelectorError),
    /// Namespace selectors never select a Namespace resource in rules.
    #[error("namespace selector is not applicable for namespace resource")]
    NamespaceSelectorNotApplicable,
    /// The namespace selector does not select the resource's namespace.
    #[error("namespace selector does not match labels")]
    NamespaceSelector,
    /// The namespace selector is invalid.
    #[error("failed to parse namespace selector: {0}")]
    InvalidNamespaceSelector(SelectorError),
    /// The requester has none of the roles.
    #[error("user info does not match roles for the given conditionBlock")]
    Roles,
    /// The requester has none of the cluster roles.
    #[error("user info does not match clustersRoles for the given conditionBlock")]
    ClusterRoles,
    /// The requester is none of the subjects.
    #[error("user info does not match subject for the given conditionBlock")]
    Subjects,
    /// An `exclude` filter (of `any`, or the single filter) matched.
    #[error("resource excluded since one of the criteria excluded it")]
    ExcludedByFilter,
    /// Every `exclude.all` filter matched.
    #[error("resource excluded since the combination of all criteria exclude it")]
    ExcludedByAll,
}

/// Why a rule does not apply to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotMatched<'a> {
    /// The rule's name.
    pub rule: &'a str,
    /// Every reason found, in upstream order.
    pub reasons: Vec<MismatchReason<'a>>,
}

impl fmt::Display for NotMatched<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [reason @ (MismatchReason::ResourceEmpty | MismatchReason::PolicyNamespace)] =
            self.reasons.as_slice()
        {
            return write!(f, "{reason}");
        }
        write!(f, "rule {} not matched:", self.rule)?;
        for (index, reason) in self.reasons.iter().enumerate() {
            write!(f, "\n {}. {reason}", index + 1)?;
        }
        Ok(())
    }
}

impl std::error::Error for NotMatched<'_> {}

/// Whether `rule` applies to `request`: its `match` block selects the resource and, if so, its
/// `exclude` block does not. A namespaced Policy (`policy_namespace`) only applies to resources of
/// its namespace. When nothing is known about the requester (background scans), user conditions of
/// `match` filters are ignored, as upstream. Background scans match as CREATE requests.
pub fn rule_matches<'a>(
    rule: &'a Rule,
    policy_namespace: Option<&str>,
    request: &ResourceRequest,
) -> Result<(), NotMatched<'a>> {
    let not_matched = |reasons| NotMatched {
        rule: &rule.name,
        reasons,
    };
    if !request.resource().is_object() {
        return Err(not_matched(vec![MismatchReason::ResourceEmpty]));
    }
    if policy_namespace
        .is_some_and(|namespace| !namespace.is_empty() && namespace != request.namespace())
    {
        return Err(not_matched(vec![MismatchReason::PolicyNamespace]));
    }
    let mut reasons = Vec::new();
    let block = &rule.match_resources;
    if !block.any.is_empty() {
        let one_matched = block.any.iter().any(|filter| {
            passes(&mut reasons, |reasons| {
                check_match_filter(
                    filter.resources.as_ref(),
                    &filter.user_info,
                    request,
                    reasons,
                );
            })
        });
        if !one_matched {
            reasons.push(MismatchReason::NoFilterMatched);
        }
    } else if !block.all.is_empty() {
        for filter in &block.all {
            check_match_filter(
                filter.resources.as_ref(),
                &filter.user_info,
                request,
                &mut reasons,
            );
        }
    } else {
        check_match_filter(
            block.resources.as_ref(),
            &block.user_info,
            request,
            &mut reasons,
        );
    }
    if reasons.is_empty()
        && let Some(exclude) = &rule.exclude
    {
        check_exclude(exclude, request, &mut reasons);
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(not_matched(reasons))
    }
}

/// Whether the `match` block of a PolicyException selects the request: one of `any` or every
/// one of `all` (the older single-filter form selects nothing). Unlike rules, user conditions are
/// never ignored and a namespace selector does not apply to Namespace resources.
pub(crate) fn exception_matches(block: &MatchResources, request: &ResourceRequest) -> bool {
    let mut reasons = Vec::new();
    let filter_matches = |filter| {
        let filter: &ResourceFilter = filter;
        let resources = filter.resources.as_ref();
        let description_empty = resources.is_none_or(is_description_empty_ignoring_operations);
        !(description_empty && is_user_info_empty(&filter.user_info))
            && passes(&mut reasons, |reasons| {
                check_block(
                    resources,
                    &filter.user_info,
                    request,
                    Scope::Exception,
                    reasons,
                );
            })
    };
    if !block.any.is_empty() {
        block.any.iter().any(filter_matches)
    } else if !block.all.is_empty() {
        block.all.iter().all(filter_matches)
    } else {
        false
    }
}

/// Where a filter is used; namespace selectors and Namespace resources differ between them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Rule,
    Exception,
}

/// Runs `check` on the end of `reasons` and tells whether it added no reason; what it added is
/// discarded, so that one buffer serves every filter.
fn passes<'a>(
    reasons: &mut Vec<MismatchReason<'a>>,
    check: impl FnOnce(&mut Vec<MismatchReason<'a>>),
) -> bool {
    let before = reasons.len();
    check(reasons);
    let passed = reasons.len() == before;
    reasons.truncate(before);
    passed
}

/// Adds the reasons why one `match` filter does not select the request.
fn check_match_filter<'a>(
    resources: Option<&'a ResourceDescription>,
    user: &UserInfo,
    request: &ResourceRequest,
    reasons: &mut Vec<MismatchReason<'a>>,
) {
    let no_user = UserInfo::default();
    let user = if request.request_info().is_empty() {
        &no_user
    } else {
        user
    };
    if resources.is_none_or(is_description_empty) && is_user_info_empty(user) {
        reasons.push(MismatchReason::EmptyMatch);
        return;
    }
    check_block(resources, user, request, Scope::Rule, reasons);
}

/// Adds a reason when the `exclude` block excludes the request.
fn check_exclude<'a>(
    exclude: &'a MatchResources,
    request: &ResourceRequest,
    reasons: &mut Vec<MismatchReason<'a>>,
) {
    let mut excludes = |resources: Option<&'a ResourceDescription>, user: &UserInfo| {
        !(resources.is_none_or(is_description_empty) && is_user_info_empty(user))
            && passes(reasons, |reasons| {
                check_block(resources, user, request, Scope::Rule, reasons);
            })
    };
    let (reason, count) = if !exclude.any.is_empty() {
        // Every excluding filter adds a reason, as upstream.
        let excluding = exclude
            .any
            .iter()
            .filter(|filter| excludes(filter.resources.as_ref(), &filter.user_info))
            .count();
        (MismatchReason::ExcludedByFilter, excluding)
    } else if !exclude.all.is_empty() {
        let all = exclude
            .all
            .iter()
            .all(|filter| excludes(filter.resources.as_ref(), &filter.user_info));
        (MismatchReason::ExcludedByAll, usize::from(all))
    } else {
        let excluded = excludes(exclude.resources.as_ref(), &exclude.user_info);
        (MismatchReason::ExcludedByFilter, usize::from(excluded))
    };
    reasons.extend(std::iter::repeat_n(reason, count));
}

/// Adds the reasons why the resource and user conditions of one filter do not hold.
fn check_block<'a>(
    resources: Option<&'a ResourceDescription>,
    user: &UserInfo,
    request: &ResourceRequest,
    scope: Scope,
    reasons: &mut Vec<MismatchReason<'a>>,
) {
    if let Some(description) = resources {
        if !description.operations.is_empty() {
            // Background scans are evaluated as CREATE requests.
            let operation = request.operation().unwrap_or(AdmissionOperation::Create);
            if !description.operations.contains(&operation) {
                reasons.push(MismatchReason::Operation);
                return;
            }
        }
        check_description(description, request, scope, reasons);
    }
    check_user_info(user, request, reasons);
}

fn check_description<'a>(
    description: &'a ResourceDescription,
    request: &ResourceRequest,
    scope: Scope,
    reasons: &mut Vec<MismatchReason<'a>>,
) {
    if !description.kinds.is_empty()
        && !kind::check_kind(
            &description.kinds,
            request.gvk(),
            request.subresource(),
            true,
        )
    {
        reasons.push(MismatchReason::Kind(&description.kinds));
    }
    let name = request.name();
    if let Some(pattern) = description.name.as_deref().filter(|n| !n.is_empty())
        && !wildcard::matches(pattern, name)
    {
        reasons.push(MismatchReason::Name);
    }
    if !description.names.is_empty()
        && !description
            .names
            .iter()
            .any(|pattern| wildcard::matches(pattern, name))
    {
        reasons.push(MismatchReason::Names);
    }
    if !description.namespaces.is_empty() {
        // A Namespace is in the namespace it names.
        let namespace = if request.kind() == "Namespace" {
            request.resource()["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
        } else {
            request.namespace()
        };
        if !description
            .namespaces
            .iter()
            .any(|pattern| wildcard::matches(pattern, namespace))
        {
            reasons.push(MismatchReason::Namespace);
        }
    }
    if !description.annotations.is_empty() {
        let annotations = request.annotations();
        let all_present = description.annotations.iter().all(|(key, value)| {
            annotations
                .iter()
                .any(|(k, v)| wildcard::matches(key, k) && wildcard::matches(value, v))
        });
        if !all_present {
            reasons.push(MismatchReason::Annotations);
        }
    }
    if let Some(label_selector) = &description.selector {
        match selector::selector_matches(label_selector, &request.labels()) {
            Ok(true) => {}
            Ok(false) => reasons.push(MismatchReason::Selector),
            Err(error) => reasons.push(MismatchReason::InvalidSelector(error)),
        }
    }
    if let Some(namespace_selector) = &description.namespace_selector {
        let kind = request.kind();
        let applies = match scope {
            Scope::Rule if kind == "Namespace" => {
                reasons.push(MismatchReason::NamespaceSelectorNotApplicable);
                false
            }
            Scope::Rule => !kind.is_empty() || description.kinds.iter().any(|k| k == "*"),
            Scope::Exception => kind != "Namespace" && !kind.is_empty(),
        };
        if applies {
            match selector::selector_matches(
                namespace_selector,
                request.namespace_labels().as_ref(),
            ) {
                Ok(true) => {}
                Ok(false) => reasons.push(MismatchReason::NamespaceSelector),
                Err(error) => reasons.push(MismatchReason::InvalidNamespaceSelector(error)),
            }
        }
    }
}

fn check_user_info(
    user: &UserInfo,
    request: &ResourceRequest,
    reasons: &mut Vec<MismatchReason<'_>>,
) {
    let info = request.request_info();
    if !user.roles.is_empty() && !info.roles.iter().any(|role| user.roles.contains(role)) {
        reasons.push(MismatchReason::Roles);
    }
    if !user.cluster_roles.is_empty()
        && !info
            .cluster_roles
            .iter()
            .any(|role| user.cluster_roles.contains(role))
    {
        reasons.push(MismatchReason::ClusterRoles);
    }
    if !user.subjects.is_empty() && !subjects_match(&user.subjects, &info.user_info) {
        reasons.push(MismatchReason::Subjects);
    }
}

/// Whether the requester is one of `subjects`: a user by name, a member of a group, or a service
/// account (`system:serviceaccount:<namespace>:<name>`); names may contain wildcards.
fn subjects_match(subjects: &[Subject], user: &AdmissionUserInfo) -> bool {
    subjects.iter().any(|subject| match subject.kind.as_str() {
        "ServiceAccount" => {
            let namespace = subject.namespace.as_deref().unwrap_or_default();
            let pattern = format!("system:serviceaccount:{namespace}:{}", subject.name);
            wildcard::matches(&pattern, &user.username)
        }
        "Group" => user
            .groups
            .iter()
            .any(|group| wildcard::matches(&subject.name, group)),
        "User" => wildcard::matches(&subject.name, &user.username),
        _ => false,
    })
}

fn is_description_empty(description: &ResourceDescription) -> bool {
    *description == ResourceDescription::default()
}

/// Upstream `ResourceDescription.IsEmpty`, which does not look at `operations`.
fn is_description_empty_ignoring_operations(description: &ResourceDescription) -> bool {
    description.kinds.is_empty()
        && description.name.as_deref().is_none_or(str::is_empty)
        && description.names.is_empty()
        && description.namespaces.is_empty()
        && description.annotations.is_empty()
        && description.selector.is_none()
        && description.namespace_selector.is_none()
}

fn is_user_info_empty(user: &UserInfo) -> bool {
    user.roles.is_empty() && user.cluster_roles.is_empty() && user.subjects.is_empty()
}

#[cfg(test)]
mod tests;
