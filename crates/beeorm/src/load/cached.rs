//! The cached by-ID read (D7): local layer → Redis → database, filling the layers on
//! the way back, for entities with `#[orm(local_cache)]` and/or
//! `#[orm(redis_cache)]`. It is the row source in front of [`Database`] in the chain
//! of `source.rs`; for an uncached entity, or inside a transaction, it passes
//! everything straight to the database.
//!
//! One read of `n` IDs costs at most one local lookup per ID, one Redis script call
//! (GET-or-lease of every ID still missing) and one SQL query for what Redis did not
//! hold, then one script call to fill. The protocol (`cache/protocol.rs`) makes the
//! fill safe; the tickets of `cache/coherence.rs` make the local fill safe.

// Without Redis, the protocol's parts are compiled out and some helpers sit idle.
#![cfg_attr(not(feature = "redis"), allow(dead_code, unused))]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::source::{Ask, Database, Found, RowSource};
use crate::cache::coherence::Ticket;
use crate::cache::{Caches, EntityCache};
use crate::executor::Executor;
use crate::{Entity, Result, Value};

/// What the local layer holds for one row.
pub(crate) enum LocalRow<E> {
    /// A live row.
    Alive(E),
    /// A fake-deleted row (served only with `include_deleted`).
    Deleted(E),
    /// No such row.
    Missing,
}

/// The cached layers, in front of the database.
pub(crate) struct Cached;

impl RowSource for Cached {
    fn fill<E: Entity, F: Found<E>>(
        &self,
        ask: &Ask<'_, '_>,
        want: &[u64],
        found: &mut F,
    ) -> impl std::future::Future<Output = Result<()>> + Send {
        use futures_util::future::Either;
        // An uncached entity (or a read in a transaction) gets the database's future
        // as it is: the caches cost its reads nothing.
        let cached = match (ask.caches, ask.schema.cache_slot(), ask.exec) {
            (Some(caches), Some(slot), Executor::Pool) => {
                caches.entity(slot).map(|cache| (caches, cache))
            }
            _ => None,
        };
        match cached {
            Some((caches, cache)) => Either::Right(read(caches, cache, ask, want, found)),
            None => Either::Left(Database.fill(ask, want, found)),
        }
    }
}

/// How a row read from Redis or the database is handed out and kept.
struct Rows<'c> {
    cache: &'c EntityCache,
    fake_delete: Option<usize>,
    include_deleted: bool,
}

impl Rows<'_> {
    /// Decodes `row` (drained), hands the entity out when it reads as found, and
    /// returns what the local layer would keep.
    fn take<E: Entity, F: Found<E>>(
        &self,
        row: &mut Vec<Value>,
        found: &mut F,
    ) -> Result<Option<LocalRow<E>>> {
        let deleted = self
            .fake_delete
            .and_then(|i| row.get(i))
            .is_some_and(crate::schema::fake_delete::is_deleted);
        let entity: E = super::decode(row)?;
        let keep = self.cache.local.is_some();
        if deleted && !self.include_deleted {
            return Ok(keep.then_some(LocalRow::Deleted(entity)));
        }
        if keep {
            if let Some(copy) = entity.cache_clone() {
                found.put(copy);
                return Ok(Some(if deleted {
                    LocalRow::Deleted(entity)
                } else {
                    LocalRow::Alive(entity)
                }));
            }
        }
        found.put(entity);
        Ok(None)
    }
}

/// Keeps `row` in the local layer if the ticket taken before the read still holds.
fn keep_local<E: Entity>(
    caches: &Caches,
    cache: &EntityCache,
    id: u64,
    ticket: Option<Ticket>,
    row: LocalRow<E>,
) {
    let (Some(local), Some(ticket)) = (&cache.local, ticket) else {
        return;
    };
    if caches.coherence.still_valid(ticket) {
        // A byte-bounded pool weighs the entity by its size plus a guess of the heap
        // its columns hold (text, bytes).
        let weight = std::mem::size_of::<LocalRow<E>>() + 24 * E::COLUMN_COUNT;
        local.insert_entity(cache.slot, id, Arc::new(row), weight as u32);
        // An invalidation that landed between the check and the insert ran its
        // remove before our insert: check again and undo (at worst one more miss).
        // The fences pair with the one in `Coherence::invalidate`: either we see its
        // bump, or its remove sees our entry.
        std::sync::atomic::fence(Ordering::SeqCst);
        if caches.coherence.still_valid(ticket) {
            cache.counters.local.fills.fetch_add(1, Ordering::Relaxed);
        } else {
            local.remove_entity(cache.slot, id);
        }
    }
}

/// Which source answers a read: the whole chain (a request cache is on), the
/// cached layers, or the database alone.
pub(crate) enum Route<'a> {
    Chain,
    Cached(&'a Caches, &'a EntityCache),
    Database,
}

