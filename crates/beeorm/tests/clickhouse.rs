//! ClickHouse pools against the real server (scripts/services starts Debian's 18.16
//! on 127.0.0.1:8123; BEEORM_CLICKHOUSE_URL points elsewhere). Each test works in
//! its own tables (`ch_<test>_<prefix>`), so tests run in parallel.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

// With this in scope, `#[derive(clickhouse::Row)]` needs no dependency on the crate.
use beeorm::clickhouse;
use beeorm::{Engine, Error, Registry};
use serde::{Deserialize, Serialize};

fn url() -> String {
    std::env::var("BEEORM_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://default@127.0.0.1:8123/default".into())
}

/// A table name of this test (parallel checkouts set BEEORM_TEST_PREFIX).
fn table(test: &str) -> String {
    let prefix = std::env::var("BEEORM_TEST_PREFIX").unwrap_or_default();
    format!("ch_{test}_{prefix}{}", std::process::id() % 1000)
}

async fn engine() -> Engine {
    let mut r = Registry::new();
    r.register_clickhouse_pool("analytics", &url());
    r.validate().await.unwrap().create_engine()
}

async fn fresh(ch: &clickhouse::ClickHouse, table: &str, columns: &str) {
    ch.exec(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();
    ch.exec(&format!(
        "CREATE TABLE {table} ({columns}) ENGINE = MergeTree ORDER BY id"
    ))
    .await
    .unwrap();
}

async fn count(ch: &clickhouse::ClickHouse, table: &str) -> u64 {
    ch.query(&format!("SELECT count() FROM {table}"))
        .fetch_one::<u64>()
        .await
        .unwrap()
}

#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
struct Event {
    id: u64,
    name: String,
    note: Option<String>,
    /// `DateTime`, as Unix seconds.
    at: u32,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    seen: chrono::DateTime<chrono::Utc>,
    /// `Date`, as days.
    day: u16,
    tags: Vec<i32>,
    scores: Vec<Option<u8>>,
    code: [u8; 3],
    delta: i64,
    ratio: f64,
    kind: i8,
}

const EVENT_COLUMNS: &str = "id UInt64, name String, note Nullable(String), at DateTime, \
    seen DateTime, day Date, tags Array(Int32), scores Array(Nullable(UInt8)), \
    code FixedString(3), delta Int64, ratio Float64, kind Enum8('a' = 1, 'b' = 2)";

fn event(i: u64) -> Event {
    use chrono::TimeZone;
    Event {
        id: i,
        name: format!("it's \\ {i} ünïcödé ✓ 'quoted' \"dq\" \t tab"),
        note: (!i.is_multiple_of(3)).then(|| format!("note {i} ''\\\\")),
        at: 1_700_000_000 + i as u32,
        seen: chrono::Utc
            .timestamp_opt(1_600_000_000 + i as i64, 0)
            .unwrap(),
        day: 19_000 + (i % 365) as u16,
        tags: (0..(i % 4) as i32).map(|t| t - 1).collect(),
        scores: vec![None, Some((i % 256) as u8)],
        code: [b'a', b'b' + (i % 20) as u8, b'\0'],
        delta: -(i as i64) * 1_000_003,
        ratio: i as f64 / 7.0,
        kind: 1 + (i % 2) as i8,
    }
}

#[tokio::test]
async fn ten_thousand_rows_go_in_and_come_back_identical() {
    let engine = engine().await;
    let ch = engine.clickhouse("analytics").unwrap();
    let t = table("roundtrip");
    fresh(&ch, &t, EVENT_COLUMNS).await;
    let rows: Vec<Event> = (1..=10_000).map(event).collect();
    assert_eq!(ch.insert(&t, &rows).await.unwrap(), 10_000);
    assert_eq!(count(&ch, &t).await, 10_000);
    let back: Vec<Event> = ch
        .query(&format!("SELECT ?fields FROM {t} ORDER BY id"))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(back.len(), rows.len());
    assert_eq!(back, rows);
    // An empty batch sends nothing.
    assert_eq!(ch.insert::<Event>(&t, &[]).await.unwrap(), 0);
    ch.exec(&format!("DROP TABLE {t}")).await.unwrap();
}

#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
struct Pair {
    id: u64,
    v: u64,
}

#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
struct PairText {
    id: u64,
    v: String,
}

#[tokio::test]
async fn bound_values_are_escaped_and_has_replaces_in() {
    let engine = engine().await;
    let ch = engine.clickhouse("analytics").unwrap();
    let t = table("bind");
    fresh(&ch, &t, "id UInt64, v String").await;
    let tricky = "o'clock \\ '); DROP TABLE x; --";
    let rows: Vec<PairText> = (1..=5)
        .map(|id| PairText {
            id,
            v: if id == 3 {
                tricky.into()
            } else {
                format!("v{id}")
            },
        })
        .collect();
    ch.insert(&t, &rows).await.unwrap();
    let got: Vec<PairText> = ch
        .query(&format!("SELECT ?fields FROM {t} WHERE v = ? AND id > ?"))
        .bind(tricky)
        .bind(1u64)
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(got, vec![rows[2].clone()]);
    let ids: Vec<u64> = ch
        .query(&format!("SELECT id FROM {t} WHERE has(?, id) ORDER BY id"))
        .bind(vec![2u64, 4, 99])
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(ids, vec![2, 4]);
    let none: Option<PairText> = ch
        .query(&format!("SELECT ?fields FROM {t} WHERE id = ?"))
        .bind(42u64)
        .fetch_optional()
        .await
        .unwrap();
    assert_eq!(none, None);
    let name: Option<(u64, String)> = ch
        .query(&format!("SELECT id, v FROM {t} WHERE id = ?"))
        .bind(5u64)
        .fetch_optional()
        .await
        .unwrap();
    assert_eq!(name, Some((5, "v5".to_string())));
    // Identifiers bind too; a `?` left unbound is an error, not a panic.
    let n: u64 = ch
        .query("SELECT count() FROM ?")
        .bind(clickhouse::Identifier(&t))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 5);
    let err = ch
        .query(&format!("SELECT id FROM {t} WHERE id = ?"))
        .execute()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ClickHouse { .. }), "{err:?}");
    ch.exec(&format!("DROP TABLE {t}")).await.unwrap();
}

