//! The bytes of a cached row (D7; issue 12, item 5).
//!
//! An entity cache (Redis, another process's local cache) keeps a row longer than the
//! binary that wrote it lives, so the bytes must say which encoding they are in, be
//! small, give back exactly the values the database gave, and refuse — never
//! misread — anything they cannot decode exactly: another version, a truncated write,
//! corrupt bytes. A refused row is a cache miss upstream, never a wrong entity.
//!
//! A cached row is what the loaders get from the database: `Vec<Value>`, the ID first,
//! then the columns in schema order. Its bytes are:
//!
//! ```text
//! [CODEC_VERSION] [postcard sequence: varint count, then one tagged value per column]
//! ```
//!
//! postcard was chosen by measurement (`bench/benches/codec.rs`, figures in
//! `bench/RESULTS.md`): it has a documented, stable wire format (varints, no schema in
//! the bytes), unlike bitcode (format free to change between versions) or bincode
//! (unmaintained). The serde mapping below is written by hand rather than derived so
//! that encoding borrows every string, byte string and JSON document of the row (no
//! copy, no intermediate enum) and decoding builds `Value`s directly, checking each
//! one.
//!
//! Each value is a varint tag (the position of its name in [`TAGS`]) and a payload:
//!
//! | tag | value | payload |
//! |---|---|---|
//! | 0 | `Null` | none |
//! | 1 | `Bool` | one byte, 0 or 1 |
//! | 2 | `I64` | zigzag varint |
//! | 3 | `U64` | varint |
//! | 4 | `F32` | the 4 bytes of `to_bits`, little-endian (NaN payloads and -0.0 kept) |
//! | 5 | `F64` | the 8 bytes of `to_bits`, little-endian |
//! | 6 | `Decimal` | varint magnitude (< 2^96), then one byte: scale (≤ 28) + 0x80 if negative (-0 kept) |
//! | 7 | `String` | varint length, UTF-8 bytes |
//! | 8 | `Bytes` | varint length, bytes |
//! | 9 | `Date` | zigzag varint: chrono's `num_days_from_ce` (0001-01-01 is day 1) |
//! | 10 | `DateTime` | date as above, varint seconds from midnight, varint nanoseconds (≥ 1e9 in a leap second) |
//! | 11 | `Time` | varint seconds from midnight, varint nanoseconds |
//! | 12 | `Json` | a JSON node: varint tag (position in [`JSON_TAGS`]) and payload, arrays and objects with a varint count |
//!
//! JSON is stored as a tree, not as its text: serde_json (without its
//! `float_roundtrip` feature, which beeorm does not turn on) parses the shortest text
//! of about 30% of `f64` values back one unit in the last place off, so a document
//! written as text would not come back equal. Numbers keep their kind (`1` stays an
//! unsigned integer, `1.0` a float); nesting deeper than [`MAX_JSON_DEPTH`] is refused
//! when decoding, as serde_json refuses it when parsing.
//!
//! Compatibility: tags are only ever appended. Any change to what existing bytes mean
//! bumps [`CODEC_VERSION`], which is also part of every table's cache signature
//! (`TableSchema::cache_signature`), so keys written by an older build are never read.

// The entity cache that stores these bytes comes next (issue 12); until then only the
// tests and the benchmark (`bench/benches/codec.rs` compiles this file) call in.
#![cfg_attr(not(test), allow(dead_code))]

use std::cell::Cell;
use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rust_decimal::Decimal;
use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, SerializeTupleVariant};
use serde::{Deserializer, Serialize, Serializer};

use crate::Value;

/// The encoding version: the first byte of every encoded row.
pub(crate) const CODEC_VERSION: u8 = 1;

/// Deepest nesting of JSON arrays and objects a row may hold: what serde_json parses
/// from text (its recursion limit refuses a 128th level), so every document a loader
/// can produce fits.
pub(crate) const MAX_JSON_DEPTH: usize = 127;

/// Names of the value tags; a tag is its name's position. Append only.
const TAGS: &[&str] = &[
    "Null", "Bool", "I64", "U64", "F32", "F64", "Decimal", "String", "Bytes", "Date", "DateTime",
    "Time", "Json",
];

/// Names of the JSON node tags; a tag is its name's position. Append only.
const JSON_TAGS: &[&str] = &[
    "Null", "Bool", "U64", "I64", "F64", "String", "Array", "Object",
];

