//! Resources signed in the tests themselves, with key pairs made here, as
//! k8s-manifest-sigstore signs them: the message annotation is base64 of the gzipped manifest
//! (YAML or a `.tar.gz` of YAML files), each signature signs the gunzipped bytes.
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::GzEncoder;
use p256::ecdsa::SigningKey;
use serde_json::{Value, json};

use super::content::tests::gzip;
use super::signature::tests::{p256_key_pair, p256_sign};
use super::*;

const MANIFEST: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
    protocol: TCP
  selector:
    app: web
";

/// The resource as the manifest describes it, in a namespace, with `annotations`.
fn resource(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}
    })
}

/// Signature annotations of `domain` for `signed` bytes, one signature per key.
fn annotations(domain: &str, signed: &[u8], signers: &[&SigningKey]) -> Value {
    let mut annotations = json!({ format!("{domain}/message"): STANDARD.encode(gzip(signed)) });
    for (index, signer) in signers.iter().enumerate() {
        let key = if index == 0 {
            format!("{domain}/signature")
        } else {
            format!("{domain}/signature_{index}")
        };
        annotations[key] = json!(p256_sign(signer, signed));
    }
    annotations
}

fn signed_by(signers: &[&SigningKey]) -> Value {
    resource(annotations(
        DEFAULT_ANNOTATION_DOMAIN,
        MANIFEST.as_bytes(),
        signers,
    ))
}

/// A rule with one attestor set of the given entries.
fn rule(count: Option<u32>, entries: Value) -> Manifests {
    let mut set = json!({ "entries": entries });
    if let Some(count) = count {
        set["count"] = json!(count);
    }
    serde_json::from_value(json!({ "attestors": [set] })).expect("manifests rule")
}

fn key_entry(pem: &str) -> Value {
    json!({"keys": {"publicKeys": pem, "signatureAlgorithm": "sha256"}})
}

fn message_of(outcome: Result<Verification, ManifestError>) -> (&'static str, String) {
    match outcome {
        Ok(Verification::Verified(message)) => ("verified", message),
        Ok(Verification::NotVerified(message)) => ("not verified", message),
        Err(error) => ("error", error.to_string()),
    }
}

struct Keys {
    first: SigningKey,
    first_pem: String,
    second: SigningKey,
    second_pem: String,
}

fn keys() -> Keys {
    let (first, first_pem) = p256_key_pair(3);
    let (second, second_pem) = p256_key_pair(5);
    Keys {
        first,
        first_pem,
        second,
        second_pem,
    }
}

#[test]
fn a_resource_without_signature_is_not_verified() {
    let keys = keys();
    let rule = rule(Some(1), json!([key_entry(&keys.first_pem)]));
    let (outcome, message) = message_of(verify(&rule, &resource(json!({}))));
    assert_eq!(outcome, "not verified");
    assert_eq!(
        message,
        "manifest verification failed; verifiedCount 0; requiredCount 1; message \
         .attestors[0].entries[0].keys: failed to verify signature: signature not found"
    );
}

#[test]
fn one_of_two_keys_suffices_with_count_one() {
    let keys = keys();
    let entries = json!([key_entry(&keys.first_pem), key_entry(&keys.second_pem)]);
    let resource = signed_by(&[&keys.second]);
    let (outcome, message) = message_of(verify(&rule(Some(1), entries.clone()), &resource));
    assert_eq!(outcome, "verified");
    assert_eq!(
        message,
        "verified manifest signatures; manifest verification succeeded; verifiedCount 1; \
         requiredCount 1; message singed by a valid signer: "
    );
    // Both keys are required without a count: the first one verifies no signature.
    let (outcome, message) = message_of(verify(&rule(None, entries), &resource));
    assert_eq!(outcome, "error");
    assert!(
        message.starts_with(
            ".attestors[0].entries[0].keys: failed to verify signature: signature verification \
             failed: invalid signature"
        ),
        "{message}"
    );
}

#[test]
fn several_signatures_satisfy_several_keys() {
    let keys = keys();
    let entries = json!([key_entry(&keys.first_pem), key_entry(&keys.second_pem)]);
    let resource = signed_by(&[&keys.first, &keys.second]);
    let (outcome, _) = message_of(verify(&rule(None, entries), &resource));
    assert_eq!(outcome, "verified");
    // Keys listed in one `publicKeys` count one by one.
    let together = format!("{}\n{}", keys.first_pem.trim(), keys.second_pem.trim());
    let (outcome, message) = message_of(verify(
        &rule(None, json!([key_entry(&together)])),
        &resource,
    ));
    assert_eq!(outcome, "verified");
    assert!(message.contains("requiredCount 2"), "{message}");
}

#[test]
fn a_resource_that_differs_from_its_manifest_is_not_verified_unless_ignored() {
    let keys = keys();
    let mut changed = signed_by(&[&keys.first]);
    changed["spec"]["selector"]["app"] = json!("other");
    let entries = json!([key_entry(&keys.first_pem)]);
    let (outcome, message) = message_of(verify(&rule(None, entries.clone()), &changed));
    assert_eq!(outcome, "not verified");
    assert!(
        message.ends_with(
            r#".attestors[0].entries[0].keys: failed to verify signature. diff found; {"items":[{"key":"spec.selector.app","values":{"after":"other","before":"web"}}]}"#
        ),
        "{message}"
    );
    let mut ignoring = rule(None, entries);
    ignoring.ignore_fields = serde_json::from_value(
        json!([{"fields": ["spec.selector.app"], "objects": [{"kind": "Service"}]}]),
    )
    .expect("ignore fields");
    assert_eq!(message_of(verify(&ignoring, &changed)).0, "verified");
}