#[derive(Debug, clickhouse::Row, Serialize, Deserialize)]
struct NarrowPair {
    id: u64,
    v: u32,
}

#[derive(Debug, clickhouse::Row, Serialize, Deserialize)]
struct OptionalPair {
    id: u64,
    v: Option<u64>,
}

#[tokio::test]
async fn a_wrong_type_on_insert_is_an_error_and_writes_nothing() {
    let engine = engine().await;
    let ch = engine.clickhouse("analytics").unwrap();
    let t = table("wrong_insert");
    fresh(&ch, &t, "id UInt64, v UInt64").await;
    let err = ch
        .insert(&t, &[NarrowPair { id: 1, v: 2 }])
        .await
        .unwrap_err();
    match &err {
        Error::ClickHouseType {
            pool,
            target,
            column,
            expected,
            found,
        } => {
            assert_eq!(pool, "analytics");
            assert!(target.contains(&t), "{target}");
            assert_eq!(column, "v");
            assert!(expected.contains("u32"), "{expected}");
            assert!(found.contains("UInt64"), "{found}");
        }
        other => panic!("{other:?}"),
    }
    // `Option` needs a Nullable column, even when every value is None.
    let err = ch
        .insert(&t, &[OptionalPair { id: 1, v: None }])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ClickHouseType { column, .. } if column == "v"),
        "{err:?}"
    );
    assert_eq!(count(&ch, &t).await, 0);
    ch.exec(&format!("DROP TABLE {t}")).await.unwrap();
}

#[derive(Debug, clickhouse::Row, Serialize, Deserialize)]
struct WithMap {
    id: u64,
    v: std::collections::BTreeMap<String, u64>,
}

