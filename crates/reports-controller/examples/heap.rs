//! Heap held by the reports controller's aggregate, counted with `dhat` (run by hand, never in
//! CI):
//!
//! `cargo run --release -p kyverno-reports-controller --example heap [-- --pods N --namespaces N]`
//!
//! The pods of `scale.rs` (every fourth one without the restricted securityContext) are
//! evaluated against the Pod Security restricted profile's ClusterPolicies; for each pod, the
//! ephemeral report the background scanner writes is built, read back as the controller reads
//! it and aggregated. Prints the heap the aggregate holds, per result, and the most a flush
//! adds while one shard is rendered and encoded as the API request body.
#![allow(missing_docs)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use kyverno_api::kyverno::v1::match_resources::AdmissionOperation;
use kyverno_api::kyverno::v1::policy::ClusterPolicy;
use kyverno_api::policy_report::v1alpha2::{PolicyReport, PolicyReportSummary};
use kyverno_policy_core::engine::{
    Environment, LoadedPolicy, NoExternalData, SuppliedValues, validate,
};
use kyverno_policy_core::request::ResourceRequest;
use kyverno_policy_core::response::RuleResponse;
use kyverno_reports_controller::aggregate::{Aggregator, report_name};
use kyverno_reports_controller::controller::DEFAULT_MAX_REPORT_BYTES;
use kyverno_runtime::reports::{
    Evaluated, SOURCE_BACKGROUND_SCAN, Subject, ephemeral_report, read_ephemeral_report,
};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// The heap measurement's parameters.
#[derive(Parser, Debug)]
struct Args {
    /// Pods aggregated.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Namespaces the pods are spread over.
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// The conformance corpus' `pod-security` folder.
    #[arg(long, default_value = support::DEFAULT_POLICIES)]
    policies: PathBuf,
}

/// What each policy's rules give on a pod, compliant or not.
fn rule_responses(policies: &[LoadedPolicy], compliant: bool) -> Vec<Vec<RuleResponse>> {
    let pod = Arc::new(support::pod("probe", "probe", compliant));
    let request = ResourceRequest::new(pod).with_operation(AdmissionOperation::Create);
    let values = SuppliedValues::default();
    let environment = Environment {
        provider: &NoExternalData,
        exceptions: &[],
        values: &values,
    };
    policies
        .iter()
        .map(|policy| validate(policy, &request, &environment).rules)
        .collect()
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _profiler = dhat::Profiler::builder().testing().build();
    let policies = support::load_policies(&args.policies)?
        .into_iter()
        .map(|document| {
            let policy: ClusterPolicy = serde_json::from_value(document)?;
            LoadedPolicy::from_cluster_policy(policy).context("policy not loaded")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let responses = [
        rule_responses(&policies, false),
        rule_responses(&policies, true),
    ];
    let per_namespace = args.pods.div_ceil(args.namespaces.max(1)).max(1);

    let start = dhat::HeapStats::get();
    let mut aggregator = Aggregator::default();
    for index in 0..args.pods {
        let namespace = format!("scale-{:03}", index / per_namespace);
        let mut pod = support::pod(
            &namespace,
            &format!("pod-{index:05}"),
            support::compliant(index),
        );
        pod["metadata"]["uid"] = json!(format!("{index:08x}-0000-4000-8000-{index:012x}"));
        let subject = Subject::of(&pod, "pods").context("pod without uid")?;
        let rules = &responses[usize::from(support::compliant(index))];
        let evaluated: Vec<Evaluated<'_>> = policies
            .iter()
            .zip(rules)
            .map(|(policy, rules)| Evaluated {
                policy,
                resource_version: "1",
                rules,
            })
            .collect();
        let report = ephemeral_report(
            &subject.uid,
            &subject,
            SOURCE_BACKGROUND_SCAN,
            &evaluated,
            None,
        );
        let update = read_ephemeral_report(&report)?;
        let prepared = aggregator.prepare(update)?;
        aggregator.apply(prepared);
    }
    aggregator.compact();
    let held = dhat::HeapStats::get().curr_bytes - start.curr_bytes;
    let (results, shared) = aggregator.result_counts();

    // A flush of every scope: each shard rendered and encoded (as the API request body) in turn.
    let mut summary = PolicyReportSummary::default();
    let mut shards = 0;
    let mut flush_peak = 0;
    let scopes: Vec<_> = aggregator.scopes().cloned().collect();
    for scope in &scopes {
        for (index, shard) in aggregator
            .shards(scope, DEFAULT_MAX_REPORT_BYTES)
            .iter()
            .enumerate()
        {
            let before = dhat::HeapStats::get().curr_bytes;
            let report =
                PolicyReport::new(&report_name(scope, index), aggregator.render(scope, shard));
            let body = serde_json::to_vec(&report)?;
            flush_peak = flush_peak.max(dhat::HeapStats::get().curr_bytes - before);
            if let Some(counts) = report.content.summary {
                summary.pass += counts.pass;
                summary.fail += counts.fail;
            }
            shards += 1;
            drop(body);
        }
    }

    println!(
        "{} pods in {} namespaces, {} policies: {results} results ({} pass, {} fail) in {shards} shards",
        args.pods,
        scopes.len(),
        policies.len(),
        summary.pass,
        summary.fail,
    );
    println!(
        "aggregate heap: {:.1} MiB ({:.0} bytes per result, {shared} distinct results shared)",
        mib(held),
        held as f64 / results.max(1) as f64
    );
    println!(
        "a flush adds at most {:.1} MiB (one shard rendered and encoded)",
        mib(flush_peak)
    );
    Ok(())
}
