//! [`Db`]: plain SQL on a relational pool, for what the ORM does not cover.

use super::pool::{Conn, ExecResult, SqlPool};
use super::value::Value;
use super::DialectKind;
use crate::Result;

/// A relational pool, for plain SQL. Get it with [`Engine::db`](crate::Engine::db).
/// Statements are traced like every other (see the crate docs). Placeholders are `?`
/// on MySQL and SQLite.
///
/// Every call is bounded by the pool's timeouts
/// ([`Registry::set_sql_timeouts`](crate::Registry::set_sql_timeouts)) and may be
/// cancelled (its future dropped) at any point: a connection left in an unknown state
/// is closed, never reused.
#[derive(Clone)]
pub struct Db {
    pool: SqlPool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("pool", &self.pool.name())
            .finish()
    }
}

impl Db {
    pub(crate) fn new(pool: SqlPool) -> Self {
        Db { pool }
    }

    /// The pool name.
    pub fn pool_name(&self) -> &str {
        self.pool.name()
    }

    /// The server kind behind the pool.
    pub fn kind(&self) -> DialectKind {
        self.pool.kind()
    }

    /// Runs one statement that returns no rows.
    pub async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        self.pool.execute(sql, params).await
    }

    /// Runs one query and returns every row as values in column order.
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
pub struct Transaction {
    pub(crate) conn: Conn,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transaction")
    }
}

impl Transaction {
    /// Runs one statement that returns no rows.
    pub async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        self.conn.execute(sql, params).await
    }

    /// Runs one query and returns every row.
    pub async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>> {
        self.conn.query(sql, params).await
    }

    /// Makes every change of the transaction permanent.
    pub async fn commit(self) -> Result<()> {
        self.conn.commit().await
    }

    /// Undoes every change of the transaction.
    pub async fn rollback(self) -> Result<()> {
        self.conn.rollback().await
    }
}
