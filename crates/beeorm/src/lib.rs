#![recursion_limit = "256"]
#![doc = include_str!("../docs/overview.md")]
#![doc = include_str!("../docs/types.md")]

// The derives' `::beeorm::…` paths, for the crate's own unit tests.
#[cfg(test)]
extern crate self as beeorm;

mod cache;
mod change_log;
#[cfg(feature = "clickhouse")]
pub mod clickhouse;
mod db;
mod engine;
mod entity;
mod error;
#[cfg(feature = "redis")]
pub mod events;
mod executor;
mod flush;
pub mod hooks;
mod instrument;
mod load;
pub mod logging;
mod observe;
pub mod query;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(not(feature = "redis"))]
#[path = "redis_off.rs"]
mod redis;
mod reference;
mod registry;
pub mod schema;
pub mod search;
mod sql;
mod sync;
mod tracked;

#[cfg(feature = "redis")]
pub use crate::redis::{Limit, Lock, Locker, RedisClient};
pub use beeorm_derive::{Embedded, Entity, OrmEnum};
pub use cache::{
    CacheStats, EntityCacheStats, LayerStats, LocalCache, LocalCacheBound, LocalCacheStats,
};
pub use change_log::{EntityLog, LogMeta};
pub use db::{Db, Transaction};
pub use engine::Engine;
pub use entity::{Cells, Embedded, Entity};
pub use error::{Error, Result};
pub use flush::Flusher;
#[cfg(feature = "redis")]
pub use flush::{DeadLetter, LazyBacklog, LazyConsumer, LazyDeadLetters};
pub use instrument::{Instrumentation, StatementEvent, TransactionEvent, TransactionStep};
pub use load::{Preload, Reader};
pub use observe::{Change, ChangeKind, ChangeSet, ColumnChange, Observer, ObserverTx};
pub use query::{Driver, Pager, QueryBuilder, Where};
pub use reference::Ref;
pub use registry::{Registry, ValidatedRegistry, DEFAULT_POOL};
pub use schema::enums::{EnumDefinition, OrmEnum};
pub use sql::replicas::{
    Consistency, ReplicaHealth, ReplicaOptions, ReplicaSetStatus, ReplicaStatus,
};
pub use sql::value::Value;
pub use sql::{DialectKind, ExecResult};
pub use tracked::Tracked;

#[doc(hidden)]
pub mod __private {
    //! Re-exports for the derive macros.
    /// Test-only pause points of the cache protocol.
    pub use crate::cache::pause;
    pub use crate::reference::{AnyRef, LoadedSet, Loader, NewEntity, RefField};
}

/// The README's Rust examples compile (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// Everything an application usually needs: `use beeorm::prelude::*;`.
pub mod prelude {
    pub use crate::query::{Driver, QueryBuilder};
    #[cfg(feature = "redis")]
    pub use crate::redis::{Limit, Lock, Locker, RedisClient};
    pub use crate::schema::{Alter, TableSchema};
    pub use crate::{
        Db, Embedded, Engine, Entity, Error, Flusher, LocalCache, OrmEnum, Pager, Preload, Reader,
        Ref, Registry, Result, Tracked, Transaction, ValidatedRegistry, Value, Where,
    };
}
