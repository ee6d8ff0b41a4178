//! The read front (issue 11, items 2, 3 and the read side of 9), on every dialect:
//! - a fake-deleted row reads as missing by ID, in searches, in the finders, through
//!   references and preloads and in the query builder, unless `include_deleted`;
//! - preloading is an option of every read method;
//! - reads through a transaction see its own uncommitted writes, reads through the
//!   pool do not, and a transaction used for reads (even one cancelled mid-read)
//!   leaves nothing open once dropped;
//! - the query builder returns tracked entities that can be flushed.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;

use beeorm::prelude::*;
use beeorm::Error;
use common::{sync, Kind, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "towns")]
struct Town {
    id: u64,
    #[orm(length = 50)]
    name: String,
    #[orm(fake_delete)]
    fake_delete: bool,
}

#[derive(Entity, Debug, Clone)]
#[orm(table = "people")]
struct Person {
    id: u64,
    #[orm(length = 50)]
    name: String,
    age: u32,
    town: Option<Ref<Town>>,
}

fn town(name: &str) -> Tracked<Town> {
    Tracked::new(Town {
        id: 0,
        name: name.into(),
        fake_delete: false,
    })
}

fn person(name: &str, age: u32, town: Option<u64>) -> Tracked<Person> {
    Tracked::new(Person {
        id: 0,
        name: name.into(),
        age,
        town: town.map(Ref::from_id),
    })
}

fn register(r: &mut Registry) {
    r.register_entity::<Town>().register_entity::<Person>();
}

async fn engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    register(&mut r);
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

/// An engine whose pool `default` has one connection (MySQL, PostgreSQL): a
/// transaction left open would be on the connection every later statement uses.
async fn one_connection_engine(db: &TestDb) -> Engine {
    let mut r = Registry::new();
    match db.kind {
        Kind::MySql => {
            r.register_mysql_pool("default", &format!("{}?limit_connections=1", db.location))
        }
        Kind::Postgres => {
            r.register_postgres_pool("default", &format!("{}?limit_connections=1", db.location))
        }
        Kind::Sqlite => r.register_sqlite_pool("default", &db.location),
    };
    register(&mut r);
    r.validate().await.unwrap().create_engine()
}

async fn flushed_towns(engine: &Engine, names: &[&str]) -> Vec<Tracked<Town>> {
    let mut out = Vec::new();
    for n in names {
        let mut t = town(n);
        engine.flush(&mut t).await.unwrap();
        out.push(t);
    }
    out
}

fn names(rows: &[Tracked<Town>]) -> Vec<&str> {
    rows.iter().map(|t| t.name.as_str()).collect()
}

fn not_found<T: std::fmt::Debug>(r: beeorm::Result<T>) -> bool {
    matches!(r, Err(Error::NotFound { .. }))
}

/// Polls `f` once.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

/// The read futures are `Send` (they run on multi-threaded runtimes), through a pool
/// and through a transaction: this does not compile otherwise.
fn read_futures_are_send(engine: &Engine, tx: &mut Transaction) {
    fn send<T: Send>(_: T) {}
    send(engine.load_by_id::<Town>(1));
    send(engine.load_by_ids::<Town>(&[1, 2]));
    send(engine.preload(&["town"]).all::<Person>());
    send(engine.read().using(tx).find::<Person>(1));
}

