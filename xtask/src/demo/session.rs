//! A terminal session of the demo: kubectl commands run in the demo's folder and, unless quiet,
//! printed with their output as a user would see them.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::processes::Processes;

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(250);

/// What a command printed, and whether it succeeded.
pub struct Outcome {
    /// Exit status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// Both outputs, as a terminal shows them.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs kubectl against the demo's cluster.
pub struct Session<'a> {
    /// The kubectl binary.
    pub kubectl: PathBuf,
    /// The working folder (manifests, kubeconfig, kubectl's cache).
    pub dir: PathBuf,
    /// Print nothing.
    pub quiet: bool,
    /// The background processes (watched while waiting).
    pub processes: &'a Processes,
}

/// `args` as typed in a shell.
fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|arg| {
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=./:,".contains(c))
            {
                (*arg).to_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Session<'_> {
    /// The kubeconfig of the cluster.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn print(&self, text: &str) {
        if !self.quiet {
            print!("{text}");
            let _ = std::io::stdout().flush();
        }
    }

    /// Prints a comment line.
    pub fn comment(&self, text: &str) {
        self.print(&format!("\n# {text}\n"));
    }

    /// Runs `kubectl args` without printing it.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<Outcome> {
        let output = Command::new(&self.kubectl)
            .args(args)
            .current_dir(&self.dir)
            .env("KUBECONFIG", self.kubeconfig())
            .env("KUBECACHEDIR", self.dir.join("kubectl-cache"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .with_context(|| format!("running kubectl {}", shell_words(args)))?;
        Ok(Outcome {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `kubectl args`, printing the command line and its output.
    pub fn show(&self, args: &[&str]) -> anyhow::Result<Outcome> {
        self.print(&format!("$ kubectl {}\n", shell_words(args)));
        let outcome = self.kubectl(args)?;
        self.print(&outcome.text());
        Ok(outcome)
    }

    /// Runs `kubectl args`, printed, and fails unless it succeeds.
    pub fn show_ok(&self, args: &[&str]) -> anyhow::Result<Outcome> {
        let outcome = self.show(args)?;
        if !outcome.success {
            bail!(
                "`kubectl {}` failed:\n{}",
                shell_words(args),
                outcome.text()
            );
        }
        Ok(outcome)
    }

    /// Writes a manifest into the working folder and prints it as `cat` would.
    pub fn write_manifest(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let path: &Path = &self.dir.join(name);
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        self.print(&format!("$ cat {name}\n{text}"));
        Ok(())
    }

    /// Polls `check` until it gives a value, for at most `limit`, failing early when a
    /// background process exits or on Ctrl-C. `check` gets the previous failure's text to
    /// report it on timeout.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> anyhow::Result<Result<T, String>>,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        loop {
            self.processes.check_running()?;
            let last = match check()? {
                Ok(value) => return Ok(value),
                Err(last) => last,
            };
            if started.elapsed() > limit {
                bail!("timed out after {limit:?} waiting until {what}; last seen:\n{last}");
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn arguments_are_quoted_as_a_shell_needs() {
        assert_eq!(
            shell_words(&["run", "sample", "--image=busybox"]),
            "run sample --image=busybox"
        );
        assert_eq!(
            shell_words(&["get", "-o", "jsonpath={.a}", "it's"]),
            r"get -o 'jsonpath={.a}' 'it'\''s'"
        );
    }
}
