use super::*;
use serde_json::json;

const DIGEST_D: &str = "sha256:dead07b4d8ed7e29e98de0f4504d87e8880d4347859d839686a31da35a3b532f";

fn parse(reference: &str) -> ImageReference {
    match ImageReference::parse(reference, DEFAULT_REGISTRY) {
        Ok(image) => image,
        Err(error) => panic!("{reference}: {error}"),
    }
}

fn parse_error(reference: &str) -> String {
    match ImageReference::parse(reference, DEFAULT_REGISTRY) {
        Ok(image) => panic!("{reference} parsed as {image:?}"),
        Err(error) => error.to_string(),
    }
}

fn image(
    registry: &str,
    path: &str,
    name: &str,
    tag: Option<&str>,
    digest: Option<&str>,
) -> ImageReference {
    ImageReference {
        registry: registry.to_owned(),
        path: path.to_owned(),
        name: name.to_owned(),
        tag: tag.map(str::to_owned),
        digest: digest.map(str::to_owned),
    }
}

fn configs(kind: &str, extractors: Value) -> BTreeMap<String, Vec<ImageExtractorConfig>> {
    match serde_json::from_value(json!({ kind: extractors })) {
        Ok(configs) => configs,
        Err(error) => panic!("bad extractor config: {error}"),
    }
}

fn images(resource: Value) -> Value {
    match extract_images(&resource, &BTreeMap::new()) {
        Ok(images) => images,
        Err(error) => panic!("{error}"),
    }
}

// Cases of upstream's infos_test.go (Test_GetImageInfo, Test_ReferenceWithTag).
#[test]
fn parses_upstream_examples() {
    for (reference, expected, string, with_tag) in [
        (
            "nginx",
            image("docker.io", "nginx", "nginx", Some("latest"), None),
            "docker.io/nginx:latest",
            "docker.io/nginx:latest",
        ),
        (
            "nginx:v10.3",
            image("docker.io", "nginx", "nginx", Some("v10.3"), None),
            "docker.io/nginx:v10.3",
            "docker.io/nginx:v10.3",
        ),
        (
            "docker.io/test/nginx:v10.3",
            image("docker.io", "test/nginx", "nginx", Some("v10.3"), None),
            "docker.io/test/nginx:v10.3",
            "docker.io/test/nginx:v10.3",
        ),
        (
            "test/nginx",
            image("docker.io", "test/nginx", "nginx", Some("latest"), None),
            "docker.io/test/nginx:latest",
            "docker.io/test/nginx:latest",
        ),
        (
            "localhost:4443/test/nginx",
            image(
                "localhost:4443",
                "test/nginx",
                "nginx",
                Some("latest"),
                None,
            ),
            "localhost:4443/test/nginx:latest",
            "localhost:4443/test/nginx:latest",
        ),
        (
            &format!("docker.io/test/centos@{DIGEST_D}"),
            image("docker.io", "test/centos", "centos", None, Some(DIGEST_D)),
            &format!("docker.io/test/centos@{DIGEST_D}"),
            "docker.io/test/centos:",
        ),
    ] {
        let parsed = parse(reference);
        assert_eq!(parsed, expected, "{reference}");
        assert_eq!(parsed.reference(), string, "{reference}");
        assert_eq!(parsed.to_string(), string, "{reference}");
        assert_eq!(parsed.reference_with_tag(), with_tag, "{reference}");
    }
}

#[test]
fn uses_the_given_default_registry() {
    let parsed = ImageReference::parse("test/nginx", "gcr.io");
    assert_eq!(
        parsed.map(|image| image.reference()),
        Ok("gcr.io/test/nginx:latest".to_owned())
    );
    // A default registry with a path (allowed since Kyverno 1.18) prefixes the repository.
    let parsed = ImageReference::parse("nginx", "registry.example.com/myorg");
    assert_eq!(
        parsed,
        Ok(image(
            "registry.example.com",
            "myorg/nginx",
            "nginx",
            Some("latest"),
            None
        ))
    );
}

// Cases of upstream's Test_addDefaultRegistry: which first elements name a registry.
#[test]
fn recognises_registries() {
    assert_eq!(parse("localhost/netd:v0.4.4-gke.0").registry, "localhost");
    assert_eq!(
        parse("localhost/netd:v0.4.4-gke.0").tag.as_deref(),
        Some("v0.4.4-gke.0")
    );
    assert_eq!(
        parse("myregistry.org/test/nginx:v10.3").registry,
        "myregistry.org"
    );
    assert_eq!(
        parse("index.docker.io/busybox:v1.2.3").registry,
        "index.docker.io"
    );
    assert_eq!(parse("library/nginx").registry, "docker.io");
    assert_eq!(parse("library/nginx").path, "library/nginx");
    assert_eq!(parse("registry:5000/app").registry, "registry:5000");
    assert_eq!(parse("[::1]:5000/app:1").registry, "[::1]:5000");
    // Upper case in the first element makes it a registry, not a lower-case path.
    assert_eq!(parse("Registry/app").registry, "Registry");
    assert_eq!(parse("Registry/app").path, "app");
}

