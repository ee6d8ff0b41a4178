//! C1–C4, C6, C7, B7, D1, D2: writing and reading entities, one suite for every dialect.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use beeorm::prelude::*;
use beeorm::Error;
use common::{exec, query, sync, Kind, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "users")]
struct User {
    id: u64,
    #[orm(length = 100, index = "Name")]
    name: String,
    #[orm(unique = "Email")]
    email: String,
    age: Option<u8>,
    counter: u32,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "posts")]
struct Post {
    id: u32,
    title: String,
    #[orm(fake_delete)]
    fake_delete: bool,
}

/// Maps to `users` but reads `name` as a number: a wrong type for that table.
#[derive(Entity, Debug)]
#[orm(table = "users")]
struct WrongUser {
    id: u64,
    name: u32,
}

fn user(name: &str, email: &str) -> Tracked<User> {
    Tracked::new(User {
        id: 0,
        name: name.into(),
        email: email.into(),
        age: None,
        counter: 0,
    })
}

async fn engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_entity::<User>().register_entity::<Post>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

async fn count(engine: &Engine, table: &str) -> i64 {
    query(engine, &format!("SELECT COUNT(*) FROM {table}")).await[0][0]
        .as_i64()
        .unwrap()
}

dialect_test!(
    flush_inserts_many_and_assigns_ids,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let (mut a, mut b, mut c) = (user("A", "a@x"), user("B", "b@x"), user("C", "c@x"));
        let mut p = Tracked::new(Post {
            id: 0,
            title: "hello".into(),
            fake_delete: false,
        });
        assert!(a.is_new() && a.is_dirty());
        engine
            .flusher()
            .track(&mut a)
            .track(&mut b)
            .track(&mut c)
            .track(&mut p)
            .flush()
            .await
            .unwrap();
        assert!(a.id > 0);
        assert_eq!(
            (b.id, c.id),
            (a.id + 1, a.id + 2),
            "IDs of one multi-row insert"
        );
        assert!(p.id > 0);
        assert!(!a.is_new() && !a.is_dirty());
        let rows = query(&engine, "SELECT id, name FROM users ORDER BY id").await;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][0].as_i64(), Some(b.id as i64));
        assert_eq!(rows[1][1].as_str(), Some("B"));
        // An explicit ID is inserted as given.
        let mut d = user("D", "d@x");
        d.id = 1000;
        engine.flush(&mut d).await.unwrap();
        assert_eq!(
            engine.load_by_id::<User>(1000).await.unwrap().unwrap().name,
            "D"
        );
        db.drop().await;
    }
);

dialect_test!(
    update_writes_only_changed_columns,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut a = user("A", "a@x");
        engine.flush(&mut a).await.unwrap();
        let mut loaded: Tracked<User> = engine.load_by_id(a.id).await.unwrap().unwrap();
        assert!(!loaded.is_dirty());
        // Someone else changes `counter` meanwhile.
        exec(
            &engine,
            &format!("UPDATE users SET counter = 7 WHERE id = {}", a.id),
        )
        .await;
        loaded.name = "A2".into();
        assert!(loaded.is_dirty());
        engine.flush(&mut loaded).await.unwrap();
        assert!(!loaded.is_dirty());
        let fresh = engine.load_by_id::<User>(a.id).await.unwrap().unwrap();
        assert_eq!(fresh.name, "A2");
        assert_eq!(fresh.counter, 7, "the unchanged column was not written");
        // set_field by name, with conversion and a typed error.
        loaded.set_field("age", 33).unwrap();
        assert_eq!(loaded.age, Some(33));
        assert!(
            matches!(loaded.set_field("age", "old"), Err(Error::WrongFieldType { field, .. }) if field == "age")
        );
        assert!(loaded.set_field("nope", 1).is_err());
        engine.flush(&mut loaded).await.unwrap();
        assert_eq!(
            engine.load_by_id::<User>(a.id).await.unwrap().unwrap().age,
            Some(33)
        );
        db.drop().await;
    }
);

