//! `replicas`: the read replicas of every relational pool, checked now — health,
//! whether reads go to them, lag and why not. Exit code 4 when one is out of
//! rotation (for monitoring scripts).

use std::io::Write;

use beeorm::ValidatedRegistry;

use crate::error::{CliError, EXIT_OK, EXIT_REPLICA_OUT};
use crate::render::table;

/// Runs `replicas [--json]`.
pub(crate) async fn run(
    registry: &ValidatedRegistry,
    json: bool,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    let sets = registry.check_replicas().await;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_value(&sets).map_err(std::io::Error::other)?
        )?;
    } else if sets.is_empty() {
        writeln!(
            out,
            "No relational pool has read replicas (Registry::register_replica, or `replicas:` in the YAML)."
        )?;
    } else {
        let mut t = table([
            "pool",
            "replica",
            "address",
            "weight",
            "health",
            "in rotation",
            "lag",
            "detail",
        ]);
        for set in &sets {
            for r in &set.replicas {
                t.add_row([
                    set.pool.clone(),
                    r.name.clone(),
                    r.address.clone(),
                    r.weight.to_string(),
                    r.health.name().to_string(),
                    if r.in_rotation { "yes" } else { "no" }.to_string(),
                    r.lag_ms
                        .map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0)),
                    r.detail.clone().unwrap_or_default(),
                ]);
            }
        }
        writeln!(out, "{t}")?;
    }
    let out_of_rotation = sets
        .iter()
        .flat_map(|s| &s.replicas)
        .any(|r| !r.in_rotation);
    Ok(if out_of_rotation {
        EXIT_REPLICA_OUT
    } else {
        EXIT_OK
    })
}
