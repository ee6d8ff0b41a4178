//! The Redis side of the entity cache: one key per row, whose value is in one of
//! four states, and four Lua scripts that move between them atomically.
//!
//! | value            | meaning                                                  |
//! |------------------|----------------------------------------------------------|
//! | `V<sig><bytes>`  | the row, encoded (`sig`: the schema signature)           |
//! | `N`              | no such row                                              |
//! | `L<token>`       | a reader holds the lease to fill it (expires: `LEASE`)   |
//! | `P<n>`           | `n` writers are between their lock and their unlock      |
//!
//! * **read** (`READ`): per key, a `V` of our signature or an `N` is returned; a free
//!   key (absent, or a `V` of another schema) becomes our lease `L<token>`; a key
//!   leased by another reader answers "wait", a locked one "bypass" (read the
//!   database, store nothing).
//! * **fill** (`FILL`): stores the row only where the key still holds *our* lease.
//!   Any write in between replaced or deleted the lease, so a row read before a
//!   committed write can never be stored after it (race 1 of the research note), and
//!   a FLUSHALL during a fill leaves nothing to overwrite (race 5).
//! * **lock** (`LOCK`), before the COMMIT of a unit of work: every changed row's key
//!   becomes `P<n+1>` (killing leases and values), with a short expiry, and an
//!   invalidation is published to the other processes' local layers.
//! * **unlock** (`UNLOCK`), after the COMMIT: `P<n>` goes back to `P<n-1>`, or the
//!   key is deleted (also when it holds anything else: a FLUSHALL may have removed the
//!   lock, and a reader may have filled the old row since), and the invalidation is
//!   published again.
//!
//! A process that dies between COMMIT and unlock leaves `P` keys: readers go to the
//! database without storing anything until they expire (`LOCK_TTL`), then fill the
//! committed row — no stale entry is ever readable. A rolled-back unit of work
//! unlocks the same way (the old row is read again on the next miss).
//!
//! Cached queries (`cache/query.rs`) add four scripts on the same principle, one
//! level up: per table a version and a set of writers in flight, bumped and entered
//! by `LOCK_WITH_QUERIES` (the row `LOCK` plus the table's query keys, one atomic
//! step) and left by `UNLOCK_WITH_QUERIES`; a list is filled (`FILL_LIST`) only
//! under a lease taken at the current version (`READ_LIST`) while that version
//! still holds and no writer is in flight.
//!
//! The signature lives in the value, not in the key name, on purpose: two deploys
//! whose structs differ share one key per row, so a write by either invalidates the
//! row for both, and neither ever decodes the other's bytes (a `V` of another
//! signature reads as a miss).

use std::time::Duration;

use ::redis::Value as RedisValue;

use crate::redis::{RedisClient, Script};
use crate::Result;

/// How long a reader may hold a lease before others take over.
pub(crate) const LEASE: Duration = Duration::from_secs(2);
/// How long a writer's lock outlives a writer that died before unlocking.
pub(crate) const LOCK_TTL: Duration = Duration::from_secs(5);

const READ: &str = r"
local out = {}
local lease = 'L' .. ARGV[1]
local sig = ARGV[3]
local n = #KEYS
local vals = {}
local from = 1
while from <= n do
  local to = math.min(from + 999, n)
  local part = redis.call('MGET', unpack(KEYS, from, to))
  for x = 1, #part do
    vals[from + x - 1] = part[x]
  end
  from = to + 1
