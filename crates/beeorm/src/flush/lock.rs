//! Flushing under a shared Redis lock (C5): the seed's `FlushWithLock` and
//! `FlushInTransactionWithLock`. The lock only wraps the write path; it does not
//! change it. A lock not obtained is [`Error::LockNotObtained`] here as in
//! [`Locker::obtain`](crate::Locker::obtain): one shape for one outcome.

use std::time::Duration;

use super::Flusher;
use crate::{Error, Result};

impl Flusher<'_> {
    /// Takes the lock `lock_name` of locker `locker` (waiting up to `wait`, holding it
    /// for at most `ttl`), flushes, and releases the lock.
    ///
    /// Errors: [`Error::LockNotObtained`] when the lock stayed taken for the whole
    /// wait (nothing is written; the same error as
    /// [`Locker::obtain`](crate::Locker::obtain)'s); the flush's error (the lock is released); and
    /// [`Error::WrittenButUnlockFailed`] when the flush committed but the release
    /// failed — the lock expired during the flush (its source is [`Error::LockLost`]:
    /// another holder may have run at the same time) or Redis failed. The rows *are*
    /// written then ([`Error::rows_written`]); do not retry the flush.
    pub async fn flush_with_lock(
        &mut self,
        locker: &str,
        lock_name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<()> {
        self.locked(locker, lock_name, ttl, wait, false).await
    }

    /// Like [`Flusher::flush_with_lock`], with the flush in a transaction
    /// ([`Flusher::flush_in_transaction`]).
    pub async fn flush_in_transaction_with_lock(
        &mut self,
        locker: &str,
        lock_name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<()> {
        self.locked(locker, lock_name, ttl, wait, true).await
    }

    async fn locked(
        &mut self,
        locker: &str,
        lock_name: &str,
        ttl: Duration,
        wait: Duration,
        in_transaction: bool,
    ) -> Result<()> {
        // Not obtained: `Error::LockNotObtained`, as from `Locker::obtain` itself.
        let lock = self
            .engine
            .locker(locker)?
            .obtain(lock_name, ttl, wait)
            .await?;
        let flushed = if in_transaction {
            self.flush_in_transaction().await
        } else {
            self.flush().await
        };
        let released = lock.release().await;
        flushed?;
        released.map_err(|e| Error::WrittenButUnlockFailed {
            name: lock_name.to_string(),
            source: Box::new(e),
        })
    }
}
