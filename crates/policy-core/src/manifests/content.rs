//! The signed content of a resource: the annotation message decoded into YAML manifests, and the
//! manifest that corresponds to the resource.
use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::read::GzDecoder;
use serde_json::Value;

use super::VerifyError;

/// Decodes an annotation value as k8s-manifest-sigstore writes it: base64, then gzip when the
/// bytes are gzipped (as they are as written, though upstream also takes them as they are).
pub(super) fn decode_annotation(value: &str) -> Result<Vec<u8>, VerifyError> {
    let compressed = STANDARD
        .decode(value)
        .map_err(|error| VerifyError::Decoding(error.to_string()))?;
    Ok(gunzip(&compressed).unwrap_or(compressed))
}

/// The decompressed bytes; `None` when `bytes` are no gzip stream.
fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).ok()?;
    Some(out)
}

/// The YAML documents of a decoded message: the message itself when it is YAML, else the
/// `.yaml`/`.yml` files of the `.tar.gz` archive it is, in path order.
pub(super) fn documents_in(message: &[u8]) -> Result<Vec<Value>, VerifyError> {
    if let Some(documents) = yaml_documents(message).filter(|documents| !documents.is_empty()) {
        return Ok(documents);
    }
    let mut archive = tar::Archive::new(GzDecoder::new(message));
    let entries = archive.entries().map_err(|error| {
        VerifyError::Archive(format!(
            "gzip.NewReader() failed while decompressing tar gz: {error}"
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|error| VerifyError::Archive(error.to_string()))?;
        let path = entry
            .path()
            .map_err(|error| VerifyError::Archive(error.to_string()))?
            .to_string_lossy()
            .into_owned();
        let is_yaml = path.ends_with(".yaml") || path.ends_with(".yml");
        // Upstream skips names with `..` (path traversal) and reads regular files only.
        if !is_yaml || path.contains("..") || !entry.header().entry_type().is_file() {
            continue;
        }
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|error| VerifyError::Archive(error.to_string()))?;
        files.push((path, content));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files
        .iter()
        .filter_map(|(_, content)| yaml_documents(content))
        .flatten()
        .collect())
}

/// The non-empty YAML documents of `bytes`; `None` when they are not YAML.
fn yaml_documents(bytes: &[u8]) -> Option<Vec<Value>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let documents = serde_saphyr::from_multiple::<Value>(text).ok()?;
    Some(
        documents
            .into_iter()
            .filter(|document| !document.is_null())
            .collect(),
    )
}

/// The manifests of `documents` that correspond to `resource`: same kind, API group and name,
/// those in the same namespace first when there are several (upstream's search by GVK, name and
/// namespace; its value-based search among same-kind manifests is not done).
pub(super) fn manifests_for<'a>(documents: &'a [Value], resource: &Value) -> Vec<&'a Value> {
    let identity = Identity::of(resource);
    let same: Vec<&Value> = documents
        .iter()
        .filter(|document| {
            let candidate = Identity::of(document);
            candidate.kind == identity.kind
                && candidate.group == identity.group
                && candidate.name == identity.name
        })
        .collect();
    if same.len() <= 1 {
        return same;
    }
    let in_namespace = same
        .iter()
        .find(|document| Identity::of(document).namespace == identity.namespace);
    vec![in_namespace.copied().unwrap_or(same[0])]
}

/// What identifies a resource among manifests.
pub(super) struct Identity<'a> {
    /// The API group (empty for the core group).
    pub(super) group: &'a str,
    /// The API version without its group.
    pub(super) version: &'a str,
    /// The kind.
    pub(super) kind: &'a str,
    /// The name.
    pub(super) name: &'a str,
    /// The namespace (empty when none).
    pub(super) namespace: &'a str,
}

impl<'a> Identity<'a> {
    /// The identity of `resource`.
    pub(super) fn of(resource: &'a Value) -> Self {
        let text = |pointer: &str| resource.pointer(pointer).and_then(Value::as_str);
        let api_version = text("/apiVersion").unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Identity {
            group,
            version,
            kind: text("/kind").unwrap_or_default(),
            name: text("/metadata/name").unwrap_or_default(),
            namespace: text("/metadata/namespace").unwrap_or_default(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use serde_json::json;

    use super::*;

    pub(in crate::manifests) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).expect("gzip");
        encoder.finish().expect("gzip")
    }

    fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            // Written by hand: the builder refuses the `..` names an archive may still hold.
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append(&header, content.as_bytes())
                .expect("tar entry");
        }
        builder.into_inner().expect("tar").finish().expect("gzip")
    }

    #[test]
    fn annotations_are_base64_of_gzip_or_of_the_bytes_themselves() {
        let gzipped = STANDARD.encode(gzip(b"kind: A"));
        assert_eq!(decode_annotation(&gzipped), Ok(b"kind: A".to_vec()));
        let plain = STANDARD.encode(b"kind: A");
        assert_eq!(decode_annotation(&plain), Ok(b"kind: A".to_vec()));
        assert!(matches!(
            decode_annotation("not base64!"),
            Err(VerifyError::Decoding(_))
        ));
    }

    #[test]
    fn messages_are_yaml_or_tar_gz_archives_of_yaml_files() {
        let yaml = b"kind: A\nmetadata: {name: a}\n---\nkind: B\n";
        assert_eq!(
            documents_in(yaml),
            Ok(vec![
                json!({"kind": "A", "metadata": {"name": "a"}}),
                json!({"kind": "B"})
            ])
        );
        let archive = tar_gz(&[
            ("dir/b.yaml", "kind: B\n"),
            ("dir/notes.txt", "kind: Ignored\n"),
            ("dir/a.yml", "kind: A\n---\nkind: C\n"),
            ("../escape.yaml", "kind: Escape\n"),
        ]);
        assert_eq!(
            documents_in(&archive),
            Ok(vec![
                json!({"kind": "A"}),
                json!({"kind": "C"}),
                json!({"kind": "B"})
            ])
        );
        assert!(matches!(
            documents_in(&[0x00, 0xff, 0x10]),
            Err(VerifyError::Archive(_))
        ));
    }

    #[test]
    fn the_manifest_is_found_by_kind_group_name_then_namespace() {
        let manifest = |api_version: &str, kind: &str, namespace: &str| {
            json!({"apiVersion": api_version, "kind": kind,
                   "metadata": {"name": "x", "namespace": namespace}})
        };
        let documents = [
            manifest("apps/v1", "Deployment", "a"),
            manifest("v1", "Service", "a"),
            manifest("v1", "Service", "b"),
            manifest("v1", "ConfigMap", "b"),
        ];
        let service = manifest("v1", "Service", "b");
        assert_eq!(manifests_for(&documents, &service), vec![&documents[2]]);
        let elsewhere = manifest("v1", "Service", "c");
        assert_eq!(manifests_for(&documents, &elsewhere), vec![&documents[1]]);
        let deployment = manifest("apps/v2", "Deployment", "z");
        assert_eq!(manifests_for(&documents, &deployment), vec![&documents[0]]);
        let secret = manifest("v1", "Secret", "a");
        assert!(manifests_for(&documents, &secret).is_empty());
    }
}
