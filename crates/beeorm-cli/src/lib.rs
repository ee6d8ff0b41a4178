//! The `beeorm` command line: the schema alters that bring a database in line with the
//! registered entities, and the operations of a running system — streams and their
//! consumers, the lazy flush's backlog and dead letters, the entity caches.
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
//! # Consumers
//!
//! `consume <stream> <group>` runs a consumer the application registered with
//! [`Cli::consumer`], so an operator can start one by hand (to drain a backlog, or to
//! watch it work) with the same handler the service runs:
//!
//! ```no_run
//! # #[derive(beeorm::Entity)]
//! # struct User { id: u64, name: String }
//! #[tokio::main]
//! async fn main() {
//!     let mut registry = beeorm::Registry::new();
//!     registry.register_redis_pool("default", "127.0.0.1:6379", 0);
//!     registry.register_redis_stream("orders", "default", &["mailer"]);
//!     let code = beeorm_cli::Cli::new(registry)
//!         .consumer("orders", "mailer", |batch: beeorm::events::Batch| async move {
//!             println!("{} events", batch.len());
//!             Ok::<(), std::io::Error>(())
//!         })
//!         .run(std::env::args())
//!         .await;
//!     std::process::exit(code);
//! }
//! ```
//!
//! # Subcommands and exit codes
//!
//! | command | does |
//! |---|---|
//! | `alters [--json]` | lists every alter: pool, safe or UNSAFE, SQL |
//! | `apply [--unsafe]` | runs the safe alters (every alter with `--unsafe`), a progress bar on a terminal; exit 2 when unsafe ones were skipped |
//! | `check [--json]` | lists pending alters, for CI pipelines: exit 0 when none, 3 when some |
//! | `streams [--json] [--watch [--interval SECS]]` | per registered stream and group: length, oldest event, pending, consumers, lag, oldest pending; `--watch` redraws it until Ctrl-C |
//! | `consume STREAM GROUP [--drain]` | runs the registered consumer with a live status line on stderr until Ctrl-C or SIGTERM (the batch in hand finishes, exit 0); `--drain` processes what the stream holds and exits |
//! | `lazy [--json]` | the lazy flush's stream: length, pending, lag, dead letters |
//! | `lazy dead-letters [--limit N] [--json]` | the writes the applier gave up on |
//! | `lazy retry ID` / `lazy drop ID [--yes]` | puts a dead letter back on the stream / deletes it (asks first) |
//! | `cache [--json]` | hit ratios per entity and layer, summed over every process (see [`beeorm::Engine::published_cache_stats`]) |
//! | `cache clear ENTITY [--yes]` | deletes one entity type's cached rows from Redis and every local layer (asks first) |
//! | `replicas [--json]` | the read replicas of every pool, checked now: health, in rotation, lag, why not; exit 4 when one is out of rotation |
//!
//! | exit code | meaning |
//! |---|---|
//! | [`EXIT_OK`] (0) | done; `check`: in line |
//! | [`EXIT_ERROR`] (1) | any other error: bad arguments, a failed alter, a refused confirmation, a database error |
//! | [`EXIT_UNSAFE_SKIPPED`] (2) | `apply` left unsafe alters out |
//! | [`EXIT_PENDING`] (3) | `check` found pending alters |
//! | [`EXIT_REPLICA_OUT`] (4) | `replicas` found a read replica out of rotation |
//! | [`EXIT_NOT_FOUND`] (66) | no such stream, group, consumer, entity or dead letter |
//! | [`EXIT_UNAVAILABLE`] (69) | a server did not answer (refused, reset, timed out) |
//! | [`EXIT_CONFIG`] (78) | the configuration file cannot be read or parsed, or the registry is invalid |
//!
//! Every error prints one message on stderr (`error: …`). Destructive commands ask
//! `[y/N]` on a terminal; without a terminal they refuse unless `--yes` is given.
//! `-v` logs every SQL statement and Redis command to stderr (`tracing`; `RUST_LOG`
//! overrides the filter).
//!
//! `apply` refuses to run when no entity is registered (the stand-alone binary):
//! there, every alter is a drop, and the empty tables would count as safe ones.

mod alters;
mod args;
mod cache;
mod consume;
mod error;
mod lazy;
mod render;
mod replicas;
mod signals;
mod streams;

use std::ffi::OsString;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use beeorm::{Registry, ValidatedRegistry};
use clap::Parser;

use args::{AppCli, Command, ConfigCli, Options};
pub use consume::BoxError;
use error::CliError;
pub use error::{
    EXIT_CONFIG, EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_PENDING, EXIT_REPLICA_OUT,
    EXIT_UNAVAILABLE, EXIT_UNSAFE_SKIPPED,
};

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

/// The command with the application's consumers: build it, register consumers with
/// [`Cli::consumer`], then [`Cli::run`]. [`run`] and [`run_with_config`] are the
/// shortcuts without consumers.
pub struct Cli {
    source: Source,
    consumers: Vec<consume::Registered>,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli")
            .field("source", &self.source)
            .field("consumers", &self.consumers.len())
            .finish()
    }
}

