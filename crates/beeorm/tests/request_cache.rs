//! The request cache and the data loader (D6): per engine, never shared; concurrent
//! loads of one engine merged into one query.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use beeorm::prelude::*;
use common::{StatementCounter, TestDb};

/// A plain entity: no entity cache, not `Clone` — the request cache works for any.
#[derive(Entity, Debug, PartialEq)]
struct Item {
    id: u64,
    name: String,
}

async fn setup(
    db: &TestDb,
) -> (
    beeorm::ValidatedRegistry,
    std::sync::Arc<StatementCounter>,
    Vec<u64>,
) {
    let mut r = db.registry();
    r.register_entity::<Item>();
    let sql = StatementCounter::register(&mut r);
    let registry = r.validate().await.unwrap();
    let engine = registry.create_engine();
    common::sync(&engine).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let mut item = Tracked::new(Item {
            id: 0,
            name: format!("i{i}"),
        });
        engine.flush(&mut item).await.unwrap();
        ids.push(item.id);
    }
    sql.take();
    (registry, sql, ids)
}

dialect_test!(
    a_row_read_twice_by_one_engine_is_read_once,
    |db: TestDb| async move {
        let (registry, sql, ids) = setup(&db).await;
        let engine = registry.create_engine().with_request_cache();
        assert_eq!(engine.find::<Item>(ids[0]).await.unwrap().name, "i0");
        assert_eq!(engine.find::<Item>(ids[0]).await.unwrap().name, "i0");
        assert!(engine.load_by_id::<Item>(99_999).await.unwrap().is_none());
        assert!(engine.load_by_id::<Item>(99_999).await.unwrap().is_none());
        assert_eq!(
            sql.take().len(),
            2,
            "one query per row, missing ones remembered"
        );
        // A clone is the same engine.
        engine.clone().find::<Item>(ids[0]).await.unwrap();
        assert_eq!(sql.take().len(), 0);
        // load_by_ids asks only for what the engine does not hold.
        let (rows, _) = engine.load_by_ids::<Item>(&ids[..3]).await.unwrap();
        assert_eq!(rows.len(), 3);
        let sent = sql.take();
        assert_eq!(sent.len(), 1);

        // Never shared: another engine of the same registry reads for itself.
        let other = registry.create_engine().with_request_cache();
        other.find::<Item>(ids[0]).await.unwrap();
        assert_eq!(sql.take().len(), 1);

        // The engine's own write empties it.
        let mut item = engine.find::<Item>(ids[0]).await.unwrap();
        item.name = "changed".into();
        engine.flush(&mut item).await.unwrap();
        sql.take();
        assert_eq!(engine.find::<Item>(ids[0]).await.unwrap().name, "changed");
        assert_eq!(sql.take().len(), 1);

        // So does a transaction it flushed in, once committed.
        let mut tx = engine.db("default").unwrap().begin().await.unwrap();
        item.name = "in tx".into();
        engine
            .flusher()
            .track(&mut item)
            .flush_in(&mut tx)
            .await
            .unwrap();
        assert_eq!(engine.find::<Item>(ids[0]).await.unwrap().name, "changed");
        tx.commit().await.unwrap();
        assert_eq!(engine.find::<Item>(ids[0]).await.unwrap().name, "in tx");
        db.drop().await;
    }
);

dialect_test!(
    concurrent_loads_of_one_engine_are_merged,
    |db: TestDb| async move {
        let (registry, sql, ids) = setup(&db).await;
        let engine = registry.create_engine().with_data_loader();
        let mut tasks = Vec::new();
        for &id in &ids {
            let e = engine.clone();
            tasks.push(tokio::spawn(async move {
                e.find::<Item>(id).await.unwrap().name.clone()
            }));
        }
        let names: Vec<String> = futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(names, (0..20).map(|i| format!("i{i}")).collect::<Vec<_>>());
        let sent = sql.take();
        assert_eq!(sent.len(), 1, "one query for 20 concurrent loads: {sent:?}");

        // A cancelled leader does not strand the others.
        let fresh = registry.create_engine().with_data_loader();
        {
            let first = fresh.find::<Item>(ids[1]);
            tokio::pin!(first);
            let _ = futures_util::poll!(&mut first);
        }
        let again = tokio::time::timeout(Duration::from_secs(5), fresh.find::<Item>(ids[1]))
            .await
            .expect("a load after a cancelled leader completes")
            .unwrap();
        assert_eq!(again.name, "i1");
        db.drop().await;
    }
);
