//! C1: what a flush sends, counted through the instrumentation hook: one
//! multi-row INSERT per table, one UPDATE per changed entity with only its changed
//! columns, nothing for unchanged entities. And (MySQL) a connection killed in the
//! middle of a flush leaves no partial rows.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use beeorm::prelude::*;
use common::{exec, query, sync, Kind, StatementCounter, TestDb};

#[derive(Entity)]
#[orm(table = "items")]
struct Item {
    id: u64,
    name: String,
    qty: u32,
}

#[derive(Entity)]
#[orm(table = "tags")]
struct Tag {
    id: u32,
    label: String,
}

async fn scenario(kind: Kind) {
    let db = TestDb::new(kind, &format!("stmts_{kind:?}").to_lowercase()).await;
    let mut r = db.registry();
    let capture = StatementCounter::register(&mut r);
    r.register_entity::<Item>().register_entity::<Tag>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    capture.take();

    let mut items: Vec<Tracked<Item>> = (0..100)
        .map(|i| {
            Tracked::new(Item {
                id: 0,
                name: format!("i{i}"),
                qty: i,
            })
        })
        .collect();
    let mut tags: Vec<Tracked<Tag>> = (0..3)
        .map(|i| {
            Tracked::new(Tag {
                id: 0,
                label: format!("t{i}"),
            })
        })
        .collect();
    let mut f = engine.flusher();
    for i in items.iter_mut() {
        f.track(i);
    }
    for t in tags.iter_mut() {
        f.track(t);
    }
    f.flush().await.unwrap();
    let sent = capture.take();
    let inserts: Vec<&String> = sent.iter().filter(|s| s.starts_with("INSERT")).collect();
    assert_eq!(inserts.len(), 2, "one INSERT per table: {sent:#?}");
    assert!(
        sent.len() <= 5,
        "two inserts in one transaction (plus begin/commit): {sent:#?}"
    );

    // Unchanged: nothing at all.
    let mut f = engine.flusher();
    for i in items.iter_mut() {
        f.track(i);
    }
    f.flush().await.unwrap();
    assert_eq!(capture.take(), Vec::<String>::new());

    // One changed column of one entity: one UPDATE of that column.
    items[5].qty = 500;
    engine.flush(&mut items[5]).await.unwrap();
    let sent = capture.take();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(
        sent[0].starts_with("UPDATE") && sent[0].contains("qty") && !sent[0].contains("name"),
        "{}",
        sent[0]
    );

    // Deletes of many rows of one table: one statement.
    let mut f = engine.flusher();
    for i in items.iter_mut().take(10) {
        f.delete(i);
    }
    f.flush().await.unwrap();
    let sent = capture.take();
    assert_eq!(
        sent.iter().filter(|s| s.starts_with("DELETE")).count(),
        1,
        "{sent:#?}"
    );

    // Loads: one query for many IDs.
    let ids: Vec<u64> = items[10..60].iter().map(|i| i.id).collect();
    let (found, _) = engine.load_by_ids::<Item>(&ids).await.unwrap();
    assert_eq!(found.len(), 50);
    assert_eq!(capture.take().len(), 1);
    db.drop().await;
}

/// A MySQL connection killed while a flush waits inside its transaction: the rows
/// already inserted by that flush are gone.
async fn killed_connection_leaves_no_rows() {
    let db = TestDb::new(Kind::MySql, "stmts_killed").await;
    let mut r = db.registry();
    r.register_entity::<Item>().register_entity::<Tag>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    // The tags insert (second statement) stalls in the server.
    exec(
        &engine,
        "CREATE TRIGGER tags_slow BEFORE INSERT ON tags FOR EACH ROW SET @x = SLEEP(5)",
    )
    .await;
    let killer_engine = engine.clone();
    let killer = tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            // Inside the trigger the server shows the trigger's statement.
            let rows = query(
                &killer_engine,
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE '%SLEEP(5)%'",
            )
            .await;
            if let Some(id) = rows.first().and_then(|r| r[0].as_i64()) {
                exec(&killer_engine, &format!("KILL {id}")).await;
                return true;
            }
        }
        false
    });
    let mut item = Tracked::new(Item {
        id: 0,
        name: "x".into(),
        qty: 1,
    });
    let mut tag = Tracked::new(Tag {
        id: 0,
        label: "y".into(),
    });
    let result = engine
        .flusher()
        .track(&mut item)
        .track(&mut tag)
        .flush()
        .await;
    assert!(
        killer.await.unwrap(),
        "the flush's connection was found and killed"
    );
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            beeorm::Error::Connection { .. } | beeorm::Error::Database { .. }
        ),
        "{err:?}"
    );
    assert_eq!(
        query(&engine, "SELECT COUNT(*) FROM items").await[0][0].as_i64(),
        Some(0)
    );
    assert!(item.is_new() && item.id == 0);
    // The pool recovers: the next flush works.
    exec(&engine, "DROP TRIGGER tags_slow").await;
    engine
        .flusher()
        .track(&mut item)
        .track(&mut tag)
        .flush()
        .await
        .unwrap();
    assert!(item.id > 0 && tag.id > 0);
    db.drop().await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn flush_sends_the_fewest_statements_mysql() {
    scenario(Kind::MySql).await;
}

#[tokio::test]
async fn flush_sends_the_fewest_statements_sqlite() {
    scenario(Kind::Sqlite).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn flush_sends_the_fewest_statements_postgres() {
    scenario(Kind::Postgres).await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn a_killed_connection_leaves_no_rows() {
    killed_connection_leaves_no_rows().await;
}
