//! [`TableSchema`]: the validated description of one entity's table (B5).
//!
//! Column names come from the definition (`#[orm(column = "...")]`, else the field
//! name), never from conventions: the primary key is column 0 whatever it is called
//! ([`TableSchema::id_column_name`]), and the fake-delete column is the one whose
//! field carries the attribute. Everything that renders SQL for a table reads the
//! names from here, so an existing database with its own naming maps as it is.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use super::definition::{EntityDefinition, FieldDefinition, FieldShape, IndexPosition};
use super::types::{ColumnType, EnumValues, IdColumn};
use crate::schema::enums::EnumDefinition;
use crate::{Error, Result};

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name (`address_street` for `address.street`).
    pub name: String,
    /// The Rust path of the field (`address.street`).
    pub field: String,
    /// Dialect-neutral type, with enum values resolved.
    pub ty: ColumnType,
    /// Accepts NULL.
    pub nullable: bool,
    /// The entity the column refers to (`Ref<T>`, `Vec<Ref<T>>` fields).
    pub reference: Option<Reference>,
    /// The primary key (the first column): auto-increment, no default.
    pub primary_key: bool,
}

/// A reference field (`Ref<T>`, `Option<Ref<T>>`, `Vec<Ref<T>>`) of an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The referenced entity's type name.
    pub entity: &'static str,
    /// The referenced entity's type.
    pub target: std::any::TypeId,
    /// `Vec<Ref<T>>`: a JSON array of IDs, without a foreign key.
    pub many: bool,
    /// `cascade`: ON DELETE CASCADE rather than RESTRICT.
    pub cascade: bool,
    /// `skip_fk`: no foreign key constraint.
    pub skip_fk: bool,
}

/// A foreign key of a table: `column` references `ref_table(ref_column)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// Constraint name: `fk_<table>_<column>` (cut to 63 characters).
    pub name: String,
    /// The referencing column.
    pub column: String,
    /// The referenced table.
    pub ref_table: String,
    /// The referenced table's primary key column.
    pub ref_column: String,
    /// ON DELETE CASCADE rather than RESTRICT.
    pub cascade: bool,
}

impl ForeignKey {
    /// `CASCADE` or `RESTRICT`.
    pub fn on_delete(&self) -> &'static str {
        if self.cascade {
            "CASCADE"
        } else {
            "RESTRICT"
        }
    }
}

/// One secondary index of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Index name as declared.
    pub name: String,
    /// `unique = ...` rather than `index = ...`.
    pub unique: bool,
    /// Columns in index order.
    pub columns: Vec<String>,
}

/// One dirty stream (F3) an entity's writes are published to: declared on the
/// entity (`#[orm(dirty = "stream")]` on the struct: every insert, update and
/// delete) or on fields (`#[orm(dirty = "stream")]` on a field: inserts, deletes,
/// and the updates that change one of those fields). A stream declared both ways
/// behaves as declared on the entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyStream {
    name: String,
    /// The declaring fields (paths) and their columns; empty when entity-level.
    fields: Vec<(String, String)>,
    entity_level: bool,
}

impl DirtyStream {
    /// The stream's name (a registered stream).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether any change of the entity is published (declared on the struct).
    pub fn is_entity_level(&self) -> bool {
        self.entity_level
    }

    /// The fields (paths such as `address.city`) whose change publishes an update;
    /// empty when [`DirtyStream::is_entity_level`].
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(f, _)| f.as_str())
    }

    /// Whether an update of these columns is published to this stream.
    #[cfg(feature = "redis")]
    pub(crate) fn covers<'c>(&self, mut columns: impl Iterator<Item = &'c str>) -> bool {
        self.entity_level || columns.any(|c| self.fields.iter().any(|(_, col)| col == c))
    }
}

/// The validated schema of one entity: table, pool, columns and indexes.
#[derive(Debug, Clone)]
pub struct TableSchema {
    entity: &'static str,
    table: String,
    pool: String,
    id: IdColumn,
    columns: Vec<Column>,
    indexes: Vec<Index>,
    foreign_keys: Vec<ForeignKey>,
    fake_delete: Option<usize>,
    templates: OnceLock<Templates>,
    /// The entity caches declared on the entity.
    cache: super::CacheDefinition,
    /// The entity's slot among the registry's entity caches (set by validate).
    cache_slot: Option<u32>,
    /// [`TableSchema::cache_signature`], computed on first use.
    signature: OnceLock<String>,
    /// The change-log table (`#[orm(log)]`), as a table schema of its own.
    log: Option<Box<TableSchema>>,
    /// Per column (same positions as `columns`): `#[orm(skip_log)]`.
    skip_log: Vec<bool>,
    /// The dirty streams (F3), one per stream name, in declaration order.
    dirty: Vec<DirtyStream>,
    /// The search index (`#[orm(search)]`), and per index field the position of its
    /// column in `columns`.
    search: Option<(crate::search::SearchIndex, Vec<usize>)>,
}

