//! Dirty streams (F3): every committed insert, update and delete of an entity that
//! declares `#[orm(dirty = "stream")]` becomes one event in that stream, for services
//! that follow the data (search indexes, other caches, notifications) without a
//! message bus of their own.
//!
//! **When.** Events are built from the flush's change set ([`ChangeSet`], the write
//! seam) and sent in the one after-commit step (`flush/commit.rs`), after the COMMIT:
//! never for a write that was rolled back, dropped or whose COMMIT failed. For
//! [`Flusher::flush_in`](crate::Flusher::flush_in) that is
//! [`Transaction::commit`](crate::Transaction::commit). Every event of one unit of
//! work — dirty events and the ones queued with
//! [`Flusher::publish`](crate::Flusher::publish) — goes out in one pipeline per Redis
//! pool. The lazy flush's applier calls [`publish`] with the change set of its own
//! commit.
//!
//! **If sending fails** the rows stay committed (they cannot be taken back): the
//! flush returns [`Error::CommittedButNotPublished`] (`rows_written()` is `true`, do
//! not retry the write) and the failure is logged. The send runs in a task of its
//! own: a caller that drops the flush future after the COMMIT does not cancel it.
//! Only a process that dies between the COMMIT and the send loses the events
//! (delivery is at most once there); consumers that must never miss a change
//! follow the change log (F4) instead.
//!
//! **Which.** A stream declared on the struct gets every change; one declared on a
//! field gets inserts and deletes, and the updates that change that field (any of the
//! fields declaring it). An upsert is `added` when the server says it inserted,
//! else `updated` with the row's values as new values (no old ones: the server does
//! not return them), published to every dirty stream of the entity.
//!
//! **Wire form.** Fields `_t` = `dirty` and `_b` = one version byte (`1`) +
//! MessagePack of the body (entity, table, pool, ID, action, fake-delete flag, changed
//! fields with old and new [`Value`]s in their exact serde form).

use serde::{Deserialize, Serialize};

use super::{codec, Event, Outgoing, BODY, KIND};
use crate::observe::{ChangeKind, ChangeSet};
use crate::{Entity, Error, Result, ValidatedRegistry, Value};

/// The kind tag (field [`KIND`]) of a dirty event.
const DIRTY: &str = "dirty";

/// What happened to the row of a [`DirtyEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DirtyAction {
    /// A new row (an insert, or an upsert that inserted).
    #[serde(rename = "a")]
    Added,
    /// An existing row changed.
    #[serde(rename = "u")]
    Updated,
    /// The row was deleted (or fake-deleted: [`DirtyEvent::is_fake_delete`]).
    #[serde(rename = "d")]
    Deleted,
}

/// One changed field of a [`DirtyEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The field path (`address.city`).
    #[serde(rename = "f")]
    field: String,
    /// The column, when it is not named like the field.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    column: Option<String>,
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    old: Option<Value>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    new: Option<Value>,
}

impl FieldChange {
    /// The field path (`address.city` for a field of an embedded struct).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The column it is stored in.
    pub fn column(&self) -> &str {
        self.column.as_deref().unwrap_or(&self.field)
    }

    /// What the row held before (updates only), as written to the database.
    pub fn old(&self) -> Option<&Value> {
        self.old.as_ref()
    }

    /// What the row holds now (inserts and updates), as written to the database.
    pub fn new_value(&self) -> Option<&Value> {
        self.new.as_ref()
    }

    fn is(&self, name: &str) -> bool {
        self.field == name || self.column.as_deref() == Some(name)
    }
}

/// The body of a dirty event, as serialised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Body {
    #[serde(rename = "e")]
    entity: String,
    #[serde(rename = "t")]
    table: String,
    #[serde(rename = "p")]
    pool: String,
    #[serde(rename = "i")]
    id: u64,
    #[serde(rename = "a")]
    action: DirtyAction,
    #[serde(rename = "x", default, skip_serializing_if = "std::ops::Not::not")]
    fake: bool,
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    changes: Vec<FieldChange>,
}

/// A dirty event (F3), read from a stream entry: which entity row changed and how.
///
/// ```no_run
/// # use beeorm::prelude::*;
/// # use beeorm::events::{DirtyAction, DirtyEvent};
/// # #[derive(Entity)] struct User { id: u64, name: String }
/// # fn demo(event: &beeorm::events::Event) -> beeorm::Result<()> {
/// let dirty = DirtyEvent::from_event(event)?; // or `event.dirty()?`
/// if dirty.is::<User>() && dirty.action() == DirtyAction::Updated && dirty.changed("name") {
///     println!("user {} renamed from {:?} to {:?}", dirty.id(), dirty.old("name"), dirty.new("name"));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DirtyEvent {
    body: Body,
}

impl DirtyEvent {
    /// Reads a dirty event; any other entry is [`Error::EventDecode`].
    pub fn from_event(event: &Event) -> Result<DirtyEvent> {
        Self::from_entry(event.stream(), event.id(), event.fields())
    }

