//! Public keys and the signatures they verify, as cosign verifies a blob with a key: SHA-256,
//! ECDSA P-256 (ASN.1 DER signatures) or RSA PKCS#1 v1.5.
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use sha2::Sha256;

use super::VerifyError;

/// A public key given in PEM (`-----BEGIN PUBLIC KEY-----`, SubjectPublicKeyInfo).
#[derive(Clone, Debug)]
pub(super) enum PublicKey {
    /// An ECDSA key on the P-256 curve.
    P256(p256::ecdsa::VerifyingKey),
    /// An RSA key, for PKCS#1 v1.5 signatures.
    Rsa(rsa::pkcs1v15::VerifyingKey<Sha256>),
}

impl PublicKey {
    /// Parses a PEM public key.
    pub(super) fn from_pem(pem: &str) -> Result<Self, VerifyError> {
        let pem = pem.trim();
        if let Ok(key) = p256::PublicKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P256(key.into()));
        }
        rsa::RsaPublicKey::from_public_key_pem(pem)
            .map(|key| PublicKey::Rsa(rsa::pkcs1v15::VerifyingKey::new(key)))
            .map_err(|error| VerifyError::Key(error.to_string()))
    }

    /// Verifies the base64 `signature` of `message`.
    pub(super) fn verify(&self, message: &[u8], signature: &str) -> Result<(), VerifyError> {
        let bytes = STANDARD
            .decode(signature.trim())
            .map_err(|error| VerifyError::Decoding(error.to_string()))?;
        let verified = match self {
            PublicKey::P256(key) => p256::ecdsa::Signature::from_der(&bytes)
                .and_then(|signature| key.verify(message, &signature)),
            PublicKey::Rsa(key) => rsa::pkcs1v15::Signature::try_from(bytes.as_slice())
                .and_then(|signature| key.verify(message, &signature)),
        };
        verified.map_err(|_| VerifyError::InvalidSignature)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};
    use rsa::rand_core::{CryptoRng, RngCore};
    use rsa::signature::SignatureEncoding as _;

    use super::*;

    /// A P-256 key pair made from `seed`: the signing key and the PEM public key.
    pub(in crate::manifests) fn p256_key_pair(seed: u8) -> (SigningKey, String) {
        let signing = SigningKey::from_slice(&[seed; 32]).expect("valid scalar");
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM");
        (signing, pem)
    }

    /// The base64 DER signature of `message`.
    pub(in crate::manifests) fn p256_sign(key: &SigningKey, message: &[u8]) -> String {
        let signature: p256::ecdsa::Signature = key.sign(message);
        STANDARD.encode(signature.to_der().as_bytes())
    }

    /// A deterministic generator, for making an RSA key in tests.
    struct Counter(u64);

    impl RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            // SplitMix64.
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let bytes = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl CryptoRng for Counter {}

    #[test]
    fn ecdsa_p256_signatures_verify_with_their_key_only() {
        let (signing, pem) = p256_key_pair(7);
        let (_, other) = p256_key_pair(9);
        let signature = p256_sign(&signing, b"message");
        let key = PublicKey::from_pem(&pem).expect("P-256 key");
        assert_eq!(key.verify(b"message", &signature), Ok(()));
        assert_eq!(
            key.verify(b"other message", &signature),
            Err(VerifyError::InvalidSignature)
        );
        let other = PublicKey::from_pem(&other).expect("P-256 key");
        assert_eq!(
            other.verify(b"message", &signature),
            Err(VerifyError::InvalidSignature)
        );
        assert!(matches!(
            key.verify(b"message", "%%%"),
            Err(VerifyError::Decoding(_))
        ));
        assert_eq!(
            key.verify(b"message", &STANDARD.encode(b"not DER")),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn rsa_pkcs1v15_signatures_verify() {
        use rsa::pkcs8::EncodePublicKey as _;
        let private = rsa::RsaPrivateKey::new(&mut Counter(1), 1024).expect("RSA key");
        let pem = private
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .expect("PEM");
        let signing = rsa::pkcs1v15::SigningKey::<Sha256>::new(private);
        let signature = STANDARD.encode(signing.sign(b"message").to_bytes());
        let key = PublicKey::from_pem(&pem).expect("RSA key");
        assert!(matches!(key, PublicKey::Rsa(_)));
        assert_eq!(key.verify(b"message", &signature), Ok(()));
        assert_eq!(
            key.verify(b"tampered", &signature),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn keys_that_are_not_pem_public_keys_are_errors() {
        assert!(matches!(
            PublicKey::from_pem("k8s://ns/secret"),
            Err(VerifyError::Key(_))
        ));
    }
}
