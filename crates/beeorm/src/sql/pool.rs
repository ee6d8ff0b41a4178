//! The pool front: [`SqlPool`] (one variant per compiled-in driver), [`Conn`] (one
//! connection, in autocommit mode or inside a transaction), timeouts, and the two
//! places where statements are sent ([`traced`], and `SqlPool::sqlite_now` for a
//! SQLite statement run inline on a free connection): every statement gets a
//! `tracing` span with the pool and the SQL (never the values), an event with its
//! duration, and a call of the registered
//! [`Instrumentation`](crate::Instrumentation) hook.
//!
//! Everything a server does differently lives in its driver folder (`mysql/`,
//! `postgres/`, `sqlite/`: connection, values, errors, introspection, DDL); this file
//! only dispatches, bounds each statement by the pool's timeouts and keeps the state
//! that makes a connection safe to drop at any await point (see [`Conn`]).
//!
//! Placeholders: every statement reaches the server verbatim, nothing rewrites SQL
//! here. The library renders its own statements in the dialect's placeholder style
//! when it builds them ([`SqlWriter`](super::SqlWriter): `?`, or `$1`, `$2`, … on
//! PostgreSQL); SQL that callers give ([`Db`](crate::Db),
//! [`Transaction`](crate::Transaction)) is theirs, so a jsonb `?` operator in it
//! stays an operator.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::mysql::MySqlDialect;
#[cfg(feature = "mysql")]
use super::mysql::{self, MySqlPool};
use super::postgres::PgDialect;
#[cfg(feature = "postgres")]
use super::postgres::{self, PgPool};
use super::sqlite::SqliteDialect;
#[cfg(feature = "sqlite")]
use super::sqlite::{self, SqlitePool};
use super::value::Value;
use super::{DbSnapshot, Dialect, DialectKind};
use crate::instrument::{
    Hook, Instrumentation, RowCount, StatementEvent, TransactionEvent, TransactionStep,
};
use crate::{Error, Result};

/// Connections per MySQL or PostgreSQL pool when its DSN does not say
/// (`limit_connections=N`).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) const DEFAULT_LIMIT_CONNECTIONS: usize = 100;

/// A relational pool of any compiled-in dialect.
#[derive(Clone)]
pub(crate) enum SqlPool {
    #[cfg(feature = "mysql")]
    MySql(Arc<MySqlPool>),
    #[cfg(feature = "sqlite")]
    Sqlite(Arc<SqlitePool>),
    #[cfg(feature = "postgres")]
    Postgres(Arc<PgPool>),
}

/// The dialect of a pool, with what it learnt about its server.
#[cfg_attr(
    not(all(feature = "mysql", feature = "postgres", feature = "sqlite")),
    allow(dead_code)
)]
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

