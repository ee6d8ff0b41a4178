//! How a pool reaches its server(s): one server through redis-rs's `ConnectionManager`
//! (reconnects by itself), a Sentinel-watched master that we follow across failovers,
//! or a Redis Cluster. Everything is lazy: `validate()` parses addresses, the first
//! command connects, and a server that is down gives a typed error, never a panic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use ::redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
use futures_util::future::BoxFuture;
use tokio::sync::{Mutex, OnceCell};

use crate::{Error, Result};

/// How long a Redis pool waits; set per pool with
/// [`Registry::set_redis_timeouts`](crate::Registry::set_redis_timeouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// Each connection attempt gives up after this long (default 1 s).
    pub(crate) connect: Duration,
    /// A reply that takes longer fails the command and the connection is replaced
    /// (default 2 s). Blocking commands must ask for less than this.
    pub(crate) response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(2),
        }
    }
}
/// Reconnection attempts of a single-server pool before a command fails.
const RECONNECT_RETRIES: usize = 2;
/// Sentinel pools: attempts to find and reach the master for one command.
const SENTINEL_ATTEMPTS: u32 = 4;

/// A Redis pool as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RedisConfig {
    /// One server: `host:port` or a `redis://` URL, and a database number.
    Server { address: String, db: u32 },
    /// A master watched by Sentinels.
    Sentinel {
        master: String,
        sentinels: Vec<String>,
        db: u32,
    },
    /// A Redis Cluster, by some of its nodes.
    Cluster { nodes: Vec<String> },
}

/// `host:port` (a bare `:port` means 127.0.0.1) or a URL → connection info.
fn connection_info(pool: &str, address: &str, db: Option<u32>) -> Result<ConnectionInfo> {
    let url = if address.contains("://") || address.starts_with("unix:") {
        address.to_string()
    } else if let Some(port) = address.strip_prefix(':') {
        format!("redis://127.0.0.1:{port}")
    } else {
        format!("redis://{address}")
    };
    let info = url.as_str().into_connection_info().map_err(|e| {
        Error::config(format!(
            "Redis pool `{pool}`: `{address}` is not a Redis address (host:port or redis://…): {e}"
        ))
    })?;
    Ok(match db {
        Some(db) => {
            let settings = info.redis_settings().clone().set_db(i64::from(db));
            info.set_redis_settings(settings)
        }
        None => info,
    })
}

fn async_config(t: Timeouts) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(t.connect))
        .set_response_timeout(Some(t.response))
}

pub(crate) enum Backend {
    Server(Box<ServerBackend>),
    Sentinel(Box<SentinelBackend>),
    Cluster(Box<ClusterBackend>),
}

