//! Reading the files a command is given: policies, resources, exceptions, values, user infos and
//! cluster resources, from files or folders, with errors that name the file, the document and
//! the field.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use kyverno_api::load::{self, Document};
use kyverno_policy_core::engine::{LoadedPolicy, PolicyLoadError};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::engine::{api_group, field};
use crate::test_file::{ClusterResource, UserInfo, Values};

/// Why files could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or folder could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A document is not valid YAML or does not have the shape its kind requires.
    #[error(transparent)]
    Document(#[from] load::LoadError),
    /// A document is of a kind this implementation cannot evaluate yet.
    #[error("{source_name}: document {document}: {kind} ({api_version}) is not supported yet")]
    Unsupported {
        /// The file.
        source_name: String,
        /// The document's position in the file, counting from 1.
        document: usize,
        /// The document's kind.
        kind: String,
        /// The document's apiVersion.
        api_version: String,
    },
    /// A document is not of the kind expected at this place.
    #[error("{source_name}: document {document}: expected {expected}, found {found:?}")]
    UnexpectedKind {
        /// The file.
        source_name: String,
        /// The document's position in the file, counting from 1.
        document: usize,
        /// The kinds accepted here.
        expected: &'static str,
        /// The document's kind.
        found: String,
    },
    /// A resource document is not an object with a `kind`.
    #[error("{source_name}: document {document}: a resource must be an object with a kind")]
    NotAResource {
        /// The file.
        source_name: String,
        /// The document's position in the file, counting from 1.
        document: usize,
    },
    /// A file that must hold exactly one document holds another number of them.
    #[error("{source_name}: expected exactly one document, found {found}")]
    DocumentCount {
        /// The file.
        source_name: String,
        /// How many documents it holds.
        found: usize,
    },
    /// A file uses a schema that is no longer accepted.
    #[error(
        "{source_name}: uses a deprecated schema (apiVersion and kind are required), please migrate to the latest format"
    )]
    DeprecatedSchema {
        /// The file.
        source_name: String,
    },
}

/// Whether a file name ends in one of the extensions of manifest files.
fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|extension| extension.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The files a path names: the file itself, or the manifest files below a folder, in file name
/// order, depth first.
pub fn expand(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_error = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut entries = std::fs::read_dir(path)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(read_error)?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut files = Vec::new();
    for entry in entries {
        let entry_path = entry.path();
        if entry_path.is_dir() {
            files.extend(expand(&entry_path)?);
        } else if is_manifest(&entry_path) {
            files.push(entry_path);
        }
    }
    Ok(files)
}

/// The non-empty documents of a file.
pub fn read_documents(path: &Path) -> Result<Vec<Document>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(load::documents(&path.display().to_string(), &text)?)
}

/// The documents of every file the paths (relative to `base`) name.
fn documents_below(base: &Path, paths: &[String]) -> Result<Vec<Document>, LoadError> {
    let mut documents = Vec::new();
    for path in paths {
        for file in expand(&base.join(path))? {
            documents.extend(read_documents(&file)?);
        }
    }
    Ok(documents)
}

/// Kinds of policies this implementation does not evaluate yet, by API group.
fn is_unsupported_policy_kind(group: &str, kind: &str) -> bool {
    match group {
        "policies.kyverno.io" => true,
        "admissionregistration.k8s.io" => matches!(
            kind,
            "ValidatingAdmissionPolicy"
                | "ValidatingAdmissionPolicyBinding"
                | "MutatingAdmissionPolicy"
                | "MutatingAdmissionPolicyBinding"
        ),
        _ => false,
    }
}

/// A policy that failed validation: upstream skips such policies and reports them.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidPolicy {
    /// The policy's name.
    pub name: String,
    /// Why it is invalid.
    pub message: String,
}

/// The policies found in policy files.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    /// Policies ready for evaluation, in file order.
    pub valid: Vec<LoadedPolicy>,
    /// Policies rejected by validation.
    pub invalid: Vec<InvalidPolicy>,
}

