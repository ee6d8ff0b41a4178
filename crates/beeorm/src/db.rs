//! [`Db`]: plain SQL on a relational pool, for what the ORM does not cover.

use crate::flush::{TxOutcome, TxPending};
use crate::sql::pool::{Conn, ExecResult, SqlPool};
use crate::sql::replicas::WriteNote;
use crate::sql::value::Value;
use crate::sql::DialectKind;
use crate::Result;
use std::sync::Arc;

/// A relational pool, for plain SQL. Get it with [`Engine::db`](crate::Engine::db).
/// Statements are traced like every other (see the crate docs) and reported to the
/// registry's [`Instrumentation`](crate::Instrumentation). The SQL reaches the server
/// as written: placeholders are `?` on MySQL and SQLite and `$1`, `$2`, … on
/// PostgreSQL (where `?` is the jsonb operator).
///
/// Every call is bounded by the pool's timeouts
/// ([`Registry::set_sql_timeouts`](crate::Registry::set_sql_timeouts)) and may be
/// cancelled (its future dropped) at any point: a connection left in an unknown state
/// is closed, never reused.
#[derive(Clone)]
pub struct Db {
    pool: SqlPool,
    /// Notes commits for the engine's reads on replicas, when the pool has some.
    note: Option<WriteNote>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("pool", &self.pool.name())
            .finish()
    }
}

impl Db {
    pub(crate) fn new(pool: SqlPool, note: Option<WriteNote>) -> Self {
        Db { pool, note }
    }

    /// The pool name.
    pub fn pool_name(&self) -> &str {
        self.pool.name()
    }

    /// The server kind behind the pool.
    pub fn kind(&self) -> DialectKind {
        self.pool.kind()
    }

    /// Runs one statement that returns no rows (on the primary, when the pool has
    /// read replicas: the engine's later reads then wait for it on the replicas).
    pub async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        let done = self.pool.execute(sql, params).await?;
        if let Some(note) = &self.note {
            note.after_commit(&self.pool).await;
        }
        Ok(done)
    }

    /// Runs one query and returns every row as values in column order (on the
    /// primary, also when the pool has read replicas).
    pub async fn query(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>> {
        self.pool.query(sql, params).await
    }
}

impl Db {
    /// Starts a transaction on one connection of the pool. Commit it with
    /// [`Transaction::commit`]; dropped without a commit, it is rolled back. Waiting
    /// for a connection is bounded by the pool's `acquire` timeout: a task that holds
    /// the last connection in a transaction and asks the same pool for another gets
    /// [`Error::Timeout`](crate::Error::Timeout) instead of waiting forever.
    pub async fn begin(&self) -> Result<Transaction> {
        Ok(Transaction {
            conn: self.pool.begin().await?,
            pool: self.pool.clone(),
            outcome: Outcome::default(),
            pending: TxPending::default(),
            note: self.note.clone(),
        })
    }
}

/// A transaction on one connection. Dropped without [`commit`](Transaction::commit),
/// it is rolled back before its connection is reused. Flush entities inside it with
/// [`Flusher::flush_in`](crate::Flusher::flush_in).
///
/// When one of its statements timed out, lost the connection or had its future
/// dropped mid-way, the connection's state is unknown: every later statement fails
/// with [`Error::Connection`](crate::Error::Connection), `commit` included, and the
/// connection is closed when the transaction is dropped (the server rolls back).
///
/// Entities flushed in it with `flush_in` follow its outcome: their new IDs and saved
/// state hold once [`commit`](Transaction::commit) succeeded; after a rollback, a
/// failed commit or a drop they are as they were before the flush (a new entity is
/// new again, so flushing it again writes it). Their after-hooks and the observers'
/// after-commit calls ([`Observer`](crate::Observer)) run after the COMMIT, once, with
/// everything flushed in the transaction; never for a transaction that did not commit.
pub struct Transaction {
    pub(crate) conn: Conn,
    /// The pool the connection came from (reads through the transaction check it).
    pool: SqlPool,
    pub(crate) outcome: Outcome,
    /// What runs once the COMMIT succeeded (the write path's after-commit step for
    /// what `flush_in` wrote).
    pub(crate) pending: TxPending,
    /// Notes the commit for the engine's reads on replicas.
    note: Option<WriteNote>,
}

/// The outcome shared with the entities flushed in a transaction; a transaction
/// dropped (or whose commit failed) before it committed counts as rolled back.
#[derive(Default)]
pub(crate) struct Outcome(pub(crate) Arc<TxOutcome>);

impl Drop for Outcome {
    fn drop(&mut self) {
        self.0.rolled_back();
    }
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transaction")
    }
}

impl Transaction {
    /// The name of the pool the transaction runs on.
    pub fn pool_name(&self) -> &str {
        self.pool.name()
    }

    /// The pool the transaction runs on (its dialect renders the SQL of reads through
    /// it, see [`Reader::using`](crate::Reader::using)).
    pub(crate) fn pool(&self) -> &SqlPool {
        &self.pool
    }

    /// Runs one statement that returns no rows. The SQL reaches the server as
    /// written, as for [`Db`]: `$1`, `$2`, … placeholders on PostgreSQL.
    pub async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        self.conn.execute(sql, params).await
    }

    /// Runs one query and returns every row (SQL as written, as for [`Db`]).
    pub async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>> {
        self.conn.query(sql, params).await
    }

    /// Makes every change of the transaction permanent, then runs the after-hooks of
    /// the entities flushed in it and the observers' after-commit calls. An error of
    /// theirs is returned (the first one; the others still run) but the rows are
    /// committed: [`Error::rows_written`](crate::Error::rows_written) does not apply
    /// to hooks, so do not retry the transaction on it.
    ///
    /// If this future is dropped during the COMMIT, the outcome is unknown: the
    /// connection is closed and the entities go back to their state before the flush.
    pub async fn commit(self) -> Result<()> {
        let Transaction {
            conn,
            outcome,
            pending,
            note,
            pool,
        } = self;
        // Cached rows changed in the transaction are locked across the COMMIT.
        let locked = pending.lock_caches().await?;
        // On failure `outcome` is dropped: rolled back (and `locked` unlocks).
        conn.commit().await?;
        if let Some(locked) = locked {
            locked.unlock().await;
        }
        if let Some(note) = &note {
            note.after_commit(&pool).await;
        }
        outcome.0.committed();
        pending.run().await
    }

    /// Undoes every change of the transaction.
    pub async fn rollback(self) -> Result<()> {
        self.conn.rollback().await
    }
}
