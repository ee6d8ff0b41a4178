//! `consume <stream> <group>`: runs the consumer the application registered with
//! [`Cli::consumer`](crate::Cli::consumer), with a live status line, until Ctrl-C.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beeorm::events::Batch;
use beeorm::Engine;

use crate::error::{CliError, EXIT_OK};
use crate::signals::StopSignals;

/// The error a consumer handler may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A registered handler, type-erased.
pub(crate) type Handler = Arc<dyn Fn(Batch) -> HandlerFuture + Send + Sync>;

/// One consumer the application registered.
pub(crate) struct Registered {
    pub stream: String,
    pub group: String,
    pub handler: Handler,
}

/// Erases a handler's types.
pub(crate) fn erase<F, Fut, E>(handler: F) -> Handler
where
    F: Fn(Batch) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    Arc::new(move |batch| {
        let fut = handler(batch);
        Box::pin(async move { fut.await.map_err(Into::into) })
    })
}

/// What the status line shows.
#[derive(Default)]
struct Counts {
    events: AtomicU64,
    batches: AtomicU64,
    failures: AtomicU64,
}

/// Runs the registered consumer of `group` on `stream`: until Ctrl-C / SIGTERM, or
/// once over what the stream holds with `drain`.
pub(crate) async fn run(
    engine: &Engine,
    consumers: &[Registered],
    stream: &str,
    group: &str,
    drain: bool,
    err: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let consumer = engine
        .event_broker()
        .consumer(stream, group)
        .map_err(CliError::op("cannot start the consumer"))?;
    let Some(registered) = consumers
        .iter()
        .find(|c| c.stream == stream && c.group == group)
    else {
        return Err(CliError::NotFound(format!(
            "no consumer of group `{group}` on stream `{stream}` is registered in this \
             binary (register one with beeorm_cli::Cli::consumer; registered: {})",
            registered_list(consumers)
        )));
    };
    let counts = Arc::new(Counts::default());
    let handler = {
        let counts = counts.clone();
        let inner = registered.handler.clone();
        move |batch: Batch| {
            let counts = counts.clone();
            let n = batch.len() as u64;
            let fut = inner(batch);
            async move {
                let result = fut.await;
                counts.batches.fetch_add(1, Ordering::Relaxed);
                match &result {
                    Ok(()) => counts.events.fetch_add(n, Ordering::Relaxed),
                    Err(_) => counts.failures.fetch_add(1, Ordering::Relaxed),
                };
                result
            }
        }
    };
    let started = Instant::now();
    let live = std::io::stderr().is_terminal();
    if drain {
        let handed = consumer
            .drain(handler)
            .await
            .map_err(CliError::op("the consumer failed"))?;
        writeln!(
            err,
            "{stream}/{group}: drained {handed} event(s) in {:.1}s",
            started.elapsed().as_secs_f64()
        )?;
        return Ok(EXIT_OK);
    }
    let mut signals = StopSignals::register();
    let stop = consumer.stop_handle();
    let running = consumer.run(handler);
    tokio::pin!(running);
    let mut tick = tokio::time::interval(if live {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(10)
    });
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = false;
    let result = loop {
        tokio::select! {
            result = &mut running => break result,
            _ = signals.wait(), if !stopping => {
                stopping = true;
                stop.stop();
                if live { writeln!(err)?; }
                writeln!(err, "{stream}/{group}: stopping after the batch in hand…")?;
            }
            _ = tick.tick() => {
                let line = status(engine, stream, group, &counts, started).await;
                if live {
                    write!(err, "\r\x1b[2K{line}")?;
                    err.flush()?;
                } else {
                    writeln!(err, "{line}")?;
                }
            }
        }
    };
    if live && !stopping {
        writeln!(err)?;
    }
    let line = status(engine, stream, group, &counts, started).await;
    writeln!(err, "{line} (stopped)")?;
    result.map_err(CliError::op("the consumer failed"))?;
    Ok(EXIT_OK)
}

/// `orders/mailer: 1,204 events (56.0/s), 13 batches, 0 failed; pending 3, lag 10`.
async fn status(
    engine: &Engine,
    stream: &str,
    group: &str,
    counts: &Counts,
    started: Instant,
) -> String {
    let events = counts.events.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let mut line = format!(
        "{stream}/{group}: {events} events ({:.1}/s), {} batches, {} failed",
        events as f64 / secs,
        counts.batches.load(Ordering::Relaxed),
        counts.failures.load(Ordering::Relaxed),
    );
    match engine.event_broker().stream_stats(stream).await {
        Ok(s) => {
            if let Some(g) = s.groups.iter().find(|g| g.group == group) {
                let lag = g.lag.map_or_else(|| "?".to_string(), |l| l.to_string());
                line.push_str(&format!("; pending {}, lag {lag}", g.pending));
            }
        }
        Err(e) => line.push_str(&format!("; statistics unavailable: {e}")),
    }
    line
}

fn registered_list(consumers: &[Registered]) -> String {
    if consumers.is_empty() {
        return "none".into();
    }
    consumers
        .iter()
        .map(|c| format!("{}/{}", c.stream, c.group))
        .collect::<Vec<_>>()
        .join(", ")
}
