//! The lazy flush (C8), publishing side: [`Flusher::flush_lazy`] checks and encodes the
//! writes of the tracked entities exactly as `flush` plans them, publishes them to the
//! lazy stream (one entry per entity write, one atomic pipeline) and returns; the
//! applier (`lazy_apply.rs`) writes them later. See `docs/lazy_flush.md`.
//!
//! Why a write travels as data — entity, table, pool, operation, ID, column names and
//! bound values (and the old values of an update) — and never as SQL: the applier
//! binds the values as statement parameters, so nothing is ever escaped into a string,
//! and it re-checks the entity's schema (a renamed table or column is a dead letter,
//! not a wrong write).
//!
//! Why nothing touches a cache here: the row does not exist until the applier
//! commits it; the applier locks and invalidates the cached rows around that COMMIT,
//! exactly as a direct flush does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::api::Flusher;
use super::commit::Effect;
use super::item::Op;
use crate::events::{BODY, KIND};
use crate::redis::{Locker, RedisClient};
use crate::schema::{fake_delete, limits};
use crate::tracked::DeleteMode;
use crate::{Error, Result, Value};

/// The consumer group of the lazy stream.
pub(crate) const LAZY_GROUP: &str = "beeorm-lazy";
/// The version byte in front of every encoded lazy write.
/// The kind tag (`_t`) of a lazy write entry.
pub(crate) const LAZY_TAG: &[u8] = b"lazy";

/// Where lazy writes travel: the Redis pool and the names derived from the namespace.
#[derive(Debug)]
pub(crate) struct LazyConfig {
    pub(crate) client: RedisClient,
    /// The namespace (the cache namespace), part of every name.
    pub(crate) namespace: String,
    /// The stream: `{<namespace>:lazy}`.
    pub(crate) stream: String,
    /// The dead-letter stream: `{<namespace>:lazy}:dead`.
    pub(crate) dead: String,
    /// The applier lease (a [`Locker`] lock named `<namespace>`).
    pub(crate) locker: Locker,
}

impl LazyConfig {
    /// Checks the configuration and creates the consumer group (idempotent).
    pub(crate) async fn open(
        pool: &str,
        namespace: Option<&str>,
        redis: &std::collections::HashMap<String, RedisClient>,
    ) -> Result<LazyConfig> {
        let client = redis.get(pool).cloned().ok_or_else(|| Error::UnknownPool {
            kind: "Redis",
            pool: pool.to_string(),
            used_by: "enable_lazy_flush".into(),
        })?;
        let Some(namespace) = namespace else {
            return Err(Error::config(
                "the lazy flush needs a namespace: call `Registry::set_cache_namespace(\"<application>\")` \
                 (its streams are named after it, so two applications sharing one Redis never mix)",
            ));
        };
        let stream = format!("{{{namespace}:lazy}}");
        let dead = format!("{stream}:dead");
        let mut create = ::redis::cmd("XGROUP");
        create
            .arg("CREATE")
            .arg(&stream)
            .arg(LAZY_GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match client.query::<()>(&create).await {
            Ok(()) => {}
            Err(Error::Redis { source, .. }) if source.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        Ok(LazyConfig {
            locker: Locker::new("beeorm-lazy", client.clone()),
            client,
            namespace: namespace.to_string(),
            stream,
            dead,
        })
    }
}

/// What one lazy write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum LazyOp {
    /// A new row with its ID.
    Insert,
    /// Changed columns of an existing row.
    Update,
    /// A real DELETE.
    Delete,
    /// A fake delete: the flag column set to the row's ID.
    FakeDelete,
}

/// One entity write, as it travels in the stream (MessagePack, after a version byte).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LazyWrite {
    /// The entity's Rust type name.
    pub(crate) entity: String,
    pub(crate) table: String,
    pub(crate) pool: String,
    pub(crate) op: LazyOp,
    pub(crate) id: u64,
    /// Insert: every column but the ID; update: the changed ones.
    pub(crate) columns: Vec<String>,
    pub(crate) values: Vec<Value>,
    /// Update: the values before the change, one per column (for observers).
    pub(crate) old: Vec<Value>,
    /// A logged entity's update or delete: the whole row before it (every column but
    /// the ID), for its change-log row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) before: Option<Vec<Value>>,
    /// A logged entity: the flush's change-log metadata (the engine's and the
    /// flusher's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) meta: Option<crate::LogMeta>,
}

impl LazyWrite {
    /// The broker's body encoding (version byte + named MessagePack, `events/codec.rs`).
    pub(crate) fn encode(&self, stream: &str) -> Result<Vec<u8>> {
        crate::events::encode_body(stream, self)
    }

