//! End-to-end tests of the command, each on its own SQLite file in a temp dir: the
//! library entry points with captured output, and the shipped binary once.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;

use beeorm::{Registry, Value};
use beeorm_cli::{
    Source, EXIT_CONFIG, EXIT_ERROR, EXIT_OK, EXIT_PENDING, EXIT_REPLICA_OUT, EXIT_UNAVAILABLE,
    EXIT_UNSAFE_SKIPPED,
};

#[derive(beeorm::Entity)]
#[orm(table = "cli_users")]
#[allow(dead_code)]
struct User {
    id: u64,
    #[orm(length = 100, index = "Name")]
    name: String,
    age: Option<u8>,
}

/// The same table a release later, without `age`.
#[derive(beeorm::Entity)]
#[orm(table = "cli_users")]
#[allow(dead_code)]
struct UserWithoutAge {
    id: u64,
    #[orm(length = 100, index = "Name")]
    name: String,
}

mod common;
use common::cli;

fn db_path(dir: &tempfile::TempDir) -> String {
    dir.path().join("app.db").to_string_lossy().into_owned()
}

fn pools(path: &str) -> Registry {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", path);
    r
}

fn with_entity<E: beeorm::Entity>(path: &str) -> Source {
    let mut r = pools(path);
    r.register_entity::<E>();
    Source::Registry(r)
}

/// Plain SQL on the file, outside the command.
async fn query(path: &str, sql: &str) -> Vec<Vec<Value>> {
    let v = pools(path).validate().await.unwrap();
    let rows = v
        .create_engine()
        .db("default")
        .unwrap()
        .query(sql, vec![])
        .await
        .unwrap();
    v.close().await;
    rows
}

async fn execute(path: &str, sql: &str) {
    let v = pools(path).validate().await.unwrap();
    v.create_engine()
        .db("default")
        .unwrap()
        .execute(sql, vec![])
        .await
        .unwrap();
    v.close().await;
}

async fn columns(path: &str, table: &str) -> Vec<String> {
    query(
        path,
        &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
    )
    .await
    .into_iter()
    .map(|row| row[0].as_str().unwrap().to_string())
    .collect()
}

fn write_yaml(dir: &tempfile::TempDir, db: &str) -> PathBuf {
    let path = dir.path().join("beeorm.yaml");
    std::fs::write(&path, format!("default:\n  sqlite: '{db}'\n")).unwrap();
    path
}

#[tokio::test]
async fn create_check_apply_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);

    let r = cli(with_entity::<User>(&db), &["alters"]).await;
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
    assert!(r.out.contains("CREATE TABLE \"cli_users\""), "{}", r.out);
    assert!(
        r.out.contains("default") && r.out.contains("safe"),
        "{}",
        r.out
    );
    assert!(r.out.contains("1 alter(s), 0 unsafe"), "{}", r.out);
    assert!(
        columns(&db, "cli_users").await.is_empty(),
        "alters must not run anything"
    );

    let r = cli(with_entity::<User>(&db), &["check"]).await;
    assert_eq!(r.code, EXIT_PENDING, "{}{}", r.out, r.err);
    assert!(r.out.contains("CREATE TABLE"), "{}", r.out);

    let r = cli(with_entity::<User>(&db), &["apply"]).await;
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
    assert!(r.out.contains("Applied 1 alter(s)."), "{}", r.out);
    assert_eq!(columns(&db, "cli_users").await, ["id", "name", "age"]);

    let r = cli(with_entity::<User>(&db), &["check"]).await;
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
    assert!(r.out.contains("OK"), "{}", r.out);

    let r = cli(with_entity::<User>(&db), &["alters"]).await;
    assert_eq!(r.code, EXIT_OK);
    assert!(r.out.contains("No alters"), "{}", r.out);

    let r = cli(with_entity::<User>(&db), &["apply"]).await;
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
    assert!(r.out.contains("Nothing to apply"), "{}", r.out);
}

