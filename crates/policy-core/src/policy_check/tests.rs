use std::path::{Path, PathBuf};

use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use kyverno_api::load::documents;

use super::*;

/// The issues of the one ClusterPolicy or Policy in `yaml`, as `(path, message)` pairs.
fn issues(yaml: &str) -> Vec<(String, String)> {
    let documents = documents("test.yaml", yaml).expect("yaml");
    let document = documents.first().expect("one document");
    let found = if document.kind() == "Policy" {
        let policy: Policy = document.decode().expect("Policy");
        check_policy(
            "Policy",
            policy.metadata.name.as_deref().unwrap_or_default(),
            policy.metadata.namespace.as_deref(),
            &policy.spec,
        )
    } else {
        let policy: ClusterPolicy = document.decode().expect("ClusterPolicy");
        check_policy(
            "ClusterPolicy",
            policy.metadata.name.as_deref().unwrap_or_default(),
            None,
            &policy.spec,
        )
    };
    found
        .into_iter()
        .map(|issue| (issue.path, issue.message))
        .collect()
}

fn pair(path: &str, message: &str) -> (String, String) {
    (path.to_owned(), message.to_owned())
}

/// A ClusterPolicy with one rule named `r` made of `rule` (indented YAML fields after `name`),
/// and `spec` fields before `rules`.
fn cluster_policy(spec: &str, rule: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n{spec}  rules:\n  - name: r\n{rule}"
    )
}

const MATCH_PODS: &str = "    match:\n      any:\n      - resources:\n          kinds: [Pod]\n";

fn valid_rule(extra: &str) -> String {
    format!("{MATCH_PODS}{extra}")
}

const PATTERN: &str = "    validate:\n      pattern:\n        spec:\n          containers:\n          - image: '!*:latest'\n";

#[test]
fn display_joins_path_and_message() {
    let issue = PolicyIssue {
        path: "spec.rules[0].match".to_owned(),
        message: "match resources not specified".to_owned(),
    };
    assert_eq!(
        issue.to_string(),
        "spec.rules[0].match: match resources not specified"
    );
}

