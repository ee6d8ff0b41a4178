//! The operations commands against real Redis (and SQLite files): `streams --watch`,
//! `consume`, `lazy`, `cache`, their `--json`, and their error paths — a missing
//! stream, group or consumer, an unknown entity or dead letter, a refused
//! confirmation, a dead server. Every test uses its own keys (a unique namespace,
//! unique stream names) so the tests run in parallel.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beeorm::{Registry, Tracked};
use beeorm_cli::{
    Cli, Source, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_PENDING, EXIT_UNAVAILABLE,
};
use common::{cli, redis_url, run, unique};

#[derive(beeorm::Entity, Debug, Clone)]
#[orm(table = "ops_users", redis_cache)]
struct CachedUser {
    id: u64,
    #[orm(length = 50)]
    name: String,
}

#[derive(beeorm::Entity, Debug, Clone)]
#[orm(table = "ops_visits")]
struct Visit {
    id: u64,
    #[orm(length = 5)]
    page: String,
}

fn sqlite(dir: &tempfile::TempDir) -> Registry {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", &dir.path().join("ops.db").to_string_lossy());
    r
}

/// A registry with one stream `stream` of two groups on the test Redis.
fn with_stream(dir: &tempfile::TempDir, stream: &str) -> Registry {
    let mut r = sqlite(dir);
    r.register_redis_pool("default", &redis_url(), 0)
        .register_redis_stream(stream, "default", &["g1", "g2"]);
    r
}

