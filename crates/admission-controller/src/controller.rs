//! The cluster-wide duties of the replica holding the Lease (certificates in Secrets, webhook
//! configurations in step with the policies) and the one of every replica (serving the
//! certificate the Secret holds, reloaded when it changes).
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::discovery::Discovery;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use kyverno_runtime::watch::Stores;
use tokio::sync::watch;

use crate::tls::{self, CertStore, PemPair, TlsError};
use crate::webhooks::{self, ServedResource, ServiceTarget};

/// The field manager of every write.
const FIELD_MANAGER: &str = "kyverno";

/// How often the leader looks again at certificates and served resources without a change.
const RESYNC_PERIOD: Duration = Duration::from_secs(60);

/// How long changes are gathered before the webhook configurations are written.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Why a duty of the leader failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
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
) -> Result<PemPair, ControllerError> {
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
        (None, None) => Err(ControllerError::Tls(TlsError::Pem(
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
) -> Result<(), ControllerError> {
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

/// Every resource the API server serves, from discovery.
pub async fn served_resources(client: &Client) -> Result<Vec<ServedResource>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut served = Vec::new();
    for group in discovery.groups() {
        let preferred = group.preferred_version_or_latest().to_owned();
        for version in group.versions() {
            for (resource, capabilities) in group.versioned_resources(version) {
                served.push(ServedResource {
                    group: resource.group.clone(),
                    version: resource.version.clone(),
                    kind: resource.kind.clone(),
                    plural: resource.plural.clone(),
                    subresources: capabilities
                        .subresources
                        .iter()
                        .map(|(sub, _)| sub.plural.clone())
                        .collect(),
                    preferred: version == preferred,
                });
            }
        }
    }
    Ok(served)
}

/// Server-side applies a webhook configuration of `kind`.
async fn apply_configuration<K>(
    client: &Client,
    kind: &str,
    configuration: &K,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = ()>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = configuration.meta().name.clone().unwrap_or_default();
    let mut value = serde_json::to_value(configuration).map_err(kube::Error::SerdeError)?;
    value["apiVersion"] = "admissionregistration.k8s.io/v1".into();
    value["kind"] = kind.into();
    Api::<K>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(value),
        )
        .await?;
    Ok(())
}

/// Writes the webhook configurations for the current policies and configuration: those of
/// Kyverno's own resources first, then the resource ones (written last, so that they come
/// right before the serving certificate on a first start).
pub async fn apply_webhook_configurations(
    client: &Client,
    stores: &Stores,
    resources: &[ServedResource],
    target: &ServiceTarget,
) -> Result<(), kube::Error> {
    let snapshot = stores.cache.snapshot();
    let config = stores.config.get();
    const VALIDATING: &str = "ValidatingWebhookConfiguration";
    const MUTATING: &str = "MutatingWebhookConfiguration";
    for configuration in [
        webhooks::policy_validating_configuration(target),
        webhooks::exception_validating_configuration(target),
    ] {
        apply_configuration(client, VALIDATING, &configuration).await?;
    }
    let policy_mutating = webhooks::policy_mutating_configuration(target);
    apply_configuration(client, MUTATING, &policy_mutating).await?;
    let validating = webhooks::validating_configuration(&snapshot, &config, resources, target);
    apply_configuration(client, VALIDATING, &validating).await?;
    let mutating = webhooks::mutating_configuration(&snapshot, &config, resources, target);
    apply_configuration(client, MUTATING, &mutating).await
}

/// Runs the leader's duties while `leading` says this replica leads: the CA first, then the
/// webhook configurations trusting it, then the serving certificate; all written again
/// whenever the policies or the configuration change and every `check_period` (served
/// resources are discovered again every minute). Failures are logged and retried.
pub async fn run_leader_duties(
    client: Client,
    stores: Stores,
    settings: CertificateSettings,
    mut leading: watch::Receiver<bool>,
) {
    let mut policies = stores.cache.subscribe();
    let mut config = stores.config.subscribe();
    let mut resources: Option<(Instant, Vec<ServedResource>)> = None;
    loop {
        if !*leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                return;
            }
            continue;
        }
        // What changes from here on triggers the next round.
        policies.borrow_and_update();
        config.borrow_and_update();
        let outcome = lead_once(&client, &stores, &settings, &mut resources).await;
        if let Err(error) = &outcome {
            tracing::warn!(%error, "leader duties failed; retrying");
        }
        let wait = if outcome.is_ok() {
            settings.check_period.min(RESYNC_PERIOD)
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { return },
            changed = policies.changed() => if changed.is_err() { return },
            changed = config.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {},
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}

async fn lead_once(
    client: &Client,
    stores: &Stores,
    settings: &CertificateSettings,
    resources: &mut Option<(Instant, Vec<ServedResource>)>,
) -> Result<(), ControllerError> {
    let ca = ensure_ca(client, settings).await?;
    let fresh = match resources.take() {
        Some((at, served)) if at.elapsed() < RESYNC_PERIOD => (at, served),
        _ => (Instant::now(), served_resources(client).await?),
    };
    let target = ServiceTarget {
        namespace: settings.namespace.clone(),
        name: settings.service_name.clone(),
        port: settings.service_port,
        ca_bundle: ca.cert.clone(),
    };
    let outcome = apply_webhook_configurations(client, stores, &fresh.1, &target).await;
    *resources = Some(fresh);
    outcome?;
    ensure_serving_certificate(client, settings, &ca).await
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
