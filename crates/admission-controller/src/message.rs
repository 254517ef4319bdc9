//! The texts the admission controller answers with, worded and laid out as upstream's.
//!
//! A denial lists the failing rules as upstream renders them: a YAML mapping (Go's `yaml.v2`
//! `Marshal` of `policy -> rule -> message`), keys in `yaml.v2`'s natural order, strings
//! quoted where `yaml.v2` quotes them and long ones folded past column 80.
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The line width past which `yaml.v2` folds scalars at a space.
const BEST_WIDTH: usize = 80;

/// The denial message for `resource` (`Kind/namespace/name`) and the failing rules of each
/// policy (`policy -> rule -> message`), as upstream's `GetBlockedMessages`.
pub fn blocked_message(
    resource: &str,
    failures: &BTreeMap<String, BTreeMap<String, String>>,
) -> String {
    let mut text =
        format!("\n\nresource {resource} was blocked due to the following policies \n\n");
    let mut policies: Vec<(&String, &BTreeMap<String, String>)> = failures.iter().collect();
    policies.sort_by(|a, b| natural_order(a.0, b.0));
    for (policy, rules) in policies {
        write_key(&mut text, 0, policy);
        text.push('\n');
        let mut rules: Vec<(&String, &String)> = rules.iter().collect();
        rules.sort_by(|a, b| natural_order(a.0, b.0));
        for (rule, message) in rules {
            write_key(&mut text, 2, rule);
            text.push(' ');
            write_value(&mut text, 4, message);
            text.push('\n');
        }
    }
    text
}

/// The warning upstream returns for a rule that did not pass: `policy <policy>.<rule>: <message>`.
pub fn warning(policy: &str, rule: &str, message: &str) -> String {
    format!("policy {policy}.{rule}: {message}")
}

fn write_key(out: &mut String, indent: usize, key: &str) {
    out.extend(std::iter::repeat_n(' ', indent));
    match style(key, true) {
        Style::Plain => out.push_str(key),
        Style::SingleQuoted => write_single_quoted(out, key, None),
        Style::DoubleQuoted | Style::Literal => write_double_quoted(out, key),
    }
    out.push(':');
}

/// Writes a mapping value whose line starts at `indent - 2` (continuation lines at `indent`).
fn write_value(out: &mut String, indent: usize, value: &str) {
    match style(value, false) {
        Style::Plain => write_plain(out, value, indent),
        Style::SingleQuoted => write_single_quoted(out, value, Some(indent)),
        Style::DoubleQuoted => write_double_quoted(out, value),
        Style::Literal => write_literal(out, value, indent),
    }
}

fn column(out: &str) -> usize {
    out.rsplit('\n')
        .next()
        .map_or(0, |line| line.chars().count())
}

/// Writes `value` unquoted, folding at a space once past the line width.
fn write_plain(out: &mut String, value: &str, indent: usize) {
    write_folding(out, value, Some(indent), |out, c| out.push(c));
}

/// Writes `value` in single quotes (`'` doubled), folding at a space once past the line width
/// when `fold_indent` is given.
fn write_single_quoted(out: &mut String, value: &str, fold_indent: Option<usize>) {
    out.push('\'');
    write_folding(out, value, fold_indent, |out, c| {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    });
    out.push('\'');
}

/// `yaml.v2`'s folding: a space after a non-space, past the width and not followed by a space
/// (nor first or last), becomes a line break and the indentation.
fn write_folding(
    out: &mut String,
    value: &str,
    fold_indent: Option<usize>,
    mut write: impl FnMut(&mut String, char),
) {
    let chars: Vec<char> = value.chars().collect();
    let mut col = column(out);
    let mut after_space = false;
    for (index, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let next_is_space = chars.get(index + 1) == Some(&' ');
            match fold_indent {
                Some(indent)
                    if !after_space
                        && col > BEST_WIDTH
                        && index != 0
                        && index + 1 != chars.len()
                        && !next_is_space =>
                {
                    out.push('\n');
                    out.extend(std::iter::repeat_n(' ', indent));
                    col = indent;
                }
                _ => {
                    out.push(' ');
                    col += 1;
                }
            }
            after_space = true;
        } else {
            let before = out.len();
            write(out, c);
            col += out[before..].chars().count();
            after_space = false;
        }
    }
}

