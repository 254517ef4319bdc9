//! Compiled expressions and composited `variables`, and their evaluation for one request.
//!
//! A policy's variables are a list of named expressions; each sees the earlier ones as
//! `variables.<name>`. Kubernetes evaluates them lazily, once per evaluation, and a variable
//! that fails only matters to the expressions that use it. The [`Evaluator`] does the same:
//! before an expression runs, the variables it needs (directly or through other variables,
//! known from its text at compile time) are evaluated in order, each at most once; a failed
//! variable is left out of `variables`, and an expression that then fails while needing it
//! reports the variable's error, as upstream does.
use std::sync::{Arc, LazyLock};

use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, Value as CelValue};
use regex::Regex;

use super::activation::{AUTHORIZER, Activation, PARAMS, VARIABLES};
use crate::cel::{CelError, Program};

/// A CEL expression of a policy that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct CompileError {
    /// Where the expression is in the policy, e.g. `spec.validations[1].expression`.
    pub path: String,
    /// The compiler's error, which carries the position in the expression (`<input>:1:5`).
    pub source: Box<CelError>,
}

/// An expression that failed at runtime, worded as Kubernetes words it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expression '{expression}' resulted in error: {cause}")]
pub struct EvaluationError {
    /// The expression's text.
    pub expression: Arc<str>,
    /// Why it failed.
    pub cause: String,
}

/// A compiled expression, with the composited variables it needs.
#[derive(Debug)]
pub struct Expression {
    program: Program,
    /// Indices of the variables needed, directly or through other variables, ascending.
    needs: Vec<usize>,
    /// Whether the expression calls `authorizer`, which has nothing to answer offline.
    uses_authorizer: bool,
}

impl Expression {
    /// Compiles `source`, which may use the composited `variables`; `path` locates it in the
    /// policy for the error.
    pub fn compile(
        source: &str,
        variables: &CompiledVariables,
        path: &str,
    ) -> Result<Self, CompileError> {
        Self::compile_with(source, &variables.entries, path)
    }

    /// Compiles `source` seeing only `defined` variables.
    fn compile_with(
        source: &str,
        defined: &[CompiledVariable],
        path: &str,
    ) -> Result<Self, CompileError> {
        let program = Program::compile(source).map_err(|source| CompileError {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let mut needs: Vec<usize> = Vec::new();
        match referenced_variables(source) {
            // Selected by a computed key: any of them may be needed.
            References::Any => needs.extend(0..defined.len()),
            References::Named(names) => {
                for name in names {
                    if let Some(index) = defined.iter().position(|v| v.name.as_str() == name) {
                        needs.push(index);
                        needs.extend_from_slice(&defined[index].expression.needs);
                    }
                }
            }
        }
        needs.sort_unstable();
        needs.dedup();
        let uses_authorizer = program.references_variable(AUTHORIZER);
        Ok(Self {
            program,
            needs,
            uses_authorizer,
        })
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        self.program.source()
    }

    /// The compiled program.
    pub fn program(&self) -> &Program {
        &self.program
    }
}

/// The variables an expression selects.
enum References<'s> {
    /// Those named (`variables.name`, `variables.?name`).
    Named(Vec<&'s str>),
    /// Possibly any (`variables[key]`).
    Any,
}

/// The variables `source` selects. A name found inside a string literal only makes the
/// variable be evaluated early: harmless, since a failed variable is reported only when the
/// expression fails too.
fn referenced_variables(source: &str) -> References<'_> {
    static REFERENCE: LazyLock<Option<(Regex, Regex)>> = LazyLock::new(|| {
        Some((
            Regex::new(r"\bvariables\s*\.\s*\??\s*([A-Za-z_][A-Za-z0-9_]*)").ok()?,
            Regex::new(r"\bvariables\s*\[").ok()?,
        ))
    });
    let Some((named, indexed)) = REFERENCE.as_ref() else {
        return References::Any;
    };
    if indexed.is_match(source) {
        return References::Any;
    }
    References::Named(
        named
            .captures_iter(source)
            .filter_map(|captures| captures.get(1).map(|name| name.as_str()))
            .collect(),
    )
}

#[derive(Debug)]
struct CompiledVariable {
    name: Arc<String>,
    expression: Expression,
}

/// A policy's composited variables, compiled.
#[derive(Debug, Default)]
pub struct CompiledVariables {
    entries: Vec<CompiledVariable>,
}

impl CompiledVariables {
    /// Compiles `(name, expression)` pairs in order; each expression sees the variables before
    /// it. `path` is the list's location in the policy (`spec.variables`): a failing variable
    /// is reported at `<path>[<index>].expression`.
    pub fn compile<'v>(
        variables: impl IntoIterator<Item = (&'v str, &'v str)>,
        path: &str,
    ) -> Result<Self, CompileError> {
        let mut entries: Vec<CompiledVariable> = Vec::new();
        for (index, (name, source)) in variables.into_iter().enumerate() {
            let expression =
                Expression::compile_with(source, &entries, &format!("{path}[{index}].expression"))?;
            entries.push(CompiledVariable {
                name: Arc::new(name.to_owned()),
                expression,
            });
        }
        Ok(Self { entries })
    }

    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The variables' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|entry| entry.name.as_str())
    }
}

