//! Tests of the mutate primitives, with expectations from upstream Kyverno
//! (`strategicMergePatch_test.go`, `strategicPreprocessing_test.go`, `patchJSON6902_test.go`),
//! kustomize (`patchstrategicmerge_test.go`) and the conformance corpus.

use serde_json::{Value, json};

use super::*;

fn yaml(text: &str) -> Value {
    match serde_saphyr::from_str(text) {
        Ok(value) => value,
        Err(error) => panic!("invalid YAML in test: {error}\n{text}"),
    }
}

fn merged(resource: &Value, patch: &Value) -> Value {
    match strategic_merge(resource, patch) {
        Ok(result) => result,
        Err(error) => panic!("strategic merge failed: {error}"),
    }
}

fn patched(resource: &Value, patch_text: &str) -> Value {
    match apply_json6902(resource, patch_text) {
        Ok(result) => result,
        Err(error) => panic!("JSON patch failed: {error}"),
    }
}

fn deployment_with_containers(names: &[&str]) -> Value {
    let containers: Vec<Value> = names.iter().map(|name| json!({ "name": name })).collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "myDeploy"},
        "spec": {"template": {"spec": {"containers": containers}}}
    })
}

fn container_names(resource: &Value, pointer: &str) -> Vec<String> {
    resource
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// ---- strategic merge: maps, scalars, lists without merge keys ----

#[test]
fn maps_merge_scalars_replace_and_null_deletes() {
    let resource = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "labels": {"a": "1", "b": "2"}},
        "data": {"x": "old", "y": "keep"}
    });
    let patch = json!({
        "metadata": {"labels": {"a": null, "c": "3"}},
        "data": {"x": "new"}
    });
    assert_eq!(
        merged(&resource, &patch),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "labels": {"b": "2", "c": "3"}},
            "data": {"x": "new", "y": "keep"}
        })
    );
}

#[test]
fn nulls_in_added_maps_are_dropped() {
    let resource = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let patch = json!({"metadata": {"annotations": {"a": "1", "b": null}}});
    assert_eq!(
        merged(&resource, &patch)["metadata"]["annotations"],
        json!({"a": "1"})
    );
}

#[test]
fn lists_without_merge_strategy_are_replaced() {
    // kustomize "nested patch": container args are replaced
    let resource = yaml(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: myDeploy\nspec:\n  containers:\n  - name: nginx\n    args:\n    - abc\n",
    );
    let patch = yaml("spec:\n  containers:\n  - name: nginx\n    args:\n    - def\n");
    assert_eq!(
        merged(&resource, &patch)["spec"]["containers"],
        json!([{"name": "nginx", "args": ["def"]}])
    );
    // tolerations have no patch strategy in Kubernetes
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}
    });
    let patch = json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}});
    assert_eq!(
        merged(&pod, &patch)["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
}

#[test]
fn custom_resources_replace_every_list() {
    let rollout = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "image": "a"}]}}}
    });
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "b"}]}}}});
    assert_eq!(
        container_names(&merged(&rollout, &patch), "/spec/template/spec/containers"),
        ["b"]
    );
}

// ---- strategic merge: lists with merge keys ----

#[test]
fn new_list_elements_are_prepended() {
    // kustomize "container patch" and "volumes patch"
    let resource = deployment_with_containers(&["foo1", "foo2", "foo3"]);
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "foo0"}]}}}});
    assert_eq!(
        container_names(&merged(&resource, &patch), "/spec/template/spec/containers"),
        ["foo0", "foo1", "foo2", "foo3"]
    );
    let resource = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "spec": {"template": {"spec": {"volumes": [{"name": "foo1"}, {"name": "foo2"}]}}}
    });
    let patch = json!({"spec": {"template": {"spec": {"volumes": [{"name": "foo0"}]}}}});
    assert_eq!(
        container_names(&merged(&resource, &patch), "/spec/template/spec/volumes"),
        ["foo0", "foo1", "foo2"]
    );
}

#[test]
fn patched_elements_move_to_the_front_in_patch_order() {
    // kyaml lists the patch's elements first: this is why upstream runs a foreach with
    // patchStrategicMerge over the list in reverse.
    let resource = deployment_with_containers(&["a", "b", "c"]);
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "x"}, {"name": "b", "image": "y"}
    ]}}}});
    let result = merged(&resource, &patch);
    assert_eq!(
        result.pointer("/spec/template/spec/containers"),
        Some(&json!([
            {"name": "c", "image": "x"},
            {"name": "b", "image": "y"},
            {"name": "a"}
        ]))
    );
}

#[test]
fn upstream_merge_patch_of_a_deployment() {
    // strategicMergePatch_test.go TestMergePatch, first case
    let base = yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: wordpress, labels: {app: wordpress}}
spec:
  selector: {matchLabels: {app: wordpress}}
  strategy: {type: Recreate}
  template:
    metadata: {labels: {app: wordpress}}
    spec:
      containers:
      - image: wordpress:4.8-apache
        name: wordpress
        ports: [{containerPort: 80, name: wordpress}]
        volumeMounts: [{name: wordpress-persistent-storage, mountPath: /var/www/html}]
      volumes: [{name: wordpress-persistent-storage}]
