//! Issue 13 item 4 (F3) and item 2's publishing on flush: dirty streams on MariaDB,
//! PostgreSQL and SQLite with a real Redis. Inserts, updates, deletes and fake
//! deletes become events with old and new values; field-level declarations filter
//! updates; one change goes to several streams; nothing is published for a rolled
//! back, dropped or failed write (a failed statement, a failed COMMIT); `flush_in`
//! publishes at `Transaction::commit`; events queued with `Flusher::publish` go out
//! with the flush; an unregistered stream is a validate error.
//!
//! The streams are shared by every test of the binary (their names are declared on
//! the entities), so each test writes rows with IDs of its own range and reads only
//! the events of that range, after the stream entry it started at.
#![allow(clippy::unwrap_used, dead_code)]

#[macro_use]
mod common;
mod common_redis;

use std::sync::atomic::{AtomicU64, Ordering};

use beeorm::events::{DirtyAction, DirtyEvent};
use beeorm::prelude::*;
use beeorm::redis::driver;
use beeorm::{Error, Value};
use common::{sync, Kind, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "people", dirty = "dirty-people-all")]
struct Person {
    id: u64,
    #[orm(dirty = "dirty-age-name-changed,dirty-age-changed")]
    age: u32,
    #[orm(dirty = "dirty-age-name-changed", column = "full_name", length = 100)]
    name: String,
    #[orm(length = 100)]
    note: String,
    #[orm(decimal = "12,2")]
    balance: rust_decimal::Decimal,
    born: Option<chrono::NaiveDateTime>,
    data: Vec<u8>,
    #[orm(fake_delete)]
    fake_delete: bool,
}

#[derive(Embedded, Debug, Clone, PartialEq, Default)]
struct Address {
    #[orm(length = 50)]
    city: String,
    #[orm(length = 50)]
    street: String,
}

/// A field-level stream on an embedded field: any of its columns.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "shops")]
struct Shop {
    id: u64,
    #[orm(unique = "Code", length = 40)]
    code: String,
    #[orm(embedded, dirty = "dirty-shop-address")]
    address: Address,
    qty: i32,
}

/// No dirty streams: never published.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "quiet")]
struct Quiet {
    id: u64,
    n: i64,
}

/// One raw stream entry: its ID and fields.
type Entry = (String, Vec<(String, Vec<u8>)>);

const ALL: &str = "dirty-people-all";
const AGE_NAME: &str = "dirty-age-name-changed";
const AGE: &str = "dirty-age-changed";
const USER: &str = "dirty-user-events";
const SHOP: &str = "dirty-shop-address";
const STREAMS: [&str; 5] = [ALL, AGE_NAME, AGE, USER, SHOP];

/// IDs of this test's rows: `base..base + 1000`, unique among concurrent tests.
fn id_base() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    (micros % 1_000_000_000_000 + NEXT.fetch_add(1, Ordering::SeqCst)) * 1000
}

struct Ctx {
    db: TestDb,
    engine: Engine,
    base: u64,
    /// The last entry of each stream before the test began.
    start: Vec<(String, String)>,
}

fn registry(db: &TestDb) -> Registry {
    let mut r = db.registry();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_entity::<Person>()
        .register_entity::<Shop>()
        .register_entity::<Quiet>();
    for s in STREAMS {
        r.register_redis_stream(s, "default", &["g"]);
    }
    r
}

async fn ctx(db: TestDb) -> Ctx {
    let engine = registry(&db).validate().await.unwrap().create_engine();
    sync(&engine).await;
    Ctx {
        start: ctx_start(&engine).await,
        engine,
        base: id_base(),
        db,
    }
}

