//! The registry (A1, A3, A5, A8, A9): everything the application uses, declared once at
//! start-up and checked once by [`Registry::validate`], which opens the pools and
//! returns a [`ValidatedRegistry`]. Engines are made from that, cheaply, per task.

#[cfg(feature = "mysql")]
mod dsn;
mod yaml;

use rustc_hash::FxHashMap;
use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use crate::schema::enums::{EnumDefinition, OrmEnum};

use crate::cache::{LocalCache, LocalCacheBound};
use crate::hooks::{self, BoxFuture, HookEvent, HookTarget, Hooks};
use crate::schema::{EntityDefinition, TableSchema};
use crate::sql::pool::{SqlPool, SqlTimeouts};
use crate::{Engine, Entity, Error, Result};

/// The pool name used when none is given.
pub const DEFAULT_POOL: &str = "default";

/// Connections per SQLite file pool.
#[cfg(feature = "sqlite")]
const SQLITE_CONNECTIONS: usize = 4;

#[derive(Debug, Clone)]
#[cfg_attr(
    not(all(feature = "mysql", feature = "postgres", feature = "sqlite")),
    allow(dead_code)
)]
enum RelationalConfig {
    MySql {
        dsn: String,
        encoding: Option<String>,
    },
    Sqlite {
        path: String,
    },
    Postgres {
        url: String,
    },
}

impl RelationalConfig {
    /// The server kind of the pool.
    #[allow(dead_code)] // Only read when a driver is compiled out.
    fn kind(&self) -> crate::DialectKind {
        match self {
            RelationalConfig::MySql { .. } => crate::DialectKind::MySql,
            RelationalConfig::Sqlite { .. } => crate::DialectKind::Sqlite,
            RelationalConfig::Postgres { .. } => crate::DialectKind::Postgres,
        }
    }
}

/// Collects pools, entities and enums. Build it with the `register_*` methods or
/// from YAML ([`Registry::from_yaml`]), then call [`Registry::validate`].
///
/// Registering never fails: every mistake is reported, with its place, by `validate()`.
#[derive(Debug, Clone)]
pub struct Registry {
    relational: Vec<(String, RelationalConfig)>,
    local_caches: Vec<(String, LocalCacheBound)>,
    redis: Vec<(String, crate::redis::RedisConfig)>,
    redis_timeouts: Vec<(String, crate::redis::Timeouts)>,
    sql_timeouts: Vec<(String, SqlTimeouts)>,
    lockers: Vec<(String, String)>,
    /// Redis streams: (stream, Redis pool, consumer groups).
    streams: Vec<(String, String, Vec<String>)>,
    entities: Vec<(TypeId, EntityDefinition)>,
    enums: Vec<EnumDefinition>,
    default_encoding: String,
    hooks: Hooks,
    instrumentation: crate::instrument::HookSlot,
    cache: crate::cache::CacheSettings,
    /// The Redis pool of the lazy flush's stream (`enable_lazy_flush`).
    lazy_flush: Option<String>,
    /// ClickHouse pools: (name, URL).
    clickhouse: Vec<(String, String)>,
    /// ClickHouse timeouts: (pool, connect, query).
    clickhouse_timeouts: Vec<(String, std::time::Duration, std::time::Duration)>,
    /// Search pools (`register_search_tantivy`, `register_search_redis`).
    search: Vec<(String, crate::search::pools::SearchConfig)>,
    /// Read replicas: (relational pool, replica).
    replicas: Vec<(String, crate::sql::replicas::ReplicaConfig)>,
    /// Replica options per relational pool.
    replica_options: Vec<(String, crate::sql::replicas::ReplicaOptions)>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            relational: Vec::new(),
            local_caches: Vec::new(),
            redis: Vec::new(),
            redis_timeouts: Vec::new(),
            sql_timeouts: Vec::new(),
            lockers: Vec::new(),
            streams: Vec::new(),
            entities: Vec::new(),
            enums: Vec::new(),
            default_encoding: "utf8mb4".into(),
            hooks: Hooks::default(),
            instrumentation: Default::default(),
            cache: Default::default(),
            lazy_flush: None,
            clickhouse: Vec::new(),
            clickhouse_timeouts: Vec::new(),
            search: Vec::new(),
            replicas: Vec::new(),
            replica_options: Vec::new(),
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a MySQL/MariaDB pool. `dsn` is `mysql://user:pass@host:3306/db` or the
    /// Go form `user:pass@tcp(host:3306)/db`; `?limit_connections=N` caps the pool
    /// (default 100).
    pub fn register_mysql_pool(&mut self, name: &str, dsn: &str) -> &mut Self {
        self.relational.push((
            name.to_string(),
            RelationalConfig::MySql {
                dsn: dsn.to_string(),
                encoding: None,
            },
        ));
        self
    }

    /// Registers a MySQL pool whose tables use `encoding` instead of the default.
    pub fn register_mysql_pool_with_encoding(
        &mut self,
        name: &str,
        dsn: &str,
        encoding: &str,
    ) -> &mut Self {
        self.relational.push((
            name.to_string(),
            RelationalConfig::MySql {
                dsn: dsn.to_string(),
                encoding: Some(encoding.to_string()),
            },
        ));
        self
    }

    /// Registers a PostgreSQL pool: `postgres://user:pass@host:5432/db`;
    /// `?limit_connections=N` caps the pool (default 100).
    pub fn register_postgres_pool(&mut self, name: &str, url: &str) -> &mut Self {
        self.relational.push((
            name.to_string(),
            RelationalConfig::Postgres {
                url: url.to_string(),
            },
        ));
        self
    }

    /// Registers an SQLite pool on a file (created when missing) or `:memory:`.
    pub fn register_sqlite_pool(&mut self, name: &str, path: &str) -> &mut Self {
        self.relational.push((
            name.to_string(),
            RelationalConfig::Sqlite {
                path: path.to_string(),
            },
        ));
        self
    }

    /// The character set of MySQL tables (default `utf8mb4`).
    pub fn set_default_encoding(&mut self, encoding: &str) -> &mut Self {
        self.default_encoding = encoding.to_string();
        self
    }

    /// Registers an in-process cache holding at most `size` entries (YAML
    /// `local_cache: 1000`). See [`LocalCache`] for its API.
    pub fn register_local_cache(&mut self, name: &str, size: u64) -> &mut Self {
        self.local_caches
            .push((name.to_string(), LocalCacheBound::Entries(size)));
        self
    }