"#,
    );
    let overlay = yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: wordpress}
spec:
  template:
    spec:
      initContainers:
      - name: init-command
        image: debian
        command: ["echo $(WORDPRESS_SERVICE)", "echo $(MYSQL_SERVICE)"]
      containers:
      - {name: nginx, image: nginx}
      - name: wordpress
        env:
        - {name: WORDPRESS_DB_HOST, value: $(MYSQL_SERVICE)}
        - name: WORDPRESS_DB_PASSWORD
          valueFrom: {secretKeyRef: {name: mysql-pass, key: password}}
"#,
    );
    let expected: Value = serde_json::from_str(
        r#"{"apiVersion": "apps/v1","kind": "Deployment","metadata": {"name": "wordpress","labels": {"app": "wordpress"}},"spec": {"selector": {"matchLabels": {"app": "wordpress"}},"strategy": {"type": "Recreate"},"template": {"metadata": {"labels": {"app": "wordpress"}},"spec": {"containers": [{"name": "nginx","image": "nginx"},{"image": "wordpress:4.8-apache","name": "wordpress","ports": [{"containerPort": 80,"name": "wordpress"}],"volumeMounts": [{"name": "wordpress-persistent-storage","mountPath": "/var/www/html"}],"env": [{"name": "WORDPRESS_DB_HOST","value": "$(MYSQL_SERVICE)"},{"name": "WORDPRESS_DB_PASSWORD","valueFrom": {"secretKeyRef": {"name": "mysql-pass","key": "password"}}}]}],"volumes": [{"name": "wordpress-persistent-storage"}],"initContainers": [{"name": "init-command","image": "debian","command": ["echo $(WORDPRESS_SERVICE)","echo $(MYSQL_SERVICE)"]}]}}}}"#,
    )
    .unwrap_or_default();
    assert_eq!(merged(&base, &overlay), expected);
}

#[test]
fn merge_keys_of_the_pod_spec() {
    let pod = yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: p
  finalizers: [a, b]
  ownerReferences: [{uid: "1", name: rs}]
spec:
  imagePullSecrets: [{name: one}]
  hostAliases: [{ip: 1.1.1.1, hostnames: [a]}]
  topologySpreadConstraints:
  - {topologyKey: zone, whenUnsatisfiable: DoNotSchedule, maxSkew: 1}
  containers:
  - name: c
    env: [{name: A, value: "1"}, {name: B, value: "2"}]
    volumeMounts: [{name: v, mountPath: /data}]
    ports: [{containerPort: 80, protocol: TCP}]
"#,
    );
    let patch = yaml(
        r#"
metadata:
  finalizers: [c, a]
  ownerReferences: [{uid: "1", controller: true}]
spec:
  imagePullSecrets: [{name: two}]
  hostAliases: [{ip: 1.1.1.1, hostnames: [b]}]
  topologySpreadConstraints:
  - {topologyKey: zone, whenUnsatisfiable: DoNotSchedule, maxSkew: 2}
  containers:
  - name: c
    env: [{name: B, value: "3"}]
    volumeMounts: [{name: w, mountPath: /data}]
    ports: [{containerPort: 80, protocol: TCP, name: http}]
"#,
    );
    let expected = yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: p
  finalizers: [c, a, b]
  ownerReferences: [{uid: "1", name: rs, controller: true}]
spec:
  imagePullSecrets: [{name: two}, {name: one}]
  hostAliases: [{ip: 1.1.1.1, hostnames: [b]}]
  topologySpreadConstraints:
  - {topologyKey: zone, whenUnsatisfiable: DoNotSchedule, maxSkew: 2}
  containers:
  - name: c
    env: [{name: B, value: "3"}, {name: A, value: "1"}]
    volumeMounts: [{name: w, mountPath: /data}]
    ports: [{containerPort: 80, protocol: TCP, name: http}]
"#,
    );
    assert_eq!(merged(&pod, &patch), expected);
}

#[test]
fn merge_keys_apply_in_cron_job_and_service_templates() {
    let cron_job = json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}}
    });
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "b"}]
    }}}}}});
    assert_eq!(
        container_names(
            &merged(&cron_job, &patch),
            "/spec/jobTemplate/spec/template/spec/containers"
        ),
        ["b", "a"]
    );
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}
    });
    let patch = json!({"spec": {"ports": [
        {"port": 80, "protocol": "TCP", "name": "http"},
        {"port": 443, "protocol": "TCP"}
    ]}});
    assert_eq!(
        merged(&service, &patch)["spec"]["ports"],
        json!([
            {"port": 80, "protocol": "TCP", "targetPort": 8080, "name": "http"},
            {"port": 443, "protocol": "TCP"}
        ])
    );
}

