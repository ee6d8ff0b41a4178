//! Field value ↔ [`Value`]: how each Rust type is written to and read from a column.
//!
//! Readers are lenient about the *representation* a driver returns (MySQL's binary
//! protocol sends typed integers, its text protocol and SQLite send text for decimals
//! and dates) and strict about the *value*: an out-of-range integer, an unknown enum
//! value or malformed JSON is an error naming what was found, never a silent default.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::Decimal;

use super::types::FieldType;
use crate::Value;

/// What a value is, in words (`"text"`, `"an integer"`, …), for error messages.
pub fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Bool(_) => "a boolean",
        Value::I64(_) | Value::U64(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::Decimal(_) => "a decimal",
        Value::String(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Date(_) => "a date",
        Value::DateTime(_) => "a date-time",
        Value::Time(_) => "a time",
        Value::Json(_) => "JSON",
    }
}

pub(crate) fn unexpected(v: &Value, wanted: &str) -> String {
    format!("expected {wanted}, found {}", value_kind(v))
}

fn text(v: Value, wanted: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s),
        Value::Bytes(b) => String::from_utf8(b)
            .map_err(|_| format!("expected {wanted}, found bytes that are not UTF-8")),
        other => Err(unexpected(&other, wanted)),
    }
}

/// Any integer representation as i128, so every target width can range-check.
pub(crate) fn integer(v: Value) -> Result<i128, String> {
    match v {
        Value::I64(i) => Ok(i.into()),
        Value::U64(u) => Ok(u.into()),
        Value::Bool(b) => Ok(b.into()),
        Value::String(_) | Value::Bytes(_) => {
            let s = text(v, "an integer")?;
            s.trim()
                .parse()
                .map_err(|_| format!("expected an integer, found `{s}`"))
        }
        Value::Decimal(d) if d.fract().is_zero() => d
            .to_string()
            .parse()
            .map_err(|_| "integer out of range".into()),
        other => Err(unexpected(&other, "an integer")),
    }
}

pub(crate) fn float(v: Value) -> Result<f64, String> {
    match v {
        Value::F64(f) => Ok(f),
        Value::F32(f) => Ok(f.into()),
        Value::I64(i) => Ok(i as f64),
        Value::U64(u) => Ok(u as f64),
        Value::Decimal(d) => d
            .to_string()
            .parse()
            .map_err(|_| "decimal out of range".into()),
        Value::String(_) | Value::Bytes(_) => {
            let s = text(v, "a number")?;
            s.trim()
                .parse()
                .map_err(|_| format!("expected a number, found `{s}`"))
        }
        other => Err(unexpected(&other, "a number")),
    }
}

pub(crate) fn decimal(v: Value) -> Result<Decimal, String> {
    match v {
        Value::Decimal(d) => Ok(d),
        Value::I64(i) => Ok(i.into()),
        Value::U64(u) => Ok(u.into()),
        // Through the shortest text that reads back as the same float: 12.5, not
        // 12.4999999999999999.
        Value::F64(f) => f
            .to_string()
            .parse()
            .map_err(|_| format!("{f} is not a decimal")),
        Value::F32(f) => f
            .to_string()
            .parse()
            .map_err(|_| format!("{f} is not a decimal")),
        Value::String(_) | Value::Bytes(_) => {
            let s = text(v, "a decimal")?;
            s.trim()
                .parse()
                .map_err(|_| format!("expected a decimal, found `{s}`"))
        }
        other => Err(unexpected(&other, "a decimal")),
    }
}

pub(crate) fn string(v: Value) -> Result<String, String> {
    match v {
        Value::I64(i) => Ok(i.to_string()),
        Value::U64(u) => Ok(u.to_string()),
        other => text(other, "text"),
    }
}

pub(crate) fn bytes(v: Value) -> Result<Vec<u8>, String> {
    match v {
        Value::Bytes(b) => Ok(b),
        Value::String(s) => Ok(s.into_bytes()),
        other => Err(unexpected(&other, "bytes")),
    }
}

pub(crate) fn date(v: Value) -> Result<NaiveDate, String> {
    match v {
        Value::Date(d) => Ok(d),
        Value::DateTime(d) => Ok(d.date()),
        Value::String(_) | Value::Bytes(_) => {
            let s = text(v, "a date")?;
            NaiveDate::parse_from_str(s.get(..10).unwrap_or(&s), "%Y-%m-%d")
                .map_err(|_| format!("expected a date, found `{s}`"))
        }
        other => Err(unexpected(&other, "a date")),
    }
}

pub(crate) fn date_time(v: Value) -> Result<NaiveDateTime, String> {
    match v {
        Value::DateTime(d) => Ok(d),
        Value::Date(d) => Ok(d.and_time(NaiveTime::MIN)),
        Value::String(_) | Value::Bytes(_) => {
            let s = text(v, "a date-time")?;
            NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f"))
                .or_else(|_| {
                    NaiveDate::parse_from_str(&s, "%Y-%m-%d").map(|d| d.and_time(NaiveTime::MIN))
                })
                .map_err(|_| format!("expected a date-time, found `{s}`"))
        }
        other => Err(unexpected(&other, "a date-time")),
    }
}

