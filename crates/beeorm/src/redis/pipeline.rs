//! [`RedisPipeline`]: many commands in one round trip, replies in order.
//!
//! On a cluster, a pipeline's commands may live on different masters. redis-rs sends a
//! whole pipeline to the node of its first key, so we split it: one sub-pipeline per
//! hash slot (a command's slot is that of its first argument after the name, the key
//! of every single-key command), sent concurrently, replies put back in the order of
//! the commands. Atomic pipelines (`MULTI`/`EXEC`) must stay in one slot.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::cluster_routing::Slot;
use ::redis::{Cmd, FromRedisValue, Pipeline, RedisError, ToRedisArgs, Value};
use futures_util::future::try_join_all;
use tracing::Instrument;

use super::connection::slot_of;
use super::RedisClient;
use crate::Result;

/// A batch of commands sent together ([`RedisClient::pipeline`]). Add commands with the
/// typed helpers or [`RedisPipeline::cmd`], then [`query`](RedisPipeline::query) (the
/// replies, as a tuple or a `Vec`) or [`exec`](RedisPipeline::exec) (replies dropped).
///
/// ```no_run
/// # async fn demo(engine: &beeorm::Engine) -> beeorm::Result<()> {
/// let redis = engine.redis("default")?;
/// let (a, b): (Option<String>, i64) = redis
///     .pipeline()
///     .set("greeting", "hello")
///     .ignore()
///     .get("greeting")
///     .incr("visits", 1)
///     .query()
///     .await?;
/// # Ok(()) }
/// ```
pub struct RedisPipeline {
    client: RedisClient,
    pipe: Pipeline,
    /// Per command: its reply is dropped.
    ignored: Vec<bool>,
}

impl std::fmt::Debug for RedisPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPipeline")
            .field("pool", &self.client.pool_name())
            .field("commands", &self.ignored.len())
            .field("atomic", &self.pipe.is_transaction())
            .finish()
    }
}

fn with_ttl(cmd: &mut Cmd, ttl: Duration) {
    cmd.arg("PX").arg(ttl.as_millis().max(1) as u64);
}

impl RedisPipeline {
    pub(crate) fn new(client: RedisClient) -> Self {
        RedisPipeline {
            client,
            pipe: Pipeline::new(),
            ignored: Vec::new(),
        }
    }

    /// Adds any command.
    pub fn cmd(&mut self, cmd: Cmd) -> &mut Self {
        self.pipe.add_command(cmd);
        self.ignored.push(false);
        self
    }

    /// Drops the reply of the command added last from the result.
    pub fn ignore(&mut self) -> &mut Self {
        if let Some(last) = self.ignored.last_mut() {
            *last = true;
        }
        self
    }

    /// Runs the commands as one transaction (`MULTI` … `EXEC`). On a cluster every key
    /// must be in one hash slot.
    pub fn atomic(&mut self) -> &mut Self {
        self.pipe.atomic();
        self
    }

    /// The number of commands.
    pub fn len(&self) -> usize {
        self.ignored.len()
    }

    /// Whether no command was added.
    pub fn is_empty(&self) -> bool {
        self.ignored.is_empty()
    }

    /// `SET key value`.
    pub fn set<K: ToRedisArgs, V: ToRedisArgs>(&mut self, key: K, value: V) -> &mut Self {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(key).arg(value);
        self.cmd(cmd)
    }

    /// `SET key value PX ttl`.
    pub fn set_ex<K: ToRedisArgs, V: ToRedisArgs>(
        &mut self,
        key: K,
        value: V,
        ttl: Duration,
    ) -> &mut Self {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(key).arg(value);
        with_ttl(&mut cmd, ttl);
        self.cmd(cmd)
    }

    /// `GET key`.
    pub fn get<K: ToRedisArgs>(&mut self, key: K) -> &mut Self {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(key);
        self.cmd(cmd)
    }

    /// `DEL key`.
    pub fn del<K: ToRedisArgs>(&mut self, key: K) -> &mut Self {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(key);
        self.cmd(cmd)
    }

    /// `INCRBY key by`.
    pub fn incr<K: ToRedisArgs>(&mut self, key: K, by: i64) -> &mut Self {
        let mut cmd = ::redis::cmd("INCRBY");
        cmd.arg(key).arg(by);
        self.cmd(cmd)
    }

    /// `PEXPIRE key ttl`.
    pub fn expire<K: ToRedisArgs>(&mut self, key: K, ttl: Duration) -> &mut Self {
        let mut cmd = ::redis::cmd("PEXPIRE");
        cmd.arg(key).arg(ttl.as_millis() as u64);
        self.cmd(cmd)
    }

