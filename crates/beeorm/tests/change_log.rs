//! Issue 13 item 5 (F4): the entity change log, on MySQL, PostgreSQL and SQLite.
//! `#[orm(log)]` entities get a `_log_<pool>_<table>` table from the schema sync; every
//! committed insert, update, delete and fake delete writes a row in the same
//! transaction (before = the previous row, changes = the changed columns, meta = the
//! engine's and the flush's metadata), `skip_log` fields never appear and a change
//! of only them writes nothing; a rollback (own or the caller's) writes no log row,
//! a failing log insert rolls the entity back; the reader returns one entity's
//! history; a process killed right after its flush returned keeps its log row.
#![allow(clippy::unwrap_used, dead_code)]

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use beeorm::prelude::*;
use beeorm::{EntityLog, Instrumentation, StatementEvent};
use common::{exec, query, sync, Kind, TestDb};
use rust_decimal::Decimal;
use serde_json::json;

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "accounts", log)]
struct Account {
    id: u64,
    name: String,
    #[orm(decimal = "12,2")]
    balance: Decimal,
    big: u64,
    data: Vec<u8>,
    #[orm(skip_log)]
    visits: u32,
    #[orm(fake_delete)]
    fake_delete: bool,
}

/// Not logged.
#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "plain")]
struct Plain {
    id: u64,
    name: String,
}

const LOG: &str = "_log_default_accounts";
/// 2^53 + 1: a JSON number a double cannot hold, kept exact.
const BIG: u64 = 9_007_199_254_740_993;

fn account(name: &str) -> Tracked<Account> {
    Tracked::new(Account {
        id: 0,
        name: name.into(),
        balance: Decimal::new(1250, 2),
        big: BIG,
        data: vec![0, 255],
        visits: 0,
        fake_delete: false,
    })
}

/// Records the SQL of every statement.
#[derive(Default)]
struct Statements(Mutex<Vec<String>>);

impl Instrumentation for Statements {
    fn on_statement(&self, event: &StatementEvent<'_>) {
        self.0.lock().unwrap().push(event.sql.to_string());
    }
}

impl Statements {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    /// How many INSERTs into the log table were sent since the last take.
    fn log_inserts(&self) -> usize {
        self.take()
            .iter()
            .filter(|s| s.starts_with("INSERT") && s.contains(LOG))
            .count()
    }
}

async fn engine(db: &TestDb) -> (Engine, Arc<Statements>) {
    let statements = Arc::new(Statements::default());
    let mut r = db.registry();
    r.register_entity::<Account>()
        .register_entity::<Plain>()
        .set_instrumentation(statements.clone());
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    statements.take();
    (engine, statements)
}

async fn log_count(engine: &Engine) -> i64 {
    query(engine, &format!("SELECT COUNT(*) FROM {LOG}")).await[0][0]
        .as_i64()
        .unwrap()
}

async fn history(engine: &Engine, id: u64) -> Vec<EntityLog> {
    engine.entity_log::<Account>(id, None).await.unwrap()
}

