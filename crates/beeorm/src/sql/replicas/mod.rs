//! Read replicas (issue 16): a relational pool's reads spread over the replicas of an
//! ordinary MariaDB GTID or PostgreSQL streaming replication set-up, its writes and
//! transactions on the primary, and no engine ever reading older data than it wrote.
//!
//! Why it is built this way:
//! - **Read-your-writes by position, not by time.** After an engine commits on a
//!   pool with replicas it asks the primary where it stands (`@@gtid_binlog_pos`,
//!   `pg_current_wal_lsn()`: one round trip on the write path, none on reads) and
//!   keeps that [`Position`]. A later read of that engine goes to a replica known to
//!   have applied it, or waits on one for it (`MASTER_GTID_WAIT`, or polling
//!   `pg_last_wal_replay_lsn()`) for at most [`ReplicaOptions::max_wait`], then
//!   reads on the primary. Timers and "stick to the primary for N seconds" rules
//!   guess; a position is exact.
//! - **What a replica has applied is remembered.** Each replica keeps the largest
//!   position it is known to have applied (from its health checks and from waits that
//!   succeeded); positions only grow, so a read whose position is already covered
//!   costs no wait at all.
//! - **Health out of band, failures in band.** A task per pool checks every replica
//!   each [`ReplicaOptions::check_interval`] (replication running, lag, reachable) and
//!   takes lagging, stopped or unreachable ones out of rotation, putting them back
//!   when healthy; a read that fails to reach a replica takes it out at once and runs
//!   on the primary instead (reads are idempotent), so callers see no error.
//! - **Caches are filled from the primary.** A read whose rows will be stored in the
//!   entity or query caches runs on the primary: the cache protocol's guarantee
//!   (nothing older than a committed write is ever stored) then holds unchanged,
//!   whatever a replica's lag.
//! - **Nothing when unused.** Without replicas an engine carries no read state and a
//!   read costs one `Option` check.

mod health;
pub(crate) mod position;

/// Runs one read on a replica of `$set` chosen for `$target`, or on `$primary` when
/// none can answer (none in rotation, none caught up within `max_wait`, or the
/// chosen one could not be reached): `$read` is an expression on the pool `$p`,
/// evaluated (and awaited) once or twice.
macro_rules! on_replica {
    ($set:expr, $target:expr, $primary:expr, |$p:ident| $read:expr) => {{
        let set = $set;
        let mut answer = None;
        if let Some(r) = set.choose(&$target).await {
            let $p = r.pool();
            answer = set.answered(r, $read.await);
        }
        match answer {
            Some(answer) => answer,
            None => {
                set.count_primary_read();
                let $p = $primary;
                $read.await
            }
        }
    }};
}
pub(crate) use on_replica;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) use position::Position;

use super::pool::SqlPool;
use super::DialectKind;
use crate::{Error, Result, Value};

/// How an engine's reads use the replicas of a pool (see
/// [`Engine::with_consistency`](crate::Engine::with_consistency)). Pools without
/// replicas always read on their one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Consistency {
    /// The default: reads go to replicas, but never to one that has not applied this
    /// engine's (and its clones') last committed write on the pool; a replica is
    /// waited for up to [`ReplicaOptions::max_wait`], then the primary answers.
    #[default]
    ReadYourWrites,
    /// Reads accept data up to this old: any replica whose last measured lag is at
    /// most this long answers, without waiting (the lag is measured every
    /// [`ReplicaOptions::check_interval`], so data may be older by up to that much
    /// more). Writes of this engine may not be visible yet.
    MaxLag(Duration),
    /// Every read on the primary.
    Primary,
}

/// How a pool uses its replicas ([`Registry::set_replica_options`](crate::Registry::set_replica_options)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaOptions {
    /// How long a read waits for a replica to apply the engine's last write before
    /// reading on the primary (default 200 ms).
    pub max_wait: Duration,
    /// A replica more than this far behind is taken out of rotation (default 5 s).
    pub max_lag: Duration,
    /// How often each replica is checked (default 1 s). A check that does not answer
    /// within this time (at least 500 ms) counts as unreachable.
    pub check_interval: Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            max_wait: Duration::from_millis(200),
            max_lag: Duration::from_secs(5),
            check_interval: Duration::from_secs(1),
        }
    }
}

impl ReplicaOptions {
    /// Sets [`ReplicaOptions::max_wait`].
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Sets [`ReplicaOptions::max_lag`].
    pub fn max_lag(mut self, lag: Duration) -> Self {
        self.max_lag = lag;
        self
    }

    /// Sets [`ReplicaOptions::check_interval`].
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }
}