/// Most parameters one statement may carry, per dialect (see
/// [`DialectKind::max_params`]).
pub(crate) const fn max_params(kind: DialectKind) -> usize {
    kind.max_params()
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
        server: kind.server_name(),
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
pub(crate) fn timeout_error(
    pool: &str,
    operation: impl Into<String>,
    limit: std::time::Duration,
) -> Error {
    Error::Timeout {
        pool: pool.to_string(),
        operation: operation.into(),
        limit,
    }
}

/// The configuration error of a pool whose driver this build leaves out (its cargo
/// feature is off): a typed error at `validate()`, never a panic.
pub(crate) fn driver_not_compiled(pool: &str, kind: DialectKind) -> Error {
    let feature = match kind {
        DialectKind::MySql => "mysql",
        DialectKind::Postgres => "postgres",
        DialectKind::Sqlite => "sqlite",
    };
    Error::config(format!(
        "relational pool `{pool}` needs the {} driver, which this build of beeorm leaves out: enable the cargo feature `{feature}`",
        kind.server_name()
    ))
}

/// `f`, bounded by the pool's statement timeout. Not on SQLite: its statements run
/// in the process, inline (no timer is set up on that hot path) or on a blocking
/// thread whose lock wait is bounded instead (see `sqlite::connection::run`).
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
    if pool.kind() == DialectKind::Sqlite {
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

/// Most rows room is made for before the first arrives (see [`rows_vec`]).
#[cfg(any(feature = "mysql", feature = "sqlite"))]
const EXPECT_AT_MOST: usize = 1024;

/// The vector a query's rows are collected into, with room for the `expect` rows the
/// caller expects (IDs asked, a page's size; 0 when unknown) up to 1,024, so the
/// rows are not moved as it grows (a page asked far larger than the table holds
/// does not allocate for rows that never come). PostgreSQL's rows arrive all at
/// once: its vector is sized by them.
#[cfg(any(feature = "mysql", feature = "sqlite"))]
pub(crate) fn rows_vec<T>(expect: usize) -> Vec<T> {
    Vec::with_capacity(expect.min(EXPECT_AT_MOST))
}

/// Takes a row's cells out of the reused buffer, leaving one of the same capacity.
fn take_row(row: &mut Vec<Value>) -> Result<Row> {
    let capacity = row.len();
    Ok(std::mem::replace(row, Vec::with_capacity(capacity)))
}

/// The `tracing` span of one statement: its pool, dialect and SQL (never the values).
fn statement_span(pool: &SqlPool, sql: &str) -> tracing::Span {
    tracing::debug_span!("sql", pool = %pool.name(), db = pool.kind().name(), sql = %sql)
}

/// When a statement starts, if its duration goes anywhere: to the instrumentation
/// hook, or to a subscriber that takes this module's records (a failed statement is a
/// warning). Without either, the clock is not read (two reads are a few percent of a
/// SQLite read by primary key).
fn clock(pool: &SqlPool) -> Option<Instant> {
    (pool.hook().is_some() || tracing::enabled!(tracing::Level::WARN)).then(Instant::now)
}

/// Reports a finished statement that started at `start` (see [`clock`]): its event,
/// and the instrumentation hook when one is registered.
fn report<T: RowCount>(pool: &SqlPool, sql: &str, start: Option<Instant>, result: &Result<T>) {
    let Some(start) = start else { return };
    let duration = start.elapsed();
    let micros = duration.as_micros() as u64;
    match result {
        Ok(r) => tracing::debug!(duration_us = micros, rows = r.row_count(), "statement done"),
        Err(e) => tracing::warn!(duration_us = micros, error = %e, "statement failed"),
    }
    if let Some(hook) = pool.hook() {
        hook.on_statement(&StatementEvent {
            pool: pool.name(),
            dialect: pool.kind(),
            sql,
            duration,
            rows: result.as_ref().map_or(0, RowCount::row_count),
            error: result.as_ref().err(),
        });
    }
}

/// Sends one statement: a `tracing` span and event, and the instrumentation hook
/// when one is registered (an `Option` check otherwise).
async fn traced<T, F>(pool: &SqlPool, sql: &str, f: F) -> Result<T>
where
    T: RowCount,
    F: std::future::Future<Output = Result<T>>,
{
    async move {
        let start = clock(pool);
        let result = f.await;
        report(pool, sql, start, &result);
        result
    }
    .instrument(statement_span(pool, sql))
    .await
}

/// A statement of the pool front: its result at once (a SQLite statement run
/// inline), or a boxed future (so whatever awaits it stays small).
type Statement<'s, X> = futures_util::future::Either<
    futures_util::future::Ready<Result<X>>,
    futures_util::future::BoxFuture<'s, Result<X>>,
>;

/// A statement's result at once.
#[cfg(feature = "sqlite")]
fn now<'s, X>(r: Result<X>) -> Statement<'s, X> {
    futures_util::future::Either::Left(futures_util::future::ready(r))
}

/// A statement still to run.
fn later<'s, X>(f: impl std::future::Future<Output = Result<X>> + Send + 's) -> Statement<'s, X> {
    futures_util::future::Either::Right(Box::pin(f))
}

/// Reports a transaction step to the hook, if any.
fn report_transaction(
    pool: &SqlPool,
    step: TransactionStep,
    dropped: bool,
    duration: std::time::Duration,
    error: Option<&Error>,
) {
    if let Some(hook) = pool.hook() {
        hook.on_transaction(&TransactionEvent {
            pool: pool.name(),
            dialect: pool.kind(),
            step,
            dropped,
            duration,
            error,
        });
    }
}

impl SqlPool {
    pub(crate) fn name(&self) -> &str {
        match self {
            #[cfg(feature = "mysql")]
            SqlPool::MySql(p) => &p.name,
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(p) => &p.name,
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(p) => &p.name,
        }
    }

