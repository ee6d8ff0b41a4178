//! Dirty tracking (C2, issue 10 item 5): a flush writes a column whenever its value
//! differs from the one loaded, compared exactly — never through a hash of it.
#![allow(clippy::unwrap_used)]

mod common;

use beeorm::prelude::*;
use common::{query, sync, TestDb};

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "scores")]
struct Score {
    id: u64,
    name: String,
    points: i64,
}

/// Two `i64` values whose 64-bit FxHash (of the `i128` the old tracking hashed) is the
/// same: with `K` FxHash's multiplier, `x + K⁻¹ (mod 2⁶⁴)` with the high word all ones
/// lands on the same state as `x` with the high word zero. Crafting one takes a
/// modular inverse, nothing more.
const BEFORE: i64 = 570_667_814_807_212_787;
const AFTER: i64 = i64::MIN;

async fn engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_entity::<Score>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

dialect_test!(
    a_change_to_a_value_with_the_same_hash_is_written,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut s = Tracked::new(Score {
            id: 0,
            name: "ann".into(),
            points: BEFORE,
        });
        engine.flush(&mut s).await.unwrap();
        let mut loaded = engine.load_by_id::<Score>(s.id).await.unwrap().unwrap();
        loaded.points = AFTER;
        assert!(loaded.is_dirty(), "a changed value is a change");
        engine.flush(&mut loaded).await.unwrap();
        let row = &query(&engine, "SELECT points FROM scores").await[0];
        assert_eq!(row[0].as_i64(), Some(AFTER), "the UPDATE was sent");
        let again = engine.load_by_id::<Score>(s.id).await.unwrap().unwrap();
        assert_eq!(again.points, AFTER);
        db.drop().await;
    }
);

dialect_test!(
    only_changed_columns_are_dirty_and_a_change_back_is_clean,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut s = Tracked::new(Score {
            id: 0,
            name: "ann".into(),
            points: 1,
        });
        engine.flush(&mut s).await.unwrap();
        let mut loaded = engine.load_by_id::<Score>(s.id).await.unwrap().unwrap();
        assert!(!loaded.is_dirty(), "a loaded entity is clean");
        loaded.name = "bob".into();
        assert!(loaded.is_dirty());
        loaded.name = "ann".into();
        assert!(
            !loaded.is_dirty(),
            "back to the loaded value: nothing to write"
        );
        loaded.points = 2;
        engine.flush(&mut loaded).await.unwrap();
        assert!(!loaded.is_dirty(), "clean once written");
        // Another writer changes `name`; our update of `points` must not overwrite it.
        common::exec(&engine, "UPDATE scores SET name = 'carl'").await;
        loaded.points = 3;
        engine.flush(&mut loaded).await.unwrap();
        let row = &query(&engine, "SELECT name, points FROM scores").await[0];
        assert_eq!(
            (row[0].as_str(), row[1].as_i64()),
            (Some("carl"), Some(3)),
            "only the changed column is written"
        );
        db.drop().await;
    }
);
