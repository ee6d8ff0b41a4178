//! The shared lock (E4): [`Locker`] and [`Lock`].
//!
//! A lock is the key `lock:<locker>:<name>` holding a token only its holder knows, set
//! with `SET NX PX ttl`, so it vanishes after its TTL if the holder dies. The key
//! carries the locker's registered name: two lockers are two namespaces, even on one
//! Redis pool (lock `invoice:42` of locker `billing` is not that of locker `export`),
//! while every `Locker` handle of one name, in any process, shares its locks. Release, refresh
//! and TTL are Lua scripts that act only while the key still holds *our* token
//! (compare-and-delete): a holder whose lock expired and was taken by someone else
//! gets [`Error::LockLost`] and can never delete or extend the new holder's lock.
//!
//! `obtain` polls (`SET NX`) with a short, growing pause until `wait` runs out. A lock
//! not obtained in time is [`Error::LockNotObtained`] — the same error
//! `Flusher::flush_with_lock` returns, so "someone else holds it" has one shape
//! whichever call met it, and `?` cannot mistake it for success. Match on it to skip
//! or retry. A `wait` of zero means one attempt. Redis errors are errors, and so are
//! arguments no lock can honour ([`Error::InvalidArgument`]: an empty name, a TTL
//! under 1 ms), refused before anything is sent.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{RedisClient, Script};
use crate::{Error, Result};

const RELEASE: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
"#;

const REFRESH: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0
"#;

const TTL: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PTTL", KEYS[1]) end
return -3
"#;

struct Scripts {
    release: Script,
    refresh: Script,
    ttl: Script,
}

static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();

/// The compare-and-delete script (`KEYS[1]`, token `ARGV[1]`): deletes the key only
/// while it holds the token; also the event consumers' lease release.
pub(crate) fn release_script() -> &'static Script {
    &scripts().release
}

/// The compare-and-expire script (`KEYS[1]`, token `ARGV[1]`, TTL in ms `ARGV[2]`):
/// also the event consumers' lease renewal.
pub(crate) fn refresh_script() -> &'static Script {
    &scripts().refresh
}

fn scripts() -> &'static Scripts {
    SCRIPTS.get_or_init(|| Scripts {
        release: Script::new(RELEASE),
        refresh: Script::new(REFRESH),
        ttl: Script::new(TTL),
    })
}

/// Shortest and longest pause between two attempts of `obtain`.
const MIN_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// A token no other holder has: process-random seed, time, counter.
pub(crate) fn token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}{:x}-{n:x}", h.finish(), std::process::id())
}

/// Redis expires keys in whole milliseconds (`PX`), so a TTL is a whole number of
/// them: at least 1 ms (a zero TTL used to become a 1 ms lock silently), at most what
/// `PX` accepts; a fraction of a millisecond is rounded down.
fn ttl_millis(call: &str, name: &str, ttl: Duration) -> Result<u64> {
    let ms = ttl.as_millis();
    if ms == 0 {
        return Err(Error::InvalidArgument {
            call: format!("{call}(\"{name}\")"),
            reason: format!("a lock TTL must be at least 1 ms, got {ttl:?}"),
        });
    }
    // PX takes a signed 64-bit count, less the server's current time in ms.
    const MAX_MS: u128 = (i64::MAX / 2) as u128;
    if ms > MAX_MS {
        return Err(Error::InvalidArgument {
            call: format!("{call}(\"{name}\")"),
            reason: format!("a lock TTL must be at most {MAX_MS} ms, got {ttl:?}"),
        });
    }
    Ok(ms as u64)
}

/// Takes shared locks on one Redis pool. Register with
/// [`Registry::register_locker`](crate::Registry::register_locker), get it with
/// [`Engine::locker`](crate::Engine::locker).
///
/// ```no_run
/// # use std::time::Duration;
/// # async fn demo(engine: &beeorm::Engine) -> beeorm::Result<()> {
/// let locker = engine.locker("default")?;
/// match locker.obtain("invoice:42", Duration::from_secs(5), Duration::from_secs(1)).await {
///     Ok(lock) => {
///         // … work that must not run twice at once …
///         lock.release().await?; // Err(LockLost) if the TTL ran out meanwhile
///     }
///     Err(beeorm::Error::LockNotObtained { .. }) => { /* someone else is on it */ }
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Locker {
    name: String,
    client: RedisClient,
}

