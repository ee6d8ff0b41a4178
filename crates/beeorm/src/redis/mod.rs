#![doc = include_str!("../../docs/redis.md")]

mod commands;
mod connection;
mod get_set;
mod lock;
mod pipeline;
mod rate_limit;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ::redis::{Cmd, FromRedisValue, Value};
use tracing::Instrument;

pub use commands::KeyTtl;
pub use connection::RedisConnection;
#[allow(unused_imports)]
pub(crate) use lock::{refresh_script, release_script, token};
pub use lock::{Lock, Locker};
pub use pipeline::RedisPipeline;
pub use rate_limit::{Limit, RateLimit};

/// The redis-rs crate this module is built on (`redis` 1.x), re-exported so that the
/// escape hatch ([`RedisClient::connection`], [`RedisClient::query`]) needs no second
/// dependency that could drift to another version.
pub use ::redis as driver;

use crate::{Error, Result};
use connection::Backend;
pub(crate) use connection::{RedisConfig, Timeouts};

/// Opens (lazily) every registered Redis pool and locker; checks that pool names are
/// unique and that every locker names a registered Redis pool.
pub(crate) fn open_pools(
    pools: &[(String, RedisConfig)],
    lockers: &[(String, String)],
    timeouts: &[(String, Timeouts)],
) -> Result<(HashMap<String, RedisClient>, HashMap<String, Locker>)> {
    for (name, t) in timeouts {
        if !pools.iter().any(|(p, _)| p == name) {
            return Err(Error::UnknownPool {
                kind: "redis",
                pool: name.clone(),
                used_by: "set_redis_timeouts".into(),
            });
        }
        if t.connect.is_zero() || t.response.is_zero() {
            return Err(Error::config(format!(
                "Redis pool `{name}`: timeouts must be above zero (connect {:?}, response {:?})",
                t.connect, t.response
            )));
        }
    }
    let mut clients: HashMap<String, RedisClient> = HashMap::new();
    for (name, config) in pools {
        if clients.contains_key(name) {
            return Err(Error::config(format!(
                "Redis pool `{name}` is registered twice"
            )));
        }
        let t = timeouts
            .iter()
            .rev()
            .find(|(p, _)| p == name)
            .map_or_else(Timeouts::default, |(_, t)| *t);
        clients.insert(name.clone(), RedisClient::open(name, config, t)?);
    }
    let mut out: HashMap<String, Locker> = HashMap::new();
    for (name, pool) in lockers {
        let client = clients.get(pool).ok_or_else(|| Error::UnknownPool {
            kind: "redis",
            pool: pool.clone(),
            used_by: format!("locker `{name}`"),
        })?;
        if out
            .insert(name.clone(), Locker::new(name, client.clone()))
            .is_some()
        {
            return Err(Error::config(format!(
                "locker `{name}` is registered twice"
            )));
        }
    }
    Ok((clients, out))
}

/// One registered Redis pool: its name, how to reach it, and the in-process state
/// shared by every [`RedisClient`] of the pool.
pub(crate) struct RedisPool {
    name: String,
    backend: Backend,
    /// `get_set` misses in flight, so that concurrent callers of one key wait for one
    /// provider call instead of each calling it.
    inflight: get_set::KeyedLocks,
}

/// The client of one Redis pool: typed async commands, pipelines, Lua scripts,
/// [`get_set`](RedisClient::get_set), the [rate limiter](RedisClient::rate_limit), and
/// the underlying redis-rs connection for anything else. Get it with
/// [`Engine::redis`](crate::Engine::redis); cloning is an `Arc` clone.
///
/// Every call is traced: a `redis` span at debug level with the pool and the command
/// name (never keys or values), and a debug event with `duration_us` (a warning when
/// the command fails).
#[derive(Clone)]
pub struct RedisClient {
    pool: Arc<RedisPool>,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("pool", &self.pool.name)
            .field("kind", &self.pool.backend.kind())
            .finish()
    }
}

impl RedisClient {
    /// Builds the pool: parses addresses, connects nothing (the first command does).
    pub(crate) fn open(
        name: &str,
        config: &RedisConfig,
        timeouts: Timeouts,
    ) -> Result<RedisClient> {
        Ok(RedisClient {
            pool: Arc::new(RedisPool {
                name: name.to_string(),
                backend: Backend::new(name, config, timeouts)?,
                inflight: get_set::KeyedLocks::default(),
            }),
        })
    }

