//! Instrumentation: one hook that sees every relational statement and every
//! transaction step, for metrics and for tests.
//!
//! `tracing` already reports each statement, but its output is text for people: a
//! program that wants to count statements, time them per pool or alert on failed
//! commits would have to parse it. [`Instrumentation`] gets the same facts as data.
//! Register it once with [`Registry::set_instrumentation`](crate::Registry::set_instrumentation);
//! every pool of the validated registry calls it from the one place where statements
//! are sent (the pool front of `sql/`), so nothing — flush, loaders, schema sync,
//! plain SQL through [`Db`](crate::Db) — escapes it.
//!
//! Cost: without a hook, one `Option` check per statement; with one, a virtual call
//! per statement and per transaction step, with borrowed data (nothing is copied for
//! it). The hook runs on the task that sent the statement: keep it short and never
//! block in it.
//!
//! What is reported:
//! - every statement, `BEGIN`, `COMMIT` and `ROLLBACK` included, once it finished
//!   or failed ([`StatementEvent`]): pool, SQL text (never the values), duration,
//!   rows affected or returned;
//! - every transaction step ([`TransactionEvent`]): begin, commit, rollback, and the
//!   rollback of a transaction dropped without commit or rollback (`dropped`), which
//!   happens in the background or by closing the connection.

use std::sync::Arc;
use std::time::Duration;

use crate::{DialectKind, Error};

/// A hook that sees every statement and every transaction step of the relational
/// pools (see the [module docs](self)). Implement it for metrics or tests:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use beeorm::{Instrumentation, StatementEvent};
///
/// #[derive(Default)]
/// struct Count(AtomicU64);
///
/// impl Instrumentation for Count {
///     fn on_statement(&self, _event: &StatementEvent<'_>) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
/// ```
pub trait Instrumentation: Send + Sync + 'static {
    /// A statement finished, successfully or not.
    fn on_statement(&self, event: &StatementEvent<'_>);

    /// A transaction began, committed or rolled back (also when it was dropped).
    /// Does nothing unless implemented.
    fn on_transaction(&self, event: &TransactionEvent<'_>) {
        let _ = event;
    }
}

/// One statement, after it finished.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct StatementEvent<'a> {
    /// The relational pool.
    pub pool: &'a str,
    /// Its server kind.
    pub dialect: DialectKind,
    /// The SQL as the library or the caller wrote it, without values.
    pub sql: &'a str,
    /// From sending the statement to its last row (or failure).
    pub duration: Duration,
    /// Rows affected (INSERT, UPDATE, DELETE) or returned (queries); 0 for scripts
    /// (DDL, `BEGIN`, `COMMIT`, …) and failed statements.
    pub rows: u64,
    /// The error, when it failed.
    pub error: Option<&'a Error>,
}

/// The step of a transaction an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionStep {
    /// `BEGIN` (`START TRANSACTION` on MySQL, `BEGIN IMMEDIATE` on SQLite) was sent.
    Begin,
    /// `COMMIT` was sent.
    Commit,
    /// `ROLLBACK` was sent, or the transaction was dropped (see
    /// [`TransactionEvent::dropped`]).
    Rollback,
}

/// One step of a transaction.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TransactionEvent<'a> {
    /// The relational pool.
    pub pool: &'a str,
    /// Its server kind.
    pub dialect: DialectKind,
    /// What happened.
    pub step: TransactionStep,
    /// A [`Rollback`](TransactionStep::Rollback) of a transaction dropped without
    /// commit or rollback (or whose commit failed): it rolls back in the background,
    /// or its connection is closed when its state is unknown. `duration` is zero.
    pub dropped: bool,
    /// How long the statement of the step took.
    pub duration: Duration,
    /// The error, when the step failed.
    pub error: Option<&'a Error>,
}

/// The hook a pool calls, if any.
pub(crate) type Hook = Option<Arc<dyn Instrumentation>>;

/// How many rows a statement's result reports to [`StatementEvent::rows`].
pub(crate) trait RowCount {
    /// Rows affected or returned.
    fn row_count(&self) -> u64;
}

impl RowCount for () {
    fn row_count(&self) -> u64 {
        0
    }
}

impl RowCount for crate::ExecResult {
    fn row_count(&self) -> u64 {
        self.affected_rows
    }
}

impl<T> RowCount for Vec<T> {
    fn row_count(&self) -> u64 {
        self.len() as u64
    }
}

impl<T> RowCount for Option<T> {
    fn row_count(&self) -> u64 {
        u64::from(self.is_some())
    }
}

impl<C, T> RowCount for (C, Vec<T>) {
    fn row_count(&self) -> u64 {
        self.1.len() as u64
    }
}

/// The hook as the registry keeps it until `validate()` hands it to the pools.
#[derive(Clone, Default)]
pub(crate) struct HookSlot(pub(crate) Hook);

impl std::fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}
