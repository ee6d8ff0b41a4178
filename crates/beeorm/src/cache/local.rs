//! In-process cache pools (A3) and their API (E6), on `moka`.
//!
//! Why it is built this way:
//!
//! - One `moka` cache per pool holds both the application's values and the entity
//!   cache's rows ([`LocalKey`]), so one bound (entries or bytes) covers everything the
//!   pool keeps in memory; the entity cache's hot path, [`LocalCache::get_entity`],
//!   looks up a `(table, id)` key without allocating.
//! - Values are `Arc<dyn Any + Send + Sync>`: any `Clone` type can be cached without
//!   serialising it, and reading it with another type is simply a miss.
//! - A byte bound weighs every entry by an estimate of the memory it holds (see
//!   [`ENTRY_OVERHEAD`] and the user guide on [`LocalCache`]), and `moka`'s weigher
//!   enforces it, so the bound is the bound (the Go original's could be overshot a
//!   hundredfold).
//! - `get_set` coalesces concurrent misses of a key into one provider call with a
//!   per-key in-flight slot of our own (not `moka`'s `get_with`), so a value the cache
//!   declines to keep (too heavy for the bound, already expired) still reaches every
//!   waiter, a failing async provider's error is never cached, and the async variant
//!   works on the synchronous `moka` cache the entity cache shares.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::Equivalent;

/// A cached value, type-erased.
pub(crate) type AnyValue = Arc<dyn Any + Send + Sync>;

/// What every entry is charged on top of its key's text and its value's estimated
/// size, in bytes, under a byte bound: `moka`'s own bookkeeping (the key's `Arc`, the
/// value entry, its access and write order nodes, the hash table slot), our value slot
/// and the `Arc` holding the value. A counting allocator measures 293 bytes
/// (`bench/benches/local_cache.rs` prints it: 311 bytes live per entry of a 10-byte key
/// and a `u64`); 320 keeps a margin, so a byte bound errs on the side of holding less.
pub(crate) const ENTRY_OVERHEAD: usize = 320;

/// What each field of a hash ([`LocalCache::hmset`]) is charged on top of its name's
/// text and its value's estimated size: the field name's box, the value's `Arc` and
/// the hash map's slot.
const FIELD_OVERHEAD: usize = 64;

/// How a local cache pool is bounded: by the number of entries, or by the estimated
/// bytes they hold (see [`LocalCache`] for how entries are weighed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCacheBound {
    /// At most this many entries (YAML `local_cache: N` or `local_cache: {entries: N}`).
    Entries(u64),
    /// At most this many estimated bytes (YAML `local_cache: {bytes: N}` or
    /// `{bytes: "64MB"}`).
    Bytes(u64),
}

impl LocalCacheBound {
    /// The bound's number: entries or bytes.
    pub fn limit(self) -> u64 {
        match self {
            LocalCacheBound::Entries(n) | LocalCacheBound::Bytes(n) => n,
        }
    }
}

/// The counters of a local cache pool since it was created ([`LocalCache::stats`]).
/// Counted with relaxed atomics: each is exact, but a snapshot taken while other
/// threads work may mix slightly different moments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalCacheStats {
    /// Reads that found a value of the asked type (`get`, each key of `mget`, each
    /// field of `hmget`, `get_set*` finding the value, entity-cache reads).
    pub hits: u64,
    /// Reads that found nothing, or a value of another type.
    pub misses: u64,
    /// Values stored (`set*`, each pair of `mset`, each `hmset`, each value a
    /// `get_set*` provider produced, entity-cache writes).
    pub inserts: u64,
    /// Entries evicted to keep the bound.
    pub evictions: u64,
    /// Entries removed because their time-to-live ran out (counted when the cache
    /// notices, which may be after the moment they stopped being readable).
    pub expirations: u64,
}

/// The key of an entry: a user's string key, or a row of the entity cache. One cache
/// holds both, so one bound covers both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LocalKey {
    /// A key given to the public API (`get`, `set`, …).
    User(Box<str>),
    /// An entity cache row: the table's number and the row's ID.
    Entity {
        /// The table's number (given by the entity cache).
        table: u32,
        /// The row's primary key.
        id: u64,
    },
}

