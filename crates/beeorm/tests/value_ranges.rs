//! What each column can hold, on each dialect: a value the column holds exactly
//! round-trips unchanged; any other is an `Error::InvalidValue` naming entity, field
//! and value, raised before anything is written (insert or update). Plus: MySQL TIME
//! beyond a time of day, strict MySQL sessions, and decimals bound as numbers on SQLite.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use beeorm::prelude::*;
use beeorm::{Error, Value};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use common::{native, query, sync, Kind, TestDb};
use rust_decimal::Decimal;

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "ranges")]
struct Ranges {
    id: u64,
    #[orm(mediumint)]
    i24: i32,
    #[orm(mediumint)]
    u24: u32,
    #[orm(year)]
    year: u16,
    f64_: f64,
    #[orm(unsigned)]
    uf64: f64,
    #[orm(decimal = "10,2")]
    dec_f64: f64,
    #[orm(decimal = "10,2")]
    dec: Decimal,
    #[orm(decimal = "10,2", unsigned)]
    udec: Decimal,
    #[orm(decimal = "20,6")]
    wide: Decimal,
    #[orm(decimal = "20,2")]
    wide_f64: f64,
    #[orm(length = 5)]
    short: String,
    #[orm(length = "max")]
    long: String,
    #[orm(enum = "sizes")]
    size: String,
    #[orm(set = "sizes")]
    sizes: Vec<String>,
    blob: Vec<u8>,
    date: NaiveDate,
    at: NaiveDateTime,
    clock: NaiveTime,
}

