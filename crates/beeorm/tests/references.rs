//! D3/D4: references (one-to-one with foreign keys, one-to-many as JSON), new
//! referenced entities inserted first, typed foreign-key errors, self and mutual
//! references, and preloading paths, on MySQL, PostgreSQL and SQLite.
#![allow(clippy::unwrap_used, dead_code)]

#[macro_use]
mod common;

use beeorm::prelude::*;
use common::{sync, TestDb};

#[derive(Entity, Debug)]
#[orm(table = "cities")]
struct City {
    id: u32,
    name: String,
}

#[derive(Entity, Debug)]
#[orm(table = "schools")]
struct School {
    id: u64,
    name: String,
    city: Option<Ref<City>>,
}

#[derive(Entity, Debug)]
#[orm(table = "students")]
struct Student {
    id: u64,
    name: String,
    school: Ref<School>,
    #[orm(cascade)]
    club: Option<Ref<Club>>,
    #[orm(skip_fk)]
    mentor: Option<Ref<City>>,
    friends: Vec<Ref<Student>>,
}

#[derive(Entity, Debug)]
#[orm(table = "clubs")]
struct Club {
    id: u64,
    name: String,
}

/// Self-reference.
#[derive(Entity, Debug)]
#[orm(table = "categories")]
struct Category {
    id: u64,
    name: String,
    parent: Option<Ref<Category>>,
}

/// Mutual references A → B → A.
#[derive(Entity, Debug)]
#[orm(table = "a_side")]
struct ASide {
    id: u64,
    b: Option<Ref<BSide>>,
}

#[derive(Entity, Debug)]
#[orm(table = "b_side")]
struct BSide {
    id: u64,
    a: Option<Ref<ASide>>,
}

async fn engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_entity::<City>()
        .register_entity::<School>()
        .register_entity::<Student>()
        .register_entity::<Club>()
        .register_entity::<Category>()
        .register_entity::<ASide>()
        .register_entity::<BSide>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

fn student(name: &str, school: Ref<School>) -> Tracked<Student> {
    Tracked::new(Student {
        id: 0,
        name: name.into(),
        school,
        club: None,
        mentor: None,
        friends: Vec::new(),
    })
}

dialect_test!(
    schema_has_fk_index_and_syncs_clean,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let schema = engine.registry().table_schema::<Student>().unwrap();
        let fks: Vec<(&str, &str, &str)> = schema
            .foreign_keys()
            .iter()
            .map(|f| (f.column.as_str(), f.ref_table.as_str(), f.on_delete()))
            .collect();
        assert_eq!(
            fks,
            [
                ("school", "schools", "RESTRICT"),
                ("club", "clubs", "CASCADE")
            ]
        );
        assert!(schema.indexes().iter().any(|i| i.columns == ["school"]));
        assert!(schema.indexes().iter().any(|i| i.columns == ["mentor"]));
        // `sync` already checked that a second run has nothing to do.
        assert!(engine.alters().await.unwrap().is_empty());
        db.drop().await;
    }
);

dialect_test!(
    new_referenced_entities_are_inserted_first,
    |db: TestDb| async move {
        let engine = engine(&db).await;
        let city = Ref::new(City {
            id: 0,
            name: "Rome".into(),
        });
        let school = Ref::new(School {
            id: 0,
            name: "North".into(),
            city: Some(city),
        });
        let mut ann = student("Ann", school);
        engine.flush(&mut ann).await.unwrap();
        assert!(ann.id > 0);
        assert!(ann.school.id() > 0 && ann.school.is_loaded() && !ann.school.is_new());
        let school = ann.school.get().unwrap();
        assert_eq!(school.name, "North");
        let city_id = school.city.as_ref().unwrap().id();
        assert!(city_id > 0);
        let mut back = engine.find::<Student>(ann.id).await.unwrap();
        assert_eq!(back.school.id(), ann.school.id());
        assert!(!back.school.is_loaded());
        assert_eq!(back.school.load(&engine).await.unwrap().name, "North");
        assert!(!back.is_dirty());

        // A failing flush rolls the referenced insert back too, and the entity is new again.
        let mut bad = student(
            "Bad",
            Ref::new(School {
                id: 0,
                name: "Ghost".into(),
                city: Some(Ref::from_id(999_999)),
            }),
        );
        let err = engine.flush(&mut bad).await.unwrap_err();
        assert!(matches!(err, Error::ForeignKey { .. }), "{err:?}");
        assert!(bad.school.is_new() && bad.school.id() == 0 && bad.id == 0);
        let n = engine
            .search::<School>(&Where::all(), Pager::new(1, 10))
            .await
            .unwrap()
            .len();
        assert_eq!(n, 1, "the school of the failed flush was rolled back");
        db.drop().await;
    }
);