    pub(crate) fn timeouts(&self) -> SqlTimeouts {
        match self {
            #[cfg(feature = "mysql")]
            SqlPool::MySql(p) => p.timeouts,
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(p) => p.timeouts,
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(p) => p.timeouts,
        }
    }

    pub(crate) fn kind(&self) -> DialectKind {
        match self {
            #[cfg(feature = "mysql")]
            SqlPool::MySql(_) => DialectKind::MySql,
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(_) => DialectKind::Sqlite,
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(_) => DialectKind::Postgres,
        }
    }

    /// The instrumentation hook, if one is registered.
    fn hook(&self) -> Option<&Arc<dyn Instrumentation>> {
        let hook: &Hook = match self {
            #[cfg(feature = "mysql")]
            SqlPool::MySql(p) => &p.instrumentation,
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(p) => &p.instrumentation,
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(p) => &p.instrumentation,
        };
        hook.as_ref()
    }

    /// Quotes an identifier for this pool's dialect.
    pub(crate) fn quote(&self, ident: &str) -> String {
        self.kind().quote(ident)
    }

    /// How consecutive rows of one multi-row INSERT are numbered: `Some(step)` when
    /// their IDs are `first, first + step, …`; `None` when the server does not promise
    /// consecutive IDs (MySQL `innodb_autoinc_lock_mode = 2`), so rows go one by one.
    /// MySQL asks the server once per pool; [`SqlPool::begin`] asks on the
    /// transaction's own connection, so a flush into a transaction that holds the only
    /// connection of the pool never needs a second one.
    pub(crate) async fn id_step(&self) -> Result<Option<u64>> {
        match self {
            #[cfg(feature = "mysql")]
            SqlPool::MySql(p) => match p.id_step.get() {
                Some(step) => Ok(*step),
                None => self.id_step_on(&mut self.conn().await?).await,
            },
            #[allow(unreachable_patterns)]
            _ => Ok(Some(1)),
        }
    }

    /// [`SqlPool::id_step`], asked on `conn` when not known yet.
    #[cfg_attr(not(feature = "mysql"), allow(unused_variables, dead_code))]
    async fn id_step_on(&self, conn: &mut Conn) -> Result<Option<u64>> {
        match self {
            #[cfg(feature = "mysql")]
            SqlPool::MySql(p) => p
                .id_step
                .get_or_try_init(|| mysql::connection::read_id_step(conn))
                .await
                .copied(),
            #[allow(unreachable_patterns)]
            _ => Ok(Some(1)),
        }
    }