#[test]
fn keeps_tag_and_digest() {
    let reference = format!("fictional.registry.example:10443/imagename:tag@{DIGEST_D}");
    let parsed = parse(&reference);
    assert_eq!(
        parsed,
        image(
            "fictional.registry.example:10443",
            "imagename",
            "imagename",
            Some("tag"),
            Some(DIGEST_D)
        )
    );
    assert_eq!(
        parsed.reference(),
        format!("fictional.registry.example:10443/imagename@{DIGEST_D}")
    );
    assert_eq!(
        parsed.reference_with_tag(),
        "fictional.registry.example:10443/imagename:tag"
    );
}

// kyverno/kyverno#10438: an ECR host with `_` is not a valid host name, yet is the registry.
#[test]
fn takes_a_first_element_with_underscore_as_registry() {
    let parsed = parse("aws_account_id.dkr.ecr.us-west-2.amazonaws.com/team/my-repository:v1");
    assert_eq!(
        parsed,
        image(
            "aws_account_id.dkr.ecr.us-west-2.amazonaws.com",
            "team/my-repository",
            "my-repository",
            Some("v1"),
            None
        )
    );
    assert_eq!(
        parsed.reference(),
        "aws_account_id.dkr.ecr.us-west-2.amazonaws.com/team/my-repository:v1"
    );
}

#[test]
fn rejects_invalid_references() {
    assert_eq!(
        parse_error("++"),
        "bad image: docker.io/++, defaultRegistry: docker.io, enableDefaultRegistryMutation: true: invalid reference format"
    );
    assert_eq!(
        parse_error(""),
        "bad image: docker.io/, defaultRegistry: docker.io, enableDefaultRegistryMutation: true: invalid reference format"
    );
    assert!(parse_error("Nginx").ends_with(": repository name must be lowercase"));
    assert!(parse_error("docker.io/Test/nginx").ends_with(": repository name must be lowercase"));
    assert!(parse_error("nginx@sha256:abc").ends_with(": invalid reference format"));
    assert!(parse_error("nginx:tag:other").ends_with(": invalid reference format"));
    assert!(parse_error("nginx:é").ends_with(": invalid reference format"));
    assert!(
        parse_error(&format!("nginx:{}", "t".repeat(129))).ends_with(": invalid reference format")
    );
    assert_eq!(
        parse(&format!("nginx:{}", "t".repeat(128)))
            .tag
            .map(|tag| tag.len()),
        Some(128)
    );
    assert!(parse_error("a..b/nginx").ends_with(": invalid reference format"));
    assert!(
        parse_error(&"a".repeat(246))
            .ends_with(": repository name must not be more than 255 characters")
    );
    assert_eq!(parse(&"a".repeat(245)).path.len(), 245);
    assert!(
        parse_error(&format!("nginx@md5:{}", "0".repeat(32)))
            .ends_with(": unsupported digest algorithm")
    );
    assert!(
        parse_error(&format!("nginx@sha256:{}", "0".repeat(63)))
            .ends_with(": invalid checksum digest length")
    );
    assert!(
        parse_error(&format!("nginx@sha256:{}", "A".repeat(64)))
            .ends_with(": invalid checksum digest format")
    );
    assert_eq!(
        parse(&format!("nginx@sha512:{}", "0".repeat(128))).tag,
        None
    );
}

// Upstream's Test_ImageNormalize.
#[test]
fn normalizes_like_image_normalize() {
    for (reference, expected) in [
        ("nginx", "docker.io/nginx:latest"),
        ("docker.io/nginx", "docker.io/nginx:latest"),
        ("docker.io/library/nginx", "docker.io/library/nginx:latest"),
        ("ghcr.io/library/nginx", "ghcr.io/library/nginx:latest"),
        ("ghcr.io/nginx", "ghcr.io/nginx:latest"),
        ("ghcr.io/nginx:latest", "ghcr.io/nginx:latest"),
        ("ghcr.io/nginx:1.2", "ghcr.io/nginx:1.2"),
    ] {
        assert_eq!(normalize(reference), Ok(expected.to_owned()), "{reference}");
    }
    assert_eq!(
        normalize(&format!("nginx:1.2@{DIGEST_D}")),
        Ok(format!("docker.io/nginx@{DIGEST_D}"))
    );
    assert!(normalize("").is_err());
}

