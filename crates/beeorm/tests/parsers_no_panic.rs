//! Issue 10 item 9: every public parser takes any input without panicking, looping
//! forever or blowing the stack: `Where::new`, the `QueryBuilder`, MySQL and
//! PostgreSQL DSNs, the YAML configuration, and Redis addresses (single server,
//! Sentinel, Cluster). Bounded property tests (a few thousand cases in all, a few
//! seconds) over arbitrary strings and structure-aware ones (SQL-ish tokens, quotes,
//! backticks, `?`, non-ASCII text), plus very long and deeply nested inputs. A panic
//! fails the property. Where beeorm renders SQL, a scenario runs it on every dialect.
#![allow(clippy::unwrap_used, dead_code)]

mod common;

use std::time::{Duration, Instant};

use beeorm::prelude::*;
use beeorm::query::{Driver, Param, QueryBuilder};
use beeorm::{Registry, Value};
use common::{sync, TestDb};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

// ------------------------------------------------------------ Where, on every dialect

#[derive(Entity, Debug, Clone, PartialEq)]
#[orm(table = "cafe_guests")]
struct Guest {
    id: u64,
    #[orm(length = 50)]
    name: String,
    age: u32,
}

dialect_test!(
    a_where_with_non_ascii_text_outside_quotes_runs,
    |db: TestDb| async move {
        let mut r = db.registry();
        r.register_entity::<Guest>();
        let engine = r.validate().await.unwrap().create_engine();
        sync(&engine).await;
        let mut f = engine.flusher();
        let mut guests: Vec<Tracked<Guest>> = [("کاظم", 30), ("Zoë", 17), ("Ann", 40)]
            .into_iter()
            .map(|(n, a)| {
                Tracked::new(Guest {
                    id: 0,
                    name: n.into(),
                    age: a,
                })
            })
            .collect();
        for g in guests.iter_mut() {
            f.track(g);
        }
        f.flush().await.unwrap();
        // `≥`, Persian and "café" outside quotes (in comments, which every dialect
        // accepts), before a `?`, and before the `ORDER BY` tail that `Where` splits off.
        let w = Where::new(
            "`age` >= ? /* age ≥ 18, سن café */ AND `name` <> ? /* é */ ORDER BY `age` /* ≥ */ DESC",
            (18, "Ann"),
        );
        assert_eq!(w.params().len(), 2);
        assert!(w.tail().starts_with("ORDER BY"), "{w:?}");
        let found = engine.search::<Guest>(&w, Pager::new(1, 10)).await.unwrap();
        assert_eq!(
            found.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["کاظم"]
        );
        let w = Where::new("`name` IN ? /* کاظم, Zoë */", vec!["کاظم", "Zoë"]);
        let (_, total) = engine
            .search_with_count::<Guest>(&w, Pager::new(1, 10))
            .await
            .unwrap();
        assert_eq!(total, 2);
        db.drop().await;
    }
);

/// The examples of the issue, rendered (no server needed): they used to panic.
#[test]
fn where_new_takes_the_issues_examples() {
    let w = Where::new("`age` ≥ ?", 1);
    assert_eq!((w.sql().as_str(), w.params().len()), ("`age` ≥ ?", 1));
    let w = Where::new("سن > ? ORDER BY سن", 1);
    assert_eq!((w.condition(), w.tail()), ("سن > ?", "ORDER BY سن"));
    let w = Where::new("`a` = ? -- café", 1);
    assert_eq!(w.sql(), "`a` = ? -- café");
    let w = Where::new("é LIMIT 1", ());
    assert_eq!(w.tail(), "LIMIT 1");
}

// ------------------------------------------------------------------ strategies

const CASES: u32 = 600;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Concatenations of `tokens` and arbitrary characters: inputs near the grammar,
/// where a parser's edge cases are.
fn woven(tokens: &'static [&'static str], max: usize) -> BoxedStrategy<String> {
    let token = prop_oneof![
        3 => proptest::sample::select(tokens).prop_map(str::to_string),
        1 => any::<char>().prop_map(String::from),
        1 => "[a-z0-9_]{1,8}",
        1 => "[ -~]{0,4}",
        1 => proptest::sample::select(&["é", "≥", "سن", "café", "کاظم", "😀", "\u{0}", "\u{feff}", "\u{301}"][..])
            .prop_map(str::to_string),
    ];
    proptest::collection::vec(token, 0..max)
        .prop_map(|parts| parts.concat())
        .boxed()
}

/// Arbitrary strings and structure-aware ones.
fn inputs(tokens: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        1 => any::<String>(),
        1 => "\\PC{0,64}",
        3 => woven(tokens, 48),
    ]
    .boxed()
}

