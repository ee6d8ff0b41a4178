//! A2, E5: a Sentinel pool runs every toolkit feature on the current master and
//! follows a failover: the test stops the master (a process `scripts/services`
//! started), the client carries on once the sentinels have promoted the replica, and
//! the test puts the stopped node back as a replica so the next run finds the same
//! setup.
#![allow(clippy::unwrap_used)]

mod common_redis;

use std::process::Command;
use std::time::{Duration, Instant};

use beeorm::{Engine, Limit, Registry};
use common_redis::{cleanup, prefix, sentinel_master, sentinels};

/// The tests of this file share one Sentinel group; the failover must run alone.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn engine() -> Engine {
    let addresses = sentinels();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let mut r = Registry::new();
    r.register_redis_sentinel("ha", &sentinel_master(), &addresses, 0)
        .register_locker("ha", "ha");
    r.validate().await.unwrap().create_engine()
}

fn redis_cli(port: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", port])
        .args(args)
        .output()
        .expect("redis-cli (package redis-tools) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The master's port as the first answering sentinel sees it.
fn master_port() -> String {
    for s in sentinels() {
        let port = s.rsplit(':').next().unwrap().to_string();
        let out = redis_cli(
            &port,
            &["sentinel", "get-master-addr-by-name", &sentinel_master()],
        );
        if let Some(p) = out.lines().nth(1) {
            return p.trim().to_string();
        }
    }
    panic!("no sentinel answers (run scripts/services)");
}

fn sentinel_ports() -> Vec<String> {
    sentinels()
        .iter()
        .map(|s| s.rsplit(':').next().unwrap().to_string())
        .collect()
}

/// One field of `SENTINEL MASTER <name>` as a sentinel on `port` answers it.
fn sentinel_field(port: &str, field: &str) -> Option<String> {
    let out = redis_cli(port, &["sentinel", "master", &sentinel_master()]);
    let mut lines = out.lines();
    while let Some(line) = lines.next() {
        if line.trim() == field {
            return lines.next().map(|v| v.trim().to_string());
        }
    }
    None
}

/// Waits until a failover is possible: the replica is in sync and every sentinel sees
/// the master up, knows the replica and the other sentinels. Right after `scripts/services` started them the
/// sentinels have not yet discovered each other (hello messages every 2 s) nor the
/// replica (INFO every 10 s); stopping the master then would leave nobody to promote.
fn wait_until_sentinels_can_fail_over(master: &str) {
    let since = Instant::now();
    let others = (sentinels().len() - 1).to_string();
    loop {
        // A fresh replica first loads the master's data (full sync): until its link is
        // `online`, WAIT would block and a failover would promote an empty node.
        let synced = redis_cli(master, &["info", "replication"]).contains("state=online");
        let ready = synced
            && sentinel_ports().iter().all(|s| {
                sentinel_field(s, "port").as_deref() == Some(master)
                    && sentinel_field(s, "flags").as_deref() == Some("master")
                    && sentinel_field(s, "num-slaves").is_some_and(|n| n != "0")
                    && sentinel_field(s, "num-other-sentinels").as_deref() == Some(others.as_str())
            });
        if ready {
            return;
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "the sentinels are not ready for a failover after 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every sentinel names a master other than `old` that answers as one,
/// and returns its port. The sentinel that ran the failover knows at once; the
/// others learn it from its hello messages up to ~2 s later.
fn wait_for_new_master(old: &str) -> String {
    let since = Instant::now();
    loop {
        let named: Vec<Option<String>> = sentinel_ports()
            .iter()
            .map(|s| {
                redis_cli(
                    s,
                    &["sentinel", "get-master-addr-by-name", &sentinel_master()],
                )
                .lines()
                .nth(1)
                .map(|p| p.trim().to_string())
            })
            .collect();
        if let Some(Some(first)) = named.first() {
            let agreed = named.iter().all(|n| n.as_deref() == Some(first.as_str()));
            if agreed
                && first != old
                && redis_cli(first, &["role"]).lines().next() == Some("master")
            {
                return first.clone();
            }
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "the sentinels do not agree on a new master after 60 s: {named:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn first_sentinel_port() -> String {
    sentinels()[0].rsplit(':').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_pool_runs_commands_pipelines_scripts_locks_and_rate_limits() {
    let _serial = SERIAL.lock().await;
    let engine = engine().await;
    let redis = engine.redis("ha").unwrap();
    let p = prefix("sentinel");
    redis.set(format!("{p}a"), 1).await.unwrap();
    let (a, b): (u32, i64) = redis
        .pipeline()
        .get(format!("{p}a"))
        .incr(format!("{p}b"), 2)
        .query()
        .await
        .unwrap();
    assert_eq!((a, b), (1, 2));
    let v: String = redis
        .get_set(&format!("{p}gs"), Duration::from_secs(10), || async {
            Ok::<_, beeorm::Error>("cached".to_string())
        })
        .await
        .unwrap();
    assert_eq!(v, "cached");
    let lock = engine
        .locker("ha")
        .unwrap()
        .obtain(&format!("{p}lock"), Duration::from_secs(5), Duration::ZERO)
        .await
        .unwrap();
    lock.release().await.unwrap();
    let mut allowed = 0;
    for _ in 0..5 {
        if redis
            .rate_limit(&format!("{p}r"), Limit::per_minute(3))
            .await
            .unwrap()
            .allowed
        {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3);
    cleanup(&redis, &p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_follows_a_failover() {
    let _serial = SERIAL.lock().await;
    let engine = engine().await;
    let redis = engine.redis("ha").unwrap();
    let p = prefix("failover");
    let old_master = master_port();
    wait_until_sentinels_can_fail_over(&old_master);
    redis.set(format!("{p}before"), "kept").await.unwrap();
    // Make sure the replica has it before the master goes (WAIT's own timeout stays
    // under the client's response timeout).
    let replicas: i64 = redis
        .query(beeorm::redis::driver::cmd("WAIT").arg(1).arg(900))
        .await
        .unwrap();
    assert!(replicas >= 1, "the master has no replica in sync");

    redis_cli(&old_master, &["shutdown", "nosave"]);
    let stopped = Instant::now();

    // Commands fail while there is no master; the client must carry on by itself once
    // the sentinels have promoted the replica.
    let mut failures = 0;
    let value = loop {
        match redis.get::<_, String>(format!("{p}before")).await {
            Ok(v) => break v,
            Err(_) => {
                failures += 1;
                assert!(
                    stopped.elapsed() < Duration::from_secs(60),
                    "no failover after 60 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let took = stopped.elapsed();
    assert_eq!(value.as_deref(), Some("kept"));
    redis.set(format!("{p}after"), "written").await.unwrap();
    let new_master = wait_for_new_master(&old_master);
    assert_ne!(new_master, old_master);
    eprintln!("failover: first successful command {took:?} after the stop ({failures} failed)");

    // Restore: the stopped node comes back as a replica of the new master.
    let dir = format!("/tmp/beeorm-redis/{old_master}");
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("redis-server")
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            &old_master,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir,
            "--logfile",
            &format!("{dir}/redis.log"),
            "--pidfile",
            &format!("{dir}/redis.pid"),
            "--replicaof",
            "127.0.0.1",
            &new_master,
        ])
        .status()
        .unwrap();
    assert!(status.success());
    // Wait until it is in sync and the sentinels count it as a healthy replica, so a
    // next failover (the next run) can promote it.
    let restored = Instant::now();
    loop {
        let info = redis_cli(&old_master, &["info", "replication"]);
        let replicas = redis_cli(
            &first_sentinel_port(),
            &["sentinel", "replicas", &sentinel_master()],
        );
        let listed = replicas.split("\nname\n").any(|r| {
            r.contains(&format!("\nport\n{old_master}\n")) && r.contains("\nflags\nslave\n")
        });
        // Healthy again either way: the old master replicating the new one, or (when
        // the sentinels handed the role back meanwhile) the old master serving with
        // one online replica that the sentinels list.
        let replica_again = info.contains("master_link_status:up") && listed;
        let master_again = info.contains("role:master")
            && info.contains("state=online")
            && replicas.contains("\nflags\nslave\n");
        if replica_again || master_again {
            break;
        }
        assert!(
            restored.elapsed() < Duration::from_secs(60),
            "the old master did not come back as a replica:\n{info}\n{replicas}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        redis
            .get::<_, String>(format!("{p}after"))
            .await
            .unwrap()
            .as_deref(),
        Some("written")
    );
    cleanup(&redis, &p).await;
}

/// Issue 10 item 22: a failover while the client holds a connection to the old master
/// (here a second one, forced with `SENTINEL FAILOVER`: the sentinels demote the old
/// master and kill its client connections) must not fail the next read. The client
/// gets `broken pipe` / connection reset on its old connection; a read is safe to send
/// again, so it re-resolves the master and retries by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_survives_a_failover_under_an_open_connection() {
    let _serial = SERIAL.lock().await;
    let engine = engine().await;
    let redis = engine.redis("ha").unwrap();
    let p = prefix("second_failover");
    let old_master = master_port();
    wait_until_sentinels_can_fail_over(&old_master);
    redis.set(format!("{p}k"), "kept").await.unwrap();
    let replicas: i64 = redis
        .query(beeorm::redis::driver::cmd("WAIT").arg(1).arg(900))
        .await
        .unwrap();
    assert!(replicas >= 1, "the master has no replica in sync");
    // The pool now holds an open connection to the old master.
    assert_eq!(
        redis
            .get::<_, String>(format!("{p}k"))
            .await
            .unwrap()
            .as_deref(),
        Some("kept")
    );

    // Force a failover; a sentinel may refuse for a moment (NOGOODSLAVE while its view
    // of the replica is stale, INPROG), so ask again until it starts one.
    let asked = Instant::now();
    loop {
        let out = redis_cli(
            &first_sentinel_port(),
            &["sentinel", "failover", &sentinel_master()],
        );
        if out.trim() == "OK" {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "SENTINEL FAILOVER refused for 60 s: {out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let new_master = wait_for_new_master(&old_master);
    // The sentinels demote the old master a moment later (`REPLICAOF` plus `CLIENT
    // KILL TYPE normal`): wait for that, so the pool's connection is the killed one.
    let demoting = Instant::now();
    while redis_cli(&old_master, &["role"]).lines().next() != Some("slave") {
        assert!(
            demoting.elapsed() < Duration::from_secs(60),
            "the sentinels did not demote the old master after 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // One call, no retry loop in the test: the client must cope by itself.
    let value = redis.get::<_, String>(format!("{p}k")).await;
    assert_eq!(
        value.as_ref().map(Option::as_deref).ok(),
        Some(Some("kept")),
        "a read after the failover failed: {value:?}"
    );

    // Leave the group ready for the next failover test: the old master replicates the
    // new one and the sentinels know it.
    wait_until_sentinels_can_fail_over(&new_master);
    cleanup(&redis, &p).await;
}
