//! Kyverno's string functions: comparison, case, trimming, splitting, replacing, regular
//! expressions, wildcards and paths.

use super::{Arg, ArgType, FunctionSpec, number, required, string, value};
use crate::gopath;
use crate::jmespath::error::JmesPathError;
use crate::jmespath::value::format_float32;
use regex::{NoExpand, Regex};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

const STRING: &[ArgType] = &[ArgType::String];
const STRING_OR_NUMBER: &[ArgType] = &[ArgType::String, ArgType::Number];
const NUMBER: &[ArgType] = &[ArgType::Number];
const BOOL: &[ArgType] = &[ArgType::Boolean];

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "compare",
        args: &[required(STRING), required(STRING)],
        returns: NUMBER,
        note: "compares two strings lexicographically",
        handler: |args, _| {
            let left = string("compare", args, 0)?;
            let right = string("compare", args, 1)?;
            Ok(Value::from(left.cmp(right) as i8))
        },
    },
    FunctionSpec {
        name: "equal_fold",
        args: &[required(STRING), required(STRING)],
        returns: BOOL,
        note: "allows comparing two strings for equivalency where the only differences are letter cases",
        handler: |args, _| {
            let left = string("equal_fold", args, 0)?;
            let right = string("equal_fold", args, 1)?;
            Ok(Value::Bool(equal_fold(left, right)))
        },
    },
    FunctionSpec {
        name: "replace",
        args: &[
            required(STRING),
            required(STRING),
            required(STRING),
            required(NUMBER),
        ],
        returns: STRING,
        note: "replaces a specified number of instances of the source string with the replacement string in a parent ",
        handler: |args, _| {
            let subject = string("replace", args, 0)?;
            let old = string("replace", args, 1)?;
            let new = string("replace", args, 2)?;
            let count = number("replace", args, 3)?.trunc();
            Ok(Value::String(if count < 0.0 {
                subject.replace(old, new)
            } else {
                subject.replacen(old, new, count as usize)
            }))
        },
    },
    FunctionSpec {
        name: "replace_all",
        args: &[required(STRING), required(STRING), required(STRING)],
        returns: STRING,
        note: "replace all instances of one string with another in an overall parent string",
        handler: |args, _| {
            let subject = string("replace_all", args, 0)?;
            let old = string("replace_all", args, 1)?;
            let new = string("replace_all", args, 2)?;
            Ok(Value::String(subject.replace(old, new)))
        },
    },
    FunctionSpec {
        name: "to_upper",
        args: &[required(STRING)],
        returns: STRING,
        note: "takes in a string and outputs the same string with all upper-case letters",
        handler: |args, _| Ok(Value::String(string("to_upper", args, 0)?.to_uppercase())),
    },
    FunctionSpec {
        name: "to_lower",
        args: &[required(STRING)],
        returns: STRING,
        note: "takes in a string and outputs the same string with all lower-case letters",
        handler: |args, _| Ok(Value::String(string("to_lower", args, 0)?.to_lowercase())),
    },
    FunctionSpec {
        name: "trim",
        args: &[required(STRING), required(STRING)],
        returns: STRING,
        note: "trims both ends of the source string by characters appearing in the second string",
        handler: |args, _| {
            let subject = string("trim", args, 0)?;
            let cutset = string("trim", args, 1)?;
            Ok(Value::String(
                subject.trim_matches(|c| cutset.contains(c)).to_owned(),
            ))
        },
    },
    FunctionSpec {
        name: "trim_prefix",
        args: &[required(STRING), required(STRING)],
        returns: STRING,
        note: "trims the second string prefix from the first string if the first string starts with the prefix",
        handler: |args, _| {
            let subject = string("trim_prefix", args, 0)?;
            let prefix = string("trim_prefix", args, 1)?;
            Ok(Value::String(
                subject.strip_prefix(prefix).unwrap_or(subject).to_owned(),
            ))
        },
    },
    FunctionSpec {
        name: "split",
        args: &[required(STRING), required(STRING)],
        returns: &[ArgType::ArrayString],
        note: "splits the first string when the second string is found and converts it into an array ",
        handler: |args, _| {
            let subject = string("split", args, 0)?;
            let separator = string("split", args, 1)?;
            let parts: Vec<Value> = if separator.is_empty() {
                // Go splits after each UTF-8 sequence; `str::split("")` would add empty ends.
                subject
                    .chars()
                    .map(|c| Value::String(c.to_string()))
                    .collect()
            } else {
                subject
                    .split(separator)
                    .map(|part| Value::String(part.to_owned()))
                    .collect()
            };
            Ok(Value::Array(parts))
        },
    },
    FunctionSpec {
        name: "regex_replace_all",
        args: &[
            required(STRING),
            required(STRING_OR_NUMBER),
            required(STRING_OR_NUMBER),
        ],
        returns: STRING,
        note: "converts all parameters to string",
        handler: |args, _| regex_replace("regex_replace_all", args, true),
    },
    FunctionSpec {
        name: "regex_replace_all_literal",
        args: &[
            required(STRING),
            required(STRING_OR_NUMBER),
            required(STRING_OR_NUMBER),
        ],
        returns: STRING,
        note: "converts all parameters to string",
        handler: |args, _| regex_replace("regex_replace_all_literal", args, false),
    },
    FunctionSpec {
        name: "regex_match",
        args: &[required(STRING), required(STRING_OR_NUMBER)],
        returns: BOOL,
        note: "first string is the regular exression which is compared with second input which can be a number or string",
        handler: |args, _| {
            let pattern = string("regex_match", args, 0)?;
            let subject = stringify("regex_match", args, 1)?;
            // Upstream returns Go's compile error without the function prefix here.
            let regex = compiled(pattern).map_err(JmesPathError::Function)?;
            Ok(Value::Bool(regex.is_match(&subject)))
        },
    },
    FunctionSpec {
        name: "pattern_match",
        args: &[required(STRING), required(STRING_OR_NUMBER)],
        returns: BOOL,
        note: "'*' matches zero or more alphanumeric characters, '?' matches a single alphanumeric character",
        handler: |args, _| {
            let pattern = string("pattern_match", args, 0)?;
            let subject = stringify("pattern_match", args, 1)?;
            Ok(Value::Bool(crate::wildcard::matches(pattern, &subject)))
        },
    },
    FunctionSpec {
        name: "to_boolean",
        args: &[required(STRING)],
        returns: BOOL,
        note: "It returns true or false for any string, such as 'True', 'TruE', 'False', 'FAlse', 'faLSE', etc.",
        handler: |args, _| {
            let input = string("to_boolean", args, 0)?;
            match input.to_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(JmesPathError::in_function(
                    "to_boolean",
                    format!("lowercase argument must be 'true' or 'false' (provided: '{input}')"),
                )),
            }
        },
    },
    FunctionSpec {
        name: "truncate",
        args: &[required(STRING), required(NUMBER)],
        returns: STRING,
        note: "length argument must be enclosed in backticks; ex. \"{{request.object.metadata.name | truncate(@, `9`)}}\"",
        handler: |args, _| {
            let subject = string("truncate", args, 0)?;
            let length = number("truncate", args, 1)?.max(0.0) as usize;
            Ok(Value::String(subject.chars().take(length).collect()))
        },
    },
    FunctionSpec {
        name: "path_canonicalize",
        args: &[required(STRING)],
        returns: STRING,
        note: "normalizes or canonicalizes a given path by removing excess slashes",
        handler: |args, _| {
            let path = string("path_canonicalize", args, 0)?;
            Ok(Value::String(if path.is_empty() {
                String::new()
            } else {
                gopath::clean(path)
            }))
        },
    },
];

