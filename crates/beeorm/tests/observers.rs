//! Issue 11 items 1 and 7: the write seam. A recording observer sees, on MySQL,
//! PostgreSQL and SQLite, the change set of every committed insert, update, delete,
//! fake delete and upsert — inside the transaction (where it writes a change-log row
//! that commits with the rows) and after the COMMIT — and nothing after a rollback, a
//! dropped transaction or a failing in-transaction call. Multi-pool flushes: which
//! pools committed when a later one fails, and what the observers see then.
#![allow(clippy::unwrap_used, dead_code)]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use beeorm::hooks::BoxFuture;
use beeorm::prelude::*;
use beeorm::{ChangeKind, ChangeSet, DialectKind, Observer, ObserverTx};
use common::{query, sync, Kind, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "items")]
struct Item {
    id: u64,
    #[orm(unique = "NameAlive")]
    name: String,
    qty: i32,
    #[orm(unique = "NameAlive:2", fake_delete)]
    fake_delete: bool,
}

fn item(name: &str, qty: i32) -> Tracked<Item> {
    Tracked::new(Item {
        id: 0,
        name: name.into(),
        qty,
        fake_delete: false,
    })
}

/// Records every call; writes one `change_log` row per change inside the
/// transaction; refuses (after writing) while `fail` is set.
#[derive(Default)]
struct Recorder {
    inside: Mutex<Vec<Vec<String>>>,
    after: Mutex<Vec<Vec<String>>>,
    after_sets: Mutex<Vec<ChangeSet>>,
    fail: AtomicBool,
}

impl Recorder {
    fn inside(&self) -> Vec<Vec<String>> {
        self.inside.lock().unwrap().clone()
    }
    fn after(&self) -> Vec<Vec<String>> {
        self.after.lock().unwrap().clone()
    }
}

fn show(v: &Value) -> String {
    match (v.as_str(), v.as_i64()) {
        (Some(s), _) => s.to_string(),
        (_, Some(i)) => i.to_string(),
        _ => format!("{v:?}"),
    }
}

/// One line per change: `insert items 3 name=a qty=1`, `update items 3 qty:1->5`, …
fn summary(changes: &ChangeSet) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let cols = |values: &[(String, Value)]| {
                values
                    .iter()
                    .filter(|(n, _)| n != "fake_delete")
                    .map(|(n, v)| format!("{n}={}", show(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            match &c.kind {
                ChangeKind::Inserted { values } => {
                    format!("insert {} {} {}", c.table, c.id, cols(values))
                }
                ChangeKind::Updated { columns } => {
                    let cols: Vec<String> = columns
                        .iter()
                        .map(|ch| format!("{}:{}->{}", ch.name, show(&ch.old), show(&ch.new)))
                        .collect();
                    format!("update {} {} {}", c.table, c.id, cols.join(" "))
                }
                ChangeKind::Deleted { fake } => format!("delete {} {} fake={fake}", c.table, c.id),
                ChangeKind::Upserted { values, inserted } => {
                    format!(
                        "upsert {} {} inserted={inserted:?} {}",
                        c.table,
                        c.id,
                        cols(values)
                    )
                }
                other => format!("{other:?}"),
            }
        })
        .collect()
}

impl Observer for Recorder {
    fn in_transaction<'a>(
        &'a self,
        changes: &'a ChangeSet,
        tx: &'a mut ObserverTx<'_>,
    ) -> BoxFuture<'a, beeorm::Result<()>> {
        Box::pin(async move {
            self.inside.lock().unwrap().push(summary(changes));
            for change in changes {
                // The SQL is sent as written: PostgreSQL numbers its placeholders.
                let sql = if tx.kind() == DialectKind::Postgres {
                    "INSERT INTO change_log (tbl, row_id) VALUES ($1, $2)"
                } else {
                    "INSERT INTO change_log (tbl, row_id) VALUES (?, ?)"
                };
                tx.execute(sql, vec![change.table.as_str().into(), change.id.into()])
                    .await?;
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(beeorm::Error::Hook("the observer refuses".into()));
            }
            Ok(())
        })
    }

    fn after_commit<'a>(&'a self, changes: &'a ChangeSet) -> BoxFuture<'a, beeorm::Result<()>> {
        Box::pin(async move {
            self.after.lock().unwrap().push(summary(changes));
            self.after_sets.lock().unwrap().push(changes.clone());
            Ok(())
        })
    }
}