impl Backend {
    pub(crate) fn new(pool: &str, config: &RedisConfig, timeouts: Timeouts) -> Result<Backend> {
        match config {
            RedisConfig::Server { address, db } => {
                let info = connection_info(pool, address, Some(*db))?;
                let client = Client::open(info)
                    .map_err(|e| Error::config(format!("Redis pool `{pool}`: {e}")))?;
                Ok(Backend::Server(Box::new(ServerBackend {
                    client,
                    timeouts,
                    manager: ConnSlot::new(),
                })))
            }
            RedisConfig::Sentinel {
                master,
                sentinels,
                db,
            } => {
                if sentinels.is_empty() {
                    return Err(Error::config(format!(
                        "Redis pool `{pool}`: a Sentinel pool needs at least one sentinel address"
                    )));
                }
                let infos = sentinels
                    .iter()
                    .map(|a| connection_info(pool, a, None))
                    .collect::<Result<Vec<_>>>()?;
                let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(
                    RedisConnectionInfo::default().set_db(i64::from(*db)),
                );
                let client = SentinelClient::build(
                    infos,
                    master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|e| Error::config(format!("Redis pool `{pool}`: {e}")))?;
                Ok(Backend::Sentinel(Box::new(SentinelBackend {
                    resolver: Mutex::new(client),
                    timeouts,
                    master: ConnSlot::new(),
                })))
            }
            RedisConfig::Cluster { nodes } => {
                if nodes.is_empty() {
                    return Err(Error::config(format!(
                        "Redis pool `{pool}`: a cluster pool needs at least one node address"
                    )));
                }
                let infos = nodes
                    .iter()
                    .map(|a| connection_info(pool, a, None))
                    .collect::<Result<Vec<_>>>()?;
                let client = ClusterClient::builder(infos)
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.response)
                    .retries(3)
                    .build()
                    .map_err(|e| Error::config(format!("Redis pool `{pool}`: {e}")))?;
                Ok(Backend::Cluster(Box::new(ClusterBackend {
                    client,
                    timeouts,
                    conn: OnceCell::new(),
                })))
            }
        }
    }

    /// A new subscriber connection to the pool's server; `None` for Sentinel and
    /// Cluster pools, which the invalidation channel does not support yet.
    pub(crate) fn pubsub(&self) -> BoxFuture<'_, RedisResult<Option<::redis::aio::PubSub>>> {
        Box::pin(async move {
            match self {
                Backend::Server(s) => {
                    let connect = s.client.get_async_pubsub();
                    match tokio::time::timeout(s.timeouts.connect, connect).await {
                        Ok(r) => r.map(Some),
                        Err(_) => Err(::redis::RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "connecting the subscriber timed out",
                        ))),
                    }
                }
                _ => Ok(None),
            }
        })
    }

    /// How long the pool waits for a reply: a blocking command on a connection of
    /// this pool must ask the server for less.
    pub(crate) fn response_timeout(&self) -> Duration {
        match self {
            Backend::Server(s) => s.timeouts.response,
            Backend::Sentinel(s) => s.timeouts.response,
            Backend::Cluster(c) => c.timeouts.response,
        }
    }

    /// A new connection of its own, not the pool's shared one, for blocking commands
    /// (`XREADGROUP BLOCK`): the server answers a connection's commands in order, so
    /// a command that blocks would hold up every other user of a shared connection.
    /// A single server's connection reconnects by itself; a Sentinel pool's follows
    /// the master it was opened on (open a new one after an error); a cluster's
    /// routes each command by its key.
    pub(crate) fn dedicated(&self) -> BoxFuture<'_, RedisResult<RedisConnection>> {
        Box::pin(async move {
            Ok(match self {
                Backend::Server(s) => {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(s.timeouts.connect))
                        .set_response_timeout(Some(s.timeouts.response))
                        .set_number_of_retries(RECONNECT_RETRIES)
                        .set_max_delay(Duration::from_millis(500));
                    RedisConnection::Server(
                        ConnectionManager::new_with_config(s.client.clone(), config).await?,
                    )
                }
                Backend::Sentinel(s) => {
                    let client = s.resolver.lock().await.async_get_client().await?;
                    RedisConnection::Sentinel(
                        client
                            .get_multiplexed_async_connection_with_config(&async_config(s.timeouts))
                            .await?,
                    )
                }
                Backend::Cluster(c) => {
                    RedisConnection::Cluster(c.client.get_async_connection().await?)
                }
            })
        })
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Backend::Server(_) => "server",
            Backend::Sentinel(_) => "sentinel",
            Backend::Cluster(_) => "cluster",
        }
    }

    // The public entry points return boxed futures: redis-rs's connection futures are
    // deeply nested types, and without a box in between, the futures of our callers
    // (and of applications awaiting them) can exceed the compiler's query depth limit.

    pub(crate) fn connection(&self) -> BoxFuture<'_, RedisResult<RedisConnection>> {
        Box::pin(self.connection_inner())
    }

    pub(crate) fn exec<'a>(&'a self, cmd: &'a Cmd) -> BoxFuture<'a, RedisResult<Value>> {
        Box::pin(self.exec_inner(cmd))
    }

    pub(crate) fn exec_pipeline<'a>(
        &'a self,
        pipe: &'a Pipeline,
    ) -> BoxFuture<'a, RedisResult<Vec<Value>>> {
        Box::pin(self.exec_pipeline_inner(pipe))
    }

    pub(crate) fn exec_on<'a>(
        &'a self,
        cmd: Cmd,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, RedisResult<Value>> {
        Box::pin(self.exec_on_inner(cmd, host, port))
    }

    pub(crate) fn exec_slot_pipeline(
        &self,
        pipe: Pipeline,
        slot: Option<Slot>,
    ) -> BoxFuture<'_, RedisResult<Vec<Value>>> {
        Box::pin(self.exec_slot_pipeline_inner(pipe, slot))
    }

    async fn connection_inner(&self) -> RedisResult<RedisConnection> {
        Ok(match self {
            Backend::Server(s) => RedisConnection::Server(s.manager()?),
            Backend::Sentinel(s) => RedisConnection::Sentinel(s.connection().await?.1),
            Backend::Cluster(c) => RedisConnection::Cluster(c.connection().await?),
        })
    }

    /// Sends one command; a server error reply (`NOSCRIPT`, `WRONGTYPE`, …) is an `Err`.
    async fn exec_inner(&self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Backend::Server(s) => {
                s.with(
                    |mut m| async move { m.send_packed_command(cmd).await.and_then(server_error) },
                )
                .await
            }
            Backend::Sentinel(s) => {
                s.with_master(
                    |mut conn| async move {
                        conn.send_packed_command(cmd).await.and_then(server_error)
                    },
                    || is_read_only(cmd),
                )
                .await
            }
            Backend::Cluster(c) => c
                .connection()
                .await?
                .req_packed_command(cmd)
                .await
                .and_then(server_error),
        }
    }

    /// Sends a pipeline; the replies of every command (none ignored), in order.
    async fn exec_pipeline_inner(&self, pipe: &Pipeline) -> RedisResult<Vec<Value>> {
        match self {
            Backend::Server(s) => {
                s.with(|mut m| async move { pipe.query_async(&mut m).await })
                    .await
            }
            Backend::Sentinel(s) => {
                s.with_master(
                    |mut conn| async move { pipe.query_async(&mut conn).await },
                    || pipe.cmd_iter().all(is_read_only),
                )
                .await
            }
            Backend::Cluster(c) => pipe.query_async(&mut c.connection().await?).await,
        }
    }

    /// Sends a command to one node of a cluster (other pools: to their server).
    async fn exec_on_inner(&self, cmd: Cmd, host: &str, port: u16) -> RedisResult<Value> {
        match self {
            Backend::Cluster(c) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.to_string(),
                    port,
                });
                c.connection()
                    .await?
                    .route_command(cmd, route)
                    .await
                    .and_then(server_error)
            }
            _ => self.exec(&cmd).await,
        }
    }

    /// Cluster only: sends the commands of one hash slot as one pipeline to that slot's
    /// master.
    async fn exec_slot_pipeline_inner(
        &self,
        pipe: Pipeline,
        slot: Option<Slot>,
    ) -> RedisResult<Vec<Value>> {
        let Backend::Cluster(c) = self else {
            return self.exec_pipeline(&pipe).await;
        };
        let route = match slot {
            Some(slot) => {
                SingleNodeRoutingInfo::SpecificNode(Route::with_slot(slot, SlotAddr::Master))
            }
            None => SingleNodeRoutingInfo::RandomPrimary,
        };
        let count = pipe.len();
        c.connection()
            .await?
            .route_pipeline(pipe, 0, count, route)
            .await
    }
}