    /// Registers an in-process cache holding at most `bytes` bytes, as estimated per
    /// entry (YAML `local_cache: {bytes: "64MB"}`); [`LocalCache`] says how entries
    /// are weighed.
    pub fn register_local_cache_bytes(&mut self, name: &str, bytes: u64) -> &mut Self {
        self.local_caches
            .push((name.to_string(), LocalCacheBound::Bytes(bytes)));
        self
    }

    /// Registers a Redis pool on one server: `address` is `host:port` (or a
    /// `redis://[user:password@]host:port` URL), `db` the database number. The YAML form
    /// is `redis: host:port:db`.
    pub fn register_redis_pool(&mut self, name: &str, address: &str, db: u32) -> &mut Self {
        self.redis.push((
            name.to_string(),
            crate::redis::RedisConfig::Server {
                address: address.to_string(),
                db,
            },
        ));
        self
    }

    /// Registers a Redis pool on the master that Sentinels know as `master`, following
    /// it across failovers. `sentinels` are `host:port` addresses (`:26379` means
    /// 127.0.0.1).
    pub fn register_redis_sentinel(
        &mut self,
        name: &str,
        master: &str,
        sentinels: &[&str],
        db: u32,
    ) -> &mut Self {
        self.redis.push((
            name.to_string(),
            crate::redis::RedisConfig::Sentinel {
                master: master.to_string(),
                sentinels: sentinels.iter().map(|s| s.to_string()).collect(),
                db,
            },
        ));
        self
    }

    /// Registers a Redis Cluster pool by some of its nodes (`host:port`); the others
    /// are discovered.
    pub fn register_redis_cluster(&mut self, name: &str, nodes: &[&str]) -> &mut Self {
        self.redis.push((
            name.to_string(),
            crate::redis::RedisConfig::Cluster {
                nodes: nodes.iter().map(|s| s.to_string()).collect(),
            },
        ));
        self
    }

    /// Sets how long the Redis pool `pool` waits: `connect` for each connection
    /// attempt, `response` for each reply (a slower reply fails the command with a
    /// typed [`Error::Redis`](crate::Error::Redis) and the connection is replaced). The
    /// defaults, 1 s and 2 s, suit a server on the same network; raise `response` above
    /// the longest blocking command you send. [`Registry::validate`] refuses an
    /// unknown pool name or a zero duration.
    pub fn set_redis_timeouts(
        &mut self,
        pool: &str,
        connect: std::time::Duration,
        response: std::time::Duration,
    ) -> &mut Self {
        self.redis_timeouts.push((
            pool.to_string(),
            crate::redis::Timeouts { connect, response },
        ));
        self
    }

    /// Adds a read replica to the MySQL/MariaDB or PostgreSQL pool `pool`: `dsn` in
    /// the form of the pool's own (a MySQL DSN or a PostgreSQL URL, with the same
    /// database). Reads of entities — by ID, searches, preloads, the query builder —
    /// are spread over the replicas in rotation in proportion to their `weight`
    /// (at least 1); writes, transactions, cache fills and plain SQL ([`Db`](crate::Db))
    /// stay on the primary. An engine never reads older data than it committed
    /// itself (see [`Consistency`](crate::Consistency)); replicas that lag, stop
    /// replicating or do not answer are taken out of rotation until they are healthy
    /// again ([`ReplicaOptions`](crate::ReplicaOptions)).
    ///
    /// MariaDB replicas need GTID replication (`MASTER_USE_GTID`) and the primary a
    /// binary log; PostgreSQL replicas are streaming standbys. The YAML form is a
    /// `replicas:` list in the pool's section.
    ///
    /// ```no_run
    /// # async fn demo() -> beeorm::Result<()> {
    /// let mut registry = beeorm::Registry::new();
    /// registry
    ///     .register_mysql_pool("default", "mysql://app@db1:3306/app")
    ///     .register_replica("default", "mysql://app@db2:3306/app", 1)
    ///     .register_replica("default", "mysql://app@db3:3306/app", 2);
    /// let registry = registry.validate().await?;
    /// # Ok(()) }
    /// ```
    pub fn register_replica(&mut self, pool: &str, dsn: &str, weight: u32) -> &mut Self {
        self.replicas.push((
            pool.to_string(),
            crate::sql::replicas::ReplicaConfig {
                dsn: dsn.to_string(),
                weight,
            },
        ));
        self
    }

    /// How the replicas of `pool` are used: the longest wait for a replica to catch
    /// up with an engine's write, the lag above which a replica leaves the rotation,
    /// how often replicas are checked (see [`ReplicaOptions`](crate::ReplicaOptions)).
    /// YAML keys in the pool's section: `replica_max_wait`, `replica_max_lag`,
    /// `replica_check_interval`.
    pub fn set_replica_options(
        &mut self,
        pool: &str,
        options: crate::sql::replicas::ReplicaOptions,
    ) -> &mut Self {
        self.replica_options.push((pool.to_string(), options));
        self
    }

    /// Sets how long the relational pool `pool` (MySQL, PostgreSQL or SQLite) waits:
    ///
    /// - `connect`: opening one connection (default 5 s);
    /// - `query`: one statement, `BEGIN`, `COMMIT` and `ROLLBACK` included (default
    ///   60 s). A statement that runs longer fails with
    ///   [`Error::Timeout`](crate::Error::Timeout); it may or may not have run, so its
    ///   connection is closed (its transaction rolled back). Raise it above your
    ///   longest statement (schema changes on big tables). SQLite statements run in
    ///   the process and are not interrupted: there it bounds the wait for another
    ///   connection's write lock (at most 5 s);
    /// - `acquire`: waiting for a free connection of the pool (default 10 s), e.g.
    ///   when every connection is held by a transaction. On MySQL, whose driver opens
    ///   connections inside its checkout, the checkout is bounded by the larger of
    ///   `acquire` and `connect`.
    ///
    /// Each limit that runs out fails the call with a typed
    /// [`Error::Timeout`](crate::Error::Timeout) naming the pool, the operation and
    /// the limit. The YAML keys are `connect_timeout`, `query_timeout` and
    /// `acquire_timeout` in the pool's section. [`Registry::validate`] refuses an
    /// unknown pool name or a zero duration. The limits use Tokio's timer: run beeorm
    /// on a runtime with time enabled (`#[tokio::main]` enables it).
    pub fn set_sql_timeouts(
        &mut self,
        pool: &str,
        connect: std::time::Duration,
        query: std::time::Duration,
        acquire: std::time::Duration,
    ) -> &mut Self {
        self.sql_timeouts.push((
            pool.to_string(),
            SqlTimeouts {
                connect,
                query,
                acquire,
            },
        ));
        self
    }

