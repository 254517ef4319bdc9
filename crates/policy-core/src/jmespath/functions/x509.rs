//! `x509_decode`: a PEM certificate or certificate request as the object upstream produces by
//! JSON-encoding Go's `x509.Certificate` / `x509.CertificateRequest` (field names, enum numbers
//! and base64 byte fields as Go writes them; the RSA public key as `{"N": "<decimal>", "E": n}`).

use super::gotime::format_rfc3339;
use super::{ArgType, FunctionSpec, required, string};
use crate::jmespath::error::JmesPathError;
use crate::jmespath::value::number;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::DateTime;
use serde_json::{Map, Value, json};
use std::io::Cursor;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};
use x509_parser::num_bigint::BigUint;
use x509_parser::oid_registry::Oid;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::time::ASN1Time;
use x509_parser::x509::{SubjectPublicKeyInfo, X509Name};

pub(super) const FUNCTIONS: &[FunctionSpec] = &[FunctionSpec {
    name: "x509_decode",
    args: &[required(&[ArgType::String])],
    returns: &[ArgType::Object],
    note: "decodes an x.509 certificate to an object. you may also use this in conjunction with `base64_decode` jmespath function to decode a base64-encoded certificate",
    handler: |args, _| decode(string("x509_decode", args, 0)?).map_err(JmesPathError::Function),
}];

fn decode(input: &str) -> Result<Value, String> {
    let (pem, _) = Pem::read(Cursor::new(input.as_bytes()))
        .map_err(|_| "failed to decode PEM block".to_owned())?;
    match pem.label.as_str() {
        "CERTIFICATE" => certificate(&pem.contents),
        "CERTIFICATE REQUEST" => certificate_request(&pem.contents),
        _ => Err("PEM block neither contains a CERTIFICATE or CERTIFICATE REQUEST".to_owned()),
    }
}

fn certificate(der: &[u8]) -> Result<Value, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|error| format!("x509: malformed certificate: {error}"))?;
    let tbs = &cert.tbs_certificate;
    let public_key = rsa_public_key(&tbs.subject_pki)?;
    let mut out = Map::new();
    out.insert("Raw".into(), bytes(der));
    out.insert("RawTBSCertificate".into(), bytes(tbs.as_ref()));
    out.insert("RawSubjectPublicKeyInfo".into(), bytes(tbs.subject_pki.raw));
    out.insert("RawSubject".into(), bytes(tbs.subject.as_raw()));
    out.insert("RawIssuer".into(), bytes(tbs.issuer.as_raw()));
    out.insert("Signature".into(), bytes(&cert.signature_value.data));
    out.insert(
        "SignatureAlgorithm".into(),
        json!(signature_algorithm(&cert.signature_algorithm.algorithm)),
    );
    out.insert("PublicKeyAlgorithm".into(), json!(RSA_ALGORITHM));
    out.insert("PublicKey".into(), public_key);
    out.insert("Version".into(), json!(tbs.version.0 + 1));
    out.insert("SerialNumber".into(), big_number(&tbs.serial));
    out.insert("Issuer".into(), name(&tbs.issuer));
    out.insert("Subject".into(), name(&tbs.subject));
    out.insert("NotBefore".into(), time(&tbs.validity.not_before));
    out.insert("NotAfter".into(), time(&tbs.validity.not_after));
    let mut fields = ExtensionFields::default();
    for extension in cert.extensions() {
        fields.read(extension.parsed_extension(), extension.critical);
    }
    out.insert("KeyUsage".into(), json!(fields.key_usage));
    out.insert("Extensions".into(), extensions(cert.extensions()));
    for field in ["ExtraExtensions", "UnhandledCriticalExtensions"] {
        out.insert(field.into(), Value::Null);
    }
    fields.write(&mut out);
    Ok(Value::Object(out))
}