impl Cli {
    /// The command on a registry the application built (pools and entities).
    pub fn new(registry: Registry) -> Self {
        Cli::from_source(Source::Registry(registry))
    }

    /// The command on the pools of the YAML file given by `--config PATH`, after
    /// `register` adds the application's entities.
    pub fn with_config(register: fn(&mut Registry)) -> Self {
        Cli::from_source(Source::Config(register))
    }

    /// The command on `source`.
    pub fn from_source(source: Source) -> Self {
        Cli {
            source,
            consumers: Vec::new(),
        }
    }

    /// Registers the handler `consume <stream> <group>` runs: the same function the
    /// application's own consumer calls with each batch (see
    /// [`beeorm::events::Consumer::run`] for what `Ok` and `Err` mean).
    pub fn consumer<F, Fut, E>(mut self, stream: &str, group: &str, handler: F) -> Self
    where
        F: Fn(beeorm::events::Batch) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.consumers.push(consume::Registered {
            stream: stream.to_string(),
            group: group.to_string(),
            handler: consume::erase(handler),
        });
        self
    }

    /// Runs the command with `args` (the first is the program name, as in
    /// [`std::env::args`]), printing to stdout and stderr. Returns the exit code.
    pub async fn run<I, T>(self, args: I) -> i32
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        self.run_with_output(args, &mut std::io::stdout(), &mut std::io::stderr())
            .await
    }

    /// [`Cli::run`], writing results to `out` and errors, status lines and `--help`
    /// for a bad argument to `err`. For tests and for embedding the command.
    pub async fn run_with_output<I, T>(
        self,
        args: I,
        out: &mut (dyn Write + Send),
        err: &mut (dyn Write + Send),
    ) -> i32
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let (registry, options) = match self.source {
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
        // Boxed: the consumer's future is deep, and callers' own futures stay small.
        match Box::pin(execute(registry, &options, &self.consumers, out, err)).await {
            Ok(code) => code,
            Err(e) => report(&e, err),
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
    Cli::new(registry).run(args).await
}

/// Runs the command on the pools of the YAML file given by `--config PATH`, after
/// `register` adds the application's entities. Prints to stdout and stderr and returns
/// the exit code. The `beeorm` binary calls this with a `register` that does nothing.
pub async fn run_with_config<I, T>(register: fn(&mut Registry), args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::with_config(register).run(args).await
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
    Cli::from_source(source)
        .run_with_output(args, out, err)
        .await
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
    e.exit_code()
}

fn load_config(path: &Path) -> Result<Registry, CliError> {
    Registry::from_yaml_file(path).map_err(|source| CliError::Config {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// `-v`: beeorm's one-line debug output ([`beeorm::logging::DebugLayer`]) on stderr,
/// for SQL and Redis at debug and the rest at info (`RUST_LOG` overrides the filter).
fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,beeorm=info,beeorm::sql=debug,beeorm::redis=debug")
    });
    // Fails only when a subscriber is already installed (a test, an embedding tool):
    // then that one stays.
    let _ = tracing_subscriber::registry()
        .with(beeorm::logging::DebugLayer::new().with_filter(filter))
        .try_init();
}

/// Validates the registry, runs the command, and closes the pools whatever happened.
async fn execute(
    registry: Registry,
    options: &Options,
    consumers: &[consume::Registered],
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let validated = registry
        .validate()
        .await
        .map_err(|e| CliError::Registry(Box::new(e)))?;
    let result = run_command(&validated, &options.command, consumers, out, err).await;
    validated.close().await;
    result
}

async fn run_command(
    validated: &ValidatedRegistry,
    command: &Command,
    consumers: &[consume::Registered],
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let engine = validated.create_engine();
    match command {
        Command::Alters { json } => alters::list(&engine, *json, out).await,
        Command::Check { json } => alters::check(&engine, *json, out).await,
        Command::Apply { allow_unsafe } => {
            alters::apply(validated, &engine, *allow_unsafe, out).await
        }
        Command::Streams {
            json,
            watch,
            interval,
            iterations,
        } => {
            let w = streams::Watch {
                json: *json,
                watch: *watch,
                interval: Duration::try_from_secs_f64(*interval)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        CliError::op("streams --watch")(beeorm::Error::InvalidArgument {
                            call: "streams --watch --interval".into(),
                            reason: format!("{interval} is not a positive number of seconds"),
                        })
                    })?,
                iterations: *iterations,
            };
            streams::show(&engine, &w, out).await
        }
        Command::Consume {
            stream,
            group,
            drain,
        } => consume::run(&engine, consumers, stream, group, *drain, err).await,
        Command::Lazy { command, json } => lazy::run(&engine, command.as_ref(), *json, out).await,
        Command::Cache { command, json } => cache::run(&engine, command.as_ref(), *json, out).await,
        Command::Replicas { json } => replicas::run(validated, *json, out).await,
    }
}
