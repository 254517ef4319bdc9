//! The structural schema apply configurations are merged with: which lists of the built-in
//! Kubernetes types merge element by element (and on which keys), and which lists, maps and
//! structs are atomic.
//!
//! Upstream merges apply configurations with structured-merge-diff, typed by the OpenAPI schema
//! of the object's kind (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`, or a `merge` patch strategy). This table holds the same facts for the
//! commonly mutated built-in kinds, restricted to the nodes that differ from the default of a
//! typed schema: a struct or map merges key by key and a list is atomic. A node not listed
//! under a typed parent has that default.
//!
//! A MutatingAdmissionPolicy is merged with a *deduced* schema instead (upstream's CLI uses
//! `NewDeducedTypeConverter`): maps merge key by key, lists are atomic, and nothing is declared,
//! so no atomic node is reported.

/// The merge metadata of one node of an object.
#[derive(Clone, Copy, Debug)]
pub(super) enum Node {
    /// A node of a deduced schema: maps merge key by key, everything else is replaced; no field
    /// is declared, so atomic nodes below it go unreported.
    Deduced,
    /// A declared node without metadata of its own: maps and structs merge key by key (their
    /// fields are [`Node::Typed`] too), lists are atomic.
    Typed,
    /// A struct whose listed fields carry metadata; the other fields are [`Node::Typed`].
    Fields(&'static [Field]),
    /// A list, map or struct replaced as a whole.
    Atomic,
    /// A list merged element by element: elements are identified by the values of `keys`, or
    /// by their own (scalar) value when `keys` is empty (a set).
    Keyed {
        /// The key fields of the elements.
        keys: &'static [ListKey],
        /// The metadata of the elements.
        element: &'static Node,
    },
}

/// A field of a struct and its metadata.
pub(super) type Field = (&'static str, Node);

/// A key field of an associative list.
#[derive(Clone, Copy, Debug)]
pub(super) struct ListKey {
    /// The field's name.
    pub(super) name: &'static str,
    /// The value an element without the field has (`protocol` defaults to `TCP`).
    pub(super) default: Option<&'static str>,
}

impl Node {
    /// The metadata of the field `name` of a map or struct node.
    pub(super) fn field(&self, name: &str) -> Node {
        match self {
            Node::Deduced => Node::Deduced,
            Node::Fields(fields) => fields
                .iter()
                .find_map(|(field, node)| (*field == name).then_some(*node))
                .unwrap_or(Node::Typed),
            Node::Typed | Node::Atomic | Node::Keyed { .. } => Node::Typed,
        }
    }
}

const fn key(name: &'static str) -> ListKey {
    ListKey {
        name,
        default: None,
    }
}

const NAME: &[ListKey] = &[key("name")];
const TYPE: &[ListKey] = &[key("type")];
/// A set of scalars (`x-kubernetes-list-type: set`).
const SET: Node = Node::Keyed {
    keys: &[],
    element: &Node::Typed,
};
const ATOMIC_BY_NAME: Node = Node::Keyed {
    keys: NAME,
    element: &Node::Atomic,
};
const BY_NAME: Node = Node::Keyed {
    keys: NAME,
    element: &Node::Typed,
};
const CONDITIONS: Node = Node::Keyed {
    keys: TYPE,
    element: &Node::Typed,
};
/// A status whose only metadata is its `conditions` list keyed by `type`.
const STATUS_WITH_CONDITIONS: Node = Node::Fields(&[("conditions", CONDITIONS)]);

const OBJECT_META: Node = Node::Fields(&[
    ("finalizers", SET),
    (
        "ownerReferences",
        Node::Keyed {
            keys: &[key("uid")],
            element: &Node::Atomic,
        },
    ),
]);

const RESOURCE_REQUIREMENTS: Node = Node::Fields(&[("claims", BY_NAME)]);

const ENV_VAR: Node = Node::Fields(&[(
    "valueFrom",
    Node::Fields(&[
        ("configMapKeyRef", Node::Atomic),
        ("fieldRef", Node::Atomic),
        ("resourceFieldRef", Node::Atomic),
        ("secretKeyRef", Node::Atomic),
    ]),
)]);

/// `Container` and `EphemeralContainer`.
const CONTAINER: Node = Node::Fields(&[
    (
        "env",
        Node::Keyed {
            keys: NAME,
            element: &ENV_VAR,
        },
    ),
    (
        "ports",
        Node::Keyed {
            keys: &[
                key("containerPort"),
                ListKey {
                    name: "protocol",
                    default: Some("TCP"),
                },
            ],
            element: &Node::Typed,
        },
    ),
    ("resources", RESOURCE_REQUIREMENTS),
    (
        "volumeDevices",
        Node::Keyed {
            keys: &[key("devicePath")],
            element: &Node::Typed,
        },
    ),
    (
        "volumeMounts",
        Node::Keyed {
            keys: &[key("mountPath")],
            element: &Node::Typed,
        },
    ),
]);

const CONTAINERS: Node = Node::Keyed {
    keys: NAME,
    element: &CONTAINER,
};

/// A volume source whose `secretRef` is a (atomic) reference.
const WITH_SECRET_REF: Node = Node::Fields(&[("secretRef", Node::Atomic)]);

const PERSISTENT_VOLUME_CLAIM_SPEC: Node =
    Node::Fields(&[("dataSource", Node::Atomic), ("selector", Node::Atomic)]);

const VOLUME: Node = Node::Fields(&[
    ("cephfs", WITH_SECRET_REF),
    ("cinder", WITH_SECRET_REF),
    (
        "csi",
        Node::Fields(&[("nodePublishSecretRef", Node::Atomic)]),
    ),
    (
        "ephemeral",
        Node::Fields(&[(
            "volumeClaimTemplate",
            Node::Fields(&[
                ("metadata", OBJECT_META),
                ("spec", PERSISTENT_VOLUME_CLAIM_SPEC),
            ]),
        )]),
    ),
    ("flexVolume", WITH_SECRET_REF),
    ("iscsi", WITH_SECRET_REF),
    ("rbd", WITH_SECRET_REF),
    ("scaleIO", WITH_SECRET_REF),
    ("storageos", WITH_SECRET_REF),
]);

const POD_SPEC: Node = Node::Fields(&[
    (
        "affinity",
        Node::Fields(&[(
            "nodeAffinity",
            Node::Fields(&[(
                "requiredDuringSchedulingIgnoredDuringExecution",
                Node::Atomic,
            )]),
        )]),
    ),
    ("containers", CONTAINERS),
    ("ephemeralContainers", CONTAINERS),
    (
        "hostAliases",
        Node::Keyed {
            keys: &[key("ip")],
            element: &Node::Typed,
        },
    ),
    ("imagePullSecrets", ATOMIC_BY_NAME),
    ("initContainers", CONTAINERS),
    ("nodeSelector", Node::Atomic),
    ("resourceClaims", BY_NAME),
    ("resources", RESOURCE_REQUIREMENTS),
    ("schedulingGates", BY_NAME),
    (
        "topologySpreadConstraints",
        Node::Keyed {
            keys: &[key("topologyKey"), key("whenUnsatisfiable")],
            element: &Node::Fields(&[("labelSelector", Node::Atomic)]),
        },
    ),
    (
        "volumes",
        Node::Keyed {
            keys: NAME,
            element: &VOLUME,
        },
    ),
]);

const POD_TEMPLATE_SPEC: Node = Node::Fields(&[("metadata", OBJECT_META), ("spec", POD_SPEC)]);

/// Deployments, ReplicaSets, DaemonSets and StatefulSets.
const WORKLOAD: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    (
        "spec",
        Node::Fields(&[("selector", Node::Atomic), ("template", POD_TEMPLATE_SPEC)]),
    ),
    ("status", STATUS_WITH_CONDITIONS),
]);

