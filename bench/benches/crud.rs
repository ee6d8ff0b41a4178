//! CRUD cost of beeorm next to the raw drivers (issue 3); sqlx and SeaORM run the same
//! benchmarks from the separate workspace `bench/peers` (they cannot be linked here: sqlx
//! 0.9 pins `libsqlite3-sys < 0.38` in the lock file even without its sqlite feature, and
//! rusqlite 0.40 links 0.38, both as `links = "sqlite3"`).
//!
//! Operations, each decoding rows into a plain 6-field struct
//! (`id u64, name String, email String, age u32, score f64, active bool`):
//!
//! - `insert_1`: one new row (autocommit);
//! - `insert_100`: 100 new rows in one statement (one flush);
//! - `load_by_id`: one row by primary key;
//! - `load_by_ids_100`: `WHERE id IN (…100 ids)`;
//! - `search_100`: `WHERE (id > ?) LIMIT 100`;
//! - `search_10000`: `WHERE (id > ?) LIMIT 10000` (20 samples).
//!
//! Reads go to `bench_rows`, filled with 10,000 rows before any benchmark and never
//! written afterwards; inserts go to `bench_inserts` (same columns), emptied before
//! every library's insert benchmark so each one starts from the same table.
//!
//! Libraries, one connection each, on a tokio `current_thread` runtime:
//!
//! - MariaDB (database `beeorm_bench_crud`, created here and dropped at the end, on the
//!   server of `BEEORM_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`):
//!   `beeorm` (`limit_connections=1`) and `mysql_async` (its own `Pool`,
//!   `PoolConstraints::new(1, 1)`, no reset on return, prepared `exec*` calls with the
//!   same SQL text as beeorm);
//! - SQLite (a temp file, WAL, `synchronous = NORMAL`): `beeorm` and `rusqlite` (a
//!   direct `Connection`, `prepare_cached`, the same SQL text as beeorm).
//!
//! Benchmark ids are `<dialect>/<operation>/<library>`, e.g. `mysql/load_by_id/beeorm`;
//! `bench/peers` adds `…/sqlx` and `…/sea_orm` to the same groups.
//!
//! ```text
//! cargo bench -p bench --bench crud -- --warm-up-time 1 --measurement-time 3
//! INTERLEAVE=1 cargo bench -p bench --bench crud    # ratios: ROUNDS=7 OPS=… DIALECTS=mysql,sqlite
//! cargo bench --manifest-path bench/peers/Cargo.toml --bench crud_peers -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(clippy::unwrap_used)]

#[path = "crud_common/mod.rs"]
mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use beeorm::{Engine, Pager, Registry, Tracked, Where};
use common::{fields, Sql, Walk, BATCH, OPS, ROWS};
use criterion::{criterion_group, Criterion};
use mysql_async::prelude::Queryable;
use tokio::runtime::Runtime;

const MYSQL_DATABASE: &str = "beeorm_bench_crud";

/// The beeorm entity of the read table.
#[derive(beeorm::Entity, Debug)]
#[orm(table = "bench_rows")]
struct Row {
    id: u64,
    #[orm(length = 100)]
    name: String,
    #[orm(length = 100)]
    email: String,
    age: u32,
    score: f64,
    active: bool,
}

/// The beeorm entity of the insert table (same columns).
#[derive(beeorm::Entity, Debug)]
#[orm(table = "bench_inserts")]
struct InsertRow {
    id: u64,
    #[orm(length = 100)]
    name: String,
    #[orm(length = 100)]
    email: String,
    age: u32,
    score: f64,
    active: bool,
}

/// What the raw drivers decode into.
#[derive(Debug)]
#[allow(dead_code)]
struct Plain {
    id: u64,
    name: String,
    email: String,
    age: u32,
    score: f64,
    active: bool,
}

impl mysql_async::prelude::FromRow for Plain {
    fn from_row_opt(row: mysql_async::Row) -> Result<Self, mysql_async::FromRowError> {
        let (id, name, email, age, score, active) = mysql_async::from_row_opt(row)?;
        Ok(Plain {
            id,
            name,
            email,
            age,
            score,
            active,
        })
    }
}

fn new_row(i: u64) -> InsertRow {
    let (name, email, age, score, active) = fields(i);
    InsertRow {
        id: 0,
        name,
        email,
        age,
        score,
        active,
    }
}

