//! SQLite errors: a failure mapped to a typed [`Error`]. SQLite names the columns of
//! a broken unique index (`UNIQUE constraint failed: t.a, t.b`), not the index: the
//! error first carries the columns, and [`name_unique_index`] turns them into the
//! index's name once the caller knows the table's schema. It never says which
//! foreign key failed.

use crate::schema::TableSchema;
use crate::Error;

/// Whether a SQLite constraint error is a foreign key one.
pub(crate) fn msg_is_foreign_key(e: &rusqlite::Error) -> bool {
    e.to_string().contains("FOREIGN KEY constraint failed")
}

pub(crate) fn map_error(pool: &str, sql: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ffi;
    let pool_name = pool.to_string();
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        match f.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                // "UNIQUE constraint failed: t.a, t.b": SQLite names columns, not the
                // index; the caller that knows the table maps them to its index name.
                let cols = msg
                    .as_deref()
                    .and_then(|m| m.split_once(": "))
                    .map(|(_, c)| c.to_string())
                    .unwrap_or_default();
                let index = if f.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY {
                    "PRIMARY".to_string()
                } else {
                    cols
                };
                return Error::DuplicatedKey {
                    pool: pool_name,
                    index,
                    source: Box::new(e),
                };
            }
            // ON DELETE RESTRICT runs as a trigger: same message, another code.
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY | ffi::SQLITE_CONSTRAINT_TRIGGER
                if msg_is_foreign_key(&e) =>
            {
                // SQLite does not say which constraint failed.
                return Error::ForeignKey {
                    pool: pool_name,
                    constraint: None,
                    source: Box::new(e),
                };
            }
            _ => {}
        }
    }
    Error::Database {
        pool: pool_name,
        sql: sql.to_string(),
        source: Box::new(e),
    }
}

/// A duplicate key error whose index SQLite gave as columns (`t.a, t.b`), with the
/// name of the schema's unique index on those columns instead; any other error as
/// it is. The flush calls this with the schema of the table it wrote.
pub(crate) fn name_unique_index(e: Error, schema: &TableSchema) -> Error {
    match e {
        Error::DuplicatedKey {
            pool,
            index,
            source,
        } if index.contains('.') => {
            let columns: Vec<&str> = index
                .split(", ")
                .filter_map(|c| c.split_once('.').map(|(_, c)| c))
                .collect();
            let name = schema
                .unique_index_on(&columns)
                .map(str::to_string)
                .unwrap_or(index);
            Error::DuplicatedKey {
                pool,
                index: name,
                source,
            }
        }
        other => other,
    }
}
