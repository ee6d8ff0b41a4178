//! A4, E4, C5: the shared lock — exclusive, expires after its TTL, a lost lock is a
//! typed error that never touches the new holder's lock — and flushing under it.
#![allow(clippy::unwrap_used)]

mod common;
mod common_redis;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beeorm::prelude::*;
use common::{Kind, TestDb};
use common_redis::{cleanup, engine, prefix, registry};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lock_is_exclusive_under_8_concurrent_contenders() {
    let engine = engine(&registry()).await;
    let locker = engine.locker("default").unwrap();
    let name = prefix("exclusive");
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (locker, name) = (locker.clone(), name.clone());
        let (inside, most, done) = (inside.clone(), most.clone(), done.clone());
        tasks.spawn(async move {
            for _ in 0..3 {
                let lock = locker
                    .obtain(&name, 5 * SEC, 20 * SEC)
                    .await
                    .expect("obtained within the wait");
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
                lock.release().await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 24);
    assert_eq!(most.load(Ordering::SeqCst), 1, "two holders at once");
    cleanup(&locker.client().clone(), &name).await;
}

#[tokio::test]
async fn a_lock_expires_after_its_ttl() {
    let engine = engine(&registry()).await;
    let locker = engine.locker("default").unwrap();
    let name = prefix("expires");
    let lock = locker
        .obtain(&name, Duration::from_millis(300), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(lock.name(), name);
    let ttl = lock.ttl().await.unwrap();
    assert!(
        ttl > Duration::ZERO && ttl <= Duration::from_millis(300),
        "{ttl:?}"
    );
    assert!(locker
        .obtain(&name, SEC, Duration::ZERO)
        .await
        .is_err_and(|e| matches!(e, Error::LockNotObtained { .. })));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        lock.ttl().await.unwrap_err(),
        Error::LockLost { name: n } if n == name
    ));
    let again = locker.obtain(&name, SEC, Duration::ZERO).await;
    assert!(again.is_ok(), "an expired lock is free");
    again.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn a_lost_lock_is_a_typed_error_and_never_touches_the_new_holders_lock() {
    let engine = engine(&registry()).await;
    let locker = engine.locker("default").unwrap();
    let name = prefix("lost");
    let old = locker
        .obtain(&name, Duration::from_millis(100), Duration::ZERO)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let new = locker
        .obtain(&name, 10 * SEC, Duration::ZERO)
        .await
        .unwrap();
    assert!(matches!(
        old.refresh(10 * SEC).await.unwrap_err(),
        Error::LockLost { .. }
    ));
    assert!(matches!(
        old.release().await.unwrap_err(),
        Error::LockLost { .. }
    ));
    // The new holder's lock is untouched: still held, TTL not shortened.
    assert!(new.ttl().await.unwrap() > 9 * SEC);
    assert!(locker
        .obtain(&name, SEC, Duration::ZERO)
        .await
        .is_err_and(|e| matches!(e, Error::LockNotObtained { .. })));
    new.release().await.unwrap();
}

#[tokio::test]
async fn refresh_extends_a_held_lock() {
    let engine = engine(&registry()).await;
    let locker = engine.locker("default").unwrap();
    let name = prefix("refresh");
    let lock = locker
        .obtain(&name, Duration::from_millis(300), Duration::ZERO)
        .await
        .unwrap();
    lock.refresh(5 * SEC).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(lock.ttl().await.unwrap() > 4 * SEC);
    lock.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obtain_waits_for_the_holder_and_gives_up_after_the_wait() {
    let engine = engine(&registry()).await;
    let locker = engine.locker("default").unwrap();
    let name = prefix("wait");
    let held = locker
        .obtain(&name, 10 * SEC, Duration::ZERO)
        .await
        .unwrap();
    let start = Instant::now();
    let none = locker.obtain(&name, SEC, Duration::from_millis(150)).await;
    assert!(matches!(none, Err(Error::LockNotObtained { .. })));
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert!(start.elapsed() < SEC);

    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        held.release().await.unwrap();
    });
    let start = Instant::now();
    let got = locker.obtain(&name, SEC, 5 * SEC).await;
    assert!(got.is_ok());
    assert!(start.elapsed() >= Duration::from_millis(90));
    assert!(start.elapsed() < 2 * SEC, "{:?}", start.elapsed());

    // A lock dropped without release is released in the background.
    drop(got);
    let start = Instant::now();
    let again = locker.obtain(&name, SEC, 2 * SEC).await;
    assert!(again.is_ok());
    assert!(start.elapsed() < SEC);
}

#[derive(Entity, Debug)]
#[orm(table = "counters")]
struct Counter {
    id: u64,
    value: u32,
}

async fn flush_engine(test: &str) -> (TestDb, Engine) {
    let db = TestDb::new(Kind::Sqlite, test).await;
    let mut r = db.registry();
    r.register_redis_pool("locks", &common_redis::redis_url(), 0)
        .register_locker("default", "locks")
        .register_entity::<Counter>();
    let engine = r.validate().await.unwrap().create_engine();
    common::sync(&engine).await;
    let mut row = Tracked::new(Counter { id: 0, value: 0 });
    engine.flush(&mut row).await.unwrap();
    (db, engine)
}

/// A flush under the lock waits while someone else holds it, then writes.
async fn waits_for_the_holder(engine: &Engine, name: &str, value: u32, in_transaction: bool) {
    let locker = engine.locker("default").unwrap();
    let held = locker.obtain(name, 10 * SEC, Duration::ZERO).await.unwrap();
    let task = {
        let engine = engine.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let mut row = engine.load_by_id::<Counter>(1).await.unwrap().unwrap();
            row.value = value;
            let mut flusher = engine.flusher();
            flusher.track(&mut row);
            if in_transaction {
                flusher
                    .flush_in_transaction_with_lock("default", &name, 10 * SEC, 10 * SEC)
                    .await
            } else {
                flusher
                    .flush_with_lock("default", &name, 10 * SEC, 10 * SEC)
                    .await
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let now = engine.load_by_id::<Counter>(1).await.unwrap().unwrap();
    assert_ne!(
        now.value, value,
        "flushed while the lock was held by another"
    );
    held.release().await.unwrap();
    task.await.unwrap().unwrap();
    let now = engine.load_by_id::<Counter>(1).await.unwrap().unwrap();
    assert_eq!(now.value, value);
    // The flusher released its lock.
    locker
        .obtain(name, SEC, Duration::ZERO)
        .await
        .expect("the flusher released its lock")
        .release()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flush_with_lock_writes_under_the_lock() {
    let (db, engine) = flush_engine("redis_flush_lock").await;
    let name = prefix("flush");
    waits_for_the_holder(&engine, &name, 1, false).await;
    waits_for_the_holder(&engine, &name, 2, true).await;

    // 8 flushers at once on one lock: every one of them writes.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (engine, name) = (engine.clone(), name.clone());
        tasks.spawn(async move {
            let mut row = Tracked::new(Counter {
                id: 0,
                value: 100 + i,
            });
            engine
                .flusher()
                .track(&mut row)
                .flush_in_transaction_with_lock("default", &name, 10 * SEC, 30 * SEC)
                .await
                .unwrap();
            row.id
        });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    assert!(ids.iter().all(|id| *id > 1));

    // Held by someone else for the whole wait: LockNotObtained, nothing written.
    let locker = engine.locker("default").unwrap();
    let held = locker
        .obtain(&name, 10 * SEC, Duration::ZERO)
        .await
        .unwrap();
    let mut row = engine.load_by_id::<Counter>(1).await.unwrap().unwrap();
    row.value = 999;
    let err = engine
        .flusher()
        .track(&mut row)
        .flush_with_lock("default", &name, SEC, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::LockNotObtained { name: n, .. } if *n == name),
        "{err}"
    );
    assert_eq!(
        engine
            .load_by_id::<Counter>(1)
            .await
            .unwrap()
            .unwrap()
            .value,
        2
    );
    held.release().await.unwrap();

    // An unknown locker is a typed error.
    let err = engine
        .flusher()
        .track(&mut row)
        .flush_with_lock("nope", &name, SEC, SEC)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownPool { kind: "locker", .. }),
        "{err}"
    );
    cleanup(locker.client(), &name).await;
    db.drop().await;
}

/// Issue 10 item 21: a TTL of zero (or under 1 ms: Redis counts whole milliseconds)
/// and an empty name are refused with a typed error before anything is sent; they
/// used to become a 1 ms lock. A zero wait is one attempt; a refresh to zero is
/// refused and leaves the lock as it was.
#[tokio::test]
async fn a_zero_or_sub_millisecond_ttl_and_an_empty_name_are_refused() {
    let engine = engine(&registry()).await;
    let locker = engine.locker("default").unwrap();
    let name = prefix("degenerate");
    for ttl in [Duration::ZERO, Duration::from_micros(999)] {
        let err = locker
            .obtain(&name, ttl, Duration::ZERO)
            .await
            .err()
            .unwrap_or_else(|| panic!("a {ttl:?} TTL was accepted"));
        assert!(
            matches!(&err, Error::InvalidArgument { call, reason }
                if call.contains(&name) && reason.contains("1 ms")),
            "{err:?}"
        );
        assert!(!locker
            .client()
            .exists(format!("lock:default:{name}"))
            .await
            .unwrap());
    }
    let err = locker.obtain("", SEC, Duration::ZERO).await.err();
    assert!(
        matches!(&err, Some(Error::InvalidArgument { reason, .. }) if reason.contains("name")),
        "{err:?}"
    );
    // 1.5 ms: whole milliseconds, rounded down to 1 ms (the shortest lock).
    let short = locker
        .obtain(&name, Duration::from_micros(1500), Duration::ZERO)
        .await
        .expect("free");
    drop(short);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Zero wait: one attempt, `LockNotObtained` while someone holds it.
    let held = locker
        .obtain(&name, 10 * SEC, Duration::ZERO)
        .await
        .expect("the 1 ms lock has expired");
    assert!(locker
        .obtain(&name, SEC, Duration::ZERO)
        .await
        .is_err_and(|e| matches!(e, Error::LockNotObtained { .. })));
    assert!(matches!(
        held.refresh(Duration::ZERO).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(
        held.ttl().await.unwrap() > 5 * SEC,
        "the refused refresh changed the TTL"
    );
    held.release().await.unwrap();
    // The longest wait there is: no overflow of the deadline (it used to panic).
    let forever = locker
        .obtain(&name, SEC, Duration::MAX)
        .await
        .expect("free");
    forever.release().await.unwrap();
    cleanup(&locker.client().clone(), &name).await;
}

/// Issue 10 item 20: a flush that committed but whose lock ran out before the release
/// says the rows are written (not an error that invites a retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlock_failure_after_the_commit_says_the_rows_are_written() {
    let db = TestDb::new(Kind::Sqlite, "redis_flush_unlock_fails").await;
    let mut r = db.registry();
    r.register_redis_pool("locks", &common_redis::redis_url(), 0)
        .register_locker("default", "locks")
        .register_entity::<Counter>();
    // The flush outlives the lock's TTL: a before-hook that waits.
    fn slow<'a>(
        _: beeorm::hooks::HookEvent,
        _: &'a mut Counter,
    ) -> beeorm::hooks::BoxFuture<'a, beeorm::Result<()>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(())
        })
    }
    r.register_async_hook::<Counter>(&[beeorm::hooks::HookEvent::BeforeInsert], slow);
    let engine = r.validate().await.unwrap().create_engine();
    common::sync(&engine).await;
    let name = prefix("unlock-fails");
    let mut row = Tracked::new(Counter { id: 0, value: 7 });
    let err = engine
        .flusher()
        .track(&mut row)
        .flush_with_lock("default", &name, Duration::from_millis(100), SEC)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::WrittenButUnlockFailed { name: n, source } if *n == name && matches!(**source, Error::LockLost { .. })),
        "{err:?}"
    );
    assert!(err.rows_written(), "{err}");
    assert!(err.to_string().contains("rows are written"), "{err}");
    // And they are: the entity has its ID and the row is there, exactly once.
    assert!(row.id > 0);
    let found = engine.load_by_id::<Counter>(row.id).await.unwrap().unwrap();
    assert_eq!(found.value, 7);
    assert!(!Error::LockLost { name: name.clone() }.rows_written());
    db.drop().await;
}

