//! Go `time.Duration` syntax: parsing like `time.ParseDuration` (`1h30m`, `300ms`, `-1.5h`) and
//! printing like `Duration.String()` (`1h30m0s`). Durations are whole nanoseconds within `i64`.

use chrono::TimeDelta;

const NANOS_PER_MICRO: u64 = 1_000;
const NANOS_PER_MILLI: u64 = 1_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Nanoseconds per unit name accepted by Go (both micro signs are accepted).
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", NANOS_PER_MICRO),
    ("\u{b5}s", NANOS_PER_MICRO),
    ("\u{3bc}s", NANOS_PER_MICRO),
    ("ms", NANOS_PER_MILLI),
    ("s", NANOS_PER_SECOND),
    ("m", 60 * NANOS_PER_SECOND),
    ("h", 3600 * NANOS_PER_SECOND),
];

/// Parses a Go duration string; `None` when Go's `time.ParseDuration` would fail.
///
/// Each component is a decimal number with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`); a
/// single leading sign applies to the whole; a bare `0` needs no unit. Fractions finer than a
/// nanosecond are truncated and values beyond ±2^63 ns are rejected, as in Go.
pub fn parse_duration(s: &str) -> Option<TimeDelta> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(TimeDelta::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (component, remaining) = parse_component(rest)?;
        total = total.checked_add(component).filter(|&t| t <= 1 << 63)?;
        rest = remaining;
    }
    let nanos = if negative {
        0i64.checked_sub_unsigned(total)?
    } else {
        i64::try_from(total).ok()?
    };
    Some(TimeDelta::nanoseconds(nanos))
}

/// Parses one `<number><unit>` component at the start of `s`: its nanoseconds and what follows.
fn parse_component(s: &str) -> Option<(u64, &str)> {
    let integer_len = digit_count(s);
    let (integer_digits, mut rest) = s.split_at(integer_len);
    let integer = leading_int(integer_digits)?;
    let mut fraction = (0u64, 1f64);
    let mut has_fraction_digits = false;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let fraction_len = digit_count(after_dot);
        let (fraction_digits, after_fraction) = after_dot.split_at(fraction_len);
        fraction = leading_fraction(fraction_digits);
        has_fraction_digits = fraction_len > 0;
        rest = after_fraction;
    }
    if integer_len == 0 && !has_fraction_digits {
        return None;
    }
    let unit_len = rest
        .find(|c: char| c == '.' || c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (unit_name, rest) = rest.split_at(unit_len);
    let &(_, unit) = UNITS.iter().find(|(name, _)| *name == unit_name)?;
    if integer > (1 << 63) / unit {
        return None;
    }
    let mut nanos = integer * unit;
    let (fraction_value, fraction_scale) = fraction;
    if fraction_value > 0 {
        // Go computes the fractional part in float64 (nanosecond-accurate up to hours).
        nanos += (fraction_value as f64 * (unit as f64 / fraction_scale)) as u64;
        if nanos > 1 << 63 {
            return None;
        }
    }
    Some((nanos, rest))
}

fn digit_count(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// The value of a run of digits, `None` when it exceeds 2^63 (Go's "invalid duration").
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |value, digit| {
        value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            .filter(|&v| v <= 1 << 63)
    })
}

/// The digits of a fraction as `(value, 10^digits used)`; digits that would overflow are
/// ignored, as in Go.
fn leading_fraction(digits: &str) -> (u64, f64) {
    let mut value: u64 = 0;
    let mut scale = 1f64;
    for digit in digits.bytes() {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            .filter(|&v| v <= 1 << 63)
        {
            Some(next) => {
                value = next;
                scale *= 10.0;
            }
            None => break,
        }
    }
    (value, scale)
}

