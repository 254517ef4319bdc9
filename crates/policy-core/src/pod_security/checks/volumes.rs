//! Pod-level checks: volume types and sysctls.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Violation, join_quote, pluralize};
use crate::pod_security::field::{BadValue, FieldError};
use crate::pod_security::pod::{PodView, set, string_field};

/// The pod's volumes with their positions.
fn volumes<'a>(pod: &PodView<'a>) -> impl Iterator<Item = (usize, &'a Value)> {
    pod.spec_field("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// `hostPathVolumes`: no volume may be a `hostPath`.
pub(super) fn host_path_volumes(pod: &PodView<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for (index, volume) in volumes(pod) {
        if let Some(host_path) = set(volume.get("hostPath")) {
            names.push(string_field(volume, "name"));
            errors.push(FieldError::forbidden(
                format!("spec.volumes[{index}].hostPath"),
                BadValue::text(string_field(host_path, "path")),
            ));
        }
    }
    (!names.is_empty()).then(|| Violation {
        reason: "hostPath volumes".to_owned(),
        detail: format!(
            "{} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(names.iter().copied())
        ),
        errors,
    })
}

/// The volume sources the restricted level allows.
const ALLOWED_VOLUME_SOURCES: [&str; 9] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The volume sources the restricted level forbids, in the order upstream names them.
const RESTRICTED_VOLUME_SOURCES: [&str; 21] = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
];

/// `restrictedVolumes`: every volume must use one of the allowed sources; a volume with no known
/// source counts as type `unknown`.
pub(super) fn restricted_volumes(pod: &PodView<'_>) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types = BTreeSet::new();
    let mut errors = Vec::new();
    for (index, volume) in volumes(pod) {
        let has = |source: &&str| set(volume.get(*source)).is_some();
        if ALLOWED_VOLUME_SOURCES.iter().any(has) {
            continue;
        }
        let source = RESTRICTED_VOLUME_SOURCES
            .into_iter()
            .find(has)
            .unwrap_or("unknown");
        names.push(string_field(volume, "name"));
        types.insert(source);
        errors.push(FieldError::forbidden(
            format!("spec.volumes[{index}].{source}"),
            BadValue::Empty,
        ));
    }
    (!names.is_empty()).then(|| Violation {
        reason: "restricted volume types".to_owned(),
        detail: format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(names.iter().copied()),
            pluralize("uses", "use", names.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(types.iter().copied()),
        ),
        errors,
    })
}

/// The safe sysctls with the policy version (`v1.<minor>`) that first allows each.
const SAFE_SYSCTLS: [(&str, u32); 12] = [
    ("kernel.shm_rmid_forced", 0),
    ("net.ipv4.ip_local_port_range", 0),
    ("net.ipv4.tcp_syncookies", 0),
    ("net.ipv4.ping_group_range", 0),
    ("net.ipv4.ip_unprivileged_port_start", 0),
    ("net.ipv4.ip_local_reserved_ports", 27),
    ("net.ipv4.tcp_keepalive_time", 29),
    ("net.ipv4.tcp_fin_timeout", 29),
    ("net.ipv4.tcp_keepalive_intvl", 29),
    ("net.ipv4.tcp_keepalive_probes", 29),
    ("net.ipv4.tcp_rmem", 32),
    ("net.ipv4.tcp_wmem", 32),
];

/// `sysctls`, as revised for `v1.<minor>`: only the sysctls safe at that version may be set.
pub(super) fn sysctls(pod: &PodView<'_>, minor: u32) -> Option<Violation> {
    let allowed = |name: &str| {
        SAFE_SYSCTLS
            .iter()
            .any(|(safe, since)| *safe == name && *since <= minor)
    };
    let sysctls = pod
        .security_field("sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let mut names = Vec::new();
    let mut errors = Vec::new();
    for (index, sysctl) in sysctls.enumerate() {
        let name = string_field(sysctl, "name");
        if !allowed(name) {
            names.push(name);
            errors.push(FieldError::forbidden(
                format!("spec.securityContext.sysctls[{index}].name"),
                BadValue::text(name),
            ));
        }
    }
    (!names.is_empty()).then(|| Violation {
        reason: "forbidden sysctls".to_owned(),
        detail: names.join(", "),
        errors,
    })
}
