//! The write seam: what a committed unit of work changed ([`ChangeSet`]) and the
//! [`Observer`]s that see it.
//!
//! Entity caches, events, change logs and search-index sync all need one answer to
//! "which rows changed, how, and are they durable now?". The flush (`flush/commit.rs`)
//! builds that answer once per committed unit of work — one flush, or one
//! [`Transaction`](crate::Transaction) with everything flushed in it — and hands it to
//! every observer registered with
//! [`Registry::register_observer`](crate::Registry::register_observer) at two points:
//!
//! * [`Observer::in_transaction`], inside the transaction, before COMMIT, with an
//!   [`ObserverTx`] that runs SQL on the same connection: what it writes (a
//!   change-log row) commits with the entities' rows, and an error there rolls the
//!   whole unit back — no row is written and the entities stay as they were;
//! * [`Observer::after_commit`], once the rows are durable (never for a transaction
//!   that was rolled back, dropped, or whose COMMIT failed).
//!
//! Registered lifecycle after-hooks ([`crate::hooks`]) run in that same after-commit
//! step, before the observers.
//!
//! Nothing is built when no observer is registered: a flush without observers pays
//! nothing for the seam. A flush over several pools commits pool by pool; each pool's
//! transaction gets its own `in_transaction` call (with that pool's changes) and
//! `after_commit` sees exactly the pools that committed, even when a later pool failed
//! (see [`Flusher::flush`](crate::Flusher::flush)).
//!
//! See [`Observer`] for an example.

use std::any::TypeId;

use crate::hooks::BoxFuture;
use crate::sql::pool::Conn;
use crate::{DialectKind, ExecResult, Result, Value};

/// Everything one committed unit of work changed, one [`Change`] per entity, in the
/// order the statements wrote them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeSet {
    changes: Vec<Change>,
}

impl ChangeSet {
    pub(crate) fn from_changes(changes: Vec<Change>) -> Self {
        ChangeSet { changes }
    }

    pub(crate) fn extend(&mut self, other: ChangeSet) {
        self.changes.extend(other.changes);
    }

    /// The changes, in write order.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The changes, in write order.
    pub fn iter(&self) -> std::slice::Iter<'_, Change> {
        self.changes.iter()
    }

    /// How many entities changed.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes of entity type `E`.
    pub fn of<E: 'static>(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.entity_type == TypeId::of::<E>())
    }

    /// The relational pools the changes were written to, each once, in first-write
    /// order.
    pub fn pools(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in &self.changes {
            if !out.contains(&c.pool.as_str()) {
                out.push(&c.pool);
            }
        }
        out
    }
}

impl<'a> IntoIterator for &'a ChangeSet {
    type Item = &'a Change;
    type IntoIter = std::slice::Iter<'a, Change>;
    fn into_iter(self) -> Self::IntoIter {
        self.changes.iter()
    }
}

/// What one unit of work did to one entity's row.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Change {
    /// The entity's Rust type.
    pub entity_type: TypeId,
    /// The entity's Rust type name.
    pub entity_name: &'static str,
    /// Its table.
    pub table: String,
    /// The relational pool the row lives in.
    pub pool: String,
    /// The row's ID (the server-given one for an insert).
    pub id: u64,
    /// What happened to the row.
    pub kind: ChangeKind,
    /// The whole row (columns but the ID) before an update or a delete, as it was
    /// loaded: filled only for entities that keep a change log (`#[orm(log)]`),
    /// `None` otherwise and for inserts and upserts.
    pub before: Option<Vec<(String, Value)>>,
}

/// How a row changed. Column values are as written to the database (`id` excluded;
/// a fake-delete flag as the field's `bool` would encode it).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// A new row, with every stored column (name, value).
    Inserted {
        /// The row's columns but `id`, in column order.
        values: Vec<(String, Value)>,
    },
    /// Changed columns of an existing row.
    Updated {
        /// Only the columns that changed.
        columns: Vec<ColumnChange>,
    },
    /// The row was deleted.
    Deleted {
        /// `true` for a fake delete (the row stays, flagged), `false` for a DELETE.
        fake: bool,
    },
    /// An upsert: the row as the database holds it afterwards (read back).
    Upserted {
        /// The row's columns but `id`, in column order.
        values: Vec<(String, Value)>,
        /// `Some(true)` when the row was inserted, `Some(false)` when an existing row
        /// was taken (and updated with the update list), `None` when the server did
        /// not say (SQLite).
        inserted: Option<bool>,
    },
}

/// One changed column of an update.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ColumnChange {
    /// The column name.
    pub name: String,
    /// What the row held before.
    pub old: Value,
    /// What it holds now.
    pub new: Value,
}

impl ColumnChange {
    pub(crate) fn new(name: String, old: Value, new: Value) -> Self {
        ColumnChange { name, old, new }
    }
}

