//! `apiserver-sim`: runs the in-memory Kubernetes API server until interrupted.
//!
//! ```text
//! apiserver-sim [--port N] [--kubeconfig PATH] [--crds DIR]... [--user TOKEN:NAME[:GROUP,...]]...
//!               [--service NAME.NAMESPACE=HOST:PORT]...
//! ```
//! Writes an admin kubeconfig (default `./apiserver-sim.kubeconfig`) and prints the URL.
//! `--service` sends the webhook calls for a Service to a local address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use apiserver_sim::{ApiServerSim, SimConfig, SimUser};

fn usage() -> &'static str {
    "usage: apiserver-sim [--port N] [--kubeconfig PATH] [--crds DIR]... [--user TOKEN:NAME[:GROUP,...]]... [--service NAME.NAMESPACE=HOST:PORT]..."
}

/// The simulator's configuration, the kubeconfig path and the Service mappings.
type Parsed = (SimConfig, PathBuf, Vec<(String, SocketAddr)>);

fn parse(args: &[String]) -> Result<Parsed, String> {
    let mut config = SimConfig::default();
    let mut kubeconfig = PathBuf::from("apiserver-sim.kubeconfig");
    let mut services = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value\n{}", usage()))
        };
        match a.as_str() {
            "--port" => config.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--kubeconfig" => kubeconfig = PathBuf::from(value()?),
            "--crds" => config.crd_dirs.push(PathBuf::from(value()?)),
            "--user" => {
                let v = value()?;
                let mut parts = v.splitn(3, ':');
                let token = parts.next().unwrap_or_default();
                let name = parts
                    .next()
                    .ok_or_else(|| format!("--user {v}: expected TOKEN:NAME[:GROUPS]"))?;
                let groups: Vec<&str> = parts
                    .next()
                    .map(|g| g.split(',').filter(|s| !s.is_empty()).collect())
                    .unwrap_or_default();
                config.users.push(SimUser::new(token, name, &groups));
            }
            "--service" => {
                let v = value()?;
                let (service, addr) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--service {v}: expected NAME.NAMESPACE=HOST:PORT"))?;
                let addr = addr.parse().map_err(|e| format!("--service {v}: {e}"))?;
                services.push((service.to_owned(), addr));
            }
            "-h" | "--help" => return Err(usage().to_string()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    Ok((config, kubeconfig, services))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, kubeconfig, services) = match parse(&args) {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let sim = match ApiServerSim::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("apiserver-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (service, addr) in &services {
        sim.map_service(service, *addr);
    }
    if let Err(e) = sim.write_kubeconfig(&kubeconfig) {
        eprintln!("apiserver-sim: writing {}: {e}", kubeconfig.display());
        return ExitCode::FAILURE;
    }
    println!("apiserver-sim listening on {}", sim.url());
    println!("kubeconfig: {}", kubeconfig.display());
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("apiserver-sim: waiting for ctrl-c: {e}");
    }
    sim.shutdown().await;
    ExitCode::SUCCESS
}
