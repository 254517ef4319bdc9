//! Throughput of the validate engine.
//!
//! - `pod-security-profile`: one element is one full evaluation of every Pod Security Standards
//!   ClusterPolicy of Kyverno's policy library (baseline, restricted and `podSecurity` subrule
//!   policies, autogen on) against one admission request.
//! - `primitives`: pattern matching, a JMESPath query with a custom function, and variable
//!   substitution of a rule.
//!
//! Run on one core: `taskset -c 0 cargo bench -p kyverno-policy-core --bench validate`.
//! The corpus is read from `../shared/` beside the repository, or `$KYVERNO_SHARED_DIR`.

mod support;

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use kyverno_policy_core::engine::LoadedPolicy;
use kyverno_policy_core::pattern::{PatternOutcome, validate_pattern};
use kyverno_policy_core::variables::{self, Context};
use kyverno_policy_core::{jmespath, pattern};
use serde_json::{Value, json};
use support::SetupResult;

fn main() -> SetupResult<()> {
    let policies = support::pod_security_policies()?;
    let mut criterion = Criterion::default().configure_from_args();
    bench_profile(&mut criterion, &policies)?;
    bench_primitives(&mut criterion)?;
    criterion.final_summary();
    Ok(())
}

fn bench_profile(criterion: &mut Criterion, policies: &[LoadedPolicy]) -> SetupResult<()> {
    let scenarios = support::scenarios(policies)?;
    let mut group = criterion.benchmark_group("pod-security-profile");
    group.throughput(Throughput::Elements(1));
    for (name, resource) in &scenarios {
        group.bench_function(*name, |bencher| {
            bencher.iter(|| {
                let request = support::create_request(black_box(resource));
                support::evaluate_profile(black_box(policies), &request)
            });
        });
    }
    group.finish();
    Ok(())
}

/// The pattern of the baseline `disallow-privileged-containers` policy, the most common shape
/// of pattern: optional anchors over every container list.
fn privileged_pattern() -> Value {
    json!({
        "spec": {
            "=(ephemeralContainers)": [{"=(securityContext)": {"=(privileged)": "false"}}],
            "=(initContainers)": [{"=(securityContext)": {"=(privileged)": "false"}}],
            "containers": [{"=(securityContext)": {"=(privileged)": "false"}}]
        }
    })
}

/// A validate section with variables in its message, foreach list and deny conditions, as in
/// the restricted `disallow-capabilities-strict` policy.
fn rule_with_variables() -> Value {
    json!({
        "message": "{{ request.object.metadata.name }} in {{ request.object.metadata.namespace }} must drop ALL capabilities",
        "foreach": [{
            "list": "request.object.spec.[ephemeralContainers, initContainers, containers][]",
            "deny": {"conditions": {"all": [{
                "key": "ALL",
                "operator": "AnyNotIn",
                "value": "{{ request.object.spec.containers[0].securityContext.capabilities.drop[] || `[]` }}"
            }]}}
        }]
    })
}

fn bench_primitives(criterion: &mut Criterion) -> SetupResult<()> {
    let pod = support::hardened_pod();
    let pattern = privileged_pattern();
    pattern::check_pattern(&pattern)?;
    if validate_pattern(&pod, &pattern) != PatternOutcome::Pass {
        return Err("the hardened pod does not match the privileged pattern".into());
    }

    let mut context = Context::new();
    context.set("request.object", pod.clone());
    context.set("request.operation", json!("CREATE"));
    let query = "request.object.spec.containers[?regex_match('^registry\\.example\\.com/', image)].name | length(@)";
    if context.query(query)? != json!(2) {
        return Err("the JMESPath query does not count both containers".into());
    }
    let rule = rule_with_variables();
    let substituted = variables::substitute(&rule, &context)?;
    if substituted["message"] != json!("web-7d9f8c6b5-x2x7q in shop must drop ALL capabilities") {
        return Err(format!("unexpected substitution: {substituted}").into());
    }

    let mut group = criterion.benchmark_group("primitives");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pattern-match", |bencher| {
        bencher.iter(|| validate_pattern(black_box(&pod), black_box(&pattern)));
    });
    let data = context.data().clone();
    group.bench_function("jmespath-custom-function", |bencher| {
        bencher.iter(|| jmespath::search(black_box(query), black_box(&data)));
    });
    group.bench_function("substitute-rule", |bencher| {
        bencher.iter(|| variables::substitute(black_box(&rule), black_box(&context)));
    });
    group.finish();
    Ok(())
}
