//! Kind selectors of `match`/`exclude` blocks: `Kind`, `version/Kind`, `group/version/Kind`,
//! each optionally followed by a subresource (`Pod/status` or `Pod.status`), with wildcards.
use crate::request::GroupVersionKind;
use crate::wildcard;

/// A parsed kind selector; every part may contain wildcards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KindSelector<'a> {
    pub(crate) group: &'a str,
    pub(crate) version: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) subresource: &'a str,
}

/// Most parts a selector can have: group/version/kind/subresource.
const MAX_PARTS: usize = 4;

impl<'a> KindSelector<'a> {
    /// Parses a selector as upstream does; `None` when it has more than four parts.
    pub(crate) fn parse(input: &'a str) -> Option<Self> {
        let mut parts = [""; MAX_PARTS];
        let mut count = 0;
        let (head, last) = match input.rsplit_once('/') {
            Some((head, last)) => (Some(head), last),
            None => (None, input),
        };
        for part in head
            .into_iter()
            .flat_map(|head| head.split('/'))
            .chain(last.split('.'))
        {
            *parts.get_mut(count)? = part;
            count += 1;
        }
        let [first, second, third, fourth] = parts;
        let selector = |group, version, kind, subresource| Self {
            group,
            version,
            kind,
            subresource,
        };
        Some(match count {
            1 => selector("*", "*", first, ""),
            2 if first == "*" && second == "*" => selector("*", "*", "*", "*"),
            // `*/subresource`: a lowercase second part is a subresource, not a kind.
            2 if first == "*" && !second.chars().any(char::is_uppercase) => {
                selector("*", "*", first, second)
            }
            2 if is_version(first) => selector("*", first, second, ""),
            2 => selector("*", "*", first, second),
            3 if is_version(first) => selector("*", first, second, third),
            3 => selector(first, second, third, ""),
            _ => selector(first, second, third, fourth),
        })
    }

    /// Whether the group, version and kind parts match `gvk`.
    fn matches_gvk(&self, gvk: &GroupVersionKind) -> bool {
        wildcard::matches(self.group, &gvk.group)
            && wildcard::matches(self.version, &gvk.version)
            && wildcard::matches(self.kind, &gvk.kind)
    }
}

/// Whether `s` is `*` or a Kubernetes version (`v1`, `v2beta3`, ...).
fn is_version(s: &str) -> bool {
    if s == "*" {
        return true;
    }
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits_end == 0 {
        return false;
    }
    match &rest[digits_end..] {
        "" => true,
        stage => ["alpha", "beta"].iter().any(|prefix| {
            stage
                .strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }),
    }
}

/// Whether one of `kinds` selects a resource of `gvk` requested through `subresource`. With
/// `allow_ephemeral_containers`, a selector of the core v1 Pod also selects the
/// `pods/ephemeralcontainers` subresource, whatever its own subresource part (backward
/// compatibility of policies written before subresources could be selected).
pub(crate) fn check_kind(
    kinds: &[String],
    gvk: &GroupVersionKind,
    subresource: &str,
    allow_ephemeral_containers: bool,
) -> bool {
    let ephemeral_pod = allow_ephemeral_containers
        && subresource == "ephemeralcontainers"
        && gvk.group.is_empty()
        && gvk.version == "v1"
        && gvk.kind == "Pod";
    kinds.iter().any(|kind| {
        // Like upstream, a selector with too many parts only matches empty names.
        let selector = KindSelector::parse(kind).unwrap_or(KindSelector {
            group: "",
            version: "",
            kind: "",
            subresource: "",
        });
        selector.matches_gvk(gvk)
            && (ephemeral_pod || wildcard::matches(selector.subresource, subresource))
    })
}

/// The kind named by a selector, without group, version or subresource (upstream
/// `GetKindFromGVK` followed by `SplitSubresource`).
fn kind_name(selector: &str) -> &str {
    let parts: Vec<&str> = selector.split('/').collect();
    let before_dot = |s: &'_ str| -> usize { s.find('.').unwrap_or(s.len()) };
    match parts.as_slice() {
        [only] => &only[..before_dot(only)],
        ["*", "*"] => "*",
        [first, second] if is_version(first) => &second[..before_dot(second)],
        [first, _] => first,
        [first, second, _] if is_version(first) => second,
        [_, _, third] => &third[..before_dot(third)],
        [_, _, third, _] => third,
        _ => "",
    }
}