#[test]
fn container_ports_merge_on_port_and_protocol() {
    // kustomize "list map keys" cases
    let deployment = |ports: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "i", "ports": ports}
            ]}}}
        })
    };
    let ports_after = |resource: Value, patch: Value| {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "i", "ports": patch}
        ]}}}});
        merged(&resource, &patch)
            .pointer("/spec/template/spec/containers/0/ports")
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        ports_after(
            deployment(json!([{"containerPort": 8080, "protocol": "TCP"}])),
            json!([
                {"containerPort": 8080, "protocol": "UDP"},
                {"containerPort": 80, "protocol": "UDP"}
            ])
        ),
        json!([
            {"containerPort": 8080, "protocol": "UDP"},
            {"containerPort": 80, "protocol": "UDP"},
            {"containerPort": 8080, "protocol": "TCP"}
        ])
    );
    assert_eq!(
        ports_after(
            deployment(json!([
                {"containerPort": 8080, "protocol": "UDP", "name": "UDP-name-original"},
                {"containerPort": 8080, "protocol": "TCP", "name": "TCP-name-original"}
            ])),
            json!([{"containerPort": 8080, "protocol": "UDP", "name": "UDP-name-patch"}])
        ),
        json!([
            {"containerPort": 8080, "protocol": "UDP", "name": "UDP-name-patch"},
            {"containerPort": 8080, "protocol": "TCP", "name": "TCP-name-original"}
        ])
    );
    assert_eq!(
        ports_after(
            deployment(json!([{"containerPort": 8080}])),
            json!([{"containerPort": 80}])
        ),
        json!([{"containerPort": 80}, {"containerPort": 8080}])
    );
}

#[test]
fn resource_elements_without_merge_key_are_kept_at_the_end() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"imagePullSecrets": [{"other": "x"}, {"name": "a"}]}
    });
    let patch = json!({"spec": {"imagePullSecrets": [{"name": "b"}]}});
    assert_eq!(
        merged(&pod, &patch)["spec"]["imagePullSecrets"],
        json!([{"name": "b"}, {"name": "a"}, {"other": "x"}])
    );
}

// ---- strategic merge: directives ----

fn test_deployment() -> Value {
    yaml(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: myDeploy\nspec:\n  template:\n    spec:\n      containers:\n      - name: test\n        image: test\n",
    )
}

#[test]
fn patch_directive_delete_on_an_element() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "test", "image": "test", "$patch": "delete"}
    ]}}}});
    assert_eq!(
        merged(&test_deployment(), &patch).pointer("/spec/template/spec/containers"),
        Some(&json!([]))
    );
}

#[test]
fn patch_directive_replace_on_a_map() {
    let patch = json!({"spec": {"template": {"spec": {
        "$patch": "replace", "containers": [{"name": "new"}]
    }}}});
    assert_eq!(
        merged(&test_deployment(), &patch).pointer("/spec/template/spec"),
        Some(&json!({"containers": [{"name": "new"}]}))
    );
}

#[test]
fn patch_directive_merge_on_an_element() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "test", "image": "test1", "$patch": "merge"}
    ]}}}});
    assert_eq!(
        merged(&test_deployment(), &patch).pointer("/spec/template/spec/containers"),
        Some(&json!([{"name": "test", "image": "test1"}]))
    );
}

#[test]
fn patch_directives_as_list_elements() {
    let delete = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "whatever"}, {"$patch": "delete"}
    ]}}}});
    assert_eq!(
        merged(&test_deployment(), &delete).pointer("/spec/template/spec"),
        Some(&json!({}))
    );
    let replace = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "replace", "image": "replace"}, {"$patch": "replace"}
    ]}}}});
    assert_eq!(
        merged(&test_deployment(), &replace).pointer("/spec/template/spec/containers"),
        Some(&json!([{"name": "replace", "image": "replace"}]))
    );
    let merge = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "test2", "image": "test2"}, {"$patch": "merge"}
    ]}}}});
    assert_eq!(
        merged(&test_deployment(), &merge).pointer("/spec/template/spec/containers"),
        Some(&json!([{"name": "test2", "image": "test2"}, {"name": "test", "image": "test"}]))
    );
}

#[test]
fn patch_directive_delete_on_a_map() {
    let resource = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"securityContext": {"runAsUser": 1}, "hostNetwork": true}});
    let patch = json!({"spec": {"securityContext": {"$patch": "delete"}}});
    assert_eq!(
        merged(&resource, &patch)["spec"],
        json!({"hostNetwork": true})
    );
}

#[test]
fn unknown_patch_directive_is_an_error() {
    let patch = json!({"spec": {"template": {"spec": {"$patch": "retain"}}}});
    assert_eq!(
        strategic_merge(&test_deployment(), &patch),
        Err(MutateError::UnknownPatchStrategy("retain".to_owned()))
    );
}

#[test]
fn apimachinery_only_directives_are_plain_keys() {
    // kyaml, which upstream uses, knows only `$patch`
    let resource = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    let patch = json!({"metadata": {"$retainKeys": ["name"]}});
    assert_eq!(
        merged(&resource, &patch)["metadata"],
        json!({"name": "c", "$retainKeys": ["name"]})
    );
}

#[test]
fn kind_mismatch_is_an_error_with_its_path() {
    let patch = json!({"spec": {"template": {"spec": {"containers": {"name": "x"}}}}});
    assert_eq!(
        strategic_merge(&test_deployment(), &patch),
        Err(MutateError::KindMismatch {
            path: "spec.template.spec.containers".to_owned(),
            expected: "SequenceNode",
            found: "MappingNode",
        })
    );
}