#[tokio::test]
async fn unsafe_alters_need_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    assert_eq!(
        cli(with_entity::<User>(&db), &["apply"]).await.code,
        EXIT_OK
    );
    execute(&db, "INSERT INTO cli_users (name, age) VALUES ('Ali', 30)").await;

    let r = cli(with_entity::<UserWithoutAge>(&db), &["check"]).await;
    assert_eq!(r.code, EXIT_PENDING, "{}{}", r.out, r.err);
    assert!(r.out.contains("UNSAFE"), "{}", r.out);

    let r = cli(with_entity::<UserWithoutAge>(&db), &["apply"]).await;
    assert_eq!(r.code, EXIT_UNSAFE_SKIPPED, "{}{}", r.out, r.err);
    assert!(r.out.contains("Applied 0 alter(s)."), "{}", r.out);
    assert!(r.out.contains("Skipped 1 UNSAFE alter(s)"), "{}", r.out);
    assert!(r.out.contains("--unsafe"), "{}", r.out);
    assert_eq!(columns(&db, "cli_users").await, ["id", "name", "age"]);

    let r = cli(with_entity::<UserWithoutAge>(&db), &["apply", "--unsafe"]).await;
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
    assert!(r.out.contains("UNSAFE"), "{}", r.out);
    assert_eq!(columns(&db, "cli_users").await, ["id", "name"]);
    let rows = query(&db, "SELECT name FROM cli_users").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0].as_str(), Some("Ali"));

    let r = cli(with_entity::<UserWithoutAge>(&db), &["check"]).await;
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
}

#[tokio::test]
async fn configuration_errors_exit_78_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").join("beeorm.yaml");
    let missing = missing.to_string_lossy();
    let r = cli(Source::Config(|_| {}), &["--config", &missing, "check"]).await;
    assert_eq!(r.code, EXIT_CONFIG);
    assert!(r.err.contains(missing.as_ref()), "{}", r.err);
    assert!(r.out.is_empty(), "{}", r.out);

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "default:\n  streams: {events: [group]}\n").unwrap();
    let bad = bad.to_string_lossy();
    let r = cli(Source::Config(|_| {}), &["--config", &bad, "alters"]).await;
    assert_eq!(r.code, EXIT_CONFIG);
    assert!(r.err.contains(bad.as_ref()), "{}", r.err);
}

#[tokio::test]
async fn usage_errors_exit_1_and_help_exits_0() {
    let r = cli(Source::Config(|_| {}), &["check"]).await;
    assert_eq!(r.code, EXIT_ERROR, "clap's own code 2 is taken by `apply`");
    assert!(r.err.contains("--config"), "{}", r.err);

    let r = cli(Source::Registry(Registry::new()), &["frobnicate"]).await;
    assert_eq!(r.code, EXIT_ERROR);

    let r = cli(Source::Registry(Registry::new()), &["--help"]).await;
    assert_eq!(r.code, EXIT_OK);
    assert!(r.out.contains("check"), "{}", r.out);
}

#[tokio::test]
async fn registry_errors_exit_78() {
    let mut r = Registry::new();
    r.register_entity::<User>(); // pool `default` is never registered
    let r = cli(Source::Registry(r), &["check"]).await;
    assert_eq!(r.code, EXIT_CONFIG);
    assert!(r.err.contains("default"), "{}", r.err);
}

#[tokio::test]
async fn config_plus_entities_from_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    let yaml = write_yaml(&dir, &db);
    let yaml = yaml.to_string_lossy();
    let register: fn(&mut Registry) = |r| {
        r.register_entity::<User>();
    };
    let r = cli(Source::Config(register), &["--config", &yaml, "check"]).await;
    assert_eq!(r.code, EXIT_PENDING, "{}{}", r.out, r.err);
    let r = cli(Source::Config(register), &["--config", &yaml, "apply"]).await;
    assert_eq!(r.code, EXIT_OK, "{}{}", r.out, r.err);
    assert_eq!(columns(&db, "cli_users").await, ["id", "name", "age"]);
}

