//! B4: every row of the type table, checked column by column against the real server.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::collections::{BTreeMap, HashMap};

use beeorm::{Embedded, Entity, OrmEnum, Value};
use common::{native, query, sync, Kind, TestDb};

#[derive(OrmEnum, Clone, Copy, Debug, PartialEq)]
enum Color {
    Red,
    #[orm(default)]
    Green,
    #[orm(rename = "light-blue")]
    Blue,
}

#[derive(Embedded)]
struct Address {
    street: String,
    building: u16,
    #[orm(embedded)]
    geo: Geo,
}

#[derive(Embedded)]
struct Geo {
    lat: f64,
    lon: Option<f64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Prefs {
    dark: bool,
}

#[derive(Entity)]
#[orm(table = "all_types")]
struct AllTypes {
    id: u32,
    i8_: i8,
    u8_: u8,
    i16_: i16,
    u16_: u16,
    #[orm(year)]
    year: u16,
    year_null: Option<u16>,
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
    #[orm(unsigned)]
    f64_unsigned: f64,
    f64_null: Option<f64>,
    #[orm(decimal = "8,2")]
    dec_f32: f32,
    #[orm(decimal = "10,4", unsigned)]
    dec_f64_unsigned: f64,
    #[orm(decimal = "20,6")]
    dec: rust_decimal::Decimal,
    name: String,
    #[orm(length = 40)]
    short: String,
    #[orm(length = "max")]
    long: String,
    name_null: Option<String>,
    #[orm(enum = "sizes")]
    size: String,
    #[orm(enum = "sizes")]
    size_null: Option<String>,
    color: Color,
    color_null: Option<Color>,
    colors: Vec<Color>,
    #[orm(set = "sizes")]
    sizes: Vec<String>,
    tags: Vec<String>,
    blob: Vec<u8>,
    #[orm(mediumblob)]
    medium: Vec<u8>,
    #[orm(longblob)]
    long_blob: Option<Vec<u8>>,
    date: chrono::NaiveDate,
    date_null: Option<chrono::NaiveDate>,
    #[orm(time)]
    at: chrono::NaiveDateTime,
    at_utc: chrono::DateTime<chrono::Utc>,
    at_null: Option<chrono::NaiveDateTime>,
    clock: chrono::NaiveTime,
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
    skipped: Vec<std::time::Instant>,
}

/// (column, MySQL type (normalised), SQLite declared type, PostgreSQL type, nullable)
const EXPECTED: &[(&str, &str, &str, &str, bool)] = &[
    ("id", "int unsigned", "INTEGER", "bigint", false),
    ("i8_", "tinyint", "TINYINT", "smallint", false),
    (
        "u8_",
        "tinyint unsigned",
        "TINYINT UNSIGNED",
        "smallint",
        false,
    ),
    ("i16_", "smallint", "SMALLINT", "smallint", false),
    (
        "u16_",
        "smallint unsigned",
        "SMALLINT UNSIGNED",
        "integer",
        false,
    ),
    ("year", "year", "YEAR", "smallint", false),
    (
        "year_null",
        "smallint unsigned",
        "SMALLINT UNSIGNED",
        "integer",
        true,
    ),
    ("i32_", "int", "INT", "integer", false),
    ("u32_", "int unsigned", "INT UNSIGNED", "bigint", false),
    ("i24", "mediumint", "MEDIUMINT", "integer", false),
    (
        "u24",
        "mediumint unsigned",
        "MEDIUMINT UNSIGNED",
        "integer",
        false,
    ),
    ("i64_", "bigint", "BIGINT", "bigint", false),
    (
        "u64_",
        "bigint unsigned",
        "BIGINT UNSIGNED",
        "numeric(20,0)",
        false,
    ),
    ("int_null", "bigint", "BIGINT", "bigint", true),
    ("flag", "tinyint(1)", "BOOLEAN", "boolean", false),
    ("flag_null", "tinyint(1)", "BOOLEAN", "boolean", true),
    ("f32_", "float", "FLOAT", "real", false),
    ("f64_", "double", "DOUBLE", "double precision", false),
    (
        "f64_unsigned",
        "double unsigned",
        "DOUBLE",
        "double precision",
        false,
    ),
    ("f64_null", "double", "DOUBLE", "double precision", true),
    (
        "dec_f32",
        "decimal(8,2)",
        "DECIMAL(8,2)",
        "numeric(8,2)",
        false,
    ),
    (
        "dec_f64_unsigned",
        "decimal(10,4) unsigned",
        "DECIMAL(10,4)",
        "numeric(10,4)",
        false,
    ),
    ("dec", "decimal(20,6)", "TEXT", "numeric(20,6)", false),
    (
        "name",
        "varchar(255)",
        "VARCHAR(255)",
        "character varying(255)",
        false,
    ),
    (
        "short",
        "varchar(40)",
        "VARCHAR(40)",
        "character varying(40)",
        false,
    ),
    ("long", "mediumtext", "TEXT", "text", false),
    (
        "name_null",
        "varchar(255)",
        "VARCHAR(255)",
        "character varying(255)",
        true,
    ),
    ("size", "enum('S','M','L')", "TEXT", "text", false),
    ("size_null", "enum('S','M','L')", "TEXT", "text", true),
    (
        "color",
        "enum('Red','Green','light-blue')",
        "TEXT",
        "text",
        false,
    ),
    (
        "color_null",
        "enum('Red','Green','light-blue')",
        "TEXT",
        "text",
        true,
    ),
    (
        "colors",
        "set('Red','Green','light-blue')",
        "TEXT",
        "text",
        false,
    ),
    ("sizes", "set('S','M','L')", "TEXT", "text", false),
    ("tags", "json", "TEXT", "jsonb", false),
    ("blob", "blob", "BLOB", "bytea", false),
    ("medium", "mediumblob", "MEDIUMBLOB", "bytea", false),
    ("long_blob", "longblob", "LONGBLOB", "bytea", true),
    ("date", "date", "DATE", "date", false),
    ("date_null", "date", "DATE", "date", true),
    (
        "at",
        "datetime",
        "DATETIME",
        "timestamp without time zone",
        false,
    ),
    (
        "at_utc",
        "datetime",
        "DATETIME",
        "timestamp without time zone",
        false,
    ),
    (
        "at_null",
        "datetime",
        "DATETIME",
        "timestamp without time zone",
        true,
    ),
    ("clock", "time", "TIME", "time without time zone", false),
    ("json", "json", "TEXT", "jsonb", false),
    ("map", "json", "TEXT", "jsonb", false),
    ("btree", "json", "TEXT", "jsonb", false),
    ("prefs", "json", "TEXT", "jsonb", false),
    ("prefs_null", "json", "TEXT", "jsonb", true),
    (
        "address_street",
        "varchar(255)",
        "VARCHAR(255)",
        "character varying(255)",
        false,
    ),
    (
        "address_building",
        "smallint unsigned",
        "SMALLINT UNSIGNED",
        "integer",
        false,
    ),
    (
        "address_geo_lat",
        "double",
        "DOUBLE",
        "double precision",
        false,
    ),
    (
        "address_geo_lon",
        "double",
        "DOUBLE",
        "double precision",
        true,
    ),
];

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{v:?}"))
}

