//! The Kyverno policy engine, sans-IO: everything needed to evaluate a policy against a resource,
//! with data from outside (ConfigMaps, API calls, namespace labels) supplied by the caller.
pub mod wildcard;
pub mod pod_security;
pub mod quantity;
pub mod duration;
pub mod engine;
pub mod response;
pub mod jmespath;
pub mod conditions;
pub mod request;
pub mod matching;
pub mod pattern;
pub mod autogen;
pub mod exceptions;
pub mod mutate;
pub mod variables;
pub mod images;
pub mod policy_check;
