//! Upserts (`Tracked::on_duplicate_key_update`, issue 10 items 14 and 15): a clash on
//! any unique index — or on the primary key of an explicit ID — takes the existing
//! row, the same on every dialect; the text they write is normalised like any other.
#![allow(clippy::unwrap_used)]

mod common;

use beeorm::prelude::*;
use beeorm::Error;
use common::{query, sync, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "accounts")]
struct Account {
    id: u64,
    #[orm(unique = "Email")]
    email: String,
    #[orm(unique = "Login")]
    login: String,
    #[orm(length = 100)]
    note: String,
    visits: u32,
}

fn account(email: &str, login: &str) -> Tracked<Account> {
    Tracked::new(Account {
        id: 0,
        email: email.into(),
        login: login.into(),
        note: String::new(),
        visits: 0,
    })
}

async fn engine(db: &TestDb, persian: bool) -> Engine {
    let mut r = db.registry();
    r.register_entity::<Account>();
    if persian {
        r.enable_persian_normalizer();
    }
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

async fn count(engine: &Engine) -> i64 {
    query(engine, "SELECT COUNT(*) FROM accounts").await[0][0]
        .as_i64()
        .unwrap()
}

dialect_test!(
    a_clash_on_any_unique_index_takes_the_existing_row,
    |db: TestDb| async move {
        let engine = engine(&db, false).await;
        let mut ann = account("ann@x", "ann");
        let mut bob = account("bob@x", "bob");
        engine
            .flusher()
            .track(&mut ann)
            .track(&mut bob)
            .flush()
            .await
            .unwrap();

        // Clash on the first unique index (`Email`).
        let mut first = account("ann@x", "someone");
        first.on_duplicate_key_update([("visits", 1)]);
        engine.flush(&mut first).await.unwrap();
        assert_eq!(first.id, ann.id);
        assert_eq!((first.login.as_str(), first.visits), ("ann", 1));

        // Clash on the second one (`Login`) only.
        let mut second = account("new@x", "bob");
        second.on_duplicate_key_update([("visits", 5)]);
        engine.flush(&mut second).await.unwrap();
        assert_eq!(second.id, bob.id, "the entity takes the existing row's ID");
        assert_eq!(second.email, "bob@x", "and its values");
        assert_eq!(second.visits, 5);
        assert!(!second.is_dirty());

        // Second index, nothing to set: the existing row as it is.
        let mut same = account("other@x", "bob");
        same.on_duplicate_key_update(Vec::<(String, Value)>::new());
        engine.flush(&mut same).await.unwrap();
        assert_eq!((same.id, same.visits), (bob.id, 5));

        // An explicit ID that exists, no unique clash: the row with that ID.
        let mut by_id = account("id@x", "by_id");
        by_id.id = ann.id;
        by_id.on_duplicate_key_update([("visits", 9)]);
        engine.flush(&mut by_id).await.unwrap();
        assert_eq!(
            (by_id.id, by_id.email.as_str(), by_id.visits),
            (ann.id, "ann@x", 9)
        );

        // No clash at all: a plain insert.
        let mut fresh = account("carl@x", "carl");
        fresh.on_duplicate_key_update([("visits", 3)]);
        engine.flush(&mut fresh).await.unwrap();
        assert!(fresh.id > bob.id);
        assert_eq!(fresh.visits, 0);
        assert_eq!(count(&engine).await, 3);
        db.drop().await;
    }
);

dialect_test!(
    an_upsert_in_a_transaction_rolls_back_with_it,
    |db: TestDb| async move {
        let engine = engine(&db, false).await;
        let mut ann = account("ann@x", "ann");
        let mut bob = account("bob@x", "bob");
        engine
            .flusher()
            .track(&mut ann)
            .track(&mut bob)
            .flush()
            .await
            .unwrap();
        // The upsert updates ann's row (a clash on `Login`), then bob's update breaks
        // `Email`: the whole flush is undone, the upsert's update too.
        let mut clash = account("x@x", "ann");
        clash.on_duplicate_key_update([("visits", 7)]);
        bob.email = "ann@x".into();
        let err = engine
            .flusher()
            .track(&mut clash)
            .track(&mut bob)
            .flush_in_transaction()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DuplicatedKey { .. }), "{err:?}");
        let rows = query(&engine, "SELECT visits FROM accounts ORDER BY id").await;
        assert_eq!(
            rows[0][0].as_i64(),
            Some(0),
            "the upsert's update is undone"
        );
        assert_eq!(count(&engine).await, 2);
        db.drop().await;
    }
);

const ARABIC: &str = "علي كريمي";
const PERSIAN: &str = "علی کریمی";

dialect_test!(
    upsert_values_are_normalised_like_every_written_text,
    |db: TestDb| async move {
        let engine = engine(&db, true).await;
        let mut ann = account("ann@x", "ann");
        engine.flush(&mut ann).await.unwrap();

        // The update list of an upsert that clashes.
        let mut clash = account("other@x", "ann");
        clash.on_duplicate_key_update([("note", ARABIC)]);
        engine.flush(&mut clash).await.unwrap();
        assert_eq!(clash.note, PERSIAN, "the entity reads the stored row");
        let found = engine
            .search_one::<Account>(&Where::new("`note` = ?", PERSIAN))
            .await
            .unwrap();
        assert_eq!(found.map(|a| a.id), Some(ann.id), "searches find it");

        // Every other way text is written: insert, upsert that inserts, update,
        // set_field, inside a caller's transaction.
        let mut inserted = account("i@x", ARABIC);
        engine.flush(&mut inserted).await.unwrap();
        let mut upserted = account("u@x", "u");
        upserted.note = ARABIC.into();
        upserted.on_duplicate_key_update([("note", ARABIC)]);
        engine.flush(&mut upserted).await.unwrap();
        ann.login = format!("{ARABIC} 2");
        engine.flush(&mut ann).await.unwrap();
        let mut set = engine.load_by_id::<Account>(ann.id).await.unwrap().unwrap();
        set.set_field("note", format!("{ARABIC} 3")).unwrap();
        engine.flush(&mut set).await.unwrap();
        let mut tx = engine.db("default").unwrap().begin().await.unwrap();
        let mut in_tx = account("t@x", "t");
        in_tx.note = ARABIC.into();
        engine
            .flusher()
            .track(&mut in_tx)
            .flush_in(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        for row in query(&engine, "SELECT email, login, note FROM accounts").await {
            for cell in row {
                let text = cell.as_str().unwrap_or_default().to_string();
                assert!(
                    !text.contains(['\u{064A}', '\u{0643}', '\u{0649}']),
                    "Arabic letters stored: {text}"
                );
            }
        }
        db.drop().await;
    }
);
