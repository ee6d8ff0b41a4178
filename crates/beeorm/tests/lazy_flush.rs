//! The lazy flush (C8, issue 13 item 6) on every dialect with a real Redis: writes
//! land when the applier runs and not before, exactly once (redelivery, a SIGKILLed
//! applier), in order per entity; caches hold the applied row and never one that is
//! not in the database; a hopeless write ends in the dead-letter stream, the rest is
//! applied. Each test has its own database and its own namespace (so its own stream).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common_redis/mod.rs"]
mod common_redis;

use std::time::{Duration, Instant};

use beeorm::prelude::*;
use beeorm::{Error, ValidatedRegistry};
use common::{Kind, TestDb};

#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache)]
struct Account {
    id: u64,
    name: String,
    age: u32,
    #[orm(fake_delete)]
    fake_delete: bool,
}

#[derive(Entity, Clone, Debug, PartialEq)]
struct Visit {
    id: u64,
    #[orm(length = 5)]
    page: String,
    hits: u32,
}

/// A logged entity: lazy writes of it are logged when the applier commits them.
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(log)]
struct Ledger {
    id: u64,
    #[orm(length = 20)]
    note: String,
    amount: u32,
}

/// One stream entry as XRANGE returns it: ID and fields.
type RawEntry = (String, Vec<(String, Vec<u8>)>);

/// The crash test's worker: its configuration (JSON) in this variable.
const WORKER_ENV: &str = "BEEORM_LAZY_WORKER";

/// A namespace no other test or run uses.
fn namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("lz{}_{nanos}_{test}", std::process::id())
}

fn registry_on(kind: Kind, location: &str, ns: &str) -> Registry {
    let mut r = Registry::new();
    match kind {
        Kind::MySql => r.register_mysql_pool("default", location),
        Kind::Postgres => r.register_postgres_pool("default", location),
        Kind::Sqlite => r.register_sqlite_pool("default", location),
    };
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_local_cache("default", 10_000)
        .set_cache_namespace(ns)
        .enable_lazy_flush("default")
        .register_entity::<Account>()
        .register_entity::<Visit>()
        .register_entity::<Ledger>();
    r
}

async fn node(db: &TestDb, ns: &str) -> ValidatedRegistry {
    registry_on(db.kind, &db.location, ns)
        .validate()
        .await
        .unwrap()
}

async fn setup(db: &TestDb, test: &str) -> (String, ValidatedRegistry) {
    let ns = namespace(test);
    let r = node(db, &ns).await;
    common::sync(&r.create_engine()).await;
    (ns, r)
}

/// Entries waiting in the lazy stream of `ns`.
async fn stream_len(engine: &Engine, ns: &str) -> u64 {
    engine
        .redis("default")
        .unwrap()
        .query::<u64>(beeorm::redis::driver::cmd("XLEN").arg(format!("{{{ns}:lazy}}")))
        .await
        .unwrap()
}

async fn cleanup(engine: &Engine, ns: &str) {
    let redis = engine.redis("default").unwrap();
    redis
        .del(vec![
            format!("{{{ns}:lazy}}"),
            format!("{{{ns}:lazy}}:dead"),
        ])
        .await
        .unwrap();
}

/// A query written with backtick identifiers, on any dialect.
async fn q(kind: Kind, engine: &Engine, sql: &str) -> Vec<Vec<Value>> {
    common::query(engine, &common::native(kind, sql)).await
}

async fn x(kind: Kind, engine: &Engine, sql: &str) {
    common::exec(engine, &common::native(kind, sql)).await
}

/// An integer cell, whatever its type (PostgreSQL stores `u64` as NUMERIC).
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Decimal(d) => d.to_string().parse().ok(),
        other => other.as_i64(),
    }
}

async fn count(kind: Kind, engine: &Engine, sql: &str) -> i64 {
    int(&q(kind, engine, sql).await[0][0]).unwrap()
}

fn account(id: u64, name: &str, age: u32) -> Tracked<Account> {
    Tracked::new(Account {
        id,
        name: name.into(),
        age,
        fake_delete: false,
    })
}

fn consumer(engine: &Engine) -> beeorm::LazyConsumer {
    engine
        .lazy_consumer()
        .unwrap()
        .backoff(Duration::from_millis(1))
        .lease_wait(Duration::from_secs(10))
}

