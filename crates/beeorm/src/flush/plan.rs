//! Planning (pure, no I/O): the operations of one pool's entities become statements.
//! Inserts first (one multi-row INSERT per table, chunked under the parameter limit,
//! parents before children by the foreign keys between the tables), then upserts and
//! updates (one statement each), then deletes (one per table, children first). Every
//! value written is checked against its column here (`schema::limits`), and so are the
//! column names of an upsert's update list: a flush that cannot succeed fails before
//! anything is sent.
//!
//! What differs per dialect (RETURNING, the upsert clause, placeholders) is asked of
//! [`DialectKind`](crate::DialectKind): no branch on the server here. Every statement
//! is rendered in its dialect's placeholder style (`?`, or `$1`, `$2`, … on
//! PostgreSQL) with [`SqlWriter`] as it is planned, and reaches the server verbatim.

use std::collections::BTreeMap;

use super::item::{Flushable, Op};
use crate::schema::{fake_delete, limits, TableSchema};
use crate::sql::pool::SqlPool;
use crate::sql::SqlWriter;
use crate::tracked::DeleteMode;
use crate::{Error, Result, Value};

/// Most parameters one statement gets (SQLite allows 32,766, MySQL 65,535).
const MAX_PARAMS: usize = 30_000;

/// One entity's operation: its position in the flusher, the operation, its table.
pub(super) type Planned<'s> = (usize, Op, &'s TableSchema);
/// Rows to insert into one table: (position, explicit ID or 0).
type InsertRows<'s> = (&'s TableSchema, Vec<(usize, u64)>);
/// Rows to delete from one table: (position, ID).
type DeleteRows<'s> = (&'s TableSchema, Vec<(usize, u64)>);

/// The statements for one pool, with the entities each one concerns.
pub(super) struct Statement {
    pub(super) sql: String,
    pub(super) params: Vec<Value>,
    pub(super) kind: StatementKind,
    /// Positions in `Flusher::items`.
    pub(super) items: Vec<usize>,
}

/// What a statement does, which decides what its result means for the entities.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum StatementKind {
    /// Rows get consecutive IDs unless they carry their own.
    Insert {
        auto_ids: bool,
    },
    Upsert,
    Update,
    /// `fake`: the flag is set, the row stays.
    Delete {
        fake: bool,
    },
}

