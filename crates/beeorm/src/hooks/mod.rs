//! Lifecycle hooks (I1): code that runs around every insert, update and delete, in one
//! place, so no code path can forget it.
//!
//! Hooks run inside the write path (see `flush/`): before-hooks after the flusher has
//! decided what each entity needs and before any SQL, after-hooks once the database has
//! accepted everything (IDs assigned). Each hook runs exactly once per entity per
//! write, in this order: the entity's own hooks (`#[orm(hooks)]` + [`EntityHooks`]),
//! then registered hooks in registration order. A before-hook may change the entity
//! (the change is written and counts as dirty) or veto the whole flush by returning an
//! error, in which case nothing is written. After-hooks run in the write path's one
//! after-commit step (`flush/commit.rs`), just before the [`crate::Observer`]s.
//!
//! ```
//! use beeorm::hooks::HookEvent;
//! use beeorm::prelude::*;
//!
//! #[derive(Entity)]
//! struct Note {
//!     id: u64,
//!     title: String,
//!     updated_at: chrono::NaiveDateTime,
//! }
//!
//! let mut registry = Registry::new();
//! registry.register_entity::<Note>();
//! // Trim every title and stamp `updated_at` before it is written.
//! registry.register_hook::<Note>(&[HookEvent::BeforeInsert, HookEvent::BeforeUpdate], |_, note| {
//!     note.title = note.title.trim().to_string();
//!     // Whole seconds: MySQL's `datetime` keeps no fraction (see the type table).
//!     note.updated_at = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now().naive_utc(), 0);
//!     Ok(())
//! });
//! // Refuse empty titles for every entity that has a `title` (a veto: nothing is written).
//! registry.register_global_hook(&[HookEvent::BeforeInsert], |_, entity| {
//!     let mut empty = false;
//!     entity.visit_strings(&mut |s| empty |= s.is_empty());
//!     if empty {
//!         return Err(Error::Hook(format!("{}: empty text", entity.entity_name())));
//!     }
//!     Ok(())
//! });
//! ```

mod persian;

use std::any::{Any, TypeId};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use persian::normalize_persian;
pub(crate) use persian::normalize_written_values;

use crate::{Entity, Error, Result, Value};

/// A boxed, sendable future (what async hooks return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HookEvent {
    /// Before a row is inserted (upserts included).
    BeforeInsert,
    /// After a row was inserted: the entity has its ID.
    AfterInsert,
    /// Before changed columns are updated.
    BeforeUpdate,
    /// After the update.
    AfterUpdate,
    /// Before a row is deleted (fake deletes included).
    BeforeDelete,
    /// After the delete.
    AfterDelete,
}

impl HookEvent {
    pub(crate) fn after(self) -> HookEvent {
        match self {
            HookEvent::BeforeInsert | HookEvent::AfterInsert => HookEvent::AfterInsert,
            HookEvent::BeforeUpdate | HookEvent::AfterUpdate => HookEvent::AfterUpdate,
            HookEvent::BeforeDelete | HookEvent::AfterDelete => HookEvent::AfterDelete,
        }
    }
}

