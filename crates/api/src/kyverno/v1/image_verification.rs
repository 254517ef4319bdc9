//! Image verification (`verifyImages`) and signed-manifest verification (`validate.manifests`):
//! signatures and attestations checked against sets of attestors.
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::context::ImageRegistryCredentials;
use super::mutate::AnyAllConditions;
use super::validate::ValidationFailureAction;
use crate::schema::preserve_unknown_fields;

/// Verifies the signatures and attestations of the images that match `imageReferences`, and
/// optionally replaces image tags with the verified digests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageVerification {
    /// The signature format to verify: Cosign (the default), SigstoreBundle or Notary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub verification_type: Option<ImageVerificationType>,
    /// Deprecated: a single image reference pattern; use `imageReferences`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image reference patterns (registry/repository:tag, `*` and `?` wildcards) of which one must
    /// match an image for the rule to verify it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_references: Vec<String>,
    /// Image reference patterns of images that are not verified, even if they match
    /// `imageReferences`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip_image_references: Vec<String>,
    /// Deprecated: a public key; use a `keys` attestor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Deprecated: PEM root certificates for keyless verification; use a `keyless` attestor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots: Option<String>,
    /// Deprecated: the keyless signing identity; use a `keyless` attestor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Deprecated: the keyless certificate issuer; use a `keyless` attestor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Deprecated: certificate extensions for keyless signing; use a `keyless` attestor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_extensions: BTreeMap<String, String>,
    /// The attestor sets that must all be satisfied by the image's signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestors: Vec<AttestorSet>,
    /// Signed in-toto attestations that must be present and satisfy their conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Attestation>,
    /// Deprecated: annotations the signature payload must carry; set them per attestor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// An alternate OCI repository holding the signatures and attestations; attestors and
    /// attestations may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Use the experimental OCI 1.1 referrers behaviour of cosign. Defaults to false.
    #[serde(
        default,
        rename = "cosignOCI11",
        skip_serializing_if = "Option::is_none"
    )]
    pub cosign_oci11: Option<bool>,
    /// Replace image tags with the verified digest. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub mutate_digest: Option<bool>,
    /// Require images to be referenced by digest. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub verify_digest: Option<bool>,
    /// Require matching images to have been verified (checked by a later admission). Defaults
    /// to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub required: Option<bool>,
    /// Cache verification results for this rule. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub use_cache: Option<bool>,
    /// What a failed verification does: Audit reports it, Enforce blocks the request.
    /// Only the capitalized spellings are allowed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Audit", "Enforce"]))]
    pub failure_action: Option<ValidationFailureAction>,
    /// Credentials used to reach the image registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_registry_credentials: Option<ImageRegistryCredentials>,
    /// Conditions checked across the verified attestations and the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ImageVerificationValidation>,
}

impl ImageVerification {
    /// Whether image tags are replaced by digests (`mutateDigest`, default true).
    pub fn mutate_digest(&self) -> bool {
        self.mutate_digest.unwrap_or(true)
    }

    /// Whether images must be referenced by digest (`verifyDigest`, default true).
    pub fn verify_digest(&self) -> bool {
        self.verify_digest.unwrap_or(true)
    }

    /// Whether matching images must have been verified (`required`, default true).
    pub fn required(&self) -> bool {
        self.required.unwrap_or(true)
    }

    /// Whether verification results are cached (`useCache`, default true).
    pub fn use_cache(&self) -> bool {
        self.use_cache.unwrap_or(true)
    }

    /// The signature format, Cosign when unset.
    pub fn verification_type(&self) -> ImageVerificationType {
        self.verification_type.unwrap_or_default()
    }
}

/// The signature format an image verification checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ImageVerificationType {
    /// Sigstore cosign signatures.
    #[default]
    Cosign,
    /// Sigstore bundles.
    SigstoreBundle,
    /// Notary v2 (notation) signatures.
    Notary,
}

/// A set of attestors of which `count` (all when unset) must be satisfied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestorSet {
    /// How many entries must match: all when unset, 1 for a logical OR, N for at least N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<i64>,
    /// The attestors: static keys, certificates, keyless identities or nested attestor sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<Attestor>,
}

