//! Fake delete (B7, issue 10 item 6): the `fake_delete` column holds the row's ID when
//! the row is deleted (0 while it is alive), so a unique index that includes it lets
//! any number of deleted duplicates coexist with one live row. The Rust field stays
//! `bool`.
#![allow(clippy::unwrap_used)]

mod common;

use beeorm::prelude::*;
use beeorm::Error;
use common::{exec, query, sync, Kind, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "members")]
struct Member {
    id: u32,
    #[orm(unique = "NameAlive")]
    name: String,
    #[orm(unique = "NameAlive:2", fake_delete)]
    fake_delete: bool,
}

fn member(name: &str) -> Tracked<Member> {
    Tracked::new(Member {
        id: 0,
        name: name.into(),
        fake_delete: false,
    })
}

async fn engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_entity::<Member>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

/// (id, fake_delete) of every row, by ID.
async fn rows(engine: &Engine) -> Vec<(i64, i64)> {
    query(engine, "SELECT id, fake_delete FROM members ORDER BY id")
        .await
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap()))
        .collect()
}

async fn alive(engine: &Engine) -> Vec<String> {
    engine
        .search::<Member>(&Where::all(), Pager::new(1, 100))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name.clone())
        .collect()
}

dialect_test!(
    deleted_duplicates_coexist_under_a_unique_index,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            let mut ann = member("ann");
            engine.flush(&mut ann).await.unwrap();
            ids.push(i64::from(ann.id));
            engine.delete(&mut ann).await.unwrap();
        }
        let mut live = member("ann");
        engine.flush(&mut live).await.unwrap();
        // Two live rows with one name still clash.
        let err = engine.flush(&mut member("ann")).await.unwrap_err();
        assert!(matches!(err, Error::DuplicatedKey { .. }), "{err:?}");

        let mut want: Vec<(i64, i64)> = ids.iter().map(|&id| (id, id)).collect();
        want.push((i64::from(live.id), 0));
        assert_eq!(
            rows(&engine).await,
            want,
            "deleted rows hold their ID, live 0"
        );
        assert_eq!(alive(&engine).await, ["ann"], "searches skip deleted rows");
        let ids_found = engine
            .search_ids::<Member>(&Where::new("`name` = ?", "ann"), Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(ids_found, [u64::from(live.id)]);
        let deleted = engine
            .read()
            .include_deleted()
            .load_by_id::<Member>(ids[1] as u64)
            .await
            .unwrap()
            .unwrap();
        assert!(deleted.fake_delete, "any non-zero value reads as true");
        db.drop().await;
    }
);

dialect_test!(
    the_flag_written_through_the_field_is_the_id_too,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut ann = member("ann");
        engine.flush(&mut ann).await.unwrap();
        // Delete through the field, bring back, delete again.
        let mut m = engine
            .load_by_id::<Member>(u64::from(ann.id))
            .await
            .unwrap()
            .unwrap();
        m.fake_delete = true;
        engine.flush(&mut m).await.unwrap();
        assert_eq!(
            rows(&engine).await,
            [(i64::from(ann.id), i64::from(ann.id))]
        );
        assert!(alive(&engine).await.is_empty());
        m.fake_delete = false;
        engine.flush(&mut m).await.unwrap();
        assert_eq!(rows(&engine).await, [(i64::from(ann.id), 0)]);
        assert_eq!(alive(&engine).await, ["ann"]);

        // New rows that are deleted from the start: explicit and server-given IDs,
        // several in one statement.
        let mut explicit = member("bob");
        explicit.id = 40;
        explicit.fake_delete = true;
        let mut auto1 = member("bob");
        auto1.fake_delete = true;
        let mut auto2 = member("bob");
        auto2.fake_delete = true;
        engine
            .flusher()
            .track(&mut explicit)
            .track(&mut auto1)
            .track(&mut auto2)
            .flush()
            .await
            .unwrap();
        for m in [&explicit, &auto1, &auto2] {
            let stored = &query(
                &engine,
                &format!("SELECT fake_delete FROM members WHERE id = {}", m.id),
            )
            .await[0][0];
            assert_eq!(stored.as_i64(), Some(i64::from(m.id)));
        }
        assert_eq!(alive(&engine).await, ["ann"]);
        db.drop().await;
    }
);