// ---- anchors (strategicPreprocessing_test.go) ----

fn resolved(patch: &str, resource: &str) -> Result<Value, anchors::Interrupt> {
    let mut patch: Value = yaml(patch);
    anchors::resolve(&mut patch, &yaml(resource)).map(|()| patch)
}

fn resolved_ok(patch: &str, resource: &str) -> Value {
    match resolved(patch, resource) {
        Ok(patch) => patch,
        Err(interrupt) => panic!("anchors not resolved: {interrupt:?}"),
    }
}

const POD_HELLO: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  containers: [{name: hello, image: busybox}]
"#;

const POD_THREE_CONTAINERS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: hello}
spec:
  containers:
  - {name: hello, image: "gcr.io/google-containers/busybox:latest"}
  - {name: hello2, image: "gcr.io/google-containers/busybox:latest"}
  - {name: hello3, image: "gcr.io/google-containers/nginx:latest"}
"#;

#[test]
fn add_if_not_present_and_global_anchor_that_passes() {
    let patch = r#"
metadata:
  annotations: {"+(cluster-autoscaler.kubernetes.io/safe-to-evict)": "true"}
spec:
  volumes: [{"<(emptyDir)": {}}]
"#;
    let resource = r#"
apiVersion: v1
kind: Pod
metadata: {name: static-web, labels: {role: myrole}}
spec:
  containers: [{name: web, image: 1nginx}]
  volumes:
  - {emptyDir: {}, name: cache-volume}
  - {secret: {secretName: default-token-6gplg}, name: default-token-6gplg}
"#;
    assert_eq!(
        resolved_ok(patch, resource),
        json!({"metadata": {"annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}}})
    );
}

#[test]
fn null_patch_values_are_kept() {
    assert_eq!(
        resolved_ok("metadata: null", POD_HELLO),
        json!({"metadata": null})
    );
    let resource = "metadata: {annotations: {annotation1: atest2}, name: check-root-user}";
    assert_eq!(
        resolved_ok("metadata: {annotations: {annotation1: null}}", resource),
        json!({"metadata": {"annotations": {"annotation1": null}}})
    );
}

#[test]
fn condition_on_list_elements_names_them_after_the_resource() {
    let patch = r#"
spec:
  containers: [{"(name)": "*", image: "gcr.io/google-containers/busybox:latest"}]
  imagePullSecrets: [{name: regcred}]
"#;
    assert_eq!(
        resolved_ok(patch, POD_HELLO),
        json!({"spec": {
            "containers": [{"name": "hello", "image": "gcr.io/google-containers/busybox:latest"}],
            "imagePullSecrets": [{"name": "regcred"}]
        }})
    );
    let patch = r#"
spec:
  containers:
  - {"(name)": "*", "(image)": "gcr.io/google-containers/busybox:*", new_filed: must be inserted}
  imagePullSecrets: [{name: regcred}]
"#;
    let resource = r#"
apiVersion: v1
kind: Pod
metadata: {name: hello2}
spec:
  containers: [{name: hello, image: "gcr.io/google-containers/busybox:latest"}]
"#;
    assert_eq!(
        resolved_ok(patch, resource),
        json!({"spec": {
            "containers": [{"name": "hello", "new_filed": "must be inserted"}],
            "imagePullSecrets": [{"name": "regcred"}]
        }})
    );
}

#[test]
fn elements_holding_only_conditions_add_nothing() {
    for condition in [
        "gcr.io/google-containers/busybox:latest",
        "gcr.io/google-containers/busybox:*",
    ] {
        let patch = format!(
            "spec:\n  containers: [{{\"(image)\": \"{condition}\"}}]\n  imagePullSecrets: [{{name: regcred}}]\n"
        );
        assert_eq!(
            resolved_ok(&patch, POD_THREE_CONTAINERS),
            json!({"spec": {"imagePullSecrets": [{"name": "regcred"}]}}),
            "{condition}"
        );
    }
    // end to end (TestMergePatch): the containers are left alone
    let patch = yaml(
        "spec:\n  containers: [{\"(image)\": \"gcr.io/google-containers/nginx:*\"}]\n  imagePullSecrets: [{name: regcred}]\n",
    );
    let resource = yaml(POD_THREE_CONTAINERS);
    let mut expected = resource.clone();
    expected["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    assert_eq!(merged(&resource, &patch), expected);
}

#[test]
fn global_anchor_that_fails_skips_the_patch() {
    let patch = r#"
metadata:
  annotations: {"+(cluster-autoscaler.kubernetes.io/safe-to-evict)": true}
  labels: {"+(add-labels)": add}
spec:
  volumes: [{"<(hostPath)": {path: "*"}}]
"#;
    let resource = r#"
kind: Pod
apiVersion: v1
metadata: {name: nginx}
spec:
  containers:
  - name: nginx
    image: nginx:latest
    volumeMounts: [{mountPath: /cache, name: cache-volume}]
  volumes: [{name: cache-volume, hostPath: {path: /data, type: Directory}}]
"#;
    assert_eq!(
        resolved_ok(patch, resource),
        json!({"metadata": {
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": true},
            "labels": {"add-labels": "add"}
        }})
    );
    let resource_with_annotation = r#"
kind: Pod
apiVersion: v1
metadata:
  name: nginx
  annotations: {cluster-autoscaler.kubernetes.io/safe-to-evict: "false"}
spec:
  volumes: [{name: cache-volume, emptyDir: {}}]
"#;
    let patch = r#"
metadata:
  annotations: {"+(cluster-autoscaler.kubernetes.io/safe-to-evict)": true}
spec:
  volumes: [{"<(hostPath)": {path: "*"}}]
"#;
    assert!(matches!(
        resolved(patch, resource_with_annotation),
        Err(anchors::Interrupt::Global(_))
    ));
    let resource = yaml(resource_with_annotation);
    assert_eq!(merged(&resource, &yaml(patch)), resource);
}

#[test]
fn global_anchor_nested_in_a_list_element() {
    let patch = r#"
metadata:
  annotations: {"+(cluster-autoscaler.kubernetes.io/safe-to-evict)": true}
spec:
  volumes: [{hostPath: {"<(path)": "*data"}}]
"#;
    let resource = r#"
kind: Pod
apiVersion: v1
metadata: {name: nginx}
spec:
  volumes: [{name: cache-volume, hostPath: {path: /data, type: Directory}}]
"#;
    assert_eq!(
        resolved_ok(patch, resource),
        json!({"metadata": {"annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": true}}})
    );
}

#[test]
fn add_if_not_present_keeps_existing_values() {
    let patch = r#"
metadata:
  annotations:
    "+(alb.ingress.kubernetes.io/backend-protocol)": HTTPS
    "+(kubernetes.io/ingress.class)": alb
"#;
    let resource = r#"
apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  annotations:
    alb.ingress.kubernetes.io/backend-protocol: HTTPS
    kubernetes.io/ingress.class: test
  name: argocd
"#;
    assert_eq!(resolved_ok(patch, resource), json!({}));
    let resource = yaml(resource);
    assert_eq!(merged(&resource, &yaml(patch)), resource);
}

#[test]
fn add_if_not_present_inside_a_conditional_list_element() {
    let patch = r#"
spec:
  template:
    spec:
      containers:
      - "(name)": "*"
        resources:
          limits: {"+(memory)": 300Mi, "+(cpu)": "100"}
"#;
    let resource = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: qos-demo}
spec:
  template:
    spec:
      containers:
      - {name: nginx, image: "nginx:latest", resources: {limits: {cpu: 50m}}}
"#;
    assert_eq!(
        resolved_ok(patch, resource),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "resources": {"limits": {"memory": "300Mi"}}}
        ]}}}})
    );
}

