//! The write path (C1–C4, C6, C7): [`Flusher`] collects tracked entities and writes
//! them in as few statements as the dialect allows.
//!
//! One flush, per pool: one multi-row INSERT per table (chunked under the server's
//! parameter limit), one UPDATE per changed entity setting only the changed columns,
//! one DELETE (or fake-delete UPDATE) per table, upserts one by one. When a pool gets
//! more than one statement, or a transaction is asked for, they run in one transaction:
//! a failure leaves no partial rows. Entity state (IDs, snapshots) changes only after
//! the COMMIT: for `flush_in`, the caller's transaction shares its outcome with the
//! entities (`crate::tracked::TxOutcome`), which go back to their earlier state unless it
//! commits. Statements are ordered by the foreign keys between tables (`fk_ranks`).
//! Every value is checked against its column before anything is sent
//! (`schema::limits`). Later stages (caches, events) plug in here.

mod lock;

use std::any::TypeId;
use std::collections::BTreeMap;

use crate::tracked::DeleteMode;
pub use crate::tracked::Tracked;
pub(crate) use crate::tracked::TxOutcome;

use crate::hooks::{BoxFuture, HookEvent, Hooks};
use crate::schema::{fake_delete, limits, TableSchema};
use crate::sql::pool::{Conn, SqlPool};
use crate::sql::Transaction;
use crate::{Engine, Entity, Error, Result, Value};

/// Most parameters one statement gets (SQLite allows 32,766, MySQL 65,535).
const MAX_PARAMS: usize = 30_000;

/// One entity's operation: its position in the flusher, the operation, its table.
type Planned<'s> = (usize, Op, &'s TableSchema);
/// Rows to insert into one table: (position, explicit ID or 0).
type InsertRows<'s> = (&'s TableSchema, Vec<(usize, u64)>);
/// Rows to delete from one table: (position, ID).
type DeleteRows<'s> = (&'s TableSchema, Vec<(usize, u64)>);

/// What one tracked entity needs written.
pub(crate) enum Op {
    Nothing,
    /// `id` 0: the server numbers the row. The values are written straight into the
    /// statement's parameters when it is planned ([`Flushable::write_values`]).
    Insert {
        id: u64,
    },
    Upsert {
        id: u64,
        values: Vec<Value>,
        set: Vec<(String, Value)>,
    },
    /// Changed columns by position among the non-`id` columns.
    Update {
        id: u64,
        changed: Vec<(usize, Value)>,
    },
    Delete {
        id: u64,
        mode: DeleteMode,
    },
}

/// The type-erased side of [`Tracked`] the flusher works with.
pub(crate) trait Flushable: Send + Sync {
    fn entity_type(&self) -> TypeId;
    fn entity_name(&self) -> &'static str;
    fn op(&self) -> Op;
    fn set_id(&mut self, id: u64) -> Result<()>;
    /// Appends the values of every stored column but `id` (an insert's row).
    fn write_values(&self, out: &mut Vec<Value>);
    fn saved(&mut self);
    fn deleted(&mut self);
    fn reload(&mut self, row: Vec<Value>) -> Result<()>;
    /// The before-hook event of what the next flush does to this entity, if anything.
    fn pending_event(&self) -> Option<HookEvent>;
    fn has_own_hooks(&self) -> bool;
    /// The update list of a pending upsert, to normalise its text.
    fn upsert_set(&mut self) -> Option<&mut [(String, Value)]>;
    fn run_hooks<'a>(&'a mut self, hooks: &'a Hooks, event: HookEvent)
        -> BoxFuture<'a, Result<()>>;
    /// Resolves the outcome of an earlier `flush_in` transaction (see `Tracked`).
    fn settle(&mut self);
    /// Before a `flush_in`: the state to restore unless `outcome` commits.
    fn remember(&mut self, outcome: &std::sync::Arc<TxOutcome>);
    /// The after-hook `event` for after the COMMIT of a `flush_in` transaction: runs
    /// on a copy of the entity as it was written.
    fn after_commit_hook(
        &self,
        registry: crate::ValidatedRegistry,
        event: HookEvent,
    ) -> crate::sql::db::AfterCommit;
    /// The new entities its references hold (`Ref::new`), to insert first.
    fn new_refs<'s>(&'s mut self, out: &mut Vec<&'s mut dyn Flushable>);
    /// After a committed flush: inserted referenced entities become loaded ones.
    fn commit_refs(&mut self);
    /// After a failed flush: referenced entities inserted by it are new again.
    fn rollback_refs(&mut self);
}

impl<E: Entity> Flushable for Tracked<E> {
    fn entity_type(&self) -> TypeId {
        TypeId::of::<E>()
    }

