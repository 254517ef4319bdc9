//! Checks of verifyImages rules (upstream `ImageVerification.Validate` and the image extractor
//! check of `pkg/validation/policy`).
use kyverno_api::kyverno::v1::image_verification::{
    Attestor, AttestorSet, ImageVerification, ImageVerificationType,
};
use kyverno_api::kyverno::v1::validate::ValidationFailureAction;

use super::{Issues, RuleContext, join};

/// Hash algorithms of static keys; empty means the default, sha256.
const SIGNATURE_ALGORITHMS: [&str; 5] = ["", "sha224", "sha256", "sha384", "sha512"];

pub(super) fn check(rule: &RuleContext<'_>, issues: &mut Issues) {
    // Upstream carries the failure action of one entry over to the following ones.
    let mut audit = rule
        .policy
        .spec
        .validation_failure_action
        .unwrap_or_default()
        == ValidationFailureAction::Audit;
    for (index, verification) in rule.rule.verify_images.iter().enumerate() {
        if let Some(action) = verification.failure_action {
            audit = !action.is_enforce();
        }
        check_verification(
            verification,
            audit,
            &rule.at(&format!("verifyImages[{index}]")),
            issues,
        );
    }
    let mutates_digest = rule
        .rule
        .verify_images
        .iter()
        .any(|verification| verification.mutate_digest == Some(true));
    let extractor_expression = rule
        .rule
        .image_extractors
        .values()
        .flatten()
        .any(|extractor| {
            extractor
                .jmes_path
                .as_deref()
                .is_some_and(|e| !e.is_empty())
        });
    if mutates_digest && extractor_expression {
        issues.push(
            rule.at("imageExtractors"),
            "jmespath may not be used in an image extractor when mutating digests with verify images",
        );
    }
}

fn check_verification(
    verification: &ImageVerification,
    audit: bool,
    path: &str,
    issues: &mut Issues,
) {
    if audit && verification.mutate_digest == Some(true) {
        issues.push(
            join(path, "mutateDigest"),
            "Invalid value: true: mutateDigest must be set to false for \u{2018}Audit\u{2019} failure action",
        );
    }
    let legacy_image = verification
        .image
        .as_deref()
        .is_some_and(|image| !image.is_empty());
    if verification.image_references.is_empty() && !legacy_image {
        issues.push(path, "An image reference is required");
    }
    for (index, attestation) in verification.attestations.iter().enumerate() {
        for (set_index, set) in attestation.attestors.iter().enumerate() {
            check_attestor_set(
                set,
                &format!("{path}.attestations[{index}].attestors[{set_index}]"),
                issues,
            );
        }
    }
    for (index, set) in verification.attestors.iter().enumerate() {
        check_attestor_set(set, &format!("{path}.attestors[{index}]"), issues);
    }
    check_legacy_keyless(verification, path, issues);
    if verification.verification_type == Some(ImageVerificationType::Notary) {
        let entries = verification.attestors.iter().flat_map(|set| &set.entries);
        for entry in entries {
            if entry.keyless.is_some() {
                issues.push(
                    join(path, "attestors"),
                    "Keyless field is not allowed for type notary",
                );
            }
            if entry.keys.is_some() {
                issues.push(
                    join(path, "attestors"),
                    "Keys field is not allowed for type notary",
                );
            }
        }
    }
}

/// The older `issuer`/`subject`/`roots` fields become a keyless attestor, which needs roots as
/// it has no Rekor URL.
fn check_legacy_keyless(verification: &ImageVerification, path: &str, issues: &mut Issues) {
    let set = |field: &Option<String>| field.as_deref().is_some_and(|value| !value.is_empty());
    if set(&verification.key) || !set(&verification.issuer) || set(&verification.roots) {
        return;
    }
    let converted_at = if verification.attestations.is_empty() {
        format!("{path}.attestors[{}]", verification.attestors.len())
    } else {
        format!("{path}.attestations[0].attestors")
    };
    issues.push(
        format!("{converted_at}.entries[0].keyless"),
        "Either Rekor URL or roots are required",
    );
}

fn check_attestor_set(set: &AttestorSet, path: &str, issues: &mut Issues) {
    if let Some(count) = set.count
        && usize::try_from(count).is_ok_and(|count| count > set.entries.len())
    {
        issues.push(path, "Count cannot exceed length of entries");
    }
    if set.entries.is_empty() {
        issues.push(path, "An entry is required");
    }
    for (index, entry) in set.entries.iter().enumerate() {
        check_attestor(entry, &format!("{path}.entries[{index}]"), issues);
    }
}

fn check_attestor(attestor: &Attestor, path: &str, issues: &mut Issues) {
    let kinds = [
        attestor.keys.is_some(),
        attestor.certificates.is_some(),
        attestor.keyless.is_some(),
        attestor.attestor.is_some(),
    ];
    if kinds.iter().filter(|&&set| set).count() != 1 {
        issues.push(
            path,
            "keys, certificates, keyless, or a nested attestor is required",
        );
    }
    let blank = |field: &Option<String>| field.as_deref().is_none_or(str::is_empty);
    if let Some(keys) = &attestor.keys {
        let keys_path = join(path, "keys");
        if blank(&keys.public_keys) && blank(&keys.kms) && keys.secret.is_none() {
            issues.push(
                keys_path.clone(),
                "A public key, kms key or secret is required",
            );
        }
        let algorithm = keys.signature_algorithm.as_deref().unwrap_or_default();
        if !blank(&keys.public_keys) && !SIGNATURE_ALGORITHMS.contains(&algorithm) {
            issues.push(keys_path, "Invalid signature algorithm provided");
        }
    }
    if let Some(certificates) = &attestor.certificates
        && blank(&certificates.certificate)
        && blank(&certificates.certificate_chain)
    {
        issues.push(join(path, "certificates"), "cert or certChain required");
    }
    if let Some(keyless) = &attestor.keyless {
        let keyless_path = join(path, "keyless");
        if keyless.rekor.is_none() && blank(&keyless.roots) {
            issues.push(
                keyless_path.clone(),
                "Either Rekor URL or roots are required",
            );
        }
        if keyless
            .rekor
            .as_ref()
            .is_some_and(|rekor| blank(&rekor.url))
        {
            issues.push(keyless_path, "An URL is required");
        }
    }
    match attestor.nested_attestor_set() {
        None => {}
        Some(Ok(set)) => check_attestor_set(&set, &join(path, "attestor"), issues),
        Some(Err(error)) => issues.push(
            join(path, "attestor"),
            format!("failed to unmarshal attestor set: {error}"),
        ),
    }
}
