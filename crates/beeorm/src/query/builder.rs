//! [`QueryBuilder`] and [`Driver`] (capability H): the SQL strings are a contract,
//! reproduced to the character from the spec, e.g.
//! `SELECT * FROM users WHERE age = ? AND age < ? AND name = ? OR age > ?`.
//!
//! Identifiers, operators and directions reach SQL text, so each is checked when it is
//! given; the first bad one is what [`QueryBuilder::to_sql`] returns as an error.
//! Values are always parameters.

use std::marker::PhantomData;

use super::where_::{Param, ToParam};
use crate::{Engine, Error, Result, Value};

/// A SQL driver: its name and its placeholder style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Driver {
    name: &'static str,
    numbered: bool,
}

impl Driver {
    /// PostgreSQL: `$1, $2, …`.
    pub const POSTGRESQL: Driver = Driver {
        name: "postgres",
        numbered: true,
    };
    /// SQLite: `?`.
    pub const SQLITE3: Driver = Driver {
        name: "sqlite3",
        numbered: false,
    };
    /// MySQL / MariaDB: `?`.
    pub const MYSQL: Driver = Driver {
        name: "mysql",
        numbered: false,
    };

    /// The driver's name: `postgres`, `sqlite3` or `mysql`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `n` placeholders, numbered from 1 where the driver numbers them.
    pub fn placeholders(&self, n: usize) -> Vec<String> {
        self.placeholders_from(1, n)
    }

    fn placeholders_from(&self, first: usize, n: usize) -> Vec<String> {
        (first..first + n)
            .map(|i| {
                if self.numbered {
                    format!("${i}")
                } else {
                    "?".to_string()
                }
            })
            .collect()
    }

    pub(crate) fn for_kind(kind: crate::DialectKind) -> Driver {
        match kind {
            crate::DialectKind::Postgres => Driver::POSTGRESQL,
            crate::DialectKind::Sqlite => Driver::SQLITE3,
            _ => Driver::MYSQL,
        }
    }
}

/// Why a query cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// `to_sql` was called on a builder nothing was set on.
    #[error("the query builder is empty: call table(…) and the other methods before to_sql()")]
    Empty,
    /// No table was given.
    #[error("no table: call table(…)")]
    NoTable,
    /// A table or column name that is not a plain identifier.
    #[error(
        "`{0}` is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*, optionally table.column, or *)"
    )]
    Identifier(String),
    /// An operator outside `=`, `!=`, `<>`, `<`, `<=`, `>`, `>=`, `LIKE`, `NOT LIKE`, `IN`.
    #[error("`{0}` is not a supported operator")]
    Operator(String),
    /// An order direction other than `ASC` or `DESC`.
    #[error("`{0}` is not an order direction (ASC or DESC)")]
    Direction(String),
    /// A list where one value is expected, or one value where `IN` needs a list.
    #[error("{0}")]
    Argument(String),
}

impl From<QueryError> for Error {
    fn from(e: QueryError) -> Self {
        Error::Query(e.to_string())
    }
}