fn base() -> Ranges {
    Ranges {
        id: 0,
        i24: 0,
        u24: 0,
        year: 2024,
        f64_: 0.0,
        uf64: 0.0,
        dec_f64: 0.0,
        dec: Decimal::ZERO,
        udec: Decimal::ZERO,
        wide: Decimal::ZERO,
        wide_f64: 0.0,
        short: String::new(),
        long: String::new(),
        size: "S".into(),
        sizes: vec![],
        blob: vec![],
        date: ymd(2000, 1, 1),
        at: ymd(2000, 1, 1).and_hms_opt(0, 0, 0).unwrap(),
        clock: NaiveTime::MIN,
    }
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn leap_second() -> NaiveTime {
    NaiveTime::from_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap()
}

/// Where a value fits: [MySQL, PostgreSQL, SQLite].
const ALL: [bool; 3] = [true, true, true];
const NONE: [bool; 3] = [false, false, false];
const PG: [bool; 3] = [false, true, false];
const NOT_MYSQL: [bool; 3] = [false, true, true];
const NOT_PG: [bool; 3] = [true, false, true];
const SQLITE: [bool; 3] = [false, false, true];

type Case = (&'static str, Box<dyn Fn(&mut Ranges)>, [bool; 3]);

macro_rules! case {
    ($field:literal, |$r:ident| $set:expr, $fits:expr) => {
        (
            $field,
            Box::new(|$r: &mut Ranges| $set) as Box<dyn Fn(&mut Ranges)>,
            $fits,
        )
    };
}

/// The type table's boundaries: each value just inside and just outside what its
/// column holds, per dialect.
fn cases() -> Vec<Case> {
    vec![
        case!("i24", |r| r.i24 = 8_388_607, ALL),
        case!("i24", |r| r.i24 = -8_388_608, ALL),
        case!("i24", |r| r.i24 = 8_388_608, NONE),
        case!("i24", |r| r.i24 = -8_388_609, NONE),
        case!("u24", |r| r.u24 = 16_777_215, ALL),
        case!("u24", |r| r.u24 = 16_777_216, NONE),
        case!("year", |r| r.year = 0, ALL),
        case!("year", |r| r.year = 1901, ALL),
        case!("year", |r| r.year = 2155, ALL),
        case!("year", |r| r.year = 1900, NONE),
        case!("year", |r| r.year = 2156, NONE),
        case!("year", |r| r.year = 70, NONE),
        case!("f64_", |r| r.f64_ = f64::MAX, ALL),
        case!("f64_", |r| r.f64_ = f64::MIN_POSITIVE, ALL),
        case!("f64_", |r| r.f64_ = f64::NAN, PG),
        case!("f64_", |r| r.f64_ = f64::INFINITY, NOT_MYSQL),
        case!("f64_", |r| r.f64_ = f64::NEG_INFINITY, NOT_MYSQL),
        case!("uf64", |r| r.uf64 = 1.5, ALL),
        case!("uf64", |r| r.uf64 = -1.5, NONE),
        case!("dec_f64", |r| r.dec_f64 = 12345678.91, ALL),
        case!("dec_f64", |r| r.dec_f64 = 0.1 + 0.2, NONE),
        case!("dec_f64", |r| r.dec_f64 = 123456789.0, NONE),
        case!("dec_f64", |r| r.dec_f64 = f64::NAN, NONE),
        case!("dec", |r| r.dec = dec("99999999.99"), ALL),
        case!("dec", |r| r.dec = dec("-99999999.99"), ALL),
        case!("dec", |r| r.dec = dec("1.50"), ALL),
        case!("dec", |r| r.dec = dec("100000000"), NONE),
        case!("dec", |r| r.dec = dec("1.005"), NONE),
        case!("udec", |r| r.udec = dec("0.01"), ALL),
        case!("udec", |r| r.udec = dec("-0.01"), NONE),
        case!("wide", |r| r.wide = dec("99999999999999.999999"), ALL),
        case!("wide", |r| r.wide = dec("-0.000001"), ALL),
        case!("wide", |r| r.wide = dec("1.0000001"), NONE),
        case!("wide_f64", |r| r.wide_f64 = 1234567890123456.8, ALL),
        case!("wide_f64", |r| r.wide_f64 = -0.25, ALL),
        case!("wide_f64", |r| r.wide_f64 = 0.125, NONE),
        case!("short", |r| r.short = "abcde".into(), ALL),
        case!("short", |r| r.short = "ییییی".into(), ALL),
        case!("short", |r| r.short = "🐝🐝🐝🐝🐝".into(), ALL),
        case!("short", |r| r.short = "abcdef".into(), NONE),
        case!("short", |r| r.short = "یییییی".into(), NONE),
        case!("short", |r| r.short = "a\0b".into(), NOT_PG),
        case!("long", |r| r.long = "ی".repeat(4_000_000), ALL),
        case!("long", |r| r.long = "x".repeat(16_777_216), NOT_MYSQL),
        case!("size", |r| r.size = "L".into(), ALL),
        case!("size", |r| r.size = "XL".into(), NONE),
        case!("size", |r| r.size = "m".into(), NONE),
        case!("sizes", |r| r.sizes = vec!["S".into(), "L".into()], ALL),
        case!("sizes", |r| r.sizes = vec!["S".into(), "XL".into()], NONE),
        case!("sizes", |r| r.sizes = vec!["S".into(), "S".into()], NONE),
        case!("blob", |r| r.blob = vec![7; 65_535], ALL),
        case!("blob", |r| r.blob = vec![7; 65_536], NOT_MYSQL),
        case!("date", |r| r.date = ymd(1, 1, 1), ALL),
        case!("date", |r| r.date = ymd(9999, 12, 31), ALL),
        case!("date", |r| r.date = ymd(10000, 1, 1), PG),
        case!("date", |r| r.date = ymd(70000, 1, 1), PG),
        case!("date", |r| r.date = ymd(0, 12, 31), PG),
        case!("date", |r| r.date = ymd(-1, 1, 1), PG),
        case!("date", |r| r.date = ymd(-4713, 11, 24), PG),
        case!("date", |r| r.date = ymd(-4713, 11, 23), NONE),
        case!("date", |r| r.date = NaiveDate::MAX, PG),
        case!("date", |r| r.date = NaiveDate::MIN, NONE),
        case!(
            "at",
            |r| r.at = ymd(9999, 12, 31).and_hms_opt(23, 59, 59).unwrap(),
            ALL
        ),
        case!(
            "at",
            |r| r.at = ymd(1, 1, 1).and_hms_opt(0, 0, 0).unwrap(),
            ALL
        ),
        case!(
            "at",
            |r| r.at = ymd(10000, 1, 1).and_hms_opt(0, 0, 0).unwrap(),
            PG
        ),
        case!(
            "at",
            |r| r.at = ymd(2024, 1, 1).and_hms_micro_opt(1, 2, 3, 500_000).unwrap(),
            NOT_MYSQL
        ),
        case!(
            "at",
            |r| r.at = ymd(2024, 1, 1).and_hms_nano_opt(1, 2, 3, 1).unwrap(),
            SQLITE
        ),
        case!(
            "at",
            |r| r.at = ymd(2016, 12, 31).and_time(leap_second()),
            NONE
        ),
        case!(
            "clock",
            |r| r.clock = NaiveTime::from_hms_opt(23, 59, 59).unwrap(),
            ALL
        ),
        case!(
            "clock",
            |r| r.clock = NaiveTime::from_hms_micro_opt(12, 0, 0, 250_000).unwrap(),
            NOT_MYSQL
        ),
        case!(
            "clock",
            |r| r.clock = NaiveTime::from_hms_nano_opt(12, 0, 0, 1).unwrap(),
            SQLITE
        ),
        case!("clock", |r| r.clock = leap_second(), NONE),
    ]
}

fn dialect_index(kind: Kind) -> usize {
    match kind {
        Kind::MySql => 0,
        Kind::Postgres => 1,
        Kind::Sqlite => 2,
    }
}

/// Equal, NaN equal to NaN (PostgreSQL stores it).
fn same(a: &Ranges, b: &Ranges) -> bool {
    let nan = |r: &Ranges| Ranges {
        f64_: if r.f64_.is_nan() { 0.0 } else { r.f64_ },
        ..r.clone()
    };
    a.f64_.is_nan() == b.f64_.is_nan() && nan(a) == nan(b)
}

async fn count(engine: &Engine) -> i64 {
    query(engine, "SELECT COUNT(*) FROM ranges")
        .await
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .unwrap()
}

fn assert_invalid(result: beeorm::Result<()>, field: &str, what: &str) {
    match result {
        Err(Error::InvalidValue {
            entity,
            field: f,
            value,
            ..
        }) => {
            assert_eq!(entity, "Ranges", "{what}");
            assert_eq!(f, field, "{what}");
            assert!(!value.is_empty(), "{what}: the error names the value");
        }
        other => panic!("{what}: expected Error::InvalidValue for `{field}`, got {other:?}"),
    }
}

async fn ranges_engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_enum_list("sizes", &["S", "M", "L"])
        .register_entity::<Ranges>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

/// Why `result` is not the `Error::InvalidValue` for `field` that it should be.
fn not_invalid(result: beeorm::Result<()>, field: &str) -> Option<String> {
    match result {
        Err(Error::InvalidValue {
            entity,
            field: f,
            value,
            ..
        }) if entity == "Ranges" && f == field && !value.is_empty() => None,
        other => Some(format!(
            "expected Error::InvalidValue for `{field}`, got {other:?}"
        )),
    }
}

dialect_test!(
    every_type_table_boundary_fits_or_is_refused_before_writing,
    |db: TestDb| async move {
        let engine = ranges_engine(&db).await;
        let kind = db.kind;
        // A stored row the updates below try to change.
        let mut stored = Tracked::new(base());
        engine.flush(&mut stored).await.unwrap();
        let mut rows = count(&engine).await;
        let cases = cases();
        let mut failures = Vec::new();
        for (i, (field, set, fits)) in cases.iter().enumerate() {
            let mut value = base();
            set(&mut value);
            let what = format!("case {i} ({field})");
            let fits = fits[dialect_index(kind)];
            // Insert.
            let mut t = Tracked::new(value.clone());
            let result = engine.flush(&mut t).await;
            if fits {
                match result {
                    Err(e) => failures.push(format!("{what}: {e}")),
                    Ok(()) => match engine.load_by_id::<Ranges>(t.id).await {
                        Ok(Some(loaded)) => {
                            let expected = Ranges {
                                id: t.id,
                                ..value.clone()
                            };
                            if !same(&loaded, &expected) {
                                failures.push(format!("{what}: read back changed: {:?}", *loaded));
                            }
                        }
                        other => failures.push(format!("{what}: read back as {other:?}")),
                    },
                }
            } else if let Some(why) = not_invalid(result, field) {
                failures.push(format!("{what}: {why}"));
            }
            let now = count(&engine).await;
            if now != rows + i64::from(fits) {
                failures.push(format!(
                    "{what}: {} rows after the insert, expected {}",
                    now,
                    rows + i64::from(fits)
                ));
            }
            rows = now;
            // Update of the stored row.
            let before = engine.load_by_id::<Ranges>(stored.id).await.ok().flatten();
            set(&mut stored);
            let result = engine.flush(&mut stored).await;
            if fits {
                if let Err(e) = result {
                    failures.push(format!("{what} (update): {e}"));
                }
            } else {
                if let Some(why) = not_invalid(result, field) {
                    failures.push(format!("{what} (update): {why}"));
                }
                let after = engine.load_by_id::<Ranges>(stored.id).await.ok().flatten();
                match (before, after) {
                    (Some(b), Some(a)) if same(&a, &b) => {}
                    (_, after) => {
                        failures.push(format!("{what} (update): the row changed to {after:?}"))
                    }
                }
            }
            // Back to a valid row (by a fresh load: a failed write may leave the tracked copy odd).
            *stored = Ranges {
                id: stored.id,
                ..base()
            };
            if engine.flush(&mut stored).await.is_err() {
                stored = engine
                    .load_by_id::<Ranges>(stored.id)
                    .await
                    .unwrap()
                    .unwrap();
                *stored = Ranges {
                    id: stored.id,
                    ..base()
                };
                engine.flush(&mut stored).await.unwrap();
            }
        }
        assert!(
            failures.is_empty(),
            "{kind:?}: {} problems over {} cases:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
        db.drop().await;
    }
);

dialect_test!(
    one_bad_value_writes_nothing_of_the_flush,
    |db: TestDb| async move {
        let engine = ranges_engine(&db).await;
        let mut good = Tracked::new(base());
        let mut bad = Tracked::new(Ranges {
            date: ymd(70000, 1, 1),
            short: "too long".into(),
            ..base()
        });
        let result = engine
            .flusher()
            .track(&mut good)
            .track(&mut bad)
            .flush()
            .await;
        assert_invalid(result, "short", "a flush with one bad entity");
        assert_eq!(
            count(&engine).await,
            0,
            "the good entity was not written either"
        );
        assert_eq!(good.id, 0);
        db.drop().await;
    }
);

dialect_test!(
    too_long_strings_are_refused_by_characters,
    |db: TestDb| async move {
        let engine = ranges_engine(&db).await;
        for (text, fits) in [
            ("12345", true),
            ("123456", false),
            ("ﷺﷺﷺﷺﷺ", true),
            ("ﷺﷺﷺﷺﷺﷺ", false),
            ("😀😀😀😀😀", true),
            ("😀😀😀😀😀😀", false),
        ] {
            let mut t = Tracked::new(Ranges {
                short: text.into(),
                ..base()
            });
            let result = engine.flush(&mut t).await;
            if fits {
                result.unwrap();
                let loaded = engine.load_by_id::<Ranges>(t.id).await.unwrap().unwrap();
                assert_eq!(loaded.short, text, "not truncated");
            } else {
                assert_invalid(result, "short", text);
            }
        }
        db.drop().await;
    }
);

// Raw statements: a date MySQL or SQLite cannot hold is an error, not a wrapped year.
dialect_test!(
    raw_date_parameters_out_of_range_are_errors,
    |db: TestDb| async move {
        let engine = ranges_engine(&db).await;
        let conn = engine.db("default").unwrap();
        for (date, fits) in [
            (ymd(70000, 1, 1), db.kind == Kind::Postgres),
            (ymd(-1, 1, 1), db.kind == Kind::Postgres),
            (ymd(9999, 12, 31), true),
        ] {
            let result = conn
                .query(&native(db.kind, "SELECT ?"), vec![Value::Date(date)])
                .await;
            match (fits, result) {
                (true, Ok(_)) => {}
                (false, Err(e)) => assert!(e.to_string().contains(&date.to_string()), "{e}"),
                (fits, other) => panic!("{date} (fits: {fits}) gave {other:?}"),
            }
        }
        db.drop().await;
    }
);

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "clocks")]
struct Clock {
    id: u32,
    clock: NaiveTime,
    #[orm(length = 10)]
    note: String,
}

async fn clock_engine(db: &TestDb) -> Engine {
    let mut r = db.registry();
    r.register_entity::<Clock>();
    let engine = r.validate().await.unwrap().create_engine();
    sync(&engine).await;
    engine
}

// A `time` column maps to `NaiveTime` (a time of day): what a TIME column holds
// beyond that (MySQL: -838:59:59 to 838:59:59; PostgreSQL: 24:00:00; text in SQLite)
// is a decode error naming the value, never the time of day with days and sign lost.
dialect_test!(
    times_beyond_a_time_of_day_are_refused_not_wrapped,
    |db: TestDb| async move {
        let engine = clock_engine(&db).await;
        let conn = engine.db("default").unwrap();
        let beyond: &[&str] = match db.kind {
            Kind::MySql => &[
                "25:30:00",
                "-01:00:00",
                "838:59:59",
                "-838:59:59",
                "24:00:00",
            ],
            Kind::Postgres => &["24:00:00"],
            Kind::Sqlite => &["25:30:00", "-01:00:00", "24:00:00"],
        };
        for (i, text) in beyond.iter().enumerate() {
            let id = i as u64 + 100;
            // PostgreSQL binds a `time` parameter as a time of day: send the text as SQL.
            let sql = match db.kind {
                Kind::Postgres => {
                    format!("INSERT INTO clocks (id, clock, note) VALUES (?, '{text}', '')")
                }
                _ => "INSERT INTO clocks (id, clock, note) VALUES (?, ?, '')".to_string(),
            };
            let mut params = vec![Value::from(id)];
            if db.kind != Kind::Postgres {
                params.push(Value::from(*text));
            }
            conn.execute(&native(db.kind, &sql), params).await.unwrap();
            match engine.load_by_id::<Clock>(id).await {
                Err(Error::Decode { field, reason, .. }) => {
                    assert_eq!(field, "clock");
                    assert!(reason.contains(text), "{text}: {reason}");
                }
                other => panic!("{text} read as {other:?}"),
            }
            let raw = conn
                .query(
                    &native(db.kind, "SELECT clock FROM clocks WHERE id = ?"),
                    vec![Value::from(id)],
                )
                .await
                .unwrap();
            assert_eq!(raw[0][0], Value::from(*text), "raw query of {text}");
        }
        // The whole time of day round-trips.
        for t in [NaiveTime::MIN, NaiveTime::from_hms_opt(23, 59, 59).unwrap()] {
            let mut c = Tracked::new(Clock {
                id: 0,
                clock: t,
                note: String::new(),
            });
            engine.flush(&mut c).await.unwrap();
            let loaded = engine
                .load_by_id::<Clock>(c.id.into())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(loaded.clock, t);
        }
        db.drop().await;
    }
);

/// MySQL sessions are strict whatever the server's default: a multi-row INSERT into a
/// non-transactional table, whose second row is too long, fails (under the default
/// STRICT_TRANS_TABLES it would be truncated with a warning).
#[cfg(feature = "mysql")]
#[tokio::test]
async fn mysql_sessions_are_strict() {
    let db = TestDb::new(Kind::MySql, "strict_session").await;
    let engine = clock_engine(&db).await;
    let conn = engine.db("default").unwrap();
    let mode = conn
        .query("SELECT @@SESSION.sql_mode", vec![])
        .await
        .unwrap();
    let mode = mode[0][0].as_str().unwrap().to_string();
    assert!(mode.contains("STRICT_ALL_TABLES"), "{mode}");
    conn.execute(
        "CREATE TABLE plain (note varchar(5) NOT NULL) ENGINE=MyISAM",
        vec![],
    )
    .await
    .unwrap();
    for long in ["abcdef", "ﷺﷺﷺﷺﷺﷺ"] {
        let result = conn
            .execute(
                "INSERT INTO plain (note) VALUES (?), (?)",
                vec![Value::from("ok"), Value::from(long)],
            )
            .await;
        assert!(result.is_err(), "{long} was truncated: {result:?}");
        let rows = conn
            .query("SELECT note FROM plain WHERE note <> 'ok'", vec![])
            .await
            .unwrap();
        assert!(rows.is_empty(), "{long}: truncated row stored: {rows:?}");
    }
    db.drop().await;
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "lines")]
struct Line {
    id: u32,
    invoice: u32,
    #[orm(decimal = "10,2")]
    price: Decimal,
    qty: u32,
    #[orm(decimal = "10,2")]
    total: Decimal,
}