    /// Registers a ClickHouse pool (feature `clickhouse`, see [`crate::clickhouse`]):
    /// `url` is `http://user:password@host:8123/database` (user `default`, no
    /// password, port 8123 and database `default` when left out; percent-encode
    /// special characters in the user and password). YAML: `clickhouse: <url>` in the
    /// pool's section. [`Registry::validate`] checks the URL but connects to nothing;
    /// a build without the feature refuses the pool there.
    pub fn register_clickhouse_pool(&mut self, name: &str, url: &str) -> &mut Self {
        self.clickhouse.push((name.to_string(), url.to_string()));
        self
    }

    /// Sets how long the ClickHouse pool `pool` waits: `connect` for each connection
    /// (default 5 s), `query` for each statement or read, including receiving its
    /// result, and for each chunk an insert sends and the server's answer to it
    /// (default 60 s). A limit that runs out fails the call with
    /// [`Error::Timeout`](crate::Error::Timeout) (a statement that timed out may or may
    /// not have run). YAML: `connect_timeout` and `query_timeout` in the pool's
    /// section. [`Registry::validate`] refuses an unknown pool name or a zero duration.
    pub fn set_clickhouse_timeouts(
        &mut self,
        pool: &str,
        connect: std::time::Duration,
        query: std::time::Duration,
    ) -> &mut Self {
        self.clickhouse_timeouts
            .push((pool.to_string(), connect, query));
        self
    }

    /// Registers the hook that sees every statement and every transaction step of
    /// the relational pools (see [`Instrumentation`](crate::Instrumentation)): for
    /// metrics, or to count statements in tests. One hook per registry; a second call
    /// replaces the first. Without one, instrumentation costs one `Option` check per
    /// statement.
    pub fn set_instrumentation(&mut self, hook: Arc<dyn crate::Instrumentation>) -> &mut Self {
        self.instrumentation = crate::instrument::HookSlot(Some(hook));
        self
    }

    /// Registers the locker `name`, whose locks live in the Redis pool `redis_pool`.
    pub fn register_locker(&mut self, name: &str, redis_pool: &str) -> &mut Self {
        self.lockers
            .push((name.to_string(), redis_pool.to_string()));
        self
    }

    /// Registers the Redis stream `name` (the stream's key) in the Redis pool
    /// `redis_pool`, with its consumer groups (YAML: `streams: {name: [groups]}` in the
    /// pool's section). [`Registry::validate`] creates the stream and every group
    /// that does not exist yet; a group created on a stream that already holds
    /// entries starts at its first entry (ID `0`), so it sees every event still in
    /// the stream. Registering a stream again in the same pool adds groups; in
    /// another pool it is an error. Publish and consume with
    /// [`Engine::event_broker`](crate::Engine::event_broker) (feature `redis`).
    pub fn register_redis_stream(
        &mut self,
        name: &str,
        redis_pool: &str,
        groups: &[&str],
    ) -> &mut Self {
        self.streams.push((
            name.to_string(),
            redis_pool.to_string(),
            groups.iter().map(|g| g.to_string()).collect(),
        ));
        self
    }

    /// Registers an observer of every committed write (see [`crate::Observer`]):
    /// called with the change set inside each transaction and after each COMMIT.
    pub fn register_observer(&mut self, observer: Arc<dyn crate::Observer>) -> &mut Self {
        self.hooks.add_observer(observer);
        self
    }

    /// Registers a hook for entity type `E` on `events` (see [`crate::hooks`]). The hook
    /// may change the entity, or return an error to refuse the write.
    pub fn register_hook<E: Entity>(
        &mut self,
        events: &[HookEvent],
        hook: impl Fn(HookEvent, &mut E) -> Result<()> + Send + Sync + 'static,
    ) -> &mut Self {
        let run = hooks::typed::<E>(move |event, e| {
            let r = hook(event, e);
            Box::pin(async move { r })
        });
        self.hooks.add(events, Some(TypeId::of::<E>()), run);
        self
    }