fn obj(v: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
    match v {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The row as the log shows it before a change (after `account("a")` was inserted).
fn row(name: &str, fake_delete: u64) -> serde_json::Value {
    json!({
        "name": name,
        "balance": "12.50",
        "big": BIG,
        "data": "00ff",
        "fake_delete": fake_delete,
    })
}

dialect_test!(
    the_log_table_is_created_by_the_alters_and_never_dropped,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Account>();
        let engine = r.validate().await.unwrap().create_engine();
        let schema = engine.registry().table_schema::<Account>().unwrap();
        assert!(schema.is_logged());
        assert_eq!(schema.log_table_name(), Some(LOG));
        assert_eq!(schema.log_pool(), Some("default"));
        let skipped: Vec<&str> = schema.skip_log_columns().map(|c| c.name.as_str()).collect();
        assert_eq!(skipped, ["visits"]);
        let alters = engine.alters().await.unwrap();
        assert!(
            alters
                .iter()
                .any(|a| a.sql.contains("CREATE TABLE") && a.sql.contains(LOG)),
            "{alters:#?}"
        );
        // Applied by the same apply; a second look finds nothing to do (so nothing
        // drops the log table as unknown, and its columns read back as declared).
        sync(&engine).await;
        assert_eq!(log_count(&engine).await, 0);
        // The per-table sync knows it too.
        exec(&engine, &format!("DROP TABLE {LOG}")).await;
        let (changed, alters) = schema.schema_changes(&engine).await.unwrap();
        assert!(
            changed && alters.iter().any(|a| a.sql.contains(LOG)),
            "{alters:#?}"
        );
        schema.update_schema(&engine).await.unwrap();
        assert_eq!(log_count(&engine).await, 0);
        assert!(engine.alters().await.unwrap().is_empty());
        db.drop().await;
    }
);

dialect_test!(
    insert_update_delete_and_fake_delete_are_logged,
    |db: TestDb| async move {
        let (engine, statements) = engine(&db).await;
        // Insert: before NULL, changes = every column but the skipped ones.
        let mut a = account("a");
        engine.flush(&mut a).await.unwrap();
        assert_eq!(statements.log_inserts(), 1);
        let h = history(&engine, a.id).await;
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].entity_id, a.id);
        assert_eq!(h[0].before, None);
        assert_eq!(h[0].changes, obj(row("a", 0)));
        assert_eq!(h[0].meta, None);
        let age = chrono::Utc::now().naive_utc() - h[0].added_at;
        assert!(
            age.num_seconds().abs() < 300,
            "added_at is UTC now: {}",
            h[0].added_at
        );

        // Update: before = the whole previous row, changes = the changed columns.
        a.name = "b".into();
        a.visits = 5;
        engine.flush(&mut a).await.unwrap();
        let h = history(&engine, a.id).await;
        assert_eq!(h.len(), 2);
        assert!(h[0].log_id > h[1].log_id, "newest first");
        assert_eq!(h[0].before, obj(row("a", 0)));
        assert_eq!(h[0].changes, obj(json!({"name": "b"})));

        // Only a skip_log field: no log row.
        a.visits = 6;
        engine.flush(&mut a).await.unwrap();
        assert_eq!(history(&engine, a.id).await.len(), 2);

        // Fake delete: an update of the flag (the column holds the row's ID).
        engine.delete(&mut a).await.unwrap();
        let h = history(&engine, a.id).await;
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].before, obj(row("b", 0)));
        assert_eq!(h[0].changes, obj(json!({"fake_delete": a.id})));

        // Delete: before = the row, changes NULL.
        let mut c = account("c");
        engine.flush(&mut c).await.unwrap();
        engine.force_delete(&mut c).await.unwrap();
        let h = history(&engine, c.id).await;
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].before, obj(row("c", 0)));
        assert_eq!(h[0].changes, None);

        // A flush of an entity that keeps no log writes none.
        let before = log_count(&engine).await;
        let mut p = Tracked::new(Plain {
            id: 0,
            name: "p".into(),
        });
        engine.flush(&mut p).await.unwrap();
        assert_eq!(log_count(&engine).await, before);
        assert!(matches!(
            engine.entity_log::<Plain>(p.id, None).await,
            Err(Error::NotLogged(e)) if e == "Plain"
        ));
        db.drop().await;
    }
);

dialect_test!(
    many_rows_take_one_log_insert_in_the_flush_transaction,
    |db: TestDb| async move {
        let (engine, statements) = engine(&db).await;
        let mut all: Vec<Tracked<Account>> = (0..5).map(|i| account(&format!("n{i}"))).collect();
        engine.flusher().track_all(&mut all).flush().await.unwrap();
        let sent = statements.take();
        let log = sent
            .iter()
            .filter(|s| s.starts_with("INSERT") && s.contains(LOG))
            .count();
        assert_eq!(log, 1, "one multi-row INSERT: {sent:#?}");
        assert_eq!(log_count(&engine).await, 5);
        for a in &all {
            assert_eq!(history(&engine, a.id).await.len(), 1);
        }
        // A single-statement flush of a logged entity runs in a transaction.
        all[0].name = "x".into();
        engine.flush(&mut all[0]).await.unwrap();
        let sent = statements.take();
        let commit = sent.iter().position(|s| s.contains("COMMIT"));
        let insert = sent.iter().position(|s| s.contains(LOG));
        assert!(
            matches!((insert, commit), (Some(i), Some(c)) if i < c),
            "log row before COMMIT: {sent:#?}"
        );
        // Pages of the history.
        let h = engine
            .entity_log::<Account>(all[0].id, Some(Pager::new(2, 1)))
            .await
            .unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].before, None, "page 2 of 1 row: the insert");
        db.drop().await;
    }
);