/// The source that answers `ask` (see [`Route`]).
#[inline]
pub(crate) fn route<'a>(ask: &Ask<'a, '_>) -> Route<'a> {
    if ask.request.is_some() && !ask.include_deleted && matches!(ask.exec, Executor::Pool) {
        return Route::Chain;
    }
    match (ask.caches, ask.schema.cache_slot(), ask.exec) {
        (Some(caches), Some(slot), Executor::Pool) => match caches.entity(slot) {
            Some(cache) => Route::Cached(caches, cache),
            None => Route::Database,
        },
        _ => Route::Database,
    }
}

pub(crate) async fn read<E: Entity, F: Found<E>>(
    caches: &Caches,
    cache: &EntityCache,
    ask: &Ask<'_, '_>,
    want: &[u64],
    found: &mut F,
) -> Result<()> {
    let slot = cache.slot;
    let rows = Rows {
        cache,
        fake_delete: ask.schema.fake_delete_column(),
        include_deleted: ask.include_deleted,
    };
    // 1. The local layer.
    let local = cache.local.as_ref().filter(|_| caches.coherence.serving());
    // Allocated on the first miss only: a local hit allocates nothing here.
    let mut rest: Vec<u64> = Vec::new();
    match local {
        Some(local) => {
            let mut hits = 0;
            for &id in want {
                let held = local.get_entity(slot, id);
                match held
                    .as_deref()
                    .and_then(|a| a.downcast_ref::<LocalRow<E>>())
                {
                    Some(LocalRow::Alive(e)) => match e.cache_clone() {
                        Some(copy) => {
                            hits += 1;
                            found.put(copy);
                        }
                        None => rest.push(id),
                    },
                    Some(LocalRow::Deleted(e)) => {
                        hits += 1;
                        if ask.include_deleted {
                            if let Some(copy) = e.cache_clone() {
                                found.put(copy);
                            }
                        }
                    }
                    Some(LocalRow::Missing) => hits += 1,
                    None => rest.push(id),
                }
            }
            let c = &cache.counters.local;
            tracing::debug!(
                target: "beeorm::cache",
                entity = cache.entity,
                layer = "local",
                rows = want.len(),
                hits,
                "cache read"
            );
            if hits > 0 {
                c.hits.fetch_add(hits, Ordering::Relaxed);
            }
            if !rest.is_empty() {
                c.misses.fetch_add(rest.len() as u64, Ordering::Relaxed);
            }
        }
        None => rest.extend_from_slice(want),
    }
    if rest.is_empty() {
        return Ok(());
    }
    // The slower layers in a box of their own: a local hit's future stays small (it
    // is built and moved on every read).
    Box::pin(read_rest(caches, cache, ask, rest, &rows, found)).await
}