/// SQL fragments of a table, rendered once per table with its pool's quoting.
#[derive(Debug, Clone)]
pub(crate) struct Templates {
    /// Quoted table name.
    pub table: String,
    /// Quoted column names; `[0]` is the primary key.
    pub columns: Vec<String>,
    /// `SELECT <all columns> FROM <table>`.
    pub select: String,
    /// `SELECT <all columns> FROM <table> WHERE <id> = ?` (`$1` on PostgreSQL).
    pub select_by_id: String,
    /// `INSERT INTO <table> (<columns but id>) VALUES `.
    pub insert: String,
    /// `INSERT INTO <table> (<all columns>) VALUES `.
    pub insert_with_id: String,
}

/// Longest identifier MySQL accepts.
const MAX_IDENTIFIER: usize = 64;

impl TableSchema {
    /// Validates a definition against the registered enums.
    pub(crate) fn build(
        def: &EntityDefinition,
        enums: &HashMap<String, EnumDefinition>,
    ) -> Result<TableSchema> {
        let entity = def.type_name;
        let table = def.table.unwrap_or(entity).to_string();
        if table.len() > MAX_IDENTIFIER {
            return Err(Error::definition(
                entity,
                None,
                format!("table name `{table}` is longer than {MAX_IDENTIFIER} characters"),
            ));
        }
        let mut builder = Builder {
            entity,
            enums,
            columns: vec![Column {
                name: def.id_column.into(),
                field: def.id_field.into(),
                ty: ColumnType::Int {
                    bytes: def.id.bytes,
                    unsigned: true,
                },
                nullable: false,
                reference: None,
                primary_key: true,
            }],
            fake_delete: None,
            index_parts: BTreeMap::new(),
            skip_log: vec![false],
            dirty: Vec::new(),
            search: Vec::new(),
        };
        builder.add_fields(&def.fields, "", "", false, &[])?;
        let mut indexes = builder.indexes()?;
        // A one-to-one reference column gets an index unless one starts with it.
        for c in &builder.columns {
            if c.reference.as_ref().is_some_and(|r| !r.many)
                && !indexes.iter().any(|i| i.columns.first() == Some(&c.name))
                && !indexes.iter().any(|i| i.name.eq_ignore_ascii_case(&c.name))
            {
                indexes.push(Index {
                    name: c.name.clone(),
                    unique: false,
                    columns: vec![c.name.clone()],
                });
            }
        }
        indexes.sort_by(|a, b| a.name.cmp(&b.name));
        if def.id_column.len() > MAX_IDENTIFIER || def.id_column.is_empty() {
            return Err(Error::definition(
                entity,
                Some(def.id_field),
                format!(
                    "column name `{}` must be 1 to {MAX_IDENTIFIER} characters",
                    def.id_column
                ),
            ));
        }
        let dirty = builder.dirty_streams(def.dirty);
        let fake_delete = builder.fake_delete;
        if let Some(column) = fake_delete.and_then(|i| builder.columns.get_mut(i)) {
            // The column holds the row's ID once deleted (0 while alive), so deleted
            // duplicates under a unique index that includes it never clash.
            column.ty = ColumnType::Int {
                bytes: def.id.bytes,
                unsigned: true,
            };
        }
        let search = builder.search_index(def.search, &table)?;
        let pool = def.pool.unwrap_or(crate::DEFAULT_POOL).to_string();
        let log = if def.log {
            let log_pool = def.log_pool.unwrap_or(&pool);
            let log_table = format!("_log_{pool}_{table}");
            // PostgreSQL cuts names at 63 bytes; MySQL at 64.
            if log_table.len() > MAX_IDENTIFIER - 1 {
                return Err(Error::definition(
                    entity,
                    None,
                    format!(
                        "its change-log table name `{log_table}` is longer than {} characters (use a shorter table or pool name)",
                        MAX_IDENTIFIER - 1
                    ),
                ));
            }
            Some(Box::new(TableSchema::log_table(
                entity, log_table, log_pool,
            )))
        } else {
            None
        };
        Ok(TableSchema {
            entity,
            table,
            pool,
            id: def.id,
            columns: builder.columns,
            indexes,
            foreign_keys: Vec::new(),
            fake_delete,
            templates: OnceLock::new(),
            cache: def.cache,
            cache_slot: None,
            signature: OnceLock::new(),
            log,
            skip_log: builder.skip_log,
            dirty,
            search,
        })
    }