fn certificate_request(der: &[u8]) -> Result<Value, String> {
    let (_, request) = X509CertificationRequest::from_der(der)
        .map_err(|error| format!("x509: malformed certificate request: {error}"))?;
    let info = &request.certification_request_info;
    let public_key = rsa_public_key(&info.subject_pki)?;
    let requested: Vec<&X509Extension> = info
        .iter_attributes()
        .filter_map(|attribute| match attribute.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(request) => Some(&request.extensions),
            _ => None,
        })
        .flatten()
        .collect();
    let mut fields = ExtensionFields::default();
    for extension in &requested {
        fields.read(extension.parsed_extension(), extension.critical);
    }
    let mut out = Map::new();
    out.insert("Raw".into(), bytes(der));
    out.insert("RawTBSCertificateRequest".into(), bytes(info.raw));
    out.insert(
        "RawSubjectPublicKeyInfo".into(),
        bytes(info.subject_pki.raw),
    );
    out.insert("RawSubject".into(), bytes(info.subject.as_raw()));
    out.insert("Version".into(), json!(info.version.0));
    out.insert("Signature".into(), bytes(&request.signature_value.data));
    out.insert(
        "SignatureAlgorithm".into(),
        json!(signature_algorithm(&request.signature_algorithm.algorithm)),
    );
    out.insert("PublicKeyAlgorithm".into(), json!(RSA_ALGORITHM));
    out.insert("PublicKey".into(), public_key);
    out.insert("Subject".into(), name(&info.subject));
    out.insert("Attributes".into(), Value::Null);
    out.insert(
        "Extensions".into(),
        if requested.is_empty() {
            Value::Null
        } else {
            Value::Array(requested.iter().map(|e| extension(e)).collect())
        },
    );
    out.insert("ExtraExtensions".into(), Value::Null);
    out.insert("DNSNames".into(), strings(fields.dns_names));
    out.insert("EmailAddresses".into(), strings(fields.email_addresses));
    out.insert("IPAddresses".into(), strings(fields.ip_addresses));
    out.insert("URIs".into(), uris(&fields.uris));
    Ok(Value::Object(out))
}

/// Go's `x509.RSA` public key algorithm number.
const RSA_ALGORITHM: u8 = 1;

/// The RSA key as `{"N": decimal modulus, "E": exponent}`; upstream rejects other key types.
fn rsa_public_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<Value, String> {
    if spki.algorithm.algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
        return Err("certificate should use rsa algorithm".to_owned());
    }
    let Ok(PublicKey::RSA(key)) = spki.parsed() else {
        return Err("failed to parse subject public key info".to_owned());
    };
    let exponent = key.exponent.iter().fold(0u64, |acc, byte| {
        acc.saturating_mul(256).saturating_add(u64::from(*byte))
    });
    Ok(json!({
        "N": BigUint::from_bytes_be(key.modulus).to_string(),
        "E": exponent,
    }))
}

/// Go's `x509.SignatureAlgorithm` number for a signature OID (0 when unknown).
fn signature_algorithm(oid: &Oid<'_>) -> u8 {
    match oid.to_id_string().as_str() {
        "1.2.840.113549.1.1.2" => 1,
        "1.2.840.113549.1.1.4" => 2,
        "1.2.840.113549.1.1.5" => 3,
        "1.2.840.113549.1.1.11" => 4,
        "1.2.840.113549.1.1.12" => 5,
        "1.2.840.113549.1.1.13" => 6,
        "1.2.840.10040.4.3" => 7,
        "2.16.840.1.101.3.4.3.2" => 8,
        "1.2.840.10045.4.1" => 9,
        "1.2.840.10045.4.3.2" => 10,
        "1.2.840.10045.4.3.3" => 11,
        "1.2.840.10045.4.3.4" => 12,
        "1.2.840.113549.1.1.10" => 13,
        "1.3.101.112" => 16,
        _ => 0,
    }
}

fn bytes(data: &[u8]) -> Value {
    Value::String(STANDARD.encode(data))
}

/// A big integer as the float64 Go's JSON round trip turns it into.
fn big_number(value: &BigUint) -> Value {
    number(value.to_string().parse::<f64>().unwrap_or(f64::INFINITY))
}

