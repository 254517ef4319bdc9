use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::cel::{CelError, Program, scope};
use crate::engine::{Lookup, ProviderError};

/// A cluster with a few ConfigMaps and a ComputeClass, a GlobalContextEntry, one image and two
/// external services.
struct Cluster;

fn config_map(namespace: &str, name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "data": {"registries": "enabled"}
    })
}

impl ContextProvider for Cluster {
    fn config_map(&self, _: &str, _: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::Unavailable)
    }

    fn api_call(
        &self,
        method: &str,
        url_path: &str,
        body: Option<&Value>,
    ) -> Result<Lookup, ProviderError> {
        match (method, url_path) {
            ("GET", "/api/v1/namespaces/default/configmaps/cm") => {
                Ok(Lookup::Found(config_map("default", "cm", "a")))
            }
            ("GET", "/api/v1/namespaces/team/configmaps/cm") => {
                Ok(Lookup::Found(config_map("team", "cm", "t")))
            }
            ("GET", "/apis/cloud.google.com/v1/computeclasses/spot") => Ok(Lookup::Found(
                json!({"kind": "ComputeClass", "spec": {"priorities": [{"spot": true}]}}),
            )),
            ("GET", "/api/v1/namespaces/default/configmaps") => Ok(Lookup::Found(json!({
                "kind": "ConfigMapList",
                "items": [config_map("default", "cm", "a"), config_map("default", "other", "b")]
            }))),
            ("GET", "/api/v1/namespaces/default/configmaps/broken") => {
                Err(ProviderError("the cluster is down".to_owned()))
            }
            ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews") => {
                let mut review = body.cloned().unwrap_or_default();
                review["status"] = json!({"allowed": true});
                Ok(Lookup::Found(review))
            }
            _ => Ok(Lookup::Unavailable),
        }
    }

    fn service_call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Lookup, ProviderError> {
        match (method, url) {
            ("GET", "https://example.com/config") => Ok(Lookup::Found(json!({"allowed": true}))),
            ("GET", "https://example.com/text") => Ok(Lookup::Found(json!("plain"))),
            ("POST" | "PUT", "https://example.com/echo") => {
                Ok(Lookup::Found(json!({"received": body.cloned()})))
            }
            ("GET", "https://example.com/down") => Err(ProviderError("HTTP 503".to_owned())),
            _ => Ok(Lookup::Unavailable),
        }
    }

    fn global_context(&self, name: &str) -> Result<Lookup, ProviderError> {
        match name {
            "deployments" => Ok(Lookup::Found(
                json!({"items": [{"name": "a"}, {"name": "b"}]}),
            )),
            "count" => Ok(Lookup::Found(json!(3))),
            _ => Ok(Lookup::Unavailable),
        }
    }

    fn image_data(&self, reference: &str) -> Result<Lookup, ProviderError> {
        match reference {
            "nginx:1.21" => Ok(Lookup::Found(
                json!({"image": "nginx:1.21", "config": {"architecture": "amd64"}}),
            )),
            _ => Ok(Lookup::Unavailable),
        }
    }
}

fn evaluate_with(libraries: Option<&Libraries>, expression: &str) -> Result<Value, CelError> {
    let mut scope = scope();
    if let Some(libraries) = libraries {
        libraries.bind(&mut scope);
    }
    Program::compile(expression)?.evaluate_json(&scope)
}

/// Evaluates `expression` with the libraries of a cluster-wide policy over [`Cluster`].
fn evaluate(expression: &str) -> Result<Value, CelError> {
    evaluate_with(Some(&Libraries::new(Arc::new(Cluster))), expression)
}

fn eval(expression: &str) -> Value {
    match evaluate(expression) {
        Ok(value) => value,
        Err(error) => panic!("{expression}: {error}"),
    }
}

fn error(expression: &str) -> String {
    match evaluate(expression) {
        Ok(value) => panic!("{expression} evaluated to {value}"),
        Err(error) => error.to_string(),
    }
}

const DIGEST: &str = "sha256:6aefddb645ee6963afd681b1845c661d0ea4c3b20ab9db86d9e753b203d385f2";