    /// Reads the body (`_b`) of entry `id`; the message says why it cannot.
    pub(crate) fn decode(id: &str, bytes: &[u8]) -> std::result::Result<LazyWrite, String> {
        crate::events::decode_body("lazy", id, bytes).map_err(|e| e.to_string())
    }
}

/// The enabled lazy flush of a registry, or the error saying how to enable it.
pub(crate) fn config(registry: &crate::ValidatedRegistry) -> Result<&Arc<LazyConfig>> {
    registry.lazy().ok_or_else(|| {
        Error::config(
            "the lazy flush is not enabled: call `Registry::enable_lazy_flush(\"<redis pool>\")` \
             (YAML: `lazy_flush: true` in the Redis pool's section)",
        )
    })
}

impl Flusher<'_> {
    /// Publishes the writes of every tracked entity to the lazy stream and returns;
    /// [`Engine::lazy_consumer`](crate::Engine::lazy_consumer) applies them later, in
    /// order per entity, exactly once (see `docs/lazy_flush.md`). Needs
    /// [`Registry::enable_lazy_flush`](crate::Registry::enable_lazy_flush).
    ///
    /// Checked before anything is published, as by [`Flusher::flush`]: every value
    /// against its column ([`Error::InvalidValue`]) and every ID. The before-hooks
    /// run (they may change what is written); the after-hooks do not (there is no
    /// entity when the row is written). Refused with [`Error::Flush`], nothing
    /// published: an insert without an explicit ID (the ID is the server's, and the
    /// caller would never learn it), an upsert (it must read the row back), an entity
    /// referencing a new one (`Ref::new`), and an entity whose pool is not relational.
    ///
    /// Once published (one atomic pipeline: all the writes or none), the entities
    /// count as saved — not dirty, inserted ones not new, deleted ones deleted — as
    /// after a flush; the rows and the caches change when the applier commits them.
    /// Nothing touches a cache here. If the future is dropped before the entities are
    /// marked, the writes may have been published: flushing the same entities again
    /// publishes them again (an insert then fails at apply and ends in the dead-letter
    /// stream).
    ///
    /// ```no_run
    /// # use beeorm::prelude::*;
    /// # #[derive(Entity)] struct Visit { id: u64, page: String }
    /// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
    /// let mut visit = Tracked::new(Visit { id: 42, page: "/home".into() });
    /// engine.flusher().track(&mut visit).flush_lazy().await?; // published, not written
    /// engine.lazy_consumer()?.drain().await?; // written (usually in another process)
    /// # Ok(()) }
    /// ```
    pub async fn flush_lazy(&mut self) -> Result<()> {
        let registry = self.engine.registry().clone();
        let lazy = config(&registry)?.clone();
        for item in self.items.iter_mut() {
            item.settle();
        }
        let hooks = registry.hooks();
        if !hooks.is_empty() || self.items.iter().any(|i| i.has_own_hooks()) {
            for item in self.items.iter_mut() {
                if let Some(event) = item.pending_event() {
                    item.run_hooks(hooks, event).await?;
                }
            }
        }
        let mut writes = Vec::new();
        let meta = self.merged_log_meta();
        let mut effects = Vec::new();
        for (pos, item) in self.items.iter_mut().enumerate() {
            let name = item.entity_name();
            let refuse = |reason: &str| Error::Flush {
                entity: name.to_string(),
                reason: format!("flush_lazy: {reason}"),
            };
            let mut nested = Vec::new();
            item.new_refs(&mut nested);
            if !nested.is_empty() {
                return Err(refuse(
                    "it references a new entity (`Ref::new`); flush that one first",
                ));
            }
            let item = &**item;
            let op = item.op();
            if matches!(op, Op::Nothing) {
                continue;
            }
            let schema = registry
                .table_schema_by_type(item.entity_type())
                .ok_or_else(|| Error::UnknownEntity(item.entity_name().to_string()))?;
            let pool = self.engine.sql_pool(schema.pool_name())?;
            let kind = pool.kind();
            let names = || schema.columns().iter().skip(1).map(|c| c.name.clone());
            let flag = schema.fake_delete_column().and_then(|i| i.checked_sub(1));
            let logged = schema.is_logged();
            // The row before an update or delete: for the change log and the search
            // index.
            let keep_before = logged || schema.search_index().is_some();
            let mut logged_before = None;
            let (lazy_op, id, columns, values, old) = match op {
                Op::Nothing => continue,
                Op::Upsert { .. } => {
                    return Err(refuse(
                        "an upsert must read its row back; use `flush` for upserts",
                    ))
                }
                Op::Insert { id: 0 } => return Err(refuse(
                    "an insert needs an explicit ID (the server's ID would never reach the caller)",
                )),
                Op::Insert { id } => {
                    limits::fit_column(schema, kind, 0, &mut Value::U64(id))?;
                    let mut row = Vec::with_capacity(schema.columns().len());
                    item.write_values(&mut row);
                    limits::fit_row(schema, kind, &mut row)?;
                    if let Some(cell) = flag.and_then(|f| row.get_mut(f)) {
                        if fake_delete::is_deleted(cell) {
                            *cell = Value::U64(id);
                        }
                    }
                    effects.push(Effect::Saved { item: pos });
                    (LazyOp::Insert, id, names().collect(), row, Vec::new())
                }
                Op::Update { id: 0, .. } | Op::Delete { id: 0, .. } => {
                    return Err(refuse(
                        "it has no ID: a row that was never inserted cannot be updated or deleted",
                    ))
                }
                Op::Update { id, mut changed } => {
                    let before = item.loaded_values().unwrap_or_default();
                    logged_before = keep_before.then(|| before.to_vec());
                    let mut columns = Vec::with_capacity(changed.len());
                    let mut old = Vec::with_capacity(changed.len());
                    for (i, v) in changed.iter_mut() {
                        limits::fit_column(schema, kind, *i + 1, v)?;
                        if Some(*i) == flag && fake_delete::is_deleted(v) {
                            *v = Value::U64(id);
                        }
                        columns.push(
                            schema
                                .columns()
                                .get(*i + 1)
                                .map_or_else(String::new, |c| c.name.clone()),
                        );
                        old.push(before.get(*i).cloned().unwrap_or(Value::Null));
                    }
                    effects.push(Effect::Saved { item: pos });
                    let values = changed.into_iter().map(|(_, v)| v).collect();
                    (LazyOp::Update, id, columns, values, old)
                }
                Op::Delete { id, mode } => {
                    let fake = mode == DeleteMode::Delete && schema.has_fake_delete();
                    effects.push(Effect::Deleted { item: pos, fake });
                    // The row before: the snapshot of a changed entity, else (clean)
                    // its values, as the commit function logs it.
                    logged_before = keep_before.then(|| match item.loaded_values() {
                        Some(v) => v.to_vec(),
                        None => {
                            let mut row = Vec::with_capacity(schema.columns().len());
                            item.write_values(&mut row);
                            row
                        }
                    });
                    let op = if fake {
                        LazyOp::FakeDelete
                    } else {
                        LazyOp::Delete
                    };
                    (op, id, Vec::new(), Vec::new(), Vec::new())
                }
            };
            writes.push(LazyWrite {
                entity: item.entity_name().to_string(),
                table: schema.table_name().to_string(),
                pool: schema.pool_name().to_string(),
                op: lazy_op,
                id,
                columns,
                values,
                old,
                before: logged_before,
                meta: if logged { meta.clone() } else { None },
            });
        }
        if writes.is_empty() {
            return Ok(());
        }
        publish(&lazy, &writes).await?;
        self.apply(effects)
    }
}

