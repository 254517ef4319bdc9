//! The certificates of a controller's webhook kept in Secrets, as upstream names and fills them:
//! the leader creates and renews the CA and the serving certificate ([`ensure_ca`],
//! [`ensure_serving_certificate`]); every replica serves the serving certificate, reloaded when
//! its Secret changes ([`watch_serving_certificate`]).
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};

use crate::tls::{self, CertStore, PemPair, TlsError};

/// The field manager of the Secrets' writes.
const FIELD_MANAGER: &str = "kyverno";

/// Why the certificates cannot be kept (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The API server refused or failed a request.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A certificate could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Where the certificates live and how long they last.
#[derive(Clone, Debug)]
pub struct CertificateSettings {
    /// Namespace of the Secrets and of the Service.
    pub namespace: String,
    /// The Service in front of the webhook server.
    pub service_name: String,
    /// The Service's port.
    pub service_port: i32,
    /// Lifetime of a new CA.
    pub ca_lifetime: Duration,
    /// Lifetime of a new serving certificate.
    pub cert_lifetime: Duration,
    /// A certificate expiring within this time is renewed.
    pub renew_before: Duration,
    /// How often the leader looks at the certificates (at most every minute).
    pub check_period: Duration,
}

impl CertificateSettings {
    /// `<service>.<namespace>.svc.kyverno-tls-ca`, as upstream names it.
    pub fn ca_secret(&self) -> String {
        format!(
            "{}.{}.svc.kyverno-tls-ca",
            self.service_name, self.namespace
        )
    }

    /// `<service>.<namespace>.svc.kyverno-tls-pair`, as upstream names it.
    pub fn pair_secret(&self) -> String {
        format!(
            "{}.{}.svc.kyverno-tls-pair",
            self.service_name, self.namespace
        )
    }

    fn dns_names(&self) -> Vec<String> {
        let (service, namespace) = (&self.service_name, &self.namespace);
        vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}"),
            service.clone(),
        ]
    }
}

fn pem_pair(secret: &Secret) -> Option<PemPair> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| String::from_utf8(data.get(key)?.0.clone()).ok();
    Some(PemPair {
        cert: text("tls.crt")?,
        key: text("tls.key")?,
    })
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

async fn write_secret(api: &Api<Secret>, name: &str, pair: &PemPair) -> Result<(), kube::Error> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            [
                (
                    "tls.crt".to_owned(),
                    ByteString(pair.cert.clone().into_bytes()),
                ),
                (
                    "tls.key".to_owned(),
                    ByteString(pair.key.clone().into_bytes()),
                ),
            ]
            .into(),
        ),
        ..Secret::default()
    };
    let mut value = serde_json::to_value(&secret).map_err(kube::Error::SerdeError)?;
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(value),
    )
    .await?;
    Ok(())
}

/// Makes sure the CA Secret holds a CA valid for a while, creating or renewing it (see
/// [`tls::renew_ca`]: during a rotation its `tls.crt` holds the old and the new CA). Returns
/// it: the CAs to trust and the newest one's key.
pub async fn ensure_ca(
    client: &Client,
    settings: &CertificateSettings,
) -> Result<PemPair, CertificateError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let name = settings.ca_secret();
    let current = api.get_opt(&name).await?.as_ref().and_then(pem_pair);
    let renewed = tls::renew_ca(
        current.as_ref(),
        now_seconds(),
        settings.renew_before,
        settings.ca_lifetime,
    )?;
    match (renewed, current) {
        (Some(renewed), _) => {
            write_secret(&api, &name, &renewed).await?;
            tracing::info!(
                secret = %name,
                certificates = tls::split_certificates(&renewed.cert).len(),
                "CA certificates renewed"
            );
            Ok(renewed)
        }
        (None, Some(current)) => Ok(current),
        (None, None) => Err(CertificateError::Tls(TlsError::Pem(
            "no CA and none generated".to_owned(),
        ))),
    }
}

/// Makes sure the serving certificate Secret holds a certificate signed by the newest CA of
/// `ca` and valid for a while, issuing a new one otherwise. Run after the webhook
/// configurations trust `ca`'s certificates, so that the API server accepts the new one as
/// soon as replicas serve it.
pub async fn ensure_serving_certificate(
    client: &Client,
    settings: &CertificateSettings,
    ca: &PemPair,
) -> Result<(), CertificateError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let name = settings.pair_secret();
    let pair = api.get_opt(&name).await?.as_ref().and_then(pem_pair);
    let dns_names = settings.dns_names();
    let renew = tls::serving_needs_renewal(
        pair.as_ref(),
        &ca.cert,
        dns_names.first().map_or("", String::as_str),
        now_seconds(),
        settings.renew_before,
    );
    if renew {
        let pair = tls::issue(ca, &dns_names, settings.cert_lifetime)?;
        write_secret(&api, &name, &pair).await?;
        tracing::info!(secret = %name, "serving certificate issued");
    }
    Ok(())
}

/// Serves the certificate of the pair Secret, reloading it whenever the Secret changes (every
/// replica runs this; none needs the Lease).
pub async fn watch_serving_certificate(
    client: Client,
    settings: CertificateSettings,
    store: Arc<CertStore>,
) {
    let api: Api<Secret> = Api::namespaced(client, &settings.namespace);
    let by_name =
        watcher::Config::default().fields(&format!("metadata.name={}", settings.pair_secret()));
    let mut events = pin!(watcher(api, by_name).default_backoff());
    let load = |secret: &Secret| match pem_pair(secret).map(|pair| store.set(&pair)) {
        Some(Ok(())) => {}
        Some(Err(error)) => tracing::warn!(%error, "serving certificate not loaded"),
        None => tracing::warn!("the serving certificate Secret has no tls.crt/tls.key"),
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(secret) | Event::InitApply(secret)) => load(&secret),
            Ok(Event::Delete(_) | Event::Init | Event::InitDone) => {}
            Err(error) => {
                tracing::warn!(%error, "watch of the serving certificate failed; retrying")
            }
        }
    }
}
