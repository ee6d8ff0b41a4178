//! The `beeorm` command line: list, check and apply the schema alters that bring a
//! database in line with the registered entities.
//!
//! # Why a library as well as a binary
//!
//! Entities are Rust types compiled into *your* application: a stand-alone binary
//! cannot know them, so on its own it can only compare the database with an empty set
//! of entities — every table shows up as a drop. That is still useful (it checks the
//! configuration and connectivity, and shows which tables exist), but the real job
//! needs the application's types. So the command lives in this library and an
//! application adds a small binary of its own, `src/bin/schema.rs`, that builds its
//! registry and hands it over:
//!
//! ```no_run
//! # #[derive(beeorm::Entity)]
//! # struct User { id: u64, name: String }
//! // src/bin/schema.rs — `cargo run --bin schema -- check`
//! #[tokio::main]
//! async fn main() {
//!     let mut registry = beeorm::Registry::new();
//!     registry.register_sqlite_pool("default", "app.db").register_entity::<User>();
//!     std::process::exit(beeorm_cli::run(registry, std::env::args()).await);
//! }
//! ```
//!
//! When the pools come from a YAML file, [`run_with_config`] reads `--config PATH`
//! and lets the application add its entities; the shipped `beeorm` binary is exactly
//! `run_with_config(|_| {}, std::env::args_os())`:
//!
//! ```no_run
//! # #[derive(beeorm::Entity)]
//! # struct User { id: u64, name: String }
//! #[tokio::main]
//! async fn main() {
//!     let register = |r: &mut beeorm::Registry| { r.register_entity::<User>(); };
//!     std::process::exit(beeorm_cli::run_with_config(register, std::env::args()).await);
//! }
//! ```
//!
//! # Subcommands and exit codes
//!
//! | command | does | exit code |
//! |---|---|---|
//! | `alters` | lists every alter: pool, safe or UNSAFE, SQL | [`EXIT_OK`] (0) |
//! | `apply` | runs the safe alters, lists the unsafe ones as skipped | 0, or [`EXIT_UNSAFE_SKIPPED`] (2) when some were skipped |
//! | `apply --unsafe` | runs every alter, including those that can lose data | 0 |
//! | `check` | lists pending alters, for CI pipelines | 0 when none, [`EXIT_PENDING`] (3) when some |
//! | `streams [--json]` | per registered Redis stream and group: length, oldest event, pending, consumers, lag, oldest pending (the YAML `streams` key) | 0 |
//!
//! Any error — bad arguments, unreadable configuration, invalid registry, database
//! failure — prints one message on stderr and exits with [`EXIT_ERROR`] (1). `-v`
//! logs every SQL statement to stderr (`tracing`, `debug` for `beeorm::sql`;
//! `RUST_LOG` overrides the filter).
//!
//! `apply` refuses to run when no entity is registered (the stand-alone binary):
//! there, every alter is a drop, and the empty tables would count as safe ones.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use beeorm::schema::Alter;
use beeorm::{Registry, ValidatedRegistry};
use clap::{Args, Parser, Subcommand};

/// Exit code: the command succeeded (`check`: the database matches the entities).
pub const EXIT_OK: i32 = 0;
/// Exit code: an error (bad arguments, configuration, registry, database); the
/// message is on stderr.
pub const EXIT_ERROR: i32 = 1;
/// Exit code of `apply` without `--unsafe` when unsafe alters were left out.
pub const EXIT_UNSAFE_SKIPPED: i32 = 2;
/// Exit code of `check` when alters are pending.
pub const EXIT_PENDING: i32 = 3;

const EXIT_CODES_HELP: &str = "Exit codes: 0 done / in line, 1 error, \
2 `apply` skipped unsafe alters, 3 `check` found pending alters.";

