//! Rust type → dialect-neutral column type.
//!
//! Each storable Rust type implements [`FieldType`], which checks the field's attributes
//! against the type and returns a [`ColumnSpec`]. A type without an implementation is a
//! compile error pointing at the field's type; an attribute that does not fit the type
//! is a `validate()` error naming the entity and the field. The dialects (`sql/`) turn a
//! [`ColumnType`] into their own SQL type; the crate docs hold the table per dialect.

use std::collections::{BTreeMap, HashMap};

use super::codec;
use super::definition::{FieldAttributes, Length};
use crate::schema::enums::OrmEnum;
use crate::Value;

/// The dialect-neutral type of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnType {
    /// An integer of `bytes` (1, 2, 3, 4 or 8) bytes.
    Int {
        /// Storage size in bytes; 3 is `mediumint`.
        bytes: u8,
        /// Unsigned integer.
        unsigned: bool,
    },
    /// A boolean.
    Bool,
    /// A binary floating point number.
    Float {
        /// 8 bytes (`double`) rather than 4 (`float`).
        double: bool,
        /// Negative values rejected by the server (MySQL only).
        unsigned: bool,
    },
    /// An exact decimal number.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
        /// Negative values rejected by the server (MySQL only).
        unsigned: bool,
    },
    /// A string of at most N characters.
    Varchar(u32),
    /// A long string (`length = "max"`).
    Text,
    /// Bytes.
    Blob(BlobSize),
    /// A calendar date.
    Date,
    /// A date and time of day (no time zone; UTC by convention).
    DateTime,
    /// A date and time of day with microseconds (no time zone; UTC by convention):
    /// `datetime(6)` on MySQL. Change-log tables use it for `added_at`.
    DateTimeMicros,
    /// A time of day.
    Time,
    /// A year (MySQL `year`).
    Year,
    /// One value out of a fixed list.
    Enum(EnumValues),
    /// Any subset of a fixed list.
    Set(EnumValues),
    /// A JSON document.
    Json,
}

/// Size class of a blob column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobSize {
    /// Up to 64 KiB on MySQL.
    Blob,
    /// Up to 16 MiB on MySQL.
    Medium,
    /// Up to 4 GiB on MySQL.
    Long,
}

/// The values of an `ENUM`/`SET` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnumValues {
    /// Values known from the Rust type (`#[derive(OrmEnum)]`).
    Values {
        /// Allowed values, in declaration order.
        values: Vec<String>,
        /// The default value of a NOT NULL enum column.
        default: String,
    },
    /// An enum registered by name on the registry; resolved by `validate()`.
    Named(&'static str),
}

/// The column a field maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Its type.
    pub ty: ColumnType,
    /// Whether it accepts NULL (`Option<T>` fields).
    pub nullable: bool,
    /// The entity the column refers to (`Ref<T>`, `Vec<Ref<T>>`).
    pub reference: Option<RefSpec>,
}

/// The target of a reference column, as the `FieldType` of `Ref<T>` describes it.
#[derive(Clone, Copy)]
pub struct RefSpec {
    /// The referenced entity's definition.
    pub target: fn() -> super::EntityDefinition,
    /// The referenced entity's type.
    pub target_type: fn() -> std::any::TypeId,
    /// A list of references (`Vec<Ref<T>>`, a JSON array of IDs) rather than one.
    pub many: bool,
}

impl PartialEq for RefSpec {
    fn eq(&self, other: &Self) -> bool {
        (self.target_type)() == (other.target_type)() && self.many == other.many
    }
}

impl Eq for RefSpec {}

impl std::fmt::Debug for RefSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefSpec")
            .field("target", &(self.target)().type_name)
            .field("many", &self.many)
            .finish()
    }
}

impl ColumnSpec {
    pub(crate) fn not_null(ty: ColumnType) -> Result<ColumnSpec, String> {
        Ok(ColumnSpec {
            ty,
            nullable: false,
            reference: None,
        })
    }
}