#[test]
fn valid_validate_rule_has_no_issue() {
    assert_eq!(issues(&cluster_policy("", &valid_rule(PATTERN))), vec![]);
}

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// Top-level policy files of every policy directory of the families without suffix and `-cel`.
fn corpus_policy_files() -> Vec<PathBuf> {
    let root = shared_dir().join("conformance/kyverno-policies");
    let families =
        std::fs::read_dir(&root).unwrap_or_else(|error| panic!("{}: {error}", root.display()));
    let mut files = Vec::new();
    for family in families {
        let family = family.expect("family").path();
        let name = family
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        let other_engine = ["-vpol", "-mpol", "-gpol"]
            .iter()
            .any(|suffix| name.ends_with(suffix));
        if !family.is_dir() || other_engine {
            continue;
        }
        for policy_dir in std::fs::read_dir(&family).expect("policy dirs") {
            let policy_dir = policy_dir.expect("policy dir").path();
            if !policy_dir.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&policy_dir).expect("policy files") {
                let file = file.expect("file").path();
                if file
                    .extension()
                    .is_some_and(|extension| extension == "yaml")
                {
                    files.push(file);
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_corpus_policy_is_valid() {
    let files = corpus_policy_files();
    assert!(files.len() > 200, "too few policy files: {}", files.len());
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let source = file.display().to_string();
        for document in documents(&source, &text).expect("yaml") {
            if document.value.get("spec").is_none() {
                continue;
            }
            let found = match document.kind() {
                "ClusterPolicy" => {
                    let policy: ClusterPolicy = document.decode().expect("ClusterPolicy");
                    let name = policy.metadata.name.clone().unwrap_or_default();
                    check_policy("ClusterPolicy", &name, None, &policy.spec)
                }
                "Policy" => {
                    let policy: Policy = document.decode().expect("Policy");
                    let name = policy.metadata.name.clone().unwrap_or_default();
                    let namespace = policy.metadata.namespace.as_deref().or(Some("default"));
                    check_policy("Policy", &name, namespace, &policy.spec)
                }
                _ => continue,
            };
            checked += 1;
            failures.extend(found.iter().map(|issue| format!("{source}: {issue}")));
        }
    }
    assert!(checked > 200, "too few policies checked: {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rule_without_or_with_several_types() {
    assert_eq!(
        issues(&cluster_policy("", MATCH_PODS)),
        vec![pair(
            "spec.rules[0]",
            "No operation defined in the rule 'r'.(supported operations: mutate,validate,generate,verifyImages)"
        )]
    );
    let mixed = valid_rule(&format!(
        "{PATTERN}    mutate:\n      patchStrategicMerge:\n        metadata:\n          labels:\n            a: b\n"
    ));
    assert_eq!(
        issues(&cluster_policy("", &mixed)),
        vec![pair(
            "spec.rules[0]",
            "Multiple operations defined in the rule 'r', only one operation (mutate,validate,generate,verifyImages) is allowed per rule"
        )]
    );
}

#[test]
fn policy_and_rule_names() {
    let long = "x".repeat(64);
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: {long}\nspec:\n  rules:\n  - name: r\n{rule}  - name: r\n{rule}  - name: {long}\n{rule}",
        rule = valid_rule(PATTERN)
    );
    assert_eq!(
        issues(&yaml),
        vec![
            pair("metadata.name", "Too long: may not be more than 63 bytes"),
            pair("spec.rules[1].name", "Duplicate rule name: 'r'"),
            pair(
                "spec.rules[2].name",
                "Too long: may not be more than 63 bytes"
            ),
        ]
    );
}

#[test]
fn match_must_select_resources_with_kinds() {
    assert_eq!(
        issues(&cluster_policy("", &format!("    match: {{}}\n{PATTERN}"))),
        vec![pair(
            "spec.rules[0].match.resources",
            "match resources not specified"
        )]
    );
    let no_kinds =
        format!("    match:\n      any:\n      - resources:\n          namespaces: [a]\n{PATTERN}");
    assert_eq!(
        issues(&cluster_policy("", &no_kinds)),
        vec![pair(
            "spec.rules[0].match.any[0].resources.kinds",
            "policy can only deal with the metadata field of the resource if the rule does not match any kind"
        )]
    );
    let metadata_only = "    match:\n      any:\n      - resources:\n          namespaces: [a]\n    validate:\n      pattern:\n        metadata:\n          labels:\n            app: '?*'\n";
    assert_eq!(
        issues(&cluster_policy("", metadata_only)),
        vec![pair(
            "spec.rules[0].match.any[0].resources.kinds",
            "at least one element must be specified in a kind block, the kind attribute is mandatory when working with the resources element"
        )]
    );
    let mixed_forms = format!(
        "    match:\n      resources:\n        kinds: [Pod]\n      any:\n      - resources:\n          kinds: [Pod]\n{PATTERN}"
    );
    assert_eq!(
        issues(&cluster_policy("", &mixed_forms)),
        vec![pair(
            "spec.rules[0].match",
            "can't specify any/all together with match resources"
        )]
    );
}

#[test]
fn invalid_match_and_exclude_blocks_are_reported_by_the_matching_checks() {
    let rule = format!(
        "    match:\n      any:\n      - resources:\n          kinds: [Pod]\n      all:\n      - resources:\n          kinds: [Pod]\n    exclude:\n      any:\n      - subjects:\n        - kind: Robot\n          name: r2\n{PATTERN}"
    );
    assert_eq!(
        issues(&cluster_policy("  background: false\n", &rule)),
        vec![
            pair("spec.rules[0].match", "Can't specify any and all together"),
            pair(
                "spec.rules[0].exclude.any[0].subjects[0].kind",
                "Invalid value: \"Robot\": kind must be 'User', 'Group', or 'ServiceAccount'"
            ),
        ]
    );
}

#[test]
fn exclude_covering_match_selects_nothing() {
    let same_filter = format!(
        "{MATCH_PODS}    exclude:\n      any:\n      - resources:\n          kinds: [Pod]\n{PATTERN}"
    );
    assert_eq!(
        issues(&cluster_policy("", &same_filter)),
        vec![pair("spec.rules[0]", "Rule is matching an empty set")]
    );
    let legacy = format!(
        "    match:\n      resources:\n        kinds: [Pod]\n        namespaces: [a]\n    exclude:\n      resources:\n        kinds: [Pod, Service]\n        namespaces: [a, b]\n{PATTERN}"
    );
    assert_eq!(
        issues(&cluster_policy("", &legacy)),
        vec![pair("spec.rules[0]", "Rule is matching an empty set")]
    );
    let narrower = format!(
        "    match:\n      resources:\n        kinds: [Pod]\n    exclude:\n      resources:\n        kinds: [Pod]\n        namespaces: [kube-system]\n{PATTERN}"
    );
    assert_eq!(issues(&cluster_policy("", &narrower)), vec![]);
}

#[test]
fn pattern_anchors_are_checked_with_their_path() {
    let rule = valid_rule(
        "    validate:\n      pattern:\n        spec:\n          containers:\n          - +(imagePullPolicy): Always\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![pair(
            "spec.rules[0].validate.pattern.spec.containers[0].+(imagePullPolicy)",
            "unsupported anchor +(imagePullPolicy)"
        )]
    );
    let any_pattern = valid_rule(
        "    validate:\n      anyPattern:\n      - spec:\n          ^(containers): []\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &any_pattern)),
        vec![pair(
            "spec.rules[0].validate.anyPattern[0].spec.^(containers)",
            "existence anchor: should have at least one value"
        )]
    );
    let not_a_list = valid_rule("    validate:\n      anyPattern:\n        spec: {}\n");
    assert_eq!(
        issues(&cluster_policy("", &not_a_list)),
        vec![pair(
            "spec.rules[0].validate.anyPattern",
            "failed to deserialize anyPattern, expect array: json: cannot unmarshal object into Go value of type []interface {}"
        )]
    );
}

#[test]
fn validate_declares_exactly_one_check() {
    let none = valid_rule("    validate:\n      message: m\n");
    assert_eq!(
        issues(&cluster_policy("", &none)),
        vec![pair(
            "spec.rules[0].validate",
            "one of pattern, anyPattern, deny, foreach, cel must be specified"
        )]
    );
    let two = valid_rule(&format!("{PATTERN}      deny: {{}}\n"));
    assert_eq!(
        issues(&cluster_policy("", &two)),
        vec![pair(
            "spec.rules[0].validate",
            "only one of pattern, anyPattern, deny, foreach, cel can be specified"
        )]
    );
}

#[test]
fn foreach_needs_a_list_and_one_check() {
    let rule = valid_rule(
        "    validate:\n      foreach:\n      - deny: {}\n        pattern:\n          name: a\n      - list: request.object.spec.containers\n        foreach:\n        - list: element.ports\n          deny: {}\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![
            pair(
                "spec.rules[0].validate.foreach[0].list",
                "foreach.list is required"
            ),
            pair(
                "spec.rules[0].validate.foreach[0]",
                "only one of pattern, anyPattern, deny, or a nested foreach can be specified"
            ),
        ]
    );
    let bad_nested = valid_rule(
        "    validate:\n      foreach:\n      - list: request.object.spec.containers\n        foreach: 3\n",
    );
    let found = issues(&cluster_policy("", &bad_nested));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "spec.rules[0].validate.foreach[0].foreach");
    assert!(
        found[0].1.starts_with("invalid nested foreach: "),
        "{found:?}"
    );
}