dialect_test!(
    more_rows_than_one_log_insert_takes_are_split,
    |db: TestDb| async move {
        let (engine, statements) = engine(&db).await;
        // 5,000 rows per log INSERT (5 parameters each, under SQLite's 32,766).
        let mut all: Vec<Tracked<Account>> =
            (0..5_001).map(|i| account(&format!("n{i}"))).collect();
        engine.flusher().track_all(&mut all).flush().await.unwrap();
        assert_eq!(statements.log_inserts(), 2);
        assert_eq!(log_count(&engine).await, 5_001);
        let last = all.last().unwrap();
        assert_eq!(history(&engine, last.id).await.len(), 1);
        db.drop().await;
    }
);

dialect_test!(engine_and_flush_meta_are_merged, |db: TestDb| async move {
    let (mut engine, _) = engine(&db).await;
    engine.set_log_meta("user", 7);
    engine.set_log_meta("source", "engine");
    let mut a = account("a");
    engine
        .flusher()
        .set_log_meta("source", "flush")
        .set_log_meta("ticket", json!({"n": 1}))
        .track(&mut a)
        .flush()
        .await
        .unwrap();
    let h = history(&engine, a.id).await;
    assert_eq!(
        h[0].meta,
        obj(json!({"user": 7, "source": "flush", "ticket": {"n": 1}}))
    );
    // A clone made before a change keeps its metadata.
    let clone = engine.clone();
    engine.set_log_meta("user", 8);
    a.name = "b".into();
    clone.flush(&mut a).await.unwrap();
    let h = history(&engine, a.id).await;
    assert_eq!(h[0].meta, obj(json!({"user": 7, "source": "engine"})));
    db.drop().await;
});

dialect_test!(
    rolled_back_writes_leave_no_log_row,
    |db: TestDb| async move {
        let (engine, _) = engine(&db).await;
        let pool = engine.db("default").unwrap();

        // flush_in, rolled back: neither the row nor its log.
        let mut tx = pool.begin().await.unwrap();
        let mut a = account("a");
        engine
            .flusher()
            .track(&mut a)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(log_count(&engine).await, 0);
        assert!(a.is_new());

        // flush_in, dropped: the same.
        let mut tx = pool.begin().await.unwrap();
        let mut b = account("b");
        engine
            .flusher()
            .track(&mut b)
            .flush_in(&mut tx)
            .await
            .unwrap();
        drop(tx);
        assert_eq!(log_count(&engine).await, 0);

        // flush_in, committed: the log row commits with the row, in that transaction.
        let mut tx = pool.begin().await.unwrap();
        let mut c = account("c");
        engine
            .flusher()
            .set_log_meta("tx", true)
            .track(&mut c)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let h = history(&engine, c.id).await;
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].meta, obj(json!({"tx": true})));

        // A flush whose entity statement fails writes no log row either.
        let mut dup = account("c");
        dup.id = c.id;
        let before = log_count(&engine).await;
        assert!(engine.flush(&mut dup).await.is_err());
        assert_eq!(log_count(&engine).await, before);
        db.drop().await;
    }
);

