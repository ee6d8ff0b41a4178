//! SQLite connections: a pool of connections opened up front, the statements of one
//! connection (run inline, or on a blocking thread when the database is locked), and
//! the rollback of a transaction left open by a connection dropped mid-way.

use std::sync::Arc;

use super::errors::map_error;
use super::values::{from_sqlite, SqliteParam};
use crate::instrument::Hook;
use crate::sql::pool::{timeout_error, ExecResult, SqlTimeouts};
use crate::{Error, Result, Value};

/// A pool of SQLite connections (see [`run`] for where statements run).
/// Connections are opened up front, so a bad path fails at `validate()`; checkout
/// costs no statement (unlike `deadpool-sqlite`, whose recycle runs a `SELECT` on
/// every checkout).
pub(crate) struct SqlitePool {
    pub(crate) name: String,
    pool: deadpool::unmanaged::Pool<rusqlite::Connection>,
    pub(crate) timeouts: SqlTimeouts,
    pub(crate) instrumentation: Hook,
}

/// A SQLite connection checked out of its pool. Wherever it is dropped (in a
/// [`Conn`], or on the blocking thread of a statement whose future was dropped), it
/// goes back to the pool in autocommit mode: a transaction still open is rolled
/// back first. `is_autocommit` reads a flag, so the check costs nothing.
pub(crate) struct SqliteConn(Option<deadpool::unmanaged::Object<rusqlite::Connection>>);

impl SqliteConn {
    /// The connection (`None` only while it is dropped).
    pub(crate) fn get(&mut self) -> Option<&mut rusqlite::Connection> {
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
pub(crate) async fn run<T, F>(
    pool: &str,
    query_limit: std::time::Duration,
    slot: &mut Option<SqliteConn>,
    sql: &str,
    mut f: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut rusqlite::Connection, &str) -> rusqlite::Result<T> + Send + 'static,
{
    let lost = || Error::Connection {
        pool: pool.to_string(),
        source: "the connection was lost by an earlier failure".into(),
    };
    let conn = slot.as_mut().and_then(SqliteConn::get).ok_or_else(lost)?;
    match f(conn, sql) {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) => {}
        other => return other.map_err(|e| map_error(pool, sql, e)),
    }
    let Some(mut conn) = slot.take() else {
        return Err(lost());
    };
    let owned = sql.to_string();
    let wait = SQLITE_BUSY_WAIT.min(query_limit);
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
        pool: pool.to_string(),
        source: Box::new(e),
    })?;
    drop(cancelled);
    *slot = Some(conn);
    result
        .ok_or_else(lost)?
        .map_err(|e| map_error(pool, sql, e))
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

/// Runs the statements of a table rebuild (see [`super::ddl::REBUILD_HEAD`]) with
/// foreign keys off, in one transaction that commits only when no foreign key is
/// violated afterwards; foreign keys are back on whatever happens.
pub(crate) fn rebuild(conn: &mut rusqlite::Connection, body: &str) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA foreign_keys = OFF")?;
    let result = checked_transaction(conn, body);
    let on = conn.execute_batch("PRAGMA foreign_keys = ON");
    result.and(on)
}

/// `body` in a transaction that commits only when `PRAGMA foreign_key_check` finds
/// no violation.
fn checked_transaction(conn: &mut rusqlite::Connection, body: &str) -> rusqlite::Result<()> {
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

impl SqlitePool {
    /// Opens `size` connections to `path` (`:memory:` gets one: each in-memory
    /// connection would be its own database).
    pub(crate) fn open(
        name: &str,
        path: &str,
        size: usize,
        timeouts: SqlTimeouts,
        instrumentation: Hook,
    ) -> Result<Self> {
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
            instrumentation,
        })
    }
}

impl SqlitePool {
    /// A free connection, without setting up a timer in the usual case; else waits
    /// at most `acquire`.
    pub(crate) async fn acquire(&self) -> Result<SqliteConn> {
        let free = self.pool.try_get().ok();
        let c = match free {
            Some(c) => c,
            None => {
                let limit = self.timeouts.acquire;
                match Box::pin(tokio::time::timeout(limit, self.pool.get())).await {
                    Ok(c) => c.map_err(|e| Error::Connection {
                        pool: self.name.clone(),
                        source: Box::new(e),
                    })?,
                    Err(_) => return Err(timeout_error(&self.name, "acquire", limit)),
                }
            }
        };
        Ok(SqliteConn(Some(c)))
    }
}

/// Runs a statement that returns no rows.
pub(crate) async fn execute(
    pool: &str,
    query_limit: std::time::Duration,
    slot: &mut Option<SqliteConn>,
    sql: &str,
    params: Vec<Value>,
) -> Result<ExecResult> {
    run(pool, query_limit, slot, sql, move |conn, sql| {
        let mut stmt = conn.prepare_cached(sql)?;
        let affected =
            stmt.execute(rusqlite::params_from_iter(params.iter().map(SqliteParam)))? as u64;
        let id = conn.last_insert_rowid();
        Ok(ExecResult {
            affected_rows: affected,
            last_insert_id: u64::try_from(id).ok().filter(|i| *i > 0),
        })
    })
    .await
}

/// Runs a query and turns each row into a `T` with `f`; the column names too when
/// `names` is set.
pub(crate) async fn query<T, F>(
    pool: &str,
    query_limit: std::time::Duration,
    slot: &mut Option<SqliteConn>,
    sql: &str,
    params: Vec<Value>,
    names: bool,
    mut f: F,
) -> Result<(Vec<String>, Vec<T>)>
where
    T: Send + 'static,
    F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
{
    run(pool, query_limit, slot, sql, move |conn, sql| {
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
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter().map(SqliteParam)))?;
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

/// Several `;`-separated statements without parameters: in one transaction on a
/// connection in autocommit mode (a table rebuild script runs through [`rebuild`]),
/// as they are inside a transaction.
pub(crate) async fn script(
    pool: &str,
    query_limit: std::time::Duration,
    slot: &mut Option<SqliteConn>,
    sql: &str,
    in_transaction: bool,
) -> Result<()> {
    if in_transaction {
        return run(pool, query_limit, slot, sql, move |conn, sql| {
            conn.execute_batch(sql)
        })
        .await;
    }
    run(pool, query_limit, slot, sql, move |conn, sql| {
        if let Some(body) = sql
            .strip_prefix(super::ddl::REBUILD_HEAD)
            .and_then(|s| s.strip_suffix(super::ddl::REBUILD_TAIL))
        {
            return rebuild(conn, body);
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.commit()
    })
    .await
}