dialect_test!(
    a_fake_deleted_row_reads_as_missing_everywhere,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut towns = flushed_towns(&engine, &["Ada", "Bree", "Cork"]).await;
        let ids: Vec<u64> = towns.iter().map(|t| t.id).collect();
        let mut ann = person("Ann", 30, Some(ids[0]));
        engine.flush(&mut ann).await.unwrap();
        engine.delete(&mut towns[0]).await.unwrap();
        let gone = ids[0];

        // By ID.
        assert!(engine.load_by_id::<Town>(gone).await.unwrap().is_none());
        assert!(not_found(engine.find::<Town>(gone).await));
        let (found, missing) = engine
            .load_by_ids::<Town>(&[ids[2], gone, ids[1]])
            .await
            .unwrap();
        assert_eq!(names(&found), ["Cork", "Bree"]);
        assert_eq!(missing, [gone]);
        let (found, missing) = engine.load_by_ids::<Town>(&[gone]).await.unwrap();
        assert!(found.is_empty() && missing == [gone], "one ID alone too");

        // Searches and finders agree.
        assert_eq!(
            names(&engine.all::<Town>().await.unwrap()),
            ["Bree", "Cork"]
        );
        assert_eq!(engine.first::<Town>().await.unwrap().name, "Bree");
        assert_eq!(engine.last::<Town>().await.unwrap().name, "Cork");
        let (_, total) = engine
            .search_with_count::<Town>(&Where::all(), Pager::new(2, 1))
            .await
            .unwrap();
        assert_eq!(total, 2);
        assert_eq!(
            engine
                .search_ids::<Town>(&Where::all(), Pager::new(1, 10))
                .await
                .unwrap(),
            ids[1..]
        );

        // References and preloads.
        let mut ann = engine.find::<Person>(ann.id).await.unwrap();
        assert!(not_found(
            ann.town.as_mut().unwrap().load(&engine).await.map(|t| t.id)
        ));
        let p = engine
            .preload(&["town"])
            .find::<Person>(ann.id)
            .await
            .unwrap();
        assert!(!p.town.as_ref().unwrap().is_loaded());

        // The query builder: entities skip it (conditions joined by OR included),
        // raw rows do not.
        let mut q = QueryBuilder::<Town>::new();
        q.table("towns")
            .where_(("name", "Ada"))
            .or_where(("name", "Bree"))
            .order_by("id", "ASC");
        let rows = q.all(&engine).await.unwrap();
        assert_eq!(
            rows.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["Bree"]
        );
        let mut q = QueryBuilder::<Tracked<Town>>::new();
        q.table("towns").where_(("name", "Ada"));
        assert!(not_found(q.get(&engine).await));
        let mut q = QueryBuilder::<Vec<Value>>::new();
        q.table("towns");
        assert_eq!(q.all(&engine).await.unwrap().len(), 3);

        // `include_deleted`: found everywhere.
        let r = engine.read().include_deleted();
        let ada = r.load_by_id::<Town>(gone).await.unwrap().unwrap();
        assert!(ada.fake_delete);
        assert_eq!(r.find::<Town>(gone).await.unwrap().name, "Ada");
        let (found, missing) = r.load_by_ids::<Town>(&[ids[2], gone]).await.unwrap();
        assert_eq!((names(&found), missing), (vec!["Cork", "Ada"], vec![]));
        assert_eq!(
            names(&r.all::<Town>().await.unwrap()),
            ["Ada", "Bree", "Cork"]
        );
        assert_eq!(r.first::<Town>().await.unwrap().name, "Ada");
        let (_, total) = r
            .search_with_count::<Town>(&Where::all(), Pager::new(2, 1))
            .await
            .unwrap();
        assert_eq!(total, 3);
        assert_eq!(
            ann.town.as_mut().unwrap().load_with(&r).await.unwrap().name,
            "Ada"
        );
        let p = r.preload(&["town"]).find::<Person>(ann.id).await.unwrap();
        assert_eq!(p.town.as_ref().unwrap().get().unwrap().name, "Ada");
        db.drop().await;
    }
);

dialect_test!(
    query_builder_rows_are_tracked_when_asked,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let towns = flushed_towns(&engine, &["Ada", "Bree"]).await;
        let mut q = QueryBuilder::<Tracked<Town>>::new();
        q.table("towns").where_(("name", "Bree"));
        let mut bree = q.get(&engine).await.unwrap();
        assert!(!bree.is_new() && !bree.is_dirty());
        bree.name = "Bree Hill".into();
        assert!(bree.is_dirty());
        engine.flush(&mut bree).await.unwrap();
        assert_eq!(
            engine.find::<Town>(towns[1].id).await.unwrap().name,
            "Bree Hill"
        );
        let mut q = QueryBuilder::<Tracked<Town>>::new();
        q.table("towns").order_by("id", "DESC");
        let rows = q.all(&engine).await.unwrap();
        assert_eq!(names(&rows), ["Bree Hill", "Ada"]);
        db.drop().await;
    }
);