/// Sends `writes` to the lazy stream in one atomic pipeline (every key of the lazy
/// flush shares one hash slot, so this holds on a Cluster too).
pub(crate) async fn publish(lazy: &LazyConfig, writes: &[LazyWrite]) -> Result<()> {
    let mut pipe = lazy.client.pipeline();
    pipe.atomic();
    for w in writes {
        let mut cmd = ::redis::cmd("XADD");
        cmd.arg(&lazy.stream)
            .arg("*")
            .arg(KIND)
            .arg(LAZY_TAG)
            .arg(BODY)
            .arg(w.encode(&lazy.stream)?);
        pipe.cmd(cmd).ignore();
    }
    pipe.exec().await?;
    tracing::debug!(target: "beeorm::lazy",
        stream = %lazy.stream,
        writes = writes.len(),
        "lazy writes published"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_round_trip_and_refuse_unknown_versions() {
        let w = LazyWrite {
            entity: "User".into(),
            table: "User".into(),
            pool: "default".into(),
            op: LazyOp::Update,
            id: 7,
            columns: vec!["name".into(), "doc".into()],
            values: vec![
                Value::String("x".into()),
                Value::Json(serde_json::json!({"a": [1, 2]})),
            ],
            old: vec![Value::Null, Value::Null],
            before: None,
            meta: None,
        };
        let bytes = w.encode("s").unwrap();
        assert_eq!(LazyWrite::decode("1-0", &bytes).unwrap(), w);
        let mut other = bytes.clone();
        other[0] = 9;
        assert!(LazyWrite::decode("1-0", &other)
            .unwrap_err()
            .contains("version 9"));
        assert!(LazyWrite::decode("1-0", &[]).is_err());
        assert!(LazyWrite::decode("1-0", &bytes[..bytes.len() / 2]).is_err());
        assert_eq!(
            w.values[1].clone(),
            Value::Json(serde_json::json!({"a": [1, 2]}))
        );
    }
}