/// The health of one replica, as its last check (or a failed read) found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplicaHealth {
    /// Not checked yet (out of rotation until its first check).
    Unchecked,
    /// Replicating, within the pool's `max_lag`: in rotation.
    Healthy,
    /// Replicating, but further behind than the pool's `max_lag`.
    Lagging,
    /// Reachable, but not applying the primary's changes (replication stopped or
    /// paused, or not a replica at all).
    Stopped,
    /// Did not answer (refused, timed out, or a read on it failed to connect).
    Unreachable,
}

impl ReplicaHealth {
    /// The name shown in tables (`healthy`, `lagging`, …).
    pub fn name(self) -> &'static str {
        match self {
            ReplicaHealth::Unchecked => "unchecked",
            ReplicaHealth::Healthy => "healthy",
            ReplicaHealth::Lagging => "lagging",
            ReplicaHealth::Stopped => "stopped",
            ReplicaHealth::Unreachable => "unreachable",
        }
    }
}

/// One replica as the engine sees it ([`ValidatedRegistry::replica_status`](crate::ValidatedRegistry::replica_status)).
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ReplicaStatus {
    /// The replica's name: `<pool>/replica-<n>`, counted from 1 in registration order.
    pub name: String,
    /// `host:port` (never the credentials).
    pub address: String,
    /// Its share of the reads among the healthy replicas.
    pub weight: u32,
    /// What its last check found.
    pub health: ReplicaHealth,
    /// Whether reads go to it now.
    pub in_rotation: bool,
    /// How far behind the primary it was at its last check, in milliseconds.
    pub lag_ms: Option<u64>,
    /// Why it is not healthy (the server's or driver's words), if it is not.
    pub detail: Option<String>,
    /// Reads it answered.
    pub reads: u64,
    /// Reads that waited on it for a write to arrive.
    pub waits: u64,
    /// Waits that ran out of time (the primary answered instead).
    pub wait_timeouts: u64,
    /// Reads that failed to reach it (the primary answered instead).
    pub failures: u64,
}

/// A pool's replicas ([`ValidatedRegistry::replica_status`](crate::ValidatedRegistry::replica_status)).
#[derive(Debug, Clone, serde::Serialize)]
#[non_exhaustive]
pub struct ReplicaSetStatus {
    /// The relational pool (its primary).
    pub pool: String,
    /// Reads of engines that ran on the primary although the pool has replicas: cache
    /// fills, `Consistency::Primary`, no replica in rotation or caught up in time.
    pub primary_reads: u64,
    /// Its replicas, in registration order.
    pub replicas: Vec<ReplicaStatus>,
}

/// A replica as registered, before its pool is opened.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaConfig {
    pub dsn: String,
    pub weight: u32,
}

/// What one read asks of the replicas.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Any replica in rotation.
    Any,
    /// A replica in rotation at most this far behind.
    MaxLag(Duration),
    /// A replica that has applied this position.
    AtLeast(Position),
}

/// The mutable side of a replica, updated by its checks and by reads.
#[derive(Debug)]
struct ReplicaState {
    health: ReplicaHealth,
    lag: Option<Duration>,
    /// The largest position it is known to have applied.
    applied: Option<Position>,
    detail: Option<String>,
}

/// One replica: its own pool (same dialect and timeouts as the primary's).
pub(crate) struct Replica {
    name: String,
    address: String,
    weight: u32,
    pool: SqlPool,
    state: Mutex<ReplicaState>,
    in_rotation: AtomicBool,
    /// The last measured lag in milliseconds (`u64::MAX`: unknown), for lock-free
    /// `MaxLag` reads.
    lag_ms: AtomicU64,
    reads: AtomicU64,
    waits: AtomicU64,
    wait_timeouts: AtomicU64,
    failures: AtomicU64,
}

