//! The end of a unit of work: THE one commit function ([`Flusher::commit`]) and THE one
//! after-commit step ([`after_commit`]). Every write path ends here — `flush`,
//! `flush_in_transaction`, `flush_in` (whose COMMIT is [`Transaction::commit`]),
//! flushes that insert new referenced entities, `flush_with_lock`, and each pool of a
//! multi-pool flush — so "these rows changed and are durable now" is known in exactly
//! one place, the place caches and events plug into.
//!
//! For one pool's statements, once they ran: build the change set (only when an
//! observer is registered), call the observers' in-transaction step on the same
//! connection, COMMIT (a transaction this flush opened), then apply the new state to
//! the entities (IDs, snapshots) — or, for `flush_in`, tie that state to the caller's
//! transaction (`TxOutcome`) and leave the COMMIT and the after-commit step to
//! [`Transaction::commit`]. Any error before the COMMIT leaves the entities as they
//! were. After every pool: the after-commit step runs the lifecycle after-hooks (the
//! registered ones and the entities' own) and then the observers' `after_commit`.

use super::api::Flusher;
use super::item::{Flushable, Op};
use crate::db::Transaction;
use crate::hooks::{BoxFuture, HookEvent};
use crate::observe::{Change, ChangeKind, ChangeSet, ColumnChange, ObserverTx};
use crate::sql::pool::{Conn, SqlPool};
use crate::{Error, Result, ValidatedRegistry, Value};

/// Events queued on a flusher ([`Flusher::publish`]), sent in the after-commit step.
#[cfg(feature = "redis")]
pub(crate) type Queued = Vec<crate::events::Outgoing>;
/// Events queued on a flusher: none without the `redis` feature.
#[cfg(not(feature = "redis"))]
pub(crate) type Queued = Vec<std::convert::Infallible>;

/// An after-hook that runs, after a `flush_in` transaction committed, on a copy of
/// the entity as it was written.
pub(crate) type DetachedHook = Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>;

/// What to do to one entity once its row is durable.
pub(super) enum Effect {
    /// A new row with a server-given ID.
    Inserted { item: usize, id: u64 },
    /// The row holds the entity as it is (insert with its own ID, update).
    Saved { item: usize },
    /// The row was deleted (`fake`: flagged).
    Deleted { item: usize, fake: bool },
    /// An upsert ran; the row is to be read back (replaced by `Reloaded`).
    Upserted {
        item: usize,
        id: Option<u64>,
        inserted: Option<bool>,
    },
    /// An upsert's row as the database holds it.
    Reloaded {
        item: usize,
        row: Option<Vec<Value>>,
        inserted: Option<bool>,
    },
}

impl Effect {
    fn item(&self) -> usize {
        match self {
            Effect::Inserted { item, .. }
            | Effect::Saved { item }
            | Effect::Deleted { item, .. }
            | Effect::Upserted { item, .. }
            | Effect::Reloaded { item, .. } => *item,
        }
    }
}

/// The connection one pool's unit of work runs on.
pub(super) enum UnitConn<'t> {
    /// A transaction this flush opened: committed by [`Flusher::commit`].
    Own(Conn),
    /// One statement without a transaction (autocommit): nothing to commit.
    Bare(Conn),
    /// The caller's transaction (`flush_in`): committed by [`Transaction::commit`].
    External(&'t mut Transaction),
}

impl UnitConn<'_> {
    pub(super) fn conn(&mut self) -> &mut Conn {
        match self {
            UnitConn::Own(c) | UnitConn::Bare(c) => c,
            UnitConn::External(tx) => &mut tx.conn,
        }
    }
}

/// What a flush committed so far: its pools, in commit order, and (with observers)
/// their changes.
#[derive(Default)]
pub(super) struct Committed {
    pub(super) pools: Vec<String>,
    pub(super) changes: Option<ChangeSet>,
}

/// What a transaction runs after its COMMIT: the after-hooks and the change set of
/// everything flushed in it with `flush_in`. Dropped unrun when it does not commit.
#[derive(Default)]
pub(crate) struct TxPending {
    registry: Option<ValidatedRegistry>,
    /// Request caches of the engines that flushed in the transaction: emptied at
    /// its COMMIT.
    requests: Vec<std::sync::Arc<crate::cache::request::RequestCache>>,
    hooks: Vec<DetachedHook>,
    changes: Option<ChangeSet>,
    /// Events queued on the flushers that flushed in the transaction.
    events: Queued,
}

