//! Variable substitution: a generated document against a generated context.
#![no_main]

use arbitrary::Unstructured;
use kyverno_fuzz::{VARIABLE_TOKENS, document, text};
use kyverno_policy_core::variables::{Context, substitute, substitute_at};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Where in a rule the document is taken from (used for `{{ @ }}` and error paths).
const LOCATIONS: &[&str] = &[
    "",
    "/validate/pattern",
    "/validate/foreach/0/pattern",
    "/mutate/patchStrategicMerge",
];

fn run(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let document = document(u, VARIABLE_TOKENS)?;
    let mut context = Context::new();
    context.set(
        "request.object",
        kyverno_fuzz::document(u, VARIABLE_TOKENS)?,
    );
    context.set(
        "request.operation",
        Value::String((*u.choose(&["CREATE", "UPDATE", "DELETE", ""])?).to_owned()),
    );
    context.set("element", kyverno_fuzz::document(u, VARIABLE_TOKENS)?);
    let extra = text(u, VARIABLE_TOKENS)?;
    context.set(&extra, kyverno_fuzz::document(u, VARIABLE_TOKENS)?);
    let location = *u.choose(LOCATIONS)?;
    let _ = substitute(&document, &context);
    let _ = substitute_at(&document, location, &context);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
