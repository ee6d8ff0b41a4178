//! The twelve races of the entity caches (research note `cache-coherence.md`,
//! section 2), each replayed deterministically with the test-only pause points of
//! `beeorm::__private::pause`: a hook holds one reader or writer at a point (after
//! its SELECT, before its COMMIT, …) while the test makes the other side act, then
//! lets it go, and the test checks what every layer holds afterwards.
//!
//! "Another process" is a second registry (its own local cache, connections and
//! invalidation subscriber); race 4 uses a real second OS process (this binary run
//! again as `race_worker`) that dies between its COMMIT and its unlock, and races 5
//! and 7 freeze a process's invalidation channel behind a proxy. Races that depend
//! on the database's isolation run on MariaDB, PostgreSQL and SQLite; those that
//! only involve Redis run on SQLite; a COMMIT that fails after the lock needs
//! PostgreSQL's deferred constraint triggers.
//!
//! `race_05_strict_mode_survives_a_flush_between_lock_and_commit` found a bug: strict
//! writers waited their window before the COMMIT, so a lock deleted meanwhile let
//! another process refill the old row and serve it after the acknowledgement; they
//! now wait after the unlock (`cache/write.rs`). Two more found that local-layer
//! invalidations were lost: a writer whose own entity had no local layer published
//! none (`race_12_a_deploy_without_a_local_layer_still_invalidates_the_others`), and
//! rows on another Redis server than the channel published theirs where nobody
//! listens (`race_07_invalidations_reach_other_processes_when_rows_live_on_another_server`).
//! And a writer's own invalidations, coming back through the channel, dropped its
//! next correct local fill (`race_07_a_writers_own_echo_does_not_refuse_its_next_fill`).
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common_redis/mod.rs"]
mod common_redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beeorm::__private::pause::{self, Point};
use beeorm::prelude::*;
use beeorm::EntityCacheStats;
use common::{Kind, StatementCounter, TestDb};
use tokio::sync::Notify;

#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache, table = "race_accounts")]
struct Account {
    id: u64,
    name: String,
    age: u32,
}

/// The local layer's window in these tests: wide enough that a loaded 2-core CI
/// machine (33 of these tests at once) never delays a heartbeat past it and pauses
/// the local layer mid-test.
const WINDOW: Duration = Duration::from_millis(1500);

/// A namespace no other test or run uses.
fn namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("race{}_{nanos}_{test}", std::process::id())
}

/// One "process".
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

    /// The counters of `Account`.
    fn stats(&self) -> EntityCacheStats {
        self.engine()
            .cache_stats()
            .entity("Account")
            .unwrap()
            .clone()
    }

    async fn name(&self, id: u64) -> String {
        self.engine()
            .find::<Account>(id)
            .await
            .unwrap()
            .name
            .clone()
    }

    /// Waits until every read of `id` returns `name` (the other processes' local
    /// layers learn of a write within the window).
    async fn sees(&self, id: u64, name: &str) {
        let start = Instant::now();
        loop {
            let seen = self.name(id).await;
            if seen == name {
                return;
            }
            assert!(
                start.elapsed() < WINDOW,
                "still {seen:?} instead of {name:?} after the window"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

async fn wait_serving(registry: &ValidatedRegistry) {
    wait_until("the invalidation channel is live", || async {
        registry.create_engine().cache_stats().local_serving
    })
    .await;
}

/// Polls `cond` every 2 ms for at most 10 s.
async fn wait_until<F, Fut>(what: &str, cond: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn add_pool(r: &mut Registry, kind: Kind, location: &str) {
    match kind {
        Kind::MySql => r.register_mysql_pool("default", location),
        Kind::Postgres => r.register_postgres_pool("default", location),
        Kind::Sqlite => r.register_sqlite_pool("default", location),
    };
}

/// A registry of `E` on the test's database with the shared Redis.
async fn node_of<E: Entity>(kind: Kind, location: &str, ns: &str) -> Node {
    let mut r = Registry::new();
    add_pool(&mut r, kind, location);
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_local_cache("default", 10_000)
        .set_cache_namespace(ns)
        .set_local_cache_window(WINDOW)
        .register_entity::<E>();
    let sql = StatementCounter::register(&mut r);
    let registry = r.validate().await.unwrap();
    wait_serving(&registry).await;
    Node { registry, sql }
}

/// Two processes on a fresh namespace, the table created.
async fn setup(db: &TestDb, test: &str) -> (Node, Node, String) {
    let ns = namespace(test);
    let a = node_of::<Account>(db.kind, &db.location, &ns).await;
    common::sync(&a.engine()).await;
    let b = node_of::<Account>(db.kind, &db.location, &ns).await;
    a.statements();
    (a, b, ns)
}

/// Inserts a row; the tracked entity comes back (writers keep it, so they never
/// need a read that a paused reader's lease would hold up).
async fn insert(node: &Node, id: u64, name: &str) -> Tracked<Account> {
    let mut acc = Tracked::new(Account {
        id,
        name: name.into(),
        age: 1,
    });
    node.engine().flush(&mut acc).await.unwrap();
    node.statements();
    acc
}

/// The row as the database holds it (read inside a transaction: no cache asked).
async fn stored(node: &Node, id: u64) -> Option<Tracked<Account>> {
    let e = node.engine();
    let mut tx = e.db("default").unwrap().begin().await.unwrap();
    let row = e
        .read()
        .using(&mut tx)
        .load_by_id::<Account>(id)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    row
}

fn key(ns: &str, table: &str, id: u64) -> String {
    format!("{ns}:e:{{default.{table}}}:{id}")
}

/// What Redis holds for the row `id` of `race_accounts`.
async fn raw(node: &Node, ns: &str, id: u64) -> Option<Vec<u8>> {
    raw_key(node, &key(ns, "race_accounts", id)).await
}

async fn raw_key(node: &Node, key: &str) -> Option<Vec<u8>> {
    node.engine()
        .redis("default")
        .unwrap()
        .get::<_, Vec<u8>>(key)
        .await
        .unwrap()
}

/// The first byte of what Redis holds (`V`, `N`, `L`, `P`), or `-` for nothing.
async fn state(node: &Node, ns: &str, id: u64) -> char {
    raw(node, ns, id)
        .await
        .and_then(|v| v.first().copied())
        .map_or('-', char::from)
}

/// Deletes every key of the namespace (a FLUSHALL, for this test only).
async fn flush_namespace(node: &Node, ns: &str) {
    let redis = node.engine().redis("default").unwrap();
    for k in redis.scan_match(&format!("{ns}:*")).await.unwrap() {
        redis.del(k.as_str()).await.unwrap();
    }
}

/// Holds the first task of a namespace that reaches a pause point, until opened.
struct Gate {
    armed: AtomicBool,
    arrived: Notify,
    release: Notify,
}

impl Gate {
    fn install(ns: &str, point: Point) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            armed: AtomicBool::new(true),
            arrived: Notify::new(),
            release: Notify::new(),
        });
        let g = gate.clone();
        pause::install(
            ns,
            point,
            Arc::new(move || {
                let g = g.clone();
                Box::pin(async move {
                    if g.armed.swap(false, Ordering::SeqCst) {
                        g.arrived.notify_one();
                        g.release.notified().await;
                    }
                })
            }),
        );
        gate
    }

    /// Waits until a task is held at the point.
    async fn reached(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.arrived.notified())
            .await
            .expect("no task reached the pause point");
    }

    /// Lets the held task go on.
    fn open(&self) {
        self.release.notify_one();
    }
}

