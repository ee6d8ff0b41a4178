//! The write side of the entity caches: around the COMMIT of every unit of work that
//! changed cached rows.
//!
//! Before the COMMIT, [`lock`] marks each changed row's Redis key as being written
//! (`P`, see `protocol.rs`), publishes an invalidation to the local layers of other
//! processes, and tells this process's local layer a writer is in flight (no fill
//! of those rows is accepted until it is done). After the COMMIT,
//! [`Locked::unlock`] deletes the keys (or counts a lock down), publishes again and
//! drops the rows locally. In strict mode it then waits one window before the write
//! is acknowledged: every process whose local layer still serves by then has applied
//! that last invalidation (its heartbeat proves it), and any fill racing with it is
//! refused by its ticket. Waiting after the unlock rather than before the COMMIT
//! matters: if the `P` keys vanish meanwhile (FLUSHALL, eviction), another process
//! may refill its local layer with the old row between the lock and the COMMIT, and
//! only the unlock's invalidation removes it (`tests/cache_races.rs`,
//! `race_05_strict_mode_survives_a_flush_between_lock_and_commit`). A lock that
//! fails is an error before COMMIT: the write is refused rather than allowed to
//! leave caches it could not guard.
//!
//! For an entity with cached queries (`query.rs`) the same two script calls also
//! bump the table's query version and enter (then leave) the writer in the table's
//! set of writers in flight, under this unit's own token, so every list of the
//! table is old from before the COMMIT and no reader stores one until after it.
//!
//! A unit of work that does not commit (rolled back, failed, future dropped) still
//! unlocks, from `Drop` when it must: the rows are re-read on the next miss. If the
//! process dies, the `P` keys expire (`LOCK_TTL`); until then readers go to the
//! database without filling.

use super::Caches;
use crate::observe::ChangeSet;
use crate::registry::ValidatedRegistry;
use crate::Result;

/// The cached rows one unit of work locked, until it unlocks them.
pub(crate) struct Locked {
    registry: ValidatedRegistry,
    /// `(slot, id)`, sorted, distinct.
    rows: Vec<(u32, u64)>,
    /// This writer's token among the writers in flight of tables with cached
    /// queries.
    token: u64,
    done: bool,
}

impl std::fmt::Debug for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locked")
            .field("rows", &self.rows.len())
            .finish()
    }
}

