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

// ---------------------------------------------------------------------------
// Consumers

use beeorm::events::{Batch, Consumer, Event, EventBroker, StreamStats};
use std::sync::Mutex;

/// `XPENDING <stream> <group> - + 1000`: the pending IDs with their delivery counts.
async fn pending(redis: &RedisClient, stream: &str, group: &str) -> Vec<(String, u64)> {
    let rows: Vec<(String, String, u64, u64)> = redis
        .query(
            driver::cmd("XPENDING")
                .arg(stream)
                .arg(group)
                .arg("-")
                .arg("+")
                .arg(1000),
        )
        .await
        .unwrap();
    rows.into_iter().map(|(id, _, _, n)| (id, n)).collect()
}

async fn xlen(redis: &RedisClient, stream: &str) -> u64 {
    redis.query(driver::cmd("XLEN").arg(stream)).await.unwrap()
}

/// Polls `cond` (every 20 ms, at most 10 s): for states another task reaches.
async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

fn lease_key(stream: &str, group: &str, slot: u32) -> String {
    format!("beeorm:lease:{{{stream}}}:{group}:{slot}")
}

/// Every event a handler saw, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Event>>>);

impl Seen {
    fn ids(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.id().to_string())
            .collect()
    }
    fn push(&self, batch: &Batch) {
        self.0
            .lock()
            .unwrap()
            .extend(batch.events().iter().cloned());
    }
}

async fn publish_n(broker: &EventBroker, stream: &str, n: u64) -> Vec<String> {
    let mut p = broker.publisher();
    for i in 0..n {
        p.publish(stream, &order(i)).unwrap();
    }
    p.send().await.unwrap()
}