fn write_double_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A literal block (`|`), for strings with line breaks.
fn write_literal(out: &mut String, value: &str, indent: usize) {
    out.push('|');
    if value.starts_with([' ', '\n']) {
        out.push('2');
    }
    let trailing = value.len() - value.trim_end_matches('\n').len();
    match trailing {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    let body = value.strip_suffix('\n').unwrap_or(value);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.extend(std::iter::repeat_n(' ', indent));
            out.push_str(line);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

/// The style `yaml.v2` gives a string: double quotes when it would read back as another type,
/// a literal block when it has line breaks (a key: double quotes), plain when the emitter allows
/// it, single quotes otherwise.
fn style(value: &str, key: bool) -> Style {
    if !resolves_to_string(value) {
        return Style::DoubleQuoted;
    }
    if value.contains('\n') {
        return if key {
            Style::DoubleQuoted
        } else {
            Style::Literal
        };
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Style::DoubleQuoted;
    }
    if plain_allowed(value) {
        Style::Plain
    } else {
        Style::SingleQuoted
    }
}

/// Whether the block-context emitter of `yaml.v2` may write `value` unquoted.
fn plain_allowed(value: &str) -> bool {
    if value.starts_with("---") || value.starts_with("...") {
        return false;
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return false;
    }
    let chars: Vec<char> = value.chars().collect();
    for (index, &c) in chars.iter().enumerate() {
        let next = chars.get(index + 1).copied();
        let followed_by_blank = next.is_none_or(|n| n == ' ' || n == '\t');
        if index == 0 {
            if matches!(
                c,
                '#' | ','
                    | '['
                    | ']'
                    | '{'
                    | '}'
                    | '&'
                    | '*'
                    | '!'
                    | '|'
                    | '>'
                    | '\''
                    | '"'
                    | '%'
                    | '@'
                    | '`'
            ) {
                return false;
            }
            if matches!(c, '?' | ':' | '-') && followed_by_blank {
                return false;
            }
        } else {
            if c == ':' && followed_by_blank {
                return false;
            }
            if c == '#' && matches!(chars[index - 1], ' ' | '\t') {
                return false;
            }
        }
    }
    true
}

/// Whether `yaml.v2` reads `value` back as a string (not a null, boolean or number).
fn resolves_to_string(value: &str) -> bool {
    const NON_STRINGS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if NON_STRINGS.contains(&value) {
        return false;
    }
    !is_number(value)
}

fn is_number(value: &str) -> bool {
    let plain: String = value.chars().filter(|&c| c != '_').collect();
    let unsigned = plain.strip_prefix(['+', '-']).unwrap_or(&plain);
    if unsigned.is_empty() {
        return false;
    }
    if let Some(hex) = unsigned.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(binary) = unsigned.strip_prefix("0b") {
        return !binary.is_empty() && binary.chars().all(|c| c == '0' || c == '1');
    }
    if unsigned.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    // Base-60 numbers (`1:30`) read back as numbers too.
    if unsigned.contains(':')
        && unsigned
            .split(':')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
    {
        return true;
    }
    unsigned.chars().any(|c| c.is_ascii_digit())
        && unsigned
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && unsigned.parse::<f64>().is_ok()
}

/// `yaml.v2`'s order of map keys: letters after other characters, runs of digits compared as
/// numbers.
fn natural_order(a: &str, b: &str) -> Ordering {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    for index in 0..a.len().min(b.len()) {
        if a[index] == b[index] {
            continue;
        }
        let (a_letter, b_letter) = (a[index].is_alphabetic(), b[index].is_alphabetic());
        if a_letter && b_letter {
            return a[index].cmp(&b[index]);
        }
        if a_letter || b_letter {
            return if b_letter {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut a_number, mut b_number) = (0_i64, 0_i64);
        if a[index] == '0' || b[index] == '0' {
            let nonzero_before = a[..index]
                .iter()
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .any(|&c| c != '0');
            if nonzero_before {
                a_number = 1;
                b_number = 1;
            }
        }
        let digits = |chars: &[char], number: &mut i64| {
            let mut end = index;
            while end < chars.len() && chars[end].is_ascii_digit() {
                *number = number
                    .saturating_mul(10)
                    .saturating_add(i64::from(chars[end] as u8 - b'0'));
                end += 1;
            }
            end
        };
        let a_end = digits(&a, &mut a_number);
        let b_end = digits(&b, &mut b_number);
        if a_number != b_number {
            return a_number.cmp(&b_number);
        }
        if a_end != b_end {
            return a_end.cmp(&b_end);
        }
        return a[index].cmp(&b[index]);
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn failures(entries: &[(&str, &str, &str)]) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut map: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (policy, rule, message) in entries {
            map.entry((*policy).into())
                .or_default()
                .insert((*rule).into(), (*message).into());
        }
        map
    }

    #[test]
    fn upstream_block_message_tests() {
        // pkg/webhooks/utils/block_test.go
        assert_eq!(
            blocked_message(
                "foo/bar/baz",
                &failures(&[("test", "rule-fail", "message fail")])
            ),
            "\n\nresource foo/bar/baz was blocked due to the following policies \n\ntest:\n  rule-fail: message fail\n"
        );
        assert_eq!(
            blocked_message(
                "foo/bar/baz",
                &failures(&[
                    ("test", "rule-fail", "message fail"),
                    ("test", "rule-error", "message error")
                ])
            ),
            "\n\nresource foo/bar/baz was blocked due to the following policies \n\ntest:\n  rule-error: message error\n  rule-fail: message fail\n"
        );
    }

    #[test]
    fn require_labels_message_is_quoted_and_folded_as_upstream() {
        // As Kyverno answers `kubectl run` against the require-labels sample policy.
        let message = blocked_message(
            "Pod/default/sample",
            &failures(&[(
                "require-labels",
                "check-for-labels",
                "validation error: label 'app.kubernetes.io/name' is required. rule check-for-labels failed at path /metadata/labels/app.kubernetes.io/name/",
            )]),
        );
        assert_eq!(
            message,
            "\n\nresource Pod/default/sample was blocked due to the following policies \n\nrequire-labels:\n  check-for-labels: 'validation error: label ''app.kubernetes.io/name'' is required.\n    rule check-for-labels failed at path /metadata/labels/app.kubernetes.io/name/'\n"
        );
    }

    #[test]
    fn styles() {
        assert_eq!(style("plain text", false), Style::Plain);
        assert_eq!(style("a: b", false), Style::SingleQuoted);
        assert_eq!(style("a:b", false), Style::Plain);
        assert_eq!(style("ends:", false), Style::SingleQuoted);
        assert_eq!(style("x #y", false), Style::SingleQuoted);
        assert_eq!(style("x#y", false), Style::Plain);
        assert_eq!(style("- item", false), Style::SingleQuoted);
        assert_eq!(style("*star", false), Style::SingleQuoted);
        assert_eq!(style(" lead", false), Style::SingleQuoted);
        assert_eq!(style("true", false), Style::DoubleQuoted);
        assert_eq!(style("", false), Style::DoubleQuoted);
        assert_eq!(style("12", false), Style::DoubleQuoted);
        assert_eq!(style("1.5e3", false), Style::DoubleQuoted);
        assert_eq!(style("1.2.3", false), Style::Plain);
        assert_eq!(style("two\nlines", false), Style::Literal);
    }

    #[test]
    fn literal_blocks_and_double_quotes() {
        let mut out = String::new();
        write_value(&mut out, 4, "first\nsecond");
        assert_eq!(out, "|-\n    first\n    second");
        let mut out = String::new();
        write_value(&mut out, 4, "yes");
        assert_eq!(out, "\"yes\"");
    }

    #[test]
    fn long_plain_values_fold_at_spaces() {
        let words = "word ".repeat(30);
        let message = blocked_message("Pod/ns/p", &failures(&[("p", "r", words.trim_end())]));
        let lines: Vec<&str> = message.lines().skip(5).collect();
        assert!(lines[0].starts_with("  r: word"));
        assert!(
            lines[0].chars().count() > BEST_WIDTH && lines[0].chars().count() <= BEST_WIDTH + 5
        );
        assert!(lines[1].starts_with("    word"));
    }

    #[test]
    fn natural_key_order() {
        let mut keys = vec!["rule-10", "rule-9", "rule-a", "Rule", "rule-", "a1", "a01"];
        keys.sort_by(|a, b| natural_order(a, b));
        assert_eq!(
            keys,
            ["Rule", "a1", "a01", "rule-", "rule-9", "rule-10", "rule-a"]
        );
    }

    #[test]
    fn warnings_as_upstream() {
        assert_eq!(warning("p", "r", "bad"), "policy p.r: bad");
    }
}