dialect_test!(
    writes_land_when_the_applier_runs_not_before,
    |db: TestDb| async move {
        let (ns, r) = setup(&db, "land").await;
        let e = r.create_engine();
        // Rows to update and delete, written directly.
        let mut old = account(10, "Old", 1);
        let mut gone = account(11, "Gone", 2);
        let mut erased = account(12, "Erased", 3);
        e.flusher()
            .track(&mut old)
            .track(&mut gone)
            .track(&mut erased)
            .flush()
            .await
            .unwrap();

        let mut ann = account(1, "Ann", 30);
        let mut bob = account(2, "Bob", 40);
        old.name = "New".into();
        let mut f = e.flusher();
        f.track(&mut ann)
            .track(&mut bob)
            .track(&mut old)
            .delete(&mut gone)
            .force_delete(&mut erased);
        f.flush_lazy().await.unwrap();
        drop(f);
        // The entities count as saved; nothing is written yet.
        assert!(!ann.is_new() && !ann.is_dirty() && !old.is_dirty());
        assert_eq!(stream_len(&e, &ns).await, 5);
        // The backlog shows in the broker's statistics (and `beeorm streams`).
        let stats = e.event_broker().stats().await.unwrap();
        let lazy = stats
            .iter()
            .find(|s| s.stream == format!("{{{ns}:lazy}}"))
            .expect("the lazy stream is in the statistics");
        assert_eq!(lazy.length, 5);
        assert_eq!(lazy.groups.len(), 1);
        assert_eq!(lazy.groups[0].lag, Some(5));
        let dead = stats
            .iter()
            .find(|s| s.stream == format!("{{{ns}:lazy}}:dead"))
            .expect("the dead-letter stream is in the statistics");
        assert_eq!(dead.length, 0);
        assert_eq!(
            count(db.kind, &e, "SELECT COUNT(*) FROM `Account`").await,
            3
        );
        assert_eq!(
            q(db.kind, &e, "SELECT name FROM `Account` WHERE id = 10").await[0][0],
            Value::String("Old".into())
        );

        assert_eq!(consumer(&e).drain().await.unwrap(), 5);
        let rows = q(
            db.kind,
            &e,
            "SELECT id, name, age, fake_delete FROM `Account` ORDER BY id",
        )
        .await;
        let ids: Vec<i64> = rows.iter().map(|r| int(&r[0]).unwrap()).collect();
        assert_eq!(ids, vec![1, 2, 10, 11], "the force-deleted row is gone");
        assert_eq!(rows[0][1], Value::String("Ann".into()));
        assert_eq!(rows[2][1], Value::String("New".into()));
        assert_eq!(
            int(&rows[3][3]),
            Some(11),
            "the fake-deleted row holds its ID in the flag"
        );
        assert_eq!(int(&rows[0][3]), Some(0));
        // Applied entries leave the stream; a second drain finds nothing.
        assert_eq!(stream_len(&e, &ns).await, 0);
        assert_eq!(consumer(&e).drain().await.unwrap(), 0);
        // The applied-entries table survives the alters.
        common::sync(&e).await;
        assert!(e.lazy_dead_letters().unwrap().is_empty().await.unwrap());
        cleanup(&e, &ns).await;
        db.drop().await;
    }
);