/// What the local layer did not hold: Redis, then the database.
async fn read_rest<E: Entity, F: Found<E>>(
    caches: &Caches,
    cache: &EntityCache,
    ask: &Ask<'_, '_>,
    rest: Vec<u64>,
    rows: &Rows<'_>,
    found: &mut F,
) -> Result<()> {
    let slot = cache.slot;
    let started = std::time::Instant::now();
    // Tickets before anything slower is asked: what comes back may be kept locally
    // only if nothing changed these keys meanwhile.
    let tickets: Option<Vec<Ticket>> = cache.local.as_ref().map(|_| {
        rest.iter()
            .map(|id| caches.coherence.ticket(slot, *id))
            .collect()
    });
    let ticket = |i: usize| tickets.as_ref().map(|t| t[i]);
    // 2. Redis: rows, leases, waits.
    let mut leased: Vec<usize> = Vec::new();
    let mut bypass: Vec<usize> = Vec::new();
    let token = caches.token();
    match &cache.control {
        #[cfg(feature = "redis")]
        Some(client) => {
            redis_layer(
                caches,
                cache,
                client,
                rows,
                &rest,
                token,
                &ticket,
                found,
                &mut leased,
                &mut bypass,
            )
            .await;
        }
        #[cfg(not(feature = "redis"))]
        Some(client) => match *client {},
        // One process, no Redis: the ticket alone guards the local fill.
        None => leased.extend(0..rest.len()),
    }
    tracing::debug!(
        target: "beeorm::cache",
        entity = cache.entity,
        layer = "redis",
        pool = cache.redis.as_ref().map_or("-", |c| c.pool_name()),
        rows = rest.len(),
        hits = rest.len() - (leased.len() + bypass.len()),
        duration_us = started.elapsed().as_micros() as u64,
        "cache read"
    );
    if leased.is_empty() && bypass.is_empty() {
        return Ok(());
    }
    // From here until the fill, a cancelled or failed read gives its leases back.
    #[cfg(feature = "redis")]
    let mut leases = Leases {
        caches,
        client: cache.control.clone().filter(|_| !leased.is_empty()),
        keys: if leased.is_empty() {
            Vec::new()
        } else {
            leased.iter().map(|i| cache.key(rest[*i])).collect()
        },
        token,
    };
    // 3. The database, for the leased and the bypassed rows, fake-deleted ones
    // included (the caches keep rows as they are).
    let mut ids: Vec<u64> = leased.iter().chain(&bypass).map(|i| rest[*i]).collect();
    ids.sort_unstable();
    cache
        .counters
        .database_loads
        .fetch_add(ids.len() as u64, Ordering::Relaxed);
    crate::cache::pause::point(crate::cache::pause::Point::BeforeSelect, &cache.key_prefix).await;
    let loaded = match super::source::select_rows(ask, &ids).await {
        Ok(r) => r,
        // The leases are given back by `leases`' drop.
        Err(e) => return Err(e),
    };
    crate::cache::pause::point(crate::cache::pause::Point::BeforeFill, &cache.key_prefix).await;
    // Which index of `rest` each loaded ID is, and whether we hold its lease.
    let mut index: Vec<(u64, usize, bool)> = leased
        .iter()
        .map(|i| (rest[*i], *i, true))
        .chain(bypass.iter().map(|i| (rest[*i], *i, false)))
        .collect();
    index.sort_unstable();
    let lookup = |id: u64| {
        index
            .binary_search_by_key(&id, |(id, _, _)| *id)
            .ok()
            .map(|p| (index[p].1, index[p].2))
    };
    // Rows for Redis (leased ones only) and what the local layer would keep, with
    // the position of their fill.
    let with_redis = cache.control.is_some();
    let mut fill_keys: Vec<String> = Vec::new();
    let mut fill_values: Vec<Vec<u8>> = Vec::new();
    let mut keep: Vec<(usize, usize, LocalRow<E>)> = Vec::new();
    let mut seen: Vec<u64> = Vec::with_capacity(loaded.len());
    for mut row in loaded {
        let Some((i, is_leased)) = row.first().and_then(Value::as_u64).and_then(|id| {
            seen.push(id);
            lookup(id)
        }) else {
            continue;
        };
        let encoded = if is_leased && cache.redis.is_some() {
            let mut out = Vec::with_capacity(64);
            out.push(b'V');
            out.extend_from_slice(cache.signature.as_bytes());
            crate::cache::codec::encode_row(&row, &mut out);
            out
        } else {
            Vec::new()
        };
        let kept = rows.take::<E, F>(&mut row, found)?;
        if is_leased {
            if with_redis {
                fill_keys.push(cache.key(rest[i]));
                fill_values.push(encoded);
            }
            if let Some(k) = kept {
                keep.push((i, fill_keys.len().wrapping_sub(1), k));
            }
        }
    }
    // Leased IDs without a row: remembered as missing.
    seen.sort_unstable();
    for &i in &leased {
        let id = rest[i];
        if seen.binary_search(&id).is_err() {
            if with_redis {
                fill_keys.push(cache.key(id));
                fill_values.push(if cache.redis.is_some() {
                    b"N".to_vec()
                } else {
                    Vec::new()
                });
            }
            if cache.local.is_some() {
                keep.push((i, fill_keys.len().wrapping_sub(1), LocalRow::Missing));
            }
        }
    }
    // 4. Fill: Redis where our lease still holds, then the local layer where Redis
    // took it (or, without Redis, where the ticket holds).
    let filled: Vec<bool> = match &cache.control {
        #[cfg(feature = "redis")]
        Some(client) if !fill_keys.is_empty() => {
            match crate::cache::protocol::fill(
                client,
                &caches.scripts,
                &fill_keys,
                token,
                caches.settings.ttl,
                caches.settings.missing_ttl,
                fill_values,
            )
            .await
            {
                Ok(f) => {
                    // The fill used or gave back every lease.
                    leases.disarm();
                    if cache.redis.is_some() {
                        let n = f.iter().filter(|x| **x).count() as u64;
                        cache.counters.redis.fills.fetch_add(n, Ordering::Relaxed);
                    }
                    f
                }
                Err(e) => {
                    tracing::warn!(target: "beeorm::cache", entity = cache.entity, error = %e, "cache fill failed; rows served from the database");
                    return Ok(());
                }
            }
        }
        _ => Vec::new(),
    };
    for (i, fill, row) in keep {
        let accepted = !with_redis || filled.get(fill).copied().unwrap_or(false);
        if accepted {
            keep_local(caches, cache, rest[i], ticket(i), row);
        }
    }
    Ok(())
}

