//! Test-only pause points of the cache protocol: a test installs a hook for a point
//! and a key prefix (its own namespace), and every reader or writer of that
//! namespace awaits the hook when it reaches the point. This is how the races of
//! `docs/caching.md` are replayed deterministically (a reader stopped after its
//! SELECT while a writer commits, …). Without an installed hook a point costs one
//! relaxed atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Where a reader or writer can be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Point {
    /// A reader that missed, after Redis answered (lease taken), before its SELECT.
    BeforeSelect,
    /// A reader after its SELECT, before it fills the caches.
    BeforeFill,
    /// A writer after its statements, before it locks the cache keys.
    BeforeLock,
    /// A writer after locking the cache keys, before its COMMIT.
    BeforeCommit,
    /// A writer after its COMMIT, before it unlocks (invalidates) the cache keys.
    BeforeUnlock,
    /// A reader of a cached query that took the lease of its list, before its SELECT.
    BeforeQuerySelect,
    /// A reader of a cached query after its SELECT, before it fills the list.
    BeforeQueryFill,
    /// A write after its COMMIT, before its events (dirty streams, queued events)
    /// are sent; the key prefix is the first event's stream.
    BeforePublish,
}

/// A hook: awaited by every task of the namespace reaching the point.
pub type Hook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether any namespace has the broken fill on ([`set_broken_fill`]).
static BROKEN: AtomicBool = AtomicBool::new(false);

fn broken() -> &'static RwLock<Vec<String>> {
    static BROKEN_NAMESPACES: std::sync::OnceLock<RwLock<Vec<String>>> = std::sync::OnceLock::new();
    BROKEN_NAMESPACES.get_or_init(|| RwLock::new(Vec::new()))
}

type Hooks = RwLock<Vec<(String, Point, Hook)>>;

fn hooks() -> &'static Hooks {
    static HOOKS: std::sync::OnceLock<Hooks> = std::sync::OnceLock::new();
    HOOKS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Installs `hook` at `point` for keys starting with `namespace` (a test's own).
pub fn install(namespace: &str, point: Point, hook: Hook) {
    if let Ok(mut h) = hooks().write() {
        h.push((namespace.to_string(), point, hook));
        ACTIVE.store(true, Ordering::Release);
    }
}

/// Removes every hook of `namespace`.
pub fn clear(namespace: &str) {
    if let Ok(mut h) = hooks().write() {
        h.retain(|(ns, _, _)| ns != namespace);
        ACTIVE.store(!h.is_empty(), Ordering::Release);
    }
}

/// Awaits the hooks installed at `point` for `key_prefix`'s namespace.
pub(crate) async fn point(point: Point, key_prefix: &str) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let matching: Vec<Hook> = match hooks().read() {
        Ok(h) => h
            .iter()
            .filter(|(ns, p, _)| *p == point && key_prefix.starts_with(ns.as_str()))
            .map(|(_, _, hook)| hook.clone())
            .collect(),
        Err(_) => return,
    };
    for hook in matching {
        hook().await;
    }
}

/// Mutation testing only: while on for `namespace`, readers of that namespace fill
/// Redis without checking that they still hold their lease (an unconditional SET,
/// the Go original's behaviour). This deliberately breaks the protocol, so a test
/// can show that the coherence checker notices; never turn it on elsewhere.
pub fn set_broken_fill(namespace: &str, on: bool) {
    if let Ok(mut b) = broken().write() {
        b.retain(|ns| ns != namespace);
        if on {
            b.push(namespace.to_string());
        }
        BROKEN.store(!b.is_empty(), Ordering::Release);
    }
}

/// Whether fills of `key` skip the lease check ([`set_broken_fill`]). One relaxed
/// atomic load while no namespace is broken.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn broken_fill(key: &str) -> bool {
    if !BROKEN.load(Ordering::Relaxed) {
        return false;
    }
    broken()
        .read()
        .map(|b| b.iter().any(|ns| key.starts_with(ns.as_str())))
        .unwrap_or(false)
}