    fn entity_name(&self) -> &'static str {
        E::TYPE_NAME
    }

    fn op(&self) -> Op {
        let id = Entity::id(self.entity());
        if let Some(mode) = self.delete {
            return Op::Delete { id, mode };
        }
        if self.is_new() {
            return match &self.upsert {
                Some(set) => {
                    let mut values = Vec::with_capacity(E::COLUMN_COUNT);
                    self.push_values(&mut values);
                    Op::Upsert {
                        id,
                        values,
                        set: set.to_vec(),
                    }
                }
                None => Op::Insert { id },
            };
        }
        let changed = self.changes();
        if changed.is_empty() {
            return Op::Nothing;
        }
        Op::Update { id, changed }
    }

    fn write_values(&self, out: &mut Vec<Value>) {
        self.push_values(out);
    }

    fn set_id(&mut self, id: u64) -> Result<()> {
        // The row is saved right after: no snapshot to take for this change.
        self.untracked_mut()
            .set_id(id)
            .map_err(|reason| Error::Flush {
                entity: E::TYPE_NAME.to_string(),
                reason,
            })
    }

    fn saved(&mut self) {
        self.mark_saved();
    }

    fn deleted(&mut self) {
        self.mark_deleted();
    }

    fn pending_event(&self) -> Option<HookEvent> {
        if self.delete.is_some() {
            Some(HookEvent::BeforeDelete)
        } else if self.is_new() {
            Some(HookEvent::BeforeInsert)
        } else if self.is_dirty() {
            Some(HookEvent::BeforeUpdate)
        } else {
            None
        }
    }

    fn has_own_hooks(&self) -> bool {
        E::HAS_OWN_HOOKS
    }

    fn settle(&mut self) {
        Tracked::settle(self);
    }

    fn remember(&mut self, outcome: &std::sync::Arc<TxOutcome>) {
        let upsert = self.upsert.is_some();
        Tracked::remember(self, outcome, upsert);
    }

    fn after_commit_hook(
        &self,
        registry: crate::ValidatedRegistry,
        event: HookEvent,
    ) -> crate::sql::db::AfterCommit {
        let mut row = self.row();
        Box::new(move || {
            Box::pin(async move {
                let mut entity = crate::load::decode::<E>(&mut row)?;
                if E::HAS_OWN_HOOKS {
                    entity.run_own_hook(event).await?;
                }
                registry
                    .hooks()
                    .run(event, TypeId::of::<E>(), &mut entity)
                    .await
            })
        })
    }

    fn upsert_set(&mut self) -> Option<&mut [(String, Value)]> {
        if self.is_new() {
            self.upsert.as_deref_mut()
        } else {
            None
        }
    }

    fn run_hooks<'a>(
        &'a mut self,
        hooks: &'a Hooks,
        event: HookEvent,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let entity: &mut E = std::ops::DerefMut::deref_mut(self);
            if E::HAS_OWN_HOOKS {
                entity.run_own_hook(event).await?;
            }
            hooks.run(event, TypeId::of::<E>(), entity).await
        })
    }

    fn new_refs<'s>(&'s mut self, out: &mut Vec<&'s mut dyn Flushable>) {
        self.untracked_mut().visit_refs(&mut |_, r| {
            if let Some(crate::reference::NewEntity(f)) = r.new_entity() {
                out.push(f);
            }
        });
    }

    fn commit_refs(&mut self) {
        std::ops::DerefMut::deref_mut(self).visit_refs(&mut |_, r| r.commit_new());
    }

    fn rollback_refs(&mut self) {
        std::ops::DerefMut::deref_mut(self).visit_refs(&mut |_, r| r.rollback_new());
    }

    fn reload(&mut self, mut row: Vec<Value>) -> Result<()> {
        let fresh = crate::load::decode::<E>(&mut row)?;
        self.replace_loaded(fresh);
        Ok(())
    }
}

/// A unit of work: track entities, then write them all with one [`Flusher::flush`].
///
/// ```no_run
/// # use beeorm::prelude::*;
/// # #[derive(Entity)] struct User { id: u64, name: String }
/// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
/// let mut ann = Tracked::new(User { id: 0, name: "Ann".into() });
/// let mut bob = Tracked::new(User { id: 0, name: "Bob".into() });
/// engine.flusher().track(&mut ann).track(&mut bob).flush().await?; // one INSERT, two rows
/// assert!(ann.id > 0 && bob.id == ann.id + 1);
/// # Ok(()) }
/// ```
pub struct Flusher<'a> {
    engine: &'a Engine,
    items: Vec<&'a mut dyn Flushable>,
}

impl std::fmt::Debug for Flusher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher")
            .field("tracked", &self.items.len())
            .finish()
    }
}

