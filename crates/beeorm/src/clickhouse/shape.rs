//! What a row type puts on the wire, found without sending anything: a serde
//! `Serializer` (for inserts) and `Deserializer` (for reads) that record the field
//! names and the primitive each field writes or asks for.
//!
//! RowBinary is positional and untyped: with the client's validation off (18.16 has
//! no `RowBinaryWithNamesAndTypes`), a `u32` field on a `UInt64` column decodes
//! garbage silently. These shapes are compared with the server's column types by
//! [`super::types`].

use std::fmt;

use serde::de::{self, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

/// The serde-level type of one value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    Bytes,
    Unit,
    /// `Option<T>`; `None` inside: only `None` values were seen (inserts).
    Option(Option<Box<Shape>>),
    /// A sequence (`Vec<T>`, slice); `None` inside: only empty ones were seen.
    Seq(Option<Box<Shape>>),
    /// A tuple, fixed-size array or nested struct.
    Tuple(Vec<Shape>),
    /// Something RowBinary has no column for here (a map, an enum with data…).
    Other(&'static str),
}

impl Shape {
    /// No `Option`/sequence inside is still unknown.
    pub(crate) fn resolved(&self) -> bool {
        match self {
            Shape::Option(None) | Shape::Seq(None) => false,
            Shape::Option(Some(s)) | Shape::Seq(Some(s)) => s.resolved(),
            Shape::Tuple(v) => v.iter().all(Shape::resolved),
            _ => true,
        }
    }

    /// Fills what `self` leaves unknown from `other` (a later row of the same type).
    pub(crate) fn merge(&mut self, other: &Shape) {
        match (self, other) {
            (Shape::Option(a @ None), Shape::Option(Some(b)))
            | (Shape::Seq(a @ None), Shape::Seq(Some(b))) => *a = Some(b.clone()),
            (Shape::Option(Some(a)), Shape::Option(Some(b)))
            | (Shape::Seq(Some(a)), Shape::Seq(Some(b))) => a.merge(b),
            (Shape::Tuple(a), Shape::Tuple(b)) if a.len() == b.len() => {
                a.iter_mut().zip(b).for_each(|(a, b)| a.merge(b))
            }
            _ => {}
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Bool => f.write_str("bool"),
            Shape::I8 => f.write_str("i8"),
            Shape::I16 => f.write_str("i16"),
            Shape::I32 => f.write_str("i32"),
            Shape::I64 => f.write_str("i64"),
            Shape::I128 => f.write_str("i128"),
            Shape::U8 => f.write_str("u8"),
            Shape::U16 => f.write_str("u16"),
            Shape::U32 => f.write_str("u32"),
            Shape::U64 => f.write_str("u64"),
            Shape::U128 => f.write_str("u128"),
            Shape::F32 => f.write_str("f32"),
            Shape::F64 => f.write_str("f64"),
            Shape::Char => f.write_str("char"),
            Shape::Str => f.write_str("String"),
            Shape::Bytes => f.write_str("bytes"),
            Shape::Unit => f.write_str("()"),
            Shape::Option(Some(s)) => write!(f, "Option<{s}>"),
            Shape::Option(None) => f.write_str("Option<_> (only None seen)"),
            Shape::Seq(Some(s)) => write!(f, "Vec<{s}>"),
            Shape::Seq(None) => f.write_str("Vec<_> (only empty seen)"),
            Shape::Tuple(v) => {
                if !v.is_empty() && v.iter().all(|s| *s == Shape::U8) {
                    return write!(f, "[u8; {}]", v.len());
                }
                f.write_str("(")?;
                for (i, s) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{s}")?;
                }
                f.write_str(")")
            }
            Shape::Other(what) => f.write_str(what),
        }
    }
}

/// A row: named fields (a struct) or positional values (a primitive or tuple).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RowShape {
    Struct(Vec<(String, Shape)>),
    Positional(Vec<Shape>),
}

impl RowShape {
    pub(crate) fn resolved(&self) -> bool {
        match self {
            RowShape::Struct(f) => f.iter().all(|(_, s)| s.resolved()),
            RowShape::Positional(v) => v.iter().all(Shape::resolved),
        }
    }

