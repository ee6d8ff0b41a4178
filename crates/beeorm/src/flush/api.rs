//! [`Flusher`]'s public face: tracking entities and the three ways to write them.
//! How a flush runs is in `execute.rs`, how it ends in `commit.rs`.

use super::item::{Flushable, Op};
use crate::db::Transaction;
use crate::{Engine, Entity, Result, Tracked};

/// A unit of work: track entities, then write them all with one [`Flusher::flush`].
///
/// ```no_run
/// # use beeorm::prelude::*;
/// # #[derive(Entity)] struct User { id: u64, name: String }
/// # async fn demo(engine: &Engine) -> beeorm::Result<()> {
/// let mut ann = Tracked::new(User { id: 0, name: "Ann".into() });
/// let mut bob = Tracked::new(User { id: 0, name: "Bob".into() });
/// engine.flusher().track(&mut ann).track(&mut bob).flush().await?; // one INSERT, two rows
/// assert!(ann.id > 0 && bob.id == ann.id + 1);
/// # Ok(()) }
/// ```
pub struct Flusher<'a> {
    pub(super) engine: &'a Engine,
    pub(super) items: Vec<&'a mut dyn Flushable>,
    /// This flush's change-log metadata ([`Flusher::set_log_meta`]).
    pub(super) log_meta: Option<crate::LogMeta>,
    /// Events queued with [`Flusher::publish`], sent after the COMMIT.
    pub(super) events: super::Queued,
}

impl std::fmt::Debug for Flusher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher")
            .field("tracked", &self.items.len())
            .field("events", &self.events.len())
            .finish()
    }
}

