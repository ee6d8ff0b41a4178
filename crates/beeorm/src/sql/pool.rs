//! Connection pools, one type per dialect behind [`SqlPool`], and the one place where
//! statements are sent: every statement gets a `tracing` span with the pool and the SQL
//! (never the values) and an event with its duration.

use std::sync::Arc;
use std::time::Instant;

use mysql_async::prelude::Queryable;
use tokio::sync::OnceCell;
use tracing::Instrument;

use super::mysql::MySqlDialect;
use super::postgres::{to_pg_sql, PgDialect, PgParam};
use super::sqlite::SqliteDialect;
use super::value::Value;
use super::{DbSnapshot, Dialect, DialectKind};
use crate::{Error, Result};

/// A relational pool of any dialect.
#[derive(Clone)]
pub(crate) enum SqlPool {
    MySql(Arc<MySqlPool>),
    Sqlite(Arc<SqlitePool>),
    Postgres(Arc<PgPool>),
}

/// The dialect of a pool, with what it learnt about its server.
pub(crate) enum AnyDialect {
    MySql(MySqlDialect),
    Sqlite(SqliteDialect),
    Postgres(PgDialect),
}

impl AnyDialect {
    pub(crate) fn as_dialect(&self) -> &dyn Dialect {
        match self {
            AnyDialect::MySql(d) => d,
            AnyDialect::Sqlite(d) => d,
            AnyDialect::Postgres(d) => d,
        }
    }
}

/// Result of a statement that returns no rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecResult {
    /// Rows inserted, changed or deleted.
    pub affected_rows: u64,
    /// The auto-increment ID of the (first) inserted row, if any.
    pub last_insert_id: Option<u64>,
}

type Row = Vec<Value>;

/// Most parameters one statement may carry, per dialect. PostgreSQL counts them in 16
/// bits on the wire (with more, tokio-postgres fails with "error parsing response from
/// server", which reads like a lost connection); MySQL/MariaDB refuse more placeholders
/// in a prepared statement; SQLite's bundled library is built with
/// `SQLITE_MAX_VARIABLE_NUMBER` = 32,766.
pub(crate) const fn max_params(kind: DialectKind) -> usize {
    match kind {
        DialectKind::MySql | DialectKind::Postgres => 65_535,
        DialectKind::Sqlite => 32_766,
    }
}

/// Refuses a statement with more parameters than its server takes, before it is sent
/// ([`Error::TooManyParameters`]), so the failure names the limit and is never taken
/// for a connection error (which callers may retry). A comparison per statement;
/// nothing is allocated unless it fails.
fn check_param_count(pool: &SqlPool, sql: &str, count: usize) -> Result<()> {
    let kind = pool.kind();
    let limit = max_params(kind);
    if count <= limit {
        return Ok(());
    }
    // Such statements are mostly placeholders: show their beginning only.
    const SHOWN: usize = 120;
    let sql = match sql.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &sql[..at]),
        None => sql.to_string(),
    };
    Err(Error::TooManyParameters {
        pool: pool.name().to_string(),
        server: match kind {
            DialectKind::MySql => "MySQL",
            DialectKind::Postgres => "PostgreSQL",
            DialectKind::Sqlite => "SQLite",
        },
        sql,
        count,
        limit,
    })
}

/// How long a relational pool waits (see `Registry::set_sql_timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SqlTimeouts {
    /// Opening one connection (TCP connect, handshake, authentication).
    pub(crate) connect: std::time::Duration,
    /// One statement, including `BEGIN`, `COMMIT` and `ROLLBACK`.
    pub(crate) query: std::time::Duration,
    /// Waiting for a free connection of the pool.
    pub(crate) acquire: std::time::Duration,
}

impl Default for SqlTimeouts {
    fn default() -> Self {
        SqlTimeouts {
            connect: std::time::Duration::from_secs(5),
            query: std::time::Duration::from_secs(60),
            acquire: std::time::Duration::from_secs(10),
        }
    }
}

/// The typed error of an operation that ran out of time.
fn timeout_error(pool: &str, operation: impl Into<String>, limit: std::time::Duration) -> Error {
    Error::Timeout {
        pool: pool.to_string(),
        operation: operation.into(),
        limit,
    }
}

/// `f`, bounded by the pool's statement timeout. Not on SQLite: its statements run
/// in the process, inline (no timer is set up on that hot path) or on a blocking
/// thread whose lock wait is bounded instead (see `sqlite_run`).
fn limited<'a, T, F>(
    pool: &'a SqlPool,
    sql: &'a str,
    f: F,
) -> impl std::future::Future<Output = Result<T>> + 'a
where
    F: std::future::Future<Output = Result<T>> + 'a,
    T: 'a,
{
    use futures_util::future::Either;
    // Not an `async fn`: one of those would keep `f` twice in its state (as argument
    // and as the awaited future), and statement futures are large; every call moves them.
    if let SqlPool::Sqlite(_) = pool {
        return Either::Left(f);
    }
    let limit = pool.timeouts().query;
    Either::Right(async move {
        // Boxed: the timer is large, and SQLite statement futures never use it.
        match Box::pin(tokio::time::timeout(limit, f)).await {
            Ok(r) => r,
            Err(_) => Err(timeout_error(
                pool.name(),
                format!("statement `{sql}`"),
                limit,
            )),
        }
    })
}

/// Takes a row's cells out of the reused buffer, leaving one of the same capacity.
fn take_row(row: &mut Vec<Value>) -> Result<Row> {
    let capacity = row.len();
    Ok(std::mem::replace(row, Vec::with_capacity(capacity)))
}

async fn traced<T, F>(pool: &str, kind: &'static str, sql: &str, f: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let span = tracing::debug_span!("sql", pool = %pool, db = kind, sql = %sql);
    async move {
        let start = Instant::now();
        let result = f.await;
        let micros = start.elapsed().as_micros() as u64;
        match &result {
            Ok(_) => tracing::debug!(duration_us = micros, "statement done"),
            Err(e) => tracing::warn!(duration_us = micros, error = %e, "statement failed"),
        }
        result
    }
    .instrument(span)
    .await
}

impl SqlPool {
    pub(crate) fn name(&self) -> &str {
        match self {
            SqlPool::MySql(p) => &p.name,
            SqlPool::Sqlite(p) => &p.name,
            SqlPool::Postgres(p) => &p.name,
        }
    }

    pub(crate) fn timeouts(&self) -> SqlTimeouts {
        match self {
            SqlPool::MySql(p) => p.timeouts,
            SqlPool::Sqlite(p) => p.timeouts,
            SqlPool::Postgres(p) => p.timeouts,
        }
    }

    pub(crate) fn kind(&self) -> DialectKind {
        match self {
            SqlPool::MySql(_) => DialectKind::MySql,
            SqlPool::Sqlite(_) => DialectKind::Sqlite,
            SqlPool::Postgres(_) => DialectKind::Postgres,
        }
    }

