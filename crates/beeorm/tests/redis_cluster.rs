//! E5 (beyond): a Redis Cluster pool — keys spread over every master, and commands,
//! pipelines (split per slot), scripts, `get_set`, the locker and the rate limiter
//! all work on it.
#![allow(clippy::unwrap_used)]

mod common_redis;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beeorm::redis::Script;
use beeorm::{Engine, Limit, Registry};
use common_redis::{cleanup, cluster_nodes, prefix};

async fn engine() -> Engine {
    let nodes = cluster_nodes();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut r = Registry::new();
    r.register_redis_cluster("shards", &nodes)
        .register_locker("shards", "shards");
    r.validate().await.unwrap().create_engine()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_over_every_master_and_pipelines_split_per_slot() {
    let engine = engine().await;
    let redis = engine.redis("shards").unwrap();
    assert!(redis.is_cluster());
    let masters = redis.cluster_masters().await.unwrap().unwrap();
    assert_eq!(masters.len(), 3, "{masters:?}");
    let p = prefix("spread");
    let keys: Vec<String> = (0..300).map(|i| format!("{p}{i}")).collect();

    // One pipeline over many slots: split per slot, replies back in order.
    let mut pipe = redis.pipeline();
    for (i, k) in keys.iter().enumerate() {
        pipe.set(k, i).ignore();
    }
    for k in &keys {
        pipe.get(k);
    }
    let values: Vec<usize> = pipe.query().await.unwrap();
    assert_eq!(values, (0..300).collect::<Vec<_>>());

    // Every master holds some of them: ask each one alone.
    for (host, port) in &masters {
        let mut r = Registry::new();
        r.register_redis_pool("node", &format!("{host}:{port}"), 0);
        let node = r
            .validate()
            .await
            .unwrap()
            .create_engine()
            .redis("node")
            .unwrap();
        let here = node.scan_match(&format!("{p}*")).await.unwrap();
        assert!(
            !here.is_empty(),
            "master {host}:{port} holds none of the keys"
        );
    }
    // A cluster-wide scan finds them all.
    assert_eq!(redis.scan_match(&format!("{p}*")).await.unwrap().len(), 300);

    // Multi-key commands over many slots (split by redis-rs).
    let got: Vec<Option<usize>> = redis.mget(&keys[..50]).await.unwrap();
    assert_eq!(got, (0..50).map(Some).collect::<Vec<_>>());
    assert_eq!(redis.del(&keys[..50]).await.unwrap(), 50);

    // An atomic pipeline stays in one slot (hash tag).
    let (a, b): (i64, i64) = redis
        .pipeline()
        .atomic()
        .incr(format!("{{{p}tx}}:a"), 1)
        .incr(format!("{{{p}tx}}:b"), 2)
        .query()
        .await
        .unwrap();
    assert_eq!((a, b), (1, 2));
    cleanup(&redis, &p).await;
    let tagged = redis.scan_match(&format!("{{{p}tx}}*")).await.unwrap();
    redis.del(&tagged).await.unwrap();
    assert!(redis.scan_match(&format!("{p}*")).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_families_scripts_and_get_set_work_on_a_cluster() {
    let engine = engine().await;
    let redis = engine.redis("shards").unwrap();
    let p = prefix("families");
    let k = |s: &str| format!("{p}{s}");
    redis
        .set_ex(k("s"), "v", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        redis.get::<_, String>(k("s")).await.unwrap().as_deref(),
        Some("v")
    );
    redis
        .hset_multiple(k("h"), &[("a", 1), ("b", 2)])
        .await
        .unwrap();
    assert_eq!(redis.hget::<_, _, u32>(k("h"), "b").await.unwrap(), Some(2));
    redis.rpush(k("l"), &[1, 2, 3]).await.unwrap();
    assert_eq!(
        redis.lrange::<_, u32>(k("l"), 0, -1).await.unwrap(),
        vec![1, 2, 3]
    );
    redis.sadd(k("set"), &["x", "y"]).await.unwrap();
    assert_eq!(redis.scard(k("set")).await.unwrap(), 2);
    redis.zadd(k("z"), "m", 1.5).await.unwrap();
    assert_eq!(redis.zscore(k("z"), "m").await.unwrap(), Some(1.5));

    let script = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let n: i64 = redis.eval(&script, k("counter"), 5).await.unwrap();
    assert_eq!(n, 5);

    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (redis, calls, key) = (redis.clone(), calls.clone(), k("gs"));
        tasks.spawn(async move {
            redis
                .get_set(&key, Duration::from_secs(10), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Ok::<_, beeorm::Error>(42u32)
                })
                .await
                .unwrap()
        });
    }
    while let Some(v) = tasks.join_next().await {
        assert_eq!(v.unwrap(), 42);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    cleanup(&redis, &p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_locker_and_the_rate_limiter_work_on_a_cluster() {
    let engine = engine().await;
    let redis = engine.redis("shards").unwrap();
    let locker = engine.locker("shards").unwrap();
    let p = prefix("cluster-tools");

    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (locker, name) = (locker.clone(), format!("{p}lock"));
        let (inside, most) = (inside.clone(), most.clone());
        tasks.spawn(async move {
            let lock = locker
                .obtain(&name, Duration::from_secs(5), Duration::from_secs(20))
                .await
                .unwrap();
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            lock.release().await.unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 1);

    let expired = locker
        .obtain(
            &format!("{p}short"),
            Duration::from_millis(100),
            Duration::ZERO,
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(
        expired.release().await.unwrap_err(),
        beeorm::Error::LockLost { .. }
    ));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (redis, resource) = (redis.clone(), format!("{p}rate"));
        tasks.spawn(async move {
            redis
                .rate_limit(&resource, Limit::per_hour(40))
                .await
                .unwrap()
                .allowed
        });
    }
    let mut allowed = 0;
    while let Some(a) = tasks.join_next().await {
        allowed += usize::from(a.unwrap());
    }
    assert_eq!(allowed, 40);
    cleanup(&redis, &p).await;
}
