//! B5/B6: schema sync — alters for new, removed and changed columns and indexes,
//! unknown tables, safe/unsafe, idempotence, and the per-table operations.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use beeorm::{Engine, Entity, Registry};
use common::{exec, query, sync, Kind, TestDb};

async fn engine_with(db: &TestDb, register: impl FnOnce(&mut Registry)) -> Engine {
    let mut r = db.registry();
    r.register_enum_list("sizes", &["S", "M", "L"]);
    register(&mut r);
    r.validate().await.unwrap().create_engine()
}

#[derive(Entity)]
#[orm(table = "people")]
struct PeopleV1 {
    id: u64,
    #[orm(length = 50, index = "NameAge")]
    name: String,
    #[orm(index = "NameAge:2")]
    age: u8,
    #[orm(unique = "Email")]
    email: String,
}

/// V1 plus a column and an index.
#[derive(Entity)]
#[orm(table = "people")]
struct PeopleAdded {
    id: u64,
    #[orm(length = 50, index = "NameAge")]
    name: String,
    #[orm(index = "NameAge:2")]
    age: u8,
    #[orm(unique = "Email")]
    email: String,
    #[orm(index = "City")]
    city: Option<String>,
    #[orm(enum = "sizes")]
    size: String,
}

/// V1 without `age` (and so without its place in NameAge).
#[derive(Entity)]
#[orm(table = "people")]
struct PeopleRemoved {
    id: u64,
    #[orm(length = 50, index = "NameAge")]
    name: String,
    #[orm(unique = "Email")]
    email: String,
}

/// V1 with changed types: longer name, wider age, nullable email.
#[derive(Entity)]
#[orm(table = "people")]
struct PeopleChanged {
    id: u64,
    #[orm(length = 120, index = "NameAge")]
    name: String,
    #[orm(index = "NameAge:2")]
    age: u32,
    #[orm(unique = "Email")]
    email: Option<String>,
}

/// V1 with index changes: NameAge reordered, Email no longer unique, new unique.
#[derive(Entity)]
#[orm(table = "people")]
struct PeopleReindexed {
    id: u64,
    #[orm(length = 50, index = "NameAge:2", unique = "NameOnly")]
    name: String,
    #[orm(index = "NameAge")]
    age: u8,
    #[orm(index = "Email")]
    email: String,
}

#[derive(Entity)]
#[orm(table = "other")]
struct Other {
    id: u32,
    label: String,
}

async fn alters_sql(engine: &Engine) -> Vec<(String, bool)> {
    engine
        .alters()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.sql, a.safe))
        .collect()
}

dialect_test!(new_tables_are_created_once, |db: TestDb| async move {
    let engine = engine_with(&db, |r| {
        r.register_entity::<PeopleV1>().register_entity::<Other>();
    })
    .await;
    let alters = alters_sql(&engine).await;
    assert_eq!(alters.len(), 2, "{alters:#?}");
    assert!(alters
        .iter()
        .all(|(sql, safe)| sql.starts_with("CREATE TABLE") && *safe));
    sync(&engine).await;
    db.drop().await;
});

dialect_test!(
    added_columns_and_indexes_are_a_safe_alter,
    |db: TestDb| async move {
        let v1 = engine_with(&db, |r| {
            r.register_entity::<PeopleV1>();
        })
        .await;
        sync(&v1).await;
        exec(
            &v1,
            "INSERT INTO people (name, age, email) VALUES ('Ann', 30, 'ann@x')",
        )
        .await;
        let v2 = engine_with(&db, |r| {
            r.register_entity::<PeopleAdded>();
        })
        .await;
        let alters = alters_sql(&v2).await;
        assert_eq!(alters.len(), 1, "{alters:#?}");
        let (sql, safe) = &alters[0];
        assert!(*safe, "adding is safe even with rows: {sql}");
        assert!(
            sql.contains("ADD COLUMN") && sql.contains("city") && sql.contains("size"),
            "{sql}"
        );
        assert!(sql.contains("City"), "new index: {sql}");
        assert!(!sql.contains("DROP"), "{sql}");
        sync(&v2).await;
        let rows = query(&v2, "SELECT name, city, size FROM people").await;
        assert_eq!(rows[0][0].as_str(), Some("Ann"));
        assert!(rows[0][1].is_null());
        assert_eq!(
            rows[0][2].as_str(),
            Some("S"),
            "NOT NULL enum gets its default"
        );
        db.drop().await;
    }
);

