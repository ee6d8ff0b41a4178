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
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
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

const LOCK: &str = r"
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  local n = 1
  if v and string.sub(v, 1, 1) == 'P' then
    n = (tonumber(string.sub(v, 2)) or 0) + 1
  end
  redis.call('SET', k, 'P' .. n, 'PX', ARGV[1])
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 1
";

const UNLOCK: &str = r"
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  local n = 0
  if v and string.sub(v, 1, 1) == 'P' then
    n = (tonumber(string.sub(v, 2)) or 1) - 1
  end
  if n > 0 then
    redis.call('SET', k, 'P' .. n, 'KEEPTTL')
  else
    redis.call('DEL', k)
  end
end
if ARGV[1] ~= '' then
  redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return 1
";

/// The four scripts, hashed once.
pub(crate) struct Scripts {
    read: Script,
    fill: Script,
    lock: Script,
    unlock: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            read: Script::new(READ),
            fill: Script::new(FILL),
            lock: Script::new(LOCK),
            unlock: Script::new(UNLOCK),
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
