//! Cached queries (D5, C9): lists and single rows kept in Redis, on every dialect
//! with a real Redis. Each test has its own database and cache namespace; "another
//! process" is a second registry (its own local cache, its own connections).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common_redis/mod.rs"]
mod common_redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beeorm::__private::pause::{self, Point};
use beeorm::prelude::*;
use beeorm::{Error, ValidatedRegistry};
use common::{StatementCounter, TestDb};

#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(table = "people", local_cache, redis_cache)]
#[orm(cached_query(name = "by_age", query = ":age = ? ORDER BY :id"))]
#[orm(cached_query(name = "older_than", query = ":age > ? ORDER BY :age DESC, :id"))]
#[orm(cached_query(name = "everyone", query = ""))]
#[orm(cached_query_one(name = "by_name", query = ":name = ?"))]
struct Person {
    id: u64,
    #[orm(length = 100)]
    name: String,
    age: u32,
    #[orm(fake_delete)]
    fake_delete: bool,
}

/// Local layer only: lists come from the database each time.
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(table = "tags", local_cache)]
#[orm(cached_query(name = "by_label", query = ":label = ?"))]
struct Tag {
    id: u64,
    #[orm(length = 50)]
    label: String,
}

/// For the list cap: registered only by the test that fills it.
#[derive(Entity, Debug, PartialEq)]
#[orm(table = "crowd", redis_cache)]
#[orm(cached_query(name = "everyone", query = ""))]
struct Crowd {
    id: u64,
    n: u32,
}

/// A namespace no other test or run uses.
fn namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{}_{nanos}_{test}", std::process::id())
}

struct Node {
    registry: ValidatedRegistry,
    sql: Arc<StatementCounter>,
}

/// A list query: `SELECT <id> FROM …`, the primary key alone (row loads name
/// every column).
fn is_list_query(sql: &str) -> bool {
    ["SELECT `id` FROM", "SELECT \"id\" FROM"]
        .iter()
        .any(|p| sql.starts_with(p))
}

impl Node {
    fn engine(&self) -> Engine {
        self.registry.create_engine()
    }

    /// (list queries, other statements) sent since the last call.
    fn statements(&self) -> (usize, usize) {
        let all = self.sql.take();
        let lists = all.iter().filter(|s| is_list_query(s)).count();
        (lists, all.len() - lists)
    }

