//! D4: a preload costs one query per level (per referenced table), however many
//! rows: 100 students, three levels of references (class → school → city), counted
//! through the instrumentation hook.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use beeorm::prelude::*;
use common::{sync, Kind, StatementCounter, TestDb};

#[derive(Entity)]
#[orm(table = "cities")]
struct City {
    id: u64,
    name: String,
}

#[derive(Entity)]
#[orm(table = "schools")]
struct School {
    id: u64,
    city: Ref<City>,
}

#[derive(Entity)]
#[orm(table = "classes")]
struct Class {
    id: u64,
    school: Ref<School>,
}

#[derive(Entity)]
#[orm(table = "students")]
struct Student {
    id: u64,
    name: String,
    class: Ref<Class>,
}

async fn scenario(kind: Kind) {
    let db = TestDb::new(kind, &format!("preload_stmts_{kind:?}").to_lowercase()).await;
    let mut r = db.registry();
    let capture = StatementCounter::register(&mut r);
    r.register_entity::<City>()
        .register_entity::<School>()
        .register_entity::<Class>()
        .register_entity::<Student>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    // 100 students in 10 classes of 5 schools in 5 cities, written in one flush.
    let mut students: Vec<Tracked<Student>> = Vec::new();
    for c in 0..10u64 {
        let class = Class {
            id: 0,
            school: Ref::new(School {
                id: 0,
                city: Ref::new(City {
                    id: 0,
                    name: format!("city{c}"),
                }),
            }),
        };
        let mut first = Tracked::new(Student {
            id: 0,
            name: format!("s{c}_0"),
            class: Ref::new(class),
        });
        engine.flush(&mut first).await.unwrap();
        let class_id = first.class.id();
        students.push(first);
        for i in 1..10 {
            students.push(Tracked::new(Student {
                id: 0,
                name: format!("s{c}_{i}"),
                class: Ref::from_id(class_id),
            }));
        }
    }
    let mut f = engine.flusher();
    for s in students.iter_mut() {
        f.track(s);
    }
    f.flush().await.unwrap();
    capture.take();

    let rows = engine
        .preload(&["class/school/city"])
        .search::<Student>(&Where::all(), Pager::new(1, 100))
        .await
        .unwrap();
    let sent = capture.take();
    assert_eq!(rows.len(), 100);
    for s in &rows {
        let city = &s.class.get().unwrap().school.get().unwrap().city;
        assert!(city.get().unwrap().name.starts_with("city"));
    }
    // One search, then one query per level: classes, schools, cities.
    assert_eq!(sent.len(), 1 + 3, "{kind:?}: {sent:#?}");
    assert_eq!(
        sent.iter().skip(1).count(),
        3,
        "three levels, three queries"
    );
    db.drop().await;
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn three_level_preload_of_100_rows_costs_one_query_per_level_mysql() {
    scenario(Kind::MySql).await;
}

#[tokio::test]
async fn three_level_preload_of_100_rows_costs_one_query_per_level_sqlite() {
    scenario(Kind::Sqlite).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn three_level_preload_of_100_rows_costs_one_query_per_level_postgres() {
    scenario(Kind::Postgres).await;
}