// Decimal parameters compare as numbers against expressions and aggregates on every
// dialect (SQLite used to bind them as text, which sorts after every number).
dialect_test!(
    decimal_parameters_compare_as_numbers,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Line>();
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        for (invoice, price, qty) in [
            (1, "0.60", 2),
            (1, "0.50", 1),
            (2, "2.00", 1),
            (3, "0.10", 3),
        ] {
            let price = dec(price);
            let mut line = Tracked::new(Line {
                id: 0,
                invoice,
                price,
                qty,
                total: price * Decimal::from(qty),
            });
            engine.flush(&mut line).await.unwrap();
        }
        let over = engine
            .search_ids::<Line>(
                &Where::new("`price` * `qty` > ?", dec("1.00")),
                Pager::new(1, 10),
            )
            .await
            .unwrap();
        assert_eq!(over, vec![1, 3], "lines over 1.00");
        let exact = engine
            .search_ids::<Line>(&Where::new("`price` = ?", dec("0.60")), Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(
            exact,
            vec![1],
            "a decimal column equals a decimal parameter"
        );
        let invoices = engine
        .db("default")
        .unwrap()
        .query(
            &native(
                db.kind,
                "SELECT `invoice` FROM `lines` GROUP BY `invoice` HAVING SUM(`total`) > ? ORDER BY `invoice`",
            ),
            vec![Value::Decimal(dec("1.00"))],
        )
        .await
        .unwrap();
        let invoices: Vec<i64> = invoices.iter().map(|r| r[0].as_i64().unwrap()).collect();
        assert_eq!(invoices, vec![1, 2], "invoices over 1.00");
        db.drop().await;
    }
);

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "owners")]
struct Owner {
    id: u64,
    #[orm(length = 10)]
    name: String,
}

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "pets")]
struct Pet {
    id: u64,
    #[orm(skip_fk)]
    owner: Option<Ref<Owner>>,
}

