//! Query logging (G3): every SQL statement, Redis command and cache read is a
//! [`tracing`] record with its pool, duration and rows, under one target per source;
//! [`DebugLayer`] prints them one line each, coloured on a terminal.
//!
//! # Why `tracing` targets and not loggers of our own
//!
//! The Go originals register query loggers on the engine, with their own levels and
//! sources. In Rust the application already has a `tracing` subscriber (JSON to a log
//! shipper, OpenTelemetry, the console): beeorm's records go there with everything
//! else, and filtering by level and source is the subscriber's job — each source is a
//! target, so `RUST_LOG=warn,beeorm::sql=debug,beeorm::cache=debug` (an
//! `EnvFilter`) or a [`tracing_subscriber::filter::Targets`] picks them. Nothing is
//! formatted unless a subscriber wants the record: with the level off, a record costs
//! one cached callsite check.
//!
//! | source | target | records (level) |
//! |---|---|---|
//! | SQL | [`SQL`] `beeorm::sql` | span `sql{pool, db, sql}` (the text, never the values) and its event `statement done{duration_us, rows}` (debug) or `statement failed{duration_us, error}` (warn) |
//! | Redis | [`REDIS`] `beeorm::redis` | span `redis{pool, command}` (never keys nor values) and `command done{duration_us}` (debug) / `command failed` (warn); pipelines as `PIPELINE` with `commands` |
//! | cache | [`CACHE`] `beeorm::cache` | `cache read{entity, layer, pool, rows, hits, duration_us}` per layer asked (debug), fills and invalidations that failed (warn) |
//! | events | [`EVENTS`] `beeorm::events` | consumers, leases, trimming, unpublished dirty events |
//! | search | [`SEARCH`] `beeorm::search` | index sync failures, index creation |
//! | lazy flush | [`LAZY`] `beeorm::lazy` | batches, retries, dead letters |
//! | change log | [`CHANGE_LOG`] `beeorm::change_log` | rows written |
//! | ClickHouse | [`CLICKHOUSE`] `beeorm::clickhouse` | its client's records |
//!
//! # Metadata on every record
//!
//! Records inherit the fields of the spans they run in: run a request's work inside
//! one span carrying its metadata and every record beeorm emits for it carries them
//! too. [`Engine::log_span`](crate::Engine::log_span) is that span for an engine, with
//! the engine's metadata ([`Engine::set_log_meta`](crate::Engine::set_log_meta), the
//! same map the change log stores) as the field `meta`:
//!
//! ```no_run
//! # async fn f(engine: beeorm::Engine) -> beeorm::Result<()> {
//! use tracing::Instrument;
//! let mut engine = engine;
//! engine.set_log_meta("user_id", 12);
//! let span = engine.log_span();
//! async {
//!     // every SQL, Redis and cache record here carries meta="user_id=12"
//!     engine.db("default")?.query("SELECT 1", vec![]).await
//! }
//! .instrument(span)
//! .await?;
//! # Ok(()) }
//! ```
//!
//! # Debug mode
//!
//! [`init_debug`] installs [`DebugLayer`] for `beeorm` records at debug level on
//! stderr (the `beeorm` CLI does with `-v`):
//!
//! ```text
//! beeorm SQL    default   0.42 ms  1 row    SELECT `id`, `name` FROM `users` WHERE `id` = ?
//! beeorm REDIS  default   0.08 ms           GET
//! beeorm CACHE  default   0.11 ms  3 rows   cache read entity=User layer=redis hits=2
//! ```

use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target of SQL statements (and transactions).
pub const SQL: &str = "beeorm::sql";
/// The target of Redis commands.
pub const REDIS: &str = "beeorm::redis";
/// The target of entity-cache reads, fills and invalidations.
pub const CACHE: &str = "beeorm::cache";
/// The target of the event broker (streams, consumers).
pub const EVENTS: &str = "beeorm::events";
/// The target of full-text search.
pub const SEARCH: &str = "beeorm::search";
/// The target of the lazy flush.
pub const LAZY: &str = "beeorm::lazy";
/// The target of the change log.
pub const CHANGE_LOG: &str = "beeorm::change_log";
/// The target of ClickHouse.
pub const CLICKHOUSE: &str = "beeorm::clickhouse";

