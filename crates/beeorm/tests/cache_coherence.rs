//! The coherence checker of the entity caches (issue 12, item 11), and its runs.
//!
//! Why it exists: the entity caches promise never to serve a row older than one a
//! committed write left, and the deterministic race tests (`cache_races.rs`) only
//! replay the interleavings someone thought of. This checker runs real traffic —
//! writers and readers on two "processes" (two registries with their own local
//! caches, connections and invalidation subscribers), once with a real second OS
//! process — against one database and one Redis, records every operation with the
//! time it started and the time it returned, and judges the whole history
//! afterwards, so any interleaving the scheduler produces is checked.
//!
//! How it works ([`checker`]):
//!
//! * Every write stores a token no other write uses in `val`. A writer records
//!   `(key, token, t_invoke, t_ack)` for each acknowledged write (flush,
//!   `flush_in` + `Transaction::commit`, a delete and its re-insert) and the tokens
//!   of writes that must never be seen (rolled back, or failed on a duplicate
//!   primary key inside the same flush).
//! * Every read records, per key, `(engine, key, claim, t_invoke, t_return)` and
//!   whether it went through Redis only (a registry of a Redis-only view of the same
//!   table, same schema signature, so same keys and bytes) or could be served by a
//!   local layer. A claim is a token or "absent" (`load_by_id`, `load_by_ids`, the
//!   cached query `all`), or "in / not in list `b`" (the cached query `by_bucket`;
//!   every write moves its row to list `token % 3`).
//! * A write `w'` *supersedes* the write `w` a read returned when `w'` began after
//!   `w` was acknowledged (real-time order, no need for a global commit order). A
//!   read is *stale* when every write that explains its claim was superseded by a
//!   write acknowledged before the read began; its staleness is how long before. Through Redis, and in strict mode
//!   everywhere, any stale read fails; a local read in the default mode fails beyond
//!   the configured window, and the largest staleness seen is reported.
//! * A token of a rolled-back or failed write, of a write that had not started when
//!   the read returned, or of no write at all, fails; so does a claim no write that
//!   began before the read returned explains (a list holding a row only a rolled-back
//!   write put there).
//! * Per engine, a read that began after another returned must not return a write
//!   the first one's write superseded (monotonic reads; enforced through Redis and
//!   in strict mode, counted for local reads in the default mode).
//! * Quiescence: once traffic stops and the window passed, no lease or lock is left
//!   in Redis, and for every key a brand new Redis-only registry (empty local cache:
//!   it decodes whatever Redis holds) and every engine of the run read what a plain
//!   SQL SELECT returns, and list what it implies.
//!
//! Faults during a run: the namespace's keys deleted mid-run (SCAN + DEL, the
//! FLUSHALL of a shared Redis), every subscriber killed (`CLIENT KILL TYPE pubsub`:
//! the invalidation channel of every registry drops and must recover), and a local
//! capacity of four entries.
//!
//! How it catches a broken protocol: `beeorm::__private::pause::set_broken_fill`
//! makes the fill skip the lease check (the Go original's unconditional SET), and a
//! pause point holds readers a few milliseconds between their SELECT and their fill.
//! A reader that read `v1`, while a writer committed `v2` and deleted the key, then
//! stores `v1`; Redis-only readers that start after `v2`'s acknowledgement read `v1`
//! back (a stale read through Redis), and a key whose last write raced like that
//! still holds `v1` at quiescence. `a_fill_without_the_lease_check_is_caught`
//! asserts that the checker reports such violations.
//!
//! Bounds: each run lasts `BEEORM_COHERENCE_SECS` seconds (default 2); the file
//! (13 runs) takes about 21 s on 2 cores.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common_redis/mod.rs"]
mod common_redis;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beeorm::prelude::*;
use beeorm::redis::driver;
use beeorm::{CacheStats, EntityCacheStats};
use checker::{Claim, Outcome, ReadOp, Report, Rules, WriteOp};
use common::Kind;

/// The checked rows.
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(local_cache, redis_cache, table = "coherence_rows")]
#[orm(cached_query(name = "all", query = ""))]
#[orm(cached_query(name = "by_bucket", query = ":bucket = ? ORDER BY :id"))]
struct Row {
    id: u64,
    val: u64,
    /// `val % 3`: every write moves the row between the `by_bucket` lists.
    bucket: u32,
    writer: u32,
    note: String,
}

/// The same table seen without a local layer: every read goes through Redis. Same
/// columns, so the same schema signature, keys and bytes as [`Row`].
#[derive(Entity, Clone, Debug, PartialEq)]
#[orm(redis_cache, table = "coherence_rows")]
#[orm(cached_query(name = "all", query = ""))]
#[orm(cached_query(name = "by_bucket", query = ":bucket = ? ORDER BY :id"))]
struct RedisRow {
    id: u64,
    val: u64,
    bucket: u32,
    writer: u32,
    note: String,
}

/// What a read returns of either view.
trait Token: Entity {
    fn token(&self) -> u64;
}

impl Token for Row {
    fn token(&self) -> u64 {
        self.val
    }
}

impl Token for RedisRow {
    fn token(&self) -> u64 {
        self.val
    }
}

/// Microseconds since the Unix epoch: one clock for every process of a run.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

mod checker {
    //! The history and its judge: pure functions over recorded operations.
    use std::collections::HashMap;