/// The last entry of each stream now.
async fn ctx_start(engine: &Engine) -> Vec<(String, String)> {
    let redis = engine.redis("default").unwrap();
    let mut start = Vec::new();
    for s in STREAMS {
        let last: Vec<Entry> = redis
            .query(
                driver::cmd("XREVRANGE")
                    .arg(s)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await
            .unwrap();
        let id = last.first().map_or("0".to_string(), |(id, _)| id.clone());
        start.push((s.to_string(), id));
    }
    start
}

impl Ctx {
    fn person(&self, n: u64, name: &str, age: u32) -> Tracked<Person> {
        Tracked::new(Person {
            id: self.base + n,
            age,
            name: name.into(),
            note: String::new(),
            balance: "10.50".parse().unwrap(),
            born: None,
            data: vec![0, 255, 7],
            fake_delete: false,
        })
    }

    /// This test's raw entries of `stream`, in order.
    async fn entries(&self, stream: &str) -> Vec<Entry> {
        let start = &self.start.iter().find(|(s, _)| s == stream).unwrap().1;
        let redis = self.engine.redis("default").unwrap();
        let all: Vec<Entry> = redis
            .query(
                driver::cmd("XRANGE")
                    .arg(stream)
                    .arg(format!("({start}"))
                    .arg("+"),
            )
            .await
            .unwrap();
        all.into_iter()
            .filter(
                |(id, fields)| match DirtyEvent::from_entry(stream, id, fields) {
                    Ok(e) => (self.base..self.base + 1000).contains(&e.id()),
                    Err(_) => fields.iter().any(|(k, v)| match k.as_str() {
                        "base" => *v == self.base.to_string().into_bytes(),
                        "_b" => rmp_serde::from_slice::<(String, u64)>(&v[1..])
                            .is_ok_and(|(_, base)| base == self.base),
                        _ => false,
                    }),
                },
            )
            .collect()
    }

    /// This test's dirty events of `stream`, in order.
    async fn events(&self, stream: &str) -> Vec<DirtyEvent> {
        self.entries(stream)
            .await
            .iter()
            .map(|(id, f)| DirtyEvent::from_entry(stream, id, f).unwrap())
            .collect()
    }

    /// `added 3`, `updated 3 age,full_name`, `deleted 3 fake`: one line per event.
    async fn summary(&self, stream: &str) -> Vec<String> {
        self.events(stream)
            .await
            .iter()
            .map(|e| {
                let action = match e.action() {
                    DirtyAction::Added => "added",
                    DirtyAction::Updated => "updated",
                    DirtyAction::Deleted => "deleted",
                    _ => "other",
                };
                let mut line = format!("{action} {}", e.id() - self.base);
                if e.updated() {
                    let cols: Vec<&str> = e.changes().iter().map(|c| c.column()).collect();
                    line.push(' ');
                    line.push_str(&cols.join(","));
                }
                if e.is_fake_delete() {
                    line.push_str(" fake");
                }
                line
            })
            .collect()
    }

    async fn finish(self) {
        // Leave the shared streams as they were.
        let redis = self.engine.redis("default").unwrap();
        for s in STREAMS {
            for (id, _) in self.entries(s).await {
                let _: i64 = redis
                    .query(driver::cmd("XDEL").arg(s).arg(&id))
                    .await
                    .unwrap();
            }
        }
        self.db.drop().await;
    }
}

dialect_test!(
    insert_update_delete_carry_old_and_new_values,
    |db: TestDb| async move {
        let c = ctx(db).await;
        let e = &c.engine;
        let mut ann = c.person(1, "Ann", 30);
        ann.born = Some(
            chrono::NaiveDate::from_ymd_opt(1990, 2, 3)
                .unwrap()
                .and_hms_opt(4, 5, 6)
                .unwrap(),
        );
        let mut bob = c.person(2, "Bob", 40);
        e.flusher()
            .track(&mut ann)
            .track(&mut bob)
            .flush()
            .await
            .unwrap();
        let mut quiet = Tracked::new(Quiet { id: 0, n: 1 });
        e.flush(&mut quiet).await.unwrap();

        let events = c.events(ALL).await;
        assert_eq!(events.len(), 2, "{events:?}");
        let added = &events[0];
        assert!(added.added() && added.is::<Person>() && !added.is::<Quiet>());
        assert_eq!(added.entity(), "Person");
        assert_eq!(added.table(), "people");
        assert_eq!(added.pool(), "default");
        assert_eq!(added.id(), ann.id);
        // An insert: every stored field, new values only; the column is named
        // after `#[orm(column)]`, the field by its path.
        assert_eq!(added.new("age"), Some(&Value::from(30u32)));
        assert_eq!(added.new("name"), Some(&Value::from("Ann")));
        assert_eq!(added.new("full_name"), Some(&Value::from("Ann")));
        let name = added
            .changes()
            .iter()
            .find(|f| f.field() == "name")
            .unwrap();
        assert_eq!(name.column(), "full_name");
        assert_eq!(added.old("age"), None);
        assert_eq!(
            added.new("balance"),
            Some(&Value::Decimal("10.50".parse().unwrap()))
        );
        assert_eq!(added.new("born"), Some(&Value::from(ann.born)));
        assert_eq!(added.new("data"), Some(&Value::Bytes(vec![0, 255, 7])));
        assert!(added.changed("note") && !added.changed("nope"));

        // An update: the changed fields only, old and new.
        ann.age = 31;
        ann.note = "moved".into();
        e.flush(&mut ann).await.unwrap();
        let events = c.events(ALL).await;
        assert_eq!(events.len(), 3);
        let updated = &events[2];
        assert_eq!(updated.action(), DirtyAction::Updated);
        assert_eq!(updated.changes().len(), 2, "{updated:?}");
        assert_eq!(updated.old("age"), Some(&Value::from(30u32)));
        assert_eq!(updated.new("age"), Some(&Value::from(31u32)));
        assert_eq!(updated.old("note"), Some(&Value::from("")));
        assert_eq!(updated.new("note"), Some(&Value::from("moved")));
        assert!(!updated.changed("name"));

        // A fake delete, then a real one.
        e.flusher().delete(&mut ann).flush().await.unwrap();
        e.flusher().force_delete(&mut bob).flush().await.unwrap();
        assert_eq!(
            c.summary(ALL).await,
            [
                "added 1",
                "added 2",
                "updated 1 age,note",
                "deleted 1 fake",
                "deleted 2"
            ]
        );
        let events = c.events(ALL).await;
        assert!(events[3].deleted() && events[3].changes().is_empty());
        assert!(!events[4].is_fake_delete());
        // The events' own IDs come back through `Event`-less decoding too.
        assert!(c
            .entries(ALL)
            .await
            .iter()
            .all(|(_, f)| f.iter().any(|(k, v)| k == "_t" && v == b"dirty")));
        c.finish().await;
    }
);

dialect_test!(
    field_level_streams_filter_updates,
    |db: TestDb| async move {
        let c = ctx(db).await;
        let e = &c.engine;
        let mut p = c.person(1, "Ann", 30);
        e.flush(&mut p).await.unwrap();
        // Neither age nor name: only the entity-level stream hears of it.
        p.note = "x".into();
        e.flush(&mut p).await.unwrap();
        // Name: age_name only.
        p.name = "Anna".into();
        e.flush(&mut p).await.unwrap();
        // Age: both field-level streams, one event each.
        p.age = 31;
        e.flush(&mut p).await.unwrap();
        // Age and name in one update: still one event per stream.
        p.age = 32;
        p.name = "Anne".into();
        e.flush(&mut p).await.unwrap();
        e.flusher().delete(&mut p).flush().await.unwrap();

        assert_eq!(
            c.summary(ALL).await,
            [
                "added 1",
                "updated 1 note",
                "updated 1 full_name",
                "updated 1 age",
                "updated 1 age,full_name",
                "deleted 1 fake"
            ]
        );
        assert_eq!(
            c.summary(AGE_NAME).await,
            [
                "added 1",
                "updated 1 full_name",
                "updated 1 age",
                "updated 1 age,full_name",
                "deleted 1 fake"
            ]
        );
        assert_eq!(
            c.summary(AGE).await,
            [
                "added 1",
                "updated 1 age",
                "updated 1 age,full_name",
                "deleted 1 fake"
            ]
        );
        // The event of a field-level stream carries every changed field.
        let last_update = &c.events(AGE).await[2];
        assert_eq!(last_update.old("name"), Some(&Value::from("Anna")));
        assert_eq!(last_update.new("name"), Some(&Value::from("Anne")));
        c.finish().await;
    }
);

dialect_test!(embedded_fields_and_upserts, |db: TestDb| async move {
    let c = ctx(db).await;
    let e = &c.engine;
    let kind = c.db.kind;
    let code = format!("c{}", c.base);
    let shop = |n: u64, city: &str, qty: i32| {
        Tracked::new(Shop {
            id: c.base + n,
            code: code.clone(),
            address: Address {
                city: city.into(),
                street: "Main".into(),
            },
            qty,
        })
    };
    let mut s = shop(1, "Oslo", 1);
    e.flush(&mut s).await.unwrap();
    // Not the embedded field: nothing.
    s.qty = 2;
    e.flush(&mut s).await.unwrap();
    // One of its columns: published, named by path and column.
    s.address.city = "Bergen".into();
    e.flush(&mut s).await.unwrap();
    assert_eq!(c.summary(SHOP).await, ["added 1", "updated 1 address_city"]);
    let moved = &c.events(SHOP).await[1];
    assert_eq!(moved.old("address.city"), Some(&Value::from("Oslo")));
    assert_eq!(moved.new("address_city"), Some(&Value::from("Bergen")));
    assert_eq!(moved.changes()[0].field(), "address.city");

    // An upsert onto the existing row: updated, with the row as read back.
    let mut again = shop(2, "Oslo", 9);
    again.on_duplicate_key_update([("qty", 7)]);
    e.flush(&mut again).await.unwrap();
    assert_eq!(again.id, s.id);
    let events = c.events(SHOP).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[2].updated() && events[2].id() == s.id);
    assert_eq!(events[2].new("qty"), Some(&Value::from(7)));
    assert_eq!(events[2].old("qty"), None, "the server gives no old values");
    // One that inserts: added where the server says so (not SQLite).
    let mut fresh = shop(3, "Rome", 3);
    fresh.code = format!("d{}", c.base);
    fresh.on_duplicate_key_update([("qty", 4)]);
    e.flush(&mut fresh).await.unwrap();
    let events = c.events(SHOP).await;
    assert_eq!(events.len(), 4);
    assert_eq!(events[3].added(), kind != Kind::Sqlite, "{:?}", events[3]);
    assert_eq!(events[3].new("address.city"), Some(&Value::from("Rome")));
    c.finish().await;
});

