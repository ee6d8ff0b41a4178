//! Operating the entity caches from outside the process that fills them: counters
//! shared through Redis, and clearing one entity type's cached rows everywhere.
//!
//! # Why publish the counters
//!
//! [`Engine::cache_stats`] reads this process's atomics: an operator's tool (the
//! `beeorm cache` command) runs in a process of its own and would see zeros. So each
//! registry with a Redis-backed cache adds its counters' *deltas* to one Redis hash
//! per entity type, `<namespace>:stats:<Entity>`, every
//! [`Registry::set_cache_stats_interval`](crate::Registry::set_cache_stats_interval)
//! (default 10 s, zero turns it off), from a background task of its own. Every
//! process adds to the same hash, so [`Engine::published_cache_stats`] reads the sum
//! of all of them since the hash was created (or last cleared). The hash lives on the
//! entity's Redis pool (the rows' pool, else the invalidation channel's); an entity
//! cached only in-process with no Redis at all publishes nothing.
//!
//! Cost: one `MULTI`/`HINCRBY…`/`EXEC` per cached entity per interval, only for
//! entities whose counters moved. A failed publication is logged (`beeorm::cache`,
//! debug) and its deltas are kept for the next one, never counted twice: the
//! transaction applies all its `HINCRBY`s or none.
//!
//! Fields of the hash: `<layer>_<counter>` for the layers `request`, `local`, `redis`
//! and the counters `hits`, `misses`, `fills`, `invalidations`, plus
//! `database_loads` and `waits`.

use std::sync::{Arc, Mutex, Weak};

use super::stats::{EntityCacheStats, LayerStats};
use super::{Caches, EntityCache};
use crate::{Engine, Error, Result};

/// The counter fields of one published hash, in [`field_values`] order.
const FIELDS: [&str; 14] = [
    "request_hits",
    "request_misses",
    "request_fills",
    "request_invalidations",
    "local_hits",
    "local_misses",
    "local_fills",
    "local_invalidations",
    "redis_hits",
    "redis_misses",
    "redis_fills",
    "redis_invalidations",
    "database_loads",
    "waits",
];

/// The counters of `s` in [`FIELDS`] order.
fn field_values(s: &EntityCacheStats) -> [u64; 14] {
    let l = |l: &LayerStats| [l.hits, l.misses, l.fills, l.invalidations];
    let [a, b, c, d] = l(&s.request);
    let [e, f, g, h] = l(&s.local);
    let [i, j, k, m] = l(&s.redis);
    [
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        h,
        i,
        j,
        k,
        m,
        s.database_loads,
        s.waits,
    ]
}

/// Stats from [`FIELDS`]-ordered values.
fn from_values(entity: &str, v: &[u64; 14]) -> EntityCacheStats {
    let layer = |o: usize| LayerStats {
        hits: v[o],
        misses: v[o + 1],
        fills: v[o + 2],
        invalidations: v[o + 3],
    };
    EntityCacheStats {
        entity: entity.to_string(),
        request: layer(0),
        local: layer(4),
        redis: layer(8),
        database_loads: v[12],
        waits: v[13],
    }
}

/// What the last successful publication counted, per entity slot.
#[derive(Default)]
pub(crate) struct Published {
    last: Mutex<Vec<[u64; 14]>>,
}

impl Caches {
    /// The hash an entity's counters are published to.
    pub(crate) fn stats_key(&self, entity: &str) -> String {
        format!("{}{entity}", self.stats_prefix)
    }

