//! Reading Kyverno resources from YAML or JSON text, with errors that name the source, the
//! document and the field path.
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The text is not valid YAML (JSON is YAML too).
    #[error("{source_name}: invalid YAML: {message}")]
    Syntax {
        /// The file or other source the text came from.
        source_name: String,
        /// The parser's message, with its line and column.
        message: String,
    },
    /// A document does not have the shape its kind requires.
    #[error("{source_name}: document {document} ({kind}): field `{path}`: {message}")]
    Field {
        /// The file or other source the text came from.
        source_name: String,
        /// The document's position among the source's non-empty documents, counting from 1.
        document: usize,
        /// The document's `kind`.
        kind: String,
        /// The path of the offending field, such as `spec.rules[0].validate.failureAction`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Parses every non-empty document of a YAML stream into JSON values.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    serde_saphyr::from_multiple(text)
}

/// One document of a YAML stream, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The file or other source the text came from.
    pub source_name: String,
    /// The document's position among the source's non-empty documents, counting from 1.
    pub position: usize,
    /// The document's content.
    pub value: Value,
}

impl Document {
    /// The document's `apiVersion`, or `""`.
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The document's `kind`, or `""`.
    pub fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Decodes the document into a typed resource. The error names the source, the document's
    /// position and the path of the first field that does not fit.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, LoadError> {
        serde_path_to_error::deserialize(&self.value).map_err(|error| LoadError::Field {
            source_name: self.source_name.clone(),
            document: self.position,
            kind: self.kind().to_owned(),
            path: error.path().to_string(),
            message: error.inner().to_string(),
        })
    }
}

/// Splits a YAML stream into its non-empty documents.
pub fn documents(source_name: &str, text: &str) -> Result<Vec<Document>, LoadError> {
    let values = parse_yaml_documents(text).map_err(|error| LoadError::Syntax {
        source_name: source_name.to_owned(),
        message: error.to_string(),
    })?;
    Ok(values
        .into_iter()
        .enumerate()
        .filter(|(_, value)| !value.is_null())
        .map(|(index, value)| Document {
            source_name: source_name.to_owned(),
            position: index + 1,
            value,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kyverno::v1::policy::ClusterPolicy;

    const TWO_POLICIES: &str = "\
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: fine
spec:
  rules: []
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: broken
spec:
  rules:
  - name: r
    match:
      any:
      - resources:
          kinds: Pod
";

    #[test]
    fn a_wrong_type_names_source_document_and_path() {
        let docs = documents("policies.yaml", TWO_POLICIES).expect("valid YAML");
        assert_eq!(docs.len(), 2);
        assert!(docs[0].decode::<ClusterPolicy>().is_ok());
        let error = docs[1]
            .decode::<ClusterPolicy>()
            .expect_err("kinds must be a list");
        let text = error.to_string();
        assert!(
            text.starts_with(
                "policies.yaml: document 2 (ClusterPolicy): field `spec.rules[0].match.any[0].resources.kinds`"
            ),
            "{text}"
        );
    }

    #[test]
    fn empty_documents_are_not_counted() {
        let docs =
            documents("x.yaml", "---\n---\nkind: A\n---\n---\nkind: B\n").expect("valid YAML");
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[1].position, docs[1].kind()), (2, "B"));
    }

    #[test]
    fn invalid_yaml_names_the_source() {
        let error = documents("bad.yaml", "a: [1, 2\n").expect_err("unclosed list");
        assert!(
            error.to_string().starts_with("bad.yaml: invalid YAML"),
            "{error}"
        );
    }
}
