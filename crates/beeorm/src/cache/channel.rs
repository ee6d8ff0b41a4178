//! The invalidation channel of the local layer: one subscriber connection per
//! registry on `<namespace>:inv`, where every writer publishes the rows it changes
//! (atomically with its Redis lock before COMMIT and its unlock after).
//!
//! Loss is detected, never assumed away: the subscriber PINGs on its own connection
//! every quarter window; a PONG proves that every message published before the PING
//! was delivered (one connection delivers in order) and, once the messages queued
//! before it are applied, moves the "heard" mark to the PING's send time. The local
//! layer serves only while that mark is younger than the window (see
//! `coherence.rs`), so a write acknowledged more than one window ago is never served
//! stale; in strict mode writers also wait one window after their unlock before the
//! write is acknowledged, so no stale local read is possible at all. A dropped connection, a failed or late
//! PONG marks the channel down: the local layer stops serving, is emptied, and the
//! subscriber reconnects (with backoff) until it is back.

use std::sync::Weak;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};

use super::Caches;

/// Starts the subscriber; it ends once the registry is dropped.
pub(super) fn spawn(caches: Weak<Caches>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(target: "beeorm::cache", "no Tokio runtime: the local cache's invalidation channel is not started, so the local layer serves nothing");
        return;
    };
    handle.spawn(run(caches));
}

async fn run(weak: Weak<Caches>) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let Some(caches) = weak.upgrade() else { return };
        let Some(client) = caches.channel.clone() else {
            return;
        };
        let channel = caches.channel_name.clone();
        let window = caches.coherence.window();
        drop(caches);
        let pubsub = match client.pubsub().await {
            Ok(Some(p)) => p,
            Ok(None) => {
                tracing::warn!(target: "beeorm::cache", pool = client.pool_name(), "the invalidation channel needs a single-server Redis pool: the local layer serves nothing");
                return;
            }
            Err(e) => {
                tracing::warn!(target: "beeorm::cache", error = %e, "invalidation channel: cannot connect; the local layer serves nothing until it can");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        match tokio::time::timeout(window, sink.subscribe(&channel)).await {
            Ok(Ok(())) => {}
            _ => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        }
        backoff = Duration::from_millis(10);
        {
            let Some(caches) = weak.upgrade() else { return };
            // Whatever the local layer held was not watched while the channel was
            // down: it starts empty.
            caches.clear_local();
            caches.coherence.set_live(true);
        }
        let every = (window / 4).max(Duration::from_millis(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let lost = loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break "connection closed" };
                    let Some(caches) = weak.upgrade() else { return };
                    apply(&caches, &message);
                }
                _ = tick.tick() => {
                    let Some(caches) = weak.upgrade() else { return };
                    let sent = caches.coherence.now_micros().max(1);
                    drop(caches);
                    match tokio::time::timeout(window, sink.ping::<::redis::Value>()).await {
                        Ok(Ok(_)) => {
                            let Some(caches) = weak.upgrade() else { return };
                            // Messages queued before the PONG are applied first.
                            while let Some(Some(message)) = stream.next().now_or_never() {
                                apply(&caches, &message);
                            }
                            caches.coherence.heard(sent);
                        }
                        Ok(Err(_)) => break "PING failed",
                        Err(_) => break "PING timed out",
                    }
                }
            }
        };
        let Some(caches) = weak.upgrade() else { return };
        tracing::warn!(target: "beeorm::cache", reason = lost, "invalidation channel lost: the local layer is emptied and serves nothing until it is back");
        caches.coherence.set_live(false);
        caches.clear_local();
        drop(caches);
        tokio::time::sleep(backoff).await;
    }
}

fn apply(caches: &Caches, message: &::redis::Msg) {
    let Ok(text) = message.get_payload::<String>() else {
        return;
    };
    caches.apply_message(&text);
}
