//! The one error type of the crate.
//!
//! Every fallible call returns [`Error`]. Variants say *what* went wrong and *where*
//! (pool, entity, field, SQL without values), so callers can match on them instead of
//! parsing messages.
//!
//! Errors from a database show what the server said, whichever the dialect: its
//! message, its code (PostgreSQL's SQLSTATE, MySQL's error number and SQLSTATE,
//! SQLite's extended result code by name) and the constraint when the server names
//! one, so `Display` alone is enough to tell a broken unique index from a missing
//! table. The driver's own error stays available as the variant's `source`.

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
    #[error("database error on pool `{pool}` running `{sql}`: {}", ServerDetail(&**source))]
    Database {
        /// The pool.
        pool: String,
        /// The statement, without its values.
        sql: String,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A statement carries more parameters than the server takes in one statement
    /// (PostgreSQL and MySQL 65,535; SQLite 32,766). Refused before anything is sent;
    /// nothing was written. Split the list (as `load_by_ids` and the flush do), or
    /// move it into a table and join.
    #[error("too many parameters on pool `{pool}` running `{sql}`: {count}, but {server} takes at most {limit} per statement")]
    TooManyParameters {
        /// The pool.
        pool: String,
        /// The server kind (`MySQL`, `PostgreSQL`, `SQLite`).
        server: &'static str,
        /// The beginning of the statement, without its values.
        sql: String,
        /// The parameters given.
        count: usize,
        /// The most the server accepts.
        limit: usize,
    },

    /// A result column whose type (or value) beeorm cannot turn into a [`Value`]
    /// (PostgreSQL: a type without a decoder here, such as `tsvector`, or a `NaN`
    /// numeric). Cast the column to `text` in the query to read it.
    ///
    /// [`Value`]: crate::Value
    #[error("cannot decode column `{column}` of type `{type_name}` on pool `{pool}` running `{sql}`: {reason}")]
    ColumnType {
        /// The pool.
        pool: String,
        /// The statement, without its values.
        sql: Box<str>,
        /// The column's name in the result.
        column: String,
        /// The column's type as the server names it.
        type_name: String,
        /// Why it could not be decoded.
        reason: Box<str>,
    },

    /// An insert or update broke a unique index.
    #[error("duplicated key on pool `{pool}`: unique index `{index}` already holds this value ({})", ServerDetail(&**source))]
    DuplicatedKey {
        /// The pool.
        pool: String,
        /// The unique index (`PRIMARY` for the primary key).
        index: String,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An insert, update or delete broke a foreign key.
    #[error("foreign key violation on pool `{pool}`{} ({})", constraint.as_ref().map(|c| format!(": constraint `{c}`")).unwrap_or_default(), ServerDetail(&**source))]
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

    /// `set_field` was given a value its field cannot hold: another type, or out of
    /// the field's range. The field is unchanged. (A *stored* value that does not fit
    /// is [`Error::Decode`].)
    #[error(
        "cannot set entity `{entity}`, field `{field}` of type `{expected}` from {given}: {reason}"
    )]
    WrongFieldType {
        /// The entity type.
        entity: String,
        /// The field's Rust name.
        field: String,
        /// The field's Rust type, as written (`Option<u8>`).
        expected: &'static str,
        /// What the value was: `text`, `an integer`, `NULL`, …
        given: &'static str,
        /// Why it does not convert.
        reason: String,
    },

    /// `set_field` named no field it can set: no stored field of the entity has that
    /// Rust name (the primary key, embedded and `ignore`d fields are not set by name).
    #[error("entity `{entity}` has no field `{field}` that set_field can set")]
    UnknownField {
        /// The entity type.
        entity: String,
        /// The name given.
        field: String,
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
    #[error("cannot connect to pool `{pool}`: {}", ServerDetail(&**source))]
    Connection {
        /// The pool.
        pool: String,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A pool operation took longer than the pool's limit (see
    /// [`Registry::set_sql_timeouts`](crate::Registry::set_sql_timeouts)): opening a
    /// connection (`connect`), waiting for one (`acquire`) or a statement. A statement
    /// that timed out may or may not have run; its connection is discarded, and a
    /// transaction it belonged to is rolled back.
    #[error("timeout on pool `{pool}`: {operation} did not finish within {limit:?}")]
    Timeout {
        /// The pool.
        pool: String,
        /// What timed out: `connect`, `acquire`, or `statement \`SQL\`` (without values).
        operation: String,
        /// The configured limit that ran out.
        limit: std::time::Duration,
    },

    /// A Redis command failed: the server refused it, the connection failed or timed
    /// out, or the reply did not convert to the type asked for. `source` answers
    /// `is_timeout()`, `is_connection_refusal()`, `kind()`…
    #[cfg(feature = "redis")]
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

    /// `flush_with_lock`: the rows **are written and committed**; only releasing the
    /// lock afterwards failed (it expired during the flush — another holder may have
    /// run at the same time — or Redis did not answer). Do not retry the flush:
    /// [`Error::rows_written`] is `true` for this error.
    #[error("the rows are written (committed), but releasing lock `{name}` failed: {source}")]
    WrittenButUnlockFailed {
        /// The lock's name.
        name: String,
        /// Why the release failed ([`Error::LockLost`], a Redis error, …).
        source: Box<Error>,
    },

    /// A flush over several relational pools failed in pool `failed` after the pools
    /// in `committed` had committed (pools are written one after another, each in its
    /// own transaction; see [`Flusher::flush`](crate::Flusher::flush)). The entities
    /// of the committed pools hold their new state, the others are as before:
    /// [`Error::rows_written`] is `true`, so flush the same entities again rather
    /// than repeating the whole write.
    #[error("the flush failed on pool `{failed}` after pool(s) {} committed: {source}", committed.join(", "))]
    PartlyCommitted {
        /// The pools whose rows are committed, in commit order.
        committed: Vec<String>,
        /// The pool that failed (nothing of it was written).
        failed: String,
        /// Why it failed.
        source: Box<Error>,
    },

    /// [`Locker::obtain`](crate::Locker::obtain) and `flush_with_lock`: the lock was
    /// held by someone else for the whole wait (nothing was written). Expected under
    /// contention: match on it to skip or retry the work.
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

    /// A call was given an argument it cannot honour, e.g. a lock TTL under 1 ms or an
    /// empty lock name; nothing was sent to the server.
    #[error("{call}: {reason}")]
    InvalidArgument {
        /// The call, e.g. `Locker::obtain("invoice:42")`.
        call: String,
        /// What is wrong with the argument.
        reason: String,
    },

    /// An entity's change log is declared in another relational pool than the entity
    /// (`#[orm(log = "other")]`). Refused by `Registry::validate`: the log rows are
    /// written in the same transaction as the entity's rows, so that a committed
    /// change always has its log row, and one transaction cannot span two pools.
    #[error("entity `{entity}` lives in pool `{pool}` but its change log is declared in pool `{log_pool}`: log rows are written in the entity's own transaction, which cannot span pools; use `#[orm(log)]` (the entity's pool)")]
    ChangeLogPool {
        /// The entity type.
        entity: String,
        /// The entity's pool.
        pool: String,
        /// The pool `log = "..."` names.
        log_pool: String,
    },

    /// Writing the change-log rows of a unit of work failed. The unit was rolled back
    /// (or, for `flush_in`, must be: its transaction is the caller's): no entity row
    /// of it was committed, and the entities are as they were.
    #[error("cannot write the change log of entity `{entity}` to table `{table}`: {source}")]
    ChangeLog {
        /// The entity type.
        entity: String,
        /// The change-log table.
        table: String,
        /// Why it failed (the database's error).
        source: Box<Error>,
    },

    /// A change-log call for an entity that keeps no change log (no `#[orm(log)]`).
    #[error("entity `{0}` keeps no change log (declare it `#[orm(log)]`)")]
    NotLogged(String),
    /// An event names a stream no `register_redis_stream` (or YAML `streams`) declared;
    /// nothing was sent.
    #[error("stream `{stream}` is not registered")]
    UnknownStream {
        /// The stream.
        stream: String,
    },

    /// A consumer names a group that is not registered for its stream.
    #[error("stream `{stream}` has no registered consumer group `{group}`")]
    UnknownGroup {
        /// The stream.
        stream: String,
        /// The group.
        group: String,
    },

    /// `Registry::validate` could not create a registered stream's consumer group
    /// (the Redis pool is down, or the key holds something that is not a stream).
    #[error("cannot create consumer group `{group}` of stream `{stream}` on Redis pool `{pool}`: {source}")]
    StreamSetup {
        /// The stream.
        stream: String,
        /// The group.
        group: String,
        /// The Redis pool.
        pool: String,
        /// Why ([`Error::Redis`] usually).
        source: Box<Error>,
    },

    /// An event body could not be serialised (MessagePack); nothing was sent.
    #[error("cannot encode an event for stream `{stream}`: {reason}")]
    EventEncode {
        /// The stream.
        stream: String,
        /// The serialiser's message.
        reason: String,
    },

    /// A delivered event could not be decoded: no body field (a map event), a body
    /// written by an unknown format version, or bytes that do not decode into the
    /// type asked for.
    #[error("cannot decode event `{id}` of stream `{stream}`: {reason}")]
    EventDecode {
        /// The stream.
        stream: String,
        /// The entry ID.
        id: String,
        /// What is wrong.
        reason: String,
    },

    /// Every consumer slot of the group is leased by a running consumer (at most
    /// `max` at once across processes); nothing was read.
    #[error("stream `{stream}`, group `{group}`: all {max} consumer slot(s) are taken")]
    ConsumersBusy {
        /// The stream.
        stream: String,
        /// The group.
        group: String,
        /// The configured maximum.
        max: u32,
    },

    /// A running consumer lost its lease (Redis could not be reached to renew it
    /// before it expired, or it expired and was taken): it stopped before taking
    /// another batch so that no more than the allowed consumers run at once.
    #[error("stream `{stream}`, group `{group}`: consumer `{consumer}` lost its lease")]
    LeaseLost {
        /// The stream.
        stream: String,
        /// The group.
        group: String,
        /// The consumer name (`consumer-<slot>`).
        consumer: String,
    },

    /// [`Consumer::drain`](crate::events::Consumer::drain): the handler returned an
    /// error. The batch's events it did not acknowledge stay pending.
    #[error("stream `{stream}`, group `{group}`: the event handler failed: {source}")]
    Handler {
        /// The stream.
        stream: String,
        /// The group.
        group: String,
        /// The handler's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// `Registry::validate`: an entity declares a dirty stream
    /// (`#[orm(dirty = "...")]`) that is not registered with
    /// [`Registry::register_redis_stream`](crate::Registry::register_redis_stream).
    #[error("entity `{entity}`{}: dirty stream `{stream}` is not registered", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
    UnregisteredDirtyStream {
        /// The entity type.
        entity: String,
        /// The field that declares it (`None`: declared on the entity).
        field: Option<String>,
        /// The stream.
        stream: String,
    },

    /// The rows **are written and committed**, but publishing the events of the
    /// write afterwards (dirty streams, events queued with
    /// [`Flusher::publish`](crate::Flusher::publish)) failed: they are not in their
    /// streams. Do not retry the write ([`Error::rows_written`] is `true`).
    #[error("the rows are written (committed), but publishing {events} event(s) failed: {source}")]
    CommittedButNotPublished {
        /// How many events were to be sent.
        events: usize,
        /// Why sending failed.
        source: Box<Error>,
    },

    /// A search query text is not valid in the query language (see
    /// [`crate::search`]): unbalanced quotes or parentheses, a dangling operator, …
    #[error("search query `{query}`: {reason} (at character {position})")]
    SearchQuery {
        /// The query text.
        query: String,
        /// Where the problem is (0-based character offset).
        position: usize,
        /// What is wrong.
        reason: String,
    },

    /// A search names a field the entity's index does not have, or uses a field in a
    /// way its kind does not allow (a range on a text field, a sort on a field that
    /// is not `sortable`, …).
    #[error("search index `{index}`, field `{field}`: {reason}")]
    SearchField {
        /// The index.
        index: String,
        /// The field named.
        field: String,
        /// What is wrong.
        reason: String,
    },

    /// The entity has no search index.
    #[error(
        "entity `{0}` has no search index (declare it `#[orm(search)]` with `searchable` fields)"
    )]
    NotSearchable(String),

    /// A search engine failed: unreachable, an index missing, a server error.
    #[error("search pool `{pool}`, index `{index}`: {reason}")]
    Search {
        /// The search pool.
        pool: String,
        /// The index (empty when the call concerns no single index).
        index: String,
        /// What failed.
        reason: String,
    },

    /// The rows are written (committed), but bringing the search index(es) up to date
    /// failed; run a reindex (`Engine::reindex`) once the search engine is back. Do
    /// not retry the write ([`Error::rows_written`] is `true`).
    #[error("the rows are written (committed), but updating the search index failed: {source}")]
    CommittedButNotIndexed {
        /// Why the index write failed.
        source: Box<Error>,
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

    /// A ClickHouse request failed: the server refused it (syntax error, unknown
    /// table…: `source` holds the server's text), the connection failed, or the reply
    /// did not decode. The pool stays usable.
    #[cfg(feature = "clickhouse")]
    #[error("ClickHouse error on pool `{pool}` running {operation}: {source}")]
    ClickHouse {
        /// The ClickHouse pool.
        pool: String,
        /// What ran: `query \`SQL\`` (the text before values are bound) or `insert into \`table\``.
        operation: String,
        /// The `clickhouse` crate's error.
        source: ::clickhouse::error::Error,
    },

    /// A ClickHouse row type does not match the server's columns: RowBinary carries no
    /// types, so this is checked by beeorm before any row is sent or decoded (see
    /// `beeorm::clickhouse` for the compatibility table). Nothing was written or read.
    #[cfg(feature = "clickhouse")]
    #[error("ClickHouse pool `{pool}`, {target}, column `{column}`: the row type has {expected}, the server has {found}")]
    ClickHouseType {
        /// The ClickHouse pool.
        pool: String,
        /// `table \`name\`` (inserts) or `query \`SQL\`` (reads). (A boxed `str`
        /// keeps [`Error`] small.)
        target: Box<str>,
        /// The column (or field) concerned; `*` for the whole row (column count).
        column: String,
        /// What the row type has (a Rust type, a field name, a field count).
        expected: String,
        /// What the server has (a ClickHouse type, a column name, a column count).
        found: String,
    },
}

impl Error {
    /// Whether the write this error comes from reached the database and was committed,
    /// in whole (only a step after the commit failed) or in part (a later pool of a
    /// multi-pool flush failed): retrying the whole write would write rows again.
    pub fn rows_written(&self) -> bool {
        matches!(
            self,
            Error::WrittenButUnlockFailed { .. }
                | Error::PartlyCommitted { .. }
                | Error::CommittedButNotPublished { .. }
                | Error::CommittedButNotIndexed { .. }
        )
    }

    /// The error of `set_field` on entity `E`.
    pub(crate) fn set_field<E: crate::Entity>(
        field: &str,
        e: crate::schema::SetFieldError,
    ) -> Self {
        match e {
            crate::schema::SetFieldError::UnknownField => Error::UnknownField {
                entity: E::TYPE_NAME.to_string(),
                field: field.to_string(),
            },
            crate::schema::SetFieldError::WrongType {
                expected,
                given,
                reason,
            } => Error::WrongFieldType {
                entity: E::TYPE_NAME.to_string(),
                field: field.to_string(),
                expected,
                given,
                reason,
            },
        }
    }

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

/// Shows a driver error the way its server reported it (see the module docs): the
/// drivers' own `Display` can be as short as "db error" (tokio-postgres) or leave the
/// code out (rusqlite). Anything else shows itself and its sources.
struct ServerDetail<'a>(&'a (dyn std::error::Error + Send + Sync + 'static));

impl std::fmt::Display for ServerDetail<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.0;
        #[cfg(feature = "postgres")]
        if let Some(db) = e
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::as_db_error)
        {
            write!(
                f,
                "{}: {} (SQLSTATE {}",
                db.severity(),
                db.message(),
                db.code().code()
            )?;
            if let Some(c) = db.constraint() {
                write!(f, ", constraint `{c}`")?;
            }
            f.write_str(")")?;
            if let Some(d) = db.detail() {
                write!(f, "; DETAIL: {d}")?;
            }
            if let Some(h) = db.hint() {
                write!(f, "; HINT: {h}")?;
            }
            return Ok(());
        }
        #[cfg(feature = "mysql")]
        if let Some(mysql_async::Error::Server(s)) = e.downcast_ref::<mysql_async::Error>() {
            return write!(f, "ERROR {} ({}): {}", s.code, s.state, s.message);
        }
        #[cfg(feature = "sqlite")]
        if let Some(rusqlite::Error::SqliteFailure(code, message)) =
            e.downcast_ref::<rusqlite::Error>()
        {
            let text = message
                .as_deref()
                .unwrap_or_else(|| rusqlite::ffi::code_to_str(code.extended_code));
            return write!(
                f,
                "{text} ({}, code {})",
                sqlite_code_name(code.extended_code),
                code.extended_code
            );
        }
        #[cfg(feature = "sqlite")]
        if let Some(rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        }) = e.downcast_ref::<rusqlite::Error>()
        {
            return write!(
                f,
                "{msg} at offset {offset} ({}, code {})",
                sqlite_code_name(error.extended_code),
                error.extended_code
            );
        }
        // The error and its causes, each once (a wrapper often repeats its cause).
        let mut shown = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !shown.contains(&text) {
                shown.push_str(": ");
                shown.push_str(&text);
            }
            cause = c.source();
        }
        f.write_str(&shown)
    }
}

