//! The cluster-wide duties of the replica holding the Lease: the certificates in Secrets (kept
//! with [`kyverno_runtime::certificates`]) and the webhook configurations in step with the
//! policies.
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::discovery::Discovery;
use kyverno_runtime::certificates::{
    CertificateError, CertificateSettings, ensure_ca, ensure_serving_certificate,
};
use kyverno_runtime::tls::{self, PemPair};
use kyverno_runtime::watch::Stores;
use tokio::sync::watch;

use crate::webhooks::{self, ServedResource, ServiceTarget};

/// The field manager of the webhook configurations' writes.
const FIELD_MANAGER: &str = "kyverno";

/// How often the leader looks again at certificates and served resources without a change.
const RESYNC_PERIOD: Duration = Duration::from_secs(60);

/// How long changes are gathered before the webhook configurations are written.
const DEBOUNCE: Duration = Duration::from_millis(100);

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
    let defaults = stores.cache.webhook_defaults();
    const VALIDATING: &str = "ValidatingWebhookConfiguration";
    const MUTATING: &str = "MutatingWebhookConfiguration";
    for configuration in [
        webhooks::policy_validating_configuration(target, &defaults),
        webhooks::exception_validating_configuration(target, &defaults),
    ] {
        apply_configuration(client, VALIDATING, &configuration).await?;
    }
    let policy_mutating = webhooks::policy_mutating_configuration(target, &defaults);
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
) -> Result<(), CertificateError> {
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
    // A serving certificate signed by a CA the webhooks already trust (or before there are any
    // webhooks, on a first start) is written first, so that no webhook sends requests to
    // replicas before they have a certificate; one signed by a new CA waits until the webhooks
    // trust it.
    if webhooks_trust_newest_ca(client, &ca).await? {
        ensure_serving_certificate(client, settings, &ca).await?;
    }
    let outcome = apply_webhook_configurations(client, stores, &fresh.1, &target).await;
    *resources = Some(fresh);
    outcome?;
    ensure_serving_certificate(client, settings, &ca).await
}

/// Whether the resource validating webhooks trust the newest CA of `ca` (true when there are
/// none yet).
async fn webhooks_trust_newest_ca(client: &Client, ca: &PemPair) -> Result<bool, kube::Error> {
    let Some(newest) = tls::split_certificates(&ca.cert).pop() else {
        return Ok(false);
    };
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let Some(configuration) = api.get_opt(webhooks::VALIDATING_CONFIGURATION).await? else {
        return Ok(true);
    };
    Ok(configuration.webhooks.iter().flatten().all(|webhook| {
        webhook
            .client_config
            .ca_bundle
            .as_ref()
            .is_some_and(|bundle| String::from_utf8_lossy(&bundle.0).contains(newest.trim()))
    }))
}