/// Why bytes are not a row of this encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodecError {
    /// No bytes at all: not even the version.
    #[error("cached row is empty")]
    Empty,
    /// Bytes of another encoding version.
    #[error("cached row has encoding version {found}; this build reads version {CODEC_VERSION}")]
    Version {
        /// The first byte.
        found: u8,
    },
    /// The count of values is missing or malformed.
    #[error("cached row is malformed: {0}")]
    Header(String),
    /// A value is truncated, malformed or out of range.
    #[error("cached row is malformed at value {index}: {reason}")]
    Value {
        /// Position of the value in the row (0 is the ID).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes follow the last value.
    #[error("cached row has {extra} bytes after its last value")]
    Trailing {
        /// How many.
        extra: usize,
    },
}

/// Appends the encoding of `row` (the ID, then the columns in schema order) to `out`.
pub(crate) fn encode_row(row: &[Value], out: &mut Vec<u8>) {
    let start = out.len();
    out.push(CODEC_VERSION);
    if postcard::serialize_with_flavor(&WireRow(row), VecTail(out)).is_err() {
        // Unreachable: the flavor cannot fail and every value above writes only what
        // postcard accepts (sequences and maps with their length known). Should it
        // ever fail, the row's bytes are taken back rather than left half-written.
        out.truncate(start);
    }
}

/// Decodes bytes written by [`encode_row`]; anything else is an error, never a panic
/// and never a different row.
pub(crate) fn decode_row(bytes: &[u8]) -> Result<Vec<Value>, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION {
        return Err(CodecError::Version { found: version });
    }
    let diag = Diag::default();
    let mut de = postcard::Deserializer::from_bytes(body);
    let row = RowSeed(&diag)
        .deserialize(&mut de)
        .map_err(|e| diag.error(&e))?;
    let rest = de
        .finalize()
        .map_err(|e| CodecError::Header(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing { extra: rest.len() });
    }
    Ok(row)
}

/// A postcard output that appends to a borrowed `Vec`.
struct VecTail<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for VecTail<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A row as serde sees it: a sequence of tagged values. Format-neutral, so the
/// benchmark can write the same mapping as JSON.
pub(crate) struct WireRow<'a>(pub(crate) &'a [Value]);

impl Serialize for WireRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&Wire(v))?;
        }
        seq.end()
    }
}

/// One value: a variant of `Value`, its name in [`TAGS`].
struct Wire<'a>(&'a Value);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const N: &str = "Value";
        match self.0 {
            Value::Null => s.serialize_unit_variant(N, 0, TAGS[0]),
            Value::Bool(v) => s.serialize_newtype_variant(N, 1, TAGS[1], v),
            Value::I64(v) => s.serialize_newtype_variant(N, 2, TAGS[2], v),
            Value::U64(v) => s.serialize_newtype_variant(N, 3, TAGS[3], v),
            Value::F32(v) => s.serialize_newtype_variant(N, 4, TAGS[4], v),
            Value::F64(v) => s.serialize_newtype_variant(N, 5, TAGS[5], v),
            Value::Decimal(d) => {
                let mut t = s.serialize_tuple_variant(N, 6, TAGS[6], 2)?;
                t.serialize_field(&d.mantissa().unsigned_abs())?;
                // The scale is at most 28, so it and the sign share one byte.
                let flags = (d.scale() as u8) | if d.is_sign_negative() { 0x80 } else { 0 };
                t.serialize_field(&flags)?;
                t.end()
            }
            Value::String(v) => s.serialize_newtype_variant(N, 7, TAGS[7], v.as_str()),
            Value::Bytes(v) => s.serialize_newtype_variant(N, 8, TAGS[8], &RawBytes(v)),
            Value::Date(d) => s.serialize_newtype_variant(N, 9, TAGS[9], &d.num_days_from_ce()),
            Value::DateTime(dt) => {
                let mut t = s.serialize_tuple_variant(N, 10, TAGS[10], 3)?;
                t.serialize_field(&dt.date().num_days_from_ce())?;
                t.serialize_field(&dt.time().num_seconds_from_midnight())?;
                t.serialize_field(&dt.time().nanosecond())?;
                t.end()
            }
            Value::Time(tm) => {
                let mut t = s.serialize_tuple_variant(N, 11, TAGS[11], 2)?;
                t.serialize_field(&tm.num_seconds_from_midnight())?;
                t.serialize_field(&tm.nanosecond())?;
                t.end()
            }
            Value::Json(j) => s.serialize_newtype_variant(N, 12, TAGS[12], &JsonNode(j)),
        }
    }
}

