//! diesel_bench's workloads (see `../../benches/workloads.rs`, which owns the tables and
//! their rows) for the peers: `sqlx` 0.9 (MariaDB, PostgreSQL, SQLite), `sea_orm` 2.0
//! (MariaDB, PostgreSQL, SQLite) and `diesel_async` (MariaDB, PostgreSQL: diesel-async
//! has no SQLite connection of its own). Each library has one connection (a pool of one
//! for sqlx and SeaORM) on a tokio `current_thread` runtime; sqlx's statement cache is
//! on (its default), SeaORM's statement logging off.
//!
//! - `trivial_N` (N = 1, 10, 100, 1000, 10000): the first N users (`WHERE id <= N
//!   ORDER BY id LIMIT N`, the `LIMIT` as beeorm's pager sends it);
//! - `medium`: black-haired users 101..=1100 `LEFT JOIN` their posts (sqlx and diesel
//!   write the join, SeaORM `find_also_related`);
//! - `insert_N` (N = 1, 10, 25, 50, 100): N new users in one statement;
//! - `associations`: 100 users → their 1,000 posts → those posts' 10,000 comments in
//!   three queries (`IN`, or `= ANY` for sqlx on PostgreSQL).
//!
//! Every library's row count is checked once before timing, so a wrong query cannot
//! pass for a fast one.
//!
//! ```text
//! PREPARE=only WORKLOADS_SQLITE=/tmp/wl.db cargo bench -p bench --bench workloads   # the tables
//! WORKLOADS_SQLITE=/tmp/wl.db cargo bench --manifest-path bench/peers/Cargo.toml --bench workloads_peers
//! ```
//! Env as in workloads.rs: `ROUNDS` (5), `SAMPLE_MS` (20), `DIALECTS`, `ROUND`,
//! `WORKLOADS_OUT` (append JSON lines; default `$CARGO_TARGET_DIR/workloads_peers.jsonl`).
//! `bench/run-peers` runs both benches in alternating rounds and draws the report.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../src/interleave.rs"]
#[allow(dead_code, unused_imports)]
mod interleave;

use std::future::Future;
use std::time::{Duration, Instant};

use interleave::{Case, Line, Plan};
use tokio::runtime::Runtime;

const ASSOC_USERS: i64 = 100;
const TRIVIAL: [i64; 5] = [1, 10, 100, 1000, 10_000];
const INSERTS: [usize; 5] = [1, 10, 25, 50, 100];
const MEDIUM_FROM: i64 = 101;
/// Rows of `medium`: black-haired users among 1,000 (even IDs), one post each.
const MEDIUM_ROWS: usize = 500;
/// Rows of `associations`: users, posts, comments.
const ASSOC_ROWS: usize = 100 + 1_000 + 10_000;

fn env(k: &str, default: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| default.into())
}

fn timed<F: Future<Output = usize>>(rt: &Runtime, f: F) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        std::hint::black_box(f.await);
        start.elapsed()
    })
}

