//! Helpers shared by the integration tests that read `../shared`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `shared/` folder beside the repository (reference CRDs and the conformance corpus).
///
/// `KYVERNO_SHARED_DIR` overrides it. A missing folder fails the test: these tests must never pass
/// by skipping.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("KYVERNO_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    assert!(
        dir.join("reference").is_dir() && dir.join("conformance").is_dir(),
        "shared folder not found at {} (set KYVERNO_SHARED_DIR)",
        dir.display()
    );
    dir
}

/// Every `.yaml`/`.yml` file below `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", current.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Parses every YAML document of a file into JSON values (empty documents are dropped).
pub fn read_yaml_documents(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    kyverno_api::load::parse_yaml_documents(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}