fn image_parts(reference: &str) -> Value {
    eval(&format!(
        "[parseImageReference('{reference}')].map(i, [i.registry(), i.repository(), \
         i.identifier(), i.tag(), i.digest(), i.containsDigest()])[0]"
    ))
}

#[test]
fn image_references_are_split_like_go_containerregistry() {
    assert_eq!(
        image_parts("registry.k8s.io/kube-apiserver-arm64"),
        json!([
            "registry.k8s.io",
            "kube-apiserver-arm64",
            "latest",
            "latest",
            "",
            false
        ])
    );
    assert_eq!(
        image_parts("registry.k8s.io/kube-apiserver-arm64:testtag"),
        json!([
            "registry.k8s.io",
            "kube-apiserver-arm64",
            "testtag",
            "testtag",
            "",
            false
        ])
    );
    assert_eq!(
        image_parts(&format!("registry.k8s.io/kube-apiserver-arm64@{DIGEST}")),
        json!([
            "registry.k8s.io",
            "kube-apiserver-arm64",
            DIGEST,
            "",
            DIGEST,
            true
        ])
    );
    assert_eq!(
        image_parts(&format!(
            "registry.k8s.io/kube-apiserver-arm64:latest@{DIGEST}"
        )),
        json!([
            "registry.k8s.io",
            "kube-apiserver-arm64",
            format!("latest@{DIGEST}"),
            "latest",
            DIGEST,
            true
        ])
    );
    // A registry port is not a tag.
    assert_eq!(
        image_parts(&format!("registry.example:5000/repo@{DIGEST}")),
        json!(["registry.example:5000", "repo", DIGEST, "", DIGEST, true])
    );
    assert_eq!(
        image_parts("localhost:5000/team/app"),
        json!(["localhost:5000", "team/app", "latest", "latest", "", false])
    );
}

#[test]
fn docker_hub_references_get_its_registry_and_library() {
    assert_eq!(
        image_parts("nginx"),
        json!([
            "index.docker.io",
            "library/nginx",
            "latest",
            "latest",
            "",
            false
        ])
    );
    assert_eq!(
        image_parts("docker.io/bitnami/redis:7"),
        json!(["index.docker.io", "bitnami/redis", "7", "7", "", false])
    );
    // Without a `.` or `:`, the first element is part of the repository.
    assert_eq!(
        image_parts("localhost/app"),
        json!([
            "index.docker.io",
            "localhost/app",
            "latest",
            "latest",
            "",
            false
        ])
    );
}

#[test]
fn image_is_the_older_name_of_parse_image_reference() {
    assert_eq!(
        eval("image('corp.reg.com/app:1').registry() == 'corp.reg.com'"),
        json!(true)
    );
    assert_eq!(
        eval("[image('ghcr.io/a/b'), image('ghcr.io/c/d')].all(i, i.registry() == 'ghcr.io')"),
        json!(true)
    );
}

#[test]
fn invalid_image_references_are_rejected() {
    assert!(
        error("parseImageReference('registry.k8s.io/kube-apiserver-arm64:@')")
            .contains("could not parse reference: registry.k8s.io/kube-apiserver-arm64:@")
    );
    for reference in [
        "registry.k8s.io/kube-apiserver-arm64:@",
        "Nginx",
        "a",
        "nginx:",
        "nginx@sha256:abc",
        "nginx@md5:d41d8cd98f00b204e9800998ecf8427e",
        "",
    ] {
        assert_eq!(
            eval(&format!("isImage('{reference}')")),
            json!(false),
            "{reference}"
        );
    }
    assert_eq!(
        eval("isImage('registry.k8s.io/kube-apiserver-arm64:latest')"),
        json!(true)
    );
    assert!(error("'nginx'.registry()").contains("applies to image references"));
}