fn check_identifier(s: &str) -> std::result::Result<(), QueryError> {
    let plain = |p: &str| {
        let mut chars = p.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let ok = s == "*"
        || match s.split_once('.') {
            Some((t, c)) => plain(t) && (plain(c) || c == "*"),
            None => plain(s),
        };
    if ok {
        Ok(())
    } else {
        Err(QueryError::Identifier(s.to_string()))
    }
}

const OPERATORS: [&str; 10] = [
    "=", "!=", "<>", "<", "<=", ">", ">=", "LIKE", "NOT LIKE", "IN",
];

/// One condition of a `WHERE`: `(column, value)`, `(column, operator, value)` or
/// `(column, "IN", list)`.
pub trait Condition {
    /// The column, the operator and the parameter.
    fn parts(self) -> (String, String, Param);
}

impl<C: AsRef<str>, P: ToParam> Condition for (C, P) {
    fn parts(self) -> (String, String, Param) {
        (
            self.0.as_ref().to_string(),
            "=".to_string(),
            self.1.to_param(),
        )
    }
}

impl<C: AsRef<str>, O: AsRef<str>, P: ToParam> Condition for (C, O, P) {
    fn parts(self) -> (String, String, Param) {
        (
            self.0.as_ref().to_string(),
            self.1.as_ref().to_string(),
            self.2.to_param(),
        )
    }
}

#[derive(Debug, Clone)]
struct Cond {
    joiner: &'static str,
    column: String,
    op: String,
    param: Param,
}

/// A `SELECT` built call by call. `T` is what [`get`](QueryBuilder::get) and
/// [`all`](QueryBuilder::all) return; building and rendering put no bound on it.
///
/// ```
/// use beeorm::query::{Driver, QueryBuilder};
/// struct Dummy;
/// let mut s = QueryBuilder::<Dummy>::new();
/// s.set_driver(Driver::POSTGRESQL).table("users").where_in("id", [1, 2, 3]);
/// let (sql, args) = s.to_sql().unwrap();
/// assert_eq!(sql, "SELECT * FROM users WHERE id IN ($1, $2, $3)");
/// assert_eq!(args.len(), 3);
/// ```
pub struct QueryBuilder<T> {
    touched: bool,
    error: Option<QueryError>,
    driver: Option<Driver>,
    table: Option<String>,
    select: Vec<String>,
    conditions: Vec<Cond>,
    group_by: Vec<String>,
    order_by: Vec<(String, String)>,
    limit: Option<u64>,
    offset: Option<u64>,
    _row: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for QueryBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryBuilder")
            .field("table", &self.table)
            .field("driver", &self.driver.map(|d| d.name()))
            .finish()
    }
}

impl<T> Default for QueryBuilder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for QueryBuilder<T> {
    fn clone(&self) -> Self {
        QueryBuilder {
            touched: self.touched,
            error: self.error.clone(),
            driver: self.driver,
            table: self.table.clone(),
            select: self.select.clone(),
            conditions: self.conditions.clone(),
            group_by: self.group_by.clone(),
            order_by: self.order_by.clone(),
            limit: self.limit,
            offset: self.offset,
            _row: PhantomData,
        }
    }
}

impl<T> QueryBuilder<T> {
    /// An empty builder.
    pub fn new() -> Self {
        QueryBuilder {
            touched: false,
            error: None,
            driver: None,
            table: None,
            select: Vec::new(),
            conditions: Vec::new(),
            group_by: Vec::new(),
            order_by: Vec::new(),
            limit: None,
            offset: None,
            _row: PhantomData,
        }
    }

    fn fail(&mut self, e: QueryError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn identifier(&mut self, s: &str) -> String {
        if let Err(e) = check_identifier(s) {
            self.fail(e);
        }
        s.to_string()
    }

    /// Checked identifiers from a list of names.
    fn identifiers<I>(&mut self, cols: I) -> Vec<String>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.touched = true;
        cols.into_iter()
            .map(|c| self.identifier(c.as_ref()))
            .collect()
    }

    /// The table to query.
    pub fn table(&mut self, name: &str) -> &mut Self {
        self.touched = true;
        self.table = Some(self.identifier(name));
        self
    }

    /// Columns to fetch (`*` when never called); repeated calls append.
    pub fn select<I>(&mut self, cols: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let cols = self.identifiers(cols);
        self.select.extend(cols);
        self
    }

    fn push(&mut self, joiner: &'static str, cond: impl Condition) -> &mut Self {
        self.touched = true;
        let (column, op, param) = cond.parts();
        let column = self.identifier(&column);
        let op = op.trim().to_ascii_uppercase();
        if !OPERATORS.contains(&op.as_str()) {
            self.fail(QueryError::Operator(op.clone()));
        }
        match (&param, op.as_str()) {
            (Param::List(l), "IN") if l.is_empty() => self.fail(QueryError::Argument(format!(
                "`{column} IN` needs at least one value"
            ))),
            (Param::List(_), "IN") => {}
            (Param::One(_), "IN") => {
                self.fail(QueryError::Argument(format!("`{column} IN` needs a list")))
            }
            (Param::List(_), _) => self.fail(QueryError::Argument(format!(
                "`{column} {op}` takes one value, not a list"
            ))),
            _ => {}
        }
        self.conditions.push(Cond {
            joiner,
            column,
            op,
            param,
        });
        self
    }