#[test]
fn conditions_on_sibling_lists_and_add_if_not_present() {
    let patch = r#"
metadata:
  annotations: {"+(annotation1)": atest1, "+(annotation2)": atest2}
  labels: {"+(label1)": test1}
spec:
  "(volumes)": [{"(hostPath)": {path: /var/run/docker.sock}}]
  containers:
  - {"(image)": "*:latest", command: [ls], imagePullPolicy: Always}
"#;
    let resource = r#"
apiVersion: v1
kind: Pod
metadata:
  annotations: {annotation1: atest2}
  labels: {label1: test2, label2: test2}
  name: check-root-user
spec:
  containers:
  - {command: [ll], image: "nginx:latest", imagePullPolicy: Never, name: nginx}
  - {image: "busybox:latest", imagePullPolicy: Never, name: busybox}
  volumes: [{hostPath: {path: /var/run/docker.sock}, name: test-volume}]
"#;
    assert_eq!(
        resolved_ok(patch, resource),
        json!({
            "metadata": {"annotations": {"annotation2": "atest2"}},
            "spec": {"containers": [
                {"command": ["ls"], "imagePullPolicy": "Always", "name": "nginx"},
                {"command": ["ls"], "imagePullPolicy": "Always", "name": "busybox"}
            ]}
        })
    );
}

#[test]
fn conditions_in_several_lists() {
    let patch = r#"
spec:
  securityContext: {runAsNonRoot: true}
  initContainers: [{"(name)": "*", securityContext: {runAsNonRoot: true}}]
  containers: [{"(name)": "*", securityContext: {runAsNonRoot: true}}]
"#;
    let resource = r#"
spec:
  initContainers: [{name: initbusy, image: "busybox:1.28"}]
  containers: [{image: "busybox:1.28", name: busybox}]
"#;
    assert_eq!(
        resolved_ok(patch, resource),
        json!({"spec": {
            "securityContext": {"runAsNonRoot": true},
            "initContainers": [{"name": "initbusy", "securityContext": {"runAsNonRoot": true}}],
            "containers": [{"name": "busybox", "securityContext": {"runAsNonRoot": true}}]
        }})
    );
}

