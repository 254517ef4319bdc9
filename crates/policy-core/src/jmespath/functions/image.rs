//! TODO
use super::FunctionSpec;

pub(super) const FUNCTIONS: &[FunctionSpec] = &[];
