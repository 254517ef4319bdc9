//! Pattern matching: a generated resource against a generated pattern.
#![no_main]

use kyverno_fuzz::PatternInput;
use kyverno_policy_core::pattern::{check_pattern, validate_pattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: PatternInput| {
    let _ = check_pattern(&input.pattern);
    let _ = validate_pattern(&input.resource, &input.pattern);
});
