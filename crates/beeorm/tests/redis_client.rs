//! A2, A4, A8, E1, E2: Redis pools in the registry and YAML, the typed command
//! families, pipelines, Lua scripts, the escape hatch, `get_set`, typed errors.
#![allow(clippy::unwrap_used)]

mod common_redis;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use beeorm::redis::{driver, KeyTtl, Script};
use beeorm::{Error, Registry};
use common_redis::{cleanup, engine, prefix, redis_url, registry};

#[tokio::test]
async fn strings_keys_and_ttls() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("strings");
    let k = |s: &str| format!("{p}{s}");

    redis.set(k("a"), "alpha").await.unwrap();
    assert_eq!(
        redis.get::<_, String>(k("a")).await.unwrap().as_deref(),
        Some("alpha")
    );
    assert_eq!(redis.get::<_, String>(k("none")).await.unwrap(), None);
    redis.mset(&[(k("m1"), "1"), (k("m2"), "2")]).await.unwrap();
    let got: Vec<Option<u32>> = redis.mget(&[k("m1"), k("none"), k("m2")]).await.unwrap();
    assert_eq!(got, vec![Some(1), None, Some(2)]);
    assert_eq!(redis.incr(k("n"), 5).await.unwrap(), 5);
    assert_eq!(redis.incr(k("n"), -2).await.unwrap(), 3);

    assert!(redis.set_nx(k("nx"), "first", None).await.unwrap());
    assert!(!redis.set_nx(k("nx"), "second", None).await.unwrap());
    assert_eq!(
        redis.get::<_, String>(k("nx")).await.unwrap().as_deref(),
        Some("first")
    );

    assert_eq!(redis.ttl(k("a")).await.unwrap(), KeyTtl::Persistent);
    assert_eq!(redis.ttl(k("none")).await.unwrap(), KeyTtl::Missing);
    redis
        .set_ex(k("ex"), "soon gone", Duration::from_millis(150))
        .await
        .unwrap();
    match redis.ttl(k("ex")).await.unwrap() {
        KeyTtl::Expires(d) => assert!(d <= Duration::from_millis(150)),
        other => panic!("expected a TTL, got {other:?}"),
    }
    assert!(redis.expire(k("a"), Duration::from_secs(60)).await.unwrap());
    assert!(matches!(
        redis.ttl(k("a")).await.unwrap(),
        KeyTtl::Expires(_)
    ));
    assert!(redis.persist(k("a")).await.unwrap());
    assert_eq!(redis.ttl(k("a")).await.unwrap(), KeyTtl::Persistent);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!redis.exists(k("ex")).await.unwrap());

    assert!(redis.exists(k("a")).await.unwrap());
    assert_eq!(redis.del(&[k("a"), k("m1"), k("none")]).await.unwrap(), 2);
    assert!(!redis.exists(k("a")).await.unwrap());
    let mut found = redis.scan_match(&format!("{p}*")).await.unwrap();
    found.sort();
    assert_eq!(found, vec![k("m2"), k("n"), k("nx")]);
    cleanup(&redis, &p).await;
    assert!(redis.scan_match(&format!("{p}*")).await.unwrap().is_empty());
}