fn oid_arcs(oid: &Oid<'_>) -> Value {
    oid.iter()
        .map(|arcs| Value::Array(arcs.map(Value::from).collect()))
        .unwrap_or(Value::Null)
}

fn time(time: &ASN1Time) -> Value {
    DateTime::from_timestamp(time.timestamp(), 0).map_or(Value::Null, |t| {
        Value::String(format_rfc3339(&t.fixed_offset()))
    })
}

/// A list of strings, or `null` when empty (Go's nil slice).
fn strings(items: Vec<String>) -> Value {
    if items.is_empty() {
        Value::Null
    } else {
        Value::Array(items.into_iter().map(Value::String).collect())
    }
}

/// Go's `pkix.Name`.
fn name(name: &X509Name<'_>) -> Value {
    let mut fields: Map<String, Value> = [
        "Country",
        "Organization",
        "OrganizationalUnit",
        "Locality",
        "Province",
        "StreetAddress",
        "PostalCode",
    ]
    .into_iter()
    .map(|field| (field.to_owned(), Value::Null))
    .collect();
    let (mut serial_number, mut common_name) = (String::new(), String::new());
    let mut names = Vec::new();
    for attribute in name.iter().flat_map(|rdn| rdn.iter()) {
        let text = attribute.as_str().ok();
        names.push(json!({
            "Type": oid_arcs(attribute.attr_type()),
            "Value": text,
        }));
        let Some(text) = text else { continue };
        let field = match attribute.attr_type().to_id_string().as_str() {
            "2.5.4.3" => {
                common_name = text.to_owned();
                continue;
            }
            "2.5.4.5" => {
                serial_number = text.to_owned();
                continue;
            }
            "2.5.4.6" => "Country",
            "2.5.4.7" => "Locality",
            "2.5.4.8" => "Province",
            "2.5.4.9" => "StreetAddress",
            "2.5.4.10" => "Organization",
            "2.5.4.11" => "OrganizationalUnit",
            "2.5.4.17" => "PostalCode",
            _ => continue,
        };
        let entry = fields.entry(field).or_insert(Value::Null);
        match entry {
            Value::Array(values) => values.push(Value::String(text.to_owned())),
            other => *other = json!([text]),
        }
    }
    fields.insert("SerialNumber".into(), Value::String(serial_number));
    fields.insert("CommonName".into(), Value::String(common_name));
    fields.insert("Names".into(), Value::Array(names));
    fields.insert("ExtraNames".into(), Value::Null);
    Value::Object(fields)
}

fn extension(extension: &X509Extension<'_>) -> Value {
    json!({
        "Id": oid_arcs(&extension.oid),
        "Critical": extension.critical,
        "Value": bytes(extension.value),
    })
}

fn extensions(list: &[X509Extension<'_>]) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        Value::Array(list.iter().map(extension).collect())
    }
}

/// Go's `*url.URL` as JSON.
fn uris(items: &[String]) -> Value {
    if items.is_empty() {
        return Value::Null;
    }
    Value::Array(
        items
            .iter()
            .map(|uri| {
                let parsed = url::Url::parse(uri).ok();
                let host = parsed.as_ref().map_or(String::new(), |u| {
                    let host = u.host_str().unwrap_or_default();
                    u.port()
                        .map_or(host.to_owned(), |port| format!("{host}:{port}"))
                });
                json!({
                    "Scheme": parsed.as_ref().map_or("", |u| u.scheme()),
                    "Opaque": "",
                    "User": null,
                    "Host": host,
                    "Path": parsed.as_ref().map_or(uri.as_str(), |u| u.path()),
                    "RawPath": "",
                    "OmitHost": false,
                    "ForceQuery": false,
                    "RawQuery": parsed.as_ref().and_then(|u| u.query()).unwrap_or_default(),
                    "Fragment": parsed.as_ref().and_then(|u| u.fragment()).unwrap_or_default(),
                    "RawFragment": "",
                })
            })
            .collect(),
    )
}

