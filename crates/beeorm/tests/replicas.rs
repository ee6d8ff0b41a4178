//! Read replicas on real replication (`scripts/services` starts a MariaDB GTID
//! primary/replica pair on 3310/3311 and a PostgreSQL streaming pair on 5440/5441):
//! reads routed, read-your-writes under a concurrent writer, a stopped replica taken
//! out of rotation and put back, cache fills never from a stale replica, and the
//! configuration's errors.
//!
//! The tests stop and start replication, so they take turns (one lock); each has its
//! own database on the primary, replicated like everything else.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use beeorm::prelude::*;
use beeorm::{Consistency, ReplicaHealth, ReplicaOptions, ReplicaSetStatus, ValidatedRegistry};

#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(table = "counters")]
struct Counter {
    id: u64,
    value: u64,
}

#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache, table = "cached_counters")]
struct CachedCounter {
    id: u64,
    value: u64,
}

/// One test at a time: they stop and start the shared replication. (An async mutex:
/// each test has its own runtime, and a failed test must not poison the others.)
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    MariaDb,
    Postgres,
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

/// The servers' base URLs (without a database).
fn servers(kind: Kind) -> (String, String) {
    match kind {
        Kind::MariaDb => (
            env_or("BEEORM_REPL_MYSQL_PRIMARY", "mysql://root@127.0.0.1:3310"),
            env_or("BEEORM_REPL_MYSQL_REPLICA", "mysql://root@127.0.0.1:3311"),
        ),
        Kind::Postgres => (
            env_or(
                "BEEORM_REPL_PG_PRIMARY",
                "postgres://postgres@127.0.0.1:5440",
            ),
            env_or(
                "BEEORM_REPL_PG_REPLICA",
                "postgres://postgres@127.0.0.1:5441",
            ),
        ),
    }
}

fn add_pool(r: &mut Registry, kind: Kind, name: &str, url: &str) {
    match kind {
        Kind::MariaDb => r.register_mysql_pool(name, url),
        Kind::Postgres => r.register_postgres_pool(name, url),
    };
}

/// Plain SQL on a server's administrative database.
async fn admin(kind: Kind, replica: bool, sql: &str) -> Vec<Vec<Value>> {
    let (primary, replica_url) = servers(kind);
    let base = if replica { replica_url } else { primary };
    let url = match kind {
        Kind::MariaDb => format!("{base}/mysql"),
        Kind::Postgres => format!("{base}/postgres"),
    };
    let mut r = Registry::new();
    add_pool(&mut r, kind, "admin", &url);
    let v = r.validate().await.unwrap();
    let rows = v
        .create_engine()
        .db("admin")
        .unwrap()
        .query(sql, vec![])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    v.close().await;
    rows
}

/// Stops (or starts) applying the primary's changes on the replica, leaving it up.
async fn replay(kind: Kind, on: bool) {
    let sql = match (kind, on) {
        (Kind::MariaDb, false) => "STOP SLAVE SQL_THREAD",
        (Kind::MariaDb, true) => "START SLAVE SQL_THREAD",
        (Kind::Postgres, false) => "SELECT pg_wal_replay_pause()::text",
        (Kind::Postgres, true) => "SELECT pg_wal_replay_resume()::text",
    };
    admin(kind, true, sql).await;
}

/// Puts replication back as it was even when a test fails half-way.
struct ReplayGuard(Kind);

impl Drop for ReplayGuard {
    fn drop(&mut self) {
        let kind = self.0;
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(replay(kind, true));
        })
        .join()
        .ok();
    }
}

/// A database of its own on the primary (replicated to the replica).
struct ReplDb {
    kind: Kind,
    name: String,
    primary: String,
    replica: String,
}

impl ReplDb {
    async fn new(kind: Kind, test: &str) -> ReplDb {
        let prefix = std::env::var("BEEORM_TEST_PREFIX").unwrap_or_default();
        // At most 60 characters: MariaDB refuses longer names, PostgreSQL cuts them.
        let name: String = format!("beeorm_r_{prefix}{test}")
            .to_lowercase()
            .chars()
            .take(60)
            .collect();
        match kind {
            Kind::MariaDb => {
                admin(kind, false, &format!("DROP DATABASE IF EXISTS `{name}`")).await;
                admin(kind, false, &format!("CREATE DATABASE `{name}`")).await;
            }
            Kind::Postgres => {
                admin(
                    kind,
                    false,
                    &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                )
                .await;
                admin(kind, false, &format!("CREATE DATABASE \"{name}\"")).await;
            }
        }
        let (p, r) = servers(kind);
        ReplDb {
            kind,
            primary: format!("{p}/{name}"),
            replica: format!("{r}/{name}"),
            name,
        }
    }

