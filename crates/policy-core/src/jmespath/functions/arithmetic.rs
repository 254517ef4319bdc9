//! Kyverno's arithmetic over plain numbers, Kubernetes quantities (`'12Ki'`) and Go durations
//! (`'1h30m'`). Numbers must be JSON numbers (`` `12` ``); a string like `'12'` is a quantity.

use super::{Arg, ArgType, FunctionSpec, integer, number, required, value};
use crate::duration::{format_duration, parse_duration};
use crate::gofmt;
use crate::jmespath::error::JmesPathError;
use crate::jmespath::value::{self as values};
use crate::quantity::Quantity;
use chrono::TimeDelta;
use serde_json::Value;

const ANY: &[ArgType] = &[ArgType::Any];
const NUMBER: &[ArgType] = &[ArgType::Number];

pub(super) const FUNCTIONS: &[FunctionSpec] = &[
    FunctionSpec {
        name: "add",
        args: &[required(ANY), required(ANY)],
        returns: ANY,
        note: "does arithmetic addition of two specified values of numbers, quantities, and durations",
        handler: |args, _| {
            let (left, right) = operands("add", args)?;
            add(left, right, "add")
        },
    },
    FunctionSpec {
        name: "sum",
        args: &[required(&[ArgType::Array])],
        returns: ANY,
        note: "does arithmetic addition of specified array of values of numbers, quantities, and durations",
        handler: |args, _| {
            let items = value(args, 0).as_array().map_or(&[][..], Vec::as_slice);
            let Some((first, rest)) = items.split_first() else {
                return Err(JmesPathError::in_function(
                    "sum",
                    "at least one element in the array is required",
                ));
            };
            let mut total = first.clone();
            for item in rest {
                let (left, right) = resolve_pair("sum", &total, item)?;
                total = add(left, right, "sum")?;
            }
            Ok(total)
        },
    },
    FunctionSpec {
        name: "subtract",
        args: &[required(ANY), required(ANY)],
        returns: ANY,
        note: "does arithmetic subtraction of two specified values of numbers, quantities, and durations",
        handler: |args, _| {
            let (left, right) = operands("subtract", args)?;
            subtract(left, right)
        },
    },
    FunctionSpec {
        name: "multiply",
        args: &[required(ANY), required(ANY)],
        returns: ANY,
        note: "does arithmetic multiplication of two specified values of numbers, quantities, and durations",
        handler: |args, _| {
            let (left, right) = operands("multiply", args)?;
            multiply(left, right)
        },
    },
    FunctionSpec {
        name: "divide",
        args: &[required(ANY), required(ANY)],
        returns: ANY,
        note: "divisor must be non zero",
        handler: |args, _| {
            let (left, right) = operands("divide", args)?;
            divide(left, right)
        },
    },
    FunctionSpec {
        name: "modulo",
        args: &[required(ANY), required(ANY)],
        returns: ANY,
        note: "divisor must be non-zero, arguments must be integers",
        handler: |args, _| {
            let (left, right) = operands("modulo", args)?;
            modulo(left, right)
        },
    },
    FunctionSpec {
        name: "round",
        args: &[required(NUMBER), required(NUMBER)],
        returns: NUMBER,
        note: "does roundoff to upto the given decimal places",
        handler: |args, _| {
            let subject = number("round", args, 0)?;
            let places = integer(number("round", args, 1)?).map_err(|_| {
                JmesPathError::in_function("round", "Non-integer argument(s) passed for round off")
            })?;
            if places < 0 {
                // Upstream formats this message without its arguments, hence Go's placeholders.
                return Err(JmesPathError::in_function(
                    "round",
                    "%!d(MISSING) argument is out of bounds (%!d(MISSING))",
                ));
            }
            let shift = 10f64.powi(i32::try_from(places).unwrap_or(i32::MAX));
            Ok(values::number((subject * shift).round() / shift))
        },
    },
];

/// One side of an arithmetic function.
#[derive(Debug, Clone, Copy)]
enum Operand {
    Scalar(f64),
    Quantity(Quantity),
    Duration(TimeDelta),
}

/// What an argument can be read as: a number is a scalar, a string may be a quantity, a
/// duration or (like `1m` or `0`) both.
struct Candidate {
    scalar: Option<f64>,
    quantity: Option<Quantity>,
    duration: Option<TimeDelta>,
}

impl Candidate {
    fn parse(function: &str, value: &Value) -> Result<Candidate, JmesPathError> {
        let candidate = match value {
            Value::Number(n) => Candidate {
                scalar: n.as_f64(),
                quantity: None,
                duration: None,
            },
            Value::String(s) => Candidate {
                scalar: None,
                quantity: Quantity::parse(s),
                duration: parse_duration(s),
            },
            _ => Candidate {
                scalar: None,
                quantity: None,
                duration: None,
            },
        };
        if candidate.scalar.is_none()
            && candidate.quantity.is_none()
            && candidate.duration.is_none()
        {
            return Err(JmesPathError::in_function(function, "invalid operand"));
        }
        Ok(candidate)
    }

