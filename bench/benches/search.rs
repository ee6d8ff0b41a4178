//! Full-text search (issue 14, item 6) on both engines, same rows, same queries:
//!
//! - `search/<engine>/reindex_10000`: `Engine::reindex` of 10,000 rows (read from
//!   SQLite in batches of 1,000, written to the index), in rows/s;
//! - `search/<engine>/flush_1000`: a flush of 1,000 new rows, index sync included
//!   (`search/none/flush_1000` is the same rows into a table with no index: the
//!   difference is what sync costs);
//! - `search/<engine>/query_ids`: a 2-word query with a numeric range, a sort and a
//!   page of 20 → IDs and total;
//! - `search/<engine>/query_entities`: the same, then the 20 entities through the read
//!   path (no entity cache: one SQLite `IN` query).
//!
//! Engines: tantivy in a temp directory, and RediSearch on `BEEORM_SEARCH_REDIS_URL`
//! (default `redis://127.0.0.1:6391`; skipped when it does not answer). Rows: 3 text
//! fields of 4–12 words from a 500-word vocabulary, a number, a tag.
//!
//! ```text
//! cargo bench -p bench --bench search -- --warm-up-time 1 --measurement-time 5
//! ```
#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::time::{Duration, Instant};

use beeorm::search::{SearchQuery, SortOrder};
use beeorm::{Engine, Pager, Registry, Tracked};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "crud_common/mod.rs"]
mod common;

const ROWS: u64 = 10_000;
const BATCH: u64 = 1_000;

#[derive(beeorm::Entity, Debug, Clone)]
#[orm(table = "bench_docs", search)]
struct Doc {
    id: u64,
    #[orm(searchable)]
    title: String,
    #[orm(searchable)]
    summary: String,
    #[orm(searchable)]
    body: String,
    #[orm(searchable, sortable)]
    rank: u32,
    #[orm(searchable = "tag")]
    lang: String,
}

/// The same row shape, not indexed.
#[derive(beeorm::Entity, Debug, Clone)]
#[orm(table = "bench_plain_docs")]
struct PlainDoc {
    id: u64,
    title: String,
    summary: String,
    body: String,
    rank: u32,
    lang: String,
}

/// A deterministic word `n` of a 500-word vocabulary.
fn word(n: u64) -> String {
    const SYL: [&str; 10] = ["ka", "lo", "mi", "ru", "te", "sa", "no", "vi", "de", "po"];
    let n = n % 500;
    format!(
        "{}{}{}",
        SYL[(n % 10) as usize],
        SYL[(n / 10 % 10) as usize],
        SYL[(n / 100) as usize]
    )
}