dialect_test!(
    preloading_is_an_option_of_every_read,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let towns = flushed_towns(&engine, &["Ada", "Bree"]).await;
        let mut ann = person("Ann", 30, Some(towns[0].id));
        let mut bob = person("Bob", 40, Some(towns[1].id));
        engine
            .flusher()
            .track(&mut ann)
            .track(&mut bob)
            .flush()
            .await
            .unwrap();
        let loaded = |p: &Tracked<Person>| p.town.as_ref().is_some_and(|t| t.is_loaded());
        let all = Where::all();

        let r: Reader<'_> = engine.read().preload(&["town"]);
        assert!(loaded(
            &r.load_by_id::<Person>(ann.id).await.unwrap().unwrap()
        ));
        assert!(loaded(&r.find::<Person>(ann.id).await.unwrap()));
        let (rows, _) = r.load_by_ids::<Person>(&[bob.id, ann.id]).await.unwrap();
        assert!(rows.len() == 2 && rows.iter().all(loaded));
        let rows = r.search::<Person>(&all, Pager::new(1, 10)).await.unwrap();
        assert!(rows.len() == 2 && rows.iter().all(loaded));
        let (rows, total) = r
            .search_with_count::<Person>(&all, Pager::new(1, 1))
            .await
            .unwrap();
        assert!(rows.len() == 1 && loaded(&rows[0]) && total == 2);
        assert!(loaded(
            &r.search_one::<Person>(&all).await.unwrap().unwrap()
        ));
        let rows = r.all::<Person>().await.unwrap();
        assert!(rows.len() == 2 && rows.iter().all(loaded));
        assert!(loaded(&r.first::<Person>().await.unwrap()));
        let bob_again = r.last::<Person>().await.unwrap();
        assert_eq!(bob_again.town.as_ref().unwrap().get().unwrap().name, "Bree");

        // Rows read without the option, filled afterwards.
        let mut rows = engine.all::<Person>().await.unwrap();
        assert!(!rows.iter().any(loaded));
        r.fill(&mut rows).await.unwrap();
        assert!(rows.iter().all(loaded));

        // A path naming no reference: a typed error, whatever the method.
        let bad = engine.read().preload(&["nope"]);
        assert!(matches!(
            bad.find::<Person>(ann.id).await,
            Err(Error::UnknownReference { .. })
        ));
        assert!(matches!(
            bad.first::<Person>().await,
            Err(Error::UnknownReference { .. })
        ));
        // Without the option nothing is preloaded.
        assert!(!loaded(&engine.find::<Person>(ann.id).await.unwrap()));
        db.drop().await;
    }
);

dialect_test!(
    reads_through_a_transaction_see_its_own_writes,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let ada = flushed_towns(&engine, &["Ada"]).await.remove(0);
        let mut bob = person("Bob", 30, Some(ada.id));
        engine.flush(&mut bob).await.unwrap();

        let mut tx = engine.db("default").unwrap().begin().await.unwrap();
        // Written inside: an insert and an update by `flush_in`, an insert by plain SQL.
        let mut dale = town("Dale");
        bob.age = 31;
        engine
            .flusher()
            .track(&mut dale)
            .track(&mut bob)
            .flush_in(&mut tx)
            .await
            .unwrap();
        let mut ann = person("Ann", 25, Some(dale.id));
        engine
            .flusher()
            .track(&mut ann)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.execute(
            "INSERT INTO towns (name, fake_delete) VALUES ('Eton', 0)",
            vec![],
        )
        .await
        .unwrap();
        {
            let r = engine.read().using(&mut tx);
            assert_eq!(r.find::<Town>(dale.id).await.unwrap().name, "Dale");
            assert_eq!(
                r.load_by_id::<Person>(bob.id).await.unwrap().unwrap().age,
                31
            );
            let (found, missing) = r
                .load_by_ids::<Person>(&[ann.id, bob.id, 999_999])
                .await
                .unwrap();
            assert_eq!(found.len(), 2);
            assert_eq!(missing, [999_999]);
            let eton = r
                .search_one::<Town>(&Where::new("name = ?", "Eton"))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                names(&r.all::<Town>().await.unwrap()),
                ["Ada", "Dale", "Eton"]
            );
            assert_eq!(r.last::<Town>().await.unwrap().id, eton.id);
            let (ids, total) = r
                .search_ids_with_count::<Town>(&Where::all(), Pager::new(1, 2))
                .await
                .unwrap();
            assert_eq!((ids.len(), total), (2, 3));
            // Preloads and references read through it too.
            let a = r
                .clone()
                .preload(&["town"])
                .find::<Person>(ann.id)
                .await
                .unwrap();
            assert_eq!(a.town.as_ref().unwrap().get().unwrap().name, "Dale");
            let mut a = r.find::<Person>(ann.id).await.unwrap();
            assert_eq!(
                a.town.as_mut().unwrap().load_with(&r).await.unwrap().name,
                "Dale"
            );
            // Reads through the pool see only what is committed (MVCC on MySQL and
            // PostgreSQL, WAL on SQLite: they do not wait for the transaction).
            assert!(engine.load_by_id::<Town>(dale.id).await.unwrap().is_none());
            assert!(engine.load_by_id::<Town>(eton.id).await.unwrap().is_none());
            assert_eq!(engine.find::<Person>(bob.id).await.unwrap().age, 30);
            assert_eq!(names(&engine.all::<Town>().await.unwrap()), ["Ada"]);
            let mut outside = Ref::<Town>::from_id(dale.id);
            assert!(not_found(outside.load(&engine).await.map(|t| t.id)));
        }
        tx.commit().await.unwrap();
        assert_eq!(engine.find::<Town>(dale.id).await.unwrap().name, "Dale");
        assert_eq!(engine.find::<Person>(bob.id).await.unwrap().age, 31);
        assert_eq!(engine.all::<Town>().await.unwrap().len(), 3);
        db.drop().await;
    }
);

