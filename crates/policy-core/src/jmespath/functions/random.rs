//! `random(pattern)`: a random string matching a regular expression, like the goregen library
//! upstream uses.

use super::{ArgType, FunctionSpec, required, string};
use crate::jmespath::error::JmesPathError;
use rand::Rng;
use regex_syntax::hir::{Class, Hir, HirKind};
use serde_json::Value;

const STRING: &[ArgType] = &[ArgType::String];

/// Repetitions of an unbounded `*` or `+` (goregen's default cap).
const MAX_UNBOUNDED_REPEAT: u32 = 4096;

/// Characters a class is drawn from when it has any: keeps `.`, negated classes and Unicode
/// `\d`/`\w` to the ASCII characters Go's (ASCII) classes produce.
const PRINTABLE_ASCII: (char, char) = (' ', '~');

pub(super) const FUNCTIONS: &[FunctionSpec] = &[FunctionSpec {
    name: "random",
    args: &[required(STRING)],
    returns: STRING,
    note: "Generates a random sequence of characters",
    handler: |args, _| {
        let pattern = string("random", args, 0)?;
        if pattern.is_empty() {
            return Err(JmesPathError::Function("no pattern provided".to_owned()));
        }
        let hir = regex_syntax::Parser::new()
            .parse(pattern)
            .map_err(|error| JmesPathError::Function(format!("error parsing regexp: {error}")))?;
        let mut generated = String::new();
        generate(&hir, &mut rand::rng(), &mut generated);
        Ok(Value::String(generated))
    },
}];

fn generate(hir: &Hir, rng: &mut impl Rng, out: &mut String) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(literal) => out.push_str(&String::from_utf8_lossy(&literal.0)),
        HirKind::Class(class) => {
            if let Some(c) = pick_from_class(class, rng) {
                out.push(c);
            }
        }
        HirKind::Repetition(repetition) => {
            let max = repetition
                .max
                .unwrap_or_else(|| repetition.min.saturating_add(MAX_UNBOUNDED_REPEAT));
            let count = rng.random_range(repetition.min..=max.max(repetition.min));
            for _ in 0..count {
                generate(&repetition.sub, rng, out);
            }
        }
        HirKind::Capture(capture) => generate(&capture.sub, rng, out),
        HirKind::Concat(parts) => {
            for part in parts {
                generate(part, rng, out);
            }
        }
        HirKind::Alternation(choices) => {
            if !choices.is_empty() {
                generate(&choices[rng.random_range(0..choices.len())], rng, out);
            }
        }
    }
}

/// A uniformly chosen character of `class`, from its printable ASCII part if it has one.
fn pick_from_class(class: &Class, rng: &mut impl Rng) -> Option<char> {
    let ranges: Vec<(char, char)> = match class {
        Class::Unicode(unicode) => unicode
            .ranges()
            .iter()
            .map(|r| (r.start(), r.end()))
            .collect(),
        Class::Bytes(bytes) => bytes
            .ranges()
            .iter()
            .map(|r| (char::from(r.start()), char::from(r.end())))
            .collect(),
    };
    let printable: Vec<(char, char)> = ranges
        .iter()
        .filter_map(|&(start, end)| {
            let start = start.max(PRINTABLE_ASCII.0);
            let end = end.min(PRINTABLE_ASCII.1);
            (start <= end).then_some((start, end))
        })
        .collect();
    let chosen = if !printable.is_empty() {
        &printable
    } else {
        &ranges
    };
    let total: u32 = chosen
        .iter()
        .map(|&(s, e)| u32::from(e) - u32::from(s) + 1)
        .sum();
    if total == 0 {
        return None;
    }
    let mut offset = rng.random_range(0..total);
    for &(start, end) in chosen {
        let size = u32::from(end) - u32::from(start) + 1;
        if offset < size {
            // Surrogates are excluded from Unicode classes, so this is always a char.
            return char::from_u32(u32::from(start) + offset);
        }
        offset -= size;
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::jmespath::search;
    use regex::Regex;
    use serde_json::json;

    #[test]
    fn generates_matching_strings() {
        for pattern in [
            "[0-9a-z]{5}",
            "(foo|bar)-[A-F]{2,4}",
            "x\\d+y",
            "[^a-z]{3}",
            ".{2}",
        ] {
            let anchored =
                Regex::new(&format!("^(?:{pattern})$")).unwrap_or_else(|e| panic!("{e}"));
            for _ in 0..20 {
                let generated = search(&format!("random('{pattern}')"), &json!({}))
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_default();
                assert!(anchored.is_match(&generated), "{pattern}: {generated:?}");
            }
        }
    }

    #[test]
    fn rejects_empty_and_invalid_patterns() {
        assert_eq!(
            search("random('')", &json!({})).map_err(|e| e.to_string()),
            Err("no pattern provided".to_owned())
        );
        assert!(search("random('(')", &json!({})).is_err());
    }
}
