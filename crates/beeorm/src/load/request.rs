//! The request cache and the data loader (D6): the nearest row source, owned by one
//! engine (one request or task) and never shared with another.
//!
//! * Request cache ([`Engine::with_request_cache`]): every row an engine read by ID
//!   (or found missing) is kept for the engine's lifetime, so a request that asks for
//!   the same row twice — a user, then that user again through a reference — asks the
//!   shared caches and the database once. The engine's own flushes empty it; writes
//!   of other engines are not seen until the request ends (make an engine per
//!   request, as the crate docs say). Reads inside a transaction and reads with
//!   `include_deleted` bypass it.
//! * Data loader ([`Engine::with_data_loader`]): loads by ID issued concurrently by
//!   many tasks of one engine within one scheduler tick are merged: the first task
//!   waits one tick for the others to add their IDs, then one read (one Redis call,
//!   one SQL query) serves them all. A task whose leader was cancelled or failed
//!   reads for itself.
//!
//! Rows are kept as the database holds them (`id` first, every column) and decoded
//! for each caller, so any entity works, `Clone` or not.

use std::any::TypeId;
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use super::source::{Ask, Found, RowSource};
use crate::executor::Executor;
use crate::{Entity, Result, Value};

use crate::cache::request::{Batch, RequestCache, Slot};

/// Marks a batch finished when its leader is done or dropped (cancelled).
struct Finish(Arc<Batch>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0
            .finished
            .store(true, std::sync::atomic::Ordering::Release);
        self.0.done.notify_waiters();
    }
}

/// Records, as rows, what the sources after the request cache gave.
struct Recording<'f, F> {
    inner: &'f mut F,
    rows: Vec<(u64, Vec<Value>)>,
}

impl<E: Entity, F: Found<E>> Found<E> for Recording<'_, F> {
    fn put(&mut self, entity: E) {
        let mut row = Vec::with_capacity(E::COLUMN_COUNT + 1);
        row.push(Value::U64(entity.id()));
        entity.push_values(&mut row);
        self.rows.push((entity.id(), row));
        self.inner.put(entity);
    }
    fn rest<'w>(&mut self, want: &'w [u64]) -> Cow<'w, [u64]> {
        self.inner.rest(want)
    }
}

/// Decodes a kept row for a caller.
fn decode_kept<E: Entity>(row: &[Value]) -> Result<E> {
    let mut row = row.to_vec();
    super::decode(&mut row)
}

/// The request cache, in front of `next`.
pub(crate) struct Request<N>(pub N);

impl<N: RowSource> RowSource for Request<N> {
    fn fill<E: Entity, F: Found<E>>(
        &self,
        ask: &Ask<'_, '_>,
        want: &[u64],
        found: &mut F,
    ) -> impl std::future::Future<Output = Result<()>> + Send {
        use futures_util::future::Either;
        // Without a request cache the next source's future is returned as it is: no
        // state machine of this layer is built or moved on the hottest reads.
        match (ask.request, ask.exec, ask.include_deleted) {
            (Some(cache), Executor::Pool, false) => {
                Either::Right(Box::pin(self.fill_requested(cache, ask, want, found)))
            }
            _ => Either::Left(self.0.fill(ask, want, found)),
        }
    }
}

impl<N: RowSource> Request<N> {
    async fn fill_requested<E: Entity, F: Found<E>>(
        &self,
        cache: &RequestCache,
        ask: &Ask<'_, '_>,
        want: &[u64],
        found: &mut F,
    ) -> Result<()> {
        let ty = TypeId::of::<E>();
        let mut rest: Vec<u64> = Vec::new();
        for &id in want {
            match cache.get(ty, id) {
                Some(Some(row)) => found.put(decode_kept::<E>(&row)?),
                Some(None) => {}
                None => rest.push(id),
            }
        }
        // Counted for cached entities (their stats have a request-cache layer).
        if let Some(c) = ask
            .caches
            .zip(ask.schema.cache_slot())
            .and_then(|(caches, slot)| caches.entity(slot))
        {
            let held = (want.len() - rest.len()) as u64;
            let r = &c.counters.request;
            r.hits.fetch_add(held, std::sync::atomic::Ordering::Relaxed);
            r.misses
                .fetch_add(rest.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if rest.is_empty() {
            return Ok(());
        }
        if let Some(loader) = &cache.loader {
            // Join (or open) this entity's batch.
            let (batch, leader) = {
                let mut batches = loader
                    .lock()
                    .map_err(|_| crate::Error::Query("data loader poisoned".into()))?;
                match batches.get(&ty) {
                    Some(b) if !b.finished.load(std::sync::atomic::Ordering::Acquire) => {
                        if let Ok(mut ids) = b.ids.lock() {
                            ids.extend_from_slice(&rest);
                        }
                        (b.clone(), false)
                    }
                    _ => {
                        let b = Arc::new(Batch {
                            ids: Mutex::new(rest.clone()),
                            done: tokio::sync::Notify::new(),
                            finished: Default::default(),
                        });
                        batches.insert(ty, b.clone());
                        (b, true)
                    }
                }
            };
            if leader {
                let finish = Finish(batch.clone());
                // One tick for the other tasks to add their IDs.
                tokio::task::yield_now().await;
                let mut ids = {
                    if let Ok(mut batches) = loader.lock() {
                        if batches.get(&ty).is_some_and(|b| Arc::ptr_eq(b, &batch)) {
                            batches.remove(&ty);
                        }
                    }
                    batch
                        .ids
                        .lock()
                        .map(|mut i| std::mem::take(&mut *i))
                        .unwrap_or_default()
                };
                ids.sort_unstable();
                ids.dedup();
                let mut all = super::source::Rows::<E>::with_capacity(ids.len());
                let mut rec = Recording {
                    inner: &mut all,
                    rows: Vec::new(),
                };
                let result = self.0.fill(ask, &ids, &mut rec).await;
                let rows = std::mem::take(&mut rec.rows);
                drop(all);
                result?;
                keep(cache, ty, &ids, rows);
                drop(finish);
            } else {
                let notified = batch.done.notified();
                if !batch.finished.load(std::sync::atomic::Ordering::Acquire) {
                    notified.await;
                }
            }
            // Served from what the batch kept; what it did not (its leader failed or
            // was cancelled) is read here.
            let mut still = Vec::new();
            for id in rest {
                match cache.get(ty, id) {
                    Some(Some(row)) => found.put(decode_kept::<E>(&row)?),
                    Some(None) => {}
                    None => still.push(id),
                }
            }
            rest = still;
            if rest.is_empty() {
                return Ok(());
            }
        }
        let mut rec = Recording {
            inner: found,
            rows: Vec::new(),
        };
        self.0.fill(ask, &rest, &mut rec).await?;
        let rows = rec.rows;
        keep(cache, ty, &rest, rows);
        Ok(())
    }
}

/// Keeps the rows found among `asked`, and the others as missing.
fn keep(cache: &RequestCache, ty: TypeId, asked: &[u64], mut rows: Vec<(u64, Vec<Value>)>) {
    rows.sort_unstable_by_key(|(id, _)| *id);
    let mut out: Vec<(u64, Slot)> = Vec::with_capacity(asked.len());
    for &id in asked {
        match rows.binary_search_by_key(&id, |(i, _)| *i) {
            Ok(p) => out.push((id, Some(Arc::from(std::mem::take(&mut rows[p].1))))),
            Err(_) => out.push((id, None)),
        }
    }
    cache.put_rows(ty, out);
}
