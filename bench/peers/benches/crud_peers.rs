//! sqlx and SeaORM in the CRUD benchmark of `bench/benches/crud.rs` (issue 3): the same
//! groups (`<dialect>/<operation>`), tables, rows, ID sequences and SQL text, with the
//! libraries `sqlx` and `sea_orm`. See crud.rs for the operations; this workspace exists
//! because sqlx cannot be linked next to beeorm (see `Cargo.toml`).
//!
//! - MariaDB (database `beeorm_bench_crud_peers`, created here and dropped at the end, on
//!   the server of `BEEORM_MYSQL_URL`): `sqlx` (`MySqlPool`, 1 connection, otherwise
//!   defaults; `query_as` + `FromRow`), `sea_orm` (`ConnectOptions` with 1 connection,
//!   otherwise defaults);
//! - SQLite (a temp file; WAL, `synchronous = NORMAL` as beeorm): `sqlx`
//!   (`SqlitePool` of 1 connection) and `sea_orm` (1 connection).
//!
//! One tokio `current_thread` runtime.
//!
//! ```text
//! cargo bench --manifest-path bench/peers/Cargo.toml --bench crud_peers -- --warm-up-time 1 --measurement-time 3
//! ```
#![allow(clippy::unwrap_used)]

#[path = "../../benches/crud_common/mod.rs"]
mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::time::Duration;

use common::{fields, Walk, BATCH, OPS, ROWS};
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;

const MYSQL_DATABASE: &str = "beeorm_bench_crud_peers";

/// What sqlx decodes into.
#[derive(Debug, sqlx::FromRow)]
#[allow(dead_code)]
struct Plain {
    id: u64,
    name: String,
    email: String,
    age: u32,
    score: f64,
    active: bool,
}

/// A new row (`id` 0), built like the entities of crud.rs.
fn new_plain(i: u64) -> Plain {
    let (name, email, age, score, active) = fields(i);
    Plain {
        id: 0,
        name,
        email,
        age,
        score,
        active,
    }
}

/// The shared SQL text as `&'static str`, as a literal in application code would be.
struct Sql {
    by_id: &'static str,
    by_ids: &'static str,
    search: &'static str,
    search_10k: &'static str,
    insert_1: &'static str,
    insert_100: &'static str,
}

impl Sql {
    fn new(q: common::Quote) -> Self {
        let s = common::Sql::new(q);
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        Sql {
            by_id: leak(s.by_id),
            by_ids: leak(s.by_ids),
            search: leak(s.search),
            search_10k: leak(s.search_10k),
            insert_1: leak(s.insert_1),
            insert_100: leak(s.insert_100),
        }
    }
}

/// A SeaORM entity module for `table`, with the `id` type `$id` (SeaORM on SQLite has
/// no `u64`).
macro_rules! sea_entity {
    ($module:ident, $table:literal, $id:ty) => {
        mod $module {
            //! A SeaORM entity of the benchmark tables.
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key)]
                pub id: $id,
                pub name: String,
                pub email: String,
                pub age: u32,
                pub score: f64,
                pub active: bool,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}

            /// A new row (`id` not set) with the values of row `i`.
            #[allow(dead_code)]
            pub fn active(i: u64) -> ActiveModel {
                use sea_orm::ActiveValue::{NotSet, Set};
                let (name, email, age, score, active) = crate::fields(i);
                ActiveModel {
                    id: NotSet,
                    name: Set(name),
                    email: Set(email),
                    age: Set(age),
                    score: Set(score),
                    active: Set(active),
                }
            }
        }
    };
}

sea_entity!(sea_rows, "bench_rows", u64);
sea_entity!(sea_inserts, "bench_inserts", u64);
sea_entity!(sea_rows_lite, "bench_rows", i64);
sea_entity!(sea_inserts_lite, "bench_inserts", i64);