/// A reply that is a server error becomes an `Err` (redis-rs returns it as a value).
fn server_error(value: Value) -> RedisResult<Value> {
    match value {
        Value::ServerError(e) => Err(e.into()),
        v => Ok(v),
    }
}

/// The hash slot of a key, as the cluster computes it (hash tags included).
pub(crate) fn slot_of(key: &[u8]) -> Slot {
    Slot::for_key(key)
}

/// The connection a pool currently uses, numbered so that a task that saw it fail
/// drops only that one, never a newer one another task has opened meanwhile.
struct ConnSlot<C> {
    current: RwLock<Option<(u64, C)>>,
    generation: AtomicU64,
}

impl<C: Clone> ConnSlot<C> {
    fn new() -> Self {
        ConnSlot {
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
        }
    }

    fn cached(&self) -> Option<(u64, C)> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stores `conn` unless another task stored one first; returns the one in use.
    fn store(&self, conn: C) -> (u64, C) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = current.as_ref() {
            return c.clone();
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *current = Some((generation, conn.clone()));
        (generation, conn)
    }

    /// Drops the connection of `generation` if it is still the current one.
    fn forget(&self, generation: u64) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if matches!(&*current, Some((g, _)) if *g == generation) {
            *current = None;
        }
    }
}

pub(crate) struct ServerBackend {
    client: Client,
    timeouts: Timeouts,
    /// The multiplexed connection (it reconnects by itself).
    manager: ConnSlot<ConnectionManager>,
}

