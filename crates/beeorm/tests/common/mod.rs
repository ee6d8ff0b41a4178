//! Shared test setup: every test gets its own database (MySQL) or file (SQLite), so
//! tests run in parallel and leave nothing behind.
#![allow(dead_code, clippy::unwrap_used)]

pub mod proxy;

use beeorm::{Engine, Registry, Value};

/// The dialects the shared suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MySql,
    Sqlite,
    Postgres,
}

/// A private database for one test.
pub struct TestDb {
    pub kind: Kind,
    /// MySQL: the DSN of the private database; SQLite: the file path.
    pub location: String,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn mysql_url() -> String {
    std::env::var("BEEORM_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

pub fn postgres_url() -> String {
    std::env::var("BEEORM_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn pg_admin_exec(sql: &str) {
    let mut r = Registry::new();
    r.register_postgres_pool("admin", &postgres_url());
    let v = r.validate().await.expect("admin pool");
    v.create_engine()
        .db("admin")
        .unwrap()
        .execute(sql, vec![])
        .await
        .expect(sql);
}

/// `mysql://…/test` → (`mysql://…/`, `test`).
fn mysql_base() -> String {
    let url = mysql_url();
    let (base, _) = url
        .rsplit_once('/')
        .expect("BEEORM_MYSQL_URL has a /database");
    base.to_string()
}

async fn admin_exec(sql: &str) {
    let mut r = Registry::new();
    r.register_mysql_pool("admin", &mysql_url());
    let v = r.validate().await.expect("admin pool");
    v.create_engine()
        .db("admin")
        .unwrap()
        .execute(sql, vec![])
        .await
        .expect(sql);
    v.close().await;
}

impl TestDb {
    /// A fresh, empty database named after the test.
    pub async fn new(kind: Kind, test: &str) -> TestDb {
        // BEEORM_TEST_PREFIX keeps parallel checkouts (worktrees) out of each other's
        // databases.
        let prefix = std::env::var("BEEORM_TEST_PREFIX").unwrap_or_default();
        let name = format!("beeorm_t_{prefix}{test}")
            .chars()
            .take(64)
            .collect::<String>();
        match kind {
            Kind::MySql => {
                admin_exec(&format!("DROP DATABASE IF EXISTS `{name}`")).await;
                admin_exec(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4")).await;
                TestDb {
                    kind,
                    location: format!("{}/{name}", mysql_base()),
                    name,
                    _dir: None,
                }
            }
            Kind::Postgres => {
                // Database names fold to lower case unless quoted; keep them lower.
                let name = name.to_lowercase();
                pg_admin_exec(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                pg_admin_exec(&format!("CREATE DATABASE \"{name}\"")).await;
                let url = postgres_url();
                let (base, _) = url
                    .rsplit_once('/')
                    .expect("BEEORM_POSTGRES_URL has a /database");
                TestDb {
                    kind,
                    location: format!("{base}/{name}"),
                    name,
                    _dir: None,
                }
            }
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir
                    .path()
                    .join(format!("{name}.db"))
                    .to_string_lossy()
                    .into_owned();
                TestDb {
                    kind,
                    location: path,
                    name,
                    _dir: Some(dir),
                }
            }
        }
    }

    /// A registry with pool `default` on this database.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::new();
        self.add_pool(&mut r, "default");
        r
    }

    /// Registers this database as pool `name`.
    pub fn add_pool(&self, r: &mut Registry, name: &str) {
        match self.kind {
            Kind::MySql => r.register_mysql_pool(name, &self.location),
            Kind::Postgres => r.register_postgres_pool(name, &self.location),
            Kind::Sqlite => r.register_sqlite_pool(name, &self.location),
        };
    }

    /// Drops the MySQL database (SQLite files go with their temp dir).
    pub async fn drop(self) {
        match self.kind {
            Kind::MySql => admin_exec(&format!("DROP DATABASE IF EXISTS `{}`", self.name)).await,
            Kind::Postgres => {
                pg_admin_exec(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .await
            }
            Kind::Sqlite => {}
        }
    }
}

/// Runs plain SQL on pool `default`.
pub async fn exec(engine: &Engine, sql: &str) {
    engine
        .db("default")
        .unwrap()
        .execute(sql, vec![])
        .await
        .expect(sql);
}

/// Runs a query on pool `default`.
pub async fn query(engine: &Engine, sql: &str) -> Vec<Vec<Value>> {
    engine
        .db("default")
        .unwrap()
        .query(sql, vec![])
        .await
        .expect(sql)
}

/// Applies every alter and checks that a second look finds none (idempotence).
pub async fn sync(engine: &Engine) {
    for a in engine.alters().await.unwrap() {
        a.exec(engine)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", a.sql));
    }
    let again = engine.alters().await.unwrap();
    assert!(again.is_empty(), "alters not idempotent: {again:#?}");
}

/// Defines one async test per dialect: `dialect_test!(name, |db: TestDb| async move { … });`
/// expands to `mod name { mysql, postgres, sqlite }`, each present only when its driver
/// feature is on (a single-driver build runs that driver's part of the suite).
#[macro_export]
macro_rules! dialect_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[cfg(feature = "mysql")]
            #[tokio::test]
            async fn mysql() {
                let db = $crate::common::TestDb::new(
                    $crate::common::Kind::MySql,
                    concat!(stringify!($name), "_my"),
                )
                .await;
                ($body)(db).await;
            }
            #[cfg(feature = "postgres")]
            #[tokio::test]
            async fn postgres() {
                let db = $crate::common::TestDb::new(
                    $crate::common::Kind::Postgres,
                    concat!(stringify!($name), "_pg"),
                )
                .await;
                ($body)(db).await;
            }
            #[cfg(feature = "sqlite")]
            #[tokio::test]
            async fn sqlite() {
                let db = $crate::common::TestDb::new(
                    $crate::common::Kind::Sqlite,
                    concat!(stringify!($name), "_lite"),
                )
                .await;
                ($body)(db).await;
            }
        }
    };
}

/// Collects what a `tracing` fmt subscriber writes, to count and read the SQL sent.
#[derive(Clone, Default)]
pub struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Installs a debug-level subscriber writing here, for this thread. tracing caches
    /// interest per callsite globally: keep one such test per test binary.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Records what the instrumentation hook sees: the statements and transaction steps
/// of the pools of one registry. Register it with [`StatementCounter::register`];
/// unlike a tracing subscriber it is per registry, so tests using it may run in
/// parallel.
#[derive(Default)]
pub struct StatementCounter {
    statements: std::sync::Mutex<Vec<(String, u64, bool)>>,
    transactions: std::sync::Mutex<Vec<(String, beeorm::TransactionStep, bool, bool)>>,
}

impl beeorm::Instrumentation for StatementCounter {
    fn on_statement(&self, event: &beeorm::StatementEvent<'_>) {
        self.statements.lock().unwrap().push((
            event.sql.to_string(),
            event.rows,
            event.error.is_none(),
        ));
    }

    fn on_transaction(&self, event: &beeorm::TransactionEvent<'_>) {
        self.transactions.lock().unwrap().push((
            event.pool.to_string(),
            event.step,
            event.dropped,
            event.error.is_none(),
        ));
    }
}

impl StatementCounter {
    /// A counter registered as `r`'s instrumentation.
    pub fn register(r: &mut Registry) -> std::sync::Arc<StatementCounter> {
        let counter = std::sync::Arc::new(StatementCounter::default());
        r.set_instrumentation(counter.clone());
        counter
    }

    /// The SQL of every statement completed successfully since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.statements.lock().unwrap())
            .into_iter()
            .filter(|(_, _, ok)| *ok)
            .map(|(sql, _, _)| sql)
            .collect()
    }

    /// Every statement since the last call: (SQL, rows, succeeded).
    pub fn take_all(&self) -> Vec<(String, u64, bool)> {
        std::mem::take(&mut *self.statements.lock().unwrap())
    }

    /// The transaction steps since the last call: (pool, step, dropped, ok).
    pub fn take_transactions(&self) -> Vec<(String, beeorm::TransactionStep, bool, bool)> {
        std::mem::take(&mut *self.transactions.lock().unwrap())
    }
}

/// Plain SQL written with `?` placeholders and backtick identifiers, in the form
/// `kind`'s server takes it: PostgreSQL gets `$1`, `$2`, … and double-quoted
/// identifiers (plain SQL reaches the server verbatim). For tests that run the same
/// statement on every dialect; `?` inside quotes is left alone.
pub fn native(kind: Kind, sql: &str) -> String {
    if kind != Kind::Postgres {
        return sql.to_string();
    }
    let (mut out, mut n, mut quote) = (String::new(), 0, None::<char>);
    for c in sql.chars() {
        match (quote, c) {
            (Some('`'), '`') => {
                quote = None;
                out.push('"');
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '`') => {
                quote = Some('`');
                out.push('"');
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            (None, c) => out.push(c),
        }
    }
    out
}
