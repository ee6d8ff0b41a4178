//! The entity change log (F4): `#[orm(log)]` entities get a table
//! `_log_<pool>_<table>` with one row per committed change of a row — the entity's
//! ID, the time, metadata, the row before and the changed columns (see
//! `docs/change_log.md`).
//!
//! **Why in the same transaction.** A log row is written on the unit of work's own
//! connection, inside its transaction, before its COMMIT (by the one commit
//! function, `flush/commit.rs`): it commits with the entity's rows or not at all.
//! So a process that dies right after the COMMIT never loses the record (an
//! after-commit publish to a stream would, and a log written from memory later
//! could be lost with the process), and a rolled-back write leaves no log row. A
//! failure writing the log rolls the whole unit back ([`Error::ChangeLog`]). The
//! cost is one multi-row INSERT per log table per unit of work, in the transaction.
//! A log table in another pool cannot share the transaction: `Registry::validate`
//! refuses it ([`Error::ChangeLogPool`]).
//!
//! **JSON of a value** ([`value_json`]): integers (signed and unsigned 64-bit) are
//! JSON numbers, stored exactly by every server's JSON type; decimals are strings
//! (`"12.50"`, scale kept); floats are numbers (an `f32` by its shortest decimal
//! form); dates, date-times and times are ISO 8601 strings (`2024-05-01`,
//! `2024-05-01T10:20:30.123456`, `10:20:30`; date-times are UTC by the crate's
//! convention); bytes are lowercase hex strings; JSON columns are their document;
//! booleans are `true`/`false`; NULL is `null`.

use std::collections::HashMap;

use chrono::{NaiveDateTime, Timelike};

use crate::observe::{Change, ChangeKind, ChangeSet};
use crate::query::Pager;
use crate::schema::codec;
use crate::schema::TableSchema;
use crate::sql::pool::Conn;
use crate::{DialectKind, Engine, Entity, Error, Result, ValidatedRegistry, Value};

/// Metadata of change-log rows: a JSON object (`meta` column), set engine-wide with
/// [`Engine::set_log_meta`] and per flush with
/// [`Flusher::set_log_meta`](crate::Flusher::set_log_meta).
pub type LogMeta = serde_json::Map<String, serde_json::Value>;

/// Rows per INSERT statement: 5 parameters each, under every server's limit
/// (SQLite's 32,766 is the lowest).
const ROWS_PER_INSERT: usize = 5_000;

/// One row of an entity's change log, as [`Engine::entity_log`] reads it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EntityLog {
    /// The log row's own ID (grows with each change).
    pub log_id: u64,
    /// The entity's ID.
    pub entity_id: u64,
    /// When the change was written (UTC, microseconds).
    pub added_at: NaiveDateTime,
    /// The metadata of the flush (engine-wide merged with per-flush), if any.
    pub meta: Option<LogMeta>,
    /// The row before the change (columns but the ID, `skip_log` ones left out):
    /// `None` for an insert.
    pub before: Option<LogMeta>,
    /// The changed columns with their new values (every column for an insert):
    /// `None` for a delete.
    pub changes: Option<LogMeta>,
}

/// The JSON form of a column value in a log row (see the module docs).
pub(crate) fn value_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::I64(i) => J::from(*i),
        Value::U64(u) => J::from(*u),
        // The shortest decimal form of the f32 (0.1, not 0.10000000149011612).
        Value::F32(f) => float_json(f.to_string().parse::<f64>().unwrap_or(f64::from(*f))),
        Value::F64(f) => float_json(*f),
        Value::Decimal(d) => J::String(d.to_string()),
        Value::String(s) => J::String(s.clone()),
        Value::Bytes(b) => {
            use std::fmt::Write;
            let mut hex = String::with_capacity(b.len() * 2);
            for byte in b {
                // Writing into a String cannot fail.
                let _ = write!(hex, "{byte:02x}");
            }
            J::String(hex)
        }
        Value::Date(d) => J::String(d.format("%Y-%m-%d").to_string()),
        Value::DateTime(d) => J::String(d.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
        Value::Time(t) => J::String(t.format("%H:%M:%S%.f").to_string()),
        Value::Json(j) => j.clone(),
    }
}