dialect_test!(restrict_cascade_and_skip_fk, |db: TestDb| async move {
    let engine = engine(&db).await;
    let mut school = Tracked::new(School {
        id: 0,
        name: "S".into(),
        city: None,
    });
    let mut club = Tracked::new(Club {
        id: 0,
        name: "Chess".into(),
    });
    engine
        .flusher()
        .track(&mut school)
        .track(&mut club)
        .flush()
        .await
        .unwrap();
    let mut ann = student("Ann", Ref::from_id(school.id));
    ann.club = Some(Ref::from_id(club.id));
    ann.mentor = Some(Ref::from_id(424_242)); // skip_fk: no constraint
    engine.flush(&mut ann).await.unwrap();

    let err = engine.delete(&mut school).await.unwrap_err();
    assert!(matches!(err, Error::ForeignKey { .. }), "{err:?}");

    engine.delete(&mut club).await.unwrap();
    assert!(engine
        .load_by_id::<Student>(ann.id)
        .await
        .unwrap()
        .is_none());

    // A missing referenced row on insert: typed too.
    let mut orphan = student("O", Ref::from_id(777_777));
    let err = engine.flush(&mut orphan).await.unwrap_err();
    assert!(matches!(err, Error::ForeignKey { .. }), "{err:?}");
    db.drop().await;
});

dialect_test!(one_to_many_keeps_order, |db: TestDb| async move {
    let engine = engine(&db).await;
    let mut school = Tracked::new(School {
        id: 0,
        name: "S".into(),
        city: None,
    });
    engine.flush(&mut school).await.unwrap();
    let mut friends = Vec::new();
    for n in ["a", "b", "c"] {
        let mut s = student(n, Ref::from_id(school.id));
        engine.flush(&mut s).await.unwrap();
        friends.push(s);
    }
    let mut ann = student("Ann", Ref::from_id(school.id));
    ann.friends = vec![
        Ref::from_id(friends[2].id),
        Ref::from_id(friends[0].id),
        Ref::from_id(friends[1].id),
    ];
    engine.flush(&mut ann).await.unwrap();
    let back = engine
        .preload(&["friends"])
        .find::<Student>(ann.id)
        .await
        .unwrap();
    let names: Vec<&str> = back
        .friends
        .iter()
        .map(|f| f.get().unwrap().name.as_str())
        .collect();
    assert_eq!(names, ["c", "a", "b"]);
    db.drop().await;
});

