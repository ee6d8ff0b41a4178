//! SQLite connections: a pool of connections opened up front, the statements of one
//! connection (run inline, or on a blocking thread when the database is locked), and
//! the rollback of a transaction left open by a connection dropped mid-way.

use std::sync::Arc;

use super::checkout::Idle;
pub(crate) use super::checkout::SqliteConn;
use super::errors::map_error;
use super::values::{from_sqlite, SqliteParam};
use crate::instrument::Hook;
use crate::sql::pool::{timeout_error, ExecResult, SqlTimeouts};
use crate::{Error, Result, Value};

/// A pool of SQLite connections (see [`run`] for where statements run, and
/// `checkout` for the pool itself). Connections are opened up front, so a bad path
/// fails at `validate()`; checkout costs no statement (unlike `deadpool-sqlite`,
/// whose recycle runs a `SELECT` on every checkout).
pub(crate) struct SqlitePool {
    pub(crate) name: String,
    idle: Arc<Idle>,
    pub(crate) timeouts: SqlTimeouts,
    pub(crate) instrumentation: Hook,
}

/// How long a statement waits for another connection's write lock before SQLITE_BUSY.
const SQLITE_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a statement failed because another connection holds the lock it needs
/// (it then did nothing).
fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
    )
}

/// What running a statement inline gave.
pub(crate) enum Inline<T, J> {
    /// It ran, or failed for another reason than a lock.
    Ran(Result<T>),
    /// The database was locked by another connection: nothing was done; `J` is to run
    /// on a blocking thread ([`blocking`]).
    Locked(J),
}

/// Runs `job` on `conn` now, with no busy wait (see [`run`]).
#[inline]
pub(crate) fn inline<T, J>(
    pool: &str,
    conn: &mut rusqlite::Connection,
    sql: &str,
    mut job: J,
) -> Inline<T, J>
where
    J: FnMut(&mut rusqlite::Connection, &str) -> rusqlite::Result<T>,
{
    match job(conn, sql) {
        Err(e) if is_locked(&e) => Inline::Locked(job),
        other => Inline::Ran(other.map_err(|e| map_error(pool, sql, e))),
    }
}

/// Runs `f` on the SQLite connection.
///
/// First inline, with no busy wait: SQLite work is local and usually takes a few
/// microseconds, less than a hop to another thread would cost. If the database is
/// locked by another connection, the statement failed without effect; it is then run
/// again on a blocking thread that may wait for the lock ([`blocking`]), so the async
/// worker never sleeps on a lock (which could deadlock a single-threaded runtime whose
/// other task holds that lock).
pub(crate) async fn run<T, F>(
    pool: &str,
    query_limit: std::time::Duration,
    slot: &mut Option<SqliteConn>,
    sql: &str,
    f: F,
) -> Result<T>
where
    T: Send + 'static,
    F: FnMut(&mut rusqlite::Connection, &str) -> rusqlite::Result<T> + Send + 'static,
{
    let conn = slot
        .as_mut()
        .and_then(SqliteConn::get)
        .ok_or_else(|| lost(pool))?;
    match inline(pool, conn, sql, f) {
        Inline::Ran(r) => r,
        Inline::Locked(f) => blocking(pool, query_limit, slot, sql, f).await,
    }
}

/// The error of a statement on a connection lost by an earlier failure.
fn lost(pool: &str) -> Error {
    Error::Connection {
        pool: pool.to_string(),
        source: "the connection was lost by an earlier failure".into(),
    }
}

/// Runs `f` on a blocking thread that may wait for another connection's lock (at
/// most `SQLITE_BUSY_WAIT`, or the pool's statement timeout if shorter).
///
/// Cancel safety: the blocking thread owns the connection until it ends. If this
/// future is dropped first, the thread skips `f` when it has not started it yet, and
/// the connection goes back to the pool through [`SqliteConn`]'s drop, which rolls
/// back a transaction left open (a `BEGIN IMMEDIATE` that got the lock after its
/// caller gave up, or the transaction of a dropped [`Conn`](crate::sql::pool::Conn)).
pub(crate) async fn blocking<T, F>(
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
    let Some(mut conn) = slot.take() else {
        return Err(lost(pool));
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
        .ok_or_else(|| lost(pool))?
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
            idle: Idle::new(conns),
            timeouts,
            instrumentation,
        })
    }
}

impl SqlitePool {
    /// A free connection now, if there is one.
    #[inline]
    pub(crate) fn try_acquire(&self) -> Option<SqliteConn> {
        self.idle.try_take()
    }