    /// Quotes an identifier for this pool's dialect.
    pub(crate) fn quote(&self, ident: &str) -> String {
        match self {
            SqlPool::MySql(_) => format!("`{}`", ident.replace('`', "``")),
            SqlPool::Sqlite(_) | SqlPool::Postgres(_) => {
                format!("\"{}\"", ident.replace('"', "\"\""))
            }
        }
    }

    /// How consecutive rows of one multi-row INSERT are numbered: `Some(step)` when
    /// their IDs are `first, first + step, …`; `None` when the server does not promise
    /// consecutive IDs (MySQL `innodb_autoinc_lock_mode = 2`), so rows go one by one.
    /// MySQL asks the server once per pool; [`SqlPool::begin`] asks on the
    /// transaction's own connection, so a flush into a transaction that holds the only
    /// connection of the pool never needs a second one.
    pub(crate) async fn id_step(&self) -> Result<Option<u64>> {
        match self {
            SqlPool::MySql(p) => match p.id_step.get() {
                Some(step) => Ok(*step),
                None => self.id_step_on(&mut self.conn().await?).await,
            },
            SqlPool::Sqlite(_) | SqlPool::Postgres(_) => Ok(Some(1)),
        }
    }

    /// [`SqlPool::id_step`], asked on `conn` when not known yet.
    async fn id_step_on(&self, conn: &mut Conn) -> Result<Option<u64>> {
        match self {
            SqlPool::Sqlite(_) | SqlPool::Postgres(_) => Ok(Some(1)),
            SqlPool::MySql(p) => p
                .id_step
                .get_or_try_init(|| async {
                    let rows = conn
                        .query(
                            "SELECT @@auto_increment_increment, @@innodb_autoinc_lock_mode",
                            vec![],
                        )
                        .await?;
                    let row = rows.first();
                    let step = row
                        .and_then(|r| r.first())
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    let mode = row
                        .and_then(|r| r.get(1))
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    Ok(if mode == 2 {
                        None
                    } else {
                        u64::try_from(step).ok()
                    })
                })
                .await
                .copied(),
        }
    }

    /// A connection in autocommit mode, within the pool's `acquire` timeout (MySQL:
    /// the larger of `acquire` and `connect`, as mysql_async opens connections inside
    /// its checkout; PostgreSQL: `acquire` to wait for a free slot, then `connect` to
    /// open a connection).
    pub(crate) async fn conn(&self) -> Result<Conn> {
        let inner = match self {
            SqlPool::MySql(p) => {
                let limit = p.timeouts.acquire.max(p.timeouts.connect);
                // Boxed for the same reason as in `limited`.
                match Box::pin(tokio::time::timeout(limit, p.pool.get_conn())).await {
                    Ok(c) => ConnInner::MySql(c.map_err(|e| p.connection_error(e))?),
                    Err(_) => return Err(timeout_error(&p.name, "acquire", limit)),
                }
            }
            SqlPool::Postgres(p) => ConnInner::Postgres(Some(Box::pin(p.get()).await?)),
            SqlPool::Sqlite(p) => {
                // A free connection without setting up a timer (the usual case).
                let free = p.pool.try_get().ok();
                let c = match free {
                    Some(c) => c,
                    None => {
                        let limit = p.timeouts.acquire;
                        match Box::pin(tokio::time::timeout(limit, p.pool.get())).await {
                            Ok(c) => c.map_err(|e| Error::Connection {
                                pool: p.name.clone(),
                                source: Box::new(e),
                            })?,
                            Err(_) => return Err(timeout_error(&p.name, "acquire", limit)),
                        }
                    }
                };
                ConnInner::Sqlite(Some(SqliteConn(Some(c))))
            }
        };
        Ok(Conn {
            pool: self.clone(),
            inner,
            dirty: false,
        })
    }

    /// A connection inside a new transaction: [`Conn::commit`] or [`Conn::rollback`] it;
    /// dropped, it rolls back.
    ///
    /// The connection is marked as in a transaction *before* `BEGIN` is sent, so a
    /// future dropped (or timed out) at any point cannot return it to the pool inside
    /// a transaction: see [`Drop for Conn`](Conn).
    pub(crate) async fn begin(&self) -> Result<Conn> {
        let mut conn = self.conn().await?;
        if let SqlPool::MySql(p) = self {
            if p.id_step.get().is_none() {
                self.id_step_on(&mut conn).await?;
            }
        }
        conn.inner = match std::mem::replace(&mut conn.inner, ConnInner::Sqlite(None)) {
            ConnInner::MySql(c) => ConnInner::MySqlTx(c),
            ConnInner::Postgres(c) => ConnInner::PostgresTx(c),
            ConnInner::Sqlite(c) => ConnInner::SqliteTx(c),
            other => other,
        };
        match self {
            // Our own `START TRANSACTION` on a plain connection rather than
            // mysql_async's `Transaction`, so that one state (`MySqlTx` + `dirty`)
            // decides, on every dialect, what becomes of a connection dropped at any
            // point or after a statement timeout.
            SqlPool::MySql(_) => conn.execute_script("START TRANSACTION").await?,
            SqlPool::Postgres(_) => conn.execute_script("BEGIN").await?,
            SqlPool::Sqlite(_) => {
                conn.execute("BEGIN IMMEDIATE", vec![]).await?;
            }
        }
        Ok(conn)
    }

