//! Entity metadata: what a table looks like.
//!
//! `#[derive(Entity)]` emits an [`EntityDefinition`]; `Registry::validate()` checks it
//! and builds a [`TableSchema`]. Comparing tables with the database (schema sync,
//! [`TableSchema::schema_changes`], `Engine::alters()` producing [`Alter`]s) lives a
//! layer higher, in `crate::sync`, above the drivers it asks.

pub(crate) mod codec;
mod definition;
pub(crate) mod enums;
pub(crate) mod fake_delete;
pub(crate) mod limits;
mod table;
mod types;

pub use crate::sync::Alter;
pub use codec::{
    value_kind, Codec, DecodeError, JsonCodec, NativeCodec, NullableJsonCodec, SetCodec,
    SetFieldError,
};
pub use definition::{
    CacheDefinition, CachedQueryDefinition, EntityDefinition, FieldAttributes, FieldDefinition,
    FieldShape, IndexPosition, Length,
};
pub use fake_delete::FakeDeleteCodec;
pub use table::{Column, DirtyStream, ForeignKey, Index, Reference, TableSchema};
pub(crate) use types::only as types_only;
pub use types::{
    enum_column, enum_from_value, enum_to_value, json_column, nullable_json_column, BlobSize,
    ColumnSpec, ColumnType, EnumValues, FieldType, IdColumn, PrimaryKey, RefSpec,
};
