//! Kubernetes `resource.Quantity`: parsing (`500m`, `1.5Gi`, `1e3`, `-2k`), exact comparison,
//! arithmetic and the canonical string form Kubernetes prints.
//!
//! A quantity is kept as an exact decimal `unscaled × 10^-scale` with the same scale Kubernetes'
//! `inf.Dec` would have, because Kyverno's truncating division depends on it.

use std::cmp::Ordering;
use std::fmt;

/// How a quantity is written out; chosen by the suffix it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Powers of ten as exponents, e.g. `12e6`.
    DecimalExponent,
    /// Powers of 1024 as suffixes, e.g. `12Mi`.
    BinarySI,
    /// Powers of 1000 as suffixes, e.g. `12M` or `500m`.
    DecimalSI,
}

/// A Kubernetes resource quantity. Equality and ordering compare values only, never formats:
/// `1Ki == 1024`.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    /// The value is `unscaled * 10^-scale`.
    unscaled: i128,
    scale: i32,
    format: Format,
}

/// Scale of one nano unit, the finest precision a parsed quantity keeps.
const NANO_SCALE: i32 = 9;
/// Parsed binary quantities are capped at this magnitude, as Kubernetes does.
const MAX_BINARY_MAGNITUDE: i128 = i64::MAX as i128;

const DECIMAL_SUFFIXES: [(&str, i32); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];
const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

/// A quantity literal split into its parts, as Kubernetes' scanner does.
struct Literal<'a> {
    negative: bool,
    /// Integer digits without leading zeros (`"0"` when there are none).
    integer: &'a str,
    /// Fraction digits (possibly empty).
    fraction: &'a str,
    suffix: &'a str,
}

impl Quantity {
    /// Parses a quantity like Kubernetes' `resource.ParseQuantity`; `None` when it is not one.
    ///
    /// Values finer than a nano unit are rounded away from zero to one, binary (`Ki`..`Ei`)
    /// quantities are capped at 2^63-1.
    pub fn parse(s: &str) -> Option<Quantity> {
        if s.is_empty() {
            return None;
        }
        let literal = split_literal(s)?;
        let (base_is_two, exponent, format) = interpret_suffix(literal.suffix)?;
        let fraction_len = i32::try_from(literal.fraction.len()).ok()?;
        let digit_count = literal.integer.len() + literal.fraction.len();
        let mut digits = parse_digits(literal.integer, literal.fraction)?;
        if literal.negative {
            digits = -digits;
        }
        if base_is_two {
            let unscaled = digits.checked_mul(1i128 << exponent)?;
            let fits_int64_fast_path = literal.fraction.is_empty()
                // Kubernetes' estimate of the decimal digits a 2^exponent multiple needs.
                && literal.integer.len() as i64 + i64::from(exponent) * 3 / 10 <= 14
                && i64::try_from(unscaled).is_ok();
            let quantity = Quantity {
                unscaled,
                scale: fraction_len,
                format,
            };
            if fits_int64_fast_path {
                return Some(quantity);
            }
            return Some(quantity.round_up_to_nano().cap_binary());
        }
        let quantity = Quantity {
            unscaled: digits,
            scale: fraction_len.checked_sub(exponent)?,
            format,
        };
        let fits_int64_fast_path = digit_count <= 18 && quantity.scale <= NANO_SCALE;
        if fits_int64_fast_path {
            Some(quantity)
        } else {
            Some(quantity.round_up_to_nano())
        }
    }

    /// A quantity holding the integer `value`, written in `format`.
    pub fn from_integer(value: i128, format: Format) -> Quantity {
        Quantity {
            unscaled: value,
            scale: 0,
            format,
        }
    }

    /// The format this quantity is written in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the value is zero.
    pub fn is_zero(&self) -> bool {
        self.unscaled == 0
    }

    /// The value as a float, like Kubernetes' `AsApproximateFloat64`.
    pub fn to_f64(&self) -> f64 {
        let base = self.unscaled as f64;
        match self.scale {
            0 => base,
            scale if scale < 0 => base * 10f64.powi(-scale),
            scale => base * (1.0 / 10f64.powi(scale)),
        }
    }

