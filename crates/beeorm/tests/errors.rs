//! Errors say what went wrong and where, on every dialect: parameter limits are checked
//! before a statement is sent, database errors display the server's message and code,
//! IDs no row can have are missing rather than errors, and every PostgreSQL column type
//! either decodes or is named in the error.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use beeorm::prelude::*;
use beeorm::Error;
use common::{exec, sync, Kind, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "users")]
struct User {
    id: u64,
    #[orm(unique = "Email")]
    email: String,
    age: u32,
}

/// A `u8` key: its column is narrower than the IDs callers may ask for.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "tiny")]
struct Tiny {
    id: u8,
    name: String,
}

fn user(email: &str) -> Tracked<User> {
    Tracked::new(User {
        id: 0,
        email: email.into(),
        age: 1,
    })
}

async fn engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_entity::<User>().register_entity::<Tiny>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

/// Most parameters one statement may carry on this dialect.
fn limit(kind: Kind) -> usize {
    match kind {
        Kind::MySql | Kind::Postgres => 65_535,
        // SQLITE_MAX_VARIABLE_NUMBER of the bundled library.
        Kind::Sqlite => 32_766,
    }
}

fn assert_too_many(err: &Error, count: usize, kind: Kind) {
    match err {
        Error::TooManyParameters {
            pool,
            count: c,
            limit: l,
            ..
        } => {
            assert_eq!(pool, "default");
            assert_eq!(*c, count);
            assert_eq!(*l, limit(kind));
        }
        other => panic!("expected TooManyParameters, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(
        shown.contains(&limit(kind).to_string()),
        "the message names the limit: {shown}"
    );
}

// Item 16: a long IN list is refused before anything is sent, with the limit named;
// the limit itself is accepted. Checked for the ORM's search and for plain SQL.
dialect_test!(
    parameters_over_the_server_limit_are_refused_before_sending,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut a = user("a@x");
        engine.flush(&mut a).await.unwrap();
        let max = limit(db.kind);

        let ids: Vec<u64> = (1..=max as u64 + 1).collect();
        let w = Where::new("`id` IN ?", ids.clone());
        let err = engine
            .search::<User>(&w, Pager::new(1, 10))
            .await
            .unwrap_err();
        assert_too_many(&err, max + 1, db.kind);
        let err = engine
            .search_ids::<User>(&w, Pager::new(1, 10))
            .await
            .unwrap_err();
        assert_too_many(&err, max + 1, db.kind);

        // Plain SQL through `Db`, far over every limit (PostgreSQL's wire protocol
        // counts parameters in 16 bits).
        let many = 70_000usize;
        let marks = vec!["?"; many].join(",");
        let params: Vec<Value> = (0..many as u64).map(Value::U64).collect();
        let sql = format!("SELECT id FROM users WHERE id IN ({marks})");
        let err = engine
            .db("default")
            .unwrap()
            .query(&sql, params)
            .await
            .unwrap_err();
        assert_too_many(&err, many, db.kind);
        assert!(
            err.to_string().len() < 1_000,
            "the message does not repeat 70,000 placeholders"
        );

        // The query builder and a transaction take the same way to the server.
        let err = QueryBuilder::<User>::new()
            .table("users")
            .where_in("id", ids.clone())
            .all(&engine)
            .await
            .unwrap_err();
        assert_too_many(&err, max + 1, db.kind);
        let mut tx = engine.db("default").unwrap().begin().await.unwrap();
        let marks = vec!["?"; max + 1].join(",");
        let params: Vec<Value> = ids.iter().map(|i| Value::U64(*i)).collect();
        let err = tx
            .execute(&format!("DELETE FROM users WHERE id IN ({marks})"), params)
            .await
            .unwrap_err();
        assert_too_many(&err, max + 1, db.kind);
        tx.execute("UPDATE users SET age = 2", vec![])
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // Exactly at the limit: sent and answered.
        let w = Where::new("`id` IN ?", ids[..max].to_vec());
        let found = engine
            .search_ids::<User>(&w, Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(found, vec![a.id]);

        // The pool is still usable after a refusal.
        assert!(engine.load_by_id::<User>(a.id).await.unwrap().is_some());
        db.drop().await;
    }
);

// Item 16: paths whose meaning allows it split the work instead: load_by_ids and the
// flush's multi-row INSERT.
dialect_test!(
    load_by_ids_and_flush_split_long_lists,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        // 12,000 rows × 3 columns: over SQLite's limit in one INSERT.
        let mut users: Vec<Tracked<User>> = (0..12_000).map(|i| user(&format!("u{i}@x"))).collect();
        let mut f = engine.flusher();
        for u in &mut users {
            f.track(u);
        }
        f.flush().await.unwrap();
        let wanted: Vec<u64> = users.iter().map(|u| u.id).collect();
        // 80,000 IDs: over every dialect's limit in one statement.
        let mut ids = wanted.clone();
        ids.extend(1_000_000..1_068_000u64);
        let (found, missing) = engine.load_by_ids::<User>(&ids).await.unwrap();
        assert_eq!(found.len(), wanted.len());
        assert_eq!(found.iter().map(|u| u.id).collect::<Vec<_>>(), wanted);
        assert_eq!(missing.len(), 68_000);
        db.drop().await;
    }
);