    /// Adds a condition joined with ` AND ` (the first one starts the `WHERE`).
    pub fn where_(&mut self, cond: impl Condition) -> &mut Self {
        self.push(" AND ", cond)
    }

    /// Same as [`where_`](Self::where_).
    pub fn and_where(&mut self, cond: impl Condition) -> &mut Self {
        self.push(" AND ", cond)
    }

    /// Adds a condition joined with ` OR ` (no parentheses are added).
    pub fn or_where(&mut self, cond: impl Condition) -> &mut Self {
        self.push(" OR ", cond)
    }

    /// `col IN (…)`, joined with ` AND `.
    pub fn where_in<I>(&mut self, col: &str, list: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: Into<Value>,
    {
        let values: Vec<Value> = list.into_iter().map(Into::into).collect();
        self.push(" AND ", (col, "IN", Param::List(values)))
    }

    /// `ORDER BY col dir` (`dir`: `ASC` or `DESC`); repeated calls append.
    pub fn order_by(&mut self, col: &str, dir: &str) -> &mut Self {
        self.touched = true;
        let col = self.identifier(col);
        let dir = dir.trim().to_ascii_uppercase();
        if dir != "ASC" && dir != "DESC" {
            self.fail(QueryError::Direction(dir.clone()));
        }
        self.order_by.push((col, dir));
        self
    }

    /// `GROUP BY cols`; repeated calls append.
    pub fn group_by<I>(&mut self, cols: I) -> &mut Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let cols = self.identifiers(cols);
        self.group_by.extend(cols);
        self
    }

    /// `LIMIT n` (a literal number).
    pub fn limit(&mut self, n: u64) -> &mut Self {
        self.touched = true;
        self.limit = Some(n);
        self
    }

    /// `OFFSET n` (a literal number).
    pub fn offset(&mut self, n: u64) -> &mut Self {
        self.touched = true;
        self.offset = Some(n);
        self
    }

    /// Placeholders follow this driver (for the whole query).
    pub fn set_driver(&mut self, driver: Driver) -> &mut Self {
        self.touched = true;
        self.driver = Some(driver);
        self
    }

    /// The SQL and its arguments in order.
    pub fn to_sql(&self) -> std::result::Result<(String, Vec<Value>), QueryError> {
        self.render(self.driver, None)
    }