dialect_test!(preload_paths, |db: TestDb| async move {
    let engine = engine(&db).await;
    let mut city = Tracked::new(City {
        id: 0,
        name: "Rome".into(),
    });
    engine.flush(&mut city).await.unwrap();
    let mut school = Tracked::new(School {
        id: 0,
        name: "S".into(),
        city: Some(Ref::from_id(u64::from(city.id))),
    });
    engine.flush(&mut school).await.unwrap();
    let mut ann = student("Ann", Ref::from_id(school.id));
    engine.flush(&mut ann).await.unwrap();

    let p = engine.preload(&["school"]);
    let s = p.load_by_id::<Student>(ann.id).await.unwrap().unwrap();
    let sch = s.school.get().unwrap();
    assert_eq!(sch.name, "S");
    assert!(!sch.city.as_ref().unwrap().is_loaded());

    for paths in [
        &["school/city"][..],
        &["*/*"],
        &["school/*"],
        &["*", "school/city"],
    ] {
        let rows = engine
            .preload(paths)
            .search::<Student>(&Where::all(), Pager::new(1, 10))
            .await
            .unwrap();
        let city = rows[0].school.get().unwrap().city.as_ref().unwrap();
        assert_eq!(city.get().unwrap().name, "Rome", "{paths:?}");
    }
    let (rows, total) = engine
        .preload(&["*"])
        .search_with_count::<Student>(&Where::all(), Pager::new(1, 10))
        .await
        .unwrap();
    assert_eq!((rows.len(), total), (1, 1));
    assert!(rows[0].school.is_loaded());
    let one = engine
        .preload(&["school"])
        .search_one::<Student>(&Where::all())
        .await
        .unwrap()
        .unwrap();
    assert!(one.school.is_loaded());
    let (rows, _) = engine
        .preload(&["school/city"])
        .load_by_ids::<Student>(&[ann.id])
        .await
        .unwrap();
    assert!(rows[0]
        .school
        .get()
        .unwrap()
        .city
        .as_ref()
        .unwrap()
        .is_loaded());

    let err = engine
        .preload(&["school/town"])
        .load_by_id::<Student>(ann.id)
        .await
        .unwrap_err();
    match err {
        Error::UnknownReference {
            path,
            entity,
            field,
        } => {
            assert_eq!(
                (path.as_str(), entity.as_str(), field.as_str()),
                ("school/town", "School", "town")
            );
        }
        other => panic!("{other:?}"),
    }
    let err = engine
        .preload(&["name"])
        .all::<Student>()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownReference { .. }), "{err:?}");
    db.drop().await;
});

dialect_test!(self_and_mutual_references, |db: TestDb| async move {
    let engine = engine(&db).await;
    let mut child = Tracked::new(Category {
        id: 0,
        name: "child".into(),
        parent: Some(Ref::new(Category {
            id: 0,
            name: "parent".into(),
            parent: Some(Ref::new(Category {
                id: 0,
                name: "root".into(),
                parent: None,
            })),
        })),
    });
    engine.flush(&mut child).await.unwrap();
    let back = engine
        .preload(&["parent/parent"])
        .find::<Category>(child.id)
        .await
        .unwrap();
    let parent = back.parent.as_ref().unwrap().get().unwrap();
    assert_eq!(parent.name, "parent");
    assert_eq!(parent.parent.as_ref().unwrap().get().unwrap().name, "root");

    let mut a = Tracked::new(ASide {
        id: 0,
        b: Some(Ref::new(BSide { id: 0, a: None })),
    });
    engine.flush(&mut a).await.unwrap();
    let b_id = a.b.as_ref().unwrap().id();
    let mut b = engine.find::<BSide>(b_id).await.unwrap();
    b.a = Some(Ref::from_id(a.id));
    engine.flush(&mut b).await.unwrap();
    let a2 = engine.preload(&["b/a"]).find::<ASide>(a.id).await.unwrap();
    let b2 = a2.b.as_ref().unwrap().get().unwrap();
    assert_eq!(b2.a.as_ref().unwrap().get().unwrap().id, a.id);
    db.drop().await;
});

/// The same tables before a schema change: `owners` has a column more.
mod before {
    use beeorm::prelude::*;

    #[derive(Entity, Debug)]
    #[orm(table = "owners")]
    pub struct Owner {
        pub id: u64,
        pub name: String,
        pub note: String,
    }

    #[derive(Entity, Debug)]
    #[orm(table = "pets")]
    pub struct Pet {
        pub id: u64,
        pub name: String,
        #[orm(cascade)]
        pub owner: Ref<Owner>,
        #[orm(skip_fk)]
        pub vet: Option<Ref<Owner>>,
    }
}

#[derive(Entity, Debug)]
#[orm(table = "owners")]
struct Owner {
    id: u64,
    name: String,
}

#[derive(Entity, Debug)]
#[orm(table = "pets")]
struct Pet {
    id: u64,
    name: String,
    #[orm(cascade)]
    owner: Ref<Owner>,
    #[orm(skip_fk)]
    vet: Option<Ref<Owner>>,
}