    /// Reads a dirty event from the fields of a stream entry read with another
    /// client (`XRANGE`, `XREADGROUP`); `stream` and `id` only name it in errors.
    /// Any other entry (a map or user event, a lazy write) is
    /// [`Error::EventDecode`].
    pub fn from_entry(stream: &str, id: &str, fields: &[(String, Vec<u8>)]) -> Result<DirtyEvent> {
        let bad = |reason: String| Error::EventDecode {
            stream: stream.to_string(),
            id: id.to_string(),
            reason,
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
        };
        match field(KIND) {
            Some(kind) if kind == DIRTY.as_bytes() => {}
            Some(kind) => {
                return Err(bad(format!(
                    "not a dirty event: its kind `{KIND}` is `{}`",
                    String::from_utf8_lossy(kind)
                )))
            }
            None => return Err(bad(format!("not a dirty event: it has no `{KIND}` field"))),
        }
        let body = field(BODY).ok_or_else(|| bad(format!("it has no `{BODY}` field")))?;
        let body = codec::decode_body(stream, id, body)?;
        Ok(DirtyEvent { body })
    }

    /// The entity's Rust type name.
    pub fn entity(&self) -> &str {
        &self.body.entity
    }

    /// Whether the event is about entity type `E` (compared by type name).
    pub fn is<E: Entity>(&self) -> bool {
        self.body.entity == E::TYPE_NAME
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.body.table
    }

    /// The relational pool.
    pub fn pool(&self) -> &str {
        &self.body.pool
    }

    /// The row's ID.
    pub fn id(&self) -> u64 {
        self.body.id
    }

    /// What happened.
    pub fn action(&self) -> DirtyAction {
        self.body.action
    }

    /// A new row.
    pub fn added(&self) -> bool {
        self.body.action == DirtyAction::Added
    }

    /// An existing row changed.
    pub fn updated(&self) -> bool {
        self.body.action == DirtyAction::Updated
    }

    /// The row was deleted (or fake-deleted).
    pub fn deleted(&self) -> bool {
        self.body.action == DirtyAction::Deleted
    }

    /// A fake delete: the row stays, flagged.
    pub fn is_fake_delete(&self) -> bool {
        self.body.fake
    }

    /// The changed fields: every stored field for an insert (new values), the
    /// changed ones for an update (old and new), none for a delete.
    pub fn changes(&self) -> &[FieldChange] {
        &self.body.changes
    }

    /// Whether `field` (a field path or its column name) is among the changes.
    pub fn changed(&self, field: &str) -> bool {
        self.change(field).is_some()
    }

    /// The value `field` held before (updates).
    pub fn old(&self, field: &str) -> Option<&Value> {
        self.change(field).and_then(FieldChange::old)
    }

    /// The value `field` holds now (inserts and updates). Named as the pair of
    /// [`DirtyEvent::old`]; not a constructor.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(&self, field: &str) -> Option<&Value> {
        self.change(field).and_then(FieldChange::new_value)
    }

    fn change(&self, field: &str) -> Option<&FieldChange> {
        self.body.changes.iter().find(|c| c.is(field))
    }
}

impl Event {
    /// Reads this entry as a dirty event ([`DirtyEvent::from_event`]).
    pub fn dirty(&self) -> Result<DirtyEvent> {
        DirtyEvent::from_event(self)
    }
}

/// A serialised user event for `stream` (registered), queued on a flusher.
pub(crate) fn queued_body<T: Serialize + ?Sized>(
    registry: &ValidatedRegistry,
    stream: &str,
    body: &T,
) -> Result<Outgoing> {
    check_stream(registry, stream)?;
    Ok(Outgoing {
        stream: stream.to_string(),
        fields: codec::body_fields("Flusher::publish", stream, body, &[])?,
    })
}

/// A map event for `stream` (registered), queued on a flusher.
pub(crate) fn queued_map<K: AsRef<str>, V: AsRef<[u8]>>(
    registry: &ValidatedRegistry,
    stream: &str,
    fields: impl IntoIterator<Item = (K, V)>,
) -> Result<Outgoing> {
    check_stream(registry, stream)?;
    Ok(Outgoing {
        stream: stream.to_string(),
        fields: codec::map_fields("Flusher::publish_map", stream, fields)?,
    })
}

fn check_stream(registry: &ValidatedRegistry, stream: &str) -> Result<()> {
    match registry.stream(stream) {
        Some(_) => Ok(()),
        None => Err(Error::UnknownStream {
            stream: stream.to_string(),
        }),
    }
}

