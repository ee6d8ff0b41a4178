//! Issue 13 (A6, F1, F2, F5): the event broker on Redis Streams against the real
//! servers: registration (code and YAML; single server, Sentinel, Cluster), publishing
//! and decoding, consumers (ack, skip, errors, drain, leases, reclaim, stop),
//! trimming and statistics. Every test uses streams of its own (a key prefix).
#![allow(clippy::unwrap_used)]

mod common;
mod common_redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use beeorm::redis::driver;
use beeorm::{Engine, Error, RedisClient, Registry};
use common_redis::{cleanup, cluster_nodes, prefix, redis_url, sentinel_master, sentinels};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
    qty: u32,
}

fn order(id: u64) -> Order {
    Order {
        id,
        item: format!("item-{id}"),
        qty: (id % 7) as u32 + 1,
    }
}

/// A registry with the local server as pool `default` and `streams` (name, groups).
async fn engine_with(streams: &[(&str, &[&str])]) -> Engine {
    let mut r = Registry::new();
    r.register_redis_pool("default", &redis_url(), 0);
    for (s, groups) in streams {
        r.register_redis_stream(s, "default", groups);
    }
    r.validate().await.unwrap().create_engine()
}

type Entry = (String, Vec<(String, Vec<u8>)>);

async fn xrange(redis: &RedisClient, stream: &str) -> Vec<Entry> {
    redis
        .query(driver::cmd("XRANGE").arg(stream).arg("-").arg("+"))
        .await
        .unwrap()
}

/// `XINFO GROUPS`: (name, last-delivered-id) per group.
async fn groups_of(redis: &RedisClient, stream: &str) -> Vec<(String, String)> {
    let raw: Vec<std::collections::HashMap<String, driver::Value>> = redis
        .query(driver::cmd("XINFO").arg("GROUPS").arg(stream))
        .await
        .unwrap();
    let text =
        |v: &driver::Value| -> String { driver::FromRedisValue::from_redis_value_ref(v).unwrap() };
    let mut out: Vec<(String, String)> = raw
        .iter()
        .map(|g| (text(&g["name"]), text(&g["last-delivered-id"])))
        .collect();
    out.sort();
    out
}

fn field<'a>(entry: &'a Entry, name: &str) -> Option<&'a [u8]> {
    entry
        .1
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

// ---------------------------------------------------------------------------
// Registration