/// A Rust type that can be stored in one column. Implemented for the types of the type
/// table in the crate docs; `#[derive(OrmEnum)]` implements it for enums.
pub trait FieldType: Sized {
    /// Checks `attributes` against the type and returns the column.
    fn column_spec(attributes: &FieldAttributes) -> Result<ColumnSpec, String>;
    /// The value written to the column.
    fn to_value(&self) -> Value;
    /// The field read back from the column; an error says what was found instead.
    fn from_value(value: Value) -> Result<Self, String>;
}

/// The type of the `id` primary key column: an unsigned integer of `bytes` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdColumn {
    /// Storage size in bytes (1, 2, 4 or 8).
    pub bytes: u8,
}

/// Types allowed for an entity's `id` field: `u8`, `u16`, `u32`, `u64`.
pub trait PrimaryKey: Sized {
    /// The column of the key.
    const COLUMN: IdColumn;
    /// The key as `u64`.
    fn to_u64(self) -> u64;
    /// The key from `u64`; an error when it does not fit.
    fn from_u64(id: u64) -> Result<Self, String>;
    /// The key read from its column.
    fn from_value(v: Value) -> Result<Self, String>;
}

macro_rules! primary_key {
    ($($t:ty => $b:expr),*) => {$(
        impl PrimaryKey for $t {
            const COLUMN: IdColumn = IdColumn { bytes: $b };
            #[inline]
            fn to_u64(self) -> u64 {
                u64::from(self)
            }
            fn from_u64(id: u64) -> Result<Self, String> {
                <$t>::try_from(id).map_err(|_| format!("id {id} does not fit in {}", stringify!($t)))
            }
            #[inline]
            fn from_value(v: Value) -> Result<Self, String> {
                <$t as FieldType>::from_value(v)
            }
        }
    )*};
}
primary_key!(u8 => 1, u16 => 2, u32 => 4, u64 => 8);

/// Names of the type-specific attributes that are set.
fn set_attributes(a: &FieldAttributes) -> Vec<&'static str> {
    let mut out = Vec::new();
    if a.length.is_some() {
        out.push("length");
    }
    if a.mediumint {
        out.push("mediumint");
    }
    if a.decimal.is_some() {
        out.push("decimal");
    }
    if a.unsigned.is_some() {
        out.push("unsigned");
    }
    if a.enum_name.is_some() {
        out.push("enum");
    }
    if a.set_name.is_some() {
        out.push("set");
    }
    if a.year {
        out.push("year");
    }
    if a.time {
        out.push("time");
    }
    if a.mediumblob {
        out.push("mediumblob");
    }
    if a.longblob {
        out.push("longblob");
    }
    if a.cascade {
        out.push("cascade");
    }
    if a.skip_fk {
        out.push("skip_fk");
    }
    out
}

/// Rejects type-specific attributes that `type_name` does not take.
pub(crate) fn only(a: &FieldAttributes, allowed: &[&str], type_name: &str) -> Result<(), String> {
    match set_attributes(a).into_iter().find(|x| !allowed.contains(x)) {
        None => Ok(()),
        Some(bad) => Err(format!(
            "attribute `{bad}` does not apply to a field of type `{type_name}`"
        )),
    }
}

fn int(a: &FieldAttributes, name: &str, bytes: u8, unsigned: bool) -> Result<ColumnSpec, String> {
    if bytes == 4 {
        only(a, &["mediumint"], name)?;
        let bytes = if a.mediumint { 3 } else { 4 };
        return ColumnSpec::not_null(ColumnType::Int { bytes, unsigned });
    }
    if bytes == 2 && unsigned {
        only(a, &["year"], name)?;
        if a.year {
            return ColumnSpec::not_null(ColumnType::Year);
        }
    } else {
        only(a, &[], name)?;
    }
    ColumnSpec::not_null(ColumnType::Int { bytes, unsigned })
}

