//! Go's `time.Parse` with reference layouts (`2006-01-02T15:04:05Z07:00`, `Mon Jan _2 ...`) and
//! the RFC 3339 form `Time.Format(time.RFC3339)` writes, with upstream's error wording.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeDelta, Timelike};

/// Go's `time.RFC3339` layout.
pub(super) const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// Formats like Go's `t.Format(time.RFC3339)`: seconds precision, `Z` for a zero offset.
pub(super) fn format_rfc3339(time: &DateTime<FixedOffset>) -> String {
    let offset = time.offset().local_minus_utc();
    let zone = if offset == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.unsigned_abs() / 60;
        format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// A layout element (Go's `std*` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    UpperPm,
    LowerPm,
    ZoneName,
    /// A numeric zone offset; `iso` ones also accept `Z`.
    Offset {
        iso: bool,
        shape: OffsetShape,
    },
    /// `.000`: exactly this many fraction digits.
    FixedFraction(usize),
    /// `.999`: an optional fraction of any length.
    OptionalFraction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OffsetShape {
    /// `-07`
    Hours,
    /// `-0700`
    HoursMinutes,
    /// `-07:00`
    ColonHoursMinutes,
    /// `-070000`
    HoursMinutesSeconds,
    /// `-07:00:00`
    ColonHoursMinutesSeconds,
}

const OFFSET_SHAPES: [(&str, OffsetShape); 5] = [
    ("070000", OffsetShape::HoursMinutesSeconds),
    ("07:00:00", OffsetShape::ColonHoursMinutesSeconds),
    ("0700", OffsetShape::HoursMinutes),
    ("07:00", OffsetShape::ColonHoursMinutes),
    ("07", OffsetShape::Hours),
];

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Splits `layout` at its first element: (literal before it, element and its text, rest).
fn next_element(layout: &str) -> (&str, Option<(Element, &str)>, &str) {
    let bytes = layout.as_bytes();
    let starts = |i: usize, text: &str| layout.get(i..).is_some_and(|s| s.starts_with(text));
    let lower_at = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_lowercase);
    for (i, &byte) in bytes.iter().enumerate() {
        let found = match byte {
            b'J' if starts(i, "January") => Some((Element::LongMonth, 7)),
            b'J' if starts(i, "Jan") && !lower_at(i + 3) => Some((Element::Month, 3)),
            b'M' if starts(i, "Monday") => Some((Element::LongWeekDay, 6)),
            b'M' if starts(i, "Mon") && !lower_at(i + 3) => Some((Element::WeekDay, 3)),
            b'M' if starts(i, "MST") => Some((Element::ZoneName, 3)),
            b'0' => match bytes.get(i + 1) {
                Some(b'1') => Some((Element::ZeroMonth, 2)),
                Some(b'2') => Some((Element::ZeroDay, 2)),
                Some(b'3') => Some((Element::ZeroHour12, 2)),
                Some(b'4') => Some((Element::ZeroMinute, 2)),
                Some(b'5') => Some((Element::ZeroSecond, 2)),
                Some(b'6') => Some((Element::Year, 2)),
                Some(b'0') if bytes.get(i + 2) == Some(&b'2') => Some((Element::ZeroYearDay, 3)),
                _ => None,
            },
            b'1' if bytes.get(i + 1) == Some(&b'5') => Some((Element::Hour, 2)),
            b'1' => Some((Element::NumMonth, 1)),
            b'2' if starts(i, "2006") => Some((Element::LongYear, 4)),
            b'2' => Some((Element::Day, 1)),
            // `_2006` is a literal underscore followed by the year.
            b'_' if starts(i, "_2006") => {
                return (
                    &layout[..=i],
                    Some((Element::LongYear, &layout[i + 1..i + 5])),
                    &layout[i + 5..],
                );
            }
            b'_' if starts(i, "_2") => Some((Element::UnderDay, 2)),
            b'_' if starts(i, "__2") => Some((Element::UnderYearDay, 3)),
            b'3' => Some((Element::Hour12, 1)),
            b'4' => Some((Element::Minute, 1)),
            b'5' => Some((Element::Second, 1)),
            b'P' if bytes.get(i + 1) == Some(&b'M') => Some((Element::UpperPm, 2)),
            b'p' if bytes.get(i + 1) == Some(&b'm') => Some((Element::LowerPm, 2)),
            b'-' | b'Z' => OFFSET_SHAPES
                .iter()
                .find(|(text, _)| starts(i + 1, text))
                .map(|(text, shape)| {
                    let element = Element::Offset {
                        iso: byte == b'Z',
                        shape: *shape,
                    };
                    (element, text.len() + 1)
                }),
            b'.' | b',' if matches!(bytes.get(i + 1), Some(b'0' | b'9')) => {
                let digit = bytes[i + 1];
                let run = bytes[i + 1..].iter().take_while(|&&b| b == digit).count();
                if bytes.get(i + 1 + run).is_some_and(u8::is_ascii_digit) {
                    None
                } else if digit == b'0' {
                    Some((Element::FixedFraction(run), run + 1))
                } else {
                    Some((Element::OptionalFraction, run + 1))
                }
            }
            _ => None,
        };
        if let Some((element, length)) = found {
            return (
                &layout[..i],
                Some((element, &layout[i..i + length])),
                &layout[i + length..],
            );
        }
    }
    (layout, None, "")
}

