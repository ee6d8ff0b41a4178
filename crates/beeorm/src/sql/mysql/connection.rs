//! MySQL/MariaDB connections: the pool (mysql_async), checkout within the pool's
//! timeouts, the statements of one connection, and what becomes of a connection that
//! is dropped inside a transaction or with a statement in flight.
//!
//! Transactions are our own `START TRANSACTION` / `COMMIT` / `ROLLBACK` on a plain
//! connection (not mysql_async's `Transaction`), so that one state in the pool front
//! (`Conn`: in a transaction or not, `dirty` or not) decides on every dialect what
//! happens to a connection dropped at any point; this module only carries it out.

use mysql_async::prelude::Queryable;
use tokio::sync::OnceCell;

use super::errors::map_error;
use super::values::{from_mysql, mysql_value};
use crate::instrument::Hook;
use crate::sql::pool::{timeout_error, Conn, ExecResult, SqlPool, SqlTimeouts};
use crate::{Error, Result, Value};

/// A MySQL/MariaDB pool (mysql_async), configured to add no round trip per query.
pub(crate) struct MySqlPool {
    pub(crate) name: String,
    pool: mysql_async::Pool,
    pub(crate) encoding: String,
    mariadb: OnceCell<bool>,
    /// See [`SqlPool::id_step`]: asked once per pool.
    pub(crate) id_step: OnceCell<Option<u64>>,
    pub(crate) timeouts: SqlTimeouts,
    pub(crate) instrumentation: Hook,
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
        instrumentation: Hook,
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
            instrumentation,
        }
    }

    fn connection_error(&self, e: mysql_async::Error) -> Error {
        Error::Connection {
            pool: self.name.clone(),
            source: Box::new(e),
        }
    }

    /// A connection, within the larger of `acquire` and `connect` (mysql_async opens
    /// connections inside its checkout).
    pub(crate) async fn acquire(&self) -> Result<mysql_async::Conn> {
        let limit = self.timeouts.acquire.max(self.timeouts.connect);
        // Boxed: the timer is large (see `limited` in the pool front).
        match Box::pin(tokio::time::timeout(limit, self.pool.get_conn())).await {
            Ok(c) => c.map_err(|e| self.connection_error(e)),
            Err(_) => Err(timeout_error(&self.name, "acquire", limit)),
        }
    }

    pub(crate) async fn is_mariadb(&self, pool: &SqlPool) -> Result<bool> {
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

/// How consecutive rows of one multi-row INSERT are numbered, read on `conn`:
/// `Some(auto_increment_increment)`, or `None` when `innodb_autoinc_lock_mode = 2`
/// (the server does not promise consecutive IDs).
pub(crate) async fn read_id_step(conn: &mut Conn) -> Result<Option<u64>> {
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
}

/// Runs a statement that returns no rows (a text query when it has no parameters,
/// else a prepared statement cached per connection).
pub(crate) async fn execute(
    pool: &str,
    q: &mut mysql_async::Conn,
    sql: &str,
    params: Vec<Value>,
) -> Result<ExecResult> {
    let result = if params.is_empty() {
        q.query_drop(sql).await
    } else {
        let params = params
            .into_iter()
            .map(mysql_value)
            .collect::<Result<Vec<_>>>()?;
        q.exec_drop(sql, params).await
    };
    result.map_err(|e| map_error(pool, sql, e))?;
    Ok(ExecResult {
        affected_rows: q.affected_rows(),
        last_insert_id: q.last_insert_id(),
    })
}

/// Runs a prepared query (values arrive typed) and turns each row into a `T` with
/// `f` as it arrives; the column names too when `names` is set.
pub(crate) async fn query<T, F>(
    pool: &str,
    q: &mut mysql_async::Conn,
    sql: &str,
    params: Vec<Value>,
    names: bool,
    expect: usize,
    mut f: F,
) -> Result<(Vec<String>, Vec<T>)>
where
    T: Send + 'static,
    F: FnMut(&mut Vec<Value>) -> Result<T> + Send + 'static,
{
    let params = params
        .into_iter()
        .map(mysql_value)
        .collect::<Result<Vec<_>>>()?;
    let mut columns = Vec::new();
    let mut buf = Vec::new();
    let out = q
        .exec_fold(
            sql,
            params,
            Ok(crate::sql::pool::rows_vec(expect)),
            |acc: Result<Vec<T>>, mut row: mysql_async::Row| {
                let mut acc = acc?;
                if names && acc.is_empty() {
                    columns = row
                        .columns_ref()
                        .iter()
                        .map(|c| c.name_str().into_owned())
                        .collect();
                }
                // Cell by cell: `Row::unwrap` would allocate a vector per row.
                for i in 0..row.len() {
                    buf.push(
                        row.take::<mysql_async::Value, _>(i)
                            .map_or(Value::Null, from_mysql),
                    );
                }
                let t = f(&mut buf);
                buf.clear();
                acc.push(t?);
                Ok(acc)
            },
        )
        .await
        .map_err(|e| map_error(pool, sql, e))?;
    Ok((columns, out?))
}

/// Several `;`-separated statements without parameters (a text query).
pub(crate) async fn script(pool: &str, q: &mut mysql_async::Conn, sql: &str) -> Result<()> {
    q.query_drop(sql).await.map_err(|e| map_error(pool, sql, e))
}

/// Closes a MySQL connection instead of returning it to the pool (its slot is freed
/// once it is closed). mysql_async marks it disconnected on the first poll of
/// `disconnect`, so even a slow close never hands it out again.
pub(crate) fn discard(c: mysql_async::Conn, limit: std::time::Duration) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = tokio::time::timeout(limit, c.disconnect()).await;
        });
    }
}

/// A connection dropped inside a transaction: with a statement in flight (`dirty`)
/// or outside a runtime it is closed (the server rolls back); else `ROLLBACK` runs on
/// the runtime and the connection goes back to the pool, or is closed when the
/// rollback fails.
pub(crate) fn drop_in_transaction(
    mut c: mysql_async::Conn,
    dirty: bool,
    limit: std::time::Duration,
    name: impl FnOnce() -> String,
) {
    if dirty {
        discard(c, limit);
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
        discard(c, limit);
    }
}
