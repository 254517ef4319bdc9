//! Kyverno's object and array functions: `label_match`, `lookup`, `items`, `object_from_lists`.

use super::{ArgType, FunctionSpec, integer, required, value};
use crate::jmespath::error::JmesPathError;
use crate::jmespath::value::{format_float32, values_equal};
use serde_json::{Map, Value};

const OBJECT: &[ArgType] = &[ArgType::Object];
const ARRAY: &[ArgType] = &[ArgType::Array];
const STRING: &[ArgType] = &[ArgType::String];
const OBJECT_OR_ARRAY: &[ArgType] = &[ArgType::Object, ArgType::Array];

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "label_match",
        args: &[required(OBJECT), required(OBJECT)],
        returns: &[ArgType::Boolean],
        note: "object arguments must be enclosed in backticks; ex. `{{request.object.spec.template.metadata.labels}}`",
        handler: |args, _| {
            let (Value::Object(selector), Value::Object(labels)) = (value(args, 0), value(args, 1))
            else {
                return Err(JmesPathError::argument_type("label_match", 1, "Object"));
            };
            Ok(Value::Bool(selector.iter().all(|(key, expected)| {
                labels
                    .get(key)
                    .is_some_and(|actual| values_equal(actual, expected))
            })))
        },
    },
    FunctionSpec {
        name: "lookup",
        args: &[
            required(OBJECT_OR_ARRAY),
            required(&[ArgType::String, ArgType::Number]),
        ],
        returns: &[ArgType::Any],
        note: "returns the value corresponding to the given key/index in the given object/array",
        handler: |args, _| match value(args, 0) {
            Value::Object(map) => {
                let key = value(args, 1)
                    .as_str()
                    .ok_or_else(|| JmesPathError::argument_type("lookup", 2, "String"))?;
                Ok(map.get(key).cloned().unwrap_or(Value::Null))
            }
            Value::Array(items) => {
                let index = value(args, 1)
                    .as_f64()
                    .ok_or_else(|| JmesPathError::argument_type("lookup", 2, "Number"))?;
                let index = integer(index).map_err(|message| {
                    JmesPathError::in_function("lookup", format!("argument #2: {message}"))
                })?;
                Ok(usize::try_from(index)
                    .ok()
                    .and_then(|index| items.get(index))
                    .cloned()
                    .unwrap_or(Value::Null))
            }
            _ => Err(JmesPathError::argument_type("lookup", 1, "Object or Array")),
        },
    },
    FunctionSpec {
        name: "items",
        args: &[
            required(OBJECT_OR_ARRAY),
            required(STRING),
            required(STRING),
        ],
        returns: ARRAY,
        note: "converts a map or array to an array of objects where each key:value is an item in the array",
        handler: |args, _| {
            let key_name = value(args, 1)
                .as_str()
                .ok_or_else(|| JmesPathError::argument_type("items", 2, "String"))?;
            let value_name = value(args, 2)
                .as_str()
                .ok_or_else(|| JmesPathError::argument_type("items", 3, "String"))?;
            let item = |key: Value, item: &Value| {
                let mut entry = Map::new();
                entry.insert(key_name.to_owned(), key);
                entry.insert(value_name.to_owned(), item.clone());
                Value::Object(entry)
            };
            match value(args, 0) {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort_unstable();
                    Ok(Value::Array(
                        keys.into_iter()
                            .map(|key| item(Value::String(key.clone()), &map[key]))
                            .collect(),
                    ))
                }
                Value::Array(items) => Ok(Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(index, entry)| item(Value::from(index), entry))
                        .collect(),
                )),
                _ => Err(JmesPathError::argument_type("items", 1, "Object or Array")),
            }
        },
    },
    FunctionSpec {
        name: "object_from_lists",
        args: &[required(ARRAY), required(ARRAY)],
        returns: OBJECT,
        note: "converts a pair of lists containing keys and values to an object",
        handler: |args, _| {
            let (Value::Array(keys), Value::Array(values)) = (value(args, 0), value(args, 1))
            else {
                return Err(JmesPathError::argument_type(
                    "object_from_lists",
                    1,
                    "Array",
                ));
            };
            let mut object = Map::new();
            for (index, key) in keys.iter().enumerate() {
                let key = match key {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => format_float32(n.as_f64().unwrap_or(0.0)),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(JmesPathError::argument_type(
                            "object_from_lists",
                            1,
                            "StringArray",
                        ));
                    }
                };
                object.insert(key, values.get(index).cloned().unwrap_or(Value::Null));
            }
            Ok(Value::Object(object))
        },
    },
];

