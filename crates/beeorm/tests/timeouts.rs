//! Connect, statement and acquire timeouts of relational pools (issue 10, item 8):
//! a frozen server (SIGSTOP) or an exhausted pool gives a typed `Error::Timeout`
//! naming the pool, the operation and the limit, within the configured bound; a
//! statement that timed out leaves its connection discarded, never reused.
// Some helpers serve only the tests of one driver: unused in single-driver builds.
#![cfg_attr(not(all(feature = "mysql", feature = "postgres")), allow(unused))]
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beeorm::prelude::*;
use beeorm::Error;
use common::{Kind, TestDb};

#[derive(Entity, Debug, Clone)]
#[orm(table = "items")]
struct Item {
    id: u64,
    #[orm(length = 50)]
    name: String,
}

const LIMIT: Duration = Duration::from_millis(400);
/// Slack over a limit for a loaded CI machine with 2 cores.
const SLACK: Duration = Duration::from_millis(2500);

fn register(r: &mut Registry, name: &str, kind: Kind, location: &str) {
    match kind {
        Kind::MySql => r.register_mysql_pool(name, location),
        Kind::Postgres => r.register_postgres_pool(name, location),
        Kind::Sqlite => r.register_sqlite_pool(name, location),
    };
}

/// A pool `default` of one connection (SQLite: `:memory:`, which has one) with every
/// limit at `LIMIT`.
async fn one_connection_engine(db: &TestDb) -> Engine {
    one_connection_engine_with(db, LIMIT).await
}

/// [`one_connection_engine`] with its own statement limit (`LIMIT` for connecting
/// and acquiring).
async fn one_connection_engine_with(db: &TestDb, query: Duration) -> Engine {
    let mut r = Registry::new();
    let location = match db.kind {
        Kind::Sqlite => ":memory:".to_string(),
        _ => format!("{}?limit_connections=1", db.location),
    };
    register(&mut r, "default", db.kind, &location);
    r.set_sql_timeouts("default", LIMIT, query, LIMIT)
        .register_entity::<Item>();
    let engine = r.validate().await.unwrap().create_engine();
    common::sync(&engine).await;
    engine
}

/// `r` failed with a timeout of `operation` on `pool` after about `limit`.
fn assert_timeout<T: std::fmt::Debug>(
    r: beeorm::Result<T>,
    started: Instant,
    pool: &str,
    operation: &str,
    limit: Duration,
) {
    let elapsed = started.elapsed();
    match r {
        Err(Error::Timeout {
            pool: p,
            operation: o,
            limit: l,
        }) => {
            assert_eq!(p, pool);
            assert!(
                o.starts_with(operation),
                "operation `{o}`, expected `{operation}`"
            );
            assert!(l >= limit, "limit {l:?}");
            assert!(
                elapsed + Duration::from_millis(20) >= l && elapsed < l + SLACK,
                "timed out after {elapsed:?} for a limit of {l:?}"
            );
            let text = Error::Timeout {
                pool: p,
                operation: o,
                limit: l,
            }
            .to_string();
            assert!(text.contains(pool) && text.contains(operation), "{text}");
        }
        other => panic!("expected a timeout of {operation} on {pool}, got {other:?}"),
    }
}