/// The cached rows among `changes`, as `(slot, id)`, sorted and distinct.
fn cached_rows(registry: &ValidatedRegistry, changes: &ChangeSet) -> Vec<(u32, u64)> {
    let mut rows: Vec<(u32, u64)> = changes
        .iter()
        .filter_map(|c| {
            let slot = registry.table_schema_by_type(c.entity_type)?.cache_slot()?;
            Some((slot, c.id))
        })
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// Keys and the invalidation message of `rows`, per control pool (entities on one
/// pool share one script call per table, so cluster keys stay in one slot). The
/// message starts with the sender's line (`Caches::sender`), which receivers that do
/// not know it skip like any unknown table.
fn by_table(caches: &Caches, rows: &[(u32, u64)]) -> Vec<(u32, Vec<String>, String)> {
    let mut out: Vec<(u32, Vec<String>, String)> = Vec::new();
    for &(slot, id) in rows {
        let Some(cache) = caches.entity(slot) else {
            continue;
        };
        if out.last().is_none_or(|(s, _, _)| *s != slot) {
            out.push((
                slot,
                Vec::new(),
                format!("{}\n{}", caches.sender, cache.table_id),
            ));
        }
        if let Some((_, keys, message)) = out.last_mut() {
            keys.push(cache.key(id));
            message.push(' ');
            message.push_str(&id.to_string());
        }
    }
    out
}

/// Locks the cached rows of `changes` before a COMMIT; `None` when none is cached.
pub(crate) async fn lock(
    registry: &ValidatedRegistry,
    changes: &ChangeSet,
) -> Result<Option<Locked>> {
    let Some(caches) = registry.caches() else {
        return Ok(None);
    };
    let rows = cached_rows(registry, changes);
    if rows.is_empty() {
        return Ok(None);
    }
    super::pause::point(super::pause::Point::BeforeLock, prefix(caches, &rows)).await;
    for &(slot, id) in &rows {
        caches.coherence.begin_write(slot, id);
        caches.forget_local(slot, id);
    }
    // From here on, dropping the guard undoes the in-process part and unlocks.
    let locked = Locked {
        registry: registry.clone(),
        rows,
        token: caches.token(),
        done: false,
    };
    #[cfg(feature = "redis")]
    for (slot, keys, message) in by_table(caches, &locked.rows) {
        let Some(cache) = caches.entity(slot) else {
            continue;
        };
        let Some(client) = &cache.control else {
            continue;
        };
        let (channel, separately) = publish_on(caches, client);
        match cache.queries.as_ref().filter(|q| q.in_redis) {
            Some(queries) => {
                super::protocol::lock_with_queries(
                    client,
                    &caches.scripts,
                    &keys,
                    &queries.keys(),
                    locked.token,
                    channel,
                    &message,
                )
                .await?
            }
            None => {
                super::protocol::lock(client, &caches.scripts, &keys, channel, &message).await?
            }
        }
        if let Some(channel) = separately {
            if let Err(e) = publish(channel, &caches.channel_name, &message).await {
                // Refused like a failed lock when this registry keeps the rows locally;
                // for another deploy's local layers it is best effort.
                if cache.local.is_some() {
                    return Err(e);
                }
                tracing::warn!(target: "beeorm::cache", entity = cache.entity, error = %e, "cache invalidation not published");
            }
        }
        if cache.redis.is_some() {
            cache
                .counters
                .redis
                .invalidations
                .fetch_add(keys.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
    #[cfg(not(feature = "redis"))]
    let _ = by_table;
    super::pause::point(
        super::pause::Point::BeforeCommit,
        prefix(caches, &locked.rows),
    )
    .await;
    Ok(Some(locked))
}

/// Where the invalidation of rows whose keys live on `control` is published: on
/// the channel whenever there is one, whether or not this registry keeps the entity
/// locally (another deploy sharing the namespace may: a rollout that adds
/// `local_cache`). Inside the lock/unlock script (atomic with the key change) when
/// `control` is the channel's pool, else by a separate PUBLISH on the channel's pool
/// (subscribers listen there; a PUBLISH on another server would reach none of them).
#[cfg(feature = "redis")]
fn publish_on<'c>(
    caches: &'c Caches,
    control: &crate::redis::RedisClient,
) -> (&'c str, Option<&'c crate::redis::RedisClient>) {
    match &caches.channel {
        Some(channel) if channel.pool_name() == control.pool_name() => {
            (caches.channel_name.as_str(), None)
        }
        Some(channel) => ("", Some(channel)),
        None => ("", None),
    }
}

#[cfg(feature = "redis")]
async fn publish(
    client: &crate::redis::RedisClient,
    channel: &str,
    message: &str,
) -> crate::Result<()> {
    let _: i64 = client
        .query(::redis::cmd("PUBLISH").arg(channel).arg(message))
        .await?;
    Ok(())
}

/// The key prefix of the first row (pause points match on the namespace).
fn prefix<'c>(caches: &'c Caches, rows: &[(u32, u64)]) -> &'c str {
    rows.first()
        .and_then(|(slot, _)| caches.entity(*slot))
        .map_or("", |e| e.key_prefix.as_str())
}

impl Locked {
    /// After the COMMIT (or a rollback): invalidates the rows everywhere. A Redis
    /// failure here is logged, not returned: the rows are committed, and the locks
    /// expire on their own.
    pub(crate) async fn unlock(mut self) {
        self.done = true;
        let rows = std::mem::take(&mut self.rows);
        let registry = self.registry.clone();
        let wait = registry.caches().and_then(|c| strict_wait(c, &rows));
        unlock_rows(&registry, rows, self.token).await;
        if let Some(window) = wait {
            tokio::time::sleep(window).await;
        }
    }
}

/// Strict mode, with other processes to tell, and locally cached rows among `rows`:
/// how long the writer waits after its unlock before the write is acknowledged.
fn strict_wait(caches: &Caches, rows: &[(u32, u64)]) -> Option<std::time::Duration> {
    let local = rows
        .iter()
        .any(|(slot, _)| caches.entity(*slot).is_some_and(|e| e.local.is_some()));
    (caches.coherence.strict() && caches.coherence.has_channel() && local)
        .then(|| caches.coherence.window())
}

async fn unlock_rows(registry: &ValidatedRegistry, rows: Vec<(u32, u64)>, token: u64) {
    let Some(caches) = registry.caches() else {
        return;
    };
    super::pause::point(super::pause::Point::BeforeUnlock, prefix(caches, &rows)).await;
    #[cfg(not(feature = "redis"))]
    let _ = token;
    #[cfg(feature = "redis")]
    for (slot, keys, message) in by_table(caches, &rows) {
        let Some(cache) = caches.entity(slot) else {
            continue;
        };
        let Some(client) = &cache.control else {
            continue;
        };
        let (channel, separately) = publish_on(caches, client);
        let unlocked = match cache.queries.as_ref().filter(|q| q.in_redis) {
            Some(queries) => {
                super::protocol::unlock_with_queries(
                    client,
                    &caches.scripts,
                    &keys,
                    &queries.keys(),
                    token,
                    channel,
                    &message,
                )
                .await
            }
            None => {
                super::protocol::unlock(client, &caches.scripts, &keys, channel, &message).await
            }
        };
        if let Err(e) = unlocked {
            tracing::warn!(target: "beeorm::cache", entity = cache.entity, error = %e, "cache unlock failed; the locks expire on their own");
        }
        if let Some(channel) = separately {
            if let Err(e) = publish(channel, &caches.channel_name, &message).await {
                tracing::warn!(target: "beeorm::cache", entity = cache.entity, error = %e, "cache invalidation not published; other processes' local layers keep the rows until their channel notices");
            }
        }
    }
    for (slot, id) in rows {
        caches.forget_local(slot, id);
        caches.coherence.end_write(slot, id);
    }
}

/// Drops rows of the entity in `slot` from every layer (after writes the caches did
/// not see, such as plain SQL).
pub(crate) async fn invalidate(registry: &ValidatedRegistry, slot: u32, ids: &[u64]) {
    let mut rows: Vec<(u32, u64)> = ids.iter().map(|id| (slot, *id)).collect();
    rows.sort_unstable();
    rows.dedup();
    // No writer token (tokens are odd, never 0): the unlock also bumps the table's
    // query version, so cached lists are dropped too.
    unlock_rows(registry, rows, 0).await;
}

impl Drop for Locked {
    fn drop(&mut self) {
        if self.done || self.rows.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.rows);
        let registry = self.registry.clone();
        let token = self.token;
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move { unlock_rows(&registry, rows, token).await });
            }
            Err(_) => {
                if let Some(caches) = registry.caches() {
                    for (slot, id) in rows {
                        caches.forget_local(slot, id);
                        caches.coherence.end_write(slot, id);
                    }
                }
            }
        }
    }
}