    /// The schema of a change-log table (see `crate::change_log`): `id`, `entity_id`,
    /// `added_at`, `meta`, `before`, `changes`, an index on `entity_id`.
    fn log_table(entity: &'static str, table: String, pool: &str) -> TableSchema {
        let column = |name: &str, ty: ColumnType, nullable: bool| Column {
            name: name.into(),
            field: name.into(),
            ty,
            nullable,
            reference: None,
            primary_key: name == "id",
        };
        let id = ColumnType::Int {
            bytes: 8,
            unsigned: true,
        };
        let columns = vec![
            column("id", id.clone(), false),
            column("entity_id", id, false),
            column("added_at", ColumnType::DateTimeMicros, false),
            column("meta", ColumnType::Json, true),
            column("before", ColumnType::Json, true),
            column("changes", ColumnType::Json, true),
        ];
        TableSchema {
            entity,
            table,
            pool: pool.to_string(),
            id: IdColumn { bytes: 8 },
            skip_log: vec![false; columns.len()],
            columns,
            indexes: vec![Index {
                name: "entity_id".into(),
                unique: false,
                columns: vec!["entity_id".into()],
            }],
            foreign_keys: Vec::new(),
            fake_delete: None,
            templates: OnceLock::new(),
            cache: super::CacheDefinition::default(),
            cache_slot: None,
            signature: OnceLock::new(),
            log: None,
            dirty: Vec::new(),
            search: None,
        }
    }

    /// Whether the entity keeps a change log (`#[orm(log)]`, `#[orm(log = "pool")]`):
    /// every committed insert, update and delete of a row writes a row to
    /// [`TableSchema::log_table_name`], in the same transaction.
    pub fn is_logged(&self) -> bool {
        self.log.is_some()
    }

    /// The relational pool of the change-log table (the entity's own pool unless
    /// `log = "pool"` names another); `None` when the entity is not logged.
    pub fn log_pool(&self) -> Option<&str> {
        self.log.as_deref().map(TableSchema::pool_name)
    }

    /// The change-log table, `_log_<pool>_<table>`; `None` when the entity is not
    /// logged.
    pub fn log_table_name(&self) -> Option<&str> {
        self.log.as_deref().map(TableSchema::table_name)
    }

    /// The change-log table as a table schema of its own (for the schema sync).
    pub(crate) fn log_schema(&self) -> Option<&TableSchema> {
        self.log.as_deref()
    }