/// A handler counting the events it is handed into `seen`.
fn counting(
    seen: &Arc<AtomicU64>,
) -> impl Fn(beeorm::events::Batch) -> std::future::Ready<Result<(), std::io::Error>>
       + Send
       + Sync
       + 'static {
    let seen = seen.clone();
    move |batch| {
        seen.fetch_add(batch.len() as u64, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

async fn publish(r: Registry, stream: &str, n: usize) -> beeorm::ValidatedRegistry {
    let v = r.validate().await.unwrap();
    let broker = v.create_engine().event_broker();
    for i in 0..n {
        broker
            .publish_map(stream, [("n", i.to_string())])
            .await
            .unwrap();
    }
    v
}

async fn delete_keys(v: &beeorm::ValidatedRegistry, pattern: &str) {
    let redis = v.create_engine().redis("default").unwrap();
    for k in redis.scan_match(pattern).await.unwrap() {
        redis.del(k.as_str()).await.unwrap();
    }
}

#[tokio::test]
async fn streams_watch_redraws_until_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let stream = unique("watch");
    let v = publish(with_stream(&dir, &stream), &stream, 2).await;

    let r = cli(
        Source::Registry(with_stream(&dir, &stream)),
        &[
            "streams",
            "--watch",
            "--interval",
            "0.05",
            "--iterations",
            "3",
        ],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert_eq!(
        r.out.matches(&stream).count(),
        3 * 2,
        "3 tables of 2 groups: {}",
        r.out
    );
    assert!(
        !r.out.contains("\x1b[2J"),
        "no screen clearing off a terminal"
    );

    let r = cli(
        Source::Registry(with_stream(&dir, &stream)),
        &[
            "streams",
            "--watch",
            "--json",
            "--interval",
            "0.05",
            "--iterations",
            "2",
        ],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    let docs: Vec<serde_json::Value> = r
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2, "one JSON document per refresh");
    assert_eq!(docs[1][0]["length"], 2);

    let r = cli(
        Source::Registry(with_stream(&dir, &stream)),
        &["streams", "--watch", "--interval", "0"],
    )
    .await;
    assert_eq!(r.code, EXIT_ERROR);
    assert!(r.err.contains("--interval"), "{}", r.err);
    delete_keys(&v, &stream).await;
}

#[tokio::test]
async fn consume_drains_with_the_registered_handler() {
    let dir = tempfile::tempdir().unwrap();
    let stream = unique("drain");
    let v = publish(with_stream(&dir, &stream), &stream, 5).await;
    let seen = Arc::new(AtomicU64::new(0));
    let command = Cli::new(with_stream(&dir, &stream)).consumer(&stream, "g1", counting(&seen));
    let r = run(command, &["consume", &stream, "g1", "--drain"]).await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert_eq!(seen.load(Ordering::Relaxed), 5);
    assert!(r.err.contains("drained 5 event(s)"), "{}", r.err);

    // The group is caught up; the other group is not.
    let r = cli(
        Source::Registry(with_stream(&dir, &stream)),
        &["streams", "--json"],
    )
    .await;
    let json: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    let groups = &json[0]["groups"];
    assert_eq!(groups[0]["group"], "g1");
    assert_eq!(groups[0]["lag"], 0);
    assert_eq!(groups[0]["pending"], 0);
    assert_eq!(groups[1]["lag"], 5);
    delete_keys(&v, &stream).await;
}

#[tokio::test]
async fn consume_errors_name_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let stream = unique("missing");
    let v = publish(with_stream(&dir, &stream), &stream, 0).await;
    let handler = |_b: beeorm::events::Batch| async { Ok::<(), std::io::Error>(()) };

    // A stream the registry does not know.
    let command = Cli::new(with_stream(&dir, &stream)).consumer("nope", "g1", handler);
    let r = run(command, &["consume", "nope", "g1"]).await;
    assert_eq!(r.code, EXIT_NOT_FOUND, "{}", r.err);
    assert!(r.err.contains("`nope`"), "{}", r.err);
    assert_eq!(r.err.lines().count(), 1, "{}", r.err);

    // A group the stream does not have.
    let command = Cli::new(with_stream(&dir, &stream)).consumer(&stream, "g1", handler);
    let r = run(command, &["consume", &stream, "g9"]).await;
    assert_eq!(r.code, EXIT_NOT_FOUND, "{}", r.err);
    assert!(r.err.contains("g9"), "{}", r.err);

    // A registered group without a handler in this binary.
    let command = Cli::new(with_stream(&dir, &stream)).consumer(&stream, "g1", handler);
    let r = run(command, &["consume", &stream, "g2"]).await;
    assert_eq!(r.code, EXIT_NOT_FOUND, "{}", r.err);
    assert!(
        r.err.contains(&format!("{stream}/g1")),
        "lists the registered ones: {}",
        r.err
    );
    delete_keys(&v, &stream).await;
}

#[tokio::test]
async fn consume_runs_until_a_signal_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let stream = unique("signal");
    let v = publish(with_stream(&dir, &stream), &stream, 3).await;
    let seen = Arc::new(AtomicU64::new(0));
    let command = Cli::new(with_stream(&dir, &stream)).consumer(&stream, "g1", counting(&seen));
    // The signal handlers are registered before the consumer reads: once it handled
    // the events, SIGTERM reaches the command, not the default "terminate".
    let watched = seen.clone();
    let signaller = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while watched.load(Ordering::Relaxed) < 3 {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    });
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        run(command, &["consume", &stream, "g1"]),
    )
    .await
    .expect("the consumer stops after the signal");
    assert!(
        signaller.await.unwrap(),
        "the consumer ran and the signal was sent"
    );
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert!(
        r.err.contains("stopping after the batch in hand"),
        "{}",
        r.err
    );
    assert!(
        r.err.contains("3 events"),
        "the status line counts: {}",
        r.err
    );
    assert!(r.err.contains("(stopped)"), "{}", r.err);
    delete_keys(&v, &stream).await;
}

/// A registry with the lazy flush on namespace `ns`.
fn lazy_registry(dir: &tempfile::TempDir, ns: &str) -> Registry {
    let mut r = sqlite(dir);
    r.register_redis_pool("default", &redis_url(), 0)
        .set_cache_namespace(ns)
        .enable_lazy_flush("default")
        .register_entity::<Visit>();
    r
}

