//! Comparing a resource with its signed manifest, as k8s-manifest-sigstore does without dry run:
//! both are flattened into `dotted.key.0.path -> scalar` fields, and the fields that differ are
//! kept unless an ignored field pattern, an image canonicalization or a namespace the manifest
//! leaves out explains them.
use std::collections::BTreeMap;

use kyverno_api::kyverno::v1::image_verification::{ObjectFieldBinding, TargetObject};
use regex::Regex;
use serde_json::{Value, json};

use super::content::Identity;

/// Fields that differ between the manifest (`before`) and the resource (`after`); `None` where
/// one of them does not have the field.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Difference {
    /// The dotted path of the field.
    pub(super) key: String,
    /// The manifest's value.
    pub(super) before: Option<Value>,
    /// The resource's value.
    pub(super) after: Option<Value>,
}

/// The differences between `manifest` and `resource` that `ignored` field patterns do not cover
/// (upstream's direct match).
pub(super) fn differences(
    manifest: &Value,
    resource: &Value,
    ignored: &[Regex],
) -> Vec<Difference> {
    let before = ravel(manifest);
    let after = ravel(resource);
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|key| {
            let (old, new) = (before.get(key).copied(), after.get(key).copied());
            if old.zip(new).is_some_and(|(old, new)| same_scalar(old, new)) {
                return None;
            }
            Some(Difference {
                key: key.clone(),
                before: old.cloned(),
                after: new.cloned(),
            })
        })
        .filter(|difference| !is_canonicalized_image(difference))
        .filter(|difference| {
            !ignored
                .iter()
                .any(|pattern| pattern.is_match(&difference.key))
        })
        // The manifest may leave the namespace out.
        .filter(|difference| {
            !(difference.key == "metadata.namespace" && difference.before.is_none())
        })
        .collect()
}

/// The differences as upstream reports them: `{"items":[{"key":..,"values":{"after":..,"before":..}}]}`.
pub(super) fn describe(differences: &[Difference]) -> String {
    let items: Vec<Value> = differences
        .iter()
        .map(|difference| {
            json!({"key": difference.key, "values": {
                "after": difference.after, "before": difference.before}})
        })
        .collect();
    json!({ "items": items }).to_string()
}

/// The scalar fields of `value` by dotted path (list items by index); nulls and empty maps or
/// lists have none.
fn ravel(value: &Value) -> BTreeMap<String, &Value> {
    fn walk<'v>(value: &'v Value, path: &mut String, fields: &mut BTreeMap<String, &'v Value>) {
        let mut descend = |key: &str, child: &'v Value, path: &mut String| {
            let length = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            walk(child, path, fields);
            path.truncate(length);
        };
        match value {
            Value::Null => {}
            Value::Object(map) => map
                .iter()
                .for_each(|(key, child)| descend(key, child, path)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(index, child)| descend(&index.to_string(), child, path)),
            scalar => {
                fields.insert(path.clone(), scalar);
            }
        }
    }
    let mut fields = BTreeMap::new();
    walk(value, &mut String::new(), &mut fields);
    fields
}

/// Scalars equal as Go decodes them: numbers as float64.
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => a == b,
    }
}

/// An image the API server canonicalized: `nginx` to `docker.io/nginx`, `ubuntu` to
/// `ubuntu:latest`.
fn is_canonicalized_image(difference: &Difference) -> bool {
    if !difference.key.ends_with("image") {
        return false;
    }
    let (Some(Value::String(before)), Some(Value::String(after))) =
        (&difference.before, &difference.after)
    else {
        return false;
    };
    after.strip_prefix("docker.io/") == Some(before.as_str())
        || after.strip_suffix(":latest") == Some(before.as_str())
}

/// Field patterns for the resources of some objects.
struct Binding<'a> {
    fields: Vec<&'a str>,
    objects: Vec<ObjectPattern<'a>>,
}

/// Which objects a binding is for; each part is a k8s-manifest-sigstore pattern (empty or `*` for
/// any, `prefix*`, comma-separated alternatives).
#[derive(Clone, Copy, Default)]
struct ObjectPattern<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: &'a str,
}

impl ObjectPattern<'_> {
    fn kind(kind: &str) -> ObjectPattern<'_> {
        ObjectPattern {
            kind,
            ..ObjectPattern::default()
        }
    }

    fn matches(&self, identity: &Identity<'_>) -> bool {
        matches_pattern(self.group, identity.group)
            && matches_pattern(self.version, identity.version)
            && matches_pattern(self.kind, identity.kind)
            && matches_pattern(self.name, identity.name)
            && matches_pattern(self.namespace, identity.namespace)
    }
}

fn matches_pattern(pattern: &str, value: &str) -> bool {
    let pattern = pattern.trim();
    if pattern.is_empty()
        || pattern == "*"
        || pattern == value
        || (pattern == "-" && value.is_empty())
    {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return value.starts_with(prefix.trim_end_matches('*'));
    }
    pattern.contains(',')
        && pattern
            .split(',')
            .any(|alternative| matches_pattern(alternative, value))
}

