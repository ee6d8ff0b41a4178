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

// The serde form of a `Value` (dirty events, change logs, lazy writes carry values
// through MessagePack): exact for every variant. An externally tagged enum whose tag
// is the variant (`"null"`, `"i64"`, `"u64"`, `"decimal"`, …). Integers keep their
// sign and width; floats keep their width; decimals travel as their text (scale
// kept), dates and times as ISO 8601 text with every fractional digit, JSON as its
// text (serde_json prints floats so that they parse back to the same bits), bytes as
// a binary string. None of it depends on the features of chrono, rust_decimal or
// serde_json.

/// Bytes in serde's binary form (MessagePack `bin`), read back from a binary string
/// or a sequence of integers (what a text format gives).
struct WireBytes(Vec<u8>);

impl serde::Serialize for WireBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for WireBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = WireBytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<WireBytes, E> {
                Ok(WireBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<WireBytes, E> {
                Ok(WireBytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<WireBytes, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(WireBytes(out))
            }
        }
        d.deserialize_bytes(Visit)
    }
}

const DATE_FORMAT: &str = "%Y-%m-%d";
const DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.f";
const TIME_FORMAT: &str = "%H:%M:%S%.f";

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const NAME: &str = "Value";
        match self {
            Value::Null => s.serialize_unit_variant(NAME, 0, "null"),
            Value::Bool(v) => s.serialize_newtype_variant(NAME, 1, "bool", v),
            Value::I64(v) => s.serialize_newtype_variant(NAME, 2, "i64", v),
            Value::U64(v) => s.serialize_newtype_variant(NAME, 3, "u64", v),
            Value::F32(v) => s.serialize_newtype_variant(NAME, 4, "f32", v),
            Value::F64(v) => s.serialize_newtype_variant(NAME, 5, "f64", v),
            Value::Decimal(v) => s.serialize_newtype_variant(NAME, 6, "decimal", &v.to_string()),
            Value::String(v) => s.serialize_newtype_variant(NAME, 7, "string", v),
            Value::Bytes(v) => s.serialize_newtype_variant(NAME, 8, "bytes", &WireBytes(v.clone())),
            Value::Date(v) => {
                s.serialize_newtype_variant(NAME, 9, "date", &v.format(DATE_FORMAT).to_string())
            }
            Value::DateTime(v) => s.serialize_newtype_variant(
                NAME,
                10,
                "datetime",
                &v.format(DATETIME_FORMAT).to_string(),
            ),
            Value::Time(v) => {
                s.serialize_newtype_variant(NAME, 11, "time", &v.format(TIME_FORMAT).to_string())
            }
            Value::Json(v) => {
                let text = serde_json::to_string(v).map_err(serde::ser::Error::custom)?;
                s.serialize_newtype_variant(NAME, 12, "json", &text)
            }
        }
    }
}

/// What the serde form of a [`Value`] reads into, before the text forms are parsed.
#[derive(serde::Deserialize)]
enum WireValue {
    #[serde(rename = "null")]
    Null,
    #[serde(rename = "bool")]
    Bool(bool),
    #[serde(rename = "i64")]
    I64(i64),
    #[serde(rename = "u64")]
    U64(u64),
    #[serde(rename = "f32")]
    F32(f32),
    #[serde(rename = "f64")]
    F64(f64),
    #[serde(rename = "decimal")]
    Decimal(String),
    #[serde(rename = "string")]
    String(String),
    #[serde(rename = "bytes")]
    Bytes(WireBytes),
    #[serde(rename = "date")]
    Date(String),
    #[serde(rename = "datetime")]
    DateTime(String),
    #[serde(rename = "time")]
    Time(String),
    #[serde(rename = "json")]
    Json(String),
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let bad = |what: &str, text: &str, e: &dyn std::fmt::Display| {
            D::Error::custom(format!("invalid {what} `{text}`: {e}"))
        };
        Ok(match WireValue::deserialize(d)? {
            WireValue::Null => Value::Null,
            WireValue::Bool(v) => Value::Bool(v),
            WireValue::I64(v) => Value::I64(v),
            WireValue::U64(v) => Value::U64(v),
            WireValue::F32(v) => Value::F32(v),
            WireValue::F64(v) => Value::F64(v),
            WireValue::Decimal(t) => {
                Value::Decimal(Decimal::from_str_exact(&t).map_err(|e| bad("decimal", &t, &e))?)
            }
            WireValue::String(v) => Value::String(v),
            WireValue::Bytes(v) => Value::Bytes(v.0),
            WireValue::Date(t) => Value::Date(
                NaiveDate::parse_from_str(&t, DATE_FORMAT).map_err(|e| bad("date", &t, &e))?,
            ),
            WireValue::DateTime(t) => Value::DateTime(
                NaiveDateTime::parse_from_str(&t, DATETIME_FORMAT)
                    .map_err(|e| bad("date-time", &t, &e))?,
            ),
            WireValue::Time(t) => Value::Time(
                NaiveTime::parse_from_str(&t, TIME_FORMAT).map_err(|e| bad("time", &t, &e))?,
            ),
            WireValue::Json(t) => {
                Value::Json(serde_json::from_str(&t).map_err(|e| bad("JSON", &t, &e))?)
            }
        })
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