/// Bytes written as one length-prefixed run (a `&[u8]` alone would be a sequence of
/// numbers).
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// One JSON node, its name in [`JSON_TAGS`].
struct JsonNode<'a>(&'a serde_json::Value);

impl Serialize for JsonNode<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde_json::Value as J;
        const N: &str = "Json";
        match self.0 {
            J::Null => s.serialize_unit_variant(N, 0, JSON_TAGS[0]),
            J::Bool(b) => s.serialize_newtype_variant(N, 1, JSON_TAGS[1], b),
            J::Number(n) => {
                if let Some(u) = n.as_u64() {
                    s.serialize_newtype_variant(N, 2, JSON_TAGS[2], &u)
                } else if let Some(i) = n.as_i64() {
                    s.serialize_newtype_variant(N, 3, JSON_TAGS[3], &i)
                } else {
                    // Every other number is a finite f64; NaN, which no JSON number
                    // holds, would be refused when decoding.
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    s.serialize_newtype_variant(N, 4, JSON_TAGS[4], &f)
                }
            }
            J::String(v) => s.serialize_newtype_variant(N, 5, JSON_TAGS[5], v.as_str()),
            J::Array(items) => s.serialize_newtype_variant(N, 6, JSON_TAGS[6], &JsonArray(items)),
            J::Object(map) => s.serialize_newtype_variant(N, 7, JSON_TAGS[7], &JsonObject(map)),
        }
    }
}

struct JsonArray<'a>(&'a [serde_json::Value]);

impl Serialize for JsonArray<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for v in self.0 {
            seq.serialize_element(&JsonNode(v))?;
        }
        seq.end()
    }
}

struct JsonObject<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl Serialize for JsonObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k.as_str(), &JsonNode(v))?;
        }
        map.end()
    }
}

/// Where decoding stopped and, when a check of ours failed, why. postcard keeps no
/// message of a serde error, so the reasons are kept here.
#[derive(Default)]
pub(crate) struct Diag {
    /// Position of the value being decoded.
    index: Cell<Option<usize>>,
    /// Our reason, when a check of ours failed.
    reason: Cell<Option<&'static str>>,
}

impl Diag {
    /// Records `reason` and returns it as the format's error.
    fn fail<E: de::Error>(&self, reason: &'static str) -> E {
        self.reason.set(Some(reason));
        E::custom(reason)
    }

    /// The error to report for `e`, the format's error.
    pub(crate) fn error(&self, e: &impl fmt::Display) -> CodecError {
        let reason = self
            .reason
            .get()
            .map_or_else(|| e.to_string(), str::to_string);
        match self.index.get() {
            Some(index) => CodecError::Value { index, reason },
            None => CodecError::Header(reason),
        }
    }
}

/// Decodes a row: the sequence [`WireRow`] writes.
pub(crate) struct RowSeed<'d>(pub(crate) &'d Diag);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Value>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        // postcard gives no hint when the count exceeds the bytes left.
        let mut row = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            self.0.index.set(Some(row.len()));
            match seq.next_element_seed(ValueSeed(self.0))? {
                Some(v) => row.push(v),
                None => return Ok(row),
            }
        }
    }
}

/// Decodes one value.
struct ValueSeed<'d>(&'d Diag);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_enum("Value", TAGS, self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tagged value")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let diag = self.0;
        let fail = |reason| diag.fail::<A::Error>(reason);
        let (tag, v) = data.variant_seed(TagSeed { names: TAGS, diag })?;
        Ok(match tag {
            0 => {
                v.unit_variant()?;
                Value::Null
            }
            1 => Value::Bool(v.newtype_variant()?),
            2 => Value::I64(v.newtype_variant()?),
            3 => Value::U64(v.newtype_variant()?),
            4 => Value::F32(v.newtype_variant()?),
            5 => Value::F64(v.newtype_variant()?),
            6 => {
                let (magnitude, flags): (u128, u8) = v.tuple_variant(2, PairVisitor::new())?;
                Value::Decimal(
                    decimal(magnitude, flags).ok_or_else(|| {
                        fail("decimal magnitude at or above 2^96 or scale above 28")
                    })?,
                )
            }
            7 => Value::String(v.newtype_variant()?),
            8 => Value::Bytes(v.newtype_variant_seed(BytesSeed)?),
            9 => {
                let days: i32 = v.newtype_variant()?;
                Value::Date(
                    NaiveDate::from_num_days_from_ce_opt(days)
                        .ok_or_else(|| fail("date out of range"))?,
                )
            }
            10 => {
                let (days, secs, nanos): (i32, u32, u32) =
                    v.tuple_variant(3, TripleVisitor::new())?;
                let date = NaiveDate::from_num_days_from_ce_opt(days)
                    .ok_or_else(|| fail("date out of range"))?;
                let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
                    .ok_or_else(|| fail("time of day out of range"))?;
                Value::DateTime(NaiveDateTime::new(date, time))
            }
            11 => {
                let (secs, nanos): (u32, u32) = v.tuple_variant(2, PairVisitor::new())?;
                Value::Time(
                    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)
                        .ok_or_else(|| fail("time of day out of range"))?,
                )
            }
            12 => Value::Json(v.newtype_variant_seed(JsonSeed { depth: 0, diag })?),
            _ => return Err(fail("unknown value tag")),
        })
    }
}