/// The connection ID of `tx`'s session and the SQL that ends it from another one.
async fn kill_sql(kind: Kind, tx: &mut beeorm::Transaction) -> Option<String> {
    match kind {
        Kind::MySql => {
            let id = tx.query("SELECT CONNECTION_ID()", vec![]).await.unwrap()[0][0]
                .as_i64()
                .unwrap();
            Some(format!("KILL {id}"))
        }
        Kind::Postgres => {
            let id = tx.query("SELECT pg_backend_pid()", vec![]).await.unwrap()[0][0]
                .as_i64()
                .unwrap();
            Some(format!("SELECT pg_terminate_backend({id})"))
        }
        Kind::Sqlite => None,
    }
}

dialect_test!(
    nothing_published_for_rollback_drop_or_failure,
    |db: TestDb| async move {
        let c = ctx(db).await;
        let e = &c.engine;
        let kind = c.db.kind;
        let pool = e.db("default").unwrap();

        // Rolled back.
        let mut a = c.person(1, "A", 1);
        let mut tx = pool.begin().await.unwrap();
        e.flusher().track(&mut a).flush_in(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        // Dropped.
        let mut tx = pool.begin().await.unwrap();
        let mut f = e.flusher();
        f.track(&mut a)
            .publish_map(USER, [("base", c.base.to_string())])
            .unwrap();
        f.flush_in(&mut tx).await.unwrap();
        drop(f);
        drop(tx);
        // A failing statement: a duplicate ID.
        let mut first = c.person(2, "B", 2);
        e.flush(&mut first).await.unwrap();
        let mut dup = c.person(2, "B again", 2);
        let mut f = e.flusher();
        f.track(&mut dup)
            .publish_map(USER, [("base", c.base.to_string())])
            .unwrap();
        assert!(f.flush().await.is_err());
        drop(f);
        // A failing COMMIT: the session ends under the transaction (MySQL,
        // PostgreSQL), or a deferred foreign key fails at COMMIT (SQLite).
        let mut tx = pool.begin().await.unwrap();
        let kill = kill_sql(kind, &mut tx).await;
        if kind == Kind::Sqlite {
            tx.execute("PRAGMA defer_foreign_keys = ON", vec![])
                .await
                .unwrap();
            tx.execute(
                "CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)",
                vec![],
            )
            .await
            .unwrap();
            tx.execute(
                "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id))",
                vec![],
            )
            .await
            .unwrap();
            tx.execute("INSERT INTO child (id, p) VALUES (1, 42)", vec![])
                .await
                .unwrap();
        }
        let mut f = e.flusher();
        f.track(&mut a)
            .publish_map(USER, [("base", c.base.to_string())])
            .unwrap();
        f.flush_in(&mut tx).await.unwrap();
        drop(f);
        if let Some(kill) = kill {
            pool.execute(&kill, vec![]).await.unwrap();
        }
        assert!(tx.commit().await.is_err(), "the COMMIT fails");
        assert!(a.is_new());

        // Only the one committed insert was published, nothing else.
        assert_eq!(c.summary(ALL).await, ["added 2"]);
        assert!(c.entries(USER).await.is_empty());
        // The rows are not there either.
        let rows = e
            .db("default")
            .unwrap()
            .query("SELECT COUNT(*) FROM people", vec![])
            .await
            .unwrap();
        assert_eq!(rows[0][0].as_i64(), Some(1));
        c.finish().await;
    }
);

dialect_test!(
    flush_in_publishes_at_commit_with_queued_events,
    |db: TestDb| async move {
        let c = ctx(db).await;
        let e = &c.engine;
        let pool = e.db("default").unwrap();
        let base = c.base.to_string();

        let mut a = c.person(1, "A", 1);
        let mut b = c.person(2, "B", 2);
        let mut tx = pool.begin().await.unwrap();
        let mut f = e.flusher();
        f.track(&mut a)
            .publish_map(USER, [("base", base.as_str()), ("what", "first")])
            .unwrap();
        f.flush_in(&mut tx).await.unwrap();
        drop(f);
        e.flusher().track(&mut b).flush_in(&mut tx).await.unwrap();
        assert!(c.events(ALL).await.is_empty(), "nothing before the COMMIT");
        assert!(c.entries(USER).await.is_empty());
        tx.commit().await.unwrap();
        assert_eq!(c.summary(ALL).await, ["added 1", "added 2"]);
        let user = c.entries(USER).await;
        assert_eq!(user.len(), 1);
        assert!(user[0].1.iter().any(|(k, v)| k == "what" && v == b"first"));

        // A flusher with only queued events sends them; a serialised one carries
        // the broker's versioned MessagePack body.
        e.flusher()
            .publish_map(USER, [("base", base.as_str()), ("what", "second")])
            .unwrap()
            .publish(USER, &("ours", c.base))
            .unwrap()
            .flush()
            .await
            .unwrap();
        let user = c.entries(USER).await;
        assert_eq!(user.len(), 3);
        let body = &user[2].1.iter().find(|(k, _)| k == "_b").unwrap().1;
        assert_eq!(body[0], 1, "version byte");
        let decoded: (String, u64) = rmp_serde::from_slice(&body[1..]).unwrap();
        assert_eq!(decoded, ("ours".to_string(), c.base));

        // Queued events follow the flush's rows: one pipeline, after the COMMIT.
        a.age = 5;
        e.flusher()
            .track(&mut a)
            .publish_map(USER, [("base", base.as_str()), ("what", "third")])
            .unwrap()
            .flush()
            .await
            .unwrap();
        assert_eq!(
            c.summary(AGE).await,
            ["added 1", "added 2", "updated 1 age"]
        );
        assert_eq!(c.entries(USER).await.len(), 4);
        c.finish().await;
    }
);

dialect_test!(publish_errors_are_typed, |db: TestDb| async move {
    let c = ctx(db).await;
    let e = &c.engine;
    let mut f = e.flusher();
    let err = f.publish_map("not-registered", [("a", "b")]).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownStream { stream } if stream == "not-registered"),
        "{err:?}"
    );
    let err = f.publish("not-registered", &1u8).unwrap_err();
    assert!(matches!(err, Error::UnknownStream { .. }), "{err:?}");
    let err = f.publish_map(USER, [("_t", "x")]).unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");
    let err = f.publish_map(USER, Vec::<(&str, &str)>::new()).unwrap_err();
    assert!(err.to_string().contains("at least one field"), "{err}");
    // A body that does not serialise (a map with non-string keys is fine in
    // MessagePack; a failing Serialize impl is not).
    struct Refuses;
    impl serde::Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no"))
        }
    }
    let err = f.publish(USER, &Refuses).unwrap_err();
    assert!(matches!(err, Error::EventEncode { .. }), "{err:?}");
    assert!(f.flush().await.is_ok(), "nothing queued");

    // A non-dirty entry read as one.
    let fields = vec![("base".to_string(), b"1".to_vec())];
    let err = DirtyEvent::from_entry(USER, "1-0", &fields).unwrap_err();
    assert!(matches!(err, Error::EventDecode { .. }), "{err:?}");
    assert!(err.to_string().contains("1-0"), "{err}");
    let fields = vec![
        ("_t".to_string(), b"dirty".to_vec()),
        ("_b".to_string(), vec![1, 0xc1]),
    ];
    let err = DirtyEvent::from_entry(USER, "1-0", &fields).unwrap_err();
    assert!(matches!(err, Error::EventDecode { .. }), "{err:?}");
    let fields = vec![
        ("_t".to_string(), b"dirty".to_vec()),
        ("_b".to_string(), vec![9]),
    ];
    let err = DirtyEvent::from_entry(USER, "1-0", &fields).unwrap_err();
    assert!(err.to_string().contains("version 9"), "{err}");
    assert!(matches!(err, Error::EventDecode { .. }), "{err:?}");
    let fields = vec![("_t".to_string(), b"lazy".to_vec())];
    assert!(DirtyEvent::from_entry(USER, "1-0", &fields).is_err());
    c.finish().await;
});

