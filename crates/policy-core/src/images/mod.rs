//! Container image references and Kyverno's `images` variable.
//!
//! References are parsed with the grammar of distribution's `reference` package after prefixing
//! the default registry the way Kyverno does (Kyverno's defaults: registry `docker.io`, default
//! registry mutation enabled), and tagged `latest` when they have neither tag nor digest.
//!
//! [`extract_images`] builds the `images` variable of a rule's context:
//! `{"containers": {"<container name>": {...}}, "initContainers": {...}, "ephemeralContainers":
//! {...}}` for Pods and pod controllers, or one category per custom `imageExtractors` entry.

use crate::jmespath::{self, JmesPathError};
use kyverno_api::kyverno::v1::rule::ImageExtractorConfig;
use regex::Regex;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::LazyLock;

/// The registry Kyverno assumes for references that name none (its `defaultRegistry` setting).
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// Why a string is not a valid image reference, worded like distribution's `reference` and
/// go-digest packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string does not match the reference grammar.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The string would match the grammar if it were lower case.
    #[error("repository name must be lowercase")]
    Uppercase,
    /// Registry and repository together are longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// The digest algorithm is not one of `sha256`, `sha384`, `sha512`.
    #[error("unsupported digest algorithm")]
    UnsupportedDigest,
    /// The digest has the wrong number of hex digits for its algorithm.
    #[error("invalid checksum digest length")]
    DigestLength,
    /// The digest's hex digits are not lower case.
    #[error("invalid checksum digest format")]
    DigestFormat,
    /// The reference grammar itself failed to compile (a bug, never expected).
    #[error("image reference grammar does not compile")]
    Grammar,
}

/// Why an image could not be parsed or extracted, worded like upstream Kyverno's errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    /// The reference (with the default registry prefixed when it names none) is malformed.
    #[error(
        "bad image: {image}, defaultRegistry: {default_registry}, enableDefaultRegistryMutation: true: {reason}"
    )]
    BadReference {
        /// The reference as parsed, with the default registry prefixed when it was added.
        image: String,
        /// The default registry in use.
        default_registry: String,
        /// What is wrong with it.
        reason: ReferenceError,
    },
    /// An extracted image field holds an invalid reference.
    #[error("invalid image '{image}' ({source})")]
    InvalidImage {
        /// The extracted value (after the extractor's JMESPath, if any).
        image: String,
        /// Why it is invalid.
        source: Box<ImageError>,
    },
    /// A `*` path element met a value that is neither a list nor an object.
    #[error("invalid type")]
    NotTraversable,
    /// A named path element, or the image's own object, is not an object.
    #[error("invalid image config")]
    NotAnObject,
    /// The extractor's `key` field is missing from an image's object or is not a string.
    #[error("invalid key")]
    InvalidKey,
    /// The extractor's `jmesPath` does not compile.
    #[error("invalid jmespath {expression}: {source}")]
    InvalidJmesPath {
        /// The expression.
        expression: String,
        /// The compilation error.
        source: JmesPathError,
    },
    /// The extractor's `jmesPath` failed on an image value.
    #[error("failed to apply jmespath {expression}: {source}")]
    JmesPathFailed {
        /// The expression.
        expression: String,
        /// The evaluation error.
        source: JmesPathError,
    },
    /// The extractor's `jmesPath` produced something other than a string.
    #[error("jmespath {expression} must produce a string, but produced {result}")]
    JmesPathNotString {
        /// The expression.
        expression: String,
        /// What it produced.
        result: Value,
    },
    /// The rule configures image extractors for the resource's kind, but the list is empty.
    #[error("no extractors found for {kind}")]
    NoExtractors {
        /// The resource's kind.
        kind: String,
    },
    /// A custom extractor has neither a `value` nor a non-empty `path` to take it from.
    #[error("image extractor for {kind} has an empty path")]
    EmptyExtractorPath {
        /// The resource's kind.
        kind: String,
    },
}

