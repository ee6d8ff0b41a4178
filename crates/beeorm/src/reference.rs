//! References between entities (D3): [`Ref<T>`] and the type-erased plumbing the
//! flusher and the preloader use to walk them.
//!
//! A `Ref<T>` field is a column holding the referenced row's ID (with an index and a
//! foreign key); `Vec<Ref<T>>` is a JSON array of IDs. The reference also carries the
//! referenced entity once it is loaded (by [`Ref::load`] or a preload), or a new
//! entity that the next flush inserts first ([`Ref::new`]).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use crate::hooks::BoxFuture;
use crate::schema::{codec, ColumnSpec, ColumnType, FieldAttributes, FieldType, RefSpec};
use crate::{Engine, Entity, Error, Reader, Result, Tracked, Value};

/// A reference to another entity: its ID, and the entity itself once loaded.
///
/// ```no_run
/// # use beeorm::prelude::*;
/// # use beeorm::Ref;
/// # #[derive(Entity)] struct School { id: u64, name: String }
/// # #[derive(Entity)] struct Student { id: u64, school: Ref<School> }
/// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
/// // A new school, inserted first by the flush that inserts the student.
/// let mut ann = Tracked::new(Student { id: 0, school: Ref::new(School { id: 0, name: "North".into() }) });
/// engine.flush(&mut ann).await?;
/// assert!(ann.school.id() > 0 && ann.school.is_loaded());
/// // Read back: only the ID, until loaded.
/// let mut ann = engine.find::<Student>(ann.id).await?;
/// assert!(!ann.school.is_loaded());
/// assert_eq!(ann.school.load(engine).await?.name, "North");
/// # Ok(()) }
/// ```
pub struct Ref<T: Entity> {
    id: u64,
    loaded: Option<Arc<T>>,
    new: Option<Box<Tracked<T>>>,
    /// The new entity had no ID of its own (a failed flush gives it back 0).
    new_auto_id: bool,
}

impl<T: Entity> Ref<T> {
    /// A reference to the row with this ID (not loaded).
    pub fn from_id(id: u64) -> Self {
        Ref {
            id,
            loaded: None,
            new: None,
            new_auto_id: false,
        }
    }

    /// A reference to a new entity: the next flush of the entity holding this
    /// reference inserts it first, in the same transaction, and stores its ID.
    pub fn new(entity: T) -> Self {
        let new_auto_id = entity.id() == 0;
        Ref {
            id: 0,
            loaded: None,
            new: Some(Box::new(Tracked::new(entity))),
            new_auto_id,
        }
    }

    /// A reference to an entity already loaded (or just flushed).
    pub fn from_entity(entity: Arc<T>) -> Self {
        Ref {
            id: entity.id(),
            loaded: Some(entity),
            new: None,
            new_auto_id: false,
        }
    }

    /// The referenced ID (0 for a new entity that is not inserted yet).
    pub fn id(&self) -> u64 {
        match &self.new {
            Some(t) => t.id(),
            None => self.id,
        }
    }

    /// Whether the referenced entity is at hand ([`Ref::get`] returns it).
    pub fn is_loaded(&self) -> bool {
        self.loaded.is_some() || self.new.is_some()
    }

    /// Whether the reference holds a new entity that the next flush inserts.
    pub fn is_new(&self) -> bool {
        self.new.is_some()
    }

    /// The referenced entity, when loaded.
    pub fn get(&self) -> Option<&T> {
        match &self.new {
            Some(t) => Some(t.entity()),
            None => self.loaded.as_deref(),
        }
    }

    /// The referenced entity, shared, when loaded from the database.
    pub fn get_shared(&self) -> Option<&Arc<T>> {
        self.loaded.as_ref()
    }

    /// The new entity the next flush inserts, to change it before that.
    pub fn new_entity_mut(&mut self) -> Option<&mut Tracked<T>> {
        self.new.as_deref_mut()
    }

    /// Loads the referenced entity (one query, unless already loaded) and returns it:
    /// [`Ref::load_with`] the engine's default [`Reader`]. A typed
    /// [`Error::NotFound`] when the row does not exist or is fake-deleted.
    pub async fn load(&mut self, engine: &Engine) -> Result<&T> {
        self.load_with(&engine.read()).await
    }

