//! The lazy flush (C8), applying side: [`LazyConsumer`] reads the lazy stream and
//! writes what [`Flusher::flush_lazy`](crate::Flusher::flush_lazy) published; the
//! dead letters are listed, retried and dropped through [`LazyDeadLetters`]. See
//! `docs/lazy_flush.md`.
//!
//! Why it is exactly once in the database: delivery is at least once (an entry is
//! acknowledged only after its rows committed, so a crash redelivers it), and the
//! apply is idempotent: each pool's transaction records the IDs of the entries it
//! applies in `_beeorm_lazy_applied` and skips those already recorded. The record and
//! the rows commit together or not at all.
//!
//! Why in order per entity: one applier runs at a time per namespace (a lease in
//! Redis), under one consumer name, reading its own pending entries first — so the
//! entries are applied in stream order, which is the order they were published, even
//! after a crash.
//!
//! Why caches stay true: around each COMMIT the cached rows it changes are locked and
//! then invalidated exactly as by a direct flush (`cache::write`). Observers see the
//! applied writes as those of a flush: `in_transaction` on the applier's transaction
//! (a change log commits with the rows), `after_commit` once it committed.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ::redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use super::commit::{after_commit, AfterHooks};
use super::lazy::{config, LazyConfig, LazyOp, LazyWrite, LAZY_GROUP, LAZY_TAG};
use crate::events::{StopHandle, BODY, KIND};
use crate::observe::{Change, ChangeKind, ChangeSet, ColumnChange, ObserverTx};
use crate::sql::pool::{Conn, SqlPool};
use crate::{Engine, Error, Result, ValidatedRegistry, Value};

/// The table recording the applied entries (one per relational pool written to).
pub(crate) const APPLIED_TABLE: &str = "_beeorm_lazy_applied";
/// The consumer name of the applier (one at a time: see the module docs).
const CONSUMER: &str = "applier";
/// Most parameters one multi-row INSERT of the applier gets.
const MAX_PARAMS: usize = 30_000;

impl Engine {
    /// The applier of the lazy flush (see [`LazyConsumer`]).
    /// [`Error::Config`] when [`Registry::enable_lazy_flush`](crate::Registry::enable_lazy_flush)
    /// was not called.
    pub fn lazy_consumer(&self) -> Result<LazyConsumer> {
        let lazy = config(self.registry())?.clone();
        let (tx, _) = tokio::sync::watch::channel(false);
        Ok(LazyConsumer {
            registry: self.registry().clone(),
            lazy,
            batch_size: 500,
            poll: Duration::from_millis(100),
            attempts: 3,
            backoff: Duration::from_millis(50),
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(60),
            retention: Duration::from_secs(7 * 24 * 3600),
            stop: Arc::new(tx),
            ready: Arc::new(std::sync::Mutex::new(HashSet::new())),
        })
    }

    /// The dead letters of the lazy flush: writes the applier gave up on.
    pub fn lazy_dead_letters(&self) -> Result<LazyDeadLetters> {
        Ok(LazyDeadLetters {
            lazy: config(self.registry())?.clone(),
        })
    }

    /// How far the lazy applier is behind: the lazy stream's statistics (length,
    /// oldest entry, and its group `beeorm-lazy`: pending, consumers, unread lag,
    /// oldest pending) and how many dead letters wait. [`Error::Config`] when
    /// [`Registry::enable_lazy_flush`](crate::Registry::enable_lazy_flush) was not called.
    pub async fn lazy_backlog(&self) -> Result<LazyBacklog> {
        let lazy = config(self.registry())?;
        let def = crate::events::StreamDef {
            name: lazy.stream.clone(),
            pool: lazy.client.pool_name().to_string(),
            groups: vec![LAZY_GROUP.to_string()],
        };
        let stream = crate::events::stream_stats(&lazy.client, &def).await?;
        let dead_letters = LazyDeadLetters { lazy: lazy.clone() }.len().await?;
        Ok(LazyBacklog {
            stream,
            dead_letters,
        })
    }
}