/// The statements for one pool, with the entities each one concerns.
struct Statement {
    sql: String,
    params: Vec<Value>,
    kind: StatementKind,
    /// Positions in `Flusher::items`.
    items: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StatementKind {
    /// Rows get consecutive IDs unless they carry their own.
    Insert {
        auto_ids: bool,
    },
    Upsert,
    Update,
    Delete,
}

impl<'a> Flusher<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Flusher {
            engine,
            items: Vec::new(),
        }
    }

    /// Adds an entity: a new one is inserted, a changed one updated, one marked with
    /// [`Tracked::mark_to_delete`] deleted. Unchanged entities cost nothing.
    pub fn track<E: Entity>(&mut self, entity: &'a mut Tracked<E>) -> &mut Self {
        self.items.push(entity);
        self
    }

    /// Marks `entity` for deletion and tracks it.
    pub fn delete<E: Entity>(&mut self, entity: &'a mut Tracked<E>) -> &mut Self {
        entity.mark_to_delete();
        self.track(entity)
    }

    /// Marks `entity` for a real DELETE (even with `fake_delete`) and tracks it.
    pub fn force_delete<E: Entity>(&mut self, entity: &'a mut Tracked<E>) -> &mut Self {
        entity.mark_to_force_delete();
        self.track(entity)
    }

    /// Whether any tracked entity needs writing.
    pub fn is_dirty(&self) -> bool {
        self.items.iter().any(|i| !matches!(i.op(), Op::Nothing))
    }

    /// Writes every tracked entity. Each pool's statements run in one transaction when
    /// there is more than one of them. The flusher is emptied on success.
    pub async fn flush(&mut self) -> Result<()> {
        self.run(false, None).await
    }

    /// Like [`Flusher::flush`], always inside a transaction (one per pool).
    pub async fn flush_in_transaction(&mut self) -> Result<()> {
        self.run(true, None).await
    }

    /// Writes every tracked entity inside a transaction the caller opened (all of them
    /// must live in that transaction's pool). Nothing is committed here: the entities'
    /// new state (IDs, saved values) holds once [`Transaction::commit`] succeeded, and
    /// their after-hooks run after that COMMIT; if the transaction is rolled back,
    /// dropped or its commit fails, the entities are as they were before this call.
    pub async fn flush_in(&mut self, tx: &mut Transaction) -> Result<()> {
        self.run(true, Some(tx)).await
    }

    async fn run(
        &mut self,
        in_transaction: bool,
        mut external: Option<&mut Transaction>,
    ) -> Result<()> {
        let registry = self.engine.registry().clone();
        // Entities of an earlier `flush_in` take that transaction's outcome first.
        for item in self.items.iter_mut() {
            item.settle();
        }
        // Before-hooks: they may change entities (what gets written) or veto the flush.
        let hooks = registry.hooks();
        let mut after: Vec<(usize, HookEvent)> = Vec::new();
        if !hooks.is_empty() || self.items.iter().any(|i| i.has_own_hooks()) {
            for (pos, item) in self.items.iter_mut().enumerate() {
                if let Some(event) = item.pending_event() {
                    item.run_hooks(hooks, event).await?;
                    after.push((pos, event.after()));
                }
            }
        }
        if hooks.persian_params {
            // The normaliser hook sees the entity; an upsert's update list is text
            // written too.
            for item in self.items.iter_mut() {
                let entity = item.entity_type();
                if let Some(set) = item.upsert_set() {
                    if let Some(schema) = registry.table_schema_by_type(entity) {
                        crate::hooks::normalize_written_values(schema, set);
                    }
                }
            }
        }
        let has_new_refs = self.items.iter_mut().any(|i| {
            let mut nested = Vec::new();
            i.new_refs(&mut nested);
            !nested.is_empty()
        });
        if has_new_refs {
            // New referenced entities (`Ref::new`) are inserted too: their hooks run
            // like those of tracked ones, deepest first.
            for item in self.items.iter_mut() {
                nested_hooks(&mut **item, hooks, false).await?;
            }
            if let Some(tx) = external.as_deref_mut() {
                for item in self.items.iter_mut() {
                    item.remember(&tx.outcome.0);
                }
            }
            self.run_with_new_refs(external.as_deref_mut(), hooks)
                .await?;
            return self.after_hooks(&registry, external, after).await;
        }
        let by_pool = self.ops_by_pool()?;
        if external.is_some() && by_pool.len() > 1 {
            return Err(Error::Query(
                "flush_in: the tracked entities live in more than one pool; a transaction has one"
                    .into(),
            ));
        }
        // Every pool is planned (and so every value checked against its column) before
        // any statement is sent.
        let mut planned = Vec::with_capacity(by_pool.len());
        for (_, (pool, ops)) in by_pool {
            let step = pool.id_step().await?;
            let statements = plan(&pool, ops, step, &self.items)?;
            planned.push((pool, step, statements));
        }
        for (pool, step, statements) in planned {
            if let Some(tx) = external.as_deref_mut() {
                let effects = self.execute(&pool, &mut tx.conn, statements, step).await?;
                // The new state holds only if the caller's transaction commits.
                for item in self.items.iter_mut() {
                    item.remember(&tx.outcome.0);
                }
                self.apply(effects)?;
            } else if in_transaction
                || statements.len() > 1
                || statements.iter().any(|st| self.may_overflow_id(&pool, st))
            {
                let mut tx = pool.begin().await?;
                // On error the transaction is dropped, which rolls it back.
                let effects = self.execute(&pool, &mut tx, statements, step).await?;
                tx.commit().await?;
                self.apply(effects)?;
            } else {
                let mut conn = pool.conn().await?;
                let effects = self.execute(&pool, &mut conn, statements, step).await?;
                self.apply(effects)?;
            }
        }
        self.after_hooks(&registry, external, after).await
    }

    /// After-hooks, once everything is written (inserted entities have their IDs):
    /// now when this flush committed, at the COMMIT of the caller's transaction for
    /// `flush_in` (never when it does not commit).
    async fn after_hooks(
        &mut self,
        registry: &crate::ValidatedRegistry,
        external: Option<&mut Transaction>,
        after: Vec<(usize, HookEvent)>,
    ) -> Result<()> {
        match external {
            Some(tx) => {
                for (pos, event) in after {
                    tx.after_commit
                        .push(self.items[pos].after_commit_hook(registry.clone(), event));
                }
            }
            None => {
                for (pos, event) in after {
                    self.items[pos].run_hooks(registry.hooks(), event).await?;
                }
            }
        }
        Ok(())
    }

    /// The operations of the tracked entities, per pool.
    fn ops_by_pool(&self) -> Result<BTreeMap<String, (SqlPool, Vec<Planned<'a>>)>> {
        let registry = self.engine.registry();
        let mut by_pool: BTreeMap<String, (SqlPool, Vec<Planned<'a>>)> = BTreeMap::new();
        for (pos, item) in self.items.iter().enumerate() {
            let op = item.op();
            if matches!(op, Op::Nothing) {
                continue;
            }
            let schema = registry
                .table_schema_by_type(item.entity_type())
                .ok_or_else(|| Error::UnknownEntity(item.entity_name().to_string()))?;
            if matches!(op, Op::Delete { id: 0, .. } | Op::Update { id: 0, .. }) {
                return Err(Error::Flush {
                    entity: item.entity_name().to_string(),
                    reason:
                        "it has no ID: a row that was never inserted cannot be updated or deleted"
                            .into(),
                });
            }
            match by_pool.get_mut(schema.pool_name()) {
                Some((_, ops)) => ops.push((pos, op, schema)),
                None => {
                    let pool = self.engine.sql_pool(schema.pool_name())?;
                    by_pool.insert(
                        schema.pool_name().to_string(),
                        (pool, vec![(pos, op, schema)]),
                    );
                }
            }
        }
        Ok(by_pool)
    }

    /// A flush whose entities reference new entities (`Ref::new`): everything runs in
    /// one transaction of one pool; referenced entities are inserted first (deepest
    /// first) so the referencing rows get their IDs.
    async fn run_with_new_refs(
        &mut self,
        external: Option<&mut Transaction>,
        hooks: &Hooks,
    ) -> Result<()> {
        let registry = self.engine.registry().clone();
        let mut pool_name: Option<String> = None;
        for item in &self.items {
            let schema = registry
                .table_schema_by_type(item.entity_type())
                .ok_or_else(|| Error::UnknownEntity(item.entity_name().to_string()))?;
            match &pool_name {
                None => pool_name = Some(schema.pool_name().to_string()),
                Some(p) if p != schema.pool_name() => {
                    return Err(Error::Flush {
                        entity: item.entity_name().to_string(),
                        reason:
                            "a flush that inserts new referenced entities must keep to one pool"
                                .into(),
                    })
                }
                Some(_) => {}
            }
        }
        let Some(pool_name) = pool_name else {
            return Ok(());
        };
        let pool = self.engine.sql_pool(&pool_name)?;
        let step = pool.id_step().await?;
        let result = match external {
            Some(tx) => self.write_with_refs(&pool, &mut tx.conn, step).await,
            None => match pool.begin().await {
                Err(e) => Err(e),
                Ok(mut tx) => match self.write_with_refs(&pool, &mut tx, step).await {
                    // On error the transaction is dropped, which rolls it back.
                    Ok(effects) => tx.commit().await.map(|_| effects),
                    Err(e) => Err(e),
                },
            },
        };
        let applied = result.and_then(|effects| self.apply(effects));
        match applied {
            Ok(()) => {
                // The rows are written: after-insert hooks of the new referenced
                // entities run while they are still reachable, then they become the
                // references' loaded entities whatever a hook says.
                let mut hooked = Ok(());
                for item in self.items.iter_mut() {
                    hooked = nested_hooks(&mut **item, hooks, true).await;
                    if hooked.is_err() {
                        break;
                    }
                }
                for item in self.items.iter_mut() {
                    item.commit_refs();
                }
                hooked
            }
            Err(e) => {
                for item in self.items.iter_mut() {
                    item.rollback_refs();
                }
                Err(e)
            }
        }
    }

    /// Inserts the new referenced entities (recursively, deepest first), then plans
    /// and runs this flusher's statements on `conn`.
    fn write_with_refs<'b>(
        &'b mut self,
        pool: &'b SqlPool,
        conn: &'b mut Conn,
        step: Option<u64>,
    ) -> BoxFuture<'b, Result<Vec<Effect>>> {
        Box::pin(async move {
            {
                let mut nested: Vec<&mut dyn Flushable> = Vec::new();
                for item in self.items.iter_mut() {
                    item.new_refs(&mut nested);
                }
                if !nested.is_empty() {
                    let mut sub = Flusher {
                        engine: self.engine,
                        items: nested,
                    };
                    let effects = sub.write_with_refs(pool, conn, step).await?;
                    sub.apply(effects)?;
                }
            }
            let mut by_pool = self.ops_by_pool()?;
            let ops = match by_pool.remove(pool.name()) {
                Some((_, ops)) => ops,
                None => Vec::new(),
            };
            if let Some(other) = by_pool.keys().next() {
                return Err(Error::Query(format!(
                    "a flush that inserts new referenced entities must keep to one pool; pool `{other}` is also used"
                )));
            }
            let statements = plan(pool, ops, step, &self.items)?;
            self.execute(pool, conn, statements, step).await
        })
    }

    /// Runs the statements; returns what to do to the entities once they are durable.
    async fn execute(
        &self,
        pool: &SqlPool,
        conn: &mut Conn,
        statements: Vec<Statement>,
        step: Option<u64>,
    ) -> Result<Vec<Effect>> {
        let mut effects = Vec::new();
        for mut st in statements {
            // The values move into the driver's parameters; nothing is copied.
            let params = std::mem::take(&mut st.params);
            let st = &st;
            let postgres = pool.kind() == crate::DialectKind::Postgres;
            if postgres && st.kind == (StatementKind::Insert { auto_ids: true }) {
                // `… RETURNING id`: the IDs in the order of the VALUES rows.
                let rows = conn
                    .query(&st.sql, params)
                    .await
                    .map_err(|e| self.name_index(e, st))?;
                if rows.len() != st.items.len() {
                    return Err(Error::Flush {
                        entity: self.items[st.items[0]].entity_name().to_string(),
                        reason: format!(
                            "{} rows inserted but {} IDs returned",
                            st.items.len(),
                            rows.len()
                        ),
                    });
                }
                for (row, &item) in rows.iter().zip(&st.items) {
                    let id = row
                        .first()
                        .and_then(Value::as_i64)
                        .and_then(|i| u64::try_from(i).ok())
                        .unwrap_or(0);
                    effects.push(Effect::Inserted { item, id });
                }
                continue;
            }
            if st.kind == StatementKind::Upsert && pool.kind() != crate::DialectKind::MySql {
                let rows = conn
                    .query(&st.sql, params)
                    .await
                    .map_err(|e| self.name_index(e, st))?;
                let mut id = returned_id(&rows);
                if id.is_none() && postgres {
                    id = self.pg_upsert_existing(pool, conn, st).await?;
                }
                effects.push(Effect::Upserted {
                    item: st.items[0],
                    id,
                });
                continue;
            }
            let result = conn
                .execute(&st.sql, params)
                .await
                .map_err(|e| self.name_index(e, st))?;
            match st.kind {
                StatementKind::Insert { auto_ids } => {
                    if auto_ids {
                        let step = step.unwrap_or(1);
                        let n = st.items.len() as u64;
                        let last_or_first = result.last_insert_id.ok_or_else(|| Error::Flush {
                            entity: self.items[st.items[0]].entity_name().to_string(),
                            reason: "the server returned no insert ID".into(),
                        })?;
                        // MySQL reports the first ID of a multi-row insert, SQLite the last.
                        let first = match pool.kind() {
                            crate::DialectKind::Sqlite => {
                                last_or_first.saturating_sub((n - 1) * step)
                            }
                            _ => last_or_first,
                        };
                        for (k, &item) in st.items.iter().enumerate() {
                            effects.push(Effect::Inserted {
                                item,
                                id: first + k as u64 * step,
                            });
                        }
                    } else {
                        if postgres {
                            // Explicit IDs do not move an identity sequence: move it past them.
                            let schema = self
                                .engine
                                .registry()
                                .table_schema_by_type(self.items[st.items[0]].entity_type())
                                .ok_or_else(|| {
                                    Error::UnknownEntity(
                                        self.items[st.items[0]].entity_name().to_string(),
                                    )
                                })?;
                            let t = schema.templates(|s| pool.quote(s));
                            let sql = format!(
                                "SELECT setval(pg_get_serial_sequence('{}', '{}'), (SELECT MAX({}) FROM {}))",
                                t.table.replace('\'', "''"),
                                schema.id_column_name().replace('\'', "''"),
                                t.columns[0],
                                t.table
                            );
                            conn.query(&sql, vec![]).await?;
                        }
                        effects.extend(st.items.iter().map(|&item| Effect::Saved { item }));
                    }
                }
                StatementKind::Upsert => {
                    let item = st.items[0];
                    let id = result.last_insert_id.filter(|i| *i > 0);
                    effects.push(Effect::Upserted { item, id });
                }
                StatementKind::Update => {
                    effects.extend(st.items.iter().map(|&item| Effect::Saved { item }))
                }
                StatementKind::Delete => {
                    effects.extend(st.items.iter().map(|&item| Effect::Deleted { item }))
                }
            }
        }
        // A server-given ID the entity's `id` cannot hold is an error here, before the
        // caller's COMMIT (with no transaction, `run` opened one for such tables).
        for effect in &effects {
            if let Effect::Inserted { item, id } | Effect::Upserted { item, id: Some(id) } = effect
            {
                self.check_id(pool, *item, *id)?;
            }
        }
        // Upserts: read the row back (it may have existed with other values).
        for effect in effects.iter_mut() {
            if let Effect::Upserted { item, id } = effect {
                let it = &self.items[*item];
                let schema = self
                    .engine
                    .registry()
                    .table_schema_by_type(it.entity_type())
                    .ok_or_else(|| Error::UnknownEntity(it.entity_name().to_string()))?;
                let t = schema.templates(|s| pool.quote(s));
                let id = match id {
                    Some(id) => *id,
                    None => {
                        return Err(Error::Flush {
                            entity: it.entity_name().to_string(),
                            reason: "the upsert returned no row ID".into(),
                        })
                    }
                };
                let sql = format!("{} WHERE {} = ?", t.select, t.columns[0]);
                let row = conn
                    .query(&sql, vec![Value::U64(id)])
                    .await?
                    .into_iter()
                    .next();
                *effect = Effect::Reloaded { item: *item, row };
            }
        }
        Ok(effects)
    }

    /// PostgreSQL, after an upsert's `INSERT … ON CONFLICT DO NOTHING` inserted
    /// nothing: updates (or, with nothing to set, finds) the row that clashed, looked
    /// up by each unique key in turn — the ID when it was given, then the unique
    /// indexes in name order — and returns its ID. Runs on the flush's connection,
    /// so inside its transaction when it has one; without one, the insert wrote
    /// nothing and the update is one statement, so no half-done upsert is left.
    async fn pg_upsert_existing(
        &self,
        pool: &SqlPool,
        conn: &mut Conn,
        st: &Statement,
    ) -> Result<Option<u64>> {
        let item = &self.items[st.items[0]];
        let Op::Upsert { id, values, set } = item.op() else {
            return Ok(None);
        };
        let schema = self
            .engine
            .registry()
            .table_schema_by_type(item.entity_type())
            .ok_or_else(|| Error::UnknownEntity(item.entity_name().to_string()))?;
        for (sql, params) in pg_upsert_lookups(pool, schema, id, &values, &set) {
            let rows = conn
                .query(&sql, params)
                .await
                .map_err(|e| self.name_index(e, st))?;
            if let Some(found) = returned_id(&rows) {
                return Ok(Some(found));
            }
        }
        Err(Error::Flush {
            entity: item.entity_name().to_string(),
            reason: "the upsert clashed with a row that none of its unique keys finds any more (deleted meanwhile?)".into(),
        })
    }

    /// Whether entity `item` can hold the server-given `id`.
    fn check_id(&self, pool: &SqlPool, item: usize, id: u64) -> Result<()> {
        let it = &self.items[item];
        let schema = self
            .engine
            .registry()
            .table_schema_by_type(it.entity_type())
            .ok_or_else(|| Error::UnknownEntity(it.entity_name().to_string()))?;
        limits::fit_column(schema, pool.kind(), 0, &mut Value::U64(id)).map_err(|_| Error::Flush {
            entity: it.entity_name().to_string(),
            reason: format!(
                "the database gave the new row ID {id}, which its `id` field cannot hold; \
                     nothing was committed (use a wider ID type)"
            ),
        })
    }

    /// Whether statement `st` lets the server number rows of a table whose `id` may
    /// not hold every ID the server can give (narrower than 63 bits): such statements
    /// run in a transaction so a too-large ID is refused before COMMIT.
    fn may_overflow_id(&self, pool: &SqlPool, st: &Statement) -> bool {
        if !matches!(
            st.kind,
            StatementKind::Insert { auto_ids: true } | StatementKind::Upsert
        ) {
            return false;
        }
        let Some(&item) = st.items.first() else {
            return false;
        };
        self.engine
            .registry()
            .table_schema_by_type(self.items[item].entity_type())
            .is_some_and(|schema| {
                limits::fit_column(schema, pool.kind(), 0, &mut Value::U64(i64::MAX as u64))
                    .is_err()
            })
    }

    fn apply(&mut self, effects: Vec<Effect>) -> Result<()> {
        for effect in effects {
            match effect {
                Effect::Inserted { item, id } => {
                    self.items[item].set_id(id)?;
                    self.items[item].saved();
                }
                Effect::Saved { item } => self.items[item].saved(),
                Effect::Deleted { item } => self.items[item].deleted(),
                Effect::Reloaded {
                    item,
                    row: Some(row),
                } => self.items[item].reload(row)?,
                Effect::Reloaded { item, row: None } | Effect::Upserted { item, .. } => {
                    return Err(Error::Flush {
                        entity: self.items[item].entity_name().to_string(),
                        reason: "the upserted row could not be read back".into(),
                    })
                }
            }
        }
        Ok(())
    }

    /// SQLite names the columns of a broken unique index; give the index's name.
    fn name_index(&self, e: Error, st: &Statement) -> Error {
        match e {
            Error::DuplicatedKey {
                pool,
                index,
                source,
            } if index.contains('.') => {
                let item = &self.items[st.items[0]];
                let columns: Vec<&str> = index
                    .split(", ")
                    .filter_map(|c| c.split_once('.').map(|(_, c)| c))
                    .collect();
                let name = self
                    .engine
                    .registry()
                    .table_schema_by_type(item.entity_type())
                    .and_then(|s| s.unique_index_on(&columns).map(str::to_string))
                    .unwrap_or(index);
                Error::DuplicatedKey {
                    pool,
                    index: name,
                    source,
                }
            }
            other => other,
        }
    }
}

