//! The leader's upkeep of the webhook: the certificate Secrets (kept by
//! `kyverno_runtime::certificates`, as for the admission controller) and the `kyverno-cleanup-validating-webhook-cfg`
//! ValidatingWebhookConfiguration sending cleanup policies to `/validate` on the controller's
//! Service.
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kyverno_runtime::certificates::{
    CertificateError as ControllerError, CertificateSettings, ensure_ca, ensure_serving_certificate,
};

use crate::scheduler::RETRY_DELAY;
use crate::webhook::VALIDATE_PATH;

/// The configuration's name, as upstream.
pub const CONFIGURATION_NAME: &str = "kyverno-cleanup-validating-webhook-cfg";

/// The field manager of the writes.
const FIELD_MANAGER: &str = "kyverno-cleanup-controller";

/// The configuration for the Service of `settings`, trusting `ca_pem`.
pub fn configuration(
    settings: &CertificateSettings,
    ca_pem: &str,
) -> ValidatingWebhookConfiguration {
    let rule = RuleWithOperations {
        api_groups: Some(vec!["kyverno.io".to_owned()]),
        api_versions: Some(vec!["v2beta1".to_owned(), "v2".to_owned()]),
        operations: Some(vec!["CREATE".to_owned(), "UPDATE".to_owned()]),
        resources: Some(vec![
            "cleanuppolicies".to_owned(),
            "clustercleanuppolicies".to_owned(),
        ]),
        scope: Some("*".to_owned()),
    };
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(CONFIGURATION_NAME.to_owned()),
            labels: Some(
                [(
                    "webhook.kyverno.io/managed-by".to_owned(),
                    "kyverno".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: format!("{}.{}.svc", settings.service_name, settings.namespace),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: WebhookClientConfig {
                ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
                service: Some(ServiceReference {
                    name: settings.service_name.clone(),
                    namespace: settings.namespace.clone(),
                    path: Some(VALIDATE_PATH.to_owned()),
                    port: Some(settings.service_port),
                }),
                url: None,
            },
            failure_policy: Some("Fail".to_owned()),
            side_effects: "None".to_owned(),
            rules: Some(vec![rule]),
            timeout_seconds: Some(10),
            ..ValidatingWebhook::default()
        }]),
    }
}

/// Makes sure the CA is valid, writes the configuration trusting it, then makes sure the
/// serving certificate is signed by it (so that the API server trusts it once served).
pub async fn apply(client: &Client, settings: &CertificateSettings) -> Result<(), ControllerError> {
    let ca = ensure_ca(client, settings).await?;
    let mut value =
        serde_json::to_value(configuration(settings, &ca.cert)).map_err(kube::Error::SerdeError)?;
    value["apiVersion"] = "admissionregistration.k8s.io/v1".into();
    value["kind"] = "ValidatingWebhookConfiguration".into();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .patch(
            CONFIGURATION_NAME,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(value),
        )
        .await?;
    ensure_serving_certificate(client, settings, &ca).await
}

/// Keeps certificates and configuration up to date until dropped.
pub async fn run(client: Client, settings: CertificateSettings) {
    loop {
        let wait = match apply(&client, &settings).await {
            Ok(()) => settings.check_period,
            Err(error) => {
                tracing::warn!(%error, "webhook configuration not written; retrying");
                RETRY_DELAY
            }
        };
        tokio::time::sleep(wait).await;
    }
}
