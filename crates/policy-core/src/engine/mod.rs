//! Evaluating a loaded policy against one resource request.
//!
//! The engine is sans-IO: ConfigMaps, API calls, GlobalContextEntries and image data come from a
//! [`ContextProvider`] that the caller implements (the controllers against the API server, the
//! CLI from values files and mocks).
mod policy;
mod provider;

pub use policy::{LoadedPolicy, PolicyLoadError};
pub use provider::{ContextProvider, Lookup, NoExternalData, ProviderError};

use serde_json::{Map, Value};

/// Variable values supplied from outside for one (policy, resource) evaluation, as the CLI's
/// values files give them. Keys may be dotted paths (`request.operation`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SuppliedValues {
    /// Values for every policy and resource.
    pub global: Map<String, Value>,
    /// Values for this resource.
    pub resource: Map<String, Value>,
    /// Values per rule name.
    pub rules: std::collections::BTreeMap<String, RuleValues>,
}

/// Values supplied for one rule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleValues {
    /// Variables of the rule; they take precedence over its context entries.
    pub values: Map<String, Value>,
    /// Variables per foreach element: for each variable name, a list of values, one per element.
    pub foreach: Map<String, Value>,
}