/// Formats a duration like Go's `Duration.String()`: `1h30m0s`, `1.5s`, `300ms`, `1µs`, `0s`.
///
/// Durations beyond the `i64` nanosecond range are saturated to it.
pub fn format_duration(duration: TimeDelta) -> String {
    let nanos = duration
        .num_nanoseconds()
        .unwrap_or(if duration < TimeDelta::zero() {
            i64::MIN
        } else {
            i64::MAX
        });
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    if magnitude < NANOS_PER_MICRO {
        return format!("{sign}{magnitude}ns");
    }
    if magnitude < NANOS_PER_MILLI {
        return format!("{sign}{}\u{b5}s", with_fraction(magnitude, NANOS_PER_MICRO));
    }
    if magnitude < NANOS_PER_SECOND {
        return format!("{sign}{}ms", with_fraction(magnitude, NANOS_PER_MILLI));
    }
    let seconds = with_fraction(magnitude % (60 * NANOS_PER_SECOND), NANOS_PER_SECOND);
    let total_minutes = magnitude / (60 * NANOS_PER_SECOND);
    let (hours, minutes) = (total_minutes / 60, total_minutes % 60);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// `value / unit` as a decimal with trailing fractional zeros removed (`1500, 1000` → `1.5`).
fn with_fraction(value: u64, unit: u64) -> String {
    let (whole, fraction) = (value / unit, value % unit);
    if fraction == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> Option<i64> {
        parse_duration(s).and_then(|d| d.num_nanoseconds())
    }

    #[test]
    fn parses_like_go() {
        // (input, nanoseconds) from Go's time.ParseDuration tests.
        let cases: [(&str, i64); 24] = [
            ("0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.004s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("-2m3.4s", -123_400_000_000),
        ];
        for (input, expected) in cases {
            assert_eq!(nanos(input), Some(expected), "{input:?}");
        }
        assert_eq!(nanos("1h2m3s4ms5us6ns"), Some(3_723_004_005_006));
        assert_eq!(nanos("39h9m14.425s"), Some(140_954_425_000_000));
        assert_eq!(nanos("0.3333333333333333333h"), Some(1_200_000_000_000));
        assert_eq!(nanos("9223372036854775807ns"), Some(i64::MAX));
        assert_eq!(nanos("-9223372036854775808ns"), Some(i64::MIN));
        assert_eq!(nanos("9223372036854775.807us"), Some(i64::MAX));
        assert_eq!(nanos("9223372036s854ms775us807ns"), Some(i64::MAX));
        assert_eq!(nanos("-9223372036854775.808us"), Some(i64::MIN));
        assert_eq!(nanos("0.100000000000000000000h"), Some(360_000_000_000));
    }

    #[test]
    fn rejects_like_go() {
        for input in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "1x",
            "1.5.3s",
            "3000000h",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "9223372036854ms775us808ns",
            " 1s",
            "1s ",
            "1h ",
        ] {
            assert_eq!(parse_duration(input), None, "{input:?}");
        }
    }

    #[test]
    fn formats_like_go() {
        // (nanoseconds, Duration.String()) from Go's time tests.
        let cases: [(i64, &str); 17] = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * 60 * 1_000_000_000 + 5_000_000_000, "4m5s"),
            (4 * 60 * 1_000_000_000 + 5_001_000_000, "4m5.001s"),
            (
                5 * 3_600_000_000_000 + 6 * 60_000_000_000 + 7_001_000_000,
                "5h6m7.001s",
            ),
            (8 * 60_000_000_000 + 1, "8m0.000000001s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (-1, "-1ns"),
            (-1_100, "-1.1µs"),
            (5_400_000_000_000, "1h30m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (60_000_000_000, "1m0s"),
            (1_000_000_000, "1s"),
        ];
        for (input, expected) in cases {
            assert_eq!(format_duration(TimeDelta::nanoseconds(input)), expected);
        }
    }

    #[test]
    fn round_trips() {
        for input in ["1h30m0s", "2h45m30.5s", "300ms", "-1h30m0s", "1.5µs"] {
            let parsed = parse_duration(input).map(format_duration);
            assert_eq!(parsed.as_deref(), Some(input));
        }
    }
}