    /// `self + other`, keeping `self`'s format unless `self` is zero (then `other`'s), as
    /// Kubernetes' `Quantity.Add`; `None` on overflow.
    pub fn checked_add(&self, other: &Quantity) -> Option<Quantity> {
        let (left, right, scale) = align(self, other)?;
        Some(Quantity {
            unscaled: left.checked_add(right)?,
            scale,
            format: self.format_for_sum_with(other),
        })
    }

    /// `self - other`, with the same format rule as [`Quantity::checked_add`]; `None` on overflow.
    pub fn checked_sub(&self, other: &Quantity) -> Option<Quantity> {
        let (left, right, scale) = align(self, other)?;
        Some(Quantity {
            unscaled: left.checked_sub(right)?,
            scale,
            format: self.format_for_sum_with(other),
        })
    }

    /// The exact product `self × factor`, in `self`'s format; `None` on overflow.
    pub fn checked_mul(&self, factor: &Quantity) -> Option<Quantity> {
        Some(Quantity {
            unscaled: self.unscaled.checked_mul(factor.unscaled)?,
            scale: self.scale.checked_add(factor.scale)?,
            format: self.format,
        })
    }

    /// `self ÷ divisor` truncated toward zero at the larger of both scales, in `self`'s format
    /// (Kyverno's quantity-by-scalar division); `None` when dividing by zero or on overflow.
    pub fn checked_div(&self, divisor: &Quantity) -> Option<Quantity> {
        if divisor.unscaled == 0 {
            return None;
        }
        let scale = self.scale.max(divisor.scale);
        // quotient × 10^-scale = (a × 10^-sa) / (b × 10^-sb)  =>  quotient = a × 10^(scale - sa + sb) / b
        let shift = scale.checked_sub(self.scale)?.checked_add(divisor.scale)?;
        let quotient = if shift >= 0 {
            self.unscaled.checked_mul(pow10(shift.unsigned_abs())?)? / divisor.unscaled
        } else {
            match pow10(shift.unsigned_abs()).and_then(|p| divisor.unscaled.checked_mul(p)) {
                Some(scaled_divisor) => self.unscaled / scaled_divisor,
                // the divisor exceeds any i128 dividend: the truncated quotient is zero
                None => 0,
            }
        };
        Some(Quantity {
            unscaled: quotient,
            scale,
            format: self.format,
        })
    }

    fn format_for_sum_with(&self, other: &Quantity) -> Format {
        if self.is_zero() {
            other.format
        } else {
            self.format
        }
    }

    /// Rounds away from zero to whole nano units (scale 9), as Kubernetes' parser does.
    fn round_up_to_nano(self) -> Quantity {
        if self.unscaled == 0 {
            return Quantity { scale: 0, ..self };
        }
        if self.scale > NANO_SCALE {
            let unscaled = match pow10((self.scale - NANO_SCALE).unsigned_abs()) {
                Some(divisor) => {
                    let truncated = self.unscaled / divisor;
                    if self.unscaled % divisor == 0 {
                        truncated
                    } else {
                        truncated + self.unscaled.signum()
                    }
                }
                None => self.unscaled.signum(),
            };
            return Quantity {
                unscaled,
                scale: NANO_SCALE,
                ..self
            };
        }
        // Kubernetes stores the rounded value at exactly nano scale; a value too large for
        // that in i128 keeps its coarser scale (same value, only division precision differs).
        pow10((NANO_SCALE - self.scale).unsigned_abs())
            .and_then(|factor| self.unscaled.checked_mul(factor))
            .map_or(self, |unscaled| Quantity {
                unscaled,
                scale: NANO_SCALE,
                ..self
            })
    }