    /// Waits until the local layer serves (its invalidation channel is live).
    async fn wait_serving(&self) {
        let start = Instant::now();
        while !self.engine().cache_stats().local_serving {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the invalidation channel never became live"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn node_with(db: &TestDb, ns: &str, crowd: bool) -> Node {
    let mut r = db.registry();
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_local_cache("default", 10_000)
        .set_cache_namespace(ns)
        // Wide: a loaded CI machine must not pause the local layer (tests count rows).
        .set_local_cache_window(Duration::from_secs(2))
        .register_entity::<Person>()
        .register_entity::<Tag>();
    if crowd {
        r.register_entity::<Crowd>();
    }
    let sql = StatementCounter::register(&mut r);
    let registry = r.validate().await.unwrap();
    let n = Node { registry, sql };
    n.wait_serving().await;
    n
}

/// Two "processes" on one database and one Redis namespace, schema synced.
async fn setup(db: &TestDb, test: &str) -> (Node, Node) {
    let ns = namespace(test);
    let a = node_with(db, &ns, false).await;
    common::sync(&a.engine()).await;
    let b = node_with(db, &ns, false).await;
    a.statements();
    (a, b)
}

async fn insert(engine: &Engine, name: &str, age: u32) -> u64 {
    let mut p = Tracked::new(Person {
        id: 0,
        name: name.into(),
        age,
        fake_delete: false,
    });
    engine.flush(&mut p).await.unwrap();
    p.id
}

async fn ids_of(engine: &Engine, query: &str, args: &[Value]) -> (Vec<u64>, u64) {
    engine
        .cached_search_ids::<Person>(query, Pager::new(1, 1000), args)
        .await
        .unwrap()
}

fn names(rows: &[Tracked<Person>]) -> Vec<&str> {
    rows.iter().map(|r| r.name.as_str()).collect()
}

dialect_test!(
    lists_and_single_rows_come_from_the_caches_the_second_time,
    |db: TestDb| async move {
        let (a, b) = setup(&db, "hit").await;
        let e = a.engine();
        let ann = insert(&e, "Ann", 18).await;
        let bob = insert(&e, "Bob", 30).await;
        let cat = insert(&e, "Cat", 18).await;
        a.statements();

        let (rows, total) = e
            .cached_search::<Person>("by_age", Pager::new(1, 10), &[Value::from(18)])
            .await
            .unwrap();
        assert_eq!(names(&rows), ["Ann", "Cat"]);
        assert_eq!(total, 2);
        assert_eq!(
            a.statements(),
            (1, 1),
            "a miss: the list query, then the rows"
        );

        let (rows, total) = e
            .cached_search::<Person>("by_age", Pager::new(1, 10), &[Value::from(18)])
            .await
            .unwrap();
        assert_eq!(names(&rows), ["Ann", "Cat"]);
        assert_eq!(total, 2);
        assert_eq!(
            a.statements(),
            (0, 0),
            "list in Redis, rows in the local layer"
        );

        // Another process: the list and the rows come from Redis.
        let (rows, total) = b
            .engine()
            .cached_search::<Person>("by_age", Pager::new(1, 10), &[Value::from(18u8)])
            .await
            .unwrap();
        assert_eq!(names(&rows), ["Ann", "Cat"]);
        assert_eq!(total, 2);
        assert_eq!(b.statements(), (0, 0), "another process reads Redis");

        // Other arguments are another list.
        assert_eq!(
            ids_of(&e, "by_age", &[Value::from(30)]).await,
            (vec![bob], 1)
        );
        assert_eq!(a.statements(), (1, 0));
        assert_eq!(ids_of(&e, "by_age", &[Value::from(31)]).await, (vec![], 0));
        assert_eq!(ids_of(&e, "by_age", &[Value::from(31)]).await, (vec![], 0));
        assert_eq!(a.statements(), (1, 0), "an empty list is cached too");

        // Single rows.
        let one = e
            .cached_search_one::<Person>("by_name", &[Value::from("Bob")])
            .await
            .unwrap()
            .unwrap();
        assert_eq!((one.id, one.age), (bob, 30));
        assert_eq!(a.statements(), (1, 1), "a miss: the query, then the row");
        let again = e
            .cached_search_one::<Person>("by_name", &[Value::from("Bob")])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.id, bob);
        assert_eq!(
            a.statements(),
            (0, 0),
            "query in Redis, row in the local layer"
        );
        let other = b
            .engine()
            .cached_search_one::<Person>("by_name", &[Value::from("Bob")])
            .await
            .unwrap()
            .unwrap();
        assert_eq!((other.id, other.name.as_str()), (bob, "Bob"));
        assert_eq!(b.statements(), (0, 0), "another process reads Redis");
        assert!(e
            .cached_search_one::<Person>("by_name", &[Value::from("Nobody")])
            .await
            .unwrap()
            .is_none());
        assert!(e
            .cached_search_one::<Person>("by_name", &[Value::from("Nobody")])
            .await
            .unwrap()
            .is_none());
        assert_eq!(a.statements(), (1, 0), "no match is remembered too");
        let _ = (ann, cat);
        db.drop().await;
    }
);

dialect_test!(
    a_row_whose_age_changes_moves_between_lists,
    |db: TestDb| async move {
        let (a, b) = setup(&db, "moves").await;
        let e = a.engine();
        let ann = insert(&e, "Ann", 18).await;
        let bob = insert(&e, "Bob", 30).await;
        for n in [&a, &b] {
            assert_eq!(
                ids_of(&n.engine(), "by_age", &[Value::from(18)]).await.0,
                [ann]
            );
            assert_eq!(
                ids_of(&n.engine(), "by_age", &[Value::from(30)]).await.0,
                [bob]
            );
            assert_eq!(
                ids_of(&n.engine(), "older_than", &[Value::from(10)])
                    .await
                    .0,
                [bob, ann]
            );
        }
        a.statements();
        b.statements();

        let mut p = e.find::<Person>(ann).await.unwrap();
        p.age = 40;
        e.flush(&mut p).await.unwrap();
        a.statements();
        // Every process sees the new lists as soon as the flush returned.
        for n in [&a, &b] {
            let e = n.engine();
            assert_eq!(ids_of(&e, "by_age", &[Value::from(18)]).await, (vec![], 0));
            assert_eq!(ids_of(&e, "by_age", &[Value::from(30)]).await.0, [bob]);
            assert_eq!(ids_of(&e, "by_age", &[Value::from(40)]).await.0, [ann]);
            assert_eq!(
                ids_of(&e, "older_than", &[Value::from(10)]).await.0,
                [ann, bob],
                "ordered by age, descending"
            );
        }
        assert_eq!(a.statements().0 + b.statements().0, 4, "refilled once each");
        let (rows, _) = e
            .cached_search::<Person>("by_age", Pager::new(1, 10), &[Value::from(40)])
            .await
            .unwrap();
        assert_eq!(rows[0].age, 40);
        db.drop().await;
    }
);

dialect_test!(
    inserts_and_deletes_change_the_lists,
    |db: TestDb| async move {
        let (a, b) = setup(&db, "insdel").await;
        let e = a.engine();
        let ann = insert(&e, "Ann", 18).await;
        assert_eq!(ids_of(&e, "everyone", &[]).await, (vec![ann], 1));
        assert_eq!(
            ids_of(&b.engine(), "by_age", &[Value::from(18)]).await.0,
            [ann]
        );

        let bob = insert(&b.engine(), "Bob", 18).await;
        assert_eq!(ids_of(&e, "everyone", &[]).await, (vec![ann, bob], 2));
        assert_eq!(ids_of(&e, "by_age", &[Value::from(18)]).await.0, [ann, bob]);
        assert_eq!(
            e.cached_search_one::<Person>("by_name", &[Value::from("Bob")])
                .await
                .unwrap()
                .map(|p| p.id),
            Some(bob)
        );

        // A fake delete leaves every list (the row stays in the table).
        let mut p = e.find::<Person>(ann).await.unwrap();
        e.delete(&mut p).await.unwrap();
        assert_eq!(ids_of(&e, "everyone", &[]).await, (vec![bob], 1));
        assert_eq!(
            ids_of(&b.engine(), "by_age", &[Value::from(18)]).await.0,
            [bob]
        );
        let (rows, total) = b
            .engine()
            .read()
            .include_deleted()
            .cached_search::<Person>("everyone", Pager::new(1, 10), &[])
            .await
            .unwrap();
        assert_eq!((names(&rows), total), (vec!["Bob"], 1), "never listed");

        // A real delete too.
        let mut p = b.engine().find::<Person>(bob).await.unwrap();
        b.engine().force_delete(&mut p).await.unwrap();
        assert_eq!(ids_of(&e, "everyone", &[]).await, (vec![], 0));
        assert!(e
            .cached_search_one::<Person>("by_name", &[Value::from("Bob")])
            .await
            .unwrap()
            .is_none());
        db.drop().await;
    }
);

dialect_test!(
    rolled_back_and_failed_writes_change_nothing,
    |db: TestDb| async move {
        let (a, _b) = setup(&db, "rollback").await;
        let e = a.engine();
        let ann = insert(&e, "Ann", 18).await;
        assert_eq!(ids_of(&e, "by_age", &[Value::from(18)]).await.0, [ann]);
        assert_eq!(
            ids_of(&e, "by_age", &[Value::from(20)]).await.0,
            Vec::<u64>::new()
        );
        a.statements();

        // Rolled back: inside, the transaction's own write; outside, nothing changed.
        let mut tx = e.db("default").unwrap().begin().await.unwrap();
        let mut p = e.find::<Person>(ann).await.unwrap();
        p.age = 19;
        e.flusher().track(&mut p).flush_in(&mut tx).await.unwrap();
        let (inside, total) = e
            .read()
            .using(&mut tx)
            .cached_search::<Person>("by_age", Pager::new(1, 10), &[Value::from(19)])
            .await
            .unwrap();
        assert_eq!((names(&inside), total), (vec!["Ann"], 1));
        tx.rollback().await.unwrap();
        a.statements();
        assert_eq!(ids_of(&e, "by_age", &[Value::from(18)]).await.0, [ann]);
        assert_eq!(ids_of(&e, "by_age", &[Value::from(19)]).await, (vec![], 0));
        assert_eq!(
            a.statements(),
            (1, 0),
            "the 18 list is still cached; the read inside the transaction stored nothing"
        );

        // Dropped (a cancelled request).
        {
            let mut tx = e.db("default").unwrap().begin().await.unwrap();
            let mut p = e.find::<Person>(ann).await.unwrap();
            p.age = 20;
            e.flusher().track(&mut p).flush_in(&mut tx).await.unwrap();
        }
        // Failed: a duplicate primary key.
        let mut dup = Tracked::new(Person {
            id: ann,
            name: "Dup".into(),
            age: 18,
            fake_delete: false,
        });
        assert!(e.flush(&mut dup).await.is_err());
        a.statements();
        assert_eq!(ids_of(&e, "by_age", &[Value::from(18)]).await.0, [ann]);
        assert_eq!(
            ids_of(&e, "by_age", &[Value::from(20)]).await.0,
            Vec::<u64>::new()
        );
        assert_eq!(a.statements(), (0, 0), "both lists still cached");
        db.drop().await;
    }
);

dialect_test!(pages_and_totals, |db: TestDb| async move {
    let (a, _b) = setup(&db, "pages").await;
    let e = a.engine();
    let mut people: Vec<Tracked<Person>> = (0..25)
        .map(|i| {
            Tracked::new(Person {
                id: 0,
                name: format!("p{i:02}"),
                age: 50 + (i % 5),
                fake_delete: false,
            })
        })
        .collect();
    e.flusher().track_all(&mut people).flush().await.unwrap();
    let ids: Vec<u64> = people.iter().map(|p| p.id).collect();
    a.statements();

    let page = |n: u64| {
        let e = e.clone();
        async move {
            e.cached_search::<Person>("everyone", Pager::new(n, 10), &[])
                .await
                .unwrap()
        }
    };
    let (rows, total) = page(1).await;
    assert_eq!(total, 25);
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..10]);
    let (rows, total) = page(3).await;
    assert_eq!(total, 25);
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), ids[20..]);
    let (rows, total) = page(4).await;
    assert_eq!((rows.len(), total), (0, 25));
    assert_eq!(a.statements().0, 1, "one list serves every page");

    // ORDER BY age DESC, id: the ages 54 first.
    let (ids_desc, total) = e
        .cached_search_ids::<Person>("older_than", Pager::new(1, 6), &[Value::from(52)])
        .await
        .unwrap();
    assert_eq!(total, 10);
    assert_eq!(
        ids_desc,
        [ids[4], ids[9], ids[14], ids[19], ids[24], ids[3]]
    );
    db.drop().await;
});

