//! The consumer loop: lease a slot, read (own pending entries first, then idle
//! entries reclaimed with `XAUTOCLAIM`, then new ones), hand each batch to the
//! handler, acknowledge what the handler's outcome says, trim now and then.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::Value;

use super::lease::Lease;
use super::stats::text;
use super::{trim, Batch, BatchInner, Consumer, Event, Mark};
use crate::redis::{RedisClient, RedisConnection};
use crate::{Error, Result};

/// Trim after this many acknowledgements…
const TRIM_EVERY_ACKS: u64 = 1_000;
/// …or this long after the last trim, whichever comes first.
const TRIM_EVERY: Duration = Duration::from_secs(5);
/// Pauses after a failure (handler or Redis) grow from the first to the last.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Whether a boxed error from a handler.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a batch ended with.
pub(crate) enum Handled {
    /// The handler returned `Ok`.
    Done,
    /// The handler failed (its acks were applied).
    Failed(BoxError),
}

/// Reads one group of one stream as one consumer.
pub(crate) struct Reader {
    client: RedisClient,
    /// Connection of its own for blocking reads (opened on first use, dropped after
    /// an error).
    conn: Option<RedisConnection>,
    stream: String,
    group: String,
    consumer: String,
    batch: usize,
    block: Duration,
    claim_idle: Duration,
    /// Where the first pass over our own pending entries is (`None` once done).
    own: Option<String>,
    /// `XAUTOCLAIM` cursor (`0-0` = start a new pass).
    claim_cursor: String,
    /// When the last claim pass started.
    last_claim: Option<Instant>,
    acks_since_trim: u64,
    last_trim: Instant,
}

impl Reader {
    pub(crate) fn new(c: &Consumer, client: RedisClient, consumer: String) -> Reader {
        // A blocking read must come back before the pool's response timeout.
        let response = client.response_timeout();
        let cap = response.saturating_sub((response / 4).max(Duration::from_millis(100)));
        let block = c.block.min(cap).max(Duration::from_millis(1));
        Reader {
            client,
            conn: None,
            stream: c.stream.clone(),
            group: c.group.clone(),
            consumer,
            batch: c.batch_size,
            block,
            claim_idle: c.claim_idle,
            own: Some("0".into()),
            claim_cursor: "0-0".into(),
            last_claim: None,
            acks_since_trim: 0,
            last_trim: Instant::now(),
        }
    }

