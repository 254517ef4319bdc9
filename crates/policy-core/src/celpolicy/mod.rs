//! Kyverno's CEL policies and Kubernetes admission policies: the admission model every CEL kind
//! shares (the variables an expression sees, composited `variables`, `matchConditions`,
//! validations and audit annotations) and the policy kinds built on it.
//!
//! Expressions are compiled once when a policy is loaded ([`Expression`],
//! [`CompiledVariables`]); per request the caller builds one [`Activation`] (the request's
//! documents converted to CEL once) and, per policy, an [`Evaluator`] over it.
pub mod activation;
pub mod cel_rule;
pub mod common;
pub mod validations;
pub mod variables;

// Modules of the policy kinds (each helper adds its own line below).
pub mod admission_policy;
pub mod authz;
pub mod autogen;
pub mod deleting;
pub mod exceptions;
pub mod generating;
pub mod image_validating;
pub mod matching;
pub mod mutating;
pub mod resources;
pub mod validating;

pub use activation::Activation;
pub use common::{CelPolicyLoadError, RequestInput};
pub use validations::{
    AuditAnnotationOutcome, CompiledAuditAnnotation, CompiledMatchConditions, CompiledValidation,
    MatchOutcome, ValidationOutcome,
};
pub use variables::{CompileError, CompiledVariables, EvaluationError, Evaluator, Expression};