    /// Caps the magnitude at 2^63-1 and writes values strictly between -1 and 1 as decimal,
    /// as Kubernetes does for binary quantities.
    fn cap_binary(self) -> Quantity {
        let mut quantity = self.clamp(
            Quantity::from_integer(-MAX_BINARY_MAGNITUDE, self.format),
            Quantity::from_integer(MAX_BINARY_MAGNITUDE, self.format),
        );
        let magnitude = Quantity {
            unscaled: quantity.unscaled.abs(),
            ..quantity
        };
        if !quantity.is_zero() && magnitude < Quantity::from_integer(1, quantity.format) {
            quantity.format = Format::DecimalSI;
        }
        quantity
    }

    /// The integer value if there is no fractional part.
    fn as_integer(&self) -> Option<i128> {
        if self.scale <= 0 {
            return self.unscaled.checked_mul(pow10(self.scale.unsigned_abs())?);
        }
        let divisor = pow10(self.scale.unsigned_abs())?;
        (self.unscaled % divisor == 0).then_some(self.unscaled / divisor)
    }
}

/// Splits `s` into sign, digits and suffix following Kubernetes' `parseQuantityString`.
fn split_literal(s: &str) -> Option<Literal<'_>> {
    let bytes = s.as_bytes();
    let mut position = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            position = 1;
            true
        }
        Some(b'+') => {
            position = 1;
            false
        }
        _ => false,
    };
    while bytes.get(position) == Some(&b'0') {
        position += 1;
    }
    let integer_start = position;
    position += count_digits(&bytes[position..]);
    let integer = match &s[integer_start..position] {
        "" => "0",
        digits => digits,
    };
    let mut fraction = "";
    if bytes.get(position) == Some(&b'.') {
        position += 1;
        let fraction_start = position;
        position += count_digits(&bytes[position..]);
        fraction = &s[fraction_start..position];
    }
    let suffix = &s[position..];
    let suffix_bytes = suffix.as_bytes();
    let mut suffix_position = suffix_bytes
        .iter()
        .take_while(|byte| b"eEinumkKMGTP".contains(byte))
        .count();
    if matches!(suffix_bytes.get(suffix_position), Some(b'-' | b'+')) {
        suffix_position += 1;
    }
    suffix_position += count_digits(&suffix_bytes[suffix_position..]);
    (suffix_position == suffix_bytes.len()).then_some(Literal {
        negative,
        integer,
        fraction,
        suffix,
    })
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count()
}

/// `(base is 2, exponent, format)` for a suffix, as Kubernetes' `suffixHandler.interpret`.
fn interpret_suffix(suffix: &str) -> Option<(bool, i32, Format)> {
    if let Some(&(_, exponent)) = DECIMAL_SUFFIXES.iter().find(|(name, _)| *name == suffix) {
        return Some((false, exponent, Format::DecimalSI));
    }
    if let Some(index) = BINARY_SUFFIXES[1..].iter().position(|name| *name == suffix) {
        let exponent = i32::try_from((index + 1) * 10).ok()?;
        return Some((true, exponent, Format::BinarySI));
    }
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .filter(|rest| !rest.is_empty())?;
    Some((false, exponent.parse().ok()?, Format::DecimalExponent))
}

/// The integer written by `integer` followed by `fraction` (trailing fraction zeros count).
fn parse_digits(integer: &str, fraction: &str) -> Option<i128> {
    integer
        .bytes()
        .chain(fraction.bytes())
        .try_fold(0i128, |value, digit| {
            value.checked_mul(10)?.checked_add(i128::from(digit - b'0'))
        })
}

fn pow10(exponent: u32) -> Option<i128> {
    10i128.checked_pow(exponent)
}