// PostgreSQL's ids are `bigint` and SQLite's rowid is signed: an explicit ID (or a
// reference) above i64::MAX is refused there before sending; MySQL (`bigint unsigned`)
// stores it.
dialect_test!(
    ids_beyond_postgres_bigint_are_refused_there,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Owner>().register_entity::<Pet>();
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        let big = i64::MAX as u64 + 1;
        let mut owner = Tracked::new(Owner {
            id: big,
            name: "big".into(),
        });
        let result = engine.flush(&mut owner).await;
        let mut pet = Tracked::new(Pet {
            id: 0,
            owner: Some(Ref::from_id(big)),
        });
        let pet_result = engine.flush(&mut pet).await;
        // PostgreSQL's bigint and SQLite's rowid are signed: such IDs cannot exist there.
        if db.kind != Kind::MySql {
            for (result, entity, field) in [(result, "Owner", "id"), (pet_result, "Pet", "owner")] {
                match result {
                    Err(Error::InvalidValue {
                        entity: e,
                        field: f,
                        ..
                    }) => assert_eq!((e.as_str(), f.as_str()), (entity, field)),
                    other => panic!("{entity}.{field}: {other:?}"),
                }
            }
        } else {
            result.unwrap();
            pet_result.unwrap();
            let loaded = engine.load_by_id::<Owner>(big).await.unwrap().unwrap();
            assert_eq!(loaded.name, "big");
        }
        db.drop().await;
    }
);