/// Go's `x509.ExtKeyUsage` numbers of the extended key usages x509-parser does not name.
const OTHER_EXT_KEY_USAGES: [(&str, u8); 7] = [
    ("1.3.6.1.5.5.7.3.5", 5),
    ("1.3.6.1.5.5.7.3.6", 6),
    ("1.3.6.1.5.5.7.3.7", 7),
    ("1.3.6.1.4.1.311.10.3.3", 10),
    ("2.16.840.1.113730.4.1", 11),
    ("1.3.6.1.4.1.311.2.1.22", 12),
    ("1.3.6.1.4.1.311.61.1.1", 13),
];

/// The certificate fields Go fills from extensions.
struct ExtensionFields {
    key_usage: u16,
    ext_key_usage: Vec<u8>,
    unknown_ext_key_usage: Vec<Value>,
    basic_constraints_valid: bool,
    is_ca: bool,
    max_path_len: i64,
    subject_key_id: Value,
    authority_key_id: Value,
    ocsp_server: Vec<String>,
    issuing_certificate_url: Vec<String>,
    dns_names: Vec<String>,
    email_addresses: Vec<String>,
    ip_addresses: Vec<String>,
    uris: Vec<String>,
    name_constraints_critical: bool,
    permitted: Subtrees,
    excluded: Subtrees,
    crl_distribution_points: Vec<String>,
    policies: Vec<Value>,
    policy_identifiers: Vec<Value>,
    inhibit_any_policy: i64,
    inhibit_policy_mapping: i64,
    require_explicit_policy: i64,
    policy_mappings: Vec<Value>,
}

impl Default for ExtensionFields {
    fn default() -> Self {
        ExtensionFields {
            key_usage: 0,
            ext_key_usage: Vec::new(),
            unknown_ext_key_usage: Vec::new(),
            basic_constraints_valid: false,
            is_ca: false,
            max_path_len: 0,
            subject_key_id: Value::Null,
            authority_key_id: Value::Null,
            ocsp_server: Vec::new(),
            issuing_certificate_url: Vec::new(),
            dns_names: Vec::new(),
            email_addresses: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            name_constraints_critical: false,
            permitted: Subtrees::default(),
            excluded: Subtrees::default(),
            crl_distribution_points: Vec::new(),
            policies: Vec::new(),
            policy_identifiers: Vec::new(),
            // Go reports these policy constraints as -1 when absent.
            inhibit_any_policy: -1,
            inhibit_policy_mapping: -1,
            require_explicit_policy: -1,
            policy_mappings: Vec::new(),
        }
    }
}

/// Name constraints of one kind (permitted or excluded).
#[derive(Default)]
struct Subtrees {
    dns: Vec<String>,
    ip_ranges: Vec<Value>,
    emails: Vec<String>,
    uri_domains: Vec<String>,
}

impl Subtrees {
    fn add(&mut self, name: &GeneralName<'_>) {
        match name {
            GeneralName::DNSName(dns) => self.dns.push((*dns).to_owned()),
            GeneralName::RFC822Name(email) => self.emails.push((*email).to_owned()),
            GeneralName::URI(domain) => self.uri_domains.push((*domain).to_owned()),
            GeneralName::IPAddress(range) => {
                let half = range.len() / 2;
                self.ip_ranges.push(json!({
                    "IP": ip_string(&range[..half]),
                    "Mask": bytes(&range[half..]),
                }));
            }
            _ => {}
        }
    }
}