async fn create_log(engine: &Engine, pool: &str) {
    engine
        .db(pool)
        .unwrap()
        .execute(
            "CREATE TABLE change_log (tbl VARCHAR(100) NOT NULL, row_id BIGINT NOT NULL)",
            vec![],
        )
        .await
        .unwrap();
}

async fn engine(db: &TestDb) -> (Engine, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let mut r = db.registry();
    r.register_entity::<Item>()
        .register_observer(recorder.clone());
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    create_log(&engine, "default").await;
    (engine, recorder)
}

async fn count(engine: &Engine, table: &str) -> i64 {
    query(engine, &format!("SELECT COUNT(*) FROM {table}")).await[0][0]
        .as_i64()
        .unwrap()
}

dialect_test!(
    a_flush_reports_each_kind_of_change_inside_and_after,
    |db: TestDb| async move {
        let kind = db.kind;
        let (engine, rec) = engine(&db).await;
        let mut a = item("a", 1);
        let mut b = item("b", 2);
        engine
            .flusher()
            .track(&mut a)
            .track(&mut b)
            .flush()
            .await
            .unwrap();
        let inserted = vec![
            format!("insert items {} name=a qty=1", a.id),
            format!("insert items {} name=b qty=2", b.id),
        ];
        assert!(a.id > 0 && b.id > 0);
        assert_eq!(rec.inside(), std::slice::from_ref(&inserted));
        assert_eq!(rec.after(), [inserted]);
        assert_eq!(count(&engine, "change_log").await, 2, "the log committed");

        // Update: a single statement, put in a transaction for the observer.
        a.qty = 5;
        engine.flush(&mut a).await.unwrap();
        let updated = vec![format!("update items {} qty:1->5", a.id)];
        assert_eq!(rec.inside()[1], updated);
        assert_eq!(rec.after()[1], updated);

        // Fake delete: the row stays, the entity says so.
        engine.delete(&mut a).await.unwrap();
        assert_eq!(rec.after()[2], [format!("delete items {} fake=true", a.id)]);
        assert!(!a.is_new() && a.fake_delete && !a.is_dirty());
        // Real delete.
        let b_id = b.id;
        engine.force_delete(&mut b).await.unwrap();
        assert_eq!(rec.after()[3], [format!("delete items {b_id} fake=false")]);
        assert!(b.is_new());

        // Upsert onto an existing row, then one that inserts.
        let mut u = item("u", 1);
        engine.flush(&mut u).await.unwrap();
        let mut again = item("u", 9);
        again.on_duplicate_key_update([("qty", 7)]);
        engine.flush(&mut again).await.unwrap();
        assert_eq!(again.id, u.id);
        let taken = match kind {
            Kind::Sqlite => "None",
            _ => "Some(false)",
        };
        assert_eq!(
            rec.after()[5],
            [format!(
                "upsert items {} inserted={taken} name=u qty=7",
                u.id
            )]
        );
        let mut fresh = item("v", 3);
        fresh.on_duplicate_key_update([("qty", 4)]);
        engine.flush(&mut fresh).await.unwrap();
        let new = match kind {
            Kind::Sqlite => "None",
            _ => "Some(true)",
        };
        assert_eq!(
            rec.after()[6],
            [format!(
                "upsert items {} inserted={new} name=v qty=3",
                fresh.id
            )]
        );
        assert_eq!(
            rec.inside(),
            rec.after(),
            "one in-transaction call per unit"
        );
        // Unchanged entities: no unit of work, no call.
        engine.flush(&mut fresh).await.unwrap();
        assert_eq!(rec.after().len(), 7);
        // The change set carries the entity type and pool.
        let sets = rec.after_sets.lock().unwrap().clone();
        assert_eq!(sets[0].of::<Item>().count(), 2);
        assert_eq!(sets[0].pools(), ["default"]);
        assert_eq!(sets[0].changes()[0].entity_name, "Item");
        db.drop().await;
    }
);

