//! Pipelined Redis throughput (issue 5): SET and GET in pipelines of 16 commands from
//! 50 concurrent tasks, through beeorm's `RedisClient` and through bare redis-rs (the
//! same `ConnectionManager`, no beeorm layer) in the same run, then
//! `redis-benchmark -q -n 200000 -P 16 -c 50 -t set,get` (C, 50 connections) for the
//! ceiling of the machine.
//!
//! Each measurement sends 200,000 commands (like `-n 200000`): 50 tasks take
//! pipelines of 16 from a shared budget until it is spent. Three runs each; the
//! median is printed. Keys `beeorm-bench:<task>:<n>` (1,000 per task) on db 15 of the
//! server of `BEEORM_REDIS_URL` (default `redis://127.0.0.1:6379`), deleted at the end.
//!
//! ```text
//! cargo bench -p bench --bench redis
//! ```

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beeorm::redis::driver;
use beeorm::{RedisClient, Registry};

const TOTAL: usize = 200_000;
const TASKS: usize = 50;
const PIPELINE: usize = 16;
const KEYS_PER_TASK: usize = 1_000;
const RUNS: usize = 3;
const DB: u32 = 15;

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Set,
    Get,
}

fn key(task: usize, n: usize) -> String {
    format!("beeorm-bench:{task}:{}", n % KEYS_PER_TASK)
}

/// Runs `TOTAL` commands as pipelines of `PIPELINE` from `TASKS` tasks; ops/s.
async fn drive<F, Fut>(send: F) -> f64
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let budget = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (budget, send) = (budget.clone(), send.clone());
        tasks.spawn(async move {
            loop {
                let first = budget.fetch_add(PIPELINE, Ordering::Relaxed);
                if first >= TOTAL {
                    return;
                }
                send(task, first).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("bench task");
    }
    TOTAL as f64 / start.elapsed().as_secs_f64()
}

async fn beeorm_run(redis: &RedisClient, op: Op) -> f64 {
    let redis = redis.clone();
    drive(move |task, first| {
        let redis = redis.clone();
        async move {
            let mut pipe = redis.pipeline();
            for n in first..first + PIPELINE {
                match op {
                    Op::Set => pipe.set(key(task, n), "xxx"),
                    Op::Get => pipe.get(key(task, n)),
                };
            }
            let _: Vec<Option<String>> = pipe.query().await.expect("beeorm pipeline");
        }
    })
    .await
}

async fn raw_run(conn: &driver::aio::ConnectionManager, op: Op) -> f64 {
    let conn = conn.clone();
    drive(move |task, first| {
        let mut conn = conn.clone();
        async move {
            let mut pipe = driver::pipe();
            for n in first..first + PIPELINE {
                match op {
                    Op::Set => pipe.cmd("SET").arg(key(task, n)).arg("xxx"),
                    Op::Get => pipe.cmd("GET").arg(key(task, n)),
                };
            }
            let _: Vec<Option<String>> = pipe.query_async(&mut conn).await.expect("raw pipeline");
        }
    })
    .await
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let url = std::env::var("BEEORM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut r = Registry::new();
        r.register_redis_pool("bench", &url, DB);
        let engine = r.validate().await.expect("registry").create_engine();
        let redis = engine.redis("bench").expect("pool");
        if let Err(e) = redis.ping().await {
            eprintln!("redis bench skipped: {e}");
            return;
        }
        let client = driver::Client::open(format!("{}/{DB}", url.trim_end_matches('/')))
            .expect("redis-rs client");
        let raw = driver::aio::ConnectionManager::new(client)
            .await
            .expect("redis-rs connection");

        // Warm-up: connections, keys present for GET.
        beeorm_run(&redis, Op::Set).await;
        raw_run(&raw, Op::Set).await;

        println!(
            "{TOTAL} commands, pipelines of {PIPELINE}, {TASKS} tasks, median of {RUNS} runs (ops/s):"
        );
        for (name, op) in [("SET", Op::Set), ("GET", Op::Get)] {
            let mut ours = Vec::new();
            let mut bare = Vec::new();
            for _ in 0..RUNS {
                // Interleaved, so both see the same machine load.
                ours.push(beeorm_run(&redis, op).await);
                bare.push(raw_run(&raw, op).await);
            }
            println!(
                "  {name}: beeorm RedisClient {:>9.0}   bare redis-rs {:>9.0}   (runs: {:?} / {:?})",
                median(ours.clone()),
                median(bare.clone()),
                ours.iter().map(|v| *v as u64).collect::<Vec<_>>(),
                bare.iter().map(|v| *v as u64).collect::<Vec<_>>(),
            );
        }
        let keys: Vec<String> = (0..TASKS)
            .flat_map(|t| (0..KEYS_PER_TASK).map(move |n| key(t, n)))
            .collect();
        for chunk in keys.chunks(1000) {
            redis.del(chunk).await.expect("cleanup");
        }
    });
    // The C client, same machine, same moment.
    let host_port = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string();
    let (host, port) = host_port.rsplit_once(':').unwrap_or((&host_port, "6379"));
    std::thread::sleep(Duration::from_millis(200));
    match Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "--dbnum", &DB.to_string()])
        .args([
            "-q", "-n", "200000", "-P", "16", "-c", "50", "-t", "set,get",
        ])
        .output()
    {
        Ok(out) => {
            println!("redis-benchmark -q -n 200000 -P 16 -c 50 -t set,get:");
            for line in String::from_utf8_lossy(&out.stdout).split(['\r', '\n']) {
                let line = line.trim();
                if line.contains("requests per second") {
                    println!("  {line}");
                }
            }
        }
        Err(e) => println!("redis-benchmark not run: {e}"),
    }
}
