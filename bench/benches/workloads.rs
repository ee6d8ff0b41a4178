//! diesel_bench's workloads for beeorm (uncached, local cache, Redis cache) and the raw
//! drivers (mysql_async, tokio-postgres, rusqlite), on MariaDB, PostgreSQL and SQLite,
//! interleaved (see `bench/src/interleave.rs`):
//!
//! - `trivial_N` (N = 1, 10, 100, 1000, 10000): the first N users;
//! - `medium`: 500 users with `hair_color = 'black'` and their posts — the raw drivers
//!   with one `LEFT JOIN`, beeorm with two queries (users, then posts `IN` their IDs:
//!   beeorm's query builder has no joins);
//! - `insert_N` (N = 1, 10, 25, 50, 100): N new users in one statement;
//! - `associations`: 100 users → their 1,000 posts → those posts' 10,000 comments.
//!
//! `beeorm+local` is a single process's local cache (no Redis registered, so no
//! invalidation channel); `beeorm+redis` the Redis cache alone.
//! The cached modes read lists the way a cached application does: IDs from the
//! database (`search_ids`), rows through the entity cache (`load_by_ids`); uncached
//! beeorm reads rows with `search`. Inserts are the same call in every mode (the
//! caches only add their write protocol).
//!
//! ```text
//! cargo bench -p bench --bench workloads            # 5 rounds; ROUNDS=… SAMPLE_MS=…
//! ```
//! Prints a markdown table (median per operation, spread over rounds, ratio to the raw
//! driver) and writes JSON lines to `$CARGO_TARGET_DIR/workloads.jsonl` (or appends
//! them to `$WORKLOADS_OUT`, tagged with `$ROUND`). `PREPARE=only` creates and fills
//! the tables and exits; `PREPARE=0` uses them as they are; `WORKLOADS_SQLITE` names
//! the SQLite file (a temporary one otherwise); `ONLY=medium,insert_1` runs just those. `bench/run-peers` uses these to run
//! this bench and the peers' one (`bench/peers`) in alternating rounds on one data set.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use beeorm::{Engine, Pager, Registry, Tracked, ValidatedRegistry, Where};
use bench::interleave::{self, Case, Line, Plan};
use mysql_async::prelude::Queryable;
use tokio::runtime::Runtime;

const USERS: u64 = 10_000;
/// Users 1..=ASSOC_USERS have 10 posts each, each with 10 comments.
const ASSOC_USERS: u64 = 100;
const TRIVIAL: [u64; 5] = [1, 10, 100, 1000, 10_000];
const INSERTS: [usize; 5] = [1, 10, 25, 50, 100];
/// `medium` reads users MEDIUM_FROM..MEDIUM_FROM+999 (half of them black-haired).
const MEDIUM_FROM: u64 = 101;

macro_rules! entities {
    ($module:ident $(, $cache:ident)*) => {
        mod $module {
            #[derive(beeorm::Entity, Clone, Debug)]
            #[orm(table = "wl_users" $(, $cache)*)]
            pub struct User {
                pub id: u64,
                #[orm(length = 50)]
                pub name: String,
                #[orm(length = 10, index = "Hair")]
                pub hair_color: Option<String>,
            }

            #[derive(beeorm::Entity, Clone, Debug)]
            #[orm(table = "wl_posts" $(, $cache)*)]
            pub struct Post {
                pub id: u64,
                #[orm(index = "User")]
                pub user_id: i64,
                #[orm(length = 100)]
                pub title: String,
            }

            #[derive(beeorm::Entity, Clone, Debug)]
            #[orm(table = "wl_comments" $(, $cache)*)]
            pub struct Comment {
                pub id: u64,
                #[orm(index = "Post")]
                pub post_id: i64,
                #[orm(length = 100)]
                pub text: String,
            }

            #[derive(beeorm::Entity, Clone, Debug)]
            #[orm(table = "wl_new_users")]
            pub struct NewUser {
                pub id: u64,
                #[orm(length = 50)]
                pub name: String,
                #[orm(length = 10)]
                pub hair_color: Option<String>,
            }
        }
    };
}

entities!(local, local_cache);
entities!(remote, redis_cache);

/// A plain row, for the raw drivers.
#[allow(dead_code)]
struct Row3(u64, String, Option<String>);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dialect {
    MySql,
    Postgres,
    Sqlite,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::MySql => "mysql",
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }

    fn raw(self) -> &'static str {
        match self {
            Dialect::MySql => "mysql_async",
            Dialect::Postgres => "tokio-postgres",
            Dialect::Sqlite => "rusqlite",
        }
    }
}

