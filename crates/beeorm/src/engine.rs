//! [`Engine`]: the handle a request or task works through (A10).

use std::collections::BTreeMap;

use crate::cache::LocalCache;
use crate::db::Db;
use crate::registry::ValidatedRegistry;
use crate::schema::{Alter, TableSchema};
use crate::sql::pool::SqlPool;
use crate::sql::replicas::{Consistency, ReplicaSet, Target, WriteNote, Written};
use crate::{Error, Result};

/// A cheap handle on a [`ValidatedRegistry`]: make one per request or task. Cloning
/// or creating one does no I/O.
#[derive(Clone, Debug)]
pub struct Engine {
    registry: ValidatedRegistry,
    /// The request cache (and data loader), when enabled: this engine's (and its
    /// clones') own, never another engine's.
    request: Option<std::sync::Arc<crate::cache::request::RequestCache>>,
    /// Engine-wide change-log metadata ([`Engine::set_log_meta`]); shared by clones
    /// until one of them changes it.
    pub(crate) log_meta: Option<std::sync::Arc<crate::change_log::LogMeta>>,
    /// Positions of this engine's (and its clones') commits on pools with read
    /// replicas; `None` when no pool has replicas.
    written: Option<std::sync::Arc<Written>>,
    /// How reads use replicas.
    consistency: Consistency,
}

impl Engine {
    pub(crate) fn new(registry: ValidatedRegistry) -> Self {
        let written = registry
            .has_replicas()
            .then(|| std::sync::Arc::new(Written::default()));
        Engine {
            registry,
            request: None,
            log_meta: None,
            written,
            consistency: Consistency::default(),
        }
    }

    /// A new engine of the same registry with its own request cache (D6): rows read
    /// by ID are kept for the engine's life, so the same row asked twice costs one
    /// read; this engine's flushes empty it. Writes of other engines are not seen by
    /// rows it already holds: make one engine per request. Reads in a transaction or
    /// with `include_deleted` bypass it.
    ///
    /// ```no_run
    /// # use beeorm::prelude::*;
    /// # #[derive(Entity)] struct User { id: u64, name: String }
    /// # async fn demo(registry: &beeorm::ValidatedRegistry) -> beeorm::Result<()> {
    /// let engine = registry.create_engine().with_request_cache();
    /// let a = engine.load_by_id::<User>(1).await?; // reads
    /// let b = engine.load_by_id::<User>(1).await?; // from the request cache
    /// # Ok(()) }
    /// ```
    pub fn with_request_cache(&self) -> Engine {
        Engine {
            registry: self.registry.clone(),
            request: Some(std::sync::Arc::new(
                crate::cache::request::RequestCache::new(false),
            )),
            log_meta: self.log_meta.clone(),
            written: self.written.clone(),
            consistency: self.consistency,
        }
    }

    /// [`Engine::with_request_cache`] plus the data loader: loads by ID issued
    /// concurrently by many tasks of this engine (and its clones) within one
    /// scheduler tick are merged into one read — one Redis call, one SQL query.
    pub fn with_data_loader(&self) -> Engine {
        Engine {
            registry: self.registry.clone(),
            request: Some(std::sync::Arc::new(
                crate::cache::request::RequestCache::new(true),
            )),
            log_meta: self.log_meta.clone(),
            written: self.written.clone(),
            consistency: self.consistency,
        }
    }