dialect_test!(
    delete_fake_delete_and_force_delete,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut a = user("A", "a@x");
        engine.flush(&mut a).await.unwrap();
        engine.delete(&mut a).await.unwrap();
        assert!(a.is_new(), "a deleted row is gone");
        assert!(engine.load_by_id::<User>(a.id).await.unwrap().is_none());

        let mut posts: Vec<Tracked<Post>> = (0..3)
            .map(|i| {
                Tracked::new(Post {
                    id: 0,
                    title: format!("p{i}"),
                    fake_delete: false,
                })
            })
            .collect();
        let mut f = engine.flusher();
        for p in posts.iter_mut() {
            f.track(p);
        }
        f.flush().await.unwrap();
        let ids: Vec<u32> = posts.iter().map(|p| p.id).collect();
        engine.delete(&mut posts[0]).await.unwrap();
        assert_eq!(
            count(&engine, "posts").await,
            3,
            "fake delete keeps the row"
        );
        let found = engine
            .search::<Post>(&Where::all(), Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(
            found.iter().map(|p| p.id).collect::<Vec<_>>(),
            ids[1..].to_vec(),
            "searches skip it"
        );
        let ids_found = engine
            .search_ids::<Post>(&Where::new("`title` LIKE ?", "p%"), Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(ids_found.len(), 2);
        let by_id = engine
            .read()
            .include_deleted()
            .load_by_id::<Post>(ids[0] as u64)
            .await
            .unwrap()
            .unwrap();
        assert!(by_id.fake_delete, "load by ID still finds it, flagged");
        engine.force_delete(&mut posts[1]).await.unwrap();
        assert_eq!(
            count(&engine, "posts").await,
            2,
            "force delete removes the row"
        );
        db.drop().await;
    }
);

dialect_test!(nothing_to_write_when_unchanged, |db: TestDb| async move {
    let engine = engine(&db).await;
    let mut a = user("A", "a@x");
    engine.flush(&mut a).await.unwrap();
    let mut f = engine.flusher();
    f.track(&mut a);
    assert!(!f.is_dirty());
    f.flush().await.unwrap();
    db.drop().await;
});

dialect_test!(upsert_takes_the_existing_row, |db: TestDb| async move {
    let engine = engine(&db).await;
    let mut a = user("A", "a@x");
    a.counter = 1;
    engine.flush(&mut a).await.unwrap();
    // Same email: the unique index holds it; bump the counter instead.
    let mut again = user("Other name", "a@x");
    again.on_duplicate_key_update([("counter", Value::from(5))]);
    engine.flush(&mut again).await.unwrap();
    assert_eq!(again.id, a.id, "the entity takes the existing row's ID");
    assert_eq!(again.name, "A", "and its values");
    assert_eq!(again.counter, 5);
    assert!(!again.is_dirty());
    // Empty update list: nothing changes, ID still found.
    let mut same = user("X", "a@x");
    same.on_duplicate_key_update(Vec::<(String, Value)>::new());
    engine.flush(&mut same).await.unwrap();
    assert_eq!(same.id, a.id);
    assert_eq!(same.counter, 5);
    // No conflict: a plain insert.
    let mut fresh = user("B", "b@x");
    fresh.on_duplicate_key_update([("counter", 9)]);
    engine.flush(&mut fresh).await.unwrap();
    assert!(fresh.id > a.id);
    assert_eq!(fresh.counter, 0);
    assert_eq!(count(&engine, "users").await, 2);
    db.drop().await;
});

dialect_test!(
    duplicate_key_is_typed_and_writes_nothing,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut a = user("A", "a@x");
        engine.flush(&mut a).await.unwrap();
        let mut b = user("B", "b@x");
        let mut dup = user("C", "a@x");
        let err = engine
            .flusher()
            .track(&mut b)
            .track(&mut dup)
            .flush()
            .await
            .unwrap_err();
        match &err {
            Error::DuplicatedKey { pool, index, .. } => {
                assert_eq!(pool, "default");
                assert_eq!(index, "Email");
            }
            other => panic!("expected DuplicatedKey, got {other:?}"),
        }
        assert_eq!(count(&engine, "users").await, 1, "all-or-nothing");
        assert!(
            b.is_new() && b.id == 0,
            "entities keep their state on failure"
        );
        // Duplicate primary key.
        let mut same_id = user("D", "d@x");
        same_id.id = a.id;
        let err = engine.flush(&mut same_id).await.unwrap_err();
        assert!(
            matches!(&err, Error::DuplicatedKey { index, .. } if index == "PRIMARY"),
            "{err:?}"
        );
        db.drop().await;
    }
);

