//! Upstream's cleanup metrics: `kyverno_cleanup_controller_deletedobjects_total` and
//! `kyverno_cleanup_controller_errors_total` for policies, `kyverno_ttl_controller_*` for the
//! `cleanup.kyverno.io/ttl` label.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The labels of a deletion (or failed deletion) by a policy.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// The policy's kind, e.g. `ClusterCleanupPolicy`.
    pub policy_type: String,
    /// The policy's namespace, empty for cluster-wide kinds.
    pub policy_namespace: String,
    /// The policy's name.
    pub policy_name: String,
    /// The deleted resource's kind.
    pub resource_kind: String,
    /// The deleted resource's namespace.
    pub resource_namespace: String,
}

/// The labels of a deletion (or failed deletion) by the TTL label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TtlLabels {
    /// The resource's API group.
    pub resource_group: String,
    /// The resource's API version.
    pub resource_version: String,
    /// The resource (plural name).
    pub resource_resource: String,
    /// The resource's namespace.
    pub resource_namespace: String,
}

/// The controller's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Resources deleted by policies.
    pub deleted_objects: Family<PolicyLabels, Counter>,
    /// Deletions by policies that failed.
    pub errors: Family<PolicyLabels, Counter>,
    /// Resources deleted because their TTL passed.
    pub ttl_deleted_objects: Family<TtlLabels, Counter>,
    /// TTL deletions that failed.
    pub ttl_errors: Family<TtlLabels, Counter>,
}

impl Metrics {
    /// Registers every counter in `registry` under upstream's names.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "kyverno_cleanup_controller_deletedobjects",
            "can be used to track number of deleted objects.",
            self.deleted_objects.clone(),
        );
        registry.register(
            "kyverno_cleanup_controller_errors",
            "can be used to track number of cleanup failures.",
            self.errors.clone(),
        );
        registry.register(
            "kyverno_ttl_controller_deletedobjects",
            "can be used to track number of deleted objects by the ttl resource controller.",
            self.ttl_deleted_objects.clone(),
        );
        registry.register(
            "kyverno_ttl_controller_errors",
            "can be used to track number of errors encountered by the ttl resource controller.",
            self.ttl_errors.clone(),
        );
    }
}