impl Policies {
    /// How many policies were found, valid or not.
    pub fn len(&self) -> usize {
        self.valid.len() + self.invalid.len()
    }

    /// Whether no policy was found.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Loads the ClusterPolicies and Policies of the given files or folders. Documents of other
/// kinds are ignored, except the policy kinds not supported yet, which are an error.
pub fn load_policies(base: &Path, paths: &[String]) -> Result<Policies, LoadError> {
    let mut policies = Policies::default();
    for document in documents_below(base, paths)? {
        let group = api_group(document.api_version());
        let loaded = match (group, document.kind()) {
            ("kyverno.io", "ClusterPolicy") => {
                LoadedPolicy::from_cluster_policy(document.decode::<ClusterPolicy>()?)
            }
            ("kyverno.io", "Policy") => LoadedPolicy::from_policy(document.decode::<Policy>()?),
            (group, kind) if is_unsupported_policy_kind(group, kind) => {
                return Err(unsupported(&document));
            }
            _ => continue,
        };
        match loaded {
            Ok(policy) => policies.valid.push(policy),
            Err(PolicyLoadError::Invalid {
                policy,
                path,
                message,
            }) => policies.invalid.push(InvalidPolicy {
                name: policy,
                message: format!("{path}: {message}"),
            }),
        }
    }
    Ok(policies)
}

fn unsupported(document: &Document) -> LoadError {
    LoadError::Unsupported {
        source_name: document.source_name.clone(),
        document: document.position,
        kind: document.kind().to_owned(),
        api_version: document.api_version().to_owned(),
    }
}

/// Loads the resources of the given files or folders. As upstream does, a resource without a
/// namespace is put in `default` (cluster-scoped ones too), and empty (`null`) `labels` and
/// `annotations` of every `metadata` and an empty top-level `data` become empty maps.
pub fn load_resources(base: &Path, paths: &[String]) -> Result<Vec<Value>, LoadError> {
    documents_below(base, paths)?
        .into_iter()
        .map(into_resource)
        .collect()
}

fn into_resource(document: Document) -> Result<Value, LoadError> {
    let Document {
        source_name,
        position,
        mut value,
    } = document;
    let Some(object) = value
        .as_object_mut()
        .filter(|object| object.contains_key("kind"))
    else {
        return Err(LoadError::NotAResource {
            source_name,
            document: position,
        });
    };
    default_namespace(object);
    if object.get("data").is_some_and(Value::is_null) {
        object.insert("data".to_owned(), Value::Object(Map::new()));
    }
    empty_metadata_maps(&mut value);
    Ok(value)
}

/// Replaces `null` labels and annotations of every `metadata` object below `value` by `{}`.
fn empty_metadata_maps(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                for key in ["labels", "annotations"] {
                    if let Some(map) = metadata.get_mut(key).filter(|map| map.is_null()) {
                        *map = Value::Object(Map::new());
                    }
                }
            }
            object.values_mut().for_each(empty_metadata_maps);
        }
        Value::Array(items) => items.iter_mut().for_each(empty_metadata_maps),
        _ => {}
    }
}

/// Sets `metadata.namespace` to `default` when it is absent or empty.
pub fn default_namespace(object: &mut Map<String, Value>) {
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(metadata) = metadata.as_object_mut() {
        let missing = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if missing {
            metadata.insert("namespace".to_owned(), Value::from("default"));
        }
    }
}

/// Identity of a resource for duplicate detection: group, kind, namespace and name.
fn identity(resource: &Value) -> (String, String, String, String) {
    let text = |pointer: &str| field(resource, pointer).to_owned();
    (
        api_group(field(resource, "/apiVersion")).to_owned(),
        text("/kind"),
        text("/metadata/namespace"),
        text("/metadata/name"),
    )
}

