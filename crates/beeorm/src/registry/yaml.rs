//! The YAML configuration (A8): top-level keys are pool names, each holding the seed's
//! keys. `sqlite` is ours: the embedded dialect. Any input gives a registry or a typed
//! error ([`Error::Yaml`], [`Error::Config`]); flow collections (`[…]`, `{…}`) nested
//! more than 128 levels deep are refused before parsing.
//!
//! ```yaml
//! default:
//!   mysql: root:root@tcp(localhost:3306)/db?limit_connections=10
//!   mysqlEncoding: utf8mb4
//!   local_cache: 1000              # at most 1000 entries; or `{entries: 1000}`, or a byte
//!                                  #   bound: `{bytes: 67108864}`, `{bytes: "64MB"}`
//!   connect_timeout: 5s            # ours: relational pool timeouts (`500ms`, `5s`, `2m`,
//!   query_timeout: 60s             #   or a number of seconds); see
//!   acquire_timeout: 10s           #   `Registry::set_sql_timeouts` for the defaults
//!   replicas:                      # ours: read replicas (`Registry::register_replica`)
//!     - root:root@tcp(db2:3306)/db #   weight 1
//!     - {dsn: "root:root@tcp(db3:3306)/db", weight: 2}
//!   replica_max_wait: 200ms        # ours: `ReplicaOptions` (defaults 200ms, 5s, 1s)
//!   replica_max_lag: 5s
//!   replica_check_interval: 1s
//! embedded:
//!   sqlite: /var/lib/app/data.db   # or ":memory:" (quoted: a bare trailing `:` is YAML syntax)
//! cache:
//!   redis: localhost:6379:0        # host:port:db
//!   locker: cache                  # the locker `cache`, on the Redis pool `cache`
//! ha:
//!   sentinel:
//!     mymaster:2:                  # master name:db
//!       - :26379                   # `:port` means 127.0.0.1
//!       - 10.0.0.2:26379
//! analytics:
//!   clickhouse: http://default@127.0.0.1:8123/default   # ours: a ClickHouse pool (feature
//!   query_timeout: 30s                                  #   `clickhouse`); also takes
//!                                                       #   `connect_timeout`
//! search:
//!   tantivy: /var/lib/app/search   # ours: the search pool `search` on tantivy (or ":memory:")
//! ft:
//!   redis: localhost:6391:0
//!   redisearch: ft                 # ours: the search pool `ft` on RediSearch in Redis pool `ft`
//! shards:
//!   redis_cluster: [127.0.0.1:7000, 127.0.0.1:7001]   # ours: a Redis Cluster
//!   streams:                       # Redis streams of this section's Redis pool
//!     orders: [billing, mailer]    #   stream: [consumer groups]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Registry;
use crate::cache::LocalCacheBound;
use crate::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolSection {
    mysql: Option<String>,
    #[serde(rename = "mysqlEncoding")]
    mysql_encoding: Option<String>,
    sqlite: Option<String>,
    /// Ours: a PostgreSQL URL.
    postgres: Option<String>,
    local_cache: Option<LocalCacheSetting>,
    /// Ours: relational pool timeouts (see `Registry::set_sql_timeouts`).
    connect_timeout: Option<serde_norway::Value>,
    query_timeout: Option<serde_norway::Value>,
    acquire_timeout: Option<serde_norway::Value>,
    /// Ours: read replicas of the relational pool: DSNs, or `{dsn, weight}`.
    replicas: Option<Vec<ReplicaEntry>>,
    /// Ours: replica options (see `Registry::set_replica_options`).
    replica_max_wait: Option<serde_norway::Value>,
    replica_max_lag: Option<serde_norway::Value>,
    replica_check_interval: Option<serde_norway::Value>,
    redis: Option<String>,
    /// `{"master:db": [sentinel addresses]}`.
    sentinel: Option<BTreeMap<String, Vec<String>>>,
    /// Ours: cluster node addresses.
    redis_cluster: Option<Vec<String>>,
    /// The Redis pool of the locker named after this section.
    locker: Option<String>,
    /// Redis streams of this section's Redis pool: `{stream: [groups]}`.
    streams: Option<BTreeMap<String, Vec<String>>>,
    /// Ours: `lazy_flush: true` carries lazy writes through this Redis pool.
    lazy_flush: Option<bool>,
    /// Ours: a search pool named after the section, on tantivy in this directory
    /// (`":memory:"`: in RAM).
    tantivy: Option<String>,
    /// Ours: a search pool named after the section, on RediSearch in this Redis pool.
    redisearch: Option<String>,
    // Keys of the seed whose capabilities are not built yet: accepted by the parser so
    // the error can say so instead of "unknown field".
    elastic: Option<serde_norway::Value>,
    elastic_trace: Option<serde_norway::Value>,
    /// A ClickHouse pool: `http://user:password@host:8123/database`.
    clickhouse: Option<String>,
}