/// Where the command's registry comes from.
// Built once per process and moved once: the size of `Registry` costs nothing here.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// A registry the application built: pools and entities. There is no `--config`.
    Registry(Registry),
    /// Pools from the YAML file named by `--config PATH` (required); the function then
    /// registers the entities (a no-op in the stand-alone `beeorm` binary).
    Config(fn(&mut Registry)),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Registry(r) => f.debug_tuple("Registry").field(r).finish(),
            Source::Config(_) => f.write_str("Config(..)"),
        }
    }
}

/// Runs the command on `registry` (pools and entities) with `args` (the first is the
/// program name, as in [`std::env::args`]), printing to stdout and stderr. Returns the
/// exit code; see the [crate docs](crate) for the codes.
pub async fn run<I, T>(registry: Registry, args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_with_output(
        Source::Registry(registry),
        args,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await
}

/// Runs the command on the pools of the YAML file given by `--config PATH`, after
/// `register` adds the application's entities. Prints to stdout and stderr and returns
/// the exit code. The `beeorm` binary calls this with a `register` that does nothing.
pub async fn run_with_config<I, T>(register: fn(&mut Registry), args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_with_output(
        Source::Config(register),
        args,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await
}

/// [`run`] or [`run_with_config`], writing results to `out` and errors (and `--help`
/// for a bad argument) to `err` instead of stdout and stderr. For tests and for
/// embedding the command in another tool.
pub async fn run_with_output<I, T>(
    source: Source,
    args: I,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let (registry, options) = match source {
        Source::Registry(registry) => match AppCli::try_parse_from(args) {
            Ok(cli) => (registry, cli.options),
            Err(e) => return usage(&e, out, err),
        },
        Source::Config(register) => {
            let cli = match ConfigCli::try_parse_from(args) {
                Ok(cli) => cli,
                Err(e) => return usage(&e, out, err),
            };
            match load_config(&cli.config) {
                Ok(mut registry) => {
                    register(&mut registry);
                    (registry, cli.options)
                }
                Err(e) => return report(&e, err),
            }
        }
    };
    if options.verbose {
        init_tracing();
    }
    match execute(registry, &options.command, out).await {
        Ok(code) => code,
        Err(e) => report(&e, err),
    }
}

/// Options every form of the command takes.
#[derive(Args, Debug)]
struct Options {
    /// Log every SQL statement to stderr (tracing: debug for beeorm::sql; RUST_LOG overrides).
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every alter: pool, safe or UNSAFE, SQL.
    Alters,
    /// Run the safe alters; unsafe ones (which can lose data) only with --unsafe,
    /// otherwise they are listed as skipped and the exit code is 2.
    Apply {
        /// Also run the alters that can lose data.
        #[arg(long = "unsafe")]
        allow_unsafe: bool,
    },
    /// Exit 0 when the database matches the entities, 3 when alters are pending (for CI).
    Check,
    /// Per registered Redis stream and consumer group: length, pending, consumers, lag,
    /// oldest pending event.
    Streams {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The command in an application binary: the registry is built in code.
#[derive(Parser, Debug)]
#[command(
    name = "schema",
    about = "Show, check and apply the schema alters of this application's entities",
    after_help = EXIT_CODES_HELP
)]
struct AppCli {
    #[command(flatten)]
    options: Options,
}

/// The command with pools from a YAML file.
#[derive(Parser, Debug)]
#[command(
    name = "beeorm",
    version,
    about = "Show, check and apply the schema alters of the pools in a beeorm YAML configuration",
    long_about = "Show, check and apply the schema alters of the pools in a beeorm YAML \
configuration.\n\nThe stand-alone `beeorm` binary knows no entities (they are Rust types \
compiled into your application), so it lists every table as a drop: use it to check the \
configuration and connectivity. To manage your entities, add a binary to your application \
that calls `beeorm_cli::run` (see the beeorm-cli crate docs).",
    after_help = EXIT_CODES_HELP
)]
struct ConfigCli {
    /// The YAML configuration naming the pools.
    #[arg(long, value_name = "PATH")]
    config: PathBuf,