    /// Adds every entity's counter deltas since the last publication to its hash.
    /// Entities without a Redis pool, or whose counters did not move, send nothing.
    pub(crate) async fn publish_stats(&self) -> Result<()> {
        let mut first_error = None;
        for e in &self.entities {
            let Some(client) = &e.control else { continue };
            let now = field_values(&e.counters.snapshot(e.entity));
            let before = self.published_values(e.slot);
            let deltas: Vec<(&str, i64)> = FIELDS
                .iter()
                .zip(now.iter().zip(before.iter()))
                .filter(|(_, (n, b))| n != b)
                .map(|(f, (n, b))| (*f, n.wrapping_sub(*b) as i64))
                .collect();
            if deltas.is_empty() {
                continue;
            }
            let mut p = client.pipeline();
            p.atomic();
            let key = self.stats_key(e.entity);
            for (field, by) in deltas {
                let mut c = ::redis::cmd("HINCRBY");
                c.arg(&key).arg(field).arg(by);
                p.cmd(c).ignore();
            }
            match p.exec().await {
                Ok(()) => self.set_published(e.slot, now),
                Err(err) => {
                    tracing::debug!(target: "beeorm::cache", entity = e.entity, error = %err, "cache statistics not published; the deltas wait for the next try");
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn published_values(&self, slot: u32) -> [u64; 14] {
        let last = self
            .published
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        last.get(slot as usize).copied().unwrap_or([0; 14])
    }

    fn set_published(&self, slot: u32, values: [u64; 14]) {
        let mut last = self
            .published
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = slot as usize;
        if last.len() <= slot {
            last.resize(slot + 1, [0; 14]);
        }
        last[slot] = values;
    }

    /// Starts the periodic publication, when an interval is set and some entity has a
    /// Redis pool. The task holds a weak reference: it ends with the registry.
    pub(crate) fn spawn_stats_publisher(self: &Arc<Self>) {
        let interval = self.settings.stats_interval;
        if interval.is_zero() || self.entities.iter().all(|e| e.control.is_none()) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Caches> = Arc::downgrade(self);
        handle.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(caches) = weak.upgrade() else { return };
                // Errors are logged inside; the deltas are retried next time.
                let _ = caches.publish_stats().await;
            }
        });
    }
}

/// Escapes the glob characters of a key prefix for `SCAN MATCH`.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 4);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Engine {
    fn cached_entity(&self, entity: &str) -> Result<(&Caches, &EntityCache)> {
        let caches = self
            .registry()
            .caches()
            .ok_or_else(|| Error::UnknownEntity(format!("{entity} (no entity is cached)")))?;
        let e = caches
            .entities
            .iter()
            .find(|e| e.entity == entity)
            .ok_or_else(|| {
                let known: Vec<&str> = caches.entities.iter().map(|e| e.entity).collect();
                Error::UnknownEntity(format!("{entity} (cached entities: {})", known.join(", ")))
            })?;
        Ok((caches, e))
    }

    /// Adds this process's cache counters (since the last publication) to the shared
    /// Redis hashes now, as the background publisher does every
    /// [`Registry::set_cache_stats_interval`](crate::Registry::set_cache_stats_interval).
    /// One hash per cached entity type, `<namespace>:stats:<Entity>`, on the entity's
    /// Redis pool, with the fields `<layer>_<counter>` (layers `request`, `local`,
    /// `redis`; counters `hits`, `misses`, `fills`, `invalidations`) plus
    /// `database_loads` and `waits`; every process adds to it, in one `MULTI`/`EXEC`
    /// per entity, so a failed publication counts nothing and its deltas wait for
    /// the next. Call it before a process exits so its last counts are not lost.
    /// Nothing to do without cached entities.
    pub async fn publish_cache_stats(&self) -> Result<()> {
        match self.registry().caches() {
            Some(c) => c.publish_stats().await,
            None => Ok(()),
        }
    }