/// One test on SQLite only, for races that involve Redis alone.
macro_rules! sqlite_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[cfg(feature = "sqlite")]
            #[tokio::test]
            async fn sqlite() {
                let db = TestDb::new(Kind::Sqlite, concat!(stringify!($name), "_lite")).await;
                ($body)(db).await;
            }
        }
    };
}

// ---------------------------------------------------------------------------
// Race 1: A misses, SELECTs v1; B commits v2 and invalidates; A fills v1.

dialect_test!(
    race_01_a_fill_that_raced_with_a_commit_is_refused,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r01").await;
        let mut acc = insert(&a, 1, "v1").await;
        let gate = Gate::install(&ns, Point::BeforeFill);
        let reader = {
            let e = b.engine();
            tokio::spawn(async move { e.find::<Account>(1).await.unwrap().name.clone() })
        };
        gate.reached().await;
        assert_eq!(state(&a, &ns, 1).await, 'L', "the reader holds the lease");
        acc.name = "v2".into();
        a.engine().flush(&mut acc).await.unwrap();
        gate.open();
        assert_eq!(reader.await.unwrap(), "v1", "it read before the write");
        assert_eq!(state(&a, &ns, 1).await, '-', "the stale fill was refused");
        let s = b.stats();
        assert_eq!((s.redis.fills, s.local.fills), (0, 0), "{s:?}");
        assert_eq!(b.name(1).await, "v2");
        assert_eq!(a.name(1).await, "v2");
        pause::clear(&ns);
        db.drop().await;
    }
);

// ---------------------------------------------------------------------------
// Race 2: B invalidates, A refills v1 before B's COMMIT.

dialect_test!(
    race_02_nothing_is_filled_between_a_writers_lock_and_its_commit,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r02").await;
        let mut acc = insert(&a, 1, "v1").await;
        // Until B serves v1 from its local layer (the insert's own invalidations may
        // still be on their way to B and drop its first fill).
        wait_until("B holds v1 locally", || async {
            let hits = b.stats().local.hits;
            b.name(1).await == "v1" && b.stats().local.hits > hits
        })
        .await;
        let before = b.stats();
        let gate = Gate::install(&ns, Point::BeforeCommit);
        let writer = {
            let e = a.engine();
            tokio::spawn(async move {
                acc.name = "v2".into();
                e.flush(&mut acc).await.unwrap();
            })
        };
        gate.reached().await;
        assert_eq!(state(&a, &ns, 1).await, 'P', "locked before the COMMIT");
        // The lock's invalidation reaches B's local layer.
        wait_until("B's local layer dropped the row", || async {
            b.stats().local.invalidations > before.local.invalidations
        })
        .await;
        b.statements();
        for _ in 0..2 {
            assert_eq!(b.name(1).await, "v1", "not committed yet");
            assert_eq!(b.statements(), 1, "read from the database, kept nowhere");
        }
        assert_eq!(state(&a, &ns, 1).await, 'P');
        let s = b.stats();
        assert_eq!(s.local.fills, before.local.fills, "{s:?}");
        assert_eq!(s.redis.fills, before.redis.fills, "{s:?}");
        gate.open();
        writer.await.unwrap();
        assert_eq!(a.name(1).await, "v2");
        b.sees(1, "v2").await;
        pause::clear(&ns);
        db.drop().await;
    }
);

// ---------------------------------------------------------------------------
// Race 3: a rolled-back, failed or cancelled write reaches the cache.