/// A parsed image reference, split as Kyverno's `images` variable shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// Registry host, with port if any, e.g. `docker.io` or `localhost:5000`.
    pub registry: String,
    /// Repository path within the registry, e.g. `test/nginx` (no `library/` is added).
    pub path: String,
    /// Last element of the path, e.g. `nginx`.
    pub name: String,
    /// Tag: as written, `latest` when the reference has neither tag nor digest, `None` when it
    /// has only a digest.
    pub tag: Option<String>,
    /// Digest, e.g. `sha256:…`, when the reference has one.
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses `reference`, prefixing `default_registry` when its first path element does not
    /// name a registry (has no `.` or `:`, is not `localhost`, has no upper-case letter).
    pub fn parse(reference: &str, default_registry: &str) -> Result<ImageReference, ImageError> {
        let full = with_default_registry(reference, default_registry);
        parse_qualified(&full).map_err(|reason| ImageError::BadReference {
            image: full.into_owned(),
            default_registry: default_registry.to_owned(),
            reason,
        })
    }

    /// `registry/path@digest` when there is a digest, else `registry/path:tag` (the form
    /// `image_normalize` returns).
    pub fn reference(&self) -> String {
        let mut reference = self.repository();
        match (&self.digest, &self.tag) {
            (Some(digest), _) => {
                reference.push('@');
                reference.push_str(digest);
            }
            (None, tag) => {
                reference.push(':');
                reference.push_str(tag.as_deref().unwrap_or_default());
            }
        }
        reference
    }

    /// `registry/path:tag`, ending in a bare `:` when the reference has only a digest (as
    /// upstream's `referenceWithTag`).
    pub fn reference_with_tag(&self) -> String {
        let mut reference = self.repository();
        reference.push(':');
        reference.push_str(self.tag.as_deref().unwrap_or_default());
        reference
    }

    /// `registry/path`, or just the path when there is no registry.
    fn repository(&self) -> String {
        if self.registry.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.registry, self.path)
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reference())
    }
}

/// What `image_normalize` returns: the reference with its registry and tag made explicit,
/// e.g. `nginx` -> `docker.io/nginx:latest`; a digest replaces the tag.
pub fn normalize(reference: &str) -> Result<String, ImageError> {
    ImageReference::parse(reference, DEFAULT_REGISTRY).map(|image| image.reference())
}

/// Prefixes the default registry unless the first path element names a registry.
fn with_default_registry<'a>(reference: &'a str, default_registry: &str) -> Cow<'a, str> {
    match reference.split_once('/') {
        Some((first, _))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(char::is_uppercase) =>
        {
            Cow::Borrowed(reference)
        }
        _ => Cow::Owned(format!("{default_registry}/{reference}")),
    }
}

// The grammar of distribution's `reference` package (ASCII classes, as Go's `\w` is ASCII).
const DOMAIN_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const PATH_COMPONENT: &str = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const TAG: &str = r"[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
const DIGEST: &str = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";

/// `[domain/]path[:tag][@digest]`, capturing the four parts.
static GRAMMAR: LazyLock<Result<Regex, regex::Error>> = LazyLock::new(|| {
    let domain =
        format!(r"(?:{DOMAIN_COMPONENT}(?:\.{DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?");
    Regex::new(&format!(
        "^(?:({domain})/)?({PATH_COMPONENT}(?:/{PATH_COMPONENT})*)(?::({TAG}))?(?:@({DIGEST}))?$"
    ))
});

/// Longest accepted `registry/path`.
const NAME_MAX_LENGTH: usize = 255;

/// Parses a reference whose default registry has already been prefixed where needed.
fn parse_qualified(reference: &str) -> Result<ImageReference, ReferenceError> {
    let grammar = GRAMMAR.as_ref().map_err(|_| ReferenceError::Grammar)?;
    let Some(captures) = grammar.captures(reference) else {
        return Err(if grammar.is_match(&reference.to_lowercase()) {
            ReferenceError::Uppercase
        } else {
            ReferenceError::InvalidFormat
        });
    };
    let domain = captures.get(1).map(|m| m.as_str());
    let path = captures.get(2).map_or("", |m| m.as_str());
    let tag = captures.get(3).map(|m| m.as_str().to_owned());
    let digest = captures.get(4).map(|m| m.as_str());
    let name_length = domain.map_or(0, |domain| domain.len() + 1) + path.len();
    if name_length > NAME_MAX_LENGTH {
        return Err(ReferenceError::NameTooLong);
    }
    if let Some(digest) = digest {
        validate_digest(digest)?;
    }
    let name = path.rsplit('/').next().unwrap_or(path).to_owned();
    // A first element with `_` cannot be a host name, so the grammar reads it as part of the
    // path; upstream then takes it as the registry anyway (ECR's `aws_account_id.dkr.ecr...`).
    let (registry, path) = match (domain, path.split_once('/')) {
        (Some(domain), _) => (domain, path),
        (None, Some((first, rest))) if first.contains('_') => (first, rest),
        (None, _) => ("", path),
    };
    Ok(ImageReference {
        registry: registry.to_owned(),
        path: path.to_owned(),
        name,
        tag: tag.or_else(|| digest.is_none().then(|| "latest".to_owned())),
        digest: digest.map(str::to_owned),
    })
}

