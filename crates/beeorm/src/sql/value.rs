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
    fn text_integers_parse() {
        assert_eq!(Value::Bytes(b" 42".to_vec()).as_i64(), Some(42));
        assert_eq!(Value::F64(1.0).as_i64(), None);
    }
}
