//! Finding test files below the given folders and reading the Test documents they hold.
use std::path::{Component, Path, PathBuf};

use crate::loader::{self, LoadError};
use crate::test_file::{Test, canonicalize_test};

/// Why the test files could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("failed to read {path}: {source}")]
pub struct DiscoveryError {
    /// The folder.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Why a Test document cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    /// The file could not be read or a document does not fit the Test schema.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The document uses the deprecated schema (no apiVersion or kind, or a top-level `name`).
    #[error("test file {0} uses a deprecated schema, please migrate to the latest format")]
    Deprecated(String),
}

/// One Test document and where it is.
#[derive(Debug)]
pub struct TestCase {
    /// The test file.
    pub path: PathBuf,
    /// The test, or why it cannot be used.
    pub test: Result<Test, TestFileError>,
}

impl TestCase {
    /// The folder that the test's paths are relative to.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The test's `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.test
            .as_ref()
            .ok()
            .and_then(|test| test.metadata.as_ref())
            .and_then(|metadata| metadata.get("name"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    }
}

/// `path` without `.` components, as Go's `filepath.Clean` leaves relative paths.
fn clean(path: &Path) -> PathBuf {
    let cleaned: PathBuf = path
        .components()
        .filter(|component| *component != Component::CurDir)
        .collect();
    if cleaned.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        cleaned
    }
}

/// Every file named `file_name` below each folder (a file given directly is taken as is), in
/// file name order, depth first, folder after folder.
pub fn discover(paths: &[PathBuf], file_name: &str) -> Result<Vec<PathBuf>, DiscoveryError> {
    let mut found = Vec::new();
    for path in paths {
        let path = clean(path);
        if path.is_file() {
            found.push(path);
        } else {
            walk(&path, file_name, &mut found)?;
        }
    }
    Ok(found)
}

fn walk(dir: &Path, file_name: &str, found: &mut Vec<PathBuf>) -> Result<(), DiscoveryError> {
    let error = |source| DiscoveryError {
        path: dir.to_owned(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(error)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let file_type = entry.file_type().map_err(error)?;
        if file_type.is_dir() {
            walk(&entry.path(), file_name, found)?;
        } else if entry.file_name() == file_name {
            found.push(entry.path());
        }
    }
    Ok(())
}

/// The Test documents of a test file; an unreadable file is one failed test case.
pub fn read_test_cases(path: &Path) -> Vec<TestCase> {
    let documents = match loader::read_documents(path) {
        Ok(documents) => documents,
        Err(error) => {
            return vec![TestCase {
                path: path.to_owned(),
                test: Err(error.into()),
            }];
        }
    };
    documents
        .into_iter()
        .map(|mut document| {
            canonicalize_test(&mut document.value);
            TestCase {
                path: path.to_owned(),
                test: parse_test(&document),
            }
        })
        .collect()
}

fn parse_test(document: &kyverno_api::load::Document) -> Result<Test, TestFileError> {
    let test: Test = document.decode().map_err(LoadError::from)?;
    if test.api_version.is_empty() || test.kind.is_empty() || test.name.is_some() {
        return Err(TestFileError::Deprecated(document.source_name.clone()));
    }
    Ok(test)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::write;

    fn scratch(name: &str) -> PathBuf {
        crate::test_support::scratch("discovery", name)
    }

    const TEST: &str = "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata:\n  name: t\npolicies: [p.yaml]\nresults: []\n";

    #[test]
    fn test_files_are_found_in_name_order_including_hidden_folders() {
        let dir = scratch("order");
        for folder in ["b", "a/z", "a/.kyverno-test", "c"] {
            write(&dir.join(folder).join("kyverno-test.yaml"), TEST);
        }
        write(&dir.join("c/other.yaml"), TEST);
        let found = discover(std::slice::from_ref(&dir), "kyverno-test.yaml").expect("readable");
        let relative: Vec<_> = found
            .iter()
            .map(|path| {
                path.strip_prefix(&dir)
                    .expect("below")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            relative,
            [
                "a/.kyverno-test/kyverno-test.yaml",
                "a/z/kyverno-test.yaml",
                "b/kyverno-test.yaml",
                "c/kyverno-test.yaml"
            ]
        );
        let custom = discover(&[dir.join("c")], "other.yaml").expect("readable");
        assert_eq!(custom, [dir.join("c/other.yaml")]);
    }

    #[test]
    fn a_missing_folder_is_an_error() {
        let error = discover(&[PathBuf::from("/nonexistent/tests")], "kyverno-test.yaml")
            .expect_err("missing");
        assert!(
            error
                .to_string()
                .starts_with("failed to read /nonexistent/tests"),
            "{error}"
        );
    }

    #[test]
    fn relative_paths_are_cleaned() {
        assert_eq!(clean(Path::new("./a/./b")), PathBuf::from("a/b"));
        assert_eq!(clean(Path::new(".")), PathBuf::from("."));
    }

    #[test]
    fn every_document_is_a_test_case() {
        let dir = scratch("documents");
        let path = dir.join("kyverno-test.yaml");
        write(
            &path,
            &format!("{TEST}---\n{}", TEST.replace("name: t", "name: u")),
        );
        let cases = read_test_cases(&path);
        assert_eq!(
            cases.iter().map(TestCase::name).collect::<Vec<_>>(),
            ["t", "u"]
        );
        assert_eq!(cases[0].dir(), dir);
    }

    #[test]
    fn deprecated_and_invalid_tests_are_errors() {
        let dir = scratch("invalid");
        let path = dir.join("kyverno-test.yaml");
        write(&path, "name: old\npolicies: [p.yaml]\nresults: []\n");
        let cases = read_test_cases(&path);
        assert!(matches!(cases[0].test, Err(TestFileError::Deprecated(_))));
        write(
            &path,
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nresults:\n- policy: p\n  result: maybe\n",
        );
        let error = read_test_cases(&path)
            .remove(0)
            .test
            .expect_err("bad result");
        assert!(error.to_string().contains("results[0].result"), "{error}");
    }
}