dialect_test!(
    flush_in_transaction_and_flush_in_then_commit,
    |db: TestDb| async move {
        let (engine, rec) = engine(&db).await;
        let mut a = item("a", 1);
        engine
            .flusher()
            .track(&mut a)
            .flush_in_transaction()
            .await
            .unwrap();
        assert_eq!(
            rec.after(),
            [[format!("insert items {} name=a qty=1", a.id)]]
        );

        let pool = engine.db("default").unwrap();
        let mut tx = pool.begin().await.unwrap();
        let mut x = item("x", 1);
        engine
            .flusher()
            .track(&mut x)
            .flush_in(&mut tx)
            .await
            .unwrap();
        assert_eq!(rec.inside().len(), 2, "called inside, during flush_in");
        assert_eq!(rec.after().len(), 1, "nothing after before the COMMIT");
        x.qty = 2;
        engine
            .flusher()
            .track(&mut x)
            .flush_in(&mut tx)
            .await
            .unwrap();
        assert_eq!(rec.inside().len(), 3);
        assert_eq!(rec.after().len(), 1);
        tx.commit().await.unwrap();
        assert_eq!(
            rec.after()[1],
            [
                format!("insert items {} name=x qty=1", x.id),
                format!("update items {} qty:1->2", x.id),
            ],
            "one after-commit call with the whole transaction"
        );
        assert_eq!(count(&engine, "change_log").await, 3);
        db.drop().await;
    }
);

dialect_test!(
    nothing_after_a_rollback_a_drop_or_a_failing_observer,
    |db: TestDb| async move {
        let (engine, rec) = engine(&db).await;
        let pool = engine.db("default").unwrap();

        // Rolled back.
        let mut x = item("x", 1);
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .track(&mut x)
            .flush_in(&mut tx)
            .await
            .unwrap();
        assert_eq!(rec.inside().len(), 1);
        tx.rollback().await.unwrap();
        assert!(x.is_new());
        // Dropped.
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .track(&mut x)
            .flush_in(&mut tx)
            .await
            .unwrap();
        drop(tx);
        assert!(x.is_new());
        assert!(rec.after().is_empty());
        assert_eq!(count(&engine, "items").await, 0);
        assert_eq!(
            count(&engine, "change_log").await,
            0,
            "the log rolled back with the rows"
        );

        // The in-transaction call fails: everything rolls back, entities unchanged.
        rec.fail.store(true, Ordering::SeqCst);
        let err = engine.flush(&mut x).await.unwrap_err();
        assert!(matches!(err, beeorm::Error::Hook(_)), "{err:?}");
        assert!(x.is_new() && x.id == 0);
        assert_eq!(count(&engine, "items").await, 0);
        assert_eq!(count(&engine, "change_log").await, 0);
        let mut tx = pool.begin().await.unwrap();
        let err = engine
            .flusher()
            .track(&mut x)
            .flush_in(&mut tx)
            .await
            .unwrap_err();
        assert!(matches!(err, beeorm::Error::Hook(_)), "{err:?}");
        assert!(x.is_new() && x.id == 0);
        tx.rollback().await.unwrap();
        assert!(rec.after().is_empty());

        // An update refused: still dirty, the row unchanged.
        rec.fail.store(false, Ordering::SeqCst);
        engine.flush(&mut x).await.unwrap();
        rec.fail.store(true, Ordering::SeqCst);
        x.qty = 9;
        assert!(engine.flush(&mut x).await.is_err());
        assert!(x.is_dirty());
        let qty = query(&engine, "SELECT qty FROM items").await[0][0].as_i64();
        assert_eq!(qty, Some(1));
        assert_eq!(rec.after().len(), 1, "only the insert committed");
        assert_eq!(count(&engine, "change_log").await, 1);
        db.drop().await;
    }
);

