//! Kyverno's time functions. Times are RFC 3339 strings (`time_parse` and `time_since` also take
//! Go reference layouts); durations are Go duration strings (`1h30m`).

use super::gotime::{RFC3339, format_rfc3339, parse};
use super::{Arg, ArgType, FunctionSpec, required, string};
use crate::duration::{format_duration, parse_duration};
use crate::jmespath::error::JmesPathError;
use chrono::{DateTime, Datelike, FixedOffset, TimeDelta, Timelike, Utc};
use serde_json::Value;

const STRING: &[ArgType] = &[ArgType::String];
const BOOL: &[ArgType] = &[ArgType::Boolean];

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "time_since",
        args: &[required(STRING), required(STRING), required(STRING)],
        returns: STRING,
        note: "calculate the difference between a start and end period of time where the end may either be a static definition or the then-current time",
        handler: |args, interpreter| {
            let layout = match string("time_since", args, 0)? {
                "" => RFC3339,
                layout => layout,
            };
            let start =
                parse(layout, string("time_since", args, 1)?).map_err(JmesPathError::Function)?;
            let end = match string("time_since", args, 2)? {
                "" => interpreter.now().fixed_offset(),
                end => parse(layout, end).map_err(JmesPathError::Function)?,
            };
            Ok(duration_value(end - start))
        },
    },
    FunctionSpec {
        name: "time_now",
        args: &[],
        returns: STRING,
        note: "returns current time in RFC 3339 format",
        handler: |_, interpreter| Ok(rfc3339_value(&interpreter.now().fixed_offset())),
    },
    FunctionSpec {
        name: "time_now_utc",
        args: &[],
        returns: STRING,
        note: "returns current UTC time in RFC 3339 format",
        handler: |_, interpreter| Ok(rfc3339_value(&interpreter.now().fixed_offset())),
    },
    FunctionSpec {
        name: "time_to_cron",
        args: &[required(STRING)],
        returns: STRING,
        note: "converts a time (RFC 3339) to a cron expression (string).",
        handler: |args, _| {
            let time = time_arg("time_to_cron", args, 0)?;
            Ok(Value::String(format!(
                "{} {} {} {} {}",
                time.minute(),
                time.hour(),
                time.day(),
                time.month(),
                time.weekday().num_days_from_sunday()
            )))
        },
    },
    FunctionSpec {
        name: "time_add",
        args: &[required(STRING), required(STRING)],
        returns: STRING,
        note: "adds duration (second string) to a time value (first string)",
        handler: |args, _| {
            let time = time_arg("time_add", args, 0)?;
            let duration = duration_arg("time_add", args, 1)?;
            Ok(rfc3339_value(&(time + duration)))
        },
    },
    FunctionSpec {
        name: "time_parse",
        args: &[required(STRING), required(STRING)],
        returns: STRING,
        note: "changes a time value of a given layout to RFC 3339",
        handler: |args, _| {
            let layout = string("time_parse", args, 0)?;
            let input = string("time_parse", args, 1)?;
            // A numeric layout means the input is a Unix timestamp in seconds.
            if layout.parse::<i64>().is_ok() {
                let seconds: i64 = input.parse().map_err(|_| {
                    JmesPathError::Function(format!(
                        "strconv.ParseInt: parsing {input:?}: invalid syntax"
                    ))
                })?;
                let time = DateTime::<Utc>::from_timestamp(seconds, 0).ok_or_else(|| {
                    JmesPathError::Function(format!(
                        "strconv.ParseInt: parsing {input:?}: value out of range"
                    ))
                })?;
                return Ok(rfc3339_value(&time.fixed_offset()));
            }
            parse(layout, input)
                .map(|time| rfc3339_value(&time))
                .map_err(JmesPathError::Function)
        },
    },
    FunctionSpec {
        name: "time_utc",
        args: &[required(STRING)],
        returns: STRING,
        note: "calcutes time in UTC from a given time in RFC 3339 format",
        handler: |args, _| {
            let time = time_arg("time_utc", args, 0)?;
            Ok(rfc3339_value(&time.with_timezone(&Utc).fixed_offset()))
        },
    },
    FunctionSpec {
        name: "time_diff",
        args: &[required(STRING), required(STRING)],
        returns: STRING,
        note: "calculate the difference between a start and end date in RFC3339 format",
        handler: |args, _| {
            let start = time_arg("time_diff", args, 0)?;
            let end = time_arg("time_diff", args, 1)?;
            Ok(duration_value(end - start))
        },
    },
    FunctionSpec {
        name: "time_before",
        args: &[required(STRING), required(STRING)],
        returns: BOOL,
        note: "checks if a time is before another time, both in RFC3339 format",
        handler: |args, _| {
            let time = time_arg("time_before", args, 0)?;
            Ok(Value::Bool(time < time_arg("time_before", args, 1)?))
        },
    },
    FunctionSpec {
        name: "time_after",
        args: &[required(STRING), required(STRING)],
        returns: BOOL,
        note: "checks if a time is after another time, both in RFC3339 format",
        handler: |args, _| {
            let time = time_arg("time_after", args, 0)?;
            Ok(Value::Bool(time > time_arg("time_after", args, 1)?))
        },
    },
    FunctionSpec {
        name: "time_between",
        args: &[required(STRING), required(STRING), required(STRING)],
        returns: BOOL,
        note: "checks if a time is between a start and end time, all in RFC3339 format",
        handler: |args, _| {
            let time = time_arg("time_between", args, 0)?;
            let start = time_arg("time_between", args, 1)?;
            let end = time_arg("time_between", args, 2)?;
            Ok(Value::Bool(time > start && time < end))
        },
    },
    FunctionSpec {
        name: "time_truncate",
        args: &[required(STRING), required(STRING)],
        returns: STRING,
        note: "returns the result of rounding time down to a multiple of duration",
        handler: |args, _| {
            let time = time_arg("time_truncate", args, 0)?;
            let duration = duration_arg("time_truncate", args, 1)?;
            Ok(rfc3339_value(&truncate(time, duration)))
        },
    },
];