dialect_test!(
    local_only_entities_read_their_lists_from_the_database,
    |db: TestDb| async move {
        let (a, _b) = setup(&db, "localonly").await;
        let e = a.engine();
        let mut t = Tracked::new(Tag {
            id: 0,
            label: "red".into(),
        });
        e.flush(&mut t).await.unwrap();
        a.statements();
        for _ in 0..2 {
            let (rows, total) = e
                .cached_search::<Tag>("by_label", Pager::new(1, 10), &[Value::from("red")])
                .await
                .unwrap();
            assert_eq!((rows.len(), total), (1, 1));
            assert_eq!(rows[0].id, t.id);
        }
        assert_eq!(
            a.statements(),
            (2, 1),
            "lists from the database, the row once"
        );
        db.drop().await;
    }
);

dialect_test!(misuse_is_a_typed_error, |db: TestDb| async move {
    let (a, _b) = setup(&db, "misuse").await;
    let e = a.engine();
    let check = |r: beeorm::Result<(Vec<u64>, u64)>, want: &str| match r {
        Err(Error::InvalidArgument { call, reason }) => {
            assert!(
                reason.contains(want) || call.contains(want),
                "{call}: {reason}"
            )
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    check(
        e.cached_search_ids::<Person>("by_agee", Pager::new(1, 10), &[Value::from(1)])
            .await,
        "no cached query `by_agee`",
    );
    check(
        e.cached_search_ids::<Person>("by_age", Pager::new(1, 10), &[])
            .await,
        "takes 1 argument(s), 0 given",
    );
    check(
        e.cached_search_ids::<Person>(
            "by_age",
            Pager::new(1, 10),
            &[Value::from(1), Value::from(2)],
        )
        .await,
        "takes 1 argument(s), 2 given",
    );
    check(
        e.cached_search_ids::<Person>("by_name", Pager::new(1, 10), &[Value::from("x")])
            .await,
        "cached_search_one",
    );
    match e
        .cached_search_one::<Person>("by_age", &[Value::from(1)])
        .await
    {
        Err(Error::InvalidArgument { reason, .. }) => {
            assert!(reason.contains("is a list"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.statements(), (0, 0), "nothing was sent");
    db.drop().await;
});

#[derive(Entity, Clone)]
#[orm(redis_cache)]
#[orm(cached_query(name = "by_age", query = ":agee = ?"))]
struct Misspelt {
    id: u64,
    age: u32,
}

#[derive(Entity)]
#[orm(cached_query(name = "by_age", query = ":age = ?"))]
struct Uncached {
    id: u64,
    age: u32,
}

#[tokio::test]
async fn definitions_are_checked_by_validate() {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", ":memory:")
        .register_redis_pool("default", &common_redis::redis_url(), 0)
        .set_cache_namespace("app")
        .register_entity::<Misspelt>();
    match r.validate().await.unwrap_err() {
        Error::Definition {
            entity,
            field,
            reason,
        } => {
            assert_eq!(entity, "Misspelt");
            assert_eq!(field.as_deref(), Some("agee"));
            assert!(reason.contains("`by_age`"), "{reason}");
        }
        other => panic!("{other}"),
    }

    let mut r = Registry::new();
    r.register_sqlite_pool("default", ":memory:")
        .register_entity::<Uncached>();
    match r.validate().await.unwrap_err() {
        Error::Definition { entity, reason, .. } => {
            assert_eq!(entity, "Uncached");
            assert!(reason.contains("redis_cache"), "{reason}");
        }
        other => panic!("{other}"),
    }
}

/// A hook that holds the first task of the namespace reaching its point until
/// `go` gets a permit, and tells `reached` it arrived; later tasks pass.
fn hold_first(ns: &str, point: Point) -> (Arc<tokio::sync::Notify>, Arc<tokio::sync::Semaphore>) {
    let reached = Arc::new(tokio::sync::Notify::new());
    let go = Arc::new(tokio::sync::Semaphore::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    let (r, g) = (reached.clone(), go.clone());
    pause::install(
        ns,
        point,
        Arc::new(move || {
            let (r, g, armed) = (r.clone(), g.clone(), armed.clone());
            Box::pin(async move {
                if armed.swap(false, Ordering::SeqCst) {
                    r.notify_one();
                    g.acquire().await.unwrap().forget();
                }
            })
        }),
    );
    (reached, go)
}

dialect_test!(
    a_fill_that_raced_with_a_commit_is_refused,
    |db: TestDb| async move {
        let ns = namespace("race");
        let a = node_with(&db, &ns, false).await;
        common::sync(&a.engine()).await;
        let b = node_with(&db, &ns, false).await;
        let ann = insert(&a.engine(), "Ann", 18).await;

        // Reader on a: misses, runs the query (Ann is 18), then stops before its fill.
        let (reached, go) = hold_first(&ns, Point::BeforeQueryFill);
        let reader = {
            let e = a.engine();
            tokio::spawn(async move { ids_of(&e, "by_age", &[Value::from(18)]).await })
        };
        reached.notified().await;
        // Meanwhile b commits: Ann is 19 now.
        let mut p = b.engine().find::<Person>(ann).await.unwrap();
        p.age = 19;
        b.engine().flush(&mut p).await.unwrap();
        go.add_permits(1);
        // The reader answers what it read (its read began before the write ended)...
        assert_eq!(reader.await.unwrap().0, [ann]);
        pause::clear(&ns);
        // ...but its list was refused: every later reader sees the write.
        b.statements();
        assert_eq!(
            ids_of(&b.engine(), "by_age", &[Value::from(18)]).await,
            (vec![], 0)
        );
        assert_eq!(
            b.statements().0,
            1,
            "the list was read again, not served stale"
        );
        assert_eq!(
            ids_of(&a.engine(), "by_age", &[Value::from(18)]).await,
            (vec![], 0)
        );
        db.drop().await;
    }
);

dialect_test!(
    readers_store_nothing_while_a_writer_is_committing,
    |db: TestDb| async move {
        let ns = namespace("inflight");
        let a = node_with(&db, &ns, false).await;
        common::sync(&a.engine()).await;
        let b = node_with(&db, &ns, false).await;
        let ann = insert(&a.engine(), "Ann", 18).await;

        // The writer locks, then stops before its COMMIT.
        let (at_commit, commit) = hold_first(&ns, Point::BeforeCommit);
        let (at_unlock, _never) = hold_first(&ns, Point::BeforeUnlock);
        let writer = {
            let e = b.engine();
            tokio::spawn(async move {
                let mut p = e.find::<Person>(ann).await.unwrap();
                p.age = 19;
                e.flush(&mut p).await.unwrap();
            })
        };
        at_commit.notified().await;
        // A reader now reads the old row from the database and must not store it.
        a.statements();
        assert_eq!(
            ids_of(&a.engine(), "by_age", &[Value::from(18)]).await.0,
            [ann]
        );
        assert_eq!(
            ids_of(&a.engine(), "by_age", &[Value::from(18)]).await.0,
            [ann]
        );
        assert_eq!(a.statements().0, 2, "bypassed twice: nothing stored");
        // The writer commits, then "dies" before its unlock (held for good).
        commit.add_permits(1);
        at_unlock.notified().await;
        // Had the list above been stored, it would be served now, stale.
        assert_eq!(
            ids_of(&a.engine(), "by_age", &[Value::from(18)]).await,
            (vec![], 0)
        );
        assert_eq!(
            ids_of(&a.engine(), "by_age", &[Value::from(19)]).await.0,
            [ann]
        );
        writer.abort();
        pause::clear(&ns);
        db.drop().await;
    }
);

dialect_test!(
    lists_beyond_the_cap_are_answered_by_page,
    |db: TestDb| async move {
        let ns = namespace("cap");
        let a = node_with(&db, &ns, true).await;
        common::sync(&a.engine()).await;
        let e = a.engine();
        // 50,001 rows in one statement (no recursive CTE: MariaDB caps its depth).
        let digits = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                      UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL \
                      SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
        let sql = format!(
            "INSERT INTO `crowd` (`n`) SELECT n FROM (SELECT a.d + 10 * b.d + 100 * c.d \
             + 1000 * f.d + 10000 * g.d AS n FROM {digits} a, {digits} b, {digits} c, \
             {digits} f, {digits} g) AS s WHERE n <= 50000 ORDER BY n"
        );
        common::exec(&e, &common::native(db.kind, &sql)).await;
        a.statements();
        let (ids, total) = e
            .cached_search_ids::<Crowd>("everyone", Pager::new(2, 10), &[])
            .await
            .unwrap();
        assert_eq!(total, 50_001);
        assert_eq!(ids, (11..=20).collect::<Vec<u64>>());
        let probes = |sql: &[String]| sql.iter().filter(|s| s.contains("LIMIT 50001")).count();
        assert_eq!(probes(&a.sql.take()), 1);
        let (ids, total) = e
            .cached_search_ids::<Crowd>("everyone", Pager::new(5001, 10), &[])
            .await
            .unwrap();
        assert_eq!((ids, total), (vec![50_001], 50_001));
        assert_eq!(
            probes(&a.sql.take()),
            0,
            "Redis remembers the list is too long: pages only"
        );
        db.drop().await;
    }
);

dialect_test!(
    many_readers_missing_one_list_cause_one_query,
    |db: TestDb| async move {
        let ns = namespace("herd");
        let a = node_with(&db, &ns, false).await;
        common::sync(&a.engine()).await;
        let ann = insert(&a.engine(), "Ann", 18).await;
        let mut nodes = vec![a];
        for _ in 0..3 {
            nodes.push(node_with(&db, &ns, false).await);
        }
        for n in &nodes {
            n.statements();
        }
        let mut tasks = Vec::new();
        for n in &nodes {
            for _ in 0..10 {
                let e = n.engine();
                tasks.push(tokio::spawn(async move {
                    ids_of(&e, "by_age", &[Value::from(18)]).await
                }));
            }
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), (vec![ann], 1));
        }
        let lists: usize = nodes.iter().map(|n| n.statements().0).sum();
        assert_eq!(lists, 1, "one list query for 40 readers in 4 processes");
        db.drop().await;
    }
);

dialect_test!(
    writes_outside_the_flusher_are_seen_after_invalidate_cached,
    |db: TestDb| async move {
        let (a, _b) = setup(&db, "plainsql").await;
        let e = a.engine();
        let ann = insert(&e, "Ann", 18).await;
        assert_eq!(ids_of(&e, "by_age", &[Value::from(18)]).await.0, [ann]);
        common::exec(
            &e,
            &common::native(db.kind, "UPDATE `people` SET `age` = 21"),
        )
        .await;
        // Not seen: the caches did not see the write...
        assert_eq!(ids_of(&e, "by_age", &[Value::from(18)]).await.0, [ann]);
        // ...until they are told.
        e.invalidate_cached::<Person>(&[ann]).await.unwrap();
        assert_eq!(ids_of(&e, "by_age", &[Value::from(18)]).await, (vec![], 0));
        assert_eq!(ids_of(&e, "by_age", &[Value::from(21)]).await.0, [ann]);
        db.drop().await;
    }
);
