//! Issue 13: consumers in other OS processes. A consumer process killed with SIGKILL
//! in the middle of a batch loses nothing: another consumer reclaims its pending
//! events and every event is processed at least once. A consumer process sent
//! SIGTERM (`run_until_signal`) finishes and acknowledges its batch, then exits.
//!
//! The child is this test binary run again on the ignored test `events_crash_child`,
//! configured through environment variables; processed entry IDs go to a Redis set,
//! which outlives the child.
#![allow(clippy::unwrap_used)]

mod common_redis;

use std::time::Duration;

use beeorm::events::Batch;
use beeorm::redis::driver;
use beeorm::{Engine, Error, RedisClient, Registry};
use common_redis::{cleanup, prefix, redis_url};

const CHILD_ENV: &str = "BEEORM_EVENTS_CRASH_CHILD";

async fn engine(stream: &str) -> Engine {
    let mut r = Registry::new();
    r.register_redis_pool("default", &redis_url(), 0)
        .register_redis_stream(stream, "default", &["g"]);
    r.validate().await.unwrap().create_engine()
}

/// Polls `cond` every 20 ms, at most 30 s.
async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1500 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The keys of one scenario, all under the test's prefix.
struct Keys {
    stream: String,
    processed: String,
    in_batch: String,
    go: String,
}

impl Keys {
    fn new(p: &str) -> Keys {
        Keys {
            stream: format!("{p}stream"),
            processed: format!("{p}processed"),
            in_batch: format!("{p}in-batch"),
            go: format!("{p}go"),
        }
    }
}

fn spawn_child(mode: &str, prefix: &str) -> tokio::process::Child {
    let exe = std::env::current_exe().unwrap();
    tokio::process::Command::new(exe)
        .args([
            "events_crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, format!("{mode} {prefix}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn set_members(redis: &RedisClient, key: &str) -> std::collections::BTreeSet<String> {
    redis
        .smembers::<_, String>(key)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// The child: `kill` handles one batch fully, then half of the next and hangs there
/// (until the parent kills it); `signal` runs until SIGTERM, holding its first batch
/// until the parent says `go`.
#[tokio::test]
#[ignore = "run by the crash tests in a child process"]
async fn events_crash_child() {
    let Ok(config) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, p) = config.split_once(' ').unwrap();
    let keys = Keys::new(p);
    let engine = engine(&keys.stream).await;
    let redis = engine.redis("default").unwrap();
    let consumer = engine
        .event_broker()
        .consumer(&keys.stream, "g")
        .unwrap()
        .max_consumers(2)
        .batch_size(20)
        .block(Duration::from_millis(100))
        .lease_ttl(Duration::from_secs(60));
    let batches = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let handler = move |batch: Batch| {
        let (redis, keys, batches) = (redis.clone(), Keys::new(p), batches.clone());
        let kill = mode == "kill";
        async move {
            let n = batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ids: Vec<String> = batch.events().iter().map(|e| e.id().to_string()).collect();
            if kill && n == 1 {
                redis.sadd(&keys.processed, &ids[..ids.len() / 2]).await?;
                redis.set(&keys.in_batch, "1").await?;
                std::future::pending::<()>().await;
            }
            if !kill && n == 0 {
                redis.set(&keys.in_batch, "1").await?;
                while !redis.exists(&keys.go).await? {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            redis.sadd(&keys.processed, &ids).await?;
            Ok::<_, Error>(())
        }
    };
    if mode == "kill" {
        consumer.run(handler).await.unwrap();
    } else {
        consumer.run_until_signal(handler).await.unwrap();
        println!("child-stopped");
    }
}

#[tokio::test]
async fn a_consumer_killed_mid_batch_loses_nothing() {
    let p = prefix("evcrash_kill");
    let keys = Keys::new(&p);
    let engine = engine(&keys.stream).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let mut publisher = broker.publisher();
    for i in 0..100u32 {
        publisher.publish(&keys.stream, &i).unwrap();
    }
    let ids = publisher.send().await.unwrap();

    let mut child = spawn_child("kill", &p);
    wait_until("the child is in the middle of its second batch", || {
        let (redis, key) = (redis.clone(), keys.in_batch.clone());
        async move { redis.exists(key).await.unwrap() }
    })
    .await;
    child.start_kill().unwrap(); // SIGKILL
    let status = child.wait().await.unwrap();
    assert!(!status.success());
    let before = set_members(&redis, &keys.processed).await;
    assert!(
        before.len() < ids.len(),
        "the child was killed before the end"
    );
    // Its delivered, unacknowledged events are pending under its name.
    let stats = broker.stream_stats(&keys.stream).await.unwrap();
    assert!(stats.groups[0].pending > 0);

    // Another consumer (the dead one still holds slot 0 until its TTL) reclaims them
    // once idle, and takes the rest.
    let consumer = broker
        .consumer(&keys.stream, "g")
        .unwrap()
        .max_consumers(2)
        .claim_idle(Duration::from_millis(300));
    wait_until("every event is processed and acknowledged", || {
        let (redis, keys, consumer) = (redis.clone(), Keys::new(&p), &consumer);
        let ids = ids.clone();
        async move {
            consumer
                .drain(|batch: Batch| {
                    let (redis, key) = (redis.clone(), keys.processed.clone());
                    async move {
                        let ids: Vec<&str> = batch.events().iter().map(|e| e.id()).collect();
                        redis.sadd(key, ids).await?;
                        Ok::<_, Error>(())
                    }
                })
                .await
                .unwrap();
            let done = set_members(&redis, &keys.processed).await;
            let pending = redis
                .query::<Vec<driver::Value>>(
                    driver::cmd("XPENDING")
                        .arg(&keys.stream)
                        .arg("g")
                        .arg("-")
                        .arg("+")
                        .arg(10),
                )
                .await
                .unwrap();
            ids.iter().all(|id| done.contains(id)) && pending.is_empty()
        }
    })
    .await;
    // Everything acknowledged by the only group: trimmed.
    let left: u64 = redis
        .query(driver::cmd("XLEN").arg(&keys.stream))
        .await
        .unwrap();
    assert_eq!(left, 0);
    // The dead child's lease expires by itself; remove it for the next run.
    redis
        .del(format!("beeorm:lease:{{{}}}:g:0", keys.stream))
        .await
        .unwrap();
    cleanup(&redis, &p).await;
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_lets_the_consumer_finish_its_batch() {
    let p = prefix("evcrash_term");
    let keys = Keys::new(&p);
    let engine = engine(&keys.stream).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let mut publisher = broker.publisher();
    for i in 0..10u32 {
        publisher.publish(&keys.stream, &i).unwrap();
    }
    let ids = publisher.send().await.unwrap();
    let child = spawn_child("signal", &p);
    wait_until("the child holds its first batch", || {
        let (redis, key) = (redis.clone(), keys.in_batch.clone());
        async move { redis.exists(key).await.unwrap() }
    })
    .await;
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    redis.set(&keys.go, "1").await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child-stopped"),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The batch was finished and acknowledged, the lease released.
    let done = set_members(&redis, &keys.processed).await;
    assert!(ids.iter().all(|id| done.contains(id)));
    let stats = broker.stream_stats(&keys.stream).await.unwrap();
    assert_eq!(stats.groups[0].pending, 0);
    assert!(!redis
        .exists(format!("beeorm:lease:{{{}}}:g:0", keys.stream))
        .await
        .unwrap());
    cleanup(&redis, &p).await;
}