    #[command(flatten)]
    options: Options,
}

/// What went wrong, for the one message on stderr.
#[derive(Debug)]
enum CliError {
    /// The configuration file could not be read or parsed.
    Config {
        path: PathBuf,
        source: Box<beeorm::Error>,
    },
    /// `Registry::validate` refused the registry.
    Registry(beeorm::Error),
    /// Comparing the database with the entities failed.
    Plan(beeorm::Error),
    /// An alter failed; the ones before it were applied.
    Apply {
        applied: usize,
        source: beeorm::Error,
    },
    /// `apply` with no entity registered.
    NoEntities,
    /// Reading the streams' statistics failed.
    Streams(beeorm::Error),
    /// Writing the output failed (e.g. a closed pipe).
    Output(std::io::Error),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // This message names the file already.
            CliError::Config { source, .. } if matches!(**source, beeorm::Error::Io { .. }) => {
                write!(f, "configuration: {source}")
            }
            CliError::Config { path, source } => {
                write!(f, "configuration {}: {source}", path.display())
            }
            CliError::Registry(e) => write!(f, "invalid registry: {e}"),
            CliError::Plan(e) => write!(f, "cannot compare the database with the entities: {e}"),
            CliError::Apply { applied, source } => write!(
                f,
                "alter failed ({applied} applied before it; the rest were not run): {source}"
            ),
            CliError::NoEntities => f.write_str(
                "no entity is registered, so every alter is a drop: `apply` refuses to run. \
                 Apply alters from a binary of your application that registers its entities \
                 and calls beeorm_cli::run (see the beeorm-cli docs)",
            ),
            CliError::Streams(e) => write!(f, "cannot read the streams' statistics: {e}"),
            CliError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for CliError {}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Output(e)
    }
}

/// Prints a clap error: help and version go to `out` with code 0, usage errors to
/// `err` with code 1 (clap's own code, 2, is taken by `apply`).
fn usage(e: &clap::Error, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut text = e.render().to_string();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if e.use_stderr() {
        let _ = write!(err, "{text}");
        EXIT_ERROR
    } else {
        let _ = write!(out, "{text}");
        EXIT_OK
    }
}

fn report(e: &CliError, err: &mut dyn Write) -> i32 {
    let _ = writeln!(err, "error: {e}");
    EXIT_ERROR
}