#[test]
fn condition_matching_some_elements() {
    // Test_ConditionCheck_SeveralElementsMatchExceptOne
    let patch = r#"
containers: [{"(name)": "hello?", image: "gcr.io/google-containers/busybox:1"}]
"#;
    let resource = r#"
containers:
- {name: hello, image: "gcr.io/google-containers/busybox:latest"}
- {name: hello2, image: "gcr.io/google-containers/busybox:latest"}
- {name: hello3, image: "gcr.io/google-containers/nginx:latest"}
"#;
    assert_eq!(
        resolved_ok(patch, resource),
        json!({"containers": [
            {"name": "hello2", "image": "gcr.io/google-containers/busybox:1"},
            {"name": "hello3", "image": "gcr.io/google-containers/busybox:1"}
        ]})
    );
}

#[test]
fn condition_on_a_missing_key_skips_the_patch() {
    // Test_NonExistingKeyMustFailPreprocessing
    let patch = r#"
metadata:
  labels: {"(key1)": value1}
spec:
  containers: [{name: busybox, image: "gcr.io/google-containers/busybox:latest"}]
"#;
    assert_eq!(
        resolved(patch, POD_HELLO),
        Err(anchors::Interrupt::Condition(
            "could not found \"key1\" key in the resource".to_owned()
        ))
    );
    let resource = yaml(POD_HELLO);
    assert_eq!(merged(&resource, &yaml(patch)), resource);
}

#[test]
fn condition_at_the_top_that_fails_skips_the_patch() {
    let resource = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}}});
    let patch = json!({"metadata": {"labels": {"(app)": "db", "tier": "backend"}}});
    assert_eq!(merged(&resource, &patch), resource);
    let patch = json!({"metadata": {"labels": {"(app)": "w*", "tier": "backend"}}});
    assert_eq!(
        merged(&resource, &patch)["metadata"]["labels"],
        json!({"app": "web", "tier": "backend"})
    );
}

#[test]
fn nested_conditional_with_add_if_not_present() {
    // Test_NestedConditionals
    let patch = r#"{"spec":{"template":{"spec":{"volumes":[{"(emptyDir)":{"+(sizeLimit)":"20Mi"},"name":"*"}]}}}}"#;
    let resource = r#"{"spec":{"template":{"spec":{"volumes":[{"emptyDir":{},"name":"vol02"}]}}}}"#;
    assert_eq!(
        resolved_ok(patch, resource),
        json!({"spec": {"template": {"spec": {"volumes": [
            {"emptyDir": {"sizeLimit": "20Mi"}, "name": "vol02"}
        ]}}}})
    );
}

#[test]
fn condition_scalars_compare_as_text() {
    let resource = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 3}});
    let patch = json!({"spec": {"(replicas)": "3", "paused": true}});
    assert_eq!(merged(&resource, &patch)["spec"]["paused"], json!(true));
    let patch = json!({"spec": {"(replicas)": ">2", "paused": true}});
    assert_eq!(merged(&resource, &patch)["spec"]["paused"], json!(true));
    let patch = json!({"spec": {"(replicas)": 4, "paused": true}});
    assert_eq!(merged(&resource, &patch), resource);
}

#[test]
fn empty_maps_are_removed_from_the_patch() {
    // upstream drops patch nodes without values, `{}` included
    let resource =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}});
    let patch = json!({"spec": {"securityContext": {}, "hostNetwork": false}});
    assert_eq!(
        merged(&resource, &patch)["spec"],
        json!({"hostNetwork": false})
    );
}

#[test]
fn anchored_patch_list_against_a_resource_map_is_an_error() {
    let resource = json!({"spec": {"containers": {"name": "x"}}});
    let patch = json!({"spec": {"containers": [{"(name)": "*", "image": "y"}]}});
    assert!(matches!(
        strategic_merge(&resource, &patch),
        Err(MutateError::Preprocess(_))
    ));
}

// ---- patchesJson6902 (patchJSON6902_test.go) ----

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: myDeploy}
spec:
  replica: 2
  template:
    metadata: {labels: {old-label: old-value}}
    spec:
      containers: [{image: nginx, name: nginx}]
"#;

#[test]
fn json_patch_replace_add_and_insert() {
    let deployment = yaml(DEPLOYMENT);
    let result = patched(
        &deployment,
        "- op: replace\n  path: /spec/replica\n  value: 5\n",
    );
    assert_eq!(result["spec"]["replica"], json!(5));

    let result = patched(
        &deployment,
        "- op: add\n  path: /spec/template/spec/containers/1\n  value: {\"name\":\"new-nginx\",\"image\":\"new-nginx-image\"}\n",
    );
    assert_eq!(
        result.pointer("/spec/template/spec/containers"),
        Some(&json!([
            {"image": "nginx", "name": "nginx"},
            {"name": "new-nginx", "image": "new-nginx-image"}
        ]))
    );

    let result = patched(
        &deployment,
        "- op: replace\n  path: /spec/template/spec/containers/0\n  value: {\"name\":\"new-nginx\",\"image\":\"new-nginx-image\"}\n",
    );
    assert_eq!(
        result.pointer("/spec/template/spec/containers"),
        Some(&json!([{"name": "new-nginx", "image": "new-nginx-image"}]))
    );

    let result = patched(
        &deployment,
        r#"
- op: replace
  path: /spec/template/spec/containers/0/name
  value: my-nginx
- op: add
  path: /spec/replica
  value: 999
- op: add
  path: /spec/template/spec/volumes
  value:
  - emptyDir:
      medium: Memory
    name: vault-secret
"#,
    );
    let mut expected = deployment.clone();
    expected["spec"]["replica"] = json!(999);
    expected["spec"]["template"]["spec"]["containers"][0]["name"] = json!("my-nginx");
    expected["spec"]["template"]["spec"]["volumes"] =
        json!([{"emptyDir": {"medium": "Memory"}, "name": "vault-secret"}]);
    assert_eq!(result, expected);
}

