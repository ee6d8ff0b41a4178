//! PostgreSQL connections: the pool (deadpool-postgres), checkout within the pool's
//! timeouts, the statements of one connection (prepared and cached per connection),
//! and what becomes of a connection dropped inside a transaction or with a statement
//! in flight (the pool front decides, this module carries it out).

use super::errors::map_error;
use super::values::{cell, PgParam};
use crate::instrument::Hook;
use crate::sql::pool::{timeout_error, ExecResult, SqlTimeouts};
use crate::{Error, Result, Value};

/// A PostgreSQL pool (deadpool-postgres with the "fast" recycling method: no query on
/// checkout), statements prepared and cached per connection.
/// A PostgreSQL pool (deadpool-postgres with the "fast" recycling method: no query on
/// checkout), statements prepared and cached per connection.
pub(crate) struct PgPool {
    pub(crate) name: String,
    pool: deadpool_postgres::Pool,
    pub(crate) timeouts: SqlTimeouts,
    pub(crate) instrumentation: Hook,
}

impl PgPool {
    /// Parses the URL (`postgres://user:pass@host:5432/db?limit_connections=N`) and
    /// creates the pool; no connection is opened yet.
    pub(crate) fn new(
        name: &str,
        url: &str,
        timeouts: SqlTimeouts,
        instrumentation: Hook,
    ) -> Result<Self> {
        let bad = |why: String| Error::config(format!("PostgreSQL URL of pool `{name}`: {why}"));
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut limit = crate::sql::pool::DEFAULT_LIMIT_CONNECTIONS;
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
            instrumentation,
        })
    }

    /// A connection: `acquire` bounds the wait for a free slot, `connect` the opening
    /// of a new connection.
    pub(crate) async fn get(&self) -> Result<deadpool_postgres::Object> {
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

/// The client of a connection slot (empty after a failure lost the connection).
pub(crate) fn client<'c>(
    pool: &str,
    slot: &'c mut Option<deadpool_postgres::Object>,
) -> Result<&'c mut deadpool_postgres::Object> {
    slot.as_mut().ok_or_else(|| Error::Connection {
        pool: pool.to_string(),
        source: "the connection was lost by an earlier failure".into(),
    })
}

/// The parameters as the driver takes them: borrowed, converted at bind time.
macro_rules! pg_refs {
    ($params:expr) => {
        $params
            .iter()
            .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect::<Vec<_>>()
    };
}

/// Runs a statement that returns no rows, its SQL verbatim (`$n` placeholders).
pub(crate) async fn execute(
    pool: &str,
    client: &mut deadpool_postgres::Object,
    sql: &str,
    params: Vec<Value>,
) -> Result<ExecResult> {
    let params: Vec<PgParam<'_>> = params.iter().map(PgParam).collect();
    let refs = pg_refs!(params);
    let affected = if refs.is_empty() {
        client.execute(sql, &[]).await
    } else {
        match client.prepare_cached(sql).await {
            Ok(stmt) => client.execute(&stmt, &refs).await,
            Err(e) => Err(e),
        }
    }
    .map_err(|e| map_error(pool, sql, e))?;
    Ok(ExecResult {
        affected_rows: affected,
        last_insert_id: None,
    })
}

/// Runs a query and turns each row into a `T` with `f`; the column names too when
/// `names` is set. The SQL is sent verbatim (`$n` placeholders).
pub(crate) async fn query<T, F>(
    pool: &str,
    client: &mut deadpool_postgres::Object,
    sql: &str,
    params: Vec<Value>,
    names: bool,
    mut f: F,
) -> Result<(Vec<String>, Vec<T>)>
where
    F: FnMut(&mut Vec<Value>) -> Result<T>,
{
    let params: Vec<PgParam<'_>> = params.iter().map(PgParam).collect();
    let refs = pg_refs!(params);
    let stmt = client
        .prepare_cached(sql)
        .await
        .map_err(|e| map_error(pool, sql, e))?;
    let rows = client
        .query(&stmt, &refs)
        .await
        .map_err(|e| map_error(pool, sql, e))?;
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
            buf.push(cell(row, i, pool, sql)?);
        }
        out.push(f(&mut buf)?);
        buf.clear();
    }
    Ok((columns, out))
}

/// Several `;`-separated statements without parameters: one simple query, which
/// the server runs in one implicit transaction.
pub(crate) async fn script(
    pool: &str,
    client: &mut deadpool_postgres::Object,
    sql: &str,
) -> Result<()> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| map_error(pool, sql, e))
}

/// Closes a connection instead of returning it to the pool.
pub(crate) fn discard(client: deadpool_postgres::Object) {
    drop(deadpool_postgres::Object::take(client));
}

/// A connection dropped inside a transaction: with a statement in flight (`dirty`)
/// or outside a runtime it is closed (the server rolls back); else `ROLLBACK` runs on
/// the runtime and the connection goes back to the pool, or is closed when the
/// rollback fails.
pub(crate) fn drop_in_transaction(
    client: deadpool_postgres::Object,
    dirty: bool,
    limit: std::time::Duration,
    name: impl FnOnce() -> String,
) {
    let rt = tokio::runtime::Handle::try_current();
    match rt {
        Ok(rt) if !dirty => {
            let name = name();
            rt.spawn(async move {
                let r = tokio::time::timeout(limit, client.batch_execute("ROLLBACK")).await;
                if !matches!(r, Ok(Ok(()))) {
                    tracing::warn!(pool = %name, "rollback of a dropped transaction failed; the connection is closed");
                    discard(client);
                }
            });
        }
        _ => discard(client),
    }
}
