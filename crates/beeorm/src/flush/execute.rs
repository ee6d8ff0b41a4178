//! Running a flush: the before-hooks, grouping the entities by pool, planning every
//! pool before anything is sent (`plan.rs`), choosing the connection of each pool's
//! unit of work (a transaction when there is more than one statement, when one is
//! asked for, when a server-given ID may not fit, or when an observer writes inside
//! it), running the statements and turning their results into effects on the
//! entities. The effects are applied by the one commit function (`commit.rs`), never
//! here: until the COMMIT, the entities are as they were.
//!
//! What a statement's result means differs per dialect (IDs as returned rows or as
//! the insert ID, upserts, sequences after explicit IDs); each difference is asked of
//! [`DialectKind`](crate::DialectKind), never matched on here. A duplicate key names
//! its index through the driver (the dialect's `name_duplicated_index`).
//!
//! Several pools are committed one after another, in pool-name order; see
//! [`Flusher::flush`] for what a failure in a later pool means.

use std::collections::BTreeMap;

use super::api::Flusher;
use super::commit::{Committed, Effect, UnitConn};
use super::item::{Flushable, Op};
use super::plan::{plan, Planned, Statement, StatementKind};
use crate::db::Transaction;
use crate::hooks::{BoxFuture, HookEvent, Hooks};
use crate::observe::ChangeSet;
use crate::schema::limits;
use crate::sql::dialect::UpsertId;
use crate::sql::pool::{Conn, SqlPool};
use crate::{DialectKind, Error, Result, Value};

impl<'a> Flusher<'a> {
    /// Every write of the flusher: `in_transaction` asks for a transaction per pool;
    /// `external` is the caller's transaction (`flush_in`).
    pub(super) async fn run(
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
            let (changes, hooked) = self
                .run_with_new_refs(external.as_deref_mut(), hooks)
                .await?;
            // The rows are committed even when an after-insert hook of a new
            // referenced entity failed: the after-commit step still publishes their
            // events and tells the observers (the tracked entities' after-hooks are
            // skipped, as before), then that hook's error is returned.
            if hooked.is_err() {
                after.clear();
            }
            let finished = self.finish(external, changes, after).await;
            return hooked.and(finished);
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
        let force_tx = in_transaction || hooks.observers_need_transaction();
        let mut planned = Vec::with_capacity(by_pool.len());
        for (_, (pool, ops)) in by_pool {
            // Cached rows are locked before the COMMIT, and change-log rows are
            // written before it: their writes need one.
            let cached = ops
                .iter()
                .any(|(_, _, schema)| schema.cache_slot().is_some() || schema.is_logged());
            // Which entities each pool writes: only needed to tell the after-hooks of a
            // committed pool from those of a failed one.
            let positions: Vec<usize> = if after.is_empty() {
                Vec::new()
            } else {
                ops.iter().map(|(pos, _, _)| *pos).collect()
            };
            let step = pool.id_step().await?;
            let statements = plan(&pool, ops, step, &self.items)?;
            planned.push((pool, step, statements, positions, cached));
        }
        let mut committed = Committed::default();
        let mut written: Vec<usize> = Vec::new();
        for (pool, step, statements, positions, cached) in planned {
            let result = self
                .write_pool(
                    &pool,
                    step,
                    statements,
                    external.as_deref_mut(),
                    force_tx || cached,
                    &mut committed,
                )
                .await;
            match result {
                Ok(()) => written.extend(positions),
                Err(e) if committed.pools.is_empty() => return Err(e),
                Err(e) => {
                    // A later pool failed: the earlier ones stay committed. Their
                    // entities hold the new state; the after-commit step sees exactly
                    // them.
                    after.retain(|(pos, _)| written.contains(pos));
                    // Events queued with `publish` belong to the whole flush, which
                    // did not commit: they are not sent. The committed pools' dirty
                    // events are.
                    self.events = Default::default();
                    if let Err(hook) = self.finish(None, committed.changes, after).await {
                        tracing::warn!(error = %hook, "after-commit step of a partly committed flush failed");
                    }
                    return Err(Error::PartlyCommitted {
                        committed: committed.pools,
                        failed: pool.name().to_string(),
                        source: Box::new(e),
                    });
                }
            }
        }
        self.finish(external, committed.changes, after).await
    }