fn load_config(path: &Path) -> Result<Registry, CliError> {
    Registry::from_yaml_file(path).map_err(|source| CliError::Config {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,beeorm=info,beeorm::sql=debug")
    });
    // Fails only when a subscriber is already installed (a test, an embedding tool):
    // then that one stays.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Validates the registry, runs the command, and closes the pools whatever happened.
async fn execute(
    registry: Registry,
    command: &Command,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let validated = registry.validate().await.map_err(CliError::Registry)?;
    let result = run_command(&validated, command, out).await;
    validated.close().await;
    result
}

async fn run_command(
    validated: &ValidatedRegistry,
    command: &Command,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let engine = validated.create_engine();
    if let Command::Streams { json } = command {
        let stats = engine
            .event_broker()
            .stats()
            .await
            .map_err(CliError::Streams)?;
        if *json {
            writeln!(out, "{}", streams_json(&stats))?;
        } else if stats.is_empty() {
            writeln!(out, "No stream is registered.")?;
        } else {
            writeln!(out, "{}", streams_table(&stats))?;
        }
        return Ok(EXIT_OK);
    }
    let alters = engine.alters().await.map_err(CliError::Plan)?;
    match command {
        Command::Alters => {
            if alters.is_empty() {
                writeln!(out, "No alters: the database matches the entities.")?;
            } else {
                writeln!(out, "{}", alter_table(alters.iter()))?;
                writeln!(out, "{}", summary(&alters))?;
            }
            Ok(EXIT_OK)
        }
        Command::Check => {
            if alters.is_empty() {
                writeln!(out, "OK: the database matches the entities.")?;
                Ok(EXIT_OK)
            } else {
                writeln!(out, "{}", alter_table(alters.iter()))?;
                writeln!(out, "{} pending.", summary(&alters))?;
                Ok(EXIT_PENDING)
            }
        }
        Command::Streams { .. } => Ok(EXIT_OK),
        Command::Apply { allow_unsafe } => {
            if alters.is_empty() {
                writeln!(out, "Nothing to apply: the database matches the entities.")?;
                return Ok(EXIT_OK);
            }
            if validated.table_schemas().next().is_none() {
                return Err(CliError::NoEntities);
            }
            let (to_run, skipped): (Vec<&Alter>, Vec<&Alter>) =
                alters.iter().partition(|a| a.safe || *allow_unsafe);
            for (applied, alter) in to_run.iter().enumerate() {
                writeln!(
                    out,
                    "-- applying ({}, pool `{}`)\n{};",
                    safety(alter),
                    alter.pool,
                    alter.sql
                )?;
                alter
                    .exec(&engine)
                    .await
                    .map_err(|source| CliError::Apply { applied, source })?;
            }
            writeln!(out, "Applied {} alter(s).", to_run.len())?;
            if skipped.is_empty() {
                Ok(EXIT_OK)
            } else {
                writeln!(
                    out,
                    "Skipped {} UNSAFE alter(s), which can lose data; rerun with --unsafe to apply them:",
                    skipped.len()
                )?;
                writeln!(out, "{}", alter_table(skipped.into_iter()))?;
                Ok(EXIT_UNSAFE_SKIPPED)
            }
        }
    }
}

fn safety(alter: &Alter) -> &'static str {
    if alter.safe {
        "safe"
    } else {
        "UNSAFE"
    }
}

fn summary(alters: &[Alter]) -> String {
    let unsafe_count = alters.iter().filter(|a| !a.safe).count();
    format!("{} alter(s), {unsafe_count} unsafe", alters.len())
}

fn alter_table<'a>(alters: impl Iterator<Item = &'a Alter>) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::ASCII_FULL_CONDENSED)
        .set_header(["pool", "safety", "SQL"]);
    for a in alters {
        table.add_row([a.pool.as_str(), safety(a), a.sql.as_str()]);
    }
    table
}

/// Seconds of an age, for display.
fn age(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "-".to_string(), |d| format!("{:.1}s", d.as_secs_f64()))
}

/// One row per stream and group.
fn streams_table(stats: &[beeorm::events::StreamStats]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::ASCII_FULL_CONDENSED)
        .set_header([
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
        if s.groups.is_empty() {
            table.add_row([
                s.stream.clone(),
                s.pool.clone(),
                s.length.to_string(),
                age(s.oldest_age),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for g in &s.groups {
            table.add_row([
                s.stream.clone(),
                s.pool.clone(),
                s.length.to_string(),
                age(s.oldest_age),
                g.group.clone(),
                g.pending.to_string(),
                g.consumers.to_string(),
                g.lag.map_or_else(|| "?".to_string(), |l| l.to_string()),
                age(g.oldest_pending_age),
            ]);
        }
    }
    table
}

/// The statistics as a JSON array (ages in milliseconds, `null` when unknown).
fn streams_json(stats: &[beeorm::events::StreamStats]) -> String {
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as u64);
    let value: Vec<serde_json::Value> = stats
        .iter()
        .map(|s| {
            serde_json::json!({
                "stream": s.stream,
                "pool": s.pool,
                "length": s.length,
                "oldest_age_ms": ms(s.oldest_age),
                "groups": s.groups.iter().map(|g| serde_json::json!({
                    "group": g.group,
                    "pending": g.pending,
                    "consumers": g.consumers,
                    "lag": g.lag,
                    "oldest_pending_age_ms": ms(g.oldest_pending_age),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::Value::Array(value).to_string()
}