    /// A registry on the primary with the replica, and `extra` replicas (weight 1).
    fn registry(&self, options: ReplicaOptions, extra: &[&str]) -> Registry {
        let mut r = Registry::new();
        add_pool(&mut r, self.kind, "default", &self.primary);
        r.register_replica("default", &self.replica, 1);
        for dsn in extra {
            r.register_replica("default", dsn, 1);
        }
        r.set_replica_options("default", options)
            .register_entity::<Counter>();
        r
    }

    async fn drop(self) {
        match self.kind {
            Kind::MariaDb => {
                admin(
                    self.kind,
                    false,
                    &format!("DROP DATABASE IF EXISTS `{}`", self.name),
                )
                .await
            }
            Kind::Postgres => {
                admin(
                    self.kind,
                    false,
                    &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
                )
                .await
            }
        };
    }
}

/// Creates the tables, then waits until the replica has them and is in rotation;
/// returns the ID of a row the replica has.
async fn ready(registry: &ValidatedRegistry) -> u64 {
    let engine = registry.create_engine();
    for a in engine.alters().await.unwrap() {
        a.exec(&engine).await.unwrap();
    }
    // A write of this engine, then a read that waits for it: the tables are there.
    let mut probe = Tracked::new(Counter { id: 0, value: 0 });
    engine.flush(&mut probe).await.unwrap();
    wait_for(registry, "the replica in rotation", |s| {
        s[0].replicas[0].in_rotation
    })
    .await;
    let start = Instant::now();
    loop {
        let reads = registry.replica_status()[0].replicas[0].reads;
        let found = engine.load_by_id::<Counter>(probe.id).await.unwrap();
        assert!(found.is_some(), "the engine's own write is visible");
        if registry.replica_status()[0].replicas[0].reads > reads {
            return probe.id;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the replica never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the replica status (checking now) until `cond` holds (20 s at most).
async fn wait_for(
    registry: &ValidatedRegistry,
    what: &str,
    cond: impl Fn(&[ReplicaSetStatus]) -> bool,
) {
    let start = Instant::now();
    loop {
        let status = registry.check_replicas().await;
        if cond(&status) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn replica_reads(r: &ValidatedRegistry) -> u64 {
    r.replica_status()[0].replicas[0].reads
}

fn primary_reads(r: &ValidatedRegistry) -> u64 {
    r.replica_status()[0].primary_reads
}

macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn mariadb() {
                let _turn = TURN.lock().await;
                ($body)(Kind::MariaDb, concat!(stringify!($name), "_my")).await;
            }
            #[tokio::test]
            async fn postgres() {
                let _turn = TURN.lock().await;
                ($body)(Kind::Postgres, concat!(stringify!($name), "_pg")).await;
            }
        }
    };
}

// Reads of every kind go to the replica; writes and transactions to the primary.
both!(
    reads_are_routed_to_the_replica,
    |kind: Kind, test: &'static str| async move {
        let db = ReplDb::new(kind, test).await;
        let registry = db
            .registry(ReplicaOptions::default(), &[])
            .validate()
            .await
            .unwrap();
        ready(&registry).await;
        let engine = registry.create_engine();
        let mut rows: Vec<Tracked<Counter>> = (1..=5)
            .map(|i| Tracked::new(Counter { id: 0, value: i }))
            .collect();
        let mut f = engine.flusher();
        for row in rows.iter_mut() {
            f.track(row);
        }
        f.flush().await.unwrap();
        let ids: Vec<u64> = rows.iter().map(|r| r.id).collect();

        let before = (replica_reads(&registry), primary_reads(&registry));
        assert_eq!(engine.find::<Counter>(ids[0]).await.unwrap().value, 1);
        let (found, missing) = engine.load_by_ids::<Counter>(&ids).await.unwrap();
        assert_eq!((found.len(), missing.len()), (5, 0));
        let big = engine
            .search::<Counter>(&Where::new("`value` >= ?", (3,)), Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(big.len(), 3);
        let mut q = beeorm::QueryBuilder::<Counter>::new();
        q.table("counters").where_(("value", 4));
        assert_eq!(q.get(&engine).await.unwrap().id, ids[3]);
        let after = (replica_reads(&registry), primary_reads(&registry));
        assert_eq!(
            after.0 - before.0,
            4,
            "four reads on the replica: {after:?}"
        );
        assert_eq!(after.1, before.1, "none on the primary");

        // A transaction's reads stay on its connection (the primary), and the engine's
        // `Consistency::Primary` twin reads there too.
        let db_handle = engine.db("default").unwrap();
        let mut tx = db_handle.begin().await.unwrap();
        let inside = engine
            .read()
            .using(&mut tx)
            .find::<Counter>(ids[1])
            .await
            .unwrap();
        assert_eq!(inside.value, 2);
        tx.commit().await.unwrap();
        let primary = engine.with_consistency(Consistency::Primary);
        assert_eq!(primary.find::<Counter>(ids[2]).await.unwrap().value, 3);
        assert_eq!(
            replica_reads(&registry),
            after.0,
            "neither read on the replica"
        );
        assert_eq!(
            primary_reads(&registry),
            after.1 + 1,
            "the Primary read counted"
        );

        registry.close().await;
        db.drop().await;
    }
);

// A checker in the spirit of the cache one: writers bump their own counter and read
// it back at once, many times, on engines of their own, while another task writes
// unrelated rows; no read may be older than the reader's acknowledged write. Reads
// must mostly be answered by the replica (otherwise the check proves nothing).
both!(
    no_read_is_older_than_an_acknowledged_write,
    |kind: Kind, test: &'static str| async move {
        let db = ReplDb::new(kind, test).await;
        let registry = db
            .registry(
                ReplicaOptions::default().max_wait(Duration::from_secs(2)),
                &[],
            )
            .validate()
            .await
            .unwrap();
        ready(&registry).await;
        let stop = Arc::new(AtomicBool::new(false));
        let noise = {
            let engine = registry.create_engine();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut row = Tracked::new(Counter { id: 0, value: n });
                    engine.flush(&mut row).await.unwrap();
                    n += 1;
                }
                n
            })
        };
        let stale = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for w in 0..4u64 {
            let registry = registry.clone();
            let stale = stale.clone();
            workers.push(tokio::spawn(async move {
                let engine = registry.create_engine();
                let mut row = Tracked::new(Counter { id: 0, value: 0 });
                engine.flush(&mut row).await.unwrap();
                for i in 1..=40u64 {
                    row.value = i * 10 + w;
                    engine.flush(&mut row).await.unwrap();
                    // A clone shares the engine's record of its writes.
                    let seen = engine.clone().find::<Counter>(row.id).await.unwrap().value;
                    if seen != i * 10 + w {
                        stale.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let noise_writes = noise.await.unwrap();
        assert_eq!(
            stale.load(Ordering::Relaxed),
            0,
            "reads older than the reader's write"
        );
        let status = &registry.replica_status()[0];
        let r = &status.replicas[0];
        assert!(noise_writes > 0);
        assert!(
            r.reads >= 120,
            "most of the 160 reads ran on the replica: {status:#?}"
        );
        registry.close().await;
        db.drop().await;
    }
);

// A replica whose replication stops leaves the rotation at its next check (reads go
// to the primary) and comes back once it applies changes again; an unreachable one
// never gets a read and reads still succeed.
both!(
    a_stopped_replica_leaves_the_rotation_and_comes_back,
    |kind: Kind, test: &'static str| async move {
        let db = ReplDb::new(kind, test).await;
        let options = ReplicaOptions::default().check_interval(Duration::from_millis(100));
        let dead = match kind {
            Kind::MariaDb => format!("mysql://root@127.0.0.1:1/{}", db.name),
            Kind::Postgres => format!("postgres://postgres@127.0.0.1:1/{}", db.name),
        };
        let mut r = db.registry(options, &[&dead]);
        r.set_sql_timeouts(
            "default",
            Duration::from_secs(1),
            Duration::from_secs(5),
            Duration::from_secs(1),
        );
        let registry = r.validate().await.unwrap();
        ready(&registry).await;
        let status = registry.replica_status();
        let gone = &status[0].replicas[1];
        assert_eq!(gone.health, ReplicaHealth::Unreachable, "{gone:#?}");
        assert!(
            !gone.in_rotation && gone.address == "127.0.0.1:1",
            "{gone:#?}"
        );
        assert!(gone.detail.is_some());

        let engine = registry.create_engine();
        let mut row = Tracked::new(Counter { id: 0, value: 7 });
        engine.flush(&mut row).await.unwrap();
        let _guard = ReplayGuard(kind);
        replay(kind, false).await;
        wait_for(&registry, "the stopped replica out of rotation", |s| {
            let r = &s[0].replicas[0];
            r.health == ReplicaHealth::Stopped && !r.in_rotation
        })
        .await;
        let reads = replica_reads(&registry);
        let primary = primary_reads(&registry);
        let reader = registry.create_engine();
        for _ in 0..5 {
            assert_eq!(reader.find::<Counter>(row.id).await.unwrap().value, 7);
        }
        assert_eq!(
            replica_reads(&registry),
            reads,
            "no read on the stopped replica"
        );
        assert_eq!(primary_reads(&registry), primary + 5);
        assert_eq!(registry.replica_status()[0].replicas[1].reads, 0);

        replay(kind, true).await;
        wait_for(&registry, "the replica back in rotation", |s| {
            let r = &s[0].replicas[0];
            r.health == ReplicaHealth::Healthy && r.in_rotation
        })
        .await;
        assert_eq!(reader.find::<Counter>(row.id).await.unwrap().value, 7);
        assert_eq!(
            replica_reads(&registry),
            reads + 1,
            "reads are back on the replica"
        );
        registry.close().await;
        db.drop().await;
    }
);

// A replica that stops answering between two checks: the read that finds out times
// out on it, takes it out of rotation and is answered by the primary (no error for the
// caller); the next reads go straight to the primary; once it answers again a check
// puts it back.
both!(
    an_unanswering_replica_hands_its_reads_to_the_primary,
    |kind: Kind, test: &'static str| async move {
        let db = ReplDb::new(kind, test).await;
        let (_, replica_base) = servers(kind);
        let upstream = replica_base
            .rsplit('@')
            .next()
            .unwrap()
            .trim_start_matches("mysql://")
            .trim_start_matches("postgres://")
            .to_string();
        let frozen = Arc::new(AtomicBool::new(false));
        let port = common::proxy::proxy(&upstream, Duration::ZERO, frozen.clone()).await;
        let via = match kind {
            Kind::MariaDb => format!(
                "mysql://root@127.0.0.1:{port}/{}?prefer_socket=false",
                db.name
            ),
            Kind::Postgres => format!("postgres://postgres@127.0.0.1:{port}/{}", db.name),
        };
        let mut r = Registry::new();
        add_pool(&mut r, kind, "default", &db.primary);
        let second = Duration::from_secs(1);
        r.register_replica("default", &via, 1)
            .set_replica_options(
                "default",
                ReplicaOptions::default().check_interval(Duration::from_secs(600)),
            )
            .set_sql_timeouts("default", second, second, second)
            .register_entity::<Counter>();
        let registry = r.validate().await.unwrap();
        let id = ready(&registry).await;
        let reader = registry.create_engine();
        assert!(reader.find::<Counter>(id).await.is_ok());

        frozen.store(true, Ordering::SeqCst);
        let primary = primary_reads(&registry);
        let started = Instant::now();
        assert_eq!(
            reader.find::<Counter>(id).await.unwrap().id,
            id,
            "no error for the caller"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "it tried the replica first: {:?} {:#?}",
            started.elapsed(),
            registry.replica_status()
        );
        let status = registry.replica_status();
        let r = &status[0].replicas[0];
        assert_eq!(
            (r.health, r.in_rotation, r.failures),
            (ReplicaHealth::Unreachable, false, 1),
            "{r:#?}"
        );
        assert!(
            r.detail.as_deref().unwrap_or("").contains("timeout"),
            "{r:#?}"
        );
        assert_eq!(primary_reads(&registry), primary + 1);
        let started = Instant::now();
        reader.find::<Counter>(id).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "straight to the primary"
        );

        frozen.store(false, Ordering::SeqCst);
        wait_for(&registry, "the replica back in rotation", |s| {
            s[0].replicas[0].in_rotation
        })
        .await;
        let reads = replica_reads(&registry);
        reader.find::<Counter>(id).await.unwrap();
        assert_eq!(replica_reads(&registry), reads + 1);
        registry.close().await;
        db.drop().await;
    }
);

// Cache fills read the primary: a replica that is behind never puts an old row in
// the entity caches, whoever reads it.
both!(
    cache_fills_never_come_from_a_stale_replica,
    |kind: Kind, test: &'static str| async move {
        let db = ReplDb::new(kind, test).await;
        let ns = format!("repl_{test}_{}", std::process::id());
        let mut r = db.registry(
            ReplicaOptions::default().check_interval(Duration::from_secs(600)),
            &[],
        );
        r.register_redis_pool(
            "default",
            &env_or("BEEORM_REDIS_URL", "redis://127.0.0.1:6379"),
            0,
        )
        .register_local_cache("default", 1000)
        .set_cache_namespace(&ns)
        .register_entity::<CachedCounter>();
        let registry = r.validate().await.unwrap();
        ready(&registry).await;
        let writer = registry.create_engine();
        let mut row = Tracked::new(CachedCounter { id: 0, value: 1 });
        writer.flush(&mut row).await.unwrap();
        // A read of the writer waits until the replica has applied the row.
        let mut probe = Tracked::new(Counter { id: 0, value: 0 });
        writer.flush(&mut probe).await.unwrap();
        let reads = replica_reads(&registry);
        writer.find::<Counter>(probe.id).await.unwrap();
        assert_eq!(replica_reads(&registry), reads + 1);
        let _guard = ReplayGuard(kind);
        replay(kind, false).await;
        row.value = 2;
        writer.flush(&mut row).await.unwrap();
        // A reader that never wrote, allowed any lag: its cache miss still reads the
        // primary, and what it fills is the new row.
        let reader = registry
            .create_engine()
            .with_consistency(Consistency::MaxLag(Duration::from_secs(3600)));
        let replica_before = replica_reads(&registry);
        assert_eq!(reader.find::<CachedCounter>(row.id).await.unwrap().value, 2);
        assert_eq!(
            replica_reads(&registry),
            replica_before,
            "the fill read the primary"
        );
        assert_eq!(
            reader.find::<CachedCounter>(row.id).await.unwrap().value,
            2,
            "cached"
        );
        let stats = reader.cache_stats();
        let s = stats.entity("CachedCounter").unwrap();
        assert!(s.local.hits + s.redis.hits >= 1, "{s:?}");
        // The replica still holds the old row: a fill from it would have cached 1.
        let mut r = Registry::new();
        add_pool(&mut r, kind, "replica", &db.replica);
        let direct = r.validate().await.unwrap();
        let old = direct
            .create_engine()
            .db("replica")
            .unwrap()
            .query(
                &format!("SELECT value FROM cached_counters WHERE id = {}", row.id),
                vec![],
            )
            .await
            .unwrap();
        let old = match &old[0][0] {
            Value::I64(n) => n.to_string(),
            Value::U64(n) => n.to_string(),
            Value::Decimal(d) => d.to_string(),
            other => format!("{other:?}"),
        };
        assert_eq!(old, "1", "the replica is behind");
        direct.close().await;
        registry.close().await;
        db.drop().await;
    }
);

