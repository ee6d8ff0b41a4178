//! Entity caches (issue 12, item 12), next to what they wrap, in one run:
//!
//! - `cache/local_hit/{beeorm,moka}`: `load_by_id` of a row hot in the local layer vs a
//!   raw `moka::sync::Cache::get` of the same entity (an `Arc`, cloned out);
//! - `cache/redis_hit/{beeorm,redis_get}`: `load_by_id` of a row hot in Redis (a
//!   `redis_cache`-only entity) vs one raw redis-rs `GET` of a value of the same size;
//! - `cache/redis_hit_100/{beeorm,redis_mget}`: `load_by_ids` of 100 such rows vs one
//!   raw `MGET` of 100 keys;
//! - `cache/miss/beeorm`: a read whose key was just deleted (one Redis script call, one
//!   SQL query, one fill script — counted from `INFO commandstats` at the end), next to
//!   `cache/uncached/beeorm` (the same row of an uncached entity: one SQL query).
//!
//! SQLite in a temp file (WAL) and the Redis of `BEEORM_REDIS_URL` (default
//! `redis://127.0.0.1:6379`, db 15, namespace `beeorm-bench`). Rows are the 6-field row
//! of the CRUD benchmark.
//!
//! ```text
//! cargo bench -p bench --bench cache -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use beeorm::redis::driver::{self, AsyncCommands};
use beeorm::{Engine, Registry, Tracked};
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;

const ROWS: u64 = 1_000;
const DB: u32 = 15;

macro_rules! row_entity {
    ($name:ident, $table:literal, $($attr:tt)*) => {
        #[derive(beeorm::Entity, Debug, Clone)]
        #[orm(table = $table)]
        $($attr)*
        struct $name {
            id: u64,
            #[orm(length = 100)]
            name: String,
            #[orm(length = 100)]
            email: String,
            age: u32,
            score: f64,
            active: bool,
        }
    };
}

