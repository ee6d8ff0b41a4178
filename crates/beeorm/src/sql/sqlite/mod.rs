//! The SQLite driver (cargo feature `sqlite`, crate `rusqlite` with its bundled
//! library).
//!
//! - [`checkout`]: the pool's idle connections, checkout and return (fair waits);
//! - [`connection`]: the pool, statements (inline, or on a blocking thread
//!   while the database is locked), transaction statements and what becomes of a
//!   connection dropped mid-way (cancel safety);
//! - [`values`]: [`Value`](crate::Value) ↔ SQLite storage classes;
//! - [`errors`]: a failure as a typed [`Error`](crate::Error); SQLite names the
//!   columns of a broken unique index, [`errors::name_unique_index`] the index;
//! - [`introspect`]: the tables of the database, from their stored CREATE text;
//! - [`ddl`]: SQL text of the schema ([`SqliteDialect`]), table rebuilds.
//!
//! `ddl` and `introspect` need no driver crate, so they compile without the feature.

#[cfg(feature = "sqlite")]
pub(crate) mod checkout;
#[cfg(feature = "sqlite")]
pub(crate) mod connection;
pub(crate) mod ddl;
#[cfg(feature = "sqlite")]
pub(crate) mod errors;
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) mod introspect;
#[cfg(feature = "sqlite")]
pub(crate) mod values;

#[cfg(feature = "sqlite")]
pub(crate) use connection::SqlitePool;
pub(crate) use ddl::{SqliteDialect, REBUILD_HEAD, REBUILD_TAIL};