/// The checks of go-digest: a known algorithm with exactly its number of lower-case hex digits.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let (algorithm, hex) = digest.split_once(':').unwrap_or((digest, ""));
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::UnsupportedDigest),
    };
    if hex.len() != length {
        return Err(ReferenceError::DigestLength);
    }
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ReferenceError::DigestFormat);
    }
    Ok(())
}

/// One image found in a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The parsed reference.
    pub reference: ImageReference,
    /// Where the reference is in the resource, e.g. `/spec/containers/0/image` (path elements
    /// are not escaped, as upstream).
    pub json_pointer: String,
    /// Names of the `imagePullSecrets` of the objects on the way to the image (the pod spec's).
    pub image_pull_secrets: Vec<String>,
}

impl ImageInfo {
    /// The image as the `images` variable shows it: `registry`, `name`, `path`, `tag`, `digest`,
    /// `reference`, `referenceWithTag`, `jsonPointer`, `imagePullSecrets` (empty strings are
    /// omitted, as upstream's `omitempty`).
    pub fn to_value(&self) -> Value {
        let image = &self.reference;
        let mut object = Map::new();
        let mut insert_non_empty = |key: &str, value: &str| {
            if !value.is_empty() {
                object.insert(key.to_owned(), Value::String(value.to_owned()));
            }
        };
        insert_non_empty("registry", &image.registry);
        insert_non_empty("tag", image.tag.as_deref().unwrap_or_default());
        insert_non_empty("digest", image.digest.as_deref().unwrap_or_default());
        insert_non_empty("reference", &image.reference());
        insert_non_empty("referenceWithTag", &image.reference_with_tag());
        object.insert("name".to_owned(), Value::String(image.name.clone()));
        object.insert("path".to_owned(), Value::String(image.path.clone()));
        object.insert(
            "jsonPointer".to_owned(),
            Value::String(self.json_pointer.clone()),
        );
        object.insert(
            "imagePullSecrets".to_owned(),
            self.image_pull_secrets
                .iter()
                .map(|name| Value::String(name.clone()))
                .collect(),
        );
        Value::Object(object)
    }
}

/// Images of a resource by category (`containers`, `initContainers`, `ephemeralContainers`, or
/// a custom extractor's `name`, `custom` by default), then by key (the container name, the
/// custom extractor's `key` field, or else the JSON pointer). Categories without images are
/// absent.
pub type ImageInfos = BTreeMap<String, BTreeMap<String, ImageInfo>>;

/// Every image of `resource` with its JSON pointer, found by the rule's `extractors` for the
/// resource's kind, or else by the standard extractors of Pods and pod controllers (none for
/// other kinds).
pub fn image_infos(
    resource: &Value,
    extractors: &BTreeMap<String, Vec<ImageExtractorConfig>>,
) -> Result<ImageInfos, ImageError> {
    let kind = resource
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let custom;
    let extractors: &[Extractor<'_>] = match extractors.get(kind) {
        Some(configs) if configs.is_empty() => {
            return Err(ImageError::NoExtractors {
                kind: kind.to_owned(),
            });
        }
        Some(configs) => {
            custom = configs
                .iter()
                .map(|config| Extractor::custom(config, kind))
                .collect::<Result<Vec<_>, _>>()?;
            &custom
        }
        None => standard_extractors(kind),
    };
    let mut infos = ImageInfos::new();
    for extractor in extractors {
        let mut walk = Walk {
            extractor,
            pointer: String::new(),
            pull_secrets: Vec::new(),
            found: BTreeMap::new(),
        };
        walk.visit(resource, &extractor.fields)?;
        // A later extractor with the same name replaces an earlier one, as upstream.
        if !walk.found.is_empty() {
            infos.insert(extractor.category.to_owned(), walk.found);
        }
    }
    Ok(infos)
}

