//! The local cache's entity read path (E6, D7): `LocalCache::get_entity` — what every
//! entity-cache hit pays — against a bare `moka::sync::Cache<(u32, u64), Arc<dyn Any>>`
//! holding the same rows, in the same run; and the memory an entry really takes,
//! against the weight a byte bound charges for it.
//!
//! - `local_cache/get_entity_hit/beeorm`, `…/moka_raw`: 100,000 rows of one table,
//!   read in a scrambled order (every read a hit);
//! - `local_cache/get_entity_miss/beeorm`, `…/moka_raw`: IDs that are not there;
//! - `local_cache/get_user_key_hit/beeorm`: `get::<u64>` of a 10-byte string key, for
//!   comparison (no allocation either).
//!
//! Then the same hits in alternating rounds (`local_cache/paired/…`: medians of 7
//! rounds each, robust to a machine that other work slows down), over all rows (most
//! reads miss the CPU caches) and over 1,000 hot rows, with a third cache: the bare
//! moka cache with a per-entry `Expiry` that expires nothing (what time-to-live costs
//! every read).
//!
//! Before the timings, a counting allocator measures the live heap bytes per entry
//! (100,000 entries, then 100,000 more: the difference over 100,000, so fixed costs
//! cancel) and prints them next to the 320 bytes per entry (`ENTRY_OVERHEAD`) that a
//! byte bound charges on top of key and value.
//!
//! ```text
//! cargo bench -p bench --bench local_cache -- --warm-up-time 1 --measurement-time 3
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::any::Any;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use beeorm::{LocalCache, Registry};
use criterion::{criterion_group, criterion_main, Criterion};

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ROWS: u64 = 100_000;
const TABLE: u32 = 7;

type Row = Arc<dyn Any + Send + Sync>;
type RawCache = moka::sync::Cache<(u32, u64), Row>;

fn pool(name: &str, entries: u64) -> LocalCache {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut registry = Registry::new();
    registry.register_local_cache(name, entries);
    let engine = runtime
        .block_on(registry.validate())
        .expect("registry")
        .create_engine();
    engine.local_cache(name).expect("pool")
}

/// A scrambled walk over 0..ROWS (an odd multiplier modulo a power of two would do;
/// this one is prime to ROWS).
fn id(n: u64) -> u64 {
    (n.wrapping_mul(7_919)) % ROWS
}

/// Live heap bytes per entry, for 100,000 entries of each kind.
fn memory_per_entry() {
    let measure = |label: &str, fill: &dyn Fn(&LocalCache, u64, u64)| {
        let cache = pool("mem", 10 * ROWS);
        fill(&cache, 0, ROWS);
        cache.run_pending_tasks();
        let before = LIVE.load(Ordering::Relaxed);
        fill(&cache, ROWS, 2 * ROWS);
        cache.run_pending_tasks();
        let after = LIVE.load(Ordering::Relaxed);
        assert_eq!(cache.entry_count(), 2 * ROWS);
        println!(
            "local_cache/memory/{label}: {:.0} bytes per entry",
            (after - before) as f64 / ROWS as f64
        );
    };
    // A 10-byte key and a u64: charged 10 + 8 + 320 = 338 bytes under a byte bound.
    measure("user_key_u64", &|c, from, to| {
        for i in from..to {
            c.set(&format!("key:{i:06}"), i);
        }
    });
    // An entity row of a u64 (the caller gives the row's weight): charged 320 + given.
    measure("entity_u64", &|c, from, to| {
        for i in from..to {
            c.__bench_insert_entity(TABLE, i, Arc::new(i));
        }
    });
}

/// Hits of `LocalCache::get_entity` and of the bare moka cache in alternating rounds of
/// `ROWS` reads (7 each) among the first `ids` rows, so that a busy machine slows both
/// alike; medians printed.
fn paired(cache: &LocalCache, raws: &[(&str, &RawCache)], label: &str, ids: u64) {
    let time = |read: &dyn Fn(u64) -> bool| {
        let start = Instant::now();
        let mut found = 0u64;
        for n in 0..ROWS {
            found += u64::from(read(id(n) % ids));
        }
        assert_eq!(found, ROWS);
        start.elapsed().as_nanos() as f64 / ROWS as f64
    };
    let mut ours = Vec::new();
    let mut bare: Vec<Vec<f64>> = vec![Vec::new(); raws.len()];
    for _ in 0..7 {
        ours.push(time(&|i| {
            black_box(cache.__bench_get_entity(TABLE, i)).is_some()
        }));
        for ((_, raw), times) in raws.iter().zip(&mut bare) {
            times.push(time(&|i| black_box(raw.get(&(TABLE, i))).is_some()));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut line = format!("beeorm {:.0} ns", median(ours));
    for ((name, _), times) in raws.iter().zip(bare) {
        line += &format!(", {name} {:.0} ns", median(times));
    }
    println!(
        "local_cache/paired/get_entity_hit/{label}: {line} (median of 7 alternating rounds of {ROWS} reads)"
    );
}

/// A per-entry expiry that never expires anything: what `LocalCache` configures to
/// offer time-to-live (moka then calls it on every read).
struct NoExpiry;

impl moka::Expiry<(u32, u64), Row> for NoExpiry {}

fn get_entity(c: &mut Criterion) {
    memory_per_entry();

    let cache = pool("bench", 2 * ROWS);
    let raw: RawCache = moka::sync::Cache::new(2 * ROWS);
    let raw_expiry: RawCache = moka::sync::Cache::builder()
        .max_capacity(2 * ROWS)
        .expire_after(NoExpiry)
        .build();
    for i in 0..ROWS {
        let row: Row = Arc::new(i);
        cache.__bench_insert_entity(TABLE, i, row.clone());
        raw.insert((TABLE, i), row.clone());
        raw_expiry.insert((TABLE, i), row);
        cache.set(&format!("key:{i:06}"), i);
    }
    cache.run_pending_tasks();
    raw.run_pending_tasks();
    raw_expiry.run_pending_tasks();

    let raws = [("moka_raw", &raw), ("moka_raw_with_expiry", &raw_expiry)];
    paired(&cache, &raws, "all_100000_rows", ROWS);
    paired(&cache, &raws, "hot_1000_rows", 1_000);

    let mut group = c.benchmark_group("local_cache");
    let mut n = 0u64;
    group.bench_function("get_entity_hit/beeorm", |b| {
        b.iter(|| {
            n += 1;
            black_box(cache.__bench_get_entity(TABLE, id(n)))
        })
    });
    group.bench_function("get_entity_hit/moka_raw", |b| {
        b.iter(|| {
            n += 1;
            black_box(raw.get(&(TABLE, id(n))))
        })
    });
    group.bench_function("get_entity_miss/beeorm", |b| {
        b.iter(|| {
            n += 1;
            black_box(cache.__bench_get_entity(TABLE, ROWS + id(n)))
        })
    });
    group.bench_function("get_entity_miss/moka_raw", |b| {
        b.iter(|| {
            n += 1;
            black_box(raw.get(&(TABLE, ROWS + id(n))))
        })
    });
    let keys: Vec<String> = (0..1024).map(|i| format!("key:{:06}", id(i))).collect();
    group.bench_function("get_user_key_hit/beeorm", |b| {
        b.iter(|| {
            n += 1;
            black_box(cache.get::<u64>(&keys[(n % 1024) as usize]))
        })
    });
    group.finish();
    let stats = cache.stats();
    assert!(stats.hits > 0 && stats.misses > 0, "{stats:?}");
}

criterion_group!(benches, get_entity);
criterion_main!(benches);