pub(crate) fn time(v: Value) -> Result<NaiveTime, String> {
    match v {
        Value::Time(t) => Ok(t),
        Value::String(_) | Value::Bytes(_) => {
            let s = text(v, "a time")?;
            NaiveTime::parse_from_str(&s, "%H:%M:%S%.f")
                .map_err(|_| format!("expected a time, found `{s}`"))
        }
        other => Err(unexpected(&other, "a time")),
    }
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
    match v {
        Value::Json(j) => {
            serde_json::from_value(j).map_err(|e| format!("JSON does not fit the field: {e}"))
        }
        other => {
            let s = text(other, "JSON")?;
            serde_json::from_str(&s).map_err(|e| format!("JSON does not fit the field: {e}"))
        }
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Value {
    // Serialising plain data into a String cannot fail; a failing custom `Serialize`
    // is stored as JSON null rather than panicking.
    Value::String(serde_json::to_string(v).unwrap_or_else(|_| "null".into()))
}

/// How a field is written to and read from its column. The derive picks the codec:
/// [`NativeCodec`] (the type's [`FieldType`]), [`JsonCodec`] / [`NullableJsonCodec`]
/// (`#[orm(json)]`) or [`SetCodec`] (`#[orm(set = "...")]`).
pub trait Codec<T> {
    /// The column value of `v`.
    fn encode(v: &T) -> Value;
    /// The field value of a column value.
    fn decode(v: Value) -> Result<T, String>;
}

/// The codec of types that implement [`FieldType`].
#[derive(Debug)]
pub struct NativeCodec;

impl<T: FieldType> Codec<T> for NativeCodec {
    #[inline]
    fn encode(v: &T) -> Value {
        v.to_value()
    }
    #[inline]
    fn decode(v: Value) -> Result<T, String> {
        T::from_value(v)
    }
}

/// `#[orm(json)]` on a non-`Option` field.
#[derive(Debug)]
pub struct JsonCodec;

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for JsonCodec {
    fn encode(v: &T) -> Value {
        to_json(v)
    }
    fn decode(v: Value) -> Result<T, String> {
        if v.is_null() {
            return Err("found NULL in a NOT NULL JSON column".into());
        }
        json(v)
    }
}

/// `#[orm(json)]` on an `Option<T>` field: `None` is SQL NULL.
#[derive(Debug)]
pub struct NullableJsonCodec;

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<Option<T>> for NullableJsonCodec {
    fn encode(v: &Option<T>) -> Value {
        v.as_ref().map_or(Value::Null, to_json)
    }
    fn decode(v: Value) -> Result<Option<T>, String> {
        if v.is_null() {
            return Ok(None);
        }
        json(v).map(Some)
    }
}

/// `#[orm(set = "...")]` on `Vec<String>` (or `Option<Vec<String>>`): a comma-separated set.
#[derive(Debug)]
pub struct SetCodec;

pub(crate) fn set_to_value(values: &[impl AsRef<str>]) -> Value {
    Value::String(
        values
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(","),
    )
}

pub(crate) fn set_items(v: Value) -> Result<Vec<String>, String> {
    let s = text(v, "a set")?;
    Ok(if s.is_empty() {
        Vec::new()
    } else {
        s.split(',').map(str::to_string).collect()
    })
}

impl Codec<Vec<String>> for SetCodec {
    fn encode(v: &Vec<String>) -> Value {
        set_to_value(v)
    }
    fn decode(v: Value) -> Result<Vec<String>, String> {
        set_items(v)
    }
}

impl Codec<Option<Vec<String>>> for SetCodec {
    fn encode(v: &Option<Vec<String>>) -> Value {
        v.as_ref().map_or(Value::Null, |v| set_to_value(v))
    }
    fn decode(v: Value) -> Result<Option<Vec<String>>, String> {
        if v.is_null() {
            return Ok(None);
        }
        set_items(v).map(Some)
    }
}

/// A column value that does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The field path (`address.street`).
    pub field: String,
    /// What was wrong.
    pub reason: String,
}

/// Why [`Entity::set_field`](crate::Entity::set_field) refused a value; the field is
/// left as it was. [`Tracked::set_field`](crate::Tracked::set_field) turns it into
/// [`Error::UnknownField`](crate::Error::UnknownField) or
/// [`Error::WrongFieldType`](crate::Error::WrongFieldType), naming the entity and
/// the field: a write-side mistake of the caller, not a row that failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetFieldError {
    /// No stored, non-embedded field of that name (the primary key, `ignore`d and
    /// embedded fields cannot be set by name).
    UnknownField,
    /// The value does not convert to the field's type.
    WrongType {
        /// The field's Rust type, as written (`Option<u8>`).
        expected: &'static str,
        /// What the value was ([`value_kind`]: `text`, `an integer`, …).
        given: &'static str,
        /// Why it does not convert (wrong kind, out of range, …).
        reason: String,
    },
}

impl DecodeError {
    /// An error for `field`.
    pub fn new(field: &str, reason: String) -> Self {
        DecodeError {
            field: field.to_string(),
            reason,
        }
    }

    /// The same error seen from the struct holding the embedded field `outer`.
    pub fn within(mut self, outer: &str) -> Self {
        self.field = format!("{outer}.{}", self.field);
        self
    }
}
