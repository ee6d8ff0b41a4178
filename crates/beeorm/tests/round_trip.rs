//! Every type of the type table survives insert → load unchanged, NULLs included.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::collections::{BTreeMap, HashMap};

use beeorm::prelude::*;
use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use common::{sync, TestDb};
use rust_decimal::Decimal;

#[derive(OrmEnum, Clone, Copy, Debug, PartialEq)]
enum Color {
    Red,
    Green,
    #[orm(rename = "light-blue")]
    Blue,
}

#[derive(Embedded, Debug, Clone, PartialEq)]
struct Address {
    street: String,
    building: u16,
    #[orm(embedded)]
    geo: Geo,
}

#[derive(Embedded, Debug, Clone, PartialEq)]
struct Geo {
    lat: f64,
    lon: Option<f64>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct Prefs {
    dark: bool,
    langs: Vec<String>,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "round_trip")]
struct Everything {
    id: u64,
    i8_: i8,
    u8_: u8,
    i16_: i16,
    u16_: u16,
    #[orm(year)]
    year: u16,
    i32_: i32,
    u32_: u32,
    #[orm(mediumint)]
    i24: i32,
    #[orm(mediumint)]
    u24: u32,
    i64_: i64,
    u64_: u64,
    int_null: Option<i64>,
    flag: bool,
    flag_null: Option<bool>,
    f32_: f32,
    f64_: f64,
    f64_null: Option<f64>,
    #[orm(decimal = "10,2")]
    dec_f64: f64,
    #[orm(decimal = "20,6")]
    dec: Decimal,
    dec_null: Option<String>,
    name: String,
    #[orm(length = "max")]
    long: String,
    name_null: Option<String>,
    #[orm(enum = "sizes")]
    size: String,
    color: Color,
    color_null: Option<Color>,
    colors: Vec<Color>,
    #[orm(set = "sizes")]
    sizes: Vec<String>,
    tags: Vec<String>,
    blob: Vec<u8>,
    #[orm(longblob)]
    blob_null: Option<Vec<u8>>,
    date: NaiveDate,
    date_null: Option<NaiveDate>,
    at: chrono::NaiveDateTime,
    at_utc: chrono::DateTime<Utc>,
    at_null: Option<chrono::NaiveDateTime>,
    clock: NaiveTime,
    json: serde_json::Value,
    map: HashMap<String, String>,
    btree: BTreeMap<String, i32>,
    #[orm(json)]
    prefs: Prefs,
    #[orm(json)]
    prefs_null: Option<Prefs>,
    #[orm(embedded)]
    address: Address,
    #[orm(ignore)]
    scratch: Vec<u8>,
}

fn full() -> Everything {
    Everything {
        id: 0,
        i8_: -128,
        u8_: 255,
        i16_: -32768,
        u16_: 65535,
        year: 2024,
        i32_: i32::MIN,
        u32_: u32::MAX,
        i24: -8_388_608,
        u24: 16_777_215,
        i64_: i64::MIN,
        u64_: u64::MAX,
        int_null: Some(-1),
        flag: true,
        flag_null: Some(false),
        f32_: 1.5,
        f64_: -1234.5678,
        f64_null: Some(0.25),
        dec_f64: 12345678.91,
        dec: "12345678901234.123456".parse().unwrap(),
        dec_null: Some("x".into()),
        name: "مرتضی — Grüße 🐝 'quoted' \"double\" \\ back".into(),
        long: "ی".repeat(20_000),
        name_null: Some(String::new()),
        size: "M".into(),
        color: Color::Blue,
        color_null: Some(Color::Red),
        colors: vec![Color::Red, Color::Blue],
        sizes: vec!["S".into(), "L".into()],
        tags: vec!["a".into(), "b,c".into(), "".into()],
        blob: vec![0, 1, 2, 255, 0xC3, 0x28],
        blob_null: Some(b"plain text bytes".to_vec()),
        date: NaiveDate::from_ymd_opt(1999, 12, 31).unwrap(),
        date_null: Some(NaiveDate::from_ymd_opt(2000, 2, 29).unwrap()),
        at: NaiveDate::from_ymd_opt(2024, 5, 6)
            .unwrap()
            .and_hms_opt(7, 8, 9)
            .unwrap(),
        at_utc: Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap(),
        at_null: Some(
            NaiveDate::from_ymd_opt(1970, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 1)
                .unwrap(),
        ),
        clock: NaiveTime::from_hms_opt(23, 59, 58).unwrap(),
        json: serde_json::json!({"a": [1, 2, {"b": null}], "c": "ك"}),
        map: HashMap::from([("k".to_string(), "v".to_string()), ("x".into(), "y".into())]),
        btree: BTreeMap::from([("one".to_string(), 1), ("two".into(), 2)]),
        prefs: Prefs {
            dark: true,
            langs: vec!["fa".into(), "en".into()],
        },
        prefs_null: Some(Prefs {
            dark: false,
            langs: vec![],
        }),
        address: Address {
            street: "خیابان ولیعصر".into(),
            building: 12,
            geo: Geo {
                lat: 35.7,
                lon: Some(51.4),
            },
        },
        scratch: Vec::new(),
    }
}

fn empty() -> Everything {
    Everything {
        int_null: None,
        flag_null: None,
        f64_null: None,
        dec_null: None,
        name_null: None,
        color_null: None,
        colors: vec![],
        sizes: vec![],
        tags: vec![],
        blob: vec![],
        blob_null: None,
        date_null: None,
        at_null: None,
        json: serde_json::Value::Null,
        map: HashMap::new(),
        btree: BTreeMap::new(),
        prefs_null: None,
        address: Address {
            street: String::new(),
            building: 0,
            geo: Geo {
                lat: 0.0,
                lon: None,
            },
        },
        ..full()
    }
}

dialect_test!(every_type_round_trips_unchanged, |db: TestDb| async move {
    let mut r = db.registry();
    r.register_enum_list("sizes", &["S", "M", "L"])
        .register_entity::<Everything>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    for original in [full(), empty()] {
        let mut t = Tracked::new(original.clone());
        engine.flush(&mut t).await.unwrap();
        let loaded = engine
            .load_by_id::<Everything>(t.id)
            .await
            .unwrap()
            .unwrap();
        let expected = Everything {
            id: t.id,
            ..original
        };
        assert_eq!(*loaded, expected);
        assert!(!loaded.is_dirty(), "a loaded entity is clean");
    }
    // Decimals compare as numbers in SQL on every dialect (12345678.91 > 5).
    let bigger = engine
        .search_ids::<Everything>(&Where::new("`dec_f64` > ?", 5), Pager::new(1, 10))
        .await
        .unwrap();
    assert_eq!(bigger.len(), 2);
    // Updating every column round-trips too.
    let (mut found, _) = engine.load_by_ids::<Everything>(&[1]).await.unwrap();
    let mut first = found.remove(0);
    let target = Everything {
        id: first.id,
        ..empty()
    };
    *first = target.clone();
    engine.flush(&mut first).await.unwrap();
    assert_eq!(
        *engine
            .load_by_id::<Everything>(first.id)
            .await
            .unwrap()
            .unwrap(),
        target
    );
    db.drop().await;
});
