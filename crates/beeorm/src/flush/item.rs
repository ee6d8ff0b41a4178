//! The entity side of a flush: what one tracked entity needs written ([`Op`]) and the
//! type-erased view of [`Tracked`] the planner, the executor and the commit step work
//! through ([`Flushable`]). Everything generic over the entity type lives here, so the
//! rest of the write path is compiled once, not once per entity type.

use std::any::TypeId;

use crate::hooks::{BoxFuture, HookEvent, Hooks};
use crate::tracked::{DeleteMode, TxOutcome};
use crate::{Entity, Error, Result, Tracked, Value};

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
    /// After a fake delete: the row is still there, flagged; the entity's `field`
    /// (the fake-delete flag) reads `true` and it is not new.
    fn fake_deleted(&mut self, field: &str) -> Result<()>;
    /// The stored row's values before this flush's changes (see
    /// [`Tracked::loaded_values`]): the "old" side of an update.
    fn loaded_values(&self) -> Option<&[Value]>;
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
    ) -> super::commit::DetachedHook;
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

    fn fake_deleted(&mut self, field: &str) -> Result<()> {
        // No snapshot: the flag is what the row holds now (read back as `true`).
        self.untracked_mut()
            .set_field(field, Value::Bool(true))
            .map_err(|e| Error::set_field::<E>(field, e))?;
        self.mark_saved();
        self.delete = None;
        Ok(())
    }

    fn loaded_values(&self) -> Option<&[Value]> {
        Tracked::loaded_values(self)
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
        // The whole row when the flush may change fields, not only the state: an
        // upsert reads the row back, a fake delete sets the flag field.
        let whole_row = self.upsert.is_some() || self.delete == Some(DeleteMode::Delete);
        Tracked::remember(self, outcome, whole_row);
    }

    fn after_commit_hook(
        &self,
        registry: crate::ValidatedRegistry,
        event: HookEvent,
    ) -> super::commit::DetachedHook {
        let mut row = self.row();
        Box::new(move || {
            Box::pin(async move {
                let mut entity = crate::entity::decode::<E>(&mut row)?;
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
        let fresh = crate::entity::decode::<E>(&mut row)?;
        self.replace_loaded(fresh);
        Ok(())
    }
}
