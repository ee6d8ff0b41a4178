//! I1, I2: lifecycle hooks and the Persian normaliser, on every dialect.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use beeorm::hooks::{BoxFuture, EntityHooks, HookEvent};
use beeorm::prelude::*;
use beeorm::Error;
use common::{query, sync, TestDb};

#[derive(Embedded, Debug, Clone, PartialEq)]
struct Address {
    street: String,
    note: Option<String>,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "people")]
struct Person {
    id: u64,
    #[orm(length = 100)]
    name: String,
    bio: Option<String>,
    #[orm(embedded)]
    address: Address,
    /// An enum value: never rewritten.
    #[orm(enum = "sizes")]
    size: String,
    /// JSON: not free text.
    tags: Vec<String>,
}

#[derive(Entity, Debug, Clone)]
#[orm(table = "notes", hooks)]
struct Note {
    id: u64,
    title: String,
    revision: u32,
}

impl EntityHooks for Note {
    async fn before_insert(&mut self) -> beeorm::Result<()> {
        self.title = format!("own:{}", self.title);
        Ok(())
    }
    async fn before_update(&mut self) -> beeorm::Result<()> {
        self.revision += 1;
        Ok(())
    }
}

const ARABIC: &str = "علي كريمي";
const PERSIAN: &str = "علی کریمی";

fn person(name: &str) -> Tracked<Person> {
    Tracked::new(Person {
        id: 0,
        name: name.into(),
        bio: Some(format!("{name} موسى")),
        address: Address {
            street: "خيابان ك".into(),
            note: Some("ي".into()),
        },
        size: "كبير".into(),
        tags: vec!["ك".into()],
    })
}

async fn persian_engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_enum_list("sizes", &["كبير", "small"])
        .register_entity::<Person>()
        .register_entity::<Note>()
        .enable_persian_normalizer();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

dialect_test!(
    persian_text_is_stored_normalised_and_found_either_way,
    |db: TestDb| async move {
        let engine = persian_engine(&db).await;
        let mut p = person(ARABIC);
        engine.flush(&mut p).await.unwrap();
        assert_eq!(p.name, PERSIAN, "the entity itself is rewritten");
        let row = &query(
            &engine,
            "SELECT name, bio, address_street, address_note, size, tags FROM people",
        )
        .await[0];
        assert_eq!(
            row[0].as_str(),
            Some(PERSIAN),
            "stored with Persian letters"
        );
        assert_eq!(row[1].as_str(), Some("علی کریمی موسی"));
        assert_eq!(row[2].as_str(), Some("خیابان ک"), "embedded strings too");
        assert_eq!(row[3].as_str(), Some("ی"), "optional embedded strings too");
        assert_eq!(row[4].as_str(), Some("كبير"), "enum values are left alone");
        let tags = match &row[5] {
            Value::Json(j) => j.to_string(),
            other => other.as_str().unwrap_or_default().to_string(),
        };
        assert!(tags.contains('ك'), "JSON is left alone: {tags}");

        // An update is normalised too.
        p.name = "كاظم".into();
        engine.flush(&mut p).await.unwrap();
        assert_eq!(
            query(&engine, "SELECT name FROM people").await[0][0].as_str(),
            Some("کاظم")
        );

        // Searches and queries typed with Arabic letters find the Persian row.
        let found = engine
            .search_one::<Person>(&Where::new("`name` = ?", "كاظم"))
            .await
            .unwrap();
        assert_eq!(found.map(|f| f.id), Some(p.id));
        let mut q = QueryBuilder::<Person>::new();
        q.table("people").where_(("name", "كاظم"));
        assert_eq!(q.get(&engine).await.unwrap().id, p.id);
        db.drop().await;
    }
);

dialect_test!(
    a_vetoing_hook_leaves_the_database_untouched,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_enum_list("sizes", &["كبير"])
            .register_entity::<Person>()
            .register_entity::<Note>();
        r.register_global_hook(&[HookEvent::BeforeInsert], |_, e| {
            let mut bad = false;
            e.visit_strings(&mut |s| bad |= s.contains("forbidden"));
            if bad {
                return Err(Error::Hook(format!("{} refused", e.entity_name())));
            }
            Ok(())
        });
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        let mut ok = person("fine");
        let mut bad = person("forbidden");
        let mut note = Tracked::new(Note {
            id: 0,
            title: "x".into(),
            revision: 0,
        });
        let err = engine
            .flusher()
            .track(&mut ok)
            .track(&mut note)
            .track(&mut bad)
            .flush()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Hook(m) if m.contains("Person refused")),
            "{err:?}"
        );
        assert_eq!(
            query(&engine, "SELECT COUNT(*) FROM people").await[0][0].as_i64(),
            Some(0)
        );
        assert_eq!(
            query(&engine, "SELECT COUNT(*) FROM notes").await[0][0].as_i64(),
            Some(0)
        );
        assert!(ok.is_new() && note.is_new());
        db.drop().await;
    }
);

fn slow_stamp<'a>(_: HookEvent, n: &'a mut Note) -> BoxFuture<'a, beeorm::Result<()>> {
    Box::pin(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        n.title.push_str(":async");
        Ok(())
    })
}