/// Runs `f`, failing the test instead of hanging when it takes longer than `bound`.
async fn within<T>(bound: Duration, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(bound, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after {bound:?}"))
}

// A task holding the only connection in a transaction that loads through the same
// pool: before, it waited forever (same on a SQLite `:memory:` pool).
dialect_test!(acquire_timeout_on_exhausted_pool, |db: TestDb| async move {
    // Only the checkout is limited tightly: the transaction's own statements (its
    // COMMIT on a busy server) are not what this test is about.
    let engine = one_connection_engine_with(&db, Duration::from_secs(10)).await;
    let dbh = engine.db("default").unwrap();
    let mut tx = dbh.begin().await.unwrap();
    let mut it = Tracked::new(Item {
        id: 0,
        name: "a".into(),
    });
    engine
        .flusher()
        .track(&mut it)
        .flush_in(&mut tx)
        .await
        .unwrap();
    let started = Instant::now();
    let r = within(
        Duration::from_secs(10),
        "load_by_id",
        engine.load_by_id::<Item>(1),
    )
    .await;
    assert_timeout(r, started, "default", "acquire", LIMIT);
    // The transaction is untouched by the other caller's timeout.
    tx.commit().await.unwrap();
    assert!(engine
        .load_by_id::<Item>(it.entity().id)
        .await
        .unwrap()
        .is_some());
    db.drop().await;
});

/// A statement longer than the pool's statement timeout fails with a typed timeout;
/// its connection is discarded (the pool of one connection keeps working, and a
/// transaction it belonged to is rolled back).
async fn statement_timeout(db: TestDb) {
    let engine = one_connection_engine(&db).await;
    let sleep = match db.kind {
        Kind::MySql => "SELECT SLEEP(3)",
        _ => "SELECT pg_sleep(3)",
    };
    let dbh = engine.db("default").unwrap();
    let started = Instant::now();
    let r = within(Duration::from_secs(10), "sleep", dbh.query(sleep, vec![])).await;
    assert_timeout(r, started, "default", "statement", LIMIT);
    // The next statement gets a working connection.
    let rows = within(
        Duration::from_secs(10),
        "next",
        dbh.query("SELECT 1", vec![]),
    )
    .await;
    assert_eq!(rows.unwrap()[0][0].as_i64(), Some(1));

    // Inside a transaction: the statement times out, the transaction refuses more
    // statements (its connection's state is unknown) and its writes are rolled back.
    let mut tx = dbh.begin().await.unwrap();
    let mut it = Tracked::new(Item {
        id: 0,
        name: "never".into(),
    });
    engine
        .flusher()
        .track(&mut it)
        .flush_in(&mut tx)
        .await
        .unwrap();
    let started = Instant::now();
    let r = within(
        Duration::from_secs(10),
        "sleep in tx",
        tx.query(sleep, vec![]),
    )
    .await;
    assert_timeout(r, started, "default", "statement", LIMIT);
    let again = tx.query("SELECT 1", vec![]).await;
    assert!(matches!(again, Err(Error::Connection { .. })), "{again:?}");
    assert!(tx.commit().await.is_err());
    // An independent pool on the same database.
    let mut o = Registry::new();
    register(&mut o, "other", db.kind, &db.location);
    let other = o
        .validate()
        .await
        .unwrap()
        .create_engine()
        .db("other")
        .unwrap();
    let seen = other
        .query(
            &format!("SELECT COUNT(*) FROM items WHERE id = {}", it.entity().id),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        seen[0][0].as_i64(),
        Some(0),
        "a timed-out transaction committed"
    );
    let mut ok = Tracked::new(Item {
        id: 0,
        name: "after".into(),
    });
    within(Duration::from_secs(10), "write", engine.flush(&mut ok))
        .await
        .unwrap();
    let seen = other
        .query(
            &format!("SELECT COUNT(*) FROM items WHERE id = {}", ok.entity().id),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(seen[0][0].as_i64(), Some(1));
    db.drop().await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn statement_timeout_mysql() {
    statement_timeout(TestDb::new(Kind::MySql, "stmt_timeout_my").await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn statement_timeout_postgres() {
    statement_timeout(TestDb::new(Kind::Postgres, "stmt_timeout_pg").await).await;
}

#[tokio::test]
async fn yaml_timeouts_apply() {
    let r = Registry::from_yaml(
        "mem:\n  sqlite: \":memory:\"\n  acquire_timeout: 250ms\n  query_timeout: 2s\n  connect_timeout: 1\n",
    )
    .unwrap();
    let engine = r.validate().await.unwrap().create_engine();
    let dbh = engine.db("mem").unwrap();
    let _tx = dbh.begin().await.unwrap();
    let started = Instant::now();
    let r = within(
        Duration::from_secs(10),
        "query",
        dbh.query("SELECT 1", vec![]),
    )
    .await;
    assert_timeout(r, started, "mem", "acquire", Duration::from_millis(250));
}

#[tokio::test]
async fn bad_timeouts_are_refused() {
    for (yaml, expected) in [
        (
            "p:\n  sqlite: \":memory:\"\n  query_timeout: 0s\n",
            "query_timeout",
        ),
        (
            "p:\n  sqlite: \":memory:\"\n  acquire_timeout: soon\n",
            "acquire_timeout",
        ),
        (
            "p:\n  sqlite: \":memory:\"\n  connect_timeout: 5h\n",
            "connect_timeout",
        ),
        (
            "p:\n  local_cache: 10\n  query_timeout: 5s\n",
            "query_timeout",
        ),
    ] {
        let err = Registry::from_yaml(yaml).unwrap_err().to_string();
        assert!(
            err.contains(expected) && err.contains("`p`"),
            "{yaml}: {err}"
        );
    }
    let mut r = Registry::new();
    r.register_sqlite_pool("p", ":memory:")
        .set_sql_timeouts("nope", LIMIT, LIMIT, LIMIT);
    let err = r.validate().await.unwrap_err();
    assert!(matches!(err, Error::UnknownPool { .. }), "{err}");
    let mut r = Registry::new();
    r.register_sqlite_pool("p", ":memory:")
        .set_sql_timeouts("p", LIMIT, Duration::ZERO, LIMIT);
    let err = r.validate().await.unwrap_err().to_string();
    assert!(err.contains("`p`") && err.contains("above zero"), "{err}");
}

/// A throwaway MariaDB server on a free loopback port, killed on drop.
struct Throwaway {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Throwaway {
    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_binary(names: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .map(std::path::PathBuf::from)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"].map(Into::into));
    for dir in dirs {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `mariadbd` with its own data directory, or `None` when the binaries are
/// not installed.
async fn start_mariadb() -> Option<Throwaway> {
    let server = find_binary(&["mariadbd", "mysqld"])?;
    let install = find_binary(&["mariadb-install-db", "mysql_install_db"])?;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let user = if std::env::var("USER").as_deref() == Ok("root")
        || std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    {
        "--user=root".to_string()
    } else {
        String::new()
    };
    let mut cmd = std::process::Command::new(&install);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if !user.is_empty() {
        cmd.arg(&user);
    }
    let installed = cmd.status().unwrap();
    assert!(installed.success(), "mariadb-install-db failed");
    // `free_port` releases the port before the server binds it: under load another
    // test's listener (a proxy to the shared MariaDB) can take it in between, and a
    // readiness check would then be answered by the wrong server. The server must
    // report its own port, else it starts again on another one.
    let mut dir = Some(dir);
    for _attempt in 0..5 {
        let dir_ref = dir.as_ref().unwrap();
        let port = free_port();
        let mut cmd = std::process::Command::new(&server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--socket={}",
                dir_ref.path().join("sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir_ref.path().join("pid").display()
            ))
            .arg("--skip-name-resolve")
            .arg("--skip-log-bin")
            .arg("--innodb-buffer-pool-size=16M")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if !user.is_empty() {
            cmd.arg(&user);
        }
        let child = cmd.spawn().unwrap();
        let mut server = Throwaway {
            child,
            port,
            _dir: dir.take().unwrap(),
        };
        // Ready when it answers a query with its own port.
        let mut r = Registry::new();
        r.register_mysql_pool("probe", &format!("mysql://root@127.0.0.1:{port}/mysql"));
        let v = r.validate().await.unwrap();
        let started = Instant::now();
        let mut ours = false;
        loop {
            if server.child.try_wait().unwrap().is_some() {
                break; // exited: the port was taken
            }
            let answer = v
                .create_engine()
                .db("probe")
                .unwrap()
                .query("SELECT @@port", vec![])
                .await;
            if let Ok(rows) = answer {
                ours = rows[0][0].as_i64() == Some(i64::from(port));
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the throwaway MariaDB server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        v.close().await;
        if ours {
            return Some(server);
        }
        let _ = server.child.kill();
        let _ = server.child.wait();
        dir = Some(std::mem::replace(
            &mut server._dir,
            tempfile::tempdir().unwrap(),
        ));
    }
    panic!("the throwaway MariaDB server never got a port of its own");
}

/// The fault test: a real throwaway server frozen with SIGSTOP. Before, every
/// caller blocked indefinitely; now each gets a typed timeout within the bound.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_mysql_server_gives_typed_timeouts() {
    let Some(server) = start_mariadb().await else {
        eprintln!("SKIPPED frozen_mysql_server_gives_typed_timeouts: mariadbd / mariadb-install-db not installed");
        return;
    };
    let url = format!(
        "mysql://root@127.0.0.1:{}/mysql?limit_connections=1&prefer_socket=false",
        server.port
    );
    let mut r = Registry::new();
    r.register_mysql_pool("frozen", &url)
        .set_sql_timeouts("frozen", LIMIT, LIMIT, LIMIT);
    let engine = r.validate().await.unwrap().create_engine();
    let dbh = engine.db("frozen").unwrap();
    dbh.query("SELECT 1", vec![]).await.unwrap();

    server.signal("-STOP");
    // A statement on the open connection.
    let started = Instant::now();
    let r = within(
        Duration::from_secs(10),
        "query",
        dbh.query("SELECT 1", vec![]),
    )
    .await;
    assert_timeout(r, started, "frozen", "statement", LIMIT);
    // A new connection (the timed-out one was discarded): the TCP connect succeeds,
    // the handshake never comes.
    let started = Instant::now();
    let r = within(Duration::from_secs(10), "begin", dbh.begin()).await;
    assert_timeout(r, started, "frozen", "acquire", LIMIT);
    // A fresh pool.
    let mut r2 = Registry::new();
    r2.register_mysql_pool("fresh", &url)
        .set_sql_timeouts("fresh", LIMIT, LIMIT, LIMIT);
    let fresh = r2.validate().await.unwrap().create_engine();
    let started = Instant::now();
    let r = within(
        Duration::from_secs(10),
        "fresh",
        fresh.db("fresh").unwrap().query("SELECT 1", vec![]),
    )
    .await;
    assert_timeout(r, started, "fresh", "acquire", LIMIT);

    // Thawed, the pool works again.
    server.signal("-CONT");
    let started = Instant::now();
    loop {
        match dbh.query("SELECT 1", vec![]).await {
            Ok(rows) => {
                assert_eq!(rows[0][0].as_i64(), Some(1));
                break;
            }
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "the pool did not recover: {e}"
            ),
        }
    }
    drop(server);
}

/// A TCP proxy that can stop forwarding (a frozen link: the peer sees nothing).
async fn freezable_proxy(upstream: String, frozen: Arc<AtomicBool>) -> u16 {
    common::proxy::proxy(&upstream, Duration::ZERO, frozen).await
}

/// PostgreSQL behind a link that freezes: statement and connect timeouts.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_postgres_link_gives_typed_timeouts() {
    let db = TestDb::new(Kind::Postgres, "frozen_link_pg").await;
    let after = db.location.split_once("://").unwrap().1;
    let (userinfo, rest) = after.split_once('@').unwrap();
    let (host_port, path) = rest.split_once('/').unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let port = freezable_proxy(host_port.to_string(), frozen.clone()).await;
    let url = format!("postgres://{userinfo}@127.0.0.1:{port}/{path}?limit_connections=1");
    let mut r = Registry::new();
    r.register_postgres_pool("link", &url)
        .set_sql_timeouts("link", LIMIT, LIMIT, LIMIT);
    let engine = r.validate().await.unwrap().create_engine();
    let dbh = engine.db("link").unwrap();
    dbh.query("SELECT 1", vec![]).await.unwrap();

    frozen.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let r = within(
        Duration::from_secs(10),
        "query",
        dbh.query("SELECT 1", vec![]),
    )
    .await;
    assert_timeout(r, started, "link", "statement", LIMIT);
    let started = Instant::now();
    let r = within(Duration::from_secs(10), "begin", dbh.begin()).await;
    assert_timeout(r, started, "link", "connect", LIMIT);

    frozen.store(false, Ordering::Relaxed);
    let rows = within(
        Duration::from_secs(10),
        "thawed",
        dbh.query("SELECT 1", vec![]),
    )
    .await
    .unwrap();
    assert_eq!(rows[0][0].as_i64(), Some(1));
    db.drop().await;
}