fn env(k: &str, default: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| default.into())
}

fn mysql_url() -> String {
    env("BEEORM_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
}

fn postgres_url() -> String {
    env(
        "BEEORM_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

/// The cache mode of a beeorm registry.
#[derive(Clone, Copy)]
enum Mode {
    Uncached,
    Local,
    Redis,
}

fn registry(d: Dialect, sqlite: &str, mode: Mode) -> Registry {
    let mut r = Registry::new();
    match d {
        Dialect::MySql => r.register_mysql_pool("default", &mysql_url()),
        Dialect::Postgres => r.register_postgres_pool("default", &postgres_url()),
        Dialect::Sqlite => r.register_sqlite_pool("default", sqlite),
    };
    // The local mode is one process's cache: no Redis, so no invalidation channel
    // (with one, the local layer serves only while the channel's heartbeat is fresh,
    // and these back-to-back synchronous SQLite reads on a current-thread runtime
    // never let its task run).
    if !matches!(mode, Mode::Local) {
        r.register_redis_pool(
            "default",
            &env("BEEORM_REDIS_URL", "redis://127.0.0.1:6379"),
            0,
        );
    }
    r.register_local_cache("default", 200_000)
        .set_cache_namespace(&format!("wl-{}-{}", d.name(), std::process::id()))
        .set_cache_stats_interval(Duration::ZERO);
    match mode {
        Mode::Local => {
            r.register_entity::<local::User>()
                .register_entity::<local::Post>()
                .register_entity::<local::Comment>()
                .register_entity::<local::NewUser>();
        }
        Mode::Uncached | Mode::Redis => {
            r.set_entity_caches_enabled(!matches!(mode, Mode::Uncached))
                .register_entity::<remote::User>()
                .register_entity::<remote::Post>()
                .register_entity::<remote::Comment>()
                .register_entity::<remote::NewUser>();
        }
    }
    r
}

/// Drops and creates the tables, and fills them.
async fn prepare(d: Dialect, sqlite: &str) -> ValidatedRegistry {
    let v = registry(d, sqlite, Mode::Uncached)
        .validate()
        .await
        .unwrap();
    let e = v.create_engine();
    let db = e.db("default").unwrap();
    for t in ["wl_comments", "wl_posts", "wl_users", "wl_new_users"] {
        db.execute(&format!("DROP TABLE IF EXISTS {t}"), vec![])
            .await
            .unwrap();
    }
    for a in e.alters().await.unwrap() {
        if a.sql.contains("wl_") {
            a.exec(&e).await.unwrap();
        }
    }
    let hair = |i: u64| {
        Some(
            if i.is_multiple_of(2) {
                "black"
            } else {
                "brown"
            }
            .to_string(),
        )
    };
    let mut users: Vec<_> = (1..=USERS)
        .map(|i| {
            Tracked::new(remote::User {
                id: i,
                name: format!("user {i}"),
                hair_color: hair(i),
            })
        })
        .collect();
    for chunk in users.chunks_mut(1000) {
        e.flusher().track_all(chunk).flush().await.unwrap();
    }
    let mut posts = Vec::new();
    let mut next_post = 1;
    for u in 1..=USERS {
        let n = if u <= ASSOC_USERS { 10 } else { 1 };
        for _ in 0..n {
            posts.push(Tracked::new(remote::Post {
                id: next_post,
                user_id: u as i64,
                title: format!("post {next_post}"),
            }));
            next_post += 1;
        }
    }
    for chunk in posts.chunks_mut(1000) {
        e.flusher().track_all(chunk).flush().await.unwrap();
    }
    let mut comments = Vec::new();
    for p in 1..=ASSOC_USERS * 10 {
        for k in 0..10 {
            let id = (p - 1) * 10 + k + 1;
            comments.push(Tracked::new(remote::Comment {
                id,
                post_id: p as i64,
                text: format!("comment {id}"),
            }));
        }
    }
    for chunk in comments.chunks_mut(1000) {
        e.flusher().track_all(chunk).flush().await.unwrap();
    }
    v
}

fn timed<F: std::future::Future<Output = ()>>(rt: &Runtime, f: F) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        f.await;
        start.elapsed()
    })
}

