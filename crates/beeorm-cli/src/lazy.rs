//! `lazy`: the lazy flush's backlog and dead letters; retry or drop a dead letter.

use std::io::Write;

use beeorm::Engine;

use crate::args::LazyCommand;
use crate::error::{CliError, EXIT_OK};
use crate::render::{confirm, table};
use crate::streams::{stream_json, streams_table};

/// Runs `lazy [--json]` (the backlog) or one of its subcommands.
pub(crate) async fn run(
    engine: &Engine,
    command: Option<&LazyCommand>,
    json: bool,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let op = CliError::op;
    match command {
        None => {
            let b = engine
                .lazy_backlog()
                .await
                .map_err(op("cannot read the lazy flush's backlog"))?;
            if json {
                let v = serde_json::json!({
                    "stream": stream_json(&b.stream),
                    "dead_letters": b.dead_letters,
                });
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "{}", streams_table(std::slice::from_ref(&b.stream)))?;
                writeln!(out, "Dead letters: {}", b.dead_letters)?;
            }
        }
        Some(LazyCommand::DeadLetters { limit, json }) => {
            let letters = engine
                .lazy_dead_letters()
                .map_err(op("cannot read the dead letters"))?
                .list(*limit)
                .await
                .map_err(op("cannot read the dead letters"))?;
            if *json {
                let v: serde_json::Value = letters
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "id": d.id,
                            "source_id": d.source_id,
                            "entity": d.entity,
                            "op": d.op,
                            "entity_id": d.entity_id,
                            "error": d.error,
                        })
                    })
                    .collect();
                writeln!(out, "{v}")?;
            } else if letters.is_empty() {
                writeln!(out, "No dead letters.")?;
            } else {
                let mut t = table(["id", "entity", "op", "entity id", "error"]);
                for d in &letters {
                    t.add_row([
                        d.id.clone(),
                        d.entity.clone().unwrap_or_else(|| "?".into()),
                        d.op.unwrap_or("?").to_string(),
                        d.entity_id.map_or_else(|| "?".into(), |i| i.to_string()),
                        d.error.clone(),
                    ]);
                }
                writeln!(out, "{t}")?;
            }
        }
        Some(LazyCommand::Retry { id }) => {
            let found = engine
                .lazy_dead_letters()
                .map_err(op("cannot retry the dead letter"))?
                .retry(id)
                .await
                .map_err(op("cannot retry the dead letter"))?;
            if !found {
                return Err(missing(id));
            }
            writeln!(
                out,
                "Dead letter {id} is back on the lazy stream; the applier runs it again."
            )?;
        }
        Some(LazyCommand::Drop { id, yes }) => {
            let letters = engine
                .lazy_dead_letters()
                .map_err(op("cannot drop the dead letter"))?;
            confirm(
                *yes,
                &format!("Drop dead letter {id}? Its write is lost for good."),
                &format!("dropping dead letter {id}"),
            )?;
            if !letters
                .drop(id)
                .await
                .map_err(op("cannot drop the dead letter"))?
            {
                return Err(missing(id));
            }
            writeln!(out, "Dead letter {id} dropped.")?;
        }
    }
    Ok(EXIT_OK)
}

fn missing(id: &str) -> CliError {
    CliError::NotFound(format!(
        "no dead letter `{id}` (see `lazy dead-letters` for their IDs)"
    ))
}