impl ServerBackend {
    /// The current connection manager, created (lazily connecting) when there is none.
    fn manager(&self) -> RedisResult<ConnectionManager> {
        self.current().map(|(_, m)| m)
    }

    fn current(&self) -> RedisResult<(u64, ConnectionManager)> {
        if let Some(m) = self.manager.cached() {
            return Ok(m);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.response))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(Duration::from_millis(500));
        // Lazy: nothing connects here, so a racing task's spare manager costs nothing.
        let m = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        Ok(self.manager.store(m))
    }

    /// Runs `f` on the current connection. A reply that timed out leaves the server
    /// still working on the command, and every later command on that connection would
    /// queue behind it: the connection is dropped so the next command gets a new one.
    async fn with<T, F, Fut>(&self, f: F) -> RedisResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let (generation, m) = self.current()?;
        let result = f(m).await;
        if result.as_ref().is_err_and(RedisError::is_timeout) {
            self.manager.forget(generation);
        }
        result
    }
}

pub(crate) struct ClusterBackend {
    client: ClusterClient,
    timeouts: Timeouts,
    conn: OnceCell<ClusterConnection>,
}

impl ClusterBackend {
    async fn connection(&self) -> RedisResult<ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

/// Follows the master of a Sentinel-watched group: the sentinels name the master, we
/// keep one multiplexed connection to it, and drop it when it breaks or the server
/// says it is no longer the master (`READONLY`). The next command asks the sentinels
/// again, so the pool follows a failover as soon as the sentinels have promoted a
/// replica.
pub(crate) struct SentinelBackend {
    resolver: Mutex<SentinelClient>,
    timeouts: Timeouts,
    master: ConnSlot<MultiplexedConnection>,
}

/// What to do after a failed command on a Sentinel pool: (drop the connection, safe
/// to send again). `read_only` says whether every command sent only reads; it is
/// asked only when the connection broke, so the hot path never looks at the command.
fn sentinel_verdict(e: &RedisError, read_only: impl FnOnce() -> bool) -> (bool, bool) {
    match e.kind() {
        // The server refused the command without running it: it is a replica now, or
        // the master lost its replicas, or it is loading its data after a restart.
        ErrorKind::Server(
            ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading,
        ) => (true, true),
        // A timeout: the server may still be running it; never send it twice, and a
        // second wait would double the caller's.
        _ if e.is_timeout() => (true, false),
        // The link broke (broken pipe, reset, closed): a failover demotes the old
        // master and the sentinels kill its clients' connections. A write may have run
        // before the link broke, so only reads, which are harmless to repeat, are sent
        // again (on a new connection to the master the sentinels name now).
        _ if e.is_connection_dropped() || e.is_unrecoverable_error() => (true, read_only()),
        _ => (false, false),
    }
}

/// Commands that only read (and `PING`-like ones): sending one twice changes nothing.
/// Sorted, upper case.
const READ_ONLY_COMMANDS: &[&[u8]] = &[
    b"BITCOUNT",
    b"BITPOS",
    b"DBSIZE",
    b"ECHO",
    b"EVALSHA_RO",
    b"EVAL_RO",
    b"EXISTS",
    b"GET",
    b"GETBIT",
    b"GETRANGE",
    b"HEXISTS",
    b"HGET",
    b"HGETALL",
    b"HKEYS",
    b"HLEN",
    b"HMGET",
    b"HSCAN",
    b"HSTRLEN",
    b"HVALS",
    b"INFO",
    b"KEYS",
    b"LINDEX",
    b"LLEN",
    b"LRANGE",
    b"MGET",
    b"PING",
    b"PTTL",
    b"ROLE",
    b"SCAN",
    b"SCARD",
    b"SISMEMBER",
    b"SMEMBERS",
    b"SMISMEMBER",
    b"SSCAN",
    b"STRLEN",
    b"TIME",
    b"TTL",
    b"TYPE",
    b"XLEN",
    b"XRANGE",
    b"XREVRANGE",
    b"ZCARD",
    b"ZCOUNT",
    b"ZMSCORE",
    b"ZRANGE",
    b"ZRANGEBYSCORE",
    b"ZRANK",
    b"ZREVRANGE",
    b"ZREVRANGEBYSCORE",
    b"ZREVRANK",
    b"ZSCAN",
    b"ZSCORE",
];

/// Whether `cmd` only reads (see [`READ_ONLY_COMMANDS`]).
fn is_read_only(cmd: &Cmd) -> bool {
    let Some(::redis::Arg::Simple(name)) = cmd.args_iter().next() else {
        return false;
    };
    let mut upper = [0u8; 20];
    let Some(upper) = upper.get_mut(..name.len()) else {
        return false;
    };
    upper.copy_from_slice(name);
    upper.make_ascii_uppercase();
    READ_ONLY_COMMANDS.binary_search(&&*upper).is_ok()
}

impl SentinelBackend {
    /// The connection to the current master, asking the sentinels when there is none.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.master.cached() {
            return Ok(c);
        }
        // One task asks the sentinels; the others wait for its answer.
        let mut resolver = self.resolver.lock().await;
        if let Some(c) = self.master.cached() {
            return Ok(c);
        }
        let client = resolver.async_get_client().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&async_config(self.timeouts))
            .await?;
        Ok(self.master.store(conn))
    }

    /// Runs `f` on the master's connection, re-resolving the master and trying again
    /// (a few times, with a short pause) only when that is safe: the connection could
    /// not be opened, the server refused the command unrun, or the connection broke
    /// and `read_only()` says the request only reads (a failover kills the old
    /// master's connections; a write is never sent twice).
    async fn with_master<T, F, Fut>(&self, f: F, read_only: impl Fn() -> bool) -> RedisResult<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = RedisResult<T>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pause = Duration::from_millis(100 * u64::from(attempt));
            let (generation, conn) = match self.connection().await {
                Ok(c) => c,
                Err(e) if attempt < SENTINEL_ATTEMPTS => {
                    tracing::debug!(error = %e, "no Redis master reachable yet, asking the sentinels again");
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match f(conn).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let (drop_it, again) = sentinel_verdict(&e, &read_only);
                    if drop_it {
                        self.master.forget(generation);
                    }
                    if !again || attempt >= SENTINEL_ATTEMPTS {
                        return Err(e);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// The underlying redis-rs connection of a pool ([`RedisClient::connection`](super::RedisClient::connection)):
/// implements `redis::aio::ConnectionLike`, so every `redis::AsyncCommands` method,
/// `redis::Pipeline::query_async` and `redis::Script::invoke_async` work on it.
///
/// On a Sentinel pool this is the master's connection as it is now: unlike the pool's
/// own commands, nothing sent on it is retried after a failover.
#[derive(Clone)]
#[non_exhaustive]
pub enum RedisConnection {
    /// A single server, through redis-rs's reconnecting `ConnectionManager`.
    Server(ConnectionManager),
    /// The current master of a Sentinel pool.
    Sentinel(MultiplexedConnection),
    /// A Redis Cluster (routes each command by its key).
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConnection::Server(_) => "RedisConnection::Server",
            RedisConnection::Sentinel(_) => "RedisConnection::Sentinel",
            RedisConnection::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Server(c) => c.req_packed_command(cmd),
            RedisConnection::Sentinel(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Server(c) => c.req_packed_commands(cmd, offset, count),
            RedisConnection::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Server(c) => c.get_db(),
            RedisConnection::Sentinel(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_count_as_safe_to_resend() {
        assert!(READ_ONLY_COMMANDS.windows(2).all(|w| w[0] < w[1]), "sorted");
        let named = |name: &str| is_read_only(&::redis::cmd(name));
        assert!(named("GET") && named("get") && named("Scan") && named("ZREVRANGEBYSCORE"));
        for write in [
            "SET", "INCR", "DEL", "EVALSHA", "EVAL", "WAIT", "GETDEL", "GETEX", "",
        ] {
            assert!(!named(write), "{write}");
        }
        assert!(!named("A_COMMAND_NAME_LONGER_THAN_TWENTY_BYTES"));
        assert!(!is_read_only(&Cmd::new()));
    }
}