/// One attestor (authority): exactly one of `keys`, `certificates`, `keyless` or `attestor`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attestor {
    /// Public keys that must have signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<StaticKeyAttestor>,
    /// Certificates that must have signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificateAttestor>,
    /// A Sigstore keyless (Fulcio certificate) identity that must have signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessAttestor>,
    /// A nested attestor set, for more complex combinations of authorities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub attestor: Option<Value>,
    /// Key/value pairs that must be present with these values in the signed payload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// An alternate OCI repository holding this attestor's signatures and attestations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The signature hash algorithm of public keys: sha224, sha256 (default), sha384, sha512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "sha256"))]
    pub signature_algorithm: Option<String>,
}

impl Attestor {
    /// Parses the nested `attestor` field as an attestor set, if set.
    pub fn nested_attestor_set(&self) -> Option<Result<AttestorSet, serde_json::Error>> {
        self.attestor.as_ref().map(AttestorSet::deserialize)
    }
}

/// Verification with public keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticKeyAttestor {
    /// PEM public keys, inline or through a variable, or `k8s://<namespace>/<secret>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_keys: Option<String>,
    /// Deprecated: the signature hash algorithm; set it on the attestor instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "sha256"))]
    pub signature_algorithm: Option<String>,
    /// The URI of a public key held in a key management system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    /// A Secret that holds the public key (key `cosign.pub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretReference>,
    /// Transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<Rekor>,
    /// Certificate transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<CtLog>,
}

/// A Secret, by namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// The Secret's name.
    pub name: String,
    /// The Secret's namespace.
    pub namespace: String,
}

/// Verification with certificates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAttestor {
    /// A PEM certificate.
    #[serde(default, rename = "cert", skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// A PEM certificate chain that verifies the certificate.
    #[serde(default, rename = "certChain", skip_serializing_if = "Option::is_none")]
    pub certificate_chain: Option<String>,
    /// Transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<Rekor>,
    /// Certificate transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<CtLog>,
}

/// Sigstore keyless verification: the identity in the Fulcio signing certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeylessAttestor {
    /// Transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor: Option<Rekor>,
    /// Certificate transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<CtLog>,
    /// The OIDC issuer of the signing certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// A regular expression the OIDC issuer must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    /// The signer's identity (e.g. an email address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A regular expression the signer's identity must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
    /// PEM root certificates; the system roots when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots: Option<String>,
    /// Certificate extensions that must be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_extensions: BTreeMap<String, String>,
}

/// Rekor transparency log settings; an empty object means the public instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rekor {
    /// The log's address; `https://rekor.sigstore.dev` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A PEM public key of a custom Rekor instance.
    #[serde(default, rename = "pubkey", skip_serializing_if = "Option::is_none")]
    pub pub_key: Option<String>,
    /// Skip transparency log verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_tlog: Option<bool>,
}

/// Certificate transparency log (signed certificate timestamp) settings; cosign's defaults
/// when unset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CtLog {
    /// Skip the signed certificate timestamp check (for signatures made without one).
    #[serde(default, rename = "ignoreSCT", skip_serializing_if = "Option::is_none")]
    pub ignore_sct: Option<bool>,
    /// A public key that verifies the timestamps, for a custom log.
    #[serde(default, rename = "pubkey", skip_serializing_if = "Option::is_none")]
    pub pub_key: Option<String>,
    /// PEM certificate chain (ending in the root) of an RFC 3161 timestamp authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_cert_chain: Option<String>,
}

/// A signed in-toto attestation that the image must carry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// The variable name under which the attestation's predicates are available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated: the predicate type; use `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// The attestation (predicate) type, e.g. `https://slsa.dev/provenance/v0.2`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub attestation_type: Option<String>,
    /// The attestor sets that must have signed the attestation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestors: Vec<AttestorSet>,
    /// Conditions on the predicate; when empty any predicate of the type satisfies the check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<AnyAllConditions>,
}

/// Checks across the verified attestations and context entries of an image verification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageVerificationValidation {
    /// The message shown when the check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Conditions that fail the check when they hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Deny>,
}

/// Deny conditions: the check fails when they hold.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deny {
    /// `any`/`all` conditions, or (deprecated) a plain list of conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_fields")]
    pub conditions: Option<Value>,
}

/// Verification of signed resource manifests (`validate.manifests`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Manifests {
    /// The attestor sets that must have signed the manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestors: Vec<AttestorSet>,
    /// The annotation domain of the message and signature; `cosign.sigstore.dev` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_domain: Option<String>,
    /// Fields ignored when comparing the resource with the signed manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_fields: Vec<ObjectFieldBinding>,
    /// Server-side dry-run settings used during the comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<DryRunOption>,
    /// An alternate OCI repository holding the resource bundle; attestors may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// Server-side dry-run settings of manifest verification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRunOption {
    /// Run a dry-run create before comparing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    /// The namespace the dry run happens in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Fields to ignore on the objects that match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectFieldBinding {
    /// Field paths to ignore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// The objects the paths apply to; all objects when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<TargetObject>,
}