    /// Loads the referenced entity through `reader` (unless already loaded) and
    /// returns it: inside its transaction ([`Reader::using`]), with its preload paths
    /// applied to the referenced entity, a fake-deleted row found only with
    /// [`Reader::include_deleted`]. A typed [`Error::NotFound`] when there is no row.
    pub async fn load_with(&mut self, reader: &Reader<'_>) -> Result<&T> {
        if self.new.is_none() && self.loaded.is_none() {
            let found = reader.find::<T>(self.id).await?;
            self.loaded = Some(Arc::new(found.into_inner()));
        }
        self.get().ok_or_else(|| Error::NotFound {
            entity: T::TYPE_NAME.to_string(),
            key: format!("id = {}", self.id),
        })
    }

    /// Sets the loaded entity (it must have this reference's ID).
    pub(crate) fn set_loaded(&mut self, entity: Arc<T>) {
        if self.new.is_none() && entity.id() == self.id {
            self.loaded = Some(entity);
        }
    }
}

impl<T: Entity> From<u64> for Ref<T> {
    fn from(id: u64) -> Self {
        Ref::from_id(id)
    }
}

impl<T: Entity> Default for Ref<T> {
    /// A reference to ID 0 (no row).
    fn default() -> Self {
        Ref::from_id(0)
    }
}

impl<T: Entity + Clone> Clone for Ref<T> {
    fn clone(&self) -> Self {
        Ref {
            id: self.id,
            loaded: self.loaded.clone(),
            new: self.new.clone(),
            new_auto_id: self.new_auto_id,
        }
    }
}

impl<T: Entity> PartialEq for Ref<T> {
    /// References are equal when they point at the same ID.
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<T: Entity> std::fmt::Debug for Ref<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ref")
            .field("entity", &T::TYPE_NAME)
            .field("id", &self.id())
            .field("loaded", &self.is_loaded())
            .field("new", &self.is_new())
            .finish()
    }
}

fn ref_spec<T: Entity>(many: bool) -> RefSpec {
    RefSpec {
        target: T::definition,
        target_type: TypeId::of::<T>,
        many,
    }
}

/// `Ref<T>`: a column of `T`'s ID type, indexed, with a foreign key.
impl<T: Entity> FieldType for Ref<T> {
    fn column_spec(a: &FieldAttributes) -> std::result::Result<ColumnSpec, String> {
        crate::schema::types_only(a, &["cascade", "skip_fk"], "Ref<T>")?;
        if a.cascade && a.skip_fk {
            return Err(
                "`cascade` needs a foreign key; it cannot be combined with `skip_fk`".into(),
            );
        }
        Ok(ColumnSpec {
            ty: ColumnType::Int {
                bytes: T::definition().id.bytes,
                unsigned: true,
            },
            nullable: false,
            reference: Some(ref_spec::<T>(false)),
        })
    }
    fn to_value(&self) -> Value {
        Value::U64(self.id())
    }
    fn from_value(v: Value) -> std::result::Result<Self, String> {
        <u64 as FieldType>::from_value(v).map(Ref::from_id)
    }
}

/// `Vec<Ref<T>>`: a JSON array of IDs, in order (no foreign key).
impl<T: Entity> FieldType for Vec<Ref<T>> {
    fn column_spec(a: &FieldAttributes) -> std::result::Result<ColumnSpec, String> {
        crate::schema::types_only(a, &[], "Vec<Ref<T>>")?;
        Ok(ColumnSpec {
            ty: ColumnType::Json,
            nullable: false,
            reference: Some(ref_spec::<T>(true)),
        })
    }
    fn to_value(&self) -> Value {
        codec::to_json(&self.iter().map(Ref::id).collect::<Vec<u64>>())
    }
    fn from_value(v: Value) -> std::result::Result<Self, String> {
        let ids: Vec<u64> = codec::json(v)?;
        Ok(ids.into_iter().map(Ref::from_id).collect())
    }
}

/// Loads the entities of one type by ID through a reader's by-ID seam, type-erased
/// (one query per 10,000 IDs).
pub type Loader =
    for<'r, 'a> fn(&'r Reader<'a>, Vec<u64>) -> BoxFuture<'r, Result<Box<dyn LoadedSet>>>;

/// Entities of one type loaded by a preload, before they are shared.
#[doc(hidden)]
pub trait LoadedSet: Send {
    /// Calls `visit` on every reference of every entity.
    fn visit_refs<'s>(&'s mut self, visit: &mut dyn FnMut(&'static str, &'s mut dyn AnyRef));
    /// The entities, shared, by ID.
    fn into_shared(self: Box<Self>) -> HashMap<u64, Arc<dyn Any + Send + Sync>>;
}