/// How far the lazy applier is behind ([`Engine::lazy_backlog`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LazyBacklog {
    /// The lazy stream (`{<namespace>:lazy}`) and its applier's group.
    pub stream: crate::events::StreamStats,
    /// Writes the applier gave up on ([`Engine::lazy_dead_letters`]).
    pub dead_letters: u64,
}

/// Applies the lazy writes ([`Flusher::flush_lazy`](crate::Flusher::flush_lazy)):
/// [`LazyConsumer::drain`] applies what the stream holds and returns,
/// [`LazyConsumer::run`] goes on until stopped.
///
/// * Batches of up to [`batch_size`](LazyConsumer::batch_size) entries; per batch, one
///   transaction per relational pool, which also records the applied entry IDs (so a
///   redelivered entry changes nothing).
/// * One applier per namespace at a time across processes (a lease in Redis, renewed
///   before each batch, given back on return; a killed applier's lease expires after
///   [`lease_ttl`](LazyConsumer::lease_ttl)): writes are applied in the order they were
///   published. A second applier waits for the lease up to
///   [`lease_wait`](LazyConsumer::lease_wait), then fails with
///   [`Error::LockNotObtained`].
/// * A failing batch is retried ([`attempts`](LazyConsumer::attempts) times, with a
///   doubling [`backoff`](LazyConsumer::backoff)), then applied entry by entry; an entry
///   that still fails after `attempts` tries is moved to the dead-letter stream with
///   its error and acknowledged: later entries go on. Lost connections, timeouts and
///   Redis errors are not the write's fault: `drain`/`run` return the error and the
///   batch stays pending, applied by the next run.
///
#[doc = include_str!("../../docs/lazy_flush.md")]
#[derive(Debug)]
pub struct LazyConsumer {
    registry: ValidatedRegistry,
    lazy: Arc<LazyConfig>,
    batch_size: usize,
    poll: Duration,
    attempts: u32,
    backoff: Duration,
    lease_ttl: Duration,
    lease_wait: Duration,
    retention: Duration,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// Pools whose applied-entries table exists.
    ready: Arc<std::sync::Mutex<HashSet<String>>>,
}

/// One entry read from the lazy stream.
struct Entry {
    id: String,
    /// The encoded write (`_b`), kept for the dead-letter stream.
    body: Vec<u8>,
    write: std::result::Result<LazyWrite, String>,
}

/// How applying a group of entries failed.
enum Failure {
    /// The write's own fault (a constraint, a missing table, a deadlock…): retried,
    /// then dead-lettered.
    Write(Error),
    /// The infrastructure's (connection, timeout, Redis): the entries stay pending.
    Infra(Error),
}

fn classify(e: Error) -> Failure {
    match e {
        Error::Connection { .. } | Error::Timeout { .. } | Error::Redis { .. } => Failure::Infra(e),
        other => Failure::Write(other),
    }
}

