//! Anchor keys in patterns: `(key)`, `<(key)`, `X(key)`, `+(key)`, `=(key)`, `^(key)`.

/// The kind of an anchor, given by the character before the opening parenthesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnchorKind {
    /// `(key)`: if the value does not match, the rest of the map is skipped.
    Condition,
    /// `<(key)`: if the value does not match, the whole rule is skipped.
    Global,
    /// `X(key)`: the key must be absent.
    Negation,
    /// `+(key)`: mutate only, adds the key when it is absent.
    AddIfNotPresent,
    /// `=(key)`: if the key is present, its value must match.
    Equality,
    /// `^(key)`: at least one element of the list must match.
    Existence,
}

impl AnchorKind {
    /// The modifier character written before `(`; empty for conditions.
    pub fn modifier(self) -> &'static str {
        match self {
            AnchorKind::Condition => "",
            AnchorKind::Global => "<",
            AnchorKind::Negation => "X",
            AnchorKind::AddIfNotPresent => "+",
            AnchorKind::Equality => "=",
            AnchorKind::Existence => "^",
        }
    }
}

/// A parsed anchor key, borrowing the key name from the pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor<'a> {
    /// The anchor kind.
    pub kind: AnchorKind,
    /// The key name inside the parentheses.
    pub key: &'a str,
}

impl Anchor<'_> {
    /// The anchor written back as a map key, e.g. `=(labels)`.
    pub fn to_key_string(&self) -> String {
        format!("{}({})", self.kind.modifier(), self.key)
    }
}

/// Parses `s` as an anchor key (surrounding whitespace ignored); `None` for a plain key.
///
/// Like Kyverno, the key inside the parentheses must not be empty and may itself contain
/// parentheses (`((a))` is a condition on the key `(a)`).
pub fn parse(s: &str) -> Option<Anchor<'_>> {
    let inner = s.trim().strip_suffix(')')?;
    let (kind, key) = if let Some(key) = inner.strip_prefix('(') {
        (AnchorKind::Condition, key)
    } else {
        let mut chars = inner.chars();
        let kind = match chars.next()? {
            '<' => AnchorKind::Global,
            'X' => AnchorKind::Negation,
            '+' => AnchorKind::AddIfNotPresent,
            '=' => AnchorKind::Equality,
            '^' => AnchorKind::Existence,
            _ => return None,
        };
        (kind, chars.as_str().strip_prefix('(')?)
    };
    (!key.is_empty()).then_some(Anchor { kind, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_upstream() {
        // (input, expected) from Kyverno's anchor tests.
        let cases = [
            ("(something)", Some((AnchorKind::Condition, "something"))),
            ("()", None),
            ("something", None),
            ("(something", None),
            ("something)", None),
            ("so)m(et(hin)g", None),
            ("", None),
            ("^(abc)", Some((AnchorKind::Existence, "abc"))),
            ("^(abc", None),
            ("^abc", None),
            ("^()", None),
            ("=(abc)", Some((AnchorKind::Equality, "abc"))),
            ("=(abc", None),
            ("=abc", None),
            ("+(abc)", Some((AnchorKind::AddIfNotPresent, "abc"))),
            ("+abc", None),
            ("X(abc)", Some((AnchorKind::Negation, "abc"))),
            ("Xabc", None),
            ("<(abc)", Some((AnchorKind::Global, "abc"))),
            ("<abc", None),
            (" (abc) ", Some((AnchorKind::Condition, "abc"))),
            ("((a))", Some((AnchorKind::Condition, "(a)"))),
            ("x(abc)", None),
        ];
        for (input, expected) in cases {
            let parsed = parse(input).map(|anchor| (anchor.kind, anchor.key));
            assert_eq!(parsed, expected, "{input:?}");
        }
    }

    #[test]
    fn writes_back_keys() {
        for key in ["(a)", "<(a)", "X(a)", "+(a)", "=(a)", "^(a)"] {
            assert_eq!(
                parse(key).map(|anchor| anchor.to_key_string()).as_deref(),
                Some(key)
            );
        }
    }
}