const SQL_TOKENS: &[&str] = &[
    "?", "?", "`", "'", "\"", "(", ")", " ", "ORDER BY", "order by", "GROUP BY", "LIMIT", "IN",
    " AND ", " OR ", "=", "<>", "≥", "`age`", "'?'", "/*", "*/", "--", "\\", ",", ".", "*", "\n",
    "\t",
];

fn run_where(sql: &str) {
    let marks = sql.matches('?').count();
    for params in [
        Vec::new(),
        vec![Param::One(Value::from(1)); marks],
        (0..marks)
            .map(|i| {
                if i % 2 == 0 {
                    Param::List(vec![Value::from(1), Value::from("é")])
                } else {
                    Param::List(Vec::new())
                }
            })
            .collect(),
    ] {
        let w = Where::new(sql, params);
        let _ = (w.sql(), w.condition(), w.tail(), w.params());
    }
}

// ------------------------------------------------------------------- properties

#[test]
fn where_new_never_panics() {
    runner()
        .run(&inputs(SQL_TOKENS), |sql| {
            run_where(&sql);
            Ok(())
        })
        .unwrap();
}

const IDENT_TOKENS: &[&str] = &[
    "users", "id", "age", "*", ".", "t.c", "`", "\"", "'", " ", ";", "--", "é", "سن", "",
];
const OP_TOKENS: &[&str] = &[
    "=", "!=", "<>", "<", "<=", ">", ">=", "LIKE", "not like", "IN", "in", " = ", "≥", "",
];

#[test]
fn the_query_builder_never_panics() {
    let strategy = (
        inputs(IDENT_TOKENS),
        inputs(IDENT_TOKENS),
        inputs(OP_TOKENS),
        inputs(&["ASC", "desc", " DESC ", "é", ""]),
        0usize..4,
    );
    runner()
        .run(&strategy, |(table, col, op, dir, n)| {
            for driver in [Driver::MYSQL, Driver::POSTGRESQL, Driver::SQLITE3] {
                let mut b = QueryBuilder::<()>::new();
                b.set_driver(driver)
                    .table(&table)
                    .select([col.as_str(), "*"])
                    .where_((col.as_str(), op.as_str(), 1))
                    .or_where((col.as_str(), op.as_str(), vec![1u32; n]))
                    .where_in(&col, vec!["é"; n])
                    .group_by([col.as_str()])
                    .order_by(&col, &dir)
                    .limit(n as u64)
                    .offset(u64::MAX);
                let _ = b.to_sql();
                let _ = QueryBuilder::<()>::new().to_sql();
            }
            Ok(())
        })
        .unwrap();
}

/// `validate()` parses every address and DSN (lazily: it connects to nothing).
fn validate(rt: &tokio::runtime::Runtime, r: &Registry) {
    let _ = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), r.validate())
            .await
            .expect("validate() returns within 10 s")
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

const DSN_TOKENS: &[&str] = &[
    "mysql://",
    "postgres://",
    "postgresql://",
    "root",
    ":",
    "p@ss",
    "@",
    "@tcp(",
    "tcp(",
    ")",
    "(",
    "127.0.0.1",
    "[::1]",
    "localhost",
    ":3306",
    ":99999",
    "/",
    "/test",
    "?",
    "&",
    "=",
    "limit_connections=",
    "limit_connections=0",
    "18446744073709551616",
    "%",
    "%zz",
    "%C3%A9",
    "parseTime=true",
    "charset=utf8",
    "host=",
    "dbname=",
    " ",
    "'",
    "\\",
];

#[test]
fn dsns_never_panic() {
    let rt = runtime();
    runner()
        .run(&inputs(DSN_TOKENS), |dsn| {
            let mut r = Registry::new();
            r.register_mysql_pool("my", &dsn);
            validate(&rt, &r);
            let mut r = Registry::new();
            r.register_mysql_pool_with_encoding("my", &dsn, &dsn);
            validate(&rt, &r);
            let mut r = Registry::new();
            r.register_postgres_pool("pg", &dsn);
            validate(&rt, &r);
            Ok(())
        })
        .unwrap();
}

const REDIS_TOKENS: &[&str] = &[
    "redis://",
    "rediss://",
    "unix:",
    "unix://",
    "redis+unix://",
    ":",
    "::",
    "[",
    "]",
    "[::1]",
    "127.0.0.1",
    "localhost",
    "6379",
    "65536",
    "99999999999",
    "-1",
    "/",
    "/0",
    "/99999999999",
    "?",
    "db=",
    "protocol=resp3",
    "@",
    "user:pw@",
    "%",
    "%zz",
    " ",
    "é",
];