#[cfg(test)]
mod tests {
    use super::super::test_support::{eval_in, fails};
    use serde_json::{Value, json};

    fn eval(expression: &str) -> Value {
        eval_in(
            expression,
            &json!({"metadata": {"labels": {"app": "test-app", "controller-name": "test-controller"}}}),
        )
    }

    #[test]
    fn label_match_requires_every_selector_label() {
        assert_eq!(
            eval(r#"label_match(`{"app": "test-app"}`, metadata.labels)"#),
            json!(true)
        );
        assert_eq!(
            eval(
                r#"label_match(`{"app": "test-app", "controller-name": "test-controller"}`, metadata.labels)"#
            ),
            json!(true)
        );
        assert_eq!(
            eval(r#"label_match(`{"app": "test-app2"}`, metadata.labels)"#),
            json!(false)
        );
        assert_eq!(
            eval(r#"label_match(`{"app.kubernetes.io/name": "test-app"}`, metadata.labels)"#),
            json!(false)
        );
        assert!(fails("label_match(`{}`, 'x')").contains("invalid type"));
    }

    #[test]
    fn lookup_by_key_or_index() {
        for (collection, key, expected) in [
            ("{}", r#""key1""#, json!(null)),
            (r#"{"key1": "value1"}"#, r#""key1""#, json!("value1")),
            (r#"{"": "value1"}"#, r#""""#, json!("value1")),
            (r#"{"k": [7, "x", true]}"#, r#""k""#, json!([7, "x", true])),
            ("[]", "0", json!(null)),
            (r#"["item0"]"#, "-1", json!(null)),
            (r#"["item0"]"#, "1", json!(null)),
            (r#"["item0", "item1", "item2"]"#, "2", json!("item2")),
            (
                r#"["item0", "item1"]"#,
                "0.99999999999999999999999999999999999999999999",
                json!("item1"),
            ),
        ] {
            assert_eq!(eval(&format!("lookup(`{collection}`, `{key}`)")), expected);
        }
        assert!(fails("lookup(`{}`, `123`)").contains("argument #2 is not of type String"));
        assert!(fails(r#"lookup(`[]`, `"abc"`)"#).contains("argument #2 is not of type Number"));
        assert_eq!(
            fails("lookup(`[]`, `1.5`)"),
            "JMESPath function 'lookup': argument #2: expected an integer number but got: 1.5"
        );
    }

    #[test]
    fn items_lists_entries() {
        assert_eq!(
            eval(r#"items(`{"key2": "value2", "key1": "value1"}`, 'key', 'value')"#),
            json!([{"key": "key1", "value": "value1"}, {"key": "key2", "value": "value2"}])
        );
        assert_eq!(
            eval(r#"items(`["A", "B"]`, 'myKey', 'myValue')"#),
            json!([{"myKey": 0, "myValue": "A"}, {"myKey": 1, "myValue": "B"}])
        );
        assert!(fails("items(`[]`, 'k')").contains("invalid arity"));
    }

    #[test]
    fn object_from_lists_pairs_keys_and_values() {
        assert_eq!(
            eval(r#"object_from_lists(`["key1", "key2"]`, `[1, "2"]`)"#),
            json!({"key1": 1, "key2": "2"})
        );
        assert_eq!(
            eval(r#"object_from_lists(`["key1", "key2"]`, `[1]`)"#),
            json!({"key1": 1, "key2": null})
        );
        assert_eq!(
            fails(r#"object_from_lists(`[{}]`, `[1]`)"#),
            "JMESPath function 'object_from_lists': argument #1 is not of type StringArray"
        );
    }
}