end
for i = 1, n do
  local k = KEYS[i]
  local v = vals[i]
  local t = v and string.sub(v, 1, 1)
  if (not v) or (t == 'V' and string.sub(v, 2, 1 + #sig) ~= sig) then
    redis.call('SET', k, lease, 'PX', ARGV[2])
    out[i] = 'L'
  elseif t == 'V' or t == 'N' then
    out[i] = v
  elseif t == 'L' then
    out[i] = 'W'
  else
    out[i] = 'P'
  end
end
return out
";

const FILL: &str = r"
local out = {}
local lease = 'L' .. ARGV[1]
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == lease then
    local v = ARGV[3 + i]
    if v == '' then
      redis.call('DEL', k)
    elseif v == 'N' then
      redis.call('SET', k, v, 'PX', ARGV[3])
    else
      redis.call('SET', k, v, 'PX', ARGV[2])
    end
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
";

/// Lua shared by the four lock scripts: `lock_rows(n, ttl)` turns `KEYS[1..n]` into
/// `P<count + 1>` (expiring after `ttl` ms); `unlock_rows(n)` counts them down,
/// deleting a key at zero or when it holds anything but a lock.
const ROW_LOCKS: &str = r"
local function lock_rows(n, ttl)
  for i = 1, n do
    local v = redis.call('GET', KEYS[i])
    local c = 1
    if v and string.sub(v, 1, 1) == 'P' then
      c = (tonumber(string.sub(v, 2)) or 0) + 1
    end
    redis.call('SET', KEYS[i], 'P' .. c, 'PX', ttl)
  end
end
local function unlock_rows(n)
  for i = 1, n do
    local v = redis.call('GET', KEYS[i])
    local c = 0
    if v and string.sub(v, 1, 1) == 'P' then
      c = (tonumber(string.sub(v, 2)) or 1) - 1
    end
    if c > 0 then
      redis.call('SET', KEYS[i], 'P' .. c, 'KEEPTTL')
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
";

const LOCK: &str = r"
lock_rows(#KEYS, ARGV[1])
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 1
";

const UNLOCK: &str = r"
unlock_rows(#KEYS)
if ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return 1
";

// Cached queries (D5, `cache/query.rs`): per table a version `v` (a string of
// digits) and the writers in flight `w` (a sorted set: writer token → deadline in
// ms); per query and arguments a list key holding `V<version> <payload>` or the
// lease `L<token>:<version>`. A version starts at the server's clock in µs, so one
// lost with its key (FLUSHALL, eviction) never comes back to a number an old list
// still carries.

/// Lua shared by the query scripts: the server's clock in ms, and the table's
/// version (created from the clock when absent).
const QUERY_PRELUDE: &str = r"
local function clock()
  local t = redis.call('TIME')
  return t, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function version(k, t)
  local v = redis.call('GET', k)
  if not v then
    v = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', k, v)
  end
  return v
end
local function writing(k, now)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  return redis.call('ZCARD', k) > 0
end
";

/// A reader of a cached query. KEYS: version, writers, list; ARGV: token, lease
/// (ms). Answers `{'H', payload}` (a list of the current version), `{'L', version}`
/// (our lease: read the database, then `FILL_LIST`), `{'W', ''}` (another reader
/// holds a lease of the current version: wait) or `{'B', ''}` (a writer is between
/// its lock and its unlock: read the database, store nothing).
const READ_LIST: &str = r"
local t, now = clock()
if writing(KEYS[2], now) then
  return {'B', ''}
end
local v = version(KEYS[1], t)
local cur = redis.call('GET', KEYS[3])
if cur then
  local kind = string.sub(cur, 1, 1)
  local sp = string.find(cur, ' ', 2, true)
  if kind == 'V' and sp and string.sub(cur, 2, sp - 1) == v then
    return {'H', string.sub(cur, sp + 1)}
  end
  local colon = string.find(cur, ':', 2, true)
  if kind == 'L' and colon and string.sub(cur, colon + 1) == v then
    return {'W', ''}
  end
end
redis.call('SET', KEYS[3], 'L' .. ARGV[1] .. ':' .. v, 'PX', ARGV[2])
return {'L', v}
";

/// Fills a cached query's list. KEYS: version, writers, list; ARGV: token, the
/// version of the lease, payload (empty: only give the lease back), TTL (ms).
/// Stores only while the key holds our lease, the version is the lease's and no
/// writer is in flight: any write locked since the lease voids the fill (the lease
/// is then given back). 1 when stored.
const FILL_LIST: &str = r"
local lease = 'L' .. ARGV[1] .. ':' .. ARGV[2]
if redis.call('GET', KEYS[3]) ~= lease then
  return 0
end
local t, now = clock()
if ARGV[3] == '' or redis.call('GET', KEYS[1]) ~= ARGV[2] or writing(KEYS[2], now) then
  redis.call('DEL', KEYS[3])
  return 0
end
redis.call('SET', KEYS[3], 'V' .. ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[4])
return 1
";

/// `LOCK` for a table with cached queries. KEYS: the rows' keys, then the table's
/// query version and writers; ARGV: lock TTL (ms), channel, message, writer token.
/// Also adds the writer to the writers in flight (until the TTL) and bumps the
/// version, in the same atomic step as the rows' locks.
const LOCK_WITH_QUERIES: &str = r"
local n = #KEYS - 2
lock_rows(n, ARGV[1])
local t, now = clock()
version(KEYS[n + 1], t)
redis.call('INCR', KEYS[n + 1])
redis.call('ZADD', KEYS[n + 2], now + tonumber(ARGV[1]), ARGV[4])
redis.call('PEXPIRE', KEYS[n + 2], tonumber(ARGV[1]) * 2)
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 1
";

/// `UNLOCK` for a table with cached queries. KEYS: as `LOCK_WITH_QUERIES`; ARGV:
/// channel, message, writer token. Also removes the writer and bumps the version
/// again (a reader that filled while a FLUSHALL had removed the writer is voided).
const UNLOCK_WITH_QUERIES: &str = r"
local n = #KEYS - 2
unlock_rows(n)
local t, now = clock()
redis.call('ZREM', KEYS[n + 2], ARGV[3])
version(KEYS[n + 1], t)
redis.call('INCR', KEYS[n + 1])
if ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return 1
";

/// The scripts, hashed once.
pub(crate) struct Scripts {
    read: Script,
    fill: Script,
    lock: Script,
    unlock: Script,
    read_list: Script,
    fill_list: Script,
    lock_with_queries: Script,
    unlock_with_queries: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let with_prelude = |body: &str| format!("{QUERY_PRELUDE}{body}");
        let with_locks = |body: &str| format!("{ROW_LOCKS}{body}");
        let with_both = |body: &str| format!("{ROW_LOCKS}{QUERY_PRELUDE}{body}");
        Scripts {
            read: Script::new(READ),
            fill: Script::new(FILL),
            lock: Script::new(&with_locks(LOCK)),
            unlock: Script::new(&with_locks(UNLOCK)),
            read_list: Script::new(&with_prelude(READ_LIST)),
            fill_list: Script::new(&with_prelude(FILL_LIST)),
            lock_with_queries: Script::new(&with_both(LOCK_WITH_QUERIES)),
            unlock_with_queries: Script::new(&with_both(UNLOCK_WITH_QUERIES)),
        }
    }
}

/// What `READ` answered for one key.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The row's encoded bytes (after the signature).
    Row(Vec<u8>),
    /// No such row.
    Missing,
    /// We hold the lease: read the database and fill.
    Leased,
    /// Another reader holds the lease: wait for its fill.
    Wait,
    /// A writer is committing: read the database, store nothing.
    Bypass,
    /// Not settled by a plain `MGET` (absent, leased, locked): ask `READ`.
    Ask,
}

/// The hit path: one plain `MGET` (as fast as Redis reads get). Rows of our
/// signature and known-missing rows are settled; everything else is [`Reply::Ask`],
/// for `READ` to lease or classify atomically.
pub(crate) async fn peek(
    client: &RedisClient,
    keys: &[String],
    signature: &str,
) -> Result<Vec<Reply>> {
    let values: Vec<Option<Vec<u8>>> = client.mget(keys).await?;
    Ok(values
        .into_iter()
        .map(|v| match v {
            Some(mut b)
                if b.first() == Some(&b'V')
                    && b.get(1..1 + signature.len()) == Some(signature.as_bytes()) =>
            {
                b.drain(..1 + signature.len());
                Reply::Row(b)
            }
            Some(b) if b.as_slice() == b"N" => Reply::Missing,
            _ => Reply::Ask,
        })
        .collect())
}

/// Runs `READ` on `keys`.
pub(crate) async fn read(
    client: &RedisClient,
    scripts: &Scripts,
    keys: &[String],
    token: u64,
    signature: &str,
) -> Result<Vec<Reply>> {
    let replies: Vec<RedisValue> = client
        .eval(
            &scripts.read,
            keys,
            (token, LEASE.as_millis() as u64, signature),
        )
        .await?;
    Ok(replies
        .into_iter()
        .map(|v| match v {
            RedisValue::BulkString(mut b) => match b.first() {
                Some(b'V') => {
                    b.drain(..1 + signature.len());
                    Reply::Row(b)
                }
                Some(b'N') => Reply::Missing,
                Some(b'L') => Reply::Leased,
                Some(b'W') => Reply::Wait,
                _ => Reply::Bypass,
            },
            // Anything unexpected: read the database, store nothing.
            _ => Reply::Bypass,
        })
        .collect())
}

/// Runs `FILL`: each key gets its value (`V…`, `N`, or empty to only release the
/// lease) where it still holds our lease. `true` per key that did.
/// Gives back the leases `keys` hold for `token`, from a task of its own: what a
/// reader does when it is dropped (cancelled) or fails between its lease and its
/// fill, so other readers of those rows do not wait for the lease to expire.
pub(crate) fn release_later(client: RedisClient, scripts: &Scripts, keys: Vec<String>, token: u64) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let script = scripts.fill.clone();
    handle.spawn(async move {
        let mut args: Vec<Vec<u8>> = Vec::with_capacity(keys.len() + 3);
        args.push(token.to_string().into_bytes());
        args.push(b"1".to_vec());
        args.push(b"1".to_vec());
        args.extend(std::iter::repeat_n(Vec::new(), keys.len()));
        let released: Result<Vec<i64>> = client.eval(&script, &keys, args).await;
        if let Err(e) = released {
            tracing::debug!(target: "beeorm::cache", error = %e, "leases not given back; they expire on their own");
        }
    });
}

pub(crate) async fn fill(
    client: &RedisClient,
    scripts: &Scripts,
    keys: &[String],
    token: u64,
    ttl: Duration,
    missing_ttl: Duration,
    values: Vec<Vec<u8>>,
) -> Result<Vec<bool>> {
    let mut args: Vec<Vec<u8>> = Vec::with_capacity(values.len() + 3);
    args.push(token.to_string().into_bytes());
    args.push((ttl.as_millis().max(1) as u64).to_string().into_bytes());
    args.push(
        (missing_ttl.as_millis().max(1) as u64)
            .to_string()
            .into_bytes(),
    );
    args.extend(values);
    // Mutation testing only (`pause::set_broken_fill`): the lease is not checked.
    let script = match keys.first() {
        Some(key) if super::pause::broken_fill(key) => broken_fill_script(),
        _ => &scripts.fill,
    };
    let replies: Vec<i64> = client.eval(script, keys, args).await?;
    Ok(replies.into_iter().map(|r| r == 1).collect())
}

/// Runs `LOCK` on `keys` and publishes `message` on `channel` (empty: none).
pub(crate) async fn lock(
    client: &RedisClient,
    scripts: &Scripts,
    keys: &[String],
    channel: &str,
    message: &str,
) -> Result<()> {
    let _: i64 = client
        .eval(
            &scripts.lock,
            keys,
            (LOCK_TTL.as_millis() as u64, channel, message),
        )
        .await?;
    Ok(())
}

/// Runs `UNLOCK` on `keys` and publishes `message` on `channel` (empty: none).
pub(crate) async fn unlock(
    client: &RedisClient,
    scripts: &Scripts,
    keys: &[String],
    channel: &str,
    message: &str,
) -> Result<()> {
    let _: i64 = client
        .eval(&scripts.unlock, keys, (channel, message))
        .await?;
    Ok(())
}

/// The query keys of a table: its version and its writers in flight.
pub(crate) struct QueryKeys<'k> {
    /// `<ns>:q:{pool.table}:v`.
    pub version: &'k str,
    /// `<ns>:q:{pool.table}:w`.
    pub writers: &'k str,
}

