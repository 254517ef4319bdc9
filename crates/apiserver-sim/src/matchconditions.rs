//! Webhook `matchConditions`: CEL expressions over `object`, `oldObject` and `request`, as the
//! API server's `k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions` evaluates them.
//!
//! Each webhook's conditions are compiled once per version (uid and resourceVersion) of its
//! configuration and kept in a [`MatcherCache`]. A [`Matcher`] evaluates them all: any `false`
//! skips the webhook (even when another condition errored), otherwise any error is returned
//! (the caller applies the webhook's `failurePolicy`), otherwise the webhook is called.
//!
//! Expressions are evaluated with the `cel` interpreter and the Kubernetes CEL libraries of
//! `kube-cel`; they are not type-checked, so a mistake the real API server would reject when
//! the configuration is written (an unknown field of `request`, a non-boolean result, a syntax
//! error, more than [`MAX_CONDITIONS`] conditions) shows up here as an evaluation error. The
//! `authorizer` variable is not provided: an expression that reaches it errors.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube_cel::KubeCelExt;
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{Context, Program};
use serde_json::Value;

/// The most conditions a webhook may have (as validated by the real API server).
pub const MAX_CONDITIONS: usize = 64;

/// Why one match condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionError {
    /// The expression does not parse.
    #[error("compilation error: {0}")]
    Compile(String),
    /// The expression failed at evaluation (or did not yield a bool).
    #[error("expression '{expression}' resulted in error: {message}")]
    Eval {
        /// The CEL expression.
        expression: String,
        /// What went wrong.
        message: String,
    },
    /// The webhook has more than [`MAX_CONDITIONS`] conditions.
    #[error("matchConditions: Too many: {0}: must have at most {MAX_CONDITIONS} items")]
    TooMany(usize),
}

/// The errors of a webhook's match conditions, worded like the API server's aggregate error
/// (one error alone, several as `[a, b]`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", aggregate(.0))]
pub struct MatchError(pub Vec<ConditionError>);

fn aggregate(errors: &[ConditionError]) -> String {
    let mut seen = HashSet::new();
    let msgs: Vec<String> = errors
        .iter()
        .map(ToString::to_string)
        .filter(|m| seen.insert(m.clone()))
        .collect();
    match msgs.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", msgs.join(", ")),
    }
}

struct Condition {
    expression: String,
    program: Result<Program, String>,
    /// Whether the expression mentions `authorizer`, which is not bound.
    uses_authorizer: bool,
}

/// The compiled `matchConditions` of one webhook.
pub struct Matcher {
    conditions: Vec<Condition>,
    too_many: Option<usize>,
}

/// What the conditions are evaluated against.
pub struct MatchInput<'a> {
    /// `object` (`null` for DELETE).
    pub object: &'a Value,
    /// `oldObject` (`null` for CREATE).
    pub old_object: &'a Value,
    /// `request`: the AdmissionRequest fields (kind, resource, name, namespace, operation,
    /// userInfo, ...).
    pub request: &'a Value,
}

impl Matcher {
    /// Compiles the `matchConditions` of a webhook (a missing list means no conditions).
    pub fn compile(hook: &Value) -> Self {
        let list = hook
            .get("matchConditions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let too_many = (list.len() > MAX_CONDITIONS).then_some(list.len());
        let conditions = list
            .iter()
            .map(|c| {
                let expression = c
                    .get("expression")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let program = Program::compile(&expression).map_err(|e| e.to_string());
                let uses_authorizer = program
                    .as_ref()
                    .is_ok_and(|p| p.references().has_variable("authorizer"));
                Condition {
                    expression,
                    program,
                    uses_authorizer,
                }
            })
            .collect();
        Self {
            conditions,
            too_many,
        }
    }

    /// Whether the webhook has no conditions (it is then always called).
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty() && self.too_many.is_none()
    }

    /// Evaluates every condition: `Ok(false)` when one is false, else the errors if any, else
    /// `Ok(true)`.
    pub fn matches(&self, input: &MatchInput<'_>) -> Result<bool, MatchError> {
        if let Some(n) = self.too_many {
            return Err(MatchError(vec![ConditionError::TooMany(n)]));
        }
        if self.conditions.is_empty() {
            return Ok(true);
        }
        let mut ctx = Context::default();
        ctx.register_all();
        ctx.add_variable_from_value("object", to_cel(input.object));
        ctx.add_variable_from_value("oldObject", to_cel(input.old_object));
        ctx.add_variable_from_value("request", to_cel(input.request));
        let mut errors = Vec::new();
        for c in &self.conditions {
            let program = match &c.program {
                Ok(p) => p,
                Err(e) => {
                    errors.push(ConditionError::Compile(e.clone()));
                    continue;
                }
            };
            let eval = |message: String| ConditionError::Eval {
                expression: c.expression.clone(),
                message,
            };
            match program.execute(&ctx) {
                Ok(kube_cel::cel::Value::Bool(false)) => return Ok(false),
                Ok(kube_cel::cel::Value::Bool(true)) => {}
                Ok(other) => errors.push(eval(format!(
                    "expected a bool result, got {}",
                    other.type_of()
                ))),
                Err(e) if c.uses_authorizer => errors.push(eval(format!(
                    "the authorizer variable is not supported by apiserver-sim ({e})"
                ))),
                Err(e) => errors.push(eval(e.to_string())),
            }
        }
        if errors.is_empty() {
            Ok(true)
        } else {
            Err(MatchError(errors))
        }
    }
}