/// A float as a JSON number; NaN and infinities (which no column stores) as text.
fn float_json(f: f64) -> serde_json::Value {
    serde_json::Number::from_f64(f)
        .map_or_else(|| serde_json::Value::String(f.to_string()), Into::into)
}

/// The `before` and `changes` of one change, `None` when nothing is to be logged
/// (only `skip_log` columns changed).
fn log_row(schema: &TableSchema, change: &Change) -> Option<(Option<LogMeta>, Option<LogMeta>)> {
    let skipped: Vec<&str> = schema.skip_log_columns().map(|c| c.name.as_str()).collect();
    let object = |values: &mut dyn Iterator<Item = (&String, &Value)>| -> LogMeta {
        values
            .filter(|(name, _)| !skipped.contains(&name.as_str()))
            .map(|(name, v)| (name.clone(), value_json(v)))
            .collect()
    };
    let before = || {
        change
            .before
            .as_ref()
            .map(|row| object(&mut row.iter().map(|(n, v)| (n, v))))
    };
    match &change.kind {
        ChangeKind::Inserted { values } | ChangeKind::Upserted { values, .. } => {
            Some((None, Some(object(&mut values.iter().map(|(n, v)| (n, v))))))
        }
        ChangeKind::Updated { columns } => {
            let changes = object(&mut columns.iter().map(|c| (&c.name, &c.new)));
            (!changes.is_empty()).then(|| (before(), Some(changes)))
        }
        ChangeKind::Deleted { fake: false } => Some((before(), None)),
        ChangeKind::Deleted { fake: true } => {
            // An update of the flag: the column holds the row's ID once deleted.
            let flag = schema
                .fake_delete_column()
                .and_then(|i| schema.columns().get(i))?;
            let mut changes = LogMeta::new();
            changes.insert(flag.name.clone(), serde_json::Value::from(change.id));
            Some((before(), Some(changes)))
        }
    }
}