impl Hash for LocalKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            LocalKey::User(key) => UserKey(key).hash(state),
            LocalKey::Entity { table, id } => hash_entity(*table, *id, state),
        }
    }
}

/// The entity key's hash: one word, so hashing it is one hasher round.
#[inline]
fn hash_entity<H: Hasher>(table: u32, id: u64, state: &mut H) {
    state.write_u64(id ^ (u64::from(table)).rotate_left(40));
}

/// A borrowed user key, to look one up without allocating a [`LocalKey`]; hashes as
/// the [`LocalKey::User`] it stands for.
struct UserKey<'a>(&'a str);

impl Hash for UserKey<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
        state.write_u8(0xff);
    }
}

impl Equivalent<LocalKey> for UserKey<'_> {
    #[inline]
    fn equivalent(&self, key: &LocalKey) -> bool {
        matches!(key, LocalKey::User(k) if **k == *self.0)
    }
}

/// What the cache stores per key: the value, its weight under a byte bound and its
/// time-to-live (read by [`SlotExpiry`]).
#[derive(Clone)]
struct Slot {
    value: AnyValue,
    weight: u32,
    ttl: Option<Duration>,
}

/// Per-entry time-to-live: set on every write (a write without TTL clears an older
/// one), untouched by reads.
struct SlotExpiry;

impl moka::Expiry<LocalKey, Slot> for SlotExpiry {
    fn expire_after_create(&self, _: &LocalKey, slot: &Slot, _: Instant) -> Option<Duration> {
        slot.ttl
    }

    fn expire_after_update(
        &self,
        _: &LocalKey,
        slot: &Slot,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        slot.ttl
    }
}

/// A small hash stored under one user key ([`LocalCache::hmset`]); copied on write.
#[derive(Clone, Default)]
struct LocalHash {
    fields: HashMap<Box<str>, (AnyValue, usize)>,
}

impl LocalHash {
    /// The estimated bytes of every field: name, value and [`FIELD_OVERHEAD`].
    fn bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|(name, (_, size))| name.len() + size + FIELD_OVERHEAD)
            .sum()
    }
}

/// A counter on its own cache line, so threads counting hits do not slow down
/// threads counting misses.
#[derive(Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

impl Counter {
    #[inline]
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Counters {
    hits: Counter,
    misses: Counter,
    inserts: Counter,
    evictions: Counter,
    expirations: Counter,
}

/// The in-flight `get_set` calls of one kind (sync or async), by key: the slot a
/// provider's value is handed to waiters through. An entry lives while someone holds
/// or waits for it.
struct Flights<M> {
    map: Mutex<HashMap<Box<str>, std::sync::Weak<M>>>,
}

impl<M> Default for Flights<M> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<M: Default> Flights<M> {
    /// Joins the flight of `key`, starting one when there is none.
    fn join<'a>(&'a self, key: &'a str) -> Flight<'a, M> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = match map.get(key).and_then(std::sync::Weak::upgrade) {
            Some(slot) => slot,
            None => {
                let slot = Arc::new(M::default());
                map.insert(key.into(), Arc::downgrade(&slot));
                slot
            }
        };
        Flight {
            flights: self,
            key,
            slot,
        }
    }
}

/// A handle on one key's flight; the last one dropped removes it from the map (also
/// when the future holding it is cancelled).
struct Flight<'a, M> {
    flights: &'a Flights<M>,
    key: &'a str,
    slot: Arc<M>,
}

impl<M> Drop for Flight<'_, M> {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Joining takes the map's lock too, so nobody can take a new handle now.
        if Arc::strong_count(&self.slot) == 1
            && map
                .get(self.key)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.slot)))
        {
            map.remove(self.key);
        }
    }
}

struct Inner {
    name: Box<str>,
    bound: LocalCacheBound,
    cache: moka::sync::Cache<LocalKey, Slot>,
    counters: Arc<Counters>,
    sync_flights: Flights<Mutex<Option<AnyValue>>>,
    async_flights: Flights<tokio::sync::Mutex<Option<AnyValue>>>,
}

#[doc = include_str!("../../docs/local_cache.md")]
#[derive(Clone)]
pub struct LocalCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("name", &self.inner.name)
            .field("bound", &self.inner.bound)
            .finish()
    }
}