/// A new row for the raw drivers, built like the entities (`id` 0).
fn new_plain(i: u64) -> Plain {
    let (name, email, age, score, active) = fields(i);
    Plain {
        id: 0,
        name,
        email,
        age,
        score,
        active,
    }
}

// ---------------------------------------------------------------------------------
// beeorm, either dialect

/// Creates both tables through beeorm's schema sync, checking that beeorm's DDL is the
/// one `bench/peers` creates for sqlx and SeaORM.
async fn sync(engine: &Engine, ddl: fn(&str) -> String) {
    let alters = engine.alters().await.expect("alters");
    let mut created: Vec<&str> = alters.iter().map(|a| a.sql.as_str()).collect();
    created.sort_unstable();
    assert_eq!(
        created,
        [ddl("bench_inserts"), ddl("bench_rows")],
        "beeorm's DDL differs from crud_common's"
    );
    for a in alters.iter() {
        a.exec(engine)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", a.sql));
    }
}

/// Fills `bench_rows` with `ROWS` rows through beeorm, 1,000 per flush.
async fn fill(engine: &Engine) {
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(1_000) {
        let mut rows: Vec<Tracked<Row>> = chunk
            .iter()
            .map(|&i| {
                let (name, email, age, score, active) = fields(i);
                Tracked::new(Row {
                    id: 0,
                    name,
                    email,
                    age,
                    score,
                    active,
                })
            })
            .collect();
        let mut f = engine.flusher();
        for r in rows.iter_mut() {
            f.track(r);
        }
        f.flush().await.expect("fill");
    }
}

/// What one library needs to run an operation again: where the ID walk and the insert
/// serial stand.
#[derive(Default)]
struct Cursor {
    walk: Walk,
    serial: Cell<u64>,
}

impl Cursor {
    /// The first of `n` new serials.
    fn take(&self, n: u64) -> u64 {
        let first = self.serial.get();
        self.serial.set(first + n);
        first
    }
}

/// One operation of beeorm.
async fn beeorm_op(op: &str, engine: &Engine, at: &Cursor) {
    match op {
        "insert_1" => {
            let mut t = Tracked::new(new_row(at.take(1) + 1));
            engine.flush(&mut t).await.unwrap();
            black_box(t.id);
        }
        "insert_100" => {
            let first = at.take(BATCH as u64);
            let mut rows: Vec<Tracked<InsertRow>> = (1..=BATCH as u64)
                .map(|k| Tracked::new(new_row(first + k)))
                .collect();
            let mut f = engine.flusher();
            for t in rows.iter_mut() {
                f.track(t);
            }
            f.flush().await.unwrap();
            black_box(rows.last().map(|t| t.id));
        }
        "load_by_id" => {
            let row = engine
                .load_by_id::<Row>(at.walk.id())
                .await
                .unwrap()
                .unwrap();
            black_box(row);
        }
        "load_by_ids_100" => {
            let (rows, missing) = engine.load_by_ids::<Row>(&at.walk.ids()).await.unwrap();
            assert!(rows.len() == BATCH && missing.is_empty());
            black_box(rows);
        }
        "search_100" => {
            let w = Where::new("`id` > ?", at.walk.lower());
            let rows = engine
                .search::<Row>(&w, Pager::new(1, BATCH as u64))
                .await
                .unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows);
        }
        "search_10000" => {
            let w = Where::new("`id` > ?", 0u64);
            let rows = engine.search::<Row>(&w, Pager::new(1, ROWS)).await.unwrap();
            assert_eq!(rows.len() as u64, ROWS);
            black_box(rows);
        }
        _ => unreachable!("{op}"),
    }
}

// ---------------------------------------------------------------------------------
// MariaDB

/// Runs one admin statement on a fresh connection to the server of `url`.
async fn admin(url: &str, sql: &str) -> Result<(), mysql_async::Error> {
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(url)?).await?;
    let result = conn.query_drop(sql).await;
    conn.disconnect().await?;
    result
}

