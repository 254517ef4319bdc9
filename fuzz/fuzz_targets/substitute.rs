//! Variable substitution: a generated document against a generated context.
#![no_main]

use kyverno_fuzz::SubstituteInput;
use kyverno_policy_core::variables::{Context, substitute, substitute_at};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|input: SubstituteInput| {
    let mut context = Context::new();
    context.set("request.object", input.object);
    context.set("request.operation", Value::from(input.operation));
    context.set("element", input.element);
    context.set(&input.entry.0, input.entry.1);
    let _ = substitute(&input.document, &context);
    let _ = substitute_at(&input.document, input.location, &context);
});
