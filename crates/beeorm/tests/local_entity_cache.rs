//! The local entity cache alone: SQLite, no Redis anywhere (the embedded default).
//! Runs in the SQLite-only build too.
#![allow(clippy::unwrap_used)]

mod common;

use beeorm::prelude::*;
use common::StatementCounter;

#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache)]
struct Setting {
    id: u64,
    value: String,
    #[orm(fake_delete)]
    fake_delete: bool,
}

#[tokio::test]
async fn the_local_layer_alone_serves_hits_and_follows_every_write() {
    let db = common::TestDb::new(common::Kind::Sqlite, "local_alone").await;
    let mut r = db.registry();
    r.register_local_cache("default", 1_000)
        .set_cache_namespace("local-alone")
        .register_entity::<Setting>();
    let sql = StatementCounter::register(&mut r);
    let registry = r.validate().await.unwrap();
    let e = registry.create_engine();
    common::sync(&e).await;
    let mut s = Tracked::new(Setting {
        id: 0,
        value: "on".into(),
        fake_delete: false,
    });
    e.flush(&mut s).await.unwrap();
    sql.take();

    assert!(e.cache_stats().local_serving, "no channel: serving at once");
    assert_eq!(e.find::<Setting>(s.id).await.unwrap().value, "on");
    assert_eq!(e.find::<Setting>(s.id).await.unwrap().value, "on");
    assert_eq!(sql.take().len(), 1, "the second read is a local hit");
    assert!(e.load_by_id::<Setting>(42).await.unwrap().is_none());
    assert!(e.load_by_id::<Setting>(42).await.unwrap().is_none());
    assert_eq!(sql.take().len(), 1, "missing rows are remembered");

    // Every kind of write is followed: update, insert of a remembered-missing ID,
    // fake delete, a rolled-back transaction.
    s.value = "off".into();
    e.flush(&mut s).await.unwrap();
    assert_eq!(e.find::<Setting>(s.id).await.unwrap().value, "off");
    let mut late = Tracked::new(Setting {
        id: 42,
        value: "late".into(),
        fake_delete: false,
    });
    e.flush(&mut late).await.unwrap();
    assert_eq!(e.find::<Setting>(42).await.unwrap().value, "late");
    let mut tx = e.db("default").unwrap().begin().await.unwrap();
    s.value = "never".into();
    e.flusher().track(&mut s).flush_in(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(e.find::<Setting>(s.id).await.unwrap().value, "off");
    let mut s = e.find::<Setting>(s.id).await.unwrap();
    e.delete(&mut s).await.unwrap();
    assert!(e.load_by_id::<Setting>(s.id).await.unwrap().is_none());
    assert!(e
        .read()
        .include_deleted()
        .load_by_id::<Setting>(s.id)
        .await
        .unwrap()
        .is_some());
    // Plain SQL is not seen until invalidated.
    e.db("default")
        .unwrap()
        .execute(
            "UPDATE `Setting` SET `value` = 'sql' WHERE `id` = 42",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(e.find::<Setting>(42).await.unwrap().value, "late");
    e.invalidate_cached::<Setting>(&[42]).await.unwrap();
    assert_eq!(e.find::<Setting>(42).await.unwrap().value, "sql");
    let stats = e.cache_stats();
    let st = stats.entity("Setting").unwrap();
    assert!(st.local.hits >= 3 && st.local.fills >= 3, "{st:?}");
    assert_eq!(st.redis, beeorm::LayerStats::default());
}
