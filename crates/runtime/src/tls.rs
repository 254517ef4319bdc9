//! Certificates of the controllers' webhooks: the self-signed CA and serving certificate the
//! leader keeps in Secrets (see [`crate::certificates`]), and the rustls configuration every
//! replica serves with, whose certificate can be swapped while serving.
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The subject of the CA, as upstream names it.
const CA_COMMON_NAME: &str = "*.kyverno.svc";

/// Why certificates cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating or signing a certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM document cannot be read.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// rustls refused the configuration or key.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// A certificate and its private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemPair {
    /// The certificate.
    pub cert: String,
    /// The private key (PKCS#8).
    pub key: String,
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + lifetime;
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Generates a self-signed CA valid for `lifetime`.
pub fn generate_ca(lifetime: Duration) -> Result<PemPair, TlsError> {
    let mut params = ca_params()?;
    validity(&mut params, lifetime);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Issues a serving certificate for `dns_names`, valid for `lifetime`, signed by `ca` (a CA
/// made by [`generate_ca`]).
pub fn issue(ca: &PemPair, dns_names: &[String], lifetime: Duration) -> Result<PemPair, TlsError> {
    let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&ca.key)?);
    let mut params = CertificateParams::new(dns_names.to_vec())?;
    if let Some(first) = dns_names.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, lifetime);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// When the (first) certificate of a PEM document expires, in seconds since the epoch.
pub fn not_after(cert_pem: &str) -> Result<i64, TlsError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|error| TlsError::Pem(error.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|error| TlsError::Pem(error.to_string()))?;
    Ok(cert.validity().not_after.timestamp())
}

/// The PEM certificates of a document, one string each (the CA Secret holds several during a
/// rotation, the oldest first).
pub fn split_certificates(pem: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut certificates = Vec::new();
    let mut rest = pem;
    while let Some(begin) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[begin..].find(END) else {
            break;
        };
        let stop = begin + end + END.len();
        certificates.push(format!("{}\n", &rest[begin..stop]));
        rest = &rest[stop..];
    }
    certificates
}

/// What the CA Secret should hold at `now` (seconds since the epoch): `None` when `current` can
/// stay. Expired CAs leave the bundle; when the newest one (the last, whose key is `current`'s)
/// expires within `renew_before`, or none is usable, a new CA valid for `lifetime` is appended,
/// its key replacing the old one, so that clients trusting the bundle accept certificates of
/// both while serving certificates move to the new CA (upstream's rotation).
pub fn renew_ca(
    current: Option<&PemPair>,
    now: i64,
    renew_before: Duration,
    lifetime: Duration,
) -> Result<Option<PemPair>, TlsError> {
    let margin = i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX);
    let certificates = current.map_or_else(Vec::new, |pair| split_certificates(&pair.cert));
    let alive: Vec<&String> = certificates
        .iter()
        .filter(|cert| not_after(cert).is_ok_and(|expiry| expiry > now))
        .collect();
    let newest_fresh = alive.last().is_some_and(|newest| {
        Some(*newest) == certificates.last()
            && not_after(newest).is_ok_and(|expiry| expiry.saturating_sub(margin) > now)
    });
    match current {
        Some(_) if newest_fresh && alive.len() == certificates.len() => Ok(None),
        Some(current) if newest_fresh => Ok(Some(PemPair {
            cert: alive.into_iter().map(String::as_str).collect(),
            key: current.key.clone(),
        })),
        _ => {
            let renewed = generate_ca(lifetime)?;
            let mut bundle: String = alive.into_iter().map(String::as_str).collect();
            bundle.push_str(&renewed.cert);
            Ok(Some(PemPair {
                cert: bundle,
                key: renewed.key,
            }))
        }
    }
}

