//! Caches: the in-process cache pools (A3, E6) and the entity caches (D7) that keep
//! rows of `#[orm(local_cache)]` / `#[orm(redis_cache)]` entities in them.
//!
//! The entity caches must never serve a row older than one a committed write left.
//! How, in short (the details are in each module):
//!
//! * Redis (`protocol.rs`): one key per row; readers fill it only while holding a
//!   lease that any write kills; writers lock the keys of their rows before COMMIT
//!   and unlock (delete) them after, so a crash in between leaves locks that expire
//!   rather than stale rows.
//! * The local layer (`coherence.rs`, `channel.rs`): per-key tickets refuse fills
//!   that raced with an invalidation; other processes learn of every write through a
//!   Redis channel published atomically with the lock and the unlock; while that
//!   channel is down (or its heartbeat older than the window) the local layer
//!   serves nothing and is emptied.
//! * Reads inside a transaction never touch the shared caches; writes change them
//!   only around a COMMIT.
//!
//! See `docs/caching.md` for the protocol, the races it covers and the measured
//! staleness of the local layer.

// Without Redis, the protocol's parts are compiled out and some helpers sit idle.
#![cfg_attr(not(feature = "redis"), allow(dead_code, unused))]

#[cfg(feature = "redis")]
pub mod admin;
#[cfg(feature = "redis")]
mod channel;
pub(crate) mod codec;
pub(crate) mod coherence;
pub(crate) mod local;
pub mod pause;
#[cfg(feature = "redis")]
pub(crate) mod protocol;
pub(crate) mod query;
pub(crate) mod request;
mod stats;
pub(crate) mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;

pub use local::{LocalCache, LocalCacheBound, LocalCacheStats};
pub use stats::{CacheStats, EntityCacheStats, LayerStats};

use crate::redis::RedisClient;
use crate::schema::TableSchema;
use coherence::Coherence;
pub(crate) use stats::Counters;

/// How the entity caches of a registry are set up (`Registry::set_cache_*`).
#[derive(Debug, Clone)]
pub(crate) struct CacheSettings {
    /// The application's namespace: mandatory once an entity is cached.
    pub namespace: Option<String>,
    /// An optional tenant namespace.
    pub tenant: Option<String>,
    /// How long a row stays in Redis.
    pub ttl: Duration,
    /// How long "no such row" stays in Redis.
    pub missing_ttl: Duration,
    /// The Redis pool that carries local-layer invalidations (default: the
    /// `default` Redis pool when there is one).
    pub channel_pool: Option<String>,
    /// The local layer's staleness window.
    pub window: Duration,
    /// Zero stale local reads: writers wait the window after their unlock.
    pub strict: bool,
    /// How often the counters are published to Redis (zero: never).
    pub stats_interval: Duration,
    /// `false`: every cached entity reads and writes as if it had no cache layer.
    pub enabled: bool,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            namespace: None,
            tenant: None,
            ttl: Duration::from_secs(3600),
            missing_ttl: Duration::from_secs(60),
            channel_pool: None,
            window: Duration::from_secs(1),
            strict: false,
            stats_interval: Duration::from_secs(10),
            enabled: true,
        }
    }
}

/// One cached entity type.
pub(crate) struct EntityCache {
    /// Its slot (index in [`Caches::entities`]).
    pub slot: u32,
    /// The entity's Rust type name.
    pub entity: &'static str,
    /// `pool.table`: how invalidation messages name it.
    pub table_id: String,
    /// `<namespace>:e:{pool.table}:` (the braces keep a table's keys in one cluster
    /// slot, so one script can cover many rows).
    pub key_prefix: String,
    /// The schema signature stored in front of every encoded row.
    pub signature: String,
    /// The local layer.
    pub local: Option<LocalCache>,
    /// The Redis pool holding rows (`redis_cache`).
    pub redis: Option<RedisClient>,
    /// The Redis pool holding leases and locks: the row pool, else the channel pool
    /// for a local-only entity.
    pub control: Option<RedisClient>,
    /// Counters.
    pub counters: Counters,
    /// The entity's cached queries (D5), if it declares any.
    pub queries: Option<query::TableQueries>,
}

