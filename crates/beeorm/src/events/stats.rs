//! Statistics of streams and groups (F5), from `XLEN`, `XRANGE`, `XINFO GROUPS` and
//! `XPENDING`. Ages are measured from the entry IDs' milliseconds against this
//! host's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::Value;

use super::{GroupStats, StreamDef, StreamStats};
use crate::redis::RedisClient;
use crate::{Error, Result};

/// The milliseconds part of an entry ID.
fn id_millis(id: &str) -> Option<u64> {
    id.split_once('-').and_then(|(ms, _)| ms.parse().ok())
}

/// How long ago the entry `id` was added.
fn age_of(id: &str) -> Option<Duration> {
    let ms = id_millis(id)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    Some(Duration::from_millis(now.saturating_sub(ms)))
}

/// A reply value as text (bulk or simple string), if it is one.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

/// `XINFO GROUPS` as `(field, value)` lists, one per group (RESP2 flat arrays or
/// RESP3 maps).
fn groups_info(v: Value) -> Vec<Vec<(String, Value)>> {
    let Value::Array(groups) = v else {
        return Vec::new();
    };
    groups
        .into_iter()
        .map(|g| match g {
            Value::Array(items) => {
                let mut out = Vec::new();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let Some(k) = text(&k) {
                        out.push((k, v));
                    }
                }
                out
            }
            Value::Map(pairs) => pairs
                .into_iter()
                .filter_map(|(k, v)| text(&k).map(|k| (k, v)))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn get<'a>(info: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    info.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The statistics of one stream: its registered groups first (in registration
/// order), then any other group Redis knows for it (they hold trimming back too).
pub(crate) async fn stream_stats(client: &RedisClient, def: &StreamDef) -> Result<StreamStats> {
    let mut len = ::redis::cmd("XLEN");
    len.arg(&def.name);
    let length: u64 = client.run("XLEN", len).await?;
    let mut first = ::redis::cmd("XRANGE");
    first.arg(&def.name).arg("-").arg("+").arg("COUNT").arg(1);
    let first: Vec<(String, Value)> = client.run("XRANGE", first).await?;
    let oldest_age = first.first().and_then(|(id, _)| age_of(id));
    let mut info = ::redis::cmd("XINFO");
    info.arg("GROUPS").arg(&def.name);
    let groups = match client.run::<Value>("XINFO", info).await {
        Ok(v) => groups_info(v),
        // The stream was deleted since validate: no groups.
        Err(Error::Redis { source, .. })
            if source.detail().is_some_and(|d| d.contains("no such key")) =>
        {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let mut named: Vec<(String, &Vec<(String, Value)>)> = groups
        .iter()
        .filter_map(|g| get(g, "name").and_then(text).map(|n| (n, g)))
        .collect();
    named.sort_by_key(|(n, _)| def.groups.iter().position(|g| g == n).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(named.len());
    for (name, g) in named {
        let pending = get(g, "pending").and_then(number).unwrap_or(0);
        let oldest_pending_age = if pending > 0 {
            let mut p = ::redis::cmd("XPENDING");
            p.arg(&def.name).arg(&name);
            match client.run::<Value>("XPENDING", p).await? {
                Value::Array(items) => items.get(1).and_then(text).and_then(|id| age_of(&id)),
                _ => None,
            }
        } else {
            None
        };
        out.push(GroupStats {
            consumers: get(g, "consumers").and_then(number).unwrap_or(0),
            lag: get(g, "lag").and_then(number),
            group: name,
            pending,
            oldest_pending_age,
        });
    }
    Ok(StreamStats {
        stream: def.name.clone(),
        pool: def.pool.clone(),
        length,
        oldest_age,
        groups: out,
    })
}