#[test]
fn messages_may_be_tar_gz_archives_and_domains_may_differ() {
    let keys = keys();
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let mut header = tar::Header::new_gnu();
    header.set_size(MANIFEST.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "manifests/service.yaml", MANIFEST.as_bytes())
        .expect("tar entry");
    let archive = builder.into_inner().expect("tar").finish().expect("gzip");
    let signed = resource(annotations("example.com", &archive, &[&keys.first]));
    let mut rule = rule(None, json!([key_entry(&keys.first_pem)]));
    rule.annotation_domain = Some("example.com".to_owned());
    assert_eq!(message_of(verify(&rule, &signed)).0, "verified");
    rule.annotation_domain = None;
    assert_eq!(message_of(verify(&rule, &signed)).0, "not verified");
}

#[test]
fn attestor_annotations_must_be_on_the_resource() {
    let keys = keys();
    let mut entry = key_entry(&keys.first_pem);
    entry["annotations"] = json!({"team": "a"});
    let mut resource = signed_by(&[&keys.first]);
    let mut rule = rule(None, json!([entry]));
    // The manifest was signed without the annotation.
    rule.ignore_fields = serde_json::from_value(json!([{"fields": ["metadata.annotations.team"]}]))
        .expect("ignore fields");
    let (outcome, message) = message_of(verify(&rule, &resource));
    assert_eq!(outcome, "error");
    assert_eq!(
        message,
        "annotations mismatch:  does not match expected value a for key team"
    );
    resource["metadata"]["annotations"]["team"] = json!("a");
    assert_eq!(message_of(verify(&rule, &resource)).0, "verified");
}

#[test]
fn attestors_that_need_the_network_are_errors_unless_others_suffice() {
    let keys = keys();
    let resource = signed_by(&[&keys.first]);
    let keyless = json!({"keyless": {"subject": "me@example.com", "issuer": "https://issuer"}});
    let (outcome, message) = message_of(verify(&rule(None, json!([keyless.clone()])), &resource));
    assert_eq!(outcome, "error");
    assert_eq!(
        message,
        ".attestors[0].entries[0].keyless: a keyless attestor cannot be verified offline by \
         kyverno-rs (it needs the Sigstore public infrastructure)"
    );
    let entries = json!([keyless, key_entry(&keys.first_pem)]);
    assert_eq!(
        message_of(verify(&rule(Some(1), entries), &resource)).0,
        "verified"
    );
    let mut with_certificate = resource.clone();
    with_certificate["metadata"]["annotations"]["cosign.sigstore.dev/certificate"] = json!("x");
    let (outcome, message) = message_of(verify(
        &rule(None, json!([key_entry(&keys.first_pem)])),
        &with_certificate,
    ));
    assert_eq!(outcome, "error");
    assert!(message.contains("transparency log"), "{message}");
}

#[test]
fn nested_attestor_sets_count_as_one_entry() {
    let keys = keys();
    let nested = json!({"attestor": {"count": 1, "entries": [
        key_entry(&keys.second_pem), key_entry(&keys.first_pem)]}});
    let (outcome, message) = message_of(verify(
        &rule(None, json!([nested])),
        &signed_by(&[&keys.first]),
    ));
    assert_eq!(outcome, "verified");
    assert!(
        message
            .contains("verifiedCount 1; requiredCount 1; message manifest verification succeeded"),
        "{message}"
    );
}

#[test]
fn a_message_without_the_resource_is_an_error() {
    let keys = keys();
    let other = MANIFEST.replace("name: web", "name: other");
    let signed = resource(annotations(
        DEFAULT_ANNOTATION_DOMAIN,
        other.as_bytes(),
        &[&keys.first],
    ));
    let (outcome, message) = message_of(verify(
        &rule(None, json!([key_entry(&keys.first_pem)])),
        &signed,
    ));
    assert_eq!(outcome, "error");
    assert_eq!(
        message,
        ".attestors[0].entries[0].keys: YAML manifest not found for this resource: failed to \
         find a YAML manifest in the gzipped message"
    );
}

#[test]
fn every_attestor_set_must_be_satisfied() {
    let keys = keys();
    let manifests: Manifests = serde_json::from_value(json!({"attestors": [
        {"entries": [key_entry(&keys.first_pem)]},
        {"entries": [key_entry(&keys.second_pem)]},
    ]}))
    .expect("rule");
    let both = signed_by(&[&keys.first, &keys.second]);
    assert_eq!(message_of(verify(&manifests, &both)).0, "verified");
    let (outcome, message) = message_of(verify(&manifests, &signed_by(&[&keys.first])));
    assert_eq!(outcome, "error");
    assert!(
        message.starts_with(".attestors[1].entries[0].keys"),
        "{message}"
    );
}