dialect_test!(
    a_dropped_transaction_used_for_reads_leaves_nothing_open,
    |db: TestDb| async move {
        engine(&db).await; // the schema
        let engine = one_connection_engine(&db).await;
        let other = one_connection_engine(&db).await;
        for cancel in [false, true] {
            let mut tx = engine.db("default").unwrap().begin().await.unwrap();
            let mut t = town("in tx");
            engine
                .flusher()
                .track(&mut t)
                .flush_in(&mut tx)
                .await
                .unwrap();
            let id = t.id;
            let mut pending = false;
            {
                let r = engine.read().using(&mut tx);
                if cancel {
                    // Dropped after its first poll, mid-statement where it got there.
                    let mut read = pin!(r.find::<Town>(id));
                    pending = poll_once(&mut read).await.is_pending();
                    // SQLite runs a statement that waits for no lock inline: it is
                    // done at its first poll; the servers' are in flight.
                    assert_eq!(pending, db.kind != Kind::Sqlite);
                } else {
                    assert_eq!(r.find::<Town>(id).await.unwrap().name, "in tx");
                }
            }
            if pending {
                // The connection's state is unknown: the transaction takes no more
                // statements.
                assert!(
                    matches!(
                        tx.query("SELECT 1", vec![]).await,
                        Err(Error::Connection { .. })
                    ),
                    "cancel={cancel}"
                );
            }
            drop(tx);
            // Rolled back, and the pool's connection is back in autocommit mode: a
            // write through it is committed and seen from another pool.
            assert!(engine.load_by_id::<Town>(id).await.unwrap().is_none());
            let mut probe = town("probe");
            engine.flush(&mut probe).await.unwrap();
            assert_eq!(
                other.find::<Town>(probe.id).await.unwrap().name,
                "probe",
                "cancel={cancel}"
            );
            assert!(t.is_new(), "the entity follows the rolled-back transaction");
        }
        db.drop().await;
    }
);

dialect_test!(
    reading_through_a_transaction_of_another_pool_is_a_typed_error,
    |db: TestDb| async move {
        engine(&db).await; // the schema, synced with one pool
        let mut r = db.registry();
        db.add_pool(&mut r, "other");
        register(&mut r);
        let engine = r.validate().await.unwrap().create_engine();
        let mut tx = engine.db("other").unwrap().begin().await.unwrap();
        assert_eq!(tx.pool_name(), "other");
        let err = engine
            .read()
            .using(&mut tx)
            .find::<Town>(1)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument { reason, .. } if reason.contains("`default`")),
            "{err:?}"
        );
        tx.rollback().await.unwrap();
        db.drop().await;
    }
);