    /// How a write ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Outcome {
        /// Acknowledged: the call returned `Ok` (after the COMMIT).
        Acked,
        /// Rolled back or failed by design: its token must never be read.
        Forbidden,
        /// An unexpected error: it may or may not have committed.
        Unknown,
    }

    impl Outcome {
        pub fn as_str(self) -> &'static str {
            match self {
                Outcome::Acked => "acked",
                Outcome::Forbidden => "forbidden",
                Outcome::Unknown => "unknown",
            }
        }

        pub fn parse(s: &str) -> Option<Outcome> {
            match s {
                "acked" => Some(Outcome::Acked),
                "forbidden" => Some(Outcome::Forbidden),
                "unknown" => Some(Outcome::Unknown),
                _ => None,
            }
        }
    }

    /// One write of one key.
    #[derive(Clone, Debug)]
    pub struct WriteOp {
        pub key: u64,
        /// The token written, `None` for a delete.
        pub value: Option<u64>,
        /// Unique per write (a delete has one too).
        pub token: u64,
        pub invoke: u64,
        /// When the call returned (acknowledged, or failed).
        pub ack: u64,
        pub outcome: Outcome,
        pub kind: String,
    }

    /// How many `by_bucket` lists there are: a row with token `t` is in list `t % 3`.
    pub const BUCKETS: u64 = 3;

    /// What one read says about one key.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Claim {
        /// The row holds this token (`load_by_id`, `load_by_ids`, a listed row).
        Token(u64),
        /// No such row (missing by ID, or not in the `all` list).
        Absent,
        /// The row is in this `by_bucket` list.
        InBucket(u64),
        /// The row is not in this `by_bucket` list (absent, or another bucket).
        NotInBucket(u64),
    }

    impl Claim {
        /// Whether write `w` (a delete when `w.value` is `None`) explains the claim.
        fn explained_by(self, w: &WriteOp) -> bool {
            match (self, w.value) {
                (Claim::Token(t), Some(v)) => t == v,
                (Claim::Absent, None) => true,
                (Claim::InBucket(b), Some(v)) => v % BUCKETS == b,
                (Claim::NotInBucket(b), Some(v)) => v % BUCKETS != b,
                (Claim::NotInBucket(_), None) => true,
                _ => false,
            }
        }
    }

    /// One key as one read saw it.
    #[derive(Clone, Debug)]
    pub struct ReadOp {
        pub engine: u32,
        /// The reading registry has no local layer: the answer came from Redis or
        /// the database.
        pub through_redis: bool,
        pub key: u64,
        pub claim: Claim,
        pub invoke: u64,
        pub ret: u64,
    }

    /// What the checker enforces.
    #[derive(Clone, Copy, Debug)]
    pub struct Rules {
        /// The local layer's staleness window (µs).
        pub window_us: u64,
        /// Strict mode: no stale read at all, local ones included.
        pub strict: bool,
    }

    /// What the checker found.
    #[derive(Debug, Default)]
    pub struct Report {
        pub reads: usize,
        pub reads_through_redis: usize,
        pub absent_reads: usize,
        /// Claims of the `by_bucket` lists.
        pub membership_reads: usize,
        pub writes_acked: usize,
        pub writes_forbidden: usize,
        pub writes_unknown: usize,
        pub deletes: usize,
        /// Local reads (default mode) that returned a superseded write.
        pub stale_local_reads: usize,
        /// The largest staleness of those (µs).
        pub max_local_staleness_us: u64,
        /// Local reads (default mode) older than an earlier read of their engine.
        pub non_monotonic_local: usize,
        /// Every violation (the first 50 described).
        pub violations: Vec<String>,
        pub violation_count: usize,
    }

    impl Report {
        pub fn violation(&mut self, text: String) {
            self.violation_count += 1;
            if self.violations.len() < 50 {
                self.violations.push(text);
            }
        }

        pub fn summary(&self) -> String {
            format!(
                "{} reads ({} through Redis only, {} absent, {} list memberships), writes: {} \
                 acked ({} deletes), \
                 {} rolled back or failed, {} unknown; local staleness: {} stale reads, \
                 largest {:.1} ms; {} non-monotonic local reads; {} violations",
                self.reads,
                self.reads_through_redis,
                self.absent_reads,
                self.membership_reads,
                self.writes_acked,
                self.deletes,
                self.writes_forbidden,
                self.writes_unknown,
                self.stale_local_reads,
                self.max_local_staleness_us as f64 / 1000.0,
                self.non_monotonic_local,
                self.violation_count
            )
        }
    }

    /// The acknowledged writes of one key, by start time, with the earliest
    /// acknowledgement of every suffix.
    #[derive(Default)]
    struct KeyWrites {
        by_invoke: Vec<(u64, u64)>,
        suffix_min_ack: Vec<u64>,
    }

    impl KeyWrites {
        fn build(mut writes: Vec<(u64, u64)>) -> KeyWrites {
            writes.sort_unstable();
            let mut suffix = vec![u64::MAX; writes.len()];
            let mut min = u64::MAX;
            for i in (0..writes.len()).rev() {
                min = min.min(writes[i].1);
                suffix[i] = min;
            }
            KeyWrites {
                by_invoke: writes,
                suffix_min_ack: suffix,
            }
        }

        /// The earliest acknowledgement among writes that began after `t`.
        fn earliest_ack_after(&self, t: u64) -> Option<u64> {
            let i = self.by_invoke.partition_point(|(invoke, _)| *invoke <= t);
            self.suffix_min_ack.get(i).copied()
        }

        /// How long before `invoke` a write superseding one acknowledged at `ack`
        /// was acknowledged (0: none was).
        fn staleness(&self, ack: u64, invoke: u64) -> u64 {
            match self.earliest_ack_after(ack) {
                Some(a) if a < invoke => invoke - a,
                _ => 0,
            }
        }
    }

    /// Judges a history (see the file's docs).
    pub fn check(writes: &[WriteOp], reads: &[ReadOp], rules: Rules) -> Report {
        let mut report = Report::default();
        let mut acked: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        // Per key, every write that may have taken effect (for claims other than a
        // token: absent, in or out of a list).
        let mut effective: HashMap<u64, Vec<&WriteOp>> = HashMap::new();
        let mut tokens: HashMap<u64, &WriteOp> = HashMap::new();
        for w in writes {
            match w.outcome {
                Outcome::Acked => {
                    report.writes_acked += 1;
                    acked.entry(w.key).or_default().push((w.invoke, w.ack));
                }
                Outcome::Forbidden => report.writes_forbidden += 1,
                Outcome::Unknown => report.writes_unknown += 1,
            }
            if w.value.is_some() && tokens.insert(w.token, w).is_some() {
                report.violation(format!("token {} written twice", w.token));
            }
            if w.value.is_none() && w.outcome == Outcome::Acked {
                report.deletes += 1;
            }
            if w.outcome != Outcome::Forbidden {
                effective.entry(w.key).or_default().push(w);
            }
        }
        let empty = KeyWrites::default();
        let acked: HashMap<u64, KeyWrites> = acked
            .into_iter()
            .map(|(k, v)| (k, KeyWrites::build(v)))
            .collect();

        // Per read: its staleness, and for the monotonic check the start of the
        // write it returned and the latest acknowledgement that explains it.
        struct Judged {
            engine: u32,
            key: u64,
            invoke: u64,
            ret: u64,
            strict: bool,
            write_invoke: Option<u64>,
            explained_until: u64,
        }
        let mut judged: Vec<Judged> = Vec::with_capacity(reads.len());
        for r in reads {
            report.reads += 1;
            if r.through_redis {
                report.reads_through_redis += 1;
            }
            let key_writes = acked.get(&r.key).unwrap_or(&empty);
            let strict = r.through_redis || rules.strict;
            let layer = if r.through_redis { "Redis" } else { "local" };
            let (staleness, write_invoke, explained_until) = match r.claim {
                Claim::Token(t) => {
                    let Some(w) = tokens.get(&t) else {
                        report.violation(format!(
                            "engine {} read token {t} for key {}, which no write wrote",
                            r.engine, r.key
                        ));
                        continue;
                    };
                    if w.key != r.key {
                        report.violation(format!(
                            "engine {} read key {}'s token {t} for key {}",
                            r.engine, w.key, r.key
                        ));
                        continue;
                    }
                    if w.outcome == Outcome::Forbidden {
                        report.violation(format!(
                            "engine {} read token {t} of key {} from a write that was {} \
                             (read at {}..{})",
                            r.engine, r.key, w.kind, r.invoke, r.ret
                        ));
                        continue;
                    }
                    if w.invoke > r.ret {
                        report.violation(format!(
                            "engine {} read token {t} of key {} before its write began",
                            r.engine, r.key
                        ));
                        continue;
                    }
                    (key_writes.staleness(w.ack, r.invoke), Some(w.invoke), w.ack)
                }
                claim => {
                    match claim {
                        Claim::Absent => report.absent_reads += 1,
                        _ => report.membership_reads += 1,
                    }
                    let candidates: Vec<&&WriteOp> = effective
                        .get(&r.key)
                        .map(|ws| {
                            ws.iter()
                                .filter(|w| w.invoke < r.ret && claim.explained_by(w))
                                .collect()
                        })
                        .unwrap_or_default();
                    if candidates.is_empty() {
                        report.violation(format!(
                            "engine {} read key {} as {claim:?}, but no write that began \
                             before {} explains it",
                            r.engine, r.key, r.ret
                        ));
                        continue;
                    }
                    let staleness = candidates
                        .iter()
                        .map(|w| key_writes.staleness(w.ack, r.invoke))
                        .min()
                        .unwrap_or(0);
                    let until = candidates.iter().map(|w| w.ack).max().unwrap_or(0);
                    (staleness, None, until)
                }
            };
            if staleness > 0 {
                if strict {
                    report.violation(format!(
                        "stale {layer} read: engine {} read key {} as {:?} {:.1} ms after a \
                         newer write was acknowledged (read at {}..{})",
                        r.engine,
                        r.key,
                        r.claim,
                        staleness as f64 / 1000.0,
                        r.invoke,
                        r.ret
                    ));
                } else {
                    report.stale_local_reads += 1;
                    report.max_local_staleness_us = report.max_local_staleness_us.max(staleness);
                    if staleness > rules.window_us {
                        report.violation(format!(
                            "local read stale beyond the window: engine {} read key {} as \
                             {:?} {:.1} ms after a newer write was acknowledged (window {:.1} \
                             ms)",
                            r.engine,
                            r.key,
                            r.claim,
                            staleness as f64 / 1000.0,
                            rules.window_us as f64 / 1000.0
                        ));
                    }
                }
            }
            judged.push(Judged {
                engine: r.engine,
                key: r.key,
                invoke: r.invoke,
                ret: r.ret,
                strict,
                write_invoke,
                explained_until,
            });
        }

        // Monotonic reads per engine and key: sweep reads by start, with the reads
        // that returned before it (by return time) folded into "the newest write
        // start seen".
        let mut groups: HashMap<(u32, u64), Vec<usize>> = HashMap::new();
        for (i, j) in judged.iter().enumerate() {
            groups.entry((j.engine, j.key)).or_default().push(i);
        }
        for ((engine, key), idx) in groups {
            let mut by_invoke = idx.clone();
            by_invoke.sort_unstable_by_key(|i| judged[*i].invoke);
            let mut by_ret = idx;
            by_ret.sort_unstable_by_key(|i| judged[*i].ret);
            let mut done = 0;
            let mut newest_start = 0u64;
            for i in by_invoke {
                let r2 = &judged[i];
                while done < by_ret.len() && judged[by_ret[done]].ret < r2.invoke {
                    if let Some(s) = judged[by_ret[done]].write_invoke {
                        newest_start = newest_start.max(s);
                    }
                    done += 1;
                }
                if r2.explained_until < newest_start {
                    if r2.strict {
                        report.violation(format!(
                            "non-monotonic read: engine {engine} read key {key} at {}..{} \
                             older than an earlier read of the same engine returned",
                            r2.invoke, r2.ret
                        ));
                    } else {
                        report.non_monotonic_local += 1;
                    }
                }
            }
        }
        report
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// How one run is set up.
#[derive(Clone, Debug)]
struct Options {
    label: String,
    window: Duration,
    strict: bool,
    /// Entries of the local cache.
    local_capacity: u64,
    faults: bool,
    /// Keys 1..=keys exist; this process writes `own_keys`.
    keys: u64,
    own_keys: std::ops::RangeInclusive<u64>,
    writers: usize,
    /// Readers per local-layer registry.
    readers: usize,
    /// Readers of the Redis-only registry.
    redis_readers: usize,
    secs: f64,
    second_process: bool,
    broken_fill: bool,
}

impl Options {
    fn new(label: &str) -> Options {
        let secs = std::env::var("BEEORM_COHERENCE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0);
        Options {
            label: label.into(),
            window: Duration::from_millis(300),
            strict: false,
            local_capacity: 10_000,
            faults: false,
            keys: 12,
            own_keys: 1..=12,
            writers: 4,
            readers: 4,
            redis_readers: 2,
            secs,
            second_process: false,
            broken_fill: false,
        }
    }
}

/// A namespace no other test or run uses.
fn namespace(label: &str) -> String {
    format!("coh{}_{}_{label}", std::process::id(), now_us())
}

fn add_pool(r: &mut Registry, kind: Kind, location: &str) {
    match kind {
        Kind::MySql => r.register_mysql_pool("default", location),
        Kind::Postgres => r.register_postgres_pool("default", location),
        Kind::Sqlite => r.register_sqlite_pool("default", location),
    };
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::MySql => "mysql",
        Kind::Postgres => "postgres",
        Kind::Sqlite => "sqlite",
    }
}

fn kind_from(name: &str) -> Kind {
    match name {
        "mysql" => Kind::MySql,
        "postgres" => Kind::Postgres,
        _ => Kind::Sqlite,
    }
}

/// A "process": a registry of [`Row`] with its own local cache and connections.
async fn node(kind: Kind, location: &str, ns: &str, o: &Options) -> ValidatedRegistry {
    let mut r = Registry::new();
    add_pool(&mut r, kind, location);
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .register_local_cache("default", o.local_capacity)
        .set_cache_namespace(ns)
        .set_local_cache_window(o.window)
        .set_local_cache_strict(o.strict)
        .register_entity::<Row>();
    let registry = r.validate().await.unwrap();
    wait_serving(&registry).await;
    registry
}

/// A registry of the Redis-only view (no local layer).
async fn redis_node(kind: Kind, location: &str, ns: &str) -> ValidatedRegistry {
    let mut r = Registry::new();
    add_pool(&mut r, kind, location);
    r.register_redis_pool("default", &common_redis::redis_url(), 0)
        .set_cache_namespace(ns)
        .register_entity::<RedisRow>();
    r.validate().await.unwrap()
}

/// Waits until the local layer serves (its invalidation channel is live).
async fn wait_serving(registry: &ValidatedRegistry) {
    let start = Instant::now();
    while !registry.create_engine().cache_stats().local_serving {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the invalidation channel never became live"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the writers of one process share: each key's row as the database holds it
/// (`None`: deleted), behind a lock so one write of a key runs at a time in this
/// process (an UPDATE of a row deleted meanwhile would be acknowledged without
/// writing anything), and the token counter.
struct Writers {
    rows: HashMap<u64, tokio::sync::Mutex<Option<Tracked<Row>>>>,
    tokens: AtomicU64,
}

impl Writers {
    fn token(&self) -> u64 {
        self.tokens.fetch_add(1, Ordering::Relaxed)
    }
}

/// The bucket of a token (`Row::bucket`).
fn bucket(token: u64) -> u32 {
    (token % 3) as u32
}

fn row(id: u64, val: u64, writer: u32) -> Row {
    Row {
        id,
        val,
        bucket: bucket(val),
        writer,
        note: format!("w{writer}"),
    }
}

/// Gives `row` a new token.
fn set(row: &mut Row, token: u64, writer: u32) {
    row.val = token;
    row.bucket = bucket(token);
    row.writer = writer;
}

/// The row of `id` as the database holds it (read inside a transaction, so no
/// cache is asked).
async fn reload(engine: &Engine, id: u64) -> Option<Tracked<Row>> {
    let mut tx = engine.db("default").unwrap().begin().await.unwrap();
    let row = engine
        .read()
        .using(&mut tx)
        .load_by_id::<Row>(id)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    row
}

/// One writer: random operations on random keys of `keys` until `deadline`.
async fn writer(
    shared: Arc<Writers>,
    nodes: Vec<ValidatedRegistry>,
    keys: Vec<u64>,
    writer_id: u32,
    seed: u64,
    deadline: Instant,
) -> (Vec<WriteOp>, Vec<String>) {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    while Instant::now() < deadline {
        let engine = nodes[rng.below(nodes.len() as u64) as usize].create_engine();
        let key = keys[rng.below(keys.len() as u64) as usize];
        let roll = rng.below(100);
        if (20..30).contains(&roll) {
            // Two rows in one unit of work.
            let other = keys[rng.below(keys.len() as u64) as usize];
            if other != key {
                let (k1, k2) = (key.min(other), key.max(other));
                let mut g1 = shared.rows[&k1].lock().await;
                let mut g2 = shared.rows[&k2].lock().await;
                if let (Some(r1), Some(r2)) = (g1.as_mut(), g2.as_mut()) {
                    let (t1, t2) = (shared.token(), shared.token());
                    set(r1, t1, writer_id);
                    set(r2, t2, writer_id);
                    let invoke = now_us();
                    let res = engine.flusher().track(r1).track(r2).flush().await;
                    let ack = now_us();
                    let outcome = match res {
                        Ok(()) => Outcome::Acked,
                        Err(e) => {
                            errors.push(format!("pair flush: {e}"));
                            *g1 = reload(&engine, k1).await;
                            *g2 = reload(&engine, k2).await;
                            Outcome::Unknown
                        }
                    };
                    for (k, t) in [(k1, t1), (k2, t2)] {
                        out.push(WriteOp {
                            key: k,
                            value: Some(t),
                            token: t,
                            invoke,
                            ack,
                            outcome,
                            kind: "pair".into(),
                        });
                    }
                }
                continue;
            }
        }
        let mut guard = shared.rows[&key].lock().await;
        let token = shared.token();
        let Some(current) = guard.as_mut() else {
            // Deleted (a re-insert that failed): insert it again.
            let mut fresh = Tracked::new(row(key, token, writer_id));
            let invoke = now_us();
            let res = engine.flush(&mut fresh).await;
            let ack = now_us();
            let outcome = match res {
                Ok(()) => {
                    *guard = Some(fresh);
                    Outcome::Acked
                }
                Err(e) => {
                    errors.push(format!("insert: {e}"));
                    *guard = reload(&engine, key).await;
                    Outcome::Unknown
                }
            };
            out.push(WriteOp {
                key,
                value: Some(token),
                token,
                invoke,
                ack,
                outcome,
                kind: "insert".into(),
            });
            continue;
        };
        let before = current.clone();
        match roll {
            // Rolled back: must never be seen.
            0..10 => {
                set(current, token, writer_id);
                let invoke = now_us();
                let mut tx = engine.db("default").unwrap().begin().await.unwrap();
                engine
                    .flusher()
                    .track(current)
                    .flush_in(&mut tx)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                let ack = now_us();
                *guard = Some(before);
                out.push(WriteOp {
                    key,
                    value: Some(token),
                    token,
                    invoke,
                    ack,
                    outcome: Outcome::Forbidden,
                    kind: "rolled back".into(),
                });
            }
            // Delete, then insert again.
            10..15 => {
                let invoke = now_us();
                let res = engine.force_delete(current).await;
                let ack = now_us();
                let outcome = match res {
                    Ok(()) => {
                        *guard = None;
                        Outcome::Acked
                    }
                    Err(e) => {
                        errors.push(format!("delete: {e}"));
                        *guard = reload(&engine, key).await;
                        Outcome::Unknown
                    }
                };
                out.push(WriteOp {
                    key,
                    value: None,
                    token,
                    invoke,
                    ack,
                    outcome,
                    kind: "delete".into(),
                });
                if guard.is_none() {
                    let token = shared.token();
                    let engine = nodes[rng.below(nodes.len() as u64) as usize].create_engine();
                    let mut fresh = Tracked::new(row(key, token, writer_id));
                    let invoke = now_us();
                    let res = engine.flush(&mut fresh).await;
                    let ack = now_us();
                    let outcome = match res {
                        Ok(()) => {
                            *guard = Some(fresh);
                            Outcome::Acked
                        }
                        Err(e) => {
                            errors.push(format!("re-insert: {e}"));
                            *guard = reload(&engine, key).await;
                            Outcome::Unknown
                        }
                    };
                    out.push(WriteOp {
                        key,
                        value: Some(token),
                        token,
                        invoke,
                        ack,
                        outcome,
                        kind: "re-insert".into(),
                    });
                }
            }
            // The change and a duplicate primary key in one flush: it fails whole.
            15..20 => {
                set(current, token, writer_id);
                let mut duplicate = Tracked::new(row(key, token, writer_id));
                let invoke = now_us();
                let res = engine
                    .flusher()
                    .track(current)
                    .track(&mut duplicate)
                    .flush()
                    .await;
                let ack = now_us();
                assert!(
                    res.is_err(),
                    "a flush inserting a duplicate primary key succeeded"
                );
                *guard = Some(before);
                out.push(WriteOp {
                    key,
                    value: Some(token),
                    token,
                    invoke,
                    ack,
                    outcome: Outcome::Forbidden,
                    kind: "failed (duplicate key)".into(),
                });
            }
            // A flush_in + commit.
            30..65 => {
                set(current, token, writer_id);
                let invoke = now_us();
                let mut tx = engine.db("default").unwrap().begin().await.unwrap();
                let res = match engine.flusher().track(current).flush_in(&mut tx).await {
                    Ok(()) => tx.commit().await,
                    Err(e) => Err(e),
                };
                let ack = now_us();
                let outcome = match res {
                    Ok(()) => Outcome::Acked,
                    Err(e) => {
                        errors.push(format!("commit: {e}"));
                        *guard = reload(&engine, key).await;
                        Outcome::Unknown
                    }
                };
                out.push(WriteOp {
                    key,
                    value: Some(token),
                    token,
                    invoke,
                    ack,
                    outcome,
                    kind: "commit".into(),
                });
            }
            // A plain flush (the pair roll lands here when both keys were equal).
            _ => {
                set(current, token, writer_id);
                let invoke = now_us();
                let res = engine.flush(current).await;
                let ack = now_us();
                let outcome = match res {
                    Ok(()) => Outcome::Acked,
                    Err(e) => {
                        errors.push(format!("flush: {e}"));
                        *guard = reload(&engine, key).await;
                        Outcome::Unknown
                    }
                };
                out.push(WriteOp {
                    key,
                    value: Some(token),
                    token,
                    invoke,
                    ack,
                    outcome,
                    kind: "flush".into(),
                });
            }
        }
        drop(guard);
        tokio::task::yield_now().await;
    }
    (out, errors)
}

/// One reader until `deadline`: `load_by_id` and `load_by_ids` of random keys, and
/// the cached queries `all` and `by_bucket`.
async fn reader<E: Token>(
    registry: ValidatedRegistry,
    engine_no: u32,
    through_redis: bool,
    keys: u64,
    seed: u64,
    deadline: Instant,
) -> (Vec<ReadOp>, Vec<String>) {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        // A new engine per read: an engine is one request.
        let engine = registry.create_engine();
        let mut claims: Vec<(u64, Claim)> = Vec::new();
        let roll = rng.below(10);
        let invoke = now_us();
        let res = match roll {
            0..5 => {
                let key = 1 + rng.below(keys);
                engine.load_by_id::<E>(key).await.map(|row| {
                    let claim = row.map_or(Claim::Absent, |r| Claim::Token(r.token()));
                    claims.push((key, claim));
                })
            }
            5..8 => {
                let count = 2 + rng.below(4);
                let mut ids: Vec<u64> = (0..count).map(|_| 1 + rng.below(keys)).collect();
                ids.sort_unstable();
                ids.dedup();
                engine.load_by_ids::<E>(&ids).await.map(|(rows, missing)| {
                    assert_eq!(rows.len() + missing.len(), ids.len(), "every ID answered");
                    claims.extend(rows.iter().map(|r| (r.id(), Claim::Token(r.token()))));
                    claims.extend(missing.iter().map(|k| (*k, Claim::Absent)));
                })
            }
            8 => engine
                .cached_search::<E>("all", Pager::new(1, 1000), &[])
                .await
                .map(|(rows, _)| {
                    claims.extend(rows.iter().map(|r| (r.id(), Claim::Token(r.token()))));
                    for key in 1..=keys {
                        if !rows.iter().any(|r| r.id() == key) {
                            claims.push((key, Claim::Absent));
                        }
                    }
                }),
            _ => {
                let b = rng.below(checker::BUCKETS);
                engine
                    .cached_search::<E>("by_bucket", Pager::new(1, 1000), &[Value::from(b)])
                    .await
                    .map(|(rows, _)| {
                        for r in &rows {
                            claims.push((r.id(), Claim::Token(r.token())));
                            claims.push((r.id(), Claim::InBucket(b)));
                        }
                        for key in 1..=keys {
                            if !rows.iter().any(|r| r.id() == key) {
                                claims.push((key, Claim::NotInBucket(b)));
                            }
                        }
                    })
            }
        };
        let ret = now_us();
        match res {
            Ok(()) => out.extend(claims.into_iter().map(|(key, claim)| ReadOp {
                engine: engine_no,
                through_redis,
                key,
                claim,
                invoke,
                ret,
            })),
            Err(e) => errors.push(format!("read {roll}: {e}")),
        }
        n += 1;
        if n.is_multiple_of(4) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    (out, errors)
}

/// Deletes every key of the namespace (what a FLUSHALL does to it).
async fn flush_namespace(redis: &RedisClient, ns: &str) -> usize {
    let keys = redis.scan_match(&format!("{ns}:*")).await.unwrap();
    for k in &keys {
        redis.del(k.as_str()).await.unwrap();
    }
    keys.len()
}

/// Kills every subscriber connection of the server (the invalidation channels).
async fn kill_subscribers(redis: &RedisClient) -> i64 {
    redis
        .query::<i64>(driver::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"))
        .await
        .unwrap()
}

/// The faults of a fault run, until `deadline`.
async fn faults(redis: RedisClient, ns: String, start: Instant, deadline: Instant) -> String {
    let total = deadline - start;
    let (mut flushes, mut flushed, mut kills) = (0, 0, 0);
    let mut next_kill = [total / 3, total * 2 / 3].into_iter().peekable();
    while Instant::now() + Duration::from_millis(250) < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        flushed += flush_namespace(&redis, &ns).await;
        flushes += 1;
        if next_kill.peek().is_some_and(|t| start.elapsed() >= *t) {
            next_kill.next();
            kill_subscribers(&redis).await;
            kills += 1;
        }
    }
    format!("{flushes} namespace deletes ({flushed} keys), {kills} subscriber kills")
}

/// The history of one process: its writes and reads, and unexpected errors.
#[derive(Default)]
struct History {
    writes: Vec<WriteOp>,
    reads: Vec<ReadOp>,
    errors: Vec<String>,
}

/// Runs the traffic of one process: `o.writers` writers on `own_keys` over `nodes`,
/// `o.readers` readers per node, `o.redis_readers` on `redis`. Engine numbers start
/// at `first_engine` (the Redis-only registry takes the last one).
#[allow(clippy::too_many_arguments)]
async fn traffic(
    o: &Options,
    nodes: &[ValidatedRegistry],
    redis: Option<&ValidatedRegistry>,
    shared: Arc<Writers>,
    first_engine: u32,
    seed: u64,
    deadline: Instant,
) -> History {
    let own: Vec<u64> = o.own_keys.clone().collect();
    let mut writers = Vec::new();
    for w in 0..o.writers {
        writers.push(tokio::spawn(writer(
            shared.clone(),
            nodes.to_vec(),
            own.clone(),
            first_engine * 100 + w as u32,
            seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9),
            deadline,
        )));
    }
    let mut readers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for i in 0..o.readers {
            readers.push(tokio::spawn(reader::<Row>(
                node.clone(),
                first_engine + n as u32,
                false,
                o.keys,
                seed ^ ((n * 100 + i) as u64 + 7).wrapping_mul(0x85EB_CA6B),
                deadline,
            )));
        }
    }
    if let Some(r) = redis {
        for i in 0..o.redis_readers {
            readers.push(tokio::spawn(reader::<RedisRow>(
                r.clone(),
                first_engine + nodes.len() as u32,
                true,
                o.keys,
                seed ^ (i as u64 + 991).wrapping_mul(0xC2B2_AE35),
                deadline,
            )));
        }
    }
    let mut h = History::default();
    for w in writers {
        let (ops, errors) = w.await.unwrap();
        h.writes.extend(ops);
        h.errors.extend(errors);
    }
    for r in readers {
        let (ops, errors) = r.await.unwrap();
        h.reads.extend(ops);
        h.errors.extend(errors);
    }
    h
}

/// What a run found.
struct Outcomes {
    report: Report,
    /// Violations found at quiescence.
    quiescence: Vec<String>,
    errors: Vec<String>,
    stats: Vec<CacheStats>,
}

impl Outcomes {
    fn violations(&self) -> Vec<String> {
        self.report
            .violations
            .iter()
            .chain(&self.quiescence)
            .cloned()
            .collect()
    }

    /// The run is clean and exercised what it should.
    fn assert_clean(&self, o: &Options) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "coherence violations ({} + {} at quiescence):\n{}",
            self.report.violation_count,
            self.quiescence.len(),
            v.join("\n")
        );
        assert!(
            self.errors.is_empty(),
            "unexpected errors: {:#?}",
            self.errors
        );
        let r = &self.report;
        assert!(r.reads > 200, "too few reads to check anything: {r:?}");
        assert!(r.reads_through_redis > 20, "too few Redis reads: {r:?}");
        assert!(r.writes_acked > 20, "too few writes: {r:?}");
        assert!(r.writes_forbidden > 0, "no rollback or failure: {r:?}");
        assert!(r.deletes > 0, "no delete: {r:?}");
        assert!(r.absent_reads > 0, "no read saw a deleted row: {r:?}");
        let sum = |f: fn(&EntityCacheStats) -> u64| -> u64 {
            self.stats
                .iter()
                .flat_map(|s| s.entities.iter())
                .map(f)
                .sum()
        };
        if !o.strict {
            assert!(
                sum(|s| s.local.hits) > 0,
                "the local layer never served: {:?}",
                self.stats
            );
        }
        assert!(
            sum(|s| s.redis.hits) > 0,
            "Redis never served: {:?}",
            self.stats
        );
    }
}