/// The decimal of a magnitude and a flags byte (scale, sign in bit 7).
fn decimal(magnitude: u128, flags: u8) -> Option<Decimal> {
    let magnitude = i128::try_from(magnitude).ok()?;
    let mut d = Decimal::try_from_i128_with_scale(magnitude, u32::from(flags & 0x7f)).ok()?;
    // Set after construction so that a negative zero stays negative.
    d.set_sign_negative(flags & 0x80 != 0);
    Some(d)
}

/// Reads a variant tag: its position (postcard) or its name (self-describing
/// formats), refused when it is not one of `names`.
struct TagSeed<'d> {
    names: &'static [&'static str],
    diag: &'d Diag,
}

impl<'de> DeserializeSeed<'de> for TagSeed<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for TagSeed<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value tag")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        usize::try_from(v)
            .ok()
            .filter(|&i| i < self.names.len())
            .ok_or_else(|| self.diag.fail("unknown value tag"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        self.names
            .iter()
            .position(|n| *n == v)
            .ok_or_else(|| self.diag.fail("unknown value tag"))
    }
}

/// Reads a byte string: one run (postcard), or a sequence of numbers (serde_json).
struct BytesSeed;

impl<'de> DeserializeSeed<'de> for BytesSeed {
    type Value = Vec<u8>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(self)
    }
}

impl<'de> Visitor<'de> for BytesSeed {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(b) = seq.next_element()? {
            out.push(b);
        }
        Ok(out)
    }
}

/// Reads the two fields of a tuple variant.
struct PairVisitor<A, B>(std::marker::PhantomData<(A, B)>);

impl<A, B> PairVisitor<A, B> {
    fn new() -> Self {
        PairVisitor(std::marker::PhantomData)
    }
}

impl<'de, A: de::Deserialize<'de>, B: de::Deserialize<'de>> Visitor<'de> for PairVisitor<A, B> {
    type Value = (A, B);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("two fields")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(A, B), S::Error> {
        let a = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let b = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok((a, b))
    }
}

/// Reads the three fields of a tuple variant.
struct TripleVisitor<A, B, C>(std::marker::PhantomData<(A, B, C)>);

impl<A, B, C> TripleVisitor<A, B, C> {
    fn new() -> Self {
        TripleVisitor(std::marker::PhantomData)
    }
}

impl<'de, A, B, C> Visitor<'de> for TripleVisitor<A, B, C>
where
    A: de::Deserialize<'de>,
    B: de::Deserialize<'de>,
    C: de::Deserialize<'de>,
{
    type Value = (A, B, C);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("three fields")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(A, B, C), S::Error> {
        let a = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let b = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let c = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
        Ok((a, b, c))
    }
}

/// Reads one JSON node `depth` arrays and objects deep.
#[derive(Clone, Copy)]
struct JsonSeed<'d> {
    depth: usize,
    diag: &'d Diag,
}

impl JsonSeed<'_> {
    /// The seed of a node inside this one, refused past [`MAX_JSON_DEPTH`].
    fn inner<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(self.diag.fail("JSON nested too deep"));
        }
        Ok(JsonSeed {
            depth: self.depth + 1,
            diag: self.diag,
        })
    }
}

impl<'de> DeserializeSeed<'de> for JsonSeed<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_enum("Json", JSON_TAGS, self)
    }
}