/// Turns the operations of one pool into statements: inserts first (one multi-row
/// INSERT per table), then upserts and updates (one each), then deletes (one per table).
/// Every value written is checked against its column here (`schema::limits`): a value
/// the column cannot hold exactly fails the flush before anything is sent.
pub(super) fn plan(
    pool: &SqlPool,
    ops: Vec<Planned<'_>>,
    step: Option<u64>,
    tracked: &[&mut dyn Flushable],
) -> Result<Vec<Statement>> {
    let kind = pool.kind();
    // (table, explicit id?) → rows; (table, fake?) → ids.
    let mut inserts: BTreeMap<(&str, bool), InsertRows<'_>> = BTreeMap::new();
    let mut deletes: BTreeMap<(&str, bool), DeleteRows<'_>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut singles = Vec::new();
    for (pos, op, schema) in ops {
        match op {
            Op::Nothing => {}
            Op::Insert { id } => inserts
                .entry((schema.table_name(), id != 0))
                .or_insert_with(|| (schema, Vec::new()))
                .1
                .push((pos, id)),
            Op::Delete { id, mode } => {
                let fake = mode == DeleteMode::Delete && schema.has_fake_delete();
                deletes
                    .entry((schema.table_name(), fake))
                    .or_insert_with(|| (schema, Vec::new()))
                    .1
                    .push((pos, id));
            }
            Op::Upsert {
                id,
                mut values,
                mut set,
            } => {
                if id != 0 {
                    limits::fit_column(schema, kind, 0, &mut Value::U64(id))?;
                }
                limits::fit_row(schema, kind, &mut values)?;
                for (column, v) in set.iter_mut() {
                    check_upsert_column(schema, column)?;
                    limits::fit_named(schema, kind, column, v)?;
                }
                let (st, deleted_without_id) = upsert(pool, pos, id, values, set, schema);
                singles.push(st);
                if deleted_without_id {
                    singles.extend(fake_delete_ids(pool, schema, vec![pos]));
                }
            }
            Op::Update { id, mut changed } => {
                for (i, v) in changed.iter_mut() {
                    limits::fit_column(schema, kind, *i + 1, v)?;
                }
                singles.push(update(pool, pos, id, changed, schema))
            }
        }
    }
    // Parents before children for inserts, children before parents for deletes (by
    // the foreign keys between the tables of this flush), then by name.
    let ranks = fk_ranks(inserts.values().chain(deletes.values()).map(|(s, _)| *s));
    let rank = |table: &str| ranks.get(table).copied().unwrap_or(0);
    let mut inserts: Vec<_> = inserts.into_iter().collect();
    inserts.sort_by_key(|((table, _), _)| rank(table));
    let mut deletes: Vec<_> = deletes.into_iter().collect();
    deletes.sort_by_key(|((table, _), _)| std::cmp::Reverse(rank(table)));
    for ((_, explicit_id), (schema, rows)) in inserts {
        let t = schema.templates(kind);
        let width = schema.columns().len() - usize::from(!explicit_id);
        // `(?,?,…)`: an upper bound of one VALUES row's length (`$n` is longer).
        let row_len = 2 + width * if kind.numbered_placeholders() { 7 } else { 2 };
        // Without the promise of consecutive IDs, one row per statement.
        let per_statement = if explicit_id || step.is_some() {
            (MAX_PARAMS / width.max(1)).max(1)
        } else {
            1
        };
        let head = if explicit_id {
            &t.insert_with_id
        } else {
            &t.insert
        };
        let returning = if explicit_id {
            None
        } else {
            kind.insert_returning(&t.columns[0])
        };
        let returning = returning.as_deref().unwrap_or("");
        // A row written fake-deleted holds its ID in the flag: put there now when the
        // ID is given; with a server-given ID the row is set aside (below).
        let flag = schema.fake_delete_column().and_then(|i| i.checked_sub(1));
        let mut deleted_without_id = Vec::new();
        let mut rows = rows.into_iter();
        while rows.len() > 0 {
            let n = rows.len().min(per_statement);
            let mut sql = kind.writer(head.len() + n * (row_len + 1) + returning.len());
            sql.push_str(head);
            let mut params = Vec::with_capacity(n * width);
            let mut items = Vec::with_capacity(n);
            for (pos, id) in rows.by_ref().take(n) {
                let start = params.len();
                if explicit_id {
                    let mut id = Value::U64(id);
                    limits::fit_column(schema, kind, 0, &mut id)?;
                    params.push(id);
                }
                let values_start = params.len();
                tracked[pos].write_values(&mut params);
                limits::fit_row(schema, kind, &mut params[values_start..])?;
                if let Some(cell) = flag.and_then(|f| params.get_mut(values_start + f)) {
                    if fake_delete::is_deleted(cell) {
                        if explicit_id {
                            *cell = Value::U64(id);
                        } else {
                            params.truncate(start);
                            deleted_without_id.push(pos);
                            continue;
                        }
                    }
                }
                if !items.is_empty() {
                    sql.push_str(",");
                }
                values_row(&mut sql, width);
                items.push(pos);
            }
            if items.is_empty() {
                continue;
            }
            sql.push_str(returning);
            out.push(Statement {
                sql: sql.finish(),
                params,
                kind: StatementKind::Insert {
                    auto_ids: !explicit_id,
                },
                items,
            });
        }
        // Rows written fake-deleted whose IDs the server gives: one row per statement,
        // each followed by the one that puts its ID in the flag, so that two of them
        // never clash with each other under a unique index.
        for pos in deleted_without_id {
            let mut params = Vec::with_capacity(width);
            tracked[pos].write_values(&mut params);
            let mut sql = kind.writer(head.len() + row_len + returning.len());
            sql.push_str(head);
            values_row(&mut sql, width);
            sql.push_str(returning);
            out.push(Statement {
                sql: sql.finish(),
                params,
                kind: StatementKind::Insert { auto_ids: true },
                items: vec![pos],
            });
            out.extend(fake_delete_ids(pool, schema, vec![pos]));
        }
    }
    out.extend(singles);
    for ((_, fake), (schema, ids)) in deletes {
        let t = schema.templates(kind);
        let id_col = &t.columns[0];
        for chunk in ids.chunks(MAX_PARAMS) {
            let mut sql = kind.writer(64 + t.table.len() + chunk.len() * 4);
            if fake {
                let column = schema
                    .fake_delete_column()
                    .map_or("fake_delete", |i| t.columns[i].as_str());
                // The row's ID, not a flag: deleted duplicates never clash.
                sql.push_str("UPDATE ");
                sql.push_str(&t.table);
                sql.push_str(" SET ");
                sql.push_str(column);
                sql.push_str(" = ");
                sql.push_str(id_col);
            } else {
                sql.push_str("DELETE FROM ");
                sql.push_str(&t.table);
            }
            sql.push_str(" WHERE ");
            sql.push_str(id_col);
            sql.push_str(" IN (");
            sql.params(chunk.len());
            sql.push_str(")");
            out.push(Statement {
                sql: sql.finish(),
                params: chunk.iter().map(|(_, id)| Value::U64(*id)).collect(),
                kind: StatementKind::Delete { fake },
                items: chunk.iter().map(|(pos, _)| *pos).collect(),
            });
        }
    }
    Ok(out)
}