/// Fields every comparison ignores: k8s-manifest-sigstore's default configuration.
const SIGSTORE_DEFAULTS: &[(&[&str], &str, &str)] = &[
    (
        &[
            "metadata.managedFields.*",
            "metadata.resourceVersion",
            "metadata.selfLink",
            "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration",
            "metadata.annotations.namespace",
            "metadata.creationTimestamp",
            "metadata.generation",
            "metadata.uid",
            "metadata.finalizers",
            "metadata.labels.app.kubernetes.io/instance",
            "status",
        ],
        "*",
        "",
    ),
    (
        &["secrets.*.name", "imagePullSecrets.*.name"],
        "ServiceAccount",
        "",
    ),
    (
        &[
            "spec.ports.*.nodePort",
            "spec.clusterIP",
            "spec.clusterIPs.0",
        ],
        "Service",
        "",
    ),
    (
        &["metadata.annotations.deployment.kubernetes.io/revision"],
        "Deployment",
        "",
    ),
    (
        &["metadata.annotations.deprecated.daemonset.template.generation"],
        "DaemonSet",
        "",
    ),
    (&["spec.host"], "Route", "route.openshift.io"),
];

/// Fields every comparison ignores: Kyverno's default configuration, by kinds.
const KYVERNO_DEFAULTS: &[(&[&str], &[&str])] = &[
    (
        &[
            "metadata.namespace",
            "spec.containers.*.imagePullPolicy",
            "spec.containers.*.terminationMessagePath",
            "spec.containers.*.terminationMessagePolicy",
            "spec.dnsPolicy",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.terminationGracePeriodSeconds",
            "metadata.labels.app.kubernetes.io/instance",
            "metadata.managedFields.*",
            "metadata.resourceVersion",
            "metadata.selfLink",
            "metadata.annotations.control-plane.alpha.kubernetes.io/leader",
            "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration",
            "metadata.finalizers*",
            "metadata.annotations.namespace",
            "metadata.annotations.deprecated.daemonset.template.generation",
            "metadata.creationTimestamp",
            "metadata.uid",
            "metadata.generation",
            "status",
            "metadata.annotations.deployment.kubernetes.io/revision",
        ],
        &["*"],
    ),
    (
        &[
            "spec.volumes.*.name",
            "spec.volumes.*.projected.*",
            "spec.volumes.*.configMap.defaultMode",
            "spec.containers.*.volumeMounts.*",
            "spec.tolerations.*",
            "spec.enableServiceLinks",
            "spec.preemptionPolicy",
            "spec.priority",
            "spec.serviceAccount",
        ],
        &["Pod"],
    ),
    (
        &[
            "spec.progressDeadlineSeconds",
            "spec.revisionHistoryLimit",
            "spec.strategy.*",
            "spec.template.metadata.creationTimestamp",
            "spec.containers.*.ports.*.protocol",
            "spec.containers.*.resources",
            "spec.securityContext",
        ],
        &["Deployment"],
    ),
    (
        &["spec.conversion.strategy", "spec.names.listKind"],
        &["CustomResourceDefinition"],
    ),
    (
        &[
            "spec.ports.*.nodePort",
            "spec.clusterIP",
            "spec.clusterIPs.0",
            "spec.sessionAffinity",
            "spec.type",
            "spec.ipFamilies.*",
            "spec.ipFamilyPolicy",
            "spec.internalTrafficPolicy",
        ],
        &["Service"],
    ),
    (
        &[
            "metadata.annotations.pod-policies.kyverno.io/autogen-controllers",
            "spec.failurePolicy",
            "spec.background",
            "spec.validationFailureAction",
        ],
        &["ClusterPolicy", "Policy"],
    ),
    (
        &["secrets.*.name", "imagePullSecrets.*.name"],
        &["ServiceAccount"],
    ),
];

/// The ignored field patterns that apply to `resource`, compiled as upstream matches them: the
/// pattern with `*` appended, `*` meaning any text, found anywhere in the field's dotted path (an
/// unanchored regular expression, so `.` matches any character). `signature_annotations` are
/// the patterns of the signature annotations themselves.
pub(super) fn ignored_fields(
    resource: &Value,
    policy: &[ObjectFieldBinding],
    signature_annotations: &[String],
) -> Vec<Regex> {
    let identity = Identity::of(resource);
    let sigstore = SIGSTORE_DEFAULTS
        .iter()
        .map(|(fields, kind, group)| Binding {
            fields: fields.to_vec(),
            objects: vec![ObjectPattern {
                group,
                ..ObjectPattern::kind(kind)
            }],
        });
    let kyverno = KYVERNO_DEFAULTS.iter().map(|(fields, kinds)| Binding {
        fields: fields.to_vec(),
        objects: kinds.iter().map(|kind| ObjectPattern::kind(kind)).collect(),
    });
    let from_policy = policy.iter().map(|binding| Binding {
        fields: binding.fields.iter().map(String::as_str).collect(),
        objects: binding.objects.iter().map(object_pattern).collect(),
    });
    let annotations = std::iter::once(Binding {
        fields: signature_annotations.iter().map(String::as_str).collect(),
        objects: vec![ObjectPattern::kind("*")],
    });
    sigstore
        .chain(kyverno)
        .chain(from_policy)
        .chain(annotations)
        .filter(|binding| {
            binding.objects.is_empty()
                || binding
                    .objects
                    .iter()
                    .any(|object| object.matches(&identity))
        })
        .flat_map(|binding| binding.fields)
        .filter_map(|field| Regex::new(&format!("{field}*").replace('*', ".*")).ok())
        .collect()
}