/// Keeps the first of resources with the same group, kind, namespace and name; returns the kept
/// resources and the identities (kind, name, namespace) of the dropped ones.
pub fn remove_duplicates(resources: Vec<Value>) -> (Vec<Value>, Vec<(String, String, String)>) {
    let mut seen = HashSet::new();
    let mut uniques = Vec::with_capacity(resources.len());
    let mut duplicates = Vec::new();
    for resource in resources {
        let (group, kind, namespace, name) = identity(&resource);
        if seen.insert((group, kind.clone(), namespace.clone(), name.clone())) {
            uniques.push(resource);
        } else {
            duplicates.push((kind, name, namespace));
        }
    }
    (uniques, duplicates)
}

/// Loads the PolicyExceptions of the given files or folders.
pub fn load_exceptions(base: &Path, paths: &[String]) -> Result<Vec<PolicyException>, LoadError> {
    let mut exceptions = Vec::new();
    for document in documents_below(base, paths)? {
        match (api_group(document.api_version()), document.kind()) {
            ("kyverno.io", "PolicyException") => exceptions.push(document.decode()?),
            ("policies.kyverno.io", _) => return Err(unsupported(&document)),
            _ => {
                return Err(LoadError::UnexpectedKind {
                    source_name: document.source_name.clone(),
                    document: document.position,
                    expected: "PolicyException",
                    found: document.kind().to_owned(),
                });
            }
        }
    }
    Ok(exceptions)
}

/// Decodes the single document of a file, which must be of one of the `kinds` and carry an
/// apiVersion and a kind.
fn load_single<T: DeserializeOwned>(
    path: &Path,
    kinds: &'static [&'static str],
    expected: &'static str,
) -> Result<T, LoadError> {
    let source_name = path.display().to_string();
    let mut documents = read_documents(path)?;
    if documents.len() != 1 {
        return Err(LoadError::DocumentCount {
            source_name,
            found: documents.len(),
        });
    }
    let document = documents.remove(0);
    if document.api_version().is_empty() || document.kind().is_empty() {
        return Err(LoadError::DeprecatedSchema { source_name });
    }
    if !kinds.contains(&document.kind()) {
        return Err(LoadError::UnexpectedKind {
            source_name,
            document: document.position,
            expected,
            found: document.kind().to_owned(),
        });
    }
    Ok(document.decode()?)
}

/// Loads a Values file (`kind: Values`, or the older `kind: Value`).
pub fn load_values(path: &Path) -> Result<Values, LoadError> {
    load_single(path, &["Values", "Value"], "Values")
}

/// Loads a UserInfo file.
pub fn load_user_info(path: &Path) -> Result<UserInfo, LoadError> {
    load_single(path, &["UserInfo"], "UserInfo")
}

