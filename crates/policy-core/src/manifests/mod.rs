//! `validate.manifests` rules: checking that a resource is a YAML manifest signed with
//! k8s-manifest-sigstore, as upstream's manifest handler does, as far as it can be done offline.
//!
//! A signed resource carries annotations of the rule's `annotationDomain` (`cosign.sigstore.dev`
//! when unset): `message`, the signed manifest (base64 of the gzipped bytes, which are a YAML
//! document or a `.tar.gz` archive of YAML files), and `signature`, `signature_1`, ... (base64
//! signatures of those gunzipped bytes). Every attestor set of the rule must be satisfied: `count`
//! of its entries (all when unset; public keys listed together count one by one) must verify. An
//! entry verifies when the resource matches its manifest in the message (fields of
//! `ignoreFields`, of upstream's and k8s-manifest-sigstore's default lists and the signature
//! annotations aside, see [`diff`]) and one of the signatures verifies with the entry's public key.
//!
//! Outcomes, as upstream reports them: a resource without signature, or whose manifest differs,
//! is not verified (the rule fails); a signature that no key verifies, a message without the
//! resource's manifest, or an attestor that cannot be checked is an error, unless enough other
//! entries verify.
//!
//! Not done, since they need a registry, a cluster or the Sigstore infrastructure: keyless and
//! certificate attestors, keys in Secrets, KMS or files, PGP keys, signatures carrying a
//! certificate or a Rekor bundle (transparency log checks), manifests in OCI images
//! (`repository`, the `resourceBundleRef` annotation), server-side dry-run matching, and the
//! value-based search of a manifest whose kind and name differ from the resource's. These are
//! errors, named as such.
mod content;
mod diff;
mod signature;

use std::borrow::Cow;
use std::cell::OnceCell;

use kyverno_api::kyverno::v1::image_verification::{
    Attestor, AttestorSet, Manifests, StaticKeyAttestor,
};
use regex::Regex;
use serde_json::{Map, Value};
use thiserror::Error;

use diff::Difference;
use signature::PublicKey;

/// The annotation domain of the message and signatures when the rule sets none.
const DEFAULT_ANNOTATION_DOMAIN: &str = "cosign.sigstore.dev";

/// The outcome of a `validate.manifests` rule that could be evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every attestor set is satisfied; the message tells by which signers.
    Verified(String),
    /// An attestor set is not satisfied; the message tells why.
    NotVerified(String),
}

/// Why a `validate.manifests` rule could not be evaluated (upstream's rule error).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ManifestError(String);

/// Verifies `resource` (the object of the admission request) against the rule's attestor sets.
pub fn verify(manifests: &Manifests, resource: &Value) -> Result<Verification, ManifestError> {
    let checker = Checker::new(manifests, resource);
    let mut verified = Vec::with_capacity(manifests.attestors.len());
    for (index, set) in manifests.attestors.iter().enumerate() {
        let (ok, reason) = checker.verify_set(set, &format!(".attestors[{index}]"))?;
        if !ok {
            return Ok(Verification::NotVerified(reason));
        }
        verified.push(reason);
    }
    Ok(Verification::Verified(format!(
        "verified manifest signatures; {}",
        verified.join(",")
    )))
}