dialect_test!(
    a_failing_log_insert_rolls_the_entity_back,
    |db: TestDb| async move {
        let (engine, _) = engine(&db).await;
        let mut a = account("a");
        engine.flush(&mut a).await.unwrap();
        exec(&engine, &format!("DROP TABLE {LOG}")).await;

        // Insert: refused, nothing written, the entity still new.
        let mut b = account("b");
        let err = engine.flush(&mut b).await.unwrap_err();
        assert!(
            matches!(&err, Error::ChangeLog { entity, table, .. } if entity == "Account" && table == LOG),
            "{err:?}"
        );
        assert!(!err.rows_written());
        assert!(b.is_new());
        let rows = query(&engine, "SELECT COUNT(*) FROM accounts").await;
        assert_eq!(rows[0][0].as_i64(), Some(1));

        // Update: the row keeps its old value, the entity stays dirty.
        a.name = "changed".into();
        assert!(matches!(
            engine.flush(&mut a).await,
            Err(Error::ChangeLog { .. })
        ));
        let reread = engine.load_by_id::<Account>(a.id).await.unwrap().unwrap();
        assert_eq!(reread.name, "a");
        assert!(engine.flusher().track(&mut a).is_dirty());

        // flush_in: the error comes from flush_in; the caller's transaction rolls back.
        let pool = engine.db("default").unwrap();
        let mut tx = pool.begin().await.unwrap();
        let mut c = account("c");
        assert!(matches!(
            engine.flusher().track(&mut c).flush_in(&mut tx).await,
            Err(Error::ChangeLog { .. })
        ));
        drop(tx);
        let rows = query(&engine, "SELECT COUNT(*) FROM accounts").await;
        assert_eq!(rows[0][0].as_i64(), Some(1));

        // Once the table is back, the same entities flush and are logged.
        sync(&engine).await;
        engine
            .flusher()
            .track(&mut a)
            .track(&mut b)
            .flush()
            .await
            .unwrap();
        assert_eq!(log_count(&engine).await, 2);
        db.drop().await;
    }
);

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_log_in_another_pool_or_an_unknown_pool_is_refused_at_validate() {
    #[derive(Entity)]
    #[orm(table = "elsewhere", log = "logs")]
    struct Elsewhere {
        id: u64,
        name: String,
    }
    #[derive(Entity)]
    #[orm(table = "nowhere", log = "missing")]
    struct Nowhere {
        id: u64,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let mut r = Registry::new();
    r.register_sqlite_pool("default", &path("a.db"))
        .register_sqlite_pool("logs", &path("b.db"))
        .register_entity::<Elsewhere>();
    let err = r.validate().await.unwrap_err();
    assert!(
        matches!(&err, Error::ChangeLogPool { entity, pool, log_pool }
            if entity == "Elsewhere" && pool == "default" && log_pool == "logs"),
        "{err:?}"
    );
    assert!(err.to_string().contains("cannot span pools"), "{err}");

    let mut r = Registry::new();
    r.register_sqlite_pool("default", &path("a.db"))
        .register_entity::<Nowhere>();
    let err = r.validate().await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownPool { pool, .. } if pool == "missing"),
        "{err:?}"
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_log_table_name_too_long_is_refused_at_validate() {
    #[derive(Entity)]
    #[orm(table = "a_table_name_of_exactly_fifty_five_characters_xxxxxxxx", log)]
    struct Long {
        id: u64,
    }
    let dir = tempfile::tempdir().unwrap();
    let mut r = Registry::new();
    r.register_sqlite_pool("default", &dir.path().join("a.db").to_string_lossy())
        .register_entity::<Long>();
    let err = r.validate().await.unwrap_err();
    assert!(
        matches!(&err, Error::Definition { entity, reason, .. }
            if entity == "Long" && reason.contains("change-log table name")),
        "{err:?}"
    );
}

#[derive(Embedded, Debug, Clone, PartialEq)]
struct Address {
    city: String,
    street: String,
}

#[derive(Entity, Debug)]
#[orm(table = "owners", log)]
struct Owner {
    id: u64,
    #[orm(unique = "Name")]
    name: String,
    #[orm(embedded, skip_log)]
    address: Address,
}

#[derive(Entity, Debug)]
#[orm(table = "pets", log)]
struct Pet {
    id: u64,
    name: String,
    owner: Ref<Owner>,
}

dialect_test!(
    upserts_embedded_skip_log_and_new_referenced_entities,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Owner>().register_entity::<Pet>();
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        let schema = engine.registry().table_schema::<Owner>().unwrap();
        let skipped: Vec<&str> = schema.skip_log_columns().map(|c| c.name.as_str()).collect();
        assert_eq!(skipped, ["address_city", "address_street"]);
        let owner = |name: &str, city: &str| Owner {
            id: 0,
            name: name.into(),
            address: Address {
                city: city.into(),
                street: "Main".into(),
            },
        };

        // A new referenced entity is inserted in the same transaction: both logged.
        let mut pet = Tracked::new(Pet {
            id: 0,
            name: "Rex".into(),
            owner: Ref::new(owner("ann", "Rome")),
        });
        engine.flush(&mut pet).await.unwrap();
        let owner_id = pet.owner.id();
        let h = engine.entity_log::<Pet>(pet.id, None).await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].changes, obj(json!({"name": "Rex", "owner": owner_id})));
        let h = engine.entity_log::<Owner>(owner_id, None).await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(
            h[0].changes,
            obj(json!({"name": "ann"})),
            "embedded columns skipped"
        );

        // Only embedded skip_log columns change: nothing logged.
        let mut o = engine.find::<Owner>(owner_id).await.unwrap();
        o.address.city = "Oslo".into();
        engine.flush(&mut o).await.unwrap();
        assert_eq!(
            engine
                .entity_log::<Owner>(owner_id, None)
                .await
                .unwrap()
                .len(),
            1
        );

        // An upsert logs the row as the database holds it afterwards.
        let mut dup = Tracked::new(owner("ann", "Paris"));
        dup.on_duplicate_key_update([("address_city", "Paris")]);
        engine.flush(&mut dup).await.unwrap();
        assert_eq!(dup.id, owner_id);
        let h = engine.entity_log::<Owner>(owner_id, None).await.unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].before, None);
        assert_eq!(h[0].changes, obj(json!({"name": "ann"})));
        db.drop().await;
    }
);