    /// `HSET key field value`.
    pub fn hset<K: ToRedisArgs, F: ToRedisArgs, V: ToRedisArgs>(
        &mut self,
        key: K,
        field: F,
        value: V,
    ) -> &mut Self {
        let mut cmd = ::redis::cmd("HSET");
        cmd.arg(key).arg(field).arg(value);
        self.cmd(cmd)
    }

    /// `HGET key field`.
    pub fn hget<K: ToRedisArgs, F: ToRedisArgs>(&mut self, key: K, field: F) -> &mut Self {
        let mut cmd = ::redis::cmd("HGET");
        cmd.arg(key).arg(field);
        self.cmd(cmd)
    }

    /// `RPUSH key values…`.
    pub fn rpush<K: ToRedisArgs, V: ToRedisArgs>(&mut self, key: K, values: V) -> &mut Self {
        let mut cmd = ::redis::cmd("RPUSH");
        cmd.arg(key).arg(values);
        self.cmd(cmd)
    }

    /// `SADD key members…`.
    pub fn sadd<K: ToRedisArgs, M: ToRedisArgs>(&mut self, key: K, members: M) -> &mut Self {
        let mut cmd = ::redis::cmd("SADD");
        cmd.arg(key).arg(members);
        self.cmd(cmd)
    }

    /// `ZADD key score member`.
    pub fn zadd<K: ToRedisArgs, M: ToRedisArgs>(
        &mut self,
        key: K,
        member: M,
        score: f64,
    ) -> &mut Self {
        let mut cmd = ::redis::cmd("ZADD");
        cmd.arg(key).arg(score).arg(member);
        self.cmd(cmd)
    }

    /// Sends the commands and converts the replies (ignored ones left out) as one
    /// array: into a tuple, a `Vec`, or `()`.
    pub async fn query<T: FromRedisValue>(&self) -> Result<T> {
        let values = self.replies().await?;
        let kept: Vec<Value> = values
            .into_iter()
            .zip(&self.ignored)
            .filter(|(_, ignored)| !**ignored)
            .map(|(v, _)| v)
            .collect();
        self.client.convert("PIPELINE", Value::Array(kept))
    }

    /// Sends the commands; fails if any of them failed.
    pub async fn exec(&self) -> Result<()> {
        self.replies().await.map(drop)
    }

    /// Every command's reply, in order.
    async fn replies(&self) -> Result<Vec<Value>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let span = tracing::debug_span!(
            "redis",
            pool = %self.client.pool_name(),
            command = "PIPELINE",
            commands = self.len()
        );
        async move {
            let start = std::time::Instant::now();
            let result = if self.client.is_cluster() && !self.pipe.is_transaction() {
                self.per_slot().await
            } else {
                self.client.pool.backend.exec_pipeline(&self.pipe).await
            };
            let micros = start.elapsed().as_micros() as u64;
            match &result {
                Ok(_) => tracing::debug!(duration_us = micros, "command done"),
                Err(e) => tracing::warn!(duration_us = micros, error = %e, "command failed"),
            }
            result.map_err(|e| self.client.error("PIPELINE", e))
        }
        .instrument(span)
        .await
    }

    /// Cluster: one sub-pipeline per hash slot, concurrently; replies back in order.
    async fn per_slot(&self) -> std::result::Result<Vec<Value>, RedisError> {
        let mut groups: Vec<(Option<Slot>, Pipeline, Vec<usize>)> = Vec::new();
        let mut by_slot: HashMap<Option<Slot>, usize> = HashMap::new();
        for (i, cmd) in self.pipe.cmd_iter().enumerate() {
            let slot = match cmd.args_iter().nth(1) {
                Some(::redis::Arg::Simple(key)) => Some(slot_of(key)),
                _ => None,
            };
            let group = *by_slot.entry(slot).or_insert_with(|| {
                groups.push((slot, Pipeline::new(), Vec::new()));
                groups.len() - 1
            });
            groups[group].1.add_command(cmd.clone());
            groups[group].2.push(i);
        }
        let backend = &self.client.pool.backend;
        let replies = try_join_all(
            groups
                .into_iter()
                .map(|(slot, pipe, positions)| async move {
                    let values = backend.exec_slot_pipeline(pipe, slot).await?;
                    Ok::<_, RedisError>((positions, values))
                }),
        )
        .await?;
        let mut out = vec![Value::Nil; self.len()];
        for (positions, values) in replies {
            for (pos, value) in positions.into_iter().zip(values) {
                if let Value::ServerError(e) = value {
                    return Err(e.into());
                }
                out[pos] = value;
            }
        }
        Ok(out)
    }
}

impl From<RedisPipeline> for Pipeline {
    /// The redis-rs pipeline (for [`RedisConnection`](super::RedisConnection)).
    fn from(p: RedisPipeline) -> Pipeline {
        p.pipe
    }
}
