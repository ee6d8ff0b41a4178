//! `Registry::set_entity_caches_enabled(false)`: cached entities read and write the
//! database only, cached queries run their SQL, and nothing lands in Redis.
#![allow(clippy::unwrap_used, missing_docs)]

mod common_redis;

use beeorm::{Pager, Registry, Tracked};

#[derive(beeorm::Entity, Debug, Clone)]
#[orm(table = "switch_items", local_cache, redis_cache)]
#[orm(cached_query(name = "by_kind", query = ":kind = ? ORDER BY :id"))]
struct Item {
    id: u64,
    #[orm(length = 10)]
    kind: String,
}

async fn engine(dir: &tempfile::TempDir, ns: &str, enabled: bool) -> beeorm::ValidatedRegistry {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", &dir.path().join("s.db").to_string_lossy())
        .register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_local_cache("default", 1000)
        .set_cache_namespace(ns)
        .set_cache_stats_interval(std::time::Duration::ZERO)
        .set_entity_caches_enabled(enabled)
        .register_entity::<Item>();
    r.validate().await.unwrap()
}

#[tokio::test]
async fn caches_switched_off_read_the_database_and_keep_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ns = format!("switch-{}", std::process::id());
    let off = engine(&dir, &ns, false).await;
    let e = off.create_engine();
    for a in e.alters().await.unwrap() {
        a.exec(&e).await.unwrap();
    }
    let mut items: Vec<_> = (1..=3)
        .map(|id| {
            Tracked::new(Item {
                id,
                kind: if id == 2 { "b".into() } else { "a".into() },
            })
        })
        .collect();
    e.flusher().track_all(&mut items).flush().await.unwrap();
    for _ in 0..2 {
        let e = off.create_engine();
        assert_eq!(e.load_by_id::<Item>(1).await.unwrap().unwrap().kind, "a");
        let (rows, total) = e
            .read()
            .cached_search::<Item>("by_kind", Pager::new(1, 10), &["a".into()])
            .await
            .unwrap();
        assert_eq!(total, 2);
        assert_eq!(rows.len(), 2);
    }
    assert_eq!(
        e.count_cached_rows("Item").await.unwrap(),
        0,
        "nothing in Redis"
    );
    let stats = e.cache_stats();
    let item = stats.entity("Item").unwrap();
    assert_eq!(item.local.hits + item.redis.hits, 0, "{item:?}");
    // 2 × (1 row by ID + the 2 rows of the list).
    assert_eq!(item.database_loads, 6, "every read asked the database");
    // A write of another kind is seen at once (no list kept anywhere).
    items[1].kind = "a".into();
    e.flush(&mut items[1]).await.unwrap();
    let (_, total) = e
        .read()
        .cached_search::<Item>("by_kind", Pager::new(1, 10), &["a".into()])
        .await
        .unwrap();
    assert_eq!(total, 3);

    // Switched on, the same registry keeps rows in Redis.
    let on = engine(&dir, &ns, true).await;
    let e = on.create_engine();
    assert!(e.load_by_id::<Item>(1).await.unwrap().is_some());
    assert_eq!(e.count_cached_rows("Item").await.unwrap(), 1);
    e.clear_cached_entity("Item").await.unwrap();
    let redis = e.redis("default").unwrap();
    common_redis::cleanup(&redis, &format!("{ns}:")).await;
}
