//! [`Tracked`]: an entity together with what the database holds for it (C2).
//!
//! The snapshot travels with the entity: the value of every stored column of the row as
//! the database holds it. A flush compares the current values with it, exactly, and
//! writes only the columns that changed; nothing global, nothing to clean up. Hashes
//! would be smaller, but two values with the same hash would make a change invisible
//! (and crafting such a pair for a fast hash is cheap); the values also give change
//! logs and dirty events the "before" of each changed column.
//!
//! The snapshot is taken lazily, on the first mutable access after a load or a write
//! (`DerefMut`, [`Tracked::set_field`]): until then the entity cannot differ from its
//! row, so there is nothing to compare. Reads that never change what they load (most
//! of them) pay nothing for dirty tracking.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::{Entity, Error, Result, Value};

/// How a transaction ended, shared by the transaction and every entity flushed in it
/// with `flush_in` (issue 10 item 3): entity state written by such a flush holds only
/// if the transaction commits.
#[derive(Debug, Default)]
pub(crate) struct TxOutcome(AtomicU8);

const PENDING: u8 = 0;
const COMMITTED: u8 = 1;
const ROLLED_BACK: u8 = 2;

impl TxOutcome {
    /// The transaction committed.
    pub(crate) fn committed(&self) {
        self.0.store(COMMITTED, Ordering::Release);
    }

    /// The transaction was rolled back, dropped, or its COMMIT failed (unless it
    /// already committed).
    pub(crate) fn rolled_back(&self) {
        let _ = self
            .0
            .compare_exchange(PENDING, ROLLED_BACK, Ordering::AcqRel, Ordering::Acquire);
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }
}

