//! Kyverno's encoding functions: base64, hashes, and JSON/YAML decoding.

use super::{ArgType, FunctionSpec, required, string};
use crate::jmespath::error::JmesPathError;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use md5::Md5;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

const STRING: &[ArgType] = &[ArgType::String];
const ANY: &[ArgType] = &[ArgType::Any];

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "base64_decode",
        args: &[required(STRING)],
        returns: STRING,
        note: "decodes a base 64 string",
        handler: |args, _| decode_base64(string("base64_decode", args, 0)?).map(Value::String),
    },
    FunctionSpec {
        name: "base64_encode",
        args: &[required(STRING)],
        returns: STRING,
        note: "encodes a regular, plaintext and unencoded string to base64",
        handler: |args, _| {
            let input = string("base64_encode", args, 0)?;
            Ok(Value::String(GO_STANDARD.encode(input)))
        },
    },
    FunctionSpec {
        name: "sha256",
        args: &[required(STRING)],
        returns: STRING,
        note: "generate unique resources name if length exceeds the limit",
        handler: |args, _| {
            Ok(Value::String(hex_digest::<Sha256>(string(
                "sha256", args, 0,
            )?)))
        },
    },
    FunctionSpec {
        name: "sha1",
        args: &[required(STRING)],
        returns: STRING,
        note: "generate a SHA-1 hash",
        handler: |args, _| Ok(Value::String(hex_digest::<Sha1>(string("sha1", args, 0)?))),
    },
    FunctionSpec {
        name: "md5",
        args: &[required(STRING)],
        returns: STRING,
        note: "generates an MD5 hash",
        handler: |args, _| Ok(Value::String(hex_digest::<Md5>(string("md5", args, 0)?))),
    },
    FunctionSpec {
        name: "parse_json",
        args: &[required(STRING)],
        returns: ANY,
        note: "decodes a valid JSON encoded string to the appropriate type. Opposite of `to_string` function",
        handler: |args, _| {
            serde_json::from_str(string("parse_json", args, 0)?)
                .map_err(|error| JmesPathError::Function(error.to_string()))
        },
    },
    FunctionSpec {
        name: "parse_yaml",
        args: &[required(STRING)],
        returns: ANY,
        note: "decodes a valid YAML encoded string to the appropriate type provided it can be represented as JSON",
        handler: |args, _| {
            let input = string("parse_yaml", args, 0)?;
            if input.trim().is_empty() {
                return Ok(Value::Null);
            }
            serde_saphyr::from_str(input).map_err(|error| {
                JmesPathError::Function(format!("error converting YAML to JSON: {error}"))
            })
        },
    },
];

/// Go's `base64.StdEncoding`: padded, lenient about unused trailing bits.
const GO_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Decodes standard base64 as Go does (line breaks are skipped); bytes that are not UTF-8 are
/// replaced, since the result is a JSON string.
pub(super) fn decode_base64(input: &str) -> Result<String, JmesPathError> {
    let compact: String = input
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    let bytes = GO_STANDARD.decode(compact.as_bytes()).map_err(|error| {
        let position = match error {
            base64::DecodeError::InvalidByte(offset, _)
            | base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
            base64::DecodeError::InvalidLength(length) => length,
            base64::DecodeError::InvalidPadding => compact.len(),
        };
        JmesPathError::Function(format!("illegal base64 data at input byte {position}"))
    })?;
    Ok(String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned()))
}

fn hex_digest<D: Digest>(input: &str) -> String {
    let digest = D::digest(input.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{eval, fails};
    use serde_json::json;

    #[test]
    fn base64_round_trips() {
        assert_eq!(
            eval("base64_decode('SGVsbG8sIHdvcmxkIQ==')"),
            json!("Hello, world!")
        );
        assert_eq!(
            eval("base64_encode('Hello, world!')"),
            json!("SGVsbG8sIHdvcmxkIQ==")
        );
        assert_eq!(eval("base64_decode('SGVs\nbG8=')"), json!("Hello"));
        assert!(fails("base64_decode('SGVsbG8')").starts_with("illegal base64 data"));
        assert!(fails("base64_decode('S?==')").starts_with("illegal base64 data"));
        assert!(fails("base64_encode(`1`)").contains("invalid type"));
    }

    #[test]
    fn hashes_are_hex_digests() {
        assert_eq!(
            eval("sha256('hello')"),
            json!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        assert_eq!(
            eval("sha1('hello')"),
            json!("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
        );
        assert_eq!(
            eval("md5('hello')"),
            json!("5d41402abc4b2a76b9719d911017c592")
        );
        for function in ["sha256", "sha1", "md5"] {
            assert!(fails(&format!("{function}(`1`)")).contains("invalid type"));
        }
    }

    #[test]
    fn parse_json_decodes_any_value() {
        for text in [
            r#"{"a":"b"}"#,
            "true",
            r#"[1,2,3,{"a":"b"}]"#,
            "null",
            "[]",
            "{}",
            "0",
            "1.2",
        ] {
            assert_eq!(
                eval(&format!("to_string(parse_json('{text}'))")),
                json!(text)
            );
        }
        assert_eq!(
            eval(r#"parse_json('[1, 2, {"a": {"b": {"c": [1, 2]}}}]')[2].a.b.c[1]"#),
            json!(2)
        );
        assert!(!fails("parse_json('{')").is_empty());
    }

    #[test]
    fn parse_yaml_decodes_documents() {
        assert_eq!(eval("parse_yaml('a: b')"), json!({"a": "b"}));
        assert_eq!(
            eval("parse_yaml('\n- 1\n- 2\n- a: b')"),
            json!([1, 2, {"a": "b"}])
        );
        assert_eq!(
            eval("parse_yaml('bar: >\n  this is not\n  one line\n')"),
            json!({"bar": "this is not one line\n"})
        );
        assert_eq!(
            eval("parse_yaml('---\nfoo: ~\nbar: null\n')"),
            json!({"foo": null, "bar": null})
        );
        assert!(fails("parse_yaml('a: [b')").starts_with("error converting YAML to JSON"));
    }
}
