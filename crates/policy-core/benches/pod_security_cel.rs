//! The Pod Security Standards written three ways, evaluated on the same requests:
//!
//! - `pattern`: the ClusterPolicies of `kyverno-policies/pod-security/` (patterns, deny
//!   conditions and `podSecurity` subrules), with `engine::validate`;
//! - `cel`: the ClusterPolicies of `kyverno-policies/pod-security-cel/` (`validate.cel` rules),
//!   with `engine::validate`;
//! - `vpol`: the ValidatingPolicies of `kyverno-policies/pod-security-vpol/`, compiled with
//!   `CompiledValidatingPolicy::compile` and evaluated as the CLI does: one `ValidatingInput` per
//!   request (the endpoint from the built-in `ResourceTable`, Kyverno's libraries reading from a
//!   provider with no data), then every policy on it.
//!
//! One element is one evaluation of a whole set against one `CREATE` request (the hardened Pod,
//! the non-compliant Pod and the Deployment of `support`). Policies are loaded and compiled once,
//! outside the measured loop; before measuring, the bench checks each set judges each resource
//! as intended.
//!
//! Run on one core: `taskset -c 0 cargo bench -p kyverno-policy-core --bench pod_security_cel`.
//! The corpus is read from `../shared/` beside the repository, or `$KYVERNO_SHARED_DIR`.

mod support;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput};
use kyverno_api::policies::validating::ValidatingPolicy;
use kyverno_policy_core::celpolicy::resources::ResourceTable;
use kyverno_policy_core::celpolicy::validating::{CompiledValidatingPolicy, ValidatingInput};
use kyverno_policy_core::engine::{ContextProvider, LoadedPolicy, NoExternalData};
use kyverno_policy_core::request::ResourceRequest;
use support::{SetupResult, Tally};

/// The ValidatingPolicies of `kyverno-policies/pod-security-vpol/`, compiled.
fn validating_policies() -> SetupResult<Vec<CompiledValidatingPolicy>> {
    support::policy_documents("pod-security-vpol", "ValidatingPolicy")?
        .into_iter()
        .map(|document| {
            let policy: ValidatingPolicy = serde_json::from_value(document)?;
            Ok(CompiledValidatingPolicy::compile(&policy, &[])?)
        })
        .collect()
}

/// One evaluation of every ValidatingPolicy against `request`, as the CLI and the admission
/// webhook do for one request. A kind without a built-in resource counts as one `other` rule.
fn evaluate_validating(
    policies: &[CompiledValidatingPolicy],
    provider: &Arc<dyn ContextProvider>,
    request: &ResourceRequest,
) -> Tally {
    let mut tally = Tally::default();
    let Some(mapping) = ResourceTable::builtin().mapping(request.gvk()) else {
        tally.other += 1;
        return tally;
    };
    let input = ValidatingInput::resource(request, &mapping.resource, None)
        .with_provider(Arc::clone(provider));
    for policy in policies {
        for response in policy.evaluate(&input) {
            for rule in response.rules {
                tally.count(rule.status);
            }
        }
    }
    tally
}

fn main() -> SetupResult<()> {
    let pattern = support::pod_security_policies()?;
    let cel = support::cluster_policies("pod-security-cel")?;
    let validating = validating_policies()?;
    let provider: Arc<dyn ContextProvider> = Arc::new(NoExternalData);
    let scenarios = support::scenarios(&pattern)?;
    for (name, resource) in &scenarios {
        let request = support::create_request(resource);
        support::check_judgement(
            "pod-security-cel",
            name,
            support::evaluate_profile(&cel, &request),
        )?;
        support::check_judgement(
            "pod-security-vpol",
            name,
            evaluate_validating(&validating, &provider, &request),
        )?;
    }
    eprintln!(
        "policies: pattern {}, cel {}, vpol {}",
        pattern.len(),
        cel.len(),
        validating.len()
    );

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("pod-security-sets");
    group.throughput(Throughput::Elements(1));
    let cluster_policy_sets: [(&str, &[LoadedPolicy]); 2] = [("pattern", &pattern), ("cel", &cel)];
    for (name, resource) in &scenarios {
        for (set, policies) in cluster_policy_sets {
            group.bench_function(BenchmarkId::new(set, name), |bencher| {
                bencher.iter(|| {
                    let request = support::create_request(black_box(resource));
                    support::evaluate_profile(black_box(policies), &request)
                });
            });
        }
        group.bench_function(BenchmarkId::new("vpol", name), |bencher| {
            bencher.iter(|| {
                let request = support::create_request(black_box(resource));
                evaluate_validating(black_box(&validating), &provider, &request)
            });
        });
    }
    group.finish();
    criterion.final_summary();
    Ok(())
}
