//! Scale benchmark of the background scans and the reports (run by `scripts/scale.sh`, never in
//! CI): an in-process apiserver-sim holds `--pods` pods spread over `--namespaces` namespaces and
//! the Pod Security policies of `--policies` (the `baseline` and `restricted` ClusterPolicies of
//! the Pod Security restricted profile, read at run time); the `background-scan-controller` and
//! `reports-controller` binaries of `--bin-dir` run as separate processes against it.
//!
//! Prints: the time until every pod's results are in the policy reports, the peak memory
//! (VmHWM) of each controller, the number of report objects stored, then the time until the
//! reports reflect `--changed` pods made compliant.
#![allow(missing_docs)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use apiserver_sim::{ApiServerSim, SimConfig};
use clap::Parser;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kyverno_api::policy_report::v1alpha2::{ClusterPolicyReport, PolicyReport, PolicyResult};
use kyverno_api::reports::v1::{ClusterEphemeralReport, EphemeralReport};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The scale benchmark's parameters.
#[derive(Parser, Debug)]
struct Args {
    /// Pods created.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Namespaces the pods are spread over.
    #[arg(long, default_value_t = 50)]
    namespaces: usize,
    /// Pods made compliant in the second phase.
    #[arg(long, default_value_t = 100)]
    changed: usize,
    /// The conformance corpus' `pod-security` folder (its `baseline/` and `restricted/`
    /// ClusterPolicies are loaded).
    #[arg(long, default_value = support::DEFAULT_POLICIES)]
    policies: PathBuf,
    /// Folder of the `background-scan-controller` and `reports-controller` binaries (default:
    /// the profile folder this example was built into).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Give up after this many seconds in a phase.
    #[arg(long, default_value_t = 3600)]
    timeout_seconds: u64,
}

/// A free local port.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// The body of `GET path` on a plain HTTP server, if it answers 200.
async fn http_get(address: SocketAddr, path: &str) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The value of the first sample of `metric` (a name with its labels' opening) in `text`.
fn sample(text: &str, metric: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(metric))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_default()
}

/// A controller process.
struct Controller {
    name: &'static str,
    child: Child,
    admin: SocketAddr,
}

impl Controller {
    fn spawn(
        bin_dir: &Path,
        name: &'static str,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let admin = free_port()?;
        let child = Command::new(bin_dir.join(name))
            .arg("--metrics-addr")
            .arg(admin.to_string())
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin_dir.join(name).display()))?;
        Ok(Self { name, child, admin })
    }

    /// `(VmHWM, VmRSS)` in MiB.
    fn memory(&self) -> (f64, f64) {
        let status = self
            .child
            .id()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse::<f64>().ok())
                .unwrap_or_default()
                / 1024.0
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// CPU seconds used (user and system), from `/proc/<pid>/stat`.
    fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    async fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").await.unwrap_or_default()
    }
}

/// CPU seconds used by a process (this one when `pid` is `None`), assuming 100 clock ticks a
/// second (Linux's `USER_HZ`).
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |pid| format!("/proc/{pid}/stat"),
    );
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or_default()
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Prints the memory and CPU time of the controllers and of this process (the simulator).
fn print_usage(controllers: [&Controller; 2]) {
    for controller in controllers {
        let (peak, now) = controller.memory();
        println!(
            "{}: peak RSS (VmHWM) {peak:.1} MiB, RSS now {now:.1} MiB, CPU {:.1} s",
            controller.name,
            controller.cpu_seconds()
        );
    }
    println!(
        "apiserver-sim and this benchmark (one process): CPU {:.1} s",
        cpu_seconds(None)
    );
}

/// Every PolicyReport, across namespaces.
async fn all_reports(client: &kube::Client) -> anyhow::Result<Vec<PolicyReport>> {
    Ok(Api::<PolicyReport>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items)
}

/// The pods with results in the reports, and the results by status.
fn coverage(reports: &[PolicyReport]) -> (HashSet<String>, BTreeMap<String, i64>) {
    let mut pods = HashSet::new();
    let mut totals = BTreeMap::new();
    for report in reports {
        for result in &report.content.results {
            for resource in &result.resources {
                pods.insert(resource.uid.clone().unwrap_or_default());
            }
        }
        if let Some(summary) = &report.content.summary {
            for (status, count) in [
                ("pass", summary.pass),
                ("fail", summary.fail),
                ("warn", summary.warn),
                ("error", summary.error),
                ("skip", summary.skip),
            ] {
                *totals.entry(status.to_owned()).or_default() += count;
            }
        }
    }
    (pods, totals)
}

