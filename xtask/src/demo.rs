//! `cargo xtask demo [--check]`: the seed walkthrough on this machine. It builds apiserver-sim
//! and the admission, reports, background-scan and generate controllers (debug), starts them
//! against the simulator (the `kyverno-svc` Service mapped to the admission controller's local
//! address), then runs the walkthrough with the real kubectl, printed as a terminal session: an
//! Enforce policy blocks an unlabelled Pod and admits a labelled one; an Audit policy admits a
//! good and a bad Pod, the reports controller summarises them in `polr-ns-default`, and `kubectl
//! get events` lists the admission controller's PolicyViolation Event on the bad Pod; a generate
//! policy gives a new Namespace a default-deny NetworkPolicy (admission queues the
//! UpdateRequest, the generate controller creates it). Everything stops and the temporary folder
//! goes at the end, on failure and on Ctrl-C. With `--check` nothing is printed but the outcome.
mod processes;
mod session;

use std::collections::HashMap;
use std::io::BufRead;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use processes::{Processes, TempDir};
use session::Session;

/// The packages built and the binary each one provides.
const BINARIES: [(&str, &str); 5] = [
    ("apiserver-sim", "apiserver-sim"),
    ("kyverno-admission-controller", "admission-controller"),
    ("kyverno-reports-controller", "reports-controller"),
    (
        "kyverno-background-scan-controller",
        "background-scan-controller",
    ),
    ("kyverno-generate-controller", "generate-controller"),
];

/// The Enforce policy of the first part.
const REQUIRE_LABELS: &str = include_str!("demo/require-labels.yaml");

/// The Audit policy of the second part.
const REQUIRE_TIER: &str = include_str!("demo/require-tier-on-pod.yaml");

/// The generate policy of the third part.
const ADD_NETWORKPOLICY: &str = include_str!("demo/add-networkpolicy.yaml");

/// The Namespace created in the third part.
const TEAM_NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n";

/// The namespace the controllers run in.
const KYVERNO_NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kyverno\n";

/// The upper bound of a wait for the controllers (generous: debug builds on a busy machine).
const LIMIT: Duration = Duration::from_secs(120);

/// Runs the demo; `check` prints only the outcome.
pub fn demo(check: bool) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let kubectl = crate::install_kubectl(&root)?;
    let binaries = build(&root, check)?;
    let dir = TempDir::new("kyverno-rs-demo")?;
    let processes = Processes::new(dir.path().join("logs"))?;
    let session = Session {
        kubectl,
        dir: dir.path().to_path_buf(),
        quiet: check,
        processes: &processes,
    };
    let outcome = start(&root, &binaries, &session).and_then(|()| walkthrough(&session));
    match outcome {
        Ok(()) => {
            session.comment("done: the processes stop and the temporary folder goes");
            if check {
                println!("demo: every step succeeded");
            }
            Ok(())
        }
        Err(error) if processes.interrupted() => Err(error.context("demo interrupted")),
        Err(error) => Err(anyhow::anyhow!(
            "the demo failed: {error:#}\nthe processes' logs end with:\n{}",
            processes.log_tails(20)
        )),
    }
}