impl TxPending {
    /// Before the transaction's COMMIT: locks the cached rows it changed (see
    /// `cache/write.rs`).
    pub(crate) fn lock_caches(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<crate::cache::write::Locked>>> + Send + '_
    {
        // Only the `Sync` parts are held across the await (the hooks are not `Sync`).
        let (registry, changes) = (self.registry.as_ref(), self.changes.as_ref());
        async move {
            match (registry, changes) {
                (Some(registry), Some(changes)) => {
                    crate::cache::write::lock(registry, changes).await
                }
                _ => Ok(None),
            }
        }
    }

    /// The after-commit step of the transaction (see [`after_commit`]).
    pub(crate) async fn run(self) -> Result<()> {
        for r in &self.requests {
            r.clear();
        }
        match self.registry {
            Some(registry) => {
                after_commit(
                    &registry,
                    self.changes.as_ref(),
                    AfterHooks::Detached(self.hooks),
                    self.events,
                )
                .await
            }
            None => Ok(()),
        }
    }
}

/// The after-hooks of one after-commit step.
pub(super) enum AfterHooks<'r> {
    /// On the tracked entities themselves (a flush that committed): the first error
    /// stops the hooks.
    Live(Vec<(&'r mut dyn Flushable, HookEvent)>),
    /// On copies, after a `flush_in` transaction committed: every hook runs, the
    /// first error is kept.
    Detached(Vec<DetachedHook>),
}

/// THE after-commit step: the events first — the dirty events of `changes` and the
/// `events` queued on the flusher, in one pipeline per Redis pool
/// (`events/dirty.rs`) — then the after-hooks, then every observer's `after_commit`
/// with the committed `changes` (when observers are registered). Returns the first
/// error (a failed publish first: [`Error::CommittedButNotPublished`]); the hooks
/// and observers run even after the publish failed, the observers even after a hook
/// failed. The rows are committed whatever this returns.
pub(super) async fn after_commit(
    registry: &ValidatedRegistry,
    changes: Option<&ChangeSet>,
    hooks: AfterHooks<'_>,
    events: Queued,
) -> Result<()> {
    #[cfg(feature = "redis")]
    let mut first: Result<()> = crate::events::dirty::publish(registry, changes, events).await;
    #[cfg(not(feature = "redis"))]
    let mut first: Result<()> = {
        drop(events);
        Ok(())
    };
    // The search indexes (`search/sync.rs`), from a task of their own.
    if let Err(e) = crate::search::sync::index_changes(registry, changes).await {
        if first.is_ok() {
            first = Err(e);
        }
    }
    match hooks {
        AfterHooks::Live(items) => {
            for (item, event) in items {
                if let Err(e) = item.run_hooks(registry.hooks(), event).await {
                    if first.is_ok() {
                        first = Err(e);
                    }
                    break;
                }
            }
        }
        AfterHooks::Detached(hooks) => {
            for hook in hooks {
                if let Err(e) = hook().await {
                    if first.is_ok() {
                        first = Err(e);
                    }
                }
            }
        }
    }
    if let Some(changes) = changes.filter(|c| !c.is_empty()) {
        for observer in registry.hooks().observers() {
            if let Err(e) = observer.after_commit(changes).await {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
    }
    first
}

impl<'a> Flusher<'a> {
    /// THE commit function: ends one pool's unit of work whose statements ran on
    /// `unit` (see the module docs). `nested` holds the changes of new referenced
    /// entities written earlier in the same transaction. On success the pool and its
    /// changes are added to `committed` (for `flush_in`: to the transaction's pending
    /// after-commit step).
    pub(super) async fn commit(
        &mut self,
        pool: &SqlPool,
        mut unit: UnitConn<'_>,
        effects: Vec<Effect>,
        nested: Option<ChangeSet>,
        committed: &mut Committed,
    ) -> Result<()> {
        let registry = self.engine.registry();
        let observers = registry.hooks().observers();
        let logged = nested.is_some() || self.logs_any(&effects);
        let changes = if !registry.needs_changes() && !logged {
            None
        } else {
            let mut changes = nested.unwrap_or_default();
            changes.extend(self.change_set(pool, &effects)?);
            Some(changes)
        };
        // The change log: in the transaction, before COMMIT (see `crate::change_log`).
        if let Some(changes) = changes
            .as_ref()
            .filter(|c| crate::change_log::any_logged(registry, c))
        {
            let meta = self.merged_log_meta();
            // On error an own transaction is dropped, which rolls it back.
            crate::change_log::write(registry, unit.conn(), pool.kind(), changes, meta.as_ref())
                .await?;
        }
        if let Some(changes) = changes.as_ref().filter(|c| !c.is_empty()) {
            let mut tx = ObserverTx {
                conn: unit.conn(),
                pool: pool.name(),
                kind: pool.kind(),
            };
            for observer in observers.iter().filter(|o| o.needs_transaction()) {
                // On error an own transaction is dropped, which rolls it back.
                observer.in_transaction(changes, &mut tx).await?;
            }
        }
        match unit {
            UnitConn::Own(conn) => {
                // Cached rows are locked across the COMMIT; on an error the guard
                // unlocks them (the old rows are read again).
                let locked = match &changes {
                    Some(c) => crate::cache::write::lock(registry, c).await?,
                    None => None,
                };
                conn.commit().await?;
                if let Some(locked) = locked {
                    locked.unlock().await;
                }
                self.engine.forget_requested();
                self.apply(effects)?;
            }
            UnitConn::Bare(_) => {
                self.engine.forget_requested();
                self.apply(effects)?;
            }
            UnitConn::External(tx) => {
                self.engine.forget_requested();
                if let Some(r) = self.engine.request_handle() {
                    if !tx
                        .pending
                        .requests
                        .iter()
                        .any(|x| std::sync::Arc::ptr_eq(x, &r))
                    {
                        tx.pending.requests.push(r);
                    }
                }
                // The new state holds only if the caller's transaction commits.
                for item in self.items.iter_mut() {
                    item.remember(&tx.outcome.0);
                }
                self.apply(effects)?;
                if let Some(changes) = changes {
                    let pending = &mut tx.pending;
                    pending.registry.get_or_insert_with(|| registry.clone());
                    match &mut pending.changes {
                        Some(all) => all.extend(changes),
                        None => pending.changes = Some(changes),
                    }
                }
                return Ok(());
            }
        }
        self.engine.note_commit(pool).await;
        committed.pools.push(pool.name().to_string());
        if let Some(changes) = changes {
            match &mut committed.changes {
                Some(all) => all.extend(changes),
                None => committed.changes = Some(changes),
            }
        }
        Ok(())
    }

    /// The after-commit step of a flush: now for a flush that committed, at the
    /// COMMIT of the caller's transaction for `flush_in` (never when it does not
    /// commit). `after` holds the after-hook event of each hooked entity, by position.
    pub(super) async fn finish(
        &mut self,
        external: Option<&mut Transaction>,
        changes: Option<ChangeSet>,
        after: Vec<(usize, HookEvent)>,
    ) -> Result<()> {
        let registry = self.engine.registry();
        let events = std::mem::take(&mut self.events);
        match external {
            Some(tx) => {
                if !events.is_empty() {
                    let pending = &mut tx.pending;
                    pending.registry.get_or_insert_with(|| registry.clone());
                    pending.events.extend(events);
                }
                if !after.is_empty() {
                    let pending = &mut tx.pending;
                    pending.registry.get_or_insert_with(|| registry.clone());
                    for (pos, event) in after {
                        pending
                            .hooks
                            .push(self.items[pos].after_commit_hook(registry.clone(), event));
                    }
                }
                Ok(())
            }
            None => {
                let hooks = self.live_hooks(after);
                after_commit(registry, changes.as_ref(), hooks, events).await
            }
        }
    }

    /// The tracked entities at the positions of `after` (ascending), with their events.
    fn live_hooks(&mut self, after: Vec<(usize, HookEvent)>) -> AfterHooks<'_> {
        if after.is_empty() {
            return AfterHooks::Live(Vec::new());
        }
        let mut out = Vec::with_capacity(after.len());
        let mut wanted = after.into_iter().peekable();
        for (pos, item) in self.items.iter_mut().enumerate() {
            // One event per entity.
            if let Some((_, event)) = wanted.next_if(|(p, _)| *p == pos) {
                out.push((&mut **item as &mut dyn Flushable, event));
            }
        }
        AfterHooks::Live(out)
    }

    /// Applies what the database now holds to the entities.
    pub(super) fn apply(&mut self, effects: Vec<Effect>) -> Result<()> {
        for effect in effects {
            match effect {
                Effect::Inserted { item, id } => {
                    self.items[item].set_id(id)?;
                    self.items[item].saved();
                }
                Effect::Saved { item } => self.items[item].saved(),
                Effect::Deleted { item, fake: false } => self.items[item].deleted(),
                Effect::Deleted { item, fake: true } => {
                    let it = &mut self.items[item];
                    let schema = self
                        .engine
                        .registry()
                        .table_schema_by_type(it.entity_type())
                        .ok_or_else(|| Error::UnknownEntity(it.entity_name().to_string()))?;
                    match schema
                        .fake_delete_column()
                        .and_then(|i| schema.columns().get(i))
                    {
                        Some(column) => it.fake_deleted(&column.field)?,
                        None => it.deleted(),
                    }
                }
                Effect::Reloaded {
                    item,
                    row: Some(row),
                    ..
                } => self.items[item].reload(row)?,
                Effect::Reloaded {
                    item, row: None, ..
                }
                | Effect::Upserted { item, .. } => {
                    return Err(Error::Flush {
                        entity: self.items[item].entity_name().to_string(),
                        reason: "the upserted row could not be read back".into(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Whether any entity of `effects` keeps a change log.
    fn logs_any(&self, effects: &[Effect]) -> bool {
        let registry = self.engine.registry();
        // Asked once per run of one entity type.
        let mut last: Option<std::any::TypeId> = None;
        effects.iter().any(|e| {
            self.items.get(e.item()).is_some_and(|it| {
                let ty = it.entity_type();
                if last == Some(ty) {
                    return false;
                }
                last = Some(ty);
                registry
                    .table_schema_by_type(ty)
                    .is_some_and(crate::schema::TableSchema::is_logged)
            })
        })
    }

    /// The change-log metadata of this flush: the engine's, then the flusher's over it.
    pub(super) fn merged_log_meta(&self) -> Option<crate::LogMeta> {
        match (&self.engine.log_meta, &self.log_meta) {
            (None, None) => None,
            (Some(engine), None) => Some((**engine).clone()),
            (None, Some(own)) => Some(own.clone()),
            (Some(engine), Some(own)) => {
                let mut meta = (**engine).clone();
                meta.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
                Some(meta)
            }
        }
    }

    /// The change set of one pool's `effects`, before they are applied (the entities
    /// still hold their loaded values: the "old" side of updates). One change per
    /// entity, in the order the statements wrote them.
    pub(super) fn change_set(&self, pool: &SqlPool, effects: &[Effect]) -> Result<ChangeSet> {
        let registry = self.engine.registry();
        let mut seen = vec![false; self.items.len()];
        let mut out = Vec::with_capacity(effects.len());
        for effect in effects {
            let pos = effect.item();
            if std::mem::replace(&mut seen[pos], true) {
                continue;
            }
            let it = &*self.items[pos];
            let schema = registry
                .table_schema_by_type(it.entity_type())
                .ok_or_else(|| Error::UnknownEntity(it.entity_name().to_string()))?;
            let name = |i: usize| {
                schema
                    .columns()
                    .get(i + 1)
                    .map_or_else(String::new, |c| c.name.clone())
            };
            let named = |values: Vec<Value>| -> Vec<(String, Value)> {
                values
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (name(i), v))
                    .collect()
            };
            let row_values = || {
                let mut values = Vec::new();
                it.write_values(&mut values);
                named(values)
            };
            // The whole row before an update or delete, for the change log and the
            // search index: the snapshot taken at the first change, else (a clean entity) its values.
            let row_before = || {
                if !schema.is_logged() && schema.search_index().is_none() {
                    return None;
                }
                Some(match it.loaded_values() {
                    Some(v) => named(v.to_vec()),
                    None => row_values(),
                })
            };
            let mut old = None;
            let (id, kind) = match (effect, it.op()) {
                (Effect::Inserted { id, .. }, _) => (
                    *id,
                    ChangeKind::Inserted {
                        values: row_values(),
                    },
                ),
                (Effect::Saved { .. }, Op::Insert { id }) => (
                    id,
                    ChangeKind::Inserted {
                        values: row_values(),
                    },
                ),
                (Effect::Saved { .. }, Op::Update { id, changed }) => {
                    let before = it.loaded_values().unwrap_or_default();
                    let columns = changed
                        .into_iter()
                        .map(|(i, new)| {
                            let old = before.get(i).cloned().unwrap_or(Value::Null);
                            ColumnChange::new(name(i), old, new)
                        })
                        .collect();
                    old = row_before();
                    (id, ChangeKind::Updated { columns })
                }
                (Effect::Deleted { fake, .. }, Op::Delete { id, .. }) => {
                    old = row_before();
                    (id, ChangeKind::Deleted { fake: *fake })
                }
                (
                    Effect::Reloaded {
                        row: Some(row),
                        inserted,
                        ..
                    },
                    _,
                ) => {
                    let id = row
                        .first()
                        .and_then(Value::as_i64)
                        .and_then(|i| u64::try_from(i).ok())
                        .unwrap_or(0);
                    let values = named(row.iter().skip(1).cloned().collect());
                    (
                        id,
                        ChangeKind::Upserted {
                            values,
                            inserted: *inserted,
                        },
                    )
                }
                _ => continue,
            };
            out.push(Change {
                entity_type: it.entity_type(),
                entity_name: it.entity_name(),
                table: schema.table_name().to_string(),
                pool: pool.name().to_string(),
                id,
                kind,
                before: old,
            });
        }
        Ok(ChangeSet::from_changes(out))
    }
}
