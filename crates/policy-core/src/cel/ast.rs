//! Walking and adjusting parsed CEL expressions.
//!
//! `cel.bind(name, init, body)` (cel-go's bindings extension) is expanded into the
//! comprehension cel-go makes of it, and `string(x)` calls go to `types::string_of` (which
//! converts booleans as cel-go does).
//!
//! The `cel` crate's optional field selection (`a.?b`) fails when the field is missing instead
//! of producing `optional.none()`, and a plain selection after it (`a.?b.c`) does not stay
//! optional as CEL specifies. Compiled expressions therefore have their optional selections
//! rewritten into calls of [`optional_select`], which implements the specified behaviour; the
//! rest of a chain after a `.?` or `[?]` becomes optional too. `x.orValue(d)` calls become calls
//! of [`super::extra::OR_VALUE`] with the receiver as first argument, so that an optional
//! selection there is read in place ([`select_in_place`]) instead of being copied out of the
//! interpreter first.
//!
//! Typed object construction (`Object{spec: Object.spec{replicas: 1}}`, as MutatingPolicy
//! apply configurations write it) is not implemented by the `cel` crate either; since the
//! objects built here are JSON documents, it is rewritten into a map literal with the same
//! fields.
use std::sync::Arc;

use kube_cel::cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, ListExpr, LiteralValue, MapEntryExpr, MapExpr,
    operators,
};
use kube_cel::cel::common::traits::Indexer;
use kube_cel::cel::common::types::{CelBool, CelMap, CelNull, CelOptional, CelString};
use kube_cel::cel::common::value::Val;
use kube_cel::cel::objects::OptionalValue;
use kube_cel::cel::{Context, ExecutionError, FunctionContext, IdedExpr, ResolveResult, Value};

/// The function name optional selections are rewritten to.
pub(super) const OPTIONAL_SELECT: &str = "@optional_select";