    /// Runs a statement that returns no rows.
    pub(crate) async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        self.conn().await?.execute(sql, params).await
    }

    /// Runs several `;`-separated statements without parameters, all or nothing where
    /// the server allows it (SQLite: one transaction; MySQL DDL commits implicitly).
    pub(crate) async fn execute_script(&self, sql: &str) -> Result<()> {
        self.conn().await?.execute_script(sql).await
    }

    /// Runs a query and returns every row.
    pub(crate) async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>> {
        self.conn().await?.query(sql, params).await
    }

    /// Runs a query on a pooled connection and turns each row into a `T` as it
    /// arrives (see [`Conn::query_map`]).
    pub(crate) async fn query_map<T, F>(
        &self,
        sql: &str,
        params: Vec<Value>,
        f: F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
    {
        self.conn().await?.query_map(sql, params, f).await
    }

    /// Runs a query and returns the names of its columns and every row.
    pub(crate) async fn query_with_columns(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<(Vec<String>, Vec<Row>)> {
        let mut conn = self.conn().await?;
        conn.start()?;
        let kind = conn.kind_name();
        let r = traced(
            self.name(),
            kind,
            sql,
            limited(self, sql, conn.query_inner(sql, params, true, take_row)),
        )
        .await;
        conn.settle(&r);
        r
    }

    /// The dialect, after learning what it needs from the server.
    pub(crate) async fn dialect(&self) -> Result<AnyDialect> {
        match self {
            SqlPool::MySql(p) => Ok(AnyDialect::MySql(MySqlDialect {
                encoding: p.encoding.clone(),
                mariadb: p.is_mariadb(self).await?,
            })),
            SqlPool::Sqlite(_) => Ok(AnyDialect::Sqlite(SqliteDialect)),
            SqlPool::Postgres(_) => Ok(AnyDialect::Postgres(PgDialect)),
        }
    }

    /// Every table of the pool's database, in comparable form.
    pub(crate) async fn snapshot(&self) -> Result<DbSnapshot> {
        match self {
            SqlPool::MySql(_) => {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                let opt = |v: &Value| v.as_str().map(str::to_string);
                let tables = self
                    .query(
                        "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES \
                         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'",
                        vec![],
                    )
                    .await?
                    .iter()
                    .map(|r| (text(&r[0]), opt(&r[1])))
                    .collect();
                let columns = self
                    .query(
                        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA \
                         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
                         ORDER BY TABLE_NAME, ORDINAL_POSITION",
                        vec![],
                    )
                    .await?
                    .iter()
                    .map(|r| {
                        (
                            text(&r[0]),
                            text(&r[1]),
                            text(&r[2]),
                            text(&r[3]) == "YES",
                            opt(&r[4]),
                            text(&r[5]),
                        )
                    })
                    .collect();
                let indexes = self
                    .query(
                        "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME \
                         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
                         ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
                        vec![],
                    )
                    .await?
                    .iter()
                    .map(|r| {
                        (
                            text(&r[0]),
                            text(&r[1]),
                            r[2].as_i64() == Some(1),
                            text(&r[3]),
                        )
                    })
                    .collect();
                let mut snap = super::mysql::snapshot_from_rows(tables, columns, indexes);
                let fks = self
                    .query(
                        "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, r.DELETE_RULE \
                         FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
                         ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
                         AND r.TABLE_NAME = k.TABLE_NAME \
                         WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL",
                        vec![],
                    )
                    .await?;
                add_foreign_keys(
                    &mut snap,
                    fks.iter().map(|r| std::array::from_fn(|i| text(&r[i]))),
                );
                Ok(snap)
            }
            SqlPool::Postgres(_) => {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                let tables = self
                    .query(
                        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                        vec![],
                    )
                    .await?
                    .iter()
                    .map(|r| text(&r[0]))
                    .collect();
                let columns = self
                    .query(
                        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                         pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '' \
                         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                         JOIN pg_namespace n ON n.oid = c.relnamespace \
                         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                         WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
                         ORDER BY c.relname, a.attnum",
                        vec![],
                    )
                    .await?
                    .iter()
                    .map(|r| {
                        (
                            text(&r[0]),
                            text(&r[1]),
                            text(&r[2]),
                            r[3] == Value::Bool(true),
                            r[4].as_str().map(str::to_string),
                            r[5] == Value::Bool(true),
                        )
                    })
                    .collect();
                let checks = self
                    .query(
                        "SELECT c.relname::text, con.conname::text FROM pg_constraint con \
                         JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE n.nspname = current_schema() AND con.contype = 'c'",
                        vec![],
                    )
                    .await?
                    .iter()
                    .map(|r| (text(&r[0]), text(&r[1])))
                    .collect();
                let indexes = self
                    .query(
                        "SELECT t.relname::text, i.relname::text, ix.indisunique, a.attname::text \
                         FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid \
                         JOIN pg_class i ON i.oid = ix.indexrelid \
                         JOIN pg_namespace ns ON ns.oid = t.relnamespace \
                         CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n) \
                         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                         WHERE ns.nspname = current_schema() AND NOT ix.indisprimary \
                         ORDER BY t.relname, i.relname, k.n",
                        vec![],
                    )
                    .await?
                    .iter()
                    .map(|r| {
                        (
                            text(&r[0]),
                            text(&r[1]),
                            r[2] == Value::Bool(true),
                            text(&r[3]),
                        )
                    })
                    .collect();
                let mut snap =
                    super::postgres::snapshot_from_rows(tables, columns, checks, indexes);
                let fks = self
                    .query(
                        "SELECT cl.relname::text, c.conname::text, a.attname::text, rc.relname::text, \
                         CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END \
                         FROM pg_constraint c JOIN pg_class cl ON cl.oid = c.conrelid \
                         JOIN pg_namespace n ON n.oid = cl.relnamespace JOIN pg_class rc ON rc.oid = c.confrelid \
                         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
                         WHERE c.contype = 'f' AND n.nspname = current_schema()",
                        vec![],
                    )
                    .await?;
                add_foreign_keys(
                    &mut snap,
                    fks.iter().map(|r| std::array::from_fn(|i| text(&r[i]))),
                );
                Ok(snap)
            }
            SqlPool::Sqlite(_) => {
                let rows = self
                    .query(
                        "SELECT type, name, tbl_name, sql FROM sqlite_master \
                         WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL ORDER BY type DESC",
                        vec![],
                    )
                    .await?;
                let mut snap = DbSnapshot::default();
                for r in &rows {
                    let (ty, name, table, sql) = (
                        r[0].as_str().unwrap_or_default(),
                        r[1].as_str().unwrap_or_default(),
                        r[2].as_str().unwrap_or_default(),
                        r[3].as_str().unwrap_or_default(),
                    );
                    match ty {
                        "table" => {
                            snap.tables
                                .insert(name.to_string(), super::sqlite::table_from_sql(sql));
                        }
                        "index" => {
                            if let Some(t) = snap.tables.get_mut(table) {
                                t.indexes.insert(name.to_string(), sql.to_string());
                            }
                        }
                        _ => {}
                    }
                }
                Ok(snap)
            }
        }
    }
}

/// Whether a SQLite constraint error is a foreign key one.
fn msg_is_foreign_key(e: &rusqlite::Error) -> bool {
    e.to_string().contains("FOREIGN KEY constraint failed")
}

/// Adds foreign keys read as (table, name, column, referenced table, delete rule)
/// to a snapshot, keyed like [`super::Dialect::foreign_key_key`].
fn add_foreign_keys(snap: &mut DbSnapshot, rows: impl Iterator<Item = [String; 5]>) {
    for [table, name, column, ref_table, rule] in rows {
        if let Some(t) = snap.tables.get_mut(&table) {
            t.foreign_keys
                .insert(name, format!("{column}|{ref_table}|{rule}"));
        }
    }
}

/// A MySQL/MariaDB pool (mysql_async), configured to add no round trip per query.
pub(crate) struct MySqlPool {
    pub(crate) name: String,
    pool: mysql_async::Pool,
    pub(crate) encoding: String,
    mariadb: OnceCell<bool>,
    id_step: OnceCell<Option<u64>>,
    timeouts: SqlTimeouts,
}

/// A parameter for mysql_async. A date or time MySQL cannot hold (a year outside
/// 1–9999, a leap second) is an error, never a wrapped year or a NULL; a flush has
/// already refused such values with the entity and field named (`schema::limits`).
fn mysql_value(v: Value) -> Result<mysql_async::Value> {
    use chrono::{Datelike, Timelike};
    use mysql_async::Value as M;
    let date = |d: chrono::NaiveDate| -> Result<(u16, u8, u8)> {
        match u16::try_from(d.year()) {
            Ok(y @ 1..=9999) => Ok((y, d.month() as u8, d.day() as u8)),
            _ => Err(Error::Query(format!(
                "parameter {d}: MySQL dates run from 0001-01-01 to 9999-12-31"
            ))),
        }
    };
    let micros = |nanos: u32, what: &dyn std::fmt::Display| -> Result<u32> {
        if nanos >= 1_000_000_000 {
            return Err(Error::Query(format!(
                "parameter {what}: MySQL cannot hold a leap second"
            )));
        }
        Ok(nanos / 1000)
    };
    Ok(match v {
        Value::Null => M::NULL,
        Value::Bool(b) => M::Int(i64::from(b)),
        Value::I64(i) => M::Int(i),
        Value::U64(u) => M::UInt(u),
        Value::F32(f) => M::Float(f),
        Value::F64(f) => M::Double(f),
        Value::Decimal(d) => M::Bytes(d.to_string().into_bytes()),
        Value::String(s) => M::Bytes(s.into_bytes()),
        Value::Bytes(b) => M::Bytes(b),
        Value::Date(d) => {
            let (y, m, day) = date(d)?;
            M::Date(y, m, day, 0, 0, 0, 0)
        }
        Value::DateTime(d) => {
            let (y, m, day) = date(d.date())?;
            M::Date(
                y,
                m,
                day,
                d.hour() as u8,
                d.minute() as u8,
                d.second() as u8,
                micros(d.nanosecond(), &d)?,
            )
        }
        Value::Time(t) => M::Time(
            false,
            0,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
            micros(t.nanosecond(), &t)?,
        ),
        Value::Json(j) => M::Bytes(j.to_string().into_bytes()),
    })
}

/// A cell from mysql_async. A `date`/`datetime` that is no calendar date (MySQL's
/// zero dates) and a `time` beyond a time of day (MySQL's TIME runs from -838:59:59
/// to 838:59:59) come back as their text, so reading them into a date or a
/// `NaiveTime` fails naming the value instead of dropping the sign and the days.
fn from_mysql(v: mysql_async::Value) -> Value {
    use mysql_async::Value as M;
    match v {
        M::NULL => Value::Null,
        M::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => Value::String(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        },
        M::Int(i) => Value::I64(i),
        M::UInt(u) => Value::U64(u),
        M::Float(f) => Value::F32(f),
        M::Double(f) => Value::F64(f),
        M::Date(y, mo, d, h, mi, s, us) => {
            chrono::NaiveDate::from_ymd_opt(y.into(), mo.into(), d.into())
                .and_then(|date| date.and_hms_micro_opt(h.into(), mi.into(), s.into(), us))
                .map_or_else(
                    || {
                        Value::String(format!(
                            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}",
                            micros_text(us)
                        ))
                    },
                    Value::DateTime,
                )
        }
        M::Time(negative, days, h, mi, s, us) => {
            let time = chrono::NaiveTime::from_hms_micro_opt(h.into(), mi.into(), s.into(), us);
            match time {
                Some(t) if !negative && days == 0 => Value::Time(t),
                _ => Value::String(format!(
                    "{}{:02}:{mi:02}:{s:02}{}",
                    if negative { "-" } else { "" },
                    u64::from(days) * 24 + u64::from(h),
                    micros_text(us)
                )),
            }
        }
    }
}