enum Effect {
    Inserted {
        item: usize,
        id: u64,
    },
    Saved {
        item: usize,
    },
    Deleted {
        item: usize,
    },
    Upserted {
        item: usize,
        id: Option<u64>,
    },
    Reloaded {
        item: usize,
        row: Option<Vec<Value>>,
    },
}

/// Runs the hooks of the new entities `item` references (`Ref::new`), deepest first:
/// the pending before-event, or after-insert when `after` (the rows are written).
fn nested_hooks<'b>(
    item: &'b mut dyn Flushable,
    hooks: &'b Hooks,
    after: bool,
) -> BoxFuture<'b, Result<()>> {
    Box::pin(async move {
        let mut nested: Vec<&mut dyn Flushable> = Vec::new();
        item.new_refs(&mut nested);
        for entity in nested {
            nested_hooks(&mut *entity, hooks, after).await?;
            let event = if after {
                Some(HookEvent::BeforeInsert.after())
            } else {
                entity.pending_event()
            };
            if let Some(event) = event {
                entity.run_hooks(hooks, event).await?;
            }
        }
        Ok(())
    })
}

/// Turns the operations of one pool into statements: inserts first (one multi-row
/// INSERT per table), then upserts and updates (one each), then deletes (one per table).
/// Every value written is checked against its column here (`schema::limits`): a value
/// the column cannot hold exactly fails the flush before anything is sent.
fn plan(
    pool: &SqlPool,
    ops: Vec<Planned<'_>>,
    step: Option<u64>,
    tracked: &[&mut dyn Flushable],
) -> Result<Vec<Statement>> {
    let kind = pool.kind();
    let quote = |s: &str| pool.quote(s);
    // (table, explicit id?) → rows; (table, fake?) → ids.
    let mut inserts: BTreeMap<(&str, bool), InsertRows<'_>> = BTreeMap::new();
    let mut deletes: BTreeMap<(&str, bool), DeleteRows<'_>> = BTreeMap::new();
    let mut out = Vec::new();
    let mut singles = Vec::new();
    for (pos, op, schema) in ops {
        match op {
            Op::Nothing => {}
            Op::Insert { id } => inserts
                .entry((schema.table_name(), id != 0))
                .or_insert_with(|| (schema, Vec::new()))
                .1
                .push((pos, id)),
            Op::Delete { id, mode } => {
                let fake = mode == DeleteMode::Delete && schema.has_fake_delete();
                deletes
                    .entry((schema.table_name(), fake))
                    .or_insert_with(|| (schema, Vec::new()))
                    .1
                    .push((pos, id));
            }
            Op::Upsert {
                id,
                mut values,
                mut set,
            } => {
                if id != 0 {
                    limits::fit_column(schema, kind, 0, &mut Value::U64(id))?;
                }
                limits::fit_row(schema, kind, &mut values)?;
                for (column, v) in set.iter_mut() {
                    limits::fit_named(schema, kind, column, v)?;
                }
                let (st, deleted_without_id) = upsert(pool, pos, id, values, set, schema);
                singles.push(st);
                if deleted_without_id {
                    singles.extend(fake_delete_ids(pool, schema, vec![pos]));
                }
            }
            Op::Update { id, mut changed } => {
                for (i, v) in changed.iter_mut() {
                    limits::fit_column(schema, kind, *i + 1, v)?;
                }
                singles.push(update(pool, pos, id, changed, schema))
            }
        }
    }
    // Parents before children for inserts, children before parents for deletes (by
    // the foreign keys between the tables of this flush), then by name.
    let ranks = fk_ranks(inserts.values().chain(deletes.values()).map(|(s, _)| *s));
    let rank = |table: &str| ranks.get(table).copied().unwrap_or(0);
    let mut inserts: Vec<_> = inserts.into_iter().collect();
    inserts.sort_by_key(|((table, _), _)| rank(table));
    let mut deletes: Vec<_> = deletes.into_iter().collect();
    deletes.sort_by_key(|((table, _), _)| std::cmp::Reverse(rank(table)));
    for ((_, explicit_id), (schema, rows)) in inserts {
        let t = schema.templates(quote);
        let width = schema.columns().len() - usize::from(!explicit_id);
        let row = format!("({})", vec!["?"; width].join(","));
        // Without the promise of consecutive IDs, one row per statement.
        let per_statement = if explicit_id || step.is_some() {
            (MAX_PARAMS / width.max(1)).max(1)
        } else {
            1
        };
        let head = if explicit_id {
            &t.insert_with_id
        } else {
            &t.insert
        };
        // PostgreSQL gives server-numbered IDs back with the rows.
        let returning = if !explicit_id && pool.kind() == crate::DialectKind::Postgres {
            format!(" RETURNING {}", t.columns[0])
        } else {
            String::new()
        };
        // A row written fake-deleted holds its ID in the flag: put there now when the
        // ID is given; with a server-given ID the row is set aside (below).
        let flag = schema.fake_delete_column().and_then(|i| i.checked_sub(1));
        let mut deleted_without_id = Vec::new();
        let mut rows = rows.into_iter();
        while rows.len() > 0 {
            let n = rows.len().min(per_statement);
            let mut sql = String::with_capacity(head.len() + n * (row.len() + 1));
            sql.push_str(head);
            let mut params = Vec::with_capacity(n * width);
            let mut items = Vec::with_capacity(n);
            for (pos, id) in rows.by_ref().take(n) {
                let start = params.len();
                if explicit_id {
                    let mut id = Value::U64(id);
                    limits::fit_column(schema, kind, 0, &mut id)?;
                    params.push(id);
                }
                let values_start = params.len();
                tracked[pos].write_values(&mut params);
                limits::fit_row(schema, kind, &mut params[values_start..])?;
                if let Some(cell) = flag.and_then(|f| params.get_mut(values_start + f)) {
                    if fake_delete::is_deleted(cell) {
                        if explicit_id {
                            *cell = Value::U64(id);
                        } else {
                            params.truncate(start);
                            deleted_without_id.push(pos);
                            continue;
                        }
                    }
                }
                if !items.is_empty() {
                    sql.push(',');
                }
                sql.push_str(&row);
                items.push(pos);
            }
            if items.is_empty() {
                continue;
            }
            sql.push_str(&returning);
            out.push(Statement {
                sql,
                params,
                kind: StatementKind::Insert {
                    auto_ids: !explicit_id,
                },
                items,
            });
        }
        // Rows written fake-deleted whose IDs the server gives: one row per statement,
        // each followed by the one that puts its ID in the flag, so that two of them
        // never clash with each other under a unique index.
        for pos in deleted_without_id {
            let mut params = Vec::with_capacity(width);
            tracked[pos].write_values(&mut params);
            let sql = format!("{head}{row}{returning}");
            out.push(Statement {
                sql,
                params,
                kind: StatementKind::Insert { auto_ids: true },
                items: vec![pos],
            });
            out.extend(fake_delete_ids(pool, schema, vec![pos]));
        }
    }
    out.extend(singles);
    for ((_, fake), (schema, ids)) in deletes {
        let t = schema.templates(quote);
        for chunk in ids.chunks(MAX_PARAMS) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = if fake {
                let column = schema
                    .fake_delete_column()
                    .map_or_else(|| "fake_delete".to_string(), |i| t.columns[i].clone());
                // The row's ID, not a flag: deleted duplicates never clash.
                format!(
                    "UPDATE {} SET {column} = {} WHERE {} IN ({marks})",
                    t.table, t.columns[0], t.columns[0]
                )
            } else {
                format!(
                    "DELETE FROM {} WHERE {} IN ({marks})",
                    t.table, t.columns[0]
                )
            };
            out.push(Statement {
                sql,
                params: chunk.iter().map(|(_, id)| Value::U64(*id)).collect(),
                kind: StatementKind::Delete,
                items: chunk.iter().map(|(pos, _)| *pos).collect(),
            });
        }
    }
    Ok(out)
}

