//! The `cleanup.kyverno.io/ttl` label: when a labelled resource is due for deletion.
//!
//! The value is either a Go duration (`1h30m`), counted from the resource's creation, or an
//! absolute time: `2006-01-02T150405Z` (a label value cannot hold `:`), `2006-01-02`
//! (midnight UTC) or RFC 3339.
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use kyverno_policy_core::duration::parse_duration;

/// The label that gives a resource its time to live.
pub const TTL_LABEL: &str = "cleanup.kyverno.io/ttl";

/// The compact date-time layout label values can hold.
const DATE_TIME_LAYOUT: &str = "%Y-%m-%dT%H%M%SZ";

/// The date layout.
const DATE_LAYOUT: &str = "%Y-%m-%d";

/// A label value that is neither a duration nor a time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {TTL_LABEL} label value {0:?}: expected a duration (1h30m) or a time (2006-01-02T150405Z, 2006-01-02 or RFC 3339)"
)]
pub struct TtlError(pub String);

/// When a resource created at `created` with the label value `value` is to be deleted.
pub fn deletion_time(value: &str, created: DateTime<Utc>) -> Result<DateTime<Utc>, TtlError> {
    if let Some(duration) = parse_duration(value) {
        return created
            .checked_add_signed(duration)
            .ok_or_else(|| TtlError(value.to_owned()));
    }
    if let Ok(time) = NaiveDateTime::parse_from_str(value, DATE_TIME_LAYOUT) {
        return Ok(time.and_utc());
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, DATE_LAYOUT) {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| TtlError(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn durations_count_from_creation() {
        let created = at("2025-03-01T10:00:00Z");
        assert_eq!(
            deletion_time("1h30m", created),
            Ok(created + TimeDelta::minutes(90))
        );
        assert_eq!(
            deletion_time("90s", created),
            Ok(created + TimeDelta::seconds(90))
        );
        assert_eq!(deletion_time("0", created), Ok(created));
    }

    #[test]
    fn absolute_times_ignore_creation() {
        let created = at("2025-03-01T10:00:00Z");
        assert_eq!(
            deletion_time("2025-04-02T153000Z", created),
            Ok(at("2025-04-02T15:30:00Z"))
        );
        assert_eq!(
            deletion_time("2025-04-02", created),
            Ok(at("2025-04-02T00:00:00Z"))
        );
        assert_eq!(
            deletion_time("2025-04-02T15:30:00+02:00", created),
            Ok(at("2025-04-02T13:30:00Z"))
        );
    }

    #[test]
    fn anything_else_is_refused_not_guessed() {
        let created = at("2025-03-01T10:00:00Z");
        for value in [
            "",
            "tomorrow",
            "1d",
            "10",
            "2025-13-01",
            "1h30",
            "2025-04-02T1530Z",
        ] {
            assert_eq!(
                deletion_time(value, created),
                Err(TtlError(value.to_owned())),
                "{value:?}"
            );
        }
    }
}
