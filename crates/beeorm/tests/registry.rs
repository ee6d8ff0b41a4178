//! The registry: YAML, pools, entity and enum validation. Every error is checked for
//! its variant and for the entity, field or pool it names.
// Some helpers serve only the tests of one driver: unused in single-driver builds.
#![cfg_attr(not(all(feature = "mysql", feature = "postgres")), allow(unused))]
#![allow(clippy::unwrap_used, dead_code)]

use std::time::Duration;

use beeorm::schema::{ColumnType, EnumValues, IdColumn};
use beeorm::{Embedded, Entity, Error, OrmEnum, Registry, ValidatedRegistry, Value};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// Asserts that `msg` contains every one of `parts`.
fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{p}` missing from: {msg}");
    }
}

/// The message of an `Error::Config`; panics on any other variant.
fn config_message(err: Error) -> String {
    match err {
        Error::Config(msg) => msg,
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

/// `(entity, field, reason)` of an `Error::Definition`; panics on any other variant.
fn definition_parts(err: Error) -> (String, Option<String>, String) {
    match err {
        Error::Definition {
            entity,
            field,
            reason,
        } => (entity, field, reason),
        other => panic!("expected Error::Definition, got {other:?}"),
    }
}

/// A registry with an in-memory SQLite pool `default`.
fn sqlite_registry() -> Registry {
    let mut r = Registry::new();
    r.register_sqlite_pool("default", ":memory:");
    r
}

/// Validates a registry holding only entity `E` (on an in-memory `default` pool).
async fn validate_entity<E: Entity>() -> beeorm::Result<ValidatedRegistry> {
    let mut r = sqlite_registry();
    r.register_entity::<E>();
    r.validate().await
}

/// Validates entity `E` and expects a definition error on `field`, whose message
/// contains every one of `reason_parts`.
async fn expect_definition_error<E: Entity>(entity: &str, field: &str, reason_parts: &[&str]) {
    let err = validate_entity::<E>()
        .await
        .expect_err("validate() should reject the entity");
    let shown = err.to_string();
    let (e, f, reason) = definition_parts(err);
    assert_eq!(e, entity, "{shown}");
    assert_eq!(f.as_deref(), Some(field), "{shown}");
    assert_mentions(&reason, reason_parts);
    assert_mentions(&shown, &[&format!("`{entity}`"), &format!("`{field}`")]);
}

/// The error of `Registry::from_yaml(yaml)`.
fn yaml_error(yaml: &str) -> Error {
    Registry::from_yaml(yaml).expect_err("from_yaml should fail")
}

// ---------------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------------

#[test]
fn yaml_with_bad_syntax_is_a_yaml_error() {
    let err = yaml_error("default:\n  mysql: [unclosed\n  local_cache: 10\n");
    assert!(matches!(err, Error::Yaml(_)), "{err:?}");
    assert_mentions(&err.to_string(), &["invalid YAML"]);
}

#[test]
fn yaml_with_an_unknown_key_is_a_yaml_error_naming_the_key() {
    let err = yaml_error("default:\n  mysqll: root@tcp(127.0.0.1:3306)/test\n");
    assert!(matches!(err, Error::Yaml(_)), "{err:?}");
    assert_mentions(&err.to_string(), &["mysqll"]);
}

#[test]
fn yaml_with_a_wrongly_typed_value_is_a_yaml_error() {
    let err = yaml_error("default:\n  local_cache: lots\n");
    assert!(matches!(err, Error::Yaml(_)), "{err:?}");
    assert_mentions(&err.to_string(), &["local_cache"]);
}

#[test]

fn yaml_with_a_pool_named_twice_is_a_yaml_error() {
    let err = yaml_error("dup:\n  local_cache: 1\ndup:\n  local_cache: 2\n");
    assert!(matches!(err, Error::Yaml(_)), "{err:?}");
    assert_mentions(&err.to_string(), &["dup"]);
}

#[test]
fn unquoted_sqlite_memory_path_is_a_yaml_error() {
    // `:memory:` ends with `:`, which YAML reads as a mapping indicator: it must be
    // quoted (`sqlite: ":memory:"`).
    let err = yaml_error("embedded:\n  sqlite: :memory:\n");
    assert!(matches!(err, Error::Yaml(_)), "{err:?}");
}

#[test]

fn mysql_encoding_next_to_sqlite_is_a_config_error() {
    let msg = config_message(yaml_error(
        "lite:\n  sqlite: \":memory:\"\n  mysqlEncoding: latin1\n",
    ));
    assert_mentions(&msg, &["`lite`", "`mysqlEncoding`"]);
}

#[test]
fn seed_keys_not_supported_yet_are_config_errors_naming_key_and_pool() {
    // `redis`, `sentinel`, `locker` (tests/redis_client.rs), `streams`
    // (tests/events.rs) and `clickhouse` (tests/clickhouse.rs) are supported.
    for (key, value) in [
        ("elastic", "http://127.0.0.1:9200"),
        ("elastic_trace", "http://127.0.0.1:9200"),
    ] {
        let yaml = format!("cache_pool:\n  local_cache: 10\n  {key}: {value}\n");
        let msg = config_message(yaml_error(&yaml));
        assert_mentions(
            &msg,
            &[&format!("`{key}`"), "`cache_pool`", "not supported"],
        );
    }
}

#[test]
fn pool_with_both_mysql_and_sqlite_is_a_config_error() {
    let msg = config_message(yaml_error(
        "both:\n  mysql: root@tcp(127.0.0.1:3306)/test\n  sqlite: \":memory:\"\n",
    ));
    assert_mentions(&msg, &["`both`", "`mysql`", "`sqlite`"]);
}

#[test]
fn mysql_encoding_without_mysql_is_a_config_error() {
    let msg = config_message(yaml_error("lonely:\n  mysqlEncoding: latin1\n"));
    assert_mentions(&msg, &["`lonely`", "`mysqlEncoding`", "`mysql`"]);
}

#[test]
fn yaml_file_that_does_not_exist_is_an_io_error_with_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing.yaml");
    let err = Registry::from_yaml_file(&path).expect_err("missing file");
    let shown = err.to_string();
    match err {
        Error::Io { path: p, source } => {
            assert_eq!(p, path.display().to_string());
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    assert_mentions(&shown, &[&path.display().to_string()]);
}

const GOOD_YAML: &str = "\
default:
  mysql: root@tcp(127.0.0.1:3306)/test?limit_connections=5
  mysqlEncoding: utf8mb4
  local_cache: 1000
embedded:
  sqlite: \":memory:\"
";

#[cfg(all(feature = "mysql", feature = "sqlite"))]
#[tokio::test]
async fn good_yaml_validates_and_lists_both_pools() {
    let validated = Registry::from_yaml(GOOD_YAML)
        .expect("good YAML parses")
        .validate()
        .await
        .expect("good YAML validates");
    assert_eq!(validated.relational_pools(), vec!["default", "embedded"]);
    let engine = validated.create_engine();

    let cache = engine
        .local_cache("default")
        .expect("local cache `default`");
    assert_eq!(cache.name(), "default");
    cache.set("k", 7u32);
    assert_eq!(cache.get::<u32>("k"), Some(7));

    let err = engine.local_cache("nope").expect_err("no such cache");
    let shown = err.to_string();
    match err {
        Error::UnknownPool { kind, pool, .. } => {
            assert_eq!(kind, "local cache");
            assert_eq!(pool, "nope");
        }
        other => panic!("expected Error::UnknownPool, got {other:?}"),
    }
    assert_mentions(&shown, &["`nope`"]);

    // The SQLite pool really is open.
    let rows = engine
        .db("embedded")
        .expect("pool `embedded`")
        .query("SELECT 1 + 1", vec![])
        .await
        .expect("query on the SQLite pool");
    assert_eq!(rows[0][0].as_i64(), Some(2));

    let err = engine.db("nope").expect_err("no such pool");
    assert!(
        matches!(&err, Error::UnknownPool { kind: "relational", pool, .. } if pool == "nope"),
        "{err:?}"
    );
}

#[cfg(all(feature = "mysql", feature = "sqlite"))]
#[tokio::test]
async fn good_yaml_file_validates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("beeorm.yaml");
    std::fs::write(&path, GOOD_YAML).expect("write YAML");
    let validated = Registry::from_yaml_file(&path)
        .expect("file parses")
        .validate()
        .await
        .expect("file validates");
    assert_eq!(validated.relational_pools(), vec!["default", "embedded"]);
}

/// The test server, as `tests/common` and `scripts/test` define it.
fn mysql_url() -> String {
    std::env::var("BEEORM_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// `mysql://user[:pass]@host:port/db` → `user[:pass]@tcp(host:port)/db`.