/// A failed parse, formatted like Go's `*time.ParseError`.
fn parse_error(layout: &str, value: &str, element: &str, rest: &str) -> String {
    format!("parsing time {value:?} as {layout:?}: cannot parse {rest:?} as {element:?}")
}

fn range_error(value: &str, what: &str) -> String {
    format!("parsing time {value:?}: {what} out of range")
}

/// Go's `skip`: matches a literal, where a space matches any run of spaces.
fn skip<'v>(mut value: &'v str, mut literal: &str) -> Option<&'v str> {
    while let Some(first) = literal.chars().next() {
        if first == ' ' {
            if value.chars().next().is_some_and(|c| c != ' ') {
                return None;
            }
            literal = literal.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        value = value.strip_prefix(first)?;
        literal = &literal[first.len_utf8()..];
    }
    Some(value)
}

/// One or two digits (exactly two when `fixed`), as Go's `getnum`.
fn number(value: &str, fixed: bool) -> Option<(u32, &str)> {
    let bytes = value.as_bytes();
    let first = bytes.first().filter(|b| b.is_ascii_digit())?;
    match bytes.get(1).filter(|b| b.is_ascii_digit()) {
        Some(second) => Some((
            u32::from(first - b'0') * 10 + u32::from(second - b'0'),
            &value[2..],
        )),
        None if fixed => None,
        None => Some((u32::from(first - b'0'), &value[1..])),
    }
}

/// Up to three digits (exactly three when `fixed`), as Go's `getnum3`.
fn number3(value: &str, fixed: bool) -> Option<(u32, &str)> {
    let digits = value.bytes().take(3).take_while(u8::is_ascii_digit).count();
    if digits == 0 || (fixed && digits != 3) {
        return None;
    }
    Some((value[..digits].parse().ok()?, &value[digits..]))
}

/// A name from `names` (or its three-letter abbreviation), case-insensitively.
fn lookup<'v>(names: &[&str], abbreviated: bool, value: &'v str) -> Option<(usize, &'v str)> {
    names.iter().enumerate().find_map(|(index, name)| {
        let name = if abbreviated { &name[..3] } else { name };
        let candidate = value.get(..name.len())?;
        candidate
            .eq_ignore_ascii_case(name)
            .then(|| (index, &value[name.len()..]))
    })
}

/// Nanoseconds from a `.123` fraction of `length` bytes (separator included).
fn nanoseconds(value: &str, length: usize) -> Option<u32> {
    let digits = value.get(1..length.min(10))?;
    if !value.starts_with(['.', ',']) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parsed: u32 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(parsed * 10u32.pow(9 - u32::try_from(digits.len()).ok()?))
}

/// Length of a time zone abbreviation at the start of `value` (Go's `parseTimeZone`).
fn zone_name_length(value: &str) -> Option<usize> {
    if value.starts_with("ChST") || value.starts_with("MeST") {
        return Some(4);
    }
    if value.starts_with("GMT") {
        return Some(3);
    }
    let bytes = value.as_bytes();
    let upper = bytes
        .iter()
        .take(6)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if bytes[3] == b'T' || value.starts_with("WITA") => Some(4),
        5 if bytes[4] == b'T' => Some(5),
        _ => None,
    }
}