/// Issue 11 item 9: a lock's key carries its locker's name. Two lockers on one Redis
/// pool obtain the same lock name independently; every handle of one locker, from any
/// engine, shares its locks.
#[tokio::test]
async fn lockers_are_namespaces_on_one_redis_pool() {
    let mut r = registry();
    r.register_locker("billing", "default")
        .register_locker("export", "default");
    let engine = engine(&r).await;
    let (billing, export) = (
        engine.locker("billing").unwrap(),
        engine.locker("export").unwrap(),
    );
    let name = prefix("namespaces");
    let first = billing
        .obtain(&name, 10 * SEC, Duration::ZERO)
        .await
        .unwrap();
    // Another locker, same lock name, same pool: its own lock.
    let other = export
        .obtain(&name, 10 * SEC, Duration::ZERO)
        .await
        .expect("another locker's namespace");
    assert!(billing
        .client()
        .exists(format!("lock:billing:{name}"))
        .await
        .unwrap());
    assert!(billing
        .client()
        .exists(format!("lock:export:{name}"))
        .await
        .unwrap());
    // The same locker, through another handle and another engine: shared.
    let again = engine
        .locker("billing")
        .unwrap()
        .obtain(&name, SEC, Duration::ZERO)
        .await;
    assert!(matches!(&again, Err(Error::LockNotObtained { name: n, .. }) if *n == name));
    let elsewhere = common_redis::engine(&r).await.locker("export").unwrap();
    let again = elsewhere.obtain(&name, SEC, Duration::ZERO).await;
    assert!(matches!(again, Err(Error::LockNotObtained { .. })));
    // Releasing one locker's lock leaves the other's held.
    first.release().await.unwrap();
    assert!(other.ttl().await.unwrap() > 5 * SEC);
    let next = billing.obtain(&name, SEC, Duration::ZERO).await.unwrap();
    assert!(matches!(
        export.obtain(&name, SEC, Duration::ZERO).await,
        Err(Error::LockNotObtained { .. })
    ));
    next.release().await.unwrap();
    other.release().await.unwrap();
    cleanup(billing.client(), &name).await;
}