/// Both unscaled values brought to the larger scale, with that scale.
fn align(left: &Quantity, right: &Quantity) -> Option<(i128, i128, i32)> {
    let scale = left.scale.max(right.scale);
    let rescale = |quantity: &Quantity| {
        pow10(scale.checked_sub(quantity.scale)?.unsigned_abs())
            .and_then(|factor| quantity.unscaled.checked_mul(factor))
    };
    Some((rescale(left)?, rescale(right)?, scale))
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Quantity) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Quantity) -> Ordering {
        let by_sign = self.unscaled.signum().cmp(&other.unscaled.signum());
        if by_sign != Ordering::Equal || self.unscaled == 0 {
            return by_sign;
        }
        match align(self, other) {
            Some((left, right, _)) => left.cmp(&right),
            // Rescaling overflowed: the operand with the smaller scale has the larger
            // magnitude, and both have the same sign.
            None => {
                let larger_magnitude = if self.scale < other.scale {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
                if self.unscaled > 0 {
                    larger_magnitude
                } else {
                    larger_magnitude.reverse()
                }
            }
        }
    }
}

impl fmt::Display for Quantity {
    /// The canonical form Kubernetes prints (`Quantity.String()`), e.g. `1536Mi`, `500m`, `1k`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        if self.format == Format::BinarySI {
            let integer = self
                .as_integer()
                .filter(|value| value.unsigned_abs() >= 1024);
            if let Some(value) = integer {
                return write_base1024(f, value);
            }
        }
        write_base10(f, self.unscaled, -i64::from(self.scale), self.format)
    }
}

fn write_base1024(f: &mut fmt::Formatter<'_>, value: i128) -> fmt::Result {
    let mut mantissa = value;
    let mut power = 0;
    while power + 1 < BINARY_SUFFIXES.len()
        && mantissa % 1024 == 0
        && mantissa.unsigned_abs() >= 1024
    {
        mantissa /= 1024;
        power += 1;
    }
    write!(f, "{mantissa}{}", BINARY_SUFFIXES[power])
}

