//! Issue 10 item 3: entities flushed with `flush_in` follow the transaction's
//! outcome — their state and after-hooks are applied at COMMIT and discarded at
//! rollback or drop — on MySQL, PostgreSQL and SQLite.
#![allow(clippy::unwrap_used, dead_code)]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use beeorm::hooks::HookEvent;
use beeorm::prelude::*;
use common::{sync, TestDb};

#[derive(Entity, Debug)]
#[orm(table = "notes")]
struct Note {
    id: u64,
    text: String,
}

/// After-hook calls seen, by event.
#[derive(Default)]
struct Seen {
    inserted: AtomicUsize,
    updated: AtomicUsize,
    deleted: AtomicUsize,
}

async fn engine(db: &TestDb) -> (Engine, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let mut r = db.registry();
    let s = seen.clone();
    r.register_entity::<Note>().register_hook::<Note>(
        &[
            HookEvent::AfterInsert,
            HookEvent::AfterUpdate,
            HookEvent::AfterDelete,
        ],
        move |event, note: &mut Note| {
            assert!(note.id > 0, "after-hooks see the row's ID");
            let counter = match event {
                HookEvent::AfterInsert => &s.inserted,
                HookEvent::AfterUpdate => &s.updated,
                _ => &s.deleted,
            };
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        },
    );
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    (engine, seen)
}

async fn texts(engine: &Engine) -> Vec<String> {
    common::query(engine, "SELECT text FROM notes ORDER BY id")
        .await
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect()
}

fn note(text: &str) -> Tracked<Note> {
    Tracked::new(Note {
        id: 0,
        text: text.into(),
    })
}

dialect_test!(
    an_insert_rolled_back_or_dropped_is_new_again_and_a_retry_writes_it,
    |db: TestDb| async move {
        let (engine, seen) = engine(&db).await;
        let pool = engine.db("default").unwrap();

        // Rolled back.
        let mut a = note("a");
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .track(&mut a)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert!(a.is_new(), "rolled back: the entity is new again");
        assert!(a.is_dirty());
        engine.flush(&mut a).await.unwrap();
        assert!(!a.is_new() && a.id > 0);
        assert_eq!(texts(&engine).await, ["a"], "the retry wrote the row");

        // Dropped without commit.
        let mut b = note("b");
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .track(&mut b)
            .flush_in(&mut tx)
            .await
            .unwrap();
        drop(tx);
        assert!(b.is_new());
        engine.flush(&mut b).await.unwrap();
        assert_eq!(texts(&engine).await, ["a", "b"]);
        assert_eq!(
            seen.inserted.load(Ordering::SeqCst),
            2,
            "after-hooks ran for the two committed inserts only"
        );
        db.drop().await;
    }
);

dialect_test!(
    a_commit_applies_the_state_and_runs_after_hooks_once_after_it,
    |db: TestDb| async move {
        let (engine, seen) = engine(&db).await;
        let pool = engine.db("default").unwrap();
        let mut a = note("a");
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .track(&mut a)
            .flush_in(&mut tx)
            .await
            .unwrap();
        assert_eq!(
            seen.inserted.load(Ordering::SeqCst),
            0,
            "not before the COMMIT"
        );
        tx.commit().await.unwrap();
        assert_eq!(seen.inserted.load(Ordering::SeqCst), 1);
        assert!(!a.is_new() && !a.is_dirty() && a.id > 0);
        // Committed: flushing again writes nothing new.
        engine.flush(&mut a).await.unwrap();
        assert_eq!(texts(&engine).await, ["a"]);
        assert_eq!(seen.inserted.load(Ordering::SeqCst), 1);

        // An update, then a delete, each committed.
        a.text = "a2".into();
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .track(&mut a)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(!a.is_dirty());
        assert_eq!(seen.updated.load(Ordering::SeqCst), 1);
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .delete(&mut a)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(a.is_new());
        assert_eq!(seen.deleted.load(Ordering::SeqCst), 1);
        assert!(texts(&engine).await.is_empty());
        db.drop().await;
    }
);

dialect_test!(
    an_update_or_delete_rolled_back_is_pending_again,
    |db: TestDb| async move {
        let (engine, seen) = engine(&db).await;
        let pool = engine.db("default").unwrap();
        let mut a = note("a");
        engine.flush(&mut a).await.unwrap();
        let mut a = engine.load_by_id::<Note>(a.id).await.unwrap().unwrap();

        // Update rolled back: still dirty, a later flush writes it.
        a.text = "changed".into();
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .track(&mut a)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert!(a.is_dirty(), "the change is not in the database");
        assert_eq!(texts(&engine).await, ["a"]);
        engine.flush(&mut a).await.unwrap();
        assert_eq!(texts(&engine).await, ["changed"]);
        assert_eq!(seen.updated.load(Ordering::SeqCst), 1);

        // Delete dropped: the entity still has its row; a later delete removes it.
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .delete(&mut a)
            .flush_in(&mut tx)
            .await
            .unwrap();
        drop(tx);
        assert!(!a.is_new(), "the row still exists");
        assert_eq!(texts(&engine).await, ["changed"]);
        assert_eq!(seen.deleted.load(Ordering::SeqCst), 0);
        engine.delete(&mut a).await.unwrap();
        assert!(texts(&engine).await.is_empty());
        assert_eq!(seen.deleted.load(Ordering::SeqCst), 1);
        db.drop().await;
    }
);