#[tokio::test]
async fn lazy_backlog_dead_letters_retry_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let ns = unique("lazy");
    let v = lazy_registry(&dir, &ns).validate().await.unwrap();
    let e = v.create_engine();
    for a in e.alters().await.unwrap() {
        a.exec(&e).await.unwrap();
    }
    // Row 1 exists; two lazy inserts of ID 1 can never apply: dead letters.
    e.flush(&mut Tracked::new(Visit {
        id: 1,
        page: "/a".into(),
    }))
    .await
    .unwrap();
    for page in ["/b", "/c"] {
        e.flusher()
            .track(&mut Tracked::new(Visit {
                id: 1,
                page: page.into(),
            }))
            .flush_lazy()
            .await
            .unwrap();
    }

    let r = cli(
        Source::Registry(lazy_registry(&dir, &ns)),
        &["lazy", "--json"],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    let json: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(json["stream"]["length"], 2, "{json}");
    assert_eq!(json["stream"]["groups"][0]["lag"], 2, "{json}");
    assert_eq!(json["dead_letters"], 0);

    let applier = e
        .lazy_consumer()
        .unwrap()
        .attempts(1)
        .backoff(Duration::from_millis(1));
    assert_eq!(applier.drain().await.unwrap(), 2);

    let r = cli(Source::Registry(lazy_registry(&dir, &ns)), &["lazy"]).await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert!(r.out.contains("Dead letters: 2"), "{}", r.out);

    let r = cli(
        Source::Registry(lazy_registry(&dir, &ns)),
        &["lazy", "dead-letters", "--json"],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    let letters: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0]["entity"], "Visit");
    assert_eq!(letters[0]["op"], "insert");
    assert_eq!(letters[0]["entity_id"], 1);
    let first = letters[0]["id"].as_str().unwrap().to_string();
    let second = letters[1]["id"].as_str().unwrap().to_string();

    let r = cli(
        Source::Registry(lazy_registry(&dir, &ns)),
        &["lazy", "dead-letters"],
    )
    .await;
    assert!(
        r.out.contains(&first) && r.out.contains("Visit"),
        "{}",
        r.out
    );

    // Retry: back on the stream, off the dead letters.
    let r = cli(
        Source::Registry(lazy_registry(&dir, &ns)),
        &["lazy", "retry", &first],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    let b = e.lazy_backlog().await.unwrap();
    assert_eq!(b.dead_letters, 1);
    assert_eq!(b.stream.groups[0].lag, Some(1));
    let r = cli(
        Source::Registry(lazy_registry(&dir, &ns)),
        &["lazy", "retry", &first],
    )
    .await;
    assert_eq!(r.code, EXIT_NOT_FOUND, "moved, not copied: {}", r.err);

    // Drop: refused without a terminal and without --yes; then done with --yes.
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        let r = cli(
            Source::Registry(lazy_registry(&dir, &ns)),
            &["lazy", "drop", &second],
        )
        .await;
        assert_eq!(r.code, EXIT_ERROR, "{}", r.err);
        assert!(r.err.contains("--yes"), "{}", r.err);
        assert_eq!(e.lazy_backlog().await.unwrap().dead_letters, 1);
    }
    let r = cli(
        Source::Registry(lazy_registry(&dir, &ns)),
        &["lazy", "drop", &second, "--yes"],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert_eq!(e.lazy_backlog().await.unwrap().dead_letters, 0);
    let r = cli(
        Source::Registry(lazy_registry(&dir, &ns)),
        &["lazy", "drop", "1-1", "--yes"],
    )
    .await;
    assert_eq!(r.code, EXIT_NOT_FOUND, "{}", r.err);

    delete_keys(&v, &format!("{{{ns}:lazy}}*")).await;
    v.close().await;
}

#[tokio::test]
async fn lazy_without_the_lazy_flush_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = cli(Source::Registry(sqlite(&dir)), &["lazy"]).await;
    assert_eq!(r.code, EXIT_ERROR);
    assert!(r.err.contains("lazy"), "{}", r.err);
    assert_eq!(r.err.lines().count(), 1, "{}", r.err);
}

fn cache_registry(dir: &tempfile::TempDir, ns: &str) -> Registry {
    let mut r = sqlite(dir);
    r.register_redis_pool("default", &redis_url(), 0)
        .set_cache_namespace(ns)
        .set_cache_stats_interval(Duration::ZERO)
        .register_entity::<CachedUser>();
    r
}