/// `?,?,?` (or `$1,$2,$3` on PostgreSQL) for `n` values.
fn marks(pg: bool, n: usize, first: usize) -> String {
    (0..n)
        .map(|i| {
            if pg {
                format!("${}", first + i)
            } else {
                "?".into()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn insert_sql(pg: bool, n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|r| format!("({})", marks(pg, 2, r * 2 + 1)))
        .collect();
    format!(
        "INSERT INTO wl_new_users (name, hair_color) VALUES {}",
        rows.join(",")
    )
}

// ---------------------------------------------------------------------------------
// sqlx

/// The rows of `table` whose `column` is in `keys`: one array parameter on PostgreSQL
/// (`= ANY($1)`), a list of placeholders elsewhere (as the raw drivers do).
macro_rules! sqlx_children {
    (array, $db:ty, $pool:expr, $table:expr, $column:expr, $text:expr, $keys:expr) => {{
        let sql = format!(
            "SELECT id, {} AS parent, {} AS text FROM {} WHERE {} = ANY($1)",
            $column, $text, $table, $column
        );
        sqlx::query_as::<$db, Child>(sqlx::AssertSqlSafe(sql))
            .bind($keys)
            .fetch_all($pool)
            .await
            .unwrap()
    }};
    (list, $db:ty, $pool:expr, $table:expr, $column:expr, $text:expr, $keys:expr) => {{
        let sql = format!(
            "SELECT id, {} AS parent, {} AS text FROM {} WHERE {} IN ({})",
            $column,
            $text,
            $table,
            $column,
            marks(false, $keys.len(), 1)
        );
        let mut q = sqlx::query_as::<$db, Child>(sqlx::AssertSqlSafe(sql));
        for k in $keys {
            q = q.bind(*k);
        }
        q.fetch_all($pool).await.unwrap()
    }};
}

/// The sqlx workloads for one database type (`$id`: how the dialect's user key decodes).
macro_rules! sqlx_workloads {
    ($module:ident, $db:ty, $pool:ty, $id:ty, $pg:expr, $keys:ident) => {
        mod $module {
            use super::*;

            #[derive(sqlx::FromRow)]
            #[allow(dead_code)]
            pub struct User {
                pub id: $id,
                pub name: String,
                pub hair_color: Option<String>,
            }

            #[derive(sqlx::FromRow)]
            #[allow(dead_code)]
            pub struct Child {
                pub id: $id,
                pub parent: i64,
                pub text: String,
            }

            #[derive(sqlx::FromRow)]
            #[allow(dead_code)]
            pub struct Joined {
                pub id: $id,
                pub name: String,
                pub hair_color: Option<String>,
                pub post_id: Option<$id>,
                pub user_id: Option<i64>,
                pub title: Option<String>,
            }

            pub async fn trivial(pool: &$pool, n: i64) -> usize {
                let sql = if $pg {
                    "SELECT id, name, hair_color FROM wl_users WHERE id <= $1 ORDER BY id LIMIT $2"
                } else {
                    "SELECT id, name, hair_color FROM wl_users WHERE id <= ? ORDER BY id LIMIT ?"
                };
                sqlx::query_as::<$db, User>(sql)
                    .bind(n)
                    .bind(n)
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .len()
            }

            pub async fn medium(pool: &$pool) -> usize {
                let sql = format!(
                    "SELECT u.id, u.name, u.hair_color, p.id AS post_id, p.user_id, p.title \
                     FROM wl_users u LEFT JOIN wl_posts p ON p.user_id = u.id \
                     WHERE u.hair_color = {} AND u.id BETWEEN {} AND {}",
                    marks($pg, 1, 1),
                    marks($pg, 1, 2),
                    marks($pg, 1, 3)
                );
                sqlx::query_as::<$db, Joined>(sqlx::AssertSqlSafe(sql))
                    .bind("black")
                    .bind(MEDIUM_FROM)
                    .bind(MEDIUM_FROM + 999)
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .len()
            }

            pub async fn insert(pool: &$pool, n: usize) -> usize {
                let sql = insert_sql($pg, n);
                let mut q = sqlx::query::<$db>(sqlx::AssertSqlSafe(sql));
                for i in 0..n {
                    q = q.bind(format!("new {i}")).bind("black");
                }
                q.execute(pool).await.unwrap().rows_affected() as usize
            }

            async fn children(pool: &$pool, table: &str, column: &str, keys: &[i64]) -> Vec<Child> {
                let text = if table == "wl_posts" { "title" } else { "text" };
                sqlx_children!($keys, $db, pool, table, column, text, keys)
            }

            pub async fn associations(pool: &$pool) -> usize {
                let sql = if $pg {
                    "SELECT id, name, hair_color FROM wl_users WHERE id <= $1"
                } else {
                    "SELECT id, name, hair_color FROM wl_users WHERE id <= ?"
                };
                let users = sqlx::query_as::<$db, User>(sql)
                    .bind(ASSOC_USERS)
                    .fetch_all(pool)
                    .await
                    .unwrap();
                let ids: Vec<i64> = users.iter().map(|u| u.id as i64).collect();
                let posts = children(pool, "wl_posts", "user_id", &ids).await;
                let ids: Vec<i64> = posts.iter().map(|p| p.id as i64).collect();
                let comments = children(pool, "wl_comments", "post_id", &ids).await;
                users.len() + posts.len() + comments.len()
            }
        }
    };
}

sqlx_workloads!(sqlx_my, sqlx::MySql, sqlx::MySqlPool, u64, false, list);
sqlx_workloads!(sqlx_pg, sqlx::Postgres, sqlx::PgPool, i64, true, array);
sqlx_workloads!(sqlx_lite, sqlx::Sqlite, sqlx::SqlitePool, i64, false, list);

// ---------------------------------------------------------------------------------
// SeaORM

/// SeaORM entities of the workload tables, with the user key type `$id`.
macro_rules! sea_entities {
    ($module:ident, $id:ty) => {
        pub mod $module {
            pub mod user {
                use sea_orm::entity::prelude::*;

                #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
                #[sea_orm(table_name = "wl_users")]
                pub struct Model {
                    #[sea_orm(primary_key)]
                    pub id: $id,
                    pub name: String,
                    pub hair_color: Option<String>,
                }

                #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
                pub enum Relation {
                    #[sea_orm(has_many = "super::post::Entity")]
                    Post,
                }

                impl Related<super::post::Entity> for Entity {
                    fn to() -> RelationDef {
                        Relation::Post.def()
                    }
                }

                impl ActiveModelBehavior for ActiveModel {}
            }

            pub mod post {
                use sea_orm::entity::prelude::*;

                #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
                #[sea_orm(table_name = "wl_posts")]
                pub struct Model {
                    #[sea_orm(primary_key)]
                    pub id: $id,
                    pub user_id: i64,
                    pub title: String,
                }

                #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
                pub enum Relation {
                    #[sea_orm(
                        belongs_to = "super::user::Entity",
                        from = "Column::UserId",
                        to = "super::user::Column::Id"
                    )]
                    User,
                    #[sea_orm(has_many = "super::comment::Entity")]
                    Comment,
                }

                impl Related<super::user::Entity> for Entity {
                    fn to() -> RelationDef {
                        Relation::User.def()
                    }
                }

                impl Related<super::comment::Entity> for Entity {
                    fn to() -> RelationDef {
                        Relation::Comment.def()
                    }
                }

                impl ActiveModelBehavior for ActiveModel {}
            }

            pub mod comment {
                use sea_orm::entity::prelude::*;

                #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
                #[sea_orm(table_name = "wl_comments")]
                pub struct Model {
                    #[sea_orm(primary_key)]
                    pub id: $id,
                    pub post_id: i64,
                    pub text: String,
                }

                #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
                pub enum Relation {
                    #[sea_orm(
                        belongs_to = "super::post::Entity",
                        from = "Column::PostId",
                        to = "super::post::Column::Id"
                    )]
                    Post,
                }

                impl Related<super::post::Entity> for Entity {
                    fn to() -> RelationDef {
                        Relation::Post.def()
                    }
                }

                impl ActiveModelBehavior for ActiveModel {}
            }

            pub mod new_user {
                use sea_orm::entity::prelude::*;

                #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
                #[sea_orm(table_name = "wl_new_users")]
                pub struct Model {
                    #[sea_orm(primary_key)]
                    pub id: $id,
                    pub name: String,
                    pub hair_color: Option<String>,
                }

                #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
                pub enum Relation {}

                impl ActiveModelBehavior for ActiveModel {}
            }

            use sea_orm::{
                ActiveValue::{NotSet, Set},
                ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
            };

            pub async fn trivial(db: &DatabaseConnection, n: i64) -> usize {
                user::Entity::find()
                    .filter(user::Column::Id.lte(n))
                    .order_by_asc(user::Column::Id)
                    .limit(n as u64)
                    .all(db)
                    .await
                    .unwrap()
                    .len()
            }

            pub async fn medium(db: &DatabaseConnection) -> usize {
                user::Entity::find()
                    .filter(user::Column::HairColor.eq("black"))
                    .filter(user::Column::Id.between(super::MEDIUM_FROM, super::MEDIUM_FROM + 999))
                    .find_also_related(post::Entity)
                    .all(db)
                    .await
                    .unwrap()
                    .len()
            }

            pub async fn insert(db: &DatabaseConnection, n: usize) -> usize {
                new_user::Entity::insert_many((0..n).map(|i| new_user::ActiveModel {
                    id: NotSet,
                    name: Set(format!("new {i}")),
                    hair_color: Set(Some("black".into())),
                }))
                .exec(db)
                .await
                .unwrap();
                n
            }

            pub async fn associations(db: &DatabaseConnection) -> usize {
                let users = user::Entity::find()
                    .filter(user::Column::Id.lte(super::ASSOC_USERS))
                    .all(db)
                    .await
                    .unwrap();
                // `IN` queries, not `LoaderTrait::load_many`: the loader matches keys by
                // value type, and MariaDB's `u64` user keys never equal the `i64`
                // foreign keys.
                let ids: Vec<i64> = users.iter().map(|u| u.id as i64).collect();
                let posts = post::Entity::find()
                    .filter(post::Column::UserId.is_in(ids))
                    .all(db)
                    .await
                    .unwrap();
                let ids: Vec<i64> = posts.iter().map(|p| p.id as i64).collect();
                let comments = comment::Entity::find()
                    .filter(comment::Column::PostId.is_in(ids))
                    .all(db)
                    .await
                    .unwrap();
                users.len() + posts.len() + comments.len()
            }
        }
    };
}