    /// The cache counters every process published (see
    /// [`Engine::publish_cache_stats`]), summed per entity type, for the entities of
    /// this registry that have a Redis pool; `local_serving` is this process's.
    pub async fn published_cache_stats(&self) -> Result<crate::CacheStats> {
        let Some(caches) = self.registry().caches() else {
            return Ok(crate::CacheStats::default());
        };
        // One pipeline of HGETALLs per Redis pool, not one round trip per entity.
        let mut pools: Vec<(&crate::redis::RedisClient, Vec<usize>)> = Vec::new();
        for (i, e) in caches.entities.iter().enumerate() {
            let Some(client) = &e.control else { continue };
            match pools
                .iter_mut()
                .find(|(c, _)| c.pool_name() == client.pool_name())
            {
                Some((_, members)) => members.push(i),
                None => pools.push((client, vec![i])),
            }
        }
        let mut found: Vec<Option<EntityCacheStats>> = vec![None; caches.entities.len()];
        for (client, members) in pools {
            let mut pipe = client.pipeline();
            for &i in &members {
                let mut c = ::redis::cmd("HGETALL");
                c.arg(caches.stats_key(caches.entities[i].entity));
                pipe.cmd(c);
            }
            let maps: Vec<std::collections::HashMap<String, i64>> = pipe.query().await?;
            for (i, map) in members.into_iter().zip(maps) {
                let mut values = [0u64; 14];
                for (v, f) in values.iter_mut().zip(FIELDS) {
                    *v = map.get(f).copied().unwrap_or(0).max(0) as u64;
                }
                found[i] = Some(from_values(caches.entities[i].entity, &values));
            }
        }
        let out = found.into_iter().flatten().collect();
        Ok(crate::CacheStats::new(out, caches.coherence.serving()))
    }

    /// How many Redis keys hold cached rows of the entity type named `entity` (its
    /// Rust type name). [`Error::UnknownEntity`] when no cached entity has that name.
    pub async fn count_cached_rows(&self, entity: &str) -> Result<u64> {
        let (_, e) = self.cached_entity(entity)?;
        match &e.redis {
            Some(client) => Ok(client
                .scan_match(&format!("{}*", glob_escape(&e.key_prefix)))
                .await?
                .len() as u64),
            None => Ok(0),
        }
    }

    /// Drops every cached row of the entity type named `entity` (its Rust type name)
    /// from every layer of every process: its Redis keys are deleted (found by
    /// `SCAN`, deleted by `UNLINK` in batches of 500), its cached queries are
    /// outdated, and the local layers are told through the invalidation channel
    /// (each process empties its whole local layer: clearing is an operator's act,
    /// rare, and that is the one message every version understands as "all").
    /// Returns how many Redis keys were deleted. Rows are read again from the
    /// database on their next load. Writes in flight stay correct: their unlock
    /// removes their rows again after their COMMIT.
    /// [`Error::UnknownEntity`] when no cached entity has that name.
    pub async fn clear_cached_entity(&self, entity: &str) -> Result<u64> {
        let (caches, e) = self.cached_entity(entity)?;
        let mut deleted = 0;
        if let Some(client) = &e.redis {
            let keys = client
                .scan_match(&format!("{}*", glob_escape(&e.key_prefix)))
                .await?;
            for chunk in keys.chunks(500) {
                let mut c = ::redis::cmd("UNLINK");
                c.arg(chunk);
                deleted += client.query::<u64>(&c).await?;
            }
            if let Some(q) = &e.queries {
                client.incr(&q.version_key, 1).await?;
            }
        }
        #[cfg(feature = "redis")]
        if let Some(channel) = &caches.channel {
            let message = format!("{}\n*", caches.sender);
            let mut c = ::redis::cmd("PUBLISH");
            c.arg(&caches.channel_name).arg(message);
            channel.query::<i64>(&c).await?;
        }
        caches.clear_local();
        self.forget_requested();
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let mut v = [0u64; 14];
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as u64 * 3 + 1;
        }
        let s = from_values("User", &v);
        assert_eq!(field_values(&s), v);
        assert_eq!(s.local.hits, 13);
        assert_eq!(s.waits, 40);
    }

    #[test]
    fn glob_is_escaped() {
        assert_eq!(glob_escape("a:e:{p.t}:"), "a:e:{p.t}:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