impl EntityCache {
    /// The Redis key of a row.
    pub(crate) fn key(&self, id: u64) -> String {
        use std::fmt::Write;
        let mut k = String::with_capacity(self.key_prefix.len() + 20);
        k.push_str(&self.key_prefix);
        // Into the key's own buffer: no second allocation per key.
        let _ = write!(k, "{id}");
        k
    }
}

/// The entity caches of one validated registry.
pub(crate) struct Caches {
    pub entities: Vec<EntityCache>,
    /// `pool.table` → slot, for invalidation messages.
    pub by_table: FxHashMap<String, u32>,
    pub coherence: Coherence,
    /// The channel local-layer invalidations travel on.
    pub channel: Option<RedisClient>,
    /// Its name: `<namespace>:inv`.
    pub channel_name: String,
    /// The first line of this registry's invalidation messages (`@<random hex>`):
    /// its own come back through the channel and are skipped.
    pub sender: String,
    pub settings: CacheSettings,
    /// `<namespace>:stats:`: the prefix of the published counters' hashes.
    pub stats_prefix: String,
    /// What the last publication of the counters sent.
    #[cfg(feature = "redis")]
    pub published: admin::Published,
    #[cfg(feature = "redis")]
    pub scripts: protocol::Scripts,
    tokens: AtomicU64,
    token_seed: u64,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("entities", &self.entities.len())
            .field("channel", &self.channel_name)
            .finish()
    }
}