#[tokio::test]
async fn unregistered_dirty_stream_fails_validate() {
    let db = TestDb::new(Kind::Sqlite, "dirty_unregistered").await;
    let mut r = db.registry();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_entity::<Person>()
        .register_redis_stream(ALL, "default", &["g"]);
    let err = r.validate().await.unwrap_err();
    match &err {
        Error::UnregisteredDirtyStream {
            entity,
            field,
            stream,
        } => {
            assert_eq!(entity, "Person");
            assert_eq!(field.as_deref(), Some("age"));
            assert_eq!(stream, AGE_NAME);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("field `age`"), "{err}");
    // Entity-level: no field named.
    let mut r = db.registry();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_entity::<Person>()
        .register_redis_stream(AGE, "default", &["g"])
        .register_redis_stream(AGE_NAME, "default", &["g"]);
    let err = r.validate().await.unwrap_err();
    assert!(
        matches!(&err, Error::UnregisteredDirtyStream { field: None, stream, .. } if stream == ALL),
        "{err:?}"
    );
    // A stream in an unknown Redis pool.
    let mut r = registry(&db);
    r.register_redis_stream("elsewhere", "nope", &["g"]);
    let err = r.validate().await.unwrap_err();
    assert!(matches!(err, Error::UnknownPool { .. }), "{err:?}");
    db.drop().await;
}

/// Its own stream, broken on purpose by the test below.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "fragile", dirty = "dirty-fragile")]
struct Fragile {
    id: u64,
    n: i64,
}

/// A publish that fails after the COMMIT: the rows stay, the error says so.
#[tokio::test]
async fn failed_publish_after_commit_is_reported_and_rows_stay() {
    let db = TestDb::new(Kind::Sqlite, "dirty_publish_fails").await;
    let mut r = db.registry();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_entity::<Fragile>()
        .register_redis_stream("dirty-fragile", "default", &["g"]);
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    // The stream's key now holds a string: every XADD to it fails.
    let redis = engine.redis("default").unwrap();
    let _: () = redis
        .query(driver::cmd("SET").arg("dirty-fragile").arg("not a stream"))
        .await
        .unwrap();
    let mut f = Tracked::new(Fragile { id: 0, n: 1 });
    let err = engine.flush(&mut f).await.unwrap_err();
    assert!(
        matches!(&err, Error::CommittedButNotPublished { events: 1, .. }),
        "{err:?}"
    );
    assert!(err.rows_written());
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    assert!(f.id > 0 && !f.is_new(), "the row is committed");
    let rows = engine
        .db("default")
        .unwrap()
        .query("SELECT COUNT(*) FROM fragile", vec![])
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_i64(), Some(1));
    let _: i64 = redis
        .query(driver::cmd("DEL").arg("dirty-fragile"))
        .await
        .unwrap();
    db.drop().await;
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "owners", dirty = "dirty-refs")]
struct Owner {
    id: u64,
    name: String,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "pets", dirty = "dirty-refs")]