/// The label and colour (ANSI code) of a record's source.
fn source(target: &str) -> (&'static str, &'static str) {
    const SOURCES: [(&str, &str, &str); 8] = [
        (SQL, "SQL", "34"),
        (REDIS, "REDIS", "31"),
        (CACHE, "CACHE", "32"),
        (EVENTS, "EVENTS", "35"),
        (SEARCH, "SEARCH", "36"),
        (LAZY, "LAZY", "33"),
        (CHANGE_LOG, "LOG", "33"),
        (CLICKHOUSE, "CH", "36"),
    ];
    SOURCES
        .iter()
        .find(|(t, _, _)| target.starts_with(t))
        .map_or(("BEEORM", "37"), |(_, label, colour)| (label, colour))
}

/// A `tracing_subscriber` layer printing each beeorm record on one line: source,
/// pool, duration, rows, the statement or command, the other fields, the metadata of
/// the spans it runs in. Records of other targets are ignored. Colours when the
/// writer is a terminal (not with `NO_COLOR` set).
pub struct DebugLayer<W = fn() -> std::io::Stderr> {
    make_writer: W,
    ansi: bool,
}

impl std::fmt::Debug for DebugLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebugLayer")
            .field("ansi", &self.ansi)
            .finish()
    }
}

impl Default for DebugLayer {
    fn default() -> Self {
        DebugLayer::new()
    }
}

impl DebugLayer {
    /// On stderr; coloured when stderr is a terminal and `NO_COLOR` is not set.
    pub fn new() -> Self {
        DebugLayer {
            make_writer: std::io::stderr,
            ansi: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

impl<W> DebugLayer<W> {
    /// Writes to `make_writer` instead (a file, a buffer in tests), without colours
    /// unless [`DebugLayer::with_ansi`] says otherwise.
    pub fn with_writer<W2>(self, make_writer: W2) -> DebugLayer<W2>
    where
        W2: for<'w> MakeWriter<'w> + 'static,
    {
        DebugLayer {
            make_writer,
            ansi: false,
        }
    }

    /// Colours on or off.
    pub fn with_ansi(mut self, ansi: bool) -> Self {
        self.ansi = ansi;
        self
    }
}

/// The formatted fields of a span, kept in its extensions.
struct SpanFields(Fields);

/// Fields of a record or a span, split into the ones the line places and the rest.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    pool: Option<String>,
    operation: Option<String>,
    duration_us: Option<u64>,
    rows: Option<u64>,
    error: Option<String>,
    meta: Option<String>,
    other: String,
}

impl Fields {
    fn put(&mut self, name: &str, value: String) {
        match name {
            "message" => self.message = Some(value),
            "pool" => self.pool = Some(value),
            "sql" | "command" | "query" => self.operation = Some(value),
            "error" => self.error = Some(value),
            "meta" => self.meta = Some(value),
            // The server kind repeats what the pool says; the span names are known.
            "db" => {}
            _ => {
                if !self.other.is_empty() {
                    self.other.push(' ');
                }
                let _ = write!(self.other, "{name}={value}");
            }
        }
    }

    /// Fills what `self` lacks from an enclosing span's fields.
    fn inherit(&mut self, outer: &Fields) {
        if self.pool.is_none() {
            self.pool.clone_from(&outer.pool);
        }
        if self.operation.is_none() {
            self.operation.clone_from(&outer.operation);
        }
        if self.meta.is_none() {
            self.meta.clone_from(&outer.meta);
        }
        if !outer.other.is_empty() {
            if !self.other.is_empty() {
                self.other.push(' ');
            }
            self.other.push_str(&outer.other);
        }
    }
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "duration_us" => self.duration_us = Some(value),
            "rows" => self.rows = Some(value),
            name => self.put(name, value.to_string()),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.put(field.name(), value.to_string()),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), format!("{value:?}"));
    }
}