row_entity!(LocalRow, "bench_cache_local", #[orm(local_cache)]);
row_entity!(RedisRow, "bench_cache_redis", #[orm(redis_cache)]);
row_entity!(PlainRow, "bench_cache_plain",);

fn redis_url() -> String {
    std::env::var("BEEORM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn setup(dir: &std::path::Path) -> Engine {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", &dir.join("cache.db").to_string_lossy())
        .register_redis_pool("default", &redis_url(), DB)
        .register_local_cache("default", 100_000)
        .set_cache_namespace("beeorm-bench")
        .register_entity::<LocalRow>()
        .register_entity::<RedisRow>()
        .register_entity::<PlainRow>();
    let engine = r.validate().await.unwrap().create_engine();
    for a in engine.alters().await.unwrap() {
        a.exec(&engine).await.unwrap();
    }
    let redis = engine.redis("default").unwrap();
    let _: () = redis.query(&driver::cmd("FLUSHDB")).await.unwrap();
    macro_rules! fill {
        ($t:ident) => {{
            let mut rows: Vec<Tracked<$t>> = (1..=ROWS)
                .map(|i| {
                    Tracked::new($t {
                        id: i,
                        name: format!("name {i}"),
                        email: format!("user{i}@example.com"),
                        age: (i % 90) as u32,
                        score: i as f64 * 1.5,
                        active: i % 2 == 0,
                    })
                })
                .collect();
            let mut f = engine.flusher();
            for r in rows.iter_mut() {
                f = f.track(r);
            }
            f.flush().await.unwrap();
        }};
    }
    fill!(LocalRow);
    fill!(RedisRow);
    fill!(PlainRow);
    // Wait for the local layer's channel.
    for _ in 0..500 {
        if engine.cache_stats().local_serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine
}

fn commandstats(rt: &Runtime, redis: &driver::aio::ConnectionManager) -> String {
    let mut c = redis.clone();
    rt.block_on(async move {
        driver::cmd("INFO")
            .arg("commandstats")
            .query_async::<String>(&mut c)
            .await
            .unwrap()
    })
}

fn calls(stats: &str, command: &str) -> u64 {
    stats
        .lines()
        .find(|l| l.starts_with(&format!("cmdstat_{command}:")))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = rt.block_on(setup(dir.path()));
    let client = driver::Client::open(format!("{}/{DB}", redis_url())).unwrap();
    let raw = rt
        .block_on(driver::aio::ConnectionManager::new(client))
        .unwrap();

    // Local hit vs a raw moka get.
    let mut g = c.benchmark_group("cache/local_hit");
    rt.block_on(engine.load_by_id::<LocalRow>(7))
        .unwrap()
        .unwrap();
    g.bench_function("beeorm", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(engine.load_by_id::<LocalRow>(7).await.unwrap()) })
    });
    let moka: moka::sync::Cache<(u32, u64), Arc<LocalRow>> = moka::sync::Cache::new(100_000);
    let row = rt.block_on(engine.find::<LocalRow>(7)).unwrap();
    moka.insert((0, 7), Arc::new((*row).clone()));
    g.bench_function("moka", |b| {
        b.iter(|| black_box(moka.get(&(0, 7)).map(|r| (*r).clone())))
    });
    g.finish();

    // Redis hit vs one raw GET.
    let mut g = c.benchmark_group("cache/redis_hit");
    rt.block_on(engine.load_by_id::<RedisRow>(7))
        .unwrap()
        .unwrap();
    g.bench_function("beeorm", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(engine.load_by_id::<RedisRow>(7).await.unwrap()) })
    });
    let value = vec![b'x'; 80];
    rt.block_on(async {
        let mut c = raw.clone();
        let _: () = c.set("beeorm-bench-raw:7", &value).await.unwrap();
        for i in 0..100 {
            let _: () = c
                .set(format!("beeorm-bench-raw:{i}"), &value)
                .await
                .unwrap();
        }
    });
    g.bench_function("redis_get", |b| {
        b.to_async(&rt).iter(|| async {
            let mut c = raw.clone();
            let v: Option<Vec<u8>> = c.get("beeorm-bench-raw:7").await.unwrap();
            black_box(v)
        })
    });
    g.finish();

    // 100 rows hot in Redis vs one MGET.
    let mut g = c.benchmark_group("cache/redis_hit_100");
    let ids: Vec<u64> = (1..=100).collect();
    rt.block_on(engine.load_by_ids::<RedisRow>(&ids)).unwrap();
    g.bench_function("beeorm", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(engine.load_by_ids::<RedisRow>(&ids).await.unwrap()) })
    });
    let keys: Vec<String> = (0..100).map(|i| format!("beeorm-bench-raw:{i}")).collect();
    g.bench_function("redis_mget", |b| {
        b.to_async(&rt).iter(|| async {
            let mut c = raw.clone();
            let v: Vec<Option<Vec<u8>>> = c.mget(&keys).await.unwrap();
            black_box(v)
        })
    });
    g.finish();

    // A miss (the key deleted before each read) vs an uncached read.
    let mut g = c.benchmark_group("cache/miss");
    let key = "beeorm-bench:e:{default.bench_cache_redis}:9";
    let before = commandstats(&rt, &raw);
    let mut misses = 0u64;
    g.bench_function("beeorm", |b| {
        b.to_async(&rt).iter(|| {
            misses += 1;
            async {
                let mut c = raw.clone();
                let _: () = c.del(key).await.unwrap();
                black_box(engine.load_by_id::<RedisRow>(9).await.unwrap())
            }
        })
    });
    let after = commandstats(&rt, &raw);
    g.bench_function("uncached", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(engine.load_by_id::<PlainRow>(9).await.unwrap()) })
    });
    g.finish();
    let evals = calls(&after, "evalsha") + calls(&after, "eval")
        - calls(&before, "evalsha")
        - calls(&before, "eval");
    println!(
        "cache/miss: {misses} misses, {evals} script calls ({:.2} per miss: lookup + fill), \
         database loads {}",
        evals as f64 / misses.max(1) as f64,
        engine
            .cache_stats()
            .entity("RedisRow")
            .map_or(0, |s| s.database_loads)
    );
    let stats = engine.cache_stats();
    for e in &stats.entities {
        println!(
            "stats {}: local {:?}, redis {:?}, database loads {}",
            e.entity, e.local, e.redis, e.database_loads
        );
    }
    rt.block_on(async {
        let mut c = raw.clone();
        let _: () = driver::cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    });
}

criterion_group! {
    name = group;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(group);