#[test]
fn condition_operators_must_be_spelled_exactly() {
    let rule = valid_rule(
        "    preconditions:\n      any:\n      - key: a\n        operator: equals\n        value: a\n    validate:\n      deny:\n        conditions:\n          all:\n          - key: a\n            operator: Matches\n            value: b\n",
    );
    let invalid = "entered value of `operator` is invalid. valid values: [\"Equal\" \"Equals\" \"NotEqual\" \"NotEquals\" \"In\" \"AnyIn\" \"AllIn\" \"NotIn\" \"AnyNotIn\" \"AllNotIn\" \"GreaterThanOrEquals\" \"GreaterThan\" \"LessThanOrEquals\" \"LessThan\" \"DurationGreaterThanOrEquals\" \"DurationGreaterThan\" \"DurationLessThanOrEquals\" \"DurationLessThan\"]";
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![
            pair("spec.rules[0].preconditions.any[0].operator", invalid),
            pair(
                "spec.rules[0].validate.deny.conditions.all[0].operator",
                invalid
            ),
        ]
    );
    let deprecated_spelling = valid_rule(
        "    preconditions:\n      all:\n      - key: a\n        operator: NotEqual\n        value: b\n    validate:\n      deny: {}\n",
    );
    assert_eq!(issues(&cluster_policy("", &deprecated_spelling)), vec![]);
}

#[test]
fn conditions_need_key_value_and_operator() {
    let rule = valid_rule(
        "    preconditions:\n    - key: a\n      operator: Equals\n    validate:\n      deny:\n        conditions:\n          any:\n          - key: '{{ request.operation }}'\n            operator: AnyIn\n            value: [CREATE, PATCH]\n          - key: '{{request.operation}}'\n            operator: Equals\n            value: true\n          - key: '{{request.operation}}'\n            operator: Equals\n            value: '{{ ops.data.allowed }}'\n          - operator: Equals\n            value: x\n    context:\n    - name: ops\n      configMap:\n        name: cm\n        namespace: default\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![
            pair(
                "spec.rules[0].preconditions[0]",
                "entered value of `key`, `value` or `operator` is missing or misspelled"
            ),
            pair(
                "spec.rules[0].validate.deny.conditions.any[0].value[1]",
                "unknown value 'PATCH' found under the 'value' field. Only the following values are allowed: [CREATE, UPDATE, DELETE, CONNECT]"
            ),
            pair(
                "spec.rules[0].validate.deny.conditions.any[1].value",
                "'value' field found to be of the type bool. The provided value/values are expected to be either in the form of a string or list"
            ),
            pair(
                "spec.rules[0].validate.deny.conditions.any[3]",
                "entered value of `key`, `value` or `operator` is missing or misspelled"
            ),
        ]
    );
}

#[test]
fn malformed_conditions_are_rejected_by_the_parser() {
    let rule = valid_rule("    preconditions: 3\n    validate:\n      deny: {}\n");
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![pair(
            "spec.rules[0].preconditions",
            "conditions must be an object with `any`/`all` or a list of conditions"
        )]
    );
}

#[test]
fn foreach_conditions_check_operators_only() {
    let rule = valid_rule(
        "    validate:\n      foreach:\n      - list: request.object.spec.containers\n        deny:\n          conditions:\n            any:\n            - key: '{{ element.name }}'\n              operator: Contains\n              value: x\n            - operator: Equals\n",
    );
    let found = issues(&cluster_policy("", &rule));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].0,
        "spec.rules[0].validate.foreach[0].deny.conditions.any[0].operator"
    );
}

#[test]
fn pod_security_declarations_are_checked() {
    let rule = valid_rule(
        "    validate:\n      podSecurity:\n        level: baseline\n        version: v2.0\n        exclude:\n        - controlName: Capabilities\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![
            pair(
                "spec.rules[0].validate.podSecurity.version",
                "Invalid value: \"v2.0\": must be \"latest\" or \"v1.x\""
            ),
            pair(
                "spec.rules[0].validate.podSecurity.exclude[0].controlName",
                "Invalid value: \"Capabilities\": exclude.images must be specified for the container level control"
            ),
        ]
    );
}

