//! Patch metadata of the built-in Kubernetes types: which lists a strategic merge patch merges
//! element by element, and on which keys.
//!
//! Upstream Kyverno applies `patchStrategicMerge` with kustomize's kyaml merge, which reads the
//! `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key` and
//! `x-kubernetes-list-map-keys` extensions of the OpenAPI schema compiled into kyaml
//! (Kubernetes v1.21). This table holds the same facts, restricted to the paths that lead to a
//! merged list; every other list of a patch replaces the resource's list. Resources whose
//! `apiVersion`/`kind` is not a built-in type (custom resources) have no schema: all their lists
//! are replaced, as upstream.

/// The merge metadata of one node of a built-in type.
#[derive(Clone, Copy, Debug)]
pub(super) enum Schema {
    /// An object whose fields may carry merge metadata.
    Object(&'static TypeSchema),
    /// A list with `patchStrategy: merge`: elements are matched on `keys` (all must agree), or
    /// by value when `keys` is empty (lists of scalars such as `finalizers`).
    MergeList {
        /// The merge keys (`x-kubernetes-list-map-keys`, else the patch merge key).
        keys: &'static [&'static str],
        /// The element type, when its own fields carry merge metadata.
        element: Option<&'static TypeSchema>,
    },
}

/// The fields of an object type that carry merge metadata (directly or further down).
#[derive(Debug)]
pub(super) struct TypeSchema {
    fields: &'static [(&'static str, Schema)],
}

impl TypeSchema {
    /// The metadata of field `name`, if it has any.
    pub(super) fn field(&'static self, name: &str) -> Option<Schema> {
        self.fields
            .iter()
            .find_map(|(field, schema)| (*field == name).then_some(*schema))
    }
}

const fn object(schema: &'static TypeSchema) -> Schema {
    Schema::Object(schema)
}

const fn keyed(keys: &'static [&'static str]) -> Schema {
    Schema::MergeList {
        keys,
        element: None,
    }
}

const fn keyed_of(keys: &'static [&'static str], element: &'static TypeSchema) -> Schema {
    Schema::MergeList {
        keys,
        element: Some(element),
    }
}

static OBJECT_META: TypeSchema = TypeSchema {
    fields: &[
        ("finalizers", keyed(&[])),
        ("ownerReferences", keyed(&["uid"])),
    ],
};

static META_ONLY: TypeSchema = TypeSchema {
    fields: &[("metadata", object(&OBJECT_META))],
};

static CONDITIONS: TypeSchema = TypeSchema {
    fields: &[("conditions", keyed(&["type"]))],
};

static WITH_STATUS_CONDITIONS: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("status", object(&CONDITIONS)),
    ],
};

static CONTAINER: TypeSchema = TypeSchema {
    fields: &[
        ("env", keyed(&["name"])),
        ("ports", keyed(&["containerPort", "protocol"])),
        ("volumeDevices", keyed(&["devicePath"])),
        ("volumeMounts", keyed(&["mountPath"])),
    ],
};

static EPHEMERAL_CONTAINER: TypeSchema = TypeSchema {
    fields: &[
        ("env", keyed(&["name"])),
        ("volumeDevices", keyed(&["devicePath"])),
        ("volumeMounts", keyed(&["mountPath"])),
    ],
};

static PVC_TEMPLATE: TypeSchema = TypeSchema {
    fields: &[("metadata", object(&OBJECT_META))],
};

static EPHEMERAL_VOLUME: TypeSchema = TypeSchema {
    fields: &[("volumeClaimTemplate", object(&PVC_TEMPLATE))],
};

static VOLUME: TypeSchema = TypeSchema {
    fields: &[("ephemeral", object(&EPHEMERAL_VOLUME))],
};

static POD_SPEC: TypeSchema = TypeSchema {
    fields: &[
        ("containers", keyed_of(&["name"], &CONTAINER)),
        (
            "ephemeralContainers",
            keyed_of(&["name"], &EPHEMERAL_CONTAINER),
        ),
        ("hostAliases", keyed(&["ip"])),
        ("imagePullSecrets", keyed(&["name"])),
        ("initContainers", keyed_of(&["name"], &CONTAINER)),
        (
            "topologySpreadConstraints",
            keyed(&["topologyKey", "whenUnsatisfiable"]),
        ),
        ("volumes", keyed_of(&["name"], &VOLUME)),
    ],
};

static POD_TEMPLATE_SPEC: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&POD_SPEC)),
    ],
};

static POD_STATUS: TypeSchema = TypeSchema {
    fields: &[("conditions", keyed(&["type"])), ("podIPs", keyed(&["ip"]))],
};

