//! What can go wrong, the one message each prints, and its exit code.

use std::path::PathBuf;

/// Exit code: the command succeeded (`check`: the database matches the entities).
pub const EXIT_OK: i32 = 0;
/// Exit code: any other error (bad arguments, a failed alter, a refused
/// confirmation, a database error); the message is on stderr.
pub const EXIT_ERROR: i32 = 1;
/// Exit code of `apply` without `--unsafe` when unsafe alters were left out.
pub const EXIT_UNSAFE_SKIPPED: i32 = 2;
/// Exit code of `check` when alters are pending.
pub const EXIT_PENDING: i32 = 3;
/// Exit code (sysexits `EX_NOINPUT`): the stream, consumer group, entity or dead
/// letter named on the command line does not exist.
pub const EXIT_NOT_FOUND: i32 = 66;
/// Exit code: `replicas` found a read replica out of rotation (lagging, stopped or
/// unreachable).
pub const EXIT_REPLICA_OUT: i32 = 4;
/// Exit code (sysexits `EX_UNAVAILABLE`): a server did not answer (connection refused,
/// reset or timed out).
pub const EXIT_UNAVAILABLE: i32 = 69;
/// Exit code (sysexits `EX_CONFIG`): the configuration file cannot be read or parsed,
/// or the registry it describes is invalid.
pub const EXIT_CONFIG: i32 = 78;

pub(crate) const EXIT_CODES_HELP: &str = "Exit codes: 0 done / in line, 1 error, \
2 `apply` skipped unsafe alters, 3 `check` found pending alters, 4 `replicas` found a replica out of rotation, 66 no such stream, group, \
entity or dead letter, 69 a server did not answer, 78 bad configuration.";

/// What went wrong, for the one message on stderr.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The configuration file could not be read or parsed.
    Config {
        path: PathBuf,
        source: Box<beeorm::Error>,
    },
    /// `Registry::validate` refused the registry.
    Registry(Box<beeorm::Error>),
    /// Comparing the database with the entities failed.
    Plan(Box<beeorm::Error>),
    /// An alter failed; the ones before it were applied.
    Apply {
        applied: usize,
        source: Box<beeorm::Error>,
    },
    /// `apply` with no entity registered.
    NoEntities,
    /// A command's reads or writes failed: what it was doing, and why.
    Op(&'static str, Box<beeorm::Error>),
    /// A name on the command line that does not exist.
    NotFound(String),
    /// A destructive command was not confirmed.
    NotConfirmed(String),
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
            CliError::Registry(e) if is_unavailable(e) => write!(f, "server unavailable: {e}"),
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
            CliError::Op(what, e) => write!(f, "{what}: {e}"),
            CliError::NotFound(what) => f.write_str(what),
            CliError::NotConfirmed(what) => write!(f, "{what}: not confirmed, nothing was done"),
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

impl CliError {
    /// `map_err(CliError::op("cannot …"))`: a library error while doing `what`.
    pub(crate) fn op(what: &'static str) -> impl Fn(beeorm::Error) -> CliError {
        move |e| CliError::Op(what, Box::new(e))
    }

    /// The exit code of this error (see the crate docs' table).
    pub(crate) fn exit_code(&self) -> i32 {
        let library = match self {
            CliError::Config { .. } => return EXIT_CONFIG,
            CliError::NotFound(_) => return EXIT_NOT_FOUND,
            CliError::Registry(e) => {
                if is_unavailable(e) {
                    return EXIT_UNAVAILABLE;
                }
                return EXIT_CONFIG;
            }
            CliError::Plan(e) | CliError::Op(_, e) => &**e,
            CliError::Apply { source, .. } => &**source,
            CliError::NoEntities | CliError::NotConfirmed(_) | CliError::Output(_) => {
                return EXIT_ERROR
            }
        };
        if is_unavailable(library) {
            EXIT_UNAVAILABLE
        } else if is_not_found(library) {
            EXIT_NOT_FOUND
        } else {
            EXIT_ERROR
        }
    }
}

/// A name the user gave that the registry does not know.
fn is_not_found(e: &beeorm::Error) -> bool {
    matches!(
        e,
        beeorm::Error::UnknownStream { .. }
            | beeorm::Error::UnknownGroup { .. }
            | beeorm::Error::UnknownEntity(_)
    )
}

/// A server that did not answer: a connection that could not be opened, was lost or
/// timed out, anywhere in the error's chain.
pub(crate) fn is_unavailable(e: &beeorm::Error) -> bool {
    if matches!(
        e,
        beeorm::Error::Connection { .. } | beeorm::Error::Timeout { .. }
    ) {
        return true;
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(r) = err.downcast_ref::<beeorm::redis::driver::RedisError>() {
            if r.is_connection_refusal()
                || r.is_timeout()
                || r.is_io_error()
                || r.is_connection_dropped()
            {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionRefused | ConnectionReset | ConnectionAborted | TimedOut | NotConnected
            ) {
                return true;
            }
        }
        if let Some(b) = err.downcast_ref::<beeorm::Error>() {
            if !std::ptr::eq(b, e)
                && matches!(
                    b,
                    beeorm::Error::Connection { .. } | beeorm::Error::Timeout { .. }
                )
            {
                return true;
            }
        }
        next = err.source();
    }
    false
}
