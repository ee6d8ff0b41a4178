//! Read replicas (issue 16, item 6), on the replication pairs of `scripts/services`
//! (MariaDB 3310 -> 3311, PostgreSQL 5440 -> 5441), in one run:
//!
//! - **read throughput** with 0, 1 and 2 replicas: 16 tasks, each `load_by_id` of a
//!   random row of 1,000, 20,000 reads per round. "2 replicas" registers the one
//!   replica server twice: everything runs on this one machine, so these figures are
//!   the cost of routing (choosing a replica, counting), not a gain in capacity;
//! - **read-your-writes**: one engine updating a row then reading it back, 2,000
//!   cycles: on a pool without replicas; with a replica (the read waits for the
//!   write's position on the replica: `MASTER_GTID_WAIT` / polling
//!   `pg_last_wal_replay_lsn()`); and with a replica but `Consistency::Primary` (the
//!   position is still read after each commit, the read goes to the primary) — the
//!   three together split the cost into "read the primary's position after a commit"
//!   and "wait on the replica".
//!
//! Configurations alternate within each of 5 rounds; the median of the rounds is
//! printed with the spread (min–max). Writes the table to
//! `bench/results/replicas.md`.
//!
//! ```text
//! scripts/services && cargo bench -p bench --bench replicas
//! ```
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use beeorm::prelude::*;
use beeorm::{Consistency, Registry, ValidatedRegistry};

const ROWS: u64 = 1_000;
const TASKS: usize = 16;
const READS: usize = 20_000;
const CYCLES: usize = 2_000;
const ROUNDS: usize = 5;

#[derive(Entity, Clone, Debug)]
#[orm(table = "bench_replica_rows")]
struct Row {
    id: u64,
    name: String,
    value: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    MariaDb,
    Postgres,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::MariaDb => "MariaDB",
            Kind::Postgres => "PostgreSQL",
        }
    }

    fn urls(self) -> (String, String) {
        let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        match self {
            Kind::MariaDb => (
                env("BEEORM_REPL_MYSQL_PRIMARY", "mysql://root@127.0.0.1:3310") + "/test",
                env("BEEORM_REPL_MYSQL_REPLICA", "mysql://root@127.0.0.1:3311") + "/test",
            ),
            Kind::Postgres => (
                env(
                    "BEEORM_REPL_PG_PRIMARY",
                    "postgres://postgres@127.0.0.1:5440",
                ) + "/test",
                env(
                    "BEEORM_REPL_PG_REPLICA",
                    "postgres://postgres@127.0.0.1:5441",
                ) + "/test",
            ),
        }
    }
}

