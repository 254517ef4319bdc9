//! Reading the files a command is given: policies, resources, exceptions, values, user infos and
//! cluster resources, from files or folders, with errors that name the file, the document and
//! the field.
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingAdmissionPolicy, MutatingAdmissionPolicyBinding, ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
};
use kyverno_api::kyverno::v1::policy::{ClusterPolicy, Policy};
use kyverno_api::kyverno::v2::policy_exception::PolicyException;
use kyverno_api::load::{self, Document};
use kyverno_api::policies::deleting::{DeletingPolicy, NamespacedDeletingPolicy};
use kyverno_api::policies::exception::PolicyException as CelPolicyException;
use kyverno_api::policies::generating::{GeneratingPolicy, NamespacedGeneratingPolicy};
use kyverno_api::policies::image_validating::{
    ImageValidatingPolicy, NamespacedImageValidatingPolicy,
};
use kyverno_api::policies::mutating::{MutatingPolicy, NamespacedMutatingPolicy};
use kyverno_api::policies::validating::{NamespacedValidatingPolicy, ValidatingPolicy};
use kyverno_policy_core::engine::{LoadedPolicy, PolicyLoadError};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::engine::{api_group, field};
use crate::test_file::{ClusterResource, ContextFile, UserInfo, Values};

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

/// The API group of Kyverno's CEL policy kinds and their exceptions.
const CEL_POLICY_GROUP: &str = "policies.kyverno.io";
/// The API group of Kubernetes' admission policies.
const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";
/// The versions of [`CEL_POLICY_GROUP`] that upstream serves.
const CEL_POLICY_VERSIONS: [&str; 3] = ["v1alpha1", "v1beta1", "v1"];
/// The versions of [`ADMISSION_GROUP`] whose admission policies load (all as `v1`).
const ADMISSION_VERSIONS: [&str; 3] = ["v1alpha1", "v1beta1", "v1"];

/// A policy that failed validation: upstream skips such policies and reports them.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidPolicy {
    /// The policy's name.
    pub name: String,
    /// Why it is invalid.
    pub message: String,
}

/// The CEL-based policies found in policy files, by kind, in file order. Kubernetes admission
/// policies of every served version are held as `v1`, the version the engine evaluates.
#[derive(Clone, Debug, Default)]
pub struct CelPolicies {
    /// ValidatingPolicies.
    pub validating: Vec<ValidatingPolicy>,
    /// NamespacedValidatingPolicies.
    pub namespaced_validating: Vec<NamespacedValidatingPolicy>,
    /// ValidatingAdmissionPolicies.
    pub validating_admission: Vec<ValidatingAdmissionPolicy>,
    /// ValidatingAdmissionPolicyBindings.
    pub validating_admission_bindings: Vec<ValidatingAdmissionPolicyBinding>,
    /// MutatingPolicies.
    pub mutating: Vec<MutatingPolicy>,
    /// NamespacedMutatingPolicies.
    pub namespaced_mutating: Vec<NamespacedMutatingPolicy>,
    /// MutatingAdmissionPolicies.
    pub mutating_admission: Vec<MutatingAdmissionPolicy>,
    /// MutatingAdmissionPolicyBindings.
    pub mutating_admission_bindings: Vec<MutatingAdmissionPolicyBinding>,
    /// GeneratingPolicies.
    pub generating: Vec<GeneratingPolicy>,
    /// NamespacedGeneratingPolicies.
    pub namespaced_generating: Vec<NamespacedGeneratingPolicy>,
    /// DeletingPolicies.
    pub deleting: Vec<DeletingPolicy>,
    /// NamespacedDeletingPolicies.
    pub namespaced_deleting: Vec<NamespacedDeletingPolicy>,
    /// ImageValidatingPolicies.
    pub image_validating: Vec<ImageValidatingPolicy>,
    /// NamespacedImageValidatingPolicies.
    pub namespaced_image_validating: Vec<NamespacedImageValidatingPolicy>,
}

impl CelPolicies {
    /// How many policies there are (bindings are not policies).
    pub fn len(&self) -> usize {
        self.validating.len()
            + self.namespaced_validating.len()
            + self.validating_admission.len()
            + self.mutating.len()
            + self.namespaced_mutating.len()
            + self.mutating_admission.len()
            + self.generating.len()
            + self.namespaced_generating.len()
            + self.deleting.len()
            + self.namespaced_deleting.len()
            + self.image_validating.len()
            + self.namespaced_image_validating.len()
    }