dialect_test!(foreign_key_violation_is_typed, |db: TestDb| async move {
    let engine = engine(&db).await;
    match db.kind {
        Kind::MySql => exec(&engine, "CREATE TABLE notes (id INT PRIMARY KEY, user_id BIGINT UNSIGNED, CONSTRAINT fk_notes_user FOREIGN KEY (user_id) REFERENCES users (id))").await,
        Kind::Sqlite => exec(&engine, "CREATE TABLE notes (id INT PRIMARY KEY, user_id INTEGER REFERENCES users (id))").await,
        Kind::Postgres => exec(&engine, "CREATE TABLE notes (id INT PRIMARY KEY, user_id BIGINT CONSTRAINT fk_notes_user REFERENCES users (id))").await,
    }
    let mut a = user("A", "a@x");
    engine.flush(&mut a).await.unwrap();
    exec(
        &engine,
        &format!("INSERT INTO notes (id, user_id) VALUES (1, {})", a.id),
    )
    .await;
    let err = engine.delete(&mut a).await.unwrap_err();
    match (&err, db.kind) {
        (Error::ForeignKey { constraint, .. }, Kind::MySql | Kind::Postgres) => {
            assert_eq!(constraint.as_deref(), Some("fk_notes_user"))
        }
        (Error::ForeignKey { constraint, .. }, Kind::Sqlite) => assert_eq!(constraint, &None),
        (other, _) => panic!("expected ForeignKey, got {other:?}"),
    }
    assert!(!a.is_new(), "the row is still there");
    assert!(engine.load_by_id::<User>(a.id).await.unwrap().is_some());
    db.drop().await;
});

dialect_test!(
    entities_without_id_cannot_be_updated_or_deleted,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut never_saved = user("A", "a@x");
        let err = engine.delete(&mut never_saved).await.unwrap_err();
        assert!(
            matches!(&err, Error::Flush { entity, reason } if entity == "User" && reason.contains("no ID")),
            "{err:?}"
        );
        let mut a = user("B", "b@x");
        engine.flush(&mut a).await.unwrap();
        let mut loaded = engine.load_by_id::<User>(a.id).await.unwrap().unwrap();
        loaded.id = 0;
        loaded.name = "changed".into();
        let err = engine.flush(&mut loaded).await.unwrap_err();
        assert!(matches!(err, Error::Flush { .. }), "{err:?}");
        db.drop().await;
    }
);

dialect_test!(
    a_failure_mid_flush_leaves_no_partial_rows,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        // The second statement of the flush (the posts insert) fails inside the server.
        match db.kind {
        Kind::MySql => exec(&engine, "CREATE TRIGGER posts_boom BEFORE INSERT ON posts FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom'").await,
        Kind::Sqlite => exec(&engine, "CREATE TRIGGER posts_boom BEFORE INSERT ON posts BEGIN SELECT RAISE(ABORT, 'boom'); END").await,
        Kind::Postgres => {
            exec(&engine, "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$ LANGUAGE plpgsql").await;
            exec(&engine, "CREATE TRIGGER posts_boom BEFORE INSERT ON posts FOR EACH ROW EXECUTE FUNCTION boom()").await;
        }
    }
        let mut a = user("A", "a@x");
        let mut p = Tracked::new(Post {
            id: 0,
            title: "t".into(),
            fake_delete: false,
        });
        let err = engine
            .flusher()
            .track(&mut a)
            .track(&mut p)
            .flush()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");
        assert_eq!(
            count(&engine, "users").await,
            0,
            "the users insert was rolled back"
        );
        assert!(a.is_new());
        db.drop().await;
    }
);