    pub(crate) fn merge(&mut self, other: &RowShape) {
        match (self, other) {
            (RowShape::Struct(a), RowShape::Struct(b)) if a.len() == b.len() => {
                a.iter_mut().zip(b).for_each(|((_, a), (_, b))| a.merge(b))
            }
            (RowShape::Positional(a), RowShape::Positional(b)) if a.len() == b.len() => {
                a.iter_mut().zip(b).for_each(|(a, b)| a.merge(b))
            }
            _ => {}
        }
    }
}

/// Why a row type could not be described.
#[derive(Debug)]
pub(crate) struct ProbeError(pub(crate) String);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl ser::Error for ProbeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ProbeError(msg.to_string())
    }
}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ProbeError(msg.to_string())
    }
}

type PResult<T> = std::result::Result<T, ProbeError>;

// ---------------------------------------------------------------- Serializer

/// The shape of one row as it serializes.
pub(crate) fn of_value<T: Serialize + ?Sized>(row: &T) -> PResult<RowShape> {
    match row.serialize(RowSer)? {
        Top::Struct(fields) => Ok(RowShape::Struct(fields)),
        Top::Value(Shape::Tuple(v)) => Ok(RowShape::Positional(v)),
        Top::Value(s) => Ok(RowShape::Positional(vec![s])),
    }
}

enum Top {
    Struct(Vec<(String, Shape)>),
    Value(Shape),
}

/// The top level: a struct gives named fields, anything else one value.
struct RowSer;

/// A value below the top level.
struct ValSer;

macro_rules! ser_prims {
    ($($m:ident($t:ty) => $s:expr),* $(,)?) => {
        $(fn $m(self, _: $t) -> PResult<Self::Ok> { Ok(self.wrap($s)) })*
    };
}

trait Wrap {
    type Ok;
    fn wrap(&self, s: Shape) -> Self::Ok;
}
impl Wrap for RowSer {
    type Ok = Top;
    fn wrap(&self, s: Shape) -> Top {
        Top::Value(s)
    }
}
impl Wrap for ValSer {
    type Ok = Shape;
    fn wrap(&self, s: Shape) -> Shape {
        s
    }
}