#[tokio::test]
async fn hashes() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("hashes");
    let h = format!("{p}h");

    assert!(redis.hset(&h, "name", "Ann").await.unwrap());
    assert!(!redis.hset(&h, "name", "Anna").await.unwrap());
    assert_eq!(
        redis
            .hset_multiple(&h, &[("age", "30"), ("city", "Łódź")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        redis
            .hget::<_, _, String>(&h, "name")
            .await
            .unwrap()
            .as_deref(),
        Some("Anna")
    );
    let got: Vec<Option<String>> = redis.hmget(&h, &["city", "nope", "age"]).await.unwrap();
    assert_eq!(
        got,
        vec![Some("Łódź".to_string()), None, Some("30".to_string())]
    );
    let all: HashMap<String, String> = redis.hgetall(&h).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all["city"], "Łódź");
    assert_eq!(redis.hincr(&h, "age", 2).await.unwrap(), 32);
    assert!(redis.hexists(&h, "age").await.unwrap());
    assert_eq!(redis.hlen(&h).await.unwrap(), 3);
    assert_eq!(redis.hdel(&h, &["age", "nope"]).await.unwrap(), 1);
    assert!(!redis.hexists(&h, "age").await.unwrap());
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn lists() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("lists");
    let l = format!("{p}l");

    assert_eq!(redis.rpush(&l, &["b", "c", "d"]).await.unwrap(), 3);
    assert_eq!(redis.lpush(&l, "a").await.unwrap(), 4);
    assert_eq!(
        redis.lrange::<_, String>(&l, 0, -1).await.unwrap(),
        vec!["a", "b", "c", "d"]
    );
    assert_eq!(redis.llen(&l).await.unwrap(), 4);
    assert_eq!(
        redis.lpop::<_, String>(&l).await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(
        redis.rpop::<_, String>(&l).await.unwrap().as_deref(),
        Some("d")
    );
    redis.rpush(&l, &["b", "x"]).await.unwrap();
    assert_eq!(redis.lrem(&l, 0, "b").await.unwrap(), 2);
    redis.ltrim(&l, 0, 0).await.unwrap();
    assert_eq!(
        redis.lrange::<_, String>(&l, 0, -1).await.unwrap(),
        vec!["c"]
    );
    cleanup(&redis, &p).await;
    assert_eq!(redis.lpop::<_, String>(&l).await.unwrap(), None);
}

#[tokio::test]
async fn sets() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("sets");
    let s = format!("{p}s");

    assert_eq!(redis.sadd(&s, &[1, 2, 3, 3]).await.unwrap(), 3);
    assert!(redis.sismember(&s, 2).await.unwrap());
    assert!(!redis.sismember(&s, 9).await.unwrap());
    assert_eq!(redis.scard(&s).await.unwrap(), 3);
    assert_eq!(redis.srem(&s, &[1, 9]).await.unwrap(), 1);
    let mut members: Vec<u32> = redis.smembers(&s).await.unwrap();
    members.sort();
    assert_eq!(members, vec![2, 3]);
    let popped: u32 = redis.spop(&s).await.unwrap().unwrap();
    assert!(popped == 2 || popped == 3);
    assert_eq!(redis.scard(&s).await.unwrap(), 1);
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn sorted_sets() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("zsets");
    let z = format!("{p}z");

    assert!(redis.zadd(&z, "carol", 30.0).await.unwrap());
    assert_eq!(
        redis
            .zadd_multiple(&z, &[("ann", 10.0), ("bob", 20.0), ("carol", 35.0)])
            .await
            .unwrap(),
        2
    );
    assert_eq!(redis.zscore(&z, "carol").await.unwrap(), Some(35.0));
    assert_eq!(redis.zscore(&z, "nobody").await.unwrap(), None);
    assert_eq!(redis.zincr(&z, "ann", 1.5).await.unwrap(), 11.5);
    assert_eq!(redis.zcard(&z).await.unwrap(), 3);
    assert_eq!(redis.zcount(&z, 11.0, 25.0).await.unwrap(), 2);
    assert_eq!(
        redis.zrange::<_, String>(&z, 0, -1).await.unwrap(),
        vec!["ann", "bob", "carol"]
    );
    assert_eq!(
        redis.zrevrange::<_, String>(&z, 0, 0).await.unwrap(),
        vec!["carol"]
    );
    assert_eq!(
        redis
            .zrange_with_scores::<_, String>(&z, 0, 1)
            .await
            .unwrap(),
        vec![("ann".to_string(), 11.5), ("bob".to_string(), 20.0)]
    );
    assert_eq!(
        redis
            .zrange_by_score::<_, String>(&z, 15.0, 40.0)
            .await
            .unwrap(),
        vec!["bob", "carol"]
    );
    assert_eq!(redis.zrank(&z, "bob").await.unwrap(), Some(1));
    assert_eq!(redis.zrank(&z, "nobody").await.unwrap(), None);
    assert_eq!(redis.zrem(&z, &["ann", "nobody"]).await.unwrap(), 1);
    assert_eq!(redis.zcard(&z).await.unwrap(), 2);
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn pipelines_return_replies_in_order_and_atomic_ones_are_transactions() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("pipelines");
    let k = |s: &str| format!("{p}{s}");

    let (a, n, missing): (String, i64, Option<String>) = redis
        .pipeline()
        .set(k("a"), "x")
        .ignore()
        .get(k("a"))
        .incr(k("n"), 7)
        .get(k("missing"))
        .query()
        .await
        .unwrap();
    assert_eq!((a.as_str(), n, missing), ("x", 7, None));

    let mut pipe = redis.pipeline();
    for i in 0..100 {
        pipe.set_ex(k(&format!("many{i}")), i, Duration::from_secs(60))
            .ignore();
    }
    for i in 0..100 {
        pipe.get(k(&format!("many{i}")));
    }
    assert_eq!(pipe.len(), 200);
    let values: Vec<u32> = pipe.query().await.unwrap();
    assert_eq!(values, (0..100).collect::<Vec<_>>());

    let (n1, n2): (i64, i64) = redis
        .pipeline()
        .atomic()
        .incr(k("t"), 1)
        .incr(k("t"), 1)
        .query()
        .await
        .unwrap();
    assert_eq!((n1, n2), (1, 2));

    // A failing command fails the pipeline, with a typed error.
    redis.set(k("text"), "not a number").await.unwrap();
    let err = redis
        .pipeline()
        .incr(k("text"), 1)
        .exec()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Redis { command, .. } if command == "PIPELINE"),
        "{err}"
    );
    assert!(redis.pipeline().query::<()>().await.is_ok());
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn lua_scripts_run_and_come_back_after_a_script_flush() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("scripts");
    let script = Script::new("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('STRLEN', KEYS[1]) + tonumber(ARGV[2])");
    let n: i64 = redis
        .eval(&script, format!("{p}k"), ("hello", 10))
        .await
        .unwrap();
    assert_eq!(n, 15);
    // The server forgets its scripts (restart, failover): EVALSHA falls back to EVAL.
    redis
        .query::<()>(driver::cmd("SCRIPT").arg("FLUSH"))
        .await
        .unwrap();
    let n: i64 = redis
        .eval(&script, format!("{p}k"), ("hi", 1))
        .await
        .unwrap();
    assert_eq!(n, 3);
    let err = redis
        .eval::<i64, _, _>(
            &Script::new("return redis.call('NOPE')"),
            Vec::<String>::new(),
            Vec::<String>::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Redis { .. }), "{err}");
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn any_command_and_the_underlying_connection() {
    use driver::AsyncCommands;
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("escape");
    let len: u64 = redis
        .query(driver::cmd("APPEND").arg(format!("{p}s")).arg("abc"))
        .await
        .unwrap();
    assert_eq!(len, 3);

    let mut conn = redis.connection().await.unwrap();
    let _: () = conn.set(format!("{p}raw"), 42).await.unwrap();
    let v: u32 = conn.get(format!("{p}raw")).await.unwrap();
    assert_eq!(v, 42);
    let strlen: u64 = conn.strlen(format!("{p}s")).await.unwrap();
    assert_eq!(strlen, 3);
    redis.ping().await.unwrap();
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn pools_use_their_own_database() {
    let mut r = registry();
    r.register_redis_pool("db1", &redis_url(), 1);
    let engine = engine(&r).await;
    let db0 = engine.redis("default").unwrap();
    let db1 = engine.redis("db1").unwrap();
    let p = prefix("dbs");
    db0.set(format!("{p}k"), "zero").await.unwrap();
    db1.set(format!("{p}k"), "one").await.unwrap();
    assert_eq!(
        db0.get::<_, String>(format!("{p}k"))
            .await
            .unwrap()
            .unwrap(),
        "zero"
    );
    assert_eq!(
        db1.get::<_, String>(format!("{p}k"))
            .await
            .unwrap()
            .unwrap(),
        "one"
    );
    cleanup(&db0, &p).await;
    cleanup(&db1, &p).await;
}

#[tokio::test]
async fn a_dead_server_gives_a_typed_error_not_a_panic() {
    let mut r = Registry::new();
    r.register_redis_pool("dead", "127.0.0.1:1", 0)
        .register_locker("dead", "dead");
    // validate() connects nothing: a dead server is not a start-up failure.
    let engine = engine(&r).await;
    let redis = engine.redis("dead").unwrap();
    let start = Instant::now();
    let err = redis.get::<_, String>("k").await.unwrap_err();
    match &err {
        Error::Redis {
            pool,
            command,
            source,
        } => {
            assert_eq!(pool, "dead");
            assert_eq!(command, "GET");
            assert!(
                source.is_connection_refusal() || source.is_io_error(),
                "{source:?}"
            );
        }
        other => panic!("expected Error::Redis, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    // And again (the pool retries on the next call), and through every feature.
    assert!(redis.ping().await.is_err());
    assert!(redis.pipeline().get("k").query::<()>().await.is_err());
    let locker = engine.locker("dead").unwrap();
    assert!(matches!(
        locker
            .obtain("x", Duration::from_secs(1), Duration::ZERO)
            .await,
        Err(Error::Redis { .. })
    ));
    assert!(matches!(
        redis.rate_limit("x", beeorm::Limit::per_second(1)).await,
        Err(Error::Redis { .. })
    ));
}

#[tokio::test]
async fn timeouts_are_per_pool_and_a_slow_reply_is_a_typed_error() {
    let mut r = registry();
    r.register_redis_pool("quick", &redis_url(), 0)
        .register_redis_pool("patient", &redis_url(), 0)
        .set_redis_timeouts("quick", Duration::from_secs(1), Duration::from_millis(200))
        .set_redis_timeouts("patient", Duration::from_secs(1), Duration::from_secs(5));
    let engine = engine(&r).await;
    let key = format!("{}empty", prefix("timeouts"));
    // BLPOP on an empty list answers after 1 s: longer than `quick` waits.
    let blpop = || driver::cmd("BLPOP").arg(&key).arg(1).clone();
    let quick = engine.redis("quick").unwrap();
    let start = Instant::now();
    let err = quick
        .query::<Option<Vec<String>>>(&blpop())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Redis { pool, command, source } if pool == "quick" && command == "BLPOP" && source.is_timeout()),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    // The pool carries on (a new connection replaces the timed-out one).
    quick.ping().await.unwrap();
    // A pool that waits longer gets the (empty) answer.
    let patient = engine.redis("patient").unwrap();
    let start = Instant::now();
    let reply: Option<Vec<String>> = patient.query(&blpop()).await.unwrap();
    assert_eq!(reply, None);
    assert!(start.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn bad_timeouts_are_configuration_errors() {
    let mut r = registry();
    r.set_redis_timeouts("nope", Duration::from_secs(1), Duration::from_secs(1));
    let err = r.validate().await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownPool { kind: "redis", pool, .. } if pool == "nope"),
        "{err:?}"
    );
    let mut r = registry();
    r.set_redis_timeouts("default", Duration::ZERO, Duration::from_secs(1));
    let err = r.validate().await.unwrap_err();
    assert!(
        matches!(&err, Error::Config(m) if m.contains("default") && m.contains("above zero")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_set_calls_the_provider_once_per_miss_under_concurrency() {
    let engine = engine(&registry()).await;
    let redis = engine.redis("default").unwrap();
    let p = prefix("getset");
    let key = format!("{p}user");
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let redis = redis.clone();
        let calls = calls.clone();
        let key = key.clone();
        tasks.spawn(async move {
            redis
                .get_set(&key, Duration::from_millis(400), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, Error>(vec!["ann".to_string(), "bob".to_string()])
                })
                .await
                .unwrap()
        });
    }
    while let Some(v) = tasks.join_next().await {
        assert_eq!(v.unwrap(), vec!["ann", "bob"]);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one provider call per miss"
    );

    // A hit does not call the provider; after the TTL it is a miss again.
    let v: Vec<String> = redis
        .get_set(&key, Duration::from_millis(400), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>(vec![])
        })
        .await
        .unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v: Vec<String> = redis
        .get_set(&key, Duration::from_millis(400), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>(vec!["new".to_string()])
        })
        .await
        .unwrap();
    assert_eq!(v, vec!["new"]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A failing provider: its error comes back and nothing is cached.
    #[derive(Debug)]
    enum AppError {
        NotFound,
        Orm(#[allow(dead_code)] Error),
    }
    impl From<Error> for AppError {
        fn from(e: Error) -> Self {
            AppError::Orm(e)
        }
    }
    let missing = format!("{p}missing");
    let r: Result<String, AppError> = redis
        .get_set(&missing, Duration::ZERO, || async {
            Err(AppError::NotFound)
        })
        .await;
    assert!(matches!(r, Err(AppError::NotFound)));
    assert!(!redis.exists(&missing).await.unwrap());

    // A cached value of another type is a miss, overwritten.
    redis.set(&missing, "not json").await.unwrap();
    let n: u32 = redis
        .get_set(&missing, Duration::ZERO, || async { Ok::<_, Error>(7) })
        .await
        .unwrap();
    assert_eq!(n, 7);
    assert_eq!(
        redis.get::<_, String>(&missing).await.unwrap().as_deref(),
        Some("7")
    );
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn yaml_registers_redis_sentinel_cluster_and_lockers() {
    let yaml = r#"
default:
  redis: 127.0.0.1:6379:3
  locker: default
second:
  redis: localhost:6379
ha:
  sentinel:
    beeorm-master:2:
      - :26379
      - 127.0.0.1:26380
  locker: other
other:
  redis: "redis://127.0.0.1:6379"
shards:
  redis_cluster: [127.0.0.1:7000, 127.0.0.1:7001]
"#;
    let validated = Registry::from_yaml(yaml).unwrap().validate().await.unwrap();
    assert_eq!(
        validated.redis_pools(),
        vec!["default", "ha", "other", "second", "shards"]
    );
    let engine = validated.create_engine();
    assert_eq!(engine.locker("ha").unwrap().client().pool_name(), "other");
    assert!(engine.redis("shards").unwrap().is_cluster());
    // db 3 from `host:port:db`.
    let mut conn = engine.redis("default").unwrap().connection().await.unwrap();
    assert_eq!(driver::aio::ConnectionLike::get_db(&conn), 3);
    let _: () = driver::cmd("PING").query_async(&mut conn).await.unwrap();

    for (yaml, expected) in [
        (
            "a:\n  local_cache: 10\n  streams: {s: [g]}\n",
            "has `streams` but no `redis`",
        ),
        (
            "a:\n  redis: 127.0.0.1:6379:x\n",
            "must end with `:` and a database number",
        ),
        (
            "a:\n  redis: 127.0.0.1:6379:0\n  redis_cluster: [127.0.0.1:7000]\n",
            "more than one of",
        ),
        (
            "a:\n  sentinel: {m: [':1'], n: [':2']}\n",
            "`sentinel` takes one entry",
        ),
    ] {
        let err = Registry::from_yaml(yaml).unwrap_err().to_string();
        assert!(err.contains(expected), "{yaml}: {err}");
    }
}

#[tokio::test]
async fn validate_checks_lockers_and_pool_names() {
    let mut r = Registry::new();
    r.register_redis_pool("default", &redis_url(), 0)
        .register_locker("l", "nope");
    match r.validate().await.unwrap_err() {
        Error::UnknownPool {
            kind,
            pool,
            used_by,
        } => {
            assert_eq!((kind, pool.as_str()), ("redis", "nope"));
            assert_eq!(used_by, "locker `l`");
        }
        other => panic!("expected UnknownPool, got {other}"),
    }
    let mut r = Registry::new();
    r.register_redis_pool("a", &redis_url(), 0)
        .register_redis_cluster("a", &["127.0.0.1:7000"]);
    assert!(r
        .validate()
        .await
        .unwrap_err()
        .to_string()
        .contains("registered twice"));
    let mut r = Registry::new();
    r.register_redis_pool("a", "not an address::", 0);
    assert!(matches!(r.validate().await.unwrap_err(), Error::Config(_)));
    let mut r = Registry::new();
    r.register_redis_sentinel("a", "m", &[], 0);
    assert!(matches!(r.validate().await.unwrap_err(), Error::Config(_)));
    let engine = engine(&registry()).await;
    assert!(matches!(
        engine.redis("nope").unwrap_err(),
        Error::UnknownPool { kind: "redis", .. }
    ));
    assert!(matches!(
        engine.locker("nope").unwrap_err(),
        Error::UnknownPool { kind: "locker", .. }
    ));
}
