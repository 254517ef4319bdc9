//! Load-time checks of `match`/`exclude` blocks (upstream `MatchResources.Validate`, plus kind
//! selectors that cannot select anything).
use kyverno_api::kyverno::v1::match_resources::{MatchResources, ResourceDescription, UserInfo};
use thiserror::Error;

use super::kind::KindSelector;
use super::selector::{self, SelectorError};

/// What is wrong in a `match`/`exclude` block.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MatchProblem {
    /// `any` and `all` are both set.
    #[error("Can't specify any and all together")]
    AnyAndAll,
    /// `name` and `names` are both set.
    #[error("Both name and names can not be specified together")]
    NameAndNames,
    /// The label selector is invalid.
    #[error("{0}")]
    InvalidSelector(SelectorError),
    /// The label selector has no requirement.
    #[error("The requirements are not specified in selector")]
    EmptySelector,
    /// A namespaced Policy filters on namespaces.
    #[error("Filtering namespaces not allowed in namespaced policies")]
    NamespacesInNamespacedPolicy,
    /// A kind selector with more than four parts or without a kind.
    #[error("invalid kind selector {0:?}")]
    InvalidKind(String),
    /// A subject without kind.
    #[error("Required value")]
    SubjectKindRequired,
    /// A subject kind other than User, Group, ServiceAccount.
    #[error("Invalid value: {0:?}: kind must be 'User', 'Group', or 'ServiceAccount'")]
    InvalidSubjectKind(String),
    /// A subject without name.
    #[error("Required value")]
    SubjectNameRequired,
    /// A ServiceAccount subject without namespace.
    #[error("namespace is required when Kind is ServiceAccount")]
    ServiceAccountNamespaceRequired,
    /// A role not written `namespace:name`.
    #[error("Invalid value: {0:?}: Role is expected to be in namespace:name format")]
    InvalidRole(String),
}

/// A problem in a `match`/`exclude` block, with the path of the offending field.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{path}: {problem}")]
pub struct InvalidMatch {
    /// Field path, e.g. `spec.rules[0].match.any[1].resources.selector`.
    pub path: String,
    /// What is wrong.
    pub problem: MatchProblem,
}

/// Checks a `match` or `exclude` block at `path` (e.g. `spec.rules[0].match`); `namespaced` for
/// blocks of a namespaced Policy.
pub fn validate_match_resources(
    block: &MatchResources,
    path: &str,
    namespaced: bool,
) -> Vec<InvalidMatch> {
    let mut problems = Vec::new();
    if !block.any.is_empty() && !block.all.is_empty() {
        problems.push(InvalidMatch {
            path: path.to_owned(),
            problem: MatchProblem::AnyAndAll,
        });
    }
    for (list, filters) in [("any", &block.any), ("all", &block.all)] {
        for (index, filter) in filters.iter().enumerate() {
            let filter_path = format!("{path}.{list}[{index}]");
            validate_user_info(&filter.user_info, &filter_path, &mut problems);
            if let Some(description) = &filter.resources {
                let resources_path = format!("{filter_path}.resources");
                validate_description(description, &resources_path, namespaced, &mut problems);
            }
        }
    }
    validate_user_info(&block.user_info, path, &mut problems);
    if let Some(description) = &block.resources {
        let resources_path = format!("{path}.resources");
        validate_description(description, &resources_path, namespaced, &mut problems);
    }
    problems
}

fn validate_description(
    description: &ResourceDescription,
    path: &str,
    namespaced: bool,
    problems: &mut Vec<InvalidMatch>,
) {
    let mut report = |field: &str, problem| {
        problems.push(InvalidMatch {
            path: format!("{path}{field}"),
            problem,
        });
    };
    if description
        .name
        .as_deref()
        .is_some_and(|name| !name.is_empty())
        && !description.names.is_empty()
    {
        report("", MatchProblem::NameAndNames);
    }
    if let Some(label_selector) = &description.selector
        && !selector::has_wildcards(label_selector)
    {
        match selector::validate_selector(label_selector) {
            Err(error) => report(".selector", MatchProblem::InvalidSelector(error)),
            Ok(0) => report(".selector", MatchProblem::EmptySelector),
            Ok(_) => {}
        }
    }
    if namespaced && !description.namespaces.is_empty() {
        report(".namespaces", MatchProblem::NamespacesInNamespacedPolicy);
    }
    for (index, kind) in description.kinds.iter().enumerate() {
        if KindSelector::parse(kind).is_none_or(|selector| selector.kind.is_empty()) {
            report(
                &format!(".kinds[{index}]"),
                MatchProblem::InvalidKind(kind.clone()),
            );
        }
    }
}