    /// A connection in autocommit mode, within the pool's `acquire` timeout (MySQL:
    /// the larger of `acquire` and `connect`, as mysql_async opens connections inside
    /// its checkout; PostgreSQL: `acquire` to wait for a free slot, then `connect` to
    /// open a connection).
    pub(crate) async fn conn(&self) -> Result<Conn> {
        let inner = match self {
            #[cfg(feature = "mysql")]
            SqlPool::MySql(p) => ConnInner::MySql(p.acquire().await?),
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(p) => ConnInner::Postgres(Some(Box::pin(p.get()).await?)),
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(p) => ConnInner::Sqlite(Some(p.acquire().await?)),
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
        #[cfg(feature = "mysql")]
        #[allow(irrefutable_let_patterns)]
        if let SqlPool::MySql(p) = self {
            if p.id_step.get().is_none() {
                self.id_step_on(&mut conn).await?;
            }
        }
        conn.inner = match std::mem::replace(&mut conn.inner, ConnInner::Gone) {
            #[cfg(feature = "mysql")]
            ConnInner::MySql(c) => ConnInner::MySqlTx(c),
            #[cfg(feature = "postgres")]
            ConnInner::Postgres(c) => ConnInner::PostgresTx(c),
            #[cfg(feature = "sqlite")]
            ConnInner::Sqlite(c) => ConnInner::SqliteTx(c),
            other => other,
        };
        let start = Instant::now();
        let r = match self.kind() {
            // Our own `START TRANSACTION` on a plain connection rather than
            // mysql_async's `Transaction`, so that one state (`MySqlTx` + `dirty`)
            // decides, on every dialect, what becomes of a connection dropped at any
            // point or after a statement timeout.
            DialectKind::MySql => conn.execute_script("START TRANSACTION").await,
            DialectKind::Postgres => conn.execute_script("BEGIN").await,
            DialectKind::Sqlite => conn.execute("BEGIN IMMEDIATE", vec![]).await.map(drop),
        };
        report_transaction(
            self,
            TransactionStep::Begin,
            false,
            start.elapsed(),
            r.as_ref().err(),
        );
        r?;
        Ok(conn)
    }

    /// Runs a statement that returns no rows, its SQL verbatim (placeholders in the
    /// dialect's style: `$1` on PostgreSQL).
    pub(crate) fn execute<'s>(
        &'s self,
        sql: &'s str,
        params: Vec<Value>,
    ) -> Statement<'s, ExecResult> {
        #[cfg(feature = "sqlite")]
        if let Some((p, conn)) = self.free_sqlite() {
            let n = params.len();
            return self.sqlite_now(p, conn, sql, n, sqlite::connection::execute_job(params));
        }
        later(async move { self.conn().await?.execute(sql, params).await })
    }

    /// Runs several `;`-separated statements without parameters, all or nothing where
    /// the server allows it (SQLite: one transaction; MySQL DDL commits implicitly).
    pub(crate) async fn execute_script(&self, sql: &str) -> Result<()> {
        self.conn().await?.execute_script(sql).await
    }

    /// Runs a query and returns every row, its SQL verbatim.
    pub(crate) fn query<'s>(&'s self, sql: &'s str, params: Vec<Value>) -> Statement<'s, Vec<Row>> {
        self.query_map(sql, params, 0, take_row)
    }

    /// Runs a query on a pooled connection and turns each row into a `T` as it
    /// arrives (see [`Conn::query_map`]).
    ///
    /// Not an `async fn`: on SQLite with a free connection the statement runs here,
    /// inline, and the future returned is only its result (no pool checkout, span or
    /// statement future to build, move and poll; reads by primary key take a few
    /// microseconds, and those layers were a third of them). The other cases are one
    /// boxed future, so whatever awaits this one stays small too.
    ///
    /// `expect`: how many rows the caller expects (0 when unknown), so room is made
    /// for them before the first (see [`rows_vec`]).
    pub(crate) fn query_map<'s, T, F>(
        &'s self,
        sql: &'s str,
        params: Vec<Value>,
        expect: usize,
        f: F,
    ) -> Statement<'s, Vec<T>>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
    {
        #[cfg(feature = "sqlite")]
        if let Some((p, conn)) = self.free_sqlite() {
            let n = params.len();
            let mut job = sqlite::connection::query_job(params, false, expect, f);
            let rows_only = move |c: &mut rusqlite::Connection, sql: &str| {
                job(c, sql).map(|r| r.map(|(_, rows)| rows))
            };
            return self.sqlite_now(p, conn, sql, n, rows_only);
        }
        later(async move { self.conn().await?.query_map(sql, params, expect, f).await })
    }

    /// Runs a query of which only the first row is wanted (a read by primary key) and
    /// turns it into a `T`. `params` may be an array: on SQLite with a free connection
    /// (see [`SqlPool::query_map`]) the statement runs inline, stops at its first row
    /// and allocates nothing but the row's own values.
    pub(crate) fn query_first<'s, T, F, P>(
        &'s self,
        sql: &'s str,
        params: P,
        f: F,
    ) -> Statement<'s, Option<T>>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
        P: AsRef<[Value]> + Into<Vec<Value>> + Send + 'static,
    {
        #[cfg(feature = "sqlite")]
        if let Some((p, conn)) = self.free_sqlite() {
            let n = params.as_ref().len();
            return self.sqlite_now(p, conn, sql, n, sqlite::connection::first_job(params, f));
        }
        later(async move {
            let rows = self
                .conn()
                .await?
                .query_map(sql, params.into(), 1, f)
                .await?;
            Ok(rows.into_iter().next())
        })
    }

    /// A SQLite pool's free connection, if this is a SQLite pool and one is free now.
    #[cfg(feature = "sqlite")]
    #[inline]
    fn free_sqlite(&self) -> Option<(&SqlitePool, sqlite::connection::SqliteConn)> {
        #[allow(irrefutable_let_patterns)]
        let SqlPool::Sqlite(p) = self
        else {
            return None;
        };
        p.try_acquire().map(|conn| (&**p, conn))
    }

    /// Runs `job` on `conn` (free, of SQLite pool `p`) now, traced like any
    /// statement: its result at once, or — when another connection holds the lock it
    /// needs — the future of the rest, which runs it on a blocking thread
    /// (`sqlite::connection::blocking`, cancel-safe as every SQLite statement).
    #[cfg(feature = "sqlite")]
    fn sqlite_now<'s, X, J>(
        &'s self,
        p: &'s SqlitePool,
        mut conn: sqlite::connection::SqliteConn,
        sql: &'s str,
        params: usize,
        job: J,
    ) -> Statement<'s, X>
    where
        X: RowCount + Send + 'static,
        J: FnMut(&mut rusqlite::Connection, &str) -> rusqlite::Result<Result<X>> + Send + 'static,
    {
        use sqlite::connection::Inline;
        if let Err(e) = check_param_count(self, sql, params) {
            return now(Err(e));
        }
        let span = statement_span(self, sql);
        let entered = span.enter();
        let start = clock(self);
        let Some(c) = conn.get() else {
            return now(Err(gone(self)));
        };
        match sqlite::connection::inline(&p.name, c, sql, job) {
            Inline::Ran(r) => {
                let r = r.and_then(|x| x);
                report(self, sql, start, &r);
                now(r)
            }
            Inline::Locked(job) => {
                drop(entered);
                let limit = p.timeouts.query;
                later(
                    async move {
                        let mut slot = Some(conn);
                        let r = sqlite::connection::blocking(&p.name, limit, &mut slot, sql, job)
                            .await
                            .and_then(|x| x);
                        report(self, sql, start, &r);
                        r
                    }
                    .instrument(span),
                )
            }
        }
    }

    /// Runs a query and returns the names of its columns and every row.
    pub(crate) async fn query_with_columns(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<(Vec<String>, Vec<Row>)> {
        let mut conn = self.conn().await?;
        conn.start()?;
        let r = traced(
            self,
            sql,
            limited(self, sql, conn.query_inner(sql, params, true, 0, take_row)),
        )
        .await;
        conn.settle(&r);
        r
    }

    /// The dialect, after learning what it needs from the server.
    pub(crate) async fn dialect(&self) -> Result<AnyDialect> {
        match self {
            #[cfg(feature = "mysql")]
            SqlPool::MySql(p) => Ok(AnyDialect::MySql(MySqlDialect {
                encoding: p.encoding.clone(),
                mariadb: p.is_mariadb(self).await?,
            })),
            #[cfg(feature = "sqlite")]
            SqlPool::Sqlite(_) => Ok(AnyDialect::Sqlite(SqliteDialect)),
            #[cfg(feature = "postgres")]
            SqlPool::Postgres(_) => Ok(AnyDialect::Postgres(PgDialect)),
        }
    }

    /// Every table of the pool's database, in comparable form (the driver's
    /// introspection).
    pub(crate) async fn snapshot(&self) -> Result<DbSnapshot> {
        match self.kind() {
            DialectKind::MySql => super::mysql::introspect::snapshot(self).await,
            DialectKind::Postgres => super::postgres::introspect::snapshot(self).await,
            DialectKind::Sqlite => super::sqlite::introspect::snapshot(self).await,
        }
    }
}

