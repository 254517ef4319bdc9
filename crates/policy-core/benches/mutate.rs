//! Throughput of the mutate engine: a policy set adding defaults to workloads.
//!
//! - `add-default-security-context`: a Pod-level `securityContext` (`runAsNonRoot`,
//!   `seccompProfile: RuntimeDefault`) added with `+()` anchors, and on every container
//!   (`foreach`) `runAsNonRoot`, `allowPrivilegeEscalation: false` and the seccomp profile,
//!   unless already set;
//! - `add-labels`: labels, one of them from a variable;
//! - `add-default-limits`: CPU and memory limits on every container that has none (`foreach`
//!   with preconditions).
//!
//! One element is one mutation of one resource: the three policies applied in turn, each to the
//! result of the one before (as the admission webhook and the CLI chain them), on a `CREATE`
//! request. The Deployment goes through the autogen rules.
//!
//! Run on one core: `taskset -c 0 cargo bench -p kyverno-policy-core --bench mutate`.

use std::error::Error;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput};
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use kyverno_policy_core::engine::{
    Environment, LoadedPolicy, NoExternalData, SuppliedValues, mutate,
};
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::RuleStatus;
use serde_json::{Value, json};

/// Result type of the benchmark set-up.
type SetupResult<T> = Result<T, Box<dyn Error>>;

const POLICIES: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: add-default-security-context
spec:
  rules:
  - name: pod-security-context
    match:
      any:
      - resources:
          kinds: [Pod]
    mutate:
      patchStrategicMerge:
        spec:
          securityContext:
            +(runAsNonRoot): true
            +(seccompProfile):
              type: RuntimeDefault
  - name: container-security-context
    match:
      any:
      - resources:
          kinds: [Pod]
    mutate:
      foreach:
      - list: request.object.spec.containers
        patchStrategicMerge:
          spec:
            containers:
            - (name): "{{ element.name }}"
              securityContext:
                +(runAsNonRoot): true
                +(allowPrivilegeEscalation): false
                +(seccompProfile):
                  type: RuntimeDefault
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: add-labels
spec:
  rules:
  - name: add-labels
    match:
      any:
      - resources:
          kinds: [Pod]
    mutate:
      patchStrategicMerge:
        metadata:
          labels:
            +(app.kubernetes.io/managed-by): kyverno
            team: "{{ request.namespace }}-team"
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: add-default-limits
spec:
  rules:
  - name: add-default-limits
    match:
      any:
      - resources:
          kinds: [Pod]
    mutate:
      foreach:
      - list: request.object.spec.containers
        preconditions:
          all:
          - key: "{{ element.resources.limits || `{}` | length(@) }}"
            operator: Equals
            value: 0
        patchStrategicMerge:
          spec:
            containers:
            - name: "{{ element.name }}"
              resources:
                limits:
                  cpu: 500m
                  memory: 256Mi
"#;

fn main() -> SetupResult<()> {
    let policies = policies()?;
    let scenarios = [("pod", pod()), ("deployment", deployment())];
    for (name, resource) in &scenarios {
        check(name, resource, &policies)?;
    }
    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("mutate-policy-set");
    group.throughput(Throughput::Elements(1));
    for (name, resource) in &scenarios {
        let resource = Arc::new(resource.clone());
        group.bench_function(*name, |bencher| {
            bencher.iter(|| mutate_all(black_box(&policies), black_box(&resource)));
        });
    }
    group.finish();
    criterion.final_summary();
    Ok(())
}

fn policies() -> SetupResult<Vec<LoadedPolicy>> {
    POLICIES
        .split("\n---\n")
        .map(|document| {
            let policy: ClusterPolicy = serde_saphyr::from_str(document)?;
            Ok(LoadedPolicy::from_cluster_policy(policy)?)
        })
        .collect()
}

/// One mutation: every policy in turn on the result of the one before; the patched resource
/// and how many rules passed.
fn mutate_all(policies: &[LoadedPolicy], resource: &Arc<Value>) -> (Arc<Value>, usize) {
    let values = SuppliedValues::default();
    let environment = Environment {
        provider: &NoExternalData,
        exceptions: &[],
        values: &values,
    };
    let mut current = Arc::clone(resource);
    let mut passed = 0;
    for policy in policies {
        let request =
            ResourceRequest::new(Arc::clone(&current)).with_operation(AdmissionOperation::Create);
        let response = mutate(policy, &request, &environment);
        passed += response
            .rules
            .iter()
            .filter(|rule| rule.status == RuleStatus::Pass)
            .count();
        current = Arc::new(response.patched);
    }
    (current, passed)
}

/// Checks, before measuring, that every mutation lands: 4 passing rules and the expected
/// defaults on every container.
fn check(name: &str, resource: &Value, policies: &[LoadedPolicy]) -> SetupResult<()> {
    let (patched, passed) = mutate_all(policies, &Arc::new(resource.clone()));
    if passed != 4 {
        return Err(format!("{name}: {passed} rules passed, 4 expected").into());
    }
    let (metadata, pod_spec) = match patched.pointer("/spec/template") {
        Some(template) => (&template["metadata"], &template["spec"]),
        None => (&patched["metadata"], &patched["spec"]),
    };
    // Strategic merge puts the containers it patched first: look them up by name.
    let container = |name: &str| {
        pod_spec["containers"]
            .as_array()
            .and_then(|containers| {
                containers
                    .iter()
                    .find(|container| container["name"] == name)
            })
            .unwrap_or(&Value::Null)
    };
    let expectations = [
        (&metadata["labels"]["team"], json!("shop-team")),
        (
            &metadata["labels"]["app.kubernetes.io/managed-by"],
            json!("kyverno"),
        ),
        (&pod_spec["securityContext"]["runAsNonRoot"], json!(true)),
        (
            &container("web")["securityContext"]["allowPrivilegeEscalation"],
            json!(false),
        ),
        (
            &container("metrics")["securityContext"]["seccompProfile"]["type"],
            json!("RuntimeDefault"),
        ),
        (&container("web")["resources"]["limits"]["cpu"], json!("1")),
        (
            &container("metrics")["resources"]["limits"]["memory"],
            json!("256Mi"),
        ),
        (
            &container("proxy")["resources"]["limits"]["cpu"],
            json!("500m"),
        ),
    ];
    for (actual, expected) in expectations {
        if *actual != expected {
            return Err(format!("{name}: got {actual}, expected {expected} in {patched}").into());
        }
    }
    Ok(())
}

/// The pod spec of a typical workload before defaults: three containers, one with limits and a
/// partial security context.
fn pod_spec() -> Value {
    json!({
        "serviceAccountName": "web",
        "containers": [
            {
                "name": "web",
                "image": "registry.example.com/web/server:1.4.2",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                "securityContext": {"readOnlyRootFilesystem": true},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]
            },
            {
                "name": "metrics",
                "image": "registry.example.com/observability/exporter:0.9.1",
                "ports": [{"containerPort": 9090, "protocol": "TCP"}]
            },
            {
                "name": "proxy",
                "image": "registry.example.com/mesh/proxy:2.1.0",
                "env": [{"name": "MODE", "value": "sidecar"}]
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": "web-config"}}]
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-7d9f8c6b5-x2x7q",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/name": "web"}
        },
        "spec": pod_spec()
    })
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app.kubernetes.io/name": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
                "spec": pod_spec()
            }
        }
    })
}