/// (message fragment, code) a dialect's server puts in each error.
fn expect_display(err: &Error, message: &str, code: &str) {
    let shown = err.to_string();
    assert!(
        shown.contains(message),
        "the server's message `{message}` is in: {shown}"
    );
    assert!(shown.contains(code), "the code `{code}` is in: {shown}");
    assert!(
        !shown.ends_with("db error"),
        "more than the driver's summary: {shown}"
    );
}

// Item 17: a database error, a duplicate key and a foreign key violation display the
// server's message and code (SQLSTATE on PostgreSQL, error number on MySQL, extended
// result code on SQLite) and the constraint where the server names it.
dialect_test!(
    database_errors_display_the_servers_message_and_code,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let pool = engine.db("default").unwrap();

        let err = pool
            .execute("INSERT INTO no_such_table (a) VALUES (1)", vec![])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");
        match db.kind {
            Kind::MySql => expect_display(&err, "no_such_table' doesn't exist", "1146"),
            Kind::Postgres => expect_display(
                &err,
                "relation \"no_such_table\" does not exist",
                "SQLSTATE 42P01",
            ),
            Kind::Sqlite => expect_display(&err, "no such table: no_such_table", "SQLITE_ERROR"),
        }
        assert!(err.to_string().contains("no_such_table (a)"), "the SQL too");

        let mut a = user("a@x");
        engine.flush(&mut a).await.unwrap();
        let mut dup = user("a@x");
        let err = engine.flush(&mut dup).await.unwrap_err();
        assert!(
            matches!(&err, Error::DuplicatedKey { index, .. } if index == "Email"),
            "{err:?}"
        );
        match db.kind {
            Kind::MySql => expect_display(&err, "Duplicate entry 'a@x'", "1062"),
            Kind::Postgres => {
                expect_display(
                    &err,
                    "duplicate key value violates unique constraint",
                    "SQLSTATE 23505",
                );
                assert!(err.to_string().contains("users__Email"), "{err}");
            }
            Kind::Sqlite => expect_display(
                &err,
                "UNIQUE constraint failed: users.email",
                "SQLITE_CONSTRAINT_UNIQUE",
            ),
        }

        match db.kind {
            Kind::MySql => exec(&engine, "CREATE TABLE notes (id INT PRIMARY KEY, user_id BIGINT UNSIGNED, CONSTRAINT fk_notes_user FOREIGN KEY (user_id) REFERENCES users (id))").await,
            Kind::Sqlite => exec(&engine, "CREATE TABLE notes (id INT PRIMARY KEY, user_id INTEGER REFERENCES users (id))").await,
            Kind::Postgres => exec(&engine, "CREATE TABLE notes (id INT PRIMARY KEY, user_id BIGINT CONSTRAINT fk_notes_user REFERENCES users (id))").await,
        }
        let err = pool
            .execute("INSERT INTO notes (id, user_id) VALUES (1, 999)", vec![])
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ForeignKey { .. }), "{err:?}");
        match db.kind {
            Kind::MySql => {
                expect_display(&err, "a foreign key constraint fails", "1452");
                assert!(err.to_string().contains("fk_notes_user"), "{err}");
            }
            Kind::Postgres => {
                expect_display(
                    &err,
                    "violates foreign key constraint \"fk_notes_user\"",
                    "SQLSTATE 23503",
                );
            }
            Kind::Sqlite => expect_display(
                &err,
                "FOREIGN KEY constraint failed",
                "SQLITE_CONSTRAINT_FOREIGNKEY",
            ),
        }
        db.drop().await;
    }
);