    /// The SQL; with `alive` (a quoted fake-delete column), the user's conditions are
    /// parenthesised and `AND alive = 0` is added.
    fn render(
        &self,
        driver: Option<Driver>,
        alive: Option<&str>,
    ) -> std::result::Result<(String, Vec<Value>), QueryError> {
        if !self.touched {
            return Err(QueryError::Empty);
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let table = self.table.as_ref().ok_or(QueryError::NoTable)?;
        let driver = driver.unwrap_or(Driver::MYSQL);
        let cols = if self.select.is_empty() {
            "*".to_string()
        } else {
            self.select.join(", ")
        };
        let mut sql = format!("SELECT {cols} FROM {table}");
        let mut args = Vec::new();
        let open = alive.is_some() && !self.conditions.is_empty();
        for (i, c) in self.conditions.iter().enumerate() {
            sql.push_str(match (i, open) {
                (0, true) => " WHERE (",
                (0, false) => " WHERE ",
                _ => c.joiner,
            });
            match &c.param {
                Param::One(v) => {
                    let mark = driver.placeholders_from(args.len() + 1, 1).join("");
                    sql.push_str(&format!("{} {} {mark}", c.column, c.op));
                    args.push(v.clone());
                }
                Param::List(list) => {
                    let marks = driver
                        .placeholders_from(args.len() + 1, list.len())
                        .join(", ");
                    sql.push_str(&format!("{} {} ({marks})", c.column, c.op));
                    args.extend(list.iter().cloned());
                }
            }
        }
        if let Some(col) = alive {
            sql.push_str(if open { ") AND " } else { " WHERE " });
            sql.push_str(col);
            sql.push_str(" = 0");
        }
        if !self.group_by.is_empty() {
            sql.push_str(" GROUP BY ");
            sql.push_str(&self.group_by.join(", "));
        }
        if !self.order_by.is_empty() {
            let parts: Vec<String> = self
                .order_by
                .iter()
                .map(|(c, d)| format!("{c} {d}"))
                .collect();
            sql.push_str(" ORDER BY ");
            sql.push_str(&parts.join(", "));
        }
        if let Some(n) = self.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        if let Some(n) = self.offset {
            sql.push_str(&format!(" OFFSET {n}"));
        }
        Ok((sql, args))
    }
}

/// Running a query: `T` is what comes back.
///
/// - An entity type `E` gives plain values: a snapshot, not tracked, so changing it
///   writes nothing (flush needs a [`Tracked`](crate::Tracked)).
/// - `Tracked<E>` gives tracked entities, as the engine's read methods do: change
///   them and flush them.
/// - `Vec<Value>` and `HashMap<String, Value>` give raw rows.
///
/// For an entity (tracked or not) whose table is the one queried, fake-deleted rows
/// are skipped like in searches: the conditions are put in parentheses and
/// `AND fake_delete = 0` is added (so [`to_sql`](Self::to_sql), which knows no
/// entity, shows the SQL without it). Raw rows are not filtered. Queries run on the
/// pool, outside any transaction.
///
/// ```no_run
/// # use beeorm::prelude::*;
/// # #[derive(Entity)] struct Player { id: u64, name: String, age: u32 }
/// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
/// let mut q = QueryBuilder::<Tracked<Player>>::new();
/// q.table("Player").where_(("name", "Ann"));
/// let mut ann = q.get(engine).await?;
/// ann.age += 1;
/// engine.flush(&mut ann).await?; // an UPDATE of `age`
/// # Ok(()) }
/// ```
impl<T: super::FromRow> QueryBuilder<T> {
    /// Runs the query on `T`'s pool and returns the first row (a typed
    /// [`Error::NotFound`] when there is none). The SQL is rendered for that pool's
    /// server whatever [`set_driver`](Self::set_driver) says.
    pub async fn get(&self, engine: &Engine) -> Result<T> {
        let mut rows = self.run(engine).await?;
        if rows.is_empty() {
            return Err(Error::NotFound {
                entity: self.table.clone().unwrap_or_default(),
                key: "query".into(),
            });
        }
        Ok(rows.swap_remove(0))
    }

    /// Runs the query on `T`'s pool and returns every row.
    pub async fn all(&self, engine: &Engine) -> Result<Vec<T>> {
        self.run(engine).await
    }