#[test]
fn json_documents_decode_and_encode_like_go() {
    assert_eq!(
        eval(r#"json.unmarshal('{"a": 1, "b": [true, "x", null]}')"#),
        json!({"a": 1, "b": [true, "x", null]})
    );
    assert_eq!(eval(r#"json.unmarshal('{"a": 1.5}').a + 0.5"#), json!(2.0));
    assert_eq!(eval(r#"json.unmarshal('{"a": 1}').a == 1"#), json!(true));
    assert!(error("json.unmarshal('{')").contains("EOF"));
    assert!(error("json.unmarshal('')").contains("EOF"));
    assert_eq!(
        eval(r#"json.marshal({"b": 1, "a": ["<x>", true, null]})"#),
        json!(r#"{"a":["\u003cx\u003e",true,null],"b":1}"#)
    );
}

#[test]
fn yaml_documents_decode_like_json() {
    assert_eq!(
        eval("yaml.parse('a: 1\\nb: [x, true]\\nc: ~')"),
        json!({"a": 1, "b": ["x", true], "c": null})
    );
    assert!(error("yaml.parse('a: [b')").contains("unclosed bracket"));
}

/// A self-signed RSA CA certificate for `*.kyverno.svc` (from upstream's tests).
const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIC7TCCAdWgAwIBAgIBADANBgkqhkiG9w0BAQsFADAYMRYwFAYDVQQDDA0qLmt5
dmVybm8uc3ZjMB4XDTIyMDExMTEzMjY0M1oXDTIzMDExMTE0MjY0M1owGDEWMBQG
A1UEAwwNKi5reXZlcm5vLnN2YzCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoC
ggEBAMsAz85+yino+MmdKsVtHwNi3oAVjumzXHiLfUJK7xi5KU8B7goPHF/VCe/V
7Y2c4afyfgY2ePw4LxSDkCYNgYwqjSwGIbcsqv5ZRazBdDxR09ri6PknNyBVGLi5
RlPXIrGQ3psNuf55qwxJxLO31qCZuvktKY5YvuIR4JPmBhuSFXOnn0ZiQw8uxMcQ
0QA2lz+PxWCVNk9q+31H5DH1oYZDLfU3mijIOA+AJGZbBb+ZwBmpVL0+2TXLxE74
WowdKEV+WTsKojNTd0VwcuRKRKR/6ynXAAis21y1X7Ui9FJE6mDIylUD40WXOKGJ
1lYY41kRnYhVhvXYN9JtNYdY3HsCAwEAAaNCMEAwDgYDVR0PAQH/BAQDAgKkMA8G
A1UdEwEB/wQFMAMBAf8wHQYDVR0OBBYEFOnlASVD9fu3TAjptlW/gAXA4ql+MA0G
CSqGSIb3DQEBCwUAA4IBAQCIpyRiChxp97crKfQ24Jt7z8P+AGpLf3sX4eL87ESa
7QRoVJtXLmaut1pUEoYLQruKmh/0YFtZG9WxVgY6iuKbWnu7bOeMB/Ir+V/yrX3R
+XvZOsuXiJnEbJiBW6lJzLldoW4f/71H+j1WD4tHpqmdMxq/sLqXfPIuc0/m0yFC
n+ADBWGGB8Nn66vxtv+cT6p+RIVotXPQWbMilWp6pd5wSuB68FqrDwtYLNJtPwFs
9MPVkuaJdYZ0eWd/rMcKD94Hgf89gvA0+qzMVFf+3BemXskjQRYy6CKsqoyC6jX4
nhYjumAP/7psbzITsnpHtfCEEU+2JZwgM406aiMcsgLb
-----END CERTIFICATE-----";

#[test]
fn x509_decode_shows_the_certificate_fields_upstream_lists() {
    let mut scope = scope();
    scope.add_variable_from_value("pem", CERTIFICATE);
    let evaluate = |expression: &str| {
        Program::compile(expression)
            .and_then(|program| program.evaluate_json(&scope))
            .map_err(|error| error.to_string())
    };
    assert_eq!(evaluate("x509.decode(pem).PublicKey.E"), Ok(json!(65537)));
    assert_eq!(evaluate("x509.decode(pem).IsCA"), Ok(json!(true)));
    assert_eq!(
        evaluate("x509.decode(pem).NotAfter"),
        Ok(json!("2023-01-11T14:26:43Z"))
    );
    assert_eq!(
        evaluate(
            "x509.decode(pem).PublicKey.N.startsWith('2562677619429980910394392529302247877955011')"
        ),
        Ok(json!(true))
    );
    // Go's certificate has a Subject, upstream's output does not.
    assert_eq!(evaluate("has(x509.decode(pem).Subject)"), Ok(json!(false)));
    assert!(
        evaluate("x509.decode('not a certificate')")
            .is_err_and(|error| error.contains("failed to decode PEM block"))
    );
}

#[test]
fn hashes_are_lower_case_hex() {
    assert_eq!(
        eval("sha1('hello')"),
        json!("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
    );
    assert_eq!(
        eval("sha256('hello')"),
        json!("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    );
    assert_eq!(
        eval("md5('hello')"),
        json!("5d41402abc4b2a76b9719d911017c592")
    );
    assert_eq!(
        eval(
            "hash.sha256('hello') == sha256('hello') && hash.sha1('') == sha1('') && hash.md5('a') == md5('a')"
        ),
        json!(true)
    );
    assert!(error("sha256(1)").contains("Unexpected type"));
}

#[test]
fn time_functions() {
    assert_eq!(
        eval("time.now() > timestamp('2024-01-01T00:00:00Z')"),
        json!(true)
    );
    assert_eq!(
        eval("time.truncate(timestamp('2024-05-17T13:45:30.5Z'), duration('1h'))"),
        json!("2024-05-17T13:00:00Z")
    );
    // Go counts from January 1 of year 1, a Monday: weeks start on Mondays.
    assert_eq!(
        eval("time.truncate(timestamp('2024-05-17T13:45:30Z'), duration('168h'))"),
        json!("2024-05-13T00:00:00Z")
    );
    assert_eq!(
        eval("time.truncate(timestamp('2024-05-17T13:45:30Z'), duration('0s'))"),
        json!("2024-05-17T13:45:30Z")
    );
    assert_eq!(
        eval("time.toCron(timestamp('2024-05-17T13:45:30Z'))"),
        json!("45 13 17 5 5")
    );
    assert_eq!(
        eval("time.now() - duration('4380h') < time.now()"),
        json!(true)
    );
}

#[test]
fn math_round_takes_an_optional_precision() {
    assert_eq!(eval("math.round(1.23456, 3)"), json!(1.235));
    assert_eq!(eval("math.round(1234.5, -2)"), json!(1200.0));
    assert_eq!(eval("math.round(7, 1)"), json!(7.0));
    // The Kubernetes form rounds half away from zero.
    assert_eq!(
        eval("[math.round(2.5), math.round(-2.5)]"),
        json!([3.0, -3.0])
    );
    assert!(error("math.round('x')").contains("expected a double"));
    assert!(error("math.round(1.5, 'x')").contains("precision"));
}

#[test]
fn random_strings_match_their_pattern() {
    assert_eq!(
        eval("random('[a-c]{5}').matches('^[a-c]{5}$')"),
        json!(true)
    );
    assert_eq!(
        eval("random().matches('^[0-9a-z]{8}$') && random.random('x').matches('^x$')"),
        json!(true)
    );
    assert!(error("random('(')").contains("random"));
}

#[test]
fn list_obj_to_map_pairs_two_lists() {
    assert_eq!(
        eval(r#"listObjToMap([{"k": "a"}, {"k": "b"}], [{"v": 1}, {"v": 2}], "k", "v")"#),
        json!({"a": 1, "b": 2})
    );
    assert_eq!(
        eval(r#"transform.listObjToMap([{"k": "a"}], [{}], "k", "v")"#),
        json!({"a": null})
    );
    assert!(error(r#"listObjToMap([{"k": "a"}], [], "k", "v")"#).contains("equal length"));
    assert!(error(r#"listObjToMap([{"k": 1}], [{}], "k", "v")"#).contains("key name"));
}

#[test]
fn service_account_user_names_are_parsed() {
    assert_eq!(
        eval("parseServiceAccount('system:serviceaccount:kube-system:replicaset-controller')"),
        json!({"Namespace": "kube-system", "Name": "replicaset-controller"})
    );
    assert_eq!(
        eval("user.parseServiceAccount('alice')"),
        json!({"Namespace": "", "Name": ""})
    );
}

#[test]
fn jsonpatch_escape_key_comes_from_the_kubernetes_libraries() {
    assert_eq!(
        eval("'/metadata/annotations/' + jsonpatch.escapeKey('backup.velero.io/backup-volumes')"),
        json!("/metadata/annotations/backup.velero.io~1backup-volumes")
    );
}

#[test]
fn resource_get_reads_one_object_by_api_resource() {
    assert_eq!(
        eval("resource.Get('v1', 'configmaps', 'default', 'cm').data.registries"),
        json!("enabled")
    );
    assert_eq!(
        eval(
            "resource.get('cloud.google.com/v1', 'computeclasses', '', 'spot').spec.priorities[0].spot"
        ),
        json!(true)
    );
    // A missing object is null.
    assert_eq!(
        eval("resource.get('v1', 'configmaps', 'default', 'missing')"),
        json!(null)
    );
    assert_eq!(
        eval("resource.get('v1', 'configmaps', 'default', 'missing') == null"),
        json!(true)
    );
    let failure = error("resource.Get('v1', 'configmaps', 'default', 'broken')");
    assert!(
        failure.contains("failed to get resource: the cluster is down"),
        "{failure}"
    );
    assert!(error("resource.Get('v1', 'configmaps', 'cm')").contains("argument count"));
    assert!(error("resource.Get('v1', 'configmaps', 'default', 1)").contains("string"));
}

#[test]
fn resource_list_filters_by_labels() {
    assert_eq!(
        eval("resource.List('v1', 'configmaps', 'default').items.map(i, i.metadata.name)"),
        json!(["cm", "other"])
    );
    assert_eq!(
        eval(
            "resource.list('v1', 'configmaps', 'default', {'app': 'b'}).items.map(i, i.metadata.name)"
        ),
        json!(["other"])
    );
    assert!(error("resource.List('v1', 'secrets', 'default')").contains("failed to list resource"));
}

#[test]
fn resource_post_answers_the_created_object() {
    assert_eq!(
        eval(
            "resource.Post('authorization.k8s.io/v1', 'subjectaccessreviews', \
             {'kind': 'SubjectAccessReview', 'spec': {'user': 'alice'}}).status.allowed"
        ),
        json!(true)
    );
    assert!(
        error("resource.Post('v1', 'configmaps', 'default', {'kind': 'ConfigMap'})")
            .contains("failed to create resource")
    );
}

#[test]
fn namespaced_policies_read_resources_of_their_namespace() {
    let libraries = Libraries::namespaced(Arc::new(Cluster), "team");
    assert_eq!(
        evaluate_with(
            Some(&libraries),
            "resource.Get('v1', 'configmaps', 'cm').metadata.namespace"
        )
        .map_err(|error| error.to_string()),
        Ok(json!("team"))
    );
    assert!(
        evaluate_with(
            Some(&libraries),
            "resource.Get('v1', 'configmaps', 'default', 'cm')"
        )
        .is_err()
    );
}

#[test]
fn global_context_entries_and_their_projections() {
    assert_eq!(
        eval("size(globalContext.Get('deployments', '').items)"),
        json!(2)
    );
    assert_eq!(
        eval("globalContext.get('deployments', 'items')[1].name"),
        json!("b")
    );
    assert_eq!(eval("globalContext.Get('count')"), json!(3));
    assert_eq!(eval("globalContext.Get('missing', '')"), json!(null));
    assert!(
        error("globalContext.Get('deployments', 'names')")
            .contains("projection \"names\" not found")
    );
}

#[test]
fn http_requests_answer_the_body_with_its_status() {
    assert_eq!(
        eval("http.Get('https://example.com/config')"),
        json!({"allowed": true, "statusCode": 200})
    );
    assert_eq!(
        eval("http.get('https://example.com/text', {'Accept': 'text/plain'})"),
        json!({"body": "plain", "statusCode": 200})
    );
    assert_eq!(
        eval(
            "http.Post('https://example.com/echo', {'kind': 'Pod'}, {'Content-Type': 'application/json'}).received.kind"
        ),
        json!("Pod")
    );
    assert_eq!(
        eval(
            "http.Client('-----BEGIN CERTIFICATE-----').Put('https://example.com/echo', [1]).received"
        ),
        json!([1])
    );
    assert!(error("http.Get('https://example.com/down')").contains("request failed: HTTP 503"));
    assert!(error("http.Get('https://example.com/missing')").contains("no response"));
    assert!(error("http.Get('https://example.com/config', {'n': 1})").contains("must be a string"));
}

#[test]
fn image_metadata_comes_from_the_provider_beside_the_image_function() {
    assert_eq!(
        eval("image.GetMetadata('nginx:1.21').config.architecture"),
        json!("amd64")
    );
    assert_eq!(
        eval(
            "image.getMetadata('nginx:1.21').image == 'nginx:1.21' && image('nginx:1.21').tag() == '1.21'"
        ),
        json!(true)
    );
    assert!(
        error("image.GetMetadata('redis')")
            .contains("failed to get image data: image data for redis not found in the context")
    );
}

#[test]
fn generator_apply_collects_resources_in_the_target_namespace() {
    let generated = GeneratedResources::new();
    let libraries = Libraries::new(Arc::new(Cluster)).generating_into(generated.clone());
    assert_eq!(
        evaluate_with(
            Some(&libraries),
            "generator.Apply('prod', [{'kind': 'ConfigMap', 'metadata': {'name': 'a', 'namespace': 'x'}}, \
             {'kind': 'List', 'items': [{'kind': 'Secret', 'metadata': {'name': 'b'}}]}]) && \
             generator.apply('', [{'kind': 'ClusterRole', 'metadata': {'name': 'c', 'namespace': 'x'}}])"
        )
        .map_err(|error| error.to_string()),
        Ok(json!(true))
    );
    assert_eq!(
        generated.take(),
        vec![
            json!({"kind": "ConfigMap", "metadata": {"name": "a", "namespace": "prod"}}),
            json!({"kind": "Secret", "metadata": {"name": "b", "namespace": "prod"}}),
            json!({"kind": "ClusterRole", "metadata": {"name": "c"}}),
        ]
    );
    assert!(generated.take().is_empty());
    assert!(
        evaluate_with(Some(&libraries), "generator.Apply('prod', [1])")
            .is_err_and(|error| error.to_string().contains("not an object"))
    );
    // Policies that do not generate have no generator.
    assert!(error("generator.Apply('prod', [])").contains("generator"));
}

#[test]
fn methods_apply_only_to_their_libraries() {
    assert!(error("globalContext.List('v1', 'pods', '')").contains("no such overload"));
    assert!(error("{'a': 1}.Get('a')").contains("no such overload"));
    // Without bound libraries the variables are undeclared.
    assert!(
        evaluate_with(None, "resource.Get('v1', 'configmaps', 'default', 'cm')")
            .is_err_and(|error| error.to_string().contains("resource"))
    );
}

#[test]
fn bind_adds_the_cluster_wide_libraries() {
    let mut scope = scope();
    bind(&mut scope, Arc::new(Cluster));
    let result = Program::compile("globalContext.Get('count') + 1")
        .and_then(|program| program.evaluate_json(&scope))
        .map_err(|error| error.to_string());
    assert_eq!(result, Ok(json!(4)));
}

#[test]
fn variables_name_the_receivers() {
    let generating = Libraries::new(Arc::new(Cluster)).generating_into(GeneratedResources::new());
    let names: Vec<&str> = generating.variables().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        ["resource", "globalContext", "http", "image", "generator"]
    );
}

#[test]
fn default_http_request_passes_the_method_and_body() {
    let response = Cluster.http_request(
        "POST",
        "https://example.com/echo",
        Some(&json!({"a": 1})),
        &BTreeMap::new(),
    );
    assert!(matches!(
        response,
        Ok(Lookup::Found(body)) if body == json!({"received": {"a": 1}, "statusCode": 200})
    ));
}
