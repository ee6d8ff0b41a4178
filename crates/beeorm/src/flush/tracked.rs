//! [`Tracked`]: an entity together with what the database holds for it (C2).
//!
//! The snapshot travels with the entity: one hash per stored column of the row as the
//! database holds it. A flush compares the current hashes with it and writes only the
//! columns that changed; nothing global, nothing to clean up.
//!
//! The snapshot is taken lazily, on the first mutable access after a load or a write
//! (`DerefMut`, [`Tracked::set_field`]): until then the entity cannot differ from its
//! row, so there is nothing to compare. Reads that never change what they load (most
//! of them) pay no hashing and no allocation for dirty tracking.

use std::ops::{Deref, DerefMut};

use crate::{Entity, Error, Result, Value};

/// What a delete does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeleteMode {
    /// Fake delete where the entity has `fake_delete: bool`, else a real DELETE.
    Delete,
    /// Always a real DELETE.
    Force,
}

/// An entity and its database state. Loads return it; wrap a new entity with
/// [`Tracked::new`] to insert it. It dereferences to the entity, so fields are read
/// and written directly: `user.name = "Ann".into()`.
#[derive(Debug, Clone)]
pub struct Tracked<E> {
    entity: E,
    /// True when the row exists in the database.
    stored: bool,
    /// Column hashes of the stored row, taken on the first mutable access; `None`
    /// while the entity was not handed out mutably since it was loaded or written
    /// (so it still equals its row), or when the row does not exist.
    snapshot: Option<Box<[u64]>>,
    pub(crate) delete: Option<DeleteMode>,
    /// Boxed: rare, and a loaded entity should stay small.
    pub(crate) upsert: Option<Box<[(String, Value)]>>,
}

impl<E: Entity> Tracked<E> {
    /// A new entity, inserted by the next flush. A non-zero `id` is inserted as given.
    pub fn new(entity: E) -> Self {
        Tracked {
            entity,
            stored: false,
            snapshot: None,
            delete: None,
            upsert: None,
        }
    }

    /// An entity as just read from the database.
    pub(crate) fn loaded(entity: E) -> Self {
        let mut t = Tracked::new(entity);
        t.stored = true;
        t
    }

    /// The entity for a change: takes the snapshot first when the entity was clean.
    fn touch(&mut self) -> &mut E {
        if self.stored && self.snapshot.is_none() {
            self.snapshot = Some(self.hashes().into_boxed_slice());
        }
        &mut self.entity
    }

    /// The entity, mutably, without taking a snapshot: only for changes that leave
    /// every stored column as it is (attaching preloaded references).
    pub(crate) fn untracked_mut(&mut self) -> &mut E {
        &mut self.entity
    }

    fn hashes(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(E::COLUMN_COUNT);
        self.entity.push_hashes(&mut out);
        out
    }

    /// True while the row is not in the database (never flushed, or deleted).
    pub fn is_new(&self) -> bool {
        !self.stored
    }

    /// True when a flush would write something: a new row, a changed field, or a
    /// pending delete.
    pub fn is_dirty(&self) -> bool {
        if !self.stored {
            return self.delete.is_none();
        }
        self.delete.is_some()
            || self
                .snapshot
                .as_ref()
                .is_some_and(|snap| **snap != *self.hashes())
    }

    /// Indexes (into the non-`id` columns) of the columns that changed.
    pub(crate) fn changed_columns(&self) -> Vec<usize> {
        let Some(snap) = &self.snapshot else {
            return Vec::new();
        };
        self.hashes()
            .iter()
            .zip(snap.iter())
            .enumerate()
            .filter(|(_, (now, then))| now != then)
            .map(|(i, _)| i)
            .collect()
    }

    /// Records that the database now holds the entity as it is.
    pub(crate) fn mark_saved(&mut self) {
        self.stored = true;
        self.snapshot = None;
        self.upsert = None;
    }

    /// Records that the row is gone.
    pub(crate) fn mark_deleted(&mut self) {
        self.stored = false;
        self.snapshot = None;
        self.delete = None;
    }

    /// Sets a stored field by name, e.g. from a form: `user.set_field("age", 30)`.
    /// The value is converted as when loading; a wrong type is an error.
    pub fn set_field(&mut self, name: &str, value: impl Into<Value>) -> Result<()> {
        let entity = E::TYPE_NAME;
        self.touch()
            .set_field(name, value.into())
            .map_err(|reason| Error::Decode {
                entity: entity.to_string(),
                field: name.to_string(),
                reason,
            })
    }

    /// Marks the row for deletion by the next flush (a fake delete when the entity
    /// has `fake_delete: bool`).
    pub fn mark_to_delete(&mut self) {
        self.delete = Some(DeleteMode::Delete);
    }

    /// Marks the row for a real DELETE by the next flush, even with `fake_delete`.
    pub fn mark_to_force_delete(&mut self) {
        self.delete = Some(DeleteMode::Force);
    }

    /// Forgets a pending delete.
    pub fn cancel_delete(&mut self) {
        self.delete = None;
    }

    /// Turns the next insert into an upsert: when a unique index already holds the
    /// row, these columns are set instead (an empty list changes nothing), and the
    /// entity takes the existing row's ID and values.
    pub fn on_duplicate_key_update<N: Into<String>, V: Into<Value>>(
        &mut self,
        set: impl IntoIterator<Item = (N, V)>,
    ) {
        self.upsert = Some(set.into_iter().map(|(n, v)| (n.into(), v.into())).collect());
    }

    /// The entity.
    pub fn entity(&self) -> &E {
        &self.entity
    }

    /// The entity, without its database state.
    pub fn into_inner(self) -> E {
        self.entity
    }
}

impl<E> Deref for Tracked<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.entity
    }
}

impl<E: Entity> DerefMut for Tracked<E> {
    fn deref_mut(&mut self) -> &mut E {
        self.touch()
    }
}