impl Locker {
    pub(crate) fn new(name: &str, client: RedisClient) -> Locker {
        Locker {
            name: name.to_string(),
            client,
        }
    }

    /// The locker's registered name: the namespace of its locks.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Redis pool the locks live in.
    pub fn client(&self) -> &RedisClient {
        &self.client
    }

    /// Takes the lock `name` of this locker for `ttl`, trying again until `wait` has
    /// passed (`Duration::ZERO`: one attempt). [`Error::LockNotObtained`]: someone
    /// else held it all along.
    ///
    /// Refused with [`Error::InvalidArgument`], before anything is sent: an empty
    /// `name`, and a `ttl` under 1 ms (Redis counts TTLs in whole milliseconds; a
    /// zero TTL would be no lock at all). A fraction of a millisecond is rounded down.
    pub async fn obtain(&self, name: &str, ttl: Duration, wait: Duration) -> Result<Lock> {
        if name.is_empty() {
            return Err(Error::InvalidArgument {
                call: "Locker::obtain(\"\")".to_string(),
                reason: "a lock needs a non-empty name".to_string(),
            });
        }
        let ttl_ms = ttl_millis("Locker::obtain", name, ttl)?;
        let key = format!("lock:{}:{name}", self.name);
        let token = token();
        // `None`: a wait too long to add to the clock (`Duration::MAX`) waits for good.
        let deadline = Instant::now().checked_add(wait);
        let mut pause = MIN_PAUSE;
        loop {
            if self
                .client
                .set_nx(
                    key.as_str(),
                    token.as_str(),
                    Some(Duration::from_millis(ttl_ms)),
                )
                .await?
            {
                return Ok(Lock {
                    client: self.client.clone(),
                    name: name.to_string(),
                    key,
                    token,
                    done: false,
                });
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if now >= d => {
                    return Err(Error::LockNotObtained {
                        name: name.to_string(),
                        wait,
                    })
                }
                Some(d) => d - now,
                None => pause,
            };
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}

/// A held lock ([`Locker::obtain`]). Release it with [`Lock::release`]; a lock dropped
/// unreleased is released in the background (when a Tokio runtime is running), and
/// otherwise expires after its TTL.
#[derive(Debug)]
pub struct Lock {
    client: RedisClient,
    name: String,
    key: String,
    token: String,
    done: bool,
}

impl Lock {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Releases the lock. [`Error::LockLost`] when it had expired (and maybe been taken
    /// by someone else, whose lock stays untouched).
    pub async fn release(mut self) -> Result<()> {
        self.done = true;
        let deleted: i64 = self
            .client
            .eval(&scripts().release, &self.key, &self.token)
            .await?;
        if deleted == 1 {
            Ok(())
        } else {
            Err(self.lost())
        }
    }

    /// Sets the lock's time to live to `ttl` from now. [`Error::LockLost`] when it was
    /// lost; [`Error::InvalidArgument`] (the lock left as it was) for a `ttl` under
    /// 1 ms, as in [`Locker::obtain`].
    pub async fn refresh(&self, ttl: Duration) -> Result<()> {
        let ttl_ms = ttl_millis("Lock::refresh", &self.name, ttl)?;
        let done: i64 = self
            .client
            .eval(&scripts().refresh, &self.key, (&self.token, ttl_ms))
            .await?;
        if done == 1 {
            Ok(())
        } else {
            Err(self.lost())
        }
    }

    /// How long the lock is still held. [`Error::LockLost`] when it was lost: this is
    /// how a holder detects that its TTL ran out.
    pub async fn ttl(&self) -> Result<Duration> {
        let ms: i64 = self
            .client
            .eval(&scripts().ttl, &self.key, &self.token)
            .await?;
        if ms < 0 {
            return Err(self.lost());
        }
        Ok(Duration::from_millis(ms as u64))
    }

    fn lost(&self) -> Error {
        Error::LockLost {
            name: self.name.clone(),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.client.clone();
        let key = std::mem::take(&mut self.key);
        let token = std::mem::take(&mut self.token);
        handle.spawn(async move {
            // Compare-and-delete: harmless when the lock was lost meanwhile.
            let _ = client
                .eval::<i64, _, _>(&scripts().release, &key, &token)
                .await;
        });
    }
}
