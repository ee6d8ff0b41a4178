//! Stand-in for the Redis toolkit when the cargo feature `redis` is off.
//!
//! The registry keeps accepting Redis pools and lockers (from code or YAML), so one
//! configuration serves every build; `validate()` then refuses them with a typed
//! configuration error naming the feature, instead of the build failing far from the
//! configuration or the pool silently missing. Nothing here can be constructed at
//! run time: the client and locker types are uninhabited.

use std::collections::HashMap;
use std::time::Duration;

use crate::{Error, Result};

/// How a Redis pool connects (kept for the error message only).
#[derive(Debug, Clone)]
#[allow(dead_code)] // Fields are read only by the real toolkit.
pub(crate) enum RedisConfig {
    /// One server.
    Server { address: String, db: u32 },
    /// A master watched by Sentinels.
    Sentinel {
        master: String,
        sentinels: Vec<String>,
        db: u32,
    },
    /// A Redis Cluster.
    Cluster { nodes: Vec<String> },
}

/// How long a Redis pool waits (kept for the error message only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // Fields are read only by the real toolkit.
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) response: Duration,
}

/// No Redis client exists in this build.
#[derive(Debug, Clone)]
pub(crate) enum RedisClient {}

impl RedisClient {
    /// Never called: no value of this type exists.
    pub(crate) fn pool_name(&self) -> &str {
        match *self {}
    }
}

/// No locker exists in this build.
#[derive(Debug, Clone)]
pub(crate) enum Locker {}

/// Refuses any registered Redis pool, Redis timeout or locker.
pub(crate) fn open_pools(
    pools: &[(String, RedisConfig)],
    lockers: &[(String, String)],
    timeouts: &[(String, Timeouts)],
) -> Result<(HashMap<String, RedisClient>, HashMap<String, Locker>)> {
    let what = pools
        .first()
        .map(|(name, _)| format!("Redis pool `{name}`"))
        .or_else(|| lockers.first().map(|(name, _)| format!("locker `{name}`")))
        .or_else(|| {
            timeouts
                .first()
                .map(|(name, _)| format!("Redis timeouts of pool `{name}`"))
        });
    match what {
        Some(what) => Err(Error::config(format!(
            "{what} needs the Redis toolkit, which this build of beeorm leaves out: enable the cargo feature `redis`"
        ))),
        None => Ok((HashMap::new(), HashMap::new())),
    }
}

/// Refuses any registered Redis stream: the event broker is part of the Redis toolkit.
pub(crate) fn refuse_streams(streams: &[(String, String, Vec<String>)]) -> Result<()> {
    match streams.first() {
        Some((name, _, _)) => Err(Error::config(format!(
            "Redis stream `{name}` needs the event broker, which this build of beeorm leaves out: enable the cargo feature `redis`"
        ))),
        None => Ok(()),
    }
}