/// MySQL `COLUMN_TYPE` without display widths (`int(10) unsigned` → `int unsigned`).
fn mysql_type(raw: &str, mariadb: bool) -> String {
    let mut t = raw.to_string();
    for name in ["tinyint", "smallint", "mediumint", "bigint", "int", "year"] {
        if let Some(rest) = t.strip_prefix(&format!("{name}(")) {
            if t != "tinyint(1)" {
                let close = rest.find(')').unwrap();
                t = format!("{name}{}", &rest[close + 1..]);
            }
            break;
        }
    }
    if mariadb && t == "longtext" {
        "json".into() // MariaDB stores json as longtext + CHECK (json_valid)
    } else {
        t
    }
}

dialect_test!(
    every_type_table_row_creates_the_documented_column,
    |db: TestDb| async move {
        let mut registry = db.registry();
        registry
            .register_enum_list("sizes", &["S", "M", "L"])
            .register_entity::<AllTypes>();
        let engine = registry.validate().await.unwrap().create_engine();
        sync(&engine).await;

        let actual: Vec<(String, String, bool)> = match db.kind {
            Kind::MySql => {
                let version = text(&query(&engine, "SELECT VERSION()").await[0][0]);
                let mariadb = version.to_lowercase().contains("mariadb");
                query(
                &engine,
                "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'all_types' ORDER BY ORDINAL_POSITION",
            )
            .await
            .iter()
            .map(|r| (text(&r[0]), mysql_type(&text(&r[1]), mariadb), text(&r[2]) == "YES"))
            .collect()
            }
            Kind::Postgres => query(
                &engine,
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull FROM pg_attribute a \
                 WHERE a.attrelid = 'all_types'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            )
            .await
            .iter()
            .map(|r| (text(&r[0]), text(&r[1]), r[2] == Value::Bool(true)))
            .collect(),
            Kind::Sqlite => query(
                &engine,
                "SELECT name, type, \"notnull\" FROM pragma_table_info('all_types') ORDER BY cid",
            )
            .await
            .iter()
            .map(|r| (text(&r[0]), text(&r[1]), r[2].as_i64() == Some(0)))
            .collect(),
        };
        let expected: Vec<(String, String, bool)> = EXPECTED
            .iter()
            .map(|(name, my, lite, pg, null)| {
                let ty = match db.kind {
                    Kind::MySql => my,
                    Kind::Sqlite => lite,
                    Kind::Postgres => pg,
                };
                // SQLite reports INTEGER PRIMARY KEY as nullable in pragma; it is not.
                let null = *null || (db.kind == Kind::Sqlite && *name == "id");
                (name.to_string(), ty.to_string(), null)
            })
            .collect();
        for (e, a) in expected.iter().zip(&actual) {
            assert_eq!(e, a, "column {}", e.0);
        }
        assert_eq!(expected.len(), actual.len(), "column count");
        db.drop().await;
    }
);