    fn only_duration(&self) -> bool {
        self.duration.is_some() && self.quantity.is_none()
    }

    /// The operand, reading an ambiguous string as a duration when the other side is one.
    fn resolve(&self, duration_context: bool) -> Operand {
        match (self.scalar, self.quantity, self.duration) {
            (Some(scalar), _, _) => Operand::Scalar(scalar),
            (None, Some(quantity), Some(duration)) => {
                if duration_context {
                    Operand::Duration(duration)
                } else {
                    Operand::Quantity(quantity)
                }
            }
            (None, Some(quantity), None) => Operand::Quantity(quantity),
            (None, None, Some(duration)) => Operand::Duration(duration),
            (None, None, None) => Operand::Scalar(0.0),
        }
    }
}

fn operands(function: &str, args: &[Arg<'_>]) -> Result<(Operand, Operand), JmesPathError> {
    resolve_pair(function, value(args, 0), value(args, 1))
}

fn resolve_pair(
    function: &str,
    left: &Value,
    right: &Value,
) -> Result<(Operand, Operand), JmesPathError> {
    let left = Candidate::parse(function, left)?;
    let right = Candidate::parse(function, right)?;
    let duration_context = left.only_duration() || right.only_duration();
    Ok((
        left.resolve(duration_context),
        right.resolve(duration_context),
    ))
}

fn mismatch(function: &str) -> JmesPathError {
    JmesPathError::in_function(function, "Types mismatch")
}

fn zero_divisor(function: &str) -> JmesPathError {
    JmesPathError::in_function(function, "Zero divisor passed")
}

fn non_integer_modulo() -> JmesPathError {
    JmesPathError::in_function("modulo", "Non-integer argument(s) passed for modulo")
}

fn overflow(function: &str) -> JmesPathError {
    JmesPathError::in_function(function, "result out of range")
}

fn add(left: Operand, right: Operand, function: &str) -> Result<Value, JmesPathError> {
    match (left, right) {
        (Operand::Quantity(l), Operand::Quantity(r)) => l
            .checked_add(&r)
            .map(|sum| Value::String(sum.to_string()))
            .ok_or_else(|| overflow(function)),
        (Operand::Duration(l), Operand::Duration(r)) => l
            .checked_add(&r)
            .map(|sum| Value::String(format_duration(sum)))
            .ok_or_else(|| overflow(function)),
        (Operand::Scalar(l), Operand::Scalar(r)) => Ok(values::number(l + r)),
        _ => Err(mismatch(function)),
    }
}

fn subtract(left: Operand, right: Operand) -> Result<Value, JmesPathError> {
    match (left, right) {
        (Operand::Quantity(l), Operand::Quantity(r)) => l
            .checked_sub(&r)
            .map(|difference| Value::String(difference.to_string()))
            .ok_or_else(|| overflow("subtract")),
        (Operand::Duration(l), Operand::Duration(r)) => l
            .checked_sub(&r)
            .map(|difference| Value::String(format_duration(difference)))
            .ok_or_else(|| overflow("subtract")),
        (Operand::Scalar(l), Operand::Scalar(r)) => Ok(values::number(l - r)),
        _ => Err(mismatch("subtract")),
    }
}

fn multiply(left: Operand, right: Operand) -> Result<Value, JmesPathError> {
    match (left, right) {
        (Operand::Scalar(l), Operand::Scalar(r)) => Ok(values::number(l * r)),
        (Operand::Quantity(quantity), Operand::Scalar(factor))
        | (Operand::Scalar(factor), Operand::Quantity(quantity)) => {
            let factor = scalar_quantity(factor)?;
            quantity
                .checked_mul(&factor)
                .map(|product| Value::String(product.to_string()))
                .ok_or_else(|| overflow("multiply"))
        }
        (Operand::Duration(duration), Operand::Scalar(factor))
        | (Operand::Scalar(factor), Operand::Duration(duration)) => Ok(Value::String(
            format_duration(scale_duration(duration, factor)),
        )),
        _ => Err(mismatch("multiply")),
    }
}

fn divide(left: Operand, right: Operand) -> Result<Value, JmesPathError> {
    match (left, right) {
        (Operand::Quantity(l), Operand::Quantity(r)) => {
            let divisor = r.to_f64();
            if divisor == 0.0 {
                return Err(zero_divisor("divide"));
            }
            Ok(values::number(l.to_f64() / divisor))
        }
        (Operand::Quantity(quantity), Operand::Scalar(divisor)) => {
            if divisor == 0.0 {
                return Err(zero_divisor("divide"));
            }
            let divisor = scalar_quantity(divisor)?;
            quantity
                .checked_div(&divisor)
                .map(|quotient| Value::String(quotient.to_string()))
                .ok_or_else(|| zero_divisor("divide"))
        }
        (Operand::Duration(l), Operand::Duration(r)) => {
            let divisor = seconds(r);
            if divisor == 0.0 {
                return Err(zero_divisor("divide"));
            }
            Ok(values::number(seconds(l) / divisor))
        }
        (Operand::Duration(duration), Operand::Scalar(divisor)) => {
            if divisor == 0.0 {
                return Err(zero_divisor("divide"));
            }
            Ok(Value::String(format_duration(scale_duration(
                duration,
                1.0 / divisor,
            ))))
        }
        (Operand::Scalar(l), Operand::Scalar(r)) => {
            if r == 0.0 {
                return Err(zero_divisor("divide"));
            }
            Ok(values::number(l / r))
        }
        _ => Err(mismatch("divide")),
    }
}

fn modulo(left: Operand, right: Operand) -> Result<Value, JmesPathError> {
    match (left, right) {
        (Operand::Quantity(l), Operand::Quantity(r)) => {
            let (dividend, divisor) = integers(l.to_f64(), r.to_f64())?;
            Ok(Value::String(
                Quantity::from_integer(i128::from(dividend % divisor), l.format()).to_string(),
            ))
        }
        (Operand::Duration(l), Operand::Duration(r)) => {
            let divisor = nanoseconds(r);
            if divisor == 0 {
                return Err(zero_divisor("modulo"));
            }
            Ok(Value::String(format_duration(TimeDelta::nanoseconds(
                nanoseconds(l) % divisor,
            ))))
        }
        (Operand::Scalar(l), Operand::Scalar(r)) => {
            let (dividend, divisor) = integers(l, r)?;
            Ok(values::number((dividend % divisor) as f64))
        }
        _ => Err(mismatch("modulo")),
    }
}

/// Both floats as integers, checking them as upstream does (`int64` conversion, then non-zero
/// divisor).
fn integers(dividend: f64, divisor: f64) -> Result<(i64, i64), JmesPathError> {
    let (left, right) = (dividend as i64, divisor as i64);
    if left as f64 != dividend || right as f64 != divisor {
        return Err(non_integer_modulo());
    }
    if right == 0 {
        return Err(zero_divisor("modulo"));
    }
    Ok((left, right))
}

/// A scalar as a quantity, parsed from Go's `%v` rendering as upstream does.
fn scalar_quantity(scalar: f64) -> Result<Quantity, JmesPathError> {
    let text = gofmt::format_float(scalar);
    // Only non-finite scalars fail; upstream passes Kubernetes' parse error through unprefixed.
    Quantity::parse(&text).ok_or_else(|| {
        JmesPathError::Function(
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                .to_owned(),
        )
    })
}

fn nanoseconds(duration: TimeDelta) -> i64 {
    duration.num_nanoseconds().unwrap_or(i64::MAX)
}

/// Go's `Duration.Seconds()`.
fn seconds(duration: TimeDelta) -> f64 {
    nanoseconds(duration) as f64 / 1e9
}

/// `duration × factor` through float seconds, as upstream computes it.
fn scale_duration(duration: TimeDelta, factor: f64) -> TimeDelta {
    // Saturating float-to-int conversion, where Go's would be undefined.
    TimeDelta::nanoseconds((seconds(duration) * factor * 1e9) as i64)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{eval, fails};
    use serde_json::json;

    #[test]
    fn add_same_kinds_only() {
        assert_eq!(eval("add(`12`, `13`)"), json!(25));
        assert_eq!(eval("add('12Ki', '13Ki')"), json!("25Ki"));
        assert_eq!(eval("add('12Ki', '13')"), json!("12301"));
        assert_eq!(eval("add('12s', '13s')"), json!("25s"));
        assert_eq!(eval("add('1h', '1m')"), json!("1h1m0s"));
        for mismatched in [
            "add('12', '13s')",
            "add(`12`, '13Ki')",
            "add(`12`, '13')",
            "add('12Ki', '13s')",
            "add('12Ki', `13`)",
            "add('12s', `13`)",
            "add('12s', '13Ki')",
        ] {
            assert_eq!(fails(mismatched), "JMESPath function 'add': Types mismatch");
        }
        assert_eq!(
            fails("add('abc', `1`)"),
            "JMESPath function 'add': invalid operand"
        );
    }

    #[test]
    fn sum_folds_addition() {
        assert_eq!(eval("sum([`12`, `13`, `1`, `4`])"), json!(30));
        assert_eq!(eval("sum(['12Ki', '13Ki', '1Ki', '4Ki'])"), json!("30Ki"));
        assert_eq!(eval("sum(['12s', '13s', '1s', '4s'])"), json!("30s"));
        assert_eq!(eval("sum(['12Ki'])"), json!("12Ki"));
        assert_eq!(
            fails("sum(`[]`)"),
            "JMESPath function 'sum': at least one element in the array is required"
        );
        assert_eq!(
            fails("sum(['12Ki', `13`])"),
            "JMESPath function 'sum': Types mismatch"
        );
    }

    #[test]
    fn subtract_same_kinds_only() {
        assert_eq!(eval("subtract(`12`, `13`)"), json!(-1));
        assert_eq!(eval("subtract('12Ki', '13Ki')"), json!("-1Ki"));
        assert_eq!(eval("subtract('12Ki', '13')"), json!("12275"));
        assert_eq!(eval("subtract('12s', '13s')"), json!("-1s"));
        assert_eq!(
            fails("subtract('12s', `13`)"),
            "JMESPath function 'subtract': Types mismatch"
        );
    }

    #[test]
    fn multiply_scales_quantities_and_durations() {
        assert_eq!(eval("multiply('12Ki', `2`)"), json!("24Ki"));
        assert_eq!(eval("multiply('12s', `2`)"), json!("24s"));
        assert_eq!(eval("multiply(`2.5`, `2.5`)"), json!(6.25));
        assert_eq!(eval("multiply(`2.5`, '12Ki')"), json!("30Ki"));
        assert_eq!(eval("multiply(`2.5`, '12')"), json!("30"));
        assert_eq!(eval("multiply(`2.5`, '40s')"), json!("1m40s"));
        for mismatched in [
            "multiply('12Ki', '12Ki')",
            "multiply('12Ki', '12s')",
            "multiply('12s', '12s')",
        ] {
            assert_eq!(
                fails(mismatched),
                "JMESPath function 'multiply': Types mismatch"
            );
        }
    }

    #[test]
    fn divide_by_kind() {
        assert_eq!(eval("divide('512M', '256M')"), json!(2));
        assert_eq!(eval("divide('8', '3')"), json!(8.0 / 3.0));
        assert_eq!(eval("divide('12Ki', `3`)"), json!("4Ki"));
        assert_eq!(eval("divide('12Ki', '200')"), json!(61.44));
        assert_eq!(eval("divide('12s', `3`)"), json!("4s"));
        assert_eq!(eval("divide('12s', '5s')"), json!(2.4));
        assert_eq!(eval("divide(`14`, `3`)"), json!(4.666666666666667));
        assert_eq!(
            fails("divide('12Ki', '2s')"),
            "JMESPath function 'divide': Types mismatch"
        );
        for zero in [
            "divide(`14`, `0`)",
            "divide('4Ki', `0`)",
            "divide('4Ki', '0Ki')",
            "divide('4', '0')",
            "divide('4s', `0`)",
            "divide('4s', '0s')",
        ] {
            assert_eq!(
                fails(zero),
                "JMESPath function 'divide': Zero divisor passed"
            );
        }
    }

    #[test]
    fn modulo_requires_integers() {
        assert_eq!(eval("modulo('12Ki', '5Ki')"), json!("2Ki"));
        assert_eq!(eval("modulo('13s', '2s')"), json!("1s"));
        assert_eq!(eval("modulo(`13`, `5`)"), json!(3));
        assert_eq!(
            fails("modulo('12Ki', `13`)"),
            "JMESPath function 'modulo': Types mismatch"
        );
        for zero in [
            "modulo(`14`, `0`)",
            "modulo('4', '0')",
            "modulo('4s', '0s')",
        ] {
            assert_eq!(
                fails(zero),
                "JMESPath function 'modulo': Zero divisor passed"
            );
        }
        for fractional in ["modulo('4', '1.5')", "modulo(`14.5`, `2`)"] {
            assert_eq!(
                fails(fractional),
                "JMESPath function 'modulo': Non-integer argument(s) passed for modulo"
            );
        }
    }

    #[test]
    fn round_to_decimal_places() {
        assert_eq!(eval("round(`10.123456`, `2`)"), json!(10.12));
        assert_eq!(eval("round(`10.5`, `0`)"), json!(11));
        assert_eq!(
            fails("round(`10.5`, `1.5`)"),
            "JMESPath function 'round': Non-integer argument(s) passed for round off"
        );
        assert!(fails("round(`10.5`, `-1`)").contains("out of bounds"));
        assert!(fails("round('10.5', `1`)").contains("invalid type"));
    }
}
