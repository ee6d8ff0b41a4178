//! Cache statistics (issue 12, item 10): hits, misses, fills and invalidations per
//! layer and entity type, counted with relaxed atomics (a few nanoseconds per read)
//! and read with [`Engine::cache_stats`](crate::Engine::cache_stats).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one layer.
#[derive(Default, Debug)]
pub(crate) struct LayerCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub fills: AtomicU64,
    pub invalidations: AtomicU64,
}

impl LayerCounters {
    fn snapshot(&self) -> LayerStats {
        LayerStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            fills: self.fills.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
        }
    }
}

/// Counters of one cached entity type.
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub request: LayerCounters,
    pub local: LayerCounters,
    pub redis: LayerCounters,
    /// Rows (or absent rows) asked of the database by the cached read path.
    pub database_loads: AtomicU64,
    /// Reads that waited for another reader's fill (herd protection).
    pub waits: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self, entity: &str) -> EntityCacheStats {
        EntityCacheStats {
            entity: entity.to_string(),
            request: self.request.snapshot(),
            local: self.local.snapshot(),
            redis: self.redis.snapshot(),
            database_loads: self.database_loads.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
        }
    }
}

/// What one layer did, since the registry was validated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// Rows (or known-absent rows) served by the layer.
    pub hits: u64,
    /// Rows the layer did not hold.
    pub misses: u64,
    /// Rows stored in the layer by readers.
    pub fills: u64,
    /// Rows removed from the layer because they changed.
    pub invalidations: u64,
}

impl LayerStats {
    /// `hits / (hits + misses)`, 0 when nothing was asked.
    pub fn hit_ratio(&self) -> f64 {
        let asked = self.hits + self.misses;
        if asked == 0 {
            0.0
        } else {
            self.hits as f64 / asked as f64
        }
    }
}

/// The statistics of one cached entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntityCacheStats {
    /// The entity's Rust type name.
    pub entity: String,
    /// The engine's request cache (counted for every engine of the registry).
    pub request: LayerStats,
    /// The local (in-process) layer.
    pub local: LayerStats,
    /// The Redis layer.
    pub redis: LayerStats,
    /// Rows asked of the database by cached reads.
    pub database_loads: u64,
    /// Reads that waited for another reader's fill rather than asking the database.
    pub waits: u64,
}

/// The statistics of every cached entity type of a registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// One entry per cached entity type, in registration order.
    pub entities: Vec<EntityCacheStats>,
    /// Whether the local layer is serving now (its invalidation channel is live, or
    /// there is no channel because no Redis pool carries one).
    pub local_serving: bool,
}

impl CacheStats {
    pub(crate) fn new(entities: Vec<EntityCacheStats>, local_serving: bool) -> Self {
        CacheStats {
            entities,
            local_serving,
        }
    }

    /// The statistics of the entity type named `entity`.
    pub fn entity(&self, entity: &str) -> Option<&EntityCacheStats> {
        self.entities.iter().find(|e| e.entity == entity)
    }
}