/// The heap bytes held by values of the common owning types; 0 for others (their
/// inline size is counted by the caller).
fn heap_bytes(value: &dyn Any) -> usize {
    macro_rules! vec_of {
        ($($t:ty),*) => {
            $(if let Some(v) = value.downcast_ref::<Vec<$t>>() {
                return v.capacity() * std::mem::size_of::<$t>();
            })*
        };
    }
    if let Some(s) = value.downcast_ref::<String>() {
        return s.capacity();
    }
    if let Some(s) = value.downcast_ref::<Box<str>>() {
        return s.len();
    }
    if let Some(s) = value.downcast_ref::<Arc<str>>() {
        return s.len() + 16;
    }
    if let Some(s) = value.downcast_ref::<Option<String>>() {
        return s.as_ref().map_or(0, String::capacity);
    }
    if let Some(v) = value.downcast_ref::<Box<[u8]>>() {
        return v.len();
    }
    if let Some(v) = value.downcast_ref::<Vec<String>>() {
        return v.capacity() * std::mem::size_of::<String>()
            + v.iter().map(String::capacity).sum::<usize>();
    }
    vec_of!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, usize);
    0
}

/// The estimated bytes of a value: its inline size plus [`heap_bytes`].
fn value_bytes<T: Any>(value: &T) -> usize {
    std::mem::size_of::<T>() + heap_bytes(value)
}

/// An entry's weight under a byte bound: `bytes` plus [`ENTRY_OVERHEAD`], capped at
/// `u32::MAX` (what `moka` weighs with).
fn weight(bytes: usize) -> u32 {
    u32::try_from(bytes.saturating_add(ENTRY_OVERHEAD)).unwrap_or(u32::MAX)
}

impl LocalCache {
    pub(crate) fn new(name: &str, bound: LocalCacheBound) -> Self {
        let counters = Arc::new(Counters::default());
        let listener = {
            let counters = counters.clone();
            move |_: Arc<LocalKey>, _: Slot, cause: RemovalCause| match cause {
                RemovalCause::Size => counters.evictions.add(1),
                RemovalCause::Expired => counters.expirations.add(1),
                _ => {} // Removed or replaced by a call: not counted.
            }
        };
        let builder = moka::sync::Cache::builder()
            .name(name)
            .max_capacity(bound.limit())
            .expire_after(SlotExpiry)
            .support_invalidation_closures()
            .eviction_listener(listener);
        let cache = match bound {
            LocalCacheBound::Entries(_) => builder.build(),
            LocalCacheBound::Bytes(_) => builder.weigher(|_, slot: &Slot| slot.weight).build(),
        };
        LocalCache {
            inner: Arc::new(Inner {
                name: name.into(),
                bound,
                cache,
                counters,
                sync_flights: Flights::default(),
                async_flights: Flights::default(),
            }),
        }
    }

    /// The pool name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The pool's bound, as registered.
    pub fn bound(&self) -> LocalCacheBound {
        self.inner.bound
    }