macro_rules! serializer_body {
    () => {
        type Error = ProbeError;
        type SerializeSeq = SeqSer<Self>;
        type SerializeTuple = TupleSer<Self>;
        type SerializeTupleStruct = TupleSer<Self>;
        type SerializeTupleVariant = ser::Impossible<Self::Ok, ProbeError>;
        type SerializeMap = ser::Impossible<Self::Ok, ProbeError>;
        type SerializeStructVariant = ser::Impossible<Self::Ok, ProbeError>;

        fn is_human_readable(&self) -> bool {
            false
        }

        ser_prims! {
            serialize_bool(bool) => Shape::Bool,
            serialize_i8(i8) => Shape::I8,
            serialize_i16(i16) => Shape::I16,
            serialize_i32(i32) => Shape::I32,
            serialize_i64(i64) => Shape::I64,
            serialize_i128(i128) => Shape::I128,
            serialize_u8(u8) => Shape::U8,
            serialize_u16(u16) => Shape::U16,
            serialize_u32(u32) => Shape::U32,
            serialize_u64(u64) => Shape::U64,
            serialize_u128(u128) => Shape::U128,
            serialize_f32(f32) => Shape::F32,
            serialize_f64(f64) => Shape::F64,
            serialize_char(char) => Shape::Char,
            serialize_str(&str) => Shape::Str,
            serialize_bytes(&[u8]) => Shape::Bytes,
        }

        fn serialize_none(self) -> PResult<Self::Ok> {
            Ok(self.wrap(Shape::Option(None)))
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> PResult<Self::Ok> {
            Ok(self.wrap(Shape::Option(Some(Box::new(v.serialize(ValSer)?)))))
        }
        fn serialize_unit(self) -> PResult<Self::Ok> {
            Ok(self.wrap(Shape::Unit))
        }
        fn serialize_unit_struct(self, _: &'static str) -> PResult<Self::Ok> {
            Ok(self.wrap(Shape::Unit))
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
        ) -> PResult<Self::Ok> {
            Ok(self.wrap(Shape::Other("a Rust enum")))
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            v: &T,
        ) -> PResult<Self::Ok> {
            v.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> PResult<Self::Ok> {
            Ok(self.wrap(Shape::Other("a Rust enum")))
        }
        fn serialize_seq(self, _: Option<usize>) -> PResult<Self::SerializeSeq> {
            Ok(SeqSer {
                top: self,
                first: None,
            })
        }
        fn serialize_tuple(self, _: usize) -> PResult<Self::SerializeTuple> {
            Ok(TupleSer {
                top: self,
                items: Vec::new(),
                names: None,
            })
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> PResult<Self::SerializeTupleStruct> {
            Ok(TupleSer {
                top: self,
                items: Vec::new(),
                names: None,
            })
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> PResult<Self::SerializeTupleVariant> {
            Err(ProbeError(
                "a Rust enum with data has no ClickHouse column type here".into(),
            ))
        }
        fn serialize_map(self, _: Option<usize>) -> PResult<Self::SerializeMap> {
            Err(ProbeError(
                "a map has no ClickHouse column type on this server".into(),
            ))
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> PResult<Self::SerializeStruct> {
            Ok(TupleSer {
                top: self,
                items: Vec::new(),
                names: Some(Vec::new()),
            })
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> PResult<Self::SerializeStructVariant> {
            Err(ProbeError(
                "a Rust enum with data has no ClickHouse column type here".into(),
            ))
        }
    };
}

impl ser::Serializer for RowSer {
    type Ok = Top;
    type SerializeStruct = TupleSer<Self>;
    serializer_body!();
}

impl ser::Serializer for ValSer {
    type Ok = Shape;
    type SerializeStruct = TupleSer<Self>;
    serializer_body!();
}

struct SeqSer<W> {
    top: W,
    first: Option<Shape>,
}

impl<W: Wrap> ser::SerializeSeq for SeqSer<W> {
    type Ok = W::Ok;
    type Error = ProbeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> PResult<()> {
        let s = v.serialize(ValSer)?;
        match &mut self.first {
            None => self.first = Some(s),
            Some(first) => first.merge(&s),
        }
        Ok(())
    }
    fn end(self) -> PResult<W::Ok> {
        Ok(self.top.wrap(Shape::Seq(self.first.map(Box::new))))
    }
}

/// Tuples, arrays and structs; `names` is `Some` for a struct.
struct TupleSer<W> {
    top: W,
    items: Vec<Shape>,
    names: Option<Vec<String>>,
}

impl<W: Wrap> TupleSer<W> {
    fn push<T: Serialize + ?Sized>(&mut self, v: &T) -> PResult<()> {
        self.items.push(v.serialize(ValSer)?);
        Ok(())
    }
}

impl<W: Wrap> ser::SerializeTuple for TupleSer<W> {
    type Ok = W::Ok;
    type Error = ProbeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> PResult<()> {
        self.push(v)
    }
    fn end(self) -> PResult<W::Ok> {
        Ok(self.top.wrap(Shape::Tuple(self.items)))
    }
}

impl<W: Wrap> ser::SerializeTupleStruct for TupleSer<W> {
    type Ok = W::Ok;
    type Error = ProbeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> PResult<()> {
        self.push(v)
    }
    fn end(self) -> PResult<W::Ok> {
        Ok(self.top.wrap(Shape::Tuple(self.items)))
    }
}

impl ser::SerializeStruct for TupleSer<RowSer> {
    type Ok = Top;
    type Error = ProbeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> PResult<()> {
        if let Some(n) = &mut self.names {
            n.push(key.to_string());
        }
        self.push(v)
    }
    fn end(self) -> PResult<Top> {
        let names = self.names.unwrap_or_default();
        Ok(Top::Struct(names.into_iter().zip(self.items).collect()))
    }
}

impl ser::SerializeStruct for TupleSer<ValSer> {
    type Ok = Shape;
    type Error = ProbeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, v: &T) -> PResult<()> {
        self.push(v)
    }
    fn end(self) -> PResult<Shape> {
        Ok(Shape::Tuple(self.items))
    }
}

// -------------------------------------------------------------- Deserializer

/// The shape of a row type as it deserializes (`R::deserialize` on a probe that
/// hands out zeros, empty strings and one-element sequences).
pub(crate) fn of_type<'de, R: serde::Deserialize<'de>>() -> PResult<RowShape> {
    let mut top = TopDe::default();
    R::deserialize(&mut top)?;
    match (top.fields, top.shape) {
        (Some(f), _) => Ok(RowShape::Struct(f)),
        (None, Some(Shape::Tuple(v))) => Ok(RowShape::Positional(v)),
        (None, Some(s)) => Ok(RowShape::Positional(vec![s])),
        (None, None) => Err(ProbeError("the row type reads nothing".into())),
    }
}

#[derive(Default)]
struct TopDe {
    fields: Option<Vec<(String, Shape)>>,
    shape: Option<Shape>,
}

/// Records one value's shape into `out`.
struct ValDe<'a> {
    out: &'a mut Option<Shape>,
}

macro_rules! de_prims {
    ($($m:ident => $s:expr, $visit:ident($($v:expr)?)),* $(,)?) => {
        $(fn $m<V: Visitor<'de>>(mut self, visitor: V) -> PResult<V::Value> {
            self.set($s);
            visitor.$visit($($v)?)
        })*
    };
}

trait Record {
    fn set(&mut self, s: Shape);
}
impl Record for ValDe<'_> {
    fn set(&mut self, s: Shape) {
        *self.out = Some(s);
    }
}
impl Record for &mut TopDe {
    fn set(&mut self, s: Shape) {
        self.shape = Some(s);
    }
}

macro_rules! deserializer_body {
    () => {
        type Error = ProbeError;

        fn is_human_readable(&self) -> bool {
            false
        }

        de_prims! {
            deserialize_bool => Shape::Bool, visit_bool(false),
            deserialize_i8 => Shape::I8, visit_i8(0),
            deserialize_i16 => Shape::I16, visit_i16(0),
            deserialize_i32 => Shape::I32, visit_i32(0),
            deserialize_i64 => Shape::I64, visit_i64(0),
            deserialize_i128 => Shape::I128, visit_i128(0),
            deserialize_u8 => Shape::U8, visit_u8(0),
            deserialize_u16 => Shape::U16, visit_u16(0),
            deserialize_u32 => Shape::U32, visit_u32(0),
            deserialize_u64 => Shape::U64, visit_u64(0),
            deserialize_u128 => Shape::U128, visit_u128(0),
            deserialize_f32 => Shape::F32, visit_f32(0.0),
            deserialize_f64 => Shape::F64, visit_f64(0.0),
            deserialize_char => Shape::Char, visit_char('0'),
            deserialize_str => Shape::Str, visit_borrowed_str(""),
            deserialize_string => Shape::Str, visit_borrowed_str(""),
            deserialize_bytes => Shape::Bytes, visit_borrowed_bytes(&[]),
            deserialize_byte_buf => Shape::Bytes, visit_borrowed_bytes(&[]),
            deserialize_unit => Shape::Unit, visit_unit(),
        }

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> PResult<V::Value> {
            Err(ProbeError("a field of the row type reads any type (`deserialize_any`), which RowBinary cannot carry".into()))
        }
        fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> PResult<V::Value> {
            self.deserialize_any(v)
        }
        fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> PResult<V::Value> {
            self.deserialize_any(v)
        }
        fn deserialize_unit_struct<V: Visitor<'de>>(mut self, _: &'static str, visitor: V) -> PResult<V::Value> {
            self.set(Shape::Unit);
            visitor.visit_unit()
        }
        fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> PResult<V::Value> {
            let mut inner = None;
            let value = visitor.visit_some(ValDe { out: &mut inner })?;
            self.set(Shape::Option(inner.map(Box::new)));
            Ok(value)
        }
        fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> PResult<V::Value> {
            visitor.visit_newtype_struct(self)
        }
        fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> PResult<V::Value> {
            let mut items = Vec::new();
            let value = visitor.visit_seq(SeqDe { left: 1, items: &mut items })?;
            self.set(Shape::Seq(items.into_iter().next().map(Box::new)));
            Ok(value)
        }
        fn deserialize_tuple<V: Visitor<'de>>(mut self, len: usize, visitor: V) -> PResult<V::Value> {
            let mut items = Vec::new();
            let value = visitor.visit_seq(SeqDe { left: len, items: &mut items })?;
            self.set(Shape::Tuple(items));
            Ok(value)
        }
        fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, len: usize, visitor: V) -> PResult<V::Value> {
            self.deserialize_tuple(len, visitor)
        }
        fn deserialize_map<V: Visitor<'de>>(self, _: V) -> PResult<V::Value> {
            Err(ProbeError("a map has no ClickHouse column type on this server".into()))
        }
        fn deserialize_enum<V: Visitor<'de>>(self, _: &'static str, _: &'static [&'static str], _: V) -> PResult<V::Value> {
            Err(ProbeError("a Rust enum reads a ClickHouse Variant, which this server lacks: read Enum8/Enum16 columns into i8/i16 (or serde_repr enums)".into()))
        }
    };
}

