//! ImageValidatingPolicy and NamespacedImageValidatingPolicy: verify image signatures and
//! attestations (Cosign, Notary) with CEL validations.
use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    AuditAnnotation, MatchCondition, MatchResources, Validation, Variable,
};
use k8s_openapi::api::core::v1::LocalObjectReference;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    AutogenStatus, ConditionStatus, EvaluationConfiguration, PodControllersGeneration,
    ValidationAction, WebhookConfiguration,
};
use crate::kyverno::v1::context::ImageRegistryCredentials;
use crate::kyverno::v1::policy::FailurePolicy;
use crate::newtype::cluster_and_namespaced_kinds;

/// The specification shared by ImageValidatingPolicy and NamespacedImageValidatingPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The resources and operations the policy applies to; required for admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_constraints: Option<MatchResources>,
    /// How errors (failed evaluation, misconfiguration) are handled; `Fail` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// CEL expressions whose values become audit annotations of the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub audit_annotations: Vec<AuditAnnotation>,
    /// What a failed validation does: `Deny`, `Audit` and/or `Warn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub validation_actions: Vec<ValidationAction>,
    /// CEL conditions a request must meet to be validated (all must be true).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_conditions: Vec<MatchCondition>,
    /// Named CEL expressions available to the other expressions as `variables.<name>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<Variable>,
    /// Digest mutation and verification settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {}))]
    pub validation_configurations: Option<ValidationConfiguration>,
    /// Which images are verified: an image matching any entry is; others are skipped, even
    /// when passed to the verification functions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_image_references: Vec<MatchImageReference>,
    /// Credentials for the image registries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<ImageRegistryCredentials>,
    /// CEL expressions that extract image lists from the resource, available as
    /// `images.<name>`; the containers' images when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageExtractor>,
    /// The trusted authorities (signers) the validations refer to by name.
    pub attestors: Vec<Attestor>,
    /// The attestations (image metadata) the validations refer to by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Attestation>,
    /// The CEL validations; all must pass.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub validations: Vec<Validation>,
    /// Settings of the admission webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_configuration: Option<WebhookConfiguration>,
    /// When and on what the policy is evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationConfiguration>,
    /// Generation of pod controller variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autogen: Option<ImageValidatingAutogenConfiguration>,
}

/// Autogeneration settings of an image validating policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageValidatingAutogenConfiguration {
    /// Pod controllers to generate variants for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_controllers: Option<PodControllersGeneration>,
}

/// Digest mutation and verification settings; every switch defaults to true.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationConfiguration {
    /// Replace image tags with digests (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub mutate_digest: Option<bool>,
    /// Require images to be referenced by digest (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub verify_digest: Option<bool>,
    /// Require images to have passed a signature or attestation check (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub required: Option<bool>,
}

impl ValidationConfiguration {
    /// Whether image tags are replaced with digests.
    pub fn mutate_digest(&self) -> bool {
        self.mutate_digest.unwrap_or(true)
    }

    /// Whether images must be referenced by digest.
    pub fn verify_digest(&self) -> bool {
        self.verify_digest.unwrap_or(true)
    }

    /// Whether images must have been verified.
    pub fn required(&self) -> bool {
        self.required.unwrap_or(true)
    }
}

/// A rule selecting images: a glob or a CEL expression.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["glob"]}, {"required": ["expression"]}]))]
pub struct MatchImageReference {
    /// A glob the image reference must match, e.g. `ghcr.io/*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// A CEL expression (over `ref`) that must be true for the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// A named CEL expression that extracts image references from the resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageExtractor {
    /// The name under which the images are available (`images.<name>`).
    pub name: String,
    /// The CEL expression returning the list of image references.
    pub expression: String,
}

/// A trusted authority: Cosign or Notary signers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["cosign"]}, {"required": ["notary"]}]))]
pub struct Attestor {
    /// The name the validations use to refer to this attestor.
    pub name: String,
    /// Cosign (Sigstore) signature verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosign: Option<Cosign>,
    /// Notary (Notation) signature verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notary: Option<Notary>,
}

/// Cosign signature verification settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cosign {
    /// Verification with a public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<CosignKey>,
    /// Keyless verification against a Fulcio-issued certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<CosignKeyless>,
    /// Verification with a local certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CosignCertificate>,
    /// Where signatures and attestations are fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SignatureSource>,
    /// Transparency and certificate transparency log settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctlog: Option<TransparencyLog>,
    /// Where the Sigstore trust root is fetched from (TUF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuf: Option<Tuf>,
    /// Annotations that must be present, with these values, in the signed payload.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// A Sigstore trusted root document (JSON), used instead of fetching one through TUF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<StringOrExpression>,
}

/// A public key for Cosign verification: inline, from a KMS, or computed by CEL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CosignKey {
    /// The PEM public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The KMS URI of the public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    /// The signature hash algorithm: sha224, sha256 (the default), sha384 or sha512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_algorithm: Option<String>,
    /// A CEL expression returning the public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// Keyless (Fulcio certificate) verification settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CosignKeyless {
    /// The accepted signer identities; one must match.
    pub identities: Vec<Identity>,
    /// Certificate extensions that must be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_extensions: BTreeMap<String, String>,
    /// PEM root certificates; the system roots when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots: Option<String>,
}

/// A signer identity of a keyless signature.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The OIDC issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The signer's subject (e.g. an email address or workflow URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A regular expression the issuer must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    /// A regular expression the subject must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
    /// A CEL expression returning a regular expression the subject must match (exclusive
    /// with `subjectRegExp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_expression: Option<String>,
}

