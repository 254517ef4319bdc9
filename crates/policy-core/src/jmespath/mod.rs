//! Kyverno's JMESPath dialect: the jmespath-community language (standard JMESPath plus
//! arithmetic operators and `$`) with Kyverno's 51 custom functions, evaluated the way Kyverno
//! evaluates it.
//!
//! Differences from plain JMESPath that matter to policies:
//! - a path into a missing field (`request.object.metadata.labels.foo` without that label) is
//!   an error, [`JmesPathError::NotFound`], unless something turns it back into `null`
//!   (`|| 'default'`, a function argument, a comparison, a projection);
//! - numbers behave as Go float64s (`1 == 1.0`, `to_string` writes `3`, not `3.0`).
//!
//! Expressions are parsed once and kept in a bounded process-wide cache, and evaluation borrows
//! from the searched document instead of copying it.

mod error;
mod functions;
mod interpreter;
mod lexer;
mod parser;
mod value;

pub use error::JmesPathError;
pub use functions::FunctionInfo;
pub use interpreter::Clock;
pub use value::json_string;

use parser::Node;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

/// Evaluates `expression` against `data` with the system clock.
pub fn search(expression: &str, data: &Value) -> Result<Value, JmesPathError> {
    Runtime::default().search(expression, data)
}

/// Checks that `expression` is valid JMESPath without evaluating it (the parse is cached).
pub fn parse(expression: &str) -> Result<(), JmesPathError> {
    compile(expression).map(drop)
}

/// Every function available in expressions, standard and custom, sorted by name.
pub fn function_catalogue() -> Vec<FunctionInfo> {
    functions::catalogue()
}

/// Evaluates expressions with a given clock (for `time_now` and friends); [`search`] uses the
/// system clock.
#[derive(Debug, Clone, Copy)]
pub struct Runtime {
    clock: Clock,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            clock: chrono::Utc::now,
        }
    }
}

impl Runtime {
    /// A runtime whose time functions read `clock` instead of the system time.
    pub fn with_clock(clock: Clock) -> Runtime {
        Runtime { clock }
    }

    /// Evaluates `expression` against `data`.
    pub fn search(&self, expression: &str, data: &Value) -> Result<Value, JmesPathError> {
        let node = compile(expression)?;
        interpreter::Interpreter::new(data, self.clock)
            .eval(&node, data)
            .map(std::borrow::Cow::into_owned)
    }
}

/// Most distinct expressions kept compiled; policies use far fewer.
const CACHE_CAPACITY: usize = 4096;

