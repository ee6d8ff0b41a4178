//! Search pools: the engines the registry opens at `validate`, one
//! [`SearchBackend`] per pool, and the link from each indexed entity to its pool.
//!
//! A pool is registered with `Registry::register_search_tantivy` (an index
//! directory, or `:memory:`) or `Registry::register_search_redis` (RediSearch on a
//! registered Redis pool). An entity's `#[orm(search)]` names the pool `default`;
//! when no pool of that name is registered it is tantivy in RAM (the build's
//! `tantivy` feature permitting), so search works with no server configured.
//!
//! RediSearch needs one server: a Redis Cluster pool is refused (an index and its
//! documents would be spread over the slots); a Sentinel pool follows its master.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

use super::backend::SearchBackend;
use crate::schema::TableSchema;
use crate::{Error, Result};

/// How a search pool is reached.
#[derive(Debug, Clone)]
pub(crate) enum SearchConfig {
    /// tantivy, embedded: the index directory, or `:memory:`.
    Tantivy { dir: String },
    /// RediSearch in a registered Redis pool.
    Redis { redis_pool: String },
}

/// The open search pools, by name.
pub(crate) type Backends = HashMap<String, Arc<dyn SearchBackend>>;

/// The directory of a tantivy pool held in RAM.
pub(crate) const MEMORY: &str = ":memory:";

/// Opens every registered search pool (and the implicit `default` one when an
/// entity uses it unregistered), names each entity's index after the cache
/// `namespace`, and checks that each indexed entity's pool exists.
pub(crate) fn open(
    configs: &[(String, SearchConfig)],
    schemas: &mut [(TypeId, TableSchema)],
    redis: &HashMap<String, crate::redis::RedisClient>,
    redis_configs: &[(String, crate::redis::RedisConfig)],
    namespace: Option<&str>,
) -> Result<Backends> {
    let mut backends: Backends = HashMap::new();
    for (name, config) in configs {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::config(format!(
                "search pool name `{name}` must be non-empty ASCII letters, digits, `_` or `-`"
            )));
        }
        if backends.contains_key(name) {
            return Err(Error::config(format!(
                "search pool `{name}` is registered twice"
            )));
        }
        let backend = match config {
            SearchConfig::Tantivy { dir } => open_tantivy(name, dir)?,
            SearchConfig::Redis { redis_pool } => {
                open_redis(name, redis_pool, redis, redis_configs, namespace)?
            }
        };
        backends.insert(name.clone(), backend);
    }
    let mut names: HashMap<(String, String), &'static str> = HashMap::new();
    for (_, schema) in schemas.iter_mut() {
        if schema.search_index().is_none() {
            continue;
        }
        if let Some(ns) = namespace {
            schema.set_search_namespace(ns);
        }
        let Some(index) = schema.search_index() else {
            continue;
        };
        let entity = schema.entity_name();
        if !backends.contains_key(&index.pool) {
            if index.pool != crate::DEFAULT_POOL {
                return Err(Error::UnknownPool {
                    kind: "search",
                    pool: index.pool.clone(),
                    used_by: format!("entity `{entity}`"),
                });
            }
            if !cfg!(feature = "tantivy") {
                return Err(Error::config(format!(
                    "entity `{entity}` has a search index in pool `default`, which is not registered; \
                     without beeorm's `tantivy` feature there is no in-process default: register \
                     one (Registry::register_search_redis)"
                )));
            }
            tracing::info!(
                "search pool `default` is not registered: tantivy in RAM (the indexes start empty at each start)"
            );
            backends.insert(index.pool.clone(), open_tantivy(&index.pool, MEMORY)?);
        }
        if let Some(other) = names.insert((index.pool.clone(), index.name.clone()), entity) {
            return Err(Error::config(format!(
                "entities `{other}` and `{entity}` both use search index `{}` in search pool `{}` \
                 (rename one table)",
                index.name, index.pool
            )));
        }
    }
    Ok(backends)
}

/// A tantivy pool (`dir` = [`MEMORY`]: in RAM).
fn open_tantivy(name: &str, dir: &str) -> Result<Arc<dyn SearchBackend>> {
    #[cfg(feature = "tantivy")]
    {
        let path = (dir != MEMORY).then(|| std::path::Path::new(dir));
        let backend = super::tantivy::TantivyBackend::open(name, path)?;
        Ok(Arc::new(backend))
    }
    #[cfg(not(feature = "tantivy"))]
    {
        Err(Error::config(format!(
            "search pool `{name}` (tantivy at `{dir}`) needs beeorm's `tantivy` feature, which this build leaves out"
        )))
    }
}

/// A RediSearch pool on the Redis pool `redis_pool`.
#[cfg_attr(not(feature = "redis"), allow(unused_variables))]
fn open_redis(
    name: &str,
    redis_pool: &str,
    redis: &HashMap<String, crate::redis::RedisClient>,
    redis_configs: &[(String, crate::redis::RedisConfig)],
    namespace: Option<&str>,
) -> Result<Arc<dyn SearchBackend>> {
    #[cfg(feature = "redis")]
    {
        let client = redis.get(redis_pool).ok_or_else(|| Error::UnknownPool {
            kind: "redis",
            pool: redis_pool.to_string(),
            used_by: format!("search pool `{name}`"),
        })?;
        if redis_configs.iter().any(|(pool, config)| {
            pool == redis_pool && matches!(config, crate::redis::RedisConfig::Cluster { .. })
        }) {
            return Err(Error::config(format!(
                "search pool `{name}`: Redis pool `{redis_pool}` is a Redis Cluster; RediSearch \
                 needs one server (or a Sentinel master)"
            )));
        }
        let prefix = namespace.unwrap_or("beeorm");
        Ok(Arc::new(super::redisearch::RediSearchBackend::new(
            name,
            client.clone(),
            prefix,
        )))
    }
    #[cfg(not(feature = "redis"))]
    {
        Err(Error::config(format!(
            "search pool `{name}` (RediSearch on Redis pool `{redis_pool}`) needs beeorm's `redis` feature, which this build leaves out"
        )))
    }
}
