//! Reading the reports the controllers write: a namespace's aggregated PolicyReport and the
//! ephemeral reports still waiting to be aggregated.

use kube::Api;
use kyverno_api::policy_report::v1alpha2::PolicyReport;
use kyverno_api::reports::v1::EphemeralReport;

/// The aggregated PolicyReport of namespace `ns` (`polr-ns-<ns>`), if there is one.
pub async fn namespace_report(client: &kube::Client, ns: &str) -> Option<PolicyReport> {
    Api::<PolicyReport>::namespaced(client.clone(), ns)
        .get_opt(&format!("polr-ns-{ns}"))
        .await
        .unwrap()
}

/// The ephemeral reports of namespace `ns`.
pub async fn ephemeral_reports(client: &kube::Client, ns: &str) -> Vec<EphemeralReport> {
    Api::<EphemeralReport>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
}