const DENY_ALWAYS: &str = "    validate:\n      deny: {}\n";

#[test]
fn variables_must_parse_and_name_something_the_rule_knows() {
    let rule = valid_rule(
        "    validate:\n      message: '{{ request.object.metadata.name | }}'\n      deny:\n        conditions:\n          any:\n          - key: '{{ unknown.value }}'\n            operator: Equals\n            value: '{{ cm.data.key }}'\n          - key: '{{ to_upper(other) }}'\n            operator: Equals\n            value: '{{ \"my-vars\".a }}'\n    context:\n    - name: cm\n      configMap:\n        name: c\n        namespace: default\n    - name: my-vars\n      variable:\n        value: {a: b}\n",
    );
    let found = issues(&cluster_policy("", &rule));
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0].0,
        "spec.rules[0].validate.deny.conditions.any[0].key"
    );
    assert_eq!(
        found[0].1,
        "policy contains invalid variables: variable substitution failed for rule r: variable unknown.value must match regex \"request\\.|element|elementIndex|@|images|images\\.|image\\.|([a-z_0-9]+\\()[^{}]\" or patterns [cm.data cm.metadata cm.data.* cm.metadata.* my-vars*]"
    );
    assert_eq!(found[1].0, "spec.rules[0].validate.message");
    assert!(
        found[1].1.starts_with(
            "policy contains invalid variables: variable substitution failed for rule r: failed to resolve request.object.metadata.name |: invalid JMESPath query request.object.metadata.name |: SyntaxError: "
        ),
        "{found:?}"
    );
}

#[test]
fn nested_and_escaped_variables() {
    let rule = valid_rule(
        "    validate:\n      message: '{{ images.containers.\"{{ request.object.metadata.name }}\".tag }} \\{{ not.a.variable }}'\n      deny: {}\n",
    );
    assert_eq!(issues(&cluster_policy("", &rule)), vec![]);
    let unknown_inner = valid_rule(
        "    validate:\n      message: '{{ images.containers.\"{{ who }}\".tag }}'\n      deny: {}\n",
    );
    let found = issues(&cluster_policy("", &unknown_inner));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].1.contains("variable who must match regex"),
        "{found:?}"
    );
}

#[test]
fn admission_only_policies_allow_more_variables() {
    let rule = valid_rule(
        "    validate:\n      message: '{{ serviceAccountName }} {{ request.userInfo.username }}'\n      deny: {}\n",
    );
    assert_eq!(
        issues(&cluster_policy("  background: false\n", &rule)),
        vec![]
    );
    let found = issues(&cluster_policy("", &rule));
    assert_eq!(
        found,
        vec![
            pair(
                "spec.rules[0].validate.message",
                "only select variables are allowed in background mode. Set spec.background=false to disable background mode for this policy rule: variable {{ serviceAccountName }} is not allowed"
            ),
            pair(
                "spec.rules[0].validate.message",
                "policy contains invalid variables: variable substitution failed for rule r: variable serviceAccountName must match regex \"request\\.|element|elementIndex|@|images|images\\.|image\\.|([a-z_0-9]+\\()[^{}]\" or patterns []"
            ),
        ]
    );
}

#[test]
fn background_rules_cannot_filter_on_users() {
    let rule = format!(
        "    match:\n      any:\n      - resources:\n          kinds: [Pod]\n        subjects:\n        - kind: User\n          name: alice\n{DENY_ALWAYS}"
    );
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![pair(
            "spec.rules[0].match.any[0].subjects",
            "only select variables are allowed in background mode. Set spec.background=false to disable background mode for this policy rule: invalid variable used at path: spec/rules[0]/match/any[0]/subjects"
        )]
    );
    assert_eq!(
        issues(&cluster_policy("  background: false\n", &rule)),
        vec![]
    );
}

#[test]
fn variables_are_forbidden_where_they_cannot_be_known() {
    let rule = "    match:\n      any:\n      - resources:\n          kinds: [Pod]\n          names: ['{{ request.object.metadata.name }}']\n    mutate:\n      patchesJson6902: |-\n        - op: add\n          path: /metadata/labels/{{ request.object.kind }}\n          value: x\n";
    assert_eq!(
        issues(&cluster_policy("", rule)),
        vec![
            pair(
                "spec.rules[0].mutate.patchesJson6902",
                "policy contains invalid variables: rule \"r\" should not have variables in patchesJSON6902 path section"
            ),
            pair(
                "spec.rules[0].match",
                "policy contains invalid variables: rule \"r\" should not have variables in match section"
            ),
        ]
    );
}

#[test]
fn element_variables_belong_in_foreach() {
    let rule = valid_rule(
        "    validate:\n      message: '{{ element.name }}'\n      foreach:\n      - list: request.object.spec.containers\n        deny:\n          conditions:\n            any:\n            - key: '{{ element.name }}'\n              operator: Equals\n              value: '{{ elementIndex }}'\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![pair(
            "spec.rules[0].validate.message",
            "variable 'element.name' present outside of foreach"
        )]
    );
}

