//! The local cache API (A3, E6) through `Registry` and `Engine::local_cache`: every
//! method, type mismatches as misses, time-to-live, one provider call per concurrent
//! miss, entry and byte bounds that hold, stats, and the YAML forms of `local_cache`.
//! No server is needed: each test registers its own pools.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beeorm::{Error, LocalCache, LocalCacheBound, Registry};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// The pool `name` of a registry holding only it, bounded by `entries`.
async fn entries_pool(name: &str, entries: u64) -> LocalCache {
    let mut r = Registry::new();
    r.register_local_cache(name, entries);
    r.validate()
        .await
        .unwrap()
        .create_engine()
        .local_cache(name)
        .unwrap()
}

/// The pool `name` of a registry holding only it, bounded by `bytes`.
async fn bytes_pool(name: &str, bytes: u64) -> LocalCache {
    let mut r = Registry::new();
    r.register_local_cache_bytes(name, bytes);
    r.validate()
        .await
        .unwrap()
        .create_engine()
        .local_cache(name)
        .unwrap()
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{p}` missing from: {msg}");
    }
}

fn config_message(err: Error) -> String {
    match err {
        Error::Config(msg) => msg,
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

const TTL: Duration = Duration::from_millis(50);
/// Comfortably past `TTL`.
const PAST_TTL: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn get_set_remove_and_clear() {
    let c = entries_pool("basic", 100).await;
    assert_eq!(c.name(), "basic");
    assert_eq!(c.bound(), LocalCacheBound::Entries(100));
    assert_eq!(c.get::<u32>("a"), None);
    c.set("a", 1u32);
    c.set("b", "two".to_string());
    assert_eq!(c.get::<u32>("a"), Some(1));
    assert_eq!(c.get::<String>("b").as_deref(), Some("two"));
    c.set("a", 10u32);
    assert_eq!(c.get::<u32>("a"), Some(10));
    c.run_pending_tasks();
    assert_eq!(c.entry_count(), 2);

    c.remove("a");
    assert_eq!(c.get::<u32>("a"), None);
    assert_eq!(c.get::<String>("b").as_deref(), Some("two"));
    c.remove("never-there");

    c.mset([("x", 1u8), ("y", 2u8), ("z", 3u8)]);
    c.remove_many(&["x", "z"]);
    assert_eq!(c.mget::<u8, _>(&["x", "y", "z"]), vec![None, Some(2), None]);

    c.clear();
    assert_eq!(c.get::<String>("b"), None);
    assert_eq!(c.get::<u8>("y"), None);
    c.run_pending_tasks();
    assert_eq!(c.entry_count(), 0);
}

#[tokio::test]
async fn clones_and_engines_share_one_pool() {
    let mut r = Registry::new();
    r.register_local_cache("shared", 10);
    let validated = r.validate().await.unwrap();
    let a = validated.create_engine().local_cache("shared").unwrap();
    let b = validated.create_engine().local_cache("shared").unwrap();
    a.set("k", 5i64);
    assert_eq!(b.get::<i64>("k"), Some(5));
    a.clone().remove("k");
    assert_eq!(b.get::<i64>("k"), None);
}

#[tokio::test]
async fn a_value_read_with_another_type_is_a_miss() {
    let c = entries_pool("types", 100).await;
    c.set("n", 7u32);
    assert_eq!(c.get::<u64>("n"), None);
    assert_eq!(c.get::<i32>("n"), None);
    assert_eq!(c.get::<String>("n"), None);
    assert_eq!(c.get::<u32>("n"), Some(7)); // still there
    assert_eq!(c.mget::<u64, _>(&["n"]), vec![None]);
    c.hmset("h", [("f", 1u8)]);
    assert_eq!(c.hmget::<u16, _>("h", &["f"]), vec![None]);
    // A hash is not a plain value, and a plain value is not a hash.
    assert_eq!(c.get::<u8>("h"), None);
    assert_eq!(c.hmget::<u32, _>("n", &["f"]), vec![None]);
    // get_set replaces a value of another type.
    assert_eq!(c.get_set("n", None, || "text".to_string()), "text");
    assert_eq!(c.get::<u32>("n"), None);
    assert_eq!(c.get::<String>("n").as_deref(), Some("text"));
}

#[tokio::test]
async fn mget_keeps_order_and_mset_takes_owned_keys() {
    let c = entries_pool("multi", 100).await;
    let pairs: Vec<(String, u64)> = (0..5).map(|i| (format!("k{i}"), i * 10)).collect();
    c.mset(pairs);
    let keys = ["k4", "missing", "k0", "k2"];
    assert_eq!(
        c.mget::<u64, _>(&keys),
        vec![Some(40), None, Some(0), Some(20)]
    );
    let owned: Vec<String> = vec!["k1".into(), "k3".into()];
    assert_eq!(c.mget::<u64, _>(&owned), vec![Some(10), Some(30)]);
    assert_eq!(c.mget::<u64, &str>(&[]), Vec::<Option<u64>>::new());
}

#[tokio::test]
async fn hmset_merges_fields_and_hmget_keeps_order() {
    let c = entries_pool("hashes", 100).await;
    assert_eq!(c.hmget::<u32, _>("user:1", &["age"]), vec![None]);
    c.hmset("user:1", [("age", 37u32), ("visits", 5u32)]);
    c.hmset("user:1", [("visits", 6u32), ("likes", 1u32)]);
    assert_eq!(
        c.hmget::<u32, _>("user:1", &["likes", "nope", "age", "visits"]),
        vec![Some(1), None, Some(37), Some(6)]
    );
    // Fields of different types live side by side; each reads with its own type.
    c.hmset("user:1", [("name", "Ann".to_string())]);
    assert_eq!(
        c.hmget::<String, _>("user:1", &["name", "age"]),
        vec![Some("Ann".to_string()), None]
    );
    assert_eq!(c.hmget::<u32, _>("user:1", &["age"]), vec![Some(37)]);
    // One entry per hash.
    c.run_pending_tasks();
    assert_eq!(c.entry_count(), 1);
    c.remove("user:1");
    assert_eq!(c.hmget::<u32, _>("user:1", &["age"]), vec![None]);
    // A plain value under the key is replaced by the hash.
    c.set("k", 1u32);
    c.hmset("k", [("f", 2u32)]);
    assert_eq!(c.get::<u32>("k"), None);
    assert_eq!(c.hmget::<u32, _>("k", &["f"]), vec![Some(2)]);
}

// ---------------------------------------------------------------------------------
// Time-to-live
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn entries_with_a_ttl_expire_and_others_stay() {
    let c = entries_pool("ttl", 100).await;
    c.set_with_ttl("short", 1u32, TTL);
    c.set("forever", 2u32);
    c.set_with_size("sized", 3u32, Some(TTL), 100);
    assert_eq!(c.get::<u32>("short"), Some(1));
    assert_eq!(c.get::<u32>("sized"), Some(3));
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(c.get::<u32>("short"), None);
    assert_eq!(c.get::<u32>("sized"), None);
    assert_eq!(c.get::<u32>("forever"), Some(2));
    // Expired entries stop being readable at once; the cache removes them (and frees
    // their memory) on its timer wheel, whose finest slot is about a second.
    let mut waited = Duration::ZERO;
    while c.stats().expirations < 2 && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
        c.run_pending_tasks();
    }
    assert_eq!(c.stats().expirations, 2);
    assert_eq!(c.entry_count(), 1);
    assert_eq!(c.get::<u32>("forever"), Some(2));
}

#[tokio::test]
async fn overwriting_resets_the_ttl() {
    let c = entries_pool("ttl-reset", 100).await;
    c.set_with_ttl("k", 1u32, TTL);
    c.set("k", 2u32); // no TTL any more
    c.set("j", 1u32);
    c.set_with_ttl("j", 2u32, TTL); // a TTL now
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(c.get::<u32>("k"), Some(2));
    assert_eq!(c.get::<u32>("j"), None);
}

#[tokio::test]
async fn get_set_with_a_ttl_computes_again_after_expiry() {
    let c = entries_pool("ttl-get-set", 100).await;
    let calls = AtomicUsize::new(0);
    let provide = || calls.fetch_add(1, Ordering::SeqCst) + 1;
    assert_eq!(c.get_set("k", Some(TTL), provide), 1);
    assert_eq!(c.get_set("k", Some(TTL), provide), 1);
    let r = c
        .get_set_async("a", Some(TTL), || async { "first".to_string() })
        .await;
    assert_eq!(r, "first");
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(c.get_set("k", Some(TTL), provide), 2);
    let r = c
        .get_set_async("a", Some(TTL), || async { "second".to_string() })
        .await;
    assert_eq!(r, "second");
    // Without a TTL the value stays.
    assert_eq!(c.get_set("k2", None, provide), 3);
    tokio::time::sleep(PAST_TTL).await;
    assert_eq!(c.get_set("k2", None, provide), 3);
}

// ---------------------------------------------------------------------------------
// get_set: one provider per concurrent miss
// ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_async_misses_call_one_provider() {
    let c = entries_pool("async-once", 100).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (c, calls) = (c.clone(), calls.clone());
        tasks.spawn(async move {
            c.get_set_async("k", None, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                vec![1u64, 2, 3]
            })
            .await
        });
    }
    let mut results = 0;
    while let Some(v) = tasks.join_next().await {
        assert_eq!(v.unwrap(), vec![1, 2, 3]);
        results += 1;
    }
    assert_eq!(results, 50);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(c.get::<Vec<u64>>("k"), Some(vec![1, 2, 3]));
    assert_eq!(c.stats().inserts, 1);
}

#[tokio::test]
async fn concurrent_sync_misses_call_one_provider() {
    let c = entries_pool("sync-once", 100).await;
    let calls = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let (c, calls) = (&c, &calls);
                s.spawn(move || {
                    c.get_set("k", None, || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        "value".to_string()
                    })
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), "value");
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_provider_caches_nothing_and_a_waiter_provides() {
    let c = entries_pool("fallible", 100).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (c, calls) = (c.clone(), calls.clone());
        tasks.spawn(async move {
            c.try_get_set_async("k", None, || async {
                // The first call fails, the second succeeds.
                let n = calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                if n == 0 {
                    Err(format!("call {n} failed"))
                } else {
                    Ok(n as u32)
                }
            })
            .await
        });
    }
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(v) => ok.push(v),
            Err(e) => failed.push(e),
        }
    }
    assert_eq!(failed, vec!["call 0 failed".to_string()]);
    assert_eq!(ok, vec![1; 9]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(c.get::<u32>("k"), Some(1));

    // An error alone caches nothing.
    let r: Result<u32, &str> = c
        .try_get_set_async("other", None, || async { Err("no") })
        .await;
    assert_eq!(r, Err("no"));
    assert_eq!(c.get::<u32>("other"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_provider_lets_a_waiter_provide() {
    let c = entries_pool("cancel", 100).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let leader = {
        let (c, started) = (c.clone(), started.clone());
        tokio::spawn(async move {
            c.get_set_async("k", None, || async move {
                started.notify_one();
                std::future::pending::<u32>().await
            })
            .await
        })
    };
    started.notified().await;
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.get_set_async("k", None, || async { 5u32 }).await })
    };
    // The waiter waits on the leader's provider (which never ends) ...
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    // ... until the leader is cancelled.
    leader.abort();
    assert_eq!(waiter.await.unwrap(), 5);
    assert_eq!(c.get::<u32>("k"), Some(5));
}

// ---------------------------------------------------------------------------------
// Bounds
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_entry_bound_holds() {
    let c = entries_pool("entries", 100).await;
    for i in 0..10_000u32 {
        c.set(&format!("key:{i}"), i);
    }
    c.run_pending_tasks();
    let count = c.entry_count();
    assert!(count <= 100, "{count} entries kept for a bound of 100");
    assert!(count > 0);
    assert_eq!(c.weighted_size(), count);
    let stats = c.stats();
    assert_eq!(stats.inserts, 10_000);
    assert!(
        stats.evictions >= 10_000 - 100,
        "{} evictions",
        stats.evictions
    );
}

#[tokio::test]
async fn the_byte_bound_holds() {
    const BOUND: u64 = 64 * 1024;
    let c = bytes_pool("bytes", BOUND).await;
    assert_eq!(c.bound(), LocalCacheBound::Bytes(BOUND));
    // ~0.5 KB per entry with the overhead: 10,000 entries are ~80 times the bound.
    for i in 0..10_000u32 {
        c.set(&format!("key:{i:05}"), "x".repeat(100));
    }
    c.run_pending_tasks();
    let (count, size) = (c.entry_count(), c.weighted_size());
    assert!(size <= BOUND, "{size} bytes kept for a bound of {BOUND}");
    assert!(count > 0);
    // Each entry weighs its key (9), its String (24 + 100) and the overhead (320).
    assert_eq!(size, count * (9 + 24 + 100 + 320));
    assert!(c.stats().evictions > 0);
}

#[tokio::test]
async fn the_byte_bound_sees_big_values_and_given_sizes() {
    let c = bytes_pool("big", 100_000).await;
    c.set("small", 1u64);
    // A 1 MB string weighs its capacity: heavier than the whole bound, never kept.
    c.set("huge", vec![0u8; 1 << 20]);
    // A size given by the caller is what counts.
    c.set_with_size("declared", 1u8, None, 200_000);
    c.set_with_size("light", 1u8, None, 10);
    c.run_pending_tasks();
    assert_eq!(c.get::<Vec<u8>>("huge"), None);
    assert_eq!(c.get::<u8>("declared"), None);
    assert_eq!(c.get::<u64>("small"), Some(1));
    assert_eq!(c.get::<u8>("light"), Some(1));
    assert!(c.weighted_size() <= 100_000);
}

#[tokio::test]
async fn hashes_are_weighed_by_all_their_fields() {
    let c = bytes_pool("hash-weight", 1 << 20).await;
    c.hmset("h", [("a", 1u64)]);
    c.run_pending_tasks();
    let one = c.weighted_size();
    c.hmset("h", [("b", 2u64), ("c", 3u64)]);
    c.run_pending_tasks();
    // Two more fields: each its name (1), its u64 (8) and 64 bytes.
    assert_eq!(c.weighted_size(), one + 2 * (1 + 8 + 64));
    assert_eq!(c.entry_count(), 1);
}

// ---------------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn stats_count_hits_misses_and_inserts() {
    let c = entries_pool("stats", 100).await;
    assert_eq!(c.stats(), Default::default());
    c.set("a", 1u8);
    c.mset([("b", 2u8), ("c", 3u8)]);
    c.hmset("h", [("f", 1u8), ("g", 2u8)]);
    let _ = c.get::<u8>("a"); // hit
    let _ = c.get::<u16>("a"); // miss: another type
    let _ = c.get::<u8>("zz"); // miss
    let _ = c.mget::<u8, _>(&["b", "c", "d"]); // 2 hits, 1 miss
    let _ = c.hmget::<u8, _>("h", &["f", "x"]); // 1 hit, 1 miss
    let _ = c.get_set("a", None, || 0u8); // hit
    let _ = c.get_set("n", None, || 0u8); // miss, insert
    let s = c.stats();
    assert_eq!((s.hits, s.misses, s.inserts), (5, 5, 5));
    assert_eq!((s.evictions, s.expirations), (0, 0));
}

// ---------------------------------------------------------------------------------
// Registration and YAML
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn yaml_forms_of_local_cache() {
    let yaml = "\
plain:
  local_cache: 1000
spelled:
  local_cache: {entries: 50}
block:
  local_cache:
    bytes: 4096
units:
  local_cache: {bytes: \"64MB\"}
kib:
  local_cache: {bytes: 512 KiB}
";
    let engine = Registry::from_yaml(yaml)
        .unwrap()
        .validate()
        .await
        .unwrap()
        .create_engine();
    for (pool, bound) in [
        ("plain", LocalCacheBound::Entries(1000)),
        ("spelled", LocalCacheBound::Entries(50)),
        ("block", LocalCacheBound::Bytes(4096)),
        ("units", LocalCacheBound::Bytes(64 << 20)),
        ("kib", LocalCacheBound::Bytes(512 << 10)),
    ] {
        assert_eq!(engine.local_cache(pool).unwrap().bound(), bound, "{pool}");
    }
}

#[test]
fn bad_yaml_forms_of_local_cache_are_yaml_errors_naming_pool_and_key() {
    for (value, detail) in [
        ("lots", "a number of entries"),
        ("-5", "a number of entries"),
        ("1.5", "a number of entries"),
        ("[1000]", "a number of entries"),
        ("{bytes: \"64XB\"}", "`bytes` must be"),
        ("{bytes: \"64 MB of RAM\"}", "`bytes` must be"),
        ("{bytes: -1}", "`bytes` must be"),
        ("{entries: \"many\"}", "`entries` must be"),
        ("{entries: 1, bytes: 2}", "not both"),
        ("{weight: 10}", "unknown key `weight`"),
        ("{}", "empty"),
    ] {
        let yaml = format!("my_pool:\n  local_cache: {value}\n");
        let err = Registry::from_yaml(&yaml).expect_err(value);
        assert!(matches!(err, Error::Yaml(_)), "{value}: {err:?}");
        assert_mentions(&err.to_string(), &["my_pool", "local_cache", detail]);
    }
}

#[tokio::test]
async fn zero_bounds_are_config_errors_naming_the_pool() {
    let mut r = Registry::new();
    r.register_local_cache_bytes("nothing", 0);
    let msg = config_message(r.validate().await.expect_err("0 bytes"));
    assert_mentions(&msg, &["`nothing`", "size", "bytes"]);

    let mut r = Registry::new();
    r.register_local_cache("none", 0);
    let msg = config_message(r.validate().await.expect_err("0 entries"));
    assert_mentions(&msg, &["`none`", "size", "entries"]);

    for yaml in [
        "z:\n  local_cache: {bytes: 0}\n",
        "z:\n  local_cache: {bytes: \"0MB\"}\n",
    ] {
        let registry = Registry::from_yaml(yaml).unwrap();
        let msg = config_message(registry.validate().await.expect_err(yaml));
        assert_mentions(&msg, &["`z`", "size"]);
    }
}

#[tokio::test]
async fn a_name_registered_by_entries_and_by_bytes_is_a_duplicate() {
    let mut r = Registry::new();
    r.register_local_cache("twin", 10)
        .register_local_cache_bytes("twin", 1 << 20);
    let msg = config_message(r.validate().await.expect_err("duplicate"));
    assert_mentions(&msg, &["`twin`", "twice"]);
}
