//! The PostgreSQL driver (cargo feature `postgres`, crates `tokio-postgres` and
//! `deadpool-postgres`).
//!
//! - [`connection`]: the pool, checkout, statements, transaction statements and what
//!   becomes of a connection dropped mid-way (cancel safety);
//! - [`values`]: [`Value`](crate::Value) bound to whatever type the server expects,
//!   and cells decoded from the binary format;
//! - [`errors`]: a server error as a typed [`Error`](crate::Error), naming the unique
//!   index or foreign key that failed;
//! - [`introspect`]: the tables of the current schema, in comparable form;
//! - [`ddl`]: SQL text of the schema ([`PgDialect`]).
//!
//! PostgreSQL numbers its placeholders (`$1`, `$2`, …): SQL generated for it is
//! rendered that way when it is built ([`crate::sql::SqlWriter`]) and every
//! statement is sent verbatim, so `?` stays the jsonb operator.
//!
//! `ddl` and `introspect` need no driver crate, so they compile without the feature.

#[cfg(feature = "postgres")]
pub(crate) mod connection;
pub(crate) mod ddl;
#[cfg(feature = "postgres")]
pub(crate) mod errors;
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) mod introspect;
#[cfg(feature = "postgres")]
pub(crate) mod values;

#[cfg(feature = "postgres")]
pub(crate) use connection::PgPool;
pub(crate) use ddl::{column_type, PgDialect};