async fn count<K>(api: Api<K>) -> anyhow::Result<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api.list_metadata(&ListParams::default()).await?.items.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("no profile folder")?
            .to_path_buf(),
    };
    let deadline = Duration::from_secs(args.timeout_seconds);
    let policies = support::load_policies(&args.policies)?;
    let rules: usize = policies
        .iter()
        .map(|policy| policy["spec"]["rules"].as_array().map_or(0, Vec::len))
        .sum();

    let crds = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    let sim = ApiServerSim::start(SimConfig::default().with_crd_dir(crds)).await?;
    let workdir = std::env::temp_dir().join(format!("kyverno-scale-{}", std::process::id()));
    std::fs::create_dir_all(&workdir)?;
    let kubeconfig = workdir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let client = sim.client().await?;

    let loading = Instant::now();
    sim.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kyverno"}}))?;
    for policy in &policies {
        sim.insert(policy.clone())?;
    }
    let namespaces: Vec<String> = (0..args.namespaces)
        .map(|index| format!("scale-{index:03}"))
        .collect();
    for namespace in &namespaces {
        sim.insert(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )?;
    }
    // Pods are spread in blocks: pod i lives in namespace i / (pods / namespaces).
    let per_namespace = args.pods.div_ceil(args.namespaces.max(1));
    let pod_namespace = |index: usize| &namespaces[index / per_namespace];
    for index in 0..args.pods {
        sim.insert(support::pod(
            pod_namespace(index),
            &format!("pod-{index:05}"),
            support::compliant(index),
        ))?;
    }
    println!(
        "loaded {} ClusterPolicies ({rules} rules), {} namespaces, {} pods in {:.1?}",
        policies.len(),
        namespaces.len(),
        args.pods,
        loading.elapsed()
    );

    let started = Instant::now();
    let scanner = Controller::spawn(
        &bin_dir,
        "background-scan-controller",
        &kubeconfig,
        &["--pod-name", "scale-scanner"],
    )?;
    let reports = Controller::spawn(
        &bin_dir,
        "reports-controller",
        &kubeconfig,
        &["--pod-name", "scale-reports"],
    )?;
    let ephemeral = Api::<EphemeralReport>::all(client.clone());

    // Phase 1: every pod's results in the reports.
    let mut last_check = Instant::now();
    let (complete, totals) = loop {
        if started.elapsed() > deadline {
            bail!("reports incomplete after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let aggregated = sample(
            &reports.metrics().await,
            "kyverno_rs_ephemeral_reports_aggregated_total",
        );
        if last_check.elapsed() > Duration::from_secs(30) {
            last_check = Instant::now();
            let scanned = sample(
                &scanner.metrics().await,
                "kyverno_controller_reconcile_total",
            );
            println!(
                "  {:>6.1?}: {scanned} resources scanned, {aggregated} ephemeral reports aggregated",
                started.elapsed()
            );
        }
        if aggregated < args.pods as f64 || count(ephemeral.clone()).await? > 0 {
            continue;
        }
        let stored = all_reports(&client).await?;
        let (pods, totals) = coverage(&stored);
        if pods.len() >= args.pods {
            break (started.elapsed(), totals);
        }
    };
    let objects = (
        count(Api::<PolicyReport>::all(client.clone())).await?,
        count(Api::<ClusterPolicyReport>::all(client.clone())).await?,
        count(ephemeral.clone()).await?,
        count(Api::<ClusterEphemeralReport>::all(client.clone())).await?,
    );
    println!("reports complete after {complete:.1?}; results {totals:?}");
    println!(
        "report objects stored: {} PolicyReports, {} ClusterPolicyReports, {} EphemeralReports, {} ClusterEphemeralReports",
        objects.0, objects.1, objects.2, objects.3
    );
    print_usage([&scanner, &reports]);

    // Phase 2: `changed` failing pods made compliant.
    let failing: Vec<usize> = (0..args.pods)
        .filter(|index| !support::compliant(*index))
        .take(args.changed)
        .collect();
    let (pod_context, container_context) = support::security_context(true);
    let changing = Instant::now();
    let mut changed_uids = HashSet::new();
    let mut touched_namespaces = HashSet::new();
    for index in &failing {
        let namespace = pod_namespace(*index);
        let patch = json!({"spec": {"securityContext": pod_context,
            "containers": [{"name": "app", "image": "nginx:1.27", "securityContext": container_context}]}});
        let pod = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), namespace)
            .patch(
                &format!("pod-{index:05}"),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
        changed_uids.insert(pod.metadata.uid.unwrap_or_default());
        touched_namespaces.insert(namespace.clone());
    }
    let patched = changing.elapsed();
    let reflected = loop {
        if changing.elapsed() > deadline {
            bail!("changes not reflected after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut still_failing = false;
        for namespace in &touched_namespaces {
            let stored = Api::<PolicyReport>::namespaced(client.clone(), namespace)
                .list(&ListParams::default())
                .await?;
            still_failing |= stored.items.iter().any(|report| {
                report.content.results.iter().any(|result| {
                    result.result == Some(PolicyResult::Fail)
                        && result.resources.iter().any(|resource| {
                            changed_uids.contains(resource.uid.as_deref().unwrap_or_default())
                        })
                })
            });
        }
        if !still_failing {
            break changing.elapsed();
        }
    };
    println!(
        "{} pods changed (patched in {patched:.1?}): reports reflect it after {reflected:.1?}",
        failing.len()
    );
    print_usage([&scanner, &reports]);
    drop(scanner);
    drop(reports);
    sim.shutdown().await;
    std::fs::remove_dir_all(&workdir)?;
    Ok(())
}