    async fn run(&self, engine: &Engine) -> Result<Vec<T>> {
        let pool = engine.sql_pool(&T::pool_name(engine))?;
        let alive = self
            .table
            .as_deref()
            .and_then(|table| T::alive_column(engine, table))
            .map(|col| pool.quote(&col));
        let (sql, args) = self.render(Some(Driver::for_kind(pool.kind())), alive.as_deref())?;
        let args = engine.registry().hooks().prepare_params(&args);
        // Numbered placeholders are already in place: the pool layer leaves them.
        let (columns, rows) = match engine.read_target(&pool, false) {
            None => pool.query_with_columns(&sql, args).await?,
            Some((set, target)) => crate::sql::replicas::on_replica!(set, target, &pool, |p| p
                .query_with_columns(&sql, args.clone()))?,
        };
        rows.into_iter()
            .map(|row| T::from_row(engine, &columns, row))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dummy;

    fn sql(b: &QueryBuilder<Dummy>) -> (String, Vec<Value>) {
        b.to_sql().unwrap()
    }

    #[test]
    fn drivers_have_names_and_placeholders() {
        assert_eq!(Driver::POSTGRESQL.name(), "postgres");
        assert_eq!(Driver::POSTGRESQL.placeholders(3), ["$1", "$2", "$3"]);
        assert_eq!(Driver::SQLITE3.name(), "sqlite3");
        assert_eq!(Driver::SQLITE3.placeholders(3), ["?", "?", "?"]);
        assert_eq!(Driver::MYSQL.name(), "mysql");
        assert_eq!(Driver::MYSQL.placeholders(3), ["?", "?", "?"]);
    }

    #[test]
    fn spec_example_plain_table() {
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("users");
        assert_eq!(sql(&s), ("SELECT * FROM users".to_string(), vec![]));
    }

    #[test]
    fn spec_example_and_or_chain() {
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("users")
            .set_driver(Driver::SQLITE3)
            .where_(("age", 10))
            .and_where(("age", "<", 10))
            .where_(("name", "CodeCup"))
            .or_where(("age", ">", 11));
        let (q, args) = sql(&s);
        assert_eq!(
            q,
            "SELECT * FROM users WHERE age = ? AND age < ? AND name = ? OR age > ?"
        );
        assert_eq!(
            args,
            vec![
                Value::from(10),
                Value::from(10),
                Value::from("CodeCup"),
                Value::from(11)
            ]
        );
    }

    #[test]
    fn spec_example_postgres_where_in() {
        let mut s = QueryBuilder::<Dummy>::new();
        s.set_driver(Driver::POSTGRESQL)
            .table("users")
            .where_in("id", [1, 2, 3, 4, 5, 6]);
        let (q, args) = sql(&s);
        assert_eq!(
            q,
            "SELECT * FROM users WHERE id IN ($1, $2, $3, $4, $5, $6)"
        );
        assert_eq!(args.len(), 6);
    }

    #[test]
    fn every_clause_renders_in_order() {
        let mut s = QueryBuilder::<Dummy>::new();
        s.set_driver(Driver::POSTGRESQL)
            .select(["id", "name"])
            .select(vec!["age".to_string()])
            .table("users")
            .where_(("age", ">=", 18))
            .where_(("id", "IN", vec![1, 2]))
            .or_where(("name", "LIKE", "A%"))
            .group_by(["age"])
            .group_by(["name"])
            .order_by("age", "DESC")
            .order_by("id", "asc")
            .limit(10)
            .offset(20);
        assert_eq!(
            sql(&s).0,
            "SELECT id, name, age FROM users WHERE age >= $1 AND id IN ($2, $3) OR name LIKE $4 GROUP BY age, name ORDER BY age DESC, id ASC LIMIT 10 OFFSET 20"
        );
    }

    #[test]
    fn the_fake_delete_filter_wraps_the_conditions() {
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("users")
            .where_(("a", 1))
            .or_where(("b", 2))
            .group_by(["a"])
            .order_by("a", "ASC")
            .limit(5);
        assert_eq!(
            s.render(Some(Driver::POSTGRESQL), Some("\"fake_delete\""))
                .unwrap()
                .0,
            "SELECT * FROM users WHERE (a = $1 OR b = $2) AND \"fake_delete\" = 0 GROUP BY a ORDER BY a ASC LIMIT 5"
        );
        assert_eq!(
            sql(&s).0,
            "SELECT * FROM users WHERE a = ? OR b = ? GROUP BY a ORDER BY a ASC LIMIT 5",
            "to_sql is the spec's SQL"
        );
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("users").limit(1);
        assert_eq!(
            s.render(None, Some("`fake_delete`")).unwrap().0,
            "SELECT * FROM users WHERE `fake_delete` = 0 LIMIT 1"
        );
    }

    #[test]
    fn to_sql_first_is_an_error() {
        let s = QueryBuilder::<Dummy>::new();
        assert_eq!(s.to_sql(), Err(QueryError::Empty));
        let mut s = QueryBuilder::<Dummy>::new();
        s.limit(1);
        assert_eq!(s.to_sql(), Err(QueryError::NoTable));
    }

    #[test]
    fn bad_identifiers_operators_and_directions_are_errors_not_sql() {
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("users; DROP TABLE users");
        assert!(matches!(s.to_sql(), Err(QueryError::Identifier(_))));
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("users").where_(("age", "= 1 OR 1 =", 1));
        assert!(matches!(s.to_sql(), Err(QueryError::Operator(_))));
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("users").order_by("age", "DESC; --");
        assert!(matches!(s.to_sql(), Err(QueryError::Direction(_))));
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("users").select(["name)"]);
        assert!(matches!(s.to_sql(), Err(QueryError::Identifier(_))));
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("u").where_in("id", Vec::<i32>::new());
        assert!(matches!(s.to_sql(), Err(QueryError::Argument(_))));
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("u").where_(("id", "IN", 5));
        assert!(matches!(s.to_sql(), Err(QueryError::Argument(_))));
        let mut s = QueryBuilder::<Dummy>::new();
        s.table("u").select(["u.*", "t.name", "*"]);
        assert!(s.to_sql().is_ok());
    }
}
