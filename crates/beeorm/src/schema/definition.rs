//! The raw, unvalidated description of an entity that `#[derive(Entity)]` emits.
//!
//! These types are the contract between the derive macros and the registry. Users
//! rarely build them by hand; `Registry::validate()` turns them into [`TableSchema`]s.
//!
//! [`TableSchema`]: crate::schema::TableSchema

use super::types::{ColumnSpec, IdColumn};

/// What `#[derive(Entity)]` knows about a struct.
#[derive(Debug, Clone)]
pub struct EntityDefinition {
    /// The Rust type name, used in error messages and as the default table name.
    pub type_name: &'static str,
    /// `#[orm(table = "...")]`.
    pub table: Option<&'static str>,
    /// `#[orm(pool = "...")]` (alias `mysql`): the relational pool; `default` when absent.
    pub pool: Option<&'static str>,
    /// The primary key column, from the type of the primary key field.
    pub id: IdColumn,
    /// The primary key's Rust field: the one marked `#[orm(primary_key)]`, else `id`.
    pub id_field: &'static str,
    /// The primary key's column: `#[orm(column = "...")]` on its field, else the
    /// field's name.
    pub id_column: &'static str,
    /// Every stored field except the primary key, in declaration order (`ignore`d
    /// fields are absent).
    pub fields: Vec<FieldDefinition>,
    /// The entity caches: `#[orm(local_cache)]`, `#[orm(redis_cache = "pool")]`.
    pub cache: CacheDefinition,
    /// `#[orm(log)]` or `#[orm(log = "pool")]`: every committed change of a row is
    /// recorded in the entity's change-log table (see `docs/change_log.md`).
    pub log: bool,
    /// `#[orm(log = "pool")]`: the relational pool of the change-log table; `None`:
    /// the entity's own pool.
    pub log_pool: Option<&'static str>,
    /// `#[orm(dirty = "stream[,stream…]")]` on the struct: the dirty streams told
    /// about every insert, update and delete of the entity (F3).
    pub dirty: &'static [&'static str],
    /// `#[orm(search)]` or `#[orm(search = "pool")]`: the entity has a full-text search
    /// index in that search pool (`default` for the bare form); its fields marked
    /// `searchable` / `sortable` are indexed. `None`: no index.
    pub search: Option<&'static str>,
}

/// Which entity caches hold an entity's rows (D7): `#[orm(local_cache[ = "pool"])]`
/// and `#[orm(redis_cache[ = "pool"])]` on the struct (a bare attribute names the
/// `default` pool). Either, both, or neither. Also the entity's cached queries (D5).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheDefinition {
    /// The local (in-process) cache pool.
    pub local: Option<&'static str>,
    /// The Redis pool.
    pub redis: Option<&'static str>,
    /// `#[orm(cached_query(...))]` and `#[orm(cached_query_one(...))]`, in
    /// declaration order.
    pub queries: &'static [CachedQueryDefinition],
}

/// One cached query (D5): `#[orm(cached_query(name = "by_age", query = ":age = ? ORDER BY :id"))]`
/// (a list) or `#[orm(cached_query_one(name = "by_name", query = ":name = ?"))]` (one
/// row). `:field` names a Rust field (`:address.city` a field of an embedded struct);
/// `Registry::validate` checks it and replaces it with the field's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedQueryDefinition {
    /// The name `cached_search` takes.
    pub name: &'static str,
    /// The condition with `:field` names and `?` placeholders, optionally followed by
    /// `ORDER BY`; empty: every row.
    pub query: &'static str,
    /// `cached_query_one`: at most one row.
    pub one: bool,
}

/// One stored field of an entity or of an embedded struct.
#[derive(Debug, Clone)]
pub struct FieldDefinition {
    /// The Rust field name.
    pub name: &'static str,
    /// The column name: `#[orm(column = "...")]`, else the field name (embedded
    /// fields get their holder's column and `_` as a prefix).
    pub column: &'static str,
    /// The field's Rust type as written, for error messages.
    pub rust_type: &'static str,
    /// The `#[orm(...)]` attributes of the field.
    pub attributes: FieldAttributes,
    /// How the field maps to columns.
    pub shape: FieldShape,
}