/// Now, in UTC, to the microsecond (what every server's column keeps).
fn now_micros() -> NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    now.with_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// Writes the change-log rows of `changes` (those of logged entities; others are
/// skipped) on `conn`, inside the caller's transaction: one multi-row INSERT per log
/// table, `meta` in every row. The flush's commit function calls it before COMMIT; a
/// lazy-flush applier calls it in its own transaction for the writes it applies.
/// Returns how many rows were written. An error names the entity and the log table
/// ([`Error::ChangeLog`]); the caller rolls the transaction back.
pub(crate) async fn write(
    registry: &ValidatedRegistry,
    conn: &mut Conn,
    kind: DialectKind,
    changes: &ChangeSet,
    meta: Option<&LogMeta>,
) -> Result<usize> {
    // (log table schema, entity name, rows), in first-change order.
    let mut tables: Vec<(&TableSchema, &str, Vec<Value>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let meta = match meta.filter(|m| !m.is_empty()) {
        Some(m) => Value::Json(serde_json::Value::Object(m.clone())),
        None => Value::Null,
    };
    let added_at = Value::DateTime(now_micros());
    let json = |o: Option<LogMeta>| o.map_or(Value::Null, |m| Value::Json(m.into()));
    for change in changes {
        let Some(schema) = registry.table_schema_by_type(change.entity_type) else {
            continue;
        };
        let Some(log) = schema.log_schema() else {
            continue;
        };
        let Some((before, after)) = log_row(schema, change) else {
            continue;
        };
        let pos = *index.entry(log.table_name()).or_insert_with(|| {
            tables.push((log, schema.entity_name(), Vec::new()));
            tables.len() - 1
        });
        let params = &mut tables[pos].2;
        params.push(Value::U64(change.id));
        params.push(added_at.clone());
        params.push(meta.clone());
        params.push(json(before));
        params.push(json(after));
    }
    let mut written = 0;
    for (log, entity, params) in tables {
        let t = log.templates(kind);
        let rows = params.len() / 5;
        let mut params = params.into_iter();
        let mut left = rows;
        while left > 0 {
            let n = left.min(ROWS_PER_INSERT);
            left -= n;
            let mut sql = kind.writer(t.insert.len() + n * 16);
            sql.push_str(&t.insert);
            for i in 0..n {
                if i > 0 {
                    sql.push_str(",");
                }
                sql.push_str("(");
                sql.params(5);
                sql.push_str(")");
            }
            let chunk: Vec<Value> = params.by_ref().take(n * 5).collect();
            conn.execute(&sql.finish(), chunk)
                .await
                .map_err(|e| Error::ChangeLog {
                    entity: entity.to_string(),
                    table: log.table_name().to_string(),
                    source: Box::new(e),
                })?;
        }
        written += rows;
    }
    if written > 0 {
        tracing::debug!(target: "beeorm::change_log", rows = written, "change-log rows written");
    }
    Ok(written)
}

/// Whether any change of `changes` is of a logged entity.
pub(crate) fn any_logged(registry: &ValidatedRegistry, changes: &ChangeSet) -> bool {
    changes.iter().any(|c| {
        registry
            .table_schema_by_type(c.entity_type)
            .is_some_and(TableSchema::is_logged)
    })
}

/// A JSON column as read back: a document (PostgreSQL) or its text (MySQL, SQLite).
fn read_object(v: Value, column: &str, table: &str) -> Result<Option<LogMeta>> {
    let doc = match v {
        Value::Null => return Ok(None),
        Value::Json(j) => j,
        other => {
            let text = other.as_str().ok_or_else(|| Error::Decode {
                entity: table.to_string(),
                field: column.to_string(),
                reason: format!("expected JSON text, got {other:?}"),
            })?;
            serde_json::from_str(text).map_err(|e| Error::Decode {
                entity: table.to_string(),
                field: column.to_string(),
                reason: format!("invalid JSON: {e}"),
            })?
        }
    };
    match doc {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Object(m) => Ok(Some(m)),
        other => Err(Error::Decode {
            entity: table.to_string(),
            field: column.to_string(),
            reason: format!("expected a JSON object, got {other}"),
        }),
    }
}

impl Engine {
    /// Adds `key` = `value` to the metadata of every change-log row written by this
    /// engine's flushes from now on (and by engines cloned from it afterwards; clones
    /// made before keep theirs). A flush's own
    /// [`Flusher::set_log_meta`](crate::Flusher::set_log_meta) wins for the same key.
    ///
    /// ```no_run
    /// # use beeorm::prelude::*;
    /// # async fn demo(registry: &ValidatedRegistry) {
    /// let mut engine = registry.create_engine();
    /// engine.set_log_meta("user_id", 42);
    /// engine.set_log_meta("request", "b7f3c1");
    /// # }
    /// ```
    pub fn set_log_meta(&mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) {
        let meta = self.log_meta.get_or_insert_with(Default::default);
        std::sync::Arc::make_mut(meta).insert(key.into(), value.into());
    }

    /// A span carrying this engine's metadata ([`Engine::set_log_meta`]) as the field
    /// `meta` (`key=value key=value`, keys sorted): run the engine's work inside it
    /// (`fut.instrument(engine.log_span())`) and every SQL, Redis and cache record
    /// beeorm emits there carries the metadata (see [`crate::logging`]). Target
    /// `beeorm`, level ERROR, so that filters keeping only beeorm's warnings still see
    /// it; an engine without metadata gets a span with `meta` empty.
    pub fn log_span(&self) -> tracing::Span {
        match self.log_meta.as_deref().filter(|m| !m.is_empty()) {
            Some(meta) => {
                let mut text = String::new();
                for (k, v) in meta {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(k);
                    text.push('=');
                    match v {
                        serde_json::Value::String(s) => text.push_str(s),
                        other => text.push_str(&other.to_string()),
                    }
                }
                tracing::error_span!(target: "beeorm", "beeorm", meta = %text)
            }
            None => tracing::error_span!(target: "beeorm", "beeorm", meta = tracing::field::Empty),
        }
    }

    /// The change-log history of entity `E`'s row `id`, newest first (by log row ID,
    /// which grows with each committed change); `pager` picks one page, `None` reads
    /// every row. [`Error::NotLogged`] when `E` keeps no change log.
    ///
    /// ```no_run
    /// # use beeorm::prelude::*;
    /// # #[derive(Entity)] #[orm(log)] struct User { id: u64, name: String }
    /// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
    /// for entry in engine.entity_log::<User>(7, Some(Pager::new(1, 20))).await? {
    ///     println!("{} {:?} -> {:?}", entry.added_at, entry.before, entry.changes);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn entity_log<E: Entity>(
        &self,
        id: u64,
        pager: Option<Pager>,
    ) -> Result<Vec<EntityLog>> {
        let schema = self.registry().table_schema::<E>()?;
        let log = schema
            .log_schema()
            .ok_or_else(|| Error::NotLogged(E::TYPE_NAME.to_string()))?;
        let pool = self.sql_pool(log.pool_name())?;
        let kind = pool.kind();
        let t = log.templates(kind);
        let mut sql = kind.writer(t.select.len() + 64);
        sql.push_str(&t.select);
        sql.push_str(" WHERE ");
        sql.push_str(&t.columns[1]);
        sql.push_str(" = ");
        sql.param();
        sql.push_str(" ORDER BY ");
        sql.push_str(&t.columns[0]);
        sql.push_str(" DESC");
        if let Some(p) = pager {
            sql.push_str(&p.limit_clause());
        }
        let rows = pool.query(&sql.finish(), vec![Value::U64(id)]).await?;
        let table = log.table_name();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = row.into_iter();
            let mut next = |column: &str| {
                cells.next().ok_or_else(|| Error::Decode {
                    entity: table.to_string(),
                    field: column.to_string(),
                    reason: "missing column".into(),
                })
            };
            let decode = |column: &str, reason: String| Error::Decode {
                entity: table.to_string(),
                field: column.to_string(),
                reason,
            };
            let int = |v: Value, column: &str| {
                codec::integer(v)
                    .and_then(|i| u64::try_from(i).map_err(|_| format!("{i} is not an ID")))
                    .map_err(|reason| decode(column, reason))
            };
            let log_id = int(next("id")?, "id")?;
            let entity_id = int(next("entity_id")?, "entity_id")?;
            let added_at =
                codec::date_time(next("added_at")?).map_err(|r| decode("added_at", r))?;
            out.push(EntityLog {
                log_id,
                entity_id,
                added_at,
                meta: read_object(next("meta")?, "meta", table)?,
                before: read_object(next("before")?, "before", table)?,
                changes: read_object(next("changes")?, "changes", table)?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    #[test]
    fn values_become_exact_json() {
        assert_eq!(
            value_json(&Value::U64(u64::MAX)).to_string(),
            "18446744073709551615"
        );
        assert_eq!(
            value_json(&Value::I64(i64::MIN)).to_string(),
            "-9223372036854775808"
        );
        assert_eq!(
            value_json(&Value::Decimal(Decimal::from_str("12.50").unwrap())),
            serde_json::json!("12.50")
        );
        assert_eq!(value_json(&Value::F32(0.1)).to_string(), "0.1");
        assert_eq!(value_json(&Value::F64(f64::NAN)), serde_json::json!("NaN"));
        assert_eq!(
            value_json(&Value::Bytes(vec![0, 255, 16])),
            serde_json::json!("00ff10")
        );
        let dt = chrono::NaiveDate::from_ymd_opt(2024, 5, 1)
            .unwrap()
            .and_hms_micro_opt(10, 20, 30, 123_456)
            .unwrap();
        assert_eq!(
            value_json(&Value::DateTime(dt)),
            serde_json::json!("2024-05-01T10:20:30.123456")
        );
        assert_eq!(
            value_json(&Value::Date(dt.date())),
            serde_json::json!("2024-05-01")
        );
        assert_eq!(
            value_json(&Value::Time(dt.time())),
            serde_json::json!("10:20:30.123456")
        );
        assert_eq!(value_json(&Value::Null), serde_json::Value::Null);
        assert_eq!(
            value_json(&Value::Json(serde_json::json!({"a": [1]}))),
            serde_json::json!({"a": [1]})
        );
    }

    #[test]
    fn now_keeps_microseconds() {
        assert_eq!(now_micros().nanosecond() % 1_000, 0);
    }
}
