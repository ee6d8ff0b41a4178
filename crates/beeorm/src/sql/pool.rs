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
    pub(crate) async fn id_step(&self) -> Result<Option<u64>> {
        match self {
            SqlPool::Sqlite(_) | SqlPool::Postgres(_) => Ok(Some(1)),
            SqlPool::MySql(p) => p
                .id_step
                .get_or_try_init(|| async {
                    let rows = self
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

    /// A connection in autocommit mode.
    pub(crate) async fn conn(&self) -> Result<Conn> {
        let inner = match self {
            SqlPool::MySql(p) => {
                ConnInner::MySql(p.pool.get_conn().await.map_err(|e| p.connection_error(e))?)
            }
            SqlPool::Postgres(p) => {
                ConnInner::Postgres(Some(p.pool.get().await.map_err(|e| Error::Connection {
                    pool: p.name.clone(),
                    source: Box::new(e),
                })?))
            }
            SqlPool::Sqlite(p) => {
                ConnInner::Sqlite(Some(p.pool.get().await.map_err(|e| Error::Connection {
                    pool: p.name.clone(),
                    source: Box::new(e),
                })?))
            }
        };
        Ok(Conn {
            pool: self.clone(),
            inner,
        })
    }

    /// A connection inside a new transaction: [`Conn::commit`] or [`Conn::rollback`] it;
    /// dropped, it rolls back.
    pub(crate) async fn begin(&self) -> Result<Conn> {
        match self {
            SqlPool::MySql(p) => {
                let tx = traced(&p.name, "mysql", "START TRANSACTION", async {
                    p.pool
                        .start_transaction(mysql_async::TxOpts::default())
                        .await
                        .map_err(|e| p.connection_error(e))
                })
                .await?;
                Ok(Conn {
                    pool: self.clone(),
                    inner: ConnInner::MySqlTx(tx),
                })
            }
            SqlPool::Postgres(_) => {
                let mut conn = self.conn().await?;
                conn.execute_script("BEGIN").await?;
                if let ConnInner::Postgres(c) = &mut conn.inner {
                    conn.inner = ConnInner::PostgresTx(c.take());
                }
                Ok(conn)
            }
            SqlPool::Sqlite(_) => {
                let mut conn = self.conn().await?;
                conn.execute("BEGIN IMMEDIATE", vec![]).await?;
                if let ConnInner::Sqlite(c) = &mut conn.inner {
                    conn.inner = ConnInner::SqliteTx(c.take());
                }
                Ok(conn)
            }
        }
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
        let kind = conn.kind_name();
        traced(
            self.name(),
            kind,
            sql,
            conn.query_inner(sql, params, true, take_row),
        )
        .await
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
    pub(crate) fn new(name: &str, opts: mysql_async::Opts, encoding: &str) -> Self {
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
}

type SqliteConn = deadpool::unmanaged::Object<rusqlite::Connection>;

enum ConnInner {
    MySql(mysql_async::Conn),
    MySqlTx(mysql_async::Transaction<'static>),
    // `Option` so the connection can move to a blocking thread and back.
    Sqlite(Option<SqliteConn>),
    SqliteTx(Option<SqliteConn>),
    Postgres(Option<deadpool_postgres::Object>),
    PostgresTx(Option<deadpool_postgres::Object>),
}

/// One connection taken from a pool, in autocommit mode or inside a transaction.
/// Every statement goes through here: it is traced and its errors are typed.
pub(crate) struct Conn {
    pool: SqlPool,
    inner: ConnInner,
}

/// Runs `$body` with `$q` bound to the MySQL connection or transaction.
macro_rules! with_mysql {
    ($inner:expr, $q:ident => $body:expr) => {
        match $inner {
            ConnInner::MySql($q) => $body,
            ConnInner::MySqlTx($q) => $body,
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
        let pool = self.pool.clone();
        traced(
            pool.name(),
            self.kind_name(),
            sql,
            self.execute_inner(sql, params),
        )
        .await
    }

    async fn execute_inner(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
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
        let pool = self.pool.clone();
        traced(
            pool.name(),
            self.kind_name(),
            sql,
            self.query_inner(sql, params, false, f),
        )
        .await
        .map(|(_, rows)| rows)
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
                        buf.push(
                            super::postgres::cell(row, i)
                                .map_err(|e| pg_error(&self.pool, sql, e))?,
                        );
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
        let pool = self.pool.clone();
        let kind = self.kind_name();
        traced(pool.name(), kind, sql, async {
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
        })
        .await
    }

    /// Commits the transaction (a no-op in autocommit mode).
    pub(crate) async fn commit(self) -> Result<()> {
        self.finish("COMMIT").await
    }

    /// Rolls the transaction back (a no-op in autocommit mode).
    pub(crate) async fn rollback(self) -> Result<()> {
        self.finish("ROLLBACK").await
    }

    /// Ends the transaction with `COMMIT` or `ROLLBACK`.
    async fn finish(mut self, how: &'static str) -> Result<()> {
        match std::mem::replace(&mut self.inner, ConnInner::Sqlite(None)) {
            ConnInner::MySqlTx(tx) => {
                let pool = self.pool.clone();
                traced(pool.name(), "mysql", how, async {
                    let r = if how == "COMMIT" {
                        tx.commit().await
                    } else {
                        tx.rollback().await
                    };
                    r.map_err(|e| mysql_error(&pool, how, e))
                })
                .await
            }
            ConnInner::SqliteTx(c) => {
                self.inner = ConnInner::Sqlite(c);
                self.execute(how, vec![]).await.map(|_| ())
            }
            ConnInner::PostgresTx(c) => {
                self.inner = ConnInner::Postgres(c);
                self.execute_script(how).await
            }
            other => {
                self.inner = other;
                Ok(())
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // A SQLite transaction dropped without commit is rolled back here, before the
        // connection returns to the pool. (A dropped mysql_async transaction rolls
        // itself back before its connection is reused.)
        if let ConnInner::SqliteTx(Some(c)) = &mut self.inner {
            if let Err(e) = c.execute_batch("ROLLBACK") {
                tracing::warn!(pool = %self.pool.name(), error = %e, "rollback of a dropped transaction failed");
            }
        }
        // A PostgreSQL connection must not go back to the pool inside a transaction:
        // roll back on the runtime, or close the connection when there is none.
        if let ConnInner::PostgresTx(c) = &mut self.inner {
            if let Some(client) = c.take() {
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        rt.spawn(async move {
                            if client.batch_execute("ROLLBACK").await.is_err() {
                                drop(deadpool_postgres::Object::take(client));
                            }
                        });
                    }
                    Err(_) => drop(deadpool_postgres::Object::take(client)),
                }
            }
        }
    }
}

/// How long a statement waits for another connection's write lock before SQLITE_BUSY.
const SQLITE_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `f` on the SQLite connection.
///
/// First inline, with no busy wait: SQLite work is local and usually takes a few
/// microseconds, less than a hop to another thread would cost. If the database is
/// locked by another connection, the statement failed without effect; it is then run
/// again on a blocking thread that may wait for the lock, so the async worker never
/// sleeps on a lock (which could deadlock a single-threaded runtime whose other task
/// holds that lock).
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
    let conn = slot.as_mut().ok_or_else(|| Error::Connection {
        pool: pool.name().to_string(),
        source: "the connection was lost by an earlier failure".into(),
    })?;
    match f(conn, sql) {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) => {}
        other => return other.map_err(|e| sqlite_error(pool, sql, e)),
    }
    let Some(mut conn) = slot.take() else {
        return Err(Error::Connection {
            pool: pool.name().to_string(),
            source: "the connection was lost by an earlier failure".into(),
        });
    };
    let owned = sql.to_string();
    let (conn, result) = tokio::task::spawn_blocking(move || {
        let r = conn
            .busy_timeout(SQLITE_BUSY_WAIT)
            .and_then(|()| f(&mut conn, &owned));
        let _ = conn.busy_timeout(std::time::Duration::ZERO);
        (conn, r)
    })
    .await
    .map_err(|e| Error::Connection {
        pool: pool.name().to_string(),
        source: Box::new(e),
    })?;
    *slot = Some(conn);
    result.map_err(|e| sqlite_error(pool, sql, e))
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
    pub(crate) fn open(name: &str, path: &str, size: usize) -> Result<Self> {
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
}

impl PgPool {
    /// Parses the URL (`postgres://user:pass@host:5432/db?limit_connections=N`) and
    /// creates the pool; no connection is opened yet.
    pub(crate) fn new(name: &str, url: &str) -> Result<Self> {
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
        let config: tokio_postgres::Config = url.parse().map_err(|e| bad(format!("{e}")))?;
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
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(PgPool {
            name: name.to_string(),
            pool,
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