#[test]
fn builds_the_images_variable_of_a_pod() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "myapp"},
        "spec": {
            "imagePullSecrets": [{"name": "regcred"}, {"other": "ignored"}],
            "initContainers": [{"name": "init", "image": "index.docker.io/busybox:v1.2.3"}],
            "containers": [{"name": "nginx", "image": "nginx:latest"}],
            "ephemeralContainers": [{"name": "ephemeral", "image": format!("test/nginx@{DIGEST_D}")}]
        }
    });
    assert_eq!(
        images(pod),
        json!({
            "initContainers": {"init": {
                "registry": "index.docker.io", "name": "busybox", "path": "busybox", "tag": "v1.2.3",
                "reference": "index.docker.io/busybox:v1.2.3",
                "referenceWithTag": "index.docker.io/busybox:v1.2.3",
                "jsonPointer": "/spec/initContainers/0/image", "imagePullSecrets": ["regcred"]
            }},
            "containers": {"nginx": {
                "registry": "docker.io", "name": "nginx", "path": "nginx", "tag": "latest",
                "reference": "docker.io/nginx:latest", "referenceWithTag": "docker.io/nginx:latest",
                "jsonPointer": "/spec/containers/0/image", "imagePullSecrets": ["regcred"]
            }},
            "ephemeralContainers": {"ephemeral": {
                "registry": "docker.io", "name": "nginx", "path": "test/nginx", "digest": DIGEST_D,
                "reference": format!("docker.io/test/nginx@{DIGEST_D}"),
                "referenceWithTag": "docker.io/test/nginx:",
                "jsonPointer": "/spec/ephemeralContainers/0/image", "imagePullSecrets": ["regcred"]
            }}
        })
    );
}

#[test]
fn extracts_pod_templates_of_every_controller() {
    let template = json!({"spec": {"containers": [
        {"name": "a", "image": "nginx"}, {"name": "b", "image": "ghcr.io/org/app:2"}
    ]}});
    for kind in [
        "Deployment",
        "DaemonSet",
        "StatefulSet",
        "Job",
        "ReplicaSet",
        "ReplicationController",
    ] {
        let resource = json!({"kind": kind, "spec": {"template": template}});
        let infos = image_infos(&resource, &BTreeMap::new());
        let pointers: Vec<_> = infos
            .iter()
            .flat_map(|infos| {
                infos["containers"]
                    .values()
                    .map(|info| info.json_pointer.clone())
            })
            .collect();
        assert_eq!(
            pointers,
            [
                "/spec/template/spec/containers/0/image",
                "/spec/template/spec/containers/1/image"
            ],
            "{kind}"
        );
    }
}

// Upstream's CronJob case of Test_extractImageInfo.
#[test]
fn extracts_cron_job_templates() {
    let cron_job = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello"},
        "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "imagePullSecrets": [{"name": "cron-secret"}],
            "containers": [{"name": "hello", "image": "test.example.com/test/my-app:v2"}]
        }}}}}
    });
    let infos = image_infos(&cron_job, &BTreeMap::new());
    let hello = infos
        .as_ref()
        .ok()
        .and_then(|infos| infos.get("containers")?.get("hello"));
    assert_eq!(
        hello,
        Some(&ImageInfo {
            reference: image(
                "test.example.com",
                "test/my-app",
                "my-app",
                Some("v2"),
                None
            ),
            json_pointer: "/spec/jobTemplate/spec/template/spec/containers/0/image".to_owned(),
            image_pull_secrets: vec!["cron-secret".to_owned()],
        })
    );
}

#[test]
fn finds_nothing_in_other_kinds_or_empty_pods() {
    assert_eq!(
        images(json!({"kind": "ConfigMap", "data": {"image": "nginx"}})),
        json!({})
    );
    assert_eq!(
        images(json!({"kind": "Pod", "spec": {"containers": []}})),
        json!({})
    );
    assert_eq!(
        images(json!({"kind": "Pod", "metadata": {"name": "no-spec"}})),
        json!({})
    );
    // A container without an image (or with a blank one) is skipped.
    assert_eq!(
        images(
            json!({"kind": "Pod", "spec": {"containers": [{"name": "a"}, {"name": "b", "image": "  "}]}})
        ),
        json!({})
    );
}

