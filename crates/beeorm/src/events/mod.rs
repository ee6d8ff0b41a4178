#![doc = include_str!("../../docs/events.md")]
#![doc = include_str!("../../docs/dirty_streams.md")]

mod codec;
mod consume;
mod lease;
mod publish;
mod setup;
mod stats;
mod trim;

// For beeorm's own events (dirty streams, lazy flush): `KIND` tags them, the codec
// writes and reads their versioned bodies.
#[allow(unused_imports)]
pub(crate) use codec::{decode_body, encode_body, BODY, KIND};
pub(crate) use publish::send_outgoing;
pub(crate) use setup::{check_streams, create_groups};
pub(crate) use stats::stream_stats;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Engine, Error, Result, ValidatedRegistry};

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
    /// [`Error::UnknownStream`] for a stream not
    /// registered, [`Error::EventEncode`] for a body that
    /// does not serialise; nothing is sent then.
    pub async fn publish<T: Serialize + ?Sized>(&self, stream: &str, body: &T) -> Result<String> {
        self.publish_with_meta(stream, body, &[]).await
    }

    /// [`EventBroker::publish`] with metadata fields (readable with [`Event::meta`]).
    pub async fn publish_with_meta<T: Serialize + ?Sized>(
        &self,
        stream: &str,
        body: &T,
        meta: &[(&str, &str)],
    ) -> Result<String> {
        let mut p = self.publisher();
        p.publish_with_meta(stream, body, meta)?;
        p.send_one().await
    }

    /// Publishes a plain map of fields (no serialisation), in the order given. Field
    /// names may not be empty nor start with `_`, and a map needs at least one field
    /// ([`Error::InvalidArgument`]).
    pub async fn publish_map<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        stream: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<String> {
        let mut p = self.publisher();
        p.publish_map(stream, fields)?;
        p.send_one().await
    }

    /// A publisher that collects many events and sends them in one pipeline per Redis
    /// pool.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            broker: self.clone(),
            pending: Vec::new(),
        }
    }

    /// A consumer of `group` on `stream`: [`Error::UnknownStream`]
    /// or [`Error::UnknownGroup`] when either is not
    /// registered. Nothing is sent until [`Consumer::run`] or [`Consumer::drain`].
    pub fn consumer(&self, stream: &str, group: &str) -> Result<Consumer> {
        let def = self
            .registry
            .stream(stream)
            .ok_or_else(|| Error::UnknownStream {
                stream: stream.to_string(),
            })?;
        if !def.groups.iter().any(|g| g == group) {
            return Err(Error::UnknownGroup {
                stream: stream.to_string(),
                group: group.to_string(),
            });
        }
        Ok(Consumer {
            broker: self.clone(),
            stream: stream.to_string(),
            group: group.to_string(),
            max_consumers: 1,
            batch_size: 100,
            block: Duration::from_secs(1),
            claim_idle: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(30),
            stop: Arc::new(tokio::sync::watch::channel(false).0),
        })
    }

    /// Statistics of every registered stream, by stream name, then — when the lazy
    /// flush is enabled — of its stream (group `beeorm-lazy`: the backlog) and of its
    /// dead-letter stream (its length: the writes given up on).
    pub async fn stats(&self) -> Result<Vec<StreamStats>> {
        let mut out = Vec::new();
        for name in self.registry.streams().keys() {
            out.push(self.stream_stats(name).await?);
        }
        if let Some(lazy) = self.registry.lazy() {
            let pool = lazy.client.pool_name().to_string();
            for (name, groups) in [
                (&lazy.stream, vec![crate::flush::LAZY_GROUP.to_string()]),
                (&lazy.dead, Vec::new()),
            ] {
                let def = StreamDef {
                    name: name.clone(),
                    pool: pool.clone(),
                    groups,
                };
                out.push(stats::stream_stats(&lazy.client, &def).await?);
            }
        }
        Ok(out)
    }

    /// Statistics of one registered stream.
    pub async fn stream_stats(&self, stream: &str) -> Result<StreamStats> {
        let def = self
            .registry
            .stream(stream)
            .ok_or_else(|| Error::UnknownStream {
                stream: stream.to_string(),
            })?;
        let client = self
            .registry
            .redis(&def.pool)
            .ok_or_else(|| Error::UnknownPool {
                kind: "redis",
                pool: def.pool.clone(),
                used_by: format!("stream `{stream}`"),
            })?;
        stats::stream_stats(client, def).await
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
    /// Adds one serialised event (errors as [`EventBroker::publish`]'s, at once).
    pub fn publish<T: Serialize + ?Sized>(&mut self, stream: &str, body: &T) -> Result<&mut Self> {
        self.publish_with_meta(stream, body, &[])
    }

    /// Adds one serialised event with metadata fields.
    pub fn publish_with_meta<T: Serialize + ?Sized>(
        &mut self,
        stream: &str,
        body: &T,
        meta: &[(&str, &str)],
    ) -> Result<&mut Self> {
        self.check_stream(stream)?;
        let fields = codec::body_fields("publish", stream, body, meta)?;
        self.pending.push(Outgoing {
            stream: stream.to_string(),
            fields,
        });
        Ok(self)
    }

    /// Adds one map event.
    pub fn publish_map<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        stream: &str,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<&mut Self> {
        self.check_stream(stream)?;
        let fields = codec::map_fields("publish_map", stream, fields)?;
        self.pending.push(Outgoing {
            stream: stream.to_string(),
            fields,
        });
        Ok(self)
    }

    fn check_stream(&self, stream: &str) -> Result<()> {
        match self.broker.registry.stream(stream) {
            Some(_) => Ok(()),
            None => Err(Error::UnknownStream {
                stream: stream.to_string(),
            }),
        }
    }

    /// Sends the one event added.
    async fn send_one(self) -> Result<String> {
        let mut ids = self.send().await?;
        ids.pop().ok_or_else(|| Error::InvalidArgument {
            call: "publish".into(),
            reason: "no event to send".into(),
        })
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
        send_outgoing(&self.broker.registry, self.pending).await
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
    /// [`Error::EventDecode`] (naming stream and entry) for
    /// a map event (no body), a body of an unknown format version, or bytes that do
    /// not decode into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        match self.field(BODY) {
            Some(bytes) => codec::decode_body(&self.stream, &self.id, bytes),
            None => Err(Error::EventDecode {
                stream: self.stream.clone(),
                id: self.id.clone(),
                reason: "no body field `_b`: a map event has none (read its fields)".into(),
            }),
        }
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
    /// An index past the batch is ignored.
    pub fn ack(&self, index: usize) {
        self.mark(index, Mark::Ack);
    }

    /// Leaves the event at `index` pending: delivered again later.
    /// It is claimed again once it has been idle for the consumer's `claim_idle`
    /// (never at once, so a skipped event does not spin). An index past the batch is
    /// ignored; the last of `ack` / `skip` for an index wins.
    pub fn skip(&self, index: usize) {
        self.mark(index, Mark::Skip);
    }

    fn mark(&self, index: usize, mark: Mark) {
        let mut marks = self.inner.marks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = marks.get_mut(index) {
            *m = mark;
        }
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
    pub(crate) lease_ttl: Duration,
    pub(crate) stop: Arc<tokio::sync::watch::Sender<bool>>,
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
        // `send_replace`: also when no `run` listens yet (`send` would drop it).
        self.tx.send_replace(true);
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

    /// How long a consumer's lease lives without renewal (default 30 s; renewed every
    /// third of it). A consumer whose process dies holds its slot this long; a lease
    /// that could not be renewed in time stops the consumer with
    /// [`Error::LeaseLost`].
    pub fn lease_ttl(mut self, d: Duration) -> Self {
        self.lease_ttl = d;
        self
    }

    /// A handle that stops this consumer's `run`. A stop is final: `run` returns at
    /// once when called again on a stopped consumer (make a new one).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            tx: self.stop.clone(),
        }
    }

    /// Runs until stopped (a [`StopHandle`], or the returned future dropped), calling
    /// `handler` with each batch.
    ///
    /// Takes a consumer slot first: [`Error::ConsumersBusy`]
    /// at once when `max_consumers` consumers of the group already run (retry later
    /// if you want to wait for a slot). A handler error, or a Redis error while
    /// reading or acknowledging, is logged (`tracing` warning) and followed by a
    /// growing pause (100 ms to 5 s); the events stay pending and are delivered again.
    /// Returns `Ok` after a stop — the batch in hand is finished and acknowledged
    /// first, a read in flight returns within `block` — or
    /// [`Error::LeaseLost`]. Settings no consumer can honour
    /// (zero `max_consumers`, `batch_size`, `block` or `claim_idle`) are
    /// [`Error::InvalidArgument`] before anything is
    /// sent.
    pub async fn run<F, Fut, E>(&self, handler: F) -> Result<()>
    where
        F: FnMut(Batch) -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.run_loop(handler).await
    }

    /// [`Consumer::run`] until SIGINT or SIGTERM (Ctrl-C elsewhere than Unix), then
    /// stops gracefully like [`StopHandle::stop`]. The signal handlers are installed
    /// for the process (Tokio's): after this returns, those signals no longer end it
    /// by default. [`Error::Io`] if they cannot be installed.
    pub async fn run_until_signal<F, Fut, E>(&self, handler: F) -> Result<()>
    where
        F: FnMut(Batch) -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let signals = Signals::install()?;
        let stop = self.stop_handle();
        let watcher = tokio::spawn(async move {
            signals.wait().await;
            tracing::info!("signal received: stopping the consumer after its batch");
            stop.stop();
        });
        let result = self.run(handler).await;
        watcher.abort();
        result
    }

    /// Processes what the stream holds for this group now and returns how many
    /// events were handed to the handler: this consumer slot's own pending entries
    /// first (left by a previous run in the same slot), then one pass over entries
    /// idle for `claim_idle` (other consumers' stuck or skipped ones), then new
    /// entries up to the last one the stream held when the drain started. Skipped
    /// events stay pending and are not handed again by this drain. A handler error
    /// ends the drain with [`Error::Handler`] (the events it
    /// did not acknowledge stay pending); Redis errors are returned as they come.
    /// Takes a consumer slot like `run`.
    pub async fn drain<F, Fut, E>(&self, handler: F) -> Result<u64>
    where
        F: FnMut(Batch) -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.drain_loop(handler).await
    }
}

/// SIGINT and SIGTERM (Ctrl-C where there are no Unix signals).
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let io = |name: &str, source| Error::Io {
                path: format!("{name} handler"),
                source,
            };
            Ok(Signals {
                term: signal(SignalKind::terminate()).map_err(|e| io("SIGTERM", e))?,
                int: signal(SignalKind::interrupt()).map_err(|e| io("SIGINT", e))?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
        }
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
    /// One entry per group: the registered ones in registration order, then any
    /// other group Redis knows for the stream (it holds trimming back too).
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
