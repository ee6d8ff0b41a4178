//! A statement with bound values, run under the pool's timeout; reads check the
//! row type against the result's columns first.

use tracing::Instrument;

use super::ClickHouse;
use crate::Result;

/// A statement of a [`ClickHouse`] pool, from [`ClickHouse::query`]. Values bound
/// with [`Query::bind`] are escaped by the `clickhouse` crate and written into the
/// SQL text (ClickHouse 18.16 has no server-side parameters). Every run is bounded
/// by the pool's query timeout.
///
/// Reads ([`Query::fetch_all`], [`Query::fetch_one`], [`Query::fetch_optional`])
/// first compare the row type with the result's columns (names, count and types,
/// from `DESCRIBE TABLE (query)`, cached per query text), and return
/// [`Error::ClickHouseType`](crate::Error::ClickHouseType) on a mismatch instead of
/// decoding garbage. Reads must therefore be `SELECT` (or `WITH … SELECT`)
/// statements.
#[must_use = "a query does nothing until it is executed or fetched"]
pub struct Query {
    ch: ClickHouse,
    template: String,
    /// The Rust types of the bound values, in order (part of the cache key: a
    /// value's type can change a result column's type).
    bound: Vec<&'static str>,
    query: ::clickhouse::query::Query,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("pool", &self.ch.inner.name)
            .field("sql", &self.template)
            .finish()
    }
}

impl Query {
    pub(super) fn new(ch: ClickHouse, sql: &str) -> Query {
        let query = ch.inner.client.query(sql);
        Query {
            ch,
            template: sql.to_string(),
            bound: Vec::new(),
            query,
        }
    }

    /// Binds `value` to the next `?`: any `Serialize` value (numbers, strings, `Option`
    /// as `NULL`, `Vec` as an array literal) or an [`Identifier`](super::Identifier).
    /// 18.16 refuses an array on the right of `IN`: write `has(?, column)` instead.
    /// A value that cannot be bound (or a `?` left unbound) fails the run with
    /// [`Error::ClickHouse`](crate::Error::ClickHouse).
    pub fn bind<T: ::clickhouse::sql::Bind>(mut self, value: T) -> Query {
        self.bound.push(std::any::type_name::<T>());
        self.query = self.query.bind(value);
        self
    }

    /// The `tracing` span of a run: span `clickhouse` with the pool and the SQL text
    /// before binding (never the values).
    fn span(&self) -> tracing::Span {
        tracing::debug_span!("clickhouse", pool = %self.ch.inner.name, sql = %self.template)
    }

    fn operation(&self) -> String {
        format!("query `{}`", super::short(&self.template))
    }

    /// Runs the statement, ignoring any result rows.
    pub async fn execute(self) -> Result<()> {
        let op = self.operation();
        let span = self.span();
        self.ch
            .timed(|| op, self.query.execute())
            .instrument(span)
            .await
    }

    /// Checks that `R` reads this query's result.
    async fn check<R>(&self) -> Result<()>
    where
        R: ::clickhouse::RowOwned + ::clickhouse::RowRead,
    {
        let shape = self.ch.read_shape::<R>(&self.operation())?;
        let fields = R::COLUMN_NAMES
            .iter()
            .map(|n| super::quote_ident(n))
            .collect::<Vec<_>>()
            .join(",");
        let key = format!("{}\0{}\0{}", self.template, self.bound.join(","), fields);
        let sql = self
            .query
            .sql_display()
            .to_string()
            .replace("?fields", &fields);
        self.ch.check_read(&key, &sql, &shape).await
    }

    /// Every row of the result, as `R`: a `#[derive(clickhouse::Row, Deserialize)]`
    /// struct whose fields match the selected columns in order (write `SELECT
    /// ?fields FROM …` to select exactly its fields), a primitive, or a tuple.
    pub async fn fetch_all<R>(self) -> Result<Vec<R>>
    where
        R: ::clickhouse::RowOwned + ::clickhouse::RowRead,
    {
        self.check::<R>().await?;
        let op = self.operation();
        let span = self.span();
        self.ch
            .timed(|| op, self.query.fetch_all::<R>())
            .instrument(span)
            .await
    }

    /// The first row of the result; [`Error::ClickHouse`](crate::Error::ClickHouse)
    /// (with the crate's `RowNotFound`) when there is none.
    pub async fn fetch_one<R>(self) -> Result<R>
    where
        R: ::clickhouse::RowOwned + ::clickhouse::RowRead,
    {
        self.check::<R>().await?;
        let op = self.operation();
        let span = self.span();
        self.ch
            .timed(|| op, self.query.fetch_one::<R>())
            .instrument(span)
            .await
    }

    /// The first row of the result, if any.
    pub async fn fetch_optional<R>(self) -> Result<Option<R>>
    where
        R: ::clickhouse::RowOwned + ::clickhouse::RowRead,
    {
        self.check::<R>().await?;
        let op = self.operation();
        let span = self.span();
        self.ch
            .timed(|| op, self.query.fetch_optional::<R>())
            .instrument(span)
            .await
    }
}