// A primary whose position cannot be read (the test server on 3306 has no binary
// log): after a write, the engine's reads of the pool go to the primary rather than
// to a replica that could not be waited for.
#[tokio::test]
async fn without_a_primary_position_reads_after_a_write_go_to_the_primary() {
    let _turn = TURN.lock().await;
    let db = common::TestDb::new(common::Kind::MySql, "repl_no_binlog").await;
    let (_, replica) = servers(Kind::MariaDb);
    let mut r = Registry::new();
    r.register_mysql_pool("default", &db.location)
        .register_replica("default", &format!("{replica}/test"), 1)
        .register_entity::<Counter>();
    let registry = r.validate().await.unwrap();
    let engine = registry.create_engine();
    for a in engine.alters().await.unwrap() {
        a.exec(&engine).await.unwrap();
    }
    let mut row = Tracked::new(Counter { id: 0, value: 5 });
    engine.flush(&mut row).await.unwrap();
    wait_for(&registry, "the replica in rotation", |s| {
        s[0].replicas[0].in_rotation
    })
    .await;
    let primary = primary_reads(&registry);
    assert_eq!(engine.find::<Counter>(row.id).await.unwrap().value, 5);
    assert_eq!(primary_reads(&registry), primary + 1, "read on the primary");
    assert_eq!(replica_reads(&registry), 0);
    registry.close().await;
    db.drop().await;
}