static POD: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&POD_SPEC)),
        ("status", object(&POD_STATUS)),
    ],
};

static POD_TEMPLATE: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("template", object(&POD_TEMPLATE_SPEC)),
    ],
};

static TEMPLATED_SPEC: TypeSchema = TypeSchema {
    fields: &[("template", object(&POD_TEMPLATE_SPEC))],
};

/// Deployment, ReplicaSet, StatefulSet, DaemonSet, ReplicationController and Job.
static WORKLOAD: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&TEMPLATED_SPEC)),
        ("status", object(&CONDITIONS)),
    ],
};

static JOB_TEMPLATE: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&TEMPLATED_SPEC)),
    ],
};

static CRON_JOB_SPEC: TypeSchema = TypeSchema {
    fields: &[("jobTemplate", object(&JOB_TEMPLATE))],
};

static CRON_JOB: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&CRON_JOB_SPEC)),
    ],
};

static SERVICE_SPEC: TypeSchema = TypeSchema {
    fields: &[("ports", keyed(&["port", "protocol"]))],
};

static SERVICE: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&SERVICE_SPEC)),
        ("status", object(&CONDITIONS)),
    ],
};

static SERVICE_ACCOUNT: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("secrets", keyed(&["name"])),
    ],
};

static NODE_SPEC: TypeSchema = TypeSchema {
    fields: &[("podCIDRs", keyed(&[]))],
};

static NODE_STATUS: TypeSchema = TypeSchema {
    fields: &[
        ("addresses", keyed(&["type"])),
        ("conditions", keyed(&["type"])),
    ],
};

static NODE: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&NODE_SPEC)),
        ("status", object(&NODE_STATUS)),
    ],
};

static COMPONENT_STATUS: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("conditions", keyed(&["type"])),
    ],
};

static WEBHOOK_CONFIGURATION: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("webhooks", keyed(&["name"])),
    ],
};

static CSI_NODE_SPEC: TypeSchema = TypeSchema {
    fields: &[("drivers", keyed(&["name"]))],
};

static CSI_NODE: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&CSI_NODE_SPEC)),
    ],
};

