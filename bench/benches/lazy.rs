//! The lazy flush end to end (issue 13, item 8), next to a direct flush of the same
//! rows, in rows/s:
//!
//! - `<dialect>/lazy_1000/direct`: `flush` of 1,000 new rows (explicit IDs), one
//!   multi-row INSERT in one transaction;
//! - `<dialect>/lazy_1000/lazy`: `flush_lazy` of the same 1,000 rows (one atomic XADD
//!   pipeline) plus `LazyConsumer::drain` of one long-lived applier (lease taken and
//!   given back per drain) applying them (batches of 500: per batch one
//!   transaction with a dedup check, the INSERT and the applied-entry records, then
//!   XACK + XDEL);
//! - `<dialect>/lazy_1000/publish`: `flush_lazy` alone, what the caller waits for.
//!
//! MariaDB (a database `beeorm_bench_lazy` on the server of `BEEORM_MYSQL_URL`) and
//! SQLite in a temp file (WAL), with the Redis of `BEEORM_REDIS_URL` (db 15, namespace
//! `beeorm-bench-lazy`). The rows are the 6-field row of the CRUD benchmark; every
//! iteration writes new IDs.
//!
//! ```text
//! cargo bench -p bench --bench lazy -- --warm-up-time 1 --measurement-time 5
//! ```
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::time::{Duration, Instant};

use beeorm::redis::driver;
use beeorm::{Engine, Registry, Tracked};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "crud_common/mod.rs"]
mod common;

const N: u64 = 1_000;
const DB: u32 = 15;
const MYSQL_DATABASE: &str = "beeorm_bench_lazy";

#[derive(beeorm::Entity, Debug, Clone)]
#[orm(table = "bench_lazy")]
struct LazyRow {
    id: u64,
    #[orm(length = 100)]
    name: String,
    #[orm(length = 100)]
    email: String,
    age: u32,
    score: f64,
    active: bool,
}

fn redis_url() -> String {
    std::env::var("BEEORM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `N` new rows with IDs from `next`.
fn rows(next: &Cell<u64>) -> Vec<Tracked<LazyRow>> {
    let start = next.get();
    next.set(start + N);
    (start..start + N)
        .map(|i| {
            let (name, email, age, score, active) = common::fields(i);
            Tracked::new(LazyRow {
                id: i,
                name,
                email,
                age,
                score,
                active,
            })
        })
        .collect()
}

async fn prepare(r: &mut Registry) -> Engine {
    r.register_redis_pool("default", &redis_url(), DB)
        .set_cache_namespace("beeorm-bench-lazy")
        .enable_lazy_flush("default")
        .register_entity::<LazyRow>();
    let redis_only = {
        let mut r = Registry::new();
        r.register_redis_pool("default", &redis_url(), DB);
        r.validate().await.unwrap().create_engine()
    };
    // A fresh stream (and group, created by validate).
    redis_only
        .redis("default")
        .unwrap()
        .del(vec![
            "{beeorm-bench-lazy:lazy}",
            "{beeorm-bench-lazy:lazy}:dead",
        ])
        .await
        .unwrap();
    let engine = r.validate().await.unwrap().create_engine();
    for a in engine.alters().await.unwrap() {
        a.exec(&engine).await.unwrap();
    }
    engine
}

fn run(c: &mut Criterion, dialect: &str, engine: &Engine, rt: &tokio::runtime::Runtime) {
    let next = Cell::new(1);
    // One long-lived applier, as a worker process holds one.
    let applier = engine.lazy_consumer().unwrap();
    let mut g = c.benchmark_group(format!("{dialect}/lazy_1000"));
    g.throughput(Throughput::Elements(N));
    g.sample_size(20);
    g.bench_function("direct", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut batch = rows(&next);
                total += rt.block_on(async {
                    let start = Instant::now();
                    engine
                        .flusher()
                        .track_all(&mut batch)
                        .flush()
                        .await
                        .unwrap();
                    start.elapsed()
                });
            }
            total
        })
    });
    g.bench_function("lazy", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut batch = rows(&next);
                total += rt.block_on(async {
                    let start = Instant::now();
                    engine
                        .flusher()
                        .track_all(&mut batch)
                        .flush_lazy()
                        .await
                        .unwrap();
                    let applied = applier.drain().await.unwrap();
                    assert_eq!(applied, N);
                    start.elapsed()
                });
            }
            total
        })
    });
    g.bench_function("publish", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut batch = rows(&next);
                total += rt.block_on(async {
                    let start = Instant::now();
                    engine
                        .flusher()
                        .track_all(&mut batch)
                        .flush_lazy()
                        .await
                        .unwrap();
                    let took = start.elapsed();
                    // Applied outside the measurement, so the stream stays short.
                    applier.drain().await.unwrap();
                    took
                });
            }
            total
        })
    });
    g.finish();
    let dead: u64 = rt
        .block_on(
            engine
                .redis("default")
                .unwrap()
                .query(driver::cmd("XLEN").arg("{beeorm-bench-lazy:lazy}:dead")),
        )
        .unwrap();
    assert_eq!(dead, 0, "no lazy write was dead-lettered");
}

async fn admin(sql: &str) -> beeorm::Result<()> {
    let mut r = Registry::new();
    r.register_mysql_pool("admin", &common::mysql_server_url());
    let v = r.validate().await?;
    v.create_engine().db("admin")?.execute(sql, vec![]).await?;
    v.close().await;
    Ok(())
}

fn mysql(c: &mut Criterion) {
    let rt = common::runtime();
    let create = async {
        admin(&format!("DROP DATABASE IF EXISTS `{MYSQL_DATABASE}`")).await?;
        admin(&format!(
            "CREATE DATABASE `{MYSQL_DATABASE}` CHARACTER SET utf8mb4"
        ))
        .await
    };
    if let Err(e) = rt.block_on(create) {
        eprintln!("skipping the MariaDB lazy benchmark: {e}");
        return;
    }
    let mut r = Registry::new();
    r.register_mysql_pool(
        "default",
        &common::mysql_url_for(&common::mysql_server_url(), MYSQL_DATABASE, ""),
    );
    let engine = rt.block_on(prepare(&mut r));
    run(c, "mysql", &engine, &rt);
}

fn sqlite(c: &mut Criterion) {
    let rt = common::runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut r = Registry::new();
    r.register_sqlite_pool("default", &dir.path().join("lazy.db").to_string_lossy());
    let engine = rt.block_on(prepare(&mut r));
    run(c, "sqlite", &engine, &rt);
}

criterion_group!(benches, mysql, sqlite);
criterion_main!(benches);
