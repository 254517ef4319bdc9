//! The image library: `parseImageReference(string)` (and its older name `image(string)`),
//! `isImage(string)`, and the methods of the parsed reference: `registry()`, `repository()`,
//! `identifier()`, `tag()`, `digest()`, `containsDigest()`.
//!
//! References are read as go-containerregistry's `name.ParseReference` reads them, which is
//! what upstream uses and differs from the `images` variable of ClusterPolicies: Docker Hub is
//! `index.docker.io`, its single-element repositories get `library/`, and a reference without
//! tag nor digest has the tag `latest`.
use std::sync::Arc;

use kube_cel::cel::extractors::This;
use kube_cel::cel::objects::Opaque;
use kube_cel::cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};

/// The registry of references that name none, and what `docker.io` stands for.
const DOCKER_HUB: &str = "index.docker.io";
/// The tag of references that have neither tag nor digest.
const DEFAULT_TAG: &str = "latest";
/// The only digest algorithm go-containerregistry accepts, with its separator.
const DIGEST_PREFIX: &str = "sha256:";

pub(super) fn register(context: &mut Context<'_>) {
    context.add_function("image", parse_image_reference);
    context.add_function("parseImageReference", parse_image_reference);
    context.add_function("isImage", is_image);
    context.add_function("registry", registry);
    context.add_function("repository", repository);
    context.add_function("identifier", identifier);
    context.add_function("tag", tag);
    context.add_function("digest", digest);
    context.add_function("containsDigest", contains_digest);
}

/// A parsed image reference: a tag reference (`repo[:tag]`) or a digest reference
/// (`repo[:tag]@sha256:...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ImageReference {
    /// The registry host (with port), `index.docker.io` for Docker Hub.
    registry: String,
    /// The repository path as written, without `library/`.
    repository: String,
    /// The tag: as written, `latest` for a tag reference without one, empty for a digest
    /// reference without one.
    tag: String,
    /// The digest of a digest reference.
    digest: Option<String>,
}

impl Opaque for ImageReference {
    fn runtime_type_name(&self) -> &str {
        "kyverno.image"
    }
}

impl ImageReference {
    /// Parses `reference` as a tag reference, else as a digest reference.
    pub(super) fn parse(reference: &str) -> Result<Self, String> {
        Self::parse_tagged(reference)
            .or_else(|| Self::parse_digested(reference))
            .ok_or_else(|| format!("could not parse reference: {reference}"))
    }

    /// `repository[:tag]`; the tag is the part after the last `:` unless it holds a `/` (then
    /// the `:` belongs to a registry port).
    fn parse_tagged(reference: &str) -> Option<Self> {
        let (base, tag) = match reference.rsplit_once(':') {
            Some((base, tag)) if !tag.contains('/') => (base, Some(tag)),
            _ => (reference, None),
        };
        if let Some(tag) = tag
            && !is_valid_tag(tag)
        {
            return None;
        }
        let (registry, repository) = split_repository(base)?;
        Some(Self {
            registry,
            repository,
            tag: tag.unwrap_or(DEFAULT_TAG).to_owned(),
            digest: None,
        })
    }

    /// `repository[:tag]@sha256:<64 hex digits>`.
    fn parse_digested(reference: &str) -> Option<Self> {
        let (base, digest) = reference.split_once('@')?;
        if digest.contains('@') || !is_valid_digest(digest) {
            return None;
        }
        let (registry, repository, tag) = match Self::parse_tagged(base) {
            Some(tagged) => (
                tagged.registry,
                tagged.repository,
                tagged_digest_tag(reference),
            ),
            None => {
                let (registry, repository) = split_repository(base)?;
                (registry, repository, "")
            }
        };
        Some(Self {
            registry,
            repository,
            tag: tag.to_owned(),
            digest: Some(digest.to_owned()),
        })
    }

    /// The repository path, with `library/` for Docker Hub's official images.
    fn repository_path(&self) -> String {
        if self.registry == DOCKER_HUB && !self.repository.contains('/') {
            format!("library/{}", self.repository)
        } else {
            self.repository.clone()
        }
    }

    /// The tag, or for a digest reference the digest (`tag@digest` when it has both).
    fn identifier(&self) -> String {
        match &self.digest {
            Some(digest) if self.tag.is_empty() => digest.clone(),
            Some(digest) => format!("{}@{digest}", self.tag),
            None => self.tag.clone(),
        }
    }
}

/// The tag of a `repository:tag@digest` reference: the part after the last `:` before the
/// `@`, unless that `:` is a registry port's (before the last `/`).
fn tagged_digest_tag(reference: &str) -> &str {
    let Some((base, _)) = reference.split_once('@') else {
        return "";
    };
    match (base.rfind(':'), base.rfind('/')) {
        (Some(colon), Some(slash)) if colon < slash => "",
        (Some(colon), _) => &base[colon + 1..],
        (None, _) => "",
    }
}

/// Splits `registry/repository`: the first element is a registry when it holds a `.` or a `:`.
fn split_repository(name: &str) -> Option<(String, String)> {
    let (registry, repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) => (first, rest),
        _ => ("", name),
    };
    let valid_repository = (2..=255).contains(&repository.len())
        && repository
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'/'));
    if !valid_repository || !is_valid_registry(registry) {
        return None;
    }
    let registry = match registry {
        "" | "docker.io" => DOCKER_HUB,
        other => other,
    };
    Some((registry.to_owned(), repository.to_owned()))
}

/// Whether `registry` can be a URI authority (`host[:port]`) by itself.
fn is_valid_registry(registry: &str) -> bool {
    !registry
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"/?#@\\".contains(&b))
}

/// 1 to 128 letters, digits, `_`, `-` or `.`.
fn is_valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `sha256:` followed by 64 lower-case hex digits.
fn is_valid_digest(digest: &str) -> bool {
    digest.strip_prefix(DIGEST_PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn parse_image_reference(ftx: &FunctionContext, reference: Arc<String>) -> ResolveResult {
    ImageReference::parse(&reference)
        .map(|image| Value::Opaque(Arc::new(image)))
        .map_err(|message| ftx.error(message))
}

fn is_image(reference: Arc<String>) -> bool {
    ImageReference::parse(&reference).is_ok()
}

/// The image reference a method is called on.
fn receiver<'v>(
    ftx: &FunctionContext,
    this: &'v Value,
) -> Result<&'v ImageReference, ExecutionError> {
    match this {
        Value::Opaque(opaque) => opaque.downcast_ref::<ImageReference>(),
        _ => None,
    }
    .ok_or_else(|| {
        ftx.error(format!(
            "{}() applies to image references, not to {}",
            ftx.name,
            super::super::type_name(this)
        ))
    })
}

fn registry(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    Ok(receiver(ftx, &this)?.registry.clone().into())
}

fn repository(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    Ok(receiver(ftx, &this)?.repository_path().into())
}

fn identifier(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    Ok(receiver(ftx, &this)?.identifier().into())
}

fn tag(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    Ok(receiver(ftx, &this)?.tag.clone().into())
}

fn digest(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    Ok(receiver(ftx, &this)?
        .digest
        .clone()
        .unwrap_or_default()
        .into())
}

fn contains_digest(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    Ok(receiver(ftx, &this)?.digest.is_some().into())
}
