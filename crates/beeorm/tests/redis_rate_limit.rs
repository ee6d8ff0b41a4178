//! E3: the GCRA rate limiter — exact under concurrency, remaining and retry-after,
//! tokens coming back at the steady rate.
#![allow(clippy::unwrap_used)]

mod common_redis;

use std::time::Duration;

use beeorm::{Error, Limit};
use common_redis::{cleanup, engine, prefix, registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_parallel_callers_against_a_limit_of_l_get_exactly_l() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("exact");
    for (limit, callers) in [
        (Limit::per_hour(100), 200),
        (Limit::per_minute(37), 120),
        (Limit::per_second(10), 64),
    ] {
        let resource = format!("{p}{}", limit.rate());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..callers {
            let (redis, resource) = (redis.clone(), resource.clone());
            tasks.spawn(async move { redis.rate_limit(&resource, limit).await.unwrap() });
        }
        let mut allowed = Vec::new();
        let mut denied = 0;
        while let Some(d) = tasks.join_next().await {
            let d = d.unwrap();
            if d.allowed {
                assert!(d.retry_after.is_none());
                allowed.push(d.remaining);
            } else {
                denied += 1;
                assert_eq!(d.remaining, 0);
                assert!(d.retry_after.unwrap() > Duration::ZERO);
            }
        }
        // Per second, the test itself may take longer than one emission interval
        // (100 ms) on a busy machine: only the slow limits are checked to the unit.
        if limit.period() >= Duration::from_secs(60) {
            assert_eq!(allowed.len() as u64, limit.rate(), "{limit:?}");
            allowed.sort_unstable();
            assert_eq!(allowed, (0..limit.rate()).collect::<Vec<_>>());
            assert_eq!(denied, callers - limit.rate() as usize);
        } else {
            assert!(allowed.len() as u64 >= limit.rate());
            assert!(
                allowed.len() as u64 <= limit.rate() + 2,
                "{}",
                allowed.len()
            );
        }
    }
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn remaining_counts_down_and_retry_after_says_when() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("remaining");
    let resource = format!("{p}login");
    for expected in (0..10).rev() {
        let d = redis
            .rate_limit(&resource, Limit::per_minute(10))
            .await
            .unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, expected);
    }
    let d = redis
        .rate_limit(&resource, Limit::per_minute(10))
        .await
        .unwrap();
    assert!(!d.allowed);
    let retry = d.retry_after.unwrap();
    // One request comes back every 6 s.
    assert!(
        retry > Duration::from_secs(5) && retry <= Duration::from_secs(6),
        "{retry:?}"
    );
    assert!(d.reset_after > Duration::from_secs(59) && d.reset_after <= Duration::from_secs(60));
    // Another resource has its own allowance.
    assert!(
        redis
            .rate_limit(&format!("{p}other"), Limit::per_minute(10))
            .await
            .unwrap()
            .allowed
    );
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn requests_come_back_at_the_steady_rate() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("steady");
    let resource = format!("{p}api");
    let limit = Limit::per_second(20);
    for _ in 0..20 {
        assert!(redis.rate_limit(&resource, limit).await.unwrap().allowed);
    }
    let d = redis.rate_limit(&resource, limit).await.unwrap();
    assert!(!d.allowed);
    let retry = d.retry_after.unwrap();
    assert!(retry <= Duration::from_millis(50), "{retry:?}");
    tokio::time::sleep(retry + Duration::from_millis(5)).await;
    assert!(redis.rate_limit(&resource, limit).await.unwrap().allowed);

    // A burst smaller than the rate: one at a time.
    let spaced = Limit::per_minute(60).with_burst(1);
    assert_eq!(spaced.burst(), 1);
    assert!(
        redis
            .rate_limit(&format!("{p}b"), spaced)
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !redis
            .rate_limit(&format!("{p}b"), spaced)
            .await
            .unwrap()
            .allowed
    );
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn a_zero_limit_is_a_configuration_error() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    assert!(matches!(
        redis.rate_limit("x", Limit::per_second(0)).await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        redis.rate_limit("x", Limit::new(5, Duration::ZERO)).await,
        Err(Error::Config(_))
    ));
}

/// Issue 10 item 21: degenerate inputs are refused before anything reaches Redis: an
/// empty resource, a period under 1 µs (it counts in whole microseconds), a zero burst.
#[tokio::test]
async fn degenerate_limits_and_an_empty_resource_are_refused() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let err = redis
        .rate_limit("", Limit::per_second(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { call, .. } if call.contains("rate_limit")),
        "{err:?}"
    );
    assert!(!redis.exists("beeorm:rate:").await.unwrap());
    assert!(matches!(
        redis
            .rate_limit("x", Limit::new(5, Duration::from_nanos(999)))
            .await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        redis
            .rate_limit("x", Limit::per_second(5).with_burst(0))
            .await,
        Err(Error::Config(_))
    ));
}
