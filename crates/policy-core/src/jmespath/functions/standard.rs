//! The standard functions of the jmespath-community library Kyverno builds on (the JMESPath
//! specification's plus `lower`, `upper`, `pad_left`, `find_first`, `group_by`, `zip`, ...).
//! `items`, `replace`, `split`, `sum` and `trim` are Kyverno's own versions, defined elsewhere.

use super::{
    Arg, ArgType, FunctionSpec, expref, number, optional, required, string, value, variadic,
};
use crate::jmespath::error::JmesPathError;
use crate::jmespath::interpreter::Interpreter;
use crate::jmespath::value::{self as values, json_string, type_name, values_equal};
use serde_json::{Map, Value};
use std::cmp::Ordering;

const NUMBER: &[ArgType] = &[ArgType::Number];
const STRING: &[ArgType] = &[ArgType::String];
const ARRAY: &[ArgType] = &[ArgType::Array];
const OBJECT: &[ArgType] = &[ArgType::Object];
const ANY: &[ArgType] = &[ArgType::Any];
const EXPREF: &[ArgType] = &[ArgType::Expref];

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    spec("abs", &[required(NUMBER)], NUMBER, |args, _| {
        Ok(values::number(number("abs", args, 0)?.abs()))
    }),
    spec("avg", &[required(&[ArgType::ArrayNumber])], NUMBER, avg),
    spec("ceil", &[required(NUMBER)], NUMBER, |args, _| {
        Ok(values::number(number("ceil", args, 0)?.ceil()))
    }),
    spec(
        "contains",
        &[required(&[ArgType::Array, ArgType::String]), required(ANY)],
        &[ArgType::Boolean],
        contains,
    ),
    spec(
        "ends_with",
        &[required(STRING), required(STRING)],
        &[ArgType::Boolean],
        |args, _| {
            let subject = string("ends_with", args, 0)?;
            Ok(Value::Bool(subject.ends_with(string(
                "ends_with",
                args,
                1,
            )?)))
        },
    ),
    spec(
        "find_first",
        &[
            required(STRING),
            required(STRING),
            optional(NUMBER),
            optional(NUMBER),
        ],
        NUMBER,
        |args, _| find("find_first", args, |haystack, needle| haystack.find(needle)),
    ),
    spec(
        "find_last",
        &[
            required(STRING),
            required(STRING),
            optional(NUMBER),
            optional(NUMBER),
        ],
        NUMBER,
        |args, _| find("find_last", args, |haystack, needle| haystack.rfind(needle)),
    ),
    spec("floor", &[required(NUMBER)], NUMBER, |args, _| {
        Ok(values::number(number("floor", args, 0)?.floor()))
    }),
    spec(
        "from_items",
        &[required(&[ArgType::ArrayArray])],
        OBJECT,
        from_items,
    ),
    spec(
        "group_by",
        &[required(ARRAY), required(EXPREF)],
        OBJECT,
        group_by,
    ),
    spec(
        "join",
        &[required(STRING), required(&[ArgType::ArrayString])],
        STRING,
        |args, _| {
            let separator = string("join", args, 0)?;
            let parts: Vec<&str> = array(args, 1).iter().filter_map(Value::as_str).collect();
            Ok(Value::String(parts.join(separator)))
        },
    ),
    spec("keys", &[required(OBJECT)], ARRAY, |args, _| {
        Ok(Value::Array(
            entries(args, 0)
                .map(|(key, _)| Value::String(key.clone()))
                .collect(),
        ))
    }),
    spec(
        "length",
        &[required(&[
            ArgType::String,
            ArgType::Array,
            ArgType::Object,
        ])],
        NUMBER,
        |args, _| {
            let length = match value(args, 0) {
                Value::String(s) => s.chars().count(),
                Value::Array(items) => items.len(),
                Value::Object(map) => map.len(),
                _ => return Err(JmesPathError::Function("could not compute length()".into())),
            };
            Ok(Value::from(length))
        },
    ),
    spec("lower", &[required(STRING)], STRING, |args, _| {
        Ok(Value::String(string("lower", args, 0)?.to_lowercase()))
    }),
    spec(
        "map",
        &[required(EXPREF), required(ARRAY)],
        ARRAY,
        |args, interpreter| {
            let node = expref("map", args, 0)?;
            array(args, 1)
                .iter()
                .map(|item| interpreter.apply(node, item))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        },
    ),
    spec(
        "max",
        &[required(&[ArgType::ArrayNumber, ArgType::ArrayString])],
        &[ArgType::Number, ArgType::String],
        |args, _| Ok(extreme(array(args, 0), Ordering::Greater)),
    ),
    spec(
        "max_by",
        &[required(ARRAY), required(EXPREF)],
        ANY,
        |args, interpreter| extreme_by("max_by", args, interpreter, Ordering::Greater),
    ),
    spec("merge", &[variadic(OBJECT)], OBJECT, |args, _| {
        let mut merged = Map::new();
        for index in 0..args.len() {
            merged.extend(entries(args, index).map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(Value::Object(merged))
    }),
    spec(
        "min",
        &[required(&[ArgType::ArrayNumber, ArgType::ArrayString])],
        &[ArgType::Number, ArgType::String],
        |args, _| Ok(extreme(array(args, 0), Ordering::Less)),
    ),
    spec(
        "min_by",
        &[required(ARRAY), required(EXPREF)],
        ANY,
        |args, interpreter| extreme_by("min_by", args, interpreter, Ordering::Less),
    ),
    spec("not_null", &[variadic(ANY)], ANY, |args, _| {
        Ok((0..args.len())
            .map(|index| value(args, index))
            .find(|item| !item.is_null())
            .cloned()
            .unwrap_or(Value::Null))
    }),
    spec(
        "pad_left",
        &[required(STRING), required(NUMBER), optional(STRING)],
        STRING,
        |args, _| pad("pad_left", args, true),
    ),
    spec(
        "pad_right",
        &[required(STRING), required(NUMBER), optional(STRING)],
        STRING,
        |args, _| pad("pad_right", args, false),
    ),
    spec(
        "reverse",
        &[required(&[ArgType::Array, ArgType::String])],
        &[ArgType::Array, ArgType::String],
        |args, _| {
            Ok(match value(args, 0) {
                Value::String(s) => Value::String(s.chars().rev().collect()),
                Value::Array(items) => Value::Array(items.iter().rev().cloned().collect()),
                _ => Value::Null,
            })
        },
    ),
    spec(
        "sort",
        &[required(&[ArgType::ArrayString, ArgType::ArrayNumber])],
        ARRAY,
        |args, _| {
            let mut items = array(args, 0).to_vec();
            items.sort_by(compare_sortable);
            Ok(Value::Array(items))
        },
    ),
    spec(
        "sort_by",
        &[required(ARRAY), required(EXPREF)],
        ARRAY,
        sort_by,
    ),
    spec(
        "starts_with",
        &[required(STRING), required(STRING)],
        &[ArgType::Boolean],
        |args, _| {
            let subject = string("starts_with", args, 0)?;
            Ok(Value::Bool(subject.starts_with(string(
                "starts_with",
                args,
                1,
            )?)))
        },
    ),
    spec("to_array", &[required(ANY)], ARRAY, |args, _| {
        Ok(match value(args, 0) {
            Value::Array(items) => Value::Array(items.clone()),
            other => Value::Array(vec![other.clone()]),
        })
    }),
    spec("to_number", &[required(ANY)], NUMBER, |args, _| {
        Ok(match value(args, 0) {
            Value::Number(n) => Value::Number(n.clone()),
            Value::String(s) => s.parse::<f64>().map_or(Value::Null, values::number),
            _ => Value::Null,
        })
    }),
    spec("to_string", &[required(ANY)], STRING, |args, _| {
        Ok(Value::String(match value(args, 0) {
            Value::String(s) => s.clone(),
            other => json_string(other),
        }))
    }),
    spec(
        "trim_left",
        &[required(STRING), optional(STRING)],
        STRING,
        |args, _| trim_side("trim_left", args, true),
    ),
    spec(
        "trim_right",
        &[required(STRING), optional(STRING)],
        STRING,
        |args, _| trim_side("trim_right", args, false),
    ),
    spec("type", &[required(ANY)], STRING, |args, _| {
        Ok(Value::String(type_name(value(args, 0)).to_owned()))
    }),
    spec("upper", &[required(STRING)], STRING, |args, _| {
        Ok(Value::String(string("upper", args, 0)?.to_uppercase()))
    }),
    spec("values", &[required(OBJECT)], ARRAY, |args, _| {
        Ok(Value::Array(
            entries(args, 0).map(|(_, v)| v.clone()).collect(),
        ))
    }),
    spec(
        "zip",
        &[required(ARRAY), variadic(ARRAY)],
        ARRAY,
        |args, _| {
            let arrays: Vec<&Vec<Value>> =
                (0..args.len()).map(|index| array(args, index)).collect();
            let count = arrays.iter().map(|a| a.len()).min().unwrap_or(0);
            Ok(Value::Array(
                (0..count)
                    .map(|i| Value::Array(arrays.iter().map(|a| a[i].clone()).collect()))
                    .collect(),
            ))
        },
    ),
];

const fn spec(
    name: &'static str,
    args: &'static [super::ArgSpec],
    returns: &'static [ArgType],
    handler: fn(&[Arg<'_>], &Interpreter<'_>) -> Result<Value, JmesPathError>,
) -> FunctionSpec {
    FunctionSpec {
        name,
        args,
        returns,
        note: "",
        handler,
    }
}

/// Argument `index` as an array (empty when it is not one; signatures are checked first).
fn array<'b>(args: &'b [Arg<'_>], index: usize) -> &'b Vec<Value> {
    static EMPTY: Vec<Value> = Vec::new();
    value(args, index).as_array().unwrap_or(&EMPTY)
}

/// The entries of argument `index` if it is an object (signatures are checked first).
fn entries<'b>(args: &'b [Arg<'_>], index: usize) -> impl Iterator<Item = (&'b String, &'b Value)> {
    value(args, index).as_object().into_iter().flatten()
}

fn avg(args: &[Arg<'_>], _: &Interpreter<'_>) -> Result<Value, JmesPathError> {
    let items = array(args, 0);
    if items.is_empty() {
        return Ok(Value::Null);
    }
    let total: f64 = items.iter().filter_map(Value::as_f64).sum();
    Ok(values::number(total / items.len() as f64))
}

fn contains(args: &[Arg<'_>], _: &Interpreter<'_>) -> Result<Value, JmesPathError> {
    let needle = value(args, 1);
    Ok(Value::Bool(match value(args, 0) {
        Value::String(haystack) => needle.as_str().is_some_and(|n| haystack.contains(n)),
        Value::Array(items) => items.iter().any(|item| values_equal(item, needle)),
        _ => false,
    }))
}

/// `find_first`/`find_last`: byte offset of `needle` in `subject[start..end]`, or null.
fn find(
    function: &str,
    args: &[Arg<'_>],
    search: fn(&str, &str) -> Option<usize>,
) -> Result<Value, JmesPathError> {
    let subject = string(function, args, 0)?;
    let needle = string(function, args, 1)?;
    if subject.is_empty() || needle.is_empty() {
        return Ok(Value::Null);
    }
    let bound = |index: usize, name: &str| -> Result<Option<i64>, JmesPathError> {
        match value(args, index) {
            Value::Null => Ok(None),
            other => other
                .as_f64()
                .filter(|n| n.fract() == 0.0)
                .map(|n| Some(n as i64))
                .ok_or_else(|| {
                    JmesPathError::Function(format!(
                        "invalid value, the function '{function}' expects its '{name}' argument to be an integer"
                    ))
                }),
        }
    };
    let length = i64::try_from(subject.len()).unwrap_or(i64::MAX);
    let start = bound(2, "start")?.unwrap_or(0).max(0);
    let end = bound(3, "end")?.unwrap_or(length).min(length);
    let range = usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(start, end)| subject.get(start..end).map(|s| (start, s)));
    Ok(range
        .and_then(|(start, haystack)| search(haystack, needle).map(|offset| start + offset))
        .map_or(Value::Null, Value::from))
}

fn from_items(args: &[Arg<'_>], _: &Interpreter<'_>) -> Result<Value, JmesPathError> {
    let invalid_pair = || {
        JmesPathError::Function(
            "invalid value, each array must contain two elements, a pair of string and value"
                .into(),
        )
    };
    let mut result = Map::new();
    for item in array(args, 0) {
        let Value::Array(pair) = item else {
            return Err(JmesPathError::Function(
                "invalid type, first argument must be an array of arrays".into(),
            ));
        };
        match pair.as_slice() {
            [Value::String(key), item] => {
                result.insert(key.clone(), item.clone());
            }
            _ => return Err(invalid_pair()),
        }
    }
    Ok(Value::Object(result))
}

fn group_by(args: &[Arg<'_>], interpreter: &Interpreter<'_>) -> Result<Value, JmesPathError> {
    let items = array(args, 0);
    let node = expref("group_by", args, 1)?;
    if items.is_empty() {
        return Ok(Value::Null);
    }
    let mut groups = Map::new();
    for item in items {
        let Value::String(key) = interpreter.apply(node, item)? else {
            return Err(JmesPathError::Function(
                "invalid type, the expression must evaluate to a string".into(),
            ));
        };
        if let Value::Array(group) = groups
            .entry(key)
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            group.push(item.clone());
        }
    }
    Ok(Value::Object(groups))
}

/// Orders two numbers or two strings (anything else compares equal).
fn compare_sortable(left: &Value, right: &Value) -> Ordering {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => l
            .as_f64()
            .partial_cmp(&r.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(l), Value::String(r)) => l.cmp(r),
        _ => Ordering::Equal,
    }
}

/// The greatest (`wanted == Greater`) or least element of an array of numbers or strings.
fn extreme(items: &[Value], wanted: Ordering) -> Value {
    items
        .iter()
        .reduce(|best, item| {
            if compare_sortable(item, best) == wanted {
                item
            } else {
                best
            }
        })
        .cloned()
        .unwrap_or(Value::Null)
}

fn extreme_by(
    function: &str,
    args: &[Arg<'_>],
    interpreter: &Interpreter<'_>,
    wanted: Ordering,
) -> Result<Value, JmesPathError> {
    let items = array(args, 0);
    let node = expref(function, args, 1)?;
    let Some((first, rest)) = items.split_first() else {
        return Ok(Value::Null);
    };
    if rest.is_empty() {
        return Ok(first.clone());
    }
    let mut best_key = interpreter.apply(node, first)?;
    let expected = match best_key {
        Value::Number(_) => "number",
        Value::String(_) => "string",
        _ => {
            return Err(JmesPathError::Function(
                "invalid type, must be number of string".into(),
            ));
        }
    };
    let mut best = first;
    for item in rest {
        let key = interpreter.apply(node, item)?;
        if type_name(&key) != expected {
            return Err(JmesPathError::Function(format!(
                "invalid type, must be {expected}"
            )));
        }
        if compare_sortable(&key, &best_key) == wanted {
            best_key = key;
            best = item;
        }
    }
    Ok(best.clone())
}

fn pad(function: &str, args: &[Arg<'_>], left: bool) -> Result<Value, JmesPathError> {
    let subject = string(function, args, 0)?;
    let width = number(function, args, 1)?;
    if width < 0.0 || width.fract() != 0.0 {
        return Err(JmesPathError::Function(format!(
            "invalid value, the function '{function}' expects its 'width' argument to be a non-negative integer"
        )));
    }
    let padding = match value(args, 2) {
        Value::String(chars) if chars.len() > 1 => {
            return Err(JmesPathError::Function(format!(
                "invalid value, the function '{function}' expects its 'pad' argument to be a string of length 1"
            )));
        }
        Value::String(chars) => chars.as_str(),
        _ => " ",
    };
    let missing = (width as usize).saturating_sub(subject.len());
    let fill = padding.repeat(missing);
    Ok(Value::String(if left {
        fill + subject
    } else {
        format!("{subject}{fill}")
    }))
}

fn sort_by(args: &[Arg<'_>], interpreter: &Interpreter<'_>) -> Result<Value, JmesPathError> {
    let items = array(args, 0);
    let node = expref("sort_by", args, 1)?;
    if items.len() < 2 {
        return Ok(Value::Array(items.clone()));
    }
    let mut keyed = items
        .iter()
        .map(|item| Ok((interpreter.apply(node, item)?, item)))
        .collect::<Result<Vec<_>, JmesPathError>>()?;
    let expected = match keyed[0].0 {
        Value::Number(_) => "number",
        Value::String(_) => "string",
        _ => {
            return Err(JmesPathError::Function(
                "invalid type, must be number of string".into(),
            ));
        }
    };
    if keyed.iter().any(|(key, _)| type_name(key) != expected) {
        return Err(JmesPathError::Function(
            "error in sort_by comparison".into(),
        ));
    }
    keyed.sort_by(|(a, _), (b, _)| compare_sortable(a, b));
    Ok(Value::Array(
        keyed.into_iter().map(|(_, item)| item.clone()).collect(),
    ))
}

fn trim_side(function: &str, args: &[Arg<'_>], left: bool) -> Result<Value, JmesPathError> {
    let subject = string(function, args, 0)?;
    let cutset = value(args, 1).as_str().unwrap_or("");
    let trimmed = match (cutset.is_empty(), left) {
        (true, true) => subject.trim_start(),
        (true, false) => subject.trim_end(),
        (false, true) => subject.trim_start_matches(|c| cutset.contains(c)),
        (false, false) => subject.trim_end_matches(|c| cutset.contains(c)),
    };
    Ok(Value::String(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{eval_in, fails_in};
    use serde_json::{Value, json};

    fn eval(expression: &str) -> Value {
        let data = json!({
            "people": [
                {"name": "b", "age": 30, "team": "x"},
                {"name": "a", "age": 20, "team": "y"},
                {"name": "c", "age": 40, "team": "x"}
            ],
            "object": {"k1": 1, "k2": 2},
            "text": "hello world"
        });
        eval_in(expression, &data)
    }

    fn fails(expression: &str) -> String {
        fails_in(expression, &json!({"text": "a"}))
    }

    #[test]
    fn numeric_functions() {
        assert_eq!(eval("abs(`-2.5`)"), json!(2.5));
        assert_eq!(eval("avg(people[].age)"), json!(30));
        assert_eq!(eval("avg(`[]`)"), json!(null));
        assert_eq!(eval("ceil(`1.2`)"), json!(2));
        assert_eq!(eval("floor(`1.8`)"), json!(1));
        assert_eq!(eval("max(people[].age)"), json!(40));
        assert_eq!(eval("min(people[].name)"), json!("a"));
        assert!(fails("abs('a')").starts_with("invalid type for: a, expected:"));
        assert!(fails("avg(`[1, \"a\"]`)").contains("invalid type"));
    }

    #[test]
    fn string_functions() {
        assert_eq!(eval("contains(text, 'world')"), json!(true));
        assert_eq!(eval("contains(people[].name, 'c')"), json!(true));
        assert_eq!(eval("contains(text, `1`)"), json!(false));
        assert_eq!(eval("starts_with(text, 'hell')"), json!(true));
        assert_eq!(eval("ends_with(text, 'xx')"), json!(false));
        assert_eq!(eval("find_first(text, 'o')"), json!(4));
        assert_eq!(eval("find_last(text, 'o')"), json!(7));
        assert_eq!(eval("find_first(text, 'o', `5`)"), json!(7));
        assert_eq!(eval("find_first(text, 'z')"), json!(null));
        assert_eq!(eval("join('-', people[].name)"), json!("b-a-c"));
        assert_eq!(eval("lower('AbC')"), json!("abc"));
        assert_eq!(eval("upper('AbC')"), json!("ABC"));
        assert_eq!(eval("pad_left('5', `3`, '0')"), json!("005"));
        assert_eq!(eval("pad_right('5', `3`)"), json!("5  "));
        assert_eq!(eval("trim_left('  a  ')"), json!("a  "));
        assert_eq!(eval("trim_right('xxaxx', 'x')"), json!("xxa"));
        assert_eq!(eval("reverse('abc')"), json!("cba"));
        assert_eq!(eval("length(text)"), json!(11));
        assert!(fails("starts_with(`1`, 'a')").contains("invalid type"));
        assert!(fails("pad_left('a', `-1`)").contains("non-negative integer"));
        assert!(fails("join(',', `[1]`)").contains("invalid type"));
    }

    #[test]
    fn collection_functions() {
        assert_eq!(eval("keys(object)"), json!(["k1", "k2"]));
        assert_eq!(eval("values(object)"), json!([1, 2]));
        assert_eq!(eval("length(people)"), json!(3));
        assert_eq!(
            eval("merge(object, `{\"k3\": 3}`)"),
            json!({"k1": 1, "k2": 2, "k3": 3})
        );
        assert_eq!(eval("not_null(missing, `null`, 'x')"), json!("x"));
        assert_eq!(eval("reverse(`[1, 2]`)"), json!([2, 1]));
        assert_eq!(eval("sort(people[].name)"), json!(["a", "b", "c"]));
        assert_eq!(eval("sort_by(people, &age)[].name"), json!(["a", "b", "c"]));
        assert_eq!(eval("max_by(people, &age).name"), json!("c"));
        assert_eq!(eval("min_by(people, &name).age"), json!(20));
        assert_eq!(eval("map(&name, people)"), json!(["b", "a", "c"]));
        assert_eq!(
            eval("group_by(people, &team)"),
            json!({"x": [{"name": "b", "age": 30, "team": "x"}, {"name": "c", "age": 40, "team": "x"}],
                   "y": [{"name": "a", "age": 20, "team": "y"}]})
        );
        assert_eq!(eval("from_items(`[[\"a\", 1]]`)"), json!({"a": 1}));
        assert_eq!(
            eval("zip(`[1, 2, 3]`, `[\"a\", \"b\"]`)"),
            json!([[1, "a"], [2, "b"]])
        );
        assert_eq!(eval("to_array('a')"), json!(["a"]));
        assert!(fails("keys('a')").contains("invalid type"));
        assert_eq!(
            fails("sort_by(`[1, \"a\"]`, &@)"),
            "error in sort_by comparison"
        );
        assert!(fails("from_items(`[[1, 2]]`)").starts_with("invalid value"));
        assert!(fails("group_by(`[1]`, &@)").starts_with("invalid type"));
        assert!(fails("merge()").starts_with("invalid arity"));
    }

    #[test]
    fn conversion_functions() {
        assert_eq!(eval("to_number('12.5')"), json!(12.5));
        assert_eq!(eval("to_number('x')"), json!(null));
        assert_eq!(eval("to_string(`3.0`)"), json!("3"));
        assert_eq!(eval("to_string(object)"), json!("{\"k1\":1,\"k2\":2}"));
        assert_eq!(eval("type(object)"), json!("object"));
        assert_eq!(eval("type(`null`)"), json!("null"));
        assert!(fails("type()").starts_with("invalid arity"));
    }
}