/// The sqlx benchmarks, for a pool of either dialect (`$key`: how IDs are bound;
/// sqlx encodes no `u64` for SQLite).
macro_rules! bench_sqlx {
    ($g:expr, $rt:expr, $op:expr, $pool:expr, $sql:expr, $db:ty, $key:ty) => {{
        let (rt, op, pool, sql): (&Runtime, &str, _, &Sql) = ($rt, $op, $pool, $sql);
        let walk = Walk::new();
        let serial = Cell::new(0u64);
        $g.bench_function("sqlx", |b| match op {
            "insert_1" => b.to_async(rt).iter(|| async {
                serial.set(serial.get() + 1);
                let p = new_plain(serial.get());
                let done = sqlx::query::<$db>(sql.insert_1)
                    .bind(p.name)
                    .bind(p.email)
                    .bind(p.age)
                    .bind(p.score)
                    .bind(p.active)
                    .execute(pool)
                    .await
                    .unwrap();
                black_box(done)
            }),
            "insert_100" => b.to_async(rt).iter(|| async {
                let first = serial.get();
                serial.set(first + BATCH as u64);
                let rows: Vec<Plain> = (1..=BATCH as u64).map(|k| new_plain(first + k)).collect();
                let mut q = sqlx::query::<$db>(sql.insert_100);
                for p in rows {
                    q = q
                        .bind(p.name)
                        .bind(p.email)
                        .bind(p.age)
                        .bind(p.score)
                        .bind(p.active);
                }
                black_box(q.execute(pool).await.unwrap())
            }),
            "load_by_id" => b.to_async(rt).iter(|| async {
                let row: Plain = sqlx::query_as::<$db, Plain>(sql.by_id)
                    .bind(walk.id() as $key)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                black_box(row)
            }),
            "load_by_ids_100" => b.to_async(rt).iter(|| async {
                let mut q = sqlx::query_as::<$db, Plain>(sql.by_ids);
                for id in walk.ids() {
                    q = q.bind(id as $key);
                }
                let rows = q.fetch_all(pool).await.unwrap();
                assert_eq!(rows.len(), BATCH);
                black_box(rows)
            }),
            "search_100" => b.to_async(rt).iter(|| async {
                let rows: Vec<Plain> = sqlx::query_as::<$db, Plain>(sql.search)
                    .bind(walk.lower() as $key)
                    .fetch_all(pool)
                    .await
                    .unwrap();
                assert_eq!(rows.len(), BATCH);
                black_box(rows)
            }),
            "search_10000" => b.to_async(rt).iter(|| async {
                let rows: Vec<Plain> = sqlx::query_as::<$db, Plain>(sql.search_10k)
                    .bind(0 as $key)
                    .fetch_all(pool)
                    .await
                    .unwrap();
                assert_eq!(rows.len() as u64, ROWS);
                black_box(rows)
            }),
            _ => unreachable!("{op}"),
        });
    }};
}

/// The SeaORM benchmarks, for a connection of either dialect, on the entity modules
/// `$rows` and `$inserts` whose IDs are `$key`.
macro_rules! bench_sea_orm {
    ($g:expr, $rt:expr, $op:expr, $db:expr, $rows:ident, $inserts:ident, $key:ty) => {{
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
        let (rt, op, db): (&Runtime, &str, &sea_orm::DatabaseConnection) = ($rt, $op, $db);
        let walk = Walk::new();
        let serial = Cell::new(0u64);
        $g.bench_function("sea_orm", |b| match op {
            "insert_1" => b.to_async(rt).iter(|| async {
                serial.set(serial.get() + 1);
                let done = $inserts::Entity::insert($inserts::active(serial.get()))
                    .exec(db)
                    .await
                    .unwrap();
                black_box(done.last_insert_id)
            }),
            "insert_100" => b.to_async(rt).iter(|| async {
                let first = serial.get();
                serial.set(first + BATCH as u64);
                let done = $inserts::Entity::insert_many(
                    (1..=BATCH as u64).map(|k| $inserts::active(first + k)),
                )
                .exec(db)
                .await
                .unwrap();
                black_box(done.last_insert_id)
            }),
            "load_by_id" => b.to_async(rt).iter(|| async {
                let row = $rows::Entity::find_by_id(walk.id() as $key)
                    .one(db)
                    .await
                    .unwrap()
                    .unwrap();
                black_box(row)
            }),
            "load_by_ids_100" => b.to_async(rt).iter(|| async {
                let rows = $rows::Entity::find()
                    .filter($rows::Column::Id.is_in(walk.ids().into_iter().map(|i| i as $key)))
                    .all(db)
                    .await
                    .unwrap();
                assert_eq!(rows.len(), BATCH);
                black_box(rows)
            }),
            "search_100" => b.to_async(rt).iter(|| async {
                let rows = $rows::Entity::find()
                    .filter($rows::Column::Id.gt(walk.lower() as $key))
                    .limit(BATCH as u64)
                    .all(db)
                    .await
                    .unwrap();
                assert_eq!(rows.len(), BATCH);
                black_box(rows)
            }),
            "search_10000" => b.to_async(rt).iter(|| async {
                let rows = $rows::Entity::find()
                    .filter($rows::Column::Id.gt(0 as $key))
                    .limit(ROWS)
                    .all(db)
                    .await
                    .unwrap();
                assert_eq!(rows.len() as u64, ROWS);
                black_box(rows)
            }),
            _ => unreachable!("{op}"),
        });
    }};
}

