//! Helpers shared by the unit tests.
use std::path::{Path, PathBuf};

/// A fresh, empty folder in the system temp folder for test `name` of `module`, unique to this
/// process.
pub(crate) fn scratch(module: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "kyverno-cli-{module}-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Writes `text` to `path`, creating its folders.
pub(crate) fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("folder");
    }
    std::fs::write(path, text).expect("write");
}