#[test]
fn json_patch_as_a_json_string() {
    let deployment = yaml(DEPLOYMENT);
    let result = patched(
        &deployment,
        r#"[{"op": "add", "path": "/metadata/labels", "value": {"a~b/c": "x"}}]"#,
    );
    assert_eq!(result["metadata"]["labels"], json!({"a~b/c": "x"}));
}

#[test]
fn json_patch_add_creates_missing_parents() {
    // Test_MissingPaths
    let pod = yaml("spec:\n  containers:\n  - name: nginx\n    image: nginx:1.14.2\n");
    let toleration = json!({"key": "node-role.kubernetes.io/test", "effect": "NoSchedule", "operator": "Exists"});
    let result = patched(
        &pod,
        "- path: \"/spec/nodeSelector\"\n  op: add\n  value: {\"node.kubernetes.io/role\": \"test\"}\n",
    );
    assert_eq!(
        result["spec"]["nodeSelector"],
        json!({"node.kubernetes.io/role": "test"})
    );
    for path in [
        "/spec/tolerations/0",
        "/spec/tolerations/-1",
        "/spec/tolerations/-",
    ] {
        let result = patched(
            &pod,
            &format!("- path: \"{path}\"\n  op: add\n  value: {toleration}\n"),
        );
        assert_eq!(result["spec"]["tolerations"], json!([toleration]), "{path}");
    }
    let result = patched(&pod, "- {op: add, path: /a/b/2/c, value: 1}\n");
    assert_eq!(result["a"], json!({"b": [null, null, {"c": 1}]}));
    // the conformance policy add-node-affinity
    let deployment =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {}}}});
    let result = patched(
        &deployment,
        "- op: add\n  path: /spec/template/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/-1/matchExpressions/-1\n  value: {key: zone_weight, operator: Lt, values: [\"400\"]}\n",
    );
    assert_eq!(
        result.pointer("/spec/template/spec/affinity"),
        Some(
            &json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "zone_weight", "operator": "Lt", "values": ["400"]}
                ]}]
            }}})
        )
    );
}

#[test]
fn json_patch_negative_indices() {
    let pod = yaml("spec:\n  tolerations:\n  - {key: a}\n  - {key: b}\n");
    let result = patched(
        &pod,
        "- {path: /spec/tolerations/-1, op: add, value: {key: c}}\n",
    );
    assert_eq!(
        result["spec"]["tolerations"],
        json!([{"key": "a"}, {"key": "b"}, {"key": "c"}])
    );
    let result = patched(&pod, "- {path: /spec/tolerations/-1, op: remove}\n");
    assert_eq!(result["spec"]["tolerations"], json!([{"key": "a"}]));
    let result = patched(
        &pod,
        "- {path: /spec/tolerations/-2/key, op: replace, value: z}\n",
    );
    assert_eq!(
        result["spec"]["tolerations"],
        json!([{"key": "z"}, {"key": "b"}])
    );
}

#[test]
fn json_patch_remove_of_a_missing_path_does_nothing() {
    let deployment = yaml(DEPLOYMENT);
    for path in [
        "/metadata/labels/absent",
        "/metadata/missing/deeper",
        "/spec/template/spec/containers/5",
        "/spec/template/spec/containers/-7",
        "/spec/replica/inside-a-scalar",
    ] {
        assert_eq!(
            patched(&deployment, &format!("- {{op: remove, path: {path}}}\n")),
            deployment,
            "{path}"
        );
    }
    let result = patched(&deployment, "- {op: remove, path: /spec/replica}\n");
    assert!(result["spec"].get("replica").is_none());
}

#[test]
fn json_patch_move_copy_and_test() {
    let resource = json!({"a": {"x": 1}, "b": [1, 2, 3]});
    let result = patched(&resource, "- {op: move, from: /a/x, path: /b/-1}\n");
    assert_eq!(result, json!({"a": {}, "b": [1, 2, 3, 1]}));
    let result = patched(&resource, "- {op: copy, from: /b/-1, path: /a/y}\n");
    assert_eq!(result["a"], json!({"x": 1, "y": 3}));
    assert_eq!(
        patched(&resource, "- {op: test, path: /a/x, value: 1}\n"),
        resource
    );
    assert_eq!(
        patched(&resource, "- {op: test, path: /a/missing, value: null}\n"),
        resource
    );
    assert!(matches!(
        apply_json6902(&resource, "- {op: test, path: /a/x, value: 2}\n"),
        Err(MutateError::ApplyPatch { index: 0, .. })
    ));
}

