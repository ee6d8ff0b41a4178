//! G3: query logging. SQL, Redis and cache records carry pool, duration and rows under
//! their source's target; [`beeorm::logging::DebugLayer`] prints them one line each;
//! a target filter keeps one source; an engine's metadata reaches every record run
//! in its `log_span`; failures are warnings with their error.
#![allow(clippy::unwrap_used, missing_docs)]

mod common_redis;

use std::io::Write;
use std::sync::{Arc, Mutex};

use beeorm::logging::DebugLayer;
use beeorm::{Registry, Tracked};
use tracing::Instrument;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

#[derive(beeorm::Entity, Debug, Clone)]
#[orm(table = "log_users", redis_cache)]
struct LogUser {
    id: u64,
    #[orm(length = 30)]
    name: String,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// A subscriber with the debug layer on `capture`, behind `filter`.
fn subscriber(capture: &Capture, filter: Targets) -> impl tracing::Subscriber + Send + Sync {
    let writer = capture.clone();
    tracing_subscriber::registry().with(
        DebugLayer::new()
            .with_writer(move || writer.clone())
            .with_filter(filter),
    )
}

// One test per binary: tracing caches per-callsite interest globally, so the steps
// run in sequence, each under its own subscriber.
#[tokio::test(flavor = "current_thread")]
async fn records_carry_pool_duration_rows_and_metadata_and_filter_by_source() {
    let dir = tempfile::tempdir().unwrap();
    let ns = format!(
        "logtest-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut r = Registry::new();
    r.register_sqlite_pool("default", &dir.path().join("log.db").to_string_lossy())
        .register_redis_pool("default", &common_redis::redis_url(), 0)
        .set_cache_namespace(&ns)
        .set_cache_stats_interval(std::time::Duration::ZERO)
        .register_entity::<LogUser>();
    let v = r.validate().await.unwrap();
    let e = v.create_engine();
    for a in e.alters().await.unwrap() {
        a.exec(&e).await.unwrap();
    }
    e.flush(&mut Tracked::new(LogUser {
        id: 1,
        name: "ann".into(),
    }))
    .await
    .unwrap();

    // 1. Everything of beeorm at debug: SQL, Redis and cache lines.
    let capture = Capture::default();
    let all = Targets::new().with_target("beeorm", tracing::Level::DEBUG);
    {
        let _guard = tracing::subscriber::set_default(subscriber(&capture, all.clone()));
        let fresh = v.create_engine();
        assert!(fresh.load_by_id::<LogUser>(1).await.unwrap().is_some());
        fresh
            .db("default")
            .unwrap()
            .query("SELECT id FROM log_users", vec![])
            .await
            .unwrap();
    }
    let out = capture.take();
    let sql = out
        .lines()
        .find(|l| l.contains("SELECT id FROM log_users"))
        .unwrap_or_else(|| panic!("a SQL line: {out}"));
    assert!(sql.starts_with("beeorm SQL "), "{sql}");
    assert!(sql.contains(" default "), "the pool: {sql}");
    assert!(sql.contains(" ms "), "the duration: {sql}");
    assert!(sql.contains("1 row "), "the rows: {sql}");
    assert!(!sql.contains('\x1b'), "no colours off a terminal: {sql:?}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("beeorm REDIS ") && l.contains(" ms ")),
        "Redis commands of the cached read: {out}"
    );
    let cache = out
        .lines()
        .find(|l| l.starts_with("beeorm CACHE ") && l.contains("layer=redis"))
        .unwrap_or_else(|| panic!("a cache line: {out}"));
    assert!(
        cache.contains("entity=LogUser") && cache.contains("1 row"),
        "{cache}"
    );
    assert!(!out.contains("ann"), "values never reach the log: {out}");

    // 2. A target filter keeps one source.
    {
        let only_sql = Targets::new().with_target(beeorm::logging::SQL, tracing::Level::DEBUG);
        let _guard = tracing::subscriber::set_default(subscriber(&capture, only_sql));
        let fresh = v.create_engine();
        assert!(fresh.load_by_id::<LogUser>(1).await.unwrap().is_some());
        fresh
            .db("default")
            .unwrap()
            .query("SELECT 2", vec![])
            .await
            .unwrap();
    }
    let out = capture.take();
    assert!(out.contains("SELECT 2"), "{out}");
    assert!(
        out.lines().all(|l| l.starts_with("beeorm SQL ")),
        "only SQL: {out}"
    );

    // 3. The engine's metadata on every record run in its span; not on another's.
    {
        let _guard = tracing::subscriber::set_default(subscriber(&capture, all.clone()));
        let mut tagged = v.create_engine();
        tagged.set_log_meta("user_id", 12);
        tagged.set_log_meta("request", "r-7");
        let span = tagged.log_span();
        async {
            assert!(tagged.load_by_id::<LogUser>(1).await.unwrap().is_some());
            tagged
                .db("default")
                .unwrap()
                .query("SELECT 3", vec![])
                .await
                .unwrap();
        }
        .instrument(span)
        .await;
        let other = v.create_engine();
        other
            .db("default")
            .unwrap()
            .query("SELECT 4", vec![])
            .await
            .unwrap();
    }
    let out = capture.take();
    let tagged: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("request=r-7 user_id=12"))
        .collect();
    assert!(
        tagged.iter().any(|l| l.contains("SELECT 3")),
        "SQL carries the metadata: {out}"
    );
    assert!(
        tagged.iter().any(|l| l.starts_with("beeorm REDIS ")),
        "Redis carries it: {out}"
    );
    assert!(
        tagged.iter().any(|l| l.starts_with("beeorm CACHE ")),
        "the cache carries it: {out}"
    );
    let untagged = out.lines().find(|l| l.contains("SELECT 4")).unwrap();
    assert!(!untagged.contains("user_id"), "{untagged}");

    // 4. A failed statement: a warning with its error, even when debug is filtered out.
    {
        let warnings = Targets::new().with_target("beeorm", tracing::Level::WARN);
        let _guard = tracing::subscriber::set_default(subscriber(&capture, warnings));
        let failed = v
            .create_engine()
            .db("default")
            .unwrap()
            .query("SELECT * FROM no_such_table", vec![])
            .await;
        assert!(failed.is_err());
        v.create_engine()
            .db("default")
            .unwrap()
            .query("SELECT 5", vec![])
            .await
            .unwrap();
    }
    let out = capture.take();
    let line = out
        .lines()
        .find(|l| l.contains("no_such_table"))
        .unwrap_or_else(|| panic!("the failure is logged: {out}"));
    assert!(line.contains("error="), "{line}");
    assert!(
        !out.contains("SELECT 5"),
        "debug records filtered out: {out}"
    );

    let redis = e.redis("default").unwrap();
    common_redis::cleanup(&redis, &format!("{ns}:")).await;
    v.close().await;
}