impl LazyConsumer {
    /// Entries per batch (default 500, at least 1).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// How long [`LazyConsumer::run`] pauses when the stream is empty before it
    /// reads again (default 100 ms). Reads never block: a blocking XREADGROUP would
    /// hold up every other command on the registry's shared Redis connection.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll = d.max(Duration::from_millis(1));
        self
    }

    /// Tries of a failing batch, then of each of its entries, before an entry goes to
    /// the dead-letter stream (default 3, at least 1).
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = n.max(1);
        self
    }

    /// The pause after the first failed try, doubled after each (default 50 ms).
    pub fn backoff(mut self, d: Duration) -> Self {
        self.backoff = d;
        self
    }

    /// How long the applier lease lives unrenewed (default 30 s): after a crash,
    /// another applier takes over after at most this long. Keep it above the time
    /// one batch takes.
    pub fn lease_ttl(mut self, d: Duration) -> Self {
        self.lease_ttl = d.max(Duration::from_millis(100));
        self
    }

    /// How long to wait for the lease held by another applier (default 60 s).
    pub fn lease_wait(mut self, d: Duration) -> Self {
        self.lease_wait = d;
        self
    }

    /// How long the applied entry IDs are kept (default 7 days): an entry that
    /// stays unacknowledged longer than this (committed, then its applier killed and
    /// none restarted) could be applied twice.
    pub fn dedup_retention(mut self, d: Duration) -> Self {
        self.retention = d;
        self
    }

    /// A handle that stops [`LazyConsumer::run`] after the batch in hand.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            tx: self.stop.clone(),
        }
    }

    /// Applies every entry the stream holds now (pending ones first) and returns how
    /// many entries were handled (applied, skipped as already applied, or
    /// dead-lettered).
    pub async fn drain(&self) -> Result<u64> {
        self.consume(false).await
    }

    /// Applies entries as they come until stopped ([`LazyConsumer::stop_handle`]) or
    /// until the future is dropped (the batch in hand then stays pending: it is
    /// applied, once, by the next run). Returns how many entries were handled.
    pub async fn run(&self) -> Result<u64> {
        self.consume(true).await
    }

    async fn consume(&self, follow: bool) -> Result<u64> {
        let mut stop = self.stop.subscribe();
        let lease = self
            .lazy
            .locker
            .obtain(&self.lazy.namespace, self.lease_ttl, self.lease_wait)
            .await?;
        let result = self.consume_leased(follow, &lease, &mut stop).await;
        if let Err(e) = lease.release().await {
            tracing::warn!(target: "beeorm::lazy", error = %e, "lazy applier: lease given back late");
        }
        result
    }

    async fn consume_leased(
        &self,
        follow: bool,
        lease: &crate::Lock,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<u64> {
        let mut handled = 0u64;
        // Own pending entries first (a crashed or failed run's), then new ones.
        let mut pending = true;
        loop {
            if *stop.borrow() {
                return Ok(handled);
            }
            lease.refresh(self.lease_ttl).await?;
            let entries = self.read(if pending { "0" } else { ">" }).await?;
            if entries.is_empty() {
                if pending {
                    pending = false;
                    continue;
                }
                if !follow {
                    return Ok(handled);
                }
                let pause = self.poll.min(self.lease_ttl / 2);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => continue,
                    _ = stop.changed() => return Ok(handled),
                }
            }
            handled += self.process(entries).await?;
        }
    }

    /// XREADGROUP from `from` (`0`: own pending; `>`: new), never blocking.
    async fn read(&self, from: &str) -> Result<Vec<Entry>> {
        let mut cmd = ::redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(LAZY_GROUP)
            .arg(CONSUMER)
            .arg("COUNT")
            .arg(self.batch_size)
            .arg("STREAMS")
            .arg(&self.lazy.stream)
            .arg(from);
        let reply: Option<StreamReadReply> = self.lazy.client.query(&cmd).await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(entry)
            .collect())
    }

    /// Applies one batch: retried, then entry by entry, the hopeless ones
    /// dead-lettered. Returns how many entries it handled.
    async fn process(&self, entries: Vec<Entry>) -> Result<u64> {
        let total = entries.len() as u64;
        let mut good = Vec::with_capacity(entries.len());
        for e in entries {
            match &e.write {
                Ok(_) => good.push(e),
                Err(reason) => {
                    let reason = reason.clone();
                    self.dead_letter(&e, &reason).await?;
                }
            }
        }
        if good.is_empty() {
            return Ok(total);
        }
        match self.with_retries(&good).await {
            Ok(()) => {
                self.ack(&good).await?;
                return Ok(total);
            }
            Err(Failure::Infra(e)) => return Err(e),
            Err(Failure::Write(e)) if good.len() == 1 => {
                self.dead_letter(&good[0], &e.to_string()).await?;
                return Ok(total);
            }
            Err(Failure::Write(e)) => {
                tracing::warn!(target: "beeorm::lazy", error = %e, entries = good.len(), "lazy batch failed: applying its entries one by one");
            }
        }
        for e in &good {
            match self.with_retries(std::slice::from_ref(e)).await {
                Ok(()) => self.ack(std::slice::from_ref(e)).await?,
                Err(Failure::Infra(err)) => return Err(err),
                Err(Failure::Write(err)) => self.dead_letter(e, &err.to_string()).await?,
            }
        }
        Ok(total)
    }

    async fn with_retries(&self, entries: &[Entry]) -> std::result::Result<(), Failure> {
        let mut pause = self.backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.apply(entries).await {
                Ok(()) => return Ok(()),
                Err(e) => match classify(e) {
                    Failure::Write(e) if tries < self.attempts => {
                        tracing::debug!(target: "beeorm::lazy", error = %e, tries, "lazy write failed: trying again");
                        tokio::time::sleep(pause).await;
                        pause = pause.saturating_mul(2);
                    }
                    other => return Err(other),
                },
            }
        }
    }

    /// Applies `entries` (decoded), one transaction per pool, in stream order within
    /// each pool.
    async fn apply(&self, entries: &[Entry]) -> Result<()> {
        let mut by_pool: BTreeMap<&str, Vec<(&str, &LazyWrite)>> = BTreeMap::new();
        for e in entries {
            if let Ok(w) = &e.write {
                by_pool
                    .entry(w.pool.as_str())
                    .or_default()
                    .push((e.id.as_str(), w));
            }
        }
        for (pool_name, writes) in by_pool {
            let pool =
                self.registry
                    .sql_pool(pool_name)
                    .cloned()
                    .ok_or_else(|| Error::UnknownPool {
                        kind: "relational",
                        pool: pool_name.to_string(),
                        used_by: "a lazy write".into(),
                    })?;
            self.ensure_table(&pool).await?;
            self.apply_pool(&pool, &writes).await?;
        }
        Ok(())
    }

    async fn apply_pool(&self, pool: &SqlPool, writes: &[(&str, &LazyWrite)]) -> Result<()> {
        let registry = &self.registry;
        let table = pool.quote(APPLIED_TABLE);
        let keys: Vec<String> = writes
            .iter()
            .map(|(id, _)| dedup_key(&self.lazy.namespace, id))
            .collect();
        // On any error the connection is dropped, which rolls the transaction back.
        let mut conn = pool.begin().await?;
        let mut seen = HashSet::new();
        for chunk in keys.chunks(MAX_PARAMS) {
            let mut sql = pool.kind().writer(64 + chunk.len() * 4);
            sql.push_str("SELECT entry_id FROM ");
            sql.push_str(&table);
            sql.push_str(" WHERE entry_id IN (");
            sql.params(chunk.len());
            sql.push_str(")");
            let params = chunk.iter().map(|k| Value::String(k.clone())).collect();
            for row in conn.query(&sql.finish(), params).await? {
                if let Some(Value::String(k)) = row.into_iter().next() {
                    seen.insert(k);
                }
            }
        }
        let todo: Vec<(&String, &LazyWrite)> = keys
            .iter()
            .zip(writes)
            .filter(|(k, _)| !seen.contains(*k))
            .map(|(k, (_, w))| (k, *w))
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let mut changes = Vec::with_capacity(todo.len());
        let mut i = 0;
        while i < todo.len() {
            i += self
                .write_run(pool, &mut conn, &todo[i..], &mut changes)
                .await?;
        }
        let now = chrono::Utc::now().timestamp_millis();
        for chunk in todo.chunks(MAX_PARAMS / 2) {
            let mut sql = pool.kind().writer(64 + chunk.len() * 8);
            sql.push_str("INSERT INTO ");
            sql.push_str(&table);
            sql.push_str(" (entry_id, applied_at) VALUES ");
            let mut params = Vec::with_capacity(chunk.len() * 2);
            for (n, (key, _)) in chunk.iter().enumerate() {
                if n > 0 {
                    sql.push_str(",");
                }
                sql.push_str("(");
                sql.params(2);
                sql.push_str(")");
                params.push(Value::String((*key).clone()));
                params.push(Value::I64(now));
            }
            conn.execute(&sql.finish(), params).await?;
        }
        let changes = ChangeSet::from_changes(changes);
        // The observers' in-transaction step (change logs…), as for a flush: on the
        // same transaction, so their rows commit with the writes or not at all.
        let mut tx = ObserverTx {
            conn: &mut conn,
            pool: pool.name(),
            kind: pool.kind(),
        };
        for observer in registry
            .hooks()
            .observers()
            .iter()
            .filter(|o| o.needs_transaction())
        {
            observer.in_transaction(&changes, &mut tx).await?;
        }
        // Change-log rows commit with the writes (see `change_log.rs`): one call per
        // run of writes that share their flush's metadata.
        if crate::change_log::any_logged(registry, &changes) {
            let metas: Vec<Option<&crate::LogMeta>> =
                todo.iter().map(|(_, w)| w.meta.as_ref()).collect();
            if metas.len() == changes.len() {
                let mut start = 0;
                while start < metas.len() {
                    let end = (start..metas.len())
                        .find(|&i| metas[i] != metas[start])
                        .unwrap_or(metas.len());
                    let run = ChangeSet::from_changes(changes.changes()[start..end].to_vec());
                    crate::change_log::write(registry, &mut conn, pool.kind(), &run, metas[start])
                        .await?;
                    start = end;
                }
            } else {
                crate::change_log::write(registry, &mut conn, pool.kind(), &changes, None).await?;
            }
        }
        // Cached rows are locked across the COMMIT (see `flush/commit.rs`).
        let locked = if registry.needs_changes() {
            crate::cache::write::lock(registry, &changes).await?
        } else {
            None
        };
        conn.commit().await?;
        if let Some(locked) = locked {
            locked.unlock().await;
        }
        if let Err(e) = after_commit(
            registry,
            Some(&changes),
            AfterHooks::Detached(Vec::new()),
            Vec::new(),
        )
        .await
        {
            tracing::warn!(target: "beeorm::lazy", error = %e, "lazy applier: after-commit step failed (the rows are committed)");
        }
        Ok(())
    }

    /// Writes the first of `todo` (and the inserts of the same table and columns
    /// right after it, in one multi-row INSERT); returns how many it wrote.
    async fn write_run(
        &self,
        pool: &SqlPool,
        conn: &mut Conn,
        todo: &[(&String, &LazyWrite)],
        changes: &mut Vec<Change>,
    ) -> Result<usize> {
        let (_, first) = todo[0];
        let (entity_type, schema) = self
            .registry
            .entity_by_name(&first.entity)
            .ok_or_else(|| Error::UnknownEntity(first.entity.clone()))?;
        if schema.table_name() != first.table || schema.pool_name() != first.pool {
            return Err(Error::Flush {
                entity: first.entity.clone(),
                reason: format!(
                    "lazy write for table `{}` of pool `{}`, but the entity now maps to table `{}` of pool `{}`",
                    first.table,
                    first.pool,
                    schema.table_name(),
                    schema.pool_name()
                ),
            });
        }
        let kind = pool.kind();
        let t = schema.templates(kind);
        let index = |name: &str| -> Result<usize> {
            schema
                .columns()
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| Error::UnknownField {
                    entity: first.entity.clone(),
                    field: name.to_string(),
                })
        };
        let change = |w: &LazyWrite, kind: ChangeKind| Change {
            entity_type,
            entity_name: schema.entity_name(),
            table: schema.table_name().to_string(),
            pool: schema.pool_name().to_string(),
            id: w.id,
            kind,
            before: w.before.as_ref().map(|row| {
                schema
                    .columns()
                    .iter()
                    .skip(1)
                    .map(|c| c.name.clone())
                    .zip(row.iter().cloned())
                    .collect()
            }),
        };
        let mut sql = kind.writer(128);
        let mut params = Vec::new();
        let mut used = 1;
        match first.op {
            LazyOp::Insert => {
                let cols: Vec<usize> = first
                    .columns
                    .iter()
                    .map(|c| index(c))
                    .collect::<Result<_>>()?;
                let width = cols.len() + 1;
                let run = todo
                    .iter()
                    .take((MAX_PARAMS / width).max(1))
                    .take_while(|(_, w)| {
                        w.op == LazyOp::Insert
                            && w.entity == first.entity
                            && w.columns == first.columns
                    })
                    .count()
                    .max(1);
                sql.push_str("INSERT INTO ");
                sql.push_str(&t.table);
                sql.push_str(" (");
                sql.push_str(&t.columns[0]);
                for c in &cols {
                    sql.push_str(", ");
                    sql.push_str(&t.columns[*c]);
                }
                sql.push_str(") VALUES ");
                for (n, (_, w)) in todo[..run].iter().enumerate() {
                    if n > 0 {
                        sql.push_str(",");
                    }
                    sql.push_str("(");
                    sql.params(width);
                    sql.push_str(")");
                    let row = w.values.clone();
                    if row.len() != cols.len() {
                        return Err(Error::Flush {
                            entity: w.entity.clone(),
                            reason: "lazy insert: as many values as columns expected".into(),
                        });
                    }
                    params.push(Value::U64(w.id));
                    changes.push(change(
                        w,
                        ChangeKind::Inserted {
                            values: w.columns.iter().cloned().zip(row.iter().cloned()).collect(),
                        },
                    ));
                    params.extend(row);
                }
                used = run;
            }
            LazyOp::Update => {
                let new = first.values.clone();
                let old = first.old.clone();
                if new.len() != first.columns.len() || new.is_empty() {
                    return Err(Error::Flush {
                        entity: first.entity.clone(),
                        reason: "lazy update: as many values as columns expected".into(),
                    });
                }
                sql.push_str("UPDATE ");
                sql.push_str(&t.table);
                sql.push_str(" SET ");
                for (n, c) in first.columns.iter().enumerate() {
                    if n > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&t.columns[index(c)?]);
                    sql.push_str(" = ");
                    sql.param();
                }
                sql.push_str(" WHERE ");
                sql.push_str(&t.columns[0]);
                sql.push_str(" = ");
                sql.param();
                let columns = first
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(n, c)| {
                        ColumnChange::new(
                            c.clone(),
                            old.get(n).cloned().unwrap_or(Value::Null),
                            new[n].clone(),
                        )
                    })
                    .collect();
                changes.push(change(first, ChangeKind::Updated { columns }));
                params = new;
                params.push(Value::U64(first.id));
            }
            LazyOp::Delete => {
                sql.push_str("DELETE FROM ");
                sql.push_str(&t.table);
                sql.push_str(" WHERE ");
                sql.push_str(&t.columns[0]);
                sql.push_str(" = ");
                sql.param();
                params.push(Value::U64(first.id));
                changes.push(change(first, ChangeKind::Deleted { fake: false }));
            }
            LazyOp::FakeDelete => {
                let flag = schema
                    .fake_delete_column()
                    .and_then(|i| t.columns.get(i))
                    .ok_or_else(|| Error::Flush {
                        entity: first.entity.clone(),
                        reason: "lazy fake delete: the entity has no fake-delete column now".into(),
                    })?;
                sql.push_str("UPDATE ");
                sql.push_str(&t.table);
                sql.push_str(" SET ");
                sql.push_str(flag);
                sql.push_str(" = ");
                sql.param();
                sql.push_str(" WHERE ");
                sql.push_str(&t.columns[0]);
                sql.push_str(" = ");
                sql.param();
                params.push(Value::U64(first.id));
                params.push(Value::U64(first.id));
                changes.push(change(first, ChangeKind::Deleted { fake: true }));
            }
        }
        conn.execute(&sql.finish(), params).await?;
        Ok(used)
    }

    /// Creates the applied-entries table of `pool` once.
    async fn ensure_table(&self, pool: &SqlPool) -> Result<()> {
        if self
            .ready
            .lock()
            .map(|r| r.contains(pool.name()))
            .unwrap_or(false)
        {
            return Ok(());
        }
        pool.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {} (entry_id VARCHAR(191) NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)",
                pool.quote(APPLIED_TABLE)
            ),
            Vec::new(),
        )
        .await?;
        if let Ok(mut r) = self.ready.lock() {
            r.insert(pool.name().to_string());
        }
        self.prune(pool).await;
        Ok(())
    }

    /// Deletes the applied-entry records of `pool` older than the retention (best
    /// effort: logged, never fatal). Runs once per pool and applier.
    async fn prune(&self, pool: &SqlPool) {
        let Some(cut) = chrono::Duration::from_std(self.retention)
            .ok()
            .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
        else {
            return;
        };
        let mut sql = pool.kind().writer(64);
        sql.push_str("DELETE FROM ");
        sql.push_str(&pool.quote(APPLIED_TABLE));
        sql.push_str(" WHERE applied_at < ");
        sql.param();
        if let Err(e) = pool
            .execute(&sql.finish(), vec![Value::I64(cut.timestamp_millis())])
            .await
        {
            tracing::warn!(target: "beeorm::lazy", pool = pool.name(), error = %e, "lazy applier: pruning applied entries failed");
        }
    }

    /// Acknowledges and deletes applied entries (the lazy stream has one group, so
    /// an acknowledged entry is done: the stream never grows without bound).
    async fn ack(&self, entries: &[Entry]) -> Result<()> {
        let mut pipe = self.lazy.client.pipeline();
        pipe.atomic();
        let mut xack = ::redis::cmd("XACK");
        xack.arg(&self.lazy.stream).arg(LAZY_GROUP);
        let mut xdel = ::redis::cmd("XDEL");
        xdel.arg(&self.lazy.stream);
        for e in entries {
            xack.arg(&e.id);
            xdel.arg(&e.id);
        }
        pipe.cmd(xack).ignore().cmd(xdel).ignore();
        pipe.exec().await
    }

    /// Moves one entry to the dead-letter stream (with its error) and acknowledges
    /// it, in one atomic pipeline.
    async fn dead_letter(&self, e: &Entry, reason: &str) -> Result<()> {
        tracing::error!(target: "beeorm::lazy", entry = %e.id, error = %reason, "lazy write dead-lettered");
        let mut pipe = self.lazy.client.pipeline();
        pipe.atomic();
        let mut xadd = ::redis::cmd("XADD");
        xadd.arg(&self.lazy.dead)
            .arg("*")
            .arg(KIND)
            .arg(LAZY_TAG)
            .arg(BODY)
            .arg(e.body.as_slice())
            .arg("error")
            .arg(reason)
            .arg("source_id")
            .arg(&e.id);
        let mut xack = ::redis::cmd("XACK");
        xack.arg(&self.lazy.stream).arg(LAZY_GROUP).arg(&e.id);
        let mut xdel = ::redis::cmd("XDEL");
        xdel.arg(&self.lazy.stream).arg(&e.id);
        pipe.cmd(xadd)
            .ignore()
            .cmd(xack)
            .ignore()
            .cmd(xdel)
            .ignore();
        pipe.exec().await
    }
}

