//! `cache`: hit ratios of the entity caches, summed over every process that
//! published them; `cache clear <Entity>`.

use std::io::Write;

use beeorm::{Engine, EntityCacheStats, LayerStats};

use crate::args::CacheCommand;
use crate::error::{CliError, EXIT_OK};
use crate::render::{confirm, percent, table};

/// Runs `cache [--json]` or `cache clear`.
pub(crate) async fn run(
    engine: &Engine,
    command: Option<&CacheCommand>,
    json: bool,
    out: &mut (dyn Write + Send),
) -> Result<i32, CliError> {
    match command {
        None => {
            let stats = engine
                .published_cache_stats()
                .await
                .map_err(CliError::op("cannot read the cache statistics"))?;
            if json {
                let v: serde_json::Value = stats.entities.iter().map(entity_json).collect();
                writeln!(out, "{v}")?;
            } else if stats.entities.is_empty() {
                writeln!(
                    out,
                    "No cached entity with a Redis pool is registered in this binary (the \
                     stand-alone `beeorm` knows no entities; run your application's binary)."
                )?;
            } else {
                writeln!(out, "{}", stats_table(&stats.entities))?;
                writeln!(
                    out,
                    "Counters of every process since the hashes were created; each process \
                     publishes every 10 s by default (Registry::set_cache_stats_interval)."
                )?;
            }
        }
        Some(CacheCommand::Clear { entity, yes }) => {
            let op = CliError::op("cannot clear the cache");
            let n = engine.count_cached_rows(entity).await.map_err(&op)?;
            confirm(
                *yes,
                &format!(
                    "Clear {n} cached row(s) of entity {entity} from Redis, and every \
                     process's local cache?"
                ),
                &format!("clearing the cache of {entity}"),
            )?;
            let deleted = engine.clear_cached_entity(entity).await.map_err(&op)?;
            writeln!(
                out,
                "Cleared entity {entity}: {deleted} Redis key(s) deleted, local caches told."
            )?;
        }
    }
    Ok(EXIT_OK)
}

fn stats_table(entities: &[EntityCacheStats]) -> comfy_table::Table {
    let mut t = table([
        "entity",
        "request hit",
        "local hit",
        "redis hit",
        "local hits/misses",
        "redis hits/misses",
        "database loads",
        "invalidations",
    ]);
    for e in entities {
        let ratio = |l: &LayerStats| percent(l.hits, l.misses);
        let pair = |l: &LayerStats| format!("{}/{}", l.hits, l.misses);
        t.add_row([
            e.entity.clone(),
            ratio(&e.request),
            ratio(&e.local),
            ratio(&e.redis),
            pair(&e.local),
            pair(&e.redis),
            e.database_loads.to_string(),
            (e.local.invalidations + e.redis.invalidations).to_string(),
        ]);
    }
    t
}

fn layer_json(l: &LayerStats) -> serde_json::Value {
    serde_json::json!({
        "hits": l.hits,
        "misses": l.misses,
        "fills": l.fills,
        "invalidations": l.invalidations,
        "hit_ratio": l.hit_ratio(),
    })
}

fn entity_json(e: &EntityCacheStats) -> serde_json::Value {
    serde_json::json!({
        "entity": e.entity,
        "request": layer_json(&e.request),
        "local": layer_json(&e.local),
        "redis": layer_json(&e.redis),
        "database_loads": e.database_loads,
        "waits": e.waits,
    })
}