/// Sees every committed unit of work, once it is known which rows changed and how
/// ([`ChangeSet`]). Register one with
/// [`Registry::register_observer`](crate::Registry::register_observer); it is called
///
/// * inside the transaction, before COMMIT ([`Observer::in_transaction`]), with a
///   handle on the same connection: what it writes (a change-log row) commits with
///   the rows, and an error rolls the whole unit back;
/// * after the COMMIT ([`Observer::after_commit`]); never for a transaction that was
///   rolled back, dropped, or whose COMMIT failed.
///
/// Both calls have a default that does nothing: implement only what you need. A
/// flush over several pools calls `in_transaction` once per pool (with that pool's
/// changes) and `after_commit` once with exactly what committed (see
/// [`Flusher::flush`](crate::Flusher::flush)); a [`Transaction`](crate::Transaction)
/// calls `in_transaction` on each [`Flusher::flush_in`](crate::Flusher::flush_in)
/// and `after_commit` once, from [`Transaction::commit`](crate::Transaction::commit).
///
/// ```
/// use std::sync::Arc;
/// use beeorm::hooks::BoxFuture;
/// use beeorm::prelude::*;
/// use beeorm::{ChangeKind, ChangeSet, DialectKind, Observer, ObserverTx};
///
/// /// Writes one `change_log` row per changed entity, in the flush's transaction.
/// struct ChangeLog;
///
/// impl Observer for ChangeLog {
///     fn in_transaction<'a>(
///         &'a self,
///         changes: &'a ChangeSet,
///         tx: &'a mut ObserverTx<'_>,
///     ) -> BoxFuture<'a, beeorm::Result<()>> {
///         Box::pin(async move {
///             for change in changes {
///                 let what = match &change.kind {
///                     ChangeKind::Inserted { .. } => "insert",
///                     ChangeKind::Updated { .. } => "update",
///                     ChangeKind::Deleted { .. } => "delete",
///                     ChangeKind::Upserted { .. } => "upsert",
///                     _ => "other",
///                 };
///                 // The SQL is sent as written: PostgreSQL numbers its placeholders.
///                 let sql = if tx.kind() == DialectKind::Postgres {
///                     "INSERT INTO change_log (tbl, row_id, what) VALUES ($1, $2, $3)"
///                 } else {
///                     "INSERT INTO change_log (tbl, row_id, what) VALUES (?, ?, ?)"
///                 };
///                 tx.execute(
///                     sql,
///                     vec![change.table.clone().into(), change.id.into(), what.into()],
///                 )
///                 .await?;
///             }
///             Ok(())
///         })
///     }
/// }
///
/// let mut registry = Registry::new();
/// registry.register_observer(Arc::new(ChangeLog));
/// ```
pub trait Observer: Send + Sync + 'static {
    /// Inside the transaction, after every statement of one pool's unit of work and
    /// before its COMMIT: SQL run through `tx` commits (or rolls back) with the rows.
    /// An error rolls the unit back: nothing of it is written, the entities are as
    /// they were before the flush, and the flush returns this error. For
    /// [`Flusher::flush_in`](crate::Flusher::flush_in) this runs during `flush_in` on
    /// the caller's transaction (the caller rolls it back on the error).
    fn in_transaction<'a>(
        &'a self,
        changes: &'a ChangeSet,
        tx: &'a mut ObserverTx<'_>,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = (changes, tx);
        Box::pin(async { Ok(()) })
    }

    /// After the COMMIT, with everything that committed. An error is returned by the
    /// flush (or by [`Transaction::commit`](crate::Transaction::commit)) after every
    /// other observer ran, but the rows are committed: do not retry the write.
    fn after_commit<'a>(&'a self, changes: &'a ChangeSet) -> BoxFuture<'a, Result<()>> {
        let _ = changes;
        Box::pin(async { Ok(()) })
    }

    /// Whether [`Observer::in_transaction`] must be called. A flush that would send a
    /// single statement without a transaction opens one for it when any registered
    /// observer says `true` (the default); return `false` from an observer that only
    /// implements [`Observer::after_commit`] to keep such flushes as they are.
    fn needs_transaction(&self) -> bool {
        true
    }
}

/// The transaction a unit of work runs in, as [`Observer::in_transaction`] sees it:
/// statements run on the flush's own connection, inside its transaction.
/// The SQL reaches the server as written, as for [`Db`](crate::Db): placeholders are
/// `?` on MySQL and SQLite and `$1`, `$2`, … on PostgreSQL (see [`ObserverTx::kind`]).
pub struct ObserverTx<'c> {
    pub(crate) conn: &'c mut Conn,
    pub(crate) pool: &'c str,
    pub(crate) kind: DialectKind,
}

impl std::fmt::Debug for ObserverTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserverTx")
            .field("pool", &self.pool)
            .finish()
    }
}

impl ObserverTx<'_> {
    /// The pool of this transaction.
    pub fn pool_name(&self) -> &str {
        self.pool
    }

    /// The server kind behind the pool.
    pub fn kind(&self) -> DialectKind {
        self.kind
    }

    /// Runs one statement that returns no rows, in the transaction.
    pub async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<ExecResult> {
        self.conn.execute(sql, params).await
    }

    /// Runs one query in the transaction and returns every row.
    pub async fn query(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>> {
        self.conn.query(sql, params).await
    }
}
