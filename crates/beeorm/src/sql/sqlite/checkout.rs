//! Checking SQLite connections out of their pool and back.
//!
//! A small pool of our own rather than `deadpool`'s unmanaged one: a SQLite read by
//! primary key takes about 1.5 µs, and deadpool's checkout and return (a queue behind
//! a mutex plus a tokio semaphore, each taken on checkout and on return) measured
//! about 115 ns of it — 7 %. Here a checkout is one uncontended mutex around a stack
//! of idle connections; the [`Notify`] is touched only while someone waits.
//!
//! Waiting is fair: while a task waits, a new checkout queues behind it instead of
//! taking the connection just given back, and waiters are woken in arrival order. A
//! waiter dropped (its timeout, a cancelled request) leaves the queue; a wake-up it
//! received passes to the next one (tokio's `Notified` forwards it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// The idle connections of one pool, and who waits for one.
pub(crate) struct Idle {
    conns: Mutex<Vec<rusqlite::Connection>>,
    /// Tasks inside [`Idle::take`].
    waiting: AtomicUsize,
    /// Signalled when a connection comes back while someone waits.
    freed: Notify,
}

/// A SQLite connection checked out of its pool. Wherever it is dropped (in a
/// `Conn`, or on the blocking thread of a statement whose future was dropped), it
/// goes back to the pool in autocommit mode: a transaction still open is rolled
/// back first (`is_autocommit` reads a flag, so the check costs nothing); if that
/// rollback fails, the connection is closed instead and the pool has one less.
pub(crate) struct SqliteConn {
    conn: Option<rusqlite::Connection>,
    idle: Arc<Idle>,
}

impl SqliteConn {
    /// The connection (`None` only while it is dropped).
    #[inline]
    pub(crate) fn get(&mut self) -> Option<&mut rusqlite::Connection> {
        self.conn.as_mut()
    }
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "SQLite: rollback of a transaction left open failed; the connection is closed");
                // Never back to the pool inside a transaction.
                return;
            }
        }
        self.idle.give_back(conn);
    }
}

/// Counts a task in [`Idle::waiting`] for as long as it lives (so a waiter whose
/// future is dropped stops counting).
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Queued(waiting)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Idle {
    /// A pool of these connections, all idle.
    pub(crate) fn new(conns: Vec<rusqlite::Connection>) -> Arc<Self> {
        Arc::new(Idle {
            conns: Mutex::new(conns),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        })
    }

    /// An idle connection now, unless none is idle or tasks are waiting for one
    /// (they come first).
    #[inline]
    pub(crate) fn try_take(self: &Arc<Self>) -> Option<SqliteConn> {
        if self.waiting.load(Ordering::Relaxed) > 0 {
            return None;
        }
        self.pop()
    }

    /// The next idle connection, waiting (without a limit: the caller sets one) in
    /// arrival order.
    pub(crate) async fn take(self: &Arc<Self>) -> SqliteConn {
        let _queued = Queued::new(&self.waiting);
        loop {
            let notified = self.freed.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking, so a connection given back in between wakes it.
            notified.as_mut().enable();
            if let Some(conn) = self.pop() {
                return conn;
            }
            notified.await;
        }
    }

    /// How many connections are idle.
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.lock().len()
    }

    fn pop(self: &Arc<Self>) -> Option<SqliteConn> {
        let conn = self.lock().pop()?;
        Some(SqliteConn {
            conn: Some(conn),
            idle: Arc::clone(self),
        })
    }

    fn give_back(&self, conn: rusqlite::Connection) {
        self.lock().push(conn);
        // Pushed under the lock before looking: a waiter that found the stack empty
        // counted itself before its look, so it is seen here.
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.freed.notify_one();
        }
    }

    /// The stack; a panic while it was held cannot leave it inconsistent (a push or a
    /// pop), so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, Vec<rusqlite::Connection>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    fn pool(n: usize) -> Arc<Idle> {
        Idle::new(
            (0..n)
                .map(|_| rusqlite::Connection::open_in_memory().unwrap())
                .collect(),
        )
    }

    #[tokio::test]
    async fn a_connection_goes_back_when_dropped() {
        let idle = pool(2);
        let a = idle.try_take().unwrap();
        let b = idle.try_take().unwrap();
        assert!(idle.try_take().is_none());
        drop(a);
        assert_eq!(idle.idle_count(), 1);
        drop(b);
        assert_eq!(idle.idle_count(), 2);
    }

    #[tokio::test]
    async fn a_transaction_left_open_is_rolled_back_before_the_connection_goes_back() {
        let idle = pool(1);
        let mut c = idle.try_take().unwrap();
        let conn = c.get().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (1);")
            .unwrap();
        assert!(!conn.is_autocommit());
        drop(c);
        let mut c = idle.try_take().unwrap();
        let conn = c.get().unwrap();
        assert!(conn.is_autocommit());
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn waiters_get_connections_in_arrival_order_before_new_checkouts() {
        let idle = pool(1);
        let held = idle.try_take().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..3 {
            let mine = idle.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let c = mine.take().await;
                tx.send(i).unwrap();
                tokio::task::yield_now().await;
                drop(c);
            }));
            // Each waiter queues before the next one starts.
            while idle.waiting.load(Ordering::SeqCst) < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        // Someone waits: a new checkout does not jump the queue.
        assert!(idle.try_take().is_none());
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let order: Vec<usize> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(order, [0, 1, 2]);
        assert_eq!(idle.waiting.load(Ordering::SeqCst), 0);
        assert!(idle.try_take().is_some());
    }

    #[tokio::test]
    async fn a_waiter_dropped_stops_counting_and_passes_its_wake_up_on() {
        let idle = pool(1);
        let held = idle.try_take().unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(20), idle.take()).await;
        assert!(gave_up.is_err());
        assert_eq!(idle.waiting.load(Ordering::SeqCst), 0);
        let next = {
            let idle = idle.clone();
            tokio::spawn(async move { idle.take().await.get().is_some() })
        };
        tokio::task::yield_now().await;
        drop(held);
        assert!(tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .unwrap()
            .unwrap());
    }
}