/// Evaluates expressions of one policy for one request: the request's [`Activation`] plus
/// `params` and the policy's `variables`, each variable evaluated at most once.
pub struct Evaluator<'a> {
    scope: Context<'a>,
    variables: &'a CompiledVariables,
    /// Per variable: not evaluated yet, its value, or why it failed.
    results: Vec<Option<Result<CelValue, Arc<str>>>>,
    /// Whether `variables` in the scope lacks a value computed since it was last bound.
    stale: bool,
}

impl std::fmt::Debug for Evaluator<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Evaluator")
            .field("variables", &self.variables)
            .finish_non_exhaustive()
    }
}

impl<'a> Evaluator<'a> {
    /// An evaluator over `activation` with `params` (null when `None`) and `variables`.
    pub fn new(
        activation: &'a Activation,
        variables: &'a CompiledVariables,
        params: Option<CelValue>,
    ) -> Self {
        let mut scope = activation.scope();
        scope.add_variable_from_value(PARAMS, params.unwrap_or(CelValue::Null));
        scope.add_variable_from_value(
            VARIABLES,
            CelValue::Map(Map {
                map: Arc::default(),
            }),
        );
        Self {
            scope,
            variables,
            results: vec![None; variables.entries.len()],
            stale: false,
        }
    }

    /// Binds another variable (a library object, an element of a loop) for the expressions
    /// evaluated after this call.
    pub fn bind(&mut self, name: &str, value: CelValue) {
        self.scope.add_variable_from_value(name, value);
    }

    /// Evaluates `expression`.
    pub fn evaluate(&mut self, expression: &Expression) -> Result<CelValue, EvaluationError> {
        self.run(expression, |program, scope| program.evaluate(scope))
    }

    /// Evaluates `expression`, which must give a bool.
    pub fn evaluate_bool(&mut self, expression: &Expression) -> Result<bool, EvaluationError> {
        self.run(expression, |program, scope| program.evaluate_bool(scope))
    }

    /// Evaluates `expression` and converts the result to JSON.
    pub fn evaluate_json(
        &mut self,
        expression: &Expression,
    ) -> Result<serde_json::Value, EvaluationError> {
        self.run(expression, |program, scope| program.evaluate_json(scope))
    }

    /// The value of variable `name`, evaluating it if needed; `None` for an unknown name.
    pub fn variable(&mut self, name: &str) -> Option<Result<CelValue, EvaluationError>> {
        let index = self
            .variables
            .entries
            .iter()
            .position(|entry| entry.name.as_str() == name)?;
        self.compute(index);
        match self.results.get(index)?.as_ref()? {
            Ok(value) => Some(Ok(value.clone())),
            Err(cause) => Some(Err(EvaluationError {
                expression: Arc::from(format!("{VARIABLES}.{name}")),
                cause: cause.to_string(),
            })),
        }
    }

