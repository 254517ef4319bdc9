//! `--test-case-selector "policy=<p>, rule=<r>, resource=<name>"`: which result items to run.
//! Values may hold `*` and `?` wildcards; a key left out selects everything.
use kyverno_policy_core::wildcard;

use crate::test_file::TestResult;

/// A parsed selector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    policy: Option<String>,
    rule: Option<String>,
    resource: Option<String>,
}

impl Selector {
    /// Parses a selector; invalid parts are reported and ignored, as upstream does.
    pub fn parse(text: &str) -> (Self, Vec<String>) {
        let mut selector = Self::default();
        let mut errors = Vec::new();
        for part in text.split(',').filter(|part| !part.trim().is_empty()) {
            let Some((key, value)) = part
                .split_once('=')
                .filter(|(_, value)| !value.contains('='))
            else {
                errors.push(format!(
                    "Invalid test-case-selector argument ({part}). Parameter must be in the form `<key>=<value>`."
                ));
                continue;
            };
            let value = Some(value.trim().to_owned());
            match key.trim() {
                "policy" => selector.policy = value,
                "rule" => selector.rule = value,
                "resource" => selector.resource = value,
                _ => errors.push(format!(
                    "Invalid test-case-selector ({part}). Parameter can only be policy, rule or resource."
                )),
            }
        }
        (selector, errors)
    }

    /// The result item narrowed to the selected resources, or `None` when it is not selected.
    pub fn select(&self, result: &TestResult) -> Option<TestResult> {
        let matches = |pattern: &Option<String>, text: &str| {
            pattern
                .as_deref()
                .is_none_or(|pattern| wildcard::matches(pattern, text))
        };
        if !matches(&self.policy, &result.policy) {
            return None;
        }
        if let Some(rule) = result.rule.as_deref().filter(|rule| !rule.is_empty())
            && !matches(&self.rule, rule)
        {
            return None;
        }
        let mut selected = result.clone();
        if self
            .resource
            .as_deref()
            .is_some_and(|pattern| pattern != "*")
        {
            selected
                .resources
                .retain(|resource| matches(&self.resource, resource));
            if selected.resources.is_empty() {
                return None;
            }
        }
        Some(selected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(yaml: &str) -> TestResult {
        serde_saphyr::from_str(yaml).expect("valid result")
    }

    #[test]
    fn the_default_selector_selects_everything() {
        let (selector, errors) = Selector::parse("policy=*,rule=*,resource=*");
        assert!(errors.is_empty());
        let item = result("policy: p\nrule: r\nresources: [a, b]\nresult: pass\n");
        assert_eq!(
            selector.select(&item).expect("selected").resources,
            ["a", "b"]
        );
    }

    #[test]
    fn policies_and_rules_match_with_wildcards() {
        let (selector, _) = Selector::parse("policy=disallow-*, rule=check-?");
        assert!(
            selector
                .select(&result(
                    "policy: disallow-latest\nrule: check-a\nresult: pass\n"
                ))
                .is_some()
        );
        assert!(
            selector
                .select(&result("policy: require-x\nrule: check-a\nresult: pass\n"))
                .is_none()
        );
        assert!(
            selector
                .select(&result(
                    "policy: disallow-latest\nrule: check-ab\nresult: pass\n"
                ))
                .is_none()
        );
        assert!(
            selector
                .select(&result("policy: disallow-latest\nresult: pass\n"))
                .is_some(),
            "no rule is not filtered"
        );
    }

    #[test]
    fn resources_are_narrowed() {
        let (selector, _) = Selector::parse("resource=good-*");
        let item = result("policy: p\nrule: r\nresources: [good-a, bad-b, good-c]\nresult: pass\n");
        assert_eq!(
            selector.select(&item).expect("selected").resources,
            ["good-a", "good-c"]
        );
        assert!(
            selector
                .select(&result("policy: p\nresources: [bad]\nresult: pass\n"))
                .is_none()
        );
    }

    #[test]
    fn invalid_parts_are_reported() {
        let (selector, errors) = Selector::parse("policy=p,colour=red,oops");
        assert_eq!(errors.len(), 2);
        assert!(errors[0].contains("colour=red"));
        assert!(errors[1].contains("<key>=<value>"));
        assert!(
            selector
                .select(&result("policy: p\nresult: pass\n"))
                .is_some()
        );
    }
}
