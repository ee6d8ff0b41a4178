//! The cache operations behind `beeorm cache` and `beeorm lazy` (`publish_cache_stats`,
//! `published_cache_stats`, `count_cached_rows`, `clear_cached_entity`,
//! `lazy_backlog`) with Redis down: each returns a typed error naming the pool and
//! the command, promptly (none hangs), and an unknown entity is refused first.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common_redis;

use beeorm::{Error, Registry};

#[derive(beeorm::Entity, Debug, Clone)]
#[orm(table = "admin_items", local_cache, redis_cache)]
struct Item {
    id: u64,
    #[orm(length = 10)]
    name: String,
}

/// A registry whose Redis pool points at a port nothing listens on.
async fn dead_redis(dir: &tempfile::TempDir) -> beeorm::ValidatedRegistry {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", &dir.path().join("a.db").to_string_lossy())
        .register_redis_pool("default", "127.0.0.1:1", 0)
        .register_local_cache("default", 100)
        .set_cache_namespace("admin-dead")
        .set_cache_stats_interval(Duration::ZERO)
        .register_entity::<Item>();
    r.validate().await.unwrap()
}

/// Runs `f`, which must fail within 10 s with a Redis error on pool `default`.
async fn fails_on_redis<T: std::fmt::Debug>(
    what: &str,
    f: impl std::future::Future<Output = beeorm::Result<T>>,
) {
    let result = tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung with Redis down"));
    match result {
        Err(Error::Redis { pool, command, .. }) => {
            assert_eq!(pool, "default", "{what}");
            assert!(!command.is_empty(), "{what}");
        }
        other => panic!("{what}: expected a Redis error, got {other:?}"),
    }
}

#[tokio::test]
async fn cache_operations_with_redis_down_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let v = dead_redis(&dir).await;
    let e = v.create_engine();
    // Nothing counted yet: nothing to publish, Redis is not asked.
    e.publish_cache_stats().await.unwrap();
    for a in e.alters().await.unwrap() {
        a.exec(&e).await.unwrap();
    }
    // A read counts (whatever Redis answered); now there is something to publish.
    let _ = tokio::time::timeout(Duration::from_secs(10), e.load_by_id::<Item>(1))
        .await
        .expect("load_by_id hung with Redis down");
    fails_on_redis("publish_cache_stats", e.publish_cache_stats()).await;
    fails_on_redis("published_cache_stats", e.published_cache_stats()).await;
    fails_on_redis("count_cached_rows", e.count_cached_rows("Item")).await;
    fails_on_redis("clear_cached_entity", e.clear_cached_entity("Item")).await;
    // Without the lazy flush there is no backlog to ask for: a configuration error.
    assert!(matches!(e.lazy_backlog().await, Err(Error::Config(m)) if m.contains("lazy")));
    // An unknown entity is refused before Redis is asked.
    assert!(matches!(
        e.count_cached_rows("Nope").await,
        Err(Error::UnknownEntity(name)) if name.contains("Nope")
    ));
    assert!(matches!(
        e.clear_cached_entity("Nope").await,
        Err(Error::UnknownEntity(_))
    ));
    // The local counters still answer, without Redis.
    let _ = e.cache_stats();
    drop(e);
    tokio::time::timeout(Duration::from_secs(10), v.close())
        .await
        .expect("close() hung with Redis down");
}

/// A TCP relay to the test Redis that can be cut: every connection through it is
/// closed and no new one is accepted once the returned handle is aborted.
async fn relay_to_redis() -> (String, tokio::task::JoinHandle<()>) {
    let target = common_redis::redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut links = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            links.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (format!("redis://{addr}"), task)
}

#[tokio::test]
async fn the_lazy_backlog_with_redis_gone_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let (url, relay) = relay_to_redis().await;
    let ns = format!("admin-lazy-{}", std::process::id());
    let mut r = Registry::new();
    r.register_sqlite_pool("default", &dir.path().join("l.db").to_string_lossy())
        .register_redis_pool("default", &url, 0)
        .register_local_cache("default", 100)
        .set_cache_namespace(&ns)
        .set_cache_stats_interval(Duration::ZERO)
        .enable_lazy_flush("default")
        .register_entity::<Item>();
    let v = r.validate().await.unwrap();
    let e = v.create_engine();
    let backlog = e.lazy_backlog().await.unwrap();
    assert_eq!(backlog.dead_letters, 0);
    // Redis goes away (the relay and every connection through it).
    relay.abort();
    let _ = relay.await;
    fails_on_redis("lazy_backlog", e.lazy_backlog()).await;
    drop(e);
    tokio::time::timeout(Duration::from_secs(10), v.close())
        .await
        .expect("close() hung with Redis down");
}