    /// Registers an async hook for entity type `E`: a function returning a boxed future
    /// that may borrow the entity, e.g.
    /// `fn stamp<'a>(_: HookEvent, e: &'a mut Note) -> BoxFuture<'a, beeorm::Result<()>>`.
    pub fn register_async_hook<E: Entity>(
        &mut self,
        events: &[HookEvent],
        hook: impl for<'a> Fn(HookEvent, &'a mut E) -> BoxFuture<'a, Result<()>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.hooks
            .add(events, Some(TypeId::of::<E>()), hooks::typed::<E>(hook));
        self
    }

    /// Registers a hook for every entity type on `events`.
    pub fn register_global_hook(
        &mut self,
        events: &[HookEvent],
        hook: impl Fn(HookEvent, &mut dyn HookTarget) -> Result<()> + Send + Sync + 'static,
    ) -> &mut Self {
        let run = hooks::global(move |event, e| {
            let r = hook(event, e);
            Box::pin(async move { r })
        });
        self.hooks.add(events, None, run);
        self
    }

    /// Registers an async hook for every entity type on `events`.
    pub fn register_global_async_hook(
        &mut self,
        events: &[HookEvent],
        hook: impl for<'a> Fn(HookEvent, &'a mut dyn HookTarget) -> BoxFuture<'a, Result<()>>
            + Send
            + Sync
            + 'static,
    ) -> &mut Self {
        self.hooks.add(events, None, hooks::global(hook));
        self
    }

    /// Enables the Persian normaliser (I2): every free-text field of every entity is
    /// rewritten before insert and update (Arabic Yeh, Alef Maksura → Persian Yeh,
    /// Arabic Kaf → Keheh), and so are the string parameters of searches and queries,
    /// so a search finds a row whichever form was typed.
    pub fn enable_persian_normalizer(&mut self) -> &mut Self {
        self.register_global_hook(
            &[HookEvent::BeforeInsert, HookEvent::BeforeUpdate],
            |_, entity| {
                entity.visit_strings(&mut |s| {
                    if let std::borrow::Cow::Owned(n) = hooks::normalize_persian(s) {
                        *s = n;
                    }
                });
                Ok(())
            },
        );
        self.hooks.persian_params = true;
        self
    }

    /// Registers an entity type. Registering the same type twice is harmless.
    pub fn register_entity<E: Entity>(&mut self) -> &mut Self {
        let id = TypeId::of::<E>();
        if !self.entities.iter().any(|(t, _)| *t == id) {
            self.entities.push((id, E::definition()));
        }
        self
    }

    /// Registers a `#[derive(OrmEnum)]` type under its type name.
    pub fn register_enum<E: OrmEnum>(&mut self) -> &mut Self {
        self.enums.push(EnumDefinition::from_enum::<E>());
        self
    }

    /// The namespace of every entity-cache key: the application's name (ASCII
    /// letters, digits, `_`, `-`, `.`). Mandatory once an entity is cached, so two
    /// applications sharing one Redis never read each other's rows.
    pub fn set_cache_namespace(&mut self, namespace: &str) -> &mut Self {
        self.cache.namespace = Some(namespace.to_string());
        self
    }

    /// An optional tenant namespace, added after the application's: registries of
    /// two tenants (their own databases behind the same pool names) sharing one
    /// Redis never read each other's rows.
    pub fn set_cache_tenant(&mut self, tenant: &str) -> &mut Self {
        self.cache.tenant = Some(tenant.to_string());
        self
    }

    /// How long Redis keeps a cached row (default 1 hour) and a "no such row" entry
    /// (default 60 s). Both above zero.
    pub fn set_cache_ttl(
        &mut self,
        row: std::time::Duration,
        missing: std::time::Duration,
    ) -> &mut Self {
        self.cache.ttl = row;
        self.cache.missing_ttl = missing;
        self
    }

    /// The Redis pool that carries the local layer's invalidations between processes
    /// (default: the `default` Redis pool, when there is one; without any, the local
    /// layer is coherent within this process only).
    pub fn set_cache_channel(&mut self, redis_pool: &str) -> &mut Self {
        self.cache.channel_pool = Some(redis_pool.to_string());
        self
    }

    /// The local layer's staleness window (default 1 s): with an invalidation
    /// channel, a local entry is served only while the channel proved, less than this
    /// long ago, that it had delivered every invalidation; a write acknowledged more
    /// than one window ago is never served stale by the local layer of any process.
    pub fn set_local_cache_window(&mut self, window: std::time::Duration) -> &mut Self {
        self.cache.window = window;
        self
    }

    /// Strict mode: writers of locally cached entities wait one window (see
    /// [`Registry::set_local_cache_window`]) after their COMMIT and its invalidation,
    /// before the write returns, so no process's local layer ever serves a row older
    /// than an acknowledged write. Costs that wait on every such write.
    pub fn set_local_cache_strict(&mut self, strict: bool) -> &mut Self {
        self.cache.strict = strict;
        self
    }

    /// Switches every entity cache of this registry off (`false`) or on (the default):
    /// off, cached entities read from and write to the database only, as if they
    /// declared no `local_cache` nor `redis_cache`, and cached queries run their SQL
    /// every time. For benchmarks ("how much do the caches buy?"), for tests, and to
    /// rule the caches out while debugging, without recompiling.
    pub fn set_entity_caches_enabled(&mut self, enabled: bool) -> &mut Self {
        self.cache.enabled = enabled;
        self
    }

    /// How often this registry adds its entity-cache counters to the shared Redis
    /// hashes that [`Engine::published_cache_stats`](crate::Engine::published_cache_stats)
    /// and the `beeorm cache` command read (default 10 s; zero: never): a background
    /// task sends one `MULTI`/`HINCRBY…`/`EXEC` per cached entity whose counters moved
    /// (see [`Engine::publish_cache_stats`](crate::Engine::publish_cache_stats)).
    pub fn set_cache_stats_interval(&mut self, interval: std::time::Duration) -> &mut Self {
        self.cache.stats_interval = interval;
        self
    }

    /// Enables [`Flusher::flush_lazy`](crate::Flusher::flush_lazy): lazy writes travel
    /// through a stream of the Redis pool `redis_pool` to
    /// [`Engine::lazy_consumer`](crate::Engine::lazy_consumer), which applies them.
    /// The stream (`{<namespace>:lazy}`), its consumer group (`beeorm-lazy`) and its
    /// dead-letter stream (`{<namespace>:lazy}:dead`) are named after the cache
    /// namespace ([`Registry::set_cache_namespace`], required), so two applications
    /// sharing one Redis never mix their writes; the group is created at
    /// [`Registry::validate`]. YAML: `lazy_flush: true` in the Redis pool's section.
    /// See `docs/lazy_flush.md`.
    pub fn enable_lazy_flush(&mut self, redis_pool: &str) -> &mut Self {
        self.lazy_flush = Some(redis_pool.to_string());
        self
    }

    /// Registers the search pool `name` on tantivy, embedded: its indexes live in the
    /// directory `dir` (created when missing), or in RAM for `":memory:"` (empty at
    /// each start: run the search alters, which reindex). YAML: `tantivy: <dir>` in
    /// the pool's section. An entity's `#[orm(search)]` uses the pool `default`,
    /// which is tantivy in RAM when not registered. Needs the `tantivy` feature (on
    /// by default).
    pub fn register_search_tantivy(&mut self, name: &str, dir: &str) -> &mut Self {
        self.search.push((
            name.to_string(),
            crate::search::pools::SearchConfig::Tantivy {
                dir: dir.to_string(),
            },
        ));
        self
    }

    /// Registers the search pool `name` on RediSearch, in the registered Redis pool
    /// `redis_pool` (a server with the RediSearch module; a single server or a
    /// Sentinel master, not a Redis Cluster). Index names and document keys start
    /// with the cache namespace (`beeorm` without one). YAML: `redisearch: <redis
    /// pool>` in the pool's section. Needs the `redis` feature.
    pub fn register_search_redis(&mut self, name: &str, redis_pool: &str) -> &mut Self {
        self.search.push((
            name.to_string(),
            crate::search::pools::SearchConfig::Redis {
                redis_pool: redis_pool.to_string(),
            },
        ));
        self
    }

    /// Registers an enum from a list of values; the first is the default.
    pub fn register_enum_list(&mut self, name: &str, values: &[&str]) -> &mut Self {
        self.enums.push(EnumDefinition::from_list(name, values));
        self
    }

    /// Registers an enum from `key → stored value` pairs with the key of the default.
    pub fn register_enum_map(
        &mut self,
        name: &str,
        map: &[(&str, &str)],
        default_key: &str,
    ) -> &mut Self {
        self.enums
            .push(EnumDefinition::from_map(name, map, default_key));
        self
    }

    /// Builds a registry from YAML with the seed's keys (see the crate docs).
    pub fn from_yaml(yaml: &str) -> Result<Registry> {
        yaml::registry_from_yaml(yaml)
    }

    /// Reads YAML from a file, then [`Registry::from_yaml`].
    pub fn from_yaml_file(path: impl AsRef<std::path::Path>) -> Result<Registry> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    fn check_name(kind: &str, name: &str) -> Result<()> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::config(format!(
                "{kind} pool name `{name}` must be non-empty ASCII letters, digits, `_` or `-`"
            )));
        }
        Ok(())
    }

    fn check_encoding(encoding: &str, used_by: &str) -> Result<()> {
        if encoding.is_empty()
            || !encoding
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Error::config(format!(
                "encoding `{encoding}` ({used_by}) is not a character set name"
            )));
        }
        Ok(())
    }

    /// Checks every definition and the references between them, opens the pools
    /// (lazily for servers: no connection is made yet), and returns the validated
    /// registry. Must run inside a Tokio runtime.
    pub async fn validate(&self) -> Result<ValidatedRegistry> {
        Self::check_encoding(&self.default_encoding, "the registry's default encoding")?;
        for (name, t) in &self.sql_timeouts {
            if !self.relational.iter().any(|(p, _)| p == name) {
                return Err(Error::UnknownPool {
                    kind: "relational",
                    pool: name.clone(),
                    used_by: "set_sql_timeouts".into(),
                });
            }
            if t.connect.is_zero() || t.query.is_zero() || t.acquire.is_zero() {
                return Err(Error::config(format!(
                    "relational pool `{name}`: timeouts must be above zero (connect {:?}, query {:?}, acquire {:?})",
                    t.connect, t.query, t.acquire
                )));
            }
        }
        let mut pools: FxHashMap<String, SqlPool> = FxHashMap::default();
        for (name, config) in &self.relational {
            Self::check_name("relational", name)?;
            if pools.contains_key(name) {
                return Err(Error::config(format!(
                    "relational pool `{name}` is registered twice"
                )));
            }
            let timeouts = self
                .sql_timeouts
                .iter()
                .rev()
                .find(|(p, _)| p == name)
                .map_or_else(SqlTimeouts::default, |(_, t)| *t);
            let pool = self.open_relational(name, config, timeouts)?;
            pools.insert(name.clone(), pool);
        }
        let replicas = self.open_replicas(&pools)?;
        let mut local_caches = HashMap::new();
        for (name, bound) in &self.local_caches {
            Self::check_name("local cache", name)?;
            if bound.limit() == 0 {
                let unit = match bound {
                    LocalCacheBound::Entries(_) => "entries",
                    LocalCacheBound::Bytes(_) => "bytes",
                };
                return Err(Error::config(format!(
                    "local cache `{name}` needs a size above 0 {unit}"
                )));
            }
            if local_caches
                .insert(name.clone(), LocalCache::new(name, *bound))
                .is_some()
            {
                return Err(Error::config(format!(
                    "local cache pool `{name}` is registered twice"
                )));
            }
        }
        for (name, _) in &self.redis {
            Self::check_name("Redis", name)?;
        }
        for (name, _) in &self.lockers {
            Self::check_name("locker", name)?;
        }
        let (redis, lockers) =
            crate::redis::open_pools(&self.redis, &self.lockers, &self.redis_timeouts)?;
        #[cfg(feature = "redis")]
        let streams = crate::events::check_streams(&self.streams, &redis)?;
        for (name, _) in &self.clickhouse {
            Self::check_name("ClickHouse", name)?;
        }
        #[cfg(feature = "clickhouse")]
        let clickhouse =
            crate::clickhouse::open_pools(&self.clickhouse, &self.clickhouse_timeouts)?;
        #[cfg(not(feature = "clickhouse"))]
        if let Some(pool) = self
            .clickhouse
            .first()
            .map(|(p, _)| p)
            .or_else(|| self.clickhouse_timeouts.first().map(|(p, _, _)| p))
        {
            return Err(Error::config(format!(
                "ClickHouse pool `{pool}` needs ClickHouse support, which this build of beeorm leaves out: enable the cargo feature `clickhouse`"
            )));
        }
        #[cfg(not(feature = "redis"))]
        crate::redis::refuse_streams(&self.streams)?;
        let mut enums: HashMap<String, EnumDefinition> = HashMap::new();
        for e in &self.enums {
            e.check()?;
            if let Some(prev) = enums.insert(e.name().to_string(), e.clone()) {
                if prev != *e {
                    return Err(Error::definition(
                        e.name(),
                        None,
                        "enum registered twice with different values",
                    ));
                }
            }
        }
        let mut tables: FxHashMap<TypeId, Arc<TableSchema>> = FxHashMap::default();
        let mut by_table: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut by_name: BTreeMap<String, Arc<TableSchema>> = BTreeMap::new();
        let mut built: Vec<(TypeId, TableSchema)> = Vec::new();
        for (id, def) in &self.entities {
            built.push((*id, TableSchema::build(def, &enums)?));
        }
        self.check_cache_settings()?;
        let search = crate::search::pools::open(
            &self.search,
            &mut built,
            &redis,
            &self.redis,
            self.cache.namespace.as_deref(),
        )?;
        let search_sync = built.iter().any(|(_, s)| s.search_index().is_some());
        #[cfg(feature = "redis")]
        let dirty = Self::check_dirty_streams(&built, |name| streams.contains_key(name))?;
        #[cfg(not(feature = "redis"))]
        let dirty = Self::check_dirty_streams(&built, |_| false)?;
        let caches = {
            let mut schemas: Vec<&mut TableSchema> = built.iter_mut().map(|(_, s)| s).collect();
            crate::cache::Caches::build(&mut schemas, &self.cache, &local_caches, &redis)?
        };
        let targets: HashMap<TypeId, (String, String, String)> = built
            .iter()
            .map(|(id, s)| {
                (
                    *id,
                    (
                        s.table_name().to_string(),
                        s.pool_name().to_string(),
                        s.id_column_name().to_string(),
                    ),
                )
            })
            .collect();
        for (id, mut schema) in built {
            let def_type_name = schema.entity_name().to_string();
            if !pools.contains_key(schema.pool_name()) {
                return Err(Error::UnknownPool {
                    kind: "relational",
                    pool: schema.pool_name().to_string(),
                    used_by: format!("entity `{def_type_name}`"),
                });
            }
            let key = (
                schema.pool_name().to_string(),
                schema.table_name().to_string(),
            );
            if let Some(first) = by_table.insert(key, def_type_name.clone()) {
                return Err(Error::DuplicateTable {
                    table: schema.table_name().to_string(),
                    pool: schema.pool_name().to_string(),
                    first,
                    second: def_type_name.clone(),
                });
            }
            if let (Some(log_pool), Some(log_table)) = (schema.log_pool(), schema.log_table_name())
            {
                if !pools.contains_key(log_pool) {
                    return Err(Error::UnknownPool {
                        kind: "relational",
                        pool: log_pool.to_string(),
                        used_by: format!("the change log of entity `{def_type_name}`"),
                    });
                }
                if log_pool != schema.pool_name() {
                    return Err(Error::ChangeLogPool {
                        entity: def_type_name.clone(),
                        pool: schema.pool_name().to_string(),
                        log_pool: log_pool.to_string(),
                    });
                }
                let key = (log_pool.to_string(), log_table.to_string());
                if let Some(first) = by_table.insert(key, def_type_name.clone()) {
                    return Err(Error::DuplicateTable {
                        table: log_table.to_string(),
                        pool: log_pool.to_string(),
                        first,
                        second: def_type_name.clone(),
                    });
                }
            }
            schema.resolve_references(&targets)?;
            let schema = Arc::new(schema);
            by_name.insert(def_type_name, schema.clone());
            tables.insert(id, schema);
        }
        #[cfg(feature = "redis")]
        crate::events::create_groups(&streams, &redis).await?;
        #[cfg(feature = "redis")]
        let lazy = match &self.lazy_flush {
            Some(pool) => Some(Arc::new(
                crate::flush::LazyConfig::open(pool, self.cache.namespace.as_deref(), &redis)
                    .await?,
            )),
            None => None,
        };
        #[cfg(not(feature = "redis"))]
        if let Some(pool) = &self.lazy_flush {
            return Err(Error::config(format!(
                "lazy flush on Redis pool `{pool}` needs beeorm's `redis` feature"
            )));
        }
        let validated = ValidatedRegistry {
            inner: Arc::new(Inner {
                #[cfg(feature = "redis")]
                streams,
                #[cfg(feature = "redis")]
                lazy,
                pools,
                replicas,
                local_caches,
                redis,
                lockers,
                tables,
                by_name,
                enums,
                hooks: self.hooks.clone(),
                caches: caches.clone(),
                dirty,
                #[cfg(feature = "clickhouse")]
                clickhouse,
                search,
                search_sync,
            }),
        };
        if let Some(c) = &caches {
            c.start();
        }
        for (name, set) in &validated.inner.replicas {
            if let Some(primary) = validated.inner.pools.get(name) {
                set.start(primary.clone());
            }
        }
        Ok(validated)
    }

    /// Opens one relational pool (lazily: no connection yet).
    fn open_relational(
        &self,
        name: &str,
        config: &RelationalConfig,
        timeouts: SqlTimeouts,
    ) -> Result<SqlPool> {
        let hook = self.instrumentation.0.clone();
        Ok(match config {
            #[cfg(feature = "mysql")]
            RelationalConfig::MySql { dsn, encoding } => {
                let encoding = encoding.as_deref().unwrap_or(&self.default_encoding);
                Self::check_encoding(encoding, &format!("MySQL pool `{name}`"))?;
                let parsed = dsn::parse_mysql_dsn(dsn, name, encoding)?;
                let pool =
                    crate::sql::mysql::MySqlPool::new(name, parsed.opts, encoding, timeouts, hook);
                SqlPool::MySql(Arc::new(pool))
            }
            #[cfg(feature = "postgres")]
            RelationalConfig::Postgres { url } => SqlPool::Postgres(Arc::new(
                crate::sql::postgres::PgPool::new(name, url, timeouts, hook)?,
            )),
            #[cfg(feature = "sqlite")]
            RelationalConfig::Sqlite { path } => {
                let pool = crate::sql::sqlite::SqlitePool::open(
                    name,
                    path,
                    SQLITE_CONNECTIONS,
                    timeouts,
                    hook,
                )?;
                SqlPool::Sqlite(Arc::new(pool))
            }
            // A driver this build leaves out (its cargo feature is off).
            #[allow(unreachable_patterns)]
            other => {
                let _ = (timeouts, hook);
                return Err(crate::sql::pool::driver_not_compiled(name, other.kind()));
            }
        })
    }

    /// Opens the replicas of every pool that has some, checking them.
    fn open_replicas(
        &self,
        pools: &FxHashMap<String, SqlPool>,
    ) -> Result<FxHashMap<String, Arc<crate::sql::replicas::ReplicaSet>>> {
        use crate::sql::replicas::{ReplicaOptions, ReplicaSet};
        let mut sets = FxHashMap::default();
        for (pool, options) in &self.replica_options {
            if !self.replicas.iter().any(|(p, _)| p == pool) {
                return Err(Error::config(format!(
                    "replica options for pool `{pool}`, which has no replicas (register_replica)"
                )));
            }
            if options.max_wait.is_zero()
                || options.max_lag.is_zero()
                || options.check_interval.is_zero()
            {
                return Err(Error::config(format!(
                    "replicas of pool `{pool}`: max_wait, max_lag and check_interval must be above zero ({options:?})"
                )));
            }
        }
        let mut names: Vec<&str> = self.replicas.iter().map(|(p, _)| p.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for pool_name in names {
            let Some((_, config)) = self.relational.iter().find(|(p, _)| p == pool_name) else {
                return Err(Error::UnknownPool {
                    kind: "relational",
                    pool: pool_name.to_string(),
                    used_by: "register_replica".into(),
                });
            };
            let Some(primary) = pools.get(pool_name) else {
                continue;
            };
            let timeouts = primary.timeouts();
            let mut opened = Vec::new();
            for (n, (_, replica)) in self
                .replicas
                .iter()
                .filter(|(p, _)| p == pool_name)
                .enumerate()
            {
                let replica_name = format!("{pool_name}/replica-{}", n + 1);
                if replica.weight == 0 {
                    return Err(Error::config(format!(
                        "{replica_name}: the weight must be at least 1"
                    )));
                }
                let replica_config = match config {
                    RelationalConfig::MySql { encoding, .. } => RelationalConfig::MySql {
                        dsn: replica.dsn.clone(),
                        encoding: encoding.clone(),
                    },
                    RelationalConfig::Postgres { .. } => RelationalConfig::Postgres {
                        url: replica.dsn.clone(),
                    },
                    RelationalConfig::Sqlite { .. } => {
                        return Err(Error::config(format!(
                            "pool `{pool_name}` is SQLite, which has no replicas"
                        )))
                    }
                };
                let pool = self.open_relational(&replica_name, &replica_config, timeouts)?;
                opened.push((pool, replica.dsn.clone(), replica.weight));
            }
            let options = self
                .replica_options
                .iter()
                .rev()
                .find(|(p, _)| p == pool_name)
                .map_or_else(ReplicaOptions::default, |(_, o)| *o);
            let set = Arc::new(ReplicaSet::new(pool_name, primary.kind(), options, opened));
            sets.insert(pool_name.to_string(), set);
        }
        Ok(sets)
    }

    /// Every dirty stream an entity declares is registered (`registered`); without
    /// the `redis` feature none may be declared. Returns whether any entity declares
    /// one.
    fn check_dirty_streams(
        schemas: &[(TypeId, TableSchema)],
        registered: impl Fn(&str) -> bool,
    ) -> Result<bool> {
        let mut any = false;
        for (_, schema) in schemas {
            for d in schema.dirty_streams() {
                any = true;
                if cfg!(not(feature = "redis")) {
                    return Err(Error::config(format!(
                        "entity `{}` declares dirty stream `{}`: dirty streams need the cargo \
                         feature `redis`, which this build leaves out",
                        schema.entity_name(),
                        d.name()
                    )));
                }
                if !registered(d.name()) {
                    return Err(Error::UnregisteredDirtyStream {
                        entity: schema.entity_name().to_string(),
                        field: d.fields().next().map(str::to_string),
                        stream: d.name().to_string(),
                    });
                }
            }
        }
        Ok(any)
    }

    fn check_cache_settings(&self) -> Result<()> {
        let c = &self.cache;
        for (what, name) in [("namespace", &c.namespace), ("tenant", &c.tenant)] {
            if let Some(n) = name {
                if n.is_empty()
                    || n.len() > 64
                    || !n
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
                {
                    return Err(Error::config(format!(
                        "cache {what} `{n}` must be 1 to 64 ASCII letters, digits, `_`, `-` or `.`"
                    )));
                }
            }
        }
        if c.ttl.as_millis() == 0 || c.missing_ttl.as_millis() == 0 {
            return Err(Error::config(format!(
                "cache TTLs must be at least 1 ms (row {:?}, missing {:?})",
                c.ttl, c.missing_ttl
            )));
        }
        if c.window.as_millis() == 0 {
            return Err(Error::config(format!(
                "the local cache window must be at least 1 ms ({:?})",
                c.window
            )));
        }
        Ok(())
    }
}