/// `.ffffff` for a non-zero fraction of a second, else nothing.
fn micros_text(us: u32) -> String {
    if us == 0 {
        String::new()
    } else {
        format!(".{us:06}")
    }
}

/// Adds strict mode to a MySQL session's `sql_mode` (see [`MySqlPool::new`]).
pub(crate) const STRICT_SESSION: &str =
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')";

impl MySqlPool {
    pub(crate) fn new(
        name: &str,
        opts: mysql_async::Opts,
        encoding: &str,
        timeouts: SqlTimeouts,
    ) -> Self {
        // Strict sessions whatever the server's or the DSN's `sql_mode`: without them
        // MySQL truncates an over-long string, rounds or clips a number and turns a bad
        // date into a zero date with only a warning. Setup commands run after the init
        // commands (a DSN's own `SET sql_mode` cannot undo this) and again after a
        // connection reset; the other modes are kept.
        let mut setup = opts.setup().to_vec();
        setup.push(STRICT_SESSION.to_string());
        let opts = mysql_async::OptsBuilder::from_opts(opts).setup(setup);
        MySqlPool {
            name: name.to_string(),
            pool: mysql_async::Pool::new(opts),
            encoding: encoding.to_string(),
            mariadb: OnceCell::new(),
            id_step: OnceCell::new(),
            timeouts,
        }
    }

    fn connection_error(&self, e: mysql_async::Error) -> Error {
        Error::Connection {
            pool: self.name.clone(),
            source: Box::new(e),
        }
    }

    async fn is_mariadb(&self, pool: &SqlPool) -> Result<bool> {
        self.mariadb
            .get_or_try_init(|| async {
                let rows = pool.query("SELECT VERSION()", vec![]).await?;
                Ok(rows
                    .first()
                    .and_then(|r| r.first())
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.to_ascii_lowercase().contains("mariadb")))
            })
            .await
            .copied()
    }

    /// Closes every connection.
    pub(crate) async fn disconnect(&self) {
        let _ = self.pool.clone().disconnect().await;
    }
}

/// A pool of SQLite connections (see `sqlite_run` for where statements run).
/// Connections are opened up front, so a bad path fails at `validate()`; checkout
/// costs no statement (unlike `deadpool-sqlite`, whose recycle runs a `SELECT` on
/// every checkout).
pub(crate) struct SqlitePool {
    pub(crate) name: String,
    pool: deadpool::unmanaged::Pool<rusqlite::Connection>,
    timeouts: SqlTimeouts,
}

/// A SQLite connection checked out of its pool. Wherever it is dropped (in a
/// [`Conn`], or on the blocking thread of a statement whose future was dropped), it
/// goes back to the pool in autocommit mode: a transaction still open is rolled
/// back first. `is_autocommit` reads a flag, so the check costs nothing.
struct SqliteConn(Option<deadpool::unmanaged::Object<rusqlite::Connection>>);

impl SqliteConn {
    /// The connection (`None` only while it is dropped).
    fn get(&mut self) -> Option<&mut rusqlite::Connection> {
        self.0.as_deref_mut()
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        let Some(conn) = self.0.take() else { return };
        if !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "SQLite: rollback of a transaction left open failed; the connection is closed");
                // Never back to the pool inside a transaction: the pool has one
                // connection less from now on.
                drop(deadpool::unmanaged::Object::take(conn));
            }
        }
    }
}