#[test]
fn context_entries_need_exactly_one_valid_source() {
    let rule = valid_rule(&format!(
        "{DENY_ALWAYS}    context:\n    - name: none\n    - name: two\n      variable:\n        value: 1\n      configMap:\n        name: c\n        namespace: d\n    - name: request.x\n      variable:\n        value: 1\n    - name: cm\n      configMap:\n        name: c\n    - name: v\n      variable:\n        default: 1\n    - name: w\n      variable:\n        jmesPath: 'a.['\n    - name: call\n      apiCall:\n        urlPath: /api/v1/pods\n        jmesPath: 'items | length(@)'\n    - name: ''\n      variable:\n        value: 1\n"
    ));
    let one_source = "exactly one of configMap or apiCall or imageRegistry or variable is required for context entries";
    let found = issues(&cluster_policy("", &rule));
    assert_eq!(found.len(), 7, "{found:?}");
    assert_eq!(
        found[..5],
        [
            pair("spec.rules[0].context[0]", one_source),
            pair("spec.rules[0].context[1]", one_source),
            pair(
                "spec.rules[0].context[2]",
                "entry name request.x is invalid as it conflicts with a pre-defined variable request"
            ),
            pair(
                "spec.rules[0].context[3]",
                "a namespace is required for configMap context entry"
            ),
            pair(
                "spec.rules[0].context[4]",
                "a variable must define a value or a jmesPath expression"
            ),
        ]
    );
    assert_eq!(
        found[5],
        pair(
            "spec.rules[0].context[5]",
            "failed to parse JMESPath a.[: SyntaxError: Incomplete expression"
        )
    );
    assert_eq!(
        found[6],
        pair(
            "spec.rules[0].context[7]",
            "a name is required for context entries"
        )
    );
}

#[test]
fn failure_action_overrides_must_not_conflict() {
    let spec = "  validationFailureAction: Enforce\n  validationFailureActionOverrides:\n  - action: Audit\n    namespaces: [dev, test]\n  - action: Enforce\n    namespaces: [prod, test]\n";
    assert_eq!(
        issues(&cluster_policy(spec, &valid_rule(PATTERN))),
        vec![pair(
            "spec.validationFailureActionOverrides[1].namespaces",
            "conflicting namespaces found: test"
        )]
    );
    let wildcards = "  validationFailureActionOverrides:\n  - action: Audit\n    namespaces: ['dev-*']\n  - action: Enforce\n    namespaces: [dev-1]\n";
    assert_eq!(
        issues(&cluster_policy(wildcards, &valid_rule(PATTERN))),
        vec![pair(
            "spec.validationFailureActionOverrides[1].namespaces",
            "wildcard pattern 'dev-*' matches with namespace 'dev-1'"
        )]
    );
    let without_action = "  validationFailureActionOverrides:\n  - namespaces: [dev]\n";
    assert_eq!(
        issues(&cluster_policy(without_action, &valid_rule(PATTERN))),
        vec![pair(
            "spec.validationFailureActionOverrides[0].action",
            "invalid action"
        )]
    );
    let rule_level = valid_rule(
        "    validate:\n      failureActionOverrides:\n      - action: Audit\n        namespaces: ['*']\n      - action: Enforce\n        namespaces: ['prod*']\n      deny: {}\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &rule_level)),
        vec![pair(
            "spec.rules[0].validate.failureActionOverrides[1].namespaces",
            "wildcard pattern '*' conflicts with the pattern 'prod*'"
        )]
    );
}

fn namespaced_policy(rule: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: Policy\nmetadata:\n  name: p\n  namespace: team\nspec:\n  validationFailureActionOverrides:\n  - action: Audit\n    namespaces: [team]\n  rules:\n  - name: r\n{rule}"
    )
}

#[test]
fn namespaced_policies_stay_in_their_namespace() {
    let rule = "    match:\n      any:\n      - resources:\n          kinds: [ConfigMap]\n          namespaces: [other]\n    generate:\n      apiVersion: v1\n      kind: Secret\n      name: s\n      namespace: other\n      data: {}\n";
    assert_eq!(
        issues(&namespaced_policy(rule)),
        vec![
            pair(
                "spec.validationFailureActionOverrides",
                "Forbidden: Use of validationFailureActionOverrides is supported only with ClusterPolicy"
            ),
            pair(
                "spec.rules[0].match.any[0].resources.namespaces",
                "Filtering namespaces not allowed in namespaced policies"
            ),
            pair(
                "spec.rules[0].generate.namespace",
                "Forbidden: target resource scope mismatched: a namespaced policy cannot generate resources in other namespaces, expected: team, received: other"
            ),
        ]
    );
    let mutate = "    match:\n      any:\n      - resources:\n          kinds: [ConfigMap]\n    mutate:\n      targets:\n      - apiVersion: v1\n        kind: Secret\n        namespace: other\n      patchStrategicMerge:\n        metadata:\n          labels:\n            a: b\n";
    assert_eq!(
        issues(&namespaced_policy(mutate))[1..],
        [pair(
            "spec.rules[0].mutate.targets[0].namespace",
            "Invalid value: \"other\": This field can be ignored or should have value of the namespace where the policy is being created"
        )]
    );
}