/// Each table's depth in the foreign-key graph of `schemas` (the tables one flush
/// writes): 0 for a table that references none of the others, else one more than its
/// deepest parent. Inserting by rising depth writes every referenced row before the
/// rows that reference it; deleting by falling depth removes children first.
///
/// A self-reference does not count (rows of one table are written in the order they
/// were tracked). In a cycle between tables (A references B, B references A) the
/// edge that closes it is ignored: the order stays deterministic and, if the rows
/// really reference each other, the server refuses the flush with
/// [`Error::ForeignKey`] inside its transaction, so nothing is written — insert one
/// side with the reference empty, then set it in a second flush.
fn fk_ranks<'s>(
    schemas: impl Iterator<Item = &'s TableSchema>,
) -> rustc_hash::FxHashMap<&'s str, usize> {
    let tables: rustc_hash::FxHashMap<&'s str, &'s TableSchema> =
        schemas.map(|s| (s.table_name(), s)).collect();
    let mut ranks = rustc_hash::FxHashMap::default();
    if tables.len() < 2 {
        return ranks;
    }
    // Depth-first with an explicit stack; `on_path` breaks cycles.
    fn depth<'s>(
        table: &'s str,
        tables: &rustc_hash::FxHashMap<&'s str, &'s TableSchema>,
        ranks: &mut rustc_hash::FxHashMap<&'s str, usize>,
        on_path: &mut Vec<&'s str>,
    ) -> usize {
        if let Some(r) = ranks.get(table) {
            return *r;
        }
        let Some(schema) = tables.get(table) else {
            return 0;
        };
        on_path.push(table);
        let mut r = 0;
        for fk in schema.foreign_keys() {
            let parent = fk.ref_table.as_str();
            if parent == table || on_path.contains(&parent) {
                continue;
            }
            if let Some((parent, _)) = tables.get_key_value(parent) {
                r = r.max(depth(parent, tables, ranks, on_path) + 1);
            }
        }
        on_path.pop();
        ranks.insert(table, r);
        r
    }
    let mut names: Vec<&'s str> = tables.keys().copied().collect();
    names.sort_unstable();
    let mut on_path = Vec::new();
    for name in names {
        depth(name, &tables, &mut ranks, &mut on_path);
    }
    ranks
}