/// The dirty events of `changes`: one per (change, dirty stream of its entity that
/// the change concerns), in write order.
pub(crate) fn dirty_events(
    registry: &ValidatedRegistry,
    changes: &ChangeSet,
) -> Result<Vec<Outgoing>> {
    let mut out = Vec::new();
    for change in changes {
        let Some(schema) = registry.table_schema_by_type(change.entity_type) else {
            continue;
        };
        let streams = schema.dirty_streams();
        if streams.is_empty() {
            continue;
        }
        let field_of = |column: &str| -> FieldChange {
            let field = schema
                .columns()
                .iter()
                .find(|c| c.name == column)
                .map_or(column, |c| c.field.as_str());
            FieldChange {
                field: field.to_string(),
                column: (field != column).then(|| column.to_string()),
                old: None,
                new: None,
            }
        };
        let inserted = |values: &[(String, Value)]| -> Vec<FieldChange> {
            values
                .iter()
                .map(|(column, v)| FieldChange {
                    new: Some(v.clone()),
                    ..field_of(column)
                })
                .collect()
        };
        let (action, fake, mut fields) = match &change.kind {
            ChangeKind::Inserted { values }
            | ChangeKind::Upserted {
                values,
                inserted: Some(true),
            } => (DirtyAction::Added, false, inserted(values)),
            ChangeKind::Upserted { values, .. } => (DirtyAction::Updated, false, inserted(values)),
            ChangeKind::Updated { columns } => {
                let fields = columns
                    .iter()
                    .map(|c| FieldChange {
                        old: Some(c.old.clone()),
                        new: Some(c.new.clone()),
                        ..field_of(&c.name)
                    })
                    .collect();
                (DirtyAction::Updated, false, fields)
            }
            ChangeKind::Deleted { fake } => (DirtyAction::Deleted, *fake, Vec::new()),
        };
        // Only an update is filtered by the fields it changed.
        let updated: Option<Vec<&str>> = match &change.kind {
            ChangeKind::Updated { columns } => {
                Some(columns.iter().map(|c| c.name.as_str()).collect())
            }
            _ => None,
        };
        let mut encoded: Option<Vec<u8>> = None;
        for stream in streams {
            let wanted = match &updated {
                Some(columns) => stream.covers(columns.iter().copied()),
                None => true,
            };
            if !wanted {
                continue;
            }
            // One body per change, whatever the number of its streams.
            let body = match &encoded {
                Some(b) => b.clone(),
                None => {
                    let body = Body {
                        entity: change.entity_name.to_string(),
                        table: change.table.clone(),
                        pool: change.pool.clone(),
                        id: change.id,
                        action,
                        fake,
                        changes: std::mem::take(&mut fields),
                    };
                    let bytes = codec::encode_body(stream.name(), &body)?;
                    encoded = Some(bytes.clone());
                    bytes
                }
            };
            out.push(Outgoing {
                stream: stream.name().to_string(),
                fields: vec![
                    (KIND.to_string(), DIRTY.as_bytes().to_vec()),
                    (BODY.to_string(), body),
                ],
            });
        }
    }
    Ok(out)
}

/// Publishes the dirty events of `changes` (when given) and the `queued` events of a
/// flusher: one XADD pipeline per Redis pool, after the COMMIT. Called by the
/// after-commit step of a flush and by the lazy flush's applier after its own commit.
/// On failure: [`Error::CommittedButNotPublished`], logged.
pub(crate) async fn publish(
    registry: &ValidatedRegistry,
    changes: Option<&ChangeSet>,
    queued: Vec<Outgoing>,
) -> Result<()> {
    let mut events = match changes {
        Some(c) if !c.is_empty() && registry.has_dirty_streams() => dirty_events(registry, c)
            .map_err(|source| Error::CommittedButNotPublished {
                events: c.len(),
                source: Box::new(source),
            })?,
        _ => Vec::new(),
    };
    events.extend(queued);
    if events.is_empty() {
        return Ok(());
    }
    let count = events.len();
    let failed = |source: Error| {
        tracing::error!(events = count, error = %source, "committed rows: their events were not published");
        Error::CommittedButNotPublished {
            events: count,
            source: Box::new(source),
        }
    };
    // Sent from a task of its own: a caller that drops the flush (or commit) future
    // once the rows are committed does not cancel the send.
    let registry = registry.clone();
    let send = async move {
        if let Some(first) = events.first() {
            crate::cache::pause::point(crate::cache::pause::Point::BeforePublish, &first.stream)
                .await;
        }
        let sent = super::send_outgoing(&registry, events).await.map(drop);
        if let Err(e) = &sent {
            tracing::error!(events = count, error = %e, "committed rows: their events were not published");
        }
        sent
    };
    let task = match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn(send),
        // Not inside a Tokio runtime (the Redis client needs one anyway): inline.
        Err(_) => {
            return send
                .await
                .map_err(|source| Error::CommittedButNotPublished {
                    events: count,
                    source: Box::new(source),
                })
        }
    };
    match task.await {
        Ok(sent) => sent.map_err(|source| Error::CommittedButNotPublished {
            events: count,
            source: Box::new(source),
        }),
        Err(e) => Err(failed(Error::InvalidArgument {
            call: "publishing after the COMMIT".into(),
            reason: format!("the sending task did not finish: {e}"),
        })),
    }
}
