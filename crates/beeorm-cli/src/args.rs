//! The command line (clap): one struct per form of the command, one enum of
//! subcommands shared by both.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::EXIT_CODES_HELP;

/// Options every form of the command takes.
#[derive(Args, Debug)]
pub(crate) struct Options {
    /// Log every SQL statement and Redis command to stderr (tracing: debug for the
    /// beeorm::sql and beeorm::redis targets; RUST_LOG overrides).
    #[arg(short, long, global = true)]
    pub verbose: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// List every alter: pool, safe or UNSAFE, SQL.
    Alters {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the safe alters; unsafe ones (which can lose data) only with --unsafe,
    /// otherwise they are listed as skipped and the exit code is 2.
    Apply {
        /// Also run the alters that can lose data.
        #[arg(long = "unsafe")]
        allow_unsafe: bool,
    },
    /// Exit 0 when the database matches the entities, 3 when alters are pending (for CI).
    Check {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Per registered Redis stream and consumer group: length, pending, consumers, lag,
    /// oldest pending event.
    Streams {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Redraw the table every --interval seconds until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Seconds between two refreshes of --watch.
        #[arg(long, default_value_t = 2.0, value_name = "SECS")]
        interval: f64,
        /// Stop --watch after this many refreshes (for scripts and tests).
        #[arg(long, hide = true)]
        iterations: Option<u64>,
    },
    /// Run the application's consumer of GROUP on STREAM with a live status line on
    /// stderr, until Ctrl-C (the batch in hand finishes first).
    Consume {
        /// The stream.
        stream: String,
        /// The consumer group.
        group: String,
        /// Process what the stream holds now, then exit.
        #[arg(long)]
        drain: bool,
    },
    /// The lazy flush: backlog and dead letters.
    Lazy {
        #[command(subcommand)]
        command: Option<LazyCommand>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The read replicas of every relational pool, checked now: health, rotation,
    /// lag. Exit code 4 when one is out of rotation.
    Replicas {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The entity caches: hit ratios per entity and layer (all processes), or clear
    /// one entity type's cached rows.
    Cache {
        #[command(subcommand)]
        command: Option<CacheCommand>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum LazyCommand {
    /// List the dead letters: writes the applier gave up on.
    DeadLetters {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put a dead letter back on the lazy stream, to be applied again.
    Retry {
        /// The dead letter's ID (see `lazy dead-letters`).
        id: String,
    },
    /// Delete a dead letter: its write is given up for good.
    Drop {
        /// The dead letter's ID (see `lazy dead-letters`).
        id: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum CacheCommand {
    /// Delete every cached row of one entity type, in Redis and in every process's
    /// local layer (asks for confirmation).
    Clear {
        /// The entity's Rust type name.
        entity: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// The command in an application binary: the registry is built in code.
#[derive(Parser, Debug)]
#[command(
    name = "schema",
    about = "Schema alters, streams, consumers, lazy flush and caches of this application",
    after_help = EXIT_CODES_HELP
)]
pub(crate) struct AppCli {
    #[command(flatten)]
    pub options: Options,
}

/// The command with pools from a YAML file.
#[derive(Parser, Debug)]
#[command(
    name = "beeorm",
    version,
    about = "Schema alters, streams, lazy flush and caches of the pools in a beeorm YAML configuration",
    long_about = "Schema alters, streams, lazy flush and caches of the pools in a beeorm YAML \
configuration.\n\nThe stand-alone `beeorm` binary knows no entities (they are Rust types \
compiled into your application), so it lists every table as a drop and knows no cached \
entity nor consumer: use it to check the configuration and connectivity, and to watch \
streams. To manage your entities, add a binary to your application that calls \
`beeorm_cli::run` (see the beeorm-cli crate docs).",
    after_help = EXIT_CODES_HELP
)]
pub(crate) struct ConfigCli {
    /// The YAML configuration naming the pools.
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,

    #[command(flatten)]
    pub options: Options,
}
