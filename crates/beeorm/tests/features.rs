//! Cargo features: a pool for a driver this build leaves out is a typed
//! configuration error at `validate()` (never a panic, never a silently missing
//! pool). With every feature on (the default) every registration below validates;
//! `scripts/test` also runs this file in a SQLite-only build, where the others fail.
#![allow(clippy::unwrap_used)]

use beeorm::{Error, Registry};

/// Validates a registry holding one pool, and checks the outcome: `Ok` when the
/// driver `feature` is compiled in, else a configuration error naming the feature.
async fn check(feature: &str, compiled: bool, register: impl FnOnce(&mut Registry)) {
    let mut r = Registry::new();
    register(&mut r);
    match (compiled, r.validate().await) {
        (true, Ok(v)) => v.close().await,
        (false, Err(Error::Config(message))) => assert!(
            message.contains(&format!("cargo feature `{feature}`")),
            "{message}"
        ),
        (compiled, other) => panic!("{feature} (compiled: {compiled}): {other:?}"),
    }
}

#[tokio::test]
async fn a_pool_of_a_driver_left_out_is_a_config_error() {
    // Validation opens no MySQL or PostgreSQL connection: these need no server.
    check("mysql", cfg!(feature = "mysql"), |r| {
        r.register_mysql_pool("default", "mysql://root@127.0.0.1:3306/test");
    })
    .await;
    check("postgres", cfg!(feature = "postgres"), |r| {
        r.register_postgres_pool("default", "postgres://postgres@127.0.0.1:5432/test");
    })
    .await;
    check("sqlite", cfg!(feature = "sqlite"), |r| {
        r.register_sqlite_pool("default", ":memory:");
    })
    .await;
    check("redis", cfg!(feature = "redis"), |r| {
        r.register_sqlite_pool("default", ":memory:")
            .register_redis_pool("cache", "127.0.0.1:6379", 0);
    })
    .await;
    // Validation opens no ClickHouse connection either; YAML registers the same way.
    check("clickhouse", cfg!(feature = "clickhouse"), |r| {
        r.register_sqlite_pool("default", ":memory:")
            .register_clickhouse_pool("analytics", "http://127.0.0.1:8123/default");
    })
    .await;
    check("clickhouse", cfg!(feature = "clickhouse"), |r| {
        *r = Registry::from_yaml(
            "default:\n  sqlite: \":memory:\"\nanalytics:\n  clickhouse: http://127.0.0.1:8123\n  query_timeout: 5s\n",
        )
        .unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_redis_stream_without_the_redis_feature_is_a_config_error() {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", ":memory:")
        .register_redis_stream("orders", "cache", &["billing"]);
    match r.validate().await {
        // With the feature, the stream's pool is simply not registered.
        Err(Error::UnknownPool { pool, used_by, .. }) if cfg!(feature = "redis") => {
            assert_eq!(pool, "cache");
            assert!(used_by.contains("`orders`"), "{used_by}");
        }
        Err(Error::Config(message)) if !cfg!(feature = "redis") => {
            assert!(message.contains("cargo feature `redis`"), "{message}");
            assert!(message.contains("`orders`"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[derive(beeorm::Entity)]
#[orm(dirty = "dirty-noted")]
struct Noted {
    id: u64,
    text: String,
}

/// Dirty streams are published to Redis: declaring one in a build without the
/// `redis` feature is a configuration error naming the feature; with it, the stream
/// must be registered.
#[tokio::test]
async fn a_dirty_stream_needs_the_redis_feature() {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", ":memory:")
        .register_entity::<Noted>();
    match r.validate().await {
        Err(Error::Config(message)) if !cfg!(feature = "redis") => {
            assert!(message.contains("cargo feature `redis`"), "{message}");
            assert!(message.contains("dirty-noted"), "{message}");
        }
        Err(Error::UnregisteredDirtyStream { stream, .. }) if cfg!(feature = "redis") => {
            assert_eq!(stream, "dirty-noted");
        }
        other => panic!("{other:?}"),
    }
}