/// Parses `value` with a Go reference `layout`, as `time.Parse` does: fields the layout lacks
/// default to January 1st of year 0, midnight, UTC; zone names other than offsets read as UTC.
pub(super) fn parse(layout: &str, value: &str) -> Result<DateTime<FixedOffset>, String> {
    let (full_layout, full_value) = (layout, value);
    let (mut layout, mut value) = (layout, value);
    let mut year: i32 = 0;
    let mut month: Option<u32> = None;
    let mut day: Option<u32> = None;
    let mut year_day: Option<u32> = None;
    let (mut hour, mut minute, mut second, mut nanosecond) = (0u32, 0u32, 0u32, 0u32);
    let (mut pm, mut am) = (false, false);
    let mut offset_seconds: i32 = 0;
    loop {
        let (literal, element, rest) = next_element(layout);
        value = skip(value, literal)
            .ok_or_else(|| parse_error(full_layout, full_value, literal, value))?;
        let Some((element, element_text)) = element else {
            if !value.is_empty() {
                return Err(format!(
                    "parsing time {full_value:?}: extra text: {value:?}"
                ));
            }
            break;
        };
        layout = rest;
        let bad = || parse_error(full_layout, full_value, element_text, value);
        let mut out_of_range: Option<&str> = None;
        value = match element {
            Element::Year => {
                let digits = value
                    .get(..2)
                    .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
                let two_digits: i32 = digits.and_then(|d| d.parse().ok()).ok_or_else(bad)?;
                year = if two_digits >= 69 {
                    1900 + two_digits
                } else {
                    2000 + two_digits
                };
                &value[2..]
            }
            Element::LongYear => {
                let digits = value
                    .get(..4)
                    .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
                year = digits.and_then(|d| d.parse().ok()).ok_or_else(bad)?;
                &value[4..]
            }
            Element::Month | Element::LongMonth => {
                let (index, rest) =
                    lookup(&LONG_MONTHS, element == Element::Month, value).ok_or_else(bad)?;
                month = Some(u32::try_from(index).unwrap_or(0) + 1);
                rest
            }
            Element::NumMonth | Element::ZeroMonth => {
                let (parsed, rest) =
                    number(value, element == Element::ZeroMonth).ok_or_else(bad)?;
                if !(1..=12).contains(&parsed) {
                    out_of_range = Some("month");
                }
                month = Some(parsed);
                rest
            }
            Element::WeekDay | Element::LongWeekDay => {
                lookup(&LONG_DAYS, element == Element::WeekDay, value)
                    .ok_or_else(bad)?
                    .1
            }
            Element::Day | Element::UnderDay | Element::ZeroDay => {
                let trimmed = match element {
                    Element::UnderDay => value.strip_prefix(' ').unwrap_or(value),
                    _ => value,
                };
                let (parsed, rest) =
                    number(trimmed, element == Element::ZeroDay).ok_or_else(bad)?;
                day = Some(parsed);
                rest
            }
            Element::UnderYearDay | Element::ZeroYearDay => {
                let mut trimmed = value;
                if element == Element::UnderYearDay {
                    for _ in 0..2 {
                        trimmed = trimmed.strip_prefix(' ').unwrap_or(trimmed);
                    }
                }
                let (parsed, rest) =
                    number3(trimmed, element == Element::ZeroYearDay).ok_or_else(bad)?;
                if !(1..=366).contains(&parsed) {
                    out_of_range = Some("day-of-year");
                }
                year_day = Some(parsed);
                rest
            }
            Element::Hour => {
                let (parsed, rest) = number(value, false).ok_or_else(bad)?;
                if parsed >= 24 {
                    out_of_range = Some("hour");
                }
                hour = parsed;
                rest
            }
            Element::Hour12 | Element::ZeroHour12 => {
                let (parsed, rest) =
                    number(value, element == Element::ZeroHour12).ok_or_else(bad)?;
                if parsed > 12 {
                    out_of_range = Some("hour");
                }
                hour = parsed;
                rest
            }
            Element::Minute | Element::ZeroMinute => {
                let (parsed, rest) =
                    number(value, element == Element::ZeroMinute).ok_or_else(bad)?;
                if parsed >= 60 {
                    out_of_range = Some("minute");
                }
                minute = parsed;
                rest
            }
            Element::Second | Element::ZeroSecond => {
                let (parsed, mut rest) =
                    number(value, element == Element::ZeroSecond).ok_or_else(bad)?;
                if parsed >= 60 {
                    out_of_range = Some("second");
                }
                second = parsed;
                // A fraction right after the seconds is accepted even if the layout has none.
                let fraction_follows = rest.starts_with(['.', ','])
                    && rest.as_bytes().get(1).is_some_and(u8::is_ascii_digit);
                let layout_has_fraction = matches!(
                    next_element(layout).1,
                    Some((Element::FixedFraction(_) | Element::OptionalFraction, _))
                );
                if fraction_follows && !layout_has_fraction {
                    let length = 1 + rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                    nanosecond = nanoseconds(rest, length).ok_or_else(bad)?;
                    rest = &rest[length..];
                }
                rest
            }
            Element::UpperPm | Element::LowerPm => {
                let marker = value.get(..2).ok_or_else(bad)?;
                let (after, before) = if element == Element::UpperPm {
                    ("PM", "AM")
                } else {
                    ("pm", "am")
                };
                if marker == after {
                    pm = true;
                } else if marker == before {
                    am = true;
                } else {
                    return Err(bad());
                }
                &value[2..]
            }
            Element::Offset { iso: true, .. } if value.starts_with('Z') => {
                offset_seconds = 0;
                &value[1..]
            }
            Element::Offset { shape, .. } => {
                let (offset, rest, range) = parse_offset(value, shape).ok_or_else(bad)?;
                out_of_range = range;
                offset_seconds = offset;
                rest
            }
            Element::ZoneName => {
                if let Some(rest) = value.strip_prefix("UTC") {
                    rest
                } else {
                    let length = zone_name_length(value).ok_or_else(bad)?;
                    &value[length..]
                }
            }
            Element::FixedFraction(digits) => {
                let length = digits + 1;
                if value.len() < length {
                    return Err(bad());
                }
                nanosecond = nanoseconds(value, length).ok_or_else(bad)?;
                &value[length..]
            }
            Element::OptionalFraction => {
                let present = value.starts_with(['.', ','])
                    && value.as_bytes().get(1).is_some_and(u8::is_ascii_digit);
                if present {
                    let length = 1 + value[1..].bytes().take_while(u8::is_ascii_digit).count();
                    nanosecond = nanoseconds(value, length).ok_or_else(bad)?;
                    &value[length..]
                } else {
                    value
                }
            }
        };
        if let Some(what) = out_of_range {
            return Err(range_error(full_value, what));
        }
    }
    if pm && hour < 12 {
        hour += 12;
    } else if am && hour == 12 {
        hour = 0;
    }
    let date = match year_day {
        Some(year_day) => {
            let date = NaiveDate::from_yo_opt(year, year_day)
                .ok_or_else(|| range_error(full_value, "day-of-year"))?;
            let mismatched =
                month.is_some_and(|m| m != date.month()) || day.is_some_and(|d| d != date.day());
            if mismatched {
                return Err(range_error(full_value, "day-of-year"));
            }
            date
        }
        None => NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1))
            .ok_or_else(|| range_error(full_value, "day"))?,
    };
    let naive = date
        .and_hms_nano_opt(hour, minute, second, nanosecond)
        .ok_or_else(|| range_error(full_value, "hour"))?;
    let offset = FixedOffset::east_opt(offset_seconds)
        .ok_or_else(|| range_error(full_value, "time zone offset hour"))?;
    let utc = naive - TimeDelta::seconds(i64::from(offset_seconds));
    Ok(DateTime::from_naive_utc_and_offset(utc, offset))
}