/// One operation of mysql_async.
async fn mysql_async_op(op: &str, pool: &mysql_async::Pool, sql: &Sql, at: &Cursor) {
    use mysql_async::Value as V;
    let mut conn = pool.get_conn().await.unwrap();
    match op {
        "insert_1" => {
            let p = new_plain(at.take(1) + 1);
            conn.exec_drop(
                sql.insert_1.as_str(),
                (p.name, p.email, p.age, p.score, p.active),
            )
            .await
            .unwrap();
            black_box(conn.last_insert_id());
        }
        "insert_100" => {
            let first = at.take(BATCH as u64);
            let rows: Vec<Plain> = (1..=BATCH as u64).map(|k| new_plain(first + k)).collect();
            let mut params = Vec::with_capacity(BATCH * 5);
            for p in rows {
                params.extend([
                    V::from(p.name),
                    V::from(p.email),
                    V::from(p.age),
                    V::from(p.score),
                    V::from(p.active),
                ]);
            }
            conn.exec_drop(sql.insert_100.as_str(), params)
                .await
                .unwrap();
            black_box(conn.last_insert_id());
        }
        "load_by_id" => {
            let row: Plain = conn
                .exec_first(sql.by_id.as_str(), (at.walk.id(),))
                .await
                .unwrap()
                .unwrap();
            black_box(row);
        }
        "load_by_ids_100" => {
            let params: Vec<V> = at.walk.ids().into_iter().map(V::from).collect();
            let rows: Vec<Plain> = conn.exec(sql.by_ids.as_str(), params).await.unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows);
        }
        "search_100" => {
            let rows: Vec<Plain> = conn
                .exec(sql.search.as_str(), (at.walk.lower(),))
                .await
                .unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows);
        }
        "search_10000" => {
            let rows: Vec<Plain> = conn.exec(sql.search_10k.as_str(), (0u64,)).await.unwrap();
            assert_eq!(rows.len() as u64, ROWS);
            black_box(rows);
        }
        _ => unreachable!("{op}"),
    }
}

/// The MariaDB side: a fresh database with both tables, beeorm on it and a raw pool.
struct MySqlSide {
    url: String,
    validated: beeorm::ValidatedRegistry,
    engine: Engine,
    pool: mysql_async::Pool,
    sql: Sql,
}

impl MySqlSide {
    fn open(rt: &Runtime) -> Option<Self> {
        let url = common::mysql_server_url();
        let create = async {
            admin(&url, &format!("DROP DATABASE IF EXISTS `{MYSQL_DATABASE}`")).await?;
            admin(
                &url,
                &format!("CREATE DATABASE `{MYSQL_DATABASE}` CHARACTER SET utf8mb4"),
            )
            .await
        };
        if let Err(e) = rt.block_on(create) {
            eprintln!("skipping the MariaDB benchmarks: {e}");
            return None;
        }
        let mut r = Registry::new();
        r.register_mysql_pool(
            "default",
            &common::mysql_url_for(&url, MYSQL_DATABASE, "limit_connections=1"),
        )
        .register_entity::<Row>()
        .register_entity::<InsertRow>();
        let validated = rt.block_on(r.validate()).expect("validate");
        let engine = validated.create_engine();
        rt.block_on(async {
            sync(&engine, common::mysql_ddl).await;
            fill(&engine).await;
        });
        let db_url = common::mysql_url_for(&url, MYSQL_DATABASE, "");
        let opts =
            mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&db_url).unwrap())
                .pool_opts(
                    mysql_async::PoolOpts::default()
                        .with_constraints(mysql_async::PoolConstraints::new(1, 1).unwrap())
                        .with_reset_connection(false),
                );
        Some(MySqlSide {
            url,
            validated,
            engine,
            pool: mysql_async::Pool::new(opts),
            sql: Sql::new(common::backtick),
        })
    }

    fn clear(&self, rt: &Runtime) {
        rt.block_on(async {
            let mut conn = self.pool.get_conn().await.unwrap();
            conn.query_drop("TRUNCATE TABLE `bench_inserts`")
                .await
                .unwrap();
        })
    }

    fn close(self, rt: &Runtime) {
        rt.block_on(async {
            self.validated.close().await;
            let _ = self.pool.disconnect().await;
            if let Err(e) = admin(&self.url, &format!("DROP DATABASE `{MYSQL_DATABASE}`")).await {
                eprintln!("could not drop `{MYSQL_DATABASE}`: {e}");
            }
        });
    }
}

