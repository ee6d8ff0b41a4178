//! Event broker throughput (issue 13, item 8), in one run:
//!
//! - **publish**: 200,000 events through `Publisher` (1,000 events per `send`, one
//!   pipeline), from 1 task and from 8 concurrent tasks (one multiplexed connection,
//!   as an application has), next to `redis-benchmark -q -P 16 -c 50 -n 200000 XADD`
//!   of an entry of the same size (`_b` + 31 bytes) on the same server, same moment;
//! - **consume + ack**: `Consumer::drain` of 200,000 events in batches of 1,000 (read,
//!   hand to a handler that decodes every body, `XACK` the batch, trim at the end).
//!
//! Three runs each; the median is printed, with the runs. Stream keys
//! `beeorm-bench:events:*` on db 15 of `BEEORM_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), deleted at the end.
//!
//! ```text
//! cargo bench -p bench --bench events
//! ```
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use beeorm::events::Batch;
use beeorm::redis::driver;
use beeorm::{Engine, Error, Registry};

const TOTAL: usize = 200_000;
const PER_SEND: usize = 1_000;
const RUNS: usize = 3;
const DB: u32 = 15;
const PUB: &str = "beeorm-bench:events:pub";
const CONSUME: &str = "beeorm-bench:events:consume";
const RB: &str = "beeorm-bench:events:redis-benchmark";

#[derive(serde::Serialize, serde::Deserialize)]
struct Order {
    id: u64,
    item: String,
    qty: u32,
}

fn order(i: usize) -> Order {
    Order {
        id: i as u64,
        item: format!("item-{}", i % 1000),
        qty: (i % 7) as u32,
    }
}

fn redis_url() -> String {
    std::env::var("BEEORM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn show(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{:.0}k", x / 1000.0))
        .collect::<Vec<_>>()
        .join(" / ")
}

async fn reset(engine: &Engine, stream: &str) {
    let redis = engine.redis("default").unwrap();
    redis.del(stream).await.unwrap();
    let _: driver::Value = redis
        .query(
            driver::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg("g")
                .arg("0")
                .arg("MKSTREAM"),
        )
        .await
        .unwrap();
}

/// Events per second publishing `TOTAL` events from `tasks` tasks.
async fn publish(engine: &Engine, tasks: usize) -> f64 {
    reset(engine, PUB).await;
    let start = Instant::now();
    let per_task = TOTAL / tasks;
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let broker = engine.event_broker();
            tokio::spawn(async move {
                let mut sent = 0;
                while sent < per_task {
                    let mut p = broker.publisher();
                    for i in 0..PER_SEND.min(per_task - sent) {
                        p.publish(PUB, &order(t * per_task + sent + i)).unwrap();
                    }
                    sent += p.send().await.unwrap().len();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let rate = TOTAL as f64 / start.elapsed().as_secs_f64();
    let len: u64 = engine
        .redis("default")
        .unwrap()
        .query(driver::cmd("XLEN").arg(PUB))
        .await
        .unwrap();
    assert_eq!(len as usize, TOTAL);
    rate
}

/// Events per second draining `TOTAL` events (published beforehand, untimed).
async fn consume(engine: &Engine) -> f64 {
    reset(engine, CONSUME).await;
    let broker = engine.event_broker();
    let mut sent = 0;
    while sent < TOTAL {
        let mut p = broker.publisher();
        for i in 0..PER_SEND {
            p.publish(CONSUME, &order(sent + i)).unwrap();
        }
        sent += p.send().await.unwrap().len();
    }
    let consumer = broker.consumer(CONSUME, "g").unwrap().batch_size(PER_SEND);
    let start = Instant::now();
    let n = consumer
        .drain(|batch: Batch| async move {
            for e in batch.events() {
                let o: Order = e.decode()?;
                std::hint::black_box(o);
            }
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    let rate = n as f64 / start.elapsed().as_secs_f64();
    assert_eq!(n as usize, TOTAL);
    rate
}

/// `redis-benchmark … XADD` requests per second, if it runs.
fn redis_benchmark() -> Option<f64> {
    let url = redis_url();
    let host_port = url.trim_start_matches("redis://").trim_end_matches('/');
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "6379"));
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "--dbnum", &DB.to_string()])
        .args(["-q", "-P", "16", "-c", "50", "-n", &TOTAL.to_string()])
        .args(["XADD", RB, "*", "_b", "0123456789012345678901234567890"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .split(['\r', '\n'])
        .rfind(|l| l.contains("requests per second"))?
        .to_string();
    let before = line.split(" requests per second").next()?;
    before.rsplit(' ').next()?.trim().parse().ok()
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = rt.block_on(async {
        let mut r = Registry::new();
        r.register_redis_pool("default", &redis_url(), DB)
            .register_redis_stream(PUB, "default", &["g"])
            .register_redis_stream(CONSUME, "default", &["g"]);
        r.validate().await.unwrap().create_engine()
    });
    let (mut one, mut eight, mut rb, mut cons) = (vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        one.push(rt.block_on(publish(&engine, 1)));
        eight.push(rt.block_on(publish(&engine, 8)));
        std::thread::sleep(Duration::from_millis(200));
        if let Some(r) = redis_benchmark() {
            rb.push(r);
        }
        rt.block_on(async {
            engine.redis("default").unwrap().del(RB).await.unwrap();
        });
        cons.push(rt.block_on(consume(&engine)));
    }
    println!("events/s, median of {RUNS} (runs):");
    println!(
        "  publish, Publisher of {PER_SEND}, 1 task:   {:.0}k ({})",
        median(one.clone()) / 1000.0,
        show(&one)
    );
    println!(
        "  publish, Publisher of {PER_SEND}, 8 tasks:  {:.0}k ({})",
        median(eight.clone()) / 1000.0,
        show(&eight)
    );
    if rb.is_empty() {
        println!("  redis-benchmark not run");
    } else {
        let base = median(rb.clone());
        println!(
            "  redis-benchmark -P 16 -c 50 XADD:     {:.0}k ({})",
            base / 1000.0,
            show(&rb)
        );
        println!(
            "  Publisher / redis-benchmark: 1 task {:.0} %, 8 tasks {:.0} %",
            100.0 * median(one.clone()) / base,
            100.0 * median(eight.clone()) / base
        );
    }
    println!(
        "  consume + ack (drain, batches of {PER_SEND}): {:.0}k ({})",
        median(cons.clone()) / 1000.0,
        show(&cons)
    );
    rt.block_on(async {
        let redis = engine.redis("default").unwrap();
        for s in [PUB, CONSUME, RB] {
            redis.del(s).await.unwrap();
        }
    });
}