dialect_test!(
    manual_transactions_commit_roll_back_and_drop,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let sql = engine.db("default").unwrap();
        let mut tx = sql.begin().await.unwrap();
        let mut a = user("A", "a@x");
        engine
            .flusher()
            .track(&mut a)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(&engine, "users").await, 0);

        let mut tx = sql.begin().await.unwrap();
        tx.execute(
            &common::native(db.kind, "INSERT INTO users (name, email) VALUES (?, ?)"),
            vec!["B".into(), "b@x".into()],
        )
        .await
        .unwrap();
        drop(tx);
        assert_eq!(
            count(&engine, "users").await,
            0,
            "dropped without commit = rolled back"
        );

        let mut tx = sql.begin().await.unwrap();
        let mut c = user("C", "c@x");
        engine
            .flusher()
            .track(&mut c)
            .flush_in(&mut tx)
            .await
            .unwrap();
        let inside = tx
            .query("SELECT COUNT(*) FROM users", vec![])
            .await
            .unwrap();
        assert_eq!(inside[0][0].as_i64(), Some(1));
        tx.commit().await.unwrap();
        assert_eq!(count(&engine, "users").await, 1);
        assert!(c.id > 0);

        let mut d = user("D", "d@x");
        engine
            .flusher()
            .track(&mut d)
            .flush_in_transaction()
            .await
            .unwrap();
        assert_eq!(count(&engine, "users").await, 2);
        db.drop().await;
    }
);

dialect_test!(
    load_by_ids_keeps_order_and_reports_missing,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut users: Vec<Tracked<User>> = (0..5)
            .map(|i| user(&format!("u{i}"), &format!("{i}@x")))
            .collect();
        let mut f = engine.flusher();
        for u in users.iter_mut() {
            f.track(u);
        }
        f.flush().await.unwrap();
        let ids: Vec<u64> = users.iter().map(|u| u.id).collect();
        let ask = vec![ids[3], 999_999, ids[0], ids[3], ids[1]];
        let (found, missing) = engine.load_by_ids::<User>(&ask).await.unwrap();
        assert_eq!(
            found.iter().map(|u| u.id).collect::<Vec<_>>(),
            vec![ids[3], ids[0], ids[1]]
        );
        assert_eq!(missing, vec![999_999]);
        assert_eq!(found[0].name, "u3");
        assert!(engine.load_by_id::<User>(999_999).await.unwrap().is_none());
        let (none, none_missing) = engine.load_by_ids::<User>(&[]).await.unwrap();
        assert!(none.is_empty() && none_missing.is_empty());
        db.drop().await;
    }
);

dialect_test!(
    search_with_where_pager_and_counts,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut users: Vec<Tracked<User>> = (0..25)
            .map(|i| {
                let mut u = user(&format!("u{i:02}"), &format!("{i}@x"));
                u.age = Some(i as u8);
                u
            })
            .collect();
        let mut f = engine.flusher();
        for u in users.iter_mut() {
            f.track(u);
        }
        f.flush().await.unwrap();
        let ids: Vec<u64> = users.iter().map(|u| u.id).collect();

        let w = Where::new("`age` >= ? ORDER BY `age` DESC", 10);
        let page1 = engine.search::<User>(&w, Pager::new(1, 10)).await.unwrap();
        assert_eq!(page1.len(), 10);
        assert_eq!(page1[0].age, Some(24));
        let (page2, total) = engine
            .search_with_count::<User>(&w, Pager::new(2, 10))
            .await
            .unwrap();
        assert_eq!((page2.len(), total), (5, 15));
        assert_eq!(page2[4].age, Some(10));
        let (small, total) = engine
            .search_with_count::<User>(&w, Pager::new(1, 100))
            .await
            .unwrap();
        assert_eq!((small.len(), total), (15, 15));

        let w = Where::new(
            "`id` IN ? AND `age` < ?",
            (vec![ids[1], ids[2], ids[20]], 5),
        );
        let (got, total) = engine
            .search_ids_with_count::<User>(&w, Pager::new(1, 1))
            .await
            .unwrap();
        assert_eq!((got.len(), total), (1, 2));
        let one = engine
            .search_one::<User>(&Where::new("`email` = ?", "7@x"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.name, "u07");
        assert!(engine
            .search_one::<User>(&Where::new("`email` = ?", "nobody"))
            .await
            .unwrap()
            .is_none());
        let empty_in = engine
            .search::<User>(
                &Where::new("`id` IN ?", Vec::<u64>::new()),
                Pager::new(1, 10),
            )
            .await
            .unwrap();
        assert!(empty_in.is_empty());

        let bad = engine
            .search::<User>(&Where::new("`age` = ? AND `id` = ?", 1), Pager::new(1, 10))
            .await;
        assert!(matches!(bad, Err(Error::Query(_))), "{bad:?}");
        let bad_sql = engine
            .search::<User>(&Where::new("`no_such_column` = ?", 1), Pager::new(1, 10))
            .await;
        match bad_sql {
            Err(Error::Database { pool, sql, .. }) => {
                assert_eq!(pool, "default");
                assert!(
                    sql.contains("no_such_column") && !sql.contains("= 1"),
                    "SQL without values: {sql}"
                );
            }
            other => panic!("expected Database error, got {other:?}"),
        }
        db.drop().await;
    }
);