sea_entities!(sea_my, u64);
sea_entities!(sea_i64, i64);

// ---------------------------------------------------------------------------------
// diesel-async

/// The tables for diesel on both backends: every key as a signed `BigInt` (diesel
/// reads MariaDB's `bigint unsigned` keys into `i64`; the workload's keys fit).
mod schema {
    diesel::table! {
        wl_users (id) {
            id -> BigInt,
            name -> Varchar,
            hair_color -> Nullable<Varchar>,
        }
    }
    diesel::table! {
        wl_posts (id) {
            id -> BigInt,
            user_id -> BigInt,
            title -> Varchar,
        }
    }
    diesel::table! {
        wl_comments (id) {
            id -> BigInt,
            post_id -> BigInt,
            text -> Varchar,
        }
    }
    diesel::table! {
        wl_new_users (id) {
            id -> BigInt,
            name -> Varchar,
            hair_color -> Nullable<Varchar>,
        }
    }
    diesel::joinable!(wl_posts -> wl_users (user_id));
    diesel::joinable!(wl_comments -> wl_posts (post_id));
    diesel::allow_tables_to_appear_in_same_query!(wl_users, wl_posts, wl_comments);
}

/// The diesel-async workloads with connection `$conn`.
macro_rules! diesel_workloads {
    ($module:ident, $conn:ty) => {
        mod $module {
            use crate::schema::{wl_comments, wl_new_users, wl_posts, wl_users};
            use diesel::prelude::*;
            use diesel_async::RunQueryDsl;

            type User = (i64, String, Option<String>);
            type Child = (i64, i64, String);

            pub async fn trivial(c: &mut $conn, n: i64) -> usize {
                wl_users::table
                    .filter(wl_users::id.le(n))
                    .order(wl_users::id)
                    .limit(n)
                    .load::<User>(c)
                    .await
                    .unwrap()
                    .len()
            }

            pub async fn medium(c: &mut $conn) -> usize {
                let rows: Vec<(User, Option<Child>)> = wl_users::table
                    .left_join(wl_posts::table)
                    .filter(wl_users::hair_color.eq("black"))
                    .filter(wl_users::id.between(super::MEDIUM_FROM, super::MEDIUM_FROM + 999))
                    .select((
                        (wl_users::id, wl_users::name, wl_users::hair_color),
                        (wl_posts::id, wl_posts::user_id, wl_posts::title).nullable(),
                    ))
                    .load(c)
                    .await
                    .unwrap();
                rows.len()
            }

            pub async fn insert(c: &mut $conn, n: usize) -> usize {
                let rows: Vec<_> = (0..n)
                    .map(|i| {
                        (
                            wl_new_users::name.eq(format!("new {i}")),
                            wl_new_users::hair_color.eq(Some("black")),
                        )
                    })
                    .collect();
                diesel::insert_into(wl_new_users::table)
                    .values(rows)
                    .execute(c)
                    .await
                    .unwrap()
            }

            pub async fn associations(c: &mut $conn) -> usize {
                let users: Vec<User> = wl_users::table
                    .filter(wl_users::id.le(super::ASSOC_USERS))
                    .load(c)
                    .await
                    .unwrap();
                let ids: Vec<i64> = users.iter().map(|u| u.0).collect();
                let posts: Vec<Child> = wl_posts::table
                    .filter(wl_posts::user_id.eq_any(ids))
                    .load(c)
                    .await
                    .unwrap();
                let ids: Vec<i64> = posts.iter().map(|p| p.0).collect();
                let comments: Vec<Child> = wl_comments::table
                    .filter(wl_comments::post_id.eq_any(ids))
                    .load(c)
                    .await
                    .unwrap();
                users.len() + posts.len() + comments.len()
            }
        }
    };
}