struct Pet {
    id: u64,
    owner: Ref<Owner>,
}

/// A new referenced entity whose after-insert hook fails: the rows are committed,
/// so their events are still published (and the hook's error returned).
#[tokio::test]
async fn a_failing_after_hook_of_a_new_reference_still_publishes() {
    let db = TestDb::new(Kind::Sqlite, "dirty_ref_hook").await;
    let mut r = db.registry();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_entity::<Owner>()
        .register_entity::<Pet>()
        .register_redis_stream("dirty-refs", "default", &["g"])
        .register_hook::<Owner>(&[beeorm::hooks::HookEvent::AfterInsert], |_, _| {
            Err(Error::Hook("owner hook refuses".into()))
        });
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    let redis = engine.redis("default").unwrap();
    let last: Vec<Entry> = redis
        .query(
            driver::cmd("XREVRANGE")
                .arg("dirty-refs")
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1),
        )
        .await
        .unwrap();
    let start = last.first().map_or("0".to_string(), |(id, _)| id.clone());
    let mut pet = Tracked::new(Pet {
        id: 0,
        owner: Ref::new(Owner {
            id: 0,
            name: "Ann".into(),
        }),
    });
    let err = engine.flush(&mut pet).await.unwrap_err();
    assert!(matches!(err, Error::Hook(_)), "{err:?}");
    let entries: Vec<Entry> = redis
        .query(
            driver::cmd("XRANGE")
                .arg("dirty-refs")
                .arg(format!("({start}"))
                .arg("+"),
        )
        .await
        .unwrap();
    let events: Vec<DirtyEvent> = entries
        .iter()
        .map(|(id, f)| DirtyEvent::from_entry("dirty-refs", id, f).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].is::<Owner>() && events[0].added());
    assert!(events[1].is::<Pet>() && events[1].added());
    assert_eq!(events[1].new("owner"), Some(&Value::U64(events[0].id())));
    for (id, _) in &entries {
        let _: i64 = redis
            .query(driver::cmd("XDEL").arg("dirty-refs").arg(id))
            .await
            .unwrap();
    }
    db.drop().await;
}