impl Caches {
    /// Builds the caches of the cached entities among `schemas` (each gets its slot).
    /// `None` when no entity is cached.
    pub(crate) fn build(
        schemas: &mut [&mut TableSchema],
        settings: &CacheSettings,
        local: &std::collections::HashMap<String, LocalCache>,
        redis: &std::collections::HashMap<String, RedisClient>,
    ) -> crate::Result<Option<Arc<Caches>>> {
        for schema in schemas.iter() {
            query::check_uncached(schema)?;
        }
        let cached: Vec<usize> = (0..schemas.len())
            .filter(|i| {
                let c = schemas[*i].cache_definition();
                c.local.is_some() || c.redis.is_some()
            })
            .collect();
        if cached.is_empty() {
            return Ok(None);
        }
        let Some(namespace) = settings.namespace.as_deref() else {
            let first = schemas[cached[0]].entity_name();
            return Err(crate::Error::config(format!(
                "entity `{first}` is cached, and cached entities need a namespace: call \
                 `Registry::set_cache_namespace(\"<application>\")` (it keeps two applications \
                 sharing one Redis apart)"
            )));
        };
        let mut ns = namespace.to_string();
        if let Some(t) = &settings.tenant {
            ns.push(':');
            ns.push_str(t);
        }
        let channel = match &settings.channel_pool {
            Some(name) => {
                Some(
                    redis
                        .get(name)
                        .cloned()
                        .ok_or_else(|| crate::Error::UnknownPool {
                            kind: "redis",
                            pool: name.clone(),
                            used_by: "set_cache_channel".into(),
                        })?,
                )
            }
            None => redis.get(crate::DEFAULT_POOL).cloned(),
        };
        // Caches switched off: the entities keep their slots and cached queries (read
        // from the database every time), with no layer to read or keep.
        let channel = channel.filter(|_| settings.enabled);
        let mut entities = Vec::with_capacity(cached.len());
        let mut by_table = FxHashMap::default();
        for (slot, i) in cached.into_iter().enumerate() {
            let schema = &mut schemas[i];
            let def = schema.cache_definition();
            let entity = schema.entity_name();
            let local = match def.local {
                Some(name) => {
                    Some(
                        local
                            .get(name)
                            .cloned()
                            .ok_or_else(|| crate::Error::UnknownPool {
                                kind: "local cache",
                                pool: name.to_string(),
                                used_by: format!("entity `{entity}` (local_cache)"),
                            })?,
                    )
                }
                None => None,
            };
            let rows = match def.redis {
                Some(name) => {
                    Some(
                        redis
                            .get(name)
                            .cloned()
                            .ok_or_else(|| crate::Error::UnknownPool {
                                kind: "redis",
                                pool: name.to_string(),
                                used_by: format!("entity `{entity}` (redis_cache)"),
                            })?,
                    )
                }
                None => None,
            };
            let (local, rows) = if settings.enabled {
                (local, rows)
            } else {
                (None, None)
            };
            let control = rows.clone().or_else(|| channel.clone());
            let table_id = format!("{}.{}", schema.pool_name(), schema.table_name());
            let signature = schema.cache_signature().to_string();
            let mut queries = query::build(schema, &ns, &table_id, &signature)?;
            if let Some(q) = queries.as_mut().filter(|_| !settings.enabled) {
                q.in_redis = false;
            }
            let slot = slot as u32;
            schema.set_cache_slot(slot);
            by_table.insert(table_id.clone(), slot);
            entities.push(EntityCache {
                slot,
                entity,
                key_prefix: format!("{ns}:e:{{{table_id}}}:"),
                table_id,
                signature,
                local,
                redis: rows,
                control,
                counters: Counters::default(),
                queries,
            });
        }
        let token_seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            h.finish()
        };
        Ok(Some(Arc::new(Caches {
            entities,
            by_table,
            coherence: Coherence::new(channel.is_some(), settings.window, settings.strict),
            channel,
            channel_name: format!("{ns}:inv"),
            sender: format!("@{token_seed:016x}"),
            settings: settings.clone(),
            stats_prefix: format!("{ns}:stats:"),
            #[cfg(feature = "redis")]
            published: admin::Published::default(),
            #[cfg(feature = "redis")]
            scripts: protocol::Scripts::new(),
            tokens: AtomicU64::new(1),
            token_seed,
        })))
    }

    /// Starts the invalidation channel's subscriber (when there is a channel).
    pub(crate) fn start(self: &Arc<Self>) {
        #[cfg(feature = "redis")]
        if self.channel.is_some() {
            channel::spawn(Arc::downgrade(self));
        }
        #[cfg(feature = "redis")]
        self.spawn_stats_publisher();
    }

    /// The cache of the entity in `slot`.
    #[inline]
    pub(crate) fn entity(&self, slot: u32) -> Option<&EntityCache> {
        self.entities.get(slot as usize)
    }

    /// A lease token no other reader has.
    pub(crate) fn token(&self) -> u64 {
        let n = self.tokens.fetch_add(1, Ordering::Relaxed);
        (self.token_seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
    }

    /// Drops a row from this process's local layer and refuses fills in flight.
    pub(crate) fn forget_local(&self, slot: u32, id: u64) {
        self.coherence.invalidate(slot, id);
        if let Some(e) = self.entity(slot) {
            if let Some(local) = &e.local {
                local.remove_entity(slot, id);
                e.counters
                    .local
                    .invalidations
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drops every row of every entity from this process's local layer.
    pub(crate) fn clear_local(&self) {
        self.coherence.bump_epoch();
        for e in &self.entities {
            if let Some(local) = &e.local {
                local.clear_entities();
            }
        }
    }

    /// Applies one invalidation message (`pool.table id id …` per line).
    ///
    /// A message this registry sent itself is skipped: its writer already dropped the
    /// rows in-process at its lock and its unlock, and kept every fill of them out in
    /// between (`Coherence::begin_write`); the copy coming back a little later would
    /// only refuse the next, correct, local fill of the row.
    pub(crate) fn apply_message(&self, message: &str) {
        let mut lines = message.lines().peekable();
        if lines.next_if(|l| l.starts_with('@')) == Some(self.sender.as_str()) {
            return;
        }
        for line in lines {
            if line == "*" {
                // `Engine::clear_cached_entity`: everything goes.
                self.clear_local();
                continue;
            }
            let mut parts = line.split(' ');
            let Some(slot) = parts.next().and_then(|t| self.by_table.get(t)) else {
                continue;
            };
            for id in parts.filter_map(|p| p.parse::<u64>().ok()) {
                self.forget_local(*slot, id);
            }
        }
    }

    /// The stats of every cached entity.
    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats::new(
            self.entities
                .iter()
                .map(|e| e.counters.snapshot(e.entity))
                .collect(),
            self.coherence.serving(),
        )
    }
}