impl<'de> Visitor<'de> for JsonSeed<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON node")
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<serde_json::Value, A::Error> {
        use serde_json::Value as J;
        let fail = |reason| self.diag.fail::<A::Error>(reason);
        let (tag, v) = data.variant_seed(TagSeed {
            names: JSON_TAGS,
            diag: self.diag,
        })?;
        Ok(match tag {
            0 => {
                v.unit_variant()?;
                J::Null
            }
            1 => J::Bool(v.newtype_variant()?),
            2 => J::Number(v.newtype_variant::<u64>()?.into()),
            3 => J::Number(v.newtype_variant::<i64>()?.into()),
            4 => J::Number(
                serde_json::Number::from_f64(v.newtype_variant()?)
                    .ok_or_else(|| fail("JSON number is not finite"))?,
            ),
            5 => J::String(v.newtype_variant()?),
            6 => J::Array(v.newtype_variant_seed(JsonArraySeed(self.inner::<A::Error>()?))?),
            7 => J::Object(v.newtype_variant_seed(JsonObjectSeed(self.inner::<A::Error>()?))?),
            _ => return Err(fail("unknown value tag")),
        })
    }
}

/// Reads the items of a JSON array, each with the seed given.
struct JsonArraySeed<'d>(JsonSeed<'d>);

impl<'de> DeserializeSeed<'de> for JsonArraySeed<'_> {
    type Value = Vec<serde_json::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for JsonArraySeed<'_> {
    type Value = Vec<serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self.0)? {
            out.push(item);
        }
        Ok(out)
    }
}

/// Reads the members of a JSON object, values with the seed given; a key given twice
/// is refused (no encoder writes one).
struct JsonObjectSeed<'d>(JsonSeed<'d>);