fn mysql(c: &mut Criterion) {
    let rt = common::runtime();
    let Some(side) = MySqlSide::open(&rt) else {
        return;
    };
    for op in OPS {
        let mut g = common::group(c, "mysql", op);
        let insert = op.starts_with("insert");
        if insert {
            side.clear(&rt);
        }
        let at = Cursor::default();
        g.bench_function("beeorm", |b| {
            b.to_async(&rt).iter(|| beeorm_op(op, &side.engine, &at))
        });
        if insert {
            side.clear(&rt);
        }
        let at = Cursor::default();
        g.bench_function("mysql_async", |b| {
            b.to_async(&rt)
                .iter(|| mysql_async_op(op, &side.pool, &side.sql, &at))
        });
        g.finish();
    }
    side.close(&rt);
}

// ---------------------------------------------------------------------------------
// SQLite

/// One operation of rusqlite. It has no `u64` (SQLite integers are `i64`): IDs go in
/// and out as `i64`.
async fn rusqlite_op(op: &str, conn: &rusqlite::Connection, sql: &Sql, at: &Cursor) {
    fn plain(r: &rusqlite::Row<'_>) -> rusqlite::Result<Plain> {
        Ok(Plain {
            id: r.get::<_, i64>(0)? as u64,
            name: r.get(1)?,
            email: r.get(2)?,
            age: r.get(3)?,
            score: r.get(4)?,
            active: r.get(5)?,
        })
    }
    match op {
        "insert_1" => {
            let p = new_plain(at.take(1) + 1);
            let mut st = conn.prepare_cached(&sql.insert_1).unwrap();
            st.execute(rusqlite::params![p.name, p.email, p.age, p.score, p.active])
                .unwrap();
            black_box(conn.last_insert_rowid());
        }
        "insert_100" => {
            let first = at.take(BATCH as u64);
            let rows: Vec<Plain> = (1..=BATCH as u64).map(|k| new_plain(first + k)).collect();
            let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(BATCH * 5);
            for p in &rows {
                params.extend([
                    &p.name as &dyn rusqlite::ToSql,
                    &p.email,
                    &p.age,
                    &p.score,
                    &p.active,
                ]);
            }
            let mut st = conn.prepare_cached(&sql.insert_100).unwrap();
            st.execute(params.as_slice()).unwrap();
            black_box(conn.last_insert_rowid());
        }
        "load_by_id" => {
            let mut st = conn.prepare_cached(&sql.by_id).unwrap();
            let row = st.query_row([at.walk.id() as i64], plain).unwrap();
            black_box(row);
        }
        "load_by_ids_100" => {
            let mut st = conn.prepare_cached(&sql.by_ids).unwrap();
            let rows: Vec<Plain> = st
                .query_map(
                    rusqlite::params_from_iter(at.walk.ids().into_iter().map(|i| i as i64)),
                    plain,
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows);
        }
        "search_100" => {
            let mut st = conn.prepare_cached(&sql.search).unwrap();
            let rows: Vec<Plain> = st
                .query_map([at.walk.lower() as i64], plain)
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows);
        }
        "search_10000" => {
            let mut st = conn.prepare_cached(&sql.search_10k).unwrap();
            let rows: Vec<Plain> = st
                .query_map([0i64], plain)
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len() as u64, ROWS);
            black_box(rows);
        }
        _ => unreachable!("{op}"),
    }
}

/// The SQLite side: a temp file with both tables, beeorm on it and a rusqlite
/// connection.
struct SqliteSide {
    _dir: tempfile::TempDir,
    validated: beeorm::ValidatedRegistry,
    engine: Engine,
    conn: rusqlite::Connection,
    sql: Sql,
}

impl SqliteSide {
    fn open(rt: &Runtime) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("crud.db").to_string_lossy().into_owned();
        let mut r = Registry::new();
        r.register_sqlite_pool("default", &path)
            .register_entity::<Row>()
            .register_entity::<InsertRow>();
        let validated = rt.block_on(r.validate()).expect("validate");
        let engine = validated.create_engine();
        rt.block_on(async {
            sync(&engine, common::sqlite_ddl).await;
            fill(&engine).await;
        });
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(common::SQLITE_PRAGMAS).expect("pragmas");
        SqliteSide {
            _dir: dir,
            validated,
            engine,
            conn,
            sql: Sql::new(common::double_quote),
        }
    }

    fn clear(&self) {
        self.conn
            .execute_batch("DELETE FROM \"bench_inserts\"")
            .expect("clear");
    }

    fn close(self, rt: &Runtime) {
        drop(self.conn);
        rt.block_on(self.validated.close());
    }
}

