//! Every place where the write path differs per dialect, each in one small function
//! with no flush state: the RETURNING suffix of a server-numbered insert, the upsert
//! clause, PostgreSQL's lookups of the row an upsert clashed with and its sequence
//! after explicit IDs, the first ID of a multi-row insert (with the server's
//! `auto_increment_increment`), whether an upsert inserted, and the naming of a
//! broken unique index from SQLite's column list. A later step moves them into each
//! driver's dialect object; until then the planner and the executor call them here,
//! and nothing else in `flush/` matches on [`DialectKind`].

use crate::schema::TableSchema;
use crate::sql::pool::SqlPool;
use crate::{DialectKind, Error, Value};

/// The suffix that makes an INSERT of server-numbered rows return their IDs, in the
/// order of the VALUES rows (PostgreSQL: `RETURNING id`); empty where the server
/// reports an insert ID instead, or when the IDs are given.
pub(super) fn insert_returning(kind: DialectKind, id_col: &str, explicit_id: bool) -> String {
    if !explicit_id && kind == DialectKind::Postgres {
        format!(" RETURNING {id_col}")
    } else {
        String::new()
    }
}

/// Whether a server-numbered INSERT returns its IDs as rows (see [`insert_returning`]).
pub(super) fn insert_returns_ids(kind: DialectKind) -> bool {
    kind == DialectKind::Postgres
}

/// Whether an upsert statement returns the row's ID as a row (else the server's
/// insert ID holds it).
pub(super) fn upsert_returns_id(kind: DialectKind) -> bool {
    kind != DialectKind::MySql
}

/// Appends the clause that turns `INSERT … VALUES (…)` into an upsert. `params` holds
/// the `width` row values followed by the update list's values (`assignments`, each
/// `column = ?`). MySQL (`ON DUPLICATE KEY UPDATE`) and SQLite (`ON CONFLICT DO
/// UPDATE` without a target) take whichever key clashed; PostgreSQL's `ON CONFLICT …
/// DO UPDATE` takes one arbiter index only, so it inserts unless anything clashes and
/// the executor finds the clashing row by each unique key ([`pg_upsert_lookups`]).
pub(super) fn upsert_clause(
    kind: DialectKind,
    sql: &mut String,
    params: &mut Vec<Value>,
    width: usize,
    id_col: &str,
    assignments: &[String],
) {
    match kind {
        DialectKind::MySql => {
            // LAST_INSERT_ID(id) makes the server report the existing row's ID.
            sql.push_str(&format!(
                " ON DUPLICATE KEY UPDATE {id_col} = LAST_INSERT_ID({id_col})"
            ));
            for a in assignments {
                sql.push_str(", ");
                sql.push_str(a);
            }
        }
        DialectKind::Postgres => {
            sql.push_str(&format!(" ON CONFLICT DO NOTHING RETURNING {id_col}"));
            params.truncate(width);
        }
        DialectKind::Sqlite => {
            sql.push_str(" ON CONFLICT DO UPDATE SET ");
            if assignments.is_empty() {
                sql.push_str(&format!("{id_col} = {id_col}"));
            } else {
                sql.push_str(&assignments.join(", "));
            }
            sql.push_str(&format!(" RETURNING {id_col}"));
        }
    }
}

/// Whether an upsert inserted its row (`Some(true)`) or took an existing one
/// (`Some(false)`), from what the statement reported: on MySQL its affected rows (1
/// for an insert, 2 for a changed existing row, 0 for an unchanged one); on
/// PostgreSQL whether `ON CONFLICT DO NOTHING` returned the new ID. SQLite's upsert
/// reports neither: `None`.
pub(super) fn upsert_inserted(
    kind: DialectKind,
    affected_rows: Option<u64>,
    returned: bool,
) -> Option<bool> {
    match kind {
        DialectKind::MySql => match affected_rows {
            Some(1) => Some(true),
            Some(0 | 2) => Some(false),
            _ => None,
        },
        DialectKind::Postgres => Some(returned),
        DialectKind::Sqlite => None,
    }
}