dialect_test!(
    hooks_run_once_per_entity_in_order_with_ids_after,
    |db: TestDb| async move {
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let counts: Arc<[AtomicUsize; 6]> = Arc::new(Default::default());
        let mut r = db.registry();
        r.register_enum_list("sizes", &["كبير"])
            .register_entity::<Person>()
            .register_entity::<Note>();
        let c = counts.clone();
        let l = log.clone();
        r.register_global_hook(
            &[
                HookEvent::BeforeInsert,
                HookEvent::AfterInsert,
                HookEvent::BeforeUpdate,
                HookEvent::AfterUpdate,
                HookEvent::BeforeDelete,
                HookEvent::AfterDelete,
            ],
            move |event, e| {
                let i = match event {
                    HookEvent::BeforeInsert => 0,
                    HookEvent::AfterInsert => 1,
                    HookEvent::BeforeUpdate => 2,
                    HookEvent::AfterUpdate => 3,
                    HookEvent::BeforeDelete => 4,
                    _ => 5,
                };
                c[i].fetch_add(1, Ordering::SeqCst);
                if event == HookEvent::AfterInsert {
                    l.lock().unwrap().push(format!(
                        "after {} id>0={}",
                        e.entity_name(),
                        e.id() > 0
                    ));
                }
                Ok(())
            },
        );
        r.register_hook::<Note>(&[HookEvent::BeforeInsert], |_, n| {
            n.title.push_str(":first");
            Ok(())
        });
        r.register_async_hook::<Note>(&[HookEvent::BeforeInsert], slow_stamp);
        r.register_hook::<Note>(&[HookEvent::BeforeInsert], |_, n| {
            n.title.push_str(":third");
            Ok(())
        });
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;

        let mut people: Vec<Tracked<Person>> = (0..3).map(|i| person(&format!("p{i}"))).collect();
        let mut note = Tracked::new(Note {
            id: 0,
            title: "n".into(),
            revision: 0,
        });
        let mut f = engine.flusher();
        for p in people.iter_mut() {
            f.track(p);
        }
        f.track(&mut note);
        f.flush_in_transaction().await.unwrap();
        let n = |i: usize| counts[i].load(Ordering::SeqCst);
        assert_eq!((n(0), n(1)), (4, 4), "once per entity, before and after");
        assert!(
            log.lock().unwrap().iter().all(|l| l.ends_with("id>0=true")),
            "{:?}",
            log.lock().unwrap()
        );
        // The entity's own hook first, then registered hooks in registration order.
        assert_eq!(note.title, "own:n:first:async:third");
        assert_eq!(
            query(&engine, "SELECT title FROM notes").await[0][0].as_str(),
            Some("own:n:first:async:third")
        );

        // Update: the own before_update bumps `revision`, which is written too.
        note.title = "changed".into();
        engine.flush(&mut note).await.unwrap();
        assert_eq!((n(2), n(3)), (1, 1));
        let row = &query(&engine, "SELECT title, revision FROM notes").await[0];
        assert_eq!(
            (row[0].as_str(), row[1].as_i64()),
            (Some("changed"), Some(1))
        );
        // Unchanged entities run no hooks.
        engine.flush(&mut note).await.unwrap();
        assert_eq!(n(2), 1);

        // Upserts run insert hooks.
        let mut again = Tracked::new(Note {
            id: note.id,
            title: "up".into(),
            revision: 0,
        });
        again.on_duplicate_key_update([("title", "upserted")]);
        engine.flush(&mut again).await.unwrap();
        assert_eq!(n(0), 5);

        engine.delete(&mut people[0]).await.unwrap();
        assert_eq!((n(4), n(5)), (1, 1));
        db.drop().await;
    }
);

#[derive(Entity, Debug, Clone)]
#[orm(table = "authors")]
struct Author {
    id: u64,
    name: String,
}

#[derive(Entity, Debug, Clone)]
#[orm(table = "books")]
struct Book {
    id: u64,
    title: String,
    author: Ref<Author>,
}

dialect_test!(
    new_referenced_entities_run_hooks_and_get_normalised,
    |db: TestDb| async move {
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut r = db.registry();
        r.register_entity::<Author>()
            .register_entity::<Book>()
            .enable_persian_normalizer();
        let l = log.clone();
        r.register_global_hook(
            &[HookEvent::BeforeInsert, HookEvent::AfterInsert],
            move |event, e| {
                l.lock().unwrap().push(format!(
                    "{event:?} {} id>0={}",
                    e.entity_name(),
                    e.id() > 0
                ));
                Ok(())
            },
        );
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;

        // The author is inserted through `Ref::new`, never tracked itself.
        let mut book = Tracked::new(Book {
            id: 0,
            title: ARABIC.into(),
            author: Ref::new(Author {
                id: 0,
                name: ARABIC.into(),
            }),
        });
        engine.flush(&mut book).await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            vec![
                "BeforeInsert Book id>0=false",
                "BeforeInsert Author id>0=false",
                "AfterInsert Author id>0=true",
                "AfterInsert Book id>0=true",
            ],
            "once each, the referenced entity's after-hook when its row is written"
        );
        let names = query(&engine, "SELECT name FROM authors").await;
        assert_eq!(
            names[0][0].as_str(),
            Some(PERSIAN),
            "the nested entity was normalised"
        );
        assert_eq!(book.author.get().unwrap().name, PERSIAN);
        let titles = query(&engine, "SELECT title FROM books").await;
        assert_eq!(titles[0][0].as_str(), Some(PERSIAN));
        db.drop().await;
    }
);