/// `LOCK` of `keys` (rows of a table with cached queries), also registering the
/// writer `token` and bumping the table's query version.
pub(crate) async fn lock_with_queries(
    client: &RedisClient,
    scripts: &Scripts,
    keys: &[String],
    queries: &QueryKeys<'_>,
    token: u64,
    channel: &str,
    message: &str,
) -> Result<()> {
    let mut all: Vec<&str> = keys.iter().map(String::as_str).collect();
    all.push(queries.version);
    all.push(queries.writers);
    let _: i64 = client
        .eval(
            &scripts.lock_with_queries,
            all,
            (LOCK_TTL.as_millis() as u64, channel, message, token),
        )
        .await?;
    Ok(())
}

/// `UNLOCK` of `keys`, also removing the writer `token` and bumping the version.
pub(crate) async fn unlock_with_queries(
    client: &RedisClient,
    scripts: &Scripts,
    keys: &[String],
    queries: &QueryKeys<'_>,
    token: u64,
    channel: &str,
    message: &str,
) -> Result<()> {
    let mut all: Vec<&str> = keys.iter().map(String::as_str).collect();
    all.push(queries.version);
    all.push(queries.writers);
    let _: i64 = client
        .eval(&scripts.unlock_with_queries, all, (channel, message, token))
        .await?;
    Ok(())
}