/// The symbolic name of a SQLite (extended) result code, as in `sqlite3.h`.
#[cfg(feature = "sqlite")]
fn sqlite_code_name(code: std::os::raw::c_int) -> &'static str {
    use rusqlite::ffi;
    match code {
        ffi::SQLITE_CONSTRAINT_UNIQUE => "SQLITE_CONSTRAINT_UNIQUE",
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "SQLITE_CONSTRAINT_PRIMARYKEY",
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => "SQLITE_CONSTRAINT_FOREIGNKEY",
        ffi::SQLITE_CONSTRAINT_NOTNULL => "SQLITE_CONSTRAINT_NOTNULL",
        ffi::SQLITE_CONSTRAINT_CHECK => "SQLITE_CONSTRAINT_CHECK",
        ffi::SQLITE_CONSTRAINT_TRIGGER => "SQLITE_CONSTRAINT_TRIGGER",
        ffi::SQLITE_CONSTRAINT_ROWID => "SQLITE_CONSTRAINT_ROWID",
        ffi::SQLITE_CONSTRAINT_DATATYPE => "SQLITE_CONSTRAINT_DATATYPE",
        // Otherwise the primary code: its low byte.
        _ => match code & 0xff {
            ffi::SQLITE_ERROR => "SQLITE_ERROR",
            ffi::SQLITE_INTERNAL => "SQLITE_INTERNAL",
            ffi::SQLITE_PERM => "SQLITE_PERM",
            ffi::SQLITE_ABORT => "SQLITE_ABORT",
            ffi::SQLITE_BUSY => "SQLITE_BUSY",
            ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
            ffi::SQLITE_NOMEM => "SQLITE_NOMEM",
            ffi::SQLITE_READONLY => "SQLITE_READONLY",
            ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
            ffi::SQLITE_IOERR => "SQLITE_IOERR",
            ffi::SQLITE_CORRUPT => "SQLITE_CORRUPT",
            ffi::SQLITE_FULL => "SQLITE_FULL",
            ffi::SQLITE_CANTOPEN => "SQLITE_CANTOPEN",
            ffi::SQLITE_SCHEMA => "SQLITE_SCHEMA",
            ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
            ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
            ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
            ffi::SQLITE_MISUSE => "SQLITE_MISUSE",
            ffi::SQLITE_RANGE => "SQLITE_RANGE",
            ffi::SQLITE_NOTADB => "SQLITE_NOTADB",
            _ => "SQLITE_UNKNOWN",
        },
    }
}

#[cfg(test)]
mod size_tests {
    /// Every `Result` of the crate carries an `Error`: keep it small (boxed details
    /// for the rare, wide variants).
    #[test]
    fn the_error_stays_small() {
        assert!(
            std::mem::size_of::<super::Error>() <= 112,
            "{}",
            std::mem::size_of::<super::Error>()
        );
    }
}