diesel_workloads!(diesel_my, diesel_async::AsyncMysqlConnection);
diesel_workloads!(diesel_pg, diesel_async::AsyncPgConnection);

// ---------------------------------------------------------------------------------
// The run

#[derive(Clone, Copy, PartialEq, Eq)]
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
}

/// One library's connection on one dialect.
enum Sqlx {
    My(sqlx::MySqlPool),
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

enum Diesel {
    My(Box<diesel_async::AsyncMysqlConnection>),
    Pg(Box<diesel_async::AsyncPgConnection>),
}

/// SeaORM on one dialect: MariaDB's keys are `u64` (`Unsigned`), the others' `i64`.
enum Sea {
    Unsigned(sea_orm::DatabaseConnection),
    Signed(sea_orm::DatabaseConnection),
}

/// The four workloads of a library enum, each forwarded to the module of the
/// variant's dialect (`$receiver`: `&self`, or `&mut self` for diesel's connections).
macro_rules! forward_workloads {
    ($ty:ident, $receiver:ty, { $($variant:ident => $module:ident),+ }) => {
        impl $ty {
            async fn trivial(self: $receiver, n: i64) -> usize {
                match self { $($ty::$variant(c) => $module::trivial(c, n).await,)+ }
            }
            async fn medium(self: $receiver) -> usize {
                match self { $($ty::$variant(c) => $module::medium(c).await,)+ }
            }
            async fn insert(self: $receiver, n: usize) -> usize {
                match self { $($ty::$variant(c) => $module::insert(c, n).await,)+ }
            }
            async fn associations(self: $receiver) -> usize {
                match self { $($ty::$variant(c) => $module::associations(c).await,)+ }
            }
        }
    };
}

forward_workloads!(Sqlx, &Self, { My => sqlx_my, Pg => sqlx_pg, Lite => sqlx_lite });
forward_workloads!(Sea, &Self, { Unsigned => sea_my, Signed => sea_i64 });
forward_workloads!(Diesel, &mut Self, { My => diesel_my, Pg => diesel_pg });

impl Sqlx {
    /// The users in `wl_users` (10,000 when the tables are ready).
    async fn users(&self) -> Result<i64, sqlx::Error> {
        let sql = "SELECT COUNT(*) FROM wl_users";
        match self {
            Sqlx::My(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Sqlx::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Sqlx::Lite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
    }
}

/// The libraries of one dialect.
struct Libraries {
    sqlx: Sqlx,
    sea: Sea,
    diesel: Option<Diesel>,
}

async fn connect(d: Dialect) -> Result<Libraries, String> {
    use diesel_async::AsyncConnection;
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let sea_opts = |url: String| {
        let mut o = sea_orm::ConnectOptions::new(url);
        o.max_connections(1).min_connections(1).sqlx_logging(false);
        o
    };
    let libraries = match d {
        Dialect::MySql => {
            let url = env("BEEORM_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .connect(&url)
                .await
                .map_err(|e| fail("sqlx", &e))?;
            let sea = sea_orm::Database::connect(sea_opts(url.clone()))
                .await
                .map_err(|e| fail("SeaORM", &e))?;
            let diesel = diesel_async::AsyncMysqlConnection::establish(&url)
                .await
                .map_err(|e| fail("diesel-async", &e))?;
            Libraries {
                sqlx: Sqlx::My(pool),
                sea: Sea::Unsigned(sea),
                diesel: Some(Diesel::My(Box::new(diesel))),
            }
        }
        Dialect::Postgres => {
            let url = env(
                "BEEORM_POSTGRES_URL",
                "postgres://postgres@127.0.0.1:5432/test",
            );
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .connect(&url)
                .await
                .map_err(|e| fail("sqlx", &e))?;
            let sea = sea_orm::Database::connect(sea_opts(url.clone()))
                .await
                .map_err(|e| fail("SeaORM", &e))?;
            let diesel = diesel_async::AsyncPgConnection::establish(&url)
                .await
                .map_err(|e| fail("diesel-async", &e))?;
            Libraries {
                sqlx: Sqlx::Pg(pool),
                sea: Sea::Signed(sea),
                diesel: Some(Diesel::Pg(Box::new(diesel))),
            }
        }
        Dialect::Sqlite => {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            let path = std::env::var("WORKLOADS_SQLITE")
                .map_err(|_| "WORKLOADS_SQLITE is not set (the file workloads.rs prepared)")?;
            if !std::path::Path::new(&path).exists() {
                return Err(format!(
                    "{path} does not exist (run workloads.rs with PREPARE=only)"
                ));
            }
            let with_pragmas = |o: SqliteConnectOptions| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
            };
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .connect_with(with_pragmas(SqliteConnectOptions::new().filename(&path)))
                .await
                .map_err(|e| fail("sqlx", &e))?;
            let mut o = sea_opts(format!("sqlite://{path}"));
            o.map_sqlx_sqlite_opts(with_pragmas);
            let sea = sea_orm::Database::connect(o)
                .await
                .map_err(|e| fail("SeaORM", &e))?;
            Libraries {
                sqlx: Sqlx::Lite(pool),
                sea: Sea::Signed(sea),
                diesel: None,
            }
        }
    };
    match libraries.sqlx.users().await {
        Ok(10_000) => Ok(libraries),
        Ok(n) => Err(format!(
            "wl_users has {n} rows, not 10,000 (run workloads.rs with PREPARE=only)"
        )),
        Err(e) => Err(format!(
            "the tables are not there (run workloads.rs with PREPARE=only): {e}"
        )),
    }
}

/// Checks that every library returns `want` rows, then runs them interleaved.
fn workload(
    plan: Plan,
    d: Dialect,
    name: String,
    want: usize,
    cases: &mut [Case<'_>],
    counts: Vec<(&'static str, usize)>,
) -> Line {
    for (library, got) in counts {
        assert_eq!(
            got,
            want,
            "{} {name}: {library} returned {got} rows",
            d.name()
        );
    }
    eprintln!("{} {name}", d.name());
    Line {
        dialect: d.name(),
        workload: name,
        figures: interleave::run(plan, cases),
    }
}

fn run_dialect(rt: &Runtime, d: Dialect, plan: Plan) -> Vec<Line> {
    let mut libs = match rt.block_on(connect(d)) {
        Ok(libs) => libs,
        Err(e) => {
            eprintln!("skipping {}: {e}", d.name());
            return Vec::new();
        }
    };
    let mut lines = Vec::new();
    let (sqlx, sea) = (&libs.sqlx, &libs.sea);
    let diesel = std::cell::RefCell::new(libs.diesel.take());
    let diesel = &diesel;
    // The cases of one workload: `$op` is an async expression over `$l` (the library).
    macro_rules! cases {
        (|$l:ident| $op:expr) => {{
            let mut cases = vec![
                Case {
                    library: "sqlx",
                    op: Box::new(move || {
                        let $l = sqlx;
                        timed(rt, $op)
                    }),
                },
                Case {
                    library: "sea_orm",
                    op: Box::new(move || {
                        let $l = sea;
                        timed(rt, $op)
                    }),
                },
            ];
            if diesel.borrow().is_some() {
                cases.push(Case {
                    library: "diesel_async",
                    op: Box::new(move || {
                        let mut guard = diesel.borrow_mut();
                        let $l = guard.as_mut().unwrap();
                        timed(rt, $op)
                    }),
                });
            }
            cases
        }};
    }
    macro_rules! counts {
        (|$l:ident| $op:expr) => {{
            let mut counts = vec![
                ("sqlx", {
                    let $l = sqlx;
                    rt.block_on($op)
                }),
                ("sea_orm", {
                    let $l = sea;
                    rt.block_on($op)
                }),
            ];
            if let Some($l) = diesel.borrow_mut().as_mut() {
                counts.push(("diesel_async", rt.block_on($op)));
            }
            counts
        }};
    }
    for n in TRIVIAL {
        let counts = counts!(|l| l.trivial(n));
        let mut cases = cases!(|l| l.trivial(n));
        lines.push(workload(
            plan,
            d,
            format!("trivial_{n}"),
            n as usize,
            &mut cases,
            counts,
        ));
    }
    let counts = counts!(|l| l.medium());
    let mut cases = cases!(|l| l.medium());
    lines.push(workload(
        plan,
        d,
        "medium".into(),
        MEDIUM_ROWS,
        &mut cases,
        counts,
    ));
    for n in INSERTS {
        let counts = counts!(|l| l.insert(n));
        let mut cases = cases!(|l| l.insert(n));
        lines.push(workload(
            plan,
            d,
            format!("insert_{n}"),
            n,
            &mut cases,
            counts,
        ));
    }
    let counts = counts!(|l| l.associations());
    let mut cases = cases!(|l| l.associations());
    lines.push(workload(
        plan,
        d,
        "associations".into(),
        ASSOC_ROWS,
        &mut cases,
        counts,
    ));
    lines
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let rounds: usize = env("ROUNDS", "5").parse().unwrap();
    let sample_ms: u64 = env("SAMPLE_MS", "20").parse().unwrap();
    let round_tag: usize = env("ROUND", "0").parse().unwrap();
    let plan = Plan {
        rounds,
        samples: 5,
        sample_time: Duration::from_millis(sample_ms),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dialects: Vec<Dialect> = env("DIALECTS", "mysql,postgres,sqlite")
        .split(',')
        .filter_map(|d| match d {
            "mysql" => Some(Dialect::MySql),
            "postgres" => Some(Dialect::Postgres),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        })
        .collect();
    let mut lines = Vec::new();
    for d in dialects {
        lines.extend(run_dialect(&rt, d, plan));
    }
    interleave::publish(&lines, |_| "sqlx", round_tag, "workloads_peers.jsonl");
}