dialect_test!(
    caches_hold_the_applied_row_and_never_an_unwritten_one,
    |db: TestDb| async move {
        let (ns, a) = setup(&db, "cache").await;
        let b = node(&db, &ns).await; // another process: its own local layer
        let (ea, eb) = (a.create_engine(), b.create_engine());
        // Both remember that row 5 is missing.
        assert!(ea.load_by_id::<Account>(5).await.unwrap().is_none());
        assert!(eb.load_by_id::<Account>(5).await.unwrap().is_none());

        let mut acc = account(5, "Ann", 30);
        ea.flusher().track(&mut acc).flush_lazy().await.unwrap();
        // Published, not written: no cache holds the row.
        assert!(ea.load_by_id::<Account>(5).await.unwrap().is_none());
        assert!(eb.load_by_id::<Account>(5).await.unwrap().is_none());
        let redis = ea.redis("default").unwrap();
        let keys = redis.scan_match(&format!("{ns}*")).await.unwrap();
        for k in &keys {
            if let Some(v) = redis.get::<_, Vec<u8>>(k.as_str()).await.ok().flatten() {
                assert!(
                    !String::from_utf8_lossy(&v).contains("Ann"),
                    "a cache holds the row before it is written: {k}"
                );
            }
        }

        // The applier runs in a third registry.
        let applier = node(&db, &ns).await.create_engine();
        consumer(&applier).drain().await.unwrap();
        let wait = |e: Engine, name: &'static str| async move {
            let start = Instant::now();
            loop {
                if let Some(row) = e.load_by_id::<Account>(5).await.unwrap() {
                    if row.name == name {
                        return;
                    }
                }
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "the cache never showed {name}"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        wait(ea.clone(), "Ann").await;
        wait(eb.clone(), "Ann").await;

        // An update: the old row until the applier commits, the new one after.
        let mut loaded = ea.find::<Account>(5).await.unwrap();
        loaded.name = "Bea".into();
        ea.flusher().track(&mut loaded).flush_lazy().await.unwrap();
        assert_eq!(eb.find::<Account>(5).await.unwrap().name, "Ann");
        consumer(&applier).drain().await.unwrap();
        wait(ea.clone(), "Bea").await;
        wait(eb.clone(), "Bea").await;
        assert_eq!(
            q(db.kind, &ea, "SELECT name FROM `Account` WHERE id = 5").await[0][0],
            Value::String("Bea".into())
        );
        cleanup(&ea, &ns).await;
        db.drop().await;
    }
);

dialect_test!(
    an_entry_applied_before_is_skipped_and_pending_ones_are_applied_first,
    |db: TestDb| async move {
        let (ns, r) = setup(&db, "dedup").await;
        let e = r.create_engine();
        let redis = e.redis("default").unwrap();
        let stream = format!("{{{ns}:lazy}}");
        let mut ann = account(1, "Ann", 30);
        e.flusher().track(&mut ann).flush_lazy().await.unwrap();
        // A crashed applier: it read the entry (pending now), wrote the row and
        // recorded the entry in the same transaction, then died before the ack.
        let read: beeorm::redis::driver::Value = redis
            .query(
                beeorm::redis::driver::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("beeorm-lazy")
                    .arg("applier")
                    .arg("COUNT")
                    .arg(10)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(">"),
            )
            .await
            .unwrap();
        assert!(format!("{read:?}").contains("lazy"));
        let entry: Vec<RawEntry> = redis
            .query(
                beeorm::redis::driver::cmd("XRANGE")
                    .arg(&stream)
                    .arg("-")
                    .arg("+"),
            )
            .await
            .unwrap();
        assert_eq!(entry.len(), 1);
        assert_eq!(consumer(&e).drain().await.unwrap(), 1);
        // drain applied it (pending first); now simulate the redelivery of an
        // entry whose transaction committed: same entry ID, recorded as applied.
        assert_eq!(
            count(db.kind, &e, "SELECT COUNT(*) FROM `Account`").await,
            1
        );
        let entry_id = &entry[0].0;
        assert_eq!(
            count(
                db.kind,
                &e,
                &format!(
                    "SELECT COUNT(*) FROM _beeorm_lazy_applied WHERE entry_id = '{ns}/{entry_id}'"
                )
            )
            .await,
            1,
            "the applied entry is recorded"
        );
        // Put the very same entry back (its ID is recorded): nothing changes.
        let fields = &entry[0].1;
        let mut again = beeorm::redis::driver::cmd("XADD");
        again.arg(&stream).arg("*");
        for (k, v) in fields {
            again.arg(k).arg(v.as_slice());
        }
        let new_id: String = redis.query(&again).await.unwrap();
        // The record is per entry ID: move the record to the new ID, as if this
        // were a redelivery of the committed one.
        x(
            db.kind,
            &e,
            &format!(
                "UPDATE _beeorm_lazy_applied SET entry_id = '{ns}/{new_id}' WHERE entry_id = '{ns}/{entry_id}'"
            ),
        )
        .await;
        // A record past the retention: pruned by the next applier.
        x(
            db.kind,
            &e,
            "INSERT INTO _beeorm_lazy_applied (entry_id, applied_at) VALUES ('old/1-0', 0)",
        )
        .await;
        assert_eq!(consumer(&e).drain().await.unwrap(), 1);
        assert_eq!(
            count(
                db.kind,
                &e,
                "SELECT COUNT(*) FROM _beeorm_lazy_applied WHERE entry_id = 'old/1-0'"
            )
            .await,
            0,
            "old records are pruned"
        );
        assert_eq!(
            count(db.kind, &e, "SELECT COUNT(*) FROM `Account`").await,
            1
        );
        assert!(
            e.lazy_dead_letters().unwrap().is_empty().await.unwrap(),
            "the duplicate insert was skipped, not tried"
        );
        cleanup(&e, &ns).await;
        db.drop().await;
    }
);

dialect_test!(
    writes_of_one_entity_apply_in_order,
    |db: TestDb| async move {
        let (ns, r) = setup(&db, "order").await;
        let e = r.create_engine();
        let mut v = Tracked::new(Visit {
            id: 7,
            page: "/a".into(),
            hits: 1,
        });
        e.flusher().track(&mut v).flush_lazy().await.unwrap();
        for hits in 2..=5 {
            v.hits = hits;
            e.flusher().track(&mut v).flush_lazy().await.unwrap();
        }
        let mut w = Tracked::new(Visit {
            id: 8,
            page: "/b".into(),
            hits: 1,
        });
        e.flusher().track(&mut w).flush_lazy().await.unwrap();
        e.flusher().delete(&mut w).flush_lazy().await.unwrap();
        // Batches of 2 cut the sequence in the middle of the entity's writes.
        assert_eq!(consumer(&e).batch_size(2).drain().await.unwrap(), 7);
        let rows = q(db.kind, &e, "SELECT id, hits FROM `Visit` ORDER BY id").await;
        assert_eq!(rows.len(), 1, "the insert then the delete of 8: no row");
        assert_eq!(rows[0][1].as_i64(), Some(5), "the last update wins");
        cleanup(&e, &ns).await;
        db.drop().await;
    }
);

dialect_test!(
    a_write_that_keeps_failing_is_dead_lettered_and_the_rest_applied,
    |db: TestDb| async move {
        let (ns, r) = setup(&db, "dead").await;
        let e = r.create_engine();
        let mut existing = Tracked::new(Visit {
            id: 1,
            page: "/x".into(),
            hits: 1,
        });
        e.flush(&mut existing).await.unwrap();
        // A lazy insert of the same ID: a duplicate key every time.
        let mut clash = Tracked::new(Visit {
            id: 1,
            page: "/y".into(),
            hits: 9,
        });
        let mut fine = Tracked::new(Visit {
            id: 2,
            page: "/z".into(),
            hits: 2,
        });
        e.flusher()
            .track(&mut clash)
            .track(&mut fine)
            .flush_lazy()
            .await
            .unwrap();
        let mut later = Tracked::new(Visit {
            id: 3,
            page: "/w".into(),
            hits: 3,
        });
        e.flusher().track(&mut later).flush_lazy().await.unwrap();
        assert_eq!(consumer(&e).attempts(2).drain().await.unwrap(), 3);
        let rows = q(db.kind, &e, "SELECT id, page FROM `Visit` ORDER BY id").await;
        let ids: Vec<i64> = rows.iter().map(|r| int(&r[0]).unwrap()).collect();
        assert_eq!(
            ids,
            vec![1, 2, 3],
            "the other writes of the batch and later ones landed"
        );
        assert_eq!(rows[0][1], Value::String("/x".into()));

        let dead = e.lazy_dead_letters().unwrap();
        assert_eq!(dead.len().await.unwrap(), 1);
        let letters = dead.list(10).await.unwrap();
        let letter = &letters[0];
        assert_eq!(letter.entity.as_deref(), Some("Visit"));
        assert_eq!(letter.op, Some("insert"));
        assert_eq!(letter.entity_id, Some(1));
        assert!(
            letter.error.to_lowercase().contains("duplicate")
                || letter.error.contains("UNIQUE")
                || letter.error.contains("unique"),
            "{}",
            letter.error
        );
        assert!(!letter.source_id.is_empty());
        assert_eq!(
            stream_len(&e, &ns).await,
            0,
            "acknowledged: nothing pending"
        );

        // Retry after fixing the cause: the write lands.
        x(db.kind, &e, "DELETE FROM `Visit` WHERE id = 1").await;
        assert!(dead.retry(&letter.id).await.unwrap());
        assert!(!dead.retry(&letter.id).await.unwrap(), "moved, not copied");
        assert!(dead.is_empty().await.unwrap());
        assert_eq!(consumer(&e).drain().await.unwrap(), 1);
        assert_eq!(
            q(db.kind, &e, "SELECT page FROM `Visit` WHERE id = 1").await[0][0],
            Value::String("/y".into())
        );

        // Drop: a letter gone for good.
        let mut clash = Tracked::new(Visit {
            id: 2,
            page: "/q".into(),
            hits: 1,
        });
        e.flusher().track(&mut clash).flush_lazy().await.unwrap();
        consumer(&e).attempts(1).drain().await.unwrap();
        let letters = dead.list(10).await.unwrap();
        assert_eq!(letters.len(), 1);
        assert!(dead.drop(&letters[0].id).await.unwrap());
        assert!(!dead.drop(&letters[0].id).await.unwrap());
        assert!(dead.is_empty().await.unwrap());
        // A malformed ID is the server's error, typed.
        assert!(matches!(
            dead.retry("not-an-id").await,
            Err(Error::Redis { .. })
        ));
        cleanup(&e, &ns).await;
        db.drop().await;
    }
);

dialect_test!(
    a_value_the_column_cannot_hold_fails_before_anything_is_published,
    |db: TestDb| async move {
        let (ns, r) = setup(&db, "range").await;
        let e = r.create_engine();
        let mut ok = Tracked::new(Visit {
            id: 1,
            page: "/ok".into(),
            hits: 1,
        });
        let mut long = Tracked::new(Visit {
            id: 2,
            page: "/much-too-long".into(),
            hits: 1,
        });
        let err = e
            .flusher()
            .track(&mut ok)
            .track(&mut long)
            .flush_lazy()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
        assert_eq!(stream_len(&e, &ns).await, 0, "nothing published");
        assert!(
            ok.is_new() && long.is_new(),
            "the entities are as they were"
        );
        cleanup(&e, &ns).await;
        db.drop().await;
    }
);

dialect_test!(
    writes_a_lazy_flush_cannot_carry_are_refused,
    |db: TestDb| async move {
        let (ns, r) = setup(&db, "refuse").await;
        let e = r.create_engine();
        let mut no_id = account(0, "NoId", 1);
        let err = e
            .flusher()
            .track(&mut no_id)
            .flush_lazy()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Flush { reason, .. } if reason.contains("explicit ID")),
            "{err}"
        );
        let mut up = account(3, "Up", 1);
        up.on_duplicate_key_update([("name", "Up")]);
        let err = e.flusher().track(&mut up).flush_lazy().await.unwrap_err();
        assert!(
            matches!(&err, Error::Flush { reason, .. } if reason.contains("upsert")),
            "{err}"
        );
        assert_eq!(stream_len(&e, &ns).await, 0);

        // Not enabled: a typed error, not a panic.
        let mut plain = db.registry();
        plain.register_entity::<Visit>();
        let plain = plain.validate().await.unwrap().create_engine();
        let mut v = Tracked::new(Visit {
            id: 1,
            page: "/".into(),
            hits: 1,
        });
        assert!(matches!(
            plain.flusher().track(&mut v).flush_lazy().await,
            Err(Error::Config(_))
        ));
        assert!(matches!(plain.lazy_consumer(), Err(Error::Config(_))));
        assert!(matches!(plain.lazy_dead_letters(), Err(Error::Config(_))));
        cleanup(&e, &ns).await;
        db.drop().await;
    }
);