// ---------------------------------------------------------------------------
// Configuration (no server needed: pools open lazily).

async fn config_error(r: &Registry) -> String {
    match r.validate().await {
        Ok(_) => panic!("validated"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn bad_replica_configuration_is_a_typed_error() {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", ":memory:")
        .register_replica("default", "/tmp/x.db", 1);
    assert!(config_error(&r)
        .await
        .contains("SQLite, which has no replicas"));

    let mut r = Registry::new();
    r.register_mysql_pool("default", "mysql://root@127.0.0.1:3310/test")
        .register_replica("default", "mysql://root@127.0.0.1:3311/test", 0);
    assert!(config_error(&r)
        .await
        .contains("default/replica-1: the weight must be at least 1"));

    let mut r = Registry::new();
    r.register_mysql_pool("default", "mysql://root@127.0.0.1:3310/test")
        .register_replica("other", "mysql://root@127.0.0.1:3311/test", 1);
    let e = config_error(&r).await;
    assert!(e.contains("other") && e.contains("register_replica"), "{e}");

    let mut r = Registry::new();
    r.register_mysql_pool("default", "mysql://root@127.0.0.1:3310/test")
        .set_replica_options("default", ReplicaOptions::default());
    assert!(config_error(&r).await.contains("which has no replicas"));

    let mut r = Registry::new();
    r.register_postgres_pool("default", "postgres://postgres@127.0.0.1:5440/test")
        .register_replica("default", "postgres://postgres@127.0.0.1:5441/test", 1)
        .set_replica_options(
            "default",
            ReplicaOptions::default().max_wait(Duration::ZERO),
        );
    assert!(config_error(&r).await.contains("must be above zero"));

    let mut r = Registry::new();
    r.register_mysql_pool("default", "mysql://root@127.0.0.1:3310/test")
        .register_replica("default", "not a dsn", 1);
    assert!(config_error(&r).await.contains("default/replica-1"));
}

#[tokio::test]
async fn replicas_come_from_yaml() {
    let yaml = "
default:
  mysql: root@tcp(127.0.0.1:3310)/test
  replicas:
    - root@tcp(127.0.0.1:3311)/test
    - {dsn: 'mysql://root@127.0.0.1:3312/test', weight: 3}
  replica_max_wait: 50ms
  replica_check_interval: 3600
";
    let registry = Registry::from_yaml(yaml).unwrap().validate().await.unwrap();
    let status = registry.replica_status();
    assert_eq!(status.len(), 1);
    let names: Vec<(&str, &str, u32)> = status[0]
        .replicas
        .iter()
        .map(|r| (r.name.as_str(), r.address.as_str(), r.weight))
        .collect();
    assert_eq!(
        names,
        [
            ("default/replica-1", "127.0.0.1:3311", 1),
            ("default/replica-2", "127.0.0.1:3312", 3)
        ]
    );
    assert!(status[0].replicas.iter().all(|r| !r.in_rotation));
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json[0]["replicas"][1]["weight"], 3);

    for (yaml, needle) in [
        ("default:\n  sqlite: ':memory:'\n  replicas: [x]\n", "only MySQL/MariaDB"),
        ("default:\n  mysql: root@tcp(h:1)/d\n  replicas: []\n", "`replicas` is empty"),
        ("default:\n  mysql: root@tcp(h:1)/d\n  replica_max_lag: 5s\n", "no `replicas`"),
        (
            "default:\n  mysql: root@tcp(h:1)/d\n  replicas: [root@tcp(h:2)/d]\n  replica_max_lag: soon\n",
            "`replica_max_lag` must be a duration",
        ),
    ] {
        let e = Registry::from_yaml(yaml).unwrap_err().to_string();
        assert!(e.contains(needle), "{yaml}: {e}");
    }
}