enum ConnInner {
    MySql(mysql_async::Conn),
    // Our own `START TRANSACTION` / `COMMIT` / `ROLLBACK` on a plain connection.
    MySqlTx(mysql_async::Conn),
    // `Option` so the connection can move to a blocking thread and back.
    Sqlite(Option<SqliteConn>),
    SqliteTx(Option<SqliteConn>),
    Postgres(Option<deadpool_postgres::Object>),
    PostgresTx(Option<deadpool_postgres::Object>),
}

/// One connection taken from a pool, in autocommit mode or inside a transaction.
/// Every statement goes through here: it is traced, bounded by the pool's statement
/// timeout, and its errors are typed.
///
/// Cancel safety: a future of this type may be dropped at any await point (a request
/// timeout does that). `dirty` is set before anything is sent and cleared only when
/// the statement finished with the connection in a known state, so a `Conn` dropped
/// with `dirty` set (or whose statement timed out or lost the connection) is closed,
/// never reused; one dropped inside a transaction rolls back before it is reused.
pub(crate) struct Conn {
    pool: SqlPool,
    inner: ConnInner,
    dirty: bool,
}

/// Runs `$body` with `$q` bound to the MySQL connection or transaction.
macro_rules! with_mysql {
    ($inner:expr, $q:ident => $body:expr) => {
        match $inner {
            ConnInner::MySql($q) | ConnInner::MySqlTx($q) => $body,
            _ => {
                return Err(Error::Query(
                    "internal error: MySQL statement on another connection".into(),
                ))
            }
        }
    };
}

impl Conn {
    fn kind_name(&self) -> &'static str {
        match self.pool.kind() {
            DialectKind::MySql => "mysql",
            DialectKind::Sqlite => "sqlite",
            DialectKind::Postgres => "postgres",
        }
    }

    /// Runs a statement that returns no rows.
    pub(crate) async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        self.start()?;
        let pool = self.pool.clone();
        let kind = self.kind_name();
        let r = traced(
            pool.name(),
            kind,
            sql,
            limited(&pool, sql, self.execute_inner(sql, params)),
        )
        .await;
        self.settle(&r);
        r
    }

    /// Refuses a connection whose earlier statement was cancelled or failed in a way
    /// that leaves its state unknown, then marks a statement as in flight.
    fn start(&mut self) -> Result<()> {
        if self.dirty {
            return Err(Error::Connection {
                pool: self.pool.name().to_string(),
                source: "an earlier statement on this connection was cancelled, timed out or lost the connection; \
                         its state is unknown, so it takes no more statements (a transaction on it is rolled back)"
                    .into(),
            });
        }
        self.dirty = true;
        Ok(())
    }

    /// Clears the in-flight mark unless the statement timed out or lost the
    /// connection (the server did not answer: what it did is unknown).
    fn settle<T>(&mut self, r: &Result<T>) {
        self.dirty = matches!(r, Err(Error::Timeout { .. } | Error::Connection { .. }));
    }

    async fn execute_inner(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        check_param_count(&self.pool, sql, params.len())?;
        match &mut self.inner {
            ConnInner::Postgres(c) | ConnInner::PostgresTx(c) => {
                let client = pg_client(&self.pool, c)?;
                let pg_sql = to_pg_sql(sql);
                let params: Vec<PgParam<'_>> = params.iter().map(PgParam).collect();
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let affected = if refs.is_empty() {
                    client.execute(pg_sql.as_ref(), &[]).await
                } else {
                    match client.prepare_cached(&pg_sql).await {
                        Ok(stmt) => client.execute(&stmt, &refs).await,
                        Err(e) => Err(e),
                    }
                }
                .map_err(|e| pg_error(&self.pool, sql, e))?;
                Ok(ExecResult {
                    affected_rows: affected,
                    last_insert_id: None,
                })
            }
            ConnInner::Sqlite(c) | ConnInner::SqliteTx(c) => {
                sqlite_run(&self.pool, c, sql, move |conn, sql| {
                    let mut stmt = conn.prepare_cached(sql)?;
                    let affected = stmt
                        .execute(rusqlite::params_from_iter(params.iter().map(SqliteParam)))?
                        as u64;
                    let id = conn.last_insert_rowid();
                    Ok(ExecResult {
                        affected_rows: affected,
                        last_insert_id: u64::try_from(id).ok().filter(|i| *i > 0),
                    })
                })
                .await
            }
            inner => {
                let pool = &self.pool;
                with_mysql!(inner, q => {
                    let result = if params.is_empty() {
                        q.query_drop(sql).await
                    } else {
                        let params = params.into_iter().map(mysql_value).collect::<Result<Vec<_>>>()?;
                        q.exec_drop(sql, params).await
                    };
                    result.map_err(|e| mysql_error(pool, sql, e))?;
                    Ok(ExecResult {
                        affected_rows: q.affected_rows(),
                        last_insert_id: q.last_insert_id(),
                    })
                })
            }
        }
    }

    /// Runs a query and returns every row. MySQL queries are prepared (and cached per
    /// connection), so values arrive typed.
    pub(crate) async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>> {
        self.query_map(sql, params, take_row).await
    }

    /// Runs a query and turns each row into a `T` with `f` as the rows arrive. `f`
    /// gets the row's cells in one buffer reused from row to row; it takes what it
    /// needs and the rest is cleared. Its first error ends the query.
    pub(crate) async fn query_map<T, F>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        f: F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
    {
        self.start()?;
        let pool = self.pool.clone();
        let kind = self.kind_name();
        let r = traced(
            pool.name(),
            kind,
            sql,
            limited(&pool, sql, self.query_inner(sql, params, false, f)),
        )
        .await;
        self.settle(&r);
        r.map(|(_, rows)| rows)
    }

    /// The rows, and the column names when `names` is set.
    async fn query_inner<T, F>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        names: bool,
        mut f: F,
    ) -> Result<(Vec<String>, Vec<T>)>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
    {
        check_param_count(&self.pool, sql, params.len())?;
        match &mut self.inner {
            ConnInner::Postgres(c) | ConnInner::PostgresTx(c) => {
                let client = pg_client(&self.pool, c)?;
                let pg_sql = to_pg_sql(sql);
                let params: Vec<PgParam<'_>> = params.iter().map(PgParam).collect();
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let stmt = client
                    .prepare_cached(&pg_sql)
                    .await
                    .map_err(|e| pg_error(&self.pool, sql, e))?;
                let rows = client
                    .query(&stmt, &refs)
                    .await
                    .map_err(|e| pg_error(&self.pool, sql, e))?;
                let columns = if names {
                    stmt.columns()
                        .iter()
                        .map(|c| c.name().to_string())
                        .collect()
                } else {
                    Vec::new()
                };
                let mut buf = Vec::with_capacity(stmt.columns().len());
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    for i in 0..row.len() {
                        buf.push(super::postgres::cell(row, i, self.pool.name(), sql)?);
                    }
                    out.push(f(&mut buf)?);
                    buf.clear();
                }
                Ok((columns, out))
            }
            ConnInner::Sqlite(c) | ConnInner::SqliteTx(c) => {
                sqlite_run(&self.pool, c, sql, move |conn, sql| {
                    let mut stmt = conn.prepare_cached(sql)?;
                    let n = stmt.column_count();
                    let columns: Vec<String> = if names {
                        stmt.column_names()
                            .into_iter()
                            .map(str::to_string)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let mut rows =
                        stmt.query(rusqlite::params_from_iter(params.iter().map(SqliteParam)))?;
                    let mut buf = Vec::with_capacity(n);
                    let mut out = Vec::new();
                    while let Some(row) = rows.next()? {
                        for i in 0..n {
                            buf.push(from_sqlite(row.get_ref(i)?));
                        }
                        match f(&mut buf) {
                            Ok(t) => out.push(t),
                            Err(e) => return Ok(Err(e)),
                        }
                        buf.clear();
                    }
                    Ok(Ok((columns, out)))
                })
                .await?
            }
            inner => {
                let pool = &self.pool;
                with_mysql!(inner, q => {
                    let params = params.into_iter().map(mysql_value).collect::<Result<Vec<_>>>()?;
                    let mut columns = Vec::new();
                    let mut buf = Vec::new();
                    let out = q
                        .exec_fold(sql, params, Ok(Vec::new()), |acc: Result<Vec<T>>, mut row: mysql_async::Row| {
                            let mut acc = acc?;
                            if names && acc.is_empty() {
                                columns = row.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
                            }
                            // Cell by cell: `Row::unwrap` would allocate a vector per row.
                            for i in 0..row.len() {
                                buf.push(row.take::<mysql_async::Value, _>(i).map_or(Value::Null, from_mysql));
                            }
                            let t = f(&mut buf);
                            buf.clear();
                            acc.push(t?);
                            Ok(acc)
                        })
                        .await
                        .map_err(|e| mysql_error(pool, sql, e))?;
                    Ok((columns, out?))
                })
            }
        }
    }

    /// Several `;`-separated statements without parameters; on SQLite in one
    /// transaction (unless already inside one).
    pub(crate) async fn execute_script(&mut self, sql: &str) -> Result<()> {
        self.start()?;
        let pool = self.pool.clone();
        let kind = self.kind_name();
        let r = traced(pool.name(), kind, sql, limited(&pool, sql, async {
            match &mut self.inner {
                ConnInner::Sqlite(c) => {
                    sqlite_run(&self.pool, c, sql, move |conn, sql| {
                        if let Some(body) = sql
                            .strip_prefix(super::sqlite::REBUILD_HEAD)
                            .and_then(|s| s.strip_suffix(super::sqlite::REBUILD_TAIL))
                        {
                            return sqlite_rebuild(conn, body);
                        }
                        let tx = conn.transaction()?;
                        tx.execute_batch(sql)?;
                        tx.commit()
                    })
                    .await
                }
                ConnInner::SqliteTx(c) => {
                    sqlite_run(&self.pool, c, sql, move |conn, sql| conn.execute_batch(sql)).await
                }
                // A multi-statement simple query runs in one implicit transaction.
                ConnInner::Postgres(c) | ConnInner::PostgresTx(c) => pg_client(&self.pool, c)?
                    .batch_execute(sql)
                    .await
                    .map_err(|e| pg_error(&self.pool, sql, e)),
                inner => {
                    let pool = &self.pool;
                    with_mysql!(inner, q => q.query_drop(sql).await.map_err(|e| mysql_error(pool, sql, e)))
                }
            }
        }))
        .await;
        self.settle(&r);
        r
    }

    /// Commits the transaction (a no-op in autocommit mode).
    pub(crate) async fn commit(self) -> Result<()> {
        self.finish("COMMIT").await
    }

    /// Rolls the transaction back (a no-op in autocommit mode).
    pub(crate) async fn rollback(self) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    /// Ends the transaction with `COMMIT` or `ROLLBACK`. The connection stays marked
    /// as in a transaction until the server confirmed: dropped during `COMMIT`, it is
    /// closed (the outcome is unknown); a failed `COMMIT` is rolled back on drop.
    async fn finish(mut self, how: &'static str) -> Result<()> {
        if !matches!(
            self.inner,
            ConnInner::MySqlTx(_) | ConnInner::SqliteTx(_) | ConnInner::PostgresTx(_)
        ) {
            return Ok(());
        }
        self.execute_script(how).await?;
        self.inner = match std::mem::replace(&mut self.inner, ConnInner::Sqlite(None)) {
            ConnInner::MySqlTx(c) => ConnInner::MySql(c),
            ConnInner::SqliteTx(c) => ConnInner::Sqlite(c),
            ConnInner::PostgresTx(c) => ConnInner::Postgres(c),
            other => other,
        };
        Ok(())
    }
}