/// Whether one of the `kinds` selectors names `kind` (ignoring group, version, subresource).
pub(crate) fn contains_kind<'a>(kinds: impl IntoIterator<Item = &'a String>, kind: &str) -> bool {
    kinds
        .into_iter()
        .any(|selector| kind_name(selector) == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn parses_kind_selectors_like_upstream() {
        // (input, group, version, kind, subresource) from upstream TestParseKindSelector.
        let cases = [
            ("*", "*", "*", "*", ""),
            ("*.*", "*", "*", "*", "*"),
            ("*/*", "*", "*", "*", "*"),
            ("Pod", "*", "*", "Pod", ""),
            ("v1/Pod", "*", "v1", "Pod", ""),
            ("batch/*/CronJob", "batch", "*", "CronJob", ""),
            (
                "storage.k8s.io/v1/CSIDriver",
                "storage.k8s.io",
                "v1",
                "CSIDriver",
                "",
            ),
            (
                "tekton.dev/v1beta1/TaskRun/status",
                "tekton.dev",
                "v1beta1",
                "TaskRun",
                "status",
            ),
            ("v1/Pod.status", "*", "v1", "Pod", "status"),
            ("v1/Pod/status", "*", "v1", "Pod", "status"),
            ("Pod.status", "*", "*", "Pod", "status"),
            ("Pod/status", "*", "*", "Pod", "status"),
            (
                "apps/v1/Deployment/scale",
                "apps",
                "v1",
                "Deployment",
                "scale",
            ),
            (
                "v1/ReplicationController/scale",
                "*",
                "v1",
                "ReplicationController",
                "scale",
            ),
            (
                "*/ReplicationController/scale",
                "*",
                "*",
                "ReplicationController",
                "scale",
            ),
            ("*/Deployment/scale", "*", "*", "Deployment", "scale"),
            ("*/Deployment.scale", "*", "*", "Deployment", "scale"),
            (
                "apps/v1/Deployment.scale",
                "apps",
                "v1",
                "Deployment",
                "scale",
            ),
            ("*/scale", "*", "*", "*", "scale"),
            ("Pod/*", "*", "*", "Pod", "*"),
            ("*/*/*", "*", "*", "*", "*"),
            ("*/*/*/*", "*", "*", "*", "*"),
        ];
        for (input, group, version, kind, subresource) in cases {
            assert_eq!(
                KindSelector::parse(input),
                Some(KindSelector {
                    group,
                    version,
                    kind,
                    subresource
                }),
                "{input}"
            );
        }
        assert_eq!(KindSelector::parse("*/*/*/*/*"), None);
        assert_eq!(KindSelector::parse("a/b/c/d.e"), None);
    }

    #[test]
    fn versions() {
        for version in ["v1", "v10", "v1beta1", "v2alpha3", "*"] {
            assert!(is_version(version), "{version}");
        }
        for not_version in [
            "v", "vbeta1", "v1beta", "v1gamma1", "apps", "V1", "v1beta1x",
        ] {
            assert!(!is_version(not_version), "{not_version}");
        }
    }

    #[test]
    fn checks_kinds_like_upstream() {
        // Cases from upstream pkg/utils/match/kind_test.go.
        let pod = gvk("", "v1", "Pod");
        let kinds = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_kind(
            &kinds(&["*"]),
            &gvk("", "v1", "Deployment"),
            "",
            false
        ));
        assert!(check_kind(&kinds(&["Pod"]), &pod, "", false));
        assert!(check_kind(&kinds(&["v1/Pod"]), &pod, "", false));
        assert!(check_kind(
            &kinds(&["tekton.dev/v1beta1/TaskRun"]),
            &gvk("tekton.dev", "v1beta1", "TaskRun"),
            "",
            false
        ));
        assert!(check_kind(
            &kinds(&["tekton.dev/*/TaskRun"]),
            &gvk("tekton.dev", "v1alpha1", "TaskRun"),
            "",
            false
        ));
        assert!(!check_kind(&kinds(&["v1/Pod"]), &pod, "status", false));
        assert!(check_kind(
            &kinds(&["v1/Pod"]),
            &pod,
            "ephemeralcontainers",
            true
        ));
        assert!(!check_kind(
            &kinds(&["v1/Pod"]),
            &pod,
            "ephemeralcontainers",
            false
        ));
        let postgres = gvk("acid.zalan.do", "v1", "postgresdb");
        assert!(check_kind(&kinds(&["postgresdb"]), &postgres, "", false));
        assert!(!check_kind(&kinds(&["Postgresdb"]), &postgres, "", false));
        assert!(check_kind(
            &kinds(&["networking.k8s.io/v1/NetworkPolicy/status"]),
            &gvk("networking.k8s.io", "v1", "NetworkPolicy"),
            "status",
            false
        ));
        assert!(check_kind(
            &kinds(&["v1/Pod.status"]),
            &pod,
            "status",
            false
        ));
        assert!(check_kind(
            &kinds(&["*/Pod.eviction"]),
            &pod,
            "eviction",
            false
        ));
        assert!(!check_kind(
            &kinds(&["v1alpha1/Pod.eviction"]),
            &pod,
            "eviction",
            false
        ));
        // Case-sensitive kinds and versions (upstream utils_test "GVK case sensitive").
        assert!(!check_kind(&kinds(&["pod"]), &pod, "", false));
        assert!(!check_kind(
            &kinds(&["apps/v1/deployment"]),
            &gvk("apps", "v1", "Deployment"),
            "",
            false
        ));
        assert!(!check_kind(
            &kinds(&["apps/v1/Deployment"]),
            &gvk("apps", "v1beta1", "Deployment"),
            "",
            false
        ));
        // Ephemeral containers are only implied for the core v1 Pod.
        assert!(!check_kind(
            &kinds(&["Pod"]),
            &gvk("example.com", "v1", "Pod"),
            "ephemeralcontainers",
            true
        ));
        // A selector with too many parts matches nothing.
        assert!(!check_kind(&kinds(&["a/b/c/d/e"]), &pod, "", false));
    }

    #[test]
    fn kind_names_like_upstream_contains_kind() {
        let cases = [
            ("Pod", "Pod"),
            ("Pod.status", "Pod"),
            ("v1/Pod", "Pod"),
            ("v1/Pod.status", "Pod"),
            ("Pod/status", "Pod"),
            ("*/*", "*"),
            ("batch/*/CronJob", "CronJob"),
            ("storage.k8s.io/v1/CSIDriver", "CSIDriver"),
            ("v1/ReplicationController/Scale", "ReplicationController"),
            ("tekton.dev/v1beta1/TaskRun/Status", "TaskRun"),
            ("a/b/c/d/e", ""),
        ];
        for (selector, kind) in cases {
            assert_eq!(kind_name(selector), kind, "{selector}");
        }
        let kinds = ["Deployment".to_string(), "v1/Pod".to_string()];
        assert!(contains_kind(&kinds, "Pod"));
        assert!(!contains_kind(&kinds, "Job"));
    }
}