/// Appends one VALUES row of `width` placeholders: `(?,?,…)`.
fn values_row(sql: &mut SqlWriter, width: usize) {
    sql.push_str("(");
    sql.params(width);
    sql.push_str(")");
}

/// Each table's depth in the foreign-key graph of `schemas` (the tables one flush
/// writes): 0 for a table that references none of the others, else one more than its
/// deepest parent. Inserting by rising depth writes every referenced row before the
/// rows that reference it; deleting by falling depth removes children first.
///
/// A self-reference does not count (rows of one table are written in the order they
/// were tracked). In a cycle between tables (A references B, B references A) the
/// edge that closes it is ignored: the order stays deterministic and, if the rows
/// really reference each other, the server refuses the flush with
/// [`Error::ForeignKey`] inside its transaction, so nothing is written — insert one
/// side with the reference empty, then set it in a second flush.
pub(super) fn fk_ranks<'s>(
    schemas: impl Iterator<Item = &'s TableSchema>,
) -> rustc_hash::FxHashMap<&'s str, usize> {
    let tables: rustc_hash::FxHashMap<&'s str, &'s TableSchema> =
        schemas.map(|s| (s.table_name(), s)).collect();
    let mut ranks = rustc_hash::FxHashMap::default();
    if tables.len() < 2 {
        return ranks;
    }
    // Depth-first with an explicit stack; `on_path` breaks cycles.
    fn depth<'s>(
        table: &'s str,
        tables: &rustc_hash::FxHashMap<&'s str, &'s TableSchema>,
        ranks: &mut rustc_hash::FxHashMap<&'s str, usize>,
        on_path: &mut Vec<&'s str>,
    ) -> usize {
        if let Some(r) = ranks.get(table) {
            return *r;
        }
        let Some(schema) = tables.get(table) else {
            return 0;
        };
        on_path.push(table);
        let mut r = 0;
        for fk in schema.foreign_keys() {
            let parent = fk.ref_table.as_str();
            if parent == table || on_path.contains(&parent) {
                continue;
            }
            if let Some((parent, _)) = tables.get_key_value(parent) {
                r = r.max(depth(parent, tables, ranks, on_path) + 1);
            }
        }
        on_path.pop();
        ranks.insert(table, r);
        r
    }
    let mut names: Vec<&'s str> = tables.keys().copied().collect();
    names.sort_unstable();
    let mut on_path = Vec::new();
    for name in names {
        depth(name, &tables, &mut ranks, &mut on_path);
    }
    ranks
}

/// After rows were written fake-deleted while their ID was not known (server-given
/// IDs, an upsert's update list): puts each such row's ID in its flag. They were
/// written with 1, which only row 1 may hold. `None` when there are none.
pub(super) fn fake_delete_ids(
    pool: &SqlPool,
    schema: &TableSchema,
    items: Vec<usize>,
) -> Option<Statement> {
    let column = schema.fake_delete_column()?;
    if items.is_empty() {
        return None;
    }
    let t = schema.templates(pool.kind());
    let (flag, id) = (&t.columns[column], &t.columns[0]);
    Some(Statement {
        sql: format!(
            "UPDATE {} SET {flag} = {id} WHERE {flag} = 1 AND {id} <> 1",
            t.table
        ),
        params: Vec::new(),
        kind: StatementKind::Update,
        items,
    })
}

/// `UPDATE t SET <changed columns> WHERE id = ?` (`$n` on PostgreSQL).
pub(super) fn update(
    pool: &SqlPool,
    pos: usize,
    id: u64,
    mut changed: Vec<(usize, Value)>,
    schema: &TableSchema,
) -> Statement {
    // A fake-delete flag set through the field is written as the row's ID.
    if let Some(flag) = schema.fake_delete_column().and_then(|i| i.checked_sub(1)) {
        for (i, v) in changed.iter_mut() {
            if *i == flag && fake_delete::is_deleted(v) {
                *v = Value::U64(id);
            }
        }
    }
    let t = schema.templates(pool.kind());
    let mut sql = pool.kind().writer(32 + t.table.len() + changed.len() * 24);
    sql.push_str("UPDATE ");
    sql.push_str(&t.table);
    sql.push_str(" SET ");
    for (k, (i, _)) in changed.iter().enumerate() {
        if k > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&t.columns[i + 1]);
        sql.push_str(" = ");
        sql.param();
    }
    sql.push_str(" WHERE ");
    sql.push_str(&t.columns[0]);
    sql.push_str(" = ");
    sql.param();
    let mut params: Vec<Value> = changed.into_iter().map(|(_, v)| v).collect();
    params.push(Value::U64(id));
    Statement {
        sql: sql.finish(),
        params,
        kind: StatementKind::Update,
        items: vec![pos],
    }
}