/// `len` words for row `i`, field `f` (a cheap LCG, so runs are identical).
fn text(i: u64, f: u64, len: u64) -> String {
    let mut x = i
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(f * 1_442_695_040_888_963_407);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            // Skewed: low word numbers are common.
            word((x >> 33) % 500 * ((x >> 20) % 500) / 500)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn fields(i: u64) -> (String, String, String, u32, String) {
    (
        text(i, 1, 4),
        text(i, 2, 8),
        text(i, 3, 12),
        (i % 1000) as u32,
        ["en", "fa", "de", "fr"][(i % 4) as usize].to_string(),
    )
}

fn doc(i: u64) -> Tracked<Doc> {
    let (title, summary, body, rank, lang) = fields(i);
    Tracked::new(Doc {
        id: i,
        title,
        summary,
        body,
        rank,
        lang,
    })
}

fn plain(i: u64) -> Tracked<PlainDoc> {
    let (title, summary, body, rank, lang) = fields(i);
    Tracked::new(PlainDoc {
        id: i,
        title,
        summary,
        body,
        rank,
        lang,
    })
}

fn search_redis_address() -> String {
    std::env::var("BEEORM_SEARCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6391".into())
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string()
}

/// An engine on a fresh SQLite file holding `ROWS` documents (and the plain table),
/// its index created and filled.
async fn prepare(engine_name: &str, dir: &std::path::Path) -> beeorm::Result<Engine> {
    let mut r = Registry::new();
    let db = dir.join("bench.db");
    r.register_sqlite_pool("default", &db.to_string_lossy())
        .set_cache_namespace(&format!("bench_search_{engine_name}"))
        .register_entity::<Doc>()
        .register_entity::<PlainDoc>();
    match engine_name {
        "tantivy" => {
            r.register_search_tantivy("default", &dir.join("index").to_string_lossy());
        }
        _ => {
            r.register_redis_pool("search_server", &search_redis_address(), 0);
            r.register_search_redis("default", "search_server");
        }
    }
    let engine = r.validate().await?.create_engine();
    for a in engine.alters().await? {
        a.exec(&engine).await?;
    }
    let mut i = 1;
    while i <= ROWS {
        let mut batch: Vec<_> = (i..i + BATCH).map(doc).collect();
        engine.flusher().track_all(&mut batch).flush().await?;
        i += BATCH;
    }
    Ok(engine)
}

fn query() -> SearchQuery {
    // Two common words, a range, a sort.
    SearchQuery::new(format!("{} {}", word(1), word(2)))
        .range("rank", 100.0..900.0)
        .sort_by("rank", SortOrder::Desc)
}

fn run(c: &mut Criterion, name: &str, engine: &Engine, rt: &tokio::runtime::Runtime) {
    let next = Cell::new(1_000_000u64);
    let hits = rt
        .block_on(engine.text_search_ids::<Doc>(&query(), Pager::new(1, 20)))
        .unwrap();
    assert!(hits.total >= 20, "the query matches a page: {}", hits.total);
    let mut g = c.benchmark_group(format!("search/{name}"));
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS));
    g.bench_function("reindex_10000", |b| {
        b.iter(|| {
            let n = rt.block_on(engine.reindex::<Doc>(|_| {})).unwrap();
            assert_eq!(n, ROWS);
        })
    });
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("flush_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start_id = next.get();
                next.set(start_id + BATCH);
                let mut batch: Vec<_> = (start_id..start_id + BATCH).map(doc).collect();
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
    g.throughput(Throughput::Elements(1));
    g.sample_size(50);
    g.bench_function("query_ids", |b| {
        let q = query();
        b.iter(|| {
            let hits = rt
                .block_on(engine.text_search_ids::<Doc>(&q, Pager::new(1, 20)))
                .unwrap();
            assert_eq!(hits.ids.len(), 20);
        })
    });
    g.bench_function("query_entities", |b| {
        let q = query();
        b.iter(|| {
            let (rows, _) = rt
                .block_on(engine.text_search::<Doc>(&q, Pager::new(1, 20)))
                .unwrap();
            assert_eq!(rows.len(), 20);
        })
    });
    g.finish();
}

fn unindexed(c: &mut Criterion, engine: &Engine, rt: &tokio::runtime::Runtime) {
    let next = Cell::new(1_000_000u64);
    let mut g = c.benchmark_group("search/none");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("flush_1000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start_id = next.get();
                next.set(start_id + BATCH);
                let mut batch: Vec<_> = (start_id..start_id + BATCH).map(plain).collect();
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
    g.finish();
}

fn search(c: &mut Criterion) {
    let rt = common::runtime();
    for name in ["tantivy", "redisearch"] {
        let dir = tempfile::tempdir().unwrap();
        match rt.block_on(prepare(name, dir.path())) {
            Ok(engine) => {
                if name == "tantivy" {
                    unindexed(c, &engine, &rt);
                }
                run(c, name, &engine, &rt);
                // Leave nothing behind on the shared server.
                if name == "redisearch" {
                    let mut r = Registry::new();
                    r.register_sqlite_pool(
                        "default",
                        &dir.path().join("bench.db").to_string_lossy(),
                    )
                    .set_cache_namespace("bench_search_redisearch");
                    r.register_redis_pool("search_server", &search_redis_address(), 0);
                    r.register_search_redis("default", "search_server");
                    let bare = rt.block_on(r.validate()).unwrap().create_engine();
                    for a in rt.block_on(bare.alters()).unwrap() {
                        if a.pool == "default" && !a.sql.contains("TABLE") {
                            let _ = rt.block_on(a.exec(&bare));
                        }
                    }
                }
            }
            Err(e) => eprintln!("skipping search/{name}: {e}"),
        }
    }
}

criterion_group!(benches, search);
criterion_main!(benches);
