//! Kyverno's wildcard matching: `*` matches any run of characters (including none), `?` matches
//! exactly one character, every other character matches itself. There is no escaping and no
//! character class; wildcards also match `/`.

/// Reports whether `text` matches the wildcard `pattern`.
///
/// Matching is done character by character (Unicode scalar values) without allocating, in
/// `O(len(pattern) * len(text))` worst-case time: only the last `*` seen is ever backtracked to,
/// which is enough because whatever an earlier `*` could absorb, the last one can absorb too.
pub fn matches(pattern: &str, text: &str) -> bool {
    if !has_wildcard(pattern) {
        return pattern == text;
    }
    let pattern = pattern.as_bytes();
    let text_bytes = text.as_bytes();
    let (mut pattern_at, mut text_at) = (0, 0);
    // Where matching resumes after the last `*`: (pattern offset after it, text offset it covers up to).
    let mut last_star: Option<(usize, usize)> = None;
    while text_at < text_bytes.len() {
        if pattern_at < pattern.len() {
            if pattern[pattern_at] == b'*' {
                pattern_at += 1;
                if pattern_at == pattern.len() {
                    return true;
                }
                last_star = Some((pattern_at, text_at));
                continue;
            }
            let text_char_len = char_len_at(text, text_at);
            if pattern[pattern_at] == b'?' {
                pattern_at += 1;
                text_at += text_char_len;
                continue;
            }
            let pattern_char_len = utf8_len(pattern[pattern_at]);
            if pattern_char_len == text_char_len
                && pattern.get(pattern_at..pattern_at + pattern_char_len)
                    == text_bytes.get(text_at..text_at + text_char_len)
            {
                pattern_at += pattern_char_len;
                text_at += text_char_len;
                continue;
            }
        }
        match last_star.as_mut() {
            None => return false,
            Some((star_pattern_at, star_text_at)) => {
                *star_text_at += char_len_at(text, *star_text_at);
                pattern_at = *star_pattern_at;
                text_at = *star_text_at;
            }
        }
    }
    pattern[pattern_at..].iter().all(|&byte| byte == b'*')
}

/// Reports whether `s` contains a wildcard character (`*` or `?`).
pub fn has_wildcard(s: &str) -> bool {
    s.bytes().any(|byte| byte == b'*' || byte == b'?')
}

/// Length in bytes of the UTF-8 character starting at `offset` of `s` (an offset on a char boundary).
fn char_len_at(s: &str, offset: usize) -> usize {
    utf8_len(s.as_bytes()[offset])
}

/// Length in bytes of a UTF-8 sequence given its first byte.
fn utf8_len(first_byte: u8) -> usize {
    match first_byte {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_match_cases() {
        // (pattern, text, expected) from Kyverno's pkg/utils/wildcard match tests.
        let cases = [
            ("*", "s3:GetObject", true),
            ("", "s3:GetObject", false),
            ("", "", true),
            ("s3:*", "s3:ListMultipartUploadParts", true),
            ("s3:ListBucketMultipartUploads", "s3:ListBucket", false),
            ("s3:ListBucket", "s3:ListBucket", true),
            ("my-bucket/oo*", "my-bucket/oo", true),
            ("my-bucket/In*", "my-bucket/India/Karnataka/", true),
            ("my-bucket/In*", "my-bucket/Karnataka/India/", false),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Ban",
                true,
            ),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Ban/Ban/Ban/Ban/Ban",
                true,
            ),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Area1/Area2/Area3/Ban",
                true,
            ),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Bangalore",
                false,
            ),
            (
                "my-bucket/In*/Ka*/Ban*",
                "my-bucket/India/Karnataka/Bangalore",
                true,
            ),
            ("my-bucket/*", "my-bucket/India", true),
            ("my-bucket/oo*", "my-bucket/odo", false),
            ("my-bucket?/abc*", "mybucket/abc", false),
            ("my-bucket?/abc*", "my-bucket1/abc", true),
            ("my-?-bucket/abc*", "my--bucket/abc", false),
            ("my-?-bucket/abc*", "my-1-bucket/abc", true),
            ("my??bucket/abc*", "mybucket/abc", false),
            ("my??bucket/abc*", "my4abucket/abc", true),
            ("my-bucket?abc*", "my-bucket/abc", true),
            ("my-bucket/abc?efg", "my-bucket/abc/efg", true),
            ("my-bucket/abc????", "my-bucket/abc", false),
            ("my-bucket/abc????", "my-bucket/abcde", false),
            ("my-bucket/abc????", "my-bucket/abcdefg", true),
            ("my-bucket/abc?", "my-bucket/abc", false),
            ("my-bucket/abc?", "my-bucket/abcd", true),
            ("my-bucket/abc?", "my-bucket/abcde", false),
            ("my-bucket/mnop*?", "my-bucket/mnop", false),
            ("my-bucket/mnop*?", "my-bucket/mnopqrst/mnopqr", true),
            ("my-bucket/mnop*?", "my-bucket/mnopq", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopqand", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopand", false),
            ("my-bucket/mnop*?", "my-bucket/mn", false),
            ("my-bucket/mnop*??", "my-bucket/mnopqrst", true),
            ("my-bucket/mnop*qrst", "my-bucket/mnopabcdegqrst", true),
            ("my-bucket/mnop*?and?", "my-bucket/mnopqanda", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopqanda", false),
            ("my-?-bucket/abc*", "my-bucket/mnopqanda", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(matches(pattern, text), expected, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn question_mark_matches_one_multibyte_character() {
        assert!(matches("a?c", "aéc"));
        assert!(!matches("a?c", "aééc"));
        assert!(matches("é*ü", "é-x-ü"));
        assert!(!matches("é*ü", "é-x-u"));
    }

    #[test]
    fn pathological_pattern_terminates() {
        let text = "a".repeat(200);
        assert!(!matches("a*a*a*a*a*a*a*b", &text));
    }

    #[test]
    fn detects_wildcards() {
        assert!(has_wildcard("nginx:*"));
        assert!(has_wildcard("a?c"));
        assert!(!has_wildcard("plain"));
    }
}
