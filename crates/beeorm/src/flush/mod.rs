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
//! (`schema::limits`).
//!
//! The folder follows the path of a write:
//!
//! * `api.rs` — [`Flusher`]'s public methods (track, flush, flush_in, …);
//! * `item.rs` — the type-erased entity the rest works on (`Flushable`, `Op`);
//! * `plan.rs` — statements from the entities' operations: pure, no I/O;
//! * `execute.rs` — hooks before, connections, running statements, their effects;
//! * `commit.rs` — THE commit function and THE after-commit step: the write seam,
//!   where the change set ([`crate::ChangeSet`]) is built and observers are called;
//! * `lock.rs` — flushing under a Redis lock;
//! * `lazy.rs`, `lazy_apply.rs` — the lazy flush: publishing the writes to a Redis
//!   stream, and the applier that writes them (see `docs/lazy_flush.md`).

mod api;
mod commit;
mod execute;
mod item;
#[cfg(feature = "redis")]
mod lazy;
#[cfg(feature = "redis")]
mod lazy_apply;
#[cfg(feature = "redis")]
mod lock;
mod plan;

pub(crate) use crate::tracked::TxOutcome;
pub use api::Flusher;
pub(crate) use commit::Queued;
pub(crate) use commit::TxPending;
pub(crate) use item::Flushable;
#[cfg(feature = "redis")]
pub(crate) use lazy::{LazyConfig, LAZY_GROUP};
#[cfg(feature = "redis")]
pub use lazy_apply::{DeadLetter, LazyBacklog, LazyConsumer, LazyDeadLetters};