/// Builds the binaries (debug), returning their paths by name.
fn build(root: &Path, quiet: bool) -> anyhow::Result<HashMap<String, PathBuf>> {
    if !quiet {
        println!("# building apiserver-sim and the controllers (debug)");
    }
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(root)
        .args([
            "build",
            "--bins",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .stderr(if quiet {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
    for (package, _) in BINARIES {
        command.args(["-p", package]);
    }
    // `cargo run` gave this process the variables of the xtask package; build scripts that
    // track them (ring's) would be rebuilt, and everything above them, on every run.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_MANIFEST_") {
            command.env_remove(name.as_ref());
        }
    }
    let mut child = command.spawn().context("running cargo build")?;
    let mut binaries = HashMap::new();
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout).lines() {
            let message: serde_json::Value = match serde_json::from_str(&line?) {
                Ok(message) => message,
                Err(_) => continue,
            };
            if let (Some(name), Some(path)) = (
                message["target"]["name"].as_str(),
                message["executable"].as_str(),
            ) {
                binaries.insert(name.to_owned(), PathBuf::from(path));
            }
        }
    }
    let output = child
        .wait_with_output()
        .context("waiting for cargo build")?;
    if !output.status.success() {
        // Without `quiet` the diagnostics went to the terminal and `stderr` is empty.
        bail!(
            "cargo build failed ({})\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for (_, binary) in BINARIES {
        if !binaries.contains_key(binary) {
            bail!("cargo build gave no `{binary}` binary");
        }
    }
    Ok(binaries)
}

/// A free local TCP port.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts the simulator, then the controllers against it.
fn start(
    root: &Path,
    binaries: &HashMap<String, PathBuf>,
    session: &Session<'_>,
) -> anyhow::Result<()> {
    let processes = session.processes;
    let binary = |name: &str| Command::new(&binaries[name]);
    let webhook_addr = format!("127.0.0.1:{}", free_port()?);
    session.comment(&format!(
        "starting apiserver-sim (logs: {})",
        processes.log_path("apiserver-sim").display()
    ));
    let mut sim = binary("apiserver-sim");
    sim.arg("--kubeconfig")
        .arg(session.kubeconfig())
        .arg("--crds")
        .arg(root.join("crds"))
        .args(["--service", &format!("kyverno-svc.kyverno={webhook_addr}")]);
    processes.spawn("apiserver-sim", sim)?;
    session.wait_for("apiserver-sim is listening", LIMIT, || {
        let log = std::fs::read_to_string(processes.log_path("apiserver-sim"))?;
        Ok(if log.contains("kubeconfig:") {
            Ok(())
        } else {
            Err(log)
        })
    })?;
    // (`kubectl create namespace` speaks protobuf, which the simulator does not.)
    std::fs::write(
        session.dir.join("kyverno-namespace.yaml"),
        KYVERNO_NAMESPACE,
    )?;
    session.show_ok(&["apply", "-f", "kyverno-namespace.yaml"])?;
    session.comment(&format!(
        "starting the admission, reports, background-scan and generate controllers (webhooks on {webhook_addr})"
    ));
    let controller = |name: &str| {
        let mut command = binary(name);
        command
            .env("KUBECONFIG", session.kubeconfig())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("RUST_LOG", "info");
        command
    };
    let mut admission = controller("admission-controller");
    admission.args([
        "--webhook-addr",
        &webhook_addr,
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    processes.spawn("admission-controller", admission)?;
    processes.spawn("reports-controller", controller("reports-controller"))?;
    processes.spawn(
        "background-scan-controller",
        controller("background-scan-controller"),
    )?;
    let mut generate = controller("generate-controller");
    generate.args(["--metrics-addr", "127.0.0.1:0"]);
    processes.spawn("generate-controller", generate)?;
    Ok(())
}

/// The seed walkthrough.
fn walkthrough(session: &Session<'_>) -> anyhow::Result<()> {
    enforce(session)?;
    audit(session)?;
    generate(session)
}

/// An Enforce policy: the unlabelled Pod is blocked, the labelled one admitted.
fn enforce(session: &Session<'_>) -> anyhow::Result<()> {
    session.comment("1. an Enforce policy: every Pod needs the label app.kubernetes.io/name");
    session.write_manifest("require-labels.yaml", REQUIRE_LABELS)?;
    session.show_ok(&["apply", "-f", "require-labels.yaml"])?;
    session.comment("(waiting until the admission controller enforces it)");
    session.wait_for("the policy is enforced", LIMIT, || {
        let probe = session.kubectl(&["run", "sample", "--image=busybox", "--dry-run=server"])?;
        Ok(
            if !probe.success && probe.stderr.contains("denied the request") {
                Ok(())
            } else {
                Err(probe.text())
            },
        )
    })?;
    let blocked = session.show(&["run", "sample", "--image=busybox"])?;
    if blocked.success || !blocked.stderr.contains("require-labels") {
        bail!(
            "the unlabelled Pod was not blocked by require-labels:\n{}",
            blocked.text()
        );
    }
    session.show_ok(&[
        "run",
        "sample",
        "--image=busybox",
        "--labels",
        "app.kubernetes.io/name=sample",
    ])?;
    session.comment("cleaning up before the next part");
    session.show_ok(&["delete", "clusterpolicy", "require-labels"])?;
    session.show_ok(&["delete", "pod", "sample"])?;
    Ok(())
}

/// An Audit policy: both Pods are admitted and the report counts a pass and a failure.
fn audit(session: &Session<'_>) -> anyhow::Result<()> {
    session.comment("2. an Audit policy: Pods should have the label tier; violations are reported");
    session.write_manifest("require-tier-on-pod.yaml", REQUIRE_TIER)?;
    session.show_ok(&["apply", "-f", "require-tier-on-pod.yaml"])?;
    session.show_ok(&[
        "run",
        "good",
        "--image=busybox",
        "--labels",
        "tier=frontend",
    ])?;
    session.show_ok(&["run", "bad", "--image=busybox"])?;
    session.comment("(waiting until polr-ns-default counts one pass and one failure)");
    session.wait_for("polr-ns-default has PASS 1 and FAIL 1", LIMIT, || {
        let counts = session.kubectl(&[
            "get",
            "polr",
            "polr-ns-default",
            "-n",
            "default",
            "-o",
            "jsonpath={.summary.pass}/{.summary.fail}",
        ])?;
        Ok(if counts.success && counts.stdout.trim() == "1/1" {
            Ok(())
        } else {
            Err(counts.text())
        })
    })?;
    session.show_ok(&["get", "polr", "-A"])?;
    let events = [
        "get",
        "events",
        "--field-selector",
        "reason=PolicyViolation",
    ];
    // The admission controller writes events.k8s.io/v1 Events, which kubectl lists as core
    // Events; they may come a little after the report.
    session.comment("(waiting until the PolicyViolation Event on the bad Pod is listed)");
    session.wait_for("a PolicyViolation Event on pod/bad", LIMIT, || {
        let listed = session.kubectl(&events)?;
        Ok(if listed.success && violation_on_bad_pod(&listed.stdout) {
            Ok(())
        } else {
            Err(listed.text())
        })
    })?;
    session.processes.check_running()?;
    let shown = session.show_ok(&events)?;
    if !violation_on_bad_pod(&shown.stdout) {
        bail!("no PolicyViolation Event on pod/bad in:\n{}", shown.text());
    }
    Ok(())
}

/// A generate policy: a new Namespace gets a default-deny NetworkPolicy.
fn generate(session: &Session<'_>) -> anyhow::Result<()> {
    session.comment("3. a generate policy: every new Namespace gets a default-deny NetworkPolicy");
    session.write_manifest("add-networkpolicy.yaml", ADD_NETWORKPOLICY)?;
    session.show_ok(&["apply", "-f", "add-networkpolicy.yaml"])?;
    session.comment("(waiting until the admission controller sends Namespace requests to Kyverno)");
    session.wait_for("the validating webhook covers Namespaces", LIMIT, || {
        let rules = session.kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            "kyverno-resource-validating-webhook-cfg",
            "-o",
            "jsonpath={.webhooks[*].rules[*].resources}",
        ])?;
        Ok(if rules.success && rules.stdout.contains("namespaces") {
            Ok(())
        } else {
            Err(rules.text())
        })
    })?;
    session.write_manifest("team-a.yaml", TEAM_NAMESPACE)?;
    session.show_ok(&["apply", "-f", "team-a.yaml"])?;
    session.comment("(waiting until the generate controller has created the NetworkPolicy)");
    let get = ["get", "networkpolicy", "default-deny", "-n", "team-a"];
    session.wait_for("NetworkPolicy team-a/default-deny exists", LIMIT, || {
        let found = session.kubectl(&get)?;
        Ok(if found.success {
            Ok(())
        } else {
            Err(found.text())
        })
    })?;
    session.processes.check_running()?;
    session.show_ok(&get)?;
    let labels = session.show_ok(&[
        "get",
        "networkpolicy",
        "default-deny",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.metadata.labels.generate\\.kyverno\\.io/policy-name}",
    ])?;
    if labels.stdout.trim() != "add-networkpolicy" {
        bail!(
            "the NetworkPolicy does not name its policy:\n{}",
            labels.text()
        );
    }
    Ok(())
}

/// Whether `kubectl get events` output has a PolicyViolation Warning about `pod/bad`.
fn violation_on_bad_pod(listed: &str) -> bool {
    listed.lines().any(|line| {
        let cells: Vec<&str> = line.split_whitespace().collect();
        cells.contains(&"Warning")
            && cells.contains(&"PolicyViolation")
            && cells.contains(&"pod/bad")
    })
}
