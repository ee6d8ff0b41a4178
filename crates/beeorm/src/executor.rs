//! Where a read runs: on a pool, or on a transaction's connection.
//!
//! Every read method of [`Reader`](crate::Reader) sends its statements through one
//! [`Executor`], so one body serves both cases: on a pool each statement takes a
//! connection in autocommit mode (and sees what is committed); inside a transaction
//! every statement runs on that transaction's connection, so it sees the
//! transaction's own uncommitted writes (`Flusher::flush_in`, `Transaction::execute`)
//! and nothing else changes: the transaction's connection machinery stays what makes
//! a cancelled read safe (a statement whose future is dropped leaves the connection
//! marked unusable; the transaction is rolled back when dropped).
//!
//! The executor is an enum rather than a trait object or a type parameter of
//! `Reader`: the pool case, the hot one, costs one branch and no allocation, and the
//! read front stays one type users can name and clone. The transaction case shares
//! its `&mut Transaction` behind an async mutex (one `Arc` per [`Reader::using`]), so
//! a reader keeps `&self` methods and clones of it take turns on the one connection.
//!
//! [`Reader::using`]: crate::Reader::using

use std::sync::Arc;

use futures_util::future::{Either, FutureExt};
use tokio::sync::Mutex;

use crate::db::Transaction;
use crate::schema::TableSchema;
use crate::sql::pool::SqlPool;
use crate::sql::replicas::{on_replica, ReplicaSet, Target};
use crate::{Engine, Error, Result, Value};

/// A pool or a transaction: what the statements of a read run on.
#[derive(Clone, Default)]
pub(crate) enum Executor<'t> {
    /// A connection of the entity's pool per statement, in autocommit mode.
    #[default]
    Pool,
    /// The caller's transaction.
    Transaction(Arc<InTransaction<'t>>),
}

/// A borrowed transaction, shared by the clones of one reader.
pub(crate) struct InTransaction<'t> {
    /// The transaction's pool, read once when it was borrowed.
    pool: SqlPool,
    tx: Mutex<&'t mut Transaction>,
}

impl std::fmt::Debug for Executor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Executor::Pool => f.write_str("Pool"),
            Executor::Transaction(t) => f
                .debug_struct("Transaction")
                .field("pool", &t.pool.name())
                .finish(),
        }
    }
}

impl<'t> Executor<'t> {
    /// Reads through `tx`.
    pub(crate) fn transaction(tx: &'t mut Transaction) -> Self {
        Executor::Transaction(Arc::new(InTransaction {
            pool: tx.pool().clone(),
            tx: Mutex::new(tx),
        }))
    }

