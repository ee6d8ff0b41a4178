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
//! cargo bench --manifest-path bench/peers/Cargo.toml --bench crud_peers -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(clippy::unwrap_used)]

#[path = "crud_common/mod.rs"]
mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use beeorm::{Engine, Pager, Registry, Tracked, Where};
use common::{fields, Group, Sql, Walk, BATCH, OPS, ROWS};
use criterion::{criterion_group, criterion_main, Criterion};
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

fn bench_beeorm(g: &mut Group<'_>, rt: &Runtime, op: &str, engine: &Engine) {
    let walk = Walk::new();
    let serial = Cell::new(0u64);
    g.bench_function("beeorm", |b| match op {
        "insert_1" => b.to_async(rt).iter(|| async {
            serial.set(serial.get() + 1);
            let mut t = Tracked::new(new_row(serial.get()));
            engine.flush(&mut t).await.unwrap();
            black_box(t.id)
        }),
        "insert_100" => b.to_async(rt).iter(|| async {
            let first = serial.get();
            serial.set(first + BATCH as u64);
            let mut rows: Vec<Tracked<InsertRow>> = (1..=BATCH as u64)
                .map(|k| Tracked::new(new_row(first + k)))
                .collect();
            let mut f = engine.flusher();
            for t in rows.iter_mut() {
                f.track(t);
            }
            f.flush().await.unwrap();
            black_box(rows.last().map(|t| t.id))
        }),
        "load_by_id" => b.to_async(rt).iter(|| async {
            let row = engine.load_by_id::<Row>(walk.id()).await.unwrap().unwrap();
            black_box(row)
        }),
        "load_by_ids_100" => b.to_async(rt).iter(|| async {
            let (rows, missing) = engine.load_by_ids::<Row>(&walk.ids()).await.unwrap();
            assert!(rows.len() == BATCH && missing.is_empty());
            black_box(rows)
        }),
        "search_100" => b.to_async(rt).iter(|| async {
            let w = Where::new("`id` > ?", walk.lower());
            let rows = engine
                .search::<Row>(&w, Pager::new(1, BATCH as u64))
                .await
                .unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows)
        }),
        "search_10000" => b.to_async(rt).iter(|| async {
            let w = Where::new("`id` > ?", 0u64);
            let rows = engine.search::<Row>(&w, Pager::new(1, ROWS)).await.unwrap();
            assert_eq!(rows.len() as u64, ROWS);
            black_box(rows)
        }),
        _ => unreachable!("{op}"),
    });
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

fn bench_mysql_async(
    g: &mut Group<'_>,
    rt: &Runtime,
    op: &str,
    pool: &mysql_async::Pool,
    sql: &Sql,
) {
    use mysql_async::Value as V;
    let walk = Walk::new();
    let serial = Cell::new(0u64);
    g.bench_function("mysql_async", |b| match op {
        "insert_1" => b.to_async(rt).iter(|| async {
            serial.set(serial.get() + 1);
            let p = new_plain(serial.get());
            let mut conn = pool.get_conn().await.unwrap();
            conn.exec_drop(
                sql.insert_1.as_str(),
                (p.name, p.email, p.age, p.score, p.active),
            )
            .await
            .unwrap();
            black_box(conn.last_insert_id())
        }),
        "insert_100" => b.to_async(rt).iter(|| async {
            let first = serial.get();
            serial.set(first + BATCH as u64);
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
            let mut conn = pool.get_conn().await.unwrap();
            conn.exec_drop(sql.insert_100.as_str(), params)
                .await
                .unwrap();
            black_box(conn.last_insert_id())
        }),
        "load_by_id" => b.to_async(rt).iter(|| async {
            let mut conn = pool.get_conn().await.unwrap();
            let row: Plain = conn
                .exec_first(sql.by_id.as_str(), (walk.id(),))
                .await
                .unwrap()
                .unwrap();
            black_box(row)
        }),
        "load_by_ids_100" => b.to_async(rt).iter(|| async {
            let params: Vec<V> = walk.ids().into_iter().map(V::from).collect();
            let mut conn = pool.get_conn().await.unwrap();
            let rows: Vec<Plain> = conn.exec(sql.by_ids.as_str(), params).await.unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows)
        }),
        "search_100" => b.to_async(rt).iter(|| async {
            let mut conn = pool.get_conn().await.unwrap();
            let rows: Vec<Plain> = conn
                .exec(sql.search.as_str(), (walk.lower(),))
                .await
                .unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows)
        }),
        "search_10000" => b.to_async(rt).iter(|| async {
            let mut conn = pool.get_conn().await.unwrap();
            let rows: Vec<Plain> = conn.exec(sql.search_10k.as_str(), (0u64,)).await.unwrap();
            assert_eq!(rows.len() as u64, ROWS);
            black_box(rows)
        }),
        _ => unreachable!("{op}"),
    });
}

