//! Issue 10 items 4 and 7: one flush writes parents before children and deletes
//! children before parents (by the foreign keys, not by table name), and a server-given
//! ID the entity's `id` cannot hold is refused with nothing committed — on MySQL,
//! PostgreSQL and SQLite.
#![allow(clippy::unwrap_used, dead_code)]

#[macro_use]
mod common;

use beeorm::prelude::*;
use common::{sync, TestDb};

// Table names sort the wrong way round on purpose: children before parents.
#[derive(Entity, Debug)]
#[orm(table = "album")]
struct Album {
    id: u64,
    title: String,
    artist: Ref<Artist>,
}

#[derive(Entity, Debug)]
#[orm(table = "artist")]
struct Artist {
    id: u64,
    name: String,
}

#[derive(Entity, Debug)]
#[orm(table = "a_line")]
struct Line {
    id: u64,
    invoice: Ref<Invoice>,
    qty: u32,
}

#[derive(Entity, Debug)]
#[orm(table = "b_invoice")]
struct Invoice {
    id: u64,
    customer: Ref<Customer>,
}

#[derive(Entity, Debug)]
#[orm(table = "c_customer")]
struct Customer {
    id: u64,
    name: String,
    /// A self-reference does not change the order between tables.
    referred_by: Option<Ref<Customer>>,
}

/// An `id` narrower than what the server can number.
#[derive(Entity, Debug)]
#[orm(table = "tiny")]
struct Tiny {
    id: u8,
    name: String,
}

async fn engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_entity::<Album>()
        .register_entity::<Artist>()
        .register_entity::<Line>()
        .register_entity::<Invoice>()
        .register_entity::<Customer>()
        .register_entity::<Tiny>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

async fn count(engine: &Engine, table: &str) -> i64 {
    let rows = common::query(engine, &format!("SELECT COUNT(*) FROM {table}")).await;
    rows[0][0].as_i64().unwrap()
}

dialect_test!(
    parents_are_inserted_first_and_children_deleted_first,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        // Both new, explicit IDs, tracked child first: one flush, one transaction.
        let mut album = Tracked::new(Album {
            id: 10,
            title: "Let There Be Rock".into(),
            artist: Ref::from_id(1),
        });
        let mut artist = Tracked::new(Artist {
            id: 1,
            name: "AC/DC".into(),
        });
        engine
            .flusher()
            .track(&mut album)
            .track(&mut artist)
            .flush()
            .await
            .unwrap();
        assert_eq!(count(&engine, "album").await, 1);
        assert_eq!(count(&engine, "artist").await, 1);

        // Three levels, tracked in the worst order.
        let mut lines: Vec<Tracked<Line>> = (1..=3)
            .map(|i| {
                Tracked::new(Line {
                    id: i,
                    invoice: Ref::from_id(100),
                    qty: i as u32,
                })
            })
            .collect();
        let mut invoice = Tracked::new(Invoice {
            id: 100,
            customer: Ref::from_id(7),
        });
        let mut referrer = Tracked::new(Customer {
            id: 6,
            name: "Ann".into(),
            referred_by: None,
        });
        let mut customer = Tracked::new(Customer {
            id: 7,
            name: "Bob".into(),
            referred_by: Some(Ref::from_id(6)),
        });
        {
            let mut f = engine.flusher();
            for l in lines.iter_mut() {
                f.track(l);
            }
            f.track(&mut invoice)
                .track(&mut referrer)
                .track(&mut customer)
                .flush()
                .await
                .unwrap();
        }
        assert_eq!(count(&engine, "a_line").await, 3);

        // Delete an invoice and its lines in one flush, parent tracked first.
        {
            let mut f = engine.flusher();
            f.delete(&mut invoice);
            for l in lines.iter_mut() {
                f.delete(l);
            }
            f.delete(&mut album).delete(&mut artist);
            f.flush().await.unwrap();
        }
        assert_eq!(count(&engine, "a_line").await, 0);
        assert_eq!(count(&engine, "b_invoice").await, 0);
        assert_eq!(count(&engine, "album").await, 0);
        assert_eq!(count(&engine, "artist").await, 0);
        assert_eq!(count(&engine, "c_customer").await, 2);
        db.drop().await;
    }
);

dialect_test!(
    an_id_the_entity_cannot_hold_is_refused_with_nothing_committed,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let mut last = Tracked::new(Tiny {
            id: 255,
            name: "last".into(),
        });
        engine.flush(&mut last).await.unwrap();
        // The server numbers the next row 256 (or refuses to): either way an error,
        // no row added, and a retry adds none either.
        for attempt in 0..3 {
            let mut next = Tracked::new(Tiny {
                id: 0,
                name: format!("next {attempt}"),
            });
            let err = engine.flush(&mut next).await.unwrap_err();
            assert!(next.is_new(), "{err}");
            assert_eq!(count(&engine, "tiny").await, 1, "attempt {attempt}: {err}");
        }
        // Inside flush_in_transaction too.
        let mut next = Tracked::new(Tiny {
            id: 0,
            name: "in tx".into(),
        });
        engine
            .flusher()
            .track(&mut next)
            .flush_in_transaction()
            .await
            .unwrap_err();
        assert_eq!(count(&engine, "tiny").await, 1);
        db.drop().await;
    }
);
