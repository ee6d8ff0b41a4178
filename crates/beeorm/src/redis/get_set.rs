//! Cache-aside (E2): [`RedisClient::get_set`].
//!
//! A miss is filled by one provider call even when many tasks of this process ask for
//! the key at once: the first takes a per-key in-process lock, the others wait on it
//! and then find the value in Redis. (Other processes may each call their provider
//! once; a cross-process guarantee would need a Redis lock, at the cost of a round trip
//! on every miss.)

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::OwnedMutexGuard;

use super::RedisClient;
use crate::Error;

/// Per-key async locks, removed when nobody holds or waits for them.
#[derive(Default)]
pub(crate) struct KeyedLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub(crate) struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub(crate) async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let lock = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        KeyGuard {
            locks: self,
            key: key.to_string(),
            lock,
            guard: Some(guard),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map.lock().unwrap_or_else(|e| e.into_inner());
        // Clones are only made under the map lock: the map's and ours mean no waiter.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.key);
        }
    }
}

impl RedisClient {
    /// Cache-aside: the value cached under `key`, or else `provider`'s value, which is
    /// cached for `ttl` (`Duration::ZERO`: no expiry) and returned. Values are stored
    /// as JSON. Concurrent callers of this process that miss the same key wait for one
    /// provider call. A cached value that no longer decodes as `V` (its type changed)
    /// counts as a miss and is overwritten.
    ///
    /// The provider may fail with any error type that a [`crate::Error`] converts into
    /// (`beeorm::Error` itself, `anyhow::Error`, `Box<dyn Error + Send + Sync>`…); its
    /// error is returned as is and nothing is cached.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(engine: &beeorm::Engine) -> beeorm::Result<()> {
    /// let redis = engine.redis("default")?;
    /// let greeting: String = redis
    ///     .get_set("greeting", Duration::from_secs(60), || async {
    ///         Ok::<_, beeorm::Error>("hello".to_string())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_set<V, E, F, Fut>(&self, key: &str, ttl: Duration, provider: F) -> Result<V, E>
    where
        V: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.cached(key).await? {
            return Ok(v);
        }
        let _guard = self.pool.inflight.lock(key).await;
        // Someone may have filled it while we waited.
        if let Some(v) = self.cached(key).await? {
            return Ok(v);
        }
        let value = provider().await?;
        let bytes = serde_json::to_vec(&value).map_err(|source| Error::Serialization {
            key: key.to_string(),
            source,
        })?;
        if ttl.is_zero() {
            self.set(key, bytes).await?;
        } else {
            self.set_ex(key, bytes, ttl).await?;
        }
        Ok(value)
    }

    async fn cached<V: DeserializeOwned>(&self, key: &str) -> crate::Result<Option<V>> {
        let Some(bytes) = self.get::<_, Vec<u8>>(key).await? else {
            return Ok(None);
        };
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                tracing::warn!(pool = %self.pool_name(), error = %e, "get_set: cached value does not decode, treating it as a miss");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn key_locks_are_removed_when_free() {
        let locks = KeyedLocks::default();
        {
            let _a = locks.lock("a").await;
            let _b = locks.lock("b").await;
            assert_eq!(locks.len(), 2);
        }
        assert_eq!(locks.len(), 0);
    }
}
