//! Conversion between JSON documents and CEL values, as the Kubernetes API server does it:
//! JSON integers become `int`, other numbers `double`, objects maps with string keys.
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use kube_cel::cel::Value as CelValue;
use kube_cel::cel::objects::{Key, Map};
use serde_json::{Number, Value};

/// A CEL value that has no JSON form.
#[derive(Debug, thiserror::Error)]
pub enum ToJsonError {
    /// A double that is NaN or infinite.
    #[error("the number {0} cannot be represented in JSON")]
    Number(f64),
    /// A value with no JSON form (functions, opaque library values).
    #[error("a value of type {0} cannot be represented in JSON")]
    Type(String),
}

/// The CEL value of a JSON document.
pub fn from_json(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(from_json).collect())),
        Value::Object(fields) => {
            let map: HashMap<Key, CelValue> = fields
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), from_json(v)))
                .collect();
            CelValue::Map(Map { map: Arc::new(map) })
        }
    }
}

/// The JSON form of a CEL value: bytes as base64, timestamps as RFC 3339, durations as Go
/// duration strings (`1h2m3s`), map keys as strings.
pub fn to_json(value: &CelValue) -> Result<Value, ToJsonError> {
    Ok(match value {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => Value::Bool(*b),
        CelValue::Int(i) => Value::from(*i),
        CelValue::UInt(u) => Value::from(*u),
        CelValue::Float(f) => Value::Number(Number::from_f64(*f).ok_or(ToJsonError::Number(*f))?),
        CelValue::String(s) => Value::String(s.as_ref().clone()),
        CelValue::Bytes(b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        }
        CelValue::List(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        CelValue::Map(map) => Value::Object(
            map.map
                .iter()
                .map(|(k, v)| Ok((key_string(k), to_json(v)?)))
                .collect::<Result<_, ToJsonError>>()?,
        ),
        CelValue::Timestamp(t) => {
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        CelValue::Duration(d) => Value::String(go_duration(*d)),
        CelValue::Opaque(opaque) => {
            match opaque.downcast_ref::<kube_cel::cel::objects::OptionalValue>() {
                Some(optional) => match optional.value() {
                    Some(inner) => to_json(inner)?,
                    None => Value::Null,
                },
                None => return Err(ToJsonError::Type(opaque.runtime_type_name().to_string())),
            }
        }
        CelValue::Function(name, _) => return Err(ToJsonError::Type(format!("function {name}"))),
    })
}

fn key_string(key: &Key) -> String {
    match key {
        Key::String(s) => s.as_ref().clone(),
        Key::Int(i) => i.to_string(),
        Key::Uint(u) => u.to_string(),
        Key::Bool(b) => b.to_string(),
    }
}

/// A duration as Go prints it (`1h2m3.5s`, `0s`).
fn go_duration(duration: chrono::Duration) -> String {
    let nanos = duration.num_nanoseconds().unwrap_or(i64::MAX);
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = nanos % 60_000_000_000;
    let mut out = sign.to_string();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    let whole = seconds / 1_000_000_000;
    let fraction = seconds % 1_000_000_000;
    if fraction == 0 {
        out.push_str(&format!("{whole}s"));
    } else {
        let digits = format!("{fraction:09}");
        out.push_str(&format!("{whole}.{}s", digits.trim_end_matches('0')));
    }
    out
}