/// What can go wrong while checking one attestor entry.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
enum VerifyError {
    /// The resource has no signature annotation (or no message): not verified, no error.
    #[error("failed to verify signature: signature not found")]
    SignatureNotFound,
    /// The message cannot be read, or has no manifest for the resource.
    #[error("YAML manifest not found for this resource: {0}")]
    ManifestNotFound(String),
    /// An annotation that is not base64.
    #[error("decoding manifest signature annotation: {0}")]
    Decoding(String),
    /// A message that is neither YAML nor a readable `.tar.gz` archive.
    #[error("failed to read YAMLs in the gzipped message: {0}")]
    Archive(String),
    /// A public key that is not a PEM ECDSA P-256 or RSA key.
    #[error("loading public key: {0}")]
    Key(String),
    /// A signature that the key does not verify.
    #[error("invalid signature when validating ASN.1 encoded signature")]
    InvalidSignature,
    /// No signature verifies with the key; each one's failure.
    #[error("failed to verify signature: signature verification failed: {}", .0.join("\n"))]
    NoValidSignature(Vec<String>),
    /// A check that needs something outside (a registry, a cluster, Sigstore's services).
    #[error("{0} cannot be verified offline by kyverno-rs (it needs {1})")]
    Offline(&'static str, &'static str),
    /// An annotation the attestor requires is missing or different.
    #[error(
        "annotations mismatch: {actual} does not match expected value {expected} for key {key}"
    )]
    AnnotationMismatch {
        /// The annotation.
        key: String,
        /// The value the attestor requires.
        expected: String,
        /// The resource's value (empty when missing).
        actual: String,
    },
}

/// The annotation names of one annotation domain.
struct AnnotationKeys<'a> {
    domain: &'a str,
}

impl AnnotationKeys<'_> {
    fn key(&self, base: &str, index: usize) -> String {
        if index == 0 {
            format!("{}/{base}", self.domain)
        } else {
            format!("{}/{base}_{index}", self.domain)
        }
    }

    /// Ignored field patterns for the signature annotations themselves (any index).
    fn masks(&self) -> Vec<String> {
        [
            "message",
            "signature",
            "certificate",
            "bundle",
            "resourceBundleRef",
        ]
        .iter()
        .map(|base| format!("metadata.annotations.{}/{base}*", self.domain))
        .collect()
    }
}

/// One signature of the message, from the `signature[_N]` annotations.
struct SignatureSet {
    /// The base64 signature.
    signature: String,
    /// Whether a certificate or Rekor bundle comes with it (needing the transparency log).
    with_transparency_log: bool,
}

/// What the annotations tell, independently of the attestor: whether the resource matches its
/// signed manifest, the signed bytes and the signatures.
struct Signed {
    /// `None` when a manifest matches the resource, else the first manifest's differences.
    differences: Option<Vec<Difference>>,
    /// The signed (decoded) message.
    message: Vec<u8>,
    /// The signatures of the message.
    signatures: Vec<SignatureSet>,
}

/// Checks one resource against the entries of a rule.
struct Checker<'a> {
    manifests: &'a Manifests,
    resource: &'a Value,
    annotations: Cow<'a, Map<String, Value>>,
    keys: AnnotationKeys<'a>,
    ignored: Vec<Regex>,
    /// Computed for the first entry that needs it, shared by the others.
    signed: OnceCell<Result<Signed, VerifyError>>,
}