    /// The columns marked `#[orm(skip_log)]` (columns of an embedded field marked
    /// so included): they never appear in change-log rows, and a change of only
    /// these writes no log row.
    pub fn skip_log_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .zip(&self.skip_log)
            .filter(|(_, skip)| **skip)
            .map(|(c, _)| c)
    }

    /// The dirty streams (F3) the entity's writes are published to, one per stream,
    /// in declaration order (the struct's first, then the fields'). Empty when the
    /// entity declares none.
    pub fn dirty_streams(&self) -> &[DirtyStream] {
        &self.dirty
    }

    /// The entity's full-text search index (`#[orm(search)]` and its `searchable` /
    /// `sortable` fields); `None` when it has none.
    pub fn search_index(&self) -> Option<&crate::search::SearchIndex> {
        self.search.as_ref().map(|(index, _)| index)
    }

    /// Per field of [`TableSchema::search_index`], the position of its column in
    /// [`TableSchema::columns`] (the primary key is 0).
    pub(crate) fn search_columns(&self) -> &[usize] {
        self.search.as_ref().map_or(&[], |(_, c)| c.as_slice())
    }

    /// Prefixes the search index's name with the cache namespace (validate).
    pub(crate) fn set_search_namespace(&mut self, namespace: &str) {
        if let Some((index, _)) = &mut self.search {
            let clean: String = namespace
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            index.name = format!("{clean}_{}", index.name);
        }
    }

    /// The entity caches declared on the entity (`local_cache`, `redis_cache`).
    pub fn cache_definition(&self) -> super::CacheDefinition {
        self.cache
    }

    /// The entity's slot among the registry's entity caches; `None` when uncached.
    #[inline]
    pub(crate) fn cache_slot(&self) -> Option<u32> {
        self.cache_slot
    }

    pub(crate) fn set_cache_slot(&mut self, slot: u32) {
        self.cache_slot = Some(slot);
    }

    /// The entity's Rust type name.
    pub fn entity_name(&self) -> &'static str {
        self.entity
    }

    /// The table name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The relational pool the table lives in.
    pub fn pool_name(&self) -> &str {
        &self.pool
    }

    /// The primary key column type.
    pub fn id_column(&self) -> IdColumn {
        self.id
    }

    /// The primary key column's name: `id`, or what `#[orm(column = "...")]` names
    /// on the primary key field. Every statement beeorm generates uses it.
    pub fn id_column_name(&self) -> &str {
        &self.columns[0].name
    }

    /// All columns, the primary key first, then in declaration order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Secondary indexes, sorted by name.
    pub fn indexes(&self) -> &[Index] {
        &self.indexes
    }

    /// Foreign keys of the table's reference columns.
    pub fn foreign_keys(&self) -> &[ForeignKey] {
        &self.foreign_keys
    }

    /// The reference columns: (column, reference), in column order.
    pub fn references(&self) -> impl Iterator<Item = (&Column, &Reference)> {
        self.columns
            .iter()
            .filter_map(|c| c.reference.as_ref().map(|r| (c, r)))
    }

    /// Checks that every referenced entity is registered in the same pool (`targets`:
    /// type → (table, pool, primary key column)) and sets up the foreign keys.
    pub(crate) fn resolve_references(
        &mut self,
        targets: &HashMap<std::any::TypeId, (String, String, String)>,
    ) -> Result<()> {
        let mut fks = Vec::new();
        for c in &self.columns {
            let Some(r) = &c.reference else { continue };
            let Some((table, pool, id_column)) = targets.get(&r.target) else {
                return Err(Error::definition(
                    self.entity,
                    Some(&c.field),
                    format!(
                        "it references entity `{}`, which is not registered",
                        r.entity
                    ),
                ));
            };
            if *pool != self.pool {
                return Err(Error::definition(
                    self.entity,
                    Some(&c.field),
                    format!(
                        "it references entity `{}` of pool `{pool}`; references stay inside one pool (`{}`)",
                        r.entity, self.pool
                    ),
                ));
            }
            if r.many || r.skip_fk {
                continue;
            }
            let name: String = format!("fk_{}_{}", self.table, c.name)
                .chars()
                .take(63)
                .collect();
            fks.push(ForeignKey {
                name,
                column: c.name.clone(),
                ref_table: table.clone(),
                ref_column: id_column.clone(),
                cascade: r.cascade,
            });
        }
        self.foreign_keys = fks;
        Ok(())
    }

    /// Whether the entity has an `#[orm(fake_delete)]` field (B7). Its column is an
    /// unsigned integer as wide as the ID: 0 while the row is alive, the row's ID once
    /// it is fake-deleted; the field reads `true` for any non-zero value.
    pub fn has_fake_delete(&self) -> bool {
        self.fake_delete.is_some()
    }

    /// Position of the fake-delete column among all columns (the primary key is 0).
    pub(crate) fn fake_delete_column(&self) -> Option<usize> {
        self.fake_delete
    }

    /// The name of the unique index over exactly these columns (any order).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // SQLite's errors name columns.
    pub(crate) fn unique_index_on(&self, columns: &[&str]) -> Option<&str> {
        if let [only] = columns {
            if *only == self.id_column_name() {
                return Some("PRIMARY");
            }
        }
        self.indexes
            .iter()
            .filter(|i| i.unique && i.columns.len() == columns.len())
            .find(|i| columns.iter().all(|c| i.columns.iter().any(|ic| ic == c)))
            .map(|i| i.name.as_str())
    }

    /// SQL fragments, rendered on first use in `kind`'s quoting and placeholder
    /// style (a table lives in one pool, so always the same `kind`).
    pub(crate) fn templates(&self, kind: crate::DialectKind) -> &Templates {
        self.templates.get_or_init(|| {
            let table = kind.quote(&self.table);
            let columns: Vec<String> = self.columns.iter().map(|c| kind.quote(&c.name)).collect();
            let select = format!("SELECT {} FROM {table}", columns.join(","));
            let mut by_id = kind.writer(select.len() + columns[0].len() + 12);
            by_id.push_str(&select);
            by_id.push_str(" WHERE ");
            by_id.push_str(&columns[0]);
            by_id.push_str(" = ");
            by_id.param();
            Templates {
                select_by_id: by_id.finish(),
                select,
                insert: format!("INSERT INTO {table} ({}) VALUES ", columns[1..].join(",")),
                insert_with_id: format!("INSERT INTO {table} ({}) VALUES ", columns.join(",")),
                table,
                columns,
            }
        })
    }

    /// The schema's part of a cache key (issue 12): 12 lowercase hex digits of a
    /// stable 64-bit hash (FNV-1a) of the table name, each column's name, field, type
    /// (with enum and set values, length, precision, scale, signedness), nullability
    /// and reference, and the row encoding's version. A changed struct gets other
    /// keys, so it never decodes bytes cached for the old one; the same definition
    /// gives the same signature in every build and process.
    #[cfg_attr(not(test), allow(dead_code))] // The entity cache (issue 12) comes next.
    pub(crate) fn cache_signature(&self) -> &str {
        self.signature.get_or_init(|| {
            let mut text = String::new();
            signature_text(self, &mut text);
            // The high 48 bits: FNV-1a mixes every input byte into them.
            format!("{:012x}", fnv1a64(text.as_bytes()) >> 16)
        })
    }
}