dialect_test!(
    race_03_rolled_back_failed_and_cancelled_writes_leave_every_layer_as_it_was,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r03").await;
        let acc = insert(&a, 1, "v1").await;
        assert_eq!(a.name(1).await, "v1");
        assert_eq!(b.name(1).await, "v1");
        let cached = raw(&a, &ns, 1).await;
        assert_eq!(cached.as_ref().and_then(|v| v.first()), Some(&b'V'));

        // Rolled back.
        let e = a.engine();
        let mut tx = e.db("default").unwrap().begin().await.unwrap();
        let mut changed = acc.clone();
        changed.name = "rolled back".into();
        e.flusher()
            .track(&mut changed)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        // Failed: the change and a duplicate primary key in one flush.
        let mut changed = acc.clone();
        changed.name = "failed".into();
        let mut duplicate = Tracked::new(Account {
            id: 1,
            name: "failed".into(),
            age: 1,
        });
        let err = e
            .flusher()
            .track(&mut changed)
            .track(&mut duplicate)
            .flush()
            .await;
        assert!(err.is_err(), "a duplicate primary key fails the flush");
        assert_eq!(raw(&a, &ns, 1).await, cached, "Redis untouched");
        a.statements();
        b.statements();
        assert_eq!(a.name(1).await, "v1");
        assert_eq!(b.name(1).await, "v1");
        assert_eq!(
            a.statements() + b.statements(),
            0,
            "both local layers still serve v1"
        );

        // Cancelled between the lock and the COMMIT: the guard unlocks.
        let gate = Gate::install(&ns, Point::BeforeCommit);
        let writer = {
            let e = a.engine();
            let mut changed = acc.clone();
            tokio::spawn(async move {
                changed.name = "cancelled".into();
                e.flush(&mut changed).await.unwrap();
            })
        };
        gate.reached().await;
        assert_eq!(state(&a, &ns, 1).await, 'P');
        writer.abort();
        assert!(writer.await.unwrap_err().is_cancelled());
        wait_until("the cancelled writer's lock is gone", || async {
            state(&a, &ns, 1).await != 'P'
        })
        .await;
        assert_eq!(stored(&a, 1).await.unwrap().name, "v1", "not committed");
        assert_eq!(a.name(1).await, "v1");
        b.sees(1, "v1").await;
        assert_eq!(b.name(1).await, "v1");
        pause::clear(&ns);
        db.drop().await;
    }
);

/// Race 3, a COMMIT that fails after the lock: PostgreSQL checks a deferred
/// constraint trigger at COMMIT, so the rows are locked in Redis, the COMMIT fails,
/// and the guard must unlock them without anything of the write reaching a layer.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn race_03_a_commit_that_fails_after_the_lock_leaves_every_layer_as_it_was() {
    let db = TestDb::new(Kind::Postgres, "race_03_commit_fails_pg").await;
    let (a, b, ns) = setup(&db, "r03c").await;
    let mut acc = insert(&a, 1, "v1").await;
    for sql in [
        "CREATE FUNCTION race_refuse() RETURNS trigger AS $$ BEGIN \
         IF NEW.name = 'refused' THEN RAISE EXCEPTION 'refused at COMMIT'; END IF; \
         RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE CONSTRAINT TRIGGER race_refuse AFTER UPDATE ON race_accounts \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION race_refuse()",
    ] {
        common::exec(&a.engine(), sql).await;
    }
    assert_eq!(a.name(1).await, "v1");
    assert_eq!(b.name(1).await, "v1");
    let locks = a.stats().redis.invalidations;
    acc.name = "refused".into();
    let err = a.engine().flush(&mut acc).await.unwrap_err();
    assert!(err.to_string().contains("refused at COMMIT"), "{err}");
    assert!(
        a.stats().redis.invalidations > locks,
        "the rows were locked before the COMMIT"
    );
    wait_until("the failed writer's lock is gone", || async {
        state(&a, &ns, 1).await != 'P'
    })
    .await;
    assert_eq!(stored(&a, 1).await.unwrap().name, "v1");
    for n in [&a, &b] {
        n.sees(1, "v1").await;
        assert_eq!(n.name(1).await, "v1");
    }
    let fresh = node_of::<Account>(db.kind, &db.location, &ns).await;
    assert_eq!(fresh.name(1).await, "v1");
    db.drop().await;
}

// ---------------------------------------------------------------------------
// Race 4: the writer's process dies between its COMMIT and its unlock.

const WORKER_ENV: &str = "BEEORM_RACE_WORKER";
/// How the second process exits at its pause point.
const CRASH_CODE: i32 = 17;

/// The second process of race 4 (spawned by it): renames row 1 to "v2" and dies
/// between the COMMIT and the unlock.
#[tokio::test]
#[ignore = "the second OS process of race 4; that test spawns it"]
async fn race_worker() {
    let Ok(config) = std::env::var(WORKER_ENV) else {
        eprintln!("race_worker runs only when race 4 spawns it");
        return;
    };
    let c: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(c["kind"], "sqlite");
    let kind = Kind::Sqlite;
    let ns = c["ns"].as_str().unwrap();
    let node = node_of::<Account>(kind, c["location"].as_str().unwrap(), ns).await;
    pause::install(
        ns,
        Point::BeforeUnlock,
        Arc::new(|| Box::pin(async { std::process::exit(CRASH_CODE) })),
    );
    let mut acc = stored(&node, 1).await.unwrap();
    acc.name = "v2".into();
    node.engine().flush(&mut acc).await.unwrap();
    unreachable!("the process exits before its unlock");
}