    /// The value under `key` without counting a hit or a miss.
    fn peek<T: Clone + 'static>(&self, key: &str) -> Option<T> {
        self.inner
            .cache
            .get(&UserKey(key))?
            .value
            .downcast_ref::<T>()
            .cloned()
    }

    /// Counts a read.
    #[inline]
    fn count<T>(&self, found: Option<T>) -> Option<T> {
        let counters = &self.inner.counters;
        match found {
            Some(_) => counters.hits.add(1),
            None => counters.misses.add(1),
        }
        found
    }

    /// Stores an already weighed value under a user key.
    fn store(&self, key: &str, value: AnyValue, bytes: usize, ttl: Option<Duration>) {
        let slot = Slot {
            value,
            weight: weight(key.len().saturating_add(bytes)),
            ttl,
        };
        self.inner.cache.insert(LocalKey::User(key.into()), slot);
        self.inner.counters.inserts.add(1);
    }

    /// The value under `key`, if present, not expired and of type `T` (a value stored
    /// with another type is a miss). Clones the value: cache an `Arc` for big ones.
    pub fn get<T: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<T> {
        self.count(self.peek(key))
    }

    /// Stores `value` under `key`, with no time-to-live: it stays until evicted,
    /// removed or overwritten. Replaces whatever was there (a value of any type, a
    /// hash, a time-to-live).
    pub fn set<T: Send + Sync + 'static>(&self, key: &str, value: T) {
        let bytes = value_bytes(&value);
        self.store(key, Arc::new(value), bytes, None);
    }

    /// Stores `value` under `key` for `ttl`; afterwards reads miss.
    pub fn set_with_ttl<T: Send + Sync + 'static>(&self, key: &str, value: T, ttl: Duration) {
        let bytes = value_bytes(&value);
        self.store(key, Arc::new(value), bytes, Some(ttl));
    }

    /// Stores `value` under `key`, with an optional time-to-live, the value weighing
    /// `bytes` under a byte bound instead of the estimate (the key's length and the
    /// per-entry overhead are still added). For values whose memory the estimate does
    /// not see: structs owning strings or vectors, maps, trees.
    pub fn set_with_size<T: Send + Sync + 'static>(
        &self,
        key: &str,
        value: T,
        ttl: Option<Duration>,
        bytes: usize,
    ) {
        self.store(key, Arc::new(value), bytes, ttl);
    }

    /// The value under `key`; on a miss, `provider`'s value, stored with `ttl` (`None`:
    /// until evicted). Concurrent misses of one key call one provider: the other
    /// callers block until it returns and get its value. A value of another type
    /// under `key` is a miss and is replaced.
    ///
    /// The waiting blocks the thread: from async code with a slow provider, use
    /// [`LocalCache::get_set_async`]. A provider must not call `get_set` on its own key
    /// (it would wait for itself). A provider that panics lets the next waiter call
    /// its own.
    pub fn get_set<T: Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        provider: impl FnOnce() -> T,
    ) -> T {
        if let Some(v) = self.get(key) {
            return v;
        }
        let flight = self.inner.sync_flights.join(key);
        let mut handed = flight.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = handed.as_ref().and_then(|v| v.downcast_ref::<T>()) {
            return v.clone();
        }
        if let Some(v) = self.peek(key) {
            return v;
        }
        let value = provider();
        let bytes = value_bytes(&value);
        let shared: AnyValue = Arc::new(value.clone());
        *handed = Some(shared.clone());
        self.store(key, shared, bytes, ttl);
        value
    }

    /// [`LocalCache::get_set`] with an async provider: concurrent misses of one key
    /// (from any number of tasks) await one provider call and get its value. Safe to
    /// cancel: when the caller running the provider is dropped, the next waiter runs
    /// its own. (Sync `get_set` callers of the same key at the same moment are
    /// coalesced among themselves, not with these.)
    pub async fn get_set_async<T, F, Fut>(&self, key: &str, ttl: Option<Duration>, provider: F) -> T
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let found = self
            .try_get_set_async(key, ttl, move || async move {
                Ok::<T, std::convert::Infallible>(provider().await)
            })
            .await;
        match found {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// [`LocalCache::get_set_async`] with a fallible provider: its error is returned
    /// to the caller that ran it and nothing is cached; a caller that was waiting on
    /// it then runs its own provider.
    pub async fn try_get_set_async<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        provider: F,
    ) -> Result<T, E>
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(v) = self.get(key) {
            return Ok(v);
        }
        let flight = self.inner.async_flights.join(key);
        let mut handed = flight.slot.lock().await;
        if let Some(v) = handed.as_ref().and_then(|v| v.downcast_ref::<T>()) {
            return Ok(v.clone());
        }
        if let Some(v) = self.peek(key) {
            return Ok(v);
        }
        let value = provider().await?;
        let bytes = value_bytes(&value);
        let shared: AnyValue = Arc::new(value.clone());
        *handed = Some(shared.clone());
        self.store(key, shared, bytes, ttl);
        Ok(value)
    }

    /// The values under `keys`, in order; `None` for a miss (absent, expired or of
    /// another type).
    pub fn mget<T: Clone + Send + Sync + 'static, K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Vec<Option<T>> {
        keys.iter().map(|k| self.get(k.as_ref())).collect()
    }

    /// Stores every `(key, value)` pair, as [`LocalCache::set`] does.
    pub fn mset<T: Send + Sync + 'static, K: AsRef<str>>(
        &self,
        pairs: impl IntoIterator<Item = (K, T)>,
    ) {
        for (key, value) in pairs {
            self.set(key.as_ref(), value);
        }
    }

    /// Merges `fields` into the hash under `key` (creating it): a field given again
    /// takes the new value, other fields stay. Fields may hold values of different
    /// types. A hash has no time-to-live. When `key` holds a plain value (from
    /// `set`), it is replaced by a new hash; a `get` of a hash's key is a miss.
    /// Concurrent `hmset`s of one key are applied one after the other (none is lost).
    pub fn hmset<T: Send + Sync + 'static, F: AsRef<str>>(
        &self,
        key: &str,
        fields: impl IntoIterator<Item = (F, T)>,
    ) {
        let new: Vec<(Box<str>, AnyValue, usize)> = fields
            .into_iter()
            .map(|(field, value)| {
                let bytes = value_bytes(&value);
                (field.as_ref().into(), Arc::new(value) as AnyValue, bytes)
            })
            .collect();
        self.inner
            .cache
            .entry(LocalKey::User(key.into()))
            .and_compute_with(|old| {
                let mut hash = old
                    .and_then(|entry| entry.into_value().value.downcast::<LocalHash>().ok())
                    .map(Arc::unwrap_or_clone)
                    .unwrap_or_default();
                for (field, value, bytes) in new {
                    hash.fields.insert(field, (value, bytes));
                }
                let bytes = key.len().saturating_add(hash.bytes());
                moka::ops::compute::Op::Put(Slot {
                    weight: weight(bytes),
                    value: Arc::new(hash),
                    ttl: None,
                })
            });
        self.inner.counters.inserts.add(1);
    }

    /// The values of `fields` in the hash under `key`, in order; `None` for a field
    /// that is absent or of another type than `T`, and for every field when `key`
    /// holds no hash (absent, expired, or a plain value).
    pub fn hmget<T: Clone + Send + Sync + 'static, F: AsRef<str>>(
        &self,
        key: &str,
        fields: &[F],
    ) -> Vec<Option<T>> {
        let slot = self.inner.cache.get(&UserKey(key));
        let hash = slot
            .as_ref()
            .and_then(|s| s.value.downcast_ref::<LocalHash>());
        fields
            .iter()
            .map(|field| {
                let found = hash
                    .and_then(|h| h.fields.get(field.as_ref()))
                    .and_then(|(v, _)| v.downcast_ref::<T>())
                    .cloned();
                self.count(found)
            })
            .collect()
    }

    /// Removes `key` (a value or a hash).
    pub fn remove(&self, key: &str) {
        self.inner.cache.invalidate(&UserKey(key));
    }

    /// Removes every one of `keys`.
    pub fn remove_many<K: AsRef<str>>(&self, keys: &[K]) {
        for key in keys {
            self.remove(key.as_ref());
        }
    }

    /// Removes everything: the application's values and the entity cache's rows.
    pub fn clear(&self) {
        self.inner.cache.invalidate_all();
    }

    /// The number of entries (values, hashes and entity rows). Removals and evictions
    /// are applied in batches: after [`LocalCache::run_pending_tasks`] the figure is
    /// exact, except that an entry whose time-to-live ran out (already unreadable)
    /// counts until the cache's timer removes it, about a second or two later.
    pub fn entry_count(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// The total weight of the entries: their estimated bytes under a byte bound, their
    /// number under an entry bound. Exact after [`LocalCache::run_pending_tasks`], like
    /// [`LocalCache::entry_count`].
    pub fn weighted_size(&self) -> u64 {
        self.inner.cache.weighted_size()
    }

    /// Applies pending evictions, expirations and removals now (the cache otherwise does
    /// it on its own schedule, on reads and writes), so that
    /// [`LocalCache::entry_count`] and [`LocalCache::weighted_size`] are exact.
    pub fn run_pending_tasks(&self) {
        // One round applies a bounded batch; a burst of writes can leave more.
        for _ in 0..64 {
            self.inner.cache.run_pending_tasks();
            if self.inner.cache.weighted_size() <= self.inner.bound.limit() {
                break;
            }
        }
    }

    /// The pool's counters since it was created.
    pub fn stats(&self) -> LocalCacheStats {
        let c = &self.inner.counters;
        LocalCacheStats {
            hits: c.hits.get(),
            misses: c.misses.get(),
            inserts: c.inserts.get(),
            evictions: c.evictions.get(),
            expirations: c.expirations.get(),
        }
    }

    /// The entity cache's row `id` of table `table`: no allocation, one hit or miss
    /// counted.
    #[inline]
    pub(crate) fn get_entity(&self, table: u32, id: u64) -> Option<AnyValue> {
        let found = self
            .inner
            .cache
            .get(&LocalKey::Entity { table, id })
            .map(|slot| slot.value);
        self.count(found)
    }

    /// Stores the entity cache's row `id` of table `table`, weighing `weight_bytes`
    /// (plus [`ENTRY_OVERHEAD`]) under a byte bound; no time-to-live.
    pub(crate) fn insert_entity(&self, table: u32, id: u64, value: AnyValue, weight_bytes: u32) {
        let slot = Slot {
            value,
            weight: weight(weight_bytes as usize),
            ttl: None,
        };
        self.inner
            .cache
            .insert(LocalKey::Entity { table, id }, slot);
        self.inner.counters.inserts.add(1);
    }

    /// Removes every entity row (the application's own values stay): the local
    /// layer lost its invalidation channel.
    pub(crate) fn clear_entities(&self) {
        let dropped = self
            .inner
            .cache
            .invalidate_entries_if(|key, _| matches!(key, LocalKey::Entity { .. }));
        if dropped.is_err() {
            // Closures unsupported (never, as built): drop everything instead.
            self.inner.cache.invalidate_all();
        }
    }

    /// Removes the entity cache's row `id` of table `table`.
    pub(crate) fn remove_entity(&self, table: u32, id: u64) {
        self.inner.cache.invalidate(&LocalKey::Entity { table, id });
    }

    /// For `bench/benches/local_cache.rs` only (the entity cache's read path is
    /// crate-private); not part of the API.
    #[doc(hidden)]
    pub fn __bench_insert_entity(&self, table: u32, id: u64, value: AnyValue) {
        self.insert_entity(table, id, value, 64);
    }

    /// For `bench/benches/local_cache.rs` only; not part of the API.
    #[doc(hidden)]
    pub fn __bench_get_entity(&self, table: u32, id: u64) -> Option<AnyValue> {
        self.get_entity(table, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn entries(n: u64) -> LocalCache {
        LocalCache::new("t", LocalCacheBound::Entries(n))
    }

    #[test]
    fn values_round_trip_and_wrong_types_miss() {
        let c = entries(10);
        c.set("a", 5u32);
        assert_eq!(c.get::<u32>("a"), Some(5));
        assert_eq!(c.get::<u64>("a"), None);
        assert_eq!(c.get::<String>("a"), None);
        c.set("a", "now a string".to_string());
        assert_eq!(c.get::<u32>("a"), None);
        assert_eq!(c.get::<String>("a").as_deref(), Some("now a string"));
        c.remove("a");
        assert_eq!(c.get::<String>("a"), None);
    }

    #[test]
    fn user_and_entity_keys_do_not_collide() {
        let c = entries(10);
        c.set("1", 1u64);
        c.insert_entity(1, 1, Arc::new(2u64), 8);
        c.insert_entity(2, 1, Arc::new(3u64), 8);
        assert_eq!(c.get::<u64>("1"), Some(1));
        let row = c.get_entity(1, 1).unwrap();
        assert_eq!(row.downcast_ref::<u64>(), Some(&2));
        let row = c.get_entity(2, 1).unwrap();
        assert_eq!(row.downcast_ref::<u64>(), Some(&3));
        assert!(c.get_entity(1, 2).is_none());
        c.remove_entity(1, 1);
        assert!(c.get_entity(1, 1).is_none());
        assert!(c.get_entity(2, 1).is_some());
        assert_eq!(c.get::<u64>("1"), Some(1));
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.inserts), (5, 2, 3));
        c.clear();
        assert!(c.get_entity(2, 1).is_none());
        assert_eq!(c.get::<u64>("1"), None);
    }

    #[test]
    fn hashing_a_borrowed_key_matches_the_owned_key() {
        use std::hash::BuildHasher;
        let state = std::hash::RandomState::new();
        for key in ["", "a", "ünï", "a-longer-key:with:parts"] {
            assert_eq!(
                state.hash_one(LocalKey::User(key.into())),
                state.hash_one(UserKey(key)),
                "{key}"
            );
            assert!(UserKey(key).equivalent(&LocalKey::User(key.into())));
            assert!(!UserKey(key).equivalent(&LocalKey::User(format!("{key}x").into())));
        }
        assert!(!UserKey("1").equivalent(&LocalKey::Entity { table: 1, id: 1 }));
    }

    #[test]
    fn estimates_count_heap_memory_of_common_types() {
        assert_eq!(value_bytes(&7u64), 8);
        let s = String::with_capacity(1000);
        assert_eq!(value_bytes(&s), 24 + 1000);
        assert_eq!(value_bytes(&vec![0u32; 100]), 24 + 400);
        assert_eq!(
            value_bytes(&vec!["ab".to_string(), "cde".to_string()]),
            24 + 2 * 24 + 2 + 3
        );
        assert_eq!(weight(10), 10 + ENTRY_OVERHEAD as u32);
        assert_eq!(weight(usize::MAX), u32::MAX);
    }

    #[test]
    fn a_write_without_ttl_clears_an_older_ttl() {
        let c = entries(10);
        c.set_with_ttl("k", 1u8, Duration::from_millis(50));
        c.set("k", 2u8);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(c.get::<u8>("k"), Some(2));
        // And a huge time-to-live is accepted (it saturates).
        c.set_with_ttl("forever", 3u8, Duration::MAX);
        assert_eq!(c.get::<u8>("forever"), Some(3));
    }

    #[test]
    fn hmset_replaces_a_plain_value_and_get_misses_a_hash() {
        let c = entries(10);
        c.set("h", 1u32);
        c.hmset("h", [("a", 1u32)]);
        assert_eq!(c.get::<u32>("h"), None);
        assert_eq!(c.hmget::<u32, _>("h", &["a"]), vec![Some(1)]);
        c.set("h", 5u32);
        assert_eq!(c.hmget::<u32, _>("h", &["a"]), vec![None]);
    }

    #[test]
    fn concurrent_hmsets_lose_no_field() {
        let c = entries(10);
        std::thread::scope(|s| {
            for t in 0..8 {
                let c = &c;
                s.spawn(move || {
                    for i in 0..50 {
                        c.hmset("h", [(format!("{t}:{i}"), i)]);
                    }
                });
            }
        });
        let fields: Vec<String> = (0..8)
            .flat_map(|t| (0..50).map(move |i| format!("{t}:{i}")))
            .collect();
        let got = c.hmget::<i32, _>("h", &fields);
        assert!(got.iter().all(Option::is_some), "{got:?}");
    }

    #[test]
    fn sync_get_set_calls_one_provider_for_concurrent_misses() {
        let c = entries(10);
        let calls = AtomicUsize::new(0);
        let results: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..50)
                .map(|_| {
                    let (c, calls) = (&c, &calls);
                    s.spawn(move || {
                        c.get_set("k", None, || {
                            calls.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            42u64
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|v| *v == 42));
        assert!(c.inner.sync_flights.map.lock().unwrap().is_empty());
    }

    #[test]
    fn get_set_hands_its_value_to_waiters_even_when_the_cache_declines_it() {
        // 1 byte bound: no entry is ever kept, yet concurrent callers share one call.
        let c = LocalCache::new("t", LocalCacheBound::Bytes(1));
        let calls = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..10 {
                let (c, calls) = (&c, &calls);
                s.spawn(move || {
                    c.get_set("k", None, || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        7u8
                    })
                });
            }
        });
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        c.run_pending_tasks();
        assert_eq!(c.entry_count(), 0);
    }

    #[test]
    fn a_panicking_provider_lets_the_next_caller_provide() {
        let c = entries(10);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.get_set::<u8>("k", None, || panic!("provider failed"))
        }));
        assert!(panicked.is_err());
        assert_eq!(c.get_set("k", None, || 9u8), 9);
        assert!(c.inner.sync_flights.map.lock().unwrap().is_empty());
    }

    #[test]
    fn an_entry_weighs_key_value_and_overhead() {
        let c = LocalCache::new("t", LocalCacheBound::Bytes(1 << 20));
        c.set("key:1", 1u64);
        c.run_pending_tasks();
        assert_eq!(c.weighted_size(), (ENTRY_OVERHEAD + 5 + 8) as u64);
    }
}