#[test]
fn wildcard_kind_rules_are_restricted() {
    let rule = |kinds: &str, action: &str| {
        format!("    match:\n      any:\n      - resources:\n          kinds: {kinds}\n{action}")
    };
    let labels_only = "    validate:\n      pattern:\n        metadata:\n          labels:\n            team: '?*'\n";
    assert_eq!(
        issues(&cluster_policy("", &rule("['*']", labels_only))),
        vec![pair(
            "spec.rules[0].match.any[0].resources.kinds",
            "wildcard policy not allowed in background mode. Set spec.background=false to disable background mode for this policy rule"
        )]
    );
    let admission = "  background: false\n";
    assert_eq!(
        issues(&cluster_policy(admission, &rule("['*']", labels_only))),
        vec![]
    );
    assert_eq!(
        issues(&cluster_policy(admission, &rule("['*', Pod]", labels_only))),
        vec![pair(
            "spec.rules[0].match.any[0].resources.kinds",
            "wildcard policy can not deal with more than one kind"
        )]
    );
    assert_eq!(
        issues(&cluster_policy(admission, &rule("['*']", PATTERN))),
        vec![pair(
            "spec.rules[0].match.any[0].resources.kinds",
            "policy can only deal with the metadata field of the resource if the rule does not match any kind"
        )]
    );
}

#[test]
fn mutate_rules_hold_one_kind_of_patch() {
    let both = valid_rule(
        "    mutate:\n      patchStrategicMerge:\n        metadata:\n          labels:\n            a: b\n      patchesJson6902: '[]'\n      foreach:\n      - list: request.object.spec.containers\n        patchesJson6902: '[]'\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &both)),
        vec![pair(
            "spec.rules[0].mutate.foreach",
            "only one of `foreach`, `patchStrategicMerge`, or `patchesJson6902` is allowed"
        )]
    );
    let foreach = valid_rule(
        "    mutate:\n      foreach:\n      - list: request.object.spec.containers\n      - list: request.object.spec.containers\n        context:\n        - name: x\n          variable:\n            value: 1\n        foreach:\n        - list: element.ports\n          patchesJson6902: '[]'\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &foreach)),
        vec![
            pair(
                "spec.rules[0].mutate.foreach[0]",
                "only one of `patchStrategicMerge` or `patchesJson6902` is allowed"
            ),
            pair(
                "spec.rules[0].mutate.foreach[1]",
                "a nested foreach cannot contain other declarations"
            ),
        ]
    );
}

#[test]
fn json_patches_are_checked() {
    let rule = valid_rule(
        "    mutate:\n      patchesJson6902: |-\n        - op: add\n          path: metadata/labels/a\n          value: x\n        - op: upsert\n          path: /spec\n        - op: replace\n          path: /spec/x\n        - op: remove\n          path: /spec/y\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![
            pair(
                "spec.rules[0].mutate.patchesJson6902",
                "path must begin with a forward slash: metadata/labels/a"
            ),
            pair(
                "spec.rules[0].mutate.patchesJson6902",
                "unexpected kind: upsert"
            ),
            pair(
                "spec.rules[0].mutate.patchesJson6902",
                "invalid value: operation, missing value field: missing value"
            ),
        ]
    );
    let with_variable = valid_rule(
        "    mutate:\n      patchesJson6902: |-\n        - op: add\n          path: /metadata/labels/a\n          value: '{{ request.object.metadata.name }}'\n",
    );
    assert_eq!(issues(&cluster_policy("", &with_variable)), vec![]);
}

const GENERATE_MATCH: &str =
    "    match:\n      any:\n      - resources:\n          kinds: [Namespace]\n";

#[test]
fn generate_rules_need_a_target() {
    let rule = format!(
        "{GENERATE_MATCH}    generate:\n      kind: ConfigMap\n      data:\n        metadata:\n          (name): x\n      clone:\n        name: a\n        namespace: b\n"
    );
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![
            pair(
                "spec.rules[0].generate",
                "Forbidden: only one of generate patterns(data, clone, cloneList and foreach) can be specified"
            ),
            pair(
                "spec.rules[0].generate.data.metadata.(name)",
                "anchors not supported on generate resources: unsupported anchor (name)"
            ),
        ]
    );
    let incomplete = format!(
        "{GENERATE_MATCH}    generate:\n      kind: ConfigMap\n      clone:\n        name: '{{{{ request.object.metadata.name }}}}'\n        namespace: default\n"
    );
    assert_eq!(
        issues(&cluster_policy("", &incomplete)),
        vec![
            pair(
                "spec.rules[0].generate.namespace",
                "Forbidden: target namespace must be set for a namespaced resource"
            ),
            pair(
                "spec.rules[0].generate.clone/cloneList",
                "Forbidden: Generation Rule Clone/CloneList should not have variables"
            ),
            pair(
                "spec.rules[0].generate.name",
                "Forbidden: name can not be empty"
            ),
            pair(
                "spec.rules[0].generate.apiVersion",
                "Forbidden: apiVersion can not be empty"
            ),
        ]
    );
}