/// Writes `mantissa × 10^exponent` with an exponent that is a multiple of three.
fn write_base10(
    f: &mut fmt::Formatter<'_>,
    mantissa: i128,
    exponent: i64,
    format: Format,
) -> fmt::Result {
    let mut mantissa = mantissa;
    let mut exponent = exponent;
    while mantissa % 10 == 0 && mantissa.unsigned_abs() >= 10 {
        mantissa /= 10;
        exponent += 1;
    }
    let excess = exponent.rem_euclid(3);
    if let Some(shifted) = pow10(excess.unsigned_abs() as u32).and_then(|p| mantissa.checked_mul(p))
    {
        mantissa = shifted;
        exponent -= excess;
    }
    let decimal_suffix = DECIMAL_SUFFIXES
        .iter()
        .find(|(_, suffix_exponent)| i64::from(*suffix_exponent) == exponent)
        .map(|(name, _)| *name);
    match (format, decimal_suffix) {
        (Format::DecimalSI | Format::BinarySI, Some(suffix)) => write!(f, "{mantissa}{suffix}"),
        (_, _) if exponent == 0 => write!(f, "{mantissa}"),
        _ => write!(f, "{mantissa}e{exponent}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|| panic!("{s:?} should parse"))
    }

    #[test]
    fn canonical_forms_match_kubernetes() {
        // (input, canonical String()) from Kubernetes' quantity tests.
        let cases = [
            ("0", "0"),
            ("0n", "0"),
            ("0Ki", "0"),
            ("1", "1"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("100m", "100m"),
            ("0.1", "100m"),
            (".5", "500m"),
            ("1.", "1"),
            ("1.5", "1500m"),
            ("1.5Gi", "1536Mi"),
            ("1024", "1024"),
            ("1Ki", "1Ki"),
            ("1024Ki", "1Mi"),
            ("1536Ki", "1536Ki"),
            ("0.5Ki", "512"),
            ("1023Mi", "1023Mi"),
            ("1e3", "1e3"),
            ("1E3", "1e3"),
            ("1e-3", "1e-3"),
            ("1.5e3", "1500"),
            ("100e-3", "100e-3"),
            ("1e+3", "1e3"),
            ("1E", "1E"),
            ("1000E", "1e21"),
            ("12345", "12345"),
            ("5Gi", "5Gi"),
            ("1n", "1n"),
            ("1.1n", "2n"),
            ("0.0000000001", "1n"),
            ("-0.0000000001", "-1n"),
            ("-1", "-1"),
            ("-1.5Gi", "-1536Mi"),
            ("+2k", "2k"),
            ("1.5k", "1500"),
            ("2M", "2M"),
            ("1000000u", "1"),
            ("7Ei", "7Ei"),
            ("8Ei", "9223372036854775807"),
            ("16Ei", "9223372036854775807"),
            ("1.1Ki", "1126400m"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                q(input).to_string(),
                expected,
                "canonical form of {input:?}"
            );
        }
    }

    #[test]
    fn rejects_what_kubernetes_rejects() {
        for input in [
            "", "a", "1K", "1Kii", "1e", "1m5", "1.2.3", " 1", "1 ", "1-3", "1e3.5", "1ki", "i",
            "-x",
        ] {
            assert!(
                Quantity::parse(input).is_none(),
                "{input:?} should not parse"
            );
        }
    }

    #[test]
    fn suffix_or_sign_alone_is_zero_like_kubernetes() {
        for input in ["Ki", "m", "E", ".", "-", "+", "e5"] {
            assert!(q(input).is_zero(), "{input:?} should parse as zero");
        }
    }

    #[test]
    fn comparison_is_exact_across_suffixes() {
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1k"), q("1000"));
        assert_eq!(q("500m"), q("0.5"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(q("1Gi") > q("1G"));
        assert!(q("999m") < q("1"));
        assert!(q("-1") < q("1n"));
        assert!(q("-2") < q("-1"));
        assert!(q("1e30") > q("1E"));
        assert!(q("-1e30") < q("-1E"));
        assert_eq!(q("100m"), q("0.1"));
        assert!(q("128Mi") <= q("1Gi"));
        assert!(q("2Gi") > q("1Gi"));
    }

    #[test]
    fn arithmetic() {
        let sum = q("1Gi").checked_add(&q("512Mi")).map(|sum| sum.to_string());
        assert_eq!(sum.as_deref(), Some("1536Mi"));
        let sum = q("100m").checked_add(&q("1")).map(|sum| sum.to_string());
        assert_eq!(sum.as_deref(), Some("1100m"));
        let difference = q("1").checked_sub(&q("250m")).map(|d| d.to_string());
        assert_eq!(difference.as_deref(), Some("750m"));
        // adding to zero takes the other operand's format
        let sum = q("0").checked_add(&q("1Ki")).map(|sum| sum.to_string());
        assert_eq!(sum.as_deref(), Some("1Ki"));
        let product = q("1Gi").checked_mul(&q("1.5")).map(|p| p.to_string());
        assert_eq!(product.as_deref(), Some("1536Mi"));
        let product = q("250m").checked_mul(&q("3")).map(|p| p.to_string());
        assert_eq!(product.as_deref(), Some("750m"));
        // truncating division keeps the dividend's scale (500m has scale 3)
        let quotient = q("500m").checked_div(&q("3")).map(|p| p.to_string());
        assert_eq!(quotient.as_deref(), Some("166m"));
        let quotient = q("10").checked_div(&q("3")).map(|p| p.to_string());
        assert_eq!(quotient.as_deref(), Some("3"));
        let quotient = q("10").checked_div(&q("0.3")).map(|p| p.to_string());
        assert_eq!(quotient.as_deref(), Some("33300m"));
        assert!(q("1").checked_div(&q("0")).is_none());
    }

    #[test]
    fn approximate_float() {
        assert_eq!(q("500m").to_f64(), 0.5);
        assert_eq!(q("1Ki").to_f64(), 1024.0);
        assert_eq!(q("2k").to_f64(), 2000.0);
    }

    #[test]
    fn format_follows_suffix() {
        assert_eq!(q("1Mi").format(), Format::BinarySI);
        assert_eq!(q("1M").format(), Format::DecimalSI);
        assert_eq!(q("1e6").format(), Format::DecimalExponent);
        assert_eq!(
            Quantity::from_integer(2048, Format::BinarySI).to_string(),
            "2Ki"
        );
    }
}