/// Go's `strings.EqualFold`: equal under simple Unicode case folding.
fn equal_fold(left: &str, right: &str) -> bool {
    left.chars()
        .flat_map(char::to_lowercase)
        .eq(right.chars().flat_map(char::to_lowercase))
}

/// A string-or-number argument as upstream's `ifaceToString` writes it.
fn stringify<'b>(
    function: &str,
    args: &'b [Arg<'_>],
    index: usize,
) -> Result<Cow<'b, str>, JmesPathError> {
    match value(args, index) {
        Value::String(s) => Ok(Cow::Borrowed(s)),
        Value::Number(n) => Ok(Cow::Owned(format_float32(n.as_f64().unwrap_or(0.0)))),
        Value::Bool(b) => Ok(Cow::Owned(b.to_string())),
        _ => Err(JmesPathError::argument_type(
            function,
            index + 1,
            "String or Real",
        )),
    }
}

fn regex_replace(function: &str, args: &[Arg<'_>], expand: bool) -> Result<Value, JmesPathError> {
    let pattern = string(function, args, 0)?;
    let subject = stringify(function, args, 1)?;
    let replacement = stringify(function, args, 2)?;
    let regex = compiled(pattern).map_err(|error| JmesPathError::in_function(function, error))?;
    let replaced = if expand {
        regex.replace_all(&subject, replacement.as_ref())
    } else {
        regex.replace_all(&subject, NoExpand(&replacement))
    };
    Ok(Value::String(replaced.into_owned()))
}

/// Most distinct regular expressions kept compiled.
const REGEX_CACHE_CAPACITY: usize = 1024;

// Shared, not cloned: a cloned `Regex` starts with an empty pool of search caches, which every
// match would then have to rebuild.
static REGEX_CACHE: LazyLock<Mutex<HashMap<String, Arc<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// `pattern` compiled, reusing earlier compilations; the error reads like Go's.
fn compiled(pattern: &str) -> Result<Arc<Regex>, String> {
    if let Some(regex) = REGEX_CACHE
        .lock()
        .ok()
        .and_then(|cache| cache.get(pattern).cloned())
    {
        return Ok(regex);
    }
    let regex = Regex::new(pattern).map(Arc::new).map_err(|error| {
        let detail = error.to_string();
        let summary = detail
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("invalid pattern")
            .trim_start_matches("error: ");
        format!("error parsing regexp: {summary}: `{pattern}`")
    })?;
    if let Ok(mut cache) = REGEX_CACHE.lock() {
        if cache.len() >= REGEX_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), Arc::clone(&regex));
    }
    Ok(regex)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{eval_in, fails};
    use crate::jmespath::search;
    use serde_json::{Value, json};

    fn eval(expression: &str) -> Value {
        eval_in(expression, &json!({"foo": "hgf'b1a2r'b12g", "num": -12.0}))
    }

    #[test]
    fn compare_orders_lexicographically() {
        assert_eq!(eval("compare('a', 'a')"), json!(0));
        assert_eq!(eval("compare('a', 'b')"), json!(-1));
        assert_eq!(eval("compare('b', 'a')"), json!(1));
        assert!(fails("compare(`1`, 'b')").contains("invalid type"));
    }

    #[test]
    fn equal_fold_ignores_case() {
        assert_eq!(eval("equal_fold('Go', 'go')"), json!(true));
        assert_eq!(eval("equal_fold('1', 'b')"), json!(false));
        assert!(fails("equal_fold('a', `1`)").contains("invalid type"));
    }

    #[test]
    fn replace_honours_the_count() {
        let text = "'Lorem ipsum ipsum ipsum dolor sit amet'";
        assert_eq!(
            eval(&format!("replace({text}, 'ipsum', 'muspi', `-1`)")),
            json!("Lorem muspi muspi muspi dolor sit amet")
        );
        assert_eq!(
            eval(&format!("replace({text}, 'ipsum', 'muspi', `1`)")),
            json!("Lorem muspi ipsum ipsum dolor sit amet")
        );
        assert!(
            fails(&format!("replace({text}, 'ipsum', 'muspi', `true`)")).contains("invalid type")
        );
    }

    #[test]
    fn replace_all_replaces_everything() {
        assert_eq!(
            eval("replace_all('Lorem ipsum dolor sit amet', 'ipsum', 'muspi')"),
            json!("Lorem muspi dolor sit amet")
        );
        assert!(fails("replace_all(`1`, 'a', 'b')").contains("invalid type"));
    }

    #[test]
    fn case_conversion() {
        assert_eq!(eval("to_upper('a#%&123Bc')"), json!("A#%&123BC"));
        assert_eq!(eval("to_lower('A#%&123BC')"), json!("a#%&123bc"));
        assert!(fails("to_upper(`32`)").contains("invalid type"));
        assert!(fails("to_lower(`32`)").contains("invalid type"));
    }

    #[test]
    fn trim_removes_cutset_characters() {
        assert_eq!(
            eval("trim('¡¡¡Hello, Gophers!!!', '!¡')"),
            json!("Hello, Gophers")
        );
        assert!(fails("trim('abc')").contains("invalid arity"));
    }

    #[test]
    fn trim_prefix_only_removes_a_present_prefix() {
        assert_eq!(
            eval("trim_prefix('¡¡¡Hello, Gophers!!!', '¡¡¡Hello, ')"),
            json!("Gophers!!!")
        );
        assert_eq!(
            eval("trim_prefix('¡¡¡Hello, Gophers!!!', '¡¡¡Hola, ')"),
            json!("¡¡¡Hello, Gophers!!!")
        );
        assert!(fails("trim_prefix(`1`, 'a')").contains("invalid type"));
    }

    #[test]
    fn split_like_go() {
        assert_eq!(
            eval("split('Hello, Gophers', ', ')"),
            json!(["Hello", "Gophers"])
        );
        assert_eq!(eval("split('abc', '')"), json!(["a", "b", "c"]));
        assert_eq!(eval("split('', ',')"), json!([""]));
        assert!(fails("split('a')").contains("invalid arity"));
    }

    #[test]
    fn regex_replacements_expand_or_not() {
        let data = json!({"spec": {"field": "Hello world, helworldlo"}});
        assert_eq!(
            search(
                "regex_replace_all('([Hh]e|G)l', spec.field, '${2}G')",
                &data
            ),
            Ok(json!("Glo world, Gworldlo"))
        );
        assert_eq!(
            search(
                "regex_replace_all_literal('[Hh]el?', spec.field, 'G')",
                &data
            ),
            Ok(json!("Glo world, Gworldlo"))
        );
        assert_eq!(
            eval("regex_replace_all_literal('.*', '43123', '$1')"),
            json!("$1")
        );
        assert_eq!(eval("regex_replace_all('[0-9]', `123`, `4`)"), json!("444"));
        assert!(fails("regex_replace_all_literal('a', `[]`, 'b')").contains("invalid type"));
        assert!(
            fails("regex_replace_all('(', 'a', 'b')")
                .starts_with("JMESPath function 'regex_replace_all': error parsing regexp")
        );
    }

    #[test]
    fn regex_match_searches_strings_and_numbers() {
        assert_eq!(eval("regex_match('12.*', foo)"), json!(true));
        assert_eq!(eval("regex_match('12.*', abs(num))"), json!(true));
        assert_eq!(eval("regex_match('^12$', 'a12')"), json!(false));
        assert!(fails("regex_match('(', 'a')").starts_with("error parsing regexp"));
    }

    #[test]
    fn pattern_match_uses_wildcards() {
        assert_eq!(eval("pattern_match('prefix-*', 'prefix-foo')"), json!(true));
        assert_eq!(eval("pattern_match('12*', abs(num))"), json!(true));
        assert_eq!(eval("pattern_match('a?c', 'abbc')"), json!(false));
        assert!(fails("pattern_match(`1`, 'a')").contains("invalid type"));
    }

    #[test]
    fn to_boolean_accepts_any_case() {
        assert_eq!(eval("to_boolean('TRue')"), json!(true));
        assert_eq!(eval("to_boolean('FaLse')"), json!(false));
        assert_eq!(
            fails("to_boolean('FaLsee')"),
            "JMESPath function 'to_boolean': lowercase argument must be 'true' or 'false' (provided: 'FaLsee')"
        );
        assert!(fails("to_boolean(`1`)").contains("invalid type"));
    }

    #[test]
    fn truncate_keeps_a_prefix() {
        assert_eq!(
            eval("truncate('Lorem ipsum dolor sit amet', `5`)"),
            json!("Lorem")
        );
        assert_eq!(eval("truncate('Lorem ipsum', `2.6`)"), json!("Lo"));
        assert_eq!(eval("truncate('Lorem ipsum', `-1`)"), json!(""));
        assert_eq!(eval("truncate('Lorem', `40`)"), json!("Lorem"));
        assert!(fails("truncate('Lorem', '5')").contains("invalid type"));
    }

    #[test]
    fn path_canonicalize_cleans_paths() {
        for (input, expected) in [
            ("///", "/"),
            (
                "///var/run/containerd/containerd.sock",
                "/var/run/containerd/containerd.sock",
            ),
            ("/var/run///containerd////", "/var/run/containerd"),
            ("/run/../etc", "/etc"),
            ("///etc*", "/etc*"),
            ("/../../", "/"),
            ("a/../../b", "../b"),
        ] {
            assert_eq!(
                eval(&format!("path_canonicalize('{input}')")),
                json!(expected)
            );
        }
        assert!(fails("path_canonicalize(`1`)").contains("invalid type"));
    }
}
