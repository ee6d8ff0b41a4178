//! Events on Redis Streams (issue 13): the broker (publish, consume, statistics),
//! dirty streams, and the lazy flush's transport.
//!
//! CONTRACT SKELETON — written first so that the broker, dirty streams and lazy flush
//! can be built in parallel against the same types. Every `unimplemented!` is replaced
//! by the broker work; signatures change only by agreement.
//!
//! Wire format of one stream entry (see `codec.rs`):
//! * a serialised event: field `_b` = one version byte (`1`) + MessagePack
//!   (`rmp_serde::to_vec_named`) of the body, plus metadata fields `key → value`;
//! * a map event: its fields as given.
//!
//! Field names starting with `_` are reserved for beeorm (`_b`; `_t` = kind tag used by
//! dirty / lazy events); a map key or metadata key starting with `_` is refused with
//! [`Error::InvalidArgument`](crate::Error::InvalidArgument).

#![allow(dead_code, unused_variables)] // Skeleton: removed by the broker work.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Engine, Result, ValidatedRegistry};

pub(crate) mod dirty;
pub use dirty::{DirtyAction, DirtyEvent, FieldChange};

/// One registered stream: its name (the Redis key), the Redis pool it lives in, and
/// its consumer groups (created at `Registry::validate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamDef {
    pub(crate) name: String,
    pub(crate) pool: String,
    pub(crate) groups: Vec<String>,
}

/// The event broker of one registry: publish to, consume from and inspect the
/// registered streams. Get it with [`Engine::event_broker`]; cloning is cheap.
#[derive(Clone, Debug)]
pub struct EventBroker {
    registry: ValidatedRegistry,
}

impl Engine {
    /// The event broker of this engine's registry.
    pub fn event_broker(&self) -> EventBroker {
        EventBroker {
            registry: self.registry().clone(),
        }
    }
}

impl EventBroker {
    /// Publishes one serialised event (MessagePack, versioned) and returns its entry ID.
    pub async fn publish<T: Serialize + ?Sized>(&self, stream: &str, body: &T) -> Result<String> {
        let _ = (&self.registry, stream, body);
        unimplemented!("issue 13 broker")
    }

    /// [`EventBroker::publish`] with metadata fields (readable with [`Event::meta`]).
    pub async fn publish_with_meta<T: Serialize + ?Sized>(
        &self,
        stream: &str,
        body: &T,
        meta: &[(&str, &str)],
    ) -> Result<String> {
        let _ = (stream, body, meta);
        unimplemented!("issue 13 broker")
    }

    /// Publishes a plain map of fields (no serialisation).
    pub async fn publish_map<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        stream: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<String> {
        let _ = (stream, fields.into_iter().count());
        unimplemented!("issue 13 broker")
    }

    /// A publisher that collects many events and sends them in one pipeline per Redis
    /// pool.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            broker: self.clone(),
            pending: Vec::new(),
        }
    }

    /// A consumer of `group` on `stream` (both registered, else
    /// [`Error::Config`](crate::Error::Config)-like typed error).
    pub fn consumer(&self, stream: &str, group: &str) -> Result<Consumer> {
        let _ = (stream, group);
        unimplemented!("issue 13 broker")
    }

    /// Statistics of every registered stream.
    pub async fn stats(&self) -> Result<Vec<StreamStats>> {
        unimplemented!("issue 13 broker")
    }

    /// Statistics of one registered stream.
    pub async fn stream_stats(&self, stream: &str) -> Result<StreamStats> {
        let _ = stream;
        unimplemented!("issue 13 broker")
    }
}

/// One entry to send: stream and fields (already encoded).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) stream: String,
    pub(crate) fields: Vec<(String, Vec<u8>)>,
}

/// Collects events and sends them in one pipeline per Redis pool
/// ([`Publisher::send`]). Nothing is sent before `send`; dropping it sends nothing.
#[derive(Debug)]
pub struct Publisher {
    broker: EventBroker,
    pending: Vec<Outgoing>,
}

impl Publisher {
    /// Adds one serialised event.
    pub fn publish<T: Serialize + ?Sized>(&mut self, stream: &str, body: &T) -> Result<&mut Self> {
        let _ = (stream, body, &self.broker, &self.pending);
        unimplemented!("issue 13 broker")
    }

    /// Adds one serialised event with metadata fields.
    pub fn publish_with_meta<T: Serialize + ?Sized>(
        &mut self,
        stream: &str,
        body: &T,
        meta: &[(&str, &str)],
    ) -> Result<&mut Self> {
        let _ = (stream, body, meta);
        unimplemented!("issue 13 broker")
    }

    /// Adds one map event.
    pub fn publish_map<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        stream: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<&mut Self> {
        let _ = (stream, fields.into_iter().count());
        unimplemented!("issue 13 broker")
    }

    /// Adds already encoded fields (reserved `_` names allowed): for beeorm's own
    /// events (dirty, lazy).
    pub(crate) fn push_raw(&mut self, stream: &str, fields: Vec<(String, Vec<u8>)>) -> Result<()> {
        let _ = (stream, fields);
        unimplemented!("issue 13 broker")
    }