#[tokio::test]
async fn a_wrong_type_on_read_is_an_error() {
    let engine = engine().await;
    let ch = engine.clickhouse("analytics").unwrap();
    // The crate alone decodes these silently: [0, 0, 1, 0, 2, 0].
    let err = ch
        .query("SELECT toUInt64(number) FROM system.numbers LIMIT 3")
        .fetch_all::<u32>()
        .await
        .unwrap_err();
    match &err {
        Error::ClickHouseType {
            target,
            expected,
            found,
            ..
        } => {
            assert!(target.contains("system.numbers"), "{target}");
            assert_eq!(expected, "`u32`");
            assert_eq!(found, "`UInt64`");
        }
        other => panic!("{other:?}"),
    }
    let t = table("wrong_read");
    fresh(&ch, &t, "id UInt64, v UInt64").await;
    ch.insert(&t, &[Pair { id: 1, v: 2 }]).await.unwrap();
    let err = ch
        .query(&format!("SELECT ?fields FROM {t}"))
        .fetch_all::<NarrowPair>()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ClickHouseType { column, .. } if column == "v"),
        "{err:?}"
    );
    // Fields are positional: a column in the wrong place is named.
    let err = ch
        .query(&format!("SELECT v, id FROM {t}"))
        .fetch_all::<Pair>()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ClickHouseType { column, .. } if column == "v"),
        "{err:?}"
    );
    // A field RowBinary cannot carry (a map) is refused before anything runs.
    let err = ch
        .query(&format!("SELECT ?fields FROM {t}"))
        .fetch_all::<WithMap>()
        .await
        .unwrap_err();
    match &err {
        Error::ClickHouseType { column, found, .. } => {
            assert_eq!(column, "*");
            assert!(found.contains("map"), "{found}");
        }
        other => panic!("{other:?}"),
    }
    let err = ch
        .insert(
            &t,
            &[WithMap {
                id: 1,
                v: Default::default(),
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::ClickHouseType { .. }), "{err:?}");
    // The right type still reads, after the failed checks of the same query.
    let ok: Vec<Pair> = ch
        .query(&format!("SELECT ?fields FROM {t}"))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(ok, vec![Pair { id: 1, v: 2 }]);
    ch.exec(&format!("DROP TABLE {t}")).await.unwrap();
}

#[derive(Debug, clickhouse::Row, Serialize, Deserialize)]
struct Wider {
    id: u64,
    v: u64,
    extra: u8,
}

