//! JMESPath: a generated expression (raw text, or assembled from tokens and every function
//! name) against a typical Pod merged with a generated document.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Unstructured;
use kyverno_fuzz::{JMESPATH_TOKENS, document};
use kyverno_policy_core::jmespath::{function_catalogue, search};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// The expression tokens plus `name(` for every standard and custom function.
static TOKENS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let functions = function_catalogue()
        .into_iter()
        .map(|function| format!("{}(", function.name));
    JMESPATH_TOKENS
        .iter()
        .map(|token| (*token).to_owned())
        .chain(functions)
        .collect()
});

fn expression(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    if u.ratio(1, 4)? {
        return Ok(u.arbitrary::<&str>()?.to_owned());
    }
    let pieces = u.int_in_range(1..=12)?;
    let mut expression = String::new();
    for _ in 0..pieces {
        expression.push_str(u.choose(&TOKENS)?);
    }
    Ok(expression)
}

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let expression = expression(u)?;
    let extra = document(u, JMESPATH_TOKENS)?;
    let data = json!({
        "a": extra,
        "b": [1, "2", 3.5, null, true, {"name": "x"}],
        "name": "web",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "1"}},
        "spec": {"containers": [
            {"name": "web", "image": "nginx:1.25", "resources": {"limits": {"memory": "100Mi"}}},
            {"name": "side", "image": "ghcr.io/x/y@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
        ]}
    });
    let _: Result<Value, _> = search(&expression, &data);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