/// Whether the serving certificate `pair` must be issued again at `now` (seconds since the
/// epoch): when it cannot be read, expires within `renew_before`, or does not verify for
/// `dns_name` against the newest CA of `ca_bundle` (it was signed by a CA being retired).
pub fn serving_needs_renewal(
    pair: Option<&PemPair>,
    ca_bundle: &str,
    dns_name: &str,
    now: i64,
    renew_before: Duration,
) -> bool {
    let Some(pair) = pair else {
        return true;
    };
    let margin = i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX);
    let fresh = not_after(&pair.cert).is_ok_and(|expiry| expiry.saturating_sub(margin) > now);
    let newest_ca = split_certificates(ca_bundle).pop();
    !(fresh && newest_ca.is_some_and(|ca| verifies(&pair.cert, &ca, dns_name, now)))
}

/// Whether the leaf certificate of `cert_pem` verifies for `dns_name` at `now` (seconds since
/// the epoch) against the CA `ca_pem` alone.
fn verifies(cert_pem: &str, ca_pem: &str, dns_name: &str, now: i64) -> bool {
    let (Ok(ca), Ok(leaf), Ok(name)) = (
        CertificateDer::from_pem_slice(ca_pem.as_bytes()),
        CertificateDer::from_pem_slice(cert_pem.as_bytes()),
        ServerName::try_from(dns_name.to_owned()),
    ) else {
        return false;
    };
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(ca).is_err() {
        return false;
    }
    let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build() else {
        return false;
    };
    let at = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0)));
    verifier
        .verify_server_cert(&leaf, &[], &name, &[], at)
        .is_ok()
}
/// The serving certificate, replaceable while serving: connections made after
/// [`CertStore::set`] get the new certificate. Until one is set, handshakes fail (servers wait
/// for [`CertStore::loaded`] before accepting connections).
#[derive(Debug, Default)]
pub struct CertStore {
    current: RwLock<Option<(PemPair, Arc<CertifiedKey>)>>,
    set: tokio::sync::Notify,
}

impl CertStore {
    /// Serves `pair` from now on (a no-op when it is the one served already).
    pub fn set(&self, pair: &PemPair) -> Result<(), TlsError> {
        if self.current().as_ref() == Some(pair) {
            return Ok(());
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pair.cert.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|error| TlsError::Pem(error.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes())
            .map_err(|error| TlsError::Pem(error.to_string()))?;
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)?;
        let certified = Arc::new(CertifiedKey::new(chain, signing_key));
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = Some((pair.clone(), certified));
        drop(current);
        self.set.notify_waiters();
        Ok(())
    }

    /// Resolves once a certificate is served.
    pub async fn loaded(&self) {
        loop {
            // Created before the check, so that a `set` in between is not missed.
            let notified = self.set.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    /// The certificate served, if any.
    pub fn current(&self) -> Option<PemPair> {
        let current = match self.current.read() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        current.as_ref().map(|(pair, _)| pair.clone())
    }

    /// Whether a certificate is being served.
    pub fn is_set(&self) -> bool {
        self.current().is_some()
    }
}

/// Resolves every handshake to the [`CertStore`]'s current certificate.
#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = match self.0.current.read() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        current.as_ref().map(|(_, key)| Arc::clone(key))
    }
}