#[tokio::test]
async fn lazy_flush_configuration_errors_are_typed() {
    // An unknown Redis pool.
    let mut r = Registry::new();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .set_cache_namespace("lzcfg")
        .enable_lazy_flush("missing");
    assert!(matches!(
        r.validate().await,
        Err(Error::UnknownPool { pool, .. }) if pool == "missing"
    ));
    // No namespace.
    let mut r = Registry::new();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .enable_lazy_flush("default");
    assert!(matches!(r.validate().await, Err(Error::Config(m)) if m.contains("namespace")));
    // YAML: `lazy_flush: true` without a Redis pool in the section.
    let err =
        Registry::from_yaml("default:\n  sqlite: ':memory:'\n  lazy_flush: true\n").unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("lazy_flush")),
        "{err}"
    );
    // YAML that enables it; the group exists after validate.
    let ns = namespace("yaml");
    let yaml = format!(
        "default:\n  redis: {}:0\n  lazy_flush: true\n",
        common_redis::redis_url().trim_start_matches("redis://")
    );
    let mut r = Registry::from_yaml(&yaml).unwrap();
    r.set_cache_namespace(&ns);
    let e = r.validate().await.unwrap().create_engine();
    let groups: Vec<Vec<beeorm::redis::driver::Value>> = e
        .redis("default")
        .unwrap()
        .query(
            beeorm::redis::driver::cmd("XINFO")
                .arg("GROUPS")
                .arg(format!("{{{ns}:lazy}}")),
        )
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert!(format!("{:?}", groups[0]).contains("beeorm-lazy"));
    cleanup(&e, &ns).await;
}