#[tokio::test]
async fn consumed_events_decode_with_metadata_and_maps() {
    let p = prefix("ev_decode");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let a = broker.publish(&s, &order(1)).await.unwrap();
    let b = broker
        .publish_with_meta(&s, &order(2), &[("tenant", "acme")])
        .await
        .unwrap();
    let c = broker.publish_map(&s, [("kind", "ping")]).await.unwrap();
    // A body from a future format version, and one that is not MessagePack.
    let d: String = redis
        .query(
            driver::cmd("XADD")
                .arg(&s)
                .arg("*")
                .arg("_b")
                .arg(&[9u8, 1, 2][..]),
        )
        .await
        .unwrap();
    let e: String = redis
        .query(
            driver::cmd("XADD")
                .arg(&s)
                .arg("*")
                .arg("_b")
                .arg(&[1u8, 0xc1][..]),
        )
        .await
        .unwrap();
    let seen = Seen::default();
    let handled = {
        let seen = seen.clone();
        broker
            .consumer(&s, "g")
            .unwrap()
            .drain(move |batch: Batch| {
                let seen = seen.clone();
                async move {
                    seen.push(&batch);
                    Ok::<_, Error>(())
                }
            })
            .await
            .unwrap()
    };
    assert_eq!(handled, 5);
    let events = seen.0.lock().unwrap().clone();
    assert_eq!(seen.ids(), [a, b, c, d, e]);
    assert_eq!(events[0].stream(), s);
    assert_eq!(events[0].decode::<Order>().unwrap(), order(1));
    assert_eq!(events[1].decode::<Order>().unwrap(), order(2));
    assert_eq!(events[1].meta("tenant"), Some("acme"));
    assert_eq!(events[1].meta("absent"), None);
    assert_eq!(events[2].meta("kind"), Some("ping"));
    assert_eq!(events[2].fields().len(), 1);
    for (i, expected) in [(2, "no body field"), (3, "version 9"), (4, "MessagePack")] {
        match events[i].decode::<Order>() {
            Err(Error::EventDecode { stream, id, reason }) => {
                assert_eq!((stream.as_str(), id.as_str()), (s.as_str(), events[i].id()));
                assert!(reason.contains(expected), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
    // The wrong type is an error, not a mis-decode.
    assert!(matches!(
        events[0].decode::<Vec<String>>(),
        Err(Error::EventDecode { .. })
    ));
    assert!(pending(&redis, &s, "g").await.is_empty());
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn ack_skip_auto_ack_and_errors_decide_what_stays_pending() {
    let p = prefix("ev_acks");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["skip", "fail"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let ids = publish_n(&broker, &s, 4).await;

    // Ok with one skip: every other event is acknowledged.
    let n = broker
        .consumer(&s, "skip")
        .unwrap()
        .drain(|batch: Batch| async move {
            assert_eq!(batch.len(), 4);
            batch.skip(1);
            batch.skip(99); // past the batch: ignored
            Ok::<_, std::io::Error>(())
        })
        .await
        .unwrap();
    assert_eq!(n, 4);
    let left: Vec<String> = pending(&redis, &s, "skip")
        .await
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(left, [ids[1].clone()]);

    // Err: only the explicitly acknowledged events are; the drain returns the error.
    let err = broker
        .consumer(&s, "fail")
        .unwrap()
        .drain(|batch: Batch| async move {
            batch.ack(0);
            batch.ack(2);
            batch.skip(2); // the last word wins: 2 stays pending
            batch.ack(3);
            Err::<(), _>(std::io::Error::other("boom"))
        })
        .await
        .unwrap_err();
    match err {
        Error::Handler {
            stream,
            group,
            source,
        } => {
            assert_eq!((stream.as_str(), group.as_str()), (s.as_str(), "fail"));
            assert_eq!(source.to_string(), "boom");
        }
        other => panic!("{other:?}"),
    }
    let left: Vec<String> = pending(&redis, &s, "fail")
        .await
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(left, [ids[1].clone(), ids[2].clone()]);

    // The same consumer slot again: its own pending events come first, and go.
    let seen = Seen::default();
    let seen2 = seen.clone();
    broker
        .consumer(&s, "fail")
        .unwrap()
        .drain(move |batch: Batch| {
            let seen = seen2.clone();
            async move {
                seen.push(&batch);
                Ok::<_, Error>(())
            }
        })
        .await
        .unwrap();
    assert_eq!(seen.ids(), [ids[1].clone(), ids[2].clone()]);
    assert!(pending(&redis, &s, "fail").await.is_empty());
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn drain_takes_own_pending_then_new_events_in_batches() {
    let p = prefix("ev_drain");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let ids = publish_n(&broker, &s, 25).await;
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = Seen::default();
    let (sizes2, seen2) = (sizes.clone(), seen.clone());
    let n = broker
        .consumer(&s, "g")
        .unwrap()
        .batch_size(10)
        .drain(move |batch: Batch| {
            let (sizes, seen) = (sizes2.clone(), seen2.clone());
            async move {
                sizes.lock().unwrap().push(batch.len());
                seen.push(&batch);
                Ok::<_, Error>(())
            }
        })
        .await
        .unwrap();
    assert_eq!(n, 25);
    assert_eq!(*sizes.lock().unwrap(), [10, 10, 5]);
    assert_eq!(seen.ids(), ids);
    // Nothing left: a second drain hands nothing and returns.
    let again = broker
        .consumer(&s, "g")
        .unwrap()
        .drain(|_: Batch| async { Ok::<_, Error>(()) })
        .await
        .unwrap();
    assert_eq!(again, 0);
    // Its lease is released: the slot is free.
    assert!(!redis.exists(lease_key(&s, "g", 0)).await.unwrap());
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn consumer_mistakes_are_typed_errors() {
    let p = prefix("ev_consumer_err");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    assert!(matches!(
        broker.consumer("nope", "g"),
        Err(Error::UnknownStream { .. })
    ));
    match broker.consumer(&s, "nope") {
        Err(Error::UnknownGroup { stream, group }) => {
            assert_eq!((stream.as_str(), group.as_str()), (s.as_str(), "nope"));
        }
        other => panic!("{other:?}"),
    }
    let ok = |_: Batch| async { Ok::<_, Error>(()) };
    type Tweak = fn(Consumer) -> Consumer;
    let tweaks: [(Tweak, &str); 5] = [
        (|c| c.max_consumers(0), "max_consumers"),
        (|c| c.batch_size(0), "batch_size"),
        (|c| c.block(Duration::ZERO), "block"),
        (|c| c.claim_idle(Duration::ZERO), "claim_idle"),
        (|c| c.lease_ttl(Duration::ZERO), "lease_ttl"),
    ];
    for (tweak, what) in tweaks {
        let c = tweak(broker.consumer(&s, "g").unwrap());
        for result in [c.drain(ok).await.map(drop), c.run(ok).await] {
            match result {
                Err(Error::InvalidArgument { reason, .. }) => {
                    assert!(reason.contains(what), "{reason}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }
    assert!(matches!(
        broker.stream_stats("nope").await,
        Err(Error::UnknownStream { .. })
    ));
    cleanup(&engine.redis("default").unwrap(), &p).await;
}

/// Runs `consumer` in a task, recording batches; the handler's behaviour per batch
/// comes from `decide` (given the events, returns Ok/Err after marking).
fn spawn_run(
    consumer: Consumer,
    seen: Seen,
    decide: impl Fn(&Batch) -> Result<(), String> + Send + Sync + 'static,
) -> tokio::task::JoinHandle<beeorm::Result<()>> {
    let decide = Arc::new(decide);
    tokio::spawn(async move {
        consumer
            .run(move |batch: Batch| {
                let (seen, decide) = (seen.clone(), decide.clone());
                async move {
                    seen.push(&batch);
                    decide(&batch).map_err(std::io::Error::other)
                }
            })
            .await
    })
}

#[tokio::test]
async fn run_redelivers_skipped_and_failed_events_after_claim_idle_only() {
    let p = prefix("ev_run_redeliver");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let consumer = broker
        .consumer(&s, "g")
        .unwrap()
        .block(Duration::from_millis(50))
        .claim_idle(Duration::from_millis(300));
    let stop = consumer.stop_handle();
    let seen = Seen::default();
    let counts: Arc<Mutex<std::collections::HashMap<u64, u32>>> = Arc::default();
    let c2 = counts.clone();
    let task = spawn_run(consumer, seen.clone(), move |batch| {
        let mut counts = c2.lock().unwrap();
        let mut fail = false;
        for (i, e) in batch.events().iter().enumerate() {
            let o: Order = e.decode().unwrap();
            let n = counts.entry(o.id).or_default();
            *n += 1;
            // First delivery: skip order 1, fail the batch holding order 2.
            if *n == 1 && o.id == 1 {
                batch.skip(i);
            }
            if *n == 1 && o.id == 2 {
                fail = true;
            }
        }
        if fail {
            Err("first delivery fails".into())
        } else {
            Ok(())
        }
    });
    broker.publish(&s, &order(1)).await.unwrap();
    broker.publish(&s, &order(2)).await.unwrap();
    wait_until(
        "both events are acknowledged after a second delivery",
        || {
            let (redis, s, counts) = (redis.clone(), s.clone(), counts.clone());
            async move {
                let done = {
                    let c = counts.lock().unwrap();
                    c.len() == 2 && c.values().all(|n| *n >= 2)
                };
                done && pending(&redis, &s, "g").await.is_empty()
            }
        },
    )
    .await;
    stop.stop();
    task.await.unwrap().unwrap();
    // Delivered exactly twice each: no tight redelivery loop.
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.get(&1), Some(&2), "{counts:?}");
    assert_eq!(counts.get(&2), Some(&2), "{counts:?}");
    assert!(!redis.exists(lease_key(&s, "g", 0)).await.unwrap());
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn at_most_n_consumers_run_across_registries() {
    let p = prefix("ev_maxc");
    let s = format!("{p}s");
    // Three registries: three "processes".
    let e1 = engine_with(&[(&s, &["g"])]).await;
    let e2 = engine_with(&[(&s, &["g"])]).await;
    let e3 = engine_with(&[(&s, &["g"])]).await;
    let redis = e1.redis("default").unwrap();
    let make = |e: &Engine| {
        e.event_broker()
            .consumer(&s, "g")
            .unwrap()
            .max_consumers(2)
            .block(Duration::from_millis(50))
    };
    let (c1, c2) = (make(&e1), make(&e2));
    let (stop1, stop2) = (c1.stop_handle(), c2.stop_handle());
    let t1 = spawn_run(c1, Seen::default(), |_| Ok(()));
    let t2 = spawn_run(c2, Seen::default(), |_| Ok(()));
    wait_until("both slots are leased", || {
        let redis = redis.clone();
        let keys = [lease_key(&s, "g", 0), lease_key(&s, "g", 1)];
        async move {
            redis.exists(&keys[0]).await.unwrap() && redis.exists(&keys[1]).await.unwrap()
        }
    })
    .await;
    let third = make(&e3);
    match third.drain(|_: Batch| async { Ok::<_, Error>(()) }).await {
        Err(Error::ConsumersBusy { stream, group, max }) => {
            assert_eq!((stream.as_str(), group.as_str(), max), (s.as_str(), "g", 2));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        third.run(|_: Batch| async { Ok::<_, Error>(()) }).await,
        Err(Error::ConsumersBusy { .. })
    ));
    // One stops: its lease is released on the way out and the third gets a slot.
    stop1.stop();
    t1.await.unwrap().unwrap();
    third
        .drain(|_: Batch| async { Ok::<_, Error>(()) })
        .await
        .unwrap();
    stop2.stop();
    t2.await.unwrap().unwrap();
    for slot in 0..2 {
        assert!(!redis.exists(lease_key(&s, "g", slot)).await.unwrap());
    }
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn a_dropped_consumer_future_releases_its_lease_and_loses_nothing() {
    let p = prefix("ev_drop");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let ids = publish_n(&broker, &s, 3).await;
    // A handler that never finishes: the future is dropped mid-batch.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let consumer = broker
        .consumer(&s, "g")
        .unwrap()
        .lease_ttl(Duration::from_secs(60));
    let task = tokio::spawn(async move {
        consumer
            .run(move |_: Batch| {
                let tx = tx.clone();
                async move {
                    if let Some(tx) = tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    std::future::pending::<()>().await;
                    Ok::<_, Error>(())
                }
            })
            .await
    });
    rx.await.unwrap();
    assert!(redis.exists(lease_key(&s, "g", 0)).await.unwrap());
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // Released by the spawned release, long before its 60 s TTL.
    wait_until("the dropped consumer's lease is released", || {
        let (redis, key) = (redis.clone(), lease_key(&s, "g", 0));
        async move { !redis.exists(key).await.unwrap() }
    })
    .await;
    // The batch in hand was not acknowledged: the next consumer in the slot gets it.
    let seen = Seen::default();
    let seen2 = seen.clone();
    broker
        .consumer(&s, "g")
        .unwrap()
        .drain(move |batch: Batch| {
            let seen = seen2.clone();
            async move {
                seen.push(&batch);
                Ok::<_, Error>(())
            }
        })
        .await
        .unwrap();
    assert_eq!(seen.ids(), ids);
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn a_lost_lease_stops_the_consumer_before_its_next_batch() {
    let p = prefix("ev_leaselost");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let consumer = broker
        .consumer(&s, "g")
        .unwrap()
        .block(Duration::from_millis(50))
        .lease_ttl(Duration::from_millis(300));
    let task = spawn_run(consumer, Seen::default(), |_| Ok(()));
    let key = lease_key(&s, "g", 0);
    wait_until("the lease is taken", || {
        let (redis, key) = (redis.clone(), key.clone());
        async move { redis.exists(key).await.unwrap() }
    })
    .await;
    // Someone else holds the slot now (e.g. it expired during a network split).
    redis.set(&key, "another holder").await.unwrap();
    match task.await.unwrap() {
        Err(Error::LeaseLost {
            stream,
            group,
            consumer,
        }) => {
            assert_eq!(
                (stream.as_str(), group.as_str(), consumer.as_str()),
                (s.as_str(), "g", "consumer-0")
            );
        }
        other => panic!("{other:?}"),
    }
    // The other holder's key is left alone.
    assert_eq!(
        redis.get::<_, String>(&key).await.unwrap().as_deref(),
        Some("another holder")
    );
    redis.del(&key).await.unwrap();
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn a_dead_consumers_pending_events_are_reclaimed_after_claim_idle() {
    let p = prefix("ev_reclaim");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let ids = publish_n(&broker, &s, 5).await;
    // A consumer that read three events and died.
    let _: driver::Value = redis
        .query(
            driver::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g")
                .arg("ghost")
                .arg("COUNT")
                .arg(3)
                .arg("STREAMS")
                .arg(&s)
                .arg(">"),
        )
        .await
        .unwrap();
    let claim_idle = Duration::from_millis(200);
    // Not idle long enough yet: a drain leaves them to the ghost.
    let seen = Seen::default();
    let drain = |seen: Seen, idle: Duration| {
        let broker = broker.clone();
        let s = s.clone();
        async move {
            broker
                .consumer(&s, "g")
                .unwrap()
                .claim_idle(idle)
                .drain(move |batch: Batch| {
                    let seen = seen.clone();
                    async move {
                        seen.push(&batch);
                        Ok::<_, Error>(())
                    }
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(drain(seen.clone(), Duration::from_secs(3600)).await, 2);
    assert_eq!(seen.ids(), ids[3..]);
    // Once idle for claim_idle, XAUTOCLAIM hands them to a live consumer.
    wait_until("the ghost's entries are idle for claim_idle", || {
        let (redis, s) = (redis.clone(), s.clone());
        async move {
            let rows: Vec<(String, String, u64, u64)> = redis
                .query(
                    driver::cmd("XPENDING")
                        .arg(&s)
                        .arg("g")
                        .arg("IDLE")
                        .arg(claim_idle.as_millis() as u64)
                        .arg("-")
                        .arg("+")
                        .arg(10),
                )
                .await
                .unwrap();
            rows.len() == 3
        }
    })
    .await;
    let seen2 = Seen::default();
    assert_eq!(drain(seen2.clone(), claim_idle).await, 3);
    assert_eq!(seen2.ids(), ids[..3]);
    assert!(pending(&redis, &s, "g").await.is_empty());
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn streams_are_trimmed_once_every_group_acknowledged() {
    let p = prefix("ev_trim");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g1", "g2"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    // A group beeorm does not know about (another service's).
    let _: driver::Value = redis
        .query(
            driver::cmd("XGROUP")
                .arg("CREATE")
                .arg(&s)
                .arg("audit")
                .arg("0"),
        )
        .await
        .unwrap();
    let ids = publish_n(&broker, &s, 10).await;
    let drain = |group: &'static str, idle: Duration, skip: Option<String>| {
        let broker = broker.clone();
        let s = s.clone();
        async move {
            broker
                .consumer(&s, group)
                .unwrap()
                .claim_idle(idle)
                .drain(move |batch: Batch| {
                    let skip = skip.clone();
                    async move {
                        for (i, e) in batch.events().iter().enumerate() {
                            if Some(e.id()) == skip.as_deref() {
                                batch.skip(i);
                            }
                        }
                        Ok::<_, Error>(())
                    }
                })
                .await
                .unwrap()
        }
    };
    let long = Duration::from_secs(3600);
    drain("g1", long, None).await;
    assert_eq!(
        xlen(&redis, &s).await,
        10,
        "g2 and audit have not read them"
    );
    drain("g2", long, Some(ids[3].clone())).await;
    assert_eq!(xlen(&redis, &s).await, 10, "audit has not read them");
    // The other service reads and acknowledges everything.
    let read: Vec<(String, Vec<Entry>)> = redis
        .query(
            driver::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("audit")
                .arg("a")
                .arg("STREAMS")
                .arg(&s)
                .arg(">"),
        )
        .await
        .unwrap();
    let audit_ids: Vec<String> = read[0].1.iter().map(|(id, _)| id.clone()).collect();
    let _: u64 = redis
        .query(driver::cmd("XACK").arg(&s).arg("audit").arg(&audit_ids))
        .await
        .unwrap();
    // The next consumer pass trims up to g2's pending (skipped) event.
    drain("g1", long, None).await;
    let left: Vec<String> = xrange(&redis, &s).await.into_iter().map(|e| e.0).collect();
    assert_eq!(left, ids[3..]);
    // g2 gets its skipped event again (idle long enough) and acknowledges it.
    let idle = Duration::from_millis(50);
    wait_until("the skipped event is idle", || {
        let (redis, s) = (redis.clone(), s.clone());
        async move {
            let rows: Vec<(String, String, u64, u64)> = redis
                .query(
                    driver::cmd("XPENDING")
                        .arg(&s)
                        .arg("g2")
                        .arg("IDLE")
                        .arg(idle.as_millis() as u64)
                        .arg("-")
                        .arg("+")
                        .arg(10),
                )
                .await
                .unwrap();
            rows.len() == 1
        }
    })
    .await;
    assert_eq!(drain("g2", idle, None).await, 1);
    assert_eq!(xlen(&redis, &s).await, 0);
    // Trimming never removes what a group has not been delivered.
    let more = publish_n(&broker, &s, 2).await;
    drain("g1", long, None).await;
    drain("g2", long, None).await;
    let left: Vec<String> = xrange(&redis, &s).await.into_iter().map(|e| e.0).collect();
    assert_eq!(left, more, "audit has not read them");
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn stats_report_length_ages_pending_consumers_and_lag() {
    let p = prefix("ev_stats");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g1", "g2"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let empty = broker.stream_stats(&s).await.unwrap();
    assert_eq!((empty.length, empty.oldest_age), (0, None));
    assert_eq!(empty.groups.len(), 2);
    publish_n(&broker, &s, 5).await;
    broker
        .consumer(&s, "g1")
        .unwrap()
        .drain(|_: Batch| async { Ok::<_, Error>(()) })
        .await
        .unwrap();
    // g2: two delivered to a consumer, not acknowledged.
    let _: driver::Value = redis
        .query(
            driver::cmd("XREADGROUP")
                .arg("GROUP")
                .arg("g2")
                .arg("worker")
                .arg("COUNT")
                .arg(2)
                .arg("STREAMS")
                .arg(&s)
                .arg(">"),
        )
        .await
        .unwrap();
    let all = broker.stats().await.unwrap();
    assert_eq!(all.len(), 1);
    let st = &all[0];
    assert_eq!(
        (st.stream.as_str(), st.pool.as_str()),
        (s.as_str(), "default")
    );
    assert_eq!(st.length, 5);
    assert!(st.oldest_age.is_some());
    let names: Vec<&str> = st.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["g1", "g2"]);
    let (g1, g2) = (&st.groups[0], &st.groups[1]);
    assert_eq!((g1.pending, g1.consumers, g1.lag), (0, 1, Some(0)));
    assert_eq!(g1.oldest_pending_age, None);
    assert_eq!((g2.pending, g2.consumers, g2.lag), (2, 1, Some(3)));
    assert!(g2.oldest_pending_age.is_some());
    // The same figures for one stream; ages move with the clock, so compare the rest.
    let one = broker.stream_stats(&s).await.unwrap();
    let without_ages = |x: &StreamStats| {
        let groups: Vec<_> = x
            .groups
            .iter()
            .map(|g| (g.group.clone(), g.pending, g.consumers, g.lag))
            .collect();
        (x.stream.clone(), x.pool.clone(), x.length, groups)
    };
    assert_eq!(without_ages(&one), without_ages(st));
    assert!(one.oldest_age >= st.oldest_age);
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn stop_finishes_and_acknowledges_the_batch_in_hand() {
    let p = prefix("ev_stop");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let ids = publish_n(&broker, &s, 4).await;
    let consumer = broker
        .consumer(&s, "g")
        .unwrap()
        .block(Duration::from_millis(50));
    let stop = consumer.stop_handle();
    let seen = Seen::default();
    let seen2 = seen.clone();
    // The handler asks to stop in the middle of its batch, then finishes it.
    consumer
        .run(move |batch: Batch| {
            let (seen, stop) = (seen2.clone(), stop.clone());
            async move {
                stop.stop();
                tokio::task::yield_now().await;
                seen.push(&batch);
                Ok::<_, Error>(())
            }
        })
        .await
        .unwrap();
    assert_eq!(seen.ids(), ids);
    assert!(pending(&redis, &s, "g").await.is_empty());
    assert!(!redis.exists(lease_key(&s, "g", 0)).await.unwrap());
    // A stopped consumer stays stopped: `run` returns at once, taking nothing.
    broker.publish(&s, &order(9)).await.unwrap();
    let c = broker.consumer(&s, "g").unwrap();
    c.stop_handle().stop();
    c.run(|_: Batch| async { Err::<(), _>(std::io::Error::other("not called")) })
        .await
        .unwrap();
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn blocking_reads_use_a_connection_of_their_own() {
    let p = prefix("ev_dedicated");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let broker = engine.event_broker();
    let redis = engine.redis("default").unwrap();
    let consumer = broker
        .consumer(&s, "g")
        .unwrap()
        .block(Duration::from_secs(60)); // capped below the 2 s response timeout
    let stop = consumer.stop_handle();
    let seen = Seen::default();
    let task = spawn_run(consumer, seen.clone(), |_| Ok(()));
    let shared: i64 = redis.query(driver::cmd("CLIENT").arg("ID")).await.unwrap();
    // A client blocked in XREADGROUP on our stream that is not the shared connection.
    wait_until("the consumer blocks on its own connection", || {
        let redis = redis.clone();
        async move {
            let list: String = redis
                .query(driver::cmd("CLIENT").arg("LIST").arg("TYPE").arg("normal"))
                .await
                .unwrap();
            list.lines().any(|l| {
                l.contains("cmd=xreadgroup")
                    && l.contains(" flags=b ")
                    && !l.starts_with(&format!("id={shared} "))
            })
        }
    })
    .await;
    // The shared connection answers meanwhile, and events still arrive.
    redis.ping().await.unwrap();
    let id = broker.publish(&s, &order(1)).await.unwrap();
    wait_until("the event is handled", || {
        let seen = seen.clone();
        let id = id.clone();
        async move { seen.ids() == [id] }
    })
    .await;
    stop.stop();
    task.await.unwrap().unwrap();
    cleanup(&redis, &p).await;
}

#[tokio::test]
async fn consumers_run_on_sentinel_and_cluster_pools() {
    let p = prefix("ev_haconsume");
    let addresses = sentinels();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let nodes = cluster_nodes();
    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let (ha, shard) = (format!("{p}ha"), format!("{p}shard"));
    let mut r = Registry::new();
    r.register_redis_sentinel("ha", &sentinel_master(), &addresses, 0)
        .register_redis_cluster("shards", &nodes)
        .register_redis_stream(&ha, "ha", &["g"])
        .register_redis_stream(&shard, "shards", &["g"]);
    let engine = r.validate().await.unwrap().create_engine();
    let broker = engine.event_broker();
    for (s, pool) in [(&ha, "ha"), (&shard, "shards")] {
        let redis = engine.redis(pool).unwrap();
        let ids = publish_n(&broker, s, 20).await;
        // `run` (blocking reads on a connection of its own) until all 20 are in.
        let consumer = broker
            .consumer(s, "g")
            .unwrap()
            .batch_size(7)
            .block(Duration::from_millis(100));
        let stop = consumer.stop_handle();
        let seen = Seen::default();
        let task = spawn_run(consumer, seen.clone(), |_| Ok(()));
        wait_until("every event is handled", || {
            let seen = seen.clone();
            async move { seen.ids().len() >= 20 }
        })
        .await;
        stop.stop();
        task.await.unwrap().unwrap();
        assert_eq!(seen.ids(), ids, "{pool}");
        assert!(pending(&redis, s, "g").await.is_empty(), "{pool}");
        // Trimmed on the way out (the only group acknowledged everything).
        assert_eq!(xlen(&redis, s).await, 0, "{pool}");
        let st = broker.stream_stats(s).await.unwrap();
        assert_eq!((st.length, st.groups[0].pending), (0, 0), "{pool}");
        assert!(!redis.exists(lease_key(s, "g", 0)).await.unwrap(), "{pool}");
        redis.del(s.as_str()).await.unwrap();
    }
}

#[tokio::test]
async fn the_lease_is_renewed_while_the_consumer_runs() {
    let p = prefix("ev_renew");
    let s = format!("{p}s");
    let engine = engine_with(&[(&s, &["g"])]).await;
    let redis = engine.redis("default").unwrap();
    let consumer = engine
        .event_broker()
        .consumer(&s, "g")
        .unwrap()
        .block(Duration::from_millis(50))
        .lease_ttl(Duration::from_millis(300));
    let stop = consumer.stop_handle();
    let task = spawn_run(consumer, Seen::default(), |_| Ok(()));
    let key = lease_key(&s, "g", 0);
    let pttl = |redis: RedisClient, key: String| async move {
        redis
            .query::<i64>(driver::cmd("PTTL").arg(key))
            .await
            .unwrap()
    };
    wait_until("the lease is taken", || {
        let (redis, key) = (redis.clone(), key.clone());
        async move { pttl(redis, key).await > 0 }
    })
    .await;
    // Between renewals the TTL only falls: each rise is a renewal. It rises several
    // times, and the key never expires meanwhile.
    let (mut renewals, mut last) = (0, i64::MAX);
    for _ in 0..1000 {
        let now = pttl(redis.clone(), key.clone()).await;
        assert!(now > 0, "the lease expired while its consumer ran");
        if now > last {
            renewals += 1;
            if renewals == 4 {
                break;
            }
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(renewals, 4);
    assert!(!task.is_finished());
    stop.stop();
    task.await.unwrap().unwrap();
    assert!(!redis.exists(&key).await.unwrap());
    cleanup(&redis, &p).await;
}