/// Creates both tables with beeorm's DDL and fills `bench_rows` like crud.rs does.
async fn setup<DB>(pool: &sqlx::Pool<DB>, ddl: fn(&str) -> String, sql: &common::Sql)
where
    DB: sqlx::Database,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
    String: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    u32: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'static, DB> + sqlx::Type<DB>,
{
    for table in ["bench_rows", "bench_inserts"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl(table)))
            .execute(pool)
            .await
            .expect("create table");
    }
    let head = sql
        .insert_1
        .split(" VALUES ")
        .next()
        .unwrap()
        .replace("bench_inserts", "bench_rows");
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(1_000) {
        let text = format!("{head} VALUES {}", common::value_rows(chunk.len(), 5));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(text));
        for &i in chunk {
            let (name, email, age, score, active) = fields(i);
            q = q.bind(name).bind(email).bind(age).bind(score).bind(active);
        }
        q.execute(pool).await.expect("fill");
    }
}

fn mysql(c: &mut Criterion) {
    use sqlx::Executor;
    let rt = common::runtime();
    let url = common::mysql_server_url();
    let server = common::mysql_url_for(&url, "", "");
    let create = async {
        let admin = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(1)
            .connect(&server)
            .await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{MYSQL_DATABASE}`"
            )))
            .await?;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE `{MYSQL_DATABASE}` CHARACTER SET utf8mb4"
            )))
            .await?;
        Ok::<_, sqlx::Error>(admin)
    };
    let admin = match rt.block_on(create) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("skipping the MariaDB benchmarks: {e}");
            return;
        }
    };
    let db_url = common::mysql_url_for(&url, MYSQL_DATABASE, "");
    let sqlx_pool = rt
        .block_on(
            sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .connect(&db_url),
        )
        .expect("sqlx connect");
    rt.block_on(setup(
        &sqlx_pool,
        common::mysql_ddl,
        &common::Sql::new(common::backtick),
    ));
    let mut opts = sea_orm::ConnectOptions::new(db_url);
    opts.max_connections(1).min_connections(1);
    let sea = rt
        .block_on(sea_orm::Database::connect(opts))
        .expect("sea-orm connect");

    let sql = Sql::new(common::backtick);
    let clear = || {
        rt.block_on(admin.execute(sqlx::AssertSqlSafe(format!(
            "TRUNCATE TABLE `{MYSQL_DATABASE}`.`bench_inserts`"
        ))))
        .expect("clear");
    };
    for op in OPS {
        let mut g = common::group(c, "mysql", op);
        let insert = op.starts_with("insert");
        if insert {
            clear();
        }
        bench_sqlx!(g, &rt, op, &sqlx_pool, &sql, sqlx::MySql, u64);
        if insert {
            clear();
        }
        bench_sea_orm!(g, &rt, op, &sea, sea_rows, sea_inserts, u64);
        g.finish();
    }
    rt.block_on(async {
        sqlx_pool.close().await;
        let _ = sea.close().await;
        if let Err(e) = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE `{MYSQL_DATABASE}`"
            )))
            .await
        {
            eprintln!("could not drop `{MYSQL_DATABASE}`: {e}");
        }
        admin.close().await;
    });
}

fn sqlite(c: &mut Criterion) {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    use sqlx::Executor;
    let rt = common::runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crud.db");
    let with_pragmas = |o: SqliteConnectOptions| {
        o.journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
    };
    let sqlx_pool = rt
        .block_on(
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .connect_with(with_pragmas(
                    SqliteConnectOptions::new()
                        .filename(&path)
                        .create_if_missing(true),
                )),
        )
        .expect("sqlx connect");
    rt.block_on(setup(
        &sqlx_pool,
        common::sqlite_ddl,
        &common::Sql::new(common::double_quote),
    ));
    let mut opts = sea_orm::ConnectOptions::new(format!("sqlite://{}", path.display()));
    opts.max_connections(1)
        .min_connections(1)
        .map_sqlx_sqlite_opts(with_pragmas);
    let sea = rt
        .block_on(sea_orm::Database::connect(opts))
        .expect("sea-orm connect");

    let sql = Sql::new(common::double_quote);
    let clear = || {
        rt.block_on(sqlx_pool.execute("DELETE FROM \"bench_inserts\""))
            .expect("clear");
    };
    for op in OPS {
        let mut g = common::group(c, "sqlite", op);
        let insert = op.starts_with("insert");
        if insert {
            clear();
        }
        bench_sqlx!(g, &rt, op, &sqlx_pool, &sql, sqlx::Sqlite, i64);
        if insert {
            clear();
        }
        bench_sea_orm!(g, &rt, op, &sea, sea_rows_lite, sea_inserts_lite, i64);
        g.finish();
    }
    rt.block_on(async {
        sqlx_pool.close().await;
        let _ = sea.close().await;
    });
}

mod group {
    //! The criterion group (in a private module: the macro makes a `pub fn`).
    use super::*;

    fn config() -> Criterion {
        Criterion::default().warm_up_time(Duration::from_secs(1))
    }

    criterion_group! {
        name = benches;
        config = config();
        targets = mysql, sqlite
    }
}
criterion_main!(group::benches);