struct Inner {
    pools: FxHashMap<String, SqlPool>,
    /// Read replicas, by the name of their relational pool.
    replicas: FxHashMap<String, Arc<crate::sql::replicas::ReplicaSet>>,
    local_caches: HashMap<String, LocalCache>,
    redis: HashMap<String, crate::redis::RedisClient>,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    lockers: HashMap<String, crate::redis::Locker>,
    /// Registered Redis streams, by name.
    #[cfg(feature = "redis")]
    streams: BTreeMap<String, crate::events::StreamDef>,
    tables: FxHashMap<TypeId, Arc<TableSchema>>,
    by_name: BTreeMap<String, Arc<TableSchema>>,
    enums: HashMap<String, EnumDefinition>,
    hooks: Hooks,
    caches: Option<Arc<crate::cache::Caches>>,
    /// Whether some entity declares dirty streams.
    dirty: bool,
    #[cfg(feature = "redis")]
    lazy: Option<Arc<crate::flush::LazyConfig>>,
    /// ClickHouse pools, by name.
    #[cfg(feature = "clickhouse")]
    clickhouse: HashMap<String, crate::clickhouse::ClickHouse>,
    /// The search pools, by name.
    search: crate::search::pools::Backends,
    /// Whether some entity has a search index.
    search_sync: bool,
}