dialect_test!(
    run_applies_as_writes_come_and_stops_on_request,
    |db: TestDb| async move {
        let (ns, r) = setup(&db, "run").await;
        let e = r.create_engine();
        let applier = consumer(&e).poll_interval(Duration::from_millis(5));
        let stop = applier.stop_handle();
        let task = tokio::spawn(async move { applier.run().await });
        // A second applier cannot run meanwhile: the lease is held.
        let start = Instant::now();
        let second = loop {
            match e
                .lazy_consumer()
                .unwrap()
                .lease_wait(Duration::ZERO)
                .drain()
                .await
            {
                Err(err) => break err,
                Ok(_) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(5),
                        "the lease was never taken"
                    );
                    tokio::task::yield_now().await;
                }
            }
        };
        assert!(matches!(second, Error::LockNotObtained { .. }), "{second}");
        for id in 1..=3u64 {
            let mut v = Tracked::new(Visit {
                id,
                page: "/".into(),
                hits: 1,
            });
            e.flusher().track(&mut v).flush_lazy().await.unwrap();
        }
        let start = Instant::now();
        while count(db.kind, &e, "SELECT COUNT(*) FROM `Visit`").await < 3 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "run never applied the writes"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.stop();
        let handled = task.await.unwrap().unwrap();
        assert_eq!(handled, 3);
        // The lease is given back: another applier runs at once.
        assert_eq!(
            e.lazy_consumer()
                .unwrap()
                .lease_wait(Duration::ZERO)
                .drain()
                .await
                .unwrap(),
            0
        );
        cleanup(&e, &ns).await;
        db.drop().await;
    }
);