/// The schema of a built-in resource type, `None` for custom resources (and for built-in
/// types without any merge metadata, such as lists).
pub(super) fn schema_for_kind(api_version: &str, kind: &str) -> Option<&'static TypeSchema> {
    let schema = match (api_version, kind) {
        ("v1", "Pod") => &POD,
        ("v1", "PodTemplate") => &POD_TEMPLATE,
        ("v1", "ReplicationController")
        | ("apps/v1", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch/v1", "Job") => &WORKLOAD,
        ("batch/v1" | "batch/v1beta1", "CronJob") => &CRON_JOB,
        ("v1", "Service") => &SERVICE,
        ("v1", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("v1", "Node") => &NODE,
        ("v1", "ComponentStatus") => &COMPONENT_STATUS,
        ("v1", "Namespace" | "PersistentVolumeClaim")
        | ("policy/v1" | "policy/v1beta1", "PodDisruptionBudget")
        | ("apiregistration.k8s.io/v1" | "apiregistration.k8s.io/v1beta1", "APIService") => {
            &WITH_STATUS_CONDITIONS
        }
        (
            "admissionregistration.k8s.io/v1" | "admissionregistration.k8s.io/v1beta1",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => &WEBHOOK_CONFIGURATION,
        ("storage.k8s.io/v1" | "storage.k8s.io/v1beta1", "CSINode") => &CSI_NODE,
        (
            "v1",
            "Binding" | "ConfigMap" | "Endpoints" | "Event" | "LimitRange" | "PersistentVolume"
            | "ResourceQuota" | "Secret",
        )
        | ("apps/v1", "ControllerRevision")
        | (
            "apiextensions.k8s.io/v1" | "apiextensions.k8s.io/v1beta1",
            "CustomResourceDefinition",
        )
        | ("authentication.k8s.io/v1", "TokenRequest" | "TokenReview")
        | ("authentication.k8s.io/v1beta1", "TokenReview")
        | (
            "authorization.k8s.io/v1" | "authorization.k8s.io/v1beta1",
            "LocalSubjectAccessReview"
            | "SelfSubjectAccessReview"
            | "SelfSubjectRulesReview"
            | "SubjectAccessReview",
        )
        | ("autoscaling/v1", "HorizontalPodAutoscaler" | "Scale")
        | ("autoscaling/v2beta1" | "autoscaling/v2beta2", "HorizontalPodAutoscaler")
        | ("certificates.k8s.io/v1" | "certificates.k8s.io/v1beta1", "CertificateSigningRequest")
        | ("coordination.k8s.io/v1" | "coordination.k8s.io/v1beta1", "Lease")
        | ("discovery.k8s.io/v1" | "discovery.k8s.io/v1beta1", "EndpointSlice")
        | ("events.k8s.io/v1" | "events.k8s.io/v1beta1", "Event")
        | ("extensions/v1beta1", "Ingress")
        | ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema" | "PriorityLevelConfiguration")
        | ("networking.k8s.io/v1", "Ingress" | "IngressClass" | "NetworkPolicy")
        | ("networking.k8s.io/v1beta1", "Ingress" | "IngressClass")
        | ("node.k8s.io/v1" | "node.k8s.io/v1beta1", "RuntimeClass")
        | ("policy/v1beta1", "Eviction" | "PodSecurityPolicy")
        | (
            "rbac.authorization.k8s.io/v1" | "rbac.authorization.k8s.io/v1beta1",
            "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding",
        )
        | ("scheduling.k8s.io/v1" | "scheduling.k8s.io/v1beta1", "PriorityClass")
        | ("storage.k8s.io/v1", "CSIDriver" | "StorageClass" | "VolumeAttachment")
        | (
            "storage.k8s.io/v1beta1",
            "CSIDriver" | "CSIStorageCapacity" | "StorageClass" | "VolumeAttachment",
        ) => &META_ONLY,
        _ => return None,
    };
    Some(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_at(root: &'static TypeSchema, path: &[&str]) -> Option<&'static [&'static str]> {
        let mut schema = Schema::Object(root);
        for segment in path {
            schema = match schema {
                Schema::Object(object) => object.field(segment)?,
                Schema::MergeList {
                    element: Some(element),
                    ..
                } => element.field(segment)?,
                Schema::MergeList { element: None, .. } => return None,
            };
        }
        match schema {
            Schema::MergeList { keys, .. } => Some(keys),
            Schema::Object(_) => None,
        }
    }

    #[test]
    fn pod_template_lists_merge_on_their_kubernetes_keys() {
        let deployment = schema_for_kind("apps/v1", "Deployment");
        let Some(deployment) = deployment else {
            panic!("Deployment is a built-in type");
        };
        let pod_spec = ["spec", "template", "spec"];
        let cases: [(&[&str], Option<&[&str]>); 9] = [
            (&["containers"], Some(&["name"])),
            (&["initContainers"], Some(&["name"])),
            (&["volumes"], Some(&["name"])),
            (&["imagePullSecrets"], Some(&["name"])),
            (&["containers", "env"], Some(&["name"])),
            (&["containers", "volumeMounts"], Some(&["mountPath"])),
            (
                &["containers", "ports"],
                Some(&["containerPort", "protocol"]),
            ),
            (&["tolerations"], None),
            (&["containers", "args"], None),
        ];
        for (suffix, expected) in cases {
            let path: Vec<&str> = pod_spec.iter().chain(suffix).copied().collect();
            assert_eq!(keys_at(deployment, &path), expected, "{path:?}");
        }
    }

    #[test]
    fn cron_job_and_pod_reach_the_same_pod_spec() {
        let cron_job = schema_for_kind("batch/v1", "CronJob");
        let pod = schema_for_kind("v1", "Pod");
        let (Some(cron_job), Some(pod)) = (cron_job, pod) else {
            panic!("CronJob and Pod are built-in types");
        };
        let path = [
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "hostAliases",
        ];
        assert_eq!(keys_at(cron_job, &path), Some(&["ip"][..]));
        assert_eq!(keys_at(pod, &["spec", "hostAliases"]), Some(&["ip"][..]));
        assert_eq!(keys_at(pod, &["metadata", "finalizers"]), Some(&[][..]));
        assert_eq!(
            keys_at(pod, &["metadata", "ownerReferences"]),
            Some(&["uid"][..])
        );
    }

    #[test]
    fn services_merge_ports_on_port_and_protocol() {
        let service = schema_for_kind("v1", "Service");
        let Some(service) = service else {
            panic!("Service is a built-in type");
        };
        assert_eq!(
            keys_at(service, &["spec", "ports"]),
            Some(&["port", "protocol"][..])
        );
    }

    #[test]
    fn custom_resources_have_no_schema() {
        assert!(schema_for_kind("argoproj.io/v1alpha1", "Rollout").is_none());
        assert!(schema_for_kind("apps/v1", "DeploymentList").is_none());
        assert!(schema_for_kind("v1", "ConfigMap").is_some());
    }
}