    /// A free connection, without setting up a timer in the usual case; else waits
    /// at most `acquire`.
    pub(crate) async fn acquire(&self) -> Result<SqliteConn> {
        if let Some(c) = self.idle.try_take() {
            return Ok(c);
        }
        let limit = self.timeouts.acquire;
        match Box::pin(tokio::time::timeout(limit, self.idle.take())).await {
            Ok(c) => Ok(c),
            Err(_) => Err(timeout_error(&self.name, "acquire", limit)),
        }
    }
}

/// The job of a statement that returns no rows (see [`run`]).
pub(crate) fn execute_job(
    params: Vec<Value>,
) -> impl FnMut(&mut rusqlite::Connection, &str) -> rusqlite::Result<Result<ExecResult>> + Send + 'static
{
    move |conn, sql| {
        let mut stmt = conn.prepare_cached(sql)?;
        let affected =
            stmt.execute(rusqlite::params_from_iter(params.iter().map(SqliteParam)))? as u64;
        let id = conn.last_insert_rowid();
        Ok(Ok(ExecResult {
            affected_rows: affected,
            last_insert_id: u64::try_from(id).ok().filter(|i| *i > 0),
        }))
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
    run(pool, query_limit, slot, sql, execute_job(params)).await?
}

/// The rows of a query and, when `names` is set, the names of its columns.
pub(crate) type NamedRows<T> = (Vec<String>, Vec<T>);

thread_local! {
    /// The cells of the row being decoded, reused from statement to statement on this
    /// thread (a read of one row allocates nothing for them).
    static CELLS: std::cell::Cell<Vec<Value>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Runs `body` with this thread's empty cell buffer, room for `n` cells in it.
fn with_cells<R>(n: usize, body: impl FnOnce(&mut Vec<Value>) -> R) -> R {
    let mut cells = CELLS.take();
    cells.reserve(n);
    let r = body(&mut cells);
    cells.clear();
    CELLS.set(cells);
    r
}

/// Reads the `n` cells of `row` into `cells` and turns them into a `T` with `f`; the
/// outer result is SQLite's, the inner one `f`'s.
#[inline]
fn decode_row<T>(
    row: &rusqlite::Row<'_>,
    n: usize,
    cells: &mut Vec<Value>,
    f: &mut impl FnMut(&mut Vec<Value>) -> Result<T>,
) -> rusqlite::Result<Result<T>> {
    cells.clear();
    // A no-op unless `f` took the buffer itself (a cache fill keeps the row's cells).
    cells.reserve(n);
    for i in 0..n {
        cells.push(from_sqlite(row.get_ref(i)?));
    }
    Ok(f(cells))
}

/// The job of a query that turns each row into a `T` with `f` (run by [`run`], or
/// inline), and reads the column names too when `names` is set. Its outer result is
/// SQLite's, the inner one `f`'s first error. `expect` is how many rows the caller
/// expects (see `SqlPool`'s `rows_vec`).
pub(crate) fn query_job<T, F, P>(
    params: P,
    names: bool,
    expect: usize,
    mut f: F,
) -> impl FnMut(&mut rusqlite::Connection, &str) -> rusqlite::Result<Result<NamedRows<T>>> + Send + 'static
where
    T: Send + 'static,
    F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
    P: AsRef<[Value]> + Send + 'static,
{
    move |conn, sql| {
        with_rows(conn, sql, params.as_ref(), names, |rows, n, columns| {
            with_cells(n, |cells| {
                let mut out = crate::sql::pool::rows_vec(expect);
                while let Some(row) = rows.next()? {
                    match decode_row(row, n, cells, &mut f)? {
                        Ok(t) => out.push(t),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                Ok(Ok((columns, out)))
            })
        })
    }
}

/// The job of a query of which only the first row is wanted (a primary key read):
/// it stops there, without stepping the statement to its end.
pub(crate) fn first_job<T, F, P>(
    params: P,
    mut f: F,
) -> impl FnMut(&mut rusqlite::Connection, &str) -> rusqlite::Result<Result<Option<T>>> + Send + 'static
where
    T: Send + 'static,
    F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
    P: AsRef<[Value]> + Send + 'static,
{
    move |conn, sql| {
        with_rows(conn, sql, params.as_ref(), false, |rows, n, _| {
            let Some(row) = rows.next()? else {
                return Ok(Ok(None));
            };
            with_cells(n, |cells| Ok(decode_row(row, n, cells, &mut f)?.map(Some)))
        })
    }
}

/// Prepares `sql` (through the connection's statement cache), binds `params` and
/// hands the rows to `body` with the number of columns and, when `names` is set,
/// their names.
fn with_rows<R>(
    conn: &mut rusqlite::Connection,
    sql: &str,
    params: &[Value],
    names: bool,
    body: impl FnOnce(&mut rusqlite::Rows<'_>, usize, Vec<String>) -> rusqlite::Result<R>,
) -> rusqlite::Result<R> {
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
    body(&mut rows, n, columns)
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
