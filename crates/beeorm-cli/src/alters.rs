//! `alters`, `check` and `apply`: the schema alters that bring the databases in line
//! with the registered entities.

use std::io::{IsTerminal, Write};

use beeorm::schema::Alter;
use beeorm::{Engine, ValidatedRegistry};

use crate::error::{CliError, EXIT_OK, EXIT_PENDING, EXIT_UNSAFE_SKIPPED};
use crate::render::table;

async fn plan(engine: &Engine) -> Result<Vec<Alter>, CliError> {
    engine
        .alters()
        .await
        .map_err(|e| CliError::Plan(Box::new(e)))
}

/// `alters [--json]`.
pub(crate) async fn list(
    engine: &Engine,
    json: bool,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let alters = plan(engine).await?;
    print(
        &alters,
        json,
        "No alters: the database matches the entities.",
        "",
        out,
    )?;
    Ok(EXIT_OK)
}

/// `check [--json]`: 0 when in line, [`EXIT_PENDING`] otherwise.
pub(crate) async fn check(
    engine: &Engine,
    json: bool,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let alters = plan(engine).await?;
    print(
        &alters,
        json,
        "OK: the database matches the entities.",
        " pending.",
        out,
    )?;
    Ok(if alters.is_empty() {
        EXIT_OK
    } else {
        EXIT_PENDING
    })
}

/// The alters as JSON, or `none` when there are none, or a table and a summary
/// ending with `suffix`.
fn print(
    alters: &[Alter],
    json: bool,
    none: &str,
    suffix: &str,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    if json {
        writeln!(out, "{}", alters_json(alters))?;
    } else if alters.is_empty() {
        writeln!(out, "{none}")?;
    } else {
        writeln!(out, "{}", alter_table(alters.iter()))?;
        writeln!(out, "{}{suffix}", summary(alters))?;
    }
    Ok(())
}

/// `apply [--unsafe]`, with a progress bar over the alters on a terminal.
pub(crate) async fn apply(
    validated: &ValidatedRegistry,
    engine: &Engine,
    allow_unsafe: bool,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let alters = plan(engine).await?;
    if alters.is_empty() {
        writeln!(out, "Nothing to apply: the database matches the entities.")?;
        return Ok(EXIT_OK);
    }
    if validated.table_schemas().next().is_none() {
        return Err(CliError::NoEntities);
    }
    let (to_run, skipped): (Vec<&Alter>, Vec<&Alter>) =
        alters.iter().partition(|a| a.safe || allow_unsafe);
    let bar = progress_bar(to_run.len() as u64);
    for (applied, alter) in to_run.iter().enumerate() {
        bar.set_message(format!(
            "pool `{}`: {}",
            alter.pool,
            first_words(&alter.sql)
        ));
        writeln!(
            out,
            "-- applying ({}, pool `{}`)\n{};",
            safety(alter),
            alter.pool,
            alter.sql
        )?;
        let done = alter.exec(engine).await;
        bar.inc(1);
        if let Err(source) = done {
            bar.abandon();
            return Err(CliError::Apply {
                applied,
                source: Box::new(source),
            });
        }
    }
    bar.finish_and_clear();
    writeln!(out, "Applied {} alter(s).", to_run.len())?;
    if skipped.is_empty() {
        return Ok(EXIT_OK);
    }
    writeln!(
        out,
        "Skipped {} UNSAFE alter(s), which can lose data; rerun with --unsafe to apply them:",
        skipped.len()
    )?;
    writeln!(out, "{}", alter_table(skipped.into_iter()))?;
    Ok(EXIT_UNSAFE_SKIPPED)
}

/// A bar on stderr when it is a terminal; hidden otherwise (logs and tests get the
/// plain lines of stdout only).
fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} alters  {wide_msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// The first words of a statement, for the progress bar (`CREATE TABLE "users"`).
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
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
    let mut t = table(["pool", "safety", "SQL"]);
    for a in alters {
        t.add_row([a.pool.as_str(), safety(a), a.sql.as_str()]);
    }
    t
}

/// `[{"pool", "safe", "sql"}…]`.
fn alters_json(alters: &[Alter]) -> serde_json::Value {
    alters
        .iter()
        .map(|a| serde_json::json!({"pool": a.pool, "safe": a.safe, "sql": a.sql}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_words_of_a_statement() {
        assert_eq!(
            first_words("CREATE TABLE \"users\" (\n  id INT)"),
            "CREATE TABLE \"users\""
        );
        assert_eq!(first_words(""), "");
    }
}
