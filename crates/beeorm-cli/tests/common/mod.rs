//! What the command's test files share: running it in-process with captured output.
#![allow(dead_code, clippy::unwrap_used)]

use beeorm_cli::{Cli, Source};

/// What one run printed and returned.
pub struct Output {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// Runs the command as an application binary named `schema` would.
pub async fn cli(source: Source, args: &[&str]) -> Output {
    run(Cli::from_source(source), args).await
}

/// Runs `command` (with its registered consumers).
pub async fn run(command: Cli, args: &[&str]) -> Output {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("schema").chain(args.iter().copied());
    let code = command.run_with_output(argv, &mut out, &mut err).await;
    Output {
        code,
        out: String::from_utf8_lossy(&out).into_owned(),
        err: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The Redis server of the tests.
pub fn redis_url() -> String {
    std::env::var("BEEORM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A name no other test or run uses.
pub fn unique(test: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "cli-{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
