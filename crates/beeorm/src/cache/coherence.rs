//! What keeps the local layer true inside one process: per-key generations, writers
//! in flight, and the health of the invalidation channel.
//!
//! A reader that missed notes the key's [`Ticket`] before it asks Redis or the
//! database, and may store what it got in the local layer only if the ticket is still
//! valid when the answer arrives: no invalidation of that key (from a writer of this
//! process or a message of the channel), no writer of this process between its lock
//! and its unlock, and no loss of the channel, happened in between. So a row read
//! before a write can never be stored after the write's invalidation, whichever of
//! the two arrives first.
//!
//! Keys are hashed into a fixed array of counters (a collision only costs a fill
//! that is skipped), so the bookkeeping is two relaxed atomic loads per key and no
//! allocation.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters per bucket of keys.
const BUCKETS: usize = 4096;

/// Per-key generations and writers in flight, and the channel's health.
pub(crate) struct Coherence {
    generations: Box<[AtomicU64]>,
    writers: Box<[AtomicU32]>,
    /// Bumped whenever every local entry is dropped (channel lost, clear).
    epoch: AtomicU64,
    /// Whether an invalidation channel is configured (several processes may share the
    /// database): local hits then need a live channel.
    channel: bool,
    /// The channel is subscribed and delivering.
    live: AtomicBool,
    /// Send time (µs since `start`) of the newest heartbeat received back: every
    /// invalidation published before it has been applied.
    heard_at: AtomicU64,
    start: Instant,
    /// How old the newest heartbeat may be for local hits to be served.
    window: Duration,
    /// Strict mode: writers wait `window` after their unlock before returning.
    strict: bool,
}

/// A reader's note of one key's state before it asked the slower layers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    bucket: u32,
    generation: u64,
    epoch: u64,
}

impl Coherence {
    pub(crate) fn new(channel: bool, window: Duration, strict: bool) -> Self {
        Coherence {
            generations: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            writers: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            epoch: AtomicU64::new(0),
            channel,
            live: AtomicBool::new(false),
            heard_at: AtomicU64::new(0),
            start: Instant::now(),
            window,
            strict,
        }
    }

    fn bucket(slot: u32, id: u64) -> usize {
        // A cheap mix of both halves (Fibonacci hashing).
        let h = (id ^ (u64::from(slot) << 48)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 52) as usize % BUCKETS
    }

    /// Notes the state of a key before asking Redis or the database.
    #[inline]
    pub(crate) fn ticket(&self, slot: u32, id: u64) -> Ticket {
        let b = Self::bucket(slot, id);
        Ticket {
            bucket: b as u32,
            generation: self.generations[b].load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// Whether what was read after `ticket` may be stored in the local layer.
    #[inline]
    pub(crate) fn still_valid(&self, ticket: Ticket) -> bool {
        let b = ticket.bucket as usize;
        self.writers[b].load(Ordering::Acquire) == 0
            && self.generations[b].load(Ordering::Acquire) == ticket.generation
            && self.epoch.load(Ordering::Acquire) == ticket.epoch
            && self.serving()
    }

    /// A key changed (or is about to): fills noted before now are refused.
    pub(crate) fn invalidate(&self, slot: u32, id: u64) {
        self.generations[Self::bucket(slot, id)].fetch_add(1, Ordering::AcqRel);
        // Pairs with the fence of a local fill: the caller's remove that follows
        // sees the fill's entry, or the fill's second check sees this bump.
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// A writer of this process is about to commit a change of the key.
    pub(crate) fn begin_write(&self, slot: u32, id: u64) {
        let b = Self::bucket(slot, id);
        self.writers[b].fetch_add(1, Ordering::AcqRel);
        self.generations[b].fetch_add(1, Ordering::AcqRel);
    }

    /// The writer of [`Coherence::begin_write`] is done (committed or not).
    pub(crate) fn end_write(&self, slot: u32, id: u64) {
        let b = Self::bucket(slot, id);
        self.generations[b].fetch_add(1, Ordering::AcqRel);
        // Never below zero, even if an end is repeated.
        let _ = self.writers[b].fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            Some(n.saturating_sub(1))
        });
    }

    /// Every local entry is about to be dropped: refuse every fill in flight.
    pub(crate) fn bump_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Microseconds since this process's reference instant (heartbeat payloads).
    pub(crate) fn now_micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// The channel delivered a heartbeat sent at `sent` (µs).
    pub(crate) fn heard(&self, sent: u64) {
        self.heard_at.fetch_max(sent, Ordering::AcqRel);
    }

    /// The channel is (or is no longer) subscribed.
    pub(crate) fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }

    /// Whether the local layer may serve hits and take fills: always without a
    /// channel (one process); with one, only while it is live and its newest
    /// heartbeat was sent less than the window ago.
    #[inline]
    pub(crate) fn serving(&self) -> bool {
        if !self.channel {
            return true;
        }
        if !self.live.load(Ordering::Acquire) {
            return false;
        }
        let heard = self.heard_at.load(Ordering::Acquire);
        heard > 0 && self.now_micros().saturating_sub(heard) <= self.window.as_micros() as u64
    }

    /// Whether an invalidation channel is configured.
    pub(crate) fn has_channel(&self) -> bool {
        self.channel
    }

    /// The staleness window of the local layer.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Whether writers wait the window after unlocking (zero stale local reads).
    pub(crate) fn strict(&self) -> bool {
        self.strict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_survives_only_an_untouched_key() {
        let c = Coherence::new(false, Duration::from_secs(1), false);
        let t = c.ticket(1, 7);
        assert!(c.still_valid(t));
        c.invalidate(1, 7);
        assert!(!c.still_valid(t));
        let t = c.ticket(1, 7);
        c.begin_write(1, 7);
        assert!(!c.still_valid(t));
        let t = c.ticket(1, 7);
        assert!(!c.still_valid(t), "a writer in flight blocks fills");
        c.end_write(1, 7);
        assert!(!c.still_valid(t));
        let t = c.ticket(1, 7);
        assert!(c.still_valid(t));
        c.bump_epoch();
        assert!(!c.still_valid(t));
    }

    #[test]
    fn with_a_channel_the_local_layer_serves_only_while_heartbeats_are_fresh() {
        let c = Coherence::new(true, Duration::from_millis(50), false);
        assert!(!c.serving(), "not before the channel is live");
        c.set_live(true);
        assert!(!c.serving(), "not before a heartbeat came back");
        c.heard(c.now_micros().max(1));
        assert!(c.serving());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!c.serving(), "a stale heartbeat stops the local layer");
        c.heard(c.now_micros());
        assert!(c.serving());
        c.set_live(false);
        assert!(!c.serving());
    }
}