impl Drop for Conn {
    /// Returns the connection to its pool only in a known state, in autocommit mode:
    /// - `dirty` (a statement was in flight, timed out or lost the connection): the
    ///   connection is closed;
    /// - inside a transaction: rolled back first (MySQL and PostgreSQL on the runtime;
    ///   a failed rollback closes the connection);
    /// - SQLite: [`SqliteConn`]'s own drop rolls back whatever is still open, also on
    ///   the blocking thread of a statement whose future was dropped.
    fn drop(&mut self) {
        let dirty = self.dirty;
        let limit = self.pool.timeouts().query;
        // Only the rare paths below need the name (no allocation per statement).
        let name = || self.pool.name().to_string();
        match std::mem::replace(&mut self.inner, ConnInner::Sqlite(None)) {
            ConnInner::MySql(c) if dirty => mysql_discard(c, limit),
            ConnInner::MySqlTx(mut c) => {
                if dirty {
                    mysql_discard(c, limit);
                } else if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let name = name();
                    rt.spawn(async move {
                        match tokio::time::timeout(limit, c.query_drop("ROLLBACK")).await {
                            Ok(Ok(())) => drop(c),
                            _ => {
                                tracing::warn!(pool = %name, "rollback of a dropped transaction failed; the connection is closed");
                                let _ = tokio::time::timeout(limit, c.disconnect()).await;
                            }
                        }
                    });
                } else {
                    mysql_discard(c, limit);
                }
            }
            ConnInner::Postgres(Some(c)) if dirty => drop(deadpool_postgres::Object::take(c)),
            ConnInner::PostgresTx(Some(client)) => {
                let rt = tokio::runtime::Handle::try_current();
                match rt {
                    Ok(rt) if !dirty => {
                        let name = name();
                        rt.spawn(async move {
                            let r = tokio::time::timeout(limit, client.batch_execute("ROLLBACK")).await;
                            if !matches!(r, Ok(Ok(()))) {
                                tracing::warn!(pool = %name, "rollback of a dropped transaction failed; the connection is closed");
                                drop(deadpool_postgres::Object::take(client));
                            }
                        });
                    }
                    _ => drop(deadpool_postgres::Object::take(client)),
                }
            }
            // Clean autocommit connections go back as they are; SQLite ones roll
            // back in `SqliteConn::drop`.
            _ => {}
        }
    }
}