#[tokio::test]
async fn validate_creates_streams_and_groups_once() {
    let p = prefix("ev_register");
    let s = format!("{p}orders");
    let engine = engine_with(&[(&s, &["billing", "mailer"])]).await;
    let redis = engine.redis("default").unwrap();
    assert_eq!(
        groups_of(&redis, &s).await,
        vec![
            ("billing".into(), "0-0".into()),
            ("mailer".into(), "0-0".into())
        ]
    );
    // Validating again (another process starting) keeps the groups as they are.
    let broker = engine.event_broker();
    broker.publish(&s, &order(1)).await.unwrap();
    let _: driver::Value = redis
        .query(
            driver::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("billing")
                .arg("x")
                .arg("STREAMS")
                .arg(&s)
                .arg(">"),
        )
        .await
        .unwrap();
    let before = groups_of(&redis, &s).await;
    assert_ne!(before[0].1, "0-0");
    let _again = engine_with(&[(&s, &["billing", "mailer"])]).await;
    assert_eq!(groups_of(&redis, &s).await, before);
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn a_group_new_to_a_stream_with_entries_sees_them_all() {
    let p = prefix("ev_newgroup");
    let s = format!("{p}orders");
    let engine = engine_with(&[(&s, &["first"])]).await;
    let redis = engine.redis("default").unwrap();
    let ids = {
        let mut publisher = engine.event_broker().publisher();
        for i in 0..3 {
            publisher.publish(&s, &order(i)).unwrap();
        }
        publisher.send().await.unwrap()
    };
    // A later deployment adds a group: it starts at the stream's first entry.
    let engine2 = engine_with(&[(&s, &["first", "later"])]).await;
    let read: Vec<(String, Vec<Entry>)> = redis
        .query(
            driver::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("later")
                .arg("c")
                .arg("STREAMS")
                .arg(&s)
                .arg(">"),
        )
        .await
        .unwrap();
    let got: Vec<String> = read[0].1.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(got, ids);
    drop(engine2);
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn registration_mistakes_are_typed_errors() {
    let p = prefix("ev_regerr");
    let s = format!("{p}s");
    // The stream's pool is not registered.
    let mut r = Registry::new();
    r.register_redis_pool("default", &redis_url(), 0)
        .register_redis_stream(&s, "nope", &["g"]);
    match r.validate().await {
        Err(Error::UnknownPool { pool, used_by, .. }) => {
            assert_eq!(pool, "nope");
            assert!(used_by.contains(&s), "{used_by}");
        }
        other => panic!("{other:?}"),
    }
    // Empty names, no group, one stream in two pools.
    for (build, expected) in [
        (
            Box::new(|r: &mut Registry| {
                r.register_redis_stream("", "default", &["g"]);
            }) as Box<dyn Fn(&mut Registry)>,
            "empty name",
        ),
        (
            Box::new(|r: &mut Registry| {
                r.register_redis_stream("s1", "default", &[""]);
            }),
            "group with an empty name",
        ),
        (
            Box::new(|r: &mut Registry| {
                r.register_redis_stream("s1", "default", &[]);
            }),
            "at least one consumer group",
        ),
        (
            Box::new(|r: &mut Registry| {
                r.register_redis_pool("other", &redis_url(), 1)
                    .register_redis_stream("s1", "default", &["g"])
                    .register_redis_stream("s1", "other", &["g"]);
            }),
            "two Redis pools",
        ),
    ] {
        let mut r = Registry::new();
        r.register_redis_pool("default", &redis_url(), 0);
        build(&mut r);
        match r.validate().await {
            Err(Error::Config(m)) => assert!(m.contains(expected), "{m}"),
            other => panic!("{expected}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_dead_redis_at_validate_names_pool_and_stream() {
    let mut r = Registry::new();
    r.register_redis_pool("dead", "127.0.0.1:1", 0)
        .register_redis_stream("orders", "dead", &["billing"]);
    match r.validate().await {
        Err(e @ Error::StreamSetup { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("`orders`") && text.contains("`dead`"),
                "{text}"
            );
            let Error::StreamSetup { source, .. } = e else {
                unreachable!()
            };
            assert!(matches!(*source, Error::Redis { .. }), "{source:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_key_that_is_not_a_stream_fails_validate() {
    let p = prefix("ev_wrongtype");
    let s = format!("{p}s");
    let plain = engine_with(&[]).await;
    let redis = plain.redis("default").unwrap();
    redis.set(&s, "a string").await.unwrap();
    let mut r = Registry::new();
    r.register_redis_pool("default", &redis_url(), 0)
        .register_redis_stream(&s, "default", &["g"]);
    assert!(matches!(r.validate().await, Err(Error::StreamSetup { .. })));
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn yaml_streams_register_streams_and_groups() {
    let p = prefix("ev_yaml");
    let s = format!("{p}orders");
    let yaml = format!(
        "default:\n  redis: {}:0\n  streams:\n    \"{s}\": [billing, mailer]\n",
        redis_url().trim_start_matches("redis://")
    );
    let engine = Registry::from_yaml(&yaml)
        .unwrap()
        .validate()
        .await
        .unwrap()
        .create_engine();
    let redis = engine.redis("default").unwrap();
    let names: Vec<String> = groups_of(&redis, &s)
        .await
        .into_iter()
        .map(|g| g.0)
        .collect();
    assert_eq!(names, ["billing", "mailer"]);
    engine.event_broker().publish(&s, &order(1)).await.unwrap();
    // `streams` needs a Redis pool in its section.
    let err = Registry::from_yaml("a:\n  local_cache: 10\n  streams: {s: [g]}\n").unwrap_err();
    assert!(err.to_string().contains("`streams`"), "{err}");
    // Groups are a list of names.
    assert!(Registry::from_yaml("a:\n  redis: :6379\n  streams: {s: 3}\n").is_err());
    cleanup(&redis, &p).await;
}

// ---------------------------------------------------------------------------
// Publishing

#[tokio::test]
async fn publish_writes_a_versioned_body_metadata_and_maps() {
    let p = prefix("ev_publish");
    let s = format!("{p}orders");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let a = broker.publish(&s, &order(1)).await.unwrap();
    let b = broker
        .publish_with_meta(&s, &order(2), &[("tenant", "acme"), ("trace", "t-1")])
        .await
        .unwrap();
    let c = broker
        .publish_map(&s, [("kind", "ping"), ("n", "3")])
        .await
        .unwrap();
    let entries = xrange(&redis, &s).await;
    let ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str(), c.as_str()]);
    // Body: version byte 1 then MessagePack; metadata fields after it.
    let body = field(&entries[0], "_b").unwrap();
    assert_eq!(body[0], 1);
    assert_eq!(entries[0].1.len(), 1);
    assert_eq!(field(&entries[1], "tenant"), Some(&b"acme"[..]));
    assert_eq!(field(&entries[1], "trace"), Some(&b"t-1"[..]));
    assert_eq!(
        entries[2].1,
        vec![
            ("kind".to_string(), b"ping".to_vec()),
            ("n".to_string(), b"3".to_vec())
        ]
    );
    // Binary map values go through untouched.
    let d = broker
        .publish_map(&s, [("bytes", vec![0u8, 255, 10])])
        .await
        .unwrap();
    let entries = xrange(&redis, &s).await;
    assert_eq!(entries[3].0, d);
    assert_eq!(field(&entries[3], "bytes"), Some(&[0u8, 255, 10][..]));
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn the_publisher_sends_in_order_over_streams_and_pools() {
    let p = prefix("ev_publisher");
    let (s1, s2, s3) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    let mut r = Registry::new();
    r.register_redis_pool("default", &redis_url(), 0)
        .register_redis_pool("other", &redis_url(), 1)
        .register_redis_stream(&s1, "default", &["g"])
        .register_redis_stream(&s2, "default", &["g"])
        .register_redis_stream(&s3, "other", &["g"]);
    let engine = r.validate().await.unwrap().create_engine();
    let mut publisher = engine.event_broker().publisher();
    assert!(publisher.is_empty());
    let mut expected: Vec<(String, u64)> = Vec::new();
    for i in 0..300u64 {
        let s = [&s1, &s2, &s3][(i % 3) as usize];
        publisher.publish(s, &order(i)).unwrap();
        expected.push((s.clone(), i));
    }
    assert_eq!(publisher.len(), 300);
    let ids = publisher.send().await.unwrap();
    assert_eq!(ids.len(), 300);
    for s in [&s1, &s2, &s3] {
        let pool = if *s == s3 { "other" } else { "default" };
        let entries = xrange(&engine.redis(pool).unwrap(), s).await;
        let sent: Vec<&String> = ids
            .iter()
            .zip(&expected)
            .filter(|(_, (stream, _))| stream == s)
            .map(|(id, _)| id)
            .collect();
        let stored: Vec<&String> = entries.iter().map(|(id, _)| id).collect();
        assert_eq!(stored, sent, "{s}: IDs in the order added");
    }
    // Nothing added, nothing sent.
    assert!(engine
        .event_broker()
        .publisher()
        .send()
        .await
        .unwrap()
        .is_empty());
    cleanup(&engine.redis("default").unwrap(), &p).await;
    cleanup(&engine.redis("other").unwrap(), &p).await;
}

struct Unserialisable;

impl Serialize for Unserialisable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be serialised",
        ))
    }
}

#[tokio::test]
async fn bad_events_are_refused_before_anything_is_sent() {
    let p = prefix("ev_badpub");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    match broker.publish("nope", &order(1)).await {
        Err(Error::UnknownStream { stream }) => assert_eq!(stream, "nope"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        broker.publish_map("nope", [("a", "b")]).await,
        Err(Error::UnknownStream { .. })
    ));
    for meta in [&[("_b", "x")][..], &[("_t", "x")][..], &[("", "x")][..]] {
        assert!(matches!(
            broker.publish_with_meta(&s, &order(1), meta).await,
            Err(Error::InvalidArgument { .. })
        ));
    }
    assert!(matches!(
        broker.publish_map(&s, [("_b", "x")]).await,
        Err(Error::InvalidArgument { .. })
    ));
    let empty: Vec<(&str, &str)> = Vec::new();
    assert!(matches!(
        broker.publish_map(&s, empty).await,
        Err(Error::InvalidArgument { .. })
    ));
    match broker.publish(&s, &Unserialisable).await {
        Err(Error::EventEncode { stream, reason }) => {
            assert_eq!(stream, s);
            assert!(reason.contains("refuses"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The publisher refuses at once; what it already holds is still sent.
    let mut publisher = broker.publisher();
    publisher.publish(&s, &order(1)).unwrap();
    assert!(publisher.publish("nope", &order(2)).is_err());
    assert!(publisher.publish(&s, &Unserialisable).is_err());
    assert_eq!(publisher.len(), 1);
    publisher.send().await.unwrap();
    assert_eq!(xrange(&redis, &s).await.len(), 1);
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn publishing_to_an_unreachable_redis_is_a_typed_error() {
    let p = prefix("ev_deadpub");
    let s = format!("{p}s");
    // The pool goes through a proxy that stops forwarding after validate.
    let frozen = Arc::new(AtomicBool::new(false));
    let upstream = redis_url().trim_start_matches("redis://").to_string();
    let port = common::proxy::proxy(&upstream, Duration::ZERO, frozen.clone()).await;
    let mut r = Registry::new();
    r.register_redis_pool("default", &format!("127.0.0.1:{port}"), 0)
        .set_redis_timeouts(
            "default",
            Duration::from_millis(300),
            Duration::from_millis(300),
        )
        .register_redis_stream(&s, "default", &["g"]);
    let engine = r.validate().await.unwrap().create_engine();
    frozen.store(true, Ordering::Relaxed);
    match engine.event_broker().publish(&s, &order(1)).await {
        Err(Error::Redis { pool, source, .. }) => {
            assert_eq!(pool, "default");
            assert!(source.is_timeout(), "{source}");
        }
        other => panic!("{other:?}"),
    }
    frozen.store(false, Ordering::Relaxed);
    let direct = engine_with(&[]).await;
    cleanup(&direct.redis("default").unwrap(), &p).await;
}

#[tokio::test]
async fn sentinel_and_cluster_pools_carry_streams() {
    let p = prefix("ev_hacluster");
    let addresses = sentinels();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let nodes = cluster_nodes();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let streams: Vec<String> = (0..4).map(|i| format!("{p}s{i}")).collect();
    let mut r = Registry::new();
    r.register_redis_sentinel("ha", &sentinel_master(), &addresses, 0)
        .register_redis_cluster("shards", &nodes)
        .register_redis_stream(&streams[0], "ha", &["g1", "g2"]);
    // Several streams on the cluster: their keys live on different masters.
    for s in &streams[1..] {
        r.register_redis_stream(s, "shards", &["g1", "g2"]);
    }
    let engine = r.validate().await.unwrap().create_engine();
    for (s, pool) in streams.iter().zip(["ha", "shards", "shards", "shards"]) {
        let redis = engine.redis(pool).unwrap();
        let names: Vec<String> = groups_of(&redis, s)
            .await
            .into_iter()
            .map(|g| g.0)
            .collect();
        assert_eq!(names, ["g1", "g2"], "{s}");
    }
    let mut publisher = engine.event_broker().publisher();
    for i in 0..40u64 {
        publisher
            .publish(&streams[(i % 4) as usize], &order(i))
            .unwrap();
    }
    let ids = publisher.send().await.unwrap();
    for (k, s) in streams.iter().enumerate() {
        let pool = if k == 0 { "ha" } else { "shards" };
        let stored: Vec<String> = xrange(&engine.redis(pool).unwrap(), s)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let sent: Vec<String> = ids.iter().skip(k).step_by(4).cloned().collect();
        assert_eq!(stored, sent, "{s}");
    }
    for (s, pool) in streams.iter().zip(["ha", "shards", "shards", "shards"]) {
        engine.redis(pool).unwrap().del(s.as_str()).await.unwrap();
    }
}