/// `pets.vet` with a foreign key this time.
#[derive(Entity, Debug)]
#[orm(table = "pets")]
struct PetWithVetKey {
    id: u64,
    name: String,
    #[orm(cascade)]
    owner: Ref<Owner>,
    vet: Option<Ref<Owner>>,
}

dialect_test!(
    changing_a_referenced_table_keeps_the_rows_that_reference_it,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<before::Owner>()
            .register_entity::<before::Pet>();
        let old = r.validate().await.unwrap().create_engine();
        sync(&old).await;
        let mut owner = Tracked::new(before::Owner {
            id: 0,
            name: "Ann".into(),
            note: "dropped".into(),
        });
        old.flush(&mut owner).await.unwrap();
        for name in ["Rex", "Tom"] {
            let mut pet = Tracked::new(before::Pet {
                id: 0,
                name: name.into(),
                owner: Ref::from_id(owner.id),
                vet: None,
            });
            old.flush(&mut pet).await.unwrap();
        }

        // Dropping `owners.note`: SQLite rebuilds `owners` (new table, copy, drop,
        // rename), which with foreign keys on would cascade-delete every pet.
        let mut r = db.registry();
        r.register_entity::<Owner>().register_entity::<Pet>();
        let new = r.validate().await.unwrap().create_engine();
        let alters = new.alters().await.unwrap();
        assert_eq!(alters.len(), 1, "{alters:#?}");
        if db.kind == common::Kind::Sqlite {
            assert!(
                alters[0].sql.contains("PRAGMA foreign_keys = OFF"),
                "{}",
                alters[0].sql
            );
        }
        sync(&new).await;
        let pets = new
            .search::<Pet>(&Where::all(), Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(
            pets.len(),
            2,
            "the pets survived the change of their owners' table"
        );
        assert!(pets.iter().all(|p| p.owner.id() == owner.id));
        let back = new.load_by_id::<Owner>(owner.id).await.unwrap().unwrap();
        assert_eq!(back.name, "Ann");

        // The foreign keys still hold after the rebuild: deleting the owner cascades.
        let mut back = back;
        new.delete(&mut back).await.unwrap();
        let pets = new
            .search::<Pet>(&Where::all(), Pager::new(1, 10))
            .await
            .unwrap();
        assert!(
            pets.is_empty(),
            "ON DELETE CASCADE still works after the rebuild"
        );
        db.drop().await;
    }
);

dialect_test!(
    a_foreign_key_over_dangling_references_is_refused_and_changes_nothing,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Owner>().register_entity::<Pet>();
        let old = r.validate().await.unwrap().create_engine();
        sync(&old).await;
        let mut owner = Tracked::new(Owner {
            id: 0,
            name: "Ann".into(),
        });
        old.flush(&mut owner).await.unwrap();
        let mut pet = Tracked::new(Pet {
            id: 0,
            name: "Rex".into(),
            owner: Ref::from_id(owner.id),
            vet: Some(Ref::from_id(424_242)), // no such owner: allowed without a key
        });
        old.flush(&mut pet).await.unwrap();

        let mut r = db.registry();
        r.register_entity::<Owner>()
            .register_entity::<PetWithVetKey>();
        let new = r.validate().await.unwrap().create_engine();
        let alters = new.alters().await.unwrap();
        assert_eq!(alters.len(), 1, "{alters:#?}");
        let err = alters[0].exec(&new).await.unwrap_err();
        assert!(matches!(err, Error::ForeignKey { .. }), "{err:?}");

        // Nothing changed: the row is there and the old definition still matches.
        let back = old.load_by_id::<Pet>(pet.id).await.unwrap().unwrap();
        assert_eq!(back.vet.as_ref().map(Ref::id), Some(424_242));
        assert!(old.alters().await.unwrap().is_empty());
        // And foreign keys are on again: a dangling owner is refused.
        let mut orphan = Tracked::new(Pet {
            id: 0,
            name: "Tom".into(),
            owner: Ref::from_id(777_777),
            vet: None,
        });
        let err = old.flush(&mut orphan).await.unwrap_err();
        assert!(matches!(err, Error::ForeignKey { .. }), "{err:?}");
        db.drop().await;
    }
);