/// Asks Redis for `rest`: rows and known-missing ones go to `found` (and the local
/// layer); the indexes of leased keys go to `leased`, of keys to read without a fill
/// to `bypass`. Keys leased by another reader are asked again with a growing pause
/// until that reader filled them or its lease expired (herd protection: one database
/// load per key per invalidation).
#[cfg(feature = "redis")]
#[allow(clippy::too_many_arguments)]
async fn redis_layer<E: Entity, F: Found<E>>(
    caches: &Caches,
    cache: &EntityCache,
    client: &crate::redis::RedisClient,
    rows: &Rows<'_>,
    rest: &[u64],
    token: u64,
    ticket: &impl Fn(usize) -> Option<Ticket>,
    found: &mut F,
    leased: &mut Vec<usize>,
    bypass: &mut Vec<usize>,
) {
    use crate::cache::protocol::{self, Reply};
    let signature = if cache.redis.is_some() {
        cache.signature.as_str()
    } else {
        ""
    };
    let mut asking: Vec<usize> = (0..rest.len()).collect();
    let mut pause = Duration::from_millis(1);
    let deadline = Instant::now() + protocol::LEASE;
    let counters = &cache.counters.redis;
    let mut first = true;
    // Rows are first asked with a plain MGET (the hit path costs what a raw MGET
    // does); what it does not settle goes to the leasing script.
    let mut peeking = cache.redis.is_some();
    loop {
        let keys: Vec<String> = asking.iter().map(|i| cache.key(rest[*i])).collect();
        let asked = if peeking {
            protocol::peek(client, &keys, signature).await
        } else {
            protocol::read(client, &caches.scripts, &keys, token, signature).await
        };
        let replies = match asked {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "beeorm::cache", entity = cache.entity, error = %e, "cache read failed; rows served from the database");
                bypass.extend(asking);
                return;
            }
        };
        let mut waiting = Vec::new();
        let mut unsettled = Vec::new();
        for (i, reply) in asking.into_iter().zip(replies) {
            let id = rest[i];
            match reply {
                Reply::Ask => unsettled.push(i),
                Reply::Row(bytes) => {
                    let decoded = crate::cache::codec::decode_row(&bytes);
                    match decoded {
                        Ok(mut row) if row.first().and_then(Value::as_u64) == Some(id) => {
                            match rows.take::<E, F>(&mut row, found) {
                                Ok(kept) => {
                                    counters.hits.fetch_add(1, Ordering::Relaxed);
                                    if let Some(k) = kept {
                                        keep_local(caches, cache, id, ticket(i), k);
                                    }
                                }
                                Err(_) => bypass.push(i),
                            }
                        }
                        // Bytes this build cannot read: the database answers.
                        _ => bypass.push(i),
                    }
                }
                Reply::Missing => {
                    counters.hits.fetch_add(1, Ordering::Relaxed);
                    keep_local::<E>(caches, cache, id, ticket(i), LocalRow::Missing);
                }
                Reply::Leased => {
                    if first {
                        counters.misses.fetch_add(1, Ordering::Relaxed);
                    }
                    leased.push(i);
                }
                Reply::Wait => {
                    if first {
                        counters.misses.fetch_add(1, Ordering::Relaxed);
                        cache.counters.waits.fetch_add(1, Ordering::Relaxed);
                    }
                    waiting.push(i);
                }
                Reply::Bypass => {
                    if first {
                        counters.misses.fetch_add(1, Ordering::Relaxed);
                    }
                    bypass.push(i);
                }
            }
        }
        if peeking {
            peeking = false;
            if unsettled.is_empty() {
                return;
            }
            asking = unsettled;
            continue;
        }
        first = false;
        if waiting.is_empty() {
            return;
        }
        if Instant::now() + pause > deadline {
            bypass.extend(waiting);
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(32));
        asking = waiting;
    }
}

/// The leases a reader holds between its lease and its fill. Dropped before it is
/// disarmed — the read was cancelled, or failed (SQL error, a row that does not
/// decode) — it gives them back from a task of its own, so other readers of those
/// rows go on at once instead of waiting for the leases to expire.
#[cfg(feature = "redis")]
struct Leases<'c> {
    caches: &'c Caches,
    client: Option<crate::redis::RedisClient>,
    keys: Vec<String>,
    token: u64,
}

#[cfg(feature = "redis")]
impl Leases<'_> {
    /// The fill ran (it gives back what it does not fill): nothing left to release.
    fn disarm(&mut self) {
        self.client = None;
    }
}

#[cfg(feature = "redis")]
impl Drop for Leases<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !self.keys.is_empty() {
                let keys = std::mem::take(&mut self.keys);
                crate::cache::protocol::release_later(
                    client,
                    &self.caches.scripts,
                    keys,
                    self.token,
                );
            }
        }
    }
}