sqlite_test!(
    race_04_a_crash_between_commit_and_unlock_leaves_nothing_stale,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r04").await;
        insert(&a, 1, "v1").await;
        for n in [&a, &b] {
            assert_eq!(n.name(1).await, "v1");
            assert_eq!(n.name(1).await, "v1");
        }
        assert_eq!(state(&a, &ns, 1).await, 'V');
        let config = serde_json::json!({
            "kind": "sqlite",
            "location": db.location,
            "ns": ns,
        });
        let output = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["race_worker", "--exact", "--ignored", "--nocapture"])
            .env(WORKER_ENV, config.to_string())
            .output()
            .await
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(CRASH_CODE),
            "the worker did not die at its unlock: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let crashed = Instant::now();
        assert_eq!(stored(&a, 1).await.unwrap().name, "v2", "committed");
        assert_eq!(state(&a, &ns, 1).await, 'P', "its lock outlives it");
        // Its lock's invalidation reached both local layers: every read goes to the
        // database and stores nothing while the lock lives.
        a.sees(1, "v2").await;
        b.sees(1, "v2").await;
        a.statements();
        b.statements();
        assert_eq!(a.name(1).await, "v2");
        assert_eq!(b.name(1).await, "v2");
        assert_eq!(a.statements() + b.statements(), 2, "no layer serves");
        assert_eq!(state(&a, &ns, 1).await, 'P');
        // Once the lock expired (5 s), the committed row is filled.
        wait_until("the dead writer's lock expired", || async {
            state(&a, &ns, 1).await != 'P'
        })
        .await;
        assert!(crashed.elapsed() < Duration::from_secs(6));
        assert_eq!(a.name(1).await, "v2");
        assert_eq!(state(&a, &ns, 1).await, 'V');
        assert_eq!(b.name(1).await, "v2");
        db.drop().await;
    }
);

// ---------------------------------------------------------------------------
// Race 5: the cache is flushed during a fill (a memcache ADD would then store a
// stale row), and during a write (the lock is gone).

sqlite_test!(
    race_05_a_flush_during_a_fill_or_a_write_leaves_nothing_stale,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r05").await;
        let mut acc = insert(&a, 1, "v1").await;

        // During a fill: the lease goes with the flush, a write follows.
        let gate = Gate::install(&ns, Point::BeforeFill);
        let reader = {
            let e = b.engine();
            tokio::spawn(async move { e.find::<Account>(1).await.unwrap().name.clone() })
        };
        gate.reached().await;
        flush_namespace(&a, &ns).await;
        acc.name = "v2".into();
        a.engine().flush(&mut acc).await.unwrap();
        gate.open();
        assert_eq!(reader.await.unwrap(), "v1");
        assert_eq!(state(&a, &ns, 1).await, '-', "the fill found no lease");
        assert_eq!(b.stats().redis.fills, 0);
        assert_eq!(b.name(1).await, "v2");
        pause::clear(&ns);

        // During a write: the flush removes the lock, a reader fills the old row
        // before the COMMIT; the unlock after the COMMIT deletes it.
        let gate = Gate::install(&ns, Point::BeforeCommit);
        let writer = {
            let e = a.engine();
            tokio::spawn(async move {
                acc.name = "v3".into();
                e.flush(&mut acc).await.unwrap();
            })
        };
        gate.reached().await;
        flush_namespace(&a, &ns).await;
        let fresh = node_of::<Account>(db.kind, &db.location, &ns).await;
        assert_eq!(fresh.name(1).await, "v2", "not committed yet");
        assert_eq!(state(&a, &ns, 1).await, 'V', "filled while unlocked");
        gate.open();
        writer.await.unwrap();
        assert_eq!(state(&a, &ns, 1).await, '-', "the unlock deleted it");
        assert_eq!(a.name(1).await, "v3");
        let other = node_of::<Account>(db.kind, &db.location, &ns).await;
        assert_eq!(other.name(1).await, "v3");
        b.sees(1, "v3").await;
        fresh.sees(1, "v3").await;
        pause::clear(&ns);
        db.drop().await;
    }
);

/// A registry whose invalidation channel runs through a proxy the test can freeze.
async fn proxied_node(db: &TestDb, ns: &str, strict: bool) -> (ValidatedRegistry, Arc<AtomicBool>) {
    let frozen = Arc::new(AtomicBool::new(false));
    let upstream = common_redis::redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let port = common::proxy::proxy(&upstream, Duration::ZERO, frozen.clone()).await;
    let mut r = Registry::new();
    add_pool(&mut r, db.kind, &db.location);
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_redis_pool("inv", &format!("redis://127.0.0.1:{port}"), 0)
        .set_cache_channel("inv")
        .register_local_cache("default", 10_000)
        .set_cache_namespace(ns)
        .set_local_cache_window(WINDOW)
        .set_local_cache_strict(strict)
        .register_entity::<Account>();
    let registry = r.validate().await.unwrap();
    wait_serving(&registry).await;
    (registry, frozen)
}

// Race 5 in strict mode: the lock vanishes while a strict writer waits before its
// COMMIT, another process refills its local layer with the old row, and must not
// serve it once the write is acknowledged, even if the unlock's invalidation has
// not reached it yet.
sqlite_test!(
    race_05_strict_mode_survives_a_flush_between_lock_and_commit,
    |db: TestDb| async move {
        let ns = namespace("r05s");
        let mut r = db.registry();
        r.register_redis_pool("default", &common_redis::redis_url(), 0)
            .register_local_cache("default", 10_000)
            .set_cache_namespace(&ns)
            .set_local_cache_window(WINDOW)
            .set_local_cache_strict(true)
            .register_entity::<Account>();
        let a = r.validate().await.unwrap();
        wait_serving(&a).await;
        common::sync(&a.create_engine()).await;
        let (b, frozen) = proxied_node(&db, &ns, true).await;
        let b_name = || {
            let e = b.create_engine();
            async move { e.find::<Account>(1).await.unwrap().name.clone() }
        };
        let b_stats = || {
            b.create_engine()
                .cache_stats()
                .entity("Account")
                .unwrap()
                .clone()
        };
        let mut acc = Tracked::new(Account {
            id: 1,
            name: "v1".into(),
            age: 1,
        });
        a.create_engine().flush(&mut acc).await.unwrap();
        assert_eq!(b_name().await, "v1");

        let gate = Gate::install(&ns, Point::BeforeCommit);
        let dropped = b_stats().local.invalidations;
        let writer = {
            let e = a.create_engine();
            tokio::spawn(async move {
                acc.name = "v2".into();
                e.flush(&mut acc).await.unwrap();
            })
        };
        gate.reached().await;
        wait_until("B dropped the row at the lock", || async {
            b_stats().local.invalidations > dropped
        })
        .await;
        flush_namespace_of(&a, &ns).await;
        let fills = b_stats().local.fills;
        assert_eq!(b_name().await, "v1", "not committed yet");
        assert_eq!(
            b_stats().local.fills,
            fills + 1,
            "B refilled its local layer"
        );
        // B's channel stops delivering (B still serves: its last heartbeat is fresh).
        frozen.store(true, Ordering::SeqCst);
        gate.open();
        writer.await.unwrap();
        assert_eq!(
            b_name().await,
            "v2",
            "strict mode: a local read after the acknowledgement is never stale"
        );
        frozen.store(false, Ordering::SeqCst);
        pause::clear(&ns);
        db.drop().await;
    }
);