/// An entity of a second relational pool (written after `default`).
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "remote", pool = "second", dirty = "dirty-people-all")]
struct Remote {
    id: u64,
    n: i64,
}

/// A multi-pool flush whose later pool fails: the committed pool's dirty events are
/// published, the failed pool's are not, and events queued on the flusher (which
/// belong to the whole flush) are not sent.
#[tokio::test]
async fn a_partly_committed_flush_publishes_exactly_the_committed_pool() {
    let db = TestDb::new(Kind::Sqlite, "dirty_partly").await;
    let second = TestDb::new(Kind::Sqlite, "dirty_partly_second").await;
    let mut r = registry(&db);
    second.add_pool(&mut r, "second");
    r.register_entity::<Remote>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    let c = Ctx {
        start: ctx_start(&engine).await,
        engine,
        base: id_base(),
        db,
    };
    let e = &c.engine;
    let mut taken = Tracked::new(Remote {
        id: c.base + 5,
        n: 1,
    });
    e.flush(&mut taken).await.unwrap();
    let mut p = c.person(1, "Ann", 3);
    let mut dup = Tracked::new(Remote {
        id: c.base + 5,
        n: 2,
    });
    let mut f = e.flusher();
    f.track(&mut p)
        .track(&mut dup)
        .publish_map(USER, [("base", c.base.to_string())])
        .unwrap();
    let err = f.flush().await.unwrap_err();
    drop(f);
    assert!(matches!(err, Error::PartlyCommitted { .. }), "{err:?}");
    assert_eq!(c.summary(ALL).await, ["added 5", "added 1"]);
    assert!(c.entries(USER).await.is_empty());
    second.drop().await;
    c.finish().await;
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "dropped", dirty = "dirty-dropped")]
struct Dropped {
    id: u64,
    n: i64,
}