/// One INSERT that updates `set` when a unique index (or the primary key, for an
/// explicit ID) already holds the row. MySQL (`ON DUPLICATE KEY UPDATE`) and SQLite
/// (`ON CONFLICT DO UPDATE` without a target) take whichever key clashed; PostgreSQL
/// inserts with `ON CONFLICT DO NOTHING` and looks the clashing row up by each key
/// (the dialect's `upsert_lookups`), so all three take the existing row whichever
/// unique key it clashed on. The clause is the dialect's
/// (the dialect's `write_upsert_tail`).
pub(super) fn upsert(
    pool: &SqlPool,
    pos: usize,
    id: u64,
    mut values: Vec<Value>,
    mut set: Vec<(String, Value)>,
    schema: &TableSchema,
) -> (Statement, bool) {
    let t = schema.templates(pool.kind());
    let explicit_id = id != 0;
    // A fake-deleted row holds its ID in the flag; when the ID is not known yet, or
    // the update list sets the flag, a statement after this one puts it there.
    let mut deleted_without_id = false;
    if let Some(flag) = schema.fake_delete_column() {
        if let Some(cell) = flag.checked_sub(1).and_then(|f| values.get_mut(f)) {
            if fake_delete::is_deleted(cell) {
                if explicit_id {
                    *cell = Value::U64(id);
                } else {
                    deleted_without_id = true;
                }
            }
        }
        if let Some(column) = schema.columns().get(flag) {
            for (_, v) in set.iter_mut().filter(|(c, _)| *c == column.name) {
                // `true`/`false` as the integer the column holds.
                let deleted = fake_delete::is_deleted(v);
                *v = Value::U64(u64::from(deleted));
                deleted_without_id |= deleted;
            }
        }
    }
    let width = values.len() + usize::from(explicit_id);
    let head = if explicit_id {
        &t.insert_with_id
    } else {
        &t.insert
    };
    let kind = pool.kind();
    let mut sql = kind.writer(head.len() + 64 + width * 4 + set.len() * 24);
    sql.push_str(head);
    values_row(&mut sql, width);
    let mut params = Vec::with_capacity(width + set.len());
    if explicit_id {
        params.push(Value::U64(id));
    }
    params.extend(values);
    let set_columns: Vec<String> = set.iter().map(|(c, _)| kind.quote(c)).collect();
    kind.write_upsert_tail(
        &mut sql,
        &t.columns[0],
        set_columns.iter().map(String::as_str),
    );
    // Where the update list is not part of the statement, its values go to the
    // lookups after it (the dialect's `upsert_lookups`), which read the operation.
    if kind.upsert_binds_set_values() {
        params.extend(set.into_iter().map(|(_, v)| v));
    }
    (
        Statement {
            sql: sql.finish(),
            params,
            kind: StatementKind::Upsert,
            items: vec![pos],
        },
        deleted_without_id,
    )
}

/// An upsert's update list may only name the entity's stored columns, `id` excluded
/// (the row keeps its ID): checked before anything is sent, so a typo is
/// [`Error::InvalidArgument`] on every dialect instead of whatever the server says.
fn check_upsert_column(schema: &TableSchema, column: &str) -> Result<()> {
    let known = schema.columns().iter().skip(1).any(|c| c.name == column);
    if known {
        return Ok(());
    }
    let reason = if schema.columns().first().is_some_and(|c| c.name == column) {
        "the update list cannot set the primary key".to_string()
    } else {
        let names: Vec<&str> = schema
            .columns()
            .iter()
            .skip(1)
            .map(|c| c.name.as_str())
            .collect();
        format!(
            "table `{}` has no column `{column}` (its columns: {})",
            schema.table_name(),
            names.join(", ")
        )
    };
    Err(Error::InvalidArgument {
        call: format!("Tracked::on_duplicate_key_update(\"{column}\")"),
        reason,
    })
}
