//! The MySQL / MariaDB driver (cargo feature `mysql`, crate `mysql_async`).
//!
//! - [`connection`]: the pool, checkout, statements, transaction statements and what
//!   becomes of a connection dropped mid-way (cancel safety);
//! - [`values`]: [`Value`](crate::Value) ↔ mysql_async values;
//! - [`errors`]: a server error as a typed [`Error`](crate::Error), naming the unique
//!   index or foreign key that failed;
//! - [`introspect`]: the tables of a database, in comparable form;
//! - [`ddl`]: SQL text of the schema ([`MySqlDialect`]).
//!
//! `ddl` and `introspect` need no driver crate (they build text, and read through the
//! pool front), so they compile without the feature: schema sync above the drivers
//! stays free of `cfg`s.

#[cfg(feature = "mysql")]
pub(crate) mod connection;
pub(crate) mod ddl;
#[cfg(feature = "mysql")]
pub(crate) mod errors;
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) mod introspect;
#[cfg(feature = "mysql")]
pub(crate) mod values;

#[cfg(feature = "mysql")]
pub(crate) use connection::MySqlPool;
pub(crate) use ddl::MySqlDialect;