fn sqlite(c: &mut Criterion) {
    let rt = common::runtime();
    let side = SqliteSide::open(&rt);
    for op in OPS {
        let mut g = common::group(c, "sqlite", op);
        let insert = op.starts_with("insert");
        if insert {
            side.clear();
        }
        let at = Cursor::default();
        g.bench_function("beeorm", |b| {
            b.to_async(&rt).iter(|| beeorm_op(op, &side.engine, &at))
        });
        if insert {
            side.clear();
        }
        let at = Cursor::default();
        g.bench_function("rusqlite", |b| {
            b.to_async(&rt)
                .iter(|| rusqlite_op(op, &side.conn, &side.sql, &at))
        });
        g.finish();
    }
    side.close(&rt);
}

// ---------------------------------------------------------------------------------
// Interleaved: the ratio to the raw driver, robustly

/// `INTERLEAVE=1`: beeorm and the raw driver take turns sample by sample
/// (`bench::interleave`), `ROUNDS` rounds (default 7); prints per dialect and
/// operation both medians and the median ratio with its range over the rounds.
fn interleaved() {
    use bench::interleave::{self, Case, Plan};
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let plan = Plan {
        rounds,
        samples: 5,
        sample_time: Duration::from_millis(30),
    };
    let rt = common::runtime();
    let timed = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>| {
        rt.block_on(async {
            let start = std::time::Instant::now();
            f.await;
            start.elapsed()
        })
    };
    let only: Vec<String> = std::env::var("OPS")
        .map(|o| o.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let ops: Vec<&str> = OPS
        .into_iter()
        .filter(|op| only.is_empty() || only.iter().any(|o| o == op))
        .collect();
    println!("| dialect | operation | beeorm µs | raw µs | beeorm ÷ raw (median) | range over {rounds} rounds |");
    println!("|---|---|---:|---:|---:|---:|");
    let report = |dialect: &str, op: &str, figures: &[interleave::Figure]| {
        let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
        let mut ratios: Vec<f64> = figures[0]
            .rounds
            .iter()
            .zip(&figures[1].rounds)
            .map(|(b, r)| b.as_secs_f64() / r.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "| {dialect} | {op} | {:.1} | {:.1} | {:.3} | {:.3}–{:.3} |",
            us(figures[0].median()),
            us(figures[1].median()),
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    };
    let dialects = std::env::var("DIALECTS").unwrap_or_else(|_| "mysql,sqlite".into());
    if dialects.contains("sqlite") {
        let side = SqliteSide::open(&rt);
        for &op in &ops {
            side.clear();
            let (a, b) = (Cursor::default(), Cursor::default());
            let mut cases = [
                Case {
                    library: "beeorm",
                    op: Box::new(|| timed(Box::pin(beeorm_op(op, &side.engine, &a)))),
                },
                Case {
                    library: "rusqlite",
                    op: Box::new(|| timed(Box::pin(rusqlite_op(op, &side.conn, &side.sql, &b)))),
                },
            ];
            report("sqlite", op, &interleave::run(plan, &mut cases));
        }
        side.close(&rt);
    }
    if dialects.contains("mysql") {
        if let Some(side) = MySqlSide::open(&rt) {
            for &op in &ops {
                side.clear(&rt);
                let (a, b) = (Cursor::default(), Cursor::default());
                let mut cases = [
                    Case {
                        library: "beeorm",
                        op: Box::new(|| timed(Box::pin(beeorm_op(op, &side.engine, &a)))),
                    },
                    Case {
                        library: "mysql_async",
                        op: Box::new(|| {
                            timed(Box::pin(mysql_async_op(op, &side.pool, &side.sql, &b)))
                        }),
                    },
                ];
                report("mysql", op, &interleave::run(plan, &mut cases));
            }
            side.close(&rt);
        }
    }
}

mod group {
    //! The criterion group (in a private module: the macro makes a `pub fn`).
    use super::*;

    fn config() -> Criterion {
        Criterion::default().warm_up_time(Duration::from_secs(1))
    }

    criterion_group! {
        name = benches;
        config = config();
        targets = mysql, sqlite
    }
}
fn main() {
    if std::env::var_os("INTERLEAVE").is_some() {
        interleaved();
        return;
    }
    group::benches();
    Criterion::default().configure_from_args().final_summary();
}