async fn flush_namespace_of(registry: &ValidatedRegistry, ns: &str) {
    let redis = registry.create_engine().redis("default").unwrap();
    for k in redis.scan_match(&format!("{ns}:*")).await.unwrap() {
        redis.del(k.as_str()).await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Race 6: a thousand readers miss one hot key.

sqlite_test!(
    race_06_a_thousand_readers_missing_one_key_cause_one_database_load,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r06").await;
        let mut acc = insert(&a, 1, "v1").await;
        assert_eq!(
            herd(&a, &b, &ns, "v1").await,
            1,
            "one load for 1000 readers"
        );
        // A write invalidates the row everywhere; the next herd loads it once more.
        let dropped = b.stats().local.invalidations;
        acc.name = "v2".into();
        a.engine().flush(&mut acc).await.unwrap();
        wait_until("B's local layer dropped the row", || async {
            b.stats().local.invalidations > dropped
        })
        .await;
        assert_eq!(
            herd(&a, &b, &ns, "v2").await,
            1,
            "one load per invalidation"
        );
        db.drop().await;
    }
);

/// 1000 concurrent reads of row 1, half on each process, while the reader that got
/// the lease is held before its SELECT until all 999 others were told to wait.
/// Returns the database loads they caused.
async fn herd(a: &Node, b: &Node, ns: &str, name: &str) -> u64 {
    let loads = || a.stats().database_loads + b.stats().database_loads;
    let waits = || a.stats().waits + b.stats().waits;
    let (loads_before, waits_before) = (loads(), waits());
    let gate = Gate::install(ns, Point::BeforeSelect);
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let e = if i % 2 == 0 { a.engine() } else { b.engine() };
        tasks.push(tokio::spawn(async move {
            e.find::<Account>(1).await.unwrap().name.clone()
        }));
    }
    gate.reached().await;
    wait_until("999 readers wait for the lease holder", || async {
        waits() - waits_before >= 999
    })
    .await;
    gate.open();
    for t in tasks {
        assert_eq!(t.await.unwrap(), name);
    }
    pause::clear(ns);
    loads() - loads_before
}

// ---------------------------------------------------------------------------
// Race 7: the invalidation arrives before the reply it invalidates; the other
// process's channel drops and reconnects.

