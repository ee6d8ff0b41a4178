//! Every SQL statement is traced: a span with pool and SQL (never the values) and an
//! event with its duration.
// Some helpers serve only the tests of one driver: unused in single-driver builds.
#![cfg_attr(not(all(feature = "mysql", feature = "postgres")), allow(unused))]
#![allow(clippy::unwrap_used)]

mod common;

use common::{Capture, Kind, TestDb};

async fn traced_run(kind: Kind, test: &str) -> String {
    let db = TestDb::new(kind, test).await;
    let capture = Capture::default();
    let guard = capture.install();
    let engine = db.registry().validate().await.unwrap().create_engine();
    let sql = engine.db("default").unwrap();
    sql.execute("CREATE TABLE traced (v VARCHAR(20))", vec![])
        .await
        .unwrap();
    sql.execute(
        &common::native(kind, "INSERT INTO traced (v) VALUES (?)"),
        vec!["secret-value".into()],
    )
    .await
    .unwrap();
    let _ = sql.query("SELECT nope FROM traced", vec![]).await;
    drop(guard);
    db.drop().await;
    capture.text()
}

fn check(out: &str, db: &str) {
    let insert: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("INSERT INTO traced"))
        .collect();
    assert!(
        insert.iter().any(|l| l.contains("statement done")
            && l.contains("duration_us=")
            && l.contains("pool=default")
            && l.contains(&format!("db=\"{db}\""))),
        "no duration event for the INSERT in:\n{out}"
    );
    assert!(
        !out.contains("secret-value"),
        "values must not be logged:\n{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("SELECT nope")
            && l.contains("WARN")
            && l.contains("statement failed")),
        "failed statement not reported:\n{out}"
    );
}

// One test for both dialects: tracing caches per-callsite interest globally, so
// parallel tests with different thread-local subscribers would race on it.
#[cfg(all(feature = "mysql", feature = "postgres"))]
#[tokio::test(flavor = "current_thread")]
async fn every_statement_is_traced_with_its_duration() {
    check(&traced_run(Kind::MySql, "traced_my").await, "mysql");
    check(&traced_run(Kind::Sqlite, "traced_lite").await, "sqlite");
    check(&traced_run(Kind::Postgres, "traced_pg").await, "postgres");
}