dialect_test!(
    reading_a_table_of_the_wrong_type_is_a_typed_error,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut a = user("not a number", "a@x");
        engine.flush(&mut a).await.unwrap();
        let mut r = db.registry();
        r.register_entity::<WrongUser>();
        let wrong = r.validate().await.unwrap().create_engine();
        let err = wrong.load_by_id::<WrongUser>(a.id).await.unwrap_err();
        match err {
            Error::Decode {
                entity,
                field,
                reason,
            } => {
                assert_eq!((entity.as_str(), field.as_str()), ("WrongUser", "name"));
                assert!(reason.contains("not a number"), "{reason}");
            }
            other => panic!("expected Decode, got {other:?}"),
        }
        // An entity that is not registered is an error too, not a panic.
        let err = wrong.load_by_id::<User>(a.id).await.unwrap_err();
        assert!(
            matches!(err, Error::UnknownEntity(ref n) if n == "User"),
            "{err:?}"
        );
        db.drop().await;
    }
);

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_pool_reuses_connections() {
    let db = TestDb::new(Kind::MySql, "reuse_my").await;
    let engine = db.registry().validate().await.unwrap().create_engine();
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let row = &query(&engine, "SELECT CONNECTION_ID()").await[0];
        ids.insert(row[0].as_i64());
    }
    // mysql_async hands a connection back to the pool asynchronously, so a second one
    // may open; never one per query.
    assert!(ids.len() <= 3, "{} connections for 20 queries", ids.len());
    db.drop().await;
}

/// A transaction that inserted user A and so holds SQLite's write lock until it ends.
async fn holding_the_write_lock(engine: &Engine) -> beeorm::Transaction {
    let mut tx = engine.db("default").unwrap().begin().await.unwrap();
    tx.execute(
        "INSERT INTO users (name, email) VALUES ('A', 'a@x')",
        vec![],
    )
    .await
    .unwrap();
    tx
}

/// SQLite: a writer that finds the database locked waits off the async thread, so the
/// task holding the lock (on the same single-threaded runtime) can finish.
#[tokio::test(flavor = "current_thread")]
async fn sqlite_locked_writer_waits_without_blocking_the_runtime() {
    let db = TestDb::new(Kind::Sqlite, "locked_lite").await;
    let engine = engine(&db).await;
    let tx = holding_the_write_lock(&engine).await;
    let other = engine.clone();
    let waiting = tokio::spawn(async move {
        let mut b = user("B", "b@x");
        other.flush(&mut b).await.map(|_| b.id)
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "the second writer waits for the lock"
    );
    tx.commit().await.unwrap();
    let id = waiting.await.unwrap().unwrap();
    assert!(id > 0);
    assert_eq!(count(&engine, "users").await, 2);
    db.drop().await;
}

/// SQLite: plain SQL runs inline on a free connection; one that finds the database
/// locked (a write while a transaction holds the lock) waits off the async thread and
/// then runs, and reads meanwhile are answered at once (WAL), seeing only what is
/// committed.
#[tokio::test(flavor = "current_thread")]
async fn sqlite_plain_sql_waits_for_a_lock_off_the_runtime_and_reads_do_not_wait() {
    let db = TestDb::new(Kind::Sqlite, "locked_plain").await;
    let engine = engine(&db).await;
    let tx = holding_the_write_lock(&engine).await;
    let other = engine.clone();
    let waiting = tokio::spawn(async move {
        other
            .db("default")?
            .execute(
                "INSERT INTO users (name, email) VALUES ('B', 'b@x')",
                vec![],
            )
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "the plain write waits for the lock");
    // A read does not wait for the writer, and sees nothing uncommitted.
    assert_eq!(count(&engine, "users").await, 0);
    tx.commit().await.unwrap();
    let done = waiting.await.unwrap().unwrap();
    assert_eq!(done.affected_rows, 1);
    assert_eq!(count(&engine, "users").await, 2);
    db.drop().await;
}
