//! Small libraries: `time.now()`, `time.truncate(timestamp, duration)`,
//! `time.toCron(timestamp)`; `math.round(double[, precision])`; `random([pattern])` (also
//! `random.random`); `listObjToMap(keys, values, keyField, valueField)` (also
//! `transform.listObjToMap`); `parseServiceAccount(username)` (also
//! `user.parseServiceAccount`).
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, TimeDelta, Timelike};
use kube_cel::cel::extractors::Arguments;
use kube_cel::cel::objects::Key;
use kube_cel::cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};

use crate::jmespath;

/// What `random()` generates without a pattern.
const DEFAULT_RANDOM_PATTERN: &str = "[0-9a-z]{8}";
/// How a Kubernetes user name starts when it is a service account's.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// Seconds from Go's zero time (January 1, year 1, UTC), which `Truncate` counts from, to the
/// Unix epoch.
const GO_ZERO_TIME_TO_UNIX_EPOCH_SECONDS: i128 = 62_135_596_800;

pub(super) fn register(context: &mut Context<'_>) {
    context.add_function("time.now", time_now);
    context.add_function("time.truncate", time_truncate);
    context.add_function("time.toCron", time_to_cron);
    context.add_function("math.round", math_round);
    context.add_function("random", random);
    context.add_function("random.random", random);
    context.add_function("listObjToMap", list_objects_to_map);
    context.add_function("transform.listObjToMap", list_objects_to_map);
    context.add_function("parseServiceAccount", parse_service_account);
    context.add_function("user.parseServiceAccount", parse_service_account);
}

fn time_now() -> ResolveResult {
    Ok(Value::Timestamp(chrono::Utc::now().fixed_offset()))
}

/// Rounds down to a multiple of `duration` since Go's zero time; a non-positive duration
/// leaves the time as it is.
fn time_truncate(
    ftx: &FunctionContext,
    time: DateTime<FixedOffset>,
    duration: TimeDelta,
) -> ResolveResult {
    let step = duration.num_nanoseconds().map_or(i128::MAX, i128::from);
    if step <= 0 {
        return Ok(Value::Timestamp(time));
    }
    let since_zero = i128::from(time.timestamp()) + GO_ZERO_TIME_TO_UNIX_EPOCH_SECONDS;
    let nanos = since_zero * 1_000_000_000 + i128::from(time.timestamp_subsec_nanos());
    let excess = i64::try_from(nanos.rem_euclid(step))
        .map_err(|_| ftx.error("the duration is out of range"))?;
    Ok(Value::Timestamp(time - TimeDelta::nanoseconds(excess)))
}

/// `minute hour day-of-month month day-of-week` (Sunday is 0).
fn time_to_cron(time: DateTime<FixedOffset>) -> String {
    format!(
        "{} {} {} {} {}",
        time.minute(),
        time.hour(),
        time.day(),
        time.month(),
        time.weekday().num_days_from_sunday()
    )
}

/// `math.round(x)` rounds half away from zero, as the Kubernetes library does;
/// `math.round(x, precision)` rounds to `precision` decimal places (Kyverno's).
fn math_round(ftx: &FunctionContext, Arguments(arguments): Arguments) -> ResolveResult {
    match arguments.as_slice() {
        [Value::Float(value)] => Ok(Value::Float(value.round())),
        [value, precision] => {
            let value = number(ftx, value)?;
            let precision = match precision {
                Value::Int(precision) => *precision,
                other => {
                    return Err(ftx.error(format!(
                        "the precision must be an int, not {}",
                        super::super::type_name(other)
                    )));
                }
            };
            let shift = 10f64.powf(precision as f64);
            Ok(Value::Float((value * shift).round() / shift))
        }
        [other] => Err(ftx.error(format!(
            "expected a double, got {}",
            super::super::type_name(other)
        ))),
        _ => Err(ExecutionError::invalid_argument_count(2, arguments.len())),
    }
}

fn number(ftx: &FunctionContext, value: &Value) -> Result<f64, ExecutionError> {
    match value {
        Value::Float(value) => Ok(*value),
        Value::Int(value) => Ok(*value as f64),
        Value::UInt(value) => Ok(*value as f64),
        other => Err(ftx.error(format!(
            "expected a number, got {}",
            super::super::type_name(other)
        ))),
    }
}

/// A random string matching a regular expression (Kyverno's `random` JMESPath function).
fn random(ftx: &FunctionContext, Arguments(arguments): Arguments) -> ResolveResult {
    let pattern = match arguments.as_slice() {
        [] => DEFAULT_RANDOM_PATTERN.to_owned(),
        [Value::String(pattern)] => pattern.as_ref().clone(),
        [other] => {
            return Err(ftx.error(format!(
                "expected a string pattern, got {}",
                super::super::type_name(other)
            )));
        }
        _ => return Err(ExecutionError::invalid_argument_count(1, arguments.len())),
    };
    match jmespath::search("random(@)", &serde_json::Value::String(pattern)) {
        Ok(serde_json::Value::String(generated)) => Ok(generated.into()),
        Ok(other) => Err(ftx.error(format!("random produced {other}"))),
        Err(error) => Err(ftx.error(error)),
    }
}

/// A map from the `key_field` of each object of `keys` to the `value_field` of the object at
/// the same position in `values`.
fn list_objects_to_map(
    ftx: &FunctionContext,
    keys: Arc<Vec<Value>>,
    values: Arc<Vec<Value>>,
    key_field: Arc<String>,
    value_field: Arc<String>,
) -> ResolveResult {
    if keys.len() != values.len() {
        return Err(ftx.error(format!(
            "listObjToMap must take lists of equal length. list1: {}, list2: {}",
            keys.len(),
            values.len()
        )));
    }
    let key_field = Key::String(key_field);
    let value_field = Key::String(value_field);
    let mut map = HashMap::with_capacity(keys.len());
    for (key_object, value_object) in keys.iter().zip(values.iter()) {
        let Value::Map(key_object) = key_object else {
            return Err(ftx.error("object cannot be handled as a map in the key object list"));
        };
        let Some(Value::String(key)) = key_object.map.get(&key_field) else {
            return Err(ftx.error(
                "the passed key name cannot be handled as a string in the key object list",
            ));
        };
        let Value::Map(value_object) = value_object else {
            return Err(ftx.error(
                "object cannot be handled as a map string to any in the value object list",
            ));
        };
        let value = value_object
            .map
            .get(&value_field)
            .cloned()
            .unwrap_or(Value::Null);
        map.insert(Key::String(key.clone()), value);
    }
    Ok(map.into())
}

/// `{"Namespace": ..., "Name": ...}` of `system:serviceaccount:<namespace>:<name>`, both empty
/// for other users.
fn parse_service_account(username: Arc<String>) -> ResolveResult {
    let (namespace, name) = username
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .unwrap_or_default();
    Ok(HashMap::from([("Namespace", namespace), ("Name", name)]).into())
}