/// After rows were written fake-deleted while their ID was not known (server-given
/// IDs, an upsert's update list): puts each such row's ID in its flag. They were
/// written with 1, which only row 1 may hold. `None` when there are none.
fn fake_delete_ids(pool: &SqlPool, schema: &TableSchema, items: Vec<usize>) -> Option<Statement> {
    let column = schema.fake_delete_column()?;
    if items.is_empty() {
        return None;
    }
    let t = schema.templates(|s| pool.quote(s));
    let (flag, id) = (&t.columns[column], &t.columns[0]);
    Some(Statement {
        sql: format!(
            "UPDATE {} SET {flag} = {id} WHERE {flag} = 1 AND {id} <> 1",
            t.table
        ),
        params: Vec::new(),
        kind: StatementKind::Update,
        items,
    })
}

/// `UPDATE t SET <changed columns> WHERE id = ?`.
fn update(
    pool: &SqlPool,
    pos: usize,
    id: u64,
    mut changed: Vec<(usize, Value)>,
    schema: &TableSchema,
) -> Statement {
    // A fake-delete flag set through the field is written as the row's ID.
    if let Some(flag) = schema.fake_delete_column().and_then(|i| i.checked_sub(1)) {
        for (i, v) in changed.iter_mut() {
            if *i == flag && fake_delete::is_deleted(v) {
                *v = Value::U64(id);
            }
        }
    }
    let t = schema.templates(|s| pool.quote(s));
    let sets: Vec<String> = changed
        .iter()
        .map(|(i, _)| format!("{} = ?", t.columns[i + 1]))
        .collect();
    let mut params: Vec<Value> = changed.into_iter().map(|(_, v)| v).collect();
    params.push(Value::U64(id));
    Statement {
        sql: format!(
            "UPDATE {} SET {} WHERE {} = ?",
            t.table,
            sets.join(", "),
            t.columns[0]
        ),
        params,
        kind: StatementKind::Update,
        items: vec![pos],
    }
}