// Item 18: an ID above what the `id` column can hold (PostgreSQL's BIGINT and SQLite's
// INTEGER are signed; a `u8` key's column is narrow) has no row: missing, not an error.
dialect_test!(
    ids_no_row_can_have_are_missing_not_errors,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut a = user("a@x");
        engine.flush(&mut a).await.unwrap();
        let above_bigint = i64::MAX as u64 + 1;
        for id in [u64::MAX, above_bigint] {
            assert!(
                engine.load_by_id::<User>(id).await.unwrap().is_none(),
                "{id}"
            );
            let err = engine.find::<User>(id).await.unwrap_err();
            assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        }
        let (found, missing) = engine
            .load_by_ids::<User>(&[u64::MAX, a.id, above_bigint, 0])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, a.id);
        assert_eq!(missing, vec![u64::MAX, above_bigint, 0]);
        // The same through preloading.
        let (found, missing) = engine
            .preload(&[])
            .load_by_ids::<User>(&[a.id, u64::MAX])
            .await
            .unwrap();
        assert_eq!((found.len(), missing), (1, vec![u64::MAX]));

        // A user's condition is sent as written: no row matches on MySQL and SQLite;
        // PostgreSQL cannot bind the value to `bigint` and says which value it was.
        let w = Where::new("`id` = ?", u64::MAX);
        match (
            db.kind,
            engine.search_ids::<User>(&w, Pager::new(1, 10)).await,
        ) {
            (Kind::Postgres, Err(e @ Error::Database { .. })) => assert!(
                e.to_string()
                    .contains("18446744073709551615 is out of range for PostgreSQL int8"),
                "{e}"
            ),
            (Kind::MySql | Kind::Sqlite, Ok(ids)) => assert!(ids.is_empty()),
            (kind, other) => panic!("{kind:?}: {other:?}"),
        }

        // A `u8` key: 40,000 fits no `id` of this table on any dialect.
        let mut t = Tracked::new(Tiny {
            id: 0,
            name: "t".into(),
        });
        engine.flush(&mut t).await.unwrap();
        for id in [256, 40_000, 70_000, u64::MAX] {
            assert!(
                engine.load_by_id::<Tiny>(id).await.unwrap().is_none(),
                "{id}"
            );
        }
        let (found, missing) = engine
            .load_by_ids::<Tiny>(&[40_000, u64::from(t.id), 256])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(missing, vec![40_000, 256]);

        // SQLite binds a `u64` above `i64::MAX` as its two's complement: u64::MAX
        // would find a row with ID -1 (written by someone else) and fail to decode it.
        if db.kind != Kind::MySql {
            exec(
                &engine,
                "INSERT INTO users (id, email, age) VALUES (-1, 'neg@x', 1)",
            )
            .await;
            assert!(engine.load_by_id::<User>(u64::MAX).await.unwrap().is_none());
            let (found, missing) = engine.load_by_ids::<User>(&[u64::MAX, a.id]).await.unwrap();
            assert_eq!((found.len(), missing), (1, vec![u64::MAX]));
        }
        db.drop().await;
    }
);

/// A plain-SQL handle on a fresh PostgreSQL database.
async fn pg(test: &str) -> (TestDb, beeorm::Db) {
    let db = TestDb::new(Kind::Postgres, test).await;
    let engine = db.registry().validate().await.unwrap().create_engine();
    let pool = engine.db("default").unwrap();
    (db, pool)
}

async fn pg_cell(pool: &beeorm::Db, sql: &str) -> Value {
    let rows = pool
        .query(sql, vec![])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().next().unwrap().into_iter().next().unwrap()
}