fn go_form(url: &str) -> String {
    let rest = url
        .strip_prefix("mysql://")
        .expect("BEEORM_MYSQL_URL starts with mysql://");
    let (userinfo, rest) = rest.split_once('@').expect("user in BEEORM_MYSQL_URL");
    let (addr, path) = rest.split_once('/').expect("database in BEEORM_MYSQL_URL");
    format!("{userinfo}@tcp({addr})/{path}")
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn go_style_dsn_from_yaml_connects_and_applies_the_encoding() {
    let yaml = format!(
        "default:\n  mysql: {}?limit_connections=5\n  mysqlEncoding: latin1\n",
        go_form(&mysql_url())
    );
    let validated = Registry::from_yaml(&yaml)
        .expect("YAML parses")
        .validate()
        .await
        .expect("validates");
    let rows = validated
        .create_engine()
        .db("default")
        .expect("pool `default`")
        .query("SELECT @@character_set_client, DATABASE()", vec![])
        .await
        .expect("query on MySQL");
    assert_eq!(rows[0][0].as_str(), Some("latin1"));
    assert!(rows[0][1].as_str().is_some());
    validated.close().await;
}

// ---------------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn bad_mysql_dsns_are_config_errors_naming_the_pool() {
    for dsn in [
        "",
        "nonsense",
        "root@tcp(127.0.0.1:3306)",
        "root@tcp(127.0.0.1:3306/test",
        "mysql://root@127.0.0.1:3306/",
        "mysql://root@127.0.0.1:3306/test?limit_connections=0",
        "mysql://root@127.0.0.1:3306/test?limit_connections=many",
        "mysql://root@127.0.0.1:3306/test?no_such_option=1",
        "mysql://root@127.0.0.1:port/test",
    ] {
        let mut r = Registry::new();
        r.register_mysql_pool("mine", dsn);
        let err = r.validate().await.expect_err(dsn);
        let msg = config_message(err);
        assert_mentions(&msg, &["`mine`"]);
    }
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn bad_dsn_in_yaml_is_a_config_error_naming_the_pool() {
    let registry = Registry::from_yaml("shop:\n  mysql: root@localhost/test\n").expect("parses");
    let msg = config_message(registry.validate().await.expect_err("bad DSN"));
    assert_mentions(&msg, &["`shop`", "DSN"]);
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn bad_encodings_are_config_errors() {
    for encoding in ["", "utf8mb4; DROP TABLE x", "latin 1", "utf-8"] {
        let mut r = Registry::new();
        r.register_mysql_pool_with_encoding("enc", "mysql://root@127.0.0.1:3306/test", encoding);
        let msg = config_message(r.validate().await.expect_err(encoding));
        assert_mentions(&msg, &[&format!("`{encoding}`")]);

        let mut r = sqlite_registry();
        r.set_default_encoding(encoding);
        let msg = config_message(r.validate().await.expect_err(encoding));
        assert_mentions(&msg, &[&format!("`{encoding}`")]);
    }
    let registry = Registry::from_yaml(
        "enc:\n  mysql: root@tcp(127.0.0.1:3306)/test\n  mysqlEncoding: \"utf 8\"\n",
    )
    .expect("parses");
    let msg = config_message(registry.validate().await.expect_err("bad encoding"));
    assert_mentions(&msg, &["`utf 8`"]);
}

#[tokio::test]
async fn duplicate_relational_pool_names_are_config_errors() {
    let mut r = Registry::new();
    r.register_sqlite_pool("dup", ":memory:")
        .register_mysql_pool("dup", "mysql://root@127.0.0.1:3306/test");
    let msg = config_message(r.validate().await.expect_err("duplicate pool"));
    assert_mentions(&msg, &["`dup`", "twice"]);
}

#[tokio::test]
async fn duplicate_local_cache_names_are_config_errors() {
    let mut r = Registry::new();
    r.register_local_cache("twin", 10)
        .register_local_cache("twin", 20);
    let msg = config_message(r.validate().await.expect_err("duplicate cache"));
    assert_mentions(&msg, &["`twin`", "twice"]);
}

#[tokio::test]
async fn local_cache_of_size_zero_is_a_config_error() {
    let mut r = Registry::new();
    r.register_local_cache("tiny", 0);
    let msg = config_message(r.validate().await.expect_err("size 0"));
    assert_mentions(&msg, &["`tiny`", "size"]);

    let registry = Registry::from_yaml("tiny:\n  local_cache: 0\n").expect("parses");
    let msg = config_message(registry.validate().await.expect_err("size 0"));
    assert_mentions(&msg, &["`tiny`"]);
}

#[tokio::test]
async fn invalid_pool_names_are_config_errors() {
    for name in ["", "has space", "semi;colon", "ünï"] {
        let mut r = Registry::new();
        r.register_sqlite_pool(name, ":memory:");
        let msg = config_message(r.validate().await.expect_err(name));
        assert_mentions(&msg, &[&format!("`{name}`")]);

        let mut r = Registry::new();
        r.register_local_cache(name, 10);
        let msg = config_message(r.validate().await.expect_err(name));
        assert_mentions(&msg, &[&format!("`{name}`")]);
    }
}

#[tokio::test]
async fn sqlite_file_in_a_missing_directory_is_a_connection_error_at_validate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no/such/dir/data.db");
    let mut r = Registry::new();
    r.register_sqlite_pool("lite", &path.to_string_lossy());
    let err = r.validate().await.expect_err("missing directory");
    let shown = err.to_string();
    assert!(
        matches!(&err, Error::Connection { pool, .. } if pool == "lite"),
        "{err:?}"
    );
    assert_mentions(&shown, &["`lite`"]);
}

#[tokio::test]
async fn sqlite_file_is_created_when_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.db");
    let mut r = Registry::new();
    r.register_sqlite_pool("lite", &path.to_string_lossy());
    r.validate().await.expect("validates");
    assert!(path.exists());
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn dead_mysql_server_validates_lazily_then_fails_with_a_connection_error() {
    let mut r = Registry::new();
    r.register_mysql_pool("dead", "mysql://root@127.0.0.1:1/test");
    let validated = r.validate().await.expect("validate does not connect");
    let engine = validated.create_engine();

    let err = tokio::time::timeout(Duration::from_secs(30), engine.alters())
        .await
        .expect("alters() gives up in time")
        .expect_err("no server at port 1");
    let shown = err.to_string();
    assert!(
        matches!(&err, Error::Connection { pool, .. } if pool == "dead"),
        "{err:?}"
    );
    assert_mentions(&shown, &["`dead`"]);

    let err = tokio::time::timeout(
        Duration::from_secs(30),
        engine
            .db("dead")
            .expect("pool `dead`")
            .query("SELECT 1", vec![]),
    )
    .await
    .expect("query gives up in time")
    .expect_err("no server at port 1");
    assert!(
        matches!(&err, Error::Connection { pool, .. } if pool == "dead"),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------
// Entities: pools and tables
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn entity_on_an_unregistered_pool_is_unknown_pool_naming_the_entity() {
    #[derive(Entity)]
    #[orm(pool = "elsewhere")]
    struct Stray {
        id: u64,
        name: String,
    }
    let err = validate_entity::<Stray>()
        .await
        .expect_err("no pool `elsewhere`");
    let shown = err.to_string();
    match err {
        Error::UnknownPool {
            kind,
            pool,
            used_by,
        } => {
            assert_eq!(kind, "relational");
            assert_eq!(pool, "elsewhere");
            assert_mentions(&used_by, &["`Stray`"]);
        }
        other => panic!("expected Error::UnknownPool, got {other:?}"),
    }
    assert_mentions(&shown, &["`elsewhere`", "`Stray`"]);
}

#[tokio::test]
async fn entity_pool_alias_mysql_selects_the_pool() {
    #[derive(Entity)]
    #[orm(mysql = "other", table = "aliased")]
    struct Aliased {
        id: u8,
    }
    let mut r = Registry::new();
    r.register_sqlite_pool("other", ":memory:")
        .register_entity::<Aliased>();
    let validated = r.validate().await.expect("validates");
    let schema = validated.table_schema::<Aliased>().expect("registered");
    assert_eq!(schema.pool_name(), "other");
    assert_eq!(schema.table_name(), "aliased");
}

#[tokio::test]
async fn two_entities_on_one_table_of_one_pool_are_a_duplicate_table() {
    #[derive(Entity)]
    #[orm(table = "shared")]
    struct First {
        id: u64,
    }
    #[derive(Entity)]
    #[orm(table = "shared")]
    struct Second {
        id: u32,
    }
    let mut r = sqlite_registry();
    r.register_entity::<First>().register_entity::<Second>();
    let err = r.validate().await.expect_err("same table twice");
    let shown = err.to_string();
    match err {
        Error::DuplicateTable {
            table,
            pool,
            first,
            second,
        } => {
            assert_eq!(table, "shared");
            assert_eq!(pool, "default");
            assert_eq!(first, "First");
            assert_eq!(second, "Second");
        }
        other => panic!("expected Error::DuplicateTable, got {other:?}"),
    }
    assert_mentions(&shown, &["`First`", "`Second`", "`shared`", "`default`"]);
}

#[tokio::test]
async fn same_table_name_in_two_pools_is_fine() {
    #[derive(Entity)]
    #[orm(table = "shared")]
    struct Here {
        id: u64,
    }
    #[derive(Entity)]
    #[orm(table = "shared", pool = "there")]
    struct There {
        id: u64,
    }
    let mut r = sqlite_registry();
    r.register_sqlite_pool("there", ":memory:")
        .register_entity::<Here>()
        .register_entity::<There>();
    r.validate().await.expect("different pools");
}

#[tokio::test]
async fn registering_one_entity_twice_is_harmless() {
    #[derive(Entity)]
    struct Twice {
        id: u64,
    }
    let mut r = sqlite_registry();
    r.register_entity::<Twice>().register_entity::<Twice>();
    let validated = r.validate().await.expect("validates");
    assert_eq!(validated.table_schemas().count(), 1);
}

#[tokio::test]
async fn table_schema_of_an_unregistered_entity_is_unknown_entity() {
    #[derive(Entity)]
    struct Registered {
        id: u64,
    }
    #[derive(Entity)]
    struct NotRegistered {
        id: u64,
    }
    let validated = validate_entity::<Registered>().await.expect("validates");
    let err = validated
        .table_schema::<NotRegistered>()
        .expect_err("not registered");
    assert!(
        matches!(&err, Error::UnknownEntity(name) if name == "NotRegistered"),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["`NotRegistered`"]);
    assert!(validated.table_schema_by_name("NotRegistered").is_none());
    assert!(validated.table_schema_by_name("Registered").is_some());
}

// ---------------------------------------------------------------------------------
// Entities: attributes that do not fit the type
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn length_on_an_integer_is_a_definition_error() {
    #[derive(Entity)]
    struct LengthOnInt {
        id: u64,
        #[orm(length = 10)]
        x: u32,
    }
    expect_definition_error::<LengthOnInt>("LengthOnInt", "x", &["`length`", "`u32`"]).await;
}

#[tokio::test]
async fn mediumint_on_a_64_bit_integer_is_a_definition_error() {
    #[derive(Entity)]
    struct MediumU64 {
        id: u64,
        #[orm(mediumint)]
        x: u64,
    }
    expect_definition_error::<MediumU64>("MediumU64", "x", &["`mediumint`", "`u64`"]).await;
}

#[tokio::test]
async fn year_on_a_signed_integer_is_a_definition_error() {
    #[derive(Entity)]
    struct YearI32 {
        id: u64,
        #[orm(year)]
        x: i32,
    }
    expect_definition_error::<YearI32>("YearI32", "x", &["`year`", "`i32`"]).await;
}

#[tokio::test]
async fn decimal_on_a_string_is_a_definition_error() {
    #[derive(Entity)]
    struct DecimalString {
        id: u64,
        #[orm(decimal = "8,2")]
        x: String,
    }
    expect_definition_error::<DecimalString>("DecimalString", "x", &["`decimal`", "`String`"])
        .await;
}

#[tokio::test]
async fn mediumblob_and_longblob_together_are_a_definition_error() {
    #[derive(Entity)]
    struct TwoBlobs {
        id: u64,
        #[orm(mediumblob, longblob)]
        x: Vec<u8>,
    }
    expect_definition_error::<TwoBlobs>("TwoBlobs", "x", &["`mediumblob`", "`longblob`"]).await;
}

#[tokio::test]
async fn length_and_enum_together_are_a_definition_error() {
    #[derive(Entity)]
    struct LengthEnum {
        id: u64,
        #[orm(length = 10, enum = "colors")]
        x: String,
    }
    let mut r = sqlite_registry();
    r.register_enum_list("colors", &["red"])
        .register_entity::<LengthEnum>();
    let (entity, field, reason) = definition_parts(r.validate().await.expect_err("length+enum"));
    assert_eq!(entity, "LengthEnum");
    assert_eq!(field.as_deref(), Some("x"));
    assert_mentions(&reason, &["`length`", "`enum`"]);
}

#[tokio::test]
async fn attribute_misfit_inside_an_option_is_a_definition_error() {
    #[derive(Entity)]
    struct OptionYear {
        id: u64,
        #[orm(year)]
        x: Option<i16>,
    }
    expect_definition_error::<OptionYear>("OptionYear", "x", &["`year`", "`i16`"]).await;
}

#[tokio::test]
async fn decimal_type_without_decimal_attribute_is_a_definition_error() {
    #[derive(Entity)]
    struct Money {
        id: u64,
        amount: rust_decimal::Decimal,
    }
    expect_definition_error::<Money>("Money", "amount", &["decimal"]).await;
}

#[tokio::test]
async fn required_on_an_option_is_a_definition_error() {
    #[derive(Entity)]
    struct RequiredOption {
        id: u64,
        #[orm(required)]
        x: Option<u8>,
    }
    expect_definition_error::<RequiredOption>("RequiredOption", "x", &["`required`", "Option"])
        .await;
}

#[tokio::test]
async fn option_of_option_is_a_definition_error() {
    #[derive(Entity)]
    struct DoubleOption {
        id: u64,
        x: Option<Option<u8>>,
    }
    expect_definition_error::<DoubleOption>("DoubleOption", "x", &["Option<Option"]).await;
}

#[tokio::test]
async fn unknown_enum_name_is_a_definition_error_naming_the_enum() {
    #[derive(Entity)]
    struct UsesUnknownEnum {
        id: u64,
        #[orm(enum = "unknown_enum")]
        x: String,
    }
    expect_definition_error::<UsesUnknownEnum>("UsesUnknownEnum", "x", &["`unknown_enum`"]).await;

    #[derive(Entity)]
    struct UsesUnknownSet {
        id: u64,
        #[orm(set = "unknown_set")]
        x: Vec<String>,
    }
    expect_definition_error::<UsesUnknownSet>("UsesUnknownSet", "x", &["`unknown_set`"]).await;
}

// ---------------------------------------------------------------------------------
// Entities: indexes and column names
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn index_positions_with_a_gap_are_a_definition_error() {
    #[derive(Entity)]
    struct IndexGap {
        id: u64,
        #[orm(index = "I:1")]
        a: u8,
        #[orm(index = "I:3")]
        b: u8,
    }
    expect_definition_error::<IndexGap>("IndexGap", "b", &["`I`", "position 2"]).await;
}

#[tokio::test]
async fn index_without_position_one_is_a_definition_error() {
    #[derive(Entity)]
    struct IndexNoFirst {
        id: u64,
        #[orm(unique = "U:2")]
        a: u8,
    }
    expect_definition_error::<IndexNoFirst>("IndexNoFirst", "a", &["`U`", "position 1"]).await;
}

#[tokio::test]
async fn two_fields_at_one_index_position_are_a_definition_error() {
    #[derive(Entity)]
    struct IndexClash {
        id: u64,
        #[orm(index = "I")]
        a: u8,
        #[orm(index = "I:1")]
        b: u8,
    }
    expect_definition_error::<IndexClash>("IndexClash", "b", &["`I`", "position 1", "`a`"]).await;
}

#[tokio::test]
async fn one_name_as_index_and_unique_is_a_definition_error() {
    #[derive(Entity)]
    struct IndexAndUnique {
        id: u64,
        #[orm(index = "Both")]
        a: u8,
        #[orm(unique = "Both:2")]
        b: u8,
    }
    expect_definition_error::<IndexAndUnique>("IndexAndUnique", "b", &["`Both`", "unique"]).await;
}

#[tokio::test]
async fn index_named_primary_is_a_definition_error() {
    #[derive(Entity)]
    struct PrimaryIndex {
        id: u64,
        #[orm(index = "PRIMARY")]
        a: u8,
    }
    expect_definition_error::<PrimaryIndex>("PrimaryIndex", "a", &["PRIMARY"]).await;

    #[derive(Entity)]
    struct PrimaryUnique {
        id: u64,
        #[orm(unique = "primary")]
        a: u8,
    }
    expect_definition_error::<PrimaryUnique>("PrimaryUnique", "a", &["PRIMARY"]).await;
}

#[derive(Embedded)]
struct City {
    city: String,
}

#[tokio::test]
async fn embedded_column_colliding_with_a_field_is_a_definition_error() {
    #[derive(Entity)]
    struct Collides {
        id: u64,
        address_city: String,
        #[orm(embedded)]
        address: City,
    }
    expect_definition_error::<Collides>(
        "Collides",
        "address.city",
        &["`address_city`", "also produced"],
    )
    .await;
}

#[tokio::test]
async fn index_attribute_on_an_embedded_field_is_a_definition_error() {
    #[derive(Entity)]
    struct IndexedEmbedded {
        id: u64,
        #[orm(embedded, index = "I")]
        address: City,
    }
    expect_definition_error::<IndexedEmbedded>("IndexedEmbedded", "address", &["embedded"]).await;
}

#[tokio::test]

async fn type_attribute_on_an_embedded_field_is_a_definition_error() {
    #[derive(Entity)]
    struct SizedEmbedded {
        id: u64,
        #[orm(embedded, length = 10)]
        address: City,
    }
    expect_definition_error::<SizedEmbedded>("SizedEmbedded", "address", &["embedded"]).await;
}

#[tokio::test]

async fn index_names_differing_only_in_case_are_a_definition_error() {
    #[derive(Entity)]
    struct CaseIndexes {
        id: u64,
        #[orm(index = "Name")]
        a: u8,
        #[orm(unique = "name")]
        b: u8,
    }
    expect_definition_error::<CaseIndexes>("CaseIndexes", "b", &["`name`"]).await;
}

#[tokio::test]
async fn overlong_column_name_is_a_definition_error() {
    // (An overlong table name is already a compile error of the derive.)
    #[derive(Embedded)]
    struct Inner {
        c_123456789_123456789_123456789_123456789: u8,
    }
    #[derive(Entity)]
    struct LongColumn {
        id: u64,
        #[orm(embedded)]
        o_123456789_123456789_12345: Inner,
    }
    let (entity, field, reason) =
        definition_parts(validate_entity::<LongColumn>().await.expect_err("66 chars"));
    assert_eq!(entity, "LongColumn");
    assert_eq!(
        field.as_deref(),
        Some("o_123456789_123456789_12345.c_123456789_123456789_123456789_123456789")
    );
    assert_mentions(&reason, &["64"]);
}

// ---------------------------------------------------------------------------------
// Schema metadata
// ---------------------------------------------------------------------------------

#[derive(Embedded)]
struct Address {
    street: String,
    #[orm(index = "CityZip")]
    city: String,
    #[orm(index = "CityZip:2")]
    zip: Option<u32>,
}

#[derive(Entity)]
struct Customer {
    id: u32,
    #[orm(index = "NameAge:2")]
    name: String,
    #[orm(index = "NameAge")]
    age: u8,
    #[orm(embedded)]
    address: Address,
    #[orm(ignore)]
    scratch: Vec<std::time::Instant>,
    #[orm(unique = "Email")]
    email: String,
}

#[tokio::test]
async fn schema_metadata_follows_the_struct() {
    let validated = validate_entity::<Customer>().await.expect("validates");
    let schema = validated.table_schema::<Customer>().expect("registered");
    assert_eq!(schema.entity_name(), "Customer");
    assert_eq!(schema.table_name(), "Customer");
    assert_eq!(schema.pool_name(), "default");
    assert_eq!(schema.pool_name(), beeorm::DEFAULT_POOL);
    assert_eq!(schema.id_column(), IdColumn { bytes: 4 });

    let names: Vec<&str> = schema.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "age",
            "address_street",
            "address_city",
            "address_zip",
            "email"
        ]
    );
    let fields: Vec<&str> = schema.columns().iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "id",
            "name",
            "age",
            "address.street",
            "address.city",
            "address.zip",
            "email"
        ]
    );
    let zip = &schema.columns()[5];
    assert!(zip.nullable);
    assert_eq!(
        zip.ty,
        ColumnType::Int {
            bytes: 4,
            unsigned: true
        }
    );
    assert!(schema.columns().iter().all(|c| c.name != "scratch"));
    assert_eq!(
        schema.columns()[0].ty,
        ColumnType::Int {
            bytes: 4,
            unsigned: true
        }
    );

    let indexes: Vec<(&str, bool, Vec<&str>)> = schema
        .indexes()
        .iter()
        .map(|i| {
            (
                i.name.as_str(),
                i.unique,
                i.columns.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        indexes,
        vec![
            ("CityZip", false, vec!["address_city", "address_zip"]),
            ("Email", true, vec!["email"]),
            ("NameAge", false, vec!["age", "name"]),
        ]
    );

    assert!(validated.table_schema_by_name("Customer").is_some());
    assert_eq!(validated.table_schemas().count(), 1);
}

// ---------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------

#[derive(OrmEnum, Clone, Copy, Debug, PartialEq)]
enum Status {
    Active,
    #[orm(rename = "on-hold")]
    OnHold,
    #[orm(default)]
    Closed,
}

#[derive(OrmEnum, Clone, Copy, Debug, PartialEq)]
enum Plain {
    First,
    Second,
}

#[test]
fn derived_enum_knows_its_values_default_and_renames() {
    assert_eq!(Status::NAME, "Status");
    assert_eq!(Status::fields(), ["Active", "on-hold", "Closed"]);
    assert_eq!(Status::default_value(), Status::Closed);
    assert_eq!(Status::OnHold.as_str(), "on-hold");
    assert_eq!(Status::Active.as_str(), "Active");
    assert_eq!(
        <Status as OrmEnum>::from_str("on-hold"),
        Some(Status::OnHold)
    );
    assert_eq!(<Status as OrmEnum>::from_str("OnHold"), None);
    assert_eq!(<Status as OrmEnum>::from_str("closed"), None);
    assert!(Status::has("Closed"));
    assert!(Status::has("on-hold"));
    assert!(!Status::has("OnHold"));
    assert!(!Status::has(""));

    // Without `#[orm(default)]` the first variant is the default.
    assert_eq!(Plain::default_value(), Plain::First);
}

#[tokio::test]
async fn derived_enum_registers_under_its_type_name() {
    let mut r = Registry::new();
    r.register_enum::<Status>();
    let validated = r.validate().await.expect("validates");
    let e = validated.get_enum("Status").expect("registered");
    assert_eq!(e.name(), "Status");
    assert_eq!(e.fields(), ["Active", "on-hold", "Closed"]);
    assert_eq!(e.default_value(), "Closed");
    assert_eq!(
        e.mapping().get("on-hold").map(String::as_str),
        Some("on-hold")
    );
    assert!(e.has("on-hold"));
    assert!(!e.has("OnHold"));
    assert!(validated.get_enum("status").is_none());
}

#[tokio::test]
async fn enum_list_and_map_are_available_after_validate() {
    let mut r = Registry::new();
    r.register_enum_list("colors", &["red", "green", "blue"])
        .register_enum_map(
            "sizes",
            &[("S", "small"), ("M", "medium"), ("L", "large")],
            "M",
        );
    let validated = r.validate().await.expect("validates");

    let colors = validated.get_enum("colors").expect("colors");
    assert_eq!(colors.name(), "colors");
    assert_eq!(colors.fields(), ["red", "green", "blue"]);
    assert_eq!(colors.default_value(), "red");
    assert_eq!(colors.mapping().len(), 3);
    assert_eq!(
        colors.mapping().get("green").map(String::as_str),
        Some("green")
    );
    assert!(colors.has("blue"));
    assert!(!colors.has("Blue"));

    let sizes = validated.get_enum("sizes").expect("sizes");
    let mut values = sizes.fields().to_vec();
    values.sort();
    assert_eq!(values, ["large", "medium", "small"]);
    assert_eq!(sizes.default_value(), "medium");
    assert_eq!(sizes.mapping().get("S").map(String::as_str), Some("small"));
    assert_eq!(sizes.mapping().get("L").map(String::as_str), Some("large"));
    // `has` looks at stored values, not keys.
    assert!(sizes.has("small"));
    assert!(!sizes.has("S"));

    assert!(validated.get_enum("nope").is_none());
}

#[tokio::test]
async fn empty_enum_list_is_a_definition_error() {
    let mut r = Registry::new();
    r.register_enum_list("empty", &[]);
    let (entity, field, reason) = definition_parts(r.validate().await.expect_err("empty"));
    assert_eq!(entity, "empty");
    assert_eq!(field, None);
    assert_mentions(&reason, &["at least one"]);
}

#[tokio::test]
async fn duplicated_enum_value_is_a_definition_error() {
    let mut r = Registry::new();
    r.register_enum_list("dupes", &["a", "b", "a"]);
    let (entity, _, reason) = definition_parts(r.validate().await.expect_err("list"));
    assert_eq!(entity, "dupes");
    assert_mentions(&reason, &["`a`", "twice"]);

    let mut r = Registry::new();
    r.register_enum_map("dupes_map", &[("x", "same"), ("y", "same")], "x");
    let (entity, _, reason) = definition_parts(r.validate().await.expect_err("map"));
    assert_eq!(entity, "dupes_map");
    assert_mentions(&reason, &["`same`", "twice"]);
}

#[tokio::test]
async fn unstorable_enum_values_are_definition_errors() {
    for value in ["", "a,b", "it's", "back\\slash"] {
        let mut r = Registry::new();
        r.register_enum_list("odd", &["ok", value]);
        let (entity, _, _) = definition_parts(r.validate().await.expect_err(value));
        assert_eq!(entity, "odd");
    }
}

#[tokio::test]

async fn enum_map_with_a_repeated_key_is_a_definition_error() {
    let mut r = Registry::new();
    r.register_enum_map("sizes", &[("S", "small"), ("S", "smaller")], "S");
    let (entity, _, reason) = definition_parts(r.validate().await.expect_err("key S twice"));
    assert_eq!(entity, "sizes");
    assert_mentions(&reason, &["`S`"]);
}

#[tokio::test]
async fn enum_map_with_a_missing_default_key_is_a_definition_error() {
    let mut r = Registry::new();
    r.register_enum_map("sizes", &[("S", "small"), ("M", "medium")], "XL");
    let (entity, field, reason) = definition_parts(r.validate().await.expect_err("no XL"));
    assert_eq!(entity, "sizes");
    assert_eq!(field, None);
    assert_mentions(&reason, &["default"]);
}

#[tokio::test]
async fn enum_registered_twice_with_different_values_is_a_definition_error() {
    let mut r = Registry::new();
    r.register_enum_list("colors", &["red"])
        .register_enum_list("colors", &["red", "blue"]);
    let (entity, _, reason) = definition_parts(r.validate().await.expect_err("twice"));
    assert_eq!(entity, "colors");
    assert_mentions(&reason, &["twice"]);

    // The same values twice are fine.
    let mut r = Registry::new();
    r.register_enum_list("colors", &["red"])
        .register_enum_list("colors", &["red"]);
    r.validate().await.expect("same enum twice");
}

#[derive(Entity)]
struct Paint {
    id: u64,
    #[orm(enum = "colors")]
    color: String,
    #[orm(enum = "colors")]
    maybe_color: Option<String>,
    #[orm(set = "colors")]
    colors: Vec<String>,
    #[orm(enum = "sizes")]
    size: String,
    status: Status,
    statuses: Vec<Status>,
}

#[tokio::test]
async fn named_enums_resolve_to_enum_and_set_columns() {
    let mut r = sqlite_registry();
    r.register_entity::<Paint>()
        .register_enum_list("colors", &["red", "green", "blue"])
        .register_enum_map("sizes", &[("S", "small"), ("M", "medium")], "M");
    let validated = r.validate().await.expect("validates");
    let schema = validated.table_schema::<Paint>().expect("registered");
    let column = |name: &str| {
        schema
            .columns()
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("column {name}"))
            .clone()
    };
    let colors = EnumValues::Values {
        values: vec!["red".into(), "green".into(), "blue".into()],
        default: "red".into(),
    };
    assert_eq!(column("color").ty, ColumnType::Enum(colors.clone()));
    assert!(!column("color").nullable);
    assert_eq!(column("maybe_color").ty, ColumnType::Enum(colors.clone()));
    assert!(column("maybe_color").nullable);
    assert_eq!(column("colors").ty, ColumnType::Set(colors));

    match column("size").ty {
        ColumnType::Enum(EnumValues::Values {
            mut values,
            default,
        }) => {
            values.sort();
            assert_eq!(values, ["medium", "small"]);
            assert_eq!(default, "medium");
        }
        other => panic!("expected an enum column, got {other:?}"),
    }

    let status = EnumValues::Values {
        values: vec!["Active".into(), "on-hold".into(), "Closed".into()],
        default: "Closed".into(),
    };
    assert_eq!(column("status").ty, ColumnType::Enum(status.clone()));
    assert_eq!(column("statuses").ty, ColumnType::Set(status));
}

#[tokio::test]
async fn attribute_on_a_derived_enum_field_is_a_definition_error() {
    #[derive(Entity)]
    struct EnumWithLength {
        id: u64,
        #[orm(length = 5)]
        status: Status,
    }
    expect_definition_error::<EnumWithLength>("EnumWithLength", "status", &["`length`", "Status"])
        .await;
}

#[tokio::test]
async fn values_read_back_through_the_sqlite_pool() {
    // A smoke test that the registry's pools are usable right after validate().
    let validated = sqlite_registry().validate().await.expect("validates");
    let rows = validated
        .create_engine()
        .db("default")
        .expect("pool `default`")
        .query("SELECT 'x'", vec![])
        .await
        .expect("query");
    assert_eq!(rows[0][0], Value::String("x".into()));
}
