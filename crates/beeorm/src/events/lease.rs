//! Consumer leases: at most N consumers of a group run at once, across processes.
//!
//! Slot `n` of a group is the key `beeorm:lease:{<stream>}:<group>:<n>`, set with
//! `SET NX PX ttl` to a token only its holder knows (the locker's token and its
//! compare-and-expire / compare-and-delete scripts). A consumer takes the first free
//! slot and names itself `consumer-<n>` after it, so a process that restarts in slot
//! `n` finds the entries its predecessor left pending under that name. A task renews
//! the lease every `ttl / 3`; when a renewal finds the key gone or another token, or
//! Redis cannot be reached for a whole TTL, the lease is lost and the consumer stops
//! before it takes another batch. The lease is released when the consumer stops, and
//! from `Drop` (a spawned release) when its future is dropped; a process that dies
//! holds its slot until the TTL runs out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::redis::{refresh_script, release_script, RedisClient};
use crate::{Error, Result};

/// The key of slot `slot` (hash-tagged by the stream: one cluster slot per stream).
pub(crate) fn lease_key(stream: &str, group: &str, slot: u32) -> String {
    format!("beeorm:lease:{{{stream}}}:{group}:{slot}")
}

/// A held consumer slot.
pub(crate) struct Lease {
    client: RedisClient,
    key: String,
    token: String,
    slot: u32,
    lost: Arc<AtomicBool>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Lease {
    /// Takes the first free slot among `0..max`;
    /// [`Error::ConsumersBusy`] when all are held.
    pub(crate) async fn acquire(
        client: &RedisClient,
        stream: &str,
        group: &str,
        max: u32,
        ttl: Duration,
    ) -> Result<Lease> {
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let token = crate::redis::token();
        for slot in 0..max {
            let key = lease_key(stream, group, slot);
            let mut cmd = ::redis::cmd("SET");
            cmd.arg(&key).arg(&token).arg("NX").arg("PX").arg(ttl_ms);
            let set: Option<String> = client.run("SET", cmd).await?;
            if set.is_none() {
                continue;
            }
            let lost = Arc::new(AtomicBool::new(false));
            let renewer = tokio::spawn(renew(
                client.clone(),
                key.clone(),
                token.clone(),
                ttl,
                lost.clone(),
            ));
            tracing::debug!(stream, group, slot, "consumer lease taken");
            return Ok(Lease {
                client: client.clone(),
                key,
                token,
                slot,
                lost,
                renewer: Some(renewer),
            });
        }
        Err(Error::ConsumersBusy {
            stream: stream.to_string(),
            group: group.to_string(),
            max,
        })
    }

    /// The consumer name of this slot.
    pub(crate) fn consumer_name(&self) -> String {
        format!("consumer-{}", self.slot)
    }

    /// Whether a renewal found the lease gone (or could not renew it for a TTL).
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Stops renewing and deletes the key if it still holds our token.
    pub(crate) async fn release(mut self) -> Result<()> {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let result = release(&self.client, &self.key, &self.token).await;
        // Released (or failed: the TTL frees it): nothing left for `Drop` to do.
        self.token.clear();
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        if self.token.is_empty() {
            return;
        }
        // The consumer's future was dropped: release in the background (without a
        // runtime, the TTL frees the slot).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (client, key, token) = (
                self.client.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.token),
            );
            handle.spawn(async move {
                if let Err(e) = release(&client, &key, &token).await {
                    tracing::warn!(error = %e, "releasing a dropped consumer's lease failed; it expires with its TTL");
                }
            });
        }
    }
}

async fn release(client: &RedisClient, key: &str, token: &str) -> Result<()> {
    let _: i64 = client.eval(release_script(), key, token).await?;
    Ok(())
}

/// Renews the lease every `ttl / 3` until aborted or lost.
async fn renew(
    client: RedisClient,
    key: String,
    token: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
) {
    let ttl_ms = ttl.as_millis().max(1) as u64;
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let attempt = Instant::now();
        match client
            .eval::<i64, _, _>(refresh_script(), &key, (&token, ttl_ms))
            .await
        {
            Ok(1) => renewed = attempt,
            Ok(_) => {
                tracing::warn!(lease = %key, "consumer lease lost: it expired or was taken");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(lease = %key, error = %e, "renewing the consumer lease failed");
                // The key may expire before the next attempt: give the slot up now.
                if renewed.elapsed() >= ttl * 2 / 3 {
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}