/// A flush future dropped after its COMMIT, while its events wait to be sent: they
/// are sent all the same (from a task of their own).
#[tokio::test]
async fn a_flush_dropped_after_its_commit_still_publishes() {
    use beeorm::__private::pause::{self, Point};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use tokio::sync::Notify;

    let db = TestDb::new(Kind::Sqlite, "dirty_dropped").await;
    let mut r = db.registry();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_entity::<Dropped>()
        .register_redis_stream("dirty-dropped", "default", &["g"]);
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    let redis = engine.redis("default").unwrap();
    let _: i64 = redis
        .query(
            driver::cmd("XTRIM")
                .arg("dirty-dropped")
                .arg("MAXLEN")
                .arg(0),
        )
        .await
        .unwrap();

    let armed = Arc::new(AtomicBool::new(true));
    let arrived = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (a, n, rel) = (armed.clone(), arrived.clone(), release.clone());
    pause::install(
        "dirty-dropped",
        Point::BeforePublish,
        Arc::new(move || {
            let (a, n, rel) = (a.clone(), n.clone(), rel.clone());
            Box::pin(async move {
                if a.swap(false, Ordering::SeqCst) {
                    n.notify_one();
                    rel.notified().await;
                }
            })
        }),
    );
    let writer = engine.clone();
    let flush = tokio::spawn(async move {
        let mut d = Tracked::new(Dropped { id: 0, n: 1 });
        writer.flush(&mut d).await
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), arrived.notified())
        .await
        .expect("the flush reached its publish");
    // Committed, events not sent yet: the caller gives up on the flush.
    flush.abort();
    assert!(flush.await.unwrap_err().is_cancelled());
    release.notify_one();
    pause::clear("dirty-dropped");
    let mut entries: Vec<Entry> = Vec::new();
    for _ in 0..1000 {
        entries = redis
            .query(driver::cmd("XRANGE").arg("dirty-dropped").arg("-").arg("+"))
            .await
            .unwrap();
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(entries.len(), 1, "the event of the committed row was sent");
    let event = DirtyEvent::from_entry("dirty-dropped", &entries[0].0, &entries[0].1).unwrap();
    assert!(event.is::<Dropped>() && event.added());
    let _: i64 = redis
        .query(driver::cmd("DEL").arg("dirty-dropped"))
        .await
        .unwrap();
    db.drop().await;
}

/// Two dirty streams in different hash slots of a Redis Cluster pool.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "clustered", dirty = "dirty-cluster-a,dirty-cluster-b")]
struct Clustered {
    id: u64,
    n: i64,
}

/// Dirty streams on a Redis Cluster pool: the one pipeline is split per hash slot,
/// every event lands in its stream.
#[tokio::test]
async fn dirty_streams_on_a_cluster_pool() {
    let db = TestDb::new(Kind::Sqlite, "dirty_cluster").await;
    let nodes = common_redis::cluster_nodes();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut r = db.registry();
    r.register_redis_cluster("cluster", &nodes)
        .register_entity::<Clustered>()
        .register_redis_stream("dirty-cluster-a", "cluster", &["g"])
        .register_redis_stream("dirty-cluster-b", "cluster", &["g"]);
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    let redis = engine.redis("cluster").unwrap();
    for s in ["dirty-cluster-a", "dirty-cluster-b"] {
        let _: i64 = redis.query(driver::cmd("DEL").arg(s)).await.unwrap();
    }
    let mut rows: Vec<Tracked<Clustered>> = (0..3)
        .map(|n| Tracked::new(Clustered { id: 0, n }))
        .collect();
    engine.flusher().track_all(&mut rows).flush().await.unwrap();
    for s in ["dirty-cluster-a", "dirty-cluster-b"] {
        let entries: Vec<Entry> = redis
            .query(driver::cmd("XRANGE").arg(s).arg("-").arg("+"))
            .await
            .unwrap();
        let ids: Vec<u64> = entries
            .iter()
            .map(|(id, f)| DirtyEvent::from_entry(s, id, f).unwrap().id())
            .collect();
        assert_eq!(ids, rows.iter().map(|r| r.id).collect::<Vec<_>>(), "{s}");
        let _: i64 = redis.query(driver::cmd("DEL").arg(s)).await.unwrap();
    }
    db.drop().await;
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "drained", dirty = "dirty-drained")]
struct Drained {
    id: u64,
    #[orm(length = 20)]
    name: String,
}

