//! JSON output: Go-style JSON text (as upstream's `json.Marshal` / `json.MarshalIndent` write
//! it) and the machine-readable report of `kyverno test --output json`.
use serde::Serialize;
use serde_json::Value;

/// `value` as Go's `json.MarshalIndent(value, "", "  ")` writes it: keys sorted, numbers as
/// float64, `<`, `>`, `&` escaped, empty objects and arrays kept on one line.
pub fn go_json_pretty(value: &Value) -> String {
    indent(&kyverno_policy_core::jmespath::json_string(value))
}

/// `value` as Go's `json.Marshal` writes it.
pub fn go_json_compact(value: &Value) -> String {
    kyverno_policy_core::jmespath::json_string(value)
}

/// Re-indents compact JSON text with two spaces per level.
fn indent(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = compact.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(character) = chars.next() {
        if in_string {
            out.push(character);
            match (escaped, character) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => {
                in_string = true;
                out.push(character);
            }
            '{' | '[' => {
                out.push(character);
                let closing = if character == '{' { '}' } else { ']' };
                if chars.peek() == Some(&closing) {
                    out.push(closing);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(character);
            }
            ',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            _ => out.push(character),
        }
    }
    out
}

/// The report of `kyverno test --output json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TestReport {
    /// One entry per test document.
    pub tests: Vec<TestEntry>,
    /// Row counts over every test.
    pub summary: Summary,
}

/// One test document: where it is, and its rows or why it could not run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TestEntry {
    /// The test file.
    pub path: String,
    /// The test's `metadata.name`.
    pub name: String,
    /// Why the test could not be loaded or run.
    pub error: Option<String>,
    /// The compared rows.
    pub rows: Vec<RowEntry>,
}

/// One compared row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RowEntry {
    /// The policy, as the test names it.
    pub policy: String,
    /// The rule.
    pub rule: String,
    /// The resource, `apiVersion/Kind/namespace/name`.
    pub resource: String,
    /// The expected kind.
    pub kind: String,
    /// The expected result.
    pub expected: String,
    /// The result the engine gave; `null` when the policy gave no rule response.
    pub actual: Option<String>,
    /// Whether the expectation is met.
    pub ok: bool,
    /// `Ok`, `Want x, got y`, `Excluded`, `Not found`, `Invalid Policy`.
    pub reason: String,
}

/// Row counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Every row.
    pub rows: usize,
    /// Rows whose expectation is met.
    pub passed: usize,
    /// Rows whose expectation is not met.
    pub failed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_json_is_indented_like_go() {
        let value = json!({"b": [1, 2.5, {"c": "x,y:{}"}], "a": {}, "d": [], "e": "<&>"});
        assert_eq!(
            go_json_pretty(&value),
            "{\n  \"a\": {},\n  \"b\": [\n    1,\n    2.5,\n    {\n      \"c\": \"x,y:{}\"\n    }\n  ],\n  \"d\": [],\n  \"e\": \"\\u003c\\u0026\\u003e\"\n}"
        );
    }

    #[test]
    fn scalars_and_escaped_quotes_are_kept() {
        assert_eq!(go_json_pretty(&json!("a\"b")), "\"a\\\"b\"");
        assert_eq!(go_json_pretty(&json!(3.0)), "3");
        assert_eq!(
            go_json_compact(&json!({"k": [1, true]})),
            "{\"k\":[1,true]}"
        );
    }

    #[test]
    fn the_report_has_the_documented_shape() {
        let report = TestReport {
            tests: vec![TestEntry {
                path: "t/kyverno-test.yaml".to_owned(),
                name: "t".to_owned(),
                error: None,
                rows: vec![RowEntry {
                    policy: "p".to_owned(),
                    rule: "r".to_owned(),
                    resource: "v1/Pod/default/a".to_owned(),
                    kind: "Pod".to_owned(),
                    expected: "pass".to_owned(),
                    actual: None,
                    ok: true,
                    reason: "Excluded".to_owned(),
                }],
            }],
            summary: Summary {
                rows: 1,
                passed: 1,
                failed: 0,
            },
        };
        let value = serde_json::to_value(&report).expect("serializes");
        assert_eq!(
            value,
            json!({"tests": [{"path": "t/kyverno-test.yaml", "name": "t", "error": null, "rows": [{
                "policy": "p", "rule": "r", "resource": "v1/Pod/default/a", "kind": "Pod",
                "expected": "pass", "actual": null, "ok": true, "reason": "Excluded"}]}],
             "summary": {"rows": 1, "passed": 1, "failed": 0}})
        );
    }
}