/// Loads a ClusterResource file.
pub fn load_cluster_resource(path: &Path) -> Result<ClusterResource, LoadError> {
    load_single(path, &["ClusterResource"], "ClusterResource")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support;

    fn scratch(name: &str) -> PathBuf {
        test_support::scratch("loader", name)
    }

    /// Writes file `name` of `dir`.
    fn write(dir: &Path, name: &str, text: &str) {
        test_support::write(&dir.join(name), text);
    }

    const POLICY: &str = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules: []\n";

    #[test]
    fn folders_expand_to_manifests_in_name_order() {
        let dir = scratch("expand");
        write(&dir, "b.yaml", POLICY);
        write(&dir, "a/z.yml", POLICY);
        write(&dir, "a/readme.md", "not yaml");
        write(&dir, "c.json", "{}");
        let files = expand(&dir).expect("readable");
        let names: Vec<_> = files
            .iter()
            .map(|file| {
                file.strip_prefix(&dir)
                    .expect("below")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, ["a/z.yml", "b.yaml", "c.json"]);
    }

    #[test]
    fn policy_files_ignore_other_kinds_and_reject_cel_kinds() {
        let dir = scratch("policies");
        write(
            &dir,
            "p.yaml",
            &format!("{POLICY}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"),
        );
        let policies = load_policies(&dir, &["p.yaml".to_owned()]).expect("loads");
        assert_eq!(policies.valid.len(), 1);
        assert_eq!(policies.valid[0].key(), "p");

        write(
            &dir,
            "v.yaml",
            "apiVersion: policies.kyverno.io/v1\nkind: ValidatingPolicy\nmetadata:\n  name: v\n",
        );
        let error = load_policies(&dir, &["v.yaml".to_owned()]).expect_err("unsupported");
        let text = error.to_string();
        assert!(
            text.contains(
                "v.yaml: document 1: ValidatingPolicy (policies.kyverno.io/v1) is not supported yet"
            ),
            "{text}"
        );
    }

    #[test]
    fn policy_field_errors_name_file_document_and_field() {
        let dir = scratch("policy-field");
        write(
            &dir,
            "p.yaml",
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules: 3\n",
        );
        let error = load_policies(&dir, &["p.yaml".to_owned()]).expect_err("bad rules");
        let text = error.to_string();
        assert!(
            text.contains("p.yaml: document 1 (ClusterPolicy): field `spec.rules`"),
            "{text}"
        );
    }

    #[test]
    fn resources_default_to_the_default_namespace_and_duplicates_are_dropped() {
        let dir = scratch("resources");
        write(
            &dir,
            "r.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: default\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  namespace: other\n",
        );
        let resources = load_resources(&dir, &["r.yaml".to_owned()]).expect("loads");
        assert_eq!(
            resources[0].pointer("/metadata/namespace"),
            Some(&Value::from("default"))
        );
        let (uniques, duplicates) = remove_duplicates(resources);
        assert_eq!(uniques.len(), 2);
        assert_eq!(
            duplicates,
            [("Pod".to_owned(), "a".to_owned(), "default".to_owned())]
        );
    }

    #[test]
    fn empty_metadata_maps_and_data_become_empty_objects() {
        let dir = scratch("nil-maps");
        write(
            &dir,
            "r.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  labels:\nspec:\n  template:\n    metadata:\n      annotations:\n      labels:\n        app: a\ndata:\n",
        );
        let resource = load_resources(&dir, &["r.yaml".to_owned()])
            .expect("loads")
            .remove(0);
        assert_eq!(
            resource.pointer("/metadata/labels"),
            Some(&serde_json::json!({}))
        );
        assert_eq!(
            resource.pointer("/spec/template/metadata/annotations"),
            Some(&serde_json::json!({}))
        );
        assert_eq!(
            resource.pointer("/spec/template/metadata/labels/app"),
            Some(&Value::from("a"))
        );
        assert_eq!(resource.pointer("/data"), Some(&serde_json::json!({})));
    }

    #[test]
    fn a_resource_needs_a_kind() {
        let dir = scratch("no-kind");
        write(&dir, "r.yaml", "metadata:\n  name: a\n");
        let error = load_resources(&dir, &["r.yaml".to_owned()]).expect_err("no kind");
        assert!(
            error
                .to_string()
                .contains("document 1: a resource must be an object with a kind"),
            "{error}"
        );
    }

    #[test]
    fn values_accept_both_kind_spellings_and_need_api_version() {
        let dir = scratch("values");
        write(
            &dir,
            "old.yaml",
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Value\nglobalValues:\n  a.b: c\n",
        );
        let values = load_values(&dir.join("old.yaml")).expect("kind Value");
        assert_eq!(values.global_values.get("a.b"), Some(&Value::from("c")));
        write(&dir, "bare.yaml", "globalValues:\n  a: b\n");
        let error = load_values(&dir.join("bare.yaml")).expect_err("deprecated");
        assert!(error.to_string().contains("deprecated schema"), "{error}");
        write(
            &dir,
            "typo.yaml",
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Values\nglobalValue: {}\n",
        );
        let error = load_values(&dir.join("typo.yaml")).expect_err("unknown field");
        assert!(error.to_string().contains("globalValue"), "{error}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let error =
            load_resources(Path::new("/nonexistent"), &["r.yaml".to_owned()]).expect_err("missing");
        assert!(
            error
                .to_string()
                .starts_with("failed to read /nonexistent/r.yaml"),
            "{error}"
        );
    }
}
