//! `streams [--json] [--watch]`: the registered streams and their consumer groups.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use beeorm::events::StreamStats;
use beeorm::Engine;

use crate::error::{CliError, EXIT_OK};
use crate::render::{age, age_ms, table};
use crate::signals::StopSignals;

/// What `streams` was asked for.
pub(crate) struct Watch {
    pub json: bool,
    pub watch: bool,
    pub interval: Duration,
    pub iterations: Option<u64>,
}

/// Prints the statistics once, or every `interval` until Ctrl-C (or `iterations`).
pub(crate) async fn show(
    engine: &Engine,
    w: &Watch,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    if !w.watch {
        print_once(engine, w.json, out).await?;
        return Ok(EXIT_OK);
    }
    // Clearing the screen only makes sense on a terminal that shows our stdout.
    let redraw = !w.json && std::io::stdout().is_terminal();
    let mut done = 0u64;
    let mut signals = StopSignals::register();
    loop {
        if redraw {
            write!(out, "\x1b[2J\x1b[H")?;
        }
        print_once(engine, w.json, out).await?;
        out.flush()?;
        done += 1;
        if w.iterations.is_some_and(|n| done >= n) {
            return Ok(EXIT_OK);
        }
        tokio::select! {
            _ = tokio::time::sleep(w.interval) => {}
            _ = signals.wait() => return Ok(EXIT_OK),
        }
    }
}

async fn print_once(
    engine: &Engine,
    json: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let stats = engine
        .event_broker()
        .stats()
        .await
        .map_err(CliError::op("cannot read the streams' statistics"))?;
    if json {
        writeln!(out, "{}", streams_json(&stats))?;
    } else if stats.is_empty() {
        writeln!(out, "No stream is registered.")?;
    } else {
        writeln!(out, "{}", streams_table(&stats))?;
    }
    Ok(())
}

/// One row per stream and group.
pub(crate) fn streams_table(stats: &[StreamStats]) -> comfy_table::Table {
    let mut t = table([
        "stream",
        "pool",
        "length",
        "oldest",
        "group",
        "pending",
        "consumers",
        "lag",
        "oldest pending",
    ]);
    for s in stats {
        let stream = [
            s.stream.clone(),
            s.pool.clone(),
            s.length.to_string(),
            age(s.oldest_age),
        ];
        if s.groups.is_empty() {
            t.add_row(
                stream
                    .iter()
                    .cloned()
                    .chain(std::iter::repeat_n("-".to_string(), 5)),
            );
        }
        for g in &s.groups {
            t.add_row(stream.iter().cloned().chain([
                g.group.clone(),
                g.pending.to_string(),
                g.consumers.to_string(),
                g.lag.map_or_else(|| "?".to_string(), |l| l.to_string()),
                age(g.oldest_pending_age),
            ]));
        }
    }
    t
}

/// One stream as JSON (ages in milliseconds, `null` when unknown).
pub(crate) fn stream_json(s: &StreamStats) -> serde_json::Value {
    serde_json::json!({
        "stream": s.stream,
        "pool": s.pool,
        "length": s.length,
        "oldest_age_ms": age_ms(s.oldest_age),
        "groups": s.groups.iter().map(|g| serde_json::json!({
            "group": g.group,
            "pending": g.pending,
            "consumers": g.consumers,
            "lag": g.lag,
            "oldest_pending_age_ms": age_ms(g.oldest_pending_age),
        })).collect::<Vec<_>>(),
    })
}

/// The statistics as a JSON array.
fn streams_json(stats: &[StreamStats]) -> serde_json::Value {
    stats.iter().map(stream_json).collect()
}
