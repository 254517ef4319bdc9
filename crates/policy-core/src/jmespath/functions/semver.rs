//! `semver_compare` with the range syntax of blang/semver (which upstream uses): comparators
//! (`>=1.0.0`, `!2.0.0`, bare `1.2.3`) joined by spaces (and) and `||` (or), with `x` wildcards.

use super::{ArgType, FunctionSpec, required, string};
use crate::jmespath::error::JmesPathError;
use semver::Version;
use serde_json::Value;
use std::cmp::Ordering;

const STRING: &[ArgType] = &[ArgType::String];

pub(super) const FUNCTIONS: &[FunctionSpec] = &[FunctionSpec {
    name: "semver_compare",
    args: &[required(STRING), required(STRING)],
    returns: &[ArgType::Boolean],
    note: "compares two strings which comply with the semantic versioning schema and outputs a boolean response as to the position of the second relative to the first",
    handler: |args, _| {
        // Upstream ignores a version that does not parse, comparing 0.0.0 instead.
        let version = Version::parse(string("semver_compare", args, 0)?)
            .unwrap_or_else(|_| Version::new(0, 0, 0));
        let range =
            parse_range(string("semver_compare", args, 1)?).map_err(JmesPathError::Function)?;
        Ok(Value::Bool(range.iter().any(|all| {
            all.iter().all(|comparator| comparator.matches(&version))
        })))
    },
}];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

struct Comparator {
    operator: Operator,
    version: Version,
}

impl Comparator {
    fn matches(&self, version: &Version) -> bool {
        let ordering = version.cmp_precedence(&self.version);
        match self.operator {
            Operator::Equal => ordering == Ordering::Equal,
            Operator::NotEqual => ordering != Ordering::Equal,
            Operator::Greater => ordering == Ordering::Greater,
            Operator::GreaterOrEqual => ordering != Ordering::Less,
            Operator::Less => ordering == Ordering::Less,
            Operator::LessOrEqual => ordering != Ordering::Greater,
        }
    }
}

/// A range: alternatives (`||`), each a conjunction of comparators.
fn parse_range(range: &str) -> Result<Vec<Vec<Comparator>>, String> {
    let parts = split_and_trim(range);
    let alternatives = split_alternatives(&parts)?;
    alternatives
        .into_iter()
        .map(|alternative| {
            expand_wildcards(alternative)?
                .iter()
                .map(|part| parse_comparator(part))
                .collect()
        })
        .collect()
}