/// Converts JSON to a CEL value (integers become `int`, as in the API server).
pub fn to_cel(v: &Value) -> kube_cel::cel::Value {
    use kube_cel::cel::Value as C;
    match v {
        Value::Null => C::Null,
        Value::Bool(b) => C::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => C::Int(i),
            (None, Some(u)) => C::UInt(u),
            _ => C::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => C::String(Arc::new(s.clone())),
        Value::Array(a) => C::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => {
            let map: HashMap<Key, C> = o
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            C::Map(Map { map: Arc::new(map) })
        }
    }
}

type Compiled = Arc<Vec<Arc<Matcher>>>;

/// Compiled matchers of the webhook configurations, per configuration version: a
/// configuration's conditions are compiled when it is first seen after a change, not on every
/// request.
#[derive(Default)]
pub struct MatcherCache {
    inner: Mutex<HashMap<(String, String), (String, Compiled)>>,
}

impl MatcherCache {
    /// The matchers of a configuration's webhooks, in order (`kind` tells mutating from
    /// validating configurations).
    pub fn get(&self, kind: &str, config: &Value) -> Compiled {
        let meta = config.get("metadata");
        let field = |f: &str| {
            meta.and_then(|m| m.get(f))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let key = (kind.to_string(), field("uid"));
        let rv = field("resourceVersion");
        let compile = || -> Compiled {
            Arc::new(
                config
                    .get("webhooks")
                    .and_then(Value::as_array)
                    .map(|ws| ws.iter().map(|h| Arc::new(Matcher::compile(h))).collect())
                    .unwrap_or_default(),
            )
        };
        let Ok(mut map) = self.inner.lock() else {
            return compile();
        };
        if let Some((cached_rv, compiled)) = map.get(&key)
            && *cached_rv == rv
        {
            return compiled.clone();
        }
        let compiled = compile();
        map.insert(key, (rv, compiled.clone()));
        compiled
    }

    /// Forgets the configurations of a kind that no longer exist.
    pub fn retain(&self, kind: &str, live_uids: &HashSet<String>) {
        if let Ok(mut map) = self.inner.lock() {
            map.retain(|(k, uid), _| k != kind || live_uids.contains(uid));
        }
    }

    /// How many configuration versions are compiled (for tests).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether nothing is compiled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook(exprs: &[&str]) -> Value {
        let mcs: Vec<Value> = exprs
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"name": format!("c{i}"), "expression": e}))
            .collect();
        json!({"name": "h", "matchConditions": mcs})
    }

    fn eval(exprs: &[&str]) -> Result<bool, MatchError> {
        let object =
            json!({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"replicas": 3}});
        let request = json!({"operation": "CREATE", "namespace": "default", "userInfo": {"username": "u", "groups": ["g"]}});
        Matcher::compile(&hook(exprs)).matches(&MatchInput {
            object: &object,
            old_object: &Value::Null,
            request: &request,
        })
    }

    #[test]
    fn evaluates_conditions() {
        assert_eq!(eval(&[]), Ok(true));
        assert_eq!(eval(&["object.metadata.labels.a == 'b'"]), Ok(true));
        assert_eq!(
            eval(&["object.spec.replicas > 2", "oldObject == null"]),
            Ok(true)
        );
        assert_eq!(eval(&["request.operation == 'UPDATE'"]), Ok(false));
        assert_eq!(eval(&["'g' in request.userInfo.groups"]), Ok(true));
        assert_eq!(
            eval(&["has(object.metadata.labels) && object.metadata.labels.exists(k, k == 'a')"]),
            Ok(true)
        );
        // A false condition wins over an error.
        assert_eq!(eval(&["object.nope == 1", "false"]), Ok(false));
        // Kubernetes CEL libraries are there.
        assert_eq!(eval(&["'abc'.lowerAscii() == 'abc'"]), Ok(true));
    }

    #[test]
    fn errors() {
        let e = eval(&["object.nope == 1"]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("expression 'object.nope == 1' resulted in error: "),
            "{e}"
        );
        let e =
            eval(&["authorizer.group('').resource('pods').check('get').allowed()"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("authorizer variable is not supported"),
            "{e}"
        );
        let e = eval(&["'x'"]).unwrap_err();
        assert!(e.to_string().contains("bool"), "{e}");
        let e = eval(&["object.(("]).unwrap_err();
        assert!(e.to_string().starts_with("compilation error: "), "{e}");
        let e = eval(&["object.a == 1", "object.b == 1"]).unwrap_err();
        assert!(
            e.to_string().starts_with("[expression 'object.a == 1'"),
            "{e}"
        );
        let many: Vec<&str> = vec!["true"; MAX_CONDITIONS + 1];
        assert_eq!(
            eval(&many).unwrap_err().to_string(),
            "matchConditions: Too many: 65: must have at most 64 items"
        );
        assert_eq!(eval(&vec!["true"; MAX_CONDITIONS]), Ok(true));
    }

    #[test]
    fn cache_compiles_once_per_version() {
        let cache = MatcherCache::default();
        let cfg = |rv: &str| json!({"metadata": {"uid": "u1", "resourceVersion": rv}, "webhooks": [hook(&["true"])]});
        let a = cache.get("v", &cfg("1"));
        let b = cache.get("v", &cfg("1"));
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.get("v", &cfg("2"));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(cache.len(), 1);
        cache.retain("v", &HashSet::new());
        assert!(cache.is_empty());
    }
}