dialect_test!(
    removed_columns_are_unsafe_only_when_rows_exist,
    |db: TestDb| async move {
        let v1 = engine_with(&db, |r| {
            r.register_entity::<PeopleV1>();
        })
        .await;
        sync(&v1).await;
        let v2 = engine_with(&db, |r| {
            r.register_entity::<PeopleRemoved>();
        })
        .await;
        let alters = alters_sql(&v2).await;
        assert_eq!(alters.len(), 1, "{alters:#?}");
        assert!(alters[0].1, "empty table: dropping a column loses nothing");
        exec(
            &v1,
            "INSERT INTO people (name, age, email) VALUES ('Bob', 40, 'bob@x')",
        )
        .await;
        let alters = alters_sql(&v2).await;
        assert!(!alters[0].1, "rows exist: unsafe");
        sync(&v2).await;
        let rows = query(&v2, "SELECT name, email FROM people").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0][0].as_str(),
            Some("Bob"),
            "other columns keep their data"
        );
        db.drop().await;
    }
);

dialect_test!(
    changed_column_types_are_detected_and_keep_data,
    |db: TestDb| async move {
        let v1 = engine_with(&db, |r| {
            r.register_entity::<PeopleV1>();
        })
        .await;
        sync(&v1).await;
        exec(
            &v1,
            "INSERT INTO people (name, age, email) VALUES ('Cy', 20, 'cy@x')",
        )
        .await;
        let v2 = engine_with(&db, |r| {
            r.register_entity::<PeopleChanged>();
        })
        .await;
        let alters = alters_sql(&v2).await;
        assert_eq!(alters.len(), 1, "{alters:#?}");
        assert!(
            !alters[0].1,
            "changing columns of a table with rows is unsafe"
        );
        if db.kind == Kind::MySql {
            let sql = &alters[0].0;
            for col in [
                "`name` varchar(120)",
                "`age` int unsigned",
                "`email` varchar(255) DEFAULT NULL",
            ] {
                assert!(
                    sql.contains(&format!("MODIFY COLUMN {col}")),
                    "{col} in {sql}"
                );
            }
        }
        sync(&v2).await;
        let rows = query(&v2, "SELECT name, age, email FROM people").await;
        assert_eq!(rows[0][0].as_str(), Some("Cy"));
        assert_eq!(rows[0][1].as_i64(), Some(20));
        // Back to V1: NOT NULL again; the row has a value so nothing is lost.
        sync(&v1).await;
        db.drop().await;
    }
);

dialect_test!(index_changes_are_detected, |db: TestDb| async move {
    let v1 = engine_with(&db, |r| {
        r.register_entity::<PeopleV1>();
    })
    .await;
    sync(&v1).await;
    let v2 = engine_with(&db, |r| {
        r.register_entity::<PeopleReindexed>();
    })
    .await;
    let alters = alters_sql(&v2).await;
    assert_eq!(alters.len(), 1, "{alters:#?}");
    let sql = &alters[0].0;
    assert!(alters[0].1, "index changes lose no data: {sql}");
    for name in ["NameAge", "Email", "NameOnly"] {
        assert!(sql.contains(name), "{name} in {sql}");
    }
    sync(&v2).await;
    // Unique now on name: a duplicate name is refused, a duplicate email is not.
    exec(
        &v2,
        "INSERT INTO people (name, age, email) VALUES ('Di', 1, 'same')",
    )
    .await;
    exec(
        &v2,
        "INSERT INTO people (name, age, email) VALUES ('Ed', 1, 'same')",
    )
    .await;
    let dup = v2
        .db("default")
        .unwrap()
        .execute(
            "INSERT INTO people (name, age, email) VALUES ('Di', 2, 'other')",
            vec![],
        )
        .await;
    assert!(dup.is_err(), "NameOnly is unique");
    // And back: the unique on email cannot be added while two rows share one.
    let back = v1.alters().await.unwrap();
    assert_eq!(back.len(), 1);
    assert!(
        back[0].exec(&v1).await.is_err(),
        "duplicate emails block the unique index"
    );
    db.drop().await;
});