/// The applied-entries key of entry `id`: namespaced, so two applications sharing a
/// database never skip each other's writes.
fn dedup_key(namespace: &str, id: &str) -> String {
    format!("{namespace}/{id}")
}

fn field(id: &StreamId, name: &str) -> Option<Vec<u8>> {
    id.map
        .get(name)
        .and_then(|v| ::redis::from_redis_value_ref::<Vec<u8>>(v).ok())
}

fn entry(id: StreamId) -> Entry {
    let body = field(&id, BODY).unwrap_or_default();
    let write = match field(&id, KIND) {
        Some(t) if t == LAZY_TAG => LazyWrite::decode(&id.id, &body),
        _ => Err("not a lazy write (no `_t = lazy` field)".to_string()),
    };
    Entry {
        id: id.id,
        body,
        write,
    }
}

/// The dead-letter stream of the lazy flush ([`Engine::lazy_dead_letters`]): list,
/// retry, drop. Nothing in it is ever removed but by [`LazyDeadLetters::drop`] (or
/// [`LazyDeadLetters::retry`], which moves it back).
#[derive(Debug, Clone)]
pub struct LazyDeadLetters {
    lazy: Arc<LazyConfig>,
}

/// One write the applier gave up on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its entry ID in the dead-letter stream (for retry / drop).
    pub id: String,
    /// Its entry ID in the lazy stream.
    pub source_id: String,
    /// Why it failed (the last error).
    pub error: String,
    /// The entity's type name (`None` when the entry could not be decoded).
    pub entity: Option<String>,
    /// The operation: `insert`, `update`, `delete` or `fake_delete`.
    pub op: Option<&'static str>,
    /// The row's ID.
    pub entity_id: Option<u64>,
}