impl<S, W> Layer<S> for DebugLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let target = event.metadata().target();
        if !target.starts_with("beeorm") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(SpanFields(outer)) = span.extensions().get::<SpanFields>() {
                    fields.inherit(outer);
                }
            }
        }
        let failed = fields.error.is_some() || *event.metadata().level() <= tracing::Level::WARN;
        let line = render(&fields, source(target), failed, self.ansi);
        let mut writer = self.make_writer.make_writer();
        let _ = std::io::Write::write_all(&mut writer, line.as_bytes());
    }
}

/// One line: `beeorm SQL    default   0.42 ms  1 row    SELECT …  k=v  error=…  meta`.
fn render(f: &Fields, (label, colour): (&str, &str), failed: bool, ansi: bool) -> String {
    let mut line = String::with_capacity(128);
    let paint = |line: &mut String, code: &str, text: &str| {
        if ansi {
            let _ = write!(line, "\x1b[{code}m{text}\x1b[0m");
        } else {
            line.push_str(text);
        }
    };
    line.push_str("beeorm ");
    paint(
        &mut line,
        if failed { "1;31" } else { colour },
        &format!("{label:<6}"),
    );
    let _ = write!(line, " {:<9}", f.pool.as_deref().unwrap_or("-"));
    match f.duration_us {
        Some(us) => {
            let _ = write!(line, " {:>8.2} ms", us as f64 / 1000.0);
        }
        None => line.push_str("            "),
    }
    match f.rows {
        Some(1) => line.push_str("  1 row   "),
        Some(n) => {
            let _ = write!(line, "  {:<8}", format!("{n} rows"));
        }
        None => line.push_str("          "),
    }
    let text = match (&f.operation, &f.message) {
        // The statement says more than "statement done".
        (Some(op), _) => op.as_str(),
        (None, Some(m)) => m.as_str(),
        (None, None) => "",
    };
    line.push(' ');
    line.push_str(text);
    if f.operation.is_some() && failed {
        if let Some(m) = &f.message {
            let _ = write!(line, " ({m})");
        }
    }
    if !f.other.is_empty() {
        line.push_str("  ");
        line.push_str(&f.other);
    }
    if let Some(e) = &f.error {
        line.push_str("  ");
        paint(&mut line, "31", &format!("error={e}"));
    }
    if let Some(meta) = &f.meta {
        line.push_str("  ");
        paint(&mut line, "2", meta);
    }
    line.push('\n');
    line
}

/// Installs [`DebugLayer`] on stderr as the global subscriber, for `beeorm` records at
/// debug level and above (`RUST_LOG`, when set, is not read: use an `EnvFilter` with
/// the layer yourself for that). Returns `false` when a global subscriber was
/// already installed (then nothing changes).
pub fn init_debug() -> bool {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter =
        tracing_subscriber::filter::Targets::new().with_target("beeorm", tracing::Level::DEBUG);
    tracing_subscriber::registry()
        .with(DebugLayer::new().with_filter(filter))
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_by_target_prefix() {
        assert_eq!(source("beeorm::sql::pool").0, "SQL");
        assert_eq!(source("beeorm::redis::pipeline").0, "REDIS");
        assert_eq!(source("beeorm::cache").0, "CACHE");
        assert_eq!(source("beeorm::events::consume").0, "EVENTS");
        assert_eq!(source("beeorm::search::sync").0, "SEARCH");
        assert_eq!(source("beeorm::lazy").0, "LAZY");
        assert_eq!(source("beeorm::engine").0, "BEEORM");
    }

    #[test]
    fn a_line_without_colours() {
        let f = Fields {
            pool: Some("default".into()),
            operation: Some("SELECT 1".into()),
            duration_us: Some(420),
            rows: Some(1),
            meta: Some("user_id=12".into()),
            ..Fields::default()
        };
        let line = render(&f, ("SQL", "34"), false, false);
        assert_eq!(
            line,
            "beeorm SQL    default       0.42 ms  1 row    SELECT 1  user_id=12\n"
        );
        let coloured = render(&f, ("SQL", "34"), true, true);
        assert!(coloured.contains("\x1b[1;31mSQL"), "{coloured:?}");
    }
}
