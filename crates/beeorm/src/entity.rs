//! The [`Entity`] and [`Embedded`] traits: what `#[derive(Entity)]` and
//! `#[derive(Embedded)]` generate, the plumbing between a struct and its row that the
//! write path (flush), the read path (loaders) and references share.

use crate::{hooks, schema, Error, Result, Value};

/// The cells of one row as [`Entity::from_values`] reads them, in column order. The
/// loaders drain one buffer per query into it, so a row costs no allocation of its own.
pub type Cells<'a> = std::vec::Drain<'a, Value>;

/// A struct stored as a table row. Derive it: `#[derive(Entity)]`; the methods are
/// the derive's plumbing, used by the flusher and the loaders.
pub trait Entity: Send + Sync + Sized + 'static {
    /// The raw definition the registry validates.
    fn definition() -> schema::EntityDefinition;
    /// The primary key (0 while the row is not inserted yet): the field `id`, or the
    /// one marked `#[orm(primary_key)]`.
    fn id(&self) -> u64;
    /// Sets the primary key; fails when it does not fit the `id` type.
    fn set_id(&mut self, id: u64) -> std::result::Result<(), String>;
    /// Appends the values of every stored column but the primary key, in column order.
    fn push_values(&self, out: &mut Vec<Value>);
    /// Builds the entity from a row: the primary key first, then the columns in order. Ignored
    /// fields get `Default::default()`.
    fn from_values(values: &mut Cells<'_>) -> std::result::Result<Self, schema::DecodeError>;
    /// Sets a (non-embedded) stored field by its Rust name from a value, converted as
    /// when loading; the field is unchanged on error.
    fn set_field(
        &mut self,
        name: &str,
        value: Value,
    ) -> std::result::Result<(), schema::SetFieldError>;
    /// Calls `visit` on every free-text field (`String`, `Option<String>`, embedded
    /// ones too; not enums, sets or JSON).
    fn visit_strings(&mut self, visit: &mut dyn FnMut(&mut String));
    /// Calls `visit` with the field name on every reference (`Ref<T>`,
    /// `Option<Ref<T>>`, `Vec<Ref<T>>` fields): the flusher and the preloader walk
    /// references through it.
    fn visit_refs<'s>(
        &'s mut self,
        visit: &mut dyn FnMut(&'static str, &'s mut dyn crate::__private::AnyRef),
    ) {
        let _ = visit;
    }
    /// The struct's name, as in [`Entity::definition`] (the derive sets it; error
    /// messages use it without building the definition).
    const TYPE_NAME: &'static str = "entity";
    /// Stored columns but the primary key (a capacity hint; the derive sets it exactly).
    const COLUMN_COUNT: usize = 8;
    /// Whether the entity has its own hooks (`#[orm(hooks)]`).
    const HAS_OWN_HOOKS: bool = false;
    /// A copy of the entity for the local cache: `Some` for entities with
    /// `#[orm(local_cache)]` (which must be `Clone`), `None` otherwise.
    #[doc(hidden)]
    fn cache_clone(&self) -> Option<Self> {
        None
    }
    /// Runs the entity's own hook for `event` (`#[orm(hooks)]`); nothing by default.
    fn run_own_hook(&mut self, event: hooks::HookEvent) -> hooks::BoxFuture<'_, Result<()>> {
        let _ = event;
        Box::pin(async { Ok(()) })
    }
}

/// A struct whose fields are stored as prefixed columns of the entity that holds it.
/// Derive it: `#[derive(Embedded)]`, and mark the field `#[orm(embedded)]`.
pub trait Embedded: Sized {
    /// Its stored fields.
    fn fields() -> Vec<schema::FieldDefinition>;
    /// Appends the values of its columns, in order.
    fn push_values(&self, out: &mut Vec<Value>);
    /// Reads its columns, in order.
    fn from_values(values: &mut Cells<'_>) -> std::result::Result<Self, schema::DecodeError>;
    /// Its stored columns (the derive sets it; used to size buffers).
    const COLUMN_COUNT: usize = 4;
    /// Calls `visit` on every free-text field.
    fn visit_strings(&mut self, visit: &mut dyn FnMut(&mut String));
}

/// Decodes a row (`id` first, columns in schema order) into an entity, draining
/// `row`.
pub(crate) fn decode<E: Entity>(row: &mut Vec<Value>) -> Result<E> {
    E::from_values(&mut row.drain(..)).map_err(|e| Error::Decode {
        entity: E::TYPE_NAME.to_string(),
        field: e.field,
        reason: e.reason,
    })
}