/// The round trip a service runs: flush, then drain the dirty stream with the
/// broker's consumer and read each event with `Event::dirty` (a user event in the
/// same stream is told apart).
#[tokio::test]
async fn dirty_events_drained_by_a_consumer() {
    use beeorm::events::Batch;
    use std::sync::{Arc, Mutex};

    // A stream of its own, emptied before its group is created.
    let plain = common_redis::engine(&common_redis::registry()).await;
    let _: i64 = plain
        .redis("default")
        .unwrap()
        .query(driver::cmd("DEL").arg("dirty-drained"))
        .await
        .unwrap();
    let db = TestDb::new(Kind::Sqlite, "dirty_drained").await;
    let mut r = db.registry();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_entity::<Drained>()
        .register_redis_stream("dirty-drained", "default", &["readers"]);
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    let mut ann = Tracked::new(Drained {
        id: 0,
        name: "Ann".into(),
    });
    engine
        .flusher()
        .track(&mut ann)
        .publish_map("dirty-drained", [("note", "not a dirty event")])
        .unwrap()
        .flush()
        .await
        .unwrap();
    ann.name = "Anna".into();
    engine.flush(&mut ann).await.unwrap();
    engine.delete(&mut ann).await.unwrap();

    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let handled = {
        let seen = seen.clone();
        engine
            .event_broker()
            .consumer("dirty-drained", "readers")
            .unwrap()
            .drain(move |batch: Batch| {
                let seen = seen.clone();
                async move {
                    for event in batch.events() {
                        let line = match event.dirty() {
                            Ok(d) if d.is::<Drained>() => format!(
                                "{:?} {} {:?}->{:?}",
                                d.action(),
                                d.id(),
                                d.old("name").and_then(Value::as_str),
                                d.new("name").and_then(Value::as_str)
                            ),
                            Ok(d) => format!("other entity {}", d.entity()),
                            Err(e) => {
                                format!("not dirty: {}", matches!(e, Error::EventDecode { .. }))
                            }
                        };
                        seen.lock().unwrap().push(line);
                    }
                    Ok::<_, Error>(())
                }
            })
            .await
            .unwrap()
    };
    assert_eq!(handled, 4);
    let id = ann.id;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!("Added {id} None->Some(\"Ann\")"),
            "not dirty: true".to_string(),
            format!("Updated {id} Some(\"Ann\")->Some(\"Anna\")"),
            format!("Deleted {id} None->None"),
        ]
    );
    let _: i64 = plain
        .redis("default")
        .unwrap()
        .query(driver::cmd("DEL").arg("dirty-drained"))
        .await
        .unwrap();
    db.drop().await;
}
