#![doc = include_str!("../../docs/clickhouse.md")]

mod config;
mod insert;
mod query;
mod schema;
mod shape;
mod types;

use std::sync::Arc;
use std::time::Duration;

pub use self::query::Query;

/// The `clickhouse` crate itself, for what beeorm does not wrap.
pub use ::clickhouse as client;
/// Serde helpers of the `clickhouse` crate, e.g. `clickhouse::serde::chrono::datetime`
/// for a `DateTime` column read into `chrono::DateTime<Utc>`.
pub use ::clickhouse::serde;
/// Binds a table or column name (quoted as an identifier) to a `?`.
pub use ::clickhouse::sql::Identifier;
/// Derive and trait of a row type (`#[derive(clickhouse::Row)]` after
/// `use beeorm::clickhouse;`).
pub use ::clickhouse::Row;
/// Row traits for generic code: owned rows, readable rows, writable rows.
pub use ::clickhouse::{RowOwned, RowRead, RowWrite};
// The `Row` derive refers to `clickhouse::_priv`: with `use beeorm::clickhouse;` in
// scope, that path resolves here, so users need no dependency of their own.
#[doc(hidden)]
pub use ::clickhouse::_priv;

use crate::{Error, Result};

/// How long a ClickHouse pool waits (see
/// [`Registry::set_clickhouse_timeouts`](crate::Registry::set_clickhouse_timeouts)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) query: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: config::DEFAULT_CONNECT,
            query: config::DEFAULT_QUERY,
        }
    }
}

/// A ClickHouse pool: an HTTP client with keep-alive connections to one server and
/// database. Cheap to clone (an `Arc`); get it with
/// [`Engine::clickhouse`](crate::Engine::clickhouse).
#[derive(Clone)]
pub struct ClickHouse {
    inner: Arc<Pool>,
}

struct Pool {
    name: String,
    client: ::clickhouse::Client,
    timeouts: Timeouts,
    schemas: schema::Schemas,
}

impl std::fmt::Debug for ClickHouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouse")
            .field("pool", &self.inner.name)
            .field("database", &self.inner.client.database())
            .field("timeouts", &self.inner.timeouts)
            .finish()
    }
}

impl ClickHouse {
    /// Builds the pool; no connection is made.
    fn open(name: &str, url: &str, timeouts: Timeouts) -> Result<ClickHouse> {
        let endpoint = config::parse(name, url)?;
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_connect_timeout(Some(timeouts.connect));
        connector.set_keepalive(Some(Duration::from_secs(60)));
        connector.set_nodelay(true);
        // ClickHouse closes idle keep-alive connections after 3 s: drop ours sooner.
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(2))
                .build(connector);
        let mut client = ::clickhouse::Client::with_http_client(http)
            .with_url(endpoint.url)
            .with_user(endpoint.user)
            .with_database(endpoint.database)
            // 18.16 has no RowBinaryWithNamesAndTypes: beeorm checks types itself.
            .with_validation(false);
        if let Some(p) = endpoint.password {
            client = client.with_password(p);
        }
        Ok(ClickHouse {
            inner: Arc::new(Pool {
                name: name.to_string(),
                client,
                timeouts,
                schemas: schema::Schemas::default(),
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The database this pool works in.
    pub fn database(&self) -> &str {
        self.inner.client.database().unwrap_or("default")
    }

    /// The `clickhouse` crate's client of this pool, for what beeorm does not wrap
    /// (cursors, raw formats, `SHOW`). It runs with the crate's validation off (see
    /// the module docs): reads and inserts through it are **not** type-checked, and
    /// the pool's query timeout does not apply.
    pub fn client(&self) -> &::clickhouse::Client {
        &self.inner.client
    }

    /// A statement with `?` placeholders: bind values in order with
    /// [`Query::bind`] (escaped by the client; `??` is a literal `?`, `?fields` the
    /// row type's column names), then run it with [`Query::execute`] or read rows
    /// with [`Query::fetch_all`] and friends.
    pub fn query(&self, sql: &str) -> Query {
        Query::new(self.clone(), sql)
    }

    /// Runs one statement without bound values (DDL, `ALTER`, `OPTIMIZE`, …).
    pub async fn exec(&self, sql: &str) -> Result<()> {
        self.query(sql).execute().await
    }

    /// Drops the cached column types of every table and query, so the next insert
    /// or read describes them again (after an `ALTER` made elsewhere; a mismatch
    /// found with a cached description is re-checked against a fresh one anyway).
    pub fn forget_schemas(&self) {
        self.inner.schemas.clear();
    }

    /// Runs `f` under the pool's query timeout, mapping the crate's errors.
    async fn timed<T>(
        &self,
        operation: impl FnOnce() -> String,
        f: impl std::future::Future<Output = std::result::Result<T, ::clickhouse::error::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.inner.timeouts.query, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(self.error(operation(), source)),
            Err(_) => Err(Error::Timeout {
                pool: self.inner.name.clone(),
                operation: operation(),
                limit: self.inner.timeouts.query,
            }),
        }
    }

    /// The crate's error as ours; its own timeouts (insert chunks) become
    /// [`Error::Timeout`].
    fn error(&self, operation: String, source: ::clickhouse::error::Error) -> Error {
        match source {
            ::clickhouse::error::Error::TimedOut => Error::Timeout {
                pool: self.inner.name.clone(),
                operation,
                limit: self.inner.timeouts.query,
            },
            source => Error::ClickHouse {
                pool: self.inner.name.clone(),
                operation,
                source,
            },
        }
    }
}

/// Opens every registered pool (no I/O): checks names, URLs and timeouts.
pub(crate) fn open_pools(
    pools: &[(String, String)],
    timeouts: &[(String, Duration, Duration)],
) -> Result<std::collections::HashMap<String, ClickHouse>> {
    let mut out = std::collections::HashMap::new();
    for (name, connect, query) in timeouts {
        if !pools.iter().any(|(p, _)| p == name) {
            return Err(Error::UnknownPool {
                kind: "clickhouse",
                pool: name.clone(),
                used_by: "set_clickhouse_timeouts".into(),
            });
        }
        if connect.is_zero() || query.is_zero() {
            return Err(Error::config(format!(
                "ClickHouse pool `{name}`: timeouts must be above zero (connect {connect:?}, query {query:?})"
            )));
        }
    }
    for (name, url) in pools {
        if out.contains_key(name) {
            return Err(Error::config(format!(
                "ClickHouse pool `{name}` is registered twice"
            )));
        }
        let t = timeouts
            .iter()
            .rev()
            .find(|(p, _, _)| p == name)
            .map_or_else(Timeouts::default, |(_, connect, query)| Timeouts {
                connect: *connect,
                query: *query,
            });
        out.insert(name.clone(), ClickHouse::open(name, url, t)?);
    }
    Ok(out)
}

/// Shortens SQL for error messages.
fn short(sql: &str) -> String {
    const MAX: usize = 200;
    let sql = sql.trim();
    match sql.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &sql[..i]),
        None => sql.to_string(),
    }
}

/// `name` quoted as a ClickHouse identifier: in backquotes, with `\\`, `` ` ``,
/// quotes, tabs and newlines escaped.
fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        match c {
            '\\' | '`' | '\'' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('`');
    out
}