/// The canonical text the cache signature hashes: one line per item, each name
/// length-prefixed so that no two schemas write the same text.
fn signature_text(schema: &TableSchema, out: &mut String) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "beeorm-row codec {}",
        crate::cache::codec::CODEC_VERSION
    );
    let _ = writeln!(out, "table {}:{}", schema.table.len(), schema.table);
    for c in &schema.columns {
        let _ = write!(
            out,
            "column {}:{} {}:{} {} {}",
            c.name.len(),
            c.name,
            c.field.len(),
            c.field,
            if c.nullable { "null" } else { "not-null" },
            if c.primary_key { "pk" } else { "-" },
        );
        match &c.ty {
            ColumnType::Int { bytes, unsigned } => {
                let _ = write!(out, " int{bytes}{}", sign(*unsigned));
            }
            ColumnType::Bool => out.push_str(" bool"),
            ColumnType::Float { double, unsigned } => {
                let _ = write!(
                    out,
                    " float{}{}",
                    if *double { 8 } else { 4 },
                    sign(*unsigned)
                );
            }
            ColumnType::Decimal {
                precision,
                scale,
                unsigned,
            } => {
                let _ = write!(out, " decimal{precision},{scale}{}", sign(*unsigned));
            }
            ColumnType::Varchar(n) => {
                let _ = write!(out, " varchar{n}");
            }
            ColumnType::Text => out.push_str(" text"),
            ColumnType::Blob(size) => out.push_str(match size {
                super::types::BlobSize::Blob => " blob",
                super::types::BlobSize::Medium => " mediumblob",
                super::types::BlobSize::Long => " longblob",
            }),
            ColumnType::Date => out.push_str(" date"),
            ColumnType::DateTime => out.push_str(" datetime"),
            ColumnType::DateTimeMicros => out.push_str(" datetime6"),
            ColumnType::Time => out.push_str(" time"),
            ColumnType::Year => out.push_str(" year"),
            ColumnType::Enum(values) => enum_text(" enum", values, out),
            ColumnType::Set(values) => enum_text(" set", values, out),
            ColumnType::Json => out.push_str(" json"),
        }
        if let Some(r) = &c.reference {
            let _ = write!(
                out,
                " ref {}:{}{}",
                r.entity.len(),
                r.entity,
                if r.many { " many" } else { "" }
            );
        }
        out.push('\n');
    }
}

fn sign(unsigned: bool) -> &'static str {
    if unsigned {
        "u"
    } else {
        "s"
    }
}

fn enum_text(kind: &str, values: &EnumValues, out: &mut String) {
    use std::fmt::Write;
    out.push_str(kind);
    match values {
        EnumValues::Values { values, default } => {
            let _ = write!(out, "({}", values.len());
            for v in values {
                let _ = write!(out, " {}:{}", v.len(), v);
            }
            let _ = write!(out, " default {}:{})", default.len(), default);
        }
        // Resolved by `build`; kept apart all the same.
        EnumValues::Named(name) => {
            let _ = write!(out, "@{}:{}", name.len(), name);
        }
    }
}

/// The name of a search field kind, as `searchable = "..."` takes it.
fn kind_name(kind: crate::search::SearchFieldKind) -> &'static str {
    match kind {
        crate::search::SearchFieldKind::Text => "text",
        crate::search::SearchFieldKind::Numeric => "numeric",
        crate::search::SearchFieldKind::Tag => "tag",
    }
}

/// FNV-1a, 64 bits: a fixed function of the bytes (std's hashers may change between
/// releases and are seeded per process).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// (position, column, field) of one member of an index.
type IndexMember = (u8, String, String);