static CACHE: LazyLock<RwLock<HashMap<String, Arc<Node>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Parses `expression`, reusing an earlier parse of the same text.
fn compile(expression: &str) -> Result<Arc<Node>, JmesPathError> {
    if let Some(node) = CACHE
        .read()
        .ok()
        .and_then(|cache| cache.get(expression).cloned())
    {
        return Ok(node);
    }
    let node = Arc::new(parser::parse(expression)?);
    if let Ok(mut cache) = CACHE.write() {
        // Expressions produced by variable substitution can be unbounded in number: start over
        // rather than grow without limit.
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(expression.to_owned(), Arc::clone(&node));
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "request": {"object": {"metadata": {"name": "pod", "labels": {"app": "web"}, "annotations": null}}},
            "items": [{"n": 1, "tags": ["a", "b"]}, {"n": 2, "tags": ["c"]}, {"n": 3}],
            "text": "abcdef"
        })
    }

    #[test]
    fn missing_fields_are_not_found_errors() {
        let data = data();
        assert_eq!(
            search("request.object.metadata.labels.team", &data),
            Err(JmesPathError::NotFound("team".into()))
        );
        assert_eq!(
            search("request.object.spec.containers", &data),
            Err(JmesPathError::NotFound("spec".into()))
        );
        assert_eq!(
            search("request.object.metadata.labels.team", &data).map_err(|e| e.to_string()),
            Err("Unknown key \"team\" in path".into())
        );
        // A null parent is not an error.
        assert_eq!(
            search("request.object.metadata.annotations.x", &data),
            Ok(Value::Null)
        );
    }

    #[test]
    fn most_constructs_turn_missing_fields_into_null() {
        let data = data();
        assert_eq!(
            search("request.object.metadata.labels.team || 'none'", &data),
            Ok(json!("none"))
        );
        assert_eq!(search("missing | 'x'", &data), Ok(json!("x")));
        assert_eq!(search("missing == `null`", &data), Ok(json!(true)));
        assert_eq!(search("!missing", &data), Ok(json!(true)));
        assert_eq!(
            search("[missing, text]", &data),
            Ok(json!([null, "abcdef"]))
        );
        assert_eq!(search("items[].tags[]", &data), Ok(json!(["a", "b", "c"])));
        assert_eq!(search("items[?tags].n", &data), Ok(json!([1, 2])));
        assert_eq!(search("items[*].missing", &data), Ok(json!([])));
        assert!(
            search("length(missing)", &data)
                .is_err_and(|e| e.to_string().starts_with("invalid type for: <nil>"))
        );
        // The right side of `&&` keeps the error.
        assert_eq!(
            search("text && missing", &data),
            Err(JmesPathError::NotFound("missing".into()))
        );
    }

    #[test]
    fn projections_indexes_and_slices() {
        let data = data();
        assert_eq!(search("items[0].n", &data), Ok(json!(1)));
        assert_eq!(search("items[-1].n", &data), Ok(json!(3)));
        assert_eq!(search("items[5]", &data), Ok(Value::Null));
        assert_eq!(search("items[1:].n", &data), Ok(json!([2, 3])));
        assert_eq!(search("items[::-1].n", &data), Ok(json!([3, 2, 1])));
        assert_eq!(search("text[1:3]", &data), Ok(json!("bc")));
        assert_eq!(
            search("request.object.metadata.*", &data).map(|v| v.as_array().map(Vec::len)),
            Ok(Some(2))
        );
        assert_eq!(
            search(
                "{name: request.object.metadata.name, count: length(items)}",
                &data
            ),
            Ok(json!({"name": "pod", "count": 3}))
        );
        assert_eq!(
            search("$.text", &json!({"text": "root"})),
            Ok(json!("root"))
        );
        assert!(search("items[::0]", &data).is_err());
    }

    #[test]
    fn comparisons_and_arithmetic() {
        let data = data();
        assert_eq!(search("items[?n > `1`].n", &data), Ok(json!([2, 3])));
        assert_eq!(search("`1` == `1.0`", &data), Ok(json!(true)));
        assert_eq!(search("'a' < 'b'", &data), Ok(Value::Null));
        assert_eq!(search("items[0].n + items[1].n * `3`", &data), Ok(json!(7)));
        assert_eq!(search("`7` // `2`", &data), Ok(json!(3)));
        assert_eq!(search("`7` % `4`", &data), Ok(json!(3)));
        assert_eq!(search("-items[0].n", &data), Ok(json!(-1)));
    }

    #[test]
    fn reports_syntax_and_unknown_function_errors() {
        assert!(matches!(
            search("a.[", &json!({})),
            Err(JmesPathError::Syntax { .. })
        ));
        assert_eq!(
            search("nope(@)", &json!({})),
            Err(JmesPathError::UnknownFunction("nope".into()))
        );
    }

    #[test]
    fn catalogue_lists_all_kyverno_functions() {
        let catalogue = function_catalogue();
        let custom: Vec<&str> = catalogue
            .iter()
            .filter(|f| f.custom)
            .map(|f| f.name.as_str())
            .collect();
        let expected = [
            "add",
            "base64_decode",
            "base64_encode",
            "compare",
            "divide",
            "equal_fold",
            "image_normalize",
            "is_external_url",
            "items",
            "label_match",
            "lookup",
            "md5",
            "modulo",
            "multiply",
            "object_from_lists",
            "parse_json",
            "parse_yaml",
            "path_canonicalize",
            "pattern_match",
            "random",
            "regex_match",
            "regex_replace_all",
            "regex_replace_all_literal",
            "replace",
            "replace_all",
            "round",
            "semver_compare",
            "sha1",
            "sha256",
            "split",
            "subtract",
            "sum",
            "time_add",
            "time_after",
            "time_before",
            "time_between",
            "time_diff",
            "time_now",
            "time_now_utc",
            "time_parse",
            "time_since",
            "time_to_cron",
            "time_truncate",
            "time_utc",
            "to_boolean",
            "to_lower",
            "to_upper",
            "trim",
            "trim_prefix",
            "truncate",
            "x509_decode",
        ];
        assert_eq!(custom, expected);
        assert!(catalogue.iter().any(|f| f.name == "sort_by" && !f.custom));
        let truncate = catalogue.iter().find(|f| f.name == "truncate");
        assert_eq!(
            truncate.map(FunctionInfo::signature),
            Some("truncate(string, number) string".to_owned())
        );
    }

    #[test]
    fn corpus_expressions_parse() {
        for expression in [
            "request.object.spec.[ephemeralContainers, initContainers, containers][].securityContext.capabilities.add[]",
            "request.object.spec.template.spec.topologySpreadConstraints[?topologyKey=='kubernetes.io/hostname' || topologyKey=='topology.kubernetes.io/zone'] || `[]` | length(@)",
            "request.userInfo.groups[?contains(@,':') == `false`][].join('-', [@, '*'])",
            "element.securityContext.capabilities.drop[].to_upper(@) || `[]`",
            "items[][[@.metadata.labels.\"generate.kyverno.io/policy-name\"=='x'] && [@.spec.selector.matchExpressions[].values[?@=='ns']]][][][][] | length(@)",
            "max( [ to_number(regex_replace_all('h.*',request.object.spec.duration,'')), to_number('2400') ] )",
            "request.object.metadata.annotations.values(@)[].regex_match('\\\\s*alias\\\\s*.*;', @)",
            "items(request.object.metadata.annotations, 'key', 'value')[?starts_with(key, 'a')]",
            "imageData.configData.\"moby.buildkit.buildinfo.v1\" | base64_decode(@).parse_json(@)",
            "{labels: configData.config.Labels, annotations: manifest.annotations}",
            "request.object.spec.volumes[?contains(keys(@), 'emptyDir') && !contains(keys(emptyDir), 'sizeLimit')].name",
        ] {
            assert!(parser::parse(expression).is_ok(), "{expression}");
        }
    }
}
