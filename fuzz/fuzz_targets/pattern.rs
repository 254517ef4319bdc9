//! Pattern matching: a generated resource against a generated pattern.
#![no_main]

use arbitrary::Unstructured;
use kyverno_fuzz::{PATTERN_TOKENS, document};
use kyverno_policy_core::pattern::{check_pattern, validate_pattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(pattern), Ok(resource)) = (
        document(&mut u, PATTERN_TOKENS),
        document(&mut u, PATTERN_TOKENS),
    ) else {
        return;
    };
    let _ = check_pattern(&pattern);
    let _ = validate_pattern(&resource, &pattern);
});