#[derive(Entity)]
#[orm(table = "checked")]
struct Checked {
    id: u32,
    #[orm(enum = "sizes")]
    size: String,
    color: Color,
    name: String,
    count: i32,
    json: serde_json::Value,
}

dialect_test!(
    enum_and_json_columns_reject_bad_values,
    |db: TestDb| async move {
        let mut registry = db.registry();
        registry
            .register_enum_list("sizes", &["S", "M", "L"])
            .register_entity::<Checked>();
        let engine = registry.validate().await.unwrap().create_engine();
        sync(&engine).await;
        let sql = engine.db("default").unwrap();
        if db.kind == Kind::MySql {
            // Strict mode makes MySQL reject bad values as SQLite's CHECKs do.
            sql.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES'", vec![])
                .await
                .unwrap();
        }
        sql.execute(
            &native(db.kind, "INSERT INTO checked (json) VALUES (?)"),
            vec!["[1]".into()],
        )
        .await
        .unwrap();
        // Defaults of NOT NULL columns are the documented ones.
        let row = &query(&engine, "SELECT size, color, name, count FROM checked").await[0];
        assert_eq!(text(&row[0]), "S");
        assert_eq!(text(&row[1]), "Green");
        assert_eq!(text(&row[2]), "");
        assert_eq!(row[3].as_i64(), Some(0));
        let bad = sql
            .execute(
                &native(db.kind, "INSERT INTO checked (color, json) VALUES (?, ?)"),
                vec!["Purple".into(), "{}".into()],
            )
            .await;
        assert!(
            matches!(bad, Err(beeorm::Error::Database { .. })),
            "{bad:?}"
        );
        let bad_json = sql
            .execute(
                &native(db.kind, "INSERT INTO checked (json) VALUES (?)"),
                vec!["{not json".into()],
            )
            .await;
        assert!(
            matches!(bad_json, Err(beeorm::Error::Database { .. })),
            "{bad_json:?}"
        );
        db.drop().await;
    }
);