const JOB_SPEC: Node = Node::Fields(&[("selector", Node::Atomic), ("template", POD_TEMPLATE_SPEC)]);

const JOB: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    ("spec", JOB_SPEC),
    (
        "status",
        Node::Fields(&[(
            "uncountedTerminatedPods",
            Node::Fields(&[("failed", SET), ("succeeded", SET)]),
        )]),
    ),
]);

const CRON_JOB: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    (
        "spec",
        Node::Fields(&[(
            "jobTemplate",
            Node::Fields(&[("metadata", OBJECT_META), ("spec", JOB_SPEC)]),
        )]),
    ),
]);

const POD: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    ("spec", POD_SPEC),
    (
        "status",
        Node::Fields(&[
            ("conditions", CONDITIONS),
            (
                "podIPs",
                Node::Keyed {
                    keys: &[key("ip")],
                    element: &Node::Typed,
                },
            ),
            ("resourceClaimStatuses", BY_NAME),
        ]),
    ),
]);

const POD_TEMPLATE: Node =
    Node::Fields(&[("metadata", OBJECT_META), ("template", POD_TEMPLATE_SPEC)]);

const REPLICATION_CONTROLLER: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    (
        "spec",
        Node::Fields(&[("selector", Node::Atomic), ("template", POD_TEMPLATE_SPEC)]),
    ),
    ("status", STATUS_WITH_CONDITIONS),
]);