    /// Whether there is no policy.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes a document of a CEL policy kind into its list; `Ok(false)` when the document is
    /// not of such a kind, an error when it is of a kind or version that cannot be loaded.
    fn add(&mut self, document: &Document) -> Result<bool, LoadError> {
        let (group, version) = document
            .api_version()
            .rsplit_once('/')
            .unwrap_or(("", document.api_version()));
        match group {
            CEL_POLICY_GROUP if CEL_POLICY_VERSIONS.contains(&version) => match document.kind() {
                "ValidatingPolicy" => self.validating.push(document.decode()?),
                "NamespacedValidatingPolicy" => self.namespaced_validating.push(document.decode()?),
                "MutatingPolicy" => self.mutating.push(document.decode()?),
                "NamespacedMutatingPolicy" => self.namespaced_mutating.push(document.decode()?),
                "GeneratingPolicy" => self.generating.push(document.decode()?),
                "NamespacedGeneratingPolicy" => self.namespaced_generating.push(document.decode()?),
                "DeletingPolicy" => self.deleting.push(document.decode()?),
                "NamespacedDeletingPolicy" => self.namespaced_deleting.push(document.decode()?),
                "ImageValidatingPolicy" => self.image_validating.push(document.decode()?),
                "NamespacedImageValidatingPolicy" => {
                    self.namespaced_image_validating.push(document.decode()?)
                }
                "PolicyException" => return Ok(false),
                _ => return Err(unsupported(document)),
            },
            CEL_POLICY_GROUP => return Err(unsupported(document)),
            ADMISSION_GROUP => {
                let kind = document.kind();
                let is_admission_policy = matches!(
                    kind,
                    "ValidatingAdmissionPolicy"
                        | "ValidatingAdmissionPolicyBinding"
                        | "MutatingAdmissionPolicy"
                        | "MutatingAdmissionPolicyBinding"
                );
                if !is_admission_policy {
                    return Ok(false);
                }
                if !ADMISSION_VERSIONS.contains(&version) {
                    return Err(unsupported(document));
                }
                let document = as_admission_v1(document);
                match kind {
                    "ValidatingAdmissionPolicy" => {
                        self.validating_admission.push(document.decode()?)
                    }
                    "ValidatingAdmissionPolicyBinding" => {
                        self.validating_admission_bindings.push(document.decode()?)
                    }
                    "MutatingAdmissionPolicy" => self.mutating_admission.push(document.decode()?),
                    _ => self.mutating_admission_bindings.push(document.decode()?),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The document with its `admissionregistration.k8s.io` apiVersion set to `v1`: the served
/// versions of the admission policy kinds share one schema.
fn as_admission_v1(document: &Document) -> Document {
    let mut document = document.clone();
    if let Some(object) = document.value.as_object_mut() {
        object.insert(
            "apiVersion".to_owned(),
            Value::from(format!("{ADMISSION_GROUP}/v1")),
        );
    }
    document
}

/// The policies found in policy files.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    /// Policies ready for evaluation, in file order.
    pub valid: Vec<LoadedPolicy>,
    /// Policies rejected by validation.
    pub invalid: Vec<InvalidPolicy>,
    /// The CEL-based policies.
    pub cel: CelPolicies,
}

impl Policies {
    /// How many policies were found, valid or not, of every kind.
    pub fn len(&self) -> usize {
        self.valid.len() + self.invalid.len() + self.cel.len()
    }

    /// Whether no policy was found.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Loads the policies of the given files or folders: ClusterPolicies, Policies, Kyverno's CEL
/// policy kinds and Kubernetes admission policies with their bindings. Documents of other kinds
/// are ignored, except policy kinds (or versions) that cannot be loaded, which are an error.
pub fn load_policies(base: &Path, paths: &[String]) -> Result<Policies, LoadError> {
    let mut policies = Policies::default();
    for document in documents_below(base, paths)? {
        if policies.cel.add(&document)? {
            continue;
        }
        let group = api_group(document.api_version());
        let loaded = match (group, document.kind()) {
            ("kyverno.io", "ClusterPolicy") => {
                LoadedPolicy::from_cluster_policy(document.decode::<ClusterPolicy>()?)
            }
            ("kyverno.io", "Policy") => LoadedPolicy::from_policy(document.decode::<Policy>()?),
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

/// The PolicyExceptions of exception files: those of ClusterPolicies and Policies
/// (`kyverno.io`), and those of the CEL policy kinds (`policies.kyverno.io`).
#[derive(Clone, Debug, Default)]
pub struct Exceptions {
    /// `kyverno.io` PolicyExceptions.
    pub kyverno: Vec<PolicyException>,
    /// `policies.kyverno.io` PolicyExceptions.
    pub cel: Vec<CelPolicyException>,
}

impl Exceptions {
    /// How many exceptions there are, of both kinds.
    pub fn len(&self) -> usize {
        self.kyverno.len() + self.cel.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Loads the PolicyExceptions of the given files or folders.
pub fn load_exceptions(base: &Path, paths: &[String]) -> Result<Exceptions, LoadError> {
    let mut exceptions = Exceptions::default();
    for document in documents_below(base, paths)? {
        let version = document
            .api_version()
            .rsplit('/')
            .next()
            .unwrap_or_default();
        match (api_group(document.api_version()), document.kind()) {
            ("kyverno.io", "PolicyException") => exceptions.kyverno.push(document.decode()?),
            (CEL_POLICY_GROUP, "PolicyException") if CEL_POLICY_VERSIONS.contains(&version) => {
                exceptions.cel.push(document.decode()?)
            }
            (CEL_POLICY_GROUP, _) => return Err(unsupported(&document)),
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

/// Loads a Context file: the resources and image data the CEL libraries read offline.
pub fn load_context(path: &Path) -> Result<ContextFile, LoadError> {
    load_single(path, &["Context"], "Context")
}

/// Loads a JSON (or YAML) payload: the document of the file, or the list of its documents when
/// it holds several.
pub fn load_payload(path: &Path) -> Result<Value, LoadError> {
    let mut documents = read_documents(path)?;
    Ok(match documents.len() {
        1 => documents.remove(0).value,
        _ => Value::Array(
            documents
                .into_iter()
                .map(|document| document.value)
                .collect(),
        ),
    })
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
    fn policy_files_ignore_other_kinds() {
        let dir = scratch("policies");
        write(
            &dir,
            "p.yaml",
            &format!("{POLICY}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"),
        );
        let policies = load_policies(&dir, &["p.yaml".to_owned()]).expect("loads");
        assert_eq!(policies.valid.len(), 1);
        assert_eq!(policies.valid[0].key(), "p");
        assert!(policies.cel.is_empty());
    }

    #[test]
    fn cel_policy_kinds_load_in_every_served_version() {
        let dir = scratch("cel-policies");
        let document = |api_version: &str, kind: &str, name: &str| {
            format!(
                "apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: ns\nspec: {{}}\n---\n"
            )
        };
        let text = [
            document("policies.kyverno.io/v1alpha1", "ValidatingPolicy", "v1"),
            document("policies.kyverno.io/v1beta1", "ValidatingPolicy", "v2"),
            document("policies.kyverno.io/v1", "NamespacedValidatingPolicy", "nv"),
            document("policies.kyverno.io/v1alpha1", "MutatingPolicy", "m"),
            document(
                "policies.kyverno.io/v1beta1",
                "NamespacedMutatingPolicy",
                "nm",
            ),
            document("policies.kyverno.io/v1alpha1", "PolicyException", "e"),
            document(
                "admissionregistration.k8s.io/v1",
                "ValidatingAdmissionPolicy",
                "vap",
            ),
            document(
                "admissionregistration.k8s.io/v1beta1",
                "ValidatingAdmissionPolicyBinding",
                "vapb",
            ),
            document(
                "admissionregistration.k8s.io/v1alpha1",
                "MutatingAdmissionPolicy",
                "map",
            ),
            document(
                "admissionregistration.k8s.io/v1beta1",
                "MutatingAdmissionPolicyBinding",
                "mapb",
            ),
            document(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "w",
            ),
        ]
        .concat();
        write(&dir, "p.yaml", &text);
        let policies = load_policies(&dir, &["p.yaml".to_owned()]).expect("loads");
        let cel = &policies.cel;
        let names = |metadata: Vec<&Option<String>>| -> Vec<String> {
            metadata.into_iter().flatten().cloned().collect()
        };
        assert_eq!(
            names(cel.validating.iter().map(|p| &p.metadata.name).collect()),
            ["v1", "v2"]
        );
        assert_eq!(cel.namespaced_validating.len(), 1);
        assert_eq!(cel.mutating.len(), 1);
        assert_eq!(cel.namespaced_mutating.len(), 1);
        assert_eq!(cel.validating_admission.len(), 1);
        assert_eq!(cel.validating_admission_bindings.len(), 1);
        assert_eq!(
            names(
                cel.mutating_admission
                    .iter()
                    .map(|p| &p.metadata.name)
                    .collect()
            ),
            ["map"]
        );
        assert_eq!(cel.mutating_admission_bindings.len(), 1);
        assert_eq!(policies.len(), 7, "bindings are not policies");
    }

    #[test]
    fn unknown_cel_policy_kinds_and_versions_are_errors() {
        let dir = scratch("cel-unknown");
        write(
            &dir,
            "k.yaml",
            "apiVersion: policies.kyverno.io/v1\nkind: AuditingPolicy\nmetadata:\n  name: a\n",
        );
        let error = load_policies(&dir, &["k.yaml".to_owned()]).expect_err("unknown kind");
        assert!(
            error.to_string().contains(
                "k.yaml: document 1: AuditingPolicy (policies.kyverno.io/v1) is not supported yet"
            ),
            "{error}"
        );
        write(
            &dir,
            "v.yaml",
            "apiVersion: policies.kyverno.io/v2\nkind: ValidatingPolicy\nmetadata:\n  name: v\n",
        );
        assert!(load_policies(&dir, &["v.yaml".to_owned()]).is_err());
        write(
            &dir,
            "f.yaml",
            "apiVersion: policies.kyverno.io/v1\nkind: ValidatingPolicy\nmetadata:\n  name: v\nspec:\n  validations: 3\n",
        );
        let error = load_policies(&dir, &["f.yaml".to_owned()]).expect_err("bad field");
        assert!(
            error
                .to_string()
                .contains("(ValidatingPolicy): field `spec.validations`"),
            "{error}"
        );
    }

    #[test]
    fn exception_files_hold_both_exception_kinds() {
        let dir = scratch("exceptions");
        write(
            &dir,
            "e.yaml",
            "apiVersion: kyverno.io/v2\nkind: PolicyException\nmetadata:\n  name: k\n  namespace: ns\nspec:\n  exceptions: []\n  match: {}\n---\napiVersion: policies.kyverno.io/v1alpha1\nkind: PolicyException\nmetadata:\n  name: c\n  namespace: ns\nspec:\n  policyRefs:\n  - name: p\n    kind: ValidatingPolicy\n",
        );
        let exceptions = load_exceptions(&dir, &["e.yaml".to_owned()]).expect("loads");
        assert_eq!(exceptions.kyverno.len(), 1);
        assert_eq!(exceptions.cel.len(), 1);
        assert_eq!(exceptions.len(), 2);
        write(
            &dir,
            "x.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
        );
        assert!(load_exceptions(&dir, &["x.yaml".to_owned()]).is_err());
    }

    #[test]
    fn context_files_and_payloads_load() {
        let dir = scratch("context");
        write(
            &dir,
            "context.yaml",
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Context\nmetadata:\n  name: c\nspec:\n  resources:\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: cm\n  images:\n  - image: nginx\n    manifest:\n      a: b\n",
        );
        let context = load_context(&dir.join("context.yaml")).expect("loads");
        assert_eq!(context.spec.resources.len(), 1);
        assert_eq!(context.spec.images[0].image, "nginx");
        assert_eq!(
            context.spec.images[0].data["manifest"],
            serde_json::json!({"a": "b"})
        );
        write(
            &dir,
            "bad.yaml",
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Context\nspec:\n  resourcez: []\n",
        );
        assert!(
            load_context(&dir.join("bad.yaml")).is_err(),
            "unknown fields are errors"
        );
        write(&dir, "one.json", "{\"a\": [1, 2]}");
        assert_eq!(
            load_payload(&dir.join("one.json")).expect("loads"),
            serde_json::json!({"a": [1, 2]})
        );
        write(&dir, "two.yaml", "a: 1\n---\nb: 2\n");
        assert_eq!(
            load_payload(&dir.join("two.yaml")).expect("loads"),
            serde_json::json!([{"a": 1}, {"b": 2}])
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