// Item 19: `Db::query` on PostgreSQL decodes uuid, arrays, interval, inet/cidr and
// void columns; a type it cannot decode is an error naming the column and its type.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_uuid_decodes_as_text() {
    let (db, pool) = pg("pg_uuid").await;
    let v = pg_cell(&pool, "SELECT 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid").await;
    assert_eq!(
        v,
        Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())
    );
    assert_eq!(pg_cell(&pool, "SELECT NULL::uuid").await, Value::Null);
    // A uuid column of a table, read and compared back.
    pool.execute(
        "CREATE TABLE t (u uuid PRIMARY KEY, tags text[], n int[])",
        vec![],
    )
    .await
    .unwrap();
    pool.execute(
        "INSERT INTO t VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{x,y}', '{1,NULL}')",
        vec![],
    )
    .await
    .unwrap();
    let rows = pool
        .query("SELECT u, tags, n FROM t", vec![])
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![
            Value::String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            Value::Json(serde_json::json!(["x", "y"])),
            Value::Json(serde_json::json!([1, null])),
        ]]
    );
    db.drop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_arrays_decode_as_json() {
    let (db, pool) = pg("pg_arrays").await;
    let cases: &[(&str, serde_json::Value)] = &[
        ("SELECT ARRAY[1,2,3]", serde_json::json!([1, 2, 3])),
        ("SELECT ARRAY[1,2]::int2[]", serde_json::json!([1, 2])),
        (
            "SELECT ARRAY[9223372036854775807]::int8[]",
            serde_json::json!([i64::MAX]),
        ),
        (
            "SELECT ARRAY['a','b',NULL]",
            serde_json::json!(["a", "b", null]),
        ),
        ("SELECT ARRAY[true,false]", serde_json::json!([true, false])),
        ("SELECT ARRAY[1.5]::float8[]", serde_json::json!([1.5])),
        ("SELECT ARRAY[1.25]::numeric[]", serde_json::json!(["1.25"])),
        (
            "SELECT ARRAY[[1,2],[3,4]]",
            serde_json::json!([[1, 2], [3, 4]]),
        ),
        ("SELECT '{}'::int[]", serde_json::json!([])),
        (
            "SELECT ARRAY['2024-02-29'::date]",
            serde_json::json!(["2024-02-29"]),
        ),
        (
            "SELECT ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid]",
            serde_json::json!(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]),
        ),
        (
            "SELECT ARRAY['{\"k\":1}'::jsonb]",
            serde_json::json!([{"k": 1}]),
        ),
        (
            "SELECT ARRAY['\\x0102'::bytea]",
            serde_json::json!(["\\x0102"]),
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(
            pg_cell(&pool, sql).await,
            Value::Json(want.clone()),
            "{sql}"
        );
    }
    assert_eq!(pg_cell(&pool, "SELECT NULL::int[]").await, Value::Null);
    db.drop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_interval_decodes_as_text() {
    let (db, pool) = pg("pg_interval").await;
    // The text is what the server itself prints (IntervalStyle `postgres`).
    for literal in [
        "1 year 2 mons 3 days 04:05:06",
        "00:00:00",
        "-1 days",
        "1 day -01:00:00",
        "25:00:00.5",
        "-00:00:00.000001",
        "2 years",
        "1 mon",
        "-3 years -2 mons +1 day 10:00:00",
        "1000000 hours",
    ] {
        let want = pg_cell(&pool, &format!("SELECT '{literal}'::interval::text")).await;
        let got = pg_cell(&pool, &format!("SELECT '{literal}'::interval")).await;
        assert_eq!(got, want, "{literal}");
    }
    db.drop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_inet_decodes_as_text() {
    let (db, pool) = pg("pg_inet").await;
    for literal in [
        "192.168.0.1::inet",
        "192.168.0.1/24::inet",
        "10.0.0.0/8::cidr",
        "::1::inet",
        "2001:db8::1/64::inet",
        "2001:db8::/32::cidr",
        "08:00:2b:01:02:03::macaddr",
    ] {
        let (value, ty) = literal.rsplit_once("::").unwrap();
        // `format('%s')` prints with the type's output function, as the server sends
        // the value in text (the `::text` cast of inet always adds the netmask).
        let want = pg_cell(&pool, &format!("SELECT format('%s', '{value}'::{ty})")).await;
        let got = pg_cell(&pool, &format!("SELECT '{value}'::{ty}")).await;
        assert_eq!(got, want, "{literal}");
    }
    db.drop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_void_decodes_as_null() {
    let (db, pool) = pg("pg_void").await;
    assert_eq!(pg_cell(&pool, "SELECT pg_sleep(0)").await, Value::Null);
    db.drop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_undecodable_type_names_column_and_type() {
    let (db, pool) = pg("pg_undecodable").await;
    let err = pool
        .query("SELECT 1 AS a, 'fat cat'::tsvector AS words", vec![])
        .await
        .unwrap_err();
    match &err {
        Error::ColumnType {
            pool,
            column,
            type_name,
            ..
        } => {
            assert_eq!(pool, "default");
            assert_eq!(column, "words");
            assert_eq!(type_name, "tsvector");
        }
        other => panic!("expected ColumnType, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(
        shown.contains("`words`") && shown.contains("tsvector"),
        "{shown}"
    );
    // Cast to text, it decodes.
    assert_eq!(
        pg_cell(&pool, "SELECT 'fat cat'::tsvector::text").await,
        Value::String("'cat' 'fat'".into())
    );
    // A value the decoder of a known type refuses (NaN has no Decimal) is named too.
    let err = pool
        .query("SELECT 'NaN'::numeric AS n", vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ColumnType { column, type_name, .. } if column == "n" && type_name == "numeric"),
        "{err:?}"
    );
    db.drop().await;
}

// Item 19, the whole class: every relation of PostgreSQL's own catalog (dozens of
// column types: name, oid, regproc, oidvector, char, arrays, pg_lsn, inet, xid, …)
// reads through `Db::query` or fails with a typed error that names the column and its
// type (or the server's own refusal); never a panic, never a connection error.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_every_catalog_relation_reads_or_names_the_column() {
    let (db, pool) = pg("pg_catalog_scan").await;
    let relations = pool
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'v') \
             ORDER BY 1",
            vec![],
        )
        .await
        .unwrap();
    assert!(relations.len() > 50, "{}", relations.len());
    let mut undecodable = std::collections::BTreeSet::new();
    let mut read = 0;
    for r in &relations {
        let name = r[0].as_str().unwrap();
        let sql = format!("SELECT * FROM {name} LIMIT 20");
        match pool.query(&sql, vec![]).await {
            Ok(_) => read += 1,
            Err(Error::ColumnType {
                column, type_name, ..
            }) => {
                assert!(!column.is_empty() && !type_name.is_empty());
                undecodable.insert(type_name);
            }
            // A type without a binary output function (`aclitem`): the server says so.
            Err(e @ Error::Database { .. }) => {
                let shown = e.to_string();
                assert!(shown.contains("SQLSTATE"), "{shown}");
            }
            Err(other) => panic!("{sql}: {other:?}"),
        }
    }
    eprintln!(
        "{read} of {} catalog relations read; types without a decoder: {undecodable:?}",
        relations.len()
    );
    // The pool survived every failure.
    assert_eq!(pg_cell(&pool, "SELECT 1").await, Value::I64(1));
    db.drop().await;
}

/// Prints what users see (run with `--nocapture`); asserts are in the tests above.
#[cfg(all(feature = "mysql", feature = "postgres"))]
#[tokio::test]
async fn show_error_messages() {
    for kind in [Kind::MySql, Kind::Postgres, Kind::Sqlite] {
        let db = TestDb::new(kind, "show_messages").await;
        let engine = engine(&db).await;
        let mut a = user("a@x");
        engine.flush(&mut a).await.unwrap();
        let mut dup = user("a@x");
        eprintln!("{kind:?}: {}", engine.flush(&mut dup).await.unwrap_err());
        let pool = engine.db("default").unwrap();
        eprintln!(
            "{kind:?}: {}",
            pool.execute("SELEC 1", vec![]).await.unwrap_err()
        );
        let params: Vec<Value> = (0..70_000u64).map(Value::U64).collect();
        let marks = vec!["?"; 70_000].join(",");
        eprintln!(
            "{kind:?}: {}",
            pool.query(
                &format!("SELECT 1 FROM users WHERE id IN ({marks})"),
                params
            )
            .await
            .unwrap_err()
        );
        db.drop().await;
    }
}