#[tokio::test]
async fn the_beeorm_binary() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    let yaml = write_yaml(&dir, &db);
    let beeorm = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_beeorm"))
            .arg("--config")
            .arg(&yaml)
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    // An empty database: nothing to do, and the configuration works.
    let (code, out, err) = beeorm(&["check"]);
    assert_eq!(code, Some(EXIT_OK), "{out}{err}");

    // A table the binary knows no entity for is listed as a drop, safe while empty.
    assert_eq!(
        cli(with_entity::<User>(&db), &["apply"]).await.code,
        EXIT_OK
    );
    let (code, out, err) = beeorm(&["alters"]);
    assert_eq!(code, Some(EXIT_OK), "{out}{err}");
    assert!(out.contains("DROP TABLE \"cli_users\""), "{out}");
    assert!(out.contains("safe"), "{out}");
    // `-v` (global: after the subcommand too) logs the SQL; not tried in-process, where
    // the tracing subscriber would stay installed for the other tests.
    let (code, out, err) = beeorm(&["check", "-v"]);
    assert_eq!(code, Some(EXIT_PENDING), "{out}{err}");
    assert!(err.contains("sqlite_master"), "{err}");

    // Without entities, `apply` would drop every empty table: it refuses.
    let (code, out, err) = beeorm(&["apply"]);
    assert_eq!(code, Some(EXIT_ERROR), "{out}{err}");
    assert!(err.contains("no entity is registered"), "{err}");
    assert_eq!(columns(&db, "cli_users").await, ["id", "name", "age"]);

    // A missing file: exit 78, the path in the message.
    let missing = dir.path().join("nope.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_beeorm"))
        .arg("--config")
        .arg(&missing)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(EXIT_CONFIG));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");
}

use common::redis_url as redis_address;

#[tokio::test]
async fn streams_lists_every_stream_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    let stream = format!("cli-streams-{}", std::process::id());
    let yaml = dir.path().join("beeorm.yaml");
    std::fs::write(
        &yaml,
        format!(
            "default:\n  sqlite: '{db}'\nevents:\n  redis: '{}'\n  streams:\n    {stream}: [cli-a, cli-b]\n",
            redis_address()
        ),
    )
    .unwrap();
    let yaml = yaml.to_string_lossy();

    // Two events; nothing consumed yet.
    let registry = Registry::from_yaml_file(&*yaml).unwrap();
    let validated = registry.validate().await.unwrap();
    let broker = validated.create_engine().event_broker();
    broker.publish_map(&stream, [("k", "1")]).await.unwrap();
    broker.publish_map(&stream, [("k", "2")]).await.unwrap();

    let r = cli(Source::Config(|_| {}), &["--config", &yaml, "streams"]).await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert!(r.out.contains(&stream), "{}", r.out);
    assert!(
        r.out.contains("cli-a") && r.out.contains("cli-b"),
        "{}",
        r.out
    );

    let r = cli(
        Source::Config(|_| {}),
        &["--config", &yaml, "streams", "--json"],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    let json: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    let ours = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == stream.as_str())
        .unwrap();
    assert_eq!(ours["length"], 2);
    let groups = ours["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for g in groups {
        assert_eq!(g["pending"], 0);
        assert_eq!(g["lag"], 2, "{g}");
    }

    let redis = validated.create_engine().redis("events").unwrap();
    redis.del(stream.as_str()).await.unwrap();
    validated.close().await;
}

