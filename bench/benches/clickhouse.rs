//! ClickHouse through beeorm vs the `clickhouse` crate alone (issue 14), same run,
//! same data, same table shape `(id UInt64, name String, age Int32, created DateTime)`,
//! same crate settings and transport (the crate's client is beeorm's own, from
//! `ClickHouse::client`: validation off, no compression, the same keep-alive pool):
//!
//! - `clickhouse/insert_100k/{beeorm,crate}`: one batch insert of 100,000 rows into an
//!   emptied MergeTree table (the TRUNCATE before each insert is not timed). beeorm adds
//!   its row-type check (the table's description is cached after the first insert;
//!   the row shape is probed once per type);
//! - `clickhouse/select_100k/{beeorm,crate}`: `SELECT ?fields FROM … ORDER BY id` of the
//!   same 100,000 rows decoded into a `Vec` (beeorm checks the result's columns, cached
//!   per query text after the first read).
//!
//! The server is `BEEORM_CLICKHOUSE_URL` (default `http://default@127.0.0.1:8123/default`,
//! started by scripts/services); tables `beeorm_bench_ch_*`, dropped at the end. Skipped
//! with a message when the server does not answer.
//!
//! ```text
//! cargo bench -p bench --bench clickhouse -- --warm-up-time 1 --measurement-time 3 --noplot
//! ```

use std::time::{Duration, Instant};

use beeorm::clickhouse;
use beeorm::Registry;
use criterion::{criterion_group, criterion_main, Criterion};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

const ROWS: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    age: i32,
    created: u32,
}

fn users() -> Vec<User> {
    (0..ROWS)
        .map(|i| User {
            id: i,
            name: format!("user'{i}\\x"),
            age: (i % 90) as i32,
            created: 1_700_000_000 + i as u32,
        })
        .collect()
}

const COLUMNS: &str =
    "(id UInt64, name String, age Int32, created DateTime) ENGINE = MergeTree ORDER BY id";

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let url = std::env::var("BEEORM_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://default@127.0.0.1:8123/default".into());
    let ch = rt.block_on(async {
        let mut r = Registry::new();
        r.register_clickhouse_pool("bench", &url);
        let engine = r.validate().await.expect("registry").create_engine();
        engine.clickhouse("bench").expect("pool")
    });
    if let Err(e) = rt.block_on(ch.exec("SELECT 1")) {
        eprintln!("clickhouse bench skipped: {e}");
        return;
    }
    // The bare crate, configured as beeorm configures it.
    let raw = ch.client().clone();
    let rows = users();
    let (t_beeorm, t_crate, t_src) = (
        "beeorm_bench_ch_ins_beeorm",
        "beeorm_bench_ch_ins_crate",
        "beeorm_bench_ch_src",
    );
    rt.block_on(async {
        for t in [t_beeorm, t_crate, t_src] {
            ch.exec(&format!("DROP TABLE IF EXISTS {t}"))
                .await
                .expect("drop");
            ch.exec(&format!("CREATE TABLE {t} {COLUMNS}"))
                .await
                .expect("create");
        }
        ch.insert(t_src, &rows).await.expect("fill");
    });

    let mut g = c.benchmark_group("clickhouse/insert_100k");
    g.sample_size(10);
    g.bench_function("beeorm", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    ch.exec(&format!("TRUNCATE TABLE {t_beeorm}"))
                        .await
                        .expect("truncate");
                    let start = Instant::now();
                    let n = ch.insert(t_beeorm, &rows).await.expect("insert");
                    total += start.elapsed();
                    assert_eq!(n, ROWS);
                }
                total
            })
        })
    });
    g.bench_function("crate", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    ch.exec(&format!("TRUNCATE TABLE {t_crate}"))
                        .await
                        .expect("truncate");
                    let start = Instant::now();
                    let mut ins = raw.insert::<User>(t_crate).await.expect("insert");
                    for row in &rows {
                        ins.write(row).await.expect("write");
                    }
                    ins.end().await.expect("end");
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.finish();

    let select = format!("SELECT ?fields FROM {t_src} ORDER BY id");
    let mut g = c.benchmark_group("clickhouse/select_100k");
    g.sample_size(10);
    g.bench_function("beeorm", |b| {
        b.iter(|| {
            rt.block_on(async {
                let v: Vec<User> = ch.query(&select).fetch_all().await.expect("select");
                assert_eq!(v.len() as u64, ROWS);
                v
            })
        })
    });
    g.bench_function("crate", |b| {
        b.iter(|| {
            rt.block_on(async {
                let v: Vec<User> = raw.query(&select).fetch_all().await.expect("select");
                assert_eq!(v.len() as u64, ROWS);
                v
            })
        })
    });
    g.finish();

    rt.block_on(async {
        for t in [t_beeorm, t_crate, t_src] {
            let _ = ch.exec(&format!("DROP TABLE IF EXISTS {t}")).await;
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