/// Certificate-based Cosign verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CosignCertificate {
    /// The signing certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<StringOrExpression>,
    /// The CA chain (PEM) from the signing certificate's issuer to the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_chain: Option<StringOrExpression>,
}

/// Where Cosign signatures and attestations are fetched from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureSource {
    /// The repository holding the signatures; the image's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Pull Secrets (in the resource's namespace) for the signature repository.
    #[serde(default, rename = "PullSecrets", skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<LocalObjectReference>,
    /// A prefix of the signature and attestation tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
}

/// Rekor transparency log and certificate transparency settings of Cosign verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransparencyLog {
    /// The Rekor instance; the public `rekor.sigstore.dev` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A PEM public key of a custom Rekor instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_pub_key: Option<String>,
    /// A public key that validates signed certificate timestamps of a custom log.
    #[serde(
        default,
        rename = "ctLogPubKey",
        skip_serializing_if = "Option::is_none"
    )]
    pub ct_log_pub_key: Option<String>,
    /// The PEM certificate chain of an RFC 3161 timestamp authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_cert_chain: Option<String>,
    /// Skip transparency log verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_ignore_tlog: Option<bool>,
    /// Skip the signed certificate timestamp check (default false).
    #[serde(
        default,
        rename = "insecureIgnoreSCT",
        skip_serializing_if = "Option::is_none"
    )]
    pub insecure_ignore_sct: Option<bool>,
}

/// Where the Sigstore trust root comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tuf {
    /// The base URL of the TUF repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    /// The initial trusted TUF root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<TufRoot>,
}

/// A TUF root, by location or inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TufRoot {
    /// A URL or file path of the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The root, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// Notary (Notation) signature verification settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notary {
    /// The certificate chain that verifies signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certs: Option<StringOrExpression>,
    /// The certificate chain that verifies signature timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_certs: Option<StringOrExpression>,
}

/// A string given literally or computed by a CEL expression (exactly one of the two).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["value"]}, {"required": ["expression"]}]))]
pub struct StringOrExpression {
    /// The literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A CEL expression returning the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// Image metadata (an attestation) the validations can check, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// The name the validations use to refer to this attestation.
    pub name: String,
    /// An attestation attached in the in-toto format, by predicate type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intoto: Option<AttestationType>,
    /// An attestation attached as an OCI 1.1 referrer, by artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<AttestationType>,
}

/// The type of an attestation (an in-toto predicate type or an OCI artifact type).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AttestationType {
    /// The type, e.g. `https://slsa.dev/provenance/v0.2` or `sbom/cyclone-dx`.
    #[serde(rename = "type")]
    pub type_: String,
}

/// The status of an ImageValidatingPolicy or NamespacedImageValidatingPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageValidatingPolicyStatus {
    /// Readiness of the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_status: Option<ConditionStatus>,
    /// Variants generated for pod controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autogen: Option<AutogenStatus<Spec>>,
}

cluster_and_namespaced_kinds!(
    ready,
    spec = Spec,
    status = "ImageValidatingPolicyStatus",
    /// The specification of an ImageValidatingPolicy (cluster-wide).
    ImageValidatingPolicySpec = ("ImageValidatingPolicy", "ivpol"),
    /// The specification of a NamespacedImageValidatingPolicy (applies within its namespace).
    NamespacedImageValidatingPolicySpec = ("NamespacedImageValidatingPolicy", "nivpol"),
);

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;

    #[test]
    fn image_validating_policy_round_trips() {
        let doc = json!({
            "apiVersion": "policies.kyverno.io/v1beta1",
            "kind": "ImageValidatingPolicy",
            "metadata": {"name": "i"},
            "spec": {
                "validationActions": ["Deny"],
                "validationConfigurations": {"verifyDigest": false},
                "matchImageReferences": [{"glob": "ghcr.io/*"}],
                "attestors": [
                    {"name": "notary", "notary": {"certs": {"value": "-----BEGIN CERTIFICATE-----"}}},
                    {"name": "cosign", "cosign": {
                        "keyless": {"identities": [{"issuer": "i", "subjectRegExp": ".*"}]},
                        "source": {"PullSecrets": [{"name": "regcred"}]},
                        "ctlog": {"insecureIgnoreSCT": true, "ctLogPubKey": "k"}}}
                ],
                "attestations": [{"name": "sbom", "referrer": {"type": "sbom/cyclone-dx"}}],
                "validations": [{"expression": "images.containers.all(i, verifyImageSignatures(i, [attestors.notary]) > 0)"}]
            }
        });
        let policy: ImageValidatingPolicy = serde_json::from_value(doc.clone()).expect("policy");
        let config = policy
            .spec
            .validation_configurations
            .clone()
            .unwrap_or_default();
        assert!(!config.verify_digest());
        assert!(config.mutate_digest() && config.required());
        assert_eq!(
            policy.spec.attestations[0]
                .referrer
                .as_ref()
                .map(|r| r.type_.as_str()),
            Some("sbom/cyclone-dx")
        );
        assert_eq!(serde_json::to_value(&policy).expect("ser"), doc);
    }

    #[test]
    fn one_of_constraints_reach_the_crd() {
        let crd = serde_json::to_value(ImageValidatingPolicy::crd()).expect("crd");
        let attestors = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["attestors"]["items"];
        assert_eq!(
            attestors["oneOf"],
            json!([{"required": ["cosign"]}, {"required": ["notary"]}])
        );
    }
}