fn rfc3339_value(time: &DateTime<FixedOffset>) -> Value {
    Value::String(format_rfc3339(time))
}

/// A time difference as Go's `Duration.String()`, saturated like Go's `Time.Sub`.
fn duration_value(difference: TimeDelta) -> Value {
    Value::String(format_duration(difference))
}

/// Argument `index` parsed as an RFC 3339 time; Go's parse error otherwise.
fn time_arg(
    function: &str,
    args: &[Arg<'_>],
    index: usize,
) -> Result<DateTime<FixedOffset>, JmesPathError> {
    parse(RFC3339, string(function, args, index)?).map_err(JmesPathError::Function)
}

/// Argument `index` parsed as a Go duration; Go's parse error otherwise.
fn duration_arg(
    function: &str,
    args: &[Arg<'_>],
    index: usize,
) -> Result<TimeDelta, JmesPathError> {
    let text = string(function, args, index)?;
    parse_duration(text)
        .ok_or_else(|| JmesPathError::Function(format!("time: invalid duration {text:?}")))
}

/// Seconds from Go's zero time (January 1st of year 1, UTC) to the Unix epoch.
const ZERO_TIME_TO_UNIX_SECONDS: i128 = 62_135_596_800;

/// Go's `Time.Truncate`: rounds down to a multiple of `duration` since the zero time; a
/// non-positive duration leaves the time unchanged.
fn truncate(time: DateTime<FixedOffset>, duration: TimeDelta) -> DateTime<FixedOffset> {
    let Some(step) = duration.num_nanoseconds().filter(|n| *n > 0) else {
        return time;
    };
    let since_zero = (i128::from(time.timestamp()) + ZERO_TIME_TO_UNIX_SECONDS) * 1_000_000_000
        + i128::from(time.timestamp_subsec_nanos());
    let remainder = since_zero.rem_euclid(i128::from(step));
    // The remainder is below `step`, an i64.
    time - TimeDelta::nanoseconds(i64::try_from(remainder).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::fails;
    use crate::jmespath::Runtime;
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::{Value, json};

    fn fixed_now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2023, 5, 6, 7, 8, 9)
            .single()
            .unwrap_or_default()
    }

    fn eval(expression: &str) -> Value {
        Runtime::with_clock(fixed_now)
            .search(expression, &json!({}))
            .unwrap_or_else(|error| panic!("{expression}: {error}"))
    }

    #[test]
    fn time_since_uses_layouts_and_the_clock() {
        assert_eq!(
            eval("time_since('', '2021-01-02T15:04:05Z', '2021-01-02T16:05:06Z')"),
            json!("1h1m1s")
        );
        assert_eq!(
            eval("time_since('2006-01-02', '2023-05-05', '')"),
            json!("31h8m9s")
        );
        assert!(fails("time_since('', 'bad', '')").starts_with("parsing time \"bad\""));
    }

    #[test]
    fn time_now_reads_the_clock() {
        assert_eq!(eval("time_now()"), json!("2023-05-06T07:08:09Z"));
        assert_eq!(eval("time_now_utc()"), json!("2023-05-06T07:08:09Z"));
    }

    #[test]
    fn time_to_cron_lists_minute_hour_day_month_weekday() {
        assert_eq!(
            eval("time_to_cron('2023-02-02T15:04:05Z')"),
            json!("4 15 2 2 4")
        );
        assert!(fails("time_to_cron('2023-02-02')").starts_with("parsing time"));
    }

    #[test]
    fn time_add_adds_durations() {
        assert_eq!(
            eval("time_add('2021-01-02T15:04:05Z', '3h')"),
            json!("2021-01-02T18:04:05Z")
        );
        assert_eq!(
            eval("time_add('2021-01-02T15:04:05+01:00', '-1h30m')"),
            json!("2021-01-02T13:34:05+01:00")
        );
        assert_eq!(
            fails("time_add('2021-01-02T15:04:05Z', '3x')"),
            "time: invalid duration \"3x\""
        );
    }

    #[test]
    fn time_parse_reads_layouts_and_epochs() {
        assert_eq!(
            eval("time_parse('Mon Jan 02 2006 15:04:05 -0700', 'Fri Jun 22 2022 17:45:00 +0100')"),
            json!("2022-06-22T17:45:00+01:00")
        );
        assert_eq!(
            eval("time_parse('1136239445', '1666030055')"),
            json!("2022-10-17T18:07:35Z")
        );
        assert!(fails("time_parse('2006-01-02', 'x')").starts_with("parsing time \"x\""));
        assert!(fails("time_parse('1', 'x')").starts_with("strconv.ParseInt"));
    }

    #[test]
    fn time_utc_converts_offsets() {
        assert_eq!(
            eval("time_utc('2021-01-02T18:04:05+05:30')"),
            json!("2021-01-02T12:34:05Z")
        );
        assert!(fails("time_utc(`1`)").contains("invalid type"));
    }

    #[test]
    fn time_diff_subtracts() {
        assert_eq!(
            eval("time_diff('2021-01-02T15:04:05Z', '2021-01-01T15:04:05Z')"),
            json!("-24h0m0s")
        );
        assert!(fails("time_diff('2021-01-02T15:04:05Z', 'x')").starts_with("parsing time"));
    }

    #[test]
    fn time_comparisons() {
        assert_eq!(
            eval("time_before('2021-01-02T15:04:05Z', '2021-01-02T16:04:05+01:00')"),
            json!(false)
        );
        assert_eq!(
            eval("time_after('2021-01-02T15:04:06Z', '2021-01-02T15:04:05Z')"),
            json!(true)
        );
        assert_eq!(
            eval(
                "time_between('2021-01-02T15:04:05Z', '2021-01-01T00:00:00Z', '2021-01-03T00:00:00Z')"
            ),
            json!(true)
        );
        assert_eq!(
            eval(
                "time_between('2021-01-01T00:00:00Z', '2021-01-01T00:00:00Z', '2021-01-03T00:00:00Z')"
            ),
            json!(false)
        );
        assert!(fails("time_before('x', 'y')").starts_with("parsing time"));
        assert!(fails("time_after('x', 'y')").starts_with("parsing time"));
        assert!(fails("time_between('x', 'y', 'z')").starts_with("parsing time"));
    }

    #[test]
    fn time_truncate_rounds_down() {
        assert_eq!(
            eval("time_truncate('2023-05-06T07:08:09Z', '1h')"),
            json!("2023-05-06T07:00:00Z")
        );
        assert_eq!(
            eval("time_truncate('2023-05-06T07:08:09+05:30', '24h')"),
            json!("2023-05-06T05:30:00+05:30")
        );
        assert!(
            fails("time_truncate('2023-05-06T07:08:09Z', 'x')")
                .starts_with("time: invalid duration")
        );
    }
}
