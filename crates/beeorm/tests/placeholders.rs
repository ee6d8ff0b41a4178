//! Placeholders are rendered in each dialect's own style when a statement is built
//! (`?` on MySQL and SQLite, `$1`, `$2`, … on PostgreSQL) and every statement reaches
//! the server verbatim: nothing rewrites SQL at execution, so a `?` inside a quoted
//! string of a `Where` stays text and PostgreSQL's jsonb `?` operator works in SQL
//! that callers write (plain SQL, observers).
// Some helpers serve only the tests of one driver: unused in single-driver builds.
#![cfg_attr(not(all(feature = "mysql", feature = "postgres")), allow(unused))]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use beeorm::hooks::BoxFuture;
use beeorm::prelude::*;
use beeorm::{ChangeSet, Observer, ObserverTx};
use common::{sync, Kind, StatementCounter, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "docs")]
struct Doc {
    id: u32,
    name: String,
    tags: Vec<String>,
    #[orm(fake_delete)]
    fake_delete: bool,
}

fn doc(name: &str, tags: &[&str]) -> Tracked<Doc> {
    Tracked::new(Doc {
        id: 0,
        name: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        fake_delete: false,
    })
}

/// Whether `sql` has a `?` outside quotes.
fn has_bare_mark(sql: &str) -> bool {
    let mut quote = None;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '?') => return true,
            _ => {}
        }
    }
    false
}

/// Every statement of `sql` uses the placeholder style of `kind`.
fn assert_style(kind: Kind, statements: &[String]) {
    assert!(!statements.is_empty());
    for sql in statements {
        if kind == Kind::Postgres {
            assert!(!has_bare_mark(sql), "PostgreSQL gets `$n`: {sql}");
        } else {
            assert!(!sql.contains("$1"), "{kind:?} gets `?`: {sql}");
        }
    }
}

dialect_test!(
    statements_are_rendered_in_the_dialect_placeholder_style,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Doc>();
        let counter = StatementCounter::register(&mut r);
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        counter.take();

        // A multi-row INSERT, an UPDATE, a DELETE (fake), loads by ID.
        let mut docs = [
            doc("?", &["a"]),
            doc("ann", &["b"]),
            doc("bob", &["a", "b"]),
        ];
        engine
            .flusher()
            .track_all(docs.iter_mut())
            .flush()
            .await
            .unwrap();
        docs[1].name = "anne".into();
        engine.flush(&mut docs[1]).await.unwrap();
        let mut gone = doc("gone", &[]);
        engine.flush(&mut gone).await.unwrap();
        engine.delete(&mut gone).await.unwrap();
        let ids: Vec<u64> = docs.iter().map(|d| u64::from(d.id)).collect();
        let (loaded, missing) = engine.load_by_ids::<Doc>(&ids).await.unwrap();
        assert_eq!((loaded.len(), missing.len()), (3, 0));
        let one = engine
            .load_by_id::<Doc>(u64::from(docs[0].id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.name, "?");
        let statements = counter.take();
        if db.kind == Kind::Postgres {
            assert!(
                statements.iter().any(|s| s.contains("$6")),
                "a three-row INSERT numbers its placeholders: {statements:?}"
            );
        }
        assert_style(db.kind, &statements);

        // A `Where` with `?` inside quotes (text), a list and a value after it; the
        // second page also counts every match.
        let w = Where::new(
            "(`name` = '?' OR `name` IN ?) AND `id` > ? ORDER BY `id`",
            (vec!["anne", "bob"], 0),
        );
        let names = |rows: Vec<Tracked<Doc>>| -> Vec<String> {
            rows.into_iter().map(|d| d.name.clone()).collect()
        };
        let all = engine.search::<Doc>(&w, Pager::new(1, 10)).await.unwrap();
        assert_eq!(names(all), ["?", "anne", "bob"]);
        let (page, total) = engine
            .search_with_count::<Doc>(&w, Pager::new(2, 2))
            .await
            .unwrap();
        assert_eq!((names(page), total), (vec!["bob".to_string()], 3));
        let ids = engine
            .search_ids::<Doc>(&Where::new("`name` = ?", "?"), Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(ids, [u64::from(docs[0].id)]);
        // The fake-deleted row is filtered alongside the user's condition.
        let gone_rows = engine
            .search::<Doc>(&Where::new("`name` = ?", "gone"), Pager::new(1, 10))
            .await
            .unwrap();
        assert!(gone_rows.is_empty());
        let statements = counter.take();
        if db.kind == Kind::Postgres {
            assert!(
                statements
                    .iter()
                    .any(|s| s.contains("'?'") && s.contains("$3")),
                "the user's `?` continue the statement's numbering: {statements:?}"
            );
        }
        assert_style(db.kind, &statements);
        db.drop().await;
    }
);

/// Counts, inside the flush's transaction, the docs tagged `b` with PostgreSQL's
/// jsonb `?` operator: the observer's SQL reaches the server as written.
#[derive(Default)]
struct TaggedB(Mutex<Vec<i64>>);

impl Observer for TaggedB {
    fn in_transaction<'a>(
        &'a self,
        _changes: &'a ChangeSet,
        tx: &'a mut ObserverTx<'_>,
    ) -> BoxFuture<'a, beeorm::Result<()>> {
        Box::pin(async move {
            let rows = tx
                .query(
                    "SELECT COUNT(*) FROM docs WHERE tags ? $1",
                    vec!["b".into()],
                )
                .await?;
            let n = rows[0][0].as_i64().unwrap_or(-1);
            self.0.lock().unwrap().push(n);
            Ok(())
        })
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn jsonb_question_mark_operators_reach_postgres_verbatim() {
    let db = TestDb::new(Kind::Postgres, "jsonb_question_mark_pg").await;
    let observer = Arc::new(TaggedB::default());
    let mut r = db.registry();
    r.register_entity::<Doc>();
    r.register_observer(observer.clone());
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;

    let mut docs = [doc("ann", &["a"]), doc("bob", &["a", "b"])];
    engine
        .flusher()
        .track_all(docs.iter_mut())
        .flush()
        .await
        .unwrap();
    // The observer saw its own transaction's rows through `tags ? $1`.
    assert_eq!(*observer.0.lock().unwrap(), [1]);

    // Plain SQL: `?` is the operator, `$1` the parameter.
    let sql = engine.db("default").unwrap();
    let rows = sql
        .query(
            "SELECT name FROM docs WHERE tags ? $1 ORDER BY id",
            vec!["a".into()],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);

    // A `Where`: `?` inside a quoted jsonb literal is text, the others parameters.
    let w = Where::new("`tags` @> '[\"b\"]' AND `name` <> ? AND `id` > ?", ("?", 0));
    let found = engine.search::<Doc>(&w, Pager::new(1, 10)).await.unwrap();
    let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["bob"]);
    let w = Where::new("`tags` @> '[\"?\"]' OR `name` = ?", "ann");
    let found = engine.search::<Doc>(&w, Pager::new(1, 10)).await.unwrap();
    let names: Vec<&str> = found.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["ann"]);
    db.drop().await;
}
