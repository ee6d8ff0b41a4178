//! The instrumentation hook (`Registry::set_instrumentation`) sees every statement —
//! pool, SQL without values, rows, success — and every transaction step, including
//! the rollback of a dropped transaction, on every dialect. And plain SQL reaches
//! PostgreSQL verbatim: `$n` parameters, jsonb `?` operators.
// Some helpers serve only the tests of one driver: unused in single-driver builds.
#![cfg_attr(not(all(feature = "mysql", feature = "postgres")), allow(unused))]
#![allow(clippy::unwrap_used)]

mod common;

use beeorm::prelude::*;
use beeorm::TransactionStep::{Begin, Commit, Rollback};
use common::{native, Kind, StatementCounter, TestDb};

#[derive(Entity)]
#[orm(table = "notes")]
struct Note {
    id: u64,
    text: String,
}

dialect_test!(
    statements_and_transactions_are_reported,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Note>();
        let counter = StatementCounter::register(&mut r);
        let engine = r.validate().await.unwrap().create_engine();
        common::sync(&engine).await;
        let sql = engine.db("default").unwrap();
        counter.take_all();
        counter.take_transactions();

        let insert = native(db.kind, "INSERT INTO notes (text) VALUES (?), (?)");
        sql.execute(&insert, vec!["secret-a".into(), "secret-b".into()])
            .await
            .unwrap();
        let rows = sql.query("SELECT text FROM notes", vec![]).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert!(sql.query("SELECT nope FROM notes", vec![]).await.is_err());
        assert_eq!(
            counter.take_all(),
            vec![
                (insert.clone(), 2, true),
                ("SELECT text FROM notes".to_string(), 2, true),
                ("SELECT nope FROM notes".to_string(), 0, false),
            ],
            "SQL without values, rows affected or returned, failures"
        );
        assert!(counter.take_transactions().is_empty(), "no transaction yet");

        // Commit, rollback, drop: each reported, with the statements they send.
        let mut tx = sql.begin().await.unwrap();
        tx.execute(
            &native(db.kind, "UPDATE notes SET text = ?"),
            vec!["c".into()],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let tx = sql.begin().await.unwrap();
        tx.rollback().await.unwrap();
        let mut tx = sql.begin().await.unwrap();
        tx.execute("DELETE FROM notes", vec![]).await.unwrap();
        drop(tx);
        let steps: Vec<_> = counter
            .take_transactions()
            .into_iter()
            .map(|(pool, step, dropped, ok)| {
                assert_eq!(pool, "default");
                assert!(ok);
                (step, dropped)
            })
            .collect();
        assert_eq!(
            steps,
            vec![
                (Begin, false),
                (Commit, false),
                (Begin, false),
                (Rollback, false),
                (Begin, false),
                (Rollback, true),
            ]
        );
        let sent = counter.take_all();
        let updated = sent
            .iter()
            .find(|(s, _, _)| s.starts_with("UPDATE"))
            .unwrap();
        assert_eq!(updated.1, 2, "rows changed by the UPDATE: {sent:?}");
        assert!(sent.iter().any(|(s, _, _)| s == "COMMIT"), "{sent:?}");
        assert!(sent.iter().any(|(s, _, _)| s == "ROLLBACK"), "{sent:?}");
        // The dropped transaction rolled back (in the background on MySQL/PostgreSQL).
        let mut count = 0;
        for _ in 0..100 {
            count = sql
                .query("SELECT id FROM notes", vec![])
                .await
                .unwrap()
                .len();
            if count == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(count, 2, "the dropped DELETE was rolled back");

        // The ORM's own statements go through the same hook.
        counter.take_all();
        let mut note = Tracked::new(Note {
            id: 0,
            text: "d".into(),
        });
        engine.flush(&mut note).await.unwrap();
        let loaded = engine.load_by_id::<Note>(note.id).await.unwrap();
        assert!(loaded.is_some());
        let sent = counter.take();
        assert!(
            sent.iter().any(|s| s.starts_with("INSERT INTO")),
            "{sent:?}"
        );
        assert!(sent.iter().any(|s| s.starts_with("SELECT")), "{sent:?}");
        db.drop().await;
    }
);

/// Plain SQL on PostgreSQL is sent as written: `$n` parameters, and `?` is the
/// jsonb operator (before, every `?` became a placeholder).
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_plain_sql_is_verbatim() {
    let db = TestDb::new(Kind::Postgres, "verbatim_pg").await;
    let engine = db.registry().validate().await.unwrap().create_engine();
    let sql = engine.db("default").unwrap();
    let rows = sql
        .query(
            r#"SELECT '{"a": 1}'::jsonb ? 'a', '{"a": 1}'::jsonb ? 'b', $1::int + $2::int"#,
            vec![2.into(), 3.into()],
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![Value::Bool(true), Value::Bool(false), Value::I64(5)]]
    );
    let rows = sql
        .query(r#"SELECT '{"k": 1}'::jsonb ? $1"#, vec!["k".into()])
        .await
        .unwrap();
    assert_eq!(rows, vec![vec![Value::Bool(true)]]);
    let mut tx = sql.begin().await.unwrap();
    tx.execute("CREATE TABLE j (doc jsonb)", vec![])
        .await
        .unwrap();
    tx.execute(
        "INSERT INTO j (doc) VALUES ($1::jsonb)",
        vec![r#"{"x": true}"#.into()],
    )
    .await
    .unwrap();
    let rows = tx
        .query("SELECT COUNT(*) FROM j WHERE doc ? 'x'", vec![])
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_i64(), Some(1));
    tx.commit().await.unwrap();
    db.drop().await;
}
