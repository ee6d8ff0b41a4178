//! Shared setup of the Redis toolkit tests: server addresses from env vars (defaults:
//! what `scripts/services` starts), a key prefix per test so tests run in parallel,
//! and cleanup of that prefix.
#![allow(dead_code, clippy::unwrap_used)]

use beeorm::{Engine, RedisClient, Registry};

/// `BEEORM_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("BEEORM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `BEEORM_REDIS_SENTINELS` (comma-separated), default the three local sentinels.
pub fn sentinels() -> Vec<String> {
    list(
        "BEEORM_REDIS_SENTINELS",
        "127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381",
    )
}

/// `BEEORM_REDIS_SENTINEL_MASTER`, default `beeorm-master`.
pub fn sentinel_master() -> String {
    std::env::var("BEEORM_REDIS_SENTINEL_MASTER").unwrap_or_else(|_| "beeorm-master".into())
}

/// `BEEORM_REDIS_CLUSTER` (comma-separated), default nodes 7000–7005.
pub fn cluster_nodes() -> Vec<String> {
    list(
        "BEEORM_REDIS_CLUSTER",
        "127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003,127.0.0.1:7004,127.0.0.1:7005",
    )
}

fn list(var: &str, default: &str) -> Vec<String> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A key prefix no other test (or run) uses.
pub fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("beeorm-test:{test}:{}:{nanos}:", std::process::id())
}

/// A registry with the local server as pool `default` (db 0) and locker `default`.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register_redis_pool("default", &redis_url(), 0)
        .register_locker("default", "default");
    r
}

pub async fn engine(r: &Registry) -> Engine {
    r.validate().await.unwrap().create_engine()
}

/// Deletes every key under `prefix` (and the toolkit's keys derived from it).
pub async fn cleanup(redis: &RedisClient, prefix: &str) {
    for pattern in [
        format!("{prefix}*"),
        // `lock:<locker>:<name>`.
        format!("lock:*:{prefix}*"),
        format!("beeorm:rate:{prefix}*"),
    ] {
        let keys = redis.scan_match(&pattern).await.unwrap();
        for key in keys {
            redis.del(key.as_str()).await.unwrap();
        }
    }
}
