//! The stand-alone `beeorm` command: `beeorm --config beeorm.yaml alters|apply|check`.
//!
//! It knows no entities (they are compiled into applications), so it shows every table
//! of the configured pools as a drop: use it to check a configuration and its
//! connectivity. Applications manage their entities with their own small binary
//! calling [`beeorm_cli::run`]; see the `beeorm_cli` crate docs.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let code = beeorm_cli::run_with_config(|_| {}, std::env::args_os()).await;
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
