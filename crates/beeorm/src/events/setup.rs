//! The registry's part: checking the declared streams and creating their consumer
//! groups at `Registry::validate`.

use std::collections::{BTreeMap, HashMap};

use super::StreamDef;
use crate::redis::RedisClient;
use crate::{Error, Result};

/// Checks the declared streams (`(stream, pool, groups)`, in registration order) and
/// merges the groups of a stream registered more than once in the same pool.
pub(crate) fn check_streams(
    declared: &[(String, String, Vec<String>)],
    redis: &HashMap<String, RedisClient>,
) -> Result<BTreeMap<String, StreamDef>> {
    let mut out: BTreeMap<String, StreamDef> = BTreeMap::new();
    for (name, pool, groups) in declared {
        if name.is_empty() {
            return Err(Error::config(format!(
                "a Redis stream of pool `{pool}` has an empty name"
            )));
        }
        if !redis.contains_key(pool) {
            return Err(Error::UnknownPool {
                kind: "redis",
                pool: pool.clone(),
                used_by: format!("stream `{name}`"),
            });
        }
        if groups.is_empty() {
            return Err(Error::config(format!(
                "Redis stream `{name}` needs at least one consumer group (events are trimmed once every group has them)"
            )));
        }
        if groups.iter().any(String::is_empty) {
            return Err(Error::config(format!(
                "Redis stream `{name}` has a consumer group with an empty name"
            )));
        }
        let def = out.entry(name.clone()).or_insert_with(|| StreamDef {
            name: name.clone(),
            pool: pool.clone(),
            groups: Vec::new(),
        });
        if def.pool != *pool {
            return Err(Error::config(format!(
                "Redis stream `{name}` is registered in two Redis pools: `{}` and `{pool}`",
                def.pool
            )));
        }
        for g in groups {
            if !def.groups.contains(g) {
                def.groups.push(g.clone());
            }
        }
    }
    Ok(out)
}

/// Creates every stream and consumer group that does not exist yet
/// (`XGROUP CREATE <stream> <group> 0 MKSTREAM`; `BUSYGROUP`, the group exists, is
/// fine). A group new to a stream that already has entries starts at ID `0`: it sees
/// every event still in the stream.
pub(crate) async fn create_groups(
    streams: &BTreeMap<String, StreamDef>,
    redis: &HashMap<String, RedisClient>,
) -> Result<()> {
    for def in streams.values() {
        let Some(client) = redis.get(&def.pool) else {
            continue; // checked by `check_streams`
        };
        for group in &def.groups {
            let mut cmd = ::redis::cmd("XGROUP");
            cmd.arg("CREATE")
                .arg(&def.name)
                .arg(group)
                .arg("0")
                .arg("MKSTREAM");
            match client.run::<::redis::Value>("XGROUP", cmd).await {
                Ok(_) => {}
                Err(Error::Redis { source, .. }) if source.code() == Some("BUSYGROUP") => {}
                Err(e) => {
                    return Err(Error::StreamSetup {
                        stream: def.name.clone(),
                        group: group.clone(),
                        pool: def.pool.clone(),
                        source: Box::new(e),
                    })
                }
            }
        }
    }
    Ok(())
}
