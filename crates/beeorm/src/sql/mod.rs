//! The relational layer: dialects (SQL text per server), pools, values.
//!
//! A [`Dialect`] turns the dialect-neutral schema ([`TableSchema`], [`ColumnType`]) into
//! SQL for one server and defines how an existing table is compared with it. Each
//! dialect has a module (`mysql`, `sqlite`; PostgreSQL slots in as `postgres`) holding
//! its DDL, its introspection and its connection pool. Nothing outside `sql/` knows
//! which server it talks to.
//!
//! [`TableSchema`]: crate::schema::TableSchema
//! [`ColumnType`]: crate::schema::ColumnType

pub(crate) mod db;
pub(crate) mod mysql;
pub(crate) mod pool;
pub(crate) mod postgres;
pub(crate) mod sqlite;
#[cfg(test)]
mod strict_tests;
pub(crate) mod value;

use std::collections::BTreeMap;

pub use db::{Db, Transaction};
pub use pool::ExecResult;

use crate::schema::{Column, ForeignKey, Index, TableSchema};

/// The kind of relational server behind a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialectKind {
    /// MySQL or MariaDB.
    MySql,
    /// SQLite (embedded).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

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
