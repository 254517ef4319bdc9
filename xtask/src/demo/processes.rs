//! The demo's background processes (the simulator and the controllers): their output goes to log
//! files, and they are killed when the demo ends, fails or is interrupted (Ctrl-C).
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, bail};

/// A folder removed (with everything in it) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh folder under the system's temporary folder.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Children = Arc<Mutex<Vec<(String, Child)>>>;

fn lock(children: &Children) -> MutexGuard<'_, Vec<(String, Child)>> {
    match children.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn kill_all(children: &Children) {
    for (_, child) in lock(children).iter_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The running background processes, killed on drop or on Ctrl-C.
pub struct Processes {
    children: Children,
    interrupted: Arc<AtomicBool>,
    logs: PathBuf,
}

impl Processes {
    /// No process yet; logs go to `logs`. Ctrl-C kills the processes and sets
    /// [`Processes::interrupted`].
    pub fn new(logs: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let processes = Self {
            children: Children::default(),
            interrupted: Arc::default(),
            logs,
        };
        let children = Arc::clone(&processes.children);
        let interrupted = Arc::clone(&processes.interrupted);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the Ctrl-C handler")?;
        std::thread::spawn(move || {
            if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
                interrupted.store(true, Ordering::SeqCst);
                kill_all(&children);
            }
        });
        Ok(processes)
    }

    /// Whether Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// The log file of process `name`.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Starts `command` as process `name`, its output going to its log file.
    pub fn spawn(&self, name: &str, mut command: Command) -> anyhow::Result<()> {
        if self.interrupted() {
            bail!("interrupted");
        }
        let log = File::create(self.log_path(name)).context("creating a log file")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("sharing a log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        lock(&self.children).push((name.to_owned(), child));
        Ok(())
    }

    /// Fails when a process has exited (they all run until the end of the demo).
    pub fn check_running(&self) -> anyhow::Result<()> {
        if self.interrupted() {
            bail!("interrupted");
        }
        for (name, child) in lock(&self.children).iter_mut() {
            if let Some(status) = child.try_wait().context("checking a process")? {
                bail!("{name} exited ({status})");
            }
        }
        Ok(())
    }

    /// The last lines of every log, to explain a failure.
    pub fn log_tails(&self, lines: usize) -> String {
        let names: Vec<String> = lock(&self.children)
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        let mut tails = String::new();
        for name in names {
            let text = std::fs::read_to_string(self.log_path(&name)).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            tails.push_str(&format!("--- {name} (last {} lines)\n", all.len() - start));
            for line in &all[start..] {
                tails.push_str(line);
                tails.push('\n');
            }
        }
        tails
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        kill_all(&self.children);
    }
}