/// The ID in the first cell of the first row (`… RETURNING id`), if any.
fn returned_id(rows: &[Vec<Value>]) -> Option<u64> {
    rows.first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .and_then(|i| u64::try_from(i).ok())
}

/// The statements that find the row an upsert clashed with on PostgreSQL, one per
/// unique key of the entity's values, in the order they are tried: `id` when it was
/// given, then each unique index (in name order). Each updates the row with `set`
/// and returns its ID (or, with nothing to set, selects the ID). A key with a NULL
/// value cannot have clashed and is skipped.
fn pg_upsert_lookups(
    pool: &SqlPool,
    schema: &TableSchema,
    id: u64,
    values: &[Value],
    set: &[(String, Value)],
) -> Vec<(String, Vec<Value>)> {
    let t = schema.templates(|s| pool.quote(s));
    let id_col = &t.columns[0];
    let mut keys: Vec<Vec<(&str, Value)>> = Vec::new();
    if id != 0 {
        keys.push(vec![(id_col.as_str(), Value::U64(id))]);
    }
    for index in schema.indexes().iter().filter(|i| i.unique) {
        let key: Option<Vec<(&str, Value)>> = index
            .columns
            .iter()
            .map(|c| {
                let pos = schema.columns().iter().position(|col| col.name == *c)?;
                let v = values.get(pos.checked_sub(1)?)?;
                (!v.is_null()).then(|| (t.columns[pos].as_str(), v.clone()))
            })
            .collect();
        keys.extend(key);
    }
    let assignments: Vec<String> = set
        .iter()
        .map(|(c, _)| format!("{} = ?", pool.quote(c)))
        .collect();
    keys.into_iter()
        .map(|key| {
            let cond: Vec<String> = key.iter().map(|(c, _)| format!("{c} = ?")).collect();
            let cond = cond.join(" AND ");
            let mut params: Vec<Value> = Vec::with_capacity(set.len() + key.len());
            let sql = if assignments.is_empty() {
                format!("SELECT {id_col} FROM {} WHERE {cond}", t.table)
            } else {
                params.extend(set.iter().map(|(_, v)| v.clone()));
                format!(
                    "UPDATE {} SET {} WHERE {cond} RETURNING {id_col}",
                    t.table,
                    assignments.join(", ")
                )
            };
            params.extend(key.into_iter().map(|(_, v)| v));
            (sql, params)
        })
        .collect()
}