impl LazyDeadLetters {
    /// How many dead letters there are.
    pub async fn len(&self) -> Result<u64> {
        let mut cmd = ::redis::cmd("XLEN");
        cmd.arg(&self.lazy.dead);
        self.lazy.client.query(&cmd).await
    }

    /// Whether there is none.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// The oldest `count` dead letters.
    pub async fn list(&self, count: usize) -> Result<Vec<DeadLetter>> {
        let mut cmd = ::redis::cmd("XRANGE");
        cmd.arg(&self.lazy.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count.max(1));
        let reply: StreamRangeReply = self.lazy.client.query(&cmd).await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|id| {
                let text = |n: &str| {
                    field(&id, n)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                };
                let write = field(&id, BODY).and_then(|b| LazyWrite::decode(&id.id, &b).ok());
                DeadLetter {
                    source_id: text("source_id"),
                    error: text("error"),
                    entity: write.as_ref().map(|w| w.entity.clone()),
                    op: write.as_ref().map(|w| match w.op {
                        LazyOp::Insert => "insert",
                        LazyOp::Update => "update",
                        LazyOp::Delete => "delete",
                        LazyOp::FakeDelete => "fake_delete",
                    }),
                    entity_id: write.as_ref().map(|w| w.id),
                    id: id.id,
                }
            })
            .collect())
    }

    /// Puts dead letter `id` back at the end of the lazy stream (one atomic
    /// pipeline): the next applier run tries it again. `false` when there is no such
    /// dead letter.
    pub async fn retry(&self, id: &str) -> Result<bool> {
        let mut cmd = ::redis::cmd("XRANGE");
        cmd.arg(&self.lazy.dead).arg(id).arg(id);
        let reply: StreamRangeReply = self.lazy.client.query(&cmd).await?;
        let Some(found) = reply.ids.into_iter().next() else {
            return Ok(false);
        };
        let body = field(&found, BODY).unwrap_or_default();
        let mut pipe = self.lazy.client.pipeline();
        pipe.atomic();
        let mut xadd = ::redis::cmd("XADD");
        xadd.arg(&self.lazy.stream)
            .arg("*")
            .arg(KIND)
            .arg(LAZY_TAG)
            .arg(BODY)
            .arg(body);
        let mut xdel = ::redis::cmd("XDEL");
        xdel.arg(&self.lazy.dead).arg(id);
        pipe.cmd(xadd).ignore().cmd(xdel).ignore();
        pipe.exec().await?;
        Ok(true)
    }

    /// Deletes dead letter `id` for good. `false` when there is no such dead letter.
    pub async fn drop(&self, id: &str) -> Result<bool> {
        let mut cmd = ::redis::cmd("XDEL");
        cmd.arg(&self.lazy.dead).arg(id);
        let n: u64 = self.lazy.client.query(&cmd).await?;
        Ok(n > 0)
    }
}
