//! The common command families as typed methods of [`RedisClient`]: strings, keys and
//! TTLs, hashes, lists, sets, sorted sets. Keys, fields, members and values take
//! anything redis-rs can send (`&str`, `String`, numbers, byte slices, and slices or
//! `Vec`s of them where a command takes many); replies convert to the type asked for.
//! Anything else: [`RedisClient::query`] or [`RedisClient::connection`].

use std::collections::HashMap;
use std::time::Duration;

use ::redis::{cmd, FromRedisValue, ToRedisArgs};

use super::RedisClient;
use crate::Result;

/// The time to live of a key ([`RedisClient::ttl`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

fn millis(ttl: Duration) -> u64 {
    // Redis refuses PX 0; the shortest TTL it takes is 1 ms.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisClient {
    // ------------------------------------------------------------ strings

    /// `GET key`: `None` when the key is missing.
    pub async fn get<K: ToRedisArgs, V: FromRedisValue>(&self, key: K) -> Result<Option<V>> {
        let mut c = cmd("GET");
        c.arg(key);
        self.run("GET", c).await
    }

    /// `MGET keys…`: one entry per key, `None` where missing.
    pub async fn mget<K: ToRedisArgs, V: FromRedisValue>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<V>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = cmd("MGET");
        c.arg(keys);
        self.run("MGET", c).await
    }

    /// `SET key value` (no expiry).
    pub async fn set<K: ToRedisArgs, V: ToRedisArgs>(&self, key: K, value: V) -> Result<()> {
        let mut c = cmd("SET");
        c.arg(key).arg(value);
        self.run("SET", c).await
    }

    /// `SET key value PX ttl`.
    pub async fn set_ex<K: ToRedisArgs, V: ToRedisArgs>(
        &self,
        key: K,
        value: V,
        ttl: Duration,
    ) -> Result<()> {
        let mut c = cmd("SET");
        c.arg(key).arg(value).arg("PX").arg(millis(ttl));
        self.run("SET", c).await
    }

    /// `SET key value NX [PX ttl]`: whether the key was set (it did not exist).
    pub async fn set_nx<K: ToRedisArgs, V: ToRedisArgs>(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        let mut c = cmd("SET");
        c.arg(key).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            c.arg("PX").arg(millis(ttl));
        }
        let reply: Option<String> = self.run("SET", c).await?;
        Ok(reply.is_some())
    }

    /// `MSET key value …`.
    pub async fn mset<K: ToRedisArgs, V: ToRedisArgs>(&self, items: &[(K, V)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut c = cmd("MSET");
        for (k, v) in items {
            c.arg(k).arg(v);
        }
        self.run("MSET", c).await
    }

    /// `INCRBY key by`: the new value.
    pub async fn incr<K: ToRedisArgs>(&self, key: K, by: i64) -> Result<i64> {
        let mut c = cmd("INCRBY");
        c.arg(key).arg(by);
        self.run("INCRBY", c).await
    }

    // ------------------------------------------------------------ keys, TTL

    /// `DEL keys…`: how many existed. Takes one key, a slice or a `Vec`.
    pub async fn del<K: ToRedisArgs>(&self, keys: K) -> Result<u64> {
        let mut c = cmd("DEL");
        c.arg(keys);
        self.run("DEL", c).await
    }

    /// `EXISTS key`.
    pub async fn exists<K: ToRedisArgs>(&self, key: K) -> Result<bool> {
        let mut c = cmd("EXISTS");
        c.arg(key);
        self.run("EXISTS", c).await
    }

    /// `PEXPIRE key ttl`: whether the key exists (and now expires).
    pub async fn expire<K: ToRedisArgs>(&self, key: K, ttl: Duration) -> Result<bool> {
        let mut c = cmd("PEXPIRE");
        c.arg(key).arg(millis(ttl));
        self.run("PEXPIRE", c).await
    }

    /// `PERSIST key`: whether an expiry was removed.
    pub async fn persist<K: ToRedisArgs>(&self, key: K) -> Result<bool> {
        let mut c = cmd("PERSIST");
        c.arg(key);
        self.run("PERSIST", c).await
    }

    /// `PTTL key`.
    pub async fn ttl<K: ToRedisArgs>(&self, key: K) -> Result<KeyTtl> {
        let mut c = cmd("PTTL");
        c.arg(key);
        let ms: i64 = self.run("PTTL", c).await?;
        Ok(match ms {
            -2 => KeyTtl::Missing,
            ms if ms < 0 => KeyTtl::Persistent,
            ms => KeyTtl::Expires(Duration::from_millis(ms as u64)),
        })
    }

    /// Every key matching a glob `pattern`, by `SCAN` (never `KEYS`, which blocks the
    /// server). On a cluster pool it scans every master.
    pub async fn scan_match(&self, pattern: &str) -> Result<Vec<String>> {
        if let Some(masters) = self.cluster_masters().await? {
            let mut out = Vec::new();
            for (host, port) in masters {
                out.extend(self.scan_node(pattern, Some((host, port))).await?);
            }
            return Ok(out);
        }
        self.scan_node(pattern, None).await
    }

    async fn scan_node(&self, pattern: &str, node: Option<(String, u16)>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut c = cmd("SCAN");
            c.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<String>) = match &node {
                None => self.run("SCAN", c).await?,
                Some((host, port)) => {
                    let value = self.route_to(c, host, *port).await?;
                    self.convert("SCAN", value)?
                }
            };
            out.extend(keys);
            if next == 0 {
                return Ok(out);
            }
            cursor = next;
        }
    }

    // ------------------------------------------------------------ hashes

    /// `HGET key field`.
    pub async fn hget<K: ToRedisArgs, F: ToRedisArgs, V: FromRedisValue>(
        &self,
        key: K,
        field: F,
    ) -> Result<Option<V>> {
        let mut c = cmd("HGET");
        c.arg(key).arg(field);
        self.run("HGET", c).await
    }

    /// `HSET key field value`: whether the field is new.
    pub async fn hset<K: ToRedisArgs, F: ToRedisArgs, V: ToRedisArgs>(
        &self,
        key: K,
        field: F,
        value: V,
    ) -> Result<bool> {
        let mut c = cmd("HSET");
        c.arg(key).arg(field).arg(value);
        let added: u64 = self.run("HSET", c).await?;
        Ok(added > 0)
    }

    /// `HSET key field value …` (the seed's `HMset`): how many fields are new.
    pub async fn hset_multiple<K: ToRedisArgs, F: ToRedisArgs, V: ToRedisArgs>(
        &self,
        key: K,
        items: &[(F, V)],
    ) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        let mut c = cmd("HSET");
        c.arg(key);
        for (f, v) in items {
            c.arg(f).arg(v);
        }
        self.run("HSET", c).await
    }

    /// `HMGET key fields…`: one entry per field, `None` where missing.
    pub async fn hmget<K: ToRedisArgs, F: ToRedisArgs, V: FromRedisValue>(
        &self,
        key: K,
        fields: &[F],
    ) -> Result<Vec<Option<V>>> {
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = cmd("HMGET");
        c.arg(key).arg(fields);
        self.run("HMGET", c).await
    }

    /// `HGETALL key`.
    pub async fn hgetall<K: ToRedisArgs, V: FromRedisValue>(
        &self,
        key: K,
    ) -> Result<HashMap<String, V>> {
        let mut c = cmd("HGETALL");
        c.arg(key);
        self.run("HGETALL", c).await
    }

    /// `HDEL key fields…`: how many existed.
    pub async fn hdel<K: ToRedisArgs, F: ToRedisArgs>(&self, key: K, fields: F) -> Result<u64> {
        let mut c = cmd("HDEL");
        c.arg(key).arg(fields);
        self.run("HDEL", c).await
    }

    /// `HINCRBY key field by`: the new value.
    pub async fn hincr<K: ToRedisArgs, F: ToRedisArgs>(
        &self,
        key: K,
        field: F,
        by: i64,
    ) -> Result<i64> {
        let mut c = cmd("HINCRBY");
        c.arg(key).arg(field).arg(by);
        self.run("HINCRBY", c).await
    }

    /// `HEXISTS key field`.
    pub async fn hexists<K: ToRedisArgs, F: ToRedisArgs>(&self, key: K, field: F) -> Result<bool> {
        let mut c = cmd("HEXISTS");
        c.arg(key).arg(field);
        self.run("HEXISTS", c).await
    }

    /// `HLEN key`.
    pub async fn hlen<K: ToRedisArgs>(&self, key: K) -> Result<u64> {
        let mut c = cmd("HLEN");
        c.arg(key);
        self.run("HLEN", c).await
    }

    // ------------------------------------------------------------ lists

    /// `LPUSH key values…`: the new length.
    pub async fn lpush<K: ToRedisArgs, V: ToRedisArgs>(&self, key: K, values: V) -> Result<u64> {
        let mut c = cmd("LPUSH");
        c.arg(key).arg(values);
        self.run("LPUSH", c).await
    }

    /// `RPUSH key values…`: the new length.
    pub async fn rpush<K: ToRedisArgs, V: ToRedisArgs>(&self, key: K, values: V) -> Result<u64> {
        let mut c = cmd("RPUSH");
        c.arg(key).arg(values);
        self.run("RPUSH", c).await
    }

    /// `LPOP key`.
    pub async fn lpop<K: ToRedisArgs, V: FromRedisValue>(&self, key: K) -> Result<Option<V>> {
        let mut c = cmd("LPOP");
        c.arg(key);
        self.run("LPOP", c).await
    }

    /// `RPOP key`.
    pub async fn rpop<K: ToRedisArgs, V: FromRedisValue>(&self, key: K) -> Result<Option<V>> {
        let mut c = cmd("RPOP");
        c.arg(key);
        self.run("RPOP", c).await
    }

    /// `LRANGE key start stop` (inclusive; negative indexes count from the end).
    pub async fn lrange<K: ToRedisArgs, V: FromRedisValue>(
        &self,
        key: K,
        start: i64,
        stop: i64,
    ) -> Result<Vec<V>> {
        let mut c = cmd("LRANGE");
        c.arg(key).arg(start).arg(stop);
        self.run("LRANGE", c).await
    }

    /// `LLEN key`.
    pub async fn llen<K: ToRedisArgs>(&self, key: K) -> Result<u64> {
        let mut c = cmd("LLEN");
        c.arg(key);
        self.run("LLEN", c).await
    }

    /// `LREM key count value`: how many were removed.
    pub async fn lrem<K: ToRedisArgs, V: ToRedisArgs>(
        &self,
        key: K,
        count: i64,
        value: V,
    ) -> Result<u64> {
        let mut c = cmd("LREM");
        c.arg(key).arg(count).arg(value);
        self.run("LREM", c).await
    }

    /// `LTRIM key start stop`.
    pub async fn ltrim<K: ToRedisArgs>(&self, key: K, start: i64, stop: i64) -> Result<()> {
        let mut c = cmd("LTRIM");
        c.arg(key).arg(start).arg(stop);
        self.run("LTRIM", c).await
    }

    // ------------------------------------------------------------ sets

    /// `SADD key members…`: how many are new.
    pub async fn sadd<K: ToRedisArgs, M: ToRedisArgs>(&self, key: K, members: M) -> Result<u64> {
        let mut c = cmd("SADD");
        c.arg(key).arg(members);
        self.run("SADD", c).await
    }

    /// `SREM key members…`: how many were there.
    pub async fn srem<K: ToRedisArgs, M: ToRedisArgs>(&self, key: K, members: M) -> Result<u64> {
        let mut c = cmd("SREM");
        c.arg(key).arg(members);
        self.run("SREM", c).await
    }

    /// `SMEMBERS key`.
    pub async fn smembers<K: ToRedisArgs, V: FromRedisValue>(&self, key: K) -> Result<Vec<V>> {
        let mut c = cmd("SMEMBERS");
        c.arg(key);
        self.run("SMEMBERS", c).await
    }

    /// `SISMEMBER key member`.
    pub async fn sismember<K: ToRedisArgs, M: ToRedisArgs>(
        &self,
        key: K,
        member: M,
    ) -> Result<bool> {
        let mut c = cmd("SISMEMBER");
        c.arg(key).arg(member);
        self.run("SISMEMBER", c).await
    }

    /// `SCARD key`.
    pub async fn scard<K: ToRedisArgs>(&self, key: K) -> Result<u64> {
        let mut c = cmd("SCARD");
        c.arg(key);
        self.run("SCARD", c).await
    }

    /// `SPOP key`.
    pub async fn spop<K: ToRedisArgs, V: FromRedisValue>(&self, key: K) -> Result<Option<V>> {
        let mut c = cmd("SPOP");
        c.arg(key);
        self.run("SPOP", c).await
    }

    // ------------------------------------------------------------ sorted sets

    /// `ZADD key score member`: whether the member is new.
    pub async fn zadd<K: ToRedisArgs, M: ToRedisArgs>(
        &self,
        key: K,
        member: M,
        score: f64,
    ) -> Result<bool> {
        let mut c = cmd("ZADD");
        c.arg(key).arg(score).arg(member);
        let added: u64 = self.run("ZADD", c).await?;
        Ok(added > 0)
    }

    /// `ZADD key score member …`: how many members are new.
    pub async fn zadd_multiple<K: ToRedisArgs, M: ToRedisArgs>(
        &self,
        key: K,
        items: &[(M, f64)],
    ) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        let mut c = cmd("ZADD");
        c.arg(key);
        for (m, score) in items {
            c.arg(*score).arg(m);
        }
        self.run("ZADD", c).await
    }

    /// `ZREM key members…`: how many were there.
    pub async fn zrem<K: ToRedisArgs, M: ToRedisArgs>(&self, key: K, members: M) -> Result<u64> {
        let mut c = cmd("ZREM");
        c.arg(key).arg(members);
        self.run("ZREM", c).await
    }

    /// `ZSCORE key member`.
    pub async fn zscore<K: ToRedisArgs, M: ToRedisArgs>(
        &self,
        key: K,
        member: M,
    ) -> Result<Option<f64>> {
        let mut c = cmd("ZSCORE");
        c.arg(key).arg(member);
        self.run("ZSCORE", c).await
    }

    /// `ZINCRBY key by member`: the new score.
    pub async fn zincr<K: ToRedisArgs, M: ToRedisArgs>(
        &self,
        key: K,
        member: M,
        by: f64,
    ) -> Result<f64> {
        let mut c = cmd("ZINCRBY");
        c.arg(key).arg(by).arg(member);
        self.run("ZINCRBY", c).await
    }

    /// `ZCARD key`.
    pub async fn zcard<K: ToRedisArgs>(&self, key: K) -> Result<u64> {
        let mut c = cmd("ZCARD");
        c.arg(key);
        self.run("ZCARD", c).await
    }

    /// `ZCOUNT key min max` (inclusive scores).
    pub async fn zcount<K: ToRedisArgs>(&self, key: K, min: f64, max: f64) -> Result<u64> {
        let mut c = cmd("ZCOUNT");
        c.arg(key).arg(min).arg(max);
        self.run("ZCOUNT", c).await
    }

    /// `ZRANGE key start stop`: members by rank, lowest score first.
    pub async fn zrange<K: ToRedisArgs, V: FromRedisValue>(
        &self,
        key: K,
        start: i64,
        stop: i64,
    ) -> Result<Vec<V>> {
        let mut c = cmd("ZRANGE");
        c.arg(key).arg(start).arg(stop);
        self.run("ZRANGE", c).await
    }

    /// `ZRANGE key start stop REV`: members by rank, highest score first.
    pub async fn zrevrange<K: ToRedisArgs, V: FromRedisValue>(
        &self,
        key: K,
        start: i64,
        stop: i64,
    ) -> Result<Vec<V>> {
        let mut c = cmd("ZRANGE");
        c.arg(key).arg(start).arg(stop).arg("REV");
        self.run("ZRANGE", c).await
    }

    /// `ZRANGE key start stop WITHSCORES`: `(member, score)` pairs.
    pub async fn zrange_with_scores<K: ToRedisArgs, V: FromRedisValue>(
        &self,
        key: K,
        start: i64,
        stop: i64,
    ) -> Result<Vec<(V, f64)>> {
        let mut c = cmd("ZRANGE");
        c.arg(key).arg(start).arg(stop).arg("WITHSCORES");
        self.run("ZRANGE", c).await
    }

    /// `ZRANGE key min max BYSCORE`: members with a score in `[min, max]`.
    pub async fn zrange_by_score<K: ToRedisArgs, V: FromRedisValue>(
        &self,
        key: K,
        min: f64,
        max: f64,
    ) -> Result<Vec<V>> {
        let mut c = cmd("ZRANGE");
        c.arg(key).arg(min).arg(max).arg("BYSCORE");
        self.run("ZRANGE", c).await
    }

    /// `ZRANK key member`: the 0-based rank, lowest score first.
    pub async fn zrank<K: ToRedisArgs, M: ToRedisArgs>(
        &self,
        key: K,
        member: M,
    ) -> Result<Option<u64>> {
        let mut c = cmd("ZRANK");
        c.arg(key).arg(member);
        self.run("ZRANK", c).await
    }
}