sqlite_test!(
    race_07_an_invalidation_that_beats_the_reply_wins_and_a_lost_channel_empties_the_local_layer,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r07").await;
        let mut acc = insert(&a, 1, "v1").await;

        // B's reader holds the lease and has read v1; an invalidation of the row
        // (published by another process; no write touched the key) reaches B
        // before B's fill: Redis takes the fill (the lease still holds), B's local
        // layer refuses it.
        let gate = Gate::install(&ns, Point::BeforeFill);
        let before = b.stats();
        let reader = {
            let e = b.engine();
            tokio::spawn(async move { e.find::<Account>(1).await.unwrap().name.clone() })
        };
        gate.reached().await;
        let redis = a.engine().redis("default").unwrap();
        let _: i64 = redis
            .query(
                beeorm::redis::driver::cmd("PUBLISH")
                    .arg(format!("{ns}:inv"))
                    .arg("default.race_accounts 1"),
            )
            .await
            .unwrap();
        wait_until("B applied the invalidation", || async {
            b.stats().local.invalidations > before.local.invalidations
        })
        .await;
        gate.open();
        assert_eq!(reader.await.unwrap(), "v1");
        let s = b.stats();
        assert_eq!(s.redis.fills, before.redis.fills + 1, "Redis took it");
        assert_eq!(
            s.local.fills, before.local.fills,
            "the local layer refused it"
        );
        pause::clear(&ns);

        // C: a process whose channel runs through a proxy we can freeze.
        let frozen = Arc::new(AtomicBool::new(false));
        let upstream = common_redis::redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_string();
        let port = common::proxy::proxy(&upstream, Duration::ZERO, frozen.clone()).await;
        let mut r = Registry::new();
        add_pool(&mut r, db.kind, &db.location);
        r.register_redis_pool("default", &common_redis::redis_url(), 0)
            .register_redis_pool("inv", &format!("redis://127.0.0.1:{port}"), 0)
            .set_cache_channel("inv")
            .register_local_cache("default", 10_000)
            .set_cache_namespace(&ns)
            .set_local_cache_window(WINDOW)
            .register_entity::<Account>();
        let c = r.validate().await.unwrap();
        wait_serving(&c).await;
        let c_name = |c: &ValidatedRegistry| {
            let e = c.create_engine();
            async move { e.find::<Account>(1).await.unwrap().name.clone() }
        };
        assert_eq!(c_name(&c).await, "v1");
        assert_eq!(c_name(&c).await, "v1");
        let c_stats = || c.create_engine().cache_stats();
        assert_eq!(c_stats().entity("Account").unwrap().local.hits, 1);

        // The link freezes: C misses the write's invalidations, notices within the
        // window that its channel is silent, stops serving and empties its layer.
        frozen.store(true, Ordering::SeqCst);
        acc.name = "v2".into();
        a.engine().flush(&mut acc).await.unwrap();
        wait_until("C's local layer stops serving", || async {
            !c_stats().local_serving
        })
        .await;
        let hits = c_stats().entity("Account").unwrap().local.hits;
        assert_eq!(c_name(&c).await, "v2");
        assert_eq!(
            c_stats().entity("Account").unwrap().local.hits,
            hits,
            "nothing served locally while the channel is down"
        );
        // Back: C reconnects, starts empty, and follows writes again.
        frozen.store(false, Ordering::SeqCst);
        wait_serving(&c).await;
        assert_eq!(c_name(&c).await, "v2");
        acc.name = "v3".into();
        a.engine().flush(&mut acc).await.unwrap();
        let start = Instant::now();
        while c_name(&c).await != "v3" {
            assert!(
                start.elapsed() < WINDOW,
                "C missed a write after reconnecting"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        db.drop().await;
    }
);

// Race 7, the writer's own echo: a process's invalidations come back to it through
// the channel a little after its write returned; they must not refuse its next,
// correct, local fill. Before, a few cycles in a hundred lost their local entry to
// the echo (the test failed most runs on MariaDB and PostgreSQL).
dialect_test!(
    race_07_a_writers_own_echo_does_not_refuse_its_next_fill,
    |db: TestDb| async move {
        let (a, _b, _ns) = setup(&db, "r07e").await;
        let mut acc = insert(&a, 1, "v0").await;
        for i in 1..=50 {
            let before = a.stats();
            acc.name = format!("v{i}");
            a.engine().flush(&mut acc).await.unwrap();
            assert_eq!(a.name(1).await, acc.name);
            assert_eq!(a.name(1).await, acc.name);
            let s = a.stats();
            assert_eq!(
                (
                    s.local.fills - before.local.fills,
                    s.local.hits - before.local.hits
                ),
                (1, 1),
                "cycle {i}: the read after a write fills the local layer and the next hits it"
            );
        }
        db.drop().await;
    }
);

// ---------------------------------------------------------------------------
// Race 8: a cached list is filled while a matching row is inserted.

#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache, table = "race_listed")]
#[orm(cached_query(name = "by_age", query = ":age = ? ORDER BY :id"))]
struct Listed {
    id: u64,
    age: u32,
}

dialect_test!(
    race_08_a_list_filled_while_a_matching_row_is_inserted_is_refused,
    |db: TestDb| async move {
        let ns = namespace("r08");
        let a = node_of::<Listed>(db.kind, &db.location, &ns).await;
        common::sync(&a.engine()).await;
        let b = node_of::<Listed>(db.kind, &db.location, &ns).await;
        let ids = |n: &Node| {
            let e = n.engine();
            async move {
                e.cached_search_ids::<Listed>("by_age", Pager::new(1, 100), &[Value::from(18u32)])
                    .await
                    .unwrap()
                    .0
            }
        };
        a.engine()
            .flush(&mut Tracked::new(Listed { id: 1, age: 18 }))
            .await
            .unwrap();
        // The reader ran the query (row 1 only) and waits before storing the list.
        let gate = Gate::install(&ns, Point::BeforeQueryFill);
        let reader = tokio::spawn(ids(&b));
        gate.reached().await;
        a.engine()
            .flush(&mut Tracked::new(Listed { id: 2, age: 18 }))
            .await
            .unwrap();
        gate.open();
        assert_eq!(reader.await.unwrap(), [1], "it queried before the insert");
        pause::clear(&ns);
        // The list it read was not stored: every later reader sees the insert.
        assert_eq!(ids(&b).await, [1, 2]);
        assert_eq!(ids(&a).await, [1, 2]);
        let fresh = node_of::<Listed>(db.kind, &db.location, &ns).await;
        assert_eq!(ids(&fresh).await, [1, 2]);
        db.drop().await;
    }
);

// ---------------------------------------------------------------------------
// Race 9: a row read as missing before its INSERT commits ("negative cache
// poisoning").

dialect_test!(
    race_09_a_missing_row_never_hides_an_insert_that_raced_with_it,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r09").await;

        // The reader found nothing and waits before storing `N`; the insert commits.
        let gate = Gate::install(&ns, Point::BeforeFill);
        let reader = {
            let e = b.engine();
            tokio::spawn(async move { e.load_by_id::<Account>(7).await.unwrap().is_none() })
        };
        gate.reached().await;
        insert(&a, 7, "late").await;
        gate.open();
        assert!(reader.await.unwrap(), "it read before the insert");
        assert_eq!(state(&a, &ns, 7).await, '-', "no `N` stored");
        assert_eq!(b.name(7).await, "late");
        assert_eq!(a.name(7).await, "late");
        pause::clear(&ns);

        // The insert is locked, not committed: the reader stores nothing.
        let gate = Gate::install(&ns, Point::BeforeCommit);
        let writer = {
            let e = a.engine();
            tokio::spawn(async move {
                let mut acc = Tracked::new(Account {
                    id: 8,
                    name: "later".into(),
                    age: 1,
                });
                e.flush(&mut acc).await.unwrap();
            })
        };
        gate.reached().await;
        b.statements();
        for _ in 0..2 {
            assert!(b.engine().load_by_id::<Account>(8).await.unwrap().is_none());
            assert_eq!(b.statements(), 1, "read from the database every time");
        }
        assert_eq!(state(&a, &ns, 8).await, 'P');
        gate.open();
        writer.await.unwrap();
        assert_eq!(b.name(8).await, "later");
        assert_eq!(a.name(8).await, "later");
        pause::clear(&ns);
        db.drop().await;
    }
);

// ---------------------------------------------------------------------------
// Race 10: writers out of order: v6's invalidation lands before v5's.