/// An entity type's own hooks, run before the registered ones. Mark the entity
/// `#[orm(hooks)]` and implement the methods you need (`async fn` works).
pub trait EntityHooks: Send {
    /// Before insert.
    fn before_insert(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
    /// After insert.
    fn after_insert(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
    /// Before update.
    fn before_update(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
    /// After update.
    fn after_update(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
    /// Before delete.
    fn before_delete(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
    /// After delete.
    fn after_delete(&mut self) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

/// Calls the [`EntityHooks`] method for `event` (used by `#[derive(Entity)]`).
pub async fn dispatch_entity_hook<E: EntityHooks>(entity: &mut E, event: HookEvent) -> Result<()> {
    match event {
        HookEvent::BeforeInsert => entity.before_insert().await,
        HookEvent::AfterInsert => entity.after_insert().await,
        HookEvent::BeforeUpdate => entity.before_update().await,
        HookEvent::AfterUpdate => entity.after_update().await,
        HookEvent::BeforeDelete => entity.before_delete().await,
        HookEvent::AfterDelete => entity.after_delete().await,
    }
}

/// Any entity, as a hook registered for all entity types sees it.
pub trait HookTarget: Send {
    /// The entity's Rust type name.
    fn entity_name(&self) -> &'static str;
    /// Its ID (0 before insert).
    fn id(&self) -> u64;
    /// Calls `visit` on every free-text field (`String`, `Option<String>`, in embedded
    /// structs too; not enum values, sets or JSON).
    fn visit_strings(&mut self, visit: &mut dyn FnMut(&mut String));
    /// Sets a stored field by name.
    fn set_field(&mut self, name: &str, value: Value) -> Result<()>;
    /// The entity, to downcast to its type.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<E: Entity> HookTarget for E {
    fn entity_name(&self) -> &'static str {
        E::TYPE_NAME
    }
    fn id(&self) -> u64 {
        Entity::id(self)
    }
    fn visit_strings(&mut self, visit: &mut dyn FnMut(&mut String)) {
        Entity::visit_strings(self, visit)
    }
    fn set_field(&mut self, name: &str, value: Value) -> Result<()> {
        Entity::set_field(self, name, value).map_err(|e| Error::set_field::<E>(name, e))
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

type HookFn = Arc<
    dyn for<'a> Fn(HookEvent, &'a mut dyn HookTarget) -> BoxFuture<'a, Result<()>> + Send + Sync,
>;

struct Registered {
    events: Vec<HookEvent>,
    /// Only for this entity type, when set.
    entity: Option<TypeId>,
    run: HookFn,
}

/// Every registered hook, in registration order, the observers of committed writes
/// ([`crate::Observer`]) and the parameter normaliser: everything the write path calls
/// out to, kept in the validated registry.
#[derive(Default, Clone)]
pub(crate) struct Hooks {
    list: Vec<Arc<Registered>>,
    /// In registration order.
    observers: Vec<Arc<dyn crate::Observer>>,
    /// Normalise Persian text in query parameters too (I2).
    pub(crate) persian_params: bool,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("registered", &self.list.len())
            .field("observers", &self.observers.len())
            .field("persian_params", &self.persian_params)
            .finish()
    }
}

impl Hooks {
    pub(crate) fn add(&mut self, events: &[HookEvent], entity: Option<TypeId>, run: HookFn) {
        self.list.push(Arc::new(Registered {
            events: events.to_vec(),
            entity,
            run,
        }));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn add_observer(&mut self, observer: Arc<dyn crate::Observer>) {
        self.observers.push(observer);
    }

    /// The registered observers, in registration order.
    pub(crate) fn observers(&self) -> &[Arc<dyn crate::Observer>] {
        &self.observers
    }

    /// Whether an observer writes inside the transaction (so every unit of work
    /// needs one).
    pub(crate) fn observers_need_transaction(&self) -> bool {
        self.observers.iter().any(|o| o.needs_transaction())
    }

    /// Runs the registered hooks for `event` on one entity, in order; the first error stops.
    pub(crate) async fn run(
        &self,
        event: HookEvent,
        entity_type: TypeId,
        target: &mut dyn HookTarget,
    ) -> Result<()> {
        for h in &self.list {
            if h.events.contains(&event) && h.entity.is_none_or(|t| t == entity_type) {
                (h.run)(event, target).await?;
            }
        }
        Ok(())
    }

    /// Query parameters as they should be sent (Persian text normalised when enabled).
    pub(crate) fn prepare_params(&self, params: &[Value]) -> Vec<Value> {
        if !self.persian_params {
            return params.to_vec();
        }
        params
            .iter()
            .map(|v| match v {
                Value::String(s) => Value::String(normalize_persian(s).into_owned()),
                other => other.clone(),
            })
            .collect()
    }
}

/// Wraps a typed hook into one that downcasts the entity.
pub(crate) fn typed<E: Entity>(
    hook: impl for<'a> Fn(HookEvent, &'a mut E) -> BoxFuture<'a, Result<()>> + Send + Sync + 'static,
) -> HookFn {
    Arc::new(
        move |event, target| match target.as_any_mut().downcast_mut::<E>() {
            Some(e) => hook(event, e),
            None => Box::pin(async { Ok(()) }),
        },
    )
}

/// Wraps a hook for all entity types.
pub(crate) fn global(
    hook: impl for<'a> Fn(HookEvent, &'a mut dyn HookTarget) -> BoxFuture<'a, Result<()>>
        + Send
        + Sync
        + 'static,
) -> HookFn {
    Arc::new(hook)
}
