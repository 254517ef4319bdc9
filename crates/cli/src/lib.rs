//! The `kyverno` command-line tool: `test`, `apply`, `jp` and `version`, a drop-in for the
//! offline commands of upstream Kyverno's CLI.
pub mod cel;
pub mod commands;
pub mod engine;
pub mod loader;
pub mod output;
pub mod provider;
pub mod report;
pub mod test_file;
#[cfg(test)]
mod test_support;
pub mod values;