fn object_pattern(object: &TargetObject) -> ObjectPattern<'_> {
    fn text(part: &Option<String>) -> &str {
        part.as_deref().unwrap_or_default()
    }
    ObjectPattern {
        group: text(&object.group),
        version: text(&object.version),
        kind: text(&object.kind),
        name: text(&object.name),
        namespace: text(&object.namespace),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(extra: Value) -> Value {
        let mut service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "a"}}
        });
        json_patch::merge(&mut service, &extra);
        service
    }

    fn ignored(resource: &Value, policy: Value) -> Vec<Regex> {
        let policy: Vec<ObjectFieldBinding> = serde_json::from_value(policy).expect("bindings");
        ignored_fields(
            resource,
            &policy,
            &["metadata.annotations.cosign.sigstore.dev/message".to_owned()],
        )
    }

    #[test]
    fn equal_resources_have_no_differences() {
        let manifest = service(json!({}));
        let resource = service(
            json!({"spec": {"ports": [{"port": 80.0, "protocol": "TCP"}]}, "status": {"x": 1}}),
        );
        let patterns = ignored(&resource, json!([]));
        assert_eq!(differences(&manifest, &resource, &patterns), []);
    }

    #[test]
    fn differing_added_and_removed_fields_are_reported() {
        let manifest = service(json!({"spec": {"selector": {"tier": "web"}}}));
        let resource = service(
            json!({"spec": {"selector": {"app": "b"}}, "metadata": {"labels": {"x": "y"}}}),
        );
        let found = differences(&manifest, &resource, &ignored(&resource, json!([])));
        let keys: Vec<&str> = found.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "metadata.labels.x",
                "spec.selector.app",
                "spec.selector.tier"
            ]
        );
        assert_eq!(found[1].before, Some(json!("a")));
        assert_eq!(found[1].after, Some(json!("b")));
        assert_eq!(found[2].after, None);
        assert_eq!(
            describe(&found[..1]),
            r#"{"items":[{"key":"metadata.labels.x","values":{"after":"y","before":null}}]}"#
        );
    }

    #[test]
    fn defaults_policy_fields_and_signature_annotations_are_ignored() {
        let manifest = service(json!({}));
        let resource = service(json!({
            "metadata": {"namespace": "default", "uid": "u", "labels": {"team": "a"},
                         "annotations": {"cosign.sigstore.dev/message": "m", "other": "o"}},
            "spec": {"clusterIP": "10.0.0.1", "type": "ClusterIP"}
        }));
        let found = differences(&manifest, &resource, &ignored(&resource, json!([])));
        let keys: Vec<&str> = found.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["metadata.annotations.other", "metadata.labels.team"]);
        let policy = json!([
            {"fields": ["metadata.labels.team"], "objects": [{"kind": "Serv*"}]},
            {"fields": ["metadata.annotations.other"], "objects": [{"kind": "ConfigMap"}]},
        ]);
        let found = differences(&manifest, &resource, &ignored(&resource, policy));
        let keys: Vec<&str> = found.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["metadata.annotations.other"]);
        let everywhere = json!([{"fields": ["metadata.annotations"]}]);
        assert!(differences(&manifest, &resource, &ignored(&resource, everywhere)).len() == 1);
    }

    #[test]
    fn canonicalized_images_and_a_namespace_the_manifest_leaves_out_do_not_differ() {
        let pod = |image: &str, namespace: Option<&str>| {
            let mut pod = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"},
                                 "spec": {"containers": [{"image": image}]}});
            if let Some(namespace) = namespace {
                pod["metadata"]["namespace"] = json!(namespace);
            }
            pod
        };
        let none: [Regex; 0] = [];
        assert_eq!(
            differences(
                &pod("nginx", None),
                &pod("docker.io/nginx", Some("x")),
                &none
            ),
            []
        );
        assert_eq!(
            differences(&pod("ubuntu", None), &pod("ubuntu:latest", None), &none),
            []
        );
        let moved = differences(&pod("nginx", Some("a")), &pod("nginx:1", Some("b")), &none);
        let keys: Vec<&str> = moved.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["metadata.namespace", "spec.containers.0.image"]);
    }

    #[test]
    fn object_patterns_as_k8s_manifest_sigstore() {
        assert!(matches_pattern("", "x"));
        assert!(matches_pattern(" * ", "x"));
        assert!(matches_pattern("-", ""));
        assert!(!matches_pattern("-", "x"));
        assert!(matches_pattern("Dep*", "Deployment"));
        assert!(matches_pattern("Pod, Service", "Service"));
        assert!(!matches_pattern("Pod", "Service"));
    }
}
