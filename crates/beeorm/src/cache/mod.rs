//! Caches. For now the in-process cache pools (A3, E6); entity caches build on them.

pub(crate) mod local;

pub use local::{LocalCache, LocalCacheBound, LocalCacheStats};