/// The environment variable that makes `durability_child` run (as a child process).
const CHILD_ENV: &str = "BEEORM_CHANGE_LOG_CHILD";

dialect_test!(
    a_process_killed_right_after_its_flush_keeps_the_log_row,
    |db: TestDb| async move {
        let (engine, _) = engine(&db).await;
        let kind = match db.kind {
            Kind::MySql => "mysql",
            Kind::Postgres => "postgres",
            Kind::Sqlite => "sqlite",
        };
        let exe = std::env::current_exe().unwrap();
        let mut child = tokio::process::Command::new(exe)
            .args([
                "durability_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, format!("{kind} {}", db.location))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut id = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("FLUSHED ").nth(1) {
                id = Some(rest.trim().parse::<u64>().unwrap());
                break;
            }
        }
        // SIGKILL as soon as the flush returned: no destructor, no clean shutdown.
        child.kill().await.unwrap();
        let status = child.wait().await.unwrap();
        assert!(!status.success());
        let id = id.expect("the child flushed");
        let h = history(&engine, id).await;
        assert_eq!(h.len(), 1, "the log row of the committed insert is there");
        assert_eq!(h[0].meta, obj(json!({"child": true})));
        db.drop().await;
    }
);

/// Runs only as the child process of the test above: flushes one logged insert,
/// says so, and waits to be killed.
#[tokio::test]
#[ignore = "the child process of a_process_killed_right_after_its_flush_keeps_the_log_row"]
async fn durability_child() {
    let Ok(config) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (kind, location) = config.split_once(' ').unwrap();
    let mut r = Registry::new();
    match kind {
        "mysql" => r.register_mysql_pool("default", location),
        "postgres" => r.register_postgres_pool("default", location),
        _ => r.register_sqlite_pool("default", location),
    };
    r.register_entity::<Account>();
    let engine = r.validate().await.unwrap().create_engine();
    let mut a = account("child");
    engine
        .flusher()
        .set_log_meta("child", true)
        .track(&mut a)
        .flush()
        .await
        .unwrap();
    use std::io::Write;
    let mut out = std::io::stdout();
    writeln!(out, "FLUSHED {}", a.id).unwrap();
    out.flush().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
}