macro_rules! int_field {
    ($($t:ty => $b:expr, $u:expr);*) => {$(
        impl FieldType for $t {
            fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
                int(a, stringify!($t), $b, $u)
            }
            #[inline]
            fn to_value(&self) -> Value {
                Value::from(*self)
            }
            // Inlined into the derived decoders: the common cases are a match arm and
            // a range check; other representations go through `codec::integer`.
            #[inline]
            #[allow(irrefutable_let_patterns)] // i64 from i64, u64 from u64
            fn from_value(v: Value) -> Result<Self, String> {
                match v {
                    // SQLite has signed 64-bit integers only: a u64 above i64::MAX is
                    // stored as its two's complement.
                    Value::I64(i) if $b == 8 && $u => return Ok(i as u64 as $t),
                    Value::I64(i) => {
                        if let Ok(x) = <$t>::try_from(i) {
                            return Ok(x);
                        }
                    }
                    Value::U64(u) => {
                        if let Ok(x) = <$t>::try_from(u) {
                            return Ok(x);
                        }
                    }
                    _ => {}
                }
                let i = codec::integer(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} does not fit in {}", stringify!($t)))
            }
        }
    )*};
}
int_field!(i8 => 1, false; i16 => 2, false; i32 => 4, false; i64 => 8, false;
           u8 => 1, true; u16 => 2, true; u32 => 4, true; u64 => 8, true);

impl FieldType for bool {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        only(a, &[], "bool")?;
        ColumnSpec::not_null(ColumnType::Bool)
    }
    #[inline]
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    #[inline]
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Bool(b) => return Ok(b),
            Value::I64(0) => return Ok(false),
            Value::I64(1) => return Ok(true),
            _ => {}
        }
        match codec::integer(v)? {
            0 => Ok(false),
            1 => Ok(true),
            i => Err(format!("expected 0 or 1 for a bool, found {i}")),
        }
    }
}

fn float(a: &FieldAttributes, name: &str, double: bool) -> Result<ColumnSpec, String> {
    only(a, &["decimal", "unsigned"], name)?;
    let unsigned = a.unsigned.unwrap_or(false);
    ColumnSpec::not_null(match a.decimal {
        Some((precision, scale)) => ColumnType::Decimal {
            precision,
            scale,
            unsigned,
        },
        None => ColumnType::Float { double, unsigned },
    })
}

impl FieldType for f32 {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        float(a, "f32", false)
    }
    fn to_value(&self) -> Value {
        Value::F32(*self)
    }
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::F32(f) => Ok(f),
            other => codec::float(other).map(|f| f as f32),
        }
    }
}

impl FieldType for f64 {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        float(a, "f64", true)
    }
    #[inline]
    fn to_value(&self) -> Value {
        Value::F64(*self)
    }
    #[inline]
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::F64(f) => Ok(f),
            other => codec::float(other),
        }
    }
}

impl FieldType for rust_decimal::Decimal {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        only(a, &["decimal", "unsigned"], "Decimal")?;
        let (precision, scale) = a.decimal.ok_or_else(|| {
            "a `Decimal` field needs `decimal = \"precision,scale\"`, e.g. `decimal = \"10,2\"`"
                .to_string()
        })?;
        ColumnSpec::not_null(ColumnType::Decimal {
            precision,
            scale,
            unsigned: a.unsigned.unwrap_or(false),
        })
    }
    fn to_value(&self) -> Value {
        Value::Decimal(*self)
    }
    fn from_value(v: Value) -> Result<Self, String> {
        codec::decimal(v)
    }
}

impl FieldType for String {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        only(a, &["length", "enum"], "String")?;
        if let Some(name) = a.enum_name {
            if a.length.is_some() {
                return Err("`length` and `enum` cannot be combined".into());
            }
            return ColumnSpec::not_null(ColumnType::Enum(EnumValues::Named(name)));
        }
        ColumnSpec::not_null(match a.length {
            None => ColumnType::Varchar(255),
            Some(Length::Chars(n)) => ColumnType::Varchar(n),
            Some(Length::Max) => ColumnType::Text,
        })
    }
    #[inline]
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
    #[inline]
    fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::String(s) => Ok(s),
            other => codec::string(other),
        }
    }
}