#[test]
fn redis_addresses_never_panic() {
    let rt = runtime();
    runner()
        .run(&(inputs(REDIS_TOKENS), any::<u32>()), |(address, db)| {
            let mut r = Registry::new();
            r.register_redis_pool("r", &address, db);
            validate(&rt, &r);
            let mut r = Registry::new();
            r.register_redis_sentinel("s", &address, &[&address, ":26379"], db);
            validate(&rt, &r);
            let mut r = Registry::new();
            r.register_redis_cluster("c", &[&address]);
            validate(&rt, &r);
            Ok(())
        })
        .unwrap();
}

const YAML_TOKENS: &[&str] = &[
    "default:\n",
    "  mysql: ",
    "  postgres: ",
    "  redis: ",
    "  redis_cluster: ",
    "  sentinel:\n    ",
    "  locker: ",
    "  local_cache: ",
    "  mysqlEncoding: ",
    "  elastic: ",
    "mymaster:2:",
    "\n      - ",
    ":26379",
    "localhost:6379:0",
    "[::1]:6379:3",
    "redis://h:1:2",
    "\n",
    "  ",
    "- ",
    ": ",
    ":",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!tag ",
    "'",
    "\"",
    "#",
    "|",
    ">",
    "---\n",
    "...\n",
    "~",
    "null",
    "-1",
    "1e309",
    "18446744073709551616",
    "é",
    "\t",
];

#[test]
fn yaml_never_panics() {
    let rt = runtime();
    runner()
        .run(&inputs(YAML_TOKENS), |yaml| {
            if let Ok(r) = Registry::from_yaml(&yaml) {
                // SQLite pools would open files: validate the rest only.
                if !yaml.contains("sqlite") {
                    validate(&rt, &r);
                }
            }
            Ok(())
        })
        .unwrap();
}

// -------------------------------------------- very long and deeply nested inputs

/// Each parser on megabyte-long inputs and 100 000 levels of nesting returns (an
/// error is fine) within a few seconds: no recursion, no quadratic blow-up.
#[test]
fn long_and_deeply_nested_inputs_return_quickly() {
    let rt = runtime();
    let deep = 100_000;
    let cases = [
        "(".repeat(deep) + "?" + &")".repeat(deep),
        ")".repeat(deep),
        "`é".repeat(deep),
        "? ".repeat(deep),
        "ORDER BY ".repeat(deep),
        "é≥سن".repeat(deep),
        "'".repeat(deep + 1),
    ];
    let start = Instant::now();
    for sql in &cases {
        let t = Instant::now();
        let marks = sql.matches('?').count();
        let w = Where::new(sql, vec![Param::One(Value::from(1)); marks]);
        let _ = w.sql();
        eprintln!(
            "where {:?}: {:?}",
            sql.chars().take(10).collect::<String>(),
            t.elapsed()
        );
    }
    let yaml_cases = [
        "[".repeat(deep),
        "{a: ".repeat(deep),
        "- ".repeat(deep),
        format!("default:\n  redis: {}\n", "é:".repeat(deep)),
        format!(
            "a: &a [{}]\nb: [*a, *a, *a, *a, *a, *a, *a, *a]\n",
            "x, ".repeat(deep)
        ),
        (0..deep)
            .map(|i| format!("p{i}:\n  local_cache: 1\n"))
            .collect(),
    ];
    for yaml in &yaml_cases {
        let t = Instant::now();
        let _ = Registry::from_yaml(yaml);
        eprintln!(
            "yaml {:?}: {:?}",
            yaml.chars().take(10).collect::<String>(),
            t.elapsed()
        );
    }
    let t = Instant::now();
    let long = "a".repeat(1 << 20);
    let mut r = Registry::new();
    r.register_mysql_pool("my", &format!("{long}@tcp({long})/{long}"));
    validate(&rt, &r);
    let mut r = Registry::new();
    r.register_postgres_pool("pg", &format!("postgres://{long}"));
    validate(&rt, &r);
    let mut r = Registry::new();
    r.register_redis_pool("r", &format!("{long}:{long}"), 0);
    validate(&rt, &r);
    let mut r = Registry::new();
    r.register_redis_cluster("c", &[&long]);
    validate(&rt, &r);
    eprintln!("dsn and addresses: {:?}", t.elapsed());
    let mut b = QueryBuilder::<()>::new();
    b.table(&long).order_by(&long, &long);
    let _ = b.to_sql();
    let took = start.elapsed();
    eprintln!("long and nested inputs: {took:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}