dialect_test!(
    race_10_a_late_unlock_of_an_older_write_leaves_the_newer_row,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r10").await;
        let mut acc = insert(&a, 1, "v4").await;
        // W5 commits and is held before its unlock.
        let gate = Gate::install(&ns, Point::BeforeUnlock);
        let w5 = {
            let e = a.engine();
            tokio::spawn(async move {
                acc.name = "v5".into();
                e.flush(&mut acc).await.unwrap();
            })
        };
        gate.reached().await;
        assert_eq!(stored(&a, 1).await.unwrap().name, "v5");
        // W6, another process, commits and unlocks first.
        let mut row = stored(&b, 1).await.unwrap();
        row.name = "v6".into();
        b.engine().flush(&mut row).await.unwrap();
        assert_eq!(
            raw(&a, &ns, 1).await.as_deref(),
            Some(&b"P1"[..]),
            "W5's lock is still counted"
        );
        for n in [&a, &b] {
            assert_eq!(n.name(1).await, "v6");
        }
        assert_eq!(
            state(&a, &ns, 1).await,
            'P',
            "nothing filled under W5's lock"
        );
        gate.open();
        w5.await.unwrap();
        assert_eq!(state(&a, &ns, 1).await, '-');
        for n in [&a, &b] {
            n.sees(1, "v6").await;
        }
        assert_eq!(state(&a, &ns, 1).await, 'V');
        let fresh = node_of::<Account>(db.kind, &db.location, &ns).await;
        assert_eq!(fresh.name(1).await, "v6");
        pause::clear(&ns);
        db.drop().await;
    }
);

// ---------------------------------------------------------------------------
// Race 11: read-your-writes inside a transaction.

dialect_test!(
    race_11_a_transaction_reads_its_own_writes_and_fills_no_shared_layer,
    |db: TestDb| async move {
        let (a, b, ns) = setup(&db, "r11").await;
        let acc = insert(&a, 1, "v1").await;
        insert(&a, 2, "other").await;
        assert_eq!(a.name(1).await, "v1");
        assert_eq!(b.name(1).await, "v1");
        let cached = raw(&a, &ns, 1).await;
        let before = a.stats();

        let e = a.engine();
        let mut tx = e.db("default").unwrap().begin().await.unwrap();
        let mut changed = acc.clone();
        changed.name = "v2".into();
        e.flusher()
            .track(&mut changed)
            .flush_in(&mut tx)
            .await
            .unwrap();
        let inside = e.read().using(&mut tx).find::<Account>(1).await.unwrap();
        assert_eq!(inside.name, "v2", "its own write");
        let (rows, _) = e
            .read()
            .using(&mut tx)
            .load_by_ids::<Account>(&[1, 2])
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "v2");
        // Nothing shared was touched: row 2 (read only inside) is in no layer.
        assert_eq!(state(&a, &ns, 2).await, '-');
        assert_eq!(raw(&a, &ns, 1).await, cached);
        let s = a.stats();
        assert_eq!(
            (s.local.fills, s.redis.fills),
            (before.local.fills, before.redis.fills)
        );
        // Outside, before the COMMIT: the committed row.
        assert_eq!(a.name(1).await, "v1");
        assert_eq!(b.name(1).await, "v1");
        tx.commit().await.unwrap();
        assert_eq!(a.name(1).await, "v2");
        b.sees(1, "v2").await;
        db.drop().await;
    }
);

// ---------------------------------------------------------------------------
// Race 12: the old and the new binary of a deploy share keys.

/// The "old deploy": `age` NOT NULL.
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache, table = "race_rollout")]
struct AccountOld {
    id: u64,
    name: String,
    age: u32,
}

/// The "new deploy": `age` nullable, so another schema signature.
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache, table = "race_rollout")]
struct AccountNew {
    id: u64,
    name: String,
    age: Option<u32>,
}