impl<'de> de::Deserializer<'de> for ValDe<'_> {
    deserializer_body!();
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> PResult<V::Value> {
        self.deserialize_tuple(fields.len(), visitor)
    }
}

impl<'de> de::Deserializer<'de> for &mut TopDe {
    deserializer_body!();
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> PResult<V::Value> {
        let mut items = Vec::new();
        let value = visitor.visit_seq(SeqDe {
            left: fields.len(),
            items: &mut items,
        })?;
        self.fields = Some(fields.iter().map(|f| f.to_string()).zip(items).collect());
        Ok(value)
    }
}

/// Hands out `left` elements, recording each one's shape.
struct SeqDe<'a> {
    left: usize,
    items: &'a mut Vec<Shape>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_> {
    type Error = ProbeError;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> PResult<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut out = None;
        let value = seed.deserialize(ValDe { out: &mut out })?;
        self.items.push(out.unwrap_or(Shape::Other("nothing")));
        Ok(Some(value))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Row {
        id: u64,
        #[serde(rename = "label")]
        name: String,
        maybe: Option<i32>,
        list: Vec<Option<u8>>,
        fixed: [u8; 3],
        #[serde(skip)]
        _skipped: u8,
    }

    #[test]
    fn both_probes_agree_on_a_struct() {
        let want = RowShape::Struct(vec![
            ("id".into(), Shape::U64),
            ("label".into(), Shape::Str),
            ("maybe".into(), Shape::Option(Some(Box::new(Shape::I32)))),
            (
                "list".into(),
                Shape::Seq(Some(Box::new(Shape::Option(Some(Box::new(Shape::U8)))))),
            ),
            ("fixed".into(), Shape::Tuple(vec![Shape::U8; 3])),
        ]);
        assert_eq!(of_type::<Row>().unwrap(), want);
        let row = Row {
            id: 1,
            name: "x".into(),
            maybe: None,
            list: vec![],
            fixed: [1, 2, 3],
            _skipped: 0,
        };
        let mut seen = of_value(&row).unwrap();
        assert!(!seen.resolved());
        let row2 = Row {
            maybe: Some(3),
            list: vec![None, Some(2)],
            ..row
        };
        seen.merge(&of_value(&row2).unwrap());
        assert_eq!(seen, want);
        assert!(seen.resolved());
    }

    #[test]
    fn primitives_and_tuples_are_positional() {
        assert_eq!(
            of_type::<u32>().unwrap(),
            RowShape::Positional(vec![Shape::U32])
        );
        assert_eq!(
            of_type::<(String, Option<f64>)>().unwrap(),
            RowShape::Positional(vec![Shape::Str, Shape::Option(Some(Box::new(Shape::F64)))])
        );
        assert!(of_type::<std::collections::HashMap<String, u8>>().is_err());
    }
}
