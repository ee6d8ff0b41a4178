//! Entity caches (D7, A3, C9): local → Redis → database, on every dialect with a real
//! Redis. Each test has its own database and its own cache namespace; "another
//! process" is a second registry (its own local cache, its own connections).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common_redis/mod.rs"]
mod common_redis;

use std::sync::Arc;
use std::time::{Duration, Instant};

use beeorm::prelude::*;
use beeorm::{Error, ValidatedRegistry};
use common::{StatementCounter, TestDb};

#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache)]
struct Account {
    id: u64,
    name: String,
    age: u32,
    #[orm(fake_delete)]
    fake_delete: bool,
}

/// Redis only, and not `Clone` (only the local layer needs copies).
#[derive(Entity, Debug, PartialEq)]
#[orm(redis_cache)]
struct Note {
    id: u64,
    text: String,
}

/// Local only: its invalidations still travel through the `default` Redis pool.
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache)]
struct Setting {
    id: u64,
    value: String,
}

/// The local layer's staleness window in these tests: wide enough that a loaded CI
/// machine never pauses the local layer mid-test (its heartbeats run every quarter).
const WINDOW: Duration = Duration::from_secs(2);

/// A namespace no other test or run uses.
fn namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{}_{nanos}_{test}", std::process::id())
}

struct Node {
    registry: ValidatedRegistry,
    sql: Arc<StatementCounter>,
}

impl Node {
    fn engine(&self) -> Engine {
        self.registry.create_engine()
    }

    /// Statements sent since the last call.
    fn statements(&self) -> usize {
        self.sql.take().len()
    }

