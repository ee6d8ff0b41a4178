//! The one error type of the crate.
//!
//! Every fallible call returns [`Error`]. Variants say *what* went wrong and *where*
//! (pool, entity, field, SQL without values), so callers can match on them instead of
//! parsing messages.

/// A specialised `Result` for beeorm.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in beeorm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration (YAML, DSN, pool options) is malformed.
    #[error("configuration error: {0}")]
    Config(String),

    /// A YAML document could not be parsed.
    #[error("invalid YAML configuration: {0}")]
    Yaml(#[from] serde_norway::Error),

    /// A configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },

    /// An entity (or enum) definition is invalid.
    #[error("entity `{entity}`{}: {reason}", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
    Definition {
        /// The entity (or enum) type name.
        entity: String,
        /// The field, when one is at fault.
        field: Option<String>,
        /// Why the definition is rejected.
        reason: String,
    },

    /// Something names a pool that was never registered.
    #[error("{kind} pool `{pool}` is not registered (used by {used_by})")]
    UnknownPool {
        /// The kind of pool: `relational`, `local cache`, …
        kind: &'static str,
        /// The missing pool name.
        pool: String,
        /// Who asked for it.
        used_by: String,
    },

    /// Two entities map to the same table of the same pool.
    #[error("entities `{first}` and `{second}` both use table `{table}` in pool `{pool}`")]
    DuplicateTable {
        /// The table.
        table: String,
        /// The pool.
        pool: String,
        /// The entity registered first.
        first: String,
        /// The entity registered second.
        second: String,
    },

    /// A type was used that is not registered in this registry.
    #[error("entity `{0}` is not registered")]
    UnknownEntity(String),

    /// The database refused a statement or the connection failed.
    #[error("database error on pool `{pool}` running `{sql}`: {source}")]
    Database {
        /// The pool.
        pool: String,
        /// The statement, without its values.
        sql: String,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An insert or update broke a unique index.
    #[error("duplicated key on pool `{pool}`: unique index `{index}` already holds this value")]
    DuplicatedKey {
        /// The pool.
        pool: String,
        /// The unique index (`PRIMARY` for the primary key).
        index: String,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An insert, update or delete broke a foreign key.
    #[error("foreign key violation on pool `{pool}`{}", constraint.as_ref().map(|c| format!(": constraint `{c}`")).unwrap_or_default())]
    ForeignKey {
        /// The pool.
        pool: String,
        /// The constraint, when the server names it (MySQL does, SQLite does not).
        constraint: Option<String>,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A stored value does not fit the entity's field (a schema out of line with the
    /// entity, or a row written by someone else).
    #[error("cannot read entity `{entity}`, field `{field}`: {reason}")]
    Decode {
        /// The entity type.
        entity: String,
        /// The field path.
        field: String,
        /// What was found.
        reason: String,
    },

    /// A hook refused a write (nothing was written) or failed.
    #[error("hook: {0}")]
    Hook(String),

    /// A row that was asked for does not exist.
    #[error("{entity} not found: {key}")]
    NotFound {
        /// The entity type (or table).
        entity: String,
        /// What was looked for (`id = 7`, `first row`, …).
        key: String,
    },

    /// A preload path names something that is not a reference field.
    #[error("preload path `{path}`: entity `{entity}` has no reference field `{field}`")]
    UnknownReference {
        /// The whole path as given (`school/city`).
        path: String,
        /// The entity at the failing step.
        entity: String,
        /// The name that is not a reference field of it.
        field: String,
    },

    /// A `Where` whose placeholders and parameters do not match, or another bad query.
    #[error("invalid query: {0}")]
    Query(String),

    /// A flush was asked to do something impossible (e.g. update a row with no ID).
    #[error("cannot flush entity `{entity}`: {reason}")]
    Flush {
        /// The entity type.
        entity: String,
        /// Why.
        reason: String,
    },

    /// A connection could not be opened or taken from a pool.
    #[error("cannot connect to pool `{pool}`: {source}")]
    Connection {
        /// The pool.
        pool: String,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A Redis command failed: the server refused it, the connection failed or timed
    /// out, or the reply did not convert to the type asked for. `source` answers
    /// `is_timeout()`, `is_connection_refusal()`, `kind()`…
    #[error("Redis error on pool `{pool}` running `{command}`: {source}")]
    Redis {
        /// The Redis pool.
        pool: String,
        /// The command's name (never its keys or values).
        command: String,
        /// redis-rs's error.
        source: ::redis::RedisError,
    },

    /// A lock was released, refreshed or asked for its TTL after it expired (and
    /// possibly went to another holder, whose lock was left untouched).
    #[error("lock `{name}` was lost: its TTL ran out before it was released")]
    LockLost {
        /// The lock's name.
        name: String,
    },

    /// `flush_with_lock`: the lock was held by someone else for the whole wait.
    #[error("lock `{name}` was not obtained within {wait:?}")]
    LockNotObtained {
        /// The lock's name.
        name: String,
        /// How long we waited.
        wait: std::time::Duration,
    },

    /// A value could not be encoded for Redis (`get_set` stores JSON).
    #[error("cannot encode the value for Redis key `{key}`: {source}")]
    Serialization {
        /// The key.
        key: String,
        /// serde_json's error.
        source: serde_json::Error,
    },

    /// A field holds a value its column cannot store exactly on this pool's database
    /// (out of the column's range, too long, too precise, not a value of its enum, …).
    /// A flush checks every value before it sends any statement: nothing was written.
    #[error("cannot write entity `{entity}`, field `{field}`: value {value} {reason}")]
    InvalidValue {
        /// The entity type.
        entity: String,
        /// The field path (`address.street`).
        field: String,
        /// The value, as Rust prints it (long values shortened).
        value: String,
        /// What the column can hold instead.
        reason: String,
    },
}

impl Error {
    pub(crate) fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    pub(crate) fn definition(entity: &str, field: Option<&str>, reason: impl Into<String>) -> Self {
        Error::Definition {
            entity: entity.to_string(),
            field: field.map(str::to_string),
            reason: reason.into(),
        }
    }
}
