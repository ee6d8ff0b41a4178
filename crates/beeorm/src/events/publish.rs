//! Sending events: one `XADD` per event, one pipeline per Redis pool.

use std::collections::HashMap;

use futures_util::future::try_join_all;

use super::Outgoing;
use crate::{Error, Result, ValidatedRegistry};

/// Sends `events` and returns their entry IDs in the same order: the events of one
/// Redis pool go in one pipeline (the pools concurrently), in the order given, so
/// the IDs of one stream grow in that order. Not atomic: after an error some events
/// may have been added (at-least-once: sending again may duplicate them).
pub(crate) async fn send_outgoing(
    registry: &ValidatedRegistry,
    events: Vec<Outgoing>,
) -> Result<Vec<String>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // Pool → (its client, positions in `events`).
    let mut by_pool: HashMap<&str, (crate::redis::RedisClient, Vec<usize>)> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        let def = registry
            .stream(&e.stream)
            .ok_or_else(|| Error::UnknownStream {
                stream: e.stream.clone(),
            })?;
        if e.fields.is_empty() {
            return Err(Error::InvalidArgument {
                call: format!("publish(\"{}\")", e.stream),
                reason: "an event needs at least one field".into(),
            });
        }
        match by_pool.get_mut(def.pool.as_str()) {
            Some((_, positions)) => positions.push(i),
            None => {
                let client =
                    registry
                        .redis(&def.pool)
                        .cloned()
                        .ok_or_else(|| Error::UnknownPool {
                            kind: "redis",
                            pool: def.pool.clone(),
                            used_by: format!("stream `{}`", e.stream),
                        })?;
                by_pool.insert(def.pool.as_str(), (client, vec![i]));
            }
        }
    }
    let events = &events;
    let replies = try_join_all(by_pool.into_values().map(|(client, positions)| async move {
        let mut pipe = client.pipeline();
        for &i in &positions {
            let e = &events[i];
            let mut cmd = ::redis::cmd("XADD");
            cmd.arg(&e.stream).arg("*");
            for (k, v) in &e.fields {
                cmd.arg(k).arg(v);
            }
            pipe.cmd(cmd);
        }
        let ids: Vec<String> = pipe.query().await?;
        Ok::<_, Error>((positions, ids))
    }))
    .await?;
    let mut out = vec![String::new(); events.len()];
    for (positions, ids) in replies {
        for (i, id) in positions.into_iter().zip(ids) {
            out[i] = id;
        }
    }
    Ok(out)
}