/// How a field maps to columns.
#[derive(Clone, Copy)]
pub enum FieldShape {
    /// One column; the function checks the attributes against the Rust type.
    Column(fn(&FieldAttributes) -> Result<ColumnSpec, String>),
    /// The fields of an `#[derive(Embedded)]` struct, as prefixed columns.
    Embedded(fn() -> Vec<FieldDefinition>),
}

impl std::fmt::Debug for FieldShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldShape::Column(_) => f.write_str("Column"),
            FieldShape::Embedded(_) => f.write_str("Embedded"),
        }
    }
}

/// `length = N` or `length = "max"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// `varchar(N)`.
    Chars(u32),
    /// A long text column (`mediumtext` on MySQL).
    Max,
}

/// One membership of a field in an index: `index = "Name:2"` is `{ name: "Name", position: 2 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexPosition {
    /// The index name, shared by every field of a multi-column index.
    pub name: &'static str,
    /// 1-based position of the field inside the index.
    pub position: u8,
}

/// The `#[orm(...)]` attributes of a field that concern the schema.
#[derive(Debug, Clone, Default)]
pub struct FieldAttributes {
    /// `length = N | "max"` (strings).
    pub length: Option<Length>,
    /// `required`: NOT NULL. Non-`Option` fields are always NOT NULL.
    pub required: bool,
    /// `index = "Name[:pos],..."`.
    pub indexes: Vec<IndexPosition>,
    /// `unique = "Name[:pos],..."`.
    pub uniques: Vec<IndexPosition>,
    /// `mediumint` (i32/u32).
    pub mediumint: bool,
    /// `decimal = "P,S"` (f32, f64, `rust_decimal::Decimal`).
    pub decimal: Option<(u8, u8)>,
    /// `unsigned [= bool]` (floats and decimals; integers take the sign of their type).
    pub unsigned: Option<bool>,
    /// `enum = "name"`: a `String` holding a value of an enum registered by name.
    pub enum_name: Option<&'static str>,
    /// `set = "name"`: a `Vec<String>` holding values of an enum registered by name.
    pub set_name: Option<&'static str>,
    /// `year` (u16).
    pub year: bool,
    /// `time` (date-time types; kept for compatibility with the Go tags).
    pub time: bool,
    /// `mediumblob` (`Vec<u8>`).
    pub mediumblob: bool,
    /// `longblob` (`Vec<u8>`).
    pub longblob: bool,
    /// `cascade` (`Ref<T>`): deleting the referenced row deletes this one
    /// (`ON DELETE CASCADE`) instead of failing (`RESTRICT`).
    pub cascade: bool,
    /// `skip_fk` (`Ref<T>`): no foreign key constraint for this reference.
    pub skip_fk: bool,
    /// `fake_delete` (`bool`, entity fields only): the fake-delete flag (B7). Its
    /// column holds 0 while the row is alive and the row's ID once it is deleted.
    pub fake_delete: bool,
    /// `skip_log`: the field never appears in change-log rows, and a change of only
    /// such fields writes no log row.
    pub skip_log: bool,
    /// `dirty = "stream[,stream…]"`: the dirty streams told about an update that
    /// changes this field (and about every insert and delete). On an embedded field,
    /// any of its columns.
    pub dirty: &'static [&'static str],
    /// `searchable` or `searchable = "text" | "numeric" | "tag"`: the field is indexed
    /// in the entity's search index. `Some("")`: the kind is inferred from the column
    /// type; `None`: not indexed.
    pub searchable: Option<&'static str>,
    /// `sortable` (implies `searchable`): search results can be sorted by the field.
    pub sortable: bool,
}