#[test]
fn json_patch_errors() {
    let deployment = yaml(DEPLOYMENT);
    assert!(matches!(
        apply_json6902(
            &deployment,
            "- {op: replace, path: /spec/missing, value: 1}\n"
        ),
        Err(MutateError::ApplyPatch { index: 0, .. })
    ));
    assert!(matches!(
        apply_json6902(
            &deployment,
            "- {op: add, path: /spec/x, value: 1}\n- {op: add, path: /spec/replica/deeper, value: 1}\n"
        ),
        Err(MutateError::ApplyPatch { index: 1, .. })
    ));
    for invalid in [
        "- {op: frobnicate, path: /spec}\n",
        "- {op: add, path: /spec}\n",
        "- {op: move, path: /spec}\n",
        "op: add\n",
        "[not json",
    ] {
        assert!(
            matches!(
                apply_json6902(&deployment, invalid),
                Err(MutateError::DecodePatch(_))
            ),
            "{invalid}"
        );
    }
}

// ---- diff ----

#[test]
fn diff_gives_a_patch_that_reproduces_the_new_resource() {
    let old = yaml(DEPLOYMENT);
    let patch = yaml(
        "metadata: {labels: {a/b: c}}\nspec:\n  replica: null\n  template:\n    spec:\n      containers: [{name: sidecar, image: s}]\n",
    );
    let new = merged(&old, &patch);
    let operations = diff(&old, &new);
    let mut rebuilt = old.clone();
    assert!(json_patch::patch(&mut rebuilt, &operations).is_ok());
    assert_eq!(rebuilt, new);
    let serialized = serde_json::to_value(&operations).unwrap_or_default();
    assert!(
        serialized
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op["path"] == "/metadata/labels")),
        "{serialized}"
    );
    assert!(diff(&old, &old).is_empty());
}

// ---- conformance corpus (kyverno-cli test-mutate, kyverno-policies) ----

#[test]
fn conformance_foreach_add_if_not_present_in_a_conditional_volume() {
    // test-mutate/foreach/addIfNotPresent, for the element vol02
    let deployment = yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: svc-sizelimit-test, namespace: default}
spec:
  template:
    spec:
      containers:
      - name: pause
        image: registry.k8s.io/pause:3.3
        volumeMounts: [{name: vol02, mountPath: /opt02}]
      volumes: [{name: vol02, emptyDir: {}}]
"#,
    );
    let patch = yaml(
        "spec:\n  template:\n    spec:\n      volumes:\n      - (emptyDir):\n          +(sizeLimit): 20Mi\n        name: vol02\n",
    );
    let result = merged(&deployment, &patch);
    assert_eq!(
        result.pointer("/spec/template/spec/volumes"),
        Some(&json!([{"name": "vol02", "emptyDir": {"sizeLimit": "20Mi"}}]))
    );
    // applied again, the size is already there
    assert_eq!(merged(&result, &patch), result);
}

#[test]
fn conformance_foreach_patches_in_reverse_keep_the_container_order() {
    // test-mutate/foreach, policy mutate-images: upstream applies a foreach
    // patchStrategicMerge to the elements in reverse order
    let mut pod = yaml(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: mypod}
spec:
  containers:
  - {image: "registry.digitalocean.com/runlevl4/nginxasdfasdf:latest", name: busybox01}
  - {image: "bbbbbbbbbb-ccccc:1.28", name: busybox02}
"#,
    );
    for (name, image) in [
        (
            "busybox02",
            "registry.digitalocean.com/runlevl4/bbbbbbbbbb-ccccc:1.28",
        ),
        (
            "busybox01",
            "registry.digitalocean.com/runlevl4/nginxasdfasdf:latest",
        ),
    ] {
        let patch = json!({"spec": {"containers": [{"image": image, "name": name}]}});
        pod = merged(&pod, &patch);
    }
    assert_eq!(
        pod["spec"]["containers"],
        json!([
            {"image": "registry.digitalocean.com/runlevl4/nginxasdfasdf:latest", "name": "busybox01"},
            {"image": "registry.digitalocean.com/runlevl4/bbbbbbbbbb-ccccc:1.28", "name": "busybox02"}
        ])
    );
}

#[test]
fn conformance_add_certificates_volume() {
    // kyverno-policies other/add-certificates-volume, for the element nginx
    let pod = yaml(
        r#"
apiVersion: v1
kind: Pod
metadata:
  labels: {app: myapp}
  annotations: {inject-certs: enabled}
  name: mypod
spec:
  containers: [{image: "nginx:latest", name: nginx}]
"#,
    );
    let patch = yaml(
        r#"
spec:
  containers:
  - name: nginx
    volumeMounts: [{name: etc-ssl-certs, mountPath: /etc/ssl/certs}]
  volumes:
  - name: etc-ssl-certs
    configMap: {name: ca-pemstore}
"#,
    );
    let result = merged(&pod, &patch);
    assert_eq!(
        result["spec"],
        json!({
            "containers": [{
                "image": "nginx:latest", "name": "nginx",
                "volumeMounts": [{"name": "etc-ssl-certs", "mountPath": "/etc/ssl/certs"}]
            }],
            "volumes": [{"name": "etc-ssl-certs", "configMap": {"name": "ca-pemstore"}}]
        })
    );
}