impl ExtensionFields {
    fn read(&mut self, extension: &ParsedExtension<'_>, critical: bool) {
        match extension {
            ParsedExtension::KeyUsage(usage) => self.key_usage = usage.flags,
            ParsedExtension::ExtendedKeyUsage(usage) => {
                let named = [
                    (usage.any, 0),
                    (usage.server_auth, 1),
                    (usage.client_auth, 2),
                    (usage.code_signing, 3),
                    (usage.email_protection, 4),
                    (usage.time_stamping, 8),
                    (usage.ocsp_signing, 9),
                ];
                self.ext_key_usage
                    .extend(named.into_iter().filter(|(set, _)| *set).map(|(_, n)| n));
                for oid in &usage.other {
                    let id = oid.to_id_string();
                    match OTHER_EXT_KEY_USAGES.iter().find(|(known, _)| *known == id) {
                        Some((_, n)) => self.ext_key_usage.push(*n),
                        None => self.unknown_ext_key_usage.push(oid_arcs(oid)),
                    }
                }
            }
            ParsedExtension::BasicConstraints(constraints) => {
                self.basic_constraints_valid = true;
                self.is_ca = constraints.ca;
                self.max_path_len = constraints.path_len_constraint.map_or(-1, i64::from);
            }
            ParsedExtension::SubjectKeyIdentifier(id) => self.subject_key_id = bytes(id.0),
            ParsedExtension::AuthorityKeyIdentifier(id) => {
                if let Some(key) = &id.key_identifier {
                    self.authority_key_id = bytes(key.0);
                }
            }
            ParsedExtension::AuthorityInfoAccess(access) => {
                for description in access.iter() {
                    let GeneralName::URI(uri) = description.access_location else {
                        continue;
                    };
                    match description.access_method.to_id_string().as_str() {
                        "1.3.6.1.5.5.7.48.1" => self.ocsp_server.push(uri.to_owned()),
                        "1.3.6.1.5.5.7.48.2" => self.issuing_certificate_url.push(uri.to_owned()),
                        _ => {}
                    }
                }
            }
            ParsedExtension::SubjectAlternativeName(names) => {
                for general_name in &names.general_names {
                    match general_name {
                        GeneralName::DNSName(dns) => self.dns_names.push((*dns).to_owned()),
                        GeneralName::RFC822Name(email) => {
                            self.email_addresses.push((*email).to_owned());
                        }
                        GeneralName::IPAddress(ip) => self.ip_addresses.push(ip_string(ip)),
                        GeneralName::URI(uri) => self.uris.push((*uri).to_owned()),
                        _ => {}
                    }
                }
            }
            ParsedExtension::NameConstraints(constraints) => {
                self.name_constraints_critical = critical;
                for subtree in constraints.permitted_subtrees.iter().flatten() {
                    self.permitted.add(&subtree.base);
                }
                for subtree in constraints.excluded_subtrees.iter().flatten() {
                    self.excluded.add(&subtree.base);
                }
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                for point in points.iter() {
                    if let Some(x509_parser::extensions::DistributionPointName::FullName(names)) =
                        &point.distribution_point
                    {
                        for general_name in names {
                            if let GeneralName::URI(uri) = general_name {
                                self.crl_distribution_points.push((*uri).to_owned());
                            }
                        }
                    }
                }
            }
            ParsedExtension::CertificatePolicies(policies) => {
                for policy in policies {
                    self.policy_identifiers.push(oid_arcs(&policy.policy_id));
                    self.policies
                        .push(Value::String(policy.policy_id.to_id_string()));
                }
            }
            ParsedExtension::InhibitAnyPolicy(inhibit) => {
                self.inhibit_any_policy = i64::from(inhibit.skip_certs);
            }
            ParsedExtension::PolicyConstraints(constraints) => {
                if let Some(n) = constraints.inhibit_policy_mapping {
                    self.inhibit_policy_mapping = i64::from(n);
                }
                if let Some(n) = constraints.require_explicit_policy {
                    self.require_explicit_policy = i64::from(n);
                }
            }
            ParsedExtension::PolicyMappings(mappings) => {
                for mapping in &mappings.mappings {
                    self.policy_mappings.push(json!({
                        "IssuerDomainPolicy": mapping.issuer_domain_policy.to_id_string(),
                        "SubjectDomainPolicy": mapping.subject_domain_policy.to_id_string(),
                    }));
                }
            }
            _ => {}
        }
    }