impl Replica {
    /// The replica's own pool.
    pub(crate) fn pool(&self) -> &SqlPool {
        &self.pool
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ReplicaState> {
        // A panic while holding this lock cannot leave the state inconsistent (plain
        // field stores): keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what a check (or a failed read) found.
    fn set_health(&self, health: ReplicaHealth, lag: Option<Duration>, detail: Option<String>) {
        let mut s = self.state();
        if s.health != health {
            match health {
                ReplicaHealth::Healthy => {
                    tracing::info!(replica = %self.name, "replica in rotation")
                }
                _ => tracing::warn!(
                    replica = %self.name,
                    health = health.name(),
                    detail = detail.as_deref().unwrap_or(""),
                    "replica out of rotation"
                ),
            }
        }
        s.health = health;
        s.lag = lag;
        s.detail = detail;
        self.lag_ms.store(
            lag.map_or(u64::MAX, |l| l.as_millis().min(u64::MAX as u128 - 1) as u64),
            Ordering::Relaxed,
        );
        self.in_rotation
            .store(health == ReplicaHealth::Healthy, Ordering::Release);
    }

    /// Notes that the replica has applied `position` (positions only grow).
    fn applied(&self, position: &Position) {
        let mut s = self.state();
        match &mut s.applied {
            Some(p) => p.merge(position),
            None => s.applied = Some(position.clone()),
        }
    }

    fn covers(&self, target: &Position) -> bool {
        self.state()
            .applied
            .as_ref()
            .is_some_and(|p| p.covers(target))
    }

    fn status(&self) -> ReplicaStatus {
        let s = self.state();
        ReplicaStatus {
            name: self.name.clone(),
            address: self.address.clone(),
            weight: self.weight,
            health: s.health,
            in_rotation: self.in_rotation.load(Ordering::Acquire),
            lag_ms: s.lag.map(|l| l.as_millis() as u64),
            detail: s.detail.clone(),
            reads: self.reads.load(Ordering::Relaxed),
            waits: self.waits.load(Ordering::Relaxed),
            wait_timeouts: self.wait_timeouts.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// The replicas of one relational pool, with the options they share.
pub(crate) struct ReplicaSet {
    pool: String,
    kind: DialectKind,
    options: ReplicaOptions,
    replicas: Vec<Replica>,
    /// Turns of the weighted round robin.
    next: AtomicU64,
    primary_reads: AtomicU64,
    /// Set by [`ReplicaSet::close`]: the health checks stop.
    closed: AtomicBool,
}

impl std::fmt::Debug for ReplicaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSet")
            .field("pool", &self.pool)
            .field("replicas", &self.replicas.len())
            .finish()
    }
}

/// Whether a read's error means the replica could not answer (so the primary
/// should), rather than a fault of the statement that the primary would repeat.
fn unavailable(e: &Error) -> bool {
    matches!(e, Error::Connection { .. } | Error::Timeout { .. })
}

/// `host:port` of a DSN or URL, without its credentials, database or options.
pub(crate) fn address_of(dsn: &str) -> String {
    let rest = dsn.split_once("://").map_or(dsn, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = rest
        .strip_prefix("tcp(")
        .map_or(rest, |r| r.split(')').next().unwrap_or(r));
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

impl ReplicaSet {
    /// The replicas of pool `pool` (`pools`: their opened pools, with their weights).
    pub(crate) fn new(
        pool: &str,
        kind: DialectKind,
        options: ReplicaOptions,
        pools: Vec<(SqlPool, String, u32)>,
    ) -> Self {
        let replicas = pools
            .into_iter()
            .enumerate()
            .map(|(i, (p, dsn, weight))| Replica {
                name: format!("{pool}/replica-{}", i + 1),
                address: address_of(&dsn),
                weight,
                pool: p,
                state: Mutex::new(ReplicaState {
                    health: ReplicaHealth::Unchecked,
                    lag: None,
                    applied: None,
                    detail: None,
                }),
                in_rotation: AtomicBool::new(false),
                lag_ms: AtomicU64::new(u64::MAX),
                reads: AtomicU64::new(0),
                waits: AtomicU64::new(0),
                wait_timeouts: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            })
            .collect();
        ReplicaSet {
            pool: pool.to_string(),
            kind,
            options,
            replicas,
            next: AtomicU64::new(0),
            primary_reads: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Starts the health checks: a task that ends when the set is dropped.
    pub(crate) fn start(self: &Arc<Self>, primary: SqlPool) {
        health::spawn(Arc::downgrade(self), primary);
    }

    /// Stops the health checks and closes the replicas' connections
    /// (`ValidatedRegistry::close`).
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for r in &self.replicas {
            #[cfg(feature = "mysql")]
            #[allow(irrefutable_let_patterns)]
            if let SqlPool::MySql(p) = &r.pool {
                p.disconnect().await;
            }
            let _ = r;
        }
    }

    /// Whether [`ReplicaSet::close`] ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Checks every replica now.
    pub(crate) async fn check(&self, primary: &SqlPool) {
        health::check_all(self, primary).await;
    }

    /// What the set looks like now.
    pub(crate) fn status(&self) -> ReplicaSetStatus {
        ReplicaSetStatus {
            pool: self.pool.clone(),
            primary_reads: self.primary_reads.load(Ordering::Relaxed),
            replicas: self.replicas.iter().map(Replica::status).collect(),
        }
    }

    /// Counts a read an engine ran on the primary.
    pub(crate) fn count_primary_read(&self) {
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Where the primary stands now: asked after each commit of an engine.
    pub(crate) async fn primary_position(&self, primary: &SqlPool) -> Result<Position> {
        let (sql, parse): (&str, fn(&str) -> Option<Position>) = match self.kind {
            DialectKind::Postgres => ("SELECT pg_current_wal_lsn()::text", Position::parse_lsn),
            _ => ("SELECT @@gtid_binlog_pos", Position::parse_gtid),
        };
        let rows = primary.query(sql, vec![]).await?;
        let text = first_text(&rows);
        // An empty GTID position after a commit means no binary log: nothing
        // replicates that write, so no replica can be waited for.
        text.as_deref()
            .and_then(parse)
            .filter(|p| !matches!(p, Position::Gtid(g) if g.is_empty()))
            .ok_or_else(|| Error::Config(format!(
                "relational pool `{}`: the primary reported no replication position ({sql} gave {text:?}); is binary logging (MariaDB: log_bin with GTIDs) on?",
                self.pool
            )))
    }

    /// A replica in rotation that `fits`, by weight (`None`: none fits).
    fn pick(&self, fits: impl Fn(&Replica) -> bool) -> Option<&Replica> {
        let total: u64 = self
            .replicas
            .iter()
            .filter(|r| r.in_rotation.load(Ordering::Acquire) && fits(r))
            .map(|r| u64::from(r.weight))
            .sum();
        if total == 0 {
            return None;
        }
        let mut turn = self.next.fetch_add(1, Ordering::Relaxed) % total;
        self.replicas
            .iter()
            .filter(|r| r.in_rotation.load(Ordering::Acquire) && fits(r))
            .find(|r| {
                let w = u64::from(r.weight);
                if turn < w {
                    true
                } else {
                    turn -= w;
                    false
                }
            })
    }

    /// The replica a read for `target` runs on, after waiting for it if needed;
    /// `None`: the primary.
    pub(crate) async fn choose(&self, target: &Target) -> Option<&Replica> {
        match target {
            Target::Any => self.pick(|_| true),
            Target::MaxLag(max) => {
                let max = max.as_millis().min(u64::MAX as u128 - 1) as u64;
                self.pick(|r| r.lag_ms.load(Ordering::Relaxed) <= max)
            }
            Target::AtLeast(position) => {
                if let Some(r) = self.pick(|r| r.covers(position)) {
                    return Some(r);
                }
                let r = self.pick(|_| true)?;
                r.waits.fetch_add(1, Ordering::Relaxed);
                match self.wait(r, position).await {
                    Ok(true) => Some(r),
                    Ok(false) => {
                        r.wait_timeouts.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                    Err(e) => {
                        self.failed(r, &e);
                        None
                    }
                }
            }
        }
    }

    /// Waits up to `max_wait` for `r` to apply `position`: whether it did.
    async fn wait(&self, r: &Replica, position: &Position) -> Result<bool> {
        let max_wait = self.options.max_wait;
        let reached = match self.kind {
            DialectKind::Postgres => {
                // A standby usually replays a commit within a millisecond of the
                // primary: ask again at once during the first millisecond (Tokio's
                // timer cannot sleep less than that), then back off to 10 ms.
                let start = Instant::now();
                let mut pause = Duration::from_millis(1);
                loop {
                    let rows = r
                        .pool
                        .query("SELECT pg_last_wal_replay_lsn()::text", vec![])
                        .await?;
                    if let Some(at) = first_text(&rows).as_deref().and_then(Position::parse_lsn) {
                        r.applied(&at);
                        if at.covers(position) {
                            break true;
                        }
                    }
                    let left = max_wait.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        break false;
                    }
                    if start.elapsed() >= Duration::from_millis(1) {
                        tokio::time::sleep(pause.min(left)).await;
                        pause = (pause * 2).min(Duration::from_millis(10));
                    }
                }
            }
            _ => {
                let rows = r
                    .pool
                    .query(
                        "SELECT MASTER_GTID_WAIT(?, ?)",
                        vec![
                            Value::String(position.to_string()),
                            Value::F64(max_wait.as_secs_f64()),
                        ],
                    )
                    .await?;
                let answer = rows.first().and_then(|row| row.first());
                let reached = matches!(answer, Some(Value::I64(0)) | Some(Value::U64(0)));
                if reached {
                    r.applied(position);
                }
                reached
            }
        };
        Ok(reached)
    }

    /// Takes `r` out of rotation after a read failed to reach it.
    fn failed(&self, r: &Replica, e: &Error) {
        r.failures.fetch_add(1, Ordering::Relaxed);
        r.set_health(ReplicaHealth::Unreachable, None, Some(e.to_string()));
    }

    /// What becomes of a read `r` answered: `Some` to hand it out (rows, or an error
    /// of the statement itself, which the primary would repeat); `None` when the
    /// replica could not be reached: it leaves the rotation and the primary answers
    /// (reads are idempotent, so the caller sees no error).
    pub(crate) fn answered<T>(&self, r: &Replica, answer: Result<T>) -> Option<Result<T>> {
        match answer {
            Ok(rows) => {
                r.reads.fetch_add(1, Ordering::Relaxed);
                Some(Ok(rows))
            }
            Err(e) if unavailable(&e) => {
                tracing::warn!(replica = %r.name, error = %e, "replica read failed; reading on the primary");
                self.failed(r, &e);
                None
            }
            Err(e) => Some(Err(e)),
        }
    }
}

/// The first column of the first row as text (NULL or no row: `None`).
fn first_text(rows: &[Vec<Value>]) -> Option<String> {
    text(rows.first()?.first())
}

/// A cell as text: strings, UTF-8 bytes and integers (`None`: NULL, anything else).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Bytes(b) => String::from_utf8(b.clone()).ok(),
        Value::I64(n) => Some(n.to_string()),
        Value::U64(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What an engine knows of its own writes on pools with replicas: per pool, the
/// primary's position after the engine's last commit there (`None`: a commit whose
/// position could not be read, so reads of that pool go to the primary).
#[derive(Debug, Default)]
pub(crate) struct Written {
    positions: Mutex<Vec<(String, Option<Position>)>>,
}

impl Written {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Option<Position>)>> {
        self.positions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a commit on `pool`: the primary's position after it, if it was read.
    pub(crate) fn record(&self, pool: &str, position: Option<Position>) {
        let mut all = self.lock();
        match all.iter_mut().find(|(p, _)| p == pool) {
            Some((_, slot)) => match (slot.as_mut(), position) {
                // Positions read after later commits cover the earlier ones; merging
                // keeps the largest whatever order concurrent clones record in.
                (Some(have), Some(new)) => have.merge(&new),
                (_, new) => *slot = new,
            },
            None => all.push((pool.to_string(), position)),
        }
    }

    /// What a read of `pool` must see: `None` when this engine never wrote there,
    /// `Some(None)` when its last position is unknown.
    pub(crate) fn target(&self, pool: &str) -> Option<Option<Position>> {
        self.lock()
            .iter()
            .find(|(p, _)| p == pool)
            .map(|(_, pos)| pos.clone())
    }
}

/// Notes an engine's commits on one pool with replicas (held by [`Db`](crate::Db) and
/// its transactions, which have no engine).
#[derive(Debug, Clone)]
pub(crate) struct WriteNote {
    pub(crate) written: Arc<Written>,
    pub(crate) set: Arc<ReplicaSet>,
}

impl WriteNote {
    /// After a commit on `primary`: records where the primary stands, so the
    /// engine's later reads on replicas wait for the write. A position that cannot be
    /// read sends the engine's reads of the pool to the primary until a later
    /// commit's position is known.
    pub(crate) async fn after_commit(&self, primary: &SqlPool) {
        let position = match self.set.primary_position(primary).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(pool = %primary.name(), error = %e, "cannot read the primary's replication position; this engine's reads of the pool go to the primary");
                None
            }
        };
        self.written.record(primary.name(), position);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_leave_out_credentials_and_database() {
        assert_eq!(
            address_of("mysql://root:pw@127.0.0.1:3311/test?x=1"),
            "127.0.0.1:3311"
        );
        assert_eq!(address_of("root:p@ss@tcp(db2:3306)/app"), "db2:3306");
        assert_eq!(
            address_of("postgres://u@localhost:5441/test"),
            "localhost:5441"
        );
        assert_eq!(address_of("host:5432"), "host:5432");
    }

    #[test]
    fn written_positions_merge_and_unknown_wins_until_the_next_known() {
        let w = Written::default();
        assert_eq!(w.target("a"), None);
        w.record("a", Position::parse_gtid("0-1-5"));
        w.record("a", Position::parse_gtid("0-1-3"));
        assert_eq!(w.target("a"), Some(Position::parse_gtid("0-1-5")));
        w.record("a", None);
        assert_eq!(w.target("a"), Some(None));
        w.record("a", Position::parse_gtid("0-1-9"));
        assert_eq!(w.target("a"), Some(Position::parse_gtid("0-1-9")));
        assert_eq!(w.target("b"), None);
    }
}