/// A checked registry holding the open pools. Cheap to clone; share it across tasks
/// and make an [`Engine`] per request or task with [`ValidatedRegistry::create_engine`].
#[derive(Clone)]
pub struct ValidatedRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ValidatedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatedRegistry")
            .field("pools", &self.inner.pools.keys().collect::<Vec<_>>())
            .field("entities", &self.inner.by_name.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ValidatedRegistry {
    /// A new engine: an `Arc` clone, no I/O.
    pub fn create_engine(&self) -> Engine {
        Engine::new(self.clone())
    }

    /// The table schema of entity type `E`.
    pub fn table_schema<E: Entity>(&self) -> Result<&TableSchema> {
        self.inner
            .tables
            .get(&TypeId::of::<E>())
            .map(|t| t.as_ref())
            .ok_or_else(|| Error::UnknownEntity(E::TYPE_NAME.to_string()))
    }

    pub(crate) fn hooks(&self) -> &Hooks {
        &self.inner.hooks
    }

    /// Whether a flush must build its change set (observers, entity caches or dirty
    /// streams).
    #[inline]
    pub(crate) fn needs_changes(&self) -> bool {
        !self.inner.hooks.observers().is_empty()
            || self.inner.caches.is_some()
            || self.inner.dirty
            || self.inner.search_sync
    }

    /// Whether some entity has a search index (its writes are indexed after COMMIT).
    #[inline]
    pub(crate) fn has_search(&self) -> bool {
        self.inner.search_sync
    }

    /// The search pool `name`.
    pub(crate) fn search_backend(
        &self,
        name: &str,
    ) -> Option<&Arc<dyn crate::search::backend::SearchBackend>> {
        self.inner.search.get(name)
    }

    /// Every search pool, by name (sorted).
    pub(crate) fn search_backends(
        &self,
    ) -> Vec<(&str, &Arc<dyn crate::search::backend::SearchBackend>)> {
        let mut out: Vec<_> = self
            .inner
            .search
            .iter()
            .map(|(n, b)| (n.as_str(), b))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    /// Names of the search pools (the implicit `default` included once an entity
    /// uses it).
    pub fn search_pools(&self) -> Vec<&str> {
        self.search_backends().into_iter().map(|(n, _)| n).collect()
    }

    /// Whether some entity declares dirty streams.
    #[cfg(feature = "redis")]
    pub(crate) fn has_dirty_streams(&self) -> bool {
        self.inner.dirty
    }

    /// The entity caches; `None` when no entity is cached.
    #[inline]
    pub(crate) fn caches(&self) -> Option<&crate::cache::Caches> {
        self.inner.caches.as_deref()
    }

    /// The lazy flush's stream, when enabled.
    #[cfg(feature = "redis")]
    pub(crate) fn lazy(&self) -> Option<&Arc<crate::flush::LazyConfig>> {
        self.inner.lazy.as_ref()
    }

    /// The type and schema of the entity named `entity` (its Rust type name).
    #[cfg(feature = "redis")]
    pub(crate) fn entity_by_name(&self, entity: &str) -> Option<(TypeId, &TableSchema)> {
        let schema = self.inner.by_name.get(entity)?;
        self.inner
            .tables
            .iter()
            .find(|(_, t)| Arc::ptr_eq(t, schema))
            .map(|(id, t)| (*id, t.as_ref()))
    }

    pub(crate) fn table_schema_by_type(&self, id: TypeId) -> Option<&TableSchema> {
        self.inner.tables.get(&id).map(|t| t.as_ref())
    }

    /// The table schema of the entity with this Rust type name.
    pub fn table_schema_by_name(&self, entity: &str) -> Option<&TableSchema> {
        self.inner.by_name.get(entity).map(|t| t.as_ref())
    }

    /// Every registered table schema, by entity name.
    pub fn table_schemas(&self) -> impl Iterator<Item = &TableSchema> {
        self.inner.by_name.values().map(|t| t.as_ref())
    }

    /// A registered enum by name (a `#[derive(OrmEnum)]` type registers under its type name).
    pub fn get_enum(&self, name: &str) -> Option<&EnumDefinition> {
        self.inner.enums.get(name)
    }

    /// Names of the relational pools.
    pub fn relational_pools(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.inner.pools.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn sql_pool(&self, name: &str) -> Option<&SqlPool> {
        self.inner.pools.get(name)
    }

    /// The read replicas of relational pool `name`, if it has some.
    pub(crate) fn replicas(&self, name: &str) -> Option<&Arc<crate::sql::replicas::ReplicaSet>> {
        self.inner.replicas.get(name)
    }

    /// Whether some relational pool has read replicas.
    pub(crate) fn has_replicas(&self) -> bool {
        !self.inner.replicas.is_empty()
    }

    /// The read replicas of every pool that has some, sorted by pool: health (as the
    /// last check found it, or a failed read), lag, and reads served. The CLI's
    /// `beeorm replicas` prints it.
    pub fn replica_status(&self) -> Vec<crate::ReplicaSetStatus> {
        let mut all: Vec<_> = self.inner.replicas.values().map(|s| s.status()).collect();
        all.sort_by(|a, b| a.pool.cmp(&b.pool));
        all
    }

    /// Checks every replica now (what the background task does each
    /// `check_interval`) and returns [`ValidatedRegistry::replica_status`].
    pub async fn check_replicas(&self) -> Vec<crate::ReplicaSetStatus> {
        for (name, set) in &self.inner.replicas {
            if let Some(primary) = self.inner.pools.get(name) {
                set.check(primary).await;
            }
        }
        self.replica_status()
    }

    pub(crate) fn local_cache(&self, name: &str) -> Option<&LocalCache> {
        self.inner.local_caches.get(name)
    }

    #[cfg(feature = "redis")]
    pub(crate) fn redis(&self, name: &str) -> Option<&crate::redis::RedisClient> {
        self.inner.redis.get(name)
    }

    #[cfg(feature = "redis")]
    pub(crate) fn locker(&self, name: &str) -> Option<&crate::redis::Locker> {
        self.inner.lockers.get(name)
    }

    /// Every registered Redis stream, by name.
    #[cfg(feature = "redis")]
    pub(crate) fn streams(&self) -> &BTreeMap<String, crate::events::StreamDef> {
        &self.inner.streams
    }

    /// The registered Redis stream `name`.
    #[cfg(feature = "redis")]
    pub(crate) fn stream(&self, name: &str) -> Option<&crate::events::StreamDef> {
        self.inner.streams.get(name)
    }

    /// Names of the Redis pools.
    pub fn redis_pools(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.inner.redis.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    #[cfg(feature = "clickhouse")]
    pub(crate) fn clickhouse(&self, name: &str) -> Option<&crate::clickhouse::ClickHouse> {
        self.inner.clickhouse.get(name)
    }

    /// Names of the ClickHouse pools (empty without the `clickhouse` feature).
    pub fn clickhouse_pools(&self) -> Vec<&str> {
        #[cfg(feature = "clickhouse")]
        {
            let mut names: Vec<&str> = self.inner.clickhouse.keys().map(String::as_str).collect();
            names.sort_unstable();
            names
        }
        #[cfg(not(feature = "clickhouse"))]
        Vec::new()
    }

    /// Closes the connections of every MySQL pool. Use at shutdown.
    pub async fn close(&self) {
        for set in self.inner.replicas.values() {
            set.close().await;
        }
        for pool in self.inner.pools.values() {
            #[cfg(feature = "mysql")]
            #[allow(irrefutable_let_patterns)]
            if let SqlPool::MySql(p) = pool {
                p.disconnect().await;
            }
            let _ = pool;
        }
    }
}