/// One run: setup, traffic (plus faults and the second process), quiescence, check.
async fn run(kind: Kind, location: &str, o: Options) -> Outcomes {
    let ns = namespace(&o.label);
    let started = Instant::now();
    let a = node(kind, location, &ns, &o).await;
    common::sync(&a.create_engine()).await;
    let b = node(kind, location, &ns, &o).await;
    let r = redis_node(kind, location, &ns).await;
    let redis = a.create_engine().redis("default").unwrap();
    if o.broken_fill {
        beeorm::__private::pause::set_broken_fill(&ns, true);
        beeorm::__private::pause::install(
            &ns,
            beeorm::__private::pause::Point::BeforeFill,
            Arc::new(|| Box::pin(tokio::time::sleep(Duration::from_millis(3)))),
        );
    }

    // The rows, each inserted with its first token.
    let shared = Arc::new(Writers {
        rows: (1..=o.keys)
            .map(|k| (k, tokio::sync::Mutex::new(None)))
            .collect(),
        tokens: AtomicU64::new(1),
    });
    let mut setup = Vec::new();
    {
        let mut rows: Vec<Tracked<Row>> = (1..=o.keys)
            .map(|k| Tracked::new(row(k, shared.token(), 0)))
            .collect();
        let invoke = now_us();
        let e = a.create_engine();
        let mut f = e.flusher();
        for r in rows.iter_mut() {
            f.track(r);
        }
        f.flush().await.unwrap();
        let ack = now_us();
        for r in rows {
            setup.push(WriteOp {
                key: r.id,
                value: Some(r.val),
                token: r.val,
                invoke,
                ack,
                outcome: Outcome::Acked,
                kind: "setup".into(),
            });
            let id = r.id;
            *shared.rows[&id].lock().await = Some(r);
        }
    }

    let seed = now_us();
    eprintln!("coherence[{}]: namespace {ns}, seed {seed}", o.label);
    let traffic_start = Instant::now();
    let deadline = traffic_start + Duration::from_secs_f64(o.secs);
    let worker = if o.second_process {
        Some(spawn_worker(kind, location, &ns, &o))
    } else {
        None
    };
    let fault_task = o
        .faults
        .then(|| tokio::spawn(faults(redis.clone(), ns.clone(), traffic_start, deadline)));
    let nodes = vec![a.clone(), b.clone()];
    let mut history = traffic(&o, &nodes, Some(&r), shared, 0, seed, deadline).await;
    history.writes.extend(setup);
    let faults_done = match fault_task {
        Some(t) => t.await.unwrap(),
        None => "none".into(),
    };
    if let Some(worker) = worker {
        let other = worker.await.unwrap();
        history.writes.extend(other.writes);
        history.reads.extend(other.reads);
        history.errors.extend(other.errors);
    }
    let traffic_time = traffic_start.elapsed();

    if o.broken_fill {
        beeorm::__private::pause::clear(&ns);
    }
    // Quiescence: the window passes, every channel is back.
    tokio::time::sleep(o.window + Duration::from_millis(200)).await;
    wait_serving(&a).await;
    wait_serving(&b).await;
    let quiescence = quiescence(kind, location, &ns, &o, &[&a, &b], &redis).await;
    if o.broken_fill {
        beeorm::__private::pause::set_broken_fill(&ns, false);
    }

    let rules = Rules {
        window_us: o.window.as_micros() as u64,
        strict: o.strict,
    };
    let report = checker::check(&history.writes, &history.reads, rules);
    let stats = vec![
        a.create_engine().cache_stats(),
        b.create_engine().cache_stats(),
        r.create_engine().cache_stats(),
    ];
    let hits = |i: usize| {
        stats[i]
            .entities
            .first()
            .map(|e| (e.local.hits, e.redis.hits, e.database_loads))
    };
    eprintln!(
        "coherence[{}]: {}; faults: {faults_done}; (local hits, Redis hits, DB loads) A {:?} B {:?} \
         Redis-only {:?}; traffic {:.1} s, whole run {:.1} s",
        o.label,
        report.summary(),
        hits(0),
        hits(1),
        hits(2),
        traffic_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    flush_namespace(&redis, &ns).await;
    Outcomes {
        report,
        quiescence,
        errors: history.errors,
        stats,
    }
}

/// A `u64` column as plain SQL returns it (PostgreSQL stores it as `numeric`).
fn integer(v: &Value) -> u64 {
    match v {
        Value::Decimal(d) => d.to_string().parse().unwrap(),
        other => other
            .as_u64()
            .unwrap_or_else(|| panic!("not an integer: {other:?}")),
    }
}

/// Whether `engine`'s cached lists `all` and `by_bucket` hold what `truth` (ID →
/// token) says.
async fn compare_lists<E: Entity>(
    engine: &Engine,
    layer: &str,
    truth: &HashMap<u64, u64>,
    out: &mut Vec<String>,
) {
    let lists = [None, Some(0), Some(1), Some(2)];
    for b in lists {
        let (query, args) = match b {
            None => ("all", vec![]),
            Some(b) => ("by_bucket", vec![Value::from(b)]),
        };
        let (mut got, _) = engine
            .cached_search_ids::<E>(query, Pager::new(1, 1000), &args)
            .await
            .unwrap();
        got.sort_unstable();
        let mut want: Vec<u64> = truth
            .iter()
            .filter(|(_, val)| b.is_none_or(|b| **val % checker::BUCKETS == b))
            .map(|(id, _)| *id)
            .collect();
        want.sort_unstable();
        if got != want {
            out.push(format!(
                "quiescence: {layer} lists {query} {b:?} as {got:?}, the database {want:?}"
            ));
        }
    }
}

/// The checks once traffic stopped: no lease or lock left, and Redis (through a new
/// registry with an empty local layer) and every engine read what the database
/// holds.
async fn quiescence(
    kind: Kind,
    location: &str,
    ns: &str,
    o: &Options,
    nodes: &[&ValidatedRegistry],
    redis: &RedisClient,
) -> Vec<String> {
    let mut out = Vec::new();
    for key in redis.scan_match(&format!("{ns}:e:*")).await.unwrap() {
        let raw: Option<Vec<u8>> = redis.get(key.as_str()).await.unwrap();
        if let Some(b'P' | b'L') = raw.as_ref().and_then(|r| r.first()) {
            out.push(format!(
                "quiescence: {key} still holds {:?}",
                String::from_utf8_lossy(raw.as_deref().unwrap_or_default())
            ));
        }
    }
    let engine = nodes[0].create_engine();
    let truth: HashMap<u64, u64> = engine
        .db("default")
        .unwrap()
        .query("SELECT id, val FROM coherence_rows", vec![])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (integer(&r[0]), integer(&r[1])))
        .collect();
    let ids: Vec<u64> = (1..=o.keys).collect();
    let fresh = redis_node(kind, location, ns).await;
    let (rows, _) = fresh
        .create_engine()
        .load_by_ids::<RedisRow>(&ids)
        .await
        .unwrap();
    let seen: HashMap<u64, u64> = rows.iter().map(|r| (r.id, r.val)).collect();
    if seen != truth {
        out.push(format!(
            "quiescence: Redis holds {seen:?}, the database {truth:?}"
        ));
    }
    // The cached lists, through Redis and through each engine.
    compare_lists::<RedisRow>(&fresh.create_engine(), "Redis", &truth, &mut out).await;
    for (n, node) in nodes.iter().enumerate() {
        compare_lists::<Row>(
            &node.create_engine(),
            &format!("engine {n}"),
            &truth,
            &mut out,
        )
        .await;
    }
    for (n, node) in nodes.iter().enumerate() {
        for _ in 0..2 {
            let (rows, _) = node.create_engine().load_by_ids::<Row>(&ids).await.unwrap();
            let seen: HashMap<u64, u64> = rows.iter().map(|r| (r.id, r.val)).collect();
            if seen != truth {
                out.push(format!(
                    "quiescence: engine {n} reads {seen:?}, the database {truth:?}"
                ));
            }
            for &id in &ids {
                let one = node
                    .create_engine()
                    .load_by_id::<Row>(id)
                    .await
                    .unwrap()
                    .map(|r| r.val);
                if one != truth.get(&id).copied() {
                    out.push(format!(
                        "quiescence: engine {n} reads key {id} as {one:?}, the database {:?}",
                        truth.get(&id)
                    ));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The second OS process: this test binary run again with `coherence_worker`.

const WORKER_ENV: &str = "BEEORM_COHERENCE_WORKER";
const LINE_PREFIX: &str = "coherence-history ";
/// Engine numbers of the second process.
const WORKER_ENGINE: u32 = 10;
/// Keys the second process writes (the first writes the others).
const WORKER_KEYS: std::ops::RangeInclusive<u64> = 9..=12;

/// Starts the second process; its history comes back when the future completes.
fn spawn_worker(
    kind: Kind,
    location: &str,
    ns: &str,
    o: &Options,
) -> tokio::task::JoinHandle<History> {
    let config = serde_json::json!({
        "kind": kind_name(kind),
        "location": location,
        "ns": ns,
        "secs": o.secs,
        "window_ms": o.window.as_millis() as u64,
        "strict": o.strict,
        "keys": o.keys,
    });
    let exe = std::env::current_exe().unwrap();
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args([
        "coherence_worker",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(WORKER_ENV, config.to_string())
    .kill_on_drop(true);
    tokio::spawn(async move {
        let output = cmd.output().await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "the second process failed: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let mut h = History::default();
        let mut ended = false;
        for line in stdout.lines() {
            // libtest prints `test coherence_worker ... ` before the test's own output,
            // without a line break: the first record may follow it on its line.
            let Some(json) = line
                .find(LINE_PREFIX)
                .map(|i| &line[i + LINE_PREFIX.len()..])
            else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let u = |f: &str| v[f].as_u64().unwrap();
            match v["t"].as_str().unwrap() {
                "w" => h.writes.push(WriteOp {
                    key: u("key"),
                    value: v["value"].as_u64(),
                    token: u("token"),
                    invoke: u("invoke"),
                    ack: u("ack"),
                    outcome: Outcome::parse(v["outcome"].as_str().unwrap()).unwrap(),
                    kind: v["kind"].as_str().unwrap().to_string(),
                }),
                "r" => h.reads.push(ReadOp {
                    engine: u("engine") as u32,
                    through_redis: v["redis"].as_bool().unwrap(),
                    key: u("key"),
                    claim: match (v["claim"].as_str().unwrap(), v["arg"].as_u64()) {
                        ("token", Some(t)) => Claim::Token(t),
                        ("absent", _) => Claim::Absent,
                        ("in", Some(b)) => Claim::InBucket(b),
                        ("out", Some(b)) => Claim::NotInBucket(b),
                        other => panic!("unknown claim {other:?}"),
                    },
                    invoke: u("invoke"),
                    ret: u("ret"),
                }),
                "e" => h
                    .errors
                    .push(format!("second process: {}", v["error"].as_str().unwrap())),
                "end" => ended = true,
                other => panic!("unknown history line {other}"),
            }
        }
        assert!(
            ended,
            "the second process did not finish its history:\n{stdout}"
        );
        assert!(
            !h.writes.is_empty() && !h.reads.is_empty(),
            "the second process recorded nothing"
        );
        h
    })
}

/// The second process of `a_second_os_process_shares_the_caches` (spawned by it with
/// its configuration in `BEEORM_COHERENCE_WORKER`): writes keys 9–12 and reads every
/// key through its own registry, then prints its history as JSON lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the second OS process of a coherence run; that run spawns it"]
async fn coherence_worker() {
    let Ok(config) = std::env::var(WORKER_ENV) else {
        eprintln!("coherence_worker runs only when a coherence run spawns it");
        return;
    };
    let c: serde_json::Value = serde_json::from_str(&config).unwrap();
    let kind = kind_from(c["kind"].as_str().unwrap());
    let location = c["location"].as_str().unwrap();
    let ns = c["ns"].as_str().unwrap();
    let mut o = Options::new("worker");
    o.secs = c["secs"].as_f64().unwrap();
    o.window = Duration::from_millis(c["window_ms"].as_u64().unwrap());
    o.strict = c["strict"].as_bool().unwrap();
    o.keys = c["keys"].as_u64().unwrap();
    o.own_keys = WORKER_KEYS;
    o.writers = 2;
    o.readers = 3;
    let started = Instant::now();
    let node = node(kind, location, ns, &o).await;
    let engine = node.create_engine();
    let shared = Arc::new(Writers {
        rows: o
            .own_keys
            .clone()
            .map(|k| (k, tokio::sync::Mutex::new(None)))
            .collect(),
        tokens: AtomicU64::new(1 << 40),
    });
    for k in o.own_keys.clone() {
        *shared.rows[&k].lock().await = reload(&engine, k).await;
    }
    // Start with the first process, whatever this one's start-up cost.
    let deadline = started + Duration::from_secs_f64(o.secs);
    let h = traffic(&o, &[node], None, shared, WORKER_ENGINE, now_us(), deadline).await;
    for w in &h.writes {
        println!(
            "{LINE_PREFIX}{}",
            serde_json::json!({"t": "w", "key": w.key, "value": w.value, "token": w.token,
                "invoke": w.invoke, "ack": w.ack, "outcome": w.outcome.as_str(), "kind": w.kind})
        );
    }
    for r in &h.reads {
        let (claim, arg) = match r.claim {
            Claim::Token(t) => ("token", Some(t)),
            Claim::Absent => ("absent", None),
            Claim::InBucket(b) => ("in", Some(b)),
            Claim::NotInBucket(b) => ("out", Some(b)),
        };
        println!(
            "{LINE_PREFIX}{}",
            serde_json::json!({"t": "r", "engine": r.engine, "redis": r.through_redis,
                "key": r.key, "claim": claim, "arg": arg, "invoke": r.invoke, "ret": r.ret})
        );
    }
    for e in &h.errors {
        println!("{LINE_PREFIX}{}", serde_json::json!({"t": "e", "error": e}));
    }
    println!("{LINE_PREFIX}{}", serde_json::json!({"t": "end"}));
}

// ---------------------------------------------------------------------------
// The runs.

macro_rules! per_dialect {
    ($name:ident, $options:expr) => {
        mod $name {
            use super::*;
            #[cfg(feature = "mysql")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                let db =
                    common::TestDb::new(Kind::MySql, concat!("coh_", stringify!($name), "_my"))
                        .await;
                let o: Options = $options;
                run(db.kind, &db.location, o.clone()).await.assert_clean(&o);
                db.drop().await;
            }
            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db =
                    common::TestDb::new(Kind::Postgres, concat!("coh_", stringify!($name), "_pg"))
                        .await;
                let o: Options = $options;
                run(db.kind, &db.location, o.clone()).await.assert_clean(&o);
                db.drop().await;
            }
            #[cfg(feature = "sqlite")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db =
                    common::TestDb::new(Kind::Sqlite, concat!("coh_", stringify!($name), "_lite"))
                        .await;
                let o: Options = $options;
                run(db.kind, &db.location, o.clone()).await.assert_clean(&o);
                db.drop().await;
            }
        }
    };
}

// The default mode: local reads stale at most one window (reported), none through
// Redis.
per_dialect!(default_mode, Options::new("default"));

// Strict mode: no stale read at all.
per_dialect!(strict_mode, {
    let mut o = Options::new("strict");
    o.strict = true;
    o.window = Duration::from_millis(20);
    o
});

// Faults: namespace deleted every 250 ms, subscribers killed twice, four local
// entries.
per_dialect!(faults, {
    let mut o = Options::new("faults");
    o.faults = true;
    o.local_capacity = 4;
    o
});

// Strict mode under the same faults: still no stale read (a lock deleted between a
// strict writer's lock and COMMIT once let another process serve the old row after
// the acknowledgement; `cache_races.rs` replays it).
per_dialect!(strict_faults, {
    let mut o = Options::new("strict-faults");
    o.strict = true;
    o.window = Duration::from_millis(20);
    o.faults = true;
    o.local_capacity = 4;
    o
});

/// A second OS process (this binary again, `coherence_worker`) writes keys 9–12 and
/// reads every key through its own registry; its history joins this one's.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_os_process_shares_the_caches() {
    let db = common::TestDb::new(Kind::MySql, "coh_second_process").await;
    let mut o = Options::new("process");
    o.second_process = true;
    o.own_keys = 1..=8;
    let out = run(db.kind, &db.location, o.clone()).await;
    out.assert_clean(&o);
    db.drop().await;
}

/// The mutation test: with fills that skip the lease check, the checker fails.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_without_the_lease_check_is_caught() {
    let db = common::TestDb::new(Kind::Sqlite, "coh_broken_fill").await;
    let mut o = Options::new("broken");
    o.broken_fill = true;
    o.keys = 8;
    o.own_keys = 1..=8;
    let out = run(db.kind, &db.location, o).await;
    let redis_stale = out
        .report
        .violations
        .iter()
        .filter(|v| v.starts_with("stale Redis read"))
        .count();
    eprintln!(
        "coherence[broken]: {} violations, {} stale Redis reads among the first 50, {} at \
         quiescence; e.g. {:?}",
        out.report.violation_count,
        redis_stale,
        out.quiescence.len(),
        out.violations().first()
    );
    assert!(
        redis_stale > 0 || !out.quiescence.is_empty(),
        "the checker did not notice fills without the lease check: {}",
        out.report.summary()
    );
}

// ---------------------------------------------------------------------------
// The checker's own tests: synthetic histories.

fn w(key: u64, value: Option<u64>, token: u64, invoke: u64, ack: u64, outcome: Outcome) -> WriteOp {
    WriteOp {
        key,
        value,
        token,
        invoke,
        ack,
        outcome,
        kind: "test".into(),
    }
}

fn r(through_redis: bool, key: u64, value: Option<u64>, invoke: u64, ret: u64) -> ReadOp {
    claim(
        through_redis,
        key,
        value.map_or(Claim::Absent, Claim::Token),
        invoke,
        ret,
    )
}

fn claim(through_redis: bool, key: u64, claim: Claim, invoke: u64, ret: u64) -> ReadOp {
    ReadOp {
        engine: 0,
        through_redis,
        key,
        claim,
        invoke,
        ret,
    }
}

const RULES: Rules = Rules {
    window_us: 100,
    strict: false,
};

#[test]
fn the_checker_accepts_reads_of_the_newest_or_a_concurrent_write() {
    let writes = [
        w(1, Some(1), 1, 0, 10, Outcome::Acked),
        w(1, Some(2), 2, 20, 30, Outcome::Acked),
        w(1, None, 3, 40, 50, Outcome::Acked),
        w(1, Some(4), 4, 60, 70, Outcome::Acked),
    ];
    let reads = [
        r(true, 1, Some(1), 11, 12),
        // Concurrent with write 2: either value.
        r(true, 1, Some(1), 25, 26),
        r(true, 1, Some(2), 25, 26),
        r(true, 1, Some(2), 31, 35),
        r(true, 1, None, 45, 52),
        r(true, 1, Some(4), 65, 80),
    ];
    let report = checker::check(&writes, &reads, RULES);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(
        (report.reads, report.absent_reads, report.deletes),
        (6, 1, 1)
    );
}

#[test]
fn the_checker_fails_a_stale_read_through_redis_and_measures_local_staleness() {
    let writes = [
        w(1, Some(1), 1, 0, 10, Outcome::Acked),
        w(1, Some(2), 2, 20, 30, Outcome::Acked),
    ];
    let report = checker::check(&writes, &[r(true, 1, Some(1), 31, 32)], RULES);
    assert_eq!(report.violation_count, 1, "{report:?}");
    assert!(report.violations[0].starts_with("stale Redis read"));

    let report = checker::check(&writes, &[r(false, 1, Some(1), 80, 81)], RULES);
    assert!(report.violations.is_empty());
    assert_eq!(
        (report.stale_local_reads, report.max_local_staleness_us),
        (1, 50)
    );
    let report = checker::check(&writes, &[r(false, 1, Some(1), 200, 201)], RULES);
    assert_eq!(report.violation_count, 1, "beyond the window: {report:?}");
    let strict = Rules {
        window_us: 100,
        strict: true,
    };
    let report = checker::check(&writes, &[r(false, 1, Some(1), 31, 32)], strict);
    assert_eq!(report.violation_count, 1, "strict: {report:?}");
}

#[test]
fn the_checker_fails_values_that_must_never_be_seen() {
    let writes = [
        w(1, Some(1), 1, 0, 10, Outcome::Acked),
        w(1, Some(2), 2, 20, 30, Outcome::Forbidden),
        w(1, Some(3), 3, 100, 110, Outcome::Acked),
    ];
    let reads = [
        r(false, 1, Some(2), 25, 26),
        r(false, 1, Some(3), 40, 50),
        r(false, 1, Some(9), 40, 50),
        r(false, 2, Some(1), 40, 50),
        r(false, 1, None, 40, 50),
    ];
    let report = checker::check(&writes, &reads, RULES);
    assert_eq!(report.violation_count, 5, "{:#?}", report.violations);
}

#[test]
fn the_checker_fails_an_absent_read_after_a_reinsert_and_non_monotonic_reads() {
    let writes = [
        w(1, Some(1), 1, 0, 10, Outcome::Acked),
        w(1, None, 2, 20, 30, Outcome::Acked),
        w(1, Some(3), 3, 40, 50, Outcome::Acked),
    ];
    let report = checker::check(&writes, &[r(true, 1, None, 60, 61)], RULES);
    assert_eq!(report.violation_count, 1, "{report:?}");
    // Both reads overlap write 3 (not stale), but the second began after the first
    // returned the newer row.
    let reads = [r(true, 1, Some(3), 41, 42), r(true, 1, None, 43, 44)];
    let report = checker::check(&writes, &reads, RULES);
    assert_eq!(report.violation_count, 1, "{report:?}");
    assert!(report.violations[0].starts_with("non-monotonic"));
    let reads = [r(false, 1, Some(3), 41, 42), r(false, 1, None, 43, 44)];
    let report = checker::check(&writes, &reads, RULES);
    assert_eq!((report.violation_count, report.non_monotonic_local), (0, 1));
}

#[test]
fn the_checker_judges_list_membership_against_the_writes() {
    // Tokens 3, 4, 5 are in buckets 0, 1, 2.
    let writes = [
        w(1, Some(3), 3, 0, 10, Outcome::Acked),
        w(1, Some(4), 4, 20, 30, Outcome::Acked),
        w(1, Some(5), 5, 40, 50, Outcome::Forbidden),
        w(1, None, 6, 60, 70, Outcome::Acked),
    ];
    let fine = [
        claim(true, 1, Claim::InBucket(0), 11, 12),
        claim(true, 1, Claim::NotInBucket(1), 11, 12),
        claim(true, 1, Claim::InBucket(1), 31, 32),
        // Concurrent with the delete: either.
        claim(true, 1, Claim::InBucket(1), 65, 66),
        claim(true, 1, Claim::NotInBucket(1), 65, 66),
        claim(true, 1, Claim::NotInBucket(0), 71, 72),
    ];
    let report = checker::check(&writes, &fine, RULES);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.membership_reads, 6);
    let wrong = [
        // Still in bucket 0 after token 4 moved it.
        claim(true, 1, Claim::InBucket(0), 31, 32),
        // Out of bucket 1 while token 4 is the only value.
        claim(true, 1, Claim::NotInBucket(1), 31, 32),
        // Bucket 2 only by the rolled-back write.
        claim(true, 1, Claim::InBucket(2), 41, 60),
        // In a list after the delete.
        claim(true, 1, Claim::InBucket(1), 71, 72),
    ];
    let report = checker::check(&writes, &wrong, RULES);
    assert_eq!(report.violation_count, 4, "{:#?}", report.violations);
}