/// A dead database is not the write's fault: the applier returns the error, nothing
/// is dead-lettered, and the next applier (database back) applies everything.
#[tokio::test]
async fn a_dead_database_leaves_the_writes_pending() {
    let db = TestDb::new(Kind::MySql, "lazy_dead_db").await;
    let (ns, r) = setup(&db, "deaddb").await;
    let e = r.create_engine();
    let mut broken = registry_on(Kind::MySql, "mysql://root@127.0.0.1:1/nowhere", &ns);
    broken.set_sql_timeouts(
        "default",
        Duration::from_millis(300),
        Duration::from_millis(300),
        Duration::from_millis(300),
    );
    let broken = broken.validate().await.unwrap().create_engine();
    let mut v = Tracked::new(Visit {
        id: 1,
        page: "/".into(),
        hits: 1,
    });
    // Publishing needs no database.
    broken.flusher().track(&mut v).flush_lazy().await.unwrap();
    let err = consumer(&broken).drain().await.unwrap_err();
    assert!(
        matches!(err, Error::Connection { .. } | Error::Timeout { .. }),
        "{err}"
    );
    assert!(e.lazy_dead_letters().unwrap().is_empty().await.unwrap());
    assert_eq!(stream_len(&e, &ns).await, 1, "still there, pending");
    assert_eq!(consumer(&e).drain().await.unwrap(), 1);
    assert_eq!(
        count(Kind::MySql, &e, "SELECT COUNT(*) FROM `Visit`").await,
        1
    );
    cleanup(&e, &ns).await;
    db.drop().await;
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(table = "others", pool = "second")]
struct Other {
    id: u64,
    label: String,
}

/// Records what observers are told.
#[derive(Default)]
struct Seen {
    in_tx: std::sync::Mutex<Vec<(String, u64)>>,
    after: std::sync::Mutex<Vec<(String, u64)>>,
}

impl beeorm::Observer for Seen {
    fn in_transaction<'a>(
        &'a self,
        changes: &'a beeorm::ChangeSet,
        _tx: &'a mut beeorm::ObserverTx<'_>,
    ) -> beeorm::hooks::BoxFuture<'a, beeorm::Result<()>> {
        let mut v = self.in_tx.lock().unwrap();
        v.extend(changes.iter().map(|c| (c.table.clone(), c.id)));
        Box::pin(async { Ok(()) })
    }

    fn after_commit<'a>(
        &'a self,
        changes: &'a beeorm::ChangeSet,
    ) -> beeorm::hooks::BoxFuture<'a, beeorm::Result<()>> {
        let mut v = self.after.lock().unwrap();
        v.extend(changes.iter().map(|c| (c.table.clone(), c.id)));
        Box::pin(async { Ok(()) })
    }
}

/// Two pools in one batch: the pool that fails is retried and its write
/// dead-lettered; the other pool's writes commit once, and observers hear of each
/// committed write once (in the transaction and after it), never of the failed one.
#[tokio::test]
async fn a_batch_over_two_pools_commits_each_pool_once() {
    let dir = tempfile::tempdir().unwrap();
    let ns = namespace("pools");
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let seen = std::sync::Arc::new(Seen::default());
    let mut r = registry_on(Kind::Sqlite, &path("a.db"), &ns);
    r.register_sqlite_pool("second", &path("b.db"))
        .register_entity::<Other>()
        .register_observer(seen.clone());
    let e = r.validate().await.unwrap().create_engine();
    common::sync(&e).await;
    e.db("second")
        .unwrap()
        .execute("DROP TABLE others", vec![])
        .await
        .unwrap();
    let mut v1 = Tracked::new(Visit {
        id: 1,
        page: "/".into(),
        hits: 1,
    });
    let mut o = Tracked::new(Other {
        id: 1,
        label: "x".into(),
    });
    let mut v2 = Tracked::new(Visit {
        id: 2,
        page: "/".into(),
        hits: 1,
    });
    e.flusher()
        .track(&mut v1)
        .track(&mut o)
        .track(&mut v2)
        .flush_lazy()
        .await
        .unwrap();
    assert_eq!(consumer(&e).attempts(3).drain().await.unwrap(), 3);
    assert_eq!(
        count(Kind::Sqlite, &e, "SELECT COUNT(*) FROM `Visit`").await,
        2
    );
    let letters = e.lazy_dead_letters().unwrap().list(10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].entity.as_deref(), Some("Other"));
    assert!(letters[0].error.contains("others"), "{}", letters[0].error);
    let visits = vec![("Visit".to_string(), 1), ("Visit".to_string(), 2)];
    assert_eq!(
        *seen.in_tx.lock().unwrap(),
        visits,
        "one in-transaction call per committed write"
    );
    assert_eq!(
        *seen.after.lock().unwrap(),
        visits,
        "one after-commit per committed write"
    );

    // The table back, the letter retried: applied.
    common::sync(&e).await;
    let dead = e.lazy_dead_letters().unwrap();
    assert!(dead.retry(&letters[0].id).await.unwrap());
    assert_eq!(consumer(&e).drain().await.unwrap(), 1);
    let rows = e
        .db("second")
        .unwrap()
        .query("SELECT label FROM others WHERE id = 1", vec![])
        .await
        .unwrap();
    assert_eq!(rows[0][0], Value::String("x".into()));
    assert_eq!(
        seen.after.lock().unwrap().last(),
        Some(&("others".to_string(), 1))
    );
    cleanup(&e, &ns).await;
}