impl<'a> Flusher<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Flusher {
            engine,
            items: Vec::new(),
            log_meta: None,
            events: Default::default(),
        }
    }

    /// Adds `key` = `value` to the metadata of the change-log rows this flusher
    /// writes (entities declared `#[orm(log)]`), over the engine-wide metadata of
    /// [`Engine::set_log_meta`](crate::Engine::set_log_meta): this one wins for the
    /// same key. Stored as a JSON object in the rows' `meta` column.
    ///
    /// ```no_run
    /// # use beeorm::prelude::*;
    /// # #[derive(Entity)] #[orm(log)] struct User { id: u64, name: String }
    /// # async fn demo(engine: &Engine, user: &mut Tracked<User>) -> beeorm::Result<()> {
    /// engine.flusher().set_log_meta("reason", "GDPR request").track(user).flush().await?;
    /// # Ok(()) }
    /// ```
    pub fn set_log_meta(
        &mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> &mut Self {
        self.log_meta
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    /// Adds an entity: a new one is inserted, a changed one updated, one marked with
    /// [`Tracked::mark_to_delete`] deleted. Unchanged entities cost nothing.
    pub fn track<E: Entity>(&mut self, entity: &'a mut Tracked<E>) -> &mut Self {
        self.items.push(entity);
        self
    }

    /// Adds many entities at once, like [`Flusher::track`] on each:
    /// `flusher.track_all(&mut users)` for a `Vec<Tracked<User>>`, or any iterator of
    /// `&mut Tracked<E>` (`users.iter_mut().filter(…)`).
    pub fn track_all<E: Entity>(
        &mut self,
        entities: impl IntoIterator<Item = &'a mut Tracked<E>>,
    ) -> &mut Self {
        let entities = entities.into_iter();
        self.items.reserve(entities.size_hint().0);
        for entity in entities {
            self.items.push(entity);
        }
        self
    }

    /// Marks `entity` for deletion and tracks it.
    pub fn delete<E: Entity>(&mut self, entity: &'a mut Tracked<E>) -> &mut Self {
        entity.mark_to_delete();
        self.track(entity)
    }

    /// Marks `entity` for a real DELETE (even with `fake_delete`) and tracks it.
    pub fn force_delete<E: Entity>(&mut self, entity: &'a mut Tracked<E>) -> &mut Self {
        entity.mark_to_force_delete();
        self.track(entity)
    }

    /// Queues a serialised event (the broker's form: MessagePack, versioned) for
    /// `stream`, sent once the flush's rows are committed, in the same pipeline as
    /// the flush's dirty events (one per Redis pool). Never sent when the write does
    /// not commit (an error, a rollback, a dropped future); for
    /// [`Flusher::flush_in`] at [`Transaction::commit`]. A flusher with queued
    /// events and nothing to write just sends them when flushed. If sending fails
    /// after the COMMIT the flush returns
    /// [`Error::CommittedButNotPublished`](crate::Error::CommittedButNotPublished).
    /// An unregistered stream is [`Error::UnknownStream`](crate::Error::UnknownStream)
    /// and a body that does not serialise
    /// [`Error::EventEncode`](crate::Error::EventEncode), here.
    ///
    /// ```no_run
    /// # use beeorm::prelude::*;
    /// # #[derive(Entity)] struct Order { id: u64, total: u32 }
    /// # async fn demo(engine: &Engine, order: &mut Tracked<Order>) -> beeorm::Result<()> {
    /// let mut flusher = engine.flusher();
    /// flusher.track(order).publish("orders-placed", &("placed", 42u32))?;
    /// flusher.flush().await?; // the row, then the event
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis")]
    pub fn publish<T: serde::Serialize + ?Sized>(
        &mut self,
        stream: &str,
        body: &T,
    ) -> Result<&mut Self> {
        let event = crate::events::dirty::queued_body(self.engine.registry(), stream, body)?;
        self.events.push(event);
        Ok(self)
    }

    /// Queues a plain map event (fields as given) for `stream`, sent like
    /// [`Flusher::publish`]. Field names starting with `_` are reserved, and an
    /// event needs a field: both [`Error::InvalidArgument`](crate::Error::InvalidArgument);
    /// an unregistered stream is [`Error::UnknownStream`](crate::Error::UnknownStream).
    #[cfg(feature = "redis")]
    pub fn publish_map<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        stream: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<&mut Self> {
        let event = crate::events::dirty::queued_map(self.engine.registry(), stream, fields)?;
        self.events.push(event);
        Ok(self)
    }

    /// Whether any tracked entity needs writing.
    pub fn is_dirty(&self) -> bool {
        self.items.iter().any(|i| !matches!(i.op(), Op::Nothing))
    }

    /// Writes every tracked entity. Each pool's statements run in one transaction when
    /// there is more than one of them (or an [`Observer`](crate::Observer) writes
    /// inside it). Once the rows are committed, the after-hooks and the observers'
    /// after-commit calls run.
    ///
    /// **Several pools.** Entities of different relational pools are written pool by
    /// pool, in pool-name order, each pool in its own transaction; there is no
    /// transaction spanning pools. Every pool is planned (every value checked) before
    /// anything is sent. If a pool fails:
    ///
    /// * when no pool committed yet, the error is the pool's own: nothing is written,
    ///   every entity is as it was;
    /// * when earlier pools committed, the error is
    ///   [`Error::PartlyCommitted`](crate::Error::PartlyCommitted), naming the pools
    ///   that committed and the one that failed (its `source` says why);
    ///   [`Error::rows_written`](crate::Error::rows_written) is `true`. The entities of
    ///   the committed pools hold their new state (IDs, saved values) and are not
    ///   dirty any more; those of the failed pool (and of later ones, which were not
    ///   tried) are as before, so flushing the same entities again writes only what is
    ///   missing. The after-hooks and the observers' after-commit step run for
    ///   exactly the committed pools' entities.
    pub async fn flush(&mut self) -> Result<()> {
        self.run(false, None).await
    }

    /// Like [`Flusher::flush`], always inside a transaction (one per pool).
    pub async fn flush_in_transaction(&mut self) -> Result<()> {
        self.run(true, None).await
    }

    /// Writes every tracked entity inside a transaction the caller opened (all of them
    /// must live in that transaction's pool). Nothing is committed here: the entities'
    /// new state (IDs, saved values) holds once [`Transaction::commit`] succeeded, and
    /// their after-hooks and the observers' after-commit calls run after that COMMIT;
    /// if the transaction is rolled back, dropped or its commit fails, the entities
    /// are as they were before this call. Observers' in-transaction calls run here, on
    /// the caller's transaction.
    pub async fn flush_in(&mut self, tx: &mut Transaction) -> Result<()> {
        self.run(true, Some(tx)).await
    }
}