/// The driver connection of a [`Conn`]. The `*Tx` variants are inside a transaction
/// (our own `BEGIN` … `COMMIT` / `ROLLBACK` on a plain connection).
enum ConnInner {
    #[cfg(feature = "mysql")]
    MySql(mysql_async::Conn),
    #[cfg(feature = "mysql")]
    MySqlTx(mysql_async::Conn),
    // `Option` so the connection can move to a blocking thread and back.
    #[cfg(feature = "sqlite")]
    Sqlite(Option<sqlite::connection::SqliteConn>),
    #[cfg(feature = "sqlite")]
    SqliteTx(Option<sqlite::connection::SqliteConn>),
    #[cfg(feature = "postgres")]
    Postgres(Option<deadpool_postgres::Object>),
    #[cfg(feature = "postgres")]
    PostgresTx(Option<deadpool_postgres::Object>),
    /// Nothing (while the connection moves between states, and once dropped).
    Gone,
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

/// The error of a statement on a connection that is gone.
fn gone(pool: &SqlPool) -> Error {
    Error::Connection {
        pool: pool.name().to_string(),
        source: "the connection was lost by an earlier failure".into(),
    }
}

impl Conn {
    /// Runs a statement that returns no rows, its SQL verbatim.
    pub(crate) async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        self.start()?;
        let pool = self.pool.clone();
        let r = traced(
            &pool,
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

    #[cfg_attr(
        not(all(feature = "mysql", feature = "postgres", feature = "sqlite")),
        allow(unused_variables)
    )]
    async fn execute_inner(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        check_param_count(&self.pool, sql, params.len())?;
        let name = self.pool.name();
        let limit = self.pool.timeouts().query;
        match &mut self.inner {
            #[cfg(feature = "postgres")]
            ConnInner::Postgres(c) | ConnInner::PostgresTx(c) => {
                let client = postgres::connection::client(name, c)?;
                postgres::connection::execute(name, client, sql, params).await
            }
            #[cfg(feature = "sqlite")]
            ConnInner::Sqlite(c) | ConnInner::SqliteTx(c) => {
                sqlite::connection::execute(name, limit, c, sql, params).await
            }
            #[cfg(feature = "mysql")]
            ConnInner::MySql(q) | ConnInner::MySqlTx(q) => {
                mysql::connection::execute(name, q, sql, params).await
            }
            ConnInner::Gone => Err(gone(&self.pool)),
        }
    }