    /// How many events wait to be sent.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Sends every collected event (one pipeline per Redis pool) and returns their
    /// entry IDs in the order they were added.
    pub async fn send(self) -> Result<Vec<String>> {
        unimplemented!("issue 13 broker")
    }
}

/// One delivered stream entry.
#[derive(Debug, Clone)]
pub struct Event {
    pub(crate) id: String,
    pub(crate) stream: String,
    pub(crate) fields: Vec<(String, Vec<u8>)>,
}

impl Event {
    /// The entry ID (`<ms>-<seq>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The stream it was read from.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Decodes the serialised body of an event sent with `publish`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        unimplemented!("issue 13 broker")
    }

    /// One raw field (a map event's field, or a metadata field).
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A metadata (or map) field as UTF-8 text, `None` when absent or not UTF-8.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.field(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every field, in stream order (reserved `_` fields included).
    pub fn fields(&self) -> &[(String, Vec<u8>)] {
        &self.fields
    }
}

/// The batch a consumer's handler receives. Owned and cheap to clone (an `Arc`), so
/// the handler's future is `'static + Send`: `move |batch: Batch| async move { … }`.
/// Acks and skips are recorded and applied when the handler returns: on `Ok` every
/// event not skipped is acknowledged; on `Err` only the explicitly acked ones are,
/// and the rest stay pending (delivered again after the claim timeout).
#[derive(Debug, Clone)]
pub struct Batch {
    pub(crate) inner: Arc<BatchInner>,
}

#[derive(Debug)]
pub(crate) struct BatchInner {
    pub(crate) events: Vec<Event>,
    pub(crate) marks: std::sync::Mutex<Vec<Mark>>,
}

/// What the handler said about one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Nothing said.
    None,
    /// Acknowledged.
    Ack,
    /// Left pending, delivered again later.
    Skip,
}

impl Batch {
    /// The events, in stream order.
    pub fn events(&self) -> &[Event] {
        &self.inner.events
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.inner.events.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.events.is_empty()
    }

    /// Acknowledges the event at `index` (kept even when the handler then fails).
    pub fn ack(&self, index: usize) {
        let _ = index;
        unimplemented!("issue 13 broker")
    }

    /// Leaves the event at `index` pending: delivered again later.
    pub fn skip(&self, index: usize) {
        let _ = index;
        unimplemented!("issue 13 broker")
    }
}

/// A consumer of one group on one stream. Configure, then [`Consumer::run`] (loop until
/// stopped) or [`Consumer::drain`] (process what is there and return).
#[derive(Debug)]
pub struct Consumer {
    pub(crate) broker: EventBroker,
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) max_consumers: u32,
    pub(crate) batch_size: usize,
    pub(crate) block: Duration,
    pub(crate) claim_idle: Duration,
}

/// Stops a running [`Consumer`] gracefully: the batch in hand finishes and is acked,
/// then `run` returns and the consumer's lease is released.
#[derive(Debug, Clone)]
pub struct StopHandle {
    pub(crate) tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl StopHandle {
    /// Asks the consumer to stop.
    pub fn stop(&self) {
        let _ = self.tx.send(true);
    }
}

impl Consumer {
    /// At most `n` consumers of this group run at once across processes (default 1).
    pub fn max_consumers(mut self, n: u32) -> Self {
        self.max_consumers = n;
        self
    }

    /// Events per batch (default 100).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// How long one read waits for new events (default 1 s).
    pub fn block(mut self, d: Duration) -> Self {
        self.block = d;
        self
    }

    /// Pending events idle this long (a dead consumer's, a failed or skipped batch)
    /// are claimed again (default 60 s).
    pub fn claim_idle(mut self, d: Duration) -> Self {
        self.claim_idle = d;
        self
    }

    /// A handle that stops this consumer's `run`.
    pub fn stop_handle(&self) -> StopHandle {
        unimplemented!("issue 13 broker")
    }

    /// Runs until stopped (a [`StopHandle`], or the returned future dropped), calling
    /// `handler` with each batch.
    pub async fn run<F, Fut, E>(&self, handler: F) -> Result<()>
    where
        F: FnMut(Batch) -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let _ = handler;
        unimplemented!("issue 13 broker")
    }

    /// Processes what the stream holds for this group now (its own pending entries
    /// first) and returns how many events were handled.
    pub async fn drain<F, Fut, E>(&self, handler: F) -> Result<u64>
    where
        F: FnMut(Batch) -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let _ = handler;
        unimplemented!("issue 13 broker")
    }
}

/// Statistics of one stream (F5).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StreamStats {
    /// The stream.
    pub stream: String,
    /// Its Redis pool.
    pub pool: String,
    /// Entries in the stream (XLEN).
    pub length: u64,
    /// Age of the oldest entry still in the stream.
    pub oldest_age: Option<Duration>,
    /// One entry per registered group.
    pub groups: Vec<GroupStats>,
}

/// Statistics of one consumer group (F5).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GroupStats {
    /// The group.
    pub group: String,
    /// Delivered, not yet acknowledged.
    pub pending: u64,
    /// Consumers known to Redis in the group.
    pub consumers: u64,
    /// Entries not yet delivered to the group (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    /// Age of the oldest pending entry.
    pub oldest_pending_age: Option<Duration>,
}