    fn run<T>(
        &mut self,
        expression: &Expression,
        evaluate: impl FnOnce(&Program, &Context<'a>) -> Result<T, CelError>,
    ) -> Result<T, EvaluationError> {
        let cause = match self.run_program(expression, evaluate) {
            Ok(value) => return Ok(value),
            Err(cause) => cause,
        };
        Err(EvaluationError {
            expression: Arc::from(expression.source()),
            cause: cause.to_string(),
        })
    }

    /// Runs `expression` after its variables; on failure, the first failed variable it needs
    /// is the cause.
    fn run_program<T>(
        &mut self,
        expression: &Expression,
        evaluate: impl FnOnce(&Program, &Context<'a>) -> Result<T, CelError>,
    ) -> Result<T, Arc<str>> {
        for &index in &expression.needs {
            self.compute(index);
        }
        self.bind_variables();
        evaluate(&expression.program, &self.scope).map_err(|error| {
            self.failed_need(expression).unwrap_or_else(|| {
                if expression.uses_authorizer {
                    Arc::from(format!(
                        "the authorizer cannot check permissions without a cluster: {error}"
                    ))
                } else {
                    Arc::from(error.to_string())
                }
            })
        })
    }

    fn failed_need(&self, expression: &Expression) -> Option<Arc<str>> {
        expression
            .needs
            .iter()
            .find_map(|&index| match &self.results[index] {
                Some(Err(cause)) => Some(Arc::clone(cause)),
                _ => None,
            })
    }

    /// Evaluates variable `index` unless done.
    fn compute(&mut self, index: usize) {
        if self.results[index].is_some() {
            return;
        }
        let variables = self.variables;
        let entry = &variables.entries[index];
        let result = self
            .run_program(&entry.expression, |program, scope| program.evaluate(scope))
            .map_err(|cause| {
                Arc::from(format!(
                    "composited variable \"{}\" fails to evaluate: {cause}",
                    entry.name
                ))
            });
        self.stale |= result.is_ok();
        self.results[index] = Some(result);
    }

    /// Rebinds `variables` if values were computed since it was last bound.
    fn bind_variables(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        let map: std::collections::HashMap<Key, CelValue> = self
            .variables
            .entries
            .iter()
            .zip(&self.results)
            .filter_map(|(entry, result)| match result {
                Some(Ok(value)) => Some((Key::String(Arc::clone(&entry.name)), value.clone())),
                _ => None,
            })
            .collect();
        self.scope
            .add_variable_from_value(VARIABLES, CelValue::Map(Map { map: Arc::new(map) }));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cel;
    use crate::celpolicy::resources::GroupVersionResource;
    use crate::request::ResourceRequest;

    fn activation() -> Activation {
        let request = ResourceRequest::new(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}));
        Activation::new(&request, &GroupVersionResource::new("", "v1", "pods"), None)
    }

    fn variables(pairs: &[(&str, &str)]) -> CompiledVariables {
        CompiledVariables::compile(pairs.iter().copied(), "spec.variables").expect("compiles")
    }

    #[test]
    fn variables_see_earlier_variables_in_order() {
        let variables = variables(&[
            ("names", "object.spec.containers.map(c, c.name)"),
            ("count", "size(variables.names)"),
            ("twice", "variables.count * 2"),
        ]);
        let activation = activation();
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        let expression = Expression::compile("variables.twice", &variables, "x").expect("compiles");
        assert_eq!(
            evaluator.evaluate_json(&expression).expect("evaluates"),
            json!(4)
        );
        let names = Expression::compile("variables.names", &variables, "x").expect("compiles");
        assert_eq!(
            evaluator.evaluate_json(&names).expect("evaluates"),
            json!(["a", "b"])
        );
    }

    #[test]
    fn a_failing_variable_only_matters_when_used() {
        let variables = variables(&[("bad", "object.spec.missing"), ("good", "'ok'")]);
        let activation = activation();
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        let good = Expression::compile("variables.good == 'ok'", &variables, "x").expect("ok");
        assert_eq!(evaluator.evaluate_bool(&good), Ok(true));
        let bad = Expression::compile("variables.bad == 1", &variables, "x").expect("ok");
        let error = evaluator.evaluate_bool(&bad).expect_err("fails");
        assert_eq!(&*error.expression, "variables.bad == 1");
        assert!(
            error
                .cause
                .starts_with("composited variable \"bad\" fails to evaluate: "),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("expression 'variables.bad == 1' resulted in error: "),
            "{error}"
        );
        // A variable depending on a failed one fails with the root cause.
        let chained = self::variables(&[("bad", "object.spec.missing"), ("uses", "variables.bad")]);
        let mut evaluator = Evaluator::new(&activation, &chained, None);
        let error = evaluator
            .variable("uses")
            .expect("known")
            .expect_err("fails");
        assert!(error.cause.contains("\"bad\""), "{error}");
    }

    #[test]
    fn later_variables_are_not_visible_to_earlier_ones() {
        let variables = variables(&[("first", "variables.second"), ("second", "1")]);
        let activation = activation();
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        assert!(evaluator.variable("first").expect("known").is_err());
        assert_eq!(evaluator.variable("second").expect("known"), Ok(1.into()));
        assert!(evaluator.variable("third").is_none());
    }

    #[test]
    fn compile_errors_name_the_variable_and_the_position() {
        let error = CompiledVariables::compile([("a", "1"), ("b", "1 +")], "spec.variables")
            .expect_err("does not compile");
        assert_eq!(error.path, "spec.variables[1].expression");
        let text = error.to_string();
        assert!(text.starts_with("spec.variables[1].expression: "), "{text}");
        assert!(text.contains("<input>:1:"), "{text}");
    }

    #[test]
    fn params_are_null_unless_given_and_results_must_have_the_asked_type() {
        let variables = CompiledVariables::default();
        let activation = activation();
        let is_null = Expression::compile("params == null", &variables, "x").expect("ok");
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        assert_eq!(evaluator.evaluate_bool(&is_null), Ok(true));
        let params = cel::from_json(&json!({"max": 3}));
        let mut evaluator = Evaluator::new(&activation, &variables, Some(params));
        let max = Expression::compile("params.max", &variables, "x").expect("ok");
        assert_eq!(evaluator.evaluate_json(&max), Ok(json!(3)));
        let error = evaluator.evaluate_bool(&max).expect_err("not a bool");
        assert!(error.cause.contains("bool"), "{error}");
    }

    #[test]
    fn references_are_found_in_the_text() {
        let References::Named(names) =
            referenced_variables("variables.a + variables . b + variables.?c + myvariables.d")
        else {
            panic!("expected names");
        };
        assert_eq!(names, ["a", "b", "c"]);
        assert!(matches!(
            referenced_variables("variables['a'] + variables.b"),
            References::Any
        ));
    }

    #[test]
    fn variables_selected_by_index_are_evaluated() {
        let variables = variables(&[("a", "1"), ("b", "variables.a + 1")]);
        let activation = activation();
        let mut evaluator = Evaluator::new(&activation, &variables, None);
        let expression =
            Expression::compile("variables['b'] == 2", &variables, "x").expect("compiles");
        assert_eq!(evaluator.evaluate_bool(&expression), Ok(true));
    }
}
