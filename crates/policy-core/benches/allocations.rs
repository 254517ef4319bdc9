//! Heap allocations per full Pod Security Standards profile evaluation, counted with `dhat`.
//!
//! `cargo bench -p kyverno-policy-core --bench allocations [-- EVALUATIONS]` (default 100)
//! prints, for each resource, the allocations and bytes allocated per evaluation (each on a new
//! request, as the webhook receives them). The first evaluation of each resource runs before
//! counting, so caches (compiled regexes and JMESPath expressions) are warm, as in a long-running
//! webhook.

mod support;

use std::hint::black_box;

use support::SetupResult;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Evaluations per resource when no count is given.
const DEFAULT_EVALUATIONS: u64 = 100;

fn main() -> SetupResult<()> {
    // `cargo bench` passes `--bench`; any other argument is the number of evaluations.
    let evaluations = match std::env::args().skip(1).find(|arg| !arg.starts_with("--")) {
        Some(count) => count.parse::<u64>()?.max(1),
        None => DEFAULT_EVALUATIONS,
    };
    let _profiler = dhat::Profiler::builder().testing().build();
    let policies = support::pod_security_policies()?;
    let rules: usize = policies.iter().map(|policy| policy.rules.len()).sum();
    println!(
        "{} policies, {rules} rules (autogen included), {evaluations} evaluations per resource",
        policies.len()
    );
    let scenarios = support::scenarios(&policies)?;
    println!(
        "{:<20} {:>16} {:>16}",
        "resource", "allocs/eval", "bytes/eval"
    );
    for (name, resource) in scenarios {
        support::evaluate_profile(&policies, &support::create_request(&resource));
        let before = dhat::HeapStats::get();
        for _ in 0..evaluations {
            let request = support::create_request(black_box(&resource));
            black_box(support::evaluate_profile(black_box(&policies), &request));
        }
        let after = dhat::HeapStats::get();
        println!(
            "{name:<20} {:>16.1} {:>16.1}",
            (after.total_blocks - before.total_blocks) as f64 / evaluations as f64,
            (after.total_bytes - before.total_bytes) as f64 / evaluations as f64,
        );
    }
    Ok(())
}