/// The `images` variable for `infos`; an empty object when there are none (upstream then
/// leaves `images` out of the context).
pub fn images_variable(infos: &ImageInfos) -> Value {
    infos
        .iter()
        .map(|(category, images)| {
            let images = images
                .iter()
                .map(|(key, info)| (key.clone(), info.to_value()))
                .collect();
            (category.clone(), Value::Object(images))
        })
        .collect::<Map<_, _>>()
        .into()
}

/// The `images` variable of `resource` (see [`image_infos`] and [`images_variable`]).
pub fn extract_images(
    resource: &Value,
    extractors: &BTreeMap<String, Vec<ImageExtractorConfig>>,
) -> Result<Value, ImageError> {
    image_infos(resource, extractors).map(|infos| images_variable(&infos))
}

/// How to find one category of images in a resource.
struct Extractor<'a> {
    /// Category the images are listed under.
    category: &'a str,
    /// Path to the objects holding the images; `*` stands for every element of a list or
    /// object.
    fields: Vec<&'a str>,
    /// Field of the object holding the image that names it.
    key: Option<&'a str>,
    /// Field of the object holding the image reference.
    value: &'a str,
    /// Expression turning the field's value into a reference.
    jmes_path: Option<&'a str>,
}

impl<'a> Extractor<'a> {
    /// The extractor described by a rule's `imageExtractors` entry.
    fn custom(config: &'a ImageExtractorConfig, kind: &str) -> Result<Extractor<'a>, ImageError> {
        let non_empty = |text: &'a Option<String>| text.as_deref().filter(|text| !text.is_empty());
        let mut fields: Vec<&str> = config
            .path
            .split('/')
            .map(|field| field.trim_matches(' '))
            .filter(|field| !field.is_empty())
            .collect();
        let value = match non_empty(&config.value) {
            Some(value) => value,
            None => fields.pop().ok_or_else(|| ImageError::EmptyExtractorPath {
                kind: kind.to_owned(),
            })?,
        };
        Ok(Extractor {
            category: non_empty(&config.name).unwrap_or("custom"),
            fields,
            key: non_empty(&config.key),
            value,
            jmes_path: non_empty(&config.jmes_path),
        })
    }

    /// The containers, init containers and ephemeral containers of the pod spec at `pod_spec`.
    fn standard(pod_spec: &[&'static str]) -> Vec<Extractor<'static>> {
        ["initContainers", "containers", "ephemeralContainers"]
            .into_iter()
            .map(|category| Extractor {
                category,
                fields: pod_spec.iter().copied().chain([category, "*"]).collect(),
                key: Some("name"),
                value: "image",
                jmes_path: None,
            })
            .collect()
    }
}

static POD_EXTRACTORS: LazyLock<Vec<Extractor<'static>>> =
    LazyLock::new(|| Extractor::standard(&["spec"]));
static POD_TEMPLATE_EXTRACTORS: LazyLock<Vec<Extractor<'static>>> =
    LazyLock::new(|| Extractor::standard(&["spec", "template", "spec"]));
static CRON_JOB_EXTRACTORS: LazyLock<Vec<Extractor<'static>>> =
    LazyLock::new(|| Extractor::standard(&["spec", "jobTemplate", "spec", "template", "spec"]));

/// The built-in extractors of a kind: Pods, pod controllers and CronJobs.
fn standard_extractors(kind: &str) -> &'static [Extractor<'static>] {
    match kind {
        "Pod" => &POD_EXTRACTORS,
        "DaemonSet"
        | "Deployment"
        | "Job"
        | "ReplicaSet"
        | "ReplicationController"
        | "StatefulSet" => &POD_TEMPLATE_EXTRACTORS,
        "CronJob" => &CRON_JOB_EXTRACTORS,
        _ => &[],
    }
}

/// A walk of one extractor's path through a resource.
struct Walk<'e, 'v> {
    extractor: &'e Extractor<'e>,
    /// JSON pointer of the value being visited.
    pointer: String,
    /// `imagePullSecrets` names of the objects on the way to the value being visited.
    pull_secrets: Vec<&'v str>,
    found: BTreeMap<String, ImageInfo>,
}

impl<'v> Walk<'_, 'v> {
    /// Follows `fields` from `node`, recording the images at their end.
    fn visit(&mut self, node: &'v Value, fields: &[&str]) -> Result<(), ImageError> {
        if node.is_null() {
            return Ok(());
        }
        if let Some((&"*", rest)) = fields.split_first() {
            return match node {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .try_for_each(|(index, item)| self.descend(index, item, rest)),
                Value::Object(object) => object
                    .iter()
                    .try_for_each(|(key, item)| self.descend(key, item, rest)),
                _ => Err(ImageError::NotTraversable),
            };
        }
        let Value::Object(object) = node else {
            return Err(ImageError::NotAnObject);
        };
        let secrets_before = self.pull_secrets.len();
        if let Some(Value::Array(secrets)) = object.get("imagePullSecrets") {
            let names = secrets
                .iter()
                .filter_map(|secret| secret.get("name").and_then(Value::as_str));
            self.pull_secrets.extend(names);
        }
        let result = match fields.split_first() {
            None => self.record(object),
            Some((field, rest)) => {
                self.descend(field, object.get(*field).unwrap_or(&Value::Null), rest)
            }
        };
        self.pull_secrets.truncate(secrets_before);
        result
    }

    /// Visits `node`, the element `element` of the current value.
    fn descend(
        &mut self,
        element: impl fmt::Display,
        node: &'v Value,
        fields: &[&str],
    ) -> Result<(), ImageError> {
        let pointer_before = self.pointer.len();
        // Writing to a String cannot fail.
        let _ = write!(self.pointer, "/{element}");
        let result = self.visit(node, fields);
        self.pointer.truncate(pointer_before);
        result
    }

    /// Records the image of `object`, the end of the extractor's path, if it has one.
    fn record(&mut self, object: &Map<String, Value>) -> Result<(), ImageError> {
        let extractor = self.extractor;
        // Upstream joins the path and the value field with `/` even when the path is empty.
        let parent = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        let json_pointer = format!("{parent}/{}", extractor.value);
        let key = match extractor.key {
            Some(field) => object
                .get(field)
                .and_then(Value::as_str)
                .ok_or(ImageError::InvalidKey)?
                .to_owned(),
            None => json_pointer.clone(),
        };
        let Some(value) = object
            .get(extractor.value)
            .and_then(Value::as_str)
            .filter(|value| !value.trim().is_empty())
        else {
            return Ok(());
        };
        let value = match extractor.jmes_path {
            Some(expression) => Cow::Owned(apply_jmes_path(expression, value)?),
            None => Cow::Borrowed(value),
        };
        let reference = ImageReference::parse(&value, DEFAULT_REGISTRY).map_err(|error| {
            ImageError::InvalidImage {
                image: value.clone().into_owned(),
                source: Box::new(error),
            }
        })?;
        let info = ImageInfo {
            reference,
            json_pointer,
            image_pull_secrets: self
                .pull_secrets
                .iter()
                .map(|&name| name.to_owned())
                .collect(),
        };
        self.found.insert(key, info);
        Ok(())
    }
}

/// Evaluates an extractor's `jmesPath` against an image field's value.
fn apply_jmes_path(expression: &str, value: &str) -> Result<String, ImageError> {
    match jmespath::search(expression, &Value::String(value.to_owned())) {
        Ok(Value::String(reference)) => Ok(reference),
        Ok(result) => Err(ImageError::JmesPathNotString {
            expression: expression.to_owned(),
            result,
        }),
        Err(source @ JmesPathError::Syntax { .. }) => Err(ImageError::InvalidJmesPath {
            expression: expression.to_owned(),
            source,
        }),
        Err(source) => Err(ImageError::JmesPathFailed {
            expression: expression.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