dialect_test!(
    fake_delete_state_track_all_and_upsert_columns,
    |db: TestDb| async move {
        let (engine, rec) = engine(&db).await;
        // track_all: many entities, one flush.
        let mut items: Vec<Tracked<Item>> = (0..3).map(|i| item(&format!("i{i}"), i)).collect();
        engine
            .flusher()
            .track_all(&mut items)
            .flush()
            .await
            .unwrap();
        assert!(items.iter().all(|i| i.id > 0 && !i.is_new()));
        for i in items.iter_mut() {
            i.qty += 10;
        }
        engine
            .flusher()
            .track_all(items.iter_mut().filter(|i| i.name != "i0"))
            .flush()
            .await
            .unwrap();
        assert!(items[0].is_dirty() && !items[1].is_dirty() && !items[2].is_dirty());
        assert_eq!(rec.after()[1].len(), 2);

        // A fake delete rolled back leaves the entity as it was; committed, it is
        // not new and its flag reads true.
        let pool = engine.db("default").unwrap();
        let mut a = engine
            .load_by_id::<Item>(items[1].id)
            .await
            .unwrap()
            .unwrap();
        let mut tx = pool.begin().await.unwrap();
        engine
            .flusher()
            .delete(&mut a)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        a.cancel_delete();
        assert!(!a.is_new() && !a.fake_delete && !a.is_dirty());
        engine.delete(&mut a).await.unwrap();
        assert!(!a.is_new() && a.fake_delete && !a.is_dirty());
        assert!(engine.load_by_id::<Item>(a.id).await.unwrap().is_none());
        let by_id = engine
            .read()
            .include_deleted()
            .load_by_id::<Item>(a.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*by_id, *a, "the entity reads as its row");
        // Undelete through the field.
        a.fake_delete = false;
        engine.flush(&mut a).await.unwrap();
        assert!(
            !engine
                .load_by_id::<Item>(a.id)
                .await
                .unwrap()
                .unwrap()
                .fake_delete
        );

        // Upsert columns are checked before anything is sent.
        let before = rec.after().len();
        for bad in ["qtty", "id"] {
            let mut up = item("i2", 0);
            up.on_duplicate_key_update([(bad, 1)]);
            let err = engine.flush(&mut up).await.unwrap_err();
            assert!(
                matches!(&err, beeorm::Error::InvalidArgument { reason, .. } if reason.contains("column") || reason.contains("primary key")),
                "{err:?}"
            );
            assert!(err.to_string().contains(bad), "{err}");
            assert!(up.is_new());
        }
        assert_eq!(rec.after().len(), before, "nothing was written");
        assert_eq!(count(&engine, "items").await, 3);
        db.drop().await;
    }
);

#[derive(Entity, Debug)]
#[orm(table = "lefts", pool = "a_first")]
struct Left {
    id: u64,
    #[orm(unique = "Name")]
    name: String,
}

#[derive(Entity, Debug)]
#[orm(table = "rights", pool = "b_second")]
struct Right {
    id: u64,
    #[orm(unique = "Name")]
    name: String,
}

async fn pool_count(engine: &Engine, pool: &str, table: &str) -> i64 {
    engine
        .db(pool)
        .unwrap()
        .query(&format!("SELECT COUNT(*) FROM {table}"), vec![])
        .await
        .unwrap()[0][0]
        .as_i64()
        .unwrap()
}