/// Pushes the direct sub-expressions of `expr` onto `out`.
pub(super) fn children<'a>(expr: &'a IdedExpr, out: &mut Vec<&'a IdedExpr>) {
    match &expr.expr {
        Expr::Select(select) => out.push(&select.operand),
        Expr::Call(call) => {
            out.extend(call.target.as_deref());
            out.extend(call.args.iter());
        }
        Expr::List(list) => out.extend(list.elements.iter()),
        Expr::Map(map) => map
            .entries
            .iter()
            .for_each(|entry| entry_children(&entry.expr, out)),
        Expr::Struct(structure) => structure
            .entries
            .iter()
            .for_each(|entry| entry_children(&entry.expr, out)),
        Expr::Comprehension(c) => {
            out.extend([
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]);
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

fn entry_children<'a>(entry: &'a EntryExpr, out: &mut Vec<&'a IdedExpr>) {
    match entry {
        EntryExpr::MapEntry(e) => out.extend([&e.key, &e.value]),
        EntryExpr::StructField(f) => out.push(&f.value),
    }
}

/// Rewrites every optional selection of `expr` (see the module documentation).
pub(super) fn rewrite_optional_selects(expr: &mut IdedExpr) {
    rewrite(expr);
}

/// Rewrites `expr` and tells whether its value is optional (an optional selection or index, or
/// a selection or index on one).
fn rewrite(expr: &mut IdedExpr) -> bool {
    match &mut expr.expr {
        Expr::Select(select) if !select.test => {
            if rewrite(&mut select.operand) {
                let operand = std::mem::take(&mut *select.operand);
                let field = std::mem::take(&mut select.field);
                expr.expr = optional_select_call(operand, field);
                true
            } else {
                false
            }
        }
        Expr::Call(call) if call.func_name == operators::OPT_SELECT && call.args.len() == 2 => {
            call.func_name = OPTIONAL_SELECT.to_string();
            if let Some(operand) = call.args.first_mut() {
                rewrite(operand);
            }
            true
        }
        Expr::Call(call)
            if call.func_name == operators::OPT_INDEX || call.func_name == operators::INDEX =>
        {
            let optional_index = call.func_name == operators::OPT_INDEX;
            let mut optional_operand = false;
            for (position, arg) in call.args.iter_mut().enumerate() {
                let optional = rewrite(arg);
                if position == 0 {
                    optional_operand = optional;
                }
            }
            optional_index || optional_operand
        }
        Expr::Call(call)
            if call.func_name == "orValue" && call.target.is_some() && call.args.len() == 1 =>
        {
            if let Some(receiver) = call.target.take() {
                call.args.insert(0, *receiver);
            }
            call.func_name = super::extra::OR_VALUE.to_string();
            visit_children_mut(expr);
            false
        }
        Expr::Call(call)
            if call.func_name == "string" && call.target.is_none() && call.args.len() == 1 =>
        {
            call.func_name = super::types::STRING.to_string();
            visit_children_mut(expr);
            false
        }
        Expr::Call(call) if is_cel_bind(call) => {
            let mut args = std::mem::take(&mut call.args).into_iter();
            let (Some(variable), Some(init), Some(body)) = (args.next(), args.next(), args.next())
            else {
                return false;
            };
            let Expr::Ident(name) = variable.expr else {
                return false;
            };
            expr.expr = bind_comprehension(variable.id, name, init, body);
            visit_children_mut(expr);
            false
        }
        Expr::Struct(structure) => {
            let entries = std::mem::take(&mut structure.entries)
                .into_iter()
                .map(|mut entry| {
                    if let EntryExpr::StructField(field) = entry.expr {
                        let key = IdedExpr {
                            id: entry.id,
                            expr: Expr::Literal(LiteralValue::String(field.field.into())),
                        };
                        entry.expr = EntryExpr::MapEntry(MapEntryExpr {
                            key,
                            value: field.value,
                            optional: field.optional,
                        });
                    }
                    entry
                })
                .collect();
            expr.expr = Expr::Map(MapExpr { entries });
            visit_children_mut(expr);
            false
        }
        _ => {
            visit_children_mut(expr);
            false
        }
    }
}

fn visit_children_mut(expr: &mut IdedExpr) {
    match &mut expr.expr {
        Expr::Select(select) => {
            rewrite(&mut select.operand);
        }
        Expr::Call(call) => {
            if let Some(target) = call.target.as_deref_mut() {
                rewrite(target);
            }
            call.args.iter_mut().for_each(|arg| {
                rewrite(arg);
            });
        }
        Expr::List(list) => list.elements.iter_mut().for_each(|e| {
            rewrite(e);
        }),
        Expr::Map(map) => map
            .entries
            .iter_mut()
            .for_each(|entry| rewrite_entry(&mut entry.expr)),
        Expr::Struct(structure) => structure
            .entries
            .iter_mut()
            .for_each(|entry| rewrite_entry(&mut entry.expr)),
        Expr::Comprehension(c) => {
            for part in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                rewrite(part);
            }
        }
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

fn rewrite_entry(entry: &mut EntryExpr) {
    match entry {
        EntryExpr::MapEntry(e) => {
            rewrite(&mut e.key);
            rewrite(&mut e.value);
        }
        EntryExpr::StructField(f) => {
            rewrite(&mut f.value);
        }
    }
}

/// Whether `call` is the `cel.bind(name, init, body)` macro.
fn is_cel_bind(call: &CallExpr) -> bool {
    call.func_name == "bind"
        && call.args.len() == 3
        && matches!(call.args.first().map(|a| &a.expr), Some(Expr::Ident(_)))
        && matches!(call.target.as_deref().map(|t| &t.expr), Some(Expr::Ident(t)) if t == "cel")
}

/// `cel.bind(name, init, body)` as cel-go expands it: a comprehension over nothing whose
/// accumulator `name` holds `init` while `body` is evaluated.
fn bind_comprehension(id: u64, name: String, init: IdedExpr, body: IdedExpr) -> Expr {
    let node = |expr| IdedExpr { id, expr };
    Expr::Comprehension(Box::new(ComprehensionExpr {
        iter_range: node(Expr::List(ListExpr::default())),
        iter_var: "#unused".to_string(),
        iter_var2: None,
        accu_var: name.clone(),
        accu_init: init,
        loop_cond: node(Expr::Literal(LiteralValue::Boolean(false.into()))),
        loop_step: node(Expr::Ident(name)),
        result: body,
    }))
}

fn optional_select_call(operand: IdedExpr, field: String) -> Expr {
    let field = IdedExpr {
        id: operand.id,
        expr: Expr::Literal(LiteralValue::String(field.into())),
    };
    Expr::Call(CallExpr {
        func_name: OPTIONAL_SELECT.to_string(),
        target: None,
        args: vec![operand, field],
    })
}

/// `operand.?field`: `optional.none()` when the operand is none or a map without the field,
/// else the field's value as an optional.
pub(super) fn optional_select(ftx: &FunctionContext) -> ResolveResult {
    Ok(match select_in_place(ftx.args, ftx.ptx)? {
        Some(value) => Value::Opaque(Arc::new(OptionalValue::of(value))),
        None => none(),
    })
}

/// The value of the optional selection whose arguments (operand and field name) are `args`,
/// `None` for `optional.none()`.
///
/// The operand is not passed as a function argument, which would copy all of it out of the
/// interpreter at every call: the selection is read in place. The chain of selections the
/// operand is made of (`object.spec.?initContainers`,
/// `container.?securityContext.?capabilities.?drop`: one call per optional field) is followed
/// from its root variable without copying, so that only the value finally selected is copied.
/// Each step behaves as the interpreter (plain selections) or [`optional_select`] would.
pub(super) fn select_in_place(
    args: &[IdedExpr],
    scope: &Context<'_>,
) -> Result<Option<Value>, ExecutionError> {
    let malformed =
        || ExecutionError::function_error("_?._", "expects an operand and a field name");
    let [first, field] = args else {
        return Err(malformed());
    };
    let Expr::Literal(LiteralValue::String(field)) = &field.expr else {
        return Err(malformed());
    };
    // From the outermost selection to the one next to the root.
    let mut steps = vec![Step::Optional(field)];
    let mut operand = first;
    loop {
        match &operand.expr {
            Expr::Call(call) if call.func_name == OPTIONAL_SELECT && call.target.is_none() => {
                let [inner, field] = call.args.as_slice() else {
                    return Err(malformed());
                };
                let Expr::Literal(LiteralValue::String(field)) = &field.expr else {
                    return Err(malformed());
                };
                steps.push(Step::Optional(field));
                operand = inner;
            }
            Expr::Select(select) if !select.test => {
                steps.push(Step::Plain(select.field.as_str().into()));
                operand = &select.operand;
            }
            _ => break,
        }
    }
    steps.reverse();
    let root = Value::resolve_val(operand, scope)?;
    follow(root.as_ref(), &steps, true)
}

/// One selection of a chain.
enum Step<'e> {
    /// `.?field`, or a selection after one.
    Optional(&'e CelString),
    /// `.field`.
    Plain(CelString),
}

/// Applies `steps` to `value`. `unwrap` tells whether an optional `value` is unwrapped by an
/// optional step: one the chain starts from or a plain selection gave, not the value of an
/// optional step (which the step's own call would have wrapped and the next one unwrapped).
fn follow(
    value: &dyn Val,
    steps: &[Step<'_>],
    unwrap: bool,
) -> Result<Option<Value>, ExecutionError> {
    let Some((step, rest)) = steps.split_first() else {
        return Value::try_from(value).map(Some);
    };
    match step {
        Step::Optional(field) => {
            let value = match value.downcast_ref::<CelOptional>().filter(|_| unwrap) {
                Some(optional) => match optional.inner() {
                    Some(inner) => inner,
                    None => return Ok(None),
                },
                None => value,
            };
            if value.downcast_ref::<CelNull>().is_some() {
                return Ok(None);
            }
            let Some(map) = value.downcast_ref::<CelMap>() else {
                return Err(ExecutionError::NoSuchOverload);
            };
            match map.get(*field) {
                Ok(selected) => follow(selected.as_ref(), rest, false),
                Err(_) => Ok(None),
            }
        }
        // As the interpreter selects: a missing field is an error, and a selection on anything
        // but a map gives `false`.
        Step::Plain(field) => match value.downcast_ref::<CelMap>() {
            Some(map) => follow(map.get(field)?.as_ref(), rest, true),
            None => follow(&CelBool::from(false), rest, true),
        },
    }
}

fn none() -> Value {
    Value::Opaque(Arc::new(OptionalValue::none()))
}
