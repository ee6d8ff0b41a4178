//! The relational layer: one folder per driver, the pool front, the dialects.
//!
//! Layers, from the bottom:
//! - `mysql/`, `postgres/`, `sqlite/`: everything one server does its own way — its
//!   connection (pool, statements, transactions, cancel safety), values, error
//!   mapping, introspection and DDL. Each is behind its cargo feature (`mysql`,
//!   `postgres`, `sqlite`; all on by default); their DDL and introspection compile
//!   without it, as they only build text and read through the pool front.
//! - [`pool`]: the pool front ([`SqlPool`](pool::SqlPool), `Conn`): dispatch,
//!   timeouts, tracing and instrumentation of every statement.
//! - [`DialectKind`] ([`dialect`]): what the flush and the loaders need to know about
//!   a server to plan statements — placeholders, parameter limits, `RETURNING`, how
//!   the first inserted ID is reported, sequences, upserts — as cheap `match`es (no
//!   dynamic call per row). [`Dialect`] is the DDL side, used by schema sync.
//! - [`SqlWriter`] ([`placeholders`]): SQL rendered in the dialect's own placeholder
//!   style (`?`, or `$1`, `$2`, … on PostgreSQL) when it is generated; every
//!   statement is then sent verbatim (nothing rewrites SQL at execution).
//!
//! Nothing outside `sql/` knows which server it talks to beyond [`DialectKind`].

#[cfg(not(any(feature = "mysql", feature = "postgres", feature = "sqlite")))]
compile_error!(
    "beeorm needs at least one relational driver: enable the cargo feature `mysql`, `postgres` or `sqlite`"
);

pub(crate) mod dialect;
pub(crate) mod mysql;
pub(crate) mod placeholders;
pub(crate) mod pool;
pub(crate) mod postgres;
pub(crate) mod replicas;
pub(crate) mod sqlite;
#[cfg(all(test, feature = "mysql"))]
mod strict_tests;
pub(crate) mod value;

use std::collections::BTreeMap;

pub use dialect::DialectKind;
pub(crate) use placeholders::SqlWriter;
pub use pool::ExecResult;

use crate::schema::{Column, ForeignKey, Index, TableSchema};

/// SQL generation and comparison rules of one server.
pub(crate) trait Dialect {
    /// Quotes an identifier.
    fn quote(&self, ident: &str) -> String;
    /// The full column definition used in CREATE TABLE and ADD COLUMN.
    fn column_definition(&self, col: &Column) -> String;
    /// What the column looks like when read back from the server, for comparison.
    fn column_key(&self, col: &Column) -> String;
    /// The index's name on the server.
    fn index_name(&self, table: &TableSchema, index: &Index) -> String;
    /// What the index looks like when read back from the server, for comparison.
    fn index_key(&self, table: &TableSchema, index: &Index) -> String;
    /// Statements that create the table and its indexes.
    fn create_table(&self, table: &TableSchema) -> Vec<String>;
    /// What the foreign key looks like when read back from the server.
    fn foreign_key_key(&self, fk: &ForeignKey) -> String {
        format!("{}|{}|{}", fk.column, fk.ref_table, fk.on_delete())
    }
    /// `CONSTRAINT name FOREIGN KEY (col) REFERENCES table (its key) ON DELETE …`.
    fn foreign_key_clause(&self, fk: &ForeignKey) -> String {
        format!(
            "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}",
            self.quote(&fk.name),
            self.quote(&fk.column),
            self.quote(&fk.ref_table),
            self.quote(&fk.ref_column),
            fk.on_delete()
        )
    }
}

/// What a pool's database holds, read in a few queries, in comparable form.
#[derive(Debug, Default)]
pub(crate) struct DbSnapshot {
    pub tables: BTreeMap<String, DbTable>,
}

/// One existing table, in the form the dialect's `*_key` methods produce.
#[derive(Debug, Default)]
pub(crate) struct DbTable {
    /// (column name, comparison key), in table order.
    pub columns: Vec<(String, String)>,
    /// index name on the server → comparison key (primary key excluded).
    pub indexes: BTreeMap<String, String>,
    /// The table's character set, where the server has one.
    pub charset: Option<String>,
    /// Names of the table's CHECK constraints (PostgreSQL enum columns).
    pub checks: Vec<String>,
    /// Foreign key name → comparison key ([`Dialect::foreign_key_key`]).
    pub foreign_keys: BTreeMap<String, String>,
}

/// Quotes a string literal the SQL-standard way (`'` doubled).
pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Adds indexes read as (table, index, unique, column), one row per member in
/// position order, to a snapshot, keyed like [`Dialect::index_key`]:
/// `unique(a,b)` / `index(a,b)`.
pub(crate) fn add_indexes(
    snap: &mut DbSnapshot,
    rows: impl IntoIterator<Item = (String, String, bool, String)>,
) {
    let mut grouped: BTreeMap<(String, String), (bool, Vec<String>)> = BTreeMap::new();
    for (table, index, unique, column) in rows {
        grouped
            .entry((table, index))
            .or_insert_with(|| (unique, Vec::new()))
            .1
            .push(column);
    }
    for ((table, index), (unique, cols)) in grouped {
        if let Some(t) = snap.tables.get_mut(&table) {
            let kind = if unique { "unique" } else { "index" };
            t.indexes
                .insert(index, format!("{kind}({})", cols.join(",")));
        }
    }
}

/// Adds foreign keys read as (table, name, column, referenced table, delete rule)
/// to a snapshot, keyed like [`Dialect::foreign_key_key`].
pub(crate) fn add_foreign_keys(snap: &mut DbSnapshot, rows: impl Iterator<Item = [String; 5]>) {
    for [table, name, column, ref_table, rule] in rows {
        if let Some(t) = snap.tables.get_mut(&table) {
            t.foreign_keys
                .insert(name, format!("{column}|{ref_table}|{rule}"));
        }
    }
}