/// Closes a MySQL connection instead of returning it to the pool (its slot is freed
/// once it is closed). mysql_async marks it disconnected on the first poll of
/// `disconnect`, so even a slow close never hands it out again.
fn mysql_discard(c: mysql_async::Conn, limit: std::time::Duration) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = tokio::time::timeout(limit, c.disconnect()).await;
        });
    }
}

/// How long a statement waits for another connection's write lock before SQLITE_BUSY.
const SQLITE_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `f` on the SQLite connection.
///
/// First inline, with no busy wait: SQLite work is local and usually takes a few
/// microseconds, less than a hop to another thread would cost. If the database is
/// locked by another connection, the statement failed without effect; it is then run
/// again on a blocking thread that may wait for the lock (at most `SQLITE_BUSY_WAIT`,
/// or the pool's statement timeout if shorter), so the async worker never sleeps on a
/// lock (which could deadlock a single-threaded runtime whose other task holds that
/// lock).
///
/// Cancel safety: the blocking thread owns the connection until it ends. If this
/// future is dropped first, the thread skips `f` when it has not started it yet, and
/// the connection goes back to the pool through [`SqliteConn`]'s drop, which rolls
/// back a transaction left open (a `BEGIN IMMEDIATE` that got the lock after its
/// caller gave up, or the transaction of a dropped [`Conn`]).
async fn sqlite_run<T, F>(
    pool: &SqlPool,
    slot: &mut Option<SqliteConn>,
    sql: &str,
    mut f: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut rusqlite::Connection, &str) -> rusqlite::Result<T> + Send + 'static,
{
    let lost = || Error::Connection {
        pool: pool.name().to_string(),
        source: "the connection was lost by an earlier failure".into(),
    };
    let conn = slot.as_mut().and_then(SqliteConn::get).ok_or_else(lost)?;
    match f(conn, sql) {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) => {}
        other => return other.map_err(|e| sqlite_error(pool, sql, e)),
    }
    let Some(mut conn) = slot.take() else {
        return Err(lost());
    };
    let owned = sql.to_string();
    let wait = SQLITE_BUSY_WAIT.min(pool.timeouts().query);
    let cancelled = CancelFlag::default();
    let flag = cancelled.0.clone();
    let (conn, result) = tokio::task::spawn_blocking(move || {
        use std::sync::atomic::Ordering;
        let r = match conn.get() {
            _ if flag.load(Ordering::Acquire) => None,
            Some(c) => {
                let r = c.busy_timeout(wait).and_then(|()| f(c, &owned));
                let _ = c.busy_timeout(std::time::Duration::ZERO);
                Some(r)
            }
            None => None,
        };
        (conn, r)
    })
    .await
    .map_err(|e| Error::Connection {
        pool: pool.name().to_string(),
        source: Box::new(e),
    })?;
    drop(cancelled);
    *slot = Some(conn);
    result
        .ok_or_else(lost)?
        .map_err(|e| sqlite_error(pool, sql, e))
}

/// Set when the future waiting for a blocking SQLite statement is dropped before it
/// finished, so the blocking thread does not start work nobody waits for.
#[derive(Default)]
struct CancelFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Runs the statements of a table rebuild (see `sql::sqlite::REBUILD_HEAD`) with
/// foreign keys off, in one transaction that commits only when no foreign key is
/// violated afterwards; foreign keys are back on whatever happens.
fn sqlite_rebuild(conn: &mut rusqlite::Connection, body: &str) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let result = sqlite_checked_transaction(conn, body);
    let on = conn.execute_batch("PRAGMA foreign_keys = ON");
    result.and(on)
}

/// `body` in a transaction that commits only when `PRAGMA foreign_key_check` finds
/// no violation.
fn sqlite_checked_transaction(conn: &mut rusqlite::Connection, body: &str) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(body)?;
    let violations: i64 =
        tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })?;
    if violations > 0 {
        // `tx` is dropped without commit: rolled back.
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error {
                code: rusqlite::ErrorCode::ConstraintViolation,
                extended_code: rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
            },
            Some(format!(
                "FOREIGN KEY constraint failed: {violations} rows would violate a foreign key after the rebuild; nothing was changed"
            )),
        ));
    }
    tx.commit()
}

/// A parameter bound to a SQLite statement straight from our [`Value`]: text and
/// blobs are borrowed, not copied.
struct SqliteParam<'a>(&'a Value);

impl rusqlite::ToSql for SqliteParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput as O, Value as S, ValueRef as R};
        Ok(match self.0 {
            Value::Null => O::Borrowed(R::Null),
            Value::Bool(b) => O::Owned(S::Integer(i64::from(*b))),
            Value::I64(i) => O::Owned(S::Integer(*i)),
            // SQLite integers are signed 64-bit: a u64 above i64::MAX is stored as its
            // two's complement (as text it would turn into a lossy REAL).
            Value::U64(u) => O::Owned(S::Integer(*u as i64)),
            Value::F32(f) => O::Owned(S::Real(f64::from(*f))),
            Value::F64(f) => O::Owned(S::Real(*f)),
            Value::Decimal(d) => O::Owned(sqlite_decimal(d)),
            Value::String(s) => O::Borrowed(R::Text(s.as_bytes())),
            Value::Bytes(b) => O::Borrowed(R::Blob(b)),
            Value::Date(d) => O::Owned(S::Text(sqlite_date(*d)?.format("%Y-%m-%d").to_string())),
            Value::DateTime(d) => {
                sqlite_date(d.date())?;
                O::Owned(S::Text(d.format("%Y-%m-%d %H:%M:%S%.f").to_string()))
            }
            Value::Time(t) => O::Owned(S::Text(t.format("%H:%M:%S%.f").to_string())),
            Value::Json(j) => O::Owned(S::Text(j.to_string())),
        })
    }
}

/// Dates are stored as `YYYY-MM-DD` text: a year outside 0–9999 would be written with
/// a sign and more digits, which neither sorts nor reads back.
fn sqlite_date(d: chrono::NaiveDate) -> rusqlite::Result<chrono::NaiveDate> {
    use chrono::Datelike;
    if (0..=9999).contains(&d.year()) {
        Ok(d)
    } else {
        Err(rusqlite::Error::ToSqlConversionFailure(
            format!("date {d}: SQLite dates are stored as text from 0000-01-01 to 9999-12-31")
                .into(),
        ))
    }
}