    /// Waits until the local layer serves (its invalidation channel is live).
    async fn wait_serving(&self) {
        let start = Instant::now();
        while !self.engine().cache_stats().local_serving {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the invalidation channel never became live"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn node(db: &TestDb, ns: &str) -> Node {
    let mut r = db.registry();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_local_cache("default", 10_000)
        .set_cache_namespace(ns)
        .set_local_cache_window(WINDOW)
        .register_entity::<Account>()
        .register_entity::<Note>()
        .register_entity::<Setting>();
    let sql = StatementCounter::register(&mut r);
    let registry = r.validate().await.unwrap();
    let n = Node { registry, sql };
    n.wait_serving().await;
    n
}

async fn setup(db: &TestDb, test: &str) -> (Node, Node) {
    let ns = namespace(test);
    let a = node(db, &ns).await;
    common::sync(&a.engine()).await;
    let b = node(db, &ns).await;
    a.statements();
    (a, b)
}

async fn insert_account(engine: &Engine, name: &str, age: u32) -> u64 {
    let mut acc = Tracked::new(Account {
        id: 0,
        name: name.into(),
        age,
        fake_delete: false,
    });
    engine.flush(&mut acc).await.unwrap();
    acc.id
}

dialect_test!(
    a_read_fills_the_layers_and_the_next_reads_send_no_sql,
    |db: TestDb| async move {
        let (a, b) = setup(&db, "fill").await;
        let id = insert_account(&a.engine(), "Ann", 30).await;
        a.statements();

        let first = a.engine().load_by_id::<Account>(id).await.unwrap().unwrap();
        assert_eq!(first.name, "Ann");
        assert_eq!(a.statements(), 1, "a miss costs one query");
        let again = a.engine().load_by_id::<Account>(id).await.unwrap().unwrap();
        assert_eq!(again.name, "Ann");
        assert_eq!(a.statements(), 0, "a local hit sends nothing");
        // Another process: its local layer is empty, Redis has the row.
        let other = b.engine().load_by_id::<Account>(id).await.unwrap().unwrap();
        assert_eq!(other.name, "Ann");
        assert_eq!(b.statements(), 0, "a Redis hit sends no SQL");
        let stats = a.engine().cache_stats();
        let s = stats.entity("Account").unwrap();
        assert_eq!((s.local.hits, s.local.misses), (1, 1));
        assert_eq!(s.database_loads, 1);
        let s = b.engine().cache_stats();
        let s = s.entity("Account").unwrap();
        assert_eq!(s.redis.hits, 1);
        db.drop().await;
    }
);

dialect_test!(a_flush_is_seen_by_every_process, |db: TestDb| async move {
    let (a, b) = setup(&db, "flush").await;
    let id = insert_account(&a.engine(), "Ann", 30).await;
    // Both processes hold the row locally.
    a.engine().load_by_id::<Account>(id).await.unwrap();
    b.engine().load_by_id::<Account>(id).await.unwrap();
    b.engine().load_by_id::<Account>(id).await.unwrap();
    b.statements();

    let mut acc = a.engine().find::<Account>(id).await.unwrap();
    acc.name = "Bea".into();
    a.engine().flush(&mut acc).await.unwrap();
    // The writer sees its write at once.
    assert_eq!(a.engine().find::<Account>(id).await.unwrap().name, "Bea");
    // The other process within the window (in practice: at once).
    let start = Instant::now();
    loop {
        let seen = b.engine().find::<Account>(id).await.unwrap();
        if seen.name == "Bea" {
            break;
        }
        assert!(start.elapsed() < WINDOW, "stale beyond the window");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    db.drop().await;
});

dialect_test!(
    missing_rows_are_remembered_and_never_hide_a_later_insert,
    |db: TestDb| async move {
        let (a, b) = setup(&db, "missing").await;
        let e = a.engine();
        assert!(e.load_by_id::<Account>(777).await.unwrap().is_none());
        assert_eq!(a.statements(), 1);
        assert!(e.load_by_id::<Account>(777).await.unwrap().is_none());
        assert_eq!(a.statements(), 0, "a known-missing row costs no query");
        assert!(b
            .engine()
            .load_by_id::<Account>(777)
            .await
            .unwrap()
            .is_none());
        assert_eq!(b.statements(), 0, "known missing in Redis too");

        let mut acc = Tracked::new(Account {
            id: 777,
            name: "Late".into(),
            age: 1,
            fake_delete: false,
        });
        e.flush(&mut acc).await.unwrap();
        assert_eq!(e.find::<Account>(777).await.unwrap().name, "Late");
        assert_eq!(b.engine().find::<Account>(777).await.unwrap().name, "Late");
        db.drop().await;
    }
);

dialect_test!(
    load_by_ids_costs_one_query_for_what_the_caches_miss,
    |db: TestDb| async move {
        let (a, _b) = setup(&db, "ids").await;
        let e = a.engine();
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.push(insert_account(&e, &format!("n{i}"), i).await);
        }
        // Half of them cached.
        e.load_by_ids::<Account>(&ids[..3]).await.unwrap();
        a.statements();
        let (rows, missing) = e
            .load_by_ids::<Account>(&[ids[5], ids[0], 9999, ids[4], ids[1], ids[2], ids[3]])
            .await
            .unwrap();
        assert_eq!(
            rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["n5", "n0", "n4", "n1", "n2", "n3"]
        );
        assert_eq!(missing, [9999]);
        assert_eq!(a.statements(), 1, "one query for the rows no cache held");
        let (rows, missing) = e.load_by_ids::<Account>(&ids).await.unwrap();
        assert_eq!(rows.len(), 6);
        assert!(missing.is_empty());
        assert_eq!(a.statements(), 0);
        db.drop().await;
    }
);

dialect_test!(
    rolled_back_and_failed_writes_leave_the_caches_as_they_were,
    |db: TestDb| async move {
        let (a, b) = setup(&db, "rollback").await;
        let e = a.engine();
        let id = insert_account(&e, "Ann", 30).await;
        e.load_by_id::<Account>(id).await.unwrap();
        b.engine().load_by_id::<Account>(id).await.unwrap();

        // Rolled back.
        let mut tx = e.db("default").unwrap().begin().await.unwrap();
        let mut acc = e.find::<Account>(id).await.unwrap();
        acc.name = "Never".into();
        e.flusher().track(&mut acc).flush_in(&mut tx).await.unwrap();
        // Inside the transaction: its own write, and no shared layer touched.
        let inside = e.read().using(&mut tx).find::<Account>(id).await.unwrap();
        assert_eq!(inside.name, "Never");
        tx.rollback().await.unwrap();
        assert_eq!(e.find::<Account>(id).await.unwrap().name, "Ann");
        assert_eq!(b.engine().find::<Account>(id).await.unwrap().name, "Ann");

        // Dropped (a cancelled request).
        {
            let mut tx = e.db("default").unwrap().begin().await.unwrap();
            let mut acc = e.find::<Account>(id).await.unwrap();
            acc.name = "Dropped".into();
            e.flusher().track(&mut acc).flush_in(&mut tx).await.unwrap();
        }
        assert_eq!(e.find::<Account>(id).await.unwrap().name, "Ann");

        // Failed: a duplicate primary key.
        let mut dup = Tracked::new(Account {
            id,
            name: "Dup".into(),
            age: 1,
            fake_delete: false,
        });
        assert!(e.flush(&mut dup).await.is_err());
        assert_eq!(e.find::<Account>(id).await.unwrap().name, "Ann");
        assert_eq!(b.engine().find::<Account>(id).await.unwrap().name, "Ann");

        // Committed through a transaction: seen everywhere.
        let mut tx = e.db("default").unwrap().begin().await.unwrap();
        let mut acc = e.find::<Account>(id).await.unwrap();
        acc.name = "Cat".into();
        e.flusher().track(&mut acc).flush_in(&mut tx).await.unwrap();
        assert_eq!(
            e.find::<Account>(id).await.unwrap().name,
            "Ann",
            "not before COMMIT"
        );
        tx.commit().await.unwrap();
        assert_eq!(e.find::<Account>(id).await.unwrap().name, "Cat");
        let start = Instant::now();
        while b.engine().find::<Account>(id).await.unwrap().name != "Cat" {
            assert!(start.elapsed() < WINDOW, "stale beyond the window");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        db.drop().await;
    }
);

dialect_test!(
    deleted_and_fake_deleted_rows_leave_cached_reads,
    |db: TestDb| async move {
        let (a, b) = setup(&db, "delete").await;
        let e = a.engine();
        let id = insert_account(&e, "Ann", 30).await;
        let id2 = insert_account(&e, "Bob", 31).await;
        e.load_by_ids::<Account>(&[id, id2]).await.unwrap();
        b.engine().load_by_ids::<Account>(&[id, id2]).await.unwrap();

        let mut acc = e.find::<Account>(id).await.unwrap();
        e.delete(&mut acc).await.unwrap(); // fake delete
        assert!(e.load_by_id::<Account>(id).await.unwrap().is_none());
        assert!(e
            .read()
            .include_deleted()
            .load_by_id::<Account>(id)
            .await
            .unwrap()
            .is_some());
        let mut bob = e.find::<Account>(id2).await.unwrap();
        e.force_delete(&mut bob).await.unwrap();
        assert!(e.load_by_id::<Account>(id2).await.unwrap().is_none());
        let start = Instant::now();
        loop {
            let (rows, _) = b.engine().load_by_ids::<Account>(&[id, id2]).await.unwrap();
            if rows.is_empty() {
                break;
            }
            assert!(start.elapsed() < WINDOW, "stale beyond the window");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        db.drop().await;
    }
);

dialect_test!(
    redis_only_and_local_only_entities,
    |db: TestDb| async move {
        let (a, b) = setup(&db, "layers").await;
        let e = a.engine();
        let mut note = Tracked::new(Note {
            id: 0,
            text: "hi".into(),
        });
        e.flush(&mut note).await.unwrap();
        let mut set = Tracked::new(Setting {
            id: 0,
            value: "on".into(),
        });
        e.flush(&mut set).await.unwrap();
        a.statements();

        assert_eq!(e.find::<Note>(note.id).await.unwrap().text, "hi");
        assert_eq!(b.engine().find::<Note>(note.id).await.unwrap().text, "hi");
        assert_eq!(
            a.statements() + b.statements(),
            1,
            "the second process hit Redis"
        );

        assert_eq!(e.find::<Setting>(set.id).await.unwrap().value, "on");
        assert_eq!(e.find::<Setting>(set.id).await.unwrap().value, "on");
        assert_eq!(a.statements(), 1, "local hit");
        b.engine().find::<Setting>(set.id).await.unwrap();
        assert_eq!(
            b.statements(),
            1,
            "no Redis layer: the other process reads the database"
        );

        set.value = "off".into();
        e.flush(&mut set).await.unwrap();
        note.text = "bye".into();
        e.flush(&mut note).await.unwrap();
        assert_eq!(b.engine().find::<Note>(note.id).await.unwrap().text, "bye");
        let start = Instant::now();
        while b.engine().find::<Setting>(set.id).await.unwrap().value != "off" {
            assert!(start.elapsed() < WINDOW, "stale beyond the window");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        db.drop().await;
    }
);

dialect_test!(
    many_readers_missing_one_row_cause_one_database_load,
    |db: TestDb| async move {
        let ns = namespace("herd");
        let a = node(&db, &ns).await;
        common::sync(&a.engine()).await;
        let id = insert_account(&a.engine(), "Hot", 1).await;
        // Four "processes" (registries), 25 readers each, all missing at once.
        let mut nodes = vec![a];
        for _ in 0..3 {
            nodes.push(node(&db, &ns).await);
        }
        let mut tasks = Vec::new();
        for n in &nodes {
            for _ in 0..25 {
                let e = n.engine();
                tasks.push(tokio::spawn(async move {
                    e.find::<Account>(id).await.unwrap().name.clone()
                }));
            }
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "Hot");
        }
        let loads: u64 = nodes
            .iter()
            .map(|n| {
                n.engine()
                    .cache_stats()
                    .entity("Account")
                    .unwrap()
                    .database_loads
            })
            .sum();
        assert_eq!(loads, 1, "one database load for every reader");
        db.drop().await;
    }
);

#[tokio::test]
async fn cached_entities_need_a_namespace_and_known_pools() {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", ":memory:")
        .register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_local_cache("default", 10)
        .register_entity::<Account>();
    let err = r.validate().await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(err.to_string().contains("set_cache_namespace"), "{err}");

    let mut r = Registry::new();
    r.register_sqlite_pool("default", ":memory:")
        .set_cache_namespace("app")
        .register_entity::<Account>();
    let err = r.validate().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::UnknownPool {
                kind: "local cache",
                ..
            }
        ),
        "{err}"
    );

    let mut r = Registry::new();
    r.register_sqlite_pool("default", ":memory:")
        .set_cache_namespace("bad name!")
        .register_local_cache("default", 10)
        .register_entity::<Setting>();
    let err = r.validate().await.unwrap_err();
    assert!(err.to_string().contains("bad name!"), "{err}");
}

/// Two databases whose `Account` #1 differ, one Redis: registries of two
/// applications (namespaces), or of two tenants of one application, never read each
/// other's cached rows.
async fn isolated(ns_a: &str, tenant_a: Option<&str>, ns_b: &str, tenant_b: Option<&str>) {
    let db_a = TestDb::new(common::Kind::Sqlite, "iso_a").await;
    let db_b = TestDb::new(common::Kind::Sqlite, "iso_b").await;
    let mut engines = Vec::new();
    for (db, ns, tenant, name) in [
        (&db_a, ns_a, tenant_a, "from A"),
        (&db_b, ns_b, tenant_b, "from B"),
    ] {
        let mut r = db.registry();
        r.register_redis_pool("default", &common_redis::redis_url(), 0)
            .register_local_cache("default", 100)
            .set_cache_namespace(ns)
            .register_entity::<Note>();
        if let Some(t) = tenant {
            r.set_cache_tenant(t);
        }
        let e = r.validate().await.unwrap().create_engine();
        common::sync(&e).await;
        let mut n = Tracked::new(Note {
            id: 1,
            text: name.into(),
        });
        e.flush(&mut n).await.unwrap();
        engines.push(e);
    }
    // Each fills its own key, then reads it back: never the other's row.
    for _ in 0..2 {
        assert_eq!(engines[0].find::<Note>(1).await.unwrap().text, "from A");
        assert_eq!(engines[1].find::<Note>(1).await.unwrap().text, "from B");
    }
}

#[tokio::test]
async fn two_applications_sharing_one_redis_never_read_each_others_rows() {
    isolated(&namespace("app_a"), None, &namespace("app_b"), None).await;
}

#[tokio::test]
async fn two_tenants_of_one_application_never_read_each_others_rows() {
    let ns = namespace("tenants");
    isolated(&ns, Some("t1"), &ns, Some("t2")).await;
}

/// A reader cancelled between its lease and its fill (a request timeout) gives the
/// lease back at once: the next reader neither waits for it to expire (2 s) nor is
/// refused its fill.
#[tokio::test]
async fn a_cancelled_reader_gives_its_lease_back() {
    use beeorm::__private::pause::{self, Point};
    let db = TestDb::new(common::Kind::Sqlite, "cancel_lease").await;
    let ns = namespace("cancel_lease");
    let a = node(&db, &ns).await;
    common::sync(&a.engine()).await;
    let id = insert_account(&a.engine(), "Ann", 30).await;
    pause::install(
        &ns,
        Point::BeforeSelect,
        Arc::new(|| Box::pin(std::future::pending::<()>())),
    );
    let e = a.engine();
    let reader = tokio::spawn(async move { e.load_by_id::<Account>(id).await });
    let redis = a.engine().redis("default").unwrap();
    let key = format!("{ns}:e:{{default.Account}}:{id}");
    // The reader holds the lease, stopped before its SELECT.
    let start = Instant::now();
    loop {
        let v: Option<Vec<u8>> = redis.get(key.as_str()).await.unwrap();
        if v.as_deref().is_some_and(|v| v.first() == Some(&b'L')) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no lease taken");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    reader.abort();
    assert!(reader.await.unwrap_err().is_cancelled());
    pause::clear(&ns);
    // Given back well before the lease's own 2 s expiry.
    let start = Instant::now();
    loop {
        let v: Option<Vec<u8>> = redis.get(key.as_str()).await.unwrap();
        if v.as_deref().is_none_or(|v| v.first() != Some(&b'L')) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "the lease was not given back"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(a.engine().find::<Account>(id).await.unwrap().name, "Ann");
    let v: Option<Vec<u8>> = redis.get(key.as_str()).await.unwrap();
    assert_eq!(
        v.and_then(|v| v.first().copied()),
        Some(b'V'),
        "the next reader filled"
    );
}

/// Rows of a Redis Cluster pool: a table's keys share one hash slot (`{pool.table}`),
/// so the MGET, the lease and the lock scripts all run on one node.
#[derive(Entity, Debug, PartialEq)]
#[orm(redis_cache = "shards")]
struct Sharded {
    id: u64,
    text: String,
}

#[tokio::test]
async fn rows_cached_on_a_redis_cluster_follow_every_write() {
    let db = TestDb::new(common::Kind::Sqlite, "cluster_rows").await;
    let nodes = common_redis::cluster_nodes();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let ns = namespace("cluster");
    let mut engines = Vec::new();
    let mut counters = Vec::new();
    for _ in 0..2 {
        let mut r = db.registry();
        r.register_redis_cluster("shards", &nodes)
            .set_cache_namespace(&ns)
            .register_entity::<Sharded>();
        counters.push(StatementCounter::register(&mut r));
        engines.push(r.validate().await.unwrap().create_engine());
    }
    common::sync(&engines[0]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut row = Tracked::new(Sharded {
            id: 0,
            text: format!("t{i}"),
        });
        engines[0].flush(&mut row).await.unwrap();
        ids.push(row.id);
    }
    counters[0].take();
    let (rows, _) = engines[0].load_by_ids::<Sharded>(&ids).await.unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(counters[0].take().len(), 1);
    let (rows, _) = engines[1].load_by_ids::<Sharded>(&ids).await.unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        counters[1].take().len(),
        0,
        "the other registry hit the cluster"
    );

    let mut row = engines[0].find::<Sharded>(ids[2]).await.unwrap();
    row.text = "changed".into();
    engines[0].flush(&mut row).await.unwrap();
    assert_eq!(
        engines[1].find::<Sharded>(ids[2]).await.unwrap().text,
        "changed"
    );
    engines[0].delete(&mut row).await.unwrap();
    assert!(engines[1]
        .load_by_id::<Sharded>(ids[2])
        .await
        .unwrap()
        .is_none());
}

dialect_test!(
    the_request_cache_layer_is_counted,
    |db: TestDb| async move {
        let (a, _b) = setup(&db, "request_stats").await;
        let id = insert_account(&a.engine(), "Ann", 30).await;
        let e = a.engine().with_request_cache();
        e.find::<Account>(id).await.unwrap();
        e.find::<Account>(id).await.unwrap();
        let stats = e.cache_stats();
        let s = stats.entity("Account").unwrap();
        assert_eq!((s.request.hits, s.request.misses), (1, 1), "{s:?}");
        db.drop().await;
    }
);