/// What `READ_LIST` answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ListReply {
    /// The stored payload of the current version.
    Hit(String),
    /// Our lease, for this version: read the database, then fill.
    Leased(String),
    /// Another reader holds the lease of the current version.
    Wait,
    /// A writer is in flight: read the database, store nothing.
    Bypass,
}

/// Runs `READ_LIST` for the list at `key`.
pub(crate) async fn read_list(
    client: &RedisClient,
    scripts: &Scripts,
    queries: &QueryKeys<'_>,
    key: &str,
    token: u64,
) -> Result<ListReply> {
    let (kind, data): (String, String) = client
        .eval(
            &scripts.read_list,
            &[queries.version, queries.writers, key][..],
            (token, LEASE.as_millis() as u64),
        )
        .await?;
    Ok(match kind.as_str() {
        "H" => ListReply::Hit(data),
        "L" => ListReply::Leased(data),
        "W" => ListReply::Wait,
        _ => ListReply::Bypass,
    })
}

/// Runs `FILL_LIST`: stores `payload` (empty: only gives the lease back) if the
/// lease taken at `version` still holds. `true` when stored.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fill_list(
    client: &RedisClient,
    scripts: &Scripts,
    queries: &QueryKeys<'_>,
    key: &str,
    token: u64,
    version: &str,
    payload: &str,
    ttl: Duration,
) -> Result<bool> {
    let stored: i64 = client
        .eval(
            &scripts.fill_list,
            &[queries.version, queries.writers, key][..],
            (token, version, payload, ttl.as_millis().max(1) as u64),
        )
        .await?;
    Ok(stored == 1)
}

/// `FILL` without the lease check: what the protocol must never do. Used only while
/// a test turned `pause::set_broken_fill` on, to show the coherence checker fails.
const BROKEN_FILL: &str = r"
local out = {}
for i, k in ipairs(KEYS) do
  local v = ARGV[3 + i]
  if v == '' then
    redis.call('DEL', k)
  elseif v == 'N' then
    redis.call('SET', k, v, 'PX', ARGV[3])
  else
    redis.call('SET', k, v, 'PX', ARGV[2])
  end
  out[i] = 1
end
return out
";

fn broken_fill_script() -> &'static Script {
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(BROKEN_FILL))
}