impl<T: Entity> LoadedSet for Vec<T> {
    fn visit_refs<'s>(&'s mut self, visit: &mut dyn FnMut(&'static str, &'s mut dyn AnyRef)) {
        for e in self.iter_mut() {
            e.visit_refs(visit);
        }
    }
    fn into_shared(self: Box<Self>) -> HashMap<u64, Arc<dyn Any + Send + Sync>> {
        self.into_iter()
            .map(|e| (e.id(), Arc::new(e) as Arc<dyn Any + Send + Sync>))
            .collect()
    }
}

fn load_set<'r, T: Entity>(
    reader: &'r Reader<'_>,
    ids: Vec<u64>,
) -> BoxFuture<'r, Result<Box<dyn LoadedSet>>> {
    Box::pin(async move {
        let (set, _) = reader.fetch_many::<T, _>(&ids, |e| e).await?;
        Ok(Box::new(set) as Box<dyn LoadedSet>)
    })
}

/// A new entity held by a reference, as the flusher sees it.
#[doc(hidden)]
pub struct NewEntity<'a>(pub(crate) &'a mut dyn crate::flush::Flushable);

/// The type-erased side of [`Ref<T>`] (derive plumbing).
#[doc(hidden)]
pub trait AnyRef: Send + Sync {
    /// The referenced ID.
    fn ref_id(&self) -> u64;
    /// The referenced entity type.
    fn target(&self) -> TypeId;
    /// Loads entities of the referenced type.
    fn loader(&self) -> Loader;
    /// Sets the loaded entity from a shared one of the referenced type.
    fn assign(&mut self, entity: &Arc<dyn Any + Send + Sync>);
    /// The new entity to insert first, if any (nested ones included by the flusher).
    fn new_entity(&mut self) -> Option<NewEntity<'_>>;
    /// After a committed flush: the inserted new entity becomes the loaded one.
    fn commit_new(&mut self);
    /// After a failed flush: the new entity is new again.
    fn rollback_new(&mut self);
}

impl<T: Entity> AnyRef for Ref<T> {
    fn ref_id(&self) -> u64 {
        self.id()
    }
    fn target(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn loader(&self) -> Loader {
        load_set::<T>
    }
    fn assign(&mut self, entity: &Arc<dyn Any + Send + Sync>) {
        if let Ok(e) = Arc::clone(entity).downcast::<T>() {
            self.set_loaded(e);
        }
    }
    fn new_entity(&mut self) -> Option<NewEntity<'_>> {
        self.new
            .as_deref_mut()
            .map(|t| NewEntity(t as &mut dyn crate::flush::Flushable))
    }
    fn commit_new(&mut self) {
        if let Some(t) = self.new.as_deref_mut() {
            if t.is_new() {
                return;
            }
            std::ops::DerefMut::deref_mut(t).visit_refs(&mut |_, r| r.commit_new());
        }
        if let Some(t) = self.new.take() {
            self.id = t.id();
            self.loaded = Some(Arc::new(t.into_inner()));
        }
    }
    fn rollback_new(&mut self) {
        let auto = self.new_auto_id;
        if let Some(t) = self.new.as_deref_mut() {
            if t.is_new() {
                return;
            }
            std::ops::DerefMut::deref_mut(t).visit_refs(&mut |_, r| r.rollback_new());
            t.mark_deleted();
            if auto {
                // 0 always fits an ID.
                let _ = std::ops::DerefMut::deref_mut(t).set_id(0);
            }
        }
    }
}

/// A field type holding references: `Ref<T>`, `Option<Ref<T>>`, `Vec<Ref<T>>`
/// (derive plumbing).
#[doc(hidden)]
pub trait RefField {
    /// Calls `visit` with `name` on every reference the field holds.
    fn visit_refs<'s>(
        &'s mut self,
        name: &'static str,
        visit: &mut dyn FnMut(&'static str, &'s mut dyn AnyRef),
    );
}

impl<T: Entity> RefField for Ref<T> {
    fn visit_refs<'s>(
        &'s mut self,
        name: &'static str,
        visit: &mut dyn FnMut(&'static str, &'s mut dyn AnyRef),
    ) {
        visit(name, self);
    }
}

impl<T: Entity> RefField for Option<Ref<T>> {
    fn visit_refs<'s>(
        &'s mut self,
        name: &'static str,
        visit: &mut dyn FnMut(&'static str, &'s mut dyn AnyRef),
    ) {
        if let Some(r) = self {
            visit(name, r);
        }
    }
}

impl<T: Entity> RefField for Vec<Ref<T>> {
    fn visit_refs<'s>(
        &'s mut self,
        name: &'static str,
        visit: &mut dyn FnMut(&'static str, &'s mut dyn AnyRef),
    ) {
        for r in self.iter_mut() {
            visit(name, r);
        }
    }
}