/// One INSERT that updates `set` when a unique index (or the primary key, for an
/// explicit ID) already holds the row. MySQL (`ON DUPLICATE KEY UPDATE`) and SQLite
/// (`ON CONFLICT DO UPDATE` without a target) take whichever key clashed; PostgreSQL
/// inserts with `ON CONFLICT DO NOTHING` and looks the clashing row up by each key
/// ([`pg_upsert_lookups`]), so all three take the existing row whichever unique key
/// it clashed on.
fn upsert(
    pool: &SqlPool,
    pos: usize,
    id: u64,
    mut values: Vec<Value>,
    mut set: Vec<(String, Value)>,
    schema: &TableSchema,
) -> (Statement, bool) {
    let t = schema.templates(|s| pool.quote(s));
    let explicit_id = id != 0;
    // A fake-deleted row holds its ID in the flag; when the ID is not known yet, or
    // the update list sets the flag, a statement after this one puts it there.
    let mut deleted_without_id = false;
    if let Some(flag) = schema.fake_delete_column() {
        if let Some(cell) = flag.checked_sub(1).and_then(|f| values.get_mut(f)) {
            if fake_delete::is_deleted(cell) {
                if explicit_id {
                    *cell = Value::U64(id);
                } else {
                    deleted_without_id = true;
                }
            }
        }
        if let Some(column) = schema.columns().get(flag) {
            for (_, v) in set.iter_mut().filter(|(c, _)| *c == column.name) {
                // `true`/`false` as the integer the column holds.
                let deleted = fake_delete::is_deleted(v);
                *v = Value::U64(u64::from(deleted));
                deleted_without_id |= deleted;
            }
        }
    }
    let width = values.len() + usize::from(explicit_id);
    let head = if explicit_id {
        &t.insert_with_id
    } else {
        &t.insert
    };
    let mut sql = format!("{head}({})", vec!["?"; width].join(","));
    let mut params = Vec::with_capacity(width + set.len());
    if explicit_id {
        params.push(Value::U64(id));
    }
    params.extend(values);
    let id_col = &t.columns[0];
    let assignments: Vec<String> = set
        .iter()
        .map(|(c, _)| format!("{} = ?", pool.quote(c)))
        .collect();
    params.extend(set.into_iter().map(|(_, v)| v));
    match pool.kind() {
        crate::DialectKind::MySql => {
            // LAST_INSERT_ID(id) makes the server report the existing row's ID.
            sql.push_str(&format!(
                " ON DUPLICATE KEY UPDATE {id_col} = LAST_INSERT_ID({id_col})"
            ));
            for a in &assignments {
                sql.push_str(", ");
                sql.push_str(a);
            }
        }
        crate::DialectKind::Postgres => {
            // `ON CONFLICT … DO UPDATE` takes one arbiter index, so a clash on any
            // other would fail. Insert unless anything clashes; on a clash `execute`
            // finds the row by each unique key in turn ([`pg_upsert_lookups`]).
            sql.push_str(&format!(" ON CONFLICT DO NOTHING RETURNING {id_col}"));
            params.truncate(width);
        }
        crate::DialectKind::Sqlite => {
            sql.push_str(" ON CONFLICT DO UPDATE SET ");
            if assignments.is_empty() {
                sql.push_str(&format!("{id_col} = {id_col}"));
            } else {
                sql.push_str(&assignments.join(", "));
            }
            sql.push_str(&format!(" RETURNING {id_col}"));
        }
    }
    (
        Statement {
            sql,
            params,
            kind: StatementKind::Upsert,
            items: vec![pos],
        },
        deleted_without_id,
    )
}