dialect_test!(
    unknown_tables_are_dropped_safely_only_when_empty,
    |db: TestDb| async move {
        let both = engine_with(&db, |r| {
            r.register_entity::<PeopleV1>().register_entity::<Other>();
        })
        .await;
        sync(&both).await;
        let one = engine_with(&db, |r| {
            r.register_entity::<PeopleV1>();
        })
        .await;
        let alters = alters_sql(&one).await;
        assert_eq!(alters.len(), 1, "{alters:#?}");
        assert!(alters[0].0.starts_with("DROP TABLE") && alters[0].0.contains("other"));
        assert!(alters[0].1, "empty: safe");
        exec(&both, "INSERT INTO other (label) VALUES ('keep me')").await;
        let alters = alters_sql(&one).await;
        assert!(!alters[0].1, "rows: unsafe");
        // A table's own schema_changes never drops other tables.
        let schema = one.registry().table_schema::<PeopleV1>().unwrap();
        assert_eq!(schema.schema_changes(&one).await.unwrap(), (false, vec![]));
        db.drop().await;
    }
);

dialect_test!(
    table_operations_update_truncate_drop,
    |db: TestDb| async move {
        let engine = engine_with(&db, |r| {
            r.register_entity::<PeopleV1>();
        })
        .await;
        let schema = engine.registry().table_schema::<PeopleV1>().unwrap();
        let (has, alters) = schema.schema_changes(&engine).await.unwrap();
        assert!(has && alters.len() == 1);
        schema.update_schema(&engine).await.unwrap();
        assert_eq!(
            schema.schema_changes(&engine).await.unwrap(),
            (false, vec![])
        );
        exec(
            &engine,
            "INSERT INTO people (name, age, email) VALUES ('A', 1, 'a')",
        )
        .await;
        exec(
            &engine,
            "INSERT INTO people (name, age, email) VALUES ('B', 1, 'b')",
        )
        .await;
        schema.truncate_table(&engine).await.unwrap();
        assert!(query(&engine, "SELECT id FROM people").await.is_empty());
        exec(
            &engine,
            "INSERT INTO people (name, age, email) VALUES ('C', 1, 'c')",
        )
        .await;
        let id = query(&engine, "SELECT id FROM people").await[0][0].as_i64();
        assert_eq!(id, Some(1), "truncate restarts IDs");
        // update_schema applies unsafe changes too.
        let changed = engine_with(&db, |r| {
            r.register_entity::<PeopleRemoved>();
        })
        .await;
        let schema2 = changed.registry().table_schema::<PeopleRemoved>().unwrap();
        schema2.update_schema(&changed).await.unwrap();
        assert_eq!(
            schema2.schema_changes(&changed).await.unwrap(),
            (false, vec![])
        );
        schema2.drop_table(&changed).await.unwrap();
        schema2.drop_table(&changed).await.unwrap(); // dropping a missing table is fine
        let (has, _) = schema2.schema_changes(&changed).await.unwrap();
        assert!(has, "dropped table must be created again");
        db.drop().await;
    }
);

dialect_test!(enum_value_changes_are_detected, |db: TestDb| async move {
    let mut r = db.registry();
    r.register_enum_list("sizes", &["S", "M"])
        .register_entity::<PeopleAdded>();
    let small = r.validate().await.unwrap().create_engine();
    sync(&small).await;
    let mut r = db.registry();
    r.register_enum_list("sizes", &["S", "M", "XL"])
        .register_entity::<PeopleAdded>();
    let big = r.validate().await.unwrap().create_engine();
    let alters = alters_sql(&big).await;
    assert_eq!(alters.len(), 1, "{alters:#?}");
    assert!(alters[0].0.contains("XL"));
    sync(&big).await;
    db.drop().await;
});

#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_charset_mismatch_is_converted() {
    let db = TestDb::new(Kind::MySql, "charset_my").await;
    let mut r = Registry::new();
    r.register_mysql_pool_with_encoding("default", &db.location, "latin1")
        .register_entity::<Other>();
    let latin = r.validate().await.unwrap().create_engine();
    sync(&latin).await;
    let utf = engine_with(&db, |r| {
        r.register_entity::<Other>();
    })
    .await;
    let alters = alters_sql(&utf).await;
    assert_eq!(
        alters,
        vec![(
            "ALTER TABLE `other` CONVERT TO CHARACTER SET utf8mb4".to_string(),
            true
        )]
    );
    sync(&utf).await;
    db.drop().await;
}