    fn readgroup(&self, id: &str, block: Option<Duration>) -> ::redis::Cmd {
        let mut cmd = ::redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.batch);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(id);
        cmd
    }

    /// The next batch of `run`: our own pending entries (first pass only), then
    /// entries idle for `claim_idle` (a claim pass every `claim_idle / 2`), then new
    /// entries (blocking up to `block`). Empty when there is nothing.
    pub(crate) async fn next(&mut self) -> Result<Vec<Event>> {
        if self.own.is_some() {
            let events = self.own_next().await?;
            if !events.is_empty() {
                return Ok(events);
            }
        }
        let due = self.claim_cursor != "0-0"
            || self
                .last_claim
                .is_none_or(|t| t.elapsed() >= self.claim_idle / 2);
        if due {
            let events = self.claim_next().await?;
            if !events.is_empty() {
                return Ok(events);
            }
        }
        self.read_blocking().await
    }

    /// The next batch of our own pending entries, in one pass from the start of our
    /// PEL (a restarted consumer's leftovers); empty once the pass is over.
    pub(crate) async fn own_next(&mut self) -> Result<Vec<Event>> {
        let Some(cursor) = self.own.clone() else {
            return Ok(Vec::new());
        };
        let reply: Value = self
            .client
            .run("XREADGROUP", self.readgroup(&cursor, None))
            .await?;
        let (events, deleted) = parse_read(&self.stream, reply);
        self.ack_deleted(deleted).await?;
        match events.last() {
            Some(last) => self.own = Some(last.id.clone()),
            None => self.own = None,
        }
        Ok(events)
    }

    /// New entries without waiting.
    pub(crate) async fn new_now(&mut self) -> Result<Vec<Event>> {
        let reply: Value = self
            .client
            .run("XREADGROUP", self.readgroup(">", None))
            .await?;
        Ok(parse_read(&self.stream, reply).0)
    }

    /// The next batch of one claim pass (`XAUTOCLAIM` from where the last call
    /// stopped); returns the events and whether the pass went round.
    pub(crate) async fn claim_next(&mut self) -> Result<Vec<Event>> {
        if self.claim_cursor == "0-0" {
            self.last_claim = Some(Instant::now());
        }
        self.claim().await
    }

    /// Whether the current claim pass is over (the cursor went round).
    pub(crate) fn claim_pass_over(&self) -> bool {
        self.claim_cursor == "0-0"
    }

    async fn claim(&mut self) -> Result<Vec<Event>> {
        let mut cmd = ::redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(self.claim_idle.as_millis() as u64)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(self.batch);
        let reply: Value = self.client.run("XAUTOCLAIM", cmd).await?;
        let Value::Array(mut parts) = reply else {
            return Ok(Vec::new());
        };
        if parts.len() < 2 {
            return Ok(Vec::new());
        }
        let entries = parts.swap_remove(1);
        self.claim_cursor = parts.first().and_then(text).unwrap_or_else(|| "0-0".into());
        let (events, deleted) = parse_entries(&self.stream, entries);
        // Redis 7 drops deleted entries from the PEL itself; older servers return
        // them with no fields.
        self.ack_deleted(deleted).await?;
        if !events.is_empty() {
            tracing::debug!(stream = %self.stream, group = %self.group, count = events.len(), "claimed idle pending events");
        }
        Ok(events)
    }

    async fn read_blocking(&mut self) -> Result<Vec<Event>> {
        let conn = match &self.conn {
            Some(c) => c.clone(),
            None => {
                let c = self.client.dedicated().await?;
                self.conn = Some(c.clone());
                c
            }
        };
        let mut conn = conn;
        let cmd = self.readgroup(">", Some(self.block));
        let limit = self.block + self.client.response_timeout();
        let result = tokio::time::timeout(limit, cmd.query_async::<Value>(&mut conn)).await;
        match result {
            Ok(Ok(reply)) => Ok(parse_read(&self.stream, reply).0),
            Ok(Err(source)) => {
                self.conn = None;
                Err(self.client.error("XREADGROUP", source))
            }
            Err(_) => {
                self.conn = None;
                Err(self.client.error(
                    "XREADGROUP",
                    ::redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the blocking read did not come back in time",
                    )),
                ))
            }
        }
    }

    async fn ack_deleted(&mut self, ids: Vec<String>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.ack(&ids).await
    }

    /// `XACK` of `ids`.
    pub(crate) async fn ack(&mut self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = ::redis::cmd("XACK");
        cmd.arg(&self.stream).arg(&self.group).arg(ids);
        let _: i64 = self.client.run("XACK", cmd).await?;
        self.acks_since_trim += ids.len() as u64;
        Ok(())
    }

    /// Hands `events` to the handler and acknowledges per its outcome: on `Ok`
    /// every event not skipped, on `Err` only those it acknowledged.
    pub(crate) async fn handle<F, Fut, E>(
        &mut self,
        handler: &mut F,
        events: Vec<Event>,
    ) -> Result<Handled>
    where
        F: FnMut(Batch) -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send,
        E: Into<BoxError>,
    {
        let n = events.len();
        let batch = Batch {
            inner: Arc::new(BatchInner {
                events,
                marks: std::sync::Mutex::new(vec![Mark::None; n]),
            }),
        };
        let outcome = handler(batch.clone()).await;
        let marks = batch
            .inner
            .marks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let ok = outcome.is_ok();
        let ids: Vec<String> = batch
            .inner
            .events
            .iter()
            .zip(&marks)
            .filter(|(_, m)| {
                if ok {
                    **m != Mark::Skip
                } else {
                    **m == Mark::Ack
                }
            })
            .map(|(e, _)| e.id.clone())
            .collect();
        self.ack(&ids).await?;
        Ok(match outcome {
            Ok(()) => Handled::Done,
            Err(e) => Handled::Failed(e.into()),
        })
    }

    /// Trims when enough was acknowledged or enough time passed (or `force`).
    /// Failures are logged: trimming is retried on the next occasion.
    pub(crate) async fn maybe_trim(&mut self, force: bool) {
        if !force && self.acks_since_trim < TRIM_EVERY_ACKS && self.last_trim.elapsed() < TRIM_EVERY
        {
            return;
        }
        self.last_trim = Instant::now();
        self.acks_since_trim = 0;
        match trim::trim(&self.client, &self.stream).await {
            Ok(Some(n)) if n > 0 => {
                tracing::debug!(stream = %self.stream, trimmed = n, "stream trimmed")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(stream = %self.stream, error = %e, "trimming the stream failed")
            }
        }
    }
}