fn placeholders(d: Dialect, n: usize, first: usize) -> String {
    (0..n)
        .map(|i| match d {
            Dialect::Postgres => format!("${}", first + i),
            _ => "?".to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn insert_sql(d: Dialect, n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|r| format!("({})", placeholders(d, 2, r * 2 + 1)))
        .collect();
    format!(
        "INSERT INTO wl_new_users (name, hair_color) VALUES {}",
        rows.join(",")
    )
}

/// With the `LIMIT` beeorm's pager adds (every library sends it: without it
/// PostgreSQL's generic plan for `id <= $1` scans and sorts the table).
const TRIVIAL_SQL: &str =
    "SELECT id, name, hair_color FROM wl_users WHERE id <= ? ORDER BY id LIMIT ?";
const MEDIUM_SQL: &str = "SELECT u.id, u.name, u.hair_color, p.id, p.user_id, p.title \
     FROM wl_users u LEFT JOIN wl_posts p ON p.user_id = u.id \
     WHERE u.hair_color = ? AND u.id BETWEEN ? AND ?";

/// The raw driver of a dialect.
enum Raw {
    MySql(tokio::sync::Mutex<mysql_async::Conn>),
    /// With its prepared statements by SQL text (tokio-postgres keeps none itself).
    Postgres(
        tokio_postgres::Client,
        std::sync::Mutex<std::collections::HashMap<String, tokio_postgres::Statement>>,
    ),
    Sqlite(rusqlite::Connection),
}

async fn raw(d: Dialect, sqlite: &str) -> Raw {
    match d {
        Dialect::MySql => Raw::MySql(tokio::sync::Mutex::new(
            mysql_async::Conn::new(mysql_async::Opts::from_url(&mysql_url()).unwrap())
                .await
                .unwrap(),
        )),
        Dialect::Postgres => {
            let (client, conn) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            Raw::Postgres(client, Default::default())
        }
        Dialect::Sqlite => {
            let c = rusqlite::Connection::open(sqlite).unwrap();
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                .unwrap();
            Raw::Sqlite(c)
        }
    }
}

fn pg_sql(sql: &str) -> String {
    let mut out = String::new();
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

impl Raw {
    /// The prepared statement of `sql` on PostgreSQL, prepared once.
    async fn statement(
        c: &tokio_postgres::Client,
        cache: &std::sync::Mutex<std::collections::HashMap<String, tokio_postgres::Statement>>,
        sql: &str,
    ) -> tokio_postgres::Statement {
        if let Some(s) = cache.lock().unwrap().get(sql) {
            return s.clone();
        }
        let s = c.prepare(sql).await.unwrap();
        cache.lock().unwrap().insert(sql.to_string(), s.clone());
        s
    }

    /// Rows of a 3-column user query.
    async fn users(&self, sql: &str, params: Vec<i64>) -> Vec<Row3> {
        match self {
            Raw::MySql(c) => {
                let mut c = c.lock().await;
                c.exec_map(
                    sql,
                    params,
                    |(id, name, hair): (u64, String, Option<String>)| Row3(id, name, hair),
                )
                .await
                .unwrap()
            }
            Raw::Postgres(c, cache) => {
                let stmt = Self::statement(c, cache, &pg_sql(sql)).await;
                let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                c.query(&stmt, &p)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| Row3(r.get::<_, i64>(0) as u64, r.get(1), r.get(2)))
                    .collect()
            }
            Raw::Sqlite(c) => {
                let mut s = c.prepare_cached(sql).unwrap();
                s.query_map(rusqlite::params_from_iter(params), |r| {
                    Ok(Row3(r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
        }
    }

    async fn medium(&self) -> usize {
        let black = "black".to_string();
        let (lo, hi) = (MEDIUM_FROM as i64, (MEDIUM_FROM + 999) as i64);
        type Joined = (
            u64,
            String,
            Option<String>,
            Option<u64>,
            Option<u64>,
            Option<String>,
        );
        match self {
            Raw::MySql(c) => {
                let mut c = c.lock().await;
                let rows: Vec<Joined> = c.exec(MEDIUM_SQL, (black, lo, hi)).await.unwrap();
                rows.len()
            }
            Raw::Postgres(c, cache) => {
                let stmt = Self::statement(c, cache, &pg_sql(MEDIUM_SQL)).await;
                let rows = c.query(&stmt, &[&black, &lo, &hi]).await.unwrap();
                let v: Vec<Joined> = rows
                    .iter()
                    .map(|r| {
                        (
                            r.get::<_, i64>(0) as u64,
                            r.get(1),
                            r.get(2),
                            r.get::<_, Option<i64>>(3).map(|v| v as u64),
                            r.get::<_, Option<i64>>(4).map(|v| v as u64),
                            r.get(5),
                        )
                    })
                    .collect();
                v.len()
            }
            Raw::Sqlite(c) => {
                let mut s = c.prepare_cached(MEDIUM_SQL).unwrap();
                let v: Vec<Joined> = s
                    .query_map(rusqlite::params![black, lo, hi], |r| {
                        Ok((
                            r.get::<_, i64>(0)? as u64,
                            r.get(1)?,
                            r.get(2)?,
                            r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                            r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                            r.get(5)?,
                        ))
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                v.len()
            }
        }
    }

    /// IDs and a text column of `table` rows whose `column` is in `keys`.
    async fn children(
        &self,
        d: Dialect,
        table: &str,
        column: &str,
        keys: &[u64],
    ) -> Vec<(u64, u64, String)> {
        let text = if table == "wl_posts" { "title" } else { "text" };
        match self {
            Raw::MySql(c) => {
                let sql = format!(
                    "SELECT id, {column}, {text} FROM {table} WHERE {column} IN ({})",
                    placeholders(d, keys.len(), 1)
                );
                let mut c = c.lock().await;
                c.exec(sql, keys.to_vec()).await.unwrap()
            }
            Raw::Postgres(c, cache) => {
                let sql =
                    format!("SELECT id, {column}, {text} FROM {table} WHERE {column} = ANY($1)");
                let stmt = Self::statement(c, cache, &sql).await;
                let keys: Vec<i64> = keys.iter().map(|k| *k as i64).collect();
                c.query(&stmt, &[&keys])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| {
                        (
                            r.get::<_, i64>(0) as u64,
                            r.get::<_, i64>(1) as u64,
                            r.get(2),
                        )
                    })
                    .collect()
            }
            Raw::Sqlite(c) => {
                let sql = format!(
                    "SELECT id, {column}, {text} FROM {table} WHERE {column} IN ({})",
                    placeholders(d, keys.len(), 1)
                );
                let mut s = c.prepare_cached(&sql).unwrap();
                s.query_map(
                    rusqlite::params_from_iter(keys.iter().map(|k| *k as i64)),
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)? as u64,
                            r.get::<_, i64>(1)? as u64,
                            r.get(2)?,
                        ))
                    },
                )
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
        }
    }

    async fn insert(&self, d: Dialect, n: usize) {
        let sql = insert_sql(d, n);
        match self {
            Raw::MySql(c) => {
                let mut params: Vec<mysql_async::Value> = Vec::with_capacity(n * 2);
                for i in 0..n {
                    params.push(format!("new {i}").into());
                    params.push("black".into());
                }
                c.lock().await.exec_drop(sql, params).await.unwrap();
            }
            Raw::Postgres(c, cache) => {
                let stmt = Self::statement(c, cache, &sql).await;
                let values: Vec<String> = (0..n)
                    .flat_map(|i| [format!("new {i}"), "black".to_string()])
                    .collect();
                let p: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                    .iter()
                    .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                c.execute(&stmt, &p).await.unwrap();
            }
            Raw::Sqlite(c) => {
                let values: Vec<String> = (0..n)
                    .flat_map(|i| [format!("new {i}"), "black".to_string()])
                    .collect();
                c.prepare_cached(&sql)
                    .unwrap()
                    .execute(rusqlite::params_from_iter(values))
                    .unwrap();
            }
        }
    }
}

/// One workload of beeorm, generic over the entity set of a cache mode.
macro_rules! beeorm_ops {
    ($m:ident) => {
        pub mod $m {
            use super::*;
            use crate::$m::{Comment, NewUser, Post, User};

            pub async fn trivial(e: &Engine, n: u64, cached: bool) -> usize {
                let w = Where::new("id <= ? ORDER BY id", n);
                let page = Pager::new(1, n);
                if cached {
                    let ids = e.read().search_ids::<User>(&w, page).await.unwrap();
                    e.load_by_ids::<User>(&ids).await.unwrap().0.len()
                } else {
                    e.read().search::<User>(&w, page).await.unwrap().len()
                }
            }

            async fn rows<E: beeorm::Entity>(
                e: &Engine,
                w: &Where,
                cached: bool,
            ) -> Vec<Tracked<E>> {
                let page = Pager::new(1, 100_000);
                if cached {
                    let ids = e.read().search_ids::<E>(w, page).await.unwrap();
                    e.load_by_ids::<E>(&ids).await.unwrap().0
                } else {
                    e.read().search::<E>(w, page).await.unwrap()
                }
            }

            pub async fn medium(e: &Engine, cached: bool) -> usize {
                let w = Where::new(
                    "hair_color = ? AND id BETWEEN ? AND ?",
                    ("black", MEDIUM_FROM, MEDIUM_FROM + 999),
                );
                let users = rows::<User>(e, &w, cached).await;
                let ids: Vec<u64> = users.iter().map(|u| u.id).collect();
                let posts = rows::<Post>(e, &Where::new("user_id IN ?", ids), cached).await;
                users.len() + posts.len()
            }

            pub async fn associations(e: &Engine, cached: bool) -> usize {
                let users = rows::<User>(e, &Where::new("id <= ?", ASSOC_USERS), cached).await;
                let ids: Vec<u64> = users.iter().map(|u| u.id).collect();
                let posts = rows::<Post>(e, &Where::new("user_id IN ?", ids), cached).await;
                let ids: Vec<u64> = posts.iter().map(|p| p.id).collect();
                let comments = rows::<Comment>(e, &Where::new("post_id IN ?", ids), cached).await;
                users.len() + posts.len() + comments.len()
            }

            pub async fn insert(e: &Engine, n: usize) {
                let mut batch: Vec<_> = (0..n)
                    .map(|i| {
                        Tracked::new(NewUser {
                            id: 0,
                            name: format!("new {i}"),
                            hair_color: Some("black".into()),
                        })
                    })
                    .collect();
                e.flusher().track_all(&mut batch).flush().await.unwrap();
            }
        }
    };
}

mod ops {
    use super::*;
    beeorm_ops!(local);
    beeorm_ops!(remote);
}

fn run_dialect(rt: &Runtime, d: Dialect, plan: Plan, sqlite: &str, fill: bool) -> Vec<Line> {
    if fill {
        let setup = rt.block_on(prepare(d, sqlite));
        rt.block_on(setup.close());
    }
    let uncached = rt
        .block_on(registry(d, sqlite, Mode::Uncached).validate())
        .unwrap();
    let localr = rt
        .block_on(registry(d, sqlite, Mode::Local).validate())
        .unwrap();
    let redisr = rt
        .block_on(registry(d, sqlite, Mode::Redis).validate())
        .unwrap();
    let raw = rt.block_on(raw(d, sqlite));
    // One engine per operation, as one request would: no request cache across them.
    let (u, l, r) = (&uncached, &localr, &redisr);
    let mut lines = Vec::new();
    // ONLY=medium,insert_1: just those workloads (for profiling).
    let only = env("ONLY", "");
    let mut workload = |name: String, cases: &mut [Case<'_>]| {
        if !only.is_empty() && !only.split(',').any(|w| w == name) {
            return;
        }
        eprintln!("{} {name}", d.name());
        let figures = interleave::run(plan, cases);
        lines.push(Line {
            dialect: d.name(),
            workload: name,
            figures,
        });
    };
    let raw_ref = &raw;
    for n in TRIVIAL {
        workload(
            format!("trivial_{n}"),
            &mut [
                Case {
                    library: "beeorm",
                    op: Box::new(move || {
                        timed(rt, async move {
                            ops::remote::trivial(&u.create_engine(), n, false).await;
                        })
                    }),
                },
                Case {
                    library: "beeorm+local",
                    op: Box::new(move || {
                        timed(rt, async move {
                            ops::local::trivial(&l.create_engine(), n, true).await;
                        })
                    }),
                },
                Case {
                    library: "beeorm+redis",
                    op: Box::new(move || {
                        timed(rt, async move {
                            ops::remote::trivial(&r.create_engine(), n, true).await;
                        })
                    }),
                },
                Case {
                    library: d.raw(),
                    op: Box::new(move || {
                        timed(rt, async move {
                            raw_ref.users(TRIVIAL_SQL, vec![n as i64, n as i64]).await;
                        })
                    }),
                },
            ],
        );
    }
    workload(
        "medium".into(),
        &mut [
            Case {
                library: "beeorm",
                op: Box::new(move || {
                    timed(rt, async move {
                        ops::remote::medium(&u.create_engine(), false).await;
                    })
                }),
            },
            Case {
                library: "beeorm+local",
                op: Box::new(move || {
                    timed(rt, async move {
                        ops::local::medium(&l.create_engine(), true).await;
                    })
                }),
            },
            Case {
                library: "beeorm+redis",
                op: Box::new(move || {
                    timed(rt, async move {
                        ops::remote::medium(&r.create_engine(), true).await;
                    })
                }),
            },
            Case {
                library: d.raw(),
                op: Box::new(move || {
                    timed(rt, async move {
                        raw_ref.medium().await;
                    })
                }),
            },
        ],
    );
    for n in INSERTS {
        workload(
            format!("insert_{n}"),
            &mut [
                Case {
                    library: "beeorm",
                    op: Box::new(move || {
                        timed(rt, async move {
                            ops::remote::insert(&u.create_engine(), n).await
                        })
                    }),
                },
                Case {
                    library: "beeorm+local",
                    op: Box::new(move || {
                        timed(rt, async move {
                            ops::local::insert(&l.create_engine(), n).await
                        })
                    }),
                },
                Case {
                    library: "beeorm+redis",
                    op: Box::new(move || {
                        timed(rt, async move {
                            ops::remote::insert(&r.create_engine(), n).await
                        })
                    }),
                },
                Case {
                    library: d.raw(),
                    op: Box::new(move || timed(rt, async move { raw_ref.insert(d, n).await })),
                },
            ],
        );
    }
    workload(
        "associations".into(),
        &mut [
            Case {
                library: "beeorm",
                op: Box::new(move || {
                    timed(rt, async move {
                        ops::remote::associations(&u.create_engine(), false).await;
                    })
                }),
            },
            Case {
                library: "beeorm+local",
                op: Box::new(move || {
                    timed(rt, async move {
                        ops::local::associations(&l.create_engine(), true).await;
                    })
                }),
            },
            Case {
                library: "beeorm+redis",
                op: Box::new(move || {
                    timed(rt, async move {
                        ops::remote::associations(&r.create_engine(), true).await;
                    })
                }),
            },
            Case {
                library: d.raw(),
                op: Box::new(move || {
                    timed(rt, async move {
                        let users = raw_ref
                            .users(
                                "SELECT id, name, hair_color FROM wl_users WHERE id <= ?",
                                vec![ASSOC_USERS as i64],
                            )
                            .await;
                        let ids: Vec<u64> = users.iter().map(|u| u.0).collect();
                        let posts = raw_ref.children(d, "wl_posts", "user_id", &ids).await;
                        let ids: Vec<u64> = posts.iter().map(|p| p.0).collect();
                        raw_ref.children(d, "wl_comments", "post_id", &ids).await;
                    })
                }),
            },
        ],
    );
    rt.block_on(async {
        let e = redisr.create_engine();
        for ent in ["User", "Post", "Comment"] {
            let _ = e.clear_cached_entity(ent).await;
        }
    });
    lines
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let rounds: usize = env("ROUNDS", "5").parse().unwrap();
    let sample_ms: u64 = env("SAMPLE_MS", "20").parse().unwrap();
    let round_tag: usize = env("ROUND", "0").parse().unwrap();
    // PREPARE=only: create and fill the tables, then exit (bench/run-peers does this
    // once, so the peers in bench/peers read the same rows); PREPARE=0: use them as
    // they are.
    let prepare_mode = env("PREPARE", "1");
    let plan = Plan {
        rounds,
        samples: 5,
        sample_time: Duration::from_millis(sample_ms),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = std::env::var("WORKLOADS_SQLITE").unwrap_or_else(|_| {
        dir.path()
            .join("workloads.db")
            .to_string_lossy()
            .into_owned()
    });
    let dialects: Vec<Dialect> = env("DIALECTS", "mysql,postgres,sqlite")
        .split(',')
        .filter_map(|d| match d {
            "mysql" => Some(Dialect::MySql),
            "postgres" => Some(Dialect::Postgres),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        })
        .collect();
    if prepare_mode == "only" {
        for d in dialects {
            eprintln!("{}: preparing the tables", d.name());
            let v = rt.block_on(prepare(d, &sqlite));
            rt.block_on(v.close());
        }
        return;
    }
    let mut lines = Vec::new();
    for d in dialects {
        lines.extend(run_dialect(&rt, d, plan, &sqlite, prepare_mode != "0"));
    }
    let raw = |dialect: &str| match dialect {
        "mysql" => Dialect::MySql.raw(),
        "postgres" => Dialect::Postgres.raw(),
        _ => Dialect::Sqlite.raw(),
    };
    interleave::publish(&lines, raw, round_tag, "workloads.jsonl");
}