sqlite_test!(
    race_12_two_deploys_share_keys_but_never_decode_each_others_rows,
    |db: TestDb| async move {
        let ns = namespace("r12");
        let old = node_of::<AccountOld>(db.kind, &db.location, &ns).await;
        common::sync(&old.engine()).await;
        let new = node_of::<AccountNew>(db.kind, &db.location, &ns).await;
        let k = key(&ns, "race_rollout", 1);
        let stats = |n: &Node, name: &str| n.engine().cache_stats().entity(name).unwrap().clone();
        let mut row = Tracked::new(AccountOld {
            id: 1,
            name: "v1".into(),
            age: 30,
        });
        old.engine().flush(&mut row).await.unwrap();

        let old_name = |n: &Node| {
            let e = n.engine();
            async move { e.find::<AccountOld>(1).await.unwrap().name.clone() }
        };
        let new_name = |n: &Node| {
            let e = n.engine();
            async move { e.find::<AccountNew>(1).await.unwrap().name.clone() }
        };
        // The old deploy fills the key with its bytes.
        assert_eq!(old_name(&old).await, "v1");
        let old_bytes = raw_key(&old, &k).await.unwrap();
        assert_eq!(old_bytes[0], b'V');
        // The new deploy does not decode them: it reads the database and refills.
        assert_eq!(new_name(&new).await, "v1");
        let s = stats(&new, "AccountNew");
        assert_eq!((s.redis.hits, s.database_loads), (0, 1), "{s:?}");
        let new_bytes = raw_key(&old, &k).await.unwrap();
        assert_eq!(new_bytes[0], b'V');
        assert_ne!(
            new_bytes[1..13],
            old_bytes[1..13],
            "another schema signature in front of the row"
        );
        // And the old deploy does not decode the new bytes (its local layer is
        // bypassed with a fresh registry of the old struct).
        let old2 = node_of::<AccountOld>(db.kind, &db.location, &ns).await;
        assert_eq!(old_name(&old2).await, "v1");
        let s = stats(&old2, "AccountOld");
        assert_eq!((s.redis.hits, s.database_loads), (0, 1), "{s:?}");

        // A write by either invalidates the other's layers.
        wait_until("new holds v1 locally", || async {
            let hits = stats(&new, "AccountNew").local.hits;
            new_name(&new).await == "v1" && stats(&new, "AccountNew").local.hits > hits
        })
        .await;
        row.name = "v2".into();
        old.engine().flush(&mut row).await.unwrap();
        let start = Instant::now();
        while new_name(&new).await != "v2" {
            assert!(
                start.elapsed() < WINDOW,
                "the new deploy missed the old's write"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(old_name(&old).await, "v2");
        let mut newer = new.engine().find::<AccountNew>(1).await.unwrap();
        newer.name = "v3".into();
        new.engine().flush(&mut newer).await.unwrap();
        let start = Instant::now();
        while old_name(&old).await != "v3" {
            assert!(
                start.elapsed() < WINDOW,
                "the old deploy missed the new's write"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        db.drop().await;
    }
);

/// The old deploy of a rollout that adds `local_cache`: Redis only.
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(redis_cache, table = "race_layers")]
struct LayersOld {
    id: u64,
    name: String,
}

/// The new deploy: the same columns (the same signature), a local layer too.
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache, table = "race_layers")]
struct LayersNew {
    id: u64,
    name: String,
}

// Race 12, the other half of a rollout: the deploy that has no local layer still
// tells the local layers of the deploy that has one.
sqlite_test!(
    race_12_a_deploy_without_a_local_layer_still_invalidates_the_others,
    |db: TestDb| async move {
        let ns = namespace("r12l");
        let old = node_of::<LayersOld>(db.kind, &db.location, &ns).await;
        common::sync(&old.engine()).await;
        let new = node_of::<LayersNew>(db.kind, &db.location, &ns).await;
        let mut row = Tracked::new(LayersOld {
            id: 1,
            name: "v1".into(),
        });
        old.engine().flush(&mut row).await.unwrap();
        let new_name = || {
            let e = new.engine();
            async move { e.find::<LayersNew>(1).await.unwrap().name.clone() }
        };
        let local_hits = || {
            new.engine()
                .cache_stats()
                .entity("LayersNew")
                .unwrap()
                .local
                .hits
        };
        wait_until("the new deploy holds v1 locally", || async {
            let hits = local_hits();
            new_name().await == "v1" && local_hits() > hits
        })
        .await;
        row.name = "v2".into();
        old.engine().flush(&mut row).await.unwrap();
        let start = Instant::now();
        while new_name().await != "v2" {
            assert!(
                start.elapsed() < WINDOW,
                "the new deploy's local layer never learnt of the old deploy's write"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        db.drop().await;
    }
);

/// Rows on a Redis server of their own; invalidations on the `default` pool's.
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache = "rows", table = "race_elsewhere")]
struct Elsewhere {
    id: u64,
    name: String,
}

/// A throwaway Redis server on a free loopback port, killed on drop.
struct Throwaway {
    port: u16,
    _child: tokio::process::Child,
}

async fn throwaway_redis() -> Throwaway {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server (scripts/services installs it)");
        // Ready when it answers with its own port (another process may have taken
        // the port between our probe and its bind).
        let url = format!("redis://127.0.0.1:{port}");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            let answer = async {
                let client = beeorm::redis::driver::Client::open(url.as_str()).ok()?;
                let mut c = client.get_multiplexed_async_connection().await.ok()?;
                let reply: Vec<String> = beeorm::redis::driver::cmd("CONFIG")
                    .arg("GET")
                    .arg("port")
                    .query_async(&mut c)
                    .await
                    .ok()?;
                reply.get(1).cloned()
            }
            .await;
            if answer.as_deref() == Some(port.to_string().as_str()) {
                return Throwaway {
                    port,
                    _child: child,
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("no throwaway Redis server started");
}

// Race 7, across servers: an entity whose rows live on another Redis server than the
// invalidation channel still reaches every process's local layer.
sqlite_test!(
    race_07_invalidations_reach_other_processes_when_rows_live_on_another_server,
    |db: TestDb| async move {
        let server = throwaway_redis().await;
        let ns = namespace("r07s");
        let mut nodes = Vec::new();
        for _ in 0..2 {
            let mut r = db.registry();
            r.register_redis_pool("default", &common_redis::redis_url(), 0)
                .register_redis_pool("rows", &format!("redis://127.0.0.1:{}", server.port), 0)
                .register_local_cache("default", 10_000)
                .set_cache_namespace(&ns)
                .set_local_cache_window(WINDOW)
                .register_entity::<Elsewhere>();
            let registry = r.validate().await.unwrap();
            wait_serving(&registry).await;
            nodes.push(registry);
        }
        common::sync(&nodes[0].create_engine()).await;
        let name = |n: usize| {
            let e = nodes[n].create_engine();
            async move { e.find::<Elsewhere>(1).await.unwrap().name.clone() }
        };
        let mut row = Tracked::new(Elsewhere {
            id: 1,
            name: "v1".into(),
        });
        nodes[0].create_engine().flush(&mut row).await.unwrap();
        // Until the other process serves v1 from its local layer (the insert's own
        // invalidation may still be on its way there and drop its first fill).
        let local_hits = || {
            nodes[1]
                .create_engine()
                .cache_stats()
                .entity("Elsewhere")
                .unwrap()
                .local
                .hits
        };
        wait_until("the other process holds v1 locally", || async {
            let hits = local_hits();
            name(1).await == "v1" && local_hits() > hits
        })
        .await;
        row.name = "v2".into();
        nodes[0].create_engine().flush(&mut row).await.unwrap();
        let start = Instant::now();
        while name(1).await != "v2" {
            assert!(
                start.elapsed() < WINDOW,
                "the other process never learnt of the write"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        db.drop().await;
    }
);