/// A decimal bound as a number, so it compares as one against any expression
/// (`price * qty > ?`, `HAVING SUM(total) > ?`): in SQLite every number sorts before
/// every text. An integer when it is one, a REAL when it has at most 15 significant
/// digits (the REAL reads back as the same decimal), else its exact text (a flush
/// sends wider columns' values as text anyway, see `schema::limits`).
fn sqlite_decimal(d: &rust_decimal::Decimal) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    use rust_decimal::prelude::ToPrimitive;
    if d.fract().is_zero() {
        if let Some(i) = d.to_i64() {
            return S::Integer(i);
        }
    }
    if super::value::Digits::of_decimal(d).significant <= super::value::F64_EXACT_DIGITS {
        // Through the text: Rust's parser gives the nearest f64, whose shortest form
        // is the decimal again.
        if let Some(Ok(f)) = super::value::NumText::of(d).map(|t| t.as_str().parse::<f64>()) {
            return S::Real(f);
        }
    }
    S::Text(d.to_string())
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as S;
    match v {
        S::Null => Value::Null,
        S::Integer(i) => Value::I64(i),
        S::Real(f) => Value::F64(f),
        S::Text(s) => match std::str::from_utf8(s) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => Value::Bytes(s.to_vec()),
        },
        S::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

impl SqlitePool {
    /// Opens `size` connections to `path` (`:memory:` gets one: each in-memory
    /// connection would be its own database).
    pub(crate) fn open(name: &str, path: &str, size: usize, timeouts: SqlTimeouts) -> Result<Self> {
        let memory = path == ":memory:";
        let size = if memory { 1 } else { size.max(1) };
        let mut conns = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = rusqlite::Connection::open(path).map_err(|e| Error::Connection {
                pool: name.to_string(),
                source: format!("cannot open SQLite database `{path}`: {e}").into(),
            })?;
            let pragmas = if memory {
                "PRAGMA foreign_keys = ON;"
            } else {
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 0; PRAGMA foreign_keys = ON;"
            };
            conn.execute_batch(pragmas).map_err(|e| Error::Connection {
                pool: name.to_string(),
                source: format!("cannot set up SQLite database `{path}`: {e}").into(),
            })?;
            conns.push(conn);
        }
        Ok(SqlitePool {
            name: name.to_string(),
            pool: deadpool::unmanaged::Pool::from(conns),
            timeouts,
        })
    }
}

/// The quoted name after `marker` in a server message (`… for key 'Email'`).
fn quoted_after<'m>(message: &'m str, marker: &str, quote: char) -> Option<&'m str> {
    let start = message.rfind(marker)? + marker.len();
    let rest = &message[start..];
    let rest = rest.strip_prefix(quote)?;
    Some(&rest[..rest.find(quote)?])
}

fn mysql_error(pool: &SqlPool, sql: &str, e: mysql_async::Error) -> Error {
    let pool_name = pool.name().to_string();
    match e {
        mysql_async::Error::Server(ref s) if s.code == 1062 || s.code == 1586 => {
            // MariaDB: `for key 'Email'`; MySQL 8: `for key 'table.Email'`.
            let key = quoted_after(&s.message, "for key ", '\'').unwrap_or_default();
            let index = key.rsplit('.').next().unwrap_or(key).to_string();
            Error::DuplicatedKey {
                pool: pool_name,
                index,
                source: Box::new(e),
            }
        }
        mysql_async::Error::Server(ref s) if matches!(s.code, 1216 | 1217 | 1451 | 1452) => {
            let constraint = quoted_after(&s.message, "CONSTRAINT ", '`').map(str::to_string);
            Error::ForeignKey {
                pool: pool_name,
                constraint,
                source: Box::new(e),
            }
        }
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => Error::Connection {
            pool: pool_name,
            source: Box::new(e),
        },
        other => Error::Database {
            pool: pool_name,
            sql: sql.to_string(),
            source: Box::new(other),
        },
    }
}

fn sqlite_error(pool: &SqlPool, sql: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ffi;
    let pool_name = pool.name().to_string();
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

/// A PostgreSQL pool (deadpool-postgres with the "fast" recycling method: no query on
/// checkout), statements prepared and cached per connection.
pub(crate) struct PgPool {
    pub(crate) name: String,
    pool: deadpool_postgres::Pool,
    timeouts: SqlTimeouts,
}

impl PgPool {
    /// Parses the URL (`postgres://user:pass@host:5432/db?limit_connections=N`) and
    /// creates the pool; no connection is opened yet.
    pub(crate) fn new(name: &str, url: &str, timeouts: SqlTimeouts) -> Result<Self> {
        let bad = |why: String| Error::config(format!("PostgreSQL URL of pool `{name}`: {why}"));
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut limit = super::super::registry::DEFAULT_LIMIT_CONNECTIONS;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("limit_connections", v)) => {
                    limit = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        bad(format!(
                            "limit_connections must be a positive number, got `{v}`"
                        ))
                    })?;
                }
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| bad(format!("{e}")))?;
        config.connect_timeout(timeouts.connect);
        if config.get_dbname().is_none() {
            return Err(bad("it names no database".into()));
        }
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(limit)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(timeouts.acquire))
            .create_timeout(Some(timeouts.connect))
            .recycle_timeout(Some(timeouts.connect))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(PgPool {
            name: name.to_string(),
            pool,
            timeouts,
        })
    }

    /// A connection: `acquire` bounds the wait for a free slot, `connect` the opening
    /// of a new connection.
    async fn get(&self) -> Result<deadpool_postgres::Object> {
        use deadpool_postgres::{PoolError, TimeoutType};
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(TimeoutType::Wait) => {
                timeout_error(&self.name, "acquire", self.timeouts.acquire)
            }
            PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => {
                timeout_error(&self.name, "connect", self.timeouts.connect)
            }
            e => Error::Connection {
                pool: self.name.clone(),
                source: Box::new(e),
            },
        })
    }
}

fn pg_client<'c>(
    pool: &SqlPool,
    slot: &'c mut Option<deadpool_postgres::Object>,
) -> Result<&'c mut deadpool_postgres::Object> {
    slot.as_mut().ok_or_else(|| Error::Connection {
        pool: pool.name().to_string(),
        source: "the connection was lost by an earlier failure".into(),
    })
}

fn pg_error(pool: &SqlPool, sql: &str, e: tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    let pool_name = pool.name().to_string();
    if let Some(db) = e.as_db_error() {
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            let constraint = db.constraint().unwrap_or_default();
            let index = if constraint.ends_with("_pkey") {
                "PRIMARY".to_string()
            } else {
                // Our index names are `table__Name`.
                constraint
                    .split_once("__")
                    .map_or(constraint, |(_, n)| n)
                    .to_string()
            };
            return Error::DuplicatedKey {
                pool: pool_name,
                index,
                source: Box::new(e),
            };
        }
        if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
            let constraint = db.constraint().map(str::to_string);
            return Error::ForeignKey {
                pool: pool_name,
                constraint,
                source: Box::new(e),
            };
        }
        return Error::Database {
            pool: pool_name,
            sql: sql.to_string(),
            source: Box::new(e),
        };
    }
    // A closed connection or an I/O failure is a connection problem; anything else
    // (a parameter that cannot be converted, …) belongs to the statement.
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        Error::Connection {
            pool: pool_name,
            source: Box::new(e),
        }
    } else {
        Error::Database {
            pool: pool_name,
            sql: sql.to_string(),
            source: Box::new(e),
        }
    }
}
