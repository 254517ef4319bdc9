//! Kyverno's CEL libraries, as the `policies.kyverno.io` policies see them on top of the
//! Kubernetes ones.
//!
//! Pure functions live in the root environment ([`register`]): the image library
//! (`parseImageReference`/`image`, `isImage` and the reference's methods), `json`, `yaml`,
//! `x509.decode`, the hashes, `time`, `math.round` with a precision, `random`,
//! `listObjToMap` and `parseServiceAccount`. cel 0.13 looks a call `a.f(...)` up as the
//! function `a.f` first, so the namespaced ones need no variable.
//!
//! The libraries that reach outside the request (`resource`, `globalContext`, `http`,
//! `image.GetMetadata`, `generator`) read through the engine's
//! [`ContextProvider`](crate::engine::ContextProvider): their variables are bound per
//! evaluation by [`Libraries::bind`] (or [`bind`]), their methods registered once here.
//!
//! `jsonpatch.escapeKey` comes with the Kubernetes libraries; `gzip` is not provided.
mod encoding;
mod external;
mod image;
mod utilities;

use std::sync::Arc;

use kube_cel::cel::Context;

pub use external::{GeneratedResources, Libraries};

use crate::engine::ContextProvider;

/// Adds Kyverno's functions to the root environment (after the Kubernetes libraries: where a
/// name is shared, such as `math.round`, the function here keeps the Kubernetes behaviour for
/// the Kubernetes form).
pub fn register(context: &mut Context<'_>) {
    image::register(context);
    encoding::register(context);
    utilities::register(context);
    external::register(context);
}

/// Binds the libraries of a cluster-wide, non-generating policy to `scope`, reading through
/// `provider`. To bind the same libraries into many scopes, build [`Libraries`] once.
pub fn bind(scope: &mut Context<'_>, provider: Arc<dyn ContextProvider>) {
    Libraries::new(provider).bind(scope);
}

#[cfg(test)]
mod tests;