/// A rustls server configuration (ring provider, ALPN h2 and http/1.1) serving the store's
/// certificate.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Resolver(store)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn issues_a_chain_that_verifies() {
        let day = Duration::from_secs(86_400);
        let ca = generate_ca(day * 365).unwrap();
        let names = vec!["kyverno-svc.kyverno.svc".to_owned()];
        let serving = issue(&ca, &names, day * 150).unwrap();
        let expires = not_after(&serving.cert).unwrap();
        let now = chrono::Utc::now().timestamp();
        assert!((expires - now - 150 * 86_400).abs() < 60);
        // The serving certificate verifies against the CA, for its name.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_slice(serving.cert.as_bytes()).unwrap();
        let name = rustls::pki_types::ServerName::try_from("kyverno-svc.kyverno.svc").unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], rustls::pki_types::UnixTime::now())
            .unwrap();
    }

    const NAME: &str = "kyverno-svc.kyverno.svc";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn a_ca_is_created_kept_then_rotated_with_the_old_one_kept_until_it_expires() {
        let hour = Duration::from_secs(3600);
        let first = renew_ca(None, now(), hour, hour * 10).unwrap().unwrap();
        assert_eq!(split_certificates(&first.cert).len(), 1);
        // Fresh: kept as it is.
        assert_eq!(
            renew_ca(Some(&first), now(), hour, hour * 10).unwrap(),
            None
        );
        // Within the renewal margin (9.5 hours later): a new CA (made now, for 20 hours) is
        // appended, its key replaces the old one.
        let later = now() + 9 * 3600 + 1800;
        let rotated = renew_ca(Some(&first), later, hour, hour * 20)
            .unwrap()
            .unwrap();
        let bundle = split_certificates(&rotated.cert);
        assert_eq!(bundle.len(), 2);
        assert_eq!(bundle[0], first.cert);
        assert_ne!(rotated.key, first.key);
        // Once the old CA has expired it leaves the bundle; the new one stays with its key.
        let pruned = renew_ca(Some(&rotated), now() + 10 * 3600 + 60, hour, hour * 20)
            .unwrap()
            .unwrap();
        assert_eq!(split_certificates(&pruned.cert), vec![bundle[1].clone()]);
        assert_eq!(pruned.key, rotated.key);
    }

    #[test]
    fn a_serving_certificate_is_renewed_near_expiry_or_when_its_ca_is_retired() {
        let hour = Duration::from_secs(3600);
        let ca = generate_ca(hour * 100).unwrap();
        let names = vec![NAME.to_owned()];
        let pair = issue(&ca, &names, hour * 10).unwrap();
        assert!(serving_needs_renewal(None, &ca.cert, NAME, now(), hour));
        assert!(!serving_needs_renewal(
            Some(&pair),
            &ca.cert,
            NAME,
            now(),
            hour
        ));
        assert!(serving_needs_renewal(
            Some(&pair),
            &ca.cert,
            NAME,
            now() + 9 * 3600 + 1800,
            hour
        ));
        assert!(serving_needs_renewal(
            Some(&pair),
            &ca.cert,
            "other.svc",
            now(),
            hour
        ));
        // A new CA appended to the bundle: the pair signed by the old one is issued again.
        let rotated = renew_ca(Some(&ca), now() + 99 * 3600 + 1800, hour, hour * 100)
            .unwrap()
            .unwrap();
        assert!(serving_needs_renewal(
            Some(&pair),
            &rotated.cert,
            NAME,
            now(),
            hour
        ));
        let reissued = issue(&rotated, &names, hour * 10).unwrap();
        assert!(!serving_needs_renewal(
            Some(&reissued),
            &rotated.cert,
            NAME,
            now(),
            hour
        ));
    }

    #[tokio::test]
    async fn waiting_for_the_certificate_ends_when_one_is_set() {
        let store = Arc::new(CertStore::default());
        let waiting = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.loaded().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        let ca = generate_ca(Duration::from_secs(3600)).unwrap();
        store
            .set(&issue(&ca, &["a".to_owned()], Duration::from_secs(3600)).unwrap())
            .unwrap();
        waiting.await.unwrap();
        // Once set, it resolves at once.
        store.loaded().await;
    }

    #[test]
    fn the_store_swaps_certificates() {
        let ca = generate_ca(Duration::from_secs(3600)).unwrap();
        let store = Arc::new(CertStore::default());
        assert!(!store.is_set());
        let first = issue(&ca, &["a".to_owned()], Duration::from_secs(3600)).unwrap();
        store.set(&first).unwrap();
        assert_eq!(store.current(), Some(first));
        let second = issue(&ca, &["a".to_owned()], Duration::from_secs(3600)).unwrap();
        store.set(&second).unwrap();
        assert_eq!(store.current(), Some(second));
        assert!(
            store
                .set(&PemPair {
                    cert: "x".into(),
                    key: "y".into()
                })
                .is_err()
        );
        server_config(store).unwrap();
    }
}
