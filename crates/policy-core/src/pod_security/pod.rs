//! The pod a podSecurity rule looks at, borrowed from the resource: its annotations, its pod-level
//! spec fields and its three container lists. Fields are read the way Go's typed decoding sees
//! them: a missing field and an explicit `null` are both unset.

use serde_json::{Map, Value};

use super::PodSecurityError;

/// Which container list of the pod spec a container belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContainerKind {
    /// `spec.initContainers`.
    Init,
    /// `spec.containers`.
    Regular,
    /// `spec.ephemeralContainers`.
    Ephemeral,
}

impl ContainerKind {
    /// The list's field name in the pod spec.
    pub(crate) fn field_name(self) -> &'static str {
        match self {
            ContainerKind::Init => "initContainers",
            ContainerKind::Regular => "containers",
            ContainerKind::Ephemeral => "ephemeralContainers",
        }
    }

    /// The kind whose list is named `name`.
    pub(crate) fn from_field_name(name: &str) -> Option<Self> {
        match name {
            "initContainers" => Some(ContainerKind::Init),
            "containers" => Some(ContainerKind::Regular),
            "ephemeralContainers" => Some(ContainerKind::Ephemeral),
            _ => None,
        }
    }
}

/// One container with its position in its list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Container<'a> {
    kind: ContainerKind,
    index: usize,
    value: &'a Value,
}

impl<'a> Container<'a> {
    /// The container's name (empty when unset).
    pub(crate) fn name(&self) -> &'a str {
        string_field(self.value, "name")
    }

    /// A field of the container itself, e.g. `ports` or `lifecycle`.
    pub(crate) fn field(&self, name: &str) -> Option<&'a Value> {
        set(self.value.get(name))
    }

    /// The container's `securityContext`, when set.
    pub(crate) fn security_context(&self) -> Option<&'a Value> {
        self.field("securityContext")
    }

    /// A field of the container's `securityContext`, when both are set.
    pub(crate) fn security_field(&self, name: &str) -> Option<&'a Value> {
        self.security_context()
            .and_then(|context| set(context.get(name)))
    }

    /// The path of `suffix` under this container, e.g. `spec.containers[0].securityContext`.
    pub(crate) fn path(&self, suffix: &str) -> String {
        format!("spec.{}[{}].{suffix}", self.kind.field_name(), self.index)
    }
}

/// A pod (or pod template) as the checks see it.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodView<'a> {
    annotations: Option<&'a Map<String, Value>>,
    spec: Option<&'a Map<String, Value>>,
    init_containers: Vec<&'a Value>,
    containers: Vec<&'a Value>,
    ephemeral_containers: Vec<&'a Value>,
}

impl<'a> PodView<'a> {
    /// The pod made of `metadata` and `spec` (either may be absent).
    pub(crate) fn new(metadata: Option<&'a Value>, spec: Option<&'a Value>) -> Self {
        let spec = spec.and_then(Value::as_object);
        let list = |name: &str| -> Vec<&'a Value> {
            spec.and_then(|spec| spec.get(name))
                .and_then(Value::as_array)
                .map(|items| items.iter().collect())
                .unwrap_or_default()
        };
        PodView {
            annotations: metadata
                .and_then(|metadata| metadata.get("annotations"))
                .and_then(Value::as_object),
            spec,
            init_containers: list("initContainers"),
            containers: list("containers"),
            ephemeral_containers: list("ephemeralContainers"),
        }
    }

    /// Every container, in upstream's visiting order: init, regular, then ephemeral containers.
    pub(crate) fn containers(&self) -> impl Iterator<Item = Container<'a>> + '_ {
        listed(ContainerKind::Init, &self.init_containers)
            .chain(listed(ContainerKind::Regular, &self.containers))
            .chain(listed(ContainerKind::Ephemeral, &self.ephemeral_containers))
    }

    /// The container at `index` of the `kind` list.
    pub(crate) fn container(&self, kind: ContainerKind, index: usize) -> Option<Container<'a>> {
        let values = match kind {
            ContainerKind::Init => &self.init_containers,
            ContainerKind::Regular => &self.containers,
            ContainerKind::Ephemeral => &self.ephemeral_containers,
        };
        values
            .get(index)
            .map(|value| Container { kind, index, value })
    }

    /// A pod-level spec field, e.g. `hostNetwork` or `volumes`.
    pub(crate) fn spec_field(&self, name: &str) -> Option<&'a Value> {
        set(self.spec.and_then(|spec| spec.get(name)))
    }

    /// A field of the pod-level `securityContext`, when both are set.
    pub(crate) fn security_field(&self, name: &str) -> Option<&'a Value> {
        self.spec_field("securityContext")
            .and_then(|context| set(context.get(name)))
    }

    /// The pod's string annotations.
    pub(crate) fn annotations(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.annotations
            .into_iter()
            .flatten()
            .filter_map(|(key, value)| Some((key.as_str(), value.as_str()?)))
    }

    /// The annotation `key`, when set.
    pub(crate) fn annotation(&self, key: &str) -> Option<&'a str> {
        self.annotations
            .and_then(|annotations| annotations.get(key))
            .and_then(Value::as_str)
    }

    /// Whether `spec.os.name` is `windows`.
    pub(crate) fn is_windows(&self) -> bool {
        self.spec_field("os").map(|os| string_field(os, "name")) == Some("windows")
    }

    /// Whether the pod runs in a user namespace (`spec.hostUsers: false`).
    pub(crate) fn in_user_namespace(&self) -> bool {
        self.spec_field("hostUsers").and_then(Value::as_bool) == Some(false)
    }

    /// The pod Kyverno checks for a control excluded without images: the same pod with a single
    /// container `fake` (which sets nothing) in place of all its containers.
    pub(crate) fn with_only<'b>(&self, fake_container: &'b Value) -> PodView<'b>
    where
        'a: 'b,
    {
        PodView {
            annotations: self.annotations,
            spec: self.spec,
            init_containers: Vec::new(),
            containers: vec![fake_container],
            ephemeral_containers: Vec::new(),
        }
    }

    /// The pod Kyverno checks for a control excluded for some images: only the containers whose
    /// image matches one of the wildcard `images`, with no annotations and no pod-level fields.
    pub(crate) fn containers_matching(&self, images: &[String]) -> PodView<'a> {
        let matching = |values: &[&'a Value]| -> Vec<&'a Value> {
            values
                .iter()
                .copied()
                .filter(|value| {
                    let image = string_field(value, "image");
                    images
                        .iter()
                        .any(|pattern| crate::wildcard::matches(pattern, image))
                })
                .collect()
        };
        PodView {
            annotations: None,
            spec: None,
            init_containers: matching(&self.init_containers),
            containers: matching(&self.containers),
            ephemeral_containers: matching(&self.ephemeral_containers),
        }
    }
}