#[test]
fn generate_scope_comes_from_the_caller() {
    let rule = format!(
        "{GENERATE_MATCH}    generate:\n      apiVersion: rbac.authorization.k8s.io/v1\n      kind: ClusterRole\n      name: '{{{{ request.object.metadata.name }}}}'\n      data: {{}}\n"
    );
    let yaml = cluster_policy("", &rule);
    let documents = documents("test.yaml", &yaml).expect("yaml");
    let policy: ClusterPolicy = documents[0].decode().expect("policy");
    assert_eq!(
        check_policy("ClusterPolicy", "p", None, &policy.spec),
        vec![PolicyIssue {
            path: "spec.rules[0].generate.namespace".to_owned(),
            message: "Forbidden: target namespace must be set for a namespaced resource".to_owned()
        }]
    );
    let cluster_scoped = |kind: &str| kind.ends_with("/ClusterRole");
    assert_eq!(
        check_policy_with_scope("ClusterPolicy", "p", None, &policy.spec, &cluster_scoped),
        vec![]
    );
}

#[test]
fn generate_kind_differs_from_matched_kind() {
    let rule = "    match:\n      resources:\n        kinds: [ConfigMap]\n    generate:\n      apiVersion: v1\n      kind: ConfigMap\n      name: copy\n      namespace: default\n      data: {}\n";
    assert_eq!(
        issues(&cluster_policy("", rule)),
        vec![pair(
            "spec.rules[0].generate.kind",
            "generation kind and match resource kind should not be the same"
        )]
    );
}

#[test]
fn verify_images_rules_need_images_and_attestors() {
    let rule = valid_rule(
        "    verifyImages:\n    - mutateDigest: true\n      attestors:\n      - count: 2\n        entries:\n        - keys:\n            signatureAlgorithm: md5\n        - certificates: {}\n          keyless:\n            rekor:\n              url: ''\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![
            pair(
                "spec.rules[0].verifyImages[0].mutateDigest",
                "Invalid value: true: mutateDigest must be set to false for \u{2018}Audit\u{2019} failure action"
            ),
            pair(
                "spec.rules[0].verifyImages[0]",
                "An image reference is required"
            ),
            pair(
                "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys",
                "A public key, kms key or secret is required"
            ),
            pair(
                "spec.rules[0].verifyImages[0].attestors[0].entries[1]",
                "keys, certificates, keyless, or a nested attestor is required"
            ),
            pair(
                "spec.rules[0].verifyImages[0].attestors[0].entries[1].certificates",
                "cert or certChain required"
            ),
            pair(
                "spec.rules[0].verifyImages[0].attestors[0].entries[1].keyless",
                "An URL is required"
            ),
        ]
    );
    let valid = valid_rule(
        "    verifyImages:\n    - imageReferences: ['ghcr.io/org/*']\n      failureAction: Enforce\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: k8s://ns/key\n",
    );
    assert_eq!(issues(&cluster_policy("", &valid)), vec![]);
    let variable_reference = valid_rule(
        "    verifyImages:\n    - imageReferences: ['{{ request.object.spec.image }}']\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: k\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &variable_reference)),
        vec![pair(
            "spec.rules[0].verifyImages[0].imageReferences",
            "policy contains invalid variables: rule \"r\" should not have variables in image reference section"
        )]
    );
}

#[test]
fn cel_rules_are_accepted_structurally() {
    let rule = valid_rule(
        "    celPreconditions:\n    - name: create\n      expression: request.operation == 'CREATE'\n    validate:\n      cel:\n        expressions:\n        - expression: object.spec.replicas <= 5\n          message: too many\n",
    );
    assert_eq!(issues(&cluster_policy("", &rule)), vec![]);
    let incomplete = valid_rule(
        "    validate:\n      cel:\n        paramRef:\n          name: p\n          selector: {}\n        expressions:\n        - expression: ''\n",
    );
    assert_eq!(
        issues(&cluster_policy("", &incomplete)),
        vec![
            pair(
                "spec.rules[0].validate.cel.expressions[0].expression",
                "cel.expressions.expression is required"
            ),
            pair(
                "spec.rules[0].validate.cel.paramRef",
                "one of cel.paramRef.name or cel.paramRef.selector must be set"
            ),
            pair(
                "spec.rules[0].validate.cel.paramRef.parameterNotFoundAction",
                "cel.paramRef.parameterNotFoundAction is required"
            ),
            pair(
                "spec.rules[0].validate.cel.paramKind",
                "cel.paramKind is required"
            ),
        ]
    );
    let stray_precondition = valid_rule(&format!(
        "    celPreconditions:\n    - name: create\n      expression: 'true'\n{PATTERN}"
    ));
    assert_eq!(
        issues(&cluster_policy("", &stray_precondition)),
        vec![pair(
            "spec.rules[0].celPreconditions",
            "celPrecondition can only be used with validate.cel"
        )]
    );
}

