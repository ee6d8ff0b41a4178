//! Output shared by the commands: tables, ages, confirmations.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use crate::error::CliError;

/// A table in the command's one style, with `header`.
pub(crate) fn table<const N: usize>(header: [&str; N]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::ASCII_FULL_CONDENSED)
        .set_header(header);
    t
}

/// Seconds of an age, for display; `-` when unknown.
pub(crate) fn age(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), |d| format!("{:.1}s", d.as_secs_f64()))
}

/// Milliseconds of an age, for JSON; `null` when unknown.
pub(crate) fn age_ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| d.as_millis() as u64)
}

/// A ratio as a percentage with one decimal, `-` when nothing was asked.
pub(crate) fn percent(hits: u64, misses: u64) -> String {
    let asked = hits + misses;
    if asked == 0 {
        "-".into()
    } else {
        format!("{:.1}%", hits as f64 * 100.0 / asked as f64)
    }
}

/// Asks `question [y/N]` on the terminal, unless `yes`. Refuses (with
/// [`CliError::NotConfirmed`]) when stdin is not a terminal and `yes` was not given:
/// a script must say `--yes` to destroy anything.
pub(crate) fn confirm(yes: bool, question: &str, what: &str) -> Result<(), CliError> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::NotConfirmed(format!(
            "{what} (stdin is not a terminal: pass --yes to confirm)"
        )));
    }
    let mut stderr = std::io::stderr();
    write!(stderr, "{question} [y/N] ")?;
    stderr.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(CliError::NotConfirmed(what.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_ratios() {
        assert_eq!(age(None), "-");
        assert_eq!(age(Some(Duration::from_millis(1500))), "1.5s");
        assert_eq!(age_ms(Some(Duration::from_millis(1500))), Some(1500));
        assert_eq!(percent(0, 0), "-");
        assert_eq!(percent(3, 1), "75.0%");
    }

    #[test]
    fn yes_skips_the_question() {
        assert!(confirm(true, "Really?", "x").is_ok());
    }
}