/// On a Redis Cluster and a Sentinel pool: every lazy key shares one hash slot, so the
/// atomic publish and the ack pipelines work there too.
#[tokio::test]
async fn lazy_flush_runs_on_cluster_and_sentinel_pools() {
    for kind in ["cluster", "sentinel"] {
        let dir = tempfile::tempdir().unwrap();
        let ns = namespace(kind);
        let mut r = Registry::new();
        r.register_sqlite_pool("default", &dir.path().join("c.db").to_string_lossy());
        match kind {
            "cluster" => {
                let nodes = common_redis::cluster_nodes();
                let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
                r.register_redis_cluster("events", &nodes);
            }
            _ => {
                let sentinels = common_redis::sentinels();
                let sentinels: Vec<&str> = sentinels.iter().map(String::as_str).collect();
                r.register_redis_sentinel(
                    "events",
                    &common_redis::sentinel_master(),
                    &sentinels,
                    0,
                );
            }
        }
        r.set_cache_namespace(&ns)
            .enable_lazy_flush("events")
            .register_entity::<Visit>();
        let e = r.validate().await.unwrap().create_engine();
        common::sync(&e).await;
        let mut visits: Vec<Tracked<Visit>> = (1..=20)
            .map(|id| {
                Tracked::new(Visit {
                    id,
                    page: "/".into(),
                    hits: 1,
                })
            })
            .collect();
        e.flusher()
            .track_all(&mut visits)
            .flush_lazy()
            .await
            .unwrap();
        assert_eq!(
            consumer(&e).batch_size(7).drain().await.unwrap(),
            20,
            "{kind}"
        );
        assert_eq!(
            count(Kind::Sqlite, &e, "SELECT COUNT(*) FROM `Visit`").await,
            20
        );
        e.redis("events")
            .unwrap()
            .del(vec![
                format!("{{{ns}:lazy}}"),
                format!("{{{ns}:lazy}}:dead"),
            ])
            .await
            .unwrap();
    }
}

/// Rows the crash test writes.
const CRASH_ROWS: u64 = 3_000;

