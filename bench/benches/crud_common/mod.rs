//! What `crud.rs` (beeorm and the raw drivers) and `bench/peers` (sqlx, SeaORM) share,
//! so every library sees the same tables, rows, IDs and SQL text.
#![allow(dead_code)]

use std::cell::Cell;

use criterion::{BenchmarkGroup, Criterion};
use tokio::runtime::Runtime;

/// Rows in the read table.
pub const ROWS: u64 = 10_000;
/// Rows per batch operation.
pub const BATCH: usize = 100;

/// The operations, in benchmark order.
pub const OPS: [&str; 6] = [
    "insert_1",
    "insert_100",
    "load_by_id",
    "load_by_ids_100",
    "search_100",
    "search_10000",
];

/// Field values of row `i` (1-based): `(name, email, age, score, active)`.
pub fn fields(i: u64) -> (String, String, u32, f64, bool) {
    (
        format!("name {i}"),
        format!("user{i}@example.com"),
        (i % 90) as u32,
        i as f64 * 0.25,
        i & 1 == 0,
    )
}

/// A deterministic walk over the read table, the same sequence for every library.
pub struct Walk(Cell<u64>);

impl Default for Walk {
    fn default() -> Self {
        Self::new()
    }
}

impl Walk {
    pub fn new() -> Self {
        Walk(Cell::new(0))
    }

    /// The next ID in `1..=ROWS`.
    pub fn id(&self) -> u64 {
        let next = (self.0.get() + 7_919) % ROWS;
        self.0.set(next);
        next + 1
    }

    /// `BATCH` distinct IDs spread over the table.
    pub fn ids(&self) -> Vec<u64> {
        let start = self.id();
        (0..BATCH as u64)
            .map(|k| (start + k * 97) % ROWS + 1)
            .collect()
    }

    /// A lower bound that leaves at least `BATCH` rows above it.
    pub fn lower(&self) -> u64 {
        self.id() % (ROWS - BATCH as u64)
    }
}

/// The runtime every library runs on: tokio `current_thread`.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Placeholders for `n` rows of `width` columns: `(?,?),(?,?)`.
pub fn value_rows(n: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(","));
    vec![row; n].join(",")
}

/// Quotes an identifier.
pub type Quote = fn(&str) -> String;

/// MySQL quoting.
pub fn backtick(s: &str) -> String {
    format!("`{s}`")
}

/// SQLite quoting.
pub fn double_quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// The SQL text beeorm sends, which the raw drivers and sqlx send too.
pub struct Sql {
    pub by_id: String,
    pub by_ids: String,
    pub search: String,
    pub search_10k: String,
    pub insert_1: String,
    pub insert_100: String,
}

impl Sql {
    pub fn new(q: Quote) -> Self {
        let cols: Vec<String> = ["id", "name", "email", "age", "score", "active"]
            .iter()
            .map(|c| q(c))
            .collect();
        let select = format!("SELECT {} FROM {}", cols.join(","), q("bench_rows"));
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ",
            q("bench_inserts"),
            cols[1..].join(",")
        );
        Sql {
            by_id: format!("{select} WHERE {} = ?", cols[0]),
            by_ids: format!(
                "{select} WHERE {} IN ({})",
                cols[0],
                vec!["?"; BATCH].join(",")
            ),
            // `Where::new("`id` > ?", …)`: beeorm passes the condition as written.
            search: format!("{select} WHERE (`id` > ?) LIMIT {BATCH} OFFSET 0"),
            search_10k: format!("{select} WHERE (`id` > ?) LIMIT {ROWS} OFFSET 0"),
            insert_1: format!("{insert}{}", value_rows(1, 5)),
            insert_100: format!("{insert}{}", value_rows(BATCH, 5)),
        }
    }
}

/// The `CREATE TABLE` beeorm generates for `table` on MySQL/MariaDB.
pub fn mysql_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE `{table}` (\n  `id` bigint unsigned NOT NULL AUTO_INCREMENT,\n  \
         `name` varchar(100) NOT NULL DEFAULT '',\n  `email` varchar(100) NOT NULL DEFAULT '',\n  \
         `age` int unsigned NOT NULL DEFAULT 0,\n  `score` double NOT NULL DEFAULT 0,\n  \
         `active` tinyint(1) NOT NULL DEFAULT 0,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    )
}

/// The `CREATE TABLE` beeorm generates for `table` on SQLite.
pub fn sqlite_ddl(table: &str) -> String {
    format!(
        "CREATE TABLE \"{table}\" (\n  \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n  \
         \"name\" VARCHAR(100) NOT NULL DEFAULT '',\n  \"email\" VARCHAR(100) NOT NULL DEFAULT '',\n  \
         \"age\" INT UNSIGNED NOT NULL DEFAULT 0,\n  \"score\" DOUBLE NOT NULL DEFAULT 0,\n  \
         \"active\" BOOLEAN NOT NULL DEFAULT 0\n)"
    )
}

/// The SQLite pragmas of beeorm's file pools that matter here.
pub const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";

/// The MariaDB server URL (`BEEORM_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`).
pub fn mysql_server_url() -> String {
    std::env::var("BEEORM_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// `mysql://user@host:3306/test?x=y` → the same URL on database `db`, plus `extra`
/// query options.
pub fn mysql_url_for(url: &str, db: &str, extra: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
    let query: Vec<&str> = [query, extra]
        .into_iter()
        .filter(|q| !q.is_empty())
        .collect();
    if query.is_empty() {
        format!("{server}/{db}")
    } else {
        format!("{server}/{db}?{}", query.join("&"))
    }
}

/// A criterion group `<dialect>/<op>`; the 10,000-row reads take 20 samples.
pub fn group<'c>(
    c: &'c mut Criterion,
    dialect: &str,
    op: &str,
) -> BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(format!("{dialect}/{op}"));
    if op == "search_10000" {
        g.sample_size(20);
    }
    g
}

/// The group type every bench function takes.
pub type Group<'c> = BenchmarkGroup<'c, criterion::measurement::WallTime>;