#[tokio::test]
async fn streams_with_a_dead_redis_exits_69() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_path(&dir);
    let yaml = dir.path().join("beeorm.yaml");
    // Port 1 on loopback: nothing listens there.
    std::fs::write(
        &yaml,
        format!("default:\n  sqlite: '{db}'\nevents:\n  redis: '127.0.0.1:1:0'\n  streams:\n    s: [g]\n"),
    )
    .unwrap();
    let r = cli(
        Source::Config(|_| {}),
        &["--config", &yaml.to_string_lossy(), "streams"],
    )
    .await;
    assert_eq!(r.code, EXIT_UNAVAILABLE, "{}{}", r.out, r.err);
    assert!(r.err.starts_with("error: "), "{}", r.err);
    assert_eq!(r.err.lines().count(), 1, "one message: {}", r.err);
    assert!(r.err.contains("events"), "names the pool: {}", r.err);
}

#[tokio::test]
async fn replicas_without_any_say_so_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = write_yaml(&dir, &db_path(&dir));
    let r = cli(
        Source::Config(|_| {}),
        &["--config", &yaml.to_string_lossy(), "replicas"],
    )
    .await;
    assert_eq!(r.code, EXIT_OK, "{}", r.err);
    assert!(
        r.out.contains("No relational pool has read replicas"),
        "{}",
        r.out
    );
    let r = cli(
        Source::Config(|_| {}),
        &["--config", &yaml.to_string_lossy(), "replicas", "--json"],
    )
    .await;
    assert_eq!((r.code, r.out.trim()), (EXIT_OK, "[]"), "{}", r.err);
}

/// The MariaDB replication pair of `scripts/services` (3310 -> 3311) and a replica
/// nobody listens for: one healthy, one unreachable, exit 4.
#[tokio::test]
async fn replicas_show_health_and_exit_4_when_one_is_out() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("beeorm.yaml");
    std::fs::write(
        &yaml,
        "default:\n  mysql: root@tcp(127.0.0.1:3310)/test\n  replicas:\n    - root@tcp(127.0.0.1:3311)/test\n    - {dsn: 'root@tcp(127.0.0.1:1)/test', weight: 2}\n",
    )
    .unwrap();
    let yaml = yaml.to_string_lossy();
    let r = cli(Source::Config(|_| {}), &["--config", &yaml, "replicas"]).await;
    assert_eq!(r.code, EXIT_REPLICA_OUT, "{}{}", r.out, r.err);
    let healthy = r
        .out
        .lines()
        .find(|l| l.contains("default/replica-1"))
        .unwrap();
    assert!(
        healthy.contains("127.0.0.1:3311") && healthy.contains("healthy"),
        "{}",
        r.out
    );
    let dead = r
        .out
        .lines()
        .find(|l| l.contains("default/replica-2"))
        .unwrap();
    assert!(
        dead.contains("unreachable") && dead.contains(" no "),
        "{}",
        r.out
    );

    let r = cli(
        Source::Config(|_| {}),
        &["--config", &yaml, "replicas", "--json"],
    )
    .await;
    assert_eq!(r.code, EXIT_REPLICA_OUT, "{}", r.err);
    let json: serde_json::Value = serde_json::from_str(r.out.trim()).unwrap();
    let replicas = json[0]["replicas"].as_array().unwrap();
    assert_eq!(json[0]["pool"], "default");
    assert_eq!(replicas[0]["health"], "healthy");
    assert_eq!(replicas[0]["in_rotation"], true);
    assert_eq!(replicas[1]["health"], "unreachable");
    assert_eq!(replicas[1]["weight"], 2);
    assert!(replicas[1]["detail"].is_string());
}

#[tokio::test]
async fn replicas_of_an_sqlite_pool_are_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("beeorm.yaml");
    std::fs::write(
        &yaml,
        "default:\n  sqlite: ':memory:'\n  replicas: [other.db]\n",
    )
    .unwrap();
    let r = cli(
        Source::Config(|_| {}),
        &["--config", &yaml.to_string_lossy(), "replicas"],
    )
    .await;
    assert_eq!(r.code, EXIT_CONFIG, "{}{}", r.out, r.err);
    assert!(r.err.contains("replicas"), "{}", r.err);
}
