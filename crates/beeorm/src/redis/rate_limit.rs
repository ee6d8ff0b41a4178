//! The rate limiter (E3): GCRA (generic cell rate algorithm) in one Lua script, as
//! go-redis/redis_rate does, so a decision is one round trip and atomic on the server.
//!
//! GCRA keeps one number per resource: the theoretical arrival time (TAT) of the next
//! request. Each allowed request pushes it forward by the emission interval
//! (`period / rate`); a request is allowed while TAT minus the burst allowance is not
//! in the future. Unlike redis_rate we count in whole microseconds relative to
//! 2017-01-01 (integers up to 2^53 are exact in Lua's doubles) and store the TAT as an
//! integer string, so L concurrent callers against a limit of L are allowed exactly L:
//! no float rounding can let an extra one through or turn away the last one.

use std::time::Duration;

use super::{RedisClient, Script};
use crate::{Error, Result};

const GCRA: &str = r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call("TIME")
local now = (tonumber(t[1]) - 1483228800) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call("GET", key) or now) or now
if tat < now then tat = now end
local new_tat = tat + interval * cost
local diff = now - (new_tat - interval * burst)
if diff < 0 then
  return {0, 0, -diff, tat - now}
end
local reset_after = new_tat - now
redis.call("SET", key, string.format("%.0f", new_tat), "PX", math.ceil(reset_after / 1000))
return {1, math.floor(diff / interval), 0, reset_after}
"#;

static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();

/// A rate: `rate` requests per `period`, with bursts of up to `burst` requests (by
/// default `burst == rate`: a fresh resource may use its whole period's allowance at
/// once, then one request per `period / rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    rate: u64,
    burst: u64,
    period: Duration,
}

impl Limit {
    /// `rate` requests per `period`.
    pub fn new(rate: u64, period: Duration) -> Limit {
        Limit {
            rate,
            burst: rate,
            period,
        }
    }

    /// `n` requests per second.
    pub fn per_second(n: u64) -> Limit {
        Limit::new(n, Duration::from_secs(1))
    }

    /// `n` requests per minute.
    pub fn per_minute(n: u64) -> Limit {
        Limit::new(n, Duration::from_secs(60))
    }

    /// `n` requests per hour.
    pub fn per_hour(n: u64) -> Limit {
        Limit::new(n, Duration::from_secs(3600))
    }

    /// The same rate with another burst size.
    pub fn with_burst(self, burst: u64) -> Limit {
        Limit { burst, ..self }
    }

    /// Requests per period.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The time between two requests at the steady rate, in whole microseconds
    /// (rounded up: never faster than the limit, so at most one request per µs).
    fn interval_us(&self, resource: &str) -> Result<u64> {
        let period = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        if self.rate == 0 || self.burst == 0 || period == 0 {
            return Err(Error::config(format!(
                "rate limit {self:?} for `{resource}`: rate, burst and period (in whole µs) must be above zero"
            )));
        }
        Ok(period.div_ceil(self.rate))
    }
}

/// The decision of [`RedisClient::rate_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Whether this request may go ahead.
    pub allowed: bool,
    /// How many more requests would be allowed right now.
    pub remaining: u64,
    /// When not allowed: how long until one request will be.
    pub retry_after: Option<Duration>,
    /// How long until the resource is back to a full burst.
    pub reset_after: Duration,
}

impl RedisClient {
    /// Counts one request against `resource` (key `beeorm:rate:<resource>`) and says
    /// whether it is allowed under `limit` (GCRA; exact under concurrency, see the
    /// module docs). The seed's `RateLimit(resource, redis_rate.PerMinute(10))`:
    ///
    /// ```no_run
    /// # use beeorm::redis::Limit;
    /// # async fn demo(engine: &beeorm::Engine) -> beeorm::Result<()> {
    /// let decision = engine.redis("default")?.rate_limit("login:42", Limit::per_minute(10)).await?;
    /// if !decision.allowed {
    ///     println!("try again in {:?}", decision.retry_after);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Refused before anything is sent: an empty `resource`
    /// ([`Error::InvalidArgument`]), and a limit whose rate, burst or period (counted
    /// in whole microseconds) is zero ([`Error::Config`]). A steady rate above one
    /// request per microsecond is capped at that.
    pub async fn rate_limit(&self, resource: &str, limit: Limit) -> Result<RateLimit> {
        if resource.is_empty() {
            return Err(Error::InvalidArgument {
                call: "RedisClient::rate_limit(\"\")".to_string(),
                reason: "a rate limit needs a non-empty resource name".to_string(),
            });
        }
        let interval = limit.interval_us(resource)?;
        let script = SCRIPT.get_or_init(|| Script::new(GCRA));
        let key = format!("beeorm:rate:{resource}");
        let (allowed, remaining, retry_after, reset_after): (u8, u64, u64, u64) = self
            .eval(script, &key, (interval, limit.burst, 1u64))
            .await?;
        Ok(RateLimit {
            allowed: allowed == 1,
            remaining,
            retry_after: (allowed == 0).then(|| Duration::from_micros(retry_after)),
            reset_after: Duration::from_micros(reset_after),
        })
    }
}