    /// Runs one pool's statements on the connection its unit of work needs, and
    /// commits it (see `commit.rs`).
    async fn write_pool(
        &mut self,
        pool: &SqlPool,
        step: Option<u64>,
        statements: Vec<Statement>,
        external: Option<&mut Transaction>,
        force_tx: bool,
        committed: &mut Committed,
    ) -> Result<()> {
        let mut unit = match external {
            Some(tx) => UnitConn::External(tx),
            None if force_tx
                || statements.len() > 1
                || statements.iter().any(|st| self.may_overflow_id(pool, st)) =>
            {
                UnitConn::Own(pool.begin().await?)
            }
            None => UnitConn::Bare(pool.conn().await?),
        };
        // On error an own transaction is dropped, which rolls it back.
        let effects = self.execute(pool, unit.conn(), statements, step).await?;
        self.commit(pool, unit, effects, None, committed).await
    }

    /// The operations of the tracked entities, per pool.
    fn ops_by_pool(&self) -> Result<BTreeMap<String, (SqlPool, Vec<Planned<'a>>)>> {
        let registry = self.engine.registry();
        let mut by_pool: BTreeMap<String, (SqlPool, Vec<Planned<'a>>)> = BTreeMap::new();
        // Tracked entities mostly come in runs of one type: its schema is looked up
        // once per run.
        let mut last: Option<(std::any::TypeId, &'a crate::schema::TableSchema)> = None;
        for (pos, item) in self.items.iter().enumerate() {
            let op = item.op();
            if matches!(op, Op::Nothing) {
                continue;
            }
            let ty = item.entity_type();
            let schema = match last {
                Some((t, schema)) if t == ty => schema,
                _ => {
                    let schema = registry
                        .table_schema_by_type(ty)
                        .ok_or_else(|| Error::UnknownEntity(item.entity_name().to_string()))?;
                    last = Some((ty, schema));
                    schema
                }
            };
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
    /// first) so the referencing rows get their IDs. Returns the committed changes
    /// (when needed) and the outcome of the new entities' after-insert hooks, which
    /// ran after the COMMIT.
    async fn run_with_new_refs(
        &mut self,
        external: Option<&mut Transaction>,
        hooks: &Hooks,
    ) -> Result<(Option<ChangeSet>, Result<()>)> {
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
            return Ok((None, Ok(())));
        };
        let pool = self.engine.sql_pool(&pool_name)?;
        let step = pool.id_step().await?;
        let with_changes =
            registry.needs_changes() || registry.table_schemas().any(|t| t.is_logged());
        let mut committed = Committed::default();
        let result = match external {
            Some(tx) => {
                match self
                    .write_with_refs(&pool, &mut tx.conn, step, with_changes)
                    .await
                {
                    Ok((effects, nested)) => {
                        let unit = UnitConn::External(tx);
                        self.commit(&pool, unit, effects, nested, &mut committed)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            None => match pool.begin().await {
                Err(e) => Err(e),
                Ok(mut conn) => {
                    match self
                        .write_with_refs(&pool, &mut conn, step, with_changes)
                        .await
                    {
                        // On error the transaction is dropped, which rolls it back.
                        Ok((effects, nested)) => {
                            let unit = UnitConn::Own(conn);
                            self.commit(&pool, unit, effects, nested, &mut committed)
                                .await
                        }
                        Err(e) => Err(e),
                    }
                }
            },
        };
        match result {
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
                Ok((committed.changes, hooked))
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
    /// and runs this flusher's statements on `conn`. Returns the effects on this
    /// flusher's entities and (`with_changes`) the changes of the referenced ones,
    /// whose effects are applied already (undone by `rollback_refs` on failure).
    fn write_with_refs<'b>(
        &'b mut self,
        pool: &'b SqlPool,
        conn: &'b mut Conn,
        step: Option<u64>,
        with_changes: bool,
    ) -> BoxFuture<'b, Result<(Vec<Effect>, Option<ChangeSet>)>> {
        Box::pin(async move {
            let mut changes: Option<ChangeSet> = None;
            {
                let mut nested: Vec<&mut dyn Flushable> = Vec::new();
                for item in self.items.iter_mut() {
                    item.new_refs(&mut nested);
                }
                if !nested.is_empty() {
                    let mut sub = Flusher {
                        engine: self.engine,
                        items: nested,
                        log_meta: None,
                        events: Default::default(),
                    };
                    let (effects, deeper) =
                        sub.write_with_refs(pool, conn, step, with_changes).await?;
                    if with_changes {
                        let mut all = deeper.unwrap_or_default();
                        all.extend(sub.change_set(pool, &effects)?);
                        changes = Some(all);
                    }
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
            let effects = self.execute(pool, conn, statements, step).await?;
            Ok((effects, changes))
        })
    }

    /// Runs the statements; returns what to do to the entities once they are durable.
    pub(super) async fn execute(
        &self,
        pool: &SqlPool,
        conn: &mut Conn,
        statements: Vec<Statement>,
        step: Option<u64>,
    ) -> Result<Vec<Effect>> {
        let kind = pool.kind();
        let mut effects = Vec::with_capacity(statements.iter().map(|st| st.items.len()).sum());
        for st in statements {
            // A server-given ID the entity's `id` cannot hold is an error here, before
            // the COMMIT (such statements run in a transaction, see `write_pool`). IDs
            // up to `i64::MAX` are checked only for a table whose `id` field is
            // narrower; larger ones (MySQL's unsigned columns) always.
            let narrow = self.may_overflow_id(pool, &st);
            let start = effects.len();
            self.run_statement(pool, conn, st, step, &mut effects)
                .await?;
            for effect in &effects[start..] {
                if let Effect::Inserted { item, id }
                | Effect::Upserted {
                    item, id: Some(id), ..
                } = effect
                {
                    if narrow || i64::try_from(*id).is_err() {
                        self.check_id(pool, *item, *id)?;
                    }
                }
            }
        }
        // Upserts: read the row back (it may have existed with other values).
        for effect in effects.iter_mut() {
            if let Effect::Upserted { item, id, inserted } = effect {
                let it = &self.items[*item];
                let schema = self.schema_of(*item)?;
                let t = schema.templates(kind);
                let id = match id {
                    Some(id) => *id,
                    None => {
                        return Err(Error::Flush {
                            entity: it.entity_name().to_string(),
                            reason: "the upsert returned no row ID".into(),
                        })
                    }
                };
                let row = conn
                    .query(&t.select_by_id, vec![Value::U64(id)])
                    .await?
                    .into_iter()
                    .next();
                *effect = Effect::Reloaded {
                    item: *item,
                    row,
                    inserted: *inserted,
                };
            }
        }
        Ok(effects)
    }

    /// Runs one statement and appends what its result means for its entities to
    /// `effects`.
    async fn run_statement(
        &self,
        pool: &SqlPool,
        conn: &mut Conn,
        mut st: Statement,
        step: Option<u64>,
        effects: &mut Vec<Effect>,
    ) -> Result<()> {
        let kind = pool.kind();
        // The values move into the driver's parameters; nothing is copied.
        let params = std::mem::take(&mut st.params);
        let st = &st;
        if kind.insert_returns_ids() && st.kind == (StatementKind::Insert { auto_ids: true }) {
            // `… RETURNING id`: the IDs in the order of the VALUES rows.
            let rows = conn
                .query(&st.sql, params)
                .await
                .map_err(|e| self.name_index(kind, e, st))?;
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
            return Ok(());
        }
        if st.kind == StatementKind::Upsert && kind.upsert_id() != UpsertId::LastInsertId {
            let rows = conn
                .query(&st.sql, params)
                .await
                .map_err(|e| self.name_index(kind, e, st))?;
            let mut id = returned_id(&rows);
            let inserted = kind.upsert_inserted(None, id.is_some());
            if id.is_none() && kind.upsert_id() == UpsertId::ReturnedOrLookup {
                id = self.upsert_existing(pool, conn, st).await?;
            }
            effects.push(Effect::Upserted {
                item: st.items[0],
                id,
                inserted,
            });
            return Ok(());
        }
        let result = conn
            .execute(&st.sql, params)
            .await
            .map_err(|e| self.name_index(kind, e, st))?;
        match st.kind {
            StatementKind::Insert { auto_ids } => {
                if auto_ids {
                    let step = step.unwrap_or(1);
                    let n = st.items.len() as u64;
                    let reported = result.last_insert_id.ok_or_else(|| Error::Flush {
                        entity: self.items[st.items[0]].entity_name().to_string(),
                        reason: "the server returned no insert ID".into(),
                    })?;
                    let first = kind.first_insert_id(reported, n, step);
                    for (k, &item) in st.items.iter().enumerate() {
                        effects.push(Effect::Inserted {
                            item,
                            id: first + k as u64 * step,
                        });
                    }
                } else {
                    let schema = self.schema_of(st.items[0])?;
                    let t = schema.templates(kind);
                    if let Some(sql) = kind.sequence_past_explicit_ids(
                        &t.table,
                        &t.columns[0],
                        schema.id_column_name(),
                    ) {
                        conn.query(&sql, vec![]).await?;
                    }
                    effects.extend(st.items.iter().map(|&item| Effect::Saved { item }));
                }
            }
            StatementKind::Upsert => {
                let item = st.items[0];
                let id = result.last_insert_id.filter(|i| *i > 0);
                let inserted = kind.upsert_inserted(Some(result.affected_rows), false);
                effects.push(Effect::Upserted { item, id, inserted });
            }
            StatementKind::Update => {
                effects.extend(st.items.iter().map(|&item| Effect::Saved { item }))
            }
            StatementKind::Delete { fake } => {
                effects.extend(st.items.iter().map(|&item| Effect::Deleted { item, fake }))
            }
        }
        Ok(())
    }

    /// The table schema of the entity at position `item`.
    fn schema_of(&self, item: usize) -> Result<&'a crate::schema::TableSchema> {
        let it = &self.items[item];
        self.engine
            .registry()
            .table_schema_by_type(it.entity_type())
            .ok_or_else(|| Error::UnknownEntity(it.entity_name().to_string()))
    }

    /// After an upsert that inserted nothing and returned no ID
    /// ([`UpsertId::ReturnedOrLookup`], PostgreSQL's `INSERT … ON CONFLICT DO
    /// NOTHING`): updates (or, with nothing to set, finds) the row that clashed, looked
    /// up by each unique key in turn — the ID when it was given, then the unique
    /// indexes in name order — and returns its ID. Runs on the flush's connection,
    /// so inside its transaction when it has one; without one, the insert wrote
    /// nothing and the update is one statement, so no half-done upsert is left.
    async fn upsert_existing(
        &self,
        pool: &SqlPool,
        conn: &mut Conn,
        st: &Statement,
    ) -> Result<Option<u64>> {
        let item = &self.items[st.items[0]];
        let Op::Upsert { id, values, set } = item.op() else {
            return Ok(None);
        };
        let schema = self.schema_of(st.items[0])?;
        let kind = pool.kind();
        for (sql, params) in kind.upsert_lookups(schema, id, &values, &set) {
            let rows = conn
                .query(&sql, params)
                .await
                .map_err(|e| self.name_index(kind, e, st))?;
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
        let schema = self.schema_of(item)?;
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
        self.schema_of(item).is_ok_and(|schema| {
            limits::fit_column(schema, pool.kind(), 0, &mut Value::U64(i64::MAX as u64)).is_err()
        })
    }

    /// A server error of statement `st` with the broken unique index named, by the
    /// driver of `kind` (SQLite reports the index's columns).
    fn name_index(&self, kind: DialectKind, e: Error, st: &Statement) -> Error {
        match st.items.first().and_then(|&i| self.schema_of(i).ok()) {
            Some(schema) => kind.name_duplicated_index(e, schema),
            None => e,
        }
    }
}

/// The ID in the first cell of the first row (`… RETURNING id`), if any.
fn returned_id(rows: &[Vec<Value>]) -> Option<u64> {
    rows.first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .and_then(|i| u64::try_from(i).ok())
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
