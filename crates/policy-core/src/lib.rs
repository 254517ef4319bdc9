//! The Kyverno policy engine, sans-IO: everything needed to evaluate a policy against a resource,
//! with data from outside (ConfigMaps, API calls, namespace labels) supplied by the caller.
pub mod autogen;
pub mod cel;
pub mod celpolicy;
pub mod conditions;
pub mod duration;
pub mod engine;
pub mod exceptions;
mod gofmt;
mod gopath;
pub mod images;
pub mod jmespath;
pub mod manifests;
pub mod matching;
pub mod mutate;
pub mod pattern;
pub mod pod_security;
pub mod policy_check;
pub mod quantity;
pub mod request;
pub mod response;
pub mod variables;
pub mod wildcard;