fn mysql(c: &mut Criterion) {
    let rt = common::runtime();
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
        return;
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
    let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&db_url).unwrap())
        .pool_opts(
            mysql_async::PoolOpts::default()
                .with_constraints(mysql_async::PoolConstraints::new(1, 1).unwrap())
                .with_reset_connection(false),
        );
    let pool = mysql_async::Pool::new(opts);

    let sql = Sql::new(common::backtick);
    let clear = || {
        rt.block_on(async {
            let mut conn = pool.get_conn().await.unwrap();
            conn.query_drop("TRUNCATE TABLE `bench_inserts`")
                .await
                .unwrap();
        })
    };
    for op in OPS {
        let mut g = common::group(c, "mysql", op);
        let insert = op.starts_with("insert");
        if insert {
            clear();
        }
        bench_beeorm(&mut g, &rt, op, &engine);
        if insert {
            clear();
        }
        bench_mysql_async(&mut g, &rt, op, &pool, &sql);
        g.finish();
    }

    rt.block_on(async {
        validated.close().await;
        let _ = pool.disconnect().await;
        if let Err(e) = admin(&url, &format!("DROP DATABASE `{MYSQL_DATABASE}`")).await {
            eprintln!("could not drop `{MYSQL_DATABASE}`: {e}");
        }
    });
}

// ---------------------------------------------------------------------------------
// SQLite

/// rusqlite has no `u64` (SQLite integers are `i64`): IDs go in and out as `i64`.
fn bench_rusqlite(
    g: &mut Group<'_>,
    rt: &Runtime,
    op: &str,
    conn: &rusqlite::Connection,
    sql: &Sql,
) {
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
    let walk = Walk::new();
    let serial = Cell::new(0u64);
    g.bench_function("rusqlite", |b| match op {
        "insert_1" => b.to_async(rt).iter(|| async {
            serial.set(serial.get() + 1);
            let p = new_plain(serial.get());
            let mut st = conn.prepare_cached(&sql.insert_1).unwrap();
            st.execute(rusqlite::params![p.name, p.email, p.age, p.score, p.active])
                .unwrap();
            black_box(conn.last_insert_rowid())
        }),
        "insert_100" => b.to_async(rt).iter(|| async {
            let first = serial.get();
            serial.set(first + BATCH as u64);
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
            black_box(conn.last_insert_rowid())
        }),
        "load_by_id" => b.to_async(rt).iter(|| async {
            let mut st = conn.prepare_cached(&sql.by_id).unwrap();
            let row = st.query_row([walk.id() as i64], plain).unwrap();
            black_box(row)
        }),
        "load_by_ids_100" => b.to_async(rt).iter(|| async {
            let mut st = conn.prepare_cached(&sql.by_ids).unwrap();
            let rows: Vec<Plain> = st
                .query_map(
                    rusqlite::params_from_iter(walk.ids().into_iter().map(|i| i as i64)),
                    plain,
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows)
        }),
        "search_100" => b.to_async(rt).iter(|| async {
            let mut st = conn.prepare_cached(&sql.search).unwrap();
            let rows: Vec<Plain> = st
                .query_map([walk.lower() as i64], plain)
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len(), BATCH);
            black_box(rows)
        }),
        "search_10000" => b.to_async(rt).iter(|| async {
            let mut st = conn.prepare_cached(&sql.search_10k).unwrap();
            let rows: Vec<Plain> = st
                .query_map([0i64], plain)
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len() as u64, ROWS);
            black_box(rows)
        }),
        _ => unreachable!("{op}"),
    });
}

fn sqlite(c: &mut Criterion) {
    let rt = common::runtime();
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
    let sql = Sql::new(common::double_quote);
    let clear = || {
        conn.execute_batch("DELETE FROM \"bench_inserts\"")
            .expect("clear");
    };
    for op in OPS {
        let mut g = common::group(c, "sqlite", op);
        let insert = op.starts_with("insert");
        if insert {
            clear();
        }
        bench_beeorm(&mut g, &rt, op, &engine);
        if insert {
            clear();
        }
        bench_rusqlite(&mut g, &rt, op, &conn, &sql);
        g.finish();
    }
    drop(conn);
    rt.block_on(validated.close());
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
criterion_main!(group::benches);