async fn registry(kind: Kind, replicas: usize) -> ValidatedRegistry {
    let (primary, replica) = kind.urls();
    let mut r = Registry::new();
    match kind {
        Kind::MariaDb => r.register_mysql_pool("default", &primary),
        Kind::Postgres => r.register_postgres_pool("default", &primary),
    };
    for _ in 0..replicas {
        r.register_replica("default", &replica, 1);
    }
    r.register_entity::<Row>();
    let v = r.validate().await.unwrap();
    if replicas > 0 {
        let start = Instant::now();
        while !v.check_replicas().await[0]
            .replicas
            .iter()
            .all(|r| r.in_rotation)
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "replica not healthy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    v
}

/// Fills the table (on the primary) and waits until the replica has it.
async fn prepare(kind: Kind) {
    let v = registry(kind, 1).await;
    let engine = v.create_engine();
    for a in engine.alters().await.unwrap() {
        a.exec(&engine).await.unwrap();
    }
    let db = engine.db("default").unwrap();
    db.execute("DELETE FROM bench_replica_rows", vec![])
        .await
        .unwrap();
    let mut rows: Vec<Tracked<Row>> = (1..=ROWS)
        .map(|i| {
            Tracked::new(Row {
                id: i,
                name: format!("row {i}"),
                value: i,
            })
        })
        .collect();
    let mut f = engine.flusher();
    for r in rows.iter_mut() {
        f.track(r);
    }
    f.flush().await.unwrap();
    // This engine's read waits for its writes on the replica.
    engine.load_by_id::<Row>(ROWS).await.unwrap().unwrap();
    v.close().await;
}

/// Reads per second: TASKS tasks sharing READS reads of random rows.
async fn read_throughput(v: &ValidatedRegistry) -> f64 {
    let start = Instant::now();
    let per_task = READS / TASKS;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let engine = v.create_engine();
            tokio::spawn(async move {
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                for _ in 0..per_task {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = 1 + x % ROWS;
                    engine.load_by_id::<Row>(id).await.unwrap().unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per_task * TASKS) as f64 / start.elapsed().as_secs_f64()
}

/// Microseconds per write-then-read cycle, and of its write and read parts.
async fn write_then_read(engine: &Engine) -> (f64, f64, f64) {
    let mut row = engine.find::<Row>(1).await.unwrap();
    let (mut write, mut read) = (Duration::ZERO, Duration::ZERO);
    for i in 0..CYCLES {
        row.value = i as u64;
        let a = Instant::now();
        engine.flush(&mut row).await.unwrap();
        let b = Instant::now();
        let seen = engine.find::<Row>(1).await.unwrap();
        read += b.elapsed();
        write += b - a;
        assert_eq!(seen.value, i as u64, "read-your-writes");
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6 / CYCLES as f64;
    (us(write + read), us(write), us(read))
}

fn median_spread(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut out = String::new();
    out.push_str("| dialect | case | median | spread (min–max) |\n|---|---|---|---|\n");
    runtime.block_on(async {
        for kind in [Kind::MariaDb, Kind::Postgres] {
            prepare(kind).await;
            let regs = [
                registry(kind, 0).await,
                registry(kind, 1).await,
                registry(kind, 2).await,
            ];
            let mut reads: [Vec<f64>; 3] = Default::default();
            // write+read, write, read per configuration.
            let mut cycles: [Vec<(f64, f64, f64)>; 3] = Default::default();
            for _ in 0..ROUNDS {
                for (i, v) in regs.iter().enumerate() {
                    reads[i].push(read_throughput(v).await);
                }
                let cases = [
                    regs[0].create_engine(),
                    regs[1].create_engine(),
                    regs[1]
                        .create_engine()
                        .with_consistency(Consistency::Primary),
                ];
                for (i, engine) in cases.iter().enumerate() {
                    cycles[i].push(write_then_read(engine).await);
                }
            }
            for (i, label) in ["0 replicas", "1 replica", "2 replicas (same server twice)"]
                .iter()
                .enumerate()
            {
                let (m, lo, hi) = median_spread(&reads[i]);
                out.push_str(&format!(
                    "| {} | reads/s, {label} | {:.0} | {:.0}–{:.0} |\n",
                    kind.name(),
                    m,
                    lo,
                    hi
                ));
            }
            for (i, label) in [
                "write+read µs, no replicas",
                "write+read µs, replica (read-your-writes wait)",
                "write+read µs, replica, Consistency::Primary",
            ]
            .iter()
            .enumerate()
            {
                let pick = |f: fn(&(f64, f64, f64)) -> f64| {
                    median_spread(&cycles[i].iter().map(f).collect::<Vec<_>>())
                };
                let (m, lo, hi) = pick(|c| c.0);
                let (w, _, _) = pick(|c| c.1);
                let (r, _, _) = pick(|c| c.2);
                out.push_str(&format!(
                    "| {} | {label} | {m:.0} (write {w:.0} + read {r:.0}) | {lo:.0}–{hi:.0} |\n",
                    kind.name()
                ));
            }
            let status = regs[2].replica_status();
            eprintln!("{}: {:?}", kind.name(), status[0]);
            for v in regs {
                v.close().await;
            }
        }
    });
    println!("{out}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/results/replicas.md");
    std::fs::write(
        path,
        format!(
            "# Read replicas (bench/benches/replicas.rs)\n\n{} rounds, median and spread; one machine (2 cores): routing overhead, not capacity.\n\n{out}",
            ROUNDS
        ),
    )
    .unwrap();
}
