//! `image_normalize`: an image reference with its registry and tag made explicit, parsed as
//! upstream does (see [`crate::images`]).

use super::{ArgType, FunctionSpec, required, string};
use crate::jmespath::error::JmesPathError;
use serde_json::Value;

pub(super) const FUNCTIONS: &[FunctionSpec] = &[FunctionSpec {
    name: "image_normalize",
    args: &[required(&[ArgType::String])],
    returns: &[ArgType::String],
    note: "normalizes an image reference",
    handler: |args, _| {
        crate::images::normalize(string("image_normalize", args, 0)?)
            .map(Value::String)
            .map_err(|error| JmesPathError::in_function("image_normalize", error))
    },
}];

#[cfg(test)]
mod tests {
    use crate::jmespath::search;
    use serde_json::json;

    fn normalize(image: &str) -> Result<String, String> {
        search(&format!("image_normalize('{image}')"), &json!({}))
            .map(|value| value.as_str().unwrap_or_default().to_owned())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn adds_registry_and_tag() {
        for (image, expected) in [
            ("nginx", "docker.io/nginx:latest"),
            ("docker.io/nginx", "docker.io/nginx:latest"),
            ("docker.io/library/nginx", "docker.io/library/nginx:latest"),
            ("ghcr.io/library/nginx", "ghcr.io/library/nginx:latest"),
            ("ghcr.io/nginx:1.2", "ghcr.io/nginx:1.2"),
            ("library/nginx:1.2", "docker.io/library/nginx:1.2"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            (
                "nginx:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "docker.io/nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ] {
            assert_eq!(normalize(image), Ok(expected.to_owned()), "{image}");
        }
    }

    #[test]
    fn rejects_invalid_references() {
        assert_eq!(
            normalize(""),
            Err("JMESPath function 'image_normalize': bad image: docker.io/, defaultRegistry: docker.io, enableDefaultRegistryMutation: true: invalid reference format".to_owned())
        );
        assert!(
            normalize("Nginx").is_err_and(|e| e.ends_with("repository name must be lowercase"))
        );
        assert!(normalize("nginx@sha256:abc").is_err());
        assert!(
            normalize("nginx@md5:0123456789abcdef0123456789abcdef")
                .is_err_and(|e| e.ends_with("unsupported digest algorithm"))
        );
    }
}
