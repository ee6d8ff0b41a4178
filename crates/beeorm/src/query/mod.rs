//! Queries: [`Where`] (an SQL condition with `?` parameters) and [`Pager`] for the
//! entity searches, and the [`QueryBuilder`] with its [`Driver`]s (capability H).

mod builder;
mod pager;
mod row;
mod where_;

pub use builder::{Condition, Driver, QueryBuilder, QueryError};
pub use pager::Pager;
pub use row::FromRow;
pub use where_::{Param, ToParam, ToParams, Where};