    fn write(self, out: &mut Map<String, Value>) {
        let list = |items: Vec<Value>| {
            if items.is_empty() {
                Value::Null
            } else {
                Value::Array(items)
            }
        };
        out.insert(
            "ExtKeyUsage".into(),
            list(self.ext_key_usage.into_iter().map(Value::from).collect()),
        );
        out.insert(
            "UnknownExtKeyUsage".into(),
            list(self.unknown_ext_key_usage),
        );
        out.insert(
            "BasicConstraintsValid".into(),
            json!(self.basic_constraints_valid),
        );
        out.insert("IsCA".into(), json!(self.is_ca));
        out.insert("MaxPathLen".into(), json!(self.max_path_len));
        out.insert(
            "MaxPathLenZero".into(),
            json!(self.basic_constraints_valid && self.max_path_len == 0),
        );
        out.insert("SubjectKeyId".into(), self.subject_key_id);
        out.insert("AuthorityKeyId".into(), self.authority_key_id);
        out.insert("OCSPServer".into(), strings(self.ocsp_server));
        out.insert(
            "IssuingCertificateURL".into(),
            strings(self.issuing_certificate_url),
        );
        out.insert("DNSNames".into(), strings(self.dns_names));
        out.insert("EmailAddresses".into(), strings(self.email_addresses));
        out.insert("IPAddresses".into(), strings(self.ip_addresses));
        out.insert("URIs".into(), uris(&self.uris));
        out.insert(
            "PermittedDNSDomainsCritical".into(),
            json!(self.name_constraints_critical),
        );
        out.insert("PermittedDNSDomains".into(), strings(self.permitted.dns));
        out.insert("ExcludedDNSDomains".into(), strings(self.excluded.dns));
        out.insert("PermittedIPRanges".into(), list(self.permitted.ip_ranges));
        out.insert("ExcludedIPRanges".into(), list(self.excluded.ip_ranges));
        out.insert(
            "PermittedEmailAddresses".into(),
            strings(self.permitted.emails),
        );
        out.insert(
            "ExcludedEmailAddresses".into(),
            strings(self.excluded.emails),
        );
        out.insert(
            "PermittedURIDomains".into(),
            strings(self.permitted.uri_domains),
        );
        out.insert(
            "ExcludedURIDomains".into(),
            strings(self.excluded.uri_domains),
        );
        out.insert(
            "CRLDistributionPoints".into(),
            strings(self.crl_distribution_points),
        );
        out.insert("PolicyIdentifiers".into(), list(self.policy_identifiers));
        out.insert("Policies".into(), list(self.policies));
        for (field, value) in [
            ("InhibitAnyPolicy", self.inhibit_any_policy),
            ("InhibitPolicyMapping", self.inhibit_policy_mapping),
            ("RequireExplicitPolicy", self.require_explicit_policy),
        ] {
            out.insert(field.into(), json!(value));
            out.insert(format!("{field}Zero"), json!(value == 0));
        }
        out.insert("PolicyMappings".into(), list(self.policy_mappings));
    }
}

/// An IP address from its 4 or 16 encoded bytes, as Go's `net.IP` prints it.
fn ip_string(encoded: &[u8]) -> String {
    match encoded.len() {
        4 => std::net::Ipv4Addr::new(encoded[0], encoded[1], encoded[2], encoded[3]).to_string(),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(encoded);
            let v6 = std::net::Ipv6Addr::from(octets);
            v6.to_ipv4_mapped()
                .map_or_else(|| v6.to_string(), |v4| v4.to_string())
        }
        _ => STANDARD.encode(encoded),
    }
}

#[cfg(test)]
mod tests {
    use crate::jmespath::search;
    use serde_json::{Value, json};

