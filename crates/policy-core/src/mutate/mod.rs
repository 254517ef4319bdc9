//! The patch primitives of `mutate` rules: `patchStrategicMerge` (with Kyverno's anchors),
//! `patchesJson6902`, and the RFC 6902 diff an admission webhook returns.
//!
//! These are pure functions on JSON values; variables (`{{ }}`) must already be substituted in
//! the patches.
//!
//! - [`strategic_merge`] follows upstream Kyverno, which resolves the anchors of the patch
//!   against the resource (module `anchors`) and then merges with kustomize's kyaml (modules
//!   `strategic_merge` and `merge_keys`): lists of the built-in Kubernetes types with a patch
//!   merge key merge element by element, patch elements first; other lists are replaced.
//! - [`apply_json6902`] applies a JSON patch with upstream's tolerances (module `json6902`).
//! - [`diff`] produces the JSON patch from one resource to another.

mod anchors;
mod json6902;
mod merge_keys;
mod strategic_merge;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use json_patch::{Patch, PatchOperation};

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MutateError {
    /// The anchors of a `patchStrategicMerge` could not be resolved against the resource (a
    /// condition that does not match is no error: the patch is then skipped).
    #[error("failed to preProcess rule: {0}")]
    Preprocess(String),
    /// The patch gives a node another kind (map, list or scalar) than the resource has.
    #[error("wrong node kind for {path}: expected {expected} but found {found}")]
    KindMismatch {
        /// The dot-separated field path of the node (empty for the root).
        path: String,
        /// The kind of the resource's node.
        expected: &'static str,
        /// The kind of the patch's node.
        found: &'static str,
    },
    /// A `$patch` directive other than `replace`, `merge` or `delete`.
    #[error("unknown patch strategy '{0}'")]
    UnknownPatchStrategy(String),
    /// `patchesJson6902` is not a list of valid operations.
    #[error("failed to decode patches: {0}")]
    DecodePatch(String),
    /// An operation of `patchesJson6902` does not apply to the resource.
    #[error("JSON patch operation {index} failed at path '{path}': {reason}")]
    ApplyPatch {
        /// The position of the operation in the patch.
        index: usize,
        /// The operation's `path`.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl MutateError {
    /// Places a [`MutateError::KindMismatch`] under the map field `key`.
    fn within(self, key: &str) -> Self {
        match self {
            MutateError::KindMismatch {
                path,
                expected,
                found,
            } => MutateError::KindMismatch {
                path: if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{key}.{path}")
                },
                expected,
                found,
            },
            other => other,
        }
    }
}

/// Applies a `patchStrategicMerge` to `resource`, as upstream Kyverno does.
///
/// The anchors of `patch` are resolved first: `(key)` conditions, `<(key)` global conditions
/// and `+(key)` add-if-not-present. When a condition at the top of the patch, or a global
/// condition, does not match, the patch is skipped and `resource` is returned unchanged; a
/// condition in an element of a list of maps only skips that element. The remaining patch is
/// then merged into the resource with kyaml's strategic merge.
pub fn strategic_merge(resource: &Value, patch: &Value) -> Result<Value, MutateError> {
    let mut resolved = patch.clone();
    match anchors::resolve(&mut resolved, resource) {
        Ok(()) => strategic_merge::merge(resource.clone(), &resolved),
        Err(anchors::Interrupt::Condition(_) | anchors::Interrupt::Global(_)) => {
            Ok(resource.clone())
        }
        Err(anchors::Interrupt::Failed(message)) => Err(MutateError::Preprocess(message)),
    }
}

/// Applies `patchesJson6902` (a YAML or JSON list of RFC 6902 operations) to `resource`, as
/// upstream Kyverno does: negative array indices count from the end, `remove` of a missing
/// path does nothing and `add` creates the missing parents of its path.
pub fn apply_json6902(resource: &Value, patch_text: &str) -> Result<Value, MutateError> {
    let operations = json6902::parse(patch_text)?;
    let mut patched = resource.clone();
    json6902::apply(&mut patched, operations)?;
    Ok(patched)
}

/// The RFC 6902 patch that turns `old` into `new` (what a mutating webhook answers).
pub fn diff(old: &Value, new: &Value) -> Patch {
    json_patch::diff(old, new)
}