    /// This engine, reading with `consistency` on pools that have read replicas
    /// ([`Registry::register_replica`](crate::Registry::register_replica)). The
    /// result shares this engine's request cache and its record of its own writes,
    /// so writes through either are seen by reads of the other in
    /// [`Consistency::ReadYourWrites`] mode.
    ///
    /// ```no_run
    /// # use beeorm::prelude::*;
    /// # use std::time::Duration;
    /// # #[derive(Entity)] struct User { id: u64, name: String }
    /// # async fn demo(engine: &beeorm::Engine) -> beeorm::Result<()> {
    /// // A report that may be up to 30 s old: any replica within that lag answers.
    /// let report = engine.with_consistency(beeorm::Consistency::MaxLag(Duration::from_secs(30)));
    /// let user = report.load_by_id::<User>(1).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_consistency(&self, consistency: Consistency) -> Engine {
        Engine {
            consistency,
            ..self.clone()
        }
    }

    /// The read replicas of every pool that has some: health, rotation, lag, reads
    /// served, waits ([`ValidatedRegistry::replica_status`]; shared by every engine of
    /// the registry).
    pub fn replica_status(&self) -> Vec<crate::ReplicaSetStatus> {
        self.registry.replica_status()
    }

    /// How this engine's reads use read replicas.
    pub fn consistency(&self) -> Consistency {
        self.consistency
    }

    /// Where a read of `pool` runs: `None` for the primary (no replicas, or the read
    /// must see what the primary has), else the pool's replicas and what the replica
    /// must have applied. `fill`: the rows will be stored in a cache.
    pub(crate) fn read_target(&self, pool: &SqlPool, fill: bool) -> Option<(&ReplicaSet, Target)> {
        let written = self.written.as_ref()?;
        let set = self.registry.replicas(pool.name())?;
        let target = match self.consistency {
            _ if fill => None,
            Consistency::Primary => None,
            Consistency::MaxLag(max) => Some(Target::MaxLag(max)),
            Consistency::ReadYourWrites => match written.target(pool.name()) {
                None => Some(Target::Any),
                Some(Some(position)) => Some(Target::AtLeast(position)),
                Some(None) => None,
            },
        };
        match target {
            Some(t) => Some((set, t)),
            None => {
                set.count_primary_read();
                None
            }
        }
    }

    /// After a commit of this engine on `pool`: notes where the primary stands, so
    /// later reads on its replicas wait for the write. A position that cannot be read
    /// sends this engine's reads of the pool to the primary (until a later commit's
    /// position is known).
    pub(crate) async fn note_commit(&self, pool: &SqlPool) {
        if let Some(note) = self.write_note(pool.name()) {
            note.after_commit(pool).await;
        }
    }

    /// What notes this engine's commits on pool `name`, if it has replicas.
    pub(crate) fn write_note(&self, name: &str) -> Option<WriteNote> {
        Some(WriteNote {
            written: self.written.clone()?,
            set: self.registry.replicas(name)?.clone(),
        })
    }

    /// The request cache, if enabled.
    pub(crate) fn request_cache(&self) -> Option<&crate::cache::request::RequestCache> {
        self.request.as_deref()
    }

    /// Forgets what the request cache holds (after a write of this engine).
    pub(crate) fn forget_requested(&self) {
        if let Some(r) = &self.request {
            r.clear();
        }
    }

    /// The request cache handle, to empty it once a transaction commits.
    pub(crate) fn request_handle(
        &self,
    ) -> Option<std::sync::Arc<crate::cache::request::RequestCache>> {
        self.request.clone()
    }

    /// The registry this engine was made from.
    pub fn registry(&self) -> &ValidatedRegistry {
        &self.registry
    }

    pub(crate) fn sql_pool(&self, name: &str) -> Result<SqlPool> {
        self.sql_pool_ref(name).cloned()
    }

    /// The relational pool `name`, borrowed.
    pub(crate) fn sql_pool_ref(&self, name: &str) -> Result<&SqlPool> {
        self.registry
            .sql_pool(name)
            .ok_or_else(|| Error::UnknownPool {
                kind: "relational",
                pool: name.to_string(),
                used_by: "engine".into(),
            })
    }

    /// The relational pool `name`, for plain SQL.
    pub fn db(&self, name: &str) -> Result<Db> {
        let pool = self.sql_pool(name)?;
        let note = self.write_note(name);
        Ok(Db::new(pool, note))
    }

    /// The local cache pool `name`.
    pub fn local_cache(&self, name: &str) -> Result<LocalCache> {
        self.registry
            .local_cache(name)
            .cloned()
            .ok_or_else(|| Error::UnknownPool {
                kind: "local cache",
                pool: name.to_string(),
                used_by: "engine".into(),
            })
    }

    /// The Redis pool `name` (single server, Sentinel or Cluster): typed commands,
    /// pipelines, scripts, `get_set`, the rate limiter.
    #[cfg(feature = "redis")]
    pub fn redis(&self, name: &str) -> Result<crate::redis::RedisClient> {
        self.registry
            .redis(name)
            .cloned()
            .ok_or_else(|| Error::UnknownPool {
                kind: "redis",
                pool: name.to_string(),
                used_by: "engine".into(),
            })
    }

    /// The ClickHouse pool `name` (feature `clickhouse`): statements with bound
    /// values, batch inserts and typed reads, checked against the server's column
    /// types (see [`crate::clickhouse`]).
    #[cfg(feature = "clickhouse")]
    pub fn clickhouse(&self, name: &str) -> Result<crate::clickhouse::ClickHouse> {
        self.registry
            .clickhouse(name)
            .cloned()
            .ok_or_else(|| Error::UnknownPool {
                kind: "clickhouse",
                pool: name.to_string(),
                used_by: "engine".into(),
            })
    }

    /// The locker `name` (shared locks on its Redis pool).
    #[cfg(feature = "redis")]
    pub fn locker(&self, name: &str) -> Result<crate::redis::Locker> {
        self.registry
            .locker(name)
            .cloned()
            .ok_or_else(|| Error::UnknownPool {
                kind: "locker",
                pool: name.to_string(),
                used_by: "engine".into(),
            })
    }

    /// Hits, misses, fills and invalidations of the entity caches, per layer and
    /// entity type (shared by every engine of the registry); empty when no entity is
    /// cached.
    pub fn cache_stats(&self) -> crate::CacheStats {
        match self.registry.caches() {
            Some(c) => {
                let stats = c.stats();
                for e in &stats.entities {
                    tracing::debug!(
                        target: "beeorm::cache",
                        entity = %e.entity,
                        local_hits = e.local.hits,
                        local_misses = e.local.misses,
                        redis_hits = e.redis.hits,
                        redis_misses = e.redis.misses,
                        database_loads = e.database_loads,
                        "cache stats"
                    );
                }
                stats
            }
            None => crate::CacheStats::default(),
        }
    }

    /// Drops the rows `ids` of entity `E` from every cache layer, in every process
    /// (Redis keys deleted, local layers told through the invalidation channel), and
    /// from this engine's request cache. Flushes do this by themselves; call it after
    /// writing cached rows another way (plain SQL through [`Engine::db`], another
    /// application). Nothing to do for an uncached entity.
    pub async fn invalidate_cached<E: crate::Entity>(&self, ids: &[u64]) -> Result<()> {
        let schema = self.registry.table_schema::<E>()?;
        self.forget_requested();
        if let Some(slot) = schema.cache_slot() {
            crate::cache::write::invalidate(&self.registry, slot, ids).await;
        }
        Ok(())
    }

    /// A new, empty unit of work.
    pub fn flusher(&self) -> crate::Flusher<'_> {
        crate::Flusher::new(self)
    }

    /// Inserts or updates one entity (nothing is sent when it is unchanged).
    pub async fn flush<E: crate::Entity>(&self, entity: &mut crate::Tracked<E>) -> Result<()> {
        self.flusher().track(entity).flush().await
    }

    /// Deletes one entity's row: a fake delete when it has `fake_delete: bool`.
    pub async fn delete<E: crate::Entity>(&self, entity: &mut crate::Tracked<E>) -> Result<()> {
        self.flusher().delete(entity).flush().await
    }

    /// Deletes one entity's row for real, even with `fake_delete`.
    pub async fn force_delete<E: crate::Entity>(
        &self,
        entity: &mut crate::Tracked<E>,
    ) -> Result<()> {
        self.flusher().force_delete(entity).flush().await
    }

    /// Every statement that brings all relational pools in line with the registered
    /// entities: creates, alters, and drops of tables no entity uses; then the search
    /// index alters (create, rebuild when the definition changed, drop of an index
    /// no entity uses), whose `pool` is the search pool. Run each with
    /// [`Alter::exec`]; check [`Alter::safe`] first if data matters.
    pub async fn alters(&self) -> Result<Vec<Alter>> {
        let mut by_pool: BTreeMap<&str, Vec<&TableSchema>> = BTreeMap::new();
        for pool in self.registry.relational_pools() {
            by_pool.entry(pool).or_default();
        }
        for t in self.registry.table_schemas() {
            by_pool.entry(t.pool_name()).or_default().push(t);
            // The change-log table is a table of its pool like any other: created,
            // altered, and never dropped as unknown.
            if let Some(log) = t.log_schema() {
                by_pool.entry(log.pool_name()).or_default().push(log);
            }
        }
        let mut out = Vec::new();
        for (pool, tables) in by_pool {
            out.extend(TableSchema::pool_alters(self, pool, &tables).await?);
        }
        // Search indexes last: creating one indexes the rows of its table.
        out.extend(crate::search::alters::plan(self).await?);
        Ok(out)
    }
}