/// The containers of one list, with their positions.
fn listed<'s, 'a>(
    kind: ContainerKind,
    values: &'s [&'a Value],
) -> impl Iterator<Item = Container<'a>> + 's {
    values
        .iter()
        .enumerate()
        .map(move |(index, value)| Container { kind, index, value })
}

/// How a resource kind holds its pod, which decides where Kyverno reads the pod from and how it
/// rebases field paths in violation messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TemplateKind {
    /// A Pod: `metadata` and `spec`.
    Pod,
    /// Deployment, DaemonSet, StatefulSet, ReplicaSet, ReplicationController, Job:
    /// `spec.template`.
    Template,
    /// CronJob: `spec.jobTemplate.spec.template.spec`, with the *job template's* metadata
    /// (as upstream reads it).
    CronJob,
}

impl TemplateKind {
    /// Rebases a pod field path onto the resource, the way Kyverno does for its messages
    /// (plain substring replacement, applied to pods too for `metadata`).
    pub(crate) fn resource_field(self, field: &str) -> String {
        let spec_rebased = match self {
            TemplateKind::Pod => field.to_owned(),
            TemplateKind::Template => field.replace("spec", "spec.template.spec"),
            TemplateKind::CronJob => field.replace("spec", "spec.jobTemplate.spec.template.spec"),
        };
        spec_rebased.replace("metadata", "spec.template.metadata")
    }
}

/// Finds the pod of `resource` by its kind.
pub(crate) fn pod_of(resource: &Value) -> Result<(TemplateKind, PodView<'_>), PodSecurityError> {
    let kind = string_field(resource, "kind");
    let (template_kind, metadata, spec) = match kind {
        "Pod" => (
            TemplateKind::Pod,
            resource.get("metadata"),
            resource.get("spec"),
        ),
        "Deployment"
        | "DaemonSet"
        | "StatefulSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => {
            let template = resource.get("spec").and_then(|spec| spec.get("template"));
            (
                TemplateKind::Template,
                template.and_then(|template| template.get("metadata")),
                template.and_then(|template| template.get("spec")),
            )
        }
        "CronJob" => {
            let job_template = resource
                .get("spec")
                .and_then(|spec| spec.get("jobTemplate"));
            let pod_spec = job_template
                .and_then(|job| job.get("spec"))
                .and_then(|job_spec| job_spec.get("template"))
                .and_then(|template| template.get("spec"));
            (
                TemplateKind::CronJob,
                job_template.and_then(|job| job.get("metadata")),
                pod_spec,
            )
        }
        other => return Err(PodSecurityError::UnsupportedKind(other.to_owned())),
    };
    Ok((template_kind, PodView::new(metadata, spec)))
}

/// `value`, unless it is absent or `null`.
pub(crate) fn set(value: Option<&Value>) -> Option<&Value> {
    value.filter(|value| !value.is_null())
}

/// The string field `name` of `value` (empty when unset or not a string, as Go decodes it).
pub(crate) fn string_field<'v>(value: &'v Value, name: &str) -> &'v str {
    value.get(name).and_then(Value::as_str).unwrap_or_default()
}