    /// The pool's name.
    pub fn pool_name(&self) -> &str {
        &self.pool.name
    }

    /// Whether the pool is a Redis Cluster (multi-key commands and pipelines then need
    /// keys of one hash slot, see the module docs).
    pub fn is_cluster(&self) -> bool {
        matches!(self.pool.backend, Backend::Cluster(_))
    }

    /// The underlying redis-rs connection, for commands this client has no method for
    /// (use `redis::AsyncCommands` from [`driver`] on it). It is a clone of the pool's
    /// multiplexed connection: cheap, and safe to use from many tasks. Commands sent
    /// through it are not traced, and on a Sentinel pool it stays on the master it was
    /// taken from: take a new one after a failover.
    pub async fn connection(&self) -> Result<RedisConnection> {
        self.pool
            .backend
            .connection()
            .await
            .map_err(|source| self.error("CONNECT", source))
    }

    /// Runs any command, traced, and converts the reply:
    /// `client.query::<i64>(&driver::cmd("INCRBY").arg("k").arg(2))`.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        let name = command_name(cmd);
        let value = self.exec(name, cmd).await?;
        self.convert(name, value)
    }

    /// Sends one command and returns the raw reply, traced (failures are warnings,
    /// except the refusals beeorm's own callers expect: see [`expected_refusal`]).
    pub(crate) async fn exec(&self, name: &str, cmd: &Cmd) -> Result<Value> {
        let span = tracing::debug_span!("redis", pool = %self.pool.name, command = %name);
        async move {
            let start = Instant::now();
            let result = self.pool.backend.exec(cmd).await;
            let micros = start.elapsed().as_micros() as u64;
            match &result {
                Ok(_) => tracing::debug!(duration_us = micros, "command done"),
                Err(e) if expected_refusal(e) => {
                    tracing::debug!(duration_us = micros, error = %e, "command refused, as its caller expects")
                }
                Err(e) => tracing::warn!(duration_us = micros, error = %e, "command failed"),
            }
            result.map_err(|source| self.error(name, source))
        }
        .instrument(span)
        .await
    }

    /// Builds a command, sends it, converts the reply.
    pub(crate) async fn run<T: FromRedisValue>(&self, name: &str, cmd: Cmd) -> Result<T> {
        let value = self.exec(name, &cmd).await?;
        self.convert(name, value)
    }

    pub(crate) fn convert<T: FromRedisValue>(&self, name: &str, value: Value) -> Result<T> {
        T::from_redis_value(value).map_err(|e| self.error(name, e.into()))
    }

    pub(crate) fn error(&self, command: &str, source: ::redis::RedisError) -> Error {
        Error::Redis {
            pool: self.pool.name.clone(),
            command: command.to_string(),
            source,
        }
    }

    /// The masters of a cluster pool as `(host, port)`, sorted (`CLUSTER SLOTS`);
    /// `None` for a pool that is not a cluster.
    pub async fn cluster_masters(&self) -> Result<Option<Vec<(String, u16)>>> {
        if !self.is_cluster() {
            return Ok(None);
        }
        let mut c = ::redis::cmd("CLUSTER");
        c.arg("SLOTS");
        let value: Value = self.run("CLUSTER", c).await?;
        let mut masters: Vec<(String, u16)> = Vec::new();
        let Value::Array(ranges) = value else {
            return Ok(Some(masters));
        };
        for range in ranges {
            let Value::Array(items) = range else { continue };
            let Some(Value::Array(node)) = items.get(2) else {
                continue;
            };
            let host = node
                .first()
                .and_then(|v| String::from_redis_value_ref(v).ok());
            let port = node.get(1).and_then(|v| u16::from_redis_value_ref(v).ok());
            if let (Some(host), Some(port)) = (host, port) {
                if !masters.iter().any(|(h, p)| *h == host && *p == port) {
                    masters.push((host, port));
                }
            }
        }
        masters.sort();
        Ok(Some(masters))
    }

    /// Sends a command to one node of a cluster, traced.
    pub(crate) async fn route_to(&self, cmd: Cmd, host: &str, port: u16) -> Result<Value> {
        let name = command_name(&cmd).to_string();
        let span = tracing::debug_span!("redis", pool = %self.pool.name, command = %name);
        async move {
            let start = Instant::now();
            let result = self.pool.backend.exec_on(cmd, host, port).await;
            let micros = start.elapsed().as_micros() as u64;
            match &result {
                Ok(_) => tracing::debug!(duration_us = micros, "command done"),
                Err(e) => tracing::warn!(duration_us = micros, error = %e, "command failed"),
            }
            result.map_err(|source| self.error(&name, source))
        }
        .instrument(span)
        .await
    }

    /// A connection of its own for blocking commands (see `Backend::dedicated`).
    pub(crate) async fn dedicated(&self) -> Result<RedisConnection> {
        self.pool
            .backend
            .dedicated()
            .await
            .map_err(|source| self.error("CONNECT", source))
    }

    /// How long the pool waits for a reply.
    pub(crate) fn response_timeout(&self) -> std::time::Duration {
        self.pool.backend.response_timeout()
    }

    /// A new subscriber connection (single-server pools only; `None` otherwise).
    pub(crate) async fn pubsub(&self) -> Result<Option<::redis::aio::PubSub>> {
        self.pool
            .backend
            .pubsub()
            .await
            .map_err(|source| self.error("SUBSCRIBE", source))
    }

    /// `PING`: checks that the server answers.
    pub async fn ping(&self) -> Result<()> {
        let _: String = self.run("PING", ::redis::cmd("PING")).await?;
        Ok(())
    }

    /// A new, empty pipeline on this pool: commands sent together, replies in order.
    pub fn pipeline(&self) -> RedisPipeline {
        RedisPipeline::new(self.clone())
    }

    /// Runs a Lua script with its keys and arguments (each a single value, a slice or
    /// a `Vec`): `EVALSHA`, and `EVAL` once when the server does not know the script
    /// yet (a fresh server, a failover, another cluster node). On a cluster every key
    /// must be in one hash slot.
    pub async fn eval<T, K, A>(&self, script: &Script, keys: K, args: A) -> Result<T>
    where
        T: FromRedisValue,
        K: ::redis::ToRedisArgs,
        A: ::redis::ToRedisArgs,
    {
        let keys = keys.to_redis_args();
        let args = args.to_redis_args();
        let build = |verb: &str, body: &str| {
            let mut cmd = ::redis::cmd(verb);
            cmd.arg(body).arg(keys.len()).arg(&keys).arg(&args);
            cmd
        };
        match self.exec("EVALSHA", &build("EVALSHA", &script.hash)).await {
            Err(Error::Redis { source, .. })
                if source.kind()
                    == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript) =>
            {
                let value = self.exec("EVAL", &build("EVAL", &script.code)).await?;
                self.convert("EVAL", value)
            }
            Err(e) => Err(e),
            Ok(value) => self.convert("EVALSHA", value),
        }
    }
}

/// A Lua script with its SHA1 computed once, for [`RedisClient::eval`].
#[derive(Debug, Clone)]
pub struct Script {
    code: Arc<str>,
    hash: String,
}

impl Script {
    /// A script from its Lua source.
    pub fn new(code: &str) -> Script {
        Script {
            hash: ::redis::Script::new(code).get_hash().to_string(),
            code: code.into(),
        }
    }

    /// The SHA1 of the source, as `EVALSHA` takes it.
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// The command's name (its first argument) without allocating.
pub(crate) fn command_name(cmd: &Cmd) -> &str {
    match cmd.args_iter().next() {
        Some(::redis::Arg::Simple(bytes)) => std::str::from_utf8(bytes).unwrap_or("?"),
        _ => "?",
    }
}

/// A refusal beeorm's callers treat as an answer, not a failure: `BUSYGROUP` (creating
/// a consumer group that exists, at every `validate`) and `no such key` (the statistics
/// of a stream deleted since). Logged at debug, not as warnings.
fn expected_refusal(e: &::redis::RedisError) -> bool {
    e.code() == Some("BUSYGROUP") || e.detail().is_some_and(|d| d.contains("no such key"))
}