#[test]
fn webhook_settings_and_processing_modes() {
    let spec = "  admission: false\n  background: false\n  webhookTimeoutSeconds: 31\n  failurePolicy: Ignore\n  webhookConfiguration:\n    failurePolicy: Fail\n    timeoutSeconds: 0\n";
    assert_eq!(
        issues(&cluster_policy(spec, &valid_rule(PATTERN))),
        vec![
            pair(
                "spec.webhookTimeoutSeconds",
                "Forbidden: remove the deprecated field and use spec.webhookConfiguration.timeoutSeconds instead"
            ),
            pair(
                "spec.failurePolicy",
                "Forbidden: remove the deprecated field and use spec.webhookConfiguration.failurePolicy instead"
            ),
            pair(
                "spec.webhookTimeoutSeconds",
                "Invalid value: 31: the timeout value must be between 1 and 30 seconds"
            ),
            pair(
                "spec.webhookConfiguration.timeoutSeconds",
                "Invalid value: 0: the timeout value must be between 1 and 30 seconds"
            ),
            pair(
                "spec.admission",
                "disabling both admission and background processing is not allowed"
            ),
        ]
    );
    let mutate = valid_rule(
        "    mutate:\n      patchStrategicMerge:\n        metadata:\n          labels:\n            a: b\n",
    );
    assert_eq!(
        issues(&cluster_policy("  admission: false\n", &mutate)),
        vec![pair(
            "spec.admission",
            "disabling admission processing is only allowed with validation policies"
        )]
    );
}

#[test]
fn mutate_existing_on_policy_update_needs_targets() {
    let rule = valid_rule(
        "    mutate:\n      mutateExistingOnPolicyUpdate: true\n      patchStrategicMerge:\n        metadata:\n          labels:\n            a: b\n",
    );
    assert_eq!(
        issues(&cluster_policy(
            "  mutateExistingOnPolicyUpdate: true\n",
            &rule
        )),
        vec![
            pair(
                "spec.mutateExistingOnPolicyUpdate",
                "Forbidden: remove the deprecated field and use spec.mutate[*].mutateExistingOnPolicyUpdate instead"
            ),
            pair(
                "spec.rules[0].mutate.targets",
                "Forbidden: rules[0].mutate.targets has to be specified when mutateExistingOnPolicyUpdate is set"
            ),
        ]
    );
}

#[test]
fn label_and_annotation_values_are_strings() {
    let rule = valid_rule(
        "    validate:\n      pattern:\n        metadata:\n          labels:\n            replicas: 3\n        spec:\n          template:\n            metadata:\n              annotations:\n                enabled: true\n",
    );
    let message = "labels and annotations supports only string values, \"use double quotes around the non string values\"";
    assert_eq!(
        issues(&cluster_policy("", &rule)),
        vec![
            pair(
                "spec.rules[0].validate.pattern.metadata.labels.replicas",
                message
            ),
            pair(
                "spec.rules[0].validate.pattern.spec.template.metadata.annotations.enabled",
                message
            ),
        ]
    );
}

#[test]
fn complete_rules_of_every_type_are_valid() {
    let mutate = valid_rule(
        "    mutate:\n      foreach:\n      - list: request.object.spec.containers\n        preconditions:\n          all:\n          - key: '{{ element.name }}'\n            operator: NotEquals\n            value: sidecar\n        patchStrategicMerge:\n          spec:\n            containers:\n            - (name): '{{ element.name }}'\n              +(imagePullPolicy): IfNotPresent\n",
    );
    assert_eq!(issues(&cluster_policy("", &mutate)), vec![]);
    let generate = format!(
        "{GENERATE_MATCH}    generate:\n      apiVersion: v1\n      kind: ConfigMap\n      name: defaults\n      namespace: '{{{{ request.object.metadata.name }}}}'\n      synchronize: true\n      clone:\n        namespace: default\n        name: defaults\n"
    );
    assert_eq!(issues(&cluster_policy("", &generate)), vec![]);
    let targets = "    match:\n      any:\n      - resources:\n          kinds: [Secret]\n    mutate:\n      mutateExistingOnPolicyUpdate: true\n      targets:\n      - apiVersion: v1\n        kind: ConfigMap\n        namespace: '{{ request.object.metadata.namespace }}'\n      patchStrategicMerge:\n        metadata:\n          labels:\n            secret: '{{ request.object.metadata.name }}'\n            target: '{{ target.metadata.name }}'\n";
    assert_eq!(issues(&cluster_policy("", targets)), vec![]);
}

#[test]
fn mutate_existing_rules_applied_on_policy_updates_have_no_requester() {
    let rule = "    match:\n      any:\n      - resources:\n          kinds: [Secret]\n    mutate:\n      mutateExistingOnPolicyUpdate: true\n      targets:\n      - apiVersion: v1\n        kind: ConfigMap\n        namespace: default\n      patchStrategicMerge:\n        metadata:\n          labels:\n            by: '{{ serviceAccountName }}'\n";
    assert_eq!(
        issues(&cluster_policy("  background: false\n", rule)),
        vec![pair(
            "spec.rules[0].mutate.patchStrategicMerge.metadata.labels.by",
            "update event, policy contains invalid variables: variable substitution failed for rule r: variable serviceAccountName must match regex \"request\\.|element|elementIndex|@|images|images\\.|image\\.|target\\.|([a-z_0-9]+\\()[^{}]\" or patterns []"
        )]
    );
}