dialect_test!(
    a_multi_pool_flush_commits_pool_by_pool,
    |db: TestDb| async move {
        // Needs every driver (the pool pairs cross dialects).
        if !cfg!(all(
            feature = "mysql",
            feature = "postgres",
            feature = "sqlite"
        )) {
            return;
        }
        // Pool `a_first` on this dialect, `b_second` on another one.
        let other_kind = match db.kind {
            Kind::MySql => Kind::Postgres,
            Kind::Postgres => Kind::Sqlite,
            Kind::Sqlite => Kind::MySql,
        };
        let other = TestDb::new(other_kind, &format!("multi_pool_b_{:?}", db.kind)).await;
        let rec = Arc::new(Recorder::default());
        let mut r = Registry::new();
        db.add_pool(&mut r, "a_first");
        other.add_pool(&mut r, "b_second");
        r.register_entity::<Left>()
            .register_entity::<Right>()
            .register_observer(rec.clone());
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        create_log(&engine, "a_first").await;
        create_log(&engine, "b_second").await;
        assert_ne!(
            engine.db("a_first").unwrap().kind(),
            engine.db("b_second").unwrap().kind()
        );
        let _: DialectKind = engine.db("b_second").unwrap().kind();

        let mut taken = Tracked::new(Right {
            id: 0,
            name: "dup".into(),
        });
        engine.flush(&mut taken).await.unwrap();
        let first_after = rec.after().len();

        // Pool b fails after pool a committed.
        let mut left = Tracked::new(Left {
            id: 0,
            name: "l".into(),
        });
        let mut right = Tracked::new(Right {
            id: 0,
            name: "dup".into(),
        });
        let err = engine
            .flusher()
            .track(&mut right)
            .track(&mut left)
            .flush()
            .await
            .unwrap_err();
        match &err {
            beeorm::Error::PartlyCommitted {
                committed,
                failed,
                source,
            } => {
                assert_eq!(committed, &["a_first"]);
                assert_eq!(failed, "b_second");
                assert!(
                    matches!(**source, beeorm::Error::DuplicatedKey { .. }),
                    "{source:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(err.rows_written());
        assert!(err.to_string().contains("a_first"), "{err}");
        assert!(!left.is_new() && left.id > 0 && !left.is_dirty());
        assert!(right.is_new() && right.id == 0);
        assert_eq!(pool_count(&engine, "a_first", "lefts").await, 1);
        assert_eq!(pool_count(&engine, "b_second", "rights").await, 1);
        // Observers saw exactly what committed.
        assert_eq!(
            rec.after()[first_after..],
            [vec![format!("insert lefts {} name=l", left.id)]]
        );
        assert_eq!(
            rec.after_sets.lock().unwrap().last().unwrap().pools(),
            ["a_first"]
        );
        assert_eq!(pool_count(&engine, "a_first", "change_log").await, 1);
        assert_eq!(pool_count(&engine, "b_second", "change_log").await, 1);

        // Flushing the same entities again writes only what is missing.
        right.name = "r".into();
        engine
            .flusher()
            .track(&mut right)
            .track(&mut left)
            .flush()
            .await
            .unwrap();
        assert_eq!(
            rec.after().last().unwrap(),
            &[format!("insert rights {} name=r", right.id)]
        );
        assert_eq!(pool_count(&engine, "a_first", "lefts").await, 1);

        // The first pool fails: its own error, nothing written anywhere.
        let mut left2 = Tracked::new(Left {
            id: 0,
            name: "l".into(),
        });
        let mut right2 = Tracked::new(Right {
            id: 0,
            name: "r2".into(),
        });
        let before = rec.after().len();
        let err = engine
            .flusher()
            .track(&mut left2)
            .track(&mut right2)
            .flush()
            .await
            .unwrap_err();
        assert!(
            matches!(err, beeorm::Error::DuplicatedKey { .. }),
            "{err:?}"
        );
        assert!(!err.rows_written());
        assert!(left2.is_new() && right2.is_new());
        assert_eq!(pool_count(&engine, "b_second", "rights").await, 2);
        assert_eq!(rec.after().len(), before);
        engine.registry().close().await;
        other.drop().await;
        db.drop().await;
    }
);

#[derive(Entity, Debug, Clone)]
#[orm(table = "authors")]
struct Author {
    id: u64,
    name: String,
}

#[derive(Entity, Debug, Clone)]
#[orm(table = "books")]
struct Book {
    id: u64,
    title: String,
    author: Ref<Author>,
}

dialect_test!(
    new_references_and_locked_flushes_go_through_the_seam,
    |db: TestDb| async move {
        let rec = Arc::new(Recorder::default());
        let mut r = db.registry();
        r.register_entity::<Author>()
            .register_entity::<Book>()
            .register_observer(rec.clone());
        // Locked flushes need the `redis` feature.
        #[cfg(feature = "redis")]
        r.register_redis_pool("locks", &redis_url(), 0)
            .register_locker("default", "locks");
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        create_log(&engine, "default").await;

        // The referenced author is inserted first, in the same transaction.
        let mut book = Tracked::new(Book {
            id: 0,
            title: "t".into(),
            author: Ref::new(Author {
                id: 0,
                name: "ann".into(),
            }),
        });
        engine.flush(&mut book).await.unwrap();
        let author = book.author.id();
        assert!(author > 0);
        let want = vec![
            format!("insert authors {author} name=ann"),
            format!("insert books {} title=t author={author}", book.id),
        ];
        assert_eq!(rec.inside(), std::slice::from_ref(&want));
        assert_eq!(rec.after(), [want]);

        // A refused new-reference flush: nothing written, the reference new again.
        rec.fail.store(true, Ordering::SeqCst);
        let mut other = Tracked::new(Book {
            id: 0,
            title: "u".into(),
            author: Ref::new(Author {
                id: 0,
                name: "bob".into(),
            }),
        });
        assert!(engine.flush(&mut other).await.is_err());
        assert!(other.is_new() && other.author.is_new());
        assert_eq!(count(&engine, "authors").await, 1);
        rec.fail.store(false, Ordering::SeqCst);

        // Under a lock.
        #[cfg(feature = "redis")]
        {
            book.title = "locked".into();
            let lock = format!("observers_{:?}_{}", db.kind, std::process::id());
            let second = std::time::Duration::from_secs(1);
            engine
                .flusher()
                .track(&mut book)
                .flush_with_lock("default", &lock, 5 * second, second)
                .await
                .unwrap();
            assert_eq!(
                rec.after().last().unwrap(),
                &[format!("update books {} title:t->locked", book.id)]
            );
            assert_eq!(count(&engine, "change_log").await, 3);
        }
        db.drop().await;
    }
);

#[cfg(feature = "redis")]
fn redis_url() -> String {
    std::env::var("BEEORM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}
