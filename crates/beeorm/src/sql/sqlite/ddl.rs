//! SQLite DDL: column types, CREATE TABLE (foreign keys included), the statements of
//! a table rebuild.
//!
//! SQLite keeps the text of every `CREATE TABLE` / `CREATE INDEX` it ran (and splices
//! `ADD COLUMN` definitions into it), so a column or index is compared by the exact text
//! this module generates: no guessing from affinities (see [`super::introspect`]).

use crate::schema::{BlobSize, Column, ColumnType, EnumValues, Index, TableSchema};
use crate::sql::{quote_literal, Dialect};

/// How a table rebuild script starts: foreign keys off (a no-op inside a transaction,
/// so before `BEGIN`), then the transaction.
pub(crate) const REBUILD_HEAD: &str = "PRAGMA foreign_keys = OFF;\nBEGIN;\n";

/// How a table rebuild script ends: the foreign key check, the commit, foreign keys on.
/// The pool runs the check itself and rolls back on a violation.
pub(crate) const REBUILD_TAIL: &str =
    ";\nPRAGMA foreign_key_check;\nCOMMIT;\nPRAGMA foreign_keys = ON";

/// DDL rules for SQLite.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SqliteDialect;

/// Significant digits an f64 (SQLite's REAL) always keeps.
const SQLITE_EXACT_DIGITS: u8 = 15;

/// The declared SQLite type of a column. Names are chosen for their affinity:
/// integers → INTEGER, floats → REAL, decimals and text → TEXT (exact), blobs → BLOB.
pub(crate) fn column_type(ty: &ColumnType) -> String {
    let int = |bytes: u8| match bytes {
        1 => "TINYINT",
        2 => "SMALLINT",
        3 => "MEDIUMINT",
        4 => "INT",
        _ => "BIGINT",
    };
    match ty {
        ColumnType::Int { bytes, unsigned } => {
            format!(
                "{}{}",
                int(*bytes),
                if *unsigned { " UNSIGNED" } else { "" }
            )
        }
        ColumnType::Bool => "BOOLEAN".into(),
        ColumnType::Float { double: false, .. } => "FLOAT".into(),
        ColumnType::Float { double: true, .. } => "DOUBLE".into(),
        // Up to 15 digits a decimal survives SQLite's REAL exactly and compares as a
        // number (NUMERIC affinity); wider ones are kept exact as TEXT.
        ColumnType::Decimal {
            precision, scale, ..
        } if *precision <= SQLITE_EXACT_DIGITS => {
            format!("DECIMAL({precision},{scale})")
        }
        ColumnType::Decimal { .. } | ColumnType::Text | ColumnType::Set(_) => "TEXT".into(),
        ColumnType::Enum(_) | ColumnType::Json => "TEXT".into(),
        ColumnType::Varchar(n) => format!("VARCHAR({n})"),
        ColumnType::Blob(BlobSize::Blob) => "BLOB".into(),
        ColumnType::Blob(BlobSize::Medium) => "MEDIUMBLOB".into(),
        ColumnType::Blob(BlobSize::Long) => "LONGBLOB".into(),
        ColumnType::Date => "DATE".into(),
        ColumnType::DateTime | ColumnType::DateTimeMicros => "DATETIME".into(),
        ColumnType::Time => "TIME".into(),
        ColumnType::Year => "YEAR".into(),
    }
}

/// The default of a NOT NULL column as an SQL literal. SQLite needs one for every
/// NOT NULL column added to an existing table.
fn default_literal(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Int { .. } | ColumnType::Bool | ColumnType::Float { .. } | ColumnType::Year => {
            "0".into()
        }
        ColumnType::Decimal { precision, .. } if *precision <= SQLITE_EXACT_DIGITS => "0".into(),
        ColumnType::Decimal { .. } => "'0'".into(),
        ColumnType::Varchar(_) | ColumnType::Text | ColumnType::Set(_) => "''".into(),
        ColumnType::Blob(_) => "x''".into(),
        ColumnType::Date => "'1970-01-01'".into(),
        ColumnType::DateTime | ColumnType::DateTimeMicros => "'1970-01-01 00:00:00'".into(),
        ColumnType::Time => "'00:00:00'".into(),
        ColumnType::Json => "'null'".into(),
        ColumnType::Enum(EnumValues::Values { default, .. }) => quote_literal(default),
        ColumnType::Enum(EnumValues::Named(_)) => "''".into(),
    }
}

impl Dialect for SqliteDialect {
    fn quote(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    fn column_definition(&self, col: &Column) -> String {
        let name = self.quote(&col.name);
        if col.primary_key {
            return format!("{name} INTEGER PRIMARY KEY AUTOINCREMENT");
        }
        let mut sql = format!("{name} {}", column_type(&col.ty));
        if !col.nullable {
            sql.push_str(" NOT NULL DEFAULT ");
            sql.push_str(&default_literal(&col.ty));
        }
        match &col.ty {
            ColumnType::Enum(EnumValues::Values { values, .. }) => {
                let list: Vec<String> = values.iter().map(|v| quote_literal(v)).collect();
                sql.push_str(&format!(" CHECK ({name} IN ({}))", list.join(",")));
            }
            ColumnType::Json => sql.push_str(&format!(" CHECK (json_valid({name}))")),
            _ => {}
        }
        sql
    }

    fn column_key(&self, col: &Column) -> String {
        self.column_definition(col)
    }

    fn index_name(&self, table: &TableSchema, index: &Index) -> String {
        // SQLite index names are global to the database, not per table.
        format!("{}__{}", table.table_name(), index.name)
    }

    fn index_key(&self, table: &TableSchema, index: &Index) -> String {
        let cols: Vec<String> = index.columns.iter().map(|c| self.quote(c)).collect();
        format!(
            "CREATE {}INDEX {} ON {} ({})",
            if index.unique { "UNIQUE " } else { "" },
            self.quote(&self.index_name(table, index)),
            self.quote(table.table_name()),
            cols.join(", ")
        )
    }

    fn create_table(&self, table: &TableSchema) -> Vec<String> {
        self.create_table_named(table, table.table_name())
    }

    fn foreign_key_key(&self, fk: &crate::schema::ForeignKey) -> String {
        self.foreign_key_clause(fk)
    }
}

impl SqliteDialect {
    /// CREATE TABLE under another name (used when a table is rebuilt) plus its indexes.
    pub(crate) fn create_table_named(&self, table: &TableSchema, name: &str) -> Vec<String> {
        let mut cols: Vec<String> = table
            .columns()
            .iter()
            .map(|c| format!("  {}", self.column_definition(c)))
            .collect();
        // Foreign keys live in CREATE TABLE: a change rebuilds the table.
        cols.extend(
            table
                .foreign_keys()
                .iter()
                .map(|fk| format!("  {}", self.foreign_key_clause(fk))),
        );
        let mut out = vec![format!(
            "CREATE TABLE {} (\n{}\n)",
            self.quote(name),
            cols.join(",\n")
        )];
        if name == table.table_name() {
            out.extend(table.indexes().iter().map(|i| self.index_key(table, i)));
        }
        out
    }
}

impl SqliteDialect {
    /// The expression that copies a column into a rebuilt table; NULLs become the
    /// default when the column turned NOT NULL.
    pub(crate) fn copy_expression(&self, col: &Column) -> String {
        let name = self.quote(&col.name);
        if col.nullable || col.primary_key {
            name
        } else {
            format!("COALESCE({name}, {})", default_literal(&col.ty))
        }
    }
}