impl<'a> Checker<'a> {
    fn new(manifests: &'a Manifests, resource: &'a Value) -> Self {
        let domain = manifests
            .annotation_domain
            .as_deref()
            .filter(|domain| !domain.is_empty())
            .unwrap_or(DEFAULT_ANNOTATION_DOMAIN);
        let keys = AnnotationKeys { domain };
        let ignored = diff::ignored_fields(resource, &manifests.ignore_fields, &keys.masks());
        let annotations = match resource.pointer("/metadata/annotations") {
            Some(Value::Object(annotations)) => Cow::Borrowed(annotations),
            _ => Cow::Owned(Map::new()),
        };
        Checker {
            manifests,
            resource,
            annotations,
            keys,
            ignored,
            signed: OnceCell::new(),
        }
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).and_then(Value::as_str)
    }

    /// Whether `count` entries of the set verify, with upstream's reason.
    fn verify_set(&self, set: &AttestorSet, path: &str) -> Result<(bool, String), ManifestError> {
        let entries = expand_static_keys(&set.entries);
        let required = match set.count {
            Some(count) if count > 0 => usize::try_from(count).unwrap_or(usize::MAX),
            _ => entries.len(),
        };
        let mut verified = Vec::new();
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        for (index, attestor) in entries.iter().enumerate() {
            let entry_path = format!("{path}.entries[{index}]");
            let outcome = match attestor.nested_attestor_set() {
                Some(Err(error)) => Err(ManifestError(format!(
                    "failed to unmarshal nested attestor {entry_path}: {error}"
                ))),
                Some(Ok(nested)) => {
                    let nested_path = format!("{entry_path}.attestor");
                    self.verify_set(&nested, &nested_path).map_err(|error| {
                        ManifestError(format!(
                            "failed to verify signature; {nested_path}: {error}"
                        ))
                    })
                }
                None => self.verify_entry(attestor, &entry_path),
            };
            match outcome {
                Err(error) => errors.push(error.0),
                Ok((true, reason)) => verified.push(reason),
                Ok((false, reason)) => failed.push(reason),
            }
            if verified.len() >= required {
                return Ok((
                    true,
                    format!(
                        "manifest verification succeeded; verifiedCount {}; requiredCount \
                         {required}; message {}",
                        verified.len(),
                        verified.join(",")
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ManifestError(errors.join("; ")));
        }
        Ok((
            false,
            format!(
                "manifest verification failed; verifiedCount {}; requiredCount {required}; \
                 message {}",
                verified.len(),
                failed.join(",")
            ),
        ))
    }

    /// Whether one attestor entry verifies the resource, with upstream's reason.
    fn verify_entry(
        &self,
        attestor: &Attestor,
        path: &str,
    ) -> Result<(bool, String), ManifestError> {
        for (key, expected) in &attestor.annotations {
            let actual = self.annotation(key).unwrap_or_default();
            if actual != expected {
                return Err(ManifestError(
                    VerifyError::AnnotationMismatch {
                        key: key.clone(),
                        expected: expected.clone(),
                        actual: actual.to_owned(),
                    }
                    .to_string(),
                ));
            }
        }
        let (sub_path, authority) = authority(attestor);
        let at = |error: VerifyError| ManifestError(format!("{path}{sub_path}: {error}"));
        let repository = attestor
            .repository
            .as_deref()
            .or(self.manifests.repository.as_deref());
        if repository.is_some_and(|repository| !repository.is_empty()) {
            return Err(at(VerifyError::Offline(
                "a manifest in an OCI image",
                "a registry",
            )));
        }
        let signed = match self.signed.get_or_init(|| self.signed()) {
            Ok(signed) => signed,
            Err(error) => return Err(at(error.clone())),
        };
        if signed.signatures.is_empty() {
            return Ok((
                false,
                format!("{path}{sub_path}: {}", VerifyError::SignatureNotFound),
            ));
        }
        let key = authority.map_err(at)?;
        let mut failures = Vec::new();
        let mut verified = false;
        for set in &signed.signatures {
            let outcome = if set.with_transparency_log {
                Err(VerifyError::Offline(
                    "a signature with a certificate or Rekor bundle",
                    "the transparency log",
                ))
            } else {
                key.verify(&signed.message, &set.signature)
            };
            match outcome {
                Ok(()) => {
                    verified = true;
                    break;
                }
                Err(error) => failures.push(error.to_string()),
            }
        }
        if !verified {
            return Err(at(VerifyError::NoValidSignature(failures)));
        }
        Ok(match &signed.differences {
            // Key signatures carry no signer name.
            None => (true, "singed by a valid signer: ".to_owned()),
            Some(differences) if differences.is_empty() => (
                false,
                format!("{path}{sub_path}: failed to verify signature."),
            ),
            Some(differences) => (
                false,
                format!(
                    "{path}{sub_path}: failed to verify signature. diff found; {}",
                    diff::describe(differences)
                ),
            ),
        })
    }

    /// Reads the signed manifest and signatures from the annotations.
    fn signed(&self) -> Result<Signed, VerifyError> {
        if self
            .annotation(&self.keys.key("resourceBundleRef", 0))
            .is_some()
        {
            return Err(VerifyError::Offline(
                "a manifest in an OCI image",
                "a registry",
            ));
        }
        let Some(encoded) = self.annotation(&self.keys.key("message", 0)) else {
            return Ok(Signed {
                differences: Some(Vec::new()),
                message: Vec::new(),
                signatures: Vec::new(),
            });
        };
        let not_found = |error: VerifyError| VerifyError::ManifestNotFound(error.to_string());
        let message = content::decode_annotation(encoded).map_err(not_found)?;
        let documents = content::documents_in(&message).map_err(not_found)?;
        let candidates = content::manifests_for(&documents, self.resource);
        if candidates.is_empty() {
            return Err(VerifyError::ManifestNotFound(
                "failed to find a YAML manifest in the gzipped message".to_owned(),
            ));
        }
        let mut differences = None;
        for candidate in candidates {
            let found = diff::differences(candidate, self.resource, &self.ignored);
            if found.is_empty() {
                differences = None;
                break;
            }
            differences.get_or_insert(found);
        }
        Ok(Signed {
            differences,
            message,
            signatures: self.signature_sets(),
        })
    }

    /// The `signature`, `signature_1`, ... annotations, up to the first missing index.
    fn signature_sets(&self) -> Vec<SignatureSet> {
        (0..=self.annotations.len())
            .map_while(|index| {
                let signature = self.annotation(&self.keys.key("signature", index))?;
                Some(SignatureSet {
                    signature: signature.to_owned(),
                    with_transparency_log: self
                        .annotation(&self.keys.key("certificate", index))
                        .or_else(|| self.annotation(&self.keys.key("bundle", index)))
                        .is_some_and(|value| !value.is_empty()),
                })
            })
            .collect()
    }
}

/// The path part of an attestor's kind of authority, and its public key when it is one this
/// module verifies.
fn authority(attestor: &Attestor) -> (&'static str, Result<PublicKey, VerifyError>) {
    if let Some(keys) = &attestor.keys {
        let pem = keys.public_keys.as_deref().unwrap_or_default().trim_start();
        let key = if pem.starts_with("-----BEGIN PUBLIC KEY-----") {
            PublicKey::from_pem(pem)
        } else if pem.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
            Err(VerifyError::Offline("a PGP public key", "a PGP verifier"))
        } else {
            Err(VerifyError::Offline(
                "a key in a Secret, a KMS or a file",
                "the cluster or the key service",
            ))
        };
        return (".keys", key);
    }
    if attestor.certificates.is_some() {
        return (
            ".certificates",
            Err(VerifyError::Offline(
                "a certificate attestor",
                "the transparency log",
            )),
        );
    }
    let sub_path = if attestor.keyless.is_some() {
        ".keyless"
    } else {
        ""
    };
    (
        sub_path,
        Err(VerifyError::Offline(
            "a keyless attestor",
            "the Sigstore public infrastructure",
        )),
    )
}

/// The entries with each public key of a multi-key `publicKeys` as an entry of its own, as
/// upstream counts them.
fn expand_static_keys(entries: &[Attestor]) -> Vec<Cow<'_, Attestor>> {
    const END: &str = "-----END PUBLIC KEY-----";
    let mut expanded = Vec::with_capacity(entries.len());
    for entry in entries {
        let pems = entry
            .keys
            .as_ref()
            .and_then(|keys| keys.public_keys.as_deref())
            .map(|pems| {
                pems.split_inclusive(END)
                    .filter(|pem| pem.ends_with(END))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if pems.len() <= 1 {
            expanded.push(Cow::Borrowed(entry));
            continue;
        }
        for pem in pems {
            let mut single = entry.clone();
            single.keys = Some(StaticKeyAttestor {
                public_keys: Some(pem.to_owned()),
                ..entry.keys.clone().unwrap_or_default()
            });
            expanded.push(Cow::Owned(single));
        }
    }
    expanded
}

#[cfg(test)]
mod tests;
