//! What the change log costs a flush: the same flush of an entity with and without
//! `#[orm(log)]` (the logged one adds one multi-row INSERT of its log rows, in the
//! same transaction).
//!
//! - `change_log/insert_100/{plain,logged}/sqlite`: one flush inserting 100 rows, on a
//!   SQLite temp file;
//! - `change_log/update_1/{plain,logged}/sqlite`: one flush updating one row (the
//!   logged one opens a transaction for it; the plain one sends one statement);
//! - the same on MariaDB (`BEEORM_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`,
//!   database `beeorm_bench_change_log`, created here, dropped at the end); skipped with
//!   a message when the server does not answer.
//!
//! ```text
//! cargo bench -p bench --bench change_log -- --warm-up-time 1 --measurement-time 3
//! ```

use beeorm::{Engine, Registry, Tracked};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tokio::runtime::Runtime;

#[derive(beeorm::Entity)]
#[orm(table = "plain")]
struct Plain {
    id: u64,
    name: String,
    score: u32,
    #[orm(decimal = "10,2")]
    balance: f64,
}

#[derive(beeorm::Entity)]
#[orm(table = "logged", log)]
struct Logged {
    id: u64,
    name: String,
    score: u32,
    #[orm(decimal = "10,2")]
    balance: f64,
}

const MYSQL_DATABASE: &str = "beeorm_bench_change_log";

async fn engine(register: impl FnOnce(&mut Registry)) -> Engine {
    let mut r = Registry::new();
    register(&mut r);
    r.register_entity::<Plain>().register_entity::<Logged>();
    let engine = r.validate().await.expect("validate").create_engine();
    for alter in engine.alters().await.expect("alters") {
        alter.exec(&engine).await.expect("alter");
    }
    engine
}

macro_rules! row {
    ($ty:ident, $i:expr) => {
        Tracked::new($ty {
            id: 0,
            name: format!("name {}", $i),
            score: $i,
            balance: 12.5,
        })
    };
}

fn run(c: &mut Criterion, rt: &Runtime, engine: &Engine, server: &str) {
    let mut group = c.benchmark_group("change_log");
    group.bench_function(BenchmarkId::new("insert_100/plain", server), |b| {
        b.to_async(rt).iter(|| async {
            let mut rows: Vec<Tracked<Plain>> = (0..100).map(|i| row!(Plain, i)).collect();
            engine
                .flusher()
                .track_all(&mut rows)
                .flush()
                .await
                .expect("flush");
        })
    });
    group.bench_function(BenchmarkId::new("insert_100/logged", server), |b| {
        b.to_async(rt).iter(|| async {
            let mut rows: Vec<Tracked<Logged>> = (0..100).map(|i| row!(Logged, i)).collect();
            engine
                .flusher()
                .track_all(&mut rows)
                .flush()
                .await
                .expect("flush");
        })
    });
    let mut plain = row!(Plain, 0);
    let mut logged = row!(Logged, 0);
    rt.block_on(async {
        engine.flush(&mut plain).await.expect("flush");
        engine.flush(&mut logged).await.expect("flush");
    });
    let (plain, logged) = (
        tokio::sync::Mutex::new(plain),
        tokio::sync::Mutex::new(logged),
    );
    group.bench_function(BenchmarkId::new("update_1/plain", server), |b| {
        b.to_async(rt).iter(|| async {
            let mut p = plain.lock().await;
            p.score += 1;
            engine.flush(&mut p).await.expect("flush");
        })
    });
    group.bench_function(BenchmarkId::new("update_1/logged", server), |b| {
        b.to_async(rt).iter(|| async {
            let mut l = logged.lock().await;
            l.score += 1;
            engine.flush(&mut l).await.expect("flush");
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.db").to_string_lossy().into_owned();
    let sqlite = rt.block_on(engine(|r| {
        r.register_sqlite_pool("default", &path);
    }));
    run(c, &rt, &sqlite, "sqlite");

    let url = std::env::var("BEEORM_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let base = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(b, _)| b)
        .to_string();
    let admin = rt.block_on(async {
        let mut r = Registry::new();
        r.register_mysql_pool("admin", &url);
        let engine = r.validate().await.ok()?.create_engine();
        let db = engine.db("admin").ok()?;
        db.execute(
            &format!("DROP DATABASE IF EXISTS `{MYSQL_DATABASE}`"),
            vec![],
        )
        .await
        .ok()?;
        db.execute(&format!("CREATE DATABASE `{MYSQL_DATABASE}`"), vec![])
            .await
            .ok()?;
        Some(db)
    });
    let Some(admin) = admin else {
        eprintln!("MariaDB at {url} does not answer: its part is skipped");
        return;
    };
    let mariadb = rt.block_on(engine(|r| {
        r.register_mysql_pool("default", &format!("{base}/{MYSQL_DATABASE}"));
    }));
    run(c, &rt, &mariadb, "mariadb");
    rt.block_on(async {
        let _ = admin
            .execute(
                &format!("DROP DATABASE IF EXISTS `{MYSQL_DATABASE}`"),
                vec![],
            )
            .await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