impl<'de> DeserializeSeed<'de> for JsonObjectSeed<'_> {
    type Value = serde_json::Map<String, serde_json::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for JsonObjectSeed<'_> {
    type Value = serde_json::Map<String, serde_json::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self.0)?;
            if out.insert(key, value).is_some() {
                return Err(self.0.diag.fail("JSON object has a key twice"));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(row: &[Value]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_row(row, &mut bytes);
        let back = decode_row(&bytes).expect("decodes");
        assert_eq!(back.len(), row.len());
        for (i, (a, b)) in row.iter().zip(&back).enumerate() {
            assert!(identical(a, b), "value {i}: {a:?} came back as {b:?}");
        }
        bytes
    }

    /// Equality that also tells floats by their bits (NaN, -0.0) and decimals by
    /// their scale and sign (`1.0 == 1.00` for `Decimal`).
    fn identical(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
            (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
            (Value::Decimal(x), Value::Decimal(y)) => x.serialize() == y.serialize(),
            (Value::Json(x), Value::Json(y)) => json_identical(x, y),
            _ => a == b,
        }
    }

    fn json_identical(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (a, b) {
            (J::Number(x), J::Number(y)) => {
                x == y && x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
            }
            (J::Array(x), J::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_identical(x, y))
            }
            (J::Object(x), J::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .zip(y)
                        .all(|((kx, vx), (ky, vy))| kx == ky && json_identical(vx, vy))
            }
            _ => a == b,
        }
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    fn dec(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    /// Every variant, with its extremes.
    fn every_value() -> Vec<Value> {
        let mut neg_zero = dec("0.00");
        neg_zero.set_sign_negative(true);
        let leap = NaiveTime::from_hms_nano_opt(23, 59, 59, 1_999_999_999).expect("leap");
        vec![
            Value::U64(1),
            Value::Null,
            Value::Bool(false),
            Value::Bool(true),
            Value::I64(0),
            Value::I64(-1),
            Value::I64(i64::MIN),
            Value::I64(i64::MAX),
            Value::U64(0),
            Value::U64(u64::MAX),
            Value::F32(0.0),
            Value::F32(-0.0),
            Value::F32(f32::MIN_POSITIVE / 2.0),
            Value::F32(f32::MAX),
            Value::F32(f32::INFINITY),
            Value::F32(f32::from_bits(0x7fc0_1234)),
            Value::F32(f32::from_bits(0xffa0_0001)),
            Value::F64(-0.0),
            Value::F64(0.1 + 0.2),
            Value::F64(f64::MIN),
            Value::F64(f64::from_bits(1)),
            Value::F64(f64::NEG_INFINITY),
            Value::F64(f64::from_bits(0x7ff8_dead_beef_0001)),
            Value::F64(f64::from_bits(0xfff0_0000_0000_0001)),
            Value::Decimal(Decimal::ZERO),
            Value::Decimal(neg_zero),
            Value::Decimal(dec("1.00")),
            Value::Decimal(dec("-123.45")),
            Value::Decimal(Decimal::MAX),
            Value::Decimal(Decimal::MIN),
            Value::Decimal(dec("0.0000000000000000000000000001")),
            Value::Decimal(dec("-7.9228162514264337593543950335")),
            Value::String(String::new()),
            Value::String("Minha História — 字 🐝 \u{0} \"'\\".into()),
            Value::String("x".repeat(1 << 20)),
            Value::Bytes(Vec::new()),
            Value::Bytes((0..=255).collect()),
            Value::Bytes(vec![0xA5; 3 << 20]),
            Value::Date(NaiveDate::MIN),
            Value::Date(NaiveDate::MAX),
            Value::Date(date(1, 1, 1)),
            Value::Date(date(0, 12, 31)),
            Value::Date(date(2024, 2, 29)),
            Value::DateTime(NaiveDateTime::MIN),
            Value::DateTime(NaiveDateTime::MAX),
            Value::DateTime(
                date(2024, 6, 1)
                    .and_hms_nano_opt(12, 34, 56, 123_456_789)
                    .expect("dt"),
            ),
            Value::DateTime(NaiveDateTime::new(date(2016, 12, 31), leap)),
            Value::DateTime(date(1970, 1, 1).and_hms_opt(0, 0, 0).expect("epoch")),
            Value::Time(NaiveTime::MIN),
            Value::Time(NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).expect("t")),
            Value::Time(leap),
            Value::Time(NaiveTime::from_hms_micro_opt(8, 0, 0, 1).expect("t")),
            Value::Json(json!(null)),
            Value::Json(json!([])),
            Value::Json(json!({})),
            Value::Json(json!({
                "a": [1, -1, 1.0, -0.0, 0.30000000000000004, 1.0715660391465826e-75,
                      u64::MAX, i64::MIN, f64::MAX, true, null, "s\u{1F41D}\n"],
                "nested": {"deeper": {"deepest": [[[{"k": "v"}]]]}},
                "": "",
                "z": {"b": 1, "a": 2}
            })),
        ]
    }

    #[test]
    fn every_variant_and_extreme_round_trips_exactly() {
        let row = every_value();
        let bytes = round_trip(&row);
        assert_eq!(bytes[0], CODEC_VERSION);
        // One value at a time too: each row alone is its own buffer.
        for v in &row {
            round_trip(std::slice::from_ref(v));
        }
        round_trip(&[]);
    }

    #[test]
    fn json_floats_that_text_would_change_round_trip() {
        // Pseudo-random f64 bit patterns: about 30% of them do not survive serde_json's
        // text round trip without `float_roundtrip`; all of them survive here.
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let row: Vec<Value> = (0..2000)
            .map(|_| f64::from_bits(rng.next()))
            .filter(|f| f.is_finite())
            .map(|f| Value::Json(json!([f])))
            .collect();
        assert!(row.len() > 1500);
        round_trip(&row);
    }

    #[test]
    fn json_keeps_the_kind_of_each_number() {
        let row = [Value::Json(json!([1, 1.0, -1, 18446744073709551615u64]))];
        let mut bytes = Vec::new();
        encode_row(&row, &mut bytes);
        let back = decode_row(&bytes).expect("decodes");
        let Value::Json(serde_json::Value::Array(items)) = &back[0] else {
            panic!("not an array: {back:?}");
        };
        assert!(items[0].is_u64());
        assert!(items[1].is_f64());
        assert!(items[2].is_i64() && !items[2].is_u64());
        assert_eq!(items[3].as_u64(), Some(u64::MAX));
    }

    #[test]
    fn the_wire_format_is_fixed() {
        // Changing any of these bytes is a new encoding: bump CODEC_VERSION.
        let row = [
            Value::U64(300),
            Value::Null,
            Value::Bool(true),
            Value::I64(-2),
            Value::F32(1.0),
            Value::F64(-0.0),
            Value::Decimal(dec("-1.23")),
            Value::String("hé".into()),
            Value::Bytes(vec![0, 255]),
            Value::Date(date(1, 1, 2)),
            Value::DateTime(date(1, 1, 1).and_hms_nano_opt(0, 0, 1, 5).expect("dt")),
            Value::Time(NaiveTime::from_hms_opt(0, 2, 8).expect("t")),
            Value::Json(json!([null, false, 7, -7, 0.5, "a", {"k": []}])),
        ];
        let mut bytes = Vec::new();
        encode_row(&row, &mut bytes);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            1, 13,                          // version, 13 values
            3, 0xac, 0x02,                  // U64 300 (varint)
            0,                              // Null
            1, 1,                           // Bool true
            2, 3,                           // I64 -2 (zigzag)
            4, 0, 0, 0x80, 0x3f,            // F32 1.0 (bits, little-endian)
            5, 0, 0, 0, 0, 0, 0, 0, 0x80,   // F64 -0.0
            6, 123, 0x82,                   // Decimal: magnitude 123, scale 2, negative
            7, 3, b'h', 0xc3, 0xa9,         // String "hé"
            8, 2, 0, 255,                   // Bytes
            9, 4,                           // Date 0001-01-02: day 2 from CE (zigzag)
            10, 2, 1, 5,                    // DateTime 0001-01-01 00:00:01.000000005
            11, 0x80, 0x01, 0,              // Time 00:02:08: 128 s, 0 ns
            12, 6, 7,                       // Json: an array of 7
            0,                              //   null
            1, 0,                           //   false
            2, 7,                           //   7 (unsigned)
            3, 13,                          //   -7 (signed, zigzag)
            4, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f, // 0.5
            5, 1, b'a',                     //   "a"
            7, 1, 1, b'k', 6, 0,            //   {"k": []}
        ];
        assert_eq!(bytes, expected);
        assert_eq!(decode_row(&bytes).expect("decodes"), row);
    }

    #[test]
    fn appends_to_what_the_buffer_holds() {
        let mut bytes = b"prefix".to_vec();
        encode_row(&[Value::I64(5)], &mut bytes);
        assert_eq!(&bytes[..6], b"prefix");
        assert_eq!(decode_row(&bytes[6..]).expect("decodes"), [Value::I64(5)]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let row = every_value();
        // Without the multi-megabyte values: every prefix is decoded.
        let row: Vec<Value> = row
            .into_iter()
            .filter(|v| !matches!(v, Value::String(s) if s.len() > 1000))
            .filter(|v| !matches!(v, Value::Bytes(b) if b.len() > 1000))
            .collect();
        let mut bytes = Vec::new();
        encode_row(&row, &mut bytes);
        for len in 0..bytes.len() {
            let result = decode_row(&bytes[..len]);
            assert!(
                result.is_err(),
                "a prefix of {len} bytes decoded: {result:?}"
            );
        }
        assert_eq!(decode_row(&[]), Err(CodecError::Empty));
    }

    #[test]
    fn another_version_or_trailing_bytes_are_errors() {
        let mut bytes = Vec::new();
        encode_row(&[Value::U64(7), Value::String("a".into())], &mut bytes);
        for version in [0, CODEC_VERSION + 1, 255] {
            let mut other = bytes.clone();
            other[0] = version;
            assert_eq!(
                decode_row(&other),
                Err(CodecError::Version { found: version })
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_row(&longer), Err(CodecError::Trailing { extra: 1 }));
    }

    /// postcard's varint of `n`.
    fn varint(mut n: u128) -> Vec<u8> {
        let mut out = Vec::new();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out
    }

    /// A row of one value: `tag` then `payload`.
    fn one(tag: u8, payload: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![CODEC_VERSION, 1, tag];
        for p in payload {
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn out_of_range_values_are_errors_naming_the_value() {
        let zigzag = |d: i32| ((d << 1) ^ (d >> 31)) as u32 as u128;
        let computed: &[(Vec<u8>, &str)] = &[
            (one(6, &[varint(1 << 96), vec![0]]), "2^96"),
            (one(6, &[varint((1 << 96) - 1), vec![28 | 0x80]]), ""),
            (one(9, &[varint(zigzag(i32::MAX))]), "date out of range"),
            (one(9, &[varint(zigzag(i32::MIN))]), "date out of range"),
            (
                one(10, &[varint(zigzag(i32::MAX)), varint(0), varint(0)]),
                "date out of range",
            ),
            (
                one(10, &[varint(2), varint(86_400), varint(0)]),
                "time of day out of range",
            ),
            (
                one(11, &[varint(86_400), varint(0)]),
                "time of day out of range",
            ),
            (
                one(11, &[varint(0), varint(1_000_000_000)]),
                "time of day out of range",
            ),
            (
                one(11, &[varint(59), varint(2_000_000_000)]),
                "time of day out of range",
            ),
        ];
        for (bytes, reason) in computed {
            if reason.is_empty() {
                // The largest magnitude at scale 28, negative: valid.
                assert_eq!(
                    decode_row(bytes).expect("decodes"),
                    [Value::Decimal(dec("-7.9228162514264337593543950335"))]
                );
                continue;
            }
            match decode_row(bytes) {
                Err(CodecError::Value {
                    index: 0,
                    reason: r,
                }) => {
                    assert!(r.contains(reason), "{bytes:?}: {r}")
                }
                other => panic!("{bytes:?} gave {other:?}"),
            }
        }
        // The leap second itself is valid.
        assert!(decode_row(&one(11, &[varint(86_399), varint(1_999_999_999)])).is_ok());
        let v = CODEC_VERSION;
        let cases: &[(&[u8], usize, &str)] = &[
            // Unknown tag.
            (&[v, 2, 0, 13], 1, "unknown value tag"),
            // Bool 2.
            (&[v, 1, 1, 2], 0, ""),
            // Decimal scale 29.
            (&[v, 1, 6, 1, 29], 0, "scale above 28"),
            // String of invalid UTF-8.
            (&[v, 1, 7, 1, 0xff], 0, ""),
            // JSON non-finite number.
            (
                &[v, 1, 12, 4, 0, 0, 0, 0, 0, 0, 0xf0, 0x7f],
                0,
                "not finite",
            ),
            // JSON object with a key twice.
            (&[v, 1, 12, 7, 2, 1, b'k', 0, 1, b'k', 0], 0, "key twice"),
            // JSON unknown node tag.
            (&[v, 1, 12, 8], 0, "unknown value tag"),
        ];
        for (bytes, index, reason) in cases {
            match decode_row(bytes) {
                Err(CodecError::Value {
                    index: i,
                    reason: r,
                }) => {
                    assert_eq!(i, *index, "{bytes:?}: {r}");
                    assert!(r.contains(reason), "{bytes:?}: {r}");
                }
                other => panic!("{bytes:?} gave {other:?}"),
            }
        }
        // A count larger than the bytes: refused without allocating for it.
        assert!(decode_row(&[v, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // A count that is not a varint.
        assert!(matches!(
            decode_row(&[v, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(CodecError::Header(_))
        ));
    }

    fn nested(depth: usize) -> serde_json::Value {
        let mut v = json!(1);
        for _ in 0..depth {
            v = json!([v]);
        }
        v
    }

    #[test]
    fn json_depth_is_limited_as_serde_json_limits_it() {
        // serde_json parses exactly this deep and refuses one level more.
        let text = |d: usize| format!("{}1{}", "[".repeat(d), "]".repeat(d));
        assert!(serde_json::from_str::<serde_json::Value>(&text(MAX_JSON_DEPTH)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&text(MAX_JSON_DEPTH + 1)).is_err());

        round_trip(&[Value::Json(nested(MAX_JSON_DEPTH))]);
        let mut bytes = Vec::new();
        encode_row(&[Value::Json(nested(MAX_JSON_DEPTH + 1))], &mut bytes);
        match decode_row(&bytes) {
            Err(CodecError::Value { index: 0, reason }) => assert!(reason.contains("too deep")),
            other => panic!("{other:?}"),
        }
        // Hand-made bytes claiming a million nested arrays stop at the limit.
        let mut deep = vec![CODEC_VERSION, 1, 12];
        for _ in 0..1_000_000 {
            deep.extend_from_slice(&[6, 1]);
        }
        assert!(decode_row(&deep).is_err());
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_and_corrupted_bytes_never_panic() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let mut decoded = 0;
        // Random buffers after a valid version byte (else all are version errors).
        for _ in 0..4000 {
            let len = (rng.next() % 64) as usize;
            let mut bytes = vec![CODEC_VERSION];
            bytes.extend((0..len).map(|_| rng.next() as u8));
            // Small tags and counts make deeper paths reachable.
            if let Some(b) = bytes.get_mut(1) {
                *b %= 8;
            }
            if let Ok(row) = decode_row(&bytes) {
                decoded += 1;
                // What decodes is a row the encoding holds exactly.
                round_trip(&row);
            }
        }
        // Valid rows with bytes flipped: an error or a row that encodes to those bytes.
        let mut valid = Vec::new();
        let small: Vec<Value> = every_value()
            .into_iter()
            .filter(|v| !matches!(v, Value::String(s) if s.len() > 1000))
            .filter(|v| !matches!(v, Value::Bytes(b) if b.len() > 1000))
            .collect();
        encode_row(&small, &mut valid);
        for _ in 0..3000 {
            let mut bytes = valid.clone();
            for _ in 0..=(rng.next() % 3) {
                let at = 1 + (rng.next() as usize) % (bytes.len() - 1);
                bytes[at] = rng.next() as u8;
            }
            if let Ok(row) = decode_row(&bytes) {
                round_trip(&row);
            }
        }
        // Some random buffers are rows (a Null, a small integer…), most are not.
        assert!(decoded > 0 && decoded < 4000, "{decoded} of 4000 decoded");
    }
}