/// An applier OS process is SIGKILLed while it applies (some rows written, not all);
/// another applier takes over once the lease expires; every lazy write lands exactly
/// once (an insert applied twice would be a duplicate key, so a dead letter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_applier_loses_nothing_and_applies_nothing_twice() {
    let db = TestDb::new(Kind::MySql, "lazy_crash").await;
    let (ns, r) = setup(&db, "crash").await;
    let e = r.create_engine();
    let mut visits: Vec<Tracked<Visit>> = (1..=CRASH_ROWS)
        .map(|id| {
            Tracked::new(Visit {
                id,
                page: "/".into(),
                hits: 1,
            })
        })
        .collect();
    for chunk in visits.chunks_mut(500) {
        e.flusher()
            .track_all(chunk.iter_mut())
            .flush_lazy()
            .await
            .unwrap();
    }
    // Then an update of every 10th row, after its insert.
    for v in visits.iter_mut().step_by(10) {
        v.hits = 2;
    }
    e.flusher()
        .track_all(visits.iter_mut().step_by(10))
        .flush_lazy()
        .await
        .unwrap();
    let total = CRASH_ROWS + CRASH_ROWS / 10;
    assert_eq!(stream_len(&e, &ns).await, total);

    let config = serde_json::json!({ "location": db.location, "ns": ns });
    let exe = std::env::current_exe().unwrap();
    let mut child = tokio::process::Command::new(exe)
        .args([
            "lazy_crash_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(WORKER_ENV, config.to_string())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Kill it once it has written some rows but not all.
    let start = Instant::now();
    let written = loop {
        let n = count(db.kind, &e, "SELECT COUNT(*) FROM `Visit`").await as u64;
        if n > 0 {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the worker never wrote a row"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    child.start_kill().unwrap(); // SIGKILL
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "the worker was killed, not finished");
    let at_kill = count(db.kind, &e, "SELECT COUNT(*) FROM `Visit`").await as u64;
    assert!(
        at_kill < CRASH_ROWS,
        "killed after it finished ({written} then {at_kill} rows): nothing was tested"
    );
    let left = stream_len(&e, &ns).await;
    assert!(left > 0, "entries left for the next applier");

    // Another applier: waits for the dead one's lease, then applies the rest.
    let handled = consumer(&e).batch_size(200).drain().await.unwrap();
    assert!(handled >= left.saturating_sub(200), "{handled} of {left}");
    assert_eq!(
        count(db.kind, &e, "SELECT COUNT(*) FROM `Visit`").await as u64,
        CRASH_ROWS
    );
    assert_eq!(
        count(db.kind, &e, "SELECT COUNT(*) FROM `Visit` WHERE hits = 2").await as u64,
        CRASH_ROWS / 10,
        "every update landed after its insert"
    );
    assert_eq!(
        e.lazy_dead_letters().unwrap().len().await.unwrap(),
        0,
        "nothing applied twice (a second insert would be a dead letter)"
    );
    assert_eq!(stream_len(&e, &ns).await, 0);
    cleanup(&e, &ns).await;
    db.drop().await;
}

/// The applier process of the crash test (spawned by it, configuration in
/// `BEEORM_LAZY_WORKER`): applies in small batches with a short lease until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the applier process of the crash test; that test spawns it"]
async fn lazy_crash_worker() {
    let Ok(config) = std::env::var(WORKER_ENV) else {
        eprintln!("lazy_crash_worker runs only when the crash test spawns it");
        return;
    };
    let c: serde_json::Value = serde_json::from_str(&config).unwrap();
    let r = registry_on(
        Kind::MySql,
        c["location"].as_str().unwrap(),
        c["ns"].as_str().unwrap(),
    )
    .validate()
    .await
    .unwrap();
    let e = r.create_engine();
    // Slow enough to be killed in the middle: small batches.
    e.lazy_consumer()
        .unwrap()
        .batch_size(25)
        .lease_ttl(Duration::from_secs(2))
        .run()
        .await
        .unwrap();
}

dialect_test!(
    lazy_writes_of_logged_entities_are_logged_when_applied_once,
    |db: TestDb| async move {
        let (ns, r) = setup(&db, "log").await;
        let mut e = r.create_engine();
        e.set_log_meta("user", "ann");
        let mut l = Tracked::new(Ledger {
            id: 5,
            note: "a".into(),
            amount: 1,
        });
        e.flush(&mut l).await.unwrap();
        l.amount = 2;
        let mut f = e.flusher();
        f.set_log_meta("why", "lazy").track(&mut l);
        f.flush_lazy().await.unwrap();
        drop(f);
        assert_eq!(
            e.entity_log::<Ledger>(5, None).await.unwrap().len(),
            1,
            "nothing is logged before the write is applied"
        );
        let mut f = e.flusher();
        f.delete(&mut l);
        f.flush_lazy().await.unwrap();
        drop(f);
        assert_eq!(consumer(&e).drain().await.unwrap(), 2);
        // Applying the same entries again (dedup) logs nothing more.
        assert_eq!(consumer(&e).drain().await.unwrap(), 0);

        let log = e.entity_log::<Ledger>(5, None).await.unwrap();
        assert_eq!(log.len(), 3, "{log:?}");
        let (delete, update) = (&log[0], &log[1]);
        let changes = update.changes.as_ref().unwrap();
        let before = update.before.as_ref().unwrap();
        assert_eq!(changes["amount"], serde_json::json!(2));
        assert_eq!(changes.len(), 1);
        assert_eq!(before["amount"], serde_json::json!(1));
        assert_eq!(before["note"], serde_json::json!("a"));
        let meta = update.meta.as_ref().unwrap();
        assert_eq!(meta["user"], serde_json::json!("ann"));
        assert_eq!(meta["why"], serde_json::json!("lazy"));
        assert!(delete.changes.is_none(), "{delete:?}");
        assert_eq!(
            delete.before.as_ref().expect("delete before")["amount"],
            serde_json::json!(2)
        );
        assert_eq!(
            delete.meta.as_ref().unwrap()["user"],
            serde_json::json!("ann")
        );
        cleanup(&e, &ns).await;
        db.drop().await;
    }
);
