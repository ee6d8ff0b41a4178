//! H: the query builder and the simple finders, run against every dialect.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::collections::HashMap;

use beeorm::prelude::*;
use beeorm::Error;
use common::{sync, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "players")]
struct Player {
    id: u64,
    #[orm(length = 50)]
    name: String,
    age: u32,
}

async fn setup(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_entity::<Player>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    let mut players: Vec<Tracked<Player>> = [("Ann", 10), ("Bob", 9), ("CodeCup", 12), ("Dan", 30)]
        .into_iter()
        .map(|(n, a)| {
            Tracked::new(Player {
                id: 0,
                name: n.into(),
                age: a,
            })
        })
        .collect();
    let mut f = engine.flusher();
    for p in players.iter_mut() {
        f.track(p);
    }
    f.flush().await.unwrap();
    engine
}

dialect_test!(finders_read_from_the_database, |db: TestDb| async move {
    let engine = setup(&db).await;
    let all = engine.all::<Player>().await.unwrap();
    assert_eq!(
        all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["Ann", "Bob", "CodeCup", "Dan"]
    );
    let first = engine.first::<Player>().await.unwrap();
    let last = engine.last::<Player>().await.unwrap();
    assert_eq!((first.name.as_str(), last.name.as_str()), ("Ann", "Dan"));
    let bob = engine.find::<Player>(all[1].id).await.unwrap();
    assert_eq!(bob.name, "Bob");
    let err = engine.find::<Player>(999_999).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { entity, key } if entity == "Player" && key.contains("999999")),
        "{err:?}"
    );
    db.drop().await;
});

dialect_test!(
    finders_on_an_empty_table_are_not_found,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Player>();
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        assert!(engine.all::<Player>().await.unwrap().is_empty());
        assert!(matches!(
            engine.first::<Player>().await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            engine.last::<Player>().await,
            Err(Error::NotFound { .. })
        ));
        db.drop().await;
    }
);

dialect_test!(query_builder_runs_on_the_engine, |db: TestDb| async move {
    let engine = setup(&db).await;
    let mut q = QueryBuilder::<Player>::new();
    q.table("players")
        .where_(("age", 10))
        .or_where(("age", ">", 11))
        .order_by("age", "DESC");
    let rows = q.all(&engine).await.unwrap();
    assert_eq!(
        rows.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["Dan", "CodeCup", "Ann"]
    );

    // A driver set for to_sql() does not stop the query from running on the pool's server.
    let mut q = QueryBuilder::<Player>::new();
    q.set_driver(Driver::POSTGRESQL)
        .table("players")
        .where_in("name", ["Bob", "Dan"])
        .order_by("id", "ASC");
    let names: Vec<String> = q
        .all(&engine)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["Bob", "Dan"]);

    // Columns in any order, matched by name.
    let mut q = QueryBuilder::<Player>::new();
    q.table("players")
        .select(["age", "name", "id"])
        .where_(("name", "LIKE", "Co%"));
    let p = q.get(&engine).await.unwrap();
    assert_eq!((p.name.as_str(), p.age), ("CodeCup", 12));

    // Fewer columns than the entity: a typed error naming the missing field.
    let mut q = QueryBuilder::<Player>::new();
    q.table("players").select(["id", "name"]);
    let err = q.get(&engine).await.unwrap_err();
    assert!(
        matches!(&err, Error::Decode { field, .. } if field == "age"),
        "{err:?}"
    );

    // Plain maps and value lists, grouping, limit and offset.
    let mut q = QueryBuilder::<HashMap<String, Value>>::new();
    q.table("players")
        .select(["age"])
        .where_(("age", "<", 20))
        .group_by(["age"])
        .order_by("age", "ASC")
        .limit(2)
        .offset(1);
    let rows = q.all(&engine).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["age"].as_i64(), Some(10));

    let mut q = QueryBuilder::<Player>::new();
    q.table("players").where_(("age", 99));
    assert!(matches!(q.get(&engine).await, Err(Error::NotFound { .. })));

    // Bad input is an error before any SQL is sent.
    let mut q = QueryBuilder::<Player>::new();
    q.table("players").where_(("age; DROP TABLE players", 1));
    assert!(matches!(q.all(&engine).await, Err(Error::Query(_))));
    assert_eq!(engine.all::<Player>().await.unwrap().len(), 4);
    db.drop().await;
});