const SERVICE: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    (
        "spec",
        Node::Fields(&[
            (
                "ports",
                Node::Keyed {
                    keys: &[
                        key("port"),
                        ListKey {
                            name: "protocol",
                            default: Some("TCP"),
                        },
                    ],
                    element: &Node::Typed,
                },
            ),
            ("selector", Node::Atomic),
        ]),
    ),
    ("status", STATUS_WITH_CONDITIONS),
]);

const SERVICE_ACCOUNT: Node =
    Node::Fields(&[("metadata", OBJECT_META), ("secrets", ATOMIC_BY_NAME)]);

const PERSISTENT_VOLUME_CLAIM: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    ("spec", PERSISTENT_VOLUME_CLAIM_SPEC),
    ("status", STATUS_WITH_CONDITIONS),
]);

const NAMESPACE: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    ("status", STATUS_WITH_CONDITIONS),
]);

const NODE: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    ("spec", Node::Fields(&[("podCIDRs", SET)])),
    (
        "status",
        Node::Fields(&[
            (
                "addresses",
                Node::Keyed {
                    keys: TYPE,
                    element: &Node::Typed,
                },
            ),
            ("conditions", CONDITIONS),
        ]),
    ),
]);

const INGRESS: Node = Node::Fields(&[
    ("metadata", OBJECT_META),
    (
        "spec",
        Node::Fields(&[(
            "defaultBackend",
            Node::Fields(&[("resource", Node::Atomic)]),
        )]),
    ),
]);

/// Any other built-in kind: only its metadata is known.
const OTHER_BUILTIN: Node = Node::Fields(&[("metadata", OBJECT_META)]);

/// The API groups of the built-in Kubernetes kinds (and of Kyverno's own kinds, whose schemas
/// upstream's CLI also knows): apply configurations of any other group have no schema.
const KNOWN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "kyverno.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policies.kyverno.io",
    "policy",
    "rbac.authorization.k8s.io",
    "reports.kyverno.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
    "wgpolicyk8s.io",
];

/// The schema of objects of `group` and `kind`, or `None` when the group has no known schema
/// (a custom resource).
pub(super) fn for_kind(group: &str, kind: &str) -> Option<Node> {
    if !KNOWN_GROUPS.contains(&group) {
        return None;
    }
    let node = match (group, kind) {
        ("", "Pod") => POD,
        ("", "PodTemplate") => POD_TEMPLATE,
        ("", "ReplicationController") => REPLICATION_CONTROLLER,
        ("", "Service") => SERVICE,
        ("", "ServiceAccount") => SERVICE_ACCOUNT,
        ("", "PersistentVolumeClaim") => PERSISTENT_VOLUME_CLAIM,
        ("", "Namespace") => NAMESPACE,
        ("", "Node") => NODE,
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => WORKLOAD,
        ("batch", "Job") => JOB,
        ("batch", "CronJob") => CRON_JOB,
        ("networking.k8s.io", "Ingress") => INGRESS,
        _ => OTHER_BUILTIN,
    };
    Some(node)
}