/// A numeric offset: (seconds east of UTC, rest, out-of-range component).
fn parse_offset(value: &str, shape: OffsetShape) -> Option<(i32, &str, Option<&'static str>)> {
    let bytes = value.as_bytes();
    let (hours, minutes, seconds, length) = match shape {
        OffsetShape::ColonHoursMinutes => {
            (bytes.get(3) == Some(&b':')).then_some((1..3, Some(4..6), None, 6))?
        }
        OffsetShape::Hours => (1..3, None, None, 3),
        OffsetShape::ColonHoursMinutesSeconds => (bytes.get(3) == Some(&b':')
            && bytes.get(6) == Some(&b':'))
        .then_some((1..3, Some(4..6), Some(7..9), 9))?,
        OffsetShape::HoursMinutesSeconds => (1..3, Some(3..5), Some(5..7), 7),
        OffsetShape::HoursMinutes => (1..3, Some(3..5), None, 5),
    };
    if value.len() < length {
        return None;
    }
    let field = |range: Option<std::ops::Range<usize>>| -> Option<i32> {
        match range {
            None => Some(0),
            Some(range) => {
                number(value.get(range)?, true).map(|(n, _)| i32::try_from(n).unwrap_or(0))
            }
        }
    };
    let (h, m, s) = (field(Some(hours))?, field(minutes)?, field(seconds)?);
    let out_of_range = if s > 60 {
        Some("time zone offset second")
    } else if m > 60 {
        Some("time zone offset minute")
    } else if h > 24 {
        Some("time zone offset hour")
    } else {
        None
    };
    let magnitude = (h * 60 + m) * 60 + s;
    let offset = match bytes[0] {
        b'+' => magnitude,
        b'-' => -magnitude,
        _ => return None,
    };
    Some((offset, &value[length..], out_of_range))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc3339(layout: &str, value: &str) -> Result<String, String> {
        parse(layout, value).map(|time| format_rfc3339(&time))
    }

    #[test]
    fn parses_rfc3339_with_offsets_and_fractions() {
        assert_eq!(
            rfc3339(RFC3339, "2021-01-02T15:04:05+01:00"),
            Ok("2021-01-02T15:04:05+01:00".into())
        );
        assert_eq!(
            rfc3339(RFC3339, "2021-01-02T15:04:05.123Z"),
            Ok("2021-01-02T15:04:05Z".into())
        );
        assert_eq!(
            parse(RFC3339, "2021-01-02T15:04:05.5Z").map(|t| t.nanosecond()),
            Ok(500_000_000)
        );
    }

    #[test]
    fn parses_named_layouts() {
        assert_eq!(
            rfc3339(
                "Mon Jan _2 15:04:05 MST 2006",
                "Tue Feb  1 10:30:00 UTC 2022"
            ),
            Ok("2022-02-01T10:30:00Z".into())
        );
        assert_eq!(
            rfc3339("02 Jan 06 15:04 -0700", "05 Mar 21 08:15 -0530"),
            Ok("2021-03-05T08:15:00-05:30".into())
        );
        assert_eq!(
            rfc3339("January 2, 2006 3:04pm", "march 7, 2023 12:30am"),
            Ok("2023-03-07T00:30:00Z".into())
        );
        assert_eq!(
            rfc3339("2006-01-02", "2023-02-28"),
            Ok("2023-02-28T00:00:00Z".into())
        );
        assert_eq!(
            rfc3339("2006.002", "2024.060"),
            Ok("2024-02-29T00:00:00Z".into())
        );
    }

    #[test]
    fn reports_errors_like_go() {
        assert_eq!(
            rfc3339(RFC3339, "2021-13-02T15:04:05Z"),
            Err("parsing time \"2021-13-02T15:04:05Z\": month out of range".into())
        );
        assert_eq!(
            rfc3339(RFC3339, "2021-02-30T15:04:05Z"),
            Err("parsing time \"2021-02-30T15:04:05Z\": day out of range".into())
        );
        assert_eq!(
            rfc3339(RFC3339, "2021-01-02 15:04:05Z"),
            Err("parsing time \"2021-01-02 15:04:05Z\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \" 15:04:05Z\" as \"T\"".into())
        );
        assert_eq!(
            rfc3339("2006-01-02", "2021-01-02x"),
            Err("parsing time \"2021-01-02x\": extra text: \"x\"".into())
        );
    }
}
