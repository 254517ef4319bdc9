//! Cron schedules of cleanup and deleting policies (standard five-field cron, as upstream's
//! `cron.ParseStandard`), and when a policy runs next.
use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why a schedule is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

/// A parsed cron schedule.
#[derive(Clone, Debug)]
pub struct Schedule(Cron);

impl Schedule {
    /// Parses a standard cron expression: minute, hour, day of month, month and day of week,
    /// or a descriptor such as `@hourly`. Times are UTC.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let fields = text.split_whitespace().count();
        if !text.trim_start().starts_with('@') && fields != 5 {
            return Err(ScheduleError(format!(
                "expected exactly 5 fields, found {fields}: [{text}]"
            )));
        }
        CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(text)
            .map(Self)
            .map_err(|error| ScheduleError(error.to_string()))
    }

    /// The first time of the schedule strictly after `after`; `None` when there is none.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.find_next_occurrence(&after, false).ok()
    }
}

/// What to do about a policy now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Run the execution scheduled at `tick` (recorded as the last execution time), then look
    /// again.
    Run {
        /// The scheduled time being executed.
        tick: DateTime<Utc>,
    },
    /// Nothing to do before `until`.
    Wait {
        /// The next scheduled time.
        until: DateTime<Utc>,
    },
    /// The schedule has no time left.
    Never,
}

/// Upstream's decision: the first execution is the first scheduled time after the policy's
/// creation; each later one the first scheduled time after the last execution (so an execution
/// missed while no replica led is caught up, once per missed time). An execution is due once
/// `now` is past it.
pub fn plan(
    schedule: &Schedule,
    created: DateTime<Utc>,
    last_execution: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Plan {
    let due = match last_execution {
        Some(last) => schedule.next_after(last),
        None => schedule.next_after(created),
    };
    match due {
        Some(tick) if now > tick => Plan::Run { tick },
        Some(until) => Plan::Wait { until },
        None => Plan::Never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a test time")
            .with_timezone(&Utc)
    }

    #[test]
    fn standard_cron_expressions_are_accepted() {
        let every_five = Schedule::parse("*/5 * * * *").expect("valid");
        assert_eq!(
            every_five.next_after(at("2025-03-01T10:02:30Z")),
            Some(at("2025-03-01T10:05:00Z"))
        );
        assert_eq!(
            every_five.next_after(at("2025-03-01T10:05:00Z")),
            Some(at("2025-03-01T10:10:00Z")),
            "strictly after"
        );
        let nightly = Schedule::parse("30 2 * * 1-5").expect("valid");
        // Saturday 2025-03-01 -> Monday 2025-03-03.
        assert_eq!(
            nightly.next_after(at("2025-03-01T03:00:00Z")),
            Some(at("2025-03-03T02:30:00Z"))
        );
        let hourly = Schedule::parse("@hourly").expect("a descriptor");
        assert_eq!(
            hourly.next_after(at("2025-03-01T10:02:00Z")),
            Some(at("2025-03-01T11:00:00Z"))
        );
    }

    #[test]
    fn invalid_schedules_are_refused() {
        for text in [
            "",
            "invalid-schedule",
            "* * * *",
            "0 * * * * *",
            "61 * * * *",
            "* 25 * * *",
        ] {
            assert!(Schedule::parse(text).is_err(), "{text:?} was accepted");
        }
        let error = Schedule::parse("every minute").expect_err("two fields");
        assert_eq!(
            error.to_string(),
            "expected exactly 5 fields, found 2: [every minute]"
        );
    }

    #[test]
    fn the_first_run_follows_creation_and_later_runs_the_last_execution() {
        let schedule = Schedule::parse("*/5 * * * *").expect("valid");
        let created = at("2025-03-01T10:01:00Z");
        assert_eq!(
            plan(&schedule, created, None, at("2025-03-01T10:04:59Z")),
            Plan::Wait {
                until: at("2025-03-01T10:05:00Z")
            }
        );
        assert_eq!(
            plan(&schedule, created, None, at("2025-03-01T10:05:01Z")),
            Plan::Run {
                tick: at("2025-03-01T10:05:00Z")
            }
        );
        // Executed at 10:05: nothing more until 10:10, however often it is asked.
        let last = Some(at("2025-03-01T10:05:00Z"));
        assert_eq!(
            plan(&schedule, created, last, at("2025-03-01T10:09:00Z")),
            Plan::Wait {
                until: at("2025-03-01T10:10:00Z")
            }
        );
        // Missed times are caught up one at a time.
        assert_eq!(
            plan(&schedule, created, last, at("2025-03-01T10:21:00Z")),
            Plan::Run {
                tick: at("2025-03-01T10:10:00Z")
            }
        );
    }
}
