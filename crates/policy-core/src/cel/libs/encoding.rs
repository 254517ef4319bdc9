//! Decoding and encoding: `json.unmarshal(string)`, `json.marshal(value)`,
//! `yaml.parse(string)`, `x509.decode(pem)`, and the digests `sha1`, `sha256`, `md5` (also
//! as `hash.sha1`, `hash.sha256`, `hash.md5`), each the lower-case hex of the string's bytes.
//!
//! Go decodes every JSON or YAML number as a double; integers stay integers here because this
//! interpreter, unlike cel-go, does not find `1.0 == 1`, which policies rely on.
use std::sync::Arc;

use kube_cel::cel::{Context, FunctionContext, ResolveResult, Value};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::cel::{from_json, to_json};
use crate::jmespath;

pub(super) fn register(context: &mut Context<'_>) {
    context.add_function("json.unmarshal", json_unmarshal);
    context.add_function("json.marshal", json_marshal);
    context.add_function("yaml.parse", yaml_parse);
    context.add_function("x509.decode", x509_decode);
    for prefix in ["", "hash."] {
        context.add_function(&format!("{prefix}sha1"), |text: Arc<String>| {
            hex_digest::<Sha1>(&text)
        });
        context.add_function(&format!("{prefix}sha256"), |text: Arc<String>| {
            hex_digest::<Sha256>(&text)
        });
        context.add_function(&format!("{prefix}md5"), |text: Arc<String>| {
            hex_digest::<Md5>(&text)
        });
    }
}

fn json_unmarshal(ftx: &FunctionContext, text: Arc<String>) -> ResolveResult {
    serde_json::from_str(&text)
        .map(|document| from_json(&document))
        .map_err(|error| ftx.error(error))
}

/// Compact JSON with sorted keys and Go's HTML-safe escapes, as `encoding/json` writes it.
fn json_marshal(ftx: &FunctionContext, value: Value) -> ResolveResult {
    let document = to_json(&value).map_err(|error| ftx.error(error))?;
    let text = serde_json::to_string(&document).map_err(|error| ftx.error(error))?;
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            c => escaped.push(c),
        }
    }
    Ok(escaped.into())
}

fn yaml_parse(ftx: &FunctionContext, text: Arc<String>) -> ResolveResult {
    serde_saphyr::from_str::<serde_json::Value>(&text)
        .map(|document| from_json(&document))
        .map_err(|error| ftx.error(error))
}

/// The fields of a certificate upstream's `x509.decode` shows (a subset of Go's
/// `x509.Certificate`; a certificate request shows all of Go's `x509.CertificateRequest`).
const CERTIFICATE_FIELDS: &[&str] = &[
    "Raw",
    "RawTBSCertificate",
    "RawSubjectPublicKeyInfo",
    "RawSubject",
    "RawIssuer",
    "Signature",
    "PublicKeyAlgorithm",
    "PublicKey",
    "SerialNumber",
    "Issuer",
    "NotBefore",
    "NotAfter",
    "KeyUsage",
    "Extensions",
    "ExtraExtensions",
    "ExtKeyUsage",
    "BasicConstraintsValid",
    "IsCA",
    "MaxPathLen",
    "MaxPathLenZero",
    "AuthorityKeyId",
    "OCSPServer",
    "IssuingCertificateURL",
    "DNSNames",
    "EmailAddresses",
    "IPAddresses",
    "PermittedDNSDomainsCritical",
    "PermittedDNSDomains",
    "ExcludedDNSDomains",
    "PermittedIPRanges",
    "ExcludedIPRanges",
    "PermittedEmailAddresses",
    "ExcludedEmailAddresses",
    "PermittedURIDomains",
    "ExcludedURIDomains",
    "CRLDistributionPoints",
    "PolicyIdentifiers",
];

/// The RSA certificate or certificate request of a PEM block, decoded by Kyverno's
/// `x509_decode` JMESPath function (the decoder upstream shares between the two languages).
fn x509_decode(ftx: &FunctionContext, pem: Arc<String>) -> ResolveResult {
    let pem = serde_json::Value::String(pem.as_ref().clone());
    let mut decoded = jmespath::search("x509_decode(@)", &pem).map_err(|error| ftx.error(error))?;
    // Only certificates have a validity period.
    if let serde_json::Value::Object(fields) = &mut decoded
        && fields.contains_key("NotBefore")
    {
        fields.retain(|name, _| CERTIFICATE_FIELDS.contains(&name.as_str()));
    }
    Ok(from_json(&decoded))
}

fn hex_digest<D: Digest>(text: &str) -> String {
    let digest = D::digest(text.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
    }
    hex
}