/// Issue 11 item 9: "not obtained" has one shape — `Locker::obtain` and
/// `flush_with_lock` both return `Error::LockNotObtained` with the lock's name and the
/// wait.
#[tokio::test]
async fn obtain_and_flush_with_lock_report_a_held_lock_alike() {
    let (db, engine) = flush_engine("redis_lock_same_shape").await;
    let locker = engine.locker("default").unwrap();
    let name = prefix("shape");
    let held = locker
        .obtain(&name, 10 * SEC, Duration::ZERO)
        .await
        .unwrap();
    let wait = Duration::from_millis(30);
    let from_obtain = locker.obtain(&name, SEC, wait).await.unwrap_err();
    let mut row = Tracked::new(Counter { id: 0, value: 5 });
    let from_flush = engine
        .flusher()
        .track(&mut row)
        .flush_with_lock("default", &name, SEC, wait)
        .await
        .unwrap_err();
    for err in [&from_obtain, &from_flush] {
        assert!(
            matches!(err, Error::LockNotObtained { name: n, wait: w } if *n == name && *w == wait),
            "{err:?}"
        );
        assert!(!err.rows_written());
    }
    assert_eq!(from_obtain.to_string(), from_flush.to_string());
    assert!(row.is_new(), "nothing was written");
    held.release().await.unwrap();
    cleanup(locker.client(), &name).await;
    db.drop().await;
}