impl FieldType for Vec<u8> {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        only(a, &["mediumblob", "longblob"], "Vec<u8>")?;
        let size = match (a.mediumblob, a.longblob) {
            (true, true) => return Err("`mediumblob` and `longblob` cannot be combined".into()),
            (true, false) => BlobSize::Medium,
            (false, true) => BlobSize::Long,
            (false, false) => BlobSize::Blob,
        };
        ColumnSpec::not_null(ColumnType::Blob(size))
    }
    fn to_value(&self) -> Value {
        Value::Bytes(self.clone())
    }
    fn from_value(v: Value) -> Result<Self, String> {
        codec::bytes(v)
    }
}

impl FieldType for Vec<String> {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        only(a, &["set"], "Vec<String>")?;
        ColumnSpec::not_null(match a.set_name {
            Some(name) => ColumnType::Set(EnumValues::Named(name)),
            None => ColumnType::Json,
        })
    }
    fn to_value(&self) -> Value {
        codec::to_json(self)
    }
    fn from_value(v: Value) -> Result<Self, String> {
        codec::json(v)
    }
}

fn enum_values<E: OrmEnum>() -> EnumValues {
    EnumValues::Values {
        values: E::fields().iter().map(|s| s.to_string()).collect(),
        default: E::default_value().as_str().to_string(),
    }
}

/// The column value of a `#[derive(OrmEnum)]` field.
pub fn enum_to_value<E: OrmEnum>(e: &E) -> Value {
    Value::String(e.as_str().to_string())
}

/// A `#[derive(OrmEnum)]` field read back from its column.
pub fn enum_from_value<E: OrmEnum>(v: Value) -> Result<E, String> {
    let s = codec::string(v)?;
    E::from_str(&s).ok_or_else(|| format!("`{s}` is not a value of enum {}", E::NAME))
}

/// The column of a `#[derive(OrmEnum)]` field: an `ENUM` of its values.
pub fn enum_column<E: OrmEnum>(a: &FieldAttributes) -> Result<ColumnSpec, String> {
    only(a, &[], E::NAME)?;
    ColumnSpec::not_null(ColumnType::Enum(enum_values::<E>()))
}

/// `Vec<E>` of an [`OrmEnum`] is a `SET` column.
impl<E: OrmEnum> FieldType for Vec<E> {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        only(a, &[], "Vec<enum>")?;
        ColumnSpec::not_null(ColumnType::Set(enum_values::<E>()))
    }
    fn to_value(&self) -> Value {
        codec::set_to_value(&self.iter().map(OrmEnum::as_str).collect::<Vec<_>>())
    }
    fn from_value(v: Value) -> Result<Self, String> {
        codec::set_items(v)?
            .iter()
            .map(|s| {
                E::from_str(s).ok_or_else(|| format!("`{s}` is not a value of enum {}", E::NAME))
            })
            .collect()
    }
}

/// The column of a `#[orm(json)]` field: any `serde` type stored as JSON.
pub fn json_column<T: serde::Serialize + serde::de::DeserializeOwned>(
    a: &FieldAttributes,
) -> Result<ColumnSpec, String> {
    only(a, &[], "json")?;
    ColumnSpec::not_null(ColumnType::Json)
}

/// The column of a `#[orm(json)]` field of type `Option<T>`: nullable JSON.
pub fn nullable_json_column<T: serde::Serialize + serde::de::DeserializeOwned>(
    a: &FieldAttributes,
) -> Result<ColumnSpec, String> {
    if a.required {
        return Err(
            "`required` contradicts `Option<...>`: an Option field is nullable; drop one of them"
                .into(),
        );
    }
    only(a, &[], "json")?;
    Ok(ColumnSpec {
        ty: ColumnType::Json,
        nullable: true,
        reference: None,
    })
}