fn validate_user_info(user: &UserInfo, path: &str, problems: &mut Vec<InvalidMatch>) {
    let mut report = |field: String, problem| {
        problems.push(InvalidMatch {
            path: field,
            problem,
        })
    };
    for (index, subject) in user.subjects.iter().enumerate() {
        let subject_path = format!("{path}.subjects[{index}]");
        match subject.kind.as_str() {
            "" => report(
                format!("{subject_path}.kind"),
                MatchProblem::SubjectKindRequired,
            ),
            "User" | "Group" | "ServiceAccount" => {}
            other => report(
                format!("{subject_path}.kind"),
                MatchProblem::InvalidSubjectKind(other.to_owned()),
            ),
        }
        if subject.name.is_empty() {
            report(
                format!("{subject_path}.name"),
                MatchProblem::SubjectNameRequired,
            );
        }
        if subject.kind == "ServiceAccount"
            && subject.namespace.as_deref().is_none_or(str::is_empty)
        {
            report(
                format!("{subject_path}.namespace"),
                MatchProblem::ServiceAccountNamespaceRequired,
            );
        }
    }
    for (index, role) in user.roles.iter().enumerate() {
        if role.split(':').count() != 2 {
            report(
                format!("{path}.roles[{index}]"),
                MatchProblem::InvalidRole(role.clone()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn block(value: serde_json::Value) -> MatchResources {
        serde_json::from_value(value).expect("match block")
    }

    fn paths(problems: &[InvalidMatch]) -> Vec<(&str, &MatchProblem)> {
        problems
            .iter()
            .map(|p| (p.path.as_str(), &p.problem))
            .collect()
    }

    #[test]
    fn valid_block_has_no_problem() {
        let valid = block(json!({"any": [{"resources": {
            "kinds": ["Pod", "apps/v1/Deployment/scale"], "names": ["a*"],
            "selector": {"matchLabels": {"app": "web"}},
            "namespaceSelector": {"matchLabels": {"team": "a"}}
        }, "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}],
           "roles": ["ns:role"]}]}));
        assert!(validate_match_resources(&valid, "spec.rules[0].match", false).is_empty());
        let wildcard_selector =
            block(json!({"resources": {"selector": {"matchLabels": {"app*": "*"}}}}));
        assert!(validate_match_resources(&wildcard_selector, "m", false).is_empty());
    }

    #[test]
    fn reports_each_problem_with_its_path() {
        let invalid = block(json!({
            "any": [{"resources": {"name": "a", "names": ["b"], "selector": {},
                                   "kinds": ["a/b/c/d/e", "v1/Pod"], "namespaces": ["x"]}}],
            "all": [{"subjects": [{"kind": "Robot", "name": ""}, {"kind": "ServiceAccount", "name": "sa"}],
                     "roles": ["admin"]}],
            "resources": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}
        }));
        let problems = validate_match_resources(&invalid, "spec.rules[1].exclude", true);
        assert_eq!(
            paths(&problems),
            vec![
                ("spec.rules[1].exclude", &MatchProblem::AnyAndAll),
                (
                    "spec.rules[1].exclude.any[0].resources",
                    &MatchProblem::NameAndNames
                ),
                (
                    "spec.rules[1].exclude.any[0].resources.selector",
                    &MatchProblem::EmptySelector
                ),
                (
                    "spec.rules[1].exclude.any[0].resources.namespaces",
                    &MatchProblem::NamespacesInNamespacedPolicy
                ),
                (
                    "spec.rules[1].exclude.any[0].resources.kinds[0]",
                    &MatchProblem::InvalidKind("a/b/c/d/e".into())
                ),
                (
                    "spec.rules[1].exclude.all[0].subjects[0].kind",
                    &MatchProblem::InvalidSubjectKind("Robot".into())
                ),
                (
                    "spec.rules[1].exclude.all[0].subjects[0].name",
                    &MatchProblem::SubjectNameRequired
                ),
                (
                    "spec.rules[1].exclude.all[0].subjects[1].namespace",
                    &MatchProblem::ServiceAccountNamespaceRequired
                ),
                (
                    "spec.rules[1].exclude.all[0].roles[0]",
                    &MatchProblem::InvalidRole("admin".into())
                ),
                (
                    "spec.rules[1].exclude.resources.selector",
                    &MatchProblem::InvalidSelector(SelectorError::MissingValues("a".into()))
                ),
            ]
        );
        assert_eq!(
            problems[0].to_string(),
            "spec.rules[1].exclude: Can't specify any and all together"
        );
    }
}
