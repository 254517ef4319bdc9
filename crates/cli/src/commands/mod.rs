//! The subcommands.
pub mod apply;
pub mod jp;
pub mod test;
pub mod version;