macro_rules! simple_field {
    ($($t:ty => $name:expr, $col:expr, [$($allowed:expr),*], $to:expr, $from:expr);* $(;)?) => {$(
        impl FieldType for $t {
            fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
                only(a, &[$($allowed),*], $name)?;
                ColumnSpec::not_null($col)
            }
            fn to_value(&self) -> Value {
                ($to)(self)
            }
            fn from_value(v: Value) -> Result<Self, String> {
                ($from)(v)
            }
        }
    )*};
}
simple_field! {
    chrono::NaiveDate => "NaiveDate", ColumnType::Date, [],
        |d: &chrono::NaiveDate| Value::Date(*d), codec::date;
    chrono::NaiveDateTime => "NaiveDateTime", ColumnType::DateTime, ["time"],
        |d: &chrono::NaiveDateTime| Value::DateTime(*d), codec::date_time;
    chrono::DateTime<chrono::Utc> => "DateTime<Utc>", ColumnType::DateTime, ["time"],
        |d: &chrono::DateTime<chrono::Utc>| Value::DateTime(d.naive_utc()),
        |v| codec::date_time(v).map(|d| d.and_utc());
    chrono::NaiveTime => "NaiveTime", ColumnType::Time, [],
        |t: &chrono::NaiveTime| Value::Time(*t), codec::time;
    serde_json::Value => "serde_json::Value", ColumnType::Json, [],
        codec::to_json, codec::json;
}

impl<V: serde::Serialize + serde::de::DeserializeOwned> FieldType for HashMap<String, V> {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        json_column::<BTreeMap<String, V>>(a)
    }
    fn to_value(&self) -> Value {
        // Sorted keys: the same map always gives the same text (dirty checks compare it).
        codec::to_json(&self.iter().collect::<BTreeMap<_, _>>())
    }
    fn from_value(v: Value) -> Result<Self, String> {
        codec::json(v)
    }
}

impl<V: serde::Serialize + serde::de::DeserializeOwned> FieldType for BTreeMap<String, V> {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        json_column::<BTreeMap<String, V>>(a)
    }
    fn to_value(&self) -> Value {
        codec::to_json(self)
    }
    fn from_value(v: Value) -> Result<Self, String> {
        codec::json(v)
    }
}

/// `Option<T>` is the nullable column of `T`.
impl<T: FieldType> FieldType for Option<T> {
    fn column_spec(a: &FieldAttributes) -> Result<ColumnSpec, String> {
        if a.required {
            return Err("`required` contradicts `Option<...>`: an Option field is nullable; drop one of them".into());
        }
        let inner = T::column_spec(a)?;
        if inner.nullable {
            return Err(
                "`Option<Option<...>>` cannot be stored: one NULL cannot mean two things".into(),
            );
        }
        Ok(ColumnSpec {
            nullable: true,
            ..inner
        })
    }
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, FieldType::to_value)
    }
    fn from_value(v: Value) -> Result<Self, String> {
        if v.is_null() {
            Ok(None)
        } else {
            T::from_value(v).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mediumint_applies_to_32_bit_integers_only() {
        let a = FieldAttributes {
            mediumint: true,
            ..Default::default()
        };
        assert_eq!(
            u32::column_spec(&a).map(|c| c.ty),
            Ok(ColumnType::Int {
                bytes: 3,
                unsigned: true
            })
        );
        let err = u64::column_spec(&a).unwrap_err();
        assert!(err.contains("`mediumint` does not apply"), "{err}");
    }

    #[test]
    fn option_of_option_and_required_option_are_rejected() {
        let a = FieldAttributes::default();
        assert!(Option::<Option<u8>>::column_spec(&a).is_err());
        let req = FieldAttributes {
            required: true,
            ..Default::default()
        };
        assert!(Option::<u8>::column_spec(&req)
            .unwrap_err()
            .contains("required"));
    }

    #[test]
    fn decimal_type_requires_precision() {
        let err = rust_decimal::Decimal::column_spec(&FieldAttributes::default()).unwrap_err();
        assert!(err.contains("decimal"), "{err}");
    }
}