/// One entry of `replicas:`: a DSN (weight 1) or `{dsn: …, weight: N}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ReplicaEntry {
    Dsn(String),
    Weighted {
        dsn: String,
        #[serde(default = "one")]
        weight: u32,
    },
}

fn one() -> u32 {
    1
}

/// `local_cache:` — `N` or `{entries: N}` (an entry bound), `{bytes: N}` or
/// `{bytes: "64MB"}` (a byte bound). Anything else is a YAML error, which
/// serde_norway prefixes with the path (`pool.local_cache`) and position.
#[derive(Debug)]
struct LocalCacheSetting(LocalCacheBound);

/// What `local_cache` accepts, for error messages.
const LOCAL_CACHE_FORMS: &str = "a number of entries (`local_cache: 1000`), `{entries: 1000}` or `{bytes: 67108864}` / `{bytes: \"64MB\"}`";

impl<'de> Deserialize<'de> for LocalCacheSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LocalCacheSetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(LOCAL_CACHE_FORMS)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<Self::Value, E> {
                Ok(LocalCacheSetting(LocalCacheBound::Entries(n)))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<Self::Value, E> {
                u64::try_from(n)
                    .map(|n| LocalCacheSetting(LocalCacheBound::Entries(n)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut bound = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: serde_norway::Value = map.next_value()?;
                    let parsed = match key.as_str() {
                        "entries" => value.as_u64().map(LocalCacheBound::Entries).ok_or_else(|| {
                            A::Error::custom(format!(
                                "`entries` must be a whole number of entries, not {}",
                                show(&value)
                            ))
                        })?,
                        "bytes" => parse_bytes(&value).map(LocalCacheBound::Bytes).ok_or_else(|| {
                            A::Error::custom(format!(
                                "`bytes` must be a number of bytes or a size such as \"512KB\", \"64MB\", \"1GB\" (1KB = 1024 bytes), not {}",
                                show(&value)
                            ))
                        })?,
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown key `{other}`; expected {LOCAL_CACHE_FORMS}"
                            )))
                        }
                    };
                    if bound.replace(parsed).is_some() {
                        return Err(A::Error::custom(
                            "give one of `entries` and `bytes`, not both",
                        ));
                    }
                }
                bound
                    .map(LocalCacheSetting)
                    .ok_or_else(|| A::Error::custom(format!("empty; expected {LOCAL_CACHE_FORMS}")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A YAML scalar as written, for error messages.
fn show(value: &serde_norway::Value) -> String {
    match value {
        serde_norway::Value::String(s) => format!("`\"{s}\"`"),
        other => serde_norway::to_string(other)
            .map(|s| format!("`{}`", s.trim_end()))
            .unwrap_or_else(|_| "this value".into()),
    }
}

/// A byte size: a number, or digits and a unit among `B`, `KB`, `MB`, `GB` (powers of
/// 1024; `KiB`, `MiB`, `GiB` are the same; case and a space before the unit do not
/// matter). `None` for anything else or an overflow.
fn parse_bytes(value: &serde_norway::Value) -> Option<u64> {
    match value {
        serde_norway::Value::Number(n) => n.as_u64(),
        serde_norway::Value::String(s) => {
            let s = s.trim();
            let (digits, unit) =
                s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let n: u64 = digits.parse().ok()?;
            let shift = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 0,
                "kb" | "kib" => 10,
                "mb" | "mib" => 20,
                "gb" | "gib" => 30,
                _ => return None,
            };
            n.checked_mul(1u64 << shift)
        }
        _ => None,
    }
}

/// The top-level map, in document order, refusing a pool named twice (a plain map
/// would keep the last section silently).
struct Sections(Vec<(String, PoolSection)>);

impl<'de> Deserialize<'de> for Sections {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Sections;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of pool names to pool settings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Sections, A::Error> {
                let mut out: Vec<(String, PoolSection)> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                while let Some((name, section)) = map.next_entry::<String, PoolSection>()? {
                    if !seen.insert(name.clone()) {
                        return Err(serde::de::Error::custom(format!(
                            "pool `{name}` is defined twice"
                        )));
                    }
                    out.push((name, section));
                }
                Ok(Sections(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Flow collections (`[…]`, `{…}`) nested deeper than this are refused before
/// parsing. The YAML scanner's cost grows with the square of the nesting (100 000
/// levels of `{a: ` took minutes), and serde_norway refuses anything nested deeper
/// than 128 levels anyway, so no document that could load is refused.
const MAX_FLOW_DEPTH: usize = 128;

/// The deepest nesting of flow collections, in one linear pass: brackets in quoted
/// scalars and comments do not count, nor do those inside a plain scalar (`a[b`):
/// a bracket or a quote starts a node only after the start of a line, `:`, `,`,
/// `-`, `?` or an opening bracket.
fn flow_depth(yaml: &str) -> usize {
    let bytes = yaml.as_bytes();
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<u8> = None;
    // The last byte that is not a blank (a line start counts as `\n`), and the last
    // byte of all (a `#` starts a comment only after a blank or at a line start).
    let (mut prev, mut raw) = (b'\n', b'\n');
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        match quote {
            Some(b'"') if b == b'\\' => i += 1,
            // `''` inside a single-quoted scalar is a quote, not the end.
            Some(b'\'') if b == b'\'' && bytes.get(i) == Some(&b'\'') => i += 1,
            Some(q) if b == q => {
                quote = None;
                prev = b;
            }
            Some(_) => {}
            None => match b {
                // A quote opens a quoted scalar only where a node starts (`don't`).
                b'\'' | b'"' if matches!(prev, b'\n' | b':' | b',' | b'-' | b'?' | b'[' | b'{') => {
                    quote = Some(b)
                }
                b'#' if matches!(raw, b' ' | b'\t' | b'\n' | b'\r') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'[' | b'{' if matches!(prev, b'\n' | b':' | b',' | b'-' | b'?' | b'[' | b'{') => {
                    depth += 1;
                    deepest = deepest.max(depth);
                    prev = b;
                }
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    prev = b;
                }
                b' ' | b'\t' | b'\r' => {}
                _ => prev = b,
            },
        }
        raw = b;
    }
    deepest
}

pub(crate) fn registry_from_yaml(yaml: &str) -> Result<Registry> {
    let depth = flow_depth(yaml);
    if depth > MAX_FLOW_DEPTH {
        return Err(Error::config(format!(
            "YAML configuration: `[`/`{{` nested {depth} levels deep (at most {MAX_FLOW_DEPTH})"
        )));
    }
    let Sections(sections) = serde_norway::from_str(yaml)?;
    let mut registry = Registry::new();
    for (pool, s) in sections {
        let unsupported = [
            ("elastic", s.elastic.is_some()),
            ("elastic_trace", s.elastic_trace.is_some()),
        ];
        if let Some((key, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(Error::config(format!(
                "pool `{pool}`: key `{key}` is not supported by this version of beeorm yet"
            )));
        }
        let servers = [s.mysql.is_some(), s.sqlite.is_some(), s.postgres.is_some()];
        if servers.iter().filter(|x| **x).count() > 1 {
            return Err(Error::config(format!(
                "pool `{pool}` names more than one of `mysql`, `postgres`, `sqlite`; a relational pool has one server"
            )));
        }
        if s.mysql_encoding.is_some() && s.mysql.is_none() {
            return Err(Error::config(format!(
                "pool `{pool}` has `mysqlEncoding` but no `mysql`"
            )));
        }
        if let Some(dsn) = &s.mysql {
            match &s.mysql_encoding {
                Some(enc) => registry.register_mysql_pool_with_encoding(&pool, dsn, enc),
                None => registry.register_mysql_pool(&pool, dsn),
            };
        }
        if let Some(url) = &s.postgres {
            registry.register_postgres_pool(&pool, url);
        }
        if let Some(path) = &s.sqlite {
            registry.register_sqlite_pool(&pool, path);
        }
        if let Some(url) = &s.clickhouse {
            registry.register_clickhouse_pool(&pool, url);
        }
        sql_timeouts(&mut registry, &pool, &s)?;
        replicas(&mut registry, &pool, &s)?;
        match s.local_cache {
            Some(LocalCacheSetting(LocalCacheBound::Entries(n))) => {
                registry.register_local_cache(&pool, n);
            }
            Some(LocalCacheSetting(LocalCacheBound::Bytes(n))) => {
                registry.register_local_cache_bytes(&pool, n);
            }
            None => {}
        }
        redis_section(&mut registry, &pool, &s)?;
        match (&s.tantivy, &s.redisearch) {
            (Some(_), Some(_)) => {
                return Err(Error::config(format!(
                "pool `{pool}` has both `tantivy` and `redisearch`; a search pool has one engine"
            )))
            }
            (Some(dir), None) => {
                registry.register_search_tantivy(&pool, dir);
            }
            (None, Some(redis)) => {
                registry.register_search_redis(&pool, redis);
            }
            (None, None) => {}
        }
    }
    Ok(registry)
}

/// `connect_timeout`, `query_timeout`, `acquire_timeout` of a relational pool; a key
/// left out keeps its default.
fn sql_timeouts(registry: &mut Registry, pool: &str, s: &PoolSection) -> Result<()> {
    let keys = [
        ("connect_timeout", &s.connect_timeout),
        ("query_timeout", &s.query_timeout),
        ("acquire_timeout", &s.acquire_timeout),
    ];
    if keys.iter().all(|(_, v)| v.is_none()) {
        return Ok(());
    }
    let relational = s.mysql.is_some() || s.postgres.is_some() || s.sqlite.is_some();
    if !relational && s.clickhouse.is_none() {
        let (key, _) = keys.iter().find(|(_, v)| v.is_some()).unwrap_or(&keys[0]);
        return Err(Error::config(format!(
            "pool `{pool}` has `{key}` but no `mysql`, `postgres`, `sqlite` or `clickhouse`"
        )));
    }
    if !relational && s.acquire_timeout.is_some() {
        return Err(Error::config(format!(
            "pool `{pool}` has `acquire_timeout`, which only relational pools (`mysql`, `postgres`, `sqlite`) take"
        )));
    }
    let defaults = crate::sql::pool::SqlTimeouts::default();
    let [connect, query, acquire] = [
        (keys[0], defaults.connect),
        (keys[1], defaults.query),
        (keys[2], defaults.acquire),
    ]
    .map(|((key, value), default)| match value {
        None => Ok(default),
        Some(v) => parse_duration(v).ok_or_else(|| {
            Error::config(format!(
                "pool `{pool}`: `{key}` must be a duration such as `500ms`, `5s` or `2m` (or a number of seconds), above zero"
            ))
        }),
    });
    let (connect, query, acquire) = (connect?, query?, acquire?);
    if relational {
        registry.set_sql_timeouts(pool, connect, query, acquire);
    }
    if s.clickhouse.is_some() {
        // The relational defaults (5 s, 60 s) are ClickHouse's too.
        registry.set_clickhouse_timeouts(pool, connect, query);
    }
    Ok(())
}

/// `replicas:` and the `replica_*` options of a relational pool.
fn replicas(registry: &mut Registry, pool: &str, s: &PoolSection) -> Result<()> {
    let options = [
        ("replica_max_wait", &s.replica_max_wait),
        ("replica_max_lag", &s.replica_max_lag),
        ("replica_check_interval", &s.replica_check_interval),
    ];
    let Some(list) = &s.replicas else {
        if let Some((key, _)) = options.iter().find(|(_, v)| v.is_some()) {
            return Err(Error::config(format!(
                "pool `{pool}` has `{key}` but no `replicas`"
            )));
        }
        return Ok(());
    };
    if s.mysql.is_none() && s.postgres.is_none() {
        return Err(Error::config(format!(
            "pool `{pool}` has `replicas`, which only MySQL/MariaDB (`mysql`) and PostgreSQL (`postgres`) pools take"
        )));
    }
    if list.is_empty() {
        return Err(Error::config(format!(
            "pool `{pool}`: `replicas` is empty (leave it out, or list DSNs)"
        )));
    }
    for entry in list {
        match entry {
            ReplicaEntry::Dsn(dsn) => registry.register_replica(pool, dsn, 1),
            ReplicaEntry::Weighted { dsn, weight } => registry.register_replica(pool, dsn, *weight),
        };
    }
    if options.iter().any(|(_, v)| v.is_some()) {
        let mut o = crate::ReplicaOptions::default();
        for (key, value) in options {
            let Some(v) = value else { continue };
            let d = parse_duration(v).ok_or_else(|| {
                Error::config(format!(
                    "pool `{pool}`: `{key}` must be a duration such as `500ms`, `5s` or `2m` (or a number of seconds), above zero"
                ))
            })?;
            match key {
                "replica_max_wait" => o.max_wait = d,
                "replica_max_lag" => o.max_lag = d,
                _ => o.check_interval = d,
            }
        }
        registry.set_replica_options(pool, o);
    }
    Ok(())
}

/// `500ms`, `5s`, `2m`, or a bare number of seconds; `None` for anything else or zero.
fn parse_duration(v: &serde_norway::Value) -> Option<std::time::Duration> {
    use std::time::Duration;
    let d = match v {
        serde_norway::Value::Number(n) => Duration::from_secs(n.as_u64()?),
        serde_norway::Value::String(s) => {
            let s = s.trim();
            let (digits, unit) =
                s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let n: u64 = digits.parse().ok()?;
            match unit.trim() {
                "ms" => Duration::from_millis(n),
                "s" | "" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.checked_mul(60)?),
                _ => return None,
            }
        }
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// `redis: host:port:db`, `sentinel: {"master:db": [addresses]}`, `redis_cluster: [nodes]`
/// (at most one of them: one Redis pool per section), `locker: <redis pool>` and
/// `lazy_flush: true`.
fn redis_section(registry: &mut Registry, pool: &str, s: &PoolSection) -> Result<()> {
    let kinds = [
        s.redis.is_some(),
        s.sentinel.is_some(),
        s.redis_cluster.is_some(),
    ];
    let has_redis = kinds.iter().any(|k| *k);
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(Error::config(format!(
            "pool `{pool}` has more than one of `redis`, `sentinel`, `redis_cluster`; a Redis pool has one"
        )));
    }
    if let Some(value) = &s.redis {
        let (address, db) = split_db(pool, value, true)?;
        registry.register_redis_pool(pool, address, db);
    }
    if let Some(map) = &s.sentinel {
        let mut entries = map.iter();
        let (Some((key, addresses)), None) = (entries.next(), entries.next()) else {
            return Err(Error::config(format!(
                "pool `{pool}`: `sentinel` takes one entry, `master_name:db: [addresses]`"
            )));
        };
        let (master, db) = split_db(pool, key, false)?;
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        registry.register_redis_sentinel(pool, master, &addresses, db);
    }
    if let Some(nodes) = &s.redis_cluster {
        let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
        registry.register_redis_cluster(pool, &nodes);
    }
    if let Some(redis_pool) = &s.locker {
        registry.register_locker(pool, redis_pool);
    }
    if let Some(streams) = &s.streams {
        if !has_redis {
            return Err(Error::config(format!(
                "pool `{pool}` has `streams` but no `redis`, `sentinel` or `redis_cluster`"
            )));
        }
        for (stream, groups) in streams {
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            registry.register_redis_stream(stream, pool, &groups);
        }
    }
    if s.lazy_flush == Some(true) {
        if !has_redis {
            return Err(Error::config(format!(
                "pool `{pool}`: `lazy_flush: true` needs a Redis pool in the same section (`redis`, `sentinel` or `redis_cluster`)"
            )));
        }
        registry.enable_lazy_flush(pool);
    }
    Ok(())
}

/// `host:port:db` → (`host:port`, db); `name:db` → (`name`, db). Without a database
/// number (`host:port`, `redis://host:port`, `[::1]:6379`, `name`) the database is 0.
fn split_db<'a>(pool: &str, value: &'a str, is_address: bool) -> Result<(&'a str, u32)> {
    let value = value.trim();
    // Where the host starts: after a URL scheme, if any.
    let host_at = value.find("://").map_or(0, |i| i + 3);
    match value.rsplit_once(':') {
        Some((rest, db))
            if !is_address
                || (rest.len() > host_at
                    && rest[host_at..].contains(':')
                    && !rest.ends_with(']')) =>
        {
            let db = db.parse::<u32>().map_err(|_| {
                Error::config(format!(
                    "pool `{pool}`: `{value}` must end with `:` and a database number"
                ))
            })?;
            Ok((rest, db))
        }
        _ => Ok((value, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_with_binary_units() {
        let parse = |y: &str| parse_bytes(&serde_norway::from_str(y).unwrap());
        assert_eq!(parse("1000"), Some(1000));
        assert_eq!(parse("\"1000\""), Some(1000));
        assert_eq!(parse("\"100B\""), Some(100));
        assert_eq!(parse("\"512KB\""), Some(512 * 1024));
        assert_eq!(parse("\"64MB\""), Some(64 << 20));
        assert_eq!(parse("\"64 mib\""), Some(64 << 20));
        assert_eq!(parse("\"2GB\""), Some(2 << 30));
        assert_eq!(parse("\"2GiB\""), Some(2 << 30));
        for bad in [
            "\"64XB\"",
            "\"MB\"",
            "\"-1MB\"",
            "\"1.5MB\"",
            "-1",
            "1.5",
            "[1]",
            "\"99999999999999999999GB\"",
            "\"17179869184GB\"",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn flow_depth_counts_only_real_flow_collections() {
        assert_eq!(flow_depth("a: [1, {b: [2]}]\nc: {d: e}"), 3);
        assert_eq!(
            flow_depth("a: 'x[[[{{'\nb: \"[[\\\"[[\" # [[[[\nc: a[b[c"),
            0
        );
        assert_eq!(flow_depth("a: 'it''s [' \nb: don't\nc: [x]"), 1);
        assert_eq!(flow_depth(&"{a: ".repeat(1000)), 1000);
        let err = registry_from_yaml(&"{a: ".repeat(100_000)).unwrap_err();
        assert!(err.to_string().contains("100000 levels"), "{err}");
    }
}