/// Splits on spaces, keeping an operator attached to the version after it (`> 1.0` is one part).
fn split_and_trim(range: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut last_char = None;
    for c in range.chars() {
        if c == ' ' {
            if !matches!(last_char, Some('>' | '<' | '=')) && !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
            last_char = Some(c);
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

fn split_alternatives(parts: &[String]) -> Result<Vec<&[String]>, String> {
    let mut alternatives = Vec::new();
    let mut start = 0;
    for (index, part) in parts.iter().enumerate() {
        if part == "||" {
            if index == 0 {
                return Err("First element in range is '||'".to_owned());
            }
            alternatives.push(&parts[start..index]);
            start = index + 1;
        }
    }
    if start == parts.len() {
        return Err("Last element in range is '||'".to_owned());
    }
    alternatives.push(&parts[start..]);
    Ok(alternatives)
}

/// Splits `>=1.2.3` into `(">=", "1.2.3")` at the first digit.
fn split_operator(part: &str) -> Result<(&str, &str), String> {
    part.find(|c: char| c.is_ascii_digit())
        .map(|index| part.split_at(index))
        .ok_or_else(|| format!("Could not get version from string: {part:?}"))
}

/// Rewrites comparators with `x` wildcards into plain ones, as blang/semver does (including
/// its quirk of turning `!1.x` into an unsatisfiable pair).
fn expand_wildcards(parts: &[String]) -> Result<Vec<String>, String> {
    let mut expanded = Vec::new();
    for part in parts {
        if !part.contains('x') {
            expanded.push(part.clone());
            continue;
        }
        let (operator, version) = split_operator(part)?;
        let pieces: Vec<&str> = version.split('.').collect();
        let wildcard_position = (pieces.last() == Some(&"x")).then_some(pieces.len());
        let flat = flatten_wildcard(version);
        let (operator, increment) = match operator {
            ">" => (">=", true),
            ">=" => (">=", false),
            "<" => ("<", false),
            "<=" => ("<", true),
            "" | "=" | "==" => {
                expanded.push(format!(">={flat}"));
                ("<", true)
            }
            "!=" | "!" => {
                expanded.push(format!("<{flat}"));
                (">=", true)
            }
            other => (other, false),
        };
        let bound = if increment {
            match wildcard_position {
                Some(3) => increment_piece(&flat, 1),
                Some(2) => increment_piece(&flat, 0),
                _ => String::new(),
            }
        } else {
            flat
        };
        expanded.push(format!("{operator}{bound}"));
    }
    Ok(expanded)
}

/// `1.x` and `1.x.x` become `1.0.0`, `1.2.x` becomes `1.2.0`.
fn flatten_wildcard(version: &str) -> String {
    let flattened = version.replacen(".x.x", ".x", 1).replacen(".x", ".0", 1);
    if flattened.split('.').count() == 2 {
        format!("{flattened}.0")
    } else {
        flattened
    }
}

/// Adds one to the dot-separated number at `index`.
fn increment_piece(version: &str, index: usize) -> String {
    version
        .split('.')
        .enumerate()
        .map(|(i, piece)| match (i == index, piece.parse::<u64>()) {
            (true, Ok(number)) => (number + 1).to_string(),
            _ => piece.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn parse_comparator(part: &str) -> Result<Comparator, String> {
    let (operator, version) = split_operator(part)?;
    let version = Version::parse(version).map_err(|error| error.to_string())?;
    let operator = match operator {
        "" | "=" | "==" => Operator::Equal,
        "!" | "!=" => Operator::NotEqual,
        ">" => Operator::Greater,
        ">=" => Operator::GreaterOrEqual,
        "<" => Operator::Less,
        "<=" => Operator::LessOrEqual,
        other => return Err(format!("Could not parse comparator {other:?} in {part:?}")),
    };
    Ok(Comparator { operator, version })
}

#[cfg(test)]
mod tests {
    use crate::jmespath::search;
    use serde_json::json;

    fn compare(version: &str, range: &str) -> bool {
        search(
            &format!("semver_compare('{version}', '{range}')"),
            &json!({}),
        )
        .ok()
        .and_then(|value| value.as_bool())
        .unwrap_or_else(|| panic!("{version} {range}"))
    }

    #[test]
    fn ranges_with_and_or_and_wildcards() {
        assert!(compare("4.1.3", ">=4.1.x"));
        assert!(!compare("4.1.3", "!4.x.x"));
        assert!(compare("1.8.6", ">1.0.0 <2.0.0"));
        assert!(!compare("2.1.5", "<2.0.0 || >=3.0.0"));
        assert!(compare("3.0.0", "<2.0.0 || >=3.0.0"));
        assert!(compare("1.2.3", "1.2.3"));
        assert!(compare("1.2.3", "1.x"));
        assert!(!compare("2.0.0", "1.x"));
        assert!(compare("1.0.0", ">= 1.0.0"));
        assert!(compare("1.0.0-alpha", "<1.0.0"));
    }

    #[test]
    fn unparsable_versions_compare_as_zero() {
        assert!(compare("v1.2.3", "<0.0.1"));
    }

    #[test]
    fn invalid_ranges_are_errors() {
        for range in ["", "abc", "|| 1.0.0", "1.0.0 ||", "~1.0.0"] {
            assert!(
                search(&format!("semver_compare('1.0.0', '{range}')"), &json!({})).is_err(),
                "{range}"
            );
        }
    }
}