/// The statements that find the row an upsert clashed with on PostgreSQL, one per
/// unique key of the entity's values, in the order they are tried: `id` when it was
/// given, then each unique index (in name order). Each updates the row with `set`
/// and returns its ID (or, with nothing to set, selects the ID). A key with a NULL
/// value cannot have clashed and is skipped.
pub(super) fn pg_upsert_lookups(
    pool: &SqlPool,
    schema: &TableSchema,
    id: u64,
    values: &[Value],
    set: &[(String, Value)],
) -> Vec<(String, Vec<Value>)> {
    let t = schema.templates(|s| pool.quote(s));
    let id_col = &t.columns[0];
    let mut keys: Vec<Vec<(&str, Value)>> = Vec::new();
    if id != 0 {
        keys.push(vec![(id_col.as_str(), Value::U64(id))]);
    }
    for index in schema.indexes().iter().filter(|i| i.unique) {
        let key: Option<Vec<(&str, Value)>> = index
            .columns
            .iter()
            .map(|c| {
                let pos = schema.columns().iter().position(|col| col.name == *c)?;
                let v = values.get(pos.checked_sub(1)?)?;
                (!v.is_null()).then(|| (t.columns[pos].as_str(), v.clone()))
            })
            .collect();
        keys.extend(key);
    }
    let assignments: Vec<String> = set
        .iter()
        .map(|(c, _)| format!("{} = ?", pool.quote(c)))
        .collect();
    keys.into_iter()
        .map(|key| {
            let cond: Vec<String> = key.iter().map(|(c, _)| format!("{c} = ?")).collect();
            let cond = cond.join(" AND ");
            let mut params: Vec<Value> = Vec::with_capacity(set.len() + key.len());
            let sql = if assignments.is_empty() {
                format!("SELECT {id_col} FROM {} WHERE {cond}", t.table)
            } else {
                params.extend(set.iter().map(|(_, v)| v.clone()));
                format!(
                    "UPDATE {} SET {} WHERE {cond} RETURNING {id_col}",
                    t.table,
                    assignments.join(", ")
                )
            };
            params.extend(key.into_iter().map(|(_, v)| v));
            (sql, params)
        })
        .collect()
}

/// Whether rows inserted with explicit IDs leave the table's ID sequence behind
/// (PostgreSQL: explicit IDs do not move an identity sequence), so that
/// [`sequence_after_explicit_ids`] must follow them.
pub(super) fn explicit_ids_move_sequence(kind: DialectKind) -> bool {
    kind == DialectKind::Postgres
}

/// The statement that moves the table's ID sequence past its largest ID (see
/// [`explicit_ids_move_sequence`]).
pub(super) fn sequence_after_explicit_ids(pool: &SqlPool, schema: &TableSchema) -> String {
    let t = schema.templates(|s| pool.quote(s));
    format!(
        "SELECT setval(pg_get_serial_sequence('{}', '{}'), (SELECT MAX({}) FROM {}))",
        t.table.replace('\'', "''"),
        schema.id_column_name().replace('\'', "''"),
        t.columns[0],
        t.table
    )
}

/// The ID of the first of `n` rows one INSERT numbered `step` apart, from the insert
/// ID the server reported: MySQL reports the first row's, SQLite the last row's.
pub(super) fn first_insert_id(kind: DialectKind, reported: u64, n: u64, step: u64) -> u64 {
    match kind {
        DialectKind::Sqlite => reported.saturating_sub(n.saturating_sub(1) * step),
        _ => reported,
    }
}

/// SQLite names the columns of a broken unique index (`t.a, t.b`); give the index's
/// name, as the other dialects do. Other errors pass through.
pub(super) fn name_index(e: Error, schema: Option<&TableSchema>) -> Error {
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
                .and_then(|s| s.unique_index_on(&columns).map(str::to_string))
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