/// The state an entity had before a `flush_in`, restored if its transaction does not
/// commit.
#[derive(Debug, Clone)]
struct Pending {
    outcome: Arc<TxOutcome>,
    stored: bool,
    snapshot: Option<Box<[Value]>>,
    delete: Option<DeleteMode>,
    upsert: Option<Box<[(String, Value)]>>,
    id: u64,
    /// The whole row (`id` first) when the flush replaced the entity (an upsert read
    /// back the existing row).
    row: Option<Vec<Value>>,
}

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
    /// Column values (all but `id`) of the stored row, taken on the first mutable
    /// access; `None` while the entity was not handed out mutably since it was loaded
    /// or written (so it still equals its row), or when the row does not exist.
    snapshot: Option<Box<[Value]>>,
    pub(crate) delete: Option<DeleteMode>,
    /// Boxed: rare, and a loaded entity should stay small.
    pub(crate) upsert: Option<Box<[(String, Value)]>>,
    /// Set by `flush_in` until its transaction ends: what to restore on rollback.
    pending: Option<Box<Pending>>,
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
            pending: None,
        }
    }

    /// Before a `flush_in` changes this entity's state: remembers the current state,
    /// restored unless `outcome` ends committed. A second flush in the same
    /// transaction keeps the first state.
    pub(crate) fn remember(&mut self, outcome: &Arc<TxOutcome>, whole_row: bool) {
        self.settle();
        if let Some(p) = &self.pending {
            if Arc::ptr_eq(&p.outcome, outcome) {
                if whole_row && p.row.is_none() {
                    let row = self.row();
                    if let Some(p) = &mut self.pending {
                        p.row = Some(row);
                    }
                }
                return;
            }
        }
        self.pending = Some(Box::new(Pending {
            outcome: outcome.clone(),
            stored: self.stored,
            snapshot: self.snapshot.clone(),
            delete: self.delete,
            upsert: self.upsert.clone(),
            id: self.entity.id(),
            row: whole_row.then(|| self.row()),
        }));
    }

    /// `id` and every stored column, as a row read from the database would hold them.
    pub(crate) fn row(&self) -> Vec<Value> {
        let mut row = Vec::with_capacity(E::COLUMN_COUNT + 1);
        row.push(Value::U64(self.entity.id()));
        self.entity.push_values(&mut row);
        row
    }

    /// Resolves a finished `flush_in` transaction: committed, its state stays; rolled
    /// back or dropped, the entity gets back the state it had before the flush (a new
    /// entity is new again, with its old `id`).
    pub(crate) fn settle(&mut self) {
        let Some(outcome) = self.pending.as_ref().map(|p| p.outcome.get()) else {
            return;
        };
        match outcome {
            PENDING => {}
            COMMITTED => self.pending = None,
            _ => {
                if let Some(p) = self.pending.take() {
                    let p = *p;
                    if let Some(mut row) = p.row {
                        if let Ok(e) = crate::entity::decode::<E>(&mut row) {
                            self.entity = e;
                        }
                    }
                    // The ID was valid for this entity before; it fits again.
                    let _ = self.entity.set_id(p.id);
                    self.stored = p.stored;
                    self.snapshot = p.snapshot;
                    self.delete = p.delete;
                    self.upsert = p.upsert;
                }
            }
        }
    }

    /// The state a read sees: the remembered one once a `flush_in` transaction
    /// rolled back (until the next mutable access settles it).
    fn view(&self) -> (bool, Option<&[Value]>, Option<DeleteMode>) {
        match &self.pending {
            Some(p) if p.outcome.get() == ROLLED_BACK => {
                (p.stored, p.snapshot.as_deref(), p.delete)
            }
            _ => (self.stored, self.snapshot.as_deref(), self.delete),
        }
    }

    /// An entity as just read from the database.
    pub(crate) fn loaded(entity: E) -> Self {
        let mut t = Tracked::new(entity);
        t.stored = true;
        t
    }

    /// Becomes `entity` as just read from the database (an upsert's row read back),
    /// keeping what a pending `flush_in` must restore.
    pub(crate) fn replace_loaded(&mut self, entity: E) {
        let pending = self.pending.take();
        *self = Tracked::loaded(entity);
        self.pending = pending;
    }

    /// The entity for a change: takes the snapshot first when the entity was clean.
    fn touch(&mut self) -> &mut E {
        self.settle();
        if self.stored && self.snapshot.is_none() {
            self.snapshot = Some(self.values().into_boxed_slice());
        }
        &mut self.entity
    }

    /// The entity, mutably, without taking a snapshot: only for changes that leave
    /// every stored column as it is (attaching preloaded references).
    pub(crate) fn untracked_mut(&mut self) -> &mut E {
        self.settle();
        &mut self.entity
    }

    /// The values of every stored column but `id`, as the entity holds them now.
    fn values(&self) -> Vec<Value> {
        let mut out = Vec::with_capacity(E::COLUMN_COUNT);
        self.entity.push_values(&mut out);
        out
    }

    /// The values (every stored column but `id`, in column order) of the row as the
    /// database holds it, when the entity may have changed since it was loaded or
    /// written; `None` while it cannot have (or the row does not exist). The "before"
    /// of a change.
    pub(crate) fn loaded_values(&self) -> Option<&[Value]> {
        self.view().1
    }

    /// True while the row is not in the database (never flushed, or deleted for real).
    /// A fake delete keeps the row (flagged): the entity is not new afterwards and its
    /// `fake_delete` field reads `true`, as a load of the row would. An entity
    /// inserted by [`Flusher::flush_in`](crate::Flusher::flush_in) is new again once
    /// that transaction is rolled back or dropped.
    pub fn is_new(&self) -> bool {
        !self.view().0
    }

    /// True when a flush would write something: a new row, a changed field, or a
    /// pending delete.
    pub fn is_dirty(&self) -> bool {
        let (stored, _, delete) = self.view();
        if !stored {
            return delete.is_none();
        }
        delete.is_some()
            || self.loaded_values().is_some_and(|before| {
                let now = self.values();
                before.len() != now.len() || before.iter().zip(&now).any(|(b, n)| !same_value(b, n))
            })
    }

    /// The columns that changed: (index among the non-`id` columns, new value). Empty
    /// while there is no snapshot (nothing can have changed).
    pub(crate) fn changes(&self) -> Vec<(usize, Value)> {
        let Some(before) = self.loaded_values() else {
            return Vec::new();
        };
        self.values()
            .into_iter()
            .enumerate()
            .filter(|(i, now)| before.get(*i).is_none_or(|b| !same_value(b, now)))
            .collect()
    }

    /// Records that the database now holds the entity as it is.
    pub(crate) fn mark_saved(&mut self) {
        self.stored = true;
        self.snapshot = None;
        self.upsert = None;
    }

    /// Records that the row is gone (a real DELETE; a fake delete is a save of the
    /// flag, see `Flushable::fake_deleted`).
    pub(crate) fn mark_deleted(&mut self) {
        self.stored = false;
        self.snapshot = None;
        self.delete = None;
    }

    /// Sets a stored field by its Rust name, e.g. from a form:
    /// `user.set_field("age", 30)`. The value is converted as when loading. Errors
    /// leave the field unchanged: [`Error::WrongFieldType`] when the value does not
    /// convert to the field's type (or is out of its range), [`Error::UnknownField`]
    /// when no stored field has that name (the primary key, embedded and `ignore`d
    /// fields cannot be set by name).
    pub fn set_field(&mut self, name: &str, value: impl Into<Value>) -> Result<()> {
        self.touch()
            .set_field(name, value.into())
            .map_err(|e| Error::set_field::<E>(name, e))
    }

    /// Marks the row for deletion by the next flush (a fake delete when the entity
    /// has `fake_delete: bool`: the row stays, flagged, and the entity's field reads
    /// `true` once the flush committed).
    pub fn mark_to_delete(&mut self) {
        self.settle();
        self.delete = Some(DeleteMode::Delete);
    }

    /// Marks the row for a real DELETE by the next flush, even with `fake_delete`.
    pub fn mark_to_force_delete(&mut self) {
        self.settle();
        self.delete = Some(DeleteMode::Force);
    }

    /// Forgets a pending delete.
    pub fn cancel_delete(&mut self) {
        self.settle();
        self.delete = None;
    }

    /// Turns the next insert into an upsert: when a unique index already holds the
    /// row — any of the entity's unique indexes, or the primary key when the entity
    /// carries an explicit ID — these columns are set on that row instead (an empty
    /// list changes nothing), and the entity takes the existing row's ID and values.
    /// All three dialects behave alike; should the values clash with two different
    /// rows, one of them is taken (on PostgreSQL: by the ID first, then by the unique
    /// indexes in name order). Text in the list is normalised like the entity's when
    /// the Persian normaliser is on. The names are column names, checked against the
    /// entity's columns when the flush is planned: an unknown one (or `id`) fails it
    /// with [`Error::InvalidArgument`] before anything is sent.
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