struct Builder<'a> {
    entity: &'static str,
    enums: &'a HashMap<String, EnumDefinition>,
    columns: Vec<Column>,
    /// Position of the `#[orm(fake_delete)]` column, once seen.
    fake_delete: Option<usize>,
    /// (name) → (unique, [(position, column, field)]).
    index_parts: BTreeMap<String, (bool, Vec<IndexMember>)>,
    /// Per column: `#[orm(skip_log)]` (on the field or on its embedded holder).
    skip_log: Vec<bool>,
    /// Field-level dirty declarations: (stream, field path, column).
    dirty: Vec<(&'static str, String, String)>,
    /// `searchable` columns: (field path, column position, kind as written, sortable).
    search: Vec<(String, usize, &'static str, bool)>,
}

impl Builder<'_> {
    /// The search index of `#[orm(search = pool)]` (`None`: the entity has none),
    /// named after `table`; every `searchable` field's kind inferred from its column
    /// or checked against it.
    fn search_index(
        &self,
        pool: Option<&'static str>,
        table: &str,
    ) -> Result<Option<(crate::search::SearchIndex, Vec<usize>)>> {
        use crate::search::{SearchField, SearchFieldKind, SearchIndex};
        let Some(pool) = pool else {
            return match self.search.first() {
                Some((field, ..)) => Err(Error::definition(
                    self.entity,
                    Some(field),
                    "it is `searchable`, but the entity has no search index: add `#[orm(search)]` to the entity",
                )),
                None => Ok(None),
            };
        };
        if self.search.is_empty() {
            return Err(Error::definition(
                self.entity,
                None,
                "it has a search index (`#[orm(search)]`) but no `searchable` or `sortable` field",
            ));
        }
        let mut fields = Vec::with_capacity(self.search.len());
        let mut columns = Vec::with_capacity(self.search.len());
        for (field, position, written, sortable) in &self.search {
            let column = &self.columns[*position];
            let fits: &[SearchFieldKind] = if Some(*position) == self.fake_delete {
                &[]
            } else if column.reference.is_some() {
                &[SearchFieldKind::Tag]
            } else {
                match &column.ty {
                    ColumnType::Varchar(_) | ColumnType::Text => {
                        &[SearchFieldKind::Text, SearchFieldKind::Tag]
                    }
                    ColumnType::Int { .. }
                    | ColumnType::Float { .. }
                    | ColumnType::Decimal { .. }
                    | ColumnType::Date
                    | ColumnType::DateTime
                    | ColumnType::DateTimeMicros
                    | ColumnType::Year => &[SearchFieldKind::Numeric],
                    ColumnType::Bool | ColumnType::Enum(_) | ColumnType::Set(_) => {
                        &[SearchFieldKind::Tag]
                    }
                    ColumnType::Blob(_) | ColumnType::Time | ColumnType::Json => &[],
                }
            };
            let Some(inferred) = fits.first().copied() else {
                return Err(Error::definition(
                    self.entity,
                    Some(field),
                    "its column type cannot be indexed for search (strings, numbers, dates, \
                     bools, enums, sets and references can; not the fake-delete flag)",
                ));
            };
            let kind = match *written {
                "" => inferred,
                "text" => SearchFieldKind::Text,
                "numeric" => SearchFieldKind::Numeric,
                "tag" => SearchFieldKind::Tag,
                other => {
                    return Err(Error::definition(
                        self.entity,
                        Some(field),
                        format!("unknown search field kind `{other}` (text, numeric or tag)"),
                    ))
                }
            };
            if !fits.contains(&kind) {
                let names: Vec<&str> = fits.iter().map(|k| kind_name(*k)).collect();
                return Err(Error::definition(
                    self.entity,
                    Some(field),
                    format!(
                        "`searchable = \"{written}\"` does not fit its column type; it can be indexed as: {}",
                        names.join(", ")
                    ),
                ));
            }
            fields.push(SearchField {
                name: column.name.clone(),
                kind,
                sortable: *sortable,
            });
            columns.push(*position);
        }
        Ok(Some((
            SearchIndex {
                name: table.to_string(),
                pool: pool.to_string(),
                fields,
            },
            columns,
        )))
    }

    /// The entity's dirty streams: `entity` (the struct's), then the fields' streams
    /// not declared on the struct, each once.
    fn dirty_streams(&self, entity: &[&'static str]) -> Vec<DirtyStream> {
        let mut out: Vec<DirtyStream> = entity
            .iter()
            .map(|s| DirtyStream {
                name: (*s).to_string(),
                fields: Vec::new(),
                entity_level: true,
            })
            .collect();
        for (stream, field, column) in &self.dirty {
            match out.iter_mut().find(|d| d.name == *stream) {
                Some(d) if d.entity_level => {}
                Some(d) => d.fields.push((field.clone(), column.clone())),
                None => out.push(DirtyStream {
                    name: (*stream).to_string(),
                    fields: vec![(field.clone(), column.clone())],
                    entity_level: false,
                }),
            }
        }
        out
    }

    /// Adds the columns of `fields`; `dirty` holds the dirty streams of the
    /// embedded field they belong to (none at the top).
    fn add_fields(
        &mut self,
        fields: &[FieldDefinition],
        prefix: &str,
        path: &str,
        skip_log: bool,
        dirty: &[&'static str],
    ) -> Result<()> {
        for f in fields {
            let name = format!("{prefix}{}", f.column);
            let field = format!("{path}{}", f.name);
            let streams: Vec<&'static str> =
                dirty.iter().chain(f.attributes.dirty).copied().collect();
            match f.shape {
                FieldShape::Embedded(inner) => {
                    let a = &f.attributes;
                    let plain = !a.required
                        && a.indexes.is_empty()
                        && a.uniques.is_empty()
                        && a.length.is_none()
                        && !a.mediumint
                        && a.decimal.is_none()
                        && a.unsigned.is_none()
                        && a.enum_name.is_none()
                        && a.set_name.is_none()
                        && !a.year
                        && !a.time
                        && !a.mediumblob
                        && !a.longblob
                        && !a.cascade
                        && !a.skip_fk
                        && !a.fake_delete
                        && a.searchable.is_none()
                        && !a.sortable;
                    if !plain {
                        return Err(Error::definition(
                            self.entity,
                            Some(&field),
                            "an embedded field takes no attributes besides `embedded`; put them on its fields",
                        ));
                    }
                    self.add_fields(
                        &inner(),
                        &format!("{name}_"),
                        &format!("{field}."),
                        skip_log || a.skip_log,
                        &streams,
                    )?;
                }
                FieldShape::Column(spec) => {
                    let spec = (spec)(&f.attributes)
                        .map_err(|reason| Error::definition(self.entity, Some(&field), reason))?;
                    let ty = self.resolve(spec.ty, &field)?;
                    if name.len() > MAX_IDENTIFIER {
                        return Err(Error::definition(
                            self.entity,
                            Some(&field),
                            format!(
                                "column name `{name}` is longer than {MAX_IDENTIFIER} characters"
                            ),
                        ));
                    }
                    if let Some(other) = self.columns.iter().find(|c| c.name == name) {
                        return Err(Error::definition(
                            self.entity,
                            Some(&field),
                            format!(
                                "column `{name}` is also produced by field `{}`",
                                other.field
                            ),
                        ));
                    }
                    for (list, unique) in [
                        (&f.attributes.indexes, false),
                        (&f.attributes.uniques, true),
                    ] {
                        for IndexPosition {
                            name: index,
                            position,
                        } in list
                        {
                            self.add_index_part(index, unique, *position, &name, &field)?;
                        }
                    }
                    let reference = spec.reference.map(|r| Reference {
                        entity: (r.target)().type_name,
                        target: (r.target_type)(),
                        many: r.many,
                        cascade: f.attributes.cascade,
                        skip_fk: f.attributes.skip_fk,
                    });
                    if f.attributes.fake_delete {
                        if ty != ColumnType::Bool || spec.nullable || !prefix.is_empty() {
                            return Err(Error::definition(
                                self.entity,
                                Some(&field),
                                "`fake_delete` goes on a `bool` field of the entity itself",
                            ));
                        }
                        if self.fake_delete.is_some() {
                            return Err(Error::definition(
                                self.entity,
                                Some(&field),
                                "an entity has at most one `fake_delete` field",
                            ));
                        }
                        self.fake_delete = Some(self.columns.len());
                    }
                    for stream in streams {
                        self.dirty.push((stream, field.clone(), name.clone()));
                    }
                    if let Some(kind) = f.attributes.searchable {
                        self.search.push((
                            field.clone(),
                            self.columns.len(),
                            kind,
                            f.attributes.sortable,
                        ));
                    }
                    self.columns.push(Column {
                        name,
                        field,
                        ty,
                        nullable: spec.nullable,
                        reference,
                        primary_key: false,
                    });
                    self.skip_log.push(skip_log || f.attributes.skip_log);
                }
            }
        }
        Ok(())
    }

    fn resolve(&self, ty: ColumnType, field: &str) -> Result<ColumnType> {
        let lookup = |name: &str| -> Result<EnumValues> {
            let e = self.enums.get(name).ok_or_else(|| {
                Error::definition(
                    self.entity,
                    Some(field),
                    format!("enum `{name}` is not registered (use Registry::register_enum_list/map or a #[derive(OrmEnum)] type)"),
                )
            })?;
            Ok(EnumValues::Values {
                values: e.fields().to_vec(),
                default: e.default_value().to_string(),
            })
        };
        Ok(match ty {
            ColumnType::Enum(EnumValues::Named(n)) => ColumnType::Enum(lookup(n)?),
            ColumnType::Set(EnumValues::Named(n)) => ColumnType::Set(lookup(n)?),
            other => other,
        })
    }

    fn add_index_part(
        &mut self,
        index: &str,
        unique: bool,
        position: u8,
        column: &str,
        field: &str,
    ) -> Result<()> {
        if index.eq_ignore_ascii_case("primary") {
            return Err(Error::definition(
                self.entity,
                Some(field),
                "`PRIMARY` is reserved for the primary key",
            ));
        }
        // MySQL and SQLite compare index names without regard to case.
        if let Some(other) = self
            .index_parts
            .keys()
            .find(|k| k.as_str() != index && k.eq_ignore_ascii_case(index))
        {
            return Err(Error::definition(
                self.entity,
                Some(field),
                format!("index `{index}` differs from index `{other}` only in case; the database sees one name"),
            ));
        }
        let entry = self
            .index_parts
            .entry(index.to_string())
            .or_insert_with(|| (unique, Vec::new()));
        if entry.0 != unique {
            return Err(Error::definition(
                self.entity,
                Some(field),
                format!("`{index}` is declared both as `index` and as `unique`"),
            ));
        }
        if let Some((_, _, other)) = entry.1.iter().find(|(p, _, _)| *p == position) {
            return Err(Error::definition(
                self.entity,
                Some(field),
                format!(
                    "position {position} of index `{index}` is already taken by field `{other}`"
                ),
            ));
        }
        entry
            .1
            .push((position, column.to_string(), field.to_string()));
        Ok(())
    }

    fn indexes(&mut self) -> Result<Vec<Index>> {
        let mut out = Vec::new();
        for (name, (unique, mut parts)) in std::mem::take(&mut self.index_parts) {
            parts.sort_by_key(|(p, _, _)| *p);
            for (i, (p, _, field)) in parts.iter().enumerate() {
                if usize::from(*p) != i + 1 {
                    return Err(Error::definition(
                        self.entity,
                        Some(field),
                        format!("index `{name}` has no field at position {}; positions must run 1, 2, 3, … without gaps", i + 1),
                    ));
                }
            }
            out.push(Index {
                name,
                unique,
                columns: parts.into_iter().map(|(_, c, _)| c).collect(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Entity;

    /// The base definition; each one below changes one thing.
    #[derive(crate::Entity)]
    #[orm(table = "sig")]
    #[allow(dead_code)]
    struct Base {
        id: u64,
        #[orm(length = 50)]
        name: String,
        age: Option<u8>,
        #[orm(enum = "sizes")]
        size: String,
        #[orm(decimal = "10,2")]
        price: f64,
    }

    /// Base again under another Rust name: the same table and columns.
    #[derive(crate::Entity)]
    #[orm(table = "sig")]
    #[allow(dead_code)]
    struct Same {
        id: u64,
        #[orm(length = 50)]
        name: String,
        age: Option<u8>,
        #[orm(enum = "sizes")]
        size: String,
        #[orm(decimal = "10,2")]
        price: f64,
    }

    #[derive(crate::Entity)]
    #[orm(table = "sig")]
    #[allow(dead_code)]
    struct WiderAge {
        id: u64,
        #[orm(length = 50)]
        name: String,
        age: Option<u16>,
        #[orm(enum = "sizes")]
        size: String,
        #[orm(decimal = "10,2")]
        price: f64,
    }

    #[derive(crate::Entity)]
    #[orm(table = "sig")]
    #[allow(dead_code)]
    struct RequiredAge {
        id: u64,
        #[orm(length = 50)]
        name: String,
        age: u8,
        #[orm(enum = "sizes")]
        size: String,
        #[orm(decimal = "10,2")]
        price: f64,
    }

    #[derive(crate::Entity)]
    #[orm(table = "sig")]
    #[allow(dead_code)]
    struct RenamedColumn {
        id: u64,
        #[orm(length = 50)]
        name: String,
        #[orm(column = "years")]
        age: Option<u8>,
        #[orm(enum = "sizes")]
        size: String,
        #[orm(decimal = "10,2")]
        price: f64,
    }

    #[derive(crate::Entity)]
    #[orm(table = "sig2")]
    #[allow(dead_code)]
    struct OtherTable {
        id: u64,
        #[orm(length = 50)]
        name: String,
        age: Option<u8>,
        #[orm(enum = "sizes")]
        size: String,
        #[orm(decimal = "10,2")]
        price: f64,
    }

    #[derive(crate::Entity)]
    #[orm(table = "sig")]
    #[allow(dead_code)]
    struct OtherScale {
        id: u64,
        #[orm(length = 50)]
        name: String,
        age: Option<u8>,
        #[orm(enum = "sizes")]
        size: String,
        #[orm(decimal = "10,3")]
        price: f64,
    }

    #[derive(crate::Entity)]
    #[orm(table = "sig")]
    #[allow(dead_code)]
    struct LongerName {
        id: u64,
        #[orm(length = 51)]
        name: String,
        age: Option<u8>,
        #[orm(enum = "sizes")]
        size: String,
        #[orm(decimal = "10,2")]
        price: f64,
    }

    fn schema_with<E: Entity>(sizes: &[&str]) -> TableSchema {
        let enums = HashMap::from([(
            "sizes".to_string(),
            EnumDefinition::from_list("sizes", sizes),
        )]);
        TableSchema::build(&E::definition(), &enums).expect("a valid definition")
    }

    fn signature<E: Entity>() -> String {
        schema_with::<E>(&["s", "m"]).cache_signature().to_string()
    }

    #[test]
    fn fnv1a64_gives_the_published_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_known_definition_has_a_fixed_signature() {
        // Changing this value changes every cache key: only with a new row encoding
        // or a deliberate change of what the signature covers.
        let sig = signature::<Base>();
        assert_eq!(sig, "6c8768d8107a");
        assert_eq!(sig.len(), 12);
        assert!(sig
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn the_same_definition_gives_the_same_signature() {
        let a = schema_with::<Base>(&["s", "m"]);
        let b = schema_with::<Base>(&["s", "m"]);
        assert_eq!(a.cache_signature(), b.cache_signature());
        // Computed once: the same string every call.
        assert!(std::ptr::eq(a.cache_signature(), a.cache_signature()));
        assert_eq!(signature::<Same>(), signature::<Base>());
    }

    #[test]
    fn any_change_of_the_definition_changes_the_signature() {
        let base = signature::<Base>();
        let changed = [
            ("a column type", signature::<WiderAge>()),
            ("nullability", signature::<RequiredAge>()),
            ("a column name", signature::<RenamedColumn>()),
            ("the table", signature::<OtherTable>()),
            ("a decimal scale", signature::<OtherScale>()),
            ("a length", signature::<LongerName>()),
            (
                "an enum value",
                schema_with::<Base>(&["s", "m", "l"])
                    .cache_signature()
                    .to_string(),
            ),
            (
                "the order of enum values",
                schema_with::<Base>(&["m", "s"])
                    .cache_signature()
                    .to_string(),
            ),
        ];
        for (what, sig) in &changed {
            assert_ne!(*sig, base, "changing {what} kept the signature");
        }
        for (i, (what, a)) in changed.iter().enumerate() {
            for (other, b) in &changed[i + 1..] {
                assert_ne!(a, b, "{what} and {other} give one signature");
            }
        }
    }

    #[test]
    fn the_signature_covers_the_codec_version() {
        let schema = schema_with::<Base>(&["s", "m"]);
        let mut text = String::new();
        signature_text(&schema, &mut text);
        assert!(text.starts_with(&format!(
            "beeorm-row codec {}\n",
            crate::cache::codec::CODEC_VERSION
        )));
    }
}