    /// The pool whose dialect renders the SQL for `schema`'s table. A transaction on
    /// another pool than the entity's is a typed [`Error::InvalidArgument`]: its
    /// connection cannot see the entity's table.
    pub(crate) fn pool<'s>(
        &'s self,
        engine: &'s Engine,
        schema: &TableSchema,
    ) -> Result<&'s SqlPool> {
        match self {
            Executor::Pool => engine.sql_pool_ref(schema.pool_name()),
            Executor::Transaction(t) if t.pool.name() == schema.pool_name() => Ok(&t.pool),
            Executor::Transaction(t) => Err(Error::InvalidArgument {
                call: format!("Reader::using(transaction on pool `{}`)", t.pool.name()),
                reason: format!(
                    "entity `{}` lives in pool `{}`; read it through a transaction of that pool",
                    schema.entity_name(),
                    schema.pool_name()
                ),
            }),
        }
    }

    /// Runs a query on `pool` (from [`Executor::pool`]) — or on one of its read
    /// replicas, as `engine`'s consistency allows (`fill`: the rows will be stored in
    /// a cache, so they are read on the primary) — or on the transaction, turning
    /// each row into a `T` as it arrives (`expect`: how many rows are expected, 0 when
    /// unknown; see [`SqlPool::query_map`]). A plain function returning either future,
    /// not an `async fn`: on a pool without replicas (the hot path) it adds no state
    /// machine of its own around the pool's, and the other cases are boxed, so the
    /// future stays as small as the pool's (a SQLite read done inline is only its
    /// result; see [`SqlPool::query_map`]).
    // Internal, called from a handful of places that each pass all of them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn query_map<'s, T, F>(
        &'s self,
        engine: &'s Engine,
        fill: bool,
        pool: &'s SqlPool,
        sql: &'s str,
        params: Vec<Value>,
        expect: usize,
        f: F,
    ) -> impl std::future::Future<Output = Result<Vec<T>>> + Send + use<'s, 't, T, F>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Clone + Send + 'static,
    {
        let route = self.route(engine, pool, fill);
        self.query_map_on(route, pool, sql, params, expect, f)
    }

    /// Runs a query of which only the first row is wanted (a read by primary key),
    /// where [`Executor::query_map`] would, turning that row into a `T`; `params` may
    /// be an array (see [`SqlPool::query_first`]).
    pub(crate) fn query_first<'s, T, F, P>(
        &'s self,
        engine: &'s Engine,
        fill: bool,
        pool: &'s SqlPool,
        sql: &'s str,
        params: P,
        f: F,
    ) -> impl std::future::Future<Output = Result<Option<T>>> + Send + use<'s, 't, T, F, P>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Clone + Send + 'static,
        P: AsRef<[Value]> + Into<Vec<Value>> + Send + 'static,
    {
        match (self, self.route(engine, pool, fill)) {
            (Executor::Pool, None) => Either::Left(pool.query_first(sql, params, f)),
            (_, route) => {
                let rows = self.query_map_on(route, pool, sql, params.into(), 1, f);
                Either::Right(async move { Ok(rows.await?.into_iter().next()) }.boxed())
            }
        }
    }

    /// The replica a read on a pool goes to, if any (`engine`'s consistency; `fill`:
    /// the rows go into a cache, so the primary). Asked once per read: it counts the
    /// reads kept on the primary. A transaction reads on its own connection.
    fn route<'s>(
        &self,
        engine: &'s Engine,
        pool: &SqlPool,
        fill: bool,
    ) -> Option<(&'s ReplicaSet, Target)> {
        match self {
            Executor::Pool => engine.read_target(pool, fill),
            Executor::Transaction(_) => None,
        }
    }

    /// [`Executor::query_map`] once its route is known.
    fn query_map_on<'s, T, F>(
        &'s self,
        route: Option<(&'s ReplicaSet, Target)>,
        pool: &'s SqlPool,
        sql: &'s str,
        params: Vec<Value>,
        expect: usize,
        f: F,
    ) -> impl std::future::Future<Output = Result<Vec<T>>> + Send + use<'s, 't, T, F>
    where
        T: Send + 'static,
        F: FnMut(&mut Vec<Value>) -> Result<T> + Clone + Send + 'static,
    {
        match (self, route) {
            (Executor::Pool, None) => Either::Left(pool.query_map(sql, params, expect, f)),
            (Executor::Pool, Some((set, target))) => Either::Right(
                async move {
                    on_replica!(set, target, pool, |p| p.query_map(
                        sql,
                        params.clone(),
                        expect,
                        f.clone()
                    ))
                }
                .boxed(),
            ),
            (Executor::Transaction(t), _) => Either::Right(
                async move {
                    t.tx.lock()
                        .await
                        .conn
                        .query_map(sql, params, expect, f)
                        .await
                }
                .boxed(),
            ),
        }
    }

    /// Runs a query and returns every row (on a replica as for
    /// [`Executor::query_map`]).
    pub(crate) async fn query(
        &self,
        engine: &Engine,
        fill: bool,
        pool: &SqlPool,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<Vec<Value>>> {
        match self {
            Executor::Pool => match engine.read_target(pool, fill) {
                None => pool.query(sql, params).await,
                Some((set, target)) => {
                    on_replica!(set, target, pool, |p| p.query(sql, params.clone()))
                }
            },
            Executor::Transaction(t) => t.tx.lock().await.conn.query(sql, params).await,
        }
    }
}