#[test]
fn reports_malformed_pods() {
    let error =
        |resource: Value| extract_images(&resource, &BTreeMap::new()).map_err(|e| e.to_string());
    assert_eq!(
        error(json!({"kind": "Pod", "spec": {"containers": [{"image": "nginx"}]}})),
        Err("invalid key".to_owned())
    );
    assert_eq!(
        error(json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "Nginx"}]}})),
        Err("invalid image 'Nginx' (bad image: docker.io/Nginx, defaultRegistry: docker.io, enableDefaultRegistryMutation: true: repository name must be lowercase)".to_owned())
    );
    assert_eq!(
        error(json!({"kind": "Pod", "spec": {"containers": "nginx"}})),
        Err("invalid type".to_owned())
    );
    assert_eq!(
        error(json!({"kind": "Pod", "spec": ["nginx"]})),
        Err("invalid image config".to_owned())
    );
    assert_eq!(
        error(json!({"kind": "Pod", "spec": {"containers": ["nginx"]}})),
        Err("invalid image config".to_owned())
    );
}

// Upstream's Tekton Task case: no name, no key, value taken from the path.
#[test]
fn custom_extractor_defaults_to_pointers_under_custom() {
    let task = json!({
        "apiVersion": "tekton.dev/v1beta1", "kind": "Task", "metadata": {"name": "example-task-name"},
        "spec": {"steps": [
            {"name": "ubuntu-example", "image": "ubuntu", "args": ["ubuntu-build-example"]},
            {"image": "gcr.io/example-builders/build-example", "command": ["echo"]},
            {"name": "dockerfile-pushexample", "image": "gcr.io/example-builders/push-example"}
        ]}
    });
    let extractors = configs("Task", json!([{"path": "/spec/steps/*/image"}]));
    let infos = image_infos(&task, &extractors);
    let summary: Option<Vec<_>> = infos.ok().and_then(|infos| {
        Some(
            infos
                .get("custom")?
                .iter()
                .map(|(key, info)| {
                    (
                        key.clone(),
                        info.json_pointer.clone(),
                        info.reference.reference(),
                    )
                })
                .collect(),
        )
    });
    let row = |key: &str, reference: &str| (key.to_owned(), key.to_owned(), reference.to_owned());
    assert_eq!(
        summary,
        Some(vec![
            row("/spec/steps/0/image", "docker.io/ubuntu:latest"),
            row(
                "/spec/steps/1/image",
                "gcr.io/example-builders/build-example:latest"
            ),
            row(
                "/spec/steps/2/image",
                "gcr.io/example-builders/push-example:latest"
            ),
        ])
    );
}

// Upstream's Task/ClusterTask cases with name, value and key.
#[test]
fn custom_extractor_with_name_key_and_value() {
    let task = json!({"kind": "ClusterTask", "spec": {"steps": [
        {"image": "alpine", "name": "echo", "script": "#!/bin/sh\necho \"Hello World\"\n"},
        {"image": "gcr.io/example-builders/push-example", "name": "push"}
    ]}});
    let extractors = configs(
        "ClusterTask",
        json!([{"name": "steps", "path": "/spec/steps/*", "value": "image", "key": "name"}]),
    );
    let variable = extract_images(&task, &extractors);
    let pointers = variable.as_ref().ok().map(|v| {
        (
            v["steps"]["echo"]["jsonPointer"].clone(),
            v["steps"]["echo"]["reference"].clone(),
            v["steps"]["push"]["name"].clone(),
        )
    });
    assert_eq!(
        pointers,
        Some((
            json!("/spec/steps/0/image"),
            json!("docker.io/alpine:latest"),
            json!("push-example")
        ))
    );
    // Custom extractors replace the standard ones for their kind.
    let pod = json!({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "nginx"}]}});
    let only_custom = configs(
        "Pod",
        json!([{"path": "/spec/containers/*/image", "name": "mine"}]),
    );
    let variable = extract_images(&pod, &only_custom);
    assert_eq!(
        variable
            .as_ref()
            .ok()
            .and_then(|v| v.as_object())
            .map(|v| v.keys().map(String::as_str).collect::<Vec<_>>()),
        Some(vec!["mine"])
    );
}

