//! [`Value`]: one SQL parameter or one cell of a result row, the same for every dialect.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;

/// A database value: a statement parameter or a cell of a row.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer (every integer type but `u64`/`usize`).
    I64(i64),
    /// An unsigned 64-bit integer.
    U64(u64),
    /// A 4-byte float.
    F32(f32),
    /// An 8-byte float.
    F64(f64),
    /// An exact decimal.
    Decimal(Decimal),
    /// Text.
    String(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A calendar date.
    Date(NaiveDate),
    /// A date and time (UTC by convention).
    DateTime(NaiveDateTime),
    /// A time of day.
    Time(NaiveTime),
    /// A JSON document.
    Json(serde_json::Value),
}

impl Value {
    /// The value as text, when it is text (or bytes holding UTF-8).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, when it is an integer (or text holding one).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::I64(v) => Some(*v),
            Value::U64(v) => i64::try_from(*v).ok(),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::String(_) | Value::Bytes(_) => self.as_str()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as a non-negative integer, if it is one (a row's ID).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(v) => Some(*v),
            Value::I64(v) => u64::try_from(*v).ok(),
            Value::String(_) | Value::Bytes(_) => self.as_str()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::I64(i64::from(v)) }
        }
    )*};
}
from_signed!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::U64(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::U64(v as u64)
    }
}

impl From<isize> for Value {
    fn from(v: isize) -> Self {
        Value::I64(v as i64)
    }
}

macro_rules! from_variant {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$v(v) }
        }
    )*};
}
from_variant!(bool => Bool, f32 => F32, f64 => F64, Decimal => Decimal, String => String,
    Vec<u8> => Bytes, NaiveDate => Date, NaiveDateTime => DateTime, NaiveTime => Time,
    serde_json::Value => Json);

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::DateTime(v.naive_utc())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A number printed without touching the heap: `Display` of an `f64` or a `Decimal`
/// into a fixed buffer. Used where every row pays for it (range checks, SQLite binds).
pub(crate) struct NumText {
    buf: [u8; NumText::CAP],
    len: usize,
}

impl NumText {
    /// More than any column can hold: a decimal has at most 65 digits (MySQL) and
    /// 1000 (PostgreSQL, whose `numeric(P,S)` caps P at 1000; ours at 255).
    const CAP: usize = 300;

    /// `v` printed with `Display`; `None` when the text is longer than the buffer
    /// (an `f64` such as `1e300` prints all its digits).
    pub(crate) fn of(v: impl std::fmt::Display) -> Option<NumText> {
        use std::fmt::Write;
        let mut t = NumText {
            buf: [0; NumText::CAP],
            len: 0,
        };
        write!(t, "{v}").ok()?;
        Some(t)
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in, so the bytes are UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    /// Digits of a plain decimal text (`-0012.3400` → 2 before the point, 2 after,
    /// 4 significant): leading zeros of the integer part and trailing zeros of the
    /// fraction do not count.
    pub(crate) fn digits(&self) -> Digits {
        let s = self.as_str().trim_start_matches(['-', '+']);
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let significant = if int.is_empty() {
            frac.trim_start_matches('0').len()
        } else {
            int.len() + frac.len()
        };
        Digits {
            integer: int.len(),
            fraction: frac.len(),
            significant,
        }
    }
}

impl std::fmt::Write for NumText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Digits {
    /// The digits of a decimal, from its mantissa and scale (no formatting).
    pub(crate) fn of_decimal(d: &Decimal) -> Digits {
        let n = d.normalize();
        let scale = n.scale() as usize;
        let m = n.mantissa().unsigned_abs();
        let total = if m == 0 { 0 } else { m.ilog10() as usize + 1 };
        Digits {
            integer: total.saturating_sub(scale),
            fraction: scale,
            significant: total,
        }
    }
}

/// How many digits a decimal number has (see [`NumText::digits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digits {
    /// Before the point, leading zeros excluded.
    pub integer: usize,
    /// After the point, trailing zeros excluded.
    pub fraction: usize,
    /// Significant digits (an upper bound for integers with trailing zeros).
    pub significant: usize,
}

/// Significant decimal digits an `f64` always keeps: a decimal with at most this many
/// survives the trip to `f64` and back (shortest form) unchanged.
pub(crate) const F64_EXACT_DIGITS: usize = 15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_of_every_width_compare_equal() {
        assert_eq!(Value::from(10i32), Value::from(10i64));
        assert_eq!(Value::from(10u8), Value::I64(10));
        assert_eq!(Value::from(None::<i32>), Value::Null);
        assert_eq!(Value::from("a"), Value::String("a".into()));
    }

    #[test]
    fn digits_ignore_signs_and_padding_zeros() {
        let d = |v: &str| NumText::of(v).unwrap().digits();
        assert_eq!(
            d("-0012.3400"),
            Digits {
                integer: 2,
                fraction: 2,
                significant: 4
            }
        );
        assert_eq!(d("0.00012").significant, 2);
        assert_eq!(d("0.00012").fraction, 5);
        assert_eq!(d("100").integer, 3);
        assert!(NumText::of(1e300f64).is_none());
        assert_eq!(NumText::of(0.1f64 + 0.2).unwrap().digits().fraction, 17);
        for text in [
            "-0012.3400",
            "0.00012",
            "100",
            "0",
            "99999999.99",
            "-0.000001",
        ] {
            let d: Decimal = text.parse().unwrap();
            assert_eq!(
                Digits::of_decimal(&d),
                NumText::of(d).unwrap().digits(),
                "{text}"
            );
        }
    }

    #[test]
    fn text_integers_parse() {
        assert_eq!(Value::Bytes(b" 42".to_vec()).as_i64(), Some(42));
        assert_eq!(Value::F64(1.0).as_i64(), None);
    }
}