    /// A self-signed RSA CA certificate for `*.kyverno.svc` (from upstream's tests).
    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIC7TCCAdWgAwIBAgIBADANBgkqhkiG9w0BAQsFADAYMRYwFAYDVQQDDA0qLmt5
dmVybm8uc3ZjMB4XDTIyMDExMTEzMjY0M1oXDTIzMDExMTE0MjY0M1owGDEWMBQG
A1UEAwwNKi5reXZlcm5vLnN2YzCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoC
ggEBAMsAz85+yino+MmdKsVtHwNi3oAVjumzXHiLfUJK7xi5KU8B7goPHF/VCe/V
7Y2c4afyfgY2ePw4LxSDkCYNgYwqjSwGIbcsqv5ZRazBdDxR09ri6PknNyBVGLi5
RlPXIrGQ3psNuf55qwxJxLO31qCZuvktKY5YvuIR4JPmBhuSFXOnn0ZiQw8uxMcQ
0QA2lz+PxWCVNk9q+31H5DH1oYZDLfU3mijIOA+AJGZbBb+ZwBmpVL0+2TXLxE74
WowdKEV+WTsKojNTd0VwcuRKRKR/6ynXAAis21y1X7Ui9FJE6mDIylUD40WXOKGJ
1lYY41kRnYhVhvXYN9JtNYdY3HsCAwEAAaNCMEAwDgYDVR0PAQH/BAQDAgKkMA8G
A1UdEwEB/wQFMAMBAf8wHQYDVR0OBBYEFOnlASVD9fu3TAjptlW/gAXA4ql+MA0G
CSqGSIb3DQEBCwUAA4IBAQCIpyRiChxp97crKfQ24Jt7z8P+AGpLf3sX4eL87ESa
7QRoVJtXLmaut1pUEoYLQruKmh/0YFtZG9WxVgY6iuKbWnu7bOeMB/Ir+V/yrX3R
+XvZOsuXiJnEbJiBW6lJzLldoW4f/71H+j1WD4tHpqmdMxq/sLqXfPIuc0/m0yFC
n+ADBWGGB8Nn66vxtv+cT6p+RIVotXPQWbMilWp6pd5wSuB68FqrDwtYLNJtPwFs
9MPVkuaJdYZ0eWd/rMcKD94Hgf89gvA0+qzMVFf+3BemXskjQRYy6CKsqoyC6jX4
nhYjumAP/7psbzITsnpHtfCEEU+2JZwgM406aiMcsgLb
-----END CERTIFICATE-----";

    /// A certificate request for `example.digicert.com` (from upstream's tests).
    const REQUEST: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIICvDCCAaQCAQAwdzELMAkGA1UEBhMCVVMxDTALBgNVBAgMBFV0YWgxDzANBgNV
BAcMBkxpbmRvbjEWMBQGA1UECgwNRGlnaUNlcnQgSW5jLjERMA8GA1UECwwIRGln
aUNlcnQxHTAbBgNVBAMMFGV4YW1wbGUuZGlnaWNlcnQuY29tMIIBIjANBgkqhkiG
9w0BAQEFAAOCAQ8AMIIBCgKCAQEA8+To7d+2kPWeBv/orU3LVbJwDrSQbeKamCmo
wp5bqDxIwV20zqRb7APUOKYoVEFFOEQs6T6gImnIolhbiH6m4zgZ/CPvWBOkZc+c
1Po2EmvBz+AD5sBdT5kzGQA6NbWyZGldxRthNLOs1efOhdnWFuhI162qmcflgpiI
WDuwq4C9f+YkeJhNn9dF5+owm8cOQmDrV8NNdiTqin8q3qYAHHJRW28glJUCZkTZ
wIaSR6crBQ8TbYNE0dc+Caa3DOIkz1EOsHWzTx+n0zKfqcbgXi4DJx+C1bjptYPR
BPZL8DAeWuA8ebudVT44yEp82G96/Ggcf7F33xMxe0yc+Xa6owIDAQABoAAwDQYJ
KoZIhvcNAQEFBQADggEBAB0kcrFccSmFDmxox0Ne01UIqSsDqHgL+XmHTXJwre6D
hJSZwbvEtOK0G3+dr4Fs11WuUNt5qcLsx5a8uk4G6AKHMzuhLsJ7XZjgmQXGECpY
Q4mC3yT3ZoCGpIXbw+iP3lmEEXgaQL0Tx5LFl/okKbKYwIqNiyKWOMj7ZR/wxWg/
ZDGRs55xuoeLDJ/ZRFf9bI+IaCUd1YrfYcHIl3G87Av+r49YVwqRDT0VDV7uLgqn
29XI1PpVUNCPQGn9p/eX6Qo7vpDaPybRtA2R7XLKjQaF9oXWeCUqy1hvJac9QFO2
97Ob1alpHPoZ7mWiEuJwjBPii6a9M9G30nUo39lBi1w=
-----END CERTIFICATE REQUEST-----";