/// Whether two column values are the same stored value. Exact: floats by their bits (a
/// change from `0.0` to `-0.0` is a change, `NaN` equals itself), everything else by
/// `==` on the value.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{Hash, Hasher};

    /// A hand-written entity: one `i64` column.
    #[derive(Debug)]
    struct Counter {
        id: u64,
        n: i64,
    }

    impl Entity for Counter {
        fn definition() -> crate::schema::EntityDefinition {
            unreachable!("not registered in these tests")
        }
        fn id(&self) -> u64 {
            self.id
        }
        fn set_id(&mut self, id: u64) -> std::result::Result<(), String> {
            self.id = id;
            Ok(())
        }
        fn push_values(&self, out: &mut Vec<Value>) {
            out.push(Value::I64(self.n));
        }
        fn from_values(
            _: &mut crate::Cells<'_>,
        ) -> std::result::Result<Self, crate::schema::DecodeError> {
            unreachable!("not loaded in these tests")
        }
        fn set_field(
            &mut self,
            _: &str,
            _: Value,
        ) -> std::result::Result<(), crate::schema::SetFieldError> {
            Err(crate::schema::SetFieldError::UnknownField)
        }
        fn visit_strings(&mut self, _: &mut dyn FnMut(&mut String)) {}
        const COLUMN_COUNT: usize = 1;
    }

    /// The FxHash that dirty tracking used to compare for an integer column.
    fn fx(n: i64) -> u64 {
        let mut h = rustc_hash::FxHasher::default();
        (n as i128).hash(&mut h);
        h.finish()
    }

    #[test]
    fn values_with_the_same_fxhash_still_compare_different() {
        let (before, after) = (570_667_814_807_212_787_i64, i64::MIN);
        assert_eq!(fx(before), fx(after), "a real FxHash collision");
        let mut t = Tracked::loaded(Counter { id: 7, n: before });
        assert!(!t.is_dirty());
        t.n = after;
        assert!(t.is_dirty());
        assert_eq!(t.changes(), vec![(0, Value::I64(after))]);
        assert_eq!(t.loaded_values(), Some(&[Value::I64(before)][..]));
    }

    #[test]
    fn the_snapshot_is_lazy_and_dropped_once_written() {
        let mut t = Tracked::loaded(Counter { id: 7, n: 1 });
        let _ = t.n; // a read takes no snapshot
        assert!(t.loaded_values().is_none());
        t.n = 1;
        assert_eq!(t.loaded_values(), Some(&[Value::I64(1)][..]));
        assert!(t.changes().is_empty(), "same value, no change");
        t.mark_saved();
        assert!(t.loaded_values().is_none());
    }

    #[test]
    fn floats_compare_by_bits() {
        assert!(!same_value(&Value::F64(0.0), &Value::F64(-0.0)));
        assert!(same_value(&Value::F64(f64::NAN), &Value::F64(f64::NAN)));
        assert!(same_value(&Value::F32(1.5), &Value::F32(1.5)));
    }
}