// Upstream's DataVolume case: the JMESPath strips a `docker://` scheme.
#[test]
fn custom_extractor_applies_jmes_path() {
    let data_volume = json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": "registry-image-datavolume"},
        "spec": {"source": {"registry": {"url": "docker://kubevirt/fedora-cloud-registry-disk-demo"}}}
    });
    let extractors = configs(
        "DataVolume",
        json!([{"path": "/spec/source/registry/url", "jmesPath": "trim_prefix(@, 'docker://')"}]),
    );
    let variable = extract_images(&data_volume, &extractors);
    assert_eq!(
        variable.map(|v| v["custom"]["/spec/source/registry/url"].clone()),
        Ok(json!({
            "registry": "docker.io", "name": "fedora-cloud-registry-disk-demo",
            "path": "kubevirt/fedora-cloud-registry-disk-demo", "tag": "latest",
            "reference": "docker.io/kubevirt/fedora-cloud-registry-disk-demo:latest",
            "referenceWithTag": "docker.io/kubevirt/fedora-cloud-registry-disk-demo:latest",
            "jsonPointer": "/spec/source/registry/url", "imagePullSecrets": []
        }))
    );
}

#[test]
fn custom_extractor_errors() {
    let resource =
        json!({"kind": "Thing", "image": "nginx", "spec": {"images": {"a": {"ref": 1}}}});
    let error = |extractors: Value| {
        extract_images(&resource, &configs("Thing", extractors)).map_err(|e| e.to_string())
    };
    assert_eq!(
        error(json!([])),
        Err("no extractors found for Thing".to_owned())
    );
    assert_eq!(
        error(json!([{"path": " / "}])),
        Err("image extractor for Thing has an empty path".to_owned())
    );
    assert_eq!(
        error(json!([{"path": "/image", "jmesPath": "length(@)"}])),
        Err("jmespath length(@) must produce a string, but produced 5".to_owned())
    );
    assert!(
        error(json!([{"path": "/image", "jmesPath": "trim_prefix(@"}]))
            .is_err_and(|e| e.starts_with("invalid jmespath trim_prefix(@: "))
    );
    assert!(
        error(json!([{"path": "/image", "jmesPath": "trim_prefix(@, `1`)"}]))
            .is_err_and(|e| e.starts_with("failed to apply jmespath trim_prefix(@, `1`): "))
    );
    assert_eq!(
        error(json!([{"path": "/spec/images/*", "value": "ref", "key": "missing"}])),
        Err("invalid key".to_owned())
    );
    // A non-string value is not an image: skipped.
    assert_eq!(
        error(json!([{"path": "/spec/images/*/ref"}])),
        Ok(json!({}))
    );
}

#[test]
fn custom_extractor_at_the_root_and_over_objects() {
    // Upstream joins an empty path and the value field into `//image`.
    let resource = json!({"kind": "Thing", "image": "nginx", "spec": {"images": {
        "first": {"ref": "ghcr.io/a/b:1"}, "second": {"ref": "quay.io/c/d:2"}
    }}});
    let extractors = configs(
        "Thing",
        json!([
            {"path": "/image", "name": "root"},
            {"path": "/spec/images/*/ref", "name": "named"}
        ]),
    );
    let infos = image_infos(&resource, &extractors);
    let keys = infos.map(|infos| {
        infos
            .iter()
            .flat_map(|(category, images)| {
                images.keys().map(move |key| format!("{category} {key}"))
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(
        keys,
        Ok(vec![
            "named /spec/images/first/ref".to_owned(),
            "named /spec/images/second/ref".to_owned(),
            "root //image".to_owned(),
        ])
    );
}

// What conformance policies read from `images`: `images.containers.*.registry` (kyverno/policies
// require-imagepullsecrets, add-imagepullsecrets-for-containers-and-initcontainers; kyverno CLI
// test/restrict-something) and `images.containers."<name>".name/.tag` (test-mutate/foreach).
#[test]
fn answers_the_queries_of_conformance_policies() {
    let pod = json!({"kind": "Pod", "spec": {"containers": [
        {"name": "nginx", "image": "nginx:1.25"},
        {"name": "app", "image": "ghcr.io/org/app@sha256:dead07b4d8ed7e29e98de0f4504d87e8880d4347859d839686a31da35a3b532f"}
    ]}});
    let context = json!({"images": images(pod)});
    let query =
        |expression: &str| jmespath::search(expression, &context).map_err(|e| e.to_string());
    assert_eq!(
        query("images.containers.*.registry"),
        Ok(json!(["ghcr.io", "docker.io"]))
    );
    assert_eq!(
        query("images.initContainers.*.registry || `[]`"),
        Ok(json!([]))
    );
    assert_eq!(
        query("images.containers.\"nginx\".name"),
        Ok(json!("nginx"))
    );
    assert_eq!(query("images.containers.\"nginx\".tag"), Ok(json!("1.25")));
    assert_eq!(query("images.containers.app.digest"), Ok(json!(DIGEST_D)));
    assert_eq!(
        query("images.containers.app.tag || 'none'"),
        Ok(json!("none"))
    );
}