    /// One value of every variant, at the edges of its range.
    fn every_variant() -> Vec<Value> {
        let date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let late = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::I64(i64::MIN),
            Value::I64(-1),
            Value::I64(i64::MAX),
            Value::U64(u64::MAX),
            Value::U64(0),
            Value::F32(f32::MIN_POSITIVE),
            Value::F32(-3.402_823_5e38),
            Value::F64(0.1 + 0.2),
            Value::F64(f64::MAX),
            Value::F64(-0.0),
            Value::Decimal("79228162514264337593543950335".parse().unwrap()),
            Value::Decimal("-0.0000000000000000000000000001".parse().unwrap()),
            Value::Decimal("1.50".parse().unwrap()),
            Value::String(String::new()),
            Value::String("żółć 🐝 \0 \"'".into()),
            Value::Bytes(Vec::new()),
            Value::Bytes((0..=255).collect()),
            Value::Date(date),
            Value::Date(late),
            Value::DateTime(date.and_hms_nano_opt(0, 0, 0, 1).unwrap()),
            Value::DateTime(late.and_hms_micro_opt(23, 59, 59, 999_999).unwrap()),
            Value::DateTime(late.and_hms_opt(12, 0, 0).unwrap()),
            Value::Time(NaiveTime::from_hms_nano_opt(23, 59, 59, 123_456_789).unwrap()),
            Value::Time(NaiveTime::from_hms_opt(0, 0, 0).unwrap()),
            Value::Json(
                serde_json::json!({"a": [1, -2, 18446744073709551615u64, 0.1, null, "x"], "b": {}}),
            ),
        ]
    }

    /// Equal, and for floats and decimals bit for bit (scale included).
    fn assert_exact(a: &Value, b: &Value) {
        match (a, b) {
            (Value::F32(x), Value::F32(y)) => assert_eq!(x.to_bits(), y.to_bits()),
            (Value::F64(x), Value::F64(y)) => assert_eq!(x.to_bits(), y.to_bits()),
            (Value::Decimal(x), Value::Decimal(y)) => assert_eq!(x.serialize(), y.serialize()),
            _ => assert_eq!(a, b),
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn every_variant_round_trips_through_messagepack() {
        for v in every_variant() {
            let bytes = rmp_serde::to_vec_named(&v).unwrap();
            let back: Value = rmp_serde::from_slice(&bytes).unwrap();
            assert_exact(&v, &back);
            // Same variant: an i64 does not come back as a u64 or the reverse.
            assert_eq!(
                std::mem::discriminant(&v),
                std::mem::discriminant(&back),
                "{v:?}"
            );
        }
        // Bytes are one binary string, not an array of integers.
        let bytes = rmp_serde::to_vec_named(&Value::Bytes(vec![7; 100])).unwrap();
        assert!(bytes.len() < 120, "{}", bytes.len());
        let nan: Value =
            rmp_serde::from_slice(&rmp_serde::to_vec_named(&Value::F64(f64::NAN)).unwrap())
                .unwrap();
        assert!(matches!(nan, Value::F64(x) if x.is_nan()));
    }

    #[test]
    fn every_variant_round_trips_through_json() {
        for v in every_variant() {
            let text = serde_json::to_string(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_exact(&v, &back);
            assert_eq!(
                std::mem::discriminant(&v),
                std::mem::discriminant(&back),
                "{v:?}"
            );
        }
    }

    #[test]
    fn malformed_text_forms_are_errors() {
        for text in [
            r#"{"decimal":"1.2.3"}"#,
            r#"{"date":"2024-13-01"}"#,
            r#"{"datetime":"yesterday"}"#,
            r#"{"time":"25:00:00"}"#,
            r#"{"json":"{"}"#,
            r#"{"u64":-1}"#,
            r#"{"nope":1}"#,
        ] {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
        }
    }
}