#[tokio::test]
async fn a_wrong_column_count_is_an_error() {
    let engine = engine().await;
    let ch = engine.clickhouse("analytics").unwrap();
    let t = table("count");
    fresh(&ch, &t, "id UInt64, v UInt64").await;
    ch.insert(&t, &[Pair { id: 1, v: 2 }]).await.unwrap();
    for sql in [
        format!("SELECT id, v, v AS w FROM {t}"),
        format!("SELECT id FROM {t}"),
    ] {
        let err = ch.query(&sql).fetch_all::<Pair>().await.unwrap_err();
        assert!(
            matches!(&err, Error::ClickHouseType { column, .. } if column == "*"),
            "{sql}: {err:?}"
        );
    }
    let err = ch
        .query(&format!("SELECT * FROM {t}"))
        .fetch_all::<(u64, u64, u64)>()
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::ClickHouseType { .. }), "{err:?}");
    // A field without a column.
    let err = ch
        .insert(
            &t,
            &[Wider {
                id: 1,
                v: 2,
                extra: 3,
            }],
        )
        .await
        .unwrap_err();
    match &err {
        Error::ClickHouseType { column, found, .. } => {
            assert_eq!(column, "extra");
            assert!(found.contains("no such column"), "{found}");
        }
        other => panic!("{other:?}"),
    }
    // Inserting a tuple (no field names) is refused before the crate sees it.
    let err = ch.insert(&t, &[(1u64, 2u64)]).await.unwrap_err();
    assert!(matches!(&err, Error::ClickHouseType { .. }), "{err:?}");
    assert_eq!(count(&ch, &t).await, 1);
    ch.exec(&format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn an_alter_is_picked_up_by_the_next_mismatching_row_type() {
    let engine = engine().await;
    let ch = engine.clickhouse("analytics").unwrap();
    let t = table("alter");
    fresh(&ch, &t, "id UInt64, v UInt64").await;
    ch.insert(&t, &[Pair { id: 1, v: 2 }]).await.unwrap();
    ch.exec(&format!("ALTER TABLE {t} MODIFY COLUMN v String"))
        .await
        .unwrap();
    // The cached description says UInt64: the mismatch re-describes the table.
    ch.insert(
        &t,
        &[PairText {
            id: 2,
            v: "two".into(),
        }],
    )
    .await
    .unwrap();
    let got: Vec<PairText> = ch
        .query(&format!("SELECT ?fields FROM {t} ORDER BY id"))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(got[1].v, "two");
    assert_eq!(got[0].v, "2");
    ch.exec(&format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test]
async fn server_errors_are_typed_and_the_pool_stays_usable() {
    let engine = engine().await;
    let ch = engine.clickhouse("analytics").unwrap();
    let err = ch.exec("SELEC 1").await.unwrap_err();
    match &err {
        Error::ClickHouse {
            pool, operation, ..
        } => {
            assert_eq!(pool, "analytics");
            assert!(operation.contains("SELEC 1"), "{operation}");
            assert!(err.to_string().contains("Syntax error"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ch.query("SELECT 1").fetch_one::<u8>().await.unwrap(),
        1,
        "after a syntax error"
    );
    let missing = table("no_such_table");
    let err = ch
        .query(&format!("SELECT ?fields FROM {missing}"))
        .fetch_all::<Pair>()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("doesn't exist"), "{err}");
    let err = ch
        .insert(&missing, &[Pair { id: 1, v: 1 }])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("doesn't exist"), "{err}");
    assert_eq!(
        ch.query("SELECT 2").fetch_one::<u8>().await.unwrap(),
        2,
        "after an unknown table"
    );
}

#[tokio::test]
async fn an_unknown_pool_is_a_typed_error() {
    let engine = engine().await;
    match engine.clickhouse("nope") {
        Err(Error::UnknownPool { kind, pool, .. }) => {
            assert_eq!((kind, pool.as_str()), ("clickhouse", "nope"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.registry().clickhouse_pools(), vec!["analytics"]);
}

#[tokio::test]
async fn a_dead_server_is_a_typed_error() {
    // A port nobody listens on: connection refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut r = Registry::new();
    r.register_clickhouse_pool("dead", &format!("http://127.0.0.1:{port}/default"));
    let engine = r.validate().await.unwrap().create_engine();
    let ch = engine.clickhouse("dead").unwrap();
    let err = ch.exec("SELECT 1").await.unwrap_err();
    assert!(
        matches!(&err, Error::ClickHouse { pool, .. } if pool == "dead"),
        "{err:?}"
    );
    let err = ch.insert("t", &[Pair { id: 1, v: 1 }]).await.unwrap_err();
    assert!(matches!(&err, Error::ClickHouse { .. }), "{err:?}");

    // A server that accepts and never answers: the query timeout ends the wait.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut r = Registry::new();
    r.register_clickhouse_pool("mute", &format!("http://127.0.0.1:{port}"))
        .set_clickhouse_timeouts(
            "mute",
            Duration::from_millis(500),
            Duration::from_millis(300),
        );
    let engine = r.validate().await.unwrap().create_engine();
    let err = engine
        .clickhouse("mute")
        .unwrap()
        .exec("SELECT 1")
        .await
        .unwrap_err();
    match &err {
        Error::Timeout { pool, limit, .. } => {
            assert_eq!(pool, "mute");
            assert_eq!(*limit, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    hold.abort();
}

#[tokio::test]
async fn yaml_registers_a_pool_with_timeouts() {
    let yaml = format!(
        "analytics:\n  clickhouse: {}\n  query_timeout: 30s\n  connect_timeout: 2s\n",
        url()
    );
    let v = Registry::from_yaml(&yaml)
        .unwrap()
        .validate()
        .await
        .unwrap();
    let ch = v.create_engine().clickhouse("analytics").unwrap();
    assert_eq!(ch.database(), "default");
    assert_eq!(ch.query("SELECT 3").fetch_one::<u8>().await.unwrap(), 3);

    for (yaml, needle) in [
        (
            "a:\n  clickhouse: tcp://127.0.0.1:9000\n",
            "ClickHouse pool `a`",
        ),
        ("a:\n  clickhouse: http://h/bad-db\n", "ClickHouse pool `a`"),
        (
            "a:\n  clickhouse: http://h\n  acquire_timeout: 1s\n",
            "acquire_timeout",
        ),
        (
            "a:\n  clickhouse: http://h\n  query_timeout: 0\n",
            "query_timeout",
        ),
    ] {
        let err = match Registry::from_yaml(yaml) {
            Ok(r) => r.validate().await.unwrap_err(),
            Err(e) => e,
        };
        assert!(
            matches!(&err, Error::Config(m) if m.contains(needle)),
            "{yaml}: {err:?}"
        );
    }
}

#[tokio::test]
async fn registry_mistakes_are_reported_at_validate() {
    let mut r = Registry::new();
    r.register_clickhouse_pool("a", "http://u:secret@127.0.0.1:8123/my-db");
    let err = r.validate().await.unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("`a`") && !m.contains("secret")),
        "{err:?}"
    );
    let mut r = Registry::new();
    r.register_clickhouse_pool("a", &url())
        .register_clickhouse_pool("a", &url());
    assert!(matches!(r.validate().await, Err(Error::Config(m)) if m.contains("twice")));
    let mut r = Registry::new();
    r.register_clickhouse_pool("a", &url())
        .set_clickhouse_timeouts("b", Duration::from_secs(1), Duration::from_secs(1));
    assert!(matches!(
        r.validate().await,
        Err(Error::UnknownPool { kind: "clickhouse", pool, .. }) if pool == "b"
    ));
    let mut r = Registry::new();
    r.register_clickhouse_pool("a", &url())
        .set_clickhouse_timeouts("a", Duration::ZERO, Duration::from_secs(1));
    assert!(matches!(r.validate().await, Err(Error::Config(m)) if m.contains("above zero")));
    let mut r = Registry::new();
    r.register_clickhouse_pool("bad name", &url());
    assert!(matches!(r.validate().await, Err(Error::Config(_))));
}

#[derive(Debug, Clone, PartialEq, clickhouse::Row, Serialize, Deserialize)]
struct Labelled {
    id: u64,
    label: String,
    amount: i64,
}

/// `LowCardinality(T)` reads and writes as `T`; `Decimal(18, 4)` as its `i64` scaled
/// value. 18.16 needs a setting to create a LowCardinality column.
#[tokio::test]
async fn low_cardinality_and_decimal_columns_fit_their_rust_types() {
    let engine = engine().await;
    let ch = engine.clickhouse("analytics").unwrap();
    let t = table("lowcard");
    ch.exec(&format!("DROP TABLE IF EXISTS {t}")).await.unwrap();
    ch.client()
        .clone()
        .with_setting("allow_experimental_low_cardinality_type", "1")
        .query(&format!(
            "CREATE TABLE {t} (id UInt64, label LowCardinality(String), amount Decimal(18, 4)) \
             ENGINE = MergeTree ORDER BY id"
        ))
        .execute()
        .await
        .unwrap();
    let rows: Vec<Labelled> = (1..=100)
        .map(|id| Labelled {
            id,
            label: format!("label {}", id % 3),
            amount: id as i64 * 12_345,
        })
        .collect();
    ch.insert(&t, &rows).await.unwrap();
    let back: Vec<Labelled> = ch
        .query(&format!("SELECT ?fields FROM {t} ORDER BY id"))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(back, rows);
    let total: String = ch
        .query(&format!("SELECT toString(sum(amount)) FROM {t}"))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(total, "6234.2250");
    ch.exec(&format!("DROP TABLE {t}")).await.unwrap();
}