/// An `XREADGROUP` reply: the events of our one stream, and the IDs of entries that
/// were deleted (no fields). `Nil` (a blocking read that timed out) is empty.
fn parse_read(stream: &str, reply: Value) -> (Vec<Event>, Vec<String>) {
    let streams: Vec<Value> = match reply {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => Some(pair.swap_remove(1)),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    let mut events = Vec::new();
    let mut deleted = Vec::new();
    for entries in streams {
        let (e, d) = parse_entries(stream, entries);
        events.extend(e);
        deleted.extend(d);
    }
    (events, deleted)
}

/// `[[id, [field, value, …] | nil], …]`.
fn parse_entries(stream: &str, entries: Value) -> (Vec<Event>, Vec<String>) {
    let Value::Array(entries) = entries else {
        return (Vec::new(), Vec::new());
    };
    let mut events = Vec::with_capacity(entries.len());
    let mut deleted = Vec::new();
    for entry in entries {
        let Value::Array(parts) = entry else { continue };
        let mut parts = parts.into_iter();
        let Some(id) = parts.next().as_ref().and_then(text) else {
            continue;
        };
        let fields = match parts.next() {
            Some(Value::Array(items)) => {
                let mut fields = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let (Some(k), Some(v)) = (text(&k), bytes(v)) {
                        fields.push((k, v));
                    }
                }
                fields
            }
            Some(Value::Map(pairs)) => pairs
                .into_iter()
                .filter_map(|(k, v)| Some((text(&k)?, bytes(v)?)))
                .collect(),
            _ => {
                deleted.push(id);
                continue;
            }
        };
        events.push(Event {
            id,
            stream: stream.to_string(),
            fields,
        });
    }
    (events, deleted)
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

impl Consumer {
    /// Checks the settings before anything is sent.
    fn check(&self, call: &str) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidArgument {
                call: format!("Consumer::{call}(\"{}\", \"{}\")", self.stream, self.group),
                reason,
            })
        };
        if self.max_consumers == 0 {
            return bad("max_consumers must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if self.block.is_zero() {
            return bad("block must be above zero (Redis reads BLOCK 0 as forever)".into());
        }
        if self.claim_idle.as_millis() == 0 {
            return bad(format!(
                "claim_idle must be at least 1 ms (got {:?})",
                self.claim_idle
            ));
        }
        if self.lease_ttl.as_millis() < 30 {
            return bad(format!(
                "lease_ttl must be at least 30 ms (got {:?})",
                self.lease_ttl
            ));
        }
        Ok(())
    }

    fn client(&self) -> Result<RedisClient> {
        let def =
            self.broker
                .registry
                .stream(&self.stream)
                .ok_or_else(|| Error::UnknownStream {
                    stream: self.stream.clone(),
                })?;
        self.broker
            .registry
            .redis(&def.pool)
            .cloned()
            .ok_or_else(|| Error::UnknownPool {
                kind: "redis",
                pool: def.pool.clone(),
                used_by: format!("stream `{}`", self.stream),
            })
    }

    pub(crate) async fn run_loop<F, Fut, E>(&self, mut handler: F) -> Result<()>
    where
        F: FnMut(Batch) -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send,
        E: Into<BoxError>,
    {
        self.check("run")?;
        let client = self.client()?;
        let mut stop = self.stop.subscribe();
        if *stop.borrow() {
            return Ok(());
        }
        let lease = Lease::acquire(
            &client,
            &self.stream,
            &self.group,
            self.max_consumers,
            self.lease_ttl,
        )
        .await?;
        let mut reader = Reader::new(self, client, lease.consumer_name());
        let mut backoff = BACKOFF_MIN;
        loop {
            if *stop.borrow() {
                break;
            }
            if lease.is_lost() {
                return Err(Error::LeaseLost {
                    stream: self.stream.clone(),
                    group: self.group.clone(),
                    consumer: lease.consumer_name(),
                });
            }
            let failure = match reader.next().await {
                Ok(events) if events.is_empty() => None,
                Ok(events) => match reader.handle(&mut handler, events).await {
                    Ok(Handled::Done) => None,
                    Ok(Handled::Failed(e)) => {
                        tracing::warn!(stream = %self.stream, group = %self.group, error = %e, "event handler failed; the events it did not acknowledge stay pending");
                        Some(())
                    }
                    Err(e) => {
                        tracing::warn!(stream = %self.stream, group = %self.group, error = %e, "acknowledging events failed; they will be delivered again");
                        Some(())
                    }
                },
                Err(e) => {
                    tracing::warn!(stream = %self.stream, group = %self.group, error = %e, "reading events failed");
                    Some(())
                }
            };
            match failure {
                None => backoff = BACKOFF_MIN,
                Some(()) => {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            reader.maybe_trim(false).await;
        }
        reader.maybe_trim(true).await;
        lease.release().await
    }

    pub(crate) async fn drain_loop<F, Fut, E>(&self, mut handler: F) -> Result<u64>
    where
        F: FnMut(Batch) -> Fut + Send,
        Fut: std::future::Future<Output = std::result::Result<(), E>> + Send,
        E: Into<BoxError>,
    {
        self.check("drain")?;
        let client = self.client()?;
        // New entries up to the stream's last one now: a drain ends even while
        // publishers go on.
        let mut last = ::redis::cmd("XREVRANGE");
        last.arg(&self.stream).arg("+").arg("-").arg("COUNT").arg(1);
        let last: Vec<(String, Value)> = client.run("XREVRANGE", last).await?;
        let end = last.into_iter().next().map(|(id, _)| id);
        let lease = Lease::acquire(
            &client,
            &self.stream,
            &self.group,
            self.max_consumers,
            self.lease_ttl,
        )
        .await?;
        let mut reader = Reader::new(self, client, lease.consumer_name());
        let mut count = 0u64;
        // Our own pending entries, one claim pass over idle ones, then new entries
        // up to `end`: each phase ends, so the drain does (skipped events stay
        // pending and are not handed twice).
        for phase in 0..3 {
            loop {
                if lease.is_lost() {
                    return Err(Error::LeaseLost {
                        stream: self.stream.clone(),
                        group: self.group.clone(),
                        consumer: lease.consumer_name(),
                    });
                }
                let events = match phase {
                    0 => reader.own_next().await?,
                    1 => reader.claim_next().await?,
                    _ => reader.new_now().await?,
                };
                let over = match phase {
                    0 => events.is_empty(),
                    1 => reader.claim_pass_over(),
                    _ => match (&end, events.last()) {
                        (Some(end), Some(e)) => id_cmp(&e.id, end) != std::cmp::Ordering::Less,
                        _ => true,
                    },
                };
                if !events.is_empty() {
                    count += events.len() as u64;
                    if let Handled::Failed(source) = reader.handle(&mut handler, events).await? {
                        reader.maybe_trim(true).await;
                        lease.release().await?;
                        return Err(Error::Handler {
                            stream: self.stream.clone(),
                            group: self.group.clone(),
                            source,
                        });
                    }
                }
                if over {
                    break;
                }
            }
        }
        reader.maybe_trim(true).await;
        lease.release().await?;
        Ok(count)
    }
}

/// Orders two entry IDs (`ms-seq`) numerically.
fn id_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |id: &str| -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    };
    parse(a).cmp(&parse(b))
}