    /// Runs a query and returns every row, its SQL verbatim. MySQL queries are
    /// prepared (and cached per connection), so values arrive typed.
    pub(crate) async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Row>> {
        self.query_map(sql, params, 0, take_row).await
    }

    /// Runs a query and turns each row into a `T` with `f` as the rows arrive. `f`
    /// gets the row's cells in a buffer; it takes what it needs and the rest is
    /// cleared. Its first error ends the query. The SQL is sent verbatim. `expect`:
    /// how many rows the caller expects (0 when unknown; see [`rows_vec`]).
    pub(crate) async fn query_map<T, F>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        expect: usize,
        f: F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
    {
        self.start()?;
        let pool = self.pool.clone();
        let r = traced(
            &pool,
            sql,
            limited(&pool, sql, self.query_inner(sql, params, false, expect, f)),
        )
        .await;
        self.settle(&r);
        r.map(|(_, rows)| rows)
    }

    /// The rows, and the column names when `names` is set.
    #[cfg_attr(
        not(all(feature = "mysql", feature = "postgres", feature = "sqlite")),
        allow(unused_variables)
    )]
    async fn query_inner<T, F>(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        names: bool,
        expect: usize,
        f: F,
    ) -> Result<(Vec<String>, Vec<T>)>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
    {
        check_param_count(&self.pool, sql, params.len())?;
        let name = self.pool.name();
        let limit = self.pool.timeouts().query;
        match &mut self.inner {
            #[cfg(feature = "postgres")]
            ConnInner::Postgres(c) | ConnInner::PostgresTx(c) => {
                let client = postgres::connection::client(name, c)?;
                postgres::connection::query(name, client, sql, params, names, f).await
            }
            #[cfg(feature = "sqlite")]
            ConnInner::Sqlite(c) | ConnInner::SqliteTx(c) => {
                // The rows, and the column names when `names` is set.
                let job = sqlite::connection::query_job(params, names, expect, f);
                sqlite::connection::run(name, limit, c, sql, job).await?
            }
            #[cfg(feature = "mysql")]
            ConnInner::MySql(q) | ConnInner::MySqlTx(q) => {
                mysql::connection::query(name, q, sql, params, names, expect, f).await
            }
            ConnInner::Gone => Err(gone(&self.pool)),
        }
    }

    /// Several `;`-separated statements without parameters, verbatim; on SQLite in
    /// one transaction (unless already inside one).
    pub(crate) async fn execute_script(&mut self, sql: &str) -> Result<()> {
        self.start()?;
        let pool = self.pool.clone();
        let r = traced(&pool, sql, limited(&pool, sql, self.script_inner(sql))).await;
        self.settle(&r);
        r
    }

    #[cfg_attr(
        not(all(feature = "mysql", feature = "postgres", feature = "sqlite")),
        allow(unused_variables)
    )]
    async fn script_inner(&mut self, sql: &str) -> Result<()> {
        let name = self.pool.name();
        let limit = self.pool.timeouts().query;
        match &mut self.inner {
            #[cfg(feature = "sqlite")]
            ConnInner::Sqlite(c) => sqlite::connection::script(name, limit, c, sql, false).await,
            #[cfg(feature = "sqlite")]
            ConnInner::SqliteTx(c) => sqlite::connection::script(name, limit, c, sql, true).await,
            // A multi-statement simple query runs in one implicit transaction.
            #[cfg(feature = "postgres")]
            ConnInner::Postgres(c) | ConnInner::PostgresTx(c) => {
                let client = postgres::connection::client(name, c)?;
                postgres::connection::script(name, client, sql).await
            }
            #[cfg(feature = "mysql")]
            ConnInner::MySql(q) | ConnInner::MySqlTx(q) => {
                mysql::connection::script(name, q, sql).await
            }
            ConnInner::Gone => Err(gone(&self.pool)),
        }
    }

    /// Whether the connection is inside a transaction.
    fn in_transaction(&self) -> bool {
        match self.inner {
            #[cfg(feature = "mysql")]
            ConnInner::MySqlTx(_) => true,
            #[cfg(feature = "sqlite")]
            ConnInner::SqliteTx(_) => true,
            #[cfg(feature = "postgres")]
            ConnInner::PostgresTx(_) => true,
            _ => false,
        }
    }

    /// Commits the transaction (a no-op in autocommit mode).
    pub(crate) async fn commit(self) -> Result<()> {
        self.finish(TransactionStep::Commit).await
    }

    /// Rolls the transaction back (a no-op in autocommit mode).
    pub(crate) async fn rollback(self) -> Result<()> {
        self.finish(TransactionStep::Rollback).await
    }

    /// Ends the transaction with `COMMIT` or `ROLLBACK`. The connection stays marked
    /// as in a transaction until the server confirmed: dropped during `COMMIT`, it is
    /// closed (the outcome is unknown); a failed `COMMIT` is rolled back on drop.
    async fn finish(mut self, step: TransactionStep) -> Result<()> {
        if !self.in_transaction() {
            return Ok(());
        }
        let how = if step == TransactionStep::Commit {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        let start = Instant::now();
        let r = self.execute_script(how).await;
        report_transaction(&self.pool, step, false, start.elapsed(), r.as_ref().err());
        r?;
        self.inner = match std::mem::replace(&mut self.inner, ConnInner::Gone) {
            #[cfg(feature = "mysql")]
            ConnInner::MySqlTx(c) => ConnInner::MySql(c),
            #[cfg(feature = "sqlite")]
            ConnInner::SqliteTx(c) => ConnInner::Sqlite(c),
            #[cfg(feature = "postgres")]
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
    ///   a failed rollback closes the connection), and reported to the
    ///   instrumentation hook as a dropped rollback;
    /// - SQLite: `SqliteConn`'s own drop rolls back whatever is still open, also on
    ///   the blocking thread of a statement whose future was dropped.
    fn drop(&mut self) {
        if self.in_transaction() {
            report_transaction(
                &self.pool,
                TransactionStep::Rollback,
                true,
                std::time::Duration::ZERO,
                None,
            );
        }
        #[cfg_attr(
            not(any(feature = "mysql", feature = "postgres")),
            allow(unused_variables)
        )]
        let (dirty, limit) = (self.dirty, self.pool.timeouts().query);
        // Only the rare paths below need the name (no allocation per statement).
        #[cfg_attr(
            not(any(feature = "mysql", feature = "postgres")),
            allow(unused_variables)
        )]
        let name = || self.pool.name().to_string();
        match std::mem::replace(&mut self.inner, ConnInner::Gone) {
            #[cfg(feature = "mysql")]
            ConnInner::MySql(c) if dirty => mysql::connection::discard(c, limit),
            #[cfg(feature = "mysql")]
            ConnInner::MySqlTx(c) => mysql::connection::drop_in_transaction(c, dirty, limit, name),
            #[cfg(feature = "postgres")]
            ConnInner::Postgres(Some(c)) if dirty => postgres::connection::discard(c),
            #[cfg(feature = "postgres")]
            ConnInner::PostgresTx(Some(client)) => {
                postgres::connection::drop_in_transaction(client, dirty, limit, name)
            }
            // Clean autocommit connections go back as they are; SQLite ones roll
            // back in `SqliteConn::drop`.
            _ => {}
        }
    }
}