#[tokio::test]
async fn cache_shows_published_ratios_and_clears_one_entity() {
    let dir = tempfile::tempdir().unwrap();
    let ns = unique("cache");
    let v = cache_registry(&dir, &ns).validate().await.unwrap();
    let e = v.create_engine();
    for a in e.alters().await.unwrap() {
        a.exec(&e).await.unwrap();
    }
    let mut rows: Vec<_> = (1..=3)
        .map(|id| {
            Tracked::new(CachedUser {
                id,
                name: format!("u{id}"),
            })
        })
        .collect();
    e.flusher().track_all(&mut rows).flush().await.unwrap();
    // Misses that fill Redis, then hits (new engines: no request cache in between).
    for _ in 0..3 {
        let e = v.create_engine();
        for id in 1..=3 {
            assert!(e.load_by_id::<CachedUser>(id).await.unwrap().is_some());
        }
    }
    e.publish_cache_stats().await.unwrap();
    // A second publication adds nothing: only deltas are sent.
    e.publish_cache_stats().await.unwrap();

    let r = cli(
        Source::Registry(cache_registry(&dir, &ns)),
        &["cache", "--json"],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    let json: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    let user = &json[0];
    assert_eq!(user["entity"], "CachedUser");
    assert_eq!(user["redis"]["misses"], 3, "{json}");
    assert_eq!(user["redis"]["hits"], 6, "{json}");
    assert_eq!(user["redis"]["hit_ratio"], 6.0 / 9.0);

    let r = cli(Source::Registry(cache_registry(&dir, &ns)), &["cache"]).await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert!(
        r.out.contains("CachedUser") && r.out.contains("66.7%"),
        "{}",
        r.out
    );

    assert_eq!(e.count_cached_rows("CachedUser").await.unwrap(), 3);
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        let r = cli(
            Source::Registry(cache_registry(&dir, &ns)),
            &["cache", "clear", "CachedUser"],
        )
        .await;
        assert_eq!(r.code, EXIT_ERROR, "{}", r.err);
        assert!(r.err.contains("--yes"), "{}", r.err);
        assert_eq!(e.count_cached_rows("CachedUser").await.unwrap(), 3);
    }
    let r = cli(
        Source::Registry(cache_registry(&dir, &ns)),
        &["cache", "clear", "CachedUser", "--yes"],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert!(r.out.contains("3 Redis key(s) deleted"), "{}", r.out);
    assert_eq!(e.count_cached_rows("CachedUser").await.unwrap(), 0);
    // The rows come back from the database.
    let fresh = v.create_engine();
    assert_eq!(
        fresh
            .load_by_id::<CachedUser>(2)
            .await
            .unwrap()
            .unwrap()
            .name,
        "u2"
    );

    let r = cli(
        Source::Registry(cache_registry(&dir, &ns)),
        &["cache", "clear", "Nobody", "--yes"],
    )
    .await;
    assert_eq!(r.code, EXIT_NOT_FOUND, "{}", r.err);
    assert!(
        r.err.contains("CachedUser"),
        "lists the cached entities: {}",
        r.err
    );

    delete_keys(&v, &format!("{ns}:*")).await;
    v.close().await;
}

#[tokio::test]
async fn cache_without_cached_entities_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let r = cli(Source::Registry(sqlite(&dir)), &["cache"]).await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert!(r.out.contains("No cached entity"), "{}", r.out);
    let r = cli(Source::Registry(sqlite(&dir)), &["cache", "--json"]).await;
    assert_eq!(r.out.trim(), "[]");
}

#[tokio::test]
async fn alters_and_check_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = sqlite(&dir);
    r.register_entity::<Visit>();
    let r = cli(Source::Registry(r), &["check", "--json"]).await;
    assert_eq!(r.code, EXIT_PENDING, "{}", r.err);
    let json: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(json[0]["pool"], "default");
    assert_eq!(json[0]["safe"], true);
    assert!(json[0]["sql"].as_str().unwrap().contains("ops_visits"));

    let mut r = sqlite(&dir);
    r.register_entity::<Visit>();
    let r = cli(Source::Registry(r), &["alters", "--json"]).await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    let json: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_dead_database_exits_69_with_one_message() {
    // Port 1 on loopback: nothing listens there.
    let mut r = Registry::new();
    r.register_mysql_pool("default", "mysql://root@127.0.0.1:1/test");
    r.set_sql_timeouts(
        "default",
        Duration::from_secs(2),
        Duration::from_secs(2),
        Duration::from_secs(2),
    );
    let out = cli(Source::Registry(r), &["check"]).await;
    assert_eq!(out.code, EXIT_UNAVAILABLE, "{}", out.err);
    assert!(out.err.starts_with("error: "), "{}", out.err);
    assert_eq!(out.err.lines().count(), 1, "{}", out.err);
    assert!(out.err.contains("default"), "names the pool: {}", out.err);

    let mut r = sqlite(&tempfile::tempdir().unwrap());
    r.register_redis_pool("default", "127.0.0.1:1", 0)
        .register_redis_stream("s", "default", &["g"]);
    let out = cli(Source::Registry(r), &["lazy"]).await;
    assert_eq!(out.code, EXIT_UNAVAILABLE, "{}", out.err);
}