    fn decode(input: &str) -> Result<Value, String> {
        search("x509_decode(pem)", &json!({"pem": input})).map_err(|e| e.to_string())
    }

    #[test]
    fn decodes_certificates_like_go() {
        let decoded = decode(CERTIFICATE).unwrap_or_default();
        assert_eq!(decoded["PublicKey"]["E"], json!(65537));
        assert!(
            decoded["PublicKey"]["N"]
                .as_str()
                .is_some_and(|n| n.starts_with("2562677619429980910394392529302247877955011"))
        );
        assert_eq!(decoded["Subject"]["CommonName"], json!("*.kyverno.svc"));
        assert_eq!(
            decoded["Issuer"]["Names"],
            json!([{"Type": [2, 5, 4, 3], "Value": "*.kyverno.svc"}])
        );
        assert_eq!(decoded["Subject"]["Country"], json!(null));
        assert_eq!(decoded["NotBefore"], json!("2022-01-11T13:26:43Z"));
        assert_eq!(decoded["NotAfter"], json!("2023-01-11T14:26:43Z"));
        assert_eq!(decoded["Version"], json!(3));
        assert_eq!(decoded["SerialNumber"], json!(0));
        assert_eq!(decoded["SignatureAlgorithm"], json!(4));
        assert_eq!(decoded["PublicKeyAlgorithm"], json!(1));
        assert_eq!(decoded["KeyUsage"], json!(37));
        assert_eq!(decoded["IsCA"], json!(true));
        assert_eq!(decoded["MaxPathLen"], json!(-1));
        assert_eq!(
            decoded["SubjectKeyId"],
            json!("6eUBJUP1+7dMCOm2Vb+ABcDiqX4=")
        );
        assert_eq!(
            decoded["Extensions"][0],
            json!({"Id": [2, 5, 29, 15], "Critical": true, "Value": "AwICpA=="})
        );
        assert_eq!(decoded["DNSNames"], json!(null));
        assert_eq!(
            decoded["RawSubject"],
            json!("MBgxFjAUBgNVBAMMDSoua3l2ZXJuby5zdmM=")
        );
    }

    #[test]
    fn decodes_base64_wrapped_certificates() {
        let encoded =
            search("base64_encode(pem)", &json!({"pem": CERTIFICATE})).unwrap_or_default();
        let decoded = search("x509_decode(base64_decode(@))", &encoded).unwrap_or_default();
        assert_eq!(decoded["Subject"]["CommonName"], json!("*.kyverno.svc"));
    }

    #[test]
    fn decodes_certificate_requests_like_go() {
        let decoded = decode(REQUEST).unwrap_or_default();
        assert_eq!(
            decoded["Subject"]["CommonName"],
            json!("example.digicert.com")
        );
        assert_eq!(decoded["Subject"]["Country"], json!(["US"]));
        assert_eq!(decoded["Subject"]["Province"], json!(["Utah"]));
        assert_eq!(decoded["Version"], json!(0));
        assert_eq!(decoded["SignatureAlgorithm"], json!(3));
        assert_eq!(decoded["PublicKey"]["E"], json!(65537));
        assert_eq!(decoded["Extensions"], json!(null));
        assert_eq!(decoded["Attributes"], json!(null));
    }

    #[test]
    fn rejects_non_pem_input() {
        assert_eq!(decode("xyz"), Err("failed to decode PEM block".to_owned()));
        assert_eq!(
            decode("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
            Err("PEM block neither contains a CERTIFICATE or CERTIFICATE REQUEST".to_owned())
        );
    }
}