/// Selects objects by group, version, kind, namespace and name; unset parts match anything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetObject {
    /// The object's kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The object's API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The object's API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn image_verification_round_trips_and_keeps_explicit_false() {
        let doc = json!({
            "type": "Notary",
            "imageReferences": ["*"],
            "skipImageReferences": ["ghcr.io/x/*"],
            "mutateDigest": false,
            "verifyDigest": false,
            "required": false,
            "useCache": true,
            "cosignOCI11": false,
            "failureAction": "Audit",
            "imageRegistryCredentials": {"providers": ["amazon"], "secrets": ["regcred"]},
            "attestors": [{"count": 1, "entries": [
                {"keys": {"publicKeys": "-----BEGIN PUBLIC KEY-----", "signatureAlgorithm": "sha256",
                          "ctlog": {"ignoreSCT": true}, "rekor": {"ignoreTlog": true,
                          "url": "https://rekor.sigstore.dev"},
                          "secret": {"name": "k", "namespace": "kyverno"}}},
                {"certificates": {"cert": "c", "certChain": "cc"}},
                {"keyless": {"subject": "s", "issuerRegExp": "i.*", "rekor": {"pubkey": "p"},
                             "additionalExtensions": {"githubWorkflowTrigger": "push"}}},
                {"attestor": {"count": 1, "entries": [{"keys": {"kms": "awskms:///k"}}]}}
            ]}],
            "attestations": [{
                "type": "https://slsa.dev/provenance/v0.2",
                "name": "prov",
                "conditions": [{"all": [{"key": "{{ builder.id }}", "operator": "Equals",
                                         "value": "x", "message": "m"}]}]
            }],
            "validate": {"message": "bad", "deny": {"conditions": {"any": [
                {"key": "{{ a }}", "operator": "NotEquals", "value": 1}]}}}
        });
        let v: ImageVerification = serde_json::from_value(doc.clone()).expect("deserialize");
        assert_eq!(v.verification_type(), ImageVerificationType::Notary);
        assert!(!v.mutate_digest() && !v.verify_digest() && !v.required() && v.use_cache());
        assert_eq!(v.failure_action, Some(ValidationFailureAction::Audit));
        let nested = v.attestors[0].entries[3]
            .nested_attestor_set()
            .expect("set")
            .expect("ok");
        assert_eq!(nested.count, Some(1));
        assert_eq!(serde_json::to_value(&v).expect("serialize"), doc);
    }

    #[test]
    fn defaults_apply_when_unset() {
        let v = ImageVerification::default();
        assert!(v.mutate_digest() && v.verify_digest() && v.required() && v.use_cache());
        assert_eq!(v.verification_type(), ImageVerificationType::Cosign);
        assert!(serde_json::from_value::<ImageVerification>(json!({"type": "cosign"})).is_err());
        let v: ImageVerification =
            serde_json::from_value(json!({"type": "SigstoreBundle"})).expect("bundle");
        assert_eq!(
            v.verification_type,
            Some(ImageVerificationType::SigstoreBundle)
        );
    }

    #[test]
    fn failure_action_schema_lists_only_capitalized_values() {
        let schema = schemars::schema_for!(ImageVerification);
        let value = serde_json::to_value(&schema).expect("schema");
        let action = &value["properties"]["failureAction"];
        assert_eq!(action["enum"], json!(["Audit", "Enforce"]));
    }

    #[test]
    fn manifests_round_trip() {
        let doc = json!({
            "annotationDomain": "example.com",
            "repository": "ghcr.io/x/manifests",
            "dryRun": {"enable": false, "namespace": "dry"},
            "ignoreFields": [{"fields": ["spec.replicas"],
                              "objects": [{"kind": "Deployment", "group": "apps",
                                           "version": "v1", "name": "d", "namespace": "n"}]}],
            "attestors": [{"entries": [{"keys": {"publicKeys": "k",
                                                 "signatureAlgorithm": "sha512"}}]}]
        });
        let m: Manifests = serde_json::from_value(doc.clone()).expect("deserialize");
        assert_eq!(m.dry_run.as_ref().and_then(|d| d.enable), Some(false));
        assert_eq!(serde_json::to_value(&m).expect("serialize"), doc);
    }
}