dialect_test!(
    schema_sync_migrates_a_bool_column,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Member>();
        let engine = r.validate().await.unwrap().create_engine();
        // The table as the bool-column versions created it.
        let ddl: &[&str] = match db.kind {
            Kind::MySql => &[
                "CREATE TABLE `members` (`id` int unsigned NOT NULL AUTO_INCREMENT, \
                 `name` varchar(255) NOT NULL DEFAULT '', \
                 `fake_delete` tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (`id`), \
                 UNIQUE KEY `NameAlive` (`name`, `fake_delete`)) \
                 ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            ],
            Kind::Postgres => &[
                "CREATE TABLE members (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                 name character varying(255) NOT NULL DEFAULT '', \
                 fake_delete boolean NOT NULL DEFAULT false)",
                "CREATE UNIQUE INDEX \"members__NameAlive\" ON members (name, fake_delete)",
            ],
            Kind::Sqlite => &[
                "CREATE TABLE \"members\" (\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, \
                 \"name\" VARCHAR(255) NOT NULL DEFAULT '', \
                 \"fake_delete\" BOOLEAN NOT NULL DEFAULT 0)",
                "CREATE UNIQUE INDEX \"members__NameAlive\" ON \"members\" (\"name\", \"fake_delete\")",
            ],
        };
        for sql in ddl {
            exec(&engine, sql).await;
        }
        exec(
            &engine,
            "INSERT INTO members (name, fake_delete) VALUES ('ann', false), ('bob', true), ('ann', true)",
        )
        .await;
        let alters = engine.alters().await.unwrap();
        assert!(!alters.is_empty());
        assert!(
            alters.iter().all(|a| a.safe),
            "the migration loses nothing: {alters:#?}"
        );
        sync(&engine).await;
        assert_eq!(rows(&engine).await, [(1, 0), (2, 2), (3, 3)]);
        assert_eq!(alive(&engine).await, ["ann"]);
        // Deleting the live duplicate works now.
        let mut ann = engine.load_by_id::<Member>(1).await.unwrap().unwrap();
        engine.delete(&mut ann).await.unwrap();
        assert_eq!(rows(&engine).await, [(1, 1), (2, 2), (3, 3)]);
        db.drop().await;
    }
);

/// A `u64` ID: the flag is as wide (PostgreSQL `numeric(20,0)`).
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "tags")]
struct Tag {
    id: u64,
    #[orm(unique = "NameAlive")]
    name: String,
    #[orm(unique = "NameAlive:2", fake_delete)]
    fake_delete: bool,
}

dialect_test!(wide_ids_work_the_same, |db: TestDb| async move {
    let mut r = db.registry();
    r.register_entity::<Tag>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut t = Tracked::new(Tag {
            id: 0,
            name: "rust".into(),
            fake_delete: false,
        });
        engine.flush(&mut t).await.unwrap();
        ids.push(t.id);
        engine.delete(&mut t).await.unwrap();
    }
    let found = engine
        .search::<Tag>(&Where::all(), Pager::new(1, 10))
        .await
        .unwrap();
    assert!(found.is_empty());
    let t = engine
        .read()
        .include_deleted()
        .load_by_id::<Tag>(ids[1])
        .await
        .unwrap()
        .unwrap();
    assert!(t.fake_delete);
    let stored = &query(
        &engine,
        &format!("SELECT fake_delete FROM tags WHERE id = {}", ids[1]),
    )
    .await[0][0];
    let stored = match stored {
        Value::Decimal(d) => d.to_string(),
        other => other.as_i64().unwrap().to_string(),
    };
    assert_eq!(stored, ids[1].to_string());
    db.drop().await;
});
